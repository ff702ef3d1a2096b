package integration

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

const (
	logPubSecret   = "log-pub-secret-Q7w9Zx3v"
	logPubSecret2  = "log-pub-secret-rot-K2m4"
	logTokenSecret = "log-token-secret-P5n8Jd"
)

// loggingConfig is the only config with logging on: the default log at
// DEBUG and the site's access log, both to files.
func loggingConfig(dir string) string {
	return `{` + globalOptions + `
	log {
		output file ` + filepath.Join(dir, "caddy.log") + `
		format json
		level DEBUG
	}
}

` + httpBase + ` {
	log {
		output file ` + filepath.Join(dir, "access.log") + `
		format json
	}
	realtime_ws /realtime/ws {
		token_secret ` + logTokenSecret + `
		token_cookie realtime_token
	}
	realtime_broadcast /realtime/broadcast {
		secret ` + logPubSecret + `
		secret ` + logPubSecret2 + `
		max_body 2KiB
	}
	respond 404
}
`
}

// TestLogsHoldNoSecretsOrTokens exercises good and bad publishes and token
// subscribes with logging at DEBUG, then requires that no secret and no
// token (nor a token's signature) appears in any log line.
func TestLogsHoldNoSecretsOrTokens(t *testing.T) {
	dir := t.TempDir()
	loadConfig(t, loggingConfig(dir))
	defer loadMain(t) // close the log files

	var tokens []string
	tok := func(channels []string, exp time.Duration, secret string) string {
		s := rtclient.Token(t, secret, channels, time.Now().Add(exp))
		tokens = append(tokens, s)
		return s
	}
	ch := uniq("private-log")
	body := []byte(event(ch, "logged"))
	now := time.Now().Unix()

	// Publishes, refused and accepted.
	for _, c := range []struct {
		headers []string
		body    []byte
		status  int
	}{
		{bearer(logPubSecret + "x"), body, 401},
		{bearer("wrong-" + logPubSecret2), body, 401},
		{[]string{"Authorization", logPubSecret, "Content-Type", "application/json"}, body, 401},
		{signed(logPubSecret+"!", now, body), body, 401},
		{signed(logPubSecret, now-3600, body), body, 401},
		{[]string{"Authorization", "Bearer " + logPubSecret, "Content-Type", "text/plain"}, body, 415},
		{bearer(logPubSecret), oversized(ch), 413},
		{bearer(logPubSecret), []byte(`{"type":"` + logPubSecret + ``), 400},
		{bearer(logPubSecret), body, 200},
		{bearer(logPubSecret2), body, 200},
		{signed(logPubSecret, now, body), body, 200},
	} {
		if r := request(t, http.MethodPost, broadcastURL, c.body, c.headers...); r.status != c.status {
			t.Fatalf("publish: want %d, got %s", c.status, r)
		}
	}

	// Token subscribes: header, cookie, frame; expired and forged tokens.
	h := dial(t, "/realtime/ws?channels="+ch, http.Header{"Authorization": {"Bearer " + tok([]string{ch}, time.Hour, logTokenSecret)}})
	h.Welcome(ch)
	cookie := (&http.Cookie{Name: "realtime_token", Value: tok([]string{ch}, time.Hour, logTokenSecret)}).String()
	k := dial(t, "/realtime/ws?channels="+ch, http.Header{"Cookie": {cookie}})
	k.Welcome(ch)
	f := dial(t, "/realtime/ws?channels=default", nil)
	f.Welcome("default")
	f.Send(map[string]any{"type": "realtime:subscribe", "channel": ch, "token": tok([]string{ch}, time.Hour, logTokenSecret)})
	f.ExpectSubscribed(ch)
	f.Send(map[string]any{"type": "realtime:subscribe", "channel": ch + "x", "token": tok([]string{ch + "x"}, -time.Hour, logTokenSecret)})
	f.ExpectError("token_expired", ch+"x")
	f.Send(map[string]any{"type": "realtime:subscribe", "channel": ch + "y", "token": tok([]string{ch + "y"}, time.Hour, "forged-"+logTokenSecret)})
	f.ExpectError("token_invalid", ch+"y")
	f.SendRaw(1, []byte(`{"type":"realtime:bogus","token":"`+tok([]string{"*"}, time.Hour, logTokenSecret)+`"}`))
	f.ExpectError("bad_request", "")
	publishLogged := request(t, http.MethodPost, broadcastURL, body, bearer(logPubSecret)...)
	if publishLogged.status != 200 {
		t.Fatalf("publish: %s", publishLogged)
	}
	h.ExpectEvent(ch, "logged")
	k.ExpectEvent(ch, "logged")
	f.ExpectEvent(ch, "logged")
	// Refused handshakes carrying tokens: cross origin, and an upgrade
	// gorilla rejects (no Sec-WebSocket-Key), which the module logs at DEBUG.
	expectRefused(t, "/realtime/ws", http.Header{"Origin": {"http://evil.example"}, "Authorization": {"Bearer " + tok([]string{"*"}, time.Hour, logTokenSecret)}}, http.StatusForbidden)
	badUpgrade(t, tok([]string{"*"}, time.Hour, logTokenSecret))
	// A 1009 close with a token in the oversized frame.
	big := dial(t, "/realtime/ws?channels=default", nil)
	big.Welcome("default")
	big.Send(map[string]any{"type": "realtime:subscribe", "channel": "x", "token": tok([]string{"*"}, time.Hour, logTokenSecret), "pad": strings.Repeat("p", 5000)})
	big.ExpectClose(1009)
	for _, c := range []*rtclient.Client{h, k, f} {
		c.Close()
	}

	// Logging really happened: the module's DEBUG line and the access log
	// entries are there.
	caddyLog := filepath.Join(dir, "caddy.log")
	accessLog := filepath.Join(dir, "access.log")
	waitFor(t, 5*time.Second, "the module's debug log and the access log", func() bool {
		a, _ := os.ReadFile(accessLog)
		c, _ := os.ReadFile(caddyLog)
		return strings.Contains(string(a), "/realtime/broadcast") && strings.Contains(string(a), `"status":401`) &&
			strings.Contains(string(c), "websocket upgrade failed")
	})

	secrets := map[string]string{
		"publish secret":         logPubSecret,
		"rotated publish secret": logPubSecret2,
		"token secret":           logTokenSecret,
	}
	for i, tk := range tokens {
		secrets[fmt.Sprintf("token #%d", i+1)] = tk
		secrets[fmt.Sprintf("signature of token #%d", i+1)] = tk[strings.LastIndexByte(tk, '.')+1:]
	}
	lines := 0
	for _, path := range []string{caddyLog, accessLog} {
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines++
			line := sc.Text()
			for what, s := range secrets {
				if strings.Contains(line, s) {
					t.Errorf("%s appears in %s:\n%s", what, filepath.Base(path), line)
				}
			}
		}
		fh.Close()
	}
	t.Logf("%d log lines checked for %d secrets and tokens", lines, len(secrets))
}

// badUpgrade sends an upgrade request gorilla refuses (no
// Sec-WebSocket-Key), with a token in its Authorization header.
func badUpgrade(t *testing.T, token string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /realtime/ws HTTP/1.1\r\nHost: localhost:%d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n", httpPort, token)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("upgrade without Sec-WebSocket-Key: want 400 from gorilla, got %d", resp.StatusCode)
	}
}
