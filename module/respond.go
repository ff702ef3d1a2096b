package module

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// JSON answers. Every answer of the module is JSON, never an HTML error
// page from a later handler.

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
