/* hashset.c: a set of 64-bit hashes, open addressing, doubled at half full. */
#include "hashset.h"

#include <stdlib.h>

bool cc_hashset_add(cc_hashset *s, uint64_t h) {
  if (!h) h = 1; /* 0 is stored as 1 (0 marks an empty slot) */
  if (2 * (s->n + 1) > s->cap) {
    cc_hashset bigger = {calloc(s->cap ? s->cap * 2 : 1024, 8), s->cap ? s->cap * 2 : 1024, 0};
    if (!bigger.slots) return true;
    for (size_t i = 0; i < s->cap; i++)
      if (s->slots[i]) cc_hashset_add(&bigger, s->slots[i]);
    free(s->slots);
    *s = bigger;
  }
  for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
    if (s->slots[i] == h) return false;
    if (!s->slots[i]) {
      s->slots[i] = h;
      s->n++;
      return true;
    }
  }
}

void cc_hashset_free(cc_hashset *s) {
  free(s->slots);
  *s = (cc_hashset){0};
}
