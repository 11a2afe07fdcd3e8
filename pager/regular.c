/* regular.c: regular pages: allocation and free (single and bulk, one commit each),
 * access through the mapping, making their data durable, and iteration. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* MP_OK for an allocated regular page, else the code that says why not. */
static int check_regular(const mp_pager *p, uint64_t id) {
  if (p->fmt3) {
    if (id >= p->total || mp3__meta_page(p, id) || mp3__owned(p, id)) return MP_EINVAL;
    return mp3__allocated(p, id) ? MP_OK : MP_ENOTALLOC;
  }
  if (id < MP_RESERVED_PAGES || id >= p->total || mp__bit(p->owned, id) || mp__bit(p->reclaim, id)) return MP_EINVAL;
  return mp__allocated(p, id) ? MP_OK : MP_ENOTALLOC;
}

int mp_alloc_bulk(mp_pager *p, size_t n, uint64_t *ids) {
  if (!p || (n && !ids)) return MP_EINVAL;
  int rc = mp__writable(p);
  if (rc != MP_OK || n == 0) return rc;
  if (n > p->capacity && !p->upgrade) return MP_EFULL;
  if (p->fmt3) return mp3__alloc_bulk(p, n, ids);
  uint64_t total;
  rc = n > p->capacity ? MP_EFULL : mp__find_free(p, n, ids, &total);
  if (rc == MP_EFULL && p->upgrade && (rc = mp3__upgrade(p)) == MP_OK) return mp3__alloc_bulk(p, n, ids);
  if (rc != MP_OK) return rc;
  mp_meta_txn txn;
  mp__meta_begin(p, total, &txn);
  for (size_t i = 0; i < n; i++) mp__meta_set(p, &txn, ids[i], true);
  return mp__meta_commit(p, &txn);
}

int mp_alloc(mp_pager *p, uint64_t *id) {
  if (!id) return MP_EINVAL;
  return mp_alloc_bulk(p, 1, id);
}

int mp_free_bulk(mp_pager *p, size_t n, const uint64_t *ids) {
  if (!p || (n && !ids)) return MP_EINVAL;
  int rc = mp__writable(p);
  if (rc != MP_OK || n == 0) return rc;
  /* Every id is checked, duplicates included, before anything changes (one id has none). */
  if (n == 1 && (rc = check_regular(p, ids[0])) != MP_OK) return rc;
  if (p->fmt3 && n == 1) return mp3__free_bulk(p, n, ids);
  if (p->fmt3) {
    /* (a sorted copy: a bitmap of the file would cost up to 512 MiB a call at 2^32 pages) */
    uint64_t *sorted = mp__malloc(n * sizeof *sorted);
    if (!sorted) return MP_ENOMEM;
    memcpy(sorted, ids, n * sizeof *sorted);
    mp__sort_u64(sorted, n);
    for (size_t i = 0; i < n && rc == MP_OK; i++) {
      rc = check_regular(p, sorted[i]);
      if (rc == MP_OK && i && sorted[i] == sorted[i - 1]) rc = MP_EINVAL;
    }
    free(sorted);
    return rc != MP_OK ? rc : mp3__free_bulk(p, n, ids);
  }
  if (n > 1) {
    uint64_t *seen = mp__calloc((size_t)((p->total + 63) / 64), 8);
    if (!seen) return MP_ENOMEM;
    for (size_t i = 0; i < n && rc == MP_OK; i++) {
      rc = check_regular(p, ids[i]);
      if (rc == MP_OK && mp__bit(seen, ids[i])) rc = MP_EINVAL;
      if (rc == MP_OK) mp__set(seen, ids[i]);
    }
    free(seen);
    if (rc != MP_OK) return rc;
  }
  mp_meta_txn txn;
  mp__meta_begin(p, p->total, &txn);
  for (size_t i = 0; i < n; i++) mp__meta_set(p, &txn, ids[i], false);
  return mp__meta_commit(p, &txn);
}

int mp_free(mp_pager *p, uint64_t id) { return mp_free_bulk(p, 1, &id); }

int mp_page(mp_pager *p, uint64_t id, void **data) {
  if (!p || !data) return MP_EINVAL;
  int rc = check_regular(p, id);
  if (rc == MP_OK) *data = mp__pg(p, id);
  return rc;
}

int mp_sync_page(mp_pager *p, uint64_t id) {
  if (!p) return MP_EINVAL;
  if (p->rdonly) return MP_ERDONLY;
  if (p->poisoned) return MP_EPOISONED; /* nothing more is written until a reopen tells the state */
  int rc = check_regular(p, id);
  return rc == MP_OK ? mp__sys_msync(p, id, 1) : rc;
}

int mp_sync(mp_pager *p) {
  if (!p) return MP_EINVAL;
  if (p->rdonly) return MP_ERDONLY;
  if (p->poisoned) return MP_EPOISONED;
  return mp__sys_msync(p, 0, p->total);
}

/* Word w of the regular-page set: allocated, owned by no structure, not awaiting
 * reclaim, not reserved, inside the file's pages. */
static uint64_t regular_word(const mp_pager *p, const uint8_t *bm, uint64_t w) {
  if (p->fmt3) return mp3__regular_word(p, w);
  if (w >= (p->total + 63) / 64) return 0; /* (w * 64 wraps past 2^58 words) */
  uint64_t bits = mp__get64(bm + w * 8) & ~p->owned[w] & ~p->reclaim[w];
  if (w == 0) bits &= ~((UINT64_C(1) << MP_RESERVED_PAGES) - 1);
  if (p->total - w * 64 < 64) bits &= (UINT64_C(1) << (p->total - w * 64)) - 1;
  return bits;
}

int mp_regular_bits(const mp_pager *p, uint64_t first_word, uint64_t *words, size_t n) {
  if (!p || (!words && n)) return MP_EINVAL;
  const uint8_t *bm = !p->map ? NULL : p->fmt3 ? p->map : mp__active_meta(p) + MP_META_BITMAP;
  /* A word whose index wraps past 2^64 is past the file too, not word 0 again. */
  for (size_t k = 0; k < n; k++)
    words[k] = bm && k <= UINT64_MAX - first_word ? regular_word(p, bm, first_word + k) : 0;
  return MP_OK;
}

int mp_next_regular(const mp_pager *p, uint64_t from, uint64_t *id) {
  if (!p || !id) return MP_EINVAL;
  if (from < MP_RESERVED_PAGES && !p->fmt3) from = MP_RESERVED_PAGES; /* (0.3: regular_word knows its metadata) */
  if (!p->map) return MP_ENOENT; /* a failed mp_reload left no file loaded */
  const uint8_t *bm = p->fmt3 ? NULL : mp__active_meta(p) + MP_META_BITMAP;
  for (uint64_t w = from / 64; w * 64 < p->total; w++) {
    uint64_t bits = regular_word(p, bm, w);
    if (w == from / 64) bits &= ~UINT64_C(0) << (from % 64);
    if (bits) {
      *id = w * 64 + (uint64_t)__builtin_ctzll(bits);
      return MP_OK;
    }
  }
  return MP_ENOENT;
}
