/* diskfull.c: the backed blocks of a tracked file, as runs of block numbers, so that the
 * shim can tell, once the disk is full, which writes and stores would need a new block. */
#include "diskfull.h"

#include <stdlib.h>
#include <string.h>

/*
 * A file system backs a file with blocks: those written or allocated (fallocate) while
 * there was room, and none under a hole (a growing ftruncate, a punched range). The shim
 * keeps the runs of backed blocks per file; they are few (a file grows in a handful of
 * runs), so a sorted array searched linearly costs less than any tree. Runs are kept
 * disjoint and non-adjacent: "is [lo, hi) backed" is then one run containing it.
 */

static int fit(pc_blocks *b, size_t need)
{
    if (need <= b->cap) return 0;
    size_t nc = b->cap ? b->cap * 2 : 8;
    while (nc < need) nc *= 2;
    void *p = realloc(b->run, nc * sizeof *b->run);
    if (!p) return -1;
    b->run = p;
    b->cap = nc;
    return 0;
}

int pc__blocks_add(pc_blocks *b, uint64_t lo, uint64_t hi)
{
    if (lo >= hi) return 0;
    if (fit(b, b->n + 1)) return -1;
    /* the runs that touch or overlap [lo, hi) are [i, j): they merge into one */
    size_t i = 0;
    while (i < b->n && b->run[i][1] < lo) i++;
    size_t j = i;
    while (j < b->n && b->run[j][0] <= hi) {
        if (b->run[j][0] < lo) lo = b->run[j][0];
        if (b->run[j][1] > hi) hi = b->run[j][1];
        j++;
    }
    if (j == i) memmove(b->run + i + 1, b->run + i, (b->n - i) * sizeof *b->run), b->n++;
    else if (j > i + 1) memmove(b->run + i + 1, b->run + j, (b->n - j) * sizeof *b->run), b->n -= j - i - 1;
    b->run[i][0] = lo;
    b->run[i][1] = hi;
    return 0;
}

int pc__blocks_remove(pc_blocks *b, uint64_t lo, uint64_t hi)
{
    if (lo >= hi) return 0;
    if (fit(b, b->n + 1)) return -1; /* cutting the middle out of a run makes two */
    for (size_t i = 0; i < b->n;) {
        uint64_t a = b->run[i][0], z = b->run[i][1];
        if (z <= lo || a >= hi) {
            i++;
            continue;
        }
        if (a < lo && z > hi) { /* split */
            memmove(b->run + i + 1, b->run + i, (b->n - i) * sizeof *b->run);
            b->n++;
            b->run[i][1] = lo;
            b->run[i + 1][0] = hi;
            return 0;
        }
        if (a < lo) b->run[i++][1] = lo;
        else if (z > hi) b->run[i++][0] = hi;
        else memmove(b->run + i, b->run + i + 1, (--b->n - i) * sizeof *b->run);
    }
    return 0;
}

uint64_t pc__blocks_hole(const pc_blocks *b, uint64_t lo, uint64_t hi)
{
    for (size_t i = 0; i < b->n && lo < hi; i++) {
        if (b->run[i][1] <= lo) continue;
        if (b->run[i][0] > lo) return lo;
        lo = b->run[i][1];
    }
    return lo < hi ? lo : UINT64_MAX;
}

void pc__blocks_free(pc_blocks *b)
{
    free(b->run);
    memset(b, 0, sizeof *b);
}
