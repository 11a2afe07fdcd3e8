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
#include <sys/stat.h>
#include <unistd.h>

#include "../powercut.h"
#include "uffd_probe.h"

static char dir[64], file[128];
static jmp_buf back;
static uint8_t *got;
static uint64_t got_len;
static int calls;
static int efd;
static int stay; /* the callback returns (PC_AFTER_CUT_CONTINUE) instead of jumping out */

static void on_image(void *ctx, const char *name, const uint8_t *img, uint64_t len)
{
    (void)ctx;
    assert_string_equal(name, file);
    free(got);
    got = malloc(len ? len : 1);
    memcpy(got, img, len);
    got_len = len;
    calls++;
    if (!stay) longjmp(back, 1); /* abandon the run, as a fuzzer does */
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
    /* ... with an outcome: the failing msync (step 3) wrote all of its sectors, or none */
    pc_crash tear, none;
    assert_int_equal(pc_crash_parse("none", &none), PC_OK);
    for (int all = 0; all < 2; all++) {
        assert_int_equal(pc_crash_parse(all ? "all" : "none", &tear), PC_OK);
        assert_int_equal(pc_shim_set_error_tear(3, EIO, &tear), PC_OK);
        assert_int_equal(pc_shim_set_cut(4, &none), PC_OK);
        assert_int_equal(pc_shim_reset(), PC_OK);
        if (setjmp(back) == 0) {
            efd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
            fd = efd;
            char buf[2048];
            memset(buf, 'a', sizeof buf);
            assert_int_equal(pwrite(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf); /* 1 */
            assert_int_equal(fsync(fd), 0);                                         /* 2 */
            char *p = mmap(NULL, 2048, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            memset(p, 'b', 512);
            assert_int_equal(msync(p, 4096, MS_SYNC), -1); /* 3: fails */
            assert_int_equal(errno, EIO);
            msync(p, 4096, MS_SYNC); /* 4: cut */
            fail();
        }
        assert_int_equal(got[0], all ? 'b' : 'a');
        close(efd); /* (a static: locals changed after setjmp are lost by the longjmp) */
    }
    assert_int_equal(pc_shim_set_error_tear(0, 0, NULL), PC_OK);
    assert_int_equal(pc_shim_set_cut(0, &none), PC_OK);
    pc_crash garbage;
    assert_int_equal(pc_crash_parse("garbage:1", &garbage), PC_OK);
    assert_int_equal(pc_shim_set_error_tear(3, EIO, &garbage), PC_EINVAL);
    assert_int_equal(pc_shim_set_error_tear(3, PC_ERRNO_SHORT, &none), PC_EINVAL);
    free(got);
    got = NULL;
}

/* Whether the kernel's VmFlags of the mapping at addr (/proc/self/smaps) include flag. */
static int vm_flag(const void *addr, const char *flag)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512], want[32];
    snprintf(want, sizeof want, "%lx-", (unsigned long)(uintptr_t)addr);
    int in = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        if (strchr(line, '-') && !strncmp(line, want, strlen(want))) in = 1;
        else if (in && !strncmp(line, "VmFlags:", 8)) {
            char w[8];
            snprintf(w, sizeof w, " %s", flag);
            found = strstr(line, w) != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

/* Images of every step of the workload, for a few crash choices, under one backend. */
static void images_under(const char *backend, uint8_t **imgs, uint64_t *lens)
{
    static const char *const specs[] = {"none", "all:all", "random:3:random:4:5"};
    setenv("POWERCUT_MMAP", backend, 1);
    for (uint64_t k = 1; k <= 5; k++)
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(run_cut(k, specs[i]), 1);
            imgs[(k - 1) * 3 + i] = got;
            lens[(k - 1) * 3 + i] = got_len;
            got = NULL;
        }
    unsetenv("POWERCUT_MMAP");
}

/* Both write-tracking backends give the same images; reset ends the uffd registration (the
 * kernel's VmFlags show "uw" while a mapping is registered for uffd write-protection). */
static void test_backends_and_reset(void **st)
{
    (void)st;
    assert_int_equal(pc_shim_set_image_cb(on_image, NULL), PC_OK);
    uint8_t *a[15], *b[15];
    uint64_t la[15], lb[15];
    images_under("mprotect", a, la);
    images_under("uffd", b, lb);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(la[i], lb[i]);
        assert_memory_equal(a[i], b[i], la[i]);
        free(a[i]);
        free(b[i]);
    }
    /* a mapping registered under uffd, then a reset: the program keeps a plain mapping */
    setenv("POWERCUT_MMAP", "uffd", 1);
    assert_int_equal(pc_shim_set_cut(0, NULL), PC_OK);
    assert_int_equal(pc_shim_reset(), PC_OK);
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 8192), 0);
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    p[0] = 'x';
    assert_int_equal(vm_flag(p, "uw"), uffd_available());
    assert_int_equal(pc_shim_reset(), PC_OK);
    assert_false(vm_flag(p, "uw"));
    p[4096] = 'y'; /* still writable, and no longer tracked */
    pc_stats s;
    assert_int_equal(pc_shim_stats(&s), PC_OK);
    assert_int_equal(s.faults, 0);
    munmap(p, 8192);
    close(fd);
    unsetenv("POWERCUT_MMAP");
    assert_int_equal(pc_shim_reset(), PC_OK);
    free(got);
    got = NULL;
}

/* PC_AFTER_CUT_CONTINUE: the cut call succeeds and the workload (which asserts every call)
 * runs to its end, leaving the file a run without the shim leaves, after one image: the
 * image a failing cut gives, under every backend, lazy included. */
static void test_cut_then_continue(void **st)
{
    (void)st;
    static const char *const backends[] = {"mprotect", "uffd", "track", "lazy"};
    static const char *const specs[] = {"none:all", "all:random:3", "prefix:1"};
    assert_int_equal(pc_shim_set_image_cb(on_image, NULL), PC_OK);
    assert_int_equal(pc_shim_set_after_cut(7), PC_EINVAL);
    for (size_t b = 0; b < 4; b++)
        for (uint64_t k = 1; k <= 5; k++)
            for (size_t i = 0; i < 3; i++) {
                setenv("POWERCUT_MMAP", backends[b], 1);
                assert_int_equal(run_cut(k, specs[i]), 1);
                uint8_t *failed = got;
                uint64_t failed_len = got_len;
                got = NULL;
                assert_int_equal(pc_shim_set_after_cut(PC_AFTER_CUT_CONTINUE), PC_OK);
                stay = 1;
                assert_int_equal(run_cut(k, specs[i]), 0); /* ran to its end */
                stay = 0;
                assert_int_equal(pc_shim_set_after_cut(PC_AFTER_CUT_FAIL), PC_OK);
                assert_int_equal(calls, 1);
                pc_stats s;
                assert_int_equal(pc_shim_stats(&s), PC_OK);
                assert_int_equal(s.steps, k); /* nothing followed after the cut */
                if (got_len != failed_len || memcmp(got, failed, got_len))
                    fail_msg("%s, step %llu %s: the image differs from a failing cut's", backends[b],
                             (unsigned long long)k, specs[i]);
                free(failed);
                uint8_t end[2048];
                int fd = open(file, O_RDONLY);
                assert_int_equal(pread(fd, end, sizeof end, 0), (ssize_t)sizeof end);
                close(fd);
                for (size_t j = 0; j < sizeof end; j++) {
                    int want = j < 100 ? 'd' : j < 512 ? 'b' : j >= 1024 && j < 1536 ? 'c' : 'a';
                    if (end[j] != want) fail_msg("%s, step %llu: byte %zu of the file is %c", backends[b],
                                                 (unsigned long long)k, j, end[j]);
                }
            }
    unsetenv("POWERCUT_MMAP");
    assert_int_equal(pc_shim_set_cut(0, NULL), PC_OK);
    assert_int_equal(pc_shim_reset(), PC_OK);
    free(got);
    got = NULL;
}

/* pc_shim_cut_model: after a cut, failing or going on, the model still holds the cut step
 * open: step 4's msync makes durable the one sector the store before it changed (bytes 1024 to
 * 1535), and the volatile content is what the program saw. Nothing before a cut or after the
 * reset, nothing for a file the shim does not track. */
static void test_cut_model(void **st)
{
    (void)st;
    pc_model *m;
    uint32_t id, fid;
    uint64_t n, sec, vlen;
    const uint8_t *vol;
    assert_int_equal(pc_shim_set_image_cb(on_image, NULL), PC_OK);
    assert_int_equal(pc_shim_reset(), PC_OK);
    assert_int_equal(pc_shim_cut_model(file, &m, &id), PC_ESTATE);
    for (int goes_on = 0; goes_on < 2; goes_on++) {
        assert_int_equal(pc_shim_set_after_cut(goes_on ? PC_AFTER_CUT_CONTINUE : PC_AFTER_CUT_FAIL), PC_OK);
        stay = goes_on;
        assert_int_equal(run_cut(4, "garbage:1"), !goes_on);
        stay = 0;
        assert_int_equal(calls, 1);
        assert_int_equal(pc_shim_cut_model("/nonexistent/file", &m, &id), PC_ENOENT);
        assert_int_equal(pc_shim_cut_model(file, &m, &id), PC_OK);
        assert_int_equal(pc_model_step_sectors(m, &n), PC_OK);
        assert_int_equal(n, 1);
        assert_int_equal(pc_model_step_sector(m, 0, &fid, &sec), PC_OK);
        assert_int_equal(fid, id);
        assert_int_equal(sec, 2);
        assert_int_equal(pc_model_volatile(m, id, &vol, &vlen), PC_OK);
        assert_int_equal(vlen, 2048);
        assert_int_equal(vol[1024], 'c');
        assert_int_equal(vol[0], 'b');
        /* the image holds garbage exactly there */
        assert_int_equal(got_len, 2048);
        assert_true(memcmp(got + 1024, vol + 1024, 512) != 0);
        assert_int_equal(got[0], 'b');
    }
    assert_int_equal(pc_shim_set_after_cut(PC_AFTER_CUT_FAIL), PC_OK);
    assert_int_equal(pc_shim_set_cut(0, NULL), PC_OK);
    assert_int_equal(pc_shim_reset(), PC_OK);
    assert_int_equal(pc_shim_cut_model(file, &m, &id), PC_ESTATE);
    free(got);
    got = NULL;
}

/* pc_shim_reset forgets names too: a directory that held only a name a rename of the last run
 * made is no directory of a tracked name in the next one (its fsync is no step). */
static void test_names_reset(void **st)
{
    (void)st;
    char sub[160], moved[200];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(moved, sizeof moved, "%s/x", sub);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(pc_shim_set_image_cb(NULL, NULL), PC_OK);
    assert_int_equal(pc_shim_set_cut(0, NULL), PC_OK);
    assert_int_equal(pc_shim_reset(), PC_OK);
    int fd = open(file, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(rename(file, moved), 0); /* step 1 */
    int dfd = open(sub, O_RDONLY | O_DIRECTORY);
    assert_int_equal(fsync(dfd), 0); /* step 2: sub holds the name x */
    pc_stats s;
    assert_int_equal(pc_shim_stats(&s), PC_OK);
    assert_int_equal(s.steps, 2);
    close(fd);
    assert_int_equal(pc_shim_reset(), PC_OK);
    fd = open(file, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fsync(dfd), 0);
    assert_int_equal(pc_shim_stats(&s), PC_OK);
    assert_int_equal(s.steps, 0);
    close(fd);
    close(dfd);
    assert_int_equal(pc_shim_reset(), PC_OK);
    unlink(moved);
    rmdir(sub);
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
        cmocka_unit_test(test_backends_and_reset),
        cmocka_unit_test(test_cut_then_continue),
        cmocka_unit_test(test_cut_model),
        cmocka_unit_test(test_names_reset),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(file);
    rmdir(dir);
    return rc;
}
