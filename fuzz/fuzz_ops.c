/* fuzz_ops.c: fuzz target for crash consistency: the input is a case (operations + one power
 * cut); it runs in-process under libpowercut's linked-in shim, and the crash image must recover. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "case.h"
#include "checker.h"
#include "explore.h"
#include "image.h"
#include "mappedpages.h"
#include "memfile.h"
#include "powercut.h"
#include "workload.h"

/* Cases of more operations than this are skipped (not truncated, so that a finding replays with
 * `crashcheck replay` exactly as found). An input costs about its steps (2 us each: ~500 for 120
 * operations at 1 KiB pages), and long cases are the slow tail of a campaign: two 4-minute
 * campaigns side by side ran 4,270 execs/s with 64 and 3,210 with 128, and the first found
 * more edges (1,348 against 1,329). FUZZ_MAX_OPS=N changes it. */
#define MAX_OPS 64
/* So are cases whose file grows past this many bytes before the cut (or at all, without one):
 * every run costs the file's size several times over (tmpfs pages allocated, zeroed, faulted in
 * and freed, about 2 us a page on this kind of VM; the shim's two copies of the file and its
 * crash image; the checker's reads), and at 8 KiB pages a few bulk allocations reach megabytes.
 * The pager's code is the same at every size: 256 KiB is 256 pages of 1 KiB (four words of the
 * free bitmap, six doublings) or 32 of 8 KiB. Campaigns of 4 minutes found as many edges with
 * 256 KiB as with 1 MiB, at 1.2-1.6x the execs/s (README, "Fuzzing"); FUZZ_MAX_FILE=BYTES
 * changes it, 0 lifts it. */
#define MAX_FILE (1u << 18)
static char dir[96], file[128];
static int cut_seen;
static uint64_t cur_op, cut_op, cut_count;
static int verbose, garbage, selfcheck, r7; /* FUZZ_VERBOSE=1: a line per input saying where the cut fell */
static int memory = 1; /* FUZZ_MEMORY=0: the runs from the template on a real file, under the shim */
static uint64_t max_file = MAX_FILE;
static size_t max_ops = MAX_OPS;

/*
 * Steps, counted by the fuzzer itself. The shim numbers as steps the calls that touch the tracked
 * file (msync of its mapping, fallocate, ftruncate, fsync, pwrite, ...). The fuzzer is linked
 * with -Wl,--wrap for each of them (fuzz.mk), so it counts them itself, as the shim would, in
 * a run without a cut too (no shim then; wrapped calls cost nothing extra). The count tells
 *  - which operation is in flight at the cut, so that the run, which also gives the model
 *    states, stops after it: the first step past it fails (EIO), the workload stops at its
 *    error;
 *  - whether the shim agrees: at the cut, this counter must say the cut step (else fuzz_ops
 *    aborts, saying so).
 */
typedef struct step_count {
  int on;              /* counting: during the runs of the case only */
  int fast;            /* the fast run: counting goes on after the cut, and the file grows with
                          ftruncate where the pager calls fallocate (grow) */
  uint64_t n;          /* steps so far, numbered as in a run that creates the file */
  uint64_t want;       /* note the operation in flight at this step (0: none) */
  uint64_t want_op;    /* its marker, once reached (0: not yet) */
  int stop;            /* fail every step of the operations after want_op */
  int capped;          /* a file past max_file before want_op fails the step */
  int failing, too_big;
} step_count;
static step_count steps;

/* Whether fd is the tracked file: one fstat when it is (the file's identity is kept for the
 * run: every step asks), a stat of the path besides when it is not (or no longer). */
static struct {
  int valid;
  dev_t dev;
  ino_t ino;
} known;

static int is_file(int fd) {
  struct stat a, b;
  if (fstat(fd, &a) != 0 || !S_ISREG(a.st_mode)) return 0;
  if (known.valid && a.st_dev == known.dev && a.st_ino == known.ino) return 1;
  if (stat(file, &b) != 0) return 0;
  known.valid = 1, known.dev = b.st_dev, known.ino = b.st_ino;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Whether fd is the directory holding the file's name: the shim numbers an fsync of it as a
 * step too (fsync-dir: faults/names.c), the create's last. One fstat, and a stat of the
 * directory's path, per fsync of a descriptor that is not the file. */
static int is_file_dir(int fd) {
  struct stat a, b;
  char parent[sizeof file];
  const char *slash = strrchr(file, '/');
  if (fstat(fd, &a) != 0 || !S_ISDIR(a.st_mode)) return 0;
  if (!slash) snprintf(parent, sizeof parent, ".");
  else snprintf(parent, sizeof parent, "%.*s", slash == file ? 1 : (int)(slash - file), file);
  return stat(parent, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Counting starts over (a run begins; the file may be another). */
static void count_from(step_count from) {
  steps = from;
  known.valid = 0;
}

/* One step of the tracked file, which makes it `end` bytes long at least; nonzero when the call
 * must fail instead (the run is past the operation in flight, or the file too big). */
static int step(uint64_t end) {
  if (steps.failing) return 1;
  if (steps.capped && !steps.want_op && max_file && end > max_file) return steps.too_big = steps.failing = 1;
  if (++steps.n == steps.want) steps.want_op = cur_op;
  return 0;
}

/* A call the shim numbers as a step, counted when `tracked`: nonzero when it must fail instead
 * (EIO, with no effect); *cut says the power is cut at it. A call on the in-memory file
 * (memfile.c) is then served there, which models the step as the shim would; any other goes on
 * to the shim. */
static int count_step(int tracked, uint64_t end, int *cut) {
  *cut = 0;
  if (!tracked) return 0;
  if (step(end)) return 1;
  *cut = steps.n == steps.want;
  return 0;
}

int __real_msync(void *addr, size_t len, int flags);
int __wrap_msync(void *addr, size_t len, int flags);
int __wrap_msync(void *addr, size_t len, int flags) {
  int cut, r;
  if (count_step(steps.on && len, 0, &cut)) return errno = EIO, -1;
  if (mf_msync(addr, len, flags, cut, &r)) return r;
  return __real_msync(addr, len, flags);
}
#define WRAP_SYNC(name)                                                       \
  int __real_##name(int fd);                                                  \
  int __wrap_##name(int fd);                                                  \
  int __wrap_##name(int fd) {                                                 \
    int cut, r;                                                               \
    if (count_step(steps.on && (is_file(fd) || is_file_dir(fd)), 0, &cut)) \
      return errno = EIO, -1;                                                 \
    if (mf_fsync(fd, cut, &r)) return r;                                      \
    return __real_##name(fd);                                                 \
  }
WRAP_SYNC(fsync)
WRAP_SYNC(fdatasync)
#define WRAP_TRUNCATE(name)                                                                   \
  int __real_##name(int fd, off_t len);                                                       \
  int __wrap_##name(int fd, off_t len);                                                       \
  int __wrap_##name(int fd, off_t len) {                                                      \
    int cut, r;                                                                               \
    if (count_step(steps.on && len >= 0 && is_file(fd), (uint64_t)len, &cut)) return errno = EIO, -1; \
    if (len >= 0 && mf_truncate(fd, (uint64_t)len, 0, cut, &r)) return r;                    \
    return __real_##name(fd, len);                                                            \
  }
WRAP_TRUNCATE(ftruncate)
WRAP_TRUNCATE(ftruncate64)
/* The pager reserves each doubling of its file with fallocate (mode 0), so that a full disk is
 * an error then, not a SIGBUS later. On tmpfs that allocates and zeroes every page of it (about
 * 1 us a page here), and the next input's copy of the template frees them again: most of them
 * never touched in between. In the runs, the file grows with ftruncate instead, through the
 * shim, which models the two the same way (a plain fallocate is a size change: note_fallocate,
 * note_truncate; a cut in either changes only the size), so that the images and steps are
 * those of `crashcheck replay`, where the fallocate is real. tmpfs then allocates the pages the
 * run writes, nothing else. The fast run only: FUZZ_SELFCHECK=1 compares its images with the
 * slow run's, whose fallocate is real. (The in-memory file grows the same way.) */
int __real_fallocate(int fd, int mode, off_t off, off_t len);
int __real_fallocate64(int fd, int mode, off_t off, off_t len);
int __wrap_fallocate(int fd, int mode, off_t off, off_t len);
int __wrap_fallocate64(int fd, int mode, off_t off, off_t len);
static int grow(int fd, int mode, off_t off, off_t len, int (*real)(int, int, off_t, off_t)) {
  int tracked = steps.on && off >= 0 && len > 0 && is_file(fd), cut, r;
  if (count_step(tracked, (uint64_t)off + (uint64_t)len, &cut)) return errno = EIO, -1;
  uint64_t to = mode & FALLOC_FL_KEEP_SIZE ? 0 : (uint64_t)off + (uint64_t)len;
  if (off >= 0 && len > 0 && mf_truncate(fd, to, 1, cut, &r)) return r;
  struct stat st;
  if (!tracked || !steps.fast || mode != 0 || fstat(fd, &st) != 0) return real(fd, mode, off, len);
  return __real_ftruncate64(fd, off + len > st.st_size ? off + len : st.st_size);
}
int __wrap_fallocate(int fd, int mode, off_t off, off_t len) { return grow(fd, mode, off, len, __real_fallocate); }
int __wrap_fallocate64(int fd, int mode, off_t off, off_t len) { return grow(fd, mode, off, len, __real_fallocate64); }
#define WRAP_PWRITE(name)                                                                         \
  ssize_t __real_##name(int fd, const void *buf, size_t n, off_t off);                            \
  ssize_t __wrap_##name(int fd, const void *buf, size_t n, off_t off);                            \
  ssize_t __wrap_##name(int fd, const void *buf, size_t n, off_t off) {                           \
    int cut;                                                                                      \
    long r;                                                                                       \
    if (count_step(steps.on && is_file(fd), (uint64_t)off + n, &cut)) return errno = EIO, -1;    \
    if (off >= 0 && mf_pwrite(fd, buf, n, (uint64_t)off, cut, &r)) return (ssize_t)r;           \
    return __real_##name(fd, buf, n, off);                                                        \
  }
WRAP_PWRITE(pwrite)
WRAP_PWRITE(pwrite64)
/* posix_fallocate returns the error number */
int __real_posix_fallocate64(int fd, off_t off, off_t len);
int __wrap_posix_fallocate64(int fd, off_t off, off_t len);
int __wrap_posix_fallocate64(int fd, off_t off, off_t len) {
  int cut, r;
  if (count_step(steps.on && off >= 0 && len > 0 && is_file(fd), (uint64_t)off + (uint64_t)len, &cut)) return EIO;
  if (off >= 0 && len > 0 && mf_truncate(fd, (uint64_t)off + (uint64_t)len, 1, cut, &r)) return r ? errno : 0;
  return __real_posix_fallocate64(fd, off, len);
}

/* The workload marks each operation for the shim (pc_mark); the fuzzer is linked with
 * -Wl,--wrap=pc_mark so that it also learns which operation is in flight, as the explorer
 * learns it from the trace, then hands the marker on to the shim. */
void __real_pc_mark(int kind, uint64_t op, const char *label);
void __wrap_pc_mark(int kind, uint64_t op, const char *label);
void __wrap_pc_mark(int kind, uint64_t op, const char *label) {
  if (kind == PC_MARK_BEGIN) {
    cur_op = op;
    if (steps.stop && steps.want_op && op > steps.want_op) steps.failing = 1;
  }
  __real_pc_mark(kind, op, label);
}

/* The crash image, as the shim builds it at the cut, inside the interrupted call, which then
 * goes on as if nothing happened (the fast run: the same run gives the model states) or fails
 * with ECANCELED (the self-check's slow run: the workload then stops at its first error and
 * cleans up after itself, so nothing leaks; no longjmp out of the pager). Kept in memory until
 * the run has ended, then written over the run's file (put_image), which the checker opens. */
static struct {
  uint8_t *bytes;
  size_t len, cap;
} crash_image;

/* The case being run, and what its cut's garbage tear did (judged at the cut, from the model
 * that made the image): GARBAGE_NONE when no sector got garbage (the step made none durable, or
 * garbage:0), GARBAGE_PROMISED when it fell in a 0.3 file's metadata block (the superblock, a
 * root, a leaf, a directory copy), GARBAGE_BEYOND anywhere else. */
static const cc_case *cur_case;
enum { GARBAGE_NONE, GARBAGE_PROMISED, GARBAGE_BEYOND };
static int cut_garbage;

/* Which sector a garbage:N tear fills is the model's to say (the N-th the step makes durable, the
 * last past the end); whether the pager must survive it is what crashcheck explore decides for its
 * garbage tears of 0.3 files (cc_step_sector_is_metadata3): the same sectors, the same verdicts. */
static int judge_garbage(const cc_case *c, pc_model *m, uint32_t id) {
  uint64_t n = 0;
  if (pc_model_step_sectors(m, &n) != PC_OK) {
    fprintf(stderr, "fuzz_ops: the model cannot say which sectors the cut step makes durable\n");
    abort();
  }
  if (!n || !c->sched.tear_n) return GARBAGE_NONE;
  uint64_t pages = 0, j = (c->sched.tear_n < n ? c->sched.tear_n : n) - 1;
  uint8_t *kinds = cc_step_kinds3(m, id, c->page_size, c->format3, &pages);
  int promised = kinds && cc_step_sector_is_metadata3(m, id, j, kinds, pages, c->page_size, c->sector);
  free(kinds);
  return promised ? GARBAGE_PROMISED : GARBAGE_BEYOND;
}

static void took_image(const char *name, const uint8_t *img, uint64_t len, pc_model *m, uint32_t id) {
  if (strcmp(name, file) != 0) return;
  cut_garbage = cur_case && cur_case->sched.tear == CC_TEAR_GARBAGE ? judge_garbage(cur_case, m, id) : GARBAGE_NONE;
  cut_count = steps.n;
  if (!steps.fast) steps.on = 0; /* the rest of this run is cleanup */
  if (len > crash_image.cap) {
    uint8_t *b = realloc(crash_image.bytes, (size_t)len);
    if (!b) {
      fprintf(stderr, "fuzz_ops: no memory for a crash image of %llu bytes\n", (unsigned long long)len);
      abort();
    }
    crash_image.bytes = b;
    crash_image.cap = (size_t)len;
  }
  memcpy(crash_image.bytes, img, (size_t)len);
  crash_image.len = (size_t)len;
  cut_seen = 1;
  cut_op = cur_op;
}

/* The shim's image callback: its model, for judge_garbage, is still there after the cut. */
static void on_image(void *ctx, const char *name, const uint8_t *img, uint64_t len) {
  (void)ctx;
  pc_model *m = NULL;
  uint32_t id = 0;
  if (strcmp(name, file) == 0 && pc_shim_cut_model(name, &m, &id) != PC_OK) {
    fprintf(stderr, "fuzz_ops: the shim cut without its model\n");
    abort();
  }
  took_image(name, img, len, m, id);
}

/* The file becomes `len` bytes of `bytes`, written over what it holds, not truncated first:
 * tmpfs frees the pages a truncate drops and allocates them again as they are written, which
 * costs more than the copy. Outside the runs (no step of the workload). */
static void put_file(const uint8_t *bytes, size_t len, const char *what) {
  int fd = open(file, O_WRONLY | O_CREAT, 0644);
  int ok = fd >= 0 && pwrite(fd, bytes, len, 0) == (ssize_t)len && ftruncate(fd, (off_t)len) == 0;
  if (fd >= 0) close(fd);
  if (!ok) {
    fprintf(stderr, "fuzz_ops: cannot write %s to %s: %s\n", what, file, strerror(errno));
    abort();
  }
}

/* After a run that cut: the image replaces the file. The file had grown at least as far as
 * the image when the power was cut, so the copy frees no page the run allocated (a separate
 * image file, whose length changes from input to input, had its pages freed and allocated again
 * at every input). */
static void put_image(void) { put_file(crash_image.bytes, crash_image.len, "the crash image"); }

/* A freshly created file, per page size and way of creating it (below): its bytes and the create's
 * steps. A run whose cut falls after the create (or without a cut) starts from a copy of it
 * instead of creating the file (the create allocates, syncs twice and fsyncs the directory). The
 * create leaves every byte durable, so the shim, taking the copy as durable when it opens it,
 * models the same file (FUZZ_SELFCHECK=1 compares the images). Steps keep the numbering of a run
 * that creates (the shim's cut step is shifted by the create's steps), so that a finding replays
 * with `crashcheck replay` as it is. */
typedef struct tmpl {
  uint8_t *bytes;
  size_t len;
  uint64_t steps;
} tmpl;
/* How the case's create makes the file (operation 0, as the runner does it): 0.2 or 0.3 (format
 * 3, which the superblock of a sparse 0.3 file records), and a 0.2 file's reopen with MP_SPARSE
 * or MP_FORMAT_3 (sparse, upgrade). "format 3" with "upgrade" is "format 3". */
enum { CREATE_FORMAT3 = 1, CREATE_SPARSE = 2, CREATE_UPGRADE = 4, CREATE_KINDS = 8 };
static tmpl templates[5][CREATE_KINDS]; /* 1, 2, 4, 8, 16 KiB */

static unsigned create_kind(const cc_case *c) {
  return (c->format3 ? CREATE_FORMAT3 : 0u) | (c->sparse ? CREATE_SPARSE : 0u) |
         (c->upgrade && !c->format3 ? CREATE_UPGRADE : 0u);
}

static const tmpl *template_for(uint32_t ps, unsigned kind) {
  tmpl *t = &templates[ps >= 16384 ? 4 : ps >= 8192 ? 3 : ps >= 4096 ? 2 : ps >= 2048 ? 1 : 0][kind];
  if (t->bytes) return t;
  /* the runner's create, through the runner: the same calls as a case's operation 0 */
  static cc_case create;
  cc_case_default(&create);
  create.page_size = ps;
  create.format3 = kind & CREATE_FORMAT3;
  create.sparse = kind & CREATE_SPARSE;
  create.upgrade = kind & CREATE_UPGRADE;
  cc_run run;
  count_from((step_count){.on = 1});
  int rc = cc_run_case(&create, file, &run);
  steps.on = 0;
  struct stat st;
  int fd = rc == CC_OK ? open(file, O_RDONLY) : -1;
  uint8_t *b = fd >= 0 && fstat(fd, &st) == 0 ? malloc((size_t)st.st_size + 1) : NULL;
  if (!b || pread(fd, b, (size_t)st.st_size, 0) != (ssize_t)st.st_size) {
    fprintf(stderr, "fuzz_ops: run: cannot create a %s file of %u-byte pages%s%s: %s\n", create.format3 ? "0.3" : "0.2",
            ps, create.sparse ? ", sparse" : "", create.upgrade ? ", for the upgrade" : "",
            rc != CC_OK ? run.error : strerror(errno));
    abort();
  }
  cc_run_free(&run);
  close(fd);
  t->len = (size_t)st.st_size;
  t->steps = steps.n;
  t->bytes = b;
  return t;
}

static void put_template(const tmpl *t) { put_file(t->bytes, t->len, "a created file"); }

static void cleanup(void) {
  unlink(file);
  rmdir(dir);
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

static void shim(int on, const cc_case *c, uint64_t step, const pc_crash *crash, const char *mmap, int after_cut);
static void shim_off(void);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input cut under the shim before the first real one (and one more on the file in memory),
 * for the same reason: the shim's and the model's tables grow at their first use, which would
 * otherwise add edges to whichever input comes first (libAFLDriver's own first input does not
 * reach the shim; in a 45 s campaign of the in-memory file without the first, afl-fuzz measured
 * a stability of 98.1% against 99.7%). 4 KiB pages, every kind of operation, a torn cut in a
 * protected operation; in a 0.2 file, then in a 0.3 one, whose structures are others. */
static void warm_up(void) {
  static uint8_t in[] = {0, 0, 14, 0, CC_TEAR_PREFIX, 1, CC_WB_ALL, 0,
                         CC_ALLOC, 0, 0, CC_ALLOC_BULK, 3, 0, CC_WRITE_SYNC, 0, 1, CC_PALLOC, 0, 0,
                         CC_PWRITE, 0, 2, CC_WRITE, 1, 3, CC_SYNC, 0, 0, CC_PABORT, 0, 4,
                         CC_FREE_BULK, 0, 1, CC_REOPEN, 0, 0, CC_PFREE, 0, 0, CC_FREE, 0, 0};
  in[1] = 0;
  LLVMFuzzerTestOneInput(in, sizeof in);
  in[1] = CC_HDR_FORMAT3;
  LLVMFuzzerTestOneInput(in, sizeof in);
}

static void setup(void) {
  if (dir[0]) return;
  make_dir();
  snprintf(file, sizeof file, "%s/pages", dir);
  unsetenv("POWERCUT_CUT");
  unsetenv("POWERCUT_TRACE");
  unsetenv("POWERCUT_ERROR");
  unsetenv("POWERCUT_IMAGE");
  unsetenv("POWERCUT_MARK_FD");
  unsetenv("POWERCUT_MODEL");
  verbose = getenv("FUZZ_VERBOSE") && *getenv("FUZZ_VERBOSE") == '1';
  garbage = getenv("FUZZ_GARBAGE") && *getenv("FUZZ_GARBAGE") == '1';
  selfcheck = getenv("FUZZ_SELFCHECK") && *getenv("FUZZ_SELFCHECK") == '1';
  r7 = getenv("FUZZ_R7") && *getenv("FUZZ_R7") == '1';
  /* The in-memory file models no names: under a namespace profile the runs take the shim. */
  const char *ns = getenv("POWERCUT_NAMESPACE");
  memory = !(getenv("FUZZ_MEMORY") && *getenv("FUZZ_MEMORY") == '0') && (!ns || !*ns || !strcmp(ns, "none"));
  if (getenv("FUZZ_MAX_FILE") && *getenv("FUZZ_MAX_FILE")) max_file = strtoull(getenv("FUZZ_MAX_FILE"), NULL, 0);
  if (getenv("FUZZ_MAX_OPS") && *getenv("FUZZ_MAX_OPS")) max_ops = strtoull(getenv("FUZZ_MAX_OPS"), NULL, 0);
  if (max_ops > CC_MAX_OPS) max_ops = CC_MAX_OPS;
  atexit(cleanup);
  shim_off(); /* off between runs */
  /* The shim's model keeps two copies of the file and builds the crash image, the pager's
   * file grows by doubling: megabytes malloc'ed and freed per input, which glibc would hand
   * back to the kernel (trim, munmap) and fault in again, page by page, on the next input.
   * Kept instead: the process holds its peak (tens of MiB at most, with max_ops and max_file). */
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  /* Every template now, not at the first input of its page size: an input must take the same
   * path each time it runs (AFL++'s stability). */
  for (uint32_t ps = 1024; ps <= 16384; ps *= 2)
    for (unsigned kind = 0; kind < CREATE_KINDS; kind++)
      if (!((kind & CREATE_FORMAT3) && (kind & CREATE_UPGRADE))) template_for(ps, kind);
  if (memory && mf_warm()) {
    fprintf(stderr, "fuzz_ops: cannot set up the file in memory: %s\n", strerror(errno));
    abort();
  }
  /* under the shim, whose tables inputs cut in the create still use, then in memory */
  int in_memory = memory;
  memory = 0;
  warm_up();
  memory = in_memory;
  if (memory) warm_up();
}

/* Under afl-fuzz (libAFLDriver), before the fork server starts: the children inherit all this. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  setup();
  return 0;
}

/* Tracking on (the shim follows `file`, with the case's sector size, finding mapping stores
 * the `mmap` way, its cut going on or not) or off (every call passes straight through). The
 * shim lets only the process that claimed the file first (POWERCUT_OWNER) track it: this
 * one, even when it is a child forked after setup() ran a case under the shim (afl-fuzz's
 * fork server). */
static void shim(int on, const cc_case *c, uint64_t step, const pc_crash *crash, const char *mmap, int after_cut) {
  unsetenv("POWERCUT_OWNER");
  if (on) {
    char sector[16];
    snprintf(sector, sizeof sector, "%u", c->sector);
    setenv("POWERCUT_FILE", file, 1);
    setenv("POWERCUT_SECTOR", sector, 1);
    setenv("POWERCUT_MMAP", mmap, 1);
  } else {
    unsetenv("POWERCUT_FILE");
  }
  pc_crash none = {0};
  if (pc_shim_set_cut(step, crash ? crash : &none) != PC_OK || pc_shim_set_image_cb(on ? on_image : NULL, NULL) != PC_OK ||
      pc_shim_set_after_cut(after_cut) != PC_OK || pc_shim_reset() != PC_OK) {
    fprintf(stderr, "fuzz_ops: cannot set the shim up\n");
    abort();
  }
}

/* Between runs: every call passes straight through. */
static void shim_off(void) { shim(0, NULL, 0, NULL, NULL, PC_AFTER_CUT_FAIL); }

/* A run that disagrees with the model without any power cut is a finding by itself
 * (`crashcheck replay` reports it as "run"). */
static void run_ok(int rc, cc_run *run) {
  if (rc == CC_OK) return;
  fprintf(stderr, "fuzz_ops: run: the workload fails without any power cut: %s\n", run->error);
  abort();
}

/*
 * The fast run: the case, checked against the model as it goes, from a copy of a created file
 * unless the cut falls in the create, counting steps. From the copy, the file is held in memory
 * (memfile.c, unless FUZZ_MEMORY=0), which models the steps as the shim's lazy mode below does
 * and takes the image at the cut step; the run goes on as described next. Without a cut
 * (step 0) the shim stays off. Otherwise (a cut in the create, or FUZZ_MEMORY=0) the run with
 * a cut is under the shim:
 *  - POWERCUT_MMAP=lazy: no write tracking (no page faults, no mprotect); every mapping is
 *    compared with the model at the cut instead, which gives the image write tracking would
 *    (faults/README.md; FUZZ_SELFCHECK=1 compares the two);
 *  - the cut call goes on (PC_AFTER_CUT_CONTINUE): the image is kept (on_image), and the run
 *    continues to the end of the operation in flight, whose states the checker needs; the
 *    first step past it fails (EIO), the workload stops at its error.
 * Returns the runner's result; the cut, if any, set cut_seen.
 */

static int fast_run(const cc_case *c, uint64_t step, const pc_crash *crash, cc_run *run) {
  const tmpl *t = template_for(c->page_size, create_kind(c));
  int from_template = !step || step > t->steps;
  int in_memory = memory && from_template;
  cut_seen = 0;
  cut_garbage = GARBAGE_NONE;
  cur_op = cut_op = cut_count = 0;
  if (in_memory && mf_start(file, t->bytes, t->len, c->sector, step ? crash : NULL, took_image)) {
    fprintf(stderr, "fuzz_ops: cannot hold the file in memory: %s\n", strerror(errno));
    abort();
  }
  if (from_template && !in_memory) put_template(t);
  if (step && !in_memory) shim(1, c, from_template ? step - t->steps : step, crash, "lazy", PC_AFTER_CUT_CONTINUE);
  count_from((step_count){.on = 1, .fast = 1, .n = from_template ? t->steps : 0, .want = step,
                          .stop = step != 0, .capped = 1});
  int rc = from_template ? cc_run_case_on(c, file, run) : cc_run_case(c, file, run);
  steps.on = 0;
  if (step && !in_memory) shim_off();
  return rc;
}

/* The slow run (FUZZ_SELFCHECK=1): the cut the way `crashcheck replay` makes it, creating the
 * file, under write tracking, the cut call failing. Returns whether the cut happened; the
 * image is kept (on_image). */
static int slow_run(const cc_case *c, uint64_t step, const pc_crash *crash) {
  mf_stop();
  cut_seen = 0;
  cut_garbage = GARBAGE_NONE;
  cur_op = cut_op = cut_count = 0;
  shim(1, c, step, crash, "track", PC_AFTER_CUT_FAIL);
  count_from((step_count){.on = 1});
  cc_run run; /* fails at the cut, by design; the fast run checked the operations */
  cc_run_case_unchecked(c, file, false, &run);
  steps.on = 0;
  shim_off();
  cc_run_free(&run);
  return cut_seen;
}

static void internal(const char *what, uint64_t step, const char *spec) {
  fprintf(stderr, "fuzz_ops: internal: %s (cut at step %llu, %s)\n", what, (unsigned long long)step, spec);
  abort();
}

/* FUZZ_SELFCHECK=1, a case with fewer steps than its cut: the shim counts as many. */
static void check_no_cut(const cc_case *c, uint64_t total, uint64_t step, const char *spec, const pc_crash *crash) {
  mf_stop();
  shim(1, c, 0, crash, "track", PC_AFTER_CUT_FAIL);
  count_from((step_count){.on = 1});
  cc_run run;
  cc_run_case(c, file, &run);
  steps.on = 0;
  pc_stats st;
  pc_shim_stats(&st);
  shim_off();
  cc_run_free(&run);
  if (st.steps != total || steps.n != total) internal("the run under the shim has another number of steps", step, spec);
  if (step <= total) internal("the cut step is within the run", step, spec);
}

/* FUZZ_SELFCHECK=1, a cut: the fast run's image is the slow run's, byte for byte. */
static void check_fast_image(const cc_case *c, uint64_t step, const char *spec, const pc_crash *crash) {
  size_t len = crash_image.len;
  uint8_t *fast = malloc(len + 1);
  if (!fast) internal("no memory for a copy of the image", step, spec);
  memcpy(fast, crash_image.bytes, len);
  uint64_t op = cut_op;
  int judged = cut_garbage;
  if (!slow_run(c, step, crash) || cut_op != op) internal("the slow run cuts elsewhere", step, spec);
  if (cut_garbage != judged) internal("the slow run's garbage sector lies elsewhere", step, spec);
  if (cut_count != step) internal("the shim counts steps otherwise in the slow run", step, spec);
  int same = crash_image.len == len && !memcmp(fast, crash_image.bytes, len);
  free(fast);
  if (!same)
    internal("the image of the fast run (a copy of a created file, POWERCUT_MMAP=lazy, going on after the cut) differs "
             "from a creating run's under write tracking",
             step, spec);
}

/* FUZZ_R7=1: R7 without its second cut: the recovered file (the image, after the checker's
 * read-write open) must run crashcheck's follow-up workload and agree with the model. A case in
 * binary form has no follow-up, so `crashcheck replay` reproduces such a finding only from
 * the text form with an `again` line (any step: the follow-up first runs without a cut). */
static void follow_up(const cc_case *c, uint64_t step, const char *spec, size_t index, int kind) {
  static cc_case f;
  cc_follow_up(&f, c->page_size, c->sector);
  cc_run run;
  if (cc_run_case_on(&f, file, &run) != CC_OK) {
    fprintf(stderr,
            "fuzz_ops: R7 violated: power cut at step %llu (%s) in operation %zu (%s): expected the follow-up workload "
            "to run on the recovered file; found %s (reproduce: crashcheck show FILE >CASE, add the line "
            "\"again 1 tear none writeback none seed 0\", crashcheck replay CASE)\n",
            (unsigned long long)step, spec, index, index ? cc_op_name(kind) : "create", run.error);
    abort();
  }
  cc_run_free(&run);
}

/* The checker on the crash image, in memory or (mem 0) in the real file. */
static void check_image(int mem, const cc_case *c, const cc_state *before, const cc_state *after, int kind,
                        cc_verdict *v) {
  if (mem) {
    if (mf_start(file, crash_image.bytes, crash_image.len, c->sector, NULL, NULL)) {
      fprintf(stderr, "fuzz_ops: cannot hold the crash image in memory: %s\n", strerror(errno));
      abort();
    }
  } else {
    mf_stop();
    put_image();
  }
  /* No page-hash cache: each input is another image. */
  cc_check_image_flags(file, c->page_size, cc_create_flags(c), before, after, kind, NULL, v);
}

static int one_input(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  int rc = one_input(data, size);
  mf_stop(); /* between inputs, calls reach the real files */
  return rc;
}

static int one_input(const uint8_t *data, size_t size) {
  static cc_case c; /* 48 KiB of operations: not on the stack */
  /* Longer cases are skipped before decoding them (an operation is 3 bytes). */
  if (size >= CC_HEADER_SIZE + 3 * (max_ops + 1)) {
    if (verbose) fprintf(stderr, "fuzz_ops: skipped: more than %zu operations\n", max_ops);
    return 0;
  }
  cc_case_decode(data, size, &c);
  cur_case = &c;
  /* A garbage sector (bytes neither old nor new) is outside the default fault model (DESIGN.md:
   * optional, for drives without atomic sectors), but for what a 0.3 file promises: no garbage
   * sector in one of its metadata writes (the superblock, a root, a leaf, a directory copy)
   * loses the file or a committed operation (pager/FORMAT.md 3.2), which crashcheck explore
   * checks by default. So does fuzz_ops: a garbage tear of a case whose file is or may become
   * 0.3 runs, and is checked if its sector fell in such a block (judged at the cut:
   * took_image). Garbage over data the caller synced is lost in any format, and in a 0.2 file
   * garbage over page 0 and both metadata copies too (a garbage first sector of page 0 alone
   * is salvaged: pager/salvage.c); such inputs are skipped. FUZZ_GARBAGE=1 checks every
   * garbage tear anyway. */
  bool maybe3 = c.format3 || c.upgrade;
  if (c.sched.cut_step && c.sched.tear == CC_TEAR_GARBAGE && !garbage && !maybe3) {
    if (verbose) fprintf(stderr, "fuzz_ops: skipped: a garbage tear in a 0.2 file (FUZZ_GARBAGE=1 fuzzes them)\n");
    return 0;
  }

  char spec[128] = "none";
  uint64_t step = 0;
  pc_crash crash;
  if (c.sched.cut_step) {
    cc_cut_spec(&c.sched, spec, sizeof spec);
    if (pc_cut_parse(spec, &step, &crash) != PC_OK) {
      fprintf(stderr, "fuzz_ops: the schedule %s does not parse\n", spec);
      abort();
    }
  }

  /* One run: the model states, the operation in flight at the cut, and the crash image. A
   * run that disagrees with the model before that operation has ended is a finding by itself. */
  cc_run run;
  int rc = fast_run(&c, step, &crash, &run);
  if (steps.too_big) {
    if (verbose) fprintf(stderr, "fuzz_ops: skipped: the file grows past %llu bytes\n", (unsigned long long)max_file);
    cc_run_free(&run);
    return 0;
  }
  if (!steps.want_op) {
    /* No cut scheduled, or fewer steps than the cut (replay calls this clean too): the run
     * went to its end, and is the model check. */
    if (verbose && step) fprintf(stderr, "fuzz_ops: no cut: fewer than %llu steps\n", (unsigned long long)step);
    if (verbose && !step) fprintf(stderr, "fuzz_ops: no cut scheduled\n");
    if (cut_seen) internal("the shim cut a run shorter than the cut step", step, spec);
    run_ok(rc, &run);
    if (step && selfcheck) check_no_cut(&c, steps.n, step, spec, &crash);
    cc_run_free(&run);
    return 0;
  }
  size_t index = (size_t)steps.want_op - 1; /* the operation in flight, 0 for the create */
  if (index >= run.nstates) run_ok(rc == CC_OK ? CC_EINVAL : rc, &run);
  if (!cut_seen) internal("no cut under the shim", step, spec);
  if (cut_count != step || cut_op != steps.want_op) internal("the shim counts steps otherwise", step, spec);
  int in_memory = mf_active();
  if (selfcheck) check_fast_image(&c, step, spec, &crash);
  if (cut_garbage == GARBAGE_BEYOND && !garbage) {
    if (verbose)
      fprintf(stderr, "fuzz_ops: skipped: the garbage sector of the cut at step %llu is not in a 0.3 file's metadata "
              "(FUZZ_GARBAGE=1 checks it)\n", (unsigned long long)step);
    cc_run_free(&run);
    return 0;
  }

  /* The checker of crashcheck, on the states before and after the operation in flight. */
  const cc_state *before = index ? &run.states[index - 1] : NULL, *after = &run.states[index];
  int kind = index ? c.ops[index - 1].kind : CC_OP_KINDS;
  cc_verdict v;
  check_image(in_memory, &c, before, after, kind, &v);
  if (selfcheck && in_memory) {
    /* the checker's verdict on the in-memory file is the real file's */
    cc_verdict w;
    check_image(0, &c, before, after, kind, &w);
    if (w.nviolations != v.nviolations || (v.nviolations && strcmp(w.v[0].invariant, v.v[0].invariant)) ||
        w.reclaimed != v.reclaimed)
      internal("the checker's verdict on the file held in memory differs from its verdict on the real file", step, spec);
  }
  if (verbose)
    fprintf(stderr, "fuzz_ops: cut at step %llu (%s) in operation %zu (%s): %u violations, %llu pages reclaimed%s (%s)\n",
            (unsigned long long)step, spec, index, index ? cc_op_name(kind) : "create", v.nviolations,
            (unsigned long long)v.reclaimed, cut_garbage == GARBAGE_PROMISED ? ", garbage in a 0.3 metadata block" : "",
            in_memory ? "file in memory" : "real file");
  if (v.nviolations) {
    fprintf(stderr, "fuzz_ops: %s violated: power cut at step %llu (%s) in operation %zu (%s): expected %s; found %s\n",
            v.v[0].invariant, (unsigned long long)step, spec, index, index ? cc_op_name(kind) : "create",
            v.v[0].expected, v.v[0].found);
    abort();
  }
  cc_run_free(&run);
  if (r7) follow_up(&c, step, spec, index, kind);
  return 0;
}
