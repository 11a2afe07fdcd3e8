/* recover.c: what opening a file does after a power cut: find the pages an
 * interrupted protected alloc or free left allocated, and let a writer repair page 0,
 * the metadata selector and the directory copies, one durable change at a time. */
#include <string.h>

#include "crc32.h"
#include "internal.h"

/* A page is reclaimable if an interrupted operation's record names it, the bitmap
 * has it allocated, and no live structure owns it. Files written by this library
 * never keep such a record past the operation (see commit.c), so the page cannot
 * belong to anyone else. */
static void consider(mp_pager *p, uint64_t id) {
  if (id < MP_RESERVED_PAGES || id >= p->total) return;
  if (!mp__allocated(p, id) || mp__bit(p->owned, id) || mp__bit(p->reclaim, id)) return;
  mp__set(p->reclaim, id);
  p->reclaim_count++;
}

static void consider_entries(mp_pager *p, const uint8_t *dirpage) {
  for (uint32_t e = 0; e < p->dir_cap; e++) {
    if (!mp__entry_used(dirpage, e)) continue;
    mp_entry ent;
    mp__entry_decode(mp__entry_at_c(dirpage, e), &ent);
    consider(p, ent.page[0]);
    consider(p, ent.page[1]);
  }
}

/* Do two copies of a directory page disagree on which entries are in use, or on
 * the pages those entries own? (Commit fields may differ: a committed write only
 * updates the current copy.) */
static bool allocation_differs(const mp_pager *p, const uint8_t *a, const uint8_t *b) {
  for (uint32_t e = 0; e < p->dir_cap; e++) {
    mp_entry x, y;
    mp__entry_decode(mp__entry_at_c(a, e), &x);
    mp__entry_decode(mp__entry_at_c(b, e), &y);
    if (x.in_use != y.in_use) return true;
    if (x.in_use && (x.page[0] != y.page[0] || x.page[1] != y.page[1])) return true;
  }
  return false;
}

/* Bytes past dir_count are only an interrupted append if they name exactly what an
 * append writes before them (protected.c, alloc_in_new_block): two distinct
 * directory pages, the first an empty one, the second an empty one but for entry 0,
 * a new protected page (generation 0, slot 0) whose first copy is a zeroed page and
 * whose checksum is that page's; every other byte of them zero. Anything else must
 * never lead recovery to free a page: a stray byte in the padding, or another
 * writer's reference to pages that merely look like directory pages (valid
 * checksums, the right counts of entries in use), which may be regular pages that
 * hold a directory page's bytes (a copy of another file's, say). The four pages are
 * then the append's own; recovery still frees only those allocated and unowned. */
static bool intent_is_append(const mp_pager *p, const uint64_t pages[2], uint64_t named[4]) {
  const size_t ps = p->ps, used = MP_DIR_ENTRIES + MP_ENTRY_SIZE;
  if (pages[0] == pages[1]) return false;
  for (int k = 0; k < 2; k++) {
    if (pages[k] < MP_RESERVED_PAGES || pages[k] >= p->total) return false;
    const uint8_t *d = mp__pg(p, pages[k]);
    if (!mp__dir_valid(d, ps) || !mp__all_zero(d + 4, MP_DIR_ENTRIES - 4) || !mp__all_zero(d + used, ps - 4 - used)) return false;
  }
  mp_entry ent;
  mp__entry_decode(mp__entry_at_c(mp__pg(p, pages[1]), 0), &ent);
  if (!mp__all_zero(mp__entry_at_c(mp__pg(p, pages[0]), 0), MP_ENTRY_SIZE) ||
      mp__entry_at_c(mp__pg(p, pages[1]), 0)[MP_ENTRY_IN_USE] != 1 || ent.slot != 0 || ent.generation != 0)
    return false;
  named[0] = pages[0], named[1] = pages[1], named[2] = ent.page[0], named[3] = ent.page[1];
  for (int i = 2; i < 4; i++) {
    if (named[i] < MP_RESERVED_PAGES || named[i] >= p->total) return false;
    for (int j = 0; j < i; j++)
      if (named[i] == named[j]) return false;
  }
  const uint8_t *first = mp__pg(p, ent.page[0]);
  return mp__all_zero(first, ps) && mp__crc32(0, first, ps) == ent.crc;
}

static void find_interrupted(mp_pager *p, const mp_p0_fix *fix) {
  for (uint32_t b = 0; b < p->dir_count; b++) {
    mp_block *blk = &p->blocks[b];
    const uint8_t *cur = mp__pg(p, blk->page[blk->active]), *other = mp__pg(p, blk->page[!blk->active]);
    if (!mp__dir_valid(other, p->ps)) {
      blk->needs_mirror = true;
    } else if (allocation_differs(p, cur, other)) {
      blk->needs_mirror = true;
      consider_entries(p, other);
    }
  }
  uint64_t named[4];
  if (!fix->intent || !intent_is_append(p, fix->intent_pages, named)) return;
  /* A block append that did not finish: its two directory pages, and the protected
   * page it was being added for. */
  for (int k = 0; k < 4; k++) consider(p, named[k]);
}

/* Adopting a file another writer made: its inactive directory copies may lag by any
 * number of changes, so they are made equal before the file is marked as ours. */
static int adopt(mp_pager *p) {
  for (uint32_t b = 0; b < p->dir_count; b++) {
    mp_block *blk = &p->blocks[b];
    if (memcmp(mp__pg(p, blk->page[0]), mp__pg(p, blk->page[1]), p->ps) == 0) continue;
    int rc = mp__dir_mirror(p, b);
    if (rc != MP_OK) return rc;
  }
  p->map[MP_SB_VERSION + 3] = MP_BUILD_MIRRORED;
  int rc = mp__sys_msync(p, 0, 1);
  if (rc == MP_OK) p->ours = true;
  return rc;
}

static unsigned pending(const mp_pager *p, const uint8_t *p0, const mp_p0_fix *fix, bool meta_fell_back,
                        const uint8_t *salvaged) {
  unsigned what = salvaged ? MP_RECOVER_SALVAGE : 0;
  const uint8_t *disk = salvaged ? salvaged : p->map;
  if (memcmp(disk + MP_SB_DIR_COUNT, p0 + MP_SB_DIR_COUNT, p->ps - MP_SB_DIR_COUNT) != 0)
    what |= fix->how == MP_P0_RESEAL ? MP_RECOVER_CHECKSUM : MP_RECOVER_PAGE0;
  if (meta_fell_back) what |= MP_RECOVER_METADATA;
  if (p->reclaim_count) what |= MP_RECOVER_RECLAIM;
  for (uint32_t b = 0; b < p->dir_count; b++)
    if (p->blocks[b].needs_mirror) what |= MP_RECOVER_MIRROR;
  if (!p->ours) what |= MP_RECOVER_ADOPT;
  return what;
}

unsigned mp_recovery(const mp_pager *p) { return p ? p->recovery : 0; }

int mp__recover(mp_pager *p, const uint8_t *p0, const mp_p0_fix *fix, bool meta_fell_back, const uint8_t *salvaged) {
  if (p->ours) find_interrupted(p, fix);
  p->recovery = pending(p, p0, fix, meta_fell_back, salvaged);
  p->previewed_reclaim = p->reclaim_count; /* what mp_leaked_count tells of a preview */
  if ((p->rdonly && !p->preview) || !p->recovery) return MP_OK; /* nothing pending writes nothing */

  int rc;
  if (p->preview) p->preview_wrote = true; /* its private mapping takes the writes */
  if (salvaged) {
    /* First, and whole: every later repair writes page 0 in place, and would write the
     * garbage with it. The rebuilt page is one the torn write left before or after it
     * (salvage.c), so a cut here leaves either that or the garbage, salvaged again. */
    memcpy(p->map, salvaged, p->ps);
    if ((rc = mp__sys_msync(p, 0, 1)) != MP_OK) return rc;
  }
  if (meta_fell_back) {
    p->map[MP_SB_ACTIVE_META] = (uint8_t)p->active_meta;
    if ((rc = mp__sys_msync(p, 0, 1)) != MP_OK) return rc;
  }
  /* Reclaim before the directory section is repaired: the section may hold the
   * only record of the pages to reclaim. */
  if ((rc = mp__settle(p)) != MP_OK) return rc;
  /* One write, one change: the accepted candidate differs from what is on disk in
   * the bytes a torn write left (or, for MP_P0_RESEAL, in the checksum alone). */
  size_t from = MP_SB_DIR_COUNT;
  if (memcmp(p->map + from, p0 + from, p->ps - from) != 0) {
    memcpy(p->map + from, p0 + from, p->ps - from);
    if ((rc = mp__sys_msync(p, 0, 1)) != MP_OK) return rc;
  }
  if (!p->ours && (rc = adopt(p)) != MP_OK) return rc;
  return MP_OK;
}
