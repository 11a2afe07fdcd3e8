/* mp_scale.c: `make bench`'s table of the pager at scale (issue: 0.3 files of up to 2^32
 * pages). For 0.3 files of 4 KiB pages holding 1,000, 32,000, 1 million and 2^28 allocated
 * pages (sparse, MP_SPARSE, so that the file system holds only what was written): the bulk
 * allocation that fills it (ns a page), an alloc and a free at that size and a protected
 * commit, each next to the floor of two ordered msyncs of a dirty page on the same file
 * system, a reader's open of the file, and what a handle keeps on the heap beside its
 * mapping. The figures are measured, never asserted; the sizes that do not fit the file
 * system's free space are skipped with a line saying so. */
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mappedpages.h"

#define BENCH_NAME "mp-scale"
#include "bench_util.h"

#define PS 4096u
#define CHUNK (1u << 20) /* pages a bulk call asks for */

/* Two ordered msyncs of one dirty page each: what any commit with two barriers pays. */
static double floor_ns(const char *dir, int rounds) {
  char path[512];
  snprintf(path, sizeof path, "%s/mp-scale-floor-%d", dir, (int)getpid());
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ftruncate(fd, 8 * PS) != 0) {
    perror("mp-scale: floor file");
    exit(1);
  }
  uint8_t *m = mmap(NULL, 8 * PS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    perror("mp-scale: mmap");
    exit(1);
  }
  double t = now_ns();
  for (int i = 0; i < rounds; i++) {
    m[5 * PS + (unsigned)i % PS] ^= 1;
    syscall(SYS_msync, m + 5 * PS, PS, MS_SYNC);
    m[6 * PS + (unsigned)i % PS] ^= 1;
    syscall(SYS_msync, m + 6 * PS, PS, MS_SYNC);
  }
  double ns = (now_ns() - t) / rounds;
  munmap(m, 8 * PS);
  close(fd);
  unlink(path);
  return ns;
}

/* Heap bytes in use (glibc's arena accounting), for a handle's footprint beside its mapping. */
static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static void scale(const char *dir, const char *label, uint64_t n, double floor, int rounds) {
  struct statvfs vfs;
  /* the file's metadata (two leaf slots of 4 KiB per 32,544 pages), its data untouched */
  uint64_t need = (n / 32544 + 2) * 2 * PS + 64 * PS;
  if (statvfs(dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < 2 * need) {
    printf("%-6s %12llu pages: skipped (the file system has too little room for its metadata)\n", label,
           (unsigned long long)n);
    return;
  }
  char path[512];
  snprintf(path, sizeof path, "%s/mp-scale-%d.pages", dir, (int)getpid());
  unlink(path);
  mp_pager *p;
  CHECK(mp_create_flags(path, PS, MP_FORMAT_3 | MP_SPARSE, &p));
  uint64_t *ids = malloc((n < CHUNK ? n : CHUNK) * sizeof *ids);
  if (!ids) {
    fprintf(stderr, "mp-scale: out of memory\n");
    exit(1);
  }
  double t = now_ns();
  for (uint64_t done = 0; done < n;) {
    size_t k = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
    CHECK(mp_alloc_bulk(p, k, ids));
    done += k;
  }
  double bulk = (now_ns() - t) / (double)n;
  free(ids);

  double single = alloc_free_ns(p, rounds, false), own = alloc_free_ns(p, rounds, true);

  uint64_t prot;
  CHECK(mp_protected_alloc(p, &prot));
  t = now_ns();
  for (int i = 0; i < rounds; i++) {
    void *stage;
    CHECK(mp_protected_begin(p, prot, &stage));
    ((uint8_t *)stage)[(unsigned)i % PS] = (uint8_t)i;
    CHECK(mp_protected_commit(p, prot));
  }
  double commit = (now_ns() - t) / rounds;
  CHECK(mp_close(p));

  size_t heap = heap_in_use();
  t = now_ns();
  CHECK(mp_open(path, MP_RDONLY, &p));
  double open_ms = (now_ns() - t) / 1e6;
  size_t held = heap_in_use() - heap;
  CHECK(mp_close(p));
  unlink(path);
  printf("%-6s %12llu  %8.2f  %8.2f %5.2fx %7.0f  %8.2f %5.2fx  %8.2f  %10.1f\n", label, (unsigned long long)n, bulk,
         single / 1000, single / floor, own, commit / 1000, commit / floor, open_ms, held / 1024.0);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--help") == 0) {
    printf("usage: mp-scale [DIR]\n  the pager at scale, 0.3 files of 4 KiB pages, in DIR (default /dev/shm),\n"
           "  and the protected commit and alloc/free on disk (/var/tmp) at 32,000 pages\n");
    return 0;
  }
  const char *dir = argc > 1 ? argv[1] : "/dev/shm";
  static const uint64_t sizes[] = {1000, 32000, 1u << 20, 1u << 28};
  double fl = floor_ns(dir, 20000);
  printf("mp-scale: 0.3 files of 4 KiB pages, sparse; floor (two msyncs of a dirty page) %.2f us in %s\n", fl / 1000,
         dir);
  printf("%-6s %12s  %8s  %8s %6s %7s  %8s %6s  %8s  %10s\n", "where", "pages", "bulk ns", "alloc us", "floor",
         "own ns", "commit us", "floor", "open ms", "heap KiB");
  printf("(own ns: an alloc or free with its msyncs taken out, what the pager adds to the floor)\n");
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) scale(dir, "tmpfs", sizes[i], fl, 20000);
  if (argc == 1) {
    double dfl = floor_ns("/var/tmp", 500);
    printf("disk floor (two msyncs of a dirty page in /var/tmp) %.1f us\n", dfl / 1000);
    scale("/var/tmp", "disk", 32000, dfl, 500);
  }
  return 0;
}
