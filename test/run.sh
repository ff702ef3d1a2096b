#!/usr/bin/env bash
# The test command: `go test -race ./...` (or go test with the arguments
# given, in place of `-race ./...`), then one line per suite that skipped
# for want of a service or package, naming the command that enables it.
# go test hides the output of passing packages, skips included; the suites
# report theirs to the file named by REALTIME_TEST_SKIPS (test/testenv).
# The exit status is go test's.
set -u
cd "$(dirname "$0")/.."
report=$(mktemp)
trap 'rm -f "$report"' EXIT
if [ $# -eq 0 ]; then set -- -race ./...; fi
REALTIME_TEST_SKIPS="$report" go test "$@"
status=$?
# One line per suite: the first reason it gave.
awk -F'\t' '!seen[$1]++' "$report" | sort | while IFS=$'\t' read -r suite reason; do
	echo "SKIPPED $suite: $reason"
done
exit $status
