package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// summarize reads -json results whose label is "<scenario>/<target>/<run>"
// (as compare.sh writes them) and prints medians with their spread, then the
// targets table: the module's median against nchan's, and whether each target
// ratio holds.

type metric struct {
	name string
	get  func(*result) float64
}

var metrics = map[string]metric{
	"mem":    {"memory/conn KiB", func(r *result) float64 { return r.MemPerConnKiB }},
	"rss":    {"rss/conn KiB", func(r *result) float64 { return r.RSSPerConnKiB }},
	"deliv":  {"deliveries/s", func(r *result) float64 { return r.DeliveredPerS }},
	"events": {"events/s", func(r *result) float64 { return r.EventsPerS }},
	"cpu":    {"CPU s/M deliv", func(r *result) float64 { return r.CPUPerMillionDeliveries }},
	"srvcpu": {"server CPU s", func(r *result) float64 { return r.ServerCPUS }},
	// user and kernel shares of the CPU per delivery: the kernel's part (the
	// send path of loopback TCP, down to waking the reader) is a floor that no
	// server can go under by its own code.
	"cpuusr":    {"user CPU s/M deliv", func(r *result) float64 { return share(r, r.ServerUserS) }},
	"cpusys":    {"sys CPU s/M deliv", func(r *result) float64 { return share(r, r.ServerSysS) }},
	"gencpu":    {"generator CPU s", func(r *result) float64 { return r.GeneratorCPUS }},
	"p50":       {"latency p50 ms", func(r *result) float64 { return r.Latency.P50Ms }},
	"p90":       {"latency p90 ms", func(r *result) float64 { return r.Latency.P90Ms }},
	"p99":       {"latency p99 ms", func(r *result) float64 { return r.Latency.P99Ms }},
	"max":       {"latency max ms", func(r *result) float64 { return r.Latency.MaxMs }},
	"pubreq":    {"publish req/s", func(r *result) float64 { return r.PublishReqPerS }},
	"pubp99":    {"publish p99 ms", func(r *result) float64 { return r.PublishLatency.P99Ms }},
	"pubev":     {"published events/s", func(r *result) float64 { return r.PublishEventsPerS }},
	"ramp":      {"ramp conn/s", func(r *result) float64 { return r.RampPerS }},
	"lostdup":   {"lost+dup", func(r *result) float64 { return float64(r.Lost + r.Duplicated) }},
	"disc":      {"disconnects", func(r *result) float64 { return float64(r.Disconnects) }},
	"connected": {"connected", func(r *result) float64 { return float64(r.Connected) }},
	"noise": {"other procs, cores", func(r *result) float64 {
		if r.Machine.WindowS == 0 {
			return 0
		}
		return r.Machine.OtherS / r.Machine.WindowS
	}},
}

// per scenario: the metrics shown, in order
var scenarioMetrics = map[string][]string{
	"idle":          {"mem", "rss", "connected", "ramp", "disc"},
	"flood":         {"deliv", "events", "cpu", "cpuusr", "cpusys", "srvcpu", "gencpu", "p50", "p99", "lostdup", "disc"},
	"rate200":       {"cpu", "cpuusr", "cpusys", "srvcpu", "gencpu", "deliv", "p50", "p99", "lostdup", "disc"},
	"latency":       {"p50", "p90", "p99", "max", "cpu", "cpuusr", "cpusys", "srvcpu", "lostdup", "disc"},
	"wp":            {"cpu", "cpuusr", "cpusys", "srvcpu", "p50", "p99", "max", "deliv", "lostdup", "disc"},
	"publish":       {"pubreq", "pubp99", "srvcpu", "lostdup"},
	"publish-batch": {"pubev", "pubreq", "pubp99", "srvcpu", "lostdup"},
	"smoke":         {"deliv", "p99", "lostdup"},
	"idle-tls":      {"mem", "rss", "connected", "ramp", "disc"},
	"flood-tls":     {"deliv", "events", "cpu", "p99", "lostdup", "disc"},
	"sse-idle":      {"mem", "rss", "connected", "ramp", "disc"},
	"sse-idle-tls":  {"mem", "rss", "connected", "ramp", "disc"},
	"sse-idle-h2":   {"mem", "rss", "connected", "ramp", "disc"},
	"pusher-idle":   {"mem", "rss", "connected", "ramp", "disc"},
	"presence-idle": {"mem", "rss", "connected", "ramp", "disc"},
	"private-idle":  {"mem", "rss", "connected", "ramp", "disc"},
	"pusher-flood":  {"deliv", "events", "cpu", "cpuusr", "cpusys", "srvcpu", "gencpu", "p50", "p99", "lostdup", "disc"},
	"sse-flood":     {"deliv", "events", "cpu", "srvcpu", "gencpu", "p50", "p99", "lostdup", "disc"},
}

// share is the part of the CPU per million deliveries that s (user or
// system seconds) stands for.
func share(r *result, s float64) float64 {
	if r.ServerCPUS == 0 {
		return 0
	}
	return r.CPUPerMillionDeliveries * s / r.ServerCPUS
}

type target struct {
	scenario, metric, figure string
	higherBetter             bool
	ratio                    float64
}

var targets = []target{
	{"idle", "mem", "10k idle: memory per connection", false, 0.4},
	{"idle-tls", "mem", "10k idle wss: memory per connection", false, 0.4},
	{"flood-tls", "cpu", "1k wss subs, back to back: CPU s per million deliveries", false, 0.8},
	{"flood", "deliv", "1k subs, back to back: delivered/s", true, 2.0},
	{"flood", "cpu", "same run: CPU s per million deliveries", false, 0.5},
	{"rate200", "cpu", "1k subs, 200 ev/s: CPU s per million deliveries", false, 0.4},
	{"latency", "p99", "10k subs, 2 ev/s: fan-out latency p99", false, 0.7},
	{"latency", "max", "same run: fan-out latency max", false, 1.0},
	{"latency", "cpu", "same run: CPU s per million deliveries", false, 0.6},
	{"wp", "cpu", "1k subs, one sequential publisher at 200 ev/s: CPU s per million deliveries", false, 0.4},
	{"publish", "pubreq", "1 sub, 32 publishers: publish req/s", true, 1.0},
	{"sse-idle", "mem", "SSE, 10k idle streams: memory per stream", false, 0.8},
	{"sse-flood", "cpu", "same run: CPU s per million deliveries", false, 0.5},
}

// selfTarget is a figure of one scenario against the same figure of
// another, both the module's.
type selfTarget struct {
	scenario, base, metric, figure string
	ratio                          float64
}

var selfTargets = []selfTarget{
	{"pusher-idle", "idle", "mem", "Pusher / own protocol: idle memory per connection", 1.1},
	{"pusher-flood", "flood", "cpu", "Pusher / own protocol: CPU s per million deliveries", 1.1},
	{"presence-idle", "idle", "mem", "presence / public channel: idle memory per conn", 1.5},
	{"presence-idle", "private-idle", "mem", "presence / private channel, same token: idle memory", 1.5},
}

func summarizeMain(args []string, w io.Writer) int {
	var files []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err == nil && st.IsDir() {
			m, _ := filepath.Glob(filepath.Join(a, "*.json"))
			files = append(files, m...)
		} else {
			files = append(files, a)
		}
	}
	groups := map[string][]*result{} // scenario/target
	var order []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			continue
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			continue
		}
		parts := strings.Split(r.Label, "/")
		if len(parts) < 2 {
			parts = []string{r.Label, r.Target}
		}
		k := parts[0] + "/" + parts[1]
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], &r)
	}
	sort.Strings(order)
	stat := func(rs []*result, m string) (med, lo, hi float64, n int) {
		var v []float64
		for _, r := range rs {
			v = append(v, metrics[m].get(r))
		}
		if len(v) == 0 {
			return 0, 0, 0, 0
		}
		sort.Float64s(v)
		med = v[len(v)/2]
		if len(v)%2 == 0 {
			med = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		return med, v[0], v[len(v)-1], len(v)
	}
	fmt.Fprintln(w, "medians [min .. max] over runs")
	for _, k := range order {
		scen := strings.SplitN(k, "/", 2)[0]
		ms := scenarioMetrics[scen]
		if ms == nil && strings.HasPrefix(scen, "idle-") {
			ms = scenarioMetrics["idle"]
		}
		if ms == nil && strings.HasPrefix(scen, "scale-") {
			ms = []string{"cpu", "deliv", "events", "p50", "p99", "mem", "lostdup", "disc"}
		}
		if ms == nil {
			ms = []string{"deliv", "cpu", "p99", "mem", "lostdup"}
		}
		noisy := 0
		for _, r := range groups[k] {
			if r.Machine.NoisyWarning {
				noisy++
			}
		}
		fmt.Fprintf(w, "%-22s (%d runs, %d noisy)\n", k, len(groups[k]), noisy)
		for _, m := range append(ms, "noise") {
			med, lo, hi, _ := stat(groups[k], m)
			fmt.Fprintf(w, "    %-18s %12s  [%s .. %s]\n", metrics[m].name, num(med), num(lo), num(hi))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets (module / nchan, medians)")
	fmt.Fprintf(w, "%-50s %14s %14s %8s %8s  %s\n", "figure", "module", "nchan", "ratio", "target", "holds")
	for _, t := range targets {
		rt, nc := groups[t.scenario+"/realtime"], groups[t.scenario+"/nchan"]
		if len(rt) == 0 || len(nc) == 0 {
			continue
		}
		a, _, _, _ := stat(rt, t.metric)
		b, _, _, _ := stat(nc, t.metric)
		ratio := 0.0
		if b != 0 {
			ratio = a / b
		}
		holds := ratio <= t.ratio
		cmp := "<="
		if t.higherBetter {
			holds = ratio >= t.ratio
			cmp = ">="
		}
		fmt.Fprintf(w, "%-50s %14s %14s %8.2f %5s%.1f  %v\n", t.figure, num(a), num(b), ratio, cmp, t.ratio, yesno(holds))
	}
	// The module against itself: other wire formats and presence against the
	// plain WebSocket figures of the same comparison.
	first := true
	for _, t := range selfTargets {
		a, _, _, n := stat(groups[t.scenario+"/realtime"], t.metric)
		b, _, _, m := stat(groups[t.base+"/realtime"], t.metric)
		if n == 0 || m == 0 || b == 0 {
			continue
		}
		if first {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "module against itself (medians)")
			first = false
		}
		fmt.Fprintf(w, "%-50s %14s %14s %8.2f %5s%.1f  %v\n", t.figure, num(a), num(b), a/b, "<=", t.ratio, yesno(a/b <= t.ratio))
	}
	// compare.sh BASE_FROM=<rev>: the module against an older build of itself
	header := false
	for _, k := range order {
		scen, tgt, _ := strings.Cut(k, "/")
		base := groups[scen+"/base"]
		if tgt != "realtime" || len(base) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "before/after (module / module at BASE_FROM, medians; 1.05 = 5% more)")
			fmt.Fprintf(w, "%-14s %-20s %14s %14s %8s\n", "scenario", "figure", "module", "base", "ratio")
			header = true
		}
		for _, m := range []string{"mem", "deliv", "cpu", "p50", "p99", "max", "pubreq"} {
			a, _, _, _ := stat(groups[k], m)
			b, _, _, _ := stat(base, m)
			if a == 0 && b == 0 {
				continue
			}
			ratio := 0.0
			if b != 0 {
				ratio = a / b
			}
			fmt.Fprintf(w, "%-14s %-20s %14s %14s %8.3f\n", scen, metrics[m].name, num(a), num(b), ratio)
		}
	}
	// losses, every run
	var lines []string
	for _, k := range order {
		var lost, dup, runs int64
		for _, r := range groups[k] {
			lost += r.Lost
			dup += r.Duplicated
			runs++
		}
		lines = append(lines, fmt.Sprintf("%s lost %d dup %d", k, lost, dup))
	}
	fmt.Fprintf(w, "%-50s %s\n", "events lost or duplicated (sum over runs)", strings.Join(lines, "; "))
	return 0
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}
