/* generate.h: workloads made by program: seeded random cases, and cases grown until they
 * cover the crash-coverage cells the pager's protocol requires. */
#ifndef CC_GENERATE_H
#define CC_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "case.h"
#include "coverage.h"
#include "explore.h"

/* nops operations of every kind, drawn with fixed weights from a seeded generator. */
void cc_generate(cc_case *c, unsigned long nops, unsigned long seed);

#define CC_GROW_MAX_CONFIGS 10

typedef struct cc_grow_opts {
  cc_explore_opts explore; /* how each batch is explored (workdir, shim, self, jobs) */
  uint32_t sizes[CC_GROW_MAX_CONFIGS], sectors[CC_GROW_MAX_CONFIGS]; /* the configurations */
  unsigned nconfigs;
  unsigned tries;   /* batches proposed before giving up on the cells still missing */
  size_t max_ops;   /* the case never grows past this many operations */
  unsigned long seed;
  bool progress;    /* a line on stderr per batch */
} cc_grow_opts;

typedef struct cc_grow_result {
  cc_cover_cells cells[CC_GROW_MAX_CONFIGS]; /* what the case covers at each configuration */
  size_t covered, required;                  /* over all configurations */
  unsigned tries, kept;                      /* batches proposed, and kept */
  uint64_t violations; /* a batch that finds any stops the growth: the case then ends with it */
  char error[1200];
} cc_grow_result;

/* Grows `c` (its operations so far are kept, and explored once first) a batch of operations
 * at a time: a batch is kept when exploring it, at some configuration, covers a required cell
 * the case did not, and dropped otherwise. Only the batch's own operations are cut (a case's
 * explore-from; its prefix's states and coverage do not change when operations are
 * appended), with R7's forced follow-ups, which cover recovery's own writes. Stops when every
 * required cell is covered at every configuration, after o->tries batches, at o->max_ops, or
 * at a violation. Returns CC_OK when the growth ran (whatever it found); c->explore_from is
 * left 0. */
int cc_generate_covering(cc_case *c, const cc_grow_opts *o, cc_grow_result *r);

#endif
