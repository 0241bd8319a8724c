#!/usr/bin/env bash
# The demo: builds the binaries and runs Rigger's whole loop on this machine
# (see cmd/demo). Installs spiped when it is missing.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v spiped >/dev/null; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	echo "installing spiped"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq spiped
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "==> Building agent, bundler and the demo driver"
go build -o "$bin/" ./cmd/agent ./cmd/bundler ./cmd/demo
"$bin/demo" --bin "$bin" --infra testdata/infra/uirig "$@"
