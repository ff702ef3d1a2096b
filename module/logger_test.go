package module

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A hub's backplane keeps the logger it was made with; after a reload it
// must still log through the new config's logger.
func TestFollowingLoggerFollowsTheCurrentConfig(t *testing.T) {
	oldCore, oldLogs := observer.New(zapcore.InfoLevel)
	newCore, newLogs := observer.New(zapcore.InfoLevel)
	fl := newFollowingLogger(zap.New(oldCore))
	kept := fl.zap().Named("redis").With(zap.String("hub", "h"))
	kept.Info("before")
	fl.set(zap.New(newCore))
	kept.Info("after")
	if oldLogs.Len() != 1 || newLogs.Len() != 1 {
		t.Fatalf("old config got %d entries, new got %d; want 1 each", oldLogs.Len(), newLogs.Len())
	}
	e := newLogs.All()[0]
	if e.Message != "after" || e.LoggerName != "redis" || e.ContextMap()["hub"] != "h" {
		t.Fatalf("entry %+v lost its name or fields", e)
	}
}
