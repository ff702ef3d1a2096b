//go:build !unix

package rtclient

import "syscall"

// rcvBufControl does nothing where SO_RCVBUF is not set this way.
func rcvBufControl(int) func(network, address string, c syscall.RawConn) error { return nil }
