package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RedisServer is a redis-server a fault test starts on a spare loopback
// port, without persistence, and kills by its own PID (never another
// Redis, such as the shared one on 6379).
type RedisServer struct {
	Port int
	t    testing.TB
	bin  string
	dir  string
	cmd  *exec.Cmd
}

// StartRedisServer starts a redis-server on port (0 picks a spare one). It
// skips the test, or fails it when Strict, if redis-server is missing; the
// server is killed when the test ends.
func StartRedisServer(t testing.TB, port int) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	Require(t, err == nil, "redis-server", "apt-get install redis-server")
	if port == 0 {
		port = FreePort(t)
	}
	s := &RedisServer{Port: port, t: t, bin: bin, dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Start starts the server (empty) and waits until it answers PING.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--port", fmt.Sprint(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !s.pong() {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %d did not start", s.Port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *RedisServer) pong() bool {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// Kill sends SIGKILL to this server's PID (and no other process).
func (s *RedisServer) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart kills the server and starts a fresh, empty one on the same port.
func (s *RedisServer) Restart() {
	s.t.Helper()
	s.Kill()
	s.Start()
}
