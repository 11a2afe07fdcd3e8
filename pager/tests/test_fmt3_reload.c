/* test_fmt3_reload.c: what a reader of a 0.3 file keeps across reloads. Its basis
 * (mp_reload_basis) names every page whose change changes what a load gives, and each page it
 * names does so in some state of the file; a plain reader's reload keeps its state while the
 * basis holds its bytes (mp_reload_same), an MP_BASIS_WATCHED one loads again at every reload;
 * a basis too large to copy is listed only; and a load that read the superblock from its
 * sector copy (FORMAT.md 3.8) keeps none. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format3.h"
#include "mappedpages.h"
#include "support.h"

/* ---- a handle's state, as bytes ------------------------------------------------------- */

/* Everything a reader answers without reading a page's contents: counts, recovery, mp_check's
 * findings on the structure, the regular pages, and each protected page's place and checksum.
 * Two states are the same when their bytes are. */
typedef struct blob {
  uint8_t *b;
  size_t n, cap;
} blob;

static void put(blob *s, const void *d, size_t n) {
  if (s->n + n > s->cap) {
    s->cap = (s->n + n) * 2;
    s->b = realloc(s->b, s->cap);
    assert_non_null(s->b);
  }
  memcpy(s->b + s->n, d, n);
  s->n += n;
}

static void note(void *arg, const char *finding) { put(arg, finding, strlen(finding) + 1); }

static void state_of(mp_pager *p, blob *s) {
  s->n = 0;
  uint64_t f[5] = {mp_page_count(p), mp_free_count(p), mp_capacity(p), mp_recovery(p), mp_leaked_count(p)};
  put(s, f, sizeof f);
  unsigned findings;
  assert_int_equal(mp_check_flags(p, MP_CHECK_NO_CONTENT, note, s, &findings), MP_OK);
  put(s, &findings, sizeof findings);
  size_t words = (size_t)((mp_page_count(p) + 63) / 64);
  uint64_t *bits = calloc(words + 1, 8);
  assert_int_equal(mp_regular_bits(p, 0, bits, words), MP_OK);
  put(s, bits, words * 8);
  free(bits);
  for (uint64_t id = 0; mp_next_protected(p, id, &id) == MP_OK; id++) {
    uint64_t page;
    uint32_t crc;
    assert_int_equal(mp_protected_where(p, id, &page, &crc), MP_OK);
    uint64_t e[3] = {id, page, crc};
    put(s, e, sizeof e);
  }
}

/* A fresh reader's state of `path` (its open's code alone when it is refused). */
static int fresh_state(const char *path, blob *s) {
  mp_pager *p;
  int rc = mp_open(path, MP_RDONLY, &p);
  s->n = 0;
  if (rc != MP_OK) {
    put(s, &rc, sizeof rc);
    return rc;
  }
  state_of(p, s);
  mp_close(p);
  return MP_OK;
}

static bool same_blob(const blob *a, const blob *b) { return a->n == b->n && memcmp(a->b, b->b, a->n) == 0; }

/* Reloads `p`: its code, whether it kept its state, and that state (as a fresh reader's) in *s. */
static int reload(mp_pager *p, bool *same, blob *s) {
  int rc = mp_reload_same(p, same, NULL, 0);
  s->n = 0;
  if (rc == MP_OK) state_of(p, s);
  else put(s, &rc, sizeof rc);
  return rc;
}

static uint64_t *basis_of(mp_pager *p, size_t *n) {
  assert_int_equal(mp_reload_basis(p, NULL, 0, n), MP_OK);
  uint64_t *ids = malloc(*n * sizeof *ids);
  size_t again;
  assert_int_equal(mp_reload_basis(p, ids, *n, &again), MP_OK);
  assert_int_equal(again, *n);
  return ids;
}

static bool listed(const uint64_t *ids, size_t n, uint64_t id) {
  for (size_t i = 0; i < n; i++)
    if (ids[i] == id) return true;
  return false;
}

static void xor_byte(int fd, uint64_t off) {
  uint8_t c;
  assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
  c ^= 0x5a;
  assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
}

/* ---- the basis against every page a state rests on ------------------------------------ */

/* The file at `ps`: protected pages in two directory blocks, and regular pages kept in each of
 * three groups (`keep`: two a group, group by group; the rest of a bulk allocation freed). The
 * first regular page (*first_reg) lies past every page of the directory and protected blocks. */
static void build(const char *path, size_t ps, uint64_t keep[6], uint64_t *first_reg) {
  unlink(path);
  mp_pager *w;
  assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3 | MP_SPARSE, &w), MP_OK);
  const uint64_t per_block = (ps - 12) / 30, c = mp3__group_pages(ps);
  for (uint64_t k = 0; k <= per_block; k++) {
    uint64_t id;
    void *stage;
    assert_int_equal(mp_protected_alloc(w, &id), MP_OK);
    if (k % 16) continue;
    assert_int_equal(mp_protected_begin(w, id, &stage), MP_OK); /* (a few: both copies differ) */
    memset(stage, (int)(k + 1), ps);
    assert_int_equal(mp_protected_commit(w, id), MP_OK);
  }
  size_t n = (size_t)(2 * c + 10);
  uint64_t *ids = malloc(n * sizeof *ids), *gone = malloc(n * sizeof *gone);
  assert_int_equal(mp_alloc_bulk(w, n, ids), MP_OK);
  size_t ngone = 0, kept[3] = {0};
  *first_reg = UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < *first_reg) *first_reg = ids[i];
    uint64_t k = ids[i] / c;
    if (k < 3 && kept[k] < 2) keep[2 * k + kept[k]++] = ids[i];
    else gone[ngone++] = ids[i];
  }
  for (int k = 0; k < 3; k++) assert_int_equal(kept[k], 2);
  assert_int_equal(mp_free_bulk(w, ngone, gone), MP_OK);
  assert_int_equal(mp_close(w), MP_OK);
  free(ids);
  free(gone);
}

/* One state of the file: every candidate page has one byte at a time changed (where a
 * structure keeps its header fields, in the middle, near the end) under a plain reader `r`
 * and an MP_BASIS_WATCHED reader `wr`, both loaded from the state. A change a fresh reader
 * sees (another state, or a refusal) must be to a page of the basis, which the plain reader
 * then loads again and the watched reader lists; a change to any other page leaves the plain
 * reader's state as it stands (`*same`), and the fresh reader's equal to it. *matters gets
 * the basis's pages whose change a fresh reader saw. */
static void probe_state(const char *path, size_t ps, const uint64_t *cand, size_t ncand, mp_pager *r, mp_pager *wr,
                        const uint64_t *basis, size_t nbasis, bool *matters) {
  blob base = {0}, fresh = {0}, got = {0};
  assert_int_equal(fresh_state(path, &base), MP_OK);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  const uint64_t offs[3] = {8, ps / 2, ps - 100};
  for (size_t i = 0; i < ncand; i++) {
    const uint64_t pg = cand[i];
    const bool in = listed(basis, nbasis, pg);
    for (int o = 0; o < 3; o++) {
      xor_byte(fd, pg * ps + offs[o]);
      int fresh_rc = fresh_state(path, &fresh);
      bool changed = !same_blob(&fresh, &base), same;
      if (changed && !in) fail_msg("page %llu (byte %llu) changes what a load gives, and the basis lacks it",
                                   (unsigned long long)pg, (unsigned long long)offs[o]);
      for (size_t k = 0; k < nbasis; k++)
        if (basis[k] == pg) matters[k] |= changed;
      assert_int_equal(reload(r, &same, &got), fresh_rc);
      if (same != !in) fail_msg("page %llu (byte %llu): a plain reader's reload kept its state: %d, listed: %d",
                                (unsigned long long)pg, (unsigned long long)offs[o], same, in);
      assert_true(same_blob(&got, &fresh));
      assert_int_equal(reload(wr, &same, &got), fresh_rc);
      assert_false(same); /* (it keeps no copy to compare) */
      assert_true(same_blob(&got, &fresh));
      xor_byte(fd, pg * ps + offs[o]); /* back: both load the state again */
      assert_int_equal(reload(r, &same, &got), MP_OK);
      assert_true(same_blob(&got, &base));
      assert_int_equal(reload(wr, &same, &got), MP_OK);
      assert_true(same_blob(&got, &base));
      size_t n;
      uint64_t *b = basis_of(wr, &n); /* the same basis as the plain reader's */
      assert_int_equal(n, nbasis);
      assert_memory_equal(b, basis, n * sizeof *b);
      free(b);
    }
  }
  close(fd);
  free(base.b);
  free(fresh.b);
  free(got.b);
}

/* Opens the plain and the watched reader and reloads each twice: an open keeps nothing, the
 * first reload keeps the basis, the second finds it unchanged (the watched one loads again). */
static void readers(const char *path, mp_pager **r, mp_pager **wr) {
  bool same = true;
  uint64_t one;
  size_t n;
  assert_int_equal(mp_open(path, MP_RDONLY, r), MP_OK);
  assert_int_equal(mp_open(path, MP_RDONLY | MP_BASIS_WATCHED, wr), MP_OK);
  assert_int_equal(mp_reload_basis(*r, &one, 1, &n), MP_ENOENT);
  assert_int_equal(mp_reload_basis(*wr, &one, 1, &n), MP_ENOENT);
  assert_int_equal(mp_reload_same(*r, &same, NULL, 0), MP_OK);
  assert_false(same);
  assert_int_equal(mp_reload_same(*r, &same, NULL, 0), MP_OK);
  assert_true(same); /* nothing changed */
  assert_int_equal(mp_reload_same(*wr, &same, NULL, 0), MP_OK);
  assert_false(same);
  assert_int_equal(mp_reload_same(*wr, &same, NULL, 0), MP_OK);
  assert_false(same); /* nothing changed, yet loaded again */
}

/* State X: the file as built. State Y: one commit later (a free in each group), which wrote
 * the root slot and the leaf slots X does not use: a page of the basis that a change in X
 * leaves alone (the other root, a slot that is not current) is one Y rests on, and the other
 * way round. The candidates: every page up to past the first regular ones (page 0's block,
 * roots, group 0's slots, both copies of each directory block, the protected pages' copies),
 * each later group's slots and the pages after them, the last pages of the file, the pages
 * kept. */
static void basis_at(size_t ps) {
  const char *path = t_path(0, "basis3.mp");
  uint64_t keep[6], first_reg;
  build(path, ps, keep, &first_reg);
  const uint64_t m = mp3__m(ps), c = mp3__group_pages(ps);
  mp_pager *r, *wr;
  readers(path, &r, &wr);
  const uint64_t total = mp_page_count(r);
  assert_int_equal((total + c - 1) / c, 3);
  size_t ncand = 0;
  uint64_t *cand = malloc((size_t)(first_reg + 64 * m + 20) * sizeof *cand);
  for (uint64_t pg = 0; pg < first_reg + 8 * m; pg++) cand[ncand++] = pg;
  for (uint64_t k = 1; k < 3; k++)
    for (uint64_t pg = k * c; pg < k * c + 4 * m; pg++) cand[ncand++] = pg;
  for (uint64_t pg = total - 2 * m; pg < total; pg++) cand[ncand++] = pg;
  for (int i = 0; i < 6; i++)
    if (keep[i] >= first_reg + 8 * m) cand[ncand++] = keep[i];

  size_t nx, ny;
  uint64_t *bx = basis_of(r, &nx);
  /* page 0, both roots' blocks, both slots of each of the 3 groups, each directory block's
   * current page */
  assert_int_equal(nx, 1 + 2 * m + 3 * 2 * m + 2);
  bool *matters = calloc(nx, sizeof *matters);
  probe_state(path, ps, cand, ncand, r, wr, bx, nx, matters);
  mp_close(r);
  mp_close(wr);

  mp_pager *w;
  assert_int_equal(mp_open(path, 0, &w), MP_OK);
  const uint64_t one_each[3] = {keep[0], keep[2], keep[4]};
  assert_int_equal(mp_free_bulk(w, 3, one_each), MP_OK);
  assert_int_equal(mp_close(w), MP_OK);
  readers(path, &r, &wr);
  assert_int_equal(mp_page_count(r), total);
  uint64_t *by = basis_of(r, &ny);
  assert_int_equal(ny, nx); /* the same pages: only which slot is current changed */
  bool *matters_y = calloc(ny, sizeof *matters_y);
  probe_state(path, ps, cand, ncand, r, wr, by, ny, matters_y);
  for (size_t i = 0; i < nx; i++) {
    assert_true(listed(by, ny, bx[i]));
    for (size_t j = 0; j < ny; j++)
      if (by[j] == bx[i]) matters[i] |= matters_y[j];
    if (!matters[i]) fail_msg("page %llu is in the basis, yet no change to it changed a load", (unsigned long long)bx[i]);
  }
  mp_close(r);
  mp_close(wr);
  free(matters);
  free(matters_y);
  free(bx);
  free(by);
  free(cand);
  unlink(path);
}

static void test_basis_names_what_a_load_reads_1k(void **state) {
  (void)state;
  basis_at(1024);
}

static void test_basis_names_what_a_load_reads_4k(void **state) {
  (void)state;
  basis_at(4096);
}

/* A basis larger than a 0.2 file's can be (3 + 2 * 58 pages at 1 KiB: here 14 groups, two leaf
 * slots of 4 pages each) is listed, but not copied: a plain reader loads again at each reload,
 * as a watched one does, and gives what a fresh reader gives. */
static void test_large_basis_is_listed_not_copied(void **state) {
  (void)state;
  const char *path = t_path(0, "large3.mp");
  unlink(path);
  mp_pager *w, *r;
  assert_int_equal(mp_create_flags(path, 1024, MP_FORMAT_3 | MP_SPARSE, &w), MP_OK);
  const uint64_t c = mp3__group_pages(1024);
  size_t n = (size_t)(13 * c + 10);
  uint64_t *ids = malloc(n * sizeof *ids);
  assert_int_equal(mp_alloc_bulk(w, n, ids), MP_OK);
  assert_int_equal(mp_close(w), MP_OK);
  free(ids);
  assert_int_equal(mp_open(path, MP_RDONLY, &r), MP_OK);
  assert_int_equal((mp_page_count(r) + c - 1) / c, 14);
  bool same = true;
  blob got = {0}, fresh = {0};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(reload(r, &same, &got), MP_OK);
    assert_false(same);
    assert_int_equal(fresh_state(path, &fresh), MP_OK);
    assert_true(same_blob(&got, &fresh));
  }
  size_t nb;
  uint64_t *b = basis_of(r, &nb);
  assert_int_equal(nb, 1 + 2 * 4 + 14 * 2 * 4); /* page 0, the roots, the leaf slots; no directory */
  assert_true(listed(b, nb, 13 * c + 7)); /* the last group's slot B, its last page */
  free(b);
  mp_close(r);
  free(got.b);
  free(fresh.b);
  unlink(path);
}

/* A reader whose load found page 0's block garbage read the superblock from the sector copy an
 * upgrade at 1 KiB left (FORMAT.md 3.8): which pages it read followed from no structure of the
 * file's, so it keeps no basis and loads again at every reload. Once a writer's open put the
 * sector back, a reload keeps one, the copy's block in it: damaged, the file is refused. */
static void test_sector_copy_load_keeps_no_basis(void **state) {
  (void)state;
  const char *path = t_path(0, "copy3.mp");
  unlink(path);
  mp_pager *w, *r, *wr;
  assert_int_equal(mp_create(path, 1024, &w), MP_OK);
  size_t n = (size_t)(mp_capacity(w) - mp_page_count(w) + mp_free_count(w));
  uint64_t *ids = malloc(n * sizeof *ids), id;
  assert_int_equal(mp_alloc_bulk(w, n, ids), MP_OK);
  assert_int_equal(mp_close(w), MP_OK);
  free(ids);
  assert_int_equal(mp_open(path, MP_FORMAT_3, &w), MP_OK);
  assert_int_equal(mp_alloc(w, &id), MP_OK); /* past 0.2's capacity: the upgrade */
  assert_int_equal(mp_capacity(w), MP3_MAX_PAGES);
  assert_int_equal(mp_close(w), MP_OK);
  size_t len;
  uint8_t *img = t_read_file(path, &len);
  mp3_sb sb;
  char why[200];
  assert_int_equal(mp3__sb_decode(img, MP3_SB_LEN, &sb, why, sizeof why), MP_OK);
  assert_true(sb.copy != 0);
  for (size_t i = 0; i < 4096; i++) img[i] = (uint8_t)(0xA5 ^ (i * 31)); /* the upgrade's sector, garbage */
  assert_int_equal(t_write_file(path, img, len), 0);

  assert_int_equal(mp_open(path, MP_RDONLY, &r), MP_OK);
  assert_int_equal(mp_open(path, MP_RDONLY | MP_BASIS_WATCHED, &wr), MP_OK);
  assert_int_equal(mp_recovery(r), MP_RECOVER_SALVAGE);
  blob got = {0}, fresh = {0};
  bool same = true;
  size_t nb;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(reload(r, &same, &got), MP_OK);
    assert_false(same); /* loaded again: nothing kept to compare */
    assert_int_equal(mp_reload_basis(r, NULL, 0, &nb), MP_ENOENT);
    assert_int_equal(fresh_state(path, &fresh), MP_OK);
    assert_true(same_blob(&got, &fresh));
    assert_int_equal(mp_reload_same(wr, &same, NULL, 0), MP_OK);
    assert_int_equal(mp_reload_basis(wr, NULL, 0, &nb), MP_ENOENT);
  }
  mp_close(r);
  mp_close(wr);
  assert_int_equal(mp_open(path, 0, &w), MP_OK); /* puts the sector back */
  assert_int_equal(mp_recovery(w), MP_RECOVER_SALVAGE);
  assert_int_equal(mp_close(w), MP_OK);
  assert_int_equal(mp_open(path, MP_RDONLY, &r), MP_OK);
  assert_int_equal(mp_recovery(r), 0);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_true(same);
  uint64_t *b = basis_of(r, &nb);
  for (uint64_t pg = sb.copy; pg < sb.copy + 4; pg++) assert_true(listed(b, nb, pg));
  free(b);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  xor_byte(fd, sb.copy * 1024 + 3000); /* the copy's block, its third page */
  assert_int_equal(fresh_state(path, &fresh), MP_ECORRUPT);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_ECORRUPT);
  xor_byte(fd, sb.copy * 1024 + 3000);
  close(fd);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_false(same);
  mp_close(r);
  free(got.b);
  free(fresh.b);
  free(img);
  unlink(path);
}

int main(void) {
  /* Scratch files on tmpfs when there is one (sparse: the files are 100 and 400 MB long). */
  if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basis_names_what_a_load_reads_1k),
      cmocka_unit_test(test_basis_names_what_a_load_reads_4k),
      cmocka_unit_test(test_large_basis_is_listed_not_copied),
      cmocka_unit_test(test_sector_copy_load_keeps_no_basis),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
