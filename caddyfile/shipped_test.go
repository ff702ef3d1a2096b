package caddyfile_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// templateValues fills in the @NAME@ placeholders of test/wordpress/Caddyfile.tmpl
// the way its setup script does, so that the template adapts like the file it
// becomes.
var templateValues = strings.NewReplacer(
	"@PORT@", "8089",
	"@INGEST_PORT@", "8090",
	"@DOCROOT@", "/srv/wordpress",
	"@FPM_SOCK@", "/srv/php-fpm.sock",
	"@WORK@", "/srv",
)

// TestAdaptShippedCaddyfiles adapts every shipped Caddyfile (the examples, the
// test templates, the README's blocks) and fails on any error or warning, so a
// rule of the adapter (such as naming the hub when several site blocks use the
// directives) cannot leave an example that users copy broken.
func TestAdaptShippedCaddyfiles(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, cf := range shippedCaddyfiles(t) {
		t.Run(cf.name, func(t *testing.T) {
			body := []byte(templateValues.Replace(string(cf.body)))
			_, warnings, err := adapter.Adapt(body, map[string]any{"filename": cf.name})
			if err != nil {
				t.Fatalf("%s does not adapt: %v", cf.name, err)
			}
			for _, w := range warnings {
				t.Errorf("%s: adapt warns: %s", cf.name, w.String())
			}
		})
	}
}
