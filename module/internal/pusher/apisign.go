package pusher

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// HTTP API request signatures (Pusher's REST API authentication). Every
// request carries auth_key, auth_timestamp, auth_version=1.0, body_md5 when
// it has a body, and
//
//	auth_signature = hex(HMAC-SHA256(secret, METHOD + "\n" + PATH + "\n" + QUERY))
//
// where QUERY is every other parameter, decoded, keys lowercased, sorted by
// key and joined as k=v with & (not escaped again).

// TimestampWindow is how far auth_timestamp may be from the server's clock.
const TimestampWindow = 600 * time.Second

// APIError is a refused HTTP API request: the status the Pusher API
// answers with and a message for the caller.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

func unauthorized(format string, args ...any) *APIError {
	return &APIError{Status: 401, Message: fmt.Sprintf(format, args...)}
}

// SignedRequest is what an HTTP API request's signature covers.
type SignedRequest struct {
	Method string
	// Paths are the paths the signature may cover, tried in order: the
	// request path without the route's prefix (pusher-http-php signs
	// /apps/<id>/... whatever its path option), then the full path.
	Paths    []string
	RawQuery string
	Body     []byte
}

// APICredentials verify HTTP API requests for one app.
type APICredentials struct {
	Key    string
	Secret []byte
}

// Verify checks a request's signature, timestamp, version and body hash. A
// nil answer means the request is the app's, recent and intact.
func (c APICredentials) Verify(r SignedRequest, now time.Time) *APIError {
	params, err := parseQuery(r.RawQuery)
	if err != nil {
		return unauthorized("%v", err)
	}
	switch {
	case params["auth_key"] == "":
		return unauthorized("auth_key is required")
	case params["auth_key"] != c.Key:
		return unauthorized("Unknown auth_key")
	case params["auth_signature"] == "":
		return unauthorized("auth_signature is required")
	case params["auth_timestamp"] == "":
		return unauthorized("Timestamp required")
	case params["auth_version"] == "":
		return unauthorized("Version required")
	case params["auth_version"] != "1.0":
		return unauthorized("Version not supported: want auth_version=1.0")
	}
	sig, err := hex.DecodeString(params["auth_signature"])
	if err != nil || len(sig) != sha256.Size {
		return unauthorized("Invalid signature: auth_signature must be a hex HMAC-SHA256")
	}
	query := canonicalQuery(params)
	ok := false
	for _, p := range r.Paths {
		if hmac.Equal(sig, c.mac(r.Method, p, query)) {
			ok = true
			break
		}
	}
	if !ok {
		return unauthorized("Invalid signature: expected HMAC-SHA256 hex digest of %q", StringToSign(r.Method, r.Paths[0], query))
	}
	ts, err := strconv.ParseInt(params["auth_timestamp"], 10, 64)
	if err != nil {
		return unauthorized("Timestamp required: auth_timestamp must be an integer of seconds")
	}
	if d := now.Sub(time.Unix(ts, 0)); d <= -TimestampWindow || d >= TimestampWindow {
		return unauthorized("Timestamp expired: Given timestamp (%s) not within %ds of server time (%s)",
			time.Unix(ts, 0).UTC().Format(time.RFC3339), int(TimestampWindow/time.Second), now.UTC().Format(time.RFC3339))
	}
	md5sum, has := params["body_md5"]
	if len(r.Body) > 0 && !has {
		return unauthorized("body_md5 is required for a request with a body")
	}
	if has && md5sum != BodyMD5(r.Body) {
		return unauthorized("body_md5 does not match the body")
	}
	return nil
}

func (c APICredentials) mac(method, path, query string) []byte {
	m := hmac.New(sha256.New, c.Secret)
	m.Write([]byte(StringToSign(method, path, query)))
	return m.Sum(nil)
}

// StringToSign is what an HTTP API signature covers.
func StringToSign(method, path, query string) string {
	return strings.ToUpper(method) + "\n" + path + "\n" + query
}

// BodyMD5 is the body_md5 parameter of a body.
func BodyMD5(body []byte) string {
	s := md5.Sum(body)
	return hex.EncodeToString(s[:])
}

// maxQueryParams bounds the parameters of a signed query: the SDKs send
// at most seven.
const maxQueryParams = 32

// parseQuery decodes a query into keys (lowercased) and values. A key
// given twice is refused: the signature would not say which one counts.
func parseQuery(raw string) (map[string]string, error) {
	params := make(map[string]string, 8)
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		if len(params) >= maxQueryParams {
			return nil, fmt.Errorf("too many query parameters")
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("invalid query encoding")
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("invalid query encoding")
		}
		key = strings.ToLower(key)
		if _, dup := params[key]; dup {
			return nil, fmt.Errorf("query parameter %q given twice", key)
		}
		params[key] = val
	}
	return params, nil
}

// canonicalQuery is the signed form of the parameters: all but
// auth_signature, sorted by key, k=v joined with &.
func canonicalQuery(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "auth_signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

// SignQuery returns the signed query string of a request, as the Pusher
// SDKs build it: params (such as filter_by_prefix) plus the auth_
// parameters and body_md5 for a body. For tests and the load tool.
func (c APICredentials) SignQuery(method, path string, params map[string]string, body []byte, now time.Time) string {
	all := make(map[string]string, len(params)+5)
	for k, v := range params {
		all[strings.ToLower(k)] = v
	}
	all["auth_key"] = c.Key
	all["auth_timestamp"] = strconv.FormatInt(now.Unix(), 10)
	all["auth_version"] = "1.0"
	if len(body) > 0 {
		all["body_md5"] = BodyMD5(body)
	}
	query := canonicalQuery(all)
	all["auth_signature"] = hex.EncodeToString(c.mac(method, path, query))
	v := make(url.Values, len(all))
	for k, s := range all {
		v.Set(k, s)
	}
	return v.Encode()
}
