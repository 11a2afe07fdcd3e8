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
 * - Every shim descriptor is moved with F_DUPFD_CLOEXEC to the lowest free number at or above
 *   BASE, high in the table, so that it takes none of the low numbers a program expects open
 *   to hand out and is rarely a dup2 target. BASE is 64 below min(RLIMIT_NOFILE, 1024) (the
 *   select(2) range many programs stay in), or half the limit when that is below 128.
 * - The program's close of a shim number fails with EBADF, as if it were not open; close_range
 *   and closefrom close the rest of their range; dup/dup2/dup3/fcntl from a shim number fail
 *   with EBADF. dup2/dup3 onto a shim number move the shim's descriptor elsewhere first, then
 *   the program gets the number it asked for.
 * - Where no number is free the shim cannot keep its promise and stops (the caller's die).
 * Calls made behind the shim's back (raw syscall(SYS_close), glibc-internal closes) are not
 * seen; the move to high numbers keeps the usual "close 3..N" loops away anyway.
 * Everything here uses raw system calls: the shim interposes close, dup2 and fcntl.
 */

/* A fixed table: the program's close in one thread may read it while the shim adds to it under
 * its lock in another; a table that never moves is safe to scan at any time. */
#define OWN_MAX 1024
static int own[OWN_MAX];
static size_t nown;
static int base = -1;

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
    own[nown] = fd;
    __atomic_store_n(&nown, nown + 1, __ATOMIC_RELEASE); /* published after its entry */
    return 0;
}

static void del(int fd)
{
    for (size_t i = 0; i < nown; i++)
        if (own[i] == fd) {
            own[i] = own[--nown];
            return;
        }
}

int pc__own_is(int fd)
{
    for (size_t i = 0; i < nown; i++)
        if (own[i] == fd) return 1;
    return 0;
}

/* A copy of fd at a free high number, close-on-exec; -1 with errno. */
static int high_copy(int fd)
{
    int nfd = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, pick_base());
    if (nfd < 0 && errno == EINVAL) errno = EMFILE; /* the base itself is past the limit */
    return nfd;
}

int pc__own_take(int fd)
{
    if (fd < 0) return -1;
    int nfd = fd >= pick_base() ? fd : high_copy(fd);
    int e = errno;
    if (nfd != fd) syscall(SYS_close, fd);
    if (nfd < 0 || add(nfd)) {
        if (nfd >= 0) syscall(SYS_close, nfd);
        errno = nfd < 0 ? e : EMFILE;
        return -1;
    }
    return nfd;
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
        if (own[i] == fd) own[i] = nfd;
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
    for (size_t i = 0; i < nown; i++) sorted[i] = own[i];
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
