/* coverage3.c: crash-coverage cells of a 0.3 file's durable steps (pager/FORMAT.md section 3),
 * and the table of those the 0.3 protocol reaches.
 *
 * What a 0.3 step writes, and how its bytes tell it (the places come from the superblock, the
 * kinds of the other pages from the pager's reading of the volatile image):
 *
 * - The create (3.5): group 0's leaf into slot A and the root of generation 1 into R1, one
 *   msync; then the superblock sector; the file has no superblock until then, so the create's
 *   layout is taken from mp_create_page_kinds and its fixed places (blocks 1 to 4).
 * - An operation (3.6): the stage, one msync from its lowest block to its highest: the leaf of
 *   each group whose bits change, into its slot that is not current; a protected page's copy
 *   (zeroed for an alloc, whose pages the current leaf still shows free); the inactive copy of
 *   a directory page, or both copies of a new block (free pages to the current root, known by
 *   a directory page's capacity field); the leaves of new groups. Then the commit: the root
 *   into the slot that does not hold the live root. A root's places are its slot, whether it
 *   names more pages than the live root (growth, 3.7) and whether it adds a directory block.
 * - A writer's open (the recovery row): a leaf slot whose header claims a generation above the
 *   root's has its magic zeroed (3.3). A growth does the same to a new group's slot B, which is
 *   dirty only where an interrupted growth left something there.
 * - The upgrade (3.8): its stage writes roots and leaves past a 0.2 file's end, whose page 0 is
 *   still 0.2's: they are known by their magic; then page 0's first sector becomes the 0.3
 *   superblock.
 */
#include <stdlib.h>
#include <string.h>

#include "coverage.h"
#include "image.h"
#include "mappedpages.h"

/* FORMAT.md 3.3 to 3.5, the fields the cells need. */
enum { SB_ROOT = 16, SB_LEAF0 = 32, ROOT_SLOT = 4, ROOT_GEN = 8, ROOT_TOTAL = 16, ROOT_DIR_COUNT = 32 };
enum { LEAF_GROUP = 4, DIR_ENTRIES = 8, ENTRY_SIZE = 30 };

static uint32_t le32(const uint8_t *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t le64(const uint8_t *b) { return le32(b) | (uint64_t)le32(b + 4) << 32; }

static void cover(cc_coverage *cov, int row, int what, int where) {
  if (row >= CC_COVER_V3 && row < CC_COVER_OPS) cov->cell[row][what][where] = 1;
}

typedef struct layout3 {
  size_t ps;
  uint64_t m, c, pages;
  bool known;                  /* the places below are the superblock's (or the create's) */
  uint64_t root[2], leaf0[2];  /* first pages of R0, R1 and of group 0's slots A, B */
  uint64_t live_total;         /* the live root's size (0: no root yet, the create) */
  const uint8_t *live_root;    /* its block in the volatile image, or NULL */
} layout3;

/* The live root is the durable one with the higher generation: a step never overwrites it. */
static void find_live_root(layout3 *l, const uint8_t *vol, uint64_t vlen, const uint8_t *dur, uint64_t dlen) {
  uint64_t best = 0;
  for (int i = 0; i < 2 && l->known; i++) {
    uint64_t off = l->root[i] * l->ps;
    if (off + 40 > dlen || off + 40 > vlen || memcmp(dur + off, "MPR3", 4) != 0) continue;
    if (le64(dur + off + ROOT_GEN) > best) {
      best = le64(dur + off + ROOT_GEN);
      l->live_total = le64(dur + off + ROOT_TOTAL);
      l->live_root = vol + off;
    }
  }
}

static int place3(const layout3 *l, uint64_t id) {
  if (id == l->pages - 1) return CC_AT_LAST;
  if (id == 5 * l->m) return CC_AT_FIRST; /* the first page for data of a file created as 0.3 */
  uint64_t i = id % l->c;                 /* its bit in its group's bitmap */
  if (i >= 63 && (i % 64 == 63 || i % 64 == 0)) return CC_AT_WORD_EDGE;
  return CC_AT_ANY;
}

static bool is_full(const uint8_t *dirpage, size_t ps) {
  uint32_t cap = (uint32_t)((ps - 12) / ENTRY_SIZE);
  for (uint32_t e = 0; e < cap; e++)
    if (!dirpage[DIR_ENTRIES + (size_t)ENTRY_SIZE * e]) return false;
  return true;
}

/* Which leaf slot block `id` lies in: 0 none, else 1 + slot (0 A, 1 B); *group its group. */
static int leaf_slot(const layout3 *l, const uint8_t *vol, uint64_t id, uint64_t *group) {
  uint64_t first = id - id % l->m;
  for (int i = 0; i < 2 && l->known; i++)
    if (first == l->leaf0[i]) {
      *group = 0;
      return 1 + i;
    }
  if (id >= l->c && id % l->c < 2 * l->m) {
    *group = id / l->c;
    return 1 + (id % l->c >= l->m);
  }
  /* The upgrade's group 0 slot A lies where no superblock says yet: its magic tells it. */
  if (!l->known && memcmp(vol + first * l->ps, "MPL3", 4) == 0 && le32(vol + first * l->ps + LEAF_GROUP) == 0) {
    *group = 0;
    return 1;
  }
  return 0;
}

/* Which root slot block `id` lies in: 0 none, else 1 + slot. */
static int root_slot(const layout3 *l, const uint8_t *vol, uint64_t id) {
  uint64_t first = id - id % l->m;
  for (int i = 0; i < 2 && l->known; i++)
    if (first == l->root[i]) return 1 + i;
  const uint8_t *b = vol + first * l->ps;
  if (!l->known && memcmp(b, "MPR3", 4) == 0 && b[ROOT_SLOT] < 2) return 1 + b[ROOT_SLOT];
  return 0;
}

void cc_cover_step3(cc_coverage *cov, const uint8_t *vol, uint64_t vlen, const uint8_t *dur, uint64_t dlen,
                    uint64_t first, uint64_t end, int row) {
  layout3 l = {.ps = cov->page_size};
  size_t mb = l.ps > 4096 ? l.ps : 4096;
  l.m = mb / l.ps;
  l.c = (uint64_t)(mb - 28) * 8;
  l.pages = vlen / l.ps;
  bool v3 = cc_image_is_format3(vol, vlen), untagged = vlen < 4 || memcmp(vol, "MPPG", 4) != 0;
  if (v3 && vlen >= 48) {
    l.known = true;
    for (int i = 0; i < 2; i++) {
      l.root[i] = le64(vol + SB_ROOT + 8 * i);
      l.leaf0[i] = le64(vol + SB_LEAF0 + 8 * i);
    }
  } else if (untagged) { /* the create's places (FORMAT.md 3.5) */
    l.known = true;
    l.root[0] = l.m, l.root[1] = 2 * l.m, l.leaf0[0] = 3 * l.m, l.leaf0[1] = 4 * l.m;
  }
  find_live_root(&l, vol, vlen, dur, dlen);
  /* The upgrade's stage: its live state is the 0.2 file, whose pages are all in group 0. */
  bool have_live = l.live_root || !l.known;
  if (!l.known) l.live_total = dlen / l.ps < l.c ? dlen / l.ps : l.c;
  if (end > l.pages) end = l.pages;
  if (cov->kcap < l.pages) {
    uint8_t *k = realloc(cov->kinds, l.pages);
    if (!k) return;
    cov->kinds = k;
    cov->kcap = l.pages;
  }
  bool kinds_known = false;
  for (uint64_t id = first; id < end; id++) {
    const uint8_t *v = vol + id * l.ps;
    if ((id + 1) * l.ps <= dlen && memcmp(v, dur + id * l.ps, l.ps) == 0) continue; /* not dirty */
    if (id < l.m && (v3 || untagged)) {
      cover(cov, row, CC_W_SUPERBLOCK, CC_AT_ANY);
      continue;
    }
    uint64_t group = 0;
    int slot = root_slot(&l, vol, id);
    if (slot) {
      const uint8_t *b = vol + (id - id % l.m) * l.ps;
      if (memcmp(b, "MPR3", 4) != 0) continue; /* a root slot zeroed after a failed commit (--errors) */
      cover(cov, row, CC_W_ROOT, slot == 1 ? CC_AT_SLOT_A : CC_AT_SLOT_B);
      if (l.live_root && l.live_root != b) {
        if (le64(b + ROOT_TOTAL) > le64(l.live_root + ROOT_TOTAL)) cover(cov, row, CC_W_ROOT, CC_AT_GROWTH);
        if (le32(b + ROOT_DIR_COUNT) > le32(l.live_root + ROOT_DIR_COUNT)) cover(cov, row, CC_W_ROOT, CC_AT_NEW_BLOCK);
      }
      continue;
    }
    if ((slot = leaf_slot(&l, vol, id, &group)) != 0) {
      uint64_t off = (id - id % l.m) * l.ps;
      const uint8_t *b = vol + off;
      int what = memcmp(b, "MPL3", 4) == 0 ? CC_W_LEAF : CC_W_LEAF_CLEAR;
      /* Zeros where no slot was (the create's slot B, past the durable end): nothing to clear. */
      if (what == CC_W_LEAF_CLEAR && (off + 4 > dlen || memcmp(dur + off, "MPL3", 4) != 0)) continue;
      cover(cov, row, what, slot == 1 ? CC_AT_SLOT_A : CC_AT_SLOT_B);
      if (have_live && group >= (l.live_total + l.c - 1) / l.c) cover(cov, row, what, CC_AT_NEW_GROUP);
      continue;
    }
    if (!kinds_known) {
      int rc = v3 ? mp_image_page_kinds(vol, vlen, cov->kinds, l.pages)
               : untagged ? mp_create_page_kinds(l.ps, MP_FORMAT_3, cov->kinds, l.pages)
                          : mp_image_page_kinds(vol, vlen, cov->kinds, l.pages); /* the upgrade's 0.2 file */
      if (rc != MP_OK) memset(cov->kinds, MP_PAGE_UNKNOWN, l.pages);
      kinds_known = true;
    }
    switch (cov->kinds[id]) {
      case MP_PAGE_DIRECTORY:
        cover(cov, row, CC_W_DIR_STAGE, is_full(v, l.ps) ? CC_AT_FULL_BLOCK : CC_AT_ANY);
        break;
      case MP_PAGE_PROTECTED: cover(cov, row, CC_W_PROTECTED, place3(&l, id)); break;
      case MP_PAGE_REGULAR: cover(cov, row, CC_W_DATA, place3(&l, id)); break;
      default:
        /* Free to the live root: a new directory block's copies (a directory page's capacity
         * and zero bytes 4..8), a protected alloc's zeroed copy, or what a stray write left. */
        if (id % l.m == 0 && le32(v) == (l.ps - 12) / ENTRY_SIZE && le32(v + 4) == 0)
          cover(cov, row, CC_W_DIR_STAGE, CC_AT_NEW_BLOCK);
        else if (row == CC_COVER_V3 + CC_PALLOC) cover(cov, row, CC_W_PROTECTED, place3(&l, id));
        else cover(cov, row, CC_W_FREE, place3(&l, id));
    }
  }
}

bool cc_step_is_upgrade_stage(const uint8_t *vol, uint64_t vlen, const uint8_t *dur, uint64_t dlen, size_t ps,
                              uint64_t first, uint64_t end) {
  if (vlen < 4 || memcmp(vol, "MPPG", 4) != 0 || cc_image_is_format3(vol, vlen)) return false;
  for (uint64_t id = first; id < end && (id + 1) * ps <= vlen; id++) {
    const uint8_t *v = vol + id * ps;
    if ((memcmp(v, "MPR3", 4) == 0 || memcmp(v, "MPL3", 4) == 0) &&
        ((id + 1) * ps > dlen || memcmp(v, dur + id * ps, ps) != 0))
      return true;
  }
  return false;
}

#define BIT(x) (1u << (x))
#define PAGE_PLACES (BIT(CC_AT_ANY) | BIT(CC_AT_FIRST) | BIT(CC_AT_LAST) | BIT(CC_AT_WORD_EDGE))
#define SLOTS (BIT(CC_AT_SLOT_A) | BIT(CC_AT_SLOT_B))

/* What the 0.3 protocol must write, operation by operation (FORMAT.md 3.6's table): every
 * mutating call stages the leaf of each group it changes (in either slot, as the generations
 * alternate) and commits a root (in either slot); alloc and its bulk form grow the file (the
 * file's size, a root naming more pages); a protected alloc stages a zeroed copy and the
 * inactive directory copy, or both copies of a new block (a root adding it), growing too; a
 * protected free stages the inactive directory copy; a protected commit the copy and the
 * directory copy. The create writes R1 and leaf slot A, then the superblock, its size and its
 * name; a writer's open invalidates a stale slot, in either slot. `row` is CC_COVER_V3 + the
 * row of the 0.2 table. */
unsigned cc_required3(int row, int what, uint32_t page_size, uint32_t sector) {
  (void)page_size, (void)sector;
  switch (row - CC_COVER_V3) {
    case CC_COVER_CREATE:
      if (what == CC_W_ROOT) return BIT(CC_AT_SLOT_B);
      if (what == CC_W_LEAF) return BIT(CC_AT_SLOT_A);
      return what == CC_W_SUPERBLOCK || what == CC_W_GROWTH || what == CC_W_NAME ? BIT(CC_AT_ANY) : 0;
    case CC_ALLOC:
    case CC_ALLOC_BULK:
      if (what == CC_W_ROOT) return SLOTS | BIT(CC_AT_GROWTH);
      if (what == CC_W_LEAF) return SLOTS;
      return what == CC_W_GROWTH ? BIT(CC_AT_ANY) : 0;
    case CC_FREE:
    case CC_FREE_BULK: return what == CC_W_ROOT || what == CC_W_LEAF ? SLOTS : 0;
    case CC_WRITE_SYNC:
    case CC_SYNC: return what == CC_W_DATA ? PAGE_PLACES : 0;
    case CC_PALLOC:
      if (what == CC_W_ROOT) return SLOTS | BIT(CC_AT_NEW_BLOCK) | BIT(CC_AT_GROWTH);
      if (what == CC_W_LEAF) return SLOTS;
      if (what == CC_W_PROTECTED) return BIT(CC_AT_ANY);
      if (what == CC_W_DIR_STAGE) return BIT(CC_AT_ANY) | BIT(CC_AT_NEW_BLOCK) | BIT(CC_AT_FULL_BLOCK);
      return what == CC_W_GROWTH ? BIT(CC_AT_ANY) : 0;
    case CC_PFREE:
      if (what == CC_W_ROOT || what == CC_W_LEAF) return SLOTS;
      return what == CC_W_DIR_STAGE ? BIT(CC_AT_ANY) : 0;
    case CC_PWRITE:
      if (what == CC_W_ROOT) return SLOTS;
      if (what == CC_W_PROTECTED) return BIT(CC_AT_ANY);
      return what == CC_W_DIR_STAGE ? BIT(CC_AT_ANY) | BIT(CC_AT_FULL_BLOCK) : 0;
    case CC_COVER_RECOVER: return what == CC_W_LEAF_CLEAR ? SLOTS : 0;
    default: return 0;
  }
}

/* What it may write besides. A stage is one msync from its lowest block to its highest, so
 * whatever the caller left dirty between them lands with it (a regular page's data, a freed
 * page's, a copy a protected abort left), as mp_sync lands every dirty page; pages below 4 KiB
 * are synced a system page at a time. A protected page's copies sit anywhere, the first page
 * for data and the file's last included, as do a protected commit's. A growth zeroes the magic
 * of a new group's slot B (dirty where an interrupted growth left a slot), and stages new
 * groups' leaves: the suite's files stay in group 0 (a second group starts past 32,544 pages),
 * so those cells are allowed, not required; so is the upgrade (an allocation past 0.2's
 * capacity: a root and leaves staged past the 0.2 file, then the superblock), which
 * harness/tests/e2e_format3.sh explores. A call whose stage or root msync fails zeroes the
 * magic of the slots it staged (FORMAT.md 3.6), and a reopen after a poisoned handle those it
 * left: explore --errors cuts both. */
unsigned cc_allowed3(int row, int what, uint32_t page_size) {
  int op = row - CC_COVER_V3;
  bool stages = op == CC_ALLOC || op == CC_ALLOC_BULK || op == CC_FREE || op == CC_FREE_BULK || op == CC_PALLOC ||
                op == CC_PFREE || op == CC_PWRITE || op == CC_SYNC;
  bool grows = op == CC_ALLOC || op == CC_ALLOC_BULK || op == CC_PALLOC;
  unsigned extra = 0;
  if (stages && (what == CC_W_DATA || what == CC_W_FREE || what == CC_W_PROTECTED)) extra |= PAGE_PLACES;
  if (grows && (what == CC_W_LEAF || what == CC_W_LEAF_CLEAR)) extra |= BIT(CC_AT_NEW_GROUP);
  /* a failed commit's staged slots, and those a reopen finds after a poisoned handle (--errors) */
  if (((stages && op != CC_SYNC) || op == CC_REOPEN) && what == CC_W_LEAF_CLEAR) extra |= SLOTS;
  if (grows && what == CC_W_SUPERBLOCK) extra |= BIT(CC_AT_ANY); /* the upgrade's commit */
  if (op == CC_COVER_RECOVER && what == CC_W_LEAF_CLEAR) extra |= BIT(CC_AT_NEW_GROUP);
  if (page_size < 4096 && (what == CC_W_DATA || what == CC_W_PROTECTED || what == CC_W_FREE) && op != CC_WRITE)
    extra |= PAGE_PLACES;
  return extra;
}
