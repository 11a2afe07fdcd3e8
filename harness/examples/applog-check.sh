#!/bin/sh
# applog-check.sh [notes|stdout]: the check `crashcheck run` gives each crash state of
# applog's log (run in the state's folder): every record applog acknowledged before the cut is
# in the log, whole. What it acknowledged: its "acked K" marker notes (the file
# CRASHCHECK_NOTES names; the default), or the "acked K" lines it had written to stdout by
# then (CRASHCHECK_STDOUT). A torn last record that was never acknowledged is fine.
case ${1:-notes} in
  notes) acks=$CRASHCHECK_NOTES ;;
  stdout) acks=$CRASHCHECK_STDOUT ;;
  *) echo "usage: applog-check.sh [notes|stdout]" >&2; exit 2 ;;
esac
n=$(grep -c '^acked' "$acks")
i=1
while [ "$i" -le "$n" ]; do
  grep -qx "record $i" log 2>/dev/null || { echo "record $i was acknowledged but is not in the log"; exit 1; }
  i=$((i + 1))
done
