#!/usr/bin/env bash
# e2e_adopt.sh: a workload that starts from a file the reference implementation wrote (an
# image line: corpus/workloads/adopt-protected, from corpus/interop/protected-4k) has its
# first writer open, the adoption, cut and checked like any operation: crash states in that
# open are checked with the adoption still to finish (MP_RECOVER_ADOPT), its writes are
# coverage cells (recovery/directory-mirror), and a pager that marks the file as its own
# before it mirrors the lagging directory copies (ci/mutants/33-adopt-marks-before-mirror.patch,
# ADOPT_MUTANT names another) loses a regular page the lagging copy still names: R3 in the
# open, with a reproducer that replays. The image fixes the page size: explore refuses
# another, coverage leaves the case out at the others.
set -euo pipefail
source harness/tests/mutant_tree.sh
build=${BUILD:-build}
cc=$build/bin/crashcheck
mutant=${ADOPT_MUTANT:-ci/mutants/33-adopt-marks-before-mirror.patch}
workload=corpus/workloads/adopt-protected
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
num() { grep -o "\"$1\": [0-9]*" <<<"$2" | grep -o '[0-9]*$'; }
explore() { # explore CC ARGS...: sets j (the JSON) and st (the exit status)
  local c=$1
  shift
  set +e
  j=$($c explore "$workload" --quiet --json "$@" 2>"$tmp/err")
  st=$?
  set -e
}

grep -q '^image \.\./interop/protected-4k\.img\.gz' "$workload" || fail "$workload does not start from protected-4k"

# The pager as it is: clean, with states cut inside the adoption.
explore "$cc" --out "$tmp/clean"
[ "$st" = 0 ] && [ "$(num violations "$j")" = 0 ] || fail "explore of $workload exited $st: $j $(cat "$tmp/err")"
open=$(num open_states "$j") adopt=$(num adopt_states "$j")
[ "$open" -gt 0 ] || fail "no crash state was cut in the image's open: $j"
[ "$adopt" -gt 0 ] || fail "no crash state in the open had the adoption still to finish: $j"
grep -q '"recovery/directory-mirror/anywhere"' <<<"$j" || fail "the adoption's mirror is no coverage cell: $j"
[ "$(num again_forced_repair "$j")" -gt 0 ] || fail "no state was followed by R7: $j"
$cc explore "$workload" --quiet --again off | grep -q "starting from .*corpus/interop/protected-4k.img.gz" ||
  fail "explore does not say which image the run started from"
echo "adoption explored: $open crash states in the open, $adopt with the adoption unfinished"

# The image's page size is the case's: another is refused with a word on why.
set +e
$cc explore "$workload" --page-size 1024 --quiet >"$tmp/out" 2>&1
st=$?
set -e
[ "$st" = 2 ] || fail "--page-size 1024 on a 4096-byte image exited $st, not 2: $(cat "$tmp/out")"
grep -q "whose pages are 4096 bytes: --page-size 1024 does not apply" "$tmp/out" || fail "unclear refusal: $(cat "$tmp/out")"
set +e
$cc encode "$workload" -o "$tmp/bin" >"$tmp/out" 2>&1
st=$?
set -e
[ "$st" = 2 ] && grep -q "binary form has no room" "$tmp/out" || fail "encode of an image case exited $st: $(cat "$tmp/out")"
# crashcheck coverage explores it at its image's page size only, and says so.
$cc coverage corpus/workloads/adopt-allocs --page-size 1024 --page-size 4096 --sector 512 --json >"$tmp/cov" 2>"$tmp/cov.err" ||
  fail "coverage of adopt-allocs failed: $(cat "$tmp/cov.err")"
grep -q "adopt-allocs starts from a 4096-byte-page image: explored at that page size only" "$tmp/cov.err" ||
  fail "coverage does not say it explores the image case at its page size only: $(cat "$tmp/cov.err")"
[ "$(grep -c '"page_size": 1024, "sector": 512, "covered": 0,' "$tmp/cov")" = 1 ] ||
  fail "coverage explored the 4096-byte image case at 1024-byte pages: $(cat "$tmp/cov")"
[ "$(grep -o '"page_size": 4096, "sector": 512, "covered": [0-9]*' "$tmp/cov" | grep -o '[0-9]*$')" -gt 0 ] ||
  fail "coverage did not explore the image case at its own page size: $(cat "$tmp/cov")"

# The mutant, built in a scratch copy of the tree (as ci/mutants/run does).
dir="$tmp/mutant"
build_mutant "$mutant" "$dir"
cd "$dir"
explore build/bin/crashcheck --again off --out "$tmp/found"
[ "$st" = 1 ] || fail "the mutant's explore exited $st, not 1: $j $(cat "$tmp/err")"
grep -q '"invariant": "R3", "step": [0-9]*, "call": "msync", "operation": 0, "operation_kind": "open"' <<<"$j" ||
  fail "no R3 in the image's open: $j"
repro=$(ls "$tmp/found"/R3-*.case | head -1)
grep -q '^image \.\./mutant/corpus/interop/protected-4k\.img\.gz$' "$repro" || # (from $tmp/found)
  fail "the reproducer's image is not relative to it: $(cat "$repro")"
set +e
build/bin/crashcheck replay "$repro" >"$tmp/replay" 2>&1
st=$?
set -e
[ "$st" = 1 ] && grep -q "open (adopts the image)    <- in flight" "$tmp/replay" && grep -q "R3 violated" "$tmp/replay" ||
  { cat "$tmp/replay"; fail "replay of $repro exited $st, without the story of R3 in the open"; }
echo "mutant $(basename "$mutant" .patch): R3 in the adoption, reproducer replays"
