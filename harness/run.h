/* run.h: crashcheck run: any program's crash states, judged by the user's own check. */
#ifndef CC_RUN_H
#define CC_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "explore.h"

typedef struct cc_prog_opts {
  const char *files;        /* fnmatch glob of the tracked files, relative to the program's folder */
  const char *setup;        /* sh -c SETUP in the empty folder first (NULL: none) */
  const char *check;        /* sh -c CHECK in each crash state's folder: non-zero exit is a violation */
  char *const *argv;        /* the program and its arguments */
  const char *origin;       /* the caller's folder (CRASHCHECK_ORIGIN, and where relative programs are) */
  const char *workdir, *shim, *outdir; /* scratch, libpowercut.so, where violating states are kept */
  uint32_t sector;
  const char *profile;      /* libpowercut's POWERCUT_NAMESPACE: "posix" or "none" */
  cc_explore_opts crash;    /* tears and writebacks explored (prefixes, suffixes, random_*) */
  unsigned max_violations;  /* states kept in outdir (all are counted) */
  unsigned jobs;            /* processes checking states at once (0 or 1: this one) */
  unsigned shard, shards;   /* only the states whose hash falls in shard `shard` of `shards` */
  bool progress;
} cc_prog_opts;

typedef struct cc_prog_found {
  uint64_t step;   /* the step cut (0: the durable state the whole run leaves) */
  uint64_t state;  /* the crash state's number in the enumeration (from 1), as with one job */
  char call[24];   /* its call */
  char crash[64];  /* the tear and writeback, as `crashcheck explore` writes them */
  int status;      /* the check's exit status (128 + N: killed by signal N) */
  char output[512]; /* the start of what the check printed */
  char kept[1100];  /* the folder the state was kept in ("" if not kept) */
} cc_prog_found;

typedef struct cc_prog_result {
  uint64_t steps, states, distinct, violations;
  uint32_t files;   /* tracked files the program touched */
  int program_status;
  double seconds;
  unsigned nfound;
  cc_prog_found found[8]; /* the first ones, in the enumeration's order */
  char error[1200];       /* set when the run could not go on (setup, program, trace) */
} cc_prog_result;

/* Runs the setup in an empty folder, records the program there once under the shim, then
 * derives every crash state of the tracked files from the trace (each step x each tear x each
 * writeback choice, and the durable state at the end), and runs the check once per distinct
 * state in a copy of the folder holding that state (o->jobs processes at once, each with
 * its own copy; o->shards > 1: only this shard's states). Returns CC_OK when it ran (whatever
 * the check said); r->error says why not otherwise. */
int cc_run_program(const cc_prog_opts *o, cc_prog_result *r);

/* crashcheck replay of a state cc_run_program kept (`kept`: its folder, or its story
 * KEPT.txt): lays the state out again from what the run left beside it (run.trace, run.snap,
 * run.info: see save_replay) in `keep` (NULL: a folder of `workdir`) and runs the check
 * there, as the run did; r->violations says whether it failed again, r->found[0] how.
 * CC_EINVAL with r->error when `kept` is not such a state. */
int cc_run_replay(const char *kept, const char *keep, const char *workdir, cc_prog_result *r);

/* Removes path and everything under it (a missing path is no error), without a shell: 0, or -1
 * with errno when something stayed. */
int cc_remove_tree(const char *path);

#endif
