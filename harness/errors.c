/* errors.c: crashcheck explore --errors: every call of the recorded run that can fail is
 * failed in turn, with each outcome of a failing sync, and the pager is checked after it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "explore.h"
#include "mappedpages.h"
#include "powercut.h"
#include "workload.h"

/*
 * The protocol, and why it is so:
 *
 * - The case is recorded once, plainly; its trace names every step and the operation it
 *   belongs to. The failable steps are the msync, fsync, fdatasync, ftruncate and fallocate
 *   calls of the operations (not of the create: a failed mp_create leaves no file, and the
 *   run has nothing to go on with). mmap and mremap are not steps of the shim, so their
 *   failures are not injected.
 * - Each failable step is failed in its own recorded run (POWERCUT_ERROR), with EIO, or
 *   ENOSPC where the call grows the file. A failing sync gets each outcome: none of its
 *   sectors written, all, the first one, the last one (as for tears: a real failed fsync
 *   may have written any subset, and the kernel then forgets the rest). A failed size
 *   change changes nothing, so it has one outcome.
 * - The run under the error is the model: it cannot be computed without the error (which
 *   call fails, whether the handle was poisoned and what its reopen found), so the runner
 *   (cc_run_case_errors) holds the pager to the contract as it goes, and leaves its states
 *   in a file (CRASHCHECK_STATES). A run that breaks the contract is a violation (E1) of
 *   its own; no crash is needed to show it.
 * - A failed protected commit, mp_sync_page or mp_sync is retried once on the same handle,
 *   inside its operation, as an application would: the handle is usable, and the retry's
 *   MP_OK must hold what the failed msync dropped (fsync-gate), which the pager dirties
 *   again as it fails. The shim sees that store of identical bytes with its exact write
 *   tracking (POWERCUT_MMAP=track, the default), not under `sync`, which compares bytes.
 * - The crash states checked are those right after the error step (a cut during the failing
 *   call is one plain explore checks), of every later step of its operation and of the next
 *   one: what the error path wrote, and what the next operation built on it. While the
 *   failed operation is in flight, its end as the plain run has it is a right outcome too. Identical images are checked once per
 *   run. Then the durable state the whole run leaves is checked against its last state: an
 *   operation that reported success but whose effect the error had lost shows there,
 *   however late.
 * - An injected ENOSPC leaves the disk full for the rest of the run (the shim's disk-full
 *   model): later calls needing new blocks fail with ENOSPC too, and a store through the
 *   mapping into a page the disk does not back (a hole: the file grown by ftruncate after
 *   the disk filled) kills the run with SIGBUS, as the kernel would. A run that dies so is
 *   an E1 violation: the pager used space it had not reserved, and a full disk must surface
 *   as MP_ENOSPC from the call that needed the space, never as a crash later. The shim's
 *   trace says which store, and the runner's notes which calls had failed.
 * - Runs are independent: with --jobs N, N processes take every N-th run; --shard I/N
 *   keeps every N-th run (from the I-th) and the union of the shards is the whole.
 */

#define STATES_MAGIC UINT64_C(0x3153455441545343) /* "CSTATES1" */

/* ---- the states of an error run ------------------------------------------------------ */

static bool put(FILE *f, const void *p, size_t n) { return !n || fwrite(p, 1, n, f) == n; }
static bool get(FILE *f, void *p, size_t n) { return !n || fread(p, 1, n, f) == n; }

int cc_run_save(const cc_run *run, const char *path) {
  FILE *f = fopen(path, "wb");
  if (!f) return CC_EIO;
  uint64_t hdr[6] = {STATES_MAGIC, run->nstates, run->failed_op, (uint64_t)(int64_t)run->failed_rc,
                     run->poisoned_op, run->adopted_new};
  bool ok = put(f, hdr, sizeof hdr) && put(f, run->error, sizeof run->error);
  for (size_t i = 0; ok && i < run->nstates; i++) {
    const cc_state *s = &run->states[i];
    uint64_t n[2] = {s->nreg, s->nprot};
    ok = put(f, n, sizeof n) && put(f, s->reg, s->nreg * 8) && put(f, s->synced, s->nreg * 8) &&
         put(f, s->prot, s->nprot * 8) && put(f, s->prot_hash, s->nprot * 8);
  }
  if (fclose(f) != 0) ok = false;
  return ok ? CC_OK : CC_EIO;
}

int cc_run_load(const char *path, cc_run *run) {
  memset(run, 0, sizeof *run);
  FILE *f = fopen(path, "rb");
  if (!f) return CC_EIO;
  uint64_t hdr[6];
  bool ok = get(f, hdr, sizeof hdr) && hdr[0] == STATES_MAGIC && hdr[1] <= CC_MAX_OPS + 1 &&
            get(f, run->error, sizeof run->error);
  run->error[sizeof run->error - 1] = 0;
  if (ok) {
    run->failed_op = (size_t)hdr[2];
    run->failed_rc = (int)(int64_t)hdr[3];
    run->poisoned_op = (size_t)hdr[4];
    run->adopted_new = hdr[5] != 0;
    run->states = calloc(hdr[1] ? hdr[1] : 1, sizeof *run->states);
    ok = run->states != NULL;
  }
  for (uint64_t i = 0; ok && i < hdr[1]; i++) {
    uint64_t n[2];
    if (!get(f, n, sizeof n) || n[0] > (UINT64_C(1) << 32) || n[1] > (UINT64_C(1) << 32)) {
      ok = false;
      break;
    }
    cc_state v = {.nreg = n[0], .nprot = n[1]};
    v.reg = malloc(n[0] * 8 + 8), v.synced = malloc(n[0] * 8 + 8);
    v.prot = malloc(n[1] * 8 + 8), v.prot_hash = malloc(n[1] * 8 + 8);
    ok = v.reg && v.synced && v.prot && v.prot_hash && get(f, v.reg, n[0] * 8) && get(f, v.synced, n[0] * 8) &&
         get(f, v.prot, n[1] * 8) && get(f, v.prot_hash, n[1] * 8) && cc_state_copy(&v, &run->states[i]) == CC_OK;
    if (ok) run->nstates++;
    free(v.reg), free(v.synced), free(v.prot), free(v.prot_hash);
  }
  fclose(f);
  if (!ok) cc_run_free(run);
  return ok ? CC_OK : CC_EIO;
}

/* ---- the runs to make ---------------------------------------------------------------- */

typedef struct etask {
  uint32_t step;
  int err;
  cc_schedule tear; /* outcome (tear, tear_n) */
  size_t op;        /* the operation the step belongs to (1-based) */
  char call[24];
} etask;

static bool failable(int call) {
  return call == PC_CALL_MSYNC || call == PC_CALL_FSYNC || call == PC_CALL_FDATASYNC || call == PC_CALL_FTRUNCATE ||
         call == PC_CALL_FALLOCATE || call == PC_CALL_POSIX_FALLOCATE;
}

static bool is_sync(int call) { return call == PC_CALL_MSYNC || call == PC_CALL_FSYNC || call == PC_CALL_FDATASYNC; }

/* The failable steps of the plain trace, each with its outcomes. */
static int tasks_of(const char *trace, etask **out, size_t *nout, uint64_t *nsteps, char *why, size_t whylen) {
  pc_trace *t = NULL;
  pc_replay *rp = NULL;
  int rc = pc_trace_open(trace, &t);
  if (rc == PC_OK) rc = pc_replay_new(t, &rp);
  if (rc != PC_OK) {
    snprintf(why, whylen, "cannot read the trace %s: %s", trace, pc_strerror(rc));
    pc_trace_free(t);
    return CC_EIO;
  }
  etask *ts = NULL;
  size_t n = 0, cap = 0;
  uint64_t step, last_len = 0;
  *nsteps = 0;
  while (pc_replay_next(rp, &step) == PC_OK && step) {
    pc_step_info info;
    pc_model *m;
    pc_trace_step_info(t, step, &info);
    pc_replay_model(rp, &m);
    const uint8_t *vol;
    uint64_t len = 0, sectors = 0;
    pc_model_volatile(m, 0, &vol, &len);
    pc_model_step_sectors(m, &sectors);
    uint64_t before = last_len;
    last_len = len;
    if (!failable(info.call) || info.op < 2 || info.err) continue;
    (*nsteps)++;
    etask base = {.step = (uint32_t)step, .op = (size_t)info.op - 1};
    snprintf(base.call, sizeof base.call, "%s", pc_call_name(info.call));
    cc_schedule outcomes[4] = {{.tear = CC_TEAR_NONE}, {.tear = CC_TEAR_ALL}, {.tear = CC_TEAR_PREFIX, .tear_n = 1},
                               {.tear = CC_TEAR_SUFFIX, .tear_n = 1}};
    /* prefix:1 and suffix:1 of fewer than 2 sectors are none or all */
    size_t kinds = !is_sync(info.call) ? 1 : sectors >= 2 ? 4 : 2;
    if (info.call == PC_CALL_FTRUNCATE) base.err = info.off > before ? ENOSPC : EIO;
    else base.err = is_sync(info.call) ? EIO : ENOSPC;
    for (size_t k = 0; k < kinds; k++) {
      if (n == cap) {
        cap = cap ? cap * 2 : 256;
        etask *g = realloc(ts, cap * sizeof *g);
        if (!g) {
          free(ts);
          pc_replay_free(rp);
          pc_trace_free(t);
          return CC_ENOMEM;
        }
        ts = g;
      }
      ts[n] = base;
      ts[n++].tear = outcomes[k];
    }
  }
  pc_replay_free(rp);
  pc_trace_free(t);
  *out = ts;
  *nout = n;
  return CC_OK;
}

/* ---- one error run ---------------------------------------------------------------------- */

typedef struct erun {
  const cc_case *c;
  const cc_explore_opts *o;
  const cc_run *plain; /* the run without errors: how each operation ends when nothing fails */
  const etask *t;
  cc_explore_result *r;
  cc_run run;
} erun;

static void error_case(const cc_case *c, const etask *t, cc_case *out) {
  *out = *c;
  memset(&out->sched, 0, sizeof out->sched);
  memset(&out->again, 0, sizeof out->again);
  out->error.step = t->step;
  out->error.err = t->err;
  out->error.tear = t->tear;
}

static cc_found *add_found(erun *e, const char *inv, const char *expected, const char *found, uint64_t step,
                           const char *call, size_t op_index, int kind, const cc_schedule *sched) {
  cc_explore_result *r = e->r;
  r->violations++;
  if (!r->first_violation_state) r->first_violation_state = r->error_states ? r->error_states : 1;
  if (r->nfound >= e->o->max_violations) return NULL;
  cc_found *f = &r->found[r->nfound++];
  memset(f, 0, sizeof *f);
  f->v.invariant = inv;
  snprintf(f->v.expected, sizeof f->v.expected, "%s", expected);
  snprintf(f->v.found, sizeof f->v.found, "%s", found);
  f->step = (uint32_t)step;
  if (sched) f->sched = *sched;
  f->sched.cut_step = (uint32_t)step;
  f->op_index = (uint32_t)op_index;
  snprintf(f->call, sizeof f->call, "%s", call);
  snprintf(f->op, sizeof f->op, "%s", op_index ? cc_op_name(kind) : "create");
  cc_case *rc = malloc(sizeof *rc);
  if (!rc) return f;
  error_case(e->c, e->t, rc);
  rc->sched = f->sched;
  snprintf(f->error, sizeof f->error, "%u %s", rc->error.step, e->t->call);
  if (e->o->outdir) {
    char tear[32];
    cc_schedule_tear_text(&e->t->tear, tear, sizeof tear);
    for (char *p = tear; *p; p++)
      if (*p == ':') *p = '-';
    mkdir(e->o->outdir, 0755);
    snprintf(f->reproducer, sizeof f->reproducer, "%s/%s-error%u-%s-cut%u-%u.case", e->o->outdir, inv,
             e->t->step, tear, f->sched.cut_step, e->o->shard * 1000 + r->nfound);
    if (cc_case_save_text(rc, f->reproducer) != CC_OK) f->reproducer[0] = 0;
  }
  free(rc);
  return f;
}

static bool window_visit(void *ctx, const cc_verdict *v, uint64_t step, const char *call, size_t op_index, int kind,
                         const cc_schedule *sched) {
  erun *e = ctx;
  e->r->error_states++;
  e->r->leaks += v->leaks;
  e->r->reclaimed += v->reclaimed;
  if (v->reclaimed) e->r->leaky_states++;
  if (!v->nviolations) return true;
  char found[400];
  snprintf(found, sizeof found, "%s%.300s", step ? "" : "at the end of the run (the durable state it leaves): ",
           v->v[0].found);
  add_found(e, v->v[0].invariant, v->v[0].expected, found, step, step ? call : "end", op_index, kind, sched);
  return true;
}

/* A run the disk-full model killed with SIGBUS (exit status 128 + SIGBUS): what happened,
 * from the trace, in one sentence. False if the trace has no such store. */
static bool sigbus_story(const cc_case *c, const char *trace, uint32_t step, size_t op, char *out, size_t n) {
  pc_trace *t = NULL;
  pc_sigbus_info b;
  pc_step_info info = {0};
  if (pc_trace_open(trace, &t) != PC_OK || pc_trace_sigbus(t, &b) != PC_OK) {
    pc_trace_free(t);
    return false;
  }
  pc_trace_step_info(t, step, &info);
  /* did the operation that met the error say so? (the runner notes each failed call) */
  char said[200] = "";
  uint64_t notes = 0, after;
  const char *text;
  pc_trace_note_count(t, &notes);
  char mine[32];
  snprintf(mine, sizeof mine, "operation %zu ", op);
  for (uint64_t i = 0; i < notes && !said[0]; i++)
    if (pc_trace_note(t, i, &after, &text) == PC_OK && after >= step && !strncmp(text, mine, strlen(mine)))
      snprintf(said, sizeof said, "%.150s", text + strlen(mine));
  size_t bop = b.op ? (size_t)b.op - 1 : 0;
  char then[256];
  if (said[0]) snprintf(then, sizeof then, "which reported it (%.100s); the disk stayed full, and in operation %zu (%s)",
                        said, bop, bop ? cc_op_name(c->ops[bop - 1].kind) : "create");
  else if (bop == op) snprintf(then, sizeof then, "which went on as if it had not failed: before it returned,");
  else snprintf(then, sizeof then, "which returned MP_OK; the disk stayed full, and in operation %zu (%s)", bop,
                bop ? cc_op_name(c->ops[bop - 1].kind) : "create");
  int len = snprintf(out, n,
                     "%s at step %u failed with ENOSPC in operation %zu (%s), %s a store into the page at offset %llu, "
                     "a hole the full disk cannot back, killed the run with SIGBUS",
                     pc_call_name(info.call), step, op, op ? cc_op_name(c->ops[op - 1].kind) : "create", then,
                     (unsigned long long)b.off);
  if (len < 0 || (size_t)len >= n) memcpy(out + n - 4, "...", 4); /* cut short: say so */
  pc_trace_free(t);
  return true;
}

#define E1_EXPECTED "a failed call leaves the last committed state, MP_EPOISONED until a reopen that tells the truth"
#define E1_FULL_EXPECTED \
  "a full disk surfaces as MP_ENOSPC from the call that needs the space, never as SIGBUS on a later store"
#define E1_ALIVE_EXPECTED "a failed call leaves a handle that goes on working (or says MP_EPOISONED), never a crash"

/* A run killed by a signal that the disk-full model did not send (its trace names no store
 * into a hole). The same workload ran to its end without the error, so the error path is
 * what killed it: a store past the end of a file the pager believed grown, a bad pointer
 * after a failed allocation. That is the pager's bug, told like any other E1, not a failure
 * of the harness to run the case. */
static bool killed(int st) { return st > 128 && st < 128 + 65; }

static void killed_story(const cc_case *c, int st, uint32_t step, const char *call, size_t op, int err, char *out,
                         size_t n) {
  char num[16];
  snprintf(out, n, "%s at step %u failed with %s in operation %zu (%s); the run then died with signal %d (%s)", call,
           step, cc_errno_name(err, num, sizeof num), op, op ? cc_op_name(c->ops[op - 1].kind) : "create", st - 128,
           strsignal(st - 128));
}

static int one_run(erun *e, const char *dir) {
  char file[1200], trace[1200], image[1200], states[1300], spec[64], why[600] = "";
  snprintf(file, sizeof file, "%s/pages", dir);
  snprintf(trace, sizeof trace, "%s/trace", dir);
  snprintf(image, sizeof image, "%s/image", dir);
  snprintf(states, sizeof states, "%s.states", file);
  cc_case *ec = malloc(sizeof *ec);
  if (!ec) return CC_ENOMEM;
  error_case(e->c, e->t, ec);
  cc_error_spec(ec, spec, sizeof spec);
  free(ec);
  cc_explore_opts eo = *e->o;
  eo.error = spec;
  unlink(states);
  int st = cc_record(e->c, &eo, file, trace, NULL, NULL, false, why, sizeof why);
  int rc = CC_OK;
  char story[320];
  if (st == 128 + SIGBUS && sigbus_story(e->c, trace, e->t->step, e->t->op, story, sizeof story)) {
    e->r->error_runs++;
    e->r->error_contract++;
    add_found(e, "E1", E1_FULL_EXPECTED, story, e->t->step, e->t->call, e->t->op, e->c->ops[e->t->op - 1].kind, NULL);
    goto out;
  }
  if (killed(st)) {
    killed_story(e->c, st, e->t->step, e->t->call, e->t->op, e->t->err, story, sizeof story);
    e->r->error_runs++;
    e->r->error_contract++;
    add_found(e, "E1", E1_ALIVE_EXPECTED, story, e->t->step, e->t->call, e->t->op, e->c->ops[e->t->op - 1].kind, NULL);
    goto out;
  }
  if (st < 0 || (st != 0 && st != 1) || cc_run_load(states, &e->run) != CC_OK) {
    snprintf(e->r->error, sizeof e->r->error, "the run with error %s failed (exit %d)%s%.500s", spec, st,
             why[0] ? ": " : "", why);
    rc = CC_EIO;
    goto out;
  }
  e->r->error_runs++;
  if (e->run.error[0]) { /* the run itself broke the contract for failed calls */
    e->r->error_contract++;
    add_found(e, "E1", E1_EXPECTED, e->run.error, e->t->step, e->t->call, e->t->op, e->c->ops[e->t->op - 1].kind, NULL);
    goto out;
  }
  if (st != 0) {
    snprintf(e->r->error, sizeof e->r->error, "the run with error %s failed (exit %d) without saying why", spec, st);
    rc = CC_EIO;
    goto out;
  }
  uint64_t states_n = 0, distinct = 0;
  size_t last = e->t->op + 1 <= e->c->nops ? e->t->op + 1 : e->c->nops;
  /* From right after the error: a cut during the failing call is one of plain explore's.
   * While the failed operation is still in flight it may yet end as it would have without
   * the error (the plain run's state), as any operation in flight. */
  const cc_state *would = e->t->op < e->plain->nstates ? &e->plain->states[e->t->op] : NULL;
  rc = cc_walk_window(e->c, &eo, &e->run, trace, image, (uint64_t)e->t->step + 1, last, e->t->op, would,
                      window_visit, e, &states_n, &distinct, why, sizeof why);
  e->r->states += states_n;
  e->r->distinct += distinct;
  e->r->error_distinct += distinct;
  if (rc != CC_OK) snprintf(e->r->error, sizeof e->r->error, "error %s: %.900s", spec, why);
out:
  cc_run_free(&e->run);
  unlink(file);
  unlink(trace);
  unlink(states);
  char extra[1300];
  snprintf(extra, sizeof extra, "%s.case", file);
  unlink(extra);
  return rc;
}

/* ---- the exploration --------------------------------------------------------------------- */

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int worker(const cc_case *c, const cc_explore_opts *o, const cc_run *plain, const etask *ts, size_t n,
                  unsigned j, unsigned jobs, cc_explore_result *r) {
  char dir[1100];
  snprintf(dir, sizeof dir, "%s/errors-%u", o->workdir, j);
  mkdir(dir, 0755);
  double last = 0;
  for (size_t i = j; i < n; i += jobs) {
    erun e = {.c = c, .o = o, .plain = plain, .t = &ts[i], .r = r};
    int rc = one_run(&e, dir);
    if (rc != CC_OK) return rc;
    if (o->progress && j == 0 && now_s() - last > 0.25) {
      last = now_s();
      fprintf(stderr, "\rcrashcheck: error run %zu/%zu, %llu states, %llu violations ", i + 1, n,
              (unsigned long long)r->error_states, (unsigned long long)r->violations);
    }
  }
  rmdir(dir);
  return CC_OK;
}

static void add_result(cc_explore_result *sum, const cc_explore_result *part, const cc_found *found, unsigned max) {
  sum->states += part->states;
  sum->distinct += part->distinct;
  sum->violations += part->violations;
  sum->leaks += part->leaks;
  sum->reclaimed += part->reclaimed;
  sum->leaky_states += part->leaky_states;
  sum->error_runs += part->error_runs;
  sum->error_contract += part->error_contract;
  sum->error_states += part->error_states;
  sum->error_distinct += part->error_distinct;
  if (part->first_violation_state &&
      (!sum->first_violation_state || part->first_violation_state < sum->first_violation_state))
    sum->first_violation_state = part->first_violation_state;
  if (part->error[0] && !sum->error[0]) snprintf(sum->error, sizeof sum->error, "%s", part->error);
  for (unsigned k = 0; k < part->nfound && sum->nfound < max; k++) sum->found[sum->nfound++] = found[k];
}

int cc_explore_errors(const cc_case *c, const cc_explore_opts *o, cc_explore_result *r) {
  memset(r, 0, sizeof *r);
  double t0 = now_s();
  unsigned max = o->max_violations ? o->max_violations : 1;
  r->found = calloc(max, sizeof *r->found);
  if (!r->found) return CC_ENOMEM;
  if (c->image[0]) { /* its runs start from mp_create (cc_run_case_errors) */
    snprintf(r->error, sizeof r->error, "explore --errors does not take a case that starts from an image (%s): "
             "explore it without --errors", c->image);
    return CC_EINVAL;
  }
  char file[1024], trace[1024];
  snprintf(file, sizeof file, "%s/pages", o->workdir);
  snprintf(trace, sizeof trace, "%s/trace", o->workdir);
  cc_explore_opts once = *o;
  once.error = NULL;
  int st = cc_record(c, &once, file, trace, NULL, NULL, false, r->error, sizeof r->error);
  if (st != 0) {
    if (!r->error[0])
      snprintf(r->error, sizeof r->error, "the recorded workload failed (exit %d): it disagrees with the model "
               "without any crash or error (run `crashcheck replay` on the case for the story)", st);
    r->run_failed = st == 1;
    return st < 0 ? st : CC_EIO;
  }
  char model[1100];
  snprintf(model, sizeof model, "%s/model.pages", o->workdir);
  cc_run plain;
  if (cc_run_case(c, model, &plain) != CC_OK) {
    snprintf(r->error, sizeof r->error, "the workload does not run cleanly: %s", plain.error);
    r->run_failed = true;
    cc_run_free(&plain);
    unlink(model);
    return CC_EINVAL;
  }
  unlink(model);
  etask *ts = NULL;
  size_t n = 0;
  int rc = tasks_of(trace, &ts, &n, &r->error_steps, r->error, sizeof r->error);
  unlink(file);
  pc_trace *t = NULL;
  if (pc_trace_open(trace, &t) == PC_OK) pc_trace_step_count(t, &r->steps);
  pc_trace_free(t);
  unlink(trace);
  if (rc != CC_OK) {
    cc_run_free(&plain);
    return rc;
  }
  if (o->shards > 1) { /* --shard I/N: every N-th error run */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
      if (i % o->shards == o->shard) ts[kept++] = ts[i];
    n = kept;
  }
  unsigned jobs = o->jobs ? o->jobs : 1;
  if (jobs > 64) jobs = 64;
  if (jobs == 1) {
    rc = worker(c, o, &plain, ts, n, 0, 1, r);
  } else {
    int fds[64][2];
    pid_t pids[64];
    unsigned started = 0;
    for (unsigned j = 0; j < jobs; j++, started++) {
      if (pipe(fds[j]) != 0) break;
      fflush(NULL);
      pids[j] = fork();
      if (pids[j] < 0) {
        close(fds[j][0]);
        close(fds[j][1]);
        break;
      }
      if (pids[j] == 0) {
        close(fds[j][0]);
        cc_explore_result mine = *r; /* (found is the parent's copy: this process's own) */
        mine.nfound = 0;
        int wrc = worker(c, o, &plain, ts, n, j, jobs, &mine);
        bool ok = write(fds[j][1], &mine, sizeof mine) == (ssize_t)sizeof mine;
        for (unsigned k = 0; ok && k < mine.nfound; k++)
          ok = write(fds[j][1], &mine.found[k], sizeof mine.found[k]) == (ssize_t)sizeof mine.found[k];
        _exit(ok && wrc == CC_OK ? 0 : 1);
      }
      close(fds[j][1]);
    }
    if (started < jobs) rc = CC_ESETUP;
    cc_found *buf = calloc(max, sizeof *buf);
    for (unsigned j = 0; j < started; j++) {
      cc_explore_result part;
      FILE *in = fdopen(fds[j][0], "rb");
      if (!in || fread(&part, sizeof part, 1, in) != 1) {
        rc = CC_ESETUP;
      } else {
        unsigned got = 0;
        while (buf && got < part.nfound && fread(&buf[got], sizeof *buf, 1, in) == 1) got++;
        part.nfound = buf ? got : 0;
        add_result(r, &part, buf, max);
      }
      if (in) fclose(in);
      else close(fds[j][0]);
      int status;
      waitpid(pids[j], &status, 0);
      if (rc == CC_OK && !(WIFEXITED(status) && WEXITSTATUS(status) == 0) && !r->error[0]) rc = CC_ESETUP;
    }
    free(buf);
  }
  if (o->progress) fprintf(stderr, "\r%*s\r", 90, "");
  free(ts);
  cc_run_free(&plain);
  r->seconds = now_s() - t0;
  if (rc != CC_OK && !r->error[0]) snprintf(r->error, sizeof r->error, "an error run failed: %s", cc_strerror(rc));
  return r->error[0] ? CC_EIO : rc;
}

/* ---- replaying a case with an error ------------------------------------------------------ */

static bool final_visit(void *ctx, const cc_verdict *v, uint64_t step, const char *call, size_t op_index, int kind,
                        const cc_schedule *sched) {
  (void)step, (void)call, (void)op_index, (void)kind, (void)sched;
  *(cc_verdict *)ctx = *v;
  return true;
}

int cc_replay_error(const cc_case *c, const cc_explore_opts *o, bool tell, char *invariant, size_t invlen) {
  char file[1100], trace[1100], image[1100], states[1200], model[1100], spec[64], why[600] = "";
  snprintf(file, sizeof file, "%s/pages", o->workdir);
  snprintf(trace, sizeof trace, "%s/trace", o->workdir);
  snprintf(image, sizeof image, "%s/image", o->workdir);
  snprintf(states, sizeof states, "%s.states", file);
  snprintf(model, sizeof model, "%s/model.pages", o->workdir);
  cc_error_spec(c, spec, sizeof spec);
  cc_explore_opts eo = *o;
  eo.error = spec;
  cc_run plain = {0}, run = {0};
  int status = 0;
  if (cc_run_case(c, model, &plain) != CC_OK) {
    if (tell) printf("the workload fails without any error: %s\n", plain.error);
    snprintf(invariant, invlen, "run");
    status = 1;
    goto out;
  }
  /* The whole run with the error: the model (its states) and the contract. */
  int st = cc_record(c, &eo, file, trace, NULL, NULL, false, why, sizeof why);
  char story[320];
  if (st == 128 + SIGBUS) {
    pc_trace *t0 = NULL;
    pc_step_info i0 = {0};
    if (pc_trace_open(trace, &t0) == PC_OK) pc_trace_step_info(t0, c->error.step, &i0);
    pc_trace_free(t0);
    if (sigbus_story(c, trace, c->error.step, i0.op ? (size_t)i0.op - 1 : 0, story, sizeof story)) {
      if (tell) printf("verdict: E1 violated (the error contract)\n  expected: %s\n  found:    %s\n", E1_FULL_EXPECTED, story);
      snprintf(invariant, invlen, "E1");
      status = 1;
      goto out;
    }
  }
  if (killed(st)) {
    pc_trace *t0 = NULL;
    pc_step_info i0 = {0};
    if (pc_trace_open(trace, &t0) == PC_OK) pc_trace_step_info(t0, c->error.step, &i0);
    pc_trace_free(t0);
    killed_story(c, st, c->error.step, pc_call_name(i0.call), i0.op ? (size_t)i0.op - 1 : 0, c->error.err, story,
                 sizeof story);
    if (tell) printf("verdict: E1 violated (the error contract)\n  expected: %s\n  found:    %s\n", E1_ALIVE_EXPECTED, story);
    snprintf(invariant, invlen, "E1");
    status = 1;
    goto out;
  }
  if (st < 0 || (st != 0 && st != 1) || cc_run_load(states, &run) != CC_OK) {
    fprintf(stderr, "crashcheck: the run with error %s failed (exit %d)%s%s\n", spec, st, why[0] ? ": " : "", why);
    status = 2;
    goto out;
  }
  pc_trace *t = NULL;
  pc_step_info info = {0};
  if (pc_trace_open(trace, &t) == PC_OK) pc_trace_step_info(t, c->error.step, &info);
  pc_trace_free(t);
  size_t eop = info.op ? (size_t)info.op - 1 : 0;
  if (tell) {
    char tear[32], num[16];
    cc_schedule_tear_text(&c->error.tear, tear, sizeof tear);
    printf("error at step %u: %s (offset %llu, length %llu) in operation %zu (%s) fails with %s, outcome %s\n",
           c->error.step, pc_call_name(info.call), (unsigned long long)info.off, (unsigned long long)info.len, eop,
           eop ? cc_op_name(c->ops[eop - 1].kind) : "create", cc_errno_name(c->error.err, num, sizeof num), tear);
    if (!info.err) printf("  (the run has no failable step %u: no error happened)\n", c->error.step);
    if (run.failed_op)
      printf("the pager: operation %zu failed (%s)%s\n", run.failed_op, mp_strerror(run.failed_rc),
             run.poisoned_op ? (run.adopted_new ? "; the handle was poisoned, and the reopened file held its new state"
                                                : "; the handle was poisoned, and the reopened file held the old state")
                             : "");
    else if (info.err)
      printf("the pager: every operation returned success\n");
  }
  if (run.error[0]) {
    if (tell) printf("verdict: E1 violated (the error contract)\n  found:    %s\n", run.error);
    snprintf(invariant, invlen, "E1");
    status = 1;
    goto out;
  }
  cc_verdict v = {0};
  const char *what;
  if (c->sched.cut_step) {
    char cut[96];
    cc_cut_spec(&c->sched, cut, sizeof cut);
    st = cc_record(c, &eo, file, trace, cut, image, false, why, sizeof why);
    if (st != 99) {
      if (tell) printf("the run has fewer than %u steps: no power cut happened (exit %d)\n", c->sched.cut_step, st);
      goto out;
    }
    t = NULL;
    memset(&info, 0, sizeof info);
    if (pc_trace_open(trace, &t) == PC_OK) pc_trace_step_info(t, c->sched.cut_step, &info);
    pc_trace_free(t);
    size_t index = info.op ? (size_t)info.op - 1 : 0;
    if (index >= run.nstates) index = run.nstates - 1;
    const cc_state *before = index ? &run.states[index - 1] : NULL, *after = &run.states[index];
    if (index == eop && c->sched.cut_step > c->error.step && index < plain.nstates) after = &plain.states[index];
    char tear[32];
    cc_schedule_tear_text(&c->sched, tear, sizeof tear);
    if (tell)
      printf("power cut at step %u: %s in operation %zu (%s), tear %s, writeback %s, seed %u\n", c->sched.cut_step,
             pc_call_name(info.call), index, index ? cc_op_name(c->ops[index - 1].kind) : "create", tear,
             cc_writeback_name(c->sched.writeback), c->sched.seed);
    cc_check_image_flags(image, c->page_size, cc_create_flags(c), before, after,
                         index ? c->ops[index - 1].kind : CC_OP_KINDS, NULL, &v);
    what = "recovered correctly (R1-R6, R8 hold)";
  } else {
    uint64_t n, d;
    if (cc_walk_window(c, &eo, &run, trace, image, UINT64_MAX, 0, 0, NULL, final_visit, &v, &n, &d, why,
                       sizeof why) != CC_OK) {
      fprintf(stderr, "crashcheck: %s\n", why);
      status = 2;
      goto out;
    }
    if (tell) printf("no power cut: the durable state the run leaves is checked against its last state\n");
    what = "the durable state holds every operation that returned success";
  }
  if (tell && !v.nviolations) printf("verdict: %s\n", what);
  for (unsigned i = 0; tell && i < v.nviolations; i++)
    printf("verdict: %s violated\n  expected: %s\n  found:    %s\n", v.v[i].invariant, v.v[i].expected, v.v[i].found);
  if (v.nviolations) {
    snprintf(invariant, invlen, "%s", v.v[0].invariant);
    status = 1;
  }
out:
  cc_run_free(&plain);
  cc_run_free(&run);
  unlink(file);
  unlink(trace);
  unlink(image);
  unlink(states);
  unlink(model);
  return status;
}
