// End-to-end test of the WordPress side (issue 5): a real WordPress from Debian's
// packages, a private PHP-FPM pool, MariaDB, the product's own Caddy, and headless
// Chromium driven by playwright-core.
//
// It skips, saying what is missing, when a prerequisite is absent (php-fpm8.2,
// /usr/share/wordpress, MariaDB at 127.0.0.1:3306, node + playwright-core,
// /usr/bin/chromium, phpunit); with REALTIME_TEST_STRICT=1 it fails instead.
//
//	go test ./test/wordpress/ -run WordPress -v
//
// Screenshots and results.json go to $REALTIME_WP_OUTPUT (default test/wordpress/output).
package wordpress_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/wprealtime/caddy-realtime/test/testenv"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	publishSecret = "e2e-publish-secret-9f8e7d6c5b4a39281706"
	tokenSecret   = "e2e-token-secret-0a1b2c3d4e5f60718293"
	webhookSecret = "e2e-webhook-secret-5e4d3c2b1a0f9e8d7c6b"
	adminPassword = "admin-pass-e2e"
	readerPass    = "reader-pass-e2e"
)

// here is the directory of this file; root the repository.
func paths(t *testing.T) (here, root string) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	here = filepath.Dir(file)
	return here, filepath.Clean(filepath.Join(here, "..", ".."))
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func lookPath(name string, extra ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range extra {
		if exists(p) {
			return p
		}
	}
	return ""
}

func freePort(t *testing.T) int {
	return testenv.FreePort(t)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, procs ...*testenv.Process) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		for _, p := range procs {
			if p.Exited() {
				t.Fatalf("%s exited while waiting for %s", p.Name, what)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// run runs a command, logs its output, and returns it.
func run(t *testing.T, timeout time.Duration, dir string, env []string, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %s: %w", filepath.Base(bin), timeout, ctx.Err())
	}
	return out.String(), err
}

func TestWordPressEndToEnd(t *testing.T) {
	here, root := paths(t)
	if testing.Short() && os.Getenv("REALTIME_TEST_STRICT") != "1" {
		t.Skip("wordpress e2e: skipped in -short mode")
	}

	// Prerequisites: skip once, naming everything missing.
	var need testenv.Needs
	fpm := lookPath("php-fpm8.2", "/usr/sbin/php-fpm8.2")
	need.Check(fpm != "", "php-fpm8.2", "apt-get install php-fpm")
	php := lookPath("php")
	if need.Check(php != "", "php", "apt-get install php-cli") {
		out, err := exec.Command(php, "-r", "echo extension_loaded('mysqli') && extension_loaded('curl') ? 'ok' : 'missing';").Output()
		need.Check(err == nil && string(out) == "ok", "php-mysql or php-curl", "apt-get install php-mysql php-curl")
	}
	need.Check(exists("/usr/share/wordpress/wp-settings.php"), "/usr/share/wordpress", "apt-get install wordpress")
	phpunit := lookPath("phpunit")
	need.Check(phpunit != "", "phpunit", "apt-get install phpunit")
	conn, err := net.DialTimeout("tcp", "127.0.0.1:3306", 2*time.Second)
	if need.Check(err == nil, "MariaDB at 127.0.0.1:3306", "apt-get install mariadb-server && service mariadb start") {
		conn.Close()
	}
	node := lookPath("node")
	need.Check(node != "" && testenv.NodeAtLeast(20, 19), "node 20.19+", testenv.NodeHint)
	playwright := ""
	for _, dir := range []string{filepath.Join(here, "node_modules", "playwright-core"), filepath.Join(root, "test", "e2e", "node_modules", "playwright-core")} {
		if exists(filepath.Join(dir, "package.json")) {
			playwright = dir
			break
		}
	}
	need.Check(playwright != "", "playwright-core", "(cd test/e2e && npm ci)")
	need.Check(exists("/usr/bin/chromium"), "/usr/bin/chromium", "apt-get install chromium")
	need.Require(t)

	work := t.TempDir()
	output := os.Getenv("REALTIME_WP_OUTPUT")
	if output == "" {
		output = filepath.Join(here, "output")
	}
	if err := os.MkdirAll(output, 0o755); err != nil {
		t.Fatal(err)
	}
	began := time.Now()

	// Static checks first: they need no server.
	t.Run("php-lint", func(t *testing.T) {
		var files []string
		for _, dir := range []string{filepath.Join(root, "examples", "wordpress", "realtime-events"), here} {
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() && (d.Name() == "node_modules" || d.Name() == "output") {
					return filepath.SkipDir
				}
				if err == nil && !d.IsDir() && strings.HasSuffix(p, ".php") {
					files = append(files, p)
				}
				return nil
			})
		}
		if len(files) < 10 {
			t.Fatalf("found only %d PHP files", len(files))
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for _, f := range files {
			wg.Add(1)
			sem <- struct{}{}
			go func(f string) {
				defer func() { <-sem; wg.Done() }()
				if out, err := exec.Command(php, "-l", f).CombinedOutput(); err != nil {
					t.Errorf("php -l %s: %v\n%s", f, err, out)
				}
			}(f)
		}
		wg.Wait()
		t.Logf("php -l: %d files, no syntax errors", len(files))
	})

	// The product's Caddy.
	buildStart := time.Now()
	caddy := testenv.CaddyBinary(t)
	t.Logf("built caddy in %s", time.Since(buildStart).Round(time.Millisecond))

	caddyEnv := []string{
		"REALTIME_SECRET=" + publishSecret,
		"REALTIME_TOKEN_SECRET=" + tokenSecret,
		"REALTIME_WEBHOOK_SECRET=" + webhookSecret,
		"HOME=" + work,
		"XDG_DATA_HOME=" + filepath.Join(work, "xdg-data"),
		"XDG_CONFIG_HOME=" + filepath.Join(work, "xdg-config"),
	}
	t.Run("example-caddyfile-validates", func(t *testing.T) {
		example := filepath.Join(root, "examples", "wordpress", "Caddyfile")
		out, err := run(t, time.Minute, work, caddyEnv, caddy, "adapt", "--config", example, "--adapter", "caddyfile")
		if err != nil {
			t.Fatalf("caddy adapt examples/wordpress/Caddyfile: %v\n%s", err, out)
		}
		for _, want := range []string{`"realtime_ws"`, `"realtime_broadcast"`, `"remote_ip"`, `"token_cookie":"realtime_token"`, `"webhook":{"url":"https://example.com/wp-json/realtime-events/v1/webhook"`} {
			if !strings.Contains(out, want) {
				t.Errorf("adapted example has no %s", want)
			}
		}
		// validate provisions every module (the secrets come from the environment, as
		// with the systemd drop-in) without starting anything.
		if out, err := run(t, time.Minute, work, caddyEnv, caddy, "validate", "--config", example, "--adapter", "caddyfile"); err != nil {
			t.Fatalf("caddy validate examples/wordpress/Caddyfile: %v\n%s", err, out)
		}
	})

	// Scratch WordPress, PHP-FPM pool, Caddyfile.
	port, ingest := freePort(t), freePort(t)
	dbName := "rtwp_" + randomHex(6)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	setupEnv := []string{
		"RT_WORK=" + work,
		fmt.Sprintf("RT_PORT=%d", port),
		fmt.Sprintf("RT_INGEST_PORT=%d", ingest),
		"RT_DB_NAME=" + dbName,
		"RT_SECRET=" + publishSecret,
		"RT_TOKEN_SECRET=" + tokenSecret,
		"RT_WEBHOOK_SECRET=" + webhookSecret,
		"RT_ADMIN_PASSWORD=" + adminPassword,
		"RT_READER_PASSWORD=" + readerPass,
	}
	t.Cleanup(func() {
		if os.Getenv("REALTIME_WP_KEEP_DB") == "" {
			_ = exec.Command(php, filepath.Join(here, "db.php"), "drop", "127.0.0.1:3306", "root", "", dbName).Run()
		}
	})
	out2, err := run(t, 2*time.Minute, here, setupEnv, "bash", filepath.Join(here, "setup.sh"))
	if err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out2)
	}
	var siteInfo struct {
		PageURL        string `json:"page_url"`
		PageID         int    `json:"page_id"`
		ReaderID       int    `json:"reader_id"`
		WriterID       int    `json:"writer_id"`
		ReadingID      int    `json:"reading_id"`
		ReadingURL     string `json:"reading_url"`
		ReadingLiveURL string `json:"reading_live_url"`
	}
	lines := strings.Split(strings.TrimSpace(out2), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &siteInfo); err != nil || siteInfo.PageURL == "" {
		t.Fatalf("setup.sh did not report the site: %v\n%s", err, out2)
	}
	docroot := filepath.Join(work, "docroot")

	// Keep the logs when something fails.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, name := range []string{"caddy.log", "php-fpm.out", "php-fpm.log", "php-errors.log", "wp-debug.log"} {
			if b, err := os.ReadFile(filepath.Join(work, name)); err == nil {
				_ = os.WriteFile(filepath.Join(output, name), b, 0o644)
			}
		}
		t.Logf("logs copied to %s", output)
	})

	fpmArgs := []string{"-F", "-y", filepath.Join(work, "php-fpm.conf")}
	if os.Geteuid() == 0 {
		fpmArgs = append(fpmArgs, "-R")
	}
	fpmProc := testenv.Start(t, "php-fpm8.2", filepath.Join(work, "php-fpm.out"), "", nil, fpm, fpmArgs...)
	waitFor(t, "the PHP-FPM socket", 15*time.Second, func() bool { return exists(filepath.Join(work, "php-fpm.sock")) }, fpmProc)

	cfg, err := os.ReadFile(filepath.Join(work, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	caddyProc := testenv.StartCaddy(t, testenv.CaddyConfig{
		Caddyfile: string(cfg), // admin off
		Site:      fmt.Sprintf("127.0.0.1:%d", port),
		Env:       caddyEnv,
		Log:       filepath.Join(work, "caddy.log"),
	})
	client := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, "WordPress behind Caddy", 30*time.Second, func() bool {
		resp, err := client.Get(siteInfo.PageURL)
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && bytes.Contains(body, []byte(`id="realtime-notification-area"`))
	}, caddyProc.Process, fpmProc)
	t.Logf("WordPress at %s (page %s), ingest on port %d, database %s; ready after %s", site, siteInfo.PageURL, ingest, dbName, time.Since(began).Round(time.Millisecond))

	goodURL := fmt.Sprintf("http://127.0.0.1:%d/realtime/broadcast", ingest)

	t.Run("phpunit", func(t *testing.T) {
		out, err := run(t, 3*time.Minute, here, []string{
			"WP_ROOT=" + docroot,
			"REALTIME_TEST_BROADCAST_URL=" + goodURL,
		}, phpunit, "-c", filepath.Join(here, "phpunit.xml"))
		t.Log("\n" + out)
		if err != nil {
			t.Fatalf("phpunit: %v", err)
		}
		if !regexp.MustCompile(`(?m)^OK \(\d+ tests?, \d+ assertions?\)`).MatchString(out) {
			t.Fatalf("phpunit did not report a clean OK (skipped or incomplete tests?)")
		}
	})

	t.Run("webhook-receiver", func(t *testing.T) {
		testWebhookReceiver(t, client, site, siteInfo.ReadingID, siteInfo.ReaderID, php, filepath.Join(here, "tool.php"), docroot)
	})

	closed := freePort(t) // nothing listens there: the "broken" ingest URL
	browserEnv := []string{
		"RT_SITE=" + site,
		"RT_PAGE_URL=" + siteInfo.PageURL,
		fmt.Sprintf("RT_PAGE_ID=%d", siteInfo.PageID),
		"RT_READING_URL=" + siteInfo.ReadingURL,
		"RT_READING_LIVE_URL=" + siteInfo.ReadingLiveURL,
		fmt.Sprintf("RT_READING_ID=%d", siteInfo.ReadingID),
		"RT_DOCROOT=" + docroot,
		"RT_PHP=" + php,
		"RT_TOOL=" + filepath.Join(here, "tool.php"),
		"RT_BROADCAST_FILE=" + filepath.Join(work, "broadcast-url"),
		"RT_GOOD_URL=" + goodURL,
		fmt.Sprintf("RT_BAD_URL=http://127.0.0.1:%d/realtime/broadcast", closed),
		"RT_ADMIN_PASSWORD=" + adminPassword,
		"RT_READER_PASSWORD=" + readerPass,
		fmt.Sprintf("RT_READER_ID=%d", siteInfo.ReaderID),
		fmt.Sprintf("RT_WRITER_ID=%d", siteInfo.WriterID),
		"RT_SECRET=" + publishSecret,
		"RT_WEBHOOK_SECRET=" + webhookSecret,
		"RT_OUT=" + output,
		"PLAYWRIGHT_CORE=" + playwright,
		"CHROMIUM=/usr/bin/chromium",
	}
	t.Run("browser", func(t *testing.T) {
		runBrowser(t, here, node, output, append(browserEnv, "RT_GROUP=core"))
	})

	// Live presence: the hub's presence (presence_leave_delay 1s in Caddyfile.tmpl) and
	// its webhook to the plugin's receiver.
	t.Run("presence-browser", func(t *testing.T) {
		runBrowser(t, here, node, output, append(browserEnv, "RT_GROUP=presence"))
	})

	t.Run("uninstall", func(t *testing.T) {
		out, err := run(t, time.Minute, here, nil, php, filepath.Join(here, "tool.php"), docroot, "uninstall")
		if err != nil {
			t.Fatalf("tool.php uninstall: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var state map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &state); err != nil {
			t.Fatalf("tool.php uninstall printed %q", out)
		}
		for key, want := range map[string]any{"active": false, "table": nil, "db_version": false, "last_error": false, "cron": false} {
			if state[key] != want {
				t.Errorf("after uninstall %s = %v, want %v", key, state[key], want)
			}
		}
		for _, key := range []string{"tables", "options"} {
			if left, ok := state[key].([]any); !ok || len(left) != 0 {
				t.Errorf("after uninstall, plugin %s left: %v", key, state[key])
			}
		}
	})

	t.Run("no-php-notices-from-the-plugin", func(t *testing.T) {
		// WP_DEBUG is on. WordPress 6.1 itself emits PHP 8.2 deprecations; none may come
		// from the plugin, and no database error may appear at all.
		bad := regexp.MustCompile(`plugins/realtime-events|WordPress database error|PHP Fatal`)
		for _, name := range []string{"wp-debug.log", "php-errors.log"} {
			f, err := os.Open(filepath.Join(work, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if bad.MatchString(sc.Text()) {
					t.Errorf("%s: %s", name, sc.Text())
				}
			}
			f.Close()
		}
	})

	t.Logf("wordpress e2e finished in %s; screenshots in %s", time.Since(began).Round(time.Millisecond), output)
}

// runBrowser runs one group of browser.cjs's checks and requires every one to pass.
func runBrowser(t *testing.T, here, node, output string, env []string) {
	t.Helper()
	out, err := run(t, 5*time.Minute, here, env, node, filepath.Join(here, "browser.cjs"))
	t.Log("\n" + out)
	if err != nil {
		t.Fatalf("browser.cjs: %v (screenshots in %s)", err, output)
	}
	if !regexp.MustCompile(`(?m)^browser: [1-9]\d* passed, 0 failed$`).MatchString(out) {
		t.Fatalf("browser.cjs did not pass every check")
	}
}

// webhookAnswer is the receiver's JSON answer.
type webhookAnswer struct {
	Status     string `json:"status"`
	Code       string `json:"code"`
	Received   int    `json:"received"`
	Processed  int    `json:"processed"`
	Duplicates int    `json:"duplicates"`
}

// signWebhook signs a body the way the hub does: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>.
func signWebhook(secret string, t time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", t.Unix())
	mac.Write(body)
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(mac.Sum(nil)))
}

// testWebhookReceiver posts signed webhooks to the plugin's REST route through Caddy and
// PHP-FPM, as the hub does, and checks what WordPress answers and remembers.
func testWebhookReceiver(t *testing.T, client *http.Client, site string, readingID, readerID int, php, tool, docroot string) {
	url := site + "/wp-json/realtime-events/v1/webhook"
	channel := fmt.Sprintf("presence-post.%d", readingID)
	anon := "anon-" + randomHex(16)
	tag := randomHex(4)
	post := func(body []byte, signature, contentType string) (int, webhookAnswer) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		if signature != "" {
			req.Header.Set("X-Realtime-Signature", signature)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a webhookAnswer
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("POST %s answered %d %q: not JSON", url, resp.StatusCode, raw)
		}
		return resp.StatusCode, a
	}
	batch := func(name string, ids ...string) []byte {
		events := []map[string]string{
			{"name": name, "channel": channel, "user_id": strconv.Itoa(readerID), "id": ids[0]},
			{"name": name, "channel": channel, "user_id": anon, "id": ids[1]},
		}
		b, _ := json.Marshal(map[string]any{"time_ms": time.Now().UnixMilli(), "events": events})
		return b
	}
	online := func() map[string]struct {
		Users     []string `json:"users"`
		Anonymous int      `json:"anonymous"`
	} {
		t.Helper()
		out, err := exec.Command(php, tool, docroot, "online").Output()
		if err != nil {
			t.Fatalf("tool.php online: %v", err)
		}
		var m map[string]struct {
			Users     []string `json:"users"`
			Anonymous int      `json:"anonymous"`
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
			t.Fatalf("tool.php online printed %q", out)
		}
		return m
	}

	added := batch("member_added", "go-"+tag+"-1", "go-"+tag+"-2")
	now := time.Now()
	code, a := post(added, signWebhook(webhookSecret, now, added), "application/json")
	if code != 200 || a.Processed != 2 || a.Duplicates != 0 {
		t.Fatalf("signed batch: %d %+v, want 200 with 2 processed", code, a)
	}
	got := online()[channel]
	if want := []string{strconv.Itoa(readerID)}; fmt.Sprint(got.Users) != fmt.Sprint(want) || got.Anonymous != 1 {
		t.Errorf("online in %s = %+v, want users %v and 1 anonymous", channel, got, want)
	}

	// At least once: the same batch again, signed again, changes nothing.
	code, a = post(added, signWebhook(webhookSecret, now.Add(time.Second), added), "application/json")
	if code != 200 || a.Duplicates != 2 || a.Processed != 0 {
		t.Errorf("resent batch: %d %+v, want 200 with 2 duplicates", code, a)
	}

	for _, c := range []struct {
		what, signature, contentType string
		status                       int
		code                         string
	}{
		{"wrong secret", signWebhook("not-the-secret", now, added), "application/json", 401, "realtime_events_webhook_bad_signature"},
		{"the publish secret", signWebhook(publishSecret, now, added), "application/json", 401, "realtime_events_webhook_bad_signature"},
		{"signed an hour ago", signWebhook(webhookSecret, now.Add(-time.Hour), added), "application/json", 401, "realtime_events_webhook_stale"},
		{"unsigned", "", "application/json", 401, "realtime_events_webhook_unsigned"},
		{"not JSON", signWebhook(webhookSecret, now, added), "text/plain", 415, "realtime_events_webhook_content_type"},
	} {
		code, a := post(added, c.signature, c.contentType)
		if code != c.status || a.Code != c.code {
			t.Errorf("%s: %d %q, want %d %q", c.what, code, a.Code, c.status, c.code)
		}
	}

	removed := batch("member_removed", "go-"+tag+"-3", "go-"+tag+"-4")
	if code, a := post(removed, signWebhook(webhookSecret, time.Now(), removed), "application/json"); code != 200 || a.Processed != 2 {
		t.Fatalf("removal batch: %d %+v", code, a)
	}
	if got, ok := online()[channel]; ok {
		t.Errorf("after member_removed, %s still lists %+v", channel, got)
	}
}
