#!/usr/bin/env bash
# Builds Caddy with caddy-realtime from this checkout (or an unpacked release)
# through xcaddy, the way a site that adds other plugins would.
#
#   xcaddy-build/build.sh [output path]     (default: ./caddy)
#
# The @v0.0.0=<dir> form makes xcaddy use the local checkout without asking
# the module proxy for an unpublished version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/caddy}
xcaddy=$(go env GOPATH)/bin/xcaddy
if [ ! -x "$xcaddy" ]; then
	go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5
fi
cd "$root"
CADDY_VERSION=v2.11.9 "$xcaddy" build v2.11.9 \
	--output "$out" \
	--with "github.com/wprealtime/caddy-realtime@v0.0.0=$root"
# The six realtime modules, each on its own line, or the build is not ours.
found=$("$out" list-modules | grep -E '^(realtime|realtime\.backplanes\.redis|http\.handlers\.realtime_(ws|broadcast|pusher)|admin\.api\.realtime)$')
echo "$found"
if [ "$(echo "$found" | wc -l)" -ne 6 ]; then
	echo "build.sh: want 6 realtime modules in $out, found $(echo "$found" | grep -c .)" >&2
	exit 1
fi
