/* test_regular.c: the public calls for files and regular pages: every argument check,
 * every error code, persistence across reopen, bulk all-or-nothing, growth to capacity. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mappedpages.h"
#include "support.h"

static void assert_clean(mp_pager *p) {
  unsigned findings = 99;
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
}

static size_t regular_set(mp_pager *p, uint64_t *ids, size_t max) {
  size_t n = 0;
  uint64_t id;
  for (uint64_t from = 0; mp_next_regular(p, from, &id) == MP_OK; from = id + 1) {
    assert_true(n < max);
    ids[n++] = id;
  }
  return n;
}

static void test_argument_checks(void **state) {
  (void)state;
  mp_pager *p = (mp_pager *)1;
  const char *path = t_path(0, "args.mp");
  assert_int_equal(mp_create(NULL, 4096, &p), MP_EINVAL);
  assert_int_equal(mp_create(path, 4096, NULL), MP_EINVAL);
  assert_int_equal(mp_create(path, 512, &p), MP_EINVAL);
  assert_int_equal(mp_create(path, 4097, &p), MP_EINVAL);
  assert_int_equal(mp_create(path, 3072, &p), MP_EINVAL);
  assert_int_equal(mp_create(path, (size_t)1 << 25, &p), MP_EINVAL);
  assert_int_equal(access(path, F_OK), -1); /* nothing was created */
  assert_int_equal(mp_open(NULL, 0, &p), MP_EINVAL);
  assert_int_equal(mp_open(path, 0, NULL), MP_EINVAL);
  assert_int_equal(mp_open(path, 0x80, &p), MP_EINVAL);
  assert_int_equal(mp_open(path, MP_RDONLY | MP_CREATE, &p), MP_EINVAL);
  assert_int_equal(mp_open(path, MP_PREVIEW | MP_CREATE, &p), MP_EINVAL);
  assert_int_equal(mp_open(path, 0, &p), MP_ENOENT);
  assert_null(p);
  assert_int_equal(mp_close(NULL), MP_OK);
  assert_int_equal(mp_page_size(NULL), 0);
  assert_int_equal(mp_page_count(NULL), 0);

  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  uint64_t id;
  void *data;
  assert_int_equal(mp_alloc(NULL, &id), MP_EINVAL);
  assert_int_equal(mp_alloc(p, NULL), MP_EINVAL);
  assert_int_equal(mp_alloc_bulk(p, 3, NULL), MP_EINVAL);
  assert_int_equal(mp_free_bulk(p, 3, NULL), MP_EINVAL);
  assert_int_equal(mp_alloc_bulk(p, 0, NULL), MP_OK);
  assert_int_equal(mp_free_bulk(p, 0, NULL), MP_OK);
  assert_int_equal(mp_page(p, 3, NULL), MP_EINVAL);
  assert_int_equal(mp_next_regular(p, 0, NULL), MP_EINVAL);
  assert_int_equal(mp_check(NULL, NULL, NULL, NULL), MP_EINVAL);
  /* Reserved and out-of-range ids are not regular pages. */
  for (uint64_t r = 0; r < 3; r++) {
    assert_int_equal(mp_free(p, r), MP_EINVAL);
    assert_int_equal(mp_page(p, r, &data), MP_EINVAL);
  }
  assert_int_equal(mp_free(p, 4), MP_EINVAL);
  assert_int_equal(mp_free(p, UINT64_MAX), MP_EINVAL);
  assert_int_equal(mp_page(p, 1000, &data), MP_EINVAL);
  assert_int_equal(mp_free(p, 3), MP_ENOTALLOC); /* in range but free */
  assert_int_equal(mp_page(p, 3, &data), MP_ENOTALLOC);
  assert_int_equal(mp_sync_page(p, 3), MP_ENOTALLOC);
  assert_clean(p);
  mp_close(p);
}

static void test_every_code_has_a_sentence(void **state) {
  (void)state;
  for (int code = 0; code >= MP_EACCES; code--) {
    const char *s = mp_strerror(code);
    assert_non_null(s);
    assert_true(strlen(s) > 5);
    assert_string_not_equal(s, "unknown error code");
  }
  assert_string_equal(mp_strerror(-1000), "unknown error code");
  assert_string_equal(mp_strerror(7), "unknown error code");
}

static void test_create_refuses_existing_files(void **state) {
  (void)state;
  const char *path = t_path(0, "exists.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  mp_close(p);
  assert_int_equal(mp_create(path, 4096, &p), MP_EEXIST);
  assert_int_equal(mp_create(path, 1024, &p), MP_EEXIST);
  /* A file holding anything else is never overwritten. */
  const char *other = t_path(1, "other.txt");
  assert_int_equal(t_write_file(other, "hello, world\n", 13), 0);
  assert_int_equal(mp_create(other, 4096, &p), MP_EEXIST);
  char why[256];
  assert_int_equal(mp_open_explain(other, 0, &p, why, sizeof why), MP_ECORRUPT);
  assert_non_null(strstr(why, "superblock"));
  assert_int_equal(mp_open(other, MP_CREATE, &p), MP_ECORRUPT);
  size_t len;
  uint8_t *data = t_read_file(other, &len);
  assert_int_equal(len, 13);
  assert_memory_equal(data, "hello, world\n", 13);
  free(data);
  /* A directory is not a pager file. */
  assert_int_not_equal(mp_open("/", MP_RDONLY, &p), MP_OK);
}

static void test_open_create_flag(void **state) {
  (void)state;
  const char *path = t_path(0, "oc.mp");
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_CREATE, &p), MP_OK);
  assert_int_equal(mp_page_size(p), MP_DEFAULT_PAGE_SIZE);
  uint64_t id;
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  mp_close(p);
  assert_int_equal(mp_open(path, MP_CREATE, &p), MP_OK); /* opens, does not recreate */
  assert_int_equal(mp_free_count(p), 0);
  mp_close(p);
}

static void test_alloc_free_persist(void **state) {
  (void)state;
  const char *path = t_path(0, "persist.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 1024, &p), MP_OK);
  assert_int_equal(mp_page_count(p), 4);
  assert_int_equal(mp_free_count(p), 1);
  assert_int_equal(mp_capacity(p), (1024 - 28) * 8);
  uint64_t ids[20];
  for (int i = 0; i < 20; i++) {
    assert_int_equal(mp_alloc(p, &ids[i]), MP_OK);
    for (int j = 0; j < i; j++) assert_int_not_equal(ids[i], ids[j]);
    void *data;
    assert_int_equal(mp_page(p, ids[i], &data), MP_OK);
    memset(data, 'a' + i, 1024);
    assert_int_equal(mp_sync_page(p, ids[i]), MP_OK);
  }
  assert_int_equal(mp_page_count(p), 32);
  assert_int_equal(mp_free_count(p), 32 - 3 - 20);
  assert_int_equal(mp_free(p, ids[5]), MP_OK);
  assert_int_equal(mp_free(p, ids[5]), MP_ENOTALLOC);
  assert_int_equal(mp_free(p, ids[7]), MP_OK);
  assert_clean(p);
  mp_close(p);

  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_page_count(p), 32);
  assert_int_equal(mp_free_count(p), 32 - 3 - 18);
  uint64_t got[32];
  size_t n = regular_set(p, got, 32);
  assert_int_equal(n, 18);
  for (size_t k = 0; k < n; k++) {
    int i = 0;
    while (ids[i] != got[k]) i++;
    assert_true(i != 5 && i != 7);
    void *data;
    assert_int_equal(mp_page(p, got[k], &data), MP_OK);
    assert_int_equal(((uint8_t *)data)[0], 'a' + i);
    assert_int_equal(((uint8_t *)data)[1023], 'a' + i);
  }
  /* Freed pages are found again. */
  uint64_t again[2];
  assert_int_equal(mp_alloc_bulk(p, 2, again), MP_OK);
  assert_true((again[0] == ids[5] && again[1] == ids[7]) || (again[0] == ids[7] && again[1] == ids[5]) ||
              mp_free_count(p) == 32 - 3 - 20);
  assert_clean(p);
  mp_close(p);
}

static void test_bulk_all_or_nothing(void **state) {
  (void)state;
  const char *path = t_path(0, "bulk.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  uint64_t *ids = malloc(16000 * sizeof *ids);
  assert_int_equal(mp_alloc_bulk(p, 16000, ids), MP_OK);
  assert_int_equal(mp_page_count(p), 16384);
  assert_int_equal(mp_free_count(p), 16384 - 3 - 16000);
  uint64_t before_free = mp_free_count(p);
  /* One bad id anywhere in the list: nothing is freed. */
  uint64_t bad[4] = {ids[0], ids[1], 2, ids[3]};
  assert_int_equal(mp_free_bulk(p, 4, bad), MP_EINVAL);
  uint64_t dup[3] = {ids[0], ids[1], ids[0]};
  assert_int_equal(mp_free_bulk(p, 3, dup), MP_EINVAL);
  uint64_t unalloc[2] = {ids[0], 16383};
  assert_int_equal(mp_free_bulk(p, 2, unalloc), MP_ENOTALLOC);
  assert_int_equal(mp_free_count(p), before_free);
  void *data;
  assert_int_equal(mp_page(p, ids[0], &data), MP_OK);
  /* More than can ever fit: refused, nothing allocated, the file not grown. */
  uint64_t *many = malloc(40000 * sizeof *many);
  assert_int_equal(mp_alloc_bulk(p, 40000, many), MP_EFULL);
  assert_int_equal(mp_alloc_bulk(p, 32544 - 16003 + 1, many), MP_EFULL);
  assert_int_equal(mp_page_count(p), 16384);
  assert_int_equal(mp_free_count(p), before_free);
  assert_int_equal(mp_free_bulk(p, 16000, ids), MP_OK);
  assert_int_equal(mp_free_count(p), 16384 - 3);
  assert_clean(p);
  mp_close(p);
  free(many);
  free(ids);
}

/* Grows past the reference's panic (16,384 pages at 4 KiB) to the full capacity of
 * one bitmap page, then says "full" without crashing. */
static void grow_to_capacity(size_t ps, uint64_t capacity) {
  const char *path = t_path(0, "grow.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, ps, &p), MP_OK);
  assert_int_equal(mp_capacity(p), capacity);
  uint64_t id, n = 0;
  int rc;
  while ((rc = mp_alloc(p, &id)) == MP_OK) n++;
  assert_int_equal(rc, MP_EFULL);
  assert_int_equal(n, capacity - 3);
  assert_int_equal(mp_page_count(p), capacity);
  assert_int_equal(mp_free_count(p), 0);
  assert_int_equal(mp_protected_alloc(p, &id), MP_EFULL);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_true((uint64_t)st.st_size >= capacity * ps);
  assert_clean(p);
  assert_int_equal(mp_free(p, capacity - 1), MP_OK);
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  assert_int_equal(id, capacity - 1);
  mp_close(p);
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  assert_int_equal(mp_page_count(p), capacity);
  assert_int_equal(mp_free_count(p), 0);
  assert_clean(p);
  mp_close(p);
}

static void test_grow_to_capacity_1024(void **state) { (void)state; grow_to_capacity(1024, 7968); }

static void test_grow_to_capacity_4096(void **state) {
  (void)state;
  /* Bulk allocation gets there in a few commits; single allocs check the edge. */
  const char *path = t_path(0, "grow4k.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  uint64_t *ids = malloc(32544 * sizeof *ids);
  assert_int_equal(mp_alloc_bulk(p, 20000, ids), MP_OK);
  assert_int_equal(mp_page_count(p), 32544);
  assert_int_equal(mp_alloc_bulk(p, 32544 - 3 - 20000 - 1, ids), MP_OK);
  uint64_t id;
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  assert_int_equal(mp_alloc(p, &id), MP_EFULL);
  assert_clean(p);
  mp_close(p);
  free(ids);
}

static void test_read_only(void **state) {
  (void)state;
  const char *path = t_path(0, "ro.mp");
  mp_pager *w, *r1, *r2;
  assert_int_equal(mp_create(path, 4096, &w), MP_OK);
  uint64_t id, pid;
  assert_int_equal(mp_alloc(w, &id), MP_OK);
  assert_int_equal(mp_protected_alloc(w, &pid), MP_OK);
  /* A writer excludes readers and other writers. */
  assert_int_equal(mp_open(path, MP_RDONLY, &r1), MP_EBUSY);
  mp_pager *w2;
  assert_int_equal(mp_open(path, 0, &w2), MP_EBUSY);
  mp_close(w);

  assert_int_equal(mp_open(path, MP_RDONLY, &r1), MP_OK);
  assert_int_equal(mp_open(path, MP_RDONLY, &r2), MP_OK); /* readers coexist */
  assert_int_equal(mp_open(path, 0, &w2), MP_EBUSY);
  uint64_t other;
  void *data;
  const void *cdata;
  assert_int_equal(mp_alloc(r1, &other), MP_ERDONLY);
  assert_int_equal(mp_alloc_bulk(r1, 2, &other), MP_ERDONLY);
  assert_int_equal(mp_free(r1, id), MP_ERDONLY);
  assert_int_equal(mp_free_bulk(r1, 1, &id), MP_ERDONLY);
  assert_int_equal(mp_sync(r1), MP_ERDONLY);
  assert_int_equal(mp_sync_page(r1, id), MP_ERDONLY);
  assert_int_equal(mp_protected_alloc(r1, &other), MP_ERDONLY);
  assert_int_equal(mp_protected_free(r1, pid), MP_ERDONLY);
  assert_int_equal(mp_protected_begin(r1, pid, &data), MP_ERDONLY);
  assert_int_equal(mp_protected_commit(r1, pid), MP_ERDONLY);
  assert_int_equal(mp_protected_abort(r1, pid), MP_ERDONLY);
  assert_int_equal(mp_page(r1, id, &data), MP_OK);
  assert_int_equal(mp_protected_read(r2, pid, &cdata), MP_OK);
  assert_clean(r1);
  /* A preview is a reader: it shares the lock and changes nothing. */
  mp_pager *pv;
  assert_int_equal(mp_open(path, MP_PREVIEW, &pv), MP_OK);
  assert_int_equal(mp_alloc(pv, &other), MP_ERDONLY);
  assert_int_equal(mp_protected_begin(pv, pid, &data), MP_ERDONLY);
  assert_int_equal(mp_sync(pv), MP_ERDONLY);
  assert_int_equal(mp_recovery(pv), 0);
  assert_int_equal(mp_page_count(pv), mp_page_count(r1));
  assert_clean(pv);
  /* Reloaded, it follows the file: a writer's changes, an emptied file (the
   * leftover of a create), and the file back again. */
  mp_close(r1);
  mp_close(r2);
  r1 = r2 = NULL;
  uint64_t before = mp_free_count(pv);
  assert_int_equal(mp_open(path, 0, &w), MP_EBUSY); /* the preview holds a reader's lock */
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  off_t size = lseek(fd, 0, SEEK_END);
  uint8_t *copy = malloc((size_t)size);
  assert_int_equal(pread(fd, copy, (size_t)size, 0), size);
  assert_int_equal(ftruncate(fd, 0), 0);
  char why[200];
  assert_int_equal(mp_reload(pv, why, sizeof why), MP_EINCOMPLETE);
  assert_non_null(strstr(why, "interrupted create"));
  assert_int_equal(mp_next_regular(pv, 0, &other), MP_ENOENT); /* no file loaded: no pages */
  assert_int_equal(mp_check(pv, NULL, NULL, NULL), MP_EINVAL);
  assert_int_equal(pwrite(fd, copy, (size_t)size, 0), size);
  close(fd);
  free(copy);
  assert_int_equal(mp_reload(pv, why, sizeof why), MP_OK);
  assert_int_equal(mp_free_count(pv), before);
  assert_int_equal(mp_next_regular(pv, 0, &other), MP_OK);
  assert_int_equal(other, id);
  assert_clean(pv);
  mp_close(pv);
  assert_int_equal(mp_open(path, MP_RDONLY, &r1), MP_OK);
  assert_int_equal(mp_reload(r1, NULL, 0), MP_OK);
  assert_int_equal(mp_reload(NULL, NULL, 0), MP_EINVAL);
  mp_close(r1);
  assert_int_equal(mp_open(path, 0, &w2), MP_OK);
  assert_int_equal(mp_reload(w2, NULL, 0), MP_EINVAL); /* a writer's view is the file */
  mp_close(w2);
  /* Read-only opens fail cleanly on files they may not write, too. */
  assert_int_equal(chmod(path, 0444), 0);
  if (geteuid() != 0) assert_int_equal(mp_open(path, 0, &w2), MP_EACCES);
  assert_int_equal(mp_open(path, MP_RDONLY, &r1), MP_OK);
  mp_close(r1);
}

static void test_iterator_edges(void **state) {
  (void)state;
  const char *path = t_path(0, "iter.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 1024, &p), MP_OK);
  uint64_t id;
  assert_int_equal(mp_next_regular(p, 0, &id), MP_ENOENT);
  uint64_t ids[200];
  assert_int_equal(mp_alloc_bulk(p, 200, ids), MP_OK);
  assert_int_equal(mp_free(p, 64), MP_OK);
  assert_int_equal(mp_free(p, 127), MP_OK);
  assert_int_equal(mp_next_regular(p, 63, &id), MP_OK);
  assert_int_equal(id, 63);
  assert_int_equal(mp_next_regular(p, 64, &id), MP_OK);
  assert_int_equal(id, 65);
  assert_int_equal(mp_next_regular(p, 127, &id), MP_OK);
  assert_int_equal(id, 128);
  assert_int_equal(mp_next_regular(p, 202, &id), MP_OK);
  assert_int_equal(id, 202);
  assert_int_equal(mp_next_regular(p, 203, &id), MP_ENOENT);
  assert_int_equal(mp_next_regular(p, UINT64_MAX, &id), MP_ENOENT);
  /* Pages behind protected pages are not regular pages. */
  uint64_t pid;
  assert_int_equal(mp_protected_alloc(p, &pid), MP_OK);
  size_t n = 0;
  for (uint64_t from = 0; mp_next_regular(p, from, &id) == MP_OK; from = id + 1) n++;
  assert_int_equal(n, 198);
  assert_int_equal(mp_free_count(p), mp_page_count(p) - 3 - 198 - 4);
  /* The bitmap form names the same pages, and nothing past the file. */
  size_t words = (size_t)(mp_page_count(p) + 63) / 64 + 2;
  uint64_t *bits = calloc(words, 8);
  assert_int_equal(mp_regular_bits(p, 0, bits, words), MP_OK);
  size_t set = 0;
  for (uint64_t pg = 0; pg < words * 64; pg++) {
    unsigned bit = (unsigned)(bits[pg / 64] >> (pg % 64) & 1);
    set += bit;
    if (bit) assert_int_equal(mp_next_regular(p, pg, &id), MP_OK), assert_int_equal(id, pg);
  }
  assert_int_equal(set, 198);
  assert_int_equal(bits[0] & 7, 0); /* reserved pages */
  assert_int_equal(mp_regular_bits(p, 1, bits, 1), MP_OK);
  assert_int_equal(bits[0] >> 63, 0);  /* page 127 was freed */
  assert_int_equal(bits[0] & 1, 0);    /* page 64 too */
  assert_int_equal(mp_regular_bits(p, 0, NULL, 1), MP_EINVAL);
  assert_int_equal(mp_regular_bits(NULL, 0, bits, 1), MP_EINVAL);
  free(bits);
  mp_close(p);
}

/* Every id- or word-taking call on arguments far past the file: each answers as for
 * any id past the file (nothing there), and none reads outside the mapping (an
 * index times 64 or times the page size wraps past 2^64 for such values). */
static void test_huge_arguments(void **state) {
  (void)state;
  const char *path = t_path(0, "huge.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  uint64_t ids[5], pid, id;
  assert_int_equal(mp_alloc_bulk(p, 5, ids), MP_OK); /* word 0 holds regular pages */
  assert_int_equal(mp_protected_alloc(p, &pid), MP_OK);
  static const uint64_t far[] = {UINT64_C(1) << 58, (UINT64_C(1) << 58) + 1, UINT64_C(1) << 61, UINT64_C(1) << 63,
                                 UINT64_MAX / 64, UINT64_MAX / 64 + 1, UINT64_MAX - 1, UINT64_MAX};
  uint64_t words[3];
  for (size_t i = 0; i < sizeof far / sizeof far[0]; i++) {
    memset(words, 0xAB, sizeof words);
    assert_int_equal(mp_regular_bits(p, far[i], words, 3), MP_OK);
    /* From UINT64_MAX - 1, words k = 2 would be word 0 again if the index wrapped. */
    for (int k = 0; k < 3; k++) assert_int_equal(words[k], 0);
    void *data;
    const void *cdata;
    uint32_t crc;
    assert_int_equal(mp_next_regular(p, far[i], &id), MP_ENOENT);
    assert_int_equal(mp_next_protected(p, far[i], &id), MP_ENOENT);
    assert_int_equal(mp_next_written(p, far[i], &id), MP_ENOENT);
    assert_int_equal(mp_page(p, far[i], &data), MP_EINVAL);
    assert_int_equal(mp_sync_page(p, far[i]), MP_EINVAL);
    assert_int_equal(mp_free(p, far[i]), MP_EINVAL);
    assert_int_equal(mp_free_bulk(p, 1, &far[i]), MP_EINVAL);
    assert_int_equal(mp_protected_read(p, far[i], &cdata), MP_ENOTALLOC);
    assert_int_equal(mp_protected_where(p, far[i], &id, &crc), MP_ENOTALLOC);
    assert_int_equal(mp_protected_begin(p, far[i], &data), MP_ENOTALLOC);
    assert_int_equal(mp_protected_commit(p, far[i]), MP_ENOTALLOC);
    assert_int_equal(mp_protected_abort(p, far[i]), MP_ENOTALLOC);
    assert_int_equal(mp_protected_free(p, far[i]), MP_ENOTALLOC);
  }
  /* The words that do hold the file still say so. */
  assert_int_equal(mp_regular_bits(p, 0, words, 1), MP_OK);
  for (int i = 0; i < 5; i++) assert_int_equal(words[0] >> ids[i] & 1, 1);
  assert_clean(p);
  mp_close(p);
}

static void test_sync_whole_file(void **state) {
  (void)state;
  const char *path = t_path(0, "sync.mp");
  mp_pager *p;
  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  uint64_t ids[10];
  assert_int_equal(mp_alloc_bulk(p, 10, ids), MP_OK);
  for (int i = 0; i < 10; i++) {
    void *data;
    assert_int_equal(mp_page(p, ids[i], &data), MP_OK);
    memset(data, i + 1, 4096);
  }
  assert_int_equal(mp_sync(p), MP_OK);
  mp_close(p);
  size_t len;
  uint8_t *file = t_read_file(path, &len);
  for (int i = 0; i < 10; i++) assert_int_equal(file[ids[i] * 4096 + 100], i + 1);
  free(file);
}

/* A reader reloaded image after image keeps what it derived when page 0, the metadata
 * and the directory pages hold the same bytes and the file the same size (a crash
 * checker's images mostly differ in data pages), and loads again otherwise; either
 * way it answers as a fresh reader of the same bytes does. */
static void same_as_fresh(mp_pager *kept, const char *path) {
  mp_pager *fresh;
  assert_int_equal(mp_open(path, MP_RDONLY, &fresh), MP_OK);
  assert_int_equal(mp_page_count(kept), mp_page_count(fresh));
  assert_int_equal(mp_free_count(kept), mp_free_count(fresh));
  assert_int_equal(mp_recovery(kept), mp_recovery(fresh));
  unsigned a = 99, b = 98;
  assert_int_equal(mp_check(kept, NULL, NULL, &a), MP_OK);
  assert_int_equal(mp_check(fresh, NULL, NULL, &b), MP_OK);
  assert_int_equal(a, b);
  uint64_t ka[64], fa[64];
  size_t nk = regular_set(kept, ka, 64), nf = regular_set(fresh, fa, 64);
  assert_int_equal(nk, nf);
  assert_memory_equal(ka, fa, nk * sizeof *ka);
  mp_close(fresh);
}

/* Two states of one file, as bytes: *a with n regular pages and a protected page, *b the same
 * after one more allocation (*more); the file is left holding *b. */
static void two_states(const char *path, size_t n, uint64_t *ids, uint64_t *pid, uint64_t *more, uint8_t **a,
                       size_t *len_a, uint8_t **b, size_t *len_b) {
  mp_pager *w;
  unlink(path);
  assert_int_equal(mp_create(path, 4096, &w), MP_OK);
  assert_int_equal(mp_alloc_bulk(w, n, ids), MP_OK);
  assert_int_equal(mp_protected_alloc(w, pid), MP_OK);
  assert_int_equal(mp_close(w), MP_OK);
  *a = t_read_file(path, len_a);
  assert_int_equal(mp_open(path, 0, &w), MP_OK);
  assert_int_equal(mp_alloc(w, more), MP_OK);
  assert_int_equal(mp_close(w), MP_OK);
  *b = t_read_file(path, len_b);
}

static void test_reload_keeps_what_did_not_change(void **state) {
  (void)state;
  const char *path = t_path(0, "reload-same.mp");
  mp_pager *w;
  uint64_t ids[3], pid, more;
  void *data;
  size_t len_a, len_b;
  uint8_t *a, *b;
  two_states(path, 3, ids, &pid, &more, &a, &len_a, &b, &len_b);
  assert_int_equal(len_a, len_b);
  assert_memory_not_equal(a, b, len_a);

  assert_int_equal(t_write_file(path, a, len_a), 0);
  mp_pager *r;
  bool same = true;
  assert_int_equal(mp_open(path, MP_RDONLY, &r), MP_OK);
  uint64_t basis[64];
  size_t nbasis;
  assert_int_equal(mp_reload_basis(r, basis, 64, &nbasis), MP_ENOENT);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_false(same); /* an open keeps no copies: the first reload loads, and keeps them */
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_true(same); /* nothing changed */
  same_as_fresh(r, path);
  /* a data page changes: the state stands, and the page reads the new bytes */
  a[ids[1] * 4096 + 10] ^= 0x5a;
  assert_int_equal(t_write_file(path, a, len_a), 0);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_true(same);
  assert_int_equal(mp_page(r, ids[1], &data), MP_OK);
  assert_int_equal(((uint8_t *)data)[10], a[ids[1] * 4096 + 10]);
  same_as_fresh(r, path);
  /* the metadata changes: loaded again */
  assert_int_equal(t_write_file(path, b, len_b), 0);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_false(same);
  same_as_fresh(r, path);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_true(same);
  /* a page the structure rests on changes (one byte near its end: page 0, a metadata
   * page, a directory page; the checksum fails): loaded again, and the open fails or
   * mp_check reports it as a fresh reader's does */
  uint64_t prot_page;
  uint32_t crc;
  assert_int_equal(mp_protected_where(r, pid, &prot_page, &crc), MP_OK);
  /* the basis: pages 0 to 2 and both copies of the one directory block */
  assert_int_equal(mp_reload_basis(r, basis, 64, &nbasis), MP_OK);
  assert_int_equal(nbasis, 5);
  for (uint64_t i = 0; i < 3; i++) assert_int_equal(basis[i], i);
  size_t n_only;
  assert_int_equal(mp_reload_basis(r, NULL, 0, &n_only), MP_OK);
  assert_int_equal(n_only, 5);
  bool found_dir = false;
  for (uint64_t pg = 0; pg < len_b / 4096; pg++) {
    if (pg == prot_page || pg == ids[0] || pg == ids[1] || pg == ids[2] || pg == more) continue;
    uint8_t *copy = malloc(len_b);
    memcpy(copy, b, len_b);
    copy[pg * 4096 + 4000] ^= 1;
    assert_int_equal(t_write_file(path, copy, len_b), 0);
    mp_pager *fresh;
    int fresh_rc = mp_open(path, MP_RDONLY, &fresh);
    unsigned n = 0;
    if (fresh_rc == MP_OK) {
      assert_int_equal(mp_check(fresh, NULL, NULL, &n), MP_OK);
      mp_close(fresh);
    }
    if (fresh_rc != MP_OK || n) { /* this page is one the structure rests on */
      found_dir = true;
      bool in_basis = false; /* so the basis names it: a caller that skips reloads sees it change */
      for (size_t i = 0; i < nbasis; i++) in_basis |= basis[i] == pg;
      assert_true(in_basis);
      assert_int_equal(mp_reload_same(r, &same, NULL, 0), fresh_rc);
      assert_false(same);
      if (fresh_rc == MP_OK) same_as_fresh(r, path);
      /* and back: loaded again, as it was */
      assert_int_equal(t_write_file(path, b, len_b), 0);
      assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
      assert_false(same);
      same_as_fresh(r, path);
    }
    free(copy);
  }
  assert_true(found_dir);
  /* the file grows: loaded again */
  assert_int_equal(t_write_file(path, b, len_b), 0);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)len_b + 4096), 0);
  close(fd);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_false(same);
  same_as_fresh(r, path);
  mp_close(r);
  /* a preview always loads again (its recovery writes the pages it reads) */
  mp_pager *pv;
  assert_int_equal(mp_open(path, MP_PREVIEW, &pv), MP_OK);
  assert_int_equal(mp_reload_same(pv, &same, NULL, 0), MP_OK);
  assert_false(same);
  assert_int_equal(mp_reload_basis(pv, basis, 64, &nbasis), MP_ENOENT);
  mp_close(pv);
  assert_int_equal(mp_open(path, 0, &w), MP_OK);
  assert_int_equal(mp_reload_basis(w, basis, 64, &nbasis), MP_ENOENT);
  mp_close(w);
  assert_int_equal(mp_reload_same(NULL, &same, NULL, 0), MP_EINVAL);
  assert_int_equal(mp_reload_basis(NULL, basis, 64, &nbasis), MP_EINVAL);
  free(a);
  free(b);
}

/* MP_BASIS_WATCHED: the handle lists its basis as any reader's does, but keeps no copy of it,
 * so every reload loads again (`*same` false) and still gives a fresh reader's state; only a
 * reader may ask for it. */
static void test_basis_watched_reader_loads_at_every_reload(void **state) {
  (void)state;
  const char *path = t_path(0, "basis-watched.mp");
  mp_pager *r;
  uint64_t ids[2], pid, more;
  size_t len_a, len_b;
  uint8_t *a, *b;
  two_states(path, 2, ids, &pid, &more, &a, &len_a, &b, &len_b);
  assert_int_equal(t_write_file(path, a, len_a), 0);
  assert_int_equal(mp_open(path, MP_RDONLY | MP_BASIS_WATCHED, &r), MP_OK);
  bool same = true;
  uint64_t basis[64];
  size_t nbasis;
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_false(same);
  assert_int_equal(mp_reload_basis(r, basis, 64, &nbasis), MP_OK);
  assert_int_equal(nbasis, 5); /* pages 0 to 2 and the directory block's two copies */
  for (uint64_t i = 0; i < 3; i++) assert_int_equal(basis[i], i);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_false(same); /* nothing changed, yet loaded again: it kept nothing to compare */
  same_as_fresh(r, path);
  /* the metadata changes (the writer's alloc, written as a checker writes an image): the
   * load finds it as any reader's does */
  assert_int_equal(t_write_file(path, b, len_b), 0);
  assert_int_equal(mp_reload_same(r, &same, NULL, 0), MP_OK);
  assert_false(same);
  same_as_fresh(r, path);
  assert_int_equal(mp_close(r), MP_OK);
  free(a);
  free(b);
  /* a writer or a preview keeps no basis to watch */
  assert_int_equal(mp_open(path, MP_BASIS_WATCHED, &r), MP_EINVAL);
  assert_int_equal(mp_open(path, MP_PREVIEW | MP_BASIS_WATCHED, &r), MP_EINVAL);
  assert_int_equal(mp_open(path, MP_RDONLY | MP_PREVIEW | MP_BASIS_WATCHED, &r), MP_EINVAL);
}

/* A preview's reload gives the pages its recovery copied the file's bytes again: here page 0,
 * whose metadata selector recovery turned to the older copy when the current one was damaged.
 * Once the damage is undone, the reloaded preview recovers nothing and shows the file's state,
 * not one derived from its old copy of page 0; the copy stays its own (mp_next_written), with
 * the file's bytes. */
static void test_preview_reload_refreshes_its_copies(void **state) {
  (void)state;
  const char *path = t_path(0, "preview-refresh.mp");
  unlink(path);
  mp_pager *w, *pv, *fresh;
  uint64_t ids[2];
  assert_int_equal(mp_create(path, 4096, &w), MP_OK);
  assert_int_equal(mp_alloc(w, &ids[0]), MP_OK);
  assert_int_equal(mp_alloc(w, &ids[1]), MP_OK);
  assert_int_equal(mp_close(w), MP_OK);
  size_t len;
  uint8_t *good = t_read_file(path, &len), *bad = malloc(len);
  assert_non_null(bad);
  unsigned meta = 1;
  for (; meta <= 2; meta++) { /* the current metadata copy, damaged */
    memcpy(bad, good, len);
    bad[meta * 4096 + 1000] ^= 0x40;
    assert_int_equal(t_write_file(path, bad, len), 0);
    assert_int_equal(mp_open(path, MP_PREVIEW, &pv), MP_OK);
    if (mp_recovery(pv) & MP_RECOVER_METADATA) break;
    mp_close(pv);
  }
  assert_true(meta <= 2);
  uint64_t w0;
  assert_int_equal(mp_next_written(pv, 0, &w0), MP_OK);
  assert_int_equal(w0, 0); /* the selector, rewritten in its copy of page 0 */
  assert_int_equal(t_write_file(path, good, len), 0);
  assert_int_equal(mp_reload(pv, NULL, 0), MP_OK);
  assert_int_equal(mp_recovery(pv), 0);
  assert_int_equal(mp_open(path, MP_RDONLY, &fresh), MP_OK);
  assert_int_equal(mp_free_count(pv), mp_free_count(fresh));
  assert_int_equal(mp_page_count(pv), mp_page_count(fresh));
  uint64_t got;
  assert_int_equal(mp_next_regular(pv, ids[1], &got), MP_OK);
  assert_int_equal(got, ids[1]); /* the newer copy's allocation */
  mp_close(fresh);
  assert_int_equal(mp_next_written(pv, 0, &w0), MP_OK);
  assert_int_equal(w0, 0);
  mp_close(pv);
  free(good);
  free(bad);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_argument_checks),
      cmocka_unit_test(test_every_code_has_a_sentence),
      cmocka_unit_test(test_create_refuses_existing_files),
      cmocka_unit_test(test_open_create_flag),
      cmocka_unit_test(test_alloc_free_persist),
      cmocka_unit_test(test_bulk_all_or_nothing),
      cmocka_unit_test(test_grow_to_capacity_1024),
      cmocka_unit_test(test_grow_to_capacity_4096),
      cmocka_unit_test(test_read_only),
      cmocka_unit_test(test_reload_keeps_what_did_not_change),
      cmocka_unit_test(test_basis_watched_reader_loads_at_every_reload),
      cmocka_unit_test(test_preview_reload_refreshes_its_copies),
      cmocka_unit_test(test_iterator_edges),
      cmocka_unit_test(test_sync_whole_file),
      cmocka_unit_test(test_huge_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
