#!/usr/bin/env bash
# --program: the lesson's first program, run whole, under exhaustive search with 2 buyers.
# With its multiprocessing.Lock every schedule within the bound is clean ("verified");
# with the lock removed the search finds the oversell. Skipped without python3.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import multiprocessing' >/dev/null 2>&1; then
  echo "skipped: python3 is not on PATH, and the lesson's programs are Python"
  exit 0
fi
cargo build --release --quiet
bin=target/release/oversell
export LESSON_SLEEP=0.01
store=(--store-file db.txt --store-key count --sold '购票成功' --buyers 2 --tickets 1)
echo "== lesson 1 with its lock, exhaustive"
out=$("$bin" explore --program 'python3 fixtures/programs/lesson1.py {buyers} fork lock' \
  "${store[@]}" --schedule exhaustive --seed 1 --quiet --expect clean 2>&1)
echo "$out" | grep -v '^progress' | tail -3
echo "$out" | grep -q '^verified: all executions' || { echo "FAIL: not verified"; exit 1; }
echo "== lesson 1 without its lock, exhaustive"
out=$("$bin" explore --program 'python3 fixtures/programs/lesson1.py {buyers} fork nolock' \
  "${store[@]}" --schedule exhaustive --seed 1 --no-explain --expect violation 2>&1)
echo "$out" | grep -v '^progress' | grep -E 'finding in|result:'
echo "$out" | grep -q 'oversold' || { echo "FAIL: the oversell was not found"; exit 1; }
echo "== ci/program.sh: passed"
