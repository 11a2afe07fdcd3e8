#!/usr/bin/env bash
# e2e_fiu.sh: libfiu's own tools drive the shim's fault points: fiu-run -c enables
# powercut/<call> as an errno or a power cut, and fiu-ctrl enables one in a running process.
set -euo pipefail
B=$(realpath "${BUILD:-build}") # absolute: the script changes directory
LIB=$(realpath "$B/lib/libpowercut.so")
W=$(realpath "$B/tst/faults/tests/pc_work")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*"; exit 1; }

# fiu-run replaces LD_PRELOAD with its own library; the shim is added behind it.
under_fiu() { # fiu-run options..., --, pc_work args...
  local opts=()
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  fiu-run "${opts[@]}" env POWERCUT_FILE=f SHIM="$LIB" W="$W" \
    sh -c 'LD_PRELOAD="$LD_PRELOAD $SHIM" exec "$W" "$@"' pc_work "$@"
}

# 1. an errno: failnum is the errno (5 = EIO), on every fdatasync
out=$(under_fiu -c 'enable name=powercut/fdatasync,failnum=5' -- f w:0:10:65 d d)
[[ "$out" == *"ERR 1 5"* && "$out" == *"ERR 2 5"* ]] || fail "fiu-run errno: '$out'"

# 2. a power cut: failinfo=1, tear and writeback from POWERCUT_CRASH
rm -f f f.crash
rc=0
POWERCUT_CRASH=all under_fiu -c 'enable name=powercut/fsync,failnum=1,failinfo=1' -- f w:0:10:65 f >/dev/null || rc=$?
[ "$rc" = 99 ] || fail "fiu-run cut: exit $rc"
[ "$(od -An -tx1 f.crash | tr -d ' \n')" = "41414141414141414141" ] || fail "fiu-run cut image"

# 3. fiu-ctrl: enable a point in a process that is already running
rm -f f f.crash
under_fiu -f "$T/ctl" -- f w:0:10:65 z:1500 f >out 2>&1 &
pid=$!
for _ in $(seq 50); do ls "$T"/ctl-*.in >/dev/null 2>&1 && break; sleep 0.05; done
target=$(ls "$T"/ctl-*.in | sed 's/.*ctl-\([0-9]*\)\.in/\1/')
fiu-ctrl -f "$T/ctl" -c 'enable name=powercut/fsync,failnum=28' "$target"
wait "$pid"
grep -q "ERR 2 28" out || fail "fiu-ctrl: $(cat out)"
echo "e2e_fiu: ok"
