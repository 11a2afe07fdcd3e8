#!/usr/bin/env bash
# e2e_run_replay.sh: `crashcheck replay` of the states `crashcheck run` kept. The unsafe atomic
# replace (harness/examples/replace.c --unsafe) fails in several states; each kept one, replayed
# from what the run left beside it (run.trace, run.snap, run.info), fails again with the same
# story, and --keep leaves a folder equal to the kept one; the check really runs again (a
# run.info whose check passes makes the replay pass); what is not such a state is refused.
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
app=$PWD/$build/examples/replace
check=$PWD/harness/examples/replace-check.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh

st=0
"$cc" run --json --quiet --out "$tmp/out" --files 'data*' --setup "$app data v1" --check "$check data v1 v2" \
  -- "$app" data v2 --unsafe >"$tmp/json" 2>"$tmp/err" || st=$?
[ "$st" = 1 ] || fail "the unsafe replace exits $st, not 1: $(cat "$tmp/json" "$tmp/err")"
for f in run.info run.trace run.snap/data run.stdout run.stderr; do
  [ -e "$tmp/out/$f" ] || fail "the run left no $f to replay with"
done
n=0
for kept in "$tmp"/out/state-*; do
  [ -d "$kept" ] || continue
  n=$((n + 1))
  said=$(grep -o '"output": "[^"]*", "kept": "'"$kept"'"' "$tmp/json" | cut -d'"' -f4)
  st=0
  "$cc" replay "$kept" --keep "$tmp/again-$n" >"$tmp/replay" 2>&1 || st=$?
  [ "$st" = 1 ] || fail "replay of $kept exits $st, not 1: $(cat "$tmp/replay")"
  grep -qF "verdict: the check fails again (exit 1): $said" "$tmp/replay" ||
    fail "replay of $kept tells another story than the run ($said): $(cat "$tmp/replay")"
  diff -r "$kept" "$tmp/again-$n" >/dev/null || fail "the state laid out again differs from the kept one: $kept"
  st=0
  "$cc" replay "$kept.txt" >"$tmp/replay" 2>&1 || st=$? # by its story too, in scratch
  [ "$st" = 1 ] || fail "replay of $kept.txt exits $st, not 1: $(cat "$tmp/replay")"
done
[ "$n" -ge 2 ] || fail "expected several kept states, found $n"

# The check runs again: one that passes makes the replay say so, exit 0.
sed -i 's/^check .*/check true/' "$tmp/out/run.info"
st=0
"$cc" replay "$kept" >"$tmp/replay" 2>&1 || st=$?
[ "$st" = 0 ] && grep -q "the check passes now" "$tmp/replay" || fail "a passing check: exit $st: $(cat "$tmp/replay")"

# Refusals: --keep into a folder that exists, a state without the run's files, --keep on a case.
st=0
"$cc" replay "$kept" --keep "$tmp/again-1" >"$tmp/replay" 2>&1 || st=$?
[ "$st" = 2 ] && grep -q "exists" "$tmp/replay" || fail "--keep into an existing folder: exit $st: $(cat "$tmp/replay")"
rm "$tmp/out/run.trace"
st=0
"$cc" replay "$kept" >"$tmp/replay" 2>&1 || st=$?
[ "$st" = 2 ] && grep -q "run.trace" "$tmp/replay" || fail "no trace: exit $st: $(cat "$tmp/replay")"
st=0
"$cc" replay corpus/workloads/edges --keep "$tmp/x" >"$tmp/replay" 2>&1 || st=$?
[ "$st" = 2 ] || fail "--keep on a case: exit $st: $(cat "$tmp/replay")"
echo "e2e_run_replay: ok ($n kept states replayed)"
