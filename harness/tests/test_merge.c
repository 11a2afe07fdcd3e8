/* test_merge.c: `crashcheck merge` (harness/merge.c) on hand-written shard outputs, and the
 * JSON reader under it (harness/json.c): checked counts and violations add up, the lists come
 * out by step, coverage is the union with missing recomputed, first_violation_state is the
 * smallest non-zero (and under --errors the states add up too); shards that disagree on what they enumerate are refused naming the field
 * and both files; malformed JSON is refused with where it broke; the exit is 1 on violations. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coverage.h"
#include "json.h"
#include "merge.h"

/* One explore --json shard: what it enumerates, what it checked, its violations, its cells. */
static char *shard(unsigned steps, unsigned states, unsigned page_size, unsigned distinct, unsigned violations,
                   unsigned first, const char *list, const char *cells) {
  char *s = NULL;
  /* the required cells this crashcheck counts at the shard's size (merge checks they agree) */
  static cc_cover_cells none;
  size_t required;
  cc_coverage_count(none, page_size, 512, &required, NULL);
  int n = asprintf(&s,
           "{\"steps\": %u, \"states\": %u, \"distinct_states\": %u, \"violations\": %u, \"leaks\": 1, "
           "\"reclaimed\": 2, \"first_violation_state\": %u, \"again_runs\": 3, \"again_states\": 4, "
           "\"error_steps\": 0, \"error_runs\": 0, \"error_contract\": 0, \"error_states\": 0, "
           "\"again_forced_repair\": 1, \"again_forced_create\": 0, \"again_sampled\": 2, \"again_forced_same\": 0, "
           "\"again_forked\": 3, \"open_states\": 0, \"adopt_states\": 0, \"seconds\": 1.500, "
           "\"states_per_sec\": 1.0, \"checked_per_sec\": 1.0, \"violation_list\": [%s], \"coverage\": "
           "{\"page_size\": %u, \"sector\": 512, \"covered\": 0, \"required\": %zu, \"impossible_covered\": 0, "
           "\"cells\": [%s], \"missing\": [], \"impossible\": []}}\n",
           steps, states, distinct, violations, first, list, page_size, required, cells);
  assert_true(n > 0);
  return s;
}

/* Merges, and returns the output (caller frees) and the status. */
static char *merge(cc_merge_input *in, size_t n, bool json, int *status, char *why, size_t whylen) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  assert_non_null(out);
  why[0] = 0;
  *status = cc_merge(in, n, json, out, why, whylen);
  fclose(out);
  return buf;
}

static uint64_t count(const cj_value *v, const char *key) {
  uint64_t n = 0;
  assert_true(cj_get_u64(v, key, &n));
  return n;
}

static void test_adds_up(void **state) {
  (void)state;
  char *a = shard(40, 1000, 4096, 100, 0, 0, "", "\"alloc/metadata-copy/anywhere\", \"sync/data/first\"");
  char *b = shard(40, 1000, 4096, 120, 1, 700,
                  "{\"invariant\": \"R3\", \"step\": 30, \"call\": \"msync\", \"reproducer\": \"x \\\"q\\\"\"}",
                  "\"sync/data/first\", \"create/name/anywhere\"");
  char *c = shard(40, 1000, 4096, 80, 2, 450,
                  "{\"invariant\": \"R5\", \"step\": 31}, {\"invariant\": \"R1\", \"step\": 12}", "");
  cc_merge_input in[] = {{"a.json", a}, {"b.json", b}, {"c.json", c}};
  char why[256];
  int status;
  char *out = merge(in, 3, true, &status, why, sizeof why);
  assert_int_equal(status, 1);
  cj_value *m = cj_parse(out, why, sizeof why);
  assert_non_null(m);
  assert_int_equal(count(m, "steps"), 40);
  assert_int_equal(count(m, "states"), 1000);
  assert_int_equal(count(m, "distinct_states"), 300);
  assert_int_equal(count(m, "violations"), 3);
  assert_int_equal(count(m, "leaks"), 3);
  assert_int_equal(count(m, "again_states"), 12);
  assert_int_equal(count(m, "first_violation_state"), 450);
  assert_int_equal(count(m, "shards"), 3);
  assert_true(cj_get(m, "seconds")->num > 4.49 && cj_get(m, "seconds")->num < 4.51);
  assert_true(cj_get(m, "wall_seconds")->num > 1.49 && cj_get(m, "wall_seconds")->num < 1.51);
  const cj_value *list = cj_get(m, "violation_list");
  assert_int_equal(list->n, 3);
  assert_int_equal(count(&list->items[0], "step"), 12);
  assert_int_equal(count(&list->items[1], "step"), 30);
  assert_int_equal(count(&list->items[2], "step"), 31);
  assert_string_equal(cj_get(&list->items[1], "reproducer")->str, "x \"q\"");
  const cj_value *cov = cj_get(m, "coverage");
  assert_int_equal(cj_get(cov, "cells")->n, 3); /* the union, once each */
  assert_int_equal(count(cov, "covered") + cj_get(cov, "missing")->n, count(cov, "required"));
  for (size_t i = 0; i < cj_get(cov, "missing")->n; i++)
    assert_string_not_equal(cj_get(cov, "missing")->items[i].str, "sync/data/first");
  cj_free(m);
  free(out);

  /* The clean ones alone: exit 0, and a human summary. */
  out = merge(in, 1, false, &status, why, sizeof why);
  assert_int_equal(status, 0);
  assert_non_null(strstr(out, "merged 1 shards of one exploration at 4096-byte pages"));
  free(out);
  free(a), free(b), free(c);
}

static void test_refuses_mismatch(void **state) {
  (void)state;
  char *a = shard(40, 1000, 4096, 100, 0, 0, "", "");
  char *steps = shard(41, 1000, 4096, 100, 0, 0, "", "");
  char *size = shard(40, 1000, 1024, 100, 0, 0, "", "");
  char why[256];
  int status;
  cc_merge_input in[] = {{"a.json", a}, {"b.json", steps}};
  char *out = merge(in, 2, true, &status, why, sizeof why);
  assert_int_equal(status, 2);
  assert_string_equal(out, ""); /* nothing printed for a refused merge */
  assert_non_null(strstr(why, "a.json and b.json disagree on steps (40 against 41)"));
  free(out);
  in[1] = (cc_merge_input){"c.json", size};
  out = merge(in, 2, true, &status, why, sizeof why);
  assert_int_equal(status, 2);
  assert_non_null(strstr(why, "a.json and c.json disagree on coverage.page_size (4096 against 1024)"));
  free(out);
  /* an explore shard with a run shard */
  in[1] = (cc_merge_input){"run.json", "{\"files\": 1, \"steps\": 40, \"states\": 1000, \"distinct_states\": 3, "
                                       "\"violations\": 0, \"seconds\": 0.1, \"violation_list\": []}"};
  out = merge(in, 2, true, &status, why, sizeof why);
  assert_int_equal(status, 2);
  assert_non_null(strstr(why, "not shards of one exploration"));
  free(out);
  /* a count missing */
  in[1] = (cc_merge_input){"d.json", "{\"steps\": 40, \"coverage\": {}}"};
  out = merge(in, 2, true, &status, why, sizeof why);
  assert_int_equal(status, 2);
  assert_non_null(strstr(why, "d.json: no count \"states\""));
  free(out);
  free(a), free(steps), free(size);
}

/* explore --errors shards take every N-th error run: the states after them add up. */
static void test_errors_shards(void **state) {
  (void)state;
  char *a = shard(40, 1000, 4096, 100, 0, 0, "", ""), *b = shard(40, 900, 4096, 90, 0, 0, "", "");
  char *ea = NULL, *eb = NULL, *p;
  /* the same outputs, of an --errors exploration with 12 failable steps */
  assert_true(asprintf(&ea, "%s", a) > 0 && asprintf(&eb, "%s", b) > 0);
  assert_non_null(p = strstr(ea, "\"error_steps\": 0"));
  memcpy(p, "\"error_steps\": 9", 16);
  assert_non_null(p = strstr(eb, "\"error_steps\": 0"));
  memcpy(p, "\"error_steps\": 9", 16);
  char why[256];
  int status;
  cc_merge_input in[] = {{"a", ea}, {"b", eb}};
  char *out = merge(in, 2, true, &status, why, sizeof why);
  assert_int_equal(status, 0);
  cj_value *m = cj_parse(out, why, sizeof why);
  assert_non_null(m);
  assert_int_equal(count(m, "states"), 1900);
  assert_int_equal(count(m, "error_steps"), 9);
  cj_free(m);
  free(out);
  /* without --errors, the same two disagree */
  in[0].text = a, in[1].text = b;
  out = merge(in, 2, true, &status, why, sizeof why);
  assert_int_equal(status, 2);
  assert_non_null(strstr(why, "disagree on states (1000 against 900)"));
  free(out);
  free(a), free(b), free(ea), free(eb);
}

static void test_refuses_malformed(void **state) {
  (void)state;
  static const struct { const char *text, *message; } cases[] = {
      {"{\"steps\": 40,", "not JSON: expected a member name at byte 13"},
      {"{\"steps\": [40,", "not JSON: unexpected end of text at byte 14"},
      {"{\"steps\": 40 \"states\": 3}", "not JSON: expected ',' or '}' at byte 13"},
      {"{\"steps\": 4x}", "not JSON: expected ',' or '}' at byte 11"},
      {"{\"a\": \"b\\q\"}", "not JSON: bad escape at byte 9"},
      {"{\"a\": 1, \"a\": 2}", "not JSON: member \"a\" given twice"},
      {"{} {}", "not JSON: text after the value at byte 3"},
      {"[1, 2]", "not a JSON object"},
      {"", "not JSON: unexpected end of text at byte 0"},
      {"{\"x\": 1}", "neither the --json output of crashcheck explore"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cc_merge_input in[] = {{"bad.json", cases[i].text}};
    char why[256];
    int status;
    char *out = merge(in, 1, true, &status, why, sizeof why);
    assert_int_equal(status, 2);
    if (!strstr(why, cases[i].message)) fail_msg("\"%s\": %s", cases[i].text, why);
    assert_non_null(strstr(why, "bad.json: "));
    free(out);
  }
  /* nesting deep enough to exhaust a recursive reader's stack is refused, not followed */
  char deep[4096];
  memset(deep, '[', sizeof deep - 1);
  deep[sizeof deep - 1] = 0;
  char why[256];
  assert_null(cj_parse(deep, why, sizeof why));
  assert_non_null(strstr(why, "nested deeper than"));
}

static void test_run_shards(void **state) {
  (void)state;
  const char *a = "{\"files\": 2, \"steps\": 9, \"states\": 50, \"distinct_states\": 7, \"violations\": 1, "
                  "\"seconds\": 0.5, \"violation_list\": [{\"step\": 5, \"call\": \"fsync\", \"crash\": \"c\", "
                  "\"state\": 31, \"status\": 1, \"output\": \"bad\\nline\", \"kept\": \"\"}]}";
  const char *b = "{\"files\": 2, \"steps\": 9, \"states\": 50, \"distinct_states\": 5, \"violations\": 1, "
                  "\"seconds\": 0.25, \"violation_list\": [{\"step\": 3, \"call\": \"write\", \"crash\": \"c\", "
                  "\"state\": 12, \"status\": 1, \"output\": \"\", \"kept\": \"\"}]}";
  cc_merge_input in[] = {{"a", a}, {"b", b}};
  char why[256];
  int status;
  char *out = merge(in, 2, true, &status, why, sizeof why);
  assert_int_equal(status, 1);
  cj_value *m = cj_parse(out, why, sizeof why);
  assert_non_null(m);
  assert_int_equal(count(m, "files"), 2);
  assert_int_equal(count(m, "distinct_states"), 12);
  assert_int_equal(count(m, "violations"), 2);
  const cj_value *list = cj_get(m, "violation_list");
  assert_int_equal(count(&list->items[0], "state"), 12);
  assert_string_equal(cj_get(&list->items[1], "output")->str, "bad\nline");
  cj_free(m);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adds_up),
      cmocka_unit_test(test_refuses_mismatch),
      cmocka_unit_test(test_errors_shards),
      cmocka_unit_test(test_refuses_malformed),
      cmocka_unit_test(test_run_shards),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
