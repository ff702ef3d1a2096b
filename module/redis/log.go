// Package redis is the Redis backplane of caddy-realtime: a hub.Log over one
// Redis stream per hub, shared by every node that names the same Redis, key
// prefix and hub.
//
// Keys (P is the prefix, H the hub name, in braces so that they share a
// cluster slot):
//
//	P{H}:stream   the events, one entry per event and channel
//	P{H}:meta     epoch, trim floor, last entry ID, event count, epoch base
//	P{H}:id:<id>  an idempotency key, kept for history_ttl
//
// Appends run as one Lua script: the idempotency keys are checked and set and
// the entries added atomically, then the stream is trimmed. Every node reads
// the stream from its last position with a reader goroutine and delivers the
// events to its hub in stream order, so all nodes deliver the same events in
// the same order, and a cursor (the epoch and the entry ID) means the same on
// every node.
//
// An epoch is one lifetime of the stream: when Redis loses the meta hash or
// the stream (restart without persistence, FLUSHALL, eviction) the next
// script starts a new epoch, and cursors of the old one resume with
// recovered:false instead of a silent gap.
package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Config describes a Redis log.
type Config struct {
	// Client are the go-redis options (address, password, DB, TLS). New
	// sets the timeouts and retries it needs where they are zero.
	Client *goredis.Options
	// Prefix is put before every key, so that several sites can share one
	// Redis. Default "realtime:".
	Prefix string
	// Hub is the hub's name; it names the keys.
	Hub string
	// Size and TTL are the history limits (history_size, history_ttl).
	Size int
	TTL  time.Duration
	// Logger gets connection state changes; nil for none.
	Logger *zap.Logger

	// Batch is how many entries the reader reads at once. Default 512.
	Batch int
	// Block is how long one blocking read waits for new entries before the
	// reader checks the epoch again. Default 1 s; at most half the client's
	// read timeout.
	Block time.Duration
	// BackoffMin and BackoffMax bound the reader's reconnect backoff
	// (doubling, full jitter). Defaults 100 ms and 2 s.
	BackoffMin, BackoffMax time.Duration
	// StartTimeout bounds the first connection attempt in Start; the node
	// starts anyway and the reader keeps trying. Default 1 s.
	StartTimeout time.Duration
}

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "realtime:"

// readerSlack is how many entries the stream keeps beyond history_size, so
// that a reader that falls a little behind does not lose entries to
// trimming; Range still replays only the last history_size events.
const readerSlack = 1000

// ageGrace is how much longer than history_ttl entries stay in the stream,
// for the same reason; Range does not replay them.
const ageGrace = time.Minute

// maxIDTTL is how long idempotency keys live when history_ttl is 0.
const maxIDTTL = 24 * time.Hour

// Log is a hub.Log over a Redis stream.
type Log struct {
	rdb    *goredis.Client
	stream string
	meta   string
	idKey  string
	logger *zap.Logger

	size atomic.Int64
	ttl  atomic.Int64

	batch                  int
	block                  time.Duration
	backoffMin, backoffMax time.Duration
	startTimeout           time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	deliver func(hub.Cursor, []*hub.Event)
	onGap   func()
	local   string        // placeholder epoch until the real one is known
	epoch   string        // epoch of pos; "" until the first successful read
	pos     hub.Position  // last delivered entry (or where reading starts)
	lastN   int64         // its number in the epoch (-1: unknown)
	changed chan struct{} // closed and replaced when the head moves
	started bool
	closed  bool
	// startedAt is when Start ran, for a node that could not reach Redis
	// then: on first contact it delivers what was appended since.
	startedAt time.Time

	// The fetcher's own position, ahead of the delivered one.
	fEpoch string
	fPos   hub.Position

	// Append calls waiting for the appender.
	amu       sync.Mutex
	acond     *sync.Cond
	pending   []*appendCall
	appending bool // the appender runs

	// Batches fetched and not yet delivered.
	qmu    sync.Mutex
	qcond  *sync.Cond
	queue  []*batch
	queued int

	hmu     sync.Mutex // guards the backplane's health
	up      bool
	lastErr string

	gaps atomic.Int64
}

// New returns a log for one hub. It does not connect: Start does.
func New(c Config) (*Log, error) {
	if c.Client == nil {
		return nil, errors.New("redis: no client options")
	}
	if c.Hub == "" {
		return nil, errors.New("redis: no hub name")
	}
	o := *c.Client
	// The publish path has 2 s; a command must fail within that when Redis
	// is down or unreachable, and never be retried blindly (a retried
	// append could be applied twice).
	if o.DialTimeout == 0 {
		o.DialTimeout = time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 2 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 2 * time.Second
	}
	if o.PoolTimeout == 0 {
		o.PoolTimeout = 2 * time.Second
	}
	o.MaxRetries = -1
	o.ContextTimeoutEnabled = true
	if o.Protocol == 0 {
		o.Protocol = 2
	}
	o.DisableIdentity = true
	prefix := c.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	base := prefix + "{" + c.Hub + "}:"
	l := &Log{
		rdb:          goredis.NewClient(&o),
		stream:       base + "stream",
		meta:         base + "meta",
		idKey:        base + "id:",
		logger:       c.Logger,
		batch:        c.Batch,
		block:        c.Block,
		backoffMin:   c.BackoffMin,
		backoffMax:   c.BackoffMax,
		startTimeout: c.StartTimeout,
		local:        hub.NewEpoch(),
		changed:      make(chan struct{}),
	}
	l.qcond = sync.NewCond(&l.qmu)
	l.acond = sync.NewCond(&l.amu)
	if l.logger == nil {
		l.logger = zap.NewNop()
	}
	if l.batch <= 0 {
		l.batch = 512
	}
	if l.block <= 0 {
		l.block = time.Second
	}
	if o.ReadTimeout > 0 && l.block > o.ReadTimeout/2 {
		l.block = o.ReadTimeout / 2
	}
	if l.backoffMin <= 0 {
		l.backoffMin = 100 * time.Millisecond
	}
	if l.backoffMax < l.backoffMin {
		l.backoffMax = max(2*time.Second, l.backoffMin)
	}
	if l.startTimeout <= 0 {
		l.startTimeout = time.Second
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.SetRetention(c.Size, c.TTL)
	return l, nil
}

// Keys returns the stream and meta keys, for tests and operators.
func (l *Log) Keys() (stream, meta string) { return l.stream, l.meta }

// SetRetention implements hub.Log. The stream keeps size events (and a
// reader's margin); Range replays none older than ttl.
func (l *Log) SetRetention(size int, ttl time.Duration) {
	l.size.Store(int64(max(size, 0)))
	l.ttl.Store(int64(max(ttl, 0)))
}

// OnGap sets a function the reader calls when it finds that events it had
// not read yet were trimmed from the stream, so that they can never reach
// this node's subscribers: the hub closes its sessions so that clients
// resume from their cursors (and learn that they missed events).
func (l *Log) OnGap(f func()) {
	l.mu.Lock()
	l.onGap = f
	l.mu.Unlock()
}

// Start implements hub.Log: it tries once, briefly, to learn the stream's
// epoch and end, so that a node with a reachable Redis starts at the right
// place, then starts the reader, which keeps trying when Redis is down.
func (l *Log) Start(deliver func(hub.Cursor, []*hub.Event)) error {
	l.mu.Lock()
	if l.started || l.closed {
		l.mu.Unlock()
		return errors.New("redis: log already started or closed")
	}
	l.started = true
	l.deliver = deliver
	l.startedAt = time.Now()
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(l.ctx, l.startTimeout)
	b, err := l.sync(ctx, false)
	cancel()
	if err != nil {
		l.setDown(err)
	}
	if b != nil {
		l.apply(b)
	}
	l.amu.Lock()
	l.appending = true
	l.amu.Unlock()
	l.wg.Add(3)
	go l.appender()
	go l.fetch(err == nil)
	go l.deliverLoop()
	return nil
}

// Close implements hub.Log: it stops the reader and closes the client. No
// delivery happens after Close returns.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.amu.Lock()
	l.appending = false
	l.acond.Broadcast()
	l.amu.Unlock()
	l.qmu.Lock()
	l.qcond.Broadcast()
	l.qmu.Unlock()
	err := l.rdb.Close() // also breaks a blocked read
	l.wg.Wait()
	return err
}

// Healthy implements hub.Health.
func (l *Log) Healthy() (bool, string) {
	l.hmu.Lock()
	defer l.hmu.Unlock()
	return l.up, l.lastErr
}

// Gaps returns how many times the reader found events trimmed before it
// could read them.
func (l *Log) Gaps() int64 { return l.gaps.Load() }

func (l *Log) setUp() {
	l.hmu.Lock()
	was := l.up
	l.up, l.lastErr = true, ""
	l.hmu.Unlock()
	if !was {
		l.logger.Info("redis backplane up")
	}
}

func (l *Log) setDown(err error) {
	msg := err.Error() // go-redis errors never contain the password
	l.hmu.Lock()
	was := l.up || l.lastErr == ""
	l.up, l.lastErr = false, msg
	l.hmu.Unlock()
	if was {
		l.logger.Warn("redis backplane down", zap.String("error", msg))
	}
}

// Head implements hub.Log: the cursor of the last event this node delivered
// (or of where its reader started). Until Redis has been reached once, that
// is the start of a placeholder epoch that no Redis epoch matches, so a
// cursor handed out then resumes with recovered:false.
func (l *Log) Head(context.Context) (hub.Cursor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.headLocked(), nil
}

func (l *Log) headLocked() hub.Cursor {
	if l.epoch == "" {
		return hub.Cursor{Epoch: l.local}
	}
	return hub.Cursor{Epoch: l.epoch, Pos: l.pos}
}

// moveLocked sets the delivered position and wakes Range calls waiting for
// the reader. l.mu is held.
func (l *Log) moveLocked(epoch string, pos hub.Position) {
	l.epoch, l.pos = epoch, pos
	close(l.changed)
	l.changed = make(chan struct{})
}

// appendCall is one Append waiting for the appender.
type appendCall struct {
	ctx   context.Context
	pubs  []*hub.Publication
	out   []hub.Appended
	err   error
	taken bool // the appender has it: it may be in Redis already
	done  chan struct{}
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
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, appendTimeout)
		defer cancel()
	}
	c := &appendCall{ctx: ctx, pubs: pubs, done: make(chan struct{})}
	l.amu.Lock()
	if !l.appending {
		l.amu.Unlock()
		return nil, errors.New("redis append: log not started or closed")
	}
	l.pending = append(l.pending, c)
	l.acond.Signal()
	l.amu.Unlock()
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
		l.amu.Lock()
		defer l.amu.Unlock()
		if !c.taken {
			// Never sent: nothing was published.
			for i, p := range l.pending {
				if p == c {
					l.pending = append(l.pending[:i], l.pending[i+1:]...)
					break
				}
			}
		}
		return nil, fmt.Errorf("redis append: %w", ctx.Err())
	}
}

// appender sends the waiting Append calls to Redis, grouped.
func (l *Log) appender() {
	defer l.wg.Done()
	for {
		l.amu.Lock()
		for len(l.pending) == 0 && l.appending {
			l.acond.Wait()
		}
		if !l.appending {
			for _, c := range l.pending {
				c.err = hub.ErrClosed
				close(c.done)
			}
			l.pending = nil
			l.amu.Unlock()
			return
		}
		var calls []*appendCall
		n := 0
		for len(l.pending) > 0 && (len(calls) == 0 || n+len(l.pending[0].pubs) <= maxGroup) {
			c := l.pending[0]
			l.pending = l.pending[1:]
			if c.ctx.Err() != nil {
				continue // its caller has given up: do not publish it
			}
			c.taken = true
			calls = append(calls, c)
			n += len(c.pubs)
		}
		l.amu.Unlock()
		if len(calls) > 0 {
			l.runGroup(calls)
		}
	}
}

// runGroup appends the publications of several calls in one script.
func (l *Log) runGroup(calls []*appendCall) {
	ctx := l.ctx
	var deadline time.Time
	for _, c := range calls {
		if d, ok := c.ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
			deadline = d
		}
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	var pubs []*hub.Publication
	if len(calls) == 1 {
		pubs = calls[0].pubs
	} else {
		for _, c := range calls {
			pubs = append(pubs, c.pubs...)
		}
	}
	out, err := l.appendPubs(ctx, pubs)
	for _, c := range calls {
		if err != nil {
			c.err = err
		} else {
			c.out, out = out[:len(c.pubs):len(c.pubs)], out[len(c.pubs):]
		}
		close(c.done)
	}
}

// appendPubs runs the append script.
func (l *Log) appendPubs(ctx context.Context, pubs []*hub.Publication) ([]hub.Appended, error) {
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
	args := make([]any, 0, 5+len(pubs)*7)
	args = append(args, hub.NewEpoch(), size+readerSlack, maxAge, max(idTTL.Milliseconds(), 1), len(pubs))
	for _, p := range pubs {
		if p.ID != "" {
			keys = append(keys, l.idKey+p.ID)
		}
		args = append(args, p.ID, len(p.Channels))
		for _, ch := range p.Channels {
			args = append(args, ch)
		}
		args = append(args, p.Type, string(p.Payload), p.Timestamp)
	}
	res, err := appendScript.Run(ctx, l.rdb, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis append: %w", err)
	}
	if len(res) != len(pubs)+1 {
		return nil, fmt.Errorf("redis append: unexpected reply of %d items", len(res))
	}
	epoch, _ := res[0].(string)
	out := make([]hub.Appended, len(pubs))
	for i, p := range pubs {
		r, ok := res[i+1].([]any)
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
			id, _ := r[j+1].(string)
			pos, err := parseID(id)
			if err != nil {
				return nil, err
			}
			a.Cursors[j] = hub.Cursor{Epoch: epoch, Pos: pos}
		}
		out[i] = a
	}
	return out, nil
}

// parseRecord reads an idempotency record: the epoch, then channel and
// entry ID pairs, separated by newlines.
func parseRecord(rec string) (hub.Appended, error) {
	parts := strings.Split(rec, "\n")
	if len(parts) < 3 || len(parts)%2 != 1 {
		return hub.Appended{}, errors.New("redis append: bad idempotency record")
	}
	a := hub.Appended{Duplicate: true}
	for i := 1; i < len(parts); i += 2 {
		pos, err := parseID(parts[i+1])
		if err != nil {
			return hub.Appended{}, err
		}
		a.Channels = append(a.Channels, parts[i])
		a.Cursors = append(a.Cursors, hub.Cursor{Epoch: parts[0], Pos: pos})
	}
	return a, nil
}

// parseID reads a stream entry ID "<ms>-<seq>".
func parseID(id string) (hub.Position, error) {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return hub.Position{}, fmt.Errorf("redis: bad entry ID %q", id)
	}
	hi, err1 := strconv.ParseUint(ms, 10, 64)
	lo, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return hub.Position{}, fmt.Errorf("redis: bad entry ID %q", id)
	}
	return hub.Position{Hi: hi, Lo: lo}, nil
}

func formatID(p hub.Position) string {
	return strconv.FormatUint(p.Hi, 10) + "-" + strconv.FormatUint(p.Lo, 10)
}

// snapshot is what readScript answers.
type snapshot struct {
	epoch   string
	floor   hub.Position // entries up to here were trimmed
	last    hub.Position // last appended entry
	n       int64        // events appended in this epoch
	base    hub.Position // where this epoch began
	now     time.Time    // the server's clock
	entries []entry
}

type entry struct {
	pos hub.Position
	n   int64
	pub hub.Publication
	ch  string
}

// read runs readScript: meta data, and the entries after `after` (if
// given) up to upTo, at most count, provided the epoch is `epoch` (if given).
func (l *Log) read(ctx context.Context, after *hub.Position, upTo string, count int, epoch string) (*snapshot, error) {
	from := ""
	if after != nil {
		from = formatID(*after)
	}
	res, err := readScript.Run(ctx, l.rdb, []string{l.stream, l.meta}, hub.NewEpoch(), from, upTo, count, epoch).Slice()
	if err != nil {
		return nil, err
	}
	if len(res) != 8 {
		return nil, fmt.Errorf("redis read: unexpected reply of %d items", len(res))
	}
	s := &snapshot{}
	var ok bool
	if s.epoch, ok = res[0].(string); !ok || s.epoch == "" {
		return nil, errors.New("redis read: no epoch")
	}
	str := func(v any) string { x, _ := v.(string); return x }
	if s.floor, err = parseID(str(res[1])); err != nil {
		return nil, err
	}
	if s.last, err = parseID(str(res[2])); err != nil {
		return nil, err
	}
	s.n, _ = strconv.ParseInt(str(res[3]), 10, 64)
	if s.base, err = parseID(str(res[4])); err != nil {
		return nil, err
	}
	sec, _ := strconv.ParseInt(str(res[5]), 10, 64)
	usec, _ := strconv.ParseInt(str(res[6]), 10, 64)
	s.now = time.Unix(sec, usec*1000)
	raw, _ := res[7].([]any)
	s.entries = make([]entry, 0, len(raw))
	for _, r := range raw {
		e, err := parseEntry(r)
		if err != nil {
			return nil, err
		}
		s.entries = append(s.entries, e)
	}
	return s, nil
}

// parseEntry reads one XRANGE item: {id, {field, value, ...}}.
func parseEntry(r any) (entry, error) {
	item, ok := r.([]any)
	if !ok || len(item) != 2 {
		return entry{}, errors.New("redis: bad stream entry")
	}
	id, _ := item[0].(string)
	pos, err := parseID(id)
	if err != nil {
		return entry{}, err
	}
	fields, _ := item[1].([]any)
	e := entry{pos: pos}
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		switch k {
		case "n":
			e.n, _ = strconv.ParseInt(v, 10, 64)
		case "c":
			e.ch = v
		case "t":
			e.pub.Type = v
		case "p":
			e.pub.Payload = []byte(v)
		case "s":
			e.pub.Timestamp = v
		case "i":
			e.pub.ID = v
		}
	}
	if e.ch == "" {
		return entry{}, fmt.Errorf("redis: stream entry %s has no channel", id)
	}
	return e, nil
}

// event builds the hub event of an entry. Its acceptance time is the
// entry ID's, so every node builds the same event.
func (e *entry) event(epoch string) *hub.Event {
	p := e.pub
	p.Channels = []string{e.ch}
	return hub.NewEvent(hub.Cursor{Epoch: epoch, Pos: e.pos}, e.ch, &p, time.UnixMilli(int64(e.pos.Hi)))
}

// batch is what the fetcher hands the deliverer, in stream order: an
// optional move of the head (first contact, new epoch), then entries.
type batch struct {
	reset   bool
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
		l.fEpoch, l.fPos = s.epoch, start
		return &batch{reset: true, epoch: s.epoch, pos: start, lastN: n}, nil
	case l.fEpoch != s.epoch:
		// Redis lost its data (or our keys): a new epoch began at its
		// base. Deliver from there; the old epoch's cursors no longer
		// resume.
		l.logger.Warn("redis backplane: Redis lost the hub's stream; new epoch, old cursors will resume with recovered:false",
			zap.String("old", l.fEpoch), zap.String("new", s.epoch))
		l.fEpoch, l.fPos = s.epoch, s.base
		return &batch{reset: true, epoch: s.epoch, pos: s.base, lastN: 0}, nil
	}
	return nil, nil
}

// errResync makes the fetcher check the epoch again at once.
var errResync = errors.New("redis: epoch changed")

// maxQueued bounds the entries read but not yet delivered; the fetcher
// waits beyond it.
const maxQueued = 1 << 14

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
			case <-l.ctx.Done():
				return
			case <-time.After(d):
			}
			continue
		}
		fails = 0
		l.setUp()
	}
}

// readStream waits (up to l.block) for entries after the fetcher's
// position and reads them in one XREAD together with the current epoch.
func (l *Log) readStream() error {
	ctx, cancel := context.WithTimeout(l.ctx, l.block+time.Second)
	defer cancel()
	pipe := l.rdb.Pipeline()
	xr := pipe.XRead(ctx, &goredis.XReadArgs{
		Streams: []string{l.stream, formatID(l.fPos)},
		Count:   int64(l.batch),
		Block:   l.block,
	})
	me := pipe.HGet(ctx, l.meta, "epoch")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	if cur, err := me.Result(); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	} else if cur != l.fEpoch {
		// Read after the entries: if it is still ours, they are ours.
		return errResync
	}
	streams, err := xr.Result()
	if errors.Is(err, goredis.Nil) || len(streams) == 0 || len(streams[0].Messages) == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	msgs := streams[0].Messages
	entries := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		e, err := messageEntry(m)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	l.fPos = entries[len(entries)-1].pos
	l.enqueue(&batch{epoch: l.fEpoch, entries: entries})
	return nil
}

// enqueue hands a batch to the deliverer, waiting while too much is queued.
func (l *Log) enqueue(b *batch) {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	for l.queued > maxQueued && l.ctx.Err() == nil {
		l.qcond.Wait()
	}
	l.queue = append(l.queue, b)
	l.queued += len(b.entries)
	l.qcond.Broadcast()
}

// deliverLoop is the reader's second half: it delivers the fetched batches
// to the hub, in order, and reports gaps.
func (l *Log) deliverLoop() {
	defer l.wg.Done()
	for {
		l.qmu.Lock()
		for len(l.queue) == 0 && l.ctx.Err() == nil {
			l.qcond.Wait()
		}
		if l.ctx.Err() != nil {
			l.qmu.Unlock()
			return
		}
		q := l.queue
		l.queue = nil
		l.queued = 0
		l.qcond.Broadcast()
		l.qmu.Unlock()
		for _, b := range q {
			l.apply(b)
		}
	}
}

// apply delivers one batch.
func (l *Log) apply(b *batch) {
	var events []*hub.Event
	if len(b.entries) > 0 {
		events = make([]*hub.Event, len(b.entries))
		for i := range b.entries {
			events[i] = b.entries[i].event(b.epoch)
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
		if l.deliver != nil {
			l.deliver(l.headLocked(), nil)
		}
	}
	if len(events) == 0 || b.epoch != l.epoch {
		return
	}
	if first := b.entries[0].n; l.lastN >= 0 && first != l.lastN+1 {
		// Entries after our position were trimmed before we read them:
		// this node's subscribers can never get them.
		l.gaps.Add(1)
		l.logger.Error("redis backplane: events were trimmed from the stream before this node read them; closing its sessions so that clients resume",
			zap.Int64("missed", first-l.lastN-1))
		if f := l.onGap; f != nil {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				f()
			}()
		}
	}
	l.lastN = b.entries[len(b.entries)-1].n
	l.moveLocked(b.epoch, b.entries[len(b.entries)-1].pos)
	if l.deliver != nil {
		l.deliver(l.headLocked(), events)
	}
}

// messageEntry reads an entry of an XREAD reply.
func messageEntry(m goredis.XMessage) (entry, error) {
	pos, err := parseID(m.ID)
	if err != nil {
		return entry{}, err
	}
	e := entry{pos: pos}
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	e.n, _ = strconv.ParseInt(str("n"), 10, 64)
	e.ch = str("c")
	e.pub.Type = str("t")
	if p, ok := m.Values["p"].(string); ok {
		e.pub.Payload = []byte(p)
	}
	e.pub.Timestamp = str("s")
	e.pub.ID = str("i")
	if e.ch == "" {
		return entry{}, fmt.Errorf("redis: stream entry %s has no channel", m.ID)
	}
	return e, nil
}

// Range implements hub.Log over XRANGE: the entries after `after` up to
// upTo (the head this node delivered), of the channels match accepts.
func (l *Log) Range(ctx context.Context, after, upTo hub.Cursor, limit int, match func(string) bool) ([]*hub.Event, hub.Cursor, bool, error) {
	if limit <= 0 {
		limit = 256
	}
	if after == upTo {
		// The head this node delivered: nothing can be missing up to it.
		return nil, after, true, nil
	}
	if upTo.Epoch != after.Epoch || upTo.Pos.Less(after.Pos) {
		return l.rangeAhead(ctx, after, upTo)
	}
	count := max(limit, 256)
	s, err := l.read(ctx, &after.Pos, formatID(upTo.Pos), count, after.Epoch)
	if err != nil {
		return nil, after, false, err
	}
	if s.epoch != after.Epoch || s.last.Less(after.Pos) || after.Pos.Less(s.floor) {
		return nil, after, false, nil
	}
	if len(s.entries) > 0 {
		first := &s.entries[0]
		if first.n <= s.n-l.size.Load() {
			return nil, after, false, nil // beyond history_size
		}
		if ttl := time.Duration(l.ttl.Load()); ttl > 0 && time.UnixMilli(int64(first.pos.Hi)).Before(s.now.Add(-ttl)) {
			return nil, after, false, nil // older than history_ttl
		}
	}
	var out []*hub.Event
	next := after.Pos
	for i := range s.entries {
		e := &s.entries[i]
		if len(out) >= limit {
			break
		}
		if match == nil || match(e.ch) {
			out = append(out, e.event(after.Epoch))
		}
		next = e.pos
	}
	if len(out) < limit && len(s.entries) < count {
		next = upTo.Pos // scanned all the way
	}
	return out, hub.Cursor{Epoch: after.Epoch, Pos: next}, true, nil
}

// rangeAhead answers a Range whose start this node has not delivered yet: a
// cursor from a node whose reader is ahead, or of an epoch this node has
// not seen yet. If Redis knows the position, the answer is "nothing yet,
// complete" after giving the reader a moment to catch up, so the hub asks
// again with its new head; otherwise the cursor cannot be resumed.
func (l *Log) rangeAhead(ctx context.Context, after, upTo hub.Cursor) ([]*hub.Event, hub.Cursor, bool, error) {
	s, err := l.read(ctx, nil, "+", 0, "")
	if err != nil {
		return nil, after, false, err
	}
	if s.epoch != after.Epoch || s.last.Less(after.Pos) || after.Pos.Less(s.floor) {
		return nil, after, false, nil
	}
	l.mu.Lock()
	head, changed := l.headLocked(), l.changed
	l.mu.Unlock()
	if head != upTo {
		return nil, after, true, nil // the head moved already: ask again
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-ctx.Done():
	case <-l.ctx.Done():
		return nil, after, false, hub.ErrClosed
	}
	return nil, after, true, nil
}

var (
	_ hub.Log    = (*Log)(nil)
	_ hub.Health = (*Log)(nil)
)
