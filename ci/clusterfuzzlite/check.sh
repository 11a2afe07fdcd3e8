#!/usr/bin/env bash
# ci/clusterfuzzlite/check.sh: what of the ClusterFuzzLite integration can be checked without
# its CI service: the workflows and project.yaml parse as YAML; the build image installs every
# package fuzz/build.sh says it needs; and .clusterfuzzlite/build.sh, run as ClusterFuzzLite runs
# it ($SRC holding the tree, $OUT, clang, the libFuzzer engine), builds both targets, which then
# run over their seed corpora. (The Dockerfile itself needs docker and OSS-Fuzz's base image:
# not checked here.)
set -euo pipefail
root=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if python3 -c 'import yaml' 2>/dev/null; then
  for f in .clusterfuzzlite/project.yaml ci/clusterfuzzlite/*.yml ci/example-ci-workflow.yml; do
    python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f" || fail "$f does not parse as YAML"
  done
  grep -q '^language: c$' .clusterfuzzlite/project.yaml || fail "project.yaml: language is not c"
else
  echo "(no PyYAML here: the workflows' YAML is not parsed)"
fi
needs=$(sed -n 's/^# The builder image needs: \([a-z0-9 .-]*\).*/\1/p' fuzz/build.sh)
[ -n "$needs" ] || fail "fuzz/build.sh does not say which packages it needs"
for pkg in $needs; do
  grep -q "apt-get install.* $pkg" .clusterfuzzlite/Dockerfile || fail "the Dockerfile does not install $pkg"
done

mkdir -p "$tmp/src" "$tmp/out" "$tmp/work"
ln -s "$root" "$tmp/src/mappedpages"
(cd "$tmp/src/mappedpages" && SRC="$tmp/src" OUT="$tmp/out" WORK="$tmp/work" CC=clang CXX=clang++ \
  CFLAGS="-O1 -fsanitize=fuzzer-no-link" LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
  bash "$root/.clusterfuzzlite/build.sh") >"$tmp/build.log" 2>&1 || { tail -20 "$tmp/build.log"; fail "the build failed"; }
for t in fuzz_image fuzz_ops; do
  [ -x "$tmp/out/$t" ] && [ -f "$tmp/out/$t.dict" ] && [ -f "$tmp/out/${t}_seed_corpus.zip" ] ||
    fail "$t: the target, its dictionary or its seed corpus is missing from \$OUT"
  mkdir "$tmp/seeds-$t"
  (cd "$tmp/seeds-$t" && unzip -q "$tmp/out/${t}_seed_corpus.zip")
  "$tmp/out/$t" -runs=0 "$tmp/seeds-$t" >"$tmp/$t.log" 2>&1 || { tail -5 "$tmp/$t.log"; fail "$t fails on its seeds"; }
done
echo "clusterfuzzlite: ok (both targets built as ClusterFuzzLite builds them, and run over their seeds)"
