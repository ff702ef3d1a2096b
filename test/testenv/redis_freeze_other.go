//go:build !unix

package testenv

// Freeze needs SIGSTOP: the test is skipped on systems without it.
func (s *RedisServer) Freeze() (thaw func()) {
	s.t.Helper()
	s.t.Skip("freezing redis-server needs SIGSTOP")
	return func() {}
}
