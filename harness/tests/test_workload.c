/* test_workload.c: the workload runner and its model: the states it records after each
 * operation, what counts as synced data, and continuing on an existing file. */
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

#include <fiu-control.h>
#include <fiu.h>

#include "mappedpages.h"
#include "workload.h"

static char path[64];

static int setup(void **state) {
  (void)state;
  snprintf(path, sizeof path, "/tmp/cc-workload-%d.pages", (int)getpid());
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(path);
  return 0;
}

static cc_case *parse(const char *text) {
  cc_case *c = malloc(sizeof *c);
  char why[256];
  assert_non_null(c);
  assert_int_equal(cc_case_parse_text(text, c, why, sizeof why), CC_OK);
  return c;
}

static void test_states_follow_each_operation(void **state) {
  (void)state;
  cc_case *c = parse("crashcheck-case 1\npage-size 1024\n"
                     "alloc-bulk 2\n"     /* 1: three pages */
                     "write-sync 1 7\n"   /* 2: the second one synced */
                     "write 1 8\n"        /* 3: overwritten, not synced: unknown again */
                     "palloc\n"           /* 4 */
                     "pwrite 0 9\n"       /* 5 */
                     "pabort 0 10\n"      /* 6: no change */
                     "free 0\n"           /* 7: the first regular page */
                     "sync\n"             /* 8: everything synced */
                     "pfree 0\n"          /* 9 */
                     "reopen\n"           /* 10 */
                     "free 7\n");         /* 11: picks among what exists */
  cc_run run;
  assert_int_equal(cc_run_case(c, path, &run), CC_OK);
  assert_string_equal(run.error, "");
  assert_int_equal(run.nstates, 12);
  const cc_state *s = run.states;
  assert_int_equal(s[0].nreg, 0);
  assert_int_equal(s[1].nreg, 3);
  assert_int_equal(s[1].synced[1], 0);
  assert_int_not_equal(s[2].synced[1], 0);
  assert_int_equal(s[2].synced[0], 0);
  assert_int_equal(s[3].synced[1], 0);
  assert_int_equal(s[4].nprot, 1);
  assert_int_not_equal(s[5].prot_hash[0], s[4].prot_hash[0]);
  assert_int_equal(s[6].prot_hash[0], s[5].prot_hash[0]);
  assert_int_equal(s[7].nreg, 2);
  assert_int_equal(s[7].reg[0], s[1].reg[1]);
  for (size_t i = 0; i < s[8].nreg; i++) assert_int_not_equal(s[8].synced[i], 0);
  assert_int_equal(s[9].nprot, 0);
  assert_true(cc_state_same_sets(&s[10], &s[9]));
  assert_int_equal(s[11].nreg, 1);
  /* The file holds the last state: read back, with content hashes. */
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  cc_state now;
  assert_int_equal(cc_state_read(p, true, NULL, &now), CC_OK);
  mp_close(p);
  assert_true(cc_state_same_sets(&now, &s[11]));
  assert_int_equal(now.synced[0], s[11].synced[0]);
  char text[300];
  cc_state_describe(&now, text, sizeof text);
  assert_non_null(strstr(text, "1 regular ["));
  cc_state_free(&now);
  cc_run_free(&run);
  free(c);
}

static void test_continue_on_existing_file(void **state) {
  (void)state;
  cc_case *c = parse("crashcheck-case 1\npage-size 2048\nalloc-bulk 3\nwrite-sync 0 1\npalloc\npwrite 0 2\n");
  cc_run first, second;
  assert_int_equal(cc_run_case(c, path, &first), CC_OK);
  cc_case *more = parse("crashcheck-case 1\npage-size 4096\nfree 0\npfree 0\nalloc\n");
  assert_int_equal(cc_run_case_on(more, path, &second), CC_OK);
  /* It starts from what the file holds, whatever page size the case names. */
  assert_true(cc_state_same_sets(&second.states[0], &first.states[first.nstates - 1]));
  assert_int_equal(second.states[0].synced[0], first.states[first.nstates - 1].synced[0]);
  assert_int_equal(second.states[2].nprot, 0);
  assert_int_equal(second.states[3].nreg, 4);
  cc_run_free(&first);
  cc_run_free(&second);
  /* A file that is not a pager: the run says why. */
  FILE *f = fopen(path, "w");
  fputs("not a pager", f);
  fclose(f);
  assert_int_not_equal(cc_run_case_on(more, path, &second), CC_OK);
  assert_non_null(strstr(second.error, "mp_open"));
  cc_run_free(&second);
  free(c);
  free(more);
}

/* cc_run_case_image on a file the reference wrote (corpus/interop/protected-4k): the
 * model starts as the file holds it (its regular pages, synced as they are on disk, and
 * its protected pages), the writer's open adopts it without changing that, and the
 * operations go on from there. */
static void test_run_from_an_image(void **state) {
  (void)state;
  const char *root = getenv("MP_SOURCE_DIR");
  char text[1200];
  snprintf(text, sizeof text, "crashcheck-case 1\nimage %s/corpus/interop/protected-4k.img.gz\nfree 1\npwrite 0 3\n",
           root && *root ? root : ".");
  cc_case *c = parse(text);
  assert_int_equal(c->page_size, 4096);
  char why[600];
  assert_int_equal(cc_case_image_copy(c, path, why, sizeof why), CC_OK);
  /* what the reference left: adoption pending */
  mp_pager *p;
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  assert_true(mp_recovery(p) & MP_RECOVER_ADOPT);
  mp_close(p);
  cc_run run;
  assert_int_equal(cc_run_case_image(c, path, &run), CC_OK);
  assert_int_equal(run.nstates, 3);
  const cc_state *s0 = &run.states[0];
  static const uint64_t reg[] = {3, 12, 16}, prot[] = {0, 1, 2, 4};
  assert_int_equal(s0->nreg, 3);
  assert_memory_equal(s0->reg, reg, sizeof reg);
  for (size_t i = 0; i < 3; i++) assert_int_not_equal(s0->synced[i], 0); /* on disk: durable */
  assert_int_equal(s0->nprot, 4);
  assert_memory_equal(s0->prot, prot, sizeof prot);
  for (size_t i = 0; i < 4; i++) assert_int_not_equal(s0->prot_hash[i], 0); /* passed their checksums */
  assert_int_equal(run.states[1].nreg, 2);
  assert_false(cc_state_has(&run.states[1], 12));
  assert_int_not_equal(run.states[2].prot_hash[0], s0->prot_hash[0]);
  cc_run_free(&run);
  /* the writer's open adopted it */
  assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
  assert_int_equal(mp_recovery(p), 0);
  mp_close(p);
  /* not a pager file: the run says why */
  FILE *f = fopen(path, "w");
  fputs("not a pager", f);
  fclose(f);
  assert_int_not_equal(cc_run_case_image(c, path, &run), CC_OK);
  assert_non_null(strstr(run.error, "MP_RDONLY"));
  cc_run_free(&run);
  free(c);
}

/* pager/msync fails at its calls number fail_from .. fail_to (1-based, counted from arming). */
static int msync_calls, fail_from, fail_to;

static int msync_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  int n = ++msync_calls;
  return n >= fail_from && n <= fail_to;
}

static void arm_msync(int from, int to) {
  msync_calls = 0;
  fail_from = from;
  fail_to = to;
  assert_int_equal(fiu_enable_external("pager/msync", 1, (void *)(intptr_t)EIO, 0, msync_cb), 0);
}

static const char *error_case_text = "crashcheck-case 1\npage-size 1024\n"
                                     "alloc\nwrite-sync 0 3\npalloc\npwrite 0 4\nalloc-bulk 2\nfree 0\npfree 0\n"
                                     "sync\nalloc\npalloc\n";

/* cc_run_case_errors: every msync of the run failed in turn (the pager's own fault point):
 * the failed operation leaves the last committed state, the run goes on and ends clean,
 * where cc_run_case stops at the failure. */
static void test_errors_keep_the_contract(void **state) {
  (void)state;
  cc_case *c = parse(error_case_text);
  int failed_ops = 0, total = 0;
  for (int n = 1; n < 200; n++) {
    arm_msync(n, n);
    cc_run run;
    int rc = cc_run_case_errors(c, path, &run);
    fiu_disable("pager/msync");
    total = msync_calls;
    if (n > total) {
      cc_run_free(&run);
      break;
    }
    if (rc == CC_EIO) { /* the create failed: no file, nothing to go on with */
      assert_non_null(strstr(run.error, "mp_create"));
      cc_run_free(&run);
      continue;
    }
    assert_int_equal(rc, CC_OK);
    assert_string_equal(run.error, "");
    assert_int_equal(run.nstates, c->nops + 1);
    if (run.failed_op) {
      failed_ops++;
      assert_int_equal(run.failed_rc, MP_EIO);
      assert_true(cc_state_same_sets(&run.states[run.failed_op - 1], &run.states[run.failed_op]));
      /* without the error contract, the same failure stops the run */
      cc_run plain;
      arm_msync(n, n);
      assert_int_equal(cc_run_case(c, path, &plain), CC_EINVAL);
      fiu_disable("pager/msync");
      assert_non_null(strstr(plain.error, "returned"));
      cc_run_free(&plain);
    }
    cc_run_free(&run);
  }
  assert_true(total > 10);
  assert_true(failed_ops > 5);
  free(c);
}

/* Two failures in a row at a commit point poison the handle: the next operation meets
 * MP_EPOISONED, the runner reopens, the file tells the old state, and the run goes on. */
static void test_errors_poisoned_reopen(void **state) {
  (void)state;
  cc_case *c = parse(error_case_text);
  int poisoned = 0;
  for (int n = 1; n < 200; n++) {
    arm_msync(n, n + 1);
    cc_run run;
    int rc = cc_run_case_errors(c, path, &run);
    fiu_disable("pager/msync");
    bool beyond = n > msync_calls;
    if (rc == CC_OK && run.poisoned_op) {
      poisoned++;
      assert_string_equal(run.error, "");
      assert_true(run.poisoned_op > run.failed_op);
      assert_false(run.adopted_new); /* the failed msyncs wrote nothing */
    }
    cc_run_free(&run);
    if (beyond) break;
  }
  assert_true(poisoned > 0);
  free(c);
}

static int fallocate_calls;
static int fallocate_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
  (void)name, (void)failnum, (void)failinfo, (void)flags;
  return ++fallocate_calls > 1; /* the create's own growth works; every later one fails */
}

/* A full disk (the shim's model after an injected ENOSPC) fails every later growth too: each
 * MP_ENOSPC is a failure of its own, held to the contract (the last committed state), and
 * the run goes on to its end; an alloc that fits the file still works. */
static void test_errors_full_disk(void **state) {
  (void)state;
  cc_case *c = parse("crashcheck-case 1\npage-size 1024\nalloc\nalloc-bulk 8\nalloc\nalloc-bulk 8\n");
  fallocate_calls = 0;
  assert_int_equal(fiu_enable_external("pager/fallocate", 1, (void *)(intptr_t)ENOSPC, 0, fallocate_cb), 0);
  cc_run run;
  int rc = cc_run_case_errors(c, path, &run);
  fiu_disable("pager/fallocate");
  assert_string_equal(run.error, "");
  assert_int_equal(rc, CC_OK);
  assert_int_equal(fallocate_calls, 4); /* the create, then ops 2, 3 and 4 */
  assert_int_equal(run.failed_rc, MP_ENOSPC);
  assert_int_equal(run.failed_op, 4); /* the last of them */
  assert_int_equal(run.nstates, 5);
  assert_int_equal(run.states[1].nreg, 1);
  for (int i = 2; i <= 4; i++) assert_true(cc_state_same_sets(&run.states[1], &run.states[i]));
  cc_run_free(&run);
  free(c);
}

int main(void) {
  fiu_init(0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_states_follow_each_operation),
      cmocka_unit_test(test_continue_on_existing_file),
      cmocka_unit_test(test_run_from_an_image),
      cmocka_unit_test(test_errors_keep_the_contract),
      cmocka_unit_test(test_errors_poisoned_reopen),
      cmocka_unit_test(test_errors_full_disk),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
