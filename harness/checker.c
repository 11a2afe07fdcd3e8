/* checker.c: decides whether one crash image recovered correctly: it opens (R1), its
 * structure holds (R4), its allocation state is the model's before or after state (R2,
 * R3), protected contents (R5) and synced data (R6) are intact, and no page leaked (R8; W1,
 * a warning, in a file another writer made); what a reader lists is what recovery leaves (R2). */
#include "checker.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mappedpages.h"

__attribute__((format(printf, 4, 5))) static void violation(cc_verdict *v, const char *inv, const char *expected,
                                                            const char *fmt, ...) {
  if (v->nviolations >= CC_MAX_VIOLATIONS) return;
  cc_violation *x = &v->v[v->nviolations++];
  x->invariant = inv;
  snprintf(x->expected, sizeof x->expected, "%s", expected);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->found, sizeof x->found, fmt, ap);
  va_end(ap);
}

typedef struct first_finding {
  char text[256];
  unsigned n;
} first_finding;

static void keep_first(void *arg, const char *finding) {
  first_finding *f = arg;
  if (f->n++ == 0) snprintf(f->text, sizeof f->text, "%s", finding);
}

/* R4. Protected pages' content is left to R5: reading it (mp_protected_read
 * verifies its checksum) is what a check of every crash state must not do twice.
 * `kept` (may be NULL) holds the findings of the handle's last load, which stand when
 * `same` says the handle kept that load's state, and takes this check's. */
static void structure(mp_pager *p, const char *when, cc_findings *kept, bool same, cc_verdict *v) {
  first_finding f = {.n = 0};
  if (kept && same && kept->known) {
    f.n = kept->n;
    snprintf(f.text, sizeof f.text, "%s", kept->first);
  } else {
    if (kept) kept->known = false;
    if (mp_check_flags(p, MP_CHECK_NO_CONTENT, keep_first, &f, NULL) != MP_OK) {
      violation(v, "R4", "mp_check runs", "mp_check could not run (%s)", when);
      return;
    }
    if (kept) {
      kept->known = true;
      kept->n = f.n;
      snprintf(kept->first, sizeof kept->first, "%s", f.text);
    }
  }
  if (f.n) violation(v, "R4", "mp_check finds nothing", "%s: %u findings, the first: %s", when, f.n, f.text);
}

static long find(const uint64_t *ids, size_t n, uint64_t id) { return cc_find_id(ids, n, id); }

/* The ids `got` holds and `s` does not, as "1 2 3" (a few, then "..."). */
static void describe_extra(const cc_state *got, const cc_state *s, char *buf, size_t len) {
  size_t n = 0, shown = 0;
  buf[0] = 0;
  for (uint64_t id = 0; id < (uint64_t)got->nwords * 64 && n < len; id++) {
    if (!cc_state_has(got, id) || cc_state_has(s, id)) continue;
    if (shown++ == 8) {
      snprintf(buf + n, len - n, " ...");
      break;
    }
    int w = snprintf(buf + n, len - n, shown > 1 ? " %llu" : "%llu", (unsigned long long)id);
    if (w < 0) break;
    n += (size_t)w;
  }
}

static bool page_holds(mp_pager *p, uint64_t id, cc_check_cache *cache, uint64_t hash) {
  void *data;
  return mp_page(p, id, &data) == MP_OK && cc_page_hash(cache, p, id, data) == hash;
}

static unsigned count_r6(const cc_verdict *v) {
  unsigned n = 0;
  for (unsigned i = 0; i < v->nviolations; i++) n += strcmp(v->v[i].invariant, "R6") == 0;
  return n;
}

/* R6 for one page: if it is synced with the same content before and after the
 * operation in flight, and the recovered state has it, it must hold that data. */
static int compare_ids(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

static void synced_intact(mp_pager *p, const cc_state *got, const cc_state *a, const cc_state *b, uint64_t id,
                          cc_check_cache *cache, cc_verdict *v) {
  long ia = cc_find_id(a->reg, a->nreg, id), ib = cc_find_id(b->reg, b->nreg, id);
  if (ia < 0 || ib < 0 || !a->synced[ia] || a->synced[ia] != b->synced[ib]) return;
  if (!cc_state_has(got, id)) return;
  uint64_t h;
  if (cc_page_hash_known(cache, p, id, &h) ? h != a->synced[ia] : !page_holds(p, id, cache, a->synced[ia]))
    violation(v, "R6", "the data synced before the cut", "regular page %llu holds other data", (unsigned long long)id);
}

/* R5 and R6 for the pages of the recovered state `got` (read from the open pager p),
 * against the states it may be. */
static void contents(mp_pager *p, const cc_state *got, const cc_state *a, const cc_state *b, cc_check_cache *cache,
                     cc_verdict *v) {
  for (size_t i = 0; i < got->nprot; i++) {
    long ia = a ? find(a->prot, a->nprot, got->prot[i]) : -1, ib = find(b->prot, b->nprot, got->prot[i]);
    uint64_t h = got->prot_hash[i];
    bool ok = (ia >= 0 && a->prot_hash[ia] == h) || (ib >= 0 && b->prot_hash[ib] == h);
    if (!ok && (ia >= 0 || ib >= 0))
      violation(v, "R5", "the last committed content, or the content being committed",
                "protected page %llu holds %s", (unsigned long long)got->prot[i],
                h ? "other content (a torn or lost write)" : "content that fails its checksum");
  }
  /* Synced data is known only where the operation in flight did not change it:
   * the same page, synced with the same content, before and after (pages every
   * state this check accepts holds). When the last check found all of those of
   * the same two states intact, only the pages whose bytes may have changed since
   * are read again; else all of them, in one merge of the ascending id lists. */
  unsigned before_r6 = count_r6(v);
  /* A page may stand in both lists, or twice in `changed`: each is read (and reported) once,
   * as a check without the cache does. */
  size_t nids = cache ? cache->nchanged + cache->npriv : 0;
  uint64_t *ids = cache && a && cache->r6_before == a && cache->r6_after == b && !cache->changed_all &&
                          !cache->all_priv
                      ? malloc((nids ? nids : 1) * sizeof *ids)
                      : NULL;
  if (ids) {
    if (cache->nchanged) memcpy(ids, cache->changed, cache->nchanged * sizeof *ids);
    if (cache->npriv) memcpy(ids + cache->nchanged, cache->priv, cache->npriv * sizeof *ids);
    if (nids > 16) {
      qsort(ids, nids, sizeof *ids, compare_ids);
    } else { /* (a few pages mostly: no calls through a comparison function for them) */
      for (size_t i = 1; i < nids; i++)
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
          uint64_t t = ids[j];
          ids[j] = ids[j - 1];
          ids[j - 1] = t;
        }
    }
    for (size_t k = 0; k < nids; k++)
      if (k == 0 || ids[k] != ids[k - 1]) synced_intact(p, got, a, b, ids[k], cache, v);
    free(ids);
  } else {
    size_t ib = 0;
    for (size_t ia = 0; a && ia < a->nreg; ia++) {
      uint64_t id = a->reg[ia];
      while (ib < b->nreg && b->reg[ib] < id) ib++;
      if (ib == b->nreg) break;
      if (b->reg[ib] != id || !a->synced[ia] || a->synced[ia] != b->synced[ib] || !cc_state_has(got, id)) continue;
      uint64_t h;
      if (cc_page_hash_known(cache, p, id, &h) ? h != a->synced[ia] : !page_holds(p, id, cache, a->synced[ia]))
        violation(v, "R6", "the data synced before the cut", "regular page %llu holds other data",
                  (unsigned long long)id);
    }
  }
  if (!cache) return;
  bool intact = a && count_r6(v) == before_r6;
  cache->r6_before = intact ? a : NULL;
  cache->r6_after = intact ? b : NULL;
  cache->nchanged = 0;
  cache->changed_all = cache->all_priv;
  /* Pages a preview's recovery wrote show the file's bytes to the next check. */
  for (size_t k = 0; k < cache->npriv; k++) cc_check_cache_changed(cache, cache->priv[k]);
}

/* Notes what the reader `p` (NULL: none) was just loaded from, so that the next check can
 * tell without a reload whether it still stands. */
static void keep_basis(cc_check_cache *cache, mp_pager *p) {
  size_t n = 0;
  cache->basis_held = false;
  if (!p || !cache->image_size || mp_reload_basis(p, NULL, 0, &n) != MP_OK) return;
  if (n > cache->basiscap) {
    uint64_t *b = realloc(cache->basis, n * sizeof *b);
    if (!b) return;
    cache->basis = b;
    cache->basiscap = n;
  }
  if (mp_reload_basis(p, cache->basis, n, &cache->nbasis) != MP_OK) return;
  cache->basis_ps = mp_page_size(p);
  cache->reader_size = cache->image_size;
  cache->basis_held = true;
}

/* Opens `path` with `flags`, or reloads the handle of it the cache keeps: a reload
 * reads only the pages that changed since the last check, and `*same` says it kept all
 * it had derived (mp_reload_same). */
static int open_kept(const char *path, unsigned flags, cc_check_cache *cache, mp_pager **p, bool *same, char *why,
                     size_t len) {
  *same = false;
  if (!cache) return mp_open_explain(path, flags, p, why, len);
  if (cache->path && strcmp(cache->path, path) != 0) {
    mp_close(cache->preview);
    mp_close(cache->reader);
    cache->preview = cache->reader = NULL;
    free(cache->path);
    cache->path = NULL;
  }
  if (!cache->path && !(cache->path = strdup(path))) return mp_open_explain(path, flags, p, why, len);
  bool reader = !(flags & MP_PREVIEW);
  mp_pager **kept = reader ? &cache->reader : &cache->preview;
  if (*kept && reader && cache->basis_held && cache->image_size && cache->image_size == cache->reader_size) {
    *p = *kept;
    *same = true; /* nothing its state was derived from was written since: a reload is a no-op */
    return MP_OK;
  }
  int rc;
  if (*kept) {
    *p = *kept;
    rc = mp_reload_same(*kept, same, why, len);
  } else {
    /* a new handle: nothing known of it */
    if (reader) cache->reader_r4.known = cache->preview_current = false;
    else cache->preview_r4.known = false;
    /* A kept reader is reloaded only when its basis was written (above), where a copy of the
     * basis's bytes would never match: the handle keeps none. */
    rc = mp_open_explain(path, reader ? flags | MP_BASIS_WATCHED : flags, p, why, len);
    if (rc == MP_OK) *kept = *p;
  }
  if (reader) keep_basis(cache, rc == MP_OK ? *p : NULL);
  return rc;
}

/* Closes a handle open_kept gave, unless the cache keeps it. */
static void close_kept(mp_pager *p, const cc_check_cache *cache) {
  if (!cache || (p != cache->preview && p != cache->reader)) mp_close(p);
}

/* Closes the kept handles: the file is about to be rewritten (their locks would
 * stand in the writer's way). */
static void drop_kept(cc_check_cache *cache) {
  if (!cache) return;
  cache->basis_held = false;
  cache->preview_current = false;
  mp_close(cache->preview);
  mp_close(cache->reader);
  cache->preview = cache->reader = NULL;
}

void cc_verdict_clear(cc_verdict *v) { memset(v, 0, offsetof(cc_verdict, v) + sizeof v->v[0]); }

void cc_check_missing(const cc_state *before, cc_verdict *v) {
  cc_verdict_clear(v);
  if (!before) return; /* the create in flight: before it there was no file */
  char e[320], b[150];
  cc_state_describe(before, b, sizeof b);
  snprintf(e, sizeof e, "the file mp_create made, with every operation that returned before the cut: %s", b);
  violation(v, "R3", e, "no file: its name was not durable (no fsync of its directory made the create's "
            "directory entry durable), so the create and every operation since are lost");
}

int cc_check_image(const char *path, size_t page_size, const cc_state *before, const cc_state *after, int inflight,
                   cc_check_cache *cache, cc_verdict *v) {
  return cc_check_image_flags(path, page_size, 0, before, after, inflight, cache, v);
}

int cc_check_image_flags(const char *path, size_t page_size, unsigned create_flags, const cc_state *before,
                         const cc_state *after, int inflight, cc_check_cache *cache, cc_verdict *v) {
  cc_verdict_clear(v);
  char why[256];
  mp_pager *p = NULL;
  /* First as a reader, which changes nothing: its structure, and what a writer
   * would have to recover. The image is never written: it stays as the explorer
   * wrote it, so the next state costs only the sectors it changes. */
  bool same;
  int rc = open_kept(path, MP_RDONLY, cache, &p, &same, why, sizeof why);
  unsigned recovery = 0;
  if (rc == MP_ENOENT && access(path, F_OK) != 0 && errno == ENOENT) {
    cc_check_missing(before, v);
    return CC_OK;
  }
  if (rc == MP_EINCOMPLETE && !before) {
    /* A cut in the create may leave a leftover, which the workload's create replaces. */
    v->rewritten = true;
    cc_check_cache_forget_all(cache);
    drop_kept(cache);
    rc = mp_create_flags(path, page_size, create_flags, &p);
  } else if (rc == MP_OK) {
    v->reclaimed = mp_leaked_count(p);
    v->recovery = recovery = mp_recovery(p);
  }
  if (rc != MP_OK) {
    violation(v, "R1", "the file opens read-only", "%s: %s", mp_strerror(rc), why);
    return CC_OK;
  }
  bool kept_reader = cache && p == cache->reader;
  if (kept_reader && !same) cache->preview_current = false; /* derived from another reader state */
  structure(p, recovery ? "before recovery" : "as found", kept_reader ? &cache->reader_r4 : NULL, same, v);
  /* What a read-only open lists as the caller's regular pages must be what a writer's open
   * leaves them: recovery only frees pages nothing owns (which a reader already leaves out),
   * mirrors, and rewrites page 0 as the reader resolved it. Read before the reader's handle
   * is set aside, compared with the recovered state below. */
  uint64_t *reader_bits = NULL;
  size_t reader_words = 0;
  if (recovery) {
    reader_words = (size_t)((mp_page_count(p) + 63) / 64);
    reader_bits = malloc((reader_words ? reader_words : 1) * 8);
    if (reader_bits && mp_regular_bits(p, 0, reader_bits, reader_words) != MP_OK) {
      free(reader_bits);
      reader_bits = NULL;
    }
  }
  if (recovery) {
    /* Then as a writer's open leaves it, seen through a preview: recovery runs
     * on a private copy of the mapping (its writes are the preview's, byte for
     * byte; cuts during recovery itself are R7's). A writer's open with nothing
     * to do writes nothing and sees what the reader sees: the reader stands for it.
     * Recovery reads only what the reader's load read: when that is unchanged, the
     * kept preview is what reloading it would give, unless a page it holds a private
     * copy of changed in the file. */
    close_kept(p, cache);
    bool current = kept_reader && same && cache->preview && cache->preview_current && !cache->preview_stale;
    if (current) {
      p = cache->preview;
    } else {
      rc = open_kept(path, MP_PREVIEW, cache, &p, &same, why, sizeof why);
      if (cache) {
        cache->preview_current = rc == MP_OK && kept_reader && p == cache->preview;
        cache->preview_stale = false;
      }
    }
    if (rc != MP_OK) {
      free(reader_bits);
      violation(v, "R1", "the file opens read-write", "%s: %s", mp_strerror(rc), why);
      return CC_OK;
    }
    structure(p, "after recovery", cache && p == cache->preview ? &cache->preview_r4 : NULL, current, v);
    cc_check_cache_private(cache, p); /* pages recovery wrote are the preview's own */
  }
  cc_state got;
  rc = cc_state_read_bits(p, cache, &got);
  if (rc != CC_OK) {
    free(reader_bits);
    cc_check_cache_private(cache, NULL);
    close_kept(p, cache);
    return rc;
  }
  if (reader_bits) {
    size_t n = reader_words > got.nwords ? reader_words : got.nwords, w = 0;
    uint64_t r = 0, g = 0;
    for (; w < n; w++) {
      r = w < reader_words ? reader_bits[w] : 0, g = w < got.nwords ? got.bits[w] : 0;
      if (r != g) break;
    }
    if (w < n) {
      uint64_t id = (uint64_t)w * 64 + (uint64_t)__builtin_ctzll(r ^ g);
      violation(v, "R2", "a read-only open lists the regular pages a writer's open leaves",
                "page %llu is %s to a reader, %s after recovery", (unsigned long long)id,
                r >> (id % 64) & 1 ? "a regular page" : "not a regular page", g >> (id % 64) & 1 ? "one" : "not one");
    }
    free(reader_bits);
  }

  bool is_before = before && cc_state_same_sets(&got, before), is_after = cc_state_same_sets(&got, after);
  if (!before && got.nreg == 0 && got.nprot == 0) is_before = true; /* a fresh file is the empty state */
  /* Pages allocated in the recovered file that neither model state owns, with every page
   * that state owns still there, while a protected alloc or free (the operations that
   * allocate pages for something other than the caller) was in flight: a leak. (Extra
   * pages during any other operation are a mix, R2.) In a file this library wrote (no adoption
   * pending) recovery must reclaim them, so any such page is R8. A file another writer
   * made may carry up to 4 from an interrupted protected alloc or free before it was
   * adopted (the reference's weakness): W1, a warning. */
  bool foreign = recovery & MP_RECOVER_ADOPT;
  bool leaky_op = inflight == CC_PALLOC || inflight == CC_PFREE;
  for (int k = 0; k < 2 && !is_before && !is_after && leaky_op; k++) {
    const cc_state *s = k ? after : before;
    if (!s || got.nprot != s->nprot || (got.nprot && memcmp(got.prot, s->prot, got.nprot * 8))) continue;
    size_t missing = 0;
    for (size_t i = 0; i < s->nreg; i++) missing += !cc_state_has(&got, s->reg[i]);
    if (missing || got.nreg <= s->nreg) continue;
    size_t extra = got.nreg - s->nreg;
    if (foreign && extra <= 4) {
      v->leaks += extra;
      is_before = !k, is_after = k;
    } else if (!foreign) {
      char pages[160], e[320], ws[150];
      describe_extra(&got, s, pages, sizeof pages);
      cc_state_describe(s, ws, sizeof ws);
      snprintf(e, sizeof e, "no page allocated that the %s state does not own: %s", k ? "after" : "before", ws);
      violation(v, "R8", e, "%zu pages leaked by recovery (allocated, owned by nothing): %s", extra, pages);
      cc_check_cache_private(cache, NULL);
      close_kept(p, cache);
      cc_state_free(&got);
      return CC_OK;
    }
  }
  if (!is_before && !is_after) {
    char e[320], eb[150], ea[150], f[160];
    cc_state_describe(after, ea, sizeof ea);
    if (before) cc_state_describe(before, eb, sizeof eb);
    else snprintf(eb, sizeof eb, "no file");
    snprintf(e, sizeof e, "before: %s; or after: %s", eb, ea);
    cc_state_describe(&got, f, sizeof f);
    /* Something both states have is missing: a completed operation was lost. */
    bool lost = false;
    for (size_t i = 0; before && i < before->nreg && !lost; i++)
      lost = find(after->reg, after->nreg, before->reg[i]) >= 0 && !cc_state_has(&got, before->reg[i]);
    for (size_t i = 0; before && i < before->nprot && !lost; i++)
      lost = find(after->prot, after->nprot, before->prot[i]) >= 0 && find(got.prot, got.nprot, before->prot[i]) < 0;
    violation(v, lost ? "R3" : "R2", e, "%s", f);
    cc_check_cache_private(cache, NULL);
    close_kept(p, cache);
    cc_state_free(&got);
    return CC_OK;
  }
  contents(p, &got, before, after, cache, v);
  cc_check_cache_private(cache, NULL);
  close_kept(p, cache);
  cc_state_free(&got);
  return CC_OK;
}

static void print_finding(void *arg, const char *finding) {
  (void)arg;
  printf("  %s\n", finding);
}

int cc_fsck(const char *path, unsigned *findings) {
  char why[256];
  mp_pager *p;
  int rc = mp_open_explain(path, MP_RDONLY, &p, why, sizeof why);
  if (rc != MP_OK) {
    printf("%s: cannot be opened: %s\n", path, why);
    *findings = 1;
    return CC_OK;
  }
  printf("%s: page size %zu, %llu pages, %llu free\n", path, mp_page_size(p), (unsigned long long)mp_page_count(p),
         (unsigned long long)mp_free_count(p));
  rc = mp_check(p, print_finding, NULL, findings);
  static const char *const what[] = {"rewrite page 0 after a torn write", "use the metadata copy before the damaged one",
                                     "reclaim pages an interrupted protected operation left",
                                     "make directory copies agree", "adopt a file another writer made",
                                     "rewrite page 0's stale section checksum"};
  for (unsigned bit = 0; bit < sizeof what / sizeof *what; bit++)
    if (mp_recovery(p) >> bit & 1) printf("  recovery pending: a read-write open will %s\n", what[bit]);
  if (mp_leaked_count(p))
    printf("  note: %llu pages were left allocated by an interrupted protected operation\n",
           (unsigned long long)mp_leaked_count(p));
  unsigned pending = mp_recovery(p);
  mp_close(p);
  if (rc != MP_OK || !pending) return rc == MP_OK ? CC_OK : CC_EIO;
  /* What recovery would leave, seen without writing the file. */
  rc = mp_open_explain(path, MP_PREVIEW, &p, why, sizeof why);
  if (rc != MP_OK) {
    printf("  after recovery (previewed): the file cannot be opened: %s\n", why);
    ++*findings;
    return CC_OK;
  }
  unsigned after = 0;
  printf("  after recovery (previewed in memory, the file is not written): %llu pages, %llu free\n",
         (unsigned long long)mp_page_count(p), (unsigned long long)mp_free_count(p));
  rc = mp_check(p, print_finding, NULL, &after);
  *findings += after;
  mp_close(p);
  return rc == MP_OK ? CC_OK : CC_EIO;
}
