#!/usr/bin/env bash
# fuzz/sync.sh: `make fuzz-sync FROM=...`: brings the queues of the other machines of a campaign
# into this machine's fuzz/out/, where this machine's afl-fuzz instances import them.
#
# The protocol (AFL++'s own, for -M/-S instances sharing one output directory): every instance
# writes its finds to OUT/TARGET/NAME/queue/id:..., and each sync round an instance looks at
# every other directory OUT/TARGET/PEER/ that has a queue/, runs the entries it has not seen
# yet (it remembers the last id per peer in its own .synced/PEER) and keeps those that reach new
# coverage, named "id:...,sync:PEER,src:...". A -S instance (AFL++ 4) imports only from peers
# whose directory holds an is_main_node marker, which a -M instance keeps in its own directory
# while it runs (and removes when it stops); the -M instance imports from every peer. Across
# machines nothing is shared but files, so this script copies each peer's queue/ into
# OUT/TARGET/PEER/queue/ here, its fuzzer_stats as OUT/TARGET/PEER/.peer_stats (afl-fuzz skips
# dot files; the stats themselves stay the peer's), and lays the marker for a peer that runs
# as -M (its stats' command line says so: the marker itself may be gone between runs). With it,
# the secondaries of a machine without the -M node (FUZZ_MAIN=no) take the main node's queue,
# which holds the finds of every instance it has synced; without it they would import nothing
# from other machines, and one of them would elect itself main. Queue entries are never
# rewritten once written, so copying again adds the new ones (rsync sends only those). A sync
# may run while afl-fuzz reads the copy: rsync writes each file under a dot name (which afl-fuzz
# skips) and renames it when whole, in name order, which is id order; that order matters, as
# afl-fuzz remembers only the highest id it took from a peer and never looks below it again.
#
# The peers on FROM are its TARGET/NAME directories with a fuzzer_stats: the instances that run
# there, not the copies it holds of others (each machine names every other one). A directory
# here with a fuzzer_stats is an instance of this machine: never written, and a peer of the
# same name is an error (two machines under one FUZZ_NODE: each would skip the other's entries
# as its own). Run it on each machine, naming the others, while or between `make fuzz` runs:
# afl-fuzz picks the new entries up at its next sync round.
#
#   fuzz/sync.sh FROM...     FROM: another machine's fuzz/out, as rsync takes it (host:/path/fuzz/out,
#                            or a local path, relative to the checkout); FUZZ_OUT: this machine's (default fuzz/out)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
OUT=${FUZZ_OUT:-fuzz/out}
[ $# -gt 0 ] || { echo "usage: fuzz/sync.sh FROM... (another machine's fuzz/out: host:/path/fuzz/out, or a path)" >&2; exit 2; }
command -v rsync >/dev/null || { echo "fuzz-sync: rsync is missing (ci/setup installs it)" >&2; exit 2; }
mkdir -p "$OUT" || exit 2
here=$(realpath "$OUT")

# This machine's instances: every TARGET/NAME here with a fuzzer_stats.
declare -A ours=()
for s in "$OUT"/*/*/fuzzer_stats; do
  [ -f "$s" ] || continue
  d=${s%/fuzzer_stats}
  ours["$(basename "$(dirname "$d")")/$(basename "$d")"]=1
done

rc=0
for from in "$@"; do
  from=${from%/}
  if [ -d "$from" ] && [ "$(realpath "$from")" = "$here" ]; then
    echo "fuzz-sync: $from is this machine's own $OUT" >&2; rc=1; continue
  fi
  # FROM's TARGET/NAME/fuzzer_stats (rsync lists a remote directory too).
  if ! list=$(rsync -r --list-only --include='/*/' --include='/*/*/' --include='/*/*/fuzzer_stats' --exclude='*' "$from/" 2>&1); then
    echo "fuzz-sync: cannot list $from: $list" >&2; rc=1; continue
  fi
  mapfile -t peers < <(awk '$1 ~ /^-/ && $NF ~ /^[^\/]+\/[^\/]+\/fuzzer_stats$/ { sub(/\/fuzzer_stats$/, "", $NF); print $NF }' <<<"$list")
  if [ ${#peers[@]} -eq 0 ]; then
    echo "fuzz-sync: $from holds no TARGET/INSTANCE/fuzzer_stats (is it a fuzz/out?)" >&2; rc=1; continue
  fi
  copied=()
  for p in "${peers[@]}"; do
    if [ -n "${ours[$p]:-}" ]; then
      echo "fuzz-sync: $from has an instance $p, which runs here too: give each machine its own FUZZ_NODE" >&2
      rc=1; continue
    fi
    mkdir -p "$OUT/$p" || { rc=1; continue; }
    # (queue/.state/ is the owner's bookkeeping of its own entries: afl-fuzz's sync reads id:*.)
    if ! rsync -a --include=/queue/ --include='/queue/id:*' --exclude='*' "$from/$p/" "$OUT/$p/" ||
       ! rsync -a "$from/$p/fuzzer_stats" "$OUT/$p/.peer_stats"; then
      echo "fuzz-sync: copying $from/$p failed" >&2; rc=1; continue
    fi
    if sed -n 's/^command_line *: //p' "$OUT/$p/.peer_stats" | grep -q -- ' -M '; then
      touch "$OUT/$p/is_main_node"
    else
      rm -f "$OUT/$p/is_main_node"
    fi
    copied+=("$p")
  done
  echo "fuzz-sync: ${#copied[@]} queues from $from into $OUT${copied[*]:+ (${copied[*]})}"
done
exit $rc
