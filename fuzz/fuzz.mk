# fuzz/fuzz.mk: the fuzz targets (fuzz_image, fuzz_ops) as plain replayers (tst, asan), for
# AFL++ (afl-clang-fast, persistent mode), for libFuzzer; `make fuzz`, `make triage`, CI smoke.

FUZZ_TARGETS  := fuzz_image fuzz_ops
FUZZ_INCLUDES := -Iharness -Ifaults
AFL_CC        ?= afl-clang-fast
FUZZ_CLANG    ?= clang
AFL_DRIVER    ?= /usr/lib/afl/libAFLDriver.a

# What each target links besides its own object: fuzz_image needs the pager only; fuzz_ops the
# harness (runner, model, checker, explorer's cut spelling) and libpowercut's objects, linked
# in whole (the shim interposes write/msync/... in this executable, as test_inproc does).
# The harness and shim sources are harness.mk's and faults.mk's (CC_SRCS, PC_SRCS: they change as
# crashcheck and the shim grow).
FUZZ_HARNESS  := $(or $(CC_SRCS),harness/case.c harness/workload.c harness/checker.c harness/explore.c)
FUZZ_SHIM     := $(or $(PC_SRCS),faults/model.c faults/trace.c faults/shim.c faults/wtrack_uffd.c)
FUZZ_image_SRCS := $(PAGER_SRCS)
FUZZ_ops_SRCS   := fuzz/memfile.c $(FUZZ_HARNESS) $(FUZZ_SHIM) $(PAGER_SRCS)
FUZZ_image_LIBS = $(MP_LIBS)
# fuzz_ops wraps the markers (the operation in flight), the calls the shim numbers as steps
# (fuzz_ops.c counts them itself: it stops the run after the operation in flight, and checks
# that the shim cut at the step it counted) and the other file calls of the pager, the runner
# and the checker (memfile.c: the file held in memory): fuzz/fuzz_ops.wrap lists them.
FUZZ_OPS_WRAP   := $(foreach f,$(shell grep -v '^\#' fuzz/fuzz_ops.wrap),-Wl,--wrap=$(f))
# A change to that list relinks fuzz_ops in every tree: each link has memfile.o.
$(foreach t,tst asan rel afl afl-asan libfuzzer,$(BUILD)/$(t)/fuzz/memfile.o): fuzz/fuzz_ops.wrap
FUZZ_ops_LIBS   = $(FUZZ_OPS_WRAP) -lfiu -ldl -pthread $(MP_LIBS)

$(BUILD)/tst/fuzz/%.o $(BUILD)/asan/fuzz/%.o: EXTRA_CFLAGS += $(FUZZ_INCLUDES)

# (a) Plain replayers: gcc, the test objects (tst) and the sanitizer objects (asan).
$(BUILD)/tst/fuzz/fuzz_image: $(BUILD)/tst/fuzz/fuzz_image.o $(BUILD)/tst/fuzz/replay_main.o $(BUILD)/tst/libmappedpages.a
	$(CC) -o $@ $^ -lfiu $(FUZZ_image_LIBS)
$(BUILD)/asan/fuzz/fuzz_image: $(BUILD)/asan/fuzz/fuzz_image.o $(BUILD)/asan/fuzz/replay_main.o $(BUILD)/asan/libmappedpages.a
	$(CC) $(ASAN_FLAGS) -o $@ $^ -lfiu $(FUZZ_image_LIBS)
$(BUILD)/tst/fuzz/fuzz_ops: $(BUILD)/tst/fuzz/fuzz_ops.o $(BUILD)/tst/fuzz/replay_main.o $(BUILD)/tst/fuzz/memfile.o \
    $(FUZZ_HARNESS:%.c=$(BUILD)/tst/%.o) $(FUZZ_SHIM:%.c=$(BUILD)/tst/%.o) $(BUILD)/tst/libmappedpages.a
	$(CC) -o $@ $^ $(FUZZ_ops_LIBS)
$(BUILD)/asan/fuzz/fuzz_ops: $(BUILD)/asan/fuzz/fuzz_ops.o $(BUILD)/asan/fuzz/replay_main.o $(BUILD)/asan/fuzz/memfile.o \
    $(FUZZ_HARNESS:%.c=$(BUILD)/asan/%.o) $(FUZZ_SHIM:%.c=$(BUILD)/asan/%.o) $(BUILD)/asan/libmappedpages.a
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(FUZZ_ops_LIBS)

# (b) AFL++: every object recompiled with afl-clang-fast (instrumented), in its own trees:
# build/afl (no sanitizers: the fast main instances) and build/afl-asan (ASan+UBSan).
FUZZ_CFLAGS     = $(COMMON_CFLAGS) -O2 $(FUZZ_INCLUDES)
$(BUILD)/afl/%.o: %.c | setup
	@mkdir -p $(@D)
	$(AFL_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(BUILD)/afl-asan/%.o: %.c | setup
	@mkdir -p $(@D)
	$(AFL_CC) $(FUZZ_CFLAGS) $(ASAN_FLAGS) -c $< -o $@

# (c) libFuzzer: clang, coverage + ASan + UBSan.
$(BUILD)/libfuzzer/%.o: %.c | setup
	@mkdir -p $(@D)
	$(FUZZ_CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -c $< -o $@

# The link rules of each target in each fuzzing tree: TREE, target, its sources, link flags.
define FUZZ_LINK
$(BUILD)/afl/$(1): $(BUILD)/afl/fuzz/$(1).o $(2:%.c=$(BUILD)/afl/%.o)
	$$(AFL_CC) -o $$@ $$^ $$(AFL_DRIVER) $(3)
$(BUILD)/afl-asan/$(1): $(BUILD)/afl-asan/fuzz/$(1).o $(2:%.c=$(BUILD)/afl-asan/%.o)
	$$(AFL_CC) $$(ASAN_FLAGS) -o $$@ $$^ $$(AFL_DRIVER) $(3)
$(BUILD)/libfuzzer/$(1): $(BUILD)/libfuzzer/fuzz/$(1).o $(2:%.c=$(BUILD)/libfuzzer/%.o)
	$$(FUZZ_CLANG) -fsanitize=fuzzer,address,undefined -o $$@ $$^ $(3)
endef
$(eval $(call FUZZ_LINK,fuzz_image,$(FUZZ_image_SRCS),$(FUZZ_image_LIBS)))
$(eval $(call FUZZ_LINK,fuzz_ops,$(FUZZ_ops_SRCS),$(FUZZ_ops_LIBS)))

FUZZ_REPLAYERS := $(FUZZ_TARGETS:%=$(BUILD)/tst/fuzz/%) $(FUZZ_TARGETS:%=$(BUILD)/asan/fuzz/%)
FUZZ_AFL       := $(FUZZ_TARGETS:%=$(BUILD)/afl/%)
FUZZ_AFL_ASAN  := $(FUZZ_TARGETS:%=$(BUILD)/afl-asan/%)
FUZZ_LIBFUZZER := $(FUZZ_TARGETS:%=$(BUILD)/libfuzzer/%)

.PHONY: fuzz fuzz-sync triage fuzz-build fuzz-libfuzzer
fuzz-build: all $(FUZZ_REPLAYERS) $(FUZZ_AFL) $(FUZZ_AFL_ASAN)
fuzz-libfuzzer: all $(FUZZ_LIBFUZZER)

# make fuzz [FUZZ_TIME=10m|8h] [FUZZ_TARGETS="fuzz_ops"]: resumes the campaign in fuzz/out/.
# Over several machines: FUZZ_NODE=NAME on each (instances NAME-main, NAME-asan), FUZZ_MAIN=no
# on all but one, and make fuzz-sync FROM="host:/path/fuzz/out ..." (fuzz/sync.sh) on each.
fuzz: fuzz-build
	FUZZ_TIME=$(or $(FUZZ_TIME),10m) FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_NODE="$(FUZZ_NODE)" \
	  FUZZ_MAIN="$(or $(FUZZ_MAIN),yes)" FUZZ_INSTANCES="$(or $(FUZZ_INSTANCES),main asan)" fuzz/run.sh

fuzz-sync:
	@[ -n "$(FROM)" ] || { echo 'make fuzz-sync FROM="host:/path/to/fuzz/out ...": the other machines of the campaign' >&2; exit 2; }
	fuzz/sync.sh $(FROM)

# make triage: one minimized reproducer per crash signature, into corpus/regressions/.
triage: fuzz-build
	FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz/triage.sh

# CI: the smoke test replays the seeds and regressions and runs each AFL++ target briefly; it
# needs the replayers and the AFL++ builds, made before `make check` runs the scripts.
fuzz/tests/e2e_fuzz_smoke.sh: $(FUZZ_REPLAYERS) $(FUZZ_AFL)
CHECK_SCRIPTS += fuzz/tests/e2e_fuzz_smoke.sh
# Two "machines" of one campaign, synced as README says (fuzz_image only, ~25 s).
fuzz/tests/e2e_fuzz_multi.sh: $(BUILD)/afl/fuzz_image
CHECK_SCRIPTS += fuzz/tests/e2e_fuzz_multi.sh
# Both run an AFL++ instance per core for a fixed time.
CHECK_ALONE   += fuzz/tests/e2e_fuzz_smoke.sh fuzz/tests/e2e_fuzz_multi.sh
CLEAN_EXTRA   += fuzz/out

# (d) The benchmark's replayer: the optimised objects (rel), no instrumentation, no sanitizers.
$(BUILD)/rel/fuzz/%.o: EXTRA_CFLAGS += $(FUZZ_INCLUDES)
$(BUILD)/rel/fuzz/fuzz_ops: $(BUILD)/rel/fuzz/fuzz_ops.o $(BUILD)/rel/fuzz/replay_main.o $(BUILD)/rel/fuzz/memfile.o \
    $(FUZZ_HARNESS:%.c=$(BUILD)/rel/%.o) $(FUZZ_SHIM:%.c=$(BUILD)/rel/%.o) $(BUILD)/lib/libmappedpages.a
	$(CC) -o $@ $^ $(FUZZ_ops_LIBS)
BENCH_BINS += fuzz/bench/fuzz-bench
bench: $(BUILD)/rel/fuzz/fuzz_ops
