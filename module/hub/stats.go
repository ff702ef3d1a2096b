package hub

import "sync/atomic"

// Stats are a hub's counters. They are plain atomics, cheap on the hot path;
// the Caddy layer exports them to Prometheus when it is scraped.
type Stats struct {
	Connections      atomic.Int64 // open sessions
	Subscriptions    atomic.Int64 // live and catching-up subscriptions
	Published        atomic.Int64 // events accepted (one per channel)
	Duplicates       atomic.Int64 // publications answered as duplicates
	Deliveries       atomic.Int64 // live events queued to subscribers
	Replayed         atomic.Int64 // events sent by resume
	FailedRecoveries atomic.Int64 // subscriptions answered recovered:false to a since
	SlowDisconnects  atomic.Int64 // sessions closed with 1013
}

// Snapshot is a copy of Stats, for JSON.
type Snapshot struct {
	Connections      int64 `json:"connections"`
	Subscriptions    int64 `json:"subscriptions"`
	Published        int64 `json:"events_published"`
	Duplicates       int64 `json:"duplicates"`
	Deliveries       int64 `json:"deliveries"`
	Replayed         int64 `json:"replayed"`
	FailedRecoveries int64 `json:"failed_recoveries"`
	SlowDisconnects  int64 `json:"slow_consumer_disconnects"`
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
	}
}
