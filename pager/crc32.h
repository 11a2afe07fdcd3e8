/* crc32.h: the pager's page checksum, bit-for-bit zlib's crc32(), computed by ISA-L where
 * the build has it, so that checksumming a 4 KiB page costs a small fraction of a commit. */
#ifndef MP_CRC32_H
#define MP_CRC32_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Same value and chaining as zlib: mp__crc32(0, buf, len) == crc32(0, buf, len), and
 * feeding a previous result back as crc continues the checksum over the next bytes.
 * buf may be NULL only when len is 0 (then crc comes back unchanged). Thread-safe. */
uint32_t mp__crc32(uint32_t crc, const void *buf, size_t len);

/* Which code mp__crc32 runs: "isal" (Intel ISA-L, when the build found it) or "zlib",
 * for benchmarks and logs to say what they measured. */
const char *mp__crc32_impl(void);

/* Tests only, so that both paths get checked: forces one of the names above, or
 * "auto"/NULL to go back to the fastest. Returns -1 (and changes nothing) for an unknown
 * name or one the build lacks. Not thread-safe: call it before checksumming threads start. */
int mp__crc32_use(const char *name);

/* A block's CRC patched rather than recomputed (crc32.c says why it holds): old_msg and
 * new_msg are two messages of `len` bytes that may differ only in the n bytes at offset off
 * (bytes outside that run are ignored, as if equal): then crc(new_msg) = crc(old_msg) ^
 * mp__crc32_patch(c, old_msg, new_msg, off, n), and the terms of several disjoint runs XOR.
 * The cost follows the 8-byte chunks of the run, not len. mp__crc32_patch_init builds the
 * table of powers of x for messages of len bytes (len + 4 KiB of heap) and chooses the
 * CPU's carry-less multiplication where there is one (clmul, which tests may clear): -1
 * without memory. off + n <= len. */
typedef struct mp_crc_patch {
    size_t len;
    uint32_t *pow;        /* x^(32 j) mod P, for j = 0 .. 2 (len / 8) + 3 */
    const uint32_t *red;  /* x^32 times each byte of a word, mod P (4 x 256, after pow) */
    bool clmul;           /* PCLMULQDQ, else a loop of shifts */
} mp_crc_patch;
int mp__crc32_patch_init(mp_crc_patch *c, size_t len);
void mp__crc32_patch_free(mp_crc_patch *c);
uint32_t mp__crc32_patch(const mp_crc_patch *c, const void *old_msg, const void *new_msg, size_t off, size_t n);
/* The same in two steps, for several disjoint runs of one pair of messages: their sums XOR,
 * and one reduction of the total gives the term (one reduction instead of one a run). */
uint64_t mp__crc32_patch_sum(const mp_crc_patch *c, const void *old_msg, const void *new_msg, size_t off, size_t n);
uint32_t mp__crc32_patch_term(const mp_crc_patch *c, uint64_t sum);
/* The sum for a run of at most 8 bytes at off given as the XOR of its old and new bytes, a
 * little-endian word (its bytes past the run zero): for fields whose old and new values the
 * caller holds, no reading back of what it just stored. off + the run's length <= len. */
uint64_t mp__crc32_patch_delta(const mp_crc_patch *c, size_t off, uint64_t delta);
/* a * b mod P, both in zlib's reflected form (crc32_combine_op's multiplication). */
uint32_t mp__crc32_mulmod(uint32_t a, uint32_t b);

#endif
