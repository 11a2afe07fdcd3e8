# run_json.sh: sourced by the end-to-end tests of `crashcheck run` (and e2e_sparse): fail (to stderr, so that
# a failure inside $(...) is seen), field (a number of a JSON output), and run (one run's JSON,
# its exit status checked). The caller sets $cc (crashcheck) and $tmp (a scratch folder).
# shellcheck shell=bash
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { grep -o "\"$1\": [0-9]*" <<<"$2" | head -1 | grep -o '[0-9]*$'; }
run() { # expected-exit args...: the JSON of one run
  local want=$1 st=0
  shift
  "$cc" run --json --quiet --out "$tmp/out" "$@" >"$tmp/json" 2>"$tmp/err" || st=$?
  [ "$st" = "$want" ] || fail "crashcheck run $* exits $st, not $want: $(cat "$tmp/json" "$tmp/err")"
  cat "$tmp/json"
}
