package integration

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// ourFrame matches a stack frame in the product's packages under module/
// (not in tests, nor in test/internal/rtclient's readers).
var ourFrame = regexp.MustCompile(`github\.com/wprealtime/caddy-realtime/module(/[\w/]+)?\.`)

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

// fewestGoroutines is the fewest goroutines of the product seen over d:
// the settled number, without the short-lived ones.
func fewestGoroutines(d time.Duration) int {
	fewest := len(ourGoroutines())
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		fewest = min(fewest, len(ourGoroutines()))
	}
	return fewest
}

// TestNoGoroutineOutlivesCleanup connects clients, publishes, then loads a
// config that names no hub: every hub is destroyed, its clients get 1001,
// and no goroutine of the module or the engine is left behind.
func TestNoGoroutineOutlivesCleanup(t *testing.T) {
	loadConfig(t, `{`+globalOptions+`
	realtime {
		hub leak
	}
}
`+httpBase+` {
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
	var conns []*rtclient.Client
	for i := 0; i < 20; i++ {
		conns = append(conns, rtclient.Dial(t, wsBase+"/leak/ws?channels=a,b", rtclient.Options{}))
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
`+httpBase+` {
	respond "no hub here" 200
}
`)
	for i, c := range conns {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d: still open 5s after its hub's handlers went, want a close frame", i)
		}
		e, _ := c.Ended()
		var ce *websocket.CloseError
		if !errors.As(e.Err, &ce) {
			t.Fatalf("client %d: %v, want a close frame", i, e.Err)
		}
		if ce.Code != websocket.CloseGoingAway {
			t.Fatalf("client %d: close %d, want 1001", i, ce.Code)
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
