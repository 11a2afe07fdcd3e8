#!/usr/bin/env bash
# e2e_corpus.sh: every workload in corpus/workloads/ explores clean, and every reproducer in
# corpus/regressions/ replays clean (each is a fixed bug), except those listed in
# corpus/regressions/OPEN with the reason they are not fixed (or not bugs).
set -euo pipefail
cc=build/bin/crashcheck
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=0
for w in corpus/workloads/*; do
  json=$($cc explore "$w" --quiet --json --again 4 --jobs 2 --out "$out") || { echo "FAIL: explore $w: $json"; exit 1; }
  grep -q '"violations": 0' <<<"$json" || { echo "FAIL: $w: $json"; exit 1; }
  echo "explore $w: $(grep -o '"distinct_states": [0-9]*' <<<"$json"), no violation"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: no workload in corpus/workloads/"; exit 1; }
for r in corpus/regressions/*; do
  base=$(basename "$r")
  [ "$base" = OPEN ] && continue
  if [ -f corpus/regressions/OPEN ] && grep -q "^$base[[:space:]]" corpus/regressions/OPEN; then
    echo "skip $base (open: see corpus/regressions/OPEN)"
    continue
  fi
  $cc replay "$r" >"$out/replay.log" 2>&1 || { cat "$out/replay.log"; echo "FAIL: replay $r"; exit 1; }
  echo "replay $base: clean"
done
