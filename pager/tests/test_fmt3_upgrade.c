/* test_fmt3_upgrade.c: a full 0.2 file opened with MP_FORMAT_3 becomes 0.3 at the allocation
 * that outgrows 0.2 (FORMAT.md 3.8), keeping every page, its data and the protected pages; and
 * every crash state of the upgrade's two barriers opens as the 0.2 file before or the 0.3 after. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fiu-control.h>
#include <fiu.h>

#include "format3.h"
#include "mappedpages.h"
#include "support.h"

#define PS 4096u

static int msyncs;
static int count_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  msyncs++;
  return 0;
}

/* What the API shows of a file: its regular pages (with the byte page id % 701 == 0 ones hold)
 * and its protected pages' first bytes. */
typedef struct view {
  uint64_t *reg;
  size_t n;
  uint8_t prot[2];
} view;

static view look(mp_pager *p) {
  view v = {.reg = malloc(40000 * 8)};
  for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK; id++) {
    v.reg[v.n++] = id;
    if (id % 701 == 0) {
      void *d;
      assert_int_equal(mp_page(p, id, &d), MP_OK);
      assert_int_equal(((uint8_t *)d)[PS - 1], (uint8_t)id);
    }
  }
  for (uint64_t k = 0; k < 2; k++) {
    const void *d;
    assert_int_equal(mp_protected_read(p, k, &d), MP_OK);
    v.prot[k] = ((const uint8_t *)d)[PS / 2];
  }
  return v;
}

static void assert_same(const view *a, const view *b) {
  assert_int_equal(a->n, b->n);
  assert_memory_equal(a->reg, b->reg, a->n * 8);
  assert_memory_equal(a->prot, b->prot, 2);
}

static void assert_clean(mp_pager *p) {
  unsigned findings = 99;
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
}

static char path[1024];
static uint8_t sector02[MP3_SB_LEN]; /* page 0's first sector before the upgrade */
static view before, after;

/* A 0.2 file at its capacity: regular pages (every 701st holding its id's low byte, synced)
 * and two protected pages with content. */
static void full_02(void) {
  snprintf(path, sizeof path, "%s", t_path(7, "up.mp"));
  mp_pager *p;
  assert_int_equal(mp_create(path, PS, &p), MP_OK);
  mp_close(p);
  assert_int_equal(mp_open(path, MP_SPARSE, &p), MP_OK); /* (growth by ftruncate: 127 MiB sparse) */
  uint64_t prot;
  for (int k = 0; k < 2; k++) {
    assert_int_equal(mp_protected_alloc(p, &prot), MP_OK);
    void *stage;
    assert_int_equal(mp_protected_begin(p, prot, &stage), MP_OK);
    memset(stage, 0x60 + k, PS);
    assert_int_equal(mp_protected_commit(p, prot), MP_OK);
  }
  uint64_t *ids = malloc(40000 * 8);
  size_t n = (size_t)(mp_capacity(p) - mp_page_count(p) + mp_free_count(p));
  assert_int_equal(mp_alloc_bulk(p, n, ids), MP_OK);
  assert_int_equal(mp_free_count(p), 0);
  for (size_t i = 0; i < n; i++)
    if (ids[i] % 701 == 0) {
      void *d;
      assert_int_equal(mp_page(p, ids[i], &d), MP_OK);
      memset(d, (int)(uint8_t)ids[i], PS);
    }
  assert_int_equal(mp_sync(p), MP_OK);
  free(ids);
  uint64_t id;
  assert_int_equal(mp_alloc(p, &id), MP_EFULL); /* without the flag: 0.2's limit, as before */
  before = look(p);
  mp_close(p);
  int fd = open(path, O_RDONLY);
  assert_int_equal(pread(fd, sector02, sizeof sector02, 0), (ssize_t)sizeof sector02);
  close(fd);
  assert_int_equal(sector02[5], 2);
}

static void test_upgrade(void **state) {
  (void)state;
  full_02();
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_FORMAT_3 | MP_RDONLY, &p), MP_EINVAL);
  assert_int_equal(mp_open(path, MP_FORMAT_3 | MP_SPARSE, &p), MP_OK);
  assert_int_equal(mp_capacity(p), 32544);
  uint64_t id;
  msyncs = 0;
  assert_int_equal(fiu_enable_external("pager/msync", 1, NULL, 0, count_cb), 0);
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  fiu_disable("pager/msync");
  assert_int_equal(msyncs, 4); /* the upgrade's stage and superblock, then the allocation's two */
  assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
  assert_int_equal(mp_page_count(p), 2 * 32544);
  assert_clean(p);
  void *d;
  assert_int_equal(id, 1); /* 0.2's metadata copies are free pages now, the first ones */
  assert_int_equal(mp_page(p, 2, &d), MP_ENOTALLOC);
  after = look(p);
  assert_int_equal(after.n, before.n + 1);
  mp_close(p);
  int fd = open(path, O_RDONLY);
  uint8_t head[MP3_SB_LEN];
  assert_int_equal(pread(fd, head, sizeof head, 0), (ssize_t)sizeof head);
  close(fd);
  assert_true(mp3__is_v3(head, sizeof head));
  assert_int_equal(t_le32(head + MP3_SB_FLAGS), MP3_SB_SPARSE); /* the handle's growth, kept */
  for (int ro = 1; ro >= 0; ro--) {
    assert_int_equal(mp_open(path, ro ? MP_RDONLY : 0, &p), MP_OK);
    assert_int_equal(mp_recovery(p), 0);
    view again = look(p);
    assert_same(&again, &after);
    free(again.reg);
    assert_clean(p);
    mp_close(p);
  }
}

/* Replaces page 0's first sector, or `len` bytes at `at`. */
static void put(uint64_t at, const void *bytes, size_t len) {
  int fd = open(path, O_WRONLY);
  assert_int_equal(pwrite(fd, bytes, len, (off_t)at), (ssize_t)len);
  close(fd);
}

static void expect(const view *want, bool v3, unsigned recovery) {
  mp_pager *p;
  char why[256] = "";
  int rc = mp_open_explain(path, 0, &p, why, sizeof why);
  if (rc != MP_OK) fail_msg("does not open: %s", why);
  assert_int_equal(mp_capacity(p), v3 ? MP3_MAX_PAGES : 32544);
  assert_int_equal(mp_recovery(p) & recovery, recovery);
  view v = look(p);
  assert_same(&v, want);
  free(v.reg);
  assert_clean(p);
  mp_close(p);
}

/* The upgraded file, and the states a cut leaves on the way to it: the stage (past the 0.2 file's
 * pages) with any of its sectors torn or garbage and page 0 untouched; the superblock sector
 * landed or not, or garbage. */
static void test_upgrade_cuts(void **state) {
  (void)state;
  /* test_upgrade left the upgraded file: its root and leaf blocks lie past 32,544 pages */
  assert_true(after.n > 0);
  uint8_t now[MP3_SB_LEN], garbage[MP3_SB_LEN], junk[PS];
  int fd = open(path, O_RDONLY);
  assert_int_equal(pread(fd, now, sizeof now, 0), (ssize_t)sizeof now);
  close(fd);
  mp3_sb sb;
  char why[200];
  assert_int_equal(mp3__sb_decode(now, sizeof now, &sb, why, sizeof why), MP_OK);
  for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (uint8_t)(0xA5 ^ (i * 31));
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(0x3C ^ (i * 17));

  /* the superblock landed: the 0.3 state after */
  expect(&after, true, 0);
  /* it did not: 0.2 before, the stage ignored (whatever of it landed) */
  put(0, sector02, sizeof sector02);
  expect(&before, false, 0);
  for (int i = 0; i < 4; i++) {
    uint64_t page = i < 2 ? sb.root[i] : sb.leaf0[i - 2];
    put(page * PS + (uint64_t)(i * 512), junk, 512);
  }
  put(32544ull * PS, junk, sizeof junk); /* group 1's leaf slot A, torn to garbage */
  expect(&before, false, 0);
  /* it was torn to garbage: salvage rebuilds the 0.2 page 0 (pages 1 and 2 untouched) */
  put(0, garbage, sizeof garbage);
  expect(&before, false, MP_RECOVER_SALVAGE);
  /* and a writer's next growth upgrades again, over the stage the first one left */
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_FORMAT_3 | MP_SPARSE, &p), MP_OK);
  uint64_t id;
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
  view v = look(p);
  assert_same(&v, &after);
  free(v.reg);
  assert_clean(p);
  mp_close(p);
  expect(&after, true, 0);
  free(before.reg);
  free(after.reg);
}

static int fail_at;
static int fail_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  return ++msyncs == fail_at;
}

/* A failed msync of the stage or of the superblock: MP_EIO, the handle and the file still the
 * 0.2 ones (page 0's sector put back), and the call again upgrades. */
/* A protected allocation that outgrows 0.2 upgrades the file as well. */
static void test_upgrade_by_protected_alloc(void **state) {
  (void)state;
  full_02();
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_SPARSE, &p), MP_OK);
  uint64_t id;
  assert_int_equal(mp_protected_alloc(p, &id), MP_EFULL); /* without the flag */
  mp_close(p);
  assert_int_equal(mp_open(path, MP_FORMAT_3 | MP_SPARSE, &p), MP_OK);
  assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
  assert_int_equal(id, 2);
  assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
  view v = look(p);
  assert_same(&v, &before);
  free(v.reg);
  assert_clean(p);
  mp_close(p);
  expect(&before, true, 0);
  free(before.reg);
}

static void test_upgrade_failures(void **state) {
  (void)state;
  for (fail_at = 1; fail_at <= 2; fail_at++) {
    full_02();
    mp_pager *p;
    assert_int_equal(mp_open(path, MP_FORMAT_3 | MP_SPARSE, &p), MP_OK);
    uint64_t id;
    msyncs = 0;
    assert_int_equal(fiu_enable_external("pager/msync", 1, (void *)(intptr_t)EIO, 0, fail_cb), 0);
    assert_int_equal(mp_alloc(p, &id), MP_EIO);
    fiu_disable("pager/msync");
    assert_int_equal(mp_capacity(p), 32544);
    assert_int_equal(((const uint8_t *)sector02)[5], 2);
    view v = look(p);
    assert_same(&v, &before);
    free(v.reg);
    assert_clean(p);
    mp_close(p);
    expect(&before, false, 0);
    assert_int_equal(mp_open(path, MP_FORMAT_3 | MP_SPARSE, &p), MP_OK);
    assert_int_equal(mp_alloc(p, &id), MP_OK);
    assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
    assert_clean(p);
    mp_close(p);
    free(before.reg);
  }
}

/* A 0.2 file with 239 directory blocks (as many as its page 0 holds at 4 KiB, one more than a
 * 0.3 root does; another writer's, this library fills blocks before it adds one) is not
 * upgraded: MP_EFULL, the file untouched. */
static void test_upgrade_too_many_blocks(void **state) {
  (void)state;
  const uint32_t blocks = 239;
  const uint64_t total = 3 + 2 * blocks;
  uint8_t *img = calloc(total, PS);
  memcpy(img, "MPPG\0\2\0\1", 8);
  t_put32(img + 8, 12);
  t_put32(img + 16, 0x2144DF1Cu); /* the CRC of any whole page with its own CRC */
  t_put32(img + 20, blocks);
  for (uint32_t b = 0; b < blocks; b++) {
    t_put64(img + 24 + 17 * b, 3 + 2 * b);
    t_put64(img + 24 + 17 * b + 8, 4 + 2 * b);
    uint8_t *dir = img + (3 + 2 * (uint64_t)b) * PS;
    for (int k = 0; k < 2; k++, dir += PS) {
      t_put32(dir, (PS - 12) / 30);
      t_put32(dir + PS - 4, t_crc(dir, PS - 4));
    }
  }
  t_put32(img + PS - 4, t_crc(img + 20, PS - 24));
  for (int k = 1; k <= 2; k++) {
    uint8_t *meta = img + (size_t)k * PS;
    t_put64(meta, total);
    for (uint64_t id = 0; id < total; id++) meta[24 + id / 8] |= (uint8_t)(1u << (id % 8));
    t_put32(meta + PS - 4, t_crc(meta, PS - 4));
  }
  snprintf(path, sizeof path, "%s", t_path(7, "blocks.mp"));
  assert_int_equal(t_write_file(path, img, total * PS), 0);
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_FORMAT_3, &p), MP_OK);
  assert_clean(p);
  uint64_t *ids = malloc(40000 * 8);
  assert_int_equal(mp_alloc_bulk(p, 40000, ids), MP_EFULL); /* more than 0.2 holds: an upgrade, refused */
  assert_int_equal(mp_capacity(p), 32544);
  assert_clean(p);
  assert_int_equal(mp_alloc(p, ids), MP_OK); /* and the 0.2 file works on */
  mp_close(p);
  int fd = open(path, O_RDONLY);
  uint8_t head[8];
  assert_int_equal(pread(fd, head, sizeof head, 0), (ssize_t)sizeof head);
  close(fd);
  assert_int_equal(head[5], 2);
  free(ids);
  free(img);
}

int main(void) {
  /* Scratch files on tmpfs when there is one: these tests sync often, a flush of a real disk
   * costs each msync milliseconds, and nothing they check depends on the file system. */
  if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 1);
  fiu_init(0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_upgrade_cuts),
      cmocka_unit_test(test_upgrade_by_protected_alloc),
      cmocka_unit_test(test_upgrade_failures),
      cmocka_unit_test(test_upgrade_too_many_blocks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
