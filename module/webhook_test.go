package module

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// TestWebhookSignatures: the realtime scheme signs "<t>.<body>" like the
// publish API; the Pusher scheme signs the body alone, with the key. The
// Pusher value below, for the key and secret of Pusher's documented
// examples, is one that the pusher Node SDK's webhook().isValid() accepts.
func TestWebhookSignatures(t *testing.T) {
	body := []byte(`{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"}]}`)
	rt := signWebhook(&webhookTarget{secret: []byte("s3cret")}, body, time.Unix(1700000000, 0))
	want := "t=1700000000,v1=" + hmacHex("s3cret", "1700000000."+string(body))
	if len(rt) != 1 || rt["X-Realtime-Signature"] != want {
		t.Fatalf("realtime signature: got %v, want %s", rt, want)
	}
	p := signWebhook(&webhookTarget{secret: []byte("7ad3773142a6692b25b8"), pusherKey: "278d425bdf160c739803"}, body, time.Now())
	if p["X-Pusher-Key"] != "278d425bdf160c739803" || p["X-Pusher-Signature"] != "709fdb84c03664445f7698120b0edf0acc1ab1c8c6e93a0368c61841d6b998aa" || len(p) != 2 {
		t.Fatalf("pusher signature: %v", p)
	}
	// The same with the example body whose signature was computed with the
	// pusher SDK 5.3.4.
	p = signWebhook(&webhookTarget{secret: []byte("7ad3773142a6692b25b8"), pusherKey: "278d425bdf160c739803"}, []byte(`{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test"}]}`), time.Now())
	if p["X-Pusher-Signature"] != "abfea5004a8dd261c09cf7357e59a6dbdbfd3d6a9846970f7d549e8e2b57bb32" {
		t.Fatalf("pusher signature of the SDK vector: %v", p)
	}
}

// TestWebhookClaims: a handler's webhook is claimed in Provision and given
// up in Cleanup. A reload claims the new target before the old one gives
// its claim up, so the new one stays; a failed reload gives up the new
// claim, and the old target is back; the last claim given up removes it.
func TestWebhookClaims(t *testing.T) {
	ph := &pooledHub{Hub: hub.New("t", hub.NewMemoryLog(10, time.Hour))}
	target := func() *webhookTarget {
		ph.webhooks.mu.Lock()
		defer ph.webhooks.mu.Unlock()
		return ph.webhooks.targets["p"]
	}
	old := &webhookTarget{url: "https://a.example/hook", events: hub.WebhookMemberAdded}
	releaseOld := ph.claimWebhook("p", old)
	if target() != old || !ph.WantsWebhook(hub.WebhookMemberAdded) {
		t.Fatal("the first claim is not the target")
	}
	// A reload: the new config claims, then the old one gives up.
	next := &webhookTarget{url: "https://b.example/hook", events: hub.WebhookClientEvent}
	releaseNext := ph.claimWebhook("p", next)
	releaseOld()
	releaseOld() // Cleanup may run twice; the second does nothing
	if target() != next || ph.WantsWebhook(hub.WebhookMemberAdded) || !ph.WantsWebhook(hub.WebhookClientEvent) {
		t.Fatal("after a reload the new target is not the one")
	}
	// A failed reload: the newest claim goes, the one before is back.
	failed := &webhookTarget{url: "https://c.example/hook", events: hub.WebhookMemberRemoved}
	releaseFailed := ph.claimWebhook("p", failed)
	if target() != failed {
		t.Fatal("the newest claim is not the target")
	}
	releaseFailed()
	if target() != next {
		t.Fatal("after a failed reload the running config's target is not back")
	}
	releaseNext()
	if target() != nil || ph.WantsWebhook(hub.AllWebhooks) {
		t.Fatal("the target stayed after its last claim was given up")
	}
}

// TestWebhookBody: Pusher's format plus an id per event; time_ms is the
// first event's, so a batch sent again is the same bytes.
func TestWebhookBody(t *testing.T) {
	at := time.UnixMilli(1733300000000)
	b := webhookBody([]hub.WebhookEvent{
		{ID: "e-1", Time: at, Name: "member_added", Channel: "presence-post.7", UserID: "42"},
		{ID: "e-2", Time: at.Add(time.Second), Name: "channel_vacated", Channel: "posts"},
	})
	want := `{"time_ms":1733300000000,"events":[{"name":"member_added","channel":"presence-post.7","user_id":"42","id":"e-1"},{"name":"channel_vacated","channel":"posts","id":"e-2"}]}`
	if string(b) != want {
		t.Fatalf("body:\n got %s\nwant %s", b, want)
	}
	if !json.Valid(b) {
		t.Fatal("body is not JSON")
	}
}

// TestRetryDelay: doubling from a second, capped at a minute, jittered
// between half and all of it.
func TestRetryDelay(t *testing.T) {
	for n, full := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 5: 32 * time.Second, 6: time.Minute, 40: time.Minute} {
		for i := 0; i < 50; i++ {
			if d := retryDelay(n); d < full/2 || d > full {
				t.Fatalf("retryDelay(%d) = %v, want within [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

// TestWebhookTargetChecks: events default to the four presence ones, and
// the settings are checked after placeholders.
func TestWebhookTargetChecks(t *testing.T) {
	tg, err := newWebhookTarget(&WebhookConfig{URL: "https://example.com/hook", Secret: "x"}, "")
	if err != nil || tg.events != defaultWebhookEvents || tg.events.Has(hub.WebhookClientEvent) {
		t.Fatalf("defaults: %+v, %v", tg, err)
	}
	for _, c := range []WebhookConfig{
		{URL: "example.com/hook", Secret: "x"},
		{URL: "https://example.com/hook"},
		{URL: "https://example.com/hook", Secret: "x", Events: []string{"member_joined"}},
	} {
		if _, err := newWebhookTarget(&c, ""); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
}

func hmacHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// TestWebhookSenderLifecycle: removing a target stops its sender at once,
// even while it waits for events (else a target added again under the
// name would get a second sender reading the same queue), and once the
// hub's senders are stopped none starts again.
func TestWebhookSenderLifecycle(t *testing.T) {
	ph := &pooledHub{Hub: hub.New("t", hub.NewMemoryLog(10, time.Hour)), log: newFollowingLogger(zap.NewNop())}
	w := &ph.webhooks
	senders := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.senders) + len(w.retiring)
	}
	exited := func() bool {
		done := make(chan struct{})
		go func() { w.wg.Wait(); close(done) }()
		select {
		case <-done:
			return true
		case <-time.After(5 * time.Second):
			return false
		}
	}
	posts := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { posts <- struct{}{} }))
	defer srv.Close()
	target := &webhookTarget{url: srv.URL, secret: []byte("s"), events: hub.WebhookClientEvent}
	ph.setWebhook("hub", target)
	ph.startWebhooks()
	if n := senders(); n != 1 {
		t.Fatalf("%d senders, want 1", n)
	}
	// One delivery, so that the sender is back waiting for events.
	if err := ph.Webhooks().Add(context.Background(), []hub.WebhookEvent{{Name: "client_event", Channel: "private-c", Event: "client-x"}}); err != nil {
		t.Fatal(err)
	}
	<-posts
	time.Sleep(50 * time.Millisecond)
	ph.setWebhook("hub", nil)
	if !exited() {
		t.Fatal("the sender of a removed target is still running")
	}
	if n := senders(); n != 0 {
		t.Fatalf("%d senders after the target was removed, want 0", n)
	}
	ph.setWebhook("hub", target)
	if n := senders(); n != 1 {
		t.Fatalf("%d senders after the target came back, want 1", n)
	}
	ph.stopWebhooks()
	ph.setWebhook("other", target)
	if n := senders(); n != 1 || !exited() {
		t.Fatalf("a sender started after the hub's senders were stopped (%d)", n)
	}
}
