package caddyfile_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/wprealtime/caddy-realtime"
)

var update = flag.Bool("update", false, "rewrite the JSON half of testdata/*.caddyfiletest")

// TestAdapt pins the JSON that Caddyfiles adapt to, the way Caddy pins its
// own directives: each testdata file is a Caddyfile, a line of dashes, and
// the expected JSON.
func TestAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(string(data), "----------", 2)
			cfg, want := strings.TrimSpace(parts[0])+"\n", strings.TrimSpace(parts[1])
			if *update {
				got := adapt(t, cfg)
				if err := os.WriteFile(file, []byte(strings.TrimSpace(parts[0])+"\n----------\n"+got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !caddytest.CompareAdapt(t, file, cfg, "caddyfile", want) {
				t.Errorf("%s: adapted JSON differs from the golden file (run go test ./caddyfile -update after checking the change)", file)
			}
		})
	}
}

func adapt(t *testing.T, cfg string) string {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return pretty.String()
}

// TestDirectivesRunBeforePHP checks the directive order: realtime handlers
// come before php_fastcgi and file_server wherever they are written.
func TestDirectivesRunBeforePHP(t *testing.T) {
	got := adapt(t, `:8080 {
	php_fastcgi unix//run/php.sock
	file_server
	realtime_broadcast /pub {
		secret x
	}
	realtime_ws /ws
}
`)
	ws, pub, php := strings.Index(got, `"realtime_ws"`), strings.Index(got, `"realtime_broadcast"`), strings.Index(got, `"reverse_proxy"`)
	if ws < 0 || pub < 0 || php < 0 || ws > php || pub > php {
		t.Fatalf("order in adapted JSON: ws %d, broadcast %d, php %d", ws, pub, php)
	}
}

// TestBadConfigFailsAtLoad: every bad input fails when the Caddyfile is
// adapted, and the message names the directive and the option.
func TestBadConfigFailsAtLoad(t *testing.T) {
	cases := []struct{ name, block, want string }{
		{"missing secret", "realtime_broadcast /p", "realtime_broadcast: secret is required"},
		{"secret without value", "realtime_broadcast /p {\n secret\n}", "realtime_broadcast: secret: needs one argument"},
		{"secret extra argument", "realtime_broadcast /p {\n secret a b\n}", `realtime_broadcast: secret: takes one argument, got extra "b"`},
		{"broadcast unknown option", "realtime_broadcast /p {\n secret a\n color blue\n}", `realtime_broadcast: unknown option "color"`},
		{"broadcast bad size", "realtime_broadcast /p {\n secret a\n max_body lots\n}", `realtime_broadcast: max_body: want a size`},
		{"broadcast bad batch", "realtime_broadcast /p {\n secret a\n max_batch 0\n}", `realtime_broadcast: max_batch: want an integer >= 1`},
		{"broadcast bad tolerance", "realtime_broadcast /p {\n secret a\n signature_tolerance soon\n}", `realtime_broadcast: signature_tolerance: want a positive duration`},
		{"ws unknown option", "realtime_ws /ws {\n colour red\n}", `realtime_ws: unknown option "colour"`},
		{"ws inline argument", "realtime_ws /ws extra", `realtime_ws: unexpected argument "extra"`},
		{"ws bad duration", "realtime_ws /ws {\n ping_interval often\n}", `realtime_ws: ping_interval: want a positive duration`},
		{"ws zero ping", "realtime_ws /ws {\n ping_interval 0s\n}", `realtime_ws: ping_interval: want a positive duration`},
		{"ws negative ping", "realtime_ws /ws {\n ping_interval -5s\n}", `realtime_ws: ping_interval: want a positive duration`},
		{"ws bad size", "realtime_ws /ws {\n max_message_size 4XB\n}", `realtime_ws: max_message_size: want a size`},
		{"ws zero limit", "realtime_ws /ws {\n max_connections 0\n}", `realtime_ws: max_connections: want an integer >= 1`},
		{"ws negative per-ip", "realtime_ws /ws {\n max_connections_per_ip -1\n}", `realtime_ws: max_connections_per_ip: want an integer >= 0`},
		{"ws zero subscriptions", "realtime_ws /ws {\n max_subscriptions 0\n}", `realtime_ws: max_subscriptions: want an integer >= 1`},
		{"ws zero queue", "realtime_ws /ws {\n send_queue 0\n}", `realtime_ws: send_queue: want an integer >= 1`},
		{"ws extra args", "realtime_ws /ws {\n hub a b\n}", `realtime_ws: hub: takes one argument, got extra "b"`},
		{"ws empty origins", "realtime_ws /ws {\n allowed_origins\n}", `realtime_ws: allowed_origins: needs at least one argument`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ":8080 {\n" + tc.block + "\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("adapt error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	global := []struct{ name, opts, want string }{
		{"unknown global option", "realtime {\n colour red\n}", `realtime: unknown option "colour"`},
		{"hub without name", "realtime {\n hub\n}", "realtime: hub needs a name"},
		{"unknown hub option", "realtime {\n hub a {\n size 3\n }\n}", `realtime: hub a: unknown option "size"`},
		{"bad history_size", "realtime {\n hub a {\n history_size -1\n }\n}", "realtime: hub a: history_size: want an integer >= 0"},
		{"bad history_ttl", "realtime {\n hub a {\n history_ttl forever\n }\n}", "realtime: hub a: history_ttl: want a positive duration"},
		{"bad redis url", "realtime {\n hub a {\n redis localhost:6379\n }\n}", "realtime: hub a: redis: want a redis://, rediss://, unix://, redis-sentinel://"},
		{"bad hub max_connections", "realtime {\n hub a {\n max_connections 0\n }\n}", "realtime: hub a: max_connections: want an integer >= 1"},
		{"bad hub max_connections_per_ip", "realtime {\n hub a {\n max_connections_per_ip x\n }\n}", "realtime: hub a: max_connections_per_ip: want an integer >= 0"},
		{"private without patterns", "realtime {\n hub a {\n private\n }\n}", "realtime: hub a: private: needs at least one argument"},
		{"private pattern too long", "realtime {\n hub a {\n private " + strings.Repeat("x", 165) + "\n }\n}", "realtime: hub a: private: pattern"},
		{"presence without patterns", "realtime {\n hub a {\n presence\n }\n}", "realtime: hub a: presence: needs at least one argument"},
		{"bad presence_leave_delay", "realtime {\n hub a {\n presence_leave_delay soon\n }\n}", "realtime: hub a: presence_leave_delay: want a duration such as 3s (0 for none)"},
		{"negative presence_leave_delay", "realtime {\n hub a {\n presence_leave_delay -1s\n }\n}", "realtime: hub a: presence_leave_delay: want a duration"},
		{"bad presence_max_members", "realtime {\n hub a {\n presence_max_members -1\n }\n}", "realtime: hub a: presence_max_members: want an integer >= 0"},
		{"zero presence_ttl", "realtime {\n hub a {\n presence_ttl 0s\n }\n}", "realtime: hub a: presence_ttl: want a positive duration"},
		{"webhook without url", "realtime {\n hub a {\n webhook {\n secret x\n }\n }\n}", "realtime: hub a: webhook: needs one argument"},
		{"webhook bad url", "realtime {\n hub a {\n webhook ftp://example.com {\n secret x\n }\n }\n}", "realtime: hub a: webhook: want an http:// or https:// URL"},
		{"webhook without secret", "realtime {\n hub a {\n webhook https://example.com/hook\n }\n}", "realtime: hub a: webhook: secret is required"},
		{"webhook secret without value", "realtime {\n hub a {\n webhook https://example.com/hook {\n secret\n }\n }\n}", "realtime: hub a: webhook: secret: needs one argument"},
		{"webhook unknown event", "realtime {\n hub a {\n webhook https://example.com/hook {\n secret x\n events member_added member_joined\n }\n }\n}", `realtime: hub a: webhook: events: unknown event "member_joined"`},
		{"webhook unknown option", "realtime {\n hub a {\n webhook https://example.com/hook {\n secret x\n retries 3\n }\n }\n}", `realtime: hub a: webhook: unknown option "retries"`},
	}
	for _, tc := range global {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n" + tc.opts + "\n}\n:8080 {\n realtime_ws /ws\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("adapt error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestEmptySecretFailsAtProvision: a secret that expands to nothing (an
// unset {env.X}) adapts, but fails provisioning, which is what caddy run,
// caddy validate and caddy adapt --validate do.
func TestEmptySecretFailsAtProvision(t *testing.T) {
	cases := []struct{ opts, block, want string }{
		{"", "realtime_broadcast /p {\n secret {env.CADDY_REALTIME_TEST_UNSET}\n}", "realtime_broadcast: secret #1 is empty after placeholder expansion"},
		{"", "realtime_ws /ws {\n token_secret {env.CADDY_REALTIME_TEST_UNSET}\n}", "realtime_ws: token_secret is empty after placeholder expansion"},
		{"", "realtime_ws /ws {\n allowed_origins example.com\n}", "realtime_ws: allowed_origins: invalid origin example.com"},
		// A backplane asked for but empty must not become an in-memory hub.
		{"realtime {\n hub default {\n redis {env.CADDY_REALTIME_TEST_UNSET}\n }\n}", "realtime_ws /ws", `redis: the URL is empty after placeholder expansion`},
		// A typo in a hub name is a load error naming both names.
		{"realtime {\n hub chat\n}", "realtime_ws /ws {\n hub chat\n}\nrealtime_broadcast /p {\n hub chatt\n secret x\n}", `realtime_broadcast: hub "chatt" is not declared in the realtime app (declared: chat)`},
		{"", "realtime_ws /ws {\n hub chat\n}", `realtime_ws: hub "chat" is not declared`},
		{"realtime {\n hub default {\n webhook https://example.com/hook {\n secret {env.CADDY_REALTIME_TEST_UNSET}\n }\n }\n}", "realtime_ws /ws", "realtime: hub default: webhook: secret is empty after placeholder expansion"},
		{"realtime {\n hub default {\n webhook {env.CADDY_REALTIME_TEST_UNSET} {\n secret x\n }\n }\n}", "realtime_ws /ws", `realtime: hub default: webhook: url: want an http:// or https:// URL, got ""`},
	}
	os.Unsetenv("CADDY_REALTIME_TEST_UNSET")
	for _, tc := range cases {
		cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("{\n admin off\n"+tc.opts+"\n}\n:0 {\n"+tc.block+"\n}\n"), nil)
		if err != nil {
			t.Fatalf("adapt: %v", err)
		}
		var cfg caddy.Config
		if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
			t.Fatal(err)
		}
		err = caddy.Validate(&cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("validate error = %v, want it to contain %q", err, tc.want)
		}
	}
}

// TestHubsAreSharedOnlyOnPurpose: several site blocks that use the
// directives without naming a hub would share "default" and each other's
// events; adapt refuses that and says how to fix it. Naming a hub (the same
// one on purpose, or one per site) adapts.
func TestHubsAreSharedOnlyOnPurpose(t *testing.T) {
	adaptErr := func(cfg string) error {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
		return err
	}
	err := adaptErr(`a.example.com {
	realtime_ws /ws
}
b.example.com {
	realtime_broadcast /pub {
		secret x
	}
}
`)
	if err == nil || !strings.Contains(err.Error(), `"a.example.com" and "b.example.com"`) || !strings.Contains(err.Error(), "name a hub per site") {
		t.Fatalf("two sites on the unnamed hub: adapt error = %v, want one naming both sites and the fix", err)
	}
	for name, cfg := range map[string]string{
		"one site, two directives":         "a.example.com {\n realtime_ws /ws\n realtime_broadcast /pub {\n  secret x\n }\n}\n",
		"one site, several addresses":      "a.example.com, b.example.com {\n realtime_ws /ws\n}\n",
		"the same hub named in both":       "{\n realtime {\n  hub blog\n }\n}\na.example.com {\n realtime_ws /ws {\n  hub blog\n }\n}\nb.example.com {\n realtime_broadcast /pub {\n  hub blog\n  secret x\n }\n}\n",
		"default named on purpose in both": "a.example.com {\n realtime_ws /ws {\n  hub default\n }\n}\nb.example.com {\n realtime_ws /ws {\n  hub default\n }\n}\n",
		"a hub per site":                   "{\n realtime {\n  hub a\n  hub b\n }\n}\na.example.com {\n realtime_ws /ws {\n  hub a\n }\n}\nb.example.com {\n realtime_ws /ws {\n  hub b\n }\n}\n",
		"unnamed in one site only":         "a.example.com {\n realtime_ws /ws\n}\nb.example.com {\n realtime_ws /ws {\n  hub default\n }\n}\n",
	} {
		if err := adaptErr(cfg); err != nil {
			t.Errorf("%s: adapt failed: %v", name, err)
		}
	}
}

// TestRedisUnixSocketURL: a local socket is one of the backplane's URL
// forms, so the Caddyfile takes it too.
func TestRedisUnixSocketURL(t *testing.T) {
	got := adapt(t, "{\n realtime {\n  hub a {\n   redis unix:///run/redis/redis.sock?db=2\n  }\n }\n}\n")
	if !strings.Contains(got, `"url": "unix:///run/redis/redis.sock?db=2"`) {
		t.Fatalf("unix:// URL not adapted: %s", got)
	}
}
