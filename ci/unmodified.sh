#!/usr/bin/env bash
# Unmodified programs. The lesson's first program, run whole (--program), under
# exhaustive search with 2 buyers: with its multiprocessing.Lock every schedule within
# the bound is clean ("verified"), with the lock removed the search finds the oversell;
# the second program the same within 0 preemptions (skipped without python3). Then PostgreSQL buyers ({pg}): the four sound ones clean
# over 200 pct trials each, read-then-write found within 20 (skipped without PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/oversell
# Python's interpreter itself, not a version manager's shim, first on PATH.
. ci/lib/python-path.bash
postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    echo "skipped: PostgreSQL is not installed"
    return 0
  fi
  local store='sh fixtures/stores/pg.sh {pg} {op} {tickets}'
  echo "== PostgreSQL: read then write, pct"
  out=$("$bin" explore --buyer-cmd 'sh fixtures/buyers/pg_read_write.sh {pg}' --store-cmd "$store" \
    --schedule pct --buyers 2 --tickets 1 --trials 20 --seed 1 --no-explain --expect violation 2>&1)
  echo "$out" | grep -E '^finding in|^result:'
  grep -q 'lost_update' <<<"$out" || { echo "FAIL: the lost update was not found"; exit 1; }
  for b in pg_for_update pg_update_where pg_repeatable_read pg_advisory; do
    echo "== PostgreSQL: $b, 200 pct trials"
    out=$("$bin" explore --buyer-cmd "sh fixtures/buyers/$b.sh {pg}" --store-cmd "$store" \
      --schedule pct --buyers 2..3 --tickets 1..2 --trials 200 --seed 1 --expect clean 2>&1)
    echo "$out" | grep -E '^[0-9]+ trials|^result:'
  done
}
postgres
if ! python3 -c 'import multiprocessing' >/dev/null 2>&1; then
  echo "skipped: python3 is not on PATH, and the lesson's programs are Python"
  exit 0
fi
export LESSON_SLEEP=0.01
store=(--store-file db.txt --store-key count --sold '购票成功' --buyers 2 --tickets 1)
echo "== lesson 1 with its lock, exhaustive"
out=$("$bin" explore --program 'python3 fixtures/programs/lesson1.py {buyers} fork lock' \
  "${store[@]}" --schedule exhaustive --seed 1 --expect clean 2>&1)
echo "$out" | grep -v '^progress' | tail -3
grep -q '^verified: all executions' <<<"$out" || { echo "FAIL: not verified"; exit 1; }
echo "== lesson 1 without its lock, exhaustive"
out=$("$bin" explore --program 'python3 fixtures/programs/lesson1.py {buyers} fork nolock' \
  "${store[@]}" --schedule exhaustive --seed 1 --no-explain --expect violation 2>&1)
echo "$out" | grep -v '^progress' | grep -E 'finding in|result:'
grep -q 'oversold' <<<"$out" || { echo "FAIL: the oversell was not found"; exit 1; }
# Lesson 2: five processes (two `show`, two buyers, the main one) to interleave. Its
# search within 0 preemptions (every switch at a block, a sleep or an exit) ends in about
# a minute; within 1 it does not end in an hour here, and no verdict is claimed for it.
store2=(--store-file ticket --store-key ticket --sold '买到票了' --buyers 2 --tickets 1)
echo "== lesson 2 with its lock, exhaustive within 0 preemptions"
out=$("$bin" explore --program 'python3 fixtures/programs/lesson2.py {buyers} fork lock' \
  "${store2[@]}" --schedule exhaustive --preemptions 0 --seed 1 --expect clean 2>&1)
echo "$out" | grep -v '^progress' | tail -3
grep -q '^verified: all executions' <<<"$out" || { echo "FAIL: not verified"; exit 1; }
echo "== lesson 2 without its lock, exhaustive within 0 preemptions"
out=$("$bin" explore --program 'python3 fixtures/programs/lesson2.py {buyers} fork nolock' \
  "${store2[@]}" --schedule exhaustive --preemptions 0 --seed 1 --no-explain --expect violation 2>&1)
echo "$out" | grep -v '^progress' | grep -E 'finding in|result:'
grep -q 'oversold' <<<"$out" || { echo "FAIL: the oversell was not found"; exit 1; }
echo "== ci/unmodified.sh: passed"
