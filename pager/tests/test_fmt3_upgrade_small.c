/* test_fmt3_upgrade_small.c: the upgrade from 0.2 to 0.3 at 1 and 2 KiB pages (FORMAT.md 3.8),
 * where page 0's 4 KiB sector also holds 0.2's metadata copies (and page 3 at 1 KiB): the file
 * upgraded keeps every page and its bytes, page 3 included; and the states a cut leaves, with the
 * superblock's sector or any staged block torn to garbage, open as the 0.2 file or the 0.3 one. */
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

static size_t ps;
static char path[1024];
static uint8_t *img_full;         /* the full 0.2 file */
static uint8_t *img_after;        /* the upgrade committed, nothing else */
static size_t full_len, after_len;
static uint64_t nreg;             /* regular pages of the 0.2 file */

static uint64_t nprot;             /* its protected pages: ids 0 .. nprot - 1 */

static uint8_t fill(uint64_t id) { return (uint8_t)(id * 37 + 11); }
static uint8_t pfill(uint64_t id) { return (uint8_t)(id * 13 + 200); }

/* Every protected page reads pfill(id) in every byte. */
static void assert_prot(mp_pager *p) {
  for (uint64_t id = 0; id < nprot; id++) {
    const void *d;
    assert_int_equal(mp_protected_read(p, id, &d), MP_OK);
    for (size_t i = 0; i < ps; i++)
      if (((const uint8_t *)d)[i] != pfill(id)) fail_msg("protected page %llu byte %zu", (unsigned long long)id, i);
  }
  const void *d;
  assert_int_equal(mp_protected_read(p, nprot, &d), MP_ENOTALLOC);
}

/* Every regular page, each holding fill(id) in every byte; and their count. */
static void assert_pages(mp_pager *p, uint64_t want, bool page3_bytes) {
  uint64_t n = 0;
  for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK; id++, n++) {
    void *d;
    assert_int_equal(mp_page(p, id, &d), MP_OK);
    if (id == 3 && !page3_bytes) continue;
    for (size_t i = 0; i < ps; i++)
      if (((uint8_t *)d)[i] != fill(id)) fail_msg("page %llu byte %zu: %u, not %u", (unsigned long long)id, i,
                                                  ((uint8_t *)d)[i], fill(id));
  }
  assert_int_equal(n, want);
}

static void assert_clean(mp_pager *p) {
  unsigned findings = 99;
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
}

static int msyncs, snap_at;
static int snap_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  if (++msyncs == snap_at) { /* the file as the superblock's msync finds it: the upgrade's after-state */
    free(img_after);
    img_after = t_read_file(path, &after_len);
  }
  return 0;
}

/* A 0.2 file at its capacity, every regular page holding fill(id): page 3 the first regular
 * page, or (prot_first) the first directory page; `np` protected pages (33 to a block at 1 KiB,
 * 67 at 2 KiB), each holding pfill(id). */
static void full_02(bool prot_first, uint64_t np) {
  snprintf(path, sizeof path, "%s", t_path(7, "small.mp"));
  unlink(path);
  mp_pager *p;
  assert_int_equal(mp_create(path, ps, &p), MP_OK);
  uint64_t id;
  if (!prot_first) {
    assert_int_equal(mp_alloc(p, &id), MP_OK);
    assert_int_equal(id, 3);
  }
  nprot = np;
  for (uint64_t k = 0; k < np; k++) {
    assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
    assert_int_equal(id, k);
    void *stage;
    assert_int_equal(mp_protected_begin(p, id, &stage), MP_OK);
    memset(stage, pfill(id), ps);
    assert_int_equal(mp_protected_commit(p, id), MP_OK);
  }
  size_t n = (size_t)(mp_capacity(p) - mp_page_count(p) + mp_free_count(p));
  uint64_t *ids = malloc(n * 8);
  assert_int_equal(mp_alloc_bulk(p, n, ids), MP_OK);
  assert_int_equal(mp_free_count(p), 0);
  nreg = 0;
  for (id = 0; mp_next_regular(p, id, &id) == MP_OK; id++, nreg++) {
    void *d;
    assert_int_equal(mp_page(p, id, &d), MP_OK);
    memset(d, fill(id), ps);
  }
  assert_int_equal(mp_sync(p), MP_OK);
  free(ids);
  mp_close(p);
  free(img_full);
  img_full = t_read_file(path, &full_len);
  assert_int_equal(img_full[5], 2);
}

/* Opens `img` (with `len` bytes) as a writer after a reader: its format, its pages, clean. */
static void expect(const uint8_t *img, size_t len, bool v3, unsigned recovery) {
  assert_int_equal(t_write_file(path, img, len), 0);
  for (int ro = 1; ro >= 0; ro--) {
    mp_pager *p;
    char why[256] = "";
    int rc = mp_open_explain(path, ro ? MP_RDONLY : 0, &p, why, sizeof why);
    if (rc != MP_OK) fail_msg("does not open: %s", why);
    assert_int_equal(mp_capacity(p), v3 ? MP3_MAX_PAGES : (ps - 28) * 8);
    assert_int_equal(mp_recovery(p) & recovery, recovery);
    /* a reader of a garbage head reads page 3 as the disk holds it: a writer's open restores it */
    assert_pages(p, nreg, !(ro && recovery & MP_RECOVER_SALVAGE));
    assert_prot(p);
    assert_clean(p);
    mp_close(p);
  }
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK); /* and the writer left nothing to do */
  assert_int_equal(mp_recovery(p), 0);
  assert_pages(p, nreg, true);
  mp_close(p);
}

static void garbage(uint8_t *img, uint64_t at, size_t len, unsigned seed) {
  for (size_t i = 0; i < len; i++) img[at + i] = (uint8_t)(0xA5 ^ (i * 31) ^ seed);
}

static mp3_sb sb_of(const uint8_t *img) {
  mp3_sb sb;
  char why[200];
  assert_int_equal(mp3__sb_decode(img, MP3_SB_LEN, &sb, why, sizeof why), MP_OK);
  return sb;
}

/* Opens the 0.2 file at `path` with MP_FORMAT_3 and allocates one page, which upgrades it;
 * img_after keeps the file as the superblock's msync (the commit) finds it. */
static mp_pager *upgrade_snapping(uint64_t *id) {
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_FORMAT_3, &p), MP_OK);
  msyncs = 0;
  snap_at = 2;
  assert_int_equal(fiu_enable_external("pager/msync", 1, NULL, 0, snap_cb), 0);
  assert_int_equal(mp_alloc(p, id), MP_OK);
  fiu_disable("pager/msync");
  return p;
}

/* The upgrade, and every state its two barriers can leave. */
static void upgrade_at(size_t page_size, bool prot_first, uint64_t np) {
  ps = page_size;
  full_02(prot_first, np);
  uint64_t id;
  mp_pager *p = upgrade_snapping(&id);
  assert_int_equal(msyncs, 4); /* the upgrade's stage and superblock, the allocation's two */
  assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
  assert_clean(p);
  assert_int_equal(mp_free(p, id), MP_OK); /* (a page past the 0.2 ones: it holds zeros) */
  assert_pages(p, nreg, true);
  assert_prot(p);
  mp_close(p);
  assert_non_null(img_after);

  const uint64_t m = 4096 / ps, T = full_len / ps;
  mp3_sb sb = sb_of(img_after);
  /* below 4 KiB: the sector copy at the first block past the 0.2 file, the rest after it */
  assert_int_equal(sb.copy, T);
  assert_int_equal(sb.root[0], T + m);
  assert_int_equal(sb.flags & MP3_SB_PAGE3, ps == 1024 && !prot_first ? MP3_SB_PAGE3 : 0);
  assert_memory_equal(img_after + sb.copy * ps + MP3_COPY_SB, img_after, MP3_SB_LEN);
  /* what a tool reads of it: block 0 the superblock's but page 3 (regular), the copy metadata */
  uint8_t *kinds = malloc(after_len / ps);
  assert_int_equal(mp_image_page_kinds(img_after, after_len, kinds, after_len / ps), MP_OK);
  for (uint64_t k = 0; k < m; k++)
    assert_int_equal(kinds[k], sb.flags & MP3_SB_PAGE3 && k == 3 ? MP_PAGE_REGULAR : MP_PAGE_SUPERBLOCK);
  for (uint64_t k = sb.copy; k < sb.copy + m; k++) assert_int_equal(kinds[k], MP_PAGE_METADATA);
  free(kinds);
  /* what the commit wrote: the superblock's 512 bytes, nothing else */
  assert_memory_equal(img_after + MP3_SB_LEN, img_full + MP3_SB_LEN, T * ps - MP3_SB_LEN);
  uint8_t *img = malloc(after_len), *before = malloc(after_len);
  memcpy(before, img_after, after_len);
  memcpy(before, img_full, MP3_SB_LEN);

  /* the superblock landed: 0.3, every page as it was, page 3 too */
  expect(img_after, after_len, true, 0);
  /* it did not: 0.2 */
  expect(before, after_len, false, 0);
  /* it landed as a garbage sector of 4 KiB (or of 512 bytes): the copy restores it, page 3 too */
  for (size_t span = 512; span <= 4096; span *= 8) {
    memcpy(img, img_after, after_len);
    garbage(img, 0, span, 1);
    expect(img, after_len, true, MP_RECOVER_SALVAGE);
  }
  /* without the copy, a garbage sector of 512 bytes (the superblock's alone) is what 0.2's
   * salvage rebuilds from pages 1 and 2, as at 4 KiB pages: the 0.2 file */
  memcpy(img, before, after_len);
  garbage(img, 0, 512, 5);
  memset(img + sb.copy * ps, 0, 4);
  expect(img, after_len, false, MP_RECOVER_SALVAGE);
  /* a staged block torn to garbage (the stage's msync cut), the superblock not written: 0.2 */
  /* (and the first and last blocks the directory and protected copies moved to) */
  const uint64_t cap = (ps - 12) / 30, dirs = (np + cap - 1) / cap;
  const uint64_t moved = 5 * m + T, last = T + (5 + 2 * dirs + 2 * np - 1) * m;
  const uint64_t staged[7] = {sb.copy, sb.root[0], sb.root[1], sb.leaf0[0], sb.leaf0[1], moved, last};
  for (int b = 0; b < (np ? 7 : 5); b++) {
    memcpy(img, before, after_len);
    garbage(img, staged[b] * ps, 4096, (unsigned)b);
    expect(img, after_len, false, 0);
  }
  free(img);
  free(before);
}

static void test_upgrade_1k(void **state) {
  (void)state;
  upgrade_at(1024, false, 0);
}

/* With protected pages in three directory blocks: 0.2's copies are single pages, which the
 * upgrade copies into whole blocks past the 0.2 file (3.6); page 3 the first directory page,
 * reserved then (test_upgrade_failures has page 3 regular beside protected pages). */
static void test_upgrade_1k_protected(void **state) {
  (void)state;
  upgrade_at(1024, true, 70);
}

static void test_upgrade_2k_protected(void **state) {
  (void)state;
  upgrade_at(2048, true, 140);
}

/* A copy an upgrade left without committing is invalidated by the 0.2 writer that goes on, so
 * that a garbage page 0 later is refused (the 0.2 metadata copies went with it) instead of
 * bringing back the 0.3 file of that upgrade, without the 0.2 commits made since. */
static void test_stale_copy_dropped(void **state) {
  (void)state;
  ps = 1024;
  full_02(false, 0);
  uint64_t id;
  mp_pager *p = upgrade_snapping(&id);
  mp_close(p);
  memcpy(img_after, img_full, MP3_SB_LEN); /* the cut before the superblock */
  assert_int_equal(t_write_file(path, img_after, after_len), 0);
  const uint64_t copy = full_len / ps;
  assert_memory_equal(img_after + copy * ps, "MPC3", 4);
  assert_int_equal(mp_open(path, 0, &p), MP_OK); /* a 0.2 writer: the file at its capacity */
  assert_int_equal(mp_capacity(p), (ps - 28) * 8);
  assert_int_equal(mp_free(p, 5), MP_OK); /* a 0.2 commit the copy does not know */
  mp_close(p);
  size_t len;
  uint8_t *img = t_read_file(path, &len);
  assert_int_equal(len, after_len);
  assert_memory_not_equal(img + copy * ps, "MPC3", 4);
  garbage(img, 0, 4096, 7);
  assert_int_equal(t_write_file(path, img, len), 0);
  char why[256] = "";
  assert_int_equal(mp_open_explain(path, MP_RDONLY, &p, why, sizeof why), MP_ECORRUPT);
  assert_non_null(strstr(why, "metadata"));
  free(img);
}

/* A failed msync of the stage or of the superblock: MP_EIO, the 0.2 file and handle, and the
 * copy invalidated on the disk; the call then upgrades (after one that runs out of memory). */
static int fail_at;
static int fail_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  return ++msyncs == fail_at;
}

static void test_upgrade_failures(void **state) {
  (void)state;
  ps = 1024;
  for (fail_at = 1; fail_at <= 2; fail_at++) {
    full_02(false, 2);
    mp_pager *p;
    assert_int_equal(mp_open(path, MP_FORMAT_3, &p), MP_OK);
    uint64_t id;
    msyncs = 0;
    assert_int_equal(fiu_enable_external("pager/msync", 1, (void *)(intptr_t)EIO, 0, fail_cb), 0);
    assert_int_equal(mp_alloc(p, &id), MP_EIO);
    fiu_disable("pager/msync");
    assert_int_equal(mp_capacity(p), (ps - 28) * 8);
    assert_pages(p, nreg, true);
    assert_prot(p);
    assert_clean(p);
    size_t len;
    uint8_t *img = t_read_file(path, &len);
    assert_int_equal(img[5], 2);
    assert_memory_not_equal(img + full_len, "MPC3", 4);
    free(img);
    /* (and out of memory before the stage: nothing written, the 0.2 handle as it was) */
    assert_int_equal(fiu_enable("pager/malloc", 1, (void *)(intptr_t)ENOMEM, FIU_ONETIME), 0);
    assert_int_equal(mp_alloc(p, &id), MP_ENOMEM);
    fiu_disable("pager/malloc");
    assert_int_equal(mp_capacity(p), (ps - 28) * 8);
    assert_clean(p);
    assert_int_equal(mp_alloc(p, &id), MP_OK);
    assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
    assert_int_equal(mp_free(p, id), MP_OK);
    assert_pages(p, nreg, true);
    assert_clean(p);
    mp_close(p);
  }
}

/* Out of memory once the upgrade committed (the handle's load of the 0.3 file it just wrote):
 * the file is 0.3 and whole, the handle poisoned, the call says MP_ENOMEM (not MP_ECORRUPT, as
 * if the file were damaged), and a reopen reads everything. */
static int committed_msyncs;
static int count_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  committed_msyncs++;
  return 0;
}
static int after_commit_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)flags;
  *failinfo = (void *)(intptr_t)ENOMEM;
  return committed_msyncs >= 2; /* the stage's msync and the superblock's have returned */
}

static void test_out_of_memory_after_commit(void **state) {
  (void)state;
  ps = 1024;
  full_02(false, 2);
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_FORMAT_3, &p), MP_OK);
  uint64_t id;
  committed_msyncs = 0;
  assert_int_equal(fiu_enable_external("pager/msync", 1, NULL, 0, count_cb), 0);
  assert_int_equal(fiu_enable_external("pager/malloc", 1, NULL, 0, after_commit_cb), 0);
  assert_int_equal(mp_alloc(p, &id), MP_ENOMEM);
  fiu_disable("pager/malloc");
  fiu_disable("pager/msync");
  assert_int_equal(committed_msyncs, 2);
  assert_int_equal(mp_alloc(p, &id), MP_EPOISONED);
  mp_close(p);
  size_t len;
  uint8_t *img = t_read_file(path, &len);
  assert_int_equal(img[5], 3); /* the superblock's minor version: the upgrade is durable */
  free(img);
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
  assert_pages(p, nreg, true);
  assert_prot(p);
  assert_clean(p);
  mp_close(p);
}

/* After the upgrade at 1 KiB page 3 is a regular page like any other: written, freed, allocated
 * again; and a garbage sector from one of its own writes (data sharing the superblock's sector)
 * does not make the file unopenable: the copy gives the superblock back (and page 3 what it
 * held at the upgrade: its write was in flight). */
static void test_page3_after(void **state) {
  (void)state;
  ps = 1024;
  assert_int_equal(t_write_file(path, img_after, after_len), 0);
  mp_pager *p;
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  void *d;
  assert_int_equal(mp_page(p, 3, &d), MP_OK);
  memset(d, 0x77, ps);
  assert_int_equal(mp_sync(p), MP_OK);
  assert_int_equal(mp_free(p, 3), MP_OK);
  assert_int_equal(mp_page(p, 3, &d), MP_ENOTALLOC);
  uint64_t id;
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  assert_int_equal(id, 3);
  assert_clean(p);
  mp_close(p);
  size_t len;
  uint8_t *img = t_read_file(path, &len);
  garbage(img, 0, 4096, 3);
  assert_int_equal(t_write_file(path, img, len), 0);
  free(img);
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_recovery(p), MP_RECOVER_SALVAGE);
  assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
  assert_int_equal(mp_page(p, 3, &d), MP_OK);
  assert_int_equal(((uint8_t *)d)[0], fill(3));
  assert_clean(p);
  mp_close(p);
  free(img_after);
  free(img_full);
  img_after = img_full = NULL;
}

/* Two blocks that check as copies (the second one crafted: a superblock naming it, at a page
 * below 0.2's capacity) leave no way to tell which is the file's: refused, saying so. And a
 * copy damaged under an open handle is a finding of mp_check. */
static void test_copies_refused(void **state) {
  (void)state;
  ps = 1024;
  size_t len;
  uint8_t *img = t_read_file(path, &len); /* test_page3_after's upgraded file */
  mp3_sb sb = sb_of(img);
  const uint64_t other = 7964;
  uint8_t head[MP3_SB_LEN];
  mp3_sb forged = sb;
  forged.copy = other;
  mp3__sb_encode(&forged, head);
  mp3__copy_encode(img + other * ps, ps, other, head, NULL);
  garbage(img, 0, 4096, 9);
  assert_int_equal(t_write_file(path, img, len), 0);
  mp_pager *p;
  char why[256] = "";
  assert_int_equal(mp_open_explain(path, MP_RDONLY, &p, why, sizeof why), MP_ECORRUPT);
  assert_non_null(strstr(why, "2 copies"));
  free(img);
  img = t_read_file(path, &len);
  memset(img + other * ps, 0, 4);
  assert_int_equal(t_write_file(path, img, len), 0);
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_recovery(p), MP_RECOVER_SALVAGE);
  assert_clean(p);
  int fd = open(path, O_WRONLY);
  assert_int_equal(pwrite(fd, "X", 1, (off_t)(sb.copy * ps + MP3_COPY_SB + 100)), 1);
  close(fd);
  unsigned findings = 0;
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 1);
  mp_close(p);
  free(img);
}

int main(void) {
  if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 1);
  fiu_init(0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_upgrade_1k_protected),
      cmocka_unit_test(test_upgrade_2k_protected), cmocka_unit_test(test_stale_copy_dropped),
      cmocka_unit_test(test_upgrade_failures),     cmocka_unit_test(test_upgrade_1k),
      cmocka_unit_test(test_out_of_memory_after_commit),
      cmocka_unit_test(test_page3_after),          cmocka_unit_test(test_copies_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
