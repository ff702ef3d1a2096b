package module

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// BenchmarkBroadcastServeHTTP measures realtime_broadcast's own work for one
// event (credentials, body, parse, log append, answer) with the in-memory
// log, outside Caddy's chain: the part of a publish's cost this module owns.
// The body is the load tool's 200-byte event.
func BenchmarkBroadcastServeHTTP(b *testing.B) {
	h := hub.New("bench", hub.NewMemoryLog(1000, time.Hour))
	if err := h.Start(); err != nil {
		b.Fatal(err)
	}
	ph := &pooledHub{Hub: h, name: "bench", backend: "memory", log: newFollowingLogger(zap.NewNop())}
	bh := &BroadcastHandler{Hub: "bench", MaxBody: defaultMaxBody, MaxBatch: defaultMaxBatch, hub: ph,
		creds: &credentials{secrets: [][]byte{[]byte("bench-secret")}, tolerance: time.Minute, now: time.Now}}
	body := []byte(`{"channel":"bench","type":"load","payload":{"seq":1,"p":0,"ts":1764180000000000000,"pad":"` +
		strings.Repeat("x", 140) + `"}}`)
	rec := &benchWriter{header: make(http.Header)}
	req := httptest.NewRequest(http.MethodPost, "/pub", nil)
	req.Header.Set("Authorization", "Bearer bench-secret")
	req.Header.Set("Content-Type", "application/json")
	rd := bytes.NewReader(body)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rd.Reset(body)
		req.Body = readCloser{rd}
		req.ContentLength = int64(len(body))
		rec.reset()
		if err := bh.ServeHTTP(rec, req, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if rec.status != http.StatusOK {
		b.Fatalf("status %d: %s", rec.status, rec.body)
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// benchWriter is a ResponseWriter that keeps the last answer, reused across
// iterations so the benchmark counts the handler's allocations only.
type benchWriter struct {
	header http.Header
	status int
	body   []byte
}

func (w *benchWriter) Header() http.Header         { return w.header }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }
func (w *benchWriter) Write(b []byte) (int, error) { w.body = append(w.body, b...); return len(b), nil }
func (w *benchWriter) reset()                      { clear(w.header); w.status = 0; w.body = w.body[:0] }
