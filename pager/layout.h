/* layout.h: the mappedpages 0.2 on-disk format (FORMAT.md), byte by byte: offsets,
 * little-endian access, checksums, and the pure decoders that validate each structure. */
#ifndef MP_LAYOUT_H
#define MP_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Page 0: superblock, then the directory-reference section. */
#define MP_SB_TAG 0
#define MP_SB_VERSION 4        /* major, minor, patch, build */
#define MP_SB_LOG2 8
#define MP_SB_ACTIVE_META 12
#define MP_SB_META_CRC 16
#define MP_SB_DIR_COUNT 20
#define MP_SB_REFS 24
#define MP_REF_SIZE 17         /* page_a u64, page_b u64, active u8 */
#define MP_REF_ACTIVE 16
#define MP_SECTION_START 20    /* the section CRC covers [20, ps - 4) */

#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 2
/* The build byte, which the reference never checks, marks files written by this
 * library: it keeps every inactive directory copy equal to the current one in
 * allocation fields between operations, so recovery may read a difference as an
 * interrupted operation and reclaim the pages it left allocated. */
#define MP_BUILD_MIRRORED 1

/* Pages 1 and 2: metadata A and B. */
#define MP_META_TOTAL 0
#define MP_META_GEN 8
#define MP_META_FREE 16
#define MP_META_BITMAP 24
#define MP_RESERVED_PAGES 3

/* Directory pages. */
#define MP_DIR_CAPACITY 0
#define MP_DIR_ENTRIES 8
#define MP_ENTRY_SIZE 30
#define MP_ENTRY_IN_USE 0
#define MP_ENTRY_PAGE_A 1
#define MP_ENTRY_PAGE_B 9
#define MP_ENTRY_SLOT 17
#define MP_ENTRY_GEN 18
#define MP_ENTRY_CRC 26

/* CRC-32 of any block followed by its own little-endian CRC: the superblock's
 * meta_checksum (CRC of the whole metadata page, trailer included) always has
 * this value for a valid page, so flipping the active copy changes one byte. */
#define MP_CRC_RESIDUE 0x2144DF1Cu

static inline uint32_t mp__get32(const uint8_t *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t mp__get64(const uint8_t *b) { return mp__get32(b) | (uint64_t)mp__get32(b + 4) << 32; }
static inline void mp__put32(uint8_t *b, uint32_t v) {
  b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); b[2] = (uint8_t)(v >> 16); b[3] = (uint8_t)(v >> 24);
}
static inline void mp__put64(uint8_t *b, uint64_t v) { mp__put32(b, (uint32_t)v); mp__put32(b + 4, (uint32_t)(v >> 32)); }

static inline uint64_t mp__capacity(size_t ps) { return (uint64_t)(ps - 28) * 8; }
static inline uint32_t mp__max_refs(size_t ps) { return (uint32_t)((ps - 28) / MP_REF_SIZE); }
static inline uint32_t mp__dir_cap(size_t ps) { return (uint32_t)((ps - 12) / MP_ENTRY_SIZE); }

/* Trailing CRC of a metadata or directory page: over [0, ps - 4). */
uint32_t mp__page_crc(const uint8_t *page, size_t ps);
bool mp__page_crc_ok(const uint8_t *page, size_t ps);
void mp__page_seal(uint8_t *page, size_t ps);
uint32_t mp__section_crc(const uint8_t *page0, size_t ps);

/* Writes a superblock for a new, empty file into page 0 (ps bytes, zeroed). */
void mp__sb_init(uint8_t *page0, unsigned log2);
/* Writes the metadata page of a new file of `total` pages (ps bytes, zeroed). */
void mp__meta_init(uint8_t *page, size_t ps, uint64_t total);
/* Writes an empty directory page (ps bytes). */
void mp__dir_init(uint8_t *page, size_t ps);

/* Superblock fields that need no other page. Returns an MP_E* code and a reason. */
int mp__sb_check(const uint8_t *head, size_t len, unsigned *log2, const char **why);

typedef struct mp_meta_hdr {
  uint64_t total, generation, free_count;
  bool crc_ok; /* the page's own checksum matched (the rest may still be invalid) */
} mp_meta_hdr;
/* Validates a whole metadata page: CRC, page count within [3, capacity] and
 * within the pages the file holds, reserved pages allocated, no bit past the
 * page count, free count equal to the bitmap. */
bool mp__all_zero(const uint8_t *b, size_t n);
/* The set bits among the first `bits` bits of bm (bit k is bit k % 8 of byte k / 8). */
uint64_t mp__popcount(const uint8_t *bm, uint64_t bits);
bool mp__meta_valid(const uint8_t *page, size_t ps, uint64_t file_pages, mp_meta_hdr *hdr,
                    char *why, size_t whylen);

typedef struct mp_entry {
  bool in_use;
  uint64_t page[2];
  uint8_t slot; /* 0: page[0] holds the committed content, 1: page[1] */
  uint64_t generation;
  uint32_t crc;
} mp_entry;
void mp__entry_decode(const uint8_t *raw, mp_entry *e);
void mp__entry_encode(const mp_entry *e, uint8_t *raw);
static inline uint8_t *mp__entry_at(uint8_t *dirpage, uint32_t e) { return dirpage + MP_DIR_ENTRIES + (size_t)MP_ENTRY_SIZE * e; }
static inline const uint8_t *mp__entry_at_c(const uint8_t *dirpage, uint32_t e) {
  return dirpage + MP_DIR_ENTRIES + (size_t)MP_ENTRY_SIZE * e;
}
/* Whether entry e is in use, without decoding it: most of a block's entries are free, and
 * loads and checks walk all of them. */
static inline bool mp__entry_used(const uint8_t *dirpage, uint32_t e) {
  return mp__entry_at_c(dirpage, e)[MP_ENTRY_IN_USE] != 0;
}
bool mp__dir_valid(const uint8_t *page, size_t ps);

/* Page 0 after a torn write. Every rewrite of page 0 by this library carries one
 * logical change: a selector flip (one byte, plus the section CRC for directory
 * references), a reference written into the padding past dir_count with the CRC
 * left as it was (an intent), or dir_count + 1 with the CRC. When the section CRC
 * does not match, the few byte patterns the previous or next version can have are
 * tried, and the one whose CRC matches is accepted.
 *
 * The section CRC is the only record of what an append intends, so it must be
 * right before the first append, at dir_count 0 as well (where FORMAT.md does not
 * check it, and where another writer, or a create cut between the sectors of
 * page 0, may leave it stale). At dir_count 0 with a CRC that no candidate explains:
 * - an all-zero section (no reference, no padding bytes) is accepted, with the CRC
 *   of the empty section in place of the stale one (MP_P0_RESEAL). Nothing is lost:
 *   that CRC is a constant of the page size, and no reference depends on it. A
 *   writer's open rewrites those four bytes alone (one sector: a torn repair leaves
 *   the stale CRC, resolved the same way again, or the right one), before any
 *   append can rely on it; mp_check reports the stale CRC of a file not yet repaired.
 * - any byte past dir_count is refused: it is a reference that no checksum
 *   vouches for. Taking it for an append's intent would free pages on the strength
 *   of their shape; ignoring it would leave an append's pages looking like regular
 *   pages (and would hand the next append a section whose torn write nothing can
 *   explain). This library never writes such a page 0: its appends start from a
 *   right CRC (create writes the CRC before the superblock, open repairs it). */
enum mp_p0_how {
  MP_P0_ASIS,        /* the CRC matched as found */
  MP_P0_TOGGLE,      /* one reference's selector byte was torn from its CRC */
  MP_P0_UNDO_APPEND, /* dir_count + 1 reached the disk, its CRC did not */
  MP_P0_REDO_APPEND, /* the CRC of dir_count + 1 reached the disk, the count did not */
  MP_P0_DROP_INTENT, /* a reference written past dir_count without a CRC */
  MP_P0_RESEAL       /* dir_count 0, the section all zero, the CRC stale: the empty section's CRC is used */
};
typedef struct mp_p0_fix {
  enum mp_p0_how how;
  uint32_t ref;              /* MP_P0_TOGGLE: which reference */
  bool intent;               /* reference-shaped bytes were discarded: */
  uint64_t intent_pages[2];  /* their page_a and page_b */
} mp_p0_fix;
/* Copies page 0 into `out` (ps bytes) in the accepted form. Returns MP_OK, or
 * MP_ECORRUPT with a reason when no candidate (or more than one) matches. */
int mp__p0_resolve(const uint8_t *found, size_t ps, uint8_t *out, mp_p0_fix *fix, const char **why);

#endif
