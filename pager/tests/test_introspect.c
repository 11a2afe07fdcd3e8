/* test_introspect.c: mp_image_page_kinds names every page of a file held in memory as
 * what the pager made it, an operation in flight included, and survives any bytes;
 * mp_create_page_kinds names a create's pages as the file it finishes reads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mappedpages.h"
#include "support.h"

static void test_kinds_of_a_real_file(void **state) {
  (void)state;
  static const size_t sizes[] = {1024, 4096, 16384};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    size_t ps = sizes[s];
    const char *path = t_path(0, "kinds.mp");
    mp_pager *p;
    assert_int_equal(mp_create(path, ps, &p), MP_OK);
    uint64_t reg[3], prot[2], dpage;
    assert_int_equal(mp_alloc_bulk(p, 3, reg), MP_OK);
    assert_int_equal(mp_protected_alloc(p, &prot[0]), MP_OK);
    assert_int_equal(mp_protected_alloc(p, &prot[1]), MP_OK);
    assert_int_equal(mp_free(p, reg[1]), MP_OK);
    uint64_t pages = mp_page_count(p);
    uint8_t *want = malloc(pages);
    /* What the pager says of each page: protected pages' committed copies through
     * mp_protected_where, regular ones through mp_next_regular; the rest is structure
     * (the other copies, the directory pages) or free. */
    memset(want, 0, pages);
    want[0] = MP_PAGE_SUPERBLOCK;
    want[1] = want[2] = MP_PAGE_METADATA;
    for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK; id++) want[id] = MP_PAGE_REGULAR;
    for (int k = 0; k < 2; k++) {
      uint32_t crc;
      assert_int_equal(mp_protected_where(p, prot[k], &dpage, &crc), MP_OK);
      want[dpage] = MP_PAGE_PROTECTED;
    }
    mp_close(p);
    size_t len;
    uint8_t *img = t_read_file(path, &len);
    assert_int_equal(len, pages * ps);
    uint8_t *kinds = malloc(pages + 5);
    memset(kinds, 0xEE, pages + 5);
    assert_int_equal(mp_image_page_kinds(img, len, kinds, pages + 5), MP_OK);
    size_t ndir = 0, nprot = 0, nfree = 0;
    for (uint64_t id = 0; id < pages; id++) {
      if (want[id]) assert_int_equal(kinds[id], want[id]);
      ndir += kinds[id] == MP_PAGE_DIRECTORY;
      nprot += kinds[id] == MP_PAGE_PROTECTED;
      nfree += kinds[id] == MP_PAGE_FREE;
    }
    assert_int_equal(ndir, 2);  /* one block, two copies */
    assert_int_equal(nprot, 4); /* two protected pages, two copies each */
    assert_int_equal(kinds[reg[1]], MP_PAGE_FREE);
    assert_true(nfree >= 1); /* that page at least */
    for (uint64_t id = pages; id < pages + 5; id++) assert_int_equal(kinds[id], MP_PAGE_UNKNOWN);
    free(img);
    free(kinds);
    free(want);
  }
}

static void test_any_bytes(void **state) {
  (void)state;
  const char *path = t_path(0, "any.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 1024, &p), MP_OK);
  uint64_t id;
  assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
  mp_close(p);
  size_t len;
  uint8_t *img = t_read_file(path, &len);
  uint8_t kinds[64];
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int round = 0; round < 20000; round++) {
    uint8_t *copy = malloc(len);
    memcpy(copy, img, len);
    for (int k = 0; k < 1 + round % 8; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      copy[(x >> 8) % len] = (uint8_t)x;
    }
    size_t cut = round % 3 ? len : (size_t)(x % (len + 1));
    int rc = mp_image_page_kinds(copy, cut, kinds, sizeof kinds);
    assert_true(rc == MP_OK || rc == MP_ECORRUPT || rc == MP_EVERSION);
    free(copy);
  }
  assert_int_equal(mp_image_page_kinds(NULL, len, kinds, 1), MP_EINVAL);
  assert_int_equal(mp_image_page_kinds(img, len, NULL, 1), MP_EINVAL);
  assert_int_equal(mp_image_page_kinds(img, 100, kinds, 1), MP_ECORRUPT);
  free(img);
}

/* A create in flight has no superblock yet: what its pages are is the create's fixed layout,
 * the kinds the finished file is read as (a fresh file: nothing allocated past the structure). */
static void test_create_kinds_are_the_new_files(void **state) {
  (void)state;
  static const size_t sizes[] = {1024, 2048, 4096, 16384};
  static const unsigned flags[] = {0, MP_FORMAT_3, MP_FORMAT_3 | MP_SPARSE};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
    for (size_t f = 0; f < sizeof flags / sizeof *flags; f++) {
      const char *path = t_path(0, "new.mp");
      unlink(path);
      mp_pager *p;
      assert_int_equal(mp_create_flags(path, sizes[s], flags[f], &p), MP_OK);
      mp_close(p);
      size_t len;
      uint8_t *img = t_read_file(path, &len);
      uint64_t pages = len / sizes[s];
      uint8_t got[40], want[40];
      assert_true(pages + 2 <= sizeof got);
      memset(got, 0xEE, sizeof got);
      assert_int_equal(mp_create_page_kinds(sizes[s], flags[f], got, pages + 2), MP_OK);
      assert_int_equal(mp_image_page_kinds(img, len, want, pages), MP_OK);
      assert_memory_equal(got, want, pages);
      assert_int_equal(got[pages], MP_PAGE_UNKNOWN);
      assert_int_equal(got[pages + 1], MP_PAGE_UNKNOWN);
      /* 0.3: superblock, two roots, two leaf slots, a free block (4 KiB blocks below 4 KiB) */
      uint64_t m = flags[f] && sizes[s] < 4096 ? 4096 / sizes[s] : 1;
      assert_int_equal(pages, flags[f] ? 6 * m : 4);
      assert_int_equal(got[pages - 1], MP_PAGE_FREE);
      assert_int_equal(got[pages - 1 - m], MP_PAGE_METADATA);
      free(img);
    }
  uint8_t k[4];
  assert_int_equal(mp_create_page_kinds(1000, MP_FORMAT_3, k, 4), MP_EINVAL);
  assert_int_equal(mp_create_page_kinds(512, 0, k, 4), MP_EINVAL);
  assert_int_equal(mp_create_page_kinds(4096, 0x100, k, 4), MP_EINVAL);
  assert_int_equal(mp_create_page_kinds(4096, 0, NULL, 4), MP_EINVAL);
  assert_int_equal(mp_create_page_kinds(4096, 0, NULL, 0), MP_OK);
}

/* A 0.3 block's inactive directory copy is what the operation before the last left: after a
 * protected free it still names the freed pages, which are free (or regular again) now, not
 * protected. The page still in use stays protected. */
static void test_freed_protected_pages_are_not_protected(void **state) {
  (void)state;
  static const size_t sizes[] = {1024, 4096};
  for (size_t s = 0; s < 2; s++) {
    const char *path = t_path(0, "freed.mp");
    unlink(path);
    mp_pager *p;
    assert_int_equal(mp_create_flags(path, sizes[s], MP_FORMAT_3, &p), MP_OK);
    uint64_t kept, freed, kept_page, freed_page;
    uint32_t crc;
    assert_int_equal(mp_protected_alloc(p, &kept), MP_OK);
    assert_int_equal(mp_protected_alloc(p, &freed), MP_OK);
    assert_int_equal(mp_protected_where(p, kept, &kept_page, &crc), MP_OK);
    assert_int_equal(mp_protected_where(p, freed, &freed_page, &crc), MP_OK);
    assert_int_equal(mp_protected_free(p, freed), MP_OK);
    uint64_t pages = mp_page_count(p);
    mp_close(p);
    size_t len;
    uint8_t *img = t_read_file(path, &len);
    uint8_t *kinds = malloc(pages);
    assert_int_equal(mp_image_page_kinds(img, len, kinds, pages), MP_OK);
    assert_int_equal(kinds[kept_page], MP_PAGE_PROTECTED);
    assert_int_equal(kinds[freed_page], MP_PAGE_FREE);
    free(kinds);
    free(img);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_freed_protected_pages_are_not_protected),
      cmocka_unit_test(test_create_kinds_are_the_new_files),
      cmocka_unit_test(test_kinds_of_a_real_file),
      cmocka_unit_test(test_any_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
