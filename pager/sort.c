/* sort.c: sorting page numbers. A 0.3 load sorts every page the directory owns (its blocks'
 * pages and each protected page's two), and mp_check sorts them again: qsort's call per
 * comparison made those sorts the larger part of loading a file of many protected pages
 * (41% of crashcheck's own time on corpus/workloads/blocks-full-large3 at 1 KiB pages). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sorts a[0..n) ascending: nothing to do when it is sorted already (a list appended in page
 * order), insertion for a few, else a radix sort by bytes over the bytes the largest value
 * has (four passes for page numbers below 2^32), through a buffer of n values; qsort when
 * that buffer cannot be had. */
void mp__sort_u64(uint64_t *a, size_t n) {
  size_t i = 1;
  while (i < n && a[i - 1] <= a[i]) i++;
  if (i >= n) return;
  if (n <= 32) {
    for (; i < n; i++) {
      uint64_t v = a[i];
      size_t j = i;
      for (; j && a[j - 1] > v; j--) a[j] = a[j - 1];
      a[j] = v;
    }
    return;
  }
  uint64_t max = 0;
  for (size_t k = 0; k < n; k++) max |= a[k];
  uint64_t *tmp = mp__malloc(n * sizeof *tmp);
  if (!tmp) {
    qsort(a, n, sizeof *a, cmp_u64);
    return;
  }
  uint64_t *from = a, *to = tmp;
  for (unsigned shift = 0; shift < 64 && (max >> shift); shift += 8) {
    size_t count[257] = {0};
    for (size_t k = 0; k < n; k++) count[((from[k] >> shift) & 255) + 1]++;
    if (count[((from[0] >> shift) & 255) + 1] == n) continue; /* one value of this byte: in order */
    for (int d = 0; d < 256; d++) count[d + 1] += count[d];
    for (size_t k = 0; k < n; k++) to[count[(from[k] >> shift) & 255]++] = from[k];
    uint64_t *t = from;
    from = to;
    to = t;
  }
  if (from != a) memcpy(a, from, n * sizeof *a);
  free(tmp);
}
