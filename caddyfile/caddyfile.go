// Package caddyfile registers the realtime_ws and realtime_broadcast
// directives and the realtime global option with Caddy's Caddyfile adapter.
// The modules parse their own blocks (module.*.UnmarshalCaddyfile); this
// package only places them in the Caddyfile.
package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wprealtime/caddy-realtime/module"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("realtime_ws", parseWS)
	httpcaddyfile.RegisterHandlerDirective("realtime_broadcast", parseBroadcast)
	// Before respond puts both ahead of php_fastcgi and file_server wherever
	// they are written, so WordPress never sees the hub's routes.
	httpcaddyfile.RegisterDirectiveOrder("realtime_ws", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("realtime_broadcast", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterGlobalOption("realtime", parseGlobal)
}

func parseWS(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(module.WSHandler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

func parseBroadcast(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(module.BroadcastHandler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(module.App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "realtime", Value: caddyconfig.JSON(app, nil)}, nil
}
