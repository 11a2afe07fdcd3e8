#!/bin/sh
# replace-check.sh FILE OLD NEW [notes|stdout]: the check `crashcheck run` gives each crash
# state of replace (run in the state's folder): FILE holds the whole content of version OLD or
# of version NEW (as replace writes it: 100 lines "VERSION line I"), and NEW once replace had
# acknowledged it ("replaced NEW") before the cut: in its marker notes (the file
# CRASHCHECK_NOTES names; the default), or on its stdout (CRASHCHECK_STDOUT). A FILE.tmp left
# over is fine.
[ $# -ge 3 ] || { echo "usage: replace-check.sh FILE OLD NEW [notes|stdout]" >&2; exit 2; }
file=$1 old=$2 new=$3
case ${4:-notes} in
  notes) acks=$CRASHCHECK_NOTES ;;
  stdout) acks=$CRASHCHECK_STDOUT ;;
  *) echo "usage: replace-check.sh FILE OLD NEW [notes|stdout]" >&2; exit 2 ;;
esac
version() { i=0; while [ $i -lt 100 ]; do echo "$1 line $i"; i=$((i + 1)); done; }
[ -e "$file" ] || { echo "$file is gone"; exit 1; }
if version "$new" | cmp -s - "$file"; then
  exit 0
fi
if grep -qx "replaced $new" "$acks"; then
  echo "replace acknowledged $new, but $file does not hold it ($(wc -c <"$file") bytes)"
  exit 1
fi
version "$old" | cmp -s - "$file" && exit 0
echo "$file holds neither $old nor $new whole ($(wc -c <"$file") bytes)"
exit 1
