/* test_sort.c: mp__sort_u64 (sort.c), which a 0.3 load and mp_check sort owned pages with,
 * against qsort: every length around its switch from insertion to radix sort, values of one
 * to eight bytes (the passes it skips), duplicates, runs already in order, reversed, all
 * equal; and its qsort fallback when its buffer cannot be had (the pager/malloc fault point). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <fiu-control.h>
#include <fiu.h>

#include "internal.h"

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Sorts a copy of a with mp__sort_u64 and one with qsort: the same values in the same order. */
static void same_as_qsort(const uint64_t *a, size_t n) {
  uint64_t *x = malloc((n ? n : 1) * sizeof *x), *y = malloc((n ? n : 1) * sizeof *y);
  assert_non_null(x);
  assert_non_null(y);
  if (n) {
    memcpy(x, a, n * sizeof *a);
    memcpy(y, a, n * sizeof *a);
  }
  mp__sort_u64(x, n);
  qsort(y, n, sizeof *y, cmp);
  if (n) assert_memory_equal(x, y, n * sizeof *x);
  free(x);
  free(y);
}

static void test_orders_and_widths(void **state) {
  (void)state;
  static const size_t lens[] = {0, 1, 2, 3, 31, 32, 33, 34, 100, 1000, 65536 + 7};
  static const unsigned bits[] = {1, 8, 9, 16, 24, 32, 40, 63, 64};
  uint64_t *a = malloc(sizeof(uint64_t) * (65536 + 7));
  assert_non_null(a);
  for (size_t l = 0; l < sizeof lens / sizeof *lens; l++)
    for (size_t b = 0; b < sizeof bits / sizeof *bits; b++) {
      size_t n = lens[l];
      uint64_t mask = bits[b] == 64 ? UINT64_MAX : (UINT64_C(1) << bits[b]) - 1;
      for (size_t i = 0; i < n; i++) a[i] = next() & mask; /* random: duplicates at narrow widths */
      same_as_qsort(a, n);
      for (size_t i = 0; i < n; i++) a[i] = (n - i) & mask; /* reversed */
      same_as_qsort(a, n);
      for (size_t i = 0; i < n; i++) a[i] = mask; /* all equal */
      same_as_qsort(a, n);
      /* sorted runs, as a load appends them: block pages, then each block's entries */
      for (size_t i = 0; i < n; i++) a[i] = ((i % 5) * (mask / 5) + i / 5) & mask;
      same_as_qsort(a, n);
      for (size_t i = 0; i < n; i++) a[i] = i & mask; /* in order already (at wide masks) */
      same_as_qsort(a, n);
    }
  free(a);
}

static void test_no_buffer(void **state) {
  (void)state;
  enum { N = 5000 };
  uint64_t a[N];
  for (size_t i = 0; i < N; i++) a[i] = next() % 100000;
  assert_int_equal(fiu_enable("pager/malloc", 1, NULL, 0), 0);
  same_as_qsort(a, N);
  assert_int_equal(fiu_disable("pager/malloc"), 0);
}

int main(void) {
  fiu_init(0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_orders_and_widths),
      cmocka_unit_test(test_no_buffer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
