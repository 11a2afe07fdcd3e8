#!/usr/bin/env bash
# e2e_run_fork.sh: `crashcheck run` of a program that forks a writer child without exec and
# waits for it (a Python program: os.fork, os._exit). The child takes part in the one run
# (libpowercut's forked children: faults/README.md, lending): it takes the run over while its
# parent waits, its steps number on in the same trace, and it hands the run back at its
# _exit. So every crash state is derived, and a bug in the child is caught at its own steps:
# it acknowledges its record before its fsync (or msync, when the records are stored through
# a mapping the child inherited), and a cut in that sync loses it; acknowledged after the
# sync, the same program is clean. A shell's subshell writing through the shell's descriptor
# is such a child too. A child that writes while its parent sleeps (no call of the shim, no wait)
# is refused, named.
set -euo pipefail
cc=${BUILD:-build}/bin/crashcheck
check="$PWD/harness/examples/applog-check.sh stdout"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh
command -v python3 >/dev/null || fail "python3 is needed (the program that forks the writer)"
# fork.py ack (early|late) how (written|mapped): records 1 and 3 by the parent, 2 by the child
cat >"$tmp/fork.py" <<'PY'
import mmap, os, sys
early = sys.argv[1] == "early"
mapped = sys.argv[2] == "mapped"
fd = os.open("log", os.O_RDWR | (0 if mapped else os.O_APPEND))
if mapped:
    os.ftruncate(fd, 4096)
    m = mmap.mmap(fd, 4096)
def record(k):
    line = b"record %d\n" % k
    if mapped:
        m[9 * (k - 1):9 * k] = line
    else:
        os.write(fd, line)
def sync():
    if mapped:
        m.flush()
    else:
        os.fsync(fd)
record(1)
sync()
print("acked 1", flush=True)
pid = os.fork()
if pid == 0:
    record(2)
    if early:
        print("acked 2", flush=True)
    sync()
    if not early:
        print("acked 2", flush=True)
    os._exit(0)
_, st = os.waitpid(pid, 0)
if st:
    sys.exit(3)
record(3)
sync()
print("acked 3", flush=True)
PY

# MODE STEPS STEP CALL: the child acknowledging its record before its sync (STEP, a CALL) is
# caught there; acknowledging after it is clean; the recording has STEPS steps either way
early_and_late() {
  local json
  json=$(run 1 --files log --setup ': > log' --check "$check" -- python3 "$tmp/fork.py" early "$1")
  [ "$(field steps "$json")" = "$2" ] || fail "$1: $2 steps in the parent and its forked child wanted: $json"
  grep -q '"step": '"$3"', "call": "'"$4"'", "crash": "tear none writeback none seed 0", "state": [0-9]*, "status": 1, "output": "record 2 was acknowledged but is not in the log"' <<<"$json" ||
    fail "$1: the child's record acknowledged before its $4, lost in it, went unsaid: $json"
  json=$(run 0 --files log --setup ': > log' --check "$check" -- python3 "$tmp/fork.py" late "$1")
  [ "$(field steps "$json")" = "$2" ] && [ "$(field violations "$json")" = 0 ] || fail "$1: the child acknowledging after its $4: $json"
}
# written: 1 write, 2 fsync (parent), 3 write, 4 fsync (child), 5 write, 6 fsync (parent)
early_and_late written 6 4 fsync
# mapped: 1 ftruncate, 2 msync (parent), 3 msync (child, storing through the inherited
# mapping), 4 msync (parent)
early_and_late mapped 4 3 msync

# a subshell (dash forks it, no exec) writing through the descriptor its shell opened, and
# creating a file, while the shell waits for it: steps of the run, in order
json=$(run 1 --files 'f*' --check false -- sh -c 'exec 3>>f1; echo a >&3; (echo b >&3; echo x > f2); echo c >&3')
"${BUILD:-build}/bin/pc-trace" "$tmp/out/run.trace" | awk '$1 ~ /^[0-9]+$/ {print $2 ":" $3}' | tr '\n' ' ' >"$tmp/calls"
[ "$(cat "$tmp/calls")" = "write:0 write:0 write:1 write:0 " ] || fail "a subshell's writes: $(cat "$tmp/calls")"

# a child that writes while its parent sleeps instead of waiting (no call of the shim, so it
# never lets the run go): refused after POWERCUT_LEND_WAIT, named
cat >"$tmp/busy.py" <<'PY'
import os, time
fd = os.open("log", os.O_WRONLY | os.O_APPEND)
os.write(fd, b"record 1\n")
os.fsync(fd)
pid = os.fork()
if pid == 0:
    os.write(fd, b"record 2\n")
    os._exit(0)
time.sleep(1)
os.waitpid(pid, 0)
PY
POWERCUT_LEND_WAIT=100 run 2 --files log --setup ': > log' --check true -- python3 "$tmp/busy.py" >/dev/null
grep -q "process [0-9]* (forked by the owner, no exec) changed a tracked file while process [0-9]* owns the run (its parent) and made no call within 100 ms of being asked for it" "$tmp/err" ||
  fail "a forked child writing while its parent works went unsaid: $(cat "$tmp/err")"
echo "e2e_run_fork: ok"
