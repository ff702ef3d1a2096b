package testenv

import (
	"os/exec"
	"strconv"
	"strings"
)

// NodeAtLeast reports whether a node binary of at least major.minor is on
// the PATH: the browser and client suites run npm packages (pusher-js,
// playwright-core) and Node's test runner that need a recent one, and
// Debian 12's own nodejs (18) is too old for them.
func NodeAtLeast(major, minor int) bool {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return false
	}
	parts := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	a, err1 := strconv.Atoi(parts[0])
	b, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return a > major || a == major && b >= minor
}

// NodeHint is what the skip message of a suite that needs Node suggests.
const NodeHint = "Node.js 20.19 or later (Debian 12's nodejs is 18: use NodeSource's or nodejs.org's)"
