/* mp_demo.c: what `make run` shows until the crash explorer exists: create a pager
 * file, allocate and write pages, commit a protected page, reopen, print the state. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mappedpages.h"

#define TRY(call)                                                              \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != MP_OK) {                                                        \
      fprintf(stderr, "mp-demo: %s: %s\n", #call, mp_strerror(rc_));           \
      return 1;                                                                \
    }                                                                          \
  } while (0)

static void print_finding(void *arg, const char *finding) {
  (void)arg;
  printf("  finding: %s\n", finding);
}

int main(int argc, char **argv) {
  if (argc != 2 || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr, "usage: mp-demo FILE\n  creates FILE (replacing an earlier demo file), writes pages, reopens it and prints its state\n");
    return 2;
  }
  const char *path = argv[1];
  unlink(path);
  mp_pager *p;
  TRY(mp_create(path, 4096, &p));
  printf("created %s: page size %zu, %llu pages, %llu free, capacity %llu pages\n", path, mp_page_size(p),
         (unsigned long long)mp_page_count(p), (unsigned long long)mp_free_count(p),
         (unsigned long long)mp_capacity(p));
  uint64_t ids[40];
  TRY(mp_alloc_bulk(p, 40, ids));
  for (int i = 0; i < 40; i++) {
    void *data;
    TRY(mp_page(p, ids[i], &data));
    snprintf(data, 64, "regular page %llu", (unsigned long long)ids[i]);
  }
  TRY(mp_sync(p));
  TRY(mp_free_bulk(p, 10, ids + 30));
  uint64_t prot;
  TRY(mp_protected_alloc(p, &prot));
  void *stage;
  TRY(mp_protected_begin(p, prot, &stage));
  strcpy(stage, "committed atomically");
  TRY(mp_protected_commit(p, prot));
  TRY(mp_close(p));

  TRY(mp_open(path, MP_RDONLY, &p));
  printf("reopened read-only: %llu pages, %llu free\n", (unsigned long long)mp_page_count(p),
         (unsigned long long)mp_free_count(p));
  unsigned n = 0;
  uint64_t id;
  for (uint64_t from = 0; mp_next_regular(p, from, &id) == MP_OK; from = id + 1) n++;
  void *first;
  TRY(mp_next_regular(p, 0, &id));
  TRY(mp_page(p, id, &first));
  printf("regular pages: %u, the first (%llu) holds \"%s\"\n", n, (unsigned long long)id, (char *)first);
  for (uint64_t from = 0; mp_next_protected(p, from, &id) == MP_OK; from = id + 1) {
    const void *content;
    TRY(mp_protected_read(p, id, &content));
    printf("protected page %llu holds \"%s\"\n", (unsigned long long)id, (const char *)content);
  }
  unsigned findings;
  TRY(mp_check(p, print_finding, NULL, &findings));
  printf("mp_check: %u findings\n", findings);
  TRY(mp_close(p));
  return findings ? 1 : 0;
}
