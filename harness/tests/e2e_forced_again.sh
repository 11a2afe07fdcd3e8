#!/usr/bin/env bash
# e2e_forced_again.sh: R7's forced follow-ups find a bug nothing else finds: a cut in mp_create
# that leaves a half-written page 0 which opens as valid, and breaks at the file's first
# directory append. The workload here never appends one (regular pages only), so R1-R6 pass on
# every state, and no sampled follow-up runs (--again 0): only the forced follow-up of the
# states cut in the create (whose palloc is that first append) can report it.
#
# The pager under test must have that defect. FORCED_AGAIN_MUTANT names a patch that seeds it
# into the pager (default: ci/mutants/42-create-stale-section-crc.patch, also a `make mutants` mutant);
# it is built in a scratch copy of the tree, as ci/mutants/run does. Without that file, the
# tree's own pager is the one under test (it must still have the defect).
set -euo pipefail
root=$(pwd)
build=${BUILD:-build}
mutant=${FORCED_AGAIN_MUTANT:-ci/mutants/42-create-stale-section-crc.patch}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
num() { grep -o "\"$1\": [0-9]*" <<<"$2" | grep -o '[0-9]*$'; }

cc=$build/bin/crashcheck
if [ -f "$mutant" ]; then
  mkdir -p "$tmp/tree/build"
  cp -rp Makefile pager faults harness ci corpus "$tmp/tree/"
  cp -rp "$build/rel" "$build/lib" "$build/bin" "$tmp/tree/build/"
  (cd "$tmp/tree" && patch -s -p1 < "$root/$mutant" && make -s BUILD=build build/bin/crashcheck) >"$tmp/build.log" 2>&1 ||
    { cat "$tmp/build.log"; fail "the mutant $mutant does not build"; }
  cc=$tmp/tree/build/bin/crashcheck
  echo "pager under test: with $mutant"
else
  echo "pager under test: the tree's own ($mutant is not there)"
fi

cat > "$tmp/regular.case" <<'CASE'
# Regular pages only: the file never gets a directory block.
crashcheck-case 1
page-size 1024
alloc
write-sync 0 1
alloc-bulk 2
free 1
CASE

# R1-R6 alone (no follow-up at all) find nothing: the half-written page 0 opens as valid.
j=$($cc explore "$tmp/regular.case" --quiet --json --again off --out "$tmp/off") || true
[ "$(num violations "$j")" = 0 ] || fail "R1-R6 already find the seeded defect, the test proves nothing: $j"
[ "$(num again_runs "$j")" = 0 ] || fail "--again off ran follow-ups: $j"

# Forced follow-ups only: the states cut in the create are each followed (once per recovered file).
set +e
j=$($cc explore "$tmp/regular.case" --quiet --json --again 0 --out "$tmp/out")
st=$?
set -e
[ "$(num again_sampled "$j")" = 0 ] || fail "--again 0 sampled follow-ups: $j"
[ "$(num again_forced_create "$j")" -gt 0 ] || fail "no state cut in the create was followed: $j"
[ "$(num again_forced_same "$j")" -gt 0 ] || fail "no create state was recognised as one already followed: $j"
[ "$st" = 1 ] || fail "explore exited $st, not 1 (a violation): $j"
grep -q '"invariant": "R7", "step": [0-9]*, "call": "[a-z]*", "operation": 0, "operation_kind": "create"' <<<"$j" ||
  fail "no R7 violation in the create: $j"
grep -q 'in palloc' <<<"$j" || fail "the R7 violation is not at the follow-up's first directory append: $j"

# Its reproducer replays the same story: the cut in the create, then the one in the follow-up.
repro=$(ls "$tmp/out"/R7-*.case | head -1)
grep -q '^again [0-9]' "$repro" || fail "the reproducer has no second cut: $(cat "$repro")"
set +e
$cc replay "$repro" >"$tmp/replay" 2>&1
st=$?
set -e
[ "$st" = 1 ] || { cat "$tmp/replay"; fail "replay of $repro exited $st, not 1"; }
grep -q "R7 violated" "$tmp/replay" || { cat "$tmp/replay"; fail "replay does not report R7"; }
echo "forced R7 follow-ups: ok ($(num again_forced_create "$j") create states followed, $(num again_forced_same "$j") the same file again)"
