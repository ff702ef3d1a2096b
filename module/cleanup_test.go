package module_test

import (
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ourFrame matches a stack frame in the product's packages (not in tests).
var ourFrame = regexp.MustCompile(`github\.com/wprealtime/caddy-realtime/module(/hub|/redis)?\.`)

// ourGoroutines returns the stacks of goroutines running the product's code.
func ourGoroutines() []string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if ourFrame.MatchString(g) {
			out = append(out, g)
		}
	}
	return out
}

// TestNoGoroutineOutlivesCleanup connects clients, publishes, then loads a
// config that names no hub: every hub is destroyed, its clients get 1001,
// and no goroutine of the module or the engine is left behind.
func TestNoGoroutineOutlivesCleanup(t *testing.T) {
	loadConfig(t, `{`+globalOptions+`}
http://localhost:9080 {
	realtime_ws /leak/ws {
		hub leak
		ping_interval 200ms
	}
	realtime_broadcast /leak/pub {
		hub leak
		secret leak-secret
	}
}
`)
	dialer := websocket.Dialer{NetDialContext: loopbackDial, HandshakeTimeout: 5 * time.Second}
	var conns []*websocket.Conn
	for i := 0; i < 20; i++ {
		c, _, err := dialer.Dial(wsBase+"/leak/ws?channels=a,b", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequest(http.MethodPost, httpBase+"/leak/pub", strings.NewReader(fmt.Sprintf(`{"channel":"a","type":"t","payload":%d}`, i)))
		req.Header.Set("Authorization", "Bearer leak-secret")
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish: %d", resp.StatusCode)
		}
	}
	if len(ourGoroutines()) == 0 {
		t.Fatal("no goroutine of the module while clients are connected: the filter is broken")
	}

	loadConfig(t, `{`+globalOptions+`}
http://localhost:9080 {
	respond "no hub here" 200
}
`)
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var code int
		for code == 0 {
			if _, _, err := c.ReadMessage(); err != nil {
				if ce, ok := err.(*websocket.CloseError); ok {
					code = ce.Code
				} else {
					t.Fatalf("client %d: %v, want a close frame", i, err)
				}
			}
		}
		if code != websocket.CloseGoingAway {
			t.Fatalf("client %d: close %d, want 1001", i, code)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := ourGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the module outlived Cleanup:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
