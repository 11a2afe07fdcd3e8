/* crc32.c: the pager's page checksum, zlib's CRC-32, computed by Intel ISA-L where the build
 * found it (crc32_gzip_refl: the same value and chaining, its own dispatch to the fastest
 * code the CPU runs), else by zlib.
 *
 * Why a library: this file carried 300 lines of carry-less-multiply folding, because zlib's
 * table code takes ~1.8 us per 4 KiB page on the 2-core EPYC VM this was measured on, several
 * times a commit's budget. ISA-L takes 140 ns per 4 KiB there against 261 ns for that code
 * (24 against 30 ns at 512 bytes, 595 against 907 ns at 16 KiB; same values, chained too), so
 * the hand-written code went. A build without ISA-L (OSS-Fuzz's images, fuzz/build.sh) has
 * zlib's speed: correct, only slower. The Makefile defines MP_HAVE_ISAL when the compiler
 * finds <isa-l/crc.h>, and then links -lisal. */
#include "crc32.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

#ifdef MP_HAVE_ISAL
#include <isa-l/crc.h>
#endif

/* zlib counts in uInt, so feed it in pieces that fit. */
static uint32_t crc32_zlib(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len > 0) {
        uInt n = len > (size_t)(UINT_MAX & ~0xFFFu) ? (UINT_MAX & ~0xFFFu) : (uInt)len;
        crc = (uint32_t)crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

#ifdef MP_HAVE_ISAL
static uint32_t crc32_isal(uint32_t crc, const unsigned char *p, size_t len)
{
    return len ? crc32_gzip_refl(crc, p, (uint64_t)len) : crc;
}
#endif

typedef uint32_t (*crc_fn)(uint32_t crc, const unsigned char *p, size_t len);

static const struct {
    const char *name;
    crc_fn fn;
} impls[] = {
#ifdef MP_HAVE_ISAL
    {"isal", crc32_isal},
#endif
    {"zlib", crc32_zlib},
};

/* The first of impls[] unless a test chose another (mp__crc32_use); set before any thread
 * that checksums starts, so a plain variable. */
static size_t chosen;

int mp__crc32_use(const char *name)
{
    if (name == NULL || strcmp(name, "auto") == 0) {
        chosen = 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
        if (strcmp(name, impls[i].name) == 0) {
            chosen = i;
            return 0;
        }
    return -1;
}

const char *mp__crc32_impl(void)
{
    return impls[chosen].name;
}

uint32_t mp__crc32(uint32_t crc, const void *buf, size_t len)
{
    return impls[chosen].fn(crc, buf, len);
}
