#!/usr/bin/env bash
# e2e_demo.sh: the `make run` demonstration end to end: it must report a clean file,
# and its usage errors must exit with status 2.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$(build/bin/mp-demo "$tmp/demo.pages")
echo "$out"
grep -q "mp_check: 0 findings" <<<"$out"
grep -q 'protected page 0 holds "committed atomically"' <<<"$out"
set +e
build/bin/mp-demo >/dev/null 2>&1; rc=$?
set -e
[ $rc -eq 2 ] || { echo "usage error exited $rc, expected 2"; exit 1; }
