/* memfile.h: fuzz_ops's file held in memory (memfile.c): the pager, the workload runner and the
 * checker reach it through the same calls as a real file, and none of them makes a system call. */
#ifndef FUZZ_MEMFILE_H
#define FUZZ_MEMFILE_H

#include <stddef.h>
#include <stdint.h>

#include "powercut.h"

/* Called with the crash image when a step cuts (the shim's image callback's shape), and the
 * model it was made from, with the cut step open (as pc_shim_cut_model gives the shim's): id is
 * the file's. Borrowed for the call. */
typedef void (*mf_image_fn)(const char *name, const uint8_t *img, uint64_t len, pc_model *m, uint32_t id);

/* From now on, calls on `path` (and the descriptors and mappings made of it) are served from
 * memory. The file holds `len` bytes of `bytes` (copied; its content durable, as a file
 * the shim first opens). With `crash` (NULL: none), a pc_model of sectors of `sector` bytes
 * follows the steps, and the step for which mf_cut_now() says yes makes the crash image. */
int mf_start(const char *path, const uint8_t *bytes, size_t len, uint32_t sector, const pc_crash *crash,
             mf_image_fn on_image);
/* What mf_start would make at its first use (the buffer's address space), made now: fuzz_ops
 * calls it before the fork server starts, so that no input takes the path that makes it. */
int mf_warm(void);
/* The file's content becomes `len` bytes of `bytes`, outside any step (the model, if any, is
 * dropped: this is the content of a new run or a check). */
int mf_put(const uint8_t *bytes, size_t len);
/* Back to the real file system (the in-memory content is kept for mf_start/mf_put). */
void mf_stop(void);
int mf_active(void);

/* The steps, called by fuzz_ops's counting wrappers once they counted the step (and did not
 * fail it); `cut` says the power is cut at this step. Each returns 1 when it served the call
 * (the result in *ret, errno set), 0 when the call is not the in-memory file's. */
int mf_msync(void *addr, size_t len, int flags, int cut, int *ret);
int mf_truncate(int fd, uint64_t size, int grow_only, int cut, int *ret);
int mf_fsync(int fd, int cut, int *ret);
int mf_pwrite(int fd, const void *buf, size_t n, uint64_t off, int cut, long *ret);
/* Whether fd is a descriptor of the in-memory file. */
int mf_fd(int fd);

#endif
