/* wtrack_uffd.h: write tracking with userfaultfd asynchronous write-protection and the
 * PAGEMAP_SCAN ioctl (Linux >= 6.7), internal to the shim (shim.c). See wtrack_uffd.c. */
#ifndef PC_WTRACK_UFFD_H
#define PC_WTRACK_UFFD_H

#include <stddef.h>
#include <stdint.h>

/* Opens the userfaultfd and /proc/self/pagemap once; 0 when the kernel offers everything the
 * backend needs, -1 otherwise (then every call below fails and the caller uses mprotect). */
int pc__uffd_open(void);
/* Closes both descriptors (pc_shim_reset, a forked child). Registrations made through the
 * descriptor end with it; call pc__uffd_unregister first to end them explicitly. */
void pc__uffd_close(void);
/* One of its descriptors moved (ownfd.c: a dup2 of the program aimed at its number). */
void pc__uffd_moved(int from, int to);
/* Registers [addr, addr+len) (page-aligned) for asynchronous write-protection and
 * write-protects every page of it: from then on the first store to a page is noted by the
 * kernel (no signal, no message) and the page becomes writable. 0, or -1 with nothing left
 * registered (the caller falls back to mprotect for that mapping). */
int pc__uffd_register(uintptr_t addr, size_t len);
int pc__uffd_unregister(uintptr_t addr, size_t len);
/* Write-protects [addr, addr+len) again (a page leaves the shim's open set). */
int pc__uffd_protect(uintptr_t addr, size_t len);
/* Calls fn for each run of pages of [addr, addr+len) stored to since they were last
 * write-protected, in address order; with protect, the same call write-protects each page it
 * reports (a later store is reported by the next scan). 0, or -1 if the scan failed (the
 * caller must then assume any page may have been written, protected or not). */
int pc__uffd_scan(uintptr_t addr, size_t len, int protect, void (*fn)(void *ctx, uintptr_t a, size_t n),
                  void *ctx);

#endif
