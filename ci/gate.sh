#!/usr/bin/env bash
# Regression gate: every token under fixtures/regressions/ must keep its verdict (the
# entries under redis/ need redis-server on PATH: .ci/run installs it first).
# `oversell gate DIR` exits 0 when all entries are kept, 1 when any changed (its CHANGED
# lines name the entry's file:line), 2 when the gate could not run (bad line, no entries,
# setup). Extra arguments are passed on (for example --attempts 5).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/oversell"
echo "== gate: fixtures/regressions"
status=0
"$bin" gate fixtures/regressions "$@" || status=$?
if command -v redis-server >/dev/null 2>&1; then
  echo "== gate: fixtures/regressions/redis"
  "$bin" gate fixtures/regressions/redis "$@" || { s=$?; [ "$status" -ge "$s" ] || status=$s; }
else
  echo "gate: fixtures/regressions/redis not run: redis-server is not on PATH"
fi
case "$status" in
  0) echo "gate: every entry kept its verdict" ;;
  1) echo "gate: a regression entry changed its verdict (see the CHANGED lines above)" ;;
  *) echo "gate: could not run (exit $status)" ;;
esac
exit "$status"
