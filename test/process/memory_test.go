package process_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// memory is what a Caddy process holds: its resident set, and the Go
// runtime's own figures right after a collection.
type memory struct {
	RSS        int64 // VmRSS of /proc/<pid>/status
	HeapAlloc  int64 // live heap objects
	HeapInuse  int64 // heap spans in use
	StackInuse int64 // goroutine stacks
}

func (m memory) String() string {
	return fmt.Sprintf("RSS %s, heap alloc %s, heap in use %s, stacks %s",
		mib(m.RSS), mib(m.HeapAlloc), mib(m.HeapInuse), mib(m.StackInuse))
}

// sub returns m - o, field by field.
func (m memory) sub(o memory) memory {
	return memory{RSS: m.RSS - o.RSS, HeapAlloc: m.HeapAlloc - o.HeapAlloc,
		HeapInuse: m.HeapInuse - o.HeapInuse, StackInuse: m.StackInuse - o.StackInuse}
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// memory collects the process's garbage (through the admin endpoint's
// pprof heap profile with gc=1, which also reports the runtime's
// MemStats), lets it settle for settle, and reads its resident set.
func (p *proc) memory(settle time.Duration) memory {
	p.t.Helper()
	var m memory
	resp, err := p.http.Get(p.AdminURL("/debug/pprof/heap?gc=1&debug=1"))
	if err != nil {
		p.t.Fatalf("heap profile: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		p.t.Fatalf("heap profile: %s, %v", resp.Status, err)
	}
	// The profile ends with lines such as "# HeapInuse = 1234".
	for _, line := range strings.Split(string(body), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.Fields(v + " ")[0], 10, 64)
		switch k {
		case "HeapAlloc":
			m.HeapAlloc = n
		case "HeapInuse":
			m.HeapInuse = n
		case "Stack":
			// "# Stack = 1234 / 5678": in use / from the system.
			m.StackInuse = n
		}
	}
	time.Sleep(settle)
	m.RSS = rss(p.t, p.Cmd.Process.Pid)
	return m
}

// rss reads the resident set of process pid, in bytes.
func rss(t interface{ Fatalf(string, ...any) }, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("rss: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("rss: %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("rss: no VmRSS in /proc/%d/status", pid)
	return 0
}
