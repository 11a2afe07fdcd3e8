/* fuzz_ops.c: fuzz target for crash consistency: the input is a case (operations + one power
 * cut); it runs in-process under libpowercut's linked-in shim, and the crash image must recover. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "case.h"
#include "checker.h"
#include "explore.h"
#include "powercut.h"
#include "workload.h"

/* Cases longer than this are skipped (not truncated, so that a finding replays with
 * `crashcheck replay` exactly as found): a long case of bulk allocations at 8 KiB pages makes a
 * file of hundreds of MiB, which costs the fuzzer far more than the few ops it adds. */
#define MAX_OPS 128

static char dir[96], file[128], image[128];
static uint8_t *cut_img;
static uint64_t cut_len;
static int cut_seen;
static uint64_t cur_op, cut_op;
static int verbose, garbage; /* FUZZ_VERBOSE=1: a line per input saying where the cut fell */

/* The workload marks each operation for the shim (pc_mark); the fuzzer is linked with
 * -Wl,--wrap=pc_mark so that it also learns which operation is in flight, as the explorer
 * learns it from the trace, then hands the marker on to the shim. */
void __real_pc_mark(int kind, uint64_t op, const char *label);
void __wrap_pc_mark(int kind, uint64_t op, const char *label);
void __wrap_pc_mark(int kind, uint64_t op, const char *label) {
  if (kind == PC_MARK_BEGIN) cur_op = op;
  __real_pc_mark(kind, op, label);
}

/* The shim calls this at the cut, inside the interrupted call, which then fails with
 * ECANCELED: the workload stops at its first error and cleans up after itself, so nothing leaks
 * (no longjmp out of the pager). */
static void on_image(void *ctx, const char *name, const uint8_t *img, uint64_t len) {
  (void)ctx;
  if (strcmp(name, file) != 0) return;
  uint8_t *copy = realloc(cut_img, len ? len : 1);
  if (!copy) {
    fprintf(stderr, "fuzz_ops: out of memory for the crash image\n");
    abort();
  }
  memcpy(copy, img, len);
  cut_img = copy;
  cut_len = len;
  cut_seen = 1;
  cut_op = cur_op;
}

static void cleanup(void) {
  unlink(file);
  unlink(image);
  rmdir(dir);
  free(cut_img);
  cut_img = NULL;
}

/* The scratch directory, on tmpfs (the pager's msyncs cost nothing there, nothing reaches a
 * disk). Under afl-fuzz, the process running the inputs is a forked child that is killed now and
 * then (timeouts, the end of the run) without exiting, so a directory per process would pile up
 * files in /dev/shm: all the children of one afl-fuzz instance share one directory instead, named
 * after the instance's shared-memory id (or FUZZ_SCRATCH, which the scripts set and remove). */
static void make_dir(void) {
  const char *scratch = getenv("FUZZ_SCRATCH"), *afl = getenv("__AFL_SHM_ID");
  if (scratch && *scratch) snprintf(dir, sizeof dir, "%s", scratch);
  else if (afl && *afl) snprintf(dir, sizeof dir, "/dev/shm/fuzz_ops.afl-%.20s", afl);
  if (dir[0] && (mkdir(dir, 0700) == 0 || errno == EEXIST)) return;
  snprintf(dir, sizeof dir, "/dev/shm/fuzz_ops.XXXXXX");
  if (mkdtemp(dir)) return;
  snprintf(dir, sizeof dir, "/tmp/fuzz_ops.XXXXXX");
  if (mkdtemp(dir)) return;
  fprintf(stderr, "fuzz_ops: cannot create a scratch directory: %s\n", strerror(errno));
  abort();
}

static void setup(void) {
  if (dir[0]) return;
  make_dir();
  snprintf(file, sizeof file, "%s/pages", dir);
  snprintf(image, sizeof image, "%s/image", dir);
  unsetenv("POWERCUT_CUT");
  unsetenv("POWERCUT_TRACE");
  unsetenv("POWERCUT_ERROR");
  unsetenv("POWERCUT_IMAGE");
  unsetenv("POWERCUT_MARK_FD");
  unsetenv("POWERCUT_MODEL");
  verbose = getenv("FUZZ_VERBOSE") && *getenv("FUZZ_VERBOSE") == '1';
  garbage = getenv("FUZZ_GARBAGE") && *getenv("FUZZ_GARBAGE") == '1';
  atexit(cleanup);
}

/* Tracking on (the shim follows `file`, with the case's sector size) or off (every call passes
 * straight through, and no SIGSEGV-driven store tracking slows the model run down). */
static void shim(int on, const cc_case *c, uint64_t step, const pc_crash *crash) {
  if (on) {
    char sector[16];
    snprintf(sector, sizeof sector, "%u", c->sector);
    setenv("POWERCUT_FILE", file, 1);
    setenv("POWERCUT_SECTOR", sector, 1);
  } else {
    unsetenv("POWERCUT_FILE");
  }
  pc_crash none = {0};
  if (pc_shim_set_cut(step, crash ? crash : &none) != PC_OK || pc_shim_set_image_cb(on ? on_image : NULL, NULL) != PC_OK ||
      pc_shim_reset() != PC_OK) {
    fprintf(stderr, "fuzz_ops: cannot set the shim up\n");
    abort();
  }
}

static void write_image(void) {
  int fd = open(image, O_WRONLY | O_CREAT, 0644);
  int ok = fd >= 0 && pwrite(fd, cut_img, cut_len, 0) == (ssize_t)cut_len && ftruncate(fd, (off_t)cut_len) == 0;
  if (fd >= 0) close(fd);
  if (!ok) {
    fprintf(stderr, "fuzz_ops: cannot write the crash image %s: %s\n", image, strerror(errno));
    abort();
  }
}

/* A run that disagrees with the model without any power cut is a finding by itself
 * (`crashcheck replay` reports it as "run"). */
static void run_ok(int rc, cc_run *run) {
  if (rc == CC_OK) return;
  fprintf(stderr, "fuzz_ops: run: the workload fails without any power cut: %s\n", run->error);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static cc_case c; /* 12 KiB of operations: not on the stack */
  setup();
  cc_case_decode(data, size, &c);
  if (c.nops > MAX_OPS) return 0;
  /* A garbage sector (bytes neither old nor new) is outside the default fault model, which
   * the pager promises to survive (DESIGN.md: optional, for drives without atomic sectors):
   * a garbage superblock sector can never open. FUZZ_GARBAGE=1 fuzzes it anyway. */
  if (c.sched.cut_step && c.sched.tear == CC_TEAR_GARBAGE && !garbage) return 0;

  /* No cut: one run, which must agree with the model at every operation. */
  cc_run run;
  if (c.sched.cut_step == 0) {
    shim(0, &c, 0, NULL);
    int rc = cc_run_case(&c, file, &run);
    run_ok(rc, &run);
    cc_run_free(&run);
    return 0;
  }

  /* The run under the shim, cut at the scheduled step: the callback keeps the crash image and
   * notes the operation in flight. */
  char spec[128];
  uint64_t step;
  pc_crash crash;
  cc_cut_spec(&c.sched, spec, sizeof spec);
  if (pc_cut_parse(spec, &step, &crash) != PC_OK) {
    fprintf(stderr, "fuzz_ops: the schedule %s does not parse\n", spec);
    abort();
  }
  cut_seen = 0;
  cur_op = cut_op = 0;
  shim(1, &c, step, &crash);
  int rc = cc_run_case(&c, file, &run); /* fails at the cut, by design */
  shim(0, &c, 0, NULL);
  if (!cut_seen) {
    /* Fewer steps than the cut (replay calls this clean too): the run went to its end, and
     * is the model check. */
    if (verbose) fprintf(stderr, "fuzz_ops: no cut: fewer than %llu steps\n", (unsigned long long)step);
    run_ok(rc, &run);
    cc_run_free(&run);
    return 0;
  }
  cc_run_free(&run);

  /* The model states up to the operation in flight, from a run without the shim of the
   * operations up to it (what follows the cut cannot matter to the image; a disagreement of
   * the model in those later operations is found by the inputs that cut later or not at all,
   * where `crashcheck replay` reports it for this input too). One run less than running the
   * whole case again, which made fuzz_ops half as fast. */
  static cc_case prefix;
  prefix = c;
  size_t index = cut_op ? (size_t)cut_op - 1 : 0;
  if (index > c.nops) index = c.nops;
  prefix.nops = index;
  rc = cc_run_case(&prefix, file, &run);
  run_ok(rc, &run);
  if (index >= run.nstates) index = run.nstates - 1;

  /* The checker of crashcheck, on the states before and after the operation in flight. */
  const cc_state *before = index ? &run.states[index - 1] : NULL, *after = &run.states[index];
  int kind = index ? c.ops[index - 1].kind : CC_OP_KINDS;
  write_image();
  cc_verdict v;
  /* No page-hash cache: each input is another image. */
  cc_check_image(image, c.page_size, before, after, kind, NULL, &v);
  if (verbose)
    fprintf(stderr, "fuzz_ops: cut at step %llu (%s) in operation %zu (%s): %u violations, %llu pages reclaimed\n",
            (unsigned long long)step, spec, index, index ? cc_op_name(kind) : "create", v.nviolations,
            (unsigned long long)v.reclaimed);
  if (v.nviolations) {
    fprintf(stderr, "fuzz_ops: %s violated: power cut at step %llu (%s) in operation %zu (%s): expected %s; found %s\n",
            v.v[0].invariant, (unsigned long long)step, spec, index, index ? cc_op_name(kind) : "create",
            v.v[0].expected, v.v[0].found);
    abort();
  }
  cc_run_free(&run);
  return 0;
}
