package testenv

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a process started by a test (Caddy, PHP-FPM, ...). It is
// stopped, by its PID, when the test ends.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // path of its combined output

	exited   chan struct{}
	exitedAt time.Time
}

// Start runs bin with args from dir ("" for the test's directory), with
// env added to the environment and its combined output in logPath. When
// the test ends the process is stopped by its PID (SIGTERM, then SIGKILL
// after 10 s) and, if the test failed, the end of its output is logged.
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
		p.exitedAt = time.Now()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s (pid %d) output, last lines:\n%s", name, cmd.Process.Pid, Indent(p.LogTail(60)))
		}
	})
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

// Wait waits up to timeout for the process to end and reports whether it
// did.
func (p *Process) Wait(timeout time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// ExitedAt is when the process was seen to end (zero while it runs).
func (p *Process) ExitedAt() time.Time {
	if !p.Exited() {
		return time.Time{}
	}
	return p.exitedAt
}

// ExitCode is the exit code of an ended process (-1 if a signal killed
// it, -2 while it runs).
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -2
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Signal sends sig to this process (by its PID).
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Kill stops the process by its PID if it still runs (SIGTERM, then
// SIGKILL after 10 s), and waits for it.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	if !p.Wait(10 * time.Second) {
		_ = p.Cmd.Process.Kill()
		<-p.exited
	}
}

// LogTail returns the last n lines of the process's output.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
