/* test_fmt3_ops.c: alloc, free and their bulk forms on a 0.3 file (FORMAT.md 3.6, 3.7): each
 * is one commit of two msyncs that changes only the non-current leaf slots and the other root
 * slot, growth follows 3.7's steps across groups, and a failed msync leaves the last state. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <fiu-control.h>
#include <fiu.h>

#include "format3.h"
#include "mappedpages.h"
#include "support.h"

/* ---- counting and failing msyncs ------------------------------------------------ */

static int msyncs, fail_from, fail_to; /* msync number n fails when fail_from <= n <= fail_to */
/* What the file holds when msync number snap_at is called (its pages as the kernel has them:
 * what that msync would make durable had it written before it failed). */
static const char *snap_path;
static int snap_at;
static uint8_t *snap;
static size_t snap_len;

static int msync_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  msyncs++;
  if (snap_path && msyncs == snap_at) snap = t_read_file(snap_path, &snap_len);
  return msyncs >= fail_from && msyncs <= fail_to;
}

static void count_msyncs(int from, int to) {
  msyncs = 0;
  fail_from = from;
  fail_to = to;
  assert_int_equal(fiu_enable_external("pager/msync", 1, (void *)(intptr_t)EIO, 0, msync_cb), 0);
}

static void stop_counting(void) { fiu_disable("pager/msync"); }

/* ---- the model ----------------------------------------------------------------------- */

typedef struct model {
  uint8_t *on; /* a byte per page: allocated regular page */
  uint64_t cap, count;
} model;

static void model_set(model *m, uint64_t id, bool on) {
  if (id >= m->cap) {
    uint64_t cap = m->cap ? m->cap : 1024;
    while (cap <= id) cap *= 2;
    m->on = realloc(m->on, cap);
    memset(m->on + m->cap, 0, cap - m->cap);
    m->cap = cap;
  }
  if (m->on[id] == on) fail_msg("page %llu is %s already", (unsigned long long)id, on ? "allocated" : "free");
  m->on[id] = on;
  m->count += on ? 1 : (uint64_t)-1;
}

static void assert_clean(mp_pager *p) {
  unsigned findings = 99;
  assert_int_equal(mp_check(p, NULL, NULL, &findings), MP_OK);
  assert_int_equal(findings, 0);
}

/* The handle shows exactly the model's pages, and counts the rest as free. */
static void assert_model(mp_pager *p, const model *m, uint64_t meta_pages) {
  uint64_t n = 0;
  for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK; id++) {
    if (id >= m->cap || !m->on[id]) fail_msg("page %llu is allocated, the model's is not", (unsigned long long)id);
    n++;
  }
  assert_int_equal(n, m->count);
  assert_int_equal(mp_free_count(p), mp_page_count(p) - meta_pages - m->count);
  uint64_t words[4];
  for (uint64_t w = 0; w * 64 < mp_page_count(p); w += 4) {
    assert_int_equal(mp_regular_bits(p, w, words, 4), MP_OK);
    for (uint64_t b = 0; b < 256; b++) {
      uint64_t id = w * 64 + b;
      bool want = id < m->cap && m->on[id];
      if ((bool)(words[b / 64] >> (b % 64) & 1) != want) fail_msg("mp_regular_bits: page %llu", (unsigned long long)id);
    }
  }
}

/* Metadata pages of a created 0.3 file of `total` pages: five blocks, and two per further group. */
static uint64_t meta_pages(size_t ps, uint64_t total) {
  uint64_t c = mp3__group_pages(ps), m = mp3__m(ps);
  return 5 * m + 2 * m * ((total + c - 1) / c - 1);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_alloc_free(void **state) {
  (void)state;
  static const size_t sizes[] = {1024, 4096, 16384};
  for (size_t i = 0; i < 3; i++) {
    size_t ps = sizes[i];
    uint64_t m = mp3__m(ps);
    const char *path = t_path(0, "ops3.mp");
    mp_pager *p;
    assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_OK);
    /* the first free page is block 5's first; then growth by doubling */
    uint64_t a, b;
    count_msyncs(0, -1);
    assert_int_equal(mp_alloc(p, &a), MP_OK);
    assert_int_equal(msyncs, 2);
    assert_int_equal(a, 5 * m);
    assert_int_equal(mp_alloc_bulk(p, (size_t)m, (uint64_t[64]){0}), MP_OK); /* the rest of block 5, then more */
    assert_int_equal(msyncs, 4);
    assert_int_equal(mp_page_count(p), 12 * m);
    assert_int_equal(mp_alloc(p, &b), MP_OK);
    assert_int_equal(b, 6 * m + 1);
    assert_clean(p);
    void *data;
    assert_int_equal(mp_page(p, b, &data), MP_OK);
    memset(data, 0xAB, ps);
    assert_int_equal(mp_sync_page(p, b), MP_OK);
    msyncs = 0;
    assert_int_equal(mp_free(p, a), MP_OK);
    assert_int_equal(msyncs, 2);
    assert_int_equal(mp_free(p, a), MP_ENOTALLOC);
    assert_int_equal(mp_free(p, 0), MP_EINVAL);         /* the superblock's */
    assert_int_equal(mp_free(p, 2 * m), MP_EINVAL);     /* a root's */
    assert_int_equal(mp_free(p, 12 * m), MP_EINVAL);    /* past the file */
    assert_int_equal(mp_free_bulk(p, 2, (uint64_t[]){b, b}), MP_EINVAL);
    msyncs = 0;
    assert_int_equal(mp_free_bulk(p, 0, NULL), MP_OK);
    assert_int_equal(msyncs, 0);
    stop_counting();
    uint64_t again;
    assert_int_equal(mp_alloc(p, &again), MP_OK); /* the page just freed comes back from its group */
    assert_int_equal(again, a);
    assert_clean(p);
    uint64_t free_before = mp_free_count(p), total = mp_page_count(p);
    assert_int_equal(mp_close(p), MP_OK);
    assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
    assert_int_equal(mp_free_count(p), free_before);
    assert_int_equal(mp_page_count(p), total);
    assert_int_equal(mp_page(p, b, &data), MP_OK);
    assert_int_equal(((uint8_t *)data)[ps - 1], 0xAB);
    assert_int_equal(mp_alloc(p, &a), MP_ERDONLY);
    assert_clean(p);
    mp_close(p);
  }
}

/* Random single and bulk operations against a model, at 1 KiB pages (four pages a metadata
 * block) across three groups, reopened now and then; each state checked in full. */
static void test_model_ops(void **state) {
  (void)state;
  const size_t ps = 1024;
  const char *path = t_path(0, "model3.mp");
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_OK);
  model md = {0};
  uint64_t x = 0x2545F4914F6CDD1DULL, *ids = malloc(70000 * 8);
  /* one bulk call across groups 0, 1 and 2: growth to whole groups, leaves staged for each */
  assert_int_equal(mp_alloc_bulk(p, 66000, ids), MP_OK);
  for (size_t i = 0; i < 66000; i++) model_set(&md, ids[i], true);
  assert_int_equal(mp_page_count(p), 3 * mp3__group_pages(ps));
  assert_model(p, &md, meta_pages(ps, mp_page_count(p)));
  assert_clean(p);
  for (int op = 0; op < 400; op++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int kind = (int)(x % 5);
    if (kind == 0) {
      uint64_t id;
      assert_int_equal(mp_alloc(p, &id), MP_OK);
      model_set(&md, id, true);
    } else if (kind == 1) {
      size_t n = 1 + (size_t)(x >> 8) % 3000;
      assert_int_equal(mp_alloc_bulk(p, n, ids), MP_OK);
      for (size_t i = 0; i < n; i++) model_set(&md, ids[i], true);
    } else if (md.count) {
      /* free pages spread over every group (bulk), or one */
      /* (an odd stride visits each id of the power-of-two range once: no duplicates) */
      size_t n = kind == 4 ? 1 + (size_t)(x >> 8) % 2000 : 1, got = 0;
      for (uint64_t id = (x >> 20) % md.cap, k = 0; got < n && k < md.cap; k++, id = (id + 7919) % md.cap)
        if (md.on[id]) ids[got++] = id;
      assert_int_equal(got == 1 ? mp_free(p, ids[0]) : mp_free_bulk(p, got, ids), MP_OK);
      for (size_t i = 0; i < got; i++) model_set(&md, ids[i], false);
    }
    if (op % 20 == 0) {
      assert_model(p, &md, meta_pages(ps, mp_page_count(p)));
      assert_clean(p);
    }
    if (op % 100 == 99) {
      assert_int_equal(mp_close(p), MP_OK);
      assert_int_equal(mp_open(path, 0, &p), MP_OK);
      assert_int_equal(mp_recovery(p), 0);
      assert_model(p, &md, meta_pages(ps, mp_page_count(p)));
    }
  }
  assert_clean(p);
  mp_close(p);
  free(ids);
  free(md.on);
}

/* FORMAT.md 3.7: doubling while one group holds the file, then whole groups. */
static void test_growth_steps(void **state) {
  (void)state;
  const size_t ps = 4096;
  const uint64_t c = mp3__group_pages(ps);
  const char *path = t_path(0, "grow3.mp");
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3 | MP_SPARSE, &p), MP_OK);
  uint64_t expect = 6, *ids = malloc(3 * c * 8);
  while (expect < 4 * c) {
    /* every free page, then one more: one growth step */
    size_t n = (size_t)mp_free_count(p) + 1;
    assert_int_equal(mp_alloc_bulk(p, n, ids), MP_OK);
    uint64_t next = expect + (expect < c ? expect : c);
    if (next > c) next = (next + c - 1) / c * c;
    expect = next;
    assert_int_equal(mp_page_count(p), expect);
    assert_clean(p);
  }
  /* sparse: the growth wrote no zeros; the leaves are the blocks the file system holds */
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal((uint64_t)st.st_size, expect * ps);
  assert_true((uint64_t)st.st_blocks * 512 < expect * ps / 16);
  mp_close(p);
  /* the superblock keeps MP_SPARSE: a handle opened without it grows the same way */
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  assert_int_equal(mp_alloc_bulk(p, (size_t)mp_free_count(p) + 1, ids), MP_OK);
  assert_int_equal(mp_page_count(p), expect + c);
  assert_int_equal(stat(path, &st), 0);
  assert_true((uint64_t)st.st_blocks * 512 < (expect + c) * ps / 16);
  assert_clean(p);
  mp_close(p);
  free(ids);
}

/* The state a handle shows, to compare before and after a failed call. */
typedef struct seen {
  uint64_t pages, free, first;
} seen;
static seen look(mp_pager *p) {
  seen s = {mp_page_count(p), mp_free_count(p), UINT64_MAX};
  mp_next_regular(p, 0, &s.first);
  return s;
}

static void test_failed_msyncs(void **state) {
  (void)state;
  const char *path = t_path(0, "fail3.mp");
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, 4096, MP_FORMAT_3, &p), MP_OK);
  uint64_t ids[16];
  assert_int_equal(mp_alloc_bulk(p, 3, ids), MP_OK);
  /* msync 1 is the stage, 2 the root; a failure of either is the last state, retryable */
  for (int which = 1; which <= 2; which++) {
    for (int op = 0; op < 2; op++) {
      seen before = look(p);
      count_msyncs(which, which);
      int rc = op ? mp_free(p, ids[0]) : mp_alloc_bulk(p, 2, ids + 3);
      stop_counting();
      assert_int_equal(rc, MP_EIO);
      seen after = look(p);
      assert_memory_equal(&before, &after, sizeof before);
      assert_clean(p); /* no staged slot left valid: a writer's check would name it */
      mp_close(p);
      assert_int_equal(mp_open(path, 0, &p), MP_OK);
      assert_int_equal(mp_recovery(p), 0);
      after = look(p);
      assert_memory_equal(&before, &after, sizeof before);
      /* and the call again */
      assert_int_equal(op ? mp_free(p, ids[0]) : mp_alloc_bulk(p, 2, ids + 3), MP_OK);
      if (op) assert_int_equal(mp_alloc(p, &ids[0]), MP_OK);
      else assert_int_equal(mp_free_bulk(p, 2, ids + 3), MP_OK);
      assert_clean(p);
    }
  }
  /* The stage fails, and so does the sync of its invalidation: the next call does it first. */
  seen before = look(p);
  count_msyncs(1, 2);
  assert_int_equal(mp_alloc(p, &ids[5]), MP_EIO);
  stop_counting();
  count_msyncs(0, -1);
  assert_int_equal(mp_alloc(p, &ids[5]), MP_OK);
  assert_int_equal(msyncs, 3);
  stop_counting();
  assert_int_equal(mp_free(p, ids[5]), MP_OK);
  seen after = look(p);
  assert_memory_equal(&before, &after, sizeof before);
  assert_clean(p);
  /* The root fails and so does rewriting its slot: the disk may hold either root, and the
   * handle says so until a reopen tells which. */
  count_msyncs(2, 3);
  assert_int_equal(mp_alloc(p, &ids[5]), MP_EIO);
  stop_counting();
  assert_int_equal(mp_alloc(p, &ids[5]), MP_EPOISONED);
  assert_int_equal(mp_free(p, ids[1]), MP_EPOISONED);
  mp_close(p);
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  after = look(p);
  assert_true(after.free == before.free || after.free == before.free - 1);
  assert_clean(p);
  /* ... and when the root did land (its msync wrote, then said it failed) while its slot's
   * rewrite did not, the file holds the new state: its staged leaves must still be valid. */
  before = look(p);
  snap_path = path;
  snap_at = 2;
  count_msyncs(2, 3);
  assert_int_equal(mp_alloc(p, &ids[6]), MP_EIO);
  stop_counting();
  snap_path = NULL;
  assert_non_null(snap);
  mp_close(p);
  size_t len;
  uint8_t *img = t_read_file(path, &len);
  memcpy(img + 4096, snap + 4096, 2 * 4096); /* both root slots as the failing msync found them */
  assert_int_equal(t_write_file(path, img, len), 0);
  free(img);
  free(snap);
  snap = NULL;
  char why[256] = "";
  if (mp_open_explain(path, 0, &p, why, sizeof why) != MP_OK) fail_msg("root landed, leaves lost: %s", why);
  after = look(p);
  assert_int_equal(after.free, before.free - 1);
  assert_clean(p);
  mp_close(p);
}

/* Protected pages (3.6): alloc, commit and free are one commit of two msyncs each, a new
 * directory block included; copies and directory pages are whole blocks the regular pages never
 * see; a reopen reads every committed content back. */
static void test_protected(void **state) {
  (void)state;
  static const size_t sizes[] = {1024, 4096};
  for (size_t i = 0; i < 2; i++) {
    const size_t ps = sizes[i];
    const uint64_t m = mp3__m(ps);
    const uint32_t cap = (uint32_t)((ps - 12) / 30);
    const char *path = t_path(0, "prot3.mp");
    mp_pager *p;
    assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_OK);
    uint64_t reg;
    assert_int_equal(mp_alloc(p, &reg), MP_OK);
    const uint32_t n = cap + 5; /* a second directory block */
    uint64_t *pid = malloc(n * sizeof *pid);
    for (uint32_t k = 0; k < n; k++) {
      count_msyncs(0, -1);
      assert_int_equal(mp_protected_alloc(p, &pid[k]), MP_OK);
      assert_int_equal(msyncs, 2);
      stop_counting();
      assert_int_equal(pid[k], k);
      const void *data;
      assert_int_equal(mp_protected_read(p, pid[k], &data), MP_OK);
      for (size_t b = 0; b < ps; b++) assert_int_equal(((const uint8_t *)data)[b], 0);
      uint64_t page;
      uint32_t crc;
      assert_int_equal(mp_protected_where(p, pid[k], &page, &crc), MP_OK);
      assert_int_equal(page % m, 0); /* a whole block */
      void *d;
      assert_int_equal(mp_page(p, page, &d), MP_EINVAL); /* not a regular page */
      void *stage;
      assert_int_equal(mp_protected_begin(p, pid[k], &stage), MP_OK);
      memset(stage, (int)(k % 251 + 1), ps);
      count_msyncs(0, -1);
      assert_int_equal(mp_protected_commit(p, pid[k]), MP_OK);
      assert_int_equal(msyncs, 2);
      stop_counting();
      if (k % 40 == 0) assert_clean(p);
    }
    assert_clean(p);
    /* the regular pages are the one allocated, whatever the protected pages took */
    uint64_t id;
    assert_int_equal(mp_next_regular(p, 0, &id), MP_OK);
    assert_int_equal(id, reg);
    assert_int_equal(mp_next_regular(p, reg + 1, &id), MP_ENOENT);
    /* free every third; a staged write is discarded by the free */
    void *stage;
    assert_int_equal(mp_protected_begin(p, pid[3], &stage), MP_OK);
    assert_int_equal(mp_protected_begin(p, pid[3], &stage), MP_EBUSY);
    for (uint32_t k = 0; k < n; k += 3) {
      count_msyncs(0, -1);
      assert_int_equal(mp_protected_free(p, pid[k]), MP_OK);
      assert_int_equal(msyncs, 2);
      stop_counting();
    }
    assert_int_equal(mp_protected_free(p, pid[0]), MP_ENOTALLOC);
    assert_int_equal(mp_protected_commit(p, pid[1]), MP_ENOTSTAGED);
    /* an aborted write leaves the content */
    assert_int_equal(mp_protected_begin(p, pid[1], &stage), MP_OK);
    memset(stage, 0xEE, ps);
    assert_int_equal(mp_protected_abort(p, pid[1]), MP_OK);
    assert_clean(p);
    /* the freed entries are reused, the first first */
    uint64_t again;
    assert_int_equal(mp_protected_alloc(p, &again), MP_OK);
    assert_int_equal(again, 0);
    uint64_t pages = mp_page_count(p), free_count = mp_free_count(p);
    assert_int_equal(mp_close(p), MP_OK);
    for (int ro = 1; ro >= 0; ro--) {
      assert_int_equal(mp_open(path, ro ? MP_RDONLY : 0, &p), MP_OK);
      assert_int_equal(mp_recovery(p), 0);
      assert_int_equal(mp_page_count(p), pages);
      assert_int_equal(mp_free_count(p), free_count);
      uint32_t listed = 0;
      for (uint64_t from = 0; mp_next_protected(p, from, &id) == MP_OK; from = id + 1) {
        listed++;
        const void *data;
        assert_int_equal(mp_protected_read(p, id, &data), MP_OK);
        uint8_t want = id == 0 ? 0 : (uint8_t)(id % 251 + 1);
        assert_int_equal(((const uint8_t *)data)[ps - 1], want);
      }
      assert_int_equal(listed, n - (n + 2) / 3 + 1);
      assert_clean(p);
      mp_close(p);
    }
    free(pid);
  }
}

/* A failed stage or root msync of a protected commit leaves the write staged and the content
 * the last committed one; the call again commits it. */
static void test_protected_failures(void **state) {
  (void)state;
  const char *path = t_path(0, "pfail3.mp");
  mp_pager *p;
  const size_t ps = 4096;
  assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_OK);
  uint64_t id;
  assert_int_equal(mp_protected_alloc(p, &id), MP_OK);
  for (int which = 1; which <= 2; which++) {
    void *stage;
    assert_int_equal(mp_protected_begin(p, id, &stage), MP_OK);
    memset(stage, 0x40 + which, ps);
    count_msyncs(which, which);
    assert_int_equal(mp_protected_commit(p, id), MP_EIO);
    stop_counting();
    const void *data;
    assert_int_equal(mp_protected_read(p, id, &data), MP_OK);
    assert_int_equal(((const uint8_t *)data)[0], which == 1 ? 0 : 0x41);
    assert_clean(p);
    assert_int_equal(mp_protected_commit(p, id), MP_OK);
    assert_int_equal(mp_protected_read(p, id, &data), MP_OK);
    assert_int_equal(((const uint8_t *)data)[0], 0x40 + which);
    /* alloc and free fail the same way */
    uint64_t other;
    uint64_t before = mp_free_count(p);
    count_msyncs(which, which);
    assert_int_equal(mp_protected_alloc(p, &other), MP_EIO);
    stop_counting();
    count_msyncs(which, which);
    assert_int_equal(mp_protected_free(p, id), MP_EIO);
    stop_counting();
    assert_int_equal(mp_free_count(p), before);
    assert_int_equal(mp_next_protected(p, id + 1, &other), MP_ENOENT);
    assert_clean(p);
    mp_close(p);
    assert_int_equal(mp_open(path, 0, &p), MP_OK);
    assert_int_equal(mp_protected_read(p, id, &data), MP_OK);
    assert_int_equal(((const uint8_t *)data)[0], 0x40 + which);
    assert_clean(p);
  }
  mp_close(p);
}

/* mp_image_page_kinds reads a 0.3 image: what each page of a file with every kind of page is. */
static void test_page_kinds(void **state) {
  (void)state;
  static const size_t sizes[] = {1024, 4096};
  for (size_t i = 0; i < 2; i++) {
    const size_t ps = sizes[i];
    const uint64_t m = mp3__m(ps);
    const char *path = t_path(0, "kinds3.mp");
    mp_pager *p;
    assert_int_equal(mp_create_flags(path, ps, MP_FORMAT_3, &p), MP_OK);
    uint64_t reg[3], prot, page;
    uint32_t crc;
    assert_int_equal(mp_alloc_bulk(p, 3, reg), MP_OK);
    assert_int_equal(mp_protected_alloc(p, &prot), MP_OK);
    assert_int_equal(mp_protected_where(p, prot, &page, &crc), MP_OK);
    assert_int_equal(mp_free(p, reg[1]), MP_OK);
    uint64_t total = mp_page_count(p);
    uint8_t *want = calloc(1, total);
    for (uint64_t id = 0; id < total; id++) want[id] = MP_PAGE_FREE;
    for (uint64_t id = 0; id < m; id++) want[id] = MP_PAGE_SUPERBLOCK;
    for (uint64_t id = m; id < 5 * m; id++) want[id] = MP_PAGE_METADATA;
    want[reg[0]] = want[reg[2]] = MP_PAGE_REGULAR;
    /* the rest: the protected page's two blocks and the directory's two, allocated, not regular */
    for (uint64_t id = 5 * m; id < total; id++)
      if (want[id] == MP_PAGE_FREE && mp_page(p, id, &(void *){0}) == MP_EINVAL) want[id] = 0xFF;
    mp_close(p);
    size_t len;
    uint8_t *img = t_read_file(path, &len), *kinds = malloc(total + 2);
    assert_int_equal(mp_image_page_kinds(img, len, kinds, total + 2), MP_OK);
    unsigned dirs = 0, prots = 0;
    for (uint64_t id = 0; id < total; id++) {
      if (want[id] == 0xFF) {
        dirs += kinds[id] == MP_PAGE_DIRECTORY;
        prots += kinds[id] == MP_PAGE_PROTECTED;
        continue;
      }
      if (kinds[id] != want[id]) fail_msg("%zu: page %llu is kind %u, not %u", ps, (unsigned long long)id, kinds[id], want[id]);
    }
    assert_int_equal(dirs, 2 * m);
    assert_int_equal(prots, 2 * m);
    assert_int_equal(kinds[page], MP_PAGE_PROTECTED);
    assert_int_equal(kinds[total], MP_PAGE_UNKNOWN);
    assert_int_equal(kinds[total + 1], MP_PAGE_UNKNOWN);
    free(img), free(kinds), free(want);
  }
}

/* A reader's regular pages, a word at a time (mp_regular_bits), are the pages the image says
 * are regular (mp_image_page_kinds, which reads the leaves and the directory on its own): in a
 * file of two groups whose boundary (page 32,544 at 1 KiB) falls inside a word, with group 1's
 * leaf slots there, protected pages' and directory blocks' pages, and holes freed around it. */
static void test_regular_words_across_groups(void **state) {
  (void)state;
  const char *path = t_path(0, "words3.mp");
  mp_pager *p;
  assert_int_equal(mp_create_flags(path, 1024, MP_FORMAT_3 | MP_SPARSE, &p), MP_OK);
  uint64_t *ids = malloc(40000 * sizeof *ids), prot[3];
  assert_non_null(ids);
  assert_int_equal(mp_alloc_bulk(p, 40000, ids), MP_OK);
  for (int i = 0; i < 3; i++) assert_int_equal(mp_protected_alloc(p, &prot[i]), MP_OK);
  for (size_t i = 0; i < 40000; i++)
    if ((ids[i] > 32400 && ids[i] < 32700 && ids[i] % 7 == 0) || ids[i] % 997 == 0)
      assert_int_equal(mp_free(p, ids[i]), MP_OK);
  assert_int_equal(mp_close(p), MP_OK);
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  uint64_t total = mp_page_count(p);
  assert_true(total > 32544 + 64);
  size_t nwords = (size_t)((total + 63) / 64);
  uint64_t *words = malloc(nwords * 8);
  assert_int_equal(mp_regular_bits(p, 0, words, nwords), MP_OK);
  size_t len;
  uint8_t *img = t_read_file(path, &len), *kinds = malloc(total);
  assert_int_equal(mp_image_page_kinds(img, len, kinds, total), MP_OK);
  uint64_t regular = 0;
  for (uint64_t id = 0; id < total; id++) {
    bool bit = words[id / 64] >> (id % 64) & 1;
    regular += bit;
    if (bit != (kinds[id] == MP_PAGE_REGULAR))
      fail_msg("page %llu: %s in the reader's words, kind %u in the image", (unsigned long long)id,
               bit ? "regular" : "not regular", kinds[id]);
  }
  assert_true(regular > 39000);
  mp_close(p);
  free(img), free(kinds), free(words), free(ids);
}

int main(void) {
  /* Scratch files on tmpfs when there is one: these tests sync often, a flush of a real disk
   * costs each msync milliseconds, and nothing they check depends on the file system. */
  if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 1);
  fiu_init(0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_free),
      cmocka_unit_test(test_model_ops),
      cmocka_unit_test(test_growth_steps),
      cmocka_unit_test(test_failed_msyncs),
      cmocka_unit_test(test_protected),
      cmocka_unit_test(test_protected_failures),
      cmocka_unit_test(test_page_kinds),
      cmocka_unit_test(test_regular_words_across_groups),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
