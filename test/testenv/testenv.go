// Package testenv is what the process-level test suites share: building the
// product's Caddy once, free loopback ports, starting and stopping Caddy
// processes, and the rule for tests that need outside services (skip with
// a clear message, or fail when REALTIME_TEST_STRICT=1, as CI sets it).
package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Strict reports whether tests must fail instead of skipping when a
// service they need (Redis, MariaDB, PHP-FPM, Chromium) is missing.
func Strict() bool { return os.Getenv("REALTIME_TEST_STRICT") == "1" }

// Require skips the test (or fails it, when Strict) unless ok.
func Require(t testing.TB, ok bool, what, hint string) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf("%s is not available (%s)", what, hint)
	if Strict() {
		t.Fatalf("%s, and REALTIME_TEST_STRICT=1 makes that a failure", msg)
	}
	t.Skipf("%s; set REALTIME_TEST_STRICT=1 to make this a failure", msg)
}

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

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

// Caddy builds the product's Caddy (./xcaddy-build/caddy) once per test
// process and returns the binary's path.
func Caddy(t testing.TB) string {
	t.Helper()
	path, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Build is Caddy for a TestMain, which has no testing.T.
func Build() (string, error) {
	buildOnce.Do(func() {
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

// FreePort returns a port that was free a moment ago, on every address.
// It is chosen below the kernel's ephemeral range (32768 and up): the
// suites run in parallel and open thousands of client connections whose
// source ports come from that range, and a server port picked there can be
// taken by one of them before the server binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// Process is a process started by a test (Caddy, PHP-FPM, ...). It is
// stopped by its PID when the test ends.
type Process struct {
	Name   string
	Cmd    *exec.Cmd
	Admin  string // host:port of the admin endpoint, for StartCaddy's
	Log    string // path of its combined output
	exited chan struct{}
}

// Start runs bin with args from dir ("" for the test's directory), with
// env added to the environment and its combined output in logPath. The
// process is stopped, by its PID, when the test ends.
func Start(t testing.TB, name, logPath, dir string, env []string, bin string, args ...string) *Process {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, Log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(p.Kill)
	return p
}

// StartCaddy writes caddyfile into a temp dir and runs Caddy on it from
// dir (the working directory, for relative roots; "" for the repo root).
// The Caddyfile must set its admin endpoint to admin. The process is
// stopped, by its PID, when the test ends.
func StartCaddy(t testing.TB, caddyfile, admin, dir string, env ...string) *Process {
	t.Helper()
	bin := Caddy(t)
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		dir = RepoRoot()
	}
	env = append([]string{"HOME=" + tmp, "XDG_DATA_HOME=" + tmp, "XDG_CONFIG_HOME=" + tmp}, env...)
	p := Start(t, "caddy", filepath.Join(tmp, "caddy.log"), dir, env, bin, "run", "--config", cfg, "--adapter", "caddyfile")
	p.Admin = admin
	if err := p.waitReady(15 * time.Second); err != nil {
		out, _ := os.ReadFile(p.Log)
		t.Fatalf("caddy did not start: %v\n%s", err, out)
	}
	return p
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *Process) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("process exited")
		default:
		}
		resp, err := http.Get("http://" + p.Admin + "/config/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("admin endpoint %s not ready", p.Admin)
}

// Kill stops the process by its PID if it still runs, and waits for it.
func (p *Process) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.exited
	}
}

// Have reports whether a command is on PATH.
func Have(cmd string) bool {
	_, err := exec.LookPath(cmd)
	return err == nil
}

// Exists reports whether a path exists.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Indent prefixes every line of s, for readable failure output.
func Indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
