/* test_inproc.c: libpowercut linked into the executable (as in-process fuzzers use it): reset
 * between runs, crash images delivered in memory to a callback, mapping stores tracked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../powercut.h"

static char dir[64], file[128];
static jmp_buf back;
static uint8_t *got;
static uint64_t got_len;
static int calls;

static void on_image(void *ctx, const char *name, const uint8_t *img, uint64_t len)
{
    (void)ctx;
    assert_string_equal(name, file);
    free(got);
    got = malloc(len ? len : 1);
    memcpy(got, img, len);
    got_len = len;
    calls++;
    longjmp(back, 1); /* abandon the run, as a fuzzer does */
}

/* A workload of 5 steps: write, fsync, 2 mapping stores each followed by msync, write. */
static void workload(void)
{
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    char buf[2048];
    memset(buf, 'a', sizeof buf);
    assert_int_equal(pwrite(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf); /* 1 */
    assert_int_equal(fsync(fd), 0);                                         /* 2 */
    char *p = mmap(NULL, 2048, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 'b', 512);
    assert_int_equal(msync(p, 4096, MS_SYNC), 0); /* 3 */
    memset(p + 1024, 'c', 512);
    assert_int_equal(msync(p, 4096, MS_SYNC), 0); /* 4 */
    memset(buf, 'd', sizeof buf);
    assert_int_equal(pwrite(fd, buf, 100, 0), 100); /* 5 */
    munmap(p, 2048);
    close(fd);
}

static int run_cut(uint64_t step, const char *spec)
{
    pc_crash c;
    assert_int_equal(pc_crash_parse(spec, &c), PC_OK);
    assert_int_equal(pc_shim_set_cut(step, &c), PC_OK);
    assert_int_equal(pc_shim_reset(), PC_OK);
    calls = 0;
    if (setjmp(back) == 0) {
        workload();
        return 0; /* ran to the end: no cut */
    }
    return 1;
}

static void test_cuts_in_memory(void **st)
{
    (void)st;
    assert_int_equal(pc_shim_set_image_cb(on_image, NULL), PC_OK);
    assert_int_equal(run_cut(1, "all"), 1);
    assert_int_equal(got_len, 0);
    assert_int_equal(run_cut(2, "all"), 1);
    assert_int_equal(got_len, 2048);
    assert_int_equal(got[0], 'a');
    assert_int_equal(run_cut(4, "none"), 1); /* step 3 made the first store durable */
    assert_int_equal(got[0], 'b');
    assert_int_equal(got[1024], 'a');
    assert_int_equal(run_cut(4, "all"), 1);
    assert_int_equal(got[1024], 'c');
    assert_int_equal(got[1536], 'a');
    assert_int_equal(run_cut(5, "all:all"), 1); /* volatile state with step 5's write */
    assert_int_equal(got[0], 'd');
    assert_int_equal(got[100], 'b');
    assert_int_equal(got[1024], 'c');
    /* determinism across runs */
    assert_int_equal(run_cut(4, "random:3"), 1);
    uint8_t *first = got;
    got = NULL;
    assert_int_equal(run_cut(4, "random:3"), 1);
    assert_memory_equal(first, got, got_len);
    free(first);
    /* no cut: the workload completes, the shim counted its steps */
    assert_int_equal(run_cut(0, "none"), 0);
    pc_stats s;
    assert_int_equal(pc_shim_stats(&s), PC_OK);
    assert_int_equal(s.steps, 5);
    assert_true(s.harvested >= 1); /* the page stays open after its first fault */
    /* an error instead of a cut */
    assert_int_equal(pc_shim_set_error(2, EIO), PC_OK);
    assert_int_equal(pc_shim_reset(), PC_OK);
    int fd = open(file, O_RDWR | O_CREAT, 0644);
    assert_int_equal(pwrite(fd, "x", 1, 0), 1);
    errno = 0;
    assert_int_equal(fsync(fd), -1);
    assert_int_equal(errno, EIO);
    close(fd);
    assert_int_equal(pc_shim_set_error(0, 0), PC_OK);
    free(got);
    got = NULL;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/pcinproc.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(file, sizeof file, "%s/f", dir);
    setenv("POWERCUT_FILE", file, 1);
    unsetenv("POWERCUT_CUT");
    unsetenv("POWERCUT_TRACE");
    unsetenv("POWERCUT_ERROR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuts_in_memory),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(file);
    rmdir(dir);
    return rc;
}
