/* uffd_probe.h: whether this kernel offers what the shim's uffd write-tracking backend needs,
 * checked by the tests independently of the shim, so that a shim that silently falls back to
 * mprotect fails them instead of passing. */
#ifndef PC_TESTS_UFFD_PROBE_H
#define PC_TESTS_UFFD_PROBE_H

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int uffd_available(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0) return 0;
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    int ok = ioctl(fd, UFFDIO_API, &api) == 0 && (api.features & (1ULL << 15)); /* WP_ASYNC */
    close(fd);
    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    uint64_t arg[12] = {sizeof arg}; /* struct pm_scan_arg, empty range */
    ok = ok && pm >= 0 && ioctl(pm, _IOWR('f', 16, uint64_t[12]), arg) == 0; /* PAGEMAP_SCAN */
    if (pm >= 0) close(pm);
    return ok;
}

#endif
