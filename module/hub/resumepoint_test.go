package hub

import (
	"testing"
	"time"
)

// pointCodec is the test codec with a resume point, as SSE has.
type pointCodec struct{ testCodec }

func (pointCodec) ResumePoint(c Cursor) []byte {
	return line(map[string]any{"type": "realtime:resume_point", "cursor": c.String()})
}

// connectWith is connect with another codec.
func connectWith(t testing.TB, h *Hub, c Codec, o ConnectOptions) *fakeConn {
	t.Helper()
	fc := newFakeConn()
	s, err := h.Admit(&Policy{SendQueue: 64}, c, "")
	if err != nil {
		t.Fatal(err)
	}
	fc.s = s
	s.Start(fc, o)
	return fc
}

// resumePoint returns the cursor of the last resume point received, and
// whether it came after the channel's subscribed answer.
func resumePoint(c *fakeConn, channel string) (cursor string, afterSubscribed bool) {
	subscribed := false
	for _, m := range c.msgs() {
		switch m["type"] {
		case "realtime:subscribed":
			subscribed = subscribed || m["channel"] == channel
		case "realtime:resume_point":
			cursor, afterSubscribed = m["cursor"].(string), subscribed
		}
	}
	return cursor, afterSubscribed
}

// A client that keeps its resume point from messages (SSE's Last-Event-ID)
// and resumes gets the point it is live from: after a resume that could
// not be recovered, its next reconnect must not ask for the same lost
// cursor again; after one that could, with nothing to replay, its cursor
// must not stay behind until history no longer reaches it.
func TestResumeSendsResumePoint(t *testing.T) {
	h, _ := newTestHub(t, 100)
	defer h.Close(DisconnectShutdown, 0, time.Second)
	publish(t, h, "c", "before", "")
	head := h.Head().String()

	c := connectWith(t, h, pointCodec{}, ConnectOptions{Channels: []string{"c"}, Since: "gone-1-1"})
	waitFor(t, "the resume point after recovered:false", func() bool {
		got, after := resumePoint(c, "c")
		return got == head && after
	})

	c = connectWith(t, h, pointCodec{}, ConnectOptions{Channels: []string{"c"}, Since: head})
	waitFor(t, "the resume point after recovered:true", func() bool {
		got, after := resumePoint(c, "c")
		return got == head && after
	})

	// A codec without one gets nothing more.
	c = connectWith(t, h, testCodec{}, ConnectOptions{Channels: []string{"c"}, Since: "gone-1-1"})
	waitFor(t, "the subscribed answer", func() bool { return len(c.msgs()) >= 2 })
	if got, _ := resumePoint(c, "c"); got != "" {
		t.Fatalf("a codec without resume points got one: %s", got)
	}
}
