#!/usr/bin/env bash
# Soak: 2,000 flock trials with kill faults on the atomic store must give zero findings
# and leave zero processes. Uses the binary `cargo test` already built.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/debug/oversell"
[ -x "$bin" ] || cargo build --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== soak: 2000 flock trials, kill=0.3, atomic store"
TMPDIR="$tmp" "$bin" explore --lock flock --faults kill=0.3 --store atomic \
  --trials 2000 --seed 2026 --jitter-ms 1 --quiet --json "$tmp/soak.json"
python3 - "$tmp/soak.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert not r["findings"], r["findings"][:3]
assert r["trials_run"] == 2000, r["trials_run"]
print(f'soak: {r["trials_run"]} trials, 0 findings, {r["elapsed_ms"] / 1000:.1f} s')
PY
left=$(ps -eo pid=,args= | grep -F "$tmp" | grep -v grep || true)
if [ -n "$left" ]; then
  echo "soak: processes left behind:"; echo "$left"; exit 1
fi
leftdirs=$(find "$tmp" -mindepth 1 -maxdepth 1 -name 'oversell-*' | head -3)
if [ -n "$leftdirs" ]; then
  echo "soak: trial directories left behind: $leftdirs"; exit 1
fi
echo "soak: no process and no trial directory left"
