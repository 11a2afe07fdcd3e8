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
 * final inversion: those cancel) of A ^ B, which is zero but for the changed bytes. So the new
 * CRC costs a little work per changed 8 bytes, against a pass over the whole block.
 *
 * Polynomials are in zlib's reflected form: bit 31 of a word is the coefficient of x^0, and an
 * 8-byte chunk of a message, loaded little-endian, is itself a reflected polynomial of 64
 * terms (bit 63 is x^0: bit 0 of its first byte, the first bit the CRC takes, has the highest
 * degree). Chunks are counted back from the message's end: chunk q holds the bytes
 * [len - 8q - 8, len - 8q) (the first one starts before byte 0 when len % 8: those bytes are
 * zero in A ^ B). Chunk q's delta D contributes D * x^32 * x^(64q) mod P to the bare remainder;
 * with D = Dh + x^32 Dl (Dh its high word, x^0..x^31), that is Dh * x^(32 + 64q) + Dl *
 * x^(64 + 64q): two carry-less multiplications of 32 by 32 bits by powers of x from the
 * handle's table (mp_crc_patch.pow[j] = x^(32j) mod P), XORed into one 64-bit sum that is
 * reduced modulo P once, at the end. */

/* v * x^8 mod P: the step of the byte-wise CRC over a zero byte. */
static inline uint32_t step0(const z_crc_t *t, uint32_t v)
{
    return (v >> 8) ^ (uint32_t)t[v & 0xff];
}

/* The carry-less product of two words. Bit j of a and bit l of b are the coefficients of
 * x^(31-j) and x^(31-l), so bit j+l of the product is that of x^(62-j-l). */
static uint64_t clmul_soft(uint32_t a, uint32_t b)
{
    uint64_t prod = 0;
    for (unsigned j = 0; j < 32; j++) /* branch-free, so that the rounds overlap */
        prod ^= ((uint64_t)b << j) & (0 - (uint64_t)(a >> j & 1));
    return prod;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <wmmintrin.h>
#define HAVE_CLMUL_HW 1
__attribute__((target("pclmul,sse2"))) static inline uint64_t clmul_hw(uint32_t a, uint32_t b)
{
    __m128i x = _mm_cvtsi32_si128((int)a), y = _mm_cvtsi32_si128((int)b);
    return (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(x, y, 0));
}
#endif

static inline uint64_t clmul(bool hw, uint32_t a, uint32_t b)
{
#ifdef HAVE_CLMUL_HW
    if (hw)
        return clmul_hw(a, b);
#else
    (void)hw;
#endif
    return clmul_soft(a, b);
}

/* A sum of carry-less products, modulo P. Shifted left once it is the reflected form of 64
 * terms: its high word is x^0..x^31 as it stands, its low word x^32 times a reflected word,
 * which four zero-byte steps reduce. Those steps are linear in the word, so a table per byte
 * of it (mp_crc_patch.red) does them at once, four loads in parallel instead of in a chain. */
static uint32_t reduce_steps(const z_crc_t *t, uint64_t prods)
{
    uint64_t r = prods << 1;
    uint32_t lo = (uint32_t)r;
    for (int i = 0; i < 4; i++)
        lo = step0(t, lo);
    return (uint32_t)(r >> 32) ^ lo;
}

/* v * x^32 mod P, by the tables */
static inline uint32_t mulx32(const mp_crc_patch *c, uint32_t v)
{
    const uint32_t *red = c->red;
    return red[v & 0xff] ^ red[256 + (v >> 8 & 0xff)] ^ red[512 + (v >> 16 & 0xff)] ^ red[768 + (v >> 24)];
}

static inline uint32_t reduce(const mp_crc_patch *c, uint64_t prods)
{
    uint64_t r = prods << 1;
    return (uint32_t)(r >> 32) ^ mulx32(c, (uint32_t)r);
}

int mp__crc32_patch_init(mp_crc_patch *c, size_t len)
{
    const z_crc_t *t = get_crc_table();
    size_t n = 2 * (len / 8) + 4;
    uint32_t *pow = malloc((n + 1024) * sizeof *pow);
    if (pow == NULL)
        return -1;
    /* red: four zero-byte steps of each byte value at each place, from the steps of its single
     * bits (the map is linear); pow: each power x^32 times the last, by red. A handle builds
     * them at its first commit, so they cost a few microseconds, not a step per entry. */
    uint32_t *red = pow + n;
    for (unsigned i = 0; i < 4; i++) {
        red[256 * i] = 0;
        for (unsigned bit = 0; bit < 8; bit++) {
            uint32_t w = UINT32_C(1) << (8 * i + bit);
            for (int k = 0; k < 4; k++)
                w = step0(t, w);
            for (uint32_t v = 0; v < (1u << bit); v++)
                red[256 * i + ((1u << bit) | v)] = w ^ red[256 * i + v];
        }
    }
    c->len = len;
    c->pow = pow;
    c->red = red;
#ifdef HAVE_CLMUL_HW
    c->clmul = __builtin_cpu_supports("pclmul");
#else
    c->clmul = false;
#endif
    pow[0] = UINT32_C(1) << 31; /* x^0 */
    for (size_t j = 1; j < n && j < 5; j++)
        pow[j] = mulx32(c, pow[j - 1]);
    /* then four chains, each x^128 times its last: they overlap where one chain would wait */
    for (size_t j = 5; j < n; j++)
        pow[j] = reduce(c, clmul(c->clmul, pow[j - 4], pow[4]));
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
#ifdef HAVE_CLMUL_HW
    return reduce_steps(get_crc_table(), clmul(__builtin_cpu_supports("pclmul"), a, b));
#else
    return reduce_steps(get_crc_table(), clmul(false, a, b));
#endif
}

static inline uint64_t get64le(const unsigned char *p)
{
    uint64_t v;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&v, p, 8);
#else
    v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
#endif
    return v;
}

/* The unreduced sum of the run's chunks (see the top of this section), with the carry-less
 * multiplication mul: inlined into both callers below, so that where the CPU has PCLMULQDQ
 * the instruction is inlined too. */
typedef uint64_t (*clmul_fn)(uint32_t a, uint32_t b);
static inline __attribute__((always_inline)) uint64_t patch_sum(const mp_crc_patch *c, const unsigned char *a,
                                                                const unsigned char *b, size_t off, size_t n,
                                                                clmul_fn mul)
{
    const size_t len = c->len, end = off + n;
    uint64_t sum = 0;
    for (size_t q = (len - 1 - off) / 8 + 1; q-- > (len - end) / 8;) {
        uint64_t d = 0;
        if (len - 8 * q >= 8) {
            /* the chunk's 8 bytes, less those outside [off, end) */
            size_t at = len - 8 * q - 8;
            d = get64le(a + at) ^ get64le(b + at);
            if (at < off)
                d &= ~UINT64_C(0) << (8 * (off - at));
            if (at + 8 > end)
                d &= ~UINT64_C(0) >> (8 * (at + 8 - end));
        } else { /* the first chunk, when len % 8: its bytes before byte 0 count as zeros */
            size_t have = len - 8 * q;
            for (size_t i = off; i < have && i < end; i++)
                d |= (uint64_t)(a[i] ^ b[i]) << (8 * (8 - have + i));
        }
        if (d)
            sum ^= mul((uint32_t)(d >> 32), c->pow[2 * q + 1]) ^ mul((uint32_t)d, c->pow[2 * q + 2]);
    }
    return sum;
}

static uint64_t patch_sum_soft(const mp_crc_patch *c, const unsigned char *a, const unsigned char *b, size_t off,
                               size_t n)
{
    return patch_sum(c, a, b, off, n, clmul_soft);
}

#ifdef HAVE_CLMUL_HW
__attribute__((target("pclmul,sse2"))) static uint64_t patch_sum_hw(const mp_crc_patch *c, const unsigned char *a,
                                                                     const unsigned char *b, size_t off, size_t n)
{
    return patch_sum(c, a, b, off, n, clmul_hw);
}
#endif

/* A delta of at most 8 bytes at off, as a little-endian word: it lies in the chunk of its first
 * byte, shifted by that byte's place in it, and what passes the chunk's end in the next one. */
static inline __attribute__((always_inline)) uint64_t delta_sum(const mp_crc_patch *c, size_t off, uint64_t delta,
                                                                clmul_fn mul)
{
    const size_t q = (c->len - 1 - off) / 8;
    const unsigned shift = 7 - (unsigned)((c->len - 1 - off) % 8);
    uint64_t d = delta << (8 * shift), sum;
    sum = mul((uint32_t)(d >> 32), c->pow[2 * q + 1]) ^ mul((uint32_t)d, c->pow[2 * q + 2]);
    if (shift && (d = delta >> (64 - 8 * shift)) != 0)
        sum ^= mul((uint32_t)(d >> 32), c->pow[2 * q - 1]) ^ mul((uint32_t)d, c->pow[2 * q]);
    return sum;
}

#ifdef HAVE_CLMUL_HW
__attribute__((target("pclmul,sse2"))) static uint64_t delta_sum_hw(const mp_crc_patch *c, size_t off, uint64_t delta)
{
    return delta_sum(c, off, delta, clmul_hw);
}
#endif

uint64_t mp__crc32_patch_delta(const mp_crc_patch *c, size_t off, uint64_t delta)
{
    if (delta == 0)
        return 0;
#ifdef HAVE_CLMUL_HW
    if (c->clmul)
        return delta_sum_hw(c, off, delta);
#endif
    return delta_sum(c, off, delta, clmul_soft);
}

uint64_t mp__crc32_patch_sum(const mp_crc_patch *c, const void *old_msg, const void *new_msg, size_t off, size_t n)
{
    if (n == 0)
        return 0;
#ifdef HAVE_CLMUL_HW
    if (c->clmul)
        return patch_sum_hw(c, old_msg, new_msg, off, n);
#endif
    return patch_sum_soft(c, old_msg, new_msg, off, n);
}

uint32_t mp__crc32_patch_term(const mp_crc_patch *c, uint64_t sum)
{
    return reduce(c, sum);
}

uint32_t mp__crc32_patch(const mp_crc_patch *c, const void *old_msg, const void *new_msg, size_t off, size_t n)
{
    return reduce(c, mp__crc32_patch_sum(c, old_msg, new_msg, off, n));
}
