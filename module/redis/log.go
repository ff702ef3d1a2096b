package redis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Config describes a Redis log.
type Config struct {
	// Client are the go-redis options of a connection to a data node
	// (address, credentials, DB, TLS, timeouts, pool). New sets the
	// timeouts and retries it needs where they are zero. With Sentinel or
	// Cluster set, its address is unused.
	Client *goredis.Options
	// Sentinel, if set, finds the primary through Redis Sentinel.
	Sentinel *Sentinel
	// Cluster, if set, makes the log use a Redis Cluster.
	Cluster *Cluster
	// MinReplicasAcked is how many replicas must confirm an append (Redis's
	// WAIT) before it is answered; 0 (the default) waits for none. An
	// append they do not confirm within MinReplicasTimeout (default 500
	// ms) is answered with an error although it may be delivered: a
	// publisher retries it with its id, which answers duplicate.
	MinReplicasAcked   int
	MinReplicasTimeout time.Duration
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
	// WebhookLease is how long a node's lease on a webhook target lasts
	// unrenewed: how soon another node sends when the sender dies.
	// Default DefaultWebhookLease.
	WebhookLease time.Duration
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

// maxQueued bounds the entries read but not yet delivered (in batches of
// Config.Batch); the fetcher waits beyond it.
const maxQueued = 1 << 14

// Log is a hub.Log over a Redis stream. See the package documentation for
// which goroutine owns which field.
type Log struct {
	rdb  goredis.UniversalClient // go-redis's client of the deployment form
	form Config                  // the deployment form (Sentinel, Cluster), for the start check
	// certAsked is set when a TLS server asked for a client certificate
	// (the start check's hint when it then closes the connection).
	certAsked *atomic.Bool
	stream    string
	meta      string
	idKey     string
	logger    *zap.Logger

	size atomic.Int64
	ttl  atomic.Int64

	minReplicas        int
	minReplicasTimeout time.Duration

	batch                  int
	block                  time.Duration
	backoffMin, backoffMax time.Duration
	startTimeout           time.Duration

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines of Start, and gap reports

	// mu guards the delivered state: what the hub has been handed.
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

	// The fetcher's own position, ahead of the delivered one. Only the
	// fetcher (and Start, before the fetcher runs) touches them.
	fEpoch string
	fPos   hub.Position
	fN     int64    // the number of the entry at fPos (-1: unknown)
	fIDs   idMemory // ids read last, and those of events a failover lost

	// known is the highest event this node knows Redis had (lost.go);
	// lossIn the epoch whose loss the fetcher is to declare.
	known      atomic.Pointer[mark]
	lossIn     atomic.Pointer[string]
	lostEpochs atomic.Int64
	retries    atomic.Int64

	// calls hands Append calls to the appender (unbuffered: a call the
	// appender has not received is not in Redis). running is set by Start
	// and cleared by Close.
	calls   chan *appendCall
	running atomic.Bool

	// batches hands what the fetcher read to the deliverer, in order.
	batches chan *batch
	// reached wakes the fetcher from its backoff when an append went
	// through (after a failover, the sooner it reads, the sooner it finds
	// a loss).
	reached chan struct{}

	// clock estimates Redis's clock, for the append fence.
	clock redisClock

	health atomic.Pointer[health]
	gaps   atomic.Int64

	// pres and whq keep the hub's presence and webhooks for every node
	// (presence.go, webhooks.go).
	pres *presence
	whq  *webhookQueue
}

// New returns a log for one hub. It does not connect: Start does.
func New(c Config) (*Log, error) {
	if c.Client == nil {
		return nil, errors.New("redis: no client options")
	}
	if c.Hub == "" {
		return nil, errors.New("redis: no hub name")
	}
	if c.Sentinel != nil && c.Cluster != nil {
		return nil, errors.New("redis: Sentinel and Cluster are two deployment forms: set one")
	}
	o := *c.Client
	connDefaults(&o)
	certAsked := watchCertRequests(&o)
	prefix := c.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	base := prefix + "{" + c.Hub + "}:"
	l := &Log{
		rdb:          newClient(c, &o),
		form:         Config{Sentinel: c.Sentinel, Cluster: c.Cluster, Client: &o},
		certAsked:    certAsked,
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
		fN:           -1,
		changed:      make(chan struct{}),
		calls:        make(chan *appendCall),
		reached:      make(chan struct{}, 1),
	}
	if l.logger == nil {
		l.logger = zap.NewNop()
	}
	if l.batch <= 0 {
		l.batch = 512
	}
	l.batches = make(chan *batch, max(maxQueued/l.batch, 1))
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
	l.minReplicas = max(c.MinReplicasAcked, 0)
	l.minReplicasTimeout = c.MinReplicasTimeout
	if l.minReplicasTimeout <= 0 {
		l.minReplicasTimeout = defaultMinReplicasTimeout
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.SetRetention(c.Size, c.TTL)
	l.pres = newPresence(l, base)
	l.whq = newWebhookQueue(l, base, l.pres.node, c.WebhookLease)
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

// OnGap implements hub.GapReporter: it sets a function the reader calls
// when it finds that events it had not read yet were trimmed from the
// stream, or that a failover lost acknowledged events (lost.go), so that
// they can never reach this node's subscribers: the hub closes its
// sessions so that clients resume from their cursors (and learn that they
// missed events). The reader calls it holding l.mu, before it delivers the
// events after the gap: f must not call Head or Range.
func (l *Log) OnGap(f func()) {
	l.mu.Lock()
	l.onGap = f
	l.mu.Unlock()
}

// Start implements hub.Log: it checks, briefly, that Redis accepts the
// configuration (check.go: an error names what Redis refused, and the log
// does not start) and learns the stream's epoch and end, so that a node
// with a reachable Redis starts at the right place, then starts the
// appender and the reader, which keeps trying when Redis is down.
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
	err := l.check(ctx)
	cancel()
	var ce configErr
	if errors.As(err, &ce) {
		return ce.error
	}
	var b *batch
	if err == nil {
		ctx, cancel = context.WithTimeout(l.ctx, l.startTimeout)
		b, err = l.sync(ctx, false)
		cancel()
		if cerr := l.configError(err); cerr != nil {
			return cerr
		}
	}
	if err != nil {
		l.setDown(err)
	}
	if b != nil {
		l.apply(b)
	}
	l.running.Store(true)
	l.wg.Add(3)
	go l.appender()
	go l.fetch(err == nil)
	go l.deliverLoop()
	return nil
}

// Close implements hub.Log: it stops the appender and the reader and
// closes the client. No delivery happens after Close returns.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.running.Store(false)
	l.pres.goodbye() // while the client is open
	l.cancel()
	err := l.rdb.Close() // also breaks a blocked read
	l.wg.Wait()
	return err
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

var (
	_ hub.Log         = (*Log)(nil)
	_ hub.Health      = (*Log)(nil)
	_ hub.GapReporter = (*Log)(nil)
)
