/* explore.c: the explorer. The workload runs once under the shim, which records a trace;
 * every crash state (each step, each tear of the sectors it makes durable, each early
 * writeback choice) is then derived from the trace in one pass, so the cost is linear in
 * the number of steps rather than one re-run per crash point. Identical images are
 * checked once. */
#include "explore.h"
#include "forkserver.h"
#include "hashset.h"
#include "jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#include "image.h"
#include "mappedpages.h"
#include "powercut.h"
#include "workload.h"

void cc_explore_defaults(cc_explore_opts *o) {
  memset(o, 0, sizeof *o);
  o->jobs = 1;
  o->shards = 1;
  o->random_tears = 4;
  o->random_writebacks = 2;
  o->prefixes = o->suffixes = o->writeback_all = o->garbage = true;
  o->max_violations = 20;
  o->again = 16;
}

void cc_explore_result_free(cc_explore_result *r) {
  free(r->found);
  r->found = NULL;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

void cc_cut_spec(const cc_schedule *s, char *buf, size_t len) {
  char tear[32];
  cc_schedule_tear_text(s, tear, sizeof tear);
  snprintf(buf, len, "%u:%s:%s:%u", s->cut_step, tear, cc_writeback_name(s->writeback), s->seed);
}

/* ---- recording -------------------------------------------------------------------- */

int cc_record(const cc_case *c, const cc_explore_opts *o, const char *file, const char *trace, const char *cut,
              const char *image, bool existing, char *why, size_t whylen) {
  char casefile[1100], sector[16];
  snprintf(casefile, sizeof casefile, "%s.case", file); /* beside the file: workers record in parallel */
  if (cc_case_save_binary(c, casefile) != CC_OK) {
    snprintf(why, whylen, "cannot write %s", casefile);
    return CC_EIO;
  }
  if (access(o->shim, R_OK) != 0) {
    snprintf(why, whylen, "the shim %s is missing (build it with make, or set CRASHCHECK_SHIM)", o->shim);
    return CC_ESETUP;
  }
  snprintf(sector, sizeof sector, "%u", c->sector);
  /* posix_spawn, not fork: the explorer's address space (the trace's model, the images'
   * hashes) makes every fork copy its page tables, and R7 records once per follow-up. */
  static const char *const ours[] = {"LD_PRELOAD=",     "POWERCUT_FILE=",  "POWERCUT_SECTOR=",
                                     "POWERCUT_TRACE=", "POWERCUT_CUT=",   "POWERCUT_IMAGE=",
                                     "POWERCUT_ERROR=", "CRASHCHECK_STATES=", "POWERCUT_NAMESPACE="};
  size_t nenv = 0, cap = 10;
  for (char **e = environ; *e; e++) cap++;
  char **env = calloc(cap, sizeof *env);
  char set[9][1200];
  if (!env) {
    snprintf(why, whylen, "out of memory");
    return CC_ENOMEM;
  }
  for (char **e = environ; *e; e++) {
    bool mine = false;
    for (size_t k = 0; k < sizeof ours / sizeof *ours && !mine; k++) mine = !strncmp(*e, ours[k], strlen(ours[k]));
    if (!mine) env[nenv++] = *e;
  }
  /* --errors: the injected error, and where the run leaves its states */
  char states[1200];
  snprintf(states, sizeof states, "%s.states", file);
  /* Names are modelled (faults/names.c): a cut before the create's name is durable leaves no
   * file, which the checker takes for R3 once mp_create has returned. */
  const char *val[9] = {o->shim, file, sector, trace, cut, image, o->error,
                        o->error || o->keep_states ? states : NULL, "posix"};
  for (size_t k = 0; k < 9; k++) {
    if (!val[k]) continue;
    snprintf(set[k], sizeof set[k], "%s%s", ours[k], val[k]);
    env[nenv++] = set[k];
  }
  env[nenv] = NULL;
  /* (the binary case carries "sparse", "format 3" and "upgrade" in its header) */
  char *argv[6] = {(char *)o->self, "__run", casefile, (char *)file, NULL, NULL};
  if (existing) argv[4] = "--existing";
  /* In a child of the fork server (forkserver.c), which loaded the shim once; executed
   * here when there is none. The variables are ours[], less the "=" of each. */
  enum { NVARS = sizeof ours / sizeof *ours };
  const char *names[NVARS];
  char namebuf[NVARS][32];
  for (size_t k = 0; k < NVARS; k++) {
    snprintf(namebuf[k], sizeof namebuf[k], "%.*s", (int)strlen(ours[k]) - 1, ours[k]);
    names[k] = namebuf[k];
  }
  int status;
  if (cc_fs_run(o->self, o->shim, argv + 1, NVARS - 1, names + 1, val + 1, &status)) {
    free(env);
  } else {
    fflush(NULL);
    pid_t pid;
    int err = posix_spawn(&pid, o->self, NULL, NULL, argv, env);
    free(env);
    if (err) {
      snprintf(why, whylen, "cannot run %s: %s", o->self, strerror(err));
      return CC_ESETUP;
    }
    while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) return CC_ESETUP;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  snprintf(why, whylen, "the workload died with signal %d", WTERMSIG(status));
  return 128 + WTERMSIG(status);
}


/* ---- deriving and checking ---------------------------------------------------------- */

typedef struct job {
  const cc_case *c;
  const cc_explore_opts *o;
  const cc_run *run;
  const char *trace_path;
  const char *file;
  unsigned shard, shards;
  unsigned worker, workers; /* this process's part of the shard (--jobs) */
  bool progress;
  cc_explore_result *r;
  uint64_t *followed; /* with workers: identities of the files forced follow-ups ran on, shared */
  /* with workers and --fail-fast, shared: the lowest crash state (w->states, which every worker
   * counts alike) at which one found a violation, 0 for none. A worker goes on up to it, so
   * the first violation is the one a single walk finds first, whichever worker owns it. */
  uint64_t *stop;
} job;

static void to_pc_crash(const cc_schedule *s, pc_crash *out) {
  static const pc_tear_kind tears[CC_TEAR_KINDS] = {PC_TEAR_NONE, PC_TEAR_ALL, PC_TEAR_PREFIX, PC_TEAR_SUFFIX,
                                                    PC_TEAR_RANDOM, PC_TEAR_GARBAGE};
  static const pc_wb_kind wbs[CC_WB_KINDS] = {PC_WB_NONE, PC_WB_ALL, PC_WB_RANDOM};
  memset(out, 0, sizeof *out);
  out->tear = tears[s->tear % CC_TEAR_KINDS];
  out->tear_n = s->tear_n;
  out->tear_seed = s->seed;
  out->wb = wbs[s->writeback % CC_WB_KINDS];
  out->wb_seed = s->seed;
  out->seed = s->seed;
}

/* The crash choices explored at a step that makes n sectors durable (and, with `name`, the
 * file's name: an fsync of its directory, which lands it with tear all). */
static size_t choices(const cc_explore_opts *o, uint64_t n, bool name, bool head, cc_schedule *out, size_t cap) {
  cc_schedule tears[600];
  size_t nt = 0;
  tears[nt++] = (cc_schedule){.tear = CC_TEAR_NONE};
  if (n || name) tears[nt++] = (cc_schedule){.tear = CC_TEAR_ALL};
  if (head) tears[nt++] = (cc_schedule){.tear = CC_TEAR_GARBAGE, .tear_n = 1, .seed = 1};
  for (uint64_t k = 1; k < n && k < 256 && nt < 590; k++) {
    if (o->prefixes) tears[nt++] = (cc_schedule){.tear = CC_TEAR_PREFIX, .tear_n = (uint8_t)k};
    if (o->suffixes) tears[nt++] = (cc_schedule){.tear = CC_TEAR_SUFFIX, .tear_n = (uint8_t)k};
  }
  for (unsigned s = 1; n >= 2 && s <= o->random_tears && nt < 600; s++)
    tears[nt++] = (cc_schedule){.tear = CC_TEAR_RANDOM, .seed = (uint8_t)s};
  size_t count = 0;
  for (size_t i = 0; i < nt; i++) {
    unsigned wbs = 1 + (o->writeback_all ? 1 : 0) + o->random_writebacks;
    for (unsigned w = 0; w < wbs && count < cap; w++) {
      cc_schedule s = tears[i];
      if (w == 0) s.writeback = CC_WB_NONE;
      else if (w == 1 && o->writeback_all) s.writeback = CC_WB_ALL;
      else {
        s.writeback = CC_WB_RANDOM;
        /* the random tear keeps its seed; writeback seeds follow it */
        if (s.tear != CC_TEAR_RANDOM) s.seed = (uint8_t)(w - (o->writeback_all ? 1 : 0));
      }
      out[count++] = s;
    }
  }
  return count;
}

/* ---- walking the crash states of a trace ---------------------------------------- */

/* A walk derives every crash state of a recorded trace (each step, each crash
 * choice of the options), keeps the image file equal to each new image by writing
 * only the sectors that differ, checks it against the model run, and hands the
 * verdict to a visitor. The explorer walks the workload's trace; R7 walks each
 * follow-up's. */
typedef struct walker walker;
struct walker {
  const cc_case *c;
  const cc_run *run;      /* the model: states[i] after operation i */
  bool existing;          /* the run opened an existing file: before its first operation, states[0] */
  const cc_explore_opts *o;
  const char *trace_path, *image;
  unsigned shard, shards; /* this walk checks the images cc_takes gives it */
  unsigned worker, workers;
  bool verifying;         /* CRASHCHECK_VERIFY */
  /* Called for each image checked (v is its verdict); false ends the walk. */
  bool (*visit)(walker *w, const cc_verdict *v);
  void (*stepped)(walker *w); /* after each step (may be NULL) */
  void *ctx;
  /* What the visitor sees of the state at hand: */
  uint64_t step, total_steps;
  pc_step_info info;
  size_t index;             /* the operation in flight (0: the create or open) */
  const cc_schedule *sched; /* its crash choice (cut_step unset) */
  int kind;                 /* its kind (CC_OP_KINDS for the create or open) */
  bool missing;             /* the state has no file (its name was not durable): no image to read */
  /* Counts, and why the walk stopped early if it failed: */
  uint64_t steps, states, distinct;
  char error[600];
  /* --errors (errors.c): only the steps from first_step on are cut, the walk ends after
   * operation last_index, and with final the durable state at the end of the trace is
   * checked too (visited with step 0). 0, 0, false: the whole trace. */
  uint64_t first_step;
  size_t last_index;
  bool final;
  /* ... and operation inflight_index, while in flight, may also end as inflight_after
   * (the failed operation: as it would have ended without the error). */
  size_t inflight_index;
  const cc_state *inflight_after;
  /* The case's explore-from: steps of earlier operations (and of the create) run uncut. */
  size_t from_index;
};

static void forget_written(void *ctx, uint64_t off, uint64_t len) { cc_check_cache_forget(ctx, off, len); }

/* CRASHCHECK_VERIFY: what the checker decided with its cache (reloaded handles,
 * page hashes) must be what it decides from scratch; a difference is a bug of
 * the harness, and stops it at once. */
static void same_verdict_uncached(const walker *w, const cc_state *before, const cc_state *after,
                                  const cc_verdict *cached) {
  cc_verdict fresh;
  cc_check_image_flags(w->image, w->c->page_size, cc_create_flags(w->c), before, after, w->kind, NULL, &fresh);
  /* The recovery a writer's open would do is part of the verdict: it decides whether the
   * state is checked after recovery too, and which states R7 goes on from. */
  bool same = fresh.nviolations == cached->nviolations && fresh.leaks == cached->leaks &&
              fresh.reclaimed == cached->reclaimed && fresh.recovery == cached->recovery;
  for (unsigned i = 0; same && i < fresh.nviolations; i++)
    same = strcmp(fresh.v[i].invariant, cached->v[i].invariant) == 0 && strcmp(fresh.v[i].found, cached->v[i].found) == 0;
  if (same) return;
  fprintf(stderr, "crashcheck: CRASHCHECK_VERIFY: at step %llu the cached check found %u violations (%s; recovery "
          "%#x, %llu reclaimed), a fresh one %u (%s; recovery %#x, %llu reclaimed)\n", (unsigned long long)w->step,
          cached->nviolations, cached->nviolations ? cached->v[0].found : "-", cached->recovery,
          (unsigned long long)cached->reclaimed, fresh.nviolations, fresh.nviolations ? fresh.v[0].found : "-",
          fresh.recovery, (unsigned long long)fresh.reclaimed);
  abort();
}

/* The durable state the whole trace leaves (every step done, nothing volatile): it must be
 * the run's last state, each operation that returned success in it. */
static void walk_final(walker *w, pc_replay *rp, cc_image *im, cc_check_cache *cache) {
  pc_model *m;
  pc_replay_model(rp, &m);
  static const cc_schedule none = {.tear = CC_TEAR_NONE};
  pc_crash crash;
  to_pc_crash(&none, &crash);
  uint64_t h;
  int exists = 1;
  if (cc_image_step(im, m) != CC_OK || pc_model_image_exists(m, 0, &crash, &exists) != PC_OK ||
      (exists && (cc_image_derive(im, m, &crash, &h) != CC_OK || cc_image_write(im, m, &crash) != CC_OK))) {
    snprintf(w->error, sizeof w->error, "cannot derive the durable state at the end of %s", w->trace_path);
    return;
  }
  const cc_state *last = &w->run->states[w->run->nstates - 1];
  cc_verdict v;
  w->missing = !exists;
  if (!exists) cc_check_missing(last, &v);
  else {
    cache->image_size = cc_image_file_size(im);
    cc_check_image_flags(w->image, w->c->page_size, cc_create_flags(w->c), last, last, CC_OP_KINDS, cache, &v);
  }
  w->states++;
  w->distinct++;
  w->step = 0;
  w->index = w->run->nstates - 1;
  w->kind = CC_OP_KINDS;
  w->sched = &none;
  memset(&w->info, 0, sizeof w->info);
  w->visit(w, &v);
}

/* --tear garbage: whether the open step's first durable sector is the file's first, the
 * sector a garbage:1 tear would fill (a prefix of one sector lands exactly it; writeback
 * none adds nothing). Page 0's first sector holds what salvage rebuilds from the rest of the
 * file; garbage anywhere else is data lost, which no pager can undo. */
static void lowest_sector(void *ctx, uint64_t sector, const uint8_t *data) {
  (void)data;
  uint64_t *low = ctx;
  if (sector < *low) *low = sector;
}

static bool first_sector_is_head(pc_model *m) {
  static const pc_crash first = {.tear = PC_TEAR_PREFIX, .tear_n = 1};
  uint64_t low = UINT64_MAX, size;
  return pc_model_image_sectors(m, 0, &first, lowest_sector, &low, &size) == PC_OK && low == 0;
}

static void refusal_allowed(cc_verdict *v) {
  unsigned k = 0;
  for (unsigned i = 0; i < v->nviolations; i++)
    if (strcmp(v->v[i].invariant, "R1") != 0) v->v[k++] = v->v[i];
  v->refused = k < v->nviolations;
  v->nviolations = k;
}

/* The hash of every state without a file (no image bytes to hash). */
#define NO_FILE_HASH UINT64_C(0x6E6F2D66696C6521)

/* Garbage tears of the open step's metadata sectors, if the file (as the program sees it) is
 * 0.3, or is a 0.3 create's before its superblock lands: one choice per such sector (up to the
 * 255th sector of the step, which a tear's count can name), with the rest of the step landed
 * and nothing written back early. */
static size_t metadata_garbage(walker *w, pc_model *m, uint64_t n, cc_schedule *out, size_t cap) {
  uint64_t pages;
  uint8_t *kinds = cc_step_kinds3(m, 0, w->c->page_size, w->c->format3, &pages);
  if (!kinds) return 0;
  size_t count = 0;
  for (uint64_t j = 0; j < n && j < 255 && count < cap; j++)
    if (cc_step_sector_is_metadata3(m, 0, j, kinds, pages, w->c->page_size, w->c->sector))
      out[count++] = (cc_schedule){.tear = CC_TEAR_GARBAGE, .tear_n = (uint8_t)(j + 1), .writeback = CC_WB_NONE};
  free(kinds);
  return count;
}

/* A new image of a step waiting for its check: its key (cc_image_key over the metadata) and
 * its choice. */
typedef struct pending {
  uint64_t key;
  uint32_t i;
  int exists;
  size_t saved; /* cc_image_save's: restored instead of derived again */
} pending;

static void reverse(pending *p, size_t from, size_t to) {
  for (; from + 1 < to; from++, to--) {
    pending t = p[from];
    p[from] = p[to - 1];
    p[to - 1] = t;
  }
}

static int by_key(const void *x, const void *y) {
  const pending *a = x, *b = y;
  if (a->key != b->key) return a->key < b->key ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

/* Which sectors hold what a reader's load reads (pages 0 to 2, the directory's pages, a 0.3
 * file's metadata blocks), as the program's volatile content places them at this step. Only
 * an order follows from it: a sector it misses costs a load, never a wrong verdict. */
static bool keyed_pages(walker *w, pc_model *m, uint8_t **keyed, uint64_t *nkeyed) {
  const uint8_t *vol;
  uint64_t vlen;
  if (pc_model_volatile(m, 0, &vol, &vlen) != PC_OK) return false;
  uint64_t ps = w->c->page_size, pages = vlen / ps, S = w->c->sector, nsec = pages * ps / S;
  uint8_t *kinds = pages ? malloc(pages) : NULL, *k = realloc(*keyed, nsec ? nsec : 1);
  if (k) *keyed = k;
  if (!kinds || !k || mp_image_page_kinds(vol, vlen, kinds, pages) != MP_OK) {
    free(kinds);
    return false;
  }
  memset(k, 0, nsec);
  for (uint64_t page = 0; page < pages; page++) { /* (by page: a few are keyed, most are not) */
    if (!(page < 3 || kinds[page] == MP_PAGE_SUPERBLOCK || kinds[page] == MP_PAGE_METADATA ||
          kinds[page] == MP_PAGE_DIRECTORY))
      continue;
    uint64_t lo = page * ps / S, hi = ((page + 1) * ps + S - 1) / S; /* its sectors */
    if (hi > nsec) hi = nsec;
    if (lo < hi) memset(k + lo, 1, (size_t)(hi - lo));
  }
  free(kinds);
  *nkeyed = nsec;
  return true;
}

static int walk(walker *w) {
  pc_trace *t = NULL;
  pc_replay *rp = NULL;
  int rc = pc_trace_open(w->trace_path, &t);
  if (rc == PC_OK) rc = pc_replay_new(t, &rp);
  if (rc != PC_OK) {
    snprintf(w->error, sizeof w->error, "cannot read the trace %s: %s", w->trace_path, pc_strerror(rc));
    pc_trace_free(t);
    return CC_EIO;
  }
  pc_trace_step_count(t, &w->total_steps);
  uint32_t sector = 512;
  pc_trace_sector_size(t, &sector);
  cc_image *im = NULL;
  cc_check_cache cache = {0}; /* page hashes and pager handles, across checks */
  cc_schedule *sched = malloc(sizeof *sched * 8192);
  pending *pend = malloc(sizeof *pend * 8192);
  uint8_t *keyed = NULL;
  uint64_t nkeyed = 0, last_key = 0; /* the key of the image checked last */
  cc_hashset seen = {0};
  rc = CC_OK; /* from here on, a failure stops the walk and says why in w->error */
  if (!sched || !pend || cc_image_new(w->image, sector, w->verifying, forget_written, &cache, &im) != CC_OK) {
    snprintf(w->error, sizeof w->error, "cannot create %s", w->image);
    rc = CC_EIO;
    goto out;
  }
  size_t last_index = 0;
  bool going = true;
  while (going && pc_replay_next(rp, &w->step) == PC_OK && w->step) {
    w->steps++;
    pc_trace_step_info(t, w->step, &w->info);
    size_t index = w->info.op ? (size_t)w->info.op - 1 : last_index;
    if (index >= w->run->nstates) index = w->run->nstates - 1;
    last_index = w->index = index;
    const cc_state *before = index ? &w->run->states[index - 1] : w->existing ? &w->run->states[0] : NULL;
    const cc_state *after = &w->run->states[index];
    if (w->inflight_after && index == w->inflight_index) after = w->inflight_after;
    bool past = w->last_index && index > w->last_index;
    if (past && !w->final) break;
    w->kind = index ? w->c->ops[index - 1].kind : CC_OP_KINDS;
    pc_model *m;
    uint64_t n = 0;
    pc_replay_model(rp, &m);
    pc_model_step_sectors(m, &n);
    bool cut = w->step >= w->first_step && !past && index >= w->from_index;
    if (w->o->cover && cut)
      cc_cover_step(w->o->cover, m, w->info.file, w->info.call, w->info.off, w->info.len,
                    index ? w->kind : w->existing ? CC_COVER_RECOVER : CC_COVER_CREATE);
    if (cc_image_step(im, m) != CC_OK) {
      snprintf(w->error, sizeof w->error, "cannot follow the durable content at step %llu", (unsigned long long)w->step);
      break;
    }
    /* a step that makes the file's name durable: absent with tear none, there with all */
    static const pc_crash none_none = {.tear = PC_TEAR_NONE}, all_none = {.tear = PC_TEAR_ALL};
    int before_name = 1, after_name = 0;
    bool name = (w->info.call == PC_CALL_FSYNC_DIR || w->info.call == PC_CALL_FDATASYNC_DIR) &&
                pc_model_image_exists(m, 0, &none_none, &before_name) == PC_OK && !before_name &&
                pc_model_image_exists(m, 0, &all_none, &after_name) == PC_OK && after_name;
    bool head = cut && n && w->o->garbage_head && first_sector_is_head(m);
    /* A sector larger than the page takes page 1 (metadata A) or more into the garbage with
     * page 0: salvage may then have lost the current metadata, and refuses (R1, saying so)
     * where it cannot tell; what it must never do is open such a file to a wrong state. */
    bool may_refuse = head && sector > w->c->page_size;
    size_t nch = cut ? choices(w->o, n, name, head, sched, 8192) : 0;
    if (cut && w->o->garbage) nch += metadata_garbage(w, m, n, sched + nch, 8192 - nch);
    /* First every choice's image is derived and hashed; the new ones are then checked in the
     * order of their metadata (the sectors of pages 0 to 2 and of the directory that differ
     * from the durable content), so that images which differ in data pages alone follow one
     * another, and the checker's handles keep what they derived (mp_reload_same) instead of
     * loading again at nearly every state. Equal keys keep the choices' order. */
    size_t npend = 0, derived = SIZE_MAX; /* the choice whose image cc_image holds */
    bool keyed_known = false; /* found at the step's first new image: many steps have none */
    for (size_t i = 0; going && i < nch; i++) {
      w->states++;
      pc_crash crash;
      to_pc_crash(&sched[i], &crash);
      uint64_t h;
      int exists = 1;
      if (pc_model_image_exists(m, 0, &crash, &exists) != PC_OK ||
          (exists && cc_image_derive(im, m, &crash, &h) != CC_OK)) {
        snprintf(w->error, sizeof w->error, "cannot derive the image of step %llu", (unsigned long long)w->step);
        going = false;
        break;
      }
      if (!exists) h = NO_FILE_HASH;
      else derived = i;
      /* An image is checked once per operation in flight, not once in all: its verdict
       * depends on the model's states around that operation too. (Once in all, a bug that
       * leaves nothing durable, an msync that syncs nothing, gave every later state the
       * image a cut in the create had, where it was right, and was never checked.) */
      if (!cc_hashset_add(&seen, h ^ ((uint64_t)index + 1) * UINT64_C(0x9E3779B97F4A7C15)) ||
          !cc_takes(h, w->shard, w->shards, w->worker, w->workers))
        continue;
      w->distinct++;
      if (exists && !keyed_known) {
        keyed_known = true;
        if (!keyed_pages(w, m, &keyed, &nkeyed)) nkeyed = 0;
      }
      pend[npend++] = (pending){.key = exists ? cc_image_key(im, keyed, nkeyed) : 0, .i = (uint32_t)i, .exists = exists,
                                .saved = exists ? cc_image_save(im) : SIZE_MAX};
    }
    if (npend > 1) {
      qsort(pend, npend, sizeof *pend, by_key);
      /* The images like the last one checked (of the step before, mostly) go first: the
       * handles keep what they derived from it. */
      size_t lo = 0, hi;
      while (lo < npend && !(pend[lo].exists && pend[lo].key == last_key)) lo++;
      for (hi = lo; hi < npend && pend[hi].exists && pend[hi].key == last_key; hi++) continue;
      if (lo > 0 && hi > lo) { /* [0, hi) rotated left by lo, by three reversals */
        reverse(pend, 0, lo);
        reverse(pend, lo, hi);
        reverse(pend, 0, hi);
      }
    }
    for (size_t k = 0; going && k < npend; k++) {
      size_t i = pend[k].i;
      pc_crash crash;
      to_pc_crash(&sched[i], &crash);
      uint64_t h;
      cc_verdict v;
      w->missing = !pend[k].exists;
      if (!pend[k].exists) {
        cc_check_missing(before, &v); /* the image file is left as it is: nothing reads it */
      } else if (derived != i && !cc_image_restore(im, pend[k].saved) && cc_image_derive(im, m, &crash, &h) != CC_OK) {
        snprintf(w->error, sizeof w->error, "cannot derive the image of step %llu", (unsigned long long)w->step);
        going = false;
        break;
      } else if (cc_image_write(im, m, &crash) != CC_OK) {
        snprintf(w->error, sizeof w->error, "cannot write %s", w->image);
        going = false;
        break;
      } else {
        derived = i;
        last_key = pend[k].key;
        cache.image_size = cc_image_file_size(im);
        cc_check_image_flags(w->image, w->c->page_size, cc_create_flags(w->c), before, after, w->kind, &cache, &v);
        if (v.rewritten) cc_image_touched(im);
        else if (w->verifying) same_verdict_uncached(w, before, after, &v);
        if (may_refuse && sched[i].tear == CC_TEAR_GARBAGE) refusal_allowed(&v);
      }
      w->sched = &sched[i];
      going = w->visit(w, &v);
    }
    if (w->error[0] || cc_image_end_step(im, m) != CC_OK) break;
    if (w->stepped) w->stepped(w);
  }
  if (w->final && going && !w->error[0] && !w->step) walk_final(w, rp, im, &cache);
out:
  free(sched);
  free(pend);
  free(keyed);
  cc_hashset_free(&seen);
  cc_image_free(im);
  cc_check_cache_free(&cache);
  pc_replay_free(rp);
  pc_trace_free(t);
  return rc;
}

static bool verifying(void) {
  const char *verify = getenv("CRASHCHECK_VERIFY");
  return verify && *verify && *verify != '0';
}

/* ---- R7: recovery keeps working --------------------------------------------------- */

/* Copies `from` over `to`, which is not truncated first but cut to length after: R7 copies
 * each crash image it follows up to the same few scratch files, and overwriting their pages
 * in place spares tmpfs freeing, allocating and zeroing them again each time. */
static bool copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT, 0644);
  bool ok = in >= 0 && out >= 0;
  /* In the kernel where it can (no trip through a buffer here: R7 copies each crash image
   * it follows up, megabytes at 16 KiB pages); by hand where it cannot. */
  ssize_t n;
  off_t total = 0;
  bool by_hand = false;
  while (ok && !by_hand && (n = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0)) != 0)
    if (n < 0) by_hand = errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL, ok = by_hand;
    else total += n;
  char buf[1 << 16];
  while (ok && by_hand && (n = read(in, buf, sizeof buf)) > 0) {
    ok = write(out, buf, (size_t)n) == n;
    total += n;
  }
  if (ok && ftruncate(out, total) != 0) ok = false;
  if (in >= 0) close(in);
  if (out >= 0 && close(out) != 0) ok = false;
  return ok;
}

/* R7's visitor: stops at the first violation, and says where it was. */
typedef struct again_walk {
  cc_verdict *v;
  cc_again_where *where;
} again_walk;

static bool again_visit(walker *w, const cc_verdict *v) {
  again_walk *aw = w->ctx;
  if (!v->nviolations) return true;
  *aw->v = *v;
  aw->where->step = (uint32_t)w->step;
  aw->where->sched = *w->sched;
  aw->where->sched.cut_step = (uint32_t)w->step;
  snprintf(aw->where->call, sizeof aw->where->call, "%s", pc_call_name(w->info.call));
  snprintf(aw->where->op, sizeof aw->where->op, "%s", w->index ? cc_op_name(w->kind) : "open");
  return false;
}

uint64_t cc_again(const cc_case *c, const cc_explore_opts *o, const char *crashed, const cc_schedule *only,
                  bool tell, cc_verdict *v, cc_again_where *where) {
  memset(v, 0, sizeof *v);
  memset(where, 0, sizeof *where);
  char file[1100], trace[1100], model[1100], image[1100], why[600] = "";
  snprintf(file, sizeof file, "%s.again", crashed);
  snprintf(trace, sizeof trace, "%s.again-trace", crashed);
  snprintf(model, sizeof model, "%s.again-model", crashed);
  snprintf(image, sizeof image, "%s.again-image", crashed);
  char states[1200];
  snprintf(states, sizeof states, "%s.states", file);
  cc_case *follow = malloc(sizeof *follow);
  uint64_t checked = 0;
  cc_run run = {0};
  bool one = only && only->cut_step;
  /* The whole follow-up's run under the shim leaves the model's states; a run cut at one
   * step cannot, so the model then runs here, on a copy of its own. */
  if (!follow || !copy_file(crashed, file) || (one && !copy_file(crashed, model))) {
    snprintf(v->v[0].found, sizeof v->v[0].found, "cannot copy the crash image");
    goto fail;
  }
  cc_follow_up(follow, c->page_size, c->sector);
  follow->sparse = c->sparse; /* the recovered file is opened as the workload opened it */
  follow->format3 = c->format3;
  follow->upgrade = c->upgrade;
  char spec[96];
  if (one) cc_cut_spec(only, spec, sizeof spec);
  cc_explore_opts rec = *o;
  rec.keep_states = !one;
  if (one) unlink(image); /* the shim writes it at the cut: none if the run is shorter */
  int st = cc_record(follow, &rec, file, trace, one ? spec : NULL, one ? image : NULL, true, why, sizeof why);
  int model_rc = one ? cc_run_case_on(follow, model, &run) : st == 0 || st == 1 ? cc_run_load(states, &run) : CC_EIO;
  if (model_rc != CC_OK || (st != 0 && st != 99)) {
    snprintf(v->v[0].found, sizeof v->v[0].found, "the follow-up workload fails on the crash image: %.200s",
             run.error[0] ? run.error : why[0] ? why : "its run under the shim failed");
    goto fail;
  }
  if (one) {
    /* One state: the image the shim wrote at the cut (none if the run is shorter). */
    if (st != 99) goto out;
    pc_trace *t = NULL;
    pc_step_info info = {0};
    if (pc_trace_open(trace, &t) == PC_OK) pc_trace_step_info(t, only->cut_step, &info);
    pc_trace_free(t);
    size_t index = info.op ? (size_t)info.op - 1 : 0;
    if (index >= run.nstates) index = run.nstates - 1;
    cc_check_image_flags(image, c->page_size, cc_create_flags(follow), &run.states[index ? index - 1 : 0],
                         &run.states[index], index ? follow->ops[index - 1].kind : CC_OP_KINDS, NULL, v);
    checked = 1;
    where->step = only->cut_step;
    where->sched = *only;
    snprintf(where->call, sizeof where->call, "%s", pc_call_name(info.call));
    snprintf(where->op, sizeof where->op, "%s", index ? cc_op_name(follow->ops[index - 1].kind) : "open");
    if (tell)
      printf("follow-up on the crash image: power cut at its step %u: %s in operation %zu (%s)\n", only->cut_step,
             where->call, index, where->op);
    goto out;
  }
  cc_explore_opts narrow = *o;
  narrow.random_tears = narrow.random_writebacks = 0;
  narrow.writeback_all = narrow.garbage_head = false; /* one garbage sector per crash: the first cut's */
  again_walk aw = {.v = v, .where = where};
  walker w = {.c = follow, .run = &run, .existing = true, .o = &narrow, .trace_path = trace, .image = image,
              .shard = 0, .shards = 1, .workers = 1, .verifying = verifying(), .visit = again_visit, .ctx = &aw};
  if (walk(&w) != CC_OK || w.error[0]) {
    snprintf(v->v[0].found, sizeof v->v[0].found, "cannot walk the follow-up: %.250s", w.error);
    goto fail;
  }
  checked = w.distinct;
  goto out;
fail:
  v->nviolations = 1;
  v->v[0].invariant = "R7";
  snprintf(v->v[0].expected, sizeof v->v[0].expected, "the recovered file keeps working");
out:
  cc_run_free(&run);
  free(follow);
  /* The copy and the walk's image stay for the next follow-up to overwrite (copy_file). */
  unlink(trace);
  unlink(model);
  unlink(states);
  char extra[1200];
  snprintf(extra, sizeof extra, "%s.case", file);
  unlink(extra);
  return checked;
}

/* --errors: a walk of an error run's trace over a window of steps (see explore.h). */
typedef struct window_walk {
  cc_window_visit visit;
  void *ctx;
} window_walk;

static bool window_visit(walker *w, const cc_verdict *v) {
  window_walk *ww = w->ctx;
  return ww->visit(ww->ctx, v, w->step, pc_call_name(w->info.call), w->index, w->kind, w->sched);
}

int cc_walk_window(const cc_case *c, const cc_explore_opts *o, const cc_run *run, const char *trace,
                   const char *image, uint64_t first_step, size_t last_index, size_t inflight_index,
                   const cc_state *inflight_after, cc_window_visit visit, void *ctx, uint64_t *states,
                   uint64_t *distinct, char *why, size_t whylen) {
  window_walk ww = {.visit = visit, .ctx = ctx};
  walker w = {.c = c, .run = run, .o = o, .trace_path = trace, .image = image, .shard = 0, .shards = 1, .workers = 1,
              .verifying = verifying(), .visit = window_visit, .ctx = &ww, .first_step = first_step,
              .last_index = last_index ? last_index : SIZE_MAX, .final = true, .inflight_index = inflight_index,
              .inflight_after = inflight_after};
  int rc = walk(&w);
  *states = w.states;
  *distinct = w.distinct;
  if (w.error[0]) snprintf(why, whylen, "%s", w.error);
  return rc != CC_OK ? rc : w.error[0] ? CC_EIO : CC_OK;
}

/* ---- R7's forced follow-ups: one per distinct file recovery makes ------------------ */

/* Where the follow-up matters most is where recovery had work: a crash image whose
 * writer's open repairs page 0, falls back to the other metadata copy, reclaims pages
 * or mirrors directory copies, and a cut inside the create (the file a clean run never
 * holds: a half-written superblock may open as valid). Such a file may look right to
 * every check of R1-R6 and still break under the next operation that takes a path no
 * other state takes (the first directory append of a file whose page-0 section never
 * had a valid checksum). So each of them is followed, not a sample; but thousands
 * of crash states recover to the same few files (every tear of one page-0 write, once
 * repaired, is the same page 0), and each distinct one is followed once.
 *
 * Identity of a recovered file: its bytes after a real writer's open (on a copy, not
 * under the shim), and which pages that open changed. The follow-up's own open repeats
 * that recovery under the shim, and cuts it at each of its writes: states with the
 * same identity give it the same writes to cut. What those cuts tear the writes from
 * (the crash image's version of the pages recovery rewrites) may differ, but each of
 * those versions is itself a tear of the workload's write, explored as such. */
#define KEY_PAGE_MIX 0xD6E8FEB86659FD93ull
#define KEY_CHANGED_MIX 0xC2B2AE3D27D4EB4Full
#define KEY_SIZE_MIX 0x9E3779B97F4A7C15ull

/* The identity of what a writer's open makes of `image`, recovering a copy at `scratch`
 * (left there, and removed by the caller). False with `why` when that open fails: a
 * state the checker passed then fails R7 itself, so the caller follows it regardless. */
static bool recovered_key(const char *image, const char *scratch, size_t ps, uint64_t *key, char *why,
                          size_t whylen) {
  mp_pager *p = NULL;
  if (!copy_file(image, scratch)) {
    snprintf(why, whylen, "cannot copy %s", image);
    return false;
  }
  if (mp_open_explain(scratch, 0, &p, why, whylen) != MP_OK) return false;
  /* Pages whose bytes the pager never interprets: allocated regular pages (user data) and
   * the current copies of protected pages (user data under a checksum the directory holds,
   * and which the checker verified). */
  size_t nwords = (size_t)((mp_page_count(p) + 63) / 64);
  uint64_t *opaque = calloc(nwords ? nwords : 1, 8);
  bool ok = opaque && mp_regular_bits(p, 0, opaque, nwords) == MP_OK;
  uint64_t id, pg;
  uint32_t crc;
  for (uint64_t from = 0; ok && mp_next_protected(p, from, &id) == MP_OK; from = id + 1)
    if (mp_protected_where(p, id, &pg, &crc) == MP_OK && pg / 64 < nwords) opaque[pg / 64] |= UINT64_C(1) << (pg % 64);
  if (mp_close(p) != MP_OK || !ok) {
    snprintf(why, whylen, "cannot read the recovered copy's pages");
    free(opaque);
    return false;
  }
  enum { PAGES = 16 };
  uint8_t *was = malloc(PAGES * ps), *now = malloc(PAGES * ps);
  int fw = open(image, O_RDONLY), fn = open(scratch, O_RDONLY);
  ok = was && now && fw >= 0 && fn >= 0;
  uint64_t sum = 0, changed = 0, size = 0;
  for (uint64_t first = 0; ok; first += PAGES) {
    ssize_t nw = pread(fw, was, PAGES * ps, (off_t)(first * ps)), nn = pread(fn, now, PAGES * ps, (off_t)(first * ps));
    if (nw < 0 || nn < 0) ok = false;
    if (!ok || nn == 0) break;
    size += (uint64_t)nn;
    if (nw < nn) memset(was + nw, 0, (size_t)(nn - nw)); /* grown by recovery: its new bytes changed */
    for (size_t k = 0; k * ps < (size_t)nn; k++) {
      size_t len = (size_t)nn - k * ps < ps ? (size_t)nn - k * ps : ps;
      uint64_t page = first + k;
      bool skip = page / 64 < nwords && (opaque[page / 64] >> (page % 64) & 1);
      if (!skip) sum += cc_hash(now + k * ps, len) ^ (page + 1) * KEY_PAGE_MIX;
      /* A page recovery rewrites counts with the bytes it rewrites them from: recovery takes
       * another path (and writes other things to cut) from another torn version. */
      if (memcmp(was + k * ps, now + k * ps, len) != 0 || (uint64_t)nw < k * ps + len)
        changed += (page + 1) * KEY_CHANGED_MIX ^ cc_hash(was + k * ps, len);
    }
  }
  if (!ok) snprintf(why, whylen, "cannot read the crash image or its recovered copy");
  if (fw >= 0) close(fw);
  if (fn >= 0) close(fn);
  free(was);
  free(now);
  free(opaque);
  *key = sum ^ (changed << 17 | changed >> 47) ^ size * KEY_SIZE_MIX;
  return ok;
}

static void write_reproducer(const job *jb, cc_found *f, unsigned index) {
  if (!jb->o->outdir) return;
  mkdir(jb->o->outdir, 0755);
  cc_case *rc = malloc(sizeof *rc);
  if (!rc) return;
  *rc = *jb->c;
  rc->sched = f->sched;
  rc->again = f->again;
  char tear[32];
  cc_schedule_tear_text(&f->sched, tear, sizeof tear);
  for (char *p = tear; *p; p++)
    if (*p == ':') *p = '-';
  snprintf(f->reproducer, sizeof f->reproducer, "%s/%s-step%u-%s-%s-%u-%u.case", jb->o->outdir, f->v.invariant,
           f->step, tear, cc_writeback_name(f->sched.writeback), f->sched.seed, (jb->shard * jb->workers + jb->worker) * 1000 + index);
  if (cc_case_save_text(rc, f->reproducer) != CC_OK) f->reproducer[0] = 0;
  free(rc);
}

/* Where the next finding goes in a list of at most max: the next free place, else (for
 * a violation of R1-R6) the place of the last R7 finding, whose reproducer goes; else
 * nowhere. A bug that breaks R1-R6 somewhere usually breaks R7 in many follow-ups too,
 * often earlier in the enumeration; the direct finding is the one to read first. */
static cc_found *found_slot(cc_found *found, unsigned *n, unsigned max, bool direct) {
  if (*n < max) return &found[(*n)++];
  for (unsigned i = *n; direct && i-- > 0;)
    if (strcmp(found[i].v.invariant, "R7") == 0) {
      if (found[i].reproducer[0]) unlink(found[i].reproducer);
      return &found[i];
    }
  return NULL;
}

/* The explorer's visitor: counts, runs R7's follow-ups (forced and sampled), keeps
 * the first violations (those of R1-R6 before R7's) and writes their reproducers. */
typedef struct explore_walk {
  const job *jb;
  uint64_t next_again;
  cc_hashset followed; /* identities of the recovered files a forced follow-up ran on */
  double last_progress;
} explore_walk;

/* Workers share the identities of the files followed (a mapping made before they fork):
 * a crash image goes to one worker, but the file it recovers to may be another worker's
 * too. Open addressing; a slot is claimed by compare-and-swap, so two workers never both
 * claim one identity. A full table says "new" (a follow-up too many, never one too few). */
#define SHARED_SLOTS (UINT64_C(1) << 20)

static bool shared_add(uint64_t *slots, uint64_t key) {
  if (!key) key = 1; /* 0 marks an empty slot */
  for (uint64_t i = key & (SHARED_SLOTS - 1), n = 0; n < 4096; i = (i + 1) & (SHARED_SLOTS - 1), n++) {
    uint64_t seen = 0;
    if (__atomic_compare_exchange_n(&slots[i], &seen, key, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return true;
    if (seen == key) return false;
  }
  return true;
}

/* Should this state (which passed R1-R6) get a forced follow-up? Counts it either way;
 * *candidate says whether it is one of the states forced follow-ups are for (followed
 * now, or its file was already), which the sample leaves alone. */
static bool forced_again(walker *w, const cc_verdict *v, bool *candidate) {
  explore_walk *ew = w->ctx;
  cc_explore_result *r = ew->jb->r;
  bool in_create = !w->existing && w->index == 0;
  *candidate = in_create || v->recovery;
  if (!*candidate) return false;
  char scratch[1100], why[300] = "";
  uint64_t key;
  snprintf(scratch, sizeof scratch, "%s.recovered", w->image);
  bool known = recovered_key(w->image, scratch, w->c->page_size, &key, why, sizeof why); /* (scratch stays: copy_file) */
  if (known && !(ew->jb->followed ? shared_add(ew->jb->followed, key) : cc_hashset_add(&ew->followed, key))) {
    r->again_same++;
    return false;
  }
  if (in_create) r->again_create++;
  else r->again_repair++;
  return true;
}

static bool explore_visit(walker *w, const cc_verdict *checked) {
  explore_walk *ew = w->ctx;
  const job *jb = ew->jb;
  cc_explore_result *r = jb->r;
  const cc_verdict *vp = checked; /* (copied only when R7 changes it) */
  cc_verdict r7;
  cc_again_where aw = {0};
  bool candidate = false, sampled = false;
  uint64_t stop_at = jb->stop ? __atomic_load_n(jb->stop, __ATOMIC_RELAXED) : 0;
  if (stop_at && w->states > stop_at) { /* past another worker's violation */
    r->stopped = true;
    return false;
  }
  /* A state without a file, or one that rightly does not open, has nothing to recover: R7
   * does not follow it. */
  bool follow = !vp->nviolations && !vp->refused && !jb->o->again_off && !w->missing;
  bool forced = follow && forced_again(w, vp, &candidate);
  if (!candidate && follow && jb->o->again && w->step >= ew->next_again) {
    /* R7 on a sample of the other crash states, spread over the steps. */
    uint64_t gap = w->total_steps / jb->o->again;
    ew->next_again = w->step + (gap ? gap : 1);
    r->again_sampled++;
    sampled = true;
  }
  if (forced || sampled) {
    cc_verdict inner;
    unsigned long long served = cc_fs_served();
    r->again_states += cc_again(jb->c, w->o, w->image, NULL, false, &inner, &aw);
    r->again_runs++;
    r->again_forked += cc_fs_served() > served;
    if (inner.nviolations) {
      r7 = inner;
      snprintf(r7.v[0].found, sizeof r7.v[0].found, "after recovery, a cut at follow-up step %u (%s in %s, tear %s): %s: %.150s",
               aw.step, aw.call, aw.op, cc_tear_name(aw.sched.tear), inner.v[0].invariant, inner.v[0].found);
      r7.v[0].invariant = "R7";
      vp = &r7;
    }
  }
  r->leaks += vp->leaks;
  r->reclaimed += vp->reclaimed;
  if (vp->reclaimed) r->leaky_states++;
  if (w->existing && w->index == 0) { /* cut in the first open of the case's image */
    r->open_states++;
    if (checked->recovery & MP_RECOVER_ADOPT) r->adopt_states++;
  }
  if (!vp->nviolations) return true;
  /* The first violation of R1-R6 is what a bug breaks directly; an R7
   * follow-up may trip over the same bug earlier in the enumeration. */
  bool direct = strcmp(vp->v[0].invariant, "R7") != 0;
  if (!r->violations++ || (direct && r->first_is_again)) {
    r->first_violation_state = w->states;
    r->first_is_again = !direct;
  }
  bool going = !jb->o->fail_fast;
  if (!going) {
    r->stopped = true;
    for (uint64_t was = jb->stop ? __atomic_load_n(jb->stop, __ATOMIC_RELAXED) : 0;
         jb->stop && (!was || w->states < was);)
      if (__atomic_compare_exchange_n(jb->stop, &was, w->states, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) break;
  }
  cc_found *f = found_slot(r->found, &r->nfound, jb->o->max_violations, direct);
  if (!f) return going;
  memset(f, 0, sizeof *f);
  f->v = vp->v[0];
  f->step = (uint32_t)w->step;
  f->sched = *w->sched;
  f->sched.cut_step = (uint32_t)w->step;
  f->again = aw.sched;
  f->op_index = (uint32_t)w->index;
  snprintf(f->call, sizeof f->call, "%s", pc_call_name(w->info.call));
  snprintf(f->op, sizeof f->op, "%s", w->index ? cc_op_name(w->kind) : w->existing ? "open" : "create");
  write_reproducer(jb, f, (unsigned)r->violations); /* unique, where a place in the list is not */
  return going;
}

static void explore_stepped(walker *w) {
  explore_walk *ew = w->ctx;
  if (!ew->jb->progress || now_s() - ew->last_progress <= 0.25) return;
  ew->last_progress = now_s();
  fprintf(stderr, "\rcrashcheck: step %llu/%llu, %llu states, %llu distinct, %llu violations ",
          (unsigned long long)w->step, (unsigned long long)w->total_steps, (unsigned long long)w->states,
          (unsigned long long)w->distinct, (unsigned long long)ew->jb->r->violations);
}

static int run_job(const job *jb) {
  char image[1024];
  snprintf(image, sizeof image, "%s/image-%u", jb->o->workdir, jb->worker);
  explore_walk ew = {.jb = jb, .next_again = 1};
  /* The walk and its R7 follow-ups count crash coverage here. */
  cc_coverage cov;
  cc_coverage_init(&cov, jb->c->page_size, jb->c->sector);
  cov.create3 = jb->c->format3;
  cc_explore_opts counted = *jb->o;
  counted.cover = &cov;
  walker w = {.c = jb->c, .run = jb->run, .existing = jb->c->image[0] != 0, .o = &counted,
              .trace_path = jb->trace_path, .image = image, .shard = jb->shard, .shards = jb->shards,
              .worker = jb->worker, .workers = jb->workers,
              .verifying = verifying(), .visit = explore_visit, .stepped = explore_stepped, .ctx = &ew,
              .from_index = jb->c->explore_from};
  int rc = walk(&w);
  cc_fs_stop(); /* a worker's server ends with it */
  memcpy(jb->r->cover, cov.cell, sizeof cov.cell);
  cc_coverage_free(&cov);
  cc_hashset_free(&ew.followed);
  if (jb->progress) fprintf(stderr, "\r%*s\r", 90, "");
  jb->r->steps = w.steps;
  jb->r->states = w.states;
  jb->r->distinct = w.distinct;
  if (w.error[0]) snprintf(jb->r->error, sizeof jb->r->error, "%s", w.error);
  return rc;
}

/* Workers each take the images cc_takes gives them and send back their counters and
 * findings through a pipe. */
typedef struct explore_jobs {
  job *base;
  unsigned jobs;
  cc_explore_result sum;
} explore_jobs;

static int explore_work(void *ctx, unsigned j, int fd) {
  explore_jobs *ej = ctx;
  cc_explore_result *r = ej->base->r;
  job mine = *ej->base;
  mine.worker = j;
  mine.workers = ej->jobs;
  mine.progress = ej->base->progress && j == 0;
  run_job(&mine);
  if (cc_send(fd, r, sizeof *r) != 0) return -1;
  for (unsigned k = 0; k < r->nfound; k++)
    if (cc_send(fd, &r->found[k], sizeof r->found[k]) != 0) return -1;
  return 0;
}

static int explore_merge(void *ctx, unsigned j, FILE *in) {
  (void)j;
  explore_jobs *ej = ctx;
  cc_explore_result *sum = &ej->sum, part;
  if (fread(&part, sizeof part, 1, in) != 1) return -1;
  sum->steps = part.steps; /* every worker walks every step */
  sum->states = part.states;
  sum->distinct += part.distinct;
  if (part.first_violation_state &&
      (!sum->first_violation_state || part.first_violation_state < sum->first_violation_state))
    sum->first_violation_state = part.first_violation_state;
  sum->violations += part.violations;
  sum->leaks += part.leaks;
  sum->again_runs += part.again_runs;
  sum->again_states += part.again_states;
  sum->again_repair += part.again_repair;
  sum->again_create += part.again_create;
  sum->again_sampled += part.again_sampled;
  sum->again_same += part.again_same;
  sum->again_forked += part.again_forked;
  sum->reclaimed += part.reclaimed;
  sum->leaky_states += part.leaky_states;
  sum->open_states += part.open_states;
  sum->adopt_states += part.adopt_states;
  sum->stopped |= part.stopped;
  cc_coverage_merge(sum->cover, part.cover);
  if (part.error[0]) snprintf(sum->error, sizeof sum->error, "%s", part.error);
  for (unsigned k = 0; k < part.nfound; k++) {
    cc_found f;
    if (fread(&f, sizeof f, 1, in) != 1) return -1;
    cc_found *to = found_slot(sum->found, &sum->nfound, ej->base->o->max_violations, strcmp(f.v.invariant, "R7") != 0);
    if (to) *to = f;
  }
  return 0;
}

static int run_jobs(job *base, unsigned jobs) {
  cc_explore_result *r = base->r;
  if (jobs <= 1) return run_job(base);
  /* Pages of it are only touched as slots fill (a few thousand identities at most, mostly). */
  void *shared = mmap(NULL, SHARED_SLOTS * 8, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return CC_ENOMEM;
  base->followed = shared;
  uint64_t *stop = base->o->fail_fast ? mmap(NULL, sizeof *stop, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) : NULL;
  if (stop == MAP_FAILED) {
    munmap(shared, SHARED_SLOTS * 8);
    return CC_ENOMEM;
  }
  base->stop = stop;
  explore_jobs ej = {.base = base, .jobs = jobs, .sum = *r};
  cc_explore_result *sum = &ej.sum;
  sum->steps = sum->states = sum->distinct = sum->violations = sum->leaks = sum->reclaimed = sum->leaky_states = 0;
  sum->open_states = sum->adopt_states = 0;
  sum->again_runs = sum->again_states = sum->again_repair = sum->again_create = sum->again_sampled = sum->again_same = 0;
  sum->again_forked = 0;
  memset(sum->cover, 0, sizeof sum->cover);
  sum->nfound = 0;
  sum->first_violation_state = 0;
  char why[200] = "";
  int rc = cc_run_jobs(jobs, explore_work, explore_merge, &ej, why, sizeof why);
  *r = ej.sum;
  if (rc != CC_OK && !r->error[0]) snprintf(r->error, sizeof r->error, "%s", why);
  munmap(shared, SHARED_SLOTS * 8);
  if (stop) munmap(stop, sizeof *stop);
  base->followed = NULL;
  base->stop = NULL;
  return rc;
}

int cc_explore(const cc_case *c, const cc_explore_opts *o, cc_explore_result *r) {
  memset(r, 0, sizeof *r);
  double t0 = now_s();
  r->found = calloc(o->max_violations ? o->max_violations : 1, sizeof *r->found);
  if (!r->found) return CC_ENOMEM;
  char file[1024], trace[1024], model[1024];
  snprintf(file, sizeof file, "%s/pages", o->workdir);
  snprintf(trace, sizeof trace, "%s/trace", o->workdir);
  snprintf(model, sizeof model, "%s/model.pages", o->workdir);
  unlink(file);
  unlink(trace);
  /* A case with an image starts from a copy of it (the recorded run and the model alike):
   * the recorded run's open is then the file's first writer open, adoption included. */
  bool from_image = c->image[0] != 0;
  if (from_image && (cc_case_image_copy(c, file, r->error, sizeof r->error) != CC_OK ||
                     cc_case_image_copy(c, model, r->error, sizeof r->error) != CC_OK))
    return CC_EIO;
  /* The recorded run leaves the model's states (as R7's follow-ups' runs do), so the model
   * need not run again here; a run from an image has the states of its own start. */
  cc_explore_opts rec = *o;
  rec.keep_states = !from_image;
  char states[1100];
  snprintf(states, sizeof states, "%s.states", file);
  int st = cc_record(c, &rec, file, trace, NULL, NULL, from_image, r->error, sizeof r->error);
  if (st != 0) {
    if (!r->error[0])
      snprintf(r->error, sizeof r->error, "the recorded workload failed (exit %d): it disagrees with the model "
               "without any crash (run `crashcheck replay` on the case for the story)", st);
    r->run_failed = st == 1;
    unlink(model);
    unlink(states);
    return st < 0 ? st : CC_EIO;
  }
  cc_run run;
  int rc = from_image ? cc_run_case_image(c, model, &run) : cc_run_load(states, &run);
  unlink(model);
  unlink(states);
  if (rc != CC_OK) {
    snprintf(r->error, sizeof r->error, "the workload does not run cleanly: %s", run.error);
    r->run_failed = rc == CC_EINVAL;
    cc_run_free(&run);
    return rc;
  }
  job base = {.c = c, .o = o, .run = &run, .trace_path = trace, .file = file, .shard = o->shard,
              .shards = o->shards ? o->shards : 1, .workers = 1, .progress = o->progress, .r = r};
  rc = run_jobs(&base, o->jobs);
  cc_run_free(&run);
  unlink(file);
  unlink(trace);
  r->seconds = now_s() - t0;
  return rc;
}

/* ---- crash choices, for other walkers (crashcheck run) -------------------------------- */

size_t cc_crash_choices(const cc_explore_opts *o, uint64_t n, cc_schedule *out, size_t cap) {
  return choices(o, n, false, false, out, cap);
}

void cc_crash_of(const cc_schedule *s, pc_crash *out) { to_pc_crash(s, out); }
