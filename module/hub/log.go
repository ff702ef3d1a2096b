package hub

import (
	"context"
	"time"
)

// Log orders and keeps a hub's events: it is where a publication becomes
// events with cursors. The in-memory log is the default; the Redis backplane
// implements Log so that several nodes share one order and one history.
//
// A log delivers every event it accepts, once and in log order, to the
// function given to Start; that is how events reach live subscribers. It may
// do so from Append itself (in memory) or from a reader goroutine (Redis).
type Log interface {
	// Start begins delivering accepted events to deliver, which gets them in
	// log order together with the head they bring the log to (the last
	// event's cursor). A log may also call it with no events to move the head,
	// for example to where a backplane's reader starts. It is called once,
	// before any Append.
	Start(deliver func(head Cursor, events []*Event)) error

	// Append accepts publications atomically: all of them or, with an error,
	// none. A publication whose ID was accepted within the retention TTL is
	// answered Duplicate with its original cursors and is not delivered again.
	Append(ctx context.Context, pubs []*Publication) ([]Appended, error)

	// Range returns the retained events of the channels accepted by match
	// that come after `after` and not after `upTo`, in order, at most limit
	// of them. next is the position scanned to: pass it as `after` to go on.
	// complete is false when the log cannot prove that nothing after `after`
	// is missing: another epoch, a position it never issued, or events after
	// it already trimmed.
	Range(ctx context.Context, after, upTo Cursor, limit int, match func(channel string) bool) (events []*Event, next Cursor, complete bool, err error)

	// Head is the cursor of the last accepted event, or of the empty log.
	Head(ctx context.Context) (Cursor, error)

	// SetRetention changes how many events are kept and for how long; a
	// reload applies new values in place.
	SetRetention(size int, ttl time.Duration)

	// Close stops delivery and releases the log's resources.
	Close() error
}

// Health is implemented by logs that depend on an outside service.
type Health interface {
	// Healthy reports whether the backplane is reachable, and the last error.
	Healthy() (bool, string)
}

// GapReporter is implemented by logs whose delivery can skip events: a
// backplane reader that fell behind its stream's trimming, or one that
// found acknowledged events lost in a failover. New gives such a log a
// function to call then, which closes every session with 1012 so that
// clients resume from their cursors (and learn that they missed events)
// instead of missing them silently. The function takes only the hub's
// lock and returns at once: the log calls it before it delivers the events
// after the gap, which then reach no session of before the gap.
type GapReporter interface {
	OnGap(func())
}
