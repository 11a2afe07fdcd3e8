/* explore.h: records a case once under libpowercut, derives every crash state from the
 * trace (step x tear x writeback), checks each distinct image, writes reproducers. */
#ifndef CC_EXPLORE_H
#define CC_EXPLORE_H

#include <stdbool.h>
#include <stdint.h>

#include "case.h"
#include "checker.h"
#include "coverage.h"

typedef struct cc_explore_opts {
  const char *workdir; /* scratch directory for the file, trace and images */
  const char *outdir;  /* where reproducers go; NULL: none written */
  const char *shim;    /* libpowercut.so */
  const char *self;    /* this program, run as the recorded workload */
  unsigned jobs;       /* checker processes */
  unsigned shard, shards; /* this process explores images whose hash % shards == shard */
  unsigned random_tears;  /* seeded random tear subsets per step (default 4) */
  unsigned random_writebacks; /* seeded random writeback subsets (default 2) */
  bool prefixes, suffixes, writeback_all; /* parts of the default state space */
  /* Garbage tears of metadata writes in 0.3 files: at each step, each sector of the file's
   * superblock, roots, leaves or directory blocks that the step writes, landed as garbage
   * (bytes neither old nor new: a drive without atomic sectors) with the rest of the step
   * landed. The 0.3 format promises that no one such sector makes the file unopenable or
   * loses a committed operation; 0.2 promises it of page 0's first sector alone (salvage),
   * so 0.2 images get none. Default on; "garbage" in --tear. */
  bool garbage;
  /* --tear garbage: beyond the default model, a step whose first durable sector is the file's
   * first also tears into a garbage first sector (bytes neither old nor new: a drive without
   * atomic sectors), where that sector lies within page 0 (pages of at least the sector) */
  bool garbage_head;
  bool progress;       /* a progress line on stderr */
  unsigned max_violations; /* stop reporting after this many (all are counted) */
  /* --fail-fast: the walk ends at its first violation (with workers, the same first: each
   * ends at its own, or past the lowest state another found one in): a yes or no sooner,
   * the rest unexplored */
  bool fail_fast;
  /* R7. Every crash state whose recovery repairs or reclaims something (mp_recovery() not
   * 0) and every state cut inside the create gets the follow-up workload, once per distinct
   * file a writer's open makes of it: those are where recovery leaves a file that differs
   * from any a clean run writes. `again` more recovered states, among the others, are
   * sampled evenly over the run. */
  unsigned again;      /* sampled follow-ups (0: none; forced ones still run) */
  bool again_off;      /* no R7 at all, forced follow-ups included (measuring the checker alone) */
  cc_coverage *cover;  /* where walks count crash coverage (NULL: not counted); set by the explorer */
  const char *error;   /* cc_record: POWERCUT_ERROR for the run (--errors), NULL: none */
  bool keep_states;    /* cc_record: the run leaves its model states in FILE.states (as --errors runs do) */
  bool errors;         /* explore --errors (errors.c): fail every failable step instead */
} cc_explore_opts;

typedef struct cc_found {
  cc_violation v;
  uint32_t step;
  char call[24];
  char op[24];
  uint32_t op_index;
  cc_schedule sched;
  cc_schedule again; /* R7: the follow-up's cut (cut_step 0 for R1-R6) */
  char error[48];    /* --errors: the failed step and its call ("12 msync"), or "" */
  char reproducer[512];
} cc_found;

typedef struct cc_explore_result {
  uint64_t steps, states, distinct, violations, leaks, reclaimed, leaky_states;
  uint64_t first_violation_state; /* crash states enumerated until the first violation (0: none) */
  bool first_is_again;             /* ... and that one was found by an R7 follow-up */
  uint64_t again_runs, again_states; /* R7: follow-up workloads run, and their crash states checked */
  /* ... of again_runs: forced by a recovery that repaired or reclaimed something, forced by
   * a cut inside the create, sampled; and forced states not followed because a writer's open
   * makes of them a file already followed. */
  uint64_t again_repair, again_create, again_sampled, again_same;
  uint64_t again_forked; /* ... of again_runs: recorded in a child of the fork server (forkserver.h) */
  /* A case with an image: crash states cut in its first open, and those of them whose
   * recovery still has the adoption to do (mp_recovery() has MP_RECOVER_ADOPT). */
  uint64_t open_states, adopt_states;
  double seconds;
  unsigned nfound;
  cc_found *found; /* the first max_violations */
  /* --errors: failable steps, runs recorded with an error injected (step x outcome), those
   * that broke the error contract in the run itself, and crash states checked after errors */
  uint64_t error_steps, error_runs, error_contract, error_states, error_distinct;
  char error[1200]; /* set when the exploration could not run, or the workload failed */
  bool run_failed;  /* the pager disagreed with the model without any power cut */
  bool stopped;     /* --fail-fast ended the walk early: the counts are of a part */
  cc_cover_cells cover; /* crash coverage of the exploration and its R7 follow-ups */
} cc_explore_result;

void cc_explore_defaults(cc_explore_opts *o);
/* The crash choices explored at a step that makes n sectors durable (tears x writebacks, as
 * o's prefixes, suffixes and random_* say), into out (at most cap); and one as libpowercut's. */
size_t cc_crash_choices(const cc_explore_opts *o, uint64_t n, cc_schedule *out, size_t cap);
void cc_crash_of(const cc_schedule *s, pc_crash *out);
/* Returns CC_OK when the exploration ran (whatever it found). */
int cc_explore(const cc_case *c, const cc_explore_opts *o, cc_explore_result *r);
void cc_explore_result_free(cc_explore_result *r);

/* Records the workload under the shim: runs `self __run CASE FILE` with LD_PRELOAD.
 * With cut != NULL, the run is cut there (POWERCUT_CUT) and the image lands in
 * `image`. Returns the child's exit status, or a negative CC_E* code. */
int cc_record(const cc_case *c, const cc_explore_opts *o, const char *file, const char *trace, const char *cut,
              const char *image, bool existing, char *why, size_t whylen);

/* R7: runs the follow-up workload on a crash image (`crashed`, left as it was)
 * under the shim: its first open recovers the image for real, so cuts during
 * recovery are among the follow-up's crash states. Checks those states: every state of the schedule
 * `only` if its cut_step is 0, else that one state. Returns the number of states
 * checked; the first violation, if any, goes to *v (v->nviolations = 0 if none)
 * and the follow-up step, call and schedule to *where. */
typedef struct cc_again_where {
  uint32_t step;
  char call[24];
  char op[24];
  cc_schedule sched;
} cc_again_where;
uint64_t cc_again(const cc_case *c, const cc_explore_opts *o, const char *crashed, const cc_schedule *only,
                  bool tell, cc_verdict *v, cc_again_where *where);

/* --errors: checks the crash states of a recorded trace from step first_step to the end of
 * operation last_index (0: to the end) against `run`, as the explorer does (identical
 * images once), then the durable state the whole trace leaves against the run's last
 * state (visited with step 0). While operation inflight_index is in flight, a recovered
 * state may also be inflight_after (may be NULL). visit returns false to stop. */
typedef bool (*cc_window_visit)(void *ctx, const cc_verdict *v, uint64_t step, const char *call, size_t op_index,
                                int kind, const cc_schedule *sched);
int cc_walk_window(const cc_case *c, const cc_explore_opts *o, const cc_run *run, const char *trace,
                   const char *image, uint64_t first_step, size_t last_index, size_t inflight_index,
                   const cc_state *inflight_after, cc_window_visit visit, void *ctx, uint64_t *states,
                   uint64_t *distinct, char *why, size_t whylen);
/* explore --errors (errors.c): records the case, then for every failable step (msync,
 * fsync, fdatasync, ftruncate, fallocate) and outcome records it again with that error
 * injected, holds the run to the error contract and checks the crash states from the error
 * to the end of the next operation, and the durable state at the end. */
int cc_explore_errors(const cc_case *c, const cc_explore_opts *o, cc_explore_result *r);
/* crashcheck replay of a case with an error (c->error.step): runs it with the error, tells
 * what failed and how the pager took it, then checks the cut's image (or, without a cut, the
 * durable state the run leaves). 0 clean, 1 a violation (its invariant in `invariant`), 2
 * the environment failed. o->workdir is scratch. */
int cc_replay_error(const cc_case *c, const cc_explore_opts *o, bool tell, char *invariant, size_t invlen);
/* The states an error run leaves for the explorer (CRASHCHECK_STATES), with its error. */
int cc_run_save(const cc_run *run, const char *path);
int cc_run_load(const char *path, cc_run *run);

/* The libpowercut spelling of a schedule: "STEP:TEAR:WRITEBACK:SEED". */
void cc_cut_spec(const cc_schedule *s, char *buf, size_t len);

#endif
