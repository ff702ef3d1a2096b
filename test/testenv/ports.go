package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// FreePort returns a port that was free a moment ago, on every address.
// It is chosen below the kernel's ephemeral range (32768 and up): the
// suites run in parallel and open thousands of client connections whose
// source ports come from that range, and a server port picked there can be
// taken by one of them before the server binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := PickPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// PickPort is FreePort for a TestMain, which has no testing.T.
func PickPort() (int, error) {
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free port below the ephemeral range")
}
