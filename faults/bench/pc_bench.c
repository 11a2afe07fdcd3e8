/* pc_bench.c: measures libpowercut's cost: a write-heavy mmap workload on /dev/shm run bare,
 * with the shim preloaded but the file untracked, in record mode (also with each
 * write-tracking backend alone), and with the live model. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * The workload (child mode, `pc-bench --child FILE MIB ITERS`): a MIB-sized shared mapping;
 * each iteration stores 256 bytes into each of 4 pseudo-random pages and msyncs each page
 * (4 steps); every 16th iteration also pwrites 4 KiB and msyncs it (2 more steps). It prints
 * the elapsed nanoseconds and the number of steps. The parent runs it in each mode, with two
 * file sizes, to show that the per-step cost does not grow with the file. (No fsync: in
 * POWERCUT_MMAP=sync mode an fsync compares every mapped byte of the file, see README.)
 */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int child(const char *path, size_t mib, long iters)
{
    size_t size = mib << 20, pages = size / 4096;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)size) || fsync(fd)) return 3;
    unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return 3;
    unsigned char buf[4096];
    memset(buf, 0x5a, sizeof buf);
    uint64_t x = 88172645463325252ULL, steps = 2;
    uint64_t t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        for (int j = 0; j < 4; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t pg = x % pages;
            memset(m + pg * 4096 + (x >> 40) % 3840, (int)i, 256);
            if (msync(m + pg * 4096, 4096, MS_SYNC)) return 4;
            steps++;
        }
        if (i % 16 == 0) {
            size_t pg = (x >> 20) % pages;
            if (pwrite(fd, buf, sizeof buf, (off_t)pg * 4096) != (ssize_t)sizeof buf) return 4;
            if (msync(m + pg * 4096, 4096, MS_SYNC)) return 4;
            steps += 2;
        }
    }
    uint64_t t = now_ns() - t0;
    printf("%llu %llu\n", (unsigned long long)t, (unsigned long long)steps);
    munmap(m, size);
    close(fd);
    return 0;
}

/*
 * The namespace workload (`pc-bench --ns-child DIR ITERS`): each iteration replaces DIR/f
 * the careful way (write DIR/f.tmp, fsync it, rename it over DIR/f, fsync DIR) and makes and
 * removes a scratch file (create DIR/g, write, fsync, unlink, fsync DIR): every call a
 * namespace model sees. It prints the elapsed nanoseconds and the iterations.
 */
static int ns_child(const char *dir, long iters)
{
    char tmp[PATH_MAX], dst[PATH_MAX], scratch[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/f.tmp", dir);
    snprintf(dst, sizeof dst, "%s/f", dir);
    snprintf(scratch, sizeof scratch, "%s/g", dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) return 3;
    unsigned char buf[4096];
    memset(buf, 0x5a, sizeof buf);
    uint64_t t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        buf[0] = (unsigned char)i;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fsync(fd) || close(fd)) return 4;
        if (rename(tmp, dst) || fsync(dfd)) return 4;
        fd = open(scratch, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, buf, 512) != 512 || fsync(fd) || close(fd)) return 4;
        if (unlink(scratch) || fsync(dfd)) return 4;
    }
    uint64_t t = now_ns() - t0;
    printf("%llu %ld\n", (unsigned long long)t, iters);
    close(dfd);
    return 0;
}

/* Runs one measurement in a child; returns its "ns steps" (or "ns ops") line. */
static int run_child(char *const argv[], const char *lib, const char *mode, const char *file,
                     uint64_t *ns, uint64_t *count)
{
    char trace[64];
    snprintf(trace, sizeof trace, "/dev/shm/pc-bench-%d.trace", (int)getpid());
    int pfd[2];
    if (pipe(pfd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        if (strcmp(mode, "bare")) setenv("LD_PRELOAD", lib, 1);
        setenv("POWERCUT_FILE", strcmp(mode, "untracked") ? file : "/nonexistent/none", 1);
        if (!strncmp(mode, "record", 6)) setenv("POWERCUT_TRACE", trace, 1);
        if (strstr(mode, "sync")) setenv("POWERCUT_MMAP", "sync", 1);
        if (strstr(mode, "uffd")) setenv("POWERCUT_MMAP", "uffd", 1);
        if (strstr(mode, "mprotect")) setenv("POWERCUT_MMAP", "mprotect", 1);
        if (!strncmp(mode, "model", 5)) setenv("POWERCUT_MODEL", "1", 1);
        if (strstr(mode, "posix")) setenv("POWERCUT_NAMESPACE", "posix", 1);
        if (strstr(mode, "ext4")) setenv("POWERCUT_NAMESPACE", "ext4", 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    char out[128] = "";
    ssize_t n = read(pfd[0], out, sizeof out - 1);
    close(pfd[0]);
    int status;
    waitpid(pid, &status, 0);
    unlink(file);
    unlink(trace);
    if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status)) return -1;
    unsigned long long a, b;
    if (sscanf(out, "%llu %llu", &a, &b) != 2) return -1;
    *ns = a;
    *count = b;
    return 0;
}

static const char *const mmap_modes[] = {"bare", "untracked", "record", "record-sync", "record-uffd", "record-mprotect",
                                         "model", NULL};
/* The namespace workload: names durable at once (record), after their directory's fsync
 * (posix), or journalled in order (ext4). */
static const char *const ns_modes[] = {"bare", "untracked", "record", "record-posix", "record-ext4", NULL};

/* Best of 3 runs per mode (the machine is shared); prints one row per mode. */
static int table(const char *what, char *const argv[], const char *lib, const char *file,
                 const char *unit, const char *const *modes)
{
    uint64_t base = 0;
    for (size_t i = 0; modes[i]; i++) {
        uint64_t best = UINT64_MAX, count = 1;
        for (int rep = 0; rep < 3; rep++) {
            uint64_t ns, c;
            if (run_child(argv, lib, modes[i], file, &ns, &c)) {
                fprintf(stderr, "pc-bench: %s, mode %s failed\n", what, modes[i]);
                return 1;
            }
            if (ns < best) best = ns;
            count = c;
        }
        if (!i) base = best;
        printf("%-22s %-15s %10.1f %10.0f ns/%-4s %7.2fx\n", what, modes[i], best / 1e6,
               (double)best / (double)count, unit, (double)best / (double)base);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--child")) return child(argv[2], strtoul(argv[3], NULL, 10), atol(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "--ns-child")) return ns_child(argv[2], atol(argv[3]));
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        printf("usage: pc-bench [ITERATIONS]\n  libpowercut overhead: modes bare (no shim), untracked (shim, file\n"
               "  not tracked), record (POWERCUT_TRACE, mappings write-tracked), record-sync (POWERCUT_TRACE,\n"
               "  POWERCUT_MMAP=sync), record-uffd and record-mprotect (POWERCUT_TRACE, write tracking with\n"
               "  that backend only), model (live model, as for POWERCUT_CUT); files on /dev/shm\n");
        return 0;
    }
    char self[PATH_MAX], lib[PATH_MAX + 32], pager[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 2;
    self[n] = 0;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", self);
    char *bindir = dirname(tmp);
    snprintf(lib, sizeof lib, "%s/../lib/libpowercut.so", bindir);
    snprintf(pager, sizeof pager, "%s/pc-pager-work", bindir);
    if (access(lib, R_OK)) {
        fprintf(stderr, "pc-bench: %s not found\n", lib);
        return 2;
    }
    long iters = argc > 1 ? atol(argv[1]) : 10000;
    char file[64], its[32], ops[32];
    snprintf(file, sizeof file, "/dev/shm/pc-bench-%d.dat", (int)getpid());
    snprintf(its, sizeof its, "%ld", iters);
    snprintf(ops, sizeof ops, "%ld", iters * 2);
    printf("pc-bench: files on /dev/shm, best of 3; overhead relative to bare\n");
    printf("%-22s %-15s %10s %13s %8s\n", "workload", "mode", "total ms", "cost", "overhead");
    char *mm4[] = {self, "--child", file, "4", its, NULL};
    char *mm64[] = {self, "--child", file, "64", its, NULL};
    if (table("mmap store+msync 4MiB", mm4, lib, file, "step", mmap_modes)) return 1;
    if (table("mmap store+msync 64MiB", mm64, lib, file, "step", mmap_modes)) return 1;
    if (!access(pager, X_OK)) {
        char *pw[] = {pager, file, ops, "4096", NULL};
        if (table("pager ops (pc-pager-work)", pw, lib, file, "op", mmap_modes)) return 1;
    }
    /* Every file of a folder tracked (a glob), renamed and unlinked there. */
    char dir[64], glob[80], nits[32];
    snprintf(dir, sizeof dir, "/dev/shm/pc-bench-%d.d", (int)getpid());
    snprintf(glob, sizeof glob, "%s/*", dir);
    snprintf(nits, sizeof nits, "%ld", iters / 10 ? iters / 10 : 1);
    if (mkdir(dir, 0755) && errno != EEXIST) return 2;
    char *ns[] = {self, "--ns-child", dir, nits, NULL};
    int rc = table("replace+unlink loop", ns, lib, glob, "iter", ns_modes);
    char f[128];
    snprintf(f, sizeof f, "%s/f", dir);
    unlink(f);
    rmdir(dir);
    return rc ? 1 : 0;
}
