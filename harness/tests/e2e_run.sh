#!/usr/bin/env bash
# e2e_run.sh: `crashcheck run` on an example program, harness/examples/applog.c (an append-only
# log that acknowledges each record), judged by harness/examples/applog-check.sh: the version
# that acknowledges after fsync is clean; acknowledging before the fsync is caught at the fsync
# steps; never syncing is caught (at exit, nothing acknowledged is durable); so is a new log
# whose directory was never synced (the posix profile: its name is lost), but not under
# --profile none; the program's stdout as far as it had written it before the cut judges the
# same way as its notes; failing states are kept with their story; --jobs 2 gives the same
# results as one process, its workers each in their own folder; the shards of --shard
# together are the whole; bad usage, a failing setup and a failing program exit 2 with a
# reason; a shell (dash ends with _exit) is recorded whole, and a child process's writes are
# refused loudly, and so is a sync while a background job owns the files; two processes
# owning the files in turn are one recording, a sync command a step of it.
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
app=$build/examples/applog
check=harness/examples/applog-check.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh

json=$(run 0 --files log --check "$PWD/$check" -- "$app" log 6)
[ "$(field violations "$json")" = 0 ] || fail "the correct log has violations: $json"
[ "$(field steps "$json")" = 13 ] || fail "6 records should be 13 steps (the directory's fsync, write, fsync): $json"
[ "$(field distinct_states "$json")" -gt 6 ] || fail "too few states checked: $json"

json=$(run 1 --files log --check "$PWD/$check" -- "$app" log 6 --ack-before-fsync)
[ "$(field violations "$json")" -ge 6 ] || fail "acknowledging before fsync: expected a violation per record: $json"
grep -q '"call": "fsync"' <<<"$json" || fail "the violations should be cuts in the fsync: $json"
grep -q 'was acknowledged but is not in the log' <<<"$json" || fail "the check's words are missing: $json"
kept=$(grep -o '"kept": "[^"]*"' <<<"$json" | head -1 | cut -d'"' -f4)
[ -f "$kept/log" ] && [ -f "$kept.txt" ] || fail "the first failing state is not kept ($kept)"
grep -q "^acked 1" "$kept.txt" || fail "the story does not list the notes before the cut: $(cat "$kept.txt")"

# what it had written to stdout before the cut, instead of its notes: the same verdicts
json=$(run 0 --files log --check "$PWD/$check stdout" -- "$app" log 4)
[ "$(field violations "$json")" = 0 ] || fail "acknowledged on stdout after fsync: $json"
json=$(run 1 --files log --check "$PWD/$check stdout" -- "$app" log 4 --ack-before-fsync)
grep -q 'record 1 was acknowledged but is not in the log' <<<"$json" || fail "acked on stdout before fsync: $json"
json=$(run 0 --files log --check 'test "$(wc -l <"$CRASHCHECK_STDOUT")" -le "$(grep -c "^acked" "$CRASHCHECK_NOTES")"' \
  -- "$app" log 3 --ack-before-fsync)
[ "$(field distinct_states "$json")" -gt 3 ] || fail "stdout never longer than the notes: $json"

json=$(run 1 --files log --check "$PWD/$check" -- "$app" log 3 --no-fsync)
grep -q '"step": 0, "call": "exit"' <<<"$json" || fail "never syncing: the state at exit is not reported: $json"

# the new log's name never synced: under the posix profile a cut can leave no log at all
json=$(run 1 --files log --check "$PWD/$check" -- "$app" log 3 --no-dir-fsync)
grep -q 'record 1 was acknowledged but is not in the log' <<<"$json" || fail "no directory fsync: not caught: $json"
json=$(run 0 --files log --profile none --check "$PWD/$check" -- "$app" log 3 --no-dir-fsync)
[ "$(field violations "$json")" = 0 ] || fail "names durable at once (--profile none): $json"

# a setup that prepares the folder: the log starts with a record the check does not know
json=$(run 0 --files log --setup 'printf "old\n" > log' --check "$PWD/$check && grep -qx old log" -- "$app" log 2)
[ "$(field violations "$json")" = 0 ] || fail "with a setup: $json"

# --jobs 2: the same states, counts, first violations (in the same order) and kept states as
# one process, each worker checking in its own folder, at the same time as the other
list() { # the violations listed, one a line: state step call crash
  grep -o '"step": [0-9]*, "call": "[^"]*", "crash": "[^"]*", "state": [0-9]*' <<<"$1" |
    sed 's/"step": \([0-9]*\), "call": \("[^"]*"\), "crash": \("[^"]*"\), "state": \([0-9]*\)/\4 \1 \2 \3/'
}
j1=$(run 1 --out "$tmp/j1" --files log --check "$PWD/$check" -- "$app" log 5 --ack-before-fsync)
j2=$(run 1 --out "$tmp/j2" --jobs 2 --files log --check "$PWD/$check" -- "$app" log 5 --ack-before-fsync)
for f in steps states distinct_states violations; do
  [ "$(field $f "$j1")" = "$(field $f "$j2")" ] || fail "--jobs 2: $f differs: $j1 / $j2"
done
[ "$(field violations "$j1")" -gt 8 ] || fail "more violations than the 8 listed wanted: $j1"
[ "$(list "$j1" | wc -l)" = 8 ] || fail "8 violations listed wanted: $j1"
[ "$(list "$j1")" = "$(list "$j2")" ] || fail "--jobs 2: other first violations: $(list "$j1") / $(list "$j2")"
[ "$(ls "$tmp/j1")" = "$(ls "$tmp/j2")" ] || fail "--jobs 2 kept other states: $(ls "$tmp/j1") / $(ls "$tmp/j2")"
mkdir "$tmp/lock"
json=$(run 0 --jobs 2 --files log --check "echo \$\$ >mine; rmdir $tmp/lock 2>/dev/null && sleep 0.1 && mkdir $tmp/lock \
  || { touch $tmp/overlap; sleep 0.1; }; test \"\$(cat mine)\" = \$\$" -- "$app" log 4)
[ -e "$tmp/overlap" ] || fail "--jobs 2: no two checks ran at once: $json"

# --shard I/N: the shards' states and violations, together, are the whole run's
whole=$(run 1 --files log --check "$PWD/$check" -- "$app" log 4 --ack-before-fsync)
s0=$(run 1 --shard 0/2 --files log --check "$PWD/$check" -- "$app" log 4 --ack-before-fsync)
s1=$(run 1 --shard 1/2 --jobs 2 --files log --check "$PWD/$check" -- "$app" log 4 --ack-before-fsync)
[ "$(list "$whole" | wc -l)" = "$(field violations "$whole")" ] || fail "every violation listed wanted: $whole"
[ $(( $(field distinct_states "$s0") + $(field distinct_states "$s1") )) = "$(field distinct_states "$whole")" ] ||
  fail "the shards checked other states than the whole: $s0 / $s1 / $whole"
[ $(( $(field violations "$s0") + $(field violations "$s1") )) = "$(field violations "$whole")" ] ||
  fail "the shards found other violations than the whole: $s0 / $s1 / $whole"
[ "$(field distinct_states "$s0")" -gt 0 ] && [ "$(field distinct_states "$s1")" -gt 0 ] || fail "an empty shard: $s0 / $s1"
[ "$(list "$whole")" = "$( (list "$s0"; list "$s1") | sort -n)" ] ||
  fail "the shards' violations are not the whole's: $(list "$whole") / $(list "$s0") $(list "$s1")"
run 2 --shard 2/2 --files log --check true -- "$app" log 1 >/dev/null
grep -q "\-\-shard wants I/N" "$tmp/err" || fail "bad shard: $(cat "$tmp/err")"

run 2 --files log --check true >/dev/null
grep -q "no program to run" "$tmp/err" || fail "no program: $(cat "$tmp/err")"
run 2 --check true -- "$app" log 1 >/dev/null
grep -q "\-\-files and \-\-check are required" "$tmp/err" || fail "no --files: $(cat "$tmp/err")"
run 2 --files log --setup false --check true -- "$app" log 1 >/dev/null
grep -q "the setup exited 1" "$tmp/err" || fail "failing setup: $(cat "$tmp/err")"
run 2 --files log --check true -- "$app" >/dev/null
grep -q "the program exited 2 under the shim: usage: applog" "$tmp/err" || fail "failing program: $(cat "$tmp/err")"
run 2 --files other --check true -- "$app" log 1 >/dev/null
grep -q "never opened a file matching other" "$tmp/err" || fail "no tracked file: $(cat "$tmp/err")"
# A shell as the program: dash writes through its redirection and ends with _exit (no
# destructor runs), which left the trace unfinished ("cannot read the trace"). Data never
# synced is lost at exit: a check that wants it fails, one that accepts nothing or all of it
# passes.
json=$(run 1 --files f --check 'grep -q hello f' -- sh -c 'echo hello > f')
[ "$(field steps "$json")" -ge 1 ] && [ "$(field violations "$json")" -ge 1 ] || fail "sh -c: unsynced data kept: $json"
json=$(run 0 --files f --check 'test ! -s f || grep -qx hello f' -- sh -c 'echo hello > f')
[ "$(field violations "$json")" = 0 ] || fail "sh -c: a torn line: $json"

# A child process writing the file (dash forks /bin/echo) is not modelled: the run is refused,
# naming the file, instead of checking a trace that lacks the writes (0 steps, "clean").
run 2 --files f --check true -- sh -c '/bin/echo hello > f; /bin/true' >/dev/null
grep -q "changed behind the shim's back" "$tmp/err" || fail "a child's write went unsaid: $(cat "$tmp/err")"

# Two processes in turn, each owning the files (a shell's two commands): the second used to
# recreate the trace, and the first one's writes were gone, unsaid; it takes the run over now,
# one recording (e2e_run_baton.sh). A sync run as a command (another process) made durable
# what the model kept volatile: it is a step of the run now, the shell (which owns the file
# through its own redirection) lending it the run while it waits; one while a background job
# owns the files is refused, named.
json=$(run 0 --files 'f*' --setup 'echo x > src' --check true -- sh -c 'cp src f1; cp src f2; :')
[ "$(field steps "$json")" = 4 ] && [ "$(field files "$json")" = 2 ] || fail "two owners in turn: $json"
json=$(run 0 --files f --check 'test "$CRASHCHECK_STEP" != 0 || grep -qx hello f' -- sh -c 'echo hello > f; sync; :')
[ "$(field steps "$json")" = 2 ] || fail "a sync command: $json"
run 2 --files f --check true -- sh -c '{ exec 3>>f; while [ ! -e go ]; do :; done; } &
  while [ ! -e f ]; do sleep 0.02; done; sleep 0.2; sync; touch go; wait' >/dev/null
grep -q "called sync() while process" "$tmp/err" || fail "another process's sync went unsaid: $(cat "$tmp/err")"
# A process that only reads the files is neither modelled nor refused, before or after the owner.
json=$(run 0 --files 'f*' --setup 'echo x > f0' --check true -- sh -c 'cat f0 >/dev/null; cp f0 f1; cat f1 >/dev/null; :')
[ "$(field steps "$json")" -ge 1 ] || fail "readers around the owner: $json"

echo "e2e_run: ok"
