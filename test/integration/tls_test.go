package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// tlsConfig is a `tls internal` site with Caddy's defaults: HTTP/2 (and
// HTTP/3) enabled. local_certs and skip_install_trust keep the internal CA
// out of the system trust store; its files live in storageDir. TestMain
// writes it.
var tlsConfig string

// internalRoots returns Caddy's internal root CA, so that clients verify the
// site's certificate instead of skipping verification.
func internalRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	path := filepath.Join(storageDir, "pki", "authorities", "local", "root.crt")
	var pemBytes []byte
	waitFor(t, 10*time.Second, "the internal CA's root certificate", func() bool {
		b, err := os.ReadFile(path)
		pemBytes = b
		return err == nil && len(b) > 0
	})
	pool := x509.NewCertPool()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(cert)
	return pool
}

func TestTLS(t *testing.T) {
	loadConfig(t, tlsConfig)
	tc := &tls.Config{RootCAs: internalRoots(t), ServerName: "localhost"}
	h2Client := &http.Client{
		Transport: &http.Transport{DialContext: rtclient.LoopbackDial, TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true},
		Timeout:   10 * time.Second,
	}
	t.Cleanup(h2Client.CloseIdleConnections)
	// The certificate is issued in the background: wait for the site.
	waitFor(t, 10*time.Second, "the TLS site to answer", func() bool {
		resp, err := h2Client.Get(httpsBase + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})

	t.Run("publish over HTTP/2, receive over wss", func(t *testing.T) {
		ch := uniq("tls")
		c := rtclient.Dial(t, wssBase+"/realtime/ws?channels="+ch, rtclient.Options{TLS: tc})
		c.Welcome(ch)
		r := requestWith(t, h2Client, http.MethodPost, httpsBase+"/realtime/broadcast", []byte(event(ch, "over_tls")), bearer(secretA)...)
		if r.status != http.StatusOK {
			t.Fatalf("publish over https: want 200, got %s", r)
		}
		if r.proto != 2 {
			t.Fatalf("publish over https: want HTTP/2 (enabled by default), got HTTP/%d", r.proto)
		}
		c.ExpectEvent(ch, "over_tls")
		c.Ping()
	})

	t.Run("errors are JSON over HTTP/2", func(t *testing.T) {
		expectUnauthorized(t, requestWith(t, h2Client, http.MethodPost, httpsBase+"/realtime/broadcast", []byte(`{}`), jsonCT...))
		r := requestWith(t, h2Client, http.MethodGet, httpsBase+"/realtime/ws", nil)
		expectError(t, r, http.StatusUpgradeRequired)
	})

	t.Run("same origin is https", func(t *testing.T) {
		c := rtclient.Dial(t, wssBase+"/realtime/ws", rtclient.Options{TLS: tc, Header: http.Header{"Origin": {httpsBase}}})
		c.Expect("realtime:welcome")
		plain := "http://" + strings.TrimPrefix(httpsBase, "https://")
		_, r, err := rtclient.TryDial(t, wssBase+"/realtime/ws", rtclient.Options{TLS: tc, Origin: plain})
		if err == nil || r == nil {
			t.Fatalf("Origin %s on an https site: want 403, got %v", plain, err)
		}
		expectError(t, fromHandshake(r), http.StatusForbidden)
	})

	t.Run("private channel with a cookie token over wss", func(t *testing.T) {
		p := uniq("private-user")
		cookie := (&http.Cookie{Name: "realtime_token", Value: validToken(t, p)}).String()
		c := rtclient.Dial(t, wssBase+"/realtime/ws?channels="+p, rtclient.Options{TLS: tc, Header: http.Header{"Cookie": {cookie}}})
		c.Welcome(p)
		r := requestWith(t, h2Client, http.MethodPost, httpsBase+"/realtime/broadcast", []byte(event(p, "private_tls")), bearer(secretA)...)
		if r.status != http.StatusOK {
			t.Fatalf("publish: %s", r)
		}
		c.ExpectEvent(p, "private_tls")
	})

	// Browsers open WebSockets over HTTP/1.1 unless the server's HTTP/2
	// SETTINGS offer extended CONNECT (RFC 8441); if Caddy offered it,
	// browsers would send the upgrade as an HTTP/2 CONNECT, which cannot be
	// hijacked. Check that the site does not offer it while serving h2.
	t.Run("HTTP/2 does not offer extended CONNECT", func(t *testing.T) {
		conf := tc.Clone()
		conf.NextProtos = []string{"h2"}
		raw, err := rtclient.LoopbackDial(t.Context(), "tcp", fmt.Sprintf("localhost:%d", httpsPort))
		if err != nil {
			t.Fatal(err)
		}
		conn := tls.Client(raw, conf)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if err := conn.Handshake(); err != nil {
			t.Fatal(err)
		}
		if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN: want h2 (HTTP/2 on by default), got %q", p)
		}
		if _, err := fmt.Fprint(conn, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok {
			t.Fatalf("want a SETTINGS frame first, got %v", f)
		}
		if v, ok := sf.Value(http2.SettingEnableConnectProtocol); ok && v == 1 {
			t.Fatalf("the server offers RFC 8441 extended CONNECT: browsers would send WebSocket upgrades over HTTP/2, which the hub cannot hijack")
		}
	})
}
