#!/usr/bin/env bash
# The test command: installs what the suite needs, then vets (linux and
# freebsd), checks formatting and runs the whole suite, end-to-end test included.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v spiped >/dev/null || need_apt+=(spiped)
command -v git >/dev/null || need_apt+=(git)
command -v dash >/dev/null || need_apt+=(dash)
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
go test -count=1 -timeout 30m ./...
