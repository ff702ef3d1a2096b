package module

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
)

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	realtime_ws [<matcher>] {
//	    hub                    <name>
//	    default_channels       <channel...>
//	    private                <pattern...>
//	    token_secret           <secret>
//	    token_cookie           <name>
//	    allowed_origins        <origin...>
//	    max_connections        <n>
//	    max_connections_per_ip <n>
//	    max_subscriptions      <n>
//	    max_message_size       <size>
//	    send_queue             <n>
//	    ping_interval          <duration>
//	    write_timeout          <duration>
//	}
func (h *WSHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("realtime_ws: unexpected argument %q (options go in a block)", d.Val())
	}
	for d.NextBlock(0) {
		opt := d.Val()
		label := "realtime_ws: " + opt
		var err error
		switch opt {
		case "hub":
			h.Hub, err = oneArg(d, label)
		case "default_channels":
			h.DefaultChannels, err = someArgs(d, label)
		case "private":
			h.Private, err = someArgs(d, label)
		case "token_secret":
			h.TokenSecret, err = oneArg(d, label)
		case "token_cookie":
			h.TokenCookie, err = oneArg(d, label)
		case "allowed_origins":
			h.AllowedOrigins, err = someArgs(d, label)
		case "max_connections":
			h.MaxConnections, err = positiveInt(d, label)
		case "max_connections_per_ip":
			var n int
			n, err = intArg(d, label, 0)
			h.MaxConnectionsPerIP = &n
		case "max_subscriptions":
			h.MaxSubscriptions, err = positiveInt(d, label)
		case "max_message_size":
			h.MaxMessageSize, err = sizeArg(d, label)
		case "send_queue":
			h.SendQueue, err = positiveInt(d, label)
		case "ping_interval":
			h.PingInterval, err = durationArg(d, label)
		case "write_timeout":
			h.WriteTimeout, err = durationArg(d, label)
		default:
			return d.Errf("realtime_ws: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	realtime_broadcast [<matcher>] {
//	    hub                 <name>
//	    secret              <secret>   # required; repeat for key rotation
//	    max_body            <size>
//	    max_batch           <n>
//	    signature_tolerance <duration>
//	}
func (b *BroadcastHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("realtime_broadcast: unexpected argument %q (options go in a block)", d.Val())
	}
	for d.NextBlock(0) {
		opt := d.Val()
		label := "realtime_broadcast: " + opt
		var err error
		switch opt {
		case "hub":
			b.Hub, err = oneArg(d, label)
		case "secret":
			var s string
			s, err = oneArg(d, label)
			b.Secrets = append(b.Secrets, s)
		case "max_body":
			b.MaxBody, err = sizeArg(d, label)
		case "max_batch":
			b.MaxBatch, err = positiveInt(d, label)
		case "signature_tolerance":
			b.SignatureTolerance, err = durationArg(d, label)
		default:
			return d.Errf("realtime_broadcast: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	if len(b.Secrets) == 0 {
		return d.Errf("realtime_broadcast: secret is required (e.g. secret {env.REALTIME_SECRET})")
	}
	return nil
}

// UnmarshalCaddyfile sets up the app from the realtime global option.
// Syntax:
//
//	realtime {
//	    hub <name> {
//	        history_size           <n>
//	        history_ttl            <duration>
//	        redis                  <url>
//	        max_connections        <n>
//	        max_connections_per_ip <n>
//	        private                <pattern...>
//	        presence               <pattern...>
//	        presence_leave_delay   <duration>
//	        presence_max_members   <n>
//	        presence_ttl           <duration>
//	        webhook <url> {
//	            secret <secret>
//	            events <event...>
//	        }
//	    }
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.Errf("realtime: unexpected argument %q", d.Val())
	}
	for d.NextBlock(0) {
		if d.Val() != "hub" {
			return d.Errf("realtime: unknown option %q (want hub <name> { ... })", d.Val())
		}
		if !d.NextArg() {
			return d.Errf("realtime: hub needs a name")
		}
		name := d.Val()
		if d.NextArg() {
			return d.Errf("realtime: hub %s: unexpected argument %q", name, d.Val())
		}
		if a.Hubs == nil {
			a.Hubs = make(map[string]*HubConfig)
		}
		if _, dup := a.Hubs[name]; dup {
			return d.Errf("realtime: hub %s is defined twice", name)
		}
		hc := new(HubConfig)
		a.Hubs[name] = hc
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			opt := d.Val()
			label := "realtime: hub " + name + ": " + opt
			var err error
			switch opt {
			case "history_size":
				var n int
				n, err = intArg(d, label, 0)
				hc.HistorySize = &n
			case "history_ttl":
				hc.HistoryTTL, err = durationArg(d, label)
			case "redis":
				var u string
				if u, err = oneArg(d, label); err == nil {
					if scheme, _, _ := strings.Cut(u, "://"); !strings.HasPrefix(u, "{") && !strings.HasPrefix(scheme, "redis") && scheme != "unix" {
						return d.Errf("%s: want a redis://, rediss://, unix://, redis-sentinel://, rediss-sentinel://, redis-cluster:// or rediss-cluster:// URL (or a placeholder such as {env.REALTIME_REDIS_URL})", label)
					}
					hc.BackplaneRaw = caddyconfig.JSONModuleObject(RedisBackplane{URL: u}, "backplane", "redis", nil)
				}
			case "max_connections":
				hc.MaxConnections, err = positiveInt(d, label)
			case "max_connections_per_ip":
				var n int
				n, err = intArg(d, label, 0)
				hc.MaxConnectionsPerIP = &n
			case "private":
				hc.Private, err = patternArgs(d, label)
			case "presence":
				hc.Presence, err = patternArgs(d, label)
			case "presence_leave_delay":
				var dur caddy.Duration
				dur, err = durationOrZeroArg(d, label)
				hc.PresenceLeaveDelay = &dur
			case "presence_max_members":
				var n int
				n, err = intArg(d, label, 0)
				hc.PresenceMaxMembers = &n
			case "presence_ttl":
				hc.PresenceTTL, err = durationArg(d, label)
			case "webhook":
				hc.Webhook, err = webhookBlock(d, label)
			default:
				return d.Errf("realtime: hub %s: unknown option %q", name, opt)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// webhookBlock reads `webhook <url> { secret <secret>; events <event...> }`
// (one option per line).
func webhookBlock(d *caddyfile.Dispenser, label string) (*WebhookConfig, error) {
	u, err := oneArg(d, label)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "{") {
		return nil, d.Errf("%s: want an http:// or https:// URL (or a placeholder), got %q", label, u)
	}
	wc := &WebhookConfig{URL: u}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		optLabel := label + ": " + opt
		switch opt {
		case "secret":
			wc.Secret, err = oneArg(d, optLabel)
		case "events":
			if wc.Events, err = someArgs(d, optLabel); err == nil {
				if _, perr := webhookEvents(wc.Events); perr != nil {
					err = d.Errf("%s: %v", label, perr)
				}
			}
		default:
			return nil, d.Errf("%s: unknown option %q", label, opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if wc.Secret == "" {
		return nil, d.Errf("%s: secret is required (e.g. secret {env.REALTIME_WEBHOOK_SECRET})", label)
	}
	return wc, nil
}

// Argument helpers. label is "<directive>: <option>", so that every error
// says where in the Caddyfile it is.

func oneArg(d *caddyfile.Dispenser, label string) (string, error) {
	if !d.NextArg() {
		return "", d.Errf("%s: needs one argument", label)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s: takes one argument, got extra %q", label, d.Val())
	}
	return v, nil
}

func someArgs(d *caddyfile.Dispenser, label string) ([]string, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.Errf("%s: needs at least one argument", label)
	}
	return args, nil
}

// patternArgs reads channel patterns: * globs no longer than a channel
// name.
func patternArgs(d *caddyfile.Dispenser, label string) ([]string, error) {
	args, err := someArgs(d, label)
	if err != nil {
		return nil, err
	}
	for _, p := range args {
		if len(p) > 164 {
			return nil, d.Errf("%s: pattern %q is longer than a channel name can be", label, p)
		}
	}
	return args, nil
}

func intArg(d *caddyfile.Dispenser, label string, minimum int) (int, error) {
	s, err := oneArg(d, label)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < minimum {
		return 0, d.Errf("%s: want an integer >= %d, got %q", label, minimum, s)
	}
	return n, nil
}

func positiveInt(d *caddyfile.Dispenser, label string) (int, error) {
	return intArg(d, label, 1)
}

func sizeArg(d *caddyfile.Dispenser, label string) (int64, error) {
	s, err := oneArg(d, label)
	if err != nil {
		return 0, err
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<30 {
		return 0, d.Errf("%s: want a size such as 4KiB or 65536 (at most 1GiB), got %q", label, s)
	}
	return int64(n), nil
}

func durationArg(d *caddyfile.Dispenser, label string) (caddy.Duration, error) {
	s, err := oneArg(d, label)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: want a positive duration such as 25s, got %q", label, s)
	}
	return caddy.Duration(dur), nil
}

// durationOrZeroArg is durationArg that also takes 0 (none).
func durationOrZeroArg(d *caddyfile.Dispenser, label string) (caddy.Duration, error) {
	s, err := oneArg(d, label)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur < 0 {
		return 0, d.Errf("%s: want a duration such as 3s (0 for none), got %q", label, s)
	}
	return caddy.Duration(dur), nil
}

var (
	_ caddyfile.Unmarshaler = (*WSHandler)(nil)
	_ caddyfile.Unmarshaler = (*BroadcastHandler)(nil)
	_ caddyfile.Unmarshaler = (*App)(nil)
)
