/* jobs.h: crash states checked in parallel processes (--jobs) and split across runs (--shard),
 * shared by `crashcheck explore` and `crashcheck run`. */
#ifndef CC_JOBS_H
#define CC_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Whether the state of hash h is checked by worker `job` of `jobs` in shard `shard` of
 * `shards`: the shard takes h % shards, and its workers split those by the rest of the hash,
 * so a shard checks the same states whatever its number of workers, and the shards of one
 * run (each with any --jobs) check every state exactly once. */
static inline bool cc_takes(uint64_t h, unsigned shard, unsigned shards, unsigned job, unsigned jobs) {
  if (shards > 1 && h % shards != shard) return false;
  return jobs <= 1 || (h / (shards ? shards : 1)) % jobs == job;
}

/* Forks `jobs` workers (at most 64). Worker j runs work(ctx, j, fd), which writes its results
 * to fd, and exits 0 if work returned 0. The parent then calls merge(ctx, j, in) for each j
 * in order, `in` reading what worker j wrote, and waits for it. Returns CC_OK, CC_ESETUP if a
 * pipe or fork failed or a worker died or failed before its results were whole (merge
 * returned non-zero), with *why saying which. */
int cc_run_jobs(unsigned jobs, int (*work)(void *ctx, unsigned j, int fd),
                int (*merge)(void *ctx, unsigned j, FILE *in), void *ctx, char *why, size_t whylen);

/* Writes len bytes to fd whole; 0, or -1. */
int cc_send(int fd, const void *buf, size_t len);

#endif
