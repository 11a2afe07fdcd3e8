/* wtrack_uffd.c: finds the pages a process stored to through its mappings without a signal per
 * page: userfaultfd asynchronous write-protection marks them, PAGEMAP_SCAN lists them. */

#include "wtrack_uffd.h"
#include "ownfd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * How it works (Documentation/admin-guide/mm/userfaultfd.rst and pagemap.rst):
 *
 * - A userfaultfd with UFFD_FEATURE_WP_ASYNC resolves write-protect faults inside the kernel:
 *   the store proceeds after a minor fault (~1 us on the VM measured in faults/README.md, a
 *   signal-and-mprotect cycle costs ~9 us), and the page table entry loses its uffd-wp bit.
 *   Nothing is queued on the descriptor, so nobody has to read it.
 * - PAGEMAP_SCAN on /proc/self/pagemap with category PAGE_IS_WRITTEN lists the pages whose
 *   entry lacks the bit, i.e. stored to since they were last write-protected. With
 *   PM_SCAN_WP_MATCHING the same call write-protects every page it lists, atomically with
 *   the listing (under the page table lock): a store after it faults again and is listed by
 *   the next scan, so nothing falls between the two, and no UFFDIO_WRITEPROTECT per page is
 *   needed (one costs as much as a whole scan of a 1 MiB mapping on the VM of
 *   faults/README.md). The shim scans so at every harvest, its open pages included (shim.c:
 *   an open page is then compared only when the scan lists it). PM_SCAN_CHECK_WPASYNC makes
 *   the scan fail instead of silently reporting nothing when a range is not (or no longer)
 *   registered.
 * - Registration write-protects the whole range at once (UFFDIO_WRITEPROTECT). For file and
 *   shmem mappings this also leaves a marker in the entries of pages not faulted in yet, so
 *   that a later scan does not report them as written: every page starts clean. The price is
 *   that a scan walks every page table entry of the range: ~1 ns per page after a fixed
 *   ~0.7 us per call, which is why the shim caps the bytes it tracks this way.
 * - Shmem needs UFFD_FEATURE_WP_HUGETLBFS_SHMEM; with WP_ASYNC any other file mapping may be
 *   registered too (ext4 works). WP_UNPOPULATED extends the markers to anonymous shared
 *   memory. Kernels without WP_ASYNC (< 6.7) or PAGEMAP_SCAN make pc__uffd_open fail.
 * - vm.unprivileged_userfaultfd=0 refuses the plain descriptor to unprivileged users, but
 *   not one restricted to faults from user mode (UFFD_USER_MODE_ONLY), which is all the
 *   asynchronous mode needs: it never delivers a fault to user space. /dev/userfaultfd is
 *   the last resort (a seccomp filter may block the system call itself).
 * - Without UFFD_FEATURE_EVENT_FORK a forked child's copies of the mappings are not
 *   registered (and without EVENT_REMAP, neither is the target of an mremap): the child
 *   writes freely (under POWERCUT_RUN the shim puts its copies on mprotect instead: shim.c,
 *   fchild_arm), and the shim registers a moved mapping again.
 *
 * Every call uses raw system calls: the shim interposes open and close.
 */

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1ULL << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1ULL << 15)
#endif

/* PAGEMAP_SCAN (linux/fs.h since 6.7), under names of our own so that newer headers do not
 * clash; the layout is the kernel's ABI. */
struct pc_page_region {
    uint64_t start, end, categories;
};
struct pc_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PC_PAGEMAP_SCAN _IOWR('f', 16, struct pc_pm_scan_arg)
#define PC_PAGE_IS_WRITTEN (1ULL << 1)
#define PC_PM_SCAN_WP_MATCHING (1ULL << 0)
#define PC_PM_SCAN_CHECK_WPASYNC (1ULL << 1)

static int uffd = -1, pagemap = -1;

static int sys_close(int fd) { return (int)syscall(SYS_close, fd); }

/* A new userfaultfd descriptor, by the first way the system allows. */
static int uffd_new(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
#ifdef USERFAULTFD_IOC_NEW
    if (fd < 0) {
        int dev = (int)syscall(SYS_openat, AT_FDCWD, "/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
            sys_close(dev);
        }
    }
#endif
    return fd;
}

int pc__uffd_open(void)
{
    if (uffd >= 0) return 0;
    /* UFFDIO_API may be called once per descriptor: ask what the kernel offers on a first one
     * (features 0), then enable what we use on a second. */
    int probe = uffd_new();
    if (probe < 0) return -1;
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    int ok = ioctl(probe, UFFDIO_API, &api) == 0 && (api.features & UFFD_FEATURE_WP_ASYNC);
    sys_close(probe);
    if (!ok) return -1;
    uint64_t want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED;
    want &= api.features;
    int fd = uffd_new();
    if (fd < 0) return -1;
    api = (struct uffdio_api){.api = UFFD_API, .features = want};
    int pm = -1;
    if (ioctl(fd, UFFDIO_API, &api) == 0)
        pm = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    /* an empty scan: succeeds where the ioctl exists */
    struct pc_pm_scan_arg arg = {.size = sizeof arg};
    if (pm < 0 || ioctl(pm, PC_PAGEMAP_SCAN, &arg) != 0) {
        if (pm >= 0) sys_close(pm);
        sys_close(fd);
        return -1;
    }
    /* both out of the program's reach (ownfd.c) */
    if ((fd = pc__own_take(fd)) < 0) {
        sys_close(pm);
        return -1;
    }
    if ((pm = pc__own_take(pm)) < 0) {
        pc__own_release(fd);
        return -1;
    }
    uffd = fd;
    pagemap = pm;
    return 0;
}

void pc__uffd_close(void)
{
    pc__own_release(uffd);
    pc__own_release(pagemap);
    uffd = pagemap = -1;
}

void pc__uffd_moved(int from, int to)
{
    if (uffd == from) uffd = to;
    if (pagemap == from) pagemap = to;
}

int pc__uffd_protect(uintptr_t addr, size_t len)
{
    struct uffdio_writeprotect wp = {.range = {addr, len}, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    return uffd >= 0 && ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : -1;
}

int pc__uffd_unregister(uintptr_t addr, size_t len)
{
    /* also clears the write-protection of the range */
    struct uffdio_range r = {addr, len};
    return uffd >= 0 && ioctl(uffd, UFFDIO_UNREGISTER, &r) == 0 ? 0 : -1;
}

int pc__uffd_register(uintptr_t addr, size_t len)
{
    if (uffd < 0) return -1;
    struct uffdio_register reg = {.range = {addr, len}, .mode = UFFDIO_REGISTER_MODE_WP};
    if (ioctl(uffd, UFFDIO_REGISTER, &reg)) return -1;
    if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT)) || pc__uffd_protect(addr, len)) {
        pc__uffd_unregister(addr, len);
        return -1;
    }
    return 0;
}

int pc__uffd_scan(uintptr_t addr, size_t len, int protect, void (*fn)(void *ctx, uintptr_t a, size_t n), void *ctx)
{
    if (pagemap < 0) return -1;
    /* A few dozen regions per call: the kernel allocates a bounce buffer of this size on
     * every call (512 entries cost ~0.5 us more than 32); more regions take another call. */
    struct pc_page_region vec[32];
    struct pc_pm_scan_arg arg = {
        .size = sizeof arg,
        .flags = PC_PM_SCAN_CHECK_WPASYNC | (protect ? PC_PM_SCAN_WP_MATCHING : 0),
        .start = addr,
        .end = addr + len,
        .vec = (uintptr_t)vec,
        .vec_len = sizeof vec / sizeof vec[0],
        .category_mask = PC_PAGE_IS_WRITTEN,
        .return_mask = PC_PAGE_IS_WRITTEN,
    };
    for (;;) {
        long n = ioctl(pagemap, PC_PAGEMAP_SCAN, &arg);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        for (long i = 0; i < n; i++) fn(ctx, (uintptr_t)vec[i].start, (size_t)(vec[i].end - vec[i].start));
        if (arg.walk_end >= arg.end) return 0;
        if (arg.walk_end <= arg.start) return -1; /* no progress: never loop forever */
        arg.start = arg.walk_end;
    }
}
