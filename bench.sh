#!/usr/bin/env bash
# Prints the figures behind the speed and memory targets of the issues.
# Each figure comes from a Go benchmark (go test -bench) run here and now;
# run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")"
export RIGGER_PFCTL_CORPUS="${RIGGER_PFCTL_CORPUS:-$PWD/../shared/corpus/pfctl}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run() { # package, benchmark regexp
	go test -run '^$' -bench "$2" -benchmem -count 1 "$1" | tee -a "$out" | grep -E '^Benchmark' || true
}

echo "== topology: render a generated 1,000-host topology (target >= 2,000 hosts/s)"
run ./bundler/topology 'Render'
echo "== bundles: build+sign 1,000 hosts (target >= 500 hosts/s); verify serverA (target <= 2 ms)"
run ./bundler/bundle 'Build'
run ./verify 'Verify'
echo "== pf: parse a 5,000-rule file (target >= 50,000 rules/s)"
run ./policy/pf 'Parse'
echo "== apply: serverA on sim without restarts vs copy+fsync (target <= 3x copy, <= 20 ms)"
run ./apply 'Apply|Copy'
echo "== agent: no-change poll vs git ls-remote (target <= 2x, <= 10 ms); idle RSS (target <= 30 MB)"
run ./agent 'NoChangePoll'
run ./agent/cli 'IdleRSS'
