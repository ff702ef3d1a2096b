package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Nodes: heartbeats, the sweep for dead nodes and reaping them, goodbye.
//
// A node's heartbeat sets its expiry to Redis's clock plus presence_ttl,
// every presence_ttl/3, so a node is taken for dead between 2/3 and all of
// presence_ttl after its last beat. Between beats each node sweeps more
// often (sweepEvery: at most half the leave delay, at most a second), and
// a survivor that finds a dead node takes its holds away (the hold script
// in "reap" mode, in batches): so a dead node's members are removed within
// presence_ttl plus the leave delay of its death, each once, whichever
// survivors reap. A node wrongly taken for dead (a long pause, a partition)
// learns it from its next script ("reaped") and registers again: its
// members are then announced again.

// beatReply is the beat script's answer.
type beatReply struct {
	status string // ok, or reaped: others took this node for dead
	epoch  string
	n      int64
	last   hub.Position
	holds  int64 // the node's member holds and channels in Redis
	dead   []string
}

// maxDeadListed is how many dead nodes one sweep lists.
const maxDeadListed = 16

// beat runs the beat script in mode (register, beat, bye, sweep); life is
// the node's life from now (the TTL, or the leave delay for bye).
func (p *presence) beat(ctx context.Context, mode string, life time.Duration) (*beatReply, error) {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	keys := []string{p.meta, p.stream, p.nodes, p.hooks, p.holdsOf(p.node), p.chansOf(p.node)}
	res, err := beatScript.Run(ctx, p.l.rdb, keys, "0", hub.NewEpoch(), changeStreamLen, webhookStreamLen,
		p.node, mode, max(life.Milliseconds(), 0), maxDeadListed).Slice()
	received := time.Now()
	if err != nil {
		return nil, fmt.Errorf("redis presence: %w", err)
	}
	if len(res) != 9 {
		return nil, fmt.Errorf("redis presence: unexpected heartbeat reply of %d items", len(res))
	}
	r := &beatReply{status: str(res[0]), epoch: str(res[1])}
	r.n, _ = strconv.ParseInt(str(res[2]), 10, 64)
	if r.last, err = parseID(str(res[3])); err != nil {
		return nil, err
	}
	p.l.clock.observe(redisTime(res[4], res[5]), received)
	members, _ := res[6].(int64)
	chans, _ := res[7].(int64)
	r.holds = members + chans
	for _, d := range asSlice(res[8]) {
		if s := str(d); s != "" && s != p.node {
			r.dead = append(r.dead, s)
		}
	}
	return r, nil
}

// asSlice is a reply item as a list (nil if it is none).
func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// sweepEvery is how often a node looks for dead nodes: half the leave
// delay, between 100 ms and a second, and at least three times a TTL.
func sweepEvery(s *presenceSettings) time.Duration {
	d := min(max(s.leave/2, 100*time.Millisecond), time.Second)
	return min(d, max(s.ttl/3, 100*time.Millisecond))
}

// keep is the keeper, a goroutine: it registers the node when that is
// due, beats, sweeps for dead nodes and reaps them, and checks that Redis
// has as many holds of this node as the node thinks.
func (p *presence) keep() {
	defer p.l.wg.Done()
	ctx := p.l.ctx
	fails := 0
	var nextBeat time.Time
	for ctx.Err() == nil {
		s := p.settings.Load()
		wait := sweepEvery(s)
		p.mu.Lock()
		due, up, epoch := p.due, p.up, p.epoch
		p.mu.Unlock()
		switch {
		case due:
			if err := p.registerUnlessStopped(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				if fails++; fails == 1 || !p.outage(err) {
					p.log.Warn("redis presence: registering this node", zap.Error(err))
				}
				if p.outage(err) {
					p.down(err)
				}
				wait = p.backoff(fails)
				break
			}
			fails = 0
			nextBeat = time.Now().Add(s.ttl / 3)
		case up:
			if p.beatOnce(ctx, s, epoch, &nextBeat) {
				continue // a registration is due at once
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-time.After(wait):
		}
	}
}

// beatOnce beats (when it is time) or sweeps, and reaps the dead nodes it
// finds. It reports whether a registration became due.
func (p *presence) beatOnce(ctx context.Context, s *presenceSettings, epoch string, nextBeat *time.Time) bool {
	mode := "sweep"
	if !time.Now().Before(*nextBeat) {
		mode = "beat"
	}
	quiet := p.inflight.Load() == 0
	done := p.finished.Load()
	p.beating.Lock()
	if p.isStopped() {
		p.beating.Unlock()
		return false
	}
	r, err := p.beat(ctx, mode, s.ttl)
	p.beating.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		if p.outage(err) {
			p.down(err)
		} else {
			p.log.Warn("redis presence: heartbeat", zap.Error(err))
		}
		return false
	}
	if mode == "beat" {
		*nextBeat = time.Now().Add(s.ttl / 3)
	}
	switch {
	case r.status == "reaped":
		p.log.Warn("redis presence: the other nodes took this one for dead (its heartbeat expired); registering again")
		p.registerSoon()
		return true
	case r.epoch != epoch:
		p.registerSoon()
		return true
	}
	p.learn(r.epoch, r.n, r.last)
	if mode == "beat" && quiet && p.inflight.Load() == 0 && p.finished.Load() == done {
		// No call ran during the beat: Redis must have exactly what this
		// node registered. A failover that lost some of it, or an
		// operation applied past what its fence could see, shows here.
		p.mu.Lock()
		want := int64(len(p.held) + len(p.occupied))
		p.mu.Unlock()
		if r.holds != want {
			p.log.Warn("redis presence: Redis has other holds of this node than it registered; registering again",
				zap.Int64("redis", r.holds), zap.Int64("node", want))
			p.registerSoon()
			return true
		}
	}
	for _, d := range r.dead {
		p.reap(ctx, d, s.hooks)
	}
	return false
}

// registerUnlessStopped registers the node, unless it said goodbye.
func (p *presence) registerUnlessStopped(ctx context.Context) error {
	p.beating.Lock()
	defer p.beating.Unlock()
	if p.isStopped() {
		return nil
	}
	return p.register(ctx)
}

// isStopped reports whether the node said goodbye.
func (p *presence) isStopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// maxReapRounds bounds the batches one sweep reaps of one dead node; the
// next sweep goes on.
const maxReapRounds = 64

// reap takes a dead node's holds away, in batches: each member no other
// node holds is removed (and announced) once, whichever survivors reap,
// and each channel no other node has subscribers of is vacated. The node
// leaves the nodes' set with its last hold.
func (p *presence) reap(ctx context.Context, dead string, hooks hub.WebhookSet) {
	removed := 0
	for round := 0; round < maxReapRounds && ctx.Err() == nil; round++ {
		rctx, cancel := context.WithTimeout(ctx, presenceTimeout)
		pipe := p.l.rdb.Pipeline()
		nu := pipe.SRandMemberN(rctx, p.holdsOf(dead), holdBatch)
		oc := pipe.SRandMemberN(rctx, p.chansOf(dead), holdBatch/4)
		_, err := pipe.Exec(rctx)
		cancel()
		if err != nil && !errors.Is(err, goredis.Nil) {
			p.log.Warn("redis presence: reaping a dead node", zap.String("node", dead), zap.Error(err))
			return
		}
		var ops []holdOp
		for _, e := range nu.Val() {
			c, u, _ := strings.Cut(e, "\n")
			ops = append(ops, holdOp{kind: 'l', channel: c, user: u})
		}
		for _, c := range oc.Val() {
			ops = append(ops, holdOp{kind: 'v', channel: c})
		}
		r, err := p.runHoldPart(ctx, dead, "reap", ops, hooks)
		if err != nil {
			p.log.Warn("redis presence: reaping a dead node", zap.String("node", dead), zap.Error(err))
			return
		}
		if r.status != "ok" {
			return // it beat again meanwhile
		}
		for _, o := range r.ops {
			if o.status == "removed" {
				removed++
			}
		}
		p.learn(r.epoch, r.n, r.last)
		if r.left == 0 {
			p.log.Info("redis presence: a node stopped beating; its holds were taken away",
				zap.String("node", dead), zap.Int("members_removed", removed))
			return
		}
	}
}

// goodbye tells Redis that this node stops: its heartbeat expires after
// the leave delay, so that its members leave then, unless they joined
// elsewhere meanwhile (a rolling restart announces nothing for clients that
// reconnect), and its webhook leases go to the other nodes at once. The
// log's Close calls it before closing the client.
func (p *presence) goodbye() {
	p.beating.Lock() // no heartbeat after it
	defer p.beating.Unlock()
	p.mu.Lock()
	say := p.started && !p.stopped && p.up
	p.stopped = true
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if say {
		if _, err := p.beat(ctx, "bye", p.settings.Load().leave); err != nil {
			p.log.Warn("redis presence: saying goodbye", zap.Error(err))
		}
	}
	p.l.whq.release(ctx)
}
