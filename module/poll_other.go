//go:build !linux

package module

import (
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// polledConn is Linux-only; elsewhere every session has a reader goroutine.
type polledConn struct{}

func newPolledConn(*hub.Session, *transport, func(*hub.Session, []byte), int64, time.Duration) *polledConn {
	return nil
}

func newPolledStream(*hub.Session, *transport, time.Duration) *polledConn { return nil }

func (*polledConn) register() {}
