package integration

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// httpClient publishes and reads the admin API; its connections go to
// 127.0.0.1 whatever the URL's host.
var httpClient = &http.Client{
	Transport: &http.Transport{DialContext: rtclient.LoopbackDial, MaxIdleConnsPerHost: 16},
	Timeout:   10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

var seq atomic.Int64

// uniq returns a channel name no other test uses.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, seq.Add(1))
}

// apiAnswer is the JSON answer of the publish API.
type apiAnswer struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Code    string `json:"code"`
	Field   string `json:"field"`
	Events  []struct {
		Channel   string `json:"channel"`
		Cursor    string `json:"cursor"`
		Duplicate bool   `json:"duplicate"`
	} `json:"events"`
}

// response is one HTTP answer, read in full.
type response struct {
	status int
	proto  int
	header http.Header
	body   []byte
}

func (r *response) String() string {
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

func do(t *testing.T, client *http.Client, req *http.Request) *response {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return &response{status: resp.StatusCode, proto: resp.ProtoMajor, header: resp.Header, body: body}
}

// request sends method url with body and headers (name, value pairs).
func request(t *testing.T, method, url string, body []byte, headers ...string) *response {
	t.Helper()
	return requestWith(t, httpClient, method, url, body, headers...)
}

func requestWith(t *testing.T, client *http.Client, method, url string, body []byte, headers ...string) *response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, client, req)
}

// jsonCT and bearer are the header pairs of a well-formed publish.
var jsonCT = []string{"Content-Type", "application/json"}

func bearer(secret string) []string {
	return []string{"Authorization", "Bearer " + secret, "Content-Type", "application/json"}
}

// sign computes X-Realtime-Signature for body at unix time ts.
func sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return fmt.Sprintf("t=%d,v1=%x", ts, m.Sum(nil))
}

func signed(secret string, ts int64, body []byte) []string {
	return []string{"X-Realtime-Signature", sign(secret, ts, body), "Content-Type", "application/json"}
}

// publish posts body with the primary secret and requires a 200.
func publish(t *testing.T, body string) apiAnswer {
	t.Helper()
	return publishTo(t, broadcastURL, body)
}

func publishTo(t *testing.T, url, body string) apiAnswer {
	t.Helper()
	r := request(t, http.MethodPost, url, []byte(body), bearer(secretA)...)
	if r.status != http.StatusOK {
		t.Fatalf("publish %s: want 200, got %s", body, r)
	}
	return mustJSONAnswer(t, r)
}

// mustJSONAnswer checks that an answer is JSON (header and body) and
// decodes it.
func mustJSONAnswer(t *testing.T, r *response) apiAnswer {
	t.Helper()
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		t.Fatalf("answer %s: want Content-Type application/json, got %q", r, r.header.Get("Content-Type"))
	}
	if bytes.HasPrefix(bytes.TrimSpace(r.body), []byte("<")) {
		t.Fatalf("answer is HTML: %s", r)
	}
	var a apiAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("answer %s is not JSON: %v", r, err)
	}
	return a
}

// expectError checks an error answer: its status, a JSON body with
// status "error", and returns it.
func expectError(t *testing.T, r *response, status int) apiAnswer {
	t.Helper()
	if r.status != status {
		t.Fatalf("want %d, got %s", status, r)
	}
	a := mustJSONAnswer(t, r)
	if a.Status != "error" || a.Message == "" {
		t.Fatalf("error answer %s: want status \"error\" and a message", r)
	}
	return a
}

// expectUnauthorized checks a 401 with its WWW-Authenticate challenge.
func expectUnauthorized(t *testing.T, r *response) {
	t.Helper()
	expectError(t, r, http.StatusUnauthorized)
	if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		t.Fatalf("401 without a Bearer WWW-Authenticate challenge: got %q", h)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dial connects to path on the main site and requires the upgrade.
func dial(t *testing.T, path string, h http.Header) *rtclient.Client {
	t.Helper()
	return rtclient.Dial(t, wsBase+path, rtclient.Options{Header: h})
}

// validToken signs a token for channels with the main config's secret.
func validToken(t *testing.T, channels ...string) string {
	return rtclient.Token(t, tokenSecret, channels, time.Now().Add(time.Hour))
}

// fromHandshake is a refused handshake's answer as a response.
func fromHandshake(r *rtclient.Response) *response {
	return &response{status: r.Status, proto: r.Proto, header: r.Header, body: r.Body}
}
