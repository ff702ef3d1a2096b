// Package realtime registers the caddy-realtime modules and Caddyfile
// directives. Build Caddy with it through xcaddy:
//
//	xcaddy build --with github.com/wprealtime/caddy-realtime
package realtime

import (
	// The Caddyfile directives and global option; they import the modules.
	_ "github.com/wprealtime/caddy-realtime/caddyfile"
	_ "github.com/wprealtime/caddy-realtime/module"
)
