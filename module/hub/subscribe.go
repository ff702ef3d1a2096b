package hub

import (
	"context"
	"sync/atomic"
	"time"
)

// SubscribeOptions qualify a subscribe request.
type SubscribeOptions struct {
	// Resume asks for the events after Since; an unparsable Since is a
	// resume that cannot be recovered.
	Since  string
	Resume bool
	// Token, when given, is verified and its grant kept before access to
	// private channels is checked.
	Token string
	// SingleUse makes Token's grant serve this request only: it is not
	// kept for later ones, and its refusal is not remembered. The Pusher
	// protocol's auth signatures are per subscription and per socket, so
	// keeping them would only cost memory.
	SingleUse bool
	// Member is for protocols that authorise each subscription themselves
	// (the Pusher protocol's auth signature, checked before the call): the
	// channels are granted without a token, and Member is the session's
	// member on presence channels (a Member with no ID grants the other
	// channels only). Its Info must be normalised (NormalizeInfo). Nil:
	// tokens decide, and the member of a presence channel is the granting
	// token's sub and info.
	Member *Member
	// MemberLimit refuses a join of a presence channel that would give it
	// more members than the hub's presence_max_members: the subscription
	// is answered CodeMemberLimit instead. For wire formats that cannot
	// show a channel by its count alone (the Pusher protocol); decided by
	// the presence store, so it holds across nodes.
	MemberLimit bool
}

// subscription is one channel of a session; while it catches up from
// history it is not yet among the channel's live subscribers.
type subscription struct {
	channel   string
	live      bool   // among the channel's subscribers in hub.channels
	user      string // the member on a presence channel; "" on others
	announced bool   // presence: its snapshot was asked for (announcePresenceLocked)
	limited   bool   // presence: refused over the member limit (SubscribeOptions.MemberLimit)
	// gone is set, before the unsubscribed answer is queued, when the
	// subscription is removed (or its session ends): a catch-up that is
	// still replaying it stops, so that no event of it follows that answer
	// and a client that subscribes and unsubscribes over and over never has
	// more than one replay per subscription running.
	gone atomic.Bool
}

// maxGrants bounds the tokens a session keeps: every token a client sends
// adds what it grants, so without a bound a client could grow the server's
// memory with each subscribe message. A token that grants what a kept one
// grants replaces it (a refreshed token); beyond the bound the oldest goes.
const maxGrants = 4

// maxStalls bounds the catch-up steps in a row that make no progress (1 ms
// apart) before the subscription gives up with NotRecovered.
const maxStalls = 1000

// replayBatch is how many history events one Range call returns.
const replayBatch = 256

// Subscribe checks and registers channels. Without a resume they join live
// at the current head; with one they first catch up from history. Every
// channel is answered: subscribed, or an error. The answers wait for room
// in the queue (reply), so Subscribe may wait for the client to read: call
// it from the goroutine that handles the client's messages (or Start), with
// no lock held.
func (s *Session) Subscribe(channels []string, o SubscribeOptions) {
	var tokenErr error
	var once *Grant
	switch {
	case o.Token != "" && o.SingleUse:
		once, tokenErr = s.verifyToken(o.Token)
	case o.Token != "":
		tokenErr = s.addToken(o.Token)
	}
	h := s.hub
	var subs []*subscription
	var ops []*presenceOp
	for _, name := range channels {
		if !ValidChannel(name) {
			s.reply(s.codec.Error(ErrorMessage{Code: CodeBadRequest, Message: "invalid channel name: " + channelRule, Channel: truncate(name, maxChannelLen)}))
			continue
		}
		presence := h.IsPresence(name)
		var member *Member
		if o.Member != nil {
			member = o.Member
		} else {
			g, code, msg := s.access(name, presence, tokenErr, once)
			if code != "" {
				s.reply(s.codec.Error(ErrorMessage{Code: code, Message: msg, Channel: name}))
				continue
			}
			if presence {
				// The member comes from the token alone: a client cannot
				// announce anybody else.
				member = &Member{ID: g.Subject, Info: g.Info}
			}
		}
		if !presence {
			member = nil
		} else if member.ID == "" {
			s.reply(s.codec.Error(ErrorMessage{Code: CodeForbidden, Message: errAnonymousPresence, Channel: name}))
			continue
		} else if max := h.pconfig.Load().MaxMembers; o.MemberLimit && max == 0 {
			s.reply(s.codec.Error(memberLimitError(name, max)))
			continue
		}
		h.mu.Lock()
		if s.detached {
			// The session's end (or a resync) has dropped its
			// subscriptions already: nothing would ever drop these.
			h.mu.Unlock()
			s.Disconnect(DisconnectGap)
			break
		}
		dup := s.subs.get(name) != nil
		full := !dup && s.policy.MaxSubscriptions > 0 && len(s.subs) >= s.policy.MaxSubscriptions
		if !dup && !full {
			sub := &subscription{channel: name, limited: o.MemberLimit && member != nil}
			s.subs.add(sub)
			subs = append(subs, sub)
			h.stats.Subscriptions.Add(1)
			ops = h.addSubscriptionLocked(sub, member, ops)
		}
		h.mu.Unlock()
		switch {
		case dup:
			// Already subscribed: acknowledge; it keeps receiving. On a
			// presence channel the acknowledgement is followed by the
			// snapshot again (the Pusher protocol acknowledges with it).
			r := NoResume
			if o.Resume {
				r = Recovered
			}
			s.reply(s.codec.Subscribed(name, r))
			h.mu.Lock()
			h.resendSnapshotLocked(s, name)
			h.startFlushLocked()
			h.mu.Unlock()
		case full:
			s.reply(s.codec.Error(ErrorMessage{Code: CodeTooManySubscriptions, Message: "subscription limit reached", Channel: name}))
		}
	}
	if len(subs) == 0 {
		return
	}
	// Presence first: the store hears of the join, and a first joiner on
	// this node fetches the channel's snapshot, before the subscription is
	// announced.
	h.runPresenceOps(ops)
	if o.MemberLimit {
		var refused []*subscription
		h.mu.Lock()
		subs, refused = h.dropRefusedLocked(s, subs)
		h.mu.Unlock()
		max := h.pconfig.Load().MaxMembers
		for _, sub := range refused {
			s.reply(s.codec.Error(memberLimitError(sub.channel, max)))
		}
		if len(subs) == 0 {
			return
		}
	}
	h.prepareMirrors(subs)
	if !o.Resume {
		s.catchUp(subs, h.Head(), catchUpFresh)
		return
	}
	from, err := ParseCursor(o.Since)
	if err != nil {
		s.goLive(subs, NotRecovered)
		return
	}
	s.catchUp(subs, from, catchUpResume)
}

// Unsubscribe removes channels; each is acknowledged, or answered
// bad_request when its name is invalid. Like Subscribe, it may wait for the
// client to read.
func (s *Session) Unsubscribe(channels []string) {
	h := s.hub
	for _, name := range channels {
		if !ValidChannel(name) {
			s.reply(s.codec.Error(ErrorMessage{Code: CodeBadRequest, Message: "invalid channel name: " + channelRule, Channel: truncate(name, maxChannelLen)}))
			continue
		}
		h.mu.Lock()
		if sub := s.subs.remove(name); sub != nil {
			sub.gone.Store(true)
			h.unsubscribeLocked(s, name)
			h.dropSubscriptionLocked(s, sub)
			h.stats.Subscriptions.Add(-1)
		}
		h.mu.Unlock()
		s.reply(s.codec.Unsubscribed(name))
	}
}

// SendError answers a refused request.
func (s *Session) SendError(e ErrorMessage) { s.queueControl(s.codec.Error(e)) }

// reply queues one of the answers to a request once the queue has room. A
// request may name many channels (a connect up to max_subscriptions of
// them), each answered on its own: waiting before each answer makes them
// flow at the pace the client reads instead of overflowing the queue. It
// must not be called with a lock held.
func (s *Session) reply(msg []byte) {
	if s.WaitForRoom() {
		s.queueControl(msg)
	}
}

// Pong answers the protocol's ping message.
func (s *Session) Pong() { s.queueControl(s.codec.Pong()) }

// verifyToken verifies a token with the policy's verifier.
func (s *Session) verifyToken(token string) (*Grant, error) {
	if s.policy.Tokens == nil {
		return nil, ErrTokenInvalid
	}
	return s.policy.Tokens.Verify(token)
}

// addToken verifies a token and keeps its grant.
func (s *Session) addToken(token string) error {
	g, err := s.verifyToken(token)
	if err != nil {
		s.tokenErr = err
		return err
	}
	// The latest token's verdict is the one errors report.
	s.tokenErr = nil
	for i, kept := range s.grants {
		if kept.sameAccess(g) {
			s.grants[i] = g
			return nil
		}
	}
	if len(s.grants) >= maxGrants {
		copy(s.grants, s.grants[1:])
		s.grants = s.grants[:len(s.grants)-1]
	}
	s.grants = append(s.grants, g)
	return nil
}

// errAnonymousPresence answers a presence subscription without a user.
const errAnonymousPresence = "presence channels need a token with a sub claim"

// access returns the grant that lets the session subscribe to channel (nil
// for a public channel), or the error code and message to answer with.
// Presence channels are always private, and need a grant with a subject:
// the newest such grant is the one whose subject and info make the member.
// once, when not nil, is the request's single-use grant, newer than any
// kept.
func (s *Session) access(channel string, presence bool, tokenErr error, once *Grant) (g *Grant, code, msg string) {
	if !presence && !s.IsPrivate(channel) {
		return nil, "", ""
	}
	if s.policy.Tokens == nil {
		return nil, CodeForbidden, "private channels are not enabled"
	}
	now := time.Now()
	expired, anonymous := false, false
	grants := s.grants
	if once != nil {
		grants = append(grants[:len(grants):len(grants)], once)
	}
	for i := len(grants) - 1; i >= 0; i-- {
		g := grants[i]
		if g.Allows(channel, now) {
			if !presence || g.Subject != "" {
				return g, "", ""
			}
			anonymous = true
			continue
		}
		expired = expired || (g.Covers(channel) && !now.Before(g.Expires))
	}
	if tokenErr == nil {
		tokenErr = s.tokenErr
	}
	switch {
	case tokenErr != nil:
		return nil, TokenErrorCode(tokenErr), tokenErr.Error()
	case anonymous:
		return nil, CodeForbidden, errAnonymousPresence
	case expired:
		return nil, CodeTokenExpired, ErrTokenExpired.Error()
	}
	return nil, CodeForbidden, "no token grants this channel"
}

// catchUpMode says what a catch-up tells the client.
type catchUpMode uint8

const (
	catchUpFresh  catchUpMode = iota // a new subscription, live from the head: NoResume
	catchUpResume                    // a resume the client asked for: Recovered or NotRecovered
	catchUpLag                       // a session that fell behind: silent, 1013 if it cannot catch up
)

// catchUp replays history after from for subs, then makes them live with no
// gap and no duplicate: a subscription joins the live set only under the
// hub lock, at the moment the hub's head is where the replay ended. The
// first step runs on the caller's goroutine; if there is history to send,
// the rest runs on its own goroutine, flow-controlled by the send queue.
func (s *Session) catchUp(subs []*subscription, from Cursor, mode catchUpMode) {
	h := s.hub
	byChannel := make(map[string]*subscription, len(subs))
	for _, sub := range subs {
		byChannel[sub.channel] = sub
	}
	match := func(channel string) bool {
		sub := byChannel[channel]
		return sub != nil && !sub.gone.Load()
	}
	allGone := func() bool {
		for _, sub := range subs {
			if !sub.gone.Load() {
				return false
			}
		}
		return true
	}
	pos := from
	first := true
	stalls := 0
	step := func() (done bool) {
		if allGone() {
			return true
		}
		upTo := h.Head()
		events, next, complete, err := h.log.Range(context.Background(), pos, upTo, replayBatch, match)
		if complete && err == nil && len(events) == 0 && next == pos && next != upTo {
			// The log made no progress towards the head: give it a moment,
			// but never spin forever on a log that cannot catch up.
			if stalls++; stalls > maxStalls {
				complete = false
			} else {
				time.Sleep(time.Millisecond)
			}
		}
		if err != nil || !complete {
			// The log cannot prove the replay complete: from the start
			// (old or foreign cursor) or because history moved past it.
			if mode == catchUpLag {
				s.Disconnect(DisconnectSlowConsumer)
				return true
			}
			if first || mode == catchUpResume {
				h.stats.FailedRecoveries.Add(1)
			}
			s.goLive(subs, NotRecovered)
			return true
		}
		if first {
			first = false
			if mode != catchUpLag {
				r := NoResume
				if mode == catchUpResume {
					r = Recovered
				}
				for _, sub := range subs {
					s.reply(s.codec.Subscribed(sub.channel, r))
				}
				s.announcePresence(subs)
			}
		}
		for _, e := range events {
			sub := byChannel[e.Channel]
			if sub == nil || e.Exclude != "" && e.Exclude == s.id {
				continue
			}
			if !s.queueReplay(e.Wire(s.codec), &sub.gone) {
				return true
			}
		}
		h.stats.Replayed.Add(int64(len(events)))
		pos = next
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.head != pos {
			return false
		}
		live := false
		for _, sub := range subs {
			if s.subs.get(sub.channel) == sub {
				h.subscribeLocked(s, sub.channel)
				live = true
			}
		}
		if live && mode == catchUpResume {
			s.queueResumePointLocked(h.head)
		}
		return true
	}
	if step() {
		return
	}
	go func() {
		for !step() {
		}
	}()
}

// goLive makes subs live at the current head and announces them with r,
// one at a time as the queue has room: each announcement is queued under
// the hub lock together with its subscription joining the live set, so
// that it comes before the channel's events.
func (s *Session) goLive(subs []*subscription, r Recovery) {
	h := s.hub
	for _, sub := range subs {
		if !s.WaitForRoom() {
			return
		}
		h.mu.Lock()
		if s.subs.get(sub.channel) == sub {
			h.subscribeLocked(s, sub.channel)
			s.queueControl(s.codec.Subscribed(sub.channel, r))
			if r == NotRecovered {
				s.queueResumePointLocked(h.head)
			}
			h.announcePresenceLocked(s, sub)
			h.startFlushLocked()
		}
		h.mu.Unlock()
	}
}

// queueResumePointLocked tells a client whose codec keeps its resume point
// from messages that it has everything up to head (ResumePointer). h.mu is
// held, so that no event after head comes before it.
func (s *Session) queueResumePointLocked(head Cursor) {
	if rp, ok := s.codec.(ResumePointer); ok && head.Epoch != "" {
		if msg := rp.ResumePoint(head); msg != nil {
			s.queueControl(msg)
		}
	}
}

// announcePresence starts the snapshots of subs' presence channels, once
// their realtime:subscribed is queued.
func (s *Session) announcePresence(subs []*subscription) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sub := range subs {
		h.announcePresenceLocked(s, sub)
	}
	h.startFlushLocked()
}

// lagLocked takes a session that fell behind out of the live set and has it
// catch up from the log after from, at the pace it reads. h.mu is held.
func (s *Session) lagLocked(from Cursor) {
	h := s.hub
	subs := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		if sub.live {
			h.unsubscribeLocked(s, sub.channel)
			subs = append(subs, sub)
		}
	}
	// The flag only kept this delivery's later events from the session;
	// subscriptions made from now on are live and queue as usual.
	s.mu.Lock()
	s.lagging = false
	s.mu.Unlock()
	h.stats.Lagged.Add(1)
	if len(subs) > 0 {
		go s.catchUp(subs, from, catchUpLag)
	}
}
