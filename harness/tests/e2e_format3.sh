#!/usr/bin/env bash
# e2e_format3.sh: crashcheck explores 0.3 files (pager/FORMAT.md section 3): the suite's 0.3
# workload (corpus/workloads/format3) is clean with the garbage tears of its metadata writes,
# which add states to it (and none to a 0.2 workload), the create's first write's included;
# and a workload that crosses the upgrade (1,020 bulk allocations of 32 pages at 4 KiB: a 0.2
# file past its 32,544 pages becomes 0.3) is clean at 512 and 4096-byte sectors, its file 0.3
# at the end, its crash coverage the upgrade's 0.3 cells (which the suite does not reach); and
# so are ones at 1 and 2 KiB pages, where the superblock's 4 KiB sector holds 0.2's metadata
# (and page 3's data at 1 KiB) too.
set -euo pipefail
cc=${BUILD:-build}/bin/crashcheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
field() { grep -o "\"$1\": [0-9]*" <<<"$2" | head -1 | grep -o '[0-9]*$'; }
explore() { $cc explore "$@" --quiet --json --again off --out "$tmp/out" || true; }

with=$(explore corpus/workloads/format3)
without=$(explore corpus/workloads/format3 --tear prefix,suffix,random:4)
[ "$(field violations "$with")" = 0 ] || fail "format3 with garbage tears: $with"
[ "$(field violations "$without")" = 0 ] || fail "format3: $without"
[ "$(field distinct_states "$with")" -gt "$(field distinct_states "$without")" ] ||
  fail "the garbage tears add no state to a 0.3 workload: $(field distinct_states "$with") against $(field distinct_states "$without")"
# The create's first msync lands the root and group 0's leaf before the superblock says the
# file is 0.3 (pager/FORMAT.md 3.5): explore knows it from the case ("format 3") and tears each
# of their sectors into garbage too, and every such state is the create's leftover, which a
# reader's open refuses as incomplete and R7's follow-up (forced for every cut in the create)
# replaces. Against the same exploration without garbage (random:0 adds no tear: none and all
# alone), the garbage adds 5 states that were there before (the superblock's sector, and --tear
# garbage's garbage first sector at that step, at its 4 writebacks), and the root's and the
# leaf's changed sectors: their header and CRC at 512 bytes (4), one each at 4096 (2).
printf 'crashcheck-case 1\npage-size 4096\nsector 512\nformat 3\ncut none\n' >"$tmp/create3"
for sector in 512 4096; do
  g=$($cc explore "$tmp/create3" --sector $sector --tear garbage --quiet --json --out "$tmp/out" || true)
  n=$(explore "$tmp/create3" --sector $sector --tear random:0)
  want=$((5 + (sector == 512 ? 4 : 2)))
  [ "$(field violations "$g")" = 0 ] && [ "$(field again_runs "$g")" -gt 0 ] || fail "a 0.3 create's garbage tears, sector $sector: $g"
  [ $(($(field states "$g") - $(field states "$n"))) = $want ] ||
    fail "a 0.3 create's garbage tears at $sector-byte sectors: $(field states "$g") states against $(field states "$n") without, not $want more"
done
echo "a 0.3 create's garbage tears: explored (its root's and leaf's sectors), no violation"
d1=$(explore corpus/workloads/blocks-1k)
d2=$(explore corpus/workloads/blocks-1k --tear prefix,suffix,random:4)
[ "$(field distinct_states "$d1")" = "$(field distinct_states "$d2")" ] || fail "garbage tears in a 0.2 file: $d1 / $d2"
echo "format3: $(field distinct_states "$with") distinct states ($(field distinct_states "$without") without the garbage tears), no violation"
# The binary form (fuzz inputs, the explorer's recorded runs) carries "format 3" in its header:
# `__run` of it creates a 0.3 file, explored it is the same workload, and a replay of it with a
# garbage cut in a metadata write tells a 0.3 case and finds nothing.
$cc encode corpus/workloads/format3 -o "$tmp/format3.bin"
$cc __run "$tmp/format3.bin" "$tmp/f3.db" >/dev/null || fail "the binary 0.3 workload does not run"
[ "$(head -c 6 "$tmp/f3.db" | od -An -tx1 | tr -d ' \n')" = 4d5050470003 ] || fail "the binary case made a 0.2 file"
bin=$(explore "$tmp/format3.bin")
[ "$(field distinct_states "$bin")" = "$(field distinct_states "$with")" ] && [ "$(field violations "$bin")" = 0 ] ||
  fail "the binary form explores otherwise than the text: $(field distinct_states "$bin") against $(field distinct_states "$with")"
sed 's/^cut none$/cut 12 tear garbage:1 writeback none seed 3/' corpus/workloads/format3 >"$tmp/cut3"
$cc encode "$tmp/cut3" -o "$tmp/cut3.bin"
story=$($cc replay "$tmp/cut3.bin") || fail "replay of a 0.3 binary case: $story"
grep -q "a 0.3 file" <<<"$story" && grep -q "^power cut at step 12: msync" <<<"$story" || fail "replay's story: $story"
echo "binary form: $(field distinct_states "$bin") distinct states, as the text; its replay: $(grep -m1 '^verdict\|^recovered\|clean' <<<"$story" | cut -c1-80)"

{
  printf 'crashcheck-case 1\npage-size 4096\nsector 512\nupgrade\ncut none\n'
  for _ in $(seq 1020); do echo "alloc-bulk 31"; done
  printf 'palloc\npwrite 1 7\nwrite-sync 5 9\nalloc\nalloc-bulk 31\nalloc\nfree 7\npalloc\npwrite 2 3\nalloc-bulk 5\nfree-bulk 3 40\n'
} >"$tmp/upgrade"
$cc __run "$tmp/upgrade" "$tmp/u.db" || fail "the upgrade workload does not run"
[ "$(head -c 6 "$tmp/u.db" | od -An -tx1 | tr -d ' \n')" = 4d5050470003 ] || fail "the file is not 0.3 after the workload"
for sector in 512 4096; do
  u=$(explore "$tmp/upgrade" --sector $sector)
  [ "$(field violations "$u")" = 0 ] && [ "$(field steps "$u")" -gt 2000 ] || fail "upgrade, sector $sector: $u"
  # Its crash coverage counts in 0.3's rows (harness/coverage3.c): the commit that rewrites page
  # 0 as the superblock, the stage's leaf of the new group 1, the root and leaves after it.
  for cell in v3-alloc-bulk/superblock/anywhere v3-alloc-bulk/leaf/new-group v3-alloc-bulk/root/slot-a \
              v3-alloc-bulk/leaf/slot-b v3-palloc/root/new-block; do
    grep -q "\"$cell\"" <<<"$u" || fail "upgrade, sector $sector: crash coverage without $cell: $u"
  done
  grep -q '"impossible": \[\]' <<<"$u" || fail "upgrade, sector $sector: impossible cells covered: $u"
  echo "upgrade, sector $sector: $(field steps "$u") steps, $(field distinct_states "$u") distinct states, no violation"
done
# Below 4 KiB pages, a workload like the one above at 1 KiB (and the same at 2 KiB): page 0's
# 4 KiB sector holds 0.2's metadata copies (and page 3's data at 1 KiB), which a garbage tear of
# the upgrade's superblock write takes too; the sector copy rolls the file forward. Page 3, the
# first page allocated, holds synced data and is written again and freed once the file is 0.3;
# two protected pages (single 0.2 pages) are moved into whole blocks by the upgrade. Clean at
# 4096 and 512-byte sectors; the garbage tears add states (explored in 0.3 files only: the
# upgrade happened). (Not in corpus/workloads: the suite would explore it at 16 KiB pages too,
# 128 MiB files for minutes, and at 4 KiB and more it does not reach 0.2's capacity.)
small() { # PAGE-SIZE BULKS
  printf 'crashcheck-case 1\npage-size %s\nsector 4096\nupgrade\ncut none\n' "$1"
  printf 'alloc\nwrite-sync 0 9\npalloc\npwrite 0 3\npalloc\n'
  for _ in $(seq "$2"); do echo "alloc-bulk 31"; done
  printf 'write-sync 0 5\npalloc\npwrite 0 7\npwrite 1 8\npfree 2\nalloc\nfree 0\nalloc-bulk 3\n'
}
small 1024 249 >"$tmp/upgrade-1k" # (249 x 32 pages outgrow 0.2's 7,968 at 1 KiB, 505 its 16,160 at 2)
small 2048 505 >"$tmp/upgrade-2k"
for w in "$tmp/upgrade-1k --sector 4096" "$tmp/upgrade-1k --sector 512" "$tmp/upgrade-2k --sector 4096"; do
  # shellcheck disable=SC2086
  u=$(explore $w)
  # shellcheck disable=SC2086
  g=$(explore $w --tear prefix,suffix,random:4)
  [ "$(field violations "$u")" = 0 ] && [ "$(field steps "$u")" -gt 500 ] || fail "upgrade ($w): $u"
  [ "$(field distinct_states "$u")" -gt "$(field distinct_states "$g")" ] || fail "upgrade ($w): no 0.3 states: $u"
  echo "upgrade (${w##*/}): $(field steps "$u") steps, $(field distinct_states "$u") distinct states, no violation"
done
echo "e2e_format3: ok"
