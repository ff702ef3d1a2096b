// Command caddy is Caddy with the caddy-realtime modules plugged in, for
// `go run ./xcaddy-build/caddy` without installing xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/wprealtime/caddy-realtime"
)

func main() {
	caddycmd.Main()
}
