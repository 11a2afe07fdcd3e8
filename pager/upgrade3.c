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
 *   (MP3_SB_PAGE3); free, or a directory or protected page, it is reserved with the rest of
 *   page 0's block. 0.2's directory pages and protected copies are single pages there, where
 *   0.3 wants each copy a whole block (3.6): the stage copies them into blocks after the other
 *   five (relocate), past T like everything it writes, and frees the 0.2 pages in the new leaf.
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

static void clear_bit(uint8_t *bm, uint64_t i) { bm[i / 8] &= (uint8_t)~(1u << (i % 8)); }

/* Below 4 KiB pages: each 0.2 directory block and each protected page of its current copy, the
 * number of blocks their relocation takes. */
static uint64_t relocated_blocks(const mp_pager *p) {
  uint64_t n = 0;
  for (uint32_t b = 0; b < p->dir_count; b++) {
    const uint8_t *cur = mp__pg(p, p->blocks[b].page[p->blocks[b].active]);
    n += 2;
    for (uint32_t e = 0; e < p->dir_cap; e++) n += mp__entry_at_c(cur, e)[MP_ENTRY_IN_USE] ? 2 : 0;
  }
  return n;
}

/* Copies each directory block and each protected page it names into whole blocks from `next`
 * on (3.6: below 4 KiB pages a copy is a block of its own), both directory copies from the
 * current one with the entries renamed; both copies of each protected page as they are (the
 * inactive one may hold a write staged by mp_protected_begin). The 0.2 pages are freed in
 * group 0's leaf `bm`; the root's references go into `refs`. Whether page 3 was one of them. */
static bool relocate(mp_pager *p, const uint64_t *next, uint8_t *bm, uint8_t *refs) {
  const size_t ps = p->ps;
  bool had3 = false;
  for (uint32_t b = 0; b < p->dir_count; b++) {
    const mp_block *blk = &p->blocks[b];
    const uint64_t d[2] = {next[0], next[1]};
    next += 2;
    const uint8_t *cur = mp__pg(p, blk->page[blk->active]);
    for (int k = 0; k < 2; k++) {
      memcpy(mp__pg(p, d[k]), cur, ps);
      clear_bit(bm, blk->page[k]);
      had3 |= blk->page[k] == 3;
    }
    for (uint32_t e = 0; e < p->dir_cap; e++) {
      mp_entry ent;
      mp__entry_decode(mp__entry_at_c(cur, e), &ent);
      if (!ent.in_use) continue;
      for (int k = 0; k < 2; k++) {
        memcpy(mp__pg(p, next[k]), mp__pg(p, ent.page[k]), ps);
        clear_bit(bm, ent.page[k]);
        had3 |= ent.page[k] == 3;
        ent.page[k] = next[k];
      }
      next += 2;
      for (int k = 0; k < 2; k++) mp__entry_encode(&ent, mp__entry_at(mp__pg(p, d[k]), e));
    }
    for (int k = 0; k < 2; k++) mp__page_seal(mp__pg(p, d[k]), ps);
    mp__put64(refs + MP3_REF_SIZE * b, d[0]);
    mp__put64(refs + MP3_REF_SIZE * b + 8, d[1]);
    refs[MP3_REF_SIZE * b + MP_REF_ACTIVE] = 0;
  }
  return had3;
}

int mp3__upgrade(mp_pager *p) {
  const size_t ps = p->ps, mb = mp3__mb(ps);
  const uint64_t m = mp3__m(ps);
  /* (a 0.3 root holds one directory reference fewer than 0.2's page 0 at 4 KiB: 238, not 239) */
  if (p->dir_count > mp3__max_refs(ps)) return MP_EFULL;
  const uint64_t c = mp3__group_pages(ps), T = p->total, g = p->generation;
  /* The new size, and the blocks at or past T that are no group's leaf slots: roots R0 and R1,
   * group 0's leaf slots A and B; below 4 KiB pages first of all the sector copy, at the first
   * block at or past T (where a 0.2 writer looks for it, mp3__drop_copy), and after them the
   * relocated directory and protected copies. */
  const size_t nb = m > 1 ? 5 : 4;
  const uint64_t nrel = m > 1 ? relocated_blocks(p) : 0, nall = nb + nrel;
  uint64_t *block = mp__malloc(nall * sizeof *block), *backed = mp__malloc(nall * m * sizeof *backed), total = T;
  uint8_t *refs = mp__malloc(((size_t)p->dir_count + 1) * MP3_REF_SIZE);
  uint64_t *saved = NULL;
  int rc = block && backed && refs ? MP_OK : MP_ENOMEM;
  for (; rc == MP_OK;) {
    uint64_t next = total + (total < c ? total : c);
    total = next > c ? (next + c - 1) / c * c : next;
    size_t n = 0;
    for (uint64_t id = (T + m - 1) / m * m; n < nall; id += m)
      if (id < c || id % c >= 2 * m) block[n++] = id;
    if (block[nall - 1] + m <= total && (total <= c || total % c == 0)) break;
  }
  if (rc == MP_OK && total > MP3_MAX_PAGES) rc = MP_EFULL;
  const uint64_t groups = total / c + (total % c != 0);
  for (size_t i = 0; rc == MP_OK && i < nall * m; i++) backed[i] = block[i / m] + i % m;
  if (rc == MP_OK) rc = mp__blocks_reserve(p, p->dir_count + 1);
  if (rc == MP_OK && p->dir_count && !(saved = mp__malloc(p->dir_count * sizeof *saved))) rc = MP_ENOMEM;
  if (rc == MP_OK) rc = mp__sys_extend(p, total * ps);
  if (rc == MP_OK) rc = mp__sys_remap(p, total);
  if (rc == MP_OK) rc = mp__sys_back(p, backed, nall * m);
  for (uint64_t k = 1; k < groups && rc == MP_OK; k++)
    for (uint64_t i = 0; i < 2 * m && rc == MP_OK; i++) rc = mp__sys_back(p, (uint64_t[]){k * c + i}, 1);
  if (rc != MP_OK) {
    free(saved);
    free(block);
    free(backed);
    free(refs);
    return rc;
  }

  /* Stage. */
  const uint64_t *place = m > 1 ? block + 1 : block, copy = m > 1 ? block[0] : 0;
  for (size_t i = 0; i < nall; i++) memset(mp__pg(p, block[i]), 0, mb);
  uint8_t *leaf0 = mp__pg(p, place[2]);
  memcpy(leaf0 + MP3_LEAF_BITMAP, mp__active_meta(p) + MP_META_BITMAP, (size_t)((T + 7) / 8));
  bool owned3 = false;
  if (m > 1) {
    owned3 = relocate(p, block + nb, leaf0 + MP3_LEAF_BITMAP, refs);
  } else {
    for (uint32_t b = 0; b < p->dir_count; b++) {
      mp__put64(refs + MP3_REF_SIZE * b, p->blocks[b].page[0]);
      mp__put64(refs + MP3_REF_SIZE * b + 8, p->blocks[b].page[1]);
      refs[MP3_REF_SIZE * b + MP_REF_ACTIVE] = p->blocks[b].active;
    }
  }
  /* 0.2's metadata copies: free once 0.3 stands, but for those inside page 0's block (below
   * 4 KiB pages), which is reserved with it. At 1 KiB the block's page 3 is 0.2's first page
   * for data: a regular page, it stays one (MP3_SB_PAGE3); free, or a directory or protected
   * copy (relocated above), it is reserved too. */
  bool page3 = false;
  if (m == 1) leaf0[MP3_LEAF_BITMAP] &= (uint8_t)~0x06;
  if (m == 2) leaf0[MP3_LEAF_BITMAP] &= (uint8_t)~0x04;
  if (m == 4) {
    page3 = (leaf0[MP3_LEAF_BITMAP] & 0x08) && !owned3;
    leaf0[MP3_LEAF_BITMAP] |= 0x08;
  }
  for (uint64_t k = 1; k < groups; k++) {
    uint8_t *leaf = mp__pg(p, k * c);
    memset(leaf, 0, mb);
    for (uint64_t i = 0; i < 2 * m; i++) set_bit(leaf + MP3_LEAF_BITMAP, i);
    memset(mp__pg(p, k * c + m), 0, 4);
  }
  for (size_t i = 0; i < nall * m; i++)
    set_bit(mp__pg(p, backed[i] < c ? place[2] : backed[i] / c * c) + MP3_LEAF_BITMAP, backed[i] % c);
  uint64_t free_count = 0;
  for (uint64_t k = 0; k < groups; k++) {
    uint8_t *leaf = k ? mp__pg(p, k * c) : leaf0;
    uint64_t size = total - k * c < c ? total - k * c : c;
    uint32_t free_pages = (uint32_t)(size - mp__popcount(leaf + MP3_LEAF_BITMAP, size));
    mp3__leaf_seal(leaf, ps, (uint32_t)k, g + 1, free_pages);
    free_count += free_pages;
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
  uint64_t hi = block[nall - 1] + m - 1;
  if (groups > 1 && (groups - 1) * c + 2 * m - 1 > hi) hi = (groups - 1) * c + 2 * m - 1;
  free(block);
  free(backed);
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
    } else if (b >= p->dir_count || p->blocks[b].staged != (uint64_t *)(uintptr_t)saved[b]) {
      free((uint64_t *)(uintptr_t)saved[b]); /* (a block the failed load did not reach keeps its own) */
    }
  }
  free(saved);
  if (rc != MP_OK) {
    /* The file is 0.3 and the handle cannot say what it holds: poisoned (a reopen reads the
     * upgraded file). Out of memory is said as such; anything else means what was just
     * written does not load: a bug, not a state of the disk to guess at. */
    p->poisoned = true;
    return rc == MP_ENOMEM ? MP_ENOMEM : MP_ECORRUPT;
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
