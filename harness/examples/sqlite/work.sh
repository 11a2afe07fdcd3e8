#!/bin/sh
# work.sh JOURNAL_MODE SYNCHRONOUS N: the program crashcheck run records for the sqlite3
# example: one sqlite3 process (the shim follows the first process that opens a tracked file,
# so every commit must come from it) commits N one-row transactions to test.db's table t,
# row K = (K, 'row K'), and after each COMMIT prints "acked K": what a server would answer
# its client once the commit returned. The sqlite3 shell flushes its output before it reads
# each line of its input (what one line prints is told at once), so each acknowledgement, on
# the line after its commit's, reaches stdout (a file under crashcheck run) before the next
# commit begins; harness/tests/e2e_sqlite.sh checks that it does.
set -e
[ $# = 3 ] || { echo "usage: work.sh JOURNAL_MODE SYNCHRONOUS N" >&2; exit 2; }
{
  echo "PRAGMA journal_mode=$1;"
  echo "PRAGMA synchronous=$2;"
  i=1
  while [ "$i" -le "$3" ]; do
    echo "BEGIN; INSERT INTO t VALUES($i, 'row $i'); COMMIT;"
    echo ".print acked $i"
    i=$((i + 1))
  done
} | sqlite3 -bail -batch -init /dev/null test.db
