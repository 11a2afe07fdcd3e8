/* hashset.h: a set of 64-bit hashes (open addressing), how explorers check each distinct
 * crash state once. */
#ifndef CC_HASHSET_H
#define CC_HASHSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cc_hashset {
  uint64_t *slots; /* 0 marks an empty slot */
  size_t cap, n;
} cc_hashset;

/* Adds h; true if it was new. Out of memory it says "new": a state checked twice, never one
 * skipped. */
bool cc_hashset_add(cc_hashset *s, uint64_t h);
void cc_hashset_free(cc_hashset *s);

#endif
