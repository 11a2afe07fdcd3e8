/* test_salvage.c: a garbage first sector of page 0 (a torn write on a drive without atomic
 * sectors) is salvaged to exactly the committed state, or refused with the sentence that says
 * what was lost (pager/salvage.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mappedpages.h"
#include "support.h"

/* ---- what a pager shows ------------------------------------------------------- */

typedef struct shown {
  uint64_t total, free;
  size_t nreg, nprot;
  uint64_t reg[512], prot[512];
  uint32_t sum[512]; /* CRC of each protected page's content */
} shown;

static void take(mp_pager *p, shown *s) {
  memset(s, 0, sizeof *s);
  s->total = mp_page_count(p);
  s->free = mp_free_count(p);
  for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK; id++) {
    assert_true(s->nreg < 512);
    s->reg[s->nreg++] = id;
  }
  for (uint64_t id = 0; mp_next_protected(p, id, &id) == MP_OK; id++) {
    const void *d;
    assert_true(s->nprot < 512);
    assert_int_equal(mp_protected_read(p, id, &d), MP_OK);
    s->prot[s->nprot] = id;
    s->sum[s->nprot++] = t_crc(d, mp_page_size(p));
  }
}

static bool same(const shown *a, const shown *b) {
  return a->total == b->total && a->free == b->free && a->nreg == b->nreg && a->nprot == b->nprot &&
         !memcmp(a->reg, b->reg, a->nreg * 8) && !memcmp(a->prot, b->prot, a->nprot * 8) &&
         !memcmp(a->sum, b->sum, a->nprot * 4);
}

static unsigned findings(mp_pager *p) {
  unsigned n = 99;
  assert_int_equal(mp_check(p, NULL, NULL, &n), MP_OK);
  return n;
}

/* ---- files of several shapes, built through the API ------------------------------ */

static void write_prot(mp_pager *p, uint64_t id, uint8_t v) {
  void *d;
  assert_int_equal(mp_protected_begin(p, id, &d), MP_OK);
  memset(d, v, mp_page_size(p));
  memcpy(d, &id, sizeof id);
  assert_int_equal(mp_protected_commit(p, id), MP_OK);
}

/* nreg regular pages (one freed), nprot protected pages (each written, some twice, one
 * freed when there are several), so that both copies of blocks and entries are in use. */
static char g_built[1024]; /* the path build() wrote */

static uint8_t *build(size_t ps, unsigned nreg, unsigned nprot, size_t *len, shown *st) {
  const char *path = t_path(0, "shape.pages");
  snprintf(g_built, sizeof g_built, "%s", path);
  mp_pager *p;
  assert_int_equal(mp_create(path, ps, &p), MP_OK);
  for (unsigned i = 0; i < nreg; i++) {
    uint64_t id;
    void *d;
    assert_int_equal(mp_alloc(p, &id), MP_OK);
    assert_int_equal(mp_page(p, id, &d), MP_OK);
    memset(d, (int)(0x11 + i), ps);
    assert_int_equal(mp_sync_page(p, id), MP_OK);
    if (i == 1) assert_int_equal(mp_free(p, id), MP_OK);
  }
  for (unsigned i = 0; i < nprot; i++) {
    uint64_t id;
    assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
    write_prot(p, id, (uint8_t)(0x40 + i));
    if (i % 3 == 0) write_prot(p, id, (uint8_t)(0x90 + i));
  }
  if (nprot > 4) assert_int_equal(mp_protected_free(p, 2), MP_OK);
  take(p, st);
  assert_int_equal(findings(p), 0);
  assert_int_equal(mp_close(p), MP_OK);
  uint8_t *img = t_read_file(path, len);
  assert_non_null(img);
  return img;
}

enum fill { F_RANDOM, F_ZERO, F_ONES };
static const char *const fill_name[] = {"random", "zeros", "0xFF"};

/* Page 0's first sector (all of page 0 when the page is no larger), as a garbage tear
 * leaves it. */
static void garble(uint8_t *img, size_t ps, size_t sector, enum fill f, unsigned seed) {
  size_t n = sector < ps ? sector : ps;
  uint64_t x = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    img[i] = f == F_ZERO ? 0 : f == F_ONES ? 0xFF : (uint8_t)x;
  }
}

/* Opens `img` read-only and read-write: both must show `want` and pass mp_check; the writer
 * rewrites page 0, after which the file opens with nothing to recover. Returns the file
 * as the writer left it (the caller frees it). */
static uint8_t *expect_salvaged(const uint8_t *img, size_t len, const shown *want, const char *label) {
  const char *path = t_path(1, "garbled.pages");
  assert_int_equal(t_write_file(path, img, len), 0);
  for (int ro = 1; ro >= 0; ro--) {
    mp_pager *p = NULL;
    char why[256] = "";
    int rc = mp_open_explain(path, ro ? MP_RDONLY : 0, &p, why, sizeof why);
    if (rc != MP_OK) fail_msg("%s [%s]: refused: %s", label, ro ? "RDONLY" : "RW", why);
    assert_true(mp_recovery(p) & MP_RECOVER_SALVAGE);
    shown got;
    take(p, &got);
    if (!same(&got, want))
      fail_msg("%s [%s]: salvaged %llu pages, %llu free, %zu regular, %zu protected; want %llu, %llu, %zu, %zu", label,
               ro ? "RDONLY" : "RW", (unsigned long long)got.total, (unsigned long long)got.free, got.nreg, got.nprot,
               (unsigned long long)want->total, (unsigned long long)want->free, want->nreg, want->nprot);
    unsigned n = findings(p);
    if (n) fail_msg("%s [%s]: mp_check finds %u", label, ro ? "RDONLY" : "RW", n);
    assert_int_equal(mp_close(p), MP_OK);
  }
  mp_pager *p;
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_recovery(p), 0);
  shown again;
  take(p, &again);
  assert_true(same(&again, want));
  assert_int_equal(mp_close(p), MP_OK);
  size_t l2;
  uint8_t *after = t_read_file(path, &l2);
  assert_true(after && l2 == len);
  return after;
}

static void expect_refused(const uint8_t *img, size_t len, const char *sentence, const char *label) {
  const char *path = t_path(1, "garbled.pages");
  assert_int_equal(t_write_file(path, img, len), 0);
  for (int ro = 1; ro >= 0; ro--) {
    mp_pager *p = NULL;
    char why[256] = "";
    int rc = mp_open_explain(path, ro ? MP_RDONLY : 0, &p, why, sizeof why);
    if (rc == MP_OK) {
      mp_close(p);
      fail_msg("%s [%s]: opened, but must be refused", label, ro ? "RDONLY" : "RW");
    }
    assert_int_equal(rc, MP_ECORRUPT);
    if (!strstr(why, sentence)) fail_msg("%s: refused with \"%s\", want \"%s\"", label, why, sentence);
  }
  /* Refused, the file is left as it was. */
  size_t l2;
  uint8_t *after = t_read_file(path, &l2);
  assert_true(after && l2 == len && !memcmp(after, img, len));
  free(after);
}

/* ---- salvaged shapes ------------------------------------------------------------- */

typedef struct shape {
  size_t ps, sector;
  unsigned nreg, nprot;
  const char *what;
} shape;

static void salvage_shapes(const shape *shapes, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const shape *sh = &shapes[i];
    size_t len;
    shown st;
    uint8_t *base = build(sh->ps, sh->nreg, sh->nprot, &len, &st);
    uint8_t *img = malloc(len);
    for (int f = F_RANDOM; f <= F_ONES; f++) {
      for (unsigned seed = 0; seed < (f == F_RANDOM ? 3u : 1u); seed++) {
        char label[200];
        snprintf(label, sizeof label, "%zu-byte pages, %zu-byte sector, %s (%u regular, %u protected), %s %u", sh->ps,
                 sh->sector, sh->what, sh->nreg, sh->nprot, fill_name[f], seed);
        memcpy(img, base, len);
        garble(img, sh->ps, sh->sector, (enum fill)f, seed);
        uint8_t *after = expect_salvaged(img, len, &st, label);
        /* Where page 0's checksum outlived the garbage, it fixed every byte: the writer
         * rewrote page 0 exactly as it was. */
        if (sh->sector < sh->ps && memcmp(after, base, sh->ps) != 0) fail_msg("%s: page 0 rebuilt differently", label);
        /* Elsewhere, only page 0 may differ (which copy is page_a is not recorded). */
        if (memcmp(after + sh->ps, base + sh->ps, len - sh->ps) != 0) fail_msg("%s: pages past 0 changed", label);
        free(after);
      }
    }
    print_message("%zu-byte pages, %zu-byte sectors, %s: salvaged from random, zero and 0xFF garbage\n", sh->ps,
                  sh->sector, sh->what);
    free(img);
    free(base);
  }
}

static void test_no_protected(void **state) {
  (void)state;
  static const shape s[] = {{1024, 512, 5, 0, "no protected pages"},
                            {4096, 512, 5, 0, "no protected pages"},
                            {4096, 4096, 5, 0, "no protected pages"},
                            {8192, 4096, 3, 0, "no protected pages"}};
  salvage_shapes(s, sizeof s / sizeof s[0]);
}

static void test_one_block(void **state) {
  (void)state;
  static const shape s[] = {{1024, 512, 3, 6, "one directory block"},
                            {4096, 512, 3, 6, "one directory block"},
                            {4096, 4096, 3, 6, "one directory block"},
                            {2048, 512, 2, 1, "one protected page"}};
  salvage_shapes(s, sizeof s / sizeof s[0]);
}

static void test_several_blocks(void **state) {
  (void)state;
  /* 33 entries a block at 1 KiB, 136 at 4 KiB, 272 at 8 KiB. */
  static const shape s[] = {{1024, 512, 2, 40, "two directory blocks"},
                            {1024, 512, 2, 80, "three directory blocks"},
                            {4096, 512, 2, 140, "two directory blocks"},
                            {8192, 4096, 1, 300, "two directory blocks"}};
  salvage_shapes(s, sizeof s / sizeof s[0]);
}

/* The corpus's reproducer, by hand: a regular alloc's selector flip torn with garbage. */
static void test_in_flight_flip(void **state) {
  (void)state;
  for (int k = 0; k < 2; k++) {
    size_t ps = k ? 4096 : 1024, len0, len1;
    shown before, after;
    uint8_t *img0 = build(ps, 3, 1, &len0, &before);
    /* One more protected commit: the staged copy and directory page are durable, then the
     * selector flips in page 0 with the section checksum in its last sector. */
    const char *path = g_built;
    mp_pager *p;
    assert_int_equal(mp_open(path, 0, &p), MP_OK);
    write_prot(p, 0, 0xEE);
    take(p, &after);
    assert_int_equal(mp_close(p), MP_OK);
    uint8_t *img1 = t_read_file(path, &len1);
    assert_true(img1 && len1 == len0);
    /* The cut: every page as after the flip's msync but page 0, whose first sector is
     * garbage and whose last sector (the checksum) is the old or the new one. */
    for (int crc_new = 0; crc_new < 2; crc_new++) {
      uint8_t *img = malloc(len1);
      memcpy(img, img1, len1);
      memcpy(img, crc_new ? img1 : img0, ps);
      garble(img, ps, 512, F_RANDOM, 7);
      char label[120];
      snprintf(label, sizeof label, "%zu-byte pages, protected commit's flip torn, %s checksum", ps,
               crc_new ? "new" : "old");
      free(expect_salvaged(img, len1, crc_new ? &after : &before, label));
      free(img);
    }
    free(img0);
    free(img1);
  }
}

/* A protected free cut in its reclaim's selector flip, page 0 lost whole (4 KiB sectors):
 * the entry is cleared in the current directory copy, still in use in the other (its mirror
 * comes after), and the metadata's after-state frees its pages. Without the checksum, the
 * copy whose entries name free pages cannot be the current one. */
static void test_in_flight_free_whole_page(void **state) {
  (void)state;
  size_t len0, len1;
  shown before, after;
  uint8_t *img0 = build(4096, 2, 3, &len0, &before);
  mp_pager *p;
  assert_int_equal(mp_open(g_built, 0, &p), MP_OK);
  assert_int_equal(mp_protected_free(p, 1), MP_OK);
  take(p, &after);
  assert_int_equal(mp_close(p), MP_OK);
  uint8_t *img1 = t_read_file(g_built, &len1);
  assert_true(img1 && len1 == len0 && t_le32(img1 + 20) == 1);
  uint64_t inactive = t_le64(img1 + 24 + 8 * (img1[24 + 16] ? 0 : 1));
  memcpy(img1 + inactive * 4096, img0 + inactive * 4096, 4096); /* not yet mirrored */
  garble(img1, 4096, 4096, F_ZERO, 0);
  free(expect_salvaged(img1, len1, &after, "protected free's reclaim flip, page 0 lost whole"));
  free(img0);
  free(img1);
}

/* Writes an empty directory page's bytes (capacity, zeros, checksum) into regular page id. */
static void fake_empty_dir(uint8_t *img, size_t ps, uint64_t id) {
  uint8_t *pg = img + id * ps;
  memset(pg, 0, ps);
  t_put32(pg, (uint32_t)((ps - 12) / 30));
  t_put32(pg + ps - 4, t_crc(pg, ps - 4));
}

/* Regular pages may hold what directory pages hold (a copy of another file, say): page 0's
 * checksum, which survives a 512-byte garbage sector at 4 KiB pages, says they are no block. */
static void test_regular_pages_like_directories(void **state) {
  (void)state;
  size_t len;
  shown st;
  uint8_t *img = build(4096, 4, 5, &len, &st);
  assert_true(st.nreg >= 3);
  fake_empty_dir(img, 4096, st.reg[0]);
  fake_empty_dir(img, 4096, st.reg[2]);
  uint8_t *base = malloc(len);
  memcpy(base, img, len);
  mp_pager *p;
  assert_int_equal(t_write_file(g_built, img, len), 0);
  assert_int_equal(mp_open(g_built, MP_RDONLY, &p), MP_OK);
  take(p, &st); /* the protected contents are unchanged; the regular pages' data is not looked at */
  assert_int_equal(mp_close(p), MP_OK);
  garble(img, 4096, 512, F_RANDOM, 5);
  uint8_t *after = expect_salvaged(img, len, &st, "regular pages holding directory pages' bytes");
  assert_memory_equal(after, base, len);
  free(after);
  free(base);
  free(img);
}

/* ---- refused shapes ---------------------------------------------------------------- */

static void test_refused(void **state) {
  (void)state;
  size_t len;
  shown st;
  /* 1 KiB pages under a 4 KiB garbage sector: both metadata copies went with page 0. */
  uint8_t *img = build(1024, 3, 2, &len, &st);
  garble(img, 4096, 4096, F_RANDOM, 1);
  expect_refused(img, len,
                 "no mappedpages superblock (tag MPPG) at the start of the file, and no page size at which page 1 or "
                 "2 holds a whole metadata copy",
                 "1 KiB pages, 4 KiB garbage");
  free(img);

  /* Two blocks, page 0 all garbage (its checksum too): their order is lost. */
  img = build(4096, 2, 140, &len, &st);
  garble(img, 4096, 4096, F_ZERO, 0);
  expect_refused(img, len,
                 "page 0's first sector is unreadable and the directory references cannot be rebuilt: 4 directory "
                 "pages found, and without page 0's checksum at most one block can be placed",
                 "two blocks, page 0 lost whole");
  free(img);

  /* A regular page holding what an empty directory page holds: three candidates for one block. */
  img = build(4096, 2, 3, &len, &st);
  {
    uint8_t *reg = img + st.reg[0] * 4096;
    memset(reg, 0, 4096);
    t_put32(reg, (4096 - 12) / 30);
    t_put32(reg + 4092, t_crc(reg, 4092));
  }
  garble(img, 4096, 4096, F_ONES, 0);
  expect_refused(img, len, "3 directory pages found, and without page 0's checksum at most one block can be placed",
                 "a stray directory page");
  free(img);

  /* An empty block (its only protected page freed), page 0 lost whole: two regular pages
   * could hold the same bytes. */
  {
    const char *path = t_path(0, "emptyblock.pages");
    mp_pager *p;
    uint64_t id;
    assert_int_equal(mp_create(path, 4096, &p), MP_OK);
    assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
    assert_int_equal(mp_protected_free(p, id), MP_OK);
    assert_int_equal(mp_close(p), MP_OK);
    img = t_read_file(path, &len);
    assert_non_null(img);
    garble(img, 4096, 4096, F_RANDOM, 4);
    expect_refused(img, len,
                   "2 directory pages found, and without page 0's checksum an empty block cannot be told from two "
                   "regular pages holding its bytes",
                   "an empty block, page 0 lost whole");
    free(img);
  }

  /* Metadata copies whose generations are not consecutive: no commit of ours leaves that. */
  img = build(4096, 3, 0, &len, &st);
  garble(img, 4096, 512, F_RANDOM, 2);
  {
    uint8_t *b = img + 2 * 4096;
    t_put64(b + 8, t_le64(b + 8) + 5);
    t_put32(b + 4092, t_crc(b, 4092));
  }
  expect_refused(img, len, "the metadata selector cannot be rebuilt: the copies' generations", "generations apart");
  free(img);

  /* A garbage sector over 2 KiB pages' first copy (4 KiB sectors): the one left may be the
   * state before the last commit. */
  img = build(2048, 3, 0, &len, &st);
  garble(img, 4096, 4096, F_RANDOM, 3);
  expect_refused(img, len, "metadata A is damaged (checksum mismatch) and may have been lost with page 0",
                 "2 KiB pages, 4 KiB garbage");
  free(img);
}

/* An interrupted create is still a leftover (MP_EINCOMPLETE), not a file to salvage. */
static void test_leftover_not_salvaged(void **state) {
  (void)state;
  const char *path = t_path(0, "left.pages");
  mp_pager *p;
  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  assert_int_equal(mp_close(p), MP_OK);
  size_t len;
  uint8_t *img = t_read_file(path, &len);
  memset(img, 0, 4092); /* the superblock not yet written; its section checksum is */
  assert_int_equal(t_write_file(path, img, len), 0);
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_EINCOMPLETE);
  free(img);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_protected),   cmocka_unit_test(test_one_block),
      cmocka_unit_test(test_several_blocks), cmocka_unit_test(test_in_flight_flip),
      cmocka_unit_test(test_in_flight_free_whole_page), cmocka_unit_test(test_regular_pages_like_directories),
      cmocka_unit_test(test_refused),        cmocka_unit_test(test_leftover_not_salvaged),
  };
  if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 0);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
