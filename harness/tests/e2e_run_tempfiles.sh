#!/usr/bin/env bash
# e2e_run_tempfiles.sh: `crashcheck run` of a program that makes a new file per round, 300
# rounds (faults/tests/pc_work '*:300:110': f.tmp written, fsynced, renamed over f, the
# directory fsynced; f.g written, fsynced, its name fsynced, unlinked, the directory fsynced),
# with a descriptor limit of 256: libpowercut used to keep a descriptor per file it had ever
# tracked and stopped the run after ~30 rounds. Every round writes the same bytes, so the
# crash states of all rounds are those of one: 44 per round, 11 distinct, all clean; and a
# check that refuses f.g sees the states where an unlinked f.g is back (its unlink not
# durable yet) with its synced content.
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
work=$PWD/$build/tst/faults/tests/pc_work
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh
[ -x "$work" ] || fail "$work is not built"
ulimit -n 256 || fail "cannot set a descriptor limit of 256 (the hard limit is lower)"

# each of f, f.tmp and f.g, where it exists, holds 'n' bytes or zeros (a name or size that
# landed before its data), nothing else
same='for n in f f.tmp f.g; do [ ! -e $n ] || [ -z "$(tr -d "\\0n" <$n)" ] || { echo "$n: $(head -c 16 $n)"; exit 1; }; done'
for profile in posix ext4; do
  json=$(run 0 --files 'f*' --profile $profile --check "$same" -- "$work" f '*:300:110')
  [ "$(field violations "$json")" = 0 ] || fail "$profile: violations: $json"
  [ "$(field steps "$json")" = 2700 ] || fail "$profile: 300 rounds of 9 steps: $json"
  [ "$(field files "$json")" = 601 ] || fail "$profile: f, then f.tmp and f.g each round: $json"
  [ "$(field states "$json")" = 13201 ] || fail "$profile: 44 states a round and the end: $json"
  [ "$(field distinct_states "$json")" = 11 ] || fail "$profile: the states of one round, 11: $json"
done

# f.g is in some states, whole: its unlink volatile until the directory's fsync
json=$(run 1 --files 'f*' --profile posix --check '[ ! -e f.g ] || [ "$(wc -c <f.g)" != 512 ]' \
  -- "$work" f '*:300:110')
[ "$(field violations "$json")" -ge 1 ] || fail "no state with f.g whole: $json"

echo "e2e_run_tempfiles: ok"
