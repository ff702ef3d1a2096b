// Package skips_test is run by test/run.sh in TestRunScript: two tests
// that skip for the same missing thing, and one that fails on request.
package skips_test

import (
	"os"
	"testing"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

func TestNeedsTheMoon(t *testing.T) {
	testenv.Require(t, false, "the moon", "apt-get install moon")
}

func TestNeedsTheMoonToo(t *testing.T) {
	testenv.Require(t, false, "the moon", "apt-get install moon")
}

func TestFailsOnRequest(t *testing.T) {
	if os.Getenv("RUN_SCRIPT_TEST_FAIL") == "1" {
		t.Fatal("failing on request")
	}
}
