//go:build !linux

package module

import "github.com/wprealtime/caddy-realtime/module/hub"

// platformTransport keeps the portable, blocking transport.
func platformTransport(t *transport) hub.Transport { return t }
