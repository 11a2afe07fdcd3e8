#!/usr/bin/env bash
# e2e_dd.sh: the README example: the shim on an unmodified program (dd), with cuts before and
# at its fsync, O_DSYNC writes, a glob naming the tracked file and an image directory.
set -euo pipefail
set -f # POWERCUT_FILE globs are for the shim, not the shell
B=$(realpath "${BUILD:-build}") # absolute: the script changes directory
LIB=$(realpath "$B/lib/libpowercut.so")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*"; exit 1; }

head -c 16384 /dev/zero | tr '\0' 'o' >old     # the durable content before the run
head -c 16384 /dev/zero | tr '\0' 'n' >new
run_dd() { # "NAME=VALUE ..." for the shim, then dd flags
  local envs=$1
  shift
  cp old data
  rm -f data.crash
  # shellcheck disable=SC2086
  env LD_PRELOAD="$LIB" POWERCUT_FILE="$T/data" $envs \
    dd if=new of=data bs=4096 count=4 status=none "$@" || return $?
}

# no cut: the run is unchanged
run_dd PC_NOCUT=1 conv=notrunc,fsync && cmp -s data new || fail "plain run"
# steps 1-4 are the writes, 5 the fsync
rc=0; run_dd POWERCUT_CUT=3:all conv=notrunc,fsync || rc=$?
[ "$rc" = 99 ] || fail "cut exit $rc"
cmp -s data.crash old || fail "unsynced writes reached the image"
rc=0; run_dd POWERCUT_CUT=5:all conv=notrunc,fsync || rc=$?
[ "$rc" = 99 ] || fail "cut exit $rc"
cmp -s data.crash new || fail "fsync'd writes missing"
rc=0; run_dd POWERCUT_CUT=5:prefix:9 conv=notrunc,fsync || rc=$?
head -c 4608 new >expect; tail -c +4609 old >>expect
cmp -s data.crash expect || fail "prefix:9 tear"
# O_DSYNC: each write durable at return
rc=0; run_dd POWERCUT_CUT=3:none conv=notrunc oflag=dsync || rc=$?
head -c 8192 new >expect; tail -c +8193 old >>expect
cmp -s data.crash expect || fail "O_DSYNC writes"
# record once, derive later: pc-trace gives the live cut's image from the trace
rc=0; run_dd "POWERCUT_TRACE=$T/dd.trace" conv=notrunc,fsync || rc=$?
[ "$rc" = 0 ] || fail "record exit $rc"
"$B/bin/pc-trace" dd.trace | grep -q "fsync" || fail "pc-trace listing"
"$B/bin/pc-trace" --help | grep -q "POWERCUT_MMAP=track|uffd|mprotect|sync|lazy" || fail "pc-trace --help lists the shim's environment"
if "$B/bin/pc-trace" 2>/dev/null; then fail "pc-trace without a trace succeeds"; fi
for crash in all prefix:9 suffix:3 random:5 garbage:2:none:7; do
  "$B/bin/pc-trace" dd.trace image 5 "$crash" derived || fail "pc-trace image $crash"
  rc=0; run_dd "POWERCUT_CUT=5:$crash" conv=notrunc,fsync || rc=$?
  cmp -s data.crash derived || fail "derived image differs from the live cut ($crash)"
done
# a glob and an image directory
mkdir imgs
rc=0; run_dd "POWERCUT_FILE=$T/da* POWERCUT_IMAGE=$T/imgs POWERCUT_CUT=5:all" conv=notrunc,fsync || rc=$?
cmp -s imgs/data new || fail "glob image"
# two files under one glob, one image each (python's os.write is write(2); skipped without it)
if command -v python3 >/dev/null; then
  mkdir multi
  rc=0
  (cd multi && env LD_PRELOAD="$LIB" POWERCUT_FILE="$T/multi/*.db" POWERCUT_IMAGE="$T/imgs" \
    POWERCUT_CUT=4:all python3 -c '
import os
a = os.open("a.db", os.O_RDWR | os.O_CREAT); b = os.open("b.db", os.O_RDWR | os.O_CREAT)
os.write(a, b"A" * 100); os.fsync(a); os.write(b, b"B" * 50); os.fsync(b)') || rc=$?
  [ "$rc" = 99 ] || fail "glob cut exit $rc"
  [ "$(cat imgs/a.db)" = "$(head -c 100 /dev/zero | tr '\0' A)" ] || fail "glob image a"
  [ "$(cat imgs/b.db)" = "$(head -c 50 /dev/zero | tr '\0' B)" ] || fail "glob image b"
fi
echo "e2e_dd: ok"
