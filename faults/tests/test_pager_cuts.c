/* test_pager_cuts.c: the pager under the shim: a small marked workload is recorded once, and
 * the crash image of every step, tear and writeback choice derived from the trace must open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../powercut.h"
#include "mappedpages.h"

/* Same layout conventions as test_shim.c: pc_pager_work next to this binary, the release shim
 * in BUILD/lib (this test is built in the tst variant only). */
static char work[PATH_MAX + 32], shim[PATH_MAX + 32], dir[64];

static int setup(void **st)
{
    (void)st;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *d = dirname(exe);
    snprintf(work, sizeof work, "%s/pc_pager_work", d);
    snprintf(shim, sizeof shim, "%s/../../../lib/libpowercut.so", d);
    snprintf(dir, sizeof dir, "/tmp/pcpager.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void record_as(const char *mmap_mode, const char *pages, const char *trace, int ops, const char *how)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("LD_PRELOAD", shim, 1);
        setenv("POWERCUT_FILE", pages, 1);
        setenv("POWERCUT_TRACE", trace, 1);
        setenv("POWERCUT_MMAP", mmap_mode, 1);
        unsetenv("POWERCUT_CUT");
        char n[16];
        snprintf(n, sizeof n, "%d", ops);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execl(work, work, pages, n, "4096", how, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void record(const char *mmap_mode, const char *pages, const char *trace, int ops)
{
    record_as(mmap_mode, pages, trace, ops, NULL);
}

static const char *const crashes[] = {
    "none:none", "all:none", "prefix:1:none", "suffix:1:none", "random:none", "none:all", "all:all",
    "random:random",
};

static void check_all_steps_as(const char *mmap_mode, const char *how)
{
    char pages[128], trace[128], img_path[128];
    snprintf(pages, sizeof pages, "%s/p.pages", dir);
    snprintf(trace, sizeof trace, "%s/p.trace", dir);
    snprintf(img_path, sizeof img_path, "%s/img.pages", dir);
    record_as(mmap_mode, pages, trace, how ? 40 : 24, how);
    pc_trace *t;
    assert_int_equal(pc_trace_open(trace, &t), PC_OK);
    uint64_t nsteps;
    assert_int_equal(pc_trace_step_count(t, &nsteps), PC_OK);
    assert_true(nsteps > 24);
    if (how) {
        unsigned grown = 0, reserved = 0;
        for (uint64_t k = 1; k <= nsteps; k++) {
            pc_step_info info;
            assert_int_equal(pc_trace_step_info(t, k, &info), PC_OK);
            grown += info.call == PC_CALL_FTRUNCATE;
            reserved += info.call == PC_CALL_FALLOCATE;
        }
        if (!grown || !reserved) fail_msg("%s: %u ftruncate and %u fallocate steps", how, grown, reserved);
    }
    pc_replay *r;
    assert_int_equal(pc_replay_new(t, &r), PC_OK);
    unsigned bad = 0, images = 0;
    for (;;) {
        uint64_t k;
        assert_int_equal(pc_replay_next(r, &k), PC_OK);
        if (!k) break;
        pc_step_info info;
        assert_int_equal(pc_trace_step_info(t, k, &info), PC_OK);
        pc_model *m;
        assert_int_equal(pc_replay_model(r, &m), PC_OK);
        for (size_t i = 0; i < sizeof crashes / sizeof crashes[0]; i++) {
            char spec[64];
            snprintf(spec, sizeof spec, "%s:%llu", crashes[i], (unsigned long long)k);
            pc_crash c;
            assert_int_equal(pc_crash_parse(spec, &c), PC_OK);
            uint8_t *img;
            uint64_t len;
            assert_int_equal(pc_model_image(m, 0, &c, &img, &len), PC_OK);
            FILE *f = fopen(img_path, "wb");
            assert_non_null(f);
            assert_int_equal(fwrite(img, 1, len, f), len);
            fclose(f);
            free(img);
            /* a cut inside mp_create leaves an interrupted create, which MP_CREATE redoes */
            mp_pager *p;
            char why[256] = "";
            int rc = mp_open_explain(img_path, info.op == 1 ? MP_CREATE : 0, &p, why, sizeof why);
            unsigned findings = 0;
            if (rc == MP_OK) {
                mp_check(p, NULL, NULL, &findings);
                mp_close(p);
            }
            if (rc != MP_OK || findings) {
                if (bad < 10)
                    print_message("step %llu (%s, op %llu '%s') %s: %s%s\n", (unsigned long long)k,
                                  pc_call_name(info.call), (unsigned long long)info.op, info.label, spec,
                                  rc != MP_OK ? mp_strerror(rc) : "mp_check findings", why[0] ? why : "");
                bad++;
            }
            images++;
        }
    }
    print_message("%s%s%s: %llu steps, %u images, %u rejected\n", mmap_mode, how ? " " : "", how ? how : "",
                  (unsigned long long)nsteps, images, bad);
    assert_int_equal(bad, 0);
    pc_replay_free(r);
    pc_trace_free(t);
}

static void check_all_steps(const char *mmap_mode)
{
    check_all_steps_as(mmap_mode, NULL);
}

static void test_pager_every_step_track(void **st)
{
    (void)st;
    check_all_steps("track");
}

/* MP_SPARSE: growth by ftruncate and the reservation of the pages the pager writes into (an
 * fallocate inside the file's size) are steps too; every crash state of them opens clean as
 * well, and the trace has both kinds (the pager grew the sparse way). */
static void test_pager_every_step_sparse(void **st)
{
    (void)st;
    check_all_steps_as("track", "sparse");
}

static void test_pager_every_step_sync(void **st)
{
    (void)st;
    check_all_steps("sync");
}

static uint8_t *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)*len + 1);
    assert_int_equal(fread(b, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
    return b;
}

/* The write-tracking backends note the same pages at the same steps: the pager's traces are
 * identical, byte for byte, under mprotect, uffd and the default that switches between them
 * (so every image above is the same under each). */
static void test_pager_backends_same_trace(void **st)
{
    (void)st;
    const char *const backends[] = {"mprotect", "uffd", "track"};
    uint8_t *first = NULL;
    long first_len = 0;
    for (size_t i = 0; i < 3; i++) {
        char pages[128], trace[128];
        snprintf(pages, sizeof pages, "%s/b.pages", dir);
        snprintf(trace, sizeof trace, "%s/b.%s.trace", dir, backends[i]);
        record(backends[i], pages, trace, 200);
        long len;
        uint8_t *t = slurp(trace, &len);
        if (!first) {
            first = t;
            first_len = len;
            continue;
        }
        if (len != first_len || memcmp(t, first, (size_t)len))
            fail_msg("the pager's trace under %s differs from mprotect's", backends[i]);
        free(t);
    }
    free(first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pager_every_step_track),
        cmocka_unit_test(test_pager_every_step_sync),
        cmocka_unit_test(test_pager_every_step_sparse),
        cmocka_unit_test(test_pager_backends_same_trace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
