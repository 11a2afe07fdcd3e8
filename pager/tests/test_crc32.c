/* test_crc32.c: mp__crc32 must equal zlib's crc32 everywhere the pager may call it:
 * any length, any alignment, chained, and without touching bytes past the buffer; and a
 * checksum patched with mp__crc32_patch must equal the one computed over the whole message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "crc32.h"

/* Fixed seed so a failure reproduces. */
static void fill_random(unsigned char *p, size_t len, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15u + 1;
    for (size_t i = 0; i < len; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p[i] = (unsigned char)(s >> 24);
    }
}

static uint32_t ref_crc(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = (uint32_t)crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

static void expect_crc(uint32_t seed, const unsigned char *p, size_t len, const char *what)
{
    uint32_t want = ref_crc(seed, p, len);
    uint32_t got = mp__crc32(seed, p, len);
    if (got != want)
        fail_msg("%s: len %zu, addr %% 16 = %u, seed %08x: got %08x, zlib %08x", what, len,
                 (unsigned)((uintptr_t)p & 15), (unsigned)seed, (unsigned)got, (unsigned)want);
}

static void test_check_value(void **state)
{
    (void)state;
    assert_int_equal(mp__crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(mp__crc32(0, "", 0), 0);
    assert_int_equal(mp__crc32(0x12345678u, NULL, 0), 0x12345678u);
    /* 64 bytes of 'a' is the shortest input that takes the folding path. */
    unsigned char a[64];
    memset(a, 'a', sizeof a);
    assert_int_equal(mp__crc32(0, a, sizeof a), (uint32_t)crc32(0, a, sizeof a));
}

/* 0..1100 crosses every switch in the folding code: the 64-byte minimum,
 * the single-lane tail loop, the 4-lane loop, and the 8-lane loop (>= 256)
 * followed by each number of 64- and 16-byte leftovers. */
#define MAX_SMALL 1100

static void test_all_lengths_and_alignments(void **state)
{
    (void)state;
    unsigned char *buf = malloc(MAX_SMALL + 32);
    assert_non_null(buf);
    fill_random(buf, MAX_SMALL + 32, 1);
    unsigned char *base = buf + ((16 - ((uintptr_t)buf & 15)) & 15);
    for (size_t align = 0; align < 16; align++) {
        unsigned char *p = base + align;
        for (size_t len = 0; len <= MAX_SMALL; len++) {
            expect_crc(0, p, len, "lengths");
            expect_crc(0xFFFFFFFFu, p, len, "lengths");
            expect_crc((uint32_t)(len * 0x01000193u + align), p, len, "lengths");
        }
    }
    free(buf);
}

/* Runs of identical bytes catch lane mix-ups that random data might hide less
 * obviously, and all-zero input checks the pre/post inversion. */
static void test_patterns(void **state)
{
    (void)state;
    static const int bytes[] = {0x00, 0xFF, 0x80, 0x01};
    unsigned char buf[4096 + 7];
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
        memset(buf, bytes[i], sizeof buf);
        for (size_t len = 0; len <= sizeof buf; len += 7)
            expect_crc(0, buf, len, "patterns");
    }
}

static void test_large(void **state)
{
    (void)state;
    const size_t big = (16u << 20) + 13;
    unsigned char *buf = malloc(big + 1);
    assert_non_null(buf);
    fill_random(buf, big + 1, 2);
    static const size_t lens[] = {1024, 4096, 4096 + 13, 8192, 65536, 65536 + 100, 1u << 20};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        expect_crc(0, buf, lens[i], "large");
        expect_crc(0, buf + 1, lens[i], "large");
        expect_crc(0xDEADBEEFu, buf + 3, lens[i], "large");
    }
    expect_crc(0, buf, big, "16 MiB + 13");
    expect_crc(0, buf + 1, big, "16 MiB + 13");
    free(buf);
}

static void test_chaining(void **state)
{
    (void)state;
    enum { N = 700 };
    unsigned char buf[N];
    fill_random(buf, N, 3);
    uint32_t whole = (uint32_t)crc32(0, buf, N);
    for (size_t cut = 0; cut <= N; cut++) {
        uint32_t c = mp__crc32(0, buf, cut);
        c = mp__crc32(c, buf + cut, N - cut);
        if (c != whole)
            fail_msg("split at %zu: got %08x, want %08x", cut, (unsigned)c, (unsigned)whole);
    }
    /* Three pieces of a page, as a commit writing header + body + trailer would. */
    unsigned char page[4096];
    fill_random(page, sizeof page, 4);
    uint32_t c = mp__crc32(0, page, 40);
    c = mp__crc32(c, page + 40, 4000);
    c = mp__crc32(c, page + 4040, 56);
    assert_int_equal(c, (uint32_t)crc32(0, page, sizeof page));
}

static void test_selection(void **state)
{
    (void)state;
    assert_int_equal(mp__crc32_use("no-such-impl"), -1);
    assert_int_equal(mp__crc32_use(NULL), 0);
    const char *best = mp__crc32_impl();
    assert_true(strcmp(best, "isal") == 0 || strcmp(best, "zlib") == 0);
#ifdef MP_HAVE_ISAL
    assert_string_equal(best, "isal"); /* the library, wherever the build found it */
#endif
    /* What detection picked must be usable explicitly too. */
    assert_int_equal(mp__crc32_use(best), 0);
    assert_int_equal(mp__crc32_use("auto"), 0);
    assert_string_equal(mp__crc32_impl(), best);
}

/* Threads checksumming at once (ISA-L picks its code at its first call) must all get the
 * right answer. */
static void *race_worker(void *arg)
{
    const unsigned char *page = arg;
    uint32_t want = (uint32_t)crc32(0, page, 4096);
    for (int i = 0; i < 100; i++)
        if (mp__crc32(0, page, 4096) != want)
            return (void *)1;
    return NULL;
}

static void test_first_call_race(void **state)
{
    (void)state;
    static unsigned char page[4096];
    fill_random(page, sizeof page, 6);
    assert_int_equal(mp__crc32_use("auto"), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_worker, page), 0);
    for (int i = 0; i < 4; i++) {
        void *bad;
        assert_int_equal(pthread_join(t[i], &bad), 0);
        assert_null(bad);
    }
}

/* Buffers that start right after, or end right before, an inaccessible page:
 * any read outside [p, p + len) faults. */
static void test_guard_pages(void **state)
{
    (void)state;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = 3 * pg;
    unsigned char *map = mmap(NULL, data + 2 * pg, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map, pg, PROT_NONE), 0);
    assert_int_equal(mprotect(map + pg + data, pg, PROT_NONE), 0);
    unsigned char *lo = map + pg, *hi = map + pg + data;
    fill_random(lo, data, 5);

    for (size_t len = 0; len <= data; len += (len < 2 * MAX_SMALL ? 1 : 61)) {
        expect_crc(0, hi - len, len, "ends at guard");
        expect_crc(0, lo, len, "starts at guard");
        if (len + 16 <= data) {
            /* Unaligned start and unaligned end, both against a guard. */
            expect_crc(0, lo + (len % 16) + 1, len, "near low guard");
            expect_crc(0, hi - len - (len % 16) - 1, len, "near high guard");
        }
    }
    expect_crc(0, hi - data, data, "whole region");
    assert_int_equal(munmap(map, data + 2 * pg), 0);
}

/* ---- patched checksums ---------------------------------------------------------- */

/* The multiplication modulo P is zlib's: crc32_combine_op(a, 0, op) is op * a mod P. */
static void test_mulmod(void **state)
{
    (void)state;
    uint32_t v[2];
    for (uint64_t i = 0; i < 20000; i++) {
        fill_random((unsigned char *)v, sizeof v, i + 1);
        if (i % 7 == 0)
            v[0] = UINT32_C(1) << (i % 32); /* single terms */
        if (i % 11 == 0)
            v[1] = i % 3 ? 0xffffffffu : UINT32_C(1) << 31; /* all terms; x^0 */
        if (v[1] == 0) /* zlib's loop never ends on a zero operator */
            continue;
        uint32_t want = (uint32_t)crc32_combine_op(v[0], 0, v[1]);
        if (mp__crc32_mulmod(v[1], v[0]) != want || mp__crc32_mulmod(v[0], v[1]) != want)
            fail_msg("%08x * %08x: got %08x, zlib %08x", (unsigned)v[0], (unsigned)v[1],
                     (unsigned)mp__crc32_mulmod(v[1], v[0]), (unsigned)want);
    }
    assert_int_equal(mp__crc32_mulmod(0, 0x12345678u), 0);
    assert_int_equal(mp__crc32_mulmod(0x12345678u, 0), 0);
}

/* One replacement of n bytes at off, patched, against the CRC of the whole message. The new
 * message differs from the old one outside the run too (its bytes there must be ignored). */
static void expect_patch(const mp_crc_patch *c, unsigned char *msg, size_t off, const unsigned char *repl,
                         size_t n)
{
    static unsigned char other[8188];
    uint32_t before = mp__crc32(0, msg, c->len);
    for (size_t i = 0; i < c->len; i++)
        other[i] = (unsigned char)~msg[i];
    memcpy(other + off, repl, n);
    uint32_t term = mp__crc32_patch(c, msg, other, off, n);
    memcpy(msg + off, repl, n);
    uint32_t want = mp__crc32(0, msg, c->len);
    if ((before ^ term) != want)
        fail_msg("len %zu: %zu bytes at %zu: patched %08x, whole %08x", c->len, n, off,
                 (unsigned)(before ^ term), (unsigned)want);
}

/* Every offset of messages of the lengths a metadata block's checksum covers (and short and
 * odd ones): runs of 1 to 24 bytes, so every place a run can start and end within an 8-byte
 * chunk counted from the end, runs across chunks, runs that change only some of their bytes
 * (unchanged chunks inside a run), and runs that change nothing. */
static void test_patch_every_offset(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 7, 8, 9, 17, 64, 100, 1020, 4092, 8188};
    unsigned char msg[8188], repl[24];
    for (size_t li = 0; li < 2 * (sizeof lens / sizeof lens[0]); li++) {
        size_t len = lens[li / 2];
        mp_crc_patch c;
        assert_int_equal(mp__crc32_patch_init(&c, len), 0);
        if (li % 2) { /* the multiplication without the CPU's instruction too */
            if (!c.clmul) {
                mp__crc32_patch_free(&c);
                continue;
            }
            c.clmul = false;
        }
        fill_random(msg, len, len);
        uint64_t seed = 1;
        for (size_t off = 0; off < len; off++) {
            /* beyond the first and last 64 offsets, one in 5 (every residue still comes) */
            if (off >= 64 && len - off > 64 && off % 5)
                continue;
            for (size_t n = 1; n <= 24 && off + n <= len; n++) {
                fill_random(repl, n, ++seed);
                if (seed % 3 == 0) /* keep some bytes: unchanged chunks inside the run */
                    for (size_t i = 0; i < n; i++)
                        if (i % 9 < 8)
                            repl[i] = msg[off + i];
                expect_patch(&c, msg, off, repl, n);
            }
            unsigned char same = msg[off];
            expect_patch(&c, msg, off, &same, 1); /* no change in the run */
        }
        mp__crc32_patch_free(&c);
    }
}

/* A field of 1 to 8 bytes at every offset, given as the XOR of its old and new values. */
static void test_patch_delta(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 7, 8, 9, 17, 100, 4092, 8188};
    static unsigned char msg[8188];
    for (size_t li = 0; li < 2 * (sizeof lens / sizeof lens[0]); li++) {
        size_t len = lens[li / 2];
        mp_crc_patch c;
        assert_int_equal(mp__crc32_patch_init(&c, len), 0);
        c.clmul = c.clmul && li % 2 == 0;
        fill_random(msg, len, 3 * len);
        uint32_t crc = mp__crc32(0, msg, len);
        uint64_t seed = len;
        for (size_t off = 0; off < len; off++) {
            if (off >= 40 && len - off > 40 && off % 7)
                continue;
            for (size_t n = 1; n <= 8 && off + n <= len; n++) {
                unsigned char repl[8];
                fill_random(repl, n, ++seed);
                uint64_t delta = 0;
                for (size_t i = 0; i < n; i++)
                    delta |= (uint64_t)(msg[off + i] ^ repl[i]) << (8 * i);
                crc ^= mp__crc32_patch_term(&c, mp__crc32_patch_delta(&c, off, delta));
                memcpy(msg + off, repl, n);
                uint32_t want = mp__crc32(0, msg, len);
                if (crc != want)
                    fail_msg("len %zu: %zu bytes at %zu as a delta: patched %08x, whole %08x", len, n, off,
                             (unsigned)crc, (unsigned)want);
            }
        }
        mp__crc32_patch_free(&c);
    }
}

/* Many replacements of one message, their terms XORed together as a commit does: random
 * offsets and lengths (whole 4 KiB runs too), compared with the whole CRC after each batch. */
static void test_patch_random_batches(void **state)
{
    (void)state;
    static const size_t lens[] = {4092, 8188, 1000};
    for (size_t li = 0; li < 2 * (sizeof lens / sizeof lens[0]); li++) {
        size_t len = lens[li / 2];
        unsigned char *msg = malloc(len), *next = malloc(len), *repl = malloc(len);
        assert_non_null(msg);
        assert_non_null(next);
        assert_non_null(repl);
        mp_crc_patch c;
        assert_int_equal(mp__crc32_patch_init(&c, len), 0);
        c.clmul = c.clmul && li % 2 == 0; /* with the CPU's multiplication and without */
        fill_random(msg, len, 77 + len);
        uint32_t crc = mp__crc32(0, msg, len);
        uint64_t r = 5, sum = 0;
        for (int batch = 0; batch < 3000; batch++) {
            /* disjoint runs of one commit: each between the end of the last and the message's */
            int edits = 1 + batch % 6;
            size_t from = 0;
            memcpy(next, msg, len);
            for (int e = 0; e < edits && from < len; e++) {
                r = r * 6364136223846793005u + 1442695040888963407u;
                size_t room = len - from;
                size_t n = batch % 97 == 0 ? (size_t)(r >> 40) % room + 1
                                           : (size_t)(r >> 20) % (room < 16 ? room : 16) + 1;
                size_t off = from + (size_t)(r >> 33) % ((room - n) / 4 + 1);
                fill_random(repl, n, r);
                memcpy(next + off, repl, n);
                if (batch % 2) /* each run reduced, or the sum of the runs once */
                    crc ^= mp__crc32_patch(&c, msg, next, off, n);
                else
                    sum ^= mp__crc32_patch_sum(&c, msg, next, off, n);
                from = off + n;
            }
            crc ^= mp__crc32_patch_term(&c, sum);
            sum = 0;
            memcpy(msg, next, len);
            uint32_t want = mp__crc32(0, msg, len);
            if (crc != want)
                fail_msg("len %zu, batch %d: patched %08x, whole %08x", len, batch, (unsigned)crc,
                         (unsigned)want);
        }
        mp__crc32_patch_free(&c);
        free(msg);
        free(next);
        free(repl);
    }
}

int main(void)
{
    /* The value tests run once per code path the build has, so that one with ISA-L still
     * checks the zlib path. */
    const struct CMUnitTest value_tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_all_lengths_and_alignments),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_chaining),
        cmocka_unit_test(test_guard_pages),
    };
    const struct CMUnitTest dispatch_tests[] = {
        cmocka_unit_test(test_selection),
        cmocka_unit_test(test_first_call_race),
        cmocka_unit_test(test_mulmod),
        cmocka_unit_test(test_patch_every_offset),
        cmocka_unit_test(test_patch_random_batches),
        cmocka_unit_test(test_patch_delta),
    };
    static const char *const impls[] = {"isal", "zlib"};
    int failed = 0;
    for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
        if (mp__crc32_use(impls[i]) != 0) {
            printf("[ SKIPPED  ] crc32 %s: not in this build\n", impls[i]);
            continue;
        }
        char name[32];
        snprintf(name, sizeof name, "crc32 %s", impls[i]);
        failed += cmocka_run_group_tests_name(name, value_tests, NULL, NULL);
    }
    failed += cmocka_run_group_tests_name("crc32 dispatch", dispatch_tests, NULL, NULL);
    return failed != 0;
}
