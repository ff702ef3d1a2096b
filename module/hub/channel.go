package hub

import "strings"

// channel is the set of live subscribers of one channel, as a slice because
// fan-out iterates it far more often than it changes.
type channel struct {
	subs  []*Session
	index map[*Session]int
}

// subscribeLocked adds s to a channel's live subscribers. h.mu is held.
func (h *Hub) subscribeLocked(s *Session, name string) {
	ch := h.channels[name]
	if ch == nil {
		ch = &channel{index: make(map[*Session]int)}
		h.channels[name] = ch
	}
	if _, ok := ch.index[s]; ok {
		return
	}
	ch.index[s] = len(ch.subs)
	ch.subs = append(ch.subs, s)
	if sub := s.subs.get(name); sub != nil {
		sub.live = true
	}
}

// unsubscribeLocked removes s from a channel's live subscribers. h.mu is held.
func (h *Hub) unsubscribeLocked(s *Session, name string) {
	if sub := s.subs.get(name); sub != nil {
		sub.live = false
	}
	ch := h.channels[name]
	if ch == nil {
		return
	}
	i, ok := ch.index[s]
	if !ok {
		return
	}
	last := len(ch.subs) - 1
	ch.subs[i] = ch.subs[last]
	ch.index[ch.subs[i]] = i
	ch.subs[last] = nil
	ch.subs = ch.subs[:last]
	delete(ch.index, s)
	if len(ch.subs) == 0 {
		delete(h.channels, name)
	}
}

// Channels returns the number of channels with live subscribers.
func (h *Hub) Channels() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.channels)
}

// SubscriberCount returns the number of live subscribers of channel on
// this node.
func (h *Hub) SubscriberCount(channel string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.channels[channel]; ch != nil {
		return len(ch.subs)
	}
	return 0
}

// OccupiedChannels returns the channels whose names start with prefix and
// that have live subscribers on this node, with their subscriber counts.
// It walks every channel of the hub: for occasional queries (the Pusher
// HTTP API's channel list), not for a hot path.
func (h *Hub) OccupiedChannels(prefix string) map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int)
	for name, ch := range h.channels {
		if strings.HasPrefix(name, prefix) {
			out[name] = len(ch.subs)
		}
	}
	return out
}
