/* pc_pager_work.c: a small deterministic pager workload (alloc, write+sync, protected commit,
 * free, bulk alloc/free), each operation marked, run under the shim by tests and pc-bench. */
#include "../powercut_mark.h"
#include "mappedpages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Usage: pc_pager_work FILE OPS [PAGE_SIZE [sparse]]  -> prints "ns OPS" on success, exit 1 on
 * error. With "sparse" the file is reopened with MP_SPARSE right after the create (inside the
 * create's marker): growth by ftruncate, the pager's own pages reserved one by one. */

#define CHECK(call)                                                                  \
    do {                                                                             \
        int rc_ = (call);                                                            \
        if (rc_ != MP_OK) {                                                          \
            fprintf(stderr, "pc_pager_work: %s: %s\n", #call, mp_strerror(rc_));     \
            return 1;                                                                \
        }                                                                            \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pc_pager_work FILE OPS [PAGE_SIZE [sparse]]\n");
        return 2;
    }
    long ops = atol(argv[2]);
    size_t ps = argc > 3 ? (size_t)atol(argv[3]) : 4096;
    unlink(argv[1]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mp_pager *p;
    pc_mark_begin(1, "create");
    CHECK(mp_create(argv[1], ps, &p));
    if (argc > 4 && !strcmp(argv[4], "sparse")) {
        CHECK(mp_close(p));
        CHECK(mp_open(argv[1], MP_SPARSE, &p));
    }
    uint64_t prot;
    CHECK(mp_protected_alloc(p, &prot));
    pc_mark_end(1);
    uint64_t live[64], bulk[3];
    int nlive = 0;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (long i = 0; i < ops; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        static const char *const names[] = {"alloc+write", "protected commit", "free", "bulk alloc+free"};
        int kind = (int)(i % 4);
        if (kind == 2 && !nlive) kind = 0;
        pc_mark_begin((uint64_t)i + 2, names[kind]);
        switch (kind) {
        case 0: {
            uint64_t id;
            CHECK(mp_alloc(p, &id));
            void *d;
            CHECK(mp_page(p, id, &d));
            memset(d, (int)(i & 0xff), ps);
            CHECK(mp_sync_page(p, id));
            if (nlive < 64) live[nlive++] = id;
            else CHECK(mp_free(p, id));
            break;
        }
        case 1: {
            void *stage;
            CHECK(mp_protected_begin(p, prot, &stage));
            memset(stage, (int)(i & 0xff), ps / 2);
            CHECK(mp_protected_commit(p, prot));
            break;
        }
        case 2: {
            int k = (int)(x % (uint64_t)nlive);
            CHECK(mp_free(p, live[k]));
            live[k] = live[--nlive];
            break;
        }
        case 3:
            CHECK(mp_alloc_bulk(p, 3, bulk));
            CHECK(mp_free_bulk(p, 3, bulk));
            break;
        }
        pc_mark_end((uint64_t)i + 2);
    }
    CHECK(mp_close(p));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%lld %ld\n", (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec), ops);
    return 0;
}
