#!/usr/bin/env bash
# e2e_run_names.sh: `crashcheck run` lays each crash state out as a tree of names: a file
# renamed over another is under the name durable at the cut (the old file until the
# directory's fsync lands the rename), a removed file is gone only once its removal is
# durable, and two files of one base name in two subfolders each keep their own content.
# The program is faults/tests/pc_work (its name operations: @ create and move to, % rename,
# # unlink, / fsync a directory; see its top comment).
set -euo pipefail
build=${BUILD:-build}
cc=$build/bin/crashcheck
work=$PWD/$build/tst/faults/tests/pc_work
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source harness/tests/run_json.sh
[ -x "$work" ] || fail "$work is not built"

# write f.tmp, fsync it, rename it over f, fsync the directory: f is old or new, whole (f.tmp
# may be left over: writeback may have written its name before the rename); at exit (every
# step durable) f is the new one and f.tmp is gone
replace='f="$(cat f 2>/dev/null || echo MISSING)"; [ "$CRASHCHECK_STEP" != 0 ] || [ ! -e f.tmp ] || exit 1
  case "$CRASHCHECK_STEP:$f" in 0:nnn|[1-9]*:old|[1-9]*:nnn) ;; *) echo "f holds \"$f\""; exit 1;; esac'
json=$(run 0 --files 'f*' --setup 'printf old > f' --check "$replace" -- "$work" f @:f.tmp w:0:3:110 f %:f j)
[ "$(field steps "$json")" = 4 ] || fail "pwrite, fsync, rename, fsync-dir: 4 steps: $json"
[ "$(field distinct_states "$json")" -ge 4 ] || fail "old and new f, with and without f.tmp: $json"
json=$(run 1 --files 'f*' --setup 'printf old > f' --check '[ ! -e f.tmp ]' -- "$work" f @:f.tmp w:0:3:110 f %:f j)
grep -q '"crash": "tear none writeback all' <<<"$json" || fail "f.tmp written back before the rename: $json"
# without the fsync of f.tmp the rename can land before the data: f empty
json=$(run 1 --files 'f*' --setup 'printf old > f' --check "$replace" -- "$work" f @:f.tmp w:0:3:110 %:f j)
grep -q 'f holds \\"\\"' <<<"$json" || fail "the rename landing before the data is not caught: $json"

# an unlink is durable with the directory's fsync: until then f is there, old
gone='if [ "$CRASHCHECK_STEP" = 0 ]; then [ ! -e f ]; else [ "$(cat f)" = old ] || [ ! -e f ]; fi'
json=$(run 0 --files 'f*' --setup 'printf old > f' --check "$gone" -- "$work" f '#:f:u' j)
[ "$(field distinct_states "$json")" = 2 ] || fail "f there, then gone: $json"
json=$(run 1 --files 'f*' --setup 'printf old > f' --check '[ -e f ]' -- "$work" f '#:f:u' j)
grep -q '"crash": "tear none writeback all' <<<"$json" || fail "the unlink written back early: $json"
there='case "$CRASHCHECK_STEP:$CRASHCHECK_CRASH" in 1:*"writeback none"*|2:"tear none writeback none"*) [ -e f ];; esac'
json=$(run 0 --files 'f*' --setup 'printf old > f' --check "$there" -- "$work" f '#:f:u' j)

# two files named f in two subfolders: each under its own path (empty or zeros where its name
# or size landed before its data)
two='for d in a b; do [ ! -e $d/f ] || [ -z "$(tr -d "\\0" <$d/f)" ] || [ "$(cat $d/f)" = "$(cat expect.$d)" ] ||
    { echo "$d/f: $(cat $d/f)"; exit 1; }; done
  [ "$CRASHCHECK_STEP" != 0 ] || { [ -e a/f ] && [ -e b/f ]; }'
json=$(run 0 --files '*/f' --setup 'mkdir a b; printf aaaa > expect.a; printf bbbb > expect.b' --check "$two" \
  -- "$work" a/f w:0:4:97 f j @:../b/f w:0:4:98 f /:../b)
[ "$(field files "$json")" = 2 ] || fail "a/f and b/f are two files: $json"

# a directory made in the run is a name too: a file fsynced in it, with the directory's own
# fsync, is lost until the fsync of its parent lands the directory, so a program that
# acknowledges before that is caught (a note on POWERCUT_MARK_FD, fd 9 here); rmdir likewise
made='! grep -q acked "$CRASHCHECK_NOTES" || [ "$(cat d/g 2>/dev/null)" = nnn ] || { echo "d/g lost"; exit 1; }'
json=$(POWERCUT_MARK_FD=9 run 1 --files 'd/*' --check "$made" -- \
  sh -c "exec \"$work\" x '(:d' '@:d/g' w:0:3:110 f /:d K:note_acked 9>/dev/null")
grep -q 'd/g lost' <<<"$json" || fail "a new directory never made durable is not caught: $json"
json=$(POWERCUT_MARK_FD=9 run 0 --files 'd/*' --check "$made" -- \
  sh -c "exec \"$work\" x '(:d' '@:d/g' w:0:3:110 f /:d /:. K:note_acked 9>/dev/null")
[ "$(field steps "$json")" = 5 ] || fail "mkdir (it claims the run), pwrite, fsync, fsync d, fsync .: 5 steps: $json"
# the same made by a script: `mkdir d` is a command of its own, which owns the run for its
# one call and hands it on (the baton), so the directory is no more durable than the program's
json=$(POWERCUT_MARK_FD=9 run 1 --files 'd/*' --check "$made" -- \
  sh -c "mkdir d && exec \"$work\" d/g w:0:3:110 f /:. K:note_acked 9>/dev/null")
grep -q 'd/g lost' <<<"$json" || fail "a directory made by a script's mkdir is taken as durable: $json"
json=$(POWERCUT_MARK_FD=9 run 0 --files 'd/*' --check "$made" -- \
  sh -c "mkdir d && exec \"$work\" d/g w:0:3:110 f /:. /:.. K:note_acked 9>/dev/null")
[ "$(field steps "$json")" = 5 ] || fail "mkdir, pwrite, fsync, fsync d, fsync .: 5 steps: $json"
removed='if [ "$CRASHCHECK_STEP" = 0 ]; then [ ! -e e ]; else [ -d e ] || [ ! -e e ]; fi'
json=$(run 0 --files 'e*' --setup 'mkdir e' --check "$removed" -- "$work" e.f '):e' /:.)
[ "$(field distinct_states "$json")" -ge 2 ] || fail "e there, then gone: $json"
json=$(run 1 --files 'e*' --setup 'mkdir e' --check '[ -d e ]' -- "$work" e.f '):e' /:.)

# a symbolic link is laid out as a link; made and acknowledged before its directory's fsync,
# a cut can lose it (caught); with the fsync first, clean
linked='! grep -q acked "$CRASHCHECK_NOTES" || [ "$(readlink cur)" = data ] || { echo "cur lost"; exit 1; }
  [ ! -e cur ] || [ -L cur ] || { echo "cur is not a link"; exit 1; }'
json=$(POWERCUT_MARK_FD=9 run 1 --files 'data' --files 'cur' --check "$linked" -- \
  sh -c "exec \"$work\" data w:0:3:110 f j 7:data:cur K:note_acked 9>/dev/null")
grep -q 'cur lost' <<<"$json" || fail "a link acknowledged before its directory's fsync is not caught: $json"
json=$(POWERCUT_MARK_FD=9 run 0 --files 'data' --files 'cur' --check "$linked" -- \
  sh -c "exec \"$work\" data w:0:3:110 f j 7:data:cur j K:note_acked 9>/dev/null")

echo "e2e_run_names: ok"
