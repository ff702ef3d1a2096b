package module

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	realtime_pusher [<matcher>] {
//	    hub               <name>
//	    app_id            <id>       # required
//	    key               <key>      # required
//	    secret            <secret>   # required
//	    allowed_origins   <origin...>
//	    activity_timeout  <duration>
//	    client_events     on|off
//	    client_event_rate <n>
//	    private           <pattern...>
//	    max_subscriptions <n>
//	    max_message_size  <size>
//	    send_queue        <n>
//	    write_timeout     <duration>
//	    webhook           <url> [{
//	        events <event...>
//	    }]
//	}
func (h *PusherHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("realtime_pusher: unexpected argument %q (options go in a block)", d.Val())
	}
	for d.NextBlock(0) {
		opt := d.Val()
		label := "realtime_pusher: " + opt
		var err error
		switch opt {
		case "hub":
			h.Hub, err = oneArg(d, label)
		case "app_id":
			h.AppID, err = oneArg(d, label)
		case "key":
			h.Key, err = oneArg(d, label)
		case "secret":
			h.Secret, err = oneArg(d, label)
		case "allowed_origins":
			h.AllowedOrigins, err = someArgs(d, label)
		case "activity_timeout":
			h.ActivityTimeout, err = durationArg(d, label)
		case "client_events":
			var v string
			if v, err = oneArg(d, label); err == nil {
				switch v {
				case "on":
					h.ClientEvents = true
				case "off":
					h.ClientEvents = false
				default:
					return d.Errf("%s: want on or off, got %q", label, v)
				}
			}
		case "client_event_rate":
			h.ClientEventRate, err = positiveInt(d, label)
		case "private":
			h.Private, err = someArgs(d, label)
		case "max_subscriptions":
			h.MaxSubscriptions, err = positiveInt(d, label)
		case "max_message_size":
			h.MaxMessageSize, err = sizeArg(d, label)
		case "send_queue":
			h.SendQueue, err = positiveInt(d, label)
		case "write_timeout":
			h.WriteTimeout, err = durationArg(d, label)
		case "webhook":
			h.Webhook, err = pusherWebhookBlock(d, label)
		default:
			return d.Errf("realtime_pusher: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	for _, c := range []struct{ opt, val, env string }{
		{"app_id", h.AppID, "PUSHER_APP_ID"}, {"key", h.Key, "PUSHER_APP_KEY"}, {"secret", h.Secret, "PUSHER_APP_SECRET"},
	} {
		if c.val == "" {
			return d.Errf("realtime_pusher: %s is required (e.g. %s {env.%s})", c.opt, c.opt, c.env)
		}
	}
	return nil
}

// pusherWebhookBlock reads `webhook <url> [{ events <event...> }]`: the
// secret is the app's.
func pusherWebhookBlock(d *caddyfile.Dispenser, label string) (*PusherWebhook, error) {
	u, err := oneArg(d, label)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "{") {
		return nil, d.Errf("%s: want an http:// or https:// URL (or a placeholder), got %q", label, u)
	}
	wh := &PusherWebhook{URL: u}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "events":
			if wh.Events, err = someArgs(d, label+": events"); err != nil {
				return nil, err
			}
			if _, err := webhookEvents(wh.Events); err != nil {
				return nil, d.Errf("%s: %v", label, err)
			}
		case "secret":
			return nil, d.Errf("%s: secret: the webhook is signed with the app's secret (X-Pusher-Signature), it takes none of its own", label)
		default:
			return nil, d.Errf("%s: unknown option %q", label, opt)
		}
	}
	return wh, nil
}

var _ caddyfile.Unmarshaler = (*PusherHandler)(nil)
