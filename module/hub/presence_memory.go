package hub

import (
	"context"
	"sort"
	"sync"
	"time"
)

// MemoryPresence is the in-memory PresenceStore, for a hub on one node. It
// honours the contract of a store shared by nodes with one node in it: a
// member is added by the node's first Join of a user and removed by its
// Leave, every change has a position, and it delivers each change, and
// queues its webhook, in the same step as it decides it (under its lock, so
// delivery order is decision order, as MemoryLog does for events).
type MemoryPresence struct {
	mu       sync.Mutex
	epoch    string
	seq      uint64 // position of the last change
	deliver  func([]PresenceChange)
	channels map[string]*memoryChannel
	occupied map[string]struct{}
	queue    *MemoryWebhookQueue
	now      func() time.Time
}

// memoryChannel is the members of one channel.
type memoryChannel struct {
	members map[string]memoryMember
}

type memoryMember struct {
	m   Member
	seq uint64 // when it joined: snapshots list members in join order
}

// NewMemoryPresence returns an empty store that queues its webhooks to q.
func NewMemoryPresence(q *MemoryWebhookQueue) *MemoryPresence {
	return &MemoryPresence{
		epoch:    NewEpoch(),
		channels: make(map[string]*memoryChannel),
		occupied: make(map[string]struct{}),
		queue:    q,
		now:      time.Now,
	}
}

// Start implements PresenceStore.
func (p *MemoryPresence) Start(n PresenceNode) error {
	p.mu.Lock()
	p.deliver = n.Deliver
	p.mu.Unlock()
	return nil
}

// posLocked is the position of the last change.
func (p *MemoryPresence) posLocked() Cursor { return Cursor{Epoch: p.epoch, Pos: Position{Hi: p.seq}} }

// Join implements PresenceStore.
func (p *MemoryPresence) Join(_ context.Context, channel string, m Member, o JoinOptions) (PresenceResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := p.channels[channel]
	if ch == nil {
		ch = &memoryChannel{members: make(map[string]memoryMember)}
		p.channels[channel] = ch
	}
	if _, ok := ch.members[m.ID]; ok {
		return PresenceResult{Pos: p.posLocked(), Count: len(ch.members)}, nil
	}
	if o.Limit > 0 && len(ch.members) >= o.Limit {
		if len(ch.members) == 0 {
			delete(p.channels, channel)
		}
		return PresenceResult{Pos: p.posLocked(), Refused: true, Count: len(ch.members)}, nil
	}
	p.seq++
	ch.members[m.ID] = memoryMember{m: m, seq: p.seq}
	c := PresenceChange{Pos: p.posLocked(), Channel: channel, Added: true, Member: m, Count: len(ch.members)}
	p.changedLocked(c, o.Hooks, WebhookMemberAdded, "member_added")
	return PresenceResult{Pos: c.Pos, Changed: true, Count: c.Count}, nil
}

// Leave implements PresenceStore.
func (p *MemoryPresence) Leave(_ context.Context, channel, user string, hooks WebhookSet) (PresenceResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := p.channels[channel]
	if ch == nil {
		return PresenceResult{Pos: p.posLocked()}, nil
	}
	if _, ok := ch.members[user]; !ok {
		return PresenceResult{Pos: p.posLocked(), Count: len(ch.members)}, nil
	}
	delete(ch.members, user)
	if len(ch.members) == 0 {
		delete(p.channels, channel)
	}
	p.seq++
	c := PresenceChange{Pos: p.posLocked(), Channel: channel, Member: Member{ID: user}, Count: len(ch.members)}
	p.changedLocked(c, hooks, WebhookMemberRemoved, "member_removed")
	return PresenceResult{Pos: c.Pos, Changed: true, Count: c.Count}, nil
}

// changedLocked queues the change's webhook, if wanted, and delivers it.
func (p *MemoryPresence) changedLocked(c PresenceChange, hooks, kind WebhookSet, name string) {
	if hooks.Has(kind) && p.queue != nil {
		p.queue.mu.Lock()
		p.queue.addLocked(WebhookEvent{Name: name, Channel: c.Channel, UserID: c.Member.ID, Time: p.now()})
		p.queue.mu.Unlock()
	}
	if p.deliver != nil {
		p.deliver([]PresenceChange{c})
	}
}

// Occupy implements PresenceStore.
func (p *MemoryPresence) Occupy(_ context.Context, channel string, hooks WebhookSet) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.occupied[channel]; ok {
		return nil
	}
	p.occupied[channel] = struct{}{}
	p.hookLocked(hooks, WebhookChannelOccupied, "channel_occupied", channel)
	return nil
}

// Vacate implements PresenceStore.
func (p *MemoryPresence) Vacate(_ context.Context, channel string, hooks WebhookSet) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.occupied[channel]; !ok {
		return nil
	}
	delete(p.occupied, channel)
	p.hookLocked(hooks, WebhookChannelVacated, "channel_vacated", channel)
	return nil
}

func (p *MemoryPresence) hookLocked(hooks, kind WebhookSet, name, channel string) {
	if !hooks.Has(kind) || p.queue == nil {
		return
	}
	p.queue.mu.Lock()
	p.queue.addLocked(WebhookEvent{Name: name, Channel: channel, Time: p.now()})
	p.queue.mu.Unlock()
}

// Snapshot implements PresenceStore. Members are listed in join order.
func (p *MemoryPresence) Snapshot(_ context.Context, channel string, max int) (PresenceState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PresenceState{Pos: p.posLocked()}
	ch := p.channels[channel]
	if ch == nil {
		st.Members = []Member{} // nobody: a list, even under a limit of 0
		return st, nil
	}
	st.Count = len(ch.members)
	if max >= 0 && st.Count > max {
		return st, nil
	}
	ms := make([]memoryMember, 0, len(ch.members))
	for _, m := range ch.members {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	st.Members = make([]Member, len(ms))
	for i, m := range ms {
		st.Members[i] = m.m
	}
	return st, nil
}

// Close implements PresenceStore.
func (p *MemoryPresence) Close() error {
	p.mu.Lock()
	p.deliver = nil
	p.mu.Unlock()
	return nil
}

var _ PresenceStore = (*MemoryPresence)(nil)
