#!/bin/sh
# applog-check.sh: the check `crashcheck run` gives each crash state of applog's log (run in
# the state's folder): every record applog acknowledged before the cut (its "acked K" notes,
# in the file CRASHCHECK_NOTES names) is in the log, whole. A torn last record that was never
# acknowledged is fine.
n=$(grep -c '^acked' "$CRASHCHECK_NOTES")
i=1
while [ "$i" -le "$n" ]; do
  grep -qx "record $i" log 2>/dev/null || { echo "record $i was acknowledged but is not in the log"; exit 1; }
  i=$((i + 1))
done
