/* test_shim.c: end-to-end tests of the LD_PRELOAD shim: runs pc_work under it in child
 * processes and checks crash images, errors, libfiu control, markers and trace replay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../powercut.h"
#include "uffd_probe.h"

/* Built as BUILD/{tst,asan}/faults/tests/test_shim next to pc_work; the tst variant preloads
 * the release shim BUILD/lib/libpowercut.so, the asan one BUILD/asan/lib/libpowercut.so
 * behind the ASan runtime this binary itself loaded (libasan must come first). */
static char work[PATH_MAX + 16], preload[3 * PATH_MAX], dir[64], file[128];
static int asan;
static int capture_err;  /* run(): stderr to dir/err even without POWERCUT_DEBUG */
static int last_signal;  /* run(): the signal that killed the last run, 0 if it exited */

static void find_paths(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    char *d = dirname(exe); /* BUILD/variant/faults/tests */
    snprintf(work, sizeof work, "%s/pc_work", d);
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s/../../..", d);
    char variant[PATH_MAX];
    snprintf(variant, sizeof variant, "%s/../..", d);
    char vreal[PATH_MAX];
    assert_non_null(realpath(variant, vreal));
    asan = !strcmp(basename(vreal), "asan");
    if (!asan) {
        snprintf(preload, sizeof preload, "%s/lib/libpowercut.so", root);
        return;
    }
    char libasan[PATH_MAX] = "";
    FILE *f = fopen("/proc/self/maps", "r");
    char line[PATH_MAX + 128];
    while (f && fgets(line, sizeof line, f)) {
        char *p = strchr(line, '/');
        if (p && strstr(p, "libasan")) {
            p[strcspn(p, "\n")] = 0;
            snprintf(libasan, sizeof libasan, "%s", p);
            break;
        }
    }
    if (f) fclose(f);
    assert_true(libasan[0]);
    snprintf(preload, sizeof preload, "%s %s/asan/lib/libpowercut.so", libasan, root);
}

static int setup(void **st)
{
    (void)st;
    find_paths();
    snprintf(dir, sizeof dir, "/tmp/pcshim.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(file, sizeof file, "%s/f", dir);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void clean(void)
{
    const char *names[] = {"f",     "f.crash", "trace", "out",     "marks",         "g",
                           "err",   "f.ln",    "f.other", "g.crash", "f.src",       "trace.owner",
                           "trace.baton", "trace.refused", "trace.cut", "trace.fork", "trace.request",
                           "fa",    "fb",      "fa.crash", "fb.crash"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
}

/* Runs pc_work on dir/f with the shim; envs are '|'-separated NAME=VALUE, ops space-separated
 * (NOFILE=SOFT:HARD is no variable: the RLIMIT_NOFILE pc_work starts with). Returns the exit
 * status (-1 if killed); stdout goes to dir/out, and with POWERCUT_DEBUG in envs stderr goes
 * to dir/err. */
__attribute__((noreturn)) static void exec_work(const char *envs, const char *path, const char *ops);

static int run(const char *envs, const char *ops)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) exec_work(envs, file, ops);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    last_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Two pc_work processes of one run at work at once (their turns: pc_work's 0, 1 and 2, over
 * two pipes, A's descriptor 7 writing to B's 8 and B's 7 to A's 8), A on dir/f, B on bfile
 * (NULL: dir/f too); their exit statuses in rc. */
static void run_pair(const char *envs, const char *a, const char *b, const char *bfile, int rc[2])
{
    int ab[2], ba[2];
    assert_int_equal(pipe(ab), 0);
    assert_int_equal(pipe(ba), 0);
    pid_t pid[2];
    for (int i = 0; i < 2; i++) {
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) {
            if (dup2(i ? ba[1] : ab[1], 7) < 0 || dup2(i ? ab[0] : ba[0], 8) < 0) _exit(126);
            close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
            exec_work(envs, i && bfile ? bfile : file, i ? b : a);
        }
    }
    close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
    for (int i = 0; i < 2; i++) {
        int status;
        assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
        rc[i] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
}

/* In a child: pc_work on path with ops, under envs (see run()). */
__attribute__((noreturn)) static void exec_work(const char *envs, const char *path, const char *ops)
{
    char *argv[64];
    int argc = 0;
    char opbuf[2048];
    snprintf(opbuf, sizeof opbuf, "%s", ops);
    argv[argc++] = work;
    argv[argc++] = (char *)path;
    for (char *s = strtok(opbuf, " "); s && argc < 63; s = strtok(NULL, " ")) argv[argc++] = s;
    argv[argc] = NULL;
    char envbuf[2048];
    snprintf(envbuf, sizeof envbuf, "%s", envs ? envs : "");
    unsetenv("POWERCUT_CUT");
    unsetenv("POWERCUT_TRACE");
    unsetenv("POWERCUT_ERROR");
    unsetenv("FIU_ENABLE");
    setenv("POWERCUT_FILE", file, 1);
    setenv("LD_PRELOAD", preload, 1);
    if (asan) setenv("ASAN_OPTIONS", "abort_on_error=1:symbolize=0:detect_leaks=0", 1);
    for (char *s = strtok(envbuf, "|"); s; s = strtok(NULL, "|")) {
        char *eq = strchr(s, '=');
        if (!eq) continue;
        *eq = 0;
        if (!strcmp(s, "NOFILE")) {
            unsigned long soft, hard;
            if (sscanf(eq + 1, "%lu:%lu", &soft, &hard) != 2) _exit(126);
            struct rlimit rl = {(rlim_t)soft, (rlim_t)hard};
            if (setrlimit(RLIMIT_NOFILE, &rl)) _exit(126);
            continue;
        }
        setenv(s, eq + 1, 1);
    }
    char out[128];
    snprintf(out, sizeof out, "%s/out", dir);
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    snprintf(out, sizeof out, "%s/marks", dir);
    int mk = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(mk, 9);
    if (getenv("POWERCUT_DEBUG") || capture_err) {
        snprintf(out, sizeof out, "%s/err", dir);
        int e = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(e, 2);
    }
    execv(work, argv);
    _exit(127);
}

static uint8_t *slurp(const char *name, uint64_t *len)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) {
        *len = UINT64_MAX;
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (uint64_t)n;
    return b;
}

/* Crash image of a run cut at `cut`: checks exit 99 and returns the image. */
static uint8_t *cut_image(const char *cut, const char *extra, const char *ops, uint64_t *len)
{
    clean();
    char envs[1024];
    snprintf(envs, sizeof envs, "POWERCUT_CUT=%s%s%s", cut, extra ? "|" : "", extra ? extra : "");
    int rc = run(envs, ops);
    if (rc != 99) fail_msg("cut %s of '%s': exit %d, not 99", cut, ops, rc);
    uint8_t *img = slurp("f.crash", len);
    assert_non_null(img);
    return img;
}

static int range_is(const uint8_t *b, uint64_t off, uint64_t len, int byte)
{
    for (uint64_t i = off; i < off + len; i++)
        if (b[i] != byte) return 0;
    return 1;
}

/* Writes without a sync are absent; a sync makes them durable; for every write call. */
static void test_write_calls(void **st)
{
    (void)st;
    const char *writes[] = {"w:0:1000:65", "x:0:1000:65", "v:0:1000:65", "W:1000:65", "V:1000:65"};
    const char *syncs[] = {"f", "d"};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 2; j++) {
            char ops[64];
            snprintf(ops, sizeof ops, "%s %s", writes[i], syncs[j]);
            uint64_t len;
            uint8_t *img = cut_image("1:all:none", NULL, ops, &len);
            assert_int_equal(len, 0);
            free(img);
            img = cut_image("2:none", NULL, ops, &len);
            assert_int_equal(len, 0);
            free(img);
            img = cut_image("2:all", NULL, ops, &len);
            assert_int_equal(len, 1000);
            assert_true(range_is(img, 0, 1000, 65));
            free(img);
        }
}

static void test_truncate_and_fallocate(void **st)
{
    (void)st;
    const char *grows[] = {"t:8192", "T:8192", "a:0:8192", "p:0:8192"};
    for (size_t i = 0; i < 4; i++) {
        char ops[64];
        snprintf(ops, sizeof ops, "w:0:100:65 f %s f", grows[i]);
        uint64_t len;
        uint8_t *img = cut_image("3:all", NULL, ops, &len); /* the grow itself */
        assert_int_equal(len, 100);
        free(img);
        img = cut_image("4:none", NULL, ops, &len); /* its sync, not landed */
        assert_int_equal(len, 100);
        free(img);
        img = cut_image("4:all", NULL, ops, &len);
        assert_int_equal(len, 8192);
        assert_true(range_is(img, 0, 100, 65));
        assert_true(range_is(img, 100, 8092, 0));
        free(img);
    }
}

static void test_dsync_and_sync_fds(void **st)
{
    (void)st;
    const char *modes[] = {"D", "S"};
    for (size_t i = 0; i < 2; i++) {
        char ops[64];
        snprintf(ops, sizeof ops, "%s w:0:1000:65 w:0:10:66", modes[i]);
        uint64_t len;
        uint8_t *img = cut_image("2:none", NULL, ops, &len);
        assert_int_equal(len, 1000); /* step 1 durable at return */
        assert_true(range_is(img, 0, 1000, 65));
        free(img);
        img = cut_image("1:prefix:1", NULL, ops, &len); /* torn O_DSYNC write: no size yet */
        assert_int_equal(len, 0);
        free(img);
    }
}

static void test_msync_range_only(void **st)
{
    (void)st;
    const char *ops = "t:16384 f m:16384 s:0:16384:66 M:4096:4096 A:0:16384 f";
    uint64_t len;
    uint8_t *img = cut_image("5:none", NULL, ops, &len); /* at the final fsync, not landed */
    assert_int_equal(len, 16384);
    assert_true(range_is(img, 0, 4096, 0));
    assert_true(range_is(img, 4096, 4096, 66));
    assert_true(range_is(img, 8192, 8192, 0));
    free(img);
    img = cut_image("5:all", NULL, ops, &len);
    assert_true(range_is(img, 0, 16384, 66));
    free(img);
}

static void live_vs_trace(const char *ops, const char *mode, uint64_t steps);

/* pc_work's last run printed line (its ERR lines say which op failed, with which errno). */
static int out_has(const char *line)
{
    uint64_t n;
    uint8_t *b = slurp("out", &n);
    assert_non_null(b);
    b[n] = 0;
    int found = strstr((char *)b, line) != NULL;
    free(b);
    return found;
}

/* msync syncs nothing under a mapping that is not VM_SHARED: a private one, or a shared one
 * of a descriptor open read-only (the kernel clears VM_SHARED at mmap). A shared read-only
 * mapping of a read-write descriptor is VM_SHARED: its msync makes the file range durable,
 * bytes written with write() included. */
static void test_msync_not_shared(void **st)
{
    (void)st;
    const char *priv = "w:0:4096:66 Z:4096 s:0:100:67 M:0:4096 R:0:1";
    const char *rdonly = "w:0:4096:66 o n:4096 M:0:4096 R:0:1";
    const char *shared = "w:0:4096:66 n:4096 M:0:4096 R:0:1";
    const char *cases[] = {priv, rdonly};
    for (size_t i = 0; i < 2; i++) {
        uint64_t len;
        uint8_t *img = cut_image("2:all:none", NULL, cases[i], &len); /* at the msync */
        assert_int_equal(len, 0);
        free(img);
        img = cut_image("3:none:none", NULL, cases[i], &len); /* after it returned */
        assert_int_equal(len, 0);
        free(img);
        assert_false(out_has("ERR"));
        live_vs_trace(cases[i], "", 3);
    }
    uint64_t len;
    uint8_t *img = cut_image("3:none:none", NULL, shared, &len);
    assert_int_equal(len, 4096);
    assert_true(range_is(img, 0, 4096, 66));
    free(img);
}

/* msync covers whole pages: msync(addr, 512) makes the whole page under addr durable,
 * stores and write()-written bytes alike; msync(addr, 0) syncs nothing (not even the size),
 * but is still a step. */
static void test_msync_whole_pages(void **st)
{
    (void)st;
    const char *ops = "t:8192 m:8192 w:1024:1024:66 s:0:512:65 s:4096:100:67 M:0:512 R:0:1";
    uint64_t len;
    uint8_t *img = cut_image("4:none:none", NULL, ops, &len);
    assert_int_equal(len, 8192);
    assert_true(range_is(img, 0, 512, 65));
    assert_true(range_is(img, 512, 512, 0));
    assert_true(range_is(img, 1024, 1024, 66));
    assert_true(range_is(img, 2048, 6144, 0)); /* the next page's store is not synced */
    free(img);
    img = cut_image("3:all:none", NULL, ops, &len); /* the tear: the whole page lands */
    assert_int_equal(len, 8192);
    assert_true(range_is(img, 0, 512, 65));
    assert_true(range_is(img, 1024, 1024, 66));
    assert_true(range_is(img, 4096, 100, 0));
    free(img);
    live_vs_trace(ops, "", 4);
    live_vs_trace(ops, "|POWERCUT_MMAP=sync", 4);
    const char *zero[] = {"t:8192 m:8192 s:0:8192:65 M:4096:0 R:0:1", "t:8192 m:8192 s:0:8192:65 M:0:0 R:0:1"};
    for (size_t i = 0; i < 2; i++) {
        img = cut_image("2:all:none", NULL, zero[i], &len);
        assert_int_equal(len, 0);
        free(img);
        img = cut_image("3:none:none", NULL, zero[i], &len);
        assert_int_equal(len, 0);
        free(img);
        assert_false(out_has("ERR"));
    }
}

/* A range with a gap: MS_SYNC syncs the VM_SHARED mappings on both sides of it and fails
 * with ENOMEM; MS_ASYNC fails the same and syncs nothing. */
static void test_msync_gap(void **st)
{
    (void)st;
    const char *ops = "t:12288 m:12288 s:0:12288:65 U:4096:4096 M:0:12288 R:0:1";
    uint64_t len;
    for (int k = 2; k <= 3; k++) {
        char cut[32];
        snprintf(cut, sizeof cut, "%d:%s", k, k == 2 ? "all:none" : "none:none");
        uint8_t *img = cut_image(cut, NULL, ops, &len);
        assert_int_equal(len, 12288);
        assert_true(range_is(img, 0, 4096, 65));
        assert_true(range_is(img, 4096, 4096, 0)); /* stored, unmapped, never synced */
        assert_true(range_is(img, 8192, 4096, 65));
        free(img);
    }
    assert_int_equal(run(NULL, ops), 0);
    assert_true(out_has("ERR 4 12\n")); /* ENOMEM, as from the kernel */
    live_vs_trace(ops, "", 3);
    live_vs_trace(ops, "|POWERCUT_MMAP=sync", 3);
    const char *async = "t:12288 m:12288 s:0:12288:65 U:4096:4096 A:0:12288 R:0:1";
    uint8_t *img = cut_image("3:none:none", NULL, async, &len);
    assert_int_equal(len, 0);
    free(img);
    assert_int_equal(run(NULL, async), 0);
    assert_true(out_has("ERR 4 12\n"));
}

/* A call the kernel rejects from its arguments or the descriptor's access mode is a step
 * with no effect: a cut on it leaves what a cut on a call that changes nothing leaves, even
 * with every dirty sector written back. */
static void test_rejected_calls(void **st)
{
    (void)st;
    const struct { const char *ops, *err; } cases[] = {
        {"t:8192 m:8192 s:0:8192:65 M:100:4096 R:0:1", "ERR 3 22\n"},  /* unaligned msync */
        {"t:8192 m:8192 s:0:8192:65 X:0:4096:5 R:0:1", "ERR 3 22\n"},  /* MS_SYNC|MS_ASYNC */
        {"t:8192 m:8192 s:0:8192:65 X:0:4096:20 R:0:1", "ERR 3 22\n"}, /* an unknown flag */
        {"o w:0:100:65 R:0:1", "ERR 1 9\n"},        /* write on O_RDONLY: EBADF */
        {"o W:100:65 R:0:1", "ERR 1 9\n"},
        {"o v:0:100:65 R:0:1", "ERR 1 9\n"},
        {"o t:8192 R:0:1", "ERR 1 22\n"},           /* ftruncate on O_RDONLY: EINVAL */
        {"o a:0:8192 R:0:1", "ERR 1 9\n"},          /* fallocate on O_RDONLY: EBADF */
        {"o p:0:8192 R:0:1", "ERR 1 9\n"},
        {"w:-1:100:65 R:0:1", "ERR 0 22\n"},        /* a negative pwrite offset */
        {"a:0:8192:2 R:0:1", "ERR 0 95\n"},         /* a hole punched without KEEP_SIZE */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int at = cases[i].ops[0] == 't' ? 2 : 1; /* the rejected call's step */
        char cut[32];
        snprintf(cut, sizeof cut, "%d:all:none", at);
        uint64_t len;
        uint8_t *img = cut_image(cut, NULL, cases[i].ops, &len);
        assert_int_equal(len, 0);
        free(img);
        if (at == 1) { /* nothing else dirty: writeback all must find nothing either */
            img = cut_image("1:all:all", NULL, cases[i].ops, &len);
            if (len) fail_msg("'%s': a cut on a rejected call left %llu bytes", cases[i].ops, (unsigned long long)len);
            free(img);
        }
        assert_int_equal(run(NULL, cases[i].ops), 0);
        if (!out_has(cases[i].err)) fail_msg("'%s': not %s", cases[i].ops, cases[i].err);
        live_vs_trace(cases[i].ops, "", (uint64_t)at + 1);
    }
    /* a write of no bytes on an O_DSYNC descriptor syncs nothing, the size neither */
    uint64_t len;
    uint8_t *img = cut_image("2:all:none", NULL, "t:100 D W:0:65 R:0:1", &len);
    assert_int_equal(len, 0);
    free(img);
    live_vs_trace("t:100 D W:0:65 R:0:1", "", 3);
}

static pc_trace *read_trace(uint64_t want_steps);
static void trace_image_is(pc_trace *t, uint64_t step, const char *spec, const uint8_t *want, uint64_t len);

/* A page stored to again after its msync stays writable (open) and is compared at each
 * step: its new store is dirty and early writeback can put it on the disk. A write call into
 * an open page, then a store of the page's old byte back before the next step: the store is
 * recorded (the copy the page is compared with took the write), in every backend, traced and
 * cut live. */
static void test_open_page_rewrite(void **st)
{
    (void)st;
    const char *ops = "t:8192 f m:8192 s:0:1:65 M:0:4096 s:0:1:66 s:4096:1:67 M:4096:4096 f";
    uint64_t len;
    uint8_t *img = cut_image("4:all:none", NULL, ops, &len);
    assert_int_equal(img[0], 65);
    assert_int_equal(img[4096], 67);
    free(img);
    img = cut_image("4:all:all", NULL, ops, &len);
    assert_int_equal(img[0], 66);
    free(img);
    img = cut_image("5:all", NULL, ops, &len);
    assert_int_equal(img[0], 66);
    free(img);
    const char *back = "t:8192 m:8192 s:0:10:65 M:0:4096 w:0:1:90 s:0:1:65 f";
    const char *modes[] = {"", "|POWERCUT_MMAP=mprotect", "|POWERCUT_MMAP=uffd"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (i == 2 && !uffd_available()) continue;
        char envs[256];
        clean();
        snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace%s", dir, modes[i]);
        assert_int_equal(run(envs, back), 0);
        uint8_t *vol = slurp("f", &len);
        assert_int_equal(vol[0], 65);
        pc_trace *t = read_trace(4);
        trace_image_is(t, 4, "all", vol, len); /* the fsync: the file as the program left it */
        pc_trace_free(t);
        free(vol);
        img = cut_image("4:all", modes[i][0] ? modes[i] + 1 : NULL, back, &len);
        assert_int_equal(img[0], 65);
        free(img);
    }
}

static void test_mremap_munmap(void **st)
{
    (void)st;
    uint64_t len;
    /* a moved, grown mapping keeps being tracked */
    uint8_t *img = cut_image("4:none", NULL, "t:16384 f m:8192 r:16384 s:12288:100:67 M:12288:4096 f", &len);
    assert_int_equal(len, 16384);
    assert_true(range_is(img, 12288, 100, 67));
    assert_true(range_is(img, 0, 12288, 0));
    free(img);
    /* write tracking split the mapping (a synced page, a stored one, a clean one):
     * mremap still works on it, and stores before and after it are both tracked */
    img = cut_image("6:none", NULL,
                    "t:16384 f m:16384 s:0:10:71 M:0:4096 s:4096:10:72 t:32768 r:32768 s:20480:10:73 M:4096:20480 f",
                    &len);
    assert_int_equal(len, 32768);
    assert_true(range_is(img, 0, 10, 71));
    assert_true(range_is(img, 4096, 10, 72));
    assert_true(range_is(img, 20480, 10, 73));
    free(img);
    /* stores before munmap are volatile changes that a later fsync makes durable */
    img = cut_image("3:all", NULL, "t:8192 f m:8192 s:0:10:68 u f", &len);
    assert_true(range_is(img, 0, 10, 68));
    free(img);
    img = cut_image("3:none", NULL, "t:8192 f m:8192 s:0:10:68 u f", &len);
    assert_true(range_is(img, 0, 10, 0));
    free(img);
    /* a partial munmap keeps the rest tracked */
    img = cut_image("4:none", NULL, "t:8192 f m:8192 s:0:10:69 U:0:4096 s:4096:10:70 M:4096:4096 f", &len);
    assert_true(range_is(img, 0, 10, 0));
    assert_true(range_is(img, 4096, 10, 70));
    free(img);
    /* private mappings never reach the file */
    img = cut_image("3:all:all", NULL, "t:4096 f P:4096 f", &len);
    assert_true(range_is(img, 0, 4096, 0));
    free(img);
}

static void test_dup_close_sync_file_range(void **st)
{
    (void)st;
    uint64_t len;
    uint8_t *img = cut_image("3:all", NULL, "w:0:100:65 c w:100:100:66 f", &len);
    assert_int_equal(len, 200);
    assert_true(range_is(img, 100, 100, 66));
    free(img);
    img = cut_image("2:all", NULL, "w:0:100:65 R:0:100", &len);
    assert_int_equal(len, 0); /* sync_file_range guarantees nothing */
    free(img);
}

static void test_tears(void **st)
{
    (void)st;
    const char *ops = "w:0:4096:65 f w:0:4096:66 f";
    for (int k = 0; k <= 8; k++) {
        char cut[32];
        uint64_t len;
        snprintf(cut, sizeof cut, "4:prefix:%d", k);
        uint8_t *img = cut_image(cut, NULL, ops, &len);
        assert_int_equal(len, 4096);
        for (int s = 0; s < 8; s++) assert_true(range_is(img, s * 512, 512, s < k ? 66 : 65));
        free(img);
        snprintf(cut, sizeof cut, "4:suffix:%d", k);
        img = cut_image(cut, NULL, ops, &len);
        for (int s = 0; s < 8; s++) assert_true(range_is(img, s * 512, 512, s >= 8 - k ? 66 : 65));
        free(img);
    }
    uint64_t len;
    uint8_t *img = cut_image("4:garbage:3", NULL, ops, &len);
    for (int b = 1024; b < 1536; b++) {
        assert_int_not_equal(img[b], 65);
        assert_int_not_equal(img[b], 66);
    }
    assert_true(range_is(img, 0, 1024, 66));
    assert_true(range_is(img, 1536, 4096 - 1536, 66));
    free(img);
    /* POWERCUT_SECTOR=4096: one sector, tears are all or nothing */
    img = cut_image("4:prefix:1", "POWERCUT_SECTOR=4096", ops, &len);
    assert_true(range_is(img, 0, 4096, 66));
    free(img);
}

static void test_writeback_all_is_volatile(void **st)
{
    (void)st;
    const char *ops = "w:0:3000:65 f w:1000:3000:66 t:5000 m:5000 s:4500:10:67 w:0:1:68";
    clean();
    assert_int_equal(run(NULL, ops), 0); /* the file as the process left it */
    uint64_t vlen, len;
    uint8_t *vol = slurp("f", &vlen);
    uint8_t *img = cut_image("5:all:all", NULL, ops, &len);
    assert_int_equal(len, vlen);
    assert_memory_equal(img, vol, len);
    free(img);
    img = cut_image("5:all:none", NULL, ops, &len);
    assert_int_equal(len, 3000);
    assert_true(range_is(img, 0, 3000, 65));
    free(img);
    free(vol);
}

/* Live cuts and images derived from a recorded trace agree, step by step, for either way of
 * following mappings (mode: "" = write tracking, "|POWERCUT_MMAP=sync" = compare at syncs). */
/* Every step of ops, cut live under mode ("" or "|VAR=VALUE"), twice, gives the image the
 * recorded trace derives, for 5 crash choices; the trace has `steps` steps. */
static void live_vs_trace_from(const char *ops, const char *mode, uint64_t steps, uint64_t from);

static void live_vs_trace(const char *ops, const char *mode, uint64_t steps)
{
    live_vs_trace_from(ops, mode, steps, 1);
}

/* The same, for the steps from `from` on only (a long preamble of no interest). */
static void live_vs_trace_from(const char *ops, const char *mode, uint64_t steps, uint64_t from)
{
    clean();
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace%s", dir, mode);
    assert_int_equal(run(envs, ops), 0);
    char tp[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tp, &t), PC_OK);
    uint64_t n;
    assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
    assert_int_equal(n, steps);
    int complete;
    assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
    assert_true(complete);
    const char *specs[] = {"none", "all:all", "random:3:random:4:5", "garbage:2:none:9", "suffix:3"};
    for (uint64_t k = from; k <= n; k++)
        for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
            char cut[64];
            snprintf(cut, sizeof cut, "%llu:%s", (unsigned long long)k, specs[i]);
            uint64_t len, len2, dlen;
            uint8_t *img = cut_image(cut, mode[0] ? mode + 1 : NULL, ops, &len);
            uint8_t *again = cut_image(cut, mode[0] ? mode + 1 : NULL, ops, &len2); /* same bytes */
            assert_int_equal(len, len2);
            assert_memory_equal(img, again, len);
            pc_crash c;
            assert_int_equal(pc_crash_parse(specs[i], &c), PC_OK);
            uint8_t *derived;
            assert_int_equal(pc_trace_image(t, 0, k, &c, &derived, &dlen), PC_OK);
            if (dlen != len || memcmp(derived, img, len))
                fail_msg("step %llu %s: trace image differs from live image", (unsigned long long)k, specs[i]);
            free(img);
            free(again);
            free(derived);
        }
    pc_trace_free(t);
}

static void trace_vs_live(const char *mode)
{
    live_vs_trace("w:0:5000:65 f t:12288 m:12288 s:100:3000:66 M:0:4096 w:8000:2000:67 s:9000:50:68 "
                  "d s:0:12288:69 M:0:12288 t:6000 f", mode, 9);
}

static void test_determinism_and_trace(void **st)
{
    (void)st;
    trace_vs_live("");
}

static void test_sync_mode(void **st)
{
    (void)st;
    trace_vs_live("|POWERCUT_MMAP=sync");
    /* msync of a range: that range only; unsynced stores are not seen by writeback */
    const char *ops = "t:16384 f m:16384 s:0:16384:66 M:4096:4096 A:0:16384 f";
    uint64_t len;
    uint8_t *img = cut_image("5:none:all", "POWERCUT_MMAP=sync", ops, &len);
    assert_true(range_is(img, 0, 4096, 0));
    assert_true(range_is(img, 4096, 4096, 66));
    assert_true(range_is(img, 8192, 8192, 0));
    free(img);
    img = cut_image("5:all", "POWERCUT_MMAP=sync", ops, &len); /* fsync compares the mapping */
    assert_true(range_is(img, 0, 16384, 66));
    free(img);
    img = cut_image("3:none", "POWERCUT_MMAP=sync", "t:8192 f m:8192 s:0:10:68 u f", &len);
    assert_true(range_is(img, 0, 10, 0));
    free(img);
    img = cut_image("3:all", "POWERCUT_MMAP=sync", "t:8192 f m:8192 s:0:10:68 u f", &len);
    assert_true(range_is(img, 0, 10, 68));
    free(img);
}

/* POWERCUT_MMAP=lazy follows no store before the cut, yet its crash images are those of
 * write tracking, at every step, for every tear and writeback: stores made and never synced
 * (the second mapping's, the unsynced half of the first) reach the disk by early writeback,
 * a store undone before its sync has nothing to write, a shrink, a remap and an unmap come
 * between (the stores of an unmapped mapping are still the file's). */
static void test_lazy_mode(void **st)
{
    (void)st;
    const char *ops = "w:0:5000:65 f t:12288 m:12288 s:100:3000:66 M:0:4096 w:8000:2000:67 s:9000:50:68 "
                      "s:200:10:65 s:200:10:66 d r:16384 s:0:12288:69 M:0:4096 t:6000 s:5000:500:70 M:0:4096 s:3000:100:71 u f";
    /* A file grown by ftruncate (holes), synced whole: long msyncs compare holes as zeros and
     * data extents through the mapping (diff_mapped); stores at extent edges, a pwrite into a
     * hole, a shrink and a grow that make holes again. */
    const char *holes = "t:262144 f m:262144 s:0:10:65 s:200000:10:66 M:0:262144 s:131072:5:67 s:4095:3:72 "
                        "M:0:262144 w:65536:100:68 s:69632:4:69 s:135167:1:73 M:0:262144 t:8192 t:262144 "
                        "s:250000:2:70 s:8191:1:74 M:0:262144 s:262143:1:75 f";
    const char *workloads[] = {ops, holes};
    const char *specs[] = {"none:all", "all:all", "random:3:random:4:5", "prefix:2:all", "suffix:3:random:7"};
    int differ = 0;
    for (size_t w = 0; w < 2; w++)
        for (uint64_t k = 1; k <= 10; k++)
            for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
                char cut[64];
                snprintf(cut, sizeof cut, "%llu:%s", (unsigned long long)k, specs[i]);
                uint64_t len, llen;
                uint8_t *img = cut_image(cut, NULL, workloads[w], &len);
                uint8_t *lazy = cut_image(cut, "POWERCUT_MMAP=lazy", workloads[w], &llen);
                uint8_t *sync = cut_image(cut, "POWERCUT_MMAP=sync", workloads[w], &llen);
                if (llen != len || memcmp(img, lazy, len))
                    fail_msg("workload %zu, step %llu %s: the lazy image differs from the tracked one", w,
                             (unsigned long long)k, specs[i]);
                differ += w == 0 && memcmp(img, sync, len) != 0; /* sync misses unsynced stores */
                free(img);
                free(lazy);
                free(sync);
            }
    assert_true(differ > 0); /* else this workload would not tell lazy from sync */
    /* a trace must know every store at every step: lazy refuses to record one */
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_MMAP=lazy", dir);
    assert_int_equal(run(envs, ops), 2);
}

/* The two write-tracking backends (POWERCUT_MMAP=mprotect, =uffd) note the same pages at the
 * same points: they must write the same trace, byte for byte, hence the same images; and so
 * must the default (track), which switches a mapping between them as costs change. */

/* Records ops under the given POWERCUT_MMAP; returns the trace, and the POWERCUT_DEBUG lines
 * in *err (both malloc'ed). */
static uint8_t *trace_with(const char *backend, const char *ops, uint64_t *len, char **err)
{
    clean();
    char envs[512];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_MMAP=%s|POWERCUT_DEBUG=1", dir, backend);
    int rc = run(envs, ops);
    if (rc) fail_msg("'%s' under POWERCUT_MMAP=%s: exit %d", ops, backend, rc);
    uint64_t elen;
    *err = (char *)slurp("err", &elen);
    assert_non_null(*err);
    (*err)[elen] = 0;
    uint8_t *t = slurp("trace", len);
    assert_non_null(t);
    return t;
}

static const char *const backend_cases[] = {
    "t:16384 f m:16384 s:0:16384:66 M:4096:4096 A:0:16384 f",                  /* msync of a range */
    "t:8192 f m:8192 s:0:1:65 M:0:4096 s:0:1:66 s:4096:1:67 M:4096:4096 f",     /* open pages */
    "t:16384 f m:8192 r:16384 s:12288:100:67 M:12288:4096 f",                  /* mremap */
    "t:16384 f m:16384 s:0:10:71 M:0:4096 s:4096:10:72 t:32768 r:32768 s:20480:10:73 M:4096:20480 f",
    "t:8192 f m:8192 s:0:10:68 u f",                                           /* munmap */
    "t:8192 f m:8192 s:0:10:69 U:0:4096 s:4096:10:70 M:4096:4096 f",           /* partial munmap */
    /* a written page cut off by a shrink and stored to again after a grow */
    "w:0:3000:65 f w:1000:3000:66 t:5000 m:5000 s:4500:10:67 M:0:4096 t:2000 t:9000 s:4096:1:1 w:0:1:68 f",
    /* on uffd an open page is compared only when a scan lists it, or when it may have
     * changed without a store through its own mapping: a pwrite into it, a shrink and regrow
     * under it, a second mapping of the same bytes storing into it, a forked child storing
     * into it (mprotect compares it at every step: the same trace) */
    "t:8192 f m:8192 s:0:10:65 M:0:4096 w:0:20:66 M:0:4096 s:100:1:67 M:0:4096 f",
    "t:8192 f m:8192 s:4000:10:65 M:0:4096 t:3000 t:8192 M:0:4096 s:100:1:67 M:0:4096 f",
    "t:8192 f m:8192 s:0:10:65 M:0:4096 m:8192 s:0:10:66 M:0:4096 s:8:1:67 M:0:4096 f",
    "t:8192 f m:8192 s:0:1:65 M:0:4096 F:0:10:3 M:0:4096 s:100:1:67 M:0:4096 f",
    /* more written pages than stay open (16), a forked child storing into the mapping; under
     * track, 200 scattered stores switch the mapping to uffd and 300 quiet steps back */
    "t:1048576 f m:1048576 s:0:1:5 L:200:7 Q:300 s:8192:1:9 M:0:16384 F:4096:10:3 s:4096:1:4 f",
};

/* track weighs what uffd would cost an open page: a fault at each store into it (uffd protects
 * open pages too), where mprotect compares it. A hot page stored to at every step, with a
 * store into another page every 4th step, over a 256 KiB mapping: the cold pages alone would
 * pay for uffd's scans, the hot page's faults do not, so the mapping stays on mprotect. With
 * no hot page, the same cold stores move it to uffd. */
static void test_track_hot_page(void **st)
{
    (void)st;
    if (!uffd_available()) skip();
    const char *cases[] = {"t:262144 f m:262144 ?:200:4 f", "t:262144 f m:262144 L:50:1 Q:150 f"};
    for (int i = 0; i < 2; i++) {
        uint64_t len;
        char *err;
        uint8_t *t = trace_with("track", cases[i], &len, &err);
        if ((strstr(err, ": uffd") != NULL) != (i == 1))
            fail_msg("'%s' under track: %s", cases[i], i ? "never moved to uffd" : "moved to uffd");
        free(t);
        free(err);
    }
}

static void test_backends_same_trace(void **st)
{
    (void)st;
    int have_uffd = uffd_available();
    if (!have_uffd) print_message("userfaultfd WP_ASYNC or PAGEMAP_SCAN unavailable: uffd runs fall back\n");
    for (size_t i = 0; i < sizeof backend_cases / sizeof backend_cases[0]; i++) {
        const char *ops = backend_cases[i];
        uint64_t lm, lu, lt;
        char *em, *eu, *et;
        uint8_t *tm = trace_with("mprotect", ops, &lm, &em);
        uint8_t *tu = trace_with("uffd", ops, &lu, &eu);
        uint8_t *tt = trace_with("track", ops, &lt, &et);
        /* each run says which backend tracked its mappings */
        assert_non_null(strstr(em, ": mprotect"));
        assert_null(strstr(em, ": uffd"));
        if (have_uffd) {
            assert_non_null(strstr(eu, ": uffd"));
            assert_null(strstr(eu, ": mprotect"));
        }
        if (lm != lu || memcmp(tm, tu, lm)) fail_msg("'%s': uffd trace differs from mprotect trace", ops);
        if (lm != lt || memcmp(tm, tt, lm)) fail_msg("'%s': track trace differs from mprotect trace", ops);
        free(tm);
        free(tu);
        free(tt);
        free(em);
        free(eu);
        if (i == sizeof backend_cases / sizeof backend_cases[0] - 1 && have_uffd) {
            /* the default switched to uffd, then back */
            char *u = strstr(et, ": uffd");
            assert_non_null(u);
            assert_non_null(strstr(u, ": mprotect"));
        }
        free(et);
    }
}

/* Live cuts equal trace-derived images under each backend (with test_backends_same_trace:
 * the backends give the same images). */
static void test_backends_live(void **st)
{
    (void)st;
    trace_vs_live("|POWERCUT_MMAP=uffd");
    trace_vs_live("|POWERCUT_MMAP=mprotect");
}

/* A page stored to again after it left the open set is recorded as DIRTY of the page plus
 * the chunks that changed (trace.c), against a copy of its recorded content that a
 * record-only run keeps (the live cut runs diff against their model): the trace's images
 * equal the live ones at every step. Page 3 stored to, then 20 pages stored to and synced
 * one by one close it and the first three; then a pwrite over its stores and a shrink and
 * regrow that zero some (its copy must follow both, else the stores of the old bytes again
 * that follow would equal the stale copy and go unrecorded), a store into closed page 0 and
 * two into page 1 left unsynced while page 2 is synced (early writeback must have them). And with an
 * msync (step 23) failing with EIO (its dirty page dropped), a store of the byte the page
 * already holds there dirties it whole again, as the kernel does: the next msync (24) lands
 * the dropped bytes, live and from the trace alike (without DIRTY the trace would mark
 * nothing dirty and lose them). */
static void test_rewritten_pages(void **st)
{
    (void)st;
    live_vs_trace_from("t:81920 f m:81920 s:12388:50:65 s:15000:10:66 L:20:1 w:12388:50:73 t:14000 t:81920 "
                       "s:12388:50:65 s:15000:10:66 s:0:10:70 s:4096:1:71 s:4200:1:72 M:8192:4096 s:0:1:75 "
                       "M:0:16384 f", "", 28, 22);
    const char *ops = "t:81920 f m:81920 L:20:1 s:0:100:70 M:0:4096 s:0:1:70 M:0:4096 f";
    clean();
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_ERROR=23:EIO", dir);
    assert_int_equal(run(envs, ops), 0);
    char tp[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tp, &t), PC_OK);
    const char *specs[] = {"none", "all", "suffix:1"};
    for (size_t i = 0; i < 3; i++) {
        char cut[32];
        snprintf(cut, sizeof cut, "24:%s", specs[i]);
        uint64_t len, dlen;
        uint8_t *img = cut_image(cut, "POWERCUT_ERROR=23:EIO", ops, &len);
        pc_crash c;
        assert_int_equal(pc_crash_parse(specs[i], &c), PC_OK);
        uint8_t *derived;
        assert_int_equal(pc_trace_image(t, 0, 24, &c, &derived, &dlen), PC_OK);
        assert_int_equal(dlen, len);
        if (memcmp(derived, img, len)) fail_msg("step 24 %s: trace image differs from live image", specs[i]);
        /* the dropped bytes: not durable before the msync, landed by it */
        assert_true(range_is(derived, 0, 100, 70) == (i > 0));
        free(img);
        free(derived);
    }
    pc_trace_free(t);
}

/* The uffd backend sees stores by the kernel (read(2) into a mapping); with mprotect they
 * fail with EFAULT (a documented limit). */
static void test_uffd_kernel_stores(void **st)
{
    (void)st;
    if (!uffd_available()) skip();
    const char *ops = "t:8192 f m:8192 G:100:10:65 M:0:4096 f";
    uint64_t len;
    uint8_t *img = cut_image("4:none", "POWERCUT_MMAP=uffd", ops, &len); /* the msync landed */
    assert_int_equal(len, 8192);
    assert_true(range_is(img, 100, 10, 65));
    assert_true(range_is(img, 0, 100, 0));
    free(img);
    img = cut_image("3:none", "POWERCUT_MMAP=uffd", ops, &len); /* not yet */
    assert_true(range_is(img, 100, 10, 0));
    free(img);
    /* into a page the msync (step 4) does not cover: the harvest's scan of the synced range
     * finds nothing, but the kernel's fault counts, so the whole mapping is scanned and the
     * store is in the step's writeback */
    const char *other = "t:8192 f m:8192 s:0:1:1 M:0:4096 G:4196:10:65 M:0:4096 f";
    img = cut_image("4:none:all", "POWERCUT_MMAP=uffd", other, &len);
    assert_true(range_is(img, 4196, 10, 65));
    free(img);
    img = cut_image("4:none:none", "POWERCUT_MMAP=uffd", other, &len);
    assert_true(range_is(img, 4196, 10, 0));
    free(img);
    clean();
    assert_int_equal(run("POWERCUT_MMAP=mprotect", ops), 0);
    uint8_t *out = slurp("out", &len);
    assert_non_null(out);
    out[len] = 0;
    assert_non_null(strstr((char *)out, "ERR 3 14"));
    free(out);
}

static void test_errors(void **st)
{
    (void)st;
    /* whole sectors: a later write that dirties a sector holding lost bytes brings them back
     * (so does the kernel, page by page) */
    const char *ops = "w:0:1024:65 f f w:2048:1:66";
    clean();
    assert_int_equal(run("POWERCUT_ERROR=2:EIO", ops), 0);
    uint64_t len;
    uint8_t *out = slurp("out", &len);
    assert_non_null(out);
    assert_non_null(strstr((char *)out, "ERR 1 5"));
    free(out);
    /* fsync-gate: the retried fsync succeeds, the lost data never becomes durable */
    uint8_t *img = cut_image("4:all:all", "POWERCUT_ERROR=2:EIO", ops, &len);
    assert_int_equal(len, 2049);
    assert_true(range_is(img, 0, 1024, 0));
    free(img);
    /* ENOSPC on a write: the call fails and changes nothing */
    clean();
    assert_int_equal(run("POWERCUT_ERROR=1:ENOSPC", "w:0:10:65"), 0);
    out = slurp("out", &len);
    assert_non_null(strstr((char *)out, "ERR 0 28"));
    free(out);
    uint8_t *f = slurp("f", &len);
    assert_int_equal(len, 0);
    free(f);
    /* a short write: half the bytes reach the file (and the model), the call returns 50 */
    clean();
    assert_int_equal(run("POWERCUT_ERROR=1:short", "V:100:65 f"), 0);
    f = slurp("f", &len);
    assert_int_equal(len, 50);
    free(f);
    img = cut_image("2:all", "POWERCUT_ERROR=1:short", "V:100:65 f", &len);
    assert_int_equal(len, 50);
    free(img);
    /* ... and through libfiu (failinfo=2); on a sync it means EINTR */
    clean();
    assert_int_equal(run("FIU_ENABLE=enable name=powercut/fsync,failnum=1,failinfo=2", "w:0:10:65 f"), 0);
    out = slurp("out", &len);
    assert_non_null(strstr((char *)out, "ERR 1 4"));
    free(out);
}

/* POWERCUT_ERROR=STEP:ERRNO:TEAR: a failing msync or fsync wrote that part of its sectors,
 * the rest is lost for good (a retry succeeds and writes none of it); other calls change
 * nothing. Without the outcome the failed sync writes nothing, as before. */
static void test_error_outcomes(void **st)
{
    (void)st;
    /* msync of 2 dirty sectors fails at step 3, is retried at step 4 */
    const char *mops = "t:4096 f m:4096 s:0:1024:66 M:0:4096 M:0:4096";
    static const struct { const char *env; int s0, s1; } cases[] = {
        {"POWERCUT_ERROR=3:EIO", 0, 0},          {"POWERCUT_ERROR=3:EIO:none", 0, 0},
        {"POWERCUT_ERROR=3:EIO:all", 66, 66},    {"POWERCUT_ERROR=3:EIO:prefix:1", 66, 0},
        {"POWERCUT_ERROR=3:EIO:suffix:1", 0, 66}, {"POWERCUT_ERROR=3:ENOSPC:all", 66, 66},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t len;
        for (int traced = 0; traced < 2; traced++) {
            uint8_t *img;
            if (!traced) {
                img = cut_image("4:none", cases[i].env, mops, &len); /* during the retry */
            } else {
                /* the same outcome derived from the trace: the FAIL record */
                char env[256], tpath[200];
                snprintf(tpath, sizeof tpath, "%s/t.trace", dir);
                snprintf(env, sizeof env, "%s|POWERCUT_TRACE=%s", cases[i].env, tpath);
                clean();
                assert_int_equal(run(env, mops), 0);
                pc_trace *t;
                assert_int_equal(pc_trace_open(tpath, &t), PC_OK);
                pc_step_info info;
                assert_int_equal(pc_trace_step_info(t, 3, &info), PC_OK);
                assert_int_equal(info.call, PC_CALL_MSYNC);
                assert_int_equal(info.err, i == 5 ? ENOSPC : EIO);
                pc_crash none;
                assert_int_equal(pc_crash_parse("none", &none), PC_OK);
                assert_int_equal(pc_trace_image(t, 0, 4, &none, &img, &len), PC_OK);
                pc_trace_free(t);
            }
            assert_non_null(img);
            assert_int_equal(len, 4096);
            assert_true(range_is(img, 0, 512, cases[i].s0));
            assert_true(range_is(img, 512, 512, cases[i].s1));
            free(img);
        }
    }
    /* fsync: the first write's 2 sectors, prefix:1 of them; the size came with nothing */
    uint64_t len;
    uint8_t *img = cut_image("5:none", "POWERCUT_ERROR=4:EIO:prefix:1", "t:1024 f w:0:1024:65 f f", &len);
    assert_int_equal(len, 1024);
    assert_true(range_is(img, 0, 512, 65));
    assert_true(range_is(img, 512, 512, 0));
    free(img);
    /* ftruncate and fallocate: the error changes nothing, whatever the outcome says */
    img = cut_image("3:all", "POWERCUT_ERROR=2:ENOSPC:all", "w:0:10:65 t:8192 f", &len);
    assert_int_equal(len, 10);
    free(img);
    /* after a failed msync the kernel cleans the page: storing the same bytes again dirties
     * it, so the retry writes them (an open page saw only changed bytes) */
    const char *again = "t:4096 f m:4096 s:0:512:66 M:0:4096 s:0:512:66 M:0:4096 f";
    for (int torn = 0; torn < 2; torn++) {
        img = cut_image("5:none", torn ? "POWERCUT_ERROR=3:EIO:none|POWERCUT_MMAP=mprotect"
                                       : "POWERCUT_ERROR=3:EIO|POWERCUT_MMAP=mprotect", again, &len);
        assert_int_equal(len, 4096);
        assert_true(range_is(img, 0, 512, 66));
        free(img);
    }
    /* outcomes that a returning call cannot leave, and malformed ones */
    clean();
    assert_int_equal(run("POWERCUT_ERROR=1:EIO:garbage:1", "f"), 2);
    assert_int_equal(run("POWERCUT_ERROR=1:EIO:all:all", "f"), 2);
    assert_int_equal(run("POWERCUT_ERROR=1:EIO:prefix", "f"), 2);
    assert_int_equal(run("POWERCUT_ERROR=1:short:all", "f"), 2);
}

static void test_fiu_enable(void **st)
{
    (void)st;
    clean();
    assert_int_equal(run("FIU_ENABLE=enable name=powercut/fsync,failnum=5", "w:0:10:65 f f"), 0);
    uint64_t len;
    uint8_t *out = slurp("out", &len);
    assert_non_null(strstr((char *)out, "ERR 1 5"));
    assert_non_null(strstr((char *)out, "ERR 2 5"));
    free(out);
    /* failinfo=1: a power cut at the first fsync, tear from POWERCUT_CRASH */
    clean();
    assert_int_equal(run("FIU_ENABLE=enable name=powercut/fsync,failnum=1,failinfo=1|POWERCUT_CRASH=all",
                         "w:0:10:65 f w:0:10:66"), 99);
    uint8_t *img = slurp("f.crash", &len);
    assert_int_equal(len, 10);
    assert_true(range_is(img, 0, 10, 65));
    free(img);
}

static void test_markers(void **st)
{
    (void)st;
    clean();
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_MARK_FD=9", dir);
    assert_int_equal(run(envs, "B:7:put w:0:10:65 f E:7 K:begin_9_script w:0:1:66 K:end_9 f"), 0);
    char tp[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tp, &t), PC_OK);
    pc_step_info in;
    assert_int_equal(pc_trace_step_info(t, 1, &in), PC_OK);
    assert_int_equal(in.op, 7);
    assert_string_equal(in.label, "put");
    assert_int_equal(in.call, PC_CALL_PWRITE);
    assert_int_equal(pc_trace_step_info(t, 2, &in), PC_OK);
    assert_int_equal(in.op, 7);
    assert_int_equal(in.call, PC_CALL_FSYNC);
    assert_int_equal(pc_trace_step_info(t, 3, &in), PC_OK);
    assert_int_equal(in.op, 9);
    assert_string_equal(in.label, "script");
    assert_int_equal(pc_trace_step_info(t, 4, &in), PC_OK);
    assert_int_equal(in.op, 0);
    pc_trace_free(t);
}

/* A marker is not a crash point and records nothing itself: a store made through a mapping
 * before a marker (pc_mark or a line on POWERCUT_MARK_FD) is in the images of the next step
 * all the same, live and derived from the trace, under each backend, and the markers still
 * attribute the steps. Steps: 1 t, 2 f, 3 M (op 3), 4 M (no op). */
static void test_marker_stores(void **st)
{
    (void)st;
    const char *ops = "t:8192 f m:8192 s:4096:1:66 B:3:put s:0:1:67 M:0:4096 E:3 s:4096:1:68 K:note_x "
                      "s:5000:1:69 M:0:4096";
    const char *modes[] = {"POWERCUT_MARK_FD=9", "POWERCUT_MARK_FD=9|POWERCUT_MMAP=mprotect",
                           "POWERCUT_MARK_FD=9|POWERCUT_MMAP=uffd"};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        uint64_t len;
        /* step 3 syncs page 0 only: the store before the begin marker reaches the image by
         * early writeback, the one after it by the tear */
        uint8_t *img3 = cut_image("3:none:all", modes[m], ops, &len);
        assert_int_equal(len, 8192);
        assert_int_equal(img3[4096], 66);
        assert_int_equal(img3[0], 0);
        uint8_t *img = cut_image("3:all:none", modes[m], ops, &len);
        assert_int_equal(img[0], 67);
        assert_int_equal(img[4096], 0);
        free(img);
        /* step 4: the stores before the end marker and before the note */
        uint8_t *img4 = cut_image("4:none:all", modes[m], ops, &len);
        assert_int_equal(img4[0], 67);
        assert_int_equal(img4[4096], 68);
        assert_int_equal(img4[5000], 69);
        /* the trace gives the same images and attributes the steps */
        clean();
        char envs[256];
        snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|%s", dir, modes[m]);
        assert_int_equal(run(envs, ops), 0);
        char tp[256];
        snprintf(tp, sizeof tp, "%s/trace", dir);
        pc_trace *t;
        assert_int_equal(pc_trace_open(tp, &t), PC_OK);
        pc_crash c;
        assert_int_equal(pc_crash_parse("none:all", &c), PC_OK);
        uint8_t *d;
        uint64_t dlen;
        assert_int_equal(pc_trace_image(t, 0, 3, &c, &d, &dlen), PC_OK);
        assert_int_equal(dlen, 8192);
        assert_memory_equal(d, img3, dlen);
        free(d);
        assert_int_equal(pc_trace_image(t, 0, 4, &c, &d, &dlen), PC_OK);
        assert_int_equal(dlen, 8192);
        assert_memory_equal(d, img4, dlen);
        free(d);
        pc_step_info in;
        assert_int_equal(pc_trace_step_info(t, 3, &in), PC_OK);
        assert_int_equal(in.op, 3);
        assert_string_equal(in.label, "put");
        assert_int_equal(pc_trace_step_info(t, 4, &in), PC_OK);
        assert_int_equal(in.op, 0);
        pc_trace_free(t);
        free(img3);
        free(img4);
    }
}

/* Only the process that claimed the file is modelled: children (exec'd or forked) pass
 * through without touching its trace or its step numbers. Their writes are changes behind
 * the model's back: found at the owner's next step on the file, or at its exit, unless that
 * check is off. */
static void test_children_pass_through(void **st)
{
    (void)st;
    clean();
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace", dir);
    assert_int_equal(run(envs, "w:0:10:65 z:20 y Y f"), 97);
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_FOREIGN=off", dir);
    assert_int_equal(run(envs, "w:0:10:65 y Y f"), 0);
    uint64_t len;
    uint8_t *f = slurp("f", &len);
    assert_int_equal(f[0], 90); /* the children really wrote */
    assert_int_equal(f[1], 'Y');
    free(f);
    char tp[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tp, &t), PC_OK);
    uint64_t n;
    int complete;
    assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
    assert_true(complete);
    pc_trace_free(t);
    uint8_t *img = cut_image("2:all", "POWERCUT_FOREIGN=off", "w:0:10:65 y Y f", &len);
    assert_true(range_is(img, 0, 10, 65)); /* the model knows the parent's story only */
    free(img);
    /* A child's write after the owner's last step on the file is found at the owner's exit
     * (it ended the trace without it, unsaid), by exit and by _exit, and not when told not to. */
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace", dir);
    assert_int_equal(run(envs, "w:0:10:65 f z:20 Y"), 97);
    assert_int_equal(run(envs, "w:0:10:65 f z:20 Y _"), 97);
    assert_int_equal(run(envs, "w:0:10:65 f"), 0);
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_FOREIGN=off", dir);
    assert_int_equal(run(envs, "w:0:10:65 f z:20 Y"), 0);
}

/* The write-tracking SIGSEGV handler hands real crashes on: the process still dies. */
static void test_real_segv_still_crashes(void **st)
{
    (void)st;
    clean();
    assert_int_equal(run(NULL, "t:4096 m:4096 s:0:1:65 N:16"), -1);
    /* and a big write goes through the trace writer's direct path (larger than its buffer) */
    clean();
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace", dir);
    assert_int_equal(run(envs, "w:0:3000000:77 f w:100:5:78"), 0);
    char tp[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tp, &t), PC_OK);
    pc_crash c;
    assert_int_equal(pc_crash_parse("all:all", &c), PC_OK);
    uint8_t *img;
    uint64_t len;
    assert_int_equal(pc_trace_image(t, 0, 3, &c, &img, &len), PC_OK);
    assert_int_equal(len, 3000000);
    assert_true(range_is(img, 0, 100, 77));
    assert_true(range_is(img, 100, 5, 78));
    assert_true(range_is(img, 105, 3000000 - 105, 77));
    free(img);
    pc_trace_free(t);
}

/* With POWERCUT_TRACE_MAPPED=1, a workload killed by SIGKILL leaves a readable trace of
 * every step it took. */
static void test_trace_survives_kill(void **st)
{
    (void)st;
    clean();
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_TRACE_MAPPED=1", dir);
    assert_int_equal(run(envs, "w:0:10:65 f w:0:10:66 k"), -1);
    char tp[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tp, &t), PC_OK);
    uint64_t n;
    int complete;
    assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
    assert_int_equal(n, 3);
    assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
    assert_false(complete);
    pc_crash c;
    assert_int_equal(pc_crash_parse("all:all", &c), PC_OK);
    uint8_t *img;
    uint64_t len;
    assert_int_equal(pc_trace_image(t, 0, 3, &c, &img, &len), PC_OK);
    assert_int_equal(len, 10);
    assert_true(range_is(img, 0, 10, 66));
    free(img);
    pc_trace_free(t);
}

/* The trace of a completed run: its step count, and that it is complete. */
static pc_trace *read_trace(uint64_t want_steps)
{
    char tp[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    pc_trace *t;
    int rc = pc_trace_open(tp, &t);
    if (rc) fail_msg("trace unreadable: %s", pc_strerror(rc));
    uint64_t n;
    int complete;
    assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
    assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
    if (n != want_steps || !complete) fail_msg("trace: %llu steps (want %llu), complete %d", (unsigned long long)n,
                                               (unsigned long long)want_steps, complete);
    return t;
}

/* The image a trace derives at `step` for `spec` equals `want` (len bytes). */
static void trace_image_is(pc_trace *t, uint64_t step, const char *spec, const uint8_t *want, uint64_t len)
{
    pc_crash c;
    assert_int_equal(pc_crash_parse(spec, &c), PC_OK);
    uint8_t *img;
    uint64_t ilen;
    assert_int_equal(pc_trace_image(t, 0, step, &c, &img, &ilen), PC_OK);
    if (ilen != len || memcmp(img, want, len))
        fail_msg("trace image at step %llu %s differs (%llu bytes, want %llu)", (unsigned long long)step, spec,
                 (unsigned long long)ilen, (unsigned long long)len);
    free(img);
}

/* Defect 5: a tracked descriptor closed by fclose (of an fdopen'd stream), close_range or
 * closefrom is forgotten: a socket reusing its number writes nothing into the model. */
static void test_closed_behind_close(void **st)
{
    (void)st;
    const char *hows[] = {"C:f", "C:r", "C:F"};
    for (size_t i = 0; i < 3; i++) {
        char ops[64];
        snprintf(ops, sizeof ops, "w:0:10:65 %s f", hows[i]);
        uint64_t len;
        uint8_t *img = cut_image("2:all:all", NULL, ops, &len); /* step 2 is the fsync */
        if (len != 10 || !range_is(img, 0, 10, 65)) fail_msg("%s: the socket's bytes reached the model", hows[i]);
        free(img);
    }
}

/* Defect 6: the tracked file reached by another name (a hard link) is the same model file,
 * and a plain POWERCUT_FILE is found by its inode even when the program never uses its name. */
static void test_other_name(void **st)
{
    (void)st;
    uint64_t len;
    /* 1 pwrite, 2 link (a step of its own), 3 pwrite through the link, 4 its fsync */
    uint8_t *img = cut_image("4:none", NULL, "w:0:10:65 l w:0:100:66 f", &len);
    assert_int_equal(len, 0);
    free(img);
    img = cut_image("4:all", NULL, "w:0:10:65 l w:0:100:66 f", &len);
    assert_int_equal(len, 100);
    assert_true(range_is(img, 0, 100, 66));
    free(img);
    /* dir/g is the name the shim is given; pc_work only ever opens dir/f, a link to it */
    clean();
    char g[256], envs[512];
    snprintf(g, sizeof g, "%s/g", dir);
    close(open(file, O_RDWR | O_CREAT, 0644));
    assert_int_equal(link(file, g), 0);
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s|POWERCUT_CUT=2:all", g);
    assert_int_equal(run(envs, "w:0:100:67 f"), 99);
    img = slurp("g.crash", &len);
    assert_non_null(img);
    assert_int_equal(len, 100);
    assert_true(range_is(img, 0, 100, 67));
    free(img);
}

/* Defect 7: O_APPEND set and cleared with fcntl(F_SETFL) decides where writes land; and
 * F_DUPFD_CLOEXEC copies (through fcntl64 and the plain fcntl name) are followed. */
static void test_fcntl(void **st)
{
    (void)st;
    const char *ops = "w:0:100:65 + w:0:50:66 - w:0:10:67 f";
    clean();
    assert_int_equal(run(NULL, ops), 0);
    uint64_t vlen, len;
    uint8_t *vol = slurp("f", &vlen);
    assert_int_equal(vlen, 150);
    assert_true(range_is(vol, 0, 10, 67) && range_is(vol, 10, 90, 65) && range_is(vol, 100, 50, 66));
    uint8_t *img = cut_image("4:all", NULL, ops, &len);
    assert_int_equal(len, vlen);
    assert_memory_equal(img, vol, len);
    free(img);
    free(vol);
    const char *dups[] = {"=", "~"};
    for (size_t i = 0; i < 2; i++) {
        char o[64];
        snprintf(o, sizeof o, "w:0:10:65 %s w:10:10:66 f", dups[i]);
        img = cut_image("3:all", NULL, o, &len);
        assert_int_equal(len, 20);
        assert_true(range_is(img, 10, 10, 66));
        free(img);
    }
}

/* Defect 9: a program that closes (or dup2s over) every descriptor but its file's does not
 * touch the shim's: the trace stays readable and complete, the private read descriptor keeps
 * describing the file (posix_fallocate re-reads its size through it), images are right. */
static void test_program_closes_everything(void **st)
{
    (void)st;
    const char *hows[] = {"H:l", "H:r", "H:F", "H:d"};
    for (size_t i = 0; i < 4; i++) {
        char ops[256], envs[256];
        snprintf(ops, sizeof ops, "w:0:5000:65 f %s w:100:10:66 p:0:8192 f t:12288 m:12288 s:9000:10:67 M:8192:4096 f",
                 hows[i]);
        clean();
        snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_MMAP=uffd", dir);
        assert_int_equal(run(envs, ops), 0);
        uint64_t vlen;
        uint8_t *vol = slurp("f", &vlen);
        assert_int_equal(vlen, 12288);
        pc_trace *t = read_trace(8);
        trace_image_is(t, 8, "all", vol, vlen);
        pc_trace_free(t);
        uint64_t len;
        uint8_t *img = cut_image("8:all", NULL, ops, &len); /* the live model agrees */
        assert_int_equal(len, vlen);
        assert_memory_equal(img, vol, len);
        free(img);
        img = cut_image("5:all", NULL, ops, &len); /* the fallocate grew the file to 8192 */
        assert_int_equal(len, 8192);
        free(img);
        free(vol);
    }
}

/* POWERCUT_RUN: two processes one after the other (a shell's two commands) are one run. The
 * first ends with data written and not synced (66 over the synced 65, a growth, a store
 * through a mapping it never unmapped): it hands the run on (TRACE.baton), and the second,
 * opening the file, numbers on from step 5 in the same trace, with that data still volatile: a
 * cut in its steps may lose it, its fsync makes it durable. Cut runs carry the live model the
 * same way. A change of the file between the two by no process of the run stops the second
 * (exit 97); so does a process after one that ended without handing on. */
static void test_baton(void **st)
{
    (void)st;
    const char *first = "w:0:4096:65 f w:0:4096:66 t:8192 m:8192 s:5000:10:70";
    const char *second = "w:8192:512:68 D w:4096:512:69 f";
    char envs[256], p[300];
    for (int mapped = 0; mapped < 2; mapped++) {
        clean();
        snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1%s", dir,
                 mapped ? "|POWERCUT_TRACE_MAPPED=1" : "");
        assert_int_equal(run(envs, first), 0);
        pc_trace *t = read_trace(4); /* whole: a run that ends here is complete */
        pc_trace_free(t);
        snprintf(p, sizeof p, "%s/trace.baton", dir);
        assert_int_equal(access(p, F_OK), 0);
        snprintf(p, sizeof p, "%s/trace.owner", dir);
        assert_int_not_equal(access(p, F_OK), 0); /* the run has no owner between the two */
        assert_int_equal(run(envs, second), 0);
        uint64_t vlen;
        uint8_t *vol = slurp("f", &vlen);
        assert_int_equal(vlen, 8704);
        t = read_trace(7);
        uint8_t want[8704];
        memset(want, 65, 4096);
        trace_image_is(t, 5, "none", want, 4096); /* the first one's 66 is lost */
        trace_image_is(t, 6, "none", want, 4096);
        memset(want, 66, 4096);
        memset(want + 4096, 0, sizeof want - 4096);
        memset(want + 5000, 70, 10);
        memset(want + 8192, 68, 512);
        trace_image_is(t, 5, "none:all", want, 8704); /* or already written back */
        memset(want, 65, 4096);
        memset(want + 4096, 0, sizeof want - 4096);
        memset(want + 4096, 69, 512);
        trace_image_is(t, 7, "none", want, 8704); /* only the O_DSYNC range and the size */
        trace_image_is(t, 7, "all", vol, vlen);   /* the fsync: the first one's data too */
        pc_trace_free(t);
        free(vol);
    }
    /* cut runs: the live model goes on in the second process */
    uint64_t len;
    const char *cuts[] = {"5:none", "6:none:all", "7:all"};
    for (int i = 0; i < 3; i++) {
        clean();
        snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1|POWERCUT_CUT=%s", dir, cuts[i]);
        assert_int_equal(run(envs, first), 0);
        assert_int_equal(run(envs, second), 99);
        uint8_t *img = slurp("f.crash", &len);
        assert_non_null(img);
        assert_int_equal(len, i ? 8704 : 4096);
        assert_true(range_is(img, 0, 4096, i ? 66 : 65));
        if (i) assert_true(range_is(img, 5000, 10, 70));
        free(img);
    }
    /* POWERCUT_EXIT_STEP=1: each process's end is a crash point (step 5, then 9), where what
     * it never synced may be lost, and the next one still has it volatile */
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1|POWERCUT_EXIT_STEP=1", dir);
    assert_int_equal(run(envs, first), 0);
    assert_int_equal(run(envs, second), 0);
    pc_trace *t = read_trace(9);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, 5, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_EXIT);
    assert_int_equal(pc_trace_step_info(t, 9, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_EXIT);
    uint8_t want[4096];
    memset(want, 65, sizeof want);
    trace_image_is(t, 5, "none", want, 4096);
    trace_image_is(t, 6, "none", want, 4096);
    pc_trace_free(t);
    /* the file changed between the two by a process that is not of the run: found, stopped */
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1", dir);
    assert_int_equal(run(envs, first), 0);
    int fd = open(file, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "zz", 2, 100), 2);
    close(fd);
    assert_int_equal(run(envs, second), 97);
    /* a process after one killed before it could hand on is refused, named */
    clean();
    assert_int_equal(run(envs, "w:0:10:65 k"), -1);
    capture_err = 1;
    assert_int_equal(run(envs, second), 97);
    capture_err = 0;
    uint8_t *err = slurp("err", &len);
    assert_non_null(err);
    err[len] = 0;
    if (!strstr((char *)err, "ended without handing it on")) fail_msg("not said: %s", (char *)err);
    free(err);
}

/* POWERCUT_RUN: an owner that forks a child and waits for it lends it the run (waitpid): the
 * child (exec'd pc_work) writes byte 0 as step 4 of the one trace, and the parent, back from
 * the wait, syncs it as step 5; a cut in the child's write loses the parent's unsynced data,
 * and ends the parent too (99, nothing refused). The same through system(). A child whose
 * parent does not wait for it within POWERCUT_LEND_WAIT is refused, named, and the parent goes
 * on (forked children without exec: test_fork_child). */
static void test_lend(void **st)
{
    (void)st;
    char envs[256];
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1", dir);
    assert_int_equal(run(envs, "w:0:10:65 f w:20:10:66 y f"), 0);
    pc_trace *t = read_trace(5);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, 4, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_PWRITE);
    assert_int_equal(pc_trace_step_info(t, 5, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_FSYNC);
    uint8_t want[30];
    memset(want, 65, 10);
    trace_image_is(t, 4, "none", want, 10); /* the child's byte and the parent's 66: volatile */
    memset(want + 10, 0, 10);
    memset(want + 20, 66, 10);
    want[0] = 90;
    trace_image_is(t, 5, "all", want, 30);
    pc_trace_free(t);
    char p[300];
    snprintf(p, sizeof p, "%s/trace.refused", dir);
    assert_int_not_equal(access(p, F_OK), 0);
    /* a cut in the child's write: its image, and the power off for the parent too, which
     * ends with 99 when its wait returns (TRACE.cut), neither refused nor going on */
    clean();
    char cut[300];
    snprintf(cut, sizeof cut, "%s|POWERCUT_CUT=4:none", envs);
    assert_int_equal(run(cut, "w:0:10:65 f w:20:10:66 y f"), 99);
    uint64_t clen;
    uint8_t *img = slurp("f.crash", &clen);
    assert_non_null(img);
    assert_int_equal(clen, 10);
    assert_true(range_is(img, 0, 10, 65));
    free(img);
    assert_int_not_equal(access(p, F_OK), 0);
    /* the same with nothing after the wait: the parent ends with 99 as its wait returns, not
     * at a later change (it never makes one) */
    clean();
    assert_int_equal(run(cut, "w:0:10:65 f w:20:10:66 y"), 99);
    assert_int_not_equal(access(p, F_OK), 0);
    /* system(): glibc waits inside it, unseen; the run is lent around the call */
    clean();
    assert_int_equal(run(envs, "w:0:10:65 f w:20:10:66 ] f"), 0);
    t = read_trace(5);
    assert_int_equal(pc_trace_step_info(t, 4, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_PWRITE);
    trace_image_is(t, 5, "all", want, 30);
    pc_trace_free(t);
    assert_int_not_equal(access(p, F_OK), 0);
    uint64_t len;
    uint8_t *r;
    /* a parent that sleeps a second before it waits: its child gives up after 100 ms */
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1|POWERCUT_LEND_WAIT=100", dir);
    assert_int_equal(run(envs, "w:0:10:65 [:1000 f"), 0);
    r = slurp("trace.refused", &len);
    assert_non_null(r);
    r[len] = 0;
    if (!strstr((char *)r, "(its parent) and made no call within 100 ms of being asked for it")) fail_msg("not said: %s", (char *)r);
    free(r);
    t = read_trace(2); /* the parent's two steps, nothing of the child */
    pc_trace_free(t);
}

/* The trace a run of several processes just left (dir/trace), kept as dir/trace.fork, with
 * `steps` steps and complete. `what` names the run in a failure. */
static pc_trace *take_run_trace(uint64_t steps, const char *what)
{
    char tp[256], tq[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    snprintf(tq, sizeof tq, "%s/trace.fork", dir);
    assert_int_equal(rename(tp, tq), 0);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tq, &t), PC_OK);
    uint64_t n;
    int complete;
    assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
    assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
    if (n != steps || !complete) fail_msg("%s: %llu steps, complete %d", what, (unsigned long long)n, complete);
    return t;
}

/* One live cut of the run under comparison: `envs` hold its POWERCUT_CUT (`at`: its value, for
 * a message); the runner checks the exit statuses (and fails the test) and leaves the crash
 * images in dir. */
typedef void (*live_cut_fn)(const char *envs, const char *at, void *ctx);

/* The run of several processes (trace tf) against the same calls in one process (trace ta):
 * the same steps (call and file), the same image of each of the nfiles files (ids 0 up, their
 * crash images named in `crash`) at every step under each of 5 crash choices, and a live cut
 * (cut, with `envs` plus the cut) at every step under the first `live` choices writes the
 * images the run's trace derives. Frees both traces. */
static void same_as_alone(pc_trace *tf, pc_trace *ta, uint64_t steps, uint32_t nfiles, const char *const crash[],
                          const char *envs, size_t live, live_cut_fn cut, void *ctx, const char *what)
{
    const char *specs[] = {"none", "all", "none:all", "random:3:random:4:5", "prefix:1"};
    for (uint64_t k = 1; k <= steps; k++) {
        pc_step_info x, y;
        assert_int_equal(pc_trace_step_info(tf, k, &x), PC_OK);
        assert_int_equal(pc_trace_step_info(ta, k, &y), PC_OK);
        if (x.call != y.call || x.file != y.file)
            fail_msg("%s: step %llu is call %d on %u, alone %d on %u", what, (unsigned long long)k, (int)x.call,
                     x.file, (int)y.call, y.file);
        for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
            pc_crash c;
            assert_int_equal(pc_crash_parse(specs[i], &c), PC_OK);
            uint8_t *img[3] = {NULL, NULL, NULL};
            uint64_t len[3] = {0, 0, 0};
            assert_true(nfiles <= 3);
            for (uint32_t id = 0; id < nfiles; id++) {
                uint8_t *other;
                uint64_t olen;
                int r1 = pc_trace_image(tf, id, k, &c, &img[id], &len[id]);
                int r2 = pc_trace_image(ta, id, k, &c, &other, &olen);
                if (r1 != r2 || (!r1 && (len[id] != olen || memcmp(img[id], other, olen))))
                    fail_msg("%s: step %llu %s: file %u's image differs from the one process's", what,
                             (unsigned long long)k, specs[i], id);
                if (!r2) free(other);
                if (r1) img[id] = NULL;
            }
            if (i < live) {
                char at[80], with_cut[600];
                clean();
                snprintf(at, sizeof at, "%llu:%s", (unsigned long long)k, specs[i]);
                snprintf(with_cut, sizeof with_cut, "%s|POWERCUT_CUT=%s", envs, at);
                cut(with_cut, at, ctx);
                for (uint32_t id = 0; id < nfiles; id++) {
                    if (!img[id]) continue;
                    uint64_t ll;
                    uint8_t *live_img = slurp(crash[id], &ll);
                    if (!live_img || ll != len[id] || memcmp(live_img, img[id], ll))
                        fail_msg("%s: cut %llu:%s: the live image of %s differs from the trace's", what,
                                 (unsigned long long)k, specs[i], crash[id]);
                    free(live_img);
                }
            }
            for (uint32_t id = 0; id < nfiles; id++) free(img[id]);
        }
    }
    pc_trace_free(ta);
    pc_trace_free(tf);
    char tq[256];
    snprintf(tq, sizeof tq, "%s/trace.fork", dir);
    unlink(tq);
}

static void fork_cut(const char *envs, const char *at, void *ctx)
{
    const char *forked = ctx;
    int rc = run(envs, forked);
    if (rc != 99) fail_msg("'%s': cut %s: exit %d, not 99", forked, at, rc);
}

/* A run of `forked` under POWERCUT_RUN (mode: more variables), where a forked child of the
 * owner changes the file without exec, against a run of `alone`, the same calls in one
 * process (same_as_alone): a live cut of `forked` at every step (the child's among them, its
 * parent then ending as the cut child did: exit 99) under the first `live` choices. */
static void fork_vs_alone(const char *mode, const char *forked, const char *alone, uint64_t steps, size_t live)
{
    static const char *const crash[] = {"f.crash"};
    char envs[300], tp[256], what[400];
    clean();
    snprintf(what, sizeof what, "'%s'%s", forked, mode);
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1%s", dir, mode);
    if (run(envs, forked) != 0) fail_msg("%s: the run failed", what);
    snprintf(tp, sizeof tp, "%s/trace.refused", dir);
    if (!access(tp, F_OK)) fail_msg("%s: refused", what);
    pc_trace *tf = take_run_trace(steps, what);
    clean();
    assert_int_equal(run(envs, alone), 0);
    same_as_alone(tf, read_trace(steps), steps, 1, crash, envs, live, fork_cut, (void *)forked, what);
}

/* POWERCUT_RUN: a forked child of the owner that writes without exec takes part in the run:
 * it waits for the owner's lend (waitpid), numbers its steps on in the one trace from the
 * baton's state (not its stale copy from the fork), and hands the run back at its end, so the
 * parent's wait returns to the child's state. Through the descriptor it inherited (pwrite +
 * fsync, then _exit), ending with exit, opening the file by name, truncating it through a hard
 * link, and done before its parent waits; storing through a mapping it inherited (into a page
 * its parent keeps open), with and without its own msync, and the parent storing its old
 * bytes back over the child's after the wait (also over an exec'd child's pwrite); in each
 * backend. Each run's images equal those of the same calls in one process, traced and cut
 * live. A child whose parent does not wait within POWERCUT_LEND_WAIT is refused, named,
 * before its write or store lands. */
static void test_fork_child(void **st)
{
    (void)st;
    /* 1 w, 2 f (parent) | 3 w, 4 w 'Y', 5 f (child) | 6 f (parent) */
    fork_vs_alone("", "w:0:10:65 f w:20:10:66 Y f", "w:0:10:65 f w:20:10:66 w:1:1:89 f f", 6, 3);
    char envs[256];
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1", dir);
    assert_int_equal(run(envs, "w:0:10:65 f w:20:10:66 Y f"), 0);
    pc_trace *t = read_trace(6);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, 4, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_PWRITE);
    assert_int_equal(pc_trace_step_info(t, 5, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_FSYNC);
    uint8_t want[30];
    memset(want, 65, 10);
    trace_image_is(t, 4, "none", want, 10); /* the child's byte and the parent's 66: volatile */
    memset(want + 10, 0, 10);
    memset(want + 20, 66, 10);
    want[1] = 'Y';
    trace_image_is(t, 6, "none", want, 30); /* the child's fsync made both durable */
    pc_trace_free(t);
    fork_vs_alone("", "w:0:10:65 f w:20:10:66 Ye f", "w:0:10:65 f w:20:10:66 w:1:1:89 f f", 6, 0);
    fork_vs_alone("", "w:0:10:65 f w:20:10:66 Yo f", "w:0:10:65 f w:20:10:66 w:1:1:89 f f", 6, 0);
    /* a truncating open by another name (a hard link the patterns do not match): the run's */
    fork_vs_alone("", "w:0:10:65 f l Yt f", "w:0:10:65 f l @:f.ln w:1:1:89 f f", 6, 1);
    fork_vs_alone("", "w:0:10:65 f Y:200 f", "w:0:10:65 f w:1:1:89 f f", 5, 1);
    /* 1 t, 2 M (parent) | 3 M (child's store into the page its parent keeps open) | 4 f */
    const char *modes[] = {"", "|POWERCUT_MMAP=sync", "|POWERCUT_MMAP=mprotect", "|POWERCUT_MMAP=uffd",
                           "|POWERCUT_TRACE_MAPPED=1"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (i == 3 && !uffd_available()) continue;
        fork_vs_alone(modes[i], "t:8192 m:8192 s:0:10:65 M:0:4096 F:100:10:66:1 s:5000:10:67 f",
                      "t:8192 m:8192 s:0:10:65 M:0:4096 s:100:10:66 M:0:110 s:5000:10:67 f", 4, i < 2 ? 3 : 0);
        fork_vs_alone(modes[i], "t:8192 m:8192 s:0:10:65 M:0:4096 F:100:10:66 s:5000:10:67 f",
                      "t:8192 m:8192 s:0:10:65 M:0:4096 s:100:10:66 s:5000:10:67 f", 3, i < 2 ? 1 : 0);
        /* the parent, back from its wait, stores its old bytes back over the child's */
        fork_vs_alone(modes[i], "t:8192 m:8192 s:0:10:65 M:0:4096 F:100:10:66:1 s:100:10:0 f",
                      "t:8192 m:8192 s:0:10:65 M:0:4096 s:100:10:66 M:0:110 s:100:10:0 f", 4, i < 1 ? 2 : 0);
    }
    /* the same over an exec'd child's pwrite into a page the parent keeps open */
    fork_vs_alone("", "t:8192 m:8192 s:0:10:65 M:0:4096 y s:0:1:65 f",
                  "t:8192 m:8192 s:0:10:65 M:0:4096 w:0:1:90 s:0:1:65 f", 4, 2);
    /* a parent that sleeps a second before it waits: its child's write, and its store, are
     * refused after 100 ms, before they land */
    const char *busy[] = {"w:0:10:65 f Y:1000 f", "t:8192 m:8192 s:0:10:65 M:0:4096 F:100:10:66:1:1000 f"};
    for (int i = 0; i < 2; i++) {
        clean();
        snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1|POWERCUT_LEND_WAIT=100", dir);
        assert_int_equal(run(envs, busy[i]), 0);
        uint64_t len;
        uint8_t *r = slurp("trace.refused", &len);
        assert_non_null(r);
        r[len] = 0;
        if (!strstr((char *)r, "(forked by the owner, no exec) changed a tracked file while process") ||
            !strstr((char *)r, "(its parent) and made no call within 100 ms of being asked for it"))
            fail_msg("not said: %s", (char *)r);
        free(r);
        t = read_trace(3); /* the parent's steps, nothing of the child */
        pc_trace_free(t);
        r = slurp("f", &len);
        assert_non_null(r);
        assert_int_equal(r[i ? 100 : 1], i ? 0 : 65);
        free(r);
    }
}

typedef struct {
    const char *a, *b;
} pair_ops;

static void pair_cut(const char *envs, const char *at, void *ctx)
{
    const pair_ops *p = ctx;
    int rc[2];
    run_pair(envs, p->a, p->b, NULL, rc);
    if ((rc[0] != 99 && rc[1] != 99) || (rc[0] && rc[0] != 99) || (rc[1] && rc[1] != 99))
        fail_msg("'%s' beside '%s': cut %s: exit %d and %d", p->a, p->b, at, rc[0], rc[1]);
}

/* A run of two processes at work at once, a and b (run_pair; mode: more variables), on dir/f*
 * (f, fa, fb: file ids 0, 1, 2 in the order they are first opened), against a run of `alone`,
 * the same calls in one process in the order the turns force (same_as_alone): a live cut of
 * the pair at every step under the first `live` choices (the cut process ends with 99, the
 * other with 99 or, waiting for its turn, 0). */
static void pair_vs_alone(const char *mode, const char *a, const char *b, const char *alone, uint64_t steps,
                          size_t live)
{
    static const char *const crash[] = {"f.crash", "fa.crash", "fb.crash"};
    char envs[400], what[600];
    int rc[2];
    clean();
    snprintf(what, sizeof what, "'%s' beside '%s'%s", a, b, mode);
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1%s", dir, dir, mode);
    run_pair(envs, a, b, NULL, rc);
    uint64_t rlen;
    uint8_t *refused = slurp("trace.refused", &rlen);
    if (refused) refused[rlen] = 0;
    if (rc[0] || rc[1] || refused)
        fail_msg("%s: exit %d and %d, refused: %s", what, rc[0], rc[1], refused ? (char *)refused : "no");
    pc_trace *tf = take_run_trace(steps, what);
    clean();
    char alone_envs[400];
    snprintf(alone_envs, sizeof alone_envs, "POWERCUT_FILE=%s/f*|POWERCUT_TRACE=%s/trace%s", dir, dir, mode);
    assert_int_equal(run(alone_envs, alone), 0);
    pair_ops ops = {a, b};
    same_as_alone(tf, read_trace(steps), steps, 3, crash, envs, live, pair_cut, &ops, what);
}

/* POWERCUT_RUN: two processes of a run at work at once (neither waits for the other) take
 * turns: the one that would change a tracked file while the other owns the run asks for it,
 * and the owner lets it go at its next call of the shim; its next change asks for the run
 * back. The turns are forced through pipes (pc_work's 0 and 1): each writes its own file and
 * the shared one, and each fsyncs the shared one while the other's write there is not synced.
 * The steps number on in one trace in that order, each one's effect in the model: the images
 * equal those of the same calls in one process, traced and cut live at every step. Stores
 * through a mapping: the one that let the run go stores again after the other's write and
 * fsync (its store faults and takes the run back). An owner that makes no call (asleep)
 * keeps the run: the other is refused after POWERCUT_LEND_WAIT, named. */
static void test_concurrent(void **st)
{
    (void)st;
    /* A: 1 w f, 2 w fa | B: 3 w f, 4 w fb, 5 fsync f | A: 6 fsync f, 7-8 w+fsync fa |
     * B: 9-10 w+fsync fb, 11 w f | A: 12 w f, 13 fsync f */
    pair_vs_alone("", "w:0:10:65 6:fa:0:5:97 1 f 6:fa:0:5:98:f 1 w:30:10:67 f",
                  "0 w:10:10:66 6:fb:0:5:99 f 1 6:fb:0:5:100:f w:0:5:68 1",
                  "w:0:10:65 6:fa:0:5:97 w:10:10:66 6:fb:0:5:99 f f 6:fa:0:5:98:f 6:fb:0:5:100:f w:0:5:68 w:30:10:67 f",
                  13, 3);
    /* an exec after letting the run go: A: 1 w f, 2 w fa | B: 3 w f, 4 fsync f | A, a new
     * image (execv) that never owned the run in this image: 5 fsync f, 6-7 w+fsync fa */
    pair_vs_alone("", "w:0:10:65 6:fa:0:5:97 1 e:v f 6:fa:0:5:98:f", "0 w:10:10:66 f 1",
                  "w:0:10:65 6:fa:0:5:97 w:10:10:66 f f 6:fa:0:5:98:f", 7, 2);
    const char *modes[] = {"", "|POWERCUT_MMAP=sync", "|POWERCUT_MMAP=mprotect", "|POWERCUT_MMAP=uffd",
                           "|POWERCUT_TRACE_MAPPED=1"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (i == 3 && !uffd_available()) continue;
        /* A: 1 t, 2 msync | B: 3 w, 4 fsync | A: stores (the first faults and takes the run
         * back), 5 fsync */
        pair_vs_alone(modes[i], "t:8192 m:8192 s:0:10:65 M:0:4096 1 s:100:10:66 s:5000:10:67 f", "0 w:200:10:70 f 1",
                      "t:8192 m:8192 s:0:10:65 M:0:4096 w:200:10:70 f s:100:10:66 s:5000:10:67 f", 5, i < 2 ? 2 : 0);
        /* A: 1 t, stores left unsynced | B: 2 w, 3 fsync (A's stores made durable with it) |
         * A: 4 msync, stores, 5 fsync. Not under sync, which compares a mapping only at the
         * syncs of its file: the one process finds the stores at the fsync of step 3, the
         * pair when A lets the run go, before step 2 */
        if (i != 1)
            pair_vs_alone(modes[i], "t:8192 m:8192 s:0:10:65 1 M:0:4096 s:100:10:66 s:5000:10:67 f", "0 w:200:10:70 f 1",
                          "t:8192 m:8192 s:0:10:65 w:200:10:70 f M:0:4096 s:100:10:66 s:5000:10:67 f", 5, i < 1 ? 2 : 0);
    }
    /* an owner that keeps changing the file, asleep between its writes: the other (started on
     * an untracked file, so that it asks first for its write), asking while the owner sleeps
     * (300 ms: time for it to start, under ASan too), takes the run at the owner's next call,
     * not after all of the owner's writes (the owner, wanting the run back at once, waits for
     * the one that asked to take it). Its write is step 2, or 3 where the owner asked back
     * between its open (which took the run) and its write */
    char envs[400], g[160];
    int rc[2];
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1", dir, dir);
    snprintf(g, sizeof g, "%s/g", dir);
    run_pair(envs, "w:0:1:65 2 z:300 w:1:1:65 z:5 w:2:1:65 z:5 w:3:1:65 z:5 w:4:1:65 z:5 w:5:1:65", "0 6:f:100:1:66",
             g, rc);
    assert_int_equal(rc[0], 0);
    assert_int_equal(rc[1], 0);
    pc_trace *t = read_trace(7);
    pc_step_info info = {0};
    uint64_t k = 2;
    for (; k <= 7; k++) {
        assert_int_equal(pc_trace_step_info(t, k, &info), PC_OK);
        if (info.off == 100) break;
    }
    if (k > 3) fail_msg("the asking process's write is step %llu, not 2 or 3", (unsigned long long)k);
    pc_trace_free(t);
    /* an owner asleep (no call) for a second: the other's write is refused after 100 ms */
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_TRACE=%s/trace|POWERCUT_RUN=1|POWERCUT_LEND_WAIT=100",
             dir, dir);
    run_pair(envs, "w:0:10:65 2 z:1000 f", "0 6:f:10:10:66", g, rc);
    unlink(g);
    assert_int_equal(rc[0], 0);
    assert_int_equal(rc[1], 97);
    uint64_t len;
    uint8_t *r = slurp("trace.refused", &len);
    assert_non_null(r);
    r[len] = 0;
    if (!strstr((char *)r, "opened a tracked file while process") ||
        !strstr((char *)r, "owns the run and made no call within 100 ms of being asked for it"))
        fail_msg("not said: %s", (char *)r);
    free(r);
    t = read_trace(2); /* the owner's write and fsync, nothing of the other */
    pc_trace_free(t);
}

/* Defect 8: an exec in the owner continues the run: the steps before it stay in the trace and
 * numbering goes on, and what was volatile before it stays volatile (never durable), in a
 * traced run and in a cut run, through every exec function; a failed exec changes nothing. */
static void test_exec_continues(void **st)
{
    (void)st;
    /* 1 w, 2 f, 3 w (unsynced), 4 t, store through a mapping (unsynced) | exec |
     * 5 w, 6 O_DSYNC write (its range and the size durable), 7 fsync */
    const char *hows[] = {"e:v", "e:p", "e:l", "e:e", "e:E", "e:f", "e:x"};
    for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
        char ops[256], envs[256];
        snprintf(ops, sizeof ops, "w:0:4096:65 f w:0:4096:66 t:8192 m:8192 s:5000:10:70 %s w:8192:512:68 D "
                 "w:4096:512:69 f", hows[i]);
        for (int mapped = 0; mapped < 2; mapped++) {
            clean();
            snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace%s", dir, mapped ? "|POWERCUT_TRACE_MAPPED=1" : "");
            if (run(envs, ops) != 0) fail_msg("%s%s: the run failed", hows[i], mapped ? " (mapped trace)" : "");
            uint64_t vlen;
            uint8_t *vol = slurp("f", &vlen);
            if (vlen != 8704) fail_msg("%s%s: the file has %llu bytes", hows[i], mapped ? " (mapped trace)" : "",
                                       (unsigned long long)vlen);
            pc_trace *t = read_trace(7);
            uint8_t want[8704];
            memset(want, 65, 4096);
            trace_image_is(t, 5, "none", want, 4096); /* 66 was never synced: old content */
            trace_image_is(t, 6, "none", want, 4096);
            memset(want + 4096, 0, sizeof want - 4096);
            memset(want + 4096, 69, 512);
            trace_image_is(t, 7, "none", want, 8704); /* only the O_DSYNC range and the size */
            trace_image_is(t, 7, "all", vol, vlen);
            pc_trace_free(t);
            free(vol);
        }
        /* cut runs: the live model is carried over, and agrees */
        uint64_t len;
        uint8_t *img = cut_image("5:none", NULL, ops, &len);
        assert_int_equal(len, 4096);
        assert_true(range_is(img, 0, 4096, 65));
        free(img);
        img = cut_image("6:none:all", NULL, ops, &len); /* early writeback: the volatile state */
        assert_int_equal(len, 8704);
        assert_true(range_is(img, 0, 4096, 66));
        assert_true(range_is(img, 5000, 10, 70));
        assert_true(range_is(img, 8192, 512, 68));
        free(img);
        img = cut_image("7:none", NULL, ops, &len);
        assert_int_equal(len, 8704);
        assert_true(range_is(img, 0, 4096, 65));
        assert_true(range_is(img, 4096, 512, 69));
        assert_true(range_is(img, 5000, 10, 0));
        free(img);
    }
}

/* A cut's image under POWERCUT_NAMESPACE=posix, or NULL when the cut leaves no file. */
static uint8_t *ns_image(const char *cut, const char *ops, uint64_t *len)
{
    clean();
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_NAMESPACE=posix|POWERCUT_CUT=%s", cut);
    int rc = run(envs, ops);
    if (rc != 99) fail_msg("cut %s of '%s': exit %d, not 99", cut, ops, rc);
    return slurp("f.crash", len);
}

/* A file the program creates has no durable name until an fsync of its directory: before
 * it, every cut leaves no file, even with the data synced (but early writeback may have
 * written the name, as the kernel may); from it on, the file is there. The directory's fsync
 * is a step with or without the namespace model, so steps number the same. */
static void test_created_name_needs_dir_fsync(void **st)
{
    (void)st;
    /* 1 pwrite, 2 fsync, 3 fsync-dir, 4 pwrite, 5 fdatasync-dir (nothing left to make durable) */
    const char *ops = "w:0:4096:97 f j w:0:4096:98 J";
    uint64_t len;
    const char *gone[] = {"1:all", "2:all", "2:none", "3:none"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) {
        uint8_t *img = ns_image(gone[i], ops, &len);
        if (img) fail_msg("cut %s: the name is not durable yet, but the image exists", gone[i]);
    }
    const char *there[] = {"3:all", "4:none", "5:none", "2:none:all"};
    for (size_t i = 0; i < sizeof there / sizeof *there; i++) {
        uint8_t *img = ns_image(there[i], ops, &len);
        if (!img) fail_msg("cut %s: the file must exist", there[i]);
        /* written back early: the name and the size, not the data the fsync was writing */
        assert_int_equal(len, 4096);
        assert_true(range_is(img, 0, 4096, i < 3 ? 'a' : 0));
        free(img);
    }
    /* the trace says the same, step by step, and names the directory's fsync */
    clean();
    char tr[256], envs[300];
    snprintf(tr, sizeof tr, "%s/trace", dir);
    snprintf(envs, sizeof envs, "POWERCUT_NAMESPACE=posix|POWERCUT_TRACE=%s", tr);
    assert_int_equal(run(envs, ops), 0);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, 3, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_FSYNC_DIR);
    assert_string_equal(pc_call_name(info.call), "fsync-dir");
    assert_int_equal(pc_trace_step_info(t, 5, &info), PC_OK);
    assert_int_equal(info.call, PC_CALL_FDATASYNC_DIR);
    const char *cuts[] = {"2:all", "3:none", "3:all", "4:none", "2:none:all"};
    const int exists[] = {0, 0, 1, 1, 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        uint64_t step;
        pc_crash c;
        int e = -1;
        assert_int_equal(pc_cut_parse(cuts[i], &step, &c), PC_OK);
        assert_int_equal(pc_trace_image_exists(t, 0, step, &c, &e), PC_OK);
        if (e != exists[i]) fail_msg("trace, cut %s: exists %d, want %d", cuts[i], e, exists[i]);
    }
    pc_trace_free(t);
    /* a name still volatile at an exec stays so in the new image, until the fsync there */
    const char *exec_ops = "w:0:4096:97 f e:v j";
    uint8_t *im = ns_image("3:none", exec_ops, &len);
    if (im) fail_msg("cut 3:none after an exec: the name is not durable yet, but the image exists");
    im = ns_image("3:all", exec_ops, &len);
    if (!im) fail_msg("cut 3:all after an exec: the file must exist");
    assert_int_equal(len, 4096);
    free(im);
    /* without the namespace model the file exists from its creation; same steps */
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_CUT=3:none");
    assert_int_equal(run(envs, ops), 99);
    uint8_t *img = slurp("f.crash", &len);
    assert_non_null(img);
    assert_int_equal(len, 4096);
    free(img);
}

/* An open with O_CREAT of a file that exists creates no name: it stays durable. */
static void test_existing_name_stays_durable(void **st)
{
    (void)st;
    uint64_t len;
    for (int pass = 0; pass < 2; pass++) {
        clean();
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "old", 3), 3);
        close(fd);
        /* pass 1: a stale image of an earlier run must not pass for this cut's */
        if (pass) {
            char p[256];
            snprintf(p, sizeof p, "%s/f.crash", dir);
            fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            close(fd);
        }
        assert_int_equal(run("POWERCUT_NAMESPACE=posix|POWERCUT_CUT=2:all", "w:0:4096:97 f"), 99);
        uint8_t *img = slurp("f.crash", &len);
        assert_non_null(img);
        assert_int_equal(len, 4096);
        assert_true(range_is(img, 0, 4096, 'a'));
        free(img);
    }
    /* a stale image goes when the cut leaves no file */
    clean();
    char p[256];
    snprintf(p, sizeof p, "%s/f.crash", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    close(fd);
    assert_int_equal(run("POWERCUT_NAMESPACE=posix|POWERCUT_CUT=2:all", "w:0:4096:97 f"), 99);
    assert_null(slurp("f.crash", &len));
    /* an unknown namespace model is a usage error */
    assert_int_equal(run("POWERCUT_NAMESPACE=ext5", "w:0:1:97"), 2);
}

/* ---- names: rename, unlink, link (POWERCUT_NAMESPACE=posix unless said) ---- */
static void expect_lost(const char *envs, const char *ops, const char *what);

static void put(const char *name, int byte, size_t len)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    uint8_t *b = malloc(len + 1);
    memset(b, byte, len);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    free(b);
    close(fd);
}

static void clean_names(void)
{
    clean();
    const char *names[] = {"f.tmp", "f.tmp.crash", "f.new", "f.new.crash", "g", "f.ln.crash",
                           "sub/f2", "sub/f2.crash", "f2", "f2.crash", "f.g", "f.g.crash"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
}

/* A run of ops cut at `cut`, every dir/f* file tracked, under namespace model `ns`. */
static void names_cut(const char *ns, const char *cut, const char *ops, const char *pre)
{
    clean_names();
    if (pre) put("f", 'o', 4096); /* there before the run: durable */
    char envs[512];
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=%s|POWERCUT_CUT=%s", dir, ns, cut);
    int rc = run(envs, ops);
    if (rc != 99) fail_msg("cut %s of '%s': exit %d, not 99", cut, ops, rc);
}

/* A traced run of ops under posix, f there before it ('o'): the trace, opened. */
static pc_trace *names_traced(const char *ops)
{
    clean_names();
    put("f", 'o', 4096);
    char tr[256], envs[512];
    snprintf(tr, sizeof tr, "%s/trace", dir);
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=posix|POWERCUT_TRACE=%s", dir, tr);
    assert_int_equal(run(envs, ops), 0);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    return t;
}

/* What the cut left at name: its image holds `len` bytes of `byte`; len -1: no such file. */
static void left(const char *cut, const char *name, long len, int byte)
{
    char img[128];
    snprintf(img, sizeof img, "%s.crash", name);
    uint64_t n;
    uint8_t *b = slurp(img, &n);
    if (len < 0) {
        if (b) fail_msg("cut %s: %s must not exist, but holds %llu bytes", cut, name, (unsigned long long)n);
        return;
    }
    if (!b) fail_msg("cut %s: %s must exist", cut, name);
    if (n != (uint64_t)len || !range_is(b, 0, n, byte))
        fail_msg("cut %s: %s holds %llu bytes (first %d), want %ld of %d", cut, name, (unsigned long long)n,
                 n ? b[0] : -1, len, byte);
    free(b);
}

/* What name holds in the trace's image of step k under crash spec (a file id, or
 * PC_NAME_NONE), from a replay of the trace. */
static uint32_t trace_holds(pc_trace *t, uint64_t k, const char *spec, const char *name)
{
    pc_replay *r;
    assert_int_equal(pc_replay_new(t, &r), PC_OK);
    uint64_t at = 0;
    do assert_int_equal(pc_replay_next(r, &at), PC_OK);
    while (at && at < k);
    assert_int_equal(at, k);
    pc_model *m;
    assert_int_equal(pc_replay_model(r, &m), PC_OK);
    pc_crash c;
    assert_int_equal(pc_crash_parse(spec, &c), PC_OK);
    char full[256];
    snprintf(full, sizeof full, "%s/%s", dir, name);
    uint32_t n, holds = PC_NAME_OTHER;
    assert_int_equal(pc_model_name_count(m, &n), PC_OK);
    for (uint32_t i = 0; i < n; i++) {
        const char *nm;
        assert_int_equal(pc_model_name(m, i, &nm), PC_OK);
        if (!strcmp(nm, full)) assert_int_equal(pc_model_image_name(m, i, &c, &holds), PC_OK);
    }
    pc_replay_free(r);
    return holds;
}

/* The atomic replace: a new version written to f.tmp, fsynced, renamed over f, the directory
 * fsynced. The rename is a step; f holds the new file only once the directory's fsync lands
 * (or writeback wrote the rename early), and the temporary name never existed on the disk.
 * Without the fsync of f.tmp the rename can land before its data: f empty. Without the
 * namespace model the rename is durable at once. */
static void test_rename_over_needs_dir_fsync(void **st)
{
    (void)st;
    /* 1 pwrite f.tmp, 2 fsync, 3 rename, 4 fsync-dir */
    const char *ops = "@:f.tmp w:0:4096:110 f %:f j";
    names_cut("posix", "2:all", ops, "pre");
    left("2:all", "f", 4096, 'o');
    left("2:all", "f.tmp", -1, 0);
    const char *old[] = {"3:none", "3:all", "4:none"};
    for (size_t i = 0; i < 3; i++) {
        names_cut("posix", old[i], ops, "pre");
        left(old[i], "f", 4096, 'o');
        left(old[i], "f.tmp", -1, 0);
    }
    const char *new[] = {"3:none:all", "4:all", "4:prefix:1"};
    for (size_t i = 0; i < 3; i++) {
        names_cut("posix", new[i], ops, "pre");
        left(new[i], "f", 4096, 'n');
        left(new[i], "f.tmp", -1, 0);
    }
    /* each rename call, and renameat2 with RENAME_NOREPLACE to a new name */
    names_cut("posix", "4:all", "@:f.tmp w:0:4096:110 f %:f:a j", "pre");
    left("renameat", "f", 4096, 'n');
    names_cut("posix", "4:all", "@:f.tmp w:0:4096:110 f %:f.new:n j", "pre");
    left("renameat2", "f.new", 4096, 'n');
    left("renameat2", "f", 4096, 'o');
    /* the unsafe order: the rename lands, the data never did */
    names_cut("posix", "3:all", "@:f.tmp w:0:4096:110 %:f j", "pre");
    left("no fsync of f.tmp", "f", 0, 0);
    /* names not modelled: the rename is durable at once */
    names_cut("none", "3:none", ops, "pre");
    left("none, 3:none", "f", 4096, 'n');
    left("none, 3:none", "f.tmp", -1, 0);
    /* the trace: the same answers, and the step named */
    pc_trace *t = names_traced(ops);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, 3, &info), PC_OK);
    assert_string_equal(pc_call_name(info.call), "rename");
    assert_int_equal(trace_holds(t, 3, "all", "f"), 0);
    assert_int_equal(trace_holds(t, 3, "none:all", "f"), 1);
    assert_int_equal(trace_holds(t, 4, "all", "f"), 1);
    assert_int_equal(trace_holds(t, 4, "all", "f.tmp"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 4, "none", "f.tmp"), PC_NAME_NONE);
    pc_trace_free(t);
}

/* POWERCUT_NAMESPACE=ext4: the unsafe replace (no fsync of f.tmp) is safe, as ext4's
 * auto_da_alloc writes f.tmp's data before the rename commits; the rename is committed by the
 * directory's fsync, or by writeback (the periodic commit), never without that data. A created
 * file's own fsync commits its name (posix: only its directory's). Live cuts and the trace
 * (its JOURNAL and JCOMMIT records) agree. */
static void test_ext4_profile(void **st)
{
    (void)st;
    /* 1 pwrite f.tmp, 2 rename over f (writes f.tmp's data), 3 fsync-dir */
    const char *ops = "@:f.tmp w:0:4096:110 %:f j";
    names_cut("ext4", "2:none:all", ops, "pre");
    left("2:none:all", "f", 4096, 'o');  /* the rename waits for its data */
    left("2:none:all", "f.tmp", 4096, 0); /* its creation committed, its size written back, its
                                            * data not (the data model's writeback all) */
    names_cut("ext4", "2:prefix:3:all", ops, "pre");
    left("2:prefix:3:all", "f", 4096, 'o');
    names_cut("ext4", "2:all:all", ops, "pre");
    left("2:all:all", "f", 4096, 'n');
    left("2:all:all", "f.tmp", -1, 0);
    names_cut("ext4", "3:none", ops, "pre");
    left("3:none", "f", 4096, 'o');      /* not committed; f.tmp's creation neither */
    left("3:none", "f.tmp", -1, 0);
    names_cut("ext4", "3:all", ops, "pre");
    left("3:all", "f", 4096, 'n');       /* posix: empty (test_rename_over_needs_dir_fsync) */
    /* a created file's fsync commits its name: 1 pwrite, 2 fsync, 3 pwrite */
    names_cut("ext4", "3:none", "@:f.new w:0:4096:110 f w:0:4096:111", NULL);
    left("ext4, fsync of f.new", "f.new", 4096, 'n');
    names_cut("posix", "3:none", "@:f.new w:0:4096:110 f w:0:4096:111", NULL);
    left("posix, fsync of f.new", "f.new", -1, 0);
    /* the trace */
    clean_names();
    put("f", 'o', 4096);
    char tr[256], envs[512];
    snprintf(tr, sizeof tr, "%s/trace", dir);
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=ext4|POWERCUT_TRACE=%s", dir, tr);
    assert_int_equal(run(envs, ops), 0);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    assert_int_equal(trace_holds(t, 2, "none:all", "f"), 0);
    assert_int_equal(trace_holds(t, 2, "none:all", "f.tmp"), 1);
    assert_int_equal(trace_holds(t, 2, "prefix:3:all", "f"), 0);
    assert_int_equal(trace_holds(t, 2, "all:all", "f"), 1);
    assert_int_equal(trace_holds(t, 3, "none", "f"), 0);
    assert_int_equal(trace_holds(t, 3, "none", "f.tmp"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 3, "all", "f"), 1);
    uint8_t *img;
    uint64_t len;
    pc_crash c;
    assert_int_equal(pc_crash_parse("all", &c), PC_OK);
    assert_int_equal(pc_trace_image(t, 1, 3, &c, &img, &len), PC_OK);
    assert_int_equal(len, 4096);
    assert_true(range_is(img, 0, len, 'n'));
    free(img);
    pc_trace_free(t);
    /* across an exec the journal goes on in order: 1 pwrite f.tmp, 2 rename over f, exec,
     * 3 link f.ln, 4 fsync-dir; live cuts after the exec (the hand-over's JOP records) agree
     * with the one trace, and f.ln is never there without the rename before it */
    const char *xops = "@:f.tmp w:0:4096:110 %:f e:v ^:f.ln:l j";
    clean_names();
    put("f", 'o', 4096);
    assert_int_equal(run(envs, xops), 0);
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    int drawn[3] = {0, 0, 0};
    for (int seed = 0; seed < 12; seed++) {
        char cut[80], spec[64];
        snprintf(spec, sizeof spec, "none:random:%d", seed);
        snprintf(cut, sizeof cut, "4:%s", spec);
        uint32_t f = trace_holds(t, 4, spec, "f"), ln = trace_holds(t, 4, spec, "f.ln");
        if (ln == 1 && f != 1) fail_msg("%s: f.ln without the rename before it", spec);
        names_cut("ext4", cut, xops, "pre");
        left(cut, "f", 4096, f == 1 ? 'n' : 'o');
        left(cut, "f.ln", ln == 1 ? 4096 : -1, 'n');
        drawn[(f == 1) + (ln == 1)]++;
    }
    assert_true(drawn[0] && drawn[1] && drawn[2]);
    pc_trace_free(t);
}

/* unlink, unlinkat and remove of a tracked name are steps; the name goes from the disk only
 * with its directory's fsync, and until then the file is there with its content as of the
 * cut (the data is the file's, whatever happens to its name). */
static void test_unlink_needs_dir_fsync(void **st)
{
    (void)st;
    /* 1 unlink, 2 pwrite through the open descriptor, 3 fsync, 4 fsync-dir */
    const char *ops = "#:f:u w:0:4096:99 f j";
    names_cut("posix", "1:none", ops, "pre");
    left("1:none", "f", 4096, 'o');
    names_cut("posix", "3:all", ops, "pre");
    left("3:all", "f", 4096, 'c');
    names_cut("posix", "4:none", ops, "pre");
    left("4:none", "f", 4096, 'c');
    names_cut("posix", "4:all", ops, "pre");
    left("4:all", "f", -1, 0);
    names_cut("posix", "1:none:all", ops, "pre"); /* written back early */
    left("1:none:all", "f", -1, 0);
    names_cut("posix", "2:all", "#:f:a /:.", "pre");
    left("unlinkat", "f", -1, 0);
    names_cut("posix", "2:all", "#:f:r /:.", "pre");
    left("remove", "f", -1, 0);
    names_cut("none", "1:none", ops, "pre");
    left("none, 1:none", "f", -1, 0);
}

/* link makes a second name, volatile like a created one; a rename across directories needs
 * both directories' fsyncs: the new name lands with its parent's, the old one goes with its
 * own, and a cut between the two leaves both names, or neither. */
static void test_link_and_rename_across_dirs(void **st)
{
    (void)st;
    /* f created by the run: 1 pwrite, 2 fsync, 3 link f.ln, 4 linkat f.new, 5 fsync-dir */
    const char *ops = "w:0:512:97 f ^:f.ln:l ^:f.new:a j";
    names_cut("posix", "4:none", ops, NULL);
    left("4:none", "f", -1, 0);
    left("4:none", "f.ln", -1, 0);
    names_cut("posix", "5:all", ops, NULL);
    left("5:all", "f", 512, 'a');
    left("5:all", "f.ln", 512, 'a');
    left("5:all", "f.new", 512, 'a');
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    mkdir(sub, 0755);
    /* 1 rename f -> sub/f2, 2 fsync sub, 3 fsync dir */
    const char *across = "%:sub/f2 /:sub /:.";
    names_cut("posix", "2:none", across, "pre");
    left("2:none", "f", 4096, 'o');
    left("2:none", "sub/f2", -1, 0);
    names_cut("posix", "2:all", across, "pre");
    left("2:all (both names)", "f", 4096, 'o');
    left("2:all (both names)", "sub/f2", 4096, 'o');
    names_cut("posix", "3:all", across, "pre");
    left("3:all", "f", -1, 0);
    left("3:all", "sub/f2", 4096, 'o');
    names_cut("posix", "2:all", "%:sub/f2 /:. /:sub", "pre");
    left("old parent first (neither name)", "f", -1, 0);
    left("old parent first (neither name)", "sub/f2", -1, 0);
    rmdir(sub);
    /* a rename between two links of one file does nothing (rename(2)), but is a step */
    names_cut("posix", "4:all", "^:f.ln:l j %:f.ln j", "pre");
    left("rename onto a link of the same file", "f", 4096, 'o');
    left("rename onto a link of the same file", "f.ln", 4096, 'o');
}

/* renameat2's RENAME_EXCHANGE swaps what two tracked names hold in one step: under posix the
 * swap lands with the directory's fsync (or early writeback, whole), never half; the content
 * goes with the files. */
static void test_rename_exchange(void **st)
{
    (void)st;
    /* f there before the run ('o'); f.tmp created by it: 1 pwrite 'n', 2 fsync, 3 exchange
     * f.tmp with f, 4 fsync of the directory */
    const char *ops = "@:f.tmp w:0:512:110 f %:f:x j";
    names_cut("posix", "3:none", ops, "pre");
    left("3:none", "f", 4096, 'o');
    left("3:none", "f.tmp", -1, 0); /* its creation is not durable either */
    names_cut("posix", "3:all", ops, "pre"); /* the fsync of the directory is still to come */
    left("3:all", "f", 4096, 'o');
    left("3:all", "f.tmp", -1, 0);
    names_cut("posix", "3:none:all", ops, "pre"); /* written back early: the whole swap */
    left("3:none:all", "f", 512, 'n');
    left("3:none:all", "f.tmp", 4096, 'o');
    names_cut("posix", "4:all", ops, "pre");
    left("4:all", "f", 512, 'n');
    left("4:all", "f.tmp", 4096, 'o');
    names_cut("none", "3:none", ops, "pre"); /* names durable at once */
    left("none, 3:none", "f", 512, 'n');
    left("none, 3:none", "f.tmp", 4096, 'o');
    names_cut("ext4", "4:all", ops, "pre");
    left("ext4, 4:all", "f", 512, 'n');
    left("ext4, 4:all", "f.tmp", 4096, 'o');
    /* the trace (what crashcheck run derives its states from): the same answers */
    pc_trace *t = names_traced(ops);
    assert_int_equal(trace_holds(t, 3, "all", "f"), 0);
    assert_int_equal(trace_holds(t, 3, "all", "f.tmp"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 3, "none:all", "f"), 1);
    assert_int_equal(trace_holds(t, 3, "none:all", "f.tmp"), 0);
    assert_int_equal(trace_holds(t, 4, "all", "f"), 1);
    assert_int_equal(trace_holds(t, 4, "all", "f.tmp"), 0);
    pc_trace_free(t);
}

/* truncate(2) by path of a tracked file is a step (as ftruncate), its size volatile until a
 * sync of the file; a path the shim does not track passes through. */
static void test_truncate_by_path(void **st)
{
    (void)st;
    /* 1 pwrite, 2 fsync, 3 truncate to 100, 4 fsync */
    const char *ops = "w:0:4096:97 f {:100 f";
    clean_names();
    char tr[256], envs[512];
    snprintf(tr, sizeof tr, "%s/trace", dir);
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_TRACE=%s", dir, tr);
    assert_int_equal(run(envs, ops), 0);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    uint64_t n;
    assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
    assert_int_equal(n, 4);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, 3, &info), PC_OK);
    assert_string_equal(pc_call_name(info.call), "truncate");
    assert_int_equal(info.off, 100);
    pc_trace_free(t);
    names_cut("none", "3:none", ops, NULL);
    left("truncate, 3:none", "f", 4096, 'a'); /* the size change is not durable */
    names_cut("none", "4:all", ops, NULL);
    left("truncate, 4:all", "f", 100, 'a');
}

/* A directory made under the root is a name like a file's (posix: volatile until an fsync of its
 * parent), and a name below it exists in an image only if the directory does: a file fsynced
 * with its directory's fsync is lost until the parent's. rmdir likewise; a directory made
 * before the first tracked open (no model yet) is handed to the model, unless an fsync of its
 * parent made it durable first. */
static void test_directories(void **st)
{
    (void)st;
    char tr[256], envs[512], sub[200];
    snprintf(tr, sizeof tr, "%s/trace", dir);
    snprintf(sub, sizeof sub, "%s/f.d", dir);
    /* 1 mkdir f.d, 2 pwrite f.d/g, 3 fsync, 4 fsync f.d, 5 fsync ., 6 unlink g, 7 fsync f.d,
     * 8 rmdir f.d, 9 fsync . */
    const char *ops = "(:f.d @:f.d/g w:0:512:97 f /:f.d /:. #:f.d/g:u /:f.d ):f.d /:.";
    clean_names();
    rmdir(sub);
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=posix|POWERCUT_TRACE=%s", dir, tr);
    assert_int_equal(run(envs, ops), 0);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, 1, &info), PC_OK);
    assert_string_equal(pc_call_name(info.call), "mkdir");
    assert_int_equal(pc_trace_step_info(t, 8, &info), PC_OK);
    assert_string_equal(pc_call_name(info.call), "rmdir");
    assert_int_equal(trace_holds(t, 4, "all", "f.d/g"), PC_NAME_NONE); /* its entry, not f.d's */
    assert_int_equal(trace_holds(t, 4, "all", "f.d"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 4, "none:all", "f.d/g"), 1);     /* written back early */
    assert_int_equal(trace_holds(t, 5, "none", "f.d/g"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 5, "all", "f.d/g"), 1);
    assert_int_equal(trace_holds(t, 5, "all", "f.d"), PC_NAME_DIR);
    assert_int_equal(trace_holds(t, 9, "none", "f.d"), PC_NAME_DIR); /* the rmdir not durable */
    assert_int_equal(trace_holds(t, 9, "none", "f.d/g"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 9, "all", "f.d"), PC_NAME_NONE);
    pc_trace_free(t);
    /* ext4: the mkdir and the creation are journal operations in order, and the fsync of g
     * (step 3: the file changed since the last commit) commits both */
    clean_names();
    rmdir(sub);
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=ext4|POWERCUT_TRACE=%s", dir, tr);
    assert_int_equal(run(envs, ops), 0);
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    assert_int_equal(trace_holds(t, 3, "none", "f.d/g"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 3, "none", "f.d"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 3, "all", "f.d/g"), 1);
    assert_int_equal(trace_holds(t, 3, "all", "f.d"), PC_NAME_DIR);
    pc_trace_free(t);
    /* before the first tracked open: FILE (f) is not tracked, d/g is */
    snprintf(sub, sizeof sub, "%s/d", dir);
    const char *early[] = {"(:d @:d/g w:0:512:97 f /:d /:.", "(:d /:. @:d/g w:0:512:97 f /:d"};
    for (int k = 0; k < 2; k++) {
        clean_names();
        char g[256];
        snprintf(g, sizeof g, "%s/d/g", dir);
        unlink(g);
        rmdir(sub);
        snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/d/*|POWERCUT_NAMESPACE=posix|POWERCUT_TRACE=%s", dir, tr);
        assert_int_equal(run(envs, early[k]), 0);
        assert_int_equal(pc_trace_open(tr, &t), PC_OK);
        /* step 3, the fsync of d: g's entry lands; d's own only with the fsync of its parent */
        assert_int_equal(trace_holds(t, 3, "all", "d/g"), k ? 0 : PC_NAME_NONE);
        if (!k) assert_int_equal(trace_holds(t, 4, "all", "d/g"), 0);
        pc_trace_free(t);
        unlink(g);
        rmdir(sub);
    }
    snprintf(sub, sizeof sub, "%s/f.d", dir);
    /* a directory holding a tracked name cannot be renamed: its names would all move */
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=posix", dir);
    expect_lost(envs, "(:f.d @:f.d/g 8:f.d:f.e", "rename of a directory holding");
    char g[256];
    snprintf(g, sizeof g, "%s/f.d/g", dir);
    unlink(g);
    rmdir(sub);
}

/* A symbolic link made in the tracked tree is a file of the model (its target, durable with
 * it) under a created name: absent until its directory's fsync; renamed over another link (the
 * atomic switch of a "current" pointer), the name holds the new link only once the rename is
 * durable; images lay it out as a link. */
static void test_symlinks(void **st)
{
    (void)st;
    /* first a link made before an exec of the program and renamed after it: still followed */
    const char *ops = "7:a:f.cur j 7:b:f.tmp 8:f.tmp:f.cur j";
    char tr[256], envs[512];
    snprintf(tr, sizeof tr, "%s/trace", dir);
    char p[256];
    snprintf(p, sizeof p, "%s/f.cur", dir);
    clean_names();
    unlink(p);
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=posix|POWERCUT_TRACE=%s", dir, tr);
    /* 1 symlink f.tmp, 2 fsync-dir, exec, 3 rename f.tmp f.cur, 4 fsync-dir */
    assert_int_equal(run(envs, "7:a:f.tmp j e:v 8:f.tmp:f.cur j"), 0);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    assert_int_equal(trace_holds(t, 4, "none", "f.cur"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 4, "all", "f.cur"), 1);
    pc_trace_free(t);
    clean_names();
    unlink(p);
    /* 1 symlink f.cur -> a, 2 fsync-dir, 3 symlink f.tmp -> b, 4 rename f.tmp f.cur, 5 fsync-dir */
    assert_int_equal(run(envs, ops), 0);
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, 1, &info), PC_OK);
    assert_string_equal(pc_call_name(info.call), "symlink");
    assert_int_equal(trace_holds(t, 1, "all", "f.cur"), PC_NAME_NONE);
    assert_int_equal(trace_holds(t, 1, "none:all", "f.cur"), 1); /* written back early */
    assert_int_equal(trace_holds(t, 2, "all", "f.cur"), 1);
    assert_int_equal(trace_holds(t, 4, "all", "f.cur"), 1);
    assert_int_equal(trace_holds(t, 5, "none", "f.cur"), 1);
    assert_int_equal(trace_holds(t, 5, "all", "f.cur"), 2);
    assert_int_equal(trace_holds(t, 5, "all", "f.tmp"), PC_NAME_NONE);
    pc_replay *r;
    pc_model *m;
    uint64_t at;
    assert_int_equal(pc_replay_new(t, &r), PC_OK);
    assert_int_equal(pc_replay_next(r, &at), PC_OK);
    assert_int_equal(pc_replay_model(r, &m), PC_OK);
    int is = 0;
    assert_int_equal(pc_model_file_is_symlink(m, 1, &is), PC_OK);
    assert_true(is);
    assert_int_equal(pc_model_file_is_symlink(m, 0, &is), PC_OK);
    assert_false(is);
    pc_replay_free(r);
    pc_trace_free(t);
    unlink(p);
    /* the live cut lays the link out as a link */
    names_cut("posix", "5:all", ops, NULL);
    char img[256], target[16] = {0};
    snprintf(img, sizeof img, "%s/f.cur.crash", dir);
    assert_int_equal(readlink(img, target, sizeof target - 1), 1);
    assert_string_equal(target, "b");
    unlink(img);
    unlink(p);
}

/* What the model cannot follow stops the run: renameat2's RENAME_WHITEOUT, an untracked file
 * renamed over a tracked name or exchanged with it. */
static void test_names_refused(void **st)
{
    (void)st;
    char envs[512];
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=posix", dir);
    expect_lost(envs, "@:f.tmp %:f:w", "RENAME_WHITEOUT");
    expect_lost("POWERCUT_NAMESPACE=posix", "@:g w:0:10:97 %:f", "does not track");
    expect_lost("POWERCUT_NAMESPACE=posix", "@:g w:0:10:97 %:f:x", "RENAME_EXCHANGE with a file the shim does not track");
}

/* Calls that change a tracked file in ways the model does not follow stop the run, named:
 * madvise(MADV_REMOVE) of its shared mapping, a reflink (ioctl FICLONE) into it when it
 * succeeds, a file linked by its descriptor into the tree (O_TMPFILE + linkat). One the file system refuses changed nothing: cp's reflink probe goes on (the test
 * folder's file system has no reflinks: the refusal of a successful one is not run here). */
static void test_unmodelled_calls_refused(void **st)
{
    (void)st;
    expect_lost("", "t:8192 m:8192 s:0:10:97 }:0:4096", "MADV_REMOVE");
    expect_lost("POWERCUT_NAMESPACE=posix", "w:0:10:97 ':f.new", "by its descriptor");
    char made[256];
    snprintf(made, sizeof made, "%s/f.new", dir);
    unlink(made);
    clean();
    char tr[256], envs[300];
    snprintf(tr, sizeof tr, "%s/trace", dir);
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s", tr);
    int rc = run(envs, "w:0:10:97 ` f");
    if (rc == 97) skip(); /* a file system with reflinks: refused, as it must be */
    assert_int_equal(rc, 0);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    uint64_t n;
    assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
    assert_int_equal(n, 2); /* the pwrite and the fsync: the failed FICLONE is no step */
    pc_trace_free(t);
}

/* Names go across an exec of the owner: a rename before it stays volatile until the fsync
 * of its directory after it, a link after it is a name of the same file, and the live cuts
 * after the exec agree with the trace for seeded writeback (the coins of the operations
 * after the exec go on from those before it). */
static void test_names_across_exec(void **st)
{
    (void)st;
    /* 1 pwrite f.tmp, 2 fsync, 3 rename over f, exec, 4 link f.ln, 5 fsync-dir */
    const char *ops = "@:f.tmp w:0:4096:110 f %:f e:v ^:f.ln:l j";
    names_cut("posix", "5:none", ops, "pre");
    left("5:none", "f", 4096, 'o');
    left("5:none", "f.ln", -1, 0);
    names_cut("posix", "5:all", ops, "pre");
    left("5:all", "f", 4096, 'n');
    left("5:all", "f.ln", 4096, 'n');
    pc_trace *t = names_traced(ops);
    int apart = 0;
    for (int seed = 0; seed < 8; seed++) {
        char cut[80], spec[64];
        snprintf(spec, sizeof spec, "none:random:%d", seed);
        snprintf(cut, sizeof cut, "5:%s", spec);
        uint32_t f = trace_holds(t, 5, spec, "f"), ln = trace_holds(t, 5, spec, "f.ln");
        names_cut("posix", cut, ops, "pre");
        left(cut, "f", 4096, f == 1 ? 'n' : 'o');
        left(cut, "f.ln", ln == 1 ? 4096 : -1, 'n');
        apart |= (f == 1) != (ln == 1);
    }
    assert_true(apart); /* a seed drew the two operations apart */
    pc_trace_free(t);
    /* a directory that holds only a name a rename made before the exec: its fsync after the
     * exec is a step, and lands the rename */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    mkdir(sub, 0755);
    names_cut("posix", "2:all", "%:sub/f2 e:v /:sub", "pre");
    left("2:all after an exec", "sub/f2", 4096, 'o');
    rmdir(sub);
}

static void test_untracked_passthrough(void **st)
{
    (void)st;
    clean();
    assert_int_equal(run("POWERCUT_FILE=/nonexistent/x|POWERCUT_CUT=1:all", "w:0:10:65 f m:10 s:0:1:66 M:0:10"), 0);
    uint64_t len;
    uint8_t *img = slurp("f.crash", &len);
    assert_null(img);
    uint8_t *f = slurp("f", &len);
    assert_int_equal(len, 10);
    assert_int_equal(f[0], 66);
    free(f);
}


/* The disk-full model (POWERCUT_ERROR=STEP:ENOSPC): from the injected ENOSPC on, the disk is
 * full. A growing ftruncate then leaves a hole, and a store into a page of it is what the
 * kernel answers with SIGBUS: the shim kills the run so, says why on stderr and records it
 * as the trace's last record; at the store itself under mprotect, at the next step (or
 * unmap) where it learns of stores later. Pages with blocks take stores as before. */
static void test_diskfull_hole_sigbus(void **st)
{
    (void)st;
    char trace[128], envs[512];
    snprintf(trace, sizeof trace, "%s/trace", dir);
    struct {
        const char *mmap, *error, *ops;
        uint64_t off, step; /* the page stored to, and the steps made before */
    } cases[] = {
        /* fallocate fails (the mutant pager's path: ftruncate instead): the new range is a hole */
        {"mprotect", "2:ENOSPC", "w:0:8192:65 a:8192:8192 t:16384 m:16384 s:0:10:66 M:0:4096 s:8192:10:67 M:8192:4096", 8192, 4},
        {"uffd", "2:ENOSPC", "w:0:8192:65 a:8192:8192 t:16384 m:16384 s:0:10:66 M:0:4096 s:8192:10:67 M:8192:4096", 8192, 4},
        /* (sync mode compares inside the msync: found in its step) */
        {"sync", "2:ENOSPC", "w:0:8192:65 a:8192:8192 t:16384 m:16384 s:0:10:66 M:0:4096 s:8192:10:67 M:8192:4096", 8192, 5},
        /* found at the unmap when no step follows the store */
        {"uffd", "2:ENOSPC", "w:0:8192:65 a:8192:8192 t:16384 m:16384 s:12300:1:67 u", 12288, 3},
        /* a hole made while there was room (a sparse file) is one all the same */
        {"mprotect", "3:ENOSPC", "w:0:4096:65 t:16384 f m:16384 s:0:1:66 s:4096:1:67", 4096, 3},
        /* a shrink frees the blocks past the new end: growing again makes a hole there */
        {"mprotect", "2:ENOSPC", "w:0:8192:65 f t:4096 t:8192 m:8192 s:4096:1:67", 4096, 4},
    };
    int have_uffd = uffd_available();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!strcmp(cases[i].mmap, "uffd") && !have_uffd) continue;
        clean();
        capture_err = 1;
        snprintf(envs, sizeof envs, "POWERCUT_ERROR=%s|POWERCUT_MMAP=%s|POWERCUT_TRACE=%s", cases[i].error,
                 cases[i].mmap, trace);
        int rc = run(envs, cases[i].ops);
        capture_err = 0;
        if (rc != -1 || last_signal != SIGBUS)
            fail_msg("case %zu (%s): exit %d, signal %d; not killed by SIGBUS", i, cases[i].mmap, rc, last_signal);
        uint64_t len;
        char *err = (char *)slurp("err", &len);
        assert_non_null(err);
        err[len] = 0;
        char want[256];
        snprintf(want, sizeof want, "page at offset %llu of %s", (unsigned long long)cases[i].off, file);
        if (!strstr(err, "powercut: SIGBUS") || !strstr(err, want) || !strstr(err, "the disk is full since step"))
            fail_msg("case %zu: stderr does not say it: %s", i, err);
        free(err);
        pc_trace *t;
        assert_int_equal(pc_trace_open(trace, &t), PC_OK);
        pc_sigbus_info b;
        assert_int_equal(pc_trace_sigbus(t, &b), PC_OK);
        assert_int_equal(b.file, 0);
        assert_int_equal(b.off, cases[i].off);
        if (b.step != cases[i].step) fail_msg("case %zu: after step %llu", i, (unsigned long long)b.step);
        /* only mprotect sees the store itself */
        assert_int_equal(b.at_fault, !strcmp(cases[i].mmap, "mprotect"));
        int complete = 1;
        assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
        assert_false(complete);
        pc_step_info info;
        uint64_t estep = strtoull(cases[i].error, NULL, 10);
        assert_int_equal(pc_trace_step_info(t, estep, &info), PC_OK);
        assert_int_equal(info.err, ENOSPC);
        if (i < 4) { /* the ftruncate after the failed fallocate grew the file */
            assert_int_equal(pc_trace_step_info(t, 3, &info), PC_OK);
            assert_int_equal(info.call, PC_CALL_FTRUNCATE);
            assert_int_equal(info.err, 0);
        }
        pc_trace_free(t);
    }
    /* no disk-full model with another errno: the same run goes to its end */
    clean();
    assert_int_equal(run("POWERCUT_ERROR=2:EIO", "w:0:8192:65 a:8192:8192 t:16384 m:16384 s:8192:10:67 M:8192:4096"), 0);
}

/* Once the disk is full, what has blocks takes writes and stores (written or allocated
 * before, stored to through the mapping before, or the content at open); what would need a
 * new block fails with ENOSPC: a write reaching into a hole, a fallocate of a hole. A
 * growing ftruncate succeeds. */
static void test_diskfull_room_where_backed(void **st)
{
    (void)st;
    char trace[128], envs[256];
    snprintf(trace, sizeof trace, "%s/trace", dir);
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_ERROR=5:ENOSPC|POWERCUT_TRACE=%s", trace);
    /* steps: 1 w, 2 a, 3 t, 4 M, 5 f (full), 6 M, 7 w, 8 w, 9 a, 10 a, 11 w, 12 t, 13 M */
    const char *ops = "w:0:4096:65 a:4096:4096 t:16384 m:16384 s:8192:1:1 M:0:16384 f "
                      "s:0:10:66 s:4096:10:67 s:8192:10:68 M:0:16384 w:100:10:68 w:12000:300:69 a:0:8192 "
                      "a:12288:4096 w:12288:10:70 t:32768 s:6000:1:71 M:0:16384 u";
    assert_int_equal(run(envs, ops), 0);
    uint64_t len;
    char *out = (char *)slurp("out", &len);
    assert_non_null(out);
    out[len] = 0;
    const char *errs[] = {"ERR 6 28", "ERR 12 28", "ERR 14 28", "ERR 15 28"};
    size_t n = 0;
    for (const char *p = out; (p = strstr(p, "ERR ")); p++) n++;
    for (size_t i = 0; i < 4; i++)
        if (!strstr(out, errs[i])) fail_msg("no '%s' in: %s", errs[i], out);
    if (n != 4) fail_msg("%zu calls failed, not 4: %s", n, out);
    free(out);
    pc_trace *t;
    assert_int_equal(pc_trace_open(trace, &t), PC_OK);
    pc_sigbus_info b;
    assert_int_equal(pc_trace_sigbus(t, &b), PC_ENOENT);
    int want[14] = {[5] = ENOSPC, [8] = ENOSPC, [10] = ENOSPC, [11] = ENOSPC};
    for (uint64_t k = 1; k <= 13; k++) {
        pc_step_info info;
        assert_int_equal(pc_trace_step_info(t, k, &info), PC_OK);
        if (info.err != want[k]) fail_msg("step %llu: errno %d, not %d", (unsigned long long)k, info.err, want[k]);
    }
    pc_trace_free(t);
    /* the file: the stores and writes that had room, the grown size */
    uint8_t *f = slurp("f", &len);
    assert_int_equal(len, 32768);
    assert_true(range_is(f, 0, 10, 66) && range_is(f, 100, 10, 68) && range_is(f, 4096, 10, 67));
    assert_true(range_is(f, 8192, 10, 68) && f[6000] == 71 && range_is(f, 12000, 300, 0));
    free(f);
}

/* ---- the shim's descriptors: one per tracked file while the program can change it ---- */

/* The stderr of the last run (capture_err), as a string. */
static char *last_err(void)
{
    uint64_t len;
    char *err = (char *)slurp("err", &len);
    assert_non_null(err);
    err[len] = 0;
    return err;
}

/* The tests below make thousands of fsyncs, which cost ~1 ms each on ext4 and nothing on tmpfs:
 * they run in a folder of /dev/shm when there is one (dir and file point there meanwhile). */
static char saved_dir[sizeof dir];
static void to_shm(void)
{
    snprintf(saved_dir, sizeof saved_dir, "%s", dir);
    char d[sizeof dir];
    snprintf(d, sizeof d, "/dev/shm/pcshim.XXXXXX");
    if (!mkdtemp(d)) return; /* no /dev/shm: where the others run */
    snprintf(dir, sizeof dir, "%s", d);
    snprintf(file, sizeof file, "%s/f", dir);
}
static void from_shm(void)
{
    if (!strcmp(dir, saved_dir)) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(dir, sizeof dir, "%s", saved_dir);
    snprintf(file, sizeof file, "%s/f", dir);
}

/* A program making a new file per transaction (an atomic replace, a scratch file created and
 * removed) runs to the end however many it makes, with a descriptor limit of 128 that leaves
 * the shim 64 numbers (and none above them): each file's private descriptor goes once no
 * name, descriptor or mapping of the program reaches it (it used to stay, and the run stopped
 * after ~60 files). Its model file stays: a cut before the directory's fsync that removes
 * the last scratch file still has it, with its synced content, live and from the trace. */
static void test_short_lived_files(void **st)
{
    (void)st;
    const char *ns[] = {"none", "posix", "ext4"};
    char tr[256], envs[512];
    to_shm();
    snprintf(tr, sizeof tr, "%s/trace", dir);
    for (size_t i = 0; i < 3; i++) {
        clean_names();
        capture_err = 1;
        snprintf(envs, sizeof envs, "NOFILE=128:128|POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=%s|POWERCUT_TRACE=%s", dir,
                 ns[i], tr);
        int rc = run(envs, "*:1000");
        capture_err = 0;
        if (rc) fail_msg("%s: 1000 rounds exit %d: %s", ns[i], rc, last_err());
        pc_trace *t;
        assert_int_equal(pc_trace_open(tr, &t), PC_OK);
        uint64_t n;
        uint32_t files;
        int complete;
        assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
        assert_int_equal(n, 9000);
        assert_int_equal(pc_trace_file_count(t, &files), PC_OK);
        assert_int_equal(files, 2001); /* f as opened first, then f.tmp and f.g each round */
        assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
        assert_true(complete);
        if (i == 1) { /* round 900 ('a' + 899 % 26 = 'p'): f.g unlinked, its fsync-dir (8100) not landed */
            assert_int_not_equal(trace_holds(t, 8100, "none", "f.g"), PC_NAME_NONE);
            assert_int_equal(trace_holds(t, 8100, "all", "f.g"), PC_NAME_NONE);
        }
        pc_trace_free(t);
    }
    /* retired files across an exec: the new image takes them as they are (record-only sync
     * mode reads every file it adopts again, which a retired one no longer has to offer) */
    clean_names();
    snprintf(envs, sizeof envs, "POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=posix|POWERCUT_MMAP=sync|POWERCUT_TRACE=%s", dir, tr);
    capture_err = 1;
    int rc = run(envs, "*:20 e:v *:20");
    capture_err = 0;
    if (rc) fail_msg("20 rounds, an exec, 20 rounds: exit %d: %s", rc, last_err());
    pc_trace *t;
    uint64_t n;
    int complete;
    assert_int_equal(pc_trace_open(tr, &t), PC_OK);
    assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
    assert_int_equal(n, 360);
    assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
    assert_true(complete);
    pc_trace_free(t);
    clean_names();
    snprintf(envs, sizeof envs, "NOFILE=128:128|POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=posix|POWERCUT_CUT=8100:none", dir);
    assert_int_equal(run(envs, "*:900"), 99);
    left("8100:none", "f.g", 512, 'p');
    left("8100:none", "f", 512, 'p');
    clean_names();
    snprintf(envs, sizeof envs, "NOFILE=128:128|POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=posix|POWERCUT_CUT=8100:all", dir);
    assert_int_equal(run(envs, "*:900"), 99);
    left("8100:all", "f.g", -1, 0);
    left("8100:all", "f", 512, 'p');
    from_shm();
}

/* The same with a mapping: each round's file goes at its munmap (closed and unlinked before),
 * 200 rounds under a limit of 128. Under POWERCUT_MMAP=lazy the store that no msync covered
 * (made before the munmap) is read from the file as it goes, as a cut would have read it: a
 * cut after the last round, where the unlink of the last file has not landed, writes the same
 * image as write tracking for every seed of early writeback, and one seed has that store. */
static void test_short_lived_mapped_files(void **st)
{
    (void)st;
    char envs[512];
    int stored = 0;
    to_shm();
    for (int seed = 1; seed <= 4; seed++) {
        uint8_t *img[2];
        uint64_t len[2];
        for (int lazy = 0; lazy < 2; lazy++) {
            clean();
            char p[256];
            snprintf(p, sizeof p, "%s/f.m.crash", dir);
            unlink(p);
            snprintf(envs, sizeof envs,
                     "NOFILE=128:128|POWERCUT_FILE=%s/f*|POWERCUT_NAMESPACE=posix|POWERCUT_MMAP=%s|POWERCUT_CUT=801:none:random:%d",
                     dir, lazy ? "lazy" : "track", seed);
            capture_err = 1;
            int rc = run(envs, "$:200");
            capture_err = 0;
            if (rc != 99) fail_msg("%s, seed %d: exit %d: %s", lazy ? "lazy" : "track", seed, rc, last_err());
            img[lazy] = slurp("f.m.crash", &len[lazy]);
        }
        if (len[0] != len[1] || (img[0] && memcmp(img[0], img[1], len[0])))
            fail_msg("seed %d: track and lazy images of f.m differ (%llu and %llu bytes)", seed,
                     (unsigned long long)len[0], (unsigned long long)len[1]);
        if (img[0] && len[0] == 4096 && img[0][0] == 'R') stored = 1; /* round 200: 'A' + 199 % 26 */
        free(img[0]);
        free(img[1]);
    }
    assert_true(stored);
    from_shm();
}

/* Many files open at once: the shim's descriptors sit above the program's soft limit (numbers
 * borrowed up to the hard limit; with a soft limit above 1024, once the 64 from 960 are
 * taken), so the program opens as many files as without the shim, at its limit too, and
 * still sees its own soft limit. Only when the hard limit leaves no number does the shim
 * stop, loudly (exit 2). */
static void test_many_open_files(void **st)
{
    (void)st;
    char envs[512], tr[256], cmd[256];
    to_shm();
    snprintf(tr, sizeof tr, "%s/trace", dir);
    snprintf(cmd, sizeof cmd, "rm -f %s/f.h*", dir);
    /* many tracked files, and one at the program's limit; under a soft limit of 128 (the
     * shim's above it from the first) and of 1100 (the 64 from 960 first, then above: the
     * program's 600 and the shim's 600 would not fit under it) */
    const char *ops[] = {"&:100", "&:1:1", "&:600", "&:1:1"};
    const int soft[] = {128, 1100};
    for (size_t i = 0; i < 4; i++) {
        clean();
        capture_err = 1;
        snprintf(envs, sizeof envs, "NOFILE=%d:4096|POWERCUT_FILE=%s/f*|POWERCUT_TRACE=%s", soft[i / 2], dir, tr);
        int rc = run(envs, ops[i]);
        capture_err = 0;
        if (rc) fail_msg("'%s' under a soft limit of %d: exit %d: %s", ops[i], soft[i / 2], rc, last_err());
        uint64_t len;
        char *out = (char *)slurp("out", &len), want[32];
        assert_non_null(out);
        out[len] = 0;
        snprintf(want, sizeof want, "nofile %d\n", soft[i / 2]);
        if (!strstr(out, want)) fail_msg("'%s': the program's soft limit changed: %s", ops[i], out);
        free(out);
        pc_trace *t;
        assert_int_equal(pc_trace_open(tr, &t), PC_OK);
        uint32_t files;
        int complete;
        assert_int_equal(pc_trace_file_count(t, &files), PC_OK);
        assert_int_equal(files, i % 2 ? 2 : i ? 601 : 101);
        assert_int_equal(pc_trace_complete(t, &complete), PC_OK);
        assert_true(complete);
        pc_trace_free(t);
        assert_int_equal(system(cmd), 0);
    }
    /* nothing above the soft limit to borrow: the shim stops at the first file it cannot keep */
    clean();
    capture_err = 1;
    snprintf(envs, sizeof envs, "NOFILE=128:128|POWERCUT_FILE=%s/f*|POWERCUT_TRACE=%s", dir, tr);
    int rc = run(envs, "&:1:1");
    capture_err = 0;
    char *err = last_err();
    if (rc != 2 || !strstr(err, "powercut: invalid descriptors (none free above the program's for the shim)") ||
        !strstr(err, "f.h0"))
        fail_msg("a tracked file opened at a hard limit of 128: exit %d, not 2: %s", rc, err);
    free(err);
    from_shm();
}

/* ---- the tracking guards: calls and changes that used to escape the model silently ---- */

/* A run expected to stop because the shim lost track: exit 97, and stderr naming `what`. */
static void expect_lost(const char *envs, const char *ops, const char *what)
{
    clean();
    capture_err = 1;
    int rc = run(envs, ops);
    capture_err = 0;
    uint64_t len;
    char *err = (char *)slurp("err", &len);
    assert_non_null(err);
    err[len] = 0;
    if (rc != 97 || !strstr(err, what))
        fail_msg("'%s': exit %d (not 97) or no '%s' on stderr: %s", ops, rc, what, err);
    assert_non_null(strstr(err, file)); /* the file is named */
    free(err);
}

/* The call of step k in a traced run of ops. */
static int traced_call(const char *ops, uint64_t k, const char *extra)
{
    clean();
    char envs[512];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace%s%s", dir, extra ? "|" : "", extra ? extra : "");
    assert_int_equal(run(envs, ops), 0);
    char tp[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    pc_trace *t;
    assert_int_equal(pc_trace_open(tp, &t), PC_OK);
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, k, &info), PC_OK);
    pc_trace_free(t);
    return info.call;
}

/* pwritev2 (pwritev64v2 here: pc_work is built with 64-bit offsets) is a step like pwritev;
 * RWF_DSYNC/RWF_SYNC make its range durable at return, RWF_APPEND writes at the end; flags
 * the shim does not know stop the run. preadv2 reads what was written. */
static void test_pwritev2(void **st)
{
    (void)st;
    uint64_t len;
    const char *dsync[] = {"i:0:1000:65:2 w:0:10:66", "i:0:1000:65:4 w:0:10:66"}; /* RWF_DSYNC, RWF_SYNC */
    for (int i = 0; i < 2; i++) {
        uint8_t *img = cut_image("2:none", NULL, dsync[i], &len);
        assert_int_equal(len, 1000); /* durable when step 1 returned */
        assert_true(range_is(img, 0, 1000, 65));
        free(img);
        img = cut_image("1:prefix:1", NULL, dsync[i], &len); /* torn: no size yet */
        assert_int_equal(len, 0);
        free(img);
    }
    uint8_t *img = cut_image("2:none", NULL, "i:0:1000:65:0 w:0:10:66", &len); /* no flag: volatile */
    assert_int_equal(len, 0);
    free(img);
    img = cut_image("2:none:all", NULL, "i:0:1000:65:0 w:0:10:66", &len); /* written back early */
    assert_int_equal(len, 1000);
    assert_true(range_is(img, 10, 990, 65));
    free(img);
    /* RWF_APPEND: at the end whatever the offset; offset -1: the file offset */
    img = cut_image("6:all", NULL, "w:0:100:65 f i:0:50:66:16 f i:-1:10:67:0 f", &len);
    assert_int_equal(len, 150);
    assert_true(range_is(img, 0, 10, 67) && range_is(img, 10, 90, 65) && range_is(img, 100, 50, 66));
    free(img);
    assert_int_equal(traced_call("i:0:100:65:2", 1, NULL), PC_CALL_PWRITEV2);
    clean();
    assert_int_equal(run(NULL, "i:0:100:65:2 I:0:100"), 0);
    img = slurp("out", &len);
    img[len] = 0;
    assert_string_equal((char *)img, "preadv2 100 65 65\n");
    free(img);
    expect_lost(NULL, "w:0:10:65 i:0:10:65:0x10000", "pwritev2 with RWF_* flags 0x10000");
}

/* copy_file_range and sendfile into the file are writes of the bytes that land: volatile
 * until the fsync, durable after; at a cut, the bytes come from the source. splice stops the
 * run (its bytes come from a pipe). */
static void test_copy_calls(void **st)
{
    (void)st;
    const char *ops[] = {"w:0:100:65 <:50:3000:67 f", "w:0:100:65 >:50:3000:67 f"};
    const int calls[] = {PC_CALL_COPY_FILE_RANGE, PC_CALL_SENDFILE};
    for (int i = 0; i < 2; i++) {
        uint64_t len;
        uint8_t *img = cut_image("3:none", NULL, ops[i], &len); /* before its fsync */
        assert_int_equal(len, 0);
        free(img);
        img = cut_image("3:all", NULL, ops[i], &len);
        assert_int_equal(len, 3050);
        assert_true(range_is(img, 0, 50, 65) && range_is(img, 50, 3000, 67));
        free(img);
        img = cut_image("2:none:all", NULL, ops[i], &len); /* cut in the copy: read from the source */
        assert_int_equal(len, 3050);
        assert_true(range_is(img, 0, 50, 65) && range_is(img, 50, 3000, 67));
        free(img);
        assert_int_equal(traced_call(ops[i], 2, NULL), calls[i]);
    }
    expect_lost(NULL, "w:0:10:65 q:10:66 f", "splice");
}

/* Writes behind the shim's back (stdio through a dup, a forked child) are found at the next
 * step on the file and stop the run; a new st_mtime over the same bytes does not. */
static void test_foreign_change(void **st)
{
    (void)st;
    /* model kept (a cut run): confirmed by content */
    expect_lost("POWERCUT_CUT=9", "w:0:100:65 h:10:hello f", "byte at offset 10 differs");
    expect_lost("POWERCUT_CUT=9", "w:0:100:65 h:100:hello f", "its size is 105 bytes, the model's 100");
    /* record-only: the size, or the modification time alone */
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace", dir);
    expect_lost(envs, "w:0:100:65 h:100:hello f", "its size is 105 bytes");
    expect_lost(envs, "w:0:100:65 z:20 h:10:hello f", "modification time changed");
    expect_lost(envs, "w:0:100:65 z:20 Y f", "stdio");
    /* an open with O_TRUNC of the tracked file while it is empty moves st_mtime alone: the
     * shim's own change (a shell's `exec 3>>f` then `cp src f`), not one behind its back */
    clean();
    assert_int_equal(run(envs, "z:20 @:f w:0:10:65 f"), 0);
    /* a stream of its own (fopen): its descriptor is followed, so its fsync is a step where
     * the stream's writes are found; "w" truncates outside any step */
    expect_lost("POWERCUT_CUT=9", "w:0:100:65 b:r+:hello", "byte at offset 0 differs");
    expect_lost("POWERCUT_CUT=9", "w:0:100:65 f b:w:hello", "its size is 5 bytes, the model's 0");
    expect_lost(envs, "w:0:100:65 f b:w:hello", "its size is 5 bytes, the model's 0");
    /* the same bytes under a new st_mtime: no change to report */
    uint64_t len;
    uint8_t *img = cut_image("2:all", NULL, "w:0:100:65 z:20 g f", &len);
    assert_int_equal(len, 100);
    free(img);
    /* a file with a writable shared mapping is not checked (stores move st_mtime unseen, on
     * ext4 at their fault), nor at the first step after one existed: not in record-only runs
     * (no content to compare), nor in lazy mode (the model learns unsynced stores at a sync) */
    const char *mapped[] = {envs, "POWERCUT_MMAP=lazy|POWERCUT_CUT=9"};
    for (int i = 0; i < 2; i++) {
        clean();
        assert_int_equal(run(mapped[i], "t:4096 f m:4096 z:20 s:0:10:65 u f"), 0);
        clean();
        assert_int_equal(run(mapped[i], "t:4096 f m:4096 z:20 s:0:10:65 M:0:4096 f"), 0);
    }
    /* and the check can be turned off */
    clean();
    assert_int_equal(run("POWERCUT_FOREIGN=off", "w:0:100:65 h:10:hello f"), 0);
}

/* POWERCUT_EXIT_STEP=1: one more step when the process exits, where nothing volatile is
 * durable; without it, the steps are the program's only. */
static void test_exit_step(void **st)
{
    (void)st;
    clean();
    char envs[256];
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace", dir);
    assert_int_equal(run(envs, "w:0:100:65 f w:0:10:66"), 0);
    char tp[256];
    snprintf(tp, sizeof tp, "%s/trace", dir);
    pc_trace *t;
    uint64_t n;
    assert_int_equal(pc_trace_open(tp, &t), PC_OK);
    assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
    assert_int_equal(n, 3);
    pc_trace_free(t);
    assert_int_equal(traced_call("w:0:100:65 f w:0:10:66", 4, "POWERCUT_EXIT_STEP=1"), PC_CALL_EXIT);
    uint64_t len;
    uint8_t *img = cut_image("4:none", "POWERCUT_EXIT_STEP=1", "w:0:100:65 f w:0:10:66", &len);
    assert_int_equal(len, 100); /* the unsynced write is lost at exit */
    assert_true(range_is(img, 0, 100, 65));
    free(img);
    img = cut_image("4:none:all", "POWERCUT_EXIT_STEP=1", "w:0:100:65 f w:0:10:66", &len);
    assert_true(len == 100 && range_is(img, 0, 10, 66));
    free(img);
    /* and the trace's images of the exit step are the live cut's */
    char tp2[256];
    snprintf(tp2, sizeof tp2, "%s/trace", dir);
    clean();
    snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace|POWERCUT_EXIT_STEP=1", dir);
    assert_int_equal(run(envs, "w:0:100:65 f w:0:10:66"), 0);
    assert_int_equal(pc_trace_open(tp2, &t), PC_OK);
    pc_crash c = {.tear = PC_TEAR_NONE, .wb = PC_WB_NONE};
    uint8_t *timg;
    assert_int_equal(pc_trace_image(t, 0, 4, &c, &timg, &len), PC_OK);
    assert_true(len == 100 && range_is(timg, 0, 100, 65));
    free(timg);
    pc_trace_free(t);
    clean();
    assert_int_equal(run("POWERCUT_EXIT_STEP=2", "w:0:1:65"), 2); /* a usage error */
}

/* A program that ends with _exit or _Exit (dash does, after every `sh -c`) ends the run as
 * exit does: its trace is complete, and POWERCUT_EXIT_STEP=1 makes the exit step there too.
 * (They ran no destructor: the trace was left unfinished, unreadable.) */
static void test_exit_call(void **st)
{
    (void)st;
    const char *ends[] = {"_", "!"};
    for (int i = 0; i < 2; i++) {
        clean();
        char envs[256], tp[256], ops[64];
        snprintf(envs, sizeof envs, "POWERCUT_TRACE=%s/trace", dir);
        snprintf(tp, sizeof tp, "%s/trace", dir);
        snprintf(ops, sizeof ops, "w:0:100:65 f w:0:10:66 %s", ends[i]);
        assert_int_equal(run(envs, ops), 0);
        pc_trace *t;
        uint64_t n;
        assert_int_equal(pc_trace_open(tp, &t), PC_OK);
        assert_int_equal(pc_trace_step_count(t, &n), PC_OK);
        assert_int_equal(n, 3);
        pc_trace_free(t);
        assert_int_equal(traced_call(ops, 4, "POWERCUT_EXIT_STEP=1"), PC_CALL_EXIT);
        uint64_t len;
        uint8_t *img = cut_image("4:none", "POWERCUT_EXIT_STEP=1", ops, &len);
        assert_true(img && len == 100 && range_is(img, 0, 100, 65)); /* the unsynced write lost at exit */
        free(img);
    }
    clean();
}

/* sync() and syncfs() are steps (file UINT32_MAX): when they return, every tracked file's data
 * and size are durable, and under posix every changed name (a created file's); a cut in one
 * lands all of that or none of it (tears of its sectors). They were not modelled: data synced
 * only by them stayed volatile in every later cut. */
static void test_sync_calls(void **st)
{
    (void)st;
    const char *calls[] = {";", ","};
    const int kinds[] = {PC_CALL_SYNC, PC_CALL_SYNCFS};
    for (int i = 0; i < 2; i++) {
        char ops[64];
        /* 1 pwrite, 2 sync, 3 pwrite, 4 fsync */
        snprintf(ops, sizeof ops, "w:0:100:65 %s w:0:10:66 f", calls[i]);
        clean();
        assert_int_equal(traced_call(ops, 2, ""), kinds[i]);
        uint64_t len;
        uint8_t *img = cut_image("2:none", "", ops, &len);
        assert_true(img && len == 0); /* cut in the sync, none of it landed */
        free(img);
        img = cut_image("2:all", "", ops, &len);
        assert_true(img && len == 100 && range_is(img, 0, 100, 65));
        free(img);
        img = cut_image("4:none", "", ops, &len); /* after it: durable */
        assert_true(img && len == 100 && range_is(img, 0, 100, 65));
        free(img);
        /* under posix the created file's name too: after the sync it is there */
        img = ns_image("4:none", ops, &len);
        if (!img) fail_msg("%s: the sync made the created name durable, but the image has no file", calls[i]);
        assert_true(len == 100 && range_is(img, 0, 100, 65));
        free(img);
        if ((img = ns_image("2:none", ops, &len))) fail_msg("%s: cut in the sync, none landed: no file", calls[i]);
    }
    clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_calls),
        cmocka_unit_test(test_exit_call),
        cmocka_unit_test(test_write_calls),
        cmocka_unit_test(test_truncate_and_fallocate),
        cmocka_unit_test(test_dsync_and_sync_fds),
        cmocka_unit_test(test_msync_range_only),
        cmocka_unit_test(test_msync_not_shared),
        cmocka_unit_test(test_msync_whole_pages),
        cmocka_unit_test(test_msync_gap),
        cmocka_unit_test(test_rejected_calls),
        cmocka_unit_test(test_open_page_rewrite),
        cmocka_unit_test(test_mremap_munmap),
        cmocka_unit_test(test_dup_close_sync_file_range),
        cmocka_unit_test(test_tears),
        cmocka_unit_test(test_writeback_all_is_volatile),
        cmocka_unit_test(test_determinism_and_trace),
        cmocka_unit_test(test_sync_mode),
        cmocka_unit_test(test_lazy_mode),
        cmocka_unit_test(test_backends_same_trace),
        cmocka_unit_test(test_backends_live),
        cmocka_unit_test(test_track_hot_page),
        cmocka_unit_test(test_rewritten_pages),
        cmocka_unit_test(test_uffd_kernel_stores),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_outcomes),
        cmocka_unit_test(test_fiu_enable),
        cmocka_unit_test(test_markers),
        cmocka_unit_test(test_marker_stores),
        cmocka_unit_test(test_children_pass_through),
        cmocka_unit_test(test_real_segv_still_crashes),
        cmocka_unit_test(test_trace_survives_kill),
        cmocka_unit_test(test_untracked_passthrough),
        cmocka_unit_test(test_closed_behind_close),
        cmocka_unit_test(test_other_name),
        cmocka_unit_test(test_fcntl),
        cmocka_unit_test(test_program_closes_everything),
        cmocka_unit_test(test_exec_continues),
        cmocka_unit_test(test_baton),
        cmocka_unit_test(test_lend),
        cmocka_unit_test(test_fork_child),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_diskfull_hole_sigbus),
        cmocka_unit_test(test_diskfull_room_where_backed),
        cmocka_unit_test(test_created_name_needs_dir_fsync),
        cmocka_unit_test(test_existing_name_stays_durable),
        cmocka_unit_test(test_rename_over_needs_dir_fsync),
        cmocka_unit_test(test_ext4_profile),
        cmocka_unit_test(test_unlink_needs_dir_fsync),
        cmocka_unit_test(test_link_and_rename_across_dirs),
        cmocka_unit_test(test_rename_exchange), cmocka_unit_test(test_directories), cmocka_unit_test(test_symlinks), cmocka_unit_test(test_truncate_by_path), cmocka_unit_test(test_names_refused), cmocka_unit_test(test_unmodelled_calls_refused),
        cmocka_unit_test(test_names_across_exec),
        cmocka_unit_test(test_pwritev2),
        cmocka_unit_test(test_copy_calls),
        cmocka_unit_test(test_foreign_change),
        cmocka_unit_test(test_exit_step),
        cmocka_unit_test(test_short_lived_files),
        cmocka_unit_test(test_short_lived_mapped_files),
        cmocka_unit_test(test_many_open_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
