#!/usr/bin/env bash
# e2e_sparse.sh: the pager under MP_SPARSE (a case's `sparse` line: the workload's handles
# open with it, a created file is reopened so in the create) explored like any case: the
# first 80 operations of the default workload at 1 and 4 KiB pages, with R7's follow-ups
# (which open the recovered file the same way): no violation, and more steps than without the
# flag (each protected alloc and new directory block reserves its pages, an fallocate that
# changes no size; growth is an ftruncate instead of an fallocate, one step either way).
set -euo pipefail
cc=${BUILD:-build}/bin/crashcheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh

for ps in 1024 4096; do
  { printf 'crashcheck-case 1\npage-size %s\nsector 512\ncut none\n' "$ps"
    grep -v '^#\|^crashcheck-case\|^page-size\|^sector\|^cut' corpus/workloads/default | head -80; } >"$tmp/plain.case"
  sed 's/^cut none$/cut none\nsparse/' "$tmp/plain.case" >"$tmp/sparse.case"
  grep -qx sparse "$tmp/sparse.case" || fail "no sparse line in the case"
  "$cc" show "$tmp/sparse.case" | grep -qx sparse || fail "crashcheck show drops the sparse line"
  plain=$("$cc" explore "$tmp/plain.case" --quiet --json --out "$tmp/out")
  sparse=$("$cc" explore "$tmp/sparse.case" --quiet --json --out "$tmp/out") || fail "$ps: sparse explore: $sparse"
  [ "$(field violations "$sparse")" = 0 ] || fail "$ps: violations under MP_SPARSE: $sparse"
  [ "$(field again_states "$sparse")" -gt 0 ] || fail "$ps: no R7 follow-up ran under MP_SPARSE: $sparse"
  [ "$(field steps "$sparse")" -gt "$(field steps "$plain")" ] ||
    fail "$ps: $(field steps "$sparse") steps with MP_SPARSE, $(field steps "$plain") without: not reserved?"
  echo "$ps-byte pages: $(field steps "$sparse") steps with MP_SPARSE ($(field steps "$plain") without)," \
    "$(field distinct_states "$sparse") distinct states, $(field again_states "$sparse") of R7's, 0 violations"
done
echo "e2e_sparse: ok"
