#!/usr/bin/env bash
# e2e_salvage.sh: a garbage first sector at every page-0 write of two workloads recovers
# (pager/salvage.c): each write is cut with a garbage tear of its first durable sector (page
# 0's first), at 1 and 4 KiB pages and 512 and 4096-byte sectors, and replayed by crashcheck,
# which checks R1-R6 and then cuts the follow-up's open (the writer's rewrite of the salvaged
# page 0) with a tear of its first sector only (R7). crashcheck explore's tears leave garbage
# out (outside the default model), so each state is a case of its own.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
cc=${BUILD:-build}/bin/crashcheck
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
sweep() { # WORKLOAD PAGE-SIZE SECTOR
  local w=$1 ps=$2 sec=$3 steps body k out p0=0 ok=0
  steps=$($cc explore "$w" --page-size "$ps" --sector "$sec" --quiet --json --tear prefix | grep -o '"steps": [0-9]*' | grep -o '[0-9]*')
  [ -n "$steps" ] || { echo "FAIL: explore $w did not say its steps"; fail=1; return; }
  body=$(grep -v '^#\|^crashcheck-case\|^page-size\|^sector\|^cut\|^again' "$w")
  for k in $(seq 1 "$steps"); do
    printf 'crashcheck-case 1\npage-size %s\nsector %s\ncut %s tear garbage:1 writeback none seed 1\nagain 1 tear prefix:1 writeback none seed 0\n%s\n' \
      "$ps" "$sec" "$k" "$body" >"$work/case.txt"
    out=$($cc replay "$work/case.txt" 2>&1)
    grep -q 'msync (offset 0, length' <<<"$out" || continue # a write of another page: garbage there is data lost
    p0=$((p0 + 1))
    if grep -q 'verdict: recovered correctly' <<<"$out" && ! grep -q 'violated' <<<"$out"; then
      ok=$((ok + 1))
    else
      echo "FAIL: $w at $ps-byte pages, $sec-byte sectors, step $k:"; grep -A3 'verdict' <<<"$out" | head -8; fail=1
    fi
  done
  [ "$p0" -gt 0 ] || { echo "FAIL: $w: no page-0 write among $steps steps"; fail=1; }
  echo "$w, $ps-byte pages, $sec-byte sectors: $ok of $p0 page-0 writes torn into garbage recover"
}
sweep corpus/workloads/reuse 4096 512
sweep corpus/workloads/reuse 4096 4096
sweep corpus/workloads/edges 1024 512
sweep corpus/workloads/edges 4096 4096
exit $fail
