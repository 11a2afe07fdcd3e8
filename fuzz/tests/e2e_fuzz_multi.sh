#!/usr/bin/env bash
# e2e_fuzz_multi.sh: a campaign over two "machines", as README's Fuzzing section spells it: two
# output directories side by side, each fuzzed by `make fuzz`'s script under its own FUZZ_NODE
# (a keeps the -M node, b says FUZZ_MAIN=no), then the documented sync both ways (fuzz/sync.sh,
# what `make fuzz-sync FROM=...` runs; a names b as host:/path, rsync's remote form, through a
# stand-in for ssh), then both resumed. Asserts that each machine's instance then holds entries
# afl-fuzz imported from the other's ("id:...,sync:PEER,..."): a's -M node from b's secondary,
# and b's secondary from a's -M node (which AFL++ 4 allows only when the copy carries an
# is_main_node marker, which the sync lays). Also the refusals: a machine's own directory, a
# peer under one of our names, a host it cannot reach, a directory that is no fuzz/out, bad
# FUZZ_NODE and FUZZ_MAIN. One core per machine, fuzz_image (the fast target), 2 x 10 s.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
BUILD=${BUILD:-build}
work=$(mktemp -d "$BUILD/fuzz-multi.XXXXXX")   # not /tmp: the project's scripts keep out of it
trap 'rm -rf "$work"' EXIT
fail=0
export FUZZ_TARGETS=fuzz_image FUZZ_INSTANCES=main FUZZ_TIME=10s BUILD
a=$work/a/fuzz/out b=$work/b/fuzz/out

both() { # PHASE: both machines fuzz at once, each on its own core
  FUZZ_OUT=$a FUZZ_NODE=a fuzz/run.sh >"$work/a-$1.log" 2>&1 & local pa=$!
  FUZZ_OUT=$b FUZZ_NODE=b FUZZ_MAIN=no fuzz/run.sh >"$work/b-$1.log" 2>&1 & local pb=$!
  wait $pa || { echo "FAIL: machine a, $1: fuzz/run.sh failed"; cat "$work/a-$1.log"; fail=1; }
  wait $pb || { echo "FAIL: machine b, $1: fuzz/run.sh failed"; cat "$work/b-$1.log"; fail=1; }
  grep -q '^fuzz_image  a-main ' "$work/a-$1.log" || { echo "FAIL: machine a, $1: no stats of a-main"; cat "$work/a-$1.log"; fail=1; }
  grep -q '^fuzz_image  b-main ' "$work/b-$1.log" || { echo "FAIL: machine b, $1: no stats of b-main"; cat "$work/b-$1.log"; fail=1; }
}
entries() { find "$1" -maxdepth 1 -name "${2:-id:*}" 2>/dev/null | wc -l; } # QUEUE [GLOB] -> count

both first
# Roles as asked: a's instance is the -M node, b's a secondary.
grep -q -- "-M a-main" "$a/fuzz_image/a-main/fuzzer_stats" || { echo "FAIL: a-main did not run as -M"; fail=1; }
grep -q -- "-S b-main" "$b/fuzz_image/b-main/fuzzer_stats" || { echo "FAIL: b-main did not run as -S"; fail=1; }

# The documented sync, each machine naming the other: a names b as a remote host:/path, through
# an rsync "remote shell" that runs rsync's server side here (rsync over ssh, without ssh).
printf '#!/bin/sh\nshift\nexec "$@"\n' >"$work/rsh" && chmod +x "$work/rsh"
if FUZZ_OUT=$a RSYNC_RSH=$work/rsh fuzz/sync.sh "machine-b:$(realpath "$b")" >"$work/sync-a.log" 2>&1 &&
   FUZZ_OUT=$b fuzz/sync.sh "$a" >"$work/sync-b.log" 2>&1; then
  echo "ok: sync: $(cat "$work/sync-a.log"); $(cat "$work/sync-b.log")"
else
  echo "FAIL: fuzz/sync.sh:"; cat "$work/sync-a.log" "$work/sync-b.log"; fail=1
fi
nb=$(entries "$b/fuzz_image/b-main/queue") na=$(entries "$a/fuzz_image/a-main/queue")
[ "$(entries "$a/fuzz_image/b-main/queue")" -eq "$nb" ] || { echo "FAIL: a holds not all of b-main's $nb entries"; fail=1; }
[ "$(entries "$b/fuzz_image/a-main/queue")" -eq "$na" ] || { echo "FAIL: b holds not all of a-main's $na entries"; fail=1; }
# a-main has stopped, and removed its marker: the sync lays one for it from its stats.
[ -e "$b/fuzz_image/a-main/is_main_node" ] || { echo "FAIL: b's copy of a-main (-M) has no is_main_node marker"; fail=1; }
[ ! -e "$a/fuzz_image/b-main/is_main_node" ] || { echo "FAIL: a's copy of b-main (-S) has an is_main_node marker"; fail=1; }
[ ! -e "$a/fuzz_image/b-main/fuzzer_stats" ] && [ ! -e "$a/fuzz_image/b-main/crashes" ] ||
  { echo "FAIL: the sync copied more than the queue and the marker"; fail=1; }

# A secondary imports at its own sync times, after its calibration: on a loaded 2-core machine
# the first 10 s may end before either; the campaign is then resumed again (up to twice).
for round in resumed resumed-2 resumed-3; do
  both $round
  ia=$(entries "$a/fuzz_image/a-main/queue" 'id:*,sync:b-main,*') ib=$(entries "$b/fuzz_image/b-main/queue" 'id:*,sync:a-main,*')
  [ "$ia" -gt 0 ] && [ "$ib" -gt 0 ] && break
done
if [ "$ia" -gt 0 ] && [ -s "$a/fuzz_image/a-main/.synced/b-main" ]; then
  echo "ok: a-main (-M) imported $ia of b-main's $nb entries"
else
  echo "FAIL: a-main imported nothing from b-main (.synced: $(find "$a/fuzz_image/a-main/.synced" -type f -printf '%f ' 2>&1))"; fail=1
fi
if [ "$ib" -gt 0 ] && [ -s "$b/fuzz_image/b-main/.synced/a-main" ]; then
  echo "ok: b-main (-S) imported $ib of a-main's $na entries"
else
  echo "FAIL: b-main imported nothing from a-main (.synced: $(find "$b/fuzz_image/b-main/.synced" -type f -printf '%f ' 2>&1))"; fail=1
fi

# Refusals, each with its reason.
refused() { # WHAT PATTERN -- COMMAND...
  local what=$1 pattern=$2 out rc
  shift 3
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q "$pattern" <<<"$out"; then echo "ok: refused: $what"; else
    echo "FAIL: $what: expected a refusal saying \"$pattern\", got exit $rc: $out"; fail=1; fi
}
refused "a sync from itself" "this machine's own" -- env FUZZ_OUT="$a" fuzz/sync.sh "$a"
cp -r "$b" "$work/clash" && rm -rf "$work/clash/fuzz_image/a-main" && mv "$work/clash/fuzz_image/b-main" "$work/clash/fuzz_image/a-main"
refused "a peer named as one of ours" "runs here too" -- env FUZZ_OUT="$a" fuzz/sync.sh "$work/clash"
refused "a host it cannot reach" "cannot list" -- env FUZZ_OUT="$a" RSYNC_RSH=false fuzz/sync.sh "machine-c:/src/fuzz/out"
refused "a directory that is no fuzz/out" "no TARGET/INSTANCE/fuzzer_stats" -- env FUZZ_OUT="$a" fuzz/sync.sh corpus
refused "a bad FUZZ_NODE" "letters, digits" -- env FUZZ_OUT="$a" FUZZ_NODE=a-b fuzz/run.sh
refused "a bad FUZZ_MAIN" "yes or no" -- env FUZZ_OUT="$a" FUZZ_MAIN=maybe fuzz/run.sh
exit $fail
