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
