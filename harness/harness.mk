# harness/harness.mk: builds crashcheck (explore, check, replay, minimize, show) from the
# harness sources, the power-cut model and trace reader of faults/, and libmappedpages.

CC_SRCS      := harness/case.c harness/workload.c harness/checker.c harness/image.c harness/explore.c \
                harness/coverage.c harness/coverage3.c harness/errors.c harness/generate.c \
                harness/run.c harness/hashset.c harness/jobs.c harness/forkserver.c \
                harness/contenthash.c harness/contenthash_avx2.c harness/json.c harness/merge.c
# XXH3's AVX2 copy (contenthash.c picks it at run time on CPUs that have AVX2).
ifeq ($(shell uname -m),x86_64)
$(BUILD)/%/harness/contenthash_avx2.o: EXTRA_CFLAGS += -mavx2
endif
CC_MAIN      := harness/crashcheck.c
CC_MODEL     := faults/model.c faults/trace.c faults/handover.c
CC_TESTS     := $(patsubst %.c,%,$(wildcard harness/tests/test_*.c))
CC_INCLUDES  := -Iharness -Ifaults

$(BUILD)/rel/harness/%.o $(BUILD)/tst/harness/%.o $(BUILD)/asan/harness/%.o: EXTRA_CFLAGS += $(CC_INCLUDES)

# crashcheck finds the shim at ../lib/libpowercut.so from its own directory.
$(BUILD)/bin/crashcheck: $(CC_MAIN:%.c=$(BUILD)/rel/%.o) $(CC_SRCS:%.c=$(BUILD)/rel/%.o) \
    $(CC_MODEL:%.c=$(BUILD)/rel/%.o) $(BUILD)/lib/libmappedpages.a | $(BUILD)/lib/libpowercut.so
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(MP_LIBS)

$(BUILD)/tst/harness/tests/%: $(BUILD)/tst/harness/tests/%.o $(CC_SRCS:%.c=$(BUILD)/tst/%.o) \
    $(CC_MODEL:%.c=$(BUILD)/tst/%.o) $(BUILD)/tst/libmappedpages.a
	$(CC) -o $@ $^ -lcmocka -lfiu $(MP_LIBS)
$(BUILD)/asan/harness/tests/%: $(BUILD)/asan/harness/tests/%.o $(CC_SRCS:%.c=$(BUILD)/asan/%.o) \
    $(CC_MODEL:%.c=$(BUILD)/asan/%.o) $(BUILD)/asan/libmappedpages.a
	$(CC) $(ASAN_FLAGS) -o $@ $^ -lcmocka -lfiu $(MP_LIBS)

# Programs `crashcheck run` checks in the tests and README (they include powercut_mark.h).
CC_EXAMPLES   := $(patsubst harness/examples/%.c,$(BUILD)/examples/%,$(wildcard harness/examples/*.c))
$(BUILD)/examples/%: harness/examples/%.c faults/powercut_mark.h
	@mkdir -p $(@D)
	$(CC) $(COMMON_CFLAGS) -O2 -Ifaults -o $@ $<

LIBS_REL      += $(BUILD)/bin/crashcheck $(CC_EXAMPLES)
CHECK_BINS    += $(CC_TESTS:%=$(BUILD)/tst/%) $(CC_TESTS:%=$(BUILD)/asan/%)
CHECK_SCRIPTS += $(wildcard harness/tests/e2e_*.sh)
# These explore or run checks with --jobs 2, or time processes' turns (run_baton, run_fork,
# run_concurrent: POWERCUT_LEND_WAIT=100, sleeps): each has the machine to itself.
CHECK_ALONE   += $(addprefix harness/tests/,e2e_suite.sh e2e_corpus.sh e2e_sqlite.sh e2e_run.sh \
                   e2e_run_baton.sh e2e_run_fork.sh e2e_run_concurrent.sh)

# `make run` explores the default workload; `make mutants` proves the explorer finds
# seeded bugs (CI runs it as part of `make check`).
RUN_DEPS      := $(BUILD)/bin/crashcheck $(BUILD)/lib/libpowercut.so
RUN_CMD       := $(BUILD)/bin/crashcheck explore corpus/workloads/default --page-size 4096
CHECK_SCRIPTS += ci/mutants/run
CHECK_ALONE   += ci/mutants/run

.PHONY: mutants mutants-fuzz
mutants: all
	ci/mutants/run
# fuzz_ops's time to find each mutant (3 campaigns of at most 5 minutes each: hours in all;
# not part of make check). MUTANTS=, FUZZ_TTD_CAP=, FUZZ_TTD_RUNS= narrow it.
mutants-fuzz: all
	ci/mutants/fuzz-ttd
BENCH_BINS    += harness/bench/cc-bench

# crashcheck looks for the shim at ../lib/libpowercut.so beside itself.
.PHONY: install-crashcheck
install-crashcheck: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/bin/crashcheck $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(BUILD)/lib/libpowercut.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 faults/powercut.h faults/powercut_mark.h $(DESTDIR)$(PREFIX)/include/
	install -d $(DESTDIR)$(PREFIX)/share/crashcheck/workloads $(DESTDIR)$(PREFIX)/share/crashcheck/interop
	install -m 644 corpus/workloads/* $(DESTDIR)$(PREFIX)/share/crashcheck/workloads/
	install -m 644 corpus/interop/*.img.gz $(DESTDIR)$(PREFIX)/share/crashcheck/interop/
INSTALL_TARGETS += install-crashcheck
