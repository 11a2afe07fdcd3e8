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
# (DELETE mode, SQLite's default, deletes its journal at each commit: it waits for the
# unlink model.)
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
ex=harness/examples/sqlite
command -v sqlite3 >/dev/null || { echo "FAIL: sqlite3 is not installed (ci/setup installs it)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
field() { grep -o "\"$1\": [0-9]*" <<<"$2" | grep -o '[0-9]*$'; }
commits=10
run() { # expected-exit journal-mode synchronous [check]: the JSON of one run
  local want=$1 journal=$2 sync=$3 check=${4:-$PWD/$ex/check.sh} st=0
  "$cc" run --json --quiet --out "$tmp/out" --files 'test.db*' --setup "$PWD/$ex/setup.sh $journal" \
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
echo "e2e_sqlite: ok"
