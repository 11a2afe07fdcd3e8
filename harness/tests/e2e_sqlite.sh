#!/usr/bin/env bash
# e2e_sqlite.sh: the sqlite3 example (harness/examples/sqlite/; README, "Test your own
# program"): `crashcheck run` records the sqlite3 shell committing one-row transactions and
# acknowledging each on stdout, and checks every crash state of test.db, its journal, -wal and
# -shm with PRAGMA integrity_check and the acknowledged rows. No journal and no syncs
# (journal_mode=OFF, synchronous=OFF) loses acknowledged commits; a persistent rollback journal
# and WAL, both with synchronous=FULL, are clean; WAL with synchronous=NORMAL loses commits
# and never corrupts (as SQLite documents: WAL gives up durability there, not consistency).
# The acknowledgements reach CRASHCHECK_STDOUT one at a time, as each commit returns. A
# tracked file the program first opens after its first steps (SQLite opens its journal at the
# first write that needs it) is, in the states cut before that, as it was before the run.
# DELETE mode (SQLite's default) commits by deleting its journal; SQLite documents that with
# synchronous=FULL the last commit may be rolled back after a power loss, never with EXTRA,
# which fsyncs the directory after the unlink: under the posix profile FULL loses
# acknowledged commits (the unlinked journal is still there, hot, and opening the database
# plays it back) and never corrupts, in exactly the states cut after a journal's unlink and
# before its directory's fsync (read from the trace); EXTRA is clean, and so is FULL under
# --profile none, where the unlink is durable at once.
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
ex=harness/examples/sqlite
command -v sqlite3 >/dev/null || { echo "FAIL: sqlite3 is not installed (ci/setup installs it)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh
commits=10
profile=posix
run() { # expected-exit journal-mode synchronous [check]: the JSON of one run ($commits, $profile)
  local want=$1 journal=$2 sync=$3 check=${4:-$PWD/$ex/check.sh} st=0
  "$cc" run --json --quiet --jobs 2 --profile "$profile" --out "$tmp/out" --files 'test.db*' --setup "$PWD/$ex/setup.sh $journal" \
    --check "$check" -- "$ex/work.sh" "$journal" "$sync" "$commits" >"$tmp/json" 2>"$tmp/err" || st=$?
  [ "$st" = "$want" ] || fail "journal_mode=$journal synchronous=$sync exits $st, not $want: $(cat "$tmp/json" "$tmp/err")"
  cat "$tmp/json"
}

json=$(run 1 off off)
[ "$(field violations "$json")" -gt 0 ] || fail "no journal, no syncs: no violation: $json"
grep -q '"output": "lost: [0-9]* commits acknowledged' <<<"$json" || fail "no journal, no syncs: not lost: $json"

json=$(run 0 persist full)
[ "$(field violations "$json")" = 0 ] || fail "journal_mode=PERSIST synchronous=FULL: $json"
[ "$(field files "$json")" = 2 ] || fail "PERSIST tracks test.db and test.db-journal: $json"
[ "$(field distinct_states "$json")" -gt 100 ] || fail "PERSIST: too few states checked: $json"

json=$(run 0 wal full)
[ "$(field violations "$json")" = 0 ] || fail "journal_mode=WAL synchronous=FULL: $json"
[ "$(field files "$json")" = 3 ] || fail "WAL tracks test.db, test.db-wal and test.db-shm: $json"
[ "$(field distinct_states "$json")" -gt 50 ] || fail "WAL: too few states checked: $json"

json=$(run 1 wal normal)
grep -q '"output": "lost: ' <<<"$json" || fail "WAL synchronous=NORMAL: no acknowledged commit lost: $json"
! grep -q '"output": "corrupt' <<<"$json" || fail "WAL synchronous=NORMAL: corrupt: $json"

# each acknowledgement is seen by the states cut after its commit and before the next one
json=$(run 1 off off '[ "$CRASHCHECK_STEP" = 0 ] || [ "$(grep -c ^acked "$CRASHCHECK_STDOUT")" != 3 ]')
[ "$(field violations "$json")" -gt 0 ] || fail "no cut before the end saw exactly 3 acknowledgements: $json"

# the journal, opened after the first commit's steps (made with journal_mode=OFF): absent
# from the states cut before it was opened (before sqlite3 printed the new mode: it flushes
# its output before it reads each line of its input)
"$cc" run --json --quiet --out "$tmp/out" --files 'test.db*' --setup "$PWD/$ex/setup.sh persist" \
  --check 'grep -q persist "$CRASHCHECK_STDOUT" || test ! -e test.db-journal' \
  -- sh -c 'printf "%s\n" "PRAGMA journal_mode=OFF;" "INSERT INTO t VALUES(1, '\''row 1'\'');" \
    "PRAGMA journal_mode=PERSIST;" "INSERT INTO t VALUES(2, '\''row 2'\'');" | sqlite3 -bail -batch -init /dev/null test.db' \
  >"$tmp/json" 2>"$tmp/err" || fail "a journal opened late: $(cat "$tmp/json" "$tmp/err")"
json=$(cat "$tmp/json")
[ "$(field files "$json")" = 2 ] || fail "a journal opened late: not tracked: $json"
[ "$(field distinct_states "$json")" -gt 4 ] || fail "a journal opened late: too few states: $json"

# DELETE. The lost states must be the cuts after a journal's unlink and before an fsync of
# its directory (that fsync itself cut with nothing landed: tear none), or the end of the run
# when none follows: the trace of the same run, recorded here under the shim, says which
# steps those are (its windows, U:D, D 0 for the end). A few commits: each window is one
# state (the old journal under its name, whatever else is written back).
commits=3
mkdir "$tmp/rec"
shim=$(realpath "$build/lib/libpowercut.so") exd=$PWD/$ex
(cd "$tmp/rec" && sh "$exd/setup.sh" delete &&
  LD_PRELOAD=$shim POWERCUT_FILE='test.db*' POWERCUT_TRACE=$tmp/trace POWERCUT_NAMESPACE=posix \
    sh "$exd/work.sh" delete full "$commits" >/dev/null) ||
  fail "DELETE: the recording under the shim failed"
windows=$("$build/bin/pc-trace" "$tmp/trace" | awk '
  $2 == "unlink" { u[n++] = $1 }
  $2 == "fsync-dir" || $2 == "fdatasync-dir" { for (i = 0; i < n; i++) printf "%d:%d ", u[i], $1; n = 0 }
  END { for (i = 0; i < n; i++) printf "%d:0 ", u[i] }')
[ "$(wc -w <<<"$windows")" = "$commits" ] || fail "DELETE: not one unlink per commit in the trace: $windows"
# window STEP CRASH: the number (from 1) of the window a cut at STEP with CRASH lies in
cat >"$tmp/window" <<EOF
k=0
for w in $windows; do k=\$((k + 1)) u=\${w%:*} d=\${w#*:}
  if [ "\$d" = 0 ]; then [ "\$1" = 0 ] || [ "\$1" -gt "\$u" ]
  else [ "\$1" -gt "\$u" ] && { [ "\$1" -lt "\$d" ] || { [ "\$1" = "\$d" ] && [ "\${2#tear none }" != "\$2" ]; }; }
  fi && { echo \$k; exit 0; }
done
exit 1
EOF
json=$(run 1 delete full)
[ "$(field violations "$json")" = "$commits" ] || fail "DELETE synchronous=FULL: not one lost state per commit: $json"
[ "$(grep -o '"output": "lost: ' <<<"$json" | wc -l)" = "$commits" ] || fail "DELETE synchronous=FULL: not lost: $json"
! grep -q '"output": "corrupt' <<<"$json" || fail "DELETE synchronous=FULL: corrupt: $json"
[ "$(field files "$json")" = $((commits + 1)) ] || fail "DELETE tracks test.db and one journal per commit: $json"
seen=$(grep -o '"step": [0-9]*, "call": "[^"]*", "crash": "[^"]*"' <<<"$json" |
  sed 's/"step": \([0-9]*\), "call": "[^"]*", "crash": "\([^"]*\)"/\1 \2/' |
  while read -r step crash; do sh "$tmp/window" "$step" "$crash" || echo "step $step ($crash)"; done | sort | tr '\n' ' ')
[ "$seen" = "$(seq -s ' ' "$commits") " ] || fail "DELETE synchronous=FULL: lost states by window ($windows): $seen: $json"
# every state, not only the first violations kept: lost only in a window
json=$(run 0 delete full 'out=$(sh '"$exd"'/check.sh) && exit 0; case $out in lost:*) ;; *) exit 1;; esac
  sh '"$tmp"'/window "$CRASHCHECK_STEP" "$CRASHCHECK_CRASH" >/dev/null')
[ "$(field violations "$json")" = 0 ] || fail "DELETE synchronous=FULL: a state lost outside the windows $windows: $json"
# the directory fsync is the difference: EXTRA makes it after each unlink, and without the
# namespace model the unlink is durable at once
json=$(run 0 delete extra)
[ "$(field violations "$json")" = 0 ] || fail "journal_mode=DELETE synchronous=EXTRA: $json"
[ "$(field distinct_states "$json")" -gt 50 ] || fail "DELETE EXTRA: too few states checked: $json"
profile=none
json=$(run 0 delete full)
profile=posix
[ "$(field violations "$json")" = 0 ] || fail "DELETE synchronous=FULL, --profile none: $json"
echo "e2e_sqlite: ok"
