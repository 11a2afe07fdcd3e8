/* test_checker.c: the recovery checker on real pager files: a correct recovery passes,
 * and each invariant (R1-R6, R8, W1) is reported when an image breaks it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checker.h"
#include "mappedpages.h"
#include "workload.h"

static char dir[64];

static const char *path(const char *name) {
  static char buf[4][128];
  static int slot;
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/cc-check-XXXXXX");
    assert_non_null(mkdtemp(dir));
  }
  slot = (slot + 1) % 4;
  snprintf(buf[slot], sizeof buf[slot], "%s/%s", dir, name);
  return buf[slot];
}

/* Runs a text case on `file`; the run's states go to *run. */
static void run_text(const char *text, const char *file, cc_run *run, cc_case *c) {
  char why[256];
  assert_int_equal(cc_case_parse_text(text, c, why, sizeof why), CC_OK);
  assert_int_equal(cc_run_case(c, file, run), CC_OK);
  assert_int_equal(run->nstates, c->nops + 1);
}

static bool has(const cc_verdict *v, const char *inv) {
  for (unsigned i = 0; i < v->nviolations; i++)
    if (!strcmp(v->v[i].invariant, inv)) return true;
  return false;
}

static cc_case *cs;

static int setup(void **state) {
  (void)state;
  cs = malloc(sizeof *cs);
  return cs ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  free(cs);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *const workload = "crashcheck-case 1\nalloc\nwrite-sync 0 3\npalloc\npwrite 0 5\nalloc\n";

static void test_correct_recovery_passes(void **state) {
  (void)state;
  cc_run run;
  const char *f = path("ok.pages");
  run_text(workload, f, &run, cs);
  cc_verdict v;
  /* The final file is the after-state of the last operation... */
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, NULL, &v), CC_OK);
  assert_int_equal(v.nviolations, 0);
  /* ...and, the last operation having changed nothing checked here but a page, not
   * the before-state of an earlier one. */
  assert_int_equal(cc_check_image(f, 4096, &run.states[2], &run.states[3], CC_PALLOC, NULL, &v), CC_OK);
  assert_true(has(&v, "R2") || has(&v, "R5") || has(&v, "R8"));
  cc_run_free(&run);
}

/* A crash state without a file (its name was not durable): right while the create is in
 * flight, R3 once it returned, with what was lost in the expected text. */
static void test_missing_file(void **state) {
  (void)state;
  cc_run run;
  const char *f = path("missing.pages");
  run_text(workload, f, &run, cs);
  cc_verdict v;
  const char *gone = path("never-created.pages");
  assert_int_equal(cc_check_image(gone, 4096, NULL, &run.states[0], CC_OP_KINDS, NULL, &v), CC_OK);
  assert_int_equal(v.nviolations, 0);
  assert_int_equal(cc_check_image(gone, 4096, &run.states[2], &run.states[3], CC_PALLOC, NULL, &v), CC_OK);
  assert_int_equal(v.nviolations, 1);
  assert_string_equal(v.v[0].invariant, "R3");
  assert_non_null(strstr(v.v[0].found, "no file"));
  assert_non_null(strstr(v.v[0].expected, "1 regular [3]"));
  cc_check_missing(NULL, &v);
  assert_int_equal(v.nviolations, 0);
  cc_check_missing(&run.states[0], &v);
  assert_string_equal(v.v[0].invariant, "R3");
  cc_run_free(&run);
}

static void test_unopenable_is_r1(void **state) {
  (void)state;
  cc_run run;
  run_text(workload, path("r1.pages"), &run, cs);
  const char *f = path("garbage.pages");
  FILE *out = fopen(f, "w");
  for (int i = 0; i < 4 * 4096; i++) fputc(i * 7 + 1, out);
  fclose(out);
  cc_verdict v;
  assert_int_equal(cc_check_image(f, 4096, &run.states[1], &run.states[2], CC_WRITE_SYNC, NULL, &v), CC_OK);
  assert_true(has(&v, "R1"));
  assert_true(strlen(v.v[0].found) > 0);
  /* An empty file is what a cut in the create leaves: it is not a violation there. */
  out = fopen(f, "w");
  fclose(out);
  assert_int_equal(cc_check_image(f, 4096, NULL, &run.states[0], CC_OP_KINDS, NULL, &v), CC_OK);
  assert_int_equal(v.nviolations, 0);
  out = fopen(f, "w");
  fclose(out);
  assert_int_equal(cc_check_image(f, 4096, &run.states[1], &run.states[2], CC_WRITE_SYNC, NULL, &v), CC_OK);
  assert_true(has(&v, "R1"));
  cc_run_free(&run);
}

/* The format byte of a pager file's superblock (2 or 3). */
static int format_of(const char *f) {
  FILE *in = fopen(f, "rb");
  assert_non_null(in);
  uint8_t head[8] = {0};
  assert_int_equal(fread(head, 1, sizeof head, in), sizeof head);
  fclose(in);
  assert_memory_equal(head, "MPPG", 4);
  return head[5];
}

/* A cut in a 0.3 case's create leaves a leftover that the case's own create replaces: the
 * checker creates it again as a 0.3 file (its R7 follow-up works on that file), not as a
 * 0.2 one, which the case never makes. */
static void test_leftover_created_again_in_the_case_format(void **state) {
  (void)state;
  cc_run run;
  run_text("crashcheck-case 1\nformat 3\nalloc\nwrite-sync 0 3\n", path("v3.pages"), &run, cs);
  assert_int_equal(cc_create_flags(cs), MP_FORMAT_3);
  const char *f = path("leftover.pages");
  FILE *out = fopen(f, "w");
  fclose(out);
  cc_verdict v;
  assert_int_equal(cc_check_image_flags(f, 4096, cc_create_flags(cs), NULL, &run.states[0], CC_OP_KINDS, NULL, &v),
                   CC_OK);
  assert_int_equal(v.nviolations, 0);
  assert_true(v.rewritten);
  assert_int_equal(format_of(f), 3);
  /* A 0.2 case's create (no flags) makes a 0.2 file of the same leftover. */
  out = fopen(f, "w");
  fclose(out);
  assert_int_equal(cc_check_image(f, 4096, NULL, &run.states[0], CC_OP_KINDS, NULL, &v), CC_OK);
  assert_true(v.rewritten);
  assert_int_equal(format_of(f), 2);
  cc_run_free(&run);
}

/* Sets byte `at` of the file. */
static void set_byte(const char *f, long at, int value) {
  FILE *io = fopen(f, "r+b");
  assert_non_null(io);
  assert_int_equal(fseek(io, at, SEEK_SET), 0);
  fputc(value, io);
  fclose(io);
}

static void test_lost_operation_is_r3_and_mix_is_r2(void **state) {
  (void)state;
  cc_run full, prefix, more;
  run_text("crashcheck-case 1\nalloc\nalloc\nalloc\n", path("full.pages"), &full, cs);
  const char *one = path("one.pages");
  run_text("crashcheck-case 1\nalloc\n", one, &prefix, cs);
  cc_verdict v;
  /* After one alloc, while the third is in flight: the second, completed, is lost. */
  assert_int_equal(cc_check_image(one, 4096, &full.states[2], &full.states[3], CC_ALLOC, NULL, &v), CC_OK);
  assert_true(has(&v, "R3"));
  /* Two pages where the in-flight operation goes from none to one: a mix. */
  const char *two = path("two.pages");
  run_text("crashcheck-case 1\nalloc\nalloc\n", two, &more, cs);
  assert_int_equal(cc_check_image(two, 4096, &full.states[0], &full.states[1], CC_ALLOC, NULL, &v), CC_OK);
  assert_true(has(&v, "R2"));
  assert_non_null(strstr(v.v[0].expected, "before"));
  /* The same image during a protected alloc, the two pages owned by nothing: in a file
   * this library wrote, recovery must have reclaimed them (R8, naming the pages)... */
  cc_run_free(&more);
  run_text("crashcheck-case 1\nalloc\nalloc\n", two, &more, cs);
  assert_int_equal(cc_check_image(two, 4096, &full.states[0], &full.states[0], CC_PALLOC, NULL, &v), CC_OK);
  assert_true(has(&v, "R8"));
  assert_int_equal(v.leaks, 0);
  assert_non_null(strstr(v.v[0].found, "2 pages leaked"));
  assert_non_null(strstr(v.v[0].found, ": 3 4"));
  /* ...and during a protected free too. */
  assert_int_equal(cc_check_image(two, 4096, &full.states[0], &full.states[0], CC_PFREE, NULL, &v), CC_OK);
  assert_true(has(&v, "R8"));
  /* In a file another writer made (build byte 0: adopted by the next writer's open), up
   * to four unowned pages left by a protected alloc or free are W1 leaks, a warning. */
  set_byte(two, 7, 0);
  assert_int_equal(cc_check_image(two, 4096, &full.states[0], &full.states[0], CC_PALLOC, NULL, &v), CC_OK);
  assert_int_equal(v.nviolations, 0);
  assert_int_equal(v.leaks, 2);
  assert_int_equal(cc_check_image(two, 4096, &full.states[0], &full.states[0], CC_ALLOC, NULL, &v), CC_OK);
  assert_true(has(&v, "R2"));
  cc_run_free(&full);
  cc_run_free(&prefix);
  cc_run_free(&more);
}

/* Flips one byte of page `page` of the file. */
/* Flips a bit of the byte at `off` (flipping it again undoes it). */
static void damage_at(const char *f, uint64_t off) {
  FILE *io = fopen(f, "r+b");
  assert_non_null(io);
  assert_int_equal(fseek(io, (long)off, SEEK_SET), 0);
  int c = fgetc(io);
  assert_int_equal(fseek(io, (long)off, SEEK_SET), 0);
  fputc(c ^ 0x40, io);
  fclose(io);
}

static void damage(const char *f, uint64_t page, size_t at) { damage_at(f, page * 4096 + at); }

static void test_damaged_contents_are_r5_and_r6(void **state) {
  (void)state;
  cc_run run;
  const char *f = path("contents.pages");
  run_text(workload, f, &run, cs);
  /* Regular page 3 was written and synced by operation 2 and untouched since. */
  assert_int_equal(run.states[5].reg[0], 3);
  damage(f, 3, 100);
  cc_verdict v;
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, NULL, &v), CC_OK);
  assert_true(has(&v, "R6"));
  /* The protected page's current copy. */
  cc_run_free(&run);
  run_text(workload, f, &run, cs);
  mp_pager *p;
  assert_int_equal(mp_open(f, MP_RDONLY, &p), MP_OK);
  const uint8_t *data, *base;
  assert_int_equal(mp_protected_read(p, 0, (const void **)&data), MP_OK);
  void *any;
  assert_int_equal(mp_page(p, 3, &any), MP_OK);
  base = (const uint8_t *)any - 3 * 4096;
  uint64_t page = (uint64_t)(data - base) / 4096;
  mp_close(p);
  damage(f, page, 5);
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, NULL, &v), CC_OK);
  assert_true(has(&v, "R5"));
  assert_false(has(&v, "R4")); /* the structure is sound: damaged content is R5's */
  cc_run_free(&run);
}

/* A cache kept across checks of one file (reloaded handles, page hashes and
 * checksums) decides as a fresh check does, once told which bytes changed: a
 * damaged synced page or protected page is found though both were cached clean. */
static void test_cached_checks_see_changes(void **state) {
  (void)state;
  cc_run run;
  const char *f = path("cached.pages");
  run_text(workload, f, &run, cs);
  cc_check_cache cache = {0};
  cc_verdict v;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
    assert_int_equal(v.nviolations, 0);
  }
  damage(f, 3, 100);
  cc_check_cache_forget(&cache, 3 * 4096 + 100, 1);
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
  assert_true(has(&v, "R6"));
  damage(f, 3, 100); /* undone */
  cc_check_cache_forget(&cache, 3 * 4096 + 100, 1);
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
  assert_int_equal(v.nviolations, 0);
  uint64_t page;
  uint32_t crc;
  assert_non_null(cache.reader);
  assert_int_equal(mp_protected_where(cache.reader, 0, &page, &crc), MP_OK);
  damage(f, page, 5);
  cc_check_cache_forget(&cache, page * 4096 + 5, 1);
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
  assert_true(has(&v, "R5"));
  cc_check_cache_free(&cache);
  cc_run_free(&run);
}

/* The kept reader is not reloaded while none of the pages its state was derived from
 * (mp_reload_basis) was written since, by the writer's own account (forget), in a file of
 * the size that writer says: the check takes its word, so a change it does not report is
 * not seen; a reported one, or another size, is. A write elsewhere (the first regular page,
 * synced by operation 2) keeps the reader. Pages 1 and 2 are both metadata copies of a 0.2
 * file, both roots of a 0.3 one: damaged together, the file does not open. */
static void kept_until_basis_changes(const char *text, const char *f) {
  cc_run run;
  run_text(text, f, &run, cs);
  FILE *io = fopen(f, "rb");
  assert_non_null(io);
  assert_int_equal(fseek(io, 0, SEEK_END), 0);
  uint64_t size = (uint64_t)ftell(io);
  fclose(io);
  cc_check_cache cache = {.image_size = size};
  cc_verdict v;
  for (int i = 0; i < 2; i++) { /* an open, then a reload that keeps copies of what it read */
    assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
    assert_int_equal(v.nviolations, 0);
  }
  assert_true(cache.basis_held);
  assert_true(cache.nbasis >= 3);
  assert_int_equal(cache.basis[1], 1);
  uint64_t data = run.states[5].reg[0];
  for (size_t i = 0; i < cache.nbasis; i++) assert_true(cache.basis[i] != data);
  cc_check_cache_forget(&cache, data * 4096 + 100, 1);
  assert_true(cache.basis_held);
  damage(f, 1, 1000); /* pages 1 and 2, unreported */
  damage(f, 2, 1000);
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
  assert_int_equal(v.nviolations, 0);
  cache.image_size = size + 4096; /* another size: reloaded */
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
  assert_true(v.nviolations > 0);
  assert_false(cache.basis_held); /* nothing kept of a file that does not open */
  cache.image_size = size;
  damage(f, 1, 1000); /* undone, and reported */
  damage(f, 2, 1000);
  cc_check_cache_forget(&cache, 4096 + 1000, 1);
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
  assert_int_equal(v.nviolations, 0);
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
  assert_true(cache.basis_held);
  damage(f, 1, 1000); /* reported, the reader loads again and finds it */
  damage(f, 2, 1000);
  cc_check_cache_forget(&cache, 2 * 4096 + 1000, 1);
  assert_false(cache.basis_held);
  assert_int_equal(cc_check_image(f, 4096, &run.states[4], &run.states[5], CC_ALLOC, &cache, &v), CC_OK);
  assert_true(v.nviolations > 0);
  cc_check_cache_free(&cache);
  cc_run_free(&run);
}

static void test_reader_kept_until_its_basis_changes(void **state) {
  (void)state;
  kept_until_basis_changes(workload, path("basis.pages"));
}

/* The same in a 0.3 file (pager/FORMAT.md section 3), whose reader's basis is its superblock,
 * roots, leaf slots and directory pages: its data pages start at page 5. */
static void test_reader_kept_until_its_basis_changes_v3(void **state) {
  (void)state;
  kept_until_basis_changes("crashcheck-case 1\nformat 3\nalloc\nwrite-sync 0 3\npalloc\npwrite 0 5\nalloc\n",
                           path("basis3.pages"));
}

/* The kept preview stands for a reload only while nothing it holds a private copy of
 * changed: at 1 KiB pages, recovery rewriting page 0 (the metadata selector, after the
 * selected copy was damaged) copies the whole system page, pages 0-3, and page 3 holds
 * synced data. Damaging page 3 alone leaves the reader's state as it was, yet the
 * check must read page 3's new bytes, not the preview's old copy. */
static void test_kept_preview_sees_changed_neighbours(void **state) {
  (void)state;
  cc_run run;
  const char *f = path("neighbours.pages");
  run_text("crashcheck-case 1\npage-size 1024\nalloc\nwrite-sync 0 3\nalloc\n", f, &run, cs);
  cc_check_cache cache = {0};
  cc_verdict v;
  /* the last alloc's metadata copy, damaged: recovery falls back to the one before it
   * and rewrites page 0's selector */
  uint64_t meta = 1;
  damage_at(f, meta * 1024 + 1000);
  assert_int_equal(cc_check_image(f, 1024, &run.states[2], &run.states[3], CC_ALLOC, &cache, &v), CC_OK);
  if (!(v.recovery & MP_RECOVER_METADATA)) {
    damage_at(f, meta * 1024 + 1000);
    cc_check_cache_forget(&cache, meta * 1024 + 1000, 1);
    meta = 2;
    damage_at(f, meta * 1024 + 1000);
    cc_check_cache_forget(&cache, meta * 1024 + 1000, 1);
    assert_int_equal(cc_check_image(f, 1024, &run.states[2], &run.states[3], CC_ALLOC, &cache, &v), CC_OK);
  }
  assert_true(v.recovery & MP_RECOVER_METADATA);
  assert_false(has(&v, "R6")); /* (R4 says the selected copy is damaged: no torn write does that) */
  uint64_t w;
  assert_non_null(cache.preview);
  assert_int_equal(mp_next_written(cache.preview, 0, &w), MP_OK);
  assert_int_equal(w, 0);
  assert_int_equal(mp_next_written(cache.preview, 3, &w), MP_OK);
  assert_int_equal(w, 3); /* page 3 shares page 0's system page */
  damage_at(f, 3 * 1024 + 100);
  cc_check_cache_forget(&cache, 3 * 1024 + 100, 1);
  assert_int_equal(cc_check_image(f, 1024, &run.states[2], &run.states[3], CC_ALLOC, &cache, &v), CC_OK);
  assert_true(has(&v, "R6"));
  cc_check_cache_free(&cache);
  cc_run_free(&run);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_correct_recovery_passes),
      cmocka_unit_test(test_unopenable_is_r1),
      cmocka_unit_test(test_leftover_created_again_in_the_case_format),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_lost_operation_is_r3_and_mix_is_r2),
      cmocka_unit_test(test_damaged_contents_are_r5_and_r6),
      cmocka_unit_test(test_cached_checks_see_changes),
      cmocka_unit_test(test_reader_kept_until_its_basis_changes),
      cmocka_unit_test(test_reader_kept_until_its_basis_changes_v3),
      cmocka_unit_test(test_kept_preview_sees_changed_neighbours),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
