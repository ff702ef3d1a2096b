package caddyfile_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestPusherBadConfig: realtime_pusher's bad inputs fail when the
// Caddyfile is adapted (or, for what only expansion shows, at
// provisioning), naming the directive and the option.
func TestPusherBadConfig(t *testing.T) {
	const creds = " app_id 1\n key k\n secret s\n"
	for _, tc := range []struct{ name, block, want string }{
		{"missing app_id", "realtime_pusher {\n key k\n secret s\n}", "realtime_pusher: app_id is required (e.g. app_id {env.PUSHER_APP_ID})"},
		{"missing key", "realtime_pusher {\n app_id 1\n secret s\n}", "realtime_pusher: key is required"},
		{"missing secret", "realtime_pusher {\n app_id 1\n key k\n}", "realtime_pusher: secret is required"},
		{"no block", "realtime_pusher", "realtime_pusher: app_id is required"},
		{"unknown option", "realtime_pusher {\n" + creds + " cluster mt1\n}", `realtime_pusher: unknown option "cluster"`},
		{"inline argument", "realtime_pusher extra", `realtime_pusher: unexpected argument "extra"`},
		{"client_events", "realtime_pusher {\n" + creds + " client_events yes\n}", `realtime_pusher: client_events: want on or off, got "yes"`},
		{"client_event_rate", "realtime_pusher {\n" + creds + " client_event_rate 0\n}", `realtime_pusher: client_event_rate: want an integer >= 1`},
		{"activity_timeout", "realtime_pusher {\n" + creds + " activity_timeout never\n}", `realtime_pusher: activity_timeout: want a positive duration`},
		{"max_message_size", "realtime_pusher {\n" + creds + " max_message_size big\n}", `realtime_pusher: max_message_size: want a size`},
		{"secret extra argument", "realtime_pusher {\n app_id 1\n key k\n secret a b\n}", `realtime_pusher: secret: takes one argument, got extra "b"`},
		{"webhook without url", "realtime_pusher {\n" + creds + " webhook\n}", `realtime_pusher: webhook: needs one argument`},
		{"webhook bad url", "realtime_pusher {\n" + creds + " webhook example.com/hook\n}", `realtime_pusher: webhook: want an http:// or https:// URL`},
		{"webhook unknown event", "realtime_pusher {\n" + creds + " webhook https://example.com/hook {\n events client_event cache_miss\n }\n}", `realtime_pusher: webhook: events: unknown event "cache_miss"`},
		{"webhook own secret", "realtime_pusher {\n" + creds + " webhook https://example.com/hook {\n secret x\n }\n}", `realtime_pusher: webhook: secret: the webhook is signed with the app's secret`},
		{"webhook unknown option", "realtime_pusher {\n" + creds + " webhook https://example.com/hook {\n retries 3\n }\n}", `realtime_pusher: webhook: unknown option "retries"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+tc.block+"\n}\n"), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("adapt error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	os.Unsetenv("CADDY_REALTIME_TEST_UNSET")
	for _, tc := range []struct{ block, want string }{
		{"realtime_pusher {\n app_id 1\n key k\n secret {env.CADDY_REALTIME_TEST_UNSET}\n}", "realtime_pusher: secret is empty after placeholder expansion"},
		{"realtime_pusher {\n app_id 1\n key {env.CADDY_REALTIME_TEST_UNSET}\n secret s\n}", "realtime_pusher: key is empty after placeholder expansion"},
		{"realtime_pusher {\n app_id a/b\n key k\n secret s\n}", "realtime_pusher: app_id and key must not contain"},
		{"realtime_pusher {\n app_id 1\n key k\n secret s\n activity_timeout 500ms\n}", "realtime_pusher: activity_timeout must be at least 1s"},
		{"realtime_pusher {\n app_id 1\n key k\n secret s\n allowed_origins example.com\n}", "realtime_pusher: allowed_origins: invalid origin example.com"},
		{"realtime_pusher {\n hub chat\n app_id 1\n key k\n secret s\n}", `realtime_pusher: hub "chat" is not declared`},
		{"realtime_pusher {\n app_id 1\n key k\n secret s\n webhook {env.CADDY_REALTIME_TEST_UNSET}\n}", `realtime_pusher: webhook: url: want an http:// or https:// URL, got ""`},
	} {
		cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("{\n admin off\n}\n:0 {\n"+tc.block+"\n}\n"), nil)
		if err != nil {
			t.Fatalf("adapt: %v", err)
		}
		var cfg caddy.Config
		if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
			t.Fatal(err)
		}
		if err := caddy.Validate(&cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("validate error = %v, want it to contain %q", err, tc.want)
		}
	}
}

// TestPusherSharesHubsOnlyOnPurpose: like the other directives,
// realtime_pusher in two sites without a hub name does not adapt (the
// golden file testdata/pusher.caddyfiletest pins that it runs before
// php_fastcgi).
func TestPusherSharesHubsOnlyOnPurpose(t *testing.T) {
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`a.example.com {
	realtime_pusher {
		app_id 1
		key k
		secret s
	}
}
b.example.com {
	realtime_ws /ws
}
`), nil)
	if err == nil || !strings.Contains(err.Error(), "realtime_ws: the site blocks") {
		t.Fatalf("adapt error = %v, want the shared-hub refusal", err)
	}
}
