#!/usr/bin/env bash
# fuzz/make_seeds.sh: regenerates the seed corpora corpus/fuzz_image/ (valid, torn and reference
# images) and corpus/fuzz_ops/ (binary cases covering every operation) with the project's tools.
# Run from the project root after `make`; the result is checked in, so CI does not run this.
set -euo pipefail
cc=build/bin/crashcheck
shim=$PWD/build/lib/libpowercut.so
# `make_seeds.sh format3-ops` writes the 0.3 operation seeds alone (corpus/fuzz_ops/format3-*),
# leaving every other seed as it is.
[ -x "$cc" ] && [ -f "$shim" ] || { echo "make_seeds: run make first" >&2; exit 2; }
only=${1:-}
[ -z "$only" ] || [ "$only" = format3-ops ] || { echo "usage: fuzz/make_seeds.sh [format3-ops]" >&2; exit 2; }
work=$(mktemp -d /dev/shm/make_seeds.XXXXXX)
trap 'rm -rf "$work"' EXIT
img=corpus/fuzz_image ops=corpus/fuzz_ops
mkdir -p "$img" "$ops"

# Each image seed is a mode byte (0: take the bytes as they are; 1: recompute the checksums,
# which a valid image does not need, but the mutations of it do) and the file image.
seed_image() { # NAME MODE FILE
  { printf "\\x$(printf %02x "$2")"; cat "$3"; } >"$img/$1"
}

# A small workload touching every structure: regular pages (some synced), protected pages
# (committed, aborted, freed), a bulk allocation and free, a reopen.
case_text() { # PAGE_SIZE SECTOR CUT-LINE
  cat <<CASE
crashcheck-case 1
page-size $1
sector $2
$3
alloc
alloc-bulk 3
write-sync 0 3
palloc
pwrite 0 9
palloc
pwrite 1 4
pabort 0 5
free 1
free-bulk 0 1
write 0 7
sync
reopen
pfree 1
alloc
CASE
}

# 0.3 operation seeds (the case's "format 3", header byte 1 bit 1): the workload above at 1 and
# 4 KiB pages, and at 16 KiB without its bulk allocation and second protected page (a 0.3 file
# of 16 KiB pages starts at 96 KiB, and fuzz_ops skips files past 256 KiB: 19 steps); cut
# early, in a garbage sector of a metadata write (which a 0.3 file must survive: fuzz_ops checks
# it), late with every dirty sector written back, and in a garbage sector of a later metadata
# write; at 1 KiB also in a garbage sector of write-sync's data (step 10: fuzz_ops skips it, as
# data lost), at 4 KiB also sparse with 4 KiB sectors, and in a garbage sector of the create's
# first msync (step 2: its root, before any superblock says the file is 0.3).
format3_ops() {
  local ps cut late
  rm -f "$ops"/format3-*
  for ps in 1024 4096 16384; do
    late="21 27"; [ $ps = 16384 ] && late="17 19"
    for cut in "none" "9 tear prefix:1 writeback none seed 0" "12 tear garbage:1 writeback none seed 0" \
               "${late% *} tear all writeback all seed 0" "${late#* } tear garbage:2 writeback random seed 5"; do
      case_text $ps 512 "cut $cut" | sed '/^sector/a format 3' >"$work/f3.txt"
      [ $ps = 16384 ] && sed -i '/^alloc-bulk 3$/d; /^pwrite 0 9$/{n;d}; /^pwrite 1 4$/d' "$work/f3.txt"
      "$cc" encode "$work/f3.txt" -o "$ops/format3-$ps-${cut%% *}"
    done
  done
  case_text 1024 512 "cut 10 tear garbage:1 writeback none seed 0" | sed '/^sector/a format 3' >"$work/f3.txt"
  "$cc" encode "$work/f3.txt" -o "$ops/format3-1024-10-data-garbage"
  case_text 4096 4096 "cut 12 tear suffix:1 writeback none seed 0" | sed '/^sector/a format 3\nsparse' >"$work/f3.txt"
  "$cc" encode "$work/f3.txt" -o "$ops/format3-sparse-4096-12"
  case_text 4096 512 "cut 2 tear garbage:1 writeback none seed 0" | sed '/^sector/a format 3' >"$work/f3.txt"
  "$cc" encode "$work/f3.txt" -o "$ops/format3-4096-create-garbage"
}
if [ "$only" = format3-ops ]; then
  format3_ops
  du -sh "$ops"
  exit 0
fi
rm -f "$img"/* "$ops"/*

for ps in 1024 2048 4096 8192; do
  case_text $ps 512 "cut none" >"$work/c.txt"
  # At 4 and 8 KiB, regular pages only (a file of few pages): the reference's files in
  # corpus/interop cover protected pages at 4 KiB.
  [ $ps -ge 4096 ] && sed -i '/^alloc-bulk 3$/d; /^palloc$/,$d' "$work/c.txt"
  "$cc" __run "$work/c.txt" "$work/pages" >/dev/null
  seed_image "valid-$ps" 0 "$work/pages"
  # Torn images: power cut in a few steps of the same workload, sectors torn.
  for cut in 6:prefix:1 11:suffix:1 15:random:3 19:garbage:1 24:prefix:2:all 30:none:random:5; do
    # Larger pages make larger files: a couple of torn ones at 2 KiB, none beyond (the corpus
    # stays small; the fuzzer's mutations of the 1 KiB ones reach the same code).
    [ $ps -ge 4096 ] && continue
    [ $ps = 2048 ] && [ "${cut%%:*}" != 11 ] && [ "${cut%%:*}" != 24 ] && continue
    rm -f "$work/pages.crash"
    LD_PRELOAD=$shim POWERCUT_FILE="$work/pages" POWERCUT_CUT=$cut "$cc" __run "$work/c.txt" "$work/pages" \
      >/dev/null 2>&1 || true
    [ -f "$work/pages.crash" ] && seed_image "torn-$ps-${cut//:/-}" 0 "$work/pages.crash"
  done
done
# 0.3 files (pager/FORMAT.md section 3): the same workload created with MP_FORMAT_3 (the case's
# "format 3"), valid at 1 and 4 KiB pages, and cut at 1 KiB with a garbage sector and a tear.
for ps in 1024 4096; do
  case_text $ps 512 "cut none" | sed '/^sector/a format 3' >"$work/c3.txt"
  "$cc" __run "$work/c3.txt" "$work/pages3" >/dev/null
  seed_image "valid-f3-$ps" 0 "$work/pages3"
  [ $ps = 1024 ] || continue
  for cut in 12:garbage:1 17:prefix:1; do
    rm -f "$work/pages3.crash"
    LD_PRELOAD=$shim POWERCUT_FILE="$work/pages3" POWERCUT_CUT=$cut "$cc" __run "$work/c3.txt" "$work/pages3" \
      >/dev/null 2>&1 || true
    [ -f "$work/pages3.crash" ] && seed_image "torn-f3-$ps-${cut//:/-}" 0 "$work/pages3.crash"
  done
done
# Mode 1 on a valid image: the checksum fixer's own path.
cp "$img/valid-1024" "$img/valid-1024-fixcrc" && printf '\x01' | dd of="$img/valid-1024-fixcrc" bs=1 count=1 conv=notrunc status=none
# Files written by the reference implementation (corpus/interop).
for f in corpus/interop/*.img.gz; do
  zcat "$f" >"$work/ref"
  seed_image "interop-$(basename "$f" .img.gz)" 0 "$work/ref"
done

# Operation seeds: one case per operation kind (a short prelude so it has something to act
# on), each cut inside it; then the workload above at each page size with a few cuts.
n=0
for op in "alloc" "free 0" "alloc-bulk 5" "free-bulk 0 2" "write 0 1" "write-sync 0 2" "sync" "palloc" \
          "pfree 0" "pwrite 0 3" "pabort 0 4" "reopen"; do
  for cut in "14 tear all writeback none seed 0" "16 tear prefix:1 writeback none seed 0" \
             "18 tear random writeback random seed 3" "20 tear suffix:1 writeback all seed 1"; do
    { echo "crashcheck-case 1"; echo "page-size 1024"; echo "sector 512"; echo "cut $cut"
      echo alloc; echo alloc; echo palloc; echo "$op"; echo "$op"; } >"$work/op.txt"
    n=$((n + 1))
    "$cc" encode "$work/op.txt" -o "$ops/op-$(echo "$op" | cut -d' ' -f1)-$n"
  done
done
for ps in 1024 2048 4096 8192; do
  for cut in "cut none" "cut 9 tear prefix:1 writeback none seed 0" "cut 21 tear all writeback all seed 0" \
             "cut 33 tear suffix:2 writeback random seed 7"; do
    n=$((n + 1))
    sector=512; [ $ps = 4096 ] && sector=4096   # one workload with atomic 4 KiB sectors
    case_text $ps $sector "$cut" >"$work/w.txt"
    "$cc" encode "$work/w.txt" -o "$ops/workload-$ps-$n"
  done
done
"$cc" generate --ops 60 --seed 1 -o "$work/g.txt"
sed -i 's/^cut none/cut 40 tear random writeback none seed 2/' "$work/g.txt"
"$cc" encode "$work/g.txt" -o "$ops/generated-60"
format3_ops
du -sh "$img" "$ops"
