# Makefile: the project's one entry point: make, make run, make check, make bench,
# make install PREFIX=..., make clean. Each folder adds its rules through its own .mk file.
#
# Every object is built in three variants, each in its own tree under build/:
#   build/rel   release: what `make` and `make install` ship (-O2, no fault points)
#   build/tst   tests: libfiu fault points compiled in (-DFIU_ENABLE)
#   build/asan  tests again, under AddressSanitizer + UndefinedBehaviorSanitizer

BUILD   ?= build
PREFIX  ?= /usr/local
SHELL   := /bin/bash

COMMON_CFLAGS := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Werror \
                 -Wshadow -Wstrict-prototypes -g -MMD -MP -Ipager
REL_CFLAGS    := $(COMMON_CFLAGS) -O2 -fPIC -fvisibility=hidden
TST_CFLAGS    := $(COMMON_CFLAGS) -O1 -fPIC -DFIU_ENABLE
ASAN_FLAGS    := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_CFLAGS   := $(TST_CFLAGS) $(ASAN_FLAGS)
EXTRA_CFLAGS  ?=

# CRC-32 through Intel ISA-L where the compiler finds it (ci/setup installs libisal-dev),
# else through zlib (pager/crc32.c). Recursive, so that it is asked when a recipe runs:
# after ci/setup, which a fresh machine needs first.
ISAL_CFLAGS = $(shell printf '\043include <isa-l/crc.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 && echo -DMP_HAVE_ISAL)
MP_LIBS     = $(if $(ISAL_CFLAGS),-lisal) -lz

# Filled in by the .mk files below.
LIBS_REL    :=   # what `make` builds
CHECK_BINS  :=   # test programs `make check` runs (each exits non-zero on failure)
CHECK_SCRIPTS := # end-to-end test scripts `make check` runs after them
CHECK_ALONE :=   # tests of either kind that need the machine to themselves (ci/run-tests)
BENCH_BINS  :=   # benchmark programs `make bench` runs
CLEAN_EXTRA :=
INSTALL_TARGETS := # further install steps, one target each

.PHONY: all setup run check bench install clean coverage
# Keep the objects of test programs: they are intermediates of a pattern chain.
.SECONDARY:
all: setup libs

# Build on every core unless told otherwise (make -jN, -j1).
ifeq ($(filter -j% --jobs%,$(MAKEFLAGS)),)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 1)
endif

# ci/setup installs missing Debian packages; it is quick when nothing is missing.
setup:
	@ci/setup

$(BUILD)/rel/%.o: %.c | setup
	@mkdir -p $(@D)
	$(CC) $(REL_CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

$(BUILD)/tst/%.o: %.c | setup
	@mkdir -p $(@D)
	$(CC) $(TST_CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

$(BUILD)/asan/%.o: %.c | setup
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

include pager/pager.mk
-include faults/faults.mk
-include harness/harness.mk
-include fuzz/fuzz.mk

libs: $(LIBS_REL)

# The whole tree builds with clang too (-Werror): a check of its own.
CHECK_SCRIPTS += ci/clang-build.sh
# The test runner itself, on stand-in tests (side by side, CHECK_ALONE, failures).
CHECK_SCRIPTS += ci/tests/e2e_run_tests.sh
# ClusterFuzzLite's build of the fuzz targets (.clusterfuzzlite/), as its CI service runs it.
CHECK_SCRIPTS += ci/clusterfuzzlite/check.sh

run: all $(RUN_DEPS)
	$(RUN_CMD)

# The test runner prints one line per program and a closing "N passed, N failed". It runs
# them side by side (CHECK_JOBS, default the cores), CHECK_ALONE's one at a time; the make
# that runs it is no jobserver for the makes its tests start (MAKEFLAGS cleared).
check: all $(CHECK_BINS) $(CHECK_SCRIPTS)
	@MAKEFLAGS= CHECK_ALONE="$(strip $(CHECK_ALONE))" ci/run-tests $(CHECK_BINS) $(CHECK_SCRIPTS)

bench: all $(BENCH_BINS)
	@for b in $(BENCH_BINS); do $$b || exit 1; done

# An llvm-cov report of the pager from its tests and the fuzz corpora (ci/coverage.sh).
coverage: setup
	@ci/coverage.sh

install: all $(INSTALL_TARGETS)
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 pager/mappedpages.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/lib/libmappedpages.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/lib/libmappedpages.so $(DESTDIR)$(PREFIX)/lib/libmappedpages.so.$(MP_VERSION)
	ln -sf libmappedpages.so.$(MP_VERSION) $(DESTDIR)$(PREFIX)/lib/libmappedpages.so.0
	ln -sf libmappedpages.so.0 $(DESTDIR)$(PREFIX)/lib/libmappedpages.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(MP_VERSION)|g' -e 's|@LIBS_PRIVATE@|$(MP_LIBS)|g' pager/mappedpages.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/mappedpages.pc

clean:
	rm -rf $(BUILD) $(CLEAN_EXTRA)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
