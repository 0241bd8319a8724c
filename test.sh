#!/usr/bin/env bash
# The test command: installs what the suite needs, then vets (linux and
# freebsd), checks formatting and runs the whole suite with -race, end-to-end
# test included.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v spiped >/dev/null || need_apt+=(spiped)
command -v git >/dev/null || need_apt+=(git)
command -v dash >/dev/null || need_apt+=(dash)
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev) # the race detector needs cgo
if [ ${#need_apt[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	echo "installing: ${need_apt[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}"
fi

# FreeBSD's pfctl regression files, beside the clone in CI.
export RIGGER_PFCTL_CORPUS="${RIGGER_PFCTL_CORPUS:-$PWD/../shared/corpus/pfctl}"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" $unformatted >&2
	exit 1
fi
go vet ./...
GOOS=freebsd go vet ./...
# Under the race detector: the whole suite takes about 2 minutes on 2 cores.
go test -race -count=1 -timeout 30m ./...
