#!/usr/bin/env bash
# e2e_crashcheck.sh: the crashcheck binary end to end: usage errors, explore (summary,
# JSON, jobs and shards that add up), show/encode, check, replay of cut cases and of
# arbitrary byte strings, minimize's refusal of a clean case, CRASHCHECK_VERIFY's comparison
# of cached and fresh verdicts (ci/mutants/63), garbage tears (ci/mutants/61), a reader's
# view of the regular pages (ci/mutants/56), --fail-fast (on mutant 56).
set -euo pipefail
source harness/tests/mutant_tree.sh
cc=build/bin/crashcheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
status() { set +e; "$@" >"$tmp/out" 2>&1; echo $?; set -e; }

[ "$(status $cc --help)" = 0 ] || fail "--help"
[ "$(status $cc)" = 2 ] || fail "no command must exit 2"
[ "$(status $cc frobnicate)" = 2 ] || fail "unknown command must exit 2"
[ "$(status $cc explore --bogus)" = 2 ] || fail "unknown option must exit 2"
[ "$(status $cc explore --shard 3/2)" = 2 ] || fail "bad shard must exit 2"
[ "$(status $cc explore /nonexistent.case)" = 2 ] || fail "missing case must exit 2"
for c in explore check replay minimize show encode generate; do
  [ "$(status $cc $c --help)" = 0 ] || fail "$c --help"
  grep -q "usage: crashcheck $c" "$tmp/out" || fail "$c --help prints no usage"
done

# A small workload with every kind of operation.
cat > "$tmp/w.case" <<'CASE'
# every kind once or twice
crashcheck-case 1
page-size 1024
alloc-bulk 6
write-sync 2 9
write 1 4
free 0
free-bulk 1 2
sync
palloc
palloc
pwrite 1 3
pabort 0 8
pfree 0
reopen
alloc
CASE
$cc explore "$tmp/w.case" --quiet --out "$tmp/out1" > "$tmp/summary" || { cat "$tmp/summary"; fail "explore of a small workload"; }
grep -q "violations       0" "$tmp/summary" || { cat "$tmp/summary"; fail "violations on a correct pager"; }
grep -q "forced: [0-9]* where recovery repaired or reclaimed, [0-9]* cut in the create" "$tmp/summary" ||
  { cat "$tmp/summary"; fail "the summary does not count R7's forced follow-ups"; }
json=$($cc explore "$tmp/w.case" --quiet --json)
for key in steps states distinct_states violations leaks seconds states_per_sec checked_per_sec violation_list again_runs again_states \
    again_forced_repair again_forced_create again_forced_same again_sampled; do
  grep -q "\"$key\"" <<<"$json" || fail "JSON lacks $key: $json"
done
num() { grep -o "\"$1\": [0-9]*" <<<"$2" | grep -o '[0-9]*$'; }
distinct=$(num distinct_states "$json")
[ "$distinct" -gt 50 ] || fail "too few distinct states: $distinct"
[ "$(num violations "$json")" = 0 ] || fail "violations in JSON"
# The image file is kept up to date sector by sector; CRASHCHECK_VERIFY compares it
# with the whole image every time (it aborts on a difference).
jv=$(CRASHCHECK_VERIFY=1 $cc explore "$tmp/w.case" --quiet --json)
[ "$(num distinct_states "$jv")" = "$distinct" ] || fail "verified run checked $(num distinct_states "$jv"), not $distinct"
# The default workload's states verified too, R1-R6 only: the follow-ups' walks (forced
# ones on every repaired state, hundreds here) were verified on the small workload above.
jv=$(CRASHCHECK_VERIFY=1 $cc explore corpus/workloads/default --quiet --json --again off)
[ "$(num violations "$jv")" = 0 ] || fail "verified run of the default workload"
# What a writer's open would recover is part of the verdict that VERIFY compares: it decides
# whether a state is checked after recovery and which states R7 goes on from. ci/mutants/63's
# reader keeps its directory copies wrong (page_a twice) and says a reload changed nothing
# when only page_b did: the cached verdict then lacks the mirror a fresh one sees.
# --tear garbage: a garbage first sector at each step whose first durable sector is the file's
# first (page 0's writes), beyond the default model. The real pager salvages every one on the
# default workload at 4 KiB pages, and at 2 KiB pages under 4 KiB sectors (metadata A lost with
# page 0) refuses where it cannot tell, which is accepted there; ci/mutants/61 trusts metadata
# B alone there and opens the state before the last commit: R3. Verified (CRASHCHECK_VERIFY):
# the image file kept sector by sector holds each garbage image whole.
plain=$($cc explore corpus/workloads/default --quiet --json --again off --tear none)
for config in 4096/512 2048/4096; do
  jg=$(CRASHCHECK_VERIFY=1 $cc explore corpus/workloads/default --quiet --json --again off --tear garbage --out "$tmp/g-out" --page-size "${config%/*}" \
    --sector "${config#*/}") || fail "explore --tear garbage at $config: $jg"
  [ "$(num violations "$jg")" = 0 ] || fail "garbage tears at $config: violations"
  [ "$(num states "$jg")" -gt "$(num states "$plain")" ] || fail "garbage tears at $config: no more states than --tear none"
done
build_mutant ci/mutants/61-salvage-lone-meta-own-offset.patch "$tmp/m61"
st=$(cd "$tmp/m61" && status build/bin/crashcheck explore corpus/workloads/default --quiet --json --again off \
  --tear garbage --page-size 2048 --sector 4096 --out "$tmp/m61-out")
[ "$st" = 1 ] && grep -q '"invariant": "R3"' "$tmp/out" || { cat "$tmp/out"; fail "mutant 61 under garbage tears: exit $st"; }
# Its first reproducer (an R2 at a late step) minimizes to a short story: each trial explores
# garbage tears too (else none fails, and each explores in vain), and an R3 of a shorter
# case is the same finding as the R2 (neither the state before nor the one after).
repro=$(ls "$tmp"/m61-out/R2-*.case | head -1)
st=$(cd "$tmp/m61" && status timeout 120 build/bin/crashcheck minimize "$repro" -o "$tmp/m61.min")
ops=$(grep -cvE '^(#|crashcheck-case|page-size|sector|cut|again)' "$tmp/m61.min" || true)
[ "$st" = 0 ] && [ "$ops" -le 4 ] && grep -q "tear garbage:1" "$tmp/m61.min" ||
  { cat "$tmp/out"; fail "mutant 61's reproducer minimizes to $ops operations (exit $st)"; }
# A reader's regular pages are those a writer's open leaves: ci/mutants/56 lists the pages
# awaiting reclaim among them, which only a reader of a state with something to reclaim shows
# (a preview's recovery has freed them): R2 on the default workload.
build_mutant ci/mutants/56-regular-bits-keep-reclaim.patch "$tmp/m56"
st=$(cd "$tmp/m56" && status build/bin/crashcheck explore corpus/workloads/default --quiet --json --again off \
  --out "$tmp/m56-out")
[ "$st" = 1 ] && grep -q '"invariant": "R2", .*"expected": "a read-only open lists the regular pages a writer.s open leaves", "found": "page [0-9]* is a regular page to a reader, not one after recovery"' "$tmp/out" ||
  { cat "$tmp/out"; fail "mutant 56: exit $st, no R2 of the reader's view"; }
# --fail-fast: the walk ends at the first violation (the same first as the whole walk's), with
# --jobs 2 too; the summary and JSON say the counts are of a part; a clean walk is whole.
full=$(cat "$tmp/out")
for jobs in 1 2; do
  st=$(cd "$tmp/m56" && status build/bin/crashcheck explore corpus/workloads/default --quiet --json --again off \
    --fail-fast --jobs $jobs --out "$tmp/m56-ff")
  ff=$(cat "$tmp/out")
  [ "$st" = 1 ] && grep -q '"stopped": true' <<<"$ff" && [ "$(num violations "$ff")" -ge 1 ] && [ "$(num violations "$ff")" -le $jobs ] &&
    [ "$(num distinct_states "$ff")" -lt "$(num distinct_states "$full")" ] &&
    [ "$(num first_violation_state "$ff")" = "$(num first_violation_state "$full")" ] ||
    fail "--fail-fast --jobs $jobs on mutant 56: exit $st: $ff (the whole walk: $full)"
done
st=$(cd "$tmp/m56" && status build/bin/crashcheck explore corpus/workloads/default --quiet --again off --fail-fast --out "$tmp/m56-ff")
grep -q "stopped          at the first violation (--fail-fast)" "$tmp/out" || fail "--fail-fast: the summary does not say it stopped: $(cat "$tmp/out")"
[ "$(status $cc explore --fail-fast --errors)" = 2 ] || fail "--fail-fast with --errors must exit 2"
whole=$($cc explore "$tmp/w.case" --quiet --json --again off)
ff=$($cc explore "$tmp/w.case" --quiet --json --again off --fail-fast)
grep -q '"stopped": false' <<<"$ff" && [ "$(num states "$ff")" = "$(num states "$whole")" ] || fail "--fail-fast on a clean walk: $ff"
build_mutant ci/mutants/63-memo-pairs-page-a-twice.patch "$tmp/m63"
st=$(cd "$tmp/m63" && status env CRASHCHECK_VERIFY=1 build/bin/crashcheck explore corpus/workloads/default --quiet \
  --json --again off --out "$tmp/m63-out")
[ "$st" = 134 ] || { cat "$tmp/out"; fail "mutant 63 under CRASHCHECK_VERIFY exits $st, not 134 (abort)"; }
grep -q "CRASHCHECK_VERIFY: at step [0-9]* the cached check found .*recovery 0, .* a fresh one .*recovery 0x8" "$tmp/out" ||
  { cat "$tmp/out"; fail "mutant 63: VERIFY does not name the recovery"; }
j2=$($cc explore "$tmp/w.case" --quiet --json --jobs 2)
[ "$(num distinct_states "$j2")" = "$distinct" ] || fail "--jobs 2 checked $(num distinct_states "$j2"), not $distinct"
s0=$($cc explore "$tmp/w.case" --quiet --json --shard 0/2)
s1=$($cc explore "$tmp/w.case" --quiet --json --shard 1/2)
[ $(( $(num distinct_states "$s0") + $(num distinct_states "$s1") )) = "$distinct" ] || fail "shards do not add up"
# Fewer tears, fewer states; 4 KiB sectors, fewer still.
small=$($cc explore "$tmp/w.case" --quiet --json --tear prefix --writeback none)
[ "$(num states "$small")" -lt "$(num states "$json")" ] || fail "--tear/--writeback did not narrow the states"
big=$($cc explore "$tmp/w.case" --quiet --json --sector 4096)
[ "$(num states "$big")" -lt "$(num states "$json")" ] || fail "--sector 4096 did not narrow the states"

# show and encode round-trip.
$cc encode "$tmp/w.case" -o "$tmp/w.bin"
diff <($cc show "$tmp/w.case") <($cc show "$tmp/w.bin") || fail "encode/show round trip"

# check: a clean file, then a damaged one.
build/bin/mp-demo "$tmp/demo.pages" >/dev/null
[ "$(status $cc check "$tmp/demo.pages")" = 0 ] || { cat "$tmp/out"; fail "check of a clean file"; }
# Both metadata copies: whichever is current is damaged.
printf '\xff' | dd of="$tmp/demo.pages" bs=1 seek=$((4096 + 30)) conv=notrunc status=none
printf '\xff' | dd of="$tmp/demo.pages" bs=1 seek=$((8192 + 30)) conv=notrunc status=none
[ "$(status $cc check "$tmp/demo.pages")" = 1 ] || fail "check of a damaged file must exit 1"
grep -q "metadata" "$tmp/out" || fail "check does not say what is wrong"
# check of a crash image that recovery has work on: it previews the recovery
# (MP_PREVIEW) and checks what recovery would leave, without writing the file.
$cc encode "$tmp/w.case" -o "$tmp/w.bin"
previewed=0
for step in $(seq 4 80); do
  rm -f "$tmp/cut.pages" "$tmp/cut.pages.crash"
  LD_PRELOAD=build/lib/libpowercut.so POWERCUT_FILE="$tmp/cut.pages" POWERCUT_CUT="$step:all:none" \
    $cc __run "$tmp/w.bin" "$tmp/cut.pages" >/dev/null 2>&1 || true
  [ -f "$tmp/cut.pages.crash" ] || continue
  sum=$(md5sum < "$tmp/cut.pages.crash")
  st=$(status $cc check "$tmp/cut.pages.crash")
  if grep -q "recovery pending" "$tmp/out"; then
    grep -q "after recovery (previewed" "$tmp/out" || { cat "$tmp/out"; fail "check does not preview the recovery"; }
    [ "$st" = 0 ] || { cat "$tmp/out"; fail "check of a recoverable crash image exited $st"; }
    [ "$(md5sum < "$tmp/cut.pages.crash")" = "$sum" ] || fail "check wrote to the file it previewed"
    previewed=1
    break
  fi
done
[ "$previewed" = 1 ] || fail "no cut of the small workload left recovery work for check to preview"

# replay: a cut case tells the story and recovers.
sed 's/^page-size 1024$/page-size 1024\ncut 9 tear prefix:1 writeback all seed 3/' "$tmp/w.case" > "$tmp/cut.case"
[ "$(status $cc replay "$tmp/cut.case")" = 0 ] || { cat "$tmp/out"; fail "replay of a cut case"; }
grep -q "power cut at step 9" "$tmp/out" || fail "replay tells no story"
grep -q "recovered correctly" "$tmp/out" || fail "replay gives no verdict"
# R7: a second cut in the follow-up workload on the recovered file.
sed 's/^cut 9 .*$/&\nagain 7 tear suffix:1 writeback none seed 0/' "$tmp/cut.case" > "$tmp/again.case"
[ "$(status $cc replay "$tmp/again.case")" = 0 ] || { cat "$tmp/out"; fail "replay of a case with a second cut"; }
grep -q "R7 holds" "$tmp/out" || { cat "$tmp/out"; fail "replay does not check the second cut"; }
[ "$(num again_runs "$json")" -gt 0 ] || fail "explore ran no R7 follow-up"
# R7 follows every state whose recovery repairs something and every state cut in the create,
# once per recovered file, besides the sample; the counts add up to the follow-ups run.
forced=$(( $(num again_forced_repair "$json") + $(num again_forced_create "$json") ))
[ "$(num again_forced_repair "$json")" -gt 0 ] || fail "no state with recovery work was followed: $json"
[ "$(num again_forced_create "$json")" -gt 0 ] || fail "no state cut in the create was followed: $json"
[ "$(num again_forced_same "$json")" -gt 0 ] || fail "no forced state recovered to a file already followed: $json"
[ $((forced + $(num again_sampled "$json"))) = "$(num again_runs "$json")" ] || fail "follow-up counts do not add up: $json"
j0=$($cc explore "$tmp/w.case" --quiet --json --again 0)
[ "$(num again_sampled "$j0")" = 0 ] && [ "$(num again_runs "$j0")" = "$forced" ] || fail "--again 0 is not the forced follow-ups alone: $j0"
joff=$($cc explore "$tmp/w.case" --quiet --json --again off)
[ "$(num again_runs "$joff")" = 0 ] || fail "--again off ran follow-ups: $joff"
# Workers share what they followed: the same files as one process.
[ $(( $(num again_forced_repair "$j2") + $(num again_forced_create "$j2") )) = "$forced" ] || fail "--jobs 2 followed other files: $j2"
# Any byte string is a case: a fuzzer's crash file replays as it is.
for seed in 1 2 3 4 5 6 7 8; do
  head -c $((8 + seed * 45)) /dev/urandom > "$tmp/random.bin"
  st=$(status $cc replay "$tmp/random.bin")
  [ "$st" = 0 ] || { cat "$tmp/out"; cp "$tmp/random.bin" /tmp/crashcheck-e2e-failing.bin; fail "replay of random bytes exited $st (kept in /tmp/crashcheck-e2e-failing.bin)"; }
done
[ "$(status $cc minimize "$tmp/cut.case" -o "$tmp/min.case")" = 2 ] || fail "minimize of a clean case must exit 2"
echo "crashcheck end to end: ok"
