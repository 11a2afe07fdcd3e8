/* memfile.c: fuzz_ops's file held in memory, so that an input costs the pager's work and the
 * model's, not the kernel's.
 *
 * Why: on a VM where a system call costs a few microseconds, two thirds of fuzz_ops's time went
 * to the kernel: about a hundred calls per input (the pager's open, fstat, mmap, msync of each
 * commit, fallocate, mremap, flock, close; the shim's fstat before and after each step; the
 * copies of the template and of the crash image into the file; the checker's opens), each on
 * tmpfs, where none of them makes anything durable. SQLite's crash VFS shows the way: the file
 * the fuzzed code works on is memory, and the model of what is durable is fed directly.
 *
 * How: fuzz_ops is linked with -Wl,--wrap for each call below (fuzz/fuzz_ops.wrap). While
 * mf_start is in force, a call naming the file's path, one of the descriptors handed out for it
 * or an address of its mappings is served here; everything else goes on to the real call (the
 * linked-in shim's, which passes it to libc). Nothing of the kernel is involved:
 *  - the file is one buffer reserved once (address space only): every MAP_SHARED mapping of it
 *    is that buffer, which a growing mremap keeps in place, so the pager's stores are the file's
 *    content as the page cache would hold it; bytes past the size are kept zero;
 *  - a MAP_PRIVATE mapping (the checker's preview) is a copy, which the preview's recovery
 *    writes; MADV_DONTNEED there brings the file's bytes back, as the kernel would;
 *  - descriptors are numbers no real descriptor has (MF_FD_BASE up): a call this file does not
 *    serve fails on them with EBADF instead of acting on another file; flock is modelled, so that
 *    a reader and a writer of the file exclude each other as on a real file;
 *  - the steps (msync, ftruncate, fallocate, fsync, pwrite: fuzz_ops.c counts them and calls
 *    mf_msync and friends) feed a pc_model as the shim's POWERCUT_MMAP=lazy mode does (shim.c:
 *    step_open, capture_range, capture_all, note_sync, note_truncate): an msync compares its range
 *    with the model's volatile copy and notes the differing sectors as writes, then syncs the
 *    range; a cut first compares the whole file, so that the model knows every store made before
 *    it, and the image is taken inside the step. The model, not this file, decides tears and
 *    early writeback, so the images are the shim's. A growth (fallocate, or ftruncate for a
 *    sparse file) is a size change; an fallocate inside the file (a sparse 0.3 or 0.2 file's
 *    pager reserving a page it is about to write into) changes nothing, as in the shim
 *    (note_fallocate). At the cut the image callback gets the model too, its step open, as
 *    pc_shim_cut_model gives the shim's (fuzz_ops asks it where a garbage sector fell).
 * What it does not model: a store past the end of the file (SIGBUS on a real mapping; zeros
 * here), a full disk, failing calls (fuzz_ops injects none; its runs fail steps past the
 * operation in flight before they reach here), the create (its directory fsync and names: runs
 * cut inside the create go through the shim and a real file). FUZZ_SELFCHECK=1 compares both
 * the images and the checker's verdicts with the real-file path through the shim, which stays
 * the ground truth; FUZZ_MEMORY=0 turns this file off.
 */
#include "memfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Address space for the file (untouched pages cost nothing): a mapping asked for beyond it fails
 * with ENOMEM, as a real one past the address space would. */
#define MF_RESERVE ((size_t)1 << 34)
#define MF_FD_BASE (1 << 28)
#define MF_FDS 64
#define MF_PRIVS 16
#define MF_PAGE 4096 /* msync rounds to system pages (the shim's S.page) */

typedef struct mf_desc {
  bool used;
  int lock; /* 0, LOCK_SH or LOCK_EX */
} mf_desc;

static struct {
  bool on;
  char path[256];
  uint8_t *buf;  /* MF_RESERVE bytes; the file is its first `size` */
  size_t size;
  size_t mapped; /* the longest MAP_SHARED mapping handed out since mf_put: what msync can reach */
  bool exists;
  mf_desc fd[MF_FDS];
  struct {
    uint8_t *addr;
    size_t len;
  } priv[MF_PRIVS];
  /* the model of the run, while it is live (until the cut) */
  pc_model *m;
  uint32_t id, sector;
  bool live;
  pc_crash crash;
  mf_image_fn on_image;
} M;

/* ---- the buffer ---- */

static int reserve(void) {
  if (M.buf) return 0;
  void *b = mmap(NULL, MF_RESERVE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (b == MAP_FAILED) return -1;
  M.buf = b;
  return 0;
}

/* The file becomes `size` bytes long: what a shrink drops reads as zeros if it grows again. */
static int resize(uint64_t size) {
  if (size > MF_RESERVE) return errno = EFBIG, -1;
  if (size < M.size) memset(M.buf + size, 0, M.size - size);
  M.size = (size_t)size;
  return 0;
}

static bool in_buf(const void *a) {
  return M.buf && (const uint8_t *)a >= M.buf && (const uint8_t *)a < M.buf + MF_RESERVE;
}

static int priv_index(const void *a) {
  for (int i = 0; i < MF_PRIVS; i++)
    if (M.priv[i].addr && (const uint8_t *)a >= M.priv[i].addr && (const uint8_t *)a < M.priv[i].addr + M.priv[i].len)
      return i;
  return -1;
}

/* The file's bytes [off, off+len) into dst, zeros past its end (a private mapping's view). */
static void file_bytes(uint8_t *dst, uint64_t off, size_t len) {
  size_t have = off < M.size ? M.size - (size_t)off : 0;
  if (have > len) have = len;
  if (have) memcpy(dst, M.buf + off, have);
  memset(dst + have, 0, len - have);
}

int mf_fd(int fd) { return fd >= MF_FD_BASE && fd < MF_FD_BASE + MF_FDS && M.fd[fd - MF_FD_BASE].used; }

static bool my_path(const char *path) { return M.on && path && strcmp(path, M.path) == 0; }

/* ---- the model ---- */

/* The model cannot fail but for memory; a run it no longer follows would give wrong images
 * without a word, so that ends the process, loudly (a fuzzer's crash). */
static void model(int rc, const char *what) {
  if (rc == PC_OK) return;
  fprintf(stderr, "fuzz_ops: the model of the file in memory failed (%s): %s\n", what, pc_strerror(rc));
  abort();
}

/* The runs of sectors of [fo, fend) where the file differs from the model's volatile copy,
 * noted as writes (the shim's diff_into_model, without a trace: sector-sized chunks). */
static void diff(uint64_t fo, uint64_t fend) {
  const uint8_t *vol;
  uint64_t vlen;
  model(pc_model_volatile(M.m, M.id, &vol, &vlen), "volatile");
  if (fend > vlen) fend = vlen;
  uint64_t chunk = M.sector >= 64 && 4096 % M.sector == 0 && fo % M.sector == 0 ? M.sector : 64;
  uint64_t run = UINT64_MAX;
  for (uint64_t o = fo; o < fend; o += chunk) {
    uint64_t n = fend - o < chunk ? fend - o : chunk;
    bool differs = memcmp(M.buf + o, vol + o, (size_t)n) != 0;
    if (differs && run == UINT64_MAX) run = o;
    if (!differs && run != UINT64_MAX) {
      model(pc_model_write(M.m, M.id, run, M.buf + run, o - run), "write");
      run = UINT64_MAX;
      model(pc_model_volatile(M.m, M.id, &vol, &vlen), "volatile"); /* the write may have moved it */
    }
  }
  if (run != UINT64_MAX) model(pc_model_write(M.m, M.id, run, M.buf + run, fend - run), "write");
}

/* A step opens: at a cut, every store made so far is the model's first (the shim's capture_all). */
static void step_begin(int cut) {
  if (cut) diff(0, UINT64_MAX);
  model(pc_model_step_begin(M.m, NULL), "step");
}

/* A step closes: at a cut, the image of the open step; then nothing more is modelled (the shim
 * stops at its cut, and the run goes on only to give the checker its model states). */
static void step_end(int cut) {
  if (cut) {
    uint8_t *img = NULL;
    uint64_t len = 0;
    model(pc_model_image(M.m, M.id, &M.crash, &img, &len), "image");
    if (M.on_image) M.on_image(M.path, img, len, M.m, M.id);
    free(img);
    M.live = false;
  }
  model(pc_model_step_end(M.m), "step");
}

/* ---- control ---- */

int mf_warm(void) { return reserve(); }

int mf_put(const uint8_t *bytes, size_t len) {
  if (reserve()) return -1;
  size_t old = M.size;
  if (len > MF_RESERVE) return errno = EFBIG, -1;
  memcpy(M.buf, bytes, len);
  /* what the last file held past this one's end: zeroed with no branch on it, so that an
   * input takes the same edges whatever ran before it (afl-fuzz's stability) */
  memset(M.buf + len, 0, (old - len) & -(size_t)(old > len));
  M.size = len;
  M.exists = true;
  M.live = false;
  M.mapped = 0; /* put between runs and checks, when no handle maps the file */
  return 0;
}

int mf_start(const char *path, const uint8_t *bytes, size_t len, uint32_t sector, const pc_crash *crash,
             mf_image_fn on_image) {
  if (strlen(path) >= sizeof M.path) return errno = ENAMETOOLONG, -1;
  strcpy(M.path, path);
  if (mf_put(bytes, len)) return -1;
  M.on = true;
  if (!crash) return 0;
  /* A new model for each run, as the shim makes one: a reset one would keep the sizes its
   * tables grew to, and later inputs would take other paths through it than the first. */
  pc_model_free(M.m);
  M.m = NULL;
  if (pc_model_new(sector, &M.m) != PC_OK || pc_model_add_file(M.m, path, bytes, len, &M.id) != PC_OK)
    return errno = ENOMEM, -1;
  M.sector = sector;
  M.crash = *crash;
  M.on_image = on_image;
  M.live = true;
  return 0;
}

void mf_stop(void) {
  M.on = false;
  M.live = false;
}

int mf_active(void) { return M.on; }

/* ---- the steps ---- */

int mf_msync(void *addr, size_t len, int flags, int cut, int *ret) {
  if (!in_buf(addr)) return 0;
  uint64_t lo = (uint64_t)((uint8_t *)addr - M.buf), hi = (lo + len + MF_PAGE - 1) & ~(uint64_t)(MF_PAGE - 1);
  if (hi > M.mapped) hi = M.mapped;
  if (M.live) {
    step_begin(cut);
    if ((flags & MS_SYNC) && lo < hi) {
      diff(lo & ~(uint64_t)63, hi);
      model(pc_model_sync(M.m, M.id, lo, hi - lo), "sync");
    }
    step_end(cut);
  }
  *ret = 0;
  return 1;
}

int mf_truncate(int fd, uint64_t size, int grow_only, int cut, int *ret) {
  if (!mf_fd(fd)) return 0;
  if (grow_only && size < M.size) size = M.size;
  if (size > MF_RESERVE) {
    *ret = -1;
    errno = EFBIG;
    return 1;
  }
  if (M.live) {
    step_begin(cut);
    model(pc_model_truncate(M.m, M.id, size), "truncate");
    step_end(cut);
  }
  resize(size);
  *ret = 0;
  return 1;
}

int mf_fsync(int fd, int cut, int *ret) {
  if (!mf_fd(fd)) return 0;
  if (M.live) {
    step_begin(cut);
    if (!cut) diff(0, UINT64_MAX); /* a cut compared it already */
    model(pc_model_sync(M.m, M.id, 0, UINT64_MAX), "sync");
    step_end(cut);
  }
  *ret = 0;
  return 1;
}

int mf_pwrite(int fd, const void *data, size_t n, uint64_t off, int cut, long *ret) {
  if (!mf_fd(fd)) return 0;
  if (off + n > MF_RESERVE) {
    *ret = -1;
    errno = EFBIG;
    return 1;
  }
  if (M.live) {
    step_begin(cut);
    model(pc_model_write(M.m, M.id, off, data, n), "write");
    step_end(cut);
  }
  memcpy(M.buf + off, data, n);
  if (off + n > M.size) M.size = (size_t)(off + n);
  *ret = (long)n;
  return 1;
}

/* ---- the calls that are not steps ---- */

int __real_open(const char *path, int flags, ...);
int __real_open64(const char *path, int flags, ...);
int __real_close(int fd);
int __real_fstat(int fd, struct stat *st);
int __real_fstat64(int fd, struct stat *st);
int __real_stat(const char *path, struct stat *st);
int __real_stat64(const char *path, struct stat *st);
int __real_access(const char *path, int mode);
int __real_unlink(const char *path);
ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __real_pread64(int fd, void *buf, size_t n, off_t off);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
void *__real_mremap(void *old, size_t old_len, size_t new_len, int flags, ...);
int __real_madvise(void *addr, size_t len, int advice);
int __real_flock(int fd, int op);

static int open_file(const char *path, int flags) {
  if (!M.exists && !(flags & O_CREAT)) return errno = ENOENT, -1;
  if (M.exists && (flags & O_CREAT) && (flags & O_EXCL)) return errno = EEXIST, -1;
  for (int i = 0; i < MF_FDS; i++) {
    if (M.fd[i].used) continue;
    M.fd[i] = (mf_desc){.used = true};
    if (!M.exists) M.size = 0;
    M.exists = true;
    if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) resize(0);
    (void)path;
    return MF_FD_BASE + i;
  }
  return errno = EMFILE, -1;
}

/* A preview's private copy is memory of this process, not a mapping of the file: its page
 * tables cannot say which pages its recovery wrote, so the pager is told it cannot read them and
 * counts every page (open.c, find_written), which is what a checker without a cache needs. */
static bool page_tables(const char *path) { return M.on && path && strcmp(path, "/proc/self/pagemap") == 0; }

static int mode_arg(int flags, va_list ap) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0; }

int __wrap_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int mode = mode_arg(flags, ap);
  va_end(ap);
  if (page_tables(path)) return errno = EACCES, -1;
  return my_path(path) ? open_file(path, flags) : __real_open(path, flags, mode);
}

int __wrap_open64(const char *path, int flags, ...);
int __wrap_open64(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int mode = mode_arg(flags, ap);
  va_end(ap);
  if (page_tables(path)) return errno = EACCES, -1;
  return my_path(path) ? open_file(path, flags) : __real_open64(path, flags, mode);
}

int __wrap_close(int fd);
int __wrap_close(int fd) {
  if (!mf_fd(fd)) return __real_close(fd);
  M.fd[fd - MF_FD_BASE].used = false;
  return 0;
}

static void fill_stat(struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_dev = 0x6d66;     /* "mf": no real device */
  st->st_ino = 0x6d656d66; /* "memf" */
  st->st_mode = S_IFREG | 0644;
  st->st_nlink = 1;
  st->st_size = (off_t)M.size;
  st->st_blksize = 4096;
  st->st_blocks = (blkcnt_t)((M.size + 511) / 512);
}

int __wrap_fstat(int fd, struct stat *st);
int __wrap_fstat(int fd, struct stat *st) {
  if (!mf_fd(fd)) return __real_fstat(fd, st);
  fill_stat(st);
  return 0;
}

int __wrap_fstat64(int fd, struct stat *st);
int __wrap_fstat64(int fd, struct stat *st) {
  if (!mf_fd(fd)) return __real_fstat64(fd, st);
  fill_stat(st);
  return 0;
}

int __wrap_stat(const char *path, struct stat *st);
int __wrap_stat(const char *path, struct stat *st) {
  if (!my_path(path)) return __real_stat(path, st);
  if (!M.exists) return errno = ENOENT, -1;
  fill_stat(st);
  return 0;
}

int __wrap_stat64(const char *path, struct stat *st);
int __wrap_stat64(const char *path, struct stat *st) {
  if (!my_path(path)) return __real_stat64(path, st);
  if (!M.exists) return errno = ENOENT, -1;
  fill_stat(st);
  return 0;
}

int __wrap_access(const char *path, int mode);
int __wrap_access(const char *path, int mode) {
  if (!my_path(path)) return __real_access(path, mode);
  return M.exists ? 0 : (errno = ENOENT, -1);
}

int __wrap_unlink(const char *path);
int __wrap_unlink(const char *path) {
  if (!my_path(path)) return __real_unlink(path);
  if (!M.exists) return errno = ENOENT, -1;
  resize(0);
  M.exists = false;
  return 0;
}

static ssize_t read_file(void *buf, size_t n, off_t off) {
  if (off < 0) return errno = EINVAL, -1;
  if ((uint64_t)off >= M.size) return 0;
  if (n > M.size - (size_t)off) n = M.size - (size_t)off;
  memcpy(buf, M.buf + off, n);
  return (ssize_t)n;
}

ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off) {
  return mf_fd(fd) ? read_file(buf, n, off) : __real_pread(fd, buf, n, off);
}

ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off) {
  return mf_fd(fd) ? read_file(buf, n, off) : __real_pread64(fd, buf, n, off);
}

static void *map_file(size_t len, int flags, off_t off) {
  if (off != 0 || !len) return errno = EINVAL, MAP_FAILED; /* the pager maps from 0 */
  if (flags & MAP_SHARED) {
    if (len > MF_RESERVE) return errno = ENOMEM, MAP_FAILED;
    if (len > M.mapped) M.mapped = len;
    return M.buf;
  }
  for (int i = 0; i < MF_PRIVS; i++) {
    if (M.priv[i].addr) continue;
    void *p = NULL;
    size_t rounded = (len + MF_PAGE - 1) & ~(size_t)(MF_PAGE - 1);
    if (posix_memalign(&p, MF_PAGE, rounded)) return errno = ENOMEM, MAP_FAILED;
    file_bytes(p, 0, rounded);
    M.priv[i].addr = p;
    M.priv[i].len = rounded;
    return p;
  }
  return errno = ENOMEM, MAP_FAILED;
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mf_fd(fd) && !addr ? map_file(len, flags, off) : __real_mmap(addr, len, prot, flags, fd, off);
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mf_fd(fd) && !addr ? map_file(len, flags, off) : __real_mmap64(addr, len, prot, flags, fd, off);
}

/* The shared buffer is never unmapped (other handles map it too); a private copy is freed. */
int __wrap_munmap(void *addr, size_t len);
int __wrap_munmap(void *addr, size_t len) {
  if (in_buf(addr)) return 0;
  int i = priv_index(addr);
  if (i < 0) return __real_munmap(addr, len);
  free(M.priv[i].addr);
  M.priv[i].addr = NULL;
  return 0;
}

void *__wrap_mremap(void *old, size_t old_len, size_t new_len, int flags, ...);
void *__wrap_mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
  if (in_buf(old)) {
    if (new_len > MF_RESERVE) return errno = ENOMEM, MAP_FAILED;
    if (new_len > M.mapped) M.mapped = new_len;
    return M.buf;
  }
  int i = priv_index(old);
  if (i >= 0) { /* a private copy grown: its new part shows the file */
    if (!(flags & MREMAP_MAYMOVE) && new_len > M.priv[i].len) return errno = ENOMEM, MAP_FAILED;
    size_t rounded = (new_len + MF_PAGE - 1) & ~(size_t)(MF_PAGE - 1);
    void *p = NULL;
    if (posix_memalign(&p, MF_PAGE, rounded)) return errno = ENOMEM, MAP_FAILED;
    size_t keep = M.priv[i].len < rounded ? M.priv[i].len : rounded;
    memcpy(p, M.priv[i].addr, keep);
    file_bytes((uint8_t *)p + keep, keep, rounded - keep);
    free(M.priv[i].addr);
    M.priv[i].addr = p;
    M.priv[i].len = rounded;
    return p;
  }
  void *fixed = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    fixed = va_arg(ap, void *);
    va_end(ap);
  }
  return __real_mremap(old, old_len, new_len, flags, fixed);
}

/* MADV_DONTNEED drops a private copy's pages: they show the file again. */
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice) {
  if (in_buf(addr)) return 0;
  int i = priv_index(addr);
  if (i < 0) return __real_madvise(addr, len, advice);
  if (advice == MADV_DONTNEED) {
    size_t from = (size_t)((uint8_t *)addr - M.priv[i].addr);
    if (len > M.priv[i].len - from) len = M.priv[i].len - from;
    file_bytes(addr, from, len);
  }
  return 0;
}

/* Every page of the file is in memory: residency here would depend on what earlier inputs
 * touched in the buffer, and the pager's paths with it (sys.c, redirty). */
int __real_mincore(void *addr, size_t len, unsigned char *vec);
int __wrap_mincore(void *addr, size_t len, unsigned char *vec);
int __wrap_mincore(void *addr, size_t len, unsigned char *vec) {
  if (!in_buf(addr)) return __real_mincore(addr, len, vec);
  memset(vec, 1, (len + MF_PAGE - 1) / MF_PAGE);
  return 0;
}

/* flock as the kernel does it for one open file description per descriptor: a shared lock
 * stands beside other shared ones, an exclusive one beside none. */
int __wrap_flock(int fd, int op);
int __wrap_flock(int fd, int op) {
  if (!mf_fd(fd)) return __real_flock(fd, op);
  mf_desc *d = &M.fd[fd - MF_FD_BASE];
  int want = op & ~LOCK_NB;
  if (want == LOCK_UN) {
    d->lock = 0;
    return 0;
  }
  if (want != LOCK_SH && want != LOCK_EX) return errno = EINVAL, -1;
  for (int i = 0; i < MF_FDS; i++) {
    const mf_desc *o = &M.fd[i];
    if (o == d || !o->used || !o->lock) continue;
    if (want == LOCK_EX || o->lock == LOCK_EX) return errno = EWOULDBLOCK, -1; /* never waits: one thread */
  }
  d->lock = want;
  return 0;
}
