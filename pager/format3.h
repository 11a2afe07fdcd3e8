/* format3.h: the 0.3 on-disk structures (FORMAT.md section 3) byte by byte: metadata-block
 * geometry, leaves, roots and the superblock; encoders, and decoders that trust no field. */
#ifndef MP_FORMAT3_H
#define MP_FORMAT3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MP3_VERSION_MINOR 3
#define MP3_BUILD 1
/* 0.3 assumes sectors of at most this many bytes: every metadata structure sits alone in
 * a block at least this large, so a garbage sector never reaches a neighbour (3.2). */
#define MP3_SECTOR 4096u
#define MP3_MAX_PAGES (UINT64_C(1) << 32)
/* Metadata blocks of a file created as 0.3 (3.5): the superblock, roots R0 and R1, group 0's
 * leaf slots A and B, then one block for data. */
#define MP3_NEW_BLOCKS 6

/* Superblock: the first 512 bytes of page 0. */
#define MP3_SB_FLAGS 12
#define MP3_SB_ROOT 16         /* R0, then R1 at 24 */
#define MP3_SB_LEAF0 32        /* group 0's slot A, then slot B at 40 */
#define MP3_SB_GROUP 48
#define MP3_SB_COPY 56         /* page of the sector copy (3.8), 0 for none */
#define MP3_SB_CRC 508
#define MP3_SB_LEN 512
#define MP3_SB_SPARSE 0x1u     /* flags bit 0: the file grows with ftruncate (3.7) */
#define MP3_SB_PAGE3 0x2u      /* flags bit 1: page 3 is a regular page (upgraded at 1 KiB, 3.8) */

/* The sector copy (3.8): what a garbage write of page 0's first 4 KiB would take, in a
 * metadata block of its own, self-identifying so that it is found without page 0. */
#define MP3_COPY_LOG2 4
#define MP3_COPY_PAGE 8        /* its own page: a copy of it elsewhere is no copy */
#define MP3_COPY_SB 16         /* the superblock sector, MP3_SB_LEN bytes */
#define MP3_COPY_DATA 528      /* page 3 at 1 KiB pages with MP3_SB_PAGE3, else zero */

/* Root slots. */
#define MP3_ROOT_SLOT 4
#define MP3_ROOT_LOG2 5
#define MP3_ROOT_GEN 8
#define MP3_ROOT_TOTAL 16
#define MP3_ROOT_FREE 24
#define MP3_ROOT_DIR_COUNT 32
#define MP3_ROOT_REFS 40
#define MP3_REF_SIZE 17

/* Leaf slots. */
#define MP3_LEAF_GROUP 4
#define MP3_LEAF_GEN 8
#define MP3_LEAF_FREE 16
#define MP3_LEAF_BITMAP 24     /* also the header's length: what open reads of a slot it does not use */

/* Metadata block size, pages per block, pages per group, directory references per root. */
static inline size_t mp3__mb(size_t ps) { return ps > MP3_SECTOR ? ps : MP3_SECTOR; }
static inline uint64_t mp3__m(size_t ps) { return mp3__mb(ps) / ps; }
static inline uint64_t mp3__group_pages(size_t ps) { return (uint64_t)(mp3__mb(ps) - 28) * 8; }
static inline uint32_t mp3__max_refs(size_t ps) { return (uint32_t)((mp3__mb(ps) - 44) / MP3_REF_SIZE); }

typedef struct mp3_sb {
  unsigned log2;
  uint32_t flags;
  uint64_t root[2];  /* first page of root slots R0, R1 */
  uint64_t leaf0[2]; /* first page of group 0's leaf slots A, B */
  uint64_t copy;     /* first page of the sector copy's block, 0 for none */
} mp3_sb;

typedef struct mp3_root {
  unsigned slot;
  uint64_t generation, total, free_count;
  uint32_t dir_count;
} mp3_root;

typedef struct mp3_leaf {
  uint32_t group;
  uint64_t generation;
  uint32_t free_count;
} mp3_leaf;

/* Whether the first bytes of a file say 0.3 (tag MPPG, version 0.3): the caller then
 * decodes the superblock with mp3__sb_decode, which refuses everything else. */
bool mp3__is_v3(const uint8_t *head, size_t len);

/* Writes the superblock sector (MP3_SB_LEN bytes: tag, version 0.3.0.1, fields, CRC). */
void mp3__sb_encode(const mp3_sb *sb, uint8_t *out);
/* MP_OK, MP_EVERSION (a 0.3 this library does not read: newer patch, page size above
 * 16 MiB) or MP_ECORRUPT, with a reason. Checks every field but the pages' place inside
 * the file, which needs the root (open.c does it). */
int mp3__sb_decode(const uint8_t *head, size_t len, mp3_sb *sb, char *why, size_t whylen);

/* Writes the sector copy's block (mb bytes) at page `page`: the superblock sector `sb`, and
 * `data` (page 3, ps bytes) when not NULL. */
void mp3__copy_encode(uint8_t *block, size_t ps, uint64_t page, const uint8_t *sb, const uint8_t *data);
/* Whether `block`, read at page `page` of a file of 2^log2-byte pages, is a sector copy written
 * there: magic, page size, its own page, CRC, and a superblock in it that names it. */
bool mp3__copy_valid(const uint8_t *block, unsigned log2, uint64_t page);

/* Writes a root block (mb bytes): the header fields of r, dir_count references copied
 * from refs (MP3_REF_SIZE bytes each, 0.2's layout), zeros, CRC. */
void mp3__root_encode(const mp3_root *r, unsigned log2, const uint8_t *refs, uint8_t *block);
/* The root's first MP3_ROOT_REFS bytes alone (magic, slot, page size, counts, zeros). */
void mp3__root_head(const mp3_root *r, unsigned log2, uint8_t out[MP3_ROOT_REFS]);
/* Validates the root block of slot `slot` for pages of 2^log2 bytes: magic, slot number,
 * page size, CRC, zero bytes, the generation's parity, the counts and every reference. */
int mp3__root_decode(const uint8_t *block, unsigned log2, unsigned slot, mp3_root *r, char *why, size_t whylen);
static inline const uint8_t *mp3__root_ref(const uint8_t *block, uint32_t i) {
  return block + MP3_ROOT_REFS + (size_t)MP3_REF_SIZE * i;
}


/* A leaf slot's MP3_LEAF_BITMAP bytes of header alone (inline: every commit writes one). */
static inline void mp3__put_le(uint8_t *out, uint64_t v, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(out, &v, n); /* (one store where n is a constant) */
#else
  for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(v >> (8 * i));
#endif
}
static inline void mp3__leaf_head_encode(uint8_t *out, uint32_t group, uint64_t generation, uint32_t free_count) {
  memcpy(out, "MPL3", 4);
  mp3__put_le(out + MP3_LEAF_GROUP, group, 4);
  mp3__put_le(out + MP3_LEAF_GEN, generation, 8);
  mp3__put_le(out + MP3_LEAF_FREE, free_count, 4);
  mp3__put_le(out + MP3_LEAF_FREE + 4, 0, 4);
}
/* Writes a leaf slot's header and CRC around the bitmap already in the block. */
void mp3__leaf_seal(uint8_t *block, size_t ps, uint32_t group, uint64_t generation, uint32_t free_count);
/* The 24-byte header alone: true when the magic and the group index are right (*l set). */
bool mp3__leaf_head(const uint8_t *block, uint32_t group, mp3_leaf *l);
bool mp3__leaf_crc_ok(const uint8_t *block, size_t ps);
/* A whole leaf slot of group `group`, whose group holds `pages` pages of the file: header,
 * CRC, zero bytes, no bit past `pages`, and a free count equal to the bitmap's. */
int mp3__leaf_decode(const uint8_t *block, size_t ps, uint32_t group, uint64_t pages, mp3_leaf *l, char *why,
                     size_t whylen);
/* Which slot of a group is current under root generation G (3.3): the valid one (magic,
 * group, CRC) with the highest generation at most G; CRCs are computed only as needed.
 * *stale gets a bit per slot whose header (magic, group) claims a generation above G: an
 * interrupted commit's, which a writer invalidates. MP_ECORRUPT with a reason if none. */
int mp3__leaf_current(const uint8_t *const slot[2], size_t ps, uint32_t group, uint64_t G, unsigned *cur,
                      unsigned *stale, char *why, size_t whylen);


#endif
