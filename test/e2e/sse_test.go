package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// TestSSEFallbackInChromium runs sse.mjs: the demo page behind a front
// Caddy site that refuses WebSocket upgrades (403) and reverse-proxies the
// rest to the hub, so the JS client falls back to Server-Sent Events; the
// hub (a process the script starts, reloads and restarts) delivers every
// event once and in order across a reload and a restart.
func TestSSEFallbackInChromium(t *testing.T) {
	root := needBrowser(t)

	hubPort, hubAdmin := testenv.FreePort(t), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	frontPort, frontAdmin := testenv.FreePort(t), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	hub := func(ping string) string {
		return fmt.Sprintf(`{
	admin %s
	persist_config off
	realtime {
		hub default {
			history_size 1000
		}
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	realtime_ws /realtime/ws {
		default_channels default posts
		ping_interval %s
	}
	realtime_broadcast /realtime/broadcast {
		secret e2e-secret
	}
	handle_path /js/* {
		root * %s
		file_server
	}
	root * %s
	file_server
}
`, hubAdmin, hubPort, ping, filepath.Join(root, "examples/wordpress/realtime-events/assets"), filepath.Join(root, "examples/demo"))
	}
	dir := t.TempDir()
	hubConfig, reloadConfig := filepath.Join(dir, "hub.Caddyfile"), filepath.Join(dir, "hub-reload.Caddyfile")
	for path, cfg := range map[string]string{hubConfig: hub("25s"), reloadConfig: hub("20s")} {
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The front: a network whose proxy refuses WebSockets.
	testenv.StartCaddy(t, testenv.CaddyConfig{
		Caddyfile: fmt.Sprintf(`{
	admin %s
	persist_config off
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	@upgrade header_regexp Upgrade (?i)websocket
	respond @upgrade "WebSockets are blocked on this network" 403
	reverse_proxy 127.0.0.1:%d
}
`, frontAdmin, frontPort, hubPort),
		Admin: frontAdmin,
		Site:  fmt.Sprintf("127.0.0.1:%d", frontPort),
	})

	out := filepath.Join(root, "test-output", "e2e")
	_ = os.MkdirAll(out, 0o755)
	cmd := exec.Command("node", "test/e2e/sse.mjs",
		"--front", fmt.Sprintf("http://127.0.0.1:%d", frontPort),
		"--hub", fmt.Sprintf("http://127.0.0.1:%d", hubPort),
		"--caddy", testenv.CaddyBinary(t),
		"--hub-config", hubConfig, "--reload-config", reloadConfig, "--hub-admin", hubAdmin,
		"--secret", "e2e-secret", "--out", out)
	cmd.Dir = root
	// The hub's scratch files (Caddy's data and config dirs) stay in dir.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	res, err := cmd.CombinedOutput()
	t.Logf("sse.mjs:\n%s", testenv.Indent(string(res)))
	if err != nil {
		t.Fatalf("browser checks failed: %v", err)
	}
}
