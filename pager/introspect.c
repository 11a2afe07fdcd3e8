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
    mp_entry ent;
    mp__entry_decode(mp__entry_at_c(dirpage, e), &ent);
    if (!ent.in_use) continue;
    for (int k = 0; k < 2; k++)
      if (ent.page[k] >= MP_RESERVED_PAGES && ent.page[k] < pages && kinds[ent.page[k]] != MP_PAGE_DIRECTORY)
        kinds[ent.page[k]] = MP_PAGE_PROTECTED;
  }
}

int mp_image_page_kinds(const void *image, size_t len, uint8_t *kinds, uint64_t npages) {
  if (!image || (!kinds && npages)) return MP_EINVAL;
  const uint8_t *img = image;
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
