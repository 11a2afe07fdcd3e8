#!/usr/bin/env bash
# e2e_run_globs.sh: `crashcheck run --files` given twice tracks the files either glob matches
# (libpowercut's POWERCUT_FILE, ':' between patterns): one process writes and fsyncs a.dat and
# sub/b.log (and their folders). The check fails the states that hold something in b.log, so
# that the run keeps them: with both globs two files are tracked and kept states hold b.log,
# whole in some; with the first glob alone one file is, and no state (the check fails them
# all) holds b.log. '*' tracks both, and not the program's output kept beside the folder (nor
# /dev/null). A pattern holding ':' is refused.
set -euo pipefail
cc=${BUILD:-build}/bin/crashcheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh
command -v python3 >/dev/null || fail "python3 is needed (the program that writes the two files)"
cat >"$tmp/two.py" <<'PY'
import os
os.makedirs("sub", exist_ok=True)
for name in ("a.dat", "sub/b.log"):
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"x" * 1000)
    os.fsync(fd)
    os.close(fd)
    d = os.open(os.path.dirname(name) or ".", os.O_RDONLY)
    os.fsync(d)
    os.close(d)
PY
run() { # args...: the JSON of one run whose check fails every state (each kept, up to 20)
  local st=0
  rm -rf "$tmp/out"
  "$cc" run --json --quiet --out "$tmp/out" "$@" --check "$check" -- python3 "$tmp/two.py" >"$tmp/json" 2>"$tmp/err" ||
    st=$?
  [ "$st" = 1 ] || fail "crashcheck run $* exits $st, not 1: $(cat "$tmp/json" "$tmp/err")"
  cat "$tmp/json"
}
whole() { for f in "$tmp"/out/state-*/sub/b.log; do [ -f "$f" ] && [ "$(wc -c <"$f")" = 1000 ] && return 0; done; return 1; }
check='[ ! -s sub/b.log ]' # kept: the states where b.log holds something (sub is a new folder: in some)
json=$(run --files 'a.*' --files 'sub/*.log')
[ "$(field files "$json")" = 2 ] || fail "two globs: not two files tracked: $json"
[ "$(field steps "$json")" -ge 4 ] || fail "two globs: too few steps: $json"
whole || fail "two globs: no kept state holds sub/b.log whole"
check='exit 1'
json=$(run --files 'a.*')
[ "$(field files "$json")" = 1 ] || fail "one glob: not one file tracked: $json"
! ls "$tmp"/out/state-*/sub/b.log >/dev/null 2>&1 || fail "one glob: a state holds the untracked sub/b.log"
# '*' tracks the folder's files only: not the program's standard output and error, which
# crashcheck keeps beside the folder (a relative glob once matched their absolute paths)
check='exit 1'
json=$(run --files '*')
[ "$(field files "$json")" = 2 ] || fail "'*': not the two files tracked (a.dat, sub/b.log: fnmatch's '*' crosses '/'): $json"
st=0
"$cc" run --files 'a:b' --check true -- true >/dev/null 2>"$tmp/err" || st=$?
[ "$st" = 2 ] && grep -q "may not hold ':'" "$tmp/err" || fail "a pattern with ':' is not refused: exit $st"
echo "e2e_run_globs: ok"
