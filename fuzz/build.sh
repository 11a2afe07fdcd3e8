#!/usr/bin/env bash
# fuzz/build.sh: the OSS-Fuzz / ClusterFuzzLite build script: builds fuzz_image and fuzz_ops with
# $CC $CFLAGS, links them with $LIB_FUZZING_ENGINE into $OUT, with dictionaries and seed corpora.
# The builder image needs: libfiu-dev zlib1g-dev libxxhash-dev (apt-get; the harness inlines
# XXH3 from its header; page checksums use zlib here, not ISA-L). Run from anywhere; e.g. locally:
#   CC=clang CFLAGS="-fsanitize=address,fuzzer-no-link" LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
#     OUT=/tmp/out fuzz/build.sh
set -euo pipefail
SRC_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC_ROOT"
: "${CC:=clang}" "${CXX:=clang++}" "${CFLAGS:=}" "${OUT:?set OUT}" "${LIB_FUZZING_ENGINE:=-fsanitize=fuzzer}"
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$OUT" "$WORK/obj"
flags="-std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -g -Ipager -Iharness -Ifaults"

objs=()
compile() { # SOURCE -> object path appended to objs
  local o
  o=$WORK/obj/$(echo "$1" | tr / _).o
  $CC $CFLAGS $flags -c "$1" -o "$o"
  objs+=("$o")
}
pager=(pager/*.c)
# Every harness source but the CLI's main, and libpowercut's (the shim linked in).
harness=()
for s in harness/*.c; do [ "$s" = harness/crashcheck.c ] || harness+=("$s"); done
harness+=(faults/*.c) # every source of libpowercut: the list grows with it (fuzz.mk's PC_SRCS)

# libfiu is not in the runner images: ship it beside the targets, found through $ORIGIN/lib.
mkdir -p "$OUT/lib"
for l in /usr/lib/libfiu.so.0 /usr/lib/*/libfiu.so.0; do [ -e "$l" ] && cp -L "$l" "$OUT/lib/" && break; done
rpath='-Wl,-rpath,$ORIGIN/lib'

objs=(); for s in fuzz/fuzz_image.c "${pager[@]}"; do compile "$s"; done
$CXX $CFLAGS "${objs[@]}" $LIB_FUZZING_ENGINE -lz -o "$OUT/fuzz_image"
objs=(); for s in fuzz/fuzz_ops.c fuzz/memfile.c "${harness[@]}" "${pager[@]}"; do compile "$s"; done
# fuzz_ops follows the operation markers, counts the steps of the pager's file and holds it in
# memory: the calls it wraps are listed in fuzz/fuzz_ops.wrap (fuzz.mk reads it too).
wrap=(); for f in $(grep -v '^#' fuzz/fuzz_ops.wrap); do wrap+=("-Wl,--wrap=$f"); done
$CXX $CFLAGS "${objs[@]}" $LIB_FUZZING_ENGINE "${wrap[@]}" -lfiu -ldl -pthread -lz $rpath -o "$OUT/fuzz_ops"

for t in fuzz_image fuzz_ops; do
  cp "fuzz/$t.dict" "$OUT/$t.dict"
  rm -f "$OUT/${t}_seed_corpus.zip"
  (cd "corpus/$t" && zip -q -j "$OUT/${t}_seed_corpus.zip" ./*)
done
# fuzz_ops skips cases of more than 64 operations (fuzz_ops.c; afl_env.sh gives afl-fuzz the
# same bound): longer inputs would test nothing, so the engine is told not to make them.
printf '[libfuzzer]\nmax_len = %d\n' $((8 + 3 * 64 + 2)) >"$OUT/fuzz_ops.options"
echo "build.sh: $OUT/fuzz_image $OUT/fuzz_ops (+ .dict, .options, _seed_corpus.zip, lib/libfiu.so.0)"
