package redis

import "go.uber.org/zap"

// health is the backplane's state as the reader last saw it. It is
// replaced, never changed, so Healthy reads it without a lock.
type health struct {
	up      bool
	lastErr string
}

// Healthy implements hub.Health.
func (l *Log) Healthy() (bool, string) {
	h := l.health.Load()
	if h == nil {
		return false, ""
	}
	return h.up, h.lastErr
}

// Gaps returns how many times the reader found events trimmed before it
// could read them.
func (l *Log) Gaps() int64 { return l.gaps.Load() }

// setUp records that Redis answered. Only the fetcher (and Start, before
// the fetcher runs) calls it.
func (l *Log) setUp() {
	if h := l.health.Load(); h != nil && h.up {
		return
	}
	l.health.Store(&health{up: true})
	l.logger.Info("redis backplane up")
}

// setDown records that Redis failed. Only the fetcher (and Start, before
// the fetcher runs) calls it; it logs the transition, not every failure.
func (l *Log) setDown(err error) {
	msg := err.Error() // go-redis errors never contain the password
	was := l.health.Swap(&health{lastErr: msg})
	if was == nil || was.up {
		l.logger.Warn("redis backplane down", zap.String("error", msg))
	}
}
