// Package imports_test holds the layout's import rules: the engine
// (module/hub) knows nothing of Caddy, HTTP, Redis or gorilla, whatever
// path an import would take to reach them, and the Redis backplane
// (module/redis) knows nothing of Caddy, nor the Pusher protocol package
// (module/internal/pusher) of Caddy, HTTP, Redis or gorilla. Test files do
// not count.
package imports_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

const modulePath = "github.com/wprealtime/caddy-realtime"

// rules maps a package of this module to the import paths it must not
// reach. A path forbids itself and everything under it.
var rules = []struct {
	pkg       string
	forbidden []string
}{
	{"module/hub", []string{"github.com/caddyserver", "net/http", "github.com/redis", "github.com/gorilla"}},
	{"module/redis", []string{"github.com/caddyserver"}},
	{"module/internal/pusher", []string{"github.com/caddyserver", "net/http", "github.com/redis", "github.com/gorilla"}},
}

func TestImportRules(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			graph := importGraph(t, "./"+r.pkg)
			for _, chain := range forbiddenChains(graph, modulePath+"/"+r.pkg, r.forbidden) {
				t.Errorf("%s must not import %s, and does: %s", r.pkg, chain[len(chain)-1],
					strings.ReplaceAll(strings.Join(chain, " -> "), modulePath+"/", ""))
			}
		})
	}
}

// TestForbiddenChains checks the search itself on a small graph, so that
// a rule cannot pass by finding nothing.
func TestForbiddenChains(t *testing.T) {
	graph := map[string][]string{
		"a":                 {"b", "c"},
		"b":                 {"net/http"},
		"c":                 {"d", "github.com/x/ok"},
		"d":                 {"net/http/httptrace", "b"},
		"net/http":          {"net/http/internal"},
		"net/httpx":         nil,
		"github.com/x/ok":   {"net/httpx"},
		"net/http/internal": nil,
	}
	got := forbiddenChains(graph, "a", []string{"net/http"})
	want := []string{"a -> b -> net/http", "a -> c -> d -> net/http/httptrace"}
	if len(got) != len(want) {
		t.Fatalf("chains %v, want %v", got, want)
	}
	for i := range want {
		if s := strings.Join(got[i], " -> "); s != want[i] {
			t.Errorf("chain %d: %s, want %s", i, s, want[i])
		}
	}
}

// importGraph runs `go list -deps` on pkg (build files only, no tests) and
// returns each dependency's imports.
func importGraph(t *testing.T, pkg string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports", pkg)
	cmd.Dir = testenv.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.Bytes())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		graph[p.ImportPath] = p.Imports
	}
	return graph
}

// forbiddenChains walks graph breadth-first from root and returns, for
// each forbidden package reached, the shortest import chain from root.
// It does not walk through forbidden packages: a chain names where the
// forbidden territory is entered, not all that it pulls in. Chains come in
// the order found.
func forbiddenChains(graph map[string][]string, root string, forbidden []string) [][]string {
	isForbidden := func(p string) bool {
		for _, f := range forbidden {
			if p == f || strings.HasPrefix(p, f+"/") {
				return true
			}
		}
		return false
	}
	parent := map[string]string{root: ""}
	queue := []string{root}
	var chains [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range graph[p] {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = p
			if !isForbidden(imp) {
				queue = append(queue, imp)
				continue
			}
			var chain []string
			for q := imp; q != ""; q = parent[q] {
				chain = append([]string{q}, chain...)
			}
			chains = append(chains, chain)
		}
	}
	return chains
}
