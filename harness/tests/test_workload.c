/* test_workload.c: the workload runner and its model: the states it records after each
 * operation, what counts as synced data, and continuing on an existing file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_states_follow_each_operation),
      cmocka_unit_test(test_continue_on_existing_file),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
