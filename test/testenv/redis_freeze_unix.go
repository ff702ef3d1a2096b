//go:build unix

package testenv

import "syscall"

// Freeze stops the server (SIGSTOP to its own PID) until thaw is called: a
// Redis that stalls with its connections open, as during a long command or
// a paused VM. The kernel still accepts connections and buffers what
// clients send; the server reads and runs it when thawed, even from a
// client that has closed its connection meanwhile.
func (s *RedisServer) Freeze() (thaw func()) {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatal("freeze: redis-server is not running")
	}
	p := s.cmd.Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
	return func() { _ = p.Signal(syscall.SIGCONT) }
}
