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
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/wprealtime/caddy-realtime"
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
	mainConfig = `{` + globalOptions + `
	realtime {
		hub capped {
			max_connections 2
		}
		hub perip {
			max_connections_per_ip 2
		}
		hub slow
		hub pinghub
		hub stats
		hub sseslow {
			history_size 4
		}
	}
}

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
	}
	realtime_ws /ws/perip {
		hub perip
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
	realtime_ws /sse/slow {
		hub sseslow
		default_channels firehose
		send_queue 8
		write_timeout 10s
	}
	handle /sse/encoded {
		encode gzip
		realtime_ws
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
	realtime_broadcast /broadcast/sseslow {
		hub sseslow
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
