package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// The webhook queue in Redis: a stream per hub (P{H}:wh) that survives a
// node's crash. The presence scripts queue each event in the step that
// decides it, so an event is decided and queued once for the whole hub.
// For each target (a URL, by name) one node at a time sends: the holder of
// the target's lease (P{H}:whlease:<target>, a key that expires, renewed by
// its holder). The holder reads the events after the target's acknowledged
// position (P{H}:whpos), and acknowledges what the receiver took; when it
// dies, its lease expires and another node's sender, waiting for it,
// continues from the acknowledged position, so a target gets its events in
// order, at least once (the last batch of a dead sender again: same IDs).
//
// Bounds: the stream keeps at most webhookStreamLen events (MAXLEN ~ on
// each append: the oldest unsent go first), none older than
// webhookMaxAge (senders give up on those anyway), and none that every
// active target acknowledged. A target that acknowledged nothing for
// webhookMaxAge (no longer configured on any node) stops holding the
// stream back.
//
// An event's ID is the stream entry's, after the hub's webhook epoch (wid
// in the presence meta hash): stable while the event waits, unique even
// when Redis lost its data and begins again.

// webhookQueue is the Redis hub.WebhookQueue of one node of a hub.
type webhookQueue struct {
	l      *Log
	node   string
	stream string
	pos    string // P{H}:whpos
	lease  string // P{H}:whlease: + target
	meta   string
	period time.Duration // of a lease

	mu      sync.Mutex
	held    map[string]time.Time // targets whose lease this node holds -> when Redis last extended it
	renewer bool                 // the renewing goroutine runs
	trimmed map[string]bool      // targets told that events were trimmed unsent
}

// Webhook queue parameters.
const (
	// DefaultWebhookLease is how long a webhook sender's lease lasts
	// without renewal: how soon another node sends when it dies.
	DefaultWebhookLease = 15 * time.Second
	// webhookMaxAge is how long events stay queued at most: a sender
	// gives up on a batch an hour old, and the stream keeps some more.
	webhookMaxAge = time.Hour + 10*time.Minute
	// webhookWait is how long one wait for new events blocks in Redis.
	webhookWait = time.Second
)

func newWebhookQueue(l *Log, base, node string, period time.Duration) *webhookQueue {
	if period <= 0 {
		period = DefaultWebhookLease
	}
	return &webhookQueue{
		l:       l,
		node:    node,
		stream:  base + "wh",
		pos:     base + "whpos",
		lease:   base + "whlease:",
		meta:    base + "pmeta",
		period:  period,
		held:    make(map[string]time.Time),
		trimmed: make(map[string]bool),
	}
}

// Add implements hub.WebhookQueue: client events, queued atomically and
// fenced (an Add answered with an error is not queued later).
func (q *webhookQueue) Add(ctx context.Context, events []hub.WebhookEvent) error {
	if len(events) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	fence, err := q.l.fenceBy(ctx, deadline)
	if err != nil {
		return err
	}
	args := make([]any, 0, 3+6*len(events))
	args = append(args, fence, hub.NewEpoch(), webhookStreamLen)
	for _, e := range events {
		args = append(args, e.Name, e.Channel, e.UserID, e.Event, e.Data, e.SocketID)
	}
	err = whAddScript.Run(ctx, q.l.rdb, []string{q.meta, q.stream}, args...).Err()
	if err != nil && goredis.HasErrorPrefix(err, "FENCED") {
		q.l.observeFenced(err, time.Now())
		return errors.New("redis webhooks: Redis ran the add after its deadline and queued nothing")
	}
	if err != nil {
		return fmt.Errorf("redis webhooks: %w", err)
	}
	return nil
}

// Read implements hub.WebhookQueue. It returns only while this node holds
// the target's lease: it waits for the lease (another node sends
// meanwhile), then for events.
func (q *webhookQueue) Read(ctx context.Context, target string, limit int) ([]hub.WebhookEvent, error) {
	for {
		asked := time.Now()
		r, err := q.read(ctx, target, limit)
		if err != nil {
			return nil, err
		}
		if !r.held {
			q.setHeld(target, time.Time{})
			// Another node sends: try again when its lease would end,
			// or within a second (it may give it up sooner).
			wait := min(max(r.leaseLeft, 50*time.Millisecond), time.Second)
			wait = wait/2 + rand.N(wait/2+1)
			if !sleepCtx(ctx, wait) {
				return nil, ctx.Err()
			}
			continue
		}
		q.setHeld(target, asked)
		if r.trimmed {
			q.noteTrimmed(target)
		}
		if len(r.events) > 0 {
			return r.events, nil
		}
		if err := q.waitFor(ctx, r.top); err != nil {
			return nil, err
		}
	}
}

// readReply is the read script's answer.
type readReply struct {
	held      bool
	leaseLeft time.Duration
	events    []hub.WebhookEvent
	top       string // the stream's last entry ID ("" when empty)
	trimmed   bool   // events after the target's position were trimmed unsent
}

// read runs the read script: the lease, then the events.
func (q *webhookQueue) read(ctx context.Context, target string, limit int) (*readReply, error) {
	rctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	res, err := whReadScript.Run(rctx, q.l.rdb, []string{q.lease + target, q.pos, q.stream, q.meta},
		q.node, q.period.Milliseconds(), target, limit).Slice()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("redis webhooks: %w", err)
	}
	if len(res) == 2 {
		left, _ := res[1].(int64)
		return &readReply{leaseLeft: time.Duration(left) * time.Millisecond}, nil
	}
	if len(res) != 6 {
		return nil, fmt.Errorf("redis webhooks: unexpected reply of %d items", len(res))
	}
	r := &readReply{held: true, top: str(res[4])}
	wid, pos, first := str(res[1]), str(res[2]), str(res[3])
	if pos != "" && first != "" {
		p, err1 := parseID(pos)
		f, err2 := parseID(first)
		r.trimmed = err1 == nil && err2 == nil && p.Less(f)
	}
	for _, it := range asSlice(res[5]) {
		e, err := decodeWebhook(it, wid)
		if err != nil {
			return nil, err
		}
		r.events = append(r.events, e)
	}
	return r, nil
}

// decodeWebhook reads one webhook stream entry: {id, {n, name, c, channel,
// [u, user,] [e, event, d, data, s, socket]}}.
func decodeWebhook(r any, wid string) (hub.WebhookEvent, error) {
	item, ok := r.([]any)
	if !ok || len(item) != 2 {
		return hub.WebhookEvent{}, errors.New("redis webhooks: bad entry")
	}
	id := str(item[0])
	pos, err := parseID(id)
	if err != nil {
		return hub.WebhookEvent{}, err
	}
	e := hub.WebhookEvent{Pos: pos, ID: wid + "-" + id, Time: time.UnixMilli(int64(pos.Hi))}
	fields := asSlice(item[1])
	for i := 0; i+1 < len(fields); i += 2 {
		v := str(fields[i+1])
		switch str(fields[i]) {
		case "n":
			e.Name = v
		case "c":
			e.Channel = v
		case "u":
			e.UserID = v
		case "e":
			e.Event = v
		case "d":
			e.Data = v
		case "s":
			e.SocketID = v
		}
	}
	return e, nil
}

// waitFor waits, up to webhookWait, for an entry after top.
func (q *webhookQueue) waitFor(ctx context.Context, top string) error {
	if top == "" {
		top = "0-0"
	}
	wctx, cancel := context.WithTimeout(ctx, webhookWait+time.Second)
	defer cancel()
	xr := goredis.NewCmd(wctx, "XREAD", "COUNT", 1, "BLOCK", webhookWait.Milliseconds(), "STREAMS", q.stream, top)
	xr.SetFirstKeyPos(6)
	err := q.l.rdb.Process(wctx, xr)
	switch {
	case err == nil, errors.Is(err, goredis.Nil):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	// Redis is away: the sender logs it and retries.
	return fmt.Errorf("redis webhooks: %w", err)
}

// Ack implements hub.WebhookQueue. A position never moves back, so an
// acknowledgement that comes late (from a sender that lost its lease)
// does no harm.
func (q *webhookQueue) Ack(ctx context.Context, target string, upTo hub.Position) error {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	err := whAckScript.Run(ctx, q.l.rdb, []string{q.pos, q.stream}, target, formatID(upTo), webhookMaxAge.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("redis webhooks: %w", err)
	}
	return nil
}

// Forget implements hub.WebhookQueue: this node no longer sends to target,
// so it lets another node that does have the lease. The position stays:
// other nodes may still send to it; it stops holding the stream back once
// nobody acknowledges for it.
func (q *webhookQueue) Forget(ctx context.Context, target string) error {
	q.mu.Lock()
	_, had := q.held[target]
	delete(q.held, target)
	q.mu.Unlock()
	if !had {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	return whLeaseScript.Run(ctx, q.l.rdb, []string{q.lease + target}, q.node, 0, "release").Err()
}

// Holds reports whether this node holds target's lease: a sender retrying
// a batch stops when it no longer does (another node sends).
func (q *webhookQueue) Holds(target string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.held[target]
	return ok
}

// setHeld records that this node holds target's lease, which Redis
// extended after asked, and starts the renewer; a zero asked records that
// it does not.
func (q *webhookQueue) setHeld(target string, asked time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if asked.IsZero() {
		delete(q.held, target)
		return
	}
	q.held[target] = asked
	if !q.renewer && q.l.ctx.Err() == nil {
		q.renewer = true
		q.l.wg.Add(1)
		go q.renew()
	}
}

// noteTrimmed logs, once per target, that events were trimmed before the
// target had them (the stream's bounds).
func (q *webhookQueue) noteTrimmed(target string) {
	q.mu.Lock()
	first := !q.trimmed[target]
	q.trimmed[target] = true
	q.mu.Unlock()
	if first {
		q.l.logger.Error("redis webhooks: events were trimmed from the queue before this target had them (the receiver was away longer than the queue's bounds)",
			zap.String("webhook", target))
	}
}

// renew extends the leases this node holds, every third of a lease, while
// its senders post (a batch may take minutes of retries). A lease found
// taken (it expired while Redis was away), or that could not be extended
// for a whole lease (Redis is away: another node may hold it by now), is
// let go, so that the sender stops.
func (q *webhookQueue) renew() {
	defer q.l.wg.Done()
	t := time.NewTicker(q.period / 3)
	defer t.Stop()
	for {
		select {
		case <-q.l.ctx.Done():
			return
		case <-t.C:
		}
		q.mu.Lock()
		targets := make([]string, 0, len(q.held))
		for target := range q.held {
			targets = append(targets, target)
		}
		q.mu.Unlock()
		for _, target := range targets {
			ctx, cancel := context.WithTimeout(q.l.ctx, presenceTimeout)
			asked := time.Now()
			ok, err := whLeaseScript.Run(ctx, q.l.rdb, []string{q.lease + target}, q.node, q.period.Milliseconds(), "renew").Int()
			cancel()
			switch {
			case err == nil && ok == 1:
				q.renewed(target, asked)
			case err == nil || q.expired(target, asked):
				q.l.logger.Warn("redis webhooks: the lease of a webhook target expired; another node sends now", zap.String("webhook", target))
				q.setHeld(target, time.Time{})
			}
		}
	}
}

// renewed records that Redis extended target's lease (asked at asked).
func (q *webhookQueue) renewed(target string, asked time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.held[target]; ok {
		q.held[target] = asked
	}
}

// expired reports whether target's lease, last extended when it was,
// has run out by now.
func (q *webhookQueue) expired(target string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	at, ok := q.held[target]
	return ok && now.Sub(at) >= q.period
}

// release gives up every lease this node holds, at a graceful stop, so
// that another node sends at once.
func (q *webhookQueue) release(ctx context.Context) {
	q.mu.Lock()
	targets := make([]string, 0, len(q.held))
	for target := range q.held {
		targets = append(targets, target)
	}
	clear(q.held)
	q.mu.Unlock()
	for _, target := range targets {
		_ = whLeaseScript.Run(ctx, q.l.rdb, []string{q.lease + target}, q.node, 0, "release").Err()
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var _ hub.WebhookQueue = (*webhookQueue)(nil)
