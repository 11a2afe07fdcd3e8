/* coverage.h: crash coverage: for each durable step a workload's exploration cut, what the
 * step made durable, in which operation, and where in the file it landed; and which of
 * those cells the pager's protocol can reach at all. */
#ifndef CC_COVERAGE_H
#define CC_COVERAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "case.h"
#include "powercut.h"

/*
 * A cell is (operation, what, where), counted for one page size and one sector size (the
 * exploration's):
 * - operation: a case operation kind, or the create, or the recovery an open does (an R7
 *   follow-up's first step on a crash image);
 * - what: the kind of durable write cut (below), found by comparing the volatile and
 *   durable content of the pages the step makes durable (a page that is not dirty is a
 *   write a cut cannot harm, and covers nothing), or the file's name an fsync of its
 *   directory makes durable (the shim's namespace model); page kinds come from the pager's own
 *   reading of the volatile content (mp_image_page_kinds), page 0's changes from the bytes
 *   that differ;
 * - where: the place that makes the write special: the first or last page of the file, a
 *   page on either side of a 64-bit bitmap word boundary, a metadata copy that grows the
 *   file, a new or a full directory block, the first block's append.
 * A 0.3 file's steps (pager/FORMAT.md section 3: the create's before its superblock lands, and
 * the upgrade's) count in rows of their own, CC_COVER_V3 + the operation's row ("v3-alloc",
 * "v3-create", ...): its protocol is another (coverage3.c), with writes of its own (a leaf slot
 * staged, a root committed, a stale slot's magic cleared) and places of its own (leaf slot A or
 * B, root R0 or R1, a new group's leaf); a root or leaf write counts at each place it has (its
 * slot, and that it grows the file or adds a directory block).
 */
enum {
  CC_W_DATA,          /* a regular page's data (mp_sync_page, mp_sync) */
  CC_W_PROTECTED,     /* a protected page's copy (the commit's data, an alloc's zeroed copy) */
  CC_W_META,          /* the next metadata copy */
  CC_W_DIR_STAGE,     /* the next version of a directory page, into the block's inactive copy */
  CC_W_DIR_MIRROR,    /* the inactive copy made equal to the current one */
  CC_W_META_SELECTOR, /* page 0's metadata selector */
  CC_W_DIR_SELECTOR,  /* a directory reference's selector in page 0 */
  CC_W_APPEND_INTENT, /* a reference written past dir_count */
  CC_W_APPEND_COUNT,  /* dir_count + 1 */
  CC_W_SUPERBLOCK,    /* the superblock written whole (the create) */
  CC_W_GROWTH,        /* the file's size (ftruncate, fallocate) */
  CC_W_FREE,          /* a free page (what recovery or a stray write leaves) */
  CC_W_NAME,          /* the file's name (an fsync of its directory after the create) */
  CC_W_ROOT,          /* 0.3: a root slot (the commit) */
  CC_W_LEAF,          /* 0.3: a group's leaf, staged into its slot that is not current */
  CC_W_LEAF_CLEAR,    /* 0.3: a leaf slot's magic zeroed (a stale slot a writer's open invalidates) */
  CC_WHAT_KINDS
};
enum {
  CC_AT_ANY,        /* nowhere special */
  CC_AT_FIRST,      /* the first page after the reserved ones; the first block's append */
  CC_AT_LAST,       /* the last page of the file */
  CC_AT_WORD_EDGE,  /* page 64k - 1 or 64k (k >= 1): the two sides of a bitmap word boundary */
  CC_AT_GROWTH,     /* a metadata copy with more pages than the current one */
  CC_AT_NEW_BLOCK,  /* a directory page of a block page 0 does not durably reference yet */
  CC_AT_FULL_BLOCK, /* a directory page whose every entry is in use */
  CC_AT_SLOT_A,     /* 0.3: leaf slot A, root slot R0 */
  CC_AT_SLOT_B,     /* 0.3: leaf slot B, root slot R1 */
  CC_AT_NEW_GROUP,  /* 0.3: the leaf of a group past the committed root's size (growth) */
  CC_WHERE_KINDS
};
#define CC_COVER_CREATE CC_OP_KINDS        /* operation row of the create */
#define CC_COVER_RECOVER (CC_OP_KINDS + 1) /* operation row of an open's recovery */
#define CC_COVER_V3 (CC_OP_KINDS + 2)      /* a 0.3 file's rows: CC_COVER_V3 + a row above */
#define CC_COVER_OPS (2 * CC_COVER_V3)

typedef uint8_t cc_cover_cells[CC_COVER_OPS][CC_WHAT_KINDS][CC_WHERE_KINDS]; /* 1: covered */
typedef struct cc_coverage {
  uint32_t page_size, sector;
  cc_cover_cells cell;
  uint8_t *kinds;                                           /* scratch: page kinds of a step */
  size_t kcap;
  bool create3; /* the case creates its file as 0.3: a file without a superblock is that create's */
} cc_coverage;

void cc_coverage_init(cc_coverage *cov, uint32_t page_size, uint32_t sector);
void cc_coverage_free(cc_coverage *cov);
/* Counts the cells the open step of `m` (file `file`) covers: call `call` over [off, off+len)
 * in operation row `op`. */
void cc_cover_step(cc_coverage *cov, pc_model *m, uint32_t file, int call, uint64_t off, uint64_t len, int op);
/* Adds every cell of `from` (same page and sector size) to `to`. */
void cc_coverage_merge(cc_cover_cells to, const cc_cover_cells from);
/* What the pager's protocol makes of a cell (commit.c's table of steps): a write it makes
 * there (required: the suite must cut it), one it may make incidentally (allowed: msync's
 * rounding to system pages, mp_sync of whatever is dirty), or none (impossible: covering it
 * is a bug of this table or of the pager, and tests hold the suite's coverage to that). */
enum { CC_CELL_IMPOSSIBLE, CC_CELL_ALLOWED, CC_CELL_REQUIRED };
int cc_cell_status(int op, int what, int where, uint32_t page_size, uint32_t sector);
/* Covered required cells; *required_cells gets how many cells are required, and
 * *impossible_covered how many covered cells the table says cannot be. */
size_t cc_coverage_count(const cc_cover_cells cells, uint32_t page_size, uint32_t sector, size_t *required_cells,
                         size_t *impossible_covered);
/* The rows [*from, *to) of one format (2 or 3; 0: both): what a case of that format can cover. */
void cc_coverage_rows(int format, int *from, int *to);
/* The same over the rows of one format only (2 or 3): what a case of that format can cover. */
size_t cc_coverage_count_format(const cc_cover_cells cells, int format, uint32_t page_size, uint32_t sector,
                                size_t *required_cells, size_t *impossible_covered);
/* 0.3's part (coverage3.c): cc_cover_step's classification of a 0.3 step, and the table. */
void cc_cover_step3(cc_coverage *cov, const uint8_t *vol, uint64_t vlen, const uint8_t *dur, uint64_t dlen,
                    uint64_t first, uint64_t end, int op);
/* Whether a step of a file that is not 0.3 is the upgrade's stage (roots and leaves written
 * past a 0.2 file's end: FORMAT.md 3.8), which counts in the 0.3 rows. */
bool cc_step_is_upgrade_stage(const uint8_t *vol, uint64_t vlen, const uint8_t *dur, uint64_t dlen, size_t ps,
                              uint64_t first, uint64_t end);
unsigned cc_required3(int op, int what, uint32_t page_size, uint32_t sector);
unsigned cc_allowed3(int op, int what, uint32_t page_size);
const char *cc_cover_op_name(int op);
const char *cc_cover_what_name(int what);
const char *cc_cover_where_name(int where);
/* Crash coverage as JSON (explore --json's "coverage", coverage --json, merge): counts, and
 * the covered, missing required and covered impossible cells as "operation/what/where". */
void cc_coverage_print_json(FILE *out, const cc_cover_cells cells, uint32_t page_size, uint32_t sector);

#endif
