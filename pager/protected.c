/* protected.c: protected pages: copy-on-write pages backed by two physical pages,
 * described by directory entries. Allocation and free take several commits; their
 * order (see commit.c) lets recovery undo or finish any interrupted one, so a power
 * cut leaks no page. */
#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "internal.h"

static int find_entry(const mp_pager *p, uint64_t id, uint32_t *b, uint32_t *e, mp_entry *ent) {
  if (id / p->dir_cap >= p->dir_count) return MP_ENOTALLOC;
  *b = (uint32_t)(id / p->dir_cap);
  *e = (uint32_t)(id % p->dir_cap);
  const mp_block *blk = &p->blocks[*b];
  mp__entry_decode(mp__entry_at_c(mp__pg(p, blk->page[blk->active]), *e), ent);
  return ent->in_use ? MP_OK : MP_ENOTALLOC;
}

/* The start of every call that changes a protected page: the handle may write, the
 * work an earlier call left is done, and the id names an allocated protected page. */
static int writable_entry(mp_pager *p, uint64_t id, uint32_t *b, uint32_t *e, mp_entry *ent) {
  if (!p) return MP_EINVAL;
  int rc = mp__writable(p);
  return rc != MP_OK ? rc : find_entry(p, id, b, e, ent);
}

static uint32_t page_crc(const mp_pager *p, uint64_t id) { return mp__crc32(0, mp__pg(p, id), p->ps); }

/* msync a list of pages, merging runs of consecutive ids into one call. */
static int sync_pages(mp_pager *p, const uint64_t *ids, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && ids[j] == ids[j - 1] + 1) j++;
    int rc = mp__sys_msync(p, ids[i], j - i);
    if (rc != MP_OK) return rc;
    i = j;
  }
  return MP_OK;
}

static bool find_free_entry(const mp_pager *p, uint32_t *b, uint32_t *e) {
  for (uint32_t i = 0; i < p->dir_count; i++) {
    const mp_block *blk = &p->blocks[i];
    if (blk->used >= p->dir_cap) continue;
    const uint8_t *cur = mp__pg(p, blk->page[blk->active]);
    for (uint32_t j = 0; j < p->dir_cap; j++) {
      if (mp__entry_at_c(cur, j)[MP_ENTRY_IN_USE] == 0) {
        *b = i;
        *e = j;
        return true;
      }
    }
  }
  return false;
}

/* After the metadata commit of an allocation, a failure leaves pages allocated
 * that nothing owns: they are reclaimed by the pending work of the next call. */
static void leave_for_reclaim(mp_pager *p, const uint64_t *ids, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (mp__bit(p->owned, ids[i]) || mp__bit(p->reclaim, ids[i])) continue;
    mp__set(p->reclaim, ids[i]);
    p->reclaim_count++;
  }
}

static void new_entry(const mp_pager *p, uint64_t page_a, uint64_t page_b, uint8_t raw[MP_ENTRY_SIZE]) {
  mp_entry ent = {.in_use = true, .page = {page_a, page_b}, .slot = 0, .generation = 0, .crc = page_crc(p, page_a)};
  mp__entry_encode(&ent, raw);
}

/* Adds a directory block for the new entry: both copies are written while their
 * pages are still free, the reference goes into page 0 as an intent, then one
 * metadata commit allocates all four pages, then the reference is counted and the
 * copy holding the entry becomes current. */
static int alloc_in_new_block(mp_pager *p, uint64_t *id) {
  if (p->dir_count >= p->max_refs) return MP_EFULL;
  uint64_t ids[4], total;
  /* Everything that can fail for want of memory is done before the first write. */
  uint64_t *staged = mp__calloc((p->dir_cap + 63) / 64, 8);
  if (!staged) return MP_ENOMEM;
  int rc = mp__blocks_reserve(p, p->dir_count + 1);
  if (rc == MP_OK) rc = mp__find_free(p, 4, ids, &total);
  if (rc != MP_OK) {
    free(staged);
    return rc;
  }
  uint64_t da = ids[0], db = ids[1], pa = ids[2], pb = ids[3];
  if ((rc = mp__sys_back(p, ids, 4)) != MP_OK) {
    free(staged);
    return rc;
  }
  memset(mp__pg(p, pa), 0, p->ps);
  mp__dir_init(mp__pg(p, da), p->ps);
  mp__dir_init(mp__pg(p, db), p->ps);
  uint8_t raw[MP_ENTRY_SIZE];
  new_entry(p, pa, pb, raw);
  memcpy(mp__entry_at(mp__pg(p, db), 0), raw, MP_ENTRY_SIZE);
  mp__page_seal(mp__pg(p, db), p->ps);
  if ((rc = sync_pages(p, ids, 3)) != MP_OK || (rc = mp__dir_append_intent(p, da, db)) != MP_OK) {
    free(staged);
    return rc;
  }

  mp_meta_txn txn;
  mp__meta_begin(p, total, &txn);
  for (int i = 0; i < 4; i++) mp__meta_set(p, &txn, ids[i], true);
  if ((rc = mp__meta_commit(p, &txn)) != MP_OK) {
    p->intent_pending = true;
    free(staged);
    return rc;
  }
  if ((rc = mp__dir_append_commit(p)) != MP_OK) {
    leave_for_reclaim(p, ids, 4);
    p->intent_pending = true;
    free(staged);
    return rc;
  }
  /* From here on the block exists. If the entry cannot be made current, the empty
   * block stays, as internal capacity (like a grown file), and only the entry's
   * pages are reclaimed: the allocation state is the one before the call. */
  uint32_t b = p->dir_count - 1;
  mp_block *blk = &p->blocks[b];
  blk->staged = staged;
  mp__set(p->owned, da);
  mp__set(p->owned, db);
  if ((rc = mp__dir_flip(p, b)) != MP_OK) {
    leave_for_reclaim(p, ids + 2, 2);
    blk->needs_mirror = true;
    return rc;
  }
  mp__set(p->owned, pa);
  mp__set(p->owned, pb);
  blk->used = 1;
  *id = (uint64_t)b * p->dir_cap;
  mp__dir_mirror(p, b); /* committed already; a failure is retried by the next call */
  return MP_OK;
}

static int protected_alloc(mp_pager *p, uint64_t *id) {
  if (!p || !id) return MP_EINVAL;
  int rc = mp__writable(p);
  if (rc != MP_OK) return rc;
  if (p->fmt3) return mp3__protected_alloc(p, id);
  uint32_t b, e;
  if (!find_free_entry(p, &b, &e)) return alloc_in_new_block(p, id);

  /* The entry is staged in the inactive copy before the pages are allocated, so
   * that a cut after the allocation leaves a record of whom they were for. */
  uint64_t ids[2], total;
  if ((rc = mp__find_free(p, 2, ids, &total)) != MP_OK || (rc = mp__sys_back(p, ids, 2)) != MP_OK) return rc;
  memset(mp__pg(p, ids[0]), 0, p->ps);
  uint8_t raw[MP_ENTRY_SIZE];
  new_entry(p, ids[0], ids[1], raw);
  /* The zeroed copy becomes durable with the staged entry, in one msync (mp__dir_stage):
   * nothing reads the copy before the selector flips, after the metadata commit, and a cut
   * before that leaves at most a record of pages recovery may reclaim (recover.c), whatever
   * of the copy landed. */
  if ((rc = mp__dir_stage(p, b, e, raw, ids[0])) != MP_OK) return rc;
  mp_block *blk = &p->blocks[b];
  mp_meta_txn txn;
  mp__meta_begin(p, total, &txn);
  mp__meta_set(p, &txn, ids[0], true);
  mp__meta_set(p, &txn, ids[1], true);
  if ((rc = mp__meta_commit(p, &txn)) != MP_OK) {
    blk->needs_mirror = true;
    return rc;
  }
  if ((rc = mp__dir_flip(p, b)) != MP_OK) {
    leave_for_reclaim(p, ids, 2);
    blk->needs_mirror = true;
    return rc;
  }
  mp__set(p->owned, ids[0]);
  mp__set(p->owned, ids[1]);
  blk->used++;
  *id = (uint64_t)b * p->dir_cap + e;
  mp__dir_mirror(p, b);
  return MP_OK;
}

int mp_protected_alloc(mp_pager *p, uint64_t *id) {
  int rc = protected_alloc(p, id);
  /* A 0.2 file out of pages (not of directory references: a 0.3 root holds fewer) whose writer
   * asked for it becomes 0.3 (upgrade3.c); nothing was written before MP_EFULL. */
  if (rc == MP_EFULL && !p->fmt3 && p->upgrade && p->dir_count < p->max_refs && (rc = mp3__upgrade(p)) == MP_OK)
    rc = mp3__protected_alloc(p, id);
  return rc;
}

int mp_protected_free(mp_pager *p, uint64_t id) {
  uint32_t b, e;
  mp_entry ent;
  int rc = writable_entry(p, id, &b, &e, &ent);
  if (rc != MP_OK) return rc;
  if (p->fmt3) return mp3__protected_free(p, b, e, &ent);
  static const uint8_t cleared[MP_ENTRY_SIZE];
  if ((rc = mp__dir_stage(p, b, e, cleared, MP_NO_PAGE)) != MP_OK) return rc;
  mp_block *blk = &p->blocks[b];
  if ((rc = mp__dir_flip(p, b)) != MP_OK) {
    blk->needs_mirror = true;
    return rc;
  }
  /* The entry is gone durably. Its pages are freed before the inactive copy, the
   * record of them, is mirrored away. */
  mp__clear(blk->staged, e);
  blk->used--;
  mp__clear(p->owned, ent.page[0]);
  mp__clear(p->owned, ent.page[1]);
  leave_for_reclaim(p, ent.page, 2);
  blk->needs_mirror = true;
  mp__settle(p); /* a failure here is retried by the next call; the free stands */
  return MP_OK;
}

int mp_protected_read(mp_pager *p, uint64_t id, const void **data) {
  if (!p || !data) return MP_EINVAL;
  uint32_t b, e;
  mp_entry ent;
  int rc = find_entry(p, id, &b, &e, &ent);
  if (rc != MP_OK) return rc;
  uint64_t page = ent.page[ent.slot];
  if (page_crc(p, page) != ent.crc) return MP_ECORRUPT;
  *data = mp__pg(p, page);
  return MP_OK;
}

int mp_protected_where(const mp_pager *p, uint64_t id, uint64_t *page, uint32_t *crc) {
  if (!p || !page || !crc) return MP_EINVAL;
  uint32_t b, e;
  mp_entry ent;
  int rc = find_entry(p, id, &b, &e, &ent);
  if (rc != MP_OK) return rc;
  *page = ent.page[ent.slot];
  *crc = ent.crc;
  return MP_OK;
}

int mp_protected_begin(mp_pager *p, uint64_t id, void **data) {
  if (!data) return MP_EINVAL;
  uint32_t b, e;
  mp_entry ent;
  int rc = writable_entry(p, id, &b, &e, &ent);
  if (rc != MP_OK) return rc;
  mp_block *blk = &p->blocks[b];
  if (mp__bit(blk->staged, e)) return MP_EBUSY;
  uint8_t *staging = mp__pg(p, ent.page[!ent.slot]);
  memcpy(staging, mp__pg(p, ent.page[ent.slot]), p->ps);
  mp__set(blk->staged, e);
  *data = staging;
  return MP_OK;
}

int mp_protected_commit(mp_pager *p, uint64_t id) {
  uint32_t b, e;
  mp_entry ent;
  int rc = writable_entry(p, id, &b, &e, &ent);
  if (rc != MP_OK) return rc;
  mp_block *blk = &p->blocks[b];
  if (!mp__bit(blk->staged, e)) return MP_ENOTSTAGED;
  if (p->fmt3) return mp3__protected_commit(p, b, e, &ent);
  /* Two barriers (commit.c): the copy and the next directory page together, then
   * the selector. */
  uint64_t next = ent.page[!ent.slot];
  ent.crc = page_crc(p, next);
  ent.slot = !ent.slot;
  ent.generation++;
  uint8_t raw[MP_ENTRY_SIZE];
  mp__entry_encode(&ent, raw);
  if ((rc = mp__dir_stage(p, b, e, raw, next)) != MP_OK) return rc;
  if ((rc = mp__dir_flip(p, b)) != MP_OK) return rc;
  mp__clear(blk->staged, e);
  return MP_OK;
}

int mp_protected_abort(mp_pager *p, uint64_t id) {
  if (!p) return MP_EINVAL;
  if (p->rdonly) return MP_ERDONLY;
  uint32_t b, e;
  mp_entry ent;
  int rc = find_entry(p, id, &b, &e, &ent);
  if (rc != MP_OK) return rc;
  if (!mp__bit(p->blocks[b].staged, e)) return MP_ENOTSTAGED;
  mp__clear(p->blocks[b].staged, e);
  return MP_OK;
}

int mp_next_protected(const mp_pager *p, uint64_t from, uint64_t *id) {
  if (!p || !id) return MP_EINVAL;
  for (uint64_t b = from / p->dir_cap; b < p->dir_count; b++) {
    const mp_block *blk = &p->blocks[b];
    if (!blk->used) continue;
    const uint8_t *cur = mp__pg(p, blk->page[blk->active]);
    uint32_t e = b == from / p->dir_cap ? (uint32_t)(from % p->dir_cap) : 0;
    for (; e < p->dir_cap; e++) {
      if (mp__entry_at_c(cur, e)[MP_ENTRY_IN_USE]) {
        *id = b * p->dir_cap + e;
        return MP_OK;
      }
    }
  }
  return MP_ENOENT;
}
