/* format3.c: encoders and decoders of the 0.3 structures (FORMAT.md 3.3-3.5). Pure functions
 * over byte buffers: no I/O, no state; every field is bounded before anything uses it. */
#include "format3.h"

#include <stdio.h>
#include <string.h>

#include "crc32.h"
#include "layout.h"
#include "mappedpages.h"

static const uint8_t sb_tag[4] = {'M', 'P', 'P', 'G'}, root_magic[4] = {'M', 'P', 'R', '3'},
                     leaf_magic[4] = {'M', 'P', 'L', '3'},
                     copy_magic[4] = {'M', 'P', 'C', '3'};

/* Trailing CRC of a block of n bytes: over [0, n - 4). */
static uint32_t block_crc(const uint8_t *b, size_t n) { return mp__crc32(0, b, n - 4); }
static bool block_crc_ok(const uint8_t *b, size_t n) { return block_crc(b, n) == mp__get32(b + n - 4); }

/* ---- superblock ------------------------------------------------------------ */

bool mp3__is_v3(const uint8_t *head, size_t len) {
  return len >= 8 && memcmp(head, sb_tag, 4) == 0 && head[MP_SB_VERSION] == 0 &&
         head[MP_SB_VERSION + 1] == MP3_VERSION_MINOR;
}

void mp3__sb_encode(const mp3_sb *sb, uint8_t *out) {
  memset(out, 0, MP3_SB_LEN);
  memcpy(out, sb_tag, 4);
  out[MP_SB_VERSION] = 0;
  out[MP_SB_VERSION + 1] = MP3_VERSION_MINOR;
  out[MP_SB_VERSION + 2] = 0;
  out[MP_SB_VERSION + 3] = MP3_BUILD;
  mp__put32(out + MP_SB_LOG2, sb->log2);
  mp__put32(out + MP3_SB_FLAGS, sb->flags);
  for (int i = 0; i < 2; i++) {
    mp__put64(out + MP3_SB_ROOT + 8 * i, sb->root[i]);
    mp__put64(out + MP3_SB_LEAF0 + 8 * i, sb->leaf0[i]);
  }
  mp__put64(out + MP3_SB_GROUP, mp3__group_pages((size_t)1 << sb->log2));
  mp__put64(out + MP3_SB_COPY, sb->copy);
  mp__put32(out + MP3_SB_CRC, block_crc(out, MP3_SB_LEN));
}

int mp3__sb_decode(const uint8_t *head, size_t len, mp3_sb *sb, char *why, size_t whylen) {
  if (len < MP3_SB_LEN) {
    snprintf(why, whylen, "file too short for a 0.3 superblock (%zu of 512 bytes)", len);
    return MP_ECORRUPT;
  }
  if (memcmp(head, sb_tag, 4) != 0) {
    snprintf(why, whylen, "no mappedpages superblock (tag MPPG) at the start of the file");
    return MP_ECORRUPT;
  }
  unsigned major = head[MP_SB_VERSION], minor = head[MP_SB_VERSION + 1], patch = head[MP_SB_VERSION + 2];
  if (major != 0 || minor > MP3_VERSION_MINOR) {
    snprintf(why, whylen, "format version %u.%u is newer than 0.3", major, minor);
    return MP_EVERSION;
  }
  if (minor != MP3_VERSION_MINOR) {
    snprintf(why, whylen, "superblock version 0.%u is not 0.3", minor);
    return MP_ECORRUPT;
  }
  if (patch != 0) {
    snprintf(why, whylen, "format version 0.3 patch %u is newer than this library reads", patch);
    return MP_EVERSION;
  }
  if (!block_crc_ok(head, MP3_SB_LEN)) {
    snprintf(why, whylen, "0.3 superblock fails its checksum");
    return MP_ECORRUPT;
  }
  if (head[MP_SB_VERSION + 3] != MP3_BUILD) {
    snprintf(why, whylen, "0.3 superblock has build byte %u, not %u", head[MP_SB_VERSION + 3], MP3_BUILD);
    return MP_ECORRUPT;
  }
  uint32_t l = mp__get32(head + MP_SB_LOG2);
  if (l < 10 || l > 24) {
    snprintf(why, whylen, "page size 2^%u outside 1 KiB .. 16 MiB", l);
    return l < 10 ? MP_ECORRUPT : MP_EVERSION;
  }
  size_t ps = (size_t)1 << l;
  uint32_t flags = mp__get32(head + MP3_SB_FLAGS);
  if (flags & ~(MP3_SB_SPARSE | MP3_SB_PAGE3)) {
    snprintf(why, whylen, "0.3 superblock flags 0x%x hold unknown bits", flags);
    return MP_ECORRUPT;
  }
  uint64_t c = mp__get64(head + MP3_SB_GROUP);
  if (c != mp3__group_pages(ps)) {
    snprintf(why, whylen, "0.3 superblock says %llu pages per group, not %llu", (unsigned long long)c,
             (unsigned long long)mp3__group_pages(ps));
    return MP_ECORRUPT;
  }
  if (!mp__all_zero(head + MP3_SB_COPY + 8, MP3_SB_CRC - MP3_SB_COPY - 8)) {
    snprintf(why, whylen, "0.3 superblock bytes 64..507 are not zero");
    return MP_ECORRUPT;
  }
  /* Only an upgrade below 4 KiB pages has a sector copy, and only at 1 KiB does its metadata
   * block hold a page of 0.2's data (3.8). */
  uint64_t copy = mp__get64(head + MP3_SB_COPY);
  if ((copy && ps >= MP3_SECTOR) || (flags & MP3_SB_PAGE3 && (ps != 1024 || !copy))) {
    snprintf(why, whylen, "0.3 superblock has %s at %zu-byte pages", copy && ps >= MP3_SECTOR ? "a sector copy" :
             "page 3 as a regular page", ps);
    return MP_ECORRUPT;
  }
  static const char *const names[5] = {"root slot R0", "root slot R1", "group 0's leaf slot A",
                                       "group 0's leaf slot B", "the sector copy"};
  uint64_t pages[5], m = mp3__m(ps);
  for (int i = 0; i < (copy ? 5 : 4); i++) {
    pages[i] = i < 4 ? mp__get64(head + MP3_SB_ROOT + 8 * i) : copy;
    if (pages[i] % m || pages[i] < m || pages[i] >= MP3_MAX_PAGES) {
      snprintf(why, whylen, "%s at page %llu is not the first page of a metadata block past page 0's", names[i],
               (unsigned long long)pages[i]);
      return MP_ECORRUPT;
    }
    for (int j = 0; j < i; j++)
      if (pages[j] == pages[i]) {
        snprintf(why, whylen, "%s and %s are both at page %llu", names[j], names[i], (unsigned long long)pages[i]);
        return MP_ECORRUPT;
      }
  }
  sb->log2 = l;
  sb->flags = flags;
  sb->root[0] = pages[0];
  sb->root[1] = pages[1];
  sb->leaf0[0] = pages[2];
  sb->leaf0[1] = pages[3];
  sb->copy = copy;
  return MP_OK;
}

void mp3__copy_encode(uint8_t *block, size_t ps, uint64_t page, const uint8_t *sb, const uint8_t *data) {
  size_t mb = mp3__mb(ps);
  memset(block, 0, mb);
  memcpy(block, copy_magic, 4);
  block[MP3_COPY_LOG2] = (uint8_t)__builtin_ctzll(ps);
  mp__put64(block + MP3_COPY_PAGE, page);
  memcpy(block + MP3_COPY_SB, sb, MP3_SB_LEN);
  if (data) memcpy(block + MP3_COPY_DATA, data, ps);
  mp__put32(block + mb - 4, block_crc(block, mb));
}

bool mp3__copy_valid(const uint8_t *block, unsigned log2, uint64_t page) {
  size_t ps = (size_t)1 << log2, mb = mp3__mb(ps);
  mp3_sb sb;
  char why[160];
  return ps < MP3_SECTOR && memcmp(block, copy_magic, 4) == 0 && block[MP3_COPY_LOG2] == log2 &&
         mp__get64(block + MP3_COPY_PAGE) == page && block_crc_ok(block, mb) &&
         mp3__sb_decode(block + MP3_COPY_SB, MP3_SB_LEN, &sb, why, sizeof why) == MP_OK && sb.log2 == log2 &&
         sb.copy == page;
}

/* ---- roots ------------------------------------------------------------------ */

void mp3__root_head(const mp3_root *r, unsigned log2, uint8_t out[MP3_ROOT_REFS]) {
  memset(out, 0, MP3_ROOT_REFS);
  memcpy(out, root_magic, 4);
  out[MP3_ROOT_SLOT] = (uint8_t)r->slot;
  out[MP3_ROOT_LOG2] = (uint8_t)log2;
  mp__put64(out + MP3_ROOT_GEN, r->generation);
  mp__put64(out + MP3_ROOT_TOTAL, r->total);
  mp__put64(out + MP3_ROOT_FREE, r->free_count);
  mp__put32(out + MP3_ROOT_DIR_COUNT, r->dir_count);
}

void mp3__root_encode(const mp3_root *r, unsigned log2, const uint8_t *refs, uint8_t *block) {
  size_t mb = mp3__mb((size_t)1 << log2);
  memset(block, 0, mb);
  mp3__root_head(r, log2, block);
  if (r->dir_count) memcpy(block + MP3_ROOT_REFS, refs, (size_t)MP3_REF_SIZE * r->dir_count);
  mp__put32(block + mb - 4, block_crc(block, mb));
}

int mp3__root_decode(const uint8_t *block, unsigned log2, unsigned slot, mp3_root *r, char *why, size_t whylen) {
  size_t ps = (size_t)1 << log2, mb = mp3__mb(ps);
  if (memcmp(block, root_magic, 4) != 0) {
    snprintf(why, whylen, "root slot %u holds no root (magic MPR3)", slot);
    return MP_ECORRUPT;
  }
  if (!block_crc_ok(block, mb)) {
    snprintf(why, whylen, "root slot %u fails its checksum", slot);
    return MP_ECORRUPT;
  }
  if (block[MP3_ROOT_SLOT] != slot) {
    snprintf(why, whylen, "root slot %u holds the root of slot %u", slot, block[MP3_ROOT_SLOT]);
    return MP_ECORRUPT;
  }
  if (block[MP3_ROOT_LOG2] != log2) {
    snprintf(why, whylen, "root slot %u is for pages of 2^%u bytes, the superblock's are 2^%u", slot,
             block[MP3_ROOT_LOG2], log2);
    return MP_ECORRUPT;
  }
  if (block[6] | block[7] || !mp__all_zero(block + MP3_ROOT_DIR_COUNT + 4, 4)) {
    snprintf(why, whylen, "root slot %u has reserved bytes that are not zero", slot);
    return MP_ECORRUPT;
  }
  uint64_t gen = mp__get64(block + MP3_ROOT_GEN), total = mp__get64(block + MP3_ROOT_TOTAL);
  uint64_t free_count = mp__get64(block + MP3_ROOT_FREE);
  uint32_t dc = mp__get32(block + MP3_ROOT_DIR_COUNT);
  if (gen == 0 || gen % 2 != slot) {
    snprintf(why, whylen, "root slot %u holds generation %llu, which commits into slot %u%s", slot,
             (unsigned long long)gen, (unsigned)(gen % 2), gen ? "" : " and none ever does");
    return MP_ECORRUPT;
  }
  if (total < mp3__m(ps) || total > MP3_MAX_PAGES) {
    snprintf(why, whylen, "root slot %u: page count %llu outside %llu .. 2^32", slot, (unsigned long long)total,
             (unsigned long long)mp3__m(ps));
    return MP_ECORRUPT;
  }
  if (free_count > total) {
    snprintf(why, whylen, "root slot %u: free count %llu above the page count %llu", slot,
             (unsigned long long)free_count, (unsigned long long)total);
    return MP_ECORRUPT;
  }
  if (dc > mp3__max_refs(ps)) {
    snprintf(why, whylen, "root slot %u: %u directory references, at most %u fit", slot, dc, mp3__max_refs(ps));
    return MP_ECORRUPT;
  }
  for (uint32_t i = 0; i < dc; i++) {
    const uint8_t *ref = mp3__root_ref(block, i);
    uint64_t a = mp__get64(ref), b = mp__get64(ref + 8);
    if (ref[MP_REF_ACTIVE] > 1) {
      snprintf(why, whylen, "root slot %u: directory reference %u has selector %u", slot, i, ref[MP_REF_ACTIVE]);
      return MP_ECORRUPT;
    }
    for (int k = 0; k < 2; k++) {
      uint64_t pg = k ? b : a;
      if (pg < mp3__m(ps) || pg >= total) {
        snprintf(why, whylen, "root slot %u: directory reference %u names page %llu, outside %llu .. %llu", slot, i,
                 (unsigned long long)pg, (unsigned long long)mp3__m(ps), (unsigned long long)total - 1);
        return MP_ECORRUPT;
      }
    }
    if (a == b) {
      snprintf(why, whylen, "root slot %u: directory reference %u names page %llu for both copies", slot, i,
               (unsigned long long)a);
      return MP_ECORRUPT;
    }
  }
  size_t end = MP3_ROOT_REFS + (size_t)MP3_REF_SIZE * dc;
  if (!mp__all_zero(block + end, mb - 4 - end)) {
    snprintf(why, whylen, "root slot %u has bytes past its %u directory references that are not zero", slot, dc);
    return MP_ECORRUPT;
  }
  r->slot = slot;
  r->generation = gen;
  r->total = total;
  r->free_count = free_count;
  r->dir_count = dc;
  return MP_OK;
}

/* ---- leaves ----------------------------------------------------------------- */

void mp3__leaf_seal(uint8_t *block, size_t ps, uint32_t group, uint64_t generation, uint32_t free_count) {
  size_t mb = mp3__mb(ps);
  mp3__leaf_head_encode(block, group, generation, free_count);
  mp__put32(block + mb - 4, block_crc(block, mb));
}

bool mp3__leaf_head(const uint8_t *block, uint32_t group, mp3_leaf *l) {
  if (memcmp(block, leaf_magic, 4) != 0 || mp__get32(block + MP3_LEAF_GROUP) != group) return false;
  l->group = group;
  l->generation = mp__get64(block + MP3_LEAF_GEN);
  l->free_count = mp__get32(block + MP3_LEAF_FREE);
  return true;
}

bool mp3__leaf_crc_ok(const uint8_t *block, size_t ps) { return block_crc_ok(block, mp3__mb(ps)); }

int mp3__leaf_decode(const uint8_t *block, size_t ps, uint32_t group, uint64_t pages, mp3_leaf *l, char *why,
                     size_t whylen) {
  size_t mb = mp3__mb(ps);
  uint64_t c = mp3__group_pages(ps);
  if (memcmp(block, leaf_magic, 4) != 0) {
    snprintf(why, whylen, "group %u: the slot holds no leaf (magic MPL3)", group);
    return MP_ECORRUPT;
  }
  if (mp__get32(block + MP3_LEAF_GROUP) != group) {
    snprintf(why, whylen, "group %u: the slot holds the leaf of group %u", group, mp__get32(block + MP3_LEAF_GROUP));
    return MP_ECORRUPT;
  }
  if (!block_crc_ok(block, mb)) {
    snprintf(why, whylen, "group %u: the leaf fails its checksum", group);
    return MP_ECORRUPT;
  }
  if (mp__get32(block + MP3_LEAF_FREE + 4) != 0) {
    snprintf(why, whylen, "group %u: the leaf's bytes 20..23 are not zero", group);
    return MP_ECORRUPT;
  }
  if (pages > c) {
    snprintf(why, whylen, "group %u: %llu pages asked for, a group holds %llu", group, (unsigned long long)pages,
             (unsigned long long)c);
    return MP_ECORRUPT;
  }
  const uint8_t *bm = block + MP3_LEAF_BITMAP;
  size_t area = mb - 4 - MP3_LEAF_BITMAP, full = (size_t)(pages / 8);
  unsigned rest = (unsigned)(pages % 8);
  if ((rest && bm[full] >> rest) || !mp__all_zero(bm + full + (rest ? 1 : 0), area - full - (rest ? 1 : 0))) {
    snprintf(why, whylen, "group %u: the leaf has bits set past the file's last page", group);
    return MP_ECORRUPT;
  }
  uint64_t free_bits = pages - mp__popcount(bm, pages);
  uint32_t stored = mp__get32(block + MP3_LEAF_FREE);
  if (stored != free_bits) {
    snprintf(why, whylen, "group %u: the leaf's free count is %u but its bitmap has %llu free pages", group, stored,
             (unsigned long long)free_bits);
    return MP_ECORRUPT;
  }
  l->group = group;
  l->generation = mp__get64(block + MP3_LEAF_GEN);
  l->free_count = stored;
  return MP_OK;
}

int mp3__leaf_current(const uint8_t *const slot[2], size_t ps, uint32_t group, uint64_t G, unsigned *cur,
                      unsigned *stale, char *why, size_t whylen) {
  mp3_leaf h[2];
  bool head[2], cand[2];
  *stale = 0;
  for (unsigned s = 0; s < 2; s++) {
    head[s] = mp3__leaf_head(slot[s], group, &h[s]);
    cand[s] = head[s] && h[s].generation <= G;
    if (head[s] && !cand[s]) *stale |= 1u << s;
  }
  if (cand[0] && cand[1] && h[0].generation == h[1].generation) {
    /* No commit writes a slot with the generation of the other: one is G + 1, the other at most G. */
    snprintf(why, whylen, "group %u: both leaf slots hold generation %llu", group, (unsigned long long)h[0].generation);
    return MP_ECORRUPT;
  }
  unsigned first = cand[0] && (!cand[1] || h[0].generation > h[1].generation) ? 0 : 1;
  for (unsigned k = 0; k < 2; k++) {
    unsigned s = k ? !first : first;
    if (cand[s] && mp3__leaf_crc_ok(slot[s], ps)) {
      *cur = s;
      return MP_OK;
    }
  }
  if (!head[0] && !head[1])
    snprintf(why, whylen, "group %u: neither leaf slot holds a leaf of the group", group);
  else if (!cand[0] && !cand[1])
    snprintf(why, whylen, "group %u: both leaf slots are newer than the root (generation %llu)", group,
             (unsigned long long)G);
  else
    snprintf(why, whylen, "group %u: no leaf slot at or below the root's generation %llu passes its checksum", group,
             (unsigned long long)G);
  return MP_ECORRUPT;
}
