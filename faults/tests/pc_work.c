/* pc_work.c: a scriptable workload for the end-to-end tests: each argument is one file
 * operation (write, truncate, sync, mmap store, msync...), run in order under the shim. */
#include "../powercut_mark.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Usage: pc_work FILE OP...   (FILE is opened O_RDWR|O_CREAT first)
 *   w:OFF:LEN:BYTE   pwrite LEN bytes of BYTE at OFF     W:LEN:BYTE  write at the file offset
 *   v:OFF:LEN:BYTE   pwritev (two halves)                V:LEN:BYTE  writev
 *   x:OFF:LEN:BYTE   pwrite64 (explicit 64 name)         t:SIZE      ftruncate
 *   T:SIZE           ftruncate64                          a:OFF:LEN   fallocate (mode 0)
 *   {:SIZE           truncate(2) of the current file's name (by path, no descriptor)
 *   p:OFF:LEN        posix_fallocate                      f / d       fsync / fdatasync
 *   j / J            fsync / fdatasync of the file's directory (opened O_DIRECTORY)
 *   R:OFF:LEN        sync_file_range                      D           reopen O_RDWR|O_DSYNC
 *   S                reopen O_RDWR|O_SYNC                 O           reopen plain O_RDWR
 *   m:LEN            mmap LEN bytes MAP_SHARED rw at 0    s:OFF:LEN:BYTE  store into the map
 *   M:OFF:LEN        msync(MS_SYNC) of map range          A:OFF:LEN   msync(MS_ASYNC)
 *   r:NEWLEN         mremap(MAYMOVE)                       u           munmap whole map
 *   U:OFF:LEN        munmap part of the map               P:LEN       mmap MAP_PRIVATE rw + store
 *   B:OP:LABEL / E:OP  pc_mark begin/end                  K:TEXT      write TEXT\n to fd 9 (_ = space)
 *   c                close and reopen (dup2 of a dup)      k           kill -9 self (no cleanup)
 *   _ / !            end now with _exit(0) / _Exit(0), as dash does (no destructor runs)
 *   ; / ,            sync() / syncfs() of the file's descriptor
 *   N:ADDR           store to ADDR (N:16 crashes with SIGSEGV)
 *   z:MS             sleep MS milliseconds                y / Y[:MS]  a child writes byte 0 (exec) / 1 (fork), then (after MS ms) it is waited for
 *                    (Y: the forked child pwrites 'Y' at 1 through the inherited descriptor, fsyncs
 *                    it and ends with _exit; Yo: it opens the file by name; Ye: it ends with exit;
 *                    Yt: it opens FILE.ln, made by l, with O_TRUNC)
 *   [:MS             a child (exec) writes byte 0 while this process sleeps MS before it waits
 *   ]                system(): this program again on FILE, writing byte 0
 *   L:N:STRIDE       N times: store a byte into page (i*STRIDE mod pages) of the map, msync it
 *   Q:N              N times: msync the first page of the map (no store)
 *   ?:N:EVERY        N times: store a byte into the first page of the map (a hot page) and,
 *                    every EVERY-th time, one into the next of the other pages in turn; msync
 *                    the first page
 *   G:OFF:LEN:BYTE   read(2) LEN bytes of BYTE from a pipe into the map (a store by the kernel)
 *   F:OFF:LEN:BYTE[:SYNC[:MS]]  a forked child stores into the map (SYNC 1: and msyncs those
 *                    pages), the parent waits (after MS ms)
 *   o                reopen O_RDONLY                      X:OFF:LEN:FLAGS  msync(FLAGS) of map range
 *   Z:LEN            mmap LEN bytes MAP_PRIVATE rw at 0 as the map (s/M/X act on it)
 *   n:LEN            mmap LEN bytes MAP_SHARED read-only at 0 as the map
 *   (a:OFF:LEN:MODE  fallocate with MODE)
 *   C:HOW            the descriptor is closed behind the shim's close (HOW: f fdopen+fclose,
 *                    r close_range, F closefrom), a socket takes its number and gets 100 bytes
 *                    of 'Z' written to it, then the file is reopened
 *   l                the file is reached by another name: a hard link FILE.ln, reopened there
 *   + / -            fcntl(F_SETFL) sets / clears O_APPEND (fcntl64, as compiled here)
 *   = / ~            the descriptor moves to fcntl(F_DUPFD_CLOEXEC, 30) (fcntl64 / plain fcntl)
 *   H:HOW            every descriptor from 3 on but the file's is closed (HOW: l close loop,
 *                    r close_range, F closefrom, d dup2 onto each, then close), then 6 other
 *                    files are opened (they take the freed numbers)
 *   i:OFF:LEN:BYTE:FLAGS  pwritev2 (two halves) with RWF_* FLAGS; OFF -1: the file offset
 *   I:OFF:LEN        preadv2 LEN bytes at OFF, prints "preadv2 N FIRST LAST" (the bytes read)
 *   <:OFF:LEN:BYTE   copy_file_range LEN bytes of BYTE from FILE.src (created) to OFF
 *   >:OFF:LEN:BYTE   sendfile LEN bytes of BYTE from FILE.src to OFF (lseek first)
 *   q:LEN:BYTE       splice LEN bytes of BYTE from a pipe into the file at its offset
 *   h:OFF:TEXT       stdio: fdopen(dup()), fseek to OFF, fputs TEXT, fflush, fclose
 *   g                futimens(fd, NULL): a new st_mtime, the same bytes
 *   b:MODE:TEXT      stdio alone: fopen(FILE, MODE) (r+ or w), fputs TEXT, fflush, fsync its
 *                    descriptor, fclose
 *   Names (NAME: a path relative to FILE's directory; the file's current name moves with %):
 *   @:NAME           the descriptor moves to NAME, created (O_CREAT|O_TRUNC): the current file
 *   %:NAME:HOW       rename the current file to NAME (HOW: r rename, a renameat, n renameat2
 *                    RENAME_NOREPLACE, x renameat2 RENAME_EXCHANGE, w RENAME_WHITEOUT)
 *   #:NAME:HOW       remove NAME (HOW: u unlink, a unlinkat, r remove)
 *   ^:NAME:HOW       a hard link NAME to the current file (HOW: l link, a linkat)
 *   /:NAME           fsync the directory NAME ("." : FILE's directory)
 *   (:NAME / ):NAME  mkdir (0755) / rmdir NAME
 *   8:FROM:TO        rename(2) of FROM to TO (names, not the current file: a directory)
 *   }:OFF:LEN        madvise(MADV_REMOVE) of the map range (punches a hole in the file)
 *   7:TARGET:NAME    symlink(TARGET, NAME): a symbolic link NAME to TARGET (as given)
 *   ':NAME           an O_TMPFILE file in FILE's directory, 10 bytes of 't' written and
 *                    fsynced, then linked as NAME (linkat of /proc/self/fd/N)
 *   `                ioctl(FICLONE) of FILE.src (created, 4096 bytes of 's') into the file
 *   *:N[:BYTE]       N rounds of short-lived files beside FILE, 9 steps each: f.tmp created,
 *                    512 bytes of 'a' + round % 26 (or of BYTE) written, fsynced, closed, renamed over f,
 *                    the directory fsynced; f.g created, the same bytes written, fsynced,
 *                    the directory fsynced, f.g unlinked (odd rounds: before its close; even:
 *                    after), the directory fsynced. A failing call ends the run with exit 4
 *   $:N              N rounds of mapped scratch files beside FILE, 4 steps each, then one more
 *                    (an fsync of the directory): f.m created, ftruncated to 4096 (a step), the
 *                    directory fsynced, mapped, 'a' + round % 26 stored over it, msynced, 'A' +
 *                    round % 26 stored over its first 512 bytes (not synced), closed, unlinked,
 *                    unmapped. A failing call ends the run with exit 4
 *   &:N[:FILL]       N files f.h0 .. f.h(N-1) beside FILE open at once, each written (512 bytes
 *                    of 'h') and fsynced, then "nofile SOFT" printed (getrlimit), then all
 *                    closed; an open failing ends the run with exit 4. FILL 1: first /dev/null
 *                    is opened until EMFILE and one of those closed: one number is left
 *   0 / 1 / 2        turns between two processes of a run at work at once (the test starts
 *                    both, each with descriptor 7 writing to the other's 8): 0 waits for the
 *                    other's byte on 8; 1 writes one to 7 first; 2 only writes it. The wait
 *                    polls (a non-blocking read, then an fcntl of 8, a call the shim sees, as
 *                    a process at work makes; one blocked in a read would never let the run
 *                    go); the other's end (end of file on 8) ends this one too, exit status 0
 *   6:NAME:OFF:LEN:BYTE[:f]  pwrite LEN bytes of BYTE at OFF into NAME (opened O_RDWR|O_CREAT
 *                    for the one call, then closed); f: then fsync it
 *   e:HOW            the rest of the operations run in a new image of pc_work (HOW: v execv,
 *                    p execvp, l execl, e execve, E execve with only PATH (and ASAN_OPTIONS)
 *                    set, f fexecve,
 *                    x an execv that fails: the rest runs here)
 * A failing call prints "ERR <op index> <errno>" and the run goes on.
 */

static int fd = -1;
static const char *path;
static char base[4096], cur[4096]; /* FILE's directory; the current file's name */

/* NAME (up to the next ':') under FILE's directory. */
static void name_at(char **p, char *out, size_t n)
{
    size_t len = strcspn(*p, ":");
    snprintf(out, n, "%s/%.*s", base, (int)len, *p);
    *p += len + (( *p)[len] == ':');
}
static unsigned char *map;
static size_t maplen;

static unsigned long long num(char **p)
{
    char *end;
    unsigned long long v = strtoull(*p, &end, 0);
    *p = *end == ':' ? end + 1 : end;
    return v;
}

static unsigned char *fill(size_t len, int byte)
{
    unsigned char *b = malloc(len ? len : 1);
    if (!b) exit(3);
    memset(b, byte, len);
    return b;
}

static void reopen(int flags)
{
    if (fd >= 0) close(fd);
    fd = open(path, O_RDWR | O_CREAT | flags, 0644);
    if (fd < 0) {
        perror("open");
        exit(3);
    }
}

/* The rest of the run in a new image: argv[0], FILE, the operations after index i. */
static long exec_rest(char **argv, int argc, int i, char how)
{
    char **nv = calloc((size_t)argc + 2, sizeof *nv);
    if (!nv) exit(3);
    int n = 0;
    nv[n++] = argv[0];
    nv[n++] = (char *)path;
    for (int k = i + 1; k < argc; k++) nv[n++] = argv[k];
    fflush(stdout);
    /* E: none of the shim's variables (ASAN_OPTIONS stays: the ASan runtime needs its own,
     * symbolize=0 among them, for the preloaded shim to start with its environment) */
    char asan[512];
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s", getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "");
    char *onlypath[] = {"PATH=/usr/bin:/bin", getenv("ASAN_OPTIONS") ? asan : NULL, NULL};
    extern char **environ;
    switch (how) {
    case 'v': execv("/proc/self/exe", nv); break;
    case 'p': execvp("/proc/self/exe", nv); break;
    case 'e': execve("/proc/self/exe", nv, environ); break;
    case 'E': execve("/proc/self/exe", nv, onlypath); break;
    case 'l': /* up to 8 operations */
        execl("/proc/self/exe", nv[0], nv[1], n > 2 ? nv[2] : NULL, n > 3 ? nv[3] : NULL, n > 4 ? nv[4] : NULL,
              n > 5 ? nv[5] : NULL, n > 6 ? nv[6] : NULL, n > 7 ? nv[7] : NULL, n > 8 ? nv[8] : NULL,
              n > 9 ? nv[9] : NULL, (char *)NULL);
        break;
    case 'f': {
        int x = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        fexecve(x, nv, environ);
        break;
    }
    case 'x': execv("/nonexistent/pc_work", nv); break;
    }
    free(nv);
    return -1;
}

static void close_all_but(int keep, char how)
{
    switch (how) {
    case 'l':
        for (int k = 3; k < 1024; k++)
            if (k != keep) close(k);
        break;
    case 'r':
        if (keep > 3) close_range(3, (unsigned)keep - 1, 0);
        close_range((unsigned)keep + 1, ~0U, 0);
        break;
    case 'F':
        if (keep > 3) close_range(3, (unsigned)keep - 1, 0);
        closefrom(keep + 1);
        break;
    case 'd': { /* dup2 onto every open number, as programs that set up their own table do */
        int open_fds[1024], n = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        while (d && (e = readdir(d)) && n < 1024) {
            int k = atoi(e->d_name);
            if (k > 2 && k != keep && k != dirfd(d)) open_fds[n++] = k;
        }
        if (d) closedir(d);
        for (int j = 0; j < n; j++)
            if (dup2(keep, open_fds[j]) == open_fds[j]) close(open_fds[j]);
        break;
    }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pc_work FILE OP...\n");
        return 2;
    }
    path = argv[1];
    snprintf(cur, sizeof cur, "%s", path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(base, sizeof base, "%s", dirname(tmp));
    reopen(0);
    for (int i = 2; i < argc; i++) {
        char op = argv[i][0];
        char *p = argv[i][1] == ':' ? argv[i] + 2 : argv[i] + 1;
        long r = 0;
        errno = 0;
        switch (op) {
        case 'w': case 'v': case 'x': {
            unsigned long long off = num(&p), len = num(&p);
            unsigned char *b = fill(len, (int)num(&p));
            if (op == 'w') r = pwrite(fd, b, len, (off_t)off);
            else if (op == 'x') r = pwrite64(fd, b, len, (off64_t)off);
            else {
                struct iovec v[2] = {{b, len / 2}, {b + len / 2, len - len / 2}};
                r = pwritev(fd, v, 2, (off_t)off);
            }
            free(b);
            break;
        }
        case 'W': case 'V': {
            unsigned long long len = num(&p);
            unsigned char *b = fill(len, (int)num(&p));
            if (op == 'W') r = write(fd, b, len);
            else {
                struct iovec v[2] = {{b, len / 2}, {b + len / 2, len - len / 2}};
                r = writev(fd, v, 2);
            }
            free(b);
            break;
        }
        case 't': r = ftruncate(fd, (off_t)num(&p)); break;
        case 'T': r = ftruncate64(fd, (off64_t)num(&p)); break;
        case '{': r = truncate(cur, (off_t)num(&p)); break;
        case 'a': {
            unsigned long long o = num(&p), l = num(&p);
            r = fallocate(fd, (int)num(&p), (off_t)o, (off_t)l);
            break;
        }
        case 'p': {
            unsigned long long o = num(&p);
            int e = posix_fallocate(fd, (off_t)o, (off_t)num(&p));
            if (e) { errno = e; r = -1; }
            break;
        }
        case 'f': r = fsync(fd); break;
        case ';': sync(); break;
        case ',': r = syncfs(fd); break;
        case 'd': r = fdatasync(fd); break;
        case 'j': case 'J': { /* the directory holding the file's name, synced as programs do */
            char *copy = strdup(path);
            int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            free(copy);
            r = dfd < 0 ? -1 : op == 'j' ? fsync(dfd) : fdatasync(dfd);
            if (dfd >= 0) close(dfd);
            break;
        }
        case 'R': { unsigned long long o = num(&p); r = sync_file_range(fd, (off_t)o, (off_t)num(&p), SYNC_FILE_RANGE_WRITE); break; }
        case 'D': reopen(O_DSYNC); break;
        case 'S': reopen(O_SYNC); break;
        case 'O': reopen(0); break;
        case 'o':
            close(fd);
            fd = open(path, O_RDONLY);
            if (fd < 0) { perror("open"); exit(3); }
            break;
        case '}': {
            unsigned long long off = num(&p), len = num(&p);
            r = map ? madvise(map + off, len, MADV_REMOVE) : -1;
            break;
        }
        case '`': {
            char src[4160];
            snprintf(src, sizeof src, "%s.src", path);
            int s = open(src, O_RDWR | O_CREAT | O_TRUNC, 0644);
            unsigned char *b = fill(4096, 's');
            r = s < 0 || write(s, b, 4096) != 4096 ? -1 : ioctl(fd, FICLONE, s);
            free(b);
            if (s >= 0) close(s);
            break;
        }
        case 'm':
            maplen = num(&p);
            map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (map == MAP_FAILED) { map = NULL; r = -1; }
            break;
        case 'Z': case 'n':
            maplen = num(&p);
            map = mmap(NULL, maplen, op == 'Z' ? PROT_READ | PROT_WRITE : PROT_READ,
                       op == 'Z' ? MAP_PRIVATE : MAP_SHARED, fd, 0);
            if (map == MAP_FAILED) { map = NULL; r = -1; }
            break;
        case 'P': {
            size_t len = num(&p);
            unsigned char *q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
            if (q == MAP_FAILED) r = -1;
            else { memset(q, 0x77, len); munmap(q, len); }
            break;
        }
        case 's': {
            unsigned long long off = num(&p), len = num(&p);
            memset(map + off, (int)num(&p), len);
            break;
        }
        case 'M': case 'A': {
            unsigned long long off = num(&p), len = num(&p);
            r = msync(map + off, len, op == 'M' ? MS_SYNC : MS_ASYNC);
            break;
        }
        case 'X': {
            unsigned long long off = num(&p), len = num(&p);
            r = msync(map + off, len, (int)num(&p));
            break;
        }
        case 'r': {
            size_t nl = num(&p);
            void *q = mremap(map, maplen, nl, MREMAP_MAYMOVE);
            if (q == MAP_FAILED) r = -1;
            else { map = q; maplen = nl; }
            break;
        }
        case 'u': r = munmap(map, maplen); map = NULL; break;
        case 'U': { unsigned long long off = num(&p), len = num(&p); r = munmap(map + off, len); break; }
        case 'B': { unsigned long long o = num(&p); pc_mark_begin(o, p); break; }
        case 'E': pc_mark_end(num(&p)); break;
        case 'K': {
            char line[256];
            int n = snprintf(line, sizeof line, "%s\n", p);
            for (char *q = line; *q; q++) if (*q == '_') *q = ' '; /* argv has no spaces */
            r = write(9, line, (size_t)n);
            break;
        }
        case 'c': {
            int d = dup(fd);
            close(fd);
            fd = dup2(d, 20);
            close(d);
            if (fd < 0) r = -1;
            break;
        }
        case 'k': kill(getpid(), 9); break;
        case '_': _exit(0);
        case '!': _Exit(0);
        case 'N': *(volatile int *)(uintptr_t)num(&p) = 1; break; /* a real crash: N:16 */
        case 'z': usleep((useconds_t)num(&p) * 1000); break;
        case 'y': case 'Y': { /* a child writes the file too: exec'd (y) or just forked (Y) */
            fflush(stdout);
            pid_t pid = fork();
            char how = op == 'Y' && (*p == 'o' || *p == 'e' || *p == 't') ? *p++ : 0;
            if (*p == ':') p++;
            if (pid == 0) {
                if (op == 'y') execl("/proc/self/exe", "pc_work", path, "w:0:1:90", (char *)NULL);
                char ln[4096];
                snprintf(ln, sizeof ln, "%s.ln", path);
                int c = how == 'o' ? open(path, O_RDWR) : how == 't' ? open(ln, O_RDWR | O_TRUNC) : fd;
                int bad = pwrite(c, "Y", 1, 1) != 1 || fsync(c) != 0;
                if (how == 'e') exit(bad);
                _exit(bad);
            }
            int status;
            if (*p) usleep((useconds_t)num(&p) * 1000); /* Y:MS: the child is done before the wait */
            waitpid(pid, &status, 0);
            break;
        }
        case ']': { /* system(): this program again on the file, writing byte 0 */
            char cmd[8300];
            snprintf(cmd, sizeof cmd, "'%s' '%s' w:0:1:90", argv[0], path);
            fflush(stdout);
            if (system(cmd) != 0) r = -1;
            break;
        }
        case '[': { /* a child (exec'd) writes byte 0 while this one sleeps MS before waiting */
            unsigned long long ms = num(&p);
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                execl("/proc/self/exe", "pc_work", path, "w:0:1:90", (char *)NULL);
                _exit(0);
            }
            struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            int status;
            waitpid(pid, &status, 0);
            break;
        }
        case 'L': {
            unsigned long long n = num(&p), stride = num(&p), pages = maplen / 4096;
            for (unsigned long long k = 0; k < n && pages && r == 0; k++) {
                unsigned long long pg = k * stride % pages;
                map[pg * 4096 + k % 4096] = (unsigned char)(k + 1);
                r = msync(map + pg * 4096, 4096, MS_SYNC);
            }
            break;
        }
        case '?': {
            unsigned long long n = num(&p), every = num(&p), pages = maplen / 4096, cold = 0;
            for (unsigned long long k = 0; k < n && pages > 1 && every && r == 0; k++) {
                map[k % 4096] = (unsigned char)(k + 1);
                if (k % every == 0) map[(1 + cold++ % (pages - 1)) * 4096] = (unsigned char)(k + 1);
                r = msync(map, 4096, MS_SYNC);
            }
            break;
        }
        case 'Q': {
            unsigned long long n = num(&p);
            for (unsigned long long k = 0; k < n && r == 0; k++) r = msync(map, 4096, MS_SYNC);
            break;
        }
        case 'G': {
            unsigned long long off = num(&p), len = num(&p);
            unsigned char *b = fill(len, (int)num(&p));
            int pp[2];
            if (pipe(pp)) exit(3);
            if (write(pp[1], b, len) != (ssize_t)len) exit(3);
            r = read(pp[0], map + off, len);
            close(pp[0]);
            close(pp[1]);
            free(b);
            break;
        }
        case 'F': {
            unsigned long long off = num(&p), len = num(&p);
            int byte = (int)num(&p);
            fflush(stdout);
            int sync = *p ? (int)num(&p) : 0;
            unsigned long long ms = *p ? num(&p) : 0;
            pid_t pid = fork();
            if (pid == 0) {
                memset(map + off, byte, len);
                if (sync) {
                    unsigned long long lo = off / 4096 * 4096;
                    if (msync(map + lo, off + len - lo, MS_SYNC)) _exit(1);
                }
                _exit(0);
            }
            int status;
            if (ms) usleep((useconds_t)ms * 1000);
            waitpid(pid, &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status)) r = -1;
            break;
        }
        case 'C': {
            int old = fd;
            if (*p == 'f') {
                FILE *st = fdopen(fd, "r+");
                r = st ? fclose(st) : -1;
            } else if (*p == 'r') r = close_range((unsigned)fd, (unsigned)fd, 0);
            else closefrom(fd);
            int sv[2];
            if (r == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
                int s0 = sv[0] == old ? sv[0] : sv[1] == old ? sv[1] : -1;
                if (s0 < 0) fprintf(stderr, "pc_work: the socket did not reuse %d\n", old);
                else {
                    unsigned char *b = fill(100, 'Z');
                    r = write(s0, b, 100) == 100 ? 0 : -1;
                    free(b);
                }
                close(sv[0]);
                close(sv[1]);
            }
            fd = -1;
            reopen(0);
            break;
        }
        case 'l': {
            char ln[4096];
            snprintf(ln, sizeof ln, "%s.ln", path);
            unlink(ln);
            if (link(path, ln)) { r = -1; break; }
            close(fd);
            fd = open(ln, O_RDWR);
            if (fd < 0) exit(3);
            break;
        }
        case '+': case '-': {
            int fl = fcntl(fd, F_GETFL);
            r = fcntl(fd, F_SETFL, op == '+' ? fl | O_APPEND : fl & ~O_APPEND);
            break;
        }
        case '=': case '~': {
            int (*plain)(int, int, ...) = (int (*)(int, int, ...))dlsym(RTLD_DEFAULT, "fcntl");
            int nfd = op == '=' ? fcntl(fd, F_DUPFD_CLOEXEC, 30) : plain(fd, F_DUPFD_CLOEXEC, 30);
            if (nfd < 0) { r = -1; break; }
            close(fd);
            fd = nfd;
            break;
        }
        case 'H': {
            close_all_but(fd, *p);
            char other[4096];
            snprintf(other, sizeof other, "%s.other", path);
            int o = open(other, O_RDWR | O_CREAT | O_TRUNC, 0644);
            if (o < 0 || ftruncate(o, 77777)) exit(3); /* a size the model must never take */
            for (int k = 0; k < 5; k++)
                if (open(other, O_RDONLY) < 0) exit(3);
            break;
        }
        case 'e': r = exec_rest(argv, argc, i, *p); break;
        case '2': if (write(7, "t", 1) != 1) exit(3); break;
        case '1': if (write(7, "t", 1) != 1) exit(3); /* fall through */
        case '0': {
            char c;
            if (fcntl(8, F_SETFL, O_NONBLOCK)) exit(3);
            for (;;) {
                ssize_t n = read(8, &c, 1);
                if (n == 1) break;
                if (n == 0) exit(0);
                if (errno != EAGAIN || fcntl(8, F_GETFL) < 0) exit(3);
                usleep(1000);
            }
            break;
        }
        case '6': {
            char name[4096];
            name_at(&p, name, sizeof name);
            unsigned long long off = num(&p), len = num(&p);
            int byte = (int)num(&p);
            char buf[65536];
            if (len > sizeof buf) exit(3);
            memset(buf, byte, (size_t)len);
            int o = open(name, O_RDWR | O_CREAT, 0644);
            if (o < 0) exit(3);
            r = pwrite(o, buf, (size_t)len, (off_t)off) == (ssize_t)len ? 0 : -1;
            if (!r && *p == 'f') r = fsync(o);
            close(o);
            break;
        }
        case 'i': {
            long long off = (long long)num(&p);
            size_t len = num(&p);
            unsigned char *b = fill(len, (int)num(&p));
            int flags = (int)num(&p);
            struct iovec v[2] = {{b, len / 2}, {b + len / 2, len - len / 2}};
            r = pwritev2(fd, v, 2, (off_t)off, flags);
            free(b);
            break;
        }
        case 'I': {
            unsigned long long off = num(&p);
            size_t len = num(&p);
            unsigned char *b = fill(len, 0);
            struct iovec v = {b, len};
            r = preadv2(fd, &v, 1, (off_t)off, 0);
            if (r > 0) printf("preadv2 %ld %d %d\n", r, b[0], b[r - 1]);
            free(b);
            break;
        }
        case '<': case '>': {
            off_t off = (off_t)num(&p);
            size_t len = num(&p);
            unsigned char *b = fill(len, (int)num(&p));
            char src[4096];
            snprintf(src, sizeof src, "%s.src", path);
            int s = open(src, O_RDWR | O_CREAT | O_TRUNC, 0644);
            if (s < 0 || write(s, b, len) != (ssize_t)len) exit(3);
            free(b);
            off_t soff = 0;
            if (op == '<') r = copy_file_range(s, &soff, fd, &off, len, 0);
            else if (lseek(fd, off, SEEK_SET) < 0) r = -1;
            else r = sendfile(fd, s, &soff, len);
            close(s);
            break;
        }
        case 'q': {
            size_t len = num(&p);
            unsigned char *b = fill(len, (int)num(&p));
            int pp[2];
            if (pipe(pp) || write(pp[1], b, len) != (ssize_t)len) exit(3);
            r = splice(pp[0], NULL, fd, NULL, len, 0);
            close(pp[0]);
            close(pp[1]);
            free(b);
            break;
        }
        case 'h': {
            long off = (long)num(&p);
            FILE *st = fdopen(dup(fd), "r+");
            if (!st || fseek(st, off, SEEK_SET) || fputs(p, st) < 0 || fflush(st)) r = -1;
            if (st) fclose(st);
            break;
        }
        case 'g': r = futimens(fd, NULL); break;
        case 'b': {
            char mode[4] = {0};
            for (int k = 0; k < 3 && *p && *p != ':'; k++) mode[k] = *p++;
            if (*p == ':') p++;
            FILE *st = fopen(path, mode);
            if (!st || fputs(p, st) < 0 || fflush(st) || fsync(fileno(st))) r = -1;
            if (st) fclose(st);
            break;
        }
        case '@': {
            name_at(&p, cur, sizeof cur);
            close(fd);
            fd = open(cur, O_RDWR | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) exit(3);
            break;
        }
        case '%': {
            char to[4096];
            name_at(&p, to, sizeof to);
            char how = *p ? *p : 'r';
            if (how == 'r') r = rename(cur, to);
            else if (how == 'a') r = renameat(AT_FDCWD, cur, AT_FDCWD, to);
            else r = renameat2(AT_FDCWD, cur, AT_FDCWD, to, how == 'n' ? RENAME_NOREPLACE : how == 'w' ? RENAME_WHITEOUT : RENAME_EXCHANGE);
            if (!r) snprintf(cur, sizeof cur, "%s", to);
            break;
        }
        case '#': {
            char name[4096];
            name_at(&p, name, sizeof name);
            char how = *p ? *p : 'u';
            r = how == 'u' ? unlink(name) : how == 'a' ? unlinkat(AT_FDCWD, name, 0) : remove(name);
            break;
        }
        case '^': {
            char name[4096];
            name_at(&p, name, sizeof name);
            r = *p == 'a' ? linkat(AT_FDCWD, cur, AT_FDCWD, name, 0) : link(cur, name);
            break;
        }
        case '(': case ')': {
            char name[4096];
            name_at(&p, name, sizeof name);
            r = op == '(' ? mkdir(name, 0755) : rmdir(name);
            break;
        }
        case '\'': {
            char name[4096], proc[64];
            name_at(&p, name, sizeof name);
            int t = open(base, O_TMPFILE | O_RDWR, 0644);
            unsigned char *b = fill(10, 't');
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", t);
            r = t < 0 || write(t, b, 10) != 10 || fsync(t) ? -1 : linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW);
            free(b);
            if (t >= 0) close(t);
            break;
        }
        case '7': {
            char target[4096], name[4096];
            size_t len = strcspn(p, ":");
            snprintf(target, sizeof target, "%.*s", (int)len, p);
            p += len + (p[len] == ':');
            name_at(&p, name, sizeof name);
            r = symlink(target, name);
            break;
        }
        case '8': {
            char from[4096], to[4096];
            name_at(&p, from, sizeof from);
            name_at(&p, to, sizeof to);
            r = rename(from, to);
            break;
        }
        case '/': {
            char name[4096];
            name_at(&p, name, sizeof name);
            int dfd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            r = dfd < 0 ? -1 : fsync(dfd);
            if (dfd >= 0) close(dfd);
            break;
        }
        case '*': {
            unsigned long long n = num(&p), byte = *p ? num(&p) : 0;
            char tmpn[4160], dst[4160], g[4160];
            snprintf(tmpn, sizeof tmpn, "%s/f.tmp", base);
            snprintf(dst, sizeof dst, "%s/f", base);
            snprintf(g, sizeof g, "%s/f.g", base);
            int dfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd < 0) exit(4);
            for (unsigned long long k = 0; k < n; k++) {
                unsigned char b[512];
                memset(b, byte ? (int)byte : 'a' + (int)(k % 26), sizeof b);
                int t = open(tmpn, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (t < 0 || pwrite(t, b, sizeof b, 0) != (ssize_t)sizeof b || fsync(t) || close(t) ||
                    rename(tmpn, dst) || fsync(dfd))
                    exit(4);
                t = open(g, O_RDWR | O_CREAT | O_TRUNC, 0644);
                if (t < 0 || pwrite(t, b, sizeof b, 0) != (ssize_t)sizeof b || fsync(t) || fsync(dfd)) exit(4);
                if (k % 2 ? unlink(g) || close(t) : close(t) || unlink(g)) exit(4);
                if (fsync(dfd)) exit(4);
            }
            close(dfd);
            break;
        }
        case '$': {
            unsigned long long n = num(&p);
            char mn[4160];
            snprintf(mn, sizeof mn, "%s/f.m", base);
            int dfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd < 0) exit(4);
            for (unsigned long long k = 0; k < n; k++) {
                int t = open(mn, O_RDWR | O_CREAT | O_TRUNC, 0644);
                if (t < 0 || ftruncate(t, 4096) || fsync(dfd)) exit(4);
                unsigned char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, t, 0);
                if (m == MAP_FAILED) exit(4);
                memset(m, 'a' + (int)(k % 26), 4096);
                if (msync(m, 4096, MS_SYNC)) exit(4);
                memset(m, 'A' + (int)(k % 26), 512);
                if (close(t) || unlink(mn) || munmap(m, 4096)) exit(4);
            }
            if (fsync(dfd)) exit(4);
            close(dfd);
            break;
        }
        case '&': {
            unsigned long long n = num(&p);
            if (num(&p) == 1) { /* the program at its limit, but for one number */
                int nd, last = -1;
                while ((nd = open("/dev/null", O_RDONLY)) >= 0) last = nd;
                if (last >= 0) close(last);
            }
            int *h = calloc(n ? n : 1, sizeof *h);
            unsigned char b[512];
            memset(b, 'h', sizeof b);
            if (!h) exit(3);
            for (unsigned long long k = 0; k < n; k++) {
                char name[4160];
                snprintf(name, sizeof name, "%s/f.h%llu", base, k);
                h[k] = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
                if (h[k] < 0 || pwrite(h[k], b, sizeof b, 0) != (ssize_t)sizeof b || fsync(h[k])) {
                    printf("ERR open %llu %d\n", k, errno);
                    exit(4);
                }
            }
            struct rlimit rl;
            if (getrlimit(RLIMIT_NOFILE, &rl)) exit(3);
            printf("nofile %llu\n", (unsigned long long)rl.rlim_cur);
            for (unsigned long long k = 0; k < n; k++) close(h[k]);
            free(h);
            break;
        }
        default: fprintf(stderr, "pc_work: unknown op %s\n", argv[i]); return 2;
        }
        if (r < 0) printf("ERR %d %d\n", i - 2, errno);
    }
    fflush(stdout);
    return 0;
}
