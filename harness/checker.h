/* checker.h: the recovery invariants of DESIGN.md (R1-R6, R8 and W1) checked on one crash
 * image against the model's states before and after the operation in flight. */
#ifndef CC_CHECKER_H
#define CC_CHECKER_H

#include <stdint.h>

#include "workload.h"

typedef struct cc_violation {
  const char *invariant; /* "R1" .. "R7" */
  char expected[320];
  char found[320];
} cc_violation;

#define CC_MAX_VIOLATIONS 4

typedef struct cc_verdict {
  unsigned nviolations;
  uint64_t leaks;     /* W1: pages owned by nothing after recovery (in an adopted file) */
  uint64_t reclaimed; /* pages an interrupted operation left that recovery reclaimed */
  unsigned recovery;  /* mp_recovery(): what a writer's open repairs or reclaims (0: nothing) */
  bool rewritten;     /* the check wrote to the image (a create replacing a leftover) */
  bool refused;       /* explore --tear garbage: a refusal to open, accepted there (nothing to go on from) */
  /* Last: a check clears what comes before it and its first entry; the others are written
   * before they count (nviolations), and a check of every crash state need not clear 2 KiB. */
  cc_violation v[CC_MAX_VIOLATIONS];
} cc_verdict;

/* Empties a verdict (no violation) without clearing the entries past the first. */
void cc_verdict_clear(cc_verdict *v);

/* Checks the crash image at `path`, recovering it in memory (MP_PREVIEW): the file
 * is left as it was, except that a create's leftover is created again (rewritten).
 * `before` is NULL when the cut fell in the create, whose leftover is then created
 * again at `page_size`; `inflight` is the kind of the operation in flight
 * (CC_OP_KINDS for the create). */
int cc_check_image(const char *path, size_t page_size, const cc_state *before, const cc_state *after, int inflight,
                   cc_check_cache *cache, cc_verdict *v);
/* The same for a case whose create passes `create_flags` to mp_create_flags
 * (cc_create_flags): a leftover is created again as the workload's create would (a 0.3
 * case's leftover as a 0.3 file, which its R7 follow-up then works on). */
int cc_check_image_flags(const char *path, size_t page_size, unsigned create_flags, const cc_state *before,
                         const cc_state *after, int inflight, cc_check_cache *cache, cc_verdict *v);
/* A crash state with no file at all (its name was not durable: the shim's
 * POWERCUT_NAMESPACE=posix, which crashcheck records under): right only while the create
 * is in flight (`before` NULL, the state before it being no file); after mp_create returned
 * it is R3, the create and every operation since lost. cc_check_image gives this verdict
 * when `path` does not exist. */
void cc_check_missing(const cc_state *before, cc_verdict *v);
/* `cache` (may be NULL) holds content hashes of the image's pages from earlier
 * checks; the caller forgets the pages it changes, the checker those recovery may. */

/* The structure checks alone (crashcheck check): mp_check's findings, printed. */
int cc_fsck(const char *path, unsigned *findings);

#endif
