package module

import (
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// followingLogger is a logger that writes through whichever logger it was
// last given. A pooled hub and its backplane outlive the config whose
// logger they were made with; with this they log through the current
// config's logging, whatever a reload changed there.
type followingLogger struct {
	current atomic.Pointer[zap.Logger]
}

func newFollowingLogger(l *zap.Logger) *followingLogger {
	f := &followingLogger{}
	f.set(l)
	return f
}

func (f *followingLogger) set(l *zap.Logger) {
	if l == nil {
		l = zap.NewNop()
	}
	f.current.Store(l)
}

// logger returns the current logger.
func (f *followingLogger) logger() *zap.Logger { return f.current.Load() }

// zap returns a logger that always writes through the current one, for
// parts (a backplane) that keep a logger of their own.
func (f *followingLogger) zap() *zap.Logger { return zap.New(followingCore{f: f}) }

// followingCore is a zapcore.Core that forwards to the current logger's
// core, with the fields added along the way.
type followingCore struct {
	f      *followingLogger
	fields []zapcore.Field
}

func (c followingCore) core() zapcore.Core {
	core := c.f.logger().Core()
	if len(c.fields) > 0 {
		core = core.With(c.fields)
	}
	return core
}

func (c followingCore) Enabled(l zapcore.Level) bool { return c.f.logger().Core().Enabled(l) }

func (c followingCore) With(fields []zapcore.Field) zapcore.Core {
	return followingCore{f: c.f, fields: append(append([]zapcore.Field(nil), c.fields...), fields...)}
}

func (c followingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return c.core().Check(e, ce)
}

func (c followingCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	return c.core().Write(e, fields)
}

func (c followingCore) Sync() error { return c.f.logger().Core().Sync() }

var _ zapcore.Core = followingCore{}
