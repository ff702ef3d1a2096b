package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

func TestMarkLostBy(t *testing.T) {
	x, y := hub.Position{Hi: 10, Lo: 0}, hub.Position{Hi: 20, Lo: 0}
	m := &mark{epoch: "e", n: 8, id: x}
	for _, c := range []struct {
		epoch string
		n     int64
		last  hub.Position
		lost  bool
	}{
		{"e", 8, x, false},  // the same
		{"e", 9, y, false},  // further on
		{"e", 7, x, true},   // the count went back
		{"e", 8, y, true},   // the same count, another entry: lost, then as many new
		{"f", 0, x, false},  // another epoch: not comparable
		{"e", 20, y, false}, // far on: the check of the entries read tells
	} {
		if got := m.lostBy(c.epoch, c.n, c.last); got != c.lost {
			t.Errorf("lostBy(%s, %d, %v) = %v", c.epoch, c.n, c.last, got)
		}
	}
	if (*mark)(nil).lostBy("e", 0, x) || (&mark{epoch: "e", n: 0}).lostBy("e", 0, y) {
		t.Error("no mark, or the mark of an empty epoch, cannot be lost")
	}
}

// retarget points the proxy at another server and breaks its connections:
// to its clients, the primary changed.
func (p *proxy) retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	p.setCut(true)
	p.setCut(false)
}

// A failover to a replica that had not received the last acknowledged
// events: the node that had them (node A, whose appends and reads were
// acknowledged by the old primary) declares the loss in a new epoch, and
// the node that never saw them (node C, which reads the replica) learns of
// it: both report a gap (their clients resync), and a cursor of the lost
// events resumes with recovered:false. Appends carry on in the new epoch.
func TestFailoverLossDeclared(t *testing.T) {
	primary, replica := startPrimaryReplica(t)
	pr := newProxy(t, primary.Addr())
	const prefix = "lost:"
	a, ra, err := startLog(t, fmt.Sprintf("redis://%s/0?prefix=%s", pr.addr(), prefix))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		appendOne(t, a, pub("c", fmt.Sprintf("e%d", i), ""))
	}
	waitFor(t, "replicated", 5*time.Second, func() bool {
		n, _ := testenv.RedisCommand(replica.Addr(), "XLEN", prefix+"{test}:stream")
		return n == ":3"
	})
	c, rc, err := startLog(t, fmt.Sprintf("redis://%s/0?prefix=%s", replica.Addr(), prefix))
	if err != nil {
		t.Fatal(err)
	}
	for i := 4; i <= 5; i++ {
		appendOne(t, a, pub("c", fmt.Sprintf("e%d", i), ""))
	}
	waitFor(t, "C reads e4, e5 from the replica", 5*time.Second, func() bool { return rc.count() == 2 })

	// The replica stops receiving: the primary acknowledges e6..e8 alone.
	if line, err := testenv.RedisCommand(replica.Addr(), "REPLICAOF", "NO", "ONE"); err != nil || line != "+OK" {
		t.Fatalf("REPLICAOF NO ONE: %q %v", line, err)
	}
	var lastCursor hub.Cursor
	for i := 6; i <= 8; i++ {
		lastCursor = appendOne(t, a, pub("c", fmt.Sprintf("e%d", i), fmt.Sprintf("id-%d", i))).Cursors[0]
	}
	waitFor(t, "A reads e1..e8", 5*time.Second, func() bool { return ra.count() == 8 })
	if g := a.Gaps() + c.Gaps(); g != 0 {
		t.Fatalf("%d gaps before the failover", g)
	}

	// The failover: A's primary is now the replica, which never got e6..e8.
	pr.retarget(replica.Addr())
	primary.Kill()
	waitFor(t, "A declares the loss", 10*time.Second, func() bool { return a.LostEpochs() == 1 })
	waitFor(t, "both nodes resync their clients", 10*time.Second, func() bool { return a.Gaps() >= 1 && c.Gaps() >= 1 })
	if n := c.LostEpochs(); n != 0 {
		t.Errorf("C declared %d losses; it saw none", n)
	}
	for name, l := range map[string]*Log{"A": a, "C": c} {
		head, _ := l.Head(context.Background())
		if head.Epoch == lastCursor.Epoch {
			t.Errorf("node %s is still in the lost epoch", name)
		}
		_, _, ok, err := l.Range(context.Background(), lastCursor, head, 100, nil)
		if err != nil || ok {
			t.Errorf("node %s: a cursor of the lost events resumed (ok=%v, %v)", name, ok, err)
		}
	}
	// Publishing carries on, in the new epoch, on both nodes.
	got := appendOne(t, a, pub("c", "after", ""))
	if got.Cursors[0].Epoch == lastCursor.Epoch {
		t.Fatal("an append after the loss in the old epoch")
	}
	waitFor(t, "delivery after the loss", 5*time.Second, func() bool {
		_, ea := ra.snapshot()
		_, ec := rc.snapshot()
		return len(ea) > 0 && ea[len(ea)-1].Type == "after" && len(ec) > 0 && ec[len(ec)-1].Type == "after"
	})
	// A publisher that got no answer for e8 retries it with its id, through
	// C: the new primary never had it, so it is appended again. C's
	// clients get it for the first time; A's had it and do not get it
	// again.
	if again := appendOne(t, c, pub("c", "e8", "id-8")); again.Duplicate {
		t.Fatal("the new primary knew the lost event's id")
	}
	appendOne(t, a, pub("c", "last", ""))
	waitFor(t, "delivery of the retry", 5*time.Second, func() bool {
		_, ea := ra.snapshot()
		_, ec := rc.snapshot()
		return len(ea) > 0 && ea[len(ea)-1].Type == "last" && len(ec) > 0 && ec[len(ec)-1].Type == "last"
	})
	if n := a.Retries(); n != 1 {
		t.Errorf("node A held back %d retries, want 1", n)
	}
	_, ec := rc.snapshot()
	if got := strings.Join(types(ec), ","); got != "e4,e5,after,e8,last" {
		t.Errorf("node C delivered %s", got)
	}
	// Nothing twice: every node's events in order, each once.
	for name, r := range map[string]*recorder{"A": ra, "C": rc} {
		_, evs := r.snapshot()
		seen := map[string]bool{}
		for _, e := range evs {
			if seen[e.Type] {
				t.Errorf("node %s delivered %s twice", name, e.Type)
			}
			seen[e.Type] = true
		}
	}
}
