package redis

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// The append fence. An append that the node gave up on (its caller was
// answered with an error) must never appear later, yet its script may sit in
// a stalled Redis's socket buffer and run when Redis wakes, even after the
// node closed the connection. So every append carries a fence, a time of
// Redis's own clock, and the script applies nothing when Redis's clock is
// at or past it (it answers FENCED). The script reads the clock before its
// first write and again after its last entry, taking back what it added
// when the second reading is late (Redis paused in the middle of it). The
// fence is the group's deadline less fenceMargin, translated into Redis's
// clock, so that an append Redis runs in time is normally answered before
// the node gives up.
//
// The translation uses TIME replies: a reply read at local time r that says
// Redis's clock was R when Redis ran the command proves that Redis's clock
// minus the local one is at least R - r (the command ran before r). The
// node keeps the largest such bound seen in the last one or two windows of
// clockWindow, from the read script (sync, Range), the fetcher's TIME after
// each XREAD and every append reply, including a refusal. Local times are
// monotonic, so a step of the node's wall clock does not move the fence.
//
// What the fence cannot close: an append whose second clock reading was in
// time but whose reply reached the node after the deadline, that is more
// than fenceMargin later (Redis stalling between the end of the script and
// writing its reply, a network that delays or loses the reply, the node
// itself paused). The publisher then got an error for an event that is
// delivered. Retrying with the same id is answered duplicate and delivers
// nothing twice. A step of Redis's clock backwards between the node's
// clock reading and the append moves the fence later by that step, for at
// most two windows.

// fenceMargin is how long before the group's deadline the fence is: the
// time an applied append's reply has to reach the node. When less than
// fenceMargin+fenceMinRun is left (a caller's short deadline, or calls that
// waited behind a stalled group), Redis gets a quarter of the time left, at
// most fenceMinRun, to run the script, and the reply the rest.
const (
	fenceMargin = 500 * time.Millisecond
	fenceMinRun = 50 * time.Millisecond
)

// clockWindow is how long a clock sample stays the best one: the bound is
// the best sample of the current and the previous window, so that a sample
// taken from a slow reply does not stay the estimate, and drift stays
// negligible.
const clockWindow = 10 * time.Second

// clockSample is one TIME reply: Redis's clock, and when the reply was read
// here (with the monotonic reading).
type clockSample struct {
	redis time.Time
	local time.Time
}

// better reports whether s proves a larger offset (Redis minus local) than o.
func (s *clockSample) better(o *clockSample) bool {
	return s.redis.Sub(o.redis) > s.local.Sub(o.local)
}

// clockState is the best sample of the current window (since) and of the
// previous one. It is replaced, never changed.
type clockState struct {
	cur, prev *clockSample
	since     time.Time
}

// redisClock estimates Redis's clock from TIME replies. Any goroutine may
// observe; it takes no lock.
type redisClock struct {
	state atomic.Pointer[clockState]
}

// observe records that Redis's clock read redis in a reply read at local.
func (c *redisClock) observe(redis, local time.Time) {
	if redis.Unix() <= 0 {
		return
	}
	s := clockSample{redis: redis, local: local}
	for {
		old := c.state.Load()
		var prev *clockSample
		since := local
		if old != nil {
			switch {
			case local.Sub(old.since) >= clockWindow:
				prev = old.cur // a new window
			case !s.better(old.cur):
				return // the common case: nothing allocated
			default:
				prev, since = old.prev, old.since
			}
		}
		cur := s
		if c.state.CompareAndSwap(old, &clockState{cur: &cur, prev: prev, since: since}) {
			return
		}
	}
}

// best returns the sample proving the largest offset, nil if none.
func (c *redisClock) best() *clockSample {
	st := c.state.Load()
	if st == nil {
		return nil
	}
	if st.prev != nil && st.prev.better(st.cur) {
		return st.prev
	}
	return st.cur
}

// fence returns the fence of an append whose group must be answered by
// deadline, in milliseconds of Redis's clock; 0 (which refuses everything)
// when no sample is known yet.
func (c *redisClock) fence(now, deadline time.Time) int64 {
	b := c.best()
	if b == nil {
		return 0
	}
	left := max(deadline.Sub(now), 0)
	run := max(left-fenceMargin, min(left/4, fenceMinRun))
	at := b.redis.Add(now.Add(run).Sub(b.local))
	return max(at.UnixMilli(), 1)
}

// fenceBy returns the fence of a script that must be answered by deadline
// (see redisClock.fence), reading Redis's clock first when no reading is
// known yet (Redis was down at Start).
func (l *Log) fenceBy(ctx context.Context, deadline time.Time) (int64, error) {
	if l.clock.best() == nil {
		res, err := headScript.Run(ctx, l.rdb, []string{l.meta}).Slice()
		if err != nil {
			return 0, fmt.Errorf("redis: reading the clock: %w", err)
		}
		h, err := decodeHead(res)
		if err != nil {
			return 0, err
		}
		l.clock.observe(h.now, time.Now())
	}
	if deadline.IsZero() {
		deadline = time.Now().Add(appendTimeout)
	}
	return l.clock.fence(time.Now(), deadline), nil
}

// observeFenced learns Redis's clock from a script's FENCED refusal.
func (l *Log) observeFenced(err error, received time.Time) {
	if f := strings.Fields(err.Error()); len(f) == 3 {
		l.clock.observe(redisTime(f[1], f[2]), received)
	}
}
