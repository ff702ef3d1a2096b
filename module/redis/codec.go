package redis

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Stream entry fields, one entry per event and channel:
//
//	n  the event's number in its epoch (for gap detection)
//	c  the channel
//	t  the type
//	p  the payload (absent: none)
//	s  the publisher's timestamp (absent: none)
//	i  the publisher's id (absent: none)
//	x  a session the event must not reach (absent: none)
//	u  the user who sent a client event (absent: none)

// entry is one decoded stream entry.
type entry struct {
	pos  hub.Position
	n    int64
	pub  hub.Publication
	ch   string
	skip bool // a retry of an event delivered before a loss: not delivered again
}

// decodeEntry reads one stream entry as Redis sends it, in XRANGE replies
// (relayed by the scripts) and in XREAD replies alike: {id, {field, value,
// ...}}. It is the only entry decoder.
func decodeEntry(r any) (entry, error) {
	item, ok := r.([]any)
	if !ok || len(item) != 2 {
		return entry{}, errors.New("redis: bad stream entry")
	}
	id, _ := item[0].(string)
	pos, err := parseID(id)
	if err != nil {
		return entry{}, err
	}
	fields, _ := item[1].([]any)
	e := entry{pos: pos}
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		switch k {
		case "n":
			e.n, _ = strconv.ParseInt(v, 10, 64)
		case "c":
			e.ch = v
		case "t":
			e.pub.Type = v
		case "p":
			e.pub.Payload = []byte(v)
		case "s":
			e.pub.Timestamp = v
		case "i":
			e.pub.ID = v
		case "x":
			e.pub.Exclude = v
		case "u":
			e.pub.UserID = v
		}
	}
	if e.ch == "" {
		return entry{}, fmt.Errorf("redis: stream entry %s has no channel", id)
	}
	return e, nil
}

// decodeEntries decodes a list of stream entries.
func decodeEntries(r any) ([]entry, error) {
	raw, _ := r.([]any)
	out := make([]entry, 0, len(raw))
	for _, item := range raw {
		e, err := decodeEntry(item)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// decodeXRead reads the reply of an XREAD of one stream: {{name, entries}}
// in RESP2, {name: entries} in RESP3 (a URL may ask for protocol 3).
func decodeXRead(r any) ([]entry, error) {
	switch v := r.(type) {
	case []any:
		if len(v) == 0 {
			return nil, nil
		}
		s, ok := v[0].([]any)
		if !ok || len(s) != 2 {
			return nil, errors.New("redis: bad XREAD reply")
		}
		return decodeEntries(s[1])
	case map[any]any:
		for _, entries := range v {
			return decodeEntries(entries)
		}
		return nil, nil
	case nil:
		return nil, nil
	}
	return nil, errors.New("redis: bad XREAD reply")
}

// event builds the hub event of an entry. Its acceptance time is the
// entry ID's, so every node builds the same event.
func (e *entry) event(epoch string) *hub.Event {
	p := e.pub
	p.Channels = []string{e.ch}
	return hub.NewEvent(hub.Cursor{Epoch: epoch, Pos: e.pos}, e.ch, &p, time.UnixMilli(int64(e.pos.Hi)))
}

// parseID reads a stream entry ID "<ms>-<seq>".
func parseID(id string) (hub.Position, error) {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return hub.Position{}, fmt.Errorf("redis: bad entry ID %q", id)
	}
	hi, err1 := strconv.ParseUint(ms, 10, 64)
	lo, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return hub.Position{}, fmt.Errorf("redis: bad entry ID %q", id)
	}
	return hub.Position{Hi: hi, Lo: lo}, nil
}

// formatID writes a stream entry ID.
func formatID(p hub.Position) string {
	return strconv.FormatUint(p.Hi, 10) + "-" + strconv.FormatUint(p.Lo, 10)
}

// parseRecord reads an idempotency record: the epoch, then channel and
// entry ID pairs, separated by newlines.
func parseRecord(rec string) (hub.Appended, error) {
	parts := strings.Split(rec, "\n")
	if len(parts) < 3 || len(parts)%2 != 1 {
		return hub.Appended{}, errors.New("redis append: bad idempotency record")
	}
	a := hub.Appended{Duplicate: true}
	for i := 1; i < len(parts); i += 2 {
		pos, err := parseID(parts[i+1])
		if err != nil {
			return hub.Appended{}, err
		}
		a.Channels = append(a.Channels, parts[i])
		a.Cursors = append(a.Cursors, hub.Cursor{Epoch: parts[0], Pos: pos})
	}
	return a, nil
}

// snapshot is what the read script answers.
type snapshot struct {
	epoch   string
	floor   hub.Position // entries up to here were trimmed
	last    hub.Position // last appended entry
	n       int64        // events appended in this epoch
	base    hub.Position // where this epoch began
	now     time.Time    // the server's clock
	entries []entry
	lost    string // the epoch this one replaced after a loss (lost.go), or ""
}

// decodeSnapshot reads the read script's reply: {epoch, floor, last, n,
// base, seconds, microseconds, entries, lost}.
func decodeSnapshot(res []any) (*snapshot, error) {
	if len(res) != 9 {
		return nil, fmt.Errorf("redis read: unexpected reply of %d items", len(res))
	}
	s := &snapshot{}
	var ok bool
	if s.epoch, ok = res[0].(string); !ok || s.epoch == "" {
		return nil, errors.New("redis read: no epoch")
	}
	var err error
	if s.floor, err = parseID(str(res[1])); err != nil {
		return nil, err
	}
	if s.last, err = parseID(str(res[2])); err != nil {
		return nil, err
	}
	s.n, _ = strconv.ParseInt(str(res[3]), 10, 64)
	if s.base, err = parseID(str(res[4])); err != nil {
		return nil, err
	}
	s.now = redisTime(res[5], res[6])
	if s.entries, err = decodeEntries(res[7]); err != nil {
		return nil, err
	}
	s.lost = str(res[8])
	return s, nil
}

// head is what the head script answers after each XREAD.
type head struct {
	epoch string // "" when the meta hash is gone
	n     int64
	last  hub.Position
	now   time.Time
}

// decodeHead reads the head script's reply: {epoch, n, last, seconds,
// microseconds}.
func decodeHead(res []any) (head, error) {
	if len(res) != 5 {
		return head{}, fmt.Errorf("redis: unexpected head reply of %d items", len(res))
	}
	h := head{epoch: str(res[0]), n: -1, now: redisTime(res[3], res[4])}
	if h.epoch == "" {
		return h, nil
	}
	var err error
	if h.n, err = strconv.ParseInt(str(res[1]), 10, 64); err != nil {
		return head{}, errors.New("redis: bad event count in the meta hash")
	}
	if h.last, err = parseID(str(res[2])); err != nil {
		return head{}, err
	}
	return h, nil
}

// redisTime reads the two halves of a TIME reply (seconds, microseconds).
func redisTime(sec, usec any) time.Time {
	s, _ := strconv.ParseInt(str(sec), 10, 64)
	u, _ := strconv.ParseInt(str(usec), 10, 64)
	return time.Unix(s, u*1000)
}

// str is a reply item as a string ("" if it is none).
func str(v any) string {
	s, _ := v.(string)
	return s
}
