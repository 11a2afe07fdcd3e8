/* test_coverage.c: the crash-coverage cells of a 0.3 file's steps (coverage3.c), from images
 * the pager writes: a commit's stage and root, a growth, a new directory block and a protected
 * alloc's zeroed copy, the create before its superblock, a writer's open invalidating a stale
 * slot, and the upgrade's stage; and the 0.3 rows of the table. Each step is rebuilt from two
 * files the pager wrote (before and after the operation): its stage is the file before with the
 * blocks that changed other than the live root's, its commit the file after. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coverage.h"
#include "mappedpages.h"

static char path[64];

static uint8_t *read_file(size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(*len ? *len : 1);
  assert_int_equal(fread(b, 1, *len, f), *len);
  fclose(f);
  return b;
}

/* The file as the pager leaves it after each call of `steps` (a handle kept open between). */
typedef struct snap {
  uint8_t *img;
  size_t len;
} snap;

static void take(mp_pager *p, snap *s) {
  (void)p; /* every call syncs what it commits: the file holds it */
  s->img = read_file(&s->len);
}

static bool cell(const cc_coverage *cov, int row, int what, int where) { return cov->cell[row][what][where]; }

static size_t count_cells(const cc_coverage *cov) {
  size_t n = 0;
  for (int o = 0; o < CC_COVER_OPS; o++)
    for (int w = 0; w < CC_WHAT_KINDS; w++)
      for (int x = 0; x < CC_WHERE_KINDS; x++) n += cov->cell[o][w][x];
  return n;
}

/* The two steps of an operation from `before` to `after`: the stage (every block that changed
 * but the root slot the commit writes: `root` its first page), then the commit. */
static void cover_op(cc_coverage *cov, const snap *before, const snap *after, uint64_t root, int op) {
  size_t ps = cov->page_size, mb = ps > 4096 ? ps : 4096, len = after->len;
  uint8_t *stage = calloc(1, len);
  memcpy(stage, after->img, len);
  memcpy(stage + root * ps, before->img + root * ps, mb); /* the root not yet written */
  cc_cover_step3(cov, stage, len, before->img, before->len, 0, len / ps, CC_COVER_V3 + op);
  cc_cover_step3(cov, after->img, len, stage, len, 0, len / ps, CC_COVER_V3 + op);
  free(stage);
}

static uint64_t le64(const uint8_t *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

/* Which root slot the file's next commit writes: the one without the higher generation. */
static uint64_t next_root(const snap *s, size_t ps) {
  uint64_t r0 = le64(s->img + 16), r1 = le64(s->img + 24);
  uint64_t g0 = memcmp(s->img + r0 * ps, "MPR3", 4) ? 0 : le64(s->img + r0 * ps + 8);
  uint64_t g1 = memcmp(s->img + r1 * ps, "MPR3", 4) ? 0 : le64(s->img + r1 * ps + 8);
  return g0 > g1 ? r1 : r0;
}

static void test_commit_cells(void **state) {
  (void)state;
  static const size_t sizes[] = {1024, 4096};
  for (size_t k = 0; k < 2; k++) {
    size_t ps = sizes[k];
    unlink(path);
    mp_pager *p;
    assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_OK);
    cc_coverage cov;
    cc_coverage_init(&cov, (uint32_t)ps, 512);
    snap s[6];
    uint64_t id, prot;
    take(p, &s[0]);
    assert_int_equal(mp_alloc(p, &id), MP_OK); /* the new file's one free block: no growth */
    take(p, &s[1]);
    assert_int_equal(mp_alloc_bulk(p, 8, (uint64_t[8]){0}), MP_OK); /* grows */
    take(p, &s[2]);
    assert_int_equal(mp_protected_alloc(p, &prot), MP_OK); /* a new directory block */
    take(p, &s[3]);
    assert_int_equal(mp_free(p, id), MP_OK);
    take(p, &s[4]);
    mp_close(p);
    cover_op(&cov, &s[0], &s[1], next_root(&s[0], ps), CC_ALLOC);
    /* generation 1 is in R1: the alloc's leaf goes into slot B (A holds generation 1), its root R0 */
    assert_true(cell(&cov, CC_COVER_V3 + CC_ALLOC, CC_W_LEAF, CC_AT_SLOT_B));
    assert_true(cell(&cov, CC_COVER_V3 + CC_ALLOC, CC_W_ROOT, CC_AT_SLOT_A));
    assert_false(cell(&cov, CC_COVER_V3 + CC_ALLOC, CC_W_ROOT, CC_AT_GROWTH));
    assert_false(cell(&cov, CC_COVER_V3 + CC_ALLOC, CC_W_ROOT, CC_AT_SLOT_B));
    cover_op(&cov, &s[1], &s[2], next_root(&s[1], ps), CC_ALLOC_BULK);
    assert_true(cell(&cov, CC_COVER_V3 + CC_ALLOC_BULK, CC_W_LEAF, CC_AT_SLOT_A));
    assert_true(cell(&cov, CC_COVER_V3 + CC_ALLOC_BULK, CC_W_ROOT, CC_AT_SLOT_B));
    assert_true(cell(&cov, CC_COVER_V3 + CC_ALLOC_BULK, CC_W_ROOT, CC_AT_GROWTH));
    assert_false(cell(&cov, CC_COVER_V3 + CC_ALLOC_BULK, CC_W_ROOT, CC_AT_NEW_BLOCK));
    cover_op(&cov, &s[2], &s[3], next_root(&s[2], ps), CC_PALLOC);
    assert_true(cell(&cov, CC_COVER_V3 + CC_PALLOC, CC_W_DIR_STAGE, CC_AT_NEW_BLOCK));
    assert_true(cell(&cov, CC_COVER_V3 + CC_PALLOC, CC_W_ROOT, CC_AT_NEW_BLOCK));
    assert_true(cell(&cov, CC_COVER_V3 + CC_PALLOC, CC_W_LEAF, CC_AT_SLOT_B));
    cover_op(&cov, &s[3], &s[4], next_root(&s[3], ps), CC_FREE);
    assert_true(cell(&cov, CC_COVER_V3 + CC_FREE, CC_W_LEAF, CC_AT_SLOT_A));
    assert_true(cell(&cov, CC_COVER_V3 + CC_FREE, CC_W_ROOT, CC_AT_SLOT_B));
    /* None of it in 0.2's rows, and nothing the 0.3 table calls impossible. */
    for (int o = 0; o < CC_COVER_V3; o++)
      for (int w = 0; w < CC_WHAT_KINDS; w++)
        for (int x = 0; x < CC_WHERE_KINDS; x++) assert_false(cov.cell[o][w][x]);
    size_t stray;
    cc_coverage_count(cov.cell, (uint32_t)ps, 512, NULL, &stray);
    assert_int_equal(stray, 0);
    for (int i = 0; i < 5; i++) free(s[i].img);
    cc_coverage_free(&cov);
  }
}

/* A protected alloc in an existing block stages a zeroed copy over a page that held data (free
 * to the live root: its leaf is staged) and the block's inactive copy. */
static void test_protected_alloc_cells(void **state) {
  (void)state;
  size_t ps = 4096;
  unlink(path);
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_OK);
  uint64_t prot, ids[4];
  assert_int_equal(mp_protected_alloc(p, &prot), MP_OK);
  assert_int_equal(mp_alloc_bulk(p, 4, ids), MP_OK);
  for (int i = 0; i < 4; i++) {
    void *data;
    assert_int_equal(mp_page(p, ids[i], &data), MP_OK);
    memset(data, 0xA5, ps);
    assert_int_equal(mp_sync_page(p, ids[i]), MP_OK);
  }
  assert_int_equal(mp_free_bulk(p, 4, ids), MP_OK);
  snap a, b;
  take(p, &a);
  assert_int_equal(mp_protected_alloc(p, &prot), MP_OK);
  take(p, &b);
  mp_close(p);
  cc_coverage cov;
  cc_coverage_init(&cov, (uint32_t)ps, 512);
  cover_op(&cov, &a, &b, next_root(&a, ps), CC_PALLOC);
  assert_true(cell(&cov, CC_COVER_V3 + CC_PALLOC, CC_W_PROTECTED, CC_AT_ANY) ||
              cell(&cov, CC_COVER_V3 + CC_PALLOC, CC_W_PROTECTED, CC_AT_WORD_EDGE));
  assert_true(cell(&cov, CC_COVER_V3 + CC_PALLOC, CC_W_DIR_STAGE, CC_AT_ANY));
  assert_false(cell(&cov, CC_COVER_V3 + CC_PALLOC, CC_W_DIR_STAGE, CC_AT_NEW_BLOCK));
  assert_false(cell(&cov, CC_COVER_V3 + CC_PALLOC, CC_W_FREE, CC_AT_ANY));
  free(a.img);
  free(b.img);
  cc_coverage_free(&cov);
}

/* The create's first msync (no superblock yet: the case says 0.3) and its superblock; a
 * writer's open that invalidates a stale slot. */
static void test_create_and_recovery_cells(void **state) {
  (void)state;
  size_t ps = 1024, mb = 4096;
  unlink(path);
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_OK);
  mp_close(p);
  snap done;
  take(NULL, &done);
  uint8_t *first = malloc(done.len), *zero = calloc(1, done.len);
  memcpy(first, done.img, done.len);
  memset(first, 0, 512); /* before the superblock sector lands */
  cc_coverage cov;
  cc_coverage_init(&cov, (uint32_t)ps, 512);
  cov.create3 = true;
  cc_cover_step3(&cov, first, done.len, zero, done.len, 0, done.len / ps, CC_COVER_V3 + CC_COVER_CREATE);
  assert_true(cell(&cov, CC_COVER_V3 + CC_COVER_CREATE, CC_W_ROOT, CC_AT_SLOT_B));
  assert_true(cell(&cov, CC_COVER_V3 + CC_COVER_CREATE, CC_W_LEAF, CC_AT_SLOT_A));
  assert_false(cell(&cov, CC_COVER_V3 + CC_COVER_CREATE, CC_W_SUPERBLOCK, CC_AT_ANY));
  assert_false(cell(&cov, CC_COVER_V3 + CC_COVER_CREATE, CC_W_LEAF, CC_AT_SLOT_B)); /* zero: not written */
  cc_cover_step3(&cov, done.img, done.len, first, done.len, 0, 1, CC_COVER_V3 + CC_COVER_CREATE);
  assert_true(cell(&cov, CC_COVER_V3 + CC_COVER_CREATE, CC_W_SUPERBLOCK, CC_AT_ANY));
  assert_int_equal(count_cells(&cov), 3);
  /* A stale slot B (a header above the root's generation) whose magic a writer's open zeroes. */
  uint8_t *stale = malloc(done.len), *cleared = malloc(done.len);
  memcpy(stale, done.img, done.len);
  memcpy(stale + 4 * mb, done.img + 3 * mb, mb);
  stale[4 * mb + 8] = 9; /* generation 9 > 1 */
  memcpy(cleared, stale, done.len);
  memset(cleared + 4 * mb, 0, 4);
  cc_cover_step3(&cov, cleared, done.len, stale, done.len, 16, 17, CC_COVER_V3 + CC_COVER_RECOVER);
  assert_true(cell(&cov, CC_COVER_V3 + CC_COVER_RECOVER, CC_W_LEAF_CLEAR, CC_AT_SLOT_B));
  assert_int_equal(count_cells(&cov), 4);
  free(first);
  free(zero);
  free(stale);
  free(cleared);
  free(done.img);
  cc_coverage_free(&cov);
}

/* The 0.3 rows of the table: what FORMAT.md 3.6's protocol writes is required, at every size;
 * 0.2's writes are not 0.3's, nor the other way. */
static void test_table_rows(void **state) {
  (void)state;
  static const uint32_t sizes[] = {1024, 4096, 16384};
  for (size_t k = 0; k < 3; k++) {
    uint32_t ps = sizes[k];
    for (int slot = CC_AT_SLOT_A; slot <= CC_AT_SLOT_B; slot++) {
      static const int ops[] = {CC_ALLOC, CC_ALLOC_BULK, CC_FREE, CC_FREE_BULK, CC_PALLOC, CC_PFREE, CC_PWRITE};
      for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        assert_int_equal(cc_cell_status(CC_COVER_V3 + ops[i], CC_W_ROOT, slot, ps, 512), CC_CELL_REQUIRED);
      assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_COVER_RECOVER, CC_W_LEAF_CLEAR, slot, ps, 4096), CC_CELL_REQUIRED);
      assert_int_equal(cc_cell_status(CC_ALLOC, CC_W_ROOT, slot, ps, 512), CC_CELL_IMPOSSIBLE);
    }
    assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_PWRITE, CC_W_LEAF, CC_AT_SLOT_A, ps, 512), CC_CELL_IMPOSSIBLE);
    assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_ALLOC, CC_W_META, CC_AT_ANY, ps, 512), CC_CELL_IMPOSSIBLE);
    assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_ALLOC, CC_W_META_SELECTOR, CC_AT_ANY, ps, 512), CC_CELL_IMPOSSIBLE);
    assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_PALLOC, CC_W_ROOT, CC_AT_NEW_BLOCK, ps, 512), CC_CELL_REQUIRED);
    assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_FREE, CC_W_ROOT, CC_AT_GROWTH, ps, 512), CC_CELL_IMPOSSIBLE);
    assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_COVER_CREATE, CC_W_ROOT, CC_AT_SLOT_B, ps, 512), CC_CELL_REQUIRED);
    assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_COVER_CREATE, CC_W_ROOT, CC_AT_SLOT_A, ps, 512), CC_CELL_IMPOSSIBLE);
    /* growth past group 0 and the upgrade: allowed, no suite case reaches them (coverage3.c) */
    assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_ALLOC_BULK, CC_W_LEAF, CC_AT_NEW_GROUP, ps, 512), CC_CELL_ALLOWED);
    assert_int_equal(cc_cell_status(CC_COVER_V3 + CC_ALLOC_BULK, CC_W_SUPERBLOCK, CC_AT_ANY, ps, 512), CC_CELL_ALLOWED);
  }
  assert_string_equal(cc_cover_op_name(CC_COVER_V3 + CC_PALLOC), "v3-palloc");
  assert_string_equal(cc_cover_op_name(CC_COVER_V3 + CC_COVER_RECOVER), "v3-recovery");
  assert_string_equal(cc_cover_what_name(CC_W_LEAF_CLEAR), "leaf-invalidate");
  assert_string_equal(cc_cover_where_name(CC_AT_NEW_GROUP), "new-group");
  /* A case's format counts its own rows only. */
  cc_cover_cells cells;
  memset(cells, 0, sizeof cells);
  size_t r2, r3, all;
  cc_coverage_count_format(cells, 2, 4096, 512, &r2, NULL);
  cc_coverage_count_format(cells, 3, 4096, 512, &r3, NULL);
  cc_coverage_count(cells, 4096, 512, &all, NULL);
  assert_true(r2 > 0 && r3 > 0);
  assert_int_equal(r2 + r3, all);
}

int main(void) {
  snprintf(path, sizeof path, "/tmp/cc-coverage-%d.mp", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_commit_cells),
      cmocka_unit_test(test_protected_alloc_cells),
      cmocka_unit_test(test_create_and_recovery_cells),
      cmocka_unit_test(test_table_rows),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  unlink(path);
  return rc;
}
