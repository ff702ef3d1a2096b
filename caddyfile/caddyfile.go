// Package caddyfile registers the realtime_ws, realtime_broadcast and
// realtime_pusher directives and the realtime global option with Caddy's
// Caddyfile adapter. The modules parse their own blocks (module.*.UnmarshalCaddyfile); this
// package places them in the Caddyfile and checks what only the whole
// Caddyfile shows: that hubs are shared between sites only on purpose.
package caddyfile

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wprealtime/caddy-realtime/module"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("realtime_ws", parseWS)
	httpcaddyfile.RegisterHandlerDirective("realtime_broadcast", parseBroadcast)
	httpcaddyfile.RegisterHandlerDirective("realtime_pusher", parsePusher)
	// Before respond puts them ahead of php_fastcgi and file_server wherever
	// they are written, so WordPress never sees the hub's routes.
	httpcaddyfile.RegisterDirectiveOrder("realtime_ws", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("realtime_broadcast", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("realtime_pusher", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterGlobalOption("realtime", parseGlobal)
}

func parseWS(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(module.WSHandler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return m, checkUnnamedHub(h, "realtime_ws", m.Hub)
}

func parseBroadcast(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(module.BroadcastHandler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return m, checkUnnamedHub(h, "realtime_broadcast", m.Hub)
}

func parsePusher(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(module.PusherHandler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return m, checkUnnamedHub(h, "realtime_pusher", m.Hub)
}

func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(module.App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "realtime", Value: caddyconfig.JSON(app, nil)}, nil
}

// unnamedHubSites is the adaptation state key of the first site block that
// used a directive without naming a hub.
const unnamedHubSites = "realtime.unnamed_hub_site"

// checkUnnamedHub refuses a Caddyfile in which several site blocks use the
// directives without naming a hub: they would all share the default hub,
// and one site's events would reach another site's browsers (a host running
// many sites on one Caddy would leak events between customers). Naming the
// same hub in both shares it on purpose.
func checkUnnamedHub(h httpcaddyfile.Helper, directive, hubName string) error {
	if hubName != "" || h.IsNamedRoute() {
		return nil
	}
	site, ok := siteOf(h)
	if !ok {
		return nil
	}
	first, seen := h.State[unnamedHubSites].(string)
	if !seen {
		h.State[unnamedHubSites] = site
		return nil
	}
	if first == site {
		return nil
	}
	return h.Errf("%s: the site blocks %s and %s both use the realtime directives without naming a hub, so they would share the hub %q and receive each other's events; "+
		"name a hub per site (hub <name> in each directive, declared in the realtime global option), or name the same hub in both to share it on purpose",
		directive, first, site, module.DefaultHub)
}

// siteOf names the site block a directive is in by its addresses. Caddy
// keeps the block in an unexported field of the Helper; reading it by
// reflection is the one way in. If a future Caddy renames it, the check is
// skipped rather than failing every Caddyfile (and the adapt tests fail).
func siteOf(h httpcaddyfile.Helper) (string, bool) {
	block := reflect.ValueOf(h).FieldByName("parentBlock")
	if !block.IsValid() {
		return "", false
	}
	keys := block.FieldByName("Keys")
	if !keys.IsValid() || keys.Kind() != reflect.Slice {
		return "", false
	}
	var names []string
	for i := 0; i < keys.Len(); i++ {
		text := keys.Index(i).FieldByName("Text")
		if !text.IsValid() || text.Kind() != reflect.String {
			return "", false
		}
		names = append(names, text.String())
	}
	if len(names) == 0 {
		return "", false
	}
	return fmt.Sprintf("%q", strings.Join(names, ", ")), true
}
