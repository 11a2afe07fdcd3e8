/* introspect.c: what each page of a file held in memory is (superblock, metadata copy,
 * directory page, protected page's copy, regular page, free), read without opening it. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* For tools that classify writes to a file they watch (a crash checker's coverage): the
 * image is whatever bytes they hold, torn or foreign, so every field is bounds-checked and
 * nothing here trusts a checksum it has not verified. Both directory copies' entries count:
 * an operation in flight stages its entry in the inactive copy before the selector flips. */
static void mark_entries(const uint8_t *dirpage, size_t ps, uint64_t pages, uint8_t *kinds) {
  uint32_t cap = mp__dir_cap(ps);
  for (uint32_t e = 0; e < cap; e++) {
    if (!mp__entry_used(dirpage, e)) continue;
    mp_entry ent;
    mp__entry_decode(mp__entry_at_c(dirpage, e), &ent);
    for (int k = 0; k < 2; k++)
      if (ent.page[k] >= MP_RESERVED_PAGES && ent.page[k] < pages && kinds[ent.page[k]] != MP_PAGE_DIRECTORY)
        kinds[ent.page[k]] = MP_PAGE_PROTECTED;
  }
}

/* A 0.3 image: block 0 the superblock's, the roots' and every leaf slot's blocks metadata, pages
 * by the current leaf of their group under the valid root with the higher generation, the
 * directory blocks that root's references name, and the protected blocks their current copies'
 * entries name. */
static int kinds3(const uint8_t *img, size_t len, uint8_t *kinds, uint64_t npages) {
  mp3_sb sb;
  char why[200];
  int rc = mp3__sb_decode(img, len, &sb, why, sizeof why);
  if (rc != MP_OK) return rc;
  const size_t ps = (size_t)1 << sb.log2;
  const uint64_t m = mp3__m(ps), c = mp3__group_pages(ps);
  uint64_t pages = len / ps;
  if (pages < m) return MP_ECORRUPT;
  if (npages > pages) memset(kinds + pages, MP_PAGE_UNKNOWN, npages - pages);
  if (pages > npages) pages = npages;
  memset(kinds, MP_PAGE_UNKNOWN, pages);
  /* (a named block past the image stays unknown) */
#define MARK(first, kind)                                                  \
  for (uint64_t id_ = (first); id_ < (first) + m && id_ < pages; id_++) kinds[id_] = (kind)
  MARK(0, MP_PAGE_SUPERBLOCK);
  if (sb.flags & MP3_SB_PAGE3 && pages > 3) kinds[3] = MP_PAGE_UNKNOWN; /* a regular page (3.8): by the leaf */
  if (sb.copy) MARK(sb.copy, MP_PAGE_METADATA);
  const uint8_t *root = NULL;
  mp3_root r = {0}, r1;
  for (unsigned i = 0; i < 2; i++) {
    MARK(sb.root[i], MP_PAGE_METADATA);
    MARK(sb.leaf0[i], MP_PAGE_METADATA);
    if (sb.root[i] > len / ps - m) continue;
    const uint8_t *blk = img + sb.root[i] * ps;
    if (mp3__root_decode(blk, sb.log2, i, &r1, why, sizeof why) == MP_OK && (!root || r1.generation > r.generation))
      root = blk, r = r1;
  }
  if (!root) return MP_OK;
  const uint64_t total = r.total < len / ps ? r.total : len / ps, groups = (total + c - 1) / c;
  for (uint64_t k = 0; k < groups; k++) {
    uint64_t slot_page[2] = {k ? k * c : sb.leaf0[0], k ? k * c + m : sb.leaf0[1]};
    if (k) {
      MARK(slot_page[0], MP_PAGE_METADATA);
      MARK(slot_page[1], MP_PAGE_METADATA);
    }
    if (slot_page[0] > len / ps - m || slot_page[1] > len / ps - m) continue;
    const uint8_t *slot[2] = {img + slot_page[0] * ps, img + slot_page[1] * ps};
    unsigned cur, stale;
    if (mp3__leaf_current(slot, ps, (uint32_t)k, r.generation, &cur, &stale, why, sizeof why) != MP_OK) continue;
    const uint8_t *bm = slot[cur] + MP3_LEAF_BITMAP;
    for (uint64_t id = k * c; id < (k + 1) * c && id < pages; id++) {
      if (kinds[id] != MP_PAGE_UNKNOWN) continue;
      uint64_t i = id - k * c;
      kinds[id] = id < total && (bm[i / 8] >> (i % 8) & 1) ? MP_PAGE_REGULAR : MP_PAGE_FREE;
    }
  }
  for (uint32_t b = 0; b < r.dir_count; b++)
    for (int k = 0; k < 2; k++) {
      uint64_t page = mp__get64(mp3__root_ref(root, b) + 8 * (size_t)k);
      MARK(page, MP_PAGE_DIRECTORY);
    }
  /* Protected pages from the current copies alone: a 0.3 block's inactive copy is whatever the
   * operation before the last one left (FORMAT.md 3.6), and may name pages freed since, which
   * are regular or free now. (An operation in flight stages its entry there, and its pages are
   * still free in the current leaves: free is what they are until its root lands.) */
  for (uint32_t b = 0; b < r.dir_count; b++)
    for (int k = 0; k < 2; k++) {
      uint64_t page = mp__get64(mp3__root_ref(root, b) + 8 * (size_t)k);
      if (k != mp3__root_ref(root, b)[16]) continue;
      if (page >= pages || !mp__dir_valid(img + ps * page, ps)) continue;
      uint32_t cap = mp__dir_cap(ps);
      for (uint32_t e = 0; e < cap; e++) {
        if (!mp__entry_used(img + ps * page, e)) continue;
        mp_entry ent;
        mp__entry_decode(mp__entry_at_c(img + ps * page, e), &ent);
        for (int j = 0; j < 2; j++)
          if (ent.page[j] < pages && kinds[ent.page[j]] != MP_PAGE_DIRECTORY) MARK(ent.page[j], MP_PAGE_PROTECTED);
      }
    }
#undef MARK
  return MP_OK;
}

int mp_image_page_kinds(const void *image, size_t len, uint8_t *kinds, uint64_t npages) {
  if (!image || (!kinds && npages)) return MP_EINVAL;
  const uint8_t *img = image;
  if (mp3__is_v3(img, len)) return kinds3(img, len, kinds, npages);
  unsigned log2;
  const char *why;
  int rc = mp__sb_check(img, len, &log2, &why);
  if (rc != MP_OK) return rc;
  size_t ps = (size_t)1 << log2;
  uint64_t pages = len / ps;
  if (pages < MP_RESERVED_PAGES) return MP_ECORRUPT;
  if (npages > pages) memset(kinds + pages, MP_PAGE_UNKNOWN, npages - pages);
  if (pages > npages) pages = npages;
  kinds[0] = MP_PAGE_SUPERBLOCK;
  kinds[1] = kinds[2] = MP_PAGE_METADATA;
  /* The selected metadata copy if it is whole, else the other one (a torn commit). */
  const uint8_t *meta = img + ps * (1 + img[MP_SB_ACTIVE_META]);
  if (!mp__page_crc_ok(meta, ps)) meta = img + ps * (2 - img[MP_SB_ACTIVE_META]);
  uint64_t total = mp__page_crc_ok(meta, ps) ? mp__get64(meta + MP_META_TOTAL) : 0;
  if (total > mp__capacity(ps)) total = 0;
  for (uint64_t id = MP_RESERVED_PAGES; id < pages; id++)
    kinds[id] = !total ? MP_PAGE_UNKNOWN
                : id >= total ? MP_PAGE_FREE
                : (meta[MP_META_BITMAP + id / 8] >> (id % 8) & 1) ? MP_PAGE_REGULAR : MP_PAGE_FREE;
  /* The directory references as open reads them: a torn page 0 (a recovery not yet done)
   * resolved the way open resolves it, an interrupted append's intent included. */
  uint8_t *p0 = mp__malloc(ps);
  mp_p0_fix fix = {.intent = false};
  if (!p0) return MP_ENOMEM;
  if (mp__p0_resolve(img, ps, p0, &fix, &why) != MP_OK) memcpy(p0, img, ps);
  uint32_t refs = mp__get32(p0 + MP_SB_DIR_COUNT);
  if (refs > mp__max_refs(ps)) refs = mp__max_refs(ps);
  for (uint32_t r = 0; r < refs; r++)
    for (int k = 0; k < 2; k++) {
      uint64_t page = mp__get64(p0 + MP_SB_REFS + (size_t)MP_REF_SIZE * r + 8 * (size_t)k);
      if (page >= MP_RESERVED_PAGES && page < pages) kinds[page] = MP_PAGE_DIRECTORY;
    }
  for (int k = 0; fix.intent && k < 2; k++)
    if (fix.intent_pages[k] >= MP_RESERVED_PAGES && fix.intent_pages[k] < pages)
      kinds[fix.intent_pages[k]] = MP_PAGE_DIRECTORY;
  free(p0);
  for (uint64_t id = MP_RESERVED_PAGES; id < pages; id++)
    if (kinds[id] == MP_PAGE_DIRECTORY && mp__dir_valid(img + ps * id, ps)) mark_entries(img + ps * id, ps, pages, kinds);
  return MP_OK;
}

/* The create writes its superblock last (open.c's format, open3.c's mp3__format), so while it
 * is in flight the file has no superblock to read the kinds from: they are the layout the
 * create writes, which is fixed. */
int mp_create_page_kinds(size_t page_size, unsigned flags, uint8_t *kinds, uint64_t npages) {
  if (page_size < MP_MIN_PAGE_SIZE || page_size > MP_MAX_PAGE_SIZE || (page_size & (page_size - 1)) ||
      (flags & ~(MP_FORMAT_3 | MP_SPARSE)) || (!kinds && npages))
    return MP_EINVAL;
  const bool v3 = flags & MP_FORMAT_3;
  const uint64_t m = v3 ? mp3__m(page_size) : 1;
  const uint64_t meta_end = (v3 ? 5 : 3) * m, pages = v3 ? MP3_NEW_BLOCKS * m : 4; /* what the create makes */
  for (uint64_t id = 0; id < npages; id++) {
    if (id >= pages) kinds[id] = MP_PAGE_UNKNOWN;
    else if (id < m) kinds[id] = MP_PAGE_SUPERBLOCK;
    else kinds[id] = id < meta_end ? MP_PAGE_METADATA : MP_PAGE_FREE;
  }
  return MP_OK;
}
