/* commit.c: every durable change the pager makes, in the order that keeps each
 * crash state recoverable: metadata commits, directory changes, growth, and the
 * work a failed call leaves pending.
 *
 * The protocol, and why each step is where it is:
 *
 * - Metadata commit: the next state is written whole into the INACTIVE metadata
 *   page and msynced; then byte 12 of page 0 (the selector) flips and page 0 is
 *   msynced. The superblock's meta_checksum is the CRC of a whole valid page, a
 *   constant, so the flip changes a single byte in a single sector: a power cut
 *   leaves either selector value, and both name a complete, durable state.
 *
 * - Directory change: the next version of a directory page is written into the
 *   block's inactive copy and msynced; then the block's selector byte in page 0
 *   flips together with the section CRC at the end of page 0. Those are two
 *   sectors; if a cut tears them apart, recovery (layout.c) finds the one-byte
 *   toggle that makes the CRC match.
 *
 * - Protected write: the caller has written the entry's inactive copy; the next
 *   directory page (the entry with the other slot, the generation + 1 and the CRC of
 *   that copy) is written, then ONE msync makes the copy and the directory page
 *   durable together, then the block's selector flips as above. Nothing orders the
 *   copy before the directory page, and nothing needs to: until the flip, page 0
 *   names the block's current copy, which points at the old slot, and neither the
 *   old slot nor the current copy is written, so a cut anywhere in that msync, with
 *   any subset of either page on disk, reads the old content; recovery never reads
 *   an entry's content through an inactive copy, only which entries are in use and
 *   their pages, which a write leaves alone (recover.c). After the msync both pages
 *   are durable, so the flip, the only commit point, names a complete version.
 *   That msync spans every page between the two: Linux ends each msync(MS_SYNC)
 *   with a flush of the device's cache, and two of them would cost two flushes
 *   (sync_file_range on each page and one msync would write fewer pages, but
 *   nothing documents that it makes the first one durable). Pages between them
 *   that the caller left dirty (a regular page not yet synced, another entry's
 *   staged copy) reach the disk early; the kernel's writeback could have written
 *   them at any moment, so no crash state is new, and clean ones cost next to
 *   nothing (mp-bench: a copy 1,000 pages away). Two barriers; the reference
 *   takes three.
 *
 * - Appending a block reference takes two page-0 writes, each one change: first
 *   the reference bytes go into the padding past dir_count with the CRC left
 *   alone (an intent: a CRC mismatch that zeroing the padding explains), then
 *   dir_count + 1 with the new CRC (a mismatch that dir_count +/- 1 explains).
 *   Both are told apart only through the CRC as it was before the append, so it
 *   must be the right one, at dir_count 0 too, where FORMAT.md leaves it
 *   unchecked: a stale CRC there (another writer's, or an interrupted create's)
 *   would make a torn dir_count + 1 unexplainable and an interrupted intent
 *   invisible. Hence create writes the CRC before the superblock, and a writer's
 *   open rewrites a stale one before any call can append. Resolution (layout.h)
 *   accepts a mismatch at dir_count 0 only over an all-zero section, whose right
 *   CRC is known exactly; it refuses reference bytes no CRC vouches for rather
 *   than free pages on their shape or leave an append's pages as regular pages.
 *   An intent's pages are reclaimed only when they hold byte for byte what the
 *   append wrote before the intent (recover.c): a reference past dir_count that
 *   another writer left may name regular pages that merely look like directories.
 *
 * - Mirror: after an allocation or free of a protected page, the block's inactive
 *   copy is made equal to its current copy. Between operations the two copies then
 *   agree on which entries are in use, so any in-use entry found only in an
 *   inactive copy at open time is an interrupted operation, whose pages recovery
 *   can reclaim without ever touching a page that something else owns.
 *
 * - A failed msync at a commit point (the page-0 write) leaves the disk holding
 *   the old or the new version. The change is reverted in memory and page 0 is
 *   synced again so that the disk holds the old one; if that fails too, the handle
 *   is poisoned: the durable state is uncertain, and only a reopen can tell.
 *
 * - Any other failed msync leaves the handle usable and the call retryable, which
 *   the fsync-gate would make a lie: the kernel marks the pages a failed writeback
 *   was writing clean, so a retried protected commit would rewrite (and sync) only
 *   its directory page, then flip the selector onto a staged copy that never reached
 *   the disk. Poisoning the handle instead would turn every failed data or stage
 *   msync into a reopen, although nothing durable is uncertain then (the selector
 *   still names the old version). So sys.c dirties the range of a failed msync again
 *   before reporting the failure, and whatever msync comes next writes it.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- shared preconditions ---------------------------------------------- */

int mp__words_reserve(mp_pager *p, uint64_t pages) {
  size_t need = (size_t)((pages + 63) / 64);
  if (need <= p->words) return MP_OK;
  uint64_t *o = mp__realloc(p->owned, need * 8);
  if (!o) return MP_ENOMEM;
  p->owned = o;
  uint64_t *r = mp__realloc(p->reclaim, need * 8);
  if (!r) return MP_ENOMEM;
  p->reclaim = r;
  memset(p->owned + p->words, 0, (need - p->words) * 8);
  memset(p->reclaim + p->words, 0, (need - p->words) * 8);
  p->words = need;
  return MP_OK;
}

int mp__ensure_pages(mp_pager *p, uint64_t pages) {
  int rc = mp__words_reserve(p, pages);
  if (rc == MP_OK) rc = mp__sys_extend(p, pages * p->ps);
  if (rc == MP_OK) rc = mp__sys_remap(p, pages);
  return rc;
}

int mp__writable(mp_pager *p) {
  if (p->rdonly) return MP_ERDONLY;
  if (p->poisoned) return MP_EPOISONED;
  return mp__settle(p);
}

bool mp__allocated(const mp_pager *p, uint64_t id) {
  if (p->fmt3) return mp3__allocated(p, id);
  const uint8_t *bm = mp__active_meta(p) + MP_META_BITMAP;
  return id < p->total && (bm[id >> 3] >> (id & 7) & 1);
}

/* ---- page 0 writes ------------------------------------------------------ */

/* Syncs page 0 after a change; on failure restores `old` (len bytes at `at`, and
 * the section CRC if `crc_too`) and syncs again, poisoning the handle if even
 * that fails. */
static int p0_sync_or_revert(mp_pager *p, size_t at, const uint8_t *old, size_t len, const uint8_t old_crc[4]) {
  int rc = mp__sys_msync(p, 0, 1);
  if (rc == MP_OK) return MP_OK;
  memcpy(p->map + at, old, len);
  if (old_crc) memcpy(p->map + p->ps - 4, old_crc, 4);
  if (mp__sys_msync(p, 0, 1) != MP_OK) p->poisoned = true;
  return rc;
}

static void p0_reseal(mp_pager *p) { mp__put32(p->map + p->ps - 4, mp__section_crc(p->map, p->ps)); }

/* ---- metadata ------------------------------------------------------------ */

/* Patching. An alloc or free changes one bit of the bitmap, yet writing the inactive copy whole
 * copies the bitmap, zeroes the rest of the page and checksums all of it: three quarters of
 * the pager's own time in an alloc/free pair, at 4 KiB pages. When this handle wrote both
 * copies itself, in its last two commits, the inactive copy is the generation before the
 * active one and differs from it in the bitmap words the last commit changed, and in the
 * header: those words are copied back, and the CRC is the active copy's patched by the bytes
 * that differ (CRC-32 is linear, pager/crc32.h). When it wrote the active copy alone, the
 * copy is made whole but the CRC is still patched: past the bitmap both are zero. The bytes
 * written are those of the whole way (test_patch compares them). A loaded copy, a commit
 * that changes more than MP_META_PATCH_MAX words, a failed commit (the inactive copy then
 * holds what it left), and pages past 64 KiB (the tables take a page's size) go the whole
 * way, and after one or two such commits the next ones patch again. A directory stage patches
 * its page's CRC too (mp__dir_stage), and a selector flip page 0's section CRC (mp__dir_flip). */
#define MP_META_PATCH_PS 65536u

/* Bytes of the bitmap word at page offset `at` that the CRC covers (the last word stops at it). */
static size_t word_len(const mp_pager *p, size_t at) { return p->ps - 4 - at < 8 ? p->ps - 4 - at : 8; }

int mp__meta_begin(mp_pager *p, uint64_t new_total, mp_meta_txn *txn) {
  const uint8_t *a = mp__active_meta(p);
  uint8_t *in = mp__pg(p, 2 - p->active_meta);
  txn->ours = p->meta_whole ? 0 : p->meta_ours;
  txn->n = 0;
  if (txn->ours >= 2 && p->meta_last_n <= MP_META_PATCH_MAX) {
    for (unsigned k = 0; k < p->meta_last_n; k++)
      memcpy(in + p->meta_last[k], a + p->meta_last[k], word_len(p, p->meta_last[k]));
  } else {
    size_t used = (size_t)((p->total + 7) / 8);
    memcpy(in + MP_META_BITMAP, a + MP_META_BITMAP, used);
    memset(in + MP_META_BITMAP + used, 0, p->ps - 4 - MP_META_BITMAP - used);
  }
  p->meta_ours = 0; /* the inactive copy is in flux until this commit lands */
  txn->total = new_total;
  txn->free_count = p->free_count + (new_total - p->total);
  return MP_OK;
}

void mp__meta_set(mp_pager *p, mp_meta_txn *txn, uint64_t id, bool allocated) {
  uint8_t *bm = mp__pg(p, 2 - p->active_meta) + MP_META_BITMAP;
  uint8_t bit = (uint8_t)(1u << (id & 7));
  bool was = bm[id >> 3] & bit;
  if (was == allocated) return;
  bm[id >> 3] ^= bit;
  if (allocated)
    txn->free_count--;
  else
    txn->free_count++;
  if (txn->n > MP_META_PATCH_MAX) return; /* too many to patch: whole */
  uint32_t at = (uint32_t)((MP_META_BITMAP + (id >> 3)) & ~(uint64_t)7);
  for (unsigned k = 0; k < txn->n; k++)
    if (txn->words[k] == at) return;
  if (txn->n < MP_META_PATCH_MAX) txn->words[txn->n] = at;
  txn->n++;
}

/* CRC tables for messages of len bytes (a page's checksummed bytes, page 0's section), made at
 * first need; NULL when the page is too large for them, or there is no memory (then the CRC is
 * computed whole). */
static const mp_crc_patch *tables(mp_pager *p, mp_crc_patch *c, size_t len) {
  if (p->meta_whole || p->ps > MP_META_PATCH_PS || (!c->pow && mp__crc32_patch_init(c, len) != 0)) return NULL;
  return c;
}
static const mp_crc_patch *patch_tables(mp_pager *p) { return tables(p, &p->meta_patch, p->ps - 4); }

/* The inactive copy's CRC patched from the active one's, or 0 with *ok false when it cannot be
 * (see "patching" above). */
static uint32_t meta_patched_crc(mp_pager *p, const mp_meta_txn *txn, const uint8_t *a, const uint8_t *in, bool *ok) {
  *ok = false;
  if (!txn->ours || txn->n > MP_META_PATCH_MAX) return 0;
  const mp_crc_patch *c = patch_tables(p);
  if (!c) return 0;
  uint64_t sum = mp__crc32_patch_delta(c, MP_META_TOTAL, mp__get64(a + MP_META_TOTAL) ^ txn->total) ^
                 mp__crc32_patch_delta(c, MP_META_GEN, mp__get64(a + MP_META_GEN) ^ (p->generation + 1)) ^
                 mp__crc32_patch_delta(c, MP_META_FREE, mp__get64(a + MP_META_FREE) ^ txn->free_count);
  for (unsigned k = 0; k < txn->n; k++) sum ^= mp__crc32_patch_sum(c, a, in, txn->words[k], word_len(p, txn->words[k]));
  *ok = true;
  return mp__get32(a + p->ps - 4) ^ mp__crc32_patch_term(c, sum);
}

int mp__meta_commit(mp_pager *p, mp_meta_txn *txn) {
  unsigned next = !p->active_meta;
  uint8_t *in = mp__pg(p, 1 + next);
  bool patched;
  uint32_t crc = meta_patched_crc(p, txn, mp__active_meta(p), in, &patched);
  mp__put64(in + MP_META_TOTAL, txn->total);
  mp__put64(in + MP_META_GEN, p->generation + 1);
  mp__put64(in + MP_META_FREE, txn->free_count);
  if (patched) {
    mp__put32(in + p->ps - 4, crc);
  } else {
    mp__page_seal(in, p->ps);
    p->meta_summed += p->ps - 4;
  }
  int rc = mp__sys_msync(p, 1 + next, 1);
  if (rc != MP_OK) return rc;

  uint8_t old[8];
  memcpy(old, p->map + MP_SB_ACTIVE_META, 8);
  p->map[MP_SB_ACTIVE_META] = (uint8_t)next;
  mp__put32(p->map + MP_SB_META_CRC, MP_CRC_RESIDUE);
  rc = p0_sync_or_revert(p, MP_SB_ACTIVE_META, old, 8, NULL);
  if (rc != MP_OK) return rc;
  p->active_meta = next;
  p->generation++;
  p->total = txn->total;
  p->free_count = txn->free_count;
  /* both copies are this handle's once it wrote two in a row */
  p->meta_ours = txn->ours ? 2 : 1;
  p->meta_last_n = txn->n;
  memcpy(p->meta_last, txn->words, sizeof p->meta_last);
  return MP_OK;
}

int mp__find_free(mp_pager *p, size_t n, uint64_t *ids, uint64_t *new_total) {
  /* Next fit, a word at a time from where the last search stopped. */
  const uint8_t *bm = mp__active_meta(p) + MP_META_BITMAP;
  uint64_t words = (p->total + 63) / 64, found = 0;
  uint64_t start = p->hint_word < words ? p->hint_word : 0;
  for (uint64_t k = 0; k < words && found < n; k++) {
    uint64_t w = (start + k) % words;
    uint64_t free_bits = ~mp__get64(bm + w * 8);
    if (w == words - 1 && p->total % 64) free_bits &= (UINT64_C(1) << (p->total % 64)) - 1;
    while (free_bits && found < n) {
      ids[found++] = w * 64 + (uint64_t)__builtin_ctzll(free_bits);
      free_bits &= free_bits - 1;
    }
    if (found == n) p->hint_word = w;
  }
  uint64_t total = p->total;
  if (found < n) {
    /* Grow by doubling, as the reference does, up to what one bitmap page holds. */
    uint64_t need = n - found;
    while (total - p->total < need) {
      if (total >= p->capacity) return MP_EFULL;
      total = total * 2 < p->capacity ? total * 2 : p->capacity;
    }
    int rc = mp__ensure_pages(p, total);
    if (rc != MP_OK) return rc;
    for (uint64_t id = p->total; found < n; id++) ids[found++] = id;
    p->hint_word = (ids[n - 1] + 1) / 64;
  }
  *new_total = total;
  return MP_OK;
}

/* ---- directory -------------------------------------------------------------- */

int mp__blocks_reserve(mp_pager *p, uint32_t n) {
  if (n <= p->blocks_cap) return MP_OK;
  uint32_t cap = p->blocks_cap ? p->blocks_cap : 4;
  while (cap < n) cap *= 2;
  mp_block *b = mp__realloc(p->blocks, (size_t)cap * sizeof *b);
  if (!b) return MP_ENOMEM;
  memset(b + p->blocks_cap, 0, (size_t)(cap - p->blocks_cap) * sizeof *b);
  p->blocks = b;
  p->blocks_cap = cap;
  return MP_OK;
}

int mp__dir_stage(mp_pager *p, uint32_t b, uint32_t e, const uint8_t entry[MP_ENTRY_SIZE], uint64_t with) {
  mp_block *blk = &p->blocks[b];
  uint64_t dir = blk->page[!blk->active];
  uint8_t *cur = mp__pg(p, blk->page[blk->active]), *next = mp__pg(p, dir);
  memcpy(next, cur, p->ps);
  uint8_t *at = mp__entry_at(next, e);
  memcpy(at, entry, MP_ENTRY_SIZE);
  /* The current copy's CRC patched by the entry's bytes (as a metadata copy's, "patching"
   * above): the current copy's CRC is right, checked at load or sealed by this handle. */
  const mp_crc_patch *c = patch_tables(p);
  if (c) {
    size_t off = (size_t)(at - next);
    mp__put32(next + p->ps - 4, mp__get32(cur + p->ps - 4) ^
                                    mp__crc32_patch_term(c, mp__crc32_patch_sum(c, cur, next, off, MP_ENTRY_SIZE)));
  } else {
    mp__page_seal(next, p->ps);
    p->meta_summed += p->ps - 4;
  }
  /* One msync from the lower page to the higher: one flush of the device for both. */
  uint64_t lo = dir, hi = dir;
  if (with != MP_NO_PAGE) lo = with < dir ? with : dir, hi = with > dir ? with : dir;
  int rc = mp__sys_msync(p, lo, hi - lo + 1);
  if (rc != MP_OK) blk->needs_mirror = true; /* an intent must not outlive its call */
  return rc;
}

int mp__dir_flip(mp_pager *p, uint32_t b) {
  size_t at = MP_SB_REFS + (size_t)MP_REF_SIZE * b + MP_REF_ACTIVE;
  uint8_t old = p->map[at], old_crc[4];
  memcpy(old_crc, p->map + p->ps - 4, 4);
  p->map[at] = (uint8_t)!p->blocks[b].active;
  /* One byte of the section changes: its CRC patched by that byte when the stored one is
   * known right ("patching" above), else computed whole. */
  bool sealed = p->p0_sealed;
  size_t len = p->ps - 4 - MP_SECTION_START;
  const mp_crc_patch *c = sealed ? tables(p, &p->p0_patch, len) : NULL;
  if (c) {
    uint64_t d = mp__crc32_patch_delta(c, at - MP_SECTION_START, (uint64_t)(old ^ p->map[at]));
    mp__put32(p->map + p->ps - 4, mp__get32(old_crc) ^ mp__crc32_patch_term(c, d));
  } else {
    p0_reseal(p);
    p->meta_summed += len;
  }
  p->p0_sealed = true;
  int rc = p0_sync_or_revert(p, at, &old, 1, old_crc);
  if (rc == MP_OK) p->blocks[b].active = !p->blocks[b].active;
  else p->p0_sealed = sealed; /* the old byte and CRC are back: as right as they were */
  return rc;
}

int mp__dir_mirror(mp_pager *p, uint32_t b) {
  mp_block *blk = &p->blocks[b];
  memcpy(mp__pg(p, blk->page[!blk->active]), mp__pg(p, blk->page[blk->active]), p->ps);
  int rc = mp__sys_msync(p, blk->page[!blk->active], 1);
  blk->needs_mirror = rc != MP_OK;
  return rc;
}

static size_t slot_at(uint32_t i) { return MP_SB_REFS + (size_t)MP_REF_SIZE * i; }

int mp__dir_append_intent(mp_pager *p, uint64_t page_a, uint64_t page_b) {
  size_t at = slot_at(p->dir_count);
  p->p0_sealed = false; /* the intent's bytes are outside the stored CRC on purpose */
  static const uint8_t zero[MP_REF_SIZE];
  mp__put64(p->map + at, page_a);
  mp__put64(p->map + at + 8, page_b);
  p->map[at + MP_REF_ACTIVE] = 0;
  return p0_sync_or_revert(p, at, zero, MP_REF_SIZE, NULL);
}

int mp__dir_append_cancel(mp_pager *p) {
  memset(p->map + slot_at(p->dir_count), 0, MP_REF_SIZE);
  if (mp__sys_msync(p, 0, 1) != MP_OK) {
    p->poisoned = true; /* the intent may stay on disk while its pages get reused */
    return MP_EIO;
  }
  return MP_OK;
}

int mp__dir_append_commit(mp_pager *p) {
  uint8_t old[4], old_crc[4];
  memcpy(old, p->map + MP_SB_DIR_COUNT, 4);
  memcpy(old_crc, p->map + p->ps - 4, 4);
  int rc = mp__blocks_reserve(p, p->dir_count + 1);
  if (rc != MP_OK) return rc;
  mp__put32(p->map + MP_SB_DIR_COUNT, p->dir_count + 1);
  p0_reseal(p);
  bool sealed = p->p0_sealed;
  p->p0_sealed = true;
  rc = p0_sync_or_revert(p, MP_SB_DIR_COUNT, old, 4, old_crc);
  if (rc != MP_OK) {
    p->p0_sealed = sealed;
    return rc;
  }
  size_t at = slot_at(p->dir_count);
  mp_block *blk = &p->blocks[p->dir_count];
  memset(blk, 0, sizeof *blk);
  blk->page[0] = mp__get64(p->map + at);
  blk->page[1] = mp__get64(p->map + at + 8);
  p->dir_count++;
  return MP_OK;
}

/* ---- pending work ---------------------------------------------------------- */

int mp__settle(mp_pager *p) {
  if (p->fmt3) return mp3__settle(p);
  if (p->reclaim_count) {
    /* Free what an interrupted protected operation left allocated, before any
     * mirror erases the record of it. */
    mp_meta_txn txn;
    mp__meta_begin(p, p->total, &txn);
    for (size_t w = 0; w < p->words; w++)
      for (uint64_t bits = p->reclaim[w]; bits; bits &= bits - 1)
        mp__meta_set(p, &txn, w * 64 + (uint64_t)__builtin_ctzll(bits), false);
    int rc = mp__meta_commit(p, &txn);
    if (rc != MP_OK) return rc;
    memset(p->reclaim, 0, p->words * 8);
    p->reclaim_count = 0;
  }
  if (p->intent_pending) {
    int rc = mp__dir_append_cancel(p);
    if (rc != MP_OK) return rc;
    p->intent_pending = false;
  }
  for (uint32_t b = 0; b < p->dir_count; b++) {
    if (!p->blocks[b].needs_mirror) continue;
    int rc = mp__dir_mirror(p, b);
    if (rc != MP_OK) return rc;
  }
  return MP_OK;
}
