package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// event renders one publish item.
func event(channel, typ string) string {
	return fmt.Sprintf(`{"channel":%q,"type":%q}`, channel, typ)
}

// oversized is a valid event for channel of more than max_body (2 KiB).
func oversized(channel string) []byte {
	return []byte(fmt.Sprintf(`{"channel":%q,"type":"big","payload":%q}`, channel, strings.Repeat("x", 3000)))
}

// subscriber connects to the main route, joined to channel only.
func subscriber(t *testing.T, channel string) *rtclient.Client {
	t.Helper()
	c := dial(t, "/realtime/ws?channels="+channel, nil)
	c.Welcome(channel)
	return c
}

func TestPublishBearer(t *testing.T) {
	loadMain(t)
	ch := uniq("bearer")
	sub := subscriber(t, ch)
	r := request(t, http.MethodPost, broadcastURL, []byte(event(ch, "hello")), bearer(secretA)...)
	if r.status != http.StatusOK {
		t.Fatalf("want 200, got %s", r)
	}
	a := mustJSONAnswer(t, r)
	if a.Status != "success" || len(a.Events) != 1 || a.Events[0].Channel != ch || a.Events[0].Cursor == "" || a.Events[0].Duplicate {
		t.Fatalf("want success with one event on %s and its cursor, got %s", ch, r)
	}
	f := sub.ExpectEvent(ch, "hello")
	if f.Cursor != a.Events[0].Cursor {
		t.Fatalf("event cursor %q differs from the publish answer's %q", f.Cursor, a.Events[0].Cursor)
	}
}

func TestPublishWrongBearer(t *testing.T) {
	loadMain(t)
	for _, auth := range []string{"Bearer wrong-secret", "Bearer " + secretA + "x", "Bearer " + secretA[:len(secretA)-1], "Bearer "} {
		r := request(t, http.MethodPost, broadcastURL, []byte(event("default", "x")), "Authorization", auth, "Content-Type", "application/json")
		expectUnauthorized(t, r)
	}
}

func TestPublishMissingCredentials(t *testing.T) {
	loadMain(t)
	for name, hdr := range map[string][]string{
		"none":  jsonCT,
		"basic": {"Authorization", "Basic dXNlcjpwYXNz", "Content-Type", "application/json"},
	} {
		t.Run(name, func(t *testing.T) {
			expectUnauthorized(t, request(t, http.MethodPost, broadcastURL, []byte(event("default", "x")), hdr...))
		})
	}
}

func TestPublishSignatureValid(t *testing.T) {
	loadMain(t)
	ch := uniq("signed")
	sub := subscriber(t, ch)
	body := []byte(event(ch, "signed_event"))
	r := request(t, http.MethodPost, broadcastURL, body, signed(secretA, time.Now().Unix(), body)...)
	if r.status != http.StatusOK {
		t.Fatalf("want 200 for a valid signature, got %s", r)
	}
	sub.ExpectEvent(ch, "signed_event")
}

func TestPublishSignatureBadHMAC(t *testing.T) {
	loadMain(t)
	body := []byte(event("default", "x"))
	now := time.Now().Unix()
	cases := map[string]string{
		"wrong secret":   sign("not-the-secret", now, body),
		"other body":     sign(secretA, now, []byte(event("default", "y"))),
		"other time":     fmt.Sprintf("t=%d,%s", now-1, strings.SplitN(sign(secretA, now, body), ",", 2)[1]),
		"malformed":      "v1=deadbeef",
		"not hex":        fmt.Sprintf("t=%d,v1=zz", now),
		"missing v1":     fmt.Sprintf("t=%d", now),
		"bearer as HMAC": fmt.Sprintf("t=%d,v1=%s", now, secretA),
	}
	for name, sig := range cases {
		t.Run(name, func(t *testing.T) {
			r := request(t, http.MethodPost, broadcastURL, body, "X-Realtime-Signature", sig, "Content-Type", "application/json")
			expectUnauthorized(t, r)
		})
	}
}

func TestPublishSignatureOutsideTolerance(t *testing.T) {
	loadMain(t) // signature_tolerance 30s
	body := []byte(event("default", "x"))
	for name, skew := range map[string]time.Duration{"old": -2 * time.Minute, "future": 2 * time.Minute} {
		t.Run(name, func(t *testing.T) {
			ts := time.Now().Add(skew).Unix()
			expectUnauthorized(t, request(t, http.MethodPost, broadcastURL, body, signed(secretA, ts, body)...))
		})
	}
	// Within the tolerance it is accepted: the check is the window, not an
	// exact match of the clock.
	ts := time.Now().Add(-10 * time.Second).Unix()
	if r := request(t, http.MethodPost, broadcastURL, body, signed(secretA, ts, body)...); r.status != http.StatusOK {
		t.Fatalf("signature 10s old (tolerance 30s): want 200, got %s", r)
	}
}

func TestPublishKeyRotation(t *testing.T) {
	loadMain(t)
	ch := uniq("rotation")
	sub := subscriber(t, ch)
	for i, secret := range []string{secretA, secretB} {
		typ := fmt.Sprintf("bearer_%d", i)
		if r := request(t, http.MethodPost, broadcastURL, []byte(event(ch, typ)), bearer(secret)...); r.status != http.StatusOK {
			t.Fatalf("bearer with secret #%d: want 200, got %s", i+1, r)
		}
		sub.ExpectEvent(ch, typ)
		typ = fmt.Sprintf("signed_%d", i)
		body := []byte(event(ch, typ))
		if r := request(t, http.MethodPost, broadcastURL, body, signed(secret, time.Now().Unix(), body)...); r.status != http.StatusOK {
			t.Fatalf("signature with secret #%d: want 200, got %s", i+1, r)
		}
		sub.ExpectEvent(ch, typ)
	}
}

func TestPublishMethodNotAllowed(t *testing.T) {
	loadMain(t)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		t.Run(m, func(t *testing.T) {
			r := request(t, m, broadcastURL, nil, bearer(secretA)...)
			expectError(t, r, http.StatusMethodNotAllowed)
			if allow := r.header.Get("Allow"); allow != "POST" {
				t.Fatalf("405 must carry Allow: POST, got %q", allow)
			}
		})
	}
}

func TestPublishUnsupportedMediaType(t *testing.T) {
	loadMain(t)
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx", "multipart/form-data; boundary=x"} {
		t.Run(ct, func(t *testing.T) {
			r := request(t, http.MethodPost, broadcastURL, []byte(event("default", "x")), "Authorization", "Bearer "+secretA, "Content-Type", ct)
			expectError(t, r, http.StatusUnsupportedMediaType)
		})
	}
	// Parameters of a JSON media type are fine.
	r := request(t, http.MethodPost, broadcastURL, []byte(event("default", "x")), "Authorization", "Bearer "+secretA, "Content-Type", "application/json; charset=utf-8")
	if r.status != http.StatusOK {
		t.Fatalf("application/json; charset=utf-8: want 200, got %s", r)
	}
}

func TestPublishBodyTooLarge(t *testing.T) {
	loadMain(t) // max_body 2KiB
	body := oversized("default")
	t.Run("content-length", func(t *testing.T) {
		expectError(t, request(t, http.MethodPost, broadcastURL, body, bearer(secretA)...), http.StatusRequestEntityTooLarge)
	})
	t.Run("signed", func(t *testing.T) {
		expectError(t, request(t, http.MethodPost, broadcastURL, body, signed(secretA, time.Now().Unix(), body)...), http.StatusRequestEntityTooLarge)
	})
	chunked := func(t *testing.T, body []byte) *response {
		// io.NopCloser hides the length: the client must send the body
		// chunked, without Content-Length, so the limit must be enforced
		// while reading.
		req, err := http.NewRequest(http.MethodPost, broadcastURL, io.NopCloser(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+secretA)
		req.Header.Set("Content-Type", "application/json")
		return do(t, httpClient, req)
	}
	t.Run("chunked", func(t *testing.T) {
		expectError(t, chunked(t, body), http.StatusRequestEntityTooLarge)
	})
	t.Run("chunked 1MiB", func(t *testing.T) {
		big := []byte(fmt.Sprintf(`{"type":"big","payload":%q}`, strings.Repeat("y", 1<<20)))
		expectError(t, chunked(t, big), http.StatusRequestEntityTooLarge)
	})
	t.Run("chunked within the limit", func(t *testing.T) {
		if r := chunked(t, []byte(event("default", "small"))); r.status != http.StatusOK {
			t.Fatalf("small chunked body: want 200, got %s", r)
		}
	})
}

func TestPublishBatchTooLarge(t *testing.T) {
	loadMain(t) // max_batch 3
	items := make([]string, 4)
	for i := range items {
		items[i] = event("default", fmt.Sprintf("e%d", i))
	}
	r := request(t, http.MethodPost, broadcastURL, []byte("["+strings.Join(items, ",")+"]"), bearer(secretA)...)
	expectError(t, r, http.StatusRequestEntityTooLarge)
}

func TestPublishInvalidJSON(t *testing.T) {
	loadMain(t)
	for _, body := range []string{`{"type":`, `not json`, `{"type":"x"} trailing`, ``, `[`, `{"type":"x",}`} {
		t.Run(body, func(t *testing.T) {
			a := expectError(t, request(t, http.MethodPost, broadcastURL, []byte(body), bearer(secretA)...), http.StatusBadRequest)
			if a.Code == "" {
				t.Fatalf("400 without an error code: %+v", a)
			}
		})
	}
}

func TestPublishInvalidUTF8(t *testing.T) {
	loadMain(t)
	for name, body := range map[string][]byte{
		"in a string": []byte("{\"type\":\"x\",\"payload\":\"caf\xe9\"}"),
		"in the type": []byte("{\"type\":\"\xff\xfe\"}"),
		"overlong":    []byte("{\"type\":\"x\",\"payload\":\"\xc0\xaf\"}"),
	} {
		t.Run(name, func(t *testing.T) {
			a := expectError(t, request(t, http.MethodPost, broadcastURL, body, bearer(secretA)...), http.StatusBadRequest)
			if !strings.Contains(a.Message, "UTF-8") {
				t.Fatalf("want the message to say UTF-8, got %q", a.Message)
			}
		})
	}
}

func TestPublishSchemaErrors(t *testing.T) {
	loadMain(t)
	cases := []struct {
		name, body, field string
	}{
		{"missing type", `{"channel":"default","payload":{}}`, "type"},
		{"empty type", `{"type":""}`, "type"},
		{"long type", fmt.Sprintf(`{"type":%q}`, strings.Repeat("t", 201)), "type"},
		{"control character in type", `{"type":"a\u0007b"}`, "type"},
		{"reserved type", `{"type":"realtime:welcome"}`, "type"},
		{"reserved pusher type", `{"type":"pusher:subscribe"}`, "type"},
		{"reserved pusher internal type", `{"type":"pusher_internal:member_added"}`, "type"},
		{"type not a string", `{"type":7}`, "type"},
		{"bad channel", `{"type":"x","channel":"bad channel!"}`, "channel"},
		{"empty channel", `{"type":"x","channel":""}`, "channel"},
		{"long channel", fmt.Sprintf(`{"type":"x","channel":%q}`, strings.Repeat("c", 165)), "channel"},
		{"bad channels item", `{"type":"x","channels":["ok","no/slash"]}`, "channels"},
		{"channel and channels", `{"type":"x","channel":"a","channels":["b"]}`, "channel"},
		{"batch item", `[{"type":"x"},{"channel":"a"}]`, "[1].type"},
		{"not an object", `"just a string"`, "event"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := expectError(t, request(t, http.MethodPost, broadcastURL, []byte(c.body), bearer(secretA)...), http.StatusBadRequest)
			if !strings.Contains(a.Message, c.field) {
				t.Fatalf("want the message to name field %q, got %q", c.field, a.Message)
			}
		})
	}
}

// TestPublishCheckOrder pins DESIGN.md's order: method, credentials,
// content type, size, JSON, schema. Each request is wrong in two or more
// ways; the answer must be the earliest check's.
func TestPublishCheckOrder(t *testing.T) {
	loadMain(t)
	badJSON := []byte(`{"type":`)
	bigBadJSON := append(append([]byte{}, oversized("default")...), badJSON...)
	tooManyBad := []byte(`[{"channel":"a"},{"channel":"b"},{"channel":"c"},{"channel":"d"}]`)
	cases := []struct {
		name    string
		method  string
		body    []byte
		headers []string
		status  int
	}{
		{"GET without credentials nor content type", http.MethodGet, nil, nil, http.StatusMethodNotAllowed},
		{"bad credentials and bad content type", http.MethodPost, badJSON, []string{"Authorization", "Bearer nope", "Content-Type", "text/plain"}, http.StatusUnauthorized},
		{"no credentials and oversized body", http.MethodPost, oversized("default"), jsonCT, http.StatusUnauthorized},
		{"good credentials, wrong content type, bad JSON", http.MethodPost, badJSON, []string{"Authorization", "Bearer " + secretA, "Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"signed, wrong content type, bad JSON", http.MethodPost, badJSON, []string{"X-Realtime-Signature", sign(secretA, time.Now().Unix(), badJSON), "Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"good credentials, wrong content type, oversized", http.MethodPost, oversized("default"), []string{"Authorization", "Bearer " + secretA, "Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"oversized and invalid JSON", http.MethodPost, bigBadJSON, bearer(secretA), http.StatusRequestEntityTooLarge},
		{"batch over max_batch with schema errors", http.MethodPost, tooManyBad, bearer(secretA), http.StatusRequestEntityTooLarge},
		{"invalid JSON", http.MethodPost, badJSON, bearer(secretA), http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectError(t, request(t, c.method, broadcastURL, c.body, c.headers...), c.status)
		})
	}
}

// TestPublishRecipeBody: the recipe's body, with no channel, goes to the
// default channel, its type, payload and timestamp unchanged.
func TestPublishRecipeBody(t *testing.T) {
	loadMain(t)
	sub := dial(t, "/realtime/ws?channels=default", nil)
	sub.Welcome("default")
	payload := `{"title": "Hello", "message": "A <b>new</b> post", "n": [1, 2.5, {"x": null}], "ok": true}`
	body := `{"type": "new_notification", "payload": ` + payload + `, "timestamp": "2026-11-26 16:00:00"}`
	a := publish(t, body)
	if len(a.Events) != 1 || a.Events[0].Channel != "default" {
		t.Fatalf("recipe body: want one event on channel default, got %+v", a)
	}
	f := sub.ExpectEvent("default", "new_notification")
	if f.Timestamp != "2026-11-26 16:00:00" {
		t.Fatalf("timestamp changed: got %q", f.Timestamp)
	}
	// The payload is the same JSON value (encoding/json may escape <, > and
	// & as \u003c...; JSON.parse reads the same string).
	var want, got any
	_ = json.Unmarshal([]byte(payload), &want)
	if err := json.Unmarshal(f.Payload, &got); err != nil || !reflect.DeepEqual(want, got) {
		t.Fatalf("payload changed:\nwant %s\ngot  %s", payload, f.Payload)
	}
	if f.Cursor != a.Events[0].Cursor {
		t.Fatalf("event cursor %q, publish answered %q", f.Cursor, a.Events[0].Cursor)
	}
	// The recipe's JS reads these fields and no others.
	var m map[string]any
	_ = json.Unmarshal(f.Raw, &m)
	if _, ok := m["id"]; ok {
		t.Fatalf("an event published without id carries one: %s", f)
	}
}

func TestPublishChannels(t *testing.T) {
	loadMain(t)
	a, b := uniq("multi-a"), uniq("multi-b")
	subA, subB := subscriber(t, a), subscriber(t, b)
	both := dial(t, "/realtime/ws?channels="+a+","+b, nil)
	both.Welcome(a, b)
	ans := publish(t, fmt.Sprintf(`{"channels":[%q,%q],"type":"fanned","payload":{"k":1}}`, a, b))
	if len(ans.Events) != 2 || ans.Events[0].Channel != a || ans.Events[1].Channel != b || ans.Events[0].Cursor == ans.Events[1].Cursor {
		t.Fatalf("want one event per channel with distinct cursors, got %+v", ans)
	}
	fa := subA.ExpectEvent(a, "fanned")
	fb := subB.ExpectEvent(b, "fanned")
	if fa.Cursor != ans.Events[0].Cursor || fb.Cursor != ans.Events[1].Cursor {
		t.Fatalf("cursors: answer %+v, events %s / %s", ans.Events, fa.Cursor, fb.Cursor)
	}
	both.ExpectEvent(a, "fanned")
	both.ExpectEvent(b, "fanned")
}

func TestPublishBatch(t *testing.T) {
	loadMain(t)
	a, b := uniq("batch-a"), uniq("batch-b")
	sub := dial(t, "/realtime/ws?channels="+a+","+b, nil)
	sub.Welcome(a, b)
	ans := publish(t, "["+event(a, "first")+","+event(b, "second")+","+event(a, "third")+"]")
	want := []struct{ ch, typ string }{{a, "first"}, {b, "second"}, {a, "third"}}
	if len(ans.Events) != len(want) {
		t.Fatalf("batch of 3: want 3 events in the answer, got %+v", ans)
	}
	for i, w := range want {
		if ans.Events[i].Channel != w.ch {
			t.Fatalf("answer event %d: want channel %s, got %+v", i, w.ch, ans.Events[i])
		}
		f := sub.ExpectEvent(w.ch, w.typ)
		if f.Cursor != ans.Events[i].Cursor {
			t.Fatalf("event %d: cursor %q, answer %q", i, f.Cursor, ans.Events[i].Cursor)
		}
	}
}

// TestPublishErrorsAreJSON: every refusal of the publish API is JSON, never
// an HTML page from a later handler (this site ends in an HTML respond).
func TestPublishErrorsAreJSON(t *testing.T) {
	loadMain(t)
	cases := []struct {
		name    string
		method  string
		body    []byte
		headers []string
		status  int
	}{
		{"405", http.MethodGet, nil, nil, 405},
		{"401", http.MethodPost, []byte(`{}`), jsonCT, 401},
		{"415", http.MethodPost, []byte(`{}`), []string{"Authorization", "Bearer " + secretA, "Content-Type", "text/html"}, 415},
		{"413", http.MethodPost, oversized("x"), bearer(secretA), 413},
		{"400", http.MethodPost, []byte(`<html>`), bearer(secretA), 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := request(t, c.method, broadcastURL, c.body, append([]string{"Accept", "text/html"}, c.headers...)...)
			expectError(t, r, c.status)
		})
	}
	// The admin API's publish answers the same way.
	r := request(t, http.MethodPost, adminBase+"/realtime/hubs/default/publish", []byte(`{"type":`), jsonCT...)
	expectError(t, r, http.StatusBadRequest)
}

// TestPublishRejectedPublishesNothing: after every kind of refused request
// for a channel, its subscriber's next event is the next good publish.
func TestPublishRejectedPublishesNothing(t *testing.T) {
	loadMain(t)
	ch := uniq("nothing")
	sub := subscriber(t, ch)
	good := []byte(event(ch, "rejected"))
	now := time.Now().Unix()
	batchTooBig := []byte("[" + strings.Repeat(event(ch, "rejected")+",", 3) + event(ch, "rejected") + "]")
	halfValid := []byte("[" + event(ch, "rejected") + `,{"channel":"` + ch + `"}]`)
	halfValidChannels := []byte(fmt.Sprintf(`[{"channels":[%q],"type":"rejected"},{"channels":[%q,"bad name"],"type":"rejected"}]`, ch, ch))
	rejected := []struct {
		name    string
		method  string
		body    []byte
		headers []string
	}{
		{"GET", http.MethodGet, good, bearer(secretA)},
		{"wrong bearer", http.MethodPost, good, bearer("wrong")},
		{"no credentials", http.MethodPost, good, jsonCT},
		{"bad HMAC", http.MethodPost, good, signed("wrong", now, good)},
		{"stale signature", http.MethodPost, good, signed(secretA, now-3600, good)},
		{"wrong content type", http.MethodPost, good, []string{"Authorization", "Bearer " + secretA, "Content-Type", "text/plain"}},
		{"oversized", http.MethodPost, oversized(ch), bearer(secretA)},
		{"batch over max_batch", http.MethodPost, batchTooBig, bearer(secretA)},
		{"batch with one bad item", http.MethodPost, halfValid, bearer(secretA)},
		{"batch with one bad channel", http.MethodPost, halfValidChannels, bearer(secretA)},
		{"invalid JSON after a valid event", http.MethodPost, append(append([]byte{}, good...), '{'), bearer(secretA)},
	}
	for _, c := range rejected {
		r := request(t, c.method, broadcastURL, c.body, c.headers...)
		if r.status == http.StatusOK {
			t.Fatalf("%s: want a refusal, got %s", c.name, r)
		}
	}
	publish(t, event(ch, "accepted"))
	f := sub.Next(5 * time.Second)
	if f.Type != "accepted" {
		t.Fatalf("a refused publish delivered an event: want the good event first, got %s", f)
	}
}

// TestPublishIdempotentID: a repeated id is answered 200 duplicate:true with
// the original cursors and delivers nothing.
func TestPublishIdempotentID(t *testing.T) {
	loadMain(t)
	a, b := uniq("idem-a"), uniq("idem-b")
	sub := dial(t, "/realtime/ws?channels="+a+","+b, nil)
	sub.Welcome(a, b)
	id := uniq("7f9c2a1e-key")
	first := publish(t, fmt.Sprintf(`{"channels":[%q,%q],"type":"once","id":%q,"payload":1}`, a, b, id))
	// The second body differs: the first one wins.
	second := publish(t, fmt.Sprintf(`{"channels":[%q,%q],"type":"twice","id":%q,"payload":2}`, a, b, id))
	if len(first.Events) != 2 || first.Events[0].Duplicate || first.Events[1].Duplicate {
		t.Fatalf("first publish: want 2 events, not duplicate, got %+v", first)
	}
	if len(second.Events) != 2 {
		t.Fatalf("repeat: want the original 2 events, got %+v", second)
	}
	for i := range first.Events {
		if !second.Events[i].Duplicate {
			t.Fatalf("repeat: want duplicate:true, got %+v", second.Events[i])
		}
		if second.Events[i].Cursor != first.Events[i].Cursor || second.Events[i].Channel != first.Events[i].Channel {
			t.Fatalf("repeat: want the original cursors %+v, got %+v", first.Events, second.Events)
		}
	}
	f := sub.ExpectEvent(a, "once")
	if f.ID != id {
		t.Fatalf("event id: want %q, got %q", id, f.ID)
	}
	sub.ExpectEvent(b, "once")
	publish(t, event(a, "sentinel"))
	if f := sub.Next(5 * time.Second); f.Type != "sentinel" {
		t.Fatalf("a duplicate publish was delivered: want the sentinel next, got %s", f)
	}
}
