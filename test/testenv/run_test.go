package testenv_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// TestRunScript runs the README's test command, test/run.sh, on a package
// whose tests skip: go test alone prints only "ok" for it, the script
// must add one line naming the suite, what it lacks and the command that
// provides it, and keep go test's exit status.
func TestRunScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test in a subprocess")
	}
	const want = "SKIPPED test/testenv/testdata/skips: the moon not available; enable with: apt-get install moon"
	for _, c := range []struct {
		name string
		fail bool
	}{{"passing", false}, {"failing", true}} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "test", "run.sh"), "-count=1", "./test/testenv/testdata/skips/")
			cmd.Env = append(without(os.Environ(), "REALTIME_TEST_STRICT", testenv.SkipReportEnv, "RUN_SCRIPT_TEST_FAIL"),
				"RUN_SCRIPT_TEST_FAIL="+map[bool]string{true: "1"}[c.fail])
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			switch {
			case c.fail && !errors.As(err, &ee):
				t.Errorf("a failing test: run.sh ended with %v, want exit status 1", err)
			case !c.fail && err != nil:
				t.Errorf("run.sh: %v", err)
			}
			if c.fail && !regexp.MustCompile(`(?m)^FAIL\s`).Match(out) {
				t.Errorf("go test's FAIL line is missing")
			}
			if !c.fail && !regexp.MustCompile(`(?m)^ok\s+\S+/test/testenv/testdata/skips\s`).Match(out) {
				t.Errorf("go test's ok line is missing")
			}
			if n := strings.Count(string(out), "SKIPPED "); n != 1 {
				t.Errorf("%d SKIPPED lines, want 1 for the suite", n)
			}
			if !strings.Contains(string(out), want+"\n") {
				t.Errorf("no line %q", want)
			}
			if t.Failed() {
				t.Logf("output:\n%s", testenv.Indent(string(out)))
			}
		})
	}
}

// without drops the named variables from env.
func without(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}
