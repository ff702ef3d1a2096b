package wsframe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// clientFrame masks payload into a client frame.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, 0, 0)
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, mask...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

type recorder struct{ got []string }

func (r *recorder) Text(m []byte)  { r.got = append(r.got, "text:"+string(m)) }
func (r *recorder) Ping(p []byte)  { r.got = append(r.got, "ping:"+string(p)) }
func (r *recorder) Pong()          { r.got = append(r.got, "pong") }
func (r *recorder) Close(c int)    { r.got = append(r.got, fmt.Sprintf("close:%d", c)) }
func (r *recorder) String() string { return fmt.Sprint(r.got) }
func closePayload(code int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(code)) }
func cat(frames ...[]byte) []byte  { return bytes.Join(frames, nil) }
func unmasked(b []byte) []byte     { c := append([]byte(nil), b...); c[1] &^= 0x80; return c }

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300)
	cases := []struct {
		name string
		in   []byte
		want string
		code int
	}{
		{"text", clientFrame(true, 1, []byte(`{"a":1}`)), `[text:{"a":1}]`, 0},
		{"16-bit length", clientFrame(true, 1, big), "[text:" + string(big) + "]", 0},
		{"fragments with a ping between", cat(clientFrame(false, 1, []byte("he")), clientFrame(true, 9, []byte("p")), clientFrame(true, 0, []byte("llo"))), "[ping:p text:hello]", 0},
		{"pong", clientFrame(true, 10, nil), "[pong]", 0},
		{"close with code", clientFrame(true, 8, closePayload(1000)), "[close:1000]", 0},
		{"close without code", clientFrame(true, 8, nil), "[close:1005]", 0},
		{"nothing after close", cat(clientFrame(true, 8, nil), clientFrame(true, 1, []byte("late"))), "[close:1005]", 0},
		{"binary", clientFrame(true, 2, []byte{1}), "[]", 1003},
		{"invalid utf-8", clientFrame(true, 1, []byte{0xff}), "[]", 1007},
		{"invalid utf-8 across fragments", cat(clientFrame(false, 1, []byte{0xe2, 0x82}), clientFrame(true, 0, []byte{0x28})), "[]", 1007},
		{"utf-8 split across fragments", cat(clientFrame(false, 1, []byte{0xe2, 0x82}), clientFrame(true, 0, []byte{0xac})), "[text:€]", 0},
		{"too big", clientFrame(true, 1, bytes.Repeat([]byte("y"), 2000)), "[]", 1009},
		{"too big across fragments", cat(clientFrame(false, 1, bytes.Repeat([]byte("y"), 600)), clientFrame(true, 0, bytes.Repeat([]byte("y"), 600))), "[]", 1009},
		{"unmasked", unmasked(clientFrame(true, 1, []byte("a"))), "[]", 1002},
		{"reserved bit", func() []byte { f := clientFrame(true, 1, []byte("a")); f[0] |= 0x40; return f }(), "[]", 1002},
		{"unknown opcode", clientFrame(true, 3, nil), "[]", 1002},
		{"fragmented control", clientFrame(false, 9, nil), "[]", 1002},
		{"long control", clientFrame(true, 9, big), "[]", 1002},
		{"stray continuation", clientFrame(true, 0, []byte("a")), "[]", 1002},
		{"new message inside fragments", cat(clientFrame(false, 1, []byte("a")), clientFrame(true, 1, []byte("b"))), "[]", 1002},
		{"bad close code", clientFrame(true, 8, closePayload(1005)), "[]", 1002},
		{"one-byte close", clientFrame(true, 8, []byte{3}), "[]", 1002},
		{"declared 1 GiB", []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0}, "[]", 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, then byte by byte: the outcome must not depend on how
			// the bytes arrive.
			for _, split := range []bool{false, true} {
				r, h := &Reader{MaxMessage: 1024}, &recorder{}
				in := append([]byte(nil), tc.in...)
				code := 0
				if split {
					for i := range in {
						if code, _ = r.Feed(in[i:i+1], h); code != 0 {
							break
						}
					}
				} else {
					code, _ = r.Feed(in, h)
				}
				if code != tc.code || h.String() != tc.want {
					t.Fatalf("split=%v: got %s code %d, want %s code %d", split, h, code, tc.want, tc.code)
				}
				if tc.code == 0 && len(r.partial) != 0 {
					t.Fatalf("split=%v: %d bytes left over", split, len(r.partial))
				}
			}
		})
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add(cat(clientFrame(false, 1, []byte("he")), clientFrame(true, 9, []byte("p")), clientFrame(true, 0, []byte("llo"))), 3)
	f.Add(clientFrame(true, 8, closePayload(1001)), 1)
	f.Add([]byte{0x81, 0xfe, 0x01}, 2)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		if chunk <= 0 || chunk > len(in)+1 {
			chunk = len(in) + 1
		}
		whole, wh := &Reader{MaxMessage: 512}, &recorder{}
		wcode, _ := whole.Feed(append([]byte(nil), in...), wh)
		parts, ph := &Reader{MaxMessage: 512}, &recorder{}
		pcode := 0
		buf := append([]byte(nil), in...)
		for i := 0; i < len(buf) && pcode == 0; i += chunk {
			pcode, _ = parts.Feed(buf[i:min(i+chunk, len(buf))], ph)
		}
		if wcode != pcode || wh.String() != ph.String() {
			t.Fatalf("whole: %s %d; in chunks of %d: %s %d", wh, wcode, chunk, ph, pcode)
		}
		if len(whole.partial) > 512+14 || len(whole.message) > 512 {
			t.Fatalf("buffered %d + %d bytes over a 512-byte limit", len(whole.partial), len(whole.message))
		}
	})
}
