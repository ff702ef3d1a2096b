package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Presence on Redis: the hub.PresenceStore of every node of a hub. Redis
// decides; each node tells it only what it starts or stops holding (the
// hub calls Join and Leave on node-level transitions), and a Lua script
// (lua/hold.lua) decides atomically what that changes for the whole hub:
// Redis counts, per channel and user, the nodes that hold the user, so the
// first node's join adds the member and the last node's leave removes it,
// whichever nodes they are, exactly once. The same script appends the
// change to the presence change stream, with a position, and queues its
// webhook: decided and queued in one step.
//
// Keys, besides the event stream's (P is the prefix, H the hub, N a node;
// one hash tag, so one cluster slot, per hub):
//
//	P{H}:pmeta     epoch, n (changes in the epoch), last (its last change's
//	               ID), wid (names webhook IDs)
//	P{H}:ps        the change stream: k (a added, r removed), c, u, i (the
//	               info of an added member), n (the change's number), m
//	               (the channel's members after it)
//	P{H}:pm:<c>    the members of c: user -> "<join ID> <info>"
//	P{H}:pn:<c>    the holders of c: user -> how many nodes hold the user
//	P{H}:nu:<N>    what N holds: "<channel>\n<user>"
//	P{H}:occ       occupied channels: channel -> nodes with subscribers
//	P{H}:oc:<N>    the channels N has subscribers of
//	P{H}:nodes     node -> when its heartbeat expires (ms of Redis's clock)
//	P{H}:wh        the webhook events (webhooks.go)
//	P{H}:whpos     target -> its acknowledged position
//	P{H}:whlease:<target>   the node sending to target
//
// occ and oc:<N> are kept only while occupancy webhooks are on.
//
// Nodes beat every presence_ttl/3 (lua/beat.lua) and sweep for dead nodes
// more often (presence_nodes.go); a survivor takes a dead node's holds away
// with the same script, which removes the members no other node holds,
// each once however many survivors do it. A node that stops gracefully
// says goodbye: its heartbeat then expires after the leave delay, so its
// clients that reconnected elsewhere meanwhile are never seen leaving.
//
// Every node reads the change stream (presence_reader.go) and delivers the
// changes to its hub in stream order; a snapshot (lua/snapshot.lua) is as
// of the stream's last change, so a mirror applies exactly the changes
// after it. When Redis cannot be reached, the node decides alone
// (presence_outage.go) and registers what it holds again when Redis is
// back, as it does when Redis lost its data (a new epoch), when other nodes
// took it for dead, or when a failover lost changes it had seen.

// presence is the Redis hub.PresenceStore of one node of a hub.
type presence struct {
	l    *Log
	node string // this node: host/pid/random, unique per log
	log  *zap.Logger

	// Keys. pm:, pn:, nu:, oc: take a channel or a node.
	meta, stream, nodes, hooks, occ, base string

	settings atomic.Pointer[presenceSettings]

	// calls is held for reading by every store call that registers or
	// lets go of something, and for writing by a registration, so that
	// what the hub holds (Held) and what Redis has can be compared with
	// no call under way.
	calls sync.RWMutex
	// inflight and finished are the calls to Redis under way and done,
	// for the heartbeat's check of the node's holds.
	inflight atomic.Int64
	finished atomic.Uint64

	known atomic.Pointer[mark] // highest change this node knows Redis had
	wake  chan struct{}        // wakes the keeper
	// beating is held across a heartbeat or a registration, and by
	// goodbye, so that no heartbeat lands after the goodbye.
	beating sync.Mutex

	// mu guards what follows; the hub's Deliver and Resync are called
	// under it (mu comes before every lock of the hub).
	mu         sync.Mutex
	pn         hub.PresenceNode
	started    bool
	stopped    bool
	up         bool          // Redis decides; false: this node decides alone
	due        bool          // a registration is due
	gen        uint64        // moves on every registration and outage: a read begun before is dropped
	modeCh     chan struct{} // closed and replaced when up changes
	registered chan struct{} // closed and replaced after each registration
	epoch      string        // the reader's epoch and position in the change stream
	pos        hub.Position
	n          int64
	local      string // the epoch of this node's own decisions during an outage
	lseq       uint64
	held       map[holdKey]struct{} // member holds this node has registered
	heldIn     map[string]int       // per channel
	occupied   map[string]struct{}  // channels this node has registered as occupied
	cache      map[string]*cachedChannel
	downSince  time.Time
}

// holdKey is a user held on a channel.
type holdKey struct{ channel, user string }

// presenceSettings are the hub's settings that the store acts on.
type presenceSettings struct {
	ttl, leave time.Duration
	hooks      hub.WebhookSet
}

// Bounds of the presence streams.
const (
	// changeStreamLen is how many changes the change stream keeps: a node
	// further behind than that takes new snapshots instead.
	changeStreamLen = 10000
	// webhookStreamLen is how many webhook events are kept unsent at most;
	// beyond, the oldest go.
	webhookStreamLen = 100000
)

// presenceTimeout bounds one presence script: a hub's call is answered
// within it, by Redis or, when Redis does not answer, by the node alone.
const presenceTimeout = 2 * time.Second

// registerTimeout bounds a registration, during which the node's own
// calls wait (at most as long as their own deadline).
const registerTimeout = 15 * time.Second

// holdBatch bounds the operations of one hold script (registrations,
// reaping).
const holdBatch = 128

// newPresence makes the presence store of a log; Start starts it.
func newPresence(l *Log, base string) *presence {
	host, _ := os.Hostname()
	if host == "" {
		host = "node"
	}
	p := &presence{
		l:          l,
		node:       fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hub.NewEpoch()[:8]),
		log:        l.logger,
		meta:       base + "pmeta",
		stream:     base + "ps",
		nodes:      base + "nodes",
		hooks:      base + "wh",
		occ:        base + "occ",
		base:       base,
		wake:       make(chan struct{}, 1),
		modeCh:     make(chan struct{}),
		registered: make(chan struct{}),
		held:       make(map[holdKey]struct{}),
		heldIn:     make(map[string]int),
		occupied:   make(map[string]struct{}),
		cache:      make(map[string]*cachedChannel),
		local:      hub.NewEpoch(),
	}
	d := hub.DefaultPresenceConfig()
	p.settings.Store(&presenceSettings{ttl: d.TTL, leave: d.LeaveDelay})
	return p
}

func (p *presence) members(channel string) string { return p.base + "pm:" + channel }
func (p *presence) holders(channel string) string { return p.base + "pn:" + channel }
func (p *presence) holdsOf(node string) string    { return p.base + "nu:" + node }
func (p *presence) chansOf(node string) string    { return p.base + "oc:" + node }

// Presence implements hub.PresenceLog.
func (l *Log) Presence() hub.PresenceStore { return l.pres }

// Webhooks implements hub.PresenceLog.
func (l *Log) Webhooks() hub.WebhookQueue { return l.whq }

// Node returns the name this node goes by in Redis (host/pid/random): in
// the nodes' sorted set, and as the holder of a webhook lease.
func (l *Log) Node() string { return l.pres.node }

// SetPresenceConfig implements hub.PresenceConfigReceiver.
func (p *presence) SetPresenceConfig(c hub.PresenceConfig, hooks hub.WebhookSet) {
	s := &presenceSettings{ttl: c.TTL, leave: c.LeaveDelay, hooks: hooks}
	if s.ttl <= 0 {
		s.ttl = hub.DefaultPresenceTTL
	}
	s.leave = max(s.leave, 0)
	p.settings.Store(s)
}

// Start implements hub.PresenceStore: it registers the node (briefly: a
// Redis that does not answer leaves the node deciding alone until it does)
// and starts the reader and the keeper.
func (p *presence) Start(n hub.PresenceNode) error {
	p.mu.Lock()
	if p.started || p.stopped {
		p.mu.Unlock()
		return errors.New("redis presence: already started or closed")
	}
	p.started, p.pn, p.due = true, n, true
	p.downSince = time.Now()
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.l.ctx, p.l.startTimeout)
	err := p.register(ctx)
	cancel()
	if err != nil {
		p.log.Warn("redis presence: not registered yet; this node decides presence alone until Redis answers", zap.Error(err))
	}
	p.l.wg.Add(2)
	go p.read()
	go p.keep()
	return nil
}

// Close implements hub.PresenceStore. The log's Close has said goodbye and
// stopped the store's goroutines already.
func (p *presence) Close() error {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	return nil
}

// holdOp is one operation of the hold script on a node's holds.
type holdOp struct {
	kind    byte // 'j' join, 'l' leave, 'o' occupy, 'v' vacate
	channel string
	user    string
	info    []byte
	limit   int // a join's member limit (JoinOptions.Limit); 0: none
}

// opResult is what an operation did.
type opResult struct {
	status string // added, more, noop, full, removed, less, occupied, vacated
	pos    hub.Cursor
	count  int
}

// holdReply is the hold script's answer.
type holdReply struct {
	status string // ok, reaped (this node is taken for dead), alive (not dead)
	epoch  string
	n      int64
	last   hub.Position
	left   int64
	ops    []opResult
}

// Join implements hub.PresenceStore.
func (p *presence) Join(ctx context.Context, channel string, m hub.Member, o hub.JoinOptions) (hub.PresenceResult, error) {
	r, err := p.own(ctx, holdOp{kind: 'j', channel: channel, user: m.ID, info: m.Info, limit: o.Limit}, o.Hooks)
	if err != nil {
		return hub.PresenceResult{}, err
	}
	return hub.PresenceResult{Pos: r.pos, Changed: r.status == "added", Refused: r.status == "full", Count: r.count}, nil
}

// Leave implements hub.PresenceStore.
func (p *presence) Leave(ctx context.Context, channel, user string, hooks hub.WebhookSet) (hub.PresenceResult, error) {
	r, err := p.own(ctx, holdOp{kind: 'l', channel: channel, user: user}, hooks)
	if err != nil {
		return hub.PresenceResult{}, err
	}
	return hub.PresenceResult{Pos: r.pos, Changed: r.status == "removed", Count: r.count}, nil
}

// Occupy implements hub.PresenceStore.
func (p *presence) Occupy(ctx context.Context, channel string, hooks hub.WebhookSet) error {
	_, err := p.own(ctx, holdOp{kind: 'o', channel: channel}, hooks)
	return err
}

// Vacate implements hub.PresenceStore.
func (p *presence) Vacate(ctx context.Context, channel string, hooks hub.WebhookSet) error {
	_, err := p.own(ctx, holdOp{kind: 'v', channel: channel}, hooks)
	return err
}

// own makes one operation on this node's holds: in Redis while it
// answers, else alone (presence_outage.go). A node that others took for
// dead registers again first.
func (p *presence) own(ctx context.Context, op holdOp, hooks hub.WebhookSet) (opResult, error) {
	for attempt := 0; ; attempt++ {
		if err := p.rlockCalls(ctx); err != nil {
			return opResult{}, err
		}
		if !p.isUp() {
			r := p.decideAlone(op)
			p.calls.RUnlock()
			return r, nil
		}
		p.inflight.Add(1)
		rep, err := p.runHold(ctx, p.node, "own", []holdOp{op}, hooks)
		p.inflight.Add(-1)
		p.finished.Add(1)
		switch {
		case err != nil && p.outage(err):
			p.down(err)
			r := p.decideAlone(op)
			p.calls.RUnlock()
			return r, nil
		case err != nil:
			p.calls.RUnlock()
			return opResult{}, err
		case rep.status == "reaped" && attempt == 0:
			// Others took this node for dead and took its holds away:
			// register again (what the hub holds, this one included),
			// then make the call, which then finds it done.
			wait := p.registerSoon()
			p.calls.RUnlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return opResult{}, fmt.Errorf("redis presence: %w", ctx.Err())
			}
			continue
		case rep.status != "ok":
			p.calls.RUnlock()
			return opResult{}, fmt.Errorf("redis presence: the node is not registered (%s)", rep.status)
		}
		p.mu.Lock()
		p.recordLocked(op, rep.ops[0].status)
		if rep.epoch != p.epoch {
			p.dueLocked() // Redis began a new epoch: register again
		}
		p.mu.Unlock()
		p.learn(rep.epoch, rep.n, rep.last)
		p.calls.RUnlock()
		return rep.ops[0], nil
	}
}

// rlockCalls takes p.calls for a call, waiting while a registration holds
// it, but no longer than ctx allows: a registration that Redis keeps
// waiting must not hold a session's join or leave beyond its deadline.
func (p *presence) rlockCalls(ctx context.Context) error {
	if p.calls.TryRLock() {
		return nil
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if p.calls.TryRLock() {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("redis presence: waiting for the node's registration: %w", ctx.Err())
		}
	}
}

// recordLocked records what an operation left this node holding, in
// Redis's eyes. p.mu is held.
func (p *presence) recordLocked(op holdOp, status string) {
	switch op.kind {
	case 'j':
		if status != "full" {
			p.holdLocked(holdKey{op.channel, op.user})
		}
	case 'l':
		p.unholdLocked(holdKey{op.channel, op.user})
	case 'o':
		p.occupied[op.channel] = struct{}{}
	case 'v':
		delete(p.occupied, op.channel)
	}
}

// holdLocked records a member hold; a first hold on a channel starts its
// cache (presence_outage.go). p.mu is held.
func (p *presence) holdLocked(k holdKey) *cachedChannel {
	if _, ok := p.held[k]; !ok {
		p.held[k] = struct{}{}
		p.heldIn[k.channel]++
	}
	cc := p.cache[k.channel]
	if cc == nil {
		cc = &cachedChannel{members: make(map[string]cachedMember)}
		p.cache[k.channel] = cc
	}
	return cc
}

// unholdLocked records a member hold let go; the last on a channel drops
// its cache. p.mu is held.
func (p *presence) unholdLocked(k holdKey) {
	if _, ok := p.held[k]; !ok {
		return
	}
	delete(p.held, k)
	if p.heldIn[k.channel]--; p.heldIn[k.channel] <= 0 {
		delete(p.heldIn, k.channel)
		delete(p.cache, k.channel)
	}
}

// runHold runs the hold script on node's holds: mode "own" for this node,
// "reap" for a dead one. Operations on more than holdBatch are split, each
// part atomic.
func (p *presence) runHold(ctx context.Context, node, mode string, ops []holdOp, hooks hub.WebhookSet) (*holdReply, error) {
	var out *holdReply
	for len(ops) > 0 || out == nil {
		part := ops[:min(len(ops), holdBatch)]
		ops = ops[len(part):]
		r, err := p.runHoldPart(ctx, node, mode, part, hooks)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = r
		} else {
			out.ops = append(out.ops, r.ops...)
			out.status, out.epoch, out.n, out.last, out.left = r.status, r.epoch, r.n, r.last, r.left
		}
		if r.status != "ok" {
			return out, nil
		}
	}
	return out, nil
}

func (p *presence) runHoldPart(ctx context.Context, node, mode string, ops []holdOp, hooks hub.WebhookSet) (*holdReply, error) {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	fence := "0"
	if mode == "own" {
		// An operation the hub was answered an error for must not be
		// applied later (a leave applied after the user came back would
		// leave Redis without the hold): fenced as appends are.
		deadline, _ := ctx.Deadline()
		f, err := p.l.fenceBy(ctx, deadline)
		if err != nil {
			return nil, err
		}
		fence = strconv.FormatInt(f, 10)
	}
	keys := []string{p.meta, p.stream, p.nodes, p.hooks, p.holdsOf(node), p.chansOf(node), p.occ}
	index := make(map[string]int)
	args := make([]any, 0, 7+6*len(ops))
	args = append(args, fence, hub.NewEpoch(), changeStreamLen, webhookStreamLen, node, mode, hookFlags(hooks))
	for _, op := range ops {
		k := 0
		if op.kind == 'j' || op.kind == 'l' {
			if k = index[op.channel]; k == 0 {
				keys = append(keys, p.members(op.channel), p.holders(op.channel))
				k = len(keys) - 1 // Lua counts from 1: the members hash
				index[op.channel] = k
			}
		}
		args = append(args, string(op.kind), k, op.channel, op.user, string(op.info), op.limit)
	}
	res, err := holdScript.Run(ctx, p.l.rdb, keys, args...).Slice()
	received := time.Now()
	if err != nil {
		if goredis.HasErrorPrefix(err, "FENCED") {
			p.l.observeFenced(err, received)
			return nil, errPresenceFenced
		}
		return nil, fmt.Errorf("redis presence: %w", err)
	}
	r, now, err := decodeHold(res)
	if err != nil {
		return nil, err
	}
	p.l.clock.observe(now, received)
	if r.status == "ok" && len(r.ops) != len(ops) {
		return nil, errors.New("redis presence: unexpected reply")
	}
	for i := range r.ops {
		o := &r.ops[i]
		if o.pos.Epoch == "" {
			o.pos = hub.Cursor{Epoch: r.epoch, Pos: r.last}
		}
	}
	return r, nil
}

// errPresenceFenced is the answer to a presence operation that Redis ran
// after its fence: nothing of it was applied.
var errPresenceFenced = errors.New("redis presence: Redis ran the operation after its deadline and applied nothing")

// hookFlags writes the webhooks the scripts queue: occupied, vacated,
// added, removed, each "1" or "0".
func hookFlags(h hub.WebhookSet) string {
	b := []byte("0000")
	for i, k := range [...]hub.WebhookSet{hub.WebhookChannelOccupied, hub.WebhookChannelVacated, hub.WebhookMemberAdded, hub.WebhookMemberRemoved} {
		if h.Has(k) {
			b[i] = '1'
		}
	}
	return string(b)
}

// decodeHold reads the hold script's answer: {status, epoch, n, last,
// seconds, microseconds[, left, {status, id, count}...]}.
func decodeHold(res []any) (*holdReply, time.Time, error) {
	if len(res) < 6 {
		return nil, time.Time{}, fmt.Errorf("redis presence: unexpected reply of %d items", len(res))
	}
	r := &holdReply{status: str(res[0]), epoch: str(res[1])}
	r.n, _ = strconv.ParseInt(str(res[2]), 10, 64)
	var err error
	if r.last, err = parseID(str(res[3])); err != nil {
		return nil, time.Time{}, err
	}
	now := redisTime(res[4], res[5])
	if len(res) < 8 {
		return r, now, nil
	}
	r.left, _ = res[6].(int64)
	ops, _ := res[7].([]any)
	for i := 0; i+2 < len(ops); i += 3 {
		o := opResult{status: str(ops[i])}
		if id := str(ops[i+1]); id != "" {
			pos, err := parseID(id)
			if err != nil {
				return nil, time.Time{}, err
			}
			o.pos = hub.Cursor{Epoch: r.epoch, Pos: pos}
		}
		c, _ := ops[i+2].(int64)
		o.count = int(c)
		r.ops = append(r.ops, o)
	}
	return r, now, nil
}

// Snapshot implements hub.PresenceStore: the members of channel for the
// whole hub, as of the change stream's last change. While Redis does not
// answer, mirrors get what this node knows (presence_outage.go) and the
// server-side queries (max < 0) an error.
func (p *presence) Snapshot(ctx context.Context, channel string, max int) (hub.PresenceState, error) {
	if !p.isUp() {
		return p.snapshotAlone(channel, max)
	}
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	res, err := snapshotScript.Run(ctx, p.l.rdb, []string{p.meta, p.members(channel)}, max).Slice()
	if err != nil {
		if p.outage(err) {
			p.down(err)
			return p.snapshotAlone(channel, max)
		}
		return hub.PresenceState{}, fmt.Errorf("redis presence: %w", err)
	}
	st, err := decodeSnapshotReply(res)
	if err != nil {
		return hub.PresenceState{}, err
	}
	if st.Pos.Epoch == "" {
		p.registerSoon() // Redis lost the presence keys
		return hub.PresenceState{}, errors.New("redis presence: Redis lost the presence state; registering again")
	}
	p.mu.Lock()
	p.cacheSnapshotLocked(channel, st)
	p.mu.Unlock()
	return st, nil
}

// decodeSnapshotReply reads the snapshot script's answer: {epoch, n, last,
// count, listed, {user, "<join ID> <info>", ...}}. Members are listed in
// the order they joined.
func decodeSnapshotReply(res []any) (hub.PresenceState, error) {
	if len(res) != 6 {
		return hub.PresenceState{}, fmt.Errorf("redis presence: unexpected snapshot of %d items", len(res))
	}
	var st hub.PresenceState
	st.Pos.Epoch = str(res[0])
	if st.Pos.Epoch == "" {
		return st, nil
	}
	var err error
	if st.Pos.Pos, err = parseID(str(res[2])); err != nil {
		return st, err
	}
	c, _ := res[3].(int64)
	st.Count = int(c)
	if listed, _ := res[4].(int64); listed == 0 {
		return st, nil
	}
	flat, _ := res[5].([]any)
	type joined struct {
		at hub.Position
		m  hub.Member
	}
	ms := make([]joined, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		id, info, _ := strings.Cut(str(flat[i+1]), " ")
		at, _ := parseID(id) // a join in progress has none: first
		j := joined{at: at, m: hub.Member{ID: str(flat[i])}}
		if info != "" {
			j.m.Info = []byte(info)
		}
		ms = append(ms, j)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].at.Less(ms[j].at) })
	st.Members = make([]hub.Member, len(ms))
	for i, j := range ms {
		st.Members[i] = j.m
	}
	return st, nil
}

// isUp reports whether Redis decides (else this node decides alone).
func (p *presence) isUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up
}

// outage reports whether err means Redis did not answer (the network,
// a timeout), as opposed to Redis refusing something.
func (p *presence) outage(err error) bool {
	if err == nil || isRedisError(err) || errors.Is(err, errPresenceFenced) || p.l.ctx.Err() != nil {
		return false
	}
	return true
}

// down makes this node decide alone: Redis did not answer. Its mirrors
// take new snapshots of what it knows, and the keeper registers what it
// holds again as soon as Redis answers.
func (p *presence) down(err error) {
	p.mu.Lock()
	p.due = true
	if !p.up || p.stopped {
		p.mu.Unlock()
		p.wakeKeeper()
		return
	}
	p.up = false
	p.gen++
	p.local, p.lseq = hub.NewEpoch(), 0
	p.downSince = time.Now()
	close(p.modeCh)
	p.modeCh = make(chan struct{})
	p.pn.Resync()
	p.mu.Unlock()
	p.log.Warn("redis presence: Redis does not answer; this node decides presence alone until it does", zap.Error(err))
	p.wakeKeeper()
}

// registerSoon makes a registration due and returns a channel closed when
// the next one is done.
func (p *presence) registerSoon() <-chan struct{} {
	p.mu.Lock()
	p.dueLocked()
	ch := p.registered
	p.mu.Unlock()
	return ch
}

// dueLocked makes a registration due. p.mu is held.
func (p *presence) dueLocked() {
	p.due = true
	p.wakeKeeper()
}

// wakeKeeper wakes the keeper, if it sleeps.
func (p *presence) wakeKeeper() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// register makes Redis hold what this node holds, no more, no less: it
// enters the node in the nodes' set, compares the node's holds in Redis
// with what the hub holds (Held), and joins, leaves, occupies or vacates
// the difference (with their webhooks: transitions of the whole hub). Then
// the reader starts at the change stream's end and the hub takes new
// snapshots. No store call runs meanwhile (calls), so that what the hub
// holds cannot change under the comparison: a call waiting to start will
// find its work done, or do it.
func (p *presence) register(ctx context.Context) error {
	// Calls wait while it runs: bound it, whatever the caller's ctx.
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	p.calls.Lock()
	defer p.calls.Unlock()
	p.mu.Lock()
	node := p.pn
	p.mu.Unlock()
	if node.Held == nil {
		return errors.New("redis presence: not started")
	}
	s := p.settings.Load()
	if _, err := p.beat(ctx, "register", s.ttl); err != nil {
		return err
	}
	held := node.Held()
	pipe := p.l.rdb.Pipeline()
	nu := pipe.SMembers(ctx, p.holdsOf(p.node))
	oc := pipe.SMembers(ctx, p.chansOf(p.node))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis presence: %w", err)
	}
	want := make(map[holdKey]hub.Holding, len(held))
	wantOcc := make(map[string]struct{})
	for _, h := range held {
		if h.User == "" {
			wantOcc[h.Channel] = struct{}{}
		} else {
			want[holdKey{h.Channel, h.User}] = h
		}
	}
	has := make(map[holdKey]struct{})
	hasOcc := make(map[string]struct{})
	var leaves, vacates, occupies, joins []holdOp
	for _, e := range nu.Val() {
		c, u, _ := strings.Cut(e, "\n")
		k := holdKey{c, u}
		has[k] = struct{}{}
		if _, ok := want[k]; !ok {
			leaves = append(leaves, holdOp{kind: 'l', channel: c, user: u})
		}
	}
	for _, c := range oc.Val() {
		hasOcc[c] = struct{}{}
		if _, ok := wantOcc[c]; !ok {
			vacates = append(vacates, holdOp{kind: 'v', channel: c})
		}
	}
	for c := range wantOcc {
		if _, ok := hasOcc[c]; !ok {
			occupies = append(occupies, holdOp{kind: 'o', channel: c})
		}
	}
	for k, h := range want {
		if _, ok := has[k]; !ok {
			joins = append(joins, holdOp{kind: 'j', channel: k.channel, user: k.user, info: h.Info, limit: h.Limit})
		}
	}
	// Members leave before their channels are vacated, and channels are
	// occupied before members are added, as Pusher sends them.
	ops := append(append(append(leaves, vacates...), occupies...), joins...)
	if len(ops) > 0 {
		r, err := p.runHold(ctx, p.node, "own", ops, s.hooks)
		if err != nil {
			return err
		}
		if r.status != "ok" {
			return fmt.Errorf("redis presence: registration refused (%s)", r.status)
		}
		for i, op := range ops {
			if r.ops[i].status == "full" {
				// Over the member limit now: not registered (its
				// subscriptions stay, not members, until they leave).
				delete(want, holdKey{op.channel, op.user})
			}
		}
	}
	res, err := headScript.Run(ctx, p.l.rdb, []string{p.meta}).Slice()
	if err != nil {
		return fmt.Errorf("redis presence: %w", err)
	}
	h, err := decodeHead(res)
	if err != nil {
		return err
	}
	if h.epoch == "" {
		return errors.New("redis presence: Redis lost the presence state during registration")
	}
	p.learn(h.epoch, h.n, h.last)
	p.mu.Lock()
	was := p.up
	p.up, p.due = true, false
	p.gen++
	p.epoch, p.pos, p.n = h.epoch, h.last, h.n
	clear(p.held)
	clear(p.heldIn)
	clear(p.occupied)
	for k := range want {
		p.holdLocked(k)
	}
	for c := range wantOcc {
		p.occupied[c] = struct{}{}
	}
	for c, cc := range p.cache {
		if p.heldIn[c] == 0 {
			delete(p.cache, c)
			continue
		}
		cc.forget() // the snapshots the hub now takes fill it again
	}
	if !was {
		close(p.modeCh)
		p.modeCh = make(chan struct{})
	}
	close(p.registered)
	p.registered = make(chan struct{})
	// The hub takes new snapshots: of Redis now. Under p.mu, so that no
	// change of the reader's new position reaches it first.
	p.pn.Resync()
	down := p.downSince
	p.downSince = time.Time{}
	p.mu.Unlock()
	if !was && !down.IsZero() && len(held) > 0 {
		p.log.Info("redis presence: registered again; Redis decides presence",
			zap.Int("held", len(held)), zap.Int("joined", len(joins)), zap.Int("left", len(leaves)))
	}
	return nil
}

// learn raises the node's mark of the change stream (lost.go).
func (p *presence) learn(epoch string, n int64, id hub.Position) { raise(&p.known, epoch, n, id) }

// backoff returns the wait after fails failures: doubling from the log's
// reconnect backoff, jittered.
func (p *presence) backoff(fails int) time.Duration {
	d := min(p.l.backoffMin<<min(max(fails-1, 0), 20), p.l.backoffMax)
	return d/2 + rand.N(d/2+1)
}

var (
	_ hub.PresenceStore          = (*presence)(nil)
	_ hub.PresenceConfigReceiver = (*presence)(nil)
	_ hub.PresenceLog            = (*Log)(nil)
)
