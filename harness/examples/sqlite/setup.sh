#!/bin/sh
# setup.sh JOURNAL_MODE: crashcheck run's --setup for the sqlite3 example: the database
# test.db with its empty table t, made before the recorded run so that the run is the
# commits alone. WAL is kept in the file's header, so a WAL database is made in WAL mode
# here: switching to it during the run would go through a rollback journal that SQLite
# creates and deletes, steps that are not the commits'. The other modes (DELETE, PERSIST,
# OFF) are the connection's own: work.sh sets them.
set -e
[ $# = 1 ] || { echo "usage: setup.sh JOURNAL_MODE" >&2; exit 2; }
mode=delete
[ "$1" = wal ] && mode=wal
sqlite3 -bail -batch -init /dev/null test.db \
  "PRAGMA journal_mode=$mode; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);" >/dev/null
