#!/usr/bin/env bash
# fuzz/triage.sh: `make triage`: groups the crashes of fuzz/out/ by signature (the invariant or
# check that failed, or the sanitizer report and its location), minimizes one per signature and
# saves it as corpus/regressions/TARGET-SIGNATURE, listed in corpus/regressions/OPEN (a line:
# name, then the one-line reason) until fixed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
source fuzz/afl_env.sh
BUILD=${BUILD:-build}
cc=$BUILD/bin/crashcheck
read -ra targets <<<"${FUZZ_TARGETS:-fuzz_image fuzz_ops}"
regs=corpus/regressions
mkdir -p "$regs"
work=$(mktemp -d "$BUILD/triage.XXXXXX")
export FUZZ_SCRATCH=/dev/shm/fuzz_ops.triage.$$   # fuzz_ops's files, on tmpfs
trap 'rm -rf "$work" "$FUZZ_SCRATCH"' EXIT

slug() { tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9_]+/-/g; s/^-+//; s/-+$//' | cut -c1-60; }

# The signature of one input, from the plain replayer, else the sanitizer one; empty if it
# does not reproduce. Also leaves the one-line reason in $work/reason.
signature() { # TARGET FILE
  local t=$1 f=$2 line
  : >"$work/reason"
  line=$(timeout 60 "$BUILD/tst/fuzz/$t" "$f" 2>&1 | grep -m1 "^$t: ")
  if [ -n "$line" ]; then
    echo "${line#"$t: "}" >"$work/reason"
    case $t in
      # "R3 violated: power cut at step 41 (...) in operation 7 (free-bulk): ..." -> R3-free-bulk
      # (R7 only under FUZZ_R7=1, in the environment of both make fuzz and make triage);
      # "internal: ..." -> internal (fuzz_ops's own step counting disagrees with the shim's)
      fuzz_ops) sed -nE 's/^fuzz_ops: (R[0-9]+) violated: .* in operation [0-9]+ \(([a-z-]+)\).*/\1-\2/p; s/^fuzz_ops: run: .*/run-fails-without-cut/p; s/^fuzz_ops: internal: .*/internal/p' <<<"$line" | head -1 ;;
      # "an accepted image fails mp_check: read-only open: 1 findings, first: metadata A (...): ..."
      # -> what failed, then the first finding's subject: accepted-image-fails-mp_check-read-only-open-metadata-a
      *) { cut -d: -f2,3 <<<"$line" | sed 's/^ *an //'
           sed -nE 's/.*first: ([^:(]*).*/\1/p' <<<"$line"; } | tr '\n' ' ' | slug ;;
    esac
    return
  fi
  # Sanitizers: the kind of report and the first frame in the project's code.
  line=$(ASAN_OPTIONS=abort_on_error=1:symbolize=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
         timeout 120 "$BUILD/asan/fuzz/$t" "$f" 2>&1 | grep -m1 -E "^SUMMARY: |runtime error: ")
  [ -n "$line" ] || return
  echo "$line" >"$work/reason"
  if [[ $line == SUMMARY:* ]]; then
    # SUMMARY: AddressSanitizer: heap-buffer-overflow pager/open.c:123 in load_dirs
    awk '{k=$3; loc=$NF; print tolower($2) "-" k "-" loc}' <<<"$line" | sed 's/sanitizer:*//' | slug
  else
    # pager/layout.c:61:3: runtime error: shift exponent ...
    echo "ubsan-$(cut -d: -f1,2 <<<"$line" | xargs basename)" | slug
  fi
}

printf '%-10s %-48s %s\n' target signature reproducer
ncrash=0 nnew=0
for t in "${targets[@]}"; do
  declare -A seen=()
  shopt -s nullglob
  for c in fuzz/out/"$t"/*/crashes/id:*; do
    ncrash=$((ncrash + 1))
    sig=$(signature "$t" "$c")
    if [ -z "$sig" ]; then
      echo "triage: $c does not reproduce outside afl-fuzz (flaky or environment): skipped" >&2
      continue
    fi
    [ -n "${seen[$sig]:-}" ] && continue
    seen[$sig]=1
    reason=$(cat "$work/reason")
    ext=$([ "$t" = fuzz_ops ] && echo case || echo img)
    dest=$regs/$t-$sig.$ext
    if [ -e "$dest" ]; then
      printf '%-10s %-48s %s (known)\n' "$t" "$sig" "$dest"
      continue
    fi
    # afl-tmin keeps the smallest input that still crashes the same way (same path to abort);
    # the AFL++ driver reads it from stdin ("-": with a file argument it would not fork-serve).
    bin=$BUILD/afl/$t
    [[ $sig == *sanitizer* || $sig == ubsan-* ]] && bin=$BUILD/afl-asan/$t
    min=$work/min
    if ! timeout 300 afl-tmin -m none -i "$c" -o "$min" -- "$bin" - >"$work/tmin.log" 2>&1 ||
       [ "$(signature "$t" "$min")" != "$sig" ]; then
      cp "$c" "$min"
    fi
    # A crash-consistency violation also goes through crashcheck's own minimizer (fewer
    # operations, same invariant at the same kind of step), kept if it still fails here.
    if [ "$t" = fuzz_ops ] && [[ $sig == R* ]] &&
       timeout 600 "$cc" minimize "$min" -o "$work/min.case" >"$work/cmin.log" 2>&1 &&
       "$cc" encode "$work/min.case" -o "$work/min2" >/dev/null 2>&1 &&
       [ "$(signature "$t" "$work/min2")" = "$sig" ]; then
      cp "$work/min2" "$min"
    fi
    cp "$min" "$dest" && chmod 644 "$dest"
    echo "$(basename "$dest")  $reason" >>"$regs/OPEN"
    nnew=$((nnew + 1))
    printf '%-10s %-48s %s (new, %s bytes)\n' "$t" "$sig" "$dest" "$(stat -c %s "$dest")"
  done
  unset seen
done
echo "triage: $ncrash crashes, $nnew new reproducers in $regs/ (listed in $regs/OPEN, left out of CI until"
echo "        fixed: then delete the line). Replay: build/tst/fuzz/TARGET FILE; $cc replay FILE for fuzz_ops."
exit 0
