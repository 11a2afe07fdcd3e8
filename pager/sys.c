/* sys.c: the pager's system calls and allocations, each behind a libfiu fault point
 * (compiled in only with -DFIU_ENABLE) so tests can fail any of them on demand. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#ifdef FIU_ENABLE
#include <fiu.h>
/* A fault point fails the call with the errno given as failinfo (EIO if none). */
#define FAULT(name, dflt) \
  (fiu_fail(name) ? (errno = fiu_failinfo() ? (int)(intptr_t)fiu_failinfo() : (dflt), 1) : 0)
#else
#define FAULT(name, dflt) 0
#endif

int mp__errno_to_code(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return MP_ENOSPC;
    case ENOMEM:
      return MP_ENOMEM;
    case EACCES:
    case EPERM:
    case EROFS:
      return MP_EACCES;
    case ENOENT:
      return MP_ENOENT;
    case EEXIST:
      return MP_EEXIST;
    case EWOULDBLOCK:
      return MP_EBUSY;
    default:
      return MP_EIO;
  }
}

/* A failed msync is not a sync that did nothing: the kernel has marked the pages it was
 * writing clean (the fsync-gate; faults/README.md), so their content stays visible but no
 * later msync, nor the kernel's own writeback, writes it. Every failure the pager reports
 * leaves the handle usable (only a failed commit point poisons it, commit.c), and the call
 * that failed may be retried: a protected commit whose staged copy was dropped would flip its
 * selector onto a copy that never reached the disk, and a retried mp_sync_page would report
 * data durable that is not. So the range is dirtied again at once: a store into each system
 * page, which the writeback left write-protected, makes the kernel count the whole page dirty
 * (whatever the stored bytes), and whatever msync comes next writes it. No crash state is
 * new: every such page held that content unsynced before the failed call, and could have been
 * written back at any moment. The store is a compare-and-swap of a byte with itself, so that
 * a store another thread makes into a regular page at the same moment is never undone (and
 * compilers do not turn it into a load, as they may an atomic add of 0). Pages that are not
 * in memory hold nothing dirty (mincore): a failed mp_sync does not read the file in. */
static void redirty(const mp_pager *p, uintptr_t start, uintptr_t end) {
  unsigned char in_core[256];
  const size_t sp = p->sys_page;
  while (start < end) {
    size_t n = (size_t)((end - start) / sp);
    if (n > sizeof in_core) n = sizeof in_core;
    /* if mincore cannot tell, every page is dirtied: more writing, never less */
    bool all = mincore((void *)start, n * sp, in_core) != 0;
    for (size_t k = 0; k < n; k++) {
      if (!all && !(in_core[k] & 1)) continue;
      uint8_t *b = (uint8_t *)(start + k * sp);
      uint8_t v = __atomic_load_n(b, __ATOMIC_RELAXED);
      __atomic_compare_exchange_n(b, &v, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    start += n * sp;
  }
}

int mp__sys_msync(mp_pager *p, uint64_t first_page, uint64_t pages) {
  /* msync wants whole system pages; with pager pages smaller than that the
   * neighbours are synced too, which only makes more data durable. */
  if (p->preview) return MP_OK; /* a preview's changes stay in its private mapping */
  uintptr_t start = (uintptr_t)(p->map + first_page * p->ps);
  uintptr_t end = start + pages * p->ps;
  uintptr_t mask = (uintptr_t)p->sys_page - 1;
  start &= ~mask;
  end = (end + mask) & ~mask;
  if (FAULT("pager/msync", EIO) || msync((void *)start, end - start, MS_SYNC) != 0) {
    int rc = errno == ENOSPC ? MP_ENOSPC : MP_EIO;
    if (!p->rdonly) redirty(p, start, end);
    return rc;
  }
  return MP_OK;
}

int mp__sys_extend(mp_pager *p, uint64_t new_size) {
  if (new_size <= p->file_size) return MP_OK;
  /* Reserve the blocks now: with a sparse file a full disk would surface later as
   * SIGBUS on a write through the mapping instead of as an error here. MP_SPARSE asked for
   * exactly that trade (mappedpages.h), and grows as the reference does. */
  int rc;
  if (p->sparse) {
    rc = FAULT("pager/ftruncate", ENOSPC) ? -1 : ftruncate(p->fd, (off_t)new_size);
  } else if (FAULT("pager/fallocate", ENOSPC)) {
    rc = -1;
  } else {
    rc = fallocate(p->fd, 0, (off_t)p->file_size, (off_t)(new_size - p->file_size));
    if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
      rc = FAULT("pager/ftruncate", ENOSPC) ? -1 : ftruncate(p->fd, (off_t)new_size);
  }
  if (rc != 0) {
    int err = errno;
    struct stat st; /* a failed extension may still have moved the end */
    if (fstat(p->fd, &st) == 0 && (uint64_t)st.st_size > p->file_size) p->file_size = (uint64_t)st.st_size;
    return mp__errno_to_code(err);
  }
  p->file_size = new_size;
  return MP_OK;
}

int mp__sys_back(mp_pager *p, const uint64_t *ids, size_t n) {
  /* MP_SPARSE: a page the pager is about to write into may be a hole of the file, which a
   * full disk could not back at the store (SIGBUS in the library). Its blocks are reserved
   * first, inside the file's size, so that a full disk is an error of the call instead. */
  for (size_t i = 0; p->sparse && i < n; i++) {
    if (FAULT("pager/fallocate", ENOSPC) || fallocate(p->fd, 0, (off_t)(ids[i] * p->ps), (off_t)p->ps) != 0) {
      /* a file system that cannot reserve: as mp__sys_extend's growth by ftruncate there */
      if (errno == EOPNOTSUPP || errno == ENOSYS) return MP_OK;
      return mp__errno_to_code(errno);
    }
  }
  return MP_OK;
}

int mp__sys_remap(mp_pager *p, uint64_t new_pages) {
  if (new_pages <= p->map_pages) return MP_OK;
  if (FAULT("pager/mremap", ENOMEM)) return MP_ENOMEM;
  void *m = mremap(p->map, p->map_pages * p->ps, new_pages * p->ps, MREMAP_MAYMOVE);
  if (m == MAP_FAILED) {
    /* mremap refuses a range that is no longer one mapping (a debugger or an
     * interposer may have changed the protection of part of it). A new shared
     * mapping of the file shows the same pages, dirty ones included. */
    if (FAULT("pager/mmap", ENOMEM)) return MP_ENOMEM;
    m = mmap(NULL, new_pages * p->ps, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (m == MAP_FAILED) return MP_ENOMEM;
    munmap(p->map, p->map_pages * p->ps);
  }
  p->map = m;
  p->map_pages = new_pages;
  return MP_OK;
}

long mp__sys_pagemap_scan(int pagemap, unsigned long request, void *arg) {
  if (FAULT("pager/pagemap_scan", ENOTTY)) return -1; /* as a kernel before 6.7 answers */
  return ioctl(pagemap, request, arg);
}

void *mp__malloc(size_t n) { return FAULT("pager/malloc", ENOMEM) ? NULL : malloc(n ? n : 1); }
void *mp__calloc(size_t n, size_t size) { return FAULT("pager/malloc", ENOMEM) ? NULL : calloc(n ? n : 1, size ? size : 1); }
void *mp__realloc(void *ptr, size_t n) { return FAULT("pager/malloc", ENOMEM) ? NULL : realloc(ptr, n ? n : 1); }
