/* internal.h: the pager's in-memory state and the functions its source files share.
 * Nothing here is part of the public API (see mappedpages.h). */
#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crc32.h"
#include "format3.h"
#include "layout.h"
#include "mappedpages.h"

/* Bitmap words a 0.2 metadata commit patches at most (commit.c, "patching"): an alloc or free
 * changes one, a protected operation two or three, a bulk call more (written whole). */
#define MP_META_PATCH_MAX 4

/* One directory block: an A/B pair of directory pages referenced from page 0. */
typedef struct mp_block {
  uint64_t page[2];  /* physical pages of copy A and copy B */
  uint8_t active;    /* which copy is current */
  uint32_t used;     /* in-use entries in the current copy */
  uint64_t *staged;  /* one bit per entry: a write is staged in the inactive slot */
  bool needs_mirror; /* the inactive copy may differ in allocation fields (see commit.c) */
} mp_block;

/* One group of a 0.3 file (FORMAT.md 3.9): which leaf slot is current, the group's free
 * pages (as that slot says) and the bit where the next search in it starts. */
typedef struct mp3_group {
  uint32_t free;
  uint32_t hint;
  uint8_t cur;
} mp3_group;

/* A group whose current slot this handle sealed itself, with the CRC it computed, and whose
 * other slot's bitmap is the current one's but for the 64-bit words listed: the previous
 * generation, which that commit changed in those words only (commit3.c, "patching"). */
#define MP3_EDITS 4
#define MP3_RECENT 8
typedef struct mp3_recent {
  bool used;
  uint8_t n_word;
  uint32_t crc;
  uint64_t group;
  uint32_t word[MP3_EDITS];
} mp3_recent;

/* What a handle of a 0.3 file keeps (open3.c loads it, commit3.c changes it). The bitmaps
 * are read through the mapping, from each group's current slot. */
typedef struct mp3_state {
  mp3_sb sb;
  bool from_copy; /* the superblock was read from its sector copy (a garbage head, 3.8) */
  size_t mb;           /* metadata block, bytes */
  uint64_t m, c;       /* pages per metadata block, pages per group */
  uint64_t groups;     /* ceil(total / c) */
  size_t groups_cap;   /* room in group and has_free, in groups */
  mp3_group *group;
  uint64_t *has_free;  /* a bit per group with a free page */
  uint64_t cursor;     /* the group where the next allocation starts looking */
  /* Leaf slots a failed commit staged, whose magic was zeroed in the mapping and must reach
   * the disk before the next commit: else a root of the same generation would make them current. */
  uint64_t *unstage;
  size_t unstage_n, unstage_cap;
  /* Every page of the blocks that directory blocks and protected pages own, sorted: not a
   * bitmap of the file, whose size would follow the file's (3.9). */
  uint64_t *owned;
  size_t owned_n, owned_cap;
  /* What a commit needs to write a leaf or root from the one it knows instead of whole
   * (commit3.c): the groups of the last commits, which root slots this handle wrote itself and
   * their CRCs, the powers of x that patch a block's CRC (built once a root of the handle's
   * stands, for blocks up to 64 KiB), and room for a root's directory references. */
  mp3_recent recent[MP3_RECENT];
  unsigned recent_next;
  bool root_ours[2];
  uint32_t root_crc[2];
  mp_crc_patch patch;
  uint8_t *refs;
  /* A writer's, per group: 1 + its place in the list of the commit under construction, 0 when
   * not staged (staged_cap groups; a reader's handle has none) */
  uint32_t *staged;
  size_t staged_cap;
  /* Tests: whole = true makes every commit copy, count and checksum its blocks whole, as
   * before patching (the bytes written must not differ); `work` counts that whole-block work. */
  bool whole;
  struct {
    uint64_t copied;  /* leaf bytes copied whole from the current slot */
    uint64_t summed;  /* bytes checksummed whole, leaves and roots */
    uint64_t counted; /* bitmap bits counted for a free count */
  } work;
} mp3_state;

struct mp_pager {
  int fd;
  bool rdonly;
  bool fmt3;       /* the file is 0.3 (FORMAT.md section 3): v3 holds its state */
  bool upgrade;    /* MP_FORMAT_3 on a writer's open: a 0.2 file that outgrows 0.2 becomes 0.3 */
  mp3_state *v3;
  bool sparse;     /* MP_SPARSE: growth by ftruncate, pages the pager writes reserved first */
  bool preview;    /* MP_PREVIEW: a MAP_PRIVATE mapping that recovery writes; msync does nothing */
  bool preview_wrote; /* ... and its recovery wrote to it: */
  bool pv_all;        /* every page counts as written (pagemap could not tell), */
  uint64_t *pv_written; /* or these pages, one bit each (pv_words words) */
  size_t pv_words;
  int pagemap;        /* /proc/self/pagemap, opened when a preview first needs it (else -1) */
  bool no_scan;       /* its PAGEMAP_SCAN failed (a kernel before 6.7): entries are read */
  /* An MP_RDONLY handle's copy of the pages its last load read (page 0, the metadata,
   * the directory): a reload that finds them unchanged keeps what it derived. */
  uint64_t *memo_ids;
  uint8_t *memo;
  size_t memo_n;        /* pages held (0: nothing kept) */
  size_t memo_ids_cap;  /* room in memo_ids, in ids */
  size_t memo_bytes;    /* room in memo, in bytes (the page size may change at a reload) */
  bool basis_watched;   /* MP_BASIS_WATCHED: memo_ids kept, memo (the bytes) never */
  bool reloaded;        /* mp_reload was called: the copies start being kept then */
  bool poisoned;   /* the durable state is uncertain after a failed commit point */
  bool ours;       /* the file carries MP_BUILD_MIRRORED: inactive copies are intents */
  bool salvaged;   /* page 0's first sector was garbage: page 0 was rebuilt (salvage.c) */
  unsigned recovery; /* MP_RECOVER_* bits: what a writer's open does (or did) */
  unsigned log2;
  size_t ps;
  size_t sys_page;    /* msync works on whole system pages */
  uint64_t capacity;  /* most pages one bitmap page describes */
  uint32_t max_refs;  /* directory references that fit in page 0 */
  uint32_t dir_cap;   /* entries per directory page */

  uint8_t *map;       /* MAP_SHARED mapping of map_pages pages */
  const uint8_t *view; /* MP_PREVIEW: a read-only MAP_SHARED mapping of the same pages (the
                        * file's bytes, where map holds private copies) */
  uint64_t map_pages;
  uint64_t file_size; /* bytes, as last extended or read */

  /* Committed metadata. The bitmap itself is read from the active metadata page
   * in the mapping, which is never written while it is active. */
  uint64_t total, generation, free_count;
  unsigned active_meta;
  /* Patching the inactive metadata copy instead of writing it whole (commit.c, "patching"):
   * how many of the last commits this handle made in a row (0 after a load or a failed one,
   * 1, 2: then both copies are its own, the inactive one the generation before the active),
   * the bitmap words the last one changed (their byte offsets in the page; meta_last_n past
   * MP_META_PATCH_MAX: more), and the CRC tables. */
  unsigned meta_ours;
  unsigned meta_last_n;
  uint32_t meta_last[MP_META_PATCH_MAX];
  mp_crc_patch meta_patch;
  /* Page 0's section CRC patched too (mp__dir_flip): true while the stored CRC is known to
   * be the section's (this handle sealed it, and no append intent has been written since),
   * and the tables for the section's length. */
  bool p0_sealed;
  mp_crc_patch p0_patch;
  /* Tests: meta_whole = true checksums every metadata copy, directory page and page-0 section
   * whole, as before patching (the bytes written must not differ); meta_summed counts the
   * bytes of those checksummed whole. */
  bool meta_whole;
  uint64_t meta_summed;
  uint64_t hint_word;  /* where the next free-page scan starts, in 64-bit words */

  /* Pages owned by directory blocks or protected pages (not regular pages), and
   * allocated pages that nothing owns and a pending commit will free. Both hold
   * `words` 64-bit words. */
  uint64_t *owned;
  uint64_t *reclaim;
  uint64_t reclaim_count;
  uint64_t previewed_reclaim; /* MP_PREVIEW: pages its recovery reclaimed in memory */
  size_t words;

  uint32_t dir_count;
  uint32_t blocks_cap;
  bool intent_pending; /* page 0's padding holds an append intent to clear after reclaiming */
  mp_block *blocks;
};

/* ---- system calls with fault points (sys.c) ---- */
int mp__sys_msync(mp_pager *p, uint64_t first_page, uint64_t pages);
int mp__sys_extend(mp_pager *p, uint64_t new_size);
int mp__sys_remap(mp_pager *p, uint64_t new_pages);
int mp__sys_back(mp_pager *p, const uint64_t *ids, size_t n);
/* ioctl(pagemap, request, arg) for PAGEMAP_SCAN (a preview's written pages, open.c). */
long mp__sys_pagemap_scan(int pagemap, unsigned long request, void *arg);
int mp__errno_to_code(int err);
void *mp__malloc(size_t n);
void *mp__calloc(size_t n, size_t size);
void *mp__realloc(void *ptr, size_t n);
/* Sorts n page numbers ascending (sort.c). */
void mp__sort_u64(uint64_t *a, size_t n);

/* ---- bits ---- */
static inline bool mp__bit(const uint64_t *words, uint64_t id) { return words[id >> 6] >> (id & 63) & 1; }
static inline void mp__set(uint64_t *words, uint64_t id) { words[id >> 6] |= UINT64_C(1) << (id & 63); }
static inline void mp__clear(uint64_t *words, uint64_t id) { words[id >> 6] &= ~(UINT64_C(1) << (id & 63)); }

static inline uint8_t *mp__pg(const mp_pager *p, uint64_t id) { return p->map + id * p->ps; }
static inline const uint8_t *mp__active_meta(const mp_pager *p) { return mp__pg(p, 1 + p->active_meta); }
bool mp__allocated(const mp_pager *p, uint64_t id);

/* ---- commits (commit.c) ---- */
/* A metadata change under construction in the inactive metadata page. */
typedef struct mp_meta_txn {
  uint64_t total;
  uint64_t free_count;
  unsigned ours;  /* the handle's meta_ours when it began */
  unsigned n;     /* bitmap words changed so far (past MP_META_PATCH_MAX: more) */
  uint32_t words[MP_META_PATCH_MAX]; /* ... their byte offsets in the page */
} mp_meta_txn;
int mp__meta_begin(mp_pager *p, uint64_t new_total, mp_meta_txn *txn);
void mp__meta_set(mp_pager *p, mp_meta_txn *txn, uint64_t id, bool allocated);
int mp__meta_commit(mp_pager *p, mp_meta_txn *txn);
/* Makes the file and the mapping hold at least `pages` pages (no commit). */
int mp__ensure_pages(mp_pager *p, uint64_t pages);
/* Finds n free pages (growing the mapping if needed) without committing. */
int mp__find_free(mp_pager *p, size_t n, uint64_t *ids, uint64_t *new_total);

/* Writes the next version of block b's directory page (the inactive copy) from
 * the current copy, with entry e replaced, and makes it durable, in one msync with
 * page `with` unless that is MP_NO_PAGE (a protected write's copy: see commit.c). */
#define MP_NO_PAGE UINT64_MAX
int mp__dir_stage(mp_pager *p, uint32_t b, uint32_t e, const uint8_t entry[MP_ENTRY_SIZE], uint64_t with);
/* Makes the staged copy of block b current: one selector flip in page 0. */
int mp__dir_flip(mp_pager *p, uint32_t b);
int mp__dir_mirror(mp_pager *p, uint32_t b);
/* Appends a directory block whose pages are already allocated and written. */
int mp__dir_append_intent(mp_pager *p, uint64_t page_a, uint64_t page_b);
int mp__dir_append_commit(mp_pager *p);
int mp__dir_append_cancel(mp_pager *p);
int mp__blocks_reserve(mp_pager *p, uint32_t n);
/* Runs work an earlier call left pending (reclaims, mirrors); every mutating call
 * starts with it. */
int mp__settle(mp_pager *p);
int mp__writable(mp_pager *p);
/* Grows the owned/reclaim word arrays to cover `pages`. */
int mp__words_reserve(mp_pager *p, uint64_t pages);

/* ---- a garbage first sector of page 0 (salvage.c) ----
 * Whether a head that fails the superblock check is one salvage tries (no tag: the
 * first sector is presumed garbage); the page size the metadata copies give; and page 0
 * rebuilt, as it stood before or after the torn write, from the mapping of a handle whose
 * geometry that page size set. Both refuse with MP_ECORRUPT and a sentence of what was lost. */
bool mp__salvageable_head(const uint8_t *head);
int mp__salvage_geometry(int fd, uint64_t size, unsigned *log2, char *why, size_t whylen);
int mp__salvage(const mp_pager *p, uint8_t *out, bool *ours, char *why, size_t whylen);

/* ---- the 0.3 format (open3.c, check3.c, commit3.c) ---- */
/* Geometry from the superblock sector of a 0.3 file (`head`, len bytes). */
int mp3__probe(const uint8_t *head, size_t len, unsigned *log2, char *why, size_t whylen);
/* Writes a new, empty 0.3 file on an empty descriptor (FORMAT.md 3.5). */
int mp3__format(int fd, unsigned log2, bool sparse);
/* Whether the file holds nothing but what an interrupted mp3__format wrote. */
bool mp3__is_leftover(int fd, uint64_t size);
/* The first i in [from, size) where buf[i] is neither 0 nor img[i] (size if none): what a
 * create's leftover may not hold (open.c, open3.c). */
uint64_t mp__leftover_mismatch(const uint8_t *buf, const uint8_t *img, uint64_t from, uint64_t size);
/* Loads the mapping of a 0.3 file into *p; a writer invalidates stale leaf slots (3.3). */
int mp3__load(mp_pager *p, char *why, size_t whylen);
void mp3__unload(mp_pager *p);
/* The pages a reader's mp3__load read, into `ids` (NULL: counted only); how many. */
size_t mp3__basis(const mp_pager *p, uint64_t *ids);
int mp3__check(mp_pager *p, unsigned flags, mp_report_fn report, void *arg, unsigned *findings);
/* First page of leaf slot s of group k (inline: a commit takes several); the current slot's
 * bitmap. */
static inline uint64_t mp3__slot_page(const mp_pager *p, uint64_t k, unsigned s) {
  return k ? k * p->v3->c + s * p->v3->m : p->v3->sb.leaf0[s];
}
static inline uint8_t *mp3__slot(const mp_pager *p, uint64_t k, unsigned s) { return mp__pg(p, mp3__slot_page(p, k, s)); }
static inline const uint8_t *mp3__bitmap(const mp_pager *p, uint64_t k) {
  return mp3__slot(p, k, p->v3->group[k].cur) + MP3_LEAF_BITMAP;
}
static inline uint64_t mp3__group_size(const mp_pager *p, uint64_t k) {
  uint64_t first = k * p->v3->c;
  return p->total - first < p->v3->c ? p->total - first : p->v3->c;
}
bool mp3__allocated(const mp_pager *p, uint64_t id);
/* Whether page id belongs to a metadata block: the superblock's, a root's, a leaf slot's. */
bool mp3__meta_page(const mp_pager *p, uint64_t id);
/* Room for `groups` groups in the handle's per-group arrays (new ones zeroed). */
int mp3__groups_reserve(mp_pager *p, uint64_t groups);
/* The owned-page list: membership, room for n more, a run of pages added or removed. */
bool mp3__owned(const mp_pager *p, uint64_t id);
int mp3__own_reserve(mp_pager *p, size_t n);
void mp3__own(mp_pager *p, uint64_t first, uint64_t n);
void mp3__disown(mp_pager *p, uint64_t first, uint64_t n);
/* Protected pages of a 0.3 file: one commit each (3.6). Entry (b, e) is in use (ent). */
int mp3__protected_alloc(mp_pager *p, uint64_t *id);
int mp3__protected_free(mp_pager *p, uint32_t b, uint32_t e, const mp_entry *ent);
int mp3__protected_commit(mp_pager *p, uint32_t b, uint32_t e, const mp_entry *ent);
/* Word w of the regular-page set (as mp_regular_bits gives it). */
uint64_t mp3__regular_word(const mp_pager *p, uint64_t w);
int mp3__alloc_bulk(mp_pager *p, size_t n, uint64_t *ids);
int mp3__free_bulk(mp_pager *p, size_t n, const uint64_t *ids);
/* Zeroes a leaf slot's magic and syncs it (a stale slot, or one a failed commit staged). */
int mp3__invalidate(mp_pager *p, uint64_t page);
/* Upgrades the settled 0.2 file of a writer's handle to 0.3 (FORMAT.md 3.8; upgrade3.c); on
 * MP_OK the handle holds the 0.3 state. MP_EFULL when a root cannot hold 0.2's directory
 * references (or 2^32 pages would not do). */
int mp3__upgrade(mp_pager *p);
/* The one copy of a 0.3 superblock sector (FORMAT.md 3.8) the first blocks of a file hold:
 * MP_OK (its page and page size), MP_ENOENT without one, MP_ECORRUPT with several (why says). */
int mp3__find_copy(int fd, uint64_t size, unsigned *log2, uint64_t *page, char *why, size_t whylen);
/* A 0.2 writer's: zeroes the magic of a copy an interrupted upgrade left at the first block at
 * or past page `total`, and syncs that, before the file's next 0.2 commit. */
int mp3__drop_copy(mp_pager *p, uint64_t total);
/* Work a failed 0.3 commit left: its staged slots' invalidation made durable. */
int mp3__settle(mp_pager *p);

/* ---- open-time recovery (recover.c) ----
 * Finds what an interrupted operation left behind (pages to reclaim, inactive
 * copies to mirror) and, for a writer, repairs the file. `p0` is page 0 as
 * mp__p0_resolve accepted it; `meta_fell_back` says the selected metadata copy
 * was damaged and the other one is in use; `salvaged` (NULL if not) is page 0 as salvage.c
 * rebuilt it over a garbage first sector, which a writer writes before anything else. */
int mp__recover(mp_pager *p, const uint8_t *p0, const mp_p0_fix *fix, bool meta_fell_back, const uint8_t *salvaged);

#endif
