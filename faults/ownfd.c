/* ownfd.c: the shim's own descriptors, out of the program's reach: moved to high numbers,
 * invisible to the program's close, close_range, closefrom, dup2, dup3 and fcntl. */
#include "ownfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Why: a program owns its descriptor table. Daemons close every descriptor but their own
 * after opening their files (a close loop up to the limit, close_range, closefrom), and
 * programs dup2 onto numbers of their choosing. The shim's descriptors (its trace, a private
 * read descriptor per tracked file, the userfaultfd and /proc/self/pagemap of wtrack_uffd.c)
 * must survive that, or the trace ends unreadable and an fstat through a reused number tells
 * the model another file's size.
 *
 * - Every shim descriptor is moved (F_DUPFD_CLOEXEC) to a number the program is unlikely to
 *   want. BASE is 64 below min(RLIMIT_NOFILE, 1024) (the select(2) range many programs stay
 *   in), or half the limit when that is below 128.
 *   - With a soft RLIMIT_NOFILE of 1024 or less, a program may well use every number it has
 *     (the select(2) range is all of it), so the shim takes none of them: its number is the
 *     lowest free one at or above the soft limit. To get it, it raises the soft limit to the
 *     hard one for that one call and lowers it back at once: the kernel checks the limit only
 *     when it hands out a number, so the descriptor stays valid, and the program's open, dup,
 *     dup2 and fcntl never produce or aim at a number at or above its limit. The program sees
 *     its own limit again when the call returns; only another thread's getrlimit, open or
 *     fork made inside those two system calls could see the raised one (a program at its
 *     limit, racing with the shim). Raising the soft limit for good was rejected: getrlimit,
 *     sysconf(_SC_OPEN_MAX) and the children would all see it, and an open that should fail
 *     with EMFILE would not.
 *   - With a larger soft limit, the number is the lowest free one at or above BASE while that
 *     is below 1024: high in the program's range (64 numbers, which a program reaches only
 *     after 960 descriptors), so that it takes none of the low numbers a program expects open
 *     to hand out and is rarely a dup2 target, and low enough to keep the kernel's table of
 *     descriptors small (a number near a soft limit of 65536 makes every fork copy a table
 *     that long). Past those 64, it is borrowed above the soft limit as above.
 *   - Where nothing can be borrowed (the hard limit is the soft one, or reached), the number
 *     is the lowest free one at or above BASE, up to the soft limit: the program finds the
 *     shim's descriptors among its own, and runs out of them sooner.
 * - The program's close of a shim number fails with EBADF, as if it were not open; close_range
 *   and closefrom close the rest of their range; dup/dup2/dup3/fcntl from a shim number fail
 *   with EBADF. dup2/dup3 onto a shim number move the shim's descriptor elsewhere first, then
 *   the program gets the number it asked for.
 * - Where no number is free even so (the hard limit reached, or 65536 shim descriptors) the
 *   shim cannot keep its promise and stops (the caller's die). Files the program can no
 *   longer change give theirs back (shim.c, retire_check), so this takes many files open,
 *   named or mapped at once.
 * Calls made behind the shim's back (raw syscall(SYS_close), glibc-internal closes) are not
 * seen; the move to high numbers keeps the usual "close 3..N" loops away anyway.
 * Everything here uses raw system calls: the shim interposes close, dup2 and fcntl.
 */

/* A table that never moves: the program's close in one thread may read it while the shim adds
 * to it under its lock in another. It grows by chunks that stay where they were allocated, so
 * it is safe to scan at any time; almost every run needs the first one only. */
#define OWN_CHUNK 1024
#define OWN_CHUNKS 64
#define OWN_MAX (OWN_CHUNK * OWN_CHUNKS)
static int *chunks[OWN_CHUNKS];
static size_t nown;
static int base = -1;

static int *own_at(size_t i) { return &__atomic_load_n(&chunks[i / OWN_CHUNK], __ATOMIC_ACQUIRE)[i % OWN_CHUNK]; }

static int pick_base(void)
{
    if (base >= 0) return base;
    struct rlimit rl;
    long lim = 1024;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < lim)
        lim = (long)rl.rlim_cur;
    base = (int)(lim >= 128 ? lim - 64 : lim / 2);
    return base;
}

static int add(int fd)
{
    if (nown == OWN_MAX) return -1;
    size_t c = nown / OWN_CHUNK;
    if (!chunks[c]) {
        int *p = malloc(OWN_CHUNK * sizeof *p);
        if (!p) return -1;
        __atomic_store_n(&chunks[c], p, __ATOMIC_RELEASE);
    }
    *own_at(nown) = fd;
    __atomic_store_n(&nown, nown + 1, __ATOMIC_RELEASE); /* published after its entry */
    return 0;
}

static void del(int fd)
{
    for (size_t i = 0; i < nown; i++)
        if (*own_at(i) == fd) {
            *own_at(i) = *own_at(nown - 1);
            nown--;
            return;
        }
}

int pc__own_is(int fd)
{
    size_t n = __atomic_load_n(&nown, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n; i++)
        if (*own_at(i) == fd) return 1;
    return 0;
}

/* Raises the soft RLIMIT_NOFILE to the hard one for the caller's one call, which lowers it
 * back with setrlimit(rl) right after (see the top comment). 1 if raised; *rl: the limits as
 * they were. */
static int lift(struct rlimit *rl)
{
    if (getrlimit(RLIMIT_NOFILE, rl) || rl->rlim_cur == RLIM_INFINITY || rl->rlim_cur >= rl->rlim_max) return 0;
    struct rlimit up = *rl;
    up.rlim_cur = rl->rlim_max;
    return !setrlimit(RLIMIT_NOFILE, &up);
}

/* A copy of fd at the lowest free number at or above the soft limit; -1 when the hard limit
 * leaves none. */
static int borrow(int fd)
{
    struct rlimit rl;
    if (!lift(&rl)) return -1;
    int nfd = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, (long)rl.rlim_cur);
    (void)setrlimit(RLIMIT_NOFILE, &rl); /* lowering the soft limit cannot fail */
    return nfd;
}

/* A copy of fd at a high number (see the top comment for which), close-on-exec; -1 with
 * errno. */
static int high_copy(int fd)
{
    struct rlimit rl;
    int small = !getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur <= 1024, nfd;
    if (small && (nfd = borrow(fd)) >= 0) return nfd;
    nfd = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, pick_base());
    if (nfd >= 0 && nfd < 1024) return nfd; /* the window */
    int b = small ? -1 : borrow(fd);
    if (b >= 0) {
        if (nfd >= 0) syscall(SYS_close, nfd);
        return b;
    }
    if (nfd < 0) errno = EMFILE; /* or EINVAL: the base is past the limit */
    return nfd;
}

int pc__own_take(int fd)
{
    if (fd < 0) return -1;
    int nfd = high_copy(fd);
    int e = errno;
    if (nfd < 0 && fd >= pick_base()) nfd = fd; /* no better place than the window it is in */
    if (nfd != fd) syscall(SYS_close, fd);
    if (nfd < 0 || add(nfd)) {
        if (nfd >= 0) syscall(SYS_close, nfd);
        errno = nfd < 0 ? e : EMFILE;
        return -1;
    }
    return nfd;
}

int pc__own_open(const char *path, int flags, mode_t mode)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, flags | O_CLOEXEC, mode);
    struct rlimit rl;
    if (fd < 0 && errno == EMFILE) { /* the program's numbers are all taken */
        if (!lift(&rl)) {
            errno = EMFILE;
            return -1;
        }
        fd = (int)syscall(SYS_openat, AT_FDCWD, path, flags | O_CLOEXEC, mode);
        int e = errno;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        errno = e;
    }
    return fd < 0 ? -1 : pc__own_take(fd);
}

void pc__own_adopt(int fd)
{
    if (fd >= 0 && !pc__own_is(fd)) (void)add(fd);
}

void pc__own_forget(int fd) { del(fd); }

void pc__own_release(int fd)
{
    if (fd < 0) return;
    del(fd);
    syscall(SYS_close, fd);
}

int pc__own_evict(int fd, void (*moved)(int from, int to))
{
    if (!pc__own_is(fd)) return 0;
    int nfd = high_copy(fd);
    if (nfd < 0) return -1;
    for (size_t i = 0; i < nown; i++)
        if (*own_at(i) == fd) *own_at(i) = nfd;
    moved(fd, nfd);
    syscall(SYS_close, fd);
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

static int close_seg(unsigned lo, unsigned hi, unsigned flags)
{
    if (lo > hi) return 0;
    if (syscall(SYS_close_range, lo, hi, flags) == 0) return 0;
    if (errno != ENOSYS || flags) return -1;
    /* kernels before 5.9: one close per number up to the descriptor limit */
    struct rlimit rl;
    unsigned long top = !getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 65536;
    for (unsigned long fd = lo; fd <= hi && fd < top; fd++) syscall(SYS_close, (int)fd);
    return 0;
}

int pc__own_close_range(unsigned first, unsigned last, unsigned flags)
{
    if (first > last) {
        errno = EINVAL;
        return -1;
    }
    int *sorted = nown ? malloc(nown * sizeof *sorted) : NULL;
    if (nown && !sorted) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < nown; i++) sorted[i] = *own_at(i);
    qsort(sorted, nown, sizeof *sorted, cmp_int);
    int rc = 0, err = 0;
    unsigned lo = first;
    int done = 0;
    for (size_t i = 0; i < nown && !done; i++) {
        unsigned o = (unsigned)sorted[i];
        if (o < lo || o > last) continue;
        if (o > lo && close_seg(lo, o - 1, flags) && !rc) {
            rc = -1;
            err = errno;
        }
        if (o == last) done = 1; /* nothing of the range is left past it */
        else lo = o + 1;
    }
    if (!done && close_seg(lo, last, flags) && !rc) {
        rc = -1;
        err = errno;
    }
    free(sorted);
    if (rc) errno = err;
    return rc;
}
