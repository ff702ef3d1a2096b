package redis

import (
	"errors"
	"sort"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// While Redis does not answer, the node decides presence alone, so that
// local presence keeps working: a user whose first connection here joins
// is added, one whose last connection here has been gone for the leave
// delay is removed, and the members other nodes had stay as this node
// last knew them. These decisions are not facts of the whole hub: they
// queue no webhooks, and have positions in an epoch of the node's own, so
// that the hub's mirrors (which it resnapshots when the node goes alone)
// apply them, and nothing from Redis after them without a new snapshot.
// When Redis answers again the node registers what it holds (register):
// the differences become transitions of the whole hub there, with their
// webhooks, and the mirrors take new snapshots of Redis.
//
// What the node knows of a channel is a cache, kept for the channels it
// holds members of: the last snapshot of Redis it took, with the changes
// the reader delivered after it.

// cachedChannel is what this node knows of a channel's members.
type cachedChannel struct {
	known   bool       // filled from a snapshot of Redis, kept by the changes after it
	pos     hub.Cursor // of the snapshot or the last change applied
	count   int
	members map[string]cachedMember // nil: counts only
	seq     uint64
}

type cachedMember struct {
	info []byte
	seq  uint64 // join order
}

// forget makes the cache wait for a new snapshot; until one comes it
// holds only this node's own decisions.
func (cc *cachedChannel) forget() {
	cc.known, cc.pos, cc.count, cc.seq = false, hub.Cursor{}, 0, 0
	cc.members = make(map[string]cachedMember)
}

// add and remove apply a change; they report whether it changed the list.
func (cc *cachedChannel) add(id string, info []byte, count int) bool {
	cc.count = count
	if cc.members == nil {
		return true
	}
	if _, ok := cc.members[id]; ok {
		return false
	}
	cc.seq++
	cc.members[id] = cachedMember{info: info, seq: cc.seq}
	return true
}

func (cc *cachedChannel) remove(id string, count int) bool {
	cc.count = count
	if cc.members == nil {
		return true
	}
	if _, ok := cc.members[id]; !ok {
		return false
	}
	delete(cc.members, id)
	return true
}

// list returns the members in join order.
func (cc *cachedChannel) list() []hub.Member {
	type entry struct {
		id string
		m  cachedMember
	}
	es := make([]entry, 0, len(cc.members))
	for id, m := range cc.members {
		es = append(es, entry{id, m})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].m.seq < es[j].m.seq })
	out := make([]hub.Member, len(es))
	for i, e := range es {
		out[i] = hub.Member{ID: e.id, Info: e.m.info}
	}
	return out
}

// cacheSnapshotLocked keeps a snapshot of Redis of a channel this node
// holds members of, unless the cache is newer. p.mu is held.
func (p *presence) cacheSnapshotLocked(channel string, st hub.PresenceState) {
	cc := p.cache[channel]
	if cc == nil || !p.up || st.Pos.Epoch != p.epoch {
		return
	}
	if cc.known && cc.pos.Epoch == st.Pos.Epoch && st.Pos.Pos.Less(cc.pos.Pos) {
		return
	}
	cc.known, cc.pos, cc.count, cc.seq = true, st.Pos, st.Count, 0
	cc.members = nil
	if st.Members != nil {
		cc.members = make(map[string]cachedMember, len(st.Members))
		for _, m := range st.Members {
			cc.seq++
			cc.members[m.ID] = cachedMember{info: m.Info, seq: cc.seq}
		}
	}
}

// applyCachedLocked applies a change the reader delivers to the cache of
// its channel, if it has a snapshot older than the change. A removal gets
// the member's info from the cache, as the hub's mirror does. p.mu is
// held.
func (p *presence) applyCachedLocked(c *hub.PresenceChange) {
	cc := p.cache[c.Channel]
	if cc == nil || !cc.known || cc.pos.Epoch != c.Pos.Epoch || !cc.pos.Pos.Less(c.Pos.Pos) {
		return
	}
	cc.pos = c.Pos
	if c.Added {
		cc.add(c.Member.ID, c.Member.Info, c.Count)
		return
	}
	cc.remove(c.Member.ID, c.Count)
}

// localPosLocked is the position of this node's last decision alone.
func (p *presence) localPosLocked() hub.Cursor {
	return hub.Cursor{Epoch: p.local, Pos: hub.Position{Hi: p.lseq}}
}

// decideAlone makes an operation while Redis does not answer: see the top
// of this file. Channels' occupancy is only recorded (for the registration
// that follows). It delivers the change, if any, to the hub.
func (p *presence) decideAlone(op holdOp) opResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := holdKey{op.channel, op.user}
	switch op.kind {
	case 'o':
		p.occupied[op.channel] = struct{}{}
		return opResult{status: "occupied", pos: p.localPosLocked()}
	case 'v':
		delete(p.occupied, op.channel)
		return opResult{status: "vacated", pos: p.localPosLocked()}
	case 'j':
		cc := p.holdLocked(k)
		if cc.members != nil {
			if _, ok := cc.members[op.user]; ok {
				return opResult{status: "more", pos: p.localPosLocked(), count: cc.count}
			}
		}
		if op.limit > 0 && cc.count >= op.limit {
			p.unholdLocked(k)
			return opResult{status: "full", pos: p.localPosLocked(), count: cc.count}
		}
		cc.add(op.user, op.info, cc.count+1)
		return p.decidedLocked(hub.PresenceChange{Channel: op.channel, Added: true, Member: hub.Member{ID: op.user, Info: op.info}, Count: cc.count}, "added")
	}
	cc := p.cache[op.channel]
	_, had := p.held[k]
	p.unholdLocked(k)
	if cc == nil || !had || !cc.remove(op.user, max(cc.count-1, 0)) {
		r := opResult{status: "less", pos: p.localPosLocked()}
		if cc != nil {
			r.count = cc.count
		}
		return r
	}
	return p.decidedLocked(hub.PresenceChange{Channel: op.channel, Member: hub.Member{ID: op.user}, Count: cc.count}, "removed")
}

// decidedLocked gives a decision of this node its position and delivers
// it. p.mu is held.
func (p *presence) decidedLocked(c hub.PresenceChange, status string) opResult {
	p.lseq++
	c.Pos = p.localPosLocked()
	if p.pn.Deliver != nil {
		p.pn.Deliver([]hub.PresenceChange{c})
	}
	return opResult{status: status, pos: c.Pos, count: c.Count}
}

// errPresenceUnavailable answers a server-side query while Redis does not
// answer: what this node knows is not the whole hub's presence.
var errPresenceUnavailable = errors.New("redis presence: Redis does not answer; the presence of the whole hub is unknown")

// snapshotAlone answers a snapshot while Redis does not answer: for a
// mirror (max >= 0), what this node knows; for a server-side query, an
// error.
func (p *presence) snapshotAlone(channel string, max int) (hub.PresenceState, error) {
	if max < 0 {
		return hub.PresenceState{}, errPresenceUnavailable
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := hub.PresenceState{Pos: p.localPosLocked()}
	cc := p.cache[channel]
	if cc == nil {
		st.Members = []hub.Member{}
		return st, nil
	}
	st.Count = cc.count
	if cc.members != nil && cc.count <= max {
		st.Members = cc.list()
	}
	return st, nil
}
