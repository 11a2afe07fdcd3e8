/* workload.h: runs a case against libmappedpages, marking each operation for the shim,
 * and keeps the model: what the pager must show after each operation. */
#ifndef CC_WORKLOAD_H
#define CC_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "case.h"

/* What the pager must hold after an operation. Hashes are cc_hash of whole pages;
 * a synced hash of 0 means the durable content of that page is not known (it was
 * written and not synced since). */
typedef struct cc_state {
  size_t nreg;
  uint64_t *reg;       /* allocated regular page ids, ascending (NULL in a recovered state: bits only) */
  uint64_t *synced;    /* per reg[i] */
  uint64_t *bits;      /* the same set as a bitmap (bit id % 64 of word id / 64), nwords words */
  size_t nwords;
  size_t nprot;
  uint64_t *prot;      /* protected ids, ascending */
  uint64_t *prot_hash; /* per prot[i]: the committed content */
} cc_state;

/* The states a run went through: states[0] after the create, states[i] after
 * operation i (1-based). The shim sees operation i under marker i + 1, and the
 * create under marker 1. */
typedef struct cc_run {
  size_t nstates;
  cc_state *states;
  char error[512]; /* the first time the pager disagreed with the model, or "" */
  /* cc_run_case_errors: the operation whose call failed (0: none did), what it returned,
   * the operation that met MP_EPOISONED and reopened (0: none), and whether the reopened
   * file held the failed operation's state (else the last committed one). */
  size_t failed_op;
  int failed_rc;
  size_t poisoned_op;
  bool adopted_new;
} cc_run;

/* The flags the case's create passes to mp_create_flags (a 0.3 case's MP_FORMAT_3, and its
 * MP_SPARSE; a 0.2 file is created plain, and reopened with MP_SPARSE). */
unsigned cc_create_flags(const cc_case *c);
/* Creates `path` (replacing it) and runs every operation of the case. Returns
 * CC_OK when the run finished and matched the model at every operation (else
 * run->error says where it did not, and the states so far are kept). */
int cc_run_case(const cc_case *c, const char *path, cc_run *run);
/* As cc_run_case, on a pager file that exists (a recovered crash image): it is
 * opened read-write instead of created, and states[0] is what it holds. */
int cc_run_case_on(const cc_case *c, const char *path, cc_run *run);
/* As cc_run_case_on, on a file another writer made (a case's image, copied to `path`):
 * states[0] is what the file holds before the writer's open, read through a reader's handle
 * (which writes nothing), so that the model of a file the reference wrote is the file's own
 * word, not what this pager's adoption makes of it; and the writer's open (marker 1, in
 * which adoption runs) must leave exactly that state. A reader's view leaves out pages
 * recovery would reclaim: while adoption is pending it must find none (CC_EINVAL), as
 * nothing of another writer's records names pages this library may free (W1). */
int cc_run_case_image(const cc_case *c, const char *path, cc_run *run);
/* Either of them (existing: cc_run_case_on) without the model check: the operations run as
 * there, but the pager is not compared with the model after each, and no state is kept
 * (nstates 0): for a run whose only use is the calls it makes, such as a run cut under the
 * power-cut shim when another run of the same case gave the states (fuzz_ops). A pager that
 * fails an operation still stops it (CC_EINVAL, run->error). */
int cc_run_case_unchecked(const cc_case *c, const char *path, bool existing, cc_run *run);
/* As cc_run_case, for a run with one injected I/O error (crashcheck explore --errors),
 * holding the pager to its contract for failed calls (README, "What is guaranteed"): one
 * call may fail with MP_EIO or MP_ENOSPC; the operation's effect is then not in the model,
 * and the pager must show the last committed state. A later MP_EPOISONED must persist
 * (another change is refused too) until a reopen, which must show the last committed state
 * or the failed operation's; the model takes that one (states[failed_op] with it) and the
 * refused operation runs again. A second failure, or any other, stops the run as in
 * cc_run_case. */
int cc_run_case_errors(const cc_case *c, const char *path, cc_run *run);
void cc_run_free(cc_run *run);

/* Marker operation id of case operation i (0 = the create). */
static inline uint64_t cc_marker(size_t i) { return (uint64_t)i + 1; }

struct mp_pager;

/* What checks of one file keep from one to the next: content hashes of its pages
 * by physical page, forgotten by whoever knows when bytes change (the explorer:
 * the sectors it writes), and the pager handles the checker reloads instead of
 * opening again. Zero-initialise; a different page size empties the hashes. */
typedef struct cc_findings {
  bool known;
  unsigned n;
  char first[256];
} cc_findings;

typedef struct cc_check_cache {
  struct mp_pager *preview, *reader; /* of `path`: an MP_PREVIEW and an MP_RDONLY handle */
  char *path;
  uint64_t *hash;
  uint32_t *crc;  /* the checksum a protected page's content at that page passed */
  uint8_t *known; /* which of hash and crc are known for each page */
  size_t cap; /* pages */
  size_t ps;
  uint64_t *priv; /* ascending pages a preview's recovery wrote: hashed afresh, never cached */
  size_t npriv, privcap;
  bool all_priv; /* ... or all of them (no memory for the list) */
  /* R6 found every synced page of these two model states intact; since then the
   * pages in `changed` (or all, if changed_all) may hold other bytes. */
  const cc_state *r6_before, *r6_after;
  uint64_t *changed;
  size_t nchanged, changedcap;
  bool changed_all;
  /* R4 as each handle found it at its last load (mp_check's findings: how many, the
   * first): a reload that keeps the reader's state (mp_reload_same) finds the same,
   * and so does the preview, whose recovery reads what the reader read. */
  cc_findings reader_r4, preview_r4;
  /* The preview was loaded from the reader's current state, and none of the pages its
   * recovery wrote (private copies, which hide the file's bytes) changed in the file
   * since (`preview_stale` else): it is what a reload would make it. */
  bool preview_current, preview_stale;
  /* The reader's basis (mp_reload_basis: the pages its state was derived from) at its last
   * load, with the file's size then. While none of those pages was forgotten since and the
   * file has that size, the reader is what a reload would leave it, and is not reloaded (no
   * fstat, no compare of its copies). `image_size` is the size of the file as its writer
   * (the explorer) last wrote it, set before each check; 0, unknown: always reload. */
  uint64_t *basis;
  size_t nbasis, basiscap, basis_ps;
  bool basis_held;
  uint64_t image_size, reader_size;
} cc_check_cache;
/* Notes that `page` may hold other bytes than when R6 last read it. */
void cc_check_cache_changed(cc_check_cache *h, uint64_t page);
void cc_check_cache_forget(cc_check_cache *h, uint64_t off, uint64_t len); /* bytes [off, off+len) changed */
void cc_check_cache_forget_all(cc_check_cache *h);
/* While an MP_PREVIEW handle `p` is read, the pages its recovery wrote (private
 * copies: mp_next_written) hold other bytes than the file: the cache must not
 * answer for them. NULL ends that. */
void cc_check_cache_private(cc_check_cache *h, struct mp_pager *p);
void cc_check_cache_free(cc_check_cache *h);
/* The hash of the content at `data`, page `page` of the file (known or computed). */
uint64_t cc_page_hash(cc_check_cache *h, struct mp_pager *p, uint64_t page, const void *data);
/* The hash of page `page` of p's file if the cache knows it (then true). */
bool cc_page_hash_known(cc_check_cache *h, struct mp_pager *p, uint64_t page, uint64_t *hash);

/* Reads the state of an open pager: the regular and protected sets and the
 * protected contents, and with `contents` the regular pages' content hashes (in
 * `synced`; else 0). A protected page whose content fails its checksum gets hash 0.
 * `cache` (may be NULL) saves hashing pages whose bytes did not change. */
int cc_state_read(struct mp_pager *p, bool contents, cc_check_cache *cache, cc_state *out);
/* As cc_state_read without contents, but the regular set as bits alone (reg and
 * synced NULL): what the checker reads of every crash state, in time that grows
 * with the file's pages / 64 rather than with the pages allocated. */
int cc_state_read_bits(struct mp_pager *p, cc_check_cache *cache, cc_state *out);
/* Is `id` in s's regular set? */
static inline bool cc_state_has(const cc_state *s, uint64_t id) {
  return id / 64 < s->nwords && (s->bits[id / 64] >> (id % 64) & 1);
}
void cc_state_free(cc_state *s);
int cc_state_copy(const cc_state *from, cc_state *to);
/* Index of id in an ascending id array (a state's reg or prot), or -1. */
long cc_find_id(const uint64_t *ids, size_t n, uint64_t id);
/* One-line summary for reports: counts and the first ids. */
void cc_state_describe(const cc_state *s, char *buf, size_t len);
bool cc_state_same_sets(const cc_state *a, const cc_state *b);

#endif
