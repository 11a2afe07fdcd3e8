/* test_patch.c: a commit writes its metadata by patching what the handle wrote before (0.3:
 * its leaves and roots, commit3.c; 0.2: its metadata copy, commit.c, "patching" in each),
 * and that must change nothing on the disk:
 *
 * - Two files, driven by the same random operations (alloc, free, their bulk forms across
 *   groups and growth, protected alloc, commit and free, failed msyncs at either barrier,
 *   reopens), one handle patching and one told to write every block whole as before
 *   (mp3_state.whole, mp_pager.meta_whole): after every few operations the two files are the
 *   same bytes, and mp_check finds nothing. 0.3 at pages of 1, 4, 8 and 64 KiB (metadata
 *   blocks of 4, 4, 8 and 64 KiB), and at 128 KiB, whose blocks no commit patches; 0.2 at
 *   1, 4 and 64 KiB, and 128 KiB (not patched).
 * - An alloc and a free on a warm group copy, count and checksum no whole block: the cost of
 *   a commit beyond its two msyncs must not follow the block's or the file's size. */
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fiu-control.h>
#include <fiu.h>

#include "internal.h"
#include "mappedpages.h"
#include "support.h"

/* msync number fail_at (counted from the last arm()) fails; 0: none. */
static int msyncs, fail_at;

static int msync_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  return ++msyncs == fail_at;
}

static void arm(int at) {
  msyncs = 0;
  fail_at = at;
}

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* The two files hold the same bytes. Both are sparse and mostly holes: what was written (the
 * file system's data extents, the same in both) is compared, the holes read as zeros. */
static void same_files(const char *a, const char *b, int step) {
  int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
  assert_true(fa >= 0 && fb >= 0);
  struct stat sa, sb;
  assert_int_equal(fstat(fa, &sa), 0);
  assert_int_equal(fstat(fb, &sb), 0);
  if (sa.st_size != sb.st_size)
    fail_msg("step %d: the files are %lld and %lld bytes", step, (long long)sa.st_size, (long long)sb.st_size);
  static uint8_t x[1 << 16], y[1 << 16];
  off_t at = 0;
  for (;;) {
    off_t da = lseek(fa, at, SEEK_DATA), db = lseek(fb, at, SEEK_DATA);
    off_t from = da < 0 ? db : db < 0 ? da : da < db ? da : db; /* data in either */
    if (from < 0) break;
    off_t ha = lseek(fa, from, SEEK_HOLE), hb = lseek(fb, from, SEEK_HOLE);
    off_t to = ha > hb ? ha : hb;
    for (off_t o = from; o < to; o += (off_t)sizeof x) {
      size_t n = to - o < (off_t)sizeof x ? (size_t)(to - o) : sizeof x;
      assert_int_equal(pread(fa, x, n, o), (ssize_t)n);
      assert_int_equal(pread(fb, y, n, o), (ssize_t)n);
      if (memcmp(x, y, n) != 0)
        for (size_t i = 0; i < n; i++)
          if (x[i] != y[i])
            fail_msg("step %d: the files first differ at byte %lld (%02x, whole %02x)", step, (long long)(o + (off_t)i),
                     x[i], y[i]);
    }
    at = to;
  }
  close(fa);
  close(fb);
}

static void no_findings(mp_pager *p) {
  unsigned findings = 99;
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
}

/* The state the two handles share: the regular pages allocated and the protected ids. */
typedef struct ids {
  uint64_t *v;
  size_t n, cap;
} ids;

static void ids_add(ids *s, uint64_t id) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 256;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    assert_non_null(s->v);
  }
  s->v[s->n++] = id;
}

static uint64_t ids_take(ids *s, uint64_t r) {
  size_t i = (size_t)(r % s->n);
  uint64_t id = s->v[i];
  s->v[i] = s->v[--s->n];
  return id;
}

/* The most pages a bulk allocation that grows the file asks for: 0.2 files hold one bitmap
 * page's worth (7,968 pages at 1 KiB pages, 32,544 at 4 KiB). */
static size_t big_bulk;

/* One random operation on both handles, with the same msync failing in each when `fail`. */
static void both(mp_pager *h[2], ids *reg, ids *prot, uint64_t *seed, int step) {
  uint64_t r = rng(seed), what = r % 100;
  int fail = r >> 32 & 1 && (r >> 33) % 5 == 0 ? 1 + (int)((r >> 40) % 2) : 0; /* stage or root */
  int rc[2];
  uint64_t got[2][64];
  if (what < 35 || reg->n < 4) { /* alloc, one or a few */
    size_t n = what % 3 ? 1 : 1 + (size_t)(r >> 8) % 63;
    for (int i = 0; i < 2; i++) {
      arm(fail);
      rc[i] = n == 1 ? mp_alloc(h[i], got[i]) : mp_alloc_bulk(h[i], n, got[i]);
    }
    assert_int_equal(rc[0], rc[1]);
    if (rc[0] == MP_OK) {
      assert_memory_equal(got[0], got[1], n * sizeof got[0][0]);
      for (size_t j = 0; j < n; j++) ids_add(reg, got[0][j]);
    }
  } else if (what < 37) { /* a bulk allocation that grows the file into more groups */
    size_t n = big_bulk / 7 + (size_t)(r >> 8) % big_bulk;
    uint64_t *v[2] = {malloc(n * 8), malloc(n * 8)};
    for (int i = 0; i < 2; i++) {
      arm(fail);
      rc[i] = mp_alloc_bulk(h[i], n, v[i]);
    }
    assert_int_equal(rc[0], rc[1]);
    if (rc[0] == MP_OK) {
      assert_memory_equal(v[0], v[1], n * 8);
      for (size_t j = 0; j < n; j++) ids_add(reg, v[0][j]);
    }
    free(v[0]), free(v[1]);
  } else if (what < 75) { /* free, one or a few (scattered over the groups) */
    size_t n = what % 4 ? 1 : 1 + (size_t)(r >> 8) % (reg->n < 64 ? reg->n : 63);
    uint64_t v[64];
    for (size_t j = 0; j < n; j++) v[j] = ids_take(reg, rng(seed));
    for (int i = 0; i < 2; i++) {
      arm(fail);
      rc[i] = n == 1 ? mp_free(h[i], v[0]) : mp_free_bulk(h[i], n, v);
    }
    assert_int_equal(rc[0], rc[1]);
    if (rc[0] != MP_OK)
      for (size_t j = 0; j < n; j++) ids_add(reg, v[j]);
  } else if (what < 82 || prot->n == 0) { /* protected alloc */
    for (int i = 0; i < 2; i++) {
      arm(fail);
      rc[i] = mp_protected_alloc(h[i], got[i]);
    }
    assert_int_equal(rc[0], rc[1]);
    if (rc[0] == MP_OK) {
      assert_int_equal(got[0][0], got[1][0]);
      ids_add(prot, got[0][0]);
    }
  } else if (what < 94) { /* protected commit */
    uint64_t id = prot->v[(r >> 8) % prot->n];
    for (int i = 0; i < 2; i++) {
      void *data;
      assert_int_equal(mp_protected_begin(h[i], id, &data), MP_OK);
      memset(data, (int)(r >> 16), 64);
      arm(fail);
      rc[i] = mp_protected_commit(h[i], id);
      if (rc[i] != MP_OK) {
        arm(0);
        assert_int_equal(mp_protected_abort(h[i], id), MP_OK);
      }
    }
    assert_int_equal(rc[0], rc[1]);
  } else { /* protected free */
    uint64_t id = ids_take(prot, r >> 8);
    for (int i = 0; i < 2; i++) {
      arm(fail);
      rc[i] = mp_protected_free(h[i], id);
    }
    assert_int_equal(rc[0], rc[1]);
    if (rc[0] != MP_OK) ids_add(prot, id);
  }
  if (fail && rc[0] == MP_OK) fail_msg("step %d: msync %d was to fail, the call succeeded", step, fail);
  arm(0);
}

/* The handle writes whole (true) or patches. */
static void set_whole(mp_pager *p, bool whole) {
  if (p->fmt3)
    p->v3->whole = whole;
  else
    p->meta_whole = whole;
}

/* Bytes of metadata the handle checksummed whole. */
static uint64_t summed(const mp_pager *p) { return p->fmt3 ? p->v3->work.summed : p->meta_summed; }

static void run_same_bytes(unsigned format, size_t ps, uint64_t seed, int steps) {
  const char *path[2] = {t_path(0, "patched.mp"), t_path(1, "whole.mp")};
  mp_pager *h[2];
  big_bulk = format == 3 ? 30000 : ps == 1024 ? 3000 : 12000;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(mp_create_flags(path[i], ps, (format == 3 ? MP_FORMAT_3 : 0) | MP_SPARSE, &h[i]), MP_OK);
    assert_int_equal(h[i]->fmt3, format == 3);
    set_whole(h[i], i == 1);
  }
  ids reg = {0}, prot = {0};
  assert_int_equal(fiu_enable_external("pager/msync", 1, (void *)(intptr_t)EIO, 0, msync_cb), 0);
  for (int step = 0; step < steps; step++) {
    both(h, &reg, &prot, &seed, step);
    assert_false(h[0]->poisoned);
    if (step % 40 == 39) {
      same_files(path[0], path[1], step);
      if (step % 120 == 79) { /* a reopen: the patching handle knows nothing it did not load */
        for (int i = 0; i < 2; i++) {
          assert_int_equal(mp_close(h[i]), MP_OK);
          assert_int_equal(mp_open(path[i], 0, &h[i]), MP_OK);
          set_whole(h[i], i == 1);
        }
      }
    }
  }
  fiu_disable("pager/msync");
  same_files(path[0], path[1], steps);
  if (ps <= 65536)
    assert_true(4 * summed(h[0]) < 3 * summed(h[1])); /* it did patch */
  else
    assert_int_equal(summed(h[0]), summed(h[1])); /* it did not */
  for (int i = 0; i < 2; i++) {
    no_findings(h[i]);
    assert_int_equal(mp_close(h[i]), MP_OK);
    assert_int_equal(mp_open(path[i], MP_RDONLY, &h[i]), MP_OK);
    no_findings(h[i]);
    assert_int_equal(mp_close(h[i]), MP_OK);
    unlink(path[i]);
  }
  free(reg.v);
  free(prot.v);
}

static void test_same_bytes_1k(void **state) {
  (void)state;
  run_same_bytes(3, 1024, 11, 1500);
}
static void test_same_bytes_4k(void **state) {
  (void)state;
  run_same_bytes(3, 4096, 12, 1500);
}
static void test_same_bytes_8k(void **state) {
  (void)state;
  run_same_bytes(3, 8192, 13, 900);
}
/* The largest block patched (64 KiB: chunks 8,000 from the end), and pages past it, whose
 * blocks are written whole by both handles. */
static void test_same_bytes_64k(void **state) {
  (void)state;
  run_same_bytes(3, 65536, 14, 260);
}
static void test_same_bytes_128k(void **state) {
  (void)state;
  run_same_bytes(3, 131072, 15, 100);
}

static void test_v2_same_bytes_1k(void **state) {
  (void)state;
  run_same_bytes(2, 1024, 21, 1500);
}
static void test_v2_same_bytes_4k(void **state) {
  (void)state;
  run_same_bytes(2, 4096, 22, 1500);
}
static void test_v2_same_bytes_64k(void **state) {
  (void)state;
  run_same_bytes(2, 65536, 23, 400);
}
static void test_v2_same_bytes_128k(void **state) {
  (void)state;
  run_same_bytes(2, 131072, 24, 200);
}

/* 0.2: alloc/free pairs and a protected commit, after the handle's first two commits, checksum
 * no metadata copy whole; a reopened handle's first commit does, its second patches. */
static void test_v2_no_whole_page_work(void **state) {
  (void)state;
  const char *path = t_path(0, "warm2.mp");
  mp_pager *p;
  uint64_t id, prot, bulk[100];
  assert_int_equal(mp_create(path, 4096, &p), MP_OK);
  assert_int_equal(mp_alloc_bulk(p, 100, bulk), MP_OK); /* two commits: both copies its own */
  assert_int_equal(mp_protected_alloc(p, &prot), MP_OK);
  p->meta_summed = 0;
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(mp_alloc(p, &id), MP_OK);
    assert_int_equal(mp_free(p, id), MP_OK);
    assert_int_equal(mp_free(p, bulk[i % 100]), MP_OK);
    assert_int_equal(mp_alloc(p, &bulk[i % 100]), MP_OK);
    if (i % 100 == 0) {
      void *data;
      assert_int_equal(mp_protected_begin(p, prot, &data), MP_OK);
      memset(data, i, 8);
      assert_int_equal(mp_protected_commit(p, prot), MP_OK);
    }
  }
  assert_int_equal(p->meta_summed, 0);
  no_findings(p);
  assert_int_equal(mp_close(p), MP_OK);
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  assert_int_equal(p->meta_summed, 4092);
  assert_int_equal(mp_free(p, id), MP_OK);
  assert_int_equal(p->meta_summed, 4092);
  no_findings(p);
  assert_int_equal(mp_close(p), MP_OK);
  unlink(path);
}

/* Alloc/free pairs, a protected commit among them, on a file of two groups: after the first
 * commit of each group, nothing is copied, counted or checksummed whole. */
static void test_no_whole_block_work(void **state) {
  (void)state;
  const char *path = t_path(0, "warm.mp");
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, 4096, MP_FORMAT_3 | MP_SPARSE, &p), MP_OK);
  static uint64_t bulk[40000];
  assert_int_equal(mp_alloc_bulk(p, 40000, bulk), MP_OK); /* two groups, the second part full */
  assert_int_equal(mp_free(p, bulk[100]), MP_OK);         /* a free page in group 0 too */
  uint64_t prot, id;
  assert_int_equal(mp_protected_alloc(p, &prot), MP_OK);
  for (int i = 0; i < 3; i++) { /* each group and root slot written once by this handle */
    assert_int_equal(mp_alloc(p, &id), MP_OK);
    assert_int_equal(mp_free(p, id), MP_OK);
    assert_int_equal(mp_free(p, bulk[39000 + i]), MP_OK);
    assert_int_equal(mp_alloc(p, &bulk[39000 + i]), MP_OK);
  }
  memset(&p->v3->work, 0, sizeof p->v3->work);
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(mp_alloc(p, &id), MP_OK);
    assert_int_equal(mp_free(p, id), MP_OK);
    assert_int_equal(mp_free(p, bulk[39000 + i % 3]), MP_OK); /* group 1 */
    assert_int_equal(mp_alloc(p, &bulk[39000 + i % 3]), MP_OK);
    if (i % 100 == 0) {
      void *data;
      assert_int_equal(mp_protected_begin(p, prot, &data), MP_OK);
      memset(data, i, 8);
      assert_int_equal(mp_protected_commit(p, prot), MP_OK);
    }
  }
  assert_int_equal(p->v3->work.copied, 0);
  assert_int_equal(p->v3->work.counted, 0);
  assert_int_equal(p->v3->work.summed, 0);
  no_findings(p);
  /* A reopened handle trusts nothing it did not write: its first commit goes the whole way. */
  assert_int_equal(mp_close(p), MP_OK);
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_alloc(p, &id), MP_OK);
  assert_int_equal(p->v3->work.copied, 4068);
  assert_int_equal(p->v3->work.summed, 2 * 4092);
  no_findings(p);
  assert_int_equal(mp_close(p), MP_OK);
  unlink(path);
}

int main(void) {
  /* Scratch files on tmpfs when there is one: these tests sync often. */
  if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 1);
  fiu_init(0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_bytes_1k),
      cmocka_unit_test(test_same_bytes_4k),
      cmocka_unit_test(test_same_bytes_8k),
      cmocka_unit_test(test_same_bytes_64k),
      cmocka_unit_test(test_same_bytes_128k),
      cmocka_unit_test(test_no_whole_block_work),
      cmocka_unit_test(test_v2_same_bytes_1k),
      cmocka_unit_test(test_v2_same_bytes_4k),
      cmocka_unit_test(test_v2_same_bytes_64k),
      cmocka_unit_test(test_v2_same_bytes_128k),
      cmocka_unit_test(test_v2_no_whole_page_work),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
