/* handover.c: the owner's state across its own exec: saved to a memfd just before the real
 * call, read back by the new image's shim at its start, which then carries on the same run. */
#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Why: exec replaces the program but not the process. The file keeps its page cache, the
 * kernel keeps every descriptor without FD_CLOEXEC, and a power cut after the exec must still
 * lose what the old image wrote and never synced. So the run goes on in the new image: its
 * steps number on, its trace continues the same file, its model is the old one.
 *
 * Protocol (shim.c's exec wrappers, with the shim's lock held from the first point on):
 *   1. the stores made through mappings are recorded (harvest: the exec unmaps them all), the
 *      trace is flushed (its end is then the file's end, or the descriptor's offset);
 *   2. the state goes to a memfd: step count, sector size, tracked files (identity, path,
 *      volatile size, private read descriptor), tracked descriptors the exec keeps, the trace
 *      descriptor, a half-read marker line, and the live model as trace records
 *      (pc__model_dump: durable content, volatile content, dirty sectors);
 *   3. FD_CLOEXEC is cleared on the trace and read descriptors, and the new environment names
 *      the memfd (POWERCUT_HANDOVER) and the owner (POWERCUT_OWNER, the same pid);
 *   4. the real exec. If it fails, FD_CLOEXEC is set again, the memfd closed, the lock
 *      released: the old image goes on as if nothing happened (nothing else changed).
 *   5. the new image's shim, at its start, reads the memfd, closes it, unsets the variable
 *      (its own children must not take it), and continues: claimed, step n+1 next, the trace
 *      appended to, the model rebuilt by replaying its records. A mode that cannot continue
 *      (a model is needed and none was kept, a trace is wanted and none was kept or the other
 *      way round, another sector size) stops the new image with exit status 2 and a message.
 * The memfd is native-endian: both images run on the same machine.
 *
 * The baton (POWERCUT_RUN: one run, several processes one after the other, as a shell script
 * runs its commands). The page cache outlives a process, so what one process wrote and never
 * synced is still volatile for the next one, and a power cut after it ended can still lose it.
 * So when the owner ends (exit, _exit, after the exit step and the foreign-change check):
 *   1. its stores are recorded and the trace finished (END: a run that stops here is whole);
 *   2. the same state goes to TRACE.baton (pc__ho_save_file: TRACE.baton.tmp, renamed), each
 *      file with the name it has then (readlink of the shim's descriptor; none: gone from the
 *      namespace, retired) and the baseline of the foreign-change check, but no descriptors:
 *      the process's are closed with it;
 *   3. TRACE.owner is removed: the run has no owner, and its state is on the disk.
 * The next process that would own the files (claim: an open for writing, a sync) creates
 * TRACE.owner (O_EXCL: exactly one process gets it), finds TRACE.baton, reads and removes it,
 * cuts the END off the trace and appends to it, opens each file again by its name (the same
 * inode, or the run stops: replaced behind the shim's back), compares each with the baseline
 * (changed: the run stops, exit 97), and goes on at the next step number with the model. A
 * process that would own while TRACE.owner names a live process is refused (shim.c,
 * refuse_in_run): the processes of one run take turns, never overlap. An owner that blocks
 * waiting for a child lends the baton the same way (steps 1-3), and takes it back when the
 * wait returns (steps 4-5 in the same process: its own descriptors and mappings kept, the
 * rest from the baton); its child, which may start before the wait, waits for the lend. A
 * child forked without exec does the same at its first change of a file (shim.c, fchild_take):
 * steps 4-5, its own descriptors and mappings kept as the owner back from its wait keeps its.
 */

#define MAGIC "PCHANDO2"

typedef struct {
    uint8_t *b;
    size_t n, cap;
    int err;
} buf;

static void put(buf *o, const void *p, size_t n)
{
    if (o->err) return;
    if (o->n + n > o->cap) {
        size_t nc = o->cap ? o->cap : 4096;
        while (nc < o->n + n) nc *= 2;
        uint8_t *q = realloc(o->b, nc);
        if (!q) {
            o->err = 1;
            return;
        }
        o->b = q;
        o->cap = nc;
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
#define PUT(o, v) put((o), &(v), sizeof(v))

static void put_str(buf *o, const char *s)
{
    uint32_t l = s ? (uint32_t)strlen(s) : 0;
    PUT(o, l);
    if (l) put(o, s, l);
}

/* The whole state in o (o->err: out of memory). */
static void encode(const pc_handover *h, buf *o)
{
    put(o, MAGIC, 8);
    PUT(o, h->sector); PUT(o, h->step); PUT(o, h->trace_fd); PUT(o, h->trace_mapped);
    PUT(o, h->trace_total); PUT(o, h->nfiles); PUT(o, h->nfds); PUT(o, h->markn);
    put(o, h->markbuf, h->markn);
    for (uint32_t i = 0; i < h->nfiles; i++) {
        const pc_ho_file *f = &h->files[i];
        PUT(o, f->dev); PUT(o, f->ino); PUT(o, f->size); PUT(o, f->id); PUT(o, f->rfd); PUT(o, f->name_new); PUT(o, f->symlink);
        put_str(o, f->path);
        put_str(o, f->where);
        PUT(o, f->fc_sec); PUT(o, f->fc_nsec); PUT(o, f->fc_size); PUT(o, f->fc_ok);
    }
    for (uint32_t i = 0; i < h->nfds; i++) {
        PUT(o, h->fds[i].fd); PUT(o, h->fds[i].file); PUT(o, h->fds[i].flags);
    }
    PUT(o, h->model_len);
    if (h->model_len) put(o, h->model, h->model_len);
    PUT(o, h->nknown);
    for (uint32_t i = 0; i < h->nknown; i++) put_str(o, h->known[i]);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    for (size_t done = 0; done < n;) {
        long r = syscall(SYS_write, fd, p + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}

int pc__ho_save(const pc_handover *h)
{
    buf o = {0};
    encode(h, &o);
    if (o.err) {
        free(o.b);
        errno = ENOMEM;
        return -1;
    }
    int fd = (int)syscall(SYS_memfd_create, "powercut-handover", 0);
    if (fd >= 0 && write_all(fd, o.b, o.n)) {
        int e = errno;
        syscall(SYS_close, fd);
        errno = e;
        fd = -1;
    }
    free(o.b);
    return fd;
}

/* Raw calls: the shim interposes open, write and rename, and this runs inside it. */
int pc__ho_save_file(const pc_handover *h, const char *path)
{
    buf o = {0};
    encode(h, &o);
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (o.err || !tmp) {
        free(o.b);
        free(tmp);
        errno = ENOMEM;
        return -1;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    int rc = -1, fd = (int)syscall(SYS_openat, AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        rc = write_all(fd, o.b, o.n);
        int e = errno;
        syscall(SYS_close, fd);
        if (!rc) rc = syscall(SYS_renameat, AT_FDCWD, tmp, AT_FDCWD, path) ? -1 : 0;
        else errno = e;
    }
    free(o.b);
    free(tmp);
    return rc;
}

typedef struct {
    const uint8_t *p;
    size_t n, i;
    int bad;
} rd;

static void get(rd *r, void *out, size_t n)
{
    if (r->bad || n > r->n - r->i) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p + r->i, n);
    r->i += n;
}
#define GET(r, v) get((r), &(v), sizeof(v))

/* A string put_str wrote, malloc'ed; NULL when malformed or out of memory. */
static char *get_str(rd *r, size_t len)
{
    uint32_t l = 0;
    GET(r, l);
    char *s;
    if (r->bad || l > len || !(s = calloc(1, (size_t)l + 1))) return NULL;
    get(r, s, l);
    return s;
}

int pc__ho_load(int fd, pc_handover *h)
{
    memset(h, 0, sizeof *h);
    h->trace_fd = -1;
    struct stat st;
    uint8_t *b = NULL;
    int ok = 0;
    if (fstat(fd, &st) || !(b = malloc(st.st_size ? (size_t)st.st_size : 1))) goto out;
    size_t len = (size_t)st.st_size;
    for (size_t got = 0; got < len;) {
        ssize_t r = pread(fd, b + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) goto out;
        got += (size_t)r;
    }
    rd r = {b, len, 0, 0};
    char magic[8];
    get(&r, magic, 8);
    if (r.bad || memcmp(magic, MAGIC, 8)) goto out;
    GET(&r, h->sector); GET(&r, h->step); GET(&r, h->trace_fd); GET(&r, h->trace_mapped);
    GET(&r, h->trace_total); GET(&r, h->nfiles); GET(&r, h->nfds); GET(&r, h->markn);
    if (r.bad || h->markn > sizeof h->markbuf || h->nfiles > len || h->nfds > len) goto out;
    get(&r, h->markbuf, h->markn);
    h->files = calloc(h->nfiles ? h->nfiles : 1, sizeof *h->files);
    h->fds = calloc(h->nfds ? h->nfds : 1, sizeof *h->fds);
    if (!h->files || !h->fds) goto out;
    for (uint32_t i = 0; i < h->nfiles && !r.bad; i++) {
        pc_ho_file *f = &h->files[i];
        GET(&r, f->dev); GET(&r, f->ino); GET(&r, f->size); GET(&r, f->id); GET(&r, f->rfd); GET(&r, f->name_new); GET(&r, f->symlink);
        if (!(f->path = get_str(&r, len))) goto out;
        uint32_t wl = 0;
        GET(&r, wl);
        if (r.bad || wl > len) goto out;
        if (wl) {
            if (!(f->where = calloc(1, wl + 1))) goto out;
            get(&r, f->where, wl);
        }
        GET(&r, f->fc_sec); GET(&r, f->fc_nsec); GET(&r, f->fc_size); GET(&r, f->fc_ok);
    }
    for (uint32_t i = 0; i < h->nfds && !r.bad; i++) {
        GET(&r, h->fds[i].fd); GET(&r, h->fds[i].file); GET(&r, h->fds[i].flags);
    }
    GET(&r, h->model_len);
    if (r.bad || h->model_len > len) goto out;
    if (h->model_len) {
        if (!(h->model = malloc(h->model_len))) goto out;
        get(&r, h->model, h->model_len);
    }
    GET(&r, h->nknown);
    if (r.bad || h->nknown > len || !(h->known = calloc(h->nknown ? h->nknown : 1, sizeof *h->known))) goto out;
    for (uint32_t i = 0; i < h->nknown && !r.bad; i++)
        if (!(h->known[i] = get_str(&r, len))) goto out;
    ok = !r.bad;
out:
    free(b);
    syscall(SYS_close, fd);
    if (!ok) pc__ho_free(h);
    return ok ? 0 : -1;
}

void pc__ho_free(pc_handover *h)
{
    for (uint32_t i = 0; h->files && i < h->nfiles; i++) {
        free(h->files[i].path);
        free(h->files[i].where);
    }
    free(h->files);
    free(h->fds);
    free(h->model);
    for (uint32_t i = 0; h->known && i < h->nknown; i++) free(h->known[i]);
    free(h->known);
    h->known = NULL;
    h->nknown = 0;
    h->files = NULL;
    h->fds = NULL;
    h->model = NULL;
    h->nfiles = h->nfds = 0;
}

int pc__ho_model(const pc_handover *h, pc_model **out)
{
    if (!h->model) return PC_ESTATE;
    pc_trace *t;
    int rc = pc_trace_from_memory(h->model, h->model_len, &t);
    if (rc) return rc;
    pc_replay *r;
    if ((rc = pc_replay_new(t, &r))) {
        pc_trace_free(t);
        return rc;
    }
    uint64_t k = 0;
    do rc = pc_replay_next(r, &k); /* no steps: one call applies every record */
    while (!rc && k);
    if (!rc) *out = pc__replay_take(r);
    pc_replay_free(r);
    pc_trace_free(t);
    return rc;
}

static int has_name(char *const env[], const char *nameeq, size_t n)
{
    for (size_t i = 0; env && env[i]; i++)
        if (!strncmp(env[i], nameeq, n)) return 1;
    return 0;
}

char **pc__ho_env(char *const envp[], int fd, char *const keep[])
{
    size_t n = 0, nk = 0;
    while (envp && envp[n]) n++;
    while (keep && keep[nk]) nk++;
    char **env = calloc(n + nk + 3, sizeof *env);
    if (!env) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(envp[i], "POWERCUT_HANDOVER=", 18) && strncmp(envp[i], "POWERCUT_OWNER=", 15))
            env[j++] = envp[i];
    for (size_t i = 0; i < nk; i++) {
        const char *eq = strchr(keep[i], '=');
        if (!eq || !(!strncmp(keep[i], "POWERCUT_", 9) || !strncmp(keep[i], "LD_PRELOAD=", 11)) ||
            !strncmp(keep[i], "POWERCUT_HANDOVER=", 18) || !strncmp(keep[i], "POWERCUT_OWNER=", 15))
            continue;
        if (!has_name(envp, keep[i], (size_t)(eq - keep[i]) + 1) && (env[j] = strdup(keep[i]))) j++;
    }
    char a[64], b[64];
    snprintf(a, sizeof a, "POWERCUT_HANDOVER=%d", fd);
    snprintf(b, sizeof b, "POWERCUT_OWNER=%ld", (long)getpid());
    if (!(env[j] = strdup(a)) || !(env[j + 1] = strdup(b))) {
        free(env[j]);
        env[j] = NULL;
        pc__ho_env_free(env, envp);
        return NULL;
    }
    return env;
}

void pc__ho_env_free(char **env, char *const envp[])
{
    for (size_t i = 0; env && env[i]; i++) {
        int theirs = 0;
        for (size_t k = 0; envp && envp[k] && !theirs; k++) theirs = env[i] == envp[k];
        if (!theirs) free(env[i]);
    }
    free(env);
}
