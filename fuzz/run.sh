#!/usr/bin/env bash
# fuzz/run.sh: `make fuzz`: a campaign of each AFL++ target in fuzz/out/TARGET/ (resumed if it
# exists), two instances (`main`: no sanitizers; `asan`: ASan+UBSan), then stats and plots.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
source fuzz/afl_env.sh
BUILD=${BUILD:-build}
read -ra targets <<<"${FUZZ_TARGETS:-fuzz_image fuzz_ops}"
total=$(fuzz_seconds "${FUZZ_TIME:-10m}")
[[ $total =~ ^[0-9]+$ ]] && [ "$total" -gt 0 ] || { echo "fuzz: FUZZ_TIME=$FUZZ_TIME is not a duration (90s, 10m, 8h)" >&2; exit 2; }
# The targets take turns, each with both cores (one main + one secondary on this 2-core
# machine), so that FUZZ_TIME is the wall time of the whole campaign.
per=$((total / ${#targets[@]}))
[ "$per" -ge 10 ] || per=10
export AFL_AUTORESUME=1   # an existing fuzz/out/TARGET is resumed, not refused
for t in "${targets[@]}"; do
  out=fuzz/out/$t
  mkdir -p "$out"
  for b in "$BUILD/afl/$t" "$BUILD/afl-asan/$t"; do
    [ -x "$b" ] || { echo "fuzz: $b is missing (make fuzz builds it)" >&2; exit 2; }
  done
  echo "fuzz: $t for ${per}s: main $BUILD/afl/$t, asan $BUILD/afl-asan/$t (ASan+UBSan), in $out"
  # fuzz_ops's scratch files (tmpfs), one directory per instance, removed when it is done.
  scratch=/dev/shm/fuzz_ops.make-fuzz.$$
  # AFL++'s -M node takes the queue in order (-M sets -Z) instead of picking entries by weight,
  # fast ones more often: that suits the sanitizer build, which should run every entry in turn,
  # not the fast one (fuzz_ops alone, median of three 90 s runs: 4,000 execs/s with -M, 4,750
  # with -S). So the ASan instance is afl-fuzz's main node, and `main` (no sanitizers) a
  # secondary; they sync both ways.
  read -ra len_args <<<"$(afl_input_args "$t")"
  FUZZ_SCRATCH=$scratch.asan afl-fuzz -M asan -m none -i "corpus/$t" -o "$out" -x "fuzz/$t.dict" "${len_args[@]}" -V "$per" -- \
    "$BUILD/afl-asan/$t" >"$out/asan.log" 2>&1 &
  asan=$!
  sleep 1   # afl-fuzz's main node sets the output directory up first
  FUZZ_SCRATCH=$scratch.main afl-fuzz -S main -i "corpus/$t" -o "$out" -x "fuzz/$t.dict" "${len_args[@]}" -V "$per" -- \
    "$BUILD/afl/$t" >"$out/main.log" 2>&1 &
  main=$!
  wait "$main"; rc_main=$?
  wait "$asan"; rc_asan=$?
  rm -rf "$scratch.main" "$scratch.asan"
  [ $rc_main -eq 0 ] || { echo "fuzz: the main instance of $t failed (exit $rc_main):" >&2; tail -20 "$out/main.log" >&2; }
  [ $rc_asan -eq 0 ] || { echo "fuzz: the ASan instance of $t failed (exit $rc_asan):" >&2; tail -20 "$out/asan.log" >&2; }
done

echo
printf '%-11s %-5s %10s %12s %8s %12s %8s %6s %10s\n' target inst execs/s execs corpus edges stabil. crashes hangs
found=0
for t in "${targets[@]}"; do
  for inst in main asan; do
    d=fuzz/out/$t/$inst
    [ -f "$d/fuzzer_stats" ] || continue
    c=$(afl_stat "$d" saved_crashes)
    found=$((found + ${c:-0}))
    printf '%-11s %-5s %10s %12s %8s %12s %8s %6s %10s\n' "$t" "$inst" "$(afl_stat "$d" execs_per_sec)" \
      "$(afl_stat "$d" execs_done)" "$(afl_stat "$d" corpus_count)" \
      "$(afl_stat "$d" edges_found)/$(afl_stat "$d" total_edges)" "$(afl_stat "$d" stability)" "$c" \
      "$(afl_stat "$d" saved_hangs)"
  done
  # Graphs of the main instance over the whole campaign (gnuplot; ci/setup installs it).
  if command -v gnuplot >/dev/null && afl-plot "fuzz/out/$t/main" "fuzz/out/$t/plot" >"fuzz/out/$t/plot.log" 2>&1; then
    echo "            plots: fuzz/out/$t/plot/index.html"
  else
    echo "            plots: none yet ($(grep -m1 -i error "fuzz/out/$t/plot.log" | sed 's/^.*Error: //'))"
  fi
done
if [ "$found" -gt 0 ]; then
  echo "fuzz: $found crashes saved; run \`make triage\` to minimize them into corpus/regressions/"
fi
exit 0
