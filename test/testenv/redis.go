package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
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
	// Dir is the server's working directory (its log, redis.log, and
	// any files it writes).
	Dir  string
	t    testing.TB
	bin  string
	args []string // after the defaults
	cmd  *exec.Cmd
}

// StartRedisServer starts a redis-server on port (0 picks a spare one). It
// skips the test, or fails it when Strict, if redis-server is missing; the
// server is killed when the test ends.
func StartRedisServer(t testing.TB, port int) *RedisServer {
	t.Helper()
	return StartRedisServerWith(t, port)
}

// StartRedisServerWith is StartRedisServer with more arguments for
// redis-server (after the defaults, so that they win): a replica
// (--replicaof), a cluster node, TLS (then --port 0 and --tls-port: the
// server is ready when its log says so).
func StartRedisServerWith(t testing.TB, port int, args ...string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	Require(t, err == nil, "redis-server", "apt-get install redis-server")
	if port == 0 {
		port = FreePort(t)
	}
	s := &RedisServer{Port: port, t: t, bin: bin, Dir: t.TempDir(), args: args}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// PID is the server's process id (0 when it is not running).
func (s *RedisServer) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Start starts the server (empty) and waits until it answers PING.
func (s *RedisServer) Start() {
	s.t.Helper()
	logPath := filepath.Join(s.Dir, "redis.log")
	_ = os.Remove(logPath)
	args := append([]string{"--port", fmt.Sprint(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.Dir, "--logfile", logPath}, s.args...)
	s.cmd = exec.Command(s.bin, args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !s.pong() && !logSays(logPath, "Ready to accept connections") {
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

// logSays reports whether the file at path contains text.
func logSays(path, text string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(text))
}
