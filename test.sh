#!/usr/bin/env bash
# The test command: installs what the suite needs, then vets (linux and
# freebsd), checks formatting and runs the whole suite with -race, end-to-end
# test included.
set -euo pipefail
cd "$(dirname "$0")"

.ci/install-deps --race

# FreeBSD's pfctl regression files, beside the clone in CI.
export RIGGER_PFCTL_CORPUS="${RIGGER_PFCTL_CORPUS:-$PWD/../shared/corpus/pfctl}"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" $unformatted >&2
	exit 1
fi
go vet ./...
GOOS=freebsd go vet ./...
# 32-bit FreeBSD hosts (armv7) run the agent too: an untyped constant
# that overflows int must fail here, not on the host.
GOOS=freebsd GOARCH=arm go build ./...
# Under the race detector: the whole suite takes about 7 minutes on 2 cores.
go test -race -count=1 -timeout 30m ./...
# Every benchmark once, so that the ones bench.sh reads cannot rot
# unnoticed (BenchmarkVerifyServerA once failed on a new agent root).
go test -run '^$' -bench . -benchtime 1x -count=1 ./...
