/* test_jobs.c: the workers of --jobs and the shards of --shard (harness/jobs.c), shared by
 * explore and run: every state falls to exactly one worker of one shard, a shard takes the
 * same states whatever its workers, results come back whole and in worker order, and a worker
 * that fails or dies is an error that names it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "case.h"
#include "jobs.h"

static uint64_t mix(uint64_t x) { /* splitmix64: hashes like the states' */
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static void test_partition(void **state) {
  (void)state;
  static const unsigned sizes[] = {1, 2, 3, 7};
  for (uint64_t i = 0; i < 5000; i++) {
    uint64_t h = mix(i);
    for (size_t a = 0; a < 4; a++)
      for (size_t b = 0; b < 4; b++) {
        unsigned shards = sizes[a], jobs = sizes[b], owners = 0;
        for (unsigned s = 0; s < shards; s++) {
          bool in_shard = cc_takes(h, s, shards, 0, 1);
          unsigned workers = 0;
          for (unsigned j = 0; j < jobs; j++) workers += cc_takes(h, s, shards, j, jobs);
          /* the shard's workers split exactly what the shard takes alone */
          assert_int_equal(workers, in_shard ? 1 : 0);
          owners += workers;
        }
        assert_int_equal(owners, 1);
      }
  }
  /* and every part gets some */
  unsigned count[6] = {0};
  for (uint64_t i = 0; i < 6000; i++)
    for (unsigned s = 0; s < 3; s++)
      for (unsigned j = 0; j < 2; j++) count[s * 2 + j] += cc_takes(mix(i), s, 3, j, 2);
  for (unsigned k = 0; k < 6; k++) assert_true(count[k] > 800 && count[k] < 1200);
}

typedef struct ctx {
  unsigned fail_worker, kill_worker; /* 0: none; else worker + 1 */
  unsigned merged[8], nmerged;
  uint64_t got[8];
} ctx;

static int work(void *p, unsigned j, int fd) {
  ctx *c = p;
  if (c->kill_worker == j + 1) raise(SIGKILL);
  uint64_t big[4096]; /* more than a pipe holds: the parent must read while it writes */
  for (size_t k = 0; k < 4096; k++) big[k] = j * 1000000 + k;
  if (cc_send(fd, big, sizeof big) != 0) return -1;
  return c->fail_worker == j + 1 ? -1 : 0;
}

static int merge(void *p, unsigned j, FILE *in) {
  ctx *c = p;
  uint64_t big[4096];
  if (fread(big, sizeof big, 1, in) != 1) return -1;
  for (size_t k = 0; k < 4096; k++)
    if (big[k] != j * 1000000 + k) return -1;
  c->merged[c->nmerged++] = j;
  c->got[j] = big[4095];
  return 0;
}

static void test_results_in_order(void **state) {
  (void)state;
  ctx c = {0};
  char why[200] = "";
  assert_int_equal(cc_run_jobs(4, work, merge, &c, why, sizeof why), CC_OK);
  assert_int_equal(c.nmerged, 4);
  for (unsigned j = 0; j < 4; j++) {
    assert_int_equal(c.merged[j], j);
    assert_int_equal(c.got[j], j * 1000000 + 4095);
  }
  assert_string_equal(why, "");
}

static void test_failed_worker(void **state) {
  (void)state;
  ctx c = {.fail_worker = 2};
  char why[200] = "";
  assert_int_equal(cc_run_jobs(3, work, merge, &c, why, sizeof why), CC_ESETUP);
  assert_string_equal(why, "worker 1 failed before sending its results");
  assert_int_equal(c.nmerged, 3); /* every worker still read and waited for */
}

static void test_killed_worker(void **state) {
  (void)state;
  ctx c = {.kill_worker = 1};
  char why[200] = "";
  assert_int_equal(cc_run_jobs(2, work, merge, &c, why, sizeof why), CC_ESETUP);
  assert_string_equal(why, "worker 0 was killed by signal 9");
  assert_int_equal(c.nmerged, 1);
  assert_int_equal(c.merged[0], 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_partition),
      cmocka_unit_test(test_results_in_order),
      cmocka_unit_test(test_failed_worker),
      cmocka_unit_test(test_killed_worker),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
