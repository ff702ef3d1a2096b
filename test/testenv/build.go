package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Main runs a package's tests, then removes the binary Caddy built.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// BinaryEnv names an environment variable that replaces the build: the
// path of a Caddy binary with the modules, for running a black-box suite
// against another build (an older commit, to see a test fail before its
// fix).
const BinaryEnv = "REALTIME_CADDY_BIN"

// CaddyBinary builds the product's Caddy (./xcaddy-build/caddy) once per test
// process and returns the binary's path, or the binary that BinaryEnv
// names.
func CaddyBinary(t testing.TB) string {
	t.Helper()
	path, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Build is CaddyBinary for a TestMain, which has no testing.T.
func Build() (string, error) {
	buildOnce.Do(func() {
		if bin := os.Getenv(BinaryEnv); bin != "" {
			buildPath = bin
			if _, err := os.Stat(bin); err != nil {
				buildErr = fmt.Errorf("%s: %v", BinaryEnv, err)
			}
			return
		}
		dir, err := os.MkdirTemp("", "caddy-realtime-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir, buildPath = dir, filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", buildPath, "./xcaddy-build/caddy")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	return buildPath, buildErr
}
