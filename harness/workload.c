/* workload.c: the workload runner and the model: executes a case's operations on a
 * pager, marks each for the shim, and records the state the pager must show after it. */
#include "workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mappedpages.h"
#include "powercut_mark.h"

/* ---- states ---------------------------------------------------------------- */

void cc_state_free(cc_state *s) {
  free(s->reg);
  free(s->synced);
  free(s->bits);
  free(s->prot);
  free(s->prot_hash);
  memset(s, 0, sizeof *s);
}

static uint64_t *dup_ids(const uint64_t *a, size_t n) {
  uint64_t *b = malloc((n ? n : 1) * sizeof *b);
  if (b && n) memcpy(b, a, n * sizeof *b);
  return b;
}

/* The bitmap of an ascending id list. */
static int bits_of(const uint64_t *ids, size_t n, uint64_t **bits, size_t *nwords) {
  *nwords = n ? (size_t)(ids[n - 1] / 64 + 1) : 0;
  *bits = calloc(*nwords ? *nwords : 1, 8);
  if (!*bits) return CC_ENOMEM;
  for (size_t i = 0; i < n; i++) (*bits)[ids[i] / 64] |= UINT64_C(1) << (ids[i] % 64);
  return CC_OK;
}

int cc_state_copy(const cc_state *from, cc_state *to) {
  memset(to, 0, sizeof *to);
  to->nreg = from->nreg;
  to->nprot = from->nprot;
  to->reg = dup_ids(from->reg, from->nreg);
  to->synced = dup_ids(from->synced, from->nreg);
  to->prot = dup_ids(from->prot, from->nprot);
  to->prot_hash = dup_ids(from->prot_hash, from->nprot);
  if (!to->reg || !to->synced || !to->prot || !to->prot_hash ||
      bits_of(from->reg, from->nreg, &to->bits, &to->nwords) != CC_OK) {
    cc_state_free(to);
    return CC_ENOMEM;
  }
  return CC_OK;
}

bool cc_state_same_sets(const cc_state *a, const cc_state *b) {
  if (a->nreg != b->nreg || a->nprot != b->nprot || (a->nprot && memcmp(a->prot, b->prot, a->nprot * 8))) return false;
  size_t common = a->nwords < b->nwords ? a->nwords : b->nwords;
  if (common && memcmp(a->bits, b->bits, common * 8)) return false;
  /* (equal counts and equal common words leave nothing set past them) */
  return true;
}

void cc_state_describe(const cc_state *s, char *buf, size_t len) {
  int n = snprintf(buf, len, "%zu regular [", s->nreg);
  size_t shown = 0;
  for (uint64_t id = 0; id / 64 < s->nwords && shown < 6 && n > 0 && (size_t)n < len; id++)
    if (cc_state_has(s, id))
      n += snprintf(buf + n, len - (size_t)n, shown++ ? " %llu" : "%llu", (unsigned long long)id);
  if (n > 0 && (size_t)n < len)
    n += snprintf(buf + n, len - (size_t)n, "%s], %zu protected [", s->nreg > 6 ? " ..." : "", s->nprot);
  for (size_t i = 0; i < s->nprot && i < 6 && n > 0 && (size_t)n < len; i++)
    n += snprintf(buf + n, len - (size_t)n, i ? " %llu" : "%llu", (unsigned long long)s->prot[i]);
  if (n > 0 && (size_t)n < len) snprintf(buf + n, len - (size_t)n, "%s]", s->nprot > 6 ? " ..." : "");
}

/* Sorted-array set operations; arrays grow by doubling through `cap`. */
typedef struct growable {
  uint64_t *ids, *vals;
  size_t n, cap;
} growable;

static int g_insert(growable *g, uint64_t id, uint64_t val) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 64;
    uint64_t *ids = realloc(g->ids, cap * 8), *vals;
    if (!ids) return CC_ENOMEM;
    g->ids = ids;
    if (!(vals = realloc(g->vals, cap * 8))) return CC_ENOMEM;
    g->vals = vals;
    g->cap = cap;
  }
  size_t at = g->n;
  if (!at || g->ids[at - 1] < id) { /* ascending ids (an iteration) append */
    g->ids[at] = id;
    g->vals[at] = val;
    g->n++;
    return CC_OK;
  }
  while (at > 0 && g->ids[at - 1] > id) at--;
  memmove(g->ids + at + 1, g->ids + at, (g->n - at) * 8);
  memmove(g->vals + at + 1, g->vals + at, (g->n - at) * 8);
  g->ids[at] = id;
  g->vals[at] = val;
  g->n++;
  return CC_OK;
}

static void g_remove_at(growable *g, size_t at) {
  memmove(g->ids + at, g->ids + at + 1, (g->n - at - 1) * 8);
  memmove(g->vals + at, g->vals + at + 1, (g->n - at - 1) * 8);
  g->n--;
}

long cc_find_id(const uint64_t *ids, size_t n, uint64_t id) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && ids[lo] == id ? (long)lo : -1;
}

static long g_find(const growable *g, uint64_t id) { return cc_find_id(g->ids, g->n, id); }

static int snapshot(const growable *reg, const growable *prot, cc_state *out) {
  cc_state view = {.nreg = reg->n, .reg = reg->ids, .synced = reg->vals, .nprot = prot->n, .prot = prot->ids,
                   .prot_hash = prot->vals};
  return cc_state_copy(&view, out);
}

/* ---- page content hashes ------------------------------------------------------- */

void cc_check_cache_changed(cc_check_cache *h, uint64_t page) {
  if (!h || h->changed_all) return;
  if (h->nchanged == h->changedcap) {
    size_t cap = h->changedcap ? h->changedcap * 2 : 64;
    uint64_t *c = cap <= 65536 ? realloc(h->changed, cap * sizeof *c) : NULL;
    if (!c) {
      h->changed_all = true; /* too many to list: R6 reads every page again */
      return;
    }
    h->changed = c;
    h->changedcap = cap;
  }
  h->changed[h->nchanged++] = page;
}

void cc_check_cache_forget(cc_check_cache *h, uint64_t off, uint64_t len) {
  if (!h) return;
  for (size_t i = 0; h->basis_held && i < h->nbasis; i++) {
    uint64_t at = h->basis[i] * h->basis_ps;
    h->basis_held = !(at + h->basis_ps > off && (len > UINT64_MAX - off || at < off + len));
  }
  if (!h->ps) {
    h->changed_all = true; /* no page size yet: nothing was read, nothing is known */
    h->preview_stale = true;
    return;
  }
  uint64_t first = off / h->ps, last = len > UINT64_MAX - off ? UINT64_MAX : (off + len + h->ps - 1) / h->ps;
  if (last - first > 65536) h->changed_all = true;
  for (uint64_t pg = first; pg < last && !h->changed_all; pg++) cc_check_cache_changed(h, pg);
  for (uint64_t pg = first; pg < last && pg < h->cap; pg++) h->known[pg] = 0;
  uint64_t w;
  if (h->preview_current && !h->preview_stale && h->preview && mp_next_written(h->preview, first, &w) == MP_OK)
    h->preview_stale = w < last;
}

void cc_check_cache_forget_all(cc_check_cache *h) {
  if (!h) return;
  h->basis_held = false;
  if (h->known) memset(h->known, 0, h->cap);
  h->changed_all = true;
  h->preview_stale = true;
}

void cc_check_cache_free(cc_check_cache *h) {
  mp_close(h->preview);
  mp_close(h->reader);
  free(h->path);
  free(h->hash);
  free(h->crc);
  free(h->changed);
  free(h->known);
  free(h->priv);
  free(h->basis);
  memset(h, 0, sizeof *h);
}

static bool priv_add(cc_check_cache *h, uint64_t page) {
  if (h->npriv && h->priv[h->npriv - 1] == page) return true;
  if (h->npriv == h->privcap) {
    size_t cap = h->privcap ? h->privcap * 2 : 64;
    uint64_t *priv = realloc(h->priv, cap * sizeof *priv);
    if (!priv) return false;
    h->priv = priv;
    h->privcap = cap;
  }
  h->priv[h->npriv++] = page;
  return true;
}

void cc_check_cache_private(cc_check_cache *h, struct mp_pager *p) {
  if (!h) return;
  h->npriv = 0;
  h->all_priv = false;
  uint64_t pg;
  for (uint64_t from = 0; p && mp_next_written(p, from, &pg) == MP_OK; from = pg + 1)
    if (!priv_add(h, pg)) {
      h->all_priv = true; /* out of memory: no page answered from the cache */
      return;
    }
}

/* Makes room in the cache for `page` of p's file; false if it may not (or
 * cannot) answer for that page: its bytes in p's mapping are a preview's own. */
static bool cacheable(cc_check_cache *h, struct mp_pager *p, uint64_t page) {
  size_t ps = mp_page_size(p);
  if (!h || h->all_priv || (h->npriv && cc_find_id(h->priv, h->npriv, page) >= 0)) return false;
  if (h->ps != ps) {
    free(h->hash);
    free(h->crc);
    free(h->known);
    h->hash = NULL;
    h->crc = NULL;
    h->known = NULL;
    h->cap = 0;
    h->ps = ps;
  }
  if (page < h->cap) return true;
  size_t cap = h->cap ? h->cap : 256;
  while (cap <= page) cap *= 2;
  uint64_t *hash = realloc(h->hash, cap * 8);
  if (hash) h->hash = hash;
  uint32_t *crc = hash ? realloc(h->crc, cap * 4) : NULL;
  if (crc) h->crc = crc;
  uint8_t *known = crc ? realloc(h->known, cap) : NULL;
  if (!known) return false;
  memset(known + h->cap, 0, cap - h->cap);
  h->known = known;
  h->cap = cap;
  return true;
}

#define KNOWN_HASH 1u
#define KNOWN_CRC 2u /* the page passed mp_protected_read's check against crc[page] */

uint64_t cc_page_hash(cc_check_cache *h, struct mp_pager *p, uint64_t page, const void *data) {
  if (!cacheable(h, p, page)) return cc_hash(data, mp_page_size(p));
  if (!(h->known[page] & KNOWN_HASH)) {
    h->hash[page] = cc_hash(data, mp_page_size(p));
    h->known[page] |= KNOWN_HASH;
  }
  return h->hash[page];
}

bool cc_page_hash_known(cc_check_cache *h, struct mp_pager *p, uint64_t page, uint64_t *hash) {
  if (!cacheable(h, p, page) || !(h->known[page] & KNOWN_HASH)) return false;
  *hash = h->hash[page];
  return true;
}

/* The content hash of protected page `id` if its content passes its checksum,
 * else 0: what mp_protected_read and a hash of what it returns give, but from
 * the cache where the page behind it is known to hold bytes that passed a check
 * against the same checksum, so that an unchanged page is not read at all. */
static uint64_t protected_hash(cc_check_cache *h, struct mp_pager *p, uint64_t id) {
  uint64_t page;
  uint32_t crc;
  bool where = h && mp_protected_where(p, id, &page, &crc) == MP_OK;
  bool cached = where && cacheable(h, p, page);
  if (cached && (h->known[page] & (KNOWN_HASH | KNOWN_CRC)) == (KNOWN_HASH | KNOWN_CRC) && h->crc[page] == crc)
    return h->hash[page];
  const void *data;
  if (mp_protected_read(p, id, &data) != MP_OK) return 0;
  if (!cached) return cc_hash(data, mp_page_size(p));
  /* Bytes that pass another checksum than the one they passed before are other bytes, even
   * where nobody said they changed (the runner's cache, which no one tells). */
  if ((h->known[page] & KNOWN_CRC) && h->crc[page] != crc) h->known[page] = 0;
  uint64_t hash = cc_page_hash(h, p, page, data);
  h->crc[page] = crc;
  h->known[page] |= KNOWN_CRC;
  return hash;
}

/* The protected ids of p and their content hashes (0: fails its checksum). */
static int read_protected(struct mp_pager *p, cc_check_cache *cache, growable *prot) {
  uint64_t id;
  int rc = CC_OK;
  for (uint64_t from = 0; rc == CC_OK && mp_next_protected(p, from, &id) == MP_OK; from = id + 1)
    rc = g_insert(prot, id, protected_hash(cache, p, id));
  return rc;
}

int cc_state_read(struct mp_pager *p, bool contents, cc_check_cache *cache, cc_state *out) {
  growable reg = {0}, prot = {0};
  uint64_t id;
  int rc = CC_OK;
  /* A regular page's id is its page in the file. */
  for (uint64_t from = 0; rc == CC_OK && mp_next_regular(p, from, &id) == MP_OK; from = id + 1) {
    void *data = NULL;
    if (contents) mp_page(p, id, &data);
    rc = g_insert(&reg, id, data ? cc_page_hash(cache, p, id, data) : 0);
  }
  memset(out, 0, sizeof *out);
  if (rc == CC_OK) rc = read_protected(p, cache, &prot);
  /* The arrays become the state's (empty sets too get them, as cc_state_copy gives). */
  if (!reg.ids) reg.ids = malloc(8), reg.vals = malloc(8);
  if (!prot.ids) prot.ids = malloc(8), prot.vals = malloc(8);
  if (rc == CC_OK && (!reg.ids || !reg.vals || !prot.ids || !prot.vals)) rc = CC_ENOMEM;
  if (rc == CC_OK) rc = bits_of(reg.ids, reg.n, &out->bits, &out->nwords);
  if (rc != CC_OK) {
    free(reg.ids);
    free(reg.vals);
    free(prot.ids);
    free(prot.vals);
    return rc;
  }
  out->nreg = reg.n;
  out->reg = reg.ids;
  out->synced = reg.vals;
  out->nprot = prot.n;
  out->prot = prot.ids;
  out->prot_hash = prot.vals;
  return CC_OK;
}

int cc_state_read_bits(struct mp_pager *p, cc_check_cache *cache, cc_state *out) {
  memset(out, 0, sizeof *out);
  growable prot = {0};
  out->nwords = (size_t)((mp_page_count(p) + 63) / 64);
  out->bits = malloc((out->nwords ? out->nwords : 1) * 8);
  int rc = out->bits ? read_protected(p, cache, &prot) : CC_ENOMEM;
  if (!prot.ids) prot.ids = malloc(8), prot.vals = malloc(8);
  if (rc == CC_OK && (!prot.ids || !prot.vals || mp_regular_bits(p, 0, out->bits, out->nwords) != MP_OK)) rc = CC_ENOMEM;
  if (rc != CC_OK) {
    free(prot.ids);
    free(prot.vals);
    cc_state_free(out);
    return rc;
  }
  for (size_t w = 0; w < out->nwords; w++) out->nreg += (size_t)__builtin_popcountll(out->bits[w]);
  out->nprot = prot.n;
  out->prot = prot.ids;
  out->prot_hash = prot.vals;
  return CC_OK;
}

/* ---- the runner -------------------------------------------------------------- */

/* The flags of the workload's writer opens. */
static unsigned open_flags(const cc_case *c) {
  return (c->sparse ? MP_SPARSE : 0) | (c->format3 || c->upgrade ? MP_FORMAT_3 : 0);
}

unsigned cc_create_flags(const cc_case *c) { return c->format3 ? open_flags(c) : 0; }

typedef struct runner {
  const cc_case *c;
  const char *path;
  mp_pager *p;
  growable reg, prot;
  uint8_t *buf; /* a page of content */
  cc_run *run;
  /* A run with an injected I/O error (cc_run_case_errors): the one call that may fail. */
  bool errors;
  int failed_rc;        /* what the failing call returned (0: none yet) */
  const char *failed_what;
  uint64_t intent[32];  /* what the failed operation meant to free, or its protected id */
  size_t nintent;
  uint64_t intent_hash; /* pwrite: the content it meant to commit */
  bool tolerated;       /* expect() let the last call fail: run_case decides */
  int last_rc;          /* ... with this code */
} runner;

#define FAIL(r, ...)                                                     \
  do {                                                                   \
    snprintf((r)->run->error, sizeof (r)->run->error, __VA_ARGS__);      \
    return CC_EINVAL;                                                    \
  } while (0)

static int expect(runner *r, size_t i, const char *what, int rc, int ok1, int ok2) {
  if (rc == ok1 || rc == ok2) return CC_OK;
  /* Under an injected error one call may fail, as an I/O error would make it (or a poisoned
   * handle refuse it); the loop in run_case then holds the pager to its contract. */
  /* (a handle may also be poisoned by work an operation that returned success left for
   * later, which failed in the background: then no call failed before) */
  bool first = !r->failed_rc && (rc == MP_EIO || rc == MP_ENOSPC);
  /* An injected ENOSPC leaves the disk full (the shim's disk-full model): every later call
   * that needs new blocks fails with MP_ENOSPC too, each a failure held to the contract. */
  bool full = r->failed_rc == MP_ENOSPC && rc == MP_ENOSPC;
  bool refused = !r->run->poisoned_op && rc == MP_EPOISONED;
  if (r->errors && (first || full || refused)) {
    if (first) r->failed_rc = rc;
    r->last_rc = rc;
    r->failed_what = what;
    r->tolerated = true;
    snprintf(r->run->error, sizeof r->run->error, "operation %zu (%s): %s returned %d (%s)", i,
             cc_op_name(r->c->ops[i - 1].kind), what, rc, mp_strerror(rc));
    /* in the trace too: a run the shim kills later (SIGBUS) tells which calls had failed */
    pc_mark_note(r->run->error);
    return CC_EINVAL;
  }
  FAIL(r, "operation %zu (%s): %s returned %d (%s)", i, cc_op_name(r->c->ops[i - 1].kind), what, rc, mp_strerror(rc));
}

/* After mp_sync returned MP_OK every regular page's content is durable, whatever an earlier
 * failure did: a failed msync leaves the pages it dropped dirty again (the fsync-gate undone,
 * pager/sys.c), so this sync wrote them. */
static void synced_all(runner *r) {
  size_t ps = mp_page_size(r->p);
  for (size_t k = 0; k < r->reg.n; k++) {
    if (r->reg.vals[k]) continue; /* unchanged since it was synced: its hash stands */
    void *data;
    mp_page(r->p, r->reg.ids[k], &data);
    r->reg.vals[k] = cc_hash(data, ps);
  }
}

static int do_op(runner *r, size_t i, const cc_op *op) {
  size_t ps = mp_page_size(r->p); /* an existing file has its own */
  int rc;
  uint64_t ids[32], id;
  switch (op->kind) {
    case CC_ALLOC:
      rc = mp_alloc(r->p, &id);
      if (expect(r, i, "mp_alloc", rc, MP_OK, MP_EFULL)) return CC_EINVAL;
      return rc == MP_OK ? g_insert(&r->reg, id, 0) : CC_OK;
    case CC_ALLOC_BULK: {
      size_t n = 1 + op->a % 32;
      rc = mp_alloc_bulk(r->p, n, ids);
      if (expect(r, i, "mp_alloc_bulk", rc, MP_OK, MP_EFULL)) return CC_EINVAL;
      for (size_t k = 0; rc == MP_OK && k < n; k++)
        if (g_insert(&r->reg, ids[k], 0)) return CC_ENOMEM;
      return CC_OK;
    }
    case CC_FREE:
    case CC_FREE_BULK: {
      if (!r->reg.n) return CC_OK;
      size_t n = op->kind == CC_FREE ? 1 : 1 + op->b % 32, start = op->a % r->reg.n;
      if (n > r->reg.n) n = r->reg.n;
      for (size_t k = 0; k < n; k++) ids[k] = r->reg.ids[(start + k) % r->reg.n];
      memcpy(r->intent, ids, n * sizeof *ids);
      r->nintent = n;
      rc = mp_free_bulk(r->p, n, ids);
      if (expect(r, i, "mp_free_bulk", rc, MP_OK, MP_OK)) return CC_EINVAL;
      for (size_t k = 0; k < n; k++) g_remove_at(&r->reg, (size_t)g_find(&r->reg, ids[k]));
      return CC_OK;
    }
    case CC_WRITE:
    case CC_WRITE_SYNC: {
      if (!r->reg.n) return CC_OK;
      size_t at = op->a % r->reg.n;
      void *data;
      if (expect(r, i, "mp_page", mp_page(r->p, r->reg.ids[at], &data), MP_OK, MP_OK)) return CC_EINVAL;
      cc_fill(data, ps, op->b, r->reg.ids[at]);
      r->reg.vals[at] = 0;
      if (op->kind == CC_WRITE) return CC_OK;
      if (expect(r, i, "mp_sync_page", mp_sync_page(r->p, r->reg.ids[at]), MP_OK, MP_OK)) return CC_EINVAL;
      r->reg.vals[at] = cc_hash(data, ps);
      return CC_OK;
    }
    case CC_SYNC:
      if (expect(r, i, "mp_sync", mp_sync(r->p), MP_OK, MP_OK)) return CC_EINVAL;
      synced_all(r);
      return CC_OK;
    case CC_PALLOC:
      rc = mp_protected_alloc(r->p, &id);
      if (expect(r, i, "mp_protected_alloc", rc, MP_OK, MP_EFULL)) return CC_EINVAL;
      if (rc != MP_OK) return CC_OK;
      memset(r->buf, 0, ps);
      return g_insert(&r->prot, id, cc_hash(r->buf, ps));
    case CC_PFREE: {
      if (!r->prot.n) return CC_OK;
      size_t at = op->a % r->prot.n;
      r->intent[0] = r->prot.ids[at];
      r->nintent = 1;
      if (expect(r, i, "mp_protected_free", mp_protected_free(r->p, r->prot.ids[at]), MP_OK, MP_OK)) return CC_EINVAL;
      g_remove_at(&r->prot, at);
      return CC_OK;
    }
    case CC_PWRITE:
    case CC_PABORT: {
      if (!r->prot.n) return CC_OK;
      size_t at = op->a % r->prot.n;
      void *stage;
      if (expect(r, i, "mp_protected_begin", mp_protected_begin(r->p, r->prot.ids[at], &stage), MP_OK, MP_OK))
        return CC_EINVAL;
      /* The staged copy must start as the committed content. */
      if (cc_hash(stage, ps) != r->prot.vals[at]) FAIL(r, "operation %zu: staged copy differs from the content", i);
      cc_fill(stage, ps, op->b, r->prot.ids[at] | UINT64_C(1) << 63);
      if (op->kind == CC_PABORT)
        return expect(r, i, "mp_protected_abort", mp_protected_abort(r->p, r->prot.ids[at]), MP_OK, MP_OK);
      uint64_t h = cc_hash(stage, ps);
      r->intent[0] = r->prot.ids[at];
      r->nintent = 1;
      r->intent_hash = h;
      if (expect(r, i, "mp_protected_commit", mp_protected_commit(r->p, r->prot.ids[at]), MP_OK, MP_OK))
        return CC_EINVAL;
      r->prot.vals[at] = h;
      return CC_OK;
    }
    case CC_REOPEN:
      mp_close(r->p);
      r->p = NULL;
      return expect(r, i, "mp_open", mp_open(r->path, open_flags(r->c), &r->p), MP_OK, MP_OK);
  }
  return CC_OK;
}

/* The pager must show exactly the model's sets after every operation. The model's sets are
 * compared where they are (no copy), and described only when they differ: this runs after
 * every operation of every run, the fuzzers' included. */
static int agree(runner *r, size_t i, cc_check_cache *cache) {
  cc_state seen;
  if (cc_state_read(r->p, false, cache, &seen) != CC_OK) return CC_ENOMEM;
  const growable *reg = &r->reg, *prot = &r->prot;
  bool same = seen.nreg == reg->n && seen.nprot == prot->n && (!reg->n || !memcmp(seen.reg, reg->ids, reg->n * 8)) &&
              (!prot->n || !memcmp(seen.prot, prot->ids, prot->n * 8));
  size_t k = 0;
  while (same && k < prot->n && seen.prot_hash[k] == prot->vals[k]) k++;
  uint64_t bad = same && k < prot->n ? prot->ids[k] : UINT64_MAX;
  if (same && bad == UINT64_MAX) {
    cc_state_free(&seen);
    return CC_OK;
  }
  char a[200] = "?", b[200];
  cc_state want;
  if (snapshot(reg, prot, &want) == CC_OK) {
    cc_state_describe(&want, a, sizeof a);
    cc_state_free(&want);
  }
  cc_state_describe(&seen, b, sizeof b);
  cc_state_free(&seen);
  if (!same && !i)
    FAIL(r, "after the open (the adoption of a file another writer made) the file held %s, the pager %s", a, b);
  if (!same) FAIL(r, "after operation %zu the model holds %s, the pager %s", i, a, b);
  FAIL(r, "after operation %zu protected page %llu does not hold its last committed content", i,
       (unsigned long long)bad);
}

/* ---- the error contract (cc_run_case_errors) ----------------------------------------- */

/* Does `seen` (a reopened file) show the effect of operation `op` on the model's sets, as
 * the operation meant it (r->intent)? Regular pages it allocated are new ids, whatever
 * they are; the other sets must be exactly the model's. */
static bool shows_new(const runner *r, const cc_op *op, const cc_state *seen) {
  const growable *reg = &r->reg, *prot = &r->prot;
  size_t add = 0, gone = 0;
  for (size_t k = 0; k < reg->n; k++) gone += !cc_state_has(seen, reg->ids[k]);
  add = seen->nreg + gone - reg->n;
  bool reg_same = !gone && !add, prot_same = seen->nprot == prot->n && (!prot->n || !memcmp(seen->prot, prot->ids, prot->n * 8));
  for (size_t k = 0; prot_same && k < prot->n; k++) prot_same = seen->prot_hash[k] == prot->vals[k];
  switch (op->kind) {
    case CC_ALLOC: case CC_ALLOC_BULK:
      return prot_same && !gone && add == (op->kind == CC_ALLOC ? 1 : 1 + op->a % 32u);
    case CC_FREE: case CC_FREE_BULK:
      if (!prot_same || add || gone != r->nintent) return false;
      for (size_t k = 0; k < r->nintent; k++)
        if (cc_state_has(seen, r->intent[k])) return false;
      return true;
    case CC_PALLOC: { /* one new protected page, reading zeros; the others as they were */
      if (!reg_same || seen->nprot != prot->n + 1) return false;
      memset(r->buf, 0, r->p ? mp_page_size(r->p) : 0);
      uint64_t zero = r->p ? cc_hash(r->buf, mp_page_size(r->p)) : 0;
      size_t fresh = 0;
      for (size_t k = 0; k < seen->nprot; k++) {
        long at = cc_find_id(prot->ids, prot->n, seen->prot[k]);
        if (at < 0) fresh += seen->prot_hash[k] == zero;
        else if (prot->vals[at] != seen->prot_hash[k]) return false;
      }
      return fresh == 1;
    }
    case CC_PFREE:
      return reg_same && seen->nprot + 1 == prot->n && cc_find_id(seen->prot, seen->nprot, r->intent[0]) < 0;
    case CC_PWRITE: {
      if (!reg_same || seen->nprot != prot->n || (prot->n && memcmp(seen->prot, prot->ids, prot->n * 8))) return false;
      for (size_t k = 0; k < prot->n; k++)
        if (seen->prot_hash[k] != prot->vals[k] && !(prot->ids[k] == r->intent[0] && seen->prot_hash[k] == r->intent_hash))
          return false;
      return true;
    }
    default:
      return false; /* the others change no set: only the old state is right */
  }
}

/* Operation i met a poisoned handle (MP_EPOISONED after the failure of operation f): it must
 * stay refused until a reopen, and the reopened file must hold the last committed state or
 * operation f's; the model adopts whichever it is, and operation i runs again. */
static int reopen_poisoned(runner *r, size_t i) {
  size_t f = r->run->failed_op;
  uint64_t id;
  int rc = mp_alloc(r->p, &id);
  if (rc != MP_EPOISONED)
    FAIL(r, "operation %zu: after MP_EPOISONED, mp_alloc returned %d (%s): a poisoned handle refuses every change "
         "until it is reopened", i, rc, mp_strerror(rc));
  mp_close(r->p);
  r->p = NULL;
  if ((rc = mp_open(r->path, open_flags(r->c), &r->p)) != MP_OK)
    FAIL(r, "operation %zu: reopening the poisoned file: mp_open returned %d (%s)", i, rc, mp_strerror(rc));
  cc_state seen;
  if (cc_state_read(r->p, false, NULL, &seen) != CC_OK) return CC_ENOMEM;
  const cc_op *op = f ? &r->c->ops[f - 1] : NULL;
  bool old = seen.nreg == r->reg.n && (!r->reg.n || !memcmp(seen.reg, r->reg.ids, r->reg.n * 8)) &&
             seen.nprot == r->prot.n && (!r->prot.n || !memcmp(seen.prot, r->prot.ids, r->prot.n * 8));
  for (size_t k = 0; old && k < r->prot.n; k++) old = seen.prot_hash[k] == r->prot.vals[k];
  bool neu = !old && op && shows_new(r, op, &seen);
  if (!old && !neu) {
    char a[200] = "?", b[200];
    cc_state want;
    if (snapshot(&r->reg, &r->prot, &want) == CC_OK) {
      cc_state_describe(&want, a, sizeof a);
      cc_state_free(&want);
    }
    cc_state_describe(&seen, b, sizeof b);
    cc_state_free(&seen);
    if (!op)
      FAIL(r, "operation %zu: the file reopened after MP_EPOISONED (no operation had failed) holds %.150s, not the "
           "last committed state %.150s", i, b, a);
    FAIL(r, "operation %zu: the file reopened after MP_EPOISONED (operation %zu, %s, failed) holds %.150s: neither "
         "the last committed state %.150s nor that operation's", i, f, cc_op_name(op->kind), b, a);
  }
  int ret = CC_OK;
  if (neu && f) { /* the model takes the new sets; pages it did not know hold unknown content */
    growable reg = {0}, prot = {0};
    for (size_t k = 0; ret == CC_OK && k < seen.nreg; k++) {
      long at = g_find(&r->reg, seen.reg[k]);
      ret = g_insert(&reg, seen.reg[k], at >= 0 ? r->reg.vals[at] : 0);
    }
    for (size_t k = 0; ret == CC_OK && k < seen.nprot; k++) ret = g_insert(&prot, seen.prot[k], seen.prot_hash[k]);
    if (ret == CC_OK) {
      free(r->reg.ids), free(r->reg.vals), free(r->prot.ids), free(r->prot.vals);
      r->reg = reg, r->prot = prot;
      /* the state after operation f is the one the file tells */
      cc_state *st = &r->run->states[f];
      if (r->run->nstates > f) {
        cc_state_free(st);
        ret = snapshot(&r->reg, &r->prot, st);
      }
    } else {
      free(reg.ids), free(reg.vals), free(prot.ids), free(prot.vals);
    }
  }
  cc_state_free(&seen);
  r->run->poisoned_op = i;
  r->run->adopted_new = neu;
  r->run->error[0] = 0;
  r->tolerated = false;
  return ret == CC_OK ? do_op(r, i, &r->c->ops[i - 1]) : ret;
}

/* The call of operation i failed (r->tolerated): the first failure of the run is the
 * injected one; the model keeps the last committed state (agree() holds the pager to it). */
static int after_failure(runner *r, size_t i) {
  r->tolerated = false;
  if (r->last_rc == MP_EPOISONED) return reopen_poisoned(r, i);
  r->run->failed_op = i;
  r->run->failed_rc = r->failed_rc;
  r->run->error[0] = 0;
  const cc_op *op = &r->c->ops[i - 1];
  const char *what = r->failed_what ? r->failed_what : "";
  if ((op->kind == CC_WRITE_SYNC && !strcmp(what, "mp_sync_page")) ||
      (op->kind == CC_SYNC && !strcmp(what, "mp_sync"))) {
    /* A failed sync is retried once, as an application would; its MP_OK is held to R6 (and the
     * durable state the run leaves) like any other: what the failed msync dropped (fsync-gate)
     * must be written by the retry. */
    size_t at = op->a % (r->reg.n ? r->reg.n : 1);
    int rc = op->kind == CC_SYNC ? mp_sync(r->p) : mp_sync_page(r->p, r->reg.ids[at]);
    if (rc != MP_OK)
      FAIL(r, "operation %zu: retrying %s after its failure returned %d (%s)", i, what, rc, mp_strerror(rc));
    void *data;
    if (op->kind == CC_SYNC)
      synced_all(r);
    else if (mp_page(r->p, r->reg.ids[at], &data) == MP_OK)
      r->reg.vals[at] = cc_hash(data, mp_page_size(r->p));
  }
  if (op->kind == CC_PWRITE && !strcmp(what, "mp_protected_commit")) {
    /* The staged write outlives a failed commit, so the caller retries it, as an application
     * would: the handle is not poisoned. The retry's MP_OK is a promise like any other (R5, and
     * the durable state the run leaves): the copy the failed msync may have dropped (fsync-gate)
     * must reach the disk before the selector names it. A retry that fails too (the first
     * failure poisoned the handle) leaves the write to be dropped, as before. */
    int rc = mp_protected_commit(r->p, r->intent[0]);
    long at = g_find(&r->prot, r->intent[0]);
    if (rc == MP_OK && at >= 0)
      r->prot.vals[at] = r->intent_hash;
    else if (rc != MP_EPOISONED)
      FAIL(r, "operation %zu: retrying mp_protected_commit after its failure returned %d (%s)", i, rc,
           mp_strerror(rc));
    else if ((rc = mp_protected_abort(r->p, r->intent[0])) != MP_OK && rc != MP_ENOTSTAGED)
      FAIL(r, "operation %zu: mp_protected_abort after the failed commit returned %d (%s)", i, rc, mp_strerror(rc));
  }
  if (!r->p) { /* a failed reopen: the handle is gone; the next open must work */
    int rc = mp_open(r->path, open_flags(r->c), &r->p);
    if (rc != MP_OK) FAIL(r, "operation %zu: mp_open failed again after the injected error: %d (%s)", i, rc, mp_strerror(rc));
  }
  return CC_OK;
}

static int add_state(runner *r) {
  cc_state *s = &r->run->states[r->run->nstates];
  int rc = snapshot(&r->reg, &r->prot, s);
  if (rc == CC_OK) r->run->nstates++;
  return rc;
}

/* The runner's sets start as what an existing file holds; its regular pages'
 * content is durable (it is a file on disk). */
static int load_existing(runner *r) {
  cc_state s;
  int rc = cc_state_read(r->p, true, NULL, &s);
  for (size_t i = 0; rc == CC_OK && i < s.nreg; i++) rc = g_insert(&r->reg, s.reg[i], s.synced[i]);
  for (size_t i = 0; rc == CC_OK && i < s.nprot; i++) rc = g_insert(&r->prot, s.prot[i], s.prot_hash[i]);
  cc_state_free(&s);
  return rc;
}

/* What a run starts from: a new file, a recovered crash image (its state is what the
 * writer's open makes of it), or a file another writer made (its state is what it holds
 * before that open). */
typedef enum { START_CREATE, START_RECOVERED, START_IMAGE } start_kind;

static void free_runner(runner *r) {
  free(r->buf);
  free(r->reg.ids);
  free(r->reg.vals);
  free(r->prot.ids);
  free(r->prot.vals);
}

static int run_case(const cc_case *c, const char *path, start_kind start, bool check, bool errors, cc_run *run) {
  memset(run, 0, sizeof *run);
  run->states = check ? calloc(c->nops + 1, sizeof *run->states) : NULL;
  runner r = {.c = c, .path = path, .run = run, .errors = errors};
  if (check && !run->states) return CC_ENOMEM;
  bool existing = start != START_CREATE;
  int rc;
  if (start == START_IMAGE) {
    /* A reader's open writes nothing: the state as the other writer left it. */
    if ((rc = mp_open(path, MP_RDONLY, &r.p)) != MP_OK) {
      snprintf(run->error, sizeof run->error, "mp_open(%s, MP_RDONLY): %s", path, mp_strerror(rc));
      return CC_EIO;
    }
    /* A reader's view hides pages recovery would reclaim; in a file another writer made
     * there are none: nothing of its records is trusted, its pages are kept (W1). */
    uint64_t leaked = mp_recovery(r.p) & MP_RECOVER_ADOPT ? mp_leaked_count(r.p) : 0;
    rc = leaked ? CC_EINVAL : load_existing(&r);
    if (leaked)
      snprintf(run->error, sizeof run->error, "the file another writer made (adoption pending) opens read-only with "
               "%llu of its allocated pages counted as left by an interrupted operation, to reclaim: such a file "
               "keeps every page it allocated", (unsigned long long)leaked);
    mp_close(r.p);
    r.p = NULL;
    if (rc != CC_OK) {
      free_runner(&r);
      return rc;
    }
  }
  if (!existing) unlink(path);
  pc_mark_begin(cc_marker(0), existing ? "open" : "create");
  rc = existing ? mp_open(path, open_flags(c), &r.p)
                 : mp_create_flags(path, c->page_size, cc_create_flags(c), &r.p);
  if (rc == MP_OK && !existing && !c->format3 && open_flags(c)) { /* a 0.2 file: reopened so, as a user would */
    rc = mp_close(r.p);
    r.p = NULL;
    if (rc == MP_OK) rc = mp_open(path, open_flags(c), &r.p);
  }
  pc_mark_end(cc_marker(0));
  if (rc != MP_OK) {
    snprintf(run->error, sizeof run->error, "%s(%s): %s", existing ? "mp_open" : "mp_create", path, mp_strerror(rc));
    free_runner(&r);
    return CC_EIO;
  }
  if (!(r.buf = malloc(mp_page_size(r.p)))) { /* an existing file has its own page size */
    mp_close(r.p);
    free_runner(&r);
    return CC_ENOMEM;
  }
  rc = start == START_RECOVERED ? load_existing(&r) : CC_OK;
  if (rc == CC_OK && start == START_IMAGE && check) rc = agree(&r, 0, NULL);
  if (rc == CC_OK && check) rc = add_state(&r);
  /* After each operation the pager's sets must be the model's, and each protected page must
   * hold its last committed content. A protected page's content is read, checked against its
   * entry's checksum and hashed once per place and checksum (the cache): reading them all after
   * every operation took up to a fifth of a fuzzer input's time. An entry that changes is read
   * again; bytes changed in place under an unchanged entry are found after the last operation,
   * which reads every page, and by the checker in every crash image. */
  cc_check_cache cache = {0};
  for (size_t i = 1; rc == CC_OK && i <= c->nops; i++) {
    pc_mark_begin(cc_marker(i), cc_op_name(c->ops[i - 1].kind));
    rc = do_op(&r, i, &c->ops[i - 1]);
    if (rc == CC_EINVAL && r.tolerated) rc = after_failure(&r, i);
    pc_mark_end(cc_marker(i));
    if (rc == CC_OK && check) rc = agree(&r, i, i == c->nops ? NULL : &cache);
    if (rc == CC_OK && check) rc = add_state(&r);
  }
  cc_check_cache_free(&cache);
  mp_close(r.p);
  free_runner(&r);
  return rc;
}

int cc_run_case(const cc_case *c, const char *path, cc_run *run) {
  return run_case(c, path, START_CREATE, true, false, run);
}
int cc_run_case_on(const cc_case *c, const char *path, cc_run *run) {
  return run_case(c, path, START_RECOVERED, true, false, run);
}
int cc_run_case_image(const cc_case *c, const char *path, cc_run *run) {
  return run_case(c, path, START_IMAGE, true, false, run);
}
int cc_run_case_unchecked(const cc_case *c, const char *path, bool existing, cc_run *run) {
  return run_case(c, path, existing ? START_RECOVERED : START_CREATE, false, false, run);
}
int cc_run_case_errors(const cc_case *c, const char *path, cc_run *run) {
  return run_case(c, path, START_CREATE, true, true, run);
}

void cc_run_free(cc_run *run) {
  for (size_t i = 0; i < run->nstates; i++) cc_state_free(&run->states[i]);
  free(run->states);
  memset(run, 0, sizeof *run);
}
