package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// captureTrace fetches a Go execution trace of the server from Caddy's
// admin endpoint (/debug/pprof/trace) for d and writes it to path. It
// runs beside the publish phase of one run, so that `go tool trace` shows
// lock waits, GC pauses and the scheduler against the delivery timeline.
// It is bounded by d plus a margin and by ctx.
func captureTrace(ctx context.Context, admin, path string, d time.Duration) error {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	url := fmt.Sprintf("%s/debug/pprof/trace?seconds=%d", admin, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("trace: %s: %s", resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("trace: %w", err)
	}
	return f.Close()
}
