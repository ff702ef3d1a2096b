package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Acknowledged events that a failover lost. Redis replicates
// asynchronously: a primary that acknowledged an append (the publisher got
// 200) or served it to a reader (clients got it) can die before its
// replica received it, and the replica promoted in its place continues the
// same epoch without it. Appends go on there: the event numbers restart
// from the replica's count and new entries get later IDs, so a reader that
// only follows its position would carry on as if nothing happened, and the
// subscribers of a node that had not read the lost events yet would never
// learn that they missed them.
//
// So each node keeps a mark: the highest event of the epoch it knows Redis
// had, from its append replies and its reads. An event the primary had
// also had all events before it (a replica's data is a prefix of its
// primary's), so the mark stands for all of them. A Redis whose event
// count is below the mark, or whose entry with the mark's number has
// another ID, lost acknowledged events. The node that sees it declares it
// in Redis (lua/lost.lua): the stream goes on under a new epoch, marked
// lost. Every node's reader sees the epoch change and the mark, resyncs
// its clients (hub.GapReporter), whose cursors of the old epoch then
// resume with recovered:false, and goes on reading after its position,
// delivering what it had not read yet under the new epoch. A node that saw
// nothing itself learns of the loss from the one that did.
//
// What it cannot see: events acknowledged only to a node that died with
// the old primary, and an epoch that Redis itself lost (a restart without
// persistence begins a new epoch without the mark, as before).
// min_replicas_acked (WAIT) narrows the window instead of reporting it.

// mark is the highest event of an epoch a node knows Redis had: its number
// and entry ID. It is replaced, never changed.
type mark struct {
	epoch string
	n     int64
	id    hub.Position
}

// lostBy reports whether Redis, whose epoch has n events with the last at
// last, lost events of m.
func (m *mark) lostBy(epoch string, n int64, last hub.Position) bool {
	if m == nil || m.epoch != epoch || m.n <= 0 {
		return false
	}
	return n < m.n || n == m.n && last != m.id
}

// learn raises the node's mark to (epoch, n, id): a new epoch replaces it,
// the same epoch keeps the higher number.
func (l *Log) learn(epoch string, n int64, id hub.Position) { raise(&l.known, epoch, n, id) }

// raise raises a mark to (epoch, n, id): a new epoch replaces it, the same
// epoch keeps the higher number.
func raise(known *atomic.Pointer[mark], epoch string, n int64, id hub.Position) {
	if epoch == "" || n < 0 {
		return
	}
	m := &mark{epoch: epoch, n: n, id: id}
	for {
		old := known.Load()
		if old != nil && old.epoch == epoch && old.n >= n {
			return
		}
		if known.CompareAndSwap(old, m) {
			return
		}
	}
}

// suspectLoss records that Redis lost acknowledged events of epoch; the
// fetcher declares it (declarePending) before its next read.
func (l *Log) suspectLoss(epoch, why string) {
	if prev := l.lossIn.Swap(&epoch); prev == nil || *prev != epoch {
		l.logger.Error("redis backplane: Redis lost events it had acknowledged (a failover to a replica that had not received them?); starting a new epoch so that clients resume with recovered:false",
			zap.String("epoch", epoch), zap.String("seen", why))
	}
}

// declarePending declares a suspected loss in Redis: a new epoch, marked
// lost, unless the epoch changed already. The fetcher calls it before each
// read, and the appender when its append found the loss; a failure leaves
// it pending for the fetcher's next round.
func (l *Log) declarePending(ctx context.Context) error {
	p := l.lossIn.Load()
	if p == nil {
		return nil
	}
	fresh := hub.NewEpoch()
	cur, err := lostScript.Run(ctx, l.rdb, []string{l.stream, l.meta}, *p, fresh).Text()
	if err != nil {
		return fmt.Errorf("redis: declaring lost events: %w", err)
	}
	l.lossIn.CompareAndSwap(p, nil)
	if cur == fresh {
		l.lostEpochs.Add(1) // else another node declared it first
	}
	return nil
}

// LostEpochs returns how many times this node found that Redis had lost
// events it had acknowledged and began a new epoch for it.
func (l *Log) LostEpochs() int64 { return l.lostEpochs.Load() }

// Events delivered twice after a loss. A publish whose append the old
// primary ran, a node read and delivered, but the replica never received,
// may have been answered with an error (the primary died before its reply):
// the publisher retries it with its id, and the new primary, which has no
// idempotency key for it, appends it again. So the fetcher remembers the
// ids of the entries it read last, and when it finds (or learns of) a
// loss, it takes them all for possibly lost: a later entry with one of
// those ids is such a retry, and the node does not deliver it again (its
// clients had it). Taking ids for lost that were not is harmless: an id the
// new primary has is answered duplicate and never appended again. The
// memory lasts as long as an idempotency key.

// recentIDs is how many ids of entries read the fetcher remembers.
const recentIDs = 4096

// idMemory is the fetcher's memory of ids; only the fetcher (and Start,
// before the fetcher runs) touches it.
type idMemory struct {
	ring []string
	next int
	lost map[string]time.Time // id -> until when an entry with it is a retry
}

// read remembers the ids of entries.
func (m *idMemory) read(entries []entry) {
	if m.ring == nil {
		m.ring = make([]string, recentIDs)
	}
	for i := range entries {
		if id := entries[i].pub.ID; id != "" {
			m.ring[m.next] = id
			m.next = (m.next + 1) % len(m.ring)
		}
	}
}

// markLost takes every remembered id for possibly lost, until ttl from
// now, and forgets those whose time is over.
func (m *idMemory) markLost(now time.Time, ttl time.Duration) {
	if m.lost == nil {
		m.lost = make(map[string]time.Time)
	}
	for id, until := range m.lost {
		if now.After(until) {
			delete(m.lost, id)
		}
	}
	for _, id := range m.ring {
		if id != "" {
			m.lost[id] = now.Add(ttl)
		}
	}
}

// retried reports whether an entry with id repeats an event that this node
// delivered before a loss.
func (m *idMemory) retried(id string, now time.Time) bool {
	until, ok := m.lost[id]
	return ok && !now.After(until)
}

// markLost takes the ids the fetcher read last for possibly lost (see
// idMemory). Only the fetcher calls it.
func (l *Log) markLost() {
	ttl := time.Duration(l.ttl.Load())
	if ttl <= 0 {
		ttl = maxIDTTL
	}
	l.fIDs.markLost(time.Now(), ttl)
}

// Retries returns how many entries this node did not deliver because they
// repeated, after a failover lost the first, an event it had delivered.
func (l *Log) Retries() int64 { return l.retries.Load() }
