package hub

import (
	"reflect"
	"testing"
	"unicode/utf8"
)

func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{`{"type":"x"}`, `[{"type":"a","channels":["b","c"],"payload":[1,{"x":null}]}]`, `{"type":"x","id":"k","timestamp":"t"}`, `[`, `{"type":"realtime:x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pubs, err := ParsePublish(body, 10)
		if err != nil {
			if _, ok := err.(*PublishError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if !utf8.Valid(body) || len(pubs) == 0 || len(pubs) > 10 {
			t.Fatalf("accepted %q as %d publications", body, len(pubs))
		}
		for _, p := range pubs {
			if p.Type == "" || IsControlType(p.Type) || len(p.Channels) == 0 {
				t.Fatalf("accepted invalid publication %+v", p)
			}
			for _, c := range p.Channels {
				if !ValidChannel(c) {
					t.Fatalf("accepted channel %q", c)
				}
			}
			// Every accepted publication encodes as encoding/json would.
			checkEvent(t, NewEvent(Cursor{Epoch: "e", Pos: Position{Hi: 1}}, p.Channels[0], p, testNow))
		}
	})
}

func FuzzCursorAndGlob(f *testing.F) {
	f.Add("abc-1-2", "private-*.x")
	f.Add("", "*")
	f.Fuzz(func(t *testing.T, s, pat string) {
		if c, err := ParseCursor(s); err == nil {
			if c2, err := ParseCursor(c.String()); err != nil || c2 != c {
				t.Fatalf("round trip of %q failed", s)
			}
		}
		if len(pat) < 64 && len(s) < 256 {
			_ = Glob(pat, s) // must terminate quickly, never panic
		}
		if Glob("*", s) != true {
			t.Fatal("* must match everything")
		}
	})
}

// FuzzPublishDecoders checks that the fast decoder changes nothing: every
// body gets the same publications, or the same error, with it and without.
func FuzzPublishDecoders(f *testing.F) {
	for _, s := range []string{
		`{"type":"x"}`,
		`{"channel":"news","type":"post.published","payload":{"title":"Hello \"world\"","n":[1,2.5e3,true,null]},"id":"k1","timestamp":"t"}`,
		` {"type" : "a" , "payload" : [ 1 , { "x" : null } ] , "extra" : {"type":1}} `,
		`{"Type":"folded"}`, `{"type":"esc\u0041ped"}`, `{"type":null,"type":"late"}`, `{"type":"x","channel":null}`,
		`{"type":"x","channels":["a","b"]}`, `{"type":1}`, `{"type":"x","payload":null}`, `{"type":"x"} x`, `[{"type":"a"},{"type":"b","id":""}]`,
		`{"type":"x","ſ":1}`, `{"type":"x","\u0074ype":"y"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, errFast := parsePublish(body, 10, true)
		std, errStd := parsePublish(body, 10, false)
		if (errFast == nil) != (errStd == nil) || errFast != nil && errFast.Error() != errStd.Error() {
			t.Fatalf("%q: fast decoder error %v, reference %v", body, errFast, errStd)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: fast decoder gave %+v, reference %+v", body, fast, std)
		}
	})
}
