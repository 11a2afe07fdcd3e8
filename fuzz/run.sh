#!/usr/bin/env bash
# fuzz/run.sh: `make fuzz`: a campaign of each AFL++ target in fuzz/out/TARGET/ (resumed if it
# exists), two instances (`main`: no sanitizers; `asan`: ASan+UBSan), then stats and plots.
#
# A campaign over several machines: each machine fuzzes into its own fuzz/out/ under a name of
# its own (FUZZ_NODE=NAME: instances NAME-main and NAME-asan), exactly one machine keeps the
# -M node (the others say FUZZ_MAIN=no, every instance of theirs -S), and fuzz/sync.sh copies
# the other machines' instance queues into the local fuzz/out/TARGET/. afl-fuzz treats every
# directory of its sync dir (-o) that holds a queue/ as a peer and imports its new entries
# each sync round, so a copied queue is all a machine needs of another; the copies are
# refreshed, never fuzzed, here. FUZZ_INSTANCES chooses which of main and asan run here;
# FUZZ_OUT moves fuzz/out (the multi-machine test runs two "machines" side by side).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
source fuzz/afl_env.sh
BUILD=${BUILD:-build}
read -ra targets <<<"${FUZZ_TARGETS:-fuzz_image fuzz_ops}"
read -ra insts <<<"${FUZZ_INSTANCES:-main asan}"
OUT=${FUZZ_OUT:-fuzz/out}
node=${FUZZ_NODE:-}
[[ -z $node || $node =~ ^[A-Za-z0-9_]+$ ]] || { echo "fuzz: FUZZ_NODE=$node: letters, digits and _ only (afl-fuzz's instance names)" >&2; exit 2; }
case ${FUZZ_MAIN:-yes} in yes|no) ;; *) echo "fuzz: FUZZ_MAIN=$FUZZ_MAIN: yes or no" >&2; exit 2 ;; esac
[ ${#insts[@]} -gt 0 ] || { echo "fuzz: FUZZ_INSTANCES is empty (main, asan or both)" >&2; exit 2; }
for i in "${insts[@]}"; do
  case $i in main|asan) ;; *) echo "fuzz: FUZZ_INSTANCES: unknown instance $i (main, asan)" >&2; exit 2 ;; esac
done
name() { echo "${node:+$node-}$1"; }   # an instance's afl-fuzz name on this machine
# The -M node: asan where it runs here (see below), else main; none on a FUZZ_MAIN=no machine.
role() {
  if [ "${FUZZ_MAIN:-yes}" = no ]; then echo -S
  elif [ "$1" = asan ] || [[ " ${insts[*]} " != *" asan "* ]]; then echo -M
  else echo -S
  fi
}
total=$(fuzz_seconds "${FUZZ_TIME:-10m}")
[[ $total =~ ^[0-9]+$ ]] && [ "$total" -gt 0 ] || { echo "fuzz: FUZZ_TIME=$FUZZ_TIME is not a duration (90s, 10m, 8h)" >&2; exit 2; }
# The targets take turns, each with both cores (one main + one secondary on this 2-core
# machine), so that FUZZ_TIME is the wall time of the whole campaign.
per=$((total / ${#targets[@]}))
[ "$per" -ge 10 ] || per=10
export AFL_AUTORESUME=1   # an existing fuzz/out/TARGET is resumed, not refused
for t in "${targets[@]}"; do
  out=$OUT/$t
  mkdir -p "$out"
  bin() { if [ "$1" = asan ]; then echo "$BUILD/afl-asan/$t"; else echo "$BUILD/afl/$t"; fi; }
  for i in "${insts[@]}"; do
    [ -x "$(bin "$i")" ] || { echo "fuzz: $(bin "$i") is missing (make fuzz builds it)" >&2; exit 2; }
  done
  echo "fuzz: $t for ${per}s:$(for i in "${insts[@]}"; do printf ' %s (%s) %s' "$(name "$i")" "$(role "$i")" "$(bin "$i")"; done), in $out"
  # fuzz_ops's scratch files (tmpfs), one directory per instance, removed when it is done.
  scratch=/dev/shm/fuzz_ops.make-fuzz.$$
  # AFL++'s -M node takes the queue in order (-M sets -Z) instead of picking entries by weight,
  # fast ones more often: that suits the sanitizer build, which should run every entry in turn,
  # not the fast one (fuzz_ops alone, median of three 90 s runs: 4,000 execs/s with -M, 4,750
  # with -S). So the ASan instance is afl-fuzz's main node, and `main` (no sanitizers) a
  # secondary; they sync both ways. The -M node starts first: it sets the output directory up.
  read -ra len_args <<<"$(afl_input_args "$t")"
  mapfile -t order < <(for i in "${insts[@]}"; do echo "$(role "$i") $i"; done | sort | cut -d' ' -f2)
  pids=()
  for i in "${order[@]}"; do
    FUZZ_SCRATCH=$scratch.$i afl-fuzz "$(role "$i")" "$(name "$i")" -m none -i "corpus/$t" -o "$out" -x "fuzz/$t.dict" \
      "${len_args[@]}" -V "$per" -- "$(bin "$i")" >"$out/$(name "$i").log" 2>&1 &
    pids+=($!)
    sleep 1
  done
  for k in "${!pids[@]}"; do
    wait "${pids[$k]}"; rc=$?
    i=${order[$k]}
    [ $rc -eq 0 ] || { echo "fuzz: instance $(name "$i") of $t failed (exit $rc):" >&2; tail -20 "$out/$(name "$i").log" >&2; }
  done
  rm -rf "$scratch".*
done

echo
printf '%-11s %-10s %10s %12s %8s %12s %8s %6s %10s\n' target inst execs/s execs corpus edges stabil. crashes hangs
found=0
for t in "${targets[@]}"; do
  for i in "${insts[@]}"; do
    inst=$(name "$i")
    d=$OUT/$t/$inst
    [ -f "$d/fuzzer_stats" ] || continue
    c=$(afl_stat "$d" saved_crashes)
    found=$((found + ${c:-0}))
    printf '%-11s %-10s %10s %12s %8s %12s %8s %6s %10s\n' "$t" "$inst" "$(afl_stat "$d" execs_per_sec)" \
      "$(afl_stat "$d" execs_done)" "$(afl_stat "$d" corpus_count)" \
      "$(afl_stat "$d" edges_found)/$(afl_stat "$d" total_edges)" "$(afl_stat "$d" stability)" "$c" \
      "$(afl_stat "$d" saved_hangs)"
  done
  # Graphs of this machine's first instance over the whole campaign (gnuplot; ci/setup installs it).
  if command -v gnuplot >/dev/null && afl-plot "$OUT/$t/$(name "${insts[0]}")" "$OUT/$t/plot" >"$OUT/$t/plot.log" 2>&1; then
    echo "            plots: $OUT/$t/plot/index.html"
  else
    echo "            plots: none yet ($(grep -m1 -i error "$OUT/$t/plot.log" | sed 's/^.*Error: //'))"
  fi
done
if [ "$found" -gt 0 ]; then
  echo "fuzz: $found crashes saved; run \`make triage\` to minimize them into corpus/regressions/"
fi
exit 0
