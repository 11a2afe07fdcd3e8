#!/usr/bin/env bash
# ci/coverage.sh (make coverage): an llvm-cov report of the pager's code: what its CMocka tests
# and the fuzz corpora (corpus/fuzz_image, corpus/fuzz_ops, and fuzz/out's queues when a
# campaign left them) execute. Everything is built again with clang's source-based coverage in
# a tree of its own (build/coverage-build); the HTML goes to build/coverage/html/index.html and
# the summary to the terminal.
set -euo pipefail
tree=${COVERAGE_TREE:-build/coverage-build}
out=${COVERAGE_OUT:-build/coverage}
for tool in clang llvm-profdata llvm-cov; do
  command -v "$tool" >/dev/null || { echo "coverage: $tool is missing (ci/setup installs clang and llvm-14)" >&2; exit 2; }
done
cc="clang -fprofile-instr-generate -fcoverage-mapping"
tests=()
for t in pager/tests/test_*.c; do tests+=("$tree/tst/${t%.c}"); done
fuzz=("$tree/tst/fuzz/fuzz_image" "$tree/tst/fuzz/fuzz_ops")
echo "coverage: building the tests and the fuzz replayers with coverage (in $tree)"
make -s BUILD="$tree" CC="$cc" "${tests[@]}" "${fuzz[@]}"
rm -rf "$out"
mkdir -p "$out/prof"
export LLVM_PROFILE_FILE="$PWD/$out/prof/%p-%m.profraw"
export MP_SOURCE_DIR=$PWD
for t in "${tests[@]}"; do
  echo "coverage: $t"
  "$t" >"$out/prof/$(basename "$t").log" 2>&1 || { tail -20 "$out/prof/$(basename "$t").log"; echo "coverage: $t failed" >&2; exit 1; }
done
for target in fuzz_image fuzz_ops; do
  inputs=("corpus/$target")
  for q in fuzz/out/"$target"/*/queue; do [ -d "$q" ] && inputs+=("$q"); done
  echo "coverage: $target over ${inputs[*]}"
  FUZZ_SCRATCH=$(mktemp -d /dev/shm/coverage.XXXXXX) "$tree/tst/fuzz/$target" "${inputs[@]}" >/dev/null 2>&1 ||
    { echo "coverage: $target failed on its corpus (make triage tells why)" >&2; exit 1; }
done
llvm-profdata merge -sparse "$out"/prof/*.profraw -o "$out/pager.profdata"
objects=("${tests[0]}") # the first binary is llvm-cov's argument, the others -object
for b in "${tests[@]:1}" "${fuzz[@]}"; do objects+=(-object "$b"); done
llvm-cov show -format=html -output-dir="$out/html" -instr-profile="$out/pager.profdata" "${objects[@]}" pager/*.c
llvm-cov report -instr-profile="$out/pager.profdata" "${objects[@]}" pager/*.c
echo "coverage: $out/html/index.html"
