package module

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// TestAppendPublished checks the hand-built success answer against what
// encoding/json writes for the same fields.
func TestAppendPublished(t *testing.T) {
	type item struct {
		Channel   string `json:"channel"`
		Cursor    string `json:"cursor"`
		Duplicate bool   `json:"duplicate"`
	}
	type answer struct {
		Status  string `json:"status"`
		Message string `json:"message"`
		Events  []item `json:"events"`
	}
	c := func(hi uint64) hub.Cursor { return hub.Cursor{Epoch: "abc", Pos: hub.Position{Hi: hi, Lo: 3}} }
	for _, res := range [][]hub.Appended{
		{{Channels: []string{"news"}, Cursors: []hub.Cursor{c(1)}}},
		{
			{Channels: []string{"a", "b.c:d@e=f"}, Cursors: []hub.Cursor{c(2), c(3)}},
			{Channels: []string{"news"}, Cursors: []hub.Cursor{c(1)}, Duplicate: true},
			{Channels: []string{"x_y-z"}, Cursors: []hub.Cursor{c(4)}},
		},
	} {
		want := answer{Status: "success", Events: []item{}}
		n, dups := 0, 0
		for _, a := range res {
			for i, cur := range a.Cursors {
				want.Events = append(want.Events, item{Channel: a.Channels[i], Cursor: cur.String(), Duplicate: a.Duplicate})
			}
			if a.Duplicate {
				dups++
			} else {
				n++
			}
		}
		want.Message = fmt.Sprintf("%d published, %d duplicate", n, dups)
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(appendPublished(nil, res)); got != string(b)+"\n" {
			t.Errorf("answer\n got %s\nwant %s", got, b)
		}
	}
}
