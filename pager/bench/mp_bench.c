/* mp_bench.c: `make bench` for the pager: ns per operation and msync calls per
 * operation for alloc/free, bulk alloc/free and protected commits (the copy next to its
 * directory page, and far from it), next to the floor (two msyncs of one dirty page) on
 * the same file system. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mappedpages.h"

#define BENCH_NAME "mp-bench"
#include "bench_util.h"

static void row(const char *fs, const char *what, double ns, double per, unsigned long syncs, double n) {
  printf("%-9s %-34s %12.1f ns/%-5s %6.2f msync/op\n", fs, what, ns / n, per == 0 ? "page" : "op", syncs / n);
}

/* 1,000 commits of one protected page, each changing one byte: ns in all, and msyncs. */
static double bench_commits(mp_pager *p, uint64_t id, unsigned long *syncs) {
  msync_calls = 0;
  double t = now_ns();
  for (int i = 0; i < 1000; i++) {
    void *stage;
    CHECK(mp_protected_begin(p, id, &stage));
    ((uint8_t *)stage)[i % 4096] = (uint8_t)i;
    CHECK(mp_protected_commit(p, id));
  }
  *syncs = msync_calls;
  return now_ns() - t;
}

static void bench_dir(const char *dir, const char *label, int rounds) {
  char path[512];
  snprintf(path, sizeof path, "%s/mp-bench-%d.pages", dir, (int)getpid());
  unlink(path);
  mp_pager *p;
  CHECK(mp_create(path, 4096, &p));
  uint64_t warm[64];
  CHECK(mp_alloc_bulk(p, 64, warm)); /* grow first: growth is not what is measured */
  CHECK(mp_free_bulk(p, 64, warm));

  /* Floor: what any commit protocol with two ordered writes pays. */
  int fd = open(path, O_RDWR);
  uint8_t *m = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  double t = now_ns();
  for (int i = 0; i < rounds; i++) {
    m[5 * 4096 + (i % 4096)] ^= 1;
    syscall(SYS_msync, m + 5 * 4096, 4096, MS_SYNC);
    m[6 * 4096 + (i % 4096)] ^= 1;
    syscall(SYS_msync, m + 6 * 4096, 4096, MS_SYNC);
  }
  double floor_ns = (now_ns() - t) / rounds;
  munmap(m, 8 * 4096);
  close(fd);
  printf("%-9s %-34s %12.1f ns/op\n", label, "floor: two msyncs of a dirty page", floor_ns);

  msync_calls = 0;
  double ns = alloc_free_ns(p, rounds, false) * 2.0 * rounds;
  row(label, "alloc or free (single)", ns, 1, msync_calls, 2.0 * rounds);
  printf("%-9s %-34s %12.2f x floor\n", label, "", ns / (2.0 * rounds) / floor_ns);
  /* The same with the msyncs taken out: what the pager adds to the floor. */
  printf("%-9s %-34s %12.1f ns/op\n", label, "  ... its own, msyncs taken out", alloc_free_ns(p, rounds, true));

  uint64_t *ids = malloc(16000 * sizeof *ids);
  int bulk_rounds = rounds > 20 ? 20 : rounds;
  double alloc_ns = 0, free_ns = 0;
  unsigned long alloc_syncs = 0, free_syncs = 0, syncs;
  for (int r = 0; r < bulk_rounds; r++) {
    msync_calls = 0;
    t = now_ns();
    CHECK(mp_alloc_bulk(p, 16000, ids));
    alloc_ns += now_ns() - t;
    alloc_syncs += msync_calls;
    msync_calls = 0;
    t = now_ns();
    CHECK(mp_free_bulk(p, 16000, ids));
    free_ns += now_ns() - t;
    free_syncs += msync_calls;
  }
  printf("%-9s %-34s %12.1f ns/page %6.2f msync/call\n", label, "bulk alloc of 16,000 pages",
         alloc_ns / (16000.0 * bulk_rounds), alloc_syncs / (double)bulk_rounds);
  printf("%-9s %-34s %12.1f ns/page %6.2f msync/call\n", label, "bulk free of 16,000 pages",
         free_ns / (16000.0 * bulk_rounds), free_syncs / (double)bulk_rounds);
  free(ids);

  /* A new block: its directory pages, then the copies next to them. */
  uint64_t prot;
  CHECK(mp_protected_alloc(p, &prot));
  ns = bench_commits(p, prot, &syncs);
  row(label, "protected commit (1,000)", ns, 1, syncs, 1000);
  printf("%-9s %-34s %12.2f x floor\n", label, "", ns / 1000 / floor_ns);
  /* A copy past 1,000 clean pages from its directory page: the commit's one msync spans
   * them. (The first page's copies follow the block's directory pages.) */
  uint64_t *gap = malloc(1000 * sizeof *gap), far, near_at, far_at;
  uint32_t crc;
  CHECK(mp_alloc_bulk(p, 1000, gap));
  CHECK(mp_protected_alloc(p, &far));
  CHECK(mp_protected_where(p, prot, &near_at, &crc));
  CHECK(mp_protected_where(p, far, &far_at, &crc));
  ns = bench_commits(p, far, &syncs);
  char what[64];
  snprintf(what, sizeof what, "  ... its copy %lld pages away", (long long)(far_at - near_at));
  row(label, what, ns, 1, syncs, 1000);
  CHECK(mp_protected_free(p, far));
  CHECK(mp_free_bulk(p, 1000, gap));
  free(gap);
  CHECK(mp_close(p));
  unlink(path);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--help") == 0) {
    printf("usage: mp-bench [DIR...]\n  benchmarks the pager in each DIR (default /dev/shm and /var/tmp)\n");
    return 0;
  }
  printf("%-9s %-34s %18s\n", "where", "operation", "cost");
  if (argc > 1) {
    for (int i = 1; i < argc; i++) bench_dir(argv[i], argv[i], 2000);
  } else {
    bench_dir("/dev/shm", "tmpfs", 200000);
    bench_dir("/var/tmp", "disk", 2000);
  }
  return 0;
}
