#!/usr/bin/env bash
# The README's speed figures are the output of `oversell bench --quick`, never copied by
# hand. With --write this builds the release binary, runs the bench and puts its output,
# with the date and the machine's core count, between the markers
#   <!-- bench:begin (ci/readme-bench.sh --write fills this block) -->
#   <!-- bench:end -->
# in README.md (everything between them is replaced). Without --write (as .ci/run calls
# every ci/*.sh) it runs no bench: it checks that the markers are there, in order.
# Exit status: 0 done; 1 the markers are missing; anything else, the build or bench failed.
set -euo pipefail
cd "$(dirname "$0")/.."
begin='<!-- bench:begin (ci/readme-bench.sh --write fills this block) -->'
end='<!-- bench:end -->'
b=$(grep -nxF "$begin" README.md | cut -d: -f1 | head -1)
e=$(grep -nxF "$end" README.md | cut -d: -f1 | head -1)
if [ -z "$b" ] || [ -z "$e" ] || [ "$b" -ge "$e" ]; then
  echo "readme-bench: README.md lacks the bench markers (or they are out of order)"
  exit 1
fi
if [ "${1:-}" != "--write" ]; then
  echo "readme-bench: the bench block is marked (ci/readme-bench.sh --write refreshes it)"
  exit 0
fi
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/oversell"
body=$(mktemp)
new=$(mktemp)
trap 'rm -f "$body" "$new"' EXIT
{
  echo "\`oversell bench --quick\` (release build, $(nproc) cores, $(date -u +%Y-%m-%d)), as"
  echo "\`ci/readme-bench.sh --write\` printed it:"
  echo
  echo '```text'
  # Trailing spaces and the closing blank lines go; the bench's progress stays on stderr.
  "$bin" bench --quick | sed -e 's/[[:space:]]*$//' | awk 'NF { while (n > 0) { print ""; n-- } print; next } { n++ }'
  echo '```'
} >"$body"
head -n "$b" README.md >"$new"
cat "$body" >>"$new"
tail -n +"$e" README.md >>"$new"
cat "$new" >README.md
echo "readme-bench: README.md's bench block rewritten"
