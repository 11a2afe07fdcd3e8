/* test_faults.c: fails every msync, fallocate, ftruncate, mremap and malloc that each mutating
 * call makes, one at a time, and checks the error contract of mappedpages.h after each. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fiu-control.h>
#include <fiu.h>

#include "mappedpages.h"
#include "support.h"

/* 1 KiB pages keep every file small and make a directory block fill up after 33 entries. */
#define PS 1024u
#define DIR_CAP 33u
#define MAXS 512 /* more ids than any fixture holds */

/* ---- soft findings ---------------------------------------------------------
 * A broken contract is reported and counted rather than aborting the test, so one run
 * lists every injection point that misbehaves; each test asserts the count is 0 at the end. */

static int failures, repeats;
static char where[256];

/* The same finding at many injection points is one bug: print it once (with the first
 * place it showed), count the rest. MP_TEST_EVERY_FAILURE=1 prints every one. */
static char seen_msgs[64][160];
static int nseen;

__attribute__((format(printf, 1, 2))) static void finding(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  failures++;
  for (int i = 0; !getenv("MP_TEST_EVERY_FAILURE") && i < nseen; i++)
    if (strncmp(seen_msgs[i], msg, sizeof seen_msgs[i] - 1) == 0) {
      repeats++;
      return;
    }
  if (nseen < 64) {
    memcpy(seen_msgs[nseen], msg, sizeof seen_msgs[0] - 1);
    seen_msgs[nseen++][sizeof seen_msgs[0] - 1] = 0;
  }
  print_message("FAIL [%s]: %s\n", where, msg);
}

#define EXPECT(cond, ...)      \
  do {                         \
    if (!(cond)) finding(__VA_ARGS__); \
  } while (0)

static void findings_reset(void) { failures = repeats = nseen = 0; }

static void findings_done(void) {
  if (repeats) print_message("(%d more failures repeat the findings above at other injection points)\n", repeats);
  assert_int_equal(failures, 0);
}

static const char *code_name(int rc) {
  static const char *const names[] = {"MP_OK",     "MP_EINVAL",   "MP_ENOMEM",   "MP_EIO",
                                      "MP_EEXIST", "MP_ENOENT",   "MP_ECORRUPT", "MP_EVERSION",
                                      "MP_EFULL",  "MP_ENOSPC",   "MP_ERDONLY",  "MP_ENOTALLOC",
                                      "MP_EBUSY",  "MP_ENOTSTAGED", "MP_EINCOMPLETE", "MP_EPOISONED",
                                      "MP_EACCES"};
  return rc <= 0 && rc >= -16 ? names[-rc] : "?";
}

/* ---- fault points ------------------------------------------------------------
 * Every point is enabled with one external callback that counts its calls, so a
 * reference run learns how many calls an operation makes, and a faulty run fails
 * exactly the N-th (or, "sticky", the N-th and every later one: a disk that died). */

enum { F_MSYNC, F_FALLOCATE, F_FTRUNCATE, F_MREMAP, F_MALLOC, F_POINTS };
static const char *const point_name[F_POINTS] = {"pager/msync", "pager/fallocate", "pager/ftruncate",
                                                 "pager/mremap", "pager/malloc"};

typedef struct fault {
  int point;
  int err;
  bool sticky;
  const char *label;
} fault;

static const fault faults[] = {
    {F_MSYNC, EIO, false, "msync EIO once"},
    {F_MSYNC, EIO, true, "msync EIO from then on"},
    {F_FALLOCATE, ENOSPC, false, "fallocate ENOSPC"},
    /* Reached only where fallocate(2) is unsupported; counted, so covered there. */
    {F_FTRUNCATE, ENOSPC, false, "ftruncate ENOSPC"},
    {F_MREMAP, ENOMEM, false, "mremap ENOMEM"},
    {F_MALLOC, ENOMEM, false, "malloc ENOMEM"},
};
#define NFAULTS (sizeof faults / sizeof faults[0])

static int calls[F_POINTS];
static int target_point = -1, target_n, fired;
static bool target_sticky;

static int fault_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)failnum;
  (void)failinfo;
  (void)flags;
  for (int i = 0; i < F_POINTS; i++) {
    if (strcmp(name, point_name[i]) != 0) continue;
    int n = ++calls[i];
    if (i != target_point || !(n == target_n || (target_sticky && n > target_n))) return 0;
    fired++;
    return 1;
  }
  return 0;
}

/* f == NULL: count only. */
static void arm(const fault *f, int n) {
  memset(calls, 0, sizeof calls);
  fired = 0;
  target_point = f ? f->point : -1;
  target_n = n;
  target_sticky = f && f->sticky;
  for (int i = 0; i < F_POINTS; i++) {
    void *info = (void *)(intptr_t)(f && f->point == i ? f->err : EIO);
    assert_int_equal(fiu_enable_external(point_name[i], 1, info, 0, fault_cb), 0);
  }
}

static void disarm(void) {
  for (int i = 0; i < F_POINTS; i++) fiu_disable(point_name[i]);
  target_point = -1;
}

static int fault_code(const fault *f) {
  switch (f->point) {
    case F_MSYNC: return MP_EIO;
    case F_FALLOCATE:
    case F_FTRUNCATE: return MP_ENOSPC;
    default: return MP_ENOMEM;
  }
}

/* ---- observable state --------------------------------------------------------
 * Everything the API shows: counts, both id sets, and the content of every page in
 * them (a failed call must not touch data either). */

typedef struct state {
  uint64_t pages, free;
  size_t nreg, nprot;
  uint64_t reg[MAXS], prot[MAXS];
  uint32_t reg_crc[MAXS], prot_crc[MAXS];
} state;

static void snap(mp_pager *p, state *s) {
  memset(s, 0, sizeof *s);
  size_t ps = mp_page_size(p);
  s->pages = mp_page_count(p);
  s->free = mp_free_count(p);
  for (uint64_t id = 0; s->nreg < MAXS && mp_next_regular(p, id, &id) == MP_OK; id++) {
    void *d;
    s->reg[s->nreg] = id;
    s->reg_crc[s->nreg++] = mp_page(p, id, &d) == MP_OK ? t_crc(d, ps) : 0;
  }
  for (uint64_t id = 0; s->nprot < MAXS && mp_next_protected(p, id, &id) == MP_OK; id++) {
    const void *d;
    int rc = mp_protected_read(p, id, &d);
    s->prot[s->nprot] = id;
    s->prot_crc[s->nprot++] = rc == MP_OK ? t_crc(d, ps) : (uint32_t)rc; /* a read error is a difference */
  }
}

static uint64_t block_slack; /* pages an empty directory block may take; see same() */

/* Describes the first difference into why; true if there is none. */
static bool same(const state *a, const state *b, char *why, size_t len) {
  if (a->pages != b->pages) {
    snprintf(why, len, "page count %llu vs %llu", (unsigned long long)a->pages, (unsigned long long)b->pages);
    return false;
  }
  /* A protected alloc that fails after appending a directory block keeps the empty
   * block as internal capacity (mappedpages.h): two pages fewer free, nothing else. */
  if (a->free != b->free && a->free + block_slack != b->free) {
    snprintf(why, len, "free count %llu vs %llu", (unsigned long long)a->free, (unsigned long long)b->free);
    return false;
  }
  if (a->nreg != b->nreg || a->nprot != b->nprot) {
    snprintf(why, len, "%zu regular + %zu protected vs %zu + %zu", a->nreg, a->nprot, b->nreg, b->nprot);
    return false;
  }
  for (size_t i = 0; i < a->nreg; i++)
    if (a->reg[i] != b->reg[i] || a->reg_crc[i] != b->reg_crc[i]) {
      snprintf(why, len, "regular #%zu: page %llu crc %08x vs page %llu crc %08x", i, (unsigned long long)a->reg[i],
               a->reg_crc[i], (unsigned long long)b->reg[i], b->reg_crc[i]);
      return false;
    }
  for (size_t i = 0; i < a->nprot; i++)
    if (a->prot[i] != b->prot[i] || a->prot_crc[i] != b->prot_crc[i]) {
      snprintf(why, len, "protected #%zu: id %llu crc %08x vs id %llu crc %08x", i, (unsigned long long)a->prot[i],
               a->prot_crc[i], (unsigned long long)b->prot[i], b->prot_crc[i]);
      return false;
    }
  return true;
}

static void report_finding(void *arg, const char *finding) {
  (void)arg;
  print_message("  mp_check [%s]: %s\n", where, finding);
}

static unsigned check(mp_pager *p) {
  unsigned n = 0;
  int rc = mp_check(p, report_finding, NULL, &n);
  EXPECT(rc == MP_OK, "mp_check returned %s", code_name(rc));
  return n;
}

/* ---- fixtures ----------------------------------------------------------------
 * Three files, built once: each run starts from a byte copy, so every run (reference
 * and faulty) sees the same ids and the same number of calls. */

enum { T_BASIC, T_FULL, T_DIRFULL, T_COUNT };
static char tmpl_path[T_COUNT][768], work_path[768], create_path[768];
static uint8_t *tmpl_img[T_COUNT];
static size_t tmpl_len[T_COUNT];

static void fill_page(mp_pager *p, uint64_t id, unsigned seed) {
  void *d;
  assert_int_equal(mp_page(p, id, &d), MP_OK);
  uint8_t *b = d;
  for (size_t i = 0; i < PS; i++) b[i] = (uint8_t)(seed * 31 + i * 7 + id);
}

/* 4 regular pages with data (2 holes among them), 3 protected pages with data in one
 * directory block: 32 pages, 15 free. */
static void build_basic(mp_pager *p) {
  uint64_t r[6];
  assert_int_equal(mp_alloc_bulk(p, 6, r), MP_OK);
  for (unsigned i = 0; i < 6; i++) fill_page(p, r[i], i);
  assert_int_equal(mp_sync(p), MP_OK);
  for (unsigned i = 0; i < 3; i++) {
    uint64_t id;
    void *d;
    assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
    assert_int_equal(mp_protected_begin(p, id, &d), MP_OK);
    memset(d, 0xA0 + (int)i, PS);
    assert_int_equal(mp_protected_commit(p, id), MP_OK);
  }
  uint64_t holes[2] = {r[1], r[3]};
  assert_int_equal(mp_free_bulk(p, 2, holes), MP_OK);
}

/* No free page in 64: the next alloc doubles the file and crosses a 64-page word, so
 * it also reallocates the in-memory bitmaps (more malloc calls to fail). */
static void build_full(mp_pager *p) {
  build_basic(p);
  uint64_t n = mp_free_count(p) + (64 - mp_page_count(p)), ids[64];
  assert_true(n <= 64);
  assert_int_equal(mp_alloc_bulk(p, n, ids), MP_OK);
  assert_int_equal(mp_page_count(p), 64);
  assert_int_equal(mp_free_count(p), 0);
}

/* The first directory block full (33 entries): the next protected alloc appends a block. */
static void build_dirfull(mp_pager *p) {
  build_basic(p);
  for (unsigned i = 3; i < DIR_CAP; i++) {
    uint64_t id;
    assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
  }
  state s;
  snap(p, &s);
  assert_int_equal(s.nprot, DIR_CAP);
  assert_int_equal(s.prot[DIR_CAP - 1], DIR_CAP - 1);
}

static void (*const builders[T_COUNT])(mp_pager *) = {build_basic, build_full, build_dirfull};

static void setup_paths(void) {
  static bool done;
  if (done) return;
  /* msync on tmpfs is ~100x cheaper than on a disk; an explicit TMPDIR still wins. */
  struct stat st;
  if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)) setenv("TMPDIR", "/dev/shm", 0);
  static const char *const names[T_COUNT] = {"basic.mp", "full.mp", "dirfull.mp"};
  for (int t = 0; t < T_COUNT; t++) snprintf(tmpl_path[t], sizeof tmpl_path[t], "%s", t_path(t, names[t]));
  snprintf(work_path, sizeof work_path, "%s", t_path(4, "work.mp"));
  snprintf(create_path, sizeof create_path, "%s", t_path(5, "create.mp"));
  done = true;
}

static void need_template(int t) {
  setup_paths();
  if (tmpl_img[t]) return;
  mp_pager *p;
  assert_int_equal(mp_create(tmpl_path[t], PS, &p), MP_OK);
  builders[t](p);
  unsigned n = 1;
  assert_int_equal(mp_check(p, report_finding, NULL, &n), MP_OK);
  assert_int_equal(n, 0);
  assert_int_equal(mp_close(p), MP_OK);
  tmpl_img[t] = t_read_file(tmpl_path[t], &tmpl_len[t]);
  assert_non_null(tmpl_img[t]);
}

static mp_pager *open_copy(int t) {
  /* A new inode each time: a handle that a crashed test left open keeps only its lock. */
  unlink(work_path);
  assert_int_equal(t_write_file(work_path, tmpl_img[t], tmpl_len[t]), 0);
  mp_pager *p = NULL;
  assert_int_equal(mp_open(work_path, 0, &p), MP_OK);
  return p;
}

/* ---- operations on an open handle ---------------------------------------- */

typedef struct ctx {
  uint64_t reg[3]; /* regular pages of the fixture, in id order */
  uint64_t prot;   /* its first protected page */
  uint64_t out[4];
} ctx;

typedef struct scenario {
  const char *name;
  int tmpl;
  void (*prepare)(mp_pager *p, ctx *c); /* runs before the faults are armed */
  int (*op)(mp_pager *p, ctx *c);       /* the call under test, also the retry */
  /* The call may return MP_OK under a fault: protected.c treats a failure after the
   * commit point (the final mirror, the reclaim) as pending work for the next call. */
  bool ok_after_commit;
  /* Free pages an empty directory block left by a failed call may take (see same()). */
  uint64_t block_slack;
} scenario;

static int op_alloc(mp_pager *p, ctx *c) { return mp_alloc(p, &c->out[0]); }
static int op_free(mp_pager *p, ctx *c) { return mp_free(p, c->reg[0]); }
static int op_alloc_bulk(mp_pager *p, ctx *c) { return mp_alloc_bulk(p, 3, c->out); }
static int op_free_bulk(mp_pager *p, ctx *c) { return mp_free_bulk(p, 3, c->reg); }
static int op_palloc(mp_pager *p, ctx *c) { return mp_protected_alloc(p, &c->out[0]); }
static int op_pfree(mp_pager *p, ctx *c) { return mp_protected_free(p, c->prot); }
static int op_pcommit(mp_pager *p, ctx *c) { return mp_protected_commit(p, c->prot); }
static int op_sync_page(mp_pager *p, ctx *c) { return mp_sync_page(p, c->reg[0]); }
static int op_sync(mp_pager *p, ctx *c) {
  (void)c;
  return mp_sync(p);
}

static void prep_pcommit(mp_pager *p, ctx *c) {
  void *d;
  assert_int_equal(mp_protected_begin(p, c->prot, &d), MP_OK);
  memset(d, 0xC5, PS);
}

/* New data in a regular page: what the sync is to make durable. */
static void prep_dirty(mp_pager *p, ctx *c) { fill_page(p, c->reg[0], 99); }

static void fill_ctx(mp_pager *p, ctx *c) {
  memset(c, 0, sizeof *c);
  uint64_t id = 0;
  for (int i = 0; i < 3; i++, id++) assert_int_equal(mp_next_regular(p, id, &id), MP_OK), c->reg[i] = id;
  assert_int_equal(mp_next_protected(p, 0, &c->prot), MP_OK);
}

/* A poisoned handle must refuse every call that could write. */
static void expect_poisoned(mp_pager *p, const ctx *c) {
  uint64_t id, ids[2];
  void *d;
  int rc;
  EXPECT((rc = mp_alloc(p, &id)) == MP_EPOISONED, "poisoned: mp_alloc returned %s", code_name(rc));
  EXPECT((rc = mp_alloc_bulk(p, 2, ids)) == MP_EPOISONED, "poisoned: mp_alloc_bulk returned %s", code_name(rc));
  EXPECT((rc = mp_free(p, c->reg[1])) == MP_EPOISONED, "poisoned: mp_free returned %s", code_name(rc));
  EXPECT((rc = mp_free_bulk(p, 1, &c->reg[2])) == MP_EPOISONED, "poisoned: mp_free_bulk returned %s",
         code_name(rc));
  EXPECT((rc = mp_protected_alloc(p, &id)) == MP_EPOISONED, "poisoned: mp_protected_alloc returned %s",
         code_name(rc));
  EXPECT((rc = mp_protected_begin(p, c->prot, &d)) == MP_EPOISONED, "poisoned: mp_protected_begin returned %s",
         code_name(rc));
  EXPECT((rc = mp_protected_commit(p, c->prot)) == MP_EPOISONED, "poisoned: mp_protected_commit returned %s",
         code_name(rc));
  EXPECT((rc = mp_protected_free(p, c->prot)) == MP_EPOISONED, "poisoned: mp_protected_free returned %s",
         code_name(rc));
  /* Syncing data would write page 0 too, whichever state it holds in memory. */
  EXPECT((rc = mp_sync(p)) == MP_EPOISONED, "poisoned: mp_sync returned %s", code_name(rc));
  EXPECT((rc = mp_sync_page(p, c->reg[0])) == MP_EPOISONED, "poisoned: mp_sync_page returned %s", code_name(rc));
}

static state before, after, now;

/* Closes p, reopens the file read-write and checks it: structure sound, nothing leaked,
 * and its state one of the allowed ones (b may be NULL). Returns the reopened handle.
 * hostile: first fails the k-th msync, then the k-th malloc, of successive opens (k = 1, 2,
 * ...), which is recovery or loading failing part-way; each must fail cleanly and leave a
 * file that the next open still recovers to the same state. (Every malloc comes before
 * recovery, so the malloc pass loses nothing by running on the recovered file.) */
static int recoveries_failed; /* opens failed part-way, per scenario */

static mp_pager *reopen_expect(mp_pager *p, const state *a, const state *b, const char *what, bool hostile) {
  char why[256];
  int rc = mp_close(p);
  EXPECT(rc == MP_OK, "mp_close returned %s", code_name(rc));
  mp_pager *q = NULL;
  for (int pass = 0; hostile && pass < 2; pass++) {
    const fault *f = &faults[pass == 0 ? 0 : NFAULTS - 1]; /* msync EIO once, malloc ENOMEM */
    for (int k = 1; k < 100; k++) {
      q = NULL;
      arm(f, k);
      rc = mp_open(work_path, 0, &q);
      bool hit = fired > 0;
      disarm();
      if (!hit) {
        EXPECT(rc == MP_OK, "reopen (%s) returned %s", what, code_name(rc));
        mp_close(q);
        q = NULL;
        break;
      }
      recoveries_failed++;
      EXPECT(rc == fault_code(f) && q == NULL, "reopen (%s) with %s at call %d returned %s%s", what, f->label, k,
             code_name(rc), q ? " and a handle" : "");
      if (q) mp_close(q);
      q = NULL;
    }
  }
  rc = mp_open(work_path, 0, &q);
  EXPECT(rc == MP_OK, "reopen (%s) returned %s", what, code_name(rc));
  if (rc != MP_OK) return NULL;
  unsigned findings = check(q);
  EXPECT(findings == 0, "reopen (%s): mp_check found %u problems", what, findings);
  EXPECT(mp_leaked_count(q) == 0, "reopen (%s): %llu leaked pages after a read-write open", what,
         (unsigned long long)mp_leaked_count(q));
  snap(q, &now);
  char why_b[256] = "";
  bool ok = same(&now, a, why, sizeof why) || (b && same(&now, b, why_b, sizeof why_b));
  EXPECT(ok, "reopen (%s): the file holds neither allowed state: %s%s%s", what, why, b ? "; other: " : "", why_b);
  return q;
}

/* Stages and aborts a write to every protected page: it must work on each. Done in a
 * child first, so a crash (bookkeeping the failure left broken) is a finding, not the end
 * of the test; the child leaves with _exit so the scratch directory survives it. */
static bool crash_reported;

static void expect_protected_usable(mp_pager *p, const state *s, uint64_t busy) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Die of the signal: CMocka's handler would carry on with the next test in here. */
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
    /* One sanitizer report of a crash is enough; later children stay quiet. */
    if (crash_reported) {
      int null = open("/dev/null", O_WRONLY);
      if (null >= 0) dup2(null, 2);
    }
    for (size_t i = 0; i < s->nprot; i++) {
      void *d;
      if (mp_protected_begin(p, s->prot[i], &d) == MP_OK) mp_protected_abort(p, s->prot[i]);
    }
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    crash_reported = true;
    bool sig = WIFSIGNALED(status);
    finding("mp_protected_begin/abort over the protected pages crashed (%s %d)", sig ? "signal" : "exit status",
            sig ? WTERMSIG(status) : WEXITSTATUS(status));
    return;
  }
  for (size_t i = 0; i < s->nprot; i++) {
    void *d;
    int r = mp_protected_begin(p, s->prot[i], &d);
    EXPECT(r == MP_OK || (r == MP_EBUSY && s->prot[i] == busy), "mp_protected_begin(%llu) returned %s",
           (unsigned long long)s->prot[i], code_name(r));
    if (r == MP_OK) mp_protected_abort(p, s->prot[i]);
  }
}

/* One run: a fresh copy; the call under fault f1 at its n1-th call; if f2, the next call
 * (the same call again, or, if the first already returned MP_OK, a zero-length free that
 * only runs the pending work) under fault f2 at its n2-th call, which drives the paths that
 * finish or undo what the first failure left (mp__settle). Then either:
 *  - retry: the in-memory state must be the last one the API reported and mp_check clean;
 *    the call again without faults succeeds and the reopened file holds the after-state;
 *  - reopen: closed as it is and reopened (recovery): the file holds the before-state if
 *    the call failed, the after-state if it returned MP_OK, either one if poisoned.
 * *poisoned: found by retry runs, used by reopen runs of the same injection.
 * Returns false when the last fault was not reached (the loop over n is done). */
static bool run_sequence(const scenario *s, const fault *f1, int n1, const fault *f2, int n2, bool reopen,
                         bool *poisoned) {
  char why[256];
  ctx c;
  int rc, msync_failures = 0;
  if (f2)
    snprintf(where, sizeof where, "%s: %s at call %d, then %s at call %d of the retry, %s", s->name, f1->label, n1,
             f2->label, n2, reopen ? "reopened" : "retried");
  else
    snprintf(where, sizeof where, "%s: %s at call %d, %s", s->name, f1->label, n1, reopen ? "reopened" : "retried");

  mp_pager *p = open_copy(s->tmpl);
  fill_ctx(p, &c);
  if (s->prepare) s->prepare(p, &c);
  arm(f1, n1);
  rc = s->op(p, &c);
  bool hit = fired > 0;
  if (f1->point == F_MSYNC) msync_failures += fired;
  disarm();
  if (!hit) {
    /* Past the last call: the fault never fired, so the call must have just worked. */
    EXPECT(rc == MP_OK, "no fault fired but the call returned %s", code_name(rc));
    mp_close(p);
    return false;
  }
  EXPECT(rc == fault_code(f1) || (rc == MP_OK && s->ok_after_commit), "the call returned %s, expected %s",
         code_name(rc), code_name(fault_code(f1)));
  bool done = rc == MP_OK;

  if (f2) {
    bool was_done = done;
    arm(f2, n2);
    int rc2 = done ? mp_free_bulk(p, 0, NULL) : s->op(p, &c);
    hit = fired > 0;
    if (f2->point == F_MSYNC) msync_failures += fired;
    disarm();
    if (rc2 == MP_EPOISONED || !hit) {
      /* Poisoned by the first fault (covered by its own run), or the retry does not reach
       * an n2-th call. */
      EXPECT(rc2 == MP_EPOISONED || rc2 == MP_OK, "no fault fired but the retry returned %s", code_name(rc2));
      mp_close(p);
      return false;
    }
    EXPECT(rc2 == fault_code(f2) || (rc2 == MP_OK && !was_done && s->ok_after_commit),
           "the retry returned %s, expected %s", code_name(rc2), code_name(fault_code(f2)));
    if (!was_done && rc2 == MP_OK) done = true;
  }

  if (reopen) {
    /* Poisoned after an error: either side of the commit point. After MP_OK: nothing may
     * go back, poisoned or not. */
    p = reopen_expect(p, done ? &after : &before, *poisoned && !done ? &after : NULL,
                      done ? "the API reported the call done" : "the call failed", true);
    if (p && !done && same(&now, &before, why, sizeof why)) {
      /* The recovered file keeps working: the call succeeds on it now. */
      if (s->prepare) s->prepare(p, &c);
      int again = s->op(p, &c);
      EXPECT(again == MP_OK, "the call on the reopened file returned %s", code_name(again));
      snap(p, &now);
      EXPECT(same(&now, &after, why, sizeof why), "the call on the reopened file gave another state: %s", why);
    }
    mp_close(p);
    return true;
  }

  /* Read-only looks first: the poison probe below runs the pending work. */
  snap(p, &now);
  unsigned findings = check(p);
  uint64_t leaked = mp_leaked_count(p);
  /* A zero-length free changes nothing itself but refuses a poisoned handle. */
  int probe = mp_free_bulk(p, 0, NULL);
  *poisoned = probe == MP_EPOISONED;
  if (*poisoned) {
    /* Only a failed revert of a commit point (or of an append intent) poisons. */
    EXPECT(msync_failures > 0, "poisoned without any msync failure");
    expect_poisoned(p, &c);
    /* The durable state is uncertain: the file may hold either side of the commit point
     * that failed, unless the call had already returned MP_OK. */
    p = reopen_expect(p, done ? &after : &before, done ? NULL : &after, "poisoned", true);
    mp_close(p);
    return true;
  }
  EXPECT(same(&now, done ? &after : &before, why, sizeof why),
         "in-memory state after the failure is not the %s-state: %s", done ? "after" : "before", why);
  EXPECT(findings == 0, "mp_check found %u problems on the failed handle", findings);
  /* Pages a failed call left for reclaim count as free until the next call frees them. */
  (void)leaked;
  EXPECT(probe == MP_OK, "the pending work of the next call failed with %s", code_name(probe));
  EXPECT(mp_leaked_count(p) == 0, "mp_leaked_count is %llu after the next call", (unsigned long long)mp_leaked_count(p));
  if (!done) {
    int again = s->op(p, &c);
    EXPECT(again == MP_OK, "the call again without the fault returned %s", code_name(again));
  }
  snap(p, &now);
  EXPECT(same(&now, &after, why, sizeof why), "state after the retry differs from the reference: %s", why);
  findings = check(p);
  EXPECT(findings == 0, "mp_check found %u problems after the retry", findings);
  /* Every protected page still takes a write (its in-memory bookkeeping is whole). */
  expect_protected_usable(p, &now, s->prepare == prep_pcommit ? c.prot : UINT64_MAX);
  /* The API reports the after-state: the file must hold exactly that. */
  p = reopen_expect(p, &after, NULL, "after the retry", false);
  mp_close(p);
  return true;
}

static void run_scenario(const scenario *s) {
  ctx c;
  findings_reset();
  recoveries_failed = 0;
  need_template(s->tmpl);

  /* Reference run: the before- and after-states, and how often each point is reached. */
  snprintf(where, sizeof where, "%s: reference", s->name);
  mp_pager *p = open_copy(s->tmpl);
  fill_ctx(p, &c);
  if (s->prepare) s->prepare(p, &c);
  snap(p, &before);
  arm(NULL, 0);
  int rc = s->op(p, &c);
  int ref[F_POINTS];
  memcpy(ref, calls, sizeof ref);
  disarm();
  assert_int_equal(rc, MP_OK);
  snap(p, &after);
  assert_int_equal(check(p), 0);
  p = reopen_expect(p, &after, NULL, "reference", false);
  mp_close(p);
  assert_int_equal(failures, 0);

  /* Every single fault first, then each followed by a second fault in the retry. */
  struct { const fault *f; int n; } hits[256];
  int runs = 0, runs2 = 0;
  for (size_t k = 0; k < NFAULTS; k++) {
    const fault *f1 = &faults[k];
    int n = 1;
    for (;; n++) {
      bool poisoned = false;
      assert_true(n < 100); /* no operation makes that many calls */
      if (!run_sequence(s, f1, n, NULL, 0, false, &poisoned)) break;
      run_sequence(s, f1, n, NULL, 0, true, &poisoned);
      assert_true(runs < 256);
      hits[runs].f = f1;
      hits[runs++].n = n;
    }
    snprintf(where, sizeof where, "%s: %s", s->name, f1->label);
    /* The n-th call exists exactly when the reference made n calls. */
    EXPECT(n - 1 == ref[f1->point], "faults fired for %d calls of %s, the reference made %d", n - 1,
           point_name[f1->point], ref[f1->point]);
  }
  for (int i = 0; i < runs; i++)
    for (size_t k2 = 0; k2 < NFAULTS; k2++)
      for (int n2 = 1;; n2++) {
        bool poisoned = false;
        assert_true(n2 < 100);
        if (!run_sequence(s, hits[i].f, hits[i].n, &faults[k2], n2, false, &poisoned)) break;
        run_sequence(s, hits[i].f, hits[i].n, &faults[k2], n2, true, &poisoned);
        runs2++;
      }
  print_message("%s: %d injected failures, %d more in retries, %d failed recoveries (calls: msync %d, "
                "fallocate %d, ftruncate %d, mremap %d, malloc %d)\n",
                s->name, runs, runs2, recoveries_failed, ref[F_MSYNC], ref[F_FALLOCATE], ref[F_FTRUNCATE],
                ref[F_MREMAP], ref[F_MALLOC]);
  findings_done();
}

/* ---- the operations ------------------------------------------------------ */

/* The operations under test: every fault point, every N-th call, for each. */
static const scenario scenarios[] = {
    {"mp_alloc", T_BASIC, NULL, op_alloc, false, 0},
    {"mp_free", T_BASIC, NULL, op_free, false, 0},
    {"mp_alloc_bulk", T_BASIC, NULL, op_alloc_bulk, false, 0},
    {"mp_free_bulk", T_BASIC, NULL, op_free_bulk, false, 0},
    {"mp_alloc growing the file", T_FULL, NULL, op_alloc, false, 0},
    {"mp_protected_alloc", T_BASIC, NULL, op_palloc, true, 0},
    {"mp_protected_alloc in a new block", T_DIRFULL, NULL, op_palloc, true, 2},
    {"mp_protected_free", T_BASIC, NULL, op_pfree, true, 0},
    {"mp_protected_commit", T_BASIC, prep_pcommit, op_pcommit, false, 0},
    {"mp_sync_page", T_BASIC, prep_dirty, op_sync_page, false, 0},
    {"mp_sync", T_BASIC, prep_dirty, op_sync, false, 0},
};

static void test_scenario(void **st) {
  const scenario *s = *st;
  block_slack = s->block_slack;
  run_scenario(s);
  block_slack = 0;
}

/* ---- creating and opening ---------------------------------------------------
 * Before the call there is no file; a failed call may leave nothing, or a leftover that
 * mp_create and MP_CREATE replace (mp_open says MP_EINCOMPLETE), or, only when the
 * superblock's msync (create's commit point) failed, the complete empty file. */

typedef int (*create_fn)(mp_pager **out);
static int do_create(mp_pager **out) { return mp_create(create_path, PS, out); }
static int do_open_create(mp_pager **out) { return mp_open(create_path, MP_CREATE, out); }

static bool run_create_fault(const char *name, create_fn fn, const fault *f, int n, int ref_msyncs) {
  char why[256];
  snprintf(where, sizeof where, "%s: %s, call %d", name, f->label, n);
  unlink(create_path);
  mp_pager *p = NULL;
  arm(f, n);
  int rc = fn(&p);
  int hit = fired;
  disarm();
  if (!hit) {
    EXPECT(rc == MP_OK, "no fault fired but the call returned %s", code_name(rc));
    mp_close(p);
    return false;
  }
  EXPECT(rc == fault_code(f), "returned %s, expected %s", code_name(rc), code_name(fault_code(f)));
  EXPECT(p == NULL, "failed but handed out a handle");
  if (rc == MP_OK || p) {
    mp_close(p);
    p = NULL;
  }

  /* What did the failure leave? Looked at read-only, which repairs nothing. */
  bool commit_point = f->point == F_MSYNC && (n == ref_msyncs || (f->sticky && n <= ref_msyncs));
  mp_pager *q = NULL;
  int seen = mp_open(create_path, MP_RDONLY, &q);
  if (seen == MP_OK) {
    EXPECT(commit_point, "the failed call left a complete file (only a failed superblock msync may)");
    snap(q, &now);
    EXPECT(same(&now, &after, why, sizeof why), "the file left behind is not the new empty file: %s", why);
    mp_close(q);
  } else {
    EXPECT(seen == MP_ENOENT || seen == MP_EINCOMPLETE,
           "the file left behind opens with %s, expected nothing or an interrupted create", code_name(seen));
  }

  /* The same call again, without the fault. */
  int again = fn(&p);
  EXPECT(again == MP_OK, "the retry without the fault returned %s", code_name(again));
  if (again == MP_OK) {
    snap(p, &now);
    EXPECT(same(&now, &after, why, sizeof why), "the retry made another state: %s", why);
    unsigned findings = check(p);
    EXPECT(findings == 0, "mp_check found %u problems after the retry", findings);
    mp_close(p);
    p = NULL;
    int rc3 = mp_open(create_path, 0, &p);
    EXPECT(rc3 == MP_OK, "reopen returned %s", code_name(rc3));
    if (rc3 == MP_OK) {
      snap(p, &now);
      EXPECT(same(&now, &after, why, sizeof why), "reopened state differs: %s", why);
      findings = check(p);
      EXPECT(findings == 0, "mp_check found %u problems after reopen", findings);
      EXPECT(mp_leaked_count(p) == 0, "%llu leaked pages after reopen", (unsigned long long)mp_leaked_count(p));
      mp_close(p);
    }
  }
  return true;
}

static void run_create_scenario(const char *name, create_fn fn) {
  findings_reset();
  setup_paths();
  snprintf(where, sizeof where, "%s: reference", name);
  unlink(create_path);
  mp_pager *p = NULL;
  arm(NULL, 0);
  int rc = fn(&p);
  int ref[F_POINTS];
  memcpy(ref, calls, sizeof ref);
  disarm();
  assert_int_equal(rc, MP_OK);
  snap(p, &after);
  assert_int_equal(check(p), 0);
  mp_close(p);

  int runs = 0;
  for (size_t k = 0; k < NFAULTS; k++)
    for (int n = 1; run_create_fault(name, fn, &faults[k], n, ref[F_MSYNC]); n++) {
      runs++;
      assert_true(n < 100);
    }
  print_message("%s: %d injected failures (msync %d, fallocate %d, ftruncate %d, mremap %d, malloc %d calls)\n",
                name, runs, ref[F_MSYNC], ref[F_FALLOCATE], ref[F_FTRUNCATE], ref[F_MREMAP], ref[F_MALLOC]);
  findings_done();
}

static void test_create(void **st) {
  (void)st;
  run_create_scenario("mp_create", do_create);
}

static void test_open_create(void **st) {
  (void)st;
  run_create_scenario("mp_open(MP_CREATE)", do_open_create);
}

/* Opening an existing file: a failed open must leave the file byte for byte as it was
 * and the next open must see it whole. */
static void test_open_existing(void **st) {
  (void)st;
  char why[256];
  findings_reset();
  need_template(T_BASIC);
  mp_pager *p = open_copy(T_BASIC);
  snap(p, &before);
  mp_close(p);
  for (size_t k = 0; k < NFAULTS; k++) {
    for (int n = 1;; n++) {
      snprintf(where, sizeof where, "mp_open: %s, call %d", faults[k].label, n);
      assert_true(n < 100);
      p = open_copy(T_BASIC);
      mp_close(p);
      p = NULL;
      arm(&faults[k], n);
      int rc = mp_open(work_path, 0, &p);
      int hit = fired;
      disarm();
      if (!hit) {
        EXPECT(rc == MP_OK, "no fault fired but mp_open returned %s", code_name(rc));
        mp_close(p);
        break;
      }
      EXPECT(rc == fault_code(&faults[k]), "returned %s, expected %s", code_name(rc),
             code_name(fault_code(&faults[k])));
      EXPECT(p == NULL, "failed but handed out a handle");
      if (p) mp_close(p);
      size_t len;
      uint8_t *img = t_read_file(work_path, &len);
      EXPECT(img && len == tmpl_len[T_BASIC] && memcmp(img, tmpl_img[T_BASIC], len) == 0,
             "the failed open changed the file");
      free(img);
      p = NULL;
      rc = mp_open(work_path, 0, &p);
      EXPECT(rc == MP_OK, "the open without the fault returned %s", code_name(rc));
      if (rc == MP_OK) {
        snap(p, &now);
        EXPECT(same(&now, &before, why, sizeof why), "state differs: %s", why);
        unsigned findings = check(p);
        EXPECT(findings == 0, "mp_check found %u problems", findings);
        mp_close(p);
      }
    }
  }
  findings_done();
}

/* ---- growth limits ------------------------------------------------------ */

static uint64_t file_size(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return (uint64_t)st.st_size;
}

/* A full file system: every call that must grow says MP_ENOSPC and changes nothing,
 * page count included; once space is back the same call grows the file. */
static void test_grow_enospc(void **st) {
  (void)st;
  char why[256];
  findings_reset();
  need_template(T_FULL);
  snprintf(where, sizeof where, "growth with fallocate ENOSPC");
  mp_pager *p = open_copy(T_FULL);
  snap(p, &before);
  uint64_t size = file_size(work_path), id, ids[3];
  assert_int_equal(fiu_enable("pager/fallocate", 1, (void *)(intptr_t)ENOSPC, 0), 0);
  assert_int_equal(mp_alloc(p, &id), MP_ENOSPC);
  assert_int_equal(mp_alloc_bulk(p, 3, ids), MP_ENOSPC);
  assert_int_equal(mp_protected_alloc(p, &id), MP_ENOSPC);
  fiu_disable("pager/fallocate");
  assert_int_equal(mp_page_count(p), before.pages);
  snap(p, &now);
  EXPECT(same(&now, &before, why, sizeof why), "state changed: %s", why);
  assert_int_equal(file_size(work_path), size);
  assert_int_equal(check(p), 0);
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  assert_int_equal(mp_page_count(p), 2 * before.pages);
  assert_int_equal(check(p), 0);
  mp_close(p);
  findings_done();
}

/* MP_SPARSE: the file grows with ftruncate and reserves nothing, so most of a grown file is
 * holes; a full disk at that growth is MP_ENOSPC. The pages the pager itself writes into (a
 * protected page's copies, a new directory block's pages) are reserved first: a full disk
 * there is MP_ENOSPC and changes nothing, never a SIGBUS in the library. A read-only or
 * preview open cannot ask for it. */
static uint64_t allocated_bytes(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
}

static void test_sparse(void **st) {
  (void)st;
  char why[256];
  findings_reset();
  snprintf(where, sizeof where, "MP_SPARSE");
  const char *path = t_path(3, "sparse.mp");
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_CREATE | MP_SPARSE | MP_RDONLY, &p), MP_EINVAL);
  assert_int_equal(mp_open(path, MP_CREATE | MP_SPARSE, &p), MP_OK);
  assert_int_equal(mp_close(p), MP_OK);
  assert_int_equal(mp_open(path, MP_SPARSE | MP_PREVIEW, &p), MP_EINVAL);
  assert_int_equal(mp_open(path, MP_SPARSE, &p), MP_OK);
  uint64_t ids[3], id;
  /* 8,000 pages of 4 KiB: a 32 MiB file whose blocks are not reserved */
  uint64_t *many = calloc(8000, sizeof *many);
  assert_non_null(many);
  assert_int_equal(mp_alloc_bulk(p, 8000, many), MP_OK);
  free(many);
  uint64_t size = file_size(path);
  assert_true(size >= 8000ull * 4096);
  EXPECT(allocated_bytes(path) < size / 4, "%llu of %llu bytes allocated: growth reserved blocks",
         (unsigned long long)allocated_bytes(path), (unsigned long long)size);
  /* growth refused by a full disk (every free page taken first, so the next one grows) */
  uint64_t rest = mp_free_count(p);
  many = calloc(rest + 1, sizeof *many);
  assert_non_null(many);
  assert_int_equal(mp_alloc_bulk(p, rest, many), MP_OK);
  free(many);
  snap(p, &before);
  assert_int_equal(fiu_enable("pager/ftruncate", 1, (void *)(intptr_t)ENOSPC, 0), 0);
  assert_int_equal(mp_alloc_bulk(p, 3, ids), MP_ENOSPC);
  fiu_disable("pager/ftruncate");
  snap(p, &now);
  EXPECT(same(&now, &before, why, sizeof why), "state changed: %s", why);
  /* and the reservation of the pages the pager writes into */
  assert_int_equal(fiu_enable("pager/fallocate", 1, (void *)(intptr_t)ENOSPC, 0), 0);
  assert_int_equal(mp_protected_alloc(p, &id), MP_ENOSPC);
  fiu_disable("pager/fallocate");
  snap(p, &now);
  EXPECT(same(&now, &before, why, sizeof why), "state changed: %s", why);
  assert_int_equal(check(p), 0);
  uint64_t backed = allocated_bytes(path);
  assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
  EXPECT(allocated_bytes(path) > backed, "the protected page's copies were not reserved (%llu bytes, then %llu)",
         (unsigned long long)backed, (unsigned long long)allocated_bytes(path));
  assert_int_equal(check(p), 0);
  assert_int_equal(mp_close(p), MP_OK);
  unlink(path);
  findings_done();
}

/* More pages than one bitmap page can describe: MP_EFULL, and nothing changes, not even
 * the file size (the check must come before any growth). */
static void test_alloc_bulk_efull(void **st) {
  (void)st;
  char why[256];
  findings_reset();
  need_template(T_BASIC);
  snprintf(where, sizeof where, "mp_alloc_bulk past capacity");
  mp_pager *p = open_copy(T_BASIC);
  snap(p, &before);
  uint64_t size = file_size(work_path), cap = mp_capacity(p);
  assert_int_equal(cap, (PS - 28) * 8);
  uint64_t fits = before.free + (cap - before.pages);
  uint64_t *ids = calloc(cap + 1, sizeof *ids);
  assert_non_null(ids);
  assert_int_equal(mp_alloc_bulk(p, cap + 1, ids), MP_EFULL);
  assert_int_equal(mp_alloc_bulk(p, fits + 1, ids), MP_EFULL);
  snap(p, &now);
  EXPECT(same(&now, &before, why, sizeof why), "state changed: %s", why);
  assert_int_equal(file_size(work_path), size);
  assert_int_equal(check(p), 0);
  /* Exactly what fits does fit, and then even one more page does not. */
  assert_int_equal(mp_alloc_bulk(p, fits, ids), MP_OK);
  assert_int_equal(mp_page_count(p), cap);
  assert_int_equal(mp_free_count(p), 0);
  uint64_t id;
  assert_int_equal(mp_alloc(p, &id), MP_EFULL);
  assert_int_equal(mp_protected_alloc(p, &id), MP_EFULL);
  assert_int_equal(check(p), 0);
  free(ids);
  snap(p, &after);
  p = reopen_expect(p, &after, NULL, "full file", false);
  mp_close(p);
  findings_done();
}

/* The pages a preview's recovery wrote (mp_next_written), listed from PAGEMAP_SCAN, are the
 * ones the pagemap's entries list, which a kernel without the call leaves (the fault point
 * answers as one does): page 0, whose selector recovery turned to the older metadata copy
 * when the current one was damaged, at 1 KiB pages with its system page's neighbours, and
 * a 16 KiB page alone. */
static void written_list(const char *path, bool scan, uint64_t *ids, size_t *n) {
  if (!scan) assert_int_equal(fiu_enable("pager/pagemap_scan", 1, NULL, 0), 0);
  mp_pager *pv;
  assert_int_equal(mp_open(path, MP_PREVIEW, &pv), MP_OK);
  assert_true(mp_recovery(pv) & MP_RECOVER_METADATA);
  *n = 0;
  uint64_t id;
  for (uint64_t from = 0; *n < 16 && mp_next_written(pv, from, &id) == MP_OK; from = id + 1) ids[(*n)++] = id;
  mp_close(pv);
  if (!scan) fiu_disable("pager/pagemap_scan");
}

static void test_preview_written_without_scan(void **st) {
  (void)st;
  const char *path = t_path(0, "written.mp");
  for (size_t ps = 1024; ps <= 16384; ps *= 16) {
    unlink(path);
    mp_pager *w;
    uint64_t id;
    assert_int_equal(mp_create(path, ps, &w), MP_OK);
    assert_int_equal(mp_alloc(w, &id), MP_OK);
    assert_int_equal(mp_alloc(w, &id), MP_OK);
    assert_int_equal(mp_close(w), MP_OK);
    size_t len;
    uint8_t *good = t_read_file(path, &len);
    bool found = false;
    for (size_t meta = 1; meta <= 2 && !found; meta++) { /* the current copy, damaged */
      uint8_t *bad = malloc(len);
      memcpy(bad, good, len);
      bad[meta * ps + 40] ^= 0x40;
      assert_int_equal(t_write_file(path, bad, len), 0);
      free(bad);
      mp_pager *r;
      assert_int_equal(mp_open(path, MP_RDONLY, &r), MP_OK);
      found = mp_recovery(r) & MP_RECOVER_METADATA;
      mp_close(r);
    }
    assert_true(found);
    uint64_t scanned[16], read[16];
    size_t ns, nr;
    written_list(path, true, scanned, &ns);
    written_list(path, false, read, &nr);
    assert_true(ns >= 1);
    assert_int_equal(scanned[0], 0);
    assert_int_equal(ns, ps < 4096 ? 4096 / ps : 1);
    assert_int_equal(nr, ns);
    assert_memory_equal(read, scanned, ns * sizeof *read);
    free(good);
  }
}

int main(void) {
  fiu_init(0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[0]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[1]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[2]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[3]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[4]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[5]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[6]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[7]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[8]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[9]),
      cmocka_unit_test_prestate_setup_teardown(test_scenario, NULL, NULL, (void *)&scenarios[10]),
      cmocka_unit_test(test_create),
      cmocka_unit_test(test_open_create),
      cmocka_unit_test(test_open_existing),
      cmocka_unit_test(test_grow_enospc),
      cmocka_unit_test(test_alloc_bulk_efull),
      cmocka_unit_test(test_sparse),
      cmocka_unit_test(test_preview_written_without_scan),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
