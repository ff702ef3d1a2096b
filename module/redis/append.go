package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// appendCall is one Append waiting for the appender.
type appendCall struct {
	ctx  context.Context
	pubs []*hub.Publication
	out  []hub.Appended
	err  error
	done chan struct{} // closed by the appender when out or err is set
}

// maxGroup bounds the publications the appender sends in one script.
const maxGroup = 512

// appendTimeout bounds how long an Append waits when its caller set no
// deadline: a publisher gets 503 within 2 s rather than hanging while Redis
// is away.
const appendTimeout = 2 * time.Second

// Append implements hub.Log. Concurrent calls are grouped: the appender
// sends every call waiting into one script (group commit), so that Redis
// runs one script per round trip rather than one per publish under load.
// Each call stays all or nothing: one script is atomic.
func (l *Log) Append(ctx context.Context, pubs []*hub.Publication) ([]hub.Appended, error) {
	if len(pubs) == 0 {
		return nil, nil
	}
	if !l.running.Load() {
		return nil, errors.New("redis append: log not started or closed")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, appendTimeout)
		defer cancel()
	}
	c := &appendCall{ctx: ctx, pubs: pubs, done: make(chan struct{})}
	select {
	case l.calls <- c:
	case <-ctx.Done():
		// Never handed over: nothing was published.
		return nil, fmt.Errorf("redis append: %w", ctx.Err())
	case <-l.ctx.Done():
		return nil, hub.ErrClosed
	}
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
		return nil, fmt.Errorf("redis append: %w", ctx.Err())
	}
}

// appender sends the Append calls to Redis, grouped: it takes one call,
// then every call already waiting, up to maxGroup publications.
func (l *Log) appender() {
	defer l.wg.Done()
	var next *appendCall // received, for the next group
	defer func() {
		if next != nil {
			next.err = hub.ErrClosed
			close(next.done)
		}
	}()
	for {
		if next == nil {
			select {
			case next = <-l.calls:
			case <-l.ctx.Done():
				return
			}
		}
		var calls []*appendCall
		n := 0
		for next != nil {
			c := next
			if len(calls) > 0 && n+len(c.pubs) > maxGroup {
				break // the next group's first call
			}
			next = nil
			if c.ctx.Err() == nil { // else its caller has given up: do not publish it
				calls = append(calls, c)
				n += len(c.pubs)
			}
			select {
			case next = <-l.calls:
			default:
			}
		}
		if len(calls) > 0 {
			l.runGroup(calls)
		}
	}
}

// runGroup appends the publications of several calls in one script, by
// the earliest of their deadlines (every call has one: Append sees to it).
func (l *Log) runGroup(calls []*appendCall) {
	var deadline time.Time
	for _, c := range calls {
		if d, ok := c.ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
			deadline = d
		}
	}
	if deadline.IsZero() {
		deadline = time.Now().Add(appendTimeout)
	}
	ctx, cancel := context.WithDeadline(l.ctx, deadline)
	defer cancel()
	var pubs []*hub.Publication
	if len(calls) == 1 {
		pubs = calls[0].pubs
	} else {
		for _, c := range calls {
			pubs = append(pubs, c.pubs...)
		}
	}
	out, err := l.appendPubs(ctx, deadline, pubs)
	for _, c := range calls {
		if err != nil {
			c.err = err
		} else {
			c.out, out = out[:len(c.pubs):len(c.pubs)], out[len(c.pubs):]
		}
		close(c.done)
	}
}

// errFenced is the answer to an append that Redis refused because it ran
// the script after its fence: nothing of it was applied.
var errFenced = errors.New("redis append: Redis ran the append after its deadline and applied nothing")

// appendPubs runs the append script, fenced so that Redis applies nothing
// once the node may have given up on it (see fence.go).
func (l *Log) appendPubs(ctx context.Context, deadline time.Time, pubs []*hub.Publication) ([]hub.Appended, error) {
	if l.clock.best() == nil {
		// No clock reading yet (Redis was down at Start): learn the clock
		// of the hub's node first, so that the script has a fence.
		res, err := headScript.Run(ctx, l.rdb, []string{l.meta}).Slice()
		if err != nil {
			return nil, fmt.Errorf("redis append: %w", err)
		}
		h, err := decodeHead(res)
		if err != nil {
			return nil, fmt.Errorf("redis append: %w", err)
		}
		l.clock.observe(h.now, time.Now())
	}
	keys := []string{l.stream, l.meta}
	size, ttl := l.size.Load(), time.Duration(l.ttl.Load())
	idTTL := ttl
	if idTTL <= 0 {
		idTTL = maxIDTTL
	}
	maxAge := int64(0)
	if ttl > 0 {
		maxAge = (ttl + ageGrace).Milliseconds()
	}
	args := make([]any, 0, 6+len(pubs)*9)
	args = append(args, l.clock.fence(time.Now(), deadline), hub.NewEpoch(), size+readerSlack, maxAge, max(idTTL.Milliseconds(), 1), len(pubs))
	for _, p := range pubs {
		if p.ID != "" {
			keys = append(keys, l.idKey+p.ID)
		}
		args = append(args, p.ID, len(p.Channels))
		for _, ch := range p.Channels {
			args = append(args, ch)
		}
		args = append(args, p.Type, string(p.Payload), p.Timestamp, p.Exclude, p.UserID)
	}
	known := l.known.Load() // before the script: Redis had it by then
	res, err := l.runAppend(ctx, deadline, keys, args)
	received := time.Now()
	if err != nil && goredis.HasErrorPrefix(err, "FENCED") {
		if f := strings.Fields(err.Error()); len(f) == 3 {
			l.clock.observe(redisTime(f[1], f[2]), received)
		}
		return nil, errFenced
	}
	if err != nil && res == nil {
		return nil, fmt.Errorf("redis append: %w", err)
	}
	if len(res) != len(pubs)+5 {
		return nil, fmt.Errorf("redis append: unexpected reply of %d items", len(res))
	}
	epoch, _ := res[0].(string)
	l.clock.observe(redisTime(res[1], res[2]), received)
	if n, perr := strconv.ParseInt(str(res[3]), 10, 64); perr == nil {
		if last, perr := parseID(str(res[4])); perr == nil {
			if known.lostBy(epoch, n, last) {
				// Declared at once, so that few appends land in the
				// epoch that lost events; the fetcher retries a failure.
				l.suspectLoss(epoch, "an append answered with an event count below one read or appended before")
				_ = l.declarePending(ctx)
			}
			l.learn(epoch, n, last)
		}
	}
	select {
	case l.reached <- struct{}{}:
	default:
	}
	if err != nil {
		return nil, err // applied, but not confirmed by enough replicas
	}
	res = res[5:]
	out := make([]hub.Appended, len(pubs))
	for i, p := range pubs {
		r, ok := res[i].([]any)
		if !ok || len(r) < 1 {
			return nil, errors.New("redis append: unexpected reply")
		}
		if dup, _ := r[0].(int64); dup == 1 {
			rec, _ := r[1].(string)
			a, err := parseRecord(rec)
			if err != nil {
				return nil, err
			}
			out[i] = a
			continue
		}
		if len(r) != len(p.Channels)+1 {
			return nil, errors.New("redis append: unexpected reply")
		}
		a := hub.Appended{Channels: p.Channels, Cursors: make([]hub.Cursor, len(p.Channels))}
		for j := range p.Channels {
			pos, err := parseID(str(r[j+1]))
			if err != nil {
				return nil, err
			}
			a.Cursors[j] = hub.Cursor{Epoch: epoch, Pos: pos}
		}
		out[i] = a
	}
	return out, nil
}
