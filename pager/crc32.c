/* crc32.c: zlib-compatible CRC-32 (reflected 0xEDB88320) using carry-less multiply
 * folding on x86-64, because zlib's table code is several times too slow per commit. */
#include "crc32.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

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

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdatomic.h>

/*
 * The arithmetic, so the constants below can be re-derived and checked.
 *
 * Bits are read least-significant first, so a 16-byte little-endian load r stands
 * for the polynomial X with r = rev128(X) (bit i of r is the coefficient of
 * x^(127-i)); its low qword holds the high half H of X = H*x^64 + L. For
 * polynomials A, B of fewer than 64 coefficients,
 *     clmul(rev64(A), rev64(B)) = rev127(A*B) = rev128(A*B*x),
 * so every multiplier below is stored as rev64(x^(e-1) mod P) to cancel the x.
 * For a remainder K of degree < 32 that is rev32(K) << 32, which is what K()
 * and K2() build from the 32-bit table values below.
 *
 * Folding a lane forward by D bits (into the block D bits later) uses
 *     X*x^D = H*x^(64+D) + L*x^D == H*(x^(64+D) mod P) + L*(x^D mod P),
 * a sum of two 96-bit products, which XORs into the data there. Each pair
 * holds (for H, for L) = (x^(64+D-1), x^(D-1)) mod P as above.
 *
 * The 32-bit table values are rev32(x^n mod P) with P = x^32 + 0x04C11DB7
 * (normal form of 0xEDB88320); they can be regenerated with
 *     r = 1; repeat n times: r <<= 1; if (r >> 32) r ^= 0x104C11DB7;
 * followed by a 32-bit bit reversal. tests/test_crc32.c checks the result
 * against zlib, in every tier, on lengths that reach every fold distance.
 */
#define K(pair) K_I(pair)
#define K_I(for_h, for_l) _mm_set_epi64x((long long)((uint64_t)(for_l) << 32), \
                                         (long long)((uint64_t)(for_h) << 32))
/* The same pair in both halves of a 256-bit register, one per lane. */
#define K2(pair) K2_I(pair)
#define K2_I(for_h, for_l) _mm256_set_epi64x((long long)((uint64_t)(for_l) << 32), \
                                             (long long)((uint64_t)(for_h) << 32), \
                                             (long long)((uint64_t)(for_l) << 32), \
                                             (long long)((uint64_t)(for_h) << 32))

/*                  x^(64+D-1)   x^(D-1)       fold distance D in bits */
#define KP_1024 0x7d657a10u, 0x7406fa95u /* 1024: x^1087, x^1023 */
#define KP_512  0x653d9822u, 0xcad38e8fu /*  512: x^575,  x^511  */
#define KP_384  0x69ccfc0du, 0x2a283862u /*  384: x^447,  x^383  */
#define KP_256  0x9570d495u, 0x01b5fd1du /*  256: x^319,  x^255  */
#define KP_128  0x65673b46u, 0x9ba54c6fu /*  128: x^191,  x^127  */

/* The last 128 bits X still need X*x^32 mod P. x^96 and x^64 are pulled in
 * with x^95 and x^63 (the same off-by-one as above), then Barrett reduction
 * finishes the remaining 64 bits. */
#define KP_FINAL 0xccaa009eu, 0xb8bc6765u /* x^95, x^63 */
/* Barrett pair, both as rev33 (degree-32 polynomials, product read from the low
 * qword): mu = floor(x^64 / P) = 0x104D101DF, and P itself. */
#define K_BARRETT _mm_set_epi64x(0x1DB710641LL, 0x1F7011641LL)

#define CLMUL_TARGET __attribute__((target("pclmul,sse4.1")))
/* A superset of CLMUL_TARGET, so the 128-bit helpers inline into this tier. */
#define VCLMUL_TARGET __attribute__((target("vpclmulqdq,avx2,pclmul,sse4.1")))

/* Below this the setup and final reduction cost more than zlib's byte loop. */
#define CLMUL_MIN_LEN 64

CLMUL_TARGET static inline __m128i load16(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* Lane x, moved forward by the distance k encodes. */
CLMUL_TARGET static inline __m128i fold(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                         _mm_clmulepi64_si128(x, k, 0x11));
}

/*
 * Shared end of both tiers: x0..x3 are the four lanes covering the 64 bytes
 * before p, len (a multiple of 16) bytes at p remain. Returns the zlib-style
 * CRC of everything folded. Always inlined so that inside the 256-bit tier
 * it is compiled with VEX encodings like the rest of that function.
 */
CLMUL_TARGET static inline __attribute__((always_inline)) uint32_t
finish4(__m128i x0, __m128i x1, __m128i x2, __m128i x3, const unsigned char *p, size_t len)
{
    while (len >= 64) {
        const __m128i k = K(KP_512);
        x0 = _mm_xor_si128(fold(x0, k), load16(p));
        x1 = _mm_xor_si128(fold(x1, k), load16(p + 16));
        x2 = _mm_xor_si128(fold(x2, k), load16(p + 32));
        x3 = _mm_xor_si128(fold(x3, k), load16(p + 48));
        p += 64;
        len -= 64;
    }

    /* Fold the lanes into the last one independently rather than as a chain,
     * so the three multiplies overlap. */
    x3 = _mm_xor_si128(x3, _mm_xor_si128(fold(x0, K(KP_384)),
                                         _mm_xor_si128(fold(x1, K(KP_256)), fold(x2, K(KP_128)))));

    while (len >= 16) {
        x3 = _mm_xor_si128(fold(x3, K(KP_128)), load16(p));
        p += 16;
        len -= 16;
    }

    /* X*x^32 = H*x^96 + L*x^32: H times (x^96 mod P) lands in bits 32..127,
     * and L*x^32 is L's qword moved up by 4 bytes. Bits 0..31 stay zero. */
    const __m128i kf = K(KP_FINAL);
    __m128i s = _mm_xor_si128(_mm_clmulepi64_si128(x3, kf, 0x00),
                              _mm_slli_si128(_mm_srli_si128(x3, 8), 4));
    /* s = A*x^64 + B with A in bits 32..63 (a clean rev64(A) in the low
     * qword): A times (x^64 mod P) only reaches the high qword, beside B. */
    s = _mm_xor_si128(_mm_clmulepi64_si128(s, kf, 0x10), s);
    /* High qword is now rev64(T), T of degree < 64. Barrett: the quotient's
     * bits are the low 32 bits of T_hi*mu, which depend only on T_hi (the
     * low 32 bits of that qword), so no masking is needed going in. */
    const __m128i kb = K_BARRETT;
    __m128i q = _mm_clmulepi64_si128(s, kb, 0x01);
    /* The quotient's top half is garbage that q*P would spread into the
     * remainder bits, so clear it. */
    q = _mm_blend_epi16(q, _mm_setzero_si128(), 0xFC);
    q = _mm_clmulepi64_si128(q, kb, 0x10);
    /* Remainder = T_lo + (q*P mod x^32), both sitting in bits 32..63 of their
     * qwords. */
    uint32_t r = (uint32_t)_mm_extract_epi32(q, 1) ^ (uint32_t)_mm_extract_epi32(s, 3);
    return ~r;
}

/*
 * zlib-style CRC (pre- and post-inverted) of the first len & ~15 bytes of p;
 * needs len >= 64. The last len % 16 bytes are left to the caller because a
 * 16-byte load there would run past the buffer.
 */
CLMUL_TARGET static uint32_t crc32_clmul(uint32_t crc, const unsigned char *p, size_t len)
{
    /* Pre-inversion is XOR into the first 32 message bits. */
    const __m128i init = _mm_cvtsi32_si128((int)~crc);
    __m128i x0, x1, x2, x3;

    if (len >= 256) {
        /* Eight lanes: clmul latency is several cycles, and with four lanes the
         * multiplier would sit idle waiting on each lane's previous fold. */
        __m128i x4, x5, x6, x7;
        const __m128i k = K(KP_1024);
        x0 = _mm_xor_si128(load16(p), init);
        x1 = load16(p + 16);
        x2 = load16(p + 32);
        x3 = load16(p + 48);
        x4 = load16(p + 64);
        x5 = load16(p + 80);
        x6 = load16(p + 96);
        x7 = load16(p + 112);
        p += 128;
        len -= 128;
        while (len >= 128) {
            x0 = _mm_xor_si128(fold(x0, k), load16(p));
            x1 = _mm_xor_si128(fold(x1, k), load16(p + 16));
            x2 = _mm_xor_si128(fold(x2, k), load16(p + 32));
            x3 = _mm_xor_si128(fold(x3, k), load16(p + 48));
            x4 = _mm_xor_si128(fold(x4, k), load16(p + 64));
            x5 = _mm_xor_si128(fold(x5, k), load16(p + 80));
            x6 = _mm_xor_si128(fold(x6, k), load16(p + 96));
            x7 = _mm_xor_si128(fold(x7, k), load16(p + 112));
            p += 128;
            len -= 128;
        }
        /* Lane i and lane i+4 are 512 bits apart. */
        x0 = _mm_xor_si128(fold(x0, K(KP_512)), x4);
        x1 = _mm_xor_si128(fold(x1, K(KP_512)), x5);
        x2 = _mm_xor_si128(fold(x2, K(KP_512)), x6);
        x3 = _mm_xor_si128(fold(x3, K(KP_512)), x7);
    } else {
        x0 = _mm_xor_si128(load16(p), init);
        x1 = load16(p + 16);
        x2 = load16(p + 32);
        x3 = load16(p + 48);
        p += 64;
        len -= 64;
    }
    return finish4(x0, x1, x2, x3, p, len);
}

VCLMUL_TARGET static inline __m256i load32(const unsigned char *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

VCLMUL_TARGET static inline __m256i fold2(__m256i y, __m256i k)
{
    return _mm256_xor_si256(_mm256_clmulepi64_epi128(y, k, 0x00),
                            _mm256_clmulepi64_epi128(y, k, 0x11));
}

/*
 * Same contract as crc32_clmul. Some CPUs (AMD Zen 4 measured here) issue a
 * 128-bit clmul only every other cycle, which caps the 128-bit tier well
 * below what a 4 KiB commit needs; VPCLMULQDQ does two lanes per
 * instruction at the same rate. The eight 128-bit lanes of crc32_clmul live
 * in four 256-bit registers, in the same order.
 */
VCLMUL_TARGET static uint32_t crc32_vclmul(uint32_t crc, const unsigned char *p, size_t len)
{
    if (len < 256)
        return crc32_clmul(crc, p, len);

    const __m256i k = K2(KP_1024);
    __m256i y0 = _mm256_xor_si256(load32(p), _mm256_set_epi32(0, 0, 0, 0, 0, 0, 0, (int)~crc));
    __m256i y1 = load32(p + 32);
    __m256i y2 = load32(p + 64);
    __m256i y3 = load32(p + 96);
    p += 128;
    len -= 128;
    while (len >= 128) {
        y0 = _mm256_xor_si256(fold2(y0, k), load32(p));
        y1 = _mm256_xor_si256(fold2(y1, k), load32(p + 32));
        y2 = _mm256_xor_si256(fold2(y2, k), load32(p + 64));
        y3 = _mm256_xor_si256(fold2(y3, k), load32(p + 96));
        p += 128;
        len -= 128;
    }
    /* Register i and register i+2 are 512 bits apart. */
    const __m256i k512 = K2(KP_512);
    y0 = _mm256_xor_si256(fold2(y0, k512), y2);
    y1 = _mm256_xor_si256(fold2(y1, k512), y3);
    return finish4(_mm256_castsi256_si128(y0), _mm256_extracti128_si256(y0, 1),
                   _mm256_castsi256_si128(y1), _mm256_extracti128_si256(y1, 1), p, len);
}

enum { IMPL_UNKNOWN = 0, IMPL_ZLIB, IMPL_CLMUL, IMPL_VCLMUL };
static const char *const impl_names[] = {"auto", "zlib", "pclmul", "vpclmul"};

/* Racing first callers all compute and store the same value, so a relaxed
 * atomic is enough and no constructor or lock is needed. */
static _Atomic int crc_impl;

static int impl_supported(int impl)
{
    /* Needed when our first caller is itself a constructor running before
     * libgcc's; cheap and idempotent otherwise. */
    __builtin_cpu_init();
    switch (impl) {
    case IMPL_ZLIB:
        return 1;
    case IMPL_CLMUL:
        return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    case IMPL_VCLMUL:
        /* avx2 also tells us the OS saves ymm state. */
        return impl_supported(IMPL_CLMUL) && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("vpclmulqdq");
    default:
        return 0;
    }
}

static int crc_impl_choose(void)
{
    int c = atomic_load_explicit(&crc_impl, memory_order_relaxed);
    if (c != IMPL_UNKNOWN)
        return c;
    c = IMPL_VCLMUL;
    while (!impl_supported(c))
        c--;
    atomic_store_explicit(&crc_impl, c, memory_order_relaxed);
    return c;
}

int mp__crc32_use(const char *name)
{
    int c = IMPL_UNKNOWN;
    if (name != NULL) {
        while (c < IMPL_VCLMUL && strcmp(name, impl_names[c]) != 0)
            c++;
        if (strcmp(name, impl_names[c]) != 0 || (c != IMPL_UNKNOWN && !impl_supported(c)))
            return -1;
    }
    atomic_store_explicit(&crc_impl, c, memory_order_relaxed);
    return 0;
}

const char *mp__crc32_impl(void)
{
    return impl_names[crc_impl_choose()];
}

uint32_t mp__crc32(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    if (len >= CLMUL_MIN_LEN) {
        int c = crc_impl_choose();
        if (c >= IMPL_CLMUL) {
            size_t bulk = len & ~(size_t)15;
            crc = c == IMPL_VCLMUL ? crc32_vclmul(crc, p, bulk) : crc32_clmul(crc, p, bulk);
            p += bulk;
            len -= bulk;
        }
    }
    return crc32_zlib(crc, p, len);
}

#else /* !__x86_64__ */

int mp__crc32_use(const char *name)
{
    return name == NULL || strcmp(name, "auto") == 0 || strcmp(name, "zlib") == 0 ? 0 : -1;
}

const char *mp__crc32_impl(void)
{
    return "zlib";
}

uint32_t mp__crc32(uint32_t crc, const void *buf, size_t len)
{
    return crc32_zlib(crc, buf, len);
}

#endif
