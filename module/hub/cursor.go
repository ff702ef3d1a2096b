package hub

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"strings"
)

// Position is the place of an event in a hub's log. The in-memory log counts
// events in Hi; the Redis log uses the stream ID (milliseconds, sequence).
// Positions are totally ordered within one epoch.
type Position struct {
	Hi, Lo uint64
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.Hi < q.Hi || (p.Hi == q.Hi && p.Lo < q.Lo)
}

// Cursor names a position in the log of one epoch. An epoch is one lifetime
// of a log: a restarted in-memory hub, or a Redis that lost its data, starts a
// new epoch, so cursors of the old one cannot be resumed silently.
type Cursor struct {
	Epoch string
	Pos   Position
}

// String gives the cursor's wire form: "<epoch>-<hi>-<lo>", URL-safe ASCII of
// at most 56 characters. Clients must treat it as opaque.
func (c Cursor) String() string {
	return string(c.AppendTo(make([]byte, 0, len(c.Epoch)+42)))
}

// AppendTo appends the cursor's wire form to b.
func (c Cursor) AppendTo(b []byte) []byte {
	b = append(b, c.Epoch...)
	b = append(b, '-')
	b = strconv.AppendUint(b, c.Pos.Hi, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, c.Pos.Lo, 10)
}

// maxEpochLen bounds an epoch so a cursor stays within 64 characters.
const maxEpochLen = 16

// ParseCursor reads a cursor in the form String writes. Anything else is an
// error: callers answer it with recovered:false, never with a guess.
func ParseCursor(s string) (Cursor, error) {
	if len(s) > 64 {
		return Cursor{}, errBadCursor
	}
	epoch, rest, ok := strings.Cut(s, "-")
	if !ok || epoch == "" || len(epoch) > maxEpochLen || !isEpoch(epoch) {
		return Cursor{}, errBadCursor
	}
	hi, lo, ok := strings.Cut(rest, "-")
	if !ok {
		return Cursor{}, errBadCursor
	}
	h, err := strconv.ParseUint(hi, 10, 64)
	if err != nil {
		return Cursor{}, errBadCursor
	}
	l, err := strconv.ParseUint(lo, 10, 64)
	if err != nil {
		return Cursor{}, errBadCursor
	}
	return Cursor{Epoch: epoch, Pos: Position{Hi: h, Lo: l}}, nil
}

func isEpoch(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// NewEpoch returns a fresh random epoch name (13 lowercase base32 characters).
func NewEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
