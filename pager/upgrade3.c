/* upgrade3.c: the upgrade of a 0.2 file that outgrows 0.2 to 0.3 (FORMAT.md 3.8), one
 * crash-atomic commit, and the handle's switch to the 0.3 state the file then holds.
 *
 * The protocol, and why each step is where it is:
 *
 * - Stage, past the 0.2 file's last page T: the file is extended to T' (3.7's growth); the two
 *   roots and group 0's two leaf slots go into the first pages at or past T that are no group's
 *   own leaf slots; group 0's leaf (slot A, generation g + 1, g the 0.2 metadata's generation)
 *   holds 0.2's bitmap with pages 1 and 2 (0.2's metadata copies) freed and the new blocks
 *   taken; every further group's leaf is written as growth writes it; root g + 1 copies 0.2's
 *   directory references; the other root slot and leaf slot B are zero. One msync over them.
 *   0.2 reads nothing past T: a cut anywhere in the stage, any sector torn or garbage, leaves
 *   the 0.2 file it was, longer than its page count, which 0.2 reads as growth not committed.
 *
 * - Commit: page 0's first sector becomes the 0.3 superblock, one sector, one msync. A cut
 *   lands it whole or not (the default model). A garbage tear of it takes the tag, and the
 *   salvage of 0.2 files (salvage.c) rebuilds page 0 from pages 1 and 2 and the directory
 *   pages, which the upgrade did not write: the file opens as 0.2 and the next growth upgrades
 *   again. Pages 1 and 2 are free from then on in 0.3, and nothing writes them before the
 *   superblock is durable.
 *
 * - A failed msync of the superblock leaves either sector on the disk: the 0.2 sector is put
 *   back and synced, and the handle is poisoned if that fails too, as a failed commit point of
 *   0.2 is.
 *
 * Only at pages of 4 KiB and more, where page 0 is a metadata block of its own: below, page
 * 0's 4 KiB sector also holds pages 1 to 3, 0.2's metadata copies and user data, which the
 * 0.3 superblock's block would take over (MP_EFULL there, as before).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void set_bit(uint8_t *bm, uint64_t i) { bm[i / 8] |= (uint8_t)(1u << (i % 8)); }

int mp3__upgrade(mp_pager *p) {
  const size_t ps = p->ps;
  /* (a 0.3 root holds one directory reference fewer than 0.2's page 0 at 4 KiB: 238, not 239) */
  if (ps < MP3_SECTOR || p->dir_count > mp3__max_refs(ps)) return MP_EFULL;
  const uint64_t c = mp3__group_pages(ps), T = p->total, g = p->generation;
  /* The new size, and the four blocks at or past T that are no group's leaf slots. */
  uint64_t place[4], total = T;
  for (;;) {
    uint64_t next = total + (total < c ? total : c);
    total = next > c ? (next + c - 1) / c * c : next;
    size_t n = 0;
    for (uint64_t id = T; n < 4; id++)
      if (id < c || id % c >= 2) place[n++] = id;
    if (place[3] < total && (total <= c || total % c == 0)) break;
  }
  if (total > MP3_MAX_PAGES) return MP_EFULL;
  const uint64_t groups = total / c + (total % c != 0);
  uint64_t *saved = NULL;
  int rc = mp__blocks_reserve(p, p->dir_count + 1);
  if (rc == MP_OK && p->dir_count && !(saved = mp__malloc(p->dir_count * sizeof *saved))) rc = MP_ENOMEM;
  if (rc == MP_OK) rc = mp__sys_extend(p, total * ps);
  if (rc == MP_OK) rc = mp__sys_remap(p, total);
  if (rc == MP_OK) rc = mp__sys_back(p, place, 4);
  for (uint64_t k = 1; k < groups && rc == MP_OK; k++) rc = mp__sys_back(p, (uint64_t[]){k * c, k * c + 1}, 2);
  if (rc != MP_OK) {
    free(saved);
    return rc;
  }

  /* Stage. */
  for (int i = 0; i < 4; i++) memset(mp__pg(p, place[i]), 0, ps);
  uint8_t *leaf0 = mp__pg(p, place[2]);
  memcpy(leaf0 + MP3_LEAF_BITMAP, mp__active_meta(p) + MP_META_BITMAP, (size_t)((T + 7) / 8));
  leaf0[MP3_LEAF_BITMAP] &= (uint8_t)~0x06; /* 0.2's metadata copies: free once 0.3 stands */
  for (uint64_t k = 1; k < groups; k++) {
    uint8_t *leaf = mp__pg(p, k * c);
    memset(leaf, 0, ps);
    set_bit(leaf + MP3_LEAF_BITMAP, 0);
    set_bit(leaf + MP3_LEAF_BITMAP, 1);
    memset(mp__pg(p, k * c + 1), 0, 4);
  }
  for (int i = 0; i < 4; i++) set_bit(mp__pg(p, place[i] < c ? place[2] : place[i] / c * c) + MP3_LEAF_BITMAP, place[i] % c);
  uint64_t free_count = 0;
  for (uint64_t k = 0; k < groups; k++) {
    uint8_t *leaf = k ? mp__pg(p, k * c) : leaf0;
    uint64_t size = total - k * c < c ? total - k * c : c;
    uint32_t free_pages = (uint32_t)(size - mp3__popcount(leaf + MP3_LEAF_BITMAP, size));
    mp3__leaf_seal(leaf, ps, (uint32_t)k, g + 1, free_pages);
    free_count += free_pages;
  }
  uint8_t *refs = mp__malloc(((size_t)p->dir_count + 1) * MP3_REF_SIZE);
  if (!refs) {
    free(saved);
    return MP_ENOMEM;
  }
  for (uint32_t b = 0; b < p->dir_count; b++) {
    mp__put64(refs + MP3_REF_SIZE * b, p->blocks[b].page[0]);
    mp__put64(refs + MP3_REF_SIZE * b + 8, p->blocks[b].page[1]);
    refs[MP3_REF_SIZE * b + MP_REF_ACTIVE] = p->blocks[b].active;
  }
  const unsigned rs = (unsigned)((g + 1) % 2);
  mp3_root r = {.slot = rs, .generation = g + 1, .total = total, .free_count = free_count, .dir_count = p->dir_count};
  mp3__root_encode(&r, p->log2, refs, mp__pg(p, place[rs]));
  free(refs);
  const uint64_t hi = groups > 1 ? (place[3] > (groups - 1) * c + 1 ? place[3] : (groups - 1) * c + 1) : place[3];
  if ((rc = mp__sys_msync(p, T, hi - T + 1)) != MP_OK) {
    free(saved);
    return rc;
  }

  /* Commit: the superblock sector. */
  uint8_t old[MP3_SB_LEN];
  memcpy(old, p->map, sizeof old);
  mp3_sb sb = {.log2 = p->log2, .flags = p->sparse ? MP3_SB_SPARSE : 0, .root = {place[0], place[1]},
               .leaf0 = {place[2], place[3]}};
  mp3__sb_encode(&sb, p->map);
  if ((rc = mp__sys_msync(p, 0, 1)) != MP_OK) {
    memcpy(p->map, old, sizeof old);
    if (mp__sys_msync(p, 0, 1) != MP_OK) p->poisoned = true;
    free(saved);
    return rc;
  }

  /* The file is 0.3: the handle loads it as any 0.3 open does (which checks what was written),
   * keeping the protected writes staged before. */
  for (uint32_t b = 0; b < p->dir_count; b++) saved[b] = (uint64_t)(uintptr_t)p->blocks[b].staged;
  uint32_t saved_n = p->dir_count;
  p->fmt3 = true;
  char why[256];
  rc = mp3__load(p, why, sizeof why);
  for (uint32_t b = 0; b < saved_n; b++) {
    if (rc == MP_OK && b < p->dir_count) {
      free(p->blocks[b].staged);
      p->blocks[b].staged = (uint64_t *)(uintptr_t)saved[b];
    } else if (b >= p->dir_count) {
      free((uint64_t *)(uintptr_t)saved[b]);
    }
  }
  free(saved);
  if (rc != MP_OK) {
    /* What was just written does not load: a bug, not a state of the disk to guess at. */
    p->poisoned = true;
    return MP_ECORRUPT;
  }
  return MP_OK;
}
