package redis

import (
	"context"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// read runs the read script: meta data, and the entries after `after` (if
// given) up to upTo, at most count, provided the epoch is `epoch` (if
// given). Range resumes with it; the fetcher's sync learns the epoch and
// the stream's end with it.
func (l *Log) read(ctx context.Context, after *hub.Position, upTo string, count int, epoch string) (*snapshot, error) {
	from := ""
	if after != nil {
		from = formatID(*after)
	}
	res, err := readScript.Run(ctx, l.rdb, []string{l.stream, l.meta}, hub.NewEpoch(), from, upTo, count, epoch).Slice()
	if err != nil {
		return nil, err
	}
	received := time.Now()
	s, err := decodeSnapshot(res)
	if err != nil {
		return nil, err
	}
	l.clock.observe(s.now, received)
	return s, nil
}

// Range implements hub.Log over XRANGE: the entries after `after` up to
// upTo (the head this node delivered), of the channels match accepts.
func (l *Log) Range(ctx context.Context, after, upTo hub.Cursor, limit int, match func(string) bool) ([]*hub.Event, hub.Cursor, bool, error) {
	if limit <= 0 {
		limit = 256
	}
	if after == upTo {
		// The head this node delivered: nothing can be missing up to it.
		return nil, after, true, nil
	}
	if upTo.Epoch != after.Epoch || upTo.Pos.Less(after.Pos) {
		return l.rangeAhead(ctx, after, upTo)
	}
	count := max(limit, 256)
	s, err := l.read(ctx, &after.Pos, formatID(upTo.Pos), count, after.Epoch)
	if err != nil {
		return nil, after, false, err
	}
	if s.epoch != after.Epoch || s.last.Less(after.Pos) || after.Pos.Less(s.floor) {
		return nil, after, false, nil
	}
	if len(s.entries) > 0 {
		first := &s.entries[0]
		if first.n <= s.n-l.size.Load() {
			return nil, after, false, nil // beyond history_size
		}
		if ttl := time.Duration(l.ttl.Load()); ttl > 0 && time.UnixMilli(int64(first.pos.Hi)).Before(s.now.Add(-ttl)) {
			return nil, after, false, nil // older than history_ttl
		}
	}
	var out []*hub.Event
	next := after.Pos
	for i := range s.entries {
		e := &s.entries[i]
		if len(out) >= limit {
			break
		}
		if match == nil || match(e.ch) {
			out = append(out, e.event(after.Epoch))
		}
		next = e.pos
	}
	if len(out) < limit && len(s.entries) < count {
		next = upTo.Pos // scanned all the way
	}
	return out, hub.Cursor{Epoch: after.Epoch, Pos: next}, true, nil
}

// rangeAhead answers a Range whose start this node has not delivered yet: a
// cursor from a node whose reader is ahead, or of an epoch this node has
// not seen yet. If Redis knows the position, the answer is "nothing yet,
// complete" after giving the reader a moment to catch up, so the hub asks
// again with its new head; otherwise the cursor cannot be resumed.
func (l *Log) rangeAhead(ctx context.Context, after, upTo hub.Cursor) ([]*hub.Event, hub.Cursor, bool, error) {
	s, err := l.read(ctx, nil, "+", 0, "")
	if err != nil {
		return nil, after, false, err
	}
	if s.epoch != after.Epoch || s.last.Less(after.Pos) || after.Pos.Less(s.floor) {
		return nil, after, false, nil
	}
	l.mu.Lock()
	head, changed := l.headLocked(), l.changed
	l.mu.Unlock()
	if head != upTo {
		return nil, after, true, nil // the head moved already: ask again
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-ctx.Done():
	case <-l.ctx.Done():
		return nil, after, false, hub.ErrClosed
	}
	return nil, after, true, nil
}
