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
"$out" list-modules | grep -E '^(realtime|http\.handlers\.realtime_(ws|broadcast)|admin\.api\.realtime)$'
