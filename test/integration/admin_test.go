package integration

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAdminHubs: GET /realtime/hubs lists the running hubs with their counts.
func TestAdminHubs(t *testing.T) {
	loadMain(t)
	waitFor(t, 3*time.Second, "hub stats to have no connections", func() bool { return statInt(t, "stats", "connections") == 0 })
	c1 := dial(t, "/ws/stats?channels=s1,s2", nil)
	c1.Welcome("s1", "s2")
	c2 := dial(t, "/ws/stats?channels=s1", nil)
	c2.Welcome("s1")
	h := hubStats(t, "stats")
	for key, want := range map[string]float64{"connections": 2, "subscriptions": 3, "channels": 2} {
		if got, _ := h[key].(float64); got != want {
			t.Fatalf("hub stats: want %s %v, got %v (%v)", key, want, h[key], h)
		}
	}
	if h["backplane"] != "memory" || h["backplane_up"] != true {
		t.Fatalf("hub stats: want an up memory backplane, got %v", h)
	}
	if cur, _ := h["cursor"].(string); !cursorRE.MatchString(cur) {
		t.Fatalf("hub stats: want the head cursor, got %v", h["cursor"])
	}
	// Every hub a handler names is listed.
	for _, name := range []string{"default", "capped", "perip", "slow", "pinghub", "stats"} {
		hubStats(t, name)
	}
	c2.Close()
	waitFor(t, 3*time.Second, "connections to drop to 1", func() bool { return statInt(t, "stats", "connections") == 1 })
	if n := statInt(t, "stats", "subscriptions"); n != 2 {
		t.Fatalf("after a client left: want 2 subscriptions, got %d", n)
	}
	// A wrong method is answered in the module's error form, as on the
	// hub routes, with the method to use.
	r := request(t, http.MethodPost, adminBase+"/realtime/hubs", nil)
	if a := expectError(t, r, http.StatusMethodNotAllowed); a.Code != "method_not_allowed" || r.header.Get("Allow") != "GET" {
		t.Fatalf("POST /realtime/hubs: want method_not_allowed with Allow: GET, got %s", r)
	}
}

// TestAdminPublish: POST /realtime/hubs/<name>/publish needs no secret and
// answers as realtime_broadcast does.
func TestAdminPublish(t *testing.T) {
	loadMain(t)
	c := dial(t, "/ws/stats?channels=admin", nil)
	c.Welcome("admin")
	before := statInt(t, "stats", "events_published")
	r := request(t, http.MethodPost, adminBase+"/realtime/hubs/stats/publish", []byte(`{"channel":"admin","type":"from_admin","payload":{"ok":true}}`), jsonCT...)
	if r.status != http.StatusOK {
		t.Fatalf("admin publish: want 200, got %s", r)
	}
	a := mustJSONAnswer(t, r)
	if a.Status != "success" || len(a.Events) != 1 || a.Events[0].Channel != "admin" {
		t.Fatalf("admin publish: want one event on admin, got %s", r)
	}
	f := c.ExpectEvent("admin", "from_admin")
	if f.Cursor != a.Events[0].Cursor {
		t.Fatalf("cursor %q, answer %q", f.Cursor, a.Events[0].Cursor)
	}
	if got := statInt(t, "stats", "events_published"); got != before+1 {
		t.Fatalf("events_published: want %d, got %d", before+1, got)
	}
	// Same refusals as the publish endpoint, in JSON.
	expectError(t, request(t, http.MethodPost, adminBase+"/realtime/hubs/stats/publish", []byte(`{"type":"x"}`), "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
	expectError(t, request(t, http.MethodPost, adminBase+"/realtime/hubs/stats/publish", []byte(`{"channel":"admin"}`), jsonCT...), http.StatusBadRequest)
	r = request(t, http.MethodGet, adminBase+"/realtime/hubs/stats/publish", nil)
	expectError(t, r, http.StatusMethodNotAllowed)
	if r.header.Get("Allow") != "POST" {
		t.Fatalf("405 without Allow: POST: %v", r.header)
	}
	expectError(t, request(t, http.MethodPost, adminBase+"/realtime/hubs/no-such-hub/publish", []byte(`{"type":"x"}`), jsonCT...), http.StatusNotFound)
	// Unknown hubs are 404 whatever the method (and are not counted: the
	// name comes from the URL).
	expectError(t, request(t, http.MethodGet, adminBase+"/realtime/hubs/no-such-hub/publish", nil), http.StatusNotFound)
	// Nothing of the refused requests was delivered.
	publishTo(t, adminBase+"/realtime/hubs/stats/publish", `{"channel":"admin","type":"sentinel"}`)
	c.ExpectEvent("admin", "sentinel")
}

// TestMetrics: the admin /metrics output has caddy_realtime_* collectors
// labelled by hub (and rejected publishes by reason), never by channel.
func TestMetrics(t *testing.T) {
	loadMain(t)
	c := dial(t, "/ws/stats?channels=metrics", nil)
	c.Welcome("metrics")
	publishTo(t, adminBase+"/realtime/hubs/stats/publish", `{"channel":"metrics","type":"m"}`)
	c.ExpectEvent("metrics", "m")
	expectUnauthorized(t, request(t, http.MethodPost, broadcastURL, []byte(`{}`), jsonCT...))

	r := request(t, http.MethodGet, adminBase+"/metrics", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics: %s", r)
	}
	body := string(r.body)
	for _, re := range []string{
		`(?m)^caddy_realtime_connections\{hub="stats"\} [1-9]`,
		`(?m)^caddy_realtime_subscriptions\{hub="stats"\} [1-9]`,
		`(?m)^caddy_realtime_events_published_total\{hub="stats"\} [1-9]`,
		`(?m)^caddy_realtime_deliveries_total\{hub="stats"\} [1-9]`,
		`(?m)^caddy_realtime_slow_consumer_disconnects_total\{hub="stats"\} \d`,
		`(?m)^caddy_realtime_replayed_events_total\{hub="default"\} \d`,
		`(?m)^caddy_realtime_failed_recoveries_total\{hub="default"\} \d`,
		`(?m)^caddy_realtime_publishes_rejected_total\{hub="default",reason="unauthorized"\} [1-9]`,
		`(?m)^caddy_realtime_publish_duration_seconds_bucket\{hub="stats",le="[^"]+"\} \d`,
		`(?m)^caddy_realtime_publish_duration_seconds_count\{hub="stats"\} [1-9]`,
	} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("/metrics: no line matching %s", re)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "caddy_realtime_") && (strings.Contains(line, "channel=") || strings.Contains(line, "user=")) {
			t.Errorf("/metrics: a realtime metric labelled by channel or user: %s", line)
		}
	}
	if t.Failed() {
		var ours []string
		for _, line := range strings.Split(body, "\n") {
			if strings.Contains(line, "realtime") {
				ours = append(ours, line)
			}
		}
		t.Logf("realtime lines of /metrics:\n%s", strings.Join(ours, "\n"))
	}
}
