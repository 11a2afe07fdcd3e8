# faults/faults.mk: builds libpowercut (the power-cut model, trace and LD_PRELOAD shim), its
# CMocka tests, the workload driver the end-to-end tests run under the shim, and its benchmark.

PC_SRCS      := faults/model.c faults/trace.c faults/shim.c faults/wtrack_uffd.c faults/ownfd.c faults/names.c \
                faults/handover.c faults/diskfull.c
PC_LIBSRCS   := faults/model.c faults/trace.c
PC_LDLIBS    := -lfiu -ldl -pthread
PC_TEST_LIBS := -lcmocka -lfiu -ldl -pthread

$(BUILD)/lib/libpowercut.so: $(PC_SRCS:%.c=$(BUILD)/rel/%.o)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libpowercut.so -o $@ $^ $(PC_LDLIBS)
$(BUILD)/lib/libpowercut.a: $(PC_SRCS:%.c=$(BUILD)/rel/%.o)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# The shim again, built with the sanitizers, for the ASan end-to-end run.
$(BUILD)/asan/lib/libpowercut.so: $(PC_SRCS:%.c=$(BUILD)/asan/%.o)
	@mkdir -p $(@D)
	$(CC) $(ASAN_FLAGS) -shared -o $@ $^ $(PC_LDLIBS)

# Unit tests link the model and trace objects only (no interposition in the test binary),
# and the disk-full model's block runs.
$(BUILD)/tst/faults/tests/test_model: $(BUILD)/tst/faults/tests/test_model.o $(PC_LIBSRCS:%.c=$(BUILD)/tst/%.o) \
    $(BUILD)/tst/faults/diskfull.o
	$(CC) -o $@ $^ $(PC_TEST_LIBS)
$(BUILD)/asan/faults/tests/test_model: $(BUILD)/asan/faults/tests/test_model.o $(PC_LIBSRCS:%.c=$(BUILD)/asan/%.o) \
    $(BUILD)/asan/faults/diskfull.o
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(PC_TEST_LIBS)

# The workload driver run under LD_PRELOAD (it calls pc_mark weakly, so it runs without it).
$(BUILD)/tst/faults/tests/pc_work: $(BUILD)/tst/faults/tests/pc_work.o
	$(CC) -o $@ $^
$(BUILD)/asan/faults/tests/pc_work: $(BUILD)/asan/faults/tests/pc_work.o
	$(CC) $(ASAN_FLAGS) -o $@ $^

# End-to-end tests: run pc_work under the shim in child processes and read traces back.
$(BUILD)/tst/faults/tests/test_shim: $(BUILD)/tst/faults/tests/test_shim.o $(PC_LIBSRCS:%.c=$(BUILD)/tst/%.o) \
    | $(BUILD)/tst/faults/tests/pc_work $(BUILD)/lib/libpowercut.so
	$(CC) -o $@ $^ $(PC_TEST_LIBS)
$(BUILD)/asan/faults/tests/test_shim: $(BUILD)/asan/faults/tests/test_shim.o $(PC_LIBSRCS:%.c=$(BUILD)/asan/%.o) \
    | $(BUILD)/asan/faults/tests/pc_work $(BUILD)/asan/lib/libpowercut.so
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(PC_TEST_LIBS)

# In-process use: the static library linked into the test executable itself.
$(BUILD)/tst/faults/tests/test_inproc: $(BUILD)/tst/faults/tests/test_inproc.o $(BUILD)/lib/libpowercut.a
	$(CC) -o $@ $< -Wl,--whole-archive $(BUILD)/lib/libpowercut.a -Wl,--no-whole-archive $(PC_TEST_LIBS)

$(BUILD)/bin/pc-bench: $(BUILD)/rel/faults/bench/pc_bench.o | $(BUILD)/lib/libpowercut.so $(BUILD)/bin/pc-pager-work
	@mkdir -p $(@D)
	$(CC) -o $@ $^

# pc-trace: list a trace's steps, derive a crash image from it.
$(BUILD)/bin/pc-trace: $(BUILD)/rel/faults/tools/pc_trace.o $(PC_LIBSRCS:%.c=$(BUILD)/rel/%.o)
	@mkdir -p $(@D)
	$(CC) -o $@ $^

LIBS_REL      += $(BUILD)/lib/libpowercut.so $(BUILD)/lib/libpowercut.a $(BUILD)/bin/pc-trace
CHECK_BINS    += $(BUILD)/tst/faults/tests/test_model $(BUILD)/asan/faults/tests/test_model \
                 $(BUILD)/tst/faults/tests/test_shim $(BUILD)/asan/faults/tests/test_shim \
                 $(BUILD)/tst/faults/tests/test_inproc $(BUILD)/tst/faults/tests/test_pager_cuts
CHECK_SCRIPTS += faults/tests/e2e_fiu.sh faults/tests/e2e_dd.sh
# test_shim times processes' turns (POWERCUT_LEND_WAIT=100 in some cases): not on a loaded machine
CHECK_ALONE   += $(BUILD)/tst/faults/tests/test_shim $(BUILD)/asan/faults/tests/test_shim
BENCH_BINS    += $(BUILD)/bin/pc-bench
export BUILD

# The pager under the shim: a marked pager workload, for the cut-every-step test and pc-bench.
$(BUILD)/tst/faults/tests/pc_pager_work: $(BUILD)/tst/faults/tests/pc_pager_work.o $(BUILD)/tst/libmappedpages.a
	$(CC) -o $@ $^ -lfiu $(MP_LIBS)
$(BUILD)/bin/pc-pager-work: $(BUILD)/rel/faults/tests/pc_pager_work.o $(BUILD)/lib/libmappedpages.a
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(MP_LIBS)
$(BUILD)/tst/faults/tests/test_pager_cuts: $(BUILD)/tst/faults/tests/test_pager_cuts.o $(PC_LIBSRCS:%.c=$(BUILD)/tst/%.o) \
    $(BUILD)/tst/libmappedpages.a | $(BUILD)/tst/faults/tests/pc_pager_work $(BUILD)/lib/libpowercut.so
	$(CC) -o $@ $^ $(PC_TEST_LIBS) $(MP_LIBS)
