//go:build unix

package sseclient

import "syscall"

// rcvBufControl sets SO_RCVBUF before connecting, so that a client that
// stops reading fills its socket quickly.
func rcvBufControl(size int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		})
		if err != nil {
			return err
		}
		return serr
	}
}
