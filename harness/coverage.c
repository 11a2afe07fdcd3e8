/* coverage.c: classifies each durable step of an exploration into crash-coverage cells
 * (operation x what it makes durable x where that lands), and holds the table of cells the
 * pager's protocol can reach. */
#include "coverage.h"

#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "mappedpages.h"

/* Byte offsets of the 0.2 format's page 0 that tell one change from another; the page
 * kinds themselves come from the pager (mp_image_page_kinds). */
enum { P0_SELECTOR = 12, P0_DIR_COUNT = 20, P0_REFS = 24, P0_REF_SIZE = 17, P0_REF_ACTIVE = 16 };
enum { DIR_ENTRIES = 8, ENTRY_SIZE = 30 };

static uint32_t le32(const uint8_t *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t le64(const uint8_t *b) { return le32(b) | (uint64_t)le32(b + 4) << 32; }

void cc_coverage_init(cc_coverage *cov, uint32_t page_size, uint32_t sector) {
  memset(cov, 0, sizeof *cov);
  cov->page_size = page_size;
  cov->sector = sector;
}

void cc_coverage_free(cc_coverage *cov) {
  free(cov->kinds);
  cov->kinds = NULL;
  cov->kcap = 0;
}

static void cover(cc_coverage *cov, int op, int what, int where) {
  if (op >= 0 && op < CC_COVER_OPS) cov->cell[op][what][where] = 1;
}

static int place(uint64_t id, uint64_t pages) {
  if (id == pages - 1) return CC_AT_LAST;
  if (id == 3) return CC_AT_FIRST;
  if (id >= 63 && (id % 64 == 63 || id % 64 == 0)) return CC_AT_WORD_EDGE;
  return CC_AT_ANY;
}

/* Page 0: each kind of change its bytes show between durable and volatile. */
static void cover_page0(cc_coverage *cov, int op, const uint8_t *dur, const uint8_t *vol, size_t ps) {
  if (memcmp(dur, vol, P0_SELECTOR) != 0 || memcmp(dur + 13, vol + 13, 7) != 0) {
    cover(cov, op, CC_W_SUPERBLOCK, CC_AT_ANY); /* tag, version, sizes: a create or an adoption */
    return;
  }
  if (dur[P0_SELECTOR] != vol[P0_SELECTOR]) cover(cov, op, CC_W_META_SELECTOR, CC_AT_ANY);
  uint32_t dcount = le32(dur + P0_DIR_COUNT), vcount = le32(vol + P0_DIR_COUNT);
  uint32_t max = (uint32_t)((ps - 28) / P0_REF_SIZE);
  if (dcount != vcount) cover(cov, op, CC_W_APPEND_COUNT, dcount == 0 || vcount == 0 ? CC_AT_FIRST : CC_AT_ANY);
  for (uint32_t r = 0; r < max; r++) {
    const uint8_t *a = dur + P0_REFS + (size_t)P0_REF_SIZE * r, *b = vol + P0_REFS + (size_t)P0_REF_SIZE * r;
    if (memcmp(a, b, P0_REF_SIZE) == 0) continue;
    if (r < dcount && r < vcount && memcmp(a, b, P0_REF_ACTIVE) == 0) cover(cov, op, CC_W_DIR_SELECTOR, CC_AT_ANY);
    else if (r >= vcount || r >= dcount) cover(cov, op, CC_W_APPEND_INTENT, r == 0 ? CC_AT_FIRST : CC_AT_ANY);
    else cover(cov, op, CC_W_SUPERBLOCK, CC_AT_ANY); /* a reference rewritten in place: not this library's */
  }
}

static bool is_full(const uint8_t *dirpage, size_t ps) {
  uint32_t cap = (uint32_t)((ps - 12) / ENTRY_SIZE);
  for (uint32_t e = 0; e < cap; e++)
    if (!dirpage[DIR_ENTRIES + (size_t)ENTRY_SIZE * e]) return false;
  return true;
}

/* Is directory page `id` referenced by the durable page 0 (the block exists for a cut)? */
static bool durably_referenced(const uint8_t *dur0, size_t ps, uint64_t id) {
  uint32_t n = le32(dur0 + P0_DIR_COUNT), max = (uint32_t)((ps - 28) / P0_REF_SIZE);
  for (uint32_t r = 0; r < n && r < max; r++)
    for (int k = 0; k < 2; k++)
      if (le64(dur0 + P0_REFS + (size_t)P0_REF_SIZE * r + 8 * (size_t)k) == id) return true;
  return false;
}

void cc_cover_step(cc_coverage *cov, pc_model *m, uint32_t file, int call, uint64_t off, uint64_t len, int op) {
  const uint8_t *vol, *dur;
  uint64_t vlen, dlen;
  if (pc_model_volatile(m, file, &vol, &vlen) != PC_OK || pc_model_durable(m, file, &dur, &dlen) != PC_OK) return;
  /* A 0.3 file's steps count in its own rows (coverage3.c): those of a file whose superblock
   * says 0.3 on either side of the step (the upgrade's commit), and of a 0.3 case's create
   * before its superblock lands (the file has no tag yet, whatever row the caller says). */
  bool untagged = vlen < 4 || memcmp(vol, "MPPG", 4) != 0;
  bool v3 = cc_image_is_format3(vol, vlen) || cc_image_is_format3(dur, dlen) || (cov->create3 && untagged);
  if (v3) op = CC_COVER_V3 + (cov->create3 && untagged ? CC_COVER_CREATE : op);
  if (call == PC_CALL_FSYNC_DIR || call == PC_CALL_FDATASYNC_DIR) {
    /* a name this step makes durable: absent if the cut lands nothing, present if it lands all */
    pc_crash none = {.tear = PC_TEAR_NONE}, all = {.tear = PC_TEAR_ALL};
    int before = 1, landed = 0;
    if (pc_model_image_exists(m, file, &none, &before) == PC_OK && !before &&
        pc_model_image_exists(m, file, &all, &landed) == PC_OK && landed)
      cover(cov, op, CC_W_NAME, CC_AT_ANY);
    return;
  }
  if (call == PC_CALL_FTRUNCATE || call == PC_CALL_FALLOCATE || call == PC_CALL_POSIX_FALLOCATE) {
    if (vlen != dlen) cover(cov, op, CC_W_GROWTH, CC_AT_ANY);
    return;
  }
  if (call != PC_CALL_MSYNC && call != PC_CALL_FSYNC && call != PC_CALL_FDATASYNC) return;
  size_t ps = cov->page_size;
  uint64_t pages = vlen / ps;
  /* fsync covers the file; an msync range is clipped to it (its length may run past). */
  uint64_t hi = call != PC_CALL_MSYNC || off + len < off || off + len > vlen ? vlen : off + len;
  uint64_t first = call != PC_CALL_MSYNC ? 0 : off / ps, end = (hi + ps - 1) / ps;
  if (end > pages) end = pages;
  if (v3 || cc_step_is_upgrade_stage(vol, vlen, dur, dlen, ps, first, end)) {
    cc_cover_step3(cov, vol, vlen, dur, dlen, first, end, v3 ? op : CC_COVER_V3 + op);
    return;
  }
  bool kinds_known = false;
  for (uint64_t id = first; id < end; id++) {
    const uint8_t *v = vol + id * ps;
    bool dirty = (id + 1) * ps > dlen || memcmp(v, dur + id * ps, ps) != 0;
    if (!dirty) continue;
    if (id == 0) {
      if (dlen >= ps) cover_page0(cov, op, dur, vol, ps);
      else cover(cov, op, CC_W_SUPERBLOCK, CC_AT_ANY);
      continue;
    }
    if (!kinds_known) {
      if (cov->kcap < pages) {
        uint8_t *k = realloc(cov->kinds, pages);
        if (!k) return;
        cov->kinds = k;
        cov->kcap = pages;
      }
      if (mp_image_page_kinds(vol, vlen, cov->kinds, pages) != MP_OK) {
        /* No superblock yet (the create writes it last): the metadata copies are where they
         * always are, the rest is not known. */
        memset(cov->kinds, MP_PAGE_UNKNOWN, pages);
        memset(cov->kinds + 1, MP_PAGE_METADATA, pages > 2 ? 2 : pages - 1);
      }
      kinds_known = true;
    }
    switch (cov->kinds[id]) {
      case MP_PAGE_METADATA: {
        const uint8_t *other = vol + (3 - id) * ps; /* the copy this one follows */
        cover(cov, op, CC_W_META, le64(v) > le64(other) ? CC_AT_GROWTH : CC_AT_ANY);
        break;
      }
      case MP_PAGE_DIRECTORY: {
        bool mirror = false;
        for (uint64_t o = 3; o < pages && !mirror; o++)
          mirror = o != id && cov->kinds[o] == MP_PAGE_DIRECTORY && memcmp(vol + o * ps, v, ps) == 0;
        int where = dlen >= ps && !durably_referenced(dur, ps, id) ? CC_AT_NEW_BLOCK
                    : is_full(v, ps)                                 ? CC_AT_FULL_BLOCK
                                                                      : CC_AT_ANY;
        cover(cov, op, mirror ? CC_W_DIR_MIRROR : CC_W_DIR_STAGE, where);
        break;
      }
      case MP_PAGE_PROTECTED: cover(cov, op, CC_W_PROTECTED, place(id, pages)); break;
      case MP_PAGE_FREE:
        /* A protected alloc writes its pages before any structure names them: a new block's
         * empty directory pages (a directory page's capacity field), then the zeroed copy. */
        if (op == CC_PALLOC && le32(v) == (ps - 12) / ENTRY_SIZE) cover(cov, op, CC_W_DIR_STAGE, CC_AT_NEW_BLOCK);
        else if (op == CC_PALLOC) cover(cov, op, CC_W_PROTECTED, place(id, pages));
        else cover(cov, op, CC_W_FREE, place(id, pages));
        break;
      case MP_PAGE_REGULAR: cover(cov, op, CC_W_DATA, place(id, pages)); break;
      default: cover(cov, op, CC_W_FREE, place(id, pages));
    }
  }
}

void cc_coverage_merge(cc_cover_cells to, const cc_cover_cells from) {
  for (int o = 0; o < CC_COVER_OPS; o++)
    for (int w = 0; w < CC_WHAT_KINDS; w++)
      for (int x = 0; x < CC_WHERE_KINDS; x++) to[o][w][x] |= from[o][w][x];
}

#define BIT(x) (1u << (x))
#define PAGE_PLACES (BIT(CC_AT_ANY) | BIT(CC_AT_FIRST) | BIT(CC_AT_LAST) | BIT(CC_AT_WORD_EDGE))

/* The places each kind of write must be cut at in each operation, from the protocol of
 * pager/commit.c (README's table of msyncs): alloc and free commit metadata (a copy, then
 * the selector), growing first; a protected alloc zeroes its data copy, may append a block
 * (its new directory pages, the intent, dir_count + 1), stages the entry, commits metadata,
 * flips the block's selector and mirrors; a free does the same without data or growth; a
 * commit writes the data copy and stages the entry in one msync, then flips; recovery
 * rewrites page 0 (a selector toggled back, an intent dropped, an append undone or redone),
 * commits metadata (a reclaim, a fallen-back selector) and mirrors. The create ends by
 * making the file's name durable (an fsync of its directory). */
static unsigned required(int op, int what, uint32_t page_size, uint32_t sector) {
  /* Page 0 in one sector (pages no larger than an atomic sector) is written whole or not at
   * all: no torn page 0 is left for recovery to undo or redo an append from, or to toggle a
   * directory selector back in (mp__p0_resolve's candidates all need a torn write). */
  bool torn_p0 = page_size > sector;
  switch (op) {
    case CC_COVER_CREATE:
      return what == CC_W_SUPERBLOCK || what == CC_W_META || what == CC_W_GROWTH || what == CC_W_NAME ? BIT(CC_AT_ANY)
                                                                                                       : 0;
    case CC_ALLOC:
    case CC_ALLOC_BULK:
      if (what == CC_W_META) return BIT(CC_AT_ANY) | BIT(CC_AT_GROWTH);
      return what == CC_W_META_SELECTOR || what == CC_W_GROWTH ? BIT(CC_AT_ANY) : 0;
    case CC_FREE:
    case CC_FREE_BULK: return what == CC_W_META || what == CC_W_META_SELECTOR ? BIT(CC_AT_ANY) : 0;
    case CC_WRITE_SYNC:
    case CC_SYNC: return what == CC_W_DATA ? PAGE_PLACES : 0;
    case CC_PALLOC: /* its zeroed copy is the lower page of its pair: never the file's last */
      if (what == CC_W_PROTECTED) return PAGE_PLACES & ~BIT(CC_AT_LAST);
      if (what == CC_W_DIR_STAGE) return BIT(CC_AT_ANY) | BIT(CC_AT_NEW_BLOCK) | BIT(CC_AT_FULL_BLOCK);
      if (what == CC_W_DIR_MIRROR) return BIT(CC_AT_ANY) | BIT(CC_AT_FULL_BLOCK);
      if (what == CC_W_META) return BIT(CC_AT_ANY) | BIT(CC_AT_GROWTH);
      if (what == CC_W_APPEND_INTENT || what == CC_W_APPEND_COUNT) return BIT(CC_AT_ANY) | BIT(CC_AT_FIRST);
      return what == CC_W_META_SELECTOR || what == CC_W_DIR_SELECTOR || what == CC_W_GROWTH ? BIT(CC_AT_ANY) : 0;
    case CC_PFREE:
      return what == CC_W_DIR_STAGE || what == CC_W_DIR_MIRROR || what == CC_W_META || what == CC_W_META_SELECTOR ||
                     what == CC_W_DIR_SELECTOR
                 ? BIT(CC_AT_ANY)
                 : 0;
    case CC_PWRITE:
      if (what == CC_W_PROTECTED) return PAGE_PLACES;
      if (what == CC_W_DIR_STAGE) return BIT(CC_AT_ANY) | BIT(CC_AT_FULL_BLOCK);
      return what == CC_W_DIR_SELECTOR ? BIT(CC_AT_ANY) : 0;
    case CC_COVER_RECOVER:
      if (what == CC_W_DIR_MIRROR) return BIT(CC_AT_ANY) | BIT(CC_AT_FULL_BLOCK);
      if (what == CC_W_APPEND_INTENT) return BIT(CC_AT_ANY) | BIT(CC_AT_FIRST);
      if (what == CC_W_APPEND_COUNT) return torn_p0 ? BIT(CC_AT_ANY) | BIT(CC_AT_FIRST) : 0;
      if (what == CC_W_DIR_SELECTOR) return torn_p0 ? BIT(CC_AT_ANY) : 0;
      return what == CC_W_META || what == CC_W_META_SELECTOR ? BIT(CC_AT_ANY) : 0;
    default: return 0; /* write, pabort, reopen of a clean file: nothing durable */
  }
}

/* Writes that may happen but need no case of their own. mp_sync makes every dirty page
 * durable: a copy a protected abort staged, the data of a page freed since it was written.
 * Pages smaller than the system's are synced a system page at a time (msync's unit), so any
 * step that syncs a page may carry its dirty neighbours along, of whatever kind; the create's
 * first sync reaches pages the file has but the metadata does not count yet. Adopting a file
 * another writer made rewrites its superblock's build byte (never a file of this library).
 * Recovery that completes a torn append (its count's checksum landed, the count did not)
 * mirrors the new block before the rewritten page 0 names it durably. A protected commit's
 * first msync spans every page between its copy and its directory page (pager/commit.c), and
 * so does the stage of a protected alloc in an existing block (its zeroed copy and the
 * entry): what the caller left dirty there lands with it, a regular page's data or a freed
 * page's. */
static unsigned allowed(int op, int what, uint32_t page_size) {
  unsigned extra = 0;
  if (op == CC_SYNC && (what == CC_W_PROTECTED || what == CC_W_FREE)) extra = PAGE_PLACES;
  if ((op == CC_PWRITE || op == CC_PALLOC) && (what == CC_W_DATA || what == CC_W_FREE)) extra = PAGE_PLACES;
  if (op == CC_COVER_RECOVER && what == CC_W_SUPERBLOCK) extra = BIT(CC_AT_ANY);
  if (op == CC_COVER_RECOVER && what == CC_W_DIR_MIRROR) extra = BIT(CC_AT_NEW_BLOCK);
  if (page_size < 4096 && (what == CC_W_DATA || what == CC_W_PROTECTED || what == CC_W_FREE) && op != CC_WRITE)
    extra |= PAGE_PLACES;
  return extra;
}

int cc_cell_status(int op, int what, int where, uint32_t page_size, uint32_t sector) {
  if (op < 0 || op >= CC_COVER_OPS || what < 0 || what >= CC_WHAT_KINDS || where < 0 || where >= CC_WHERE_KINDS)
    return CC_CELL_IMPOSSIBLE;
  bool v3 = op >= CC_COVER_V3;
  if ((v3 ? cc_required3(op, what, page_size, sector) : required(op, what, page_size, sector)) & BIT(where))
    return CC_CELL_REQUIRED;
  return (v3 ? cc_allowed3(op, what, page_size) : allowed(op, what, page_size)) & BIT(where) ? CC_CELL_ALLOWED
                                                                                              : CC_CELL_IMPOSSIBLE;
}

size_t cc_coverage_count(const cc_cover_cells cells, uint32_t page_size, uint32_t sector, size_t *required_cells,
                         size_t *impossible_covered) {
  return cc_coverage_count_format(cells, 0, page_size, sector, required_cells, impossible_covered);
}

void cc_coverage_rows(int format, int *from, int *to) {
  *from = format == 3 ? CC_COVER_V3 : 0;
  *to = format == 2 ? CC_COVER_V3 : CC_COVER_OPS;
}

size_t cc_coverage_count_format(const cc_cover_cells cells, int format, uint32_t page_size, uint32_t sector,
                                size_t *required_cells, size_t *impossible_covered) {
  size_t n = 0, r = 0, u = 0;
  int from, to;
  cc_coverage_rows(format, &from, &to);
  for (int o = from; o < to; o++)
    for (int w = 0; w < CC_WHAT_KINDS; w++)
      for (int x = 0; x < CC_WHERE_KINDS; x++) {
        int st = cc_cell_status(o, w, x, page_size, sector);
        r += st == CC_CELL_REQUIRED;
        n += st == CC_CELL_REQUIRED && cells[o][w][x];
        u += st == CC_CELL_IMPOSSIBLE && cells[o][w][x];
      }
  if (required_cells) *required_cells = r;
  if (impossible_covered) *impossible_covered = u;
  return n;
}

const char *cc_cover_op_name(int op) {
  static const char *const v3[CC_COVER_V3] = {"v3-alloc", "v3-free", "v3-alloc-bulk", "v3-free-bulk", "v3-write",
                                              "v3-write-sync", "v3-sync", "v3-palloc", "v3-pfree", "v3-pwrite",
                                              "v3-pabort", "v3-reopen", "v3-create", "v3-recovery"};
  _Static_assert(CC_OP_KINDS == 12, "a new operation needs its v3- row name");
  if (op >= CC_COVER_V3 && op < CC_COVER_OPS) return v3[op - CC_COVER_V3];
  return op == CC_COVER_CREATE ? "create" : op == CC_COVER_RECOVER ? "recovery" : cc_op_name(op);
}

const char *cc_cover_what_name(int what) {
  static const char *const names[CC_WHAT_KINDS] = {
      "data", "protected-copy", "metadata-copy", "directory-stage", "directory-mirror", "metadata-selector",
      "directory-selector", "append-intent", "append-count", "superblock", "growth", "free-page", "name",
      "root", "leaf", "leaf-invalidate"};
  return what >= 0 && what < CC_WHAT_KINDS ? names[what] : "?";
}

const char *cc_cover_where_name(int where) {
  static const char *const names[CC_WHERE_KINDS] = {"anywhere", "first", "last-page", "word-edge", "growing",
                                                     "new-block", "full-block", "slot-a", "slot-b", "new-group"};
  return where >= 0 && where < CC_WHERE_KINDS ? names[where] : "?";
}

/* Shared by explore, coverage and merge, so that a merged report reads as one explore wrote. */
void cc_coverage_print_json(FILE *out, const cc_cover_cells cells, uint32_t page_size, uint32_t sector) {
  size_t required, stray, covered = cc_coverage_count(cells, page_size, sector, &required, &stray);
  fprintf(out, "{\"page_size\": %u, \"sector\": %u, \"covered\": %zu, \"required\": %zu, \"impossible_covered\": %zu, "
         "\"cells\": [", page_size, sector, covered, required, stray);
  int n = 0;
  for (int o = 0; o < CC_COVER_OPS; o++)
    for (int w = 0; w < CC_WHAT_KINDS; w++)
      for (int x = 0; x < CC_WHERE_KINDS; x++)
        if (cells[o][w][x])
          fprintf(out, "%s\"%s/%s/%s\"", n++ ? ", " : "", cc_cover_op_name(o), cc_cover_what_name(w), cc_cover_where_name(x));
  fprintf(out, "], \"missing\": [");
  n = 0;
  for (int o = 0; o < CC_COVER_OPS; o++)
    for (int w = 0; w < CC_WHAT_KINDS; w++)
      for (int x = 0; x < CC_WHERE_KINDS; x++)
        if (!cells[o][w][x] && cc_cell_status(o, w, x, page_size, sector) == CC_CELL_REQUIRED)
          fprintf(out, "%s\"%s/%s/%s\"", n++ ? ", " : "", cc_cover_op_name(o), cc_cover_what_name(w), cc_cover_where_name(x));
  fprintf(out, "], \"impossible\": [");
  n = 0;
  for (int o = 0; o < CC_COVER_OPS; o++)
    for (int w = 0; w < CC_WHAT_KINDS; w++)
      for (int x = 0; x < CC_WHERE_KINDS; x++)
        if (cells[o][w][x] && cc_cell_status(o, w, x, page_size, sector) == CC_CELL_IMPOSSIBLE)
          fprintf(out, "%s\"%s/%s/%s\"", n++ ? ", " : "", cc_cover_op_name(o), cc_cover_what_name(w), cc_cover_where_name(x));
  fprintf(out, "]}");
}
