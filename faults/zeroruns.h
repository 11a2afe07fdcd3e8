/* zeroruns.h: a file's initial content as the runs of 4 KiB blocks that hold a non-zero
 * byte, internal to libpowercut. A file the shim starts tracking is often mostly zeros
 * (reserved with fallocate, grown by ftruncate): the model's two copies come zeroed from
 * calloc, and the trace's FILEZ record (trace.c) carries the runs alone, so the zero blocks
 * are neither copied nor written, nor faulted in on either side. */
#ifndef PC_ZERORUNS_H
#define PC_ZERORUNS_H

#include "powercut.h"

#include <stdint.h>
#include <string.h>

#define PC_ZERO_BLOCK 4096u

/* 1 if the n bytes at p are all zero: one compare of the range with itself shifted by a byte,
 * at the vector speed memcmp has. */
static inline int pc__all_zero(const uint8_t *p, uint64_t n)
{
    return !n || (p[0] == 0 && (n == 1 || memcmp(p, p + 1, (size_t)(n - 1)) == 0));
}

/* The first run at or after `from` (a block boundary of p, whose offset 0 is one too) of
 * blocks of the n bytes at p that hold a non-zero byte: its start, and its end in *end
 * (at most n). n when there is none. */
static inline uint64_t pc__next_data(const uint8_t *p, uint64_t n, uint64_t from, uint64_t *end)
{
    uint64_t o = from;
    while (o < n) {
        uint64_t e = n - o < PC_ZERO_BLOCK ? n : o + PC_ZERO_BLOCK;
        if (!pc__all_zero(p + o, e - o)) break;
        o = e;
    }
    uint64_t e = o;
    while (e < n) {
        uint64_t b = n - e < PC_ZERO_BLOCK ? n : e + PC_ZERO_BLOCK;
        if (pc__all_zero(p + e, b - e)) break;
        e = b;
    }
    *end = e;
    return o;
}

/* The trace's FILEZ record, written in pieces (trace.c): the header, the runs in order of
 * offset, the end. pc_tw_file writes one whole. */
int pc__tw_file_begin(pc_tw *w, uint32_t id, const char *name, uint64_t size);
int pc__tw_file_run(pc_tw *w, uint64_t off, const void *data, uint64_t len);
int pc__tw_file_end(pc_tw *w);

/* A file of `size` zero bytes added to the model as pc_model_add_file adds one (model.c),
 * then its initial content filled in: [off, off + len) of both its volatile and durable
 * copies, within its size. */
int pc__model_add_zeroed(pc_model *m, const char *name, uint64_t size, uint32_t *id_out);
int pc__model_fill(pc_model *m, uint32_t id, uint64_t off, const void *data, uint64_t len);

#endif
