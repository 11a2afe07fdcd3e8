#!/usr/bin/env bash
# e2e_run_tests.sh: ci/run-tests, the runner make check uses, on stand-in tests: with
# CHECK_JOBS=2 two tests run at the same time, a CHECK_ALONE test runs after them with none
# beside it, a failing one is reported with its exit status and log and fails the run; with
# CHECK_JOBS=1 they run one after another in the given order; a bad CHECK_JOBS is refused.
set -euo pipefail
runner=$PWD/ci/run-tests
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Each stand-in records when it started and ended; the alone one also whether another was
# running as it started. b runs longer than a: in a shared slot c would start beside it.
for t in a:1 b:2; do
  printf '#!/bin/bash\necho $(date +%%s%%N) >%s/%s.start\nsleep %s\necho $(date +%%s%%N) >%s/%s.end\n' \
    "$tmp" "${t%:*}" "${t#*:}" "$tmp" "${t%:*}" >"$tmp/${t%:*}.sh"
done
cat >"$tmp/c.sh" <<ALONE
#!/bin/bash
for t in a b; do [ -e $tmp/\$t.start ] && [ ! -e $tmp/\$t.end ] && touch $tmp/overlap; done
echo \$(date +%s%N) >$tmp/c.start
ALONE
printf '#!/bin/bash\necho something went wrong\nexit 3\n' >"$tmp/f.sh"
tests=("$tmp/a.sh" "$tmp/b.sh" "$tmp/c.sh" "$tmp/f.sh")

run() { # JOBS: runs the four, output in $tmp/out, status in $tmp/rc
  rm -f "$tmp"/*.start "$tmp"/*.end "$tmp/overlap"
  set +e
  (cd "$tmp" && CHECK_JOBS=$1 CHECK_ALONE="$tmp/c.sh" "$runner" "${tests[@]}") >"$tmp/out" 2>&1
  echo $? >"$tmp/rc"
  set -e
}

run 2
[ "$(cat "$tmp/rc")" = 1 ] || fail "a failing test: the runner exits $(cat "$tmp/rc"), not 1: $(cat "$tmp/out")"
grep -q "^FAIL  $tmp/f.sh  (exit 3" "$tmp/out" && grep -q "| something went wrong" "$tmp/out" ||
  fail "the failing test's line or log is missing: $(cat "$tmp/out")"
grep -q "^3 passed, 1 failed$" "$tmp/out" || fail "closing line: $(cat "$tmp/out")"
[ "$(cat "$tmp/a.start")" -lt "$(cat "$tmp/b.end")" ] && [ "$(cat "$tmp/b.start")" -lt "$(cat "$tmp/a.end")" ] ||
  fail "CHECK_JOBS=2: the two tests did not run at the same time"
[ ! -e "$tmp/overlap" ] && [ "$(cat "$tmp/c.start")" -gt "$(cat "$tmp/a.end")" ] && [ "$(cat "$tmp/c.start")" -gt "$(cat "$tmp/b.end")" ] ||
  fail "the CHECK_ALONE test ran beside another"

run 1
[ "$(cat "$tmp/b.start")" -gt "$(cat "$tmp/a.end")" ] || fail "CHECK_JOBS=1: the tests ran at the same time"
[ "$(grep -oE '^(PASS|FAIL)  [^ ]*' "$tmp/out" | sed 's|.*/||' | tr '\n' ' ')" = "a.sh b.sh c.sh f.sh " ] ||
  fail "CHECK_JOBS=1: not in the given order: $(cat "$tmp/out")"

set +e
(cd "$tmp" && CHECK_JOBS=x "$runner" "$tmp/a.sh") >"$tmp/out" 2>&1
st=$?
set -e
[ "$st" = 2 ] && grep -q "CHECK_JOBS must be a positive number" "$tmp/out" || fail "CHECK_JOBS=x: exit $st: $(cat "$tmp/out")"
echo "run-tests: ok (side by side, alone after, failures reported, in order with one job)"
