#!/usr/bin/env bash
# e2e_errors.sh: crashcheck explore --errors end to end: the real pager keeps the error
# contract and recovers from every crash state after every injected error of
# corpus/workloads/errors (at two page and sector sizes); the case text form's error line
# (show, bad lines refused); replay of an error case with and without a cut; a full disk
# after an injected ENOSPC: the real pager stays clean, ci/mutants/18's sparse growth is
# reported as E1 (its run dies of SIGBUS) and replays so, and so is ci/mutants/58's store past
# the end of the file (a signal the disk-full model did not send).
# (corpus/workloads/default takes ~50 s with --errors on the 2-core VM: too slow here.)
set -euo pipefail
source harness/tests/mutant_tree.sh
cc=build/bin/crashcheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
status() { set +e; "$@" >"$tmp/out" 2>&1; echo $?; set -e; }
num() { grep -o "\"$1\": [0-9]*" "$tmp/out" | head -1 | grep -o '[0-9]*$'; }

[ "$(status $cc explore --help)" = 0 ] || fail "explore --help"
grep -q -- "--errors" "$tmp/out" || fail "explore --help does not document --errors"

for config in 4096/512 1024/4096; do
  ps=${config%/*} sector=${config#*/}
  st=$(status $cc explore corpus/workloads/errors --errors --page-size "$ps" --sector "$sector" --quiet --json \
    --out "$tmp/out-$ps")
  [ "$st" = 0 ] || { cat "$tmp/out"; fail "explore --errors at $config exits $st"; }
  [ "$(num violations)" = 0 ] || fail "violations at $config"
  [ "$(num error_contract)" = 0 ] || fail "the pager broke the error contract at $config"
  [ "$(num error_runs)" -gt 50 ] || fail "too few error runs at $config: $(num error_runs)"
  [ "$(num error_states)" -gt 500 ] || fail "too few crash states after errors at $config"
done
# shards share the error runs out
all=$(num error_runs)
[ "$(status $cc explore corpus/workloads/errors --errors --page-size 1024 --sector 4096 --quiet --json --shard 0/2)" = 0 ] ||
  fail "shard 0/2"
a=$(num error_runs)
[ "$(status $cc explore corpus/workloads/errors --errors --page-size 1024 --sector 4096 --quiet --json --shard 1/2)" = 0 ] ||
  fail "shard 1/2"
[ $((a + $(num error_runs))) = "$all" ] || fail "the shards' error runs do not add up to $all"
# plain explore injects nothing
[ "$(status $cc explore corpus/workloads/errors --quiet --json --again 0)" = 0 ] || fail "plain explore"
[ "$(num error_runs)" = 0 ] || fail "plain explore made error runs"
# the summary counts them
[ "$(status $cc explore corpus/workloads/errors --errors --quiet)" = 0 ] || fail "summary"
grep -q "I/O errors .* runs with an error injected" "$tmp/out" || fail "the summary has no I/O error line"

# The error line of the text form.
{ grep -v '^#' corpus/workloads/errors | sed '/^cut none$/a error 17 EIO prefix:1'; } > "$tmp/e.case"
[ "$(status $cc show "$tmp/e.case")" = 0 ] || fail "show"
grep -qx "error 17 EIO prefix:1" "$tmp/out" || fail "show drops the error line"
for bad in "error 17 EBOGUS all" "error 17 EIO garbage:1" "error 0 EIO all" "error 17 EIO"; do
  sed "s/^error 17 EIO prefix:1\$/$bad/" "$tmp/e.case" > "$tmp/bad.case"
  [ "$(status $cc show "$tmp/bad.case")" = 2 ] || fail "\"$bad\" accepted"
done

# Replay: the run fails step 17 (an msync of the second palloc), the pager reports it, and
# the durable state it leaves holds every success; then with a cut right after the error.
[ "$(status $cc replay "$tmp/e.case")" = 0 ] || { cat "$tmp/out"; fail "replay of an error case"; }
grep -q "error at step 17: msync .* fails with EIO, outcome prefix:1" "$tmp/out" || fail "replay tells no error"
grep -q "the pager: operation [0-9]* failed" "$tmp/out" || fail "replay: the pager did not fail the operation"
sed 's/^cut none$/cut 18 tear none writeback none seed 0/' "$tmp/e.case" > "$tmp/ec.case"
[ "$(status $cc replay "$tmp/ec.case")" = 0 ] || { cat "$tmp/out"; fail "replay of an error case with a cut"; }
grep -q "power cut at step 18" "$tmp/out" || fail "replay made no cut"
grep -q "verdict: recovered correctly" "$tmp/out" || fail "replay verdict"
# minimize says it cannot shrink an error case, instead of writing it back unchanged
[ "$(status $cc minimize "$tmp/ec.case" -o "$tmp/min.case")" = 2 ] || fail "minimize of an error case"
grep -q "error line" "$tmp/out" || fail "minimize does not say why"

# A full disk: an injected ENOSPC leaves it full (the shim's disk-full model). The real pager
# reserves with fallocate and reports every later growth as MP_ENOSPC (clean above, and at
# 1024/512 here); the bug of ci/mutants/18 (growth falls back to ftruncate whenever fallocate
# fails) extends the file sparsely and commits: its next store into the new pages dies of
# SIGBUS, which explore --errors reports as E1 with the story, and replay tells again.
st=$(status $cc explore corpus/workloads/errors --errors --page-size 1024 --sector 512 --quiet --json)
[ "$st" = 0 ] && [ "$(num violations)" = 0 ] || { cat "$tmp/out"; fail "explore --errors at 1024/512"; }
m=$tmp/m18
build_mutant ci/mutants/18-extend-truncates-on-enospc.patch "$m"
st=$(status "$m/build/bin/crashcheck" explore corpus/workloads/errors --errors --out "$tmp/m18-out")
[ "$st" = 1 ] || { cat "$tmp/out"; fail "explore --errors of mutant 18 exits $st, not 1"; }
grep -q "^powercut: SIGBUS: a store through a shared mapping into the page at offset [0-9]* of .*, a hole the disk cannot back: the disk is full since step" \
  "$tmp/out" || fail "the shim does not say why it killed mutant 18's run"
grep -q "^E1 violated at step [0-9]* (fallocate, in operation [0-9]*: palloc)" "$tmp/out" || fail "mutant 18: no E1"
grep -q "found:    fallocate at step [0-9]* failed with ENOSPC in operation [0-9]* (palloc), which went on as if it had not failed: before it returned, a store into the page at offset [0-9]*, a hole the full disk cannot back, killed the run with SIGBUS" \
  "$tmp/out" || { cat "$tmp/out"; fail "mutant 18: the E1 story"; }
grep -q "expected: a full disk surfaces as MP_ENOSPC from the call that needs the space" "$tmp/out" || fail "mutant 18: expected"
repro=$(ls "$tmp"/m18-out/E1-*.case | head -1)
[ "$(status "$m/build/bin/crashcheck" replay "$repro")" = 1 ] || { cat "$tmp/out"; fail "replay of mutant 18's reproducer"; }
grep -q "verdict: E1 violated" "$tmp/out" && grep -q "killed the run with SIGBUS" "$tmp/out" || fail "replay: no E1 story"
# the real pager replays the same case cleanly
[ "$(status $cc replay "$repro")" = 0 ] || { cat "$tmp/out"; fail "the real pager on mutant 18's reproducer"; }

# A run killed by a signal the disk-full model did not send is the pager's E1 too, not a
# failure of crashcheck: ci/mutants/58 records the grown size after a failed fallocate, so
# the retried growth skips the extension and its store past the end of the file is SIGBUS
# from the kernel (no hole, no shim story). Explore reports it as E1 (exit 1, not 2) with the
# error and the signal, and its reproducer replays so.
m=$tmp/m58
build_mutant ci/mutants/58-extend-failure-keeps-size.patch "$m"
st=$(status "$m/build/bin/crashcheck" explore corpus/workloads/errors --errors --out "$tmp/m58-out")
[ "$st" = 1 ] || { cat "$tmp/out"; fail "explore --errors of mutant 58 exits $st, not 1"; }
grep -q "found:    fallocate at step [0-9]* failed with ENOSPC in operation [0-9]* ([a-z-]*); the run then died with signal 7 (Bus error)" \
  "$tmp/out" || { cat "$tmp/out"; fail "mutant 58: the E1 story"; }
grep -q "expected: a failed call leaves a handle that goes on working" "$tmp/out" || fail "mutant 58: expected"
repro=$(ls "$tmp"/m58-out/E1-*.case | head -1)
[ "$(status "$m/build/bin/crashcheck" replay "$repro")" = 1 ] || { cat "$tmp/out"; fail "replay of mutant 58's reproducer"; }
grep -q "verdict: E1 violated" "$tmp/out" && grep -q "died with signal 7" "$tmp/out" || fail "replay: no E1 story (58)"
[ "$(status $cc replay "$repro")" = 0 ] || { cat "$tmp/out"; fail "the real pager on mutant 58's reproducer"; }
echo "e2e_errors: ok"
