/* test_protected.c: protected pages through the public API: allocation across several
 * directory blocks, staged writes that start from the current content, commit, abort,
 * free, persistence, and that no page leaks in a long alloc/free cycle. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mappedpages.h"
#include "support.h"

static void assert_clean(mp_pager *p) {
  unsigned findings = 99;
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
}

static void write_protected(mp_pager *p, uint64_t id, int value) {
  void *stage;
  assert_int_equal(mp_protected_begin(p, id, &stage), MP_OK);
  memset(stage, value, mp_page_size(p));
  assert_int_equal(mp_protected_commit(p, id), MP_OK);
}

static int first_byte(mp_pager *p, uint64_t id) {
  const uint8_t *data;
  assert_int_equal(mp_protected_read(p, id, (const void **)&data), MP_OK);
  for (size_t i = 1; i < mp_page_size(p); i++) assert_int_equal(data[i], data[0]);
  return data[0];
}

static void test_lifecycle(void **state) {
  (void)state;
  mp_pager *p;
  assert_int_equal(mp_create(t_path(0, "life.mp"), 4096, &p), MP_OK);
  uint64_t id;
  assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
  assert_int_equal(id, 0);
  assert_int_equal(first_byte(p, id), 0); /* starts zeroed */
  write_protected(p, id, 0x11);
  assert_int_equal(first_byte(p, id), 0x11);
  write_protected(p, id, 0x22);
  /* The staging buffer starts with the current content, not the one before. */
  uint8_t *stage;
  assert_int_equal(mp_protected_begin(p, id, (void **)&stage), MP_OK);
  assert_int_equal(stage[0], 0x22);
  assert_int_equal(stage[4095], 0x22);
  assert_int_equal(mp_protected_begin(p, id, (void **)&stage), MP_EBUSY);
  stage[10] = 0x99;
  assert_int_equal(first_byte(p, id), 0x22); /* nothing visible before commit */
  assert_int_equal(mp_protected_abort(p, id), MP_OK);
  assert_int_equal(mp_protected_abort(p, id), MP_ENOTSTAGED);
  assert_int_equal(mp_protected_commit(p, id), MP_ENOTSTAGED);
  assert_int_equal(first_byte(p, id), 0x22);
  assert_int_equal(mp_protected_begin(p, id, (void **)&stage), MP_OK);
  assert_int_equal(stage[10], 0x22); /* an aborted write leaves no trace */
  memset(stage, 0x33, 4096);
  assert_int_equal(mp_protected_commit(p, id), MP_OK);
  assert_int_equal(first_byte(p, id), 0x33);
  assert_clean(p);

  /* Unknown ids and wrong arguments. */
  const void *data;
  assert_int_equal(mp_protected_read(p, 1, &data), MP_ENOTALLOC);
  assert_int_equal(mp_protected_read(p, 1000000, &data), MP_ENOTALLOC);
  assert_int_equal(mp_protected_read(p, UINT64_MAX, &data), MP_ENOTALLOC);
  assert_int_equal(mp_protected_begin(p, 7, (void **)&stage), MP_ENOTALLOC);
  assert_int_equal(mp_protected_free(p, 7), MP_ENOTALLOC);
  assert_int_equal(mp_protected_read(p, id, NULL), MP_EINVAL);
  assert_int_equal(mp_protected_alloc(p, NULL), MP_EINVAL);
  assert_int_equal(mp_protected_alloc(NULL, &id), MP_EINVAL);
  assert_int_equal(mp_next_protected(p, 0, NULL), MP_EINVAL);

  /* The pages behind a protected page are not regular pages. */
  uint64_t regular;
  assert_int_equal(mp_next_regular(p, 0, &regular), MP_ENOENT);
  for (uint64_t pg = 3; pg < mp_page_count(p); pg++) {
    void *raw;
    int rc = mp_page(p, pg, &raw);
    assert_true(rc == MP_EINVAL || rc == MP_ENOTALLOC);
    assert_int_not_equal(mp_free(p, pg), MP_OK);
  }

  /* Free, also with a write staged; the slot is reused. */
  assert_int_equal(mp_protected_begin(p, id, (void **)&stage), MP_OK);
  assert_int_equal(mp_protected_free(p, id), MP_OK);
  assert_int_equal(mp_protected_free(p, id), MP_ENOTALLOC);
  assert_int_equal(mp_protected_read(p, id, &data), MP_ENOTALLOC);
  assert_int_equal(mp_protected_commit(p, id), MP_ENOTALLOC);
  assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
  assert_int_equal(id, 0);
  assert_int_equal(first_byte(p, id), 0);
  assert_clean(p);
  mp_close(p);
}

/* At 1 KiB pages a directory page holds 33 entries, so 100 protected pages need
 * four blocks; everything survives a reopen. */
static void test_many_blocks_persist(void **state) {
  (void)state;
  const char *path = t_path(0, "blocks.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 1024, &p), MP_OK);
  uint64_t ids[100];
  for (int i = 0; i < 100; i++) {
    assert_int_equal(mp_protected_alloc(p, &ids[i]), MP_OK);
    assert_int_equal(ids[i], (uint64_t)i);
    write_protected(p, ids[i], i + 1);
  }
  for (int i = 0; i < 100; i += 7) write_protected(p, ids[i], 200 + i / 7);
  for (int i = 1; i < 100; i += 10) assert_int_equal(mp_protected_free(p, ids[i]), MP_OK);
  uint64_t reg[5];
  assert_int_equal(mp_alloc_bulk(p, 5, reg), MP_OK);
  assert_clean(p);
  mp_close(p);

  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  assert_clean(p);
  int seen = 0;
  uint64_t id;
  for (uint64_t from = 0; mp_next_protected(p, from, &id) == MP_OK; from = id + 1) {
    assert_true(id < 100);
    assert_int_not_equal(id % 10, 1);
    int want = id % 7 == 0 ? 200 + (int)id / 7 : (int)id + 1;
    assert_int_equal(first_byte(p, id), want);
    seen++;
  }
  assert_int_equal(seen, 90);
  assert_int_equal(mp_recovery(p), 0); /* a file closed cleanly needs nothing */
  size_t n = 0;
  for (uint64_t from = 0; mp_next_regular(p, from, &id) == MP_OK; from = id + 1) n++;
  assert_int_equal(n, 5);
  assert_int_equal(mp_leaked_count(p), 0);
  mp_close(p);
}

/* Allocating and freeing protected pages over and over leaks nothing: the free
 * count returns to where it was, less the directory blocks that stay. */
static void test_no_leak_in_cycles(void **state) {
  (void)state;
  mp_pager *p;
  assert_int_equal(mp_create(t_path(0, "cycle.mp"), 1024, &p), MP_OK);
  uint64_t ids[40];
  for (int i = 0; i < 40; i++) assert_int_equal(mp_protected_alloc(p, &ids[i]), MP_OK);
  for (int i = 0; i < 40; i++) assert_int_equal(mp_protected_free(p, ids[i]), MP_OK);
  uint64_t baseline = mp_free_count(p), total = mp_page_count(p);
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 40; i++) assert_int_equal(mp_protected_alloc(p, &ids[i]), MP_OK);
    assert_int_equal(mp_free_count(p), baseline - 80);
    for (int i = 0; i < 40; i += 2) assert_int_equal(mp_protected_free(p, ids[i]), MP_OK);
    for (int i = 1; i < 40; i += 2) assert_int_equal(mp_protected_free(p, ids[i]), MP_OK);
    assert_int_equal(mp_free_count(p), baseline);
  }
  assert_int_equal(mp_page_count(p), total);
  assert_clean(p);
  mp_close(p);
}

/* A protected page written by one commit shows the other commit's generation
 * number on disk, and the entry checksum guards the current copy. */
static void test_damaged_copy_is_detected(void **state) {
  (void)state;
  const char *path = t_path(0, "damaged.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  uint64_t id;
  assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
  write_protected(p, id, 0x5a);
  mp_close(p);
  size_t len;
  uint8_t *file = t_read_file(path, &len);
  /* Find the page holding the committed copy and damage one byte. */
  size_t hits = 0;
  for (size_t pg = 3; pg < len / 4096; pg++) {
    if (file[pg * 4096] == 0x5a && file[pg * 4096 + 4095] == 0x5a) {
      file[pg * 4096 + 1000] ^= 1;
      hits++;
    }
  }
  assert_int_equal(hits, 1);
  assert_int_equal(t_write_file(path, file, len), 0);
  free(file);
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  const void *data;
  assert_int_equal(mp_protected_read(p, id, &data), MP_ECORRUPT);
  unsigned findings = 0;
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 1);
  /* The structure alone is sound: the damage is in the content. */
  assert_int_equal(mp_check_flags(p, MP_CHECK_NO_CONTENT, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
  assert_int_equal(mp_check_flags(p, 0x80, NULL, NULL, &findings), MP_EINVAL);
  /* A new commit replaces the damaged copy. */
  write_protected(p, id, 0x6b);
  assert_int_equal(first_byte(p, id), 0x6b);
  mp_close(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lifecycle),
      cmocka_unit_test(test_many_blocks_persist),
      cmocka_unit_test(test_no_leak_in_cycles),
      cmocka_unit_test(test_damaged_copy_is_detected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
