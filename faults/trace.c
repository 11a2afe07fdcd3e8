/* trace.c: the powercut trace: a writer that serialises model operations as the shim sees
 * them, a reader that indexes steps and markers, and a replay cursor deriving crash images. */
#include "powercut.h"
#include "handover.h"
#include "zeroruns.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Format, version 8 (documented in faults/README.md). All integers little-endian.
 *   header: "PCTRACE\0" u32 version u32 sector_size
 *   records: u8 type, then
 *     1 FILE     u32 id, u32 name_len, name, u64 size, content[size]   (content is durable)
 *     2 WRITE    u32 id, u8 from_mmap, u64 off, u64 len, data[len]      (volatile change)
 *     3 TRUNC    u32 id, u64 size                                       (volatile change)
 *     4 STEP     u64 step, u8 call, u32 file, i32 errno, u64 off, u64 len  (a step begins)
 *     5 SYNC     u32 id, u64 off, u64 len      (range + size durable when the step ends)
 *     6 LOSE     u32 id, u64 off, u64 len      (dirty data of the range lost, fsync-gate)
 *     7 MARK     u8 kind, u64 op, u32 label_len, label
 *     8 STEPEND  (the step's effects are all recorded; its syncs apply here)
 *     9 END      (the process ended normally)
 *    10 FAIL     u8 tear, u64 tear_n, u64 tear_seed  (the step's call failed: its syncs end
 *                torn so, and their ranges' dirty data is lost; pc_model_step_fail)
 *    11 SIGBUS   u32 id, u64 off, u64 step, u8 at_fault  (a store into a page of a hole while
 *                the disk was full: the shim killed the process, as the kernel would; the
 *                last record; version 2)
 *    12 CREATED  u32 id   (the process created the file: its name is volatile; version 2)
 *    13 DIRSYNC  u32 id   (in a step: the file's name is durable when the step ends; version 2)
 *    14 OUTPUT   u8 stream (1 stdout, 2 stderr), u64 bytes written to it so far (before the next
 *                STEP; POWERCUT_OUTPUT=1; version 3)
 *    15 RENAME   u8 flags, u32 from_len, from, u32 to_len, to   (pc_model_rename; version 4)
 *    16 UNLINK   u8 flags, u32 len, name                        (pc_model_unlink; version 4)
 *    17 LINK     u8 flags, u32 from_len, from, u32 to_len, to   (pc_model_link; version 4)
 *    18 DIRSYNCP u32 len, dir  (in a step: the changed names in dir are durable when the step
 *                ends; pc_model_dir_sync_path; version 4)
 *    19 NAMESET  u32 vol, u32 dur, u64 key, u32 len, name  (a name's whole state: only in the
 *                model the shim hands over across an exec, never in a trace file; version 4)
 *    20 JOURNAL  (before any FILE: names follow the ext4 profile, pc_model_set_journal; version 5)
 *    21 JCOMMIT  u32 id, u8 datasync  (in a step: an fsync/fdatasync of file id, which commits
 *                the journal when the file changed since the last commit; version 5)
 *    22 JOP      u64 key, u32 file, u32 flush, u8 created, u8 n, n x (u32 target, u32 len, name)
 *                (a journal operation not committed: only in the exec hand-over; version 5)
 *    23 DIRTY    u32 id, u64 off, u64 len  (a volatile change: the range written with the
 *                bytes it holds, zeros past the volatile size, as a WRITE of them would; the shim
 *                records a page stored to again as DIRTY of the page then WRITEs of the
 *                chunks that changed, which leaves the model as a WRITE of the whole page
 *                would, for a tenth of the bytes; version 6)
 *    24 MKDIR    u8 flags, u32 len, path   (pc_model_mkdir; version 7)
 *    25 RMDIR    u8 flags, u32 len, path   (pc_model_rmdir; version 7)
 *    26 SYMLINK  u32 id   (file id, just added, is a symbolic link: pc_model_set_symlink;
 *                version 7)
 *    27 FILEZ    u32 id, u32 name_len, name, u64 size, then runs: u64 off, u64 len, data[len],
 *                ended by off UINT64_MAX and len 0: a FILE whose content is zeros but for the
 *                runs, in order of offset, each within size (version 8; the writer's only
 *                form of FILE since: a file tracked from its first open is often mostly
 *                zeros, and the runs spare both sides copying them)
 * A step's records lie between its STEP and STEPEND; records outside steps are volatile
 * changes between steps (mostly pages written through mappings, found at the next step).
 * A trace may stop anywhere (the process died): the reader treats a truncated last record as
 * the end, and a step without STEPEND as in flight.
 *
 * pc_tw_new buffers 64 KiB and writes: the cheapest, but a process killed before its last
 * flush loses that tail. (1 MiB once: a short-lived process, such as each of R7's recorded
 * follow-ups, faulted in up to 256 fresh pages of buffer it used once, where a page fault
 * costs more than the write itself on some virtual machines; one write per 64 KiB is lost in
 * the noise of pc-bench's record rows.) pc_tw_new_mapped (a regular file opened read-write) maps the file
 * and appends by copying into the mapping: a process that crashes or is killed leaves every
 * record it wrote in the page cache, hence in the file; new pages must be zeroed by the
 * kernel first, which costs about half as much again on tmpfs. The file grows in chunks, so
 * it may end with zeros; type 0 reads as the end of the trace; pc_tw_flush and pc_tw_finish
 * trim it. Both use raw system calls so that, inside the LD_PRELOAD shim, they never re-enter
 * the interposed functions.
 */

enum { R_FILE = 1, R_WRITE, R_TRUNC, R_STEP, R_SYNC, R_LOSE, R_MARK, R_STEPEND, R_END, R_FAIL, R_SIGBUS,
       R_CREATED, R_DIRSYNC, R_OUTPUT, R_RENAME, R_UNLINK, R_LINK, R_DIRSYNCP, R_NAMESET, R_JOURNAL,
       R_JCOMMIT, R_JOP, R_DIRTY, R_MKDIR, R_RMDIR, R_SYMLINK, R_FILEZ };
/* Version 2 added SIGBUS, CREATED and DIRSYNC, version 3 OUTPUT, version 4 RENAME, UNLINK,
 * LINK, DIRSYNCP and NAMESET, version 5 JOURNAL, JCOMMIT and JOP, version 6 DIRTY, version 7
 * MKDIR, RMDIR and SYMLINK, version 8 FILEZ; an older trace is a newer one without them. */
#define PC_TRACE_VERSION 8u

/* Internal to libpowercut (model.c, the shim): the DIRTY record's writer and its effect. */
int pc__tw_dirty(pc_tw *w, uint32_t id, uint64_t off, uint64_t len);
int pc__model_dirty(pc_model *m, uint32_t id, uint64_t off, uint64_t len);
#define TW_BUFSZ (64u << 10)
#define TW_CHUNK ((size_t)4 << 20)

struct pc_tw {
    int fd;
    uint8_t *buf; /* buffer, or the mapping of the file */
    size_t n, cap; /* bytes used, bytes allocated or mapped */
    int err;
    uint64_t total;
    int mapped;
    size_t filelen; /* mapped: the file's current length (>= n) */
};

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* Faults a new chunk in with one call: a page fault per 4 KiB of trace costs more than the
 * copy itself on some virtual machines. Best effort (Linux 5.14+). */
static void populate(uint8_t *p, size_t n)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095;
    syscall(SYS_madvise, (void *)a, n + ((uintptr_t)p - a), MADV_POPULATE_WRITE);
}

/* Mapped mode: makes the file (and, when needed, the mapping) hold `need` bytes. */
static int map_grow(pc_tw *w, size_t need)
{
    size_t nf = w->filelen > TW_CHUNK ? w->filelen : TW_CHUNK;
    while (nf < need) nf *= 2;
    if (nf > w->cap) {
        void *p = (void *)syscall(SYS_mremap, w->buf, w->cap, nf, MREMAP_MAYMOVE);
        if (p == MAP_FAILED) return PC_EIO;
        w->buf = p;
        w->cap = nf;
    }
    if (syscall(SYS_ftruncate, w->fd, (long)nf)) return PC_EIO;
    populate(w->buf + w->filelen, nf - w->filelen);
    w->filelen = nf;
    return PC_OK;
}

static int raw_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        long r = syscall(SYS_write, fd, b, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return PC_EIO;
        }
        b += r;
        n -= (size_t)r;
    }
    return PC_OK;
}

int pc_tw_flush(pc_tw *w)
{
    if (!w) return PC_EINVAL;
    if (w->err) return w->err;
    if (w->mapped) { /* trim the chunk's unused tail */
        if (w->filelen != w->n && syscall(SYS_ftruncate, w->fd, (long)w->n)) return w->err = PC_EIO;
        w->filelen = w->n;
        return PC_OK;
    }
    if (w->fd < 0 || !w->n) return PC_OK;
    int rc = raw_write_all(w->fd, w->buf, w->n);
    w->n = 0;
    if (rc) w->err = rc;
    return rc;
}

static int tw_put(pc_tw *w, const void *p, size_t n)
{
    if (w->err) return w->err;
    w->total += n;
    if (w->mapped) {
        if (w->n + n > w->filelen) {
            int rc = map_grow(w, w->n + n);
            if (rc) return w->err = rc;
        }
    } else if (w->fd >= 0) {
        if (w->n + n > w->cap) {
            int rc = pc_tw_flush(w);
            if (rc) return rc;
            if (n > w->cap) {
                rc = raw_write_all(w->fd, p, n);
                if (rc) w->err = rc;
                return rc;
            }
        }
    } else if (w->n + n > w->cap) {
        size_t nc = w->cap;
        while (nc < w->n + n) nc *= 2;
        uint8_t *q = realloc(w->buf, nc);
        if (!q) return w->err = PC_ENOMEM;
        w->buf = q;
        w->cap = nc;
    }
    memcpy(w->buf + w->n, p, n);
    w->n += n;
    return PC_OK;
}

/* Records are assembled in a small local buffer and appended with one copy. */
typedef struct {
    uint8_t b[64];
    size_t n;
} rec;
static void r8(rec *r, uint8_t v) { r->b[r->n++] = v; }
static void r32(rec *r, uint32_t v)
{
    for (int i = 0; i < 4; i++) r->b[r->n++] = (uint8_t)(v >> (8 * i));
}
static void r64(rec *r, uint64_t v)
{
    for (int i = 0; i < 8; i++) r->b[r->n++] = (uint8_t)(v >> (8 * i));
}
static int rput(pc_tw *w, const rec *r) { return tw_put(w, r->b, r->n); }

static int put8(pc_tw *w, uint8_t v) { return tw_put(w, &v, 1); }
static int put32(pc_tw *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    return tw_put(w, b, 4);
}
static int put64(pc_tw *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return tw_put(w, b, 8);
}

static int tw_new(int fd, int want_map, uint32_t sector_size, pc_tw **out)
{
    if (!out || !sector_size) return PC_EINVAL;
    pc_tw *w = calloc(1, sizeof *w);
    if (!w) return PC_ENOMEM;
    w->fd = fd;
    if (want_map && fd >= 0 && syscall(SYS_ftruncate, fd, (long)TW_CHUNK) == 0) {
        void *p = (void *)syscall(SYS_mmap, NULL, TW_CHUNK, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0L);
        if (p != MAP_FAILED) {
            w->mapped = 1;
            w->buf = p;
            w->cap = w->filelen = TW_CHUNK;
            populate(w->buf, TW_CHUNK);
        } else if (syscall(SYS_ftruncate, fd, 0L)) {
            free(w);
            return PC_EIO;
        }
    }
    if (!w->mapped) {
        w->cap = fd >= 0 ? TW_BUFSZ : 4096;
        w->buf = malloc(w->cap);
        if (!w->buf) {
            free(w);
            return PC_ENOMEM;
        }
    }
    int rc = tw_put(w, "PCTRACE\0", 8);
    if (!rc) rc = put32(w, PC_TRACE_VERSION);
    if (!rc) rc = put32(w, sector_size);
    if (rc) {
        pc_tw_free(w);
        return rc;
    }
    *out = w;
    return PC_OK;
}

int pc_tw_new(int fd, uint32_t sector_size, pc_tw **out)
{
    return tw_new(fd, 0, sector_size, out);
}

int pc_tw_new_mapped(int fd, uint32_t sector_size, pc_tw **out)
{
    return tw_new(fd, 1, sector_size, out);
}

int pc_tw_finish(pc_tw *w)
{
    if (!w) return PC_EINVAL;
    int rc = put8(w, R_END);
    return rc ? rc : pc_tw_flush(w);
}

/* Frees without touching the file (a forked child abandons its copy this way). */
void pc_tw_free(pc_tw *w)
{
    if (!w) return;
    if (w->mapped) syscall(SYS_munmap, w->buf, w->cap);
    else free(w->buf);
    free(w);
}

int pc_tw_buffer(const pc_tw *w, const uint8_t **buf, size_t *len)
{
    if (!w || !buf || !len || w->fd >= 0) return PC_EINVAL;
    *buf = w->buf;
    *len = w->n;
    return PC_OK;
}

uint64_t pc__tw_total(const pc_tw *w);
uint64_t pc__tw_total(const pc_tw *w) { return w ? w->total : 0; }

/* The shim's trace descriptor moved (ownfd.c); the writer keeps writing through the new one. */
void pc__tw_set_fd(pc_tw *w, int fd)
{
    if (w) w->fd = fd;
}

/* A writer continuing a trace another process image flushed (the shim's exec hand-over): no
 * header, records appended at the end. Buffered, the descriptor's offset is that end already
 * (the descriptor crossed the exec); mapped, the file's length is (pc_tw_flush trimmed it). */
int pc__tw_resume(int fd, int mapped, uint64_t total, pc_tw **out)
{
    if (fd < 0 || !out) return PC_EINVAL;
    pc_tw *w = calloc(1, sizeof *w);
    if (!w) return PC_ENOMEM;
    w->fd = fd;
    w->total = total;
    if (mapped) {
        struct stat st;
        if (fstat(fd, &st)) {
            free(w);
            return PC_EIO;
        }
        size_t len = (size_t)st.st_size, cap = TW_CHUNK;
        while (cap < len) cap *= 2;
        void *p = (void *)syscall(SYS_mmap, NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0L);
        if (p == MAP_FAILED) {
            free(w);
            return PC_EIO;
        }
        w->mapped = 1;
        w->buf = p;
        w->cap = cap;
        w->n = w->filelen = len;
    } else {
        w->cap = TW_BUFSZ;
        if (!(w->buf = malloc(w->cap))) {
            free(w);
            return PC_ENOMEM;
        }
    }
    *out = w;
    return PC_OK;
}

#define CHK(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

int pc__tw_file_begin(pc_tw *w, uint32_t id, const char *name, uint64_t size)
{
    if (!w || !name) return PC_EINVAL;
    uint32_t nl = (uint32_t)strlen(name);
    CHK(put8(w, R_FILEZ)); CHK(put32(w, id)); CHK(put32(w, nl)); CHK(tw_put(w, name, nl));
    return put64(w, size);
}

int pc__tw_file_run(pc_tw *w, uint64_t off, const void *data, uint64_t len)
{
    if (!w || !data || !len) return PC_EINVAL;
    CHK(put64(w, off)); CHK(put64(w, len));
    return tw_put(w, data, len);
}

int pc__tw_file_end(pc_tw *w)
{
    if (!w) return PC_EINVAL;
    CHK(put64(w, UINT64_MAX));
    return put64(w, 0);
}

int pc_tw_file(pc_tw *w, uint32_t id, const char *name, const void *content, uint64_t size)
{
    if (!w || !name || (size && !content)) return PC_EINVAL;
    CHK(pc__tw_file_begin(w, id, name, size));
    for (uint64_t o = 0, e; (o = pc__next_data(content, size, o, &e)) < size; o = e)
        CHK(pc__tw_file_run(w, o, (const uint8_t *)content + o, e - o));
    return pc__tw_file_end(w);
}

int pc_tw_write(pc_tw *w, uint32_t id, uint64_t off, const void *data, uint64_t len, int from_mmap)
{
    if (!w || (len && !data)) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_WRITE); r32(&r, id); r8(&r, from_mmap ? 1 : 0); r64(&r, off); r64(&r, len);
    CHK(rput(w, &r));
    return len ? tw_put(w, data, len) : PC_OK;
}

int pc__tw_dirty(pc_tw *w, uint32_t id, uint64_t off, uint64_t len)
{
    if (!w) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_DIRTY); r32(&r, id); r64(&r, off); r64(&r, len);
    return rput(w, &r);
}

int pc_tw_truncate(pc_tw *w, uint32_t id, uint64_t size)
{
    if (!w) return PC_EINVAL;
    CHK(put8(w, R_TRUNC)); CHK(put32(w, id));
    return put64(w, size);
}

int pc_tw_step(pc_tw *w, uint64_t step, int call, uint32_t id, int err, uint64_t off, uint64_t len)
{
    if (!w) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_STEP); r64(&r, step); r8(&r, (uint8_t)call); r32(&r, id); r32(&r, (uint32_t)err);
    r64(&r, off); r64(&r, len);
    return rput(w, &r);
}

int pc_tw_step_end(pc_tw *w) { return w ? put8(w, R_STEPEND) : PC_EINVAL; }

static int range_rec(pc_tw *w, int type, uint32_t id, uint64_t off, uint64_t len)
{
    if (!w) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, (uint8_t)type); r32(&r, id); r64(&r, off); r64(&r, len);
    return rput(w, &r);
}
int pc_tw_sync(pc_tw *w, uint32_t id, uint64_t off, uint64_t len) { return range_rec(w, R_SYNC, id, off, len); }
int pc_tw_lose(pc_tw *w, uint32_t id, uint64_t off, uint64_t len) { return range_rec(w, R_LOSE, id, off, len); }

int pc_tw_step_fail(pc_tw *w, const pc_crash *tear)
{
    if (!w || !tear) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_FAIL); r8(&r, (uint8_t)tear->tear); r64(&r, tear->tear_n); r64(&r, tear->tear_seed);
    return rput(w, &r);
}

static int name_rec(pc_tw *w, int type, uint32_t id)
{
    if (!w) return PC_EINVAL;
    CHK(put8(w, (uint8_t)type));
    return put32(w, id);
}
int pc_tw_created(pc_tw *w, uint32_t id) { return name_rec(w, R_CREATED, id); }

int pc_tw_output(pc_tw *w, int stream, uint64_t bytes)
{
    if (!w || (stream != 1 && stream != 2)) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_OUTPUT); r8(&r, (uint8_t)stream); r64(&r, bytes);
    return rput(w, &r);
}
int pc_tw_dir_sync(pc_tw *w, uint32_t id) { return name_rec(w, R_DIRSYNC, id); }

static int put_str(pc_tw *w, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    CHK(put32(w, n));
    return n ? tw_put(w, s, n) : PC_OK;
}

static int ns_rec(pc_tw *w, int type, const char *a, const char *b, int flags)
{
    int one = type == R_UNLINK || type == R_MKDIR || type == R_RMDIR; /* a single name */
    if (!w || !a || (!one && !b)) return PC_EINVAL;
    CHK(put8(w, (uint8_t)type));
    CHK(put8(w, (uint8_t)flags));
    CHK(put_str(w, a));
    return one ? PC_OK : put_str(w, b);
}
int pc_tw_rename(pc_tw *w, const char *from, const char *to, int flags) { return ns_rec(w, R_RENAME, from, to, flags); }
int pc_tw_unlink(pc_tw *w, const char *name, int flags) { return ns_rec(w, R_UNLINK, name, NULL, flags); }
int pc_tw_link(pc_tw *w, const char *from, const char *to, int flags) { return ns_rec(w, R_LINK, from, to, flags); }
int pc_tw_mkdir(pc_tw *w, const char *path, int flags) { return ns_rec(w, R_MKDIR, path, NULL, flags); }
int pc_tw_rmdir(pc_tw *w, const char *path, int flags) { return ns_rec(w, R_RMDIR, path, NULL, flags); }
int pc_tw_symlink(pc_tw *w, uint32_t id)
{
    if (!w) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_SYMLINK); r32(&r, id);
    return rput(w, &r);
}
int pc__tw_name_set(pc_tw *w, const char *path, uint32_t vol, uint32_t dur, uint64_t key)
{
    if (!w || !path) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_NAMESET); r32(&r, vol); r32(&r, dur); r64(&r, key);
    CHK(rput(w, &r));
    return put_str(w, path);
}

int pc_tw_journal(pc_tw *w) { return w ? put8(w, R_JOURNAL) : PC_EINVAL; }

int pc_tw_journal_commit(pc_tw *w, uint32_t id, int datasync)
{
    if (!w) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_JCOMMIT); r32(&r, id); r8(&r, datasync ? 1 : 0);
    return rput(w, &r);
}

int pc__tw_jop(pc_tw *w, uint64_t key, uint32_t file, uint32_t flush, int created, uint32_t nch,
               const char *const path[], const uint32_t target[])
{
    if (!w || nch > 2) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_JOP); r64(&r, key); r32(&r, file); r32(&r, flush); r8(&r, created ? 1 : 0); r8(&r, (uint8_t)nch);
    CHK(rput(w, &r));
    for (uint32_t c = 0; c < nch; c++) {
        CHK(put32(w, target[c]));
        CHK(put_str(w, path[c]));
    }
    return PC_OK;
}

int pc_tw_dir_sync_path(pc_tw *w, const char *dir)
{
    if (!w || !dir) return PC_EINVAL;
    CHK(put8(w, R_DIRSYNCP));
    return put_str(w, dir);
}

int pc_tw_mark(pc_tw *w, int kind, uint64_t op, const char *label)
{
    if (!w) return PC_EINVAL;
    uint32_t ll = label ? (uint32_t)strlen(label) : 0;
    CHK(put8(w, R_MARK)); CHK(put8(w, (uint8_t)kind)); CHK(put64(w, op)); CHK(put32(w, ll));
    return ll ? tw_put(w, label, ll) : PC_OK;
}

int pc_tw_sigbus(pc_tw *w, uint32_t id, uint64_t off, uint64_t step, int at_fault)
{
    if (!w) return PC_EINVAL;
    rec r = {.n = 0};
    r8(&r, R_SIGBUS); r32(&r, id); r64(&r, off); r64(&r, step); r8(&r, at_fault ? 1 : 0);
    return rput(w, &r);
}

/* ---- reader ---- */
typedef struct {
    uint64_t after_step;
    const char *text; /* in labels */
} note_ent;

typedef struct {
    pc_step_info info;
    size_t pos; /* offset of the STEP record */
} step_ent;

struct pc_trace {
    uint8_t *buf;
    size_t len;
    uint32_t sector;
    size_t body; /* offset of the first record */
    step_ent *steps;
    size_t nsteps, scap;
    char **labels;
    size_t nlabels, lcap;
    note_ent *notes;
    size_t nnotes, ncap;
    int has_sigbus;
    pc_sigbus_info sigbus;
    char **names;
    uint32_t nfiles;
    size_t fcap;
    int complete;
};

typedef struct {
    const uint8_t *p;
    size_t n, i;
    int bad;
} rd;

static const uint8_t *take(rd *r, uint64_t n)
{
    if (r->bad || n > r->n - r->i) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->i;
    r->i += n;
    return p;
}
static uint8_t g8(rd *r) { const uint8_t *p = take(r, 1); return p ? p[0] : 0; }
static uint32_t g32(rd *r)
{
    const uint8_t *p = take(r, 4);
    uint32_t v = 0;
    for (int i = 0; p && i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t g64(rd *r)
{
    const uint8_t *p = take(r, 8);
    uint64_t v = 0;
    for (int i = 0; p && i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A FILEZ record's runs, after its size: each within the size, in order of offset, until the
 * end (offset UINT64_MAX, length 0). Filled into file id of m when m is given; PC_EFORMAT for a run out of
 * place, r->bad set for a record cut short (the trace's end). */
static int filez_runs(rd *r, uint64_t size, pc_model *m, uint32_t id)
{
    for (uint64_t next = 0;;) {
        uint64_t off = g64(r), len = g64(r);
        if (r->bad) return PC_OK;
        if (!len && off == UINT64_MAX) return PC_OK;
        if (!len) { /* zeros: the unused tail of a mapped trace whose writer died in the record */
            r->bad = 1;
            return PC_OK;
        }
        if (off < next || off > size || len > size - off) return PC_EFORMAT;
        const uint8_t *d = take(r, len);
        if (r->bad) return PC_OK;
        if (m) CHK(pc__model_fill(m, id, off, d, len));
        next = off + len;
    }
}

static int grow_arr(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return PC_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return PC_ENOMEM;
    *p = q;
    *cap = nc;
    return PC_OK;
}

/* One pass: validates framing, indexes steps with their innermost open marker. */
static int index_trace(pc_trace *t)
{
    rd r = {t->buf, t->len, 0, 0};
    const uint8_t *magic = take(&r, 8);
    if (!magic || memcmp(magic, "PCTRACE\0", 8)) return PC_EFORMAT;
    uint32_t ver = g32(&r);
    t->sector = g32(&r);
    if (r.bad || ver < 1 || ver > PC_TRACE_VERSION || !t->sector) return PC_EFORMAT;
    t->body = r.i;
    uint64_t ops[64];
    const char *labs[64];
    int depth = 0;
    uint64_t out = 0, err = 0; /* the program's output so far (OUTPUT records) */
    while (r.i < r.n) {
        size_t at = r.i;
        uint8_t type = g8(&r);
        switch (type) {
        case R_FILE: {
            uint32_t id = g32(&r), nl = g32(&r);
            const uint8_t *nm = take(&r, nl);
            uint64_t sz = g64(&r);
            take(&r, sz);
            if (r.bad) break;
            if (id != t->nfiles) return PC_EFORMAT;
            if (grow_arr((void **)&t->names, &t->fcap, t->nfiles + 1, sizeof(char *))) return PC_ENOMEM;
            if (!(t->names[t->nfiles] = strndup((const char *)nm, nl))) return PC_ENOMEM;
            t->nfiles++;
            break;
        }
        case R_FILEZ: {
            uint32_t id = g32(&r), nl = g32(&r);
            const uint8_t *nm = take(&r, nl);
            uint64_t sz = g64(&r);
            if (r.bad) break;
            int runs = filez_runs(&r, sz, NULL, 0);
            if (r.bad) break;
            if (runs != PC_OK || id != t->nfiles) return PC_EFORMAT;
            if (grow_arr((void **)&t->names, &t->fcap, t->nfiles + 1, sizeof(char *))) return PC_ENOMEM;
            if (!(t->names[t->nfiles] = strndup((const char *)nm, nl))) return PC_ENOMEM;
            t->nfiles++;
            break;
        }
        case R_WRITE: { g32(&r); g8(&r); g64(&r); uint64_t l = g64(&r); take(&r, l); break; }
        case R_TRUNC: g32(&r); g64(&r); break;
        case R_STEP: {
            step_ent e;
            memset(&e, 0, sizeof e);
            e.pos = at;
            e.info.step = g64(&r);
            e.info.call = g8(&r);
            e.info.file = g32(&r);
            e.info.err = (int)g32(&r);
            e.info.off = g64(&r);
            e.info.len = g64(&r);
            if (r.bad) break;
            if (e.info.step != t->nsteps + 1) return PC_EFORMAT;
            e.info.op = depth ? ops[depth - 1] : 0;
            e.info.out_bytes = out;
            e.info.err_bytes = err;
            e.info.label = depth ? labs[depth - 1] : "";
            if (grow_arr((void **)&t->steps, &t->scap, t->nsteps + 1, sizeof e)) return PC_ENOMEM;
            t->steps[t->nsteps++] = e;
            break;
        }
        case R_SYNC: case R_LOSE: case R_DIRTY: g32(&r); g64(&r); g64(&r); break;
        case R_FAIL: g8(&r); g64(&r); g64(&r); break;
        case R_CREATED: case R_DIRSYNC: case R_SYMLINK: g32(&r); break;
        case R_RENAME: case R_LINK: g8(&r); take(&r, g32(&r)); take(&r, g32(&r)); break;
        case R_UNLINK: case R_MKDIR: case R_RMDIR: g8(&r); take(&r, g32(&r)); break;
        case R_DIRSYNCP: take(&r, g32(&r)); break;
        case R_NAMESET: g32(&r); g32(&r); g64(&r); take(&r, g32(&r)); break;
        case R_JOURNAL: break;
        case R_JCOMMIT: g32(&r); g8(&r); break;
        case R_JOP: {
            g64(&r); g32(&r); g32(&r); g8(&r);
            uint8_t n = g8(&r);
            for (uint8_t c = 0; c < n && !r.bad; c++) {
                g32(&r);
                take(&r, g32(&r));
            }
            break;
        }
        case R_OUTPUT: {
            uint8_t stream = g8(&r);
            uint64_t bytes = g64(&r);
            if (r.bad) break;
            if (stream == 1) out = bytes;
            else if (stream == 2) err = bytes;
            else return PC_EFORMAT;
            break;
        }
        case R_MARK: {
            uint8_t kind = g8(&r);
            uint64_t op = g64(&r);
            uint32_t ll = g32(&r);
            const uint8_t *lb = take(&r, ll);
            if (r.bad) break;
            if (kind == PC_MARK_NOTE) {
                if (grow_arr((void **)&t->labels, &t->lcap, t->nlabels + 1, sizeof(char *)) ||
                    grow_arr((void **)&t->notes, &t->ncap, t->nnotes + 1, sizeof *t->notes))
                    return PC_ENOMEM;
                char *s = strndup((const char *)lb, ll);
                if (!s) return PC_ENOMEM;
                t->labels[t->nlabels++] = s;
                t->notes[t->nnotes++] = (note_ent){t->nsteps, s};
            } else if (kind == PC_MARK_BEGIN && depth < 64) {
                if (grow_arr((void **)&t->labels, &t->lcap, t->nlabels + 1, sizeof(char *))) return PC_ENOMEM;
                char *s = strndup((const char *)lb, ll);
                if (!s) return PC_ENOMEM;
                t->labels[t->nlabels++] = s;
                ops[depth] = op;
                labs[depth++] = s;
            } else if (kind == PC_MARK_END && depth) {
                /* end the innermost operation with this id (or the innermost one) */
                int k = depth - 1;
                while (k > 0 && ops[k] != op) k--;
                if (ops[k] != op) k = depth - 1;
                for (int j = k; j + 1 < depth; j++) { ops[j] = ops[j + 1]; labs[j] = labs[j + 1]; }
                depth--;
            }
            break;
        }
        case R_SIGBUS: {
            pc_sigbus_info b;
            b.file = g32(&r);
            b.off = g64(&r);
            b.step = g64(&r);
            b.at_fault = g8(&r);
            if (r.bad) break;
            b.op = depth ? ops[depth - 1] : 0;
            b.label = depth ? labs[depth - 1] : "";
            t->sigbus = b;
            t->has_sigbus = 1;
            break;
        }
        case R_STEPEND: break;
        case R_END: t->complete = 1; break;
        case 0: /* the zeroed tail of a mapped trace whose writer died */
            t->len = at;
            return PC_OK;
        default: return PC_EFORMAT;
        }
        if (r.bad) { /* truncated last record: the process died while writing it */
            t->len = at;
            break;
        }
        if (type == R_END) {
            t->len = r.i;
            break;
        }
    }
    return PC_OK;
}

int pc_trace_from_memory(const void *buf, size_t len, pc_trace **out)
{
    if (!buf || !out) return PC_EINVAL;
    pc_trace *t = calloc(1, sizeof *t);
    if (!t) return PC_ENOMEM;
    t->buf = malloc(len ? len : 1);
    if (!t->buf) {
        free(t);
        return PC_ENOMEM;
    }
    memcpy(t->buf, buf, len);
    t->len = len;
    int rc = index_trace(t);
    if (rc) {
        pc_trace_free(t);
        return rc;
    }
    *out = t;
    return PC_OK;
}

int pc_trace_open(const char *path, pc_trace **out)
{
    if (!path || !out) return PC_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? PC_ENOENT : PC_EIO;
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return PC_EIO;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *b = malloc(len ? len : 1);
    if (!b) {
        close(fd);
        return PC_ENOMEM;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, b + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    int rc = pc_trace_from_memory(b, got, out);
    free(b);
    return rc;
}

void pc_trace_free(pc_trace *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nlabels; i++) free(t->labels[i]);
    for (uint32_t i = 0; i < t->nfiles; i++) free(t->names[i]);
    free(t->labels);
    free(t->notes);
    free(t->names);
    free(t->steps);
    free(t->buf);
    free(t);
}

int pc_trace_sector_size(const pc_trace *t, uint32_t *out)
{
    if (!t || !out) return PC_EINVAL;
    *out = t->sector;
    return PC_OK;
}
int pc_trace_step_count(const pc_trace *t, uint64_t *out)
{
    if (!t || !out) return PC_EINVAL;
    *out = t->nsteps;
    return PC_OK;
}
int pc_trace_file_count(const pc_trace *t, uint32_t *out)
{
    if (!t || !out) return PC_EINVAL;
    *out = t->nfiles;
    return PC_OK;
}
int pc_trace_file_name(const pc_trace *t, uint32_t id, const char **name)
{
    if (!t || !name) return PC_EINVAL;
    if (id >= t->nfiles) return PC_ENOENT;
    *name = t->names[id];
    return PC_OK;
}
int pc_trace_complete(const pc_trace *t, int *out)
{
    if (!t || !out) return PC_EINVAL;
    *out = t->complete;
    return PC_OK;
}
int pc_trace_step_info(pc_trace *t, uint64_t step, pc_step_info *out)
{
    if (!t || !out) return PC_EINVAL;
    if (step < 1 || step > t->nsteps) return PC_ERANGE;
    *out = t->steps[step - 1].info;
    return PC_OK;
}

int pc_trace_sigbus(const pc_trace *t, pc_sigbus_info *out)
{
    if (!t || !out) return PC_EINVAL;
    if (!t->has_sigbus) return PC_ENOENT;
    *out = t->sigbus;
    return PC_OK;
}

int pc_trace_note_count(const pc_trace *t, uint64_t *out)
{
    if (!t || !out) return PC_EINVAL;
    *out = t->nnotes;
    return PC_OK;
}

int pc_trace_note(const pc_trace *t, uint64_t i, uint64_t *after_step, const char **text)
{
    if (!t || !after_step || !text) return PC_EINVAL;
    if (i >= t->nnotes) return PC_ERANGE;
    *after_step = t->notes[i].after_step;
    *text = t->notes[i].text;
    return PC_OK;
}

/* ---- replay ---- */
struct pc_replay {
    const pc_trace *t;
    pc_model *m;
    size_t pos;
    int in_step;
};

int pc_replay_new(const pc_trace *t, pc_replay **out)
{
    if (!t || !out) return PC_EINVAL;
    pc_replay *r = calloc(1, sizeof *r);
    if (!r) return PC_ENOMEM;
    int rc = pc_model_new(t->sector, &r->m);
    if (rc) {
        free(r);
        return rc;
    }
    r->t = t;
    r->pos = t->body;
    *out = r;
    return PC_OK;
}

void pc_replay_free(pc_replay *r)
{
    if (!r) return;
    pc_model_free(r->m);
    free(r);
}

pc_model *pc__replay_take(pc_replay *r)
{
    pc_model *m = r ? r->m : NULL;
    if (r) r->m = NULL;
    return m;
}

int pc_replay_model(pc_replay *r, pc_model **m)
{
    if (!r || !m) return PC_EINVAL;
    *m = r->m;
    return PC_OK;
}

/* Applies one record; *ev tells the caller about step boundaries. */
enum { EV_NONE, EV_STEP, EV_STEPEND, EV_END };
static int apply(pc_replay *rp, int *ev, uint64_t *step)
{
    rd r = {rp->t->buf, rp->t->len, rp->pos, 0};
    int rc = PC_OK;
    *ev = EV_NONE;
    if (r.i >= r.n) {
        *ev = EV_END;
        return PC_OK;
    }
    uint8_t type = g8(&r);
    switch (type) {
    case R_FILE: {
        g32(&r);
        uint32_t nl = g32(&r);
        const uint8_t *nm = take(&r, nl);
        uint64_t sz = g64(&r);
        const uint8_t *c = take(&r, sz);
        if (r.bad) return PC_EFORMAT;
        char *name = strndup((const char *)nm, nl);
        if (!name) return PC_ENOMEM;
        rc = pc_model_add_file(rp->m, name, c, sz, NULL);
        free(name);
        break;
    }
    case R_FILEZ: {
        g32(&r);
        uint32_t nl = g32(&r), id;
        const uint8_t *nm = take(&r, nl);
        uint64_t sz = g64(&r);
        if (r.bad) return PC_EFORMAT;
        char *name = strndup((const char *)nm, nl);
        if (!name) return PC_ENOMEM;
        rc = pc__model_add_zeroed(rp->m, name, sz, &id);
        free(name);
        if (rc == PC_OK) rc = filez_runs(&r, sz, rp->m, id);
        if (rc == PC_OK && r.bad) rc = PC_EFORMAT;
        break;
    }
    case R_WRITE: {
        uint32_t id = g32(&r);
        g8(&r);
        uint64_t off = g64(&r), l = g64(&r);
        const uint8_t *d = take(&r, l);
        if (r.bad) return PC_EFORMAT;
        rc = pc_model_write(rp->m, id, off, d, l);
        break;
    }
    case R_TRUNC: {
        uint32_t id = g32(&r);
        uint64_t sz = g64(&r);
        if (r.bad) return PC_EFORMAT;
        rc = pc_model_truncate(rp->m, id, sz);
        break;
    }
    case R_DIRTY: {
        uint32_t id = g32(&r);
        uint64_t off = g64(&r), l = g64(&r);
        if (r.bad) return PC_EFORMAT;
        rc = pc__model_dirty(rp->m, id, off, l);
        if (rc == PC_EINVAL) rc = PC_EFORMAT; /* a range that wraps */
        break;
    }
    case R_STEP:
        g64(&r); g8(&r); g32(&r); g32(&r); g64(&r); g64(&r);
        if (r.bad) return PC_EFORMAT;
        rc = pc_model_step_begin(rp->m, step);
        rp->in_step = 1;
        *ev = EV_STEP;
        break;
    case R_SYNC: case R_LOSE: {
        uint32_t id = g32(&r);
        uint64_t off = g64(&r), l = g64(&r);
        if (r.bad) return PC_EFORMAT;
        rc = type == R_SYNC ? pc_model_sync(rp->m, id, off, l) : pc_model_lose(rp->m, id, off, l);
        break;
    }
    case R_FAIL: {
        pc_crash c;
        memset(&c, 0, sizeof c);
        c.tear = (pc_tear_kind)g8(&r);
        c.tear_n = g64(&r);
        c.tear_seed = g64(&r);
        if (r.bad) return PC_EFORMAT;
        rc = pc_model_step_fail(rp->m, &c);
        break;
    }
    case R_CREATED: case R_DIRSYNC: case R_SYMLINK: {
        uint32_t id = g32(&r);
        if (r.bad) return PC_EFORMAT;
        rc = type == R_CREATED   ? pc_model_created(rp->m, id)
             : type == R_DIRSYNC ? pc_model_dir_sync(rp->m, id)
                                 : pc_model_set_symlink(rp->m, id);
        break;
    }
    case R_RENAME: case R_LINK: case R_UNLINK: case R_DIRSYNCP: case R_MKDIR: case R_RMDIR: {
        int flags = type == R_DIRSYNCP ? 0 : g8(&r);
        uint32_t an = g32(&r);
        const uint8_t *a = take(&r, an);
        uint32_t bn = type == R_RENAME || type == R_LINK ? g32(&r) : 0;
        const uint8_t *b = bn ? take(&r, bn) : NULL;
        if (r.bad) return PC_EFORMAT;
        char *sa = strndup((const char *)a, an), *sb = strndup(b ? (const char *)b : "", bn);
        if (!sa || !sb) rc = PC_ENOMEM;
        else if (type == R_RENAME) rc = pc_model_rename(rp->m, sa, sb, flags);
        else if (type == R_LINK) rc = pc_model_link(rp->m, sa, sb, flags);
        else if (type == R_UNLINK) rc = pc_model_unlink(rp->m, sa, flags);
        else if (type == R_MKDIR) rc = pc_model_mkdir(rp->m, sa, flags);
        else if (type == R_RMDIR) rc = pc_model_rmdir(rp->m, sa, flags);
        else rc = pc_model_dir_sync_path(rp->m, sa);
        free(sa);
        free(sb);
        break;
    }
    case R_NAMESET: {
        uint32_t vol = g32(&r), dur = g32(&r);
        uint64_t key = g64(&r);
        uint32_t n = g32(&r);
        const uint8_t *p = take(&r, n);
        if (r.bad) return PC_EFORMAT;
        char *path = strndup((const char *)p, n);
        rc = path ? pc__model_name_set(rp->m, path, vol, dur, key) : PC_ENOMEM;
        free(path);
        break;
    }
    case R_JOURNAL: rc = pc_model_set_journal(rp->m); break;
    case R_JCOMMIT: {
        uint32_t id = g32(&r);
        uint8_t ds = g8(&r);
        if (r.bad) return PC_EFORMAT;
        rc = pc_model_journal_commit(rp->m, id, ds);
        break;
    }
    case R_JOP: {
        uint64_t key = g64(&r);
        uint32_t file = g32(&r), flush = g32(&r);
        uint8_t created = g8(&r), n = g8(&r);
        if (r.bad || n > 2) return PC_EFORMAT;
        char *path[2] = {NULL, NULL};
        uint32_t target[2] = {0, 0};
        for (uint8_t c = 0; c < n && !rc; c++) {
            target[c] = g32(&r);
            uint32_t len = g32(&r);
            const uint8_t *p = take(&r, len);
            if (r.bad) rc = PC_EFORMAT;
            else if (!(path[c] = strndup((const char *)p, len))) rc = PC_ENOMEM;
        }
        if (!rc) rc = pc__model_jop(rp->m, key, file, flush, created, n, (const char *const *)path, target);
        free(path[0]);
        free(path[1]);
        break;
    }
    case R_MARK: { g8(&r); g64(&r); uint32_t ll = g32(&r); take(&r, ll); break; }
    case R_SIGBUS: g32(&r); g64(&r); g64(&r); g8(&r); break; /* the store never happened */
    case R_OUTPUT: g8(&r); g64(&r); break;
    case R_STEPEND: *ev = EV_STEPEND; break;
    case R_END: *ev = EV_END; break;
    default: return PC_EFORMAT;
    }
    if (r.bad) return PC_EFORMAT;
    rp->pos = r.i;
    return rc;
}

int pc_replay_next(pc_replay *rp, uint64_t *step_out)
{
    if (!rp || !step_out) return PC_EINVAL;
    int rc, ev;
    uint64_t step = 0;
    if (rp->in_step) {
        if ((rc = pc_model_step_end(rp->m))) return rc;
        rp->in_step = 0;
    }
    *step_out = 0;
    for (;;) { /* to the next STEP */
        if ((rc = apply(rp, &ev, &step))) return rc;
        if (ev == EV_END) return PC_OK;
        if (ev == EV_STEP) break;
    }
    for (;;) { /* through its effects */
        if ((rc = apply(rp, &ev, &step))) return rc;
        if (ev == EV_END || ev == EV_STEPEND) break;
        if (ev == EV_STEP) return PC_EFORMAT;
    }
    *step_out = step;
    return PC_OK;
}

/* A replay stopped at `step` (its effects pending), for the one-shot queries below. */
static int replay_to(const pc_trace *t, uint64_t step, pc_replay **out)
{
    if (step < 1 || step > t->nsteps) return PC_ERANGE;
    int rc = pc_replay_new(t, out);
    if (rc) return rc;
    uint64_t k = 0;
    do {
        if ((rc = pc_replay_next(*out, &k))) break;
    } while (k && k < step);
    if (!rc && k != step) rc = PC_ERANGE;
    if (rc) {
        pc_replay_free(*out);
        *out = NULL;
    }
    return rc;
}

int pc_trace_image_exists(const pc_trace *t, uint32_t id, uint64_t step, const pc_crash *crash, int *exists)
{
    if (!t || !crash || !exists) return PC_EINVAL;
    pc_replay *r;
    int rc = replay_to(t, step, &r);
    if (rc) return rc;
    rc = pc_model_image_exists(r->m, id, crash, exists);
    pc_replay_free(r);
    return rc;
}

int pc_trace_image(const pc_trace *t, uint32_t id, uint64_t step, const pc_crash *crash,
                   uint8_t **buf_out, uint64_t *len_out)
{
    if (!t || !crash || !buf_out || !len_out) return PC_EINVAL;
    pc_replay *r;
    int rc = replay_to(t, step, &r);
    if (rc) return rc;
    rc = pc_model_image(r->m, id, crash, buf_out, len_out);
    pc_replay_free(r);
    return rc;
}
