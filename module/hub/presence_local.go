package hub

import (
	"context"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

// The node's side of presence: what this node holds, the leave delay, a
// mirror of each presence channel that has local members, and the frames
// its sessions get. Everything here is guarded by Hub.mu; calls to the
// store are made without it (runPresenceOps, fetchMirror).

// presenceState is a hub's presence on this node.
type presenceState struct {
	// Set by New, never changed.
	store PresenceStore
	queue WebhookQueue

	hooks     WebhookSet    // what the webhook targets want
	wanted    atomic.Uint32 // hooks, for readers without Hub.mu (WantsWebhook)
	occupancy bool          // channel holds are kept: occupied/vacated webhooks are on
	pos       Cursor        // position of the last change delivered
	holds     map[holdKey]*hold
	chans     map[string]*presenceChannel
	waiting   map[*presenceChannel]struct{} // channels with sessions waiting for a snapshot

	lingers lingerQueue
	gen     uint64 // last lingerGen given out
	timer   *time.Timer
	timerAt time.Time // when timer fires; zero when it is not armed
}

// holdKey names something a node holds: a user on a presence channel, or,
// with user "", a channel with subscribers (occupancy).
type holdKey struct {
	channel, user string
}

// hold is a holdKey's state on this node. Connections come and go on it;
// the store hears only of a hold's start and its end (after the leave
// delay), one call at a time: busy says one is under way, and when it
// returns reconcileLocked compares what the store knows (joined) with what
// is wanted, and makes the next call if they differ.
//
// Subscriptions that take a refusal (SubscribeOptions.MemberLimit) are
// counted in limited too: while all of a hold's subscriptions do, its join
// asks the store to refuse a new member beyond the member limit. A refused
// hold joins no more; its subscriptions are answered with an error and
// dropped, and it is forgotten with the last of them (or joins after all,
// without the limit, when a subscription that takes no refusal comes).
type hold struct {
	key       holdKey
	info      []byte // the member's info, as the first connection gave it
	conns     int    // this node's subscriptions on it
	limited   int    // of conns, those that take a refusal over the member limit
	lingerGen uint64 // non-zero while its leave delay runs
	joined    bool   // the store counts this node as holding it
	busy      bool   // a store call for it is under way
	failed    bool   // the last store call failed; a retry is scheduled
	refused   bool   // the store refused the join: over the member limit
	joinPos   Cursor // the store's position when it joined
}

func (hd *hold) wanted() bool { return hd.conns > 0 || hd.lingerGen != 0 }

// presenceOp is a store call to make for a hold.
type presenceOp struct {
	hd    *hold
	join  bool // Join or Occupy; else Leave or Vacate
	hooks WebhookSet
	limit int // Join: JoinOptions.Limit
}

// presenceChannel is a presence channel with members held by this node: a
// mirror of its members, kept by the changes the store delivers, and the
// sessions that get its frames.
type presenceChannel struct {
	name  string
	users int // member holds of this node on it; the channel goes at 0

	// The mirror. It is ready once it holds a snapshot; until then (and
	// while a new one is fetched) changes are buffered while a fetch is
	// under way, and dropped otherwise: the next snapshot has them.
	ready    bool
	fetching bool
	again    bool // a resync came during the fetch: its snapshot may be of before the cause
	relisted bool // a snapshot was fetched again for its members: take the next as it is
	reset    bool // when the fetch ends, send the snapshot to every receiver
	snapPos  Cursor
	count    int
	members  map[string]mirrorMember // nil above the member limit: counts only
	seq      uint64                  // join order within the mirror
	buffered []PresenceChange

	list []Member           // members in join order, built on demand
	wire [maxFormats][]byte // the snapshot, encoded per format on demand

	receivers map[*Session]struct{} // sessions that got the snapshot: they get the changes
	waiters   []presenceWaiter      // sessions waiting for their snapshot

	lastCount  time.Time   // when presence_count was last sent
	countTimer *time.Timer // a presence_count that waits for its second
}

type mirrorMember struct {
	m   Member
	seq uint64
}

// presenceWaiter is a session that subscribed to a presence channel and
// waits for a snapshot that lists its own user.
type presenceWaiter struct {
	s   *Session
	sub *subscription
}

// presenceCallTimeout bounds one store call.
const presenceCallTimeout = 5 * time.Second

// presenceRetry is how long a failed store call waits before it is tried
// again.
const presenceRetry = time.Second

// initPresence gives the hub its store and webhook queue: the log's, when it
// keeps presence for several nodes, else in-memory ones.
func (h *Hub) initPresence(log Log) {
	cfg := DefaultPresenceConfig()
	h.pconfig.Store(&cfg)
	p := &h.presence
	if pl, ok := log.(PresenceLog); ok {
		p.store, p.queue = pl.Presence(), pl.Webhooks()
	} else {
		q := NewMemoryWebhookQueue(DefaultWebhookQueueSize, &h.stats.WebhooksDropped)
		p.store, p.queue = NewMemoryPresence(q), q
	}
	p.holds = make(map[holdKey]*hold)
	p.chans = make(map[string]*presenceChannel)
	p.waiting = make(map[*presenceChannel]struct{})
}

// startPresence starts the store's delivery to this hub.
func (h *Hub) startPresence() error {
	return h.presence.store.Start(PresenceNode{Deliver: h.deliverPresence, Resync: h.resyncPresence, Held: h.heldPresence})
}

// holdLocked counts a new subscription on k, cancelling its leave delay,
// and returns the store call to make, if any. limited says whether the
// subscription takes a refusal over the member limit. h.mu is held.
func (h *Hub) holdLocked(k holdKey, m Member, limited bool) *presenceOp {
	p := &h.presence
	hd := p.holds[k]
	if hd == nil {
		hd = &hold{key: k, info: m.Info}
		p.holds[k] = hd
		if k.user != "" {
			h.presenceChannelLocked(k.channel).users++
			h.stats.PresenceMembers.Add(1)
		}
	}
	hd.conns++
	if limited {
		hd.limited++
	}
	hd.lingerGen = 0
	return h.reconcileLocked(hd)
}

// unholdLocked counts a subscription on k gone; the last one starts the
// leave delay (a refused hold, which has no member to keep, goes at once).
// h.mu is held.
func (h *Hub) unholdLocked(k holdKey, limited bool) {
	hd := h.presence.holds[k]
	if hd == nil || hd.conns == 0 {
		return
	}
	hd.conns--
	if limited && hd.limited > 0 {
		hd.limited--
	}
	switch {
	case hd.conns > 0:
	case hd.refused:
		h.forgetHoldLocked(hd)
	default:
		h.lingerLocked(hd)
	}
}

// reconcileLocked returns the store call that brings the store to what
// this node wants of hd, or lets hd go when neither wants it. h.mu is held.
func (h *Hub) reconcileLocked(hd *hold) *presenceOp {
	if hd.busy || hd.failed {
		return nil
	}
	if hd.refused {
		switch {
		case hd.conns > hd.limited:
			// A subscription that takes no refusal: it joins after all.
			hd.refused = false
		case hd.conns == 0:
			h.forgetHoldLocked(hd)
			return nil
		default:
			return nil // its subscriptions are being refused
		}
	}
	want := hd.wanted()
	if hd.key.user == "" && !h.presence.occupancy {
		// Occupancy webhooks were turned off: forget without a word.
		want, hd.joined = false, false
	}
	switch {
	case want && !hd.joined:
		if h.closed {
			return nil
		}
		hd.busy = true
		op := &presenceOp{hd: hd, join: true, hooks: h.presence.hooks}
		if hd.key.user != "" && hd.conns > 0 && hd.conns == hd.limited {
			op.limit = h.pconfig.Load().MaxMembers
		}
		return op
	case !want && hd.joined:
		if h.closed {
			// A closing node's holds are the store's to expire (a store
			// shared by nodes), or die with the hub (in memory).
			return nil
		}
		hd.busy = true
		return &presenceOp{hd: hd, hooks: h.presence.hooks}
	case !want:
		h.forgetHoldLocked(hd)
	}
	return nil
}

// forgetHoldLocked drops a hold that neither this node nor the store has.
func (h *Hub) forgetHoldLocked(hd *hold) {
	p := &h.presence
	if p.holds[hd.key] != hd {
		return
	}
	delete(p.holds, hd.key)
	if hd.key.user == "" {
		return
	}
	h.stats.PresenceMembers.Add(-1)
	if pc := p.chans[hd.key.channel]; pc != nil {
		if pc.users--; pc.users <= 0 {
			h.dropPresenceChannelLocked(pc)
		}
	}
}

// runPresenceOps makes store calls, one after the other, and whatever
// calls their results lead to. It is called without h.mu.
func (h *Hub) runPresenceOps(ops []*presenceOp) {
	store := h.presence.store
	for len(ops) > 0 {
		op := ops[0]
		ops = ops[1:]
		k := op.hd.key
		ctx, cancel := context.WithTimeout(context.Background(), presenceCallTimeout)
		var res PresenceResult
		var err error
		switch {
		case k.user == "" && op.join:
			err = store.Occupy(ctx, k.channel, op.hooks)
		case k.user == "":
			err = store.Vacate(ctx, k.channel, op.hooks)
		case op.join:
			res, err = store.Join(ctx, k.channel, Member{ID: k.user, Info: op.hd.info}, JoinOptions{Hooks: op.hooks, Limit: op.limit})
		default:
			res, err = store.Leave(ctx, k.channel, k.user, op.hooks)
		}
		cancel()
		h.mu.Lock()
		hd := op.hd
		hd.busy = false
		if err != nil {
			hd.failed = true
			time.AfterFunc(presenceRetry, func() { h.retryHold(hd) })
		} else {
			hd.joined = op.join && !res.Refused
			hd.refused = res.Refused
			if hd.joined {
				hd.joinPos = res.Pos
			}
			if next := h.reconcileLocked(hd); next != nil {
				ops = append(ops, next)
			}
		}
		if pc := h.presence.chans[k.channel]; pc != nil && k.user != "" {
			h.checkWaitersLocked(pc)
		}
		h.startFlushLocked()
		h.mu.Unlock()
	}
}

// retryHold tries a failed store call again.
func (h *Hub) retryHold(hd *hold) {
	h.mu.Lock()
	hd.failed = false
	op := h.reconcileLocked(hd)
	h.mu.Unlock()
	if op != nil {
		h.runPresenceOps([]*presenceOp{op})
	}
}

// presenceChannelLocked returns the channel's state, making it. h.mu is held.
func (h *Hub) presenceChannelLocked(name string) *presenceChannel {
	pc := h.presence.chans[name]
	if pc == nil {
		pc = &presenceChannel{name: name, receivers: make(map[*Session]struct{})}
		h.presence.chans[name] = pc
		h.stats.PresenceChannels.Add(1)
	}
	return pc
}

// dropPresenceChannelLocked forgets a channel this node holds no member of.
func (h *Hub) dropPresenceChannelLocked(pc *presenceChannel) {
	p := &h.presence
	if p.chans[pc.name] != pc {
		return
	}
	delete(p.chans, pc.name)
	delete(p.waiting, pc)
	if pc.countTimer != nil {
		pc.countTimer.Stop()
		pc.countTimer = nil
	}
	h.stats.PresenceChannels.Add(-1)
}

// addSubscriptionLocked counts a new subscription of s for presence and
// occupancy and returns the store calls to make. member is the session's
// member on a presence channel, nil on any other. h.mu is held.
func (h *Hub) addSubscriptionLocked(sub *subscription, member *Member, ops []*presenceOp) []*presenceOp {
	// Occupied before the member is added, as Pusher sends them.
	if h.presence.occupancy {
		if op := h.holdLocked(holdKey{channel: sub.channel}, Member{}, false); op != nil {
			ops = append(ops, op)
		}
	}
	if member != nil {
		sub.user = member.ID
		if op := h.holdLocked(holdKey{sub.channel, member.ID}, *member, sub.limited); op != nil {
			ops = append(ops, op)
		}
	}
	return ops
}

// dropSubscriptionLocked is the reverse of addSubscriptionLocked, for a
// subscription that ends (unsubscribe, or the session's end). h.mu is held.
func (h *Hub) dropSubscriptionLocked(s *Session, sub *subscription) {
	if sub.user != "" {
		if pc := h.presence.chans[sub.channel]; pc != nil {
			delete(pc.receivers, s)
		}
		h.unholdLocked(holdKey{sub.channel, sub.user}, sub.limited)
	}
	if h.presence.occupancy {
		h.unholdLocked(holdKey{channel: sub.channel}, false)
	}
}

// prepareMirrors fetches, on the caller's goroutine, the snapshot of each
// presence channel of subs that has none yet, so that a first joiner gets
// its snapshot with its subscription.
func (h *Hub) prepareMirrors(subs []*subscription) {
	var fetch []*presenceChannel
	h.mu.Lock()
	for _, sub := range subs {
		if sub.user == "" {
			continue
		}
		if pc := h.presence.chans[sub.channel]; pc != nil && !pc.ready && !pc.fetching {
			pc.fetching, pc.buffered = true, nil
			fetch = append(fetch, pc)
		}
	}
	h.mu.Unlock()
	for _, pc := range fetch {
		h.fetchMirror(pc)
	}
}

// refetchLocked takes a new snapshot of a channel in the background; its
// receivers get it as a reset. h.mu is held.
func (h *Hub) refetchLocked(pc *presenceChannel) {
	pc.ready = false
	pc.reset = pc.reset || len(pc.receivers) > 0
	if pc.fetching {
		// The snapshot under way may have been read before whatever made
		// this refetch necessary (a store that changed epochs, say):
		// read another when it comes.
		pc.again = true
		return
	}
	pc.fetching, pc.buffered = true, nil
	go h.fetchMirror(pc)
}

// fetchMirror takes a snapshot of a channel (pc.fetching is set) and
// installs it. It is called without h.mu.
func (h *Hub) fetchMirror(pc *presenceChannel) {
	ctx, cancel := context.WithTimeout(context.Background(), presenceCallTimeout)
	st, err := h.presence.store.Snapshot(ctx, pc.name, h.pconfig.Load().MaxMembers)
	cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.presence.chans[pc.name] != pc || h.closed {
		return // nobody here holds the channel any more
	}
	if err != nil {
		// Buffer afresh: the retry's snapshot is read after every change
		// delivered so far, so none of them could apply to it, and a
		// store that keeps failing must not grow the buffer for good.
		pc.again, pc.buffered = false, nil
		time.AfterFunc(presenceRetry, func() { h.fetchMirror(pc) })
		return
	}
	if n := len(pc.buffered); pc.again || n > 0 && pc.buffered[n-1].Pos.Epoch != st.Pos.Epoch {
		// A resync came while the snapshot was read, or the store
		// delivers another epoch than the snapshot's: it cannot be told
		// which is newer. Read another; what is delivered from now on
		// is buffered for it.
		pc.again, pc.buffered = false, nil
		go h.fetchMirror(pc)
		return
	}
	pc.fetching = false
	h.installLocked(pc, st)
	h.startFlushLocked()
}

// installLocked makes a snapshot the channel's mirror, applies the changes
// delivered after it, and hands out snapshots. h.mu is held.
func (h *Hub) installLocked(pc *presenceChannel, st PresenceState) {
	pc.snapPos, pc.count, pc.seq = st.Pos, st.Count, 0
	pc.members = nil
	if st.Members != nil {
		pc.members = make(map[string]mirrorMember, len(st.Members))
		for _, m := range st.Members {
			pc.seq++
			pc.members[m.ID] = mirrorMember{m: m, seq: pc.seq}
		}
	}
	pc.invalidate()
	for _, c := range pc.buffered {
		if after(c.Pos, st.Pos) {
			h.applyChangeLocked(pc, c, true)
		}
	}
	pc.buffered = nil
	pc.ready = true
	if pc.members != nil {
		pc.relisted = false
	} else if pc.count <= h.pconfig.Load().MaxMembers && !pc.relisted {
		// The limit went up meanwhile: list the members after all. Once:
		// a store that cannot list them (one deciding alone while its
		// backplane is away) answers the same again, and this would
		// fetch in a loop. Until the next change, counts only.
		pc.relisted = true
		h.refetchLocked(pc)
		return
	}
	if pc.reset {
		pc.reset = false
		for s := range pc.receivers {
			h.sendSnapshotLocked(pc, s)
		}
	}
	h.checkWaitersLocked(pc)
}

// after reports whether a change at c comes after a snapshot at snap;
// changes of another epoch do not (the store resyncs on a new epoch).
func after(c, snap Cursor) bool {
	return c.Epoch == snap.Epoch && snap.Pos.Less(c.Pos)
}

// deliverPresence is the store's delivery: it keeps the mirrors and sends
// the changes to the sessions that have their snapshot. It never blocks on
// a session.
func (h *Hub) deliverPresence(changes []PresenceChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := &h.presence
	for _, c := range changes {
		p.pos = c.Pos
		pc := p.chans[c.Channel]
		switch {
		case pc == nil:
		case !pc.ready:
			if pc.fetching {
				pc.buffered = append(pc.buffered, c)
			}
		case c.Pos.Epoch != pc.snapPos.Epoch:
			// The store moved to another epoch: whether the change is
			// news to this snapshot cannot be told. Take a new one.
			h.refetchLocked(pc)
		case after(c.Pos, pc.snapPos):
			// A reader behind the snapshot delivers what it has already.
			h.applyChangeLocked(pc, c, false)
		}
	}
	for pc := range p.waiting {
		h.checkWaitersLocked(pc)
	}
	h.startFlushLocked()
}

// applyChangeLocked applies a change to a ready mirror and, unless silent,
// tells the receivers. h.mu is held.
func (h *Hub) applyChangeLocked(pc *presenceChannel, c PresenceChange, silent bool) {
	max := h.pconfig.Load().MaxMembers
	pc.count = c.Count
	pc.invalidate()
	if pc.members == nil {
		switch {
		case silent:
		case pc.count <= max:
			pc.relisted = false
			h.refetchLocked(pc) // back under the limit: members again
		default:
			h.sendCountLocked(pc)
		}
		return
	}
	if c.Added {
		if _, dup := pc.members[c.Member.ID]; !dup {
			pc.seq++
			pc.members[c.Member.ID] = mirrorMember{m: c.Member, seq: pc.seq}
		}
		if pc.count > max {
			// The join that takes the channel over the limit is announced
			// by a count; from now on counts only.
			pc.members = nil
			if !silent {
				h.sendCountLocked(pc)
			}
			return
		}
		if !silent {
			m, count := c.Member, pc.count
			h.broadcastLocked(pc, func(cd Codec) []byte { return cd.MemberAdded(pc.name, m, count) })
		}
		return
	}
	m := c.Member
	if mm, ok := pc.members[m.ID]; ok {
		m = mm.m // the store sends no info with a removal
		delete(pc.members, m.ID)
	}
	if !silent {
		count := pc.count
		h.broadcastLocked(pc, func(cd Codec) []byte { return cd.MemberRemoved(pc.name, m, count) })
	}
}

// invalidate drops what was built from the mirror.
func (pc *presenceChannel) invalidate() {
	pc.list = nil
	clear(pc.wire[:])
}

// snapshot returns the mirror as a snapshot.
func (pc *presenceChannel) snapshot() PresenceSnapshot {
	snap := PresenceSnapshot{Count: pc.count}
	if pc.members == nil {
		return snap
	}
	if pc.list == nil {
		ms := make([]mirrorMember, 0, len(pc.members))
		for _, m := range pc.members {
			ms = append(ms, m)
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
		pc.list = make([]Member, len(ms))
		for i, m := range ms {
			pc.list[i] = m.m
		}
	}
	snap.Members = pc.list
	return snap
}

// announcePresenceLocked starts a new presence subscription's snapshot,
// right after its realtime:subscribed is queued: the session gets the
// snapshot once the mirror lists its own user, and every change after
// that. h.mu is held.
func (h *Hub) announcePresenceLocked(s *Session, sub *subscription) {
	if sub.user == "" || sub.announced || s.subs.get(sub.channel) != sub {
		return
	}
	sub.announced = true
	pc := h.presence.chans[sub.channel]
	if pc == nil {
		return // the hold keeps the channel while the subscription lasts
	}
	pc.waiters = append(pc.waiters, presenceWaiter{s: s, sub: sub})
	h.presence.waiting[pc] = struct{}{}
	if !pc.ready && !pc.fetching {
		pc.fetching, pc.buffered = true, nil
		go h.fetchMirror(pc)
	}
	h.checkWaitersLocked(pc)
}

// checkWaitersLocked hands out the snapshots that are due: the mirror is
// ready and reflects the store at least up to where the session's user
// joined (so it lists the user, and every later change reaches the
// session after its snapshot, in order). h.mu is held.
func (h *Hub) checkWaitersLocked(pc *presenceChannel) {
	if !pc.ready || len(pc.waiters) == 0 {
		return
	}
	keep := pc.waiters[:0]
	for _, w := range pc.waiters {
		if w.s.subs.get(pc.name) != w.sub {
			continue // unsubscribed, or gone
		}
		hd := h.presence.holds[holdKey{pc.name, w.sub.user}]
		if hd != nil && hd.refused && w.sub.limited {
			h.refuseLocked(w.s, w.sub)
			continue
		}
		if hd != nil && !h.listsLocked(pc, hd) {
			keep = append(keep, w)
			continue
		}
		h.sendSnapshotLocked(pc, w.s)
		pc.receivers[w.s] = struct{}{}
	}
	clear(pc.waiters[len(keep):])
	pc.waiters = keep
	if len(keep) == 0 {
		pc.waiters = nil
		delete(h.presence.waiting, pc)
		// The next joiner usually comes with a change that would drop
		// the encoded snapshot anyway: do not keep it meanwhile.
		pc.invalidate()
	}
}

// refuseLocked ends a subscription whose join the store refused over the
// member limit, and tells its session so. h.mu is held.
func (h *Hub) refuseLocked(s *Session, sub *subscription) {
	if s.subs.get(sub.channel) != sub {
		return
	}
	sub.gone.Store(true)
	h.unsubscribeLocked(s, sub.channel)
	s.subs.remove(sub.channel)
	h.dropSubscriptionLocked(s, sub)
	h.stats.Subscriptions.Add(-1)
	h.noticeLocked(s, s.codec.Error(memberLimitError(sub.channel, h.pconfig.Load().MaxMembers)))
}

// memberLimitError answers a join refused over the member limit.
func memberLimitError(channel string, max int) ErrorMessage {
	return ErrorMessage{Code: CodeMemberLimit, Message: "this presence channel has the most members allowed (" + strconv.Itoa(max) + ")", Channel: channel}
}

// dropRefusedLocked ends those of subs whose join the store refused over
// the member limit, and returns them. h.mu is held.
func (h *Hub) dropRefusedLocked(s *Session, subs []*subscription) (kept, refused []*subscription) {
	kept = subs[:0:0]
	for _, sub := range subs {
		hd := h.presence.holds[holdKey{sub.channel, sub.user}]
		if sub.user == "" || !sub.limited || hd == nil || !hd.refused || s.subs.get(sub.channel) != sub {
			kept = append(kept, sub)
			continue
		}
		sub.gone.Store(true)
		s.subs.remove(sub.channel)
		h.dropSubscriptionLocked(s, sub)
		h.stats.Subscriptions.Add(-1)
		refused = append(refused, sub)
	}
	return kept, refused
}

// WantsWebhook reports whether the hub's webhook targets want events of
// kind k: a protocol that queues its own (client events) asks first.
func (h *Hub) WantsWebhook(k WebhookSet) bool {
	return WebhookSet(h.presence.wanted.Load()).Has(k)
}

// listsLocked reports whether the mirror lists hd's user: the store has it
// and the mirror reflects the store at least up to where it joined. A hold
// whose store call failed does not wait: its session gets what the mirror
// has. h.mu is held.
func (h *Hub) listsLocked(pc *presenceChannel, hd *hold) bool {
	switch {
	case hd.failed:
		return true
	case hd.busy || !hd.joined:
		return false
	case hd.joinPos.Epoch == "":
		return true
	}
	for _, have := range [...]Cursor{pc.snapPos, h.presence.pos} {
		if have.Epoch == hd.joinPos.Epoch && !have.Pos.Less(hd.joinPos.Pos) {
			return true
		}
	}
	return false
}

// sendSnapshotLocked queues the mirror's snapshot to s. h.mu is held.
func (h *Hub) sendSnapshotLocked(pc *presenceChannel, s *Session) {
	f := s.codec.Format()
	msg := pc.wire[f]
	if msg == nil {
		msg = s.codec.Presence(pc.name, pc.snapshot())
		pc.wire[f] = msg
	}
	h.noticeLocked(s, msg)
}

// resendSnapshotLocked sends the mirror's snapshot again to a session that
// has had its own and subscribes to the channel once more; one still
// waiting for its first gets that one. h.mu is held.
func (h *Hub) resendSnapshotLocked(s *Session, channel string) {
	sub := s.subs.get(channel)
	if sub == nil || sub.user == "" {
		return
	}
	pc := h.presence.chans[channel]
	if pc == nil || !pc.ready {
		return
	}
	if _, ok := pc.receivers[s]; ok {
		h.sendSnapshotLocked(pc, s)
	}
}

// broadcastLocked queues a message to the channel's receivers, encoded
// once per wire format. h.mu is held.
func (h *Hub) broadcastLocked(pc *presenceChannel, encode func(Codec) []byte) {
	var enc [maxFormats][]byte
	var done [maxFormats]bool
	for s := range pc.receivers {
		f := s.codec.Format()
		if !done[f] {
			enc[f], done[f] = encode(s.codec), true
		}
		if enc[f] != nil {
			h.noticeLocked(s, enc[f])
		}
	}
}

// countInterval is the least time between two presence_count messages of
// a channel.
const countInterval = time.Second

// sendCountLocked tells the receivers the channel's count, at most once a
// countInterval: a count due sooner waits, and then carries the latest
// count. h.mu is held.
func (h *Hub) sendCountLocked(pc *presenceChannel) {
	if pc.countTimer != nil {
		return // one is due; it will carry this count
	}
	if wait := countInterval - time.Since(pc.lastCount); wait > 0 {
		pc.countTimer = time.AfterFunc(wait, func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			pc.countTimer = nil
			if h.presence.chans[pc.name] != pc || !pc.ready || pc.members != nil {
				return
			}
			h.sendCountLocked(pc)
			h.startFlushLocked()
		})
		return
	}
	pc.lastCount = time.Now()
	count := pc.count
	h.broadcastLocked(pc, func(cd Codec) []byte { return cd.PresenceCount(pc.name, count) })
}

// noticeLocked queues a presence message to s for the flusher. h.mu is held.
func (h *Hub) noticeLocked(s *Session, msg []byte) {
	if s.queueNotice(msg) == queuedFlush {
		h.ready = append(h.ready, s)
	}
}

// resyncPresence takes a new snapshot of every mirrored channel; the
// sessions get it as a reset.
func (h *Hub) resyncPresence() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, hd := range h.presence.holds {
		hd.joinPos = Cursor{} // the store registered it again: any new snapshot lists it
	}
	for _, pc := range h.presence.chans {
		h.refetchLocked(pc)
	}
}

// heldPresence lists what this node holds.
func (h *Hub) heldPresence() []Holding {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Holding, 0, len(h.presence.holds))
	limit := h.pconfig.Load().MaxMembers
	for k, hd := range h.presence.holds {
		if !hd.wanted() || hd.refused {
			continue // a refused hold is not the store's
		}
		hl := Holding{Channel: k.channel, User: k.user, Info: hd.info}
		if k.user != "" && hd.conns > 0 && hd.conns == hd.limited {
			hl.Limit = limit
		}
		out = append(out, hl)
	}
	return out
}

// setWebhooks changes the webhook events the store queues. Turning
// occupancy on counts the subscriptions there are; turning it off forgets
// the channel holds without a word.
func (h *Hub) setWebhooks(hooks WebhookSet) {
	h.mu.Lock()
	p := &h.presence
	p.hooks = hooks
	p.wanted.Store(uint32(hooks))
	occupancy := hooks.Has(WebhookChannelOccupied | WebhookChannelVacated)
	var ops []*presenceOp
	switch {
	case occupancy && !p.occupancy:
		p.occupancy = true
		for k, hd := range p.holds {
			if k.user == "" {
				hd.conns = 0 // counted again below
			}
		}
		for s := range h.sessions {
			for _, sub := range s.subs {
				if op := h.holdLocked(holdKey{channel: sub.channel}, Member{}, false); op != nil {
					ops = append(ops, op)
				}
			}
		}
	case !occupancy && p.occupancy:
		p.occupancy = false
		for k, hd := range p.holds {
			if k.user == "" {
				hd.conns, hd.lingerGen = 0, 0
				h.reconcileLocked(hd)
			}
		}
	}
	h.mu.Unlock()
	h.configureStore()
	if len(ops) > 0 {
		go h.runPresenceOps(ops)
	}
}
