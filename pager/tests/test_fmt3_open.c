/* test_fmt3_open.c: a 0.3 file is created as FORMAT.md 3.5 lays it out, a cut anywhere in its
 * create leaves a file that opens or a leftover that create replaces, and open and mp_check
 * refuse or report every inconsistency between its superblock, roots and leaves. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format3.h"
#include "layout.h"
#include "mappedpages.h"
#include "support.h"

static const size_t sizes[] = {1024, 2048, 4096, 16384};

static char new3[1024];

/* Creates new3 (a path kept across t_path calls, which unlink theirs) and reads it back. */
static uint8_t *create_image(size_t ps, unsigned flags, size_t *len) {
  const char *path = new3;
  if (!new3[0]) snprintf(new3, sizeof new3, "%s", t_path(7, "new3.mp"));
  unlink(path);
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3 | flags, &p), MP_OK);
  assert_int_equal(mp_close(p), MP_OK);
  uint8_t *img = t_read_file(path, len);
  assert_non_null(img);
  return img;
}

static void test_create_layout(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t ps = sizes[i], mb = mp3__mb(ps), len;
    uint64_t m = mp3__m(ps);
    unsigned log2 = (unsigned)__builtin_ctzll(ps);
    uint8_t *img = create_image(ps, 0, &len);
    assert_int_equal(len, 6 * mb);
    /* block 0: the superblock sector, then zeros */
    mp3_sb sb;
    char why[200];
    assert_int_equal(mp3__sb_decode(img, len, &sb, why, sizeof why), MP_OK);
    assert_int_equal(img[5], 3);
    assert_int_equal(sb.flags, 0);
    assert_int_equal(sb.root[0], m);
    assert_int_equal(sb.root[1], 2 * m);
    assert_int_equal(sb.leaf0[0], 3 * m);
    assert_int_equal(sb.leaf0[1], 4 * m);
    for (size_t b = MP3_SB_LEN; b < mb; b++) assert_int_equal(img[b], 0);
    /* block 1: root slot 0 never written; block 2: the root of generation 1 */
    for (size_t b = mb; b < 2 * mb; b++) assert_int_equal(img[b], 0);
    mp3_root r;
    assert_int_equal(mp3__root_decode(img + 2 * mb, log2, 1, &r, why, sizeof why), MP_OK);
    assert_int_equal(r.generation, 1);
    assert_int_equal(r.total, 6 * m);
    assert_int_equal(r.free_count, m);
    assert_int_equal(r.dir_count, 0);
    /* block 3: group 0's leaf, the five metadata blocks allocated; block 4 (slot B) zero */
    mp3_leaf l;
    assert_int_equal(mp3__leaf_decode(img + 3 * mb, ps, 0, 6 * m, &l, why, sizeof why), MP_OK);
    assert_int_equal(l.generation, 1);
    assert_int_equal(l.free_count, m);
    assert_int_equal(mp__popcount(img + 3 * mb + MP3_LEAF_BITMAP, 5 * m), 5 * m);
    for (size_t b = 4 * mb; b < 6 * mb; b++) assert_int_equal(img[b], 0);
    free(img);

    /* What a handle says of it, writer and reader. */
    const char *path = new3;
    for (int ro = 0; ro < 2; ro++) {
      mp_pager *p;
      assert_int_equal(mp_open(path, ro ? MP_RDONLY : 0, &p), MP_OK);
      assert_int_equal(mp_page_size(p), ps);
      assert_int_equal(mp_page_count(p), 6 * m);
      assert_int_equal(mp_free_count(p), m);
      assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
      assert_int_equal(mp_recovery(p), 0);
      assert_int_equal(mp_leaked_count(p), 0);
      unsigned findings = 9;
      assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
      assert_int_equal(findings, 0);
      uint64_t id;
      assert_int_equal(mp_next_regular(p, 0, &id), MP_ENOENT);
      void *data;
      for (uint64_t pg = 0; pg < 6 * m; pg++) assert_int_not_equal(mp_page(p, pg, &data), MP_OK);
      assert_int_equal(mp_next_protected(p, 0, &id), MP_ENOENT);
      if (ro) assert_int_equal(mp_protected_alloc(p, &id), MP_ERDONLY);
      assert_int_equal(mp_close(p), MP_OK);
    }
  }
}

static void test_create_flags(void **state) {
  (void)state;
  const char *path = t_path(0, "flags.mp");
  mp_pager *p;
  size_t len;
  /* MP_SPARSE is kept in the superblock of a 0.3 file */
  uint8_t *img = create_image(4096, MP_SPARSE, &len);
  assert_int_equal(t_le32(img + MP3_SB_FLAGS), MP3_SB_SPARSE);
  free(img);
  /* the open flag: a writer's (without MP_CREATE it creates nothing) */
  assert_int_equal(mp_open(path, MP_FORMAT_3, &p), MP_ENOENT);
  assert_int_equal(mp_open(path, MP_FORMAT_3 | MP_RDONLY, &p), MP_EINVAL);
  assert_int_equal(mp_open(path, MP_FORMAT_3 | MP_PREVIEW, &p), MP_EINVAL);
  assert_int_equal(mp_open(path, MP_CREATE | MP_FORMAT_3, &p), MP_OK);
  assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
  assert_int_equal(mp_page_size(p), MP_DEFAULT_PAGE_SIZE);
  mp_close(p);
  img = t_read_file(path, &len);
  assert_true(mp3__is_v3(img, len));
  free(img);
  /* an existing file keeps its format (a 0.2 one until it outgrows 0.2: test_fmt3_upgrade) */
  assert_int_equal(mp_open(path, MP_CREATE, &p), MP_OK);
  assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
  mp_close(p);
  path = t_path(0, "old.mp");
  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  mp_close(p);
  assert_int_equal(mp_open(path, MP_CREATE | MP_FORMAT_3, &p), MP_OK);
  assert_int_equal(mp_capacity(p), 32544);
  mp_close(p);
  assert_int_equal(mp_create_flags(path, 4096, MP_FORMAT_3, &p), MP_EEXIST);
  assert_int_equal(mp_create_flags(path, 4096, MP_RDONLY, &p), MP_EINVAL);
  assert_int_equal(mp_create_flags(path, 4096, 0x100, &p), MP_EINVAL);
  assert_int_equal(mp_create_flags(t_path(2, "x.mp"), 3000, MP_FORMAT_3, &p), MP_EINVAL);
  /* mp_create without the flag writes 0.2, byte for byte as before */
  img = t_read_file(path, &len);
  assert_int_equal(len, 4 * 4096);
  assert_int_equal(img[5], 2);
  free(img);
}

/* ---- a cut anywhere in create ----------------------------------------------------- */

/* Create writes root and leaf (blocks 2 and 3), one msync, then the superblock sector, one
 * msync. A cut leaves any subset of the first msync's sectors, and page 0 zero; or all of
 * them and any subset of the superblock's sector (a sector: all or nothing). */
static void assert_opens_or_leftover(const uint8_t *img, size_t len, size_t ps, bool must_open) {
  const char *path = t_path(0, "cut3.mp");
  assert_int_equal(t_write_file(path, img, len), 0);
  mp_pager *p;
  char why[256] = "";
  int rc = mp_open_explain(path, 0, &p, why, sizeof why);
  if (must_open && rc != MP_OK) fail_msg("a landed create does not open: %s", why);
  if (rc == MP_OK) {
    unsigned findings = 9;
    assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
    assert_int_equal(findings, 0);
    mp_close(p);
    assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_EEXIST);
    return;
  }
  if (rc != MP_EINCOMPLETE) fail_msg("a cut create neither opens nor is a leftover: %d %s", rc, why);
  assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_OK);
  mp_close(p);
  assert_int_equal(t_write_file(path, img, len), 0);
  assert_int_equal(mp_open(path, MP_CREATE | MP_FORMAT_3, &p), MP_OK);
  assert_int_equal(mp_capacity(p), MP3_MAX_PAGES);
  mp_close(p);
}

static void test_every_cut_of_create(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t ps = sizes[i], mb = mp3__mb(ps), len;
    uint8_t *fresh = create_image(ps, 0, &len), *img = calloc(1, len);
    assert_opens_or_leftover(img, 0, ps, false);
    /* the file extended, nothing written */
    assert_opens_or_leftover(img, len, ps, false);
    /* subsets of the root's and the leaf's sectors (sampled past 16) */
    size_t sectors = 2 * mb / 512;
    for (uint64_t k = 0; k < 64; k++) {
      uint64_t bits = k * 0x9E3779B97F4A7C15ull;
      memset(img, 0, len);
      for (size_t s = 0; s < sectors; s++)
        if (bits >> (s % 64) & 1 || k == 63) memcpy(img + 2 * mb + 512 * s, fresh + 2 * mb + 512 * s, 512);
      assert_opens_or_leftover(img, len, ps, false);
    }
    /* all of them, with the superblock sector */
    memcpy(img, fresh, len);
    assert_opens_or_leftover(img, len, ps, true);
    /* a garbage sector (512 bytes, or a 4 KiB one) in the first msync, or in the superblock's */
    for (size_t g = 0; g < 3; g++) {
      size_t at = g == 0 ? 2 * mb + 512 : g == 1 ? 3 * mb : 0, n = g == 1 ? 4096 : 512;
      memcpy(img, fresh, len);
      if (g < 2) memset(img, 0, MP3_SB_LEN);
      for (size_t b = 0; b < n; b++) img[at + b] = (uint8_t)(0x5A ^ b);
      assert_opens_or_leftover(img, len, ps, false);
    }
    /* two such regions, or one under a superblock that landed: not a create's, never replaced */
    for (int g = 0; g < 2; g++) {
      memcpy(img, fresh, len);
      img[2 * mb + 100] = 0x5A; /* the root */
      if (g == 0) memset(img, 0, MP3_SB_LEN), img[5 * mb + 7] = 0x5A;
      const char *path = t_path(0, "notours.mp");
      assert_int_equal(t_write_file(path, img, len), 0);
      mp_pager *p;
      assert_int_equal(mp_open(path, MP_CREATE | MP_FORMAT_3, &p), MP_ECORRUPT);
      assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_EEXIST);
      size_t got;
      uint8_t *kept = t_read_file(path, &got);
      assert_int_equal(got, len);
      assert_memory_equal(kept, img, len);
      free(kept);
    }
    /* the sparse variant's leftover is one too */
    free(fresh);
    fresh = create_image(ps, MP_SPARSE, &len);
    memcpy(img, fresh, len);
    memset(img, 0, MP3_SB_LEN);
    assert_opens_or_leftover(img, len, ps, false);
    free(fresh);
    free(img);
  }
}

/* ---- open and check refuse what is inconsistent ---------------------------------- */

/* A 4 KiB file of 12 pages: page 5 and 6 allocated (generation 3: two commits after create), so
 * that both roots and both of group 0's leaf slots hold something. */
static uint8_t *two_commit_image(size_t *len) {
  const char *path = t_path(1, "two.mp");
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, 4096, MP_FORMAT_3, &p), MP_OK);
  uint64_t a, b;
  assert_int_equal(mp_alloc(p, &a), MP_OK);
  assert_int_equal(mp_alloc(p, &b), MP_OK);
  assert_int_equal(a, 5);
  assert_int_equal(b, 6);
  mp_close(p);
  uint8_t *img = t_read_file(path, len);
  assert_int_equal(*len, 12 * 4096);
  return img;
}

static void reseal(uint8_t *block) { t_put32(block + 4092, t_crc(block, 4092)); }

/* Opens img (writer and reader) and asserts it is refused with a reason holding `word`. */
static void refused(const uint8_t *img, size_t len, int code, const char *word) {
  const char *path = t_path(0, "bad3.mp");
  assert_int_equal(t_write_file(path, img, len), 0);
  for (int ro = 0; ro < 2; ro++) {
    mp_pager *p = NULL;
    char why[256] = "";
    int rc = mp_open_explain(path, ro ? MP_RDONLY : 0, &p, why, sizeof why);
    if (rc != code) fail_msg("\"%s\": open gave %d (%s)", word, rc, why);
    if (!strstr(why, word)) fail_msg("reason \"%s\" lacks \"%s\"", why, word);
  }
}

static void test_open_refuses(void **state) {
  (void)state;
  size_t len;
  uint8_t *good = two_commit_image(&len), *img = malloc(len);
  const size_t B = 4096;
  /* generation 3 is in root slot 1 (page 2), generation 2 in slot 0 (page 1); group 0's leaf
   * of generation 3 in slot A (page 3), of generation 2 in slot B (page 4) */
  assert_int_equal(t_le64(good + 2 * B + 8), 3);
  assert_int_equal(t_le64(good + 1 * B + 8), 2);
  assert_int_equal(t_le64(good + 3 * B + 8), 3);
  assert_int_equal(t_le64(good + 4 * B + 8), 2);
#define CASE(edit, code, word)   \
  do {                           \
    memcpy(img, good, len);      \
    edit;                        \
    refused(img, len, code, word); \
  } while (0)
  /* the superblock */
  CASE(img[100] = 1, MP_ECORRUPT, "superblock fails its checksum");
  CASE((t_put64(img + 16, 1 << 20), t_put32(img + 508, t_crc(img, 508))), MP_ECORRUPT, "past the file's 12 pages");
  CASE((t_put64(img + 40, 8), t_put32(img + 508, t_crc(img, 508))), MP_ECORRUPT, "is free in its group's leaf");
  CASE(img[5] = 4, MP_EVERSION, "newer than 0.3");
  CASE(img[6] = 1, MP_EVERSION, "patch 1");
  /* the roots */
  CASE((img[1 * B] = 0, img[2 * B] = 0), MP_ECORRUPT, "no valid root");
  CASE((t_put64(img + 2 * B + 16, 13), reseal(img + 2 * B)), MP_ECORRUPT, "claims 13 pages but the file holds 12");
  CASE((t_put64(img + 2 * B + 24, 7), reseal(img + 2 * B)), MP_ECORRUPT, "the root counts 7 free pages, the leaves 5");
  CASE((t_put32(img + 2 * B + 32, 1), t_put64(img + 2 * B + 40, 7), t_put64(img + 2 * B + 48, 8), reseal(img + 2 * B)),
       MP_ECORRUPT, "directory reference 0 names page 7, free in its group's leaf");
  CASE((t_put32(img + 2 * B + 32, 1), t_put64(img + 2 * B + 40, 5), t_put64(img + 2 * B + 48, 3), reseal(img + 2 * B)),
       MP_ECORRUPT, "directory reference 0 names page 3, a metadata block");
  CASE((t_put32(img + 2 * B + 32, 1), t_put64(img + 2 * B + 40, 5), t_put64(img + 2 * B + 48, 6), reseal(img + 2 * B)),
       MP_ECORRUPT, "directory page 5 (block 0, current copy) is damaged");
  /* the leaves: the current slot's count, a metadata block handed out, both slots gone */
  CASE((t_put32(img + 3 * B + 16, 6), reseal(img + 3 * B)), MP_ECORRUPT, "free count is 6 but its bitmap has 5");
  CASE((img[3 * B + 24] &= 0xFB, t_put32(img + 3 * B + 16, 6), reseal(img + 3 * B), t_put64(img + 2 * B + 24, 6),
        reseal(img + 2 * B)),
       MP_ECORRUPT, "root slot R1: its page 2 is free");
  CASE((img[3 * B] = 0, img[4 * B] = 0), MP_ECORRUPT, "group 0: neither leaf slot");
  CASE((t_put64(img + 3 * B + 8, 4), reseal(img + 3 * B), t_put64(img + 4 * B + 8, 5), reseal(img + 4 * B)),
       MP_ECORRUPT, "both leaf slots are newer than the root");
  /* slot A damaged: slot B, generation 2's, cannot stand in for it under root 3 */
  CASE(img[3 * B + 2000] ^= 1, MP_ECORRUPT, "free count is 0 but its bitmap has 6 free pages");
#undef CASE
  /* A damaged root slot: the other one (the state before) stands. */
  memcpy(img, good, len);
  img[2 * B + 100] ^= 1;
  img[3 * B] = 0; /* ... and its leaf, as if commit 3 had been torn */
  const char *path = t_path(0, "older.mp");
  assert_int_equal(t_write_file(path, img, len), 0);
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  assert_int_equal(mp_page_count(p), 6);
  assert_int_equal(mp_free_count(p), 0);
  mp_close(p);
  free(img);
  free(good);
}

/* A slot newer than the root (a stage whose root never landed): a reader ignores it and says a
 * writer would clean it; a writer's open zeroes its magic on the disk. */
static void test_stale_slot(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = two_commit_image(&len);
  const size_t B = 4096;
  /* slot B (generation 2) restaged as generation 4: page 7 allocated too */
  img[4 * B + 24] |= 0xE0;
  t_put64(img + 4 * B + 8, 4);
  t_put32(img + 4 * B + 16, 4);
  reseal(img + 4 * B);
  const char *path = t_path(0, "stale.mp");
  assert_int_equal(t_write_file(path, img, len), 0);
  mp_pager *p;
  unsigned findings = 9;
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  assert_int_equal(mp_recovery(p), MP_RECOVER_LEAVES);
  assert_int_equal(mp_free_count(p), 5);
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
  mp_close(p);
  assert_int_equal(mp_open(path, MP_PREVIEW, &p), MP_OK);
  assert_int_equal(mp_recovery(p), MP_RECOVER_LEAVES);
  uint64_t id;
  assert_int_equal(mp_next_written(p, 0, &id), MP_OK);
  assert_int_equal(id, 4);
  mp_close(p);
  uint8_t *after = t_read_file(path, &len);
  assert_memory_equal(after, img, len); /* neither reader wrote */
  free(after);
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_recovery(p), MP_RECOVER_LEAVES);
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
  mp_close(p);
  after = t_read_file(path, &len);
  assert_int_equal(t_le32(after + 4 * B), 0);           /* the magic, zeroed */
  assert_memory_equal(after + 4 * B + 4, img + 4 * B + 4, B - 4);
  assert_memory_equal(after, img, 4 * B);
  free(after);
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_recovery(p), 0);
  mp_close(p);
  free(img);
}

static char all_findings[4096];
static void note(void *arg, const char *finding) {
  (void)arg;
  size_t used = strlen(all_findings);
  snprintf(all_findings + used, sizeof all_findings - used, "%s | ", finding);
}

/* mp_check reads the bytes again: a change under an open reader's handle is a finding. */
static void test_check_reports(void **state) {
  (void)state;
  size_t len;
  uint8_t *good = two_commit_image(&len), *img = malloc(len);
  const size_t B = 4096;
  const char *path = t_path(0, "check3.mp");
  for (int k = 0; k < 5; k++) {
    assert_int_equal(t_write_file(path, good, len), 0);
    mp_pager *p;
    assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
    memcpy(img, good, len);
    const char *word = NULL;
    switch (k) {
      case 0: img[100] ^= 1, word = "superblock: 0.3 superblock fails its checksum"; break;
      case 1: t_put64(img + 2 * B + 24, 4), reseal(img + 2 * B), word = "the root in memory"; break;
      /* the current slot damaged: generation 2's, in slot B, does not fit root 3 */
      case 2: img[3 * B + 24] |= 0x80, word = "free count is 0 but its bitmap has 6"; break;
      case 3: /* page 7 taken in the current leaf and the root: consistent, but not the handle's */
        img[3 * B + 24] |= 0x80, t_put32(img + 3 * B + 16, 4), reseal(img + 3 * B);
        t_put64(img + 2 * B + 24, 4), reseal(img + 2 * B);
        word = "group 0 in memory (slot A, 5 free) differs from the file (slot A, 4 free)";
        break;
      case 4: img[1 * B] = 0, img[2 * B] = 0, word = "no valid root"; break;
    }
    assert_int_equal(t_write_file(path, img, len), 0); /* same inode: the mapping sees it */
    all_findings[0] = 0;
    unsigned findings = 0;
    assert_int_equal(mp_check(p, note, NULL, &findings), MP_OK);
    if (findings == 0 || !strstr(all_findings, word)) fail_msg("case %d: %u findings: %s", k, findings, all_findings);
    mp_close(p);
  }
  free(img);
  free(good);
}

/* Random damage, with the damaged block's checksum made right again half the time so that the
 * field checks behind it are reached: open refuses it or yields a handle whose check, calls and
 * close run without a fault (ASan and UBSan watch the asan build), whatever the bytes. */
static void test_random_damage(void **state) {
  (void)state;
  const char *path = t_path(1, "rich.mp");
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, 1024, MP_FORMAT_3, &p), MP_OK);
  uint64_t ids[200];
  assert_int_equal(mp_alloc_bulk(p, 150, ids), MP_OK);
  assert_int_equal(mp_free_bulk(p, 40, ids + 20), MP_OK);
  for (int k = 0; k < 3; k++) {
    uint64_t prot;
    void *stage;
    assert_int_equal(mp_protected_alloc(p, &prot), MP_OK);
    assert_int_equal(mp_protected_begin(p, prot, &stage), MP_OK);
    memset(stage, 0x11 * (k + 1), 1024);
    assert_int_equal(mp_protected_commit(p, prot), MP_OK);
  }
  mp_close(p);
  size_t len;
  uint8_t *good = t_read_file(path, &len), *img = malloc(len);
  /* the superblock, roots and leaves (blocks 0 to 4) most of the time, else any block: the
   * directory's and the protected pages' among them */
  const size_t mb = 4096, all = len / mb;
  uint64_t x = 0x853C49E6748FEA9BULL;
  unsigned opened = 0, refused = 0;
  const char *bad = t_path(2, "damaged.mp");
  for (int it = 0; it < 500; it++) {
    memcpy(img, good, len);
    int hits = 1 + it % 3;
    for (int h = 0; h < hits; h++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t block = (size_t)(x % 3 ? x % 5 : x % all), at = block * mb + (size_t)((x >> 8) % (block ? mb : 512));
      switch ((x >> 40) % 4) {
        case 0: img[at] ^= (uint8_t)(1u << ((x >> 48) % 8)); break;
        case 1: img[at] = (uint8_t)(x >> 52); break;
        case 2: img[at] = 0xFF; break;
        default: /* a whole little-endian field set to an extreme */
          t_put64(img + (at & ~(size_t)7), (x >> 56) & 1 ? UINT64_MAX : (x >> 20) & 0xFFFF);
      }
      if ((x >> 60) & 1) {
        if (block == 0) t_put32(img + MP3_SB_CRC, t_crc(img, MP3_SB_CRC));
        else t_put32(img + block * mb + mb - 4, t_crc(img + block * mb, mb - 4));
      }
    }
    assert_int_equal(t_write_file(bad, img, len), 0);
    for (int ro = 0; ro < 2; ro++) {
      if (mp_open(bad, ro ? MP_RDONLY : 0, &p) != MP_OK) {
        refused++;
        continue;
      }
      opened++;
      unsigned findings;
      assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
      uint64_t id;
      for (uint64_t from = 0; mp_next_regular(p, from, &id) == MP_OK; from = id + 1) {
        void *d;
        assert_int_equal(mp_page(p, id, &d), MP_OK);
      }
      if (!ro && mp_alloc(p, &id) == MP_OK) {
        assert_int_equal(mp_free(p, id), MP_OK);
        /* (a protected page's damaged content is a finding, which open does not look for) */
        all_findings[0] = 0;
        assert_int_equal(mp_check_flags(p, MP_CHECK_NO_CONTENT, note, NULL, &findings), MP_OK);
        if (findings) fail_msg("iteration %d: %s", it, all_findings);
      }
      mp_close(p);
    }
  }
  print_message("random damage: %u opens, %u refusals\n", opened, refused);
  assert_true(opened > 0 && refused > 0);
  free(img);
  free(good);
}

int main(void) {
  /* Scratch files on tmpfs when there is one: these tests sync often, a flush of a real disk
   * costs each msync milliseconds, and nothing they check depends on the file system. */
  if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_layout), cmocka_unit_test(test_create_flags),
      cmocka_unit_test(test_every_cut_of_create), cmocka_unit_test(test_open_refuses),
      cmocka_unit_test(test_stale_slot), cmocka_unit_test(test_check_reports),
      cmocka_unit_test(test_random_damage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
