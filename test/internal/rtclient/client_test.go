package rtclient

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// script is what the test server sends after the upgrade, then it closes
// with 1013.
var script = []struct {
	mt   int
	data string
}{
	{websocket.TextMessage, `{"type":"realtime:welcome","connection_id":"c1","cursor":"e-0-0","ping_interval":30}`},
	{websocket.TextMessage, `{"type":"realtime:subscribed","channel":"news"}`},
	{websocket.TextMessage, `{"type":"tick","channel":"news","cursor":"e-1-0","payload":{"n":1}}`},
	{websocket.BinaryMessage, `{"type":"tick"}`},
	{websocket.TextMessage, `not json`},
}

// scriptServer upgrades, answers one realtime:ping with a pong, sends
// script and closes with 1013 once the client sent "close me".
func scriptServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "http://app.example" {
			http.Error(w, `{"status":"error"}`, http.StatusForbidden)
			return
		}
		conn, err := (&websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, m := range script {
			if conn.WriteMessage(m.mt, []byte(m.data)) != nil {
				return
			}
		}
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if strings.Contains(string(data), "close me") {
				_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "slow"))
				time.Sleep(100 * time.Millisecond)
				return
			}
			_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"realtime:pong"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func TestClientQueueAndEnd(t *testing.T) {
	url := scriptServer(t)
	if _, r, err := TryDial(t, url, Options{}); err == nil || r == nil || r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "error") {
		t.Fatalf("refused handshake: want 403 and its body, got %v %v", r, err)
	}
	c := Dial(t, url, Options{Origin: "http://app.example"})
	w := c.Welcome("news")
	if w.ConnectionID != "c1" || w.PingInterval == nil || *w.PingInterval != 30 {
		t.Fatalf("welcome decoded as %+v", w)
	}
	// What Next took is gone from the queue; the rest stays.
	if !c.WaitFor(5*time.Second, func(fs []Frame) bool { return len(fs) == 3 }) {
		t.Fatalf("queue %s, want the event, the binary and the non-JSON message", Describe(c.Frames()))
	}
	ev := c.Events()
	if len(ev) != 1 || ev[0].Cursor != "e-1-0" {
		t.Fatalf("events %s, want the tick only", Describe(ev))
	}
	var p struct{ N int }
	if err := ev[0].DecodePayload(&p); err != nil || p.N != 1 {
		t.Fatalf("payload %s: %v", ev[0].Payload, err)
	}
	c.ExpectEvent("news", "tick")
	if f := c.Next(time.Second); f.Type != TypeBinary || f.IsEvent() {
		t.Fatalf("binary message taken as %+v", f)
	}
	if f := c.Next(time.Second); f.Type != TypeNotJSON || f.String() != "not json" {
		t.Fatalf("non-JSON message taken as %+v", f)
	}
	c.Ping()
	if _, ended := c.Ended(); ended {
		t.Fatal("ended while open")
	}
	c.Send(map[string]string{"type": "close me"})
	c.ExpectClose(websocket.CloseTryAgainLater)
	if e, ended := c.Ended(); !ended || e.Code != websocket.CloseTryAgainLater || e.Text != "slow" || e.At.IsZero() {
		t.Fatalf("end %+v %v", e, ended)
	}
}

func TestClientManual(t *testing.T) {
	c := Dial(t, scriptServer(t), Options{Origin: "http://app.example", Manual: true})
	f, err := c.ReadOne(5 * time.Second)
	if err != nil || f.Type != "realtime:welcome" {
		t.Fatalf("ReadOne: %+v %v", f, err)
	}
	if _, ended := c.Ended(); ended {
		t.Fatal("a manual client without its reader reports an end")
	}
	c.Start()
	c.Start()
	if !c.WaitEvents(1, 5*time.Second) {
		t.Fatalf("after Start: %s", Describe(c.Frames()))
	}
	if fs := c.Frames(); fs[0].Type != "realtime:welcome" {
		t.Fatalf("what ReadOne read is not queued first: %s", Describe(fs))
	}
	if w, rec := c.WaitSubscribed("news"); w.Cursor != "e-0-0" || rec["news"] {
		t.Fatalf("WaitSubscribed: %+v %v", w, rec)
	}
}
