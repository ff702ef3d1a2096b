package redis

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// The reader has two halves, each its own goroutine: the fetcher reads the
// stream and the deliverer hands what it read to the hub, so that the
// fetcher is back in XREAD while events fan out.

// batch is what the fetcher hands the deliverer, in stream order: an
// optional move of the head (first contact, new epoch), then entries.
type batch struct {
	reset   bool
	gap     bool // the new epoch replaced one that lost acknowledged events
	epoch   string
	pos     hub.Position
	lastN   int64
	entries []entry
}

// sync learns the epoch. On the first success it starts delivery at the
// stream's end (catchUp: at the entries appended since Start); when the
// epoch changed (Redis lost its data) it moves to the new epoch's start.
// It returns the move to make, if any; only the fetcher calls it (and Start,
// before the fetcher runs).
func (l *Log) sync(ctx context.Context, catchUp bool) (*batch, error) {
	known := l.known.Load() // before the read: Redis had it by then
	s, err := l.read(ctx, nil, "+", 0, "")
	if err != nil {
		return nil, err
	}
	l.setUp()
	switch {
	case l.fEpoch == "":
		// Start at the stream's end. A node that started while Redis was
		// unreachable starts where it started instead (entry IDs are
		// times), so that it catches up with what other nodes appended
		// meanwhile, unless the clocks disagree so much that this would
		// skip entries.
		start, n := s.last, s.n
		if t := uint64(l.startedAt.UnixMilli()); catchUp && t > 0 {
			if from := (hub.Position{Hi: t}); from.Less(s.last) {
				start, n = from, -1
				if start.Less(s.floor) {
					start = s.floor
				}
				if start.Less(s.base) {
					start = s.base
				}
			}
		}
		l.fEpoch, l.fPos, l.fN = s.epoch, start, n
		l.learn(s.epoch, s.n, s.last)
		return &batch{reset: true, epoch: s.epoch, pos: start, lastN: n}, nil
	case l.fEpoch != s.epoch:
		// Redis lost its data (or our keys), or a node declared that a
		// failover lost acknowledged events (lost.go): a new epoch began
		// at its base. Deliver from there; the old epoch's cursors no
		// longer resume. After a declared loss this node's clients may
		// have missed events while connected: they resync.
		if s.lost != "" {
			l.markLost() // another node found the loss
			l.logger.Warn("redis backplane: acknowledged events were lost in a failover; new epoch, clients resync and old cursors resume with recovered:false",
				zap.String("old", l.fEpoch), zap.String("new", s.epoch))
		} else {
			l.logger.Warn("redis backplane: Redis lost the hub's stream; new epoch, old cursors will resume with recovered:false",
				zap.String("old", l.fEpoch), zap.String("new", s.epoch))
		}
		if s.lost == l.fEpoch {
			// The same stream under a new name: go on after our
			// position, so that what this node had not read yet is
			// delivered, under the new epoch.
			l.fEpoch = s.epoch
			l.learn(s.epoch, s.n, s.last)
			return &batch{reset: true, gap: true, epoch: s.epoch, pos: l.fPos, lastN: l.fN}, nil
		}
		l.fEpoch, l.fPos, l.fN = s.epoch, s.base, 0
		l.learn(s.epoch, s.n, s.last)
		return &batch{reset: true, gap: s.lost != "", epoch: s.epoch, pos: s.base, lastN: 0}, nil
	}
	// The same epoch after a reconnection: did it lose what this node
	// knew (a failover while the reader was away)?
	if known.lostBy(s.epoch, s.n, s.last) {
		l.markLost()
		l.suspectLoss(s.epoch, "the event count went back")
	}
	l.learn(s.epoch, s.n, s.last)
	return nil, nil
}

// errResync makes the fetcher check the epoch again at once.
var errResync = errors.New("redis: epoch changed")

// fetch is the reader's first half: it reads the stream after its position
// in batches with a blocking XREAD, checks the epoch with every read, and
// reconnects with capped, jittered backoff when Redis fails. It hands what
// it reads to the deliverer, so that it is back in XREAD while events fan
// out: a node is then normally handed an entry by Redis in the same moment
// as the publisher gets its answer.
func (l *Log) fetch(synced bool) {
	defer l.wg.Done()
	fails := 0
	for l.ctx.Err() == nil {
		var err error
		if !synced {
			var b *batch
			if b, err = l.sync(l.ctx, true); b != nil {
				l.enqueue(b)
			}
		}
		if err == nil {
			err = l.declare()
		}
		if err == nil {
			err = l.readStream()
		}
		synced = err == nil
		if errors.Is(err, errResync) {
			continue
		}
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			l.setDown(err)
			fails++
			d := min(l.backoffMin<<min(fails-1, 20), l.backoffMax)
			d = d/2 + rand.N(d/2+1) // jittered, never zero
			select {
			case <-l.reached: // an old token: Redis answered before this failure
			default:
			}
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(d):
			case <-l.reached: // an append went through: Redis is back
			}
			continue
		}
		fails = 0
		l.setUp()
	}
}

// declare declares a loss that this node suspects (lost.go).
func (l *Log) declare() error {
	if l.lossIn.Load() == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(l.ctx, appendTimeout)
	defer cancel()
	return l.declarePending(ctx)
}

// readStream waits (up to l.block) for entries after the fetcher's
// position and reads them in one XREAD, followed on the same connection by
// the head script (the current epoch, event count and last ID, and Redis's
// clock). XREAD goes through Do, so that its reply has the same shape as
// the scripts' XRANGE replies and one decoder reads both; its key position
// is set so that a cluster client sends it to the hub's slot.
func (l *Log) readStream() error {
	ctx, cancel := context.WithTimeout(l.ctx, l.block+time.Second)
	defer cancel()
	known := l.known.Load() // before the reads: Redis had it by then
	pipe := l.rdb.Pipeline()
	xr := goredis.NewCmd(ctx, "XREAD", "COUNT", l.batch, "BLOCK", l.block.Milliseconds(), "STREAMS", l.stream, formatID(l.fPos))
	xr.SetFirstKeyPos(6)
	_ = pipe.Process(ctx, xr)
	hd := headScript.Eval(ctx, pipe, []string{l.meta}) // runs when XREAD returns
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	res, err := hd.Slice()
	if err != nil {
		return err
	}
	h, err := decodeHead(res)
	if err != nil {
		return err
	}
	l.clock.observe(h.now, time.Now())
	if h.epoch != l.fEpoch {
		// Read after the entries: if it is still ours, they are ours.
		return errResync
	}
	lost := known.lostBy(h.epoch, h.n, h.last)
	if lost {
		l.markLost()
		l.suspectLoss(h.epoch, "the event count went back")
	}
	reply, err := xr.Result()
	if errors.Is(err, goredis.Nil) {
		return nil // nothing new within l.block
	}
	if err != nil {
		return err
	}
	entries, err := decodeXRead(reply)
	if err != nil || len(entries) == 0 {
		return err
	}
	if first := entries[0].n; l.fN >= 0 && first <= l.fN && !lost {
		lost = true
		l.markLost()
		l.suspectLoss(l.fEpoch, "an entry numbered at or below one read before")
	}
	if known != nil && known.epoch == l.fEpoch && !lost {
		for i := range entries {
			if e := &entries[i]; e.n == known.n && e.pos != known.id {
				l.markLost()
				l.suspectLoss(l.fEpoch, "another entry under a number read or appended before")
				break
			}
		}
	}
	now := time.Now()
	for i := range entries {
		if e := &entries[i]; e.pub.ID != "" && l.fIDs.retried(e.pub.ID, now) {
			e.skip = true
			l.retries.Add(1)
		}
	}
	l.fIDs.read(entries)
	last := &entries[len(entries)-1]
	l.fPos, l.fN = last.pos, last.n
	l.learn(l.fEpoch, last.n, last.pos)
	l.enqueue(&batch{epoch: l.fEpoch, entries: entries})
	return nil
}

// enqueue hands a batch to the deliverer, waiting while too much is queued.
func (l *Log) enqueue(b *batch) {
	select {
	case l.batches <- b:
	case <-l.ctx.Done():
	}
}

// deliverLoop is the reader's second half: it delivers the fetched batches
// to the hub, in order, and reports gaps.
func (l *Log) deliverLoop() {
	defer l.wg.Done()
	for {
		select {
		case b := <-l.batches:
			l.apply(b)
		case <-l.ctx.Done():
			return
		}
	}
}

// apply delivers one batch. The deliverer calls it (and Start, before the
// deliverer runs), with l.mu held while the hub is handed the events, so
// that Head never runs ahead of what the hub has.
func (l *Log) apply(b *batch) {
	var events []*hub.Event
	if len(b.entries) > 0 {
		events = make([]*hub.Event, 0, len(b.entries))
		for i := range b.entries {
			if !b.entries[i].skip {
				events = append(events, b.entries[i].event(b.epoch))
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if b.reset {
		l.moveLocked(b.epoch, b.pos)
		l.lastN = b.lastN
		if b.gap {
			l.gapLocked(-1)
		}
		if l.deliver != nil {
			l.deliver(l.headLocked(), nil)
		}
	}
	if len(b.entries) == 0 || b.epoch != l.epoch {
		return
	}
	if first := b.entries[0].n; l.lastN >= 0 && first != l.lastN+1 {
		// Entries after our position were trimmed before we read them
		// (or, numbered back, a failover lost some): this node's
		// subscribers can never get them.
		if first > l.lastN {
			l.logger.Error("redis backplane: events were trimmed from the stream before this node read them; closing its sessions so that clients resume",
				zap.Int64("missed", first-l.lastN-1))
		}
		l.gapLocked(first - l.lastN - 1)
	}
	l.lastN = b.entries[len(b.entries)-1].n
	l.moveLocked(b.epoch, b.entries[len(b.entries)-1].pos)
	if l.deliver != nil {
		l.deliver(l.headLocked(), events)
	}
}

// gapLocked reports that this node's subscribers may have missed events:
// the hub closes its sessions so that clients resume from their cursors.
// l.mu is held, and the hub's handler runs before the events after the gap
// are delivered, so that none of them reaches a session of before the gap
// (hub.GapReporter: it takes only the hub's lock, which comes after l.mu).
func (l *Log) gapLocked(missed int64) {
	l.gaps.Add(1)
	if missed <= 0 {
		l.logger.Error("redis backplane: a failover lost acknowledged events; closing this node's sessions so that clients resume")
	}
	if f := l.onGap; f != nil {
		f()
	}
}
