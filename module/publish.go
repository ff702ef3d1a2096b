package module

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// The publish pipeline of realtime_broadcast and the admin API, after the
// credentials (credentials.go): content type, body, JSON and schema, the
// hub's log, and the answer (respond.go).

// publishLimits are the body limits of a publish endpoint.
type publishLimits struct {
	maxBody  int64
	maxBatch int
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

// bodyReadTimeout bounds how long a publish body may take to arrive. Caddy
// sets no body read timeout by default, and a client that sends headers and
// then trickles (or never sends) its body would otherwise hold its
// connection for as long as it likes.
const bodyReadTimeout = 10 * time.Second

// readBody reads at most maxBody bytes, refusing anything longer, within
// bodyReadTimeout. trusted says the credentials are already proven (a
// bearer secret): then a body with a Content-Length is read into one buffer
// of exactly that size. Before that (a signed request, whose signature
// covers the body) the buffer only grows as bytes arrive, so a client that
// announces a large body and sends none holds no memory for it.
func readBody(w http.ResponseWriter, r *http.Request, maxBody int64, trusted bool) ([]byte, *rejection) {
	tooLarge := func() *rejection {
		return reject(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("body is over the limit of %d bytes", maxBody))
	}
	if r.ContentLength > maxBody {
		return nil, tooLarge()
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	if trusted && r.ContentLength > 0 {
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, badBody(err)
		}
		return body, nil
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, maxBody+1)); err != nil {
		return nil, badBody(err)
	}
	if int64(buf.Len()) > maxBody {
		return nil, tooLarge()
	}
	return buf.Bytes(), nil
}

func badBody(err error) *rejection {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return reject(http.StatusRequestTimeout, "body_timeout", fmt.Sprintf("the body did not arrive within %s", bodyReadTimeout))
	}
	return reject(http.StatusBadRequest, "bad_body", "could not read the body")
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
// signature check has read it), JSON and schema, then the hub. A request
// that does not get 200 published nothing.
func publishBody(w http.ResponseWriter, r *http.Request, ph *pooledHub, body []byte, lim publishLimits) error {
	rj := checkContentType(r)
	if rj == nil && body == nil {
		body, rj = readBody(w, r, lim.maxBody, true)
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
		ph.log.logger().Warn("publish failed", errField(err))
		w.Header().Set("Retry-After", "1")
		return writeJSON(w, http.StatusServiceUnavailable, publishResponse{Status: "error", Code: "unavailable", Message: "the event could not be accepted; retry later"})
	}
	return writeJSONBytes(w, http.StatusOK, appendPublished(make([]byte, 0, 128+80*len(pubs)), res))
}
