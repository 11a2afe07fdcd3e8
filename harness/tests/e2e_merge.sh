#!/usr/bin/env bash
# e2e_merge.sh: `crashcheck merge` of the --json outputs of 4 shards equals the unsharded run:
# corpus/workloads/edges explored whole and as --shard 0/4 .. 3/4 (R7 off: its follow-ups are
# sampled and deduplicated per process, so their counts do not add up across shards), and the
# merge reports the same steps, crash states, distinct states, violations, leaks, reclaimed
# pages and coverage (cells, missing, counts). The same for explore --errors (whose shards split
# the error runs: their states add up) and for `crashcheck run --shard`. Then the
# refusals: shards of another page size (exit 2, naming the field and both files), a file that
# is not JSON, and no file; and a shard with a violation makes the merge exit 1.
set -euo pipefail
cc=${BUILD:-build}/bin/crashcheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { grep -o "\"$1\": [0-9]*" <<<"$2" | head -1 | grep -o '[0-9]*$'; }
list() { grep -o "\"$1\": \[[^]]*\]" <<<"$2"; } # a list of strings (the coverage's)

explore() { "$cc" explore corpus/workloads/edges --again off --quiet --json --out "$tmp/out" "$@"; }
whole=$(explore)
for i in 0 1 2 3; do explore --shard "$i/4" >"$tmp/shard$i.json"; done
merged=$("$cc" merge --json "$tmp"/shard?.json) || fail "merge of clean shards exited $?"
for f in steps states distinct_states violations leaks reclaimed first_violation_state covered required \
         impossible_covered page_size sector; do
  [ "$(field "$f" "$merged")" = "$(field "$f" "$whole")" ] ||
    fail "$f: merged $(field "$f" "$merged"), unsharded $(field "$f" "$whole")"
done
for l in cells missing impossible; do
  [ "$(list "$l" "$merged")" = "$(list "$l" "$whole")" ] || fail "coverage $l differ: $(list "$l" "$merged")"
done
[ "$(field shards "$merged")" = 4 ] || fail "shards: $(field shards "$merged")"
[ "$(field distinct_states "$(cat "$tmp/shard0.json")")" -lt "$(field distinct_states "$whole")" ] ||
  fail "one shard checked every distinct state: the sharding split nothing"
python3 -c 'import json,sys; json.load(sys.stdin)' <<<"$merged" || fail "merged output is not JSON"
"$cc" merge "$tmp"/shard0.json "$tmp"/shard1.json "$tmp"/shard2.json - <"$tmp/shard3.json" |
  grep -q "^merged 4 shards of one exploration" || fail "human summary (one shard from stdin)"
# Each output says which shard it is: a missing or a repeated one is refused.
st=0
"$cc" merge "$tmp"/shard0.json "$tmp"/shard1.json "$tmp"/shard3.json >/dev/null 2>"$tmp/err" || st=$?
[ "$st" = 2 ] && grep -q "shard 2 of 4 is missing" "$tmp/err" || fail "a missing shard: exit $st: $(cat "$tmp/err")"
st=0
"$cc" merge "$tmp"/shard0.json "$tmp"/shard1.json "$tmp"/shard2.json "$tmp"/shard3.json "$tmp"/shard1.json \
  >/dev/null 2>"$tmp/err" || st=$?
[ "$st" = 2 ] && grep -q "shard 1 of 4 is given twice" "$tmp/err" || fail "a repeated shard: exit $st: $(cat "$tmp/err")"

# explore --errors: the shards split the error runs, so the states after the errors add up too.
ewhole=$("$cc" explore corpus/workloads/errors --errors --again off --quiet --json --out "$tmp/out")
for i in 0 1 2 3; do
  "$cc" explore corpus/workloads/errors --errors --again off --quiet --json --out "$tmp/out" --shard "$i/4" \
    >"$tmp/err$i.json"
done
emerged=$("$cc" merge --json "$tmp"/err?.json) || fail "merge of --errors shards exited $?"
for f in steps states distinct_states violations reclaimed error_steps error_runs error_contract error_states covered; do
  [ "$(field "$f" "$emerged")" = "$(field "$f" "$ewhole")" ] ||
    fail "--errors $f: merged $(field "$f" "$emerged"), unsharded $(field "$f" "$ewhole")"
done
[ "$(list cells "$emerged")" = "$(list cells "$ewhole")" ] || fail "--errors coverage cells differ"

# run --shard: a program whose check fails every state after its first write, so violations add
# up (one process: a shell's `printf >f; sync f` is two, which crashcheck run refuses).
app=${BUILD:-build}/examples/applog
run() { "$cc" run --json --quiet --out "$tmp/rout$1" --files log --check 'test ! -s log' "${@:2}" -- "$PWD/$app" log 2; }
rwhole=$(run w) && fail "the run's check should fail some states" || true
for i in 0 1 2 3; do run "$i" --shard "$i/4" >"$tmp/run$i.json" || true; done
st=0
rmerged=$("$cc" merge --json "$tmp"/run?.json) || st=$?
[ "$st" = 1 ] || fail "merge of run shards with violations exited $st, not 1"
for f in files steps states distinct_states violations; do
  [ "$(field "$f" "$rmerged")" = "$(field "$f" "$rwhole")" ] ||
    fail "run $f: merged $(field "$f" "$rmerged"), unsharded $(field "$f" "$rwhole")"
done
[ "$(field violations "$rmerged")" -gt 0 ] || fail "the run found no violation"

# Refusals.
explore --page-size 1024 --shard 1/4 >"$tmp/other.json"
st=0
"$cc" merge "$tmp/shard0.json" "$tmp/other.json" >"$tmp/out.txt" 2>"$tmp/err" || st=$?
[ "$st" = 2 ] || fail "shards of two page sizes: exit $st"
grep -q "shard0.json and .*other.json disagree on " "$tmp/err" || fail "message: $(cat "$tmp/err")"
[ ! -s "$tmp/out.txt" ] || fail "a refused merge printed a report"
st=0
"$cc" merge "$tmp/shard0.json" "$tmp/run0.json" 2>"$tmp/err" >/dev/null || st=$?
[ "$st" = 2 ] && grep -q "not shards of one exploration" "$tmp/err" || fail "explore with run: exit $st, $(cat "$tmp/err")"
head -c 100 "$tmp/shard0.json" >"$tmp/cut.json"
st=0
"$cc" merge "$tmp/cut.json" 2>"$tmp/err" >/dev/null || st=$?
[ "$st" = 2 ] && grep -q "cut.json: not JSON: " "$tmp/err" || fail "truncated JSON: exit $st, $(cat "$tmp/err")"
st=0
"$cc" merge 2>/dev/null || st=$?
[ "$st" = 2 ] || fail "no file: exit $st"
echo "e2e_merge: ok ($(field distinct_states "$whole") distinct states in 4 shards, run: $(field violations "$rmerged") violations)"
