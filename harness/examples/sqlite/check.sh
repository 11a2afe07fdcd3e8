#!/bin/sh
# check.sh: crashcheck run's --check for the sqlite3 example, run in a crash state's folder:
# the database opens and passes PRAGMA integrity_check (else "corrupt"), and every row whose
# commit work.sh acknowledged before the cut (its "acked K" lines in CRASHCHECK_STDOUT) is
# there, whole (else "lost"). A commit that landed without its acknowledgement is fine.
# Opening the database recovers it as SQLite would after the cut: a hot rollback journal is
# played back, a WAL is read; both change only this copy of the state. One sqlite3 process
# answers both questions: the check runs once per crash state, and a process is most of
# its cost.
n=$(grep -c '^acked' "$CRASHCHECK_STDOUT")
out=$(sqlite3 -bail -batch -init /dev/null test.db \
  "PRAGMA integrity_check; SELECT count(*) FROM t WHERE id <= $n AND v = 'row ' || id;" 2>&1)
[ "$(printf '%s\n' "$out" | head -1)" = ok ] && [ "$(printf '%s\n' "$out" | wc -l)" = 2 ] ||
  { echo "corrupt: $out" | head -3; exit 1; }
rows=$(printf '%s\n' "$out" | tail -1)
[ "$rows" = "$n" ] || { echo "lost: $n commits acknowledged, $rows of them in the table"; exit 1; }
