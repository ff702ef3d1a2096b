package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Linux /proc readers for the server's memory and CPU. A server is a process
// tree (nginx master + workers; Caddy is one process): figures are summed over
// the root pid and all its descendants.

const clkTck = 100 // USER_HZ; 100 on every Linux this runs on

type procSnap struct {
	Procs   int     `json:"procs"`
	RSSKiB  int64   `json:"rss_kib"`
	PSSKiB  int64   `json:"pss_kib"` // -1 when smaps_rollup is unreadable
	CPUSecs float64 `json:"cpu_s"`   // utime+stime
	UserS   float64 `json:"user_s"`
	SysS    float64 `json:"sys_s"`
}

// procTree returns root and every descendant of root.
func procTree(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		_, ppid, _, _, err := readStat(pid)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out) && i < 100000; i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// readStat returns comm, ppid, utime, stime (ticks) of /proc/<pid>/stat.
func readStat(pid int) (string, int, uint64, uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, 0, 0, err
	}
	// comm may contain spaces and parens: split after the last ')'.
	lp := bytes.IndexByte(b, '(')
	rp := bytes.LastIndexByte(b, ')')
	if lp < 0 || rp < lp {
		return "", 0, 0, 0, fmt.Errorf("bad stat for %d", pid)
	}
	comm := string(b[lp+1 : rp])
	f := strings.Fields(string(b[rp+1:]))
	// f[0]=state(3) f[1]=ppid(4) ... utime(14)=f[11] stime(15)=f[12]
	if len(f) < 13 {
		return "", 0, 0, 0, fmt.Errorf("short stat for %d", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return comm, ppid, ut, st, nil
}

func readKiB(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key) {
			fs := strings.Fields(line[len(key):])
			if len(fs) > 0 {
				v, err := strconv.ParseInt(fs[0], 10, 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}

// snapTree measures the process tree rooted at pid.
func snapTree(pid int) (procSnap, error) {
	if pid <= 0 {
		return procSnap{}, fmt.Errorf("no server pid")
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
		return procSnap{}, fmt.Errorf("server pid %d: %v", pid, err)
	}
	s := procSnap{}
	var ut, st uint64
	pssOK := true
	for _, p := range procTree(pid) {
		_, _, u, sy, err := readStat(p)
		if err != nil {
			continue
		}
		s.Procs++
		ut += u
		st += sy
		if v, ok := readKiB(filepath.Join("/proc", strconv.Itoa(p), "status"), "VmRSS:"); ok {
			s.RSSKiB += v
		}
		if v, ok := readKiB(filepath.Join("/proc", strconv.Itoa(p), "smaps_rollup"), "Pss:"); ok {
			s.PSSKiB += v
		} else {
			pssOK = false
		}
	}
	if !pssOK {
		s.PSSKiB = -1
	}
	s.UserS = float64(ut) / clkTck
	s.SysS = float64(st) / clkTck
	s.CPUSecs = s.UserS + s.SysS
	return s, nil
}

// selfCPU is the load generator's own CPU seconds.
func selfCPU() float64 {
	_, _, u, s, err := readStat(os.Getpid())
	if err != nil {
		return 0
	}
	return float64(u+s) / clkTck
}

func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// machineSnap is the whole machine's busy CPU time (/proc/stat) and CPU
// pressure stall total (/proc/pressure/cpu "some", µs): with the server's and
// the generator's own CPU it tells how much other work ran during a run.
type machineSnap struct {
	at      int64 // mono ns
	busyS   float64
	stallUs int64 // -1 when PSI is unavailable
	selfS   float64
}

func snapMachine() machineSnap {
	m := machineSnap{at: mono(), stallUs: -1, selfS: selfCPU()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) >= 8 && f[0] == "cpu" {
			var total, idle uint64
			for i, x := range f[1:] {
				v, _ := strconv.ParseUint(x, 10, 64)
				if i >= 8 { // guest time is already in user
					break
				}
				total += v
				if i == 3 || i == 4 { // idle, iowait
					idle += v
				}
			}
			m.busyS = float64(total-idle) / clkTck
		}
	}
	if b, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if i := strings.Index(line, "total="); i >= 0 {
			m.stallUs, _ = strconv.ParseInt(strings.TrimSpace(line[i+6:]), 10, 64)
		}
	}
	return m
}

type machineWindow struct {
	WindowS      float64 `json:"window_s"`
	BusyS        float64 `json:"busy_cpu_s"`      // all CPUs, all processes
	GeneratorS   float64 `json:"generator_cpu_s"` // this tool
	OtherS       float64 `json:"other_cpu_s"`     // busy - server - generator: noise from other work
	CPUStallPct  float64 `json:"cpu_stall_pct"`   // PSI: share of the window some task waited for a CPU
	NoisyWarning bool    `json:"noisy"`
}

func window(a, b machineSnap, serverS float64) machineWindow {
	w := machineWindow{WindowS: float64(b.at-a.at) / 1e9, BusyS: b.busyS - a.busyS, GeneratorS: b.selfS - a.selfS}
	w.OtherS = w.BusyS - serverS - w.GeneratorS
	if w.OtherS < 0 {
		w.OtherS = 0
	}
	if a.stallUs >= 0 && b.stallUs >= 0 && w.WindowS > 0 {
		w.CPUStallPct = float64(b.stallUs-a.stallUs) / 1e4 / w.WindowS
	}
	// Other work above a tenth of one core: the figures of this run are suspect.
	w.NoisyWarning = w.WindowS > 0 && w.OtherS/w.WindowS > 0.1
	return w
}
