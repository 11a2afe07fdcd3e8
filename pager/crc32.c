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
#include <stdbool.h>
#include <stdlib.h>
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

/* ---- patching a checksum ----------------------------------------------------------
 *
 * A 0.3 commit rewrites a leaf or a root block that differs from one whose CRC the handle
 * computed itself in a few bytes only (a bitmap word, the header's counts). CRC-32 is linear:
 * for two messages of the same length, crc(A) ^ crc(B) is the bare remainder (no initial or
 * final inversion: those cancel) of A ^ B, which is zero but for the changed bytes. A run of
 * changed bytes followed by d unchanged ones contributes raw(run) * x^(8d) mod P. So the new
 * CRC costs a few table steps over the changed bytes and one multiplication modulo P per run,
 * against a pass over the whole block.
 *
 * Polynomials are in zlib's reflected form: bit 31 of a word is the coefficient of x^0. The
 * distances to the end are taken in whole 8-byte chunks counted back from the end of the
 * message: a chunk's leading bytes before the run are zero in A ^ B, and leading zeros leave a
 * bare remainder unchanged, so only multiples of 8 bytes need a power of x. Those powers,
 * x^(64 q) for each chunk q, are the handle's table (mp_crc_patch), built from x^0 by eight
 * zero-byte steps each. */

/* v * x^8 mod P: the step of the byte-wise CRC over a zero byte. */
static inline uint32_t step0(const z_crc_t *t, uint32_t v)
{
    return (v >> 8) ^ (uint32_t)t[v & 0xff];
}

int mp__crc32_patch_init(mp_crc_patch *c, size_t len)
{
    const z_crc_t *t = get_crc_table();
    size_t n = len / 8 + 2;
    uint32_t *k = malloc(n * sizeof *k);
    if (k == NULL)
        return -1;
    k[0] = UINT32_C(1) << 31; /* x^0 */
    for (size_t q = 1; q < n; q++) {
        uint32_t v = k[q - 1];
        for (int i = 0; i < 8; i++)
            v = step0(t, v);
        k[q] = v;
    }
    c->len = len;
    c->pow = k;
    return 0;
}

void mp__crc32_patch_free(mp_crc_patch *c)
{
    free(c->pow);
    c->pow = NULL;
    c->len = 0;
}

uint32_t mp__crc32_mulmod(uint32_t a, uint32_t b)
{
    /* The carry-less product: bit j of a and bit l of b are the coefficients of x^(31-j) and
     * x^(31-l), so bit j+l of the product is that of x^(62-j-l): one shift left makes it the
     * reflected form of 64 bits (bit 63 is x^0). Branch-free, so the 32 rounds overlap. */
    uint64_t prod = 0;
    for (unsigned j = 0; j < 32; j++)
        prod ^= ((uint64_t)b << j) & (0 - (uint64_t)(a >> j & 1));
    prod <<= 1;
    /* The high half is x^0..x^31 as it stands; the low half is x^32 times a reflected word,
     * which four zero-byte steps reduce. */
    const z_crc_t *t = get_crc_table();
    uint32_t lo = (uint32_t)prod;
    for (int i = 0; i < 4; i++)
        lo = step0(t, lo);
    return (uint32_t)(prod >> 32) ^ lo;
}

uint32_t mp__crc32_patch(const mp_crc_patch *c, size_t off, const void *old_bytes, const void *new_bytes,
                         size_t n)
{
    const unsigned char *a = old_bytes, *b = new_bytes;
    const z_crc_t *t = get_crc_table();
    const size_t len = c->len, end = off + n;
    uint32_t out = 0, acc = 0;
    bool open = false;
    if (n == 0)
        return 0;
    /* Chunk q holds the bytes at [len - 8q - 8, len - 8q): from the chunk of the first byte
     * down to the chunk of the last. A chunk without change closes the run before it. */
    size_t q_first = (len - 1 - off) / 8, q_last = (len - end) / 8;
    for (size_t q = q_first + 1; q-- > q_last;) {
        unsigned char d[8];
        bool any = false;
        for (size_t i = 0; i < 8; i++) {
            size_t pos = len - 8 * q - 8 + i; /* wraps in the first chunk, when len % 8: past end */
            d[i] = pos >= off && pos < end ? (unsigned char)(a[pos - off] ^ b[pos - off]) : 0;
            any |= d[i] != 0;
        }
        if (!any) {
            if (open)
                out ^= mp__crc32_mulmod(acc, c->pow[q + 1]);
            open = false;
            acc = 0;
            continue;
        }
        for (size_t i = 0; i < 8; i++)
            acc = (acc >> 8) ^ (uint32_t)t[(acc ^ d[i]) & 0xff];
        open = true;
    }
    if (open)
        out ^= mp__crc32_mulmod(acc, c->pow[q_last]);
    return out;
}
