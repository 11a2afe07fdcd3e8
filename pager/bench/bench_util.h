/* bench_util.h: what the pager's benchmarks share: a monotonic clock in ns, a check that
 * stops the benchmark, naming the call, when the library refuses it, the library's msync
 * counted (and skipped when asked), and the alloc/free loop. One benchmark program each. */
#ifndef MP_BENCH_UTIL_H
#define MP_BENCH_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

/* The library's msync: this definition takes precedence over libc's for the statically
 * linked library. It counts the calls and forwards them to the kernel, unless msync_skipped is
 * set: then a loop measures what the pager adds beyond its msyncs, which a busy machine's
 * floor (two msyncs) hides, moving by more than that between runs. */
static unsigned long msync_calls;
static int msync_skipped;
int msync(void *addr, size_t len, int flags) {
  msync_calls++;
  return msync_skipped ? 0 : (int)syscall(SYS_msync, addr, len, flags);
}

/* Nanoseconds per call of `rounds` alloc/free pairs; with the msyncs taken out if own. */
static inline double alloc_free_ns(mp_pager *p, int rounds, bool own) {
  msync_skipped = own;
  double t = now_ns();
  for (int i = 0; i < rounds; i++) {
    uint64_t id;
    CHECK(mp_alloc(p, &id));
    CHECK(mp_free(p, id));
  }
  msync_skipped = 0;
  return (now_ns() - t) / (2.0 * rounds);
}

#endif
