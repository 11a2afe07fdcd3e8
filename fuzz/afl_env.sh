# fuzz/afl_env.sh: the environment every afl-fuzz/afl-tmin run of this project needs, sourced by
# fuzz/run.sh, fuzz/triage.sh and the CI smoke test (one place for the machine's quirks).
# shellcheck shell=bash
export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_TRY_AFFINITY=1
# A core pattern that pipes to a program (apport, systemd-coredump) makes afl-fuzz refuse to
# start unless told that crashes may then be slower to notice.
if [[ $(cat /proc/sys/kernel/core_pattern 2>/dev/null) == \|* ]]; then
  export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
fi
# The sanitizer instance: abort (a signal AFL sees) and do not symbolize (slow) on a report.
export ASAN_OPTIONS=abort_on_error=1:symbolize=0:detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:symbolize=0
# "2m", "90s", "8h", "1d" or plain seconds, to seconds.
fuzz_seconds() {
  local t=$1 n=${1%[smhd]}
  case $t in
    *s) echo "$n" ;; *m) echo $((n * 60)) ;; *h) echo $((n * 3600)) ;; *d) echo $((n * 86400)) ;;
    *) echo "$t" ;;
  esac
}
# afl-fuzz's options for a target's inputs: fuzz_ops skips cases of more than FUZZ_MAX_OPS
# operations (fuzz_ops.c: 64 by default; 8 header bytes, 3 per operation), so a longer input is
# an execution that tests nothing (a quarter of them in a campaign that let afl-fuzz generate
# up to its default 1 MiB). -G stops afl-fuzz from generating them.
afl_input_args() {
  case $1 in
    fuzz_ops) echo "-G $((8 + 3 * ${FUZZ_MAX_OPS:-64} + 2))" ;;
  esac
}
# One line from an instance's fuzzer_stats.
afl_stat() { sed -n "s/^$2 *: //p" "$1/fuzzer_stats" 2>/dev/null; }
