package token

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

func sign(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	v := NewVerifier("s3cret")
	exp := time.Now().Add(time.Minute).Unix()
	good := sign(t, "s3cret", jwt.MapClaims{"sub": "42", "exp": exp, "channels": []string{"private-user.42"}})
	g, err := v.Verify(good)
	if err != nil || g.Subject != "42" || !g.Allows("private-user.42", time.Now()) || g.Allows("private-user.43", time.Now()) {
		t.Fatalf("good token: %+v, %v", g, err)
	}
	if _, err := v.Verify(sign(t, "other", jwt.MapClaims{"exp": exp})); err != hub.ErrTokenInvalid {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := v.Verify(sign(t, "s3cret", jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})); err != hub.ErrTokenExpired {
		t.Fatalf("expired: %v", err)
	}
	if _, err := v.Verify(sign(t, "s3cret", jwt.MapClaims{"sub": "1"})); err != hub.ErrTokenInvalid {
		t.Fatalf("no exp: %v", err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": exp})
	ns, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if _, err := v.Verify(ns); err != hub.ErrTokenInvalid {
		t.Fatalf("alg none: %v", err)
	}
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"exp": exp}).SignedString([]byte("s3cret"))
	if _, err := v.Verify(hs512); err != hub.ErrTokenInvalid {
		t.Fatalf("HS512: %v", err)
	}
}

// A token inside the leeway after its exp is accepted, and its grant holds
// for as long: it is never refused as forbidden.
func TestTokenInsideLeewayGrants(t *testing.T) {
	v := NewVerifier("k")
	tok := sign(t, "k", jwt.MapClaims{"exp": time.Now().Add(-2 * time.Second).Unix(), "channels": []string{"private-a"}})
	g, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("token 2 s past exp, inside the %s leeway: %v", Leeway, err)
	}
	if !g.Allows("private-a", time.Now()) {
		t.Fatal("accepted token's grant does not allow its channel")
	}
}

func FuzzVerifyToken(f *testing.F) {
	v := NewVerifier("k")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.x")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		g, err := v.Verify(tok)
		if err == nil && g == nil {
			t.Fatal("nil grant without error")
		}
	})
}

// TestInfoClaim: the info claim reaches the grant compacted; one that is
// not an object, or over 1 KiB, makes the token invalid.
func TestInfoClaim(t *testing.T) {
	v := NewVerifier("k")
	exp := time.Now().Add(time.Minute).Unix()
	g, err := v.Verify(sign(t, "k", jwt.MapClaims{"sub": "42", "exp": exp, "info": map[string]any{"name": "Ana", "avatar": "https://example.com/a.png"}}))
	if err != nil || string(g.Info) != `{"avatar":"https://example.com/a.png","name":"Ana"}` {
		t.Fatalf("info: %s, %v", g.Info, err)
	}
	if g, err := v.Verify(sign(t, "k", jwt.MapClaims{"sub": "42", "exp": exp})); err != nil || g.Info != nil {
		t.Fatalf("no info: %+v, %v", g, err)
	}
	for name, info := range map[string]any{
		"a string":   "Ana",
		"a list":     []string{"Ana"},
		"over 1 KiB": map[string]string{"bio": strings.Repeat("x", hub.MaxInfoSize)},
	} {
		if _, err := v.Verify(sign(t, "k", jwt.MapClaims{"sub": "42", "exp": exp, "info": info})); err != hub.ErrTokenInvalid {
			t.Errorf("info %s: %v, want token invalid", name, err)
		}
	}
}
