package loadtest_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// TestLoadToolSmoke builds the load tool and runs it, small, against the
// product: 200 subscribers, 2 s of back-to-back publishing, over WebSocket,
// over Server-Sent Events and as realtime_pusher subscribers. It asserts
// that nothing was lost, duplicated or reordered, never a speed.
func TestLoadToolSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("load tool smoke run skipped in -short mode")
	}
	root := testenv.RepoRoot()
	tool := filepath.Join(t.TempDir(), "loadtest")
	build := exec.Command("go", "build", "-o", tool, "./examples/loadtest")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/loadtest: %v\n%s", err, out)
	}
	cfg, err := os.ReadFile(filepath.Join(root, "examples/loadtest/Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	port, tlsPort := testenv.FreePort(t), testenv.FreePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := testenv.StartCaddy(t, testenv.CaddyConfig{
		Caddyfile: string(cfg),
		Admin:     admin,
		Site:      fmt.Sprintf("127.0.0.1:%d", port),
		Dir:       root,
		Env: []string{
			fmt.Sprintf("RT_PORT=%d", port), fmt.Sprintf("RT_TLS_PORT=%d", tlsPort),
			"RT_ADMIN=" + admin, "RT_STORAGE=" + t.TempDir(), "REALTIME_SECRET=smoke-secret",
		},
	})

	// The same over WebSocket, over Server-Sent Events (the same route) and
	// as Pusher-protocol subscribers of realtime_pusher.
	for _, tc := range []struct{ target, transport, url string }{
		{"realtime", "ws", fmt.Sprintf("ws://127.0.0.1:%d/ws", port)},
		{"realtime", "sse", fmt.Sprintf("http://127.0.0.1:%d/ws", port)},
		{"pusher", "ws", fmt.Sprintf("ws://127.0.0.1:%d/app/loadtest-key", port)},
	} {
		run := exec.Command(tool, "-target", tc.target, "-transport", tc.transport,
			"-url", tc.url,
			"-pub-url", fmt.Sprintf("http://127.0.0.1:%d/pub", port),
			"-secret", "smoke-secret", "-subs", "200", "-duration", "2s",
			"-server-pid", fmt.Sprint(p.Cmd.Process.Pid), "-timeout", "90s", "-quiet", "-check")
		out, err := run.CombinedOutput()
		t.Logf("loadtest -target %s -transport %s:\n%s", tc.target, tc.transport, testenv.Indent(string(out)))
		if err != nil {
			t.Fatalf("load tool check failed (-target %s -transport %s): %v", tc.target, tc.transport, err)
		}
	}
}

// TestMain removes the built binary after the tests.
func TestMain(m *testing.M) { testenv.Main(m) }
