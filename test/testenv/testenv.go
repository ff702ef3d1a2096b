// Package testenv is what the test suites share besides the protocol
// client (test/internal/rtclient): building the product's Caddy once, free
// loopback ports, starting and stopping Caddy and other processes by their
// PID, and the rule for tests that need outside services (skip with a
// message naming the command that provides them, or fail when
// REALTIME_TEST_STRICT=1, as CI sets it).
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
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
