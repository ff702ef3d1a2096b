package module

import (
	"net"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestFailedReloadKeepsSettings: a reload whose config fails to provision
// (here a handler names a hub the app does not declare) leaves the running
// hub with the running config's settings; a reload that loads applies its
// own.
func TestFailedReloadKeepsSettings(t *testing.T) {
	load := func(cfg string) error { return caddy.Load([]byte(cfg), true) }
	const running = `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{"realtime":{"hubs":{"t":{"max_connections":7,"presence_max_members":3}}}}}`
	if err := load(running); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = caddy.Stop() }()
	check := func(when string, conns, members int) {
		t.Helper()
		hubs := runningHubs()
		if len(hubs) != 1 {
			t.Fatalf("%s: %d running hubs, want 1", when, len(hubs))
		}
		if got := hubs[0].Limits().MaxConnections; got != conns {
			t.Errorf("%s: max_connections %d, want %d", when, got, conns)
		}
		if got := hubs[0].PresenceConfig().MaxMembers; got != members {
			t.Errorf("%s: presence_max_members %d, want %d", when, got, members)
		}
	}
	check("started", 7, 3)
	const failing = `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{
		"realtime":{"hubs":{"t":{"max_connections":9,"presence_max_members":5}}},
		"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{"handler":"realtime_ws","hub":"nope"}]}]}}}}}`
	if err := load(failing); err == nil {
		t.Fatal("a config with an undeclared hub loaded")
	}
	check("after a failed reload", 7, 3)
	// A config that provisions but fails to start: its http server cannot
	// listen. Its realtime app may have started before that.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{
		"realtime":{"hubs":{"t":{"max_connections":9,"presence_max_members":5}}},
		"http":{"servers":{"s":{"listen":["` + ln.Addr().String() + `"],"routes":[{"handle":[{"handler":"realtime_ws","hub":"t"}]}]}}}}}`
	for range 5 { // the apps start in map order
		if err := load(busy); err == nil {
			t.Fatal("a config whose server cannot listen started")
		}
		check("after a reload that failed to start", 7, 3)
	}
	const next = `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{"realtime":{"hubs":{"t":{"max_connections":11,"presence_max_members":4}}}}}`
	if err := load(next); err != nil {
		t.Fatal(err)
	}
	check("after a reload", 11, 4)
}
