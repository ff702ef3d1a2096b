#!/usr/bin/env bash
# compare.sh: caddy-realtime against nginx + nchan with the same load tool,
# module and nchan alternating (the first of the pair alternates too), a fresh
# server for every run, RUNS runs per scenario; prints medians with spread and
# the targets table (ratios to nchan).
#
#   examples/loadtest/nchan/compare.sh                   # the default scenarios, 3 runs each
#   RUNS=5 SCENARIOS="flood rate200" examples/loadtest/nchan/compare.sh
#   SCENARIOS="idle-tls flood-tls" examples/loadtest/nchan/compare.sh   # TLS: by the scenario name
#   BASE_FROM=<rev> SCENARIOS="idle flood latency" examples/loadtest/nchan/compare.sh
#       # before/after: the module against its own build from <rev> instead of nchan
#
# Scenarios:
#   idle      10,000 idle subscribers, memory measured 30 s after the last connect
#   flood     1,000 subscribers, one publisher back to back for 10 s
#   rate200   1,000 subscribers, 200 events/s for 10 s
#   latency   10,000 subscribers, one sequential publisher at 2 events/s for 15 s
#   wp        WordPress-shaped: 1,000 subscribers, one publisher posting sequentially on one
#             keep-alive connection at 200 events/s for 10 s (1 ms coalescing rarely batches)
#   publish   1 subscriber, 32 concurrent publishers for 10 s
#   publish-batch  1 subscriber, 32 publishers offering 40,000 events/s for 10 s, the module
#             taking 10 per request (a JSON array body; nchan has no batch form, so it gets
#             one per request): published events/s
#   smoke     200 subscribers, back to back for 2 s (quick sanity check)
#   idle-tls, flood-tls: idle and flood over wss:// / https:// (module: tls internal)
#   sse-idle  as idle, over Server-Sent Events (the module's HTTP/1.1 streams, nchan's EventSource)
#   sse-flood as flood, over Server-Sent Events
#   sse-idle-tls   sse-idle over https:// (HTTP/1.1 on both: the module's streams taken over)
#   sse-idle-h2    the module only: sse-idle over HTTP/2 (tls internal), streams held by net/http
#   pusher-idle, pusher-flood   the module only: idle and flood with Pusher-protocol subscribers
#             (realtime_pusher, -target pusher), against the module's own idle and flood
#   presence-idle  the module only: idle, every subscriber a user of its own on a presence
#             channel of 100 (-presence 100), against idle
#   private-idle   the module only: the same tokens on private channels (-presence 100 -private),
#             what presence-idle costs without presence
#   idle-N    N idle subscribers (memory per connection at another size, e.g. idle-19000)
#   scale-N   N subscribers, 200,000/N events/s for 10 s: CPU per delivery at the same
#             offered deliveries/s whatever the size (e.g. scale-1000 ... scale-19000)
#
# Environment: RUNS (3), SCENARIOS, OUT (result dir), NCHAN_WORKERS (2),
# RT_PORT (8480), RT_TLS_PORT (8443), RT_ADMIN (localhost:2019), NC_PORT (8490),
# NC_TLS_PORT (8493), BUILD_FROM (a git revision: build the module from it, not from the
# working tree), BASE_FROM (a git revision: compare against the module built from it, with
# that revision's examples/loadtest/Caddyfile, instead of nchan), LOADTEST_FLAGS (extra flags for every run), QUIET_BUSY (0.3: wait
# before each run until other processes use less than this many cores), QUIET_WAIT (300 s
# at most, then run anyway and say so), NICE (0: niceness of both servers and the load
# tool, e.g. -10 to keep other work on a shared machine from dominating the figures),
# TRACE (1: also capture a Go execution trace of the module's Caddy for each of its runs,
# <scenario>-realtime-<run>.trace in the result dir; open with `go tool trace`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
runs=${RUNS:-3}
scenarios=${SCENARIOS:-"idle flood rate200 wp latency publish"}
out=${OUT:-/tmp/loadtest-compare-$(date +%Y%m%d-%H%M%S)}
workers=${NCHAN_WORKERS:-2}
export RT_PORT=${RT_PORT:-8480} RT_TLS_PORT=${RT_TLS_PORT:-8443} RT_ADMIN=${RT_ADMIN:-localhost:2019}
export RT_STORAGE=${RT_STORAGE:-$out/caddy-storage}
nc_port=${NC_PORT:-8490}
nc_tls_port=${NC_TLS_PORT:-8493}
extra=${LOADTEST_FLAGS:-}
quiet_busy=${QUIET_BUSY:-0.3}
quiet_wait=${QUIET_WAIT:-300}
nice_n=${NICE:-0}
run_nice() { if [ "$nice_n" != 0 ]; then nice -n "$nice_n" "$@"; else "$@"; fi; }
nice_cmd=(env) # a prefix that execs, so that $! is the server itself
[ "$nice_n" != 0 ] && nice_cmd=(nice -n "$nice_n")
mkdir -p "$out"

log() { printf '[compare %s] %s\n' "$(date +%T)" "$*" >&2; }

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
wait_port() { # port, seconds
	local i
	for i in $(seq 1 $(($2 * 10))); do
		port_free "$1" || return 0
		sleep 0.1
	done
	return 1
}

busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
# wait_quiet: the machine is shared; wait (bounded) until other work is below
# QUIET_BUSY cores over one second, so runs are not measured under someone's build.
wait_quiet() {
	local i a b busy
	for i in $(seq 1 "$quiet_wait"); do
		a=$(busy_ticks)
		sleep 1
		b=$(busy_ticks)
		busy=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", (b-a)/100}')
		if awk -v x="$busy" -v t="$quiet_busy" 'BEGIN{exit !(x < t)}'; then
			[ "$i" -gt 1 ] && log "machine quiet after ${i}s (busy $busy cores)"
			return 0
		fi
		[ $((i % 30)) = 1 ] && log "waiting for a quiet machine (busy $busy cores)"
	done
	log "machine still busy ($busy cores) after ${quiet_wait}s; running anyway"
}

log "building into $out"
if [ -n "${BUILD_FROM:-}" ]; then
	# a committed revision, untouched by edits in progress in the working tree
	src="$out/src"
	rm -rf "$src" && mkdir -p "$src"
	(cd "$repo" && git archive "$BUILD_FROM") | tar -x -C "$src"
	rev=$(cd "$repo" && git rev-parse --short "$BUILD_FROM")
else
	src=$repo
	rev=$(cd "$repo" && git describe --always --dirty 2>/dev/null || echo unknown)
fi
(cd "$src" && go build -o "$out/caddy" ./xcaddy-build/caddy)
(cd "$repo" && go build -o "$out/loadtest" ./examples/loadtest)
other=nchan
if [ -n "${BASE_FROM:-}" ]; then
	other=base
	base_src="$out/base-src"
	rm -rf "$base_src" && mkdir -p "$base_src"
	(cd "$repo" && git archive "$BASE_FROM") | tar -x -C "$base_src"
	(cd "$base_src" && go build -o "$out/caddy-base" ./xcaddy-build/caddy)
	base_rev=$(cd "$repo" && git rev-parse --short "$BASE_FROM")
fi
if [ "$other" = nchan ]; then "$here/run-nchan.sh" install; fi # before its versions are recorded
{
	echo "revision $rev"
	echo "machine $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
	echo "nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null), nginx $(dpkg-query -W -f='${Version}' nginx-light 2>/dev/null || dpkg-query -W -f='${Version}' nginx 2>/dev/null), worker_processes $workers"
	echo "runs $runs, scenarios: $scenarios, nice $nice_n"
	if [ "$other" = base ]; then echo "against the module at $base_rev (target base), not nchan"; fi
} >"$out/info.txt"
log "revision $rev"


for p in "$RT_PORT" "$RT_TLS_PORT" "${RT_ADMIN##*:}" "$nc_port" "$nc_tls_port"; do
	port_free "$p" || { log "port $p is in use; set RT_PORT/RT_TLS_PORT/RT_ADMIN/NC_PORT/NC_TLS_PORT"; exit 1; }
done

rt_pid=
nc_dir="$out/nchan"
start_realtime() { start_module "$out/caddy" "$repo/examples/loadtest/Caddyfile" "$1"; }
start_base() { start_module "$out/caddy-base" "$base_src/examples/loadtest/Caddyfile" "base-$1"; }
stop_base() { stop_realtime; }
start_module() { # binary Caddyfile log-suffix
	"${nice_cmd[@]}" "$1" run --config "$2" >"$out/caddy-$3.log" 2>&1 &
	rt_pid=$!
	wait_port "$RT_PORT" 20 || { log "caddy did not start, see $out/caddy-$3.log"; exit 1; }
	wait_port "$RT_TLS_PORT" 20 || true
	sleep 1 # let start-up work (certificate, GC) settle before the baseline
	echo "$rt_pid" >"$out/caddy.pid"
}
stop_realtime() {
	[ -n "$rt_pid" ] || return 0
	kill -TERM "$rt_pid" 2>/dev/null || true
	local i
	for i in $(seq 1 100); do
		kill -0 "$rt_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$rt_pid" 2>/dev/null || true
	wait "$rt_pid" 2>/dev/null || true
	rt_pid=
}
start_nchan() {
	run_nice "$here/run-nchan.sh" start -d "$nc_dir" -p "$nc_port" -s "$nc_tls_port" -w "$workers" >/dev/null
	sleep 1
}
stop_nchan() { "$here/run-nchan.sh" stop -d "$nc_dir" 2>/dev/null || true; }
cleanup() { stop_realtime; [ "$other" = nchan ] && stop_nchan; return 0; }
trap cleanup EXIT
trap 'exit 130' INT TERM

args_for() { # scenario
	case $1 in
	sse-idle | sse-idle-tls) echo "-transport sse $(args_for idle)" ;;
	sse-idle-h2) echo "-transport sse -h2 $(args_for idle)" ;;
	sse-flood) echo "-transport sse $(args_for flood)" ;;
	pusher-idle) args_for idle ;;
	pusher-flood) args_for flood ;;
	presence-idle) echo "-presence 100 $(args_for idle)" ;;
	private-idle) echo "-presence 100 -private $(args_for idle)" ;;
	idle | idle-tls) echo "-idle -subs 10000 -idle-wait 30s -ramp 5000 -timeout 3m" ;;
	flood | flood-tls) echo "-subs 1000 -pubs 1 -duration 10s -timeout 3m" ;;
	rate200) echo "-subs 1000 -rate 200 -pubs 4 -duration 10s -timeout 3m" ;;
	latency) echo "-subs 10000 -rate 2 -duration 15s -ramp 5000 -timeout 3m" ;;
	wp) echo "-subs 1000 -rate 200 -pubs 1 -duration 10s -timeout 3m" ;;
	publish) echo "-subs 1 -pubs 32 -duration 10s -timeout 3m" ;;
	publish-batch) echo "-subs 1 -pubs 32 -rate 40000 -max-resumes 1000 -duration 10s -timeout 3m" ;; # the module's -batch is added by one()
	smoke) echo "-subs 200 -duration 2s -timeout 1m" ;;
	idle-[0-9]*) echo "-idle -subs ${1#idle-} -idle-wait 30s -ramp 5000 -timeout 4m" ;;
	scale-[0-9]*) echo "-subs ${1#scale-} -rate $((200000 / ${1#scale-})) -pubs 4 -duration 10s -ramp 5000 -timeout 4m" ;;
	*) log "unknown scenario $1"; exit 2 ;;
	esac
}

urls_for() { # target scenario
	local tls=0 ws=ws wss=wss
	case $2 in *-tls | *-h2) tls=1 ;; esac
	case $2 in sse-*) ws=http wss=https ;; esac # event streams: the same routes, over plain HTTP(S)
	if [ "$1" != nchan ] && [[ $2 == pusher-* ]]; then
		echo "-url ws://127.0.0.1:$RT_PORT/app/${PUSHER_APP_KEY:-loadtest-key} -pub-url http://127.0.0.1:$RT_PORT/pub -server-pidfile $out/caddy.pid"
	elif [ "$1" != nchan ]; then
		if [ $tls = 1 ]; then
			echo "-url $wss://127.0.0.1:$RT_TLS_PORT/ws -pub-url https://127.0.0.1:$RT_TLS_PORT/pub -insecure -server-pidfile $out/caddy.pid"
		else
			echo "-url $ws://127.0.0.1:$RT_PORT/ws -pub-url http://127.0.0.1:$RT_PORT/pub -server-pidfile $out/caddy.pid"
		fi
	else
		if [ $tls = 1 ]; then
			echo "-url $wss://127.0.0.1:$nc_tls_port/sub -pub-url https://127.0.0.1:$nc_tls_port/pub -insecure -server-pidfile $nc_dir/nginx.pid"
		else
			echo "-url $ws://127.0.0.1:$nc_port/sub -pub-url http://127.0.0.1:$nc_port/pub -server-pidfile $nc_dir/nginx.pid"
		fi
	fi
}

one() { # scenario target run
	local f="$out/$1-$2-$3.json"
	wait_quiet
	"start_$2" "$1-$3"
	log "$1 $2 run $3"
	# shellcheck disable=SC2046
	local batch=""
	[ "$1" = publish-batch ] && [ "$2" = realtime ] && batch="-batch 10" # nchan takes one event per request
	[ "${TRACE:-0}" = 1 ] && [ "$2" != nchan ] && batch="$batch -trace $out/$1-$2-$3.trace -admin http://$RT_ADMIN"
	local proto=$2
	[ "$proto" = base ] && proto=realtime # the same wire protocol, an older build
	[[ $1 == pusher-* ]] && proto=pusher
	run_nice timeout 240 "$out/loadtest" -target "$proto" $(urls_for "$2" "$1") $(args_for "$1") $batch $extra \
		-label "$1/$2/$3" -json -quiet >"$f" 2>"$out/$1-$2-$3.err" || log "run exited $? (see $f)"
	"stop_$2"
	jq -c '{label: .label, connected: .connected, mem: .mem_per_conn_kib, deliv: .delivered_per_s, cpu: .cpu_s_per_million_deliveries, p99: .latency.p99_ms, pubreq: .publish_req_per_s, pubev: .publish_events_per_s, lost: .lost, dup: .duplicated, disc: .disconnects, other_cpu: .machine.other_cpu_s, fail: .check_failures}' "$f" >&2 || true
	sleep 2 # sockets of the last run leave TIME_WAIT on other ports; let the machine settle
}

for scen in $scenarios; do
	for run in $(seq 1 "$runs"); do
		if [[ $scen == *-h2 || $scen == pusher-* || $scen == presence-* || $scen == private-* ]]; then
			# the module alone: nginx here serves no HTTP/2, and nchan has no
			# Pusher protocol or presence
			one "$scen" realtime "$run"
		elif [ $((run % 2)) = 1 ]; then
			one "$scen" realtime "$run"
			one "$scen" "$other" "$run"
		else
			one "$scen" "$other" "$run"
			one "$scen" realtime "$run"
		fi
	done
done

{ cat "$out/info.txt"; echo; "$out/loadtest" summarize "$out"; } | tee "$out/summary.txt"
log "results in $out"
