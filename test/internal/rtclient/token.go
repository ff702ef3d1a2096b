package rtclient

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token signs a subscriber token (HS256 with secret) for user "42" that
// grants channels (names or globs such as "private-post.*") until exp.
func Token(t testing.TB, secret string, channels []string, exp time.Time) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": "42", "exp": exp.Unix(), "channels": channels}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// UserToken signs a subscriber token for user sub (none when "") with an
// info claim (none when nil) that grants channels until exp.
func UserToken(t testing.TB, secret, sub string, info any, channels []string, exp time.Time) string {
	t.Helper()
	claims := jwt.MapClaims{"exp": exp.Unix(), "channels": channels}
	if sub != "" {
		claims["sub"] = sub
	}
	if info != nil {
		claims["info"] = info
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
