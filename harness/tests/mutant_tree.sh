# mutant_tree.sh: sourced by the end-to-end tests that need a pager bug of ci/mutants/, as
# ci/mutants/run builds them: `build_mutant PATCH DIR` copies the tree into DIR with the built
# objects (they keep their times, so only what the patch touches is rebuilt), applies PATCH and
# builds DIR/build/bin/crashcheck. A mutant that does not build fails the test, with its log.
# shellcheck shell=bash
build_mutant() {
  local patch=$1 dir=$2 root build=${BUILD:-build}
  root=$(pwd)
  mkdir -p "$dir/build"
  cp -rp Makefile pager faults harness ci corpus "$dir/"
  cp -rp "$build/rel" "$build/lib" "$build/bin" "$dir/build/"
  if ! (cd "$dir" && patch -s -p1 <"$root/$patch" && make -s BUILD=build build/bin/crashcheck) >"$dir.log" 2>&1; then
    cat "$dir.log"
    echo "FAIL: the mutant $patch does not build"
    exit 1
  fi
}
