# pager/pager.mk: builds libmappedpages (static and shared), its CMocka tests in the
# fault-point and sanitizer variants, its benchmark and the `make run` demonstration.

MP_VERSION   := 0.2.0
PAGER_SRCS   := $(wildcard pager/*.c)
# test_fmt3_cuts runs the pager under libpowercut: built below, in the tst variant only.
PAGER_TESTS  := $(filter-out %/test_fmt3_cuts,$(patsubst %.c,%,$(wildcard pager/tests/test_*.c)))
PAGER_TEST_SUPPORT := pager/tests/support.c
TEST_LDLIBS  = -lcmocka -lfiu $(MP_LIBS)
# The checksum's code, and its test, learn whether ISA-L is there (Makefile: ISAL_CFLAGS).
$(BUILD)/%/pager/crc32.o $(BUILD)/%/pager/tests/test_crc32.o: EXTRA_CFLAGS += $(ISAL_CFLAGS)

$(BUILD)/lib/libmappedpages.a: $(PAGER_SRCS:%.c=$(BUILD)/rel/%.o)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lib/libmappedpages.so: $(PAGER_SRCS:%.c=$(BUILD)/rel/%.o)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libmappedpages.so.0 -o $@ $^ $(MP_LIBS)
# The name the library's SONAME gives: a program linked against build/lib looks for it there.
$(BUILD)/lib/libmappedpages.so.0: $(BUILD)/lib/libmappedpages.so
	ln -sf libmappedpages.so $@

# Test variants of the library: fault points on, and fault points + sanitizers.
$(BUILD)/tst/libmappedpages.a: $(PAGER_SRCS:%.c=$(BUILD)/tst/%.o)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/asan/libmappedpages.a: $(PAGER_SRCS:%.c=$(BUILD)/asan/%.o)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/tst/pager/tests/%: $(BUILD)/tst/pager/tests/%.o $(BUILD)/tst/pager/tests/support.o $(BUILD)/tst/libmappedpages.a
	$(CC) -o $@ $^ $(TEST_LDLIBS)
$(BUILD)/asan/pager/tests/%: $(BUILD)/asan/pager/tests/%.o $(BUILD)/asan/pager/tests/support.o $(BUILD)/asan/libmappedpages.a
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(TEST_LDLIBS)

$(BUILD)/bin/mp-demo: $(BUILD)/rel/pager/demo/mp_demo.o $(BUILD)/lib/libmappedpages.a
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(MP_LIBS)
$(BUILD)/bin/mp-bench: $(BUILD)/rel/pager/bench/mp_bench.o $(BUILD)/lib/libmappedpages.a
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(MP_LIBS)
$(BUILD)/bin/mp-scale: $(BUILD)/rel/pager/bench/mp_scale.o $(BUILD)/lib/libmappedpages.a
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(MP_LIBS)

LIBS_REL   += $(BUILD)/lib/libmappedpages.a $(BUILD)/lib/libmappedpages.so $(BUILD)/lib/libmappedpages.so.0 \
              $(BUILD)/bin/mp-demo $(BUILD)/bin/mp-bench
CHECK_BINS += $(PAGER_TESTS:%=$(BUILD)/tst/%) $(PAGER_TESTS:%=$(BUILD)/asan/%)

# A 0.3 file under the power-cut shim: the workload it records, and the test that reads the
# trace back through libpowercut's model (faults/faults.mk builds the shim and those objects).
$(BUILD)/tst/pager/tests/pc_fmt3_work: $(BUILD)/tst/pager/tests/pc_fmt3_work.o $(BUILD)/tst/libmappedpages.a
	$(CC) -o $@ $^ -lfiu $(MP_LIBS)
$(BUILD)/tst/pager/tests/test_fmt3_cuts: $(BUILD)/tst/pager/tests/test_fmt3_cuts.o $(BUILD)/tst/faults/model.o \
    $(BUILD)/tst/faults/trace.o $(BUILD)/tst/libmappedpages.a | $(BUILD)/tst/pager/tests/pc_fmt3_work $(BUILD)/lib/libpowercut.so
	$(CC) -o $@ $^ -lcmocka -lfiu -ldl -pthread $(MP_LIBS)
CHECK_BINS += $(BUILD)/tst/pager/tests/test_fmt3_cuts
CHECK_SCRIPTS += pager/tests/e2e_install.sh pager/tests/e2e_demo.sh pager/tests/e2e_salvage.sh
BENCH_BINS += $(BUILD)/bin/mp-bench $(BUILD)/bin/mp-scale
