/* pc_fmt3_work.c: a small deterministic workload on a 0.3 file (regular and protected pages), each
 * operation marked, run under the power-cut shim by test_fmt3_cuts; it writes the state after
 * each operation to a side file. */
#include "../../faults/powercut_mark.h"
#include "mappedpages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Usage: pc_fmt3_work FILE OPS PAGE_SIZE STATES [sparse]
 * STATES (not a file the shim tracks) gets a line per operation n (1 is the create): "n", then
 * " id:byte" for every allocated regular page and the byte its whole content holds, then
 * " Pid=byte" for every protected page and the byte its committed content holds. */

#define CHECK(call)                                                              \
  do {                                                                           \
    int rc_ = (call);                                                            \
    if (rc_ != MP_OK) {                                                          \
      fprintf(stderr, "pc_fmt3_work: %s: %s\n", #call, mp_strerror(rc_));        \
      return 1;                                                                  \
    }                                                                            \
  } while (0)

static uint8_t byte_of[1 << 16];

static void state(FILE *out, mp_pager *p, long op) {
  fprintf(out, "%ld", op);
  for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK; id++)
    fprintf(out, " %llu:%u", (unsigned long long)id, byte_of[id & 0xFFFF]);
  for (uint64_t id = 0; mp_next_protected(p, id, &id) == MP_OK; id++) {
    const void *d;
    fprintf(out, " P%llu=%u", (unsigned long long)id, mp_protected_read(p, id, &d) == MP_OK ? *(const uint8_t *)d : 999);
  }
  fprintf(out, "\n");
  fflush(out);
}

static int fill(mp_pager *p, uint64_t id, size_t ps, uint8_t b) {
  void *d;
  int rc = mp_page(p, id, &d);
  if (rc == MP_OK) memset(d, b, ps);
  byte_of[id & 0xFFFF] = b;
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: pc_fmt3_work FILE OPS PAGE_SIZE STATES [sparse]\n");
    return 2;
  }
  long ops = atol(argv[2]);
  size_t ps = (size_t)atol(argv[3]);
  FILE *out = fopen(argv[4], "w");
  if (!out) return 2;
  unlink(argv[1]);
  mp_pager *p;
  pc_mark_begin(1, "create");
  CHECK(mp_create_flags(argv[1], ps, MP_FORMAT_3 | (argc > 5 && !strcmp(argv[5], "sparse") ? MP_SPARSE : 0), &p));
  pc_mark_end(1);
  state(out, p, 1);
  uint64_t live[256], ids[4], prot[64];
  int nlive = 0, nprot = 0;
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (long i = 0; i < ops; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    static const char *const names[] = {"alloc+write", "bulk alloc+write", "free", "bulk free",
                                        "protected commit", "protected alloc", "protected free"};
    int kind = (int)(i % 7);
    if ((kind == 2 || kind == 3) && nlive < 2) kind = 0;
    if ((kind == 4 && !nprot) || (kind == 6 && nprot < 2)) kind = 5;
    uint8_t b = (uint8_t)(1 + i % 250);
    pc_mark_begin((uint64_t)i + 2, names[kind]);
    switch (kind) {
      case 0:
        CHECK(mp_alloc(p, &ids[0]));
        CHECK(fill(p, ids[0], ps, b));
        CHECK(mp_sync_page(p, ids[0]));
        live[nlive++] = ids[0];
        break;
      case 1:
        CHECK(mp_alloc_bulk(p, 4, ids));
        for (int k = 0; k < 4; k++) {
          CHECK(fill(p, ids[k], ps, b));
          live[nlive++] = ids[k];
        }
        CHECK(mp_sync(p));
        break;
      case 2: {
        int k = (int)(x % (uint64_t)nlive);
        CHECK(mp_free(p, live[k]));
        live[k] = live[--nlive];
        break;
      }
      case 3: {
        int k = (int)(x % (uint64_t)(nlive - 1));
        ids[0] = live[k], ids[1] = live[k + 1];
        CHECK(mp_free_bulk(p, 2, ids));
        live[k + 1] = live[--nlive]; /* the higher index first: the lower is still in place */
        live[k] = live[--nlive];
        break;
      }
      case 4: {
        void *stage;
        uint64_t id = prot[x % (uint64_t)nprot];
        CHECK(mp_protected_begin(p, id, &stage));
        memset(stage, b, ps);
        CHECK(mp_protected_commit(p, id));
        break;
      }
      case 5:
        CHECK(mp_protected_alloc(p, &prot[nprot++]));
        break;
      case 6: {
        int k = (int)(x % (uint64_t)nprot);
        CHECK(mp_protected_free(p, prot[k]));
        prot[k] = prot[--nprot];
        break;
      }
    }
    pc_mark_end((uint64_t)i + 2);
    state(out, p, i + 2);
  }
  CHECK(mp_close(p));
  fclose(out);
  return 0;
}
