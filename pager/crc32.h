/* crc32.h: the pager's page checksum, bit-for-bit zlib's crc32(), computed by ISA-L where
 * the build has it, so that checksumming a 4 KiB page costs a small fraction of a commit. */
#ifndef MP_CRC32_H
#define MP_CRC32_H

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

/* A block's CRC patched rather than recomputed (crc32.c says why it holds): for a message of
 * `len` bytes whose CRC is crc, replacing the n bytes at offset off, old_bytes, by new_bytes
 * gives crc ^ mp__crc32_patch(c, off, old_bytes, new_bytes, n); several replacements XOR their
 * terms in. The cost follows the bytes that differ, not len. mp__crc32_patch_init builds the
 * table of powers of x for messages of len bytes (len / 2 + 8 bytes of heap): -1 without
 * memory. off + n <= len. */
typedef struct mp_crc_patch {
    size_t len;
    uint32_t *pow; /* x^(64 q) mod P, for q = 0 .. len / 8 + 1 */
} mp_crc_patch;
int mp__crc32_patch_init(mp_crc_patch *c, size_t len);
void mp__crc32_patch_free(mp_crc_patch *c);
uint32_t mp__crc32_patch(const mp_crc_patch *c, size_t off, const void *old_bytes, const void *new_bytes,
                         size_t n);
/* a * b mod P, both in zlib's reflected form (crc32_combine_op's multiplication). */
uint32_t mp__crc32_mulmod(uint32_t a, uint32_t b);

#endif
