#!/usr/bin/env bash
# e2e_run_concurrent.sh: `crashcheck run` of a shell script with a background job beside the
# foreground command (`writer a & writer b; wait`), both appending records to their own log and
# fsyncing each at the same time. They take turns on the run (libpowercut: faults/README.md,
# one process at a time): the one that would write while the other owns the run asks for it,
# and the owner lets it go at its next call, so the two are one recording whose steps
# interleave. A writer that acknowledges a record before its fsync is caught at its own
# steps; acknowledging after the fsync, the same script is clean.
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh
command -v python3 >/dev/null || fail "python3 is needed (the writers)"

# writer.py NAME N (early|late): N records to logNAME, each written, fsynced and acknowledged
# on stdout ("acked NAME K"), before (early: the bug) or after (late) its fsync. Both writers
# start writing together: each marks itself ready and waits for the other's mark first (no
# log touched yet), so that the two are at work at once.
cat >"$tmp/writer.py" <<'PY'
import os, sys, time
name, n, early = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "early"
open("ready." + name, "w").close()
while not os.path.exists("ready." + ("b" if name == "a" else "a")):
    time.sleep(0.001)
fd = os.open("log" + name, os.O_WRONLY | os.O_APPEND)
for k in range(1, n + 1):
    os.write(fd, b"record %d\n" % k)
    if early:
        print("acked %s %d" % (name, k), flush=True)
    os.fsync(fd)
    if not early:
        print("acked %s %d" % (name, k), flush=True)
    time.sleep(0.002)
PY
# the check of a crash state: every record acknowledged by then is in its writer's log
cat >"$tmp/check.sh" <<'SH'
#!/bin/sh
grep '^acked' "$CRASHCHECK_STDOUT" | while read -r _ w k; do
  grep -qx "record $k" "log$w" 2>/dev/null || { echo "record $k of $w was acknowledged but is not in log$w"; exit 1; }
done
SH
chmod +x "$tmp/check.sh"

script() { echo "python3 '$tmp/writer.py' a 5 late & python3 '$tmp/writer.py' b 5 $1; wait"; }

# how many times the file of the steps changes in the trace a run with violations kept: once
# (plus one) when one writer did all its steps before the other; more when they took turns
interleaved() {
  "$build/bin/pc-trace" "$tmp/out/run.trace" | awk '$1 ~ /^[0-9]+$/ {print $3}' | uniq | wc -l
}

# b acknowledges before its fsync: a cut in that fsync loses the acknowledged record. Whether
# the two overlap is the scheduler's choice (one may not get a core before the other is done,
# on a loaded machine): up to 3 tries for a recording whose steps interleave
for try in 1 2 3; do
  json=$(run 1 --files 'log*' --setup ': > loga; : > logb' --check "$tmp/check.sh" -- sh -c "$(script early)")
  [ "$(field steps "$json")" = 20 ] || fail "20 steps (a write and an fsync per record, 5 records each) wanted: $json"
  [ "$(interleaved)" -le 2 ] || break
  [ "$try" -lt 3 ] || fail "the two writers did not take turns: $("$build/bin/pc-trace" "$tmp/out/run.trace")"
done
grep -q '"call": "fsync", "crash": "tear none writeback none seed 0", "state": [0-9]*, "status": 1, "output": "record [0-9] of b was acknowledged but is not in logb"' <<<"$json" ||
  fail "b's record acknowledged before its fsync, lost in it, went unsaid: $json"
! grep -q '"output": "record [0-9] of a ' <<<"$json" || fail "a acknowledges after its fsync, yet: $json"
# both acknowledge after the fsync: clean
json=$(run 0 --files 'log*' --setup ': > loga; : > logb' --check "$tmp/check.sh" -- sh -c "$(script late)")
[ "$(field steps "$json")" = 20 ] && [ "$(field violations "$json")" = 0 ] || fail "both acknowledging after the fsync: $json"
echo "e2e_run_concurrent: ok"
