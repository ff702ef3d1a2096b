package module

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// credentials checks a publish request's secret: a bearer token, or an
// X-Realtime-Signature HMAC over the timestamp and the raw body. With the
// signature, the body is read here (it is part of the credential) and
// returned; with the bearer, body is nil and read later.
type credentials struct {
	secrets   [][]byte
	tolerance time.Duration
	now       func() time.Time
}

func (c *credentials) check(w http.ResponseWriter, r *http.Request, maxBody int64) (body []byte, rj *rejection) {
	if sig := r.Header.Get("X-Realtime-Signature"); sig != "" {
		return c.checkSignature(w, r, sig, maxBody)
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return nil, reject(http.StatusUnauthorized, "unauthorized", "missing credentials: use Authorization: Bearer or X-Realtime-Signature")
	}
	token = strings.TrimSpace(token)
	match := 0
	for _, s := range c.secrets {
		match |= subtle.ConstantTimeCompare([]byte(token), s)
	}
	if match != 1 {
		return nil, reject(http.StatusUnauthorized, "unauthorized", "invalid credentials")
	}
	return nil, nil
}

func (c *credentials) checkSignature(w http.ResponseWriter, r *http.Request, header string, maxBody int64) ([]byte, *rejection) {
	ts, sigs, ok := parseSignature(header)
	if !ok {
		return nil, reject(http.StatusUnauthorized, "unauthorized", "malformed X-Realtime-Signature: want t=<unix seconds>,v1=<hex>")
	}
	now := c.now()
	if d := now.Sub(time.Unix(ts, 0)); d > c.tolerance || d < -c.tolerance {
		return nil, reject(http.StatusUnauthorized, "unauthorized", "signature timestamp outside the tolerance")
	}
	body, rj := readBody(w, r, maxBody, false)
	if rj != nil {
		return nil, rj
	}
	if !c.matches(strconv.FormatInt(ts, 10)+".", body, sigs) {
		return nil, reject(http.StatusUnauthorized, "unauthorized", "invalid signature")
	}
	return body, nil
}

// checkQuery checks the credentials of a query (a GET): a bearer secret,
// or an X-Realtime-Signature over "<t>.<raw query>", since a GET has no
// body to sign.
func (c *credentials) checkQuery(r *http.Request) *rejection {
	sig := r.Header.Get("X-Realtime-Signature")
	if sig == "" {
		_, rj := c.check(nil, r, 0)
		return rj
	}
	ts, sigs, ok := parseSignature(sig)
	if !ok {
		return reject(http.StatusUnauthorized, "unauthorized", "malformed X-Realtime-Signature: want t=<unix seconds>,v1=<hex>")
	}
	if d := c.now().Sub(time.Unix(ts, 0)); d > c.tolerance || d < -c.tolerance {
		return reject(http.StatusUnauthorized, "unauthorized", "signature timestamp outside the tolerance")
	}
	if !c.matches(strconv.FormatInt(ts, 10)+".", []byte(r.URL.RawQuery), sigs) {
		return reject(http.StatusUnauthorized, "unauthorized", "invalid signature")
	}
	return nil
}

// matches reports, in constant time, whether one of sigs is the HMAC of
// prefix and signed under one of the secrets.
func (c *credentials) matches(prefix string, signed []byte, sigs [][]byte) bool {
	match := 0
	for _, s := range c.secrets {
		m := hmac.New(sha256.New, s)
		m.Write([]byte(prefix))
		m.Write(signed)
		want := m.Sum(nil)
		for _, got := range sigs {
			match |= subtle.ConstantTimeCompare(want, got)
		}
	}
	return match == 1
}

// parseSignature reads "t=<unix>,v1=<hex>[,v1=<hex>...]".
func parseSignature(h string) (ts int64, sigs [][]byte, ok bool) {
	seenT := false
	for _, part := range strings.Split(h, ",") {
		k, v, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			return 0, nil, false
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || seenT {
				return 0, nil, false
			}
			ts, seenT = n, true
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return 0, nil, false
			}
			if len(sigs) < 4 {
				sigs = append(sigs, b)
			}
		}
	}
	return ts, sigs, seenT && len(sigs) > 0
}
