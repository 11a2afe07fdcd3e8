#!/usr/bin/env bash
# clang-build.sh: every library and program also builds with clang, warnings as errors
# (make check runs it; gcc builds everything else).
set -euo pipefail
command -v clang >/dev/null || { echo "clang is missing (ci/setup installs it with afl++)"; exit 1; }
make -s CC=clang BUILD=build/clang libs
echo "clang build: ok"
