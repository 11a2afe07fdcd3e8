/* test_image.c: the crash-image file the explorer keeps (image.c): each image written holds
 * exactly the derived bytes, only the sectors whose bytes change are reported to the checker's
 * cache, and the key over chosen sectors tells images apart by those sectors alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"

#define S 512u

static char path[64];

/* The byte ranges the image reported as changed since the last reset. */
typedef struct {
  uint64_t off[64], len[64];
  size_t n;
} reports;

static void heard(void *ctx, uint64_t off, uint64_t len) {
  reports *r = ctx;
  if (r->n < 64) r->off[r->n] = off, r->len[r->n] = len;
  r->n++;
}

static bool reported(const reports *r, uint64_t sector) {
  for (size_t i = 0; i < r->n && i < 64; i++)
    if (sector * S >= r->off[i] && sector * S < r->off[i] + r->len[i]) return true;
  return false;
}

static int setup(void **state) {
  (void)state;
  snprintf(path, sizeof path, "/tmp/cc-image-XXXXXX");
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(path);
  return 0;
}

/* A file of 8 durable zero sectors; one step syncs new bytes in sectors 1 and 5 (and sector 6,
 * written before, lands by early writeback only). */
static pc_model *model_with_step(void) {
  pc_model *m;
  uint8_t zeros[8 * S] = {0}, a[S], b[S], c[S];
  memset(a, 'a', S), memset(b, 'b', S), memset(c, 'c', S);
  uint32_t id;
  uint64_t step;
  assert_int_equal(pc_model_new(S, &m), PC_OK);
  assert_int_equal(pc_model_add_file(m, "f", zeros, sizeof zeros, &id), PC_OK);
  assert_int_equal(pc_model_write(m, id, 6 * S, c, S), PC_OK);
  assert_int_equal(pc_model_write(m, id, 1 * S, a, S), PC_OK);
  assert_int_equal(pc_model_write(m, id, 5 * S, b, S), PC_OK);
  assert_int_equal(pc_model_step_begin(m, &step), PC_OK);
  assert_int_equal(pc_model_sync(m, id, 0, 6 * S), PC_OK);
  return m;
}

static void derive_and_write(cc_image *im, pc_model *m, const pc_crash *crash, uint64_t *hash) {
  assert_int_equal(cc_image_derive(im, m, crash, hash), CC_OK);
  assert_int_equal(cc_image_write(im, m, crash), CC_OK); /* verify: the file holds the image */
}

/* The second image shares sector 1 with the first: only the sectors whose bytes change (5 lands,
 * 6 does not) are reported, so the checker keeps what it derived from sector 1's page. Before,
 * every sector the last image had taken from elsewhere was rewritten and reported. */
static void test_unchanged_sectors_not_reported(void **state) {
  (void)state;
  pc_model *m = model_with_step();
  reports r = {0};
  cc_image *im;
  assert_int_equal(cc_image_new(path, S, true, heard, &r, &im), CC_OK);
  assert_int_equal(cc_image_step(im, m), CC_OK);
  uint64_t h1, h2, h3;
  const pc_crash first = {.tear = PC_TEAR_PREFIX, .tear_n = 1, .wb = PC_WB_ALL};
  const pc_crash all = {.tear = PC_TEAR_ALL, .wb = PC_WB_NONE};
  derive_and_write(im, m, &first, &h1); /* sectors 1 and 6 */
  r.n = 0;
  derive_and_write(im, m, &all, &h2); /* sectors 1 and 5 */
  assert_true(reported(&r, 5));
  assert_true(reported(&r, 6)); /* back to its durable zeros */
  assert_false(reported(&r, 1));
  assert_false(reported(&r, 0));
  r.n = 0;
  derive_and_write(im, m, &all, &h3); /* the same image again: nothing changes */
  assert_int_equal(r.n, 0);
  assert_int_equal(h2, h3);
  assert_int_not_equal(h1, h2);
  cc_image_free(im);
  pc_model_free(m);
}

/* The file's bytes after each write are the image's, through a shrink to nothing and back:
 * a sector the shrink cut off reads as zeros when the file grows again, whatever the image
 * module knew it held before (here sector 0, the last image's, then none's, then its again). */
static void test_writes_through_a_shrink(void **state) {
  (void)state;
  pc_model *m;
  uint8_t x[2 * S];
  memset(x, 'x', sizeof x);
  uint32_t id;
  uint64_t step;
  assert_int_equal(pc_model_new(S, &m), PC_OK);
  assert_int_equal(pc_model_add_file(m, "f", NULL, 0, &id), PC_OK);
  assert_int_equal(pc_model_write(m, id, 0, x, sizeof x), PC_OK);
  assert_int_equal(pc_model_step_begin(m, &step), PC_OK);
  assert_int_equal(pc_model_sync(m, id, S, S), PC_OK); /* sector 1 and the size */
  cc_image *im;
  assert_int_equal(cc_image_new(path, S, false, NULL, NULL, &im), CC_OK);
  assert_int_equal(cc_image_step(im, m), CC_OK);
  const pc_crash both = {.tear = PC_TEAR_ALL, .wb = PC_WB_ALL}, nothing = {.tear = PC_TEAR_NONE},
                 without0 = {.tear = PC_TEAR_ALL, .wb = PC_WB_NONE};
  /* (the first write is whole: the module knows what a sector holds from the second on) */
  const pc_crash *order[] = {&both, &both, &nothing, &without0, &both, &nothing, &both};
  for (size_t k = 0; k < sizeof order / sizeof *order; k++) {
    uint64_t h, len;
    uint8_t *want;
    assert_int_equal(cc_image_derive(im, m, order[k], &h), CC_OK);
    assert_int_equal(cc_image_write(im, m, order[k]), CC_OK);
    assert_int_equal(pc_model_image(m, id, order[k], &want, &len), PC_OK);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t got[4 * S];
    size_t n = fread(got, 1, sizeof got, f);
    fclose(f);
    assert_int_equal(n, len);
    assert_memory_equal(got, want, len);
    free(want);
  }
  cc_image_free(im);
  pc_model_free(m);
}

/* An image kept during its step is restored as deriving it again would leave it: written, the
 * file holds it; a garbage image is not kept, and nothing kept outlives the step. */
static void test_saved_images_restore(void **state) {
  (void)state;
  pc_model *m = model_with_step();
  cc_image *im;
  assert_int_equal(cc_image_new(path, S, true, NULL, NULL, &im), CC_OK); /* (verify: the file is each image) */
  assert_int_equal(cc_image_step(im, m), CC_OK);
  const pc_crash first = {.tear = PC_TEAR_PREFIX, .tear_n = 1, .wb = PC_WB_ALL}, all = {.tear = PC_TEAR_ALL},
                 garbage = {.tear = PC_TEAR_GARBAGE, .tear_n = 1};
  uint64_t h_first, h_all, h;
  assert_int_equal(cc_image_derive(im, m, &first, &h_first), CC_OK);
  size_t kept_first = cc_image_save(im);
  assert_int_equal(cc_image_derive(im, m, &all, &h_all), CC_OK);
  size_t kept_all = cc_image_save(im);
  assert_int_equal(cc_image_derive(im, m, &garbage, &h), CC_OK);
  assert_true(cc_image_save(im) == SIZE_MAX);
  assert_true(cc_image_restore(im, kept_first));
  assert_int_equal(cc_image_write(im, m, &first), CC_OK);
  assert_true(cc_image_restore(im, kept_all));
  assert_int_equal(cc_image_write(im, m, &all), CC_OK);
  assert_true(cc_image_restore(im, kept_first));
  assert_int_equal(cc_image_write(im, m, &first), CC_OK);
  assert_false(cc_image_restore(im, SIZE_MAX));
  assert_int_equal(cc_image_end_step(im, m), CC_OK);
  assert_int_equal(pc_model_step_end(m), PC_OK);
  uint64_t step;
  assert_int_equal(pc_model_step_begin(m, &step), PC_OK);
  assert_int_equal(cc_image_step(im, m), CC_OK);
  assert_false(cc_image_restore(im, kept_all)); /* another step: its sectors are gone */
  cc_image_free(im);
  pc_model_free(m);
}

/* The key covers the keyed sectors that differ from durable, and nothing else. */
static void test_key_over_keyed_sectors(void **state) {
  (void)state;
  pc_model *m = model_with_step();
  cc_image *im;
  assert_int_equal(cc_image_new(path, S, false, NULL, NULL, &im), CC_OK);
  assert_int_equal(cc_image_step(im, m), CC_OK);
  const uint8_t keyed[8] = {0, 1, 0, 0, 0, 0, 0, 0}; /* sector 1 alone */
  const pc_crash first = {.tear = PC_TEAR_PREFIX, .tear_n = 1}, all = {.tear = PC_TEAR_ALL},
                 none = {.tear = PC_TEAR_NONE}, late = {.tear = PC_TEAR_SUFFIX, .tear_n = 1};
  uint64_t h, k_first, k_all, k_none, k_late;
  assert_int_equal(cc_image_derive(im, m, &first, &h), CC_OK);
  k_first = cc_image_key(im, keyed, 8);
  assert_int_equal(cc_image_derive(im, m, &all, &h), CC_OK);
  k_all = cc_image_key(im, keyed, 8);
  assert_int_equal(cc_image_derive(im, m, &none, &h), CC_OK);
  k_none = cc_image_key(im, keyed, 8);
  assert_int_equal(cc_image_derive(im, m, &late, &h), CC_OK);
  k_late = cc_image_key(im, keyed, 8);
  assert_int_equal(k_first, k_all);   /* they differ in sector 5 only */
  assert_int_equal(k_none, k_late);   /* sector 1 durable in both */
  assert_int_not_equal(k_first, k_none);
  /* Keys compare across steps: once the step's sectors are durable, the next step's image
   * that lands nothing holds sector 1 as the last one's did. */
  assert_int_equal(cc_image_end_step(im, m), CC_OK);
  assert_int_equal(pc_model_step_end(m), PC_OK);
  uint64_t step;
  assert_int_equal(pc_model_step_begin(m, &step), PC_OK);
  assert_int_equal(cc_image_step(im, m), CC_OK);
  assert_int_equal(cc_image_derive(im, m, &none, &h), CC_OK);
  assert_int_equal(cc_image_key(im, keyed, 8), k_all);
  cc_image_free(im);
  pc_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unchanged_sectors_not_reported),
      cmocka_unit_test(test_writes_through_a_shrink),
      cmocka_unit_test(test_saved_images_restore),
      cmocka_unit_test(test_key_over_keyed_sectors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
