package module

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// publishLimits are the body limits of a publish endpoint.
type publishLimits struct {
	maxBody  int64
	maxBatch int
}

// publishResponse is the JSON answer to a refused publish. The success
// answer, which also lists the events, is built by appendPublished.
type publishResponse struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Code    string `json:"code,omitempty"`
	Field   string `json:"field,omitempty"`
}

// rejection is a publish refused before it reached the hub.
type rejection struct {
	status int
	code   string // also the metrics reason
	msg    string
	field  string
}

func (r *rejection) Error() string { return r.msg }

func reject(status int, code, msg string) *rejection {
	return &rejection{status: status, code: code, msg: msg}
}

// checkContentType requires a JSON body. The forms publishers send are
// recognised without a parse (mime.ParseMediaType allocates a map).
func checkContentType(r *http.Request) *rejection {
	ct := r.Header.Get("Content-Type")
	if ct == "application/json" || ct == "application/json; charset=utf-8" || ct == "application/json; charset=UTF-8" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return reject(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	return nil
}

// readBody reads at most maxBody bytes, refusing anything longer. With a
// Content-Length (what publishers send) the body is read into one buffer of
// exactly that size.
func readBody(r *http.Request, maxBody int64) ([]byte, *rejection) {
	tooLarge := func() *rejection {
		return reject(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("body is over the limit of %d bytes", maxBody))
	}
	if r.ContentLength > maxBody {
		return nil, tooLarge()
	}
	if r.ContentLength > 0 {
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, reject(http.StatusBadRequest, "bad_body", "could not read the body")
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, reject(http.StatusBadRequest, "bad_body", "could not read the body")
	}
	if int64(len(body)) > maxBody {
		return nil, tooLarge()
	}
	return body, nil
}

// parsePublishBody turns a body into publications, or a 400/413 rejection.
func parsePublishBody(body []byte, maxBatch int) ([]*hub.Publication, *rejection) {
	pubs, err := hub.ParsePublish(body, maxBatch)
	if err == nil {
		return pubs, nil
	}
	var pe *hub.PublishError
	if errors.As(err, &pe) {
		if pe.TooMany {
			return nil, &rejection{status: http.StatusRequestEntityTooLarge, code: "batch_too_large", msg: pe.Error(), field: pe.Field}
		}
		code := "invalid_event"
		if pe.Field == "body" {
			code = "invalid_json"
		}
		return nil, &rejection{status: http.StatusBadRequest, code: code, msg: pe.Error(), field: pe.Field}
	}
	return nil, reject(http.StatusBadRequest, "invalid_json", err.Error())
}

// publishBody is the publish pipeline after the credentials, shared by
// realtime_broadcast and the admin API: content type, body (unless the
// signature check has read it), JSON and schema, then the hub.
func publishBody(w http.ResponseWriter, r *http.Request, ph *pooledHub, body []byte, lim publishLimits) error {
	rj := checkContentType(r)
	if rj == nil && body == nil {
		body, rj = readBody(r, lim.maxBody)
	}
	if rj != nil {
		return writeRejection(w, ph.name, rj)
	}
	pubs, rj := parsePublishBody(body, lim.maxBatch)
	if rj != nil {
		return writeRejection(w, ph.name, rj)
	}
	return publishTo(r.Context(), w, ph, pubs)
}

// publishTo appends publications to a hub and writes the answer: 200 only
// once every event is in the hub's log, 503 if the log could not take them.
func publishTo(ctx context.Context, w http.ResponseWriter, ph *pooledHub, pubs []*hub.Publication) error {
	// A log that can wait bounds the wait itself (the Redis log: 2 s).
	start := time.Now()
	res, err := ph.Publish(ctx, pubs)
	ph.observePublish(time.Since(start))
	if err != nil {
		metrics.rejected.WithLabelValues(ph.name, "unavailable").Inc()
		ph.logger.Warn("publish failed", errField(err))
		w.Header().Set("Retry-After", "1")
		return writeJSON(w, http.StatusServiceUnavailable, publishResponse{Status: "error", Code: "unavailable", Message: "the event could not be accepted; retry later"})
	}
	return writeJSONBytes(w, http.StatusOK, appendPublished(make([]byte, 0, 128+80*len(pubs)), res))
}

// appendPublished appends the success answer:
//
//	{"status":"success","message":"1 published, 0 duplicate",
//	 "events":[{"channel":"c","cursor":"…","duplicate":false}]}
//
// It is built by hand because it is the answer to every publish. Channels
// and cursors are plain ASCII (checked at parse time), so they need no
// escaping (TestAppendPublished compares it with encoding/json's output).
func appendPublished(b []byte, res []hub.Appended) []byte {
	n, dups := 0, 0
	for _, a := range res {
		if a.Duplicate {
			dups++
		} else {
			n++
		}
	}
	b = append(b, `{"status":"success","message":"`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ` published, `...)
	b = strconv.AppendInt(b, int64(dups), 10)
	b = append(b, ` duplicate","events":[`...)
	first := true
	for _, a := range res {
		for i, c := range a.Cursors {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, `{"channel":"`...)
			b = append(b, a.Channels[i]...)
			b = append(b, `","cursor":"`...)
			b = c.AppendTo(b)
			b = append(b, `","duplicate":`...)
			b = strconv.AppendBool(b, a.Duplicate)
			b = append(b, '}')
		}
	}
	return append(b, "]}\n"...)
}

// writeRejection answers a rejected publish and counts it.
func writeRejection(w http.ResponseWriter, hubName string, rj *rejection) error {
	metrics.rejected.WithLabelValues(hubName, rj.code).Inc()
	return writeJSON(w, rj.status, publishResponse{Status: "error", Code: rj.code, Message: rj.msg, Field: rj.field})
}

// writeJSON writes v as the JSON answer; errors are for the client only,
// never an HTML error page from a later handler.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeJSONBytes(w, status, append(b, '\n'))
}

// writeJSONBytes writes b, a JSON document ending in a newline, as the answer.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) error {
	// The names are canonical already, so assigning skips Set's
	// canonicalisation, and the four values share one allocation (each
	// capped, so a later Add to one of them copies instead of overwriting).
	v := []string{"application/json", "no-store", "nosniff", strconv.Itoa(len(b))}
	h := w.Header()
	h["Content-Type"] = v[0:1:1]
	h["Cache-Control"] = v[1:2:2]
	h["X-Content-Type-Options"] = v[2:3:3]
	h["Content-Length"] = v[3:4:4]
	w.WriteHeader(status)
	_, err := w.Write(b)
	return err
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) error {
	return writeJSON(w, status, publishResponse{Status: "error", Code: code, Message: msg})
}

// credentials checks a publish request's secret: a bearer token, or an
// X-Realtime-Signature HMAC over the timestamp and the raw body. With the
// signature, the body is read here (it is part of the credential) and
// returned; with the bearer, body is nil and read later.
type credentials struct {
	secrets   [][]byte
	tolerance time.Duration
	now       func() time.Time
}

func (c *credentials) check(r *http.Request, maxBody int64) (body []byte, rj *rejection) {
	if sig := r.Header.Get("X-Realtime-Signature"); sig != "" {
		return c.checkSignature(r, sig, maxBody)
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

func (c *credentials) checkSignature(r *http.Request, header string, maxBody int64) ([]byte, *rejection) {
	ts, sigs, ok := parseSignature(header)
	if !ok {
		return nil, reject(http.StatusUnauthorized, "unauthorized", "malformed X-Realtime-Signature: want t=<unix seconds>,v1=<hex>")
	}
	now := c.now()
	if d := now.Sub(time.Unix(ts, 0)); d > c.tolerance || d < -c.tolerance {
		return nil, reject(http.StatusUnauthorized, "unauthorized", "signature timestamp outside the tolerance")
	}
	body, rj := readBody(r, maxBody)
	if rj != nil {
		return nil, rj
	}
	prefix := strconv.FormatInt(ts, 10) + "."
	match := 0
	for _, s := range c.secrets {
		m := hmac.New(sha256.New, s)
		m.Write([]byte(prefix))
		m.Write(body)
		want := m.Sum(nil)
		for _, got := range sigs {
			match |= subtle.ConstantTimeCompare(want, got)
		}
	}
	if match != 1 {
		return nil, reject(http.StatusUnauthorized, "unauthorized", "invalid signature")
	}
	return body, nil
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
