#!/usr/bin/env bash
# e2e_install.sh: `make install` into a scratch prefix, then build the README's example
# against it with pkg-config, statically and dynamically, and run both; and against the
# uninstalled build/lib.
set -euo pipefail
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s install PREFIX="$tmp/prefix" >/dev/null
for f in include/mappedpages.h lib/libmappedpages.a lib/libmappedpages.so lib/libmappedpages.so.0 share/crashcheck/workloads/default \
         lib/pkgconfig/mappedpages.pc bin/crashcheck lib/libpowercut.so include/powercut.h; do
  [ -e "$tmp/prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
# The first C block of the README is the example.
awk '/^```c$/{on=1; next} /^```$/{if(on) exit} on' "$root/README.md" > "$tmp/app.c"
grep -q mp_protected_commit "$tmp/app.c"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cc -std=c11 -Wall -Werror -o "$tmp/app-shared" "$tmp/app.c" $(pkg-config --cflags --libs mappedpages)
# Statically: the archive, and the libraries pkg-config says it needs (ISA-L's CRC and zlib).
private=$(pkg-config --static --libs-only-l mappedpages | sed 's/-lmappedpages//')
cc -std=c11 -Wall -Werror -o "$tmp/app-static" "$tmp/app.c" $(pkg-config --cflags mappedpages) \
   "$tmp/prefix/lib/libmappedpages.a" $private
# Uninstalled too: linked against build/lib, it starts (the SONAME's link is there).
cc -std=c11 -Wall -Werror -I"$root/pager" -o "$tmp/app-build" "$tmp/app.c" -L"$root/${BUILD:-build}/lib" -lmappedpages
cd "$tmp"
mkdir build-run && (cd build-run && LD_LIBRARY_PATH="$root/${BUILD:-build}/lib" ../app-build && [ -s data.pages ]) ||
  { echo "the example linked against ${BUILD:-build}/lib does not run"; exit 1; }
LD_LIBRARY_PATH="$tmp/prefix/lib" ./app-shared
[ -s data.pages ] || { echo "example wrote no file"; exit 1; }
rm data.pages
./app-static
# Opening the same file again finds both pages it wrote.
./app-static
# The installed crashcheck finds the installed shim and explores a small case.
printf 'crashcheck-case 1\npage-size 1024\nalloc\npalloc\npwrite 0 1\nfree 0\n' > small.case
"$tmp/prefix/bin/crashcheck" explore small.case --quiet --out "$tmp/out" | grep -q "violations       0"
# ... and, from a folder outside the source tree, the installed workload suite: its default
# workload (explore with no case), and a case that starts from an installed reference file.
mkdir -p elsewhere && cd elsewhere
"$tmp/prefix/bin/crashcheck" explore --again off --quiet --out "$tmp/out" | grep -q "explored 240 operations" ||
  { echo "the installed crashcheck does not find the installed default workload"; exit 1; }
"$tmp/prefix/bin/crashcheck" explore "$tmp/prefix/share/crashcheck/workloads/adopt-allocs" --again off --quiet \
  --out "$tmp/out" | grep -q "violations       0" || { echo "an installed case cannot find its reference file"; exit 1; }
cd ..
echo "install, pkg-config and the README example work"
