package hub

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// joinLimited is join for a session that takes refusals over the member
// limit, as the Pusher protocol's do.
func joinLimited(t testing.TB, h *Hub, p *Policy, user, channel string) (*Session, *fakeConn) {
	t.Helper()
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{}})
	s.Subscribe([]string{channel}, SubscribeOptions{Token: "u:" + user, MemberLimit: true})
	return s, c
}

// refusedOver reports whether c was refused channel over the member limit.
func refusedOver(c *fakeConn, channel string) bool {
	for _, m := range c.msgs() {
		if m["type"] == "realtime:error" && m["code"] == CodeMemberLimit && m["channel"] == channel {
			return true
		}
	}
	return false
}

// TestPresenceMemberLimit: with MemberLimit, the join that would take a
// channel over presence_max_members is refused with member_limit, and
// nothing else happens: no member, no event to the others, no
// subscription. The same user on a second connection is no new member, a
// session that takes no refusal still joins (counts only from then on),
// and once a member has left there is room again.
func TestPresenceMemberLimit(t *testing.T) {
	h, p := newPresenceHub(t, PresenceConfig{LeaveDelay: time.Hour, MaxMembers: 2})
	const ch = "presence-full"
	_, ca := joinLimited(t, h, p, "a", ch)
	sb, cb := joinLimited(t, h, p, "b", ch)
	waitView(t, ca, ch, "a,b")
	waitView(t, cb, ch, "a,b")

	sc, cc := joinLimited(t, h, p, "c", ch)
	waitFor(t, "c refused", func() bool { return refusedOver(cc, ch) })
	if _, ok := sc.SubscribedAs(ch); ok {
		t.Fatal("a refused session is subscribed")
	}
	if n := len(presenceMsgs(cc, ch)); n != 0 {
		t.Fatalf("the refused session got presence messages: %v", presenceMsgs(cc, ch))
	}
	if got := storeIDs(t, h, ch); got != "a,b" {
		t.Fatalf("store lists %q after a refusal, want a,b", got)
	}
	// Events on the channel do not reach it either.
	publish(t, h, ch, "after", `1`)
	waitFor(t, "the event at a", func() bool { return len(ca.events()) == 1 })
	if len(cc.events()) != 0 {
		t.Fatal("a refused session got the channel's events")
	}

	// A second connection of a member is no new member.
	_, cb2 := joinLimited(t, h, p, "b", ch)
	waitView(t, cb2, ch, "a,b")

	// A refused user on a second connection is refused again; its hold
	// is forgotten with the refused subscriptions.
	_, cc2 := joinLimited(t, h, p, "c", ch)
	waitFor(t, "c refused again", func() bool { return refusedOver(cc2, ch) })
	h.mu.Lock()
	_, held := h.presence.holds[holdKey{ch, "c"}]
	h.mu.Unlock()
	if held {
		t.Fatal("a refused hold is kept")
	}

	// b leaves (both tabs): there is room for c.
	sb.Finish()
	for s := range sessionsOf(h, "b") {
		s.Finish()
	}
	expireLingers(h)
	waitView(t, ca, ch, "a")
	_, cc3 := joinLimited(t, h, p, "c", ch)
	waitView(t, cc3, ch, "a,c")
	waitView(t, ca, ch, "a,c")

	// A session that takes no refusal joins over the limit, as it would
	// on the module's own protocol: counts only from then on.
	join(t, h, p, "d", ch)
	waitFor(t, "counts only at a", func() bool {
		v := mustView(t, ca, ch)
		return !v.listed && v.count == 3
	})
	if got := storeIDs(t, h, ch); got != "a,c,d" {
		t.Fatalf("store lists %q, want a,c,d", got)
	}
	if refusedOver(ca, ch) || refusedOver(cb, ch) {
		t.Fatal("a member was refused")
	}
}

// TestPresenceMemberLimitZero: with presence_max_members 0 every join of a
// session that takes refusals is refused: none can be listed.
func TestPresenceMemberLimitZero(t *testing.T) {
	h, p := newPresenceHub(t, PresenceConfig{LeaveDelay: time.Hour, MaxMembers: 0})
	s, c := joinLimited(t, h, p, "a", "presence-x")
	waitFor(t, "refused", func() bool { return refusedOver(c, "presence-x") })
	if _, ok := s.SubscribedAs("presence-x"); ok {
		t.Fatal("subscribed")
	}
}

// TestPresenceMemberLimitMixedHold: a connection that takes no refusal
// and a limited one of the same user on one node, joining a full channel
// together: the user joins (the unlimited one needs it), and the limited
// one is not refused, since its user is a member after all.
func TestPresenceMemberLimitMixedHold(t *testing.T) {
	h, p := newPresenceHub(t, PresenceConfig{LeaveDelay: time.Hour, MaxMembers: 1})
	const ch = "presence-one"
	_, ca := joinLimited(t, h, p, "a", ch)
	waitView(t, ca, ch, "a")
	_, cu := join(t, h, p, "u", ch)
	_, cl := joinLimited(t, h, p, "u", ch)
	waitFor(t, "u's views", func() bool {
		return mustView(t, cu, ch).count == 2 && mustView(t, cl, ch).count == 2
	})
	if refusedOver(cl, ch) {
		t.Fatal("the limited connection of a member was refused")
	}
}

// TestPresenceMemberLimitRace: many users, some with two connections,
// join a channel at once: exactly the limit become members, every
// connection of a member is in, every connection of another user is
// refused, and no refused hold stays behind.
func TestPresenceMemberLimitRace(t *testing.T) {
	const limit, users, ch = 5, 20, "presence-race"
	h, p := newPresenceHub(t, PresenceConfig{LeaveDelay: time.Hour, MaxMembers: limit})
	type conn struct {
		user string
		s    *Session
		c    *fakeConn
	}
	conns := make(chan conn, 2*users)
	var wg sync.WaitGroup
	for i := range 2 * users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := strconv.Itoa(i % users)
			s, c := joinLimited(t, h, p, user, ch)
			conns <- conn{user, s, c}
		}()
	}
	wg.Wait()
	close(conns)
	members := storeIDs(t, h, ch)
	if n := len(strings.Split(members, ",")); n != limit {
		t.Fatalf("store lists %q, want %d members", members, limit)
	}
	isMember := map[string]bool{}
	for _, id := range strings.Split(members, ",") {
		isMember[id] = true
	}
	for c := range conns {
		if isMember[c.user] {
			waitView(t, c.c, ch, members)
			continue
		}
		waitFor(t, "user "+c.user+" refused", func() bool { return refusedOver(c.c, ch) })
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, hd := range h.presence.holds {
		if hd.refused || (k.user != "" && !isMember[k.user]) {
			t.Fatalf("hold %v kept: %+v", k, hd)
		}
	}
}
