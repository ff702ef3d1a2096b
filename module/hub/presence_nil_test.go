package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// unlistedLog is a log whose presence store counts members but never
// lists them, as a backplane's store deciding alone answers for a channel
// it had only counts of.
type unlistedLog struct {
	*MemoryLog
	once  sync.Once
	store *unlistedStore
}

func (l *unlistedLog) Presence() PresenceStore {
	l.once.Do(func() {
		q := NewMemoryWebhookQueue(0, nil)
		l.store = &unlistedStore{MemoryPresence: NewMemoryPresence(q), q: q}
	})
	return l.store
}

func (l *unlistedLog) Webhooks() WebhookQueue { l.Presence(); return l.store.q }

type unlistedStore struct {
	*MemoryPresence
	q         *MemoryWebhookQueue
	snapshots atomic.Int64
}

func (s *unlistedStore) Snapshot(ctx context.Context, channel string, max int) (PresenceState, error) {
	s.snapshots.Add(1)
	st, err := s.MemoryPresence.Snapshot(ctx, channel, max)
	st.Members = nil
	return st, err
}

// A snapshot without members although the channel is under the member
// limit is fetched again once, not in a loop: the session gets counts.
func TestUnlistedSnapshotIsNotFetchedInALoop(t *testing.T) {
	l := &unlistedLog{MemoryLog: NewMemoryLog(10, time.Hour)}
	h := New("unlisted", l)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	defer h.Close(DisconnectShutdown, 0, time.Second)
	s, c := connect(t, h, &Policy{SendQueue: 64}, ConnectOptions{Channels: []string{}})
	s.Subscribe([]string{"presence-c"}, SubscribeOptions{Member: &Member{ID: "u"}})
	waitFor(t, "the snapshot", func() bool { return len(presenceMsgs(c, "presence-c")) > 0 })
	n := l.store.snapshots.Load()
	time.Sleep(100 * time.Millisecond)
	if more := l.store.snapshots.Load() - n; more > 0 || n > 3 {
		t.Fatalf("%d snapshots, then %d more: the hub fetches in a loop", n, more)
	}
}

// failingStore fails every snapshot while fail is set.
type failingLog struct {
	*MemoryLog
	once  sync.Once
	store *failingStore
}

func (l *failingLog) Presence() PresenceStore {
	l.once.Do(func() {
		q := NewMemoryWebhookQueue(0, nil)
		l.store = &failingStore{MemoryPresence: NewMemoryPresence(q), q: q}
		l.store.fail.Store(true)
	})
	return l.store
}

func (l *failingLog) Webhooks() WebhookQueue { l.Presence(); return l.store.q }

type failingStore struct {
	*MemoryPresence
	q         *MemoryWebhookQueue
	fail      atomic.Bool
	snapshots atomic.Int64
}

func (s *failingStore) Snapshot(ctx context.Context, channel string, max int) (PresenceState, error) {
	s.snapshots.Add(1)
	if s.fail.Load() {
		return PresenceState{}, errors.New("store down")
	}
	return s.MemoryPresence.Snapshot(ctx, channel, max)
}

// While snapshots fail, the changes delivered meanwhile are not kept for
// good: the retry's snapshot is newer than all of them. Once the store
// answers, the mirror is right.
func TestFailingSnapshotsBufferNoChangesForGood(t *testing.T) {
	l := &failingLog{MemoryLog: NewMemoryLog(10, time.Hour)}
	h := New("failing", l)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	defer h.Close(DisconnectShutdown, 0, time.Second)
	s, c := connect(t, h, &Policy{SendQueue: 64}, ConnectOptions{Channels: []string{}})
	s.Subscribe([]string{"presence-c"}, SubscribeOptions{Member: &Member{ID: "u"}})
	for i := range 50 {
		if _, err := l.store.Join(context.Background(), "presence-c", Member{ID: fmt.Sprintf("o%d", i)}, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	n := l.store.snapshots.Load()
	// A second retry is scheduled by the first one's failure, once that
	// has been handled.
	waitFor(t, "two retried snapshots", func() bool { return l.store.snapshots.Load() > n+1 })
	h.mu.Lock()
	buffered := len(h.presence.chans["presence-c"].buffered)
	h.mu.Unlock()
	if buffered != 0 {
		t.Fatalf("%d changes kept across a failed snapshot", buffered)
	}
	l.store.fail.Store(false)
	waitFor(t, "the snapshot", func() bool {
		ms := presenceMsgs(c, "presence-c")
		return len(ms) > 0 && ms[0]["count"] == float64(51)
	})
}
