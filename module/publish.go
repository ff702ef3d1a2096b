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

// publishTimeout bounds how long a publish waits for the log (Redis): a
// publisher gets 503 within 2 s rather than hanging.
const publishTimeout = 2 * time.Second

// publishLimits are the body limits of a publish endpoint.
type publishLimits struct {
	maxBody  int64
	maxBatch int
}

// publishResponse is the JSON answer to a publish.
type publishResponse struct {
	Status  string          `json:"status"`
	Message string          `json:"message"`
	Events  []publishedItem `json:"events,omitempty"`
	Code    string          `json:"code,omitempty"`
	Field   string          `json:"field,omitempty"`
}

type publishedItem struct {
	Channel   string `json:"channel"`
	Cursor    string `json:"cursor"`
	Duplicate bool   `json:"duplicate"`
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

// checkContentType requires a JSON body.
func checkContentType(r *http.Request) *rejection {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return reject(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	return nil
}

// readBody reads at most maxBody bytes, refusing anything longer.
func readBody(r *http.Request, maxBody int64) ([]byte, *rejection) {
	if r.ContentLength > maxBody {
		return nil, reject(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("body is over the limit of %d bytes", maxBody))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, reject(http.StatusBadRequest, "bad_body", "could not read the body")
	}
	if int64(len(body)) > maxBody {
		return nil, reject(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("body is over the limit of %d bytes", maxBody))
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

// publishTo appends publications to a hub and writes the answer: 200 only
// once every event is in the hub's log, 503 if the log could not take them.
func publishTo(ctx context.Context, w http.ResponseWriter, ph *pooledHub, pubs []*hub.Publication) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	start := time.Now()
	res, err := ph.Publish(ctx, pubs)
	metrics.publishLatency.WithLabelValues(ph.name).Observe(time.Since(start).Seconds())
	if err != nil {
		metrics.rejected.WithLabelValues(ph.name, "unavailable").Inc()
		ph.logger.Warn("publish failed", errField(err))
		w.Header().Set("Retry-After", "1")
		return writeJSON(w, http.StatusServiceUnavailable, publishResponse{Status: "error", Code: "unavailable", Message: "the event could not be accepted; retry later"})
	}
	out := publishResponse{Status: "success"}
	n, dups := 0, 0
	for _, a := range res {
		for i, c := range a.Cursors {
			out.Events = append(out.Events, publishedItem{Channel: a.Channels[i], Cursor: c.String(), Duplicate: a.Duplicate})
		}
		if a.Duplicate {
			dups++
		} else {
			n++
		}
	}
	out.Message = fmt.Sprintf("%d published, %d duplicate", n, dups)
	return writeJSON(w, http.StatusOK, out)
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
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
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
