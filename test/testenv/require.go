package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SkipReportEnv names the environment variable that holds the path of a
// file to which Require appends one line per skip ("<suite>\t<reason>"), so
// that test/run.sh can list the skipped suites after go test, which hides
// the output of passing packages.
const SkipReportEnv = "REALTIME_TEST_SKIPS"

// Strict reports whether tests must fail instead of skipping when a
// service they need (Redis, MariaDB, PHP-FPM, Chromium) is missing.
func Strict() bool { return os.Getenv("REALTIME_TEST_STRICT") == "1" }

// Require skips the test (or fails it, when Strict) unless ok. what names
// the missing thing, enable the command that provides it.
func Require(t testing.TB, ok bool, what, enable string) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf("%s not available; enable with: %s", what, enable)
	if Strict() {
		t.Fatalf("%s (REALTIME_TEST_STRICT=1 makes this a failure)", msg)
	}
	reportSkip(msg)
	t.Skipf("%s (set REALTIME_TEST_STRICT=1 to make this a failure)", msg)
}

// reportSkip appends the suite (the package directory, relative to the
// repository) and why to the skip report, if one is asked for. The
// variable is read only here, so that a suite that runs stays in go
// test's cache.
func reportSkip(msg string) {
	path := os.Getenv(SkipReportEnv)
	if path == "" {
		return
	}
	suite, err := os.Getwd()
	if err == nil {
		if rel, err := filepath.Rel(RepoRoot(), suite); err == nil {
			suite = rel
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	// One write: suites in parallel processes append to the same file.
	_, _ = fmt.Fprintf(f, "%s\t%s\n", filepath.ToSlash(suite), msg)
}

// Needs collects what a suite lacks so that it skips once, naming every
// missing prerequisite and every command that provides one.
type Needs struct {
	missing, enable []string
}

// Check records what as missing, with the command that provides it,
// unless ok; it returns ok.
func (n *Needs) Check(ok bool, what, enable string) bool {
	if ok {
		return true
	}
	n.missing = append(n.missing, what)
	for _, e := range n.enable {
		if e == enable {
			return false
		}
	}
	n.enable = append(n.enable, enable)
	return false
}

// Require skips the test (or fails it, when Strict) if anything was
// missing.
func (n *Needs) Require(t testing.TB) {
	t.Helper()
	Require(t, len(n.missing) == 0, strings.Join(n.missing, ", "), strings.Join(n.enable, "; "))
}
