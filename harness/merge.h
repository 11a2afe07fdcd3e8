/* merge.h: `crashcheck merge`: one report from the --json outputs of the shards of one
 * exploration (explore --shard I/N) or of one program's run (run --shard I/N). */
#ifndef CC_MERGE_H
#define CC_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct cc_merge_input {
  const char *name; /* the file it came from, for messages */
  const char *text; /* its --json output: one JSON object */
} cc_merge_input;

/* Merges `n` shards' outputs and writes the result to `out`: with `json`, one object of the
 * shape explore (or run) prints, with "shards" and "wall_seconds" added; else a summary.
 * Returns 0 if the merged result is clean, 1 if it has violations, 2 if an input is not
 * such an output or the shards are not of one exploration (why in `why`, nothing written). */
int cc_merge(const cc_merge_input *in, size_t n, bool json, FILE *out, char *why, size_t whylen);

#endif
