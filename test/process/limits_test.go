package process_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// Smaller rules that a hostile or unlucky client meets at the edges:
// token expiry and its leeway, answers to invalid requests, refused
// handshakes that end their connection, and signed publishes replayed
// within the signature tolerance.

// tokenLeeway is the clock difference tolerated on a token's exp
// (module/internal/token.Leeway).
const tokenLeeway = 5 * time.Second

func TestTokenExpiryAndLeeway(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	site := fmt.Sprintf("\trealtime_ws /ws {\n\t\ttoken_secret %s\n\t}", tokenSecret)
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 100), site), port, admin)

	t.Run("a token inside the leeway is accepted", func(t *testing.T) {
		c := rtclient.Dial(t, p.wsURL("/ws", "channels=lobby"), rtclient.Options{})
		c.Welcome("lobby")
		tok := rtclient.Token(t, tokenSecret, []string{"private-a"}, time.Now().Add(-2*time.Second))
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": "private-a", "token": tok})
		if f := c.Next(5 * time.Second); f.Type != "realtime:subscribed" || f.Channel != "private-a" {
			t.Fatalf("a token 2 s past its exp (leeway %v): got %s, want subscribed", tokenLeeway, f)
		}
	})
	t.Run("a grant that has expired answers token_expired", func(t *testing.T) {
		// Inside the leeway at the handshake, so its grant lasts one more
		// second: private-a is granted; private-b, asked for after that
		// second, is covered by the same grant, which has expired.
		exp := time.Now().Add(-tokenLeeway + time.Second)
		tok := rtclient.Token(t, tokenSecret, []string{"private-a", "private-b"}, exp)
		c := rtclient.Dial(t, p.wsURL("/ws", "channels=private-a"), rtclient.Options{Header: http.Header{"Authorization": {"Bearer " + tok}}})
		c.Welcome("private-a")
		time.Sleep(time.Until(exp.Add(tokenLeeway + 200*time.Millisecond)))
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": "private-b"})
		c.ExpectError("token_expired", "private-b")
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": "private-c"})
		c.ExpectError("forbidden", "private-c")
	})
	t.Run("a token past the leeway is expired", func(t *testing.T) {
		c := rtclient.Dial(t, p.wsURL("/ws", "channels=lobby"), rtclient.Options{})
		c.Welcome("lobby")
		tok := rtclient.Token(t, tokenSecret, []string{"private-a"}, time.Now().Add(-tokenLeeway-2*time.Second))
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": "private-a", "token": tok})
		c.ExpectError("token_expired", "private-a")
	})
}

func TestUnsubscribeInvalidNameAnswered(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 100), "\trealtime_ws /ws"), port, admin)
	c := rtclient.Dial(t, p.wsURL("/ws", "channels=a"), rtclient.Options{})
	c.Welcome("a")
	c.Send(map[string]any{"type": "realtime:unsubscribe", "channels": []string{"bad name!", "a"}})
	c.ExpectError("bad_request", "")
	if f := c.Expect("realtime:unsubscribed"); f.Channel != "a" {
		t.Fatalf("want unsubscribed a, got %s", f)
	}
}

// A handshake refused for a connection limit (429, 503) is answered and its
// connection closed, so that a flood of refused handshakes cannot hold
// descriptors for Caddy's idle timeout (5 minutes).
func TestRefusedHandshakeClosesConnection(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	hubs := hubBlock("capped", 100) + "\n" + hubBlock("perip", 100)
	site := `	realtime_ws /capped {
		hub capped
		max_connections 1
	}
	realtime_ws /perip {
		hub perip
		max_connections_per_ip 1
	}`
	p := startCaddy(t, caddyfile(admin, port, hubs, site), port, admin)
	for _, tc := range []struct {
		path   string
		status int
	}{{"/capped", 503}, {"/perip", 429}} {
		t.Run(tc.path, func(t *testing.T) {
			rtclient.Dial(t, p.wsURL(tc.path, ""), rtclient.Options{}).Expect("realtime:welcome")
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.port), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", tc.path, p.port)
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("want %d with Retry-After, got %s %s", tc.status, resp.Status, body)
			}
			// The server ends the connection after the answer.
			n, err := br.Read(make([]byte, 1))
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("the connection is still open 3 s after the %d answer (Connection: %q)", tc.status, resp.Header.Get("Connection"))
			case !errors.Is(err, io.EOF):
				t.Fatalf("after the answer: read %d bytes, %v; want the end of the connection", n, err)
			}
		})
	}
}

// A signed publish can be sent again, as it was, within the signature
// tolerance (the signature covers the timestamp and the body, nothing
// that makes a request unique): with an id, the copy is answered
// duplicate:true and delivers nothing.
func TestSignedPublishReplayWithID(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	site := fmt.Sprintf("\trealtime_ws /ws\n\trealtime_broadcast /pub {\n\t\tsecret %s\n\t}", secret)
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 100), site), port, admin)
	c := rtclient.Dial(t, p.wsURL("/ws", "channels=r"), rtclient.Options{})
	c.Welcome("r")
	body := []byte(`{"channel":"r","type":"t","id":"replayed-1","payload":{"n":1}}`)
	ts := time.Now().Unix()
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	sig := fmt.Sprintf("t=%d,v1=%x", ts, m.Sum(nil))
	var answers []publishAnswer
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest(http.MethodPost, p.siteURL("/pub"), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Realtime-Signature", sig)
		resp, err := p.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var a publishAnswer
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(a.Events) != 1 {
			t.Fatalf("signed publish %d: %s, %+v, %v", i, resp.Status, a, err)
		}
		answers = append(answers, a)
	}
	if answers[0].Events[0].Duplicate || !answers[1].Events[0].Duplicate || answers[0].Events[0].Cursor != answers[1].Events[0].Cursor {
		t.Fatalf("want a first publish and then a duplicate with its cursor, got %+v", answers)
	}
	c.Send(map[string]string{"type": "realtime:ping"})
	c.ExpectEvent("r", "t")
	c.Expect("realtime:pong")
}
