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

#endif
