package module

import (
	"net"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
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

// TestHandlerWebhookClaimedAtStart: a handler's webhook, claimed in its
// Provision, is the hub's target only once the config starts, and a
// config that fails to start gives it up at once.
func TestHandlerWebhookClaimedAtStart(t *testing.T) {
	ph := &pooledHub{Hub: hub.New("t", hub.NewMemoryLog(10, time.Hour)), log: newFollowingLogger(zap.NewNop())}
	target := func() *webhookTarget {
		ph.webhooks.mu.Lock()
		defer ph.webhooks.mu.Unlock()
		return ph.webhooks.targets["p"]
	}
	a := &App{held: &heldHubs{byName: map[string]*pooledHub{}, settings: map[string]heldSettings{}}}
	tg := &webhookTarget{url: "https://a.example/hook", events: hub.WebhookMemberAdded}
	release := a.claimWebhook(ph, "p", tg)
	if target() != nil {
		t.Fatal("a provisioned config's webhook is the target before it starts")
	}
	a.claimWebhooks()
	if target() != tg {
		t.Fatal("a started config's webhook is not the target")
	}
	a.releaseClaims()
	if target() != nil {
		t.Fatal("a config that failed to start kept its webhook")
	}
	release()
	a.claimWebhooks()
	if target() != nil {
		t.Fatal("a released claim came back")
	}
}

// TestNewHubHasItsSettingsAtOnce: a hub that no running config holds gets
// its config's settings when it is made (a handler of an app that starts
// before the realtime app may serve it), one that a running config holds
// only when the new config starts.
func TestNewHubHasItsSettingsAtOnce(t *testing.T) {
	newApp := func(conns int) *App {
		return &App{
			Hubs:   map[string]*HubConfig{"acquire-test": {MaxConnections: conns, Private: []string{"secret-*"}}},
			logger: zap.NewNop(),
			held:   &heldHubs{byName: map[string]*pooledHub{}, settings: map[string]heldSettings{}},
		}
	}
	first := newApp(5)
	ph, err := first.acquire("acquire-test")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseHub(ph.key)
	if got := ph.Limits().MaxConnections; got != 5 {
		t.Fatalf("a new hub has max_connections %d, want its config's 5", got)
	}
	next := newApp(9)
	if _, err := next.acquire("acquire-test"); err != nil {
		t.Fatal(err)
	}
	defer releaseHub(ph.key)
	if got := ph.Limits().MaxConnections; got != 5 {
		t.Fatalf("a held hub has max_connections %d before the new config started, want 5", got)
	}
	next.applySettings(ph)
	if got := ph.Limits().MaxConnections; got != 9 {
		t.Fatalf("max_connections %d after the new config's settings, want 9", got)
	}
}
