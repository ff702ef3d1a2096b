package module

import (
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestNewRedisLogDoesNotConnect(t *testing.T) {
	// Provisioning with Redis down must not fail: the log is made, and the
	// reader connects later.
	l, err := newRedisLog(hubSettings{name: "x", historySize: 10, historyTTL: time.Minute, redis: "redis://127.0.0.1:1/0"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
}
