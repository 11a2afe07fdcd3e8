/* test_create.c: a power cut during mp_create never leaves a file that can neither be
 * opened nor created again, and a file holding anything else is never overwritten. */
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

#include <fiu-control.h>
#include <fiu.h>

#include "mappedpages.h"
#include "support.h"

static uint8_t *fresh_image(size_t ps, size_t *len) {
  const char *path = t_path(2, "fresh.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, ps, &p), MP_OK);
  mp_close(p);
  uint8_t *img = t_read_file(path, len);
  assert_int_equal(*len, 4 * ps);
  return img;
}

/* The image after a cut: the first `size` bytes, with each 512-byte sector of the
 * fresh file either written (bit set in `written`) or still zero. */
static uint8_t *cut_image(const uint8_t *fresh, size_t size, uint64_t written) {
  uint8_t *img = calloc(1, size ? size : 1);
  for (size_t s = 0; s * 512 < size; s++)
    if (written >> (s % 64) & 1) memcpy(img + s * 512, fresh + s * 512, 512);
  return img;
}

static void assert_recoverable(const uint8_t *img, size_t size, size_t create_ps) {
  const char *path = t_path(0, "cut.mp");
  assert_int_equal(t_write_file(path, img, size), 0);
  mp_pager *p;
  int opened = mp_open(path, 0, &p);
  if (opened == MP_OK) {
    unsigned findings = 99;
    assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
    assert_int_equal(findings, 0);
    mp_close(p);
    assert_int_equal(mp_create(path, create_ps, &p), MP_EEXIST);
    return;
  }
  assert_int_equal(opened, MP_EINCOMPLETE);
  /* Both ways of creating replace the leftover. */
  assert_int_equal(mp_create(path, create_ps, &p), MP_OK);
  assert_int_equal(mp_page_size(p), create_ps);
  uint64_t id;
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  mp_close(p);
  assert_int_equal(t_write_file(path, img, size), 0);
  assert_int_equal(mp_open(path, MP_CREATE, &p), MP_OK);
  assert_int_equal(mp_page_size(p), MP_DEFAULT_PAGE_SIZE);
  mp_close(p);
}

static void test_every_cut_of_create(void **state) {
  (void)state;
  for (size_t ps = 1024; ps <= 4096; ps *= 4) {
    size_t len;
    uint8_t *fresh = fresh_image(ps, &len);
    size_t sectors = ps / 512;
    /* Order of create: extend, metadata pages (any sectors), then page 0 (any
     * sectors). Cuts before page 0 is written: every subset of the metadata
     * sectors (sampled at 4 KiB); after: every subset of page 0's sectors. */
    assert_recoverable(fresh, 0, ps);
    uint64_t meta_subsets = sectors * 2 <= 8 ? (1u << (sectors * 2)) : 64;
    for (uint64_t m = 0; m < meta_subsets; m++) {
      uint64_t bits = sectors * 2 <= 8 ? m : (m * 0x9E3779B97F4A7C15ull) >> 48;
      uint64_t written = (bits & ((1ull << (2 * sectors)) - 1)) << sectors;
      uint8_t *img = cut_image(fresh, len, written);
      assert_recoverable(img, len, ps);
      free(img);
    }
    uint64_t meta_all = ((1ull << (2 * sectors)) - 1) << sectors;
    for (uint64_t s = 0; s < (1ull << sectors); s++) {
      uint8_t *img = cut_image(fresh, len, meta_all | s);
      assert_recoverable(img, len, ps);
      free(img);
    }
    free(fresh);
  }
}

/* A create at one page size interrupted, then redone at another. */
static void test_leftover_of_other_page_size(void **state) {
  (void)state;
  size_t len;
  uint8_t *fresh = fresh_image(16384, &len);
  fresh[0] = 0; /* page 0 not yet written */
  memset(fresh, 0, 16384);
  assert_recoverable(fresh, len, 1024);
  free(fresh);
}

static void test_other_content_is_never_replaced(void **state) {
  (void)state;
  size_t len;
  uint8_t *fresh = fresh_image(4096, &len);
  memset(fresh, 0, 4096); /* page 0 not written: not a valid file */
  fresh[3 * 4096 + 17] = 'x'; /* but something wrote page 3 */
  const char *path = t_path(0, "notours.mp");
  assert_int_equal(t_write_file(path, fresh, len), 0);
  mp_pager *p;
  /* Its metadata pages are whole, so page 0 is taken for a sector of garbage (salvage.c)
   * and a reader sees an empty file; create still replaces nothing. */
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  assert_true(mp_recovery(p) & MP_RECOVER_SALVAGE);
  assert_int_equal(mp_close(p), MP_OK);
  assert_int_equal(mp_create(path, 4096, &p), MP_EEXIST);
  /* With neither metadata copy whole, there is nothing to salvage: refused, unchanged. */
  fresh[4096 + 30] ^= 1;
  fresh[2 * 4096 + 30] ^= 1;
  assert_int_equal(t_write_file(path, fresh, len), 0);
  assert_int_equal(mp_open(path, 0, &p), MP_ECORRUPT);
  assert_int_equal(mp_create(path, 4096, &p), MP_EEXIST);
  assert_int_equal(mp_open(path, MP_CREATE, &p), MP_ECORRUPT);
  size_t after_len;
  uint8_t *after = t_read_file(path, &after_len);
  assert_int_equal(after_len, len);
  assert_memory_equal(after, fresh, len);
  free(after);
  free(fresh);
}

/* One byte that neither zero nor the create's own bytes explain, at each place within a
 * word and at the very end, makes the file no leftover: nothing replaces it. */
static void test_one_foreign_byte_is_no_leftover(void **state) {
  (void)state;
  size_t len;
  uint8_t *fresh = fresh_image(1024, &len);
  const char *path = t_path(0, "onebyte.mp");
  size_t at[] = {3 * 1024, 3 * 1024 + 1, 3 * 1024 + 5, 3 * 1024 + 7, 3 * 1024 + 8, len - 1};
  for (size_t k = 0; k < sizeof at / sizeof *at; k++) {
    uint8_t *img = malloc(len);
    memcpy(img, fresh, len);
    memset(img, 0, 1024); /* page 0 not written: only a leftover may be replaced */
    img[1024 + 40] ^= 0xff; /* nor a metadata copy whole, so nothing is salvaged */
    img[2 * 1024 + 40] ^= 0xff;
    img[at[k]] = (uint8_t)(fresh[at[k]] + 0x5a) ? (uint8_t)(fresh[at[k]] + 0x5a) : 1;
    assert_int_equal(t_write_file(path, img, len), 0);
    mp_pager *p;
    assert_int_equal(mp_create(path, 1024, &p), MP_EEXIST);
    img[at[k]] = 0; /* without it: the leftover of a cut create, replaced */
    img[1024 + 40] = 0;
    img[2 * 1024 + 40] = 0;
    assert_int_equal(t_write_file(path, img, len), 0);
    assert_int_equal(mp_create(path, 1024, &p), MP_OK);
    mp_close(p);
    free(img);
  }
  free(fresh);
}

/* The file as each msync of mp_create is about to make it durable (read through
 * the page cache, which holds what the mapping wrote), via a libfiu callback on the
 * pager's msync fault point that never fails the call. */
static const char *g_watched;
static uint8_t *g_snap[8];
static size_t g_snap_len[8];
static int g_nsnap;

static int snapshot_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  if (g_nsnap < 8) {
    g_snap[g_nsnap] = t_read_file(g_watched, &g_snap_len[g_nsnap]);
    g_nsnap++;
  }
  return 0;
}

/* A cut in any msync of mp_create, with any subset of the sectors it would write
 * reaching the disk over what the msyncs before it wrote: the file is the leftover
 * of an interrupted create, or a whole file with nothing to recover, which mp_check
 * passes. A create that wrote page 0 in one msync could land the superblock without
 * the section checksum (its last sector), and leave a file whose first directory
 * append is not crash-safe (see layout.h); mp_check reports such a checksum. */
static void test_create_cuts_leave_no_stale_checksum(void **state) {
  (void)state;
  for (size_t ps = 1024; ps <= 8192; ps *= 2) {
    char path[600];
    snprintf(path, sizeof path, "%s", t_path(3, "watched.mp"));
    g_watched = path;
    g_nsnap = 0;
    assert_int_equal(fiu_enable_external("pager/msync", 1, NULL, 0, snapshot_cb), 0);
    mp_pager *p;
    int rc = mp_create(path, ps, &p);
    fiu_disable("pager/msync");
    assert_int_equal(rc, MP_OK);
    mp_close(p);
    assert_true(g_nsnap >= 2 && g_nsnap < 8);
    size_t len = g_snap_len[0];
    uint8_t *base = calloc(1, len), *img = malloc(len);
    unsigned images = 0;
    for (int k = 0; k < g_nsnap; k++) {
      assert_int_equal(g_snap_len[k], len);
      size_t diff[64], nd = 0;
      for (size_t sct = 0; sct < len / 512; sct++)
        if (memcmp(base + sct * 512, g_snap[k] + sct * 512, 512) != 0) {
          assert_true(nd < 10);
          diff[nd++] = sct;
        }
      for (unsigned mask = 0; mask < 1u << nd; mask++) {
        memcpy(img, base, len);
        for (size_t i = 0; i < nd; i++)
          if (mask >> i & 1) memcpy(img + diff[i] * 512, g_snap[k] + diff[i] * 512, 512);
        const char *cut = t_path(0, "cut.mp");
        assert_int_equal(t_write_file(cut, img, len), 0);
        mp_pager *q = NULL;
        char why[256] = "";
        rc = mp_open_explain(cut, MP_RDONLY, &q, why, sizeof why);
        images++;
        if (rc == MP_EINCOMPLETE) continue;
        if (rc != MP_OK) fail_msg("ps %zu, msync %d, sectors mask %#x: open gave %d (%s)", ps, k + 1, mask, rc, why);
        unsigned findings = 99;
        assert_int_equal(mp_check(q, NULL, NULL, &findings), MP_OK);
        if (findings || mp_recovery(q))
          fail_msg("ps %zu, msync %d, sectors mask %#x: opens with %u mp_check finding(s), recovery %#x pending", ps,
                   k + 1, mask, findings, mp_recovery(q));
        mp_close(q);
      }
      memcpy(base, g_snap[k], len);
    }
    print_message("ps %zu: %d msyncs, %u crash images\n", ps, g_nsnap, images);
    for (int k = 0; k < g_nsnap; k++) free(g_snap[k]);
    free(base);
    free(img);
  }
}

int main(void) {
  fiu_init(0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_cut_of_create),
      cmocka_unit_test(test_leftover_of_other_page_size),
      cmocka_unit_test(test_one_foreign_byte_is_no_leftover),
      cmocka_unit_test(test_other_content_is_never_replaced),
      cmocka_unit_test(test_create_cuts_leave_no_stale_checksum),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
