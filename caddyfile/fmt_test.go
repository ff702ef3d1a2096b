package caddyfile_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// shippedCaddyfile is a Caddyfile that users copy or run: a file of the
// repository or a caddyfile code block of README.md.
type shippedCaddyfile struct {
	name string // where to fix it: a path, or README.md:<line of the block>
	line int    // line of the file where the Caddyfile starts (0 for a whole file)
	body []byte
}

// TestFmtShippedCaddyfiles fails for every shipped Caddyfile that Caddy's
// formatter would change: Caddy warns "input is not formatted" when it loads
// one, which is the first thing a newcomer sees.
func TestFmtShippedCaddyfiles(t *testing.T) {
	for _, cf := range shippedCaddyfiles(t) {
		t.Run(cf.name, func(t *testing.T) {
			// Caddy compares with Windows newlines normalized; so do we.
			body := bytes.ReplaceAll(cf.body, []byte("\r\n"), []byte("\n"))
			formatted := caddyfile.Format(body)
			if bytes.Equal(formatted, body) {
				return
			}
			n, got, want := firstDifference(body, formatted)
			t.Errorf("%s is not caddy fmt-clean (Caddy warns \"input is not formatted\"); first difference at line %d:\n  is:        %q\n  caddy fmt: %q\nfix it with `caddy fmt --overwrite <file>` (or paste the block into a file and format that)",
				cf.name, cf.line+n, got, want)
		})
	}
}

// shippedCaddyfiles finds every Caddyfile of the repository (files named
// Caddyfile* or *.caddyfile, templates included) and every caddyfile code
// block of README.md, and checks that the search found the ones it must.
func shippedCaddyfiles(t *testing.T) []shippedCaddyfile {
	t.Helper()
	root := filepath.Join("..")
	var out []shippedCaddyfile
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", "test-output", "output":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), "Caddyfile") && !strings.HasSuffix(d.Name(), ".caddyfile") {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out = append(out, shippedCaddyfile{name: filepath.ToSlash(rel), body: body})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeCaddyfileBlocks(t, filepath.Join(root, "README.md"))
	out = append(out, blocks...)

	// A search that finds nothing would pass vacuously.
	found := make(map[string]bool, len(out))
	for _, cf := range out {
		found[cf.name] = true
	}
	for _, must := range []string{"examples/Caddyfile", "examples/wordpress/Caddyfile", "examples/loadtest/Caddyfile", "test/wordpress/Caddyfile.tmpl"} {
		if !found[must] {
			t.Fatalf("%s was not found among the shipped Caddyfiles (found %d)", must, len(out))
		}
	}
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d caddyfile code blocks, want at least 2 (Caddyfile, Two nodes)", len(blocks))
	}
	return out
}

// readmeCaddyfileBlocks returns the ```caddyfile fenced blocks of a Markdown
// file, each named by the line of its opening fence.
func readmeCaddyfileBlocks(t *testing.T, path string) []shippedCaddyfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		out   []shippedCaddyfile
		cur   *shippedCaddyfile
		line  int
		fence string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		if cur == nil {
			if strings.HasPrefix(trimmed, "```") && strings.EqualFold(strings.TrimSpace(strings.TrimLeft(trimmed, "`")), "caddyfile") {
				fence = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, "`"))]
				cur = &shippedCaddyfile{name: filepath.Base(path) + ":" + strconv.Itoa(line), line: line}
			}
			continue
		}
		if trimmed == fence {
			out = append(out, *cur)
			cur = nil
			continue
		}
		cur.body = append(cur.body, text...)
		cur.body = append(cur.body, '\n')
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: caddyfile block opened and never closed", cur.name)
	}
	return out
}

// firstDifference returns the first line (1-based) where a and b differ, and
// that line of each.
func firstDifference(a, b []byte) (int, string, string) {
	al := strings.Split(string(a), "\n")
	bl := strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y || i >= len(al) || i >= len(bl) {
			return i + 1, x, y
		}
	}
	return 0, "", ""
}
