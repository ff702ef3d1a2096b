package redis

import (
	"context"
	"fmt"

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
// in Redis (lua/lost.lua): a new epoch, marked lost, that begins after
// whatever the stream holds. Every node's reader sees the epoch change and
// the mark, and resyncs its clients (hub.GapReporter), whose cursors of
// the old epoch then resume with recovered:false. A node that saw nothing
// itself learns of the loss from the one that did.
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
func (l *Log) learn(epoch string, n int64, id hub.Position) {
	if epoch == "" || n < 0 {
		return
	}
	m := &mark{epoch: epoch, n: n, id: id}
	for {
		old := l.known.Load()
		if old != nil && old.epoch == epoch && old.n >= n {
			return
		}
		if l.known.CompareAndSwap(old, m) {
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
// lost, unless the epoch changed already. Only the fetcher calls it; a
// failure leaves it pending for its next round.
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
