package hub

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryWebhookQueue is the in-memory WebhookQueue: the events of one node,
// bounded (the oldest go first, counted), lost when the process ends.
type MemoryWebhookQueue struct {
	mu      sync.Mutex
	epoch   string // makes IDs unique across restarts
	seq     uint64
	events  []WebhookEvent // oldest first; events[i].Pos.Hi increases
	acked   map[string]uint64
	wake    chan struct{} // closed when events are added
	cap     int
	dropped *atomic.Int64
	now     func() time.Time
}

// DefaultWebhookQueueSize is how many events an in-memory queue keeps.
const DefaultWebhookQueueSize = 10000

// NewMemoryWebhookQueue returns a queue keeping at most size events;
// dropped, when not nil, counts the events it had to drop unsent.
func NewMemoryWebhookQueue(size int, dropped *atomic.Int64) *MemoryWebhookQueue {
	if size <= 0 {
		size = DefaultWebhookQueueSize
	}
	if dropped == nil {
		dropped = new(atomic.Int64)
	}
	return &MemoryWebhookQueue{epoch: NewEpoch(), acked: make(map[string]uint64), wake: make(chan struct{}), cap: size, dropped: dropped, now: time.Now}
}

// Add implements WebhookQueue.
func (q *MemoryWebhookQueue) Add(_ context.Context, events []WebhookEvent) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range events {
		q.addLocked(e)
	}
	return nil
}

// addLocked queues one event, giving it its position, ID and time.
func (q *MemoryWebhookQueue) addLocked(e WebhookEvent) {
	q.seq++
	e.Pos = Position{Hi: q.seq}
	e.ID = q.epoch + "-" + strconv.FormatUint(q.seq, 10)
	if e.Time.IsZero() {
		e.Time = q.now()
	}
	if len(q.events) >= q.cap {
		q.events[0] = WebhookEvent{}
		q.events = q.events[1:]
		q.dropped.Add(1)
	}
	q.events = append(q.events, e)
	close(q.wake)
	q.wake = make(chan struct{})
}

// Read implements WebhookQueue.
func (q *MemoryWebhookQueue) Read(ctx context.Context, target string, max int) ([]WebhookEvent, error) {
	for {
		q.mu.Lock()
		after, ok := q.acked[target]
		if !ok {
			q.acked[target] = 0
		}
		var out []WebhookEvent
		for _, e := range q.events {
			if e.Pos.Hi > after {
				out = append(out, e)
				if len(out) == max {
					break
				}
			}
		}
		wake := q.wake
		q.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ack implements WebhookQueue. Events every target has are let go.
func (q *MemoryWebhookQueue) Ack(_ context.Context, target string, upTo Position) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if upTo.Hi > q.acked[target] {
		q.acked[target] = upTo.Hi
	}
	q.trimLocked()
	return nil
}

// Forget implements WebhookQueue.
func (q *MemoryWebhookQueue) Forget(_ context.Context, target string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.acked, target)
	q.trimLocked()
	return nil
}

// trimLocked drops the events that every target has acknowledged.
func (q *MemoryWebhookQueue) trimLocked() {
	if len(q.acked) == 0 {
		return
	}
	low := ^uint64(0)
	for _, a := range q.acked {
		low = min(low, a)
	}
	n := 0
	for n < len(q.events) && q.events[n].Pos.Hi <= low {
		q.events[n] = WebhookEvent{}
		n++
	}
	q.events = q.events[n:]
	if len(q.events) == 0 {
		q.events = nil // give back a large burst's array
	}
}

// Len returns how many events the queue keeps.
func (q *MemoryWebhookQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}

var _ WebhookQueue = (*MemoryWebhookQueue)(nil)
