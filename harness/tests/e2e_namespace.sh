#!/usr/bin/env bash
# e2e_namespace.sh: crashcheck records under the shim's namespace model
# (POWERCUT_NAMESPACE=posix: a created name is durable only after an fsync of its directory),
# so a pager whose mp_create skips that fsync is reported: every state after the create
# returned, with the data synced but the name not, has no file at all: R3, the create and
# every operation since lost. The pager is built without the fsync by the mutant
# ci/mutants/37-create-no-parent-dir-fsync.patch in a scratch copy of the tree (as
# ci/mutants/run does). The same case on the real pager: no violation, and the cut in the
# directory's fsync covered (create/name).
set -euo pipefail
source harness/tests/mutant_tree.sh
build=${BUILD:-build}
patch=ci/mutants/37-create-no-parent-dir-fsync.patch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
num() { grep -o "\"$1\": [0-9]*" <<<"$2" | grep -o '[0-9]*$'; }

cat > "$tmp/small.case" <<'CASE'
crashcheck-case 1
page-size 4096
alloc
write-sync 0 1
CASE

set +e
j=$("$build/bin/crashcheck" explore "$tmp/small.case" --quiet --json --again off)
st=$?
set -e
[ "$st" = 0 ] && [ "$(num violations "$j")" = 0 ] || fail "the real pager: exit $st: $j"
grep -o '"cells": \[[^]]*\]' <<<"$j" | grep -q '"create/name/anywhere"' || fail "no cut in the create's directory fsync was counted: $j"

dir="$tmp/mutant"
build_mutant "$patch" "$dir"
cc=$dir/build/bin/crashcheck

set +e
j=$($cc explore "$tmp/small.case" --quiet --json --again off --out "$tmp/out")
st=$?
set -e
[ "$st" = 1 ] || fail "the pager without the directory fsync: explore exited $st, not 1: $j"
grep -q '"invariant": "R3"' <<<"$j" || fail "no R3 violation: $j"
grep -q 'no file: its name was not durable' <<<"$j" || fail "the violation does not say the file is missing: $j"
# Every state of the create itself is right (no file is the state before it): the first
# violation is after mp_create returned.
grep -q '"op": "create"' <<<"$j" && fail "a state in the create was reported: $j"
repro=$(ls "$tmp/out"/R3-*.case | head -1)
set +e
$cc replay "$repro" >"$tmp/replay" 2>&1
st=$?
set -e
[ "$st" = 1 ] || { cat "$tmp/replay"; fail "replay of $repro exited $st, not 1"; }
grep -q "crash image: no file" "$tmp/replay" || { cat "$tmp/replay"; fail "replay does not tell the file is missing"; }
grep -q "R3 violated" "$tmp/replay" || { cat "$tmp/replay"; fail "replay does not report R3"; }
# The real pager replays the same case clean: its name was durable before the create returned.
"$build/bin/crashcheck" replay "$repro" >"$tmp/replay" 2>&1 || { cat "$tmp/replay"; fail "the real pager fails $repro"; }
echo "e2e_namespace: ok"
