#!/usr/bin/env bash
# e2e_replace.sh: `crashcheck run` on the classic atomic replace, harness/examples/replace.c
# (write FILE.tmp, fsync it, rename it over FILE, fsync the directory, acknowledge), judged by
# harness/examples/replace-check.sh (FILE whole, old or new, and new once acknowledged), under
# --profile posix: the safe program is clean; without the fsync of FILE.tmp (--unsafe) the
# rename reaches the disk before the data and the check says FILE holds neither version;
# acknowledging before the directory's fsync (--no-dir-fsync) is caught where the rename did
# not land; the program's stdout judges as its notes do. Under --profile ext4 (data=ordered
# with auto_da_alloc: the rename over `data` writes data.tmp's data before it commits) the
# unsafe program is clean, and acknowledging before anything committed the rename is still
# caught: nothing after the rename commits the journal, so the durable state at exit has v1.
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
app=$PWD/$build/examples/replace
check=$PWD/harness/examples/replace-check.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh
setup="$app data v1" # version 1 in place, durable, before the run

json=$(run 0 --profile posix --files 'data*' --setup "$setup" --check "$check data v1 v2" -- "$app" data v2)
[ "$(field violations "$json")" = 0 ] || fail "the safe replace has violations: $json"
[ "$(field steps "$json")" = 4 ] || fail "write, fsync, rename, fsync-dir: 4 steps: $json"
[ "$(field distinct_states "$json")" -ge 3 ] || fail "too few states checked: $json"

json=$(run 1 --profile posix --files 'data*' --setup "$setup" --check "$check data v1 v2" -- "$app" data v2 --unsafe)
grep -q 'data holds neither v1 nor v2 whole (0 bytes)' <<<"$json" || fail "the unsafe replace: not described: $json"
grep -q 'replace acknowledged v2, but data does not hold it (0 bytes)' <<<"$json" ||
  fail "the unsafe replace: at exit the rename is durable, the data never was: $json"
kept=$(grep -o '"kept": "[^"]*"' <<<"$json" | head -1 | cut -d'"' -f4)
[ -f "$kept/data" ] && [ -f "$kept.txt" ] || fail "the first failing state is not kept ($kept)"

json=$(run 1 --profile posix --files 'data*' --setup "$setup" --check "$check data v1 v2" -- "$app" data v2 --no-dir-fsync)
grep -q 'replace acknowledged v2, but data does not hold it' <<<"$json" || fail "acknowledged before the directory's fsync: $json"
grep -q '"step": 0, "call": "exit"' <<<"$json" || fail "at exit the rename is still not durable: $json"

json=$(run 0 --profile posix --files 'data*' --setup "$setup" --check "$check data v1 v2 stdout" -- "$app" data v2)
[ "$(field violations "$json")" = 0 ] || fail "judged by stdout, the safe replace: $json"
json=$(run 1 --profile posix --files 'data*' --setup "$setup" --check "$check data v1 v2 stdout" -- "$app" data v2 --no-dir-fsync)
grep -q 'replace acknowledged v2' <<<"$json" || fail "judged by stdout, acknowledged too early: $json"

json=$(run 0 --profile ext4 --files 'data*' --setup "$setup" --check "$check data v1 v2" -- "$app" data v2)
[ "$(field violations "$json")" = 0 ] || fail "ext4: the safe replace has violations: $json"
[ "$(field steps "$json")" = 4 ] || fail "ext4: write, fsync, rename, fsync-dir: 4 steps: $json"
json=$(run 0 --profile ext4 --files 'data*' --setup "$setup" --check "$check data v1 v2" -- "$app" data v2 --unsafe)
[ "$(field violations "$json")" = 0 ] || fail "ext4: auto_da_alloc writes data.tmp before the rename commits: $json"
[ "$(field distinct_states "$json")" -ge 3 ] || fail "ext4: the unsafe replace, too few states checked: $json"
json=$(run 1 --profile ext4 --files 'data*' --setup "$setup" --check "$check data v1 v2" -- "$app" data v2 --no-dir-fsync)
grep -q 'replace acknowledged v2, but data does not hold it' <<<"$json" || fail "ext4: acknowledged before the rename committed: $json"
grep -q '"step": 0, "call": "exit"' <<<"$json" || fail "ext4: at exit the rename is still not committed: $json"

echo "e2e_replace: ok"
