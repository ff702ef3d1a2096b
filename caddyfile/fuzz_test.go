package caddyfile_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// FuzzCaddyfile feeds arbitrary option blocks to the realtime directives
// and the global option: the adapter must answer with JSON or an error that
// names the directive, and never panic.
func FuzzCaddyfile(f *testing.F) {
	for _, s := range []string{
		"realtime_ws /ws {\n max_message_size 4KiB\n ping_interval 25s\n}",
		"realtime_broadcast /p {\n secret a\n max_body 1MB\n}",
		"realtime_ws {\n allowed_origins https://*.example.com *\n}",
		"realtime_broadcast {\n secret\n}",
	} {
		f.Add(s, "hub default {\n history_size 10\n}")
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	f.Fuzz(func(t *testing.T, site, global string) {
		if strings.ContainsAny(site+global, "`\x00") || strings.Contains(site+global, "import") {
			t.Skip() // other directives' territory
		}
		cfg := "{\n realtime {\n" + global + "\n }\n}\n:8080 {\n" + site + "\n}\n"
		out, _, err := adapter.Adapt([]byte(cfg), nil)
		if err == nil && len(out) == 0 {
			t.Fatal("no error and no JSON")
		}
	})
}
