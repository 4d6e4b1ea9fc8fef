#!/usr/bin/env bash
# Soundness corpus: every lock command under fixtures/locks/sound/ must verify and every
# one under fixtures/locks/broken/ must be caught, by an exhaustive search of 2 buyers,
# 1 ticket, ≤ 2 preemptions (fixtures/locks/CORPUS.md says what each one is and why).
# Every broken one must be caught by pct too, within 100 trials (2 buyers, 1 ticket,
# seed 1): a second check of its own, printed as `... (pct)`.
#
# Expectation `verified`: the run prints `verified: ...`, or `not verified: ...` (a
# search that names why it could not finish), and no finding. Expectation `found`: the
# run reports a finding (exit 1). Expectation `unverified` (a broken lock whose race lies
# in memory no step orders): a finding, or `not verified: ...` naming why, never
# `verified`; pct must still find it. Expectation `verified-all` (the sound shell wrappers
# tests/suite/soundness.rs searches only within 1 preemption): `verified: all ...`, exit 0, no
# finding; a search that stops short fails it. Expectation `unseen` (a broken lock whose
# race runs through a path no schedule takes: a timer that ends a wait, a look at other
# processes through /proc): a finding or `not verified: ...` naming it, never `verified`
# or a plain clean — from the exhaustive search and from pct alike (pct is no search, but
# it must say what its trials could not cover). Expectation `found-search`: found by the
# exhaustive search, not asked of pct (a race two switches deep among dozens of lock calls
# of the same program, which 300 pct trials did not hit; CORPUS.md says which).
# Expectation `found-deep`: found by the search within 3 preemptions, and by pct (a race
# that needs a third switch, or a third poll while nothing changes: within 2 the search
# says `verified`, which its stated bound makes true; CORPUS.md says which). Anything else (a finding for a sound lock,
# a verified broken lock, a setup error, a timeout) fails the fixture.
#
# Usage: ci/soundness.sh [NAME...]   (only the fixtures whose path contains a NAME)
# The binary is ${OVERSELL:-target/release/oversell}; each search gets ${SOUNDNESS_TIMEOUT:-400} s.
# Exits 0 when every fixture met its expectation, 1 when any did not, 2 with no binary.
set -u
cd "$(dirname "$0")/.."

bin=${OVERSELL:-target/release/oversell}
# Python's interpreter itself, not a version manager's shim, first on PATH.
. ci/lib/python-path.bash
limit=${SOUNDNESS_TIMEOUT:-400}

# path                                                  expectation
corpus="
fixtures/locks/sound/symlink.sh                         verified
fixtures/locks/broken/symlink-test.sh                   found
fixtures/locks/sound/symlink.py                         verified
fixtures/locks/broken/symlink-lexists.py                found
fixtures/locks/sound/outside-flock.sh                   verified-all
fixtures/locks/broken/outside-test-touch.sh             found
fixtures/locks/sound/via-symlink-mkdir.sh               verified
fixtures/locks/broken/via-symlink-test-touch.sh         found
fixtures/locks/sound/fifo.sh                            verified-all
fixtures/locks/broken/fifo-test.sh                      found
fixtures/locks/sound/ls-poll-mkdir.sh                   verified
fixtures/locks/broken/ls-test-touch.sh                  found
fixtures/locks/sound/select-poll.py                     verified
fixtures/locks/sound/busy-mkdir.sh                      verified-all
fixtures/locks/broken/select-poll-test.py               found
fixtures/locks/sound/select-fd-mkdir.py                 verified
fixtures/locks/broken/select-fd-stale.py                found
fixtures/locks/sound/relock-flock-twice.py              verified
fixtures/locks/sound/upgrade-sh-ex.py                   verified
fixtures/locks/sound/ofd-twice.py                       verified
fixtures/locks/broken/relock-two-fds.py                 found
fixtures/locks/broken/posix-close-drops.py              found
fixtures/locks/broken/ofd-setlk-ignored.py              found
fixtures/locks/broken/pid-steal.sh                      found
fixtures/locks/sound/mkdir-p-mkdir.sh                   verified
fixtures/locks/broken/mkdir-p-test-touch.sh             found
fixtures/locks/sound/mmap-flock.py                      verified
fixtures/locks/broken/mmap-flag.py                      unverified
fixtures/locks/broken/sock-unlink-bind.py               unverified
fixtures/locks/broken/xattr-owner.py                    unverified
fixtures/locks/sound/link-count.sh                      verified-all
fixtures/locks/broken/two-names.sh                      found
fixtures/locks/sound/chown-mkdir.sh                     verified-all
fixtures/locks/broken/chown-flag.sh                     found
fixtures/locks/sound/fchmod-flock.py                    verified
fixtures/locks/broken/fchmod-flag.py                    found
fixtures/locks/sound/getlk-setlkw.py                    verified
fixtures/locks/broken/getlk-test.py                     found
fixtures/locks/sound/mtime-mkdir.sh                     verified-all
fixtures/locks/broken/mtime-flag.sh                     found
fixtures/locks/sound/pwritev-flock.py                   verified
fixtures/locks/broken/preadv-flag.py                    found
fixtures/locks/sound/flock-dir.sh                       verified-all
fixtures/locks/broken/dirmode-log.sh                    unverified
fixtures/locks/sound/home-mkdir.sh                      verified
fixtures/locks/broken/home-test-touch.sh                unverified
fixtures/locks/sound/flock-timeout.sh                   verified
fixtures/locks/broken/flock-timeout.sh                  unseen
fixtures/locks/broken/timeout-fallback.sh               unseen
fixtures/locks/sound/pgrep-mkdir.sh                     verified
fixtures/locks/broken/pgrep-instance.sh                 unseen
fixtures/locks/sound/subst-mkdir.sh                     verified
fixtures/locks/sound/sqlite-exclusive.sh                verified
fixtures/locks/broken/sqlite-flag.sh                    found-search
fixtures/locks/sound/uring-openat-excl.py               verified
fixtures/locks/broken/uring-statx-test.py               found
fixtures/locks/broken/threadself-size-flag.py           found
fixtures/locks/sound/inroot-excl.py                     verified
fixtures/locks/broken/inroot-test-create.py             found
fixtures/locks/sound/ioctl-flock.py                     verified
fixtures/locks/broken/ioctl-flag.py                     unseen
fixtures/locks/broken/alarm-lease-mkdir.py              unseen
fixtures/locks/sound/try-flock.sh                       verified-all
fixtures/locks/broken/try-flock-anyway.sh               found
fixtures/locks/sound/lockf-rewind.py                    verified
fixtures/locks/broken/lockf-after-read.py               found
fixtures/locks/sound/posix-upgrade.py                   verified
fixtures/locks/sound/posix-upgrade.pl                   verified
fixtures/locks/broken/lockf-after-read.pl               found
fixtures/locks/broken/posix-upgrade-giveup.py           found
fixtures/locks/sound/etc-mkdir.sh                       verified
fixtures/locks/broken/etc-test-touch.sh                 found
fixtures/locks/sound/node-mkdir.js                      verified
fixtures/locks/broken/node-exists-write.js              found
fixtures/locks/sound/seek-size-flock.pl                 verified
fixtures/locks/broken/seek-size-flag.pl                 found
fixtures/locks/broken/aio-flag.py                       unseen
fixtures/locks/broken/flock-upgrade-flag.pl             found
fixtures/locks/sound/dev-mkdir.sh                       verified
fixtures/locks/broken/dev-test-touch.sh                 found
fixtures/locks/sound/rwhint-flock.py                    verified
fixtures/locks/broken/rwhint-flag.py                    found
fixtures/locks/broken/fsxattr-flag.py                   unseen
fixtures/locks/sound/devnull-setlkw.pl                  verified
fixtures/locks/broken/devnull-getlk.pl                  found
fixtures/locks/broken/stale-mkdir.pl                    found-deep
fixtures/locks/sound/spin-mkdir.pl                      verified
fixtures/locks/broken/spin-test-create.pl               found
fixtures/locks/sound/mq-token.py                        verified
fixtures/locks/broken/mq-count.py                       found
fixtures/locks/sound/inotify-watch-first.pl             verified
fixtures/locks/broken/inotify-watch-after.pl            found-search
fixtures/locks/sound/sig-suspend.pl                     verified
fixtures/locks/broken/sig-pause.pl                      unseen
fixtures/locks/sound/freeze-waiters.pl                  verified
fixtures/locks/sound/bg-cleanup-mkdir.sh                verified
fixtures/locks/broken/setsid-lease.sh                   unseen
fixtures/locks/sound/tmpfile-link.pl                    verified
fixtures/locks/broken/tmpfile-stale.pl                  found
fixtures/locks/sound/sysv-fixed-sem.pl                  verified
fixtures/locks/broken/sig-pgrp-join.pl                  unseen
fixtures/locks/broken/pycache-test-touch.sh             found
"

if [ ! -x "$bin" ] && [ -z "${OVERSELL:-}" ]; then
    cargo build --release --quiet
fi
if [ ! -x "$bin" ]; then
    echo "soundness: no oversell binary at $bin (build it, or set OVERSELL)" >&2
    exit 2
fi

passed=0
failed=0
failures=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# check PATH EXPECTATION SCHEDULE: one search of PATH, its line, and the tally.
check() {
    local path=$1 expect=$2 schedule=$3 label=$1
    local start=$SECONDS
    if [ "$schedule" = pct ]; then
        label="$path (pct)"
        timeout "$limit" "$bin" explore --lock-cmd "$path {dir} {}" --schedule pct \
            --buyers 2 --tickets 1 --trials 100 --seed 1 --no-shrink >"$out" 2>&1
    else
        local bound=2
        [ "$expect" = found-deep ] && bound=3
        timeout "$limit" "$bin" explore --lock-cmd "$path {dir} {}" --schedule exhaustive \
            --buyers 2 --tickets 1 --preemptions "$bound" --no-shrink >"$out" 2>&1
    fi
    local status=$?
    secs=$((SECONDS - start))
    finding=$(grep -m1 '^finding in' "$out" | sed 's/^finding in [^:]*: //' | cut -c1-100)
    verdict=$(grep -m1 -E '^(not )?verified:' "$out" | cut -c1-100)
    if [ -n "$finding" ]; then
        got="found ($finding)"
    elif [ -n "$verdict" ]; then
        got="$verdict"
    elif [ "$status" -eq 124 ]; then
        got="timed out after ${limit} s"
    else
        got="exit $status: $(grep -m1 -E '^(error|warning)' "$out" | cut -c1-100)"
    fi
    ok=no
    case "$expect" in
        verified)
            if [ -z "$finding" ] && [ "$status" -ne 124 ] &&
                { { [ "$status" -eq 0 ] && grep -q '^verified:' "$out"; } ||
                    grep -q '^not verified:' "$out"; }; then
                ok=yes
            fi
            ;;
        verified-all)
            if [ -z "$finding" ] && [ "$status" -eq 0 ] && grep -q '^verified: all ' "$out"; then
                ok=yes
            fi
            ;;
        found | found-search | found-deep)
            if [ -n "$finding" ] && [ "$status" -eq 1 ]; then
                ok=yes
            fi
            ;;
        unverified | unseen)
            if { [ -n "$finding" ] && [ "$status" -eq 1 ]; } ||
                { [ "$status" -ne 124 ] && grep -q '^not verified:' "$out"; }; then
                ok=yes
            fi
            ;;
    esac
    if [ "$ok" = yes ]; then
        passed=$((passed + 1))
        printf 'ok    %-48s expected %-8s got %s (%d s)\n' "$label" "$expect" "$got" "$secs"
    else
        failed=$((failed + 1))
        failures+=("$label")
        printf 'FAIL  %-48s expected %-8s got %s (%d s)\n' "$label" "$expect" "$got" "$secs"
    fi
}

while read -r path expect; do
    [ -n "$path" ] || continue
    if [ $# -gt 0 ]; then
        wanted=no
        for name in "$@"; do
            case "$path" in *"$name"*) wanted=yes ;; esac
        done
        [ "$wanted" = yes ] || continue
    fi
    if [[ "$path" == *sqlite* ]] && ! command -v sqlite3 >/dev/null 2>&1; then
        printf 'skip  %-48s sqlite3 is not on PATH\n' "$path"
        continue
    fi
    if [[ "$path" == *.js ]] && ! command -v node >/dev/null 2>&1; then
        printf 'skip  %-48s node is not on PATH\n' "$path"
        continue
    fi
    if [[ "$path" == */etc-* ]] && [ ! -w /etc ]; then
        printf 'skip  %-48s /etc is not writable here (root only)\n' "$path"
        continue
    fi
    if [[ "$path" == */dev-* ]] && [ ! -w /dev ]; then
        printf 'skip  %-48s /dev is not writable here (root only)\n' "$path"
        continue
    fi
    check "$path" "$expect" exhaustive
    if [ "$expect" = found ] || [ "$expect" = found-deep ] || [ "$expect" = unverified ]; then
        check "$path" found pct
    elif [ "$expect" = unseen ]; then
        check "$path" unseen pct
    fi
done <<<"$corpus"

echo "$passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
    echo "soundness: wrong verdicts: ${failures[*]}"
    exit 1
fi
exit 0
