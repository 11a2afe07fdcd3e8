#!/usr/bin/env bash
# e2e_run.sh: `crashcheck run` on an example program, harness/examples/applog.c (an append-only
# log that acknowledges each record), judged by harness/examples/applog-check.sh: the version
# that acknowledges after fsync is clean; acknowledging before the fsync is caught at the fsync
# steps; never syncing is caught (at exit, nothing acknowledged is durable); so is a new log
# whose directory was never synced (the posix profile: its name is lost), but not under
# --profile none; the program's stdout as far as it had written it before the cut judges the
# same way as its notes; failing states are kept with their story; bad usage, a failing setup
# and a failing program exit 2 with a reason.
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
app=$build/examples/applog
check=harness/examples/applog-check.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
field() { grep -o "\"$1\": [0-9]*" <<<"$2" | grep -o '[0-9]*$'; }
run() { # expected-exit args...: the JSON of one run
  local want=$1 st=0
  shift
  "$cc" run --json --quiet --out "$tmp/out" "$@" >"$tmp/json" 2>"$tmp/err" || st=$?
  [ "$st" = "$want" ] || fail "crashcheck run $* exits $st, not $want: $(cat "$tmp/json" "$tmp/err")"
  cat "$tmp/json"
}

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
echo "e2e_run: ok"
