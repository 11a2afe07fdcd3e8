#!/usr/bin/env bash
# e2e_run_baton.sh: `crashcheck run` of a shell script whose commands take turns on the files:
# each process that writes them takes the run over when the one before has ended (the baton,
# faults/handover.c), so the script is one recording: the steps number on across processes,
# and data one command wrote and never synced is still volatile in the next one's crash
# states. A bug that spans two commands (the first acknowledges a record before anything
# synced it, a later one syncs) is caught at the later one's steps; the same commands with
# the acknowledgement after that sync are clean. `rm` and `mv` between commands are steps of
# the run, and so are the commands of a shell that owns the files through its own
# redirections (it lends them the run while it waits for each); a change by a process outside
# the run (no shim) between two commands or after the last one, and a process that asks for
# the run while its owner makes no call of the shim, are refused, named. A bash the owner
# execs keeps the run, and its commands take turns.
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
app=$(cd "$build" && pwd)/examples/applog
check=$PWD/harness/examples/applog-check.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh

append() { # the shell text of a command appending "record K\n" to log with write(2), then
  # fsync'ing it when a second argument says so (dd's own process: not the shell's)
  echo "printf 'record $1\\n' | dd of=log oflag=append conv=notrunc${2:+,fsync} status=none"
}

# applog acknowledges record 1 and ends without syncing it; dd, a later process, appends
# record 2 and syncs both. One recording: applog's write is step 1, dd's write and fsync steps
# 2 and 3. At dd's write (step 2) record 1 is still volatile: a cut there loses it, after it
# was acknowledged on stdout.
json=$(run 1 --files log --setup ': > log' --check "$check stdout" \
  -- sh -c "$app log 1 --no-fsync; $(append 2 sync); echo acked 2; cat log >/dev/null")
[ "$(field steps "$json")" = 3 ] || fail "three steps in two processes wanted: $json"
grep -q '"step": 2, "call": "write", "crash": "tear none writeback none seed 0", "state": [0-9]*, "status": 1, "output": "record 1 was acknowledged but is not in the log"' <<<"$json" ||
  fail "the first command's acknowledged, unsynced record, lost at the second's write, went unsaid: $json"

# the same commands, acknowledging after the sync (made in another process than the writes):
# clean, the state at exit included (the sync made the first one's record durable)
json=$(run 0 --files log --setup ': > log' --check "$check stdout" \
  -- sh -c "$(append 1); $(append 2 sync); echo acked 1; echo acked 2")
[ "$(field steps "$json")" = 3 ] && [ "$(field violations "$json")" = 0 ] || fail "ack after the sync: $json"

# names between commands: cp creates f1 (2 steps), mv renames it, rm removes it, cp creates
# it again: every command is a step of the run, in order, and nothing is refused
# (a check that always fails keeps the run's trace beside its states: the steps are read there)
json=$(run 0 --files 'f*' --setup 'echo x > src' --check true -- sh -c 'cp src f1; mv f1 f2; rm f2; cp src f1')
[ "$(field steps "$json")" = 6 ] && [ "$(field files "$json")" = 2 ] || fail "cp, mv, rm, cp: $json"
json=$(run 1 --files 'f*' --setup 'echo x > src' --check false -- sh -c 'cp src f1; mv f1 f2; rm f2; cp src f1')
"$build/bin/pc-trace" "$tmp/out/run.trace" | awk '$1 ~ /^[0-9]+$/ {print $2}' | tr '\n' ' ' >"$tmp/calls"
[ "$(cat "$tmp/calls")" = "copy_file_range copy_file_range rename unlink copy_file_range copy_file_range " ] ||
  fail "the steps of cp, mv, rm, cp: $(cat "$tmp/calls")"

# a change between two commands by a process without the shim: the next command finds it,
# and the run is refused though the script's last command (a reader) exits 0
run 2 --files log --setup ': > log' --check true \
  -- sh -c "$(append 1); env -u LD_PRELOAD sh -c 'echo zz >> log'; $(append 2 sync); cat log >/dev/null" >/dev/null
grep -q "log changed behind the shim's back (found before step 2): its size is 12 bytes, the model's 9" "$tmp/err" ||
  fail "a change between two commands went unsaid: $(cat "$tmp/err")"
run 2 --files log --setup ': > log' --check true \
  -- sh -c "$(append 1); env -u LD_PRELOAD rm log; $(append 2 sync)" >/dev/null
grep -q "log changed behind the shim's back (found when process [0-9]* took the run over, before step 2): .* is no longer that file" "$tmp/err" ||
  fail "a removal between two commands went unsaid: $(cat "$tmp/err")"

# the same after the last command that wrote the file: crashcheck run compares the files with
# the state the last owner left (the check a next owner would make)
run 2 --files log --setup ': > log' --check true -- sh -c "$(append 1); env -u LD_PRELOAD sh -c 'echo zz >> log'" >/dev/null
grep -q "log changed after the last process that owned the run ended (its size is 12 bytes, 9 then)" "$tmp/err" ||
  fail "a change after the last owner went unsaid: $(cat "$tmp/err")"
run 2 --files log --setup ': > log' --check true -- sh -c "$(append 1); env -u LD_PRELOAD rm log" >/dev/null
grep -q "log was removed, renamed or replaced after the last process that owned the run ended" "$tmp/err" ||
  fail "a removal after the last owner went unsaid: $(cat "$tmp/err")"

# two processes at once where the owner makes no call of the shim: a background subshell holds
# f1 open (it owns the run) and busy-waits on a builtin, so it never lets the run go when cp,
# writing f2, asks for it: cp is refused after POWERCUT_LEND_WAIT (two that both make calls
# take turns: e2e_run_concurrent)
POWERCUT_LEND_WAIT=100 run 2 --files 'f*' --setup 'echo x > src' --check true -- sh -c '{ exec 3>>f1; while [ ! -e go ]; do :; done; } &
  while [ ! -e f1 ]; do sleep 0.02; done; sleep 0.2; cp src f2; touch go; wait' >/dev/null
grep -q "did what the model cannot follow: .*opened a tracked file while process [0-9]* owns the run and made no call within 100 ms of being asked for it" "$tmp/err" ||
  fail "an owner that kept the run from another went unsaid: $(cat "$tmp/err")"
# the shell owns the files through its own redirections (dash opens `> f1` itself, and its
# command writes to the descriptor it inherited): it lends the run to each command while it
# waits for it, and takes it back; its own writes (echo) and its commands' are one story
json=$(run 1 --files 'f*' --setup 'echo x > src' --check false \
  -- sh -c 'echo a > f1; cat src >> f1; echo c >> f1; exec 3>>f2; cp src f2; cat f1 > f2')
"$build/bin/pc-trace" "$tmp/out/run.trace" | awk '$1 ~ /^[0-9]+$/ {print $2 ":" $3}' | tr '\n' ' ' >"$tmp/calls"
[ "$(cat "$tmp/calls")" = "write:0 copy_file_range:0 write:0 write:0 copy_file_range:1 copy_file_range:1 copy_file_range:1 copy_file_range:1 " ] ||
  fail "the shell's writes and its commands': $(cat "$tmp/calls")"
# a command in a subshell of a shell that owns a file takes the run the shell lends
json=$(run 0 --files 'f*' --setup 'echo x > src' --check true -- sh -c 'exec 3>>f1; (sh -c "cp src f2"); echo b >> f1')
[ "$(field steps "$json")" = 3 ] && [ "$(field files "$json")" = 2 ] || fail "a subshell's command: $json"
# mv and rm run by a shell that owns the file wait for its lend: steps of the run, in order
json=$(run 1 --files 'f*' --check false -- sh -c 'exec 3>>f1; echo a >&3; mv f1 f2; rm f2; echo b > f1')
"$build/bin/pc-trace" "$tmp/out/run.trace" | awk '$1 ~ /^[0-9]+$/ {print $2}' | tr '\n' ' ' >"$tmp/calls"
[ "$(cat "$tmp/calls")" = "write rename unlink write " ] || fail "mv and rm under a shell that owns the file: $(cat "$tmp/calls")"
# the acknowledgement bug through the shell's redirection: applog's record, written to the
# log the shell opened, acknowledged unsynced, lost at dd's write
json=$(run 1 --files log --setup ': > log' --check "$check stdout" \
  -- sh -c "exec 3>>log; $app log 1 --no-fsync; $(append 2 sync); echo acked 2")
[ "$(field steps "$json")" = 3 ] || fail "three steps under a shell that owns the log: $json"
grep -q '"step": 2, "call": "write", "crash": "tear none writeback none seed 0", "state": [0-9]*, "status": 1, "output": "record 1 was acknowledged but is not in the log"' <<<"$json" ||
  fail "the lost acknowledged record under a shell that owns the log went unsaid: $json"
# a bash the owner execs keeps the run (the hand-over), and the commands it then starts are
# not hand-overs themselves: bash's own unsetenv left POWERCUT_HANDOVER in what it exported,
# and each command read the old image's descriptor as a state (exit 2)
command -v bash >/dev/null || fail "bash is needed (its own setenv and unsetenv)"
json=$(run 0 --files 'f*' --setup 'echo x > src' --check true -- bash -c 'exec 3>>f1; exec bash -c "ls >/dev/null && cp src f2"')
[ "$(field steps "$json")" = 2 ] && [ "$(field files "$json")" = 2 ] || fail "a command of a bash the owner exec'd: $json"

echo "e2e_run_baton: ok"
