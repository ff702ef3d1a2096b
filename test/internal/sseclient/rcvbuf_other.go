//go:build !unix

package sseclient

import "syscall"

func rcvBufControl(int) func(network, address string, c syscall.RawConn) error { return nil }
