#!/usr/bin/env bash
# The demo: builds the binaries and runs Rigger's whole loop on this machine
# (see cmd/demo). Installs spiped and git when they are missing.
set -euo pipefail
cd "$(dirname "$0")"
.ci/install-deps
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "==> Building rigger-sim (the agent with the sim driver) and the demo driver"
go build -o "$bin/" ./cmd/rigger-sim ./cmd/demo
"$bin/demo" --bin "$bin" --infra testdata/infra/uirig "$@"
