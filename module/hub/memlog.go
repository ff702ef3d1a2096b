package hub

import (
	"context"
	"sync"
	"time"
)

// MemoryLog is the in-memory Log: a ring of the last events of one hub and
// the idempotency keys seen within the TTL. Its epoch lives as long as the
// process (a hub survives reloads in Caddy's usage pool), so a restart makes
// every old cursor unrecoverable, and says so.
type MemoryLog struct {
	mu      sync.Mutex
	epoch   string
	size    int
	ttl     time.Duration
	now     func() time.Time
	deliver func(Cursor, []*Event)

	ring  []*Event // ring[(i) % cap] for the retained events, oldest at start
	start int      // index of the oldest retained event in ring
	count int      // number of retained events
	seq   uint64   // position of the last accepted event (0: none yet)
	floor uint64   // position of the last event dropped from history

	ids    map[string]idRecord
	idList []idEntry // insertion order, for expiry
}

type idRecord struct {
	channels []string
	cursors  []Cursor
	at       time.Time
}

type idEntry struct {
	id string
	at time.Time
}

// maxIDs bounds the idempotency keys kept in memory whatever the TTL; the
// oldest go first. Publishers are authenticated, so this only guards against
// a runaway script.
const maxIDs = 1 << 20

// NewMemoryLog returns an empty log keeping at most size events, none older
// than ttl.
func NewMemoryLog(size int, ttl time.Duration) *MemoryLog {
	l := &MemoryLog{epoch: NewEpoch(), now: time.Now, ids: make(map[string]idRecord)}
	l.SetRetention(size, ttl)
	return l
}

// Start implements Log.
func (l *MemoryLog) Start(deliver func(Cursor, []*Event)) error {
	l.mu.Lock()
	l.deliver = deliver
	l.mu.Unlock()
	return nil
}

// SetRetention implements Log. Shrinking drops the oldest events at once.
func (l *MemoryLog) SetRetention(size int, ttl time.Duration) {
	if size < 0 {
		size = 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ttl = ttl
	if size != len(l.ring) {
		ring := make([]*Event, size)
		keep := min(l.count, size)
		for i := 0; i < keep; i++ {
			ring[i] = l.at(l.count - keep + i)
		}
		if dropped := l.count - keep; dropped > 0 {
			l.floor = l.at(dropped - 1).Cursor.Pos.Hi
		}
		l.ring, l.start, l.count, l.size = ring, 0, keep, size
	}
	l.expire()
}

// at returns the i-th retained event, 0 being the oldest.
func (l *MemoryLog) at(i int) *Event { return l.ring[(l.start+i)%len(l.ring)] }

func (l *MemoryLog) cursor(seq uint64) Cursor {
	return Cursor{Epoch: l.epoch, Pos: Position{Hi: seq}}
}

// Append implements Log. Events are delivered before Append returns, under
// the log's lock, so delivery order is log order.
func (l *MemoryLog) Append(_ context.Context, pubs []*Publication) ([]Appended, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire()
	out := make([]Appended, len(pubs))
	var events []*Event
	for i, p := range pubs {
		if p.ID != "" {
			if rec, ok := l.ids[p.ID]; ok {
				out[i] = Appended{Channels: rec.channels, Cursors: rec.cursors, Duplicate: true}
				continue
			}
		}
		a := Appended{Channels: p.Channels, Cursors: make([]Cursor, len(p.Channels))}
		for j, ch := range p.Channels {
			l.seq++
			e := NewEvent(l.cursor(l.seq), ch, p, now)
			a.Cursors[j] = e.Cursor
			l.push(e)
			events = append(events, e)
		}
		if p.ID != "" {
			l.remember(p.ID, idRecord{channels: p.Channels, cursors: a.Cursors, at: now})
		}
		out[i] = a
	}
	if len(events) > 0 && l.deliver != nil {
		l.deliver(events[len(events)-1].Cursor, events)
	}
	return out, nil
}

func (l *MemoryLog) push(e *Event) {
	if len(l.ring) == 0 {
		l.floor = e.Cursor.Pos.Hi
		return
	}
	if l.count == len(l.ring) {
		l.floor = l.ring[l.start].Cursor.Pos.Hi
		l.ring[l.start] = nil
		l.start = (l.start + 1) % len(l.ring)
		l.count--
	}
	l.ring[(l.start+l.count)%len(l.ring)] = e
	l.count++
}

func (l *MemoryLog) remember(id string, r idRecord) {
	if len(l.idList) >= maxIDs {
		delete(l.ids, l.idList[0].id)
		l.idList = l.idList[1:]
	}
	l.ids[id] = r
	l.idList = append(l.idList, idEntry{id: id, at: r.at})
}

// expire drops events and idempotency keys older than the TTL.
func (l *MemoryLog) expire() {
	if l.ttl <= 0 {
		return
	}
	limit := l.now().Add(-l.ttl)
	for l.count > 0 && l.ring[l.start].Time.Before(limit) {
		l.floor = l.ring[l.start].Cursor.Pos.Hi
		l.ring[l.start] = nil
		l.start = (l.start + 1) % len(l.ring)
		l.count--
	}
	n := 0
	for n < len(l.idList) && l.idList[n].at.Before(limit) {
		delete(l.ids, l.idList[n].id)
		n++
	}
	// Reslicing keeps this O(expired): append moves the live keys to a new
	// array when the list next grows, and the dropped prefix is cleared so
	// it holds no strings meanwhile.
	clear(l.idList[:n])
	l.idList = l.idList[n:]
}

// Range implements Log.
func (l *MemoryLog) Range(_ context.Context, after, upTo Cursor, limit int, match func(string) bool) ([]*Event, Cursor, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire()
	if after.Epoch != l.epoch || after.Pos.Lo != 0 || after.Pos.Hi > l.seq || after.Pos.Hi < l.floor {
		return nil, after, false, nil
	}
	end := l.seq
	if upTo.Epoch == l.epoch && upTo.Pos.Hi < end {
		end = upTo.Pos.Hi
	}
	var out []*Event
	next := after.Pos.Hi
	if l.count > 0 {
		first := l.at(0).Cursor.Pos.Hi
		for seq := max(after.Pos.Hi+1, first); seq <= end; seq++ {
			if limit > 0 && len(out) >= limit {
				break
			}
			e := l.at(int(seq - first))
			if match == nil || match(e.Channel) {
				out = append(out, e)
			}
			next = seq
		}
	}
	if next < end && (limit <= 0 || len(out) < limit) {
		next = end
	}
	return out, l.cursor(max(next, after.Pos.Hi)), true, nil
}

// Head implements Log.
func (l *MemoryLog) Head(context.Context) (Cursor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cursor(l.seq), nil
}

// Epoch returns the log's epoch.
func (l *MemoryLog) Epoch() string { return l.epoch }

// Close implements Log.
func (l *MemoryLog) Close() error { return nil }

var _ Log = (*MemoryLog)(nil)
