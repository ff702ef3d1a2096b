// Package integration runs the realtime modules inside an in-process Caddy
// (caddytest) and drives it over loopback with net/http, the protocol
// client of test/internal/rtclient and, where a client must misbehave, raw
// frames. It sees the product only from outside: HTTP answers, WebSocket
// messages and close codes, the admin API, /metrics, the logs and the
// process's goroutine stacks. Each test asserts one rule of the publish
// API, the WebSocket protocol, TLS, the admin API or logging, and can fail
// on its own.
//
// caddytest drives one Caddy per test process through its admin endpoint,
// so these tests never run in parallel. The ports (admin, HTTP, HTTPS)
// are picked free at start, like the other suites', so that this package
// can run next to them (and next to another checkout's run). Every test
// (re)loads the config it needs; loading the config that is already
// running is a no-op in Caddy, so the main config below is provisioned once
// for all the tests that share it.
//
// The main config has NO `log` directive on purpose: gorilla's Upgrade
// fails with 500 under Caddy's idle-timeout writer, which hijacks only by
// accident when logging wraps the writer. TestWSUpgradeWithoutLogDirective
// pins that.
package integration

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/wprealtime/caddy-realtime"
	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

const (
	secretA     = "pub-secret-A-7f3d9c2e"
	secretB     = "pub-secret-B-91ab2e55"
	tokenSecret = "token-secret-5e8a1f0b"

	// mainPingInterval is long so that no protocol ping interferes with
	// tests that read frames strictly in order.
	mainPingInterval = 30
)

// The ports, addresses and configs of this run, set by TestMain.
var (
	adminPort, httpPort, httpsPort int

	httpBase  string // http://localhost:<httpPort>
	wsBase    string // ws://localhost:<httpPort>
	httpsBase string // https://localhost:<httpsPort>
	wssBase   string // wss://localhost:<httpsPort>
	adminBase string // http://localhost:<adminPort>

	// storageDir holds Caddy's storage (internal CA, certificates, locks).
	storageDir string

	// globalOptions are shared by every config: this run's ports,
	// loopback only, nothing installed into the system trust store, no
	// autosaved config, and the storage in storageDir.
	globalOptions string

	// mainConfig serves every publish and WebSocket test. Each route that
	// needs its own limits names its own hub: limits count per hub, so the
	// connections of one test never count against another's.
	mainConfig string

	broadcastURL string
)

// TestMain picks the ports and a storage directory, then runs the tests.
func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(storageDir)
	os.Exit(code)
}

func setup() error {
	seen := map[int]bool{}
	for _, p := range []*int{&adminPort, &httpPort, &httpsPort} {
		for *p == 0 || seen[*p] {
			port, err := testenv.PickPort()
			if err != nil {
				return err
			}
			*p = port
		}
		seen[*p] = true
	}
	dir, err := os.MkdirTemp("", "caddy-realtime-integration-")
	if err != nil {
		return err
	}
	storageDir = dir
	httpBase = fmt.Sprintf("http://localhost:%d", httpPort)
	wsBase = fmt.Sprintf("ws://localhost:%d", httpPort)
	httpsBase = fmt.Sprintf("https://localhost:%d", httpsPort)
	wssBase = fmt.Sprintf("wss://localhost:%d", httpsPort)
	adminBase = fmt.Sprintf("http://localhost:%d", adminPort)
	broadcastURL = httpBase + "/realtime/broadcast"
	globalOptions = fmt.Sprintf(`
	skip_install_trust
	admin localhost:%d
	persist_config off
	storage file_system %s
	http_port %d
	https_port %d
	grace_period 1ns
	default_bind 127.0.0.1
`, adminPort, storageDir, httpPort, httpsPort)
	mainConfig = `{` + globalOptions + `}

` + httpBase + ` {
	realtime_ws /realtime/ws {
		default_channels default news
		private user.*
		token_secret ` + tokenSecret + `
		token_cookie realtime_token
		max_subscriptions 6
		max_message_size 1KiB
		ping_interval 30s
		write_timeout 2s
	}
	realtime_ws /ws/origins {
		allowed_origins https://app.example.org https://*.example.com
	}
	realtime_ws /ws/capped {
		hub capped
		max_connections 2
	}
	realtime_ws /ws/perip {
		hub perip
		max_connections_per_ip 2
	}
	realtime_ws /ws/slow {
		hub slow
		default_channels firehose
		send_queue 8
		write_timeout 2s
	}
	realtime_ws /ws/ping {
		hub pinghub
		ping_interval 300ms
	}
	realtime_ws /ws/idle {
		write_timeout 200ms
	}
	realtime_ws /ws/stats {
		hub stats
	}
	realtime_broadcast /realtime/broadcast {
		secret ` + secretA + `
		secret ` + secretB + `
		max_body 2KiB
		max_batch 3
		signature_tolerance 30s
	}
	realtime_broadcast /broadcast/slow {
		hub slow
		secret ` + secretA + `
	}
	respond "<html><body>not the hub</body></html>" 404
}
`
	tlsConfig = `{
	local_certs` + globalOptions + `}

` + httpsBase + ` {
	tls internal
	realtime_ws /realtime/ws {
		token_secret ` + tokenSecret + `
		token_cookie realtime_token
		ping_interval 30s
	}
	realtime_broadcast /realtime/broadcast {
		secret ` + secretA + `
	}
	respond "<html>not the hub</html>" 404
}
`
	return nil
}

// loadConfig loads a Caddyfile into the in-process Caddy and stops the test
// if it did not load.
func loadConfig(t *testing.T, caddyfile string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	if caddyfile != loaded {
		// Caddy answers /load once the old servers have begun to shut
		// down, and finishes that in the background (caddyhttp's
		// App.Stop): a connection the old server accepted just before is
		// then cut. Let that end before a test dials.
		loaded = caddyfile
		time.Sleep(oldServersGone)
	}
	return tester
}

// loaded is the config loaded last; oldServersGone is how long the
// previous config's servers get to finish their shutdown (grace_period
// 1ns) after a change.
var loaded string

const oldServersGone = 100 * time.Millisecond

func loadMain(t *testing.T) { t.Helper(); loadConfig(t, mainConfig) }

var httpClient = &http.Client{
	Transport: &http.Transport{DialContext: rtclient.LoopbackDial, MaxIdleConnsPerHost: 16},
	Timeout:   10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

var seq atomic.Int64

// uniq returns a channel name no other test uses.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, seq.Add(1))
}

// apiAnswer is the JSON answer of the publish API.
type apiAnswer struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Code    string `json:"code"`
	Field   string `json:"field"`
	Events  []struct {
		Channel   string `json:"channel"`
		Cursor    string `json:"cursor"`
		Duplicate bool   `json:"duplicate"`
	} `json:"events"`
}

// response is one HTTP answer, read in full.
type response struct {
	status int
	proto  int
	header http.Header
	body   []byte
}

func (r *response) String() string {
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

func do(t *testing.T, client *http.Client, req *http.Request) *response {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return &response{status: resp.StatusCode, proto: resp.ProtoMajor, header: resp.Header, body: body}
}

// request sends method url with body and headers (name, value pairs).
func request(t *testing.T, method, url string, body []byte, headers ...string) *response {
	t.Helper()
	return requestWith(t, httpClient, method, url, body, headers...)
}

func requestWith(t *testing.T, client *http.Client, method, url string, body []byte, headers ...string) *response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, client, req)
}

// jsonCT and bearer are the header pairs of a well-formed publish.
var jsonCT = []string{"Content-Type", "application/json"}

func bearer(secret string) []string {
	return []string{"Authorization", "Bearer " + secret, "Content-Type", "application/json"}
}

// sign computes X-Realtime-Signature for body at unix time ts.
func sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return fmt.Sprintf("t=%d,v1=%x", ts, m.Sum(nil))
}

func signed(secret string, ts int64, body []byte) []string {
	return []string{"X-Realtime-Signature", sign(secret, ts, body), "Content-Type", "application/json"}
}

// publish posts body with the primary secret and requires a 200.
func publish(t *testing.T, body string) apiAnswer {
	t.Helper()
	return publishTo(t, broadcastURL, body)
}

func publishTo(t *testing.T, url, body string) apiAnswer {
	t.Helper()
	r := request(t, http.MethodPost, url, []byte(body), bearer(secretA)...)
	if r.status != http.StatusOK {
		t.Fatalf("publish %s: want 200, got %s", body, r)
	}
	return mustJSONAnswer(t, r)
}

// mustJSONAnswer checks that an answer is JSON (header and body) and
// decodes it.
func mustJSONAnswer(t *testing.T, r *response) apiAnswer {
	t.Helper()
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		t.Fatalf("answer %s: want Content-Type application/json, got %q", r, r.header.Get("Content-Type"))
	}
	if bytes.HasPrefix(bytes.TrimSpace(r.body), []byte("<")) {
		t.Fatalf("answer is HTML: %s", r)
	}
	var a apiAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("answer %s is not JSON: %v", r, err)
	}
	return a
}

// expectError checks an error answer: its status, a JSON body with
// status "error", and returns it.
func expectError(t *testing.T, r *response, status int) apiAnswer {
	t.Helper()
	if r.status != status {
		t.Fatalf("want %d, got %s", status, r)
	}
	a := mustJSONAnswer(t, r)
	if a.Status != "error" || a.Message == "" {
		t.Fatalf("error answer %s: want status \"error\" and a message", r)
	}
	return a
}

// expectUnauthorized checks a 401 with its WWW-Authenticate challenge.
func expectUnauthorized(t *testing.T, r *response) {
	t.Helper()
	expectError(t, r, http.StatusUnauthorized)
	if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		t.Fatalf("401 without a Bearer WWW-Authenticate challenge: got %q", h)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dial connects to path on the main site and requires the upgrade.
func dial(t *testing.T, path string, h http.Header) *rtclient.Client {
	t.Helper()
	return rtclient.Dial(t, wsBase+path, rtclient.Options{Header: h})
}

// validToken signs a token for channels with the main config's secret.
func validToken(t *testing.T, channels ...string) string {
	return rtclient.Token(t, tokenSecret, channels, time.Now().Add(time.Hour))
}

// fromHandshake is a refused handshake's answer as a response.
func fromHandshake(r *rtclient.Response) *response {
	return &response{status: r.Status, proto: r.Proto, header: r.Header, body: r.Body}
}
