#!/usr/bin/env bash
# e2e_suite.sh: the workload suite (corpus/workloads/) explored at every page size the
# harness supports and at both sector sizes, through `crashcheck coverage`: 0 violations,
# no covered cell the protocol's table calls impossible, and every required cell covered
# but for the gaps listed in corpus/coverage-gaps (each with its reason), which must still
# be gaps: a gap the suite closes is taken off the list. msync works in system pages, so a
# bug can hide at one page size and show at another; atomic 4 KiB sectors and 512-byte
# ones tear different writes; some bugs need a shape of workload that only one case takes.
# The 0.3 format's cells (v3-*) are required as 0.2's are, and some of each kind checked by name.
set -euo pipefail
cc=build/bin/crashcheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
sizes=""
for ps in 1024 2048 4096 8192 16384; do sizes="$sizes --page-size $ps"; done
set +e
# shellcheck disable=SC2086
$cc coverage $sizes --sector 512 --sector 4096 --jobs 2 --json >"$tmp/cov.json" 2>"$tmp/cov.err"
st=$?
set -e
cat "$tmp/cov.err"
grep -o '"page_size": [0-9]*, "sector": [0-9]*\|"impossible": \[[^]]*[a-z][^]]*\]' "$tmp/cov.json" | grep -B1 impossible || true
[ "$st" = 0 ] || fail "crashcheck coverage exit $st (violations, or an impossible cell covered: above)"
[ "$(wc -l <"$tmp/cov.json")" = 10 ] || fail "expected 10 page/sector sizes: $(cat "$tmp/cov.json")"
# Cells required at each size and not covered, as "PS/SECTOR operation/what/where".
missing() {
  while read -r line; do
    ps=$(grep -o '"page_size": [0-9]*' <<<"$line" | grep -o '[0-9]*$')
    sector=$(grep -o '"sector": [0-9]*' <<<"$line" | grep -o '[0-9]*$')
    { grep -o '"missing": \[[^]]*\]' <<<"$line" | grep -o '"[a-z0-9-]*/[a-z-]*/[a-z-]*"' || true; } |
      tr -d '"' | sed "s|^|$ps/$sector |"
  done <"$tmp/cov.json"
}
missing | sort >"$tmp/missing"
{ grep -v '^#' corpus/coverage-gaps || true; } | sed '/^$/d' | cut -d' ' -f1,2 | sort >"$tmp/gaps"
new=$(comm -23 "$tmp/missing" "$tmp/gaps")
closed=$(comm -13 "$tmp/missing" "$tmp/gaps")
[ -z "$new" ] || fail "required cells no workload covers (add a case to corpus/workloads/ that takes them):
$new"
[ -z "$closed" ] || fail "listed in corpus/coverage-gaps but covered now (take them off the list):
$closed"
# The 0.3 rows (pager/FORMAT.md section 3: roots, leaves, the 0.3 create, a writer's open's
# invalidations) are cells of their own, which the suite's 0.3 workloads (format 3) cover too:
# at every size, each of the 0.3 protocol's kinds of write is covered.
while read -r line; do
  size=$(grep -o '"page_size": [0-9]*, "sector": [0-9]*' <<<"$line")
  cells=$(grep -o '"cells": \[[^]]*\]' <<<"$line")
  for cell in v3-create/root/slot-b v3-create/leaf/slot-a v3-create/superblock/anywhere v3-alloc/leaf/slot-a \
              v3-alloc/leaf/slot-b v3-alloc/root/slot-a v3-alloc/root/growing v3-palloc/directory-stage/new-block \
              v3-palloc/root/new-block v3-pwrite/protected-copy/anywhere v3-recovery/leaf-invalidate/slot-a; do
    grep -q "\"$cell\"" <<<"$cells" || fail "the 0.3 cell $cell is not covered at $size"
  done
done <"$tmp/cov.json"
v3=$(grep -o '"v3-[a-z-]*/[a-z-]*/[a-z-]*"' "$tmp/cov.json" | wc -l)
covered=$(grep -o '"covered": [0-9]*' "$tmp/cov.json" | grep -o '[0-9]*$' | awk '{s += $1} END {print s}')
required=$(grep -o '"required": [0-9]*' "$tmp/cov.json" | grep -o '[0-9]*$' | awk '{s += $1} END {print s}')
echo "workload suite at 5 page sizes x 2 sector sizes: 0 violations, $covered of $required required cells covered ($v3 cells of 0.3 files covered), $(wc -l <"$tmp/gaps") known gaps"
