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
// product: 200 subscribers, 2 s of back-to-back publishing, once over
// WebSocket and once over Server-Sent Events. It asserts that nothing was
// lost, duplicated or reordered, never a speed.
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

	// The same over WebSocket and over Server-Sent Events (the same route).
	for _, transport := range []struct{ name, scheme string }{{"ws", "ws"}, {"sse", "http"}} {
		run := exec.Command(tool, "-target", "realtime", "-transport", transport.name,
			"-url", fmt.Sprintf("%s://127.0.0.1:%d/ws", transport.scheme, port),
			"-pub-url", fmt.Sprintf("http://127.0.0.1:%d/pub", port),
			"-secret", "smoke-secret", "-subs", "200", "-duration", "2s",
			"-server-pid", fmt.Sprint(p.Cmd.Process.Pid), "-timeout", "90s", "-quiet", "-check")
		out, err := run.CombinedOutput()
		t.Logf("loadtest -transport %s:\n%s", transport.name, testenv.Indent(string(out)))
		if err != nil {
			t.Fatalf("load tool check failed (-transport %s): %v", transport.name, err)
		}
	}
}

// TestMain removes the built binary after the tests.
func TestMain(m *testing.M) { testenv.Main(m) }
