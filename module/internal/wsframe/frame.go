package wsframe

import "encoding/binary"

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

const finBit = 0x80

// MaxHeader is the longest header of an unmasked frame: 2 bytes, and 8 of
// extended length. Server frames are never masked (RFC 6455 section 5.1),
// so the bytes of a frame are the same for every connection.
const MaxHeader = 10

// PutHeader writes the header of an unmasked, unfragmented frame of n
// payload bytes at the end of dst (which has MaxHeader bytes) and returns
// its length, so that a payload built right after dst becomes a frame
// without a copy: the frame is dst[MaxHeader-k:] followed by the payload.
func PutHeader(dst []byte, op byte, n int) int {
	var h []byte
	switch {
	case n < 126:
		h = dst[MaxHeader-2:]
		h[1] = byte(n)
	case n <= 0xFFFF:
		h = dst[MaxHeader-4:]
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h = dst[:MaxHeader]
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	h[0] = finBit | op
	return len(h)
}

// Append appends payload to b as one unfragmented frame.
func Append(b []byte, op byte, payload []byte) []byte {
	var h [MaxHeader]byte
	n := PutHeader(h[:], op, len(payload))
	b = append(b, h[MaxHeader-n:]...)
	return append(b, payload...)
}

// Text frames payload as one text frame.
func Text(payload []byte) []byte {
	return Append(make([]byte, 0, len(payload)+MaxHeader), OpText, payload)
}

// Close frames a close with code and a reason, truncated to fit the
// 125-byte limit of control frames.
func Close(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	p = append(p, reason...)
	return Append(make([]byte, 0, len(p)+2), OpClose, p)
}

// Pong frames a pong carrying a ping's application data.
func Pong(data []byte) []byte {
	if len(data) > 125 {
		data = data[:125]
	}
	return Append(make([]byte, 0, len(data)+2), OpPong, data)
}

// Ping is an empty ping frame.
func Ping() []byte { return []byte{finBit | OpPing, 0} }
