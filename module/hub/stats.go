package hub

import (
	"sync"
	"sync/atomic"
)

// Stats are a hub's counters. They are plain atomics, cheap on the hot path;
// the Caddy layer exports them to Prometheus when it is scraped.
type Stats struct {
	Connections      atomic.Int64 // open sessions
	Subscriptions    atomic.Int64 // live and catching-up subscriptions
	Published        atomic.Int64 // events accepted (one per channel)
	Duplicates       atomic.Int64 // publications answered as duplicates
	Deliveries       atomic.Int64 // live events queued to subscribers
	Replayed         atomic.Int64 // events sent by resume and catch-up
	FailedRecoveries atomic.Int64 // subscriptions answered NotRecovered to a resume
	SlowDisconnects  atomic.Int64 // sessions ended as slow consumers
	Lagged           atomic.Int64 // sessions that fell behind and caught up from the log
	PresenceChannels atomic.Int64 // presence channels with members held by this node
	PresenceMembers  atomic.Int64 // members held by this node, one per user and channel
	WebhooksDropped  atomic.Int64 // webhook events the in-memory queue dropped unsent when full

	byFormat [maxFormats]atomic.Int64 // open sessions by wire format (Codec.Format)

	dmu         sync.Mutex
	disconnects map[string]int64 // sessions the server ended, by Disconnect.Name
}

// countDisconnect counts a session the server ended. Disconnects are rare,
// so a map under a lock is fine.
func (s *Stats) countDisconnect(name string) {
	if name == DisconnectSlowConsumer.Name {
		s.SlowDisconnects.Add(1)
	}
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if s.disconnects == nil {
		s.disconnects = make(map[string]int64)
	}
	s.disconnects[name]++
}

// ConnectionsOf returns the open sessions of wire format f.
func (s *Stats) ConnectionsOf(f Format) int64 { return s.byFormat[f].Load() }

// Disconnects returns how many sessions the server ended, by reason.
func (s *Stats) Disconnects() map[string]int64 {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	out := make(map[string]int64, len(s.disconnects))
	for k, v := range s.disconnects {
		out[k] = v
	}
	return out
}

// Snapshot is a copy of Stats, for JSON.
type Snapshot struct {
	Connections      int64            `json:"connections"`
	Subscriptions    int64            `json:"subscriptions"`
	Published        int64            `json:"events_published"`
	Duplicates       int64            `json:"duplicates"`
	Deliveries       int64            `json:"deliveries"`
	Replayed         int64            `json:"replayed"`
	FailedRecoveries int64            `json:"failed_recoveries"`
	SlowDisconnects  int64            `json:"slow_consumer_disconnects"`
	Lagged           int64            `json:"lagged"`
	PresenceChannels int64            `json:"presence_channels"`
	PresenceMembers  int64            `json:"presence_members"`
	WebhooksDropped  int64            `json:"webhook_events_dropped"`
	Disconnects      map[string]int64 `json:"disconnects"`
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		Connections:      s.Connections.Load(),
		Subscriptions:    s.Subscriptions.Load(),
		Published:        s.Published.Load(),
		Duplicates:       s.Duplicates.Load(),
		Deliveries:       s.Deliveries.Load(),
		Replayed:         s.Replayed.Load(),
		FailedRecoveries: s.FailedRecoveries.Load(),
		SlowDisconnects:  s.SlowDisconnects.Load(),
		Lagged:           s.Lagged.Load(),
		PresenceChannels: s.PresenceChannels.Load(),
		PresenceMembers:  s.PresenceMembers.Load(),
		WebhooksDropped:  s.WebhooksDropped.Load(),
		Disconnects:      s.Disconnects(),
	}
}
