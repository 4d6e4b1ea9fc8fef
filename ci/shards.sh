#!/usr/bin/env bash
# The split ci/github-shards.yml runs on N machines, run here one shard after another:
# each shard's JSON report, then `oversell merge` of them all, whose count must equal the
# single run's. Usage: ci/shards.sh [N] [explore options...]; by default 4 shards of a
# small search (3 buyers, 2 tickets, 2 preemptions) so that it takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-4}"
shift || true
if [ "$#" -eq 0 ]; then
  set -- --lock flock --schedule exhaustive --buyers 3 --tickets 2 --preemptions 2 --seed 1
fi
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/oversell"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for k in $(seq 1 "$n"); do
  "$bin" explore "$@" --shard "$k/$n" --json "$out/shard-$k.json" --quiet || [ $? -le 1 ]
done
# Whole outputs into variables first: a reader that stops early (head, grep -q) would
# break the writer's pipe, and under pipefail that fails the script.
merge_out="$("$bin" merge "$out"/shard-*.json)"
echo "${merge_out%%$'\n'*}"
single_out="$("$bin" explore "$@")"
single="$(grep '^verified' <<<"$single_out" | sed 's/^verified: //')"
merged="$(grep '^verified across' <<<"$merge_out" | sed 's/^verified across [0-9]* shards: //')"
if [ "$single" = "$merged" ]; then
  echo "shards: the $n shards merge to the single run's count"
else
  echo "shards: single run: $single; merged: $merged" >&2
  exit 1
fi
