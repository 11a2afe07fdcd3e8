/* test_explore.c: the explorer in-process (its children are build/bin/crashcheck under
 * build/lib/libpowercut.so): R7's forced follow-ups, counted apart from the sampled ones,
 * one per distinct recovered file (across workers too), and none with R7 off. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coverage.h"
#include "explore.h"

static char dir[64], self[PATH_MAX], shim[PATH_MAX];
static cc_case *cs;

/* The built tools, from the tree's root (where make check runs the tests). */
static int setup(void **state) {
  (void)state;
  const char *build = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
  char rel[PATH_MAX];
  snprintf(rel, sizeof rel, "%s/bin/crashcheck", build);
  if (!realpath(rel, self)) {
    fprintf(stderr, "test_explore: %s is missing (make builds it)\n", rel);
    return -1;
  }
  snprintf(rel, sizeof rel, "%s/lib/libpowercut.so", build);
  if (!realpath(rel, shim)) {
    fprintf(stderr, "test_explore: %s is missing (make builds it)\n", rel);
    return -1;
  }
  snprintf(dir, sizeof dir, "/tmp/cc-explore-XXXXXX");
  cs = malloc(sizeof *cs);
  return cs && mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  free(cs);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Protected pages at 1 KiB: page-0 tears of directory changes and interrupted protected
 * operations give states whose recovery has work. */
static const char *const workload = "crashcheck-case 1\npage-size 1024\n"
                                    "alloc\nwrite-sync 0 1\npalloc\npwrite 0 2\npalloc\npfree 0\nalloc-bulk 3\nfree 1\n";

static void explore_jobs(unsigned again, bool off, unsigned jobs, cc_explore_result *r) {
  char why[256];
  assert_int_equal(cc_case_parse_text(workload, cs, why, sizeof why), CC_OK);
  cc_explore_opts o;
  cc_explore_defaults(&o);
  o.workdir = dir;
  o.shim = shim;
  o.self = self;
  o.again = again;
  o.again_off = off;
  o.jobs = jobs;
  assert_int_equal(cc_explore(cs, &o, r), CC_OK);
  if (r->error[0]) fail_msg("explore: %s", r->error);
  assert_int_equal(r->violations, 0);
}

static void explore(unsigned again, bool off, cc_explore_result *r) { explore_jobs(again, off, 1, r); }

static bool any_cell(const cc_cover_cells cells, int op) {
  for (int w = 0; w < CC_WHAT_KINDS; w++)
    for (int x = 0; x < CC_WHERE_KINDS; x++)
      if (cells[op][w][x]) return true;
  return false;
}

/* explore-from: the operations before it (and the create) run uncut, so no crash state and
 * no coverage comes from them, while every step is still replayed. */
static void test_explore_from(void **state) {
  (void)state;
  cc_explore_result all, last;
  explore(0, true, &all);
  cs->explore_from = cs->nops; /* the last operation alone: free 1 */
  cc_explore_opts o;
  cc_explore_defaults(&o);
  o.workdir = dir, o.shim = shim, o.self = self, o.again_off = true;
  assert_int_equal(cc_explore(cs, &o, &last), CC_OK);
  assert_int_equal(last.violations, 0);
  assert_int_equal(last.steps, all.steps);
  assert_true(last.states > 0 && last.states * 4 < all.states);
  assert_true(any_cell(all.cover, CC_COVER_CREATE) && any_cell(all.cover, CC_PALLOC));
  assert_false(any_cell(last.cover, CC_COVER_CREATE) || any_cell(last.cover, CC_PALLOC) ||
               any_cell(last.cover, CC_ALLOC_BULK));
  assert_true(any_cell(last.cover, CC_FREE));
  cc_explore_result_free(&all);
  cc_explore_result_free(&last);
}

/* Page 0 in one atomic sector is never torn: recovery has no append to undo or redo and no
 * directory selector to toggle back there, so those cells are required only with smaller
 * sectors (and covering one at such a size would be a bug the suite test reports). */
static void test_cells_need_a_torn_page0(void **state) {
  (void)state;
  for (int where = CC_AT_ANY; where <= CC_AT_FIRST; where++) {
    assert_int_equal(cc_cell_status(CC_COVER_RECOVER, CC_W_APPEND_COUNT, where, 4096, 512), CC_CELL_REQUIRED);
    assert_int_equal(cc_cell_status(CC_COVER_RECOVER, CC_W_APPEND_COUNT, where, 8192, 4096), CC_CELL_REQUIRED);
    assert_int_equal(cc_cell_status(CC_COVER_RECOVER, CC_W_APPEND_COUNT, where, 4096, 4096), CC_CELL_IMPOSSIBLE);
    assert_int_equal(cc_cell_status(CC_COVER_RECOVER, CC_W_APPEND_COUNT, where, 1024, 4096), CC_CELL_IMPOSSIBLE);
  }
  assert_int_equal(cc_cell_status(CC_COVER_RECOVER, CC_W_DIR_SELECTOR, CC_AT_ANY, 2048, 512), CC_CELL_REQUIRED);
  assert_int_equal(cc_cell_status(CC_COVER_RECOVER, CC_W_DIR_SELECTOR, CC_AT_ANY, 2048, 4096), CC_CELL_IMPOSSIBLE);
  /* an intent recovery drops is written whole: required at every size */
  assert_int_equal(cc_cell_status(CC_COVER_RECOVER, CC_W_APPEND_INTENT, CC_AT_ANY, 4096, 4096), CC_CELL_REQUIRED);
  /* the operations' own appends are required whatever the sector */
  assert_int_equal(cc_cell_status(CC_PALLOC, CC_W_APPEND_COUNT, CC_AT_FIRST, 4096, 4096), CC_CELL_REQUIRED);
}

/* A protected commit's first msync spans the pages between its copy and its directory page
 * (pager/commit.c), so what the caller left dirty between them may land in it; no other
 * operation but a sync writes a regular page's data at 4 KiB pages. */
static void test_commit_span_cells(void **state) {
  (void)state;
  static const int carried[] = {CC_W_DATA, CC_W_FREE};
  for (size_t i = 0; i < 2; i++) {
    int what = carried[i];
    assert_int_equal(cc_cell_status(CC_PWRITE, what, CC_AT_ANY, 4096, 512), CC_CELL_ALLOWED);
    assert_int_equal(cc_cell_status(CC_PWRITE, what, CC_AT_LAST, 16384, 4096), CC_CELL_ALLOWED);
    assert_int_equal(cc_cell_status(CC_PFREE, what, CC_AT_ANY, 4096, 512), CC_CELL_IMPOSSIBLE);
  }
  assert_int_equal(cc_cell_status(CC_PWRITE, CC_W_PROTECTED, CC_AT_ANY, 4096, 512), CC_CELL_REQUIRED);
  assert_int_equal(cc_cell_status(CC_PWRITE, CC_W_META, CC_AT_ANY, 4096, 512), CC_CELL_IMPOSSIBLE);
}

static void test_forced_only(void **state) {
  (void)state;
  cc_explore_result r;
  explore(0, false, &r);
  assert_true(r.again_repair > 0); /* states whose recovery repaired or reclaimed something */
  assert_true(r.again_create > 0); /* states cut in mp_create */
  assert_true(r.again_same > 0);   /* and more that recover to a file already followed */
  assert_int_equal(r.again_sampled, 0);
  assert_int_equal(r.again_runs, r.again_repair + r.again_create);
  assert_true(r.again_states >= r.again_runs); /* each follow-up checks its own cuts */
  /* Deduplicated: fewer follow-ups than forced states, at most one per distinct crash image. */
  assert_true(r.again_runs <= r.distinct);
  cc_explore_result_free(&r);
}

static void test_forced_and_sampled(void **state) {
  (void)state;
  cc_explore_result forced, both;
  explore(0, false, &forced);
  explore(4, false, &both);
  /* The sample takes other states than the forced ones, which stay as they were. */
  assert_true(both.again_sampled > 0);
  assert_int_equal(both.again_repair, forced.again_repair);
  assert_int_equal(both.again_create, forced.again_create);
  assert_int_equal(both.again_same, forced.again_same);
  assert_int_equal(both.again_runs, forced.again_runs + both.again_sampled);
  cc_explore_result_free(&forced);
  cc_explore_result_free(&both);
}

/* Workers share what they followed: one file, one follow-up, whichever worker's crash
 * image recovers to it first. */
static void test_workers_follow_each_file_once(void **state) {
  (void)state;
  cc_explore_result one, two;
  explore(0, false, &one);
  explore_jobs(0, false, 2, &two);
  assert_int_equal(two.distinct, one.distinct);
  assert_int_equal(two.again_repair + two.again_create, one.again_repair + one.again_create);
  assert_int_equal(two.again_same, one.again_same);
  assert_int_equal(two.again_runs, one.again_runs);
  cc_explore_result_free(&one);
  cc_explore_result_free(&two);
}

static void test_off(void **state) {
  (void)state;
  cc_explore_result r;
  explore(16, true, &r);
  assert_int_equal(r.again_runs, 0);
  assert_int_equal(r.again_states, 0);
  assert_int_equal(r.again_repair + r.again_create + r.again_same + r.again_sampled, 0);
  assert_true(r.distinct > 0);
  cc_explore_result_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forced_only),
      cmocka_unit_test(test_forced_and_sampled),
      cmocka_unit_test(test_workers_follow_each_file_once),
      cmocka_unit_test(test_off),
      cmocka_unit_test(test_explore_from),
      cmocka_unit_test(test_cells_need_a_torn_page0),
      cmocka_unit_test(test_commit_span_cells),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
