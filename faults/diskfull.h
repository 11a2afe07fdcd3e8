/* diskfull.h: which blocks of a tracked file the disk backs, for the shim's disk-full model
 * (POWERCUT_ERROR=STEP:ENOSPC), internal to the shim (shim.c). See diskfull.c. */
#ifndef PC_DISKFULL_H
#define PC_DISKFULL_H

#include <stddef.h>
#include <stdint.h>

/* The backed blocks of one file: sorted, disjoint, non-adjacent runs [lo, hi) of block
 * numbers. A zeroed pc_blocks is empty. */
typedef struct {
    uint64_t (*run)[2];
    size_t n, cap;
} pc_blocks;

/* Blocks [lo, hi) are backed from now on. 0, or -1 out of memory (nothing changed). */
int pc__blocks_add(pc_blocks *b, uint64_t lo, uint64_t hi);
/* Blocks [lo, hi) are no longer backed (a shrink, a punched hole). -1 out of memory. */
int pc__blocks_remove(pc_blocks *b, uint64_t lo, uint64_t hi);
/* The first block of [lo, hi) that is not backed, or UINT64_MAX if all are. */
uint64_t pc__blocks_hole(const pc_blocks *b, uint64_t lo, uint64_t hi);
void pc__blocks_free(pc_blocks *b);

#endif
