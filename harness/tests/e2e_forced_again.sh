#!/usr/bin/env bash
# e2e_forced_again.sh: R7's forced follow-ups find bugs that nothing else finds, one of each
# kind of forced state, each seeded into the pager by a mutant built in a scratch copy of the
# tree (as ci/mutants/run does). In both, R1-R6 pass on every state (--again off finds
# nothing) and no sampled follow-up runs (--again 0): only a forced one can report them.
#
# - A state cut in the create: ci/mutants/42-create-stale-section-crc.patch (FORCED_AGAIN_CREATE
#   names another) leaves a half-written page 0 that opens as valid and breaks at the file's
#   first directory append. The workload never appends one (regular pages only): the
#   follow-up's palloc is that first append.
# - A state recovery repairs: ci/mutants/32-recover-page0-before-reclaim.patch repairs
#   page 0 before reclaiming what an interrupted block append left, so a cut inside that
#   recovery (the follow-up's open) leaks the append's pages. blocks-1k appends blocks.
set -euo pipefail
source harness/tests/mutant_tree.sh
create_mutant=${FORCED_AGAIN_CREATE:-ci/mutants/42-create-stale-section-crc.patch}
repair_mutant=${FORCED_AGAIN_REPAIR:-ci/mutants/32-recover-page0-before-reclaim.patch}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
num() { grep -o "\"$1\": [0-9]*" <<<"$2" | grep -o '[0-9]*$'; }

# Builds the pager with a mutant; prints the path of that build's crashcheck.
mutant_crashcheck() {
  local patch=$1 dir
  [ -f "$patch" ] || fail "the mutant $patch is missing"
  dir="$tmp/$(basename "$patch" .patch)"
  build_mutant "$patch" "$dir" >&2
  echo "$dir/build/bin/crashcheck"
}

# explore CC CASE ARGS...: sets j (the JSON) and st (the exit status).
explore() {
  local cc=$1 case=$2
  shift 2
  set +e
  j=$($cc explore "$case" --quiet --json "$@")
  st=$?
  set -e
}

# Both kinds: R1-R6 alone find nothing; forced follow-ups alone find an R7 violation, with
# a reproducer that replays it. $1: crashcheck, $2: case, $3: a pattern of the violation.
only_forced_finds() {
  local cc=$1 case=$2 pattern=$3
  explore "$cc" "$case" --again off --out "$tmp/off"
  [ "$st" = 0 ] && [ "$(num violations "$j")" = 0 ] || fail "R1-R6 already find the seeded bug (exit $st): $j"
  [ "$(num again_runs "$j")" = 0 ] || fail "--again off ran follow-ups: $j"
  rm -rf "$tmp/out"
  explore "$cc" "$case" --again 0 --out "$tmp/out"
  [ "$(num again_sampled "$j")" = 0 ] || fail "--again 0 sampled follow-ups: $j"
  [ "$(num again_forced_same "$j")" -gt 0 ] || fail "no forced state was recognised as a file already followed: $j"
  [ "$st" = 1 ] || fail "explore exited $st, not 1 (a violation): $j"
  grep -q "$pattern" <<<"$j" || fail "no violation matches $pattern: $j"
  local repro
  repro=$(ls "$tmp/out"/R7-*.case | head -1)
  grep -q '^again [0-9]' "$repro" || fail "the reproducer has no second cut: $(cat "$repro")"
  set +e
  $cc replay "$repro" >"$tmp/replay" 2>&1
  st=$?
  set -e
  [ "$st" = 1 ] || { cat "$tmp/replay"; fail "replay of $repro exited $st, not 1"; }
  grep -q "R7 violated" "$tmp/replay" || { cat "$tmp/replay"; fail "replay of $repro does not report R7"; }
}

cat > "$tmp/regular.case" <<'CASE'
# Regular pages only: the file never gets a directory block.
crashcheck-case 1
page-size 1024
alloc
write-sync 0 1
alloc-bulk 2
free 1
CASE
cc=$(mutant_crashcheck "$create_mutant")
# In the create (operation 0), at the follow-up's first directory append.
only_forced_finds "$cc" "$tmp/regular.case" '"invariant": "R7", "step": [0-9]*, "call": "[a-z]*", "operation": 0, "operation_kind": "create"[^}]*in palloc'
[ "$(num again_forced_create "$j")" -gt 0 ] || fail "no state cut in the create was followed: $j"
echo "forced R7 in the create: ok ($(num again_forced_create "$j") followed, $(num again_forced_same "$j") the same file again)"

cc=$(mutant_crashcheck "$repair_mutant")
# After a block append's cut, a cut inside the follow-up's open (its recovery) loses pages.
only_forced_finds "$cc" corpus/workloads/blocks-1k '"invariant": "R7"[^}]*operation_kind": "palloc"[^}]*in open'
[ "$(num again_forced_repair "$j")" -gt 0 ] || fail "no repaired state was followed: $j"
echo "forced R7 after a repair: ok ($(num again_forced_repair "$j") followed, $(num again_forced_same "$j") the same file again)"

# The follow-ups' recordings run in children of the fork server (harness/forkserver.c), and
# decide as recordings executed one by one do (CRASHCHECK_NO_FORKSERVER=1): the same counts
# and the same first violation, with one worker and with two.
for jobs in 1 2; do
  explore "$cc" corpus/workloads/blocks-1k --again 0 --jobs "$jobs"
  forked=$j
  CRASHCHECK_NO_FORKSERVER=1 explore "$cc" corpus/workloads/blocks-1k --again 0 --jobs "$jobs"
  runs=$(num again_runs "$forked")
  [ "$runs" -gt 0 ] && [ "$(num again_forked "$forked")" = "$runs" ] ||
    fail "--jobs $jobs: not every follow-up was recorded in a child of the fork server: $forked"
  [ "$(num again_forked "$j")" = 0 ] || fail "CRASHCHECK_NO_FORKSERVER=1 still forked: $j"
  same() { sed 's/"seconds": [0-9.]*//; s/"states_per_sec": [0-9.]*//; s/"checked_per_sec": [0-9.]*//; s/"again_forked": [0-9]*//' <<<"$1"; }
  [ "$(same "$forked")" = "$(same "$j")" ] || fail "--jobs $jobs: the fork server's run decides otherwise:
  $forked
  $j"
done
for c in /proc/[0-9]*/cmdline; do
  # (a process may end between the glob and the read: its redirection's error is dropped too)
  { tr '\0' ' ' <"$c"; } 2>/dev/null | grep -q "^$cc __serve" && fail "a fork server outlived its explore: $c"
done
echo "fork server: ok ($runs follow-ups recorded in its children, the same verdicts)"
