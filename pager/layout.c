/* layout.c: encoders, decoders and validators for the on-disk structures, and the
 * resolution of a torn page 0. Pure functions over byte buffers: no I/O, no state. */
#include "layout.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "crc32.h"
#include "mappedpages.h"

uint32_t mp__page_crc(const uint8_t *page, size_t ps) { return mp__crc32(0, page, ps - 4); }

bool mp__page_crc_ok(const uint8_t *page, size_t ps) { return mp__page_crc(page, ps) == mp__get32(page + ps - 4); }

void mp__page_seal(uint8_t *page, size_t ps) { mp__put32(page + ps - 4, mp__page_crc(page, ps)); }

uint32_t mp__section_crc(const uint8_t *page0, size_t ps) {
  return mp__crc32(0, page0 + MP_SECTION_START, ps - 4 - MP_SECTION_START);
}

void mp__sb_init(uint8_t *page0, unsigned log2) {
  size_t ps = (size_t)1 << log2;
  memcpy(page0 + MP_SB_TAG, "MPPG", 4);
  page0[MP_SB_VERSION + 0] = MP_VERSION_MAJOR;
  page0[MP_SB_VERSION + 1] = MP_VERSION_MINOR;
  page0[MP_SB_VERSION + 2] = 0;
  page0[MP_SB_VERSION + 3] = MP_BUILD_MIRRORED;
  mp__put32(page0 + MP_SB_LOG2, log2);
  page0[MP_SB_ACTIVE_META] = 0;
  mp__put32(page0 + MP_SB_META_CRC, MP_CRC_RESIDUE);
  mp__put32(page0 + MP_SB_DIR_COUNT, 0);
  mp__put32(page0 + ps - 4, mp__section_crc(page0, ps));
}

void mp__meta_init(uint8_t *page, size_t ps, uint64_t total) {
  memset(page, 0, ps);
  mp__put64(page + MP_META_TOTAL, total);
  mp__put64(page + MP_META_GEN, 0);
  mp__put64(page + MP_META_FREE, total - MP_RESERVED_PAGES);
  page[MP_META_BITMAP] = 0x07; /* pages 0, 1 and 2 */
  mp__page_seal(page, ps);
}

void mp__dir_init(uint8_t *page, size_t ps) {
  memset(page, 0, ps);
  mp__put32(page + MP_DIR_CAPACITY, mp__dir_cap(ps));
  mp__page_seal(page, ps);
}

int mp__sb_check(const uint8_t *head, size_t len, unsigned *log2, const char **why) {
  if (len < MP_SB_REFS || memcmp(head + MP_SB_TAG, "MPPG", 4) != 0) {
    *why = "no mappedpages superblock (tag MPPG) at the start of the file";
    return MP_ECORRUPT;
  }
  if (head[MP_SB_VERSION] != MP_VERSION_MAJOR || head[MP_SB_VERSION + 1] > MP_VERSION_MINOR) {
    *why = head[MP_SB_VERSION] == 0 && head[MP_SB_VERSION + 1] == 3 ? "format version 0.3 where a 0.2 superblock was expected"
                                                                      : "format version newer than 0.3";
    return MP_EVERSION;
  }
  uint32_t l = mp__get32(head + MP_SB_LOG2);
  if (l < 10 || l > 24) {
    *why = "page size outside 1 KiB .. 16 MiB";
    return l < 10 ? MP_ECORRUPT : MP_EVERSION;
  }
  if (head[MP_SB_ACTIVE_META] > 1) {
    *why = "active metadata selector is neither 0 nor 1";
    return MP_ECORRUPT;
  }
  if (head[13] | head[14] | head[15]) {
    *why = "superblock bytes 13..15 are not zero";
    return MP_ECORRUPT;
  }
  /* The CRC of a whole valid metadata page, its own CRC included, is a constant;
   * any other value is damage, whichever copy is selected. */
  if (mp__get32(head + MP_SB_META_CRC) != MP_CRC_RESIDUE) {
    *why = "superblock meta_checksum is not the checksum of a valid metadata page";
    return MP_ECORRUPT;
  }
  *log2 = l;
  return MP_OK;
}

/* Set bits in n bytes. The build targets no particular x86-64 level, so __builtin_popcountll is
 * a libgcc call of some ten instructions; where the CPU has POPCNT (every x86-64 since about
 * 2008), one instruction a word: a 0.3 open counts every group's bitmap, 32 MiB of them at 2^28
 * pages, and spent a quarter of its time in the libgcc routine. */
static inline __attribute__((always_inline)) uint64_t count_words(const uint8_t *b, size_t n) {
  uint64_t count = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) count += (uint64_t)__builtin_popcountll(mp__get64(b + i));
  for (; i < n; i++) count += (uint64_t)__builtin_popcount(b[i]);
  return count;
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* (count_words inlined here is compiled for POPCNT) */
__attribute__((target("popcnt"))) static uint64_t count_bytes_hw(const uint8_t *b, size_t n) { return count_words(b, n); }
#endif
static uint64_t count_bytes(const uint8_t *b, size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (__builtin_cpu_supports("popcnt")) return count_bytes_hw(b, n);
#endif
  return count_words(b, n);
}

uint64_t mp__popcount(const uint8_t *bm, uint64_t bits) {
  size_t full = (size_t)(bits / 8);
  uint64_t count = count_bytes(bm, full);
  if (bits % 8) count += (uint64_t)__builtin_popcount(bm[full] & ((1u << (bits % 8)) - 1));
  return count;
}

/* Zero bytes compare equal to their neighbours and the first is zero: one memcmp of the range
 * against itself shifted by a byte runs at the vector speed glibc picks for this CPU, where a
 * loop of bytes or words would not (the test runs over most of a page at every open and
 * every reload of a checker's handle). */
bool mp__all_zero(const uint8_t *b, size_t n) { return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0); }

bool mp__meta_valid(const uint8_t *page, size_t ps, uint64_t file_pages, mp_meta_hdr *hdr, char *why,
                    size_t whylen) {
  hdr->crc_ok = mp__page_crc_ok(page, ps);
  if (!hdr->crc_ok) {
    snprintf(why, whylen, "checksum mismatch");
    return false;
  }
  hdr->total = mp__get64(page + MP_META_TOTAL);
  hdr->generation = mp__get64(page + MP_META_GEN);
  hdr->free_count = mp__get64(page + MP_META_FREE);
  if (hdr->total < MP_RESERVED_PAGES || hdr->total > mp__capacity(ps)) {
    snprintf(why, whylen, "page count %llu outside 3 .. %llu", (unsigned long long)hdr->total,
             (unsigned long long)mp__capacity(ps));
    return false;
  }
  if (hdr->total > file_pages) {
    snprintf(why, whylen, "claims %llu pages but the file holds %llu", (unsigned long long)hdr->total,
             (unsigned long long)file_pages);
    return false;
  }
  const uint8_t *bm = page + MP_META_BITMAP;
  if ((bm[0] & 7) != 7) {
    snprintf(why, whylen, "reserved pages 0, 1, 2 not all allocated");
    return false;
  }
  size_t full = (size_t)(hdr->total / 8), area = ps - 4 - MP_META_BITMAP;
  unsigned rest = (unsigned)(hdr->total % 8);
  size_t tail = full + (rest ? 1 : 0);
  if ((rest && (bm[full] >> rest) != 0) || !mp__all_zero(bm + tail, area - tail)) {
    snprintf(why, whylen, "bits set past the page count");
    return false;
  }
  uint64_t used = mp__popcount(bm, hdr->total);
  if (hdr->free_count != hdr->total - used) {
    snprintf(why, whylen, "free count %llu but the bitmap has %llu free pages", (unsigned long long)hdr->free_count,
             (unsigned long long)(hdr->total - used));
    return false;
  }
  return true;
}

void mp__entry_decode(const uint8_t *raw, mp_entry *e) {
  e->in_use = raw[MP_ENTRY_IN_USE] != 0;
  e->page[0] = mp__get64(raw + MP_ENTRY_PAGE_A);
  e->page[1] = mp__get64(raw + MP_ENTRY_PAGE_B);
  e->slot = raw[MP_ENTRY_SLOT] != 0;
  e->generation = mp__get64(raw + MP_ENTRY_GEN);
  e->crc = mp__get32(raw + MP_ENTRY_CRC);
}

void mp__entry_encode(const mp_entry *e, uint8_t *raw) {
  memset(raw, 0, MP_ENTRY_SIZE);
  if (!e->in_use) return; /* a free entry is all zero */
  raw[MP_ENTRY_IN_USE] = 1;
  mp__put64(raw + MP_ENTRY_PAGE_A, e->page[0]);
  mp__put64(raw + MP_ENTRY_PAGE_B, e->page[1]);
  raw[MP_ENTRY_SLOT] = e->slot;
  mp__put64(raw + MP_ENTRY_GEN, e->generation);
  mp__put32(raw + MP_ENTRY_CRC, e->crc);
}

bool mp__dir_valid(const uint8_t *page, size_t ps) {
  return mp__page_crc_ok(page, ps) && mp__get32(page + MP_DIR_CAPACITY) == mp__dir_cap(ps);
}

/* ---- torn page 0 ---------------------------------------------------------- */

/* CRC of the section with the byte at section offset k XORed with 1, from the CRC
 * of the section as it is: CRC-32 is affine, so flipping one bit changes the CRC by
 * a term that depends only on the bit's distance from the end. This keeps the
 * search linear in the number of references whatever the page size. */
static uint32_t crc_with_toggle(uint32_t crc, size_t len, size_t k) {
  static const uint8_t one = 1, zero = 0;
  uint32_t delta = (uint32_t)(crc32(0, &one, 1) ^ crc32(0, &zero, 1));
  uLong op = crc32_combine_gen((z_off_t)(len - k - 1));
  return crc ^ (uint32_t)crc32_combine_op(delta, 0, op);
}

int mp__p0_resolve(const uint8_t *found, size_t ps, uint8_t *out, mp_p0_fix *fix, const char **why) {
  const uint32_t max = mp__max_refs(ps), stored = mp__get32(found + ps - 4);
  const uint32_t dc = mp__get32(found + MP_SB_DIR_COUNT);
  const size_t end = ps - 4, len = end - MP_SECTION_START;
  const uint32_t crc = mp__section_crc(found, ps);
  memset(fix, 0, sizeof *fix);
  memcpy(out, found, ps);
  if (dc <= max && crc == stored) return MP_OK;

  /* Count the candidates whose CRC matches; remember the last one. */
  int matches = 0;
  enum mp_p0_how how = MP_P0_ASIS;
  uint32_t ref = 0;
  if (dc <= max) {
    for (uint32_t i = 0; i < dc; i++) {
      size_t at = MP_SB_REFS + (size_t)MP_REF_SIZE * i + MP_REF_ACTIVE;
      if (found[at] > 1) continue;
      if (crc_with_toggle(crc, len, at - MP_SECTION_START) == stored) {
        matches++;
        how = MP_P0_TOGGLE;
        ref = i;
      }
    }
    size_t pad = MP_SB_REFS + (size_t)MP_REF_SIZE * dc;
    if (!mp__all_zero(found + pad, end - pad)) {
      memset(out + pad, 0, end - pad);
      if (mp__section_crc(out, ps) == stored) {
        matches++;
        how = MP_P0_DROP_INTENT;
      }
      memcpy(out + pad, found + pad, end - pad);
    }
    if (dc + 1 <= max) {
      mp__put32(out + MP_SB_DIR_COUNT, dc + 1);
      if (mp__section_crc(out, ps) == stored) {
        matches++;
        how = MP_P0_REDO_APPEND;
      }
      mp__put32(out + MP_SB_DIR_COUNT, dc);
    }
  }
  if (dc >= 1 && dc - 1 <= max) {
    size_t slot = MP_SB_REFS + (size_t)MP_REF_SIZE * (dc - 1);
    mp__put32(out + MP_SB_DIR_COUNT, dc - 1);
    memset(out + slot, 0, end - slot);
    if (mp__section_crc(out, ps) == stored) {
      matches++;
      how = MP_P0_UNDO_APPEND;
    }
    memcpy(out, found, ps);
  }

  if (matches == 0 && dc == 0) {
    /* A stale CRC over an empty section (see layout.h for why this and no more). */
    if (!mp__all_zero(found + MP_SB_REFS, end - MP_SB_REFS)) {
      *why = "page 0 lists no directory blocks, yet holds reference bytes that its checksum does not vouch for";
      return MP_ECORRUPT;
    }
    fix->how = MP_P0_RESEAL;
    mp__put32(out + end, crc);
    return MP_OK;
  }
  if (matches != 1) {
    *why = matches == 0 ? "directory-reference section of page 0 fails its checksum"
                        : "directory-reference section of page 0 is ambiguous after a torn write";
    return MP_ECORRUPT;
  }

  /* Rebuild the accepted candidate. */
  fix->how = how;
  fix->ref = ref;
  size_t intent_at = 0;
  switch (how) {
    case MP_P0_ASIS:
    case MP_P0_RESEAL: /* (returned above) */
      break;
    case MP_P0_TOGGLE:
      out[MP_SB_REFS + (size_t)MP_REF_SIZE * ref + MP_REF_ACTIVE] ^= 1;
      break;
    case MP_P0_REDO_APPEND:
      mp__put32(out + MP_SB_DIR_COUNT, dc + 1);
      break;
    case MP_P0_DROP_INTENT:
      intent_at = MP_SB_REFS + (size_t)MP_REF_SIZE * dc;
      break;
    case MP_P0_UNDO_APPEND:
      mp__put32(out + MP_SB_DIR_COUNT, dc - 1);
      intent_at = MP_SB_REFS + (size_t)MP_REF_SIZE * (dc - 1);
      break;
  }
  if (intent_at) {
    if (intent_at + MP_REF_SIZE <= end) {
      fix->intent = true;
      fix->intent_pages[0] = mp__get64(found + intent_at);
      fix->intent_pages[1] = mp__get64(found + intent_at + 8);
    }
    memset(out + intent_at, 0, end - intent_at);
  }
  return MP_OK;
}

uint64_t mp__leftover_mismatch(const uint8_t *buf, const uint8_t *img, uint64_t from, uint64_t size) {
  for (uint64_t i = from; i < size;) {
    uint64_t b, m;
    if (i % 8 == 0 && i + 8 <= size) { /* a word of zeros, or of the image's bytes: all pass */
      memcpy(&b, buf + i, 8);
      memcpy(&m, img + i, 8);
      if (b == 0 || b == m) {
        i += 8;
        continue;
      }
    }
    if (buf[i] != 0 && buf[i] != img[i]) return i;
    i++;
  }
  return size;
}
