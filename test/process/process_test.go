package process_test

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

const secret = "process-test-secret"

func hubBlock(name string, historySize int) string {
	return fmt.Sprintf("\t\thub %s {\n\t\t\thistory_size %d\n\t\t}", name, historySize)
}

// expectRefused dials with origin and wants the handshake answered with
// status, as JSON.
func expectRefused(t *testing.T, u, origin string, status int) {
	t.Helper()
	c, resp, err := rtclient.TryDial(t, u, rtclient.Options{Origin: origin})
	if err == nil {
		c.Close()
		t.Fatalf("dial %s with Origin %s: connected, want HTTP %d", u, origin, status)
	}
	if resp == nil {
		t.Fatalf("dial %s with Origin %s: %v, want HTTP %d", u, origin, err, status)
	}
	body := resp.Body
	if resp.Status != status {
		t.Fatalf("dial %s with Origin %s: HTTP %d %s, want %d", u, origin, resp.Status, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Errorf("refusal has Content-Type %q, want JSON (body %q)", ct, body)
	}
}

// closed is how one client's connection ended, counted from a start time.
type closed struct {
	code  int
	text  string
	after time.Duration
}

// awaitCloses waits until every client's connection has ended, at most
// timeout in all, and returns how each ended; what names the event the
// clients should close after, for the failure message.
func awaitCloses(t *testing.T, clients []*rtclient.Client, start time.Time, timeout time.Duration, what string) []closed {
	t.Helper()
	deadline := time.Now().Add(timeout)
	out := make([]closed, len(clients))
	for i, c := range clients {
		select {
		case <-c.Done():
		case <-time.After(time.Until(deadline)):
			t.Fatalf("client %d still open %v after %s", i, timeout, what)
		}
		code, text, at, _ := ended(c)
		out[i] = closed{code: code, text: text, after: at.Sub(start)}
	}
	return out
}

func waitAllEvents(t *testing.T, clients []*rtclient.Client, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i, c := range clients {
		if !c.WaitEvents(n, time.Until(deadline)) {
			code, text, _, _ := ended(c)
			t.Fatalf("client %d has %d events, want %d (closed: %d %q)", i, len(c.Events()), n, code, text)
		}
	}
}

// ---------------------------------------------------------------------------
// 1. Reload with 100 clients connected.

func reloadSite(origins string, maxSubs int) string {
	return fmt.Sprintf(`	realtime_ws /ws {
		allowed_origins %s
		max_subscriptions %d
	}
	realtime_broadcast /pub {
		secret %s
	}`, origins, maxSubs, secret)
}

func TestReloadKeepsConnections(t *testing.T) {
	const nClients = 100
	port, admin := freePort(t), freePort(t)
	cfgA := caddyfile(admin, port, hubBlock("default", 50), reloadSite("http://a.example", 5))
	cfgB := caddyfile(admin, port, hubBlock("default", 200), reloadSite("http://a.example http://b.example", 2))
	p := startCaddy(t, cfgA, port, admin)

	// The old policy: origin b refused, 3 subscriptions allowed.
	expectRefused(t, p.wsURL("/ws", ""), "http://b.example", 403)
	c3 := rtclient.Dial(t, p.wsURL("/ws", "channels=x1,x2,x3"), rtclient.Options{Origin: "http://a.example"})
	c3.WaitSubscribed("x1", "x2", "x3")
	c3.Close()

	clients := make([]*rtclient.Client, nClients)
	for i := range clients {
		clients[i] = rtclient.Dial(t, p.wsURL("/ws", "channels=news"), rtclient.Options{})
	}
	for i, c := range clients {
		if _, rec := c.WaitSubscribed("news"); rec["news"] {
			t.Fatalf("client %d: recovered:true without since", i)
		}
	}
	cursors := p.publish("/pub", secret, ticks("news", 1, 10, ""))
	waitAllEvents(t, clients, 10, 5*time.Second)
	before := p.hub("default")

	// Reload while a publisher keeps publishing (one event per request,
	// with an idempotency id so that a retry after a connection closed by
	// the reload cannot duplicate). Stay under the old history_size (50)
	// until the reload is done, so that the in-place resize is what keeps
	// event 1 resumable below.
	type reloadResult struct {
		out  string
		took time.Duration
		err  error
	}
	cfgPath := p.WriteConfig("Caddyfile.B", cfgB)
	reloadDone := make(chan reloadResult, 1)
	go func() {
		out, took, err := p.CLI("reload", "--config", cfgPath, "--adapter", "caddyfile",
			"--address", fmt.Sprintf("127.0.0.1:%d", admin))
		reloadDone <- reloadResult{out, took, err}
	}()
	n, during, retries := 10, 0, 0
	var rr reloadResult
	for reloading := true; reloading; {
		select {
		case rr = <-reloadDone:
			reloading = false
		case <-time.After(3 * time.Millisecond):
			if n >= 45 {
				continue
			}
			n++
			cur, attempts, err := p.publishRetry("/pub", secret, pubEvent{
				Channel: "news", Type: "tick", Payload: tick{N: n}, ID: fmt.Sprintf("reload-%d", n),
			})
			if err != nil {
				t.Fatalf("publish %d during the reload: %v", n, err)
			}
			cursors = append(cursors, cur)
			during++
			retries += attempts - 1
		}
	}
	if rr.err != nil {
		t.Fatalf("caddy reload: %v\n%s", rr.err, rr.out)
	}
	t.Logf("reload took %v (caddy reload command); %d events published while it ran (%d publish retries)",
		rr.took.Round(time.Millisecond), during, retries)

	// Events after the reload.
	for n < 120 {
		to := min(n+25, 120)
		cursors = append(cursors, p.publish("/pub", secret, ticks("news", n+1, to, ""))...)
		n = to
	}
	waitAllEvents(t, clients, 120, 10*time.Second)
	dropped := 0
	for i, c := range clients {
		if code, text, _, done := ended(c); done {
			dropped++
			t.Errorf("client %d was closed by the reload: %d %q", i, code, text)
		}
	}
	after := p.hub("default")
	if after.Connections < nClients {
		t.Errorf("hub has %d connections after the reload, want >= %d", after.Connections, nClients)
	}
	t.Logf("after reload: %d/%d clients dropped; hub connections %d -> %d, events published %d -> %d",
		dropped, nClients, before.Connections, after.Connections, before.Published, after.Published)

	// New connections get the new policy.
	ob := rtclient.Dial(t, p.wsURL("/ws", ""), rtclient.Options{Origin: "http://b.example"})
	ob.WaitSubscribed("default")
	ob.Close()
	expectRefused(t, p.wsURL("/ws", ""), "http://c.example", 403)
	if _, resp, err := rtclient.TryDial(t, p.wsURL("/ws", "channels=x1,x2,x3"), rtclient.Options{Origin: "http://a.example"}); err == nil || resp == nil || resp.Status != 400 {
		t.Errorf("max_subscriptions 2 after the reload: a connect naming 3 channels was not refused with 400 (%v)", err)
	}
	c3 = rtclient.Dial(t, p.wsURL("/ws", "channels=x1,x2"), rtclient.Options{Origin: "http://a.example"})
	c3.WaitSubscribed("x1", "x2")
	c3.Send(map[string]any{"type": "realtime:subscribe", "channel": "x3"})
	if !c3.WaitFor(5*time.Second, func(fs []rtclient.Frame) bool {
		for _, f := range fs {
			if f.Type == "realtime:error" && f.Code == "too_many_subscriptions" && f.Channel == "x3" {
				return true
			}
		}
		return false
	}) {
		t.Errorf("max_subscriptions 2 after the reload: third channel not refused; frames %s", rtclient.Describe(c3.Frames()))
	}
	for _, f := range c3.Frames() {
		if f.Type == "realtime:subscribed" && f.Channel == "x3" {
			t.Errorf("x3 subscribed despite max_subscriptions 2")
		}
	}
	c3.Close()

	// The history survived and grew in place: 120 events > the old size 50,
	// yet event 1's cursor still resumes completely.
	r := rtclient.Dial(t, p.wsURL("/ws", "channels=news&since="+url.QueryEscape(cursors[0])), rtclient.Options{})
	if _, rec := r.WaitSubscribed("news"); !rec["news"] {
		t.Fatalf("resume from event 1 after the reload: recovered:false, want true (history lost or not resized)")
	}
	if !r.WaitEvents(119, 10*time.Second) {
		t.Fatalf("resumer has %d events, want 119", len(r.Events()))
	}

	// Everyone, old and new, gets the next live event once.
	p.publish("/pub", secret, ticks("news", 121, 121, ""))
	waitAllEvents(t, clients, 121, 10*time.Second)
	if !r.WaitEvents(120, 5*time.Second) {
		t.Fatalf("resumer has %d events, want 120", len(r.Events()))
	}
	time.Sleep(100 * time.Millisecond) // let any duplicate arrive
	for i, c := range clients {
		fs := c.Frames()
		if err := checkSeq(seqOf(fs), 1, 121); err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		if len(fs) != 2+121 {
			t.Errorf("client %d: %d frames, want welcome + subscribed + 121 events: %s", i, len(fs), rtclient.Describe(fs[:min(len(fs), 12)]))
		}
		if code, text, _, done := ended(c); done {
			t.Errorf("client %d closed: %d %q", i, code, text)
		}
	}
	if err := checkSeq(seqOf(r.Frames()), 2, 121); err != nil {
		t.Errorf("resumer: %v", err)
	}

	// Connections go back to 0 once the clients leave.
	for _, c := range append(clients, r) {
		c.Close()
	}
	p.waitConnections("default", 0, 0, 5*time.Second)
}

// ---------------------------------------------------------------------------
// 2. A reload that removes a hub (its declaration and its handlers) closes
// its clients with 1001; other hubs carry on.

func twoHubSite(withAlpha bool) string {
	var b strings.Builder
	if withAlpha {
		fmt.Fprintf(&b, "\trealtime_ws /a/ws {\n\t\thub alpha\n\t}\n\trealtime_broadcast /a/pub {\n\t\thub alpha\n\t\tsecret %s\n\t}\n", secret)
	}
	fmt.Fprintf(&b, "\trealtime_ws /b/ws {\n\t\thub beta\n\t}\n\trealtime_broadcast /b/pub {\n\t\thub beta\n\t\tsecret %s\n\t}\n", secret)
	return b.String()
}

func TestReloadRemovingHubCloses1001(t *testing.T) {
	const perHub = 20
	port, admin := freePort(t), freePort(t)
	hubs := hubBlock("alpha", 100) + "\n" + hubBlock("beta", 100)
	p := startCaddy(t, caddyfile(admin, port, hubs, twoHubSite(true)), port, admin)

	var alpha, beta []*rtclient.Client
	for i := 0; i < perHub; i++ {
		alpha = append(alpha, rtclient.Dial(t, p.wsURL("/a/ws", "channels=c"), rtclient.Options{}))
		beta = append(beta, rtclient.Dial(t, p.wsURL("/b/ws", "channels=c"), rtclient.Options{}))
	}
	for _, c := range append(alpha, beta...) {
		c.WaitSubscribed("c")
	}
	p.publish("/a/pub", secret, ticks("c", 1, 1, ""))
	p.publish("/b/pub", secret, ticks("c", 1, 1, ""))
	waitAllEvents(t, append(alpha, beta...), 1, 5*time.Second)

	// The hub's declaration goes with its handlers: the realtime app owns
	// its hubs, and a hub lives while the config declares it.
	start := time.Now()
	took := p.Reload(caddyfile(admin, port, hubBlock("beta", 100), twoHubSite(false)))
	var last time.Duration
	for i, c := range awaitCloses(t, alpha, start, 5*time.Second, "the reload removed hub alpha") {
		if c.code != 1001 {
			t.Errorf("alpha client %d: close %d %q, want 1001", i, c.code, c.text)
		}
		last = max(last, c.after)
	}
	t.Logf("reload removing hub alpha: caddy reload took %v; all %d alpha clients got their close within %v of the reload start",
		took.Round(time.Millisecond), perHub, last.Round(time.Millisecond))

	// Hub beta and its clients carry on.
	p.publish("/b/pub", secret, ticks("c", 2, 2, ""))
	waitAllEvents(t, beta, 2, 5*time.Second)
	for i, c := range beta {
		if code, text, _, done := ended(c); done {
			t.Errorf("beta client %d closed by a reload that kept its hub: %d %q", i, code, text)
		}
		if err := checkSeq(seqOf(c.Frames()), 1, 2); err != nil {
			t.Errorf("beta client %d: %v", i, err)
		}
	}
	hs, err := p.hubs()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := hs["alpha"]; ok {
		t.Errorf("hub alpha still listed after the reload removed its handlers: %+v", hs["alpha"])
	}
	if hs["beta"].Connections != perHub {
		t.Errorf("hub beta has %d connections, want %d", hs["beta"].Connections, perHub)
	}
	if c, _, err := rtclient.TryDial(t, p.wsURL("/a/ws", ""), rtclient.Options{}); err == nil {
		c.Close()
		t.Errorf("/a/ws still upgrades after its handler was removed")
	}
	for _, c := range beta {
		c.Close()
	}
	p.waitConnections("beta", 0, 0, 5*time.Second)
}

// ---------------------------------------------------------------------------
// 3. caddy stop and SIGTERM: every client gets 1001 within 2 s, and the
// process exits.

func TestStopCloses1001(t *testing.T)    { testShutdown(t, "caddy stop") }
func TestSIGTERMCloses1001(t *testing.T) { testShutdown(t, "SIGTERM") }

// TestSIGTERMManyClients has enough clients (1 ms each) for the 2 s cap of
// the close spread to apply; the hub then waits 1 s more for its sessions
// before it drops the rest, so every one must be out by then.
func TestSIGTERMManyClients(t *testing.T) { testShutdownN(t, "SIGTERM", 2500) }

func testShutdown(t *testing.T, how string) { testShutdownN(t, how, 200) }

func testShutdownN(t *testing.T, how string, nClients int) {
	port, admin := freePort(t), freePort(t)
	site := fmt.Sprintf("\trealtime_ws /ws {\n\t\tmax_connections_per_ip 0\n\t}\n\trealtime_broadcast /pub {\n\t\tsecret %s\n\t}", secret)
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 100), site), port, admin)

	clients := make([]*rtclient.Client, nClients)
	dialStart := time.Now()
	for i := range clients {
		clients[i] = rtclient.Dial(t, p.wsURL("/ws", ""), rtclient.Options{})
	}
	for _, c := range clients {
		c.WaitSubscribed("default")
	}
	if nClients > 1000 {
		t.Logf("%d clients connected and subscribed in %v", nClients, time.Since(dialStart).Round(time.Millisecond))
	}
	p.publish("/pub", secret, ticks("default", 1, 1, ""))
	waitAllEvents(t, clients, 1, 5*time.Second)
	p.waitConnections("default", int64(nClients), -1, 10*time.Second)

	start := time.Now()
	switch how {
	case "caddy stop":
		out, took, err := p.CLI("stop", "--address", fmt.Sprintf("127.0.0.1:%d", admin))
		if err != nil {
			t.Fatalf("caddy stop: %v\n%s", err, out)
		}
		t.Logf("the caddy stop command returned after %v", took.Round(time.Millisecond))
	case "SIGTERM":
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}

	codes := map[int]int{}
	var closes []time.Duration
	for _, c := range awaitCloses(t, clients, start, 10*time.Second, how) {
		codes[c.code]++
		closes = append(closes, c.after)
	}
	sort.Slice(closes, func(i, j int) bool { return closes[i] < closes[j] })
	first, lastClose := closes[0], closes[len(closes)-1]
	if !p.Wait(10 * time.Second) {
		t.Fatalf("process still running 10s after %s", how)
	}
	exit := p.ExitedAt().Sub(start)
	t.Logf("%s with %d clients: close codes %v; first close after %v, last after %v (spread %v, hub spread budget %v); process exited after %v with code %d",
		how, nClients, codes, first.Round(time.Millisecond), lastClose.Round(time.Millisecond),
		(lastClose - first).Round(time.Millisecond), min(time.Duration(nClients)*time.Millisecond, 2*time.Second),
		exit.Round(time.Millisecond), p.ExitCode())
	if codes[1001] != nClients {
		t.Errorf("%s: close codes %v, want all %d to be 1001 (1006 = socket dropped without a close frame)", how, codes, nClients)
	}
	spreadCap := min(time.Duration(nClients)*time.Millisecond, 2*time.Second)
	switch {
	case spreadCap < 2*time.Second && lastClose > 2*time.Second:
		t.Errorf("%s: last close frame arrived %v after the stop, want within 2s", how, lastClose)
	case lastClose-first > spreadCap+500*time.Millisecond:
		t.Errorf("%s: close frames spread over %v, want at most %v", how, lastClose-first, spreadCap)
	}
	if p.ExitCode() != 0 {
		t.Errorf("%s: exit code %d, want 0", how, p.ExitCode())
	}
}

// ---------------------------------------------------------------------------
// 4. Slow readers: a client that stops reading for less than write_timeout
// catches up from history and loses nothing, with no disconnect; one that
// stops for longer has its socket closed after write_timeout, then resumes
// with its cursor and loses nothing. A normal client meanwhile got
// everything, and publishing never waited for either.

func TestSlowConsumer(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	site := fmt.Sprintf(`	realtime_ws /ws {
		send_queue 8
		write_timeout 3s
	}
	realtime_ws /ws-short {
		send_queue 8
		write_timeout 500ms
	}
	realtime_broadcast /pub {
		secret %s
		max_body 1MiB
	}`, secret)
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 1000), site), port, admin)

	t.Run("stall shorter than write_timeout", func(t *testing.T) {
		slowConsumer(t, p, "/ws", "slow1", time.Second, false)
	})
	t.Run("stall longer than write_timeout", func(t *testing.T) {
		slowConsumer(t, p, "/ws-short", "slow2", 500*time.Millisecond+1500*time.Millisecond, true)
	})
	p.waitConnections("default", 0, 0, 5*time.Second)
}

// slowConsumer has one client stop reading for stall while 100 events of
// 64 KiB are published (far more than its send queue and socket buffers
// hold), then read again. dropped says whether the stall outlasts
// write_timeout, so that the server must have closed its socket.
func slowConsumer(t *testing.T, p *proc, path, channel string, stall time.Duration, dropped bool) {
	p.waitConnections("default", 0, 0, 5*time.Second)
	pad := strings.Repeat("x", 64<<10)
	normal := rtclient.Dial(t, p.wsURL(path, "channels="+channel), rtclient.Options{})
	normal.WaitSubscribed(channel)
	slow := rtclient.Dial(t, p.wsURL(path, "channels="+channel), rtclient.Options{Manual: true, RcvBuf: 8 << 10})
	for _, want := range []string{"realtime:welcome", "realtime:subscribed"} {
		if f, err := slow.ReadOne(5 * time.Second); err != nil || f.Type != want {
			t.Fatalf("slow client: want %s, got %+v, %v", want, f, err)
		}
	}
	base := p.hub("default")
	var cursors []string // cursors[n-1] is event n's
	var slowest time.Duration
	stopped := time.Now()
	const total = 100
	for n := 1; n <= total; n++ {
		start := time.Now()
		cursors = append(cursors, p.publish("/pub", secret, ticks(channel, n, n, pad))[0])
		slowest = max(slowest, time.Since(start))
	}
	if slowest > time.Second {
		t.Errorf("%s: a publish took %v while a client was not reading: publishing waited for it", path, slowest)
	}
	if d := stall - time.Since(stopped); d > 0 {
		time.Sleep(d)
	}
	after := p.hub("default")
	slow.Start()
	if !dropped {
		if !slow.WaitEvents(total, 20*time.Second) {
			t.Fatalf("%s: the slow client has %d events of %d after reading again", path, len(slow.Events()), total)
		}
		if err := checkSeq(seqOf(slow.Frames()), 1, total); err != nil {
			t.Fatalf("%s: slow client: %v", path, err)
		}
		if code, text, _, done := ended(slow); done {
			t.Fatalf("%s: a client that stopped reading for %v (under write_timeout) was closed: %d %q", path, stall, code, text)
		}
		if after.Lagged <= base.Lagged || after.SlowDisconnects != base.SlowDisconnects {
			t.Errorf("%s: stats before %+v, after %+v: want a lag and no slow-consumer disconnect", path, base, after)
		}
		t.Logf("%s: a client that read nothing for %v caught up from history: %d events, no disconnect", path, stall, total)
		slow.Close()
	} else {
		select {
		case <-slow.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: slow client not closed 10s after it resumed reading", path)
		}
		if after.SlowDisconnects != base.SlowDisconnects+1 {
			t.Errorf("%s: slow_consumer_disconnects %d -> %d, want one more", path, base.SlowDisconnects, after.SlowDisconnects)
		}
		got := seqOf(slow.Frames())
		k := len(got)
		if k > 0 {
			if err := checkSeq(got, 1, k); err != nil {
				t.Fatalf("%s: slow client before its socket closed: %v", path, err)
			}
		}
		if k >= total {
			t.Fatalf("%s: slow client read all %d events: it was never dropped", path, total)
		}
		since := base.Cursor
		if k > 0 {
			since = cursors[k-1]
		}
		r := rtclient.Dial(t, p.wsURL(path, "channels="+channel+"&since="+url.QueryEscape(since)), rtclient.Options{})
		if _, rec := r.WaitSubscribed(channel); !rec[channel] {
			t.Fatalf("%s: resume after the drop: recovered:false, want true", path)
		}
		if !r.WaitEvents(total-k, 10*time.Second) {
			t.Fatalf("%s: resumed client has %d events, want %d", path, len(r.Events()), total-k)
		}
		if err := checkSeq(seqOf(r.Frames()), k+1, total); err != nil {
			t.Errorf("%s: resumed client: %v", path, err)
		}
		t.Logf("%s: a client that read nothing for %v was dropped after write_timeout, had %d events, and resumed the other %d", path, stall, k, total-k)
		r.Close()
	}
	if !normal.WaitEvents(total, 10*time.Second) {
		t.Fatalf("%s: normal client has %d events, want %d", path, len(normal.Events()), total)
	}
	if err := checkSeq(seqOf(normal.Frames()), 1, total); err != nil {
		t.Errorf("%s: normal client: %v", path, err)
	}
	normal.Close()
}

// ---------------------------------------------------------------------------
// 5. Resume through the process: every cursor case.

// resumeCase is one resuming client and what it must get.
type resumeCase struct {
	name      string
	c         *rtclient.Client
	recovered bool
	from, to  int // events it must get, in order, once (after the live publish)
}

func TestResume(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	site := fmt.Sprintf("\trealtime_ws /ws\n\trealtime_broadcast /pub {\n\t\tsecret %s\n\t}", secret)
	cfg := func(admin, port int) string {
		return caddyfile(admin, port, hubBlock("default", 5), site)
	}
	p := startCaddy(t, cfg(admin, port), port, admin)

	// The welcome cursor of an empty hub is usable as since.
	w := rtclient.Dial(t, p.wsURL("/ws", "channels=r"), rtclient.Options{})
	welcome, _ := w.WaitSubscribed("r")
	w.Close()
	cursors := p.publish("/pub", secret, ticks("r", 1, 3, "")) // cursors[n-1] is r's event n
	p.publish("/pub", secret, ticks("other", 100, 100, ""))    // takes a place in the log, not on r
	empty := rtclient.Dial(t, p.wsURL("/ws", "channels=r&since="+url.QueryEscape(welcome.Cursor)), rtclient.Options{})
	if _, rec := empty.WaitSubscribed("r"); !rec["r"] {
		t.Fatalf("since=<welcome cursor of the empty hub>: recovered:false, want true")
	}
	if !empty.WaitEvents(3, 5*time.Second) {
		t.Fatalf("since=<welcome cursor of the empty hub>: %s", rtclient.Describe(empty.Frames()))
	}
	if err := checkSeq(seqOf(empty.Frames()), 1, 3); err != nil {
		t.Fatalf("since=<welcome cursor of the empty hub>: %v", err)
	}
	empty.Close()

	// 10 events on r, with history_size 5 (and one on another channel in
	// between, which takes a place in the log): history holds the last 5
	// log entries, r's events 6..10.
	cursors = append(cursors, p.publish("/pub", secret, ticks("r", 4, 10, ""))...)
	dial := func(since string) *rtclient.Client {
		return rtclient.Dial(t, p.wsURL("/ws", "channels=r&since="+url.QueryEscape(since)), rtclient.Options{})
	}
	cases := []resumeCase{
		{name: "cursor at head", c: dial(cursors[9]), recovered: true, from: 11, to: 11},
		{name: "cursor inside history", c: dial(cursors[6]), recovered: true, from: 8, to: 11},
		{name: "cursor just before the oldest retained event", c: dial(cursors[4]), recovered: true, from: 6, to: 11},
		{name: "cursor older than history", c: dial(cursors[1]), recovered: false, from: 11, to: 11},
		{name: "garbage cursor", c: dial("not-a-cursor"), recovered: false, from: 11, to: 11},
		{name: "well-formed cursor of an unknown epoch", c: dial("aaaaaaaaaaaaa-7-0"), recovered: false, from: 11, to: 11},
	}
	// A cursor of this epoch but past the head (as from a node that saw
	// more). Cursors are opaque to clients, but this test builds one in the
	// current wire form "<epoch>-<hi>-<lo>", and fails if that changes.
	if parts := strings.Split(cursors[9], "-"); len(parts) == 3 {
		past := parts[0] + "-" + fmt.Sprint(1000) + "-" + parts[2]
		cases = append(cases, resumeCase{name: "cursor past the head", c: dial(past), recovered: false, from: 11, to: 11})
	} else {
		t.Errorf("cursor %q is not <epoch>-<hi>-<lo>: update this test's past-the-head case", cursors[9])
	}
	// since in a subscribe frame rather than the query.
	sf := rtclient.Dial(t, p.wsURL("/ws", "channels=other"), rtclient.Options{})
	sf.WaitSubscribed("other")
	sf.Send(map[string]any{"type": "realtime:subscribe", "channel": "r", "since": cursors[7]})
	cases = append(cases, resumeCase{name: "since in a subscribe frame", c: sf, recovered: true, from: 9, to: 11})

	for _, rc := range cases {
		if _, rec := rc.c.WaitSubscribed("r"); rec["r"] != rc.recovered {
			t.Errorf("%s: recovered:%v, want %v", rc.name, rec["r"], rc.recovered)
		}
	}
	cursors = append(cursors, p.publish("/pub", secret, ticks("r", 11, 11, ""))...)
	for _, rc := range cases {
		rc.c.WaitEvents(rc.to-rc.from+1, 5*time.Second)
	}
	time.Sleep(100 * time.Millisecond)
	for _, rc := range cases {
		var got []int
		for _, f := range rc.c.Frames() {
			if f.IsEvent() && f.Channel == "r" {
				got = append(got, tickN(f))
			}
		}
		if err := checkSeq(got, rc.from, rc.to); err != nil {
			t.Errorf("%s: %v", rc.name, err)
		}
		rc.c.Close()
	}
	hs := p.hub("default")
	t.Logf("hub after the resume cases: replayed %d, failed_recoveries %d", hs.Replayed, hs.FailedRecovery)

	// A cursor of another process (epoch): restart, then resume with it.
	old := cursors[6]
	if out, _, err := p.CLI("stop", "--address", fmt.Sprintf("127.0.0.1:%d", admin)); err != nil {
		t.Fatalf("caddy stop: %v\n%s", err, out)
	}
	if !p.Wait(10 * time.Second) {
		t.Fatal("old process did not exit")
	}
	port2, admin2 := freePort(t), freePort(t)
	p2 := startCaddy(t, cfg(admin2, port2), port2, admin2)
	// Give the new hub positions that overlap the old cursor's.
	fresh := p2.publish("/pub", secret, ticks("r", 1, 10, ""))
	t.Logf("old cursor %s, new process cursor of its event 7 %s", old, fresh[6])
	if old == fresh[6] {
		t.Fatalf("the restarted process reuses cursors: %s", old)
	}
	e := rtclient.Dial(t, p2.wsURL("/ws", "channels=r&since="+url.QueryEscape(old)), rtclient.Options{})
	if _, rec := e.WaitSubscribed("r"); rec["r"] {
		t.Errorf("cursor of the previous process: recovered:true, want false")
	}
	p2.publish("/pub", secret, ticks("r", 11, 11, ""))
	e.WaitEvents(1, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if err := checkSeq(seqOf(e.Frames()), 11, 11); err != nil {
		t.Errorf("cursor of the previous process: %v", err)
	}
	e.Close()
	p2.waitConnections("default", 0, 0, 5*time.Second)
}

// ---------------------------------------------------------------------------
// 6. The process's connection count goes back to 0 after clients leave,
// however they leave.

func TestConnectionsReturnToZero(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	site := fmt.Sprintf("\trealtime_ws /ws {\n\t\tmax_subscriptions 3\n\t}\n\trealtime_broadcast /pub {\n\t\tsecret %s\n\t}", secret)
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 100), site), port, admin)
	head := p.hub("default").Cursor
	p.publish("/pub", secret, ticks("a", 1, 20, ""))

	var polite, rude, idle []*rtclient.Client
	for i := 0; i < 15; i++ {
		polite = append(polite, rtclient.Dial(t, p.wsURL("/ws", "channels=a,b"), rtclient.Options{}))
		rude = append(rude, rtclient.Dial(t, p.wsURL("/ws", "channels=a&since="+url.QueryEscape(head)), rtclient.Options{}))
		// At the subscription limit, and never read from.
		idle = append(idle, rtclient.Dial(t, p.wsURL("/ws", "channels=a,b,c"), rtclient.Options{Manual: true}))
	}
	for i := range polite {
		polite[i].WaitSubscribed("a", "b")
		rude[i].WaitSubscribed("a")
	}
	p.waitConnections("default", 45, 15*2+15+15*3, 5*time.Second)
	t.Logf("45 clients: %+v", p.hub("default"))
	for i := range polite {
		polite[i].Close() // close frame, then socket
		rude[i].Drop()    // socket only
		idle[i].Drop()
	}
	start := time.Now()
	p.waitConnections("default", 0, 0, 5*time.Second)
	t.Logf("connections back to 0 within %v of the clients leaving", time.Since(start).Round(time.Millisecond))
}

// ---------------------------------------------------------------------------
// A reload that fails to provision changes nothing, and leaks no reference
// to the hub: a later reload that removes the hub's handlers still closes
// its clients with 1001.

func TestFailedReloadKeepsEverything(t *testing.T) {
	const nClients = 20
	port, admin := freePort(t), freePort(t)
	hubs := hubBlock("default", 100)
	ok := fmt.Sprintf("\trealtime_broadcast /pub {\n\t\tsecret %s\n\t}\n\trealtime_ws /ws\n", secret)
	// Both handlers name the hub; the token secret is empty after
	// expansion, a provisioning error.
	bad := fmt.Sprintf("\trealtime_broadcast /pub {\n\t\tsecret %s\n\t}\n\trealtime_ws /ws {\n\t\ttoken_secret {env.CADDY_REALTIME_PROCESS_TEST_UNSET}\n\t}\n", secret)
	badLater := "\trealtime_broadcast /pub {\n\t\tsecret {env.CADDY_REALTIME_PROCESS_TEST_UNSET}\n\t}\n\trealtime_ws /ws\n"
	gone := "\trespond /x \"no hub here\" 200\n"
	p := startCaddy(t, caddyfile(admin, port, hubs, ok), port, admin)

	clients := make([]*rtclient.Client, nClients)
	for i := range clients {
		clients[i] = rtclient.Dial(t, p.wsURL("/ws", ""), rtclient.Options{})
		clients[i].WaitSubscribed("default")
	}
	p.publish("/pub", secret, ticks("default", 1, 1, ""))
	waitAllEvents(t, clients, 1, 5*time.Second)

	// Two bad reloads: realtime_ws fails before acquiring the hub; then
	// realtime_ws acquires it and realtime_broadcast (provisioned after it)
	// fails, so the new config's reference must be released on cleanup.
	for i, b := range []struct{ site, names string }{
		{bad, "token_secret"},
		{badLater, "secret"},
	} {
		path := p.WriteConfig(fmt.Sprintf("Caddyfile.bad%d", i), caddyfile(admin, port, hubs, b.site))
		out, _, err := p.CLI("reload", "--config", path, "--adapter", "caddyfile", "--address", fmt.Sprintf("127.0.0.1:%d", admin))
		if err == nil {
			t.Fatalf("bad reload %d succeeded:\n%s", i, out)
		}
		if !strings.Contains(out, b.names) {
			t.Errorf("failed reload's message does not name %s:\n%s", b.names, out)
		}
		msg := lastLine(out)
		if j := strings.Index(msg, "loading module"); j >= 0 {
			msg = msg[j:]
		}
		t.Logf("bad reload %d failed as it should: %s", i, msg)
	}

	p.publish("/pub", secret, ticks("default", 2, 2, ""))
	waitAllEvents(t, clients, 2, 5*time.Second)
	for i, c := range clients {
		if code, text, _, done := ended(c); done {
			t.Errorf("client %d closed by a failed reload: %d %q", i, code, text)
		}
		if err := checkSeq(seqOf(c.Frames()), 1, 2); err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	extra := rtclient.Dial(t, p.wsURL("/ws", ""), rtclient.Options{})
	extra.WaitSubscribed("default")
	extra.Close()
	p.waitConnections("default", nClients, -1, 5*time.Second)

	p.Reload(caddyfile(admin, port, "", gone))
	for i, c := range clients {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d still open 5s after the reload that removed its hub (a reference to the hub leaked?)", i)
		}
		if code, text, _, _ := ended(c); code != 1001 {
			t.Errorf("client %d: close %d %q, want 1001", i, code, text)
		}
	}
	hs, err := p.hubs()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 0 {
		t.Errorf("hubs still listed after every handler went: %+v", hs)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestSIGTERMWithStalledClient: a client that stopped reading with its
// socket full (the server's write to it blocked, under the default 10s
// write_timeout, its queue not yet overflowing) cannot send its close
// frame; it must not hold the others' 1001 or the process's exit.
func TestSIGTERMWithStalledClient(t *testing.T) {
	const nNormal = 5
	port, admin := freePort(t), freePort(t)
	site := fmt.Sprintf("\trealtime_ws /ws\n\trealtime_broadcast /pub {\n\t\tsecret %s\n\t\tmax_body 1MiB\n\t}", secret)
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 1000), site), port, admin)
	var normal []*rtclient.Client
	for i := 0; i < nNormal; i++ {
		normal = append(normal, rtclient.Dial(t, p.wsURL("/ws", ""), rtclient.Options{}))
		normal[i].WaitSubscribed("default")
	}
	stalled := rtclient.Dial(t, p.wsURL("/ws", ""), rtclient.Options{Manual: true, RcvBuf: 8 << 10})
	p.waitConnections("default", nNormal+1, -1, 5*time.Second)

	// ~6 MiB: more than the server's socket buffer (tcp_wmem max 4 MiB
	// here) and the client's, far less than send_queue (256) events.
	const nEvents = 100
	pad := strings.Repeat("x", 64<<10)
	for n := 1; n <= nEvents; n++ {
		p.publish("/pub", secret, ticks("default", n, n, pad))
	}
	waitAllEvents(t, normal, nEvents, 20*time.Second)
	if h := p.hub("default"); h.SlowDisconnects != 0 || h.Connections != nNormal+1 {
		t.Fatalf("stalled client was disconnected before the stop: %+v", h)
	}

	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, c := range awaitCloses(t, normal, start, 10*time.Second, "SIGTERM") {
		if c.code != 1001 {
			t.Errorf("client %d: close %d %q, want 1001", i, c.code, c.text)
		}
		if c.after > 2*time.Second {
			t.Errorf("client %d: close %v after SIGTERM, want within 2s", i, c.after)
		}
	}
	if !p.Wait(10 * time.Second) {
		t.Fatalf("process still running 10s after SIGTERM with a stalled client")
	}
	exit := p.ExitedAt().Sub(start)
	stalled.Start()
	select {
	case <-stalled.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("stalled client: connection not ended 10s after the process exited")
	}
	code, text, _, _ := ended(stalled)
	t.Logf("SIGTERM with a stalled client: process exited after %v (code %d); the stalled client, reading again, got %d events then close %d %q",
		exit.Round(time.Millisecond), p.ExitCode(), len(stalled.Events()), code, text)
	if exit > 5*time.Second {
		t.Errorf("process took %v to exit with a stalled client; want it well before the 10s write_timeout", exit)
	}
}
