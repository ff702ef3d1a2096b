// Package jsclient_test runs the Node tests of the browser client
// (realtime-events.test.mjs, node --test) from go test: the parts of the
// client that need no browser (transport choice and fallback, stream
// reopening, cursors and de-duplication, the ES module's exports) over fake
// WebSocket and EventSource classes. test/e2e drives it in Chromium.
package jsclient_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

func TestJSClientWithNode(t *testing.T) {
	testenv.Require(t, testenv.NodeAtLeast(20, 19), "node 20.19+", testenv.NodeHint)
	// The file, not the directory: since Node 21, --test takes globs and
	// a bare directory matches nothing.
	cmd := exec.Command("node", "--test", filepath.Join("test", "jsclient", "realtime-events.test.mjs"))
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test test/jsclient/realtime-events.test.mjs: %v\n%s", err, out)
	}
	t.Logf("node --test test/jsclient/realtime-events.test.mjs:\n%s", testenv.Indent(lastLines(string(out), 9)))
}

// lastLines returns the last n lines of s (node's summary).
func lastLines(s string, n int) string {
	end := len(s)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' && i != len(s)-1 {
			n--
			if n == 0 {
				return s[i+1 : end]
			}
		}
	}
	return s
}
