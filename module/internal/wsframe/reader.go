package wsframe

import (
	"encoding/binary"
	"unicode/utf8"
)

// Reader parses client frames (RFC 6455 section 5) from bytes as they
// arrive from a non-blocking socket: masked, possibly fragmented, with
// control frames in between. It holds bytes only while a frame is
// incomplete, so an idle connection costs it nothing.
type Reader struct {
	MaxMessage int64  // bound on a text message, in bytes
	partial    []byte // an incomplete frame
	message    []byte // fragments of the text message being assembled
	fragmented bool   // a message's first fragment came without FIN
	closed     bool   // a close frame was read: nothing after it counts
}

// Handler receives what a Reader parses.
type Handler interface {
	Text(msg []byte) // a complete, valid UTF-8 text message
	Ping(payload []byte)
	Pong()
	Close(code int) // the client's close (CloseNoStatus when it gave no code)
}

// Feed parses p (and what was left over). It returns a close code and
// reason for a protocol violation, after which the connection must close;
// 0 otherwise. p may be modified (unmasked in place).
func (r *Reader) Feed(p []byte, h Handler) (code int, reason string) {
	if r.closed {
		return 0, ""
	}
	b := p
	if len(r.partial) > 0 {
		r.partial = append(r.partial, p...)
		b = r.partial
	}
	for len(b) >= 2 && !r.closed {
		fin, op := b[0]&0x80 != 0, b[0]&0x0f
		if b[0]&0x70 != 0 {
			return CloseProtocolError, "reserved bits set"
		}
		if b[1]&0x80 == 0 {
			return CloseProtocolError, "client frames must be masked"
		}
		n, hdr := uint64(b[1]&0x7f), 2
		switch n {
		case 126:
			if len(b) < 4 {
				break
			}
			n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			if len(b) < 10 {
				break
			}
			n, hdr = binary.BigEndian.Uint64(b[2:]), 10
			if n>>63 != 0 {
				return CloseProtocolError, "invalid frame length"
			}
		}
		if hdr == 2 && b[1]&0x7f >= 126 {
			break // extended length not here yet
		}
		switch {
		case op >= 8:
			if op > 10 {
				return CloseProtocolError, "unknown opcode"
			}
			if !fin || n > 125 {
				return CloseProtocolError, "invalid control frame"
			}
		case op == 0:
			if !r.fragmented {
				return CloseProtocolError, "continuation without a message"
			}
		case op == 1:
			if r.fragmented {
				return CloseProtocolError, "new message inside a fragmented one"
			}
		case op == 2:
			return CloseUnsupported, "binary frames are not supported"
		default:
			return CloseProtocolError, "unknown opcode"
		}
		if op < 8 && int64(len(r.message))+int64(n) > r.MaxMessage {
			return CloseTooBig, "message too big"
		}
		total := uint64(hdr) + 4 + n
		if uint64(len(b)) < total {
			break
		}
		payload := b[hdr+4 : total]
		mask := b[hdr : hdr+4]
		for i := range payload {
			payload[i] ^= mask[i&3]
		}
		if code, reason := r.frame(fin, op, payload, h); code != 0 {
			return code, reason
		}
		b = b[total:]
	}
	// Keep an incomplete frame, in a buffer of its own.
	if len(b) == 0 || r.closed {
		r.partial = nil
	} else if len(r.partial) == 0 || &b[0] != &r.partial[0] {
		r.partial = append(make([]byte, 0, len(b)), b...)
	}
	return 0, ""
}

// frame handles one complete, unmasked frame.
func (r *Reader) frame(fin bool, op byte, payload []byte, h Handler) (int, string) {
	switch op {
	case 8:
		r.closed = true
		code := CloseNoStatus
		if len(payload) == 1 {
			return CloseProtocolError, "invalid close payload"
		}
		if len(payload) >= 2 {
			code = int(binary.BigEndian.Uint16(payload))
			if !ValidCloseCode(code) {
				return CloseProtocolError, "invalid close code"
			}
			if !utf8.Valid(payload[2:]) {
				return CloseInvalidPayload, "invalid UTF-8"
			}
		}
		h.Close(code)
	case 9:
		h.Ping(payload)
	case 10:
		h.Pong()
	default: // text, or a continuation of text
		if fin && !r.fragmented {
			if !utf8.Valid(payload) {
				return CloseInvalidPayload, "invalid UTF-8"
			}
			h.Text(payload)
			return 0, ""
		}
		r.message = append(r.message, payload...)
		r.fragmented = !fin
		if fin {
			msg := r.message
			r.message = nil
			if !utf8.Valid(msg) {
				return CloseInvalidPayload, "invalid UTF-8"
			}
			h.Text(msg)
		}
	}
	return 0, ""
}

// Closed reports whether the client's close frame was read: nothing after
// it counts.
func (r *Reader) Closed() bool { return r.closed }
