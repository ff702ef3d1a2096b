//go:build !unix

package process_test

import "syscall"

func rcvBufControl(int) func(network, address string, c syscall.RawConn) error { return nil }
