/* explore.h: records a case once under libpowercut, derives every crash state from the
 * trace (step x tear x writeback), checks each distinct image, writes reproducers. */
#ifndef CC_EXPLORE_H
#define CC_EXPLORE_H

#include <stdbool.h>
#include <stdint.h>

#include "case.h"
#include "checker.h"

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
  bool progress;       /* a progress line on stderr */
  unsigned max_violations; /* stop reporting after this many (all are counted) */
  /* R7. Every crash state whose recovery repairs or reclaims something (mp_recovery() not
   * 0) and every state cut inside the create gets the follow-up workload, once per distinct
   * file a writer's open makes of it: those are where recovery leaves a file that differs
   * from any a clean run writes. `again` more recovered states, among the others, are
   * sampled evenly over the run. */
  unsigned again;      /* sampled follow-ups (0: none; forced ones still run) */
  bool again_off;      /* no R7 at all, forced follow-ups included (measuring the checker alone) */
} cc_explore_opts;

typedef struct cc_found {
  cc_violation v;
  uint32_t step;
  char call[24];
  char op[24];
  uint32_t op_index;
  cc_schedule sched;
  cc_schedule again; /* R7: the follow-up's cut (cut_step 0 for R1-R6) */
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
  double seconds;
  unsigned nfound;
  cc_found *found; /* the first max_violations */
  char error[1200]; /* set when the exploration could not run, or the workload failed */
  bool run_failed;  /* the pager disagreed with the model without any power cut */
} cc_explore_result;

void cc_explore_defaults(cc_explore_opts *o);
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

/* The libpowercut spelling of a schedule: "STEP:TEAR:WRITEBACK:SEED". */
void cc_cut_spec(const cc_schedule *s, char *buf, size_t len);

#endif
