package main

import (
	"bytes"
	"math/bits"
	"strconv"
)

// Allocation-free scanners for the few fields the subscribers need. The tool
// writes the payload itself, so a key search is exact enough and far cheaper
// than decoding JSON for every delivery.

func contains(b, sub []byte) bool { return bytes.Contains(b, sub) }

// indexPrefix reports whether key occurs in the first 64 bytes of b (control
// frames put "type" first; searching a prefix keeps event frames cheap), or
// anywhere when the server orders keys differently and b is small.
func indexPrefix(b, key []byte) bool {
	if len(b) > 64 {
		if bytes.Contains(b[:64], key) {
			return true
		}
		// "type" might not come first: look before the payload starts.
		if i := bytes.Index(b, []byte(`"payload"`)); i >= 0 {
			return bytes.Contains(b[:i], key)
		}
	}
	return bytes.Contains(b, key)
}

func scanInt(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	var v int64
	n := 0
	for ; n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9'; n++ {
		v = v*10 + int64(b[n]-'0')
	}
	if n == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

func scanString(b, key []byte) ([]byte, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil, false
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 || j > 256 {
		return nil, false
	}
	return b[:j], true
}

func appendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

func popcount(x uint64) int { return bits.OnesCount64(x) }
