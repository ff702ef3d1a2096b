#!/usr/bin/env bash
# Start / stop nginx + nchan on loopback, the reference the load tool compares
# caddy-realtime against.
#
#   run-nchan.sh install                      install nginx-light + libnginx-mod-nchan (idempotent)
#   run-nchan.sh start [options]              write nginx.conf into DIR, start nginx, print the master pid
#   run-nchan.sh stop  [-d DIR]               stop the nginx whose pid is in DIR/nginx.pid (that pid only)
#   run-nchan.sh conf  [options]              only write DIR/nginx.conf and print its path
#
# options:
#   -d DIR        working directory (config, pid file, logs); default /tmp/loadtest-nchan
#   -p PORT       plain HTTP port on 127.0.0.1; default 8490
#   -s PORT       also listen with TLS on this port (self-signed ECDSA P-256 cert made with openssl,
#                 like the certificate of Caddy's tls internal)
#   -w N          worker_processes; default 2 (= the cores of the comparison machine, and
#                 Caddy's GOMAXPROCS there); use 1 to see nchan without inter-worker IPC
#   -b N          nchan_message_buffer_length; default 1000 (= the module's history_size)
#
# Subscribers:  ws://127.0.0.1:PORT/sub?id=<channel>    (WebSocket)
#               http://127.0.0.1:PORT/sub?id=<channel>  with Accept: text/event-stream (EventSource)
# Publishers:   POST http://127.0.0.1:PORT/pub?id=<channel>  (201/202 on success)
# Status:       GET  http://127.0.0.1:PORT/nchan_status
set -euo pipefail

cmd=${1:-}
[ -n "$cmd" ] && shift || true
dir=/tmp/loadtest-nchan
port=8490
tls_port=
workers=2
buflen=1000
while getopts "d:p:s:w:b:" o; do
	case $o in
	d) dir=$OPTARG ;;
	p) port=$OPTARG ;;
	s) tls_port=$OPTARG ;;
	w) workers=$OPTARG ;;
	b) buflen=$OPTARG ;;
	*) echo "usage: $0 install|start|stop|conf [-d dir] [-p port] [-s tls_port] [-w workers] [-b buffer]" >&2; exit 2 ;;
	esac
done

modfile=/usr/lib/nginx/modules/ngx_nchan_module.so

install() {
	if dpkg-query -W -f='${Status}\n' nginx-light libnginx-mod-nchan 2>/dev/null | grep -c 'install ok installed' | grep -q 2; then
		return 0
	fi
	echo "installing nginx-light libnginx-mod-nchan" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-cache show nginx-light >/dev/null 2>&1; then
		apt-get update -qq
	fi
	if apt-cache show nginx-light >/dev/null 2>&1; then
		apt-get install -y -q --no-install-recommends nginx-light libnginx-mod-nchan >&2
	else
		# Newer Debian dropped nginx-light: plain nginx has what this needs.
		echo "nginx-light is not available here; installing nginx instead" >&2
		apt-get install -y -q --no-install-recommends nginx libnginx-mod-nchan >&2
	fi
	# The package may start the distribution's nginx on port 80; this script never
	# touches that instance (it is not ours) and uses its own config and pid file.
}

writeconf() {
	mkdir -p "$dir/tmp"
	local ssl=""
	if [ -n "$tls_port" ]; then
		if [ ! -s "$dir/cert.pem" ]; then
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 -subj /CN=127.0.0.1 \
				-addext subjectAltName=IP:127.0.0.1 \
				-keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1
		fi
		ssl="
		listen 127.0.0.1:$tls_port ssl;
		ssl_certificate     $dir/cert.pem;
		ssl_certificate_key $dir/key.pem;
		ssl_protocols TLSv1.3;"
	fi
	cat >"$dir/nginx.conf" <<EOF
# written by examples/loadtest/nchan/run-nchan.sh
load_module $modfile;
daemon on;
worker_processes $workers;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;

events {
	worker_connections 20000;
}

http {
	access_log off;
	client_body_temp_path $dir/tmp/body;
	proxy_temp_path $dir/tmp/proxy;
	fastcgi_temp_path $dir/tmp/fastcgi;
	uwsgi_temp_path $dir/tmp/uwsgi;
	scgi_temp_path $dir/tmp/scgi;
	client_body_buffer_size 64k;
	client_max_body_size 64k;
	keepalive_requests 1000000;

	# shared memory for channels and their message buffers
	nchan_shared_memory_size 256M;

	server {
		listen 127.0.0.1:$port;$ssl

		location = /sub {
			# one route for both, like realtime_ws
			nchan_subscriber websocket eventsource;
			nchan_channel_id \$arg_id;
			nchan_subscriber_first_message newest;
			# the module pings every 25 s by default; make nchan do the same work
			nchan_websocket_ping_interval 25;
			# and its keep-alive comment on event streams (":keep-alive" then an
			# "event: ping" line with no data, which fires no browser event). All
			# ping directives stay here: nchan does not merge the comment from an
			# enclosing block.
			nchan_eventsource_ping_interval 25;
			nchan_eventsource_ping_comment keep-alive;
		}
		location = /pub {
			nchan_publisher http;
			nchan_channel_id \$arg_id;
			# a fair history: the module keeps 1000 events for 1 h by default
			nchan_message_buffer_length $buflen;
			nchan_message_timeout 1h;
		}
		location = /nchan_status {
			nchan_stub_status;
		}
	}
}
EOF
}

pid_alive_ours() { # pid: is it an nginx master started with our config?
	local pid=$1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$dir/nginx.conf"
}

start() {
	install
	if [ -s "$dir/nginx.pid" ] && pid_alive_ours "$(cat "$dir/nginx.pid")"; then
		echo "already running" >&2
		cat "$dir/nginx.pid"
		return 0
	fi
	writeconf
	rm -f "$dir/nginx.pid"
	if ! nginx -t -q -c "$dir/nginx.conf" -p "$dir" 2>"$dir/nginx-t.log"; then
		cat "$dir/nginx-t.log" >&2
		exit 1
	fi
	nginx -c "$dir/nginx.conf" -p "$dir" 2>>"$dir/error.log"
	for _ in $(seq 1 50); do
		[ -s "$dir/nginx.pid" ] && break
		sleep 0.1
	done
	[ -s "$dir/nginx.pid" ] || { echo "nginx did not write its pid file" >&2; exit 1; }
	for _ in $(seq 1 50); do
		curl -s -o /dev/null "http://127.0.0.1:$port/nchan_status" && break
		sleep 0.1
	done
	cat "$dir/nginx.pid"
}

stop() {
	[ -s "$dir/nginx.pid" ] || { echo "no pid file in $dir" >&2; return 0; }
	local pid
	pid=$(cat "$dir/nginx.pid")
	if ! pid_alive_ours "$pid"; then
		echo "pid $pid is not our nginx; nothing to stop" >&2
		return 0
	fi
	kill -QUIT "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		[ -d "/proc/$pid" ] || { echo "stopped $pid" >&2; return 0; }
		sleep 0.1
	done
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 30); do
		[ -d "/proc/$pid" ] || { echo "stopped $pid" >&2; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	echo "killed $pid" >&2
}

case $cmd in
install) install ;;
start) start ;;
stop) stop ;;
conf) writeconf; echo "$dir/nginx.conf" ;;
*) echo "usage: $0 install|start|stop|conf [-d dir] [-p port] [-s tls_port] [-w workers] [-b buffer]" >&2; exit 2 ;;
esac
