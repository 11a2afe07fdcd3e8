/* test_model.c: unit tests of the durability model and the trace: effects of syncs, tears,
 * early writeback, fsync-gate loss, determinism, and trace replay matching the live model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../diskfull.h"
#include "../handover.h"
#include "../powercut.h"
#include "../zeroruns.h"

#define SEC 512

static pc_model *mk(void)
{
    pc_model *m;
    assert_int_equal(pc_model_new(SEC, &m), PC_OK);
    uint32_t id;
    assert_int_equal(pc_model_add_file(m, "f", NULL, 0, &id), PC_OK);
    assert_int_equal(id, 0);
    return m;
}

static void wr(pc_model *m, uint64_t off, uint64_t len, int byte)
{
    uint8_t *b = malloc(len);
    memset(b, byte, len);
    assert_int_equal(pc_model_write(m, 0, off, b, len), PC_OK);
    free(b);
}

static void sync_step(pc_model *m, uint64_t off, uint64_t len)
{
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, 0, off, len), PC_OK);
    assert_int_equal(pc_model_step_end(m), PC_OK);
}

static uint8_t *image(pc_model *m, const char *spec, uint64_t *len)
{
    pc_crash c;
    assert_int_equal(pc_crash_parse(spec, &c), PC_OK);
    uint8_t *img;
    assert_int_equal(pc_model_image(m, 0, &c, &img, len), PC_OK);
    return img;
}

static int all_bytes(const uint8_t *b, uint64_t off, uint64_t len, int byte)
{
    for (uint64_t i = off; i < off + len; i++)
        if (b[i] != byte) return 0;
    return 1;
}

static void test_unsynced_absent_synced_present(void **st)
{
    (void)st;
    pc_model *m = mk();
    wr(m, 0, 3 * SEC, 'a');
    uint64_t len;
    uint8_t *img = image(m, "none", &len);
    assert_int_equal(len, 0); /* neither data nor size survive without a sync */
    free(img);
    sync_step(m, 0, UINT64_MAX);
    img = image(m, "none", &len);
    assert_int_equal(len, 3 * SEC);
    assert_true(all_bytes(img, 0, len, 'a'));
    free(img);
    pc_model_free(m);
}

/* A file that is durable from the start and was never written: nothing is dirty, every image
 * is its content, with and without writeback, in a step or not (the empty dirty list of a
 * large file once went to qsort as a null pointer: UBSan in the sanitizer build). */
static void test_clean_file_images(void **st)
{
    (void)st;
    pc_model *m;
    assert_int_equal(pc_model_new(SEC, &m), PC_OK);
    uint64_t size = 256 * SEC;
    uint8_t *content = malloc(size);
    for (uint64_t i = 0; i < size; i++) content[i] = (uint8_t)(i * 7);
    uint32_t id;
    assert_int_equal(pc_model_add_file(m, "f", content, size, &id), PC_OK);
    const char *specs[] = {"none", "all:all", "random:3:random:4:5"};
    for (int in_step = 0; in_step < 2; in_step++) {
        if (in_step) {
            assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
            assert_int_equal(pc_model_sync(m, 0, 0, UINT64_MAX), PC_OK);
        }
        for (size_t i = 0; i < 3; i++) {
            uint64_t len;
            uint8_t *img = image(m, specs[i], &len);
            assert_int_equal(len, size);
            assert_memory_equal(img, content, size);
            free(img);
        }
    }
    free(content);
    pc_model_free(m);
}

static void test_range_sync_only_that_range(void **st)
{
    (void)st;
    pc_model *m = mk();
    wr(m, 0, 4 * SEC, 'a');
    sync_step(m, 0, UINT64_MAX);
    wr(m, 0, 4 * SEC, 'b');
    sync_step(m, SEC, SEC); /* msync of the second sector only */
    uint64_t len;
    uint8_t *img = image(m, "none", &len);
    assert_int_equal(len, 4 * SEC);
    assert_true(all_bytes(img, 0, SEC, 'a'));
    assert_true(all_bytes(img, SEC, SEC, 'b'));
    assert_true(all_bytes(img, 2 * SEC, 2 * SEC, 'a'));
    free(img);
    pc_model_free(m);
}

static void test_truncate_grow_needs_sync(void **st)
{
    (void)st;
    pc_model *m = mk();
    wr(m, 0, SEC, 'a');
    sync_step(m, 0, UINT64_MAX);
    assert_int_equal(pc_model_truncate(m, 0, 8 * SEC), PC_OK);
    uint64_t len;
    uint8_t *img = image(m, "none", &len);
    assert_int_equal(len, SEC);
    free(img);
    sync_step(m, 0, UINT64_MAX);
    img = image(m, "none", &len);
    assert_int_equal(len, 8 * SEC);
    assert_true(all_bytes(img, SEC, 7 * SEC, 0));
    free(img);
    /* shrink then grow: the old bytes must not come back */
    assert_int_equal(pc_model_truncate(m, 0, 10), PC_OK);
    assert_int_equal(pc_model_truncate(m, 0, 2 * SEC), PC_OK);
    sync_step(m, 0, UINT64_MAX);
    img = image(m, "none", &len);
    assert_int_equal(len, 2 * SEC);
    assert_true(all_bytes(img, 0, 10, 'a'));
    assert_true(all_bytes(img, 10, 2 * SEC - 10, 0));
    free(img);
    /* shrink, then write past the end: the hole reads as zeros once synced */
    wr(m, 0, 4 * SEC, 'b');
    sync_step(m, 0, UINT64_MAX);
    assert_int_equal(pc_model_truncate(m, 0, SEC), PC_OK);
    wr(m, 3 * SEC, SEC, 'c');
    sync_step(m, 0, UINT64_MAX);
    img = image(m, "none", &len);
    assert_int_equal(len, 4 * SEC);
    assert_true(all_bytes(img, 0, SEC, 'b'));
    assert_true(all_bytes(img, SEC, 2 * SEC, 0));
    assert_true(all_bytes(img, 3 * SEC, SEC, 'c'));
    free(img);
    pc_model_free(m);
}

/* n sectors old 'o', new 'n', synced by one step: the images of that step's tears. */
static pc_model *torn_step(uint64_t n)
{
    pc_model *m = mk();
    wr(m, 0, n * SEC, 'o');
    sync_step(m, 0, UINT64_MAX);
    wr(m, 0, n * SEC, 'n');
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, 0, 0, UINT64_MAX), PC_OK);
    uint64_t k;
    assert_int_equal(pc_model_step_sectors(m, &k), PC_OK);
    assert_int_equal(k, n);
    return m;
}

static void test_tear_prefix_suffix(void **st)
{
    (void)st;
    const uint64_t n = 5;
    pc_model *m = torn_step(n);
    uint8_t *seen[2 * (n + 1)];
    int nseen = 0;
    for (int suffix = 0; suffix < 2; suffix++)
        for (uint64_t i = 0; i <= n; i++) {
            char spec[32];
            snprintf(spec, sizeof spec, "%s:%llu", suffix ? "suffix" : "prefix", (unsigned long long)i);
            uint64_t len;
            uint8_t *img = image(m, spec, &len);
            assert_int_equal(len, n * SEC);
            for (uint64_t s = 0; s < n; s++) {
                int landed = suffix ? s >= n - i : s < i;
                assert_true(all_bytes(img, s * SEC, SEC, landed ? 'n' : 'o'));
            }
            seen[nseen++] = img;
        }
    /* prefix:0 == suffix:0 (old) and prefix:n == suffix:n (new): 2n distinct images */
    int distinct = 0;
    for (int i = 0; i < nseen; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++)
            if (!memcmp(seen[i], seen[j], n * SEC)) dup = 1;
        distinct += !dup;
    }
    assert_int_equal(distinct, 2 * n);
    for (int i = 0; i < nseen; i++) free(seen[i]);
    pc_model_free(m);
}

static void test_tear_garbage(void **st)
{
    (void)st;
    const uint64_t n = 4;
    pc_model *m = torn_step(n);
    for (uint64_t g = 1; g <= n; g++) {
        char spec[32];
        snprintf(spec, sizeof spec, "garbage:%llu", (unsigned long long)g);
        uint64_t len;
        uint8_t *img = image(m, spec, &len);
        assert_int_equal(len, n * SEC);
        for (uint64_t s = 0; s < n; s++) {
            if (s == g - 1) {
                for (int b = 0; b < SEC; b++) {
                    assert_int_not_equal(img[s * SEC + b], 'o');
                    assert_int_not_equal(img[s * SEC + b], 'n');
                }
            } else assert_true(all_bytes(img, s * SEC, SEC, 'n'));
        }
        free(img);
    }
    pc_model_free(m);
}

static void test_tear_size_after_data(void **st)
{
    (void)st;
    pc_model *m = mk();
    wr(m, 0, 4 * SEC, 'a');
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, 0, 0, UINT64_MAX), PC_OK);
    uint64_t len;
    uint8_t *img = image(m, "prefix:3", &len);
    assert_int_equal(len, 0); /* the size is committed after all the data */
    free(img);
    img = image(m, "all", &len);
    assert_int_equal(len, 4 * SEC);
    free(img);
    pc_model_free(m);
}

static void test_writeback(void **st)
{
    (void)st;
    pc_model *m = mk();
    wr(m, 0, 8 * SEC, 'a');
    sync_step(m, 0, UINT64_MAX);
    wr(m, 2 * SEC, 3 * SEC, 'b');
    assert_int_equal(pc_model_truncate(m, 0, 9 * SEC + 7), PC_OK);
    wr(m, 9 * SEC, 7, 'c');
    /* cut during an msync of sector 0 only (nothing to write there) */
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, 0, 0, SEC), PC_OK);
    const uint8_t *vol;
    uint64_t vlen, len;
    assert_int_equal(pc_model_volatile(m, 0, &vol, &vlen), PC_OK);
    uint8_t *img = image(m, "all:all", &len);
    assert_int_equal(len, vlen);
    assert_memory_equal(img, vol, vlen);
    free(img);
    img = image(m, "none:none", &len);
    assert_int_equal(len, 8 * SEC);
    assert_true(all_bytes(img, 0, len, 'a'));
    free(img);
    img = image(m, "all:none", &len); /* msync makes the size durable, not the other data */
    assert_int_equal(len, vlen);
    assert_true(all_bytes(img, 0, 8 * SEC, 'a'));
    assert_true(all_bytes(img, 8 * SEC, len - 8 * SEC, 0));
    free(img);
    /* random writeback: every sector is old or new, and the same seed gives the same image */
    uint8_t *a = image(m, "all:random:7", &len), *b;
    uint64_t len2;
    b = image(m, "all:random:7", &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(a, b, len);
    for (uint64_t s = 2; s < 5; s++)
        assert_true(all_bytes(a, s * SEC, SEC, 'a') || all_bytes(a, s * SEC, SEC, 'b'));
    free(a);
    free(b);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    pc_model_free(m);
}

/* The early-writeback candidates of a step are kept across its crash images, and follow a
 * change made inside the step (a store the shim notes while the step is open, a second
 * file): each image shows the writeback as it stands when asked. */
static void test_writeback_follows_changes_in_step(void **st)
{
    (void)st;
    pc_model *m = mk();
    wr(m, 0, 8 * SEC, 'a');
    sync_step(m, 0, UINT64_MAX);
    wr(m, 2 * SEC, SEC, 'b');
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, 0, 0, SEC), PC_OK);
    uint64_t len;
    uint8_t *img = image(m, "none:all", &len);
    assert_true(all_bytes(img, 2 * SEC, SEC, 'b'));
    assert_true(all_bytes(img, 5 * SEC, SEC, 'a'));
    free(img);
    wr(m, 5 * SEC, SEC, 'c'); /* inside the open step */
    img = image(m, "none:all", &len);
    assert_true(all_bytes(img, 2 * SEC, SEC, 'b'));
    assert_true(all_bytes(img, 5 * SEC, SEC, 'c'));
    free(img);
    wr(m, 2 * SEC, SEC, 'a'); /* back to its durable bytes: nothing to write back there */
    img = image(m, "none:all", &len);
    assert_true(all_bytes(img, 2 * SEC, SEC, 'a'));
    free(img);
    uint32_t id2;
    uint8_t zero[2 * SEC] = {0};
    assert_int_equal(pc_model_add_file(m, "g", zero, sizeof zero, &id2), PC_OK);
    uint8_t d[SEC];
    memset(d, 'g', SEC);
    assert_int_equal(pc_model_write(m, id2, SEC, d, SEC), PC_OK);
    pc_crash c;
    assert_int_equal(pc_crash_parse("none:all", &c), PC_OK);
    uint8_t *g;
    assert_int_equal(pc_model_image(m, id2, &c, &g, &len), PC_OK);
    assert_true(all_bytes(g, SEC, SEC, 'g'));
    free(g);
    img = image(m, "none:all", &len); /* file 0's again, after file 1's */
    assert_true(all_bytes(img, 5 * SEC, SEC, 'c'));
    free(img);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    pc_model_free(m);
}

static void test_writeback_all_on_fsync_step_is_exclusive(void **st)
{
    (void)st;
    pc_model *m = torn_step(3);
    uint64_t len;
    uint8_t *img = image(m, "none:all", &len); /* fsync's own sectors are decided by the tear */
    assert_true(all_bytes(img, 0, len, 'o'));
    free(img);
    pc_model_free(m);
}

static void test_random_determinism(void **st)
{
    (void)st;
    pc_model *m = torn_step(64);
    uint64_t l1, l2;
    uint8_t *a = image(m, "random:5", &l1), *b = image(m, "random:5", &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(a, b, l1);
    uint8_t *c = image(m, "random:6", &l2);
    assert_true(memcmp(a, c, l1) != 0); /* 2^-64 chance of a false failure */
    free(a);
    free(b);
    free(c);
    /* seed of garbage bytes */
    a = image(m, "garbage:3:none:1", &l1);
    b = image(m, "garbage:3:none:1", &l2);
    assert_memory_equal(a, b, l1);
    c = image(m, "garbage:3:none:2", &l2);
    assert_true(memcmp(a, c, l1) != 0);
    free(a);
    free(b);
    free(c);
    pc_model_free(m);
}

/* A failed fsync with an outcome: the tear's sectors are durable when the step ends, the
 * rest of its dirty data is lost for good, the size only with every sector; live and from a
 * trace alike. */
static void fail_step(pc_model *m, pc_tw *w, const char *tear)
{
    pc_crash c;
    assert_int_equal(pc_crash_parse(tear, &c), PC_OK);
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, 0, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_model_step_fail(m, &c), PC_OK);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    if (!w) return;
    assert_int_equal(pc_tw_step(w, 3, PC_CALL_FSYNC, 0, 5, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_tw_sync(w, 0, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_tw_step_fail(w, &c), PC_OK);
    assert_int_equal(pc_tw_step_end(w), PC_OK);
}

static void test_step_fail_outcomes(void **st)
{
    (void)st;
    static const struct { const char *tear; const char *want; uint64_t len; } cases[] = {
        {"none", "aaaa", 4 * SEC}, {"all", "bbbbb", 5 * SEC}, {"prefix:1", "baaa", 4 * SEC},
        {"suffix:2", "aaab", 4 * SEC}, /* the 5th sector landed, the size did not: not in the file */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pc_model *m = mk();
        pc_tw *w;
        assert_int_equal(pc_tw_new(-1, SEC, &w), PC_OK);
        uint8_t init[4 * SEC];
        memset(init, 'a', sizeof init);
        assert_int_equal(pc_tw_file(w, 0, "f", init, sizeof init), PC_OK);
        wr(m, 0, 4 * SEC, 'a');
        sync_step(m, 0, UINT64_MAX);
        assert_int_equal(pc_tw_step(w, 1, PC_CALL_FSYNC, 0, 0, 0, UINT64_MAX), PC_OK);
        assert_int_equal(pc_tw_step_end(w), PC_OK);
        wr(m, 0, 5 * SEC, 'b');
        uint8_t *b = malloc(5 * SEC);
        memset(b, 'b', 5 * SEC);
        assert_int_equal(pc_tw_write(w, 0, 0, b, 5 * SEC, 0), PC_OK);
        assert_int_equal(pc_tw_step(w, 2, PC_CALL_PWRITE, 0, 0, 0, 5 * SEC), PC_OK);
        assert_int_equal(pc_tw_step_end(w), PC_OK);
        free(b);
        fail_step(m, w, cases[i].tear);
        sync_step(m, 0, UINT64_MAX); /* a retry succeeds, and writes nothing lost */
        assert_int_equal(pc_tw_step(w, 4, PC_CALL_FSYNC, 0, 0, 0, UINT64_MAX), PC_OK);
        assert_int_equal(pc_tw_sync(w, 0, 0, UINT64_MAX), PC_OK);
        assert_int_equal(pc_tw_step_end(w), PC_OK);
        assert_int_equal(pc_tw_finish(w), PC_OK);
        uint64_t len;
        uint8_t *img = image(m, "none", &len);
        const char *want = cases[i].want;
        /* the retry made the volatile size durable, with zeros where nothing landed */
        assert_int_equal(len, 5 * SEC);
        for (size_t s = 0; s < 5; s++) {
            int byte = s < strlen(want) ? want[s] : (s < 4 ? 'a' : 0);
            assert_true(all_bytes(img, s * SEC, SEC, byte));
        }
        /* the trace replays to the same durable state right after the failed step */
        const uint8_t *buf;
        size_t blen;
        assert_int_equal(pc_tw_buffer(w, &buf, &blen), PC_OK);
        pc_trace *t;
        assert_int_equal(pc_trace_from_memory(buf, blen, &t), PC_OK);
        pc_crash none;
        assert_int_equal(pc_crash_parse("none", &none), PC_OK);
        uint8_t *timg;
        uint64_t tlen;
        assert_int_equal(pc_trace_image(t, 0, 4, &none, &timg, &tlen), PC_OK);
        assert_int_equal(tlen, cases[i].len);
        for (size_t s = 0; s < tlen / SEC; s++) assert_true(all_bytes(timg, s * SEC, SEC, want[s]));
        free(timg);
        pc_trace_free(t);
        free(img);
        pc_tw_free(w);
        pc_model_free(m);
    }
    /* garbage is a cut's tear, not an outcome a returning call can leave */
    pc_model *m = mk();
    pc_crash g;
    assert_int_equal(pc_crash_parse("garbage:1", &g), PC_OK);
    assert_int_equal(pc_model_step_fail(m, &g), PC_ESTATE);
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_step_fail(m, &g), PC_EINVAL);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    pc_model_free(m);
}

/* A file's initial content travels as its runs of 4 KiB blocks holding data (FILEZ): the
 * trace replays it byte for byte, zero blocks take no room, and a record cut short (the
 * writer died in it, or a mapped trace's zeroed tail follows) is the trace's end, not a file
 * with zeros where its runs were. */
static void test_file_record_keeps_data_runs_only(void **st)
{
    (void)st;
    enum { B = PC_ZERO_BLOCK, SIZE = 5 * B + 100 };
    uint8_t *init = calloc(1, SIZE);
    init[B - 1] = 1;                                   /* block 0: its last byte alone */
    for (size_t i = 2 * B; i < 4 * B; i++) init[i] = (uint8_t)(i * 7 + 3); /* blocks 2, 3 */
    init[SIZE - 1] = 9;                                /* the short last block */
    pc_tw *w;
    assert_int_equal(pc_tw_new(-1, SEC, &w), PC_OK);
    assert_int_equal(pc_tw_file(w, 0, "f", init, SIZE), PC_OK);
    assert_int_equal(pc_tw_step(w, 1, PC_CALL_FSYNC, 0, 0, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_tw_sync(w, 0, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_tw_step_end(w), PC_OK);
    assert_int_equal(pc_tw_finish(w), PC_OK);
    const uint8_t *buf;
    size_t blen;
    assert_int_equal(pc_tw_buffer(w, &buf, &blen), PC_OK);
    assert_true(blen < 3 * B + 400); /* the two zero blocks and most of block 0 not written */
    pc_trace *t;
    assert_int_equal(pc_trace_from_memory(buf, blen, &t), PC_OK);
    uint32_t nfiles;
    assert_int_equal(pc_trace_file_count(t, &nfiles), PC_OK);
    assert_int_equal(nfiles, 1);
    pc_crash none;
    assert_int_equal(pc_crash_parse("none", &none), PC_OK);
    uint8_t *timg;
    uint64_t tlen;
    assert_int_equal(pc_trace_image(t, 0, 1, &none, &timg, &tlen), PC_OK);
    assert_int_equal(tlen, SIZE);
    assert_memory_equal(timg, init, SIZE);
    free(timg);
    pc_trace_free(t);
    /* Cut inside the record, at every byte of it past the file's size: the trace holds no
     * file, and so with a zeroed tail after the cut. */
    pc_tw *w1;
    assert_int_equal(pc_tw_new(-1, SEC, &w1), PC_OK);
    assert_int_equal(pc_tw_file(w1, 0, "f", init, SIZE), PC_OK);
    const uint8_t *b1;
    size_t rec_end; /* the header, then the record alone */
    assert_int_equal(pc_tw_buffer(w1, &b1, &rec_end), PC_OK);
    assert_memory_equal(b1, buf, rec_end);
    pc_tw_free(w1);
    uint8_t *cut = calloc(1, blen + 64);
    for (size_t at = 16 + 1 + 4 + 4 + 1 + 8; at < rec_end; at += at + 17 < rec_end ? 97 : 1) {
        for (int tail = 0; tail < 2; tail++) {
            memset(cut, 0, blen + 64);
            memcpy(cut, buf, at);
            assert_int_equal(pc_trace_from_memory(cut, at + (tail ? 64 : 0), &t), PC_OK);
            assert_int_equal(pc_trace_file_count(t, &nfiles), PC_OK);
            assert_int_equal(nfiles, 0);
            pc_trace_free(t);
        }
    }
    free(cut);
    pc_tw_free(w);
    /* A run out of order, or past the size, is malformed. */
    static const struct { uint64_t off[2], len[2]; } bad[] = {{{2 * B, 0}, {B, B}}, {{0, 4 * B}, {B, 2 * B}}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pc_tw_new(-1, SEC, &w), PC_OK);
        assert_int_equal(pc__tw_file_begin(w, 0, "f", 5 * B), PC_OK);
        for (int r = 0; r < 2; r++) assert_int_equal(pc__tw_file_run(w, bad[i].off[r], init, bad[i].len[r]), PC_OK);
        assert_int_equal(pc__tw_file_end(w), PC_OK);
        assert_int_equal(pc_tw_finish(w), PC_OK);
        assert_int_equal(pc_tw_buffer(w, &buf, &blen), PC_OK);
        assert_int_equal(pc_trace_from_memory(buf, blen, &t), PC_EFORMAT);
        pc_tw_free(w);
    }
    /* The model copies the data runs only, and holds the same bytes. */
    pc_model *m;
    assert_int_equal(pc_model_new(SEC, &m), PC_OK);
    assert_int_equal(pc_model_add_file(m, "f", init, SIZE, NULL), PC_OK);
    uint64_t len;
    uint8_t *img = image(m, "none", &len);
    assert_int_equal(len, SIZE);
    assert_memory_equal(img, init, SIZE);
    free(img);
    pc_model_free(m);
    free(init);
}

static void test_lose_fsync_gate(void **st)
{
    (void)st;
    pc_model *m = mk();
    wr(m, 0, 2 * SEC, 'a');
    sync_step(m, 0, UINT64_MAX);
    wr(m, 0, 2 * SEC, 'b');
    assert_int_equal(pc_model_lose(m, 0, 0, UINT64_MAX), PC_OK); /* fsync returned EIO */
    sync_step(m, 0, UINT64_MAX);                                 /* a retry succeeds... */
    uint64_t len;
    uint8_t *img = image(m, "all:all", &len);
    assert_true(all_bytes(img, 0, len, 'a')); /* ...but the lost data never reaches disk */
    free(img);
    wr(m, 0, SEC, 'b'); /* rewriting dirties it again */
    sync_step(m, 0, UINT64_MAX);
    img = image(m, "none", &len);
    assert_true(all_bytes(img, 0, SEC, 'b'));
    assert_true(all_bytes(img, SEC, SEC, 'a'));
    free(img);
    pc_model_free(m);
}

static void test_parse(void **st)
{
    (void)st;
    uint64_t k;
    pc_crash c;
    assert_int_equal(pc_cut_parse("12", &k, &c), PC_OK);
    assert_int_equal(k, 12);
    assert_int_equal(c.tear, PC_TEAR_NONE);
    assert_int_equal(c.wb, PC_WB_NONE);
    assert_int_equal(pc_cut_parse("3:prefix:2:random:9:4", &k, &c), PC_OK);
    assert_int_equal(c.tear, PC_TEAR_PREFIX);
    assert_int_equal(c.tear_n, 2);
    assert_int_equal(c.wb, PC_WB_RANDOM);
    assert_int_equal(c.wb_seed, 9);
    assert_int_equal(c.seed, 4);
    assert_int_equal(pc_cut_parse("3:random:all:8", &k, &c), PC_OK);
    assert_int_equal(c.tear, PC_TEAR_RANDOM);
    assert_int_equal(c.tear_seed, 8);
    assert_int_equal(c.wb, PC_WB_ALL);
    assert_int_equal(pc_cut_parse("3:random:5", &k, &c), PC_OK);
    assert_int_equal(c.tear_seed, 5);
    assert_int_equal(pc_cut_parse("0", &k, &c), PC_EINVAL);
    assert_int_equal(pc_cut_parse("x", &k, &c), PC_EINVAL);
    assert_int_equal(pc_cut_parse("2:prefix", &k, &c), PC_EINVAL);
    assert_int_equal(pc_cut_parse("2:all:bogus", &k, &c), PC_EINVAL);
    assert_int_equal(pc_cut_parse("2:all:all:1:2", &k, &c), PC_EINVAL);
}

/* Many scattered dirty sectors: list and bitmap enumeration agree with a brute force view. */
static void test_many_sectors(void **st)
{
    (void)st;
    pc_model *m = mk();
    const uint64_t n = 4096;
    assert_int_equal(pc_model_truncate(m, 0, n * SEC), PC_OK);
    sync_step(m, 0, UINT64_MAX);
    for (uint64_t s = 0; s < n; s += 7) wr(m, s * SEC + 3, 1, 'x');
    for (int pass = 0; pass < 3; pass++) {
        /* range syncs of scattered windows, small and large */
        sync_step(m, 1000 * SEC, 10 * SEC);
        sync_step(m, 2000 * SEC, 1500 * SEC);
    }
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, 0, 0, UINT64_MAX), PC_OK);
    uint64_t k, expect = 0;
    for (uint64_t s = 0; s < n; s += 7)
        if (!((s >= 1000 && s < 1010) || (s >= 2000 && s < 3500))) expect++;
    assert_int_equal(pc_model_step_sectors(m, &k), PC_OK);
    assert_int_equal(k, expect);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    pc_model_free(m);
}

/* The image as sectors laid over the durable content is the image, for every kind of
 * tear and writeback, and names only sectors that differ from durable. */
typedef struct {
    uint8_t *img;
    const uint8_t *dur;
    unsigned calls, same;
} laid;

static void lay(void *ctx, uint64_t sec, const uint8_t *data)
{
    laid *l = ctx;
    l->calls++;
    if (!memcmp(l->dur + sec * SEC, data, SEC)) l->same++;
    memcpy(l->img + sec * SEC, data, SEC);
}

static void test_image_sectors_equal_image(void **st)
{
    (void)st;
    static const char *const kinds[] = {"none", "all", "prefix:2", "suffix:3", "random:5", "garbage:2:none:5",
                                        "none:all", "all:random:4", "random:9:random:2:3", "prefix:1:all"};
    pc_model *m = mk();
    assert_int_equal(pc_model_truncate(m, 0, 16 * SEC), PC_OK);
    sync_step(m, 0, UINT64_MAX);
    wr(m, 0, 16 * SEC, 'a');
    sync_step(m, 0, UINT64_MAX);
    for (int s = 0; s < 16; s += 2) wr(m, (uint64_t)s * SEC, SEC, 'b' + s);
    assert_int_equal(pc_model_truncate(m, 0, 24 * SEC), PC_OK);
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, 0, 4 * SEC, 6 * SEC), PC_OK);
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        pc_crash c;
        assert_int_equal(pc_crash_parse(kinds[k], &c), PC_OK);
        uint8_t *img;
        uint64_t len, size;
        assert_int_equal(pc_model_image(m, 0, &c, &img, &len), PC_OK);
        const uint8_t *dur;
        uint64_t dlen;
        assert_int_equal(pc_model_durable(m, 0, &dur, &dlen), PC_OK);
        laid l = {calloc(1, 24 * SEC), dur, 0, 0};
        memcpy(l.img, dur, dlen);
        assert_int_equal(pc_model_image_sectors(m, 0, &c, lay, &l, &size), PC_OK);
        assert_int_equal(size, len);
        assert_memory_equal(l.img, img, len);
        assert_int_equal(l.same, 0);
        if (strcmp(kinds[k], "none") != 0) assert_true(l.calls > 0);
        free(l.img);
        free(img);
    }
    assert_int_equal(pc_model_step_end(m), PC_OK);
    pc_model_free(m);
}

/* ---- traces: a workload fed to a live model and a trace writer at once; every image of
 * every step derived from the trace equals the live model's. ---- */
typedef struct {
    pc_model *m;
    pc_tw *w;
} both;

static void b_write(both *b, uint64_t off, uint64_t len, int byte, int mmap_)
{
    uint8_t *d = malloc(len);
    memset(d, byte, len);
    assert_int_equal(pc_model_write(b->m, 0, off, d, len), PC_OK);
    assert_int_equal(pc_tw_write(b->w, 0, off, d, len, mmap_), PC_OK);
    free(d);
}

static const char *const specs[] = {
    "none", "all", "prefix:1", "suffix:2", "random:3", "garbage:2:none:5", "none:all",
    "all:random:4", "random:9:random:2:3",
};
#define NSPECS (sizeof specs / sizeof specs[0])

typedef struct {
    uint8_t *img[NSPECS];
    uint64_t len[NSPECS];
} snap;

static void b_step(both *b, uint64_t k, int call, int sync, uint64_t off, uint64_t len, snap *sn)
{
    assert_int_equal(pc_model_step_begin(b->m, NULL), PC_OK);
    assert_int_equal(pc_tw_step(b->w, k, call, 0, 0, off, len), PC_OK);
    if (sync) {
        assert_int_equal(pc_model_sync(b->m, 0, off, len), PC_OK);
        assert_int_equal(pc_tw_sync(b->w, 0, off, len), PC_OK);
    }
    for (size_t i = 0; i < NSPECS; i++) {
        pc_crash c;
        assert_int_equal(pc_crash_parse(specs[i], &c), PC_OK);
        assert_int_equal(pc_model_image(b->m, 0, &c, &sn->img[i], &sn->len[i]), PC_OK);
    }
    assert_int_equal(pc_model_step_end(b->m), PC_OK);
}


int pc__tw_dirty(pc_tw *w, uint32_t id, uint64_t off, uint64_t len);

/* DIRTY (how the shim records a page stored to again: the page, then the chunks that changed)
 * leaves the replayed model as a WRITE of the whole page leaves the live one: every sector
 * of the page dirty. That matters where the page holds bytes that are not durable and not
 * dirty either, after a failed fsync dropped them (fsync-gate): a store into one sector
 * dirties the page whole again, so the next msync makes all 8 sectors durable (its tears
 * count and take all 8: suffix:2 leaves the stored first sector out), not the one stored
 * to. Past the volatile size a DIRTY writes zeros, as a WRITE of what the range reads would. */
static void test_trace_dirty(void **st)
{
    (void)st;
    both b;
    assert_int_equal(pc_model_new(SEC, &b.m), PC_OK);
    assert_int_equal(pc_tw_new(-1, SEC, &b.w), PC_OK);
    uint8_t page[8 * SEC];
    memset(page, 'i', sizeof page);
    assert_int_equal(pc_model_add_file(b.m, "/x/f", page, sizeof page, NULL), PC_OK);
    assert_int_equal(pc_tw_file(b.w, 0, "/x/f", page, sizeof page), PC_OK);
    snap sn[2];
    memset(page, 'a', sizeof page);
    b_write(&b, 0, sizeof page, 'a', 0);
    b_step(&b, 1, PC_CALL_PWRITE, 0, 0, sizeof page, &sn[0]);
    pc_tw_step_end(b.w);
    assert_int_equal(pc_model_lose(b.m, 0, 0, UINT64_MAX), PC_OK); /* an fsync failed with EIO */
    assert_int_equal(pc_tw_lose(b.w, 0, 0, UINT64_MAX), PC_OK);
    memset(page + 100, 'x', 10); /* a store into the first sector of the page */
    assert_int_equal(pc_model_write(b.m, 0, 0, page, sizeof page), PC_OK);
    assert_int_equal(pc__tw_dirty(b.w, 0, 0, sizeof page), PC_OK);
    assert_int_equal(pc_tw_write(b.w, 0, 64, page + 64, 64, 1), PC_OK);
    b_step(&b, 2, PC_CALL_MSYNC, 1, 0, sizeof page, &sn[1]);
    pc_tw_step_end(b.w);
    const uint8_t *buf;
    size_t blen;
    assert_int_equal(pc_tw_buffer(b.w, &buf, &blen), PC_OK);
    pc_trace *t;
    assert_int_equal(pc_trace_from_memory(buf, blen, &t), PC_OK);
    pc_replay *r;
    assert_int_equal(pc_replay_new(t, &r), PC_OK);
    for (uint64_t s = 1; s <= 2; s++) {
        uint64_t got, n;
        assert_int_equal(pc_replay_next(r, &got), PC_OK);
        assert_int_equal(got, s);
        pc_model *rm;
        assert_int_equal(pc_replay_model(r, &rm), PC_OK);
        assert_int_equal(pc_model_step_sectors(rm, &n), PC_OK);
        assert_int_equal(n, s == 1 ? 0 : 8);
        for (size_t i = 0; i < NSPECS; i++) {
            pc_crash c;
            pc_crash_parse(specs[i], &c);
            uint8_t *img;
            uint64_t len;
            assert_int_equal(pc_model_image(rm, 0, &c, &img, &len), PC_OK);
            assert_int_equal(len, sn[s - 1].len[i]);
            if (memcmp(img, sn[s - 1].img[i], len))
                fail_msg("step %llu, %s: the replayed image differs", (unsigned long long)s, specs[i]);
            free(img);
        }
    }
    pc_replay_free(r);
    pc_trace_free(t);
    for (uint64_t s = 0; s < 2; s++)
        for (size_t i = 0; i < NSPECS; i++) free(sn[s].img[i]);
    /* across the volatile size (8 sectors): zeros written past it, a sector longer */
    assert_int_equal(pc__tw_dirty(b.w, 0, 7 * SEC, 2 * SEC), PC_OK);
    assert_int_equal(pc_tw_step(b.w, 3, PC_CALL_FSYNC, 0, 0, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_tw_sync(b.w, 0, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_tw_buffer(b.w, &buf, &blen), PC_OK);
    assert_int_equal(pc_trace_from_memory(buf, blen, &t), PC_OK);
    assert_int_equal(pc_replay_new(t, &r), PC_OK);
    uint64_t got;
    for (int i = 0; i < 3; i++) assert_int_equal(pc_replay_next(r, &got), PC_OK);
    assert_int_equal(got, 3);
    pc_model *rm;
    assert_int_equal(pc_replay_model(r, &rm), PC_OK);
    pc_crash all;
    assert_int_equal(pc_crash_parse("all", &all), PC_OK);
    uint8_t *img;
    uint64_t ilen;
    assert_int_equal(pc_model_image(rm, 0, &all, &img, &ilen), PC_OK);
    assert_int_equal(ilen, 9 * SEC);
    assert_true(img[8 * SEC] == 0 && img[9 * SEC - 1] == 0 && img[7 * SEC] == 'a');
    free(img);
    pc_replay_free(r);
    pc_trace_free(t);
    pc_tw_free(b.w);
    pc_model_free(b.m);
}

static void test_trace_replay_matches_live(void **st)
{
    (void)st;
    both b;
    assert_int_equal(pc_model_new(SEC, &b.m), PC_OK);
    assert_int_equal(pc_tw_new(-1, SEC, &b.w), PC_OK);
    uint8_t init[700];
    memset(init, 'i', sizeof init);
    assert_int_equal(pc_model_add_file(b.m, "/x/f", init, sizeof init, NULL), PC_OK);
    assert_int_equal(pc_tw_file(b.w, 0, "/x/f", init, sizeof init), PC_OK);
    snap sn[8];
    uint64_t k = 0;
    assert_int_equal(pc_tw_mark(b.w, PC_MARK_BEGIN, 1, "first"), PC_OK);
    b_write(&b, 100, 2000, 'a', 0);
    k++;
    b_step(&b, k, PC_CALL_PWRITE, 0, 100, 2000, &sn[k - 1]);
    pc_tw_step_end(b.w);
    k++;
    b_step(&b, k, PC_CALL_FSYNC, 1, 0, UINT64_MAX, &sn[k - 1]);
    pc_tw_step_end(b.w);
    assert_int_equal(pc_tw_mark(b.w, PC_MARK_END, 1, ""), PC_OK);
    b_write(&b, 0, 4096, 'm', 1); /* mapping stores between steps */
    assert_int_equal(pc_tw_mark(b.w, PC_MARK_BEGIN, 2, "second"), PC_OK);
    k++;
    b_step(&b, k, PC_CALL_MSYNC, 1, 1024, 1024, &sn[k - 1]);
    pc_tw_step_end(b.w);
    assert_int_equal(pc_model_truncate(b.m, 0, 300), PC_OK);
    assert_int_equal(pc_tw_truncate(b.w, 0, 300), PC_OK);
    k++;
    b_step(&b, k, PC_CALL_FTRUNCATE, 0, 300, 0, &sn[k - 1]);
    pc_tw_step_end(b.w);
    assert_int_equal(pc_model_lose(b.m, 0, 0, 100), PC_OK);
    assert_int_equal(pc_tw_lose(b.w, 0, 0, 100), PC_OK);
    k++;
    b_step(&b, k, PC_CALL_FDATASYNC, 1, 0, UINT64_MAX, &sn[k - 1]);
    /* no STEPEND and no END: the process died inside step 5 */
    const uint8_t *buf;
    size_t blen;
    assert_int_equal(pc_tw_buffer(b.w, &buf, &blen), PC_OK);
    pc_trace *t;
    assert_int_equal(pc_trace_from_memory(buf, blen, &t), PC_OK);
    uint64_t nsteps;
    assert_int_equal(pc_trace_step_count(t, &nsteps), PC_OK);
    assert_int_equal(nsteps, k);
    int complete;
    assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
    assert_false(complete);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, 1, &info), PC_OK);
    assert_int_equal(info.op, 1);
    assert_string_equal(info.label, "first");
    assert_int_equal(pc_trace_step_info(t, 3, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_MSYNC);
    assert_int_equal(info.op, 2);
    assert_string_equal(info.label, "second");
    /* replay cursor */
    pc_replay *r;
    assert_int_equal(pc_replay_new(t, &r), PC_OK);
    for (uint64_t s = 1; s <= k; s++) {
        uint64_t got;
        assert_int_equal(pc_replay_next(r, &got), PC_OK);
        assert_int_equal(got, s);
        pc_model *rm;
        assert_int_equal(pc_replay_model(r, &rm), PC_OK);
        for (size_t i = 0; i < NSPECS; i++) {
            pc_crash c;
            pc_crash_parse(specs[i], &c);
            uint8_t *img;
            uint64_t len;
            assert_int_equal(pc_model_image(rm, 0, &c, &img, &len), PC_OK);
            assert_int_equal(len, sn[s - 1].len[i]);
            assert_memory_equal(img, sn[s - 1].img[i], len);
            free(img);
        }
    }
    uint64_t got;
    assert_int_equal(pc_replay_next(r, &got), PC_OK);
    assert_int_equal(got, 0);
    pc_replay_free(r);
    /* one-shot deriver */
    pc_crash c;
    pc_crash_parse("suffix:2", &c);
    uint8_t *img;
    uint64_t len;
    assert_int_equal(pc_trace_image(t, 0, 3, &c, &img, &len), PC_OK);
    assert_int_equal(len, sn[2].len[3]);
    assert_memory_equal(img, sn[2].img[3], len);
    free(img);
    assert_int_equal(pc_trace_image(t, 0, k + 1, &c, &img, &len), PC_ERANGE);
    /* a trace cut short in the middle of a record still reads */
    pc_trace *t2;
    assert_int_equal(pc_trace_from_memory(buf, blen - 3, &t2), PC_OK);
    pc_trace_free(t2);
    assert_int_equal(pc_trace_from_memory("PCTRACE\0\11\0\0\0\0\2\0\0", 16, &t2), PC_EFORMAT); /* version 9: unknown */
    pc_trace_free(t);
    for (uint64_t s = 0; s < k; s++)
        for (size_t i = 0; i < NSPECS; i++) free(sn[s].img[i]);
    pc_tw_free(b.w);
    pc_model_free(b.m);
}

/* The disk-full model's block runs (diskfull.c): added runs merge with the ones they touch,
 * removing cuts or splits them, and a hole query finds the first block no run covers. */
static void expect_runs(const pc_blocks *b, size_t n, const uint64_t (*want)[2])
{
    if (b->n != n) fail_msg("%zu runs, not %zu", b->n, n);
    for (size_t i = 0; i < n; i++)
        if (b->run[i][0] != want[i][0] || b->run[i][1] != want[i][1])
            fail_msg("run %zu is [%llu, %llu), not [%llu, %llu)", i, (unsigned long long)b->run[i][0],
                     (unsigned long long)b->run[i][1], (unsigned long long)want[i][0], (unsigned long long)want[i][1]);
}

static void test_disk_blocks(void **st)
{
    (void)st;
    pc_blocks b = {0};
    assert_int_equal(pc__blocks_hole(&b, 0, 1), 0);
    assert_int_equal(pc__blocks_hole(&b, 5, 5), UINT64_MAX); /* nothing asked, nothing missing */
    assert_int_equal(pc__blocks_add(&b, 10, 20), 0);
    assert_int_equal(pc__blocks_add(&b, 30, 40), 0);
    assert_int_equal(pc__blocks_add(&b, 0, 2), 0);
    expect_runs(&b, 3, (const uint64_t[][2]){{0, 2}, {10, 20}, {30, 40}});
    assert_int_equal(pc__blocks_hole(&b, 10, 20), UINT64_MAX);
    assert_int_equal(pc__blocks_hole(&b, 12, 25), 20);
    assert_int_equal(pc__blocks_hole(&b, 0, 11), 2);
    assert_int_equal(pc__blocks_add(&b, 20, 30), 0); /* touches both neighbours: one run */
    expect_runs(&b, 2, (const uint64_t[][2]){{0, 2}, {10, 40}});
    assert_int_equal(pc__blocks_add(&b, 1, 50), 0); /* swallows everything */
    expect_runs(&b, 1, (const uint64_t[][2]){{0, 50}});
    assert_int_equal(pc__blocks_remove(&b, 20, 30), 0); /* a hole punched in the middle */
    expect_runs(&b, 2, (const uint64_t[][2]){{0, 20}, {30, 50}});
    assert_int_equal(pc__blocks_hole(&b, 0, 50), 20);
    assert_int_equal(pc__blocks_remove(&b, 10, 35), 0); /* cuts one run's end, the next's start */
    expect_runs(&b, 2, (const uint64_t[][2]){{0, 10}, {35, 50}});
    assert_int_equal(pc__blocks_remove(&b, 40, UINT64_MAX), 0); /* a shrink */
    expect_runs(&b, 2, (const uint64_t[][2]){{0, 10}, {35, 40}});
    assert_int_equal(pc__blocks_remove(&b, 30, 45), 0); /* a whole run goes */
    expect_runs(&b, 1, (const uint64_t[][2]){{0, 10}});
    assert_int_equal(pc__blocks_hole(&b, 9, 11), 10);
    for (uint64_t k = 100; k < 400; k += 2) assert_int_equal(pc__blocks_add(&b, k, k + 1), 0); /* growth */
    assert_int_equal(b.n, 151);
    assert_int_equal(pc__blocks_hole(&b, 100, 101), UINT64_MAX);
    assert_int_equal(pc__blocks_hole(&b, 100, 102), 101);
    pc__blocks_free(&b);
    assert_int_equal(b.n, 0);
}

/* Names: a created file exists in an image only once a step syncing its directory ends (or
 * lands in the cut: any tear but none, with every data sector of the step), or when early
 * writeback wrote the name; a file added without pc_model_created always exists. The trace
 * carries both records, and the replay's model answers the same. */
static int exists_at(pc_model *m, uint32_t id, const char *spec)
{
    pc_crash c;
    assert_int_equal(pc_crash_parse(spec, &c), PC_OK);
    int e = -1;
    assert_int_equal(pc_model_image_exists(m, id, &c, &e), PC_OK);
    return e;
}

static void test_created_names(void **st)
{
    (void)st;
    pc_model *m;
    pc_tw *w;
    assert_int_equal(pc_model_new(SEC, &m), PC_OK);
    assert_int_equal(pc_tw_new(-1, SEC, &w), PC_OK);
    uint32_t old, made;
    assert_int_equal(pc_model_add_file(m, "old", "x", 1, &old), PC_OK);
    assert_int_equal(pc_tw_file(w, 0, "old", "x", 1), PC_OK);
    assert_int_equal(pc_model_add_file(m, "new", NULL, 0, &made), PC_OK);
    assert_int_equal(pc_tw_file(w, 1, "new", NULL, 0), PC_OK);
    assert_int_equal(pc_model_created(m, made), PC_OK);
    assert_int_equal(pc_tw_created(w, made), PC_OK);
    assert_int_equal(pc_model_dir_sync(m, made), PC_ESTATE); /* only inside a step */
    uint8_t data[SEC];
    memset(data, 'd', sizeof data);
    /* step 1: the new file's data made durable, not its name */
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_tw_step(w, 1, PC_CALL_FSYNC, made, 0, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_model_write(m, made, 0, data, SEC), PC_OK);
    assert_int_equal(pc_tw_write(w, made, 0, data, SEC, 0), PC_OK);
    assert_int_equal(pc_model_sync(m, made, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_tw_sync(w, made, 0, UINT64_MAX), PC_OK);
    assert_int_equal(exists_at(m, old, "none"), 1);
    assert_int_equal(exists_at(m, made, "all"), 0);
    assert_int_equal(exists_at(m, made, "none:all"), 1); /* written back early */
    int drawn[2] = {0, 0};
    for (int seed = 0; seed < 32; seed++) {
        char spec[32];
        snprintf(spec, sizeof spec, "none:random:%d", seed);
        drawn[exists_at(m, made, spec)]++;
        assert_int_equal(exists_at(m, made, spec), exists_at(m, made, spec)); /* a coin, not a stream */
    }
    assert_true(drawn[0] && drawn[1]);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    assert_int_equal(pc_tw_step_end(w), PC_OK);
    assert_int_equal(exists_at(m, made, "none"), 0);
    /* step 2: its directory synced, with more of its data: the name lands with all of it */
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_tw_step(w, 2, PC_CALL_FSYNC_DIR, made, 0, 0, 0), PC_OK);
    assert_int_equal(pc_model_write(m, made, SEC, data, SEC), PC_OK);
    assert_int_equal(pc_tw_write(w, made, SEC, data, SEC, 0), PC_OK);
    assert_int_equal(pc_model_write(m, made, 2 * SEC, data, SEC), PC_OK);
    assert_int_equal(pc_tw_write(w, made, 2 * SEC, data, SEC, 0), PC_OK);
    assert_int_equal(pc_model_sync(m, made, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_tw_sync(w, made, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_model_dir_sync(m, made), PC_OK);
    assert_int_equal(pc_tw_dir_sync(w, made), PC_OK);
    assert_int_equal(exists_at(m, made, "none"), 0);
    assert_int_equal(exists_at(m, made, "prefix:1"), 0);
    assert_int_equal(exists_at(m, made, "prefix:2"), 1);
    assert_int_equal(exists_at(m, made, "all"), 1);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    assert_int_equal(pc_tw_step_end(w), PC_OK);
    assert_int_equal(exists_at(m, made, "none"), 1);
    assert_int_equal(pc_tw_finish(w), PC_OK);
    /* the trace: the same answers at each step */
    const uint8_t *buf;
    size_t len;
    assert_int_equal(pc_tw_buffer(w, &buf, &len), PC_OK);
    pc_trace *t;
    assert_int_equal(pc_trace_from_memory(buf, len, &t), PC_OK);
    const char *cuts[] = {"all", "none:all", "prefix:1", "prefix:2"};
    const int want[2][4] = {{0, 1, 0, 0}, {1, 1, 0, 1}};
    for (uint64_t k = 1; k <= 2; k++)
        for (size_t i = 0; i < 4; i++) {
            pc_crash c;
            int e = -1;
            assert_int_equal(pc_crash_parse(cuts[i], &c), PC_OK);
            assert_int_equal(pc_trace_image_exists(t, made, k, &c, &e), PC_OK);
            if (e != want[k - 1][i]) fail_msg("step %llu, %s: exists %d", (unsigned long long)k, cuts[i], e);
        }
    pc_trace_free(t);
    /* the same records under a version 3 header (a trace the shim wrote before names had
     * records of their own, its DIRSYNC per created file) read and answer the same */
    uint8_t *v3 = malloc(len);
    memcpy(v3, buf, len);
    assert_int_equal(v3[8], 8);
    v3[8] = 3;
    assert_int_equal(pc_trace_from_memory(v3, len, &t), PC_OK);
    free(v3);
    for (uint64_t k = 1; k <= 2; k++)
        for (size_t i = 0; i < 4; i++) {
            pc_crash c;
            int e = -1;
            assert_int_equal(pc_crash_parse(cuts[i], &c), PC_OK);
            assert_int_equal(pc_trace_image_exists(t, made, k, &c, &e), PC_OK);
            if (e != want[k - 1][i]) fail_msg("version 3, step %llu, %s: exists %d", (unsigned long long)k, cuts[i], e);
        }
    pc_trace_free(t);
    pc_tw_free(w);
    pc_model_free(m);
}

/* Names apart from files: rename, unlink and link change what names hold as the process sees
 * them; an fsync of a name's directory makes its change durable (lands with the cut as the
 * size does); writeback writes a namespace operation whole (one coin for both names of a
 * rename); PC_NAME_DURABLE applies at once; the target of a rename unknown to the model may
 * hold a file it does not track. The trace gives the same answers at every step. */
enum { NS_STEPS = 9 };
static const char *const ns_names[] = {"d/a", "d/b", "e/c", "e/l", "e/o"};
static const char *const ns_specs[] = {"none", "all", "none:all", "none:random:1", "none:random:2", "none:random:3"};
enum { NS_NNAMES = 5, NS_NSPECS = 6 };

static uint32_t holds_at(pc_model *m, const char *name, const char *spec)
{
    pc_crash c;
    assert_int_equal(pc_crash_parse(spec, &c), PC_OK);
    uint32_t n;
    assert_int_equal(pc_model_name_count(m, &n), PC_OK);
    for (uint32_t i = 0; i < n; i++) {
        const char *nm;
        assert_int_equal(pc_model_name(m, i, &nm), PC_OK);
        if (strcmp(nm, name)) continue;
        uint32_t h;
        assert_int_equal(pc_model_image_name(m, i, &c, &h), PC_OK);
        return h;
    }
    return PC_NAME_OTHER + 1; /* unknown to the model */
}

static void ns_table(pc_model *m, uint32_t (*out)[NS_NSPECS])
{
    for (int i = 0; i < NS_NNAMES; i++)
        for (int j = 0; j < NS_NSPECS; j++) out[i][j] = holds_at(m, ns_names[i], ns_specs[j]);
}

static void test_namespace_ops(void **st)
{
    (void)st;
    pc_model *m;
    pc_tw *w;
    assert_int_equal(pc_model_new(SEC, &m), PC_OK);
    assert_int_equal(pc_tw_new(-1, SEC, &w), PC_OK);
    uint32_t x, y, z;
    assert_int_equal(pc_model_add_file(m, "d/a", "x", 1, &x), PC_OK);
    assert_int_equal(pc_tw_file(w, 0, "d/a", "x", 1), PC_OK);
    assert_int_equal(pc_model_add_file(m, "d/b", "y", 1, &y), PC_OK);
    assert_int_equal(pc_tw_file(w, 1, "d/b", "y", 1), PC_OK);
    assert_int_equal(pc_model_add_file(m, "e/c", "z", 1, &z), PC_OK);
    assert_int_equal(pc_tw_file(w, 2, "e/c", "z", 1), PC_OK);
    assert_int_equal(pc_model_rename(m, "d/nothing", "d/b", 0), PC_ENOENT);
    assert_int_equal(pc_model_link(m, "d/a", "d/b", 0), PC_EINVAL); /* link never replaces */
    assert_int_equal(pc_model_dir_sync_path(m, "d"), PC_ESTATE);   /* only inside a step */
    uint32_t live[NS_STEPS][NS_NNAMES][NS_NSPECS];
    uint64_t k = 0;
#define NS_STEP(call, body) do { \
        assert_int_equal(pc_model_step_begin(m, &k), PC_OK); \
        assert_int_equal(pc_tw_step(w, k, call, 0, 0, 0, 0), PC_OK); \
        body; \
        ns_table(m, live[k - 1]); \
        assert_int_equal(pc_model_step_end(m), PC_OK); \
        assert_int_equal(pc_tw_step_end(w), PC_OK); \
    } while (0)
#define BOTH(mcall, tcall) do { assert_int_equal(mcall, PC_OK); assert_int_equal(tcall, PC_OK); } while (0)
    /* 1: d/a renamed over d/b: volatile; written back whole or not at all */
    NS_STEP(PC_CALL_RENAME, BOTH(pc_model_rename(m, "d/a", "d/b", 0), pc_tw_rename(w, "d/a", "d/b", 0)));
    assert_int_equal(live[0][1][0], y);
    assert_int_equal(live[0][0][0], x);
    assert_int_equal(live[0][1][1], y); /* tear all: the rename syncs nothing */
    assert_int_equal(live[0][1][2], x); /* writeback all wrote it */
    assert_int_equal(live[0][0][2], PC_NAME_NONE);
    int drawn[2] = {0, 0};
    for (int seed = 0; seed < 32; seed++) {
        char spec[32];
        snprintf(spec, sizeof spec, "none:random:%d", seed);
        uint32_t a = holds_at(m, "d/a", spec), b = holds_at(m, "d/b", spec);
        assert_true((a == x && b == y) || (a == PC_NAME_NONE && b == x)); /* never half a rename */
        drawn[b == x]++;
    }
    assert_true(drawn[0] && drawn[1]);
    /* 2: e's fsync leaves d alone; 3: d's fsync lands the rename with every tear but none */
    NS_STEP(PC_CALL_FSYNC_DIR, BOTH(pc_model_dir_sync_path(m, "e"), pc_tw_dir_sync_path(w, "e")));
    assert_int_equal(live[1][1][1], y);
    NS_STEP(PC_CALL_FSYNC_DIR, BOTH(pc_model_dir_sync_path(m, "d"), pc_tw_dir_sync_path(w, "d")));
    assert_int_equal(live[2][1][0], y);
    assert_int_equal(live[2][1][1], x);
    assert_int_equal(live[2][0][1], PC_NAME_NONE);
    assert_int_equal(holds_at(m, "d/b", "none"), x); /* durable once the step ended */
    /* 4: e/c unlinked: there until e's fsync, with its file */
    NS_STEP(PC_CALL_UNLINK, BOTH(pc_model_unlink(m, "e/c", 0), pc_tw_unlink(w, "e/c", 0)));
    assert_int_equal(live[3][2][0], z);
    assert_int_equal(live[3][2][2], PC_NAME_NONE);
    /* 5: a link of d/b's file as e/l */
    NS_STEP(PC_CALL_LINK, BOTH(pc_model_link(m, "d/b", "e/l", 0), pc_tw_link(w, "d/b", "e/l", 0)));
    assert_int_equal(live[4][3][0], PC_NAME_NONE);
    assert_int_equal(live[4][3][2], x);
    /* 6: e's fsync: both changes there land */
    NS_STEP(PC_CALL_FSYNC_DIR, BOTH(pc_model_dir_sync_path(m, "e"), pc_tw_dir_sync_path(w, "e")));
    assert_int_equal(live[5][2][1], PC_NAME_NONE);
    assert_int_equal(live[5][3][1], x);
    /* 7: e/l renamed over e/o, which held a file the model does not track */
    NS_STEP(PC_CALL_RENAME, BOTH(pc_model_rename(m, "e/l", "e/o", PC_NAME_OVER_OTHER),
                                 pc_tw_rename(w, "e/l", "e/o", PC_NAME_OVER_OTHER)));
    assert_int_equal(live[6][4][0], PC_NAME_OTHER);
    assert_int_equal(live[6][4][2], x);
    /* 8: a change durable at once (names not modelled) */
    NS_STEP(PC_CALL_UNLINK, BOTH(pc_model_unlink(m, "d/b", PC_NAME_DURABLE), pc_tw_unlink(w, "d/b", PC_NAME_DURABLE)));
    assert_int_equal(live[7][1][0], PC_NAME_NONE);
    /* 9: a dir fsync that fails lands nothing */
    pc_crash none;
    assert_int_equal(pc_crash_parse("none", &none), PC_OK);
    NS_STEP(PC_CALL_FSYNC_DIR, BOTH(pc_model_dir_sync_path(m, "e"), pc_tw_dir_sync_path(w, "e"));
            BOTH(pc_model_step_fail(m, &none), pc_tw_step_fail(w, &none)));
    assert_int_equal(holds_at(m, "e/o", "none"), PC_NAME_OTHER);
#undef NS_STEP
#undef BOTH
    assert_int_equal(pc_tw_finish(w), PC_OK);
    const uint8_t *buf;
    size_t len;
    assert_int_equal(pc_tw_buffer(w, &buf, &len), PC_OK);
    pc_trace *t;
    assert_int_equal(pc_trace_from_memory(buf, len, &t), PC_OK);
    pc_replay *r;
    assert_int_equal(pc_replay_new(t, &r), PC_OK);
    for (uint64_t s = 1; s <= NS_STEPS; s++) {
        uint64_t got;
        assert_int_equal(pc_replay_next(r, &got), PC_OK);
        assert_int_equal(got, s);
        pc_model *rm;
        assert_int_equal(pc_replay_model(r, &rm), PC_OK);
        uint32_t replayed[NS_NNAMES][NS_NSPECS];
        ns_table(rm, replayed);
        assert_memory_equal(replayed, live[s - 1], sizeof replayed);
    }
    pc_replay_free(r);
    pc_trace_free(t);
    pc_tw_free(w);
    pc_model_free(m);
}

/* The ext4 profile (pc_model_set_journal). Names: "d/a" (file a, durable), "e/n" (file n,
 * created), and the names the operations below make. */
static const char *const j_names[] = {"d/a", "d/b", "e/n", "e/l", "d/t", "d/c"};
static const char *const j_specs[] = {"none", "all:all", "none:all", "all:none", "prefix:1:all",
                                      "none:random:1", "none:random:2", "none:random:5"};
enum { J_NNAMES = 6, J_NSPECS = 8, J_STEPS = 10 };

static void j_table(pc_model *m, uint32_t (*out)[J_NSPECS])
{
    for (int i = 0; i < J_NNAMES; i++)
        for (int j = 0; j < J_NSPECS; j++) out[i][j] = holds_at(m, j_names[i], j_specs[j]);
}

static uint8_t *image_id(pc_model *m, uint32_t id, const char *spec, uint64_t *len)
{
    pc_crash c;
    assert_int_equal(pc_crash_parse(spec, &c), PC_OK);
    uint8_t *img;
    assert_int_equal(pc_model_image(m, id, &c, &img, len), PC_OK);
    return img;
}

/* Namespace operations reach the disk in program order: every image holds a prefix of those
 * not committed, whatever the directories (posix draws each one alone). */
static void test_ext4_prefix(void **st)
{
    (void)st;
    pc_model *m;
    assert_int_equal(pc_model_new(SEC, &m), PC_OK);
    assert_int_equal(pc_model_set_journal(m), PC_OK);
    uint32_t a, n;
    assert_int_equal(pc_model_add_file(m, "d/a", "x", 1, &a), PC_OK);
    assert_int_equal(pc_model_set_journal(m), PC_ESTATE); /* only before any file */
    assert_int_equal(pc_model_add_file(m, "e/n", "y", 1, &n), PC_OK);
    assert_int_equal(pc_model_created(m, n), PC_OK);              /* 1: e/n created */
    assert_int_equal(pc_model_rename(m, "d/a", "d/b", 0), PC_OK); /* 2: d/a -> d/b */
    assert_int_equal(pc_model_link(m, "d/b", "e/l", 0), PC_OK);   /* 3: e/l, a link of it */
    assert_int_equal(pc_model_unlink(m, "e/n", 0), PC_OK);        /* 4: e/n removed */
    /* the states with the first k operations, k = 0..4: e/n, d/a, d/b, e/l */
    const uint32_t want[5][4] = {
        {PC_NAME_NONE, a, PC_NAME_NONE, PC_NAME_NONE},
        {n, a, PC_NAME_NONE, PC_NAME_NONE},
        {n, PC_NAME_NONE, a, PC_NAME_NONE},
        {n, PC_NAME_NONE, a, a},
        {PC_NAME_NONE, PC_NAME_NONE, a, a},
    };
    int seen[5] = {0};
    for (int seed = 0; seed < 64; seed++) {
        char spec[32];
        snprintf(spec, sizeof spec, "none:random:%d", seed);
        uint32_t got[4] = {holds_at(m, "e/n", spec), holds_at(m, "d/a", spec), holds_at(m, "d/b", spec),
                           holds_at(m, "e/l", spec)};
        int k = 0;
        while (k < 5 && memcmp(got, want[k], sizeof got)) k++;
        if (k == 5) fail_msg("seed %d: e/n %u d/a %u d/b %u e/l %u is no prefix", seed, got[0], got[1], got[2], got[3]);
        seen[k]++;
    }
    for (int k = 0; k < 5; k++) assert_true(seen[k]);
    assert_int_equal(holds_at(m, "d/b", "none"), PC_NAME_NONE); /* nothing committed */
    assert_int_equal(holds_at(m, "e/l", "none:all"), a);       /* the periodic commit: all */
    pc_model_free(m);
}

/* A commit: an fsync of any directory commits every operation (posix: only its own), as the
 * size of a sync: with the step's data, never with tear none. An fsync of a file commits when
 * the file changed since the last commit; fdatasync when its size did (or it was created). */
static void test_ext4_commit(void **st)
{
    (void)st;
    pc_model *m;
    assert_int_equal(pc_model_new(SEC, &m), PC_OK);
    assert_int_equal(pc_model_set_journal(m), PC_OK);
    uint32_t a, n;
    assert_int_equal(pc_model_add_file(m, "d/a", "x", 1, &a), PC_OK);
    assert_int_equal(pc_model_add_file(m, "e/n", "y", 1, &n), PC_OK);
    assert_int_equal(pc_model_rename(m, "d/a", "d/b", 0), PC_OK);
    assert_int_equal(pc_model_journal_commit(m, a, 0), PC_ESTATE); /* only inside a step */
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_dir_sync_path(m, "z"), PC_OK); /* a directory holding none of them */
    assert_int_equal(holds_at(m, "d/b", "none"), PC_NAME_NONE);
    assert_int_equal(holds_at(m, "d/b", "all"), a);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    assert_int_equal(holds_at(m, "d/b", "none"), a);
    assert_int_equal(holds_at(m, "d/a", "none"), PC_NAME_NONE);
    /* an fsync of e/n, unchanged since: commits nothing */
    assert_int_equal(pc_model_unlink(m, "d/b", 0), PC_OK);
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, n, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_model_journal_commit(m, n, 0), PC_OK);
    assert_int_equal(holds_at(m, "d/b", "all"), a);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    assert_int_equal(holds_at(m, "d/b", "none"), a);
    /* fdatasync of e/n overwritten in place: nothing either */
    assert_int_equal(pc_model_write(m, n, 0, "Y", 1), PC_OK);
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, n, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_model_journal_commit(m, n, 1), PC_OK);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    assert_int_equal(holds_at(m, "d/b", "none"), a);
    /* fsync of e/n written since: commits the unlink, with the step's data */
    assert_int_equal(pc_model_write(m, n, 0, "Z", 1), PC_OK);
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, n, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_model_journal_commit(m, n, 0), PC_OK);
    assert_int_equal(holds_at(m, "d/b", "none"), a);            /* tear none: not committed */
    assert_int_equal(holds_at(m, "d/b", "all"), PC_NAME_NONE);  /* tear all: committed */
    assert_int_equal(pc_model_step_end(m), PC_OK);
    assert_int_equal(holds_at(m, "d/b", "none"), PC_NAME_NONE);
    /* fdatasync of e/n grown: commits */
    assert_int_equal(pc_model_link(m, "e/n", "e/l", 0), PC_OK);
    assert_int_equal(pc_model_write(m, n, 1, "Z", 1), PC_OK);
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_sync(m, n, 0, UINT64_MAX), PC_OK);
    assert_int_equal(pc_model_journal_commit(m, n, 1), PC_OK);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    assert_int_equal(holds_at(m, "e/l", "none"), n);
    /* a failed directory fsync (tear none) commits nothing */
    pc_crash none;
    assert_int_equal(pc_crash_parse("none", &none), PC_OK);
    assert_int_equal(pc_model_unlink(m, "e/l", 0), PC_OK);
    assert_int_equal(pc_model_step_begin(m, NULL), PC_OK);
    assert_int_equal(pc_model_dir_sync_path(m, "e"), PC_OK);
    assert_int_equal(pc_model_step_fail(m, &none), PC_OK);
    assert_int_equal(pc_model_step_end(m), PC_OK);
    assert_int_equal(holds_at(m, "e/l", "none"), n);
    pc_model_free(m);
}

/* auto_da_alloc: a rename over an existing name writes the renamed file's dirty data in its
 * step, and is in no image without all of it; a rename to a new name writes nothing. The trace
 * (JOURNAL, JCOMMIT) and the exec hand-over (JOP) give the same answers. */
static void test_ext4_replace(void **st)
{
    (void)st;
    pc_model *m;
    pc_tw *w;
    assert_int_equal(pc_model_new(SEC, &m), PC_OK);
    assert_int_equal(pc_tw_new(-1, SEC, &w), PC_OK);
    assert_int_equal(pc_model_set_journal(m), PC_OK);
    assert_int_equal(pc_tw_journal(w), PC_OK);
    uint32_t a, t, c;
    assert_int_equal(pc_model_add_file(m, "d/b", "old", 3, &a), PC_OK);
    assert_int_equal(pc_tw_file(w, 0, "d/b", "old", 3), PC_OK);
    assert_int_equal(pc_model_add_file(m, "d/t", NULL, 0, &t), PC_OK);
    assert_int_equal(pc_tw_file(w, 1, "d/t", NULL, 0), PC_OK);
    assert_int_equal(pc_model_created(m, t), PC_OK);
    assert_int_equal(pc_tw_created(w, t), PC_OK);
    assert_int_equal(pc_model_add_file(m, "d/c", NULL, 0, &c), PC_OK);
    assert_int_equal(pc_tw_file(w, 2, "d/c", NULL, 0), PC_OK);
    assert_int_equal(pc_model_created(m, c), PC_OK);
    assert_int_equal(pc_tw_created(w, c), PC_OK);
    uint8_t data[3 * SEC];
    memset(data, 'n', sizeof data);
    uint32_t live[J_STEPS][J_NNAMES][J_NSPECS];
    uint64_t k = 0, n;
#define J_STEP(call, body) do { \
        assert_int_equal(pc_model_step_begin(m, &k), PC_OK); \
        assert_int_equal(pc_tw_step(w, k, call, 0, 0, 0, 0), PC_OK); \
        body; \
        j_table(m, live[k - 1]); \
        assert_int_equal(pc_model_step_end(m), PC_OK); \
        assert_int_equal(pc_tw_step_end(w), PC_OK); \
    } while (0)
#define BOTH(mcall, tcall) do { assert_int_equal(mcall, PC_OK); assert_int_equal(tcall, PC_OK); } while (0)
    /* 1: d/t written, not synced; 2: d/c written, not synced */
    J_STEP(PC_CALL_WRITE, BOTH(pc_model_write(m, t, 0, data, sizeof data), pc_tw_write(w, t, 0, data, sizeof data, 0)));
    J_STEP(PC_CALL_WRITE, BOTH(pc_model_write(m, c, 0, data, SEC), pc_tw_write(w, c, 0, data, SEC, 0)));
    assert_int_equal(pc_model_rename(m, "d/t", "d/b", 0), PC_ESTATE); /* over a file: in a step */
    /* 3: d/t renamed over d/b: its 3 dirty sectors are the step's to write */
    J_STEP(PC_CALL_RENAME, BOTH(pc_model_rename(m, "d/t", "d/b", 0), pc_tw_rename(w, "d/t", "d/b", 0));
           assert_int_equal(pc_model_step_sectors(m, &n), PC_OK); assert_int_equal(n, 3));
    assert_int_equal(live[2][1][2], a); /* none:all: all committed but the rename, its data not written */
    assert_int_equal(live[2][4][2], t); /* (d/t's creation was) */
    assert_int_equal(live[2][1][4], a); /* prefix:1:all: a third of it: neither */
    assert_int_equal(live[2][1][1], t); /* all:all: the data, then the rename */
    for (int s = 5; s < J_NSPECS; s++)
        if (live[2][1][s] != a && live[2][1][s] != t) fail_msg("%s: d/b holds %u", j_specs[s], live[2][1][s]);
    uint64_t len;
    uint8_t *img = image_id(m, t, "none", &len);
    assert_int_equal(len, sizeof data); /* written when the rename's step ended */
    assert_memory_equal(img, data, len);
    free(img);
    assert_int_equal(holds_at(m, "d/b", "none"), a); /* but not committed */
    assert_int_equal(holds_at(m, "d/b", "none:all"), t);
    /* 4: d/c renamed to a new name: writes nothing, its data may miss the committed rename */
    J_STEP(PC_CALL_RENAME, BOTH(pc_model_rename(m, "d/c", "d/a", 0), pc_tw_rename(w, "d/c", "d/a", 0));
           assert_int_equal(pc_model_step_sectors(m, &n), PC_OK); assert_int_equal(n, 0));
    assert_int_equal(live[3][0][2], c);
    img = image_id(m, c, "none", &len);
    assert_int_equal(len, 0);
    free(img);
    /* the exec hand-over: the model rebuilt from its dump has the journal, in order */
    pc_tw *hw;
    assert_int_equal(pc_tw_new(-1, SEC, &hw), PC_OK);
    assert_int_equal(pc__model_dump(m, hw), PC_OK);
    const uint8_t *hb;
    size_t hl;
    assert_int_equal(pc_tw_buffer(hw, &hb, &hl), PC_OK);
    pc_trace *ht;
    assert_int_equal(pc_trace_from_memory(hb, hl, &ht), PC_OK);
    pc_replay *hr;
    assert_int_equal(pc_replay_new(ht, &hr), PC_OK);
    assert_int_equal(pc_replay_next(hr, &n), PC_OK);
    assert_int_equal(n, 0);
    pc_model *hm = pc__replay_take(hr);
    uint32_t before[J_NNAMES][J_NSPECS], after[J_NNAMES][J_NSPECS];
    j_table(m, before);
    j_table(hm, after);
    assert_memory_equal(before, after, sizeof before);
    pc_model_free(hm);
    pc_replay_free(hr);
    pc_trace_free(ht);
    pc_tw_free(hw);
    /* 5: an fsync of d/c's file (written since): commits both renames */
    J_STEP(PC_CALL_FSYNC, BOTH(pc_model_sync(m, c, 0, UINT64_MAX), pc_tw_sync(w, c, 0, UINT64_MAX));
           BOTH(pc_model_journal_commit(m, c, 0), pc_tw_journal_commit(w, c, 0)));
    assert_int_equal(live[4][0][1], c);
    assert_int_equal(live[4][0][0], PC_NAME_NONE);
    assert_int_equal(holds_at(m, "d/a", "none"), c);
    assert_int_equal(holds_at(m, "d/b", "none"), t);
    /* 6: d/a unlinked; 7: a directory's fsync commits it */
    J_STEP(PC_CALL_UNLINK, BOTH(pc_model_unlink(m, "d/a", 0), pc_tw_unlink(w, "d/a", 0)));
    J_STEP(PC_CALL_FSYNC_DIR, BOTH(pc_model_dir_sync_path(m, "q"), pc_tw_dir_sync_path(w, "q")));
    assert_int_equal(holds_at(m, "d/a", "none"), PC_NAME_NONE);
#undef J_STEP
#undef BOTH
    assert_int_equal(pc_tw_finish(w), PC_OK);
    const uint8_t *buf;
    size_t blen;
    assert_int_equal(pc_tw_buffer(w, &buf, &blen), PC_OK);
    pc_trace *tr;
    assert_int_equal(pc_trace_from_memory(buf, blen, &tr), PC_OK);
    pc_replay *r;
    assert_int_equal(pc_replay_new(tr, &r), PC_OK);
    for (uint64_t s = 1; s <= 7; s++) {
        uint64_t got;
        assert_int_equal(pc_replay_next(r, &got), PC_OK);
        assert_int_equal(got, s);
        pc_model *rm;
        assert_int_equal(pc_replay_model(r, &rm), PC_OK);
        uint32_t replayed[J_NNAMES][J_NSPECS];
        j_table(rm, replayed);
        assert_memory_equal(replayed, live[s - 1], sizeof replayed);
    }
    pc_replay_free(r);
    pc_trace_free(tr);
    pc_tw_free(w);
    pc_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unsynced_absent_synced_present),
        cmocka_unit_test(test_clean_file_images),
        cmocka_unit_test(test_range_sync_only_that_range),
        cmocka_unit_test(test_truncate_grow_needs_sync),
        cmocka_unit_test(test_tear_prefix_suffix),
        cmocka_unit_test(test_tear_garbage),
        cmocka_unit_test(test_tear_size_after_data),
        cmocka_unit_test(test_writeback),
        cmocka_unit_test(test_writeback_all_on_fsync_step_is_exclusive),
        cmocka_unit_test(test_random_determinism),
        cmocka_unit_test(test_file_record_keeps_data_runs_only),
        cmocka_unit_test(test_lose_fsync_gate),
        cmocka_unit_test(test_step_fail_outcomes),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_many_sectors),
        cmocka_unit_test(test_image_sectors_equal_image),
        cmocka_unit_test(test_trace_replay_matches_live),
        cmocka_unit_test(test_trace_dirty),
        cmocka_unit_test(test_disk_blocks),
        cmocka_unit_test(test_created_names),
        cmocka_unit_test(test_namespace_ops),
        cmocka_unit_test(test_ext4_prefix),
        cmocka_unit_test(test_ext4_commit),
        cmocka_unit_test(test_ext4_replace),
        cmocka_unit_test(test_writeback_follows_changes_in_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
