/* test_interop.c: files written by the reference implementation open and match their
 * manifests exactly, and files we write obey FORMAT.md as the reference reads it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mappedpages.h"
#include "support.h"

/* ---- manifests ------------------------------------------------------------- */

typedef struct manifest {
  size_t page_size;
  uint64_t page_count, free_count;
  size_t regular_count;
  uint64_t regular[64];
  int regular_byte[64];
  size_t protected_count;
  uint64_t protected_id[64];
  int first[64], last[64];
  long sum[64];
} manifest;

static void read_manifest(const char *name, manifest *m) {
  memset(m, 0, sizeof *m);
  FILE *f = fopen(t_fixture(name), "r");
  assert_non_null(f);
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    unsigned long long a, b;
    int x, y;
    long s;
    if (sscanf(line, "page_size %llu", &a) == 1) m->page_size = a;
    else if (sscanf(line, "page_count %llu", &a) == 1) m->page_count = a;
    else if (sscanf(line, "free_count %llu", &a) == 1) m->free_count = a;
    else if (sscanf(line, "regular_count %llu", &a) == 1) m->regular_count = a;
    else if (strncmp(line, "regular ", 8) == 0) {
      char *p = line + 8, *end;
      size_t n = 0;
      for (unsigned long long v = strtoull(p, &end, 10); end != p; v = strtoull(p, &end, 10)) {
        m->regular[n++] = v;
        p = end;
      }
      assert_int_equal(n, m->regular_count);
    } else if (sscanf(line, "regular_byte %llu %llu", &a, &b) == 2) {
      for (size_t i = 0; i < m->regular_count; i++)
        if (m->regular[i] == a) m->regular_byte[i] = (int)b;
    } else if (sscanf(line, "protected_count %llu", &a) == 1) {
      m->protected_count = a;
    } else if (sscanf(line, "protected %llu first %d last %d sum %ld", &a, &x, &y, &s) == 4) {
      size_t i = 0;
      while (i < 64 && (m->first[i] || m->last[i] || m->sum[i])) i++;
      m->protected_id[i] = a;
      m->first[i] = x;
      m->last[i] = y;
      m->sum[i] = s;
    }
  }
  fclose(f);
}

/* Everything the manifest says, through the public API only. */
static void assert_matches(mp_pager *p, const manifest *m) {
  assert_int_equal(mp_page_size(p), m->page_size);
  assert_int_equal(mp_page_count(p), m->page_count);
  assert_int_equal(mp_free_count(p), m->free_count);
  size_t n = 0;
  uint64_t id;
  for (uint64_t from = 0; mp_next_regular(p, from, &id) == MP_OK; from = id + 1) {
    assert_true(n < m->regular_count);
    assert_int_equal(id, m->regular[n]);
    void *data;
    assert_int_equal(mp_page(p, id, &data), MP_OK);
    assert_int_equal(((uint8_t *)data)[0], m->regular_byte[n]);
    n++;
  }
  assert_int_equal(n, m->regular_count);
  n = 0;
  for (uint64_t from = 0; mp_next_protected(p, from, &id) == MP_OK; from = id + 1) {
    assert_true(n < m->protected_count);
    assert_int_equal(id, m->protected_id[n]);
    const uint8_t *data;
    assert_int_equal(mp_protected_read(p, id, (const void **)&data), MP_OK);
    long sum = 0;
    for (size_t i = 0; i < m->page_size; i++) sum += data[i];
    assert_int_equal(data[0], m->first[n]);
    assert_int_equal(data[m->page_size - 1], m->last[n]);
    assert_int_equal(sum, m->sum[n]);
    n++;
  }
  assert_int_equal(n, m->protected_count);
  unsigned findings = 99;
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
}

/* ---- FORMAT.md, checked independently of the library ------------------------ */

/* The rules the reference applies on open, written from FORMAT.md with zlib's
 * crc32, so a file we write passes them without trusting our own decoder. */
static void assert_reference_rules(const uint8_t *f, size_t len) {
  assert_true(len >= 24);
  assert_memory_equal(f, "MPPG", 4);
  assert_int_equal(f[4], 0);
  assert_true(f[5] <= 2);
  uint32_t log2 = t_le32(f + 8);
  assert_true(log2 >= 10);
  size_t ps = (size_t)1 << log2;
  assert_true(len >= 3 * ps);
  assert_true(f[12] <= 1);
  const uint8_t *meta = f + ps * (1 + f[12]);
  assert_int_equal(t_le32(f + 16), t_crc(meta, ps));
  assert_int_equal(t_le32(meta + ps - 4), t_crc(meta, ps - 4));
  uint64_t total = t_le64(meta), free_count = t_le64(meta + 16);
  assert_true(total * ps <= len);
  uint64_t used = 0;
  for (uint64_t i = 0; i < total; i++) used += meta[24 + i / 8] >> (i % 8) & 1;
  assert_int_equal(free_count, total - used);
  assert_int_equal(meta[24] & 7, 7);
  uint32_t dc = t_le32(f + 20);
  if (dc > 0) assert_int_equal(t_le32(f + ps - 4), t_crc(f + 20, ps - 24));
  for (uint32_t i = 0; i < dc; i++) {
    const uint8_t *ref = f + 24 + 17 * i;
    uint64_t page = t_le64(ref + (ref[16] ? 8 : 0));
    assert_true(page < total);
    const uint8_t *dir = f + page * ps;
    assert_int_equal(t_le32(dir), (ps - 12) / 30);
    assert_int_equal(t_le32(dir + ps - 4), t_crc(dir, ps - 4));
    for (uint32_t e = 0; e < (ps - 12) / 30; e++) {
      const uint8_t *ent = dir + 8 + 30 * e;
      if (!ent[0]) continue;
      uint64_t cur = t_le64(ent + (ent[17] ? 9 : 1));
      assert_true(cur < total);
      assert_int_equal(t_le32(ent + 26), t_crc(f + cur * ps, ps));
    }
  }
}

/* ---- tests ------------------------------------------------------------------ */

static void open_fixture(const char *img, const char *txt, unsigned flags) {
  size_t len;
  uint8_t *data = t_read_file(t_fixture(img), &len);
  assert_non_null(data);
  const char *path = t_path(0, "fixture.img");
  assert_int_equal(t_write_file(path, data, len), 0);
  manifest m;
  read_manifest(txt, &m);
  mp_pager *p;
  char why[256] = "";
  int rc = mp_open_explain(path, flags, &p, why, sizeof why);
  if (rc != MP_OK) fail_msg("%s: %s", img, why);
  assert_matches(p, &m);
  /* Another writer's file: a writer's open adopts it (and only that). */
  assert_int_equal(mp_recovery(p), MP_RECOVER_ADOPT);
  assert_int_equal(mp_close(p), MP_OK);
  /* A read-only open must not change a byte; a writer may only adopt the file
   * (mirror directory copies, set the build byte), never change its content. */
  size_t after_len;
  uint8_t *after = t_read_file(path, &after_len);
  assert_int_equal(after_len, len);
  if (flags & MP_RDONLY) assert_memory_equal(after, data, len);
  assert_reference_rules(after, after_len);
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  assert_matches(p, &m);
  assert_int_equal(mp_recovery(p), flags & MP_RDONLY ? MP_RECOVER_ADOPT : 0);
  mp_close(p);
  free(after);
  free(data);
}

static void test_fresh_rdonly(void **state) { (void)state; open_fixture("fresh-4k.img.gz", "fresh-4k.txt", MP_RDONLY); }
static void test_fresh_rw(void **state) { (void)state; open_fixture("fresh-4k.img.gz", "fresh-4k.txt", 0); }
static void test_allocs_rdonly(void **state) { (void)state; open_fixture("allocs-4k.img.gz", "allocs-4k.txt", MP_RDONLY); }
static void test_allocs_rw(void **state) { (void)state; open_fixture("allocs-4k.img.gz", "allocs-4k.txt", 0); }
static void test_protected_rdonly(void **state) {
  (void)state;
  open_fixture("protected-4k.img.gz", "protected-4k.txt", MP_RDONLY);
}
static void test_protected_rw(void **state) { (void)state; open_fixture("protected-4k.img.gz", "protected-4k.txt", 0); }

/* The reference's freed protected page 3 left its pages (12, 13) in the lagging
 * directory copy while page 12 became a regular page: adopting the file must not
 * mistake that for an interrupted free. */
static void test_reference_lagging_copy_is_not_reclaimed(void **state) {
  (void)state;
  size_t len;
  uint8_t *data = t_read_file(t_fixture("protected-4k.img.gz"), &len);
  const char *path = t_path(0, "lag.img");
  assert_int_equal(t_write_file(path, data, len), 0);
  mp_pager *p;
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  void *page;
  assert_int_equal(mp_page(p, 12, &page), MP_OK);
  assert_int_equal(((uint8_t *)page)[0], 195);
  assert_int_equal(mp_leaked_count(p), 0);
  /* Keep working on it: allocations and protected writes after adoption. */
  uint64_t id, pid;
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  assert_int_equal(mp_protected_alloc(p, &pid), MP_OK);
  assert_int_equal(pid, 3); /* the free slot */
  void *stage;
  assert_int_equal(mp_protected_begin(p, 0, &stage), MP_OK);
  assert_int_equal(((uint8_t *)stage)[0], 48); /* staging starts with the current content */
  memset(stage, 7, 4096);
  assert_int_equal(mp_protected_commit(p, 0), MP_OK);
  mp_close(p);
  free(data);
  data = t_read_file(path, &len);
  assert_reference_rules(data, len);
  assert_int_equal(data[7], 1); /* marked as written by this library */
  free(data);
}

/* Files this library writes, at several page sizes and through every kind of
 * operation, obey the reference's rules. */
static void test_written_files_follow_format(void **state) {
  (void)state;
  for (size_t ps = 1024; ps <= 16384; ps *= 4) {
    const char *path = t_path(1, "ours.img");
    mp_pager *p;
    assert_int_equal(mp_create(path, ps, &p), MP_OK);
    uint64_t ids[100], prot[40];
    assert_int_equal(mp_alloc_bulk(p, 100, ids), MP_OK);
    for (int i = 0; i < 40; i++) assert_int_equal(mp_protected_alloc(p, &prot[i]), MP_OK);
    for (int i = 0; i < 40; i += 3) {
      void *stage;
      assert_int_equal(mp_protected_begin(p, prot[i], &stage), MP_OK);
      memset(stage, i, ps);
      assert_int_equal(mp_protected_commit(p, prot[i]), MP_OK);
    }
    assert_int_equal(mp_free_bulk(p, 50, ids + 25), MP_OK);
    for (int i = 0; i < 40; i += 4) assert_int_equal(mp_protected_free(p, prot[i]), MP_OK);
    mp_close(p);
    size_t len;
    uint8_t *data = t_read_file(path, &len);
    assert_reference_rules(data, len);
    free(data);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fresh_rdonly),
      cmocka_unit_test(test_fresh_rw),
      cmocka_unit_test(test_allocs_rdonly),
      cmocka_unit_test(test_allocs_rw),
      cmocka_unit_test(test_protected_rdonly),
      cmocka_unit_test(test_protected_rw),
      cmocka_unit_test(test_reference_lagging_copy_is_not_reclaimed),
      cmocka_unit_test(test_written_files_follow_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
