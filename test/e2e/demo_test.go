package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// TestDemoPageInChromium runs demo.mjs (playwright-core driving Debian's
// headless Chromium) against the demo Caddyfile: live delivery, resume
// after going offline with each event once, and XSS-safe rendering.
func TestDemoPageInChromium(t *testing.T) {
	root := needBrowser(t)

	port, admin := testenv.FreePort(t), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	demo, err := os.ReadFile(filepath.Join(root, "examples/Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(demo), "admin localhost:2019", "admin "+admin, 1)
	cfg = strings.Replace(cfg, "http://:8080 {", fmt.Sprintf("http://:%d {", port), 1)
	if cfg == string(demo) {
		t.Fatal("could not retarget examples/Caddyfile's ports")
	}
	testenv.StartCaddy(t, testenv.CaddyConfig{
		Caddyfile: cfg,
		Admin:     admin,
		Site:      fmt.Sprintf("127.0.0.1:%d", port),
		Dir:       root,
		Env:       []string{"REALTIME_SECRET=e2e-secret"},
	})

	out := filepath.Join(root, "test-output", "e2e")
	_ = os.MkdirAll(out, 0o755)
	cmd := exec.Command("node", "test/e2e/demo.mjs", "--base", fmt.Sprintf("http://127.0.0.1:%d", port), "--secret", "e2e-secret", "--out", out)
	cmd.Dir = root
	res, err := cmd.CombinedOutput()
	t.Logf("demo.mjs:\n%s", testenv.Indent(string(res)))
	if err != nil {
		t.Fatalf("browser checks failed: %v", err)
	}
}

// needBrowser skips in -short mode, and skips (or, with
// REALTIME_TEST_STRICT=1, fails) when Node 20.19+, Chromium or the suite's
// npm packages are missing; it returns the repository's root.
func needBrowser(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	root := testenv.RepoRoot()
	var need testenv.Needs
	need.Check(testenv.NodeAtLeast(20, 19), "node 20.19+", testenv.NodeHint)
	need.Check(testenv.Exists("/usr/bin/chromium"), "/usr/bin/chromium", "apt-get install chromium")
	need.Check(testenv.Exists(filepath.Join(root, "test/e2e/node_modules/playwright-core")), "playwright-core", "(cd test/e2e && npm ci)")
	need.Require(t)
	return root
}

// TestMain removes the built binary after the tests.
func TestMain(m *testing.M) { testenv.Main(m) }
