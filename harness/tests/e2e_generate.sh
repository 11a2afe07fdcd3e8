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
# What is missing is named in the case's own format's rows: a 0.2 case can cover no v3- cell.
! grep -q 'missing at .*: v3-' "$tmp/out" || fail "a 0.2 case's missing cells name 0.3 rows: $(grep -m3 v3- "$tmp/out")"
# --format 3: the case says so, its growth counts 0.3's rows, and exploring it covers as many.
set +e
"$cc" generate --cover --format 3 --tries 10 --max-ops 80 --seed 2 -o "$tmp/grown3.case" >"$tmp/out3" 2>"$tmp/err3"
st=$?
set -e
[ "$st" = 0 ] || [ "$st" = 3 ] || fail "generate --cover --format 3 exit $st: $(cat "$tmp/out3" "$tmp/err3")"
head -1 "$tmp/out3"
grep -qx 'format 3' "$tmp/grown3.case" || fail "generate --format 3 wrote a case that does not say format 3"
said3=$(head -1 "$tmp/out3" | grep -o '[0-9]* of [0-9]* required' | cut -d' ' -f1)
json=$("$cc" explore "$tmp/grown3.case" --again 0 --quiet --json)
[ "$(field violations "$json")" = 0 ] || fail "the grown 0.3 case finds violations"
[ "$(field covered "$json")" = "$said3" ] ||
  fail "generate --format 3 said $said3 required cells covered; exploring its case covers $(field covered "$json")"
! grep 'missing at' "$tmp/out3" | grep -qv ': v3-' || fail "a 0.3 case's missing cells name 0.2 rows"
"$cc" generate --ops 30 --seed 5 --format 3 -o "$tmp/ops3.case" >/dev/null
grep -qx 'format 3' "$tmp/ops3.case" || fail "generate --ops --format 3 wrote a case that does not say format 3"
"$cc" explore "$tmp/ops3.case" --again off --quiet >/dev/null || fail "the generated 0.3 case does not explore clean"
set +e
"$cc" generate --ops 3 --format 4 -o "$tmp/bad.case" >/dev/null 2>"$tmp/bad.err"
st=$?
set -e
[ "$st" = 2 ] && grep -q -- "--format takes 2 or 3" "$tmp/bad.err" || fail "--format 4: exit $st, $(cat "$tmp/bad.err")"
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
