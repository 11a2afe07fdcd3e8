/* test_protected.c: protected pages through the public API: allocation across several
 * directory blocks, staged writes that start from the current content, commit, abort,
 * free, persistence, that no page leaks in a long alloc/free cycle, and a commit's two
 * msyncs with every crash image they can leave. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* Every msync the library makes while g_watched is set: the file as the call is about to
 * make part of it durable (read through the page cache, which holds what the mapping
 * wrote) and the file range it covers. This definition takes precedence over libc's for
 * the statically linked library, and forwards to the kernel. */
static const char *g_watched;
static uint8_t *g_snap[8];
static size_t g_snap_len[8];
static uint64_t g_off[8], g_len[8];
static int g_nsnap;
static unsigned g_images; /* crash images checked */

/* The file offset of addr, from the mapping of g_watched that holds it. */
static uint64_t file_offset(const void *addr) {
  FILE *f = fopen("/proc/self/maps", "r");
  assert_non_null(f);
  char line[1024];
  uint64_t off = UINT64_MAX;
  while (off == UINT64_MAX && fgets(line, sizeof line, f)) {
    unsigned long lo, hi, pgoff;
    int name = 0;
    if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %n", &lo, &hi, &pgoff, &name) != 3 || !name) continue;
    line[strcspn(line, "\n")] = 0;
    if (strcmp(line + name, g_watched) == 0 && (uintptr_t)addr >= lo && (uintptr_t)addr < hi)
      off = (uintptr_t)addr - lo + pgoff;
  }
  fclose(f);
  assert_true(off != UINT64_MAX);
  return off;
}

int msync(void *addr, size_t len, int flags) {
  if (g_watched && g_nsnap < 8) {
    g_snap[g_nsnap] = t_read_file(g_watched, &g_snap_len[g_nsnap]);
    g_off[g_nsnap] = file_offset(addr);
    g_len[g_nsnap] = len;
  }
  if (g_watched) g_nsnap++;
  return (int)syscall(SYS_msync, addr, len, flags);
}

/* Every image a cut in msync k leaves over `durable` (each subset of the sectors of the
 * call's range where the file differed) opens read-write, passes mp_check after its
 * recovery, and reads `old` or, if new_ok, `want` as the protected page's content. Then
 * `durable` takes what the call made durable. Returns how many images read `want`. */
static unsigned cut_images(uint8_t *durable, size_t len, int k, uint64_t id, const uint8_t *old, const uint8_t *want,
                           bool new_ok, const char *what) {
  assert_int_equal(g_snap_len[k], len);
  const uint8_t *next = g_snap[k];
  uint64_t end = g_off[k] + g_len[k] < len ? g_off[k] + g_len[k] : len;
  size_t sec[12], n = 0;
  for (uint64_t s = g_off[k] / 512; s < (end + 511) / 512; s++)
    if (memcmp(durable + s * 512, next + s * 512, 512) != 0) {
      if (n == 12) fail_msg("%s: more than 12 sectors to write", what);
      sec[n++] = s;
    }
  uint8_t *img = malloc(len);
  unsigned got_new = 0;
  for (unsigned mask = 0; mask < 1u << n; mask++) {
    memcpy(img, durable, len);
    for (size_t i = 0; i < n; i++)
      if (mask >> i & 1) memcpy(img + sec[i] * 512, next + sec[i] * 512, 512);
    const char *cut = t_path(1, "cut.mp");
    assert_int_equal(t_write_file(cut, img, len), 0);
    mp_pager *q;
    char why[256] = "";
    int rc = mp_open_explain(cut, 0, &q, why, sizeof why);
    if (rc != MP_OK) fail_msg("%s, sectors mask %#x: open gave %d (%s)", what, mask, rc, why);
    unsigned findings = 99;
    assert_int_equal(mp_check(q, NULL, NULL, &findings), MP_OK);
    if (findings) fail_msg("%s, sectors mask %#x: %u mp_check finding(s)", what, mask, findings);
    const uint8_t *data;
    rc = mp_protected_read(q, id, (const void **)&data);
    if (rc != MP_OK) fail_msg("%s, sectors mask %#x: read gave %d (%s)", what, mask, rc, mp_strerror(rc));
    size_t ps = mp_page_size(q);
    bool is_new = memcmp(data, want, ps) == 0;
    if (!is_new && memcmp(data, old, ps) != 0) fail_msg("%s, sectors mask %#x: neither content", what, mask);
    if (is_new && !new_ok) fail_msg("%s, sectors mask %#x: the new content before the commit point", what, mask);
    got_new += is_new;
    mp_close(q);
  }
  free(img);
  g_images += 1u << n;
  for (size_t i = 0; i < n; i++) memcpy(durable + sec[i] * 512, next + sec[i] * 512, 512);
  return got_new;
}

/* A protected commit takes two msyncs, the fewest two ordered writes need: the staged
 * copy and the next directory page in one, then page 0's selector. A cut in the first,
 * with any subset of either page on disk, reads the old content; a cut in the second
 * the old or the new one (the msyncs' own ranges are what becomes durable). Checked at
 * each page size with the copy next to its directory page, and far above and far below
 * it with a dirty regular page between them (the first msync spans it). */
enum { NEAR, ABOVE, BELOW, LAYOUTS };
static const char *const layout_name[LAYOUTS] = {"near", "above", "below"};

static void test_commit_takes_two_msyncs(void **state) {
  (void)state;
  for (size_t ps = 1024; ps <= 16384; ps *= 2)
    for (int layout = NEAR; layout < LAYOUTS; layout++) {
      char path[600];
      snprintf(path, sizeof path, "%s", t_path(3, "two.mp"));
      mp_pager *p;
      assert_int_equal(mp_create(path, ps, &p), MP_OK);
      uint64_t id, reg[40], dirty = 0, where;
      if (layout == BELOW) assert_int_equal(mp_alloc_bulk(p, 40, reg), MP_OK);
      assert_int_equal(mp_protected_alloc(p, &id), MP_OK); /* a new block: directory pages, then the copies */
      if (layout == ABOVE) assert_int_equal(mp_alloc_bulk(p, 40, reg), MP_OK);
      if (layout == BELOW) assert_int_equal(mp_free_bulk(p, 40, reg), MP_OK);
      if (layout != NEAR) {
        assert_int_equal(mp_protected_alloc(p, &id), MP_OK); /* the free pages after, or before, the block */
        if (layout == ABOVE) dirty = reg[20];
        else assert_int_equal(mp_alloc(p, &dirty), MP_OK); /* the page after the copies */
      }
      write_protected(p, id, 0x11);
      write_protected(p, id, 0x11); /* both copies alike: the staged copy differs in three sectors */
      uint32_t crc;
      assert_int_equal(mp_protected_where(p, id, &where, &crc), MP_OK);
      uint8_t *old = malloc(ps), *want = malloc(ps);
      memset(old, 0x11, ps);
      memcpy(want, old, ps);
      size_t len;
      uint8_t *durable = t_read_file(path, &len); /* all durable: every call synced */
      uint8_t kinds[64];
      assert_int_equal(mp_image_page_kinds(durable, len, kinds, 64), MP_OK);
      for (uint64_t pg = 3; pg < 64; pg++) {
        if (kinds[pg] != MP_PAGE_DIRECTORY) continue;
        if (layout == NEAR) assert_true(where > pg && where <= pg + 3);
        if (layout == ABOVE) assert_true(pg < dirty && dirty < where);
        if (layout == BELOW) assert_true(where < dirty && dirty < pg);
      }
      uint8_t *stage;
      assert_int_equal(mp_protected_begin(p, id, (void **)&stage), MP_OK);
      for (size_t at = 0; at < ps; at += ps / 2 - 1) stage[at] = want[at] = 0x22;
      if (layout != NEAR) {
        void *r;
        assert_int_equal(mp_page(p, dirty, &r), MP_OK);
        ((uint8_t *)r)[0] = 0x44;
      }
      g_nsnap = 0;
      g_watched = path;
      int rc = mp_protected_commit(p, id);
      g_watched = NULL;
      assert_int_equal(rc, MP_OK);
      if (g_nsnap != 2) fail_msg("ps %zu %s: a protected commit took %d msyncs, not 2", ps, layout_name[layout], g_nsnap);
      char what[64];
      snprintf(what, sizeof what, "ps %zu %s, cut in msync 1", ps, layout_name[layout]);
      assert_int_equal(cut_images(durable, len, 0, id, old, want, false, what), 0);
      snprintf(what, sizeof what, "ps %zu %s, cut in msync 2", ps, layout_name[layout]);
      assert_true(cut_images(durable, len, 1, id, old, want, true, what) > 0);
      mp_close(p);
      for (int k = 0; k < g_nsnap && k < 8; k++) free(g_snap[k]);
      free(durable);
      free(old);
      free(want);
    }
  print_message("15 commits, %u crash images\n", g_images);
}

/* A protected alloc in an existing block takes five msyncs: its zeroed copy and the staged
 * entry together (one msync spans them, as a commit's does), the metadata commit (two), the
 * block's selector and the mirror. A cut in the first, with any subset of its pages on disk,
 * leaves the file as it was (the entry staged in the inactive copy only, its pages not
 * allocated yet): it opens clean and still reads the first protected page. */
static void test_alloc_takes_five_msyncs(void **state) {
  (void)state;
  for (size_t ps = 1024; ps <= 16384; ps *= 4) {
    char path[600];
    snprintf(path, sizeof path, "%s", t_path(3, "palloc.mp"));
    mp_pager *p;
    assert_int_equal(mp_create(path, ps, &p), MP_OK);
    uint64_t first, second, reg[8];
    assert_int_equal(mp_protected_alloc(p, &first), MP_OK); /* a new block */
    write_protected(p, first, 0x33);
    assert_int_equal(mp_alloc_bulk(p, 8, reg), MP_OK);
    assert_int_equal(mp_free_bulk(p, 8, reg), MP_OK); /* free pages the next copy will take */
    size_t len;
    uint8_t *durable = t_read_file(path, &len);
    uint8_t *content = malloc(ps);
    memset(content, 0x33, ps);
    g_nsnap = 0;
    g_watched = path;
    int rc = mp_protected_alloc(p, &second);
    g_watched = NULL;
    assert_int_equal(rc, MP_OK);
    if (g_nsnap != 5) fail_msg("ps %zu: a protected alloc took %d msyncs, not 5", ps, g_nsnap);
    char what[64];
    snprintf(what, sizeof what, "ps %zu palloc, cut in msync 1", ps);
    cut_images(durable, len, 0, first, content, content, true, what);
    mp_close(p);
    for (int k = 0; k < g_nsnap && k < 8; k++) free(g_snap[k]);
    free(durable);
    free(content);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lifecycle),
      cmocka_unit_test(test_many_blocks_persist),
      cmocka_unit_test(test_no_leak_in_cycles),
      cmocka_unit_test(test_damaged_copy_is_detected),
      cmocka_unit_test(test_commit_takes_two_msyncs),
      cmocka_unit_test(test_alloc_takes_five_msyncs),
  };
  /* The crash images' recoveries msync: on tmpfs ~100x cheaper than on a disk; an
   * explicit TMPDIR still wins. */
  if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 0);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
