#!/usr/bin/env bash
# e2e_generate.sh: `crashcheck generate --cover` grows a case that covers what it says it
# covers. The growth explores each batch's operations alone (explore-from) and adds their cells
# to the case's; explored whole, the written case must cover exactly as many required cells, at
# every configuration. A pager bug shows as a violation in a batch: the case written ends with
# it, and generate exits 1.
set -euo pipefail
source harness/tests/mutant_tree.sh
build=${BUILD:-build}
cc=$build/bin/crashcheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
field() { grep -o "\"$1\": [0-9]*" <<<"$2" | grep -o '[0-9]*$'; }

set +e
"$cc" generate --cover --page-size 1024 --sector 512 --sector 4096 --tries 10 --max-ops 80 --seed 3 \
  -o "$tmp/grown.case" >"$tmp/out" 2>"$tmp/err"
st=$?
set -e
[ "$st" = 0 ] || [ "$st" = 3 ] || fail "generate --cover exit $st: $(cat "$tmp/out" "$tmp/err")"
head -1 "$tmp/out"
said=$(head -1 "$tmp/out" | grep -o '[0-9]* of [0-9]* required' | cut -d' ' -f1)
ops=$(grep -cv '^#\|^crashcheck-case\|^page-size\|^sector\|^cut' "$tmp/grown.case")
[ "$ops" -gt 0 ] || fail "the grown case has no operations"
total=0
for sector in 512 4096; do
  json=$("$cc" explore "$tmp/grown.case" --page-size 1024 --sector "$sector" --again 0 --quiet --json)
  [ "$(field violations "$json")" = 0 ] || fail "the grown case finds violations at 1024/$sector"
  total=$((total + $(field covered "$json")))
done
[ "$total" = "$said" ] || fail "generate said $said required cells covered; exploring its case covers $total"
# A mutant (built in a scratch copy, as ci/mutants/run does): the growth stops at its violation.
mutant=${GENERATE_MUTANT:-ci/mutants/01-no-meta-msync.patch}
build_mutant "$mutant" "$tmp/tree"
set +e
"$tmp/tree/build/bin/crashcheck" generate --cover --page-size 1024 --tries 10 -o "$tmp/found.case" >"$tmp/mout" 2>&1
st=$?
set -e
[ "$st" = 1 ] || fail "generate --cover on $mutant exits $st, not 1: $(cat "$tmp/mout")"
grep -q "violations: crashcheck explore" "$tmp/mout" || fail "no word of the violation: $(cat "$tmp/mout")"
set +e
"$tmp/tree/build/bin/crashcheck" explore "$tmp/found.case" --page-size 1024 --again off --quiet >/dev/null 2>&1
st=$?
set -e
[ "$st" = 1 ] || fail "the case generate wrote for $mutant does not show its violation (explore exit $st)"
echo "e2e_generate: ok (grown: $ops operations, $total required cells at 1024/512+4096)"
