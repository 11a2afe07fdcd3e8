/* upgrade3.c: the upgrade of a 0.2 file that outgrows 0.2 to 0.3 (FORMAT.md 3.8), one
 * crash-atomic commit, and the handle's switch to the 0.3 state the file then holds.
 *
 * The protocol, and why each step is where it is:
 *
 * - Stage, past the 0.2 file's last page T: the file is extended to T' (3.7's growth); the two
 *   roots and group 0's two leaf slots go into the first blocks at or past T that are no group's
 *   own leaf slots; group 0's leaf (slot A, generation g + 1, g the 0.2 metadata's generation)
 *   holds 0.2's bitmap with the metadata copies freed (those outside page 0's block) and the new
 *   blocks taken; every further group's leaf is written as growth writes it; root g + 1 copies
 *   0.2's directory references; the other root slot and leaf slot B are zero. Below 4 KiB pages,
 *   the sector copy too (below). One msync over them. 0.2 reads nothing past T: a cut anywhere
 *   in the stage, any sector torn or garbage, leaves the 0.2 file it was, longer than its page
 *   count, which 0.2 reads as growth not committed.
 *
 * - Commit: page 0's first 512 bytes become the 0.3 superblock, one msync. A cut lands the
 *   sector whole or not (the default model). From 4 KiB pages up, a garbage tear of it takes the
 *   tag alone, and the salvage of 0.2 files (salvage.c) rebuilds page 0 from pages 1 and 2 and
 *   the directory pages, which the upgrade did not write: the file opens as 0.2 and the next
 *   growth upgrades again. Pages 1 and 2 are free from then on in 0.3, and nothing writes them
 *   before the superblock is durable.
 *
 * - Below 4 KiB pages a sector of 4 KiB also holds pages 1 to 3 (1 KiB) or 1 (2 KiB): 0.2's
 *   metadata copies, which that salvage needs, and at 1 KiB page 3, 0.2's first page for data.
 *   A garbage tear there leaves nothing to salvage 0.2 from, so the upgrade rolls forward
 *   instead: the first block at or past T is staged as the sector copy, the superblock and
 *   page 3 as they are once the upgrade stands, under a CRC and its own page number; the
 *   superblock names it, and it stays allocated (a metadata block). A head without a tag is
 *   looked for a copy before the 0.2 salvage (open3.c), which gives the 0.3 file back, page 3
 *   included. With 512-byte sectors the garbage takes the superblock's sector alone, and the
 *   copy restores it just the same. Page 3, allocated, stays a regular page at its number
 *   (MP3_SB_PAGE3); free, it is reserved with the rest of page 0's block. 0.2's directory
 *   pages and protected copies are single pages there, where 0.3 wants whole blocks: a 0.2
 *   file that has directory blocks keeps MP_EFULL below 4 KiB.
 *
 * - A failed msync of the superblock leaves either sector on the disk: the 0.2 sector is put
 *   back and synced.
 *
 * - A copy that did not commit must not outlive the upgrade: a later garbage page 0 of the 0.2
 *   file would bring the 0.3 file of the upgrade back, without the 0.2 commits made since. A
 *   failed msync of the stage or of the superblock invalidates it (magic zeroed, synced) once
 *   the 0.2 sector stands again; a cut leaves it to the next 0.2 writer's open, which looks at
 *   the first block at or past its page count (mp3__drop_copy) before its first commit. The
 *   handle is poisoned if either sync fails, as a failed commit point of 0.2 is.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

static void set_bit(uint8_t *bm, uint64_t i) { bm[i / 8] |= (uint8_t)(1u << (i % 8)); }

/* Zeroes the sector copy's magic and syncs it: an upgrade that did not commit leaves none. */
static int drop_staged_copy(mp_pager *p, uint64_t page) {
  memset(mp__pg(p, page), 0, 4);
  return mp__sys_msync(p, page, 1);
}

int mp3__upgrade(mp_pager *p) {
  const size_t ps = p->ps;
  const uint64_t m = mp3__m(ps);
  /* (a 0.3 root holds one directory reference fewer than 0.2's page 0 at 4 KiB: 238, not 239) */
  if (p->dir_count > mp3__max_refs(ps) || (m > 1 && p->dir_count)) return MP_EFULL;
  const uint64_t c = mp3__group_pages(ps), T = p->total, g = p->generation;
  /* The new size, and the blocks at or past T that are no group's leaf slots: roots R0 and R1,
   * group 0's leaf slots A and B, and below 4 KiB pages first of all the sector copy, at the
   * first block at or past T (where a 0.2 writer looks for it, mp3__drop_copy). */
  const size_t nb = m > 1 ? 5 : 4;
  uint64_t block[5], total = T;
  for (;;) {
    uint64_t next = total + (total < c ? total : c);
    total = next > c ? (next + c - 1) / c * c : next;
    size_t n = 0;
    for (uint64_t id = (T + m - 1) / m * m; n < nb; id += m)
      if (id < c || id % c >= 2 * m) block[n++] = id;
    if (block[nb - 1] + m <= total && (total <= c || total % c == 0)) break;
  }
  if (total > MP3_MAX_PAGES) return MP_EFULL;
  const uint64_t *place = m > 1 ? block + 1 : block, copy = m > 1 ? block[0] : 0;
  const uint64_t groups = total / c + (total % c != 0);
  uint64_t *saved = NULL, backed[20];
  for (size_t i = 0; i < nb * m; i++) backed[i] = block[i / m] + i % m;
  int rc = mp__blocks_reserve(p, p->dir_count + 1);
  if (rc == MP_OK && p->dir_count && !(saved = mp__malloc(p->dir_count * sizeof *saved))) rc = MP_ENOMEM;
  if (rc == MP_OK) rc = mp__sys_extend(p, total * ps);
  if (rc == MP_OK) rc = mp__sys_remap(p, total);
  if (rc == MP_OK) rc = mp__sys_back(p, backed, nb * m);
  for (uint64_t k = 1; k < groups && rc == MP_OK; k++) rc = mp__sys_back(p, (uint64_t[]){k * c, k * c + 1}, 2);
  if (rc != MP_OK) {
    free(saved);
    return rc;
  }

  /* Stage. */
  for (size_t i = 0; i < nb; i++) memset(mp__pg(p, block[i]), 0, mp3__mb(ps));
  uint8_t *leaf0 = mp__pg(p, place[2]);
  memcpy(leaf0 + MP3_LEAF_BITMAP, mp__active_meta(p) + MP_META_BITMAP, (size_t)((T + 7) / 8));
  /* 0.2's metadata copies: free once 0.3 stands, but for those inside page 0's block (below
   * 4 KiB pages), which is reserved with it. At 1 KiB the block's page 3 is 0.2's first page
   * for data: allocated, it stays a regular page (MP3_SB_PAGE3); free, it is reserved too. */
  bool page3 = false;
  if (m == 1) leaf0[MP3_LEAF_BITMAP] &= (uint8_t)~0x06;
  if (m == 2) leaf0[MP3_LEAF_BITMAP] &= (uint8_t)~0x04;
  if (m == 4) {
    page3 = leaf0[MP3_LEAF_BITMAP] & 0x08;
    leaf0[MP3_LEAF_BITMAP] |= 0x08;
  }
  for (uint64_t k = 1; k < groups; k++) {
    uint8_t *leaf = mp__pg(p, k * c);
    memset(leaf, 0, ps);
    set_bit(leaf + MP3_LEAF_BITMAP, 0);
    set_bit(leaf + MP3_LEAF_BITMAP, 1);
    memset(mp__pg(p, k * c + 1), 0, 4);
  }
  for (size_t i = 0; i < nb * m; i++)
    set_bit(mp__pg(p, backed[i] < c ? place[2] : backed[i] / c * c) + MP3_LEAF_BITMAP, backed[i] % c);
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
  uint8_t sector[MP3_SB_LEN];
  mp3_sb sb = {.log2 = p->log2, .flags = (p->sparse ? MP3_SB_SPARSE : 0) | (page3 ? MP3_SB_PAGE3 : 0),
               .root = {place[0], place[1]}, .leaf0 = {place[2], place[3]}, .copy = copy};
  mp3__sb_encode(&sb, sector);
  if (copy) mp3__copy_encode(mp__pg(p, copy), ps, copy, sector, page3 ? mp__pg(p, 3) : NULL);
  uint64_t hi = block[nb - 1] + m - 1;
  if (groups > 1 && (groups - 1) * c + 1 > hi) hi = (groups - 1) * c + 1;
  if ((rc = mp__sys_msync(p, T, hi - T + 1)) != MP_OK) {
    /* The copy may have reached the disk: a garbage page 0 of the 0.2 file must not find it. */
    if (copy && drop_staged_copy(p, copy) != MP_OK) p->poisoned = true;
    free(saved);
    return rc;
  }

  /* Commit: the superblock sector. */
  uint8_t old[MP3_SB_LEN];
  memcpy(old, p->map, sizeof old);
  memcpy(p->map, sector, sizeof sector);
  if ((rc = mp__sys_msync(p, 0, 1)) != MP_OK) {
    memcpy(p->map, old, sizeof old);
    if (mp__sys_msync(p, 0, 1) != MP_OK || (copy && drop_staged_copy(p, copy) != MP_OK)) p->poisoned = true;
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

int mp3__drop_copy(mp_pager *p, uint64_t total) {
  const uint64_t m = mp3__m(p->ps), at = (total + m - 1) / m * m;
  if ((at + m) * p->ps > p->file_size) return MP_OK;
  /* (past a 0.2 handle's mapping, which ends at 0.2's capacity: a mapping of the block alone) */
  const uint64_t off = at * p->ps, lo = off / p->sys_page * p->sys_page, len = off + MP3_SECTOR - lo;
  mp_pager tmp = {.fd = p->fd, .ps = (size_t)len, .sys_page = p->sys_page};
  tmp.map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, (off_t)lo);
  if (tmp.map == MAP_FAILED) return MP_ENOMEM;
  tmp.map_pages = 1;
  int rc = MP_OK;
  if (memcmp(tmp.map + (off - lo), "MPC3", 4) == 0) {
    memset(tmp.map + (off - lo), 0, 4);
    rc = mp__sys_msync(&tmp, 0, 1);
  }
  munmap(tmp.map, len);
  return rc;
}
