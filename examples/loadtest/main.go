// Command loadtest measures a realtime hub under fan-out load: the
// caddy-realtime module (`-target realtime`), its Pusher protocol
// (`-target pusher`: realtime_pusher subscribers) or nginx + nchan
// (`-target nchan`), over WebSocket or Server-Sent Events (`-transport`),
// with one load generator for all. See README.md in this directory.
//
//	go run ./examples/loadtest -target realtime -subs 200 -duration 2s -check
//
// Every loop is bounded in count and in time; -timeout is a hard limit after
// which the program exits by itself.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	target      string
	transport   string
	h2          bool
	subURL      string
	pubURL      string
	secret      string
	channel     string
	subs        int
	ramp        float64
	dialWorkers int
	srcIPs      int
	readBuf     int
	idle        bool
	idleWait    time.Duration
	duration    time.Duration
	rate        float64
	events      int64
	pubs        int
	batch       int
	size        int
	warmup      time.Duration
	drain       time.Duration
	timeout     time.Duration
	reqTimeout  time.Duration
	serverPid   int
	pidfile     string
	insecure    bool
	resume      bool
	maxResumes  int
	jsonOut     bool
	check       bool
	label       string
	quiet       bool
	cpuprofile  string
	reader      string
	pollers     int
	slow        int
	slowPause   time.Duration
	slowRcvBuf  int

	pusherKey     string
	pusherSecret  string
	pusherApp     string
	pusherTrigger bool

	trace string
	admin string

	presence    int
	private     bool
	tokenSecret string
}

var base = time.Now()

// mono is a monotonic clock in ns, shared by the publisher's send stamp and
// the subscribers' receive time (same process).
func mono() int64 { return int64(time.Since(base)) }

func main() {
	os.Exit(realMain())
}

func realMain() int {
	if len(os.Args) > 1 && os.Args[1] == "summarize" {
		return summarizeMain(os.Args[2:], os.Stdout)
	}
	cfg := &config{}
	flag.StringVar(&cfg.target, "target", "realtime", "server kind: realtime | pusher (realtime_pusher subscribers, WebSocket only) | nchan")
	flag.StringVar(&cfg.transport, "transport", "ws", "subscriber transport: ws (WebSocket) | sse (Server-Sent Events, an EventSource's GET)")
	flag.BoolVar(&cfg.h2, "h2", false, "-transport sse over HTTP/2 (https:// only): many streams per TLS connection through net/http, a goroutine each")
	flag.StringVar(&cfg.subURL, "url", "", "subscriber URL without query (default realtime ws://127.0.0.1:8480/ws, pusher ws://127.0.0.1:8480/app/<key>, nchan ws://127.0.0.1:8490/sub; with -transport sse http://... on the same routes)")
	flag.StringVar(&cfg.pubURL, "pub-url", "", "publish URL (default realtime http://127.0.0.1:8480/pub, nchan http://127.0.0.1:8490/pub)")
	flag.StringVar(&cfg.secret, "secret", envOr("REALTIME_SECRET", "loadtest-secret"), "realtime_broadcast secret (Bearer); env REALTIME_SECRET")
	flag.StringVar(&cfg.channel, "channel", "", "channel name (default: unique per run, load-<pid>-<time>)")
	flag.IntVar(&cfg.subs, "subs", 100, "number of WebSocket subscribers (<= ~19,000 under a 20,000 open-files limit)")
	flag.Float64Var(&cfg.ramp, "ramp", 2000, "connect rate limit, connections/s (0 = as fast as -dial-workers allow)")
	flag.IntVar(&cfg.dialWorkers, "dial-workers", 32, "concurrent dials during the ramp")
	flag.IntVar(&cfg.srcIPs, "src-ips", 64, "spread subscriber source addresses over 127.0.0.1 .. 127.0.0.<n>")
	flag.IntVar(&cfg.readBuf, "read-buf", 16384, "subscriber read buffer bytes (client side)")
	flag.BoolVar(&cfg.idle, "idle", false, "idle mode: connect, wait -idle-wait after the last connect, measure memory, exit")
	flag.DurationVar(&cfg.idleWait, "idle-wait", 30*time.Second, "idle mode: wait after the last connect before measuring")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "publish phase length")
	flag.Float64Var(&cfg.rate, "rate", 0, "total publish rate, events/s (0 = back to back)")
	flag.Int64Var(&cfg.events, "events", 5_000_000, "maximum number of events to publish")
	flag.IntVar(&cfg.pubs, "pubs", 1, "publisher concurrency (keep-alive connections)")
	flag.IntVar(&cfg.batch, "batch", 1, "realtime: events per publish request (a JSON array body); nchan takes one per request")
	flag.IntVar(&cfg.size, "size", 200, "event payload size in bytes (the JSON object carrying seq, ts and padding)")
	flag.DurationVar(&cfg.warmup, "warmup", 15*time.Second, "max time to wait until every subscriber got a warm-up event")
	flag.DurationVar(&cfg.drain, "drain", 5*time.Second, "after publishing, wait for deliveries until none arrives for this long")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "hard limit for the whole run")
	flag.DurationVar(&cfg.reqTimeout, "req-timeout", 10*time.Second, "per publish request timeout")
	flag.IntVar(&cfg.serverPid, "server-pid", 0, "server pid for /proc figures (summed with its descendants)")
	flag.StringVar(&cfg.pidfile, "server-pidfile", "", "read the server pid from this file (nginx's pid file)")
	flag.BoolVar(&cfg.insecure, "insecure", false, "skip TLS verification for wss:// and https:// (tls internal)")
	flag.BoolVar(&cfg.resume, "resume", true, "realtime: on a close (e.g. 1013), reconnect with since=<last cursor> and count what was recovered")
	flag.IntVar(&cfg.maxResumes, "max-resumes", 3, "realtime: reconnects allowed per subscriber")
	flag.BoolVar(&cfg.jsonOut, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.check, "check", false, "exit 1 unless every subscriber connected, something was delivered and nothing was lost, duplicated or reordered")
	flag.StringVar(&cfg.label, "label", "", "free text copied into the result")
	flag.BoolVar(&cfg.quiet, "quiet", false, "no progress on stderr")
	flag.StringVar(&cfg.reader, "reader", "auto", "subscriber reader: epoll (Linux, ws:// or http:// only: one read per readiness, cheapest), goroutine (one goroutine per connection), auto")
	flag.IntVar(&cfg.pollers, "pollers", 2, "epoll reader: number of epoll sets / goroutines")
	flag.IntVar(&cfg.slow, "slow", 0, "this many subscribers stop reading for -slow-pause when publishing starts (slow consumers: expect 1013 and a resume for realtime)")
	flag.DurationVar(&cfg.slowPause, "slow-pause", 5*time.Second, "how long the -slow subscribers stop reading")
	flag.IntVar(&cfg.slowRcvBuf, "slow-rcvbuf", 4096, "SO_RCVBUF of the -slow subscribers, so the server notices them early")
	flag.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write the load generator's own CPU profile here")
	flag.StringVar(&cfg.trace, "trace", "", "write a Go execution trace of the server (Caddy's admin /debug/pprof/trace) taken during the publish phase here; realtime and pusher targets")
	flag.IntVar(&cfg.presence, "presence", 0, "realtime: every subscriber joins a presence channel as a user of its own, this many users a channel (with -idle: memory per presence connection)")
	flag.BoolVar(&cfg.private, "private", false, "with -presence: private-* channels instead of presence-* ones, with the same tokens (the baseline for what presence itself costs)")
	flag.StringVar(&cfg.tokenSecret, "token-secret", envOr("RT_TOKEN_SECRET", "loadtest-token-secret"), "realtime_ws token_secret, for -presence tokens; env RT_TOKEN_SECRET")
	flag.StringVar(&cfg.admin, "admin", "http://"+envOr("RT_ADMIN", "localhost:2019"), "Caddy's admin endpoint, for -trace")
	flag.StringVar(&cfg.pusherKey, "pusher-key", envOr("PUSHER_APP_KEY", "loadtest-key"), "pusher: the app key (subscribers connect to /app/<key>); env PUSHER_APP_KEY")
	flag.StringVar(&cfg.pusherSecret, "pusher-secret", envOr("PUSHER_APP_SECRET", "loadtest-pusher-secret"), "pusher: the app secret, for -pusher-trigger; env PUSHER_APP_SECRET")
	flag.StringVar(&cfg.pusherApp, "pusher-app", envOr("PUSHER_APP_ID", "1"), "pusher: the app id, for -pusher-trigger; env PUSHER_APP_ID")
	flag.BoolVar(&cfg.pusherTrigger, "pusher-trigger", false, "pusher: publish through the Pusher HTTP API (signed POST /apps/<id>/events, or batch_events with -batch) instead of realtime_broadcast")
	flag.Parse()

	if err := cfg.finish(); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	// Hard stop: whatever hangs, the process ends shortly after -timeout.
	time.AfterFunc(cfg.timeout+20*time.Second, func() {
		fmt.Fprintln(os.Stderr, "loadtest: hard timeout, exiting")
		os.Exit(3)
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()

	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			return 2
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	r, err := newRun(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 2
	}
	res := r.execute(ctx)
	if cfg.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		printHuman(os.Stdout, res)
	}
	if cfg.check {
		if len(res.CheckFailures) > 0 {
			fmt.Fprintln(os.Stderr, "CHECK FAILED:", strings.Join(res.CheckFailures, "; "))
			return 1
		}
		fmt.Fprintln(os.Stderr, "CHECK OK")
	}
	return 0
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func (c *config) finish() error {
	if c.batch < 1 || c.batch > 100 || c.batch > 1 && c.target == "nchan" || c.batch > 10 && c.pusherTrigger {
		return fmt.Errorf("-batch must be 1 to 100 (the module's default max_batch), 1 for nchan, at most 10 with -pusher-trigger")
	}
	if c.pusherTrigger && c.target != "pusher" {
		return fmt.Errorf("-pusher-trigger needs -target pusher")
	}
	scheme := "ws"
	switch c.transport {
	case "ws":
		if c.h2 {
			return fmt.Errorf("-h2 needs -transport sse")
		}
	case "sse":
		scheme = "http"
		if c.h2 {
			scheme = "https"
		}
	default:
		return fmt.Errorf("-transport must be ws or sse")
	}
	switch c.target {
	case "realtime":
		if c.subURL == "" {
			c.subURL = scheme + "://127.0.0.1:8480/ws"
		}
		if c.pubURL == "" {
			c.pubURL = "http://127.0.0.1:8480/pub"
		}
	case "pusher":
		if c.transport != "ws" {
			return fmt.Errorf("-target pusher needs -transport ws (the Pusher protocol has no SSE form)")
		}
		if c.subURL == "" {
			c.subURL = "ws://127.0.0.1:8480/app/" + c.pusherKey
		}
		if c.pubURL == "" {
			c.pubURL = "http://127.0.0.1:8480/pub"
			if c.pusherTrigger {
				c.pubURL = "http://127.0.0.1:8480/apps/" + c.pusherApp + "/events"
				if c.batch > 1 {
					c.pubURL = "http://127.0.0.1:8480/apps/" + c.pusherApp + "/batch_events"
				}
			}
		}
		// Pusher has no cursors: nothing to resume from.
		c.resume = false
	case "nchan":
		if c.subURL == "" {
			c.subURL = scheme + "://127.0.0.1:8490/sub"
		}
		if c.pubURL == "" {
			c.pubURL = "http://127.0.0.1:8490/pub"
		}
		c.resume = false
	default:
		return fmt.Errorf("-target must be realtime, pusher or nchan")
	}
	if c.channel == "" {
		c.channel = fmt.Sprintf("load-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	}
	if c.subs < 0 || c.subs > 19900 {
		return fmt.Errorf("-subs must be 0..19900 (open-files limit)")
	}
	if c.pubs < 1 || c.pubs > 1024 {
		return fmt.Errorf("-pubs must be 1..1024")
	}
	if c.srcIPs < 1 || c.srcIPs > 254 {
		return fmt.Errorf("-src-ips must be 1..254")
	}
	if c.dialWorkers < 1 || c.dialWorkers > 1024 {
		return fmt.Errorf("-dial-workers must be 1..1024")
	}
	if c.events < 1 || c.events > 50_000_000 {
		return fmt.Errorf("-events must be 1..50,000,000")
	}
	if c.size < 40 || c.size > 60000 {
		return fmt.Errorf("-size must be 40..60000")
	}
	if c.slow < 0 || c.slow > c.subs {
		return fmt.Errorf("-slow must be 0..-subs")
	}
	if c.pollers < 1 || c.pollers > 64 {
		return fmt.Errorf("-pollers must be 1..64")
	}
	plain := strings.HasPrefix(c.subURL, "ws://") || strings.HasPrefix(c.subURL, "http://")
	switch {
	case c.h2:
		c.reader = "h2" // net/http's reader, a goroutine per stream
	case c.reader == "auto":
		c.reader = "goroutine"
		if epollAvailable && plain {
			c.reader = "epoll"
		}
	case c.reader == "epoll":
		if !epollAvailable || !plain {
			return fmt.Errorf("-reader epoll needs Linux and a ws:// or http:// URL")
		}
	case c.reader == "goroutine":
	default:
		return fmt.Errorf("-reader must be auto, epoll or goroutine")
	}
	if c.readBuf < 512 {
		c.readBuf = 512
	}
	if c.timeout <= 0 {
		return fmt.Errorf("-timeout must be > 0")
	}
	if c.pidfile != "" && c.serverPid == 0 {
		pid, err := readPidfile(c.pidfile)
		if err != nil {
			return fmt.Errorf("-server-pidfile: %v", err)
		}
		c.serverPid = pid
	}
	return nil
}

// ---------------------------------------------------------------------------

type sub struct {
	id    int
	ip    net.IP
	conn  *wsConn
	seen  []uint64 // bitset of received sequence numbers
	recv  uint64   // measured frames, duplicates included
	dup   uint64
	ooo   uint64
	other uint64  // event frames without seq/ts
	last  []int64 // per publisher: highest seq received from it
	uniq  atomic.Uint64
	lastT atomic.Int64 // mono time of the last measured frame
	ready atomic.Bool  // got a warm-up event
	slow  bool         // pauses reading once when publishing starts
	pausd bool

	sse       sseState // -transport sse: the stream's parser
	fd        int      // epoll reader: the socket, -1 when none
	rbuf      []byte   // epoll reader: unparsed bytes
	frag      []byte   // epoll reader: fragmented message so far
	mask      [4]byte
	closeCode int
	connected bool

	subscribed   bool
	cursor       []byte
	disconnects  int
	closeCodes   []int
	discErrs     []string
	resumes      int
	notRecovered int
	ctrlErrors   int
	dead         bool
	lastErr      string
}

type run struct {
	cfg       *config
	realtime  bool         // the module's own protocol
	pusher    bool         // the Pusher protocol (realtime_pusher)
	sse       bool         // -transport sse
	h2        *http.Client // -h2
	subURL    *url.URL
	pubURL    *url.URL
	tlsConf   *tls.Config
	auth      string
	subs      []*sub
	lat       *hist
	publat    *hist
	wg        sync.WaitGroup
	stopping  atomic.Bool
	measuring atomic.Bool
	ctx       context.Context

	acked   []atomic.Uint64
	ackedN  atomic.Int64
	nextSeq atomic.Int64

	connected atomic.Int64
	dialFail  sync.Map // reason -> *atomic.Int64
	lastConn  atomic.Int64

	eps *epollSet
}

func newRun(cfg *config) (*run, error) {
	r := &run{cfg: cfg, realtime: cfg.target == "realtime", pusher: cfg.target == "pusher", sse: cfg.transport == "sse", lat: newHist(), publat: newHist()}
	su, err := url.Parse(cfg.subURL)
	switch {
	case cfg.h2 && (err != nil || su.Scheme != "https"):
		return nil, fmt.Errorf("-h2: -url must be https://")
	case r.sse && (err != nil || (su.Scheme != "http" && su.Scheme != "https")):
		return nil, fmt.Errorf("-transport sse: -url must be http:// or https://")
	case !r.sse && (err != nil || (su.Scheme != "ws" && su.Scheme != "wss")):
		return nil, fmt.Errorf("-url must be ws:// or wss://")
	}
	pu, err := url.Parse(cfg.pubURL)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") {
		return nil, fmt.Errorf("-pub-url must be http:// or https://")
	}
	sq, pq := su.Query(), pu.Query()
	switch {
	case r.realtime:
		sq.Set("channels", cfg.channel)
		r.auth = "Authorization: Bearer " + cfg.secret + "\r\n"
	case r.pusher:
		// pusher-js's query; the channel is subscribed after the handshake.
		sq.Set("protocol", "7")
		sq.Set("client", "js")
		sq.Set("version", "8.6.0")
		if !cfg.pusherTrigger {
			r.auth = "Authorization: Bearer " + cfg.secret + "\r\n"
		}
	default:
		sq.Set("id", cfg.channel)
		pq.Set("id", cfg.channel)
	}
	su.RawQuery, pu.RawQuery = sq.Encode(), pq.Encode()
	r.subURL, r.pubURL = su, pu
	r.tlsConf = &tls.Config{InsecureSkipVerify: cfg.insecure, ServerName: su.Hostname()}
	if cfg.h2 {
		r.h2 = r.h2Client()
	}
	r.acked = make([]atomic.Uint64, cfg.events/64+1)
	return r, nil
}

func (r *run) logf(format string, a ...any) {
	if !r.cfg.quiet {
		fmt.Fprintf(os.Stderr, "[%6.2fs] "+format+"\n", append([]any{time.Since(base).Seconds()}, a...)...)
	}
}

// ---------------------------------------------------------------------------
// subscribers

func (r *run) srcIP(i int) net.IP {
	return net.IPv4(127, 0, 0, byte(1+i%r.cfg.srcIPs))
}

func (r *run) dialSub(ctx context.Context, s *sub, since []byte) (*wsConn, error) {
	u := r.subURL
	if r.sse {
		// The browser's resume: Last-Event-ID, the id of the last event
		// (the module's cursor).
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if r.h2 != nil {
			return r.h2Dial(dctx, u, since)
		}
		rcv := 0
		if s.slow {
			rcv = r.cfg.slowRcvBuf
		}
		return sseDial(dctx, u, s.ip, r.tlsConf, r.cfg.readBuf, rcv, since)
	}
	if since != nil {
		cu := *u
		q := cu.Query()
		q.Set("since", string(since))
		cu.RawQuery = q.Encode()
		u = &cu
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	rcv := 0
	if s.slow {
		rcv = r.cfg.slowRcvBuf
	}
	hdr := ""
	if r.cfg.presence > 0 {
		u = r.presenceURL(u, s.id)
		hdr = "Authorization: Bearer " + r.presenceToken(s.id) + "\r\n"
	}
	w, err := wsDial(dctx, u, s.ip, r.tlsConf, r.cfg.readBuf, rcv, hdr)
	if err == nil && r.pusher {
		// A public channel: pusher-js sends an empty auth for those.
		err = w.writeText([]byte(`{"event":"pusher:subscribe","data":{"auth":"","channel":"` + r.cfg.channel + `"}}`))
		if err != nil {
			w.close()
		}
	}
	return w, err
}

// sendText sends a text frame to the server on s's connection, whichever
// reader holds it.
func (r *run) sendText(s *sub, payload []byte) error {
	if s.fd >= 0 {
		return writeFD(s.fd, maskedText(s.mask, payload))
	}
	return s.conn.writeText(payload)
}

// attach starts reading s from w: in an epoll set, or in its own goroutine.
func (r *run) attach(s *sub, w *wsConn) error {
	if r.sse {
		s.sse = sseState{chunked: w.chunk, chunk: -1, data: s.sse.data[:0]}
	}
	if r.eps != nil && !s.slow { // slow subscribers sleep in their own goroutine
		return r.eps.attach(r, s, w)
	}
	s.conn = w
	r.wg.Add(1)
	if r.sse {
		go r.sseReadLoop(s)
	} else {
		go r.readLoop(s)
	}
	return nil
}

func (r *run) countDialFail(err error) {
	reason := err.Error()
	var he *handshakeError
	if errors.As(err, &he) {
		reason = fmt.Sprintf("HTTP %d", he.Status)
	} else if len(reason) > 80 {
		reason = reason[:80]
	}
	v, _ := r.dialFail.LoadOrStore(reason, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// ramp dials every subscriber at most cfg.ramp per second.
func (r *run) ramp(ctx context.Context) {
	n := r.cfg.subs
	r.subs = make([]*sub, n)
	for i := range r.subs {
		r.subs[i] = &sub{id: i, ip: r.srcIP(i), fd: -1, slow: i < r.cfg.slow}
	}
	work := make(chan int)
	var dw sync.WaitGroup
	for w := 0; w < r.cfg.dialWorkers; w++ {
		dw.Add(1)
		go func() {
			defer dw.Done()
			for i := range work {
				s := r.subs[i]
				var err error
				var w *wsConn
				for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
					if w, err = r.dialSub(ctx, s, nil); err == nil {
						break
					}
					var he *handshakeError
					if errors.As(err, &he) {
						break // the server said no: do not hammer it
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					r.countDialFail(err)
					s.lastErr = err.Error()
					s.dead = true
					continue
				}
				s.connected = true
				r.connected.Add(1)
				r.lastConn.Store(mono())
				if err := r.attach(s, w); err != nil {
					r.countDialFail(err)
					s.lastErr = err.Error()
					s.dead = true
				}
			}
		}()
	}
	start := time.Now()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
feed:
	for i := 0; i < n; i++ {
		if r.cfg.ramp > 0 {
			at := start.Add(time.Duration(float64(i) / r.cfg.ramp * 1e9))
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					break feed
				}
			}
		}
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
		select {
		case <-tick.C:
			r.logf("ramp: %d/%d connected", r.connected.Load(), n)
		default:
		}
	}
	close(work)
	dw.Wait()
}

var (
	keyType     = []byte(`"type":"realtime:`)
	keySeq      = []byte(`"seq":`)
	keyPub      = []byte(`"p":`)
	keyTs       = []byte(`"ts":`)
	keyCursor   = []byte(`"cursor":"`)
	keySubd     = []byte(`realtime:subscribed`)
	keyRecFalse = []byte(`"recovered":false`)
	keyErr      = []byte(`realtime:error`)

	// The Pusher protocol's frames carry the payload as a JSON string, so
	// its keys come escaped.
	keyPusherCtl   = []byte(`{"event":"pusher`)
	keyPusherSubd  = []byte(`pusher_internal:subscription_succeeded`)
	keyPusherPing  = []byte(`"pusher:ping"`)
	keyPusherErr   = []byte(`error"`) // pusher:error, pusher:subscription_error
	keyPusherSeq   = []byte(`\"seq\":`)
	keyPusherPub   = []byte(`\"p\":`)
	keyPusherTs    = []byte(`\"ts\":`)
	pusherPongJSON = []byte(`{"event":"pusher:pong","data":{}}`)
)

func (r *run) readLoop(s *sub) {
	defer r.wg.Done()
	for {
		m, err := s.conn.next()
		if err == nil {
			r.handle(s, m)
			if s.slow && !s.pausd && r.measuring.Load() {
				s.pausd = true
				select {
				case <-time.After(r.cfg.slowPause):
				case <-r.ctx.Done():
				}
			}
			continue
		}
		s.conn.close()
		if r.stopping.Load() {
			return
		}
		s.closeCode = s.conn.closed
		r.lost(s, err)
		return
	}
}

// lost records a disconnect; for the realtime target it resumes the
// subscriber with since=<last cursor> in a new goroutine.
func (r *run) lost(s *sub, err error) {
	s.disconnects++
	s.closeCodes = append(s.closeCodes, s.closeCode)
	if len(s.discErrs) < 10 {
		e := err.Error()
		if len(e) > 60 {
			e = e[:60]
		}
		s.discErrs = append(s.discErrs, e)
	}
	s.closeCode = 0
	s.lastErr = err.Error()
	if !(r.realtime && r.cfg.resume && s.resumes < r.cfg.maxResumes && r.ctx.Err() == nil) {
		s.dead = true
		return
	}
	s.resumes++
	var since []byte
	if len(s.cursor) > 0 {
		since = append([]byte(nil), s.cursor...)
	}
	s.subscribed = false
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		w, err := r.dialSub(r.ctx, s, since)
		if err == nil {
			if r.stopping.Load() {
				w.close()
				return
			}
			if err = r.attach(s, w); err == nil {
				return
			}
		}
		s.lastErr = "resume: " + err.Error()
		s.dead = true
	}()
}

func (r *run) handle(s *sub, m []byte) {
	now := mono()
	if r.realtime {
		if indexPrefix(m, keyType) {
			switch {
			case contains(m, keySubd):
				if s.resumes > 0 && contains(m, keyRecFalse) {
					s.notRecovered++
				}
				s.subscribed = true
			case contains(m, keyErr):
				s.ctrlErrors++
			}
			return
		}
		if c, ok := scanString(m, keyCursor); ok {
			s.cursor = append(s.cursor[:0], c...)
		}
	}
	kSeq, kTs, kPub := keySeq, keyTs, keyPub
	if r.pusher {
		if bytes.HasPrefix(m, keyPusherCtl) {
			switch {
			case contains(m, keyPusherSubd):
				s.subscribed = true
			case contains(m, keyPusherPing):
				if err := r.sendText(s, pusherPongJSON); err != nil {
					s.lastErr = "pong: " + err.Error()
				}
			case contains(m, keyPusherErr):
				s.ctrlErrors++
			}
			return
		}
		kSeq, kTs, kPub = keyPusherSeq, keyPusherTs, keyPusherPub
	}
	seq, ok1 := scanInt(m, kSeq)
	ts, ok2 := scanInt(m, kTs)
	if !ok1 || !ok2 {
		s.other++
		return
	}
	if seq < 0 { // warm-up event
		s.ready.Store(true)
		return
	}
	s.recv++
	r.lat.record(s.id, now-ts)
	w := int(seq >> 6)
	if w >= len(s.seen) {
		if w >= len(r.acked) {
			s.other++
			return
		}
		n := make([]uint64, w+1+len(s.seen)/2)
		copy(n, s.seen)
		s.seen = n
	}
	bit := uint64(1) << (uint(seq) & 63)
	if s.seen[w]&bit != 0 {
		s.dup++
	} else {
		s.seen[w] |= bit
		s.uniq.Add(1)
	}
	// Each publisher waits for an answer before its next event, so its own
	// events must arrive in the order it sent them, whatever the others do.
	p, _ := scanInt(m, kPub)
	if p < 0 || p >= int64(r.cfg.pubs) {
		p = 0
	}
	if s.last == nil {
		s.last = make([]int64, r.cfg.pubs)
		for i := range s.last {
			s.last[i] = -1
		}
	}
	if seq < s.last[p] {
		s.ooo++
	} else {
		s.last[p] = seq
	}
	s.lastT.Store(now)
}

// ---------------------------------------------------------------------------
// publishers

func (r *run) buildBody(b []byte, seq, pub, ts int64) []byte {
	if r.cfg.pusherTrigger {
		return r.triggerBody(b, seq, pub, ts)
	}
	if r.realtime || r.pusher {
		b = append(b, `{"channel":"`...)
		b = append(b, r.cfg.channel...)
		b = append(b, `","type":"load","payload":`...)
	}
	start := len(b)
	b = append(b, `{"seq":`...)
	b = appendInt(b, seq)
	b = append(b, `,"p":`...)
	b = appendInt(b, pub)
	b = append(b, `,"ts":`...)
	b = appendInt(b, ts)
	b = append(b, `,"pad":"`...)
	pad := r.cfg.size - (len(b) - start) - 2
	for i := 0; i < pad; i++ {
		b = append(b, 'x')
	}
	b = append(b, `"}`...)
	if r.realtime || r.pusher {
		b = append(b, '}')
	}
	return b
}

func (r *run) success(status int, body []byte) bool {
	if r.cfg.pusherTrigger {
		return status == 200
	}
	if r.realtime || r.pusher {
		return status == 200 && contains(body, []byte(`"success"`))
	}
	return status == 200 || status == 201 || status == 202
}

type pubStats struct {
	sent     int64
	ok       int64
	statuses map[int]int64
	errors   map[string]int64
}

func (r *run) publisher(ctx context.Context, idx int, t0 int64, out *pubStats) {
	hc := r.newPublisherConn()
	defer hc.reset()
	out.statuses = map[int]int64{}
	out.errors = map[string]int64{}
	dur := int64(r.cfg.duration)
	var body []byte
	n := int64(r.cfg.batch)
	for ctx.Err() == nil {
		seq := r.nextSeq.Add(n) - n
		if seq+n > r.cfg.events {
			return
		}
		if r.cfg.rate > 0 {
			at := int64(float64(seq) / r.cfg.rate * 1e9)
			if at >= dur {
				return
			}
			if d := time.Duration(t0 + at - mono()); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
		} else if mono()-t0 >= dur {
			return
		}
		ts := mono()
		if n == 1 {
			body = r.buildBody(body[:0], seq, int64(idx), ts)
		} else {
			open, end := "[", "]"
			if r.cfg.pusherTrigger {
				open, end = `{"batch":[`, "]}"
			}
			body = append(body[:0], open...)
			for k := int64(0); k < n; k++ {
				if k > 0 {
					body = append(body, ',')
				}
				body = r.buildBody(body, seq+k, int64(idx), ts)
			}
			body = append(body, end...)
		}
		st, rb, err := hc.post(r.auth, body)
		r.publat.record(idx, mono()-ts)
		out.sent++
		if err != nil {
			e := err.Error()
			if len(e) > 60 {
				e = e[:60]
			}
			out.errors[e]++
			if st == 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
		}
		out.statuses[st]++
		if err == nil && r.success(st, rb) {
			out.ok++
			for k := seq; k < seq+n; k++ {
				r.acked[k>>6].Or(uint64(1) << (uint(k) & 63))
			}
			r.ackedN.Add(n)
		}
	}
}

// newPublisherConn is a publisher's connection; Pusher API requests are
// signed one by one.
func (r *run) newPublisherConn() *httpConn {
	hc := newHTTPConn(r.pubURL, r.tlsConf, r.cfg.reqTimeout)
	if r.cfg.pusherTrigger {
		hc.uri = r.signedURI
	}
	return hc
}

// warmPublish sends one warm-up event (seq -1); its result is not counted.
func (r *run) warmPublish(hc *httpConn) (int, error) {
	body := r.buildBody(nil, -1, 0, mono())
	if r.cfg.pusherTrigger && r.cfg.batch > 1 {
		body = append(append([]byte(`{"batch":[`), body...), "]}"...)
	}
	st, rb, err := hc.post(r.auth, body)
	if err == nil && !r.success(st, rb) {
		err = fmt.Errorf("warm-up publish: HTTP %d %s", st, trunc(string(rb), 200))
	}
	return st, err
}

// ---------------------------------------------------------------------------

func (r *run) execute(ctx context.Context) *result {
	r.ctx = ctx
	cfg := r.cfg
	res := &result{
		Label: cfg.label, Target: cfg.target, Transport: cfg.transport, H2: cfg.h2, Mode: "publish", Channel: cfg.channel,
		Subs: cfg.subs, Pubs: cfg.pubs, Batch: cfg.batch, Rate: cfg.rate, SizeBytes: cfg.size,
		DurationS: cfg.duration.Seconds(), SubURL: r.subURL.String(), PubURL: r.pubURL.String(),
		ServerPid: cfg.serverPid, Statuses: map[string]int64{}, DialFailures: map[string]int64{},
		CloseCodes: map[string]int64{}, CheckFailures: []string{}, DisconnectErrs: map[string]int64{},
	}
	if cfg.idle {
		res.Mode = "idle"
	}
	snap := func() *procSnap {
		if cfg.serverPid == 0 {
			return nil
		}
		s, err := snapTree(cfg.serverPid)
		if err != nil {
			res.Notes = append(res.Notes, err.Error())
			return nil
		}
		return &s
	}
	self0 := selfCPU()
	res.Server.Before = snap()
	m0 := snapMachine()
	res.Reader = cfg.reader
	if cfg.reader == "epoll" {
		es, err := newEpollSet(r, cfg.pollers)
		if err != nil {
			res.Notes = append(res.Notes, "epoll: "+err.Error())
			r.finish(res, self0, false)
			return res
		}
		r.eps = es
	}

	// 1. ramp
	r.logf("ramp: %d subscribers to %s (rate %.0f/s)", cfg.subs, r.subURL, cfg.ramp)
	t := mono()
	r.ramp(ctx)
	res.Connected = r.connected.Load()
	if res.Connected > 0 {
		span := float64(r.lastConn.Load()-t) / 1e9
		res.RampS = span
		if span > 0 {
			res.RampPerS = float64(res.Connected) / span
		}
	}
	r.dialFail.Range(func(k, v any) bool {
		res.DialFailures[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	r.logf("ramp: %d connected in %.2fs (%.0f/s)", res.Connected, res.RampS, res.RampPerS)
	res.Server.AfterRamp = snap()

	if cfg.idle {
		wait := time.Duration(r.lastConn.Load()+int64(cfg.idleWait)-mono()) * time.Nanosecond
		if res.Connected == 0 {
			wait = 0
		}
		r.logf("idle: waiting %.1fs", wait.Seconds())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			res.Notes = append(res.Notes, "hard timeout during the idle wait")
		}
		res.Server.AfterIdle = snap()
		srv := 0.0
		if b, a := res.Server.Before, res.Server.AfterIdle; b != nil && a != nil {
			srv = a.CPUSecs - b.CPUSecs
		}
		res.Machine = window(m0, snapMachine(), srv)
		r.finish(res, self0, false)
		return res
	}

	// 2. warm-up: every subscriber must have seen one event before measuring
	hc := r.newPublisherConn()
	wdl := mono() + int64(cfg.warmup)
	var ready int64
	for i := 0; i < 10000 && ctx.Err() == nil; i++ {
		ready = 0
		for _, s := range r.subs {
			if s.ready.Load() {
				ready++
			}
		}
		if ready >= res.Connected || mono() > wdl {
			break
		}
		if i%2 == 0 {
			if _, err := r.warmPublish(hc); err != nil {
				res.Notes = append(res.Notes, err.Error())
				r.logf("%v", err)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	hc.reset()
	res.ReadySubs = ready
	if ready < res.Connected {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of %d subscribers never got a warm-up event", res.Connected-ready, res.Connected))
	}
	r.logf("warm-up: %d/%d subscribers ready", ready, res.Connected)
	time.Sleep(100 * time.Millisecond) // let straggling warm-up frames arrive

	// 3. publish
	res.Server.BeforePublish = snap()
	mp := snapMachine()
	r.measuring.Store(true)
	t0 := mono()
	r.logf("publish: %d publisher(s), rate %v, for %v", cfg.pubs, rateStr(cfg.rate), cfg.duration)
	var traced chan error
	if cfg.trace != "" {
		traced = make(chan error, 1)
		go func() { traced <- captureTrace(ctx, cfg.admin, cfg.trace, cfg.duration) }()
	}
	stats := make([]pubStats, cfg.pubs)
	var pw sync.WaitGroup
	pctx, pcancel := context.WithTimeout(ctx, cfg.duration+cfg.reqTimeout+5*time.Second)
	for i := 0; i < cfg.pubs; i++ {
		pw.Add(1)
		go func(i int) {
			defer pw.Done()
			r.publisher(pctx, i, t0, &stats[i])
		}(i)
	}
	pw.Wait()
	pcancel()
	t1 := mono()
	if traced != nil {
		if err := <-traced; err != nil {
			res.Notes = append(res.Notes, err.Error())
		} else {
			r.logf("trace of the server written to %s (go tool trace %s)", cfg.trace, cfg.trace)
		}
	}
	var sent, ok int64
	for _, s := range stats {
		sent += s.sent
		ok += s.ok
		for k, v := range s.statuses {
			res.Statuses[fmt.Sprint(k)] += v
		}
		for k, v := range s.errors {
			res.Statuses["error: "+k] += v
		}
	}
	res.PublishSent, res.PublishOK = sent, ok
	pubSpan := float64(t1-t0) / 1e9
	res.PublishSpanS = pubSpan
	if pubSpan > 0 {
		res.PublishReqPerS = float64(sent) / pubSpan
		res.PublishOKPerS = float64(ok) / pubSpan
		res.PublishEventsPerS = float64(ok*int64(cfg.batch)) / pubSpan
	}
	res.PublishLatency = r.publat.summary()
	r.logf("publish: %d sent, %d ok in %.2fs", sent, ok, pubSpan)

	// 4. drain: until every subscriber has every acknowledged event, or no
	// progress for -drain.
	want := uint64(r.ackedN.Load()) * uint64(res.Connected)
	var got, prev uint64
	lastProgress := mono()
	for i := 0; i < 1_000_000 && ctx.Err() == nil; i++ {
		got = 0
		for _, s := range r.subs {
			got += s.uniq.Load()
		}
		if got >= want {
			break
		}
		if got != prev {
			prev, lastProgress = got, mono()
		} else if mono()-lastProgress > int64(cfg.drain) {
			res.Notes = append(res.Notes, fmt.Sprintf("drain: gave up after %v without progress (%d of %d deliveries)", cfg.drain, got, want))
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.Server.AfterPublish = snap()
	if b, a := res.Server.BeforePublish, res.Server.AfterPublish; b != nil && a != nil {
		res.Machine = window(mp, snapMachine(), a.CPUSecs-b.CPUSecs)
	} else {
		res.Machine = window(mp, snapMachine(), 0)
	}
	var lastT int64
	for _, s := range r.subs {
		lastT = max(lastT, s.lastT.Load())
	}
	if lastT > t0 {
		res.DeliverySpanS = float64(lastT-t0) / 1e9
	}
	r.finish(res, self0, true)
	return res
}

// finish closes every subscriber and computes the figures.
func (r *run) finish(res *result, self0 float64, publish bool) {
	cfg := r.cfg
	r.stopping.Store(true)
	if r.eps != nil {
		r.eps.stop() // pollers notice within 100 ms
		for _, s := range r.subs {
			if s.fd >= 0 {
				closeFD(s.fd)
				s.fd = -1
			}
		}
	}
	for _, s := range r.subs {
		if s.conn != nil {
			s.conn.interrupt()
		}
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		res.Notes = append(res.Notes, "some subscriber goroutines did not stop within 10s")
	}
	for _, s := range r.subs {
		if s.conn != nil {
			s.conn.close()
		}
	}
	res.GeneratorCPUS = selfCPU() - self0

	// memory per connection
	b := res.Server.Before
	a := res.Server.AfterRamp
	if res.Server.AfterIdle != nil {
		a = res.Server.AfterIdle
	}
	if b != nil && a != nil && res.Connected > 0 {
		res.RSSPerConnKiB = float64(a.RSSKiB-b.RSSKiB) / float64(res.Connected)
		if a.PSSKiB >= 0 && b.PSSKiB >= 0 {
			res.PSSPerConnKiB = float64(a.PSSKiB-b.PSSKiB) / float64(res.Connected)
		}
		res.MemPerConnKiB, res.MemBasis = res.RSSPerConnKiB, "rss"
		if a.Procs > 1 && a.PSSKiB >= 0 {
			res.MemPerConnKiB, res.MemBasis = res.PSSPerConnKiB, "pss"
		}
	}

	// subscriber state
	for _, s := range r.subs {
		if s.dead {
			res.DeadSubs++
		}
		res.Disconnects += int64(s.disconnects)
		res.Resumes += int64(s.resumes)
		res.NotRecovered += int64(s.notRecovered)
		res.ControlErrors += int64(s.ctrlErrors)
		res.KeepAlives += int64(s.sse.pings)
		for _, c := range s.closeCodes {
			res.CloseCodes[fmt.Sprint(c)]++
		}
		for _, e := range s.discErrs {
			res.DisconnectErrs[e]++
		}
	}
	if publish {
		acked := make([]uint64, len(r.acked))
		for i := range acked {
			acked[i] = r.acked[i].Load()
		}
		res.Acked = r.ackedN.Load()
		var worst int64
		for _, s := range r.subs {
			if !s.connected {
				continue // never connected: counted in dial failures
			}
			var lost, extra int64
			for w, a := range acked {
				var got uint64
				if w < len(s.seen) {
					got = s.seen[w]
				}
				lost += int64(popcount(a &^ got))
				extra += int64(popcount(got &^ a))
			}
			res.Deliveries += int64(s.recv)
			res.Lost += lost
			res.Duplicated += int64(s.dup)
			res.OutOfOrder += int64(s.ooo)
			res.UnackedDelivered += extra
			res.OtherFrames += int64(s.other)
			if lost > 0 {
				res.SubsWithLoss++
			}
			worst = max(worst, lost)
		}
		res.WorstSubLost = worst
		if res.DeliverySpanS > 0 {
			res.DeliveredPerS = float64(res.Deliveries) / res.DeliverySpanS
			res.EventsPerS = float64(res.Acked) / res.DeliverySpanS
		}
		res.Latency = r.lat.summary()
		bp, ap := res.Server.BeforePublish, res.Server.AfterPublish
		if bp != nil && ap != nil {
			res.ServerCPUS = ap.CPUSecs - bp.CPUSecs
			res.ServerUserS = ap.UserS - bp.UserS
			res.ServerSysS = ap.SysS - bp.SysS
			if res.Deliveries > 0 {
				res.CPUPerMillionDeliveries = res.ServerCPUS / float64(res.Deliveries) * 1e6
			}
			if res.PublishSent > 0 {
				res.CPUPerThousandPublishes = res.ServerCPUS / float64(res.PublishSent) * 1e3
			}
		}
	}
	// check
	f := &res.CheckFailures
	if res.Connected < int64(cfg.subs) {
		*f = append(*f, fmt.Sprintf("%d of %d subscribers failed to connect", int64(cfg.subs)-res.Connected, cfg.subs))
	}
	if publish {
		if res.Deliveries == 0 {
			*f = append(*f, "no event was delivered")
		}
		if res.Acked == 0 {
			*f = append(*f, "no publish succeeded")
		}
		if res.PublishSent != res.PublishOK {
			*f = append(*f, fmt.Sprintf("%d publish requests failed", res.PublishSent-res.PublishOK))
		}
		if res.Lost > 0 {
			*f = append(*f, fmt.Sprintf("%d deliveries lost (%d subscribers)", res.Lost, res.SubsWithLoss))
		}
		if res.Duplicated > 0 {
			*f = append(*f, fmt.Sprintf("%d deliveries duplicated", res.Duplicated))
		}
		if res.OutOfOrder > 0 {
			*f = append(*f, fmt.Sprintf("%d deliveries out of order", res.OutOfOrder))
		}
		if res.NotRecovered > 0 {
			*f = append(*f, fmt.Sprintf("%d resumes answered recovered:false", res.NotRecovered))
		}
	}
	if res.DeadSubs > 0 {
		*f = append(*f, fmt.Sprintf("%d subscribers ended disconnected", res.DeadSubs))
	}
	if r.ctx.Err() != nil {
		*f = append(*f, "hard timeout reached")
	}
}

// ---------------------------------------------------------------------------
// output

type serverSnaps struct {
	Before        *procSnap `json:"before,omitempty"`
	AfterRamp     *procSnap `json:"after_ramp,omitempty"`
	AfterIdle     *procSnap `json:"after_idle,omitempty"`
	BeforePublish *procSnap `json:"before_publish,omitempty"`
	AfterPublish  *procSnap `json:"after_publish,omitempty"`
}

type result struct {
	Label     string  `json:"label,omitempty"`
	Target    string  `json:"target"`
	Transport string  `json:"transport"`
	H2        bool    `json:"h2,omitempty"`
	Mode      string  `json:"mode"`
	Channel   string  `json:"channel"`
	SubURL    string  `json:"sub_url"`
	PubURL    string  `json:"pub_url"`
	Subs      int     `json:"subs"`
	Pubs      int     `json:"pubs"`
	Rate      float64 `json:"rate"`
	SizeBytes int     `json:"size_bytes"`
	DurationS float64 `json:"duration_s"`
	ServerPid int     `json:"server_pid,omitempty"`
	Reader    string  `json:"reader"`

	Connected    int64            `json:"connected"`
	DialFailures map[string]int64 `json:"dial_failures"`
	RampS        float64          `json:"ramp_s"`
	RampPerS     float64          `json:"ramp_per_s"`
	ReadySubs    int64            `json:"ready_subs"`

	PublishSent       int64            `json:"publish_sent"`
	PublishOK         int64            `json:"publish_ok"`
	Statuses          map[string]int64 `json:"publish_statuses"`
	PublishSpanS      float64          `json:"publish_span_s"`
	PublishReqPerS    float64          `json:"publish_req_per_s"`
	PublishOKPerS     float64          `json:"publish_ok_per_s"`
	Batch             int              `json:"batch"`
	PublishEventsPerS float64          `json:"publish_events_per_s"` // events in acknowledged requests
	PublishLatency    histSummary      `json:"publish_latency"`
	Acked             int64            `json:"acked"`
	Deliveries        int64            `json:"deliveries"`
	DeliverySpanS     float64          `json:"delivery_span_s"`
	DeliveredPerS     float64          `json:"delivered_per_s"`
	EventsPerS        float64          `json:"events_per_s"`
	Latency           histSummary      `json:"latency"`
	Lost              int64            `json:"lost"`
	SubsWithLoss      int64            `json:"subs_with_loss"`
	WorstSubLost      int64            `json:"worst_sub_lost"`
	Duplicated        int64            `json:"duplicated"`
	OutOfOrder        int64            `json:"out_of_order"`
	UnackedDelivered  int64            `json:"unacked_delivered"`
	OtherFrames       int64            `json:"other_frames"`
	Disconnects       int64            `json:"disconnects"`
	CloseCodes        map[string]int64 `json:"close_codes"`
	DisconnectErrs    map[string]int64 `json:"disconnect_errors"`
	Resumes           int64            `json:"resumes"`
	NotRecovered      int64            `json:"not_recovered"`
	ControlErrors     int64            `json:"control_errors"`
	KeepAlives        int64            `json:"keepalives"` // -transport sse: comment lines read
	DeadSubs          int64            `json:"dead_subs"`

	Server                  serverSnaps   `json:"server"`
	MemPerConnKiB           float64       `json:"mem_per_conn_kib"`
	MemBasis                string        `json:"mem_basis"`
	RSSPerConnKiB           float64       `json:"rss_per_conn_kib"`
	PSSPerConnKiB           float64       `json:"pss_per_conn_kib"`
	ServerCPUS              float64       `json:"server_cpu_s"`
	ServerUserS             float64       `json:"server_user_s"`
	ServerSysS              float64       `json:"server_sys_s"`
	CPUPerMillionDeliveries float64       `json:"cpu_s_per_million_deliveries"`
	CPUPerThousandPublishes float64       `json:"cpu_s_per_thousand_publishes"`
	GeneratorCPUS           float64       `json:"generator_cpu_s"`
	Machine                 machineWindow `json:"machine"`

	Notes         []string `json:"notes,omitempty"`
	CheckFailures []string `json:"check_failures"`
}

func printHuman(w *os.File, r *result) {
	p := func(k, f string, a ...any) { fmt.Fprintf(w, "  %-30s "+f+"\n", append([]any{k}, a...)...) }
	fmt.Fprintf(w, "loadtest %s  target=%s transport=%s mode=%s channel=%s reader=%s\n", r.Label, r.Target, r.Transport, r.Mode, r.Channel, r.Reader)
	p("subscribers", "%d requested, %d connected, ramp %.2fs (%.0f conn/s)", r.Subs, r.Connected, r.RampS, r.RampPerS)
	if len(r.DialFailures) > 0 {
		p("dial failures", "%v", r.DialFailures)
	}
	if r.Mode == "publish" {
		p("publishers", "%d, rate %s, %d-byte payload, %.1fs", r.Pubs, rateStr(r.Rate), r.SizeBytes, r.DurationS)
		p("publish requests", "%d sent, %d ok (%.0f req/s, %.0f ok/s)", r.PublishSent, r.PublishOK, r.PublishReqPerS, r.PublishOKPerS)
		if r.Batch > 1 {
			p("published events", "%d per request, %.0f events/s acknowledged", r.Batch, r.PublishEventsPerS)
		}
		p("publish statuses", "%s", mapStr(r.Statuses))
		p("publish latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  max %.3f", r.PublishLatency.P50Ms, r.PublishLatency.P90Ms, r.PublishLatency.P99Ms, r.PublishLatency.MaxMs)
		p("deliveries", "%d over %.2fs: %.0f deliveries/s (%.0f events/s fully fanned out)", r.Deliveries, r.DeliverySpanS, r.DeliveredPerS, r.EventsPerS)
		p("fan-out latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f", r.Latency.P50Ms, r.Latency.P90Ms, r.Latency.P99Ms, r.Latency.P999Ms, r.Latency.MaxMs)
		p("completeness", "lost %d (%d subs, worst %d)  duplicated %d  out-of-order %d  unacked-but-delivered %d",
			r.Lost, r.SubsWithLoss, r.WorstSubLost, r.Duplicated, r.OutOfOrder, r.UnackedDelivered)
	}
	p("disconnects", "%d  close codes %s  resumes %d  recovered:false %d  dead at end %d", r.Disconnects, mapStr(r.CloseCodes), r.Resumes, r.NotRecovered, r.DeadSubs)
	if len(r.DisconnectErrs) > 0 {
		p("disconnect errors", "%s", mapStr(r.DisconnectErrs))
	}
	if s := r.Server; s.Before != nil {
		a := s.AfterRamp
		if s.AfterIdle != nil {
			a = s.AfterIdle
		}
		if a != nil {
			p("server memory", "RSS %d -> %d KiB, PSS %d -> %d KiB (%d procs)", s.Before.RSSKiB, a.RSSKiB, s.Before.PSSKiB, a.PSSKiB, a.Procs)
			p("memory per connection", "%.2f KiB (%s; rss %.2f, pss %.2f)", r.MemPerConnKiB, r.MemBasis, r.RSSPerConnKiB, r.PSSPerConnKiB)
		}
		if r.Mode == "publish" && s.AfterPublish != nil {
			p("server CPU (publish+drain)", "%.2f s (user %.2f, sys %.2f)", r.ServerCPUS, r.ServerUserS, r.ServerSysS)
			p("CPU s / million deliveries", "%.3f", r.CPUPerMillionDeliveries)
			p("CPU s / thousand publishes", "%.3f", r.CPUPerThousandPublishes)
		}
	}
	p("generator CPU", "%.2f s (whole run)", r.GeneratorCPUS)
	m := r.Machine
	p("machine during measurement", "%.1fs window: busy %.2f CPU s, generator %.2f, other processes %.2f, CPU stall %.0f%%", m.WindowS, m.BusyS, m.GeneratorS, m.OtherS, m.CPUStallPct)
	if m.NoisyWarning {
		p("WARNING", "other processes used %.0f%% of a core during the measurement: figures are suspect", 100*m.OtherS/m.WindowS)
	}
	for _, n := range r.Notes {
		p("note", "%s", n)
	}
	if len(r.CheckFailures) > 0 {
		p("check failures", "%s", strings.Join(r.CheckFailures, "; "))
	}
}

func rateStr(r float64) string {
	if r <= 0 {
		return "back-to-back"
	}
	return fmt.Sprintf("%.0f/s", r)
}

func mapStr(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	return b.String()
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
