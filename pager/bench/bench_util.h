/* bench_util.h: what the pager's benchmarks share: a monotonic clock in ns, and a check that
 * stops the benchmark, naming the call, when the library refuses it. */
#ifndef MP_BENCH_UTIL_H
#define MP_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mappedpages.h"

static inline double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

/* BENCH_NAME: the program's name, said in the message. */
#define CHECK(call)                                                            \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != MP_OK) {                                                        \
      fprintf(stderr, "%s: %s: %s\n", BENCH_NAME, #call, mp_strerror(rc_));    \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#endif
