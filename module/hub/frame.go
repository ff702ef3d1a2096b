package hub

import "encoding/binary"

// Frames are built here once per event and written as bytes to every
// subscriber: server frames are never masked (RFC 6455 section 5.1), so the
// bytes are the same for all connections.

const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
	finBit  = 0x80
)

// maxFrameHeader is the longest header of an unmasked frame: 2 bytes, and 8
// of extended length.
const maxFrameHeader = 10

// putFrameHeader writes the header of an unmasked, unfragmented frame of n
// payload bytes at the end of dst (which has maxFrameHeader bytes) and
// returns its length, so a payload built right after dst becomes a frame
// without a copy.
func putFrameHeader(dst []byte, op byte, n int) int {
	var h []byte
	switch {
	case n < 126:
		h = dst[maxFrameHeader-2:]
		h[1] = byte(n)
	case n <= 0xFFFF:
		h = dst[maxFrameHeader-4:]
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h = dst[:]
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	h[0] = finBit | op
	return len(h)
}

// textFrame frames payload as one unfragmented text frame.
func textFrame(payload []byte) []byte {
	return appendFrame(make([]byte, 0, len(payload)+10), opText, payload)
}

func appendFrame(b []byte, op byte, payload []byte) []byte {
	var h [maxFrameHeader]byte
	n := putFrameHeader(h[:], op, len(payload))
	b = append(b, h[maxFrameHeader-n:]...)
	return append(b, payload...)
}

// CloseFrame frames a close with code and a reason (truncated to fit the
// 125-byte control frame limit).
func CloseFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	p = append(p, reason...)
	return appendFrame(make([]byte, 0, len(p)+2), opClose, p)
}

// PongFrame frames a pong carrying the ping's application data.
func PongFrame(data []byte) []byte {
	if len(data) > 125 {
		data = data[:125]
	}
	return appendFrame(make([]byte, 0, len(data)+2), opPong, data)
}

var pingFrame = []byte{finBit | opPing, 0}
