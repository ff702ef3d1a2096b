// Package realtime registers the caddy-realtime modules and Caddyfile
// directives. The module path is not published on a module proxy, so build
// Caddy with it from a checkout, either with `go build ./xcaddy-build/caddy`
// or through xcaddy with a placeholder version:
//
//	xcaddy build --with github.com/wprealtime/caddy-realtime@v0.0.0=/path/to/checkout
package realtime

import (
	// The Caddyfile directives and global option; they import the modules.
	_ "github.com/wprealtime/caddy-realtime/caddyfile"
	_ "github.com/wprealtime/caddy-realtime/module"
)
