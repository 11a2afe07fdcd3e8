/* shim.c: the LD_PRELOAD interposer: finds the calls that touch tracked files or their shared
 * mappings, numbers them as steps, feeds the model and the trace, and cuts power or fails calls. */

/* glibc renames pwrite and friends to their 64 variants under _FILE_OFFSET_BITS=64; this file
 * defines both names itself, so it must see the plain declarations (off_t is 64-bit on LP64). */
#undef _FILE_OFFSET_BITS
#define FIU_ENABLE 1 /* the shim's fault points are its product: on in every build */

#include "diskfull.h"
#include "handover.h"
#include "names.h"
#include "ownfd.h"
#include "powercut.h"
#include "wtrack_uffd.h"
#include "zeroruns.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <fiu.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * How the shim sees the process (the choices DESIGN.md leaves open):
 *
 * - A file is tracked when a successful open/openat/creat names a path matching POWERCUT_FILE
 *   (fnmatch on the path as given, on it made absolute, and on its realpath). Identity is
 *   (st_dev, st_ino), so every descriptor and mapping of it shares one model file, whatever
 *   name opened it: an open of a path that does not match is checked (one fstat) against the
 *   tracked inodes and, for a plain (non-glob) POWERCUT_FILE, the inode that path names, so a
 *   hard link or another mount of the file is the same model file, under the tracked name.
 *   Its content at first open is durable. Its name is durable too, unless POWERCUT_NAMESPACE=
 *   posix and the open created it (names.c): then a cut leaves no file until an fsync of its
 *   directory, which is a step (fsync-dir) in either case. rename, unlink and link of a
 *   tracked file's name are steps too, their changes volatile until the directory's fsync
 *   (names.c; under POWERCUT_NAMESPACE=ext4 until a commit, in program order); a cut writes
 *   an image for every name the model knows that holds a file then, and removes the image
 *   of every name that holds none.
 * - Descriptors are a table indexed by fd; calls on an untracked fd cost one array load.
 *   dup/dup2/dup3 and fcntl(F_DUPFD, F_DUPFD_CLOEXEC) copy entries; close, close_range,
 *   closefrom and fclose (whose closes glibc makes internally) clear them, so a socket or pipe
 *   that reuses the number is not the file. O_APPEND set or cleared by fcntl(F_SETFL) is read
 *   back (F_GETFL) for every tracked descriptor, as it belongs to the shared open file
 *   description. Closes the shim cannot see (raw syscall, glibc-internal) are not followed.
 * - The shim's own descriptors (trace, one private read descriptor per tracked file, the
 *   userfaultfd and pagemap of wtrack_uffd.c) live at high numbers out of the program's reach
 *   (ownfd.c): at the top of its range or above its soft RLIMIT_NOFILE (borrowed for the one
 *   call); its close/close_range/closefrom of them act as if the number were not open, a
 *   dup2/dup3 onto one moves the shim's first, dup/fcntl from one fail with EBADF. No free
 *   number for them stops the program (exit 2).
 * - A tracked file that can no longer change through the program (no name left, no program
 *   descriptor, no mapping) is retired (retire_check): its read descriptor is closed and its
 *   inode no longer matches an open, since the kernel may give the number to a new file. Its
 *   model file stays (a crash may still resurrect an unlinked name until its directory's
 *   fsync, with content the model holds), so traces and images are as if it were kept.
 * - One process owns the model: the first that opens a tracked file (claim()); its children
 *   and forks pass through (under POWERCUT_RUN they take turns, below). An exec in the owner
 *   continues the run in the new image (handover.c): steps number on, the trace is appended
 *   to, the model (durable, volatile, dirty sectors) is carried, so what was volatile before
 *   the exec stays volatile. A mode the new image cannot continue is refused with exit
 *   status 2, never dropped silently. Under POWERCUT_RUN the processes of a run own it one
 *   after the other (the baton, handover.c): the owner that ends leaves the same state beside
 *   the trace, the next one that would claim takes it, checks the files against it and
 *   numbers on; an owner waiting for a child lends it the same way and takes it back; two at
 *   work at once take turns: the one that would change a file asks (TRACE.request), and the
 *   owner lets the run go at its next call (run_asked). A forked child of the owner (no exec),
 *   and an owner that let the run go, take it at their next change of a file, from the baton,
 *   not from their stale copy of the state (fchild_arm, fchild_take).
 * - Writes through MAP_SHARED writable mappings of a tracked file are found by write
 *   tracking: the pages are write-protected, the first store to a page is noted, and at the
 *   start of every step (and before munmap/mremap/mmap(MAP_FIXED)) the noted pages are copied
 *   into the model and trace (the trace takes only their changed chunks when it can: see
 *   record_page). A written page then stays "open", compared with a copy at the steps where
 *   it may have changed, until it goes idle (see OPEN_MAX). Markers harvest nothing: a
 *   marker is not a crash point, and what was stored before it is recorded at the next step,
 *   before that step's STEP record, so every image of that step has it (its WRITE records
 *   may follow the MARK; markers only attribute steps). Two backends protect and note:
 *   - mprotect: the pages are mapped read-only, and the SIGSEGV handler notes the first store
 *     and gives the write permission back (~9 us a page on the VM of faults/README.md).
 *     Nothing is paid for pages not written. Stores by the kernel (read(2) into a mapping)
 *     fail with EFAULT; programs that replace the SIGSEGV handler are not supported.
 *   - uffd (wtrack_uffd.c; Linux >= 6.7): userfaultfd asynchronous write-protection; the
 *     kernel notes a store with a minor fault (~1 us) and no signal, but nobody is told: a
 *     PAGEMAP_SCAN of the mapping at every harvest lists the noted pages (~0.7 us a call
 *     plus ~1 ns per page of the mapping; skipped while every page of it is open). Kernel
 *     stores are seen.
 *   POWERCUT_MMAP=mprotect or =uffd forces one; the default (track) starts every mapping
 *   with mprotect and moves it to uffd while the pages found written would cost more in
 *   faults than the scans cost, and back (see adapt()). Both note the same pages at the
 *   same points, so they write the same trace, and a step costs at most about twice what
 *   the cheaper backend would have: the pages written, not the mapping size. Programs that
 *   mprotect tracked mappings themselves are not supported by either. POWERCUT_MMAP=sync
 *   and =lazy track nothing and compare instead (see capture_range, capture_content).
 * - A step's STEP record is written before the call; its effects (the data written, the
 *   range synced) after the real call succeeded. A call the kernel failed has no effect.
 *   A call the kernel would reject from its arguments or the descriptor's access mode alone
 *   (write calls, ftruncate, fallocate on a read-only descriptor; a negative pwrite offset;
 *   a fallocate mode no file system takes; an msync the kernel refuses) is still a step, so
 *   that cut and traced runs number the same steps, but has no effect even when cut (see
 *   write_rejected, fallocate_rejected, msync_valid). What only the call can tell (a mode
 *   the file system lacks, a bad buffer) is applied by a cut.
 * - msync is the kernel's (mm/msync.c): a step when its page-rounded range (len 0: addr)
 *   touches a tracked mapping. Unaligned addr, unknown flags or MS_SYNC|MS_ASYNC: EINVAL, and
 *   a wrapping range: ENOMEM, all without effect; len 0 does nothing. Else len is rounded up
 *   to whole pages, and MS_SYNC makes durable the whole file range under every VM_SHARED
 *   mapping in the range (however it became dirty: stores or write()) and the size. A
 *   mapping is VM_SHARED when MAP_SHARED over a descriptor open for writing, whatever its
 *   protection: private mappings and shared ones of read-only descriptors sync nothing. A gap
 *   in the range fails the call with ENOMEM after the mappings around it were synced, which
 *   a cut predicts (it cannot see untracked mappings). EIO drops the dirty state of the
 *   VM_SHARED ranges; the mappings a failing sync of another one left synced are not kept.
 * - A power cut at step k happens inside the call: its volatile effect (a write's data) is
 *   applied to the model, the images are taken with its durable effect torn, and the
 *   process ends with _exit(99) without making the call.
 * - An injected error makes the call return -1/errno (posix_fallocate: the error number)
 *   without reaching the kernel; EIO from msync/fsync/fdatasync also drops the dirty data of
 *   that range (fsync-gate): it stays visible to the process but is never made durable.
 *   With an outcome (POWERCUT_ERROR=STEP:ERRNO:TEAR, any errno) a failing msync(MS_SYNC),
 *   fsync or fdatasync first wrote the part of its sectors the tear takes, as a cut would
 *   have: recorded as its syncs plus a FAIL record, which the model applies when the step
 *   ends (the rest of the range is lost as above). Other calls fail with no effect at all.
 * - A disk that stays full (diskfull.c): in a run whose injected errno is ENOSPC, the shim
 *   keeps per file the blocks (system pages) the disk backs: the content at first open, and
 *   what is written, fallocated or stored through a mapping while there is room. From the
 *   injected ENOSPC on, the disk is full until the process ends (a shrink or a punched hole
 *   frees blocks, which become holes, but no room: a program that frees space and retries is
 *   outside the model). Then a write, pwrite or fallocate that needs a block the file lacks
 *   fails with ENOSPC (the whole call, no short write), a growing ftruncate succeeds and
 *   leaves a hole, as on any file system, and a store through a shared mapping into a page of
 *   a hole is what the kernel answers with SIGBUS (page_mkwrite finds no block): the shim
 *   says so on stderr, writes the trace's SIGBUS record, and kills the process with SIGBUS
 *   (default action: the store is behind, a handler would have nothing to retry). Under
 *   mprotect the SIGSEGV handler catches the store itself; under uffd (and open pages, and
 *   POWERCUT_MMAP=sync/lazy, which see changed bytes only) it is found at the next step,
 *   munmap or mremap. Not carried across an exec (the new image starts with room), and
 *   ENOSPC from libfiu points does not fill the disk. Other runs pay nothing for it.
 * - Nothing reaches a tracked file unseen without a word (see "tracking guards"): pwritev2,
 *   copy_file_range and sendfile into it are modelled writes; splice into it, sendfile from a
 *   source that is not a regular file and pwritev2 flags the shim does not know are refused
 *   before they happen; a change behind the shim's back (stdio's internal writes, another
 *   process) is found by st_mtim/st_size at the next step on the file and confirmed by
 *   content where a copy is kept (fopen is followed like open, so a sync of a stream's
 *   descriptor is such a step). Each ends the run with exit status 97 and a message naming
 *   the file. Files with a writable shared mapping are not checked (stores move st_mtime
 *   unseen). O_DIRECT writes are plain writes: not durable before a sync (open(2)).
 * - POWERCUT_EXIT_STEP=1: exit() makes one last step (the destructor), where nothing
 *   volatile is durable; so do the owner's _exit and _Exit (interposed); fatal signals
 *   cannot be seen.
 * - State is per process and global (the shim stands for the kernel); steps from several
 *   threads are serialised by one lock, but stores racing with a step may land either side.
 */

#define PC_EXPORT __attribute__((visibility("default")))

/* The shim's own ends of the process (die, a cut, a lost file) leave at once: _exit is
 * interposed below (the program's _exit ends the run as exit does), and must not be re-entered
 * from inside a step, with the lock held. Every `_exit(` in this file below this line is this. */
static _Noreturn void shim_exit_now(int status)
{
    syscall(SYS_exit_group, status);
    for (;;) syscall(SYS_exit, status);
}
#define _exit(status) shim_exit_now(status)
/* The exit status of a run the shim stops because the model could not follow the program. */
#define PC_EXIT_LOST 97

/* ---- real functions ---- */
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_truncate)(const char *, off_t);
static int (*real_truncate64)(const char *, off_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_fallocate64)(int, int, off_t, off_t);
static int (*real_posix_fallocate)(int, off_t, off_t);
static int (*real_posix_fallocate64)(int, off_t, off_t);
static int (*real_msync)(void *, size_t, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static void (*real_sync)(void);
static int (*real_syncfs)(int);
static int (*real_sync_file_range)(int, off_t, off_t, unsigned int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static void *(*real_mmap64)(void *, size_t, int, int, int, off_t);
static void *(*real_mremap)(void *, size_t, size_t, int, ...);
static int (*real_munmap)(void *, size_t);
static int (*real_fcntl)(int, int, ...);
static int (*real_fcntl64)(int, int, ...);
static int (*real_fclose)(FILE *);
static int (*real_execve)(const char *, char *const[], char *const[]);
static int (*real_execvpe)(const char *, char *const[], char *const[]);
static int (*real_fexecve)(int, char *const[], char *const[]);
static int (*real_execveat)(int, const char *, char *const[], char *const[], int);
static pid_t (*real_wait)(int *);
static pid_t (*real_waitpid)(pid_t, int *, int);
static pid_t (*real_wait3)(int *, int, struct rusage *);
static pid_t (*real_wait4)(pid_t, int *, int, struct rusage *);
static int (*real_waitid)(idtype_t, id_t, siginfo_t *, int);
static int (*real_system)(const char *);
/* the calls that used to lose track silently (see "tracking guards" below) */
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_pwritev64v2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_copy_file_range)(int, off_t *, int, off_t *, size_t, unsigned int);
static ssize_t (*real_sendfile)(int, int, off_t *, size_t);
static ssize_t (*real_sendfile64)(int, int, off_t *, size_t);
static ssize_t (*real_splice)(int, off_t *, int, off_t *, size_t, unsigned int);
static FILE *(*real_fopen)(const char *, const char *);
static FILE *(*real_fopen64)(const char *, const char *);
/* the namespace (names.c) */
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_link)(const char *, const char *);
static int (*real_linkat)(int, const char *, int, const char *, int);
static int (*real_remove)(const char *);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_symlinkat)(const char *, int, const char *);
static int (*real_madvise)(void *, size_t, int);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_rmdir)(const char *);

#define RESOLVE(name) \
    do { \
        if (!real_##name) *(void **)&real_##name = dlsym(RTLD_NEXT, #name); \
    } while (0)

static void resolve_all(void)
{
    RESOLVE(write); RESOLVE(pwrite); RESOLVE(pwrite64); RESOLVE(writev); RESOLVE(pwritev);
    RESOLVE(pwritev64); RESOLVE(ftruncate); RESOLVE(ftruncate64); RESOLVE(truncate); RESOLVE(truncate64); RESOLVE(fallocate);
    RESOLVE(fallocate64); RESOLVE(posix_fallocate); RESOLVE(posix_fallocate64); RESOLVE(msync);
    RESOLVE(fsync); RESOLVE(fdatasync); RESOLVE(sync); RESOLVE(syncfs); RESOLVE(sync_file_range); RESOLVE(open); RESOLVE(open64);
    RESOLVE(openat); RESOLVE(openat64); RESOLVE(creat); RESOLVE(creat64); RESOLVE(close);
    RESOLVE(dup); RESOLVE(dup2); RESOLVE(dup3); RESOLVE(mmap); RESOLVE(mmap64); RESOLVE(mremap);
    RESOLVE(munmap); RESOLVE(fcntl); RESOLVE(fcntl64); RESOLVE(fclose); RESOLVE(execve);
    RESOLVE(execvpe); RESOLVE(fexecve); RESOLVE(execveat);
    RESOLVE(wait); RESOLVE(waitpid); RESOLVE(wait3); RESOLVE(wait4); RESOLVE(waitid); RESOLVE(system);
    RESOLVE(pwritev2); RESOLVE(pwritev64v2); RESOLVE(copy_file_range); RESOLVE(sendfile);
    RESOLVE(sendfile64); RESOLVE(splice); RESOLVE(fopen); RESOLVE(fopen64);
    RESOLVE(rename); RESOLVE(renameat); RESOLVE(renameat2); RESOLVE(unlink); RESOLVE(unlinkat);
    RESOLVE(link); RESOLVE(linkat); RESOLVE(remove);
    RESOLVE(mkdir); RESOLVE(mkdirat); RESOLVE(rmdir); RESOLVE(madvise); RESOLVE(ioctl); RESOLVE(symlinkat);
    if (!real_fopen64) real_fopen64 = real_fopen;
    if (!real_pwritev64v2) real_pwritev64v2 = real_pwritev2;
    if (!real_sendfile64) real_sendfile64 = real_sendfile;
    if (!real_fcntl64) real_fcntl64 = real_fcntl;
}

/* ---- state ---- */
typedef struct {
    dev_t dev;
    ino_t ino;
    uint32_t id;    /* model / trace file id */
    char *path;     /* as first opened, made absolute */
    int rfd;        /* private read descriptor: initial content, fallocate re-reads; -1 once
                     * the file is retired (retire_check) */
    uint64_t size;  /* volatile size as the shim knows it (model-free record mode needs it) */
    uint8_t *shadow; /* sync mode without a model: the volatile content, to diff mappings */
    uint64_t shcap;
    pc_blocks blocks; /* disk-full model: the blocks the disk backs (df_on() runs only) */
    int name_new;   /* POWERCUT_NAMESPACE=posix or ext4: this process created its first name */
    int symlink;    /* a symbolic link the program made (symlink, symlinkat): its content is the
                     * target; no descriptor reaches it (rfd -1), its names are followed */
    /* foreign-change check (fc_check): st_mtim and st_size after the shim's last own change */
    struct timespec fc_mtim;
    uint64_t fc_size;
    int fc_ok;    /* the two above hold a baseline to compare with */
    int fc_stale; /* changed by the shim since the baseline; outside a step (an open with
                   * O_TRUNC) that means no baseline: the next check compares content */
} tfile;

typedef struct {
    uintptr_t addr;
    size_t len;
    uint32_t file; /* index into S.files */
    uint64_t off;
    int prot;
    int wt;                /* write tracking backend (WT_*): writable shared, not sync mode */
    int vmshared;          /* the kernel's VM_SHARED: MAP_SHARED of a descriptor open for
                            * writing; the only mappings msync syncs */
    int wshared;           /* vmshared and writable: its stores reach the file */
    uint8_t *faulted;      /* per page: store seen since the last harvest */
    size_t *flist, nf;     /* the faulted pages, in fault order */
    uint32_t win_h, win_c; /* harvests, and pages found written, in this window (adapt) */
    uint32_t win_o;        /* open pages found changed in this window (adapt) */
    int no_uffd;           /* the kernel refused to register it: mprotect for good */
    int child_armed;       /* POWERCUT_MMAP=sync, in a forked child not yet in the run:
                            * read-only until its first store takes the run over (fchild_take) */
} tmap;

/* How a mapping's pages are write-protected and their stores noted (see the top comment). */
enum { WT_NONE = 0, WT_MPROTECT = 1, WT_UFFD = 2 };

/* A written page whose next stores are recorded as the 64-byte chunks they change, compared
 * with its last recorded content (see harvest_all). On mprotect it is left writable and
 * compared at every step; on uffd the harvest's scan protects it again, and it is compared
 * only when a scan lists it as written (hit). */
typedef struct {
    uintptr_t addr;
    uint32_t file; /* index into S.files */
    uint64_t foff;
    uint64_t last; /* step of its last change */
    int prot;
    int wt;        /* backend of its mapping: how to protect it again */
    int hit;       /* uffd: the last scan listed it */
    uint8_t *copy;
} openpg;

typedef struct {
    int32_t file; /* index + 1 into S.files; 0: untracked */
    int flags;    /* open flags (O_SYNC, O_DSYNC, O_APPEND) */
} fdent;

enum { FD_MARK = 1 << 30 };

static struct {
    int resolved, inited, active, dead;
    int mmap_sync; /* POWERCUT_MMAP=sync: no write tracking, mappings compared at syncs */
    int mmap_lazy; /* POWERCUT_MMAP=lazy: as sync, and the file compared in full at a cut */
    int cut_goes_on; /* pc_shim_set_after_cut(PC_AFTER_CUT_CONTINUE) */
    int mmap_force; /* POWERCUT_MMAP=mprotect or uffd: that backend (WT_*); 0 = choose */
    int uffd_ok;    /* the uffd backend works here: 1, not: -1, not tried yet: 0 */
    int forked;     /* fork() made a child: it may store into open pages unseen by uffd */
    int fchild;     /* a forked child of the owner under POWERCUT_RUN that has not taken the run
                     * over yet: its copy of the state is as of the fork (fchild_take); or an
                     * owner that let the run go (S.let_go), whose copy is as of then */
    int let_go;     /* the run was let go to a process that asked for it (run_asked), or taken
                     * by another while this one waited for a child: taken back at the next
                     * change, as a forked child takes it (fchild_take) */
    uintptr_t hint_lo, hint_hi; /* the msync step being opened: its page-rounded range */
    uint64_t faults_seen;       /* the process's page faults when the last uffd scans began */
    int faults_ok;              /* faults_seen holds a count (see uffd_collect_all) */
    uint64_t scan_found;        /* pages the current scans listed */
    int debug;      /* POWERCUT_DEBUG: one line on stderr per tracked mapping */
    int ns;         /* POWERCUT_NAMESPACE (names.h): PC_NS_NONE, PC_NS_POSIX or PC_NS_EXT4 */
    char *pattern, *abs_pattern; /* the first pattern, as given and made absolute */
    int is_glob;                 /* a glob, or several patterns: no one file named beforehand */
    char **pats, **abs_pats;     /* every pattern of POWERCUT_FILE (':' between them) */
    size_t npats;
    uint32_t sector;
    size_t page;
    pc_model *m;
    pc_tw *tw;
    int trace_fd;
    char *trace_path;
    int claimed;
    pid_t owner; /* the claiming process: a vfork child shares S but is not it */
    long lend_ms; /* POWERCUT_LEND_WAIT: how long a child waits for its owning parent to lend */
    struct pmark { int kind; uint64_t op; char *label; } pending[64]; /* marks before the claim */
    int npending;
    char **pdirs;   /* directories the process made under the root before the claim, not durable */
    size_t npdirs, pdcap;
    uint64_t step;
    uint64_t cut_step;
    pc_crash crash;
    uint64_t err_step;
    int err_errno;
    int err_torn;     /* POWERCUT_ERROR=STEP:ERRNO:TEAR: a failing sync leaves err_tear durable */
    pc_crash err_tear;
    int torn_now;     /* the open step is that error (set by step_open) */
    int full;         /* disk-full model: the disk is full (from step full_step on) */
    uint64_t full_step;
    int nospace;      /* the step being opened needs blocks the full disk has not */
    char *image;
    pc_image_cb cb;
    void *cbctx;
    int mark_fd;
    char markbuf[512];
    size_t markn;
    tfile *files;
    size_t nfiles, fcap;
    tmap *maps;
    size_t nmaps, mcap;
    openpg *open;
    size_t nopen, ocap;
    fdent *fds;
    size_t nfds;
    struct sigaction old_segv;
    uint8_t **cut_imgs;
    uint64_t *cut_lens;
    size_t ncut;
    char **known;     /* names a namespace step touched (with the files' paths: the model's) */
    size_t nknown, kcap;
    pc_stats st;
} S = {.trace_fd = -1, .mark_fd = -1};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void atfork_child(void);
static void atfork_parent(void);
static void fchild_now(void);
static void fchild_take(void);
/* The shim's own calls pass straight through. Initial-exec TLS: a preloaded or linked-in
 * library always gets static TLS, and this avoids a __tls_get_addr call per interposed call. */
static __thread int busy __attribute__((tls_model("initial-exec")));

static void warn(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1) n = (int)sizeof buf - 1;
    if (n > 0) (void)!syscall(SYS_write, 2, buf, (size_t)n);
}

/* A broken environment is a usage error of the tool: say so and stop (exit status 2). */
static void die(const char *what, const char *val)
{
    warn("powercut: invalid %s: '%s' (see faults/README.md)\n", what, val ? val : "");
    _exit(2);
}

/* ---- environment ---- */
static int parse_errno(const char *s)
{
    static const struct { const char *n; int v; } names[] = {
        {"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EINTR", EINTR}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
        {"ENOMEM", ENOMEM}, {"EAGAIN", EAGAIN}, {"EFBIG", EFBIG}, {"EBADF", EBADF},
        {"EINVAL", EINVAL}, {"EPERM", EPERM}, {"EACCES", EACCES},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].n)) return names[i].v;
    char *end;
    long v = strtol(s, &end, 10);
    return (*s && !*end && v > 0 && v < 4096) ? (int)v : -1;
}

/* The outcome of POWERCUT_ERROR=STEP:ERRNO:TEAR: a tear the model can apply at the end of a
 * step (garbage is a cut's, and writeback has no meaning for a call that returns). */
static int parse_error_tear(const char *s, pc_crash *out)
{
    const char *c = strchr(s, ':');
    int word_only = !strncmp(s, "none", 4) || !strncmp(s, "all", 3);
    if ((c && (word_only || strchr(c + 1, ':'))) || pc_crash_parse(s, out)) return -1;
    return out->tear == PC_TEAR_GARBAGE ? -1 : 0;
}

static void fiu_setup(void)
{
    fiu_init(0);
    const char *en = getenv("FIU_ENABLE");
    if (en && *en) {
        /* fiu-run separates commands with newlines and indents them */
        char *copy = strdup(en), *save = NULL;
        for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save)) {
            while (*line == ' ' || *line == '\t') line++;
            if (!*line) continue;
            char *err = NULL;
            if (fiu_rc_string(line, &err)) warn("powercut: FIU_ENABLE '%s': %s\n", line, err ? err : "error");
        }
        free(copy);
    }
    /* fiu-ctrl talks to the fifo fiu_run_preload.so opens; open it ourselves when that library
     * was displaced from LD_PRELOAD (fiu-run overwrites LD_PRELOAD, callers put us back). */
    const char *fifo = getenv("FIU_CTRL_FIFO"), *pre = getenv("LD_PRELOAD");
    if (fifo && *fifo && !(pre && strstr(pre, "fiu_run_preload"))) fiu_rc_fifo(fifo);
}

static void segv_handler(int sig, siginfo_t *si, void *uc);

/* (Re)installs the write-tracking handler unless it is already the current one: test
 * frameworks and in-process users may have replaced it since; theirs becomes the fallback. */
static void install_segv(void)
{
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == segv_handler)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &S.old_segv);
}

static void read_env_guards(void);


/* The live model, journalled under POWERCUT_NAMESPACE=ext4 (names.c). */
static int new_model(uint32_t sector)
{
    if (pc_model_new(sector, &S.m)) return PC_ENOMEM;
    return S.ns == PC_NS_EXT4 ? pc_model_set_journal(S.m) : PC_OK;
}
static void read_env(void)
{
    const char *pat = getenv("POWERCUT_FILE");
    S.active = pat && *pat;
    if (!S.active) return;
    /* Several patterns, separated by ':' as in PATH: a file matching any of them is tracked.
     * Each relative one is taken from the folder the process starts in. */
    char cwd[PATH_MAX];
    int have_cwd = getcwd(cwd, sizeof cwd) != NULL;
    size_t cap = 1;
    for (const char *c = pat; *c; c++) cap += *c == ':';
    S.pats = calloc(cap, sizeof *S.pats);
    S.abs_pats = calloc(cap, sizeof *S.abs_pats);
    if (!S.pats || !S.abs_pats) die("memory", "POWERCUT_FILE");
    S.npats = 0;
    for (const char *p = pat; *p;) {
        size_t len = strcspn(p, ":");
        if (len) {
            char *one = strndup(p, len), *abs = NULL;
            if (!one) die("memory", "POWERCUT_FILE");
            if (one[0] == '/') abs = strdup(one);
            else if (have_cwd && (abs = malloc(strlen(cwd) + len + 2))) sprintf(abs, "%s/%s", cwd, one);
            S.pats[S.npats] = one;
            S.abs_pats[S.npats++] = abs;
        }
        p += len + (p[len] == ':');
    }
    if (!S.npats) die("POWERCUT_FILE (no pattern)", pat);
    S.pattern = strdup(S.pats[0]);
    S.abs_pattern = S.abs_pats[0] ? strdup(S.abs_pats[0]) : NULL;
    S.is_glob = S.npats > 1 || strpbrk(S.pattern, "*?[") != NULL;
    const char *v = getenv("POWERCUT_SECTOR");
    S.sector = 512;
    if (v && *v) {
        char *end;
        unsigned long s = strtoul(v, &end, 10);
        if (*end || s < 1 || s > (1u << 20)) die("POWERCUT_SECTOR", v);
        S.sector = (uint32_t)s;
    }
    if ((v = getenv("POWERCUT_CUT")) && *v && !S.cut_step) {
        if (pc_cut_parse(v, &S.cut_step, &S.crash)) die("POWERCUT_CUT", v);
    } else if ((v = getenv("POWERCUT_CRASH")) && *v) {
        /* the tear/writeback used when a libfiu point (failinfo=1) cuts */
        if (pc_crash_parse(v, &S.crash)) die("POWERCUT_CRASH", v);
    }
    if ((v = getenv("POWERCUT_ERROR")) && *v && !S.err_step) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", v);
        char *c = strchr(buf, ':');
        char *end;
        if (!c) die("POWERCUT_ERROR", v);
        *c = 0;
        S.err_step = strtoull(buf, &end, 10);
        char *tear = strchr(c + 1, ':'); /* STEP:ERRNO:TEAR: the outcome of a failing sync */
        if (tear) *tear++ = 0;
        S.err_errno = !strcmp(c + 1, "short") ? PC_ERRNO_SHORT : parse_errno(c + 1);
        if (*end || !S.err_step || S.err_errno == -1) die("POWERCUT_ERROR", v);
        S.err_torn = 0;
        if (tear && (S.err_errno == PC_ERRNO_SHORT || parse_error_tear(tear, &S.err_tear)))
            die("POWERCUT_ERROR", v);
        S.err_torn = tear != NULL;
    }
    if ((v = getenv("POWERCUT_IMAGE")) && *v) S.image = strdup(v);
    if ((v = getenv("POWERCUT_MARK_FD")) && *v) {
        char *end;
        long fd = strtol(v, &end, 10);
        if (*end || fd < 0) die("POWERCUT_MARK_FD", v);
        S.mark_fd = (int)fd;
    }
    S.lend_ms = 3000;
    if ((v = getenv("POWERCUT_LEND_WAIT")) && *v) {
        char *end;
        S.lend_ms = strtol(v, &end, 10);
        if (*end || S.lend_ms < 0) die("POWERCUT_LEND_WAIT", v);
    }
    /* The trace is created when this process claims the tracked files (claim()). */
    if ((v = getenv("POWERCUT_TRACE")) && *v) S.trace_path = strdup(v);
    S.mmap_sync = S.mmap_lazy = 0;
    S.mmap_force = 0;
    if ((v = getenv("POWERCUT_MMAP")) && *v) {
        if (!strcmp(v, "sync")) S.mmap_sync = 1;
        else if (!strcmp(v, "lazy")) S.mmap_sync = S.mmap_lazy = 1;
        else if (!strcmp(v, "mprotect")) S.mmap_force = WT_MPROTECT;
        else if (!strcmp(v, "uffd")) S.mmap_force = WT_UFFD;
        else if (strcmp(v, "track")) die("POWERCUT_MMAP", v);
    }
    /* lazy learns the stores no sync covered only at the cut: a trace, which must know them
     * at every step for the images of every step, would silently lack them. */
    if (S.mmap_lazy && S.trace_path) die("POWERCUT_MMAP (lazy cannot record a trace)", v);
    S.debug = (v = getenv("POWERCUT_DEBUG")) && *v && strcmp(v, "0");
    if ((S.ns = pc__ns_parse(v = getenv("POWERCUT_NAMESPACE"))) < 0) die("POWERCUT_NAMESPACE", v);
    /* Record-only runs keep no model (the trace reader rebuilds it); in sync mode they keep a
     * bare copy of the volatile content instead, to diff mappings against. */
    if (!S.trace_path || S.cut_step || S.cb || getenv("POWERCUT_MODEL"))
        if (new_model(S.sector)) die("memory", "model");
    read_env_guards();
}

static void adopt_handover(void);

static void adopt_inherited(void);
static void req_map(void);

static void init(void)
{
    if (S.inited) return;
    busy++;
    resolve_all();
    S.inited = 1;
    S.page = (size_t)sysconf(_SC_PAGESIZE);
    read_env();
    if (S.active) adopt_handover();
    fiu_setup();
    if (S.active) install_segv();
    pthread_atfork(NULL, atfork_parent, atfork_child);
    if (S.active) req_map();
    busy--;
    adopt_inherited();
}

__attribute__((constructor)) static void pc_ctor(void) { init(); }

uint64_t pc__tw_total(const pc_tw *w);
int pc__tw_dirty(pc_tw *w, uint32_t id, uint64_t off, uint64_t len); /* trace.c */

static void finish_trace(void)
{
    if (S.tw) {
        pc_tw_finish(S.tw);
        S.st.trace_bytes = pc__tw_total(S.tw);
    }
}

static void exit_step(void);

static void exit_check(void);

static int baton_due(void);
static void baton_pass(void);

__attribute__((destructor)) static void pc_dtor(void)
{
    if (!S.active || S.dead) return;
    exit_step();
    pthread_mutex_lock(&lock);
    exit_check();
    if (baton_due()) baton_pass();
    else finish_trace();
    pthread_mutex_unlock(&lock);
}

/* _exit and _Exit: dash, and many programs after a fork, end with _exit, where no destructor
 * runs: the trace was left unfinished (an empty file until a buffer filled) and the exit step
 * never came. So the owner's _exit ends the run as exit() does (pc_dtor: the exit step under
 * POWERCUT_EXIT_STEP=1, then the trace finished; a forked child that took the run over hands it
 * back there). Any other process passes through: a forked child that did not, a vfork'ed child
 * (it shares the owner's memory, so nothing of the shim is touched there but S.owner), and a
 * process that never claimed. (The parentheses keep the macro above away from the
 * definitions.) */
static void at_program_exit(void)
{
    if (S.inited && S.claimed && S.owner == getpid()) pc_dtor();
}

PC_EXPORT _Noreturn void (_exit)(int status)
{
    at_program_exit();
    shim_exit_now(status);
}

PC_EXPORT _Noreturn void (_Exit)(int status)
{
    at_program_exit();
    shim_exit_now(status);
}

/* Under POWERCUT_RUN: TRACE.request, mapped shared by every process of the run (req_map), holds
 * the pid of a process that waits for the run (run_awaited), or 0. The owner reads it with one
 * load at each interposed call, so a request costs the owner no system call until one comes. */
static uint32_t *run_req;
static void run_asked(void);

/* Fast check used by every interposed call: the shim set up, and the run let go when another
 * process of it asked for it (before this call's effect). */
#define ENSURE()                                                                  \
    do {                                                                          \
        if (!S.inited) init();                                                    \
        if (run_req && __atomic_load_n(run_req, __ATOMIC_RELAXED)) run_asked();  \
    } while (0)

static inline tfile *fd_file(int fd, int *flags)
{
    if (!S.active || S.dead || busy || fd < 0 || (size_t)fd >= S.nfds || !S.fds[fd].file) return NULL;
    if (flags) *flags = S.fds[fd].flags;
    return &S.files[S.fds[fd].file - 1];
}

/* fd_file for a call that is a step on the file: a forked child takes the run over first
 * (fchild_take), which may move S.files. */
static tfile *step_fd(int fd, int *flags)
{
    tfile *f = fd_file(fd, flags);
    if (f && S.fchild) {
        fchild_now();
        f = fd_file(fd, flags);
    }
    return f;
}

static int set_fd(int fd, int32_t file, int flags)
{
    if (fd < 0) return 0;
    if ((size_t)fd >= S.nfds) {
        size_t n = S.nfds ? S.nfds : 64;
        while (n <= (size_t)fd) n *= 2;
        fdent *p = realloc(S.fds, n * sizeof *p);
        if (!p) return -1;
        memset(p + S.nfds, 0, (n - S.nfds) * sizeof *p);
        S.fds = p;
        S.nfds = n;
    }
    S.fds[fd].file = file;
    S.fds[fd].flags = flags;
    return 0;
}

/* ---- tracked files ---- */
/* A relative glob is matched as given against relative paths only; against an absolute one it
 * is matched made absolute (abs_pats): taken as given, `*` (fnmatch without FNM_PATHNAME)
 * would match every absolute path, /dev/null and files far outside the folder included.
 * `given` NULL: a path the program never gave (a descriptor's, read back from /proc). */
static int path_matches(const char *given, const char *abs)
{
    for (size_t i = 0; i < S.npats; i++) {
        if (given && (S.pats[i][0] == '/') == (given[0] == '/') && !fnmatch(S.pats[i], given, 0)) return 1;
        if (S.abs_pats[i] && abs && !fnmatch(S.abs_pats[i], abs, 0)) return 1;
    }
    char real[PATH_MAX];
    if (!abs || !realpath(abs, real)) return 0;
    for (size_t i = 0; i < S.npats; i++)
        if (S.abs_pats[i] && !fnmatch(S.abs_pats[i], real, 0)) return 1;
    return 0;
}

static void make_abs(int dirfd, const char *path, char *out, size_t n)
{
    char base[PATH_MAX];
    if (path[0] == '/') {
        snprintf(out, n, "%s", path);
        return;
    }
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) base[0] = 0;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t r = readlink(link, base, sizeof base - 1);
        base[r > 0 ? r : 0] = 0;
    }
    /* joined by hand: a path too long for PATH_MAX simply never matches */
    size_t bl = strlen(base), pl = strlen(path);
    if (bl + 1 + pl + 1 > n) {
        out[0] = 0;
        return;
    }
    memcpy(out, base, bl);
    out[bl] = '/';
    memcpy(out + bl + 1, path, pl + 1);
}

static int read_all(int fd, uint8_t *buf, uint64_t off, uint64_t len)
{
    while (len) {
        ssize_t r = pread(fd, buf, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        buf += r;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    return 0;
}

static void trace_fail(int rc)
{
    if (rc) warn("powercut: trace/model error: %s\n", pc_strerror(rc));
}

static void note_truncate(tfile *f, uint64_t size);
static void fc_take(tfile *f);
static void df_backed(tfile *f, uint64_t off, uint64_t len);
static int shadow_fit(tfile *f, uint64_t size);
static int use_shadow(void);

/* POWERCUT_RUN (crashcheck run sets it): the processes of one run share a folder beside the
 * trace, so a process that the owner did not start (a sibling: a shell's second command after
 * its first claimed, each forked by the shell) can tell that another one owns the run. Without
 * it, a second claimer recreated the trace and the first one's story was lost, unsaid; a
 * `sync` run as a command made data durable that the model kept volatile. Each is now said
 * on stderr and in TRACE.refused, which crashcheck run reports, and the process stops (exit
 * status 97: what it was about to do cannot be modelled). */
static int in_run(void)
{
    const char *run = getenv("POWERCUT_RUN");
    return run && *run;
}

static const char *run_side(const char *suffix, char *buf, size_t n)
{
    if (!in_run() || !S.trace_path) return NULL;
    snprintf(buf, n, "%s.%s", S.trace_path, suffix);
    return buf;
}

/* Maps TRACE.request (see run_req) for this process; a forked child shares its parent's
 * mapping. Without it (no trace, no POWERCUT_RUN, or it cannot be made) a request is never
 * seen, and a process that waits for the run is refused after POWERCUT_LEND_WAIT as before. */
static void req_map(void)
{
    char path[PATH_MAX + 16];
    if (run_req || !run_side("request", path, sizeof path)) return;
    int fd = real_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    struct stat st;
    /* a shorter file is grown (never truncated: another process may have asked already) */
    if (!fstat(fd, &st) &&
        (st.st_size >= (off_t)sizeof *run_req || !syscall(SYS_ftruncate, fd, (long)sizeof *run_req))) {
        void *p = (void *)syscall(SYS_mmap, NULL, sizeof *run_req, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) run_req = p;
    }
    real_close(fd);
}

/* This process's own request, if it is the one in TRACE.request, withdrawn (it holds the run,
 * or stops waiting for it). */
static void req_drop(void)
{
    uint32_t me = (uint32_t)getpid();
    if (run_req) __atomic_compare_exchange_n(run_req, &me, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* Under POWERCUT_RUN, why a process of the run stops it, in TRACE.refused, which crashcheck
 * run reports whatever the program's exit status: a shell script goes on after a command the
 * shim stopped, and its last command's status would hide it. */
static void note_refused(const char *msg)
{
    char path[PATH_MAX + 16];
    if (!run_side("refused", path, sizeof path)) return;
    int fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return; /* said on stderr already */
    if (write(fd, msg, strlen(msg)) < 0) { /* said on stderr already */ }
    real_close(fd);
}

/* The shim stops the process because the model lost track: msg said on stderr and noted. */
__attribute__((noreturn)) static void stop_lost(const char *msg)
{
    warn("%s", msg);
    note_refused(msg);
    if (S.tw) pc_tw_flush(S.tw);
    S.dead = 1;
    _exit(PC_EXIT_LOST);
}

static int is_ancestor(long pid);
static int proc_gone(long pid);

__attribute__((noreturn)) static void refuse_in_run(const char *what)
{
    char path[PATH_MAX + 16], owner[32] = "another process";
    if (run_side("owner", path, sizeof path)) {
        int fd = real_open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, owner, sizeof owner - 1) : -1;
        if (n > 0) owner[n] = 0;
        if (fd >= 0) real_close(fd);
    }
    /* the owner alive: it kept the run for POWERCUT_LEND_WAIT after this one asked for it
     * (it made no call of the shim: blocked in a read of a pipe, sleeping, computing), and the
     * two cannot be modelled at once; dead: it ended without handing the run on (a signal, or
     * the shim stopped it), and its state is lost, unless it was a cut (TRACE.cut,
     * cut_to_files): the power is off for every process of the run, and this one ends as the
     * cut one did (a parent back from waiting for it) */
    char *end;
    long pid = strtol(owner, &end, 10);
    int alive = end != owner && pid > 0 && !proc_gone(pid);
    if (!alive && run_side("cut", path, sizeof path) && access(path, F_OK) == 0) _exit(99);
    char msg[1400], kin[64] = "";
    if (alive && is_ancestor(pid))
        snprintf(kin, sizeof kin, " (%s)", getppid() == (pid_t)pid ? "its parent" : "an ancestor of it");
    if (alive || end == owner)
        snprintf(msg, sizeof msg,
                 "powercut: process %ld %s while process %s owns the run%s and made no call within %ld ms "
                 "of being asked for it: the processes of a run take turns (at an end, at a wait for a "
                 "child, at the owner's next call once another asks), and one blocked outside the shim "
                 "(a read of a pipe, a sleep) keeps its turn, so this one stops (exit status 97; "
                 "faults/README.md, one process at a time)\n",
                 (long)getpid(), what, owner, kin, S.lend_ms);
    else
        snprintf(msg, sizeof msg,
                 "powercut: process %ld %s after process %s, which owned the run, ended without handing "
                 "it on (killed by a signal, or stopped by the shim: see its messages), so this one "
                 "stops (exit status 97; faults/README.md, one process at a time)\n",
                 (long)getpid(), what, owner);
    warn("%s", msg);
    note_refused(msg);
    _exit(PC_EXIT_LOST);
}


/* The pid in TRACE.owner (0: none, or unreadable). */
static long run_owner_pid(void)
{
    char path[PATH_MAX + 16], buf[32];
    if (!run_side("owner", path, sizeof path)) return 0;
    int fd = real_open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    real_close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

/* Whether pid is this process's parent, or the parent's parent and so on (/proc/PID/stat). */
static int is_ancestor(long pid)
{
    long p = (long)getppid();
    for (int depth = 0; depth < 64 && p > 1; depth++) {
        if (p == pid) return 1;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", p);
        int fd = real_open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 0;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        real_close(fd);
        if (n <= 0) return 0;
        buf[n] = 0;
        const char *rp = strrchr(buf, ')'); /* "pid (comm) state ppid ...": comm may hold spaces */
        if (!rp || sscanf(rp + 1, " %*c %ld", &p) != 1) return 0;
    }
    return 0;
}

/* Whether process pid has ended (a zombie not yet waited for included: a shell reaps its
 * background jobs late). */
static int proc_gone(long pid)
{
    if (kill((pid_t)pid, 0) && errno == ESRCH) return 1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = real_open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0; /* no /proc: alive, as kill said (a zombie is then waited for in vain) */
    ssize_t n = read(fd, buf, sizeof buf - 1);
    real_close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *rp = strrchr(buf, ')'); /* "pid (comm) state ...": comm may hold spaces */
    return rp && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Another process owns the run: this one asks for it (its pid in TRACE.request) and waits.
 * The owner lets it go at its next call of the shim (run_asked), or lends it when it waits
 * for a child (baton_lend), which may come a moment after this one started (a shell's vfork
 * returns, then it waits). 1 once the owner's mark is gone (the caller takes it, or asks
 * again when another process took it first); 0 when the owner ended without handing the run
 * on, or kept it for POWERCUT_LEND_WAIT milliseconds (it made no call: blocked in a read of a
 * pipe, asleep), the request withdrawn. Deadlock-free by that timeout: two processes that
 * each wait for the other outside the shim end with one of them refused. */
static int run_awaited(void)
{
    uint32_t me = (uint32_t)getpid();
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        long pid = run_owner_pid();
        uint32_t who = run_req ? __atomic_load_n(run_req, __ATOMIC_ACQUIRE) : 0;
        if (!pid && (!who || who == me)) return 1;
        if (!pid && proc_gone(who)) { /* the one first in line is gone */
            __atomic_compare_exchange_n(run_req, &who, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            continue;
        }
        if ((pid && proc_gone(pid)) || ms >= S.lend_ms) {
            req_drop();
            return 0;
        }
        /* one request at a time: a process already asking makes the owner let go as well, and
         * takes the run first (mark_take) */
        uint32_t none = 0;
        if (run_req) __atomic_compare_exchange_n(run_req, &none, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        /* an owner at work lets go within microseconds: polled every 0.1 ms at first (a turn
         * costs that wait, and turns may come at every call), every 2 ms after 10 ms (an owner
         * asleep, a lend to come) */
        struct timespec ts = {0, ms < 10 ? 100000 : 2000000};
        nanosleep(&ts, NULL);
    }
}

/* The owner's mark (path side) made for this process: -1 with EEXIST while another process
 * holds it, or asked for the run and has not taken it yet. That one goes first: the owner let
 * the run go for it, and the owner's own next change, a moment later, must not take it back
 * before it (the one asking polls; the two would run in blocks, not in turns). */
static int mark_take(const char *side)
{
    uint32_t who = run_req ? __atomic_load_n(run_req, __ATOMIC_ACQUIRE) : 0;
    if (who && who != (uint32_t)getpid() && !proc_gone(who)) {
        errno = EEXIST;
        return -1;
    }
    return real_open(side, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
}

/* Under POWERCUT_RUN, whether another process of the run owns it (this one has not claimed). */
static int run_owned_elsewhere(void)
{
    char path[PATH_MAX + 16];
    return !S.claimed && run_side("owner", path, sizeof path) && access(path, F_OK) == 0;
}

static void baton_take(void);
static void baton_take_now(void);
static void claim_dirs(void);
static int baton_waiting(void);

/* One process owns the model: the first that opens a tracked file (POWERCUT_OWNER records its
 * pid for the processes it starts). Processes it spawns afterwards (system("sync"), a shell's
 * children once it has claimed) pass everything through instead of truncating its trace or
 * numbering steps of their own; a shell that only starts the workload never claims. The
 * trace is created at the claim, and the markers set before it are written first. Under
 * POWERCUT_RUN the owner's mark beside the trace is the claim: taken by one process at a
 * time, and with it the baton the last owner left, if any. */
static int claim(void)
{
    if (S.claimed) return 1;
    char me[32];
    snprintf(me, sizeof me, "%ld", (long)getpid());
    char side[PATH_MAX + 16];
    const char *run = run_side("owner", side, sizeof side);
    /* Under POWERCUT_RUN the mark beside the trace decides, not the variable: a process the
     * owner started (which inherited POWERCUT_OWNER) is refused while the owner lives, and may
     * take the baton once it has ended. */
    const char *owner = getenv("POWERCUT_OWNER");
    if (owner && *owner && strcmp(owner, me) && !run) {
        S.active = 0;
        return 0;
    }
    if (run) {
        int fd;
        while ((fd = mark_take(side)) < 0 && errno == EEXIST)
            if (!run_awaited()) refuse_in_run("opened a tracked file");
        if (fd < 0) die("POWERCUT_RUN (cannot create the owner's mark beside the trace)", side);
        if (write(fd, me, strlen(me)) < 0) die("POWERCUT_RUN (cannot write the owner's mark)", side);
        real_close(fd);
        req_drop();
        baton_take();
    }
    setenv("POWERCUT_OWNER", me, 1);
    S.claimed = 1;
    S.owner = getpid();
    if (S.trace_path && !S.tw) {
        /* read-write: the trace writer maps regular files; out of the program's reach */
        S.trace_fd = pc__own_open(S.trace_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (S.trace_fd < 0 && errno == EMFILE)
            die("POWERCUT_TRACE (no free descriptor above the program's for it)", S.trace_path);
        if (S.trace_fd < 0) die("POWERCUT_TRACE (cannot create)", S.trace_path);
        const char *mapped = getenv("POWERCUT_TRACE_MAPPED");
        int rc = mapped && *mapped && strcmp(mapped, "0") ? pc_tw_new_mapped(S.trace_fd, S.sector, &S.tw)
                                                          : pc_tw_new(S.trace_fd, S.sector, &S.tw);
        if (!rc && S.ns == PC_NS_EXT4) rc = pc_tw_journal(S.tw);
        if (rc) die("POWERCUT_TRACE (cannot start the trace)", S.trace_path);
    }
    for (int i = 0; i < S.npending; i++) {
        if (S.tw) trace_fail(pc_tw_mark(S.tw, S.pending[i].kind, S.pending[i].op, S.pending[i].label));
        free(S.pending[i].label);
    }
    S.npending = 0;
    claim_dirs();
    return 1;
}

/* A forked child's copies of the mappings are not write-protected (see wtrack_uffd.c), and
 * what it stores through them lands in the owner's pages unseen by the owner's uffd scans:
 * from now on the owner compares every open page at every step, as on mprotect, so that the
 * child's stores into them are found there (and the backends keep writing the same trace). */
static void atfork_parent(void)
{
    S.forked = 1;
}

static void fchild_arm(void);

/* A forked child shares the owner's trace descriptor and tracked files but not its story:
 * it drops (never flushes) its copy of the trace buffer. Without POWERCUT_RUN it passes
 * everything through; under it, it takes part in the run (fchild_arm). */
static void atfork_child(void)
{
    /* Under POWERCUT_RUN the fork of a process that never claimed (a shell's subshell, `( ... )`
     * or `... &`) is a process of the run like any other: it may own the files in its turn. */
    if (!S.claimed && in_run()) return;
    if (S.claimed && !S.dead && in_run() && S.trace_path && (S.tw || S.fchild)) {
        fchild_arm();
        return;
    }
    S.dead = 1;
    /* the child's copies of the mappings are not registered (no UFFD_FEATURE_EVENT_FORK), and
     * its /proc/self/pagemap descriptor would describe the parent */
    pc__uffd_close();
    S.uffd_ok = -1;
    if (S.tw) {
        pc_tw_free(S.tw);
        S.tw = NULL;
        pc__own_release(S.trace_fd);
        S.trace_fd = -1;
    }
}

/* Whether fd is another name of a tracked file (a hard link, a path through other directories
 * or mounts): identity is the inode. Before the first open, a plain (non-glob) POWERCUT_FILE
 * names one inode too: it is looked up. Sets *known to the file's index, or S.nfiles for the
 * pattern's file not tracked yet. One fstat per open of an untracked file. */
static int same_inode(int fd, struct stat *st, size_t *known)
{
    if (S.is_glob && !S.nfiles) return 0;
    if (fstat(fd, st) || !S_ISREG(st->st_mode)) return 0;
    for (size_t i = 0; i < S.nfiles; i++)
        if (S.files[i].rfd >= 0 && S.files[i].dev == st->st_dev && S.files[i].ino == st->st_ino) {
            *known = i;
            return 1;
        }
    struct stat ps;
    if (S.is_glob || !S.abs_pattern || stat(S.abs_pattern, &ps) || ps.st_dev != st->st_dev ||
        ps.st_ino != st->st_ino)
        return 0;
    *known = S.nfiles;
    return 1;
}

/* A new tracked file's entry, zeroed but for its id (the next one). */
static tfile *new_file(void)
{
    if (S.nfiles == S.fcap) {
        size_t n = S.fcap ? S.fcap * 2 : 4;
        tfile *p = realloc(S.files, n * sizeof *p);
        if (!p) die("memory", "tracked files");
        S.files = p;
        S.fcap = n;
    }
    tfile *f = &S.files[S.nfiles];
    memset(f, 0, sizeof *f);
    f->id = (uint32_t)S.nfiles++;
    return f;
}

/* Before an open that would claim the files (not a read) of a name the patterns match: the
 * run is claimed first (claim_now), so that what the open does (O_TRUNC) is this owner's
 * change, not one made behind the model's back. Another name of a tracked file (a hard link)
 * claims in after_open, after the open. */
static void claim_now(void);
static void fchild_for_name(int dirfd, const char *path, int follow);
static void before_open(int dirfd, const char *path, int flags)
{
    if (!S.active || S.dead || busy || (S.claimed && !S.fchild) || !path || !in_run()) return;
    if ((flags & O_ACCMODE) == O_RDONLY && !(flags & (O_TRUNC | O_CREAT))) return;
    /* a forked child: a truncating open of any name of a tracked file (a hard link the
     * patterns miss) changes it too */
    if (S.fchild && (flags & O_TRUNC)) {
        fchild_for_name(dirfd, path, !(flags & O_NOFOLLOW));
        return;
    }
    char abs[PATH_MAX];
    make_abs(dirfd, path, abs, sizeof abs);
    if (!path_matches(path, abs)) return;
    if (S.fchild) fchild_now();
    else claim_now();
}

/* Under POWERCUT_RUN, a process started with its standard input, output or error open for
 * writing on a file of the run (dash's `cmd > db` opens db in the shell, and cmd writes to
 * its descriptor 1 without opening anything) owns the run from its start, as if it had opened
 * the file: it takes the baton (waiting for the shell to lend it), and the descriptor is
 * tracked. Higher descriptors (a shell's `exec 3>db`, inherited by every command it runs) do
 * not claim: most commands never use them, and each would wait its turn for nothing. */
static void after_open(int fd, int dirfd, const char *path, int flags, int created);
static void adopt_inherited(void)
{
    if (!S.active || S.dead || S.claimed || busy || !S.trace_path || !in_run()) return;
    for (int fd = 0; fd <= 2; fd++) {
        long fl = syscall(SYS_fcntl, fd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) continue;
        char link[64], where[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(link, where, sizeof where - 1);
        struct stat st;
        if (len <= 0 || (size_t)len >= sizeof where - 1 || fstat(fd, &st) || !S_ISREG(st.st_mode)) continue;
        where[len] = 0;
        if (path_matches(NULL, where)) after_open(fd, AT_FDCWD, where, (int)fl & ~(O_CREAT | O_TRUNC), 0);
    }
}

/* A file's content when tracking starts, read through its private descriptor in pieces into
 * the model, the shadow copy and the trace (a FILEZ record begun): the runs of blocks that
 * hold data alone (zeroruns.h), so that a file of mostly zeros (reserved, grown) costs
 * neither side a copy of them. A file that cannot be read whole (an I/O error, or shorter
 * than fstat said: another process shrank it) cannot be modelled: the run stops. */
static void read_initial(tfile *f, const char *abs, uint64_t size)
{
    static uint8_t buf[1 << 16];
    int shadow = use_shadow() && !shadow_fit(f, size ? size : 1);
    for (uint64_t o = 0; o < size;) {
        uint64_t want = size - o < sizeof buf ? size - o : sizeof buf;
        ssize_t r = pread(f->rfd, buf, want, (off_t)o);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            char msg[PATH_MAX + 200];
            snprintf(msg, sizeof msg, "powercut: cannot read %s to start tracking it (%s at offset %llu of %llu bytes)\n",
                     abs, r < 0 ? strerror(errno) : "it ended early", (unsigned long long)o,
                     (unsigned long long)size);
            stop_lost(msg);
        }
        uint64_t n = (uint64_t)r;
        for (uint64_t a = 0, e; (a = pc__next_data(buf, n, a, &e)) < n; a = e) {
            if (S.m) trace_fail(pc__model_fill(S.m, f->id, o + a, buf + a, e - a));
            if (shadow) memcpy(f->shadow + o + a, buf + a, e - a);
            if (S.tw) trace_fail(pc__tw_file_run(S.tw, o + a, buf + a, e - a));
        }
        o += n;
    }
}

/* Called after a successful open of fd: start tracking when the path matches, or when it is
 * another name of a tracked file. `created`: nothing was at the path before the call
 * (names.c), so this open made the name. */
static void after_open(int fd, int dirfd, const char *path, int flags, int created)
{
    if (fd < 0 || !S.active || S.dead || busy) return;
    if ((size_t)fd < S.nfds) S.fds[fd].file = 0; /* a reused number starts untracked */
    if (!path) return;
    char abs[PATH_MAX];
    make_abs(dirfd, path, abs, sizeof abs);
    struct stat st;
    size_t known = SIZE_MAX;
    if (!path_matches(path, abs)) {
        if (!same_inode(fd, &st, &known)) return;
        /* named after the file's tracked path (or the pattern): images go where they would */
        snprintf(abs, sizeof abs, "%s", known < S.nfiles ? S.files[known].path : S.abs_pattern);
    }
    busy++;
    pthread_mutex_lock(&lock);
    /* Under POWERCUT_RUN a process that only reads a tracked file (a shell's `cat f`, `grep`)
     * changes nothing durable: it claims nothing, and is not another owner to refuse. */
    if (!S.claimed && (flags & O_ACCMODE) == O_RDONLY && !(flags & (O_TRUNC | O_CREAT)) && in_run()) goto out;
    if (!claim()) goto out;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) goto out;
    size_t i;
    for (i = 0; i < S.nfiles; i++)
        if (S.files[i].rfd >= 0 && S.files[i].dev == st.st_dev && S.files[i].ino == st.st_ino) break;
    if (i == S.nfiles && S.fchild) {
        /* a forked child's copy lacks the files its owner tracked since: a file it only reads
         * is left to it untracked (it claims nothing, as a reading process of the run); any
         * other open takes the run over (the baton may hold the file) */
        if ((flags & O_ACCMODE) == O_RDONLY && !(flags & (O_TRUNC | O_CREAT))) goto out;
        fchild_take();
        for (i = 0; i < S.nfiles; i++)
            if (S.files[i].rfd >= 0 && S.files[i].dev == st.st_dev && S.files[i].ino == st.st_ino) break;
    }
    if (i == S.nfiles) {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        /* the program's descriptor is open: a failure is no reason to leave the file untracked */
        int rfd = pc__own_open(link, O_RDONLY, 0);
        if (rfd < 0 && errno == EMFILE) die("descriptors (none free above the program's for the shim)", abs);
        if (rfd < 0) die("tracked file (the shim cannot open it again to read it)", abs);
        uint64_t size = (uint64_t)st.st_size;
        tfile *f = new_file();
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->rfd = rfd;
        f->size = size;
        pc__ns_canon(abs, abs, sizeof abs); /* the name as rename and unlink will spell it */
        f->path = strdup(abs);
        df_backed(f, 0, size); /* its content at first open has its blocks */
        /* a name this open made is volatile until its directory is synced (names.c) */
        f->name_new = created && S.ns != PC_NS_NONE;
        if (S.m) trace_fail(pc__model_add_zeroed(S.m, abs, size, NULL));
        if (S.tw) trace_fail(pc__tw_file_begin(S.tw, f->id, abs, size));
        read_initial(f, abs, size);
        if (S.tw) trace_fail(pc__tw_file_end(S.tw));
        if (S.m && f->name_new) trace_fail(pc_model_created(S.m, f->id));
        if (S.tw && f->name_new) trace_fail(pc_tw_created(S.tw, f->id));
        fc_take(f); /* the foreign-change check compares from here on */
    } else if (flags & O_TRUNC) {
        /* a later open with O_TRUNC is a volatile change like ftruncate(0), not a step; of an
         * empty file it changes nothing but st_mtime, which the next check must not take for
         * a change behind the shim's back */
        if (S.files[i].size) note_truncate(&S.files[i], 0);
        else S.files[i].fc_stale = 1;
    }
    set_fd(fd, (int32_t)i + 1, flags);
out:
    pthread_mutex_unlock(&lock);
    busy--;
}

/* ---- the disk-full model ---- */
/* On in a run whose injected error is ENOSPC (POWERCUT_ERROR, pc_shim_set_error): the disk
 * is full from that step on (see the top comment). Blocks are system pages. */
static int df_on(void) { return S.err_step && S.err_errno == ENOSPC; }
static uint64_t blk_lo(uint64_t off) { return off / S.page; }
static uint64_t blk_hi(uint64_t end) { return end / S.page + (end % S.page != 0); }

/* [off, off+len) got blocks: written or allocated while the disk had room. */
static void df_backed(tfile *f, uint64_t off, uint64_t len)
{
    if (df_on() && len && pc__blocks_add(&f->blocks, blk_lo(off), blk_hi(off + len)))
        die("memory", "disk-full model");
}

/* Blocks [lo, hi) are freed (a shrink, a punched hole); the disk stays full all the same. */
static void df_freed(tfile *f, uint64_t lo, uint64_t hi)
{
    if (df_on() && pc__blocks_remove(&f->blocks, lo, hi)) die("memory", "disk-full model");
}

/* While the disk is full: the offset of the first block of [off, off+len) it does not back
 * (a new block would be needed), else UINT64_MAX. */
static uint64_t df_hole(const tfile *f, uint64_t off, uint64_t len)
{
    if (!S.full || !len) return UINT64_MAX;
    uint64_t b = pc__blocks_hole(&f->blocks, blk_lo(off), blk_hi(off + len));
    return b == UINT64_MAX ? b : b * S.page;
}

/* A store into a page of a hole while the disk is full: the kernel's page_mkwrite finds no
 * block for it and answers SIGBUS. Recorded (the trace's last record), said on stderr, and
 * the process killed by SIGBUS with the default action: by the time the shim knows, the store
 * is behind, so a handler of the program has nothing to retry and is not run. */
__attribute__((noreturn)) static void df_sigbus(const tfile *f, uint64_t off, int at_fault)
{
    warn("powercut: SIGBUS: a store through a shared mapping into the page at offset %llu of %s, "
         "a hole the disk cannot back: the disk is full since step %llu (injected ENOSPC)%s\n",
         (unsigned long long)off, f->path, (unsigned long long)S.full_step,
         at_fault ? "" : "; found at the next step or unmap after the store");
    if (S.tw) {
        pc_tw_sigbus(S.tw, f->id, off, S.step, at_fault);
        pc_tw_flush(S.tw);
    }
    S.dead = 1;
    /* raw calls: the default action even where a sanitizer keeps its own handler */
    uint64_t act[8] = {0}, set = UINT64_C(1) << (SIGBUS - 1);
    syscall(SYS_rt_sigaction, SIGBUS, act, NULL, (size_t)8);
    syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, NULL, (size_t)8);
    syscall(SYS_kill, getpid(), SIGBUS);
    _exit(128 + SIGBUS);
}

/* A store through a mapping, found: it got its blocks while the disk had room; once it is
 * full, one into a hole never happened (SIGBUS). */
static void df_store(tfile *f, uint64_t off, uint64_t len)
{
    if (!S.full) {
        df_backed(f, off, len);
        return;
    }
    uint64_t hole = df_hole(f, off, len);
    if (hole != UINT64_MAX) df_sigbus(f, hole, 0);
}

/* ---- mappings and write tracking ---- */
static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    /* a forked child's first store through a tracked mapping: the run is taken over before it
     * lands (see fchild_arm); a sync mapping is writable then, and the store re-runs */
    for (size_t i = 0; S.fchild && !busy && i < S.nmaps; i++) {
        tmap *mp = &S.maps[i];
        if (a < mp->addr || a >= mp->addr + mp->len || (mp->wt != WT_MPROTECT && !mp->child_armed)) continue;
        int armed = mp->child_armed;
        fchild_now();
        if (armed) return;
        break;
    }
    for (size_t i = 0; i < S.nmaps; i++) {
        tmap *mp = &S.maps[i];
        if (mp->wt != WT_MPROTECT || a < mp->addr || a >= mp->addr + mp->len) continue;
        size_t pg = (a - mp->addr) / S.page;
        /* a store into a hole of a full disk is caught at the store itself, when no other
         * call of the shim is under way (the trace is not in use then) */
        if (S.full && !busy) {
            tfile *f = &S.files[mp->file];
            uint64_t fo = mp->off + (uint64_t)pg * S.page;
            if (fo < f->size && df_hole(f, fo, 1) != UINT64_MAX && !pthread_mutex_trylock(&lock))
                df_sigbus(f, fo, 1);
        }
        if (!__atomic_exchange_n(&mp->faulted[pg], 1, __ATOMIC_SEQ_CST)) {
            size_t slot = __atomic_fetch_add(&mp->nf, 1, __ATOMIC_SEQ_CST);
            mp->flist[slot] = pg;
            S.st.faults++;
        }
        /* mprotect is a plain system call, safe in a signal handler */
        if (syscall(SYS_mprotect, mp->addr + pg * S.page, S.page, mp->prot) == 0) return;
        break;
    }
    /* Not ours: hand over to whoever handled SIGSEGV before us, else die as usual. */
    if (S.old_segv.sa_flags & SA_SIGINFO) {
        if (S.old_segv.sa_sigaction) {
            S.old_segv.sa_sigaction(sig, si, uc);
            return;
        }
    } else if (S.old_segv.sa_handler != SIG_DFL && S.old_segv.sa_handler != SIG_IGN) {
        S.old_segv.sa_handler(sig);
        return;
    }
    signal(SIGSEGV, SIG_DFL); /* the faulting instruction re-runs and kills the process */
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void note_write_src(tfile *f, uint64_t off, const void *data, uint64_t len, int from_mmap);

/*
 * Write tracking keeps a small set of "open" pages: a page that faulted stays writable after
 * its harvest, and is compared with a copy of its recorded content at every following step
 * (64-byte chunks; only the changed ones are recorded). A page that has not changed for
 * OPEN_IDLE steps, or the least recently changed beyond OPEN_MAX pages, is protected again.
 * Programs rewrite the same few pages (headers, bitmaps) in every operation: for them a
 * compare (~0.1 us) replaces a fault and two mprotect calls (~9 us on a VM). Per-step cost
 * stays bounded: at most OPEN_MAX page compares plus the pages written since the last step.
 * Closing pages sooner does not pay while a page is rewritten within ~90 steps (a fault costs
 * as much as that many compares): the pager rewrites each of its 8 pages every 2 to 24 steps,
 * and an OPEN_IDLE of 64, 16, or an OPEN_MAX of 4 made its operations 1.1x, 2.4x, 2.9x slower.
 */
#define OPEN_MAX 16
#define OPEN_IDLE 256

static uint64_t page_bytes(const tfile *f, uint64_t foff)
{
    if (foff >= f->size) return 0; /* past the end: touching it would raise SIGBUS */
    return f->size - foff < S.page ? f->size - foff : S.page;
}

/* Whether 64 bytes are equal, inline: a call per chunk would cost more than the compare. */
static inline int chunk_eq(const uint8_t *a, const uint8_t *b)
{
    uint64_t d = 0;
    for (int i = 0; i < 64; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        d |= x ^ y;
    }
    return d == 0;
}

/* An open page whose first n bytes differ from its copy: records each run of changed 64-byte
 * chunks, taking it into the copy first and recording the copy, so that a store racing in
 * from another thread is found at the next compare instead of being lost. Unchanged stretches
 * are skipped 512 bytes per memcmp. */
static void record_changes(openpg *e, tfile *f, const uint8_t *mem, uint64_t n)
{
    uint8_t *copy = e->copy;
    uint64_t run = UINT64_MAX; /* start of the current run of changed chunks */
    for (uint64_t o = 0; o < n;) {
        if (run == UINT64_MAX && n - o >= 512 && !memcmp(mem + o, copy + o, 512)) {
            o += 512;
            continue;
        }
        uint64_t c = n - o < 64 ? n - o : 64;
        int diff = c == 64 ? !chunk_eq(mem + o, copy + o) : memcmp(mem + o, copy + o, c) != 0;
        if (diff && run == UINT64_MAX) run = o;
        if (!diff && run != UINT64_MAX) {
            memcpy(copy + run, mem + run, o - run);
            note_write_src(f, e->foff + run, copy + run, o - run, 1);
            run = UINT64_MAX;
        }
        o += c;
    }
    if (run != UINT64_MAX) {
        memcpy(copy + run, mem + run, n - run);
        note_write_src(f, e->foff + run, copy + run, n - run, 1);
    }
}

/* Whether another tracked writable mapping shows file offset foff of file index fi too: its
 * stores there change the open page without a fault in the page's own mapping. */
static int mapped_twice(uint32_t fi, uint64_t foff)
{
    int n = 0;
    for (size_t i = 0; i < S.nmaps; i++) {
        const tmap *mp = &S.maps[i];
        n += mp->wshared && mp->file == fi && foff >= mp->off && foff - mp->off < mp->len;
    }
    return n > 1;
}

/* On uffd, an open page the scan did not list holds what was recorded, and is not compared,
 * unless something else may have changed it: the shim's own modelled writes into its range
 * mark it (touch_open), a forked child or another mapping of the same bytes may have stored
 * to it unseen. Every other open page is compared, as on mprotect, so that both backends
 * record the same changes at the same steps. */
static void compare_open(void)
{
    for (size_t i = 0; i < S.nopen; i++) {
        openpg *e = &S.open[i];
        int skip = e->wt == WT_UFFD && !e->hit && !S.forked && !mapped_twice(e->file, e->foff);
        e->hit = 0;
        if (skip) continue;
        tfile *f = &S.files[e->file];
        uint64_t n = page_bytes(f, e->foff);
        const uint8_t *mem = (const uint8_t *)e->addr;
        if (!n || !memcmp(mem, e->copy, n)) continue;
        record_changes(e, f, mem, n);
        e->last = S.step;
        for (size_t j = 0; j < S.nmaps; j++) /* a store into an open page: a fault on uffd */
            if (e->addr - S.maps[j].addr < S.maps[j].len) {
                S.maps[j].win_o++;
                break;
            }
    }
}

/* A modelled change of file index fi's bytes in [lo, hi) that was not a store through a
 * mapping (a write call, a truncation): the kernel changed the open pages there without a
 * fault, so they are compared at the next harvest. A write's bytes (data) go into their
 * copies too, as into the model: a copy holds what was recorded, and a store of the old bytes
 * back before that harvest would otherwise compare equal to it and be lost. (A truncation's
 * zeros are left to the compare, which records them as the kernel left the page.) */
static void touch_open(uint32_t fi, uint64_t lo, uint64_t hi, const uint8_t *data)
{
    for (size_t i = 0; i < S.nopen; i++) {
        openpg *e = &S.open[i];
        if (e->file != fi || e->foff >= hi || e->foff + S.page <= lo) continue;
        e->hit = 1;
        uint64_t a = lo > e->foff ? lo : e->foff, b = hi < e->foff + S.page ? hi : e->foff + S.page;
        if (data) memcpy(e->copy + (a - e->foff), data + (a - lo), b - a);
    }
}

/* Write-protects [a, a+len) of a mapping again, so that its next store is noted. */
static void arm(int wt, uintptr_t a, size_t len, int prot)
{
    if (wt == WT_UFFD) pc__uffd_protect(a, len);
    else mprotect((void *)a, len, prot & ~PROT_WRITE);
}

/* Copies of open pages come and go at every step of a program storing all over a mapping:
 * the freed ones are kept for the next rather than returned to malloc each time. */
static uint8_t *spare_copies[2 * OPEN_MAX];
static size_t nspare;

static uint8_t *copy_get(void)
{
    return nspare ? spare_copies[--nspare] : malloc(S.page);
}

static void copy_put(uint8_t *c)
{
    if (nspare < sizeof spare_copies / sizeof spare_copies[0]) spare_copies[nspare++] = c;
    else free(c);
}

static void copies_free(void)
{
    while (nspare) free(spare_copies[--nspare]);
}

static void close_open(size_t i, int protect)
{
    openpg *e = &S.open[i];
    /* on uffd the scan that listed it last protected it then, and a store since is listed by
     * the next scan, which finds it no longer open: the page is recorded whole */
    if (protect && e->wt != WT_UFFD) arm(e->wt, e->addr, S.page, e->prot);
    copy_put(e->copy);
    S.open[i] = S.open[--S.nopen];
}

/* Protects idle pages again, then the least recently changed beyond OPEN_MAX. */
static void trim_open(void)
{
    for (size_t i = 0; i < S.nopen;) {
        if (S.step - S.open[i].last > OPEN_IDLE) close_open(i, 1);
        else i++;
    }
    while (S.nopen > OPEN_MAX) {
        size_t lru = 0;
        for (size_t i = 1; i < S.nopen; i++)
            if (S.open[i].last < S.open[lru].last) lru = i;
        close_open(lru, 1);
    }
}

/* Forgets the open pages of [a, a+len) (unmapped, or protected again by add_map). */
static void drop_open(uintptr_t a, size_t len)
{
    for (size_t i = 0; i < S.nopen;) {
        if (S.open[i].addr >= a && S.open[i].addr < a + len) close_open(i, 0);
        else i++;
    }
}

/* Leaves a just-written page writable, with a copy of its n bytes taken now (the caller
 * records that copy, so a store racing from another thread is compared at the next step
 * rather than lost); NULL if it could not (the caller records the mapping and protects). */
static const uint8_t *open_page(tmap *mp, size_t pg, uint64_t n)
{
    if (S.nopen == S.ocap) {
        size_t nc = S.ocap ? S.ocap * 2 : 2 * OPEN_MAX;
        openpg *p = realloc(S.open, nc * sizeof *p);
        if (!p) return NULL;
        S.open = p;
        S.ocap = nc;
    }
    uint8_t *copy = copy_get();
    if (!copy) return NULL;
    memcpy(copy, (const void *)(mp->addr + pg * S.page), n);
    S.open[S.nopen++] = (openpg){mp->addr + pg * S.page, mp->file, mp->off + (uint64_t)pg * S.page,
                                 S.step, mp->prot, mp->wt, 0, copy};
    return copy;
}

static openpg *find_open(uintptr_t a)
{
    for (size_t i = 0; i < S.nopen; i++)
        if (S.open[i].addr == a) return &S.open[i];
    return NULL;
}

/* uffd backend: a run of pages the scan found written since the last one: open pages among
 * them are compared (hit), the others noted as the SIGSEGV handler notes a fault. */
static void uffd_written(void *ctx, uintptr_t a, size_t len)
{
    tmap *mp = ctx;
    uintptr_t end = mp->addr + mp->len;
    uintptr_t lo = a > mp->addr ? a : mp->addr, hi = a + len < end ? a + len : end;
    if (hi > lo) S.scan_found += (hi - lo) / S.page;
    for (uintptr_t p = lo; p < hi; p += S.page) {
        size_t pg = (p - mp->addr) / S.page;
        openpg *e = find_open(p);
        if (e) {
            e->hit = 1;
            continue;
        }
        /* atomic like the SIGSEGV handler's: it may note pages of this mapping while it
         * changes backend (to_uffd, to_mprotect) */
        if (__atomic_exchange_n(&mp->faulted[pg], 1, __ATOMIC_SEQ_CST)) continue;
        mp->flist[__atomic_fetch_add(&mp->nf, 1, __ATOMIC_SEQ_CST)] = pg;
        S.st.faults++;
    }
}

static void debug_map(const tmap *mp, const char *what)
{
    if (S.debug)
        warn("powercut: mapping %p +%zu KiB of %s: %s\n", (void *)mp->addr, mp->len >> 10,
             S.files[mp->file].path, what);
}

static void set_open_wt(const tmap *mp)
{
    for (size_t i = 0; i < S.nopen; i++)
        if (S.open[i].addr >= mp->addr && S.open[i].addr < mp->addr + mp->len) S.open[i].wt = mp->wt;
}

/* uffd backend: notes the pages written since the last harvest, as the SIGSEGV handler
 * does for the mprotect backend, and protects them again in the same call. If the scan fails
 * (the mapping is no longer registered: nothing the shim does causes that), every page may
 * have been written: all are noted and the mapping continues with the mprotect backend. */
static void uffd_collect(tmap *mp, uintptr_t lo, uintptr_t hi)
{
    if (!pc__uffd_scan(lo, hi - lo, 1, uffd_written, mp)) return;
    warn("powercut: PAGEMAP_SCAN failed (%s); mapping %p continues with mprotect\n", strerror(errno),
         (void *)mp->addr);
    uffd_written(mp, mp->addr, mp->len);
    pc__uffd_unregister(mp->addr, mp->len);
    mp->wt = WT_MPROTECT; /* harvest_map protects what it does not open */
    mp->no_uffd = 1;
    set_open_wt(mp);
    debug_map(mp, "mprotect");
}

/* Switches a mapping from mprotect to uffd, right after its harvest. Pages stay read-only
 * until uffd protects them, so a store from another thread meanwhile is still noted by the
 * SIGSEGV handler (its page then faults twice). Open pages get protected too: their next
 * store costs a minor fault, and the scans skip them. */
static void to_uffd(tmap *mp)
{
    if (!S.uffd_ok) S.uffd_ok = pc__uffd_open() ? -1 : 1;
    if (S.uffd_ok < 0 || pc__uffd_register(mp->addr, mp->len)) {
        mp->no_uffd = 1;
        return;
    }
    mprotect((void *)mp->addr, mp->len, mp->prot);
    mp->wt = WT_UFFD;
    set_open_wt(mp);
    debug_map(mp, "uffd");
}

/* Switches a mapping from uffd to mprotect, right after its harvest: read-only but for the
 * open pages, then a last scan for stores that other threads made before that (noted, and
 * writable again as if they had faulted), then unregistered. */
static void to_mprotect(tmap *mp)
{
    mp->wt = WT_MPROTECT; /* the SIGSEGV handler takes over from here */
    set_open_wt(mp);
    mprotect((void *)mp->addr, mp->len, mp->prot & ~PROT_WRITE);
    for (size_t i = 0; i < S.nopen; i++)
        if (S.open[i].addr >= mp->addr && S.open[i].addr < mp->addr + mp->len)
            mprotect((void *)S.open[i].addr, S.page, mp->prot);
    size_t before = __atomic_load_n(&mp->nf, __ATOMIC_SEQ_CST);
    pc__uffd_scan(mp->addr, mp->len, 0, uffd_written, mp);
    size_t after = __atomic_load_n(&mp->nf, __ATOMIC_SEQ_CST);
    for (size_t j = before; j < after; j++)
        mprotect((void *)(mp->addr + mp->flist[j] * S.page), S.page, mp->prot);
    pc__uffd_unregister(mp->addr, mp->len);
    debug_map(mp, "mprotect");
}

/*
 * POWERCUT_MMAP=track chooses each mapping's backend from what it costs, per WINDOW
 * harvests of the mapping. A uffd scan costs every harvest (COST_SCAN_CALL, plus
 * COST_SCAN_PAGE per page of the mapping); each page found written is then cheaper than with
 * mprotect by COST_PAGE_SAVED (a minor fault and one ioctl instead of a signal and two
 * mprotect calls). A mapping starts with mprotect (nothing to pay while nothing is written),
 * and switches when the other backend would have cost less than half as much over the
 * window: a workload near the balance does not flip back and forth, and the cost of a step
 * stays within twice the cheaper backend's, i.e. proportional to the pages written. With the
 * pager, whose written pages stay open, that is mprotect; with stores scattered over a few
 * MiB, uffd; over 64 MiB, where a scan walks 16k page table entries, mprotect again. The
 * costs are those measured on the VM of faults/README.md; only their ratios matter.
 */
#define WINDOW 64
#define COST_SCAN_CALL 700
#define COST_SCAN_PAGE 1
#define COST_PAGE_SAVED 9000
#define COST_OPEN_FAULT 1000

/* uffd also protects open pages (uffd_collect): each store into one costs it a fault
 * (COST_OPEN_FAULT, counted as the open pages found changed) that mprotect, which leaves them
 * writable and compares them, does not pay: the pager's rewrites of its few hot pages keep it
 * on mprotect for that reason too. */
static void adapt(tmap *mp, size_t written)
{
    if (!mp->wt || S.mmap_force || mp->no_uffd) return;
    mp->win_c += (uint32_t)written;
    if (++mp->win_h < WINDOW) return;
    uint64_t scans = (uint64_t)mp->win_h * (COST_SCAN_CALL + mp->len / S.page * COST_SCAN_PAGE) +
                     (uint64_t)mp->win_o * COST_OPEN_FAULT;
    uint64_t saved = (uint64_t)mp->win_c * COST_PAGE_SAVED;
    mp->win_h = mp->win_c = mp->win_o = 0;
    if (mp->wt == WT_MPROTECT && saved > 2 * scans) to_uffd(mp);
    else if (mp->wt == WT_UFFD && 2 * saved < scans) to_mprotect(mp);
}

/*
 * A page written since it was last protected is dirty whole (the kernel writes it back
 * whole), so the model must mark all of it dirty; but most of its bytes usually hold what
 * they held (a scattered store changes a few chunks of a page written before). Recording
 * it whole costs 4 KiB of trace a page, which on tmpfs costs more than everything else the
 * harvest does. So the trace records such a page as DIRTY of the page (trace.c: written
 * with the bytes it holds) followed by WRITEs of the 64-byte chunks that differ from the
 * model's volatile content: the same model after it, hence the same crash states, in a
 * tenth of the bytes. The volatile content is the model's when the shim keeps one; without
 * one (record-only runs), a copy of each page recorded before (pshadow), kept up to date
 * with every change the trace records for its bytes (psh_write, psh_truncate). A page with
 * no copy yet is recorded whole. The copies cost memory as the pages written do, capped at
 * PSH_MAX bytes (beyond it new pages are recorded whole, as before).
 */
typedef struct {
    uint8_t **pg; /* by page index in the file; NULL: no copy */
    size_t n;
} pshadow;
static pshadow *psh;  /* by file index */
static size_t npsh;
static uint64_t psh_bytes;
#define PSH_MAX ((uint64_t)256 << 20)
#define PSH_PAGES_MAX ((size_t)1 << 22) /* pages of a file with copies: bounds the table */

static int psh_on(void) { return S.tw && !S.m; }

static uint8_t *psh_get(size_t fi, uint64_t pg)
{
    return fi < npsh && pg < psh[fi].n ? psh[fi].pg[pg] : NULL;
}

/* A new zeroed copy for page pg of file fi; NULL past the caps or without memory. */
static uint8_t *psh_new(size_t fi, uint64_t pg)
{
    if (pg >= PSH_PAGES_MAX || psh_bytes + S.page > PSH_MAX) return NULL;
    if (fi >= npsh) {
        pshadow *p = realloc(psh, (fi + 1) * sizeof *p);
        if (!p) return NULL;
        memset(p + npsh, 0, (fi + 1 - npsh) * sizeof *p);
        psh = p;
        npsh = fi + 1;
    }
    pshadow *sh = &psh[fi];
    if (pg >= sh->n) {
        size_t nn = sh->n ? sh->n : 64;
        while (nn <= pg) nn *= 2;
        uint8_t **t = realloc(sh->pg, nn * sizeof *t);
        if (!t) return NULL;
        memset(t + sh->n, 0, (nn - sh->n) * sizeof *t);
        sh->pg = t;
        sh->n = nn;
    }
    uint8_t *c = calloc(1, S.page);
    if (!c) return NULL;
    psh_bytes += S.page;
    return sh->pg[pg] = c;
}

/* The trace recorded data at [off, off+len) of file fi: the copies there follow. */
static void psh_write(size_t fi, uint64_t off, const uint8_t *data, uint64_t len)
{
    if (fi >= npsh || !len) return;
    for (uint64_t pg = off / S.page; pg <= (off + len - 1) / S.page && pg < psh[fi].n; pg++) {
        uint8_t *c = psh[fi].pg[pg];
        if (!c) continue;
        uint64_t lo = pg * S.page > off ? pg * S.page : off;
        uint64_t hi = (pg + 1) * S.page < off + len ? (pg + 1) * S.page : off + len;
        memmove(c + (lo - pg * S.page), data + (lo - off), hi - lo);
    }
}

/* The trace recorded a truncation of file fi from old to size bytes: a shrink zeroes the
 * copies past the new end (the model reads zeros there, and after a regrow too). */
static void psh_truncate(size_t fi, uint64_t old, uint64_t size)
{
    if (fi >= npsh || size >= old) return;
    for (uint64_t pg = size / S.page; pg <= (old - 1) / S.page && pg < psh[fi].n; pg++) {
        uint8_t *c = psh[fi].pg[pg];
        if (!c) continue;
        uint64_t lo = pg * S.page > size ? 0 : size - pg * S.page;
        memset(c + lo, 0, S.page - lo);
    }
}

static void psh_free(void)
{
    for (size_t i = 0; i < npsh; i++) {
        for (size_t j = 0; j < psh[i].n; j++) free(psh[i].pg[j]);
        free(psh[i].pg);
    }
    free(psh);
    psh = NULL;
    npsh = 0;
    psh_bytes = 0;
}

/* Records the n bytes at file offset fo of a page written since it was last protected,
 * from src (a stable copy, or the mapping itself): into the model whole; into the trace as
 * DIRTY + the changed chunks when the volatile content there is known, else whole. */
static void record_page(tfile *f, uint64_t fo, const uint8_t *src, uint64_t n)
{
    size_t fi = (size_t)(f - S.files);
    if (S.tw) {
        const uint8_t *base = NULL, *vol;
        uint64_t vlen;
        if (S.m) {
            if (!pc_model_volatile(S.m, f->id, &vol, &vlen) && fo + n <= vlen) base = vol + fo;
        } else {
            base = psh_get(fi, fo / S.page);
        }
        /* the page's copy (pshadow) takes each changed run as it is recorded */
        uint8_t *copy = base && !S.m ? (uint8_t *)base : NULL;
        if (base) {
            trace_fail(pc__tw_dirty(S.tw, f->id, fo, n));
            uint64_t run = UINT64_MAX; /* start of the current run of changed chunks */
            for (uint64_t o = 0; o < n;) {
                /* equal stretches go 512 bytes per memcmp */
                if (run == UINT64_MAX && n - o >= 512 && !memcmp(src + o, base + o, 512)) {
                    o += 512;
                    continue;
                }
                uint64_t c = n - o < 64 ? n - o : 64;
                int diff = c == 64 ? !chunk_eq(src + o, base + o) : memcmp(src + o, base + o, c) != 0;
                if (diff && run == UINT64_MAX) run = o;
                if (!diff && run != UINT64_MAX) {
                    trace_fail(pc_tw_write(S.tw, f->id, fo + run, src + run, o - run, 1));
                    if (copy) memcpy(copy + run, src + run, o - run);
                    run = UINT64_MAX;
                }
                o += c;
            }
            if (run != UINT64_MAX) {
                trace_fail(pc_tw_write(S.tw, f->id, fo + run, src + run, n - run, 1));
                if (copy) memcpy(copy + run, src + run, n - run);
            }
        } else {
            trace_fail(pc_tw_write(S.tw, f->id, fo, src, n, 1));
            if (psh_on() && (copy = psh_new(fi, fo / S.page))) memcpy(copy, src, n);
        }
    }
    if (S.m) trace_fail(pc_model_write(S.m, f->id, fo, src, n));
}

/* Records the pages written since the last harvest (whole), and opens them. */
static void harvest_map(tmap *mp)
{
    size_t nf = __atomic_load_n(&mp->nf, __ATOMIC_SEQ_CST);
    if (!nf) {
        adapt(mp, 0);
        return;
    }
    tfile *f = &S.files[mp->file];
    qsort(mp->flist, nf, sizeof(size_t), cmp_size);
    for (size_t j = 0; j < nf; j++) {
        size_t pg = mp->flist[j];
        uint64_t fo = mp->off + (uint64_t)pg * S.page;
        uint64_t n = page_bytes(f, fo);
        /* pages past the end are protected again at once: comparing them would fault */
        const void *src = n ? open_page(mp, pg, n) : NULL;
        if (src) mp->flist[j] = SIZE_MAX;
        else src = (const void *)(mp->addr + pg * S.page);
        if (n) {
            df_store(f, fo, n);
            record_page(f, fo, src, n);
        }
        S.st.harvested++;
        mp->faulted[pg] = 0;
    }
    /* re-protect the others in runs of contiguous pages: one system call per run (uffd's
     * scan protected them already) */
    for (size_t j = 0; j < nf && mp->wt != WT_UFFD;) {
        if (mp->flist[j] == SIZE_MAX) {
            j++;
            continue;
        }
        size_t k = j + 1;
        while (k < nf && mp->flist[k] == mp->flist[k - 1] + 1) k++;
        arm(mp->wt, mp->addr + mp->flist[j] * S.page, (k - j) * S.page, mp->prot);
        j = k;
    }
    __atomic_store_n(&mp->nf, 0, __ATOMIC_SEQ_CST);
    adapt(mp, nf);
}

/* The process's page faults so far (all its threads), or UINT64_MAX. */
static uint64_t fault_count(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return UINT64_MAX;
    return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

/*
 * The uffd scans of a harvest. A scan walks every page table entry of its range (~1 us per
 * 4 MiB on the VM of faults/README.md, as much as the rest of a step), but the pages it can
 * find are those stored to since the last scans, and after those every page of every uffd
 * mapping was write-protected: each such page has since cost the process at least one page
 * fault (the kernel counts a fault whoever takes it: the program's stores, its kernel calls
 * copying into the mapping, in any of its threads; min_flt, or maj_flt for a retried one).
 * So the faults counted since the last scans began bound what there is to find: none, no
 * scan; as many as the pages a scan of the synced range of an msync step lists (the common
 * case of a program storing into what it syncs next), no scan of the rest. Otherwise (other
 * faults: the program touching fresh memory, more pages stored to) every mapping is scanned
 * whole. The count is read before the scans begin, so a fault during them is counted again
 * next time: at worst a needless whole scan. (Stores made into this process's memory by
 * another process, process_vm_writev or a debugger's, fault in that process: they are found
 * at the next whole scan only.)
 */
static void uffd_collect_all(void)
{
    size_t nu = 0;
    for (size_t i = 0; i < S.nmaps; i++) nu += S.maps[i].wt == WT_UFFD;
    if (!nu) return;
    uint64_t now = fault_count();
    uint64_t since = S.faults_ok && now != UINT64_MAX ? now - S.faults_seen : UINT64_MAX;
    S.faults_seen = now;
    S.faults_ok = now != UINT64_MAX;
    if (since == 0) return;
    if (since != UINT64_MAX && S.hint_hi > S.hint_lo) {
        S.scan_found = 0;
        uintptr_t hlo = S.hint_lo & ~(uintptr_t)(S.page - 1);
        for (size_t i = 0; i < S.nmaps; i++) {
            tmap *mp = &S.maps[i];
            uintptr_t lo = hlo > mp->addr ? hlo : mp->addr;
            uintptr_t hi = S.hint_hi < mp->addr + mp->len ? S.hint_hi : mp->addr + mp->len;
            if (mp->wt == WT_UFFD && lo < hi) uffd_collect(mp, lo, hi);
        }
        if (S.scan_found == since) return;
    }
    for (size_t i = 0; i < S.nmaps; i++)
        if (S.maps[i].wt == WT_UFFD) uffd_collect(&S.maps[i], S.maps[i].addr, S.maps[i].addr + S.maps[i].len);
}

/* Before every step (and unmap, remap, MAP_FIXED): what the process stored through mappings.
 * The uffd scans come first: they tell which of their open pages to compare. */
static void harvest_all(void)
{
    uffd_collect_all();
    if (S.nopen) compare_open();
    for (size_t i = 0; i < S.nmaps; i++) harvest_map(&S.maps[i]);
    trim_open();
}

/* POWERCUT_MMAP=sync: the stores in [lo, hi) of a mapping become known to the model by
 * comparing the mapped bytes with the model's volatile copy, sector by sector; runs of
 * differing sectors are noted as writes. Cost: the bytes compared, i.e. the synced range. */
static void note_write_src(tfile *f, uint64_t off, const void *data, uint64_t len, int from_mmap);
static int volatile_copy(tfile *f, const uint8_t **vol, uint64_t *vlen)
{
    if (S.m) return pc_model_volatile(S.m, f->id, vol, vlen);
    if (!f->shadow) return -1;
    *vol = f->shadow;
    *vlen = f->size;
    return 0;
}

/* Notes as writes the runs of chunks of [fo, fend) where cur (the file's bytes from fo on, as
 * the process sees them now) differs from the model's volatile copy. fo is 64-byte aligned
 * (mapping offsets are page-aligned). With a trace, chunks are 64 bytes: metadata updates of
 * a few bytes cost a few bytes of trace. Without one, whole sectors (of 64 bytes to 4 KiB,
 * a power of two; the model marks whole sectors dirty anyway, so the same ones): fewer
 * compares. */
static void diff_into_model(tfile *f, uint64_t fo, uint64_t fend, const uint8_t *cur)
{
    const uint8_t *vol;
    uint64_t vlen;
    if (volatile_copy(f, &vol, &vlen)) return;
    if (fend > vlen) fend = vlen;
    uint64_t chunk = 64;
    if (!S.tw && S.sector >= 64 && 4096 % S.sector == 0 && fo % S.sector == 0) chunk = S.sector;
    uint64_t run = UINT64_MAX; /* start of the current run of differing chunks */
    for (uint64_t o = fo; o < fend; o += chunk) {
        uint64_t n = fend - o < chunk ? fend - o : chunk;
        const uint8_t *mem = cur + (o - fo);
        /* Equal stretches (most of a file compared in full) go 4 KiB per memcmp. */
        if (run == UINT64_MAX && fend - o >= 4096 && !memcmp(mem, vol + o, 4096)) {
            o += 4096 - chunk;
            continue;
        }
        int diff = n == 64 ? !chunk_eq(mem, vol + o) : memcmp(mem, vol + o, n) != 0;
        if (diff && run == UINT64_MAX) run = o;
        if (!diff && run != UINT64_MAX) {
            note_write_src(f, run, cur + (run - fo), o - run, 1);
            run = UINT64_MAX;
            volatile_copy(f, &vol, &vlen); /* the write may have moved it */
        }
    }
    if (run != UINT64_MAX) note_write_src(f, run, cur + (run - fo), fend - run, 1);
}

/* The file's holes in a range compared with the model: a hole reads as zeros and holds no
 * store (a store through a mapping fills its page first), so a hole is compared as zeros,
 * without reading the mapping there. Reading it would fault every page of it in, and on tmpfs
 * a read fault on a hole allocates a page: a whole-file msync of a file grown by ftruncate
 * would fill it. Only long ranges are scanned (two lseeks per data extent cost more than a
 * short compare); a filesystem without SEEK_DATA shows all data, and is compared as before. */
#define HOLE_SCAN_MIN (64u << 10)

static void diff_zeros(tfile *f, uint64_t o, uint64_t end)
{
    static const uint8_t zeros[1 << 16];
    for (uint64_t n; o < end; o += n) {
        n = end - o < sizeof zeros ? end - o : sizeof zeros;
        diff_into_model(f, o, o + n, zeros);
    }
}

static void diff_mapped(tfile *f, uint64_t fo, uint64_t fend, const uint8_t *cur)
{
    uint64_t o = fo;
    while (fend - fo >= HOLE_SCAN_MIN && f->rfd >= 0 && o < fend) {
        off_t d = lseek(f->rfd, (off_t)o, SEEK_DATA);
        if (d < 0 && errno != ENXIO) break; /* cannot tell: the rest through the mapping */
        /* ENXIO: no data from o on. Only whole pages are taken as zeros: a data extent is
         * widened to pages (its start rounded down, its end up) and compared as before. */
        uint64_t data = d < 0 || (uint64_t)d > fend ? fend : (uint64_t)d & ~(uint64_t)4095;
        if (data < o) data = o;
        diff_zeros(f, o, data);
        o = data;
        if (o >= fend) return;
        off_t h = lseek(f->rfd, (off_t)data, SEEK_HOLE);
        if (h < 0) break;
        uint64_t hole = ((uint64_t)h + 4095) & ~(uint64_t)4095;
        if (hole > fend) hole = fend;
        if (hole <= data) break; /* not what SEEK_HOLE promises: no loop on it */
        diff_into_model(f, data, hole, cur + (data - fo));
        o = hole;
    }
    if (o < fend) diff_into_model(f, o, fend, cur + (o - fo));
}

static void capture_range(tmap *mp, uintptr_t lo, uintptr_t hi)
{
    if (!mp->wshared) return;
    if (lo < mp->addr) lo = mp->addr;
    if (hi > mp->addr + mp->len) hi = mp->addr + mp->len;
    if (lo >= hi) return;
    uint64_t fo = (mp->off + (lo - mp->addr)) & ~(uint64_t)63, fend = mp->off + (hi - mp->addr);
    diff_mapped(&S.files[mp->file], fo, fend, (const uint8_t *)(mp->addr + (fo - mp->off)));
}

/* Lazy mode: the whole file, read through the shim's own descriptor. The page cache is the
 * volatile state, so this sees every store made through any mapping, unmapped since or not,
 * without faulting a page in: a cut and an fsync need nothing else, and munmap and mremap
 * need no compare at all. Cost: the file size, at those steps only. */
static void capture_content(tfile *f)
{
    static uint8_t buf[1 << 16];
    const uint8_t *vol;
    uint64_t vlen;
    if (volatile_copy(f, &vol, &vlen)) return;
    for (uint64_t o = 0; o < vlen;) {
        uint64_t want = vlen - o < sizeof buf ? vlen - o : sizeof buf;
        ssize_t r = pread(f->rfd, buf, want, (off_t)o);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return; /* shorter than the model knows: a hole reads as zeros there anyway */
        diff_into_model(f, o, o + (uint64_t)r, buf);
        o += (uint64_t)r;
    }
}

/* Sync mode: every writable shared mapping of file index fi, in full (fsync, munmap); lazy
 * mode: the file's content. */
static void capture_file(size_t fi)
{
    if (!S.mmap_sync) return;
    if (S.mmap_lazy) {
        capture_content(&S.files[fi]);
        return;
    }
    for (size_t i = 0; i < S.nmaps; i++)
        if (S.maps[i].file == fi) capture_range(&S.maps[i], S.maps[i].addr, S.maps[i].addr + S.maps[i].len);
}

/* Lazy mode, at a cut: every tracked file's content, so that the model knows every store
 * made before the cut, as write tracking would have noted it (see the top comment). */
static void capture_all(void)
{
    for (size_t i = 0; i < S.nfiles; i++)
        if (S.files[i].rfd >= 0) capture_content(&S.files[i]); /* a retired one knows it all */
}

/* The first backend of a new tracked mapping: uffd when forced and the kernel offers it,
 * else mprotect (adapt may switch later). Falling back is silent (POWERCUT_DEBUG tells which
 * ran): the traces are the same, only the cost differs. */
static int first_backend(void)
{
    if (S.mmap_force != WT_UFFD) return WT_MPROTECT;
    if (!S.uffd_ok) S.uffd_ok = pc__uffd_open() ? -1 : 1;
    return S.uffd_ok > 0 ? WT_UFFD : WT_MPROTECT;
}

/* shared: the mapping is VM_SHARED (see do_mmap); mprotect never changes that, so the parts
 * kept by munmap or moved by mremap inherit it. */
static int add_map(uintptr_t addr, size_t len, uint32_t file, uint64_t off, int prot, int shared)
{
    if (S.nmaps == S.mcap) {
        size_t n = S.mcap ? S.mcap * 2 : 8;
        tmap *p = realloc(S.maps, n * sizeof *p);
        if (!p) return -1;
        S.maps = p;
        S.mcap = n;
    }
    tmap mp;
    memset(&mp, 0, sizeof mp);
    mp.addr = addr;
    mp.len = (len + S.page - 1) / S.page * S.page;
    mp.file = file;
    mp.off = off;
    mp.prot = prot;
    mp.vmshared = shared != 0;
    mp.wshared = shared && (prot & PROT_WRITE);
    mp.wt = mp.wshared && !S.mmap_sync ? first_backend() : WT_NONE;
    if (mp.wt) {
        size_t np = mp.len / S.page;
        mp.faulted = calloc(np, 1);
        mp.flist = malloc(np * sizeof(size_t));
        if (!mp.faulted || !mp.flist) {
            free(mp.faulted);
            free(mp.flist);
            return -1;
        }
        if (mp.wt == WT_UFFD && pc__uffd_register(addr, mp.len)) mp.wt = WT_MPROTECT;
        if (mp.wt == WT_MPROTECT) {
            /* what is left of a uffd mapping after munmap or an mremap in place is still
             * registered: the parts start over with mprotect */
            if (S.uffd_ok > 0) pc__uffd_unregister(addr, mp.len);
            mprotect((void *)addr, mp.len, prot & ~PROT_WRITE);
        }
    }
    if (mp.wshared && !mp.wt && S.fchild) { /* its first store takes the run over (fchild_arm) */
        mprotect((void *)addr, mp.len, prot & ~PROT_WRITE);
        mp.child_armed = 1;
    }
    if (mp.wshared) S.files[file].fc_ok = 0; /* stores move st_mtime: no baseline (fc_check) */
    if (mp.wshared) debug_map(&mp, mp.wt == WT_UFFD ? "uffd" : mp.wt == WT_MPROTECT ? "mprotect" : S.mmap_lazy ? "lazy" : "sync");
    S.maps[S.nmaps++] = mp; /* published last: the handler may scan the table at any time */
    return 0;
}

/* Forgets mapping i; its range was unmapped or replaced, or the caller unregistered it. */
static void drop_map(size_t i)
{
    tmap mp = S.maps[i];
    S.maps[i] = S.maps[--S.nmaps];
    free(mp.faulted);
    free(mp.flist);
}

/* Forgets [a, a+len) of every tracked mapping (after munmap, or the old range of mremap),
 * keeping the parts outside as mappings of their own. Callers harvested first. */
static void forget_range(uintptr_t a, size_t len)
{
    len = (len + S.page - 1) / S.page * S.page;
    for (size_t i = 0; i < S.nmaps;) {
        tmap mp = S.maps[i];
        uintptr_t e = mp.addr + mp.len;
        if (a + len <= mp.addr || a >= e) {
            i++;
            continue;
        }
        drop_map(i);
        drop_open(mp.addr, mp.len); /* the parts kept are protected again by add_map */
        if (a > mp.addr) add_map(mp.addr, a - mp.addr, mp.file, mp.off, mp.prot, mp.vmshared);
        if (a + len < e)
            add_map(a + len, e - (a + len), mp.file, mp.off + (a + len - mp.addr), mp.prot, mp.vmshared);
        /* added maps go to the end; restart the scan from i (it now holds another map) */
    }
}

/* ---- steps ---- */
enum { GO_CALL = 0, GO_ERROR = 1, GO_CUT = 2, GO_SHORT = 3 };

static const char *const fiu_names[] = {
    "", "powercut/write", "powercut/pwrite", "powercut/writev", "powercut/pwritev",
    "powercut/ftruncate", "powercut/fallocate", "powercut/posix_fallocate", "powercut/msync",
    "powercut/fsync", "powercut/fdatasync", "powercut/sync_file_range", "powercut/fsync_dir",
    "powercut/fdatasync_dir", "powercut/pwritev2", "powercut/copy_file_range", "powercut/sendfile", "powercut/exit",
    "powercut/rename", "powercut/unlink", "powercut/link", "powercut/sync", "powercut/syncfs",
    "powercut/truncate", "powercut/mkdir", "powercut/rmdir", "powercut/symlink",
};
_Static_assert(sizeof fiu_names / sizeof *fiu_names == PC_CALL_COUNT_, "a fault point per call");

static void fc_check_step(int call, uint32_t file_id);
static void fc_after_step(void);
static void output_note(void);

/* Opens step: harvests mapping stores, numbers the step, decides call/error/cut, records it.
 * Called with the lock held. */
static int step_open(int call, uint32_t file_id, uint64_t off, uint64_t len, int *err)
{
    harvest_all();
    fc_check_step(call, file_id);
    uint64_t k = ++S.step;
    S.st.steps = k;
    int go = GO_CALL;
    *err = 0;
    S.torn_now = 0;
    if (S.cut_step == k) go = GO_CUT;
    else if (S.err_step == k) {
        go = S.err_errno == PC_ERRNO_SHORT ? GO_SHORT : GO_ERROR;
        *err = go == GO_ERROR ? S.err_errno : 0;
        S.torn_now = go == GO_ERROR && S.err_torn;
    } else {
        int fn = fiu_fail(fiu_names[call]);
        if (fn) {
            uintptr_t info = (uintptr_t)fiu_failinfo();
            if (info == 1) go = GO_CUT;
            else if (info == 2) go = GO_SHORT;
            else {
                go = GO_ERROR;
                *err = fn;
            }
        }
    }
    if (go == GO_ERROR && *err == ENOSPC && S.err_step == k && df_on() && !S.full) {
        S.full = 1; /* from now on, for the rest of the process */
        S.full_step = k;
    } else if (S.nospace && (go == GO_CALL || go == GO_SHORT)) {
        go = GO_ERROR; /* the call needs blocks the full disk has not */
        *err = ENOSPC;
    }
    S.nospace = 0;
    if (go == GO_CUT && S.mmap_lazy) capture_all();
    /* A short transfer is a write's way to fail half-way; other calls are interrupted. */
    if (go == GO_SHORT && call != PC_CALL_WRITE && call != PC_CALL_PWRITE && call != PC_CALL_WRITEV &&
        call != PC_CALL_PWRITEV && call != PC_CALL_PWRITEV2) {
        go = GO_ERROR;
        *err = EINTR;
    }
    output_note();
    if (S.tw) trace_fail(pc_tw_step(S.tw, k, call, file_id, *err, off, len));
    if (S.m) trace_fail(pc_model_step_begin(S.m, NULL));
    return go;
}

static void step_close(void)
{
    if (S.tw) trace_fail(pc_tw_step_end(S.tw));
    if (S.m) trace_fail(pc_model_step_end(S.m));
    fc_after_step();
}

static int shadow_fit(tfile *f, uint64_t size)
{
    if (size <= f->shcap) return 0;
    uint64_t nc = f->shcap ? f->shcap : 65536;
    while (nc < size) nc *= 2;
    uint8_t *p = realloc(f->shadow, nc);
    if (!p) {
        warn("powercut: out of memory for the volatile copy\n");
        return -1;
    }
    memset(p + f->shcap, 0, nc - f->shcap);
    f->shadow = p;
    f->shcap = nc;
    return 0;
}

static int use_shadow(void) { return S.mmap_sync && !S.m; }

static void note_write_src(tfile *f, uint64_t off, const void *data, uint64_t len, int from_mmap)
{
    if (!len) return;
    if (from_mmap) df_store(f, off, len);
    else if (!S.full) df_backed(f, off, len); /* (when full, the call found room first) */
    if (S.m) trace_fail(pc_model_write(S.m, f->id, off, data, len));
    if (S.tw) trace_fail(pc_tw_write(S.tw, f->id, off, data, len, from_mmap));
    if (psh_on()) psh_write((size_t)(f - S.files), off, data, len);
    if (use_shadow() && !shadow_fit(f, off + len)) memcpy(f->shadow + off, data, len);
    if (off + len > f->size) f->size = off + len;
    if (!from_mmap) {
        f->fc_stale = 1;
        touch_open((uint32_t)(f - S.files), off, off + len, data);
    }
}

static void note_write(tfile *f, uint64_t off, const void *data, uint64_t len)
{
    note_write_src(f, off, data, len, 0);
}

static void note_truncate(tfile *f, uint64_t size)
{
    if (size < f->size) df_freed(f, blk_hi(size), UINT64_MAX);
    if (S.m) trace_fail(pc_model_truncate(S.m, f->id, size));
    if (S.tw) trace_fail(pc_tw_truncate(S.tw, f->id, size));
    if (psh_on()) psh_truncate((size_t)(f - S.files), f->size, size);
    if (use_shadow() && !shadow_fit(f, size) && size < f->size)
        memset(f->shadow + size, 0, f->size - size);
    touch_open((uint32_t)(f - S.files), size < f->size ? size : f->size, UINT64_MAX, NULL);
    f->size = size;
    f->fc_stale = 1;
}

static void note_sync(tfile *f, uint64_t off, uint64_t len)
{
    if (S.m) trace_fail(pc_model_sync(S.m, f->id, off, len));
    if (S.tw) trace_fail(pc_tw_sync(S.tw, f->id, off, len));
}

/* The open step's syncs (noted already) end torn by the injected error's outcome. */
static void note_fail(void)
{
    if (S.m) trace_fail(pc_model_step_fail(S.m, &S.err_tear));
    if (S.tw) trace_fail(pc_tw_step_fail(S.tw, &S.err_tear));
}

/* After a failed sync the kernel has cleaned the pages of its range (fsync-gate) and
 * write-protects them again, so the next store to one dirties it whole, whatever bytes it
 * stores. Open pages of the range would see only stores that change bytes: protect them
 * again, so that their next store is noted and harvested like a first one. */
static void rearm_range(tfile *f, uint64_t off, uint64_t len)
{
    uint32_t file = (uint32_t)(f - S.files);
    uint64_t end = len > UINT64_MAX - off ? UINT64_MAX : off + len;
    for (size_t i = 0; i < S.nopen;) {
        openpg *e = &S.open[i];
        if (e->file == file && e->foff + S.page > off && e->foff < end) close_open(i, 1);
        else i++;
    }
}

static void note_lose(tfile *f, uint64_t off, uint64_t len)
{
    if (S.m) trace_fail(pc_model_lose(S.m, f->id, off, len));
    if (S.tw) trace_fail(pc_tw_lose(S.tw, f->id, off, len));
    rearm_range(f, off, len);
}

static int write_file(const char *path, const uint8_t *buf, uint64_t len)
{
    int fd = real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int rc = 0;
    while (len && !rc) {
        long r = syscall(SYS_write, fd, buf, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) rc = -1;
        else {
            buf += r;
            len -= (uint64_t)r;
        }
    }
    real_close(fd);
    return rc;
}

/* The image of a symbolic link: a link to the target `len` bytes name. */
static int write_link(const char *path, const uint8_t *target, uint64_t len)
{
    char to[PATH_MAX];
    if (len >= sizeof to) return -1;
    memcpy(to, target, (size_t)len);
    to[len] = 0;
    if (unlink(path) != 0 && errno != ENOENT) return -1;
    return real_symlinkat ? real_symlinkat(to, AT_FDCWD, path) : (int)syscall(SYS_symlinkat, to, AT_FDCWD, path);
}

static void image_path(const char *name, char *out, size_t n)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (!S.image) snprintf(out, n, "%s.crash", name);
    else if (S.is_glob) snprintf(out, n, "%s/%s", S.image, base);
    else snprintf(out, n, "%s", S.image);
}

/* The power cut: images of every tracked file, then the end of the process. Called with the
 * lock held and the step's effects noted. Without a callback it never returns. */
static void cut_to_files(void)
{
    if (S.tw) {
        pc_tw_flush(S.tw);
        S.st.trace_bytes = pc__tw_total(S.tw);
    }
    int failed = 0;
    uint32_t nnames = 0;
    if (!S.m || pc_model_name_count(S.m, &nnames)) {
        warn("powercut: cannot build the crash image: no model\n");
        failed = 1;
    }
    /* An image per name the model knows: the file it holds at the cut, nothing for a name
     * that does not exist then, and no word on a name holding a file the shim never tracked.
     * A plain POWERCUT_IMAGE is the tracked path's alone. */
    for (uint32_t i = 0; i < nnames; i++) {
        const char *name;
        uint32_t holds = PC_NAME_OTHER;
        uint8_t *img = NULL;
        uint64_t len = 0;
        int rc = pc_model_name(S.m, i, &name);
        if (!rc && S.image && !S.is_glob && S.nfiles && strcmp(name, S.files[0].path)) continue;
        if (!rc) rc = pc_model_image_name(S.m, i, &S.crash, &holds);
        if (!rc && PC_NAME_IS_FILE(holds)) rc = pc_model_image(S.m, holds, &S.crash, &img, &len);
        if (rc) {
            warn("powercut: cannot build the crash image: %s\n", pc_strerror(rc));
            failed = 1;
            continue;
        }
        if (holds == PC_NAME_OTHER || holds == PC_NAME_DIR) continue; /* images are files */
        char path[PATH_MAX + 16];
        image_path(name, path, sizeof path);
        if (holds == PC_NAME_NONE) { /* the name is not on the disk: the image is no file at all */
            if (unlink(path) != 0 && errno != ENOENT && errno != EISDIR) {
                warn("powercut: cannot remove %s (the file does not exist after this cut)\n", path);
                failed = 1;
            }
            continue;
        }
        int link = 0;
        pc_model_file_is_symlink(S.m, holds, &link);
        if (link ? write_link(path, img, len) : write_file(path, img, len)) {
            warn("powercut: cannot write the crash image %s\n", path);
            failed = 1;
        }
        free(img);
    }
    /* under POWERCUT_RUN the other processes of the run find the power off (refuse_in_run) */
    char mark[PATH_MAX + 16];
    if (!failed && run_side("cut", mark, sizeof mark)) {
        int fd = real_open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) real_close(fd);
    }
    _exit(failed ? 98 : 99);
}

/* Stops following stores: the program keeps its mappings, writable and unregistered. */
static void untrack_maps(void)
{
    for (size_t i = 0; i < S.nmaps; i++) {
        if (S.maps[i].wt == WT_MPROTECT) mprotect((void *)S.maps[i].addr, S.maps[i].len, S.maps[i].prot);
        if (S.maps[i].wt == WT_UFFD) pc__uffd_unregister(S.maps[i].addr, S.maps[i].len);
        S.maps[i].wt = WT_NONE;
    }
    while (S.nopen) close_open(S.nopen - 1, 0);
}

/* In-process cut: the images are built under the lock, kept in S.cut_imgs (freed by the next
 * reset, since the callback may longjmp away), and handed to the callback after everything
 * is released. The shim then passes every call through until pc_shim_reset. */
static int cut_and_unlock(void)
{
    if (!S.cb) cut_to_files();
    if (S.tw) pc_tw_flush(S.tw);
    S.dead = 1;
    free(S.cut_imgs);
    free(S.cut_lens);
    S.cut_imgs = calloc(S.nfiles ? S.nfiles : 1, sizeof *S.cut_imgs);
    S.cut_lens = calloc(S.nfiles ? S.nfiles : 1, sizeof *S.cut_lens);
    S.ncut = 0;
    for (size_t i = 0; S.cut_imgs && S.cut_lens && S.m && i < S.nfiles; i++) {
        if (pc_model_image(S.m, S.files[i].id, &S.crash, &S.cut_imgs[i], &S.cut_lens[i])) break;
        S.ncut = i + 1;
    }
    pc_image_cb cb = S.cb;
    void *ctx = S.cbctx;
    size_t n = S.ncut;
    int goes_on = S.cut_goes_on;
    if (goes_on) untrack_maps();
    pthread_mutex_unlock(&lock);
    busy--;
    for (size_t i = 0; i < n; i++) cb(ctx, S.files[i].path, S.cut_imgs[i], S.cut_lens[i]);
    return goes_on ? 0 : ECANCELED;
}

/* The end of an interposed call cut in-process: it fails with ECANCELED, or (after
 * pc_shim_set_after_cut(PC_AFTER_CUT_CONTINUE)) it is made for real, as every later call. */
#define CUT_RETURN(fail, real_call)          \
    do {                                     \
        int e_ = cut_and_unlock();           \
        if (e_) {                            \
            errno = e_;                      \
            return (fail);                   \
        }                                    \
        return (real_call);                  \
    } while (0)

/* A forked child not in the run yet takes it over here (the steps that hold no tfile pointer
 * before this; the others use step_fd). */
#define BEGIN_STEP() \
    do { \
        busy++; \
        pthread_mutex_lock(&lock); \
        if (S.fchild) fchild_take(); \
    } while (0)
#define END_STEP() do { pthread_mutex_unlock(&lock); busy--; } while (0)

/* ---- writes ---- */
static uint64_t iov_total(const struct iovec *iov, int n)
{
    uint64_t t = 0;
    for (int i = 0; i < n; i++) t += iov[i].iov_len;
    return t;
}

static void note_iov(tfile *f, uint64_t off, const struct iovec *iov, int n, uint64_t done)
{
    for (int i = 0; i < n && done; i++) {
        uint64_t l = iov[i].iov_len < done ? iov[i].iov_len : done;
        note_write(f, off, iov[i].iov_base, l);
        off += l;
        done -= l;
    }
}

static void parse_marks(const void *buf, size_t len);

/* A call the kernel rejects before it changes anything is still a step (a traced run and a
 * cut run number the same calls), but a cut on it must not apply its effect: the checks the
 * kernel makes from the arguments and the descriptor's access mode alone. */
static int not_writable(int flags) { return (flags & O_ACCMODE) == O_RDONLY; }

/* EBADF: not open for writing; EINVAL: a negative pwrite offset (INT64_MIN, see pwrite), more
 * than IOV_MAX vectors, or more than SSIZE_MAX bytes. */
static int write_rejected(int flags, const struct iovec *iov, int n, int64_t pos)
{
    if (not_writable(flags) || pos == INT64_MIN || n > IOV_MAX) return 1;
    uint64_t t = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len > (uint64_t)SSIZE_MAX - t) return 1;
        t += iov[i].iov_len;
    }
    return 0;
}

/* pwritev2's flags for the call under way in this thread (0: none; see do_pwritev2). */
static __thread int rwf_now __attribute__((tls_model("initial-exec")));
static int rwf_flags(int flags);

/* One body for write, pwrite(64), writev, pwritev(64). pos < 0: the file offset, except
 * INT64_MIN: a negative offset the kernel refuses. */
static ssize_t do_write(int call, int fd, const struct iovec *iov, int n, int64_t pos,
                        ssize_t (*real)(int, const struct iovec *, int, int64_t))
{
    int flags;
    tfile *f = step_fd(fd, &flags);
    if (!f) {
        if (S.mark_fd >= 0 && fd == S.mark_fd && !busy) {
            ssize_t r = real(fd, iov, n, pos);
            if (r > 0) {
                uint64_t left = (uint64_t)r;
                for (int i = 0; i < n && left; i++) {
                    size_t l = iov[i].iov_len < left ? iov[i].iov_len : left;
                    parse_marks(iov[i].iov_base, l);
                    left -= l;
                }
            }
            return r;
        }
        return real(fd, iov, n, pos);
    }
    if (rwf_now) flags = rwf_flags(flags); /* pwritev2: its RWF_* flags act as open flags */
    BEGIN_STEP();
    uint64_t total = iov_total(iov, n), off;
    if (flags & O_APPEND) off = f->size; /* Linux appends even for pwrite on O_APPEND */
    else if (pos >= 0) off = (uint64_t)pos;
    else {
        off_t cur = lseek(fd, 0, SEEK_CUR);
        off = cur < 0 ? 0 : (uint64_t)cur;
    }
    int nospace = !write_rejected(flags, iov, n, pos) && df_hole(f, off, total) != UINT64_MAX;
    S.nospace = nospace;
    int err, go = step_open(call, f->id, off, total, &err);
    int sync = (flags & (O_SYNC | O_DSYNC)) != 0;
    if (go == GO_CUT) {
        /* a write the kernel would refuse changes nothing, and one of 0 bytes syncs nothing;
         * one the full disk has no room for fails with ENOSPC */
        if (!write_rejected(flags, iov, n, pos) && !nospace) {
            note_iov(f, off, iov, n, total);
            if (sync && total) note_sync(f, off, total);
        }
        CUT_RETURN(-1, real(fd, iov, n, pos));
    }
    if (go == GO_SHORT && total < 2) { /* nothing shorter to return: interrupted */
        go = GO_ERROR;
        err = EINTR;
    }
    if (go == GO_ERROR) {
        step_close();
        END_STEP();
        errno = err;
        return -1;
    }
    ssize_t r;
    if (go == GO_SHORT) { /* the first half reaches the file, the call returns its length */
        uint64_t want = total / 2, left = want;
        struct iovec *part = malloc((size_t)n * sizeof *part);
        int m = 0;
        for (int i = 0; part && i < n && left; i++, m++) {
            part[i] = iov[i];
            if (part[i].iov_len > left) part[i].iov_len = left;
            left -= part[i].iov_len;
        }
        r = part ? real(fd, part, m, pos) : -1;
        free(part);
        if (!part) errno = ENOMEM;
    } else {
        r = real(fd, iov, n, pos);
    }
    int saved = errno;
    if (r > 0) {
        note_iov(f, off, iov, n, (uint64_t)r);
        if (sync) note_sync(f, off, (uint64_t)r);
    }
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

static ssize_t rw_write(int fd, const struct iovec *iov, int n, int64_t pos)
{
    (void)pos;
    (void)n;
    return real_write(fd, iov[0].iov_base, iov[0].iov_len);
}
static ssize_t rw_pwrite(int fd, const struct iovec *iov, int n, int64_t pos)
{
    (void)n;
    return real_pwrite(fd, iov[0].iov_base, iov[0].iov_len, (off_t)pos);
}
static ssize_t rw_pwrite64(int fd, const struct iovec *iov, int n, int64_t pos)
{
    (void)n;
    return real_pwrite64(fd, iov[0].iov_base, iov[0].iov_len, (off_t)pos);
}
static ssize_t rw_writev(int fd, const struct iovec *iov, int n, int64_t pos)
{
    (void)pos;
    return real_writev(fd, iov, n);
}
static ssize_t rw_pwritev(int fd, const struct iovec *iov, int n, int64_t pos)
{
    return real_pwritev(fd, iov, n, (off_t)pos);
}
static ssize_t rw_pwritev64(int fd, const struct iovec *iov, int n, int64_t pos)
{
    return real_pwritev64(fd, iov, n, (off_t)pos);
}

PC_EXPORT ssize_t write(int fd, const void *buf, size_t count)
{
    ENSURE();
    if (!S.active) return real_write(fd, buf, count);
    struct iovec v = {(void *)buf, count};
    return do_write(PC_CALL_WRITE, fd, &v, 1, -1, rw_write);
}

PC_EXPORT ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
    ENSURE();
    if (!S.active) return real_pwrite(fd, buf, count, off);
    struct iovec v = {(void *)buf, count};
    return do_write(PC_CALL_PWRITE, fd, &v, 1, off < 0 ? INT64_MIN : off, rw_pwrite);
}

PC_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off)
{
    ENSURE();
    if (!S.active) return real_pwrite64(fd, buf, count, off);
    struct iovec v = {(void *)buf, count};
    return do_write(PC_CALL_PWRITE, fd, &v, 1, off < 0 ? INT64_MIN : off, rw_pwrite64);
}

PC_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    ENSURE();
    if (!S.active || n < 0) return real_writev(fd, iov, n);
    return do_write(PC_CALL_WRITEV, fd, iov, n, -1, rw_writev);
}

PC_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    ENSURE();
    if (!S.active || n < 0) return real_pwritev(fd, iov, n, off);
    return do_write(PC_CALL_PWRITEV, fd, iov, n, off < 0 ? INT64_MIN : off, rw_pwritev);
}

PC_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
    ENSURE();
    if (!S.active || n < 0) return real_pwritev64(fd, iov, n, off);
    return do_write(PC_CALL_PWRITEV, fd, iov, n, off < 0 ? INT64_MIN : off, rw_pwritev64);
}

/* ---- size changes ---- */
static int do_ftruncate(int fd, off_t len, int (*real)(int, off_t))
{
    int flags;
    tfile *f = step_fd(fd, &flags);
    if (!f || len < 0) return real(fd, len);
    BEGIN_STEP();
    int err, go = step_open(PC_CALL_FTRUNCATE, f->id, (uint64_t)len, 0, &err);
    if (go == GO_CUT) {
        if (!not_writable(flags)) note_truncate(f, (uint64_t)len); /* else EINVAL */
        CUT_RETURN(-1, real(fd, len));
    }
    if (go == GO_ERROR) {
        step_close();
        END_STEP();
        errno = err;
        return -1;
    }
    int r = real(fd, len);
    int saved = errno;
    if (r == 0) note_truncate(f, (uint64_t)len);
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

PC_EXPORT int ftruncate(int fd, off_t len)
{
    ENSURE();
    return do_ftruncate(fd, len, real_ftruncate);
}

PC_EXPORT int ftruncate64(int fd, off_t len)
{
    ENSURE();
    return do_ftruncate(fd, len, real_ftruncate64);
}

/* truncate(2) names the file by its path: a tracked file's (symlinks followed, as the call
 * does) is a step like ftruncate, whatever descriptors the program holds on it; any other path
 * passes through. At a cut the size change is the model's when the call would succeed (the
 * file writable by the process: access(W_OK), as ftruncate asks whether its descriptor is). */
static int ns_watching(void);
static long tracked_at(int dirfd, const char *path, int follow, int *exists);
static void fchild_for_name(int dirfd, const char *path, int follow);

static int do_truncate_path(const char *path, off_t len, int (*real)(const char *, off_t))
{
    int there;
    long fi;
    if (S.fchild && path) fchild_for_name(AT_FDCWD, path, 1);
    if (!ns_watching() || !path || len < 0 || (fi = tracked_at(AT_FDCWD, path, 1, &there)) < 0) return real(path, len);
    BEGIN_STEP();
    tfile *f = &S.files[fi];
    int err, go = step_open(PC_CALL_TRUNCATE, f->id, (uint64_t)len, 0, &err);
    if (go == GO_CUT) {
        if (access(path, W_OK) == 0) note_truncate(f, (uint64_t)len);
        CUT_RETURN(-1, real(path, len));
    }
    if (go == GO_ERROR) {
        step_close();
        END_STEP();
        errno = err;
        return -1;
    }
    int r = real(path, len), saved = errno;
    if (r == 0) note_truncate(f, (uint64_t)len);
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

PC_EXPORT int truncate(const char *path, off_t len)
{
    ENSURE();
    return do_truncate_path(path, len, real_truncate);
}

PC_EXPORT int truncate64(const char *path, off_t len)
{
    ENSURE();
    return do_truncate_path(path, len, real_truncate64);
}

/* After a fallocate of any mode, the model re-reads what may have changed from the file: the
 * modes (punch hole, zero range, collapse, insert) are many and the kernel knows them best.
 * The cost is the bytes from the range start to the end of the file (collapse/insert shift
 * everything after the range); plain allocation only changes the size. */
static void note_fallocate(tfile *f, int mode, uint64_t off, uint64_t len)
{
    struct stat st;
    if (fstat(f->rfd, &st)) return;
    uint64_t nsize = (uint64_t)st.st_size, old = f->size;
    if (mode == 0 || mode == FALLOC_FL_KEEP_SIZE) {
        if (nsize != old) note_truncate(f, nsize);
        return;
    }
    uint64_t end = nsize > old ? nsize : old;
    if (nsize != old) note_truncate(f, nsize);
    if (off >= nsize) return;
    uint64_t n = end < nsize ? end - off : nsize - off;
    if (!(mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) && len < n) n = len;
    uint8_t *buf = malloc(n ? n : 1);
    if (buf && !read_all(f->rfd, buf, off, n)) note_write(f, off, buf, n);
    free(buf);
}

/* What vfs_fallocate refuses whatever the file system: EBADF (not open for writing), EFBIG
 * (the end wraps), EOPNOTSUPP or EINVAL (two of the exclusive modes, a hole punched without
 * FALLOC_FL_KEEP_SIZE, a collapse or insert with it). Modes a file system lacks fail there
 * too, but only the call can tell. */
static int fallocate_rejected(int flags, int mode, off_t off, off_t len)
{
    if (not_writable(flags) || off > INT64_MAX - len) return 1;
    int excl = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE |
                       FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE);
    if (excl & (excl - 1)) return 1;
    if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) return 1;
    return (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) && (mode & FALLOC_FL_KEEP_SIZE);
}

static int do_fallocate(int call, int fd, int mode, off_t off, off_t len,
                        int (*real)(int, int, off_t, off_t), int (*preal)(int, off_t, off_t))
{
    int flags;
    tfile *f = step_fd(fd, &flags);
    if (!f || off < 0 || len <= 0)
        return preal ? preal(fd, off, len) : real(fd, mode, off, len);
    BEGIN_STEP();
    /* every mode but punching a hole and collapsing a range may need new blocks */
    int allocates = !(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE));
    int nospace = allocates && !fallocate_rejected(flags, mode, off, len) &&
                  df_hole(f, (uint64_t)off, (uint64_t)len) != UINT64_MAX;
    S.nospace = nospace;
    int err, go = step_open(call, f->id, (uint64_t)off, (uint64_t)len, &err);
    if (go == GO_CUT) {
        /* the in-flight allocation: only the size change is modelled here */
        uint64_t end = (uint64_t)off + (uint64_t)len;
        if (!fallocate_rejected(flags, mode, off, len) && !nospace && !(mode & FALLOC_FL_KEEP_SIZE) && end > f->size)
            note_truncate(f, end);
        int e = cut_and_unlock();
        if (!e) return preal ? preal(fd, off, len) : real(fd, mode, off, len);
        if (preal) return e;
        errno = e;
        return -1;
    }
    if (go == GO_ERROR) {
        step_close();
        END_STEP();
        if (preal) return err;
        errno = err;
        return -1;
    }
    int r = preal ? preal(fd, off, len) : real(fd, mode, off, len);
    int saved = errno;
    if (r == 0) {
        /* the blocks, below: what the re-read shows (zeros of a punched hole) is no
         * allocation, so note_write_src must add none for it (it adds none while full) */
        int full = S.full;
        uint64_t u = (uint64_t)off, l = (uint64_t)len;
        S.full = 1;
        note_fallocate(f, preal ? 0 : mode, u, l);
        S.full = full;
        if (mode & FALLOC_FL_PUNCH_HOLE) df_freed(f, blk_hi(u), blk_lo(u + l));
        else if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) df_backed(f, 0, f->size);
        else df_backed(f, u, l);
    }
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

PC_EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
    ENSURE();
    return do_fallocate(PC_CALL_FALLOCATE, fd, mode, off, len, real_fallocate, NULL);
}

PC_EXPORT int fallocate64(int fd, int mode, off_t off, off_t len)
{
    ENSURE();
    return do_fallocate(PC_CALL_FALLOCATE, fd, mode, off, len, real_fallocate64, NULL);
}

PC_EXPORT int posix_fallocate(int fd, off_t off, off_t len)
{
    ENSURE();
    return do_fallocate(PC_CALL_POSIX_FALLOCATE, fd, 0, off, len, NULL, real_posix_fallocate);
}

PC_EXPORT int posix_fallocate64(int fd, off_t off, off_t len)
{
    ENSURE();
    return do_fallocate(PC_CALL_POSIX_FALLOCATE, fd, 0, off, len, NULL, real_posix_fallocate64);
}

/* ---- syncs ---- */
static int is_known(const char *name);

/* Whether the directory `dir` holds a name the model knows: the first tracked file's id among
 * those names (UINT32_MAX: only names of renamed or removed ones), 1; 0 if none. */
static int dir_holds(const char *dir, uint32_t *id)
{
    int any = 0;
    *id = UINT32_MAX;
    for (size_t i = 0; i < S.nfiles; i++)
        if (pc__ns_in_dir(S.files[i].path, dir)) {
            *id = S.files[i].id;
            return 1;
        }
    for (size_t i = 0; i < S.nknown && !any; i++) any = pc__ns_in_dir(S.known[i], dir);
    return any;
}

/* fsync/fdatasync of a directory holding a name the model knows: a step; under
 * POWERCUT_NAMESPACE=posix it makes the changed names there durable (names.c). An injected
 * error fails it with no effect. */
static int do_fsync_dir(int call, int fd, const char *dir, uint32_t id, int (*real)(int))
{
    BEGIN_STEP();
    int dcall = call == PC_CALL_FSYNC ? PC_CALL_FSYNC_DIR : PC_CALL_FDATASYNC_DIR;
    int err, go = step_open(dcall, id, 0, 0, &err);
    if (go == GO_ERROR) {
        step_close();
        END_STEP();
        errno = err;
        return -1;
    }
    int r = go == GO_CUT ? 0 : real(fd), saved = errno;
    if (r == 0 && S.ns != PC_NS_NONE) { /* ext4: the model commits its journal */
        if (S.m) trace_fail(pc_model_dir_sync_path(S.m, dir));
        if (S.tw) trace_fail(pc_tw_dir_sync_path(S.tw, dir));
    }
    if (go == GO_CUT) CUT_RETURN(-1, real(fd));
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

/* ext4: an fsync of a file commits the journal when the file changed since the last commit
 * (pc_model_journal_commit decides, from the model a record-only run does not keep). */
static void note_commit(tfile *f, int datasync)
{
    if (S.ns != PC_NS_EXT4) return;
    if (S.m) trace_fail(pc_model_journal_commit(S.m, f->id, datasync));
    if (S.tw) trace_fail(pc_tw_journal_commit(S.tw, f->id, datasync));
}

static int before_claim(void);
static void pdir_synced(const char *dir);
static int in_tracked_tree(const char *name);

static int do_fsync(int call, int fd, int (*real)(int))
{
    tfile *f = step_fd(fd, NULL);
    if (!f) {
        uint64_t dev, ino;
        uint32_t id;
        char dir[PATH_MAX];
        int isdir = S.active && !S.dead && !busy && (S.nfiles || S.nknown) && pc__ns_is_dir(fd, &dev, &ino) &&
                    !pc__ns_fd_path(fd, dir, sizeof dir);
        /* a forked child's copy may lack the names its owner made since: the run first */
        if (isdir && S.fchild && in_tracked_tree(dir)) fchild_now();
        if (isdir && dir_holds(dir, &id)) return do_fsync_dir(call, fd, dir, id, real);
        if (S.npdirs && before_claim() && pc__ns_is_dir(fd, &dev, &ino) && !pc__ns_fd_path(fd, dir, sizeof dir)) {
            int r = real(fd), saved = errno; /* before the claim: directories made in it are durable */
            if (r == 0) pdir_synced(dir);
            errno = saved;
            return r;
        }
        return real(fd);
    }
    BEGIN_STEP();
    int err, go = step_open(call, f->id, 0, UINT64_MAX, &err);
    capture_file((size_t)(f - S.files)); /* sync mode: the mapped stores this fsync covers */
    if (go == GO_CUT) {
        note_sync(f, 0, UINT64_MAX);
        note_commit(f, call == PC_CALL_FDATASYNC);
        CUT_RETURN(-1, real(fd));
    }
    if (go == GO_ERROR) {
        if (S.torn_now) { /* the outcome of the injected error: part written, the rest lost */
            note_sync(f, 0, UINT64_MAX);
            note_fail();
            rearm_range(f, 0, UINT64_MAX);
        } else if (err == EIO) note_lose(f, 0, UINT64_MAX);
        step_close();
        END_STEP();
        errno = err;
        return -1;
    }
    int r = real(fd);
    int saved = errno;
    if (r == 0) {
        note_sync(f, 0, UINT64_MAX);
        note_commit(f, call == PC_CALL_FDATASYNC);
    } else if (saved == EIO) note_lose(f, 0, UINT64_MAX);
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

PC_EXPORT int fsync(int fd)
{
    ENSURE();
    return do_fsync(PC_CALL_FSYNC, fd, real_fsync);
}

PC_EXPORT int fdatasync(int fd)
{
    ENSURE();
    return do_fsync(PC_CALL_FDATASYNC, fd, real_fdatasync);
}

/* sync(2), syncfs(2): Linux writes every dirty page and inode (of the file system of fd, for
 * syncfs) and waits for them, so when the call returns every tracked file's data and size are
 * durable (those on that file system) and, under a namespace profile, every changed name (in
 * directories on it); ext4 commits its journal. One step (file UINT32_MAX); a cut in it lands
 * any part of all that, as in any sync. `all`: every file system (sync). An injected error
 * (syncfs only: sync cannot fail) has no effect. */
static void sync_names(int all, dev_t dev)
{
    if (S.ns == PC_NS_NONE) return;
    size_t n = S.nfiles + S.nknown, done = 0;
    char **dirs = calloc(n ? n : 1, sizeof *dirs);
    if (!dirs) die("memory", "sync");
    for (size_t i = 0; i < n; i++) {
        const char *path = i < S.nfiles ? S.files[i].path : S.known[i - S.nfiles];
        const char *slash = strrchr(path, '/');
        char dir[PATH_MAX];
        if (!slash) continue; /* the shim keeps absolute names */
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        size_t k = 0;
        while (k < done && strcmp(dirs[k], dir)) k++;
        if (k < done) continue;
        struct stat st;
        if (!all && (stat(dir, &st) || st.st_dev != dev)) continue;
        if (!(dirs[done++] = strdup(dir))) die("memory", "sync");
        if (S.m) trace_fail(pc_model_dir_sync_path(S.m, dir));
        if (S.tw) trace_fail(pc_tw_dir_sync_path(S.tw, dir));
    }
    for (size_t k = 0; k < done; k++) free(dirs[k]);
    free(dirs);
}

static int do_sync(int call, int fd)
{
    struct stat st;
    int all = call == PC_CALL_SYNC;
    if (!all && fstat(fd, &st)) return -1; /* EBADF, as the call would say */
    BEGIN_STEP();
    int err, go = step_open(call, UINT32_MAX, 0, 0, &err);
    if (go == GO_ERROR) {
        step_close();
        END_STEP();
        errno = err;
        return -1;
    }
    for (size_t i = 0; i < S.nfiles; i++) {
        tfile *f = &S.files[i];
        if (!all && f->dev != st.st_dev) continue;
        capture_file(i); /* sync mode: the mapped stores it writes */
        note_sync(f, 0, UINT64_MAX);
        note_commit(f, 0);
    }
    sync_names(all, all ? 0 : st.st_dev);
    if (go == GO_CUT) {
        int e = cut_and_unlock();
        if (e) {
            errno = e;
            return -1;
        }
        return all ? (real_sync(), 0) : real_syncfs(fd);
    }
    int r = all ? (real_sync(), 0) : real_syncfs(fd), saved = errno;
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

PC_EXPORT void sync(void)
{
    ENSURE();
    if (!busy && run_owned_elsewhere() && !run_awaited()) refuse_in_run("called sync()");
    baton_take_now(); /* after the owner ended: its volatile data is made durable, a step */
    req_drop();       /* asked, and found nothing to take: no longer first in line */
    if (!S.active || S.dead || busy || !S.nfiles || !claim()) {
        real_sync();
        return;
    }
    (void)do_sync(PC_CALL_SYNC, -1);
}

PC_EXPORT int syncfs(int fd)
{
    ENSURE();
    if (!busy && run_owned_elsewhere() && !run_awaited()) refuse_in_run("called syncfs()");
    baton_take_now();
    req_drop();
    if (!S.active || S.dead || busy || !S.nfiles || !claim()) return real_syncfs(fd);
    return do_sync(PC_CALL_SYNCFS, fd);
}

PC_EXPORT int sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
    ENSURE();
    tfile *f = step_fd(fd, NULL);
    if (!f) return real_sync_file_range(fd, off, n, flags);
    /* guarantees nothing about durability: a step without effect */
    BEGIN_STEP();
    int err, go = step_open(PC_CALL_SYNC_FILE_RANGE, f->id, (uint64_t)off, (uint64_t)n, &err);
    if (go == GO_CUT) CUT_RETURN(-1, real_sync_file_range(fd, off, n, flags));
    int r = go == GO_ERROR ? -1 : real_sync_file_range(fd, off, n, flags);
    int saved = go == GO_ERROR ? err : errno;
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

/* msync as mm/msync.c does it. The kernel rejects (EINVAL) an unaligned addr, unknown
 * flags, and MS_SYNC with MS_ASYNC; a range that wraps fails with ENOMEM; len is rounded up
 * to whole pages and len 0 does nothing. Otherwise it walks the mappings in the range and,
 * for MS_SYNC, fsyncs (datasync) the file range under every VM_SHARED one: the whole range,
 * whatever made it dirty (a store or write()). A gap in the range is skipped and reported as
 * ENOMEM at the end; a mapping that is not VM_SHARED (private, or shared over a read-only
 * descriptor) is skipped silently. The call is a step when its page-rounded range (len 0:
 * addr) touches a tracked mapping, rejected or not, so that a cut run numbers steps as the
 * traced run does; a rejected call has no effect, cut or not. */
static int msync_wraps(uintptr_t a, size_t len)
{
    return len > UINTPTR_MAX - a || UINTPTR_MAX - a - len < S.page - 1;
}

static int msync_valid(uintptr_t a, size_t len, int flags)
{
    if (flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC)) return 0;
    if (a & (S.page - 1)) return 0;
    if ((flags & MS_ASYNC) && (flags & MS_SYNC)) return 0;
    return len && !msync_wraps(a, len);
}

PC_EXPORT int msync(void *addr, size_t len, int flags)
{
    ENSURE();
    if (!S.active || S.dead || busy || !S.nmaps) return real_msync(addr, len, flags);
    uintptr_t a = (uintptr_t)addr;
    int valid = msync_valid(a, len, flags);
    /* the page-rounded range; [addr, addr+1) for len 0, past the end for one that wraps */
    uintptr_t e = !len ? a + 1 : msync_wraps(a, len) ? UINTPTR_MAX : (a + len + S.page - 1) & ~(uintptr_t)(S.page - 1);
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < S.nmaps; i++)
        if (a < S.maps[i].addr + S.maps[i].len && e > S.maps[i].addr) {
            first = i;
            break;
        }
    if (first == SIZE_MAX) return real_msync(addr, len, flags);
    BEGIN_STEP();
    tmap *m0 = &S.maps[first];
    uint64_t off0 = m0->off + (a > m0->addr ? a - m0->addr : 0);
    S.hint_lo = a; /* what the step's harvest scans first (uffd_collect_all) */
    S.hint_hi = e;
    int err, go = step_open(PC_CALL_MSYNC, S.files[m0->file].id, off0, len, &err);
    S.hint_lo = S.hint_hi = 0;
    for (size_t i = 0; valid && S.mmap_sync && (flags & MS_SYNC) && i < S.nmaps; i++)
        if (a < S.maps[i].addr + S.maps[i].len && e > S.maps[i].addr) capture_range(&S.maps[i], a, e);
    int r = 0, saved = 0;
    if (go == GO_CALL) {
        r = real_msync(addr, len, flags);
        saved = errno;
    }
    /* The file ranges under every VM_SHARED tracked mapping the call covers. A gap (ENOMEM)
     * syncs them all the same; a cut predicts that, as it cannot see untracked mappings. An
     * injected error with an outcome (POWERCUT_ERROR=STEP:EIO:TEAR) syncs part of them, and
     * the rest is lost (fsync-gate). */
    int torn = valid && go == GO_ERROR && S.torn_now && (flags & MS_SYNC);
    int durable = valid && (flags & MS_SYNC) &&
                  (go == GO_CUT || (go == GO_CALL && (r == 0 || saved == ENOMEM)) || torn);
    int lose = valid && !torn && ((go == GO_ERROR && err == EIO) || (go == GO_CALL && r != 0 && saved == EIO));
    for (size_t i = 0; i < S.nmaps && (durable || lose); i++) {
        tmap *mp = &S.maps[i];
        if (!mp->vmshared || !(a < mp->addr + mp->len && e > mp->addr)) continue;
        uintptr_t lo = a > mp->addr ? a : mp->addr;
        uintptr_t hi = e < mp->addr + mp->len ? e : mp->addr + mp->len;
        tfile *f = &S.files[mp->file];
        if (durable) note_sync(f, mp->off + (lo - mp->addr), hi - lo);
        else note_lose(f, mp->off + (lo - mp->addr), hi - lo);
        if (torn) rearm_range(f, mp->off + (lo - mp->addr), hi - lo);
    }
    if (torn) note_fail();
    if (go == GO_CUT) CUT_RETURN(-1, real_msync(addr, len, flags));
    step_close();
    END_STEP();
    if (go == GO_ERROR) {
        errno = err;
        return -1;
    }
    errno = saved;
    return r;
}

/* ---- tracking guards: what would otherwise reach a tracked file unseen ---- */
/*
 * The model is only as good as what the shim sees, and a change it misses used to be missing
 * from every image without a word. So:
 * - pwritev2 (pwritev64v2) is a write like pwritev, its RWF_* flags acting as open flags for
 *   the one call (rwf_flags): RWF_DSYNC/RWF_SYNC make the written range durable in the same
 *   step (as on an O_DSYNC descriptor), RWF_APPEND writes at the end, RWF_NOAPPEND at the
 *   offset; RWF_HIPRI, RWF_NOWAIT, RWF_DONTCACHE change nothing the model knows, and
 *   RWF_ATOMIC is a plain write (the model may tear it: safe, not exact). Flags the shim does
 *   not know could mean anything: refused.
 * - copy_file_range and sendfile(64) into a tracked file are writes of the bytes that land:
 *   read back from the file after the call; at a cut (no call), read from the source. They
 *   sync nothing even on an O_SYNC/O_DSYNC descriptor (the kernel honours it on some paths
 *   only; the model errs towards less durability).
 * - What cannot be modelled is refused before it happens (lost_track): splice into a tracked
 *   file (its bytes come from a pipe, which a cut cannot read ahead), sendfile from a source
 *   that is not a regular file (the same), unknown pwritev2 flags. The shim says so on stderr
 *   and ends the process with exit status 97 (PC_EXIT_LOST), the trace flushed.
 * - Changes behind the shim's back (stdio's internal writes, another process, a forked child)
 *   are looked for at every step on a file (fc_check_file): st_mtim and st_size are taken
 *   when tracking starts and after each step on it that may change it, and compared (one
 *   fstat) when the next step on it opens (after a change of the shim's outside a step, an
 *   open with O_TRUNC, the content is compared instead). A difference is confirmed against
 *   the model's volatile content (read through the shim's descriptor) where one is kept,
 *   said on stderr, and ends the process with exit status 97. A file with a writable shared
 *   mapping is not checked (stores move st_mtime on some file systems, at their fault,
 *   unseen), nor at the first step after one was created.
 * - POWERCUT_EXIT_STEP=1: the destructor (exit(), a return from main) makes one last step,
 *   "exit", on no file in particular: its crash states are those where nothing volatile
 *   survives. Off by default: it would renumber nothing, but add a step to every trace.
 */

#ifndef RWF_HIPRI
#define RWF_HIPRI 0x01
#endif
#ifndef RWF_DSYNC
#define RWF_DSYNC 0x02
#endif
#ifndef RWF_SYNC
#define RWF_SYNC 0x04
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x08
#endif
#ifndef RWF_APPEND
#define RWF_APPEND 0x10
#endif
#ifndef RWF_NOAPPEND
#define RWF_NOAPPEND 0x20
#endif
#ifndef RWF_ATOMIC
#define RWF_ATOMIC 0x40
#endif
#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x80
#endif
#define RWF_KNOWN (RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND | RWF_NOAPPEND | RWF_ATOMIC | \
                   RWF_DONTCACHE)

static struct {
    int output;      /* POWERCUT_OUTPUT=1 */
    int64_t out_at[3]; /* the stdout/stderr offsets last recorded (index 1, 2; -1: none yet) */
    int exit_step;   /* POWERCUT_EXIT_STEP=1 */
    int foreign_off; /* POWERCUT_FOREIGN=off */
    size_t cur;      /* index of the open step's file if its call may change it, else SIZE_MAX */
} G = {.cur = SIZE_MAX};

/* POWERCUT_OUTPUT=1: how much the program had written to its stdout and stderr when each step
 * began, so that a checker knows what it had told the world before a cut (crashcheck run).
 * Read from the descriptors' file offsets, which stdio's own writes (that no interposer sees)
 * move too, as do those of every process sharing the descriptions; only regular files have
 * one (lseek fails on a pipe or a terminal: nothing is recorded then). Costs two lseeks a step.
 * A descriptor 1 or 2 that is a tracked file is not the program's output (dd opens its of=
 * there). The owner that hands the run on notes them once more at its end: what it printed
 * after its last step was told before the next process's first step. */
static void output_note(void)
{
    if (!G.output || !S.tw) return;
    for (int fd = 1; fd <= 2; fd++) {
        if ((size_t)fd < S.nfds && S.fds[fd].file) continue;
        off_t at = lseek(fd, 0, SEEK_CUR);
        if (at < 0 || (int64_t)at == G.out_at[fd]) continue;
        G.out_at[fd] = (int64_t)at;
        trace_fail(pc_tw_output(S.tw, fd, (uint64_t)at));
    }
}

static void read_env_guards(void)
{
    const char *v = getenv("POWERCUT_EXIT_STEP");
    G.exit_step = 0;
    if (v && *v) {
        if (strcmp(v, "0") && strcmp(v, "1")) die("POWERCUT_EXIT_STEP", v);
        G.exit_step = *v == '1';
    }
    v = getenv("POWERCUT_OUTPUT");
    G.output = 0;
    G.out_at[1] = G.out_at[2] = -1;
    if (v && *v) {
        if (strcmp(v, "0") && strcmp(v, "1")) die("POWERCUT_OUTPUT", v);
        G.output = *v == '1';
    }
    v = getenv("POWERCUT_FOREIGN");
    G.foreign_off = 0;
    if (v && *v) {
        if (!strcmp(v, "off")) G.foreign_off = 1;
        else if (strcmp(v, "stop")) die("POWERCUT_FOREIGN", v);
    }
    G.cur = SIZE_MAX;
}

/* The model would silently stop matching the file: say what and where, keep the trace so far
 * (it ends without its END record), and stop. */
__attribute__((noreturn)) static void lost_track(const tfile *f, const char *what)
{
    char msg[PATH_MAX + 400];
    snprintf(msg, sizeof msg, "powercut: %s %s: the model cannot follow it, so the run stops here (exit status 97, "
             "see faults/README.md)\n", what, f->path);
    stop_lost(msg);
}

static int rwf_flags(int flags)
{
    if (rwf_now & RWF_APPEND) flags |= O_APPEND;
    if (rwf_now & RWF_NOAPPEND) flags &= ~O_APPEND;
    if (rwf_now & RWF_DSYNC) flags |= O_DSYNC;
    if (rwf_now & RWF_SYNC) flags |= O_SYNC;
    return flags;
}

static ssize_t rw_pwritev2(int fd, const struct iovec *iov, int n, int64_t pos)
{
    return real_pwritev2(fd, iov, n, (off_t)pos, rwf_now);
}
static ssize_t rw_pwritev64v2(int fd, const struct iovec *iov, int n, int64_t pos)
{
    return real_pwritev64v2(fd, iov, n, (off_t)pos, rwf_now);
}

static ssize_t do_pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags,
                           ssize_t (*real)(int, const struct iovec *, int, off_t, int),
                           ssize_t (*rw)(int, const struct iovec *, int, int64_t))
{
    tfile *f = fd_file(fd, NULL);
    if (n < 0 || (!f && fd != S.mark_fd)) return real(fd, iov, n, off, flags);
    if (f && (flags & ~RWF_KNOWN)) {
        char what[96];
        snprintf(what, sizeof what, "pwritev2 with RWF_* flags 0x%x the shim does not know, on",
                 (unsigned)(flags & ~RWF_KNOWN));
        lost_track(f, what);
    }
    /* offset -1: the file offset, as writev; below that the kernel refuses (EINVAL) */
    rwf_now = flags;
    ssize_t r = do_write(PC_CALL_PWRITEV2, fd, iov, n, off == -1 ? -1 : off < 0 ? INT64_MIN : off, rw);
    int saved = errno;
    rwf_now = 0;
    errno = saved;
    return r;
}

PC_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    ENSURE();
    if (!S.active) return real_pwritev2(fd, iov, n, off, flags);
    return do_pwritev2(fd, iov, n, off, flags, real_pwritev2, rw_pwritev2);
}

PC_EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    ENSURE();
    if (!S.active) return real_pwritev64v2(fd, iov, n, off, flags);
    return do_pwritev2(fd, iov, n, off, flags, real_pwritev64v2, rw_pwritev64v2);
}

/* The bytes a copy put at [off, off+n) of f, read back through the shim's own descriptor
 * (the call is made: they are in the page cache): a write of them. */
static void note_landed(tfile *f, uint64_t off, uint64_t n)
{
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || read_all(f->rfd, buf, off, n)) lost_track(f, "cannot read back the bytes a copy wrote into");
    note_write(f, off, buf, n);
    free(buf);
}

/* A cut on a copy: the call is not made, so the bytes it would have written are read from
 * its source (up to its end). */
static void note_source(tfile *f, uint64_t off, int src, uint64_t soff, uint64_t n)
{
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) die("memory", "copy at a cut");
    uint64_t got = 0;
    while (got < n) {
        ssize_t r = pread(src, buf + got, n - got, (off_t)(soff + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (uint64_t)r;
    }
    note_write(f, off, buf, got);
    free(buf);
}

static ssize_t real_copy(int call, int in, off_t *in_off, int out, off_t *out_off, size_t len,
                         unsigned flags, int is64)
{
    if (call == PC_CALL_COPY_FILE_RANGE) return real_copy_file_range(in, in_off, out, out_off, len, flags);
    return (is64 ? real_sendfile64 : real_sendfile)(out, in, in_off, len);
}

static uint64_t fd_pos(int fd, const off_t *given)
{
    if (given) return (uint64_t)*given;
    off_t cur = lseek(fd, 0, SEEK_CUR);
    return cur < 0 ? 0 : (uint64_t)cur;
}

/* copy_file_range and sendfile into a tracked descriptor (out). sendfile always writes at
 * out's file offset, and takes its source offset from in_off or in's file offset. */
static ssize_t do_copy(int call, int in, off_t *in_off, int out, off_t *out_off, size_t len,
                       unsigned flags, int is64)
{
    int oflags;
    tfile *f = step_fd(out, &oflags);
    if (!f) return real_copy(call, in, in_off, out, out_off, len, flags, is64);
    struct stat sst;
    int ifl = real_fcntl(in, F_GETFL);
    int src_ok = ifl >= 0 && fstat(in, &sst) == 0;
    if (src_ok && call == PC_CALL_SENDFILE && !S_ISREG(sst.st_mode))
        lost_track(f, "sendfile from a descriptor that is not a regular file (a cut cannot read its bytes "
                      "ahead) into");
    /* what the kernel refuses before copying anything: no effect, even cut */
    int rejected = !src_ok || (ifl & O_ACCMODE) == O_WRONLY || !S_ISREG(sst.st_mode) || not_writable(oflags) ||
                   (oflags & O_APPEND) || (call == PC_CALL_COPY_FILE_RANGE && flags) ||
                   (in_off && *in_off < 0) || (out_off && *out_off < 0);
    BEGIN_STEP();
    uint64_t off = fd_pos(out, call == PC_CALL_COPY_FILE_RANGE ? out_off : NULL);
    uint64_t soff = fd_pos(in, in_off);
    uint64_t avail = !rejected && (uint64_t)sst.st_size > soff ? (uint64_t)sst.st_size - soff : 0;
    uint64_t want = len < avail ? len : avail;
    int nospace = !rejected && df_hole(f, off, want) != UINT64_MAX;
    S.nospace = nospace;
    int err, go = step_open(call, f->id, off, len, &err);
    if (go == GO_CUT) {
        if (!rejected && !nospace && want) note_source(f, off, in, soff, want);
        CUT_RETURN(-1, real_copy(call, in, in_off, out, out_off, len, flags, is64));
    }
    if (go == GO_ERROR) {
        step_close();
        END_STEP();
        errno = err;
        return -1;
    }
    ssize_t r = real_copy(call, in, in_off, out, out_off, len, flags, is64);
    int saved = errno;
    if (r > 0) note_landed(f, off, (uint64_t)r);
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

PC_EXPORT ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags)
{
    ENSURE();
    if (!S.active) return real_copy_file_range(in, in_off, out, out_off, len, flags);
    return do_copy(PC_CALL_COPY_FILE_RANGE, in, in_off, out, out_off, len, flags, 0);
}

PC_EXPORT ssize_t sendfile(int out, int in, off_t *in_off, size_t len)
{
    ENSURE();
    if (!S.active) return real_sendfile(out, in, in_off, len);
    return do_copy(PC_CALL_SENDFILE, in, in_off, out, NULL, len, 0, 0);
}

PC_EXPORT ssize_t sendfile64(int out, int in, off_t *in_off, size_t len)
{
    ENSURE();
    if (!S.active) return real_sendfile64(out, in, in_off, len);
    return do_copy(PC_CALL_SENDFILE, in, in_off, out, NULL, len, 0, 1);
}

PC_EXPORT ssize_t splice(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags)
{
    ENSURE();
    tfile *f = S.active ? fd_file(out, NULL) : NULL;
    if (f) lost_track(f, "splice (its bytes come from a pipe, which a cut cannot read ahead) into");
    return real_splice(in, in_off, out, out_off, len, flags);
}

/* fopen opens through a glibc-internal call: its descriptor is followed like open's, so that
 * a sync on it is a step, where what the stream wrote (unseen) is found by fc_check_file. */
static int fopen_flags(const char *mode)
{
    int plus = strchr(mode, '+') != NULL;
    switch (mode[0]) {
    case 'w': return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC;
    case 'a': return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND;
    default: return plus ? O_RDWR : O_RDONLY;
    }
}

static FILE *do_fopen(const char *path, const char *mode, FILE *(*real)(const char *, const char *))
{
    if (mode) before_open(AT_FDCWD, path, fopen_flags(mode));
    /* a mode that creates ("w", "a") makes a new name as open(O_CREAT) does (names.c) */
    int absent = S.active && !S.dead && !busy && mode && path && (fopen_flags(mode) & O_CREAT) &&
                 pc__ns_absent(AT_FDCWD, path);
    FILE *fp = real(path, mode);
    if (fp && S.active && mode) {
        int saved = errno;
        after_open(fileno(fp), AT_FDCWD, path, fopen_flags(mode), absent);
        errno = saved;
    }
    return fp;
}

PC_EXPORT FILE *fopen(const char *path, const char *mode)
{
    ENSURE();
    return do_fopen(path, mode, real_fopen);
}

PC_EXPORT FILE *fopen64(const char *path, const char *mode)
{
    ENSURE();
    return do_fopen(path, mode, real_fopen64);
}

/* ---- names: rename, unlink, link (names.c) ---- */
__attribute__((noreturn)) static void lost_name(const char *what, const char *name)
{
    char msg[PATH_MAX + 400];
    snprintf(msg, sizeof msg, "powercut: %s %s: the model cannot follow it, so the run stops here (exit status 97, "
             "see faults/README.md)\n", what, name);
    stop_lost(msg);
}

/* ---- retiring files ---- */
/* A tracked file that no name, no program descriptor and no mapping reaches can no longer
 * change through the program: its read descriptor and what else only follows changes (the
 * volatile copy of sync mode, the disk-full model's blocks) go, so that a program making a
 * new file per transaction does not run the shim out of descriptors (ownfd.c). st_nlink is
 * the kernel's word that no name is left, whoever removed it. The model file stays: under
 * POWERCUT_NAMESPACE=posix or ext4 an unlinked name is volatile until its directory's fsync,
 * and a crash may bring the file back with its durable content, which the model (or the
 * trace) holds; the file is never read again. Its (st_dev, st_ino) no longer matches an open:
 * the kernel frees the inode with the last descriptor and may give its number to a new file.
 * Holding on is never wrong, only costly: a check missed (a close the shim does not see, an
 * unlink by another process after the last close) keeps the descriptor. With the lock held. */
static void retire_check(size_t fi)
{
    if (fi >= S.nfiles || S.files[fi].rfd < 0) return;
    tfile *f = &S.files[fi];
    for (size_t fd = 0; fd < S.nfds; fd++)
        if (S.fds[fd].file == (int32_t)fi + 1) return;
    for (size_t i = 0; i < S.nmaps; i++)
        if (S.maps[i].file == fi) return;
    for (size_t i = 0; i < S.nopen; i++)
        if (S.open[i].file == fi) return;
    struct stat st;
    int saved = errno;
    if (fstat(f->rfd, &st) || st.st_nlink) {
        errno = saved;
        return;
    }
    if (S.mmap_lazy) capture_content(f); /* the stores its unmapped pages kept, learnt at last */
    pc__own_release(f->rfd);
    f->rfd = -1;
    f->fc_ok = 0;
    free(f->shadow);
    f->shadow = NULL;
    f->shcap = 0;
    pc__blocks_free(&f->blocks);
    errno = saved;
}

/* The program let go of a descriptor or a name of file index fi. */
static void released(size_t fi)
{
    if (!S.active || S.dead || busy || getpid() != S.owner) return;
    busy++;
    pthread_mutex_lock(&lock);
    if (fi < S.nfiles && S.files[fi].symlink) {
        /* a link's only name went: its inode may be reused, and nothing can reach it again */
        S.files[fi].symlink = 0;
        S.files[fi].dev = S.files[fi].ino = 0;
    }
    retire_check(fi);
    pthread_mutex_unlock(&lock);
    busy--;
}

static int is_known(const char *name)
{
    for (size_t i = 0; i < S.nfiles; i++)
        if (!strcmp(S.files[i].path, name)) return 1;
    for (size_t i = 0; i < S.nknown; i++)
        if (!strcmp(S.known[i], name)) return 1;
    return 0;
}

/* Appends a copy of s to the list v (n strings, room for cap); dies without memory. */
static void push_copy(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        size_t k = *cap ? *cap * 2 : 8;
        char **p = realloc(*v, k * sizeof *p);
        if (!p) die("memory", "names");
        *v = p;
        *cap = k;
    }
    if (!((*v)[*n] = strdup(s))) die("memory", "names");
    ++*n;
}

static void add_known(const char *name)
{
    if (!is_known(name)) push_copy(&S.known, &S.nknown, &S.kcap, name);
}

/* The tracked file at dirfd/path (lstat, or stat with `follow`): its index, or -1; *exists
 * says whether anything is there. */
static long tracked_at(int dirfd, const char *path, int follow, int *exists)
{
    struct stat st;
    int saved = errno;
    *exists = fstatat(dirfd, path, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) == 0;
    errno = saved;
    int link = S_ISLNK(st.st_mode);
    if (!*exists || !(S_ISREG(st.st_mode) || link)) return -1;
    for (size_t i = 0; i < S.nfiles; i++)
        if ((link ? S.files[i].symlink : S.files[i].rfd >= 0) && S.files[i].dev == st.st_dev &&
            S.files[i].ino == st.st_ino)
            return (long)i;
    return -1;
}

static int ns_watching(void)
{
    return S.active && !S.dead && !busy && S.nfiles && (S.fchild || getpid() == S.owner);
}
static int ns_flags(void) { return S.ns == PC_NS_NONE ? PC_NAME_DURABLE : 0; }

static void note_rename(const char *from, const char *to, int flags)
{
    if (S.m) trace_fail(pc_model_rename(S.m, from, to, flags));
    if (S.tw) trace_fail(pc_tw_rename(S.tw, from, to, flags));
    add_known(from);
    add_known(to);
}

static void note_unlink(const char *name)
{
    if (S.m) trace_fail(pc_model_unlink(S.m, name, ns_flags()));
    if (S.tw) trace_fail(pc_tw_unlink(S.tw, name, ns_flags()));
}

static void note_dir(int made, const char *path)
{
    if (S.m) trace_fail((made ? pc_model_mkdir : pc_model_rmdir)(S.m, path, ns_flags()));
    if (S.tw) trace_fail((made ? pc_tw_mkdir : pc_tw_rmdir)(S.tw, path, ns_flags()));
    add_known(path);
}

static tfile *new_file(void);

/* A symbolic link made at `name`: a file of the model (its content the target, durable with
 * the inode) whose name is created, volatile like a created file's. `made`: the call was made
 * (else a cut before it: the images need the model alone). */
static void note_symlink(const char *name, const char *target, int made)
{
    struct stat st;
    int saved = errno;
    if (!made || fstatat(AT_FDCWD, name, &st, AT_SYMLINK_NOFOLLOW) != 0) memset(&st, 0, sizeof st);
    errno = saved;
    tfile *f = new_file();
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->rfd = -1;
    f->symlink = 1;
    f->size = strlen(target);
    if (!(f->path = strdup(name))) die("memory", "names");
    f->name_new = S.ns != PC_NS_NONE;
    if (S.m) {
        trace_fail(pc_model_add_file(S.m, name, target, f->size, NULL));
        if (f->name_new) trace_fail(pc_model_created(S.m, f->id));
        trace_fail(pc_model_set_symlink(S.m, f->id));
    }
    if (S.tw) {
        trace_fail(pc_tw_file(S.tw, f->id, name, target, f->size));
        if (f->name_new) trace_fail(pc_tw_created(S.tw, f->id));
        trace_fail(pc_tw_symlink(S.tw, f->id));
    }
}

static void note_link(const char *from, const char *to)
{
    if (S.m) trace_fail(pc_model_link(S.m, from, to, ns_flags()));
    if (S.tw) trace_fail(pc_tw_link(S.tw, from, to, ns_flags()));
    add_known(to);
}

/* A name of a tracked file the model has never heard of (a link made before tracking or by
 * another process) cannot be renamed or removed in it: it would not know what the name held. */
static void need_known(const char *name, const char *what)
{
    if (!is_known(name)) lost_name(what, name);
}

enum { NS_RENAME, NS_UNLINK, NS_LINK, NS_NOTHING, NS_MKDIR, NS_RMDIR, NS_SYMLINK };

/* The step of a rename, unlink or link: numbered, cut or failed like any other; its change
 * is applied to the model after the real call succeeded (before the images at a cut). */
static int ns_step(int op, uint32_t id, const char *a, const char *b, int flags, int (*call)(void *), void *ctx)
{
    static const int calls[] = {PC_CALL_RENAME, PC_CALL_UNLINK, PC_CALL_LINK,  PC_CALL_RENAME,
                                PC_CALL_MKDIR,  PC_CALL_RMDIR,  PC_CALL_SYMLINK};
    BEGIN_STEP();
    int err, go = step_open(calls[op], id, 0, 0, &err);
    if (go == GO_ERROR) {
        step_close();
        END_STEP();
        errno = err;
        return -1;
    }
    int r = go == GO_CUT ? 0 : call(ctx), saved = errno;
    if (r == 0) {
        if (op == NS_RENAME) note_rename(a, b, flags);
        else if (op == NS_UNLINK) note_unlink(a);
        else if (op == NS_LINK) note_link(a, b);
        else if (op == NS_MKDIR || op == NS_RMDIR) note_dir(op == NS_MKDIR, a);
        else if (op == NS_SYMLINK) note_symlink(a, b, go != GO_CUT);
    }
    if (go == GO_CUT) CUT_RETURN(-1, call(ctx));
    step_close();
    END_STEP();
    errno = saved;
    return r;
}

typedef struct {
    int olddir, newdir;
    const char *oldp, *newp;
    unsigned flags;
} ns_args;

static int call_rename(void *p)
{
    ns_args *a = p;
    if (a->flags) {
        if (real_renameat2) return real_renameat2(a->olddir, a->oldp, a->newdir, a->newp, a->flags);
        return (int)syscall(SYS_renameat2, a->olddir, a->oldp, a->newdir, a->newp, a->flags);
    }
    return real_renameat ? real_renameat(a->olddir, a->oldp, a->newdir, a->newp)
                         : (int)syscall(SYS_renameat2, a->olddir, a->oldp, a->newdir, a->newp, 0);
}

static int call_unlink(void *p)
{
    ns_args *a = p;
    return real_unlinkat ? real_unlinkat(a->olddir, a->oldp, 0) : (int)syscall(SYS_unlinkat, a->olddir, a->oldp, 0);
}

static int call_link(void *p)
{
    ns_args *a = p;
    return real_linkat ? real_linkat(a->olddir, a->oldp, a->newdir, a->newp, (int)a->flags)
                       : (int)syscall(SYS_linkat, a->olddir, a->oldp, a->newdir, a->newp, (int)a->flags);
}

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* A directory renamed: the names below it would all change, which the model (names as strings)
 * cannot follow: refused when it holds a name the model knows. An empty one the model knows
 * (made in the run) is a rename of its name. */
static int rename_dir(const char *from, const char *to, ns_args *a)
{
    size_t n = strlen(from);
    for (size_t i = 0; i < S.nfiles + S.nknown; i++) {
        const char *k = i < S.nfiles ? S.files[i].path : S.known[i - S.nfiles];
        if (!strncmp(k, from, n) && k[n] == '/')
            lost_name("rename of a directory holding a name the model knows (the names below it would all move):", from);
    }
    if (!is_known(from) && !is_known(to)) return call_rename(a);
    if (a->flags & ~(unsigned)RENAME_NOREPLACE)
        lost_name("renameat2 of a directory with flags other than RENAME_NOREPLACE:", from);
    return ns_step(NS_RENAME, UINT32_MAX, from, to, ns_flags(), call_rename, a);
}

/* Before the claim: a directory made then and renamed is not durable under its new name either. */
static int rename_pending(ns_args *a)
{
    char from[PATH_MAX], to[PATH_MAX];
    pc__ns_name(a->olddir, a->oldp, from, sizeof from);
    pc__ns_name(a->newdir, a->newp, to, sizeof to);
    int r = call_rename(a), saved = errno;
    size_t n = strlen(from);
    for (size_t i = 0; r == 0 && i < S.npdirs; i++) {
        if (strncmp(S.pdirs[i], from, n) || (S.pdirs[i][n] && S.pdirs[i][n] != '/')) continue;
        char moved[PATH_MAX];
        snprintf(moved, sizeof moved, "%s%s", to, S.pdirs[i] + n); /* it, or one made inside it */
        char *c = strdup(moved);
        if (!c) die("memory", "directories");
        free(S.pdirs[i]);
        S.pdirs[i] = c;
    }
    errno = saved;
    return r;
}

/* A forked child's copy knows the names and files of the fork's time: a name the patterns
 * match, a tracked file or a name the model knows takes the run over before the call. */
static void fchild_for_name(int dirfd, const char *path, int follow)
{
    if (!S.fchild || !path || !S.active || S.dead || busy) return;
    char abs[PATH_MAX], name[PATH_MAX];
    int there;
    make_abs(dirfd, path, abs, sizeof abs);
    pc__ns_name(dirfd, path, name, sizeof name);
    if (path_matches(path, abs) || tracked_at(dirfd, path, follow, &there) >= 0 || is_known(name))
        fchild_now();
}

/* A name of the run's files changed by a process that does not own the run (`rm f`, `mv f.tmp
 * f` between two commands, or run by a shell that owns the files): it takes the baton (or
 * waits for its parent's lend), so that the change is a step of the run rather than one
 * missed (an unlinked file's descriptor still reads the same). Before anyone claimed, it
 * claims nothing: a name no one opened is no file of the run. */
static void baton_for_name(int dirfd, const char *path)
{
    if (S.fchild) fchild_for_name(dirfd, path, 0);
    if (!path || S.claimed || !S.active || S.dead || busy || !in_run()) return;
    char abs[PATH_MAX];
    make_abs(dirfd, path, abs, sizeof abs);
    if (path_matches(path, abs) && (baton_waiting() || run_owned_elsewhere())) claim_now();
}

static int do_rename(int olddir, const char *oldp, int newdir, const char *newp, unsigned flags)
{
    baton_for_name(olddir, oldp);
    baton_for_name(newdir, newp);
    ns_args a = {olddir, newdir, oldp, newp, flags};
    if (S.npdirs && before_claim() && oldp && newp) return rename_pending(&a);
    if (!ns_watching() || !oldp || !newp) return call_rename(&a);
    char from[PATH_MAX], to[PATH_MAX];
    pc__ns_name(olddir, oldp, from, sizeof from);
    pc__ns_name(newdir, newp, to, sizeof to);
    int from_there, to_there;
    long fi = tracked_at(olddir, oldp, 0, &from_there), ti = tracked_at(newdir, newp, 0, &to_there);
    struct stat ds;
    if (fi < 0 && from_there && !fstatat(olddir, oldp, &ds, AT_SYMLINK_NOFOLLOW) && S_ISDIR(ds.st_mode))
        return rename_dir(from, to, &a);
    if (fi < 0 && ti < 0 && !is_known(to)) return call_rename(&a); /* no tracked name involved */
    if (flags & RENAME_EXCHANGE) {
        /* Both names swap their files in one step; both must hold a tracked file (an
         * untracked one's content and history are unknown), or the call fails anyway. */
        if (!from_there || !to_there || (flags & ~(unsigned)RENAME_EXCHANGE)) return call_rename(&a);
        if (fi < 0 || ti < 0)
            lost_name("renameat2 RENAME_EXCHANGE with a file the shim does not track, of the tracked name",
                      fi < 0 ? to : from);
        need_known(from, "RENAME_EXCHANGE of a name of a tracked file that the shim never saw made:");
        need_known(to, "RENAME_EXCHANGE of a name of a tracked file that the shim never saw made:");
        return ns_step(ti == fi ? NS_NOTHING : NS_RENAME, S.files[fi].id, from, to, ns_flags() | PC_NAME_EXCHANGE,
                       call_rename, &a);
    }
    if (fi < 0) {
        if (!from_there) return call_rename(&a); /* fails: ENOENT */
        lost_name("rename of a file the shim does not track over the tracked name", to);
    }
    if (flags & ~(unsigned)RENAME_NOREPLACE)
        lost_name("renameat2 with flags other than RENAME_NOREPLACE and RENAME_EXCHANGE (RENAME_WHITEOUT) of", from);
    need_known(from, "rename of a name of a tracked file that the shim never saw made:");
    int mflags = ns_flags() | (to_there && ti < 0 && !is_known(to) ? PC_NAME_OVER_OTHER : 0);
    /* two links of one file: rename(2) does nothing and succeeds (a step all the same) */
    int r = ns_step(ti == fi ? NS_NOTHING : NS_RENAME, S.files[fi].id, from, to, mflags, call_rename, &a);
    if (r == 0 && ti >= 0 && ti != fi) released((size_t)ti); /* renamed over: a name less */
    return r;
}

static int do_rmdir(int dirfd, const char *path);

static int do_unlink(int dirfd, const char *path, int flags)
{
    if (!(flags & AT_REMOVEDIR)) baton_for_name(dirfd, path);
    ns_args a = {dirfd, dirfd, path, NULL, 0};
    int there;
    long fi;
    if (path && (flags & AT_REMOVEDIR)) return do_rmdir(dirfd, path);
    if (!ns_watching() || !path || (fi = tracked_at(dirfd, path, 0, &there)) < 0)
        return real_unlinkat ? real_unlinkat(dirfd, path, flags) : (int)syscall(SYS_unlinkat, dirfd, path, flags);
    char name[PATH_MAX];
    pc__ns_name(dirfd, path, name, sizeof name);
    need_known(name, "unlink of a name of a tracked file that the shim never saw made:");
    int r = ns_step(NS_UNLINK, S.files[fi].id, name, NULL, 0, call_unlink, &a);
    if (r == 0) released((size_t)fi);
    return r;
}

static int in_tracked_tree(const char *name);

static int do_link(int olddir, const char *oldp, int newdir, const char *newp, int flags)
{
    baton_for_name(olddir, oldp);
    baton_for_name(newdir, newp);
    ns_args a = {olddir, newdir, oldp, newp, (unsigned)flags};
    int there;
    long fi;
    if (oldp && newp && (flags & AT_EMPTY_PATH || !strncmp(oldp, "/proc/self/fd/", 14)) &&
        (ns_watching() || before_claim())) {
        /* A file named by its descriptor (the O_TMPFILE idiom, or a file whose names are gone):
         * what it holds and whether any of it is durable is unknown to the model, and a name
         * of the tree given to it would be missing from every crash state. */
        char to[PATH_MAX], abs[PATH_MAX];
        pc__ns_name(newdir, newp, to, sizeof to);
        make_abs(newdir, newp, abs, sizeof abs);
        if (in_tracked_tree(to) || path_matches(newp, abs))
            lost_name("linkat of a file by its descriptor (O_TMPFILE, AT_EMPTY_PATH, /proc/self/fd) to the name", to);
    }
    if (!ns_watching() || !oldp || !newp || (fi = tracked_at(olddir, oldp, flags & AT_SYMLINK_FOLLOW, &there)) < 0)
        return call_link(&a);
    char from[PATH_MAX], to[PATH_MAX];
    pc__ns_name(olddir, oldp, from, sizeof from);
    pc__ns_name(newdir, newp, to, sizeof to);
    if (flags & AT_SYMLINK_FOLLOW) { /* the name linked from is the file's, wherever the symlink points */
        char real[PATH_MAX];
        if (realpath(from, real)) snprintf(from, sizeof from, "%s", real);
    }
    need_known(from, "link from a name of a tracked file that the shim never saw made:");
    return ns_step(NS_LINK, S.files[fi].id, from, to, 0, call_link, &a);
}

/* ---- calls that change a file the model does not follow: refused ----
 * madvise(MADV_REMOVE) frees a range of a shared file mapping's pages and punches the hole in
 * the file (tmpfs, and file systems with hole punching), which also drops the pages' write
 * tracking; ioctl FICLONE and FICLONERANGE make a range of a file share another's blocks
 * (btrfs, XFS; reflinks). Each changes a tracked file's content in a way the model does not
 * follow: when it succeeds, the run stops, naming the call (fallocate(FALLOC_FL_PUNCH_HOLE)
 * and copy_file_range are the modelled ways to the same end). One that fails changed nothing
 * and is no step: cp tries a reflink first and copies when the file system refuses it. */
#ifndef FICLONE
#define FICLONE 0x40049409ul      /* _IOW(0x94, 9, int) */
#define FICLONERANGE 0x4020940dul /* _IOW(0x94, 13, struct file_clone_range) */
#endif

PC_EXPORT int madvise(void *addr, size_t len, int advice)
{
    ENSURE();
    int r = real_madvise ? real_madvise(addr, len, advice) : (int)syscall(SYS_madvise, addr, len, advice);
    if (r == 0 && advice == MADV_REMOVE && S.active && !S.dead && !busy) {
        uintptr_t lo = (uintptr_t)addr, hi = lo + len;
        for (size_t i = 0; i < S.nmaps; i++)
            if (S.maps[i].wshared && S.maps[i].addr < hi && lo < S.maps[i].addr + S.maps[i].len)
                lost_name("madvise(MADV_REMOVE) of a shared mapping punched a hole the model does not follow "
                          "(fallocate(FALLOC_FL_PUNCH_HOLE) does) in the tracked file",
                          S.files[S.maps[i].file].path);
    }
    return r;
}

PC_EXPORT int ioctl(int fd, unsigned long request, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = real_ioctl ? real_ioctl(fd, request, arg) : (int)syscall(SYS_ioctl, fd, request, arg);
    if (r == 0 && (request == FICLONE || request == FICLONERANGE) && S.active && !S.dead && !busy) {
        tfile *f = fd_file(fd, NULL);
        if (f)
            lost_name("ioctl FICLONE/FICLONERANGE (a reflink) changed what the model does not follow "
                      "(copy_file_range does) in the tracked file",
                      f->path);
    }
    return r;
}

/* ---- directories (names.c: the model of names) ----
 * A directory the process makes or removes in the tracked files' root (the folder of each
 * POWERCUT_FILE pattern, up to its first wildcard), the root itself or one above it, is a
 * name like a file's: mkdir and rmdir
 * are steps (calls mkdir, rmdir), volatile under posix until an fsync of the parent, and a
 * name below a directory that is not on the disk is not on the disk either (pc_model_mkdir).
 * Programs make their directories before they open the first tracked file, when there is no
 * model yet: those made then are kept aside (S.pdirs), dropped when an fsync of their parent
 * makes them durable or when they are removed again, and handed to the model at the claim, as
 * made (volatile) before its first step. */
static int in_tracked_tree(const char *name)
{
    for (size_t i = 0; i < S.npats; i++) {
        const char *pat = S.abs_pats[i];
        if (!pat) continue;
        char root[PATH_MAX];
        size_t fixed = strcspn(pat, "*?[");
        snprintf(root, sizeof root, "%.*s", (int)fixed, pat);
        char *slash = strrchr(root, '/');
        if (!slash) continue;
        *slash = 0;
        char real[PATH_MAX];
        const char *r = realpath(root[0] ? root : "/", real) ? real : root;
        size_t n = strlen(r), k = strlen(name);
        if (!strncmp(name, r, n) && (name[n] == '/' || !name[n])) return 1; /* in it, or it */
        if (k < n && !strncmp(name, r, k) && r[k] == '/') return 1;          /* above it */
    }
    return 0;
}

static void pdir_drop(size_t i)
{
    free(S.pdirs[i]);
    S.pdirs[i] = S.pdirs[--S.npdirs];
}

/* Before the claim: remember a directory made, forget one removed or made durable. */
static void pdir_note(int made, const char *name)
{
    for (size_t i = 0; i < S.npdirs; i++)
        if (!strcmp(S.pdirs[i], name)) {
            if (!made) pdir_drop(i);
            return;
        }
    if (made) push_copy(&S.pdirs, &S.npdirs, &S.pdcap, name); /* (else: there before, durable, and gone) */
}

static void pdir_synced(const char *dir)
{
    for (size_t i = 0; i < S.npdirs;)
        if (pc__ns_in_dir(S.pdirs[i], dir)) pdir_drop(i);
        else i++;
}

/* The claim: the directories made before it are names the model has, made and not durable
 * (in the order they were made: the ext4 journal keeps it). */
static void claim_dirs(void)
{
    for (size_t i = 0; i < S.npdirs; i++) {
        if (S.ns != PC_NS_NONE) note_dir(1, S.pdirs[i]);
        free(S.pdirs[i]);
    }
    S.npdirs = 0;
}

static int before_claim(void) { return S.active && !S.dead && !busy && !S.claimed; }

typedef struct {
    int dirfd;
    const char *path;
    mode_t mode;
} dir_args;

static int call_mkdir(void *p)
{
    dir_args *a = p;
    return real_mkdirat ? real_mkdirat(a->dirfd, a->path, a->mode) : (int)syscall(SYS_mkdirat, a->dirfd, a->path, a->mode);
}

static int call_rmdir(void *p)
{
    dir_args *a = p;
    return real_unlinkat ? real_unlinkat(a->dirfd, a->path, AT_REMOVEDIR)
                         : (int)syscall(SYS_unlinkat, a->dirfd, a->path, AT_REMOVEDIR);
}

/* Whether this process records directory and link changes: it owns the run (a tracked file
 * is not needed: under POWERCUT_RUN a `mkdir` command owns the run for its one call). */
static int tree_watching(void)
{
    return S.active && !S.dead && !busy && S.claimed && (S.fchild || getpid() == S.owner);
}

/* Under POWERCUT_RUN a change in the tracked tree by a process that does not own the run (a
 * script's `mkdir d`, `ln -s`) takes it first, so that the change is a step of the one trace
 * and goes on with the baton (else the next command would find the directory durable). */
static void tree_claim(const char *name)
{
    if (S.fchild && !busy && in_tracked_tree(name)) fchild_now();
    if (in_run() && !S.claimed && S.active && !S.dead && !busy && S.trace_path && in_tracked_tree(name)) claim_now();
}

static int do_dir(int made, int dirfd, const char *path, mode_t mode)
{
    dir_args a = {dirfd, path, mode};
    int (*call)(void *) = made ? call_mkdir : call_rmdir;
    if (!path || (!tree_watching() && !before_claim())) return call(&a);
    char name[PATH_MAX];
    pc__ns_name(dirfd, path, name, sizeof name);
    if (!in_tracked_tree(name)) return call(&a);
    tree_claim(name);
    if (!tree_watching()) { /* no model yet */
        int r = call(&a), saved = errno;
        if (r == 0 && S.ns != PC_NS_NONE) pdir_note(made, name);
        errno = saved;
        return r;
    }
    return ns_step(made ? NS_MKDIR : NS_RMDIR, UINT32_MAX, name, NULL, 0, call, &a);
}

static int do_rmdir(int dirfd, const char *path) { return do_dir(0, dirfd, path, 0); }

/* symlink, symlinkat: a link made in the tracked tree is a file of the model (note_symlink);
 * its name is then followed as a tracked file's (tracked_at finds it by its own inode). */
typedef struct {
    const char *target;
    int dirfd;
    const char *path;
} link_args;

static int call_symlink(void *p)
{
    link_args *a = p;
    return real_symlinkat ? real_symlinkat(a->target, a->dirfd, a->path)
                          : (int)syscall(SYS_symlinkat, a->target, a->dirfd, a->path);
}

static int do_symlink(const char *target, int dirfd, const char *path)
{
    link_args a = {target, dirfd, path};
    if (!target || !path || (!tree_watching() && !(in_run() && before_claim()))) return call_symlink(&a);
    char name[PATH_MAX];
    pc__ns_name(dirfd, path, name, sizeof name);
    if (!in_tracked_tree(name)) return call_symlink(&a);
    tree_claim(name);
    if (!tree_watching()) return call_symlink(&a);
    int there;
    if (!pc__ns_absent(dirfd, path) || tracked_at(dirfd, path, 0, &there) >= 0 || there)
        return call_symlink(&a); /* EEXIST: changes nothing */
    return ns_step(NS_SYMLINK, UINT32_MAX, name, target, 0, call_symlink, &a);
}

PC_EXPORT int symlink(const char *target, const char *path)
{
    ENSURE();
    return do_symlink(target, AT_FDCWD, path);
}

PC_EXPORT int symlinkat(const char *target, int dirfd, const char *path)
{
    ENSURE();
    return do_symlink(target, dirfd, path);
}

PC_EXPORT int mkdir(const char *path, mode_t mode)
{
    ENSURE();
    return do_dir(1, AT_FDCWD, path, mode);
}

PC_EXPORT int mkdirat(int dirfd, const char *path, mode_t mode)
{
    ENSURE();
    return do_dir(1, dirfd, path, mode);
}

PC_EXPORT int rmdir(const char *path)
{
    ENSURE();
    return do_rmdir(AT_FDCWD, path);
}

PC_EXPORT int rename(const char *oldp, const char *newp)
{
    ENSURE();
    return do_rename(AT_FDCWD, oldp, AT_FDCWD, newp, 0);
}

PC_EXPORT int renameat(int olddir, const char *oldp, int newdir, const char *newp)
{
    ENSURE();
    return do_rename(olddir, oldp, newdir, newp, 0);
}

PC_EXPORT int renameat2(int olddir, const char *oldp, int newdir, const char *newp, unsigned int flags)
{
    ENSURE();
    return do_rename(olddir, oldp, newdir, newp, flags);
}

PC_EXPORT int unlink(const char *path)
{
    ENSURE();
    return do_unlink(AT_FDCWD, path, 0);
}

PC_EXPORT int unlinkat(int dirfd, const char *path, int flags)
{
    ENSURE();
    return do_unlink(dirfd, path, flags);
}

/* remove(3) calls unlink inside glibc, where no interposer sees it. */
PC_EXPORT int remove(const char *path)
{
    ENSURE();
    struct stat st;
    if (path && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) return do_rmdir(AT_FDCWD, path);
    if (!ns_watching() || !path || lstat(path, &st) != 0) return real_remove(path);
    return do_unlink(AT_FDCWD, path, 0);
}

PC_EXPORT int link(const char *oldp, const char *newp)
{
    ENSURE();
    return do_link(AT_FDCWD, oldp, AT_FDCWD, newp, 0);
}

PC_EXPORT int linkat(int olddir, const char *oldp, int newdir, const char *newp, int flags)
{
    ENSURE();
    return do_link(olddir, oldp, newdir, newp, flags);
}

/* ---- foreign changes ---- */
static int fc_mapped(size_t fi)
{
    for (size_t i = 0; i < S.nmaps; i++)
        if (S.maps[i].file == fi && S.maps[i].wshared) return 1;
    return 0;
}

/* The baseline: the file as the shim's own last change left it. */
static void fc_take(tfile *f)
{
    struct stat st;
    f->fc_stale = 0;
    f->fc_ok = fstat(f->rfd, &st) == 0;
    if (!f->fc_ok) return;
    f->fc_mtim = st.st_mtim;
    f->fc_size = (uint64_t)st.st_size;
}

/* The first offset below size where the file differs from vol (vlen bytes), UINT64_MAX if
 * none. */
static uint64_t fc_first_diff(tfile *f, const uint8_t *vol, uint64_t vlen, uint64_t size)
{
    static uint8_t buf[1 << 16];
    for (uint64_t o = 0; o < size;) {
        uint64_t want = size - o < sizeof buf ? size - o : sizeof buf;
        ssize_t r = pread(f->rfd, buf, want, (off_t)o);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return o;
        for (uint64_t i = 0; i < (uint64_t)r; i++)
            if (o + i >= vlen || buf[i] != vol[o + i]) return o + i;
        o += (uint64_t)r;
    }
    return size == vlen ? UINT64_MAX : size;
}

static void fc_check_file(size_t fi)
{
    tfile *f = &S.files[fi];
    if (fc_mapped(fi)) {
        f->fc_ok = 0;
        return;
    }
    if (!f->fc_ok) {
        fc_take(f);
        return;
    }
    struct stat st;
    if (fstat(f->rfd, &st)) return;
    /* stale: the shim changed the file outside a step (an open with O_TRUNC, fopen "w"): no
     * baseline of that change, so what the file holds is compared with the model directly */
    if (!f->fc_stale && (uint64_t)st.st_size == f->fc_size && st.st_mtim.tv_sec == f->fc_mtim.tv_sec &&
        st.st_mtim.tv_nsec == f->fc_mtim.tv_nsec)
        return;
    char why[200];
    const uint8_t *vol;
    uint64_t vlen, size = (uint64_t)st.st_size;
    if (size != f->size) {
        snprintf(why, sizeof why, "its size is %llu bytes, the model's %llu", (unsigned long long)size,
                 (unsigned long long)f->size);
    } else if (volatile_copy(f, &vol, &vlen)) {
        if (f->fc_stale) { /* nothing to compare but the size, which is right */
            fc_take(f);
            return;
        }
        snprintf(why, sizeof why, "its modification time changed (a record-only run keeps no copy of the "
                                  "content to compare: POWERCUT_MODEL=1 keeps one)");
    } else {
        uint64_t at = fc_first_diff(f, vol, vlen, size);
        if (at == UINT64_MAX) { /* the same bytes: a utime, or a rewrite of what was there */
            fc_take(f);
            return;
        }
        snprintf(why, sizeof why, "its byte at offset %llu differs from the model's", (unsigned long long)at);
    }
    char msg[PATH_MAX + 400];
    snprintf(msg, sizeof msg, "powercut: %s changed behind the shim's back (found before step %llu): %s.\n", f->path,
             (unsigned long long)S.step + 1, why);
    warn("%s", msg);
    warn("powercut: likely causes: stdio (fwrite/fputs/fprintf, then fflush or fclose, write through "
         "glibc-internal calls no preload sees), another process or a forked child writing the file, "
         "a process that did not own the run writing it between two that did, a raw syscall, io_uring "
         "or POSIX AIO.\n");
    warn("powercut: the model no longer matches the file, so the run stops (exit status 97, see "
         "faults/README.md; POWERCUT_FOREIGN=off turns this check off)\n");
    note_refused(msg);
    if (S.tw) pc_tw_flush(S.tw);
    S.dead = 1;
    _exit(PC_EXIT_LOST);
}

/* At the opening of every step: the step's file (every file: UINT32_MAX), before anything. */
static void fc_check_step(int call, uint32_t file_id)
{
    G.cur = SIZE_MAX;
    if (G.foreign_off) return;
    /* a sync changes neither st_mtime nor the size: no new baseline after it */
    int changes = call != PC_CALL_MSYNC && call != PC_CALL_FSYNC && call != PC_CALL_FDATASYNC &&
                  call != PC_CALL_SYNC_FILE_RANGE && call != PC_CALL_EXIT && call != PC_CALL_SYNC &&
                  call != PC_CALL_SYNCFS;
    for (size_t i = 0; i < S.nfiles; i++) {
        if (file_id != UINT32_MAX && S.files[i].id != file_id) continue;
        if (S.files[i].rfd < 0) continue; /* retired: nothing of the program's reaches it */
        fc_check_file(i);
        if (file_id != UINT32_MAX) {
            if (changes) G.cur = i;
            break;
        }
    }
}

/* At the end of every step: the baselines of what it (or an open O_TRUNC) may have changed. */
static void fc_after_step(void)
{
    if (G.foreign_off) return;
    for (size_t i = 0; i < S.nfiles; i++)
        if ((i == G.cur || S.files[i].fc_stale) && !fc_mapped(i) && S.files[i].rfd >= 0) fc_take(&S.files[i]);
    G.cur = SIZE_MAX;
}

/* ---- the exit step ---- */
static void exit_step(void)
{
    if (!G.exit_step || !S.claimed || busy || getpid() != S.owner || !S.nfiles) return;
    BEGIN_STEP();
    int err, go = step_open(PC_CALL_EXIT, UINT32_MAX, 0, 0, &err);
    (void)err; /* an exit cannot fail: an error injected there changes nothing */
    if (go == GO_CUT) {
        (void)cut_and_unlock();
        return;
    }
    step_close();
    END_STEP();
}

/* Without the exit step (which looks itself), the owner's files are still compared with their
 * last step's baseline at its end: a change made since behind the shim's back (a child
 * process's writes, stdio flushed and never synced) would otherwise end the trace without it,
 * unsaid. Called with the lock held. */
static void exit_check(void)
{
    if (!G.exit_step && S.claimed && S.owner == getpid() && !busy) fc_check_step(PC_CALL_EXIT, UINT32_MAX);
}

/* ---- bookkeeping: open, close, dup ---- */
static mode_t va_mode(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

PC_EXPORT int open(const char *path, int flags, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = va_mode(flags, ap);
    va_end(ap);
    before_open(AT_FDCWD, path, flags);
    int absent = S.active && !S.dead && !busy && (flags & O_CREAT) && pc__ns_absent(AT_FDCWD, path);
    int fd = real_open(path, flags, mode);
    if (S.active) after_open(fd, AT_FDCWD, path, flags, absent);
    return fd;
}

PC_EXPORT int open64(const char *path, int flags, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = va_mode(flags, ap);
    va_end(ap);
    before_open(AT_FDCWD, path, flags);
    int absent = S.active && !S.dead && !busy && (flags & O_CREAT) && pc__ns_absent(AT_FDCWD, path);
    int fd = real_open64(path, flags, mode);
    if (S.active) after_open(fd, AT_FDCWD, path, flags, absent);
    return fd;
}

PC_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = va_mode(flags, ap);
    va_end(ap);
    before_open(dirfd, path, flags);
    int absent = S.active && !S.dead && !busy && (flags & O_CREAT) && pc__ns_absent(dirfd, path);
    int fd = real_openat(dirfd, path, flags, mode);
    if (S.active) after_open(fd, dirfd, path, flags, absent);
    return fd;
}

PC_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = va_mode(flags, ap);
    va_end(ap);
    before_open(dirfd, path, flags);
    int absent = S.active && !S.dead && !busy && (flags & O_CREAT) && pc__ns_absent(dirfd, path);
    int fd = real_openat64(dirfd, path, flags, mode);
    if (S.active) after_open(fd, dirfd, path, flags, absent);
    return fd;
}

PC_EXPORT int creat(const char *path, mode_t mode)
{
    ENSURE();
    before_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC);
    int absent = S.active && !S.dead && !busy && pc__ns_absent(AT_FDCWD, path);
    int fd = real_creat(path, mode);
    if (S.active) after_open(fd, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, absent);
    return fd;
}

PC_EXPORT int creat64(const char *path, mode_t mode)
{
    ENSURE();
    before_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC);
    int absent = S.active && !S.dead && !busy && pc__ns_absent(AT_FDCWD, path);
    int fd = real_creat64(path, mode);
    if (S.active) after_open(fd, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, absent);
    return fd;
}

/* One of the shim's descriptors moved (a dup2/dup3 of the program aimed at its number). */
static void own_moved(int from, int to)
{
    if (S.trace_fd == from) {
        S.trace_fd = to;
        pc__tw_set_fd(S.tw, to);
    }
    for (size_t i = 0; i < S.nfiles; i++)
        if (S.files[i].rfd == from) S.files[i].rfd = to;
    pc__uffd_moved(from, to);
}

/* The shim's own descriptors are not the program's (ownfd.c): to its calls they are not open. */
static int is_own(int fd)
{
    if (!S.active || busy || !pc__own_is(fd)) return 0;
    errno = EBADF;
    return 1;
}

/* dup2/dup3 onto a number the shim holds: the shim's descriptor moves away first. */
static void evict_own(int fd2)
{
    if (!S.active || busy || !pc__own_is(fd2)) return;
    busy++;
    pthread_mutex_lock(&lock);
    if (pc__own_evict(fd2, own_moved)) die("descriptors (none free to move the shim's out of a dup2 target)", "dup2");
    pthread_mutex_unlock(&lock);
    busy--;
}

static void untrack_fd(int fd)
{
    if (!S.active || fd < 0 || (size_t)fd >= S.nfds || !S.fds[fd].file) return;
    size_t fi = (size_t)S.fds[fd].file - 1;
    S.fds[fd].file = 0;
    released(fi);
}

PC_EXPORT int close(int fd)
{
    ENSURE();
    if (is_own(fd)) return -1;
    untrack_fd(fd);
    return real_close(fd);
}

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* glibc's fclose, close_range and closefrom close through calls no preload sees: each is
 * interposed so that a tracked number they close is forgotten (a socket or pipe reusing it
 * must not write into the model), and so that they spare the shim's descriptors. */
static int do_close_range(unsigned first, unsigned last, int flags)
{
    if (!(flags & CLOSE_RANGE_CLOEXEC) && S.active)
        for (size_t fd = first; fd < S.nfds && fd <= last; fd++) untrack_fd((int)fd);
    if (!S.active) return (int)syscall(SYS_close_range, first, last, (unsigned)flags);
    return pc__own_close_range(first, last, (unsigned)flags);
}

PC_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    ENSURE();
    return do_close_range(first, last, flags);
}

PC_EXPORT void closefrom(int lowfd)
{
    ENSURE();
    if (lowfd < 0) lowfd = 0;
    (void)do_close_range((unsigned)lowfd, ~0U, 0);
}

PC_EXPORT int fclose(FILE *fp)
{
    ENSURE();
    int fd = S.active && fp ? fileno(fp) : -1;
    int r = real_fclose(fp);
    untrack_fd(fd);
    return r;
}

static void copy_fd(int from, int to, int cloexec_only)
{
    (void)cloexec_only;
    if (!S.active || to < 0) return;
    int32_t was = (size_t)to < S.nfds ? S.fds[to].file : 0;
    if (was) S.fds[to].file = 0;
    if (from >= 0 && (size_t)from < S.nfds && S.fds[from].file)
        set_fd(to, S.fds[from].file, S.fds[from].flags);
    if (was && was != S.fds[to].file) released((size_t)was - 1); /* dup2 closed its descriptor */
}

PC_EXPORT int dup(int fd)
{
    ENSURE();
    if (is_own(fd)) return -1;
    int r = real_dup(fd);
    copy_fd(fd, r, 0);
    return r;
}

PC_EXPORT int dup2(int fd, int fd2)
{
    ENSURE();
    if (is_own(fd)) return -1;
    if (fd != fd2) evict_own(fd2);
    int r = real_dup2(fd, fd2);
    if (r >= 0 && fd != fd2) copy_fd(fd, r, 0);
    return r;
}

PC_EXPORT int dup3(int fd, int fd2, int flags)
{
    ENSURE();
    if (is_own(fd)) return -1;
    if (fd != fd2) evict_own(fd2);
    int r = real_dup3(fd, fd2, flags);
    if (r >= 0) copy_fd(fd, r, 1);
    return r;
}

/* fcntl: F_DUPFD(_CLOEXEC) copies are followed like dup; F_SETFL may set or clear O_APPEND,
 * which decides where a write lands. The flag belongs to the open file description, shared
 * by every dup of it, so every tracked descriptor is asked again (F_GETFL; a rare call). */
static void refresh_append(void)
{
    for (size_t fd = 0; fd < S.nfds; fd++) {
        if (!S.fds[fd].file) continue;
        int fl = real_fcntl((int)fd, F_GETFL);
        if (fl >= 0) S.fds[fd].flags = (S.fds[fd].flags & ~O_APPEND) | (fl & O_APPEND);
    }
}

static int do_fcntl(int fd, int cmd, void *arg, int (*real)(int, int, ...))
{
    if (is_own(fd)) return -1;
    int r = real(fd, cmd, arg);
    if (!S.active || S.dead || busy || r < 0) return r;
    int saved = errno;
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) copy_fd(fd, r, 0);
    else if (cmd == F_SETFL && fd_file(fd, NULL)) refresh_append();
    errno = saved;
    return r;
}

/* The third argument is an int or a pointer, or absent: read as a pointer, as glibc does. */
PC_EXPORT int fcntl(int fd, int cmd, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(fd, cmd, arg, real_fcntl);
}

PC_EXPORT int fcntl64(int fd, int cmd, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(fd, cmd, arg, real_fcntl64);
}

/* ---- exec: the owner's run goes on in the new image (protocol: handover.c) ---- */
extern char **environ;

static void set_cloexec(int fd, int on)
{
    if (fd >= 0) syscall(SYS_fcntl, fd, F_SETFD, on ? FD_CLOEXEC : 0);
}

static void own_cloexec(int on)
{
    set_cloexec(S.trace_fd, on);
    for (size_t i = 0; i < S.nfiles; i++) set_cloexec(S.files[i].rfd, on);
}

/* The state the owner hands on (handover.c), the lock held and the trace flushed: the model
 * as trace records in *mw (freed by the caller after the save). */
static void ho_fill(pc_handover *h, pc_tw **mw)
{
    memset(h, 0, sizeof *h);
    h->sector = S.sector;
    h->step = S.step;
    h->trace_fd = S.tw ? S.trace_fd : -1;
    const char *mapped = getenv("POWERCUT_TRACE_MAPPED");
    h->trace_mapped = mapped && *mapped && strcmp(mapped, "0");
    h->trace_total = pc__tw_total(S.tw);
    h->nfiles = (uint32_t)S.nfiles;
    h->files = calloc(S.nfiles ? S.nfiles : 1, sizeof *h->files);
    h->fds = calloc(S.nfds ? S.nfds : 1, sizeof *h->fds);
    if (!h->files || !h->fds) die("memory", "hand-over");
    for (size_t i = 0; i < S.nfiles; i++)
        h->files[i] = (pc_ho_file){.dev = (uint64_t)S.files[i].dev, .ino = (uint64_t)S.files[i].ino,
                                   .size = S.files[i].size, .id = S.files[i].id, .rfd = S.files[i].rfd,
                                   .name_new = S.files[i].name_new, .path = S.files[i].path,
                                   .symlink = S.files[i].symlink};
    for (size_t fd = 0; fd < S.nfds; fd++) {
        if (!S.fds[fd].file) continue;
        long fl = syscall(SYS_fcntl, (int)fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC)) h->fds[h->nfds++] = (pc_ho_fd){(int)fd, S.fds[fd].file, S.fds[fd].flags};
    }
    h->markn = (uint32_t)S.markn;
    memcpy(h->markbuf, S.markbuf, S.markn);
    h->nknown = (uint32_t)S.nknown;
    h->known = S.known;
    *mw = NULL;
    if (S.m) {
        size_t len = 0;
        if (pc_tw_new(-1, S.sector, mw) || pc__model_dump(S.m, *mw) ||
            pc_tw_buffer(*mw, (const uint8_t **)&h->model, &len))
            die("memory", "hand-over of the model");
        h->model_len = len;
    }
}

/* Every store made through the mappings, into the model and trace: the process is about to
 * lose its mappings (an exec, its end), and what it stored stays in the page cache. */
static void stores_to_model(void)
{
    harvest_all();
    if (S.mmap_lazy) capture_all();
    else if (S.mmap_sync)
        for (size_t i = 0; i < S.nmaps; i++) capture_range(&S.maps[i], S.maps[i].addr, S.maps[i].addr + S.maps[i].len);
}

/* ---- the baton: the run goes on in the next process (protocol: handover.c) ---- */

/* The owner is ending under POWERCUT_RUN with a trace: it hands the run on. */
static int baton_due(void)
{
    char side[PATH_MAX + 16];
    return S.claimed && !busy && S.owner == getpid() && S.tw && run_side("baton", side, sizeof side);
}

/* Steps 1-3 of the baton protocol, the lock held and busy: the state beside the trace, the
 * trace finished, the owner's mark removed. */
static void baton_leave(void)
{
    stores_to_model();
    output_note();
    if (pc_tw_flush(S.tw)) die("POWERCUT_TRACE (cannot flush it)", S.trace_path);
    pc_handover h;
    pc_tw *mw;
    ho_fill(&h, &mw);
    h.nfds = 0; /* descriptors are the process's own */
    for (size_t i = 0; i < S.nfiles; i++) {
        pc_ho_file *hf = &h.files[i];
        tfile *f = &S.files[i];
        if (f->rfd < 0) continue;
        char link[64], where[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", f->rfd);
        ssize_t n = readlink(link, where, sizeof where - 1);
        struct stat st;
        /* no name left: nothing can reach it but a process holding it open; the model keeps it */
        if (n <= 0 || (size_t)n >= sizeof where - 1 || fstat(f->rfd, &st) || !st.st_nlink) {
            hf->rfd = -1;
            continue;
        }
        where[n] = 0;
        if (!(hf->where = strdup(where))) die("memory", "baton");
        /* the baseline from which the next owner tells a change by nobody's step: the one the
         * check before this (exit_check, or the lend's) compared the file with, kept as it is;
         * a fresh fstat here would absorb a write made since that check (a forked child's,
         * while its parent lends the run: test_lend caught it under load). Taken now only
         * where there is none to keep (a mapped file's, whose stores were harvested). */
        if (!f->fc_ok || f->fc_stale) fc_take(f);
        hf->fc_ok = f->fc_ok;
        hf->fc_sec = (int64_t)f->fc_mtim.tv_sec;
        hf->fc_nsec = (int64_t)f->fc_mtim.tv_nsec;
        hf->fc_size = f->fc_size;
    }
    finish_trace(); /* a run that ends here is whole; the next owner cuts the END off */
    char path[PATH_MAX + 16];
    run_side("baton", path, sizeof path);
    if (pc__ho_save_file(&h, path)) die("POWERCUT_RUN (cannot write the baton beside the trace)", path);
    for (size_t i = 0; i < S.nfiles; i++) free(h.files[i].where);
    pc_tw_free(mw);
    free(h.files);
    free(h.fds);
    /* the baton is on the disk before the run has no owner: whoever gets the owner's mark next
     * finds it */
    run_side("owner", path, sizeof path);
    if (syscall(SYS_unlinkat, AT_FDCWD, path, 0)) die("POWERCUT_RUN (cannot remove the owner's mark)", path);
}

/* At the owner's very end: nothing of the shim follows this process any more. */
static void baton_pass(void)
{
    busy++;
    baton_leave();
    S.dead = 1;
    busy--;
}

static void adopt_state(pc_handover *h, int baton);

/* Steps 4-5 of the baton protocol, in claim() once this process holds the owner's mark: the
 * run goes on from the state the last owner left, if one did. */
static void baton_take(void)
{
    char path[PATH_MAX + 16];
    if (!run_side("baton", path, sizeof path)) return;
    int fd = real_open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return; /* the first owner */
    pc_handover h;
    if (fd < 0 || pc__ho_load(fd, &h)) die("POWERCUT_RUN (the state the process before left is unreadable)", path);
    if (syscall(SYS_unlinkat, AT_FDCWD, path, 0)) die("POWERCUT_RUN (cannot remove the baton)", path);
    adopt_state(&h, 1);
    pc__ho_free(&h);
}

/* Whether a baton waits beside the trace for the next owner. */
static int baton_waiting(void)
{
    char path[PATH_MAX + 16];
    return !S.claimed && run_side("baton", path, sizeof path) && access(path, F_OK) == 0;
}

/* Claims the run before a call whose effect the model must see from the state the baton
 * carries (an open that truncates a file of the run, a rename), not after it: the process
 * that passes or lends the run takes its baseline of the files when it does, which may be
 * after such a call made by the next process, whose own change would then look like one
 * behind the model's back. claim() takes the waiting baton, or waits for the parent's lend. */
static void claim_now(void)
{
    if (!S.active || S.dead || busy || S.claimed) return;
    busy++;
    pthread_mutex_lock(&lock);
    (void)claim();
    pthread_mutex_unlock(&lock);
    busy--;
}

/* A sync after the owner ended: the baton it left, taken. */
static void baton_take_now(void)
{
    if (baton_waiting()) claim_now();
}

/* ---- lending the run while the owner waits for its child (POWERCUT_RUN) ----
 * A process that owns the run and blocks in wait, waitpid, wait3, wait4, waitid or system (a shell
 * running a command on the files it opened with its own redirection, a program running a
 * helper) does nothing to the files until the call returns: it leaves the baton as an ending
 * owner does, so that the child (or whichever process of the run comes) may own the run in
 * the meantime, and takes it back when the call returns: the state the baton holds then (its
 * own, or what the processes in between left: steps, trace, model, new files), each file
 * compared with the baseline there. A process that holds the owner's mark then (a background
 * job still at work), or asked for it, goes first: this one takes the run back at its next
 * change (let_go_arm). A child that would own the run while its parent owns it asks for it
 * and waits for the parent to lend it or let it go (claim(), run_awaited). */

static int lend_due(int options)
{
    return !(options & WNOHANG) && S.active && !S.dead && S.claimed && !busy && S.owner == getpid() &&
           baton_due();
}

/* The lend, the lock held and busy. */
static void lend_locked(void)
{
    /* A change since the last step by nobody's step (a forked child that wrote before this
     * wait began) is found now, as at the owner's end (exit_check): the baseline the lend
     * takes would otherwise absorb it. */
    if (!G.exit_step) fc_check_step(PC_CALL_EXIT, UINT32_MAX);
    baton_leave();
}

static void baton_lend(void)
{
    busy++;
    pthread_mutex_lock(&lock);
    lend_locked();
    pthread_mutex_unlock(&lock);
    busy--;
}

static void fc_check_file(size_t fi);
static int baton_reopen(const pc_ho_file *hf, const char *name);

static void baton_resume(const char *path, const char *what);

static void let_go_arm(void);

/* The wait returned: the owner's mark again, and the state the baton holds now. */
static void baton_back(void)
{
    int saved = errno;
    busy++;
    pthread_mutex_lock(&lock);
    char side[PATH_MAX + 16], me[32];
    run_side("owner", side, sizeof side);
    snprintf(me, sizeof me, "%ld", (long)getpid());
    int fd = mark_take(side);
    if (fd < 0 && errno == EEXIST) {
        /* the process holding the mark ended without handing the run on: refused, or ended
         * with 99 at once after a cut (the power is off for all) */
        long pid = run_owner_pid();
        if (pid && proc_gone(pid)) refuse_in_run("came back from waiting for a child");
        /* another process holds the run, or asked for it (a background job that took it while
         * this one waited for something else): this one takes it back at its next change */
        let_go_arm();
        pthread_mutex_unlock(&lock);
        busy--;
        errno = saved;
        return;
    }
    if (fd < 0 || write(fd, me, strlen(me)) < 0) die("POWERCUT_RUN (cannot write the owner's mark)", side);
    real_close(fd);
    req_drop();
    char path[PATH_MAX + 16];
    run_side("baton", path, sizeof path);
    baton_resume(path, "the state left while this process waited");
    pthread_mutex_unlock(&lock);
    busy--;
    errno = saved;
}

/* A process that holds the owner's mark again (back from its wait) or for the first time (a
 * forked child, fchild_take) goes on from the baton at path: its own descriptors, mappings and
 * files kept, the steps, trace, model, baselines and the files tracked since from the baton.
 * The lock held and busy. */
static void baton_resume(const char *path, const char *what)
{
    char msg[160];
    pc_handover h;
    int bfd = real_open(path, O_RDONLY | O_CLOEXEC);
    snprintf(msg, sizeof msg, "POWERCUT_RUN (%s is unreadable)", what);
    if (bfd < 0 || pc__ho_load(bfd, &h)) die(msg, path);
    if (syscall(SYS_unlinkat, AT_FDCWD, path, 0)) die("POWERCUT_RUN (cannot remove the baton)", path);
    snprintf(msg, sizeof msg, "POWERCUT_RUN (%s lacks its files)", what);
    if (h.nfiles < S.nfiles) die(msg, path);
    /* the trace: the END cut off, appended to from where the last process left it */
    struct stat st;
    pc_tw_free(S.tw);
    S.tw = NULL;
    if (fstat(S.trace_fd, &st) || (uint64_t)st.st_size != h.trace_total + 1 ||
        syscall(SYS_ftruncate, S.trace_fd, (long)h.trace_total) ||
        syscall(SYS_lseek, S.trace_fd, (long)h.trace_total, SEEK_SET) < 0 ||
        pc__tw_resume(S.trace_fd, h.trace_mapped, h.trace_total, &S.tw))
        die("POWERCUT_TRACE (cannot continue the trace after a wait)", S.trace_path);
    S.step = S.st.steps = h.step;
    if (S.m) {
        pc_model *m = NULL;
        if (pc__ho_model(&h, &m)) die("POWERCUT_CUT/POWERCUT_MODEL (the process in between kept no model)", "");
        pc_model_free(S.m);
        S.m = m;
    }
    for (uint32_t i = 0; i < h.nfiles; i++) {
        pc_ho_file *hf = &h.files[i];
        if (i == S.nfiles) { /* a file the processes in between tracked first */
            if (S.nfiles == S.fcap) {
                size_t n = S.fcap ? S.fcap * 2 : 4;
                tfile *q = realloc(S.files, n * sizeof *q);
                if (!q) die("memory", "baton");
                S.files = q;
                S.fcap = n;
            }
            tfile *f = &S.files[S.nfiles++];
            memset(f, 0, sizeof *f);
            f->dev = (dev_t)hf->dev;
            f->ino = (ino_t)hf->ino;
            f->id = hf->id;
            f->path = hf->path;
            hf->path = NULL;
            f->rfd = hf->rfd < 0 ? -1 : baton_reopen(hf, f->path);
            if (f->rfd >= 0) df_backed(f, 0, hf->size);
        }
        tfile *f = &S.files[i];
        f->size = hf->size;
        f->name_new = hf->name_new;
        if (f->rfd < 0) continue;
        f->fc_stale = 0;
        f->fc_ok = hf->fc_ok;
        f->fc_mtim.tv_sec = (time_t)hf->fc_sec;
        f->fc_mtim.tv_nsec = (long)hf->fc_nsec;
        f->fc_size = hf->fc_size;
        if (use_shadow() && (shadow_fit(f, f->size ? f->size : 1) || read_all(f->rfd, f->shadow, 0, f->size)))
            die("POWERCUT_MMAP=sync (cannot read the file again)", f->path);
    }
    for (uint32_t i = 0; i < h.nknown; i++) add_known(h.known[i]);
    /* The copies its open pages are compared with, and the page copies a record-only trace
     * diffs against (pshadow), are from before the wait: the processes in between may have
     * recorded other bytes there since (a child storing through the mapping it inherited), so
     * a store of the old bytes back would compare equal and be lost. The pages are protected
     * again and the copies dropped: the next store to one is recorded against the model, or
     * whole. */
    while (S.nopen) close_open(S.nopen - 1, 1);
    psh_free();
    if (!G.foreign_off)
        for (size_t i = 0; i < S.nfiles; i++)
            if (S.files[i].rfd >= 0) fc_check_file(i);
    pc__ho_free(&h);
}

/* ---- a forked child of the owner (POWERCUT_RUN) ----
 * fork() copies the owner's state into the child, but the owner goes on numbering steps after
 * it, so the child's copy is stale the moment the owner takes one more: the child cannot write
 * into the trace from it. It is a process of the run like an exec'd child instead: at its
 * first change of a tracked file it waits for the owner to lend the run (it blocks in a wait),
 * takes the owner's mark, and goes on from the baton, its copy of the model, steps and files
 * discarded; its descriptors and mappings are its own and stay (files keep their index for the
 * whole run, so its descriptor table points into the baton's files as it did into the copy).
 * At its end (exit, _exit) it hands the baton back, as any owner does, and the owner's wait
 * returns to the child's state. A child that never changes a tracked file (one that execs at
 * once, or only reads) takes nothing and waits for nothing.
 * Its stores through mappings it inherited: the kernel drops the child's uffd registration
 * and write-protection at fork (no UFFD_FEATURE_EVENT_FORK), and the owner's open pages are
 * writable there. So every tracked shared writable mapping is made read-only in the child at
 * the fork, on mprotect from then on (uffd is not offered to the child): its first store
 * faults, and the SIGSEGV handler takes the run over before the store lands, then notes the
 * page as for any store. Mappings under POWERCUT_MMAP=sync are read-only until that first
 * store too (child_armed), then writable for good: that mode compares content at the steps,
 * from the baton's model (lazy records no trace, so no baton). Taking the run over in the
 * signal handler does file I/O and allocates: the store it interrupts is the program's own,
 * outside every shim call (none stores into a tracked mapping) and outside malloc (which never
 * stores into a file mapping). Stores by the kernel into such a mapping (read(2) into it) fail
 * with EFAULT in the child, as on mprotect anywhere. */

/* In the child, from atfork_child: nothing of the owner's story goes on here until the take-over. */
static void fchild_arm(void)
{
    S.fchild = 1;
    S.forked = 0;
    S.let_go = 0;
    /* its /proc/self/pagemap descriptor would describe the parent */
    pc__uffd_close();
    S.uffd_ok = -1;
    if (S.tw) { /* the trace descriptor stays: the take-over appends through it */
        pc_tw_free(S.tw);
        S.tw = NULL;
    }
    while (S.nopen) close_open(S.nopen - 1, 0); /* their copies are the owner's, stale */
    psh_free();
    for (size_t i = 0; i < S.nmaps; i++) {
        tmap *mp = &S.maps[i];
        if (!mp->wshared) continue;
        syscall(SYS_mprotect, mp->addr, mp->len, mp->prot & ~PROT_WRITE);
        if (mp->wt) {
            mp->wt = WT_MPROTECT;
            mp->no_uffd = 1;
            memset(mp->faulted, 0, mp->len / S.page); /* the owner's stores: it records them */
            mp->nf = 0;
            mp->win_h = mp->win_c = mp->win_o = 0;
        } else {
            mp->child_armed = 1;
        }
    }
}

/* The take-over, the lock held and busy: the owner's mark once the owner lends the run or lets
 * it go, then the baton. One whose owner makes no call within POWERCUT_LEND_WAIT (asleep,
 * blocked) would be modelled at the same time as it: refused, named. */
static void fchild_take(void)
{
    S.fchild = 0;
    char side[PATH_MAX + 16], me[32];
    run_side("owner", side, sizeof side);
    snprintf(me, sizeof me, "%ld", (long)getpid());
    int fd;
    while ((fd = mark_take(side)) < 0 && errno == EEXIST)
        if (!run_awaited())
            refuse_in_run(S.let_go ? "changed a tracked file again after it let the run go"
                                   : "(forked by the owner, no exec) changed a tracked file");
    if (fd < 0) die("POWERCUT_RUN (cannot create the owner's mark beside the trace)", side);
    if (write(fd, me, strlen(me)) < 0) die("POWERCUT_RUN (cannot write the owner's mark)", side);
    real_close(fd);
    req_drop();
    setenv("POWERCUT_OWNER", me, 1);
    S.owner = getpid();
    char path[PATH_MAX + 16];
    run_side("baton", path, sizeof path);
    baton_resume(path, S.let_go ? "the state left while this process did not own the run"
                                : "the state the owner left when it lent the run");
    S.let_go = 0;
    for (size_t i = 0; i < S.nmaps; i++)
        if (S.maps[i].child_armed) {
            syscall(SYS_mprotect, S.maps[i].addr, S.maps[i].len, S.maps[i].prot);
            S.maps[i].child_armed = 0;
        }
}

/* ---- letting the run go on request (POWERCUT_RUN) ----
 * Two processes of a run at work at once (a background job beside the foreground, two
 * children of one shell, a child of an owner that does not wait for it) take turns: one that
 * would change a tracked file while another owns the run asks for it (run_awaited) and waits;
 * the owner, at its next call of the shim (ENSURE, before that call's effect), lets it go as
 * it lends it for a wait: stores harvested, the trace flushed and finished, the state in the
 * baton, its mark removed (baton_leave). It is then as a forked child that has not taken the
 * run yet (fchild_arm): every tracked writable shared mapping read-only, on mprotect, so that
 * its next store faults, and its state stale. Its next change (a call, a store) asks for the
 * run back the same way and goes on from the baton (fchild_take, baton_resume): the steps
 * number on in the one trace in the order the processes held the run, and what it wrote and
 * did not sync is still volatile in the model it takes back. */

/* An owner no longer in the run (let go, or its wait returned while another holds it), the lock
 * held: as a forked child before its take-over, but for the children it forked itself, which
 * may still store into its open pages (S.forked). */
static void let_go_arm(void)
{
    int forked = S.forked;
    fchild_arm();
    S.forked = forked;
    S.let_go = 1;
    S.owner = 0; /* not this process: its end and its exec hand nothing on */
}

/* TRACE.request is not 0 (ENSURE): the owner lets the run go to the process that asked, unless
 * the request is its own (left from its last wait) or of a process gone, which is withdrawn. */
static void run_asked(void)
{
    uint32_t who = __atomic_load_n(run_req, __ATOMIC_ACQUIRE);
    if (!who || busy || !S.active || S.dead || S.fchild || !S.claimed || S.owner != getpid() || !baton_due())
        return;
    int saved = errno;
    if (who == (uint32_t)getpid() || proc_gone(who)) {
        __atomic_compare_exchange_n(run_req, &who, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        errno = saved;
        return;
    }
    busy++;
    pthread_mutex_lock(&lock);
    if (!S.fchild && S.owner == getpid()) { /* not let go by another thread meanwhile */
        lend_locked();
        let_go_arm();
    }
    pthread_mutex_unlock(&lock);
    busy--;
    errno = saved;
}

/* The take-over before a call that changes a tracked file, or a store (the SIGSEGV handler:
 * errno is the interrupted code's), outside the lock. */
static void fchild_now(void)
{
    if (!S.fchild || busy) return;
    int saved = errno;
    busy++;
    pthread_mutex_lock(&lock);
    if (S.fchild) fchild_take();
    pthread_mutex_unlock(&lock);
    busy--;
    errno = saved;
}

PC_EXPORT pid_t wait(int *status)
{
    ENSURE();
    if (!lend_due(0)) return real_wait(status);
    baton_lend();
    pid_t r = real_wait(status);
    baton_back();
    return r;
}

PC_EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
    ENSURE();
    if (!lend_due(options)) return real_waitpid(pid, status, options);
    baton_lend();
    pid_t r = real_waitpid(pid, status, options);
    baton_back();
    return r;
}

PC_EXPORT pid_t wait3(int *status, int options, struct rusage *ru)
{
    ENSURE();
    if (!lend_due(options)) return real_wait3(status, options, ru);
    baton_lend();
    pid_t r = real_wait3(status, options, ru);
    baton_back();
    return r;
}

PC_EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    ENSURE();
    if (!lend_due(options)) return real_wait4(pid, status, options, ru);
    baton_lend();
    pid_t r = real_wait4(pid, status, options, ru);
    baton_back();
    return r;
}

PC_EXPORT int waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
    ENSURE();
    if (!lend_due(options)) return real_waitid(type, id, info, options);
    baton_lend();
    int r = real_waitid(type, id, info, options);
    baton_back();
    return r;
}

/* glibc's system() waits with its own internal waitpid, which no preload sees: the run is lent
 * around the whole call (the command runs, the caller only waits). */
PC_EXPORT int system(const char *command)
{
    ENSURE();
    if (!command || !lend_due(0)) return real_system(command);
    baton_lend();
    int r = real_system(command);
    baton_back();
    return r;
}

/* Steps 1-3 of the protocol: the memfd holding the state, with the lock held; -1 without it
 * when this process is not the owner (nothing to carry: its exec is not followed). */
static int exec_begin(void)
{
    /* an owner that let the run go takes it back first: its descriptors of the files go on in
     * the new image, which would find their writes behind its back without the state */
    if (S.let_go && S.active && !S.dead) fchild_now();
    if (!S.active || !S.claimed || S.dead || busy || getpid() != S.owner) return -1;
    if (S.cb) die("exec (an in-process image callback cannot follow the new image)", "");
    busy++;
    pthread_mutex_lock(&lock);
    stores_to_model(); /* the exec unmaps everything: stores so far are volatile changes */
    if (S.tw && pc_tw_flush(S.tw)) die("POWERCUT_TRACE (cannot flush it before exec)", S.trace_path);
    pc_handover h;
    pc_tw *mw;
    ho_fill(&h, &mw);
    int fd = pc__ho_save(&h);
    if (fd < 0) die("exec (cannot save the state for the new image)", strerror(errno));
    pc_tw_free(mw);
    free(h.files);
    free(h.fds);
    own_cloexec(0);
    return fd;
}

/* The real exec failed (step 4): the old image goes on unchanged. */
static int exec_failed(int fd, char **env, char *const envp[])
{
    int e = errno;
    pc__ho_env_free(env, envp);
    own_cloexec(1);
    syscall(SYS_close, fd);
    pthread_mutex_unlock(&lock);
    busy--;
    errno = e;
    return -1;
}

static char **exec_env(int fd, char *const envp[])
{
    char **env = pc__ho_env(envp, fd, environ);
    if (!env) die("memory", "exec hand-over environment");
    return env;
}

/* Each exported name of the exec family needs its own wrapper: glibc's execv, execvp,
 * execl... call its internal execve, which no preload sees. */
static int do_execve(const char *path, char *const argv[], char *const envp[])
{
    int fd = exec_begin();
    if (fd < 0) return real_execve(path, argv, envp);
    char **env = exec_env(fd, envp);
    real_execve(path, argv, env);
    return exec_failed(fd, env, envp);
}

static int do_execvpe(const char *file, char *const argv[], char *const envp[])
{
    int fd = exec_begin();
    if (fd < 0) return real_execvpe(file, argv, envp);
    char **env = exec_env(fd, envp);
    real_execvpe(file, argv, env);
    return exec_failed(fd, env, envp);
}

PC_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    ENSURE();
    return do_execve(path, argv, envp);
}

PC_EXPORT int execv(const char *path, char *const argv[])
{
    ENSURE();
    return do_execve(path, argv, environ);
}

PC_EXPORT int execvp(const char *file, char *const argv[])
{
    ENSURE();
    return do_execvpe(file, argv, environ);
}

PC_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    ENSURE();
    return do_execvpe(file, argv, envp);
}

PC_EXPORT int fexecve(int dfd, char *const argv[], char *const envp[])
{
    ENSURE();
    int fd = exec_begin();
    if (fd < 0) return real_fexecve(dfd, argv, envp);
    char **env = exec_env(fd, envp);
    real_fexecve(dfd, argv, env);
    return exec_failed(fd, env, envp);
}

static int sys_execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    if (real_execveat) return real_execveat(dirfd, path, argv, envp, flags);
    return (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags);
}

PC_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    ENSURE();
    int fd = exec_begin();
    if (fd < 0) return sys_execveat(dirfd, path, argv, envp, flags);
    char **env = exec_env(fd, envp);
    sys_execveat(dirfd, path, argv, env, flags);
    return exec_failed(fd, env, envp);
}

/* execl, execlp, execle: the argument list as an array (execle: and the environment after it). */
static char **collect_args(const char *arg0, va_list ap, char ***envp)
{
    va_list c;
    va_copy(c, ap);
    size_t n = 1;
    while (va_arg(c, const char *)) n++;
    va_end(c);
    char **argv = malloc((n + 1) * sizeof *argv);
    if (!argv) {
        errno = ENOMEM;
        return NULL;
    }
    argv[0] = (char *)arg0;
    for (size_t i = 1; i <= n; i++) argv[i] = va_arg(ap, char *); /* the last is the NULL */
    if (envp) *envp = va_arg(ap, char **);
    return argv;
}

PC_EXPORT int execl(const char *path, const char *arg, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, arg);
    char **argv = collect_args(arg, ap, NULL);
    va_end(ap);
    int r = argv ? do_execve(path, argv, environ) : -1;
    free(argv);
    return r;
}

PC_EXPORT int execlp(const char *file, const char *arg, ...)
{
    ENSURE();
    va_list ap;
    va_start(ap, arg);
    char **argv = collect_args(arg, ap, NULL);
    va_end(ap);
    int r = argv ? do_execvpe(file, argv, environ) : -1;
    free(argv);
    return r;
}

PC_EXPORT int execle(const char *path, const char *arg, ...)
{
    ENSURE();
    char **envp = NULL;
    va_list ap;
    va_start(ap, arg);
    char **argv = collect_args(arg, ap, &envp);
    va_end(ap);
    int r = argv ? do_execve(path, argv, envp) : -1;
    free(argv);
    return r;
}

static void fc_check_file(size_t fi);

/* A file of the baton, by the name it had when the last owner ended: the same inode, opened
 * for the shim, or the run stops: something untracked removed, renamed or replaced it while
 * no process owned the run (`rm`, `mv`, `cp` over it without opening it under the shim). */
static int baton_reopen(const pc_ho_file *hf, const char *name)
{
    int rfd = hf->where ? pc__own_open(hf->where, O_RDONLY, 0) : -1;
    if (rfd < 0 && errno == EMFILE) die("descriptors (none free above the program's for the shim)", hf->where);
    struct stat st;
    if (rfd >= 0 && fstat(rfd, &st) == 0 && (uint64_t)st.st_dev == hf->dev && (uint64_t)st.st_ino == hf->ino)
        return rfd;
    char msg[3 * PATH_MAX];
    snprintf(msg, sizeof msg,
             "powercut: %s changed behind the shim's back (found when process %ld took the run over, before "
             "step %llu): %s is no longer that file (removed, renamed or replaced by a process that did not "
             "own the run), so the run stops (exit status 97; faults/README.md, one process at a time)\n",
             name, (long)getpid(), (unsigned long long)S.step + 1, hf->where ? hf->where : "its name");
    stop_lost(msg);
}

/* Step 5 of the exec protocol, in the new image at its start, and the baton's take-over
 * (handover.c): continue the run the previous image or process handed on. `baton`: the state
 * came from TRACE.baton, written by another process that ended: its descriptors are gone, the
 * trace and the files are opened again by name, and each file is compared with the baseline
 * it left before anything else happens. */
static void adopt_state(pc_handover *h, int baton)
{
    const char *from = baton ? "the process before" : "the image before the exec";
    char what[160];
    if (h->sector != S.sector) {
        snprintf(what, sizeof what, "POWERCUT_SECTOR (another sector size than %s)", from);
        die(what, getenv("POWERCUT_SECTOR"));
    }
    if ((h->trace_fd >= 0) != (S.trace_path != NULL))
        die("POWERCUT_TRACE (a trace cannot start or stop at an exec)", S.trace_path);
    if (S.m) {
        pc_model *m = NULL;
        if (pc__ho_model(h, &m)) {
            snprintf(what, sizeof what, "POWERCUT_CUT/POWERCUT_MODEL (%s kept no model to continue)", from);
            die(what, "");
        }
        pc_model_free(S.m);
        S.m = m;
    }
    S.claimed = 1;
    S.owner = getpid();
    S.step = S.st.steps = h->step;
    if (h->trace_fd >= 0 && baton) {
        /* the last owner finished the trace: its END goes, and this process appends */
        int fd = pc__own_open(S.trace_path, O_RDWR, 0);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) || (uint64_t)st.st_size != h->trace_total + 1 ||
            syscall(SYS_ftruncate, fd, (long)h->trace_total) ||
            syscall(SYS_lseek, fd, (long)h->trace_total, SEEK_SET) < 0)
            die("POWERCUT_TRACE (cannot continue the trace the process before left)", S.trace_path);
        S.trace_fd = fd;
    } else if (h->trace_fd >= 0) {
        pc__own_adopt(h->trace_fd);
        set_cloexec(h->trace_fd, 1);
        S.trace_fd = h->trace_fd;
    }
    if (h->trace_fd >= 0 && pc__tw_resume(S.trace_fd, h->trace_mapped, h->trace_total, &S.tw))
        die("POWERCUT_TRACE (cannot continue it)", S.trace_path);
    S.files = calloc(h->nfiles ? h->nfiles : 1, sizeof *S.files);
    if (!S.files) die("memory", "hand-over");
    S.fcap = h->nfiles ? h->nfiles : 1;
    for (uint32_t i = 0; i < h->nfiles; i++) {
        tfile *f = &S.files[i];
        f->dev = (dev_t)h->files[i].dev;
        f->ino = (ino_t)h->files[i].ino;
        f->id = h->files[i].id;
        f->size = h->files[i].size;
        f->rfd = h->files[i].rfd;
        f->name_new = h->files[i].name_new;
        f->symlink = h->files[i].symlink;
        f->path = h->files[i].path;
        h->files[i].path = NULL;
        S.nfiles++;
        if (f->rfd < 0) continue; /* retired before: the model holds it all */
        if (baton) {
            f->rfd = baton_reopen(&h->files[i], f->path);
            f->fc_ok = h->files[i].fc_ok;
            f->fc_mtim.tv_sec = (time_t)h->files[i].fc_sec;
            f->fc_mtim.tv_nsec = (long)h->files[i].fc_nsec;
            f->fc_size = h->files[i].fc_size;
        } else {
            pc__own_adopt(f->rfd);
            set_cloexec(f->rfd, 1);
        }
        df_backed(f, 0, f->size); /* the disk-full model starts again: room until its error */
        /* sync mode without a model: the volatile content is the file's, as the kernel kept it */
        if (use_shadow() && (shadow_fit(f, f->size ? f->size : 1) || read_all(f->rfd, f->shadow, 0, f->size)))
            die("POWERCUT_MMAP=sync (cannot read the file again)", f->path);
    }
    for (uint32_t i = 0; i < h->nfds; i++)
        if (h->fds[i].file > 0 && (uint32_t)h->fds[i].file <= h->nfiles) set_fd(h->fds[i].fd, h->fds[i].file, h->fds[i].flags);
    /* what changed between the two processes was changed by no owner: not modelled */
    if (baton && !G.foreign_off)
        for (size_t i = 0; i < S.nfiles; i++)
            if (S.files[i].rfd >= 0) fc_check_file(i);
    /* the exec closed the close-on-exec descriptors and every mapping */
    for (size_t i = 0; i < S.nfiles; i++) retire_check(i);
    S.markn = h->markn;
    memcpy(S.markbuf, h->markbuf, h->markn);
    for (uint32_t i = 0; i < h->nknown; i++) add_known(h->known[i]);
}

/* Removes a variable from environ itself, not through unsetenv: a program may define its own
 * (bash does, over its shell variables, which it has not built yet when the shim starts: its
 * unsetenv then leaves environ as it is, bash imports the variable, and every command it starts
 * read the old image's descriptor number as a hand-over of its own). */
static void drop_env(const char *nameeq)
{
    size_t n = strlen(nameeq), j = 0;
    for (size_t i = 0; environ && environ[i]; i++)
        if (strncmp(environ[i], nameeq, n)) environ[j++] = environ[i];
    if (environ) environ[j] = NULL;
}

/* In the new image at its start: continue the run the old image handed over. */
static void adopt_handover(void)
{
    const char *v = getenv("POWERCUT_HANDOVER");
    if (!v || !*v) return;
    char *end;
    long hfd = strtol(v, &end, 10);
    if (*end || hfd < 0 || hfd > INT_MAX) die("POWERCUT_HANDOVER", v);
    pc_handover h;
    if (pc__ho_load((int)hfd, &h)) die("POWERCUT_HANDOVER (the state the image before exec left is unreadable)", v);
    drop_env("POWERCUT_HANDOVER="); /* the processes this image starts are not the owner's image */
    adopt_state(&h, 0);
    pc__ho_free(&h);
}

/* ---- bookkeeping: mappings ---- */
static int overlaps_any(uintptr_t a, size_t len);

static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off,
                     void *(*real)(void *, size_t, int, int, int, off_t))
{
    if ((flags & MAP_FIXED) && S.active && !S.dead && !busy && S.nmaps &&
        overlaps_any((uintptr_t)addr, len)) {
        /* a mapping replaced in place: record its stores first, as munmap does */
        busy++;
        pthread_mutex_lock(&lock);
        harvest_all();
        pthread_mutex_unlock(&lock);
        busy--;
    }
    void *p = real(addr, len, prot, flags, fd, off);
    int fdflags;
    tfile *f = fd_file(fd, &fdflags);
    if (p == MAP_FAILED || !f) return p;
    busy++;
    pthread_mutex_lock(&lock);
    if (flags & MAP_FIXED) forget_range((uintptr_t)p, len);
    /* MAP_PRIVATE stores never reach the file: only shared writable mappings are tracked,
     * but every mapping is kept so that msync on it still counts as a step. The kernel clears
     * VM_SHARED of a MAP_SHARED (or MAP_SHARED_VALIDATE) mapping of a descriptor not open for
     * writing, and msync syncs nothing under such a mapping, as under a private one. */
    int shared = (flags & MAP_SHARED) != 0 && (fdflags & O_ACCMODE) != O_RDONLY;
    if (add_map((uintptr_t)p, len, (uint32_t)(f - S.files), (uint64_t)off, prot, shared))
        warn("powercut: out of memory tracking a mapping; its stores are not modelled\n");
    pthread_mutex_unlock(&lock);
    busy--;
    return p;
}

PC_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    ENSURE();
    return do_mmap(addr, len, prot, flags, fd, off, real_mmap);
}

PC_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    ENSURE();
    return do_mmap(addr, len, prot, flags, fd, off, real_mmap64);
}

static int overlaps_any(uintptr_t a, size_t len)
{
    for (size_t i = 0; i < S.nmaps; i++)
        if (a < S.maps[i].addr + S.maps[i].len && a + len > S.maps[i].addr) return 1;
    return 0;
}

PC_EXPORT int munmap(void *addr, size_t len)
{
    ENSURE();
    if (!S.active || S.dead || busy || !S.nmaps || !overlaps_any((uintptr_t)addr, len))
        return real_munmap(addr, len);
    busy++;
    pthread_mutex_lock(&lock);
    harvest_all(); /* stores made before the unmap are volatile changes still to be recorded */
    for (size_t i = 0; S.mmap_sync && !S.mmap_lazy && i < S.nmaps; i++) /* lazy: the file keeps them */
        capture_range(&S.maps[i], (uintptr_t)addr, (uintptr_t)addr + len);
    size_t unmapped[8], nu = 0; /* files that may lose their last mapping (more: kept, safe) */
    for (size_t i = 0; i < S.nmaps && nu < 8; i++)
        if ((uintptr_t)addr < S.maps[i].addr + S.maps[i].len && (uintptr_t)addr + len > S.maps[i].addr)
            unmapped[nu++] = S.maps[i].file;
    int r = real_munmap(addr, len);
    int saved = errno;
    if (r == 0) forget_range((uintptr_t)addr, len);
    for (size_t i = 0; r == 0 && i < nu; i++) retire_check(unmapped[i]);
    pthread_mutex_unlock(&lock);
    busy--;
    errno = saved;
    return r;
}

PC_EXPORT void *mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
    ENSURE();
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    if (!S.active || S.dead || busy || !S.nmaps || !overlaps_any((uintptr_t)old, oldlen))
        return real_mremap(old, oldlen, newlen, flags, want);
    busy++;
    pthread_mutex_lock(&lock);
    harvest_all();
    for (size_t i = 0; S.mmap_sync && !S.mmap_lazy && i < S.nmaps; i++) /* lazy: the file keeps them */
        capture_range(&S.maps[i], (uintptr_t)old, (uintptr_t)old + oldlen);
    tmap src;
    memset(&src, 0, sizeof src);
    for (size_t i = 0; i < S.nmaps; i++)
        if ((uintptr_t)old >= S.maps[i].addr && (uintptr_t)old < S.maps[i].addr + S.maps[i].len)
            src = S.maps[i];
    /* The mprotect backend leaves the mapping in pieces of different protection, and the
     * kernel refuses to remap a range that is not one mapping (EFAULT). Every store
     * so far is recorded (harvest_all), so the range can be made whole, and it is
     * tracked afresh where it lands (add_map), or again where it was on failure. (A uffd
     * mapping is one piece; the kernel does not carry its registration to a new place,
     * and add_map registers it there or ends what an in-place resize kept.) */
    if (src.len && src.wt == WT_MPROTECT) mprotect(old, oldlen, src.prot);
    void *p = real_mremap(old, oldlen, newlen, flags, want);
    int saved = errno;
    if (p == MAP_FAILED && src.len && src.wt == WT_MPROTECT) mprotect(old, oldlen, src.prot & ~PROT_WRITE);
    if (p != MAP_FAILED && src.len) {
        forget_range((uintptr_t)old, oldlen);
        if (flags & MREMAP_FIXED) forget_range((uintptr_t)p, newlen);
        add_map((uintptr_t)p, newlen, src.file, src.off + ((uintptr_t)old - src.addr), src.prot,
                src.vmshared);
    }
    pthread_mutex_unlock(&lock);
    busy--;
    errno = saved;
    return p;
}

/* ---- markers ---- */
static void mark_locked(int kind, uint64_t op, const char *label)
{
    if (S.tw) trace_fail(pc_tw_mark(S.tw, kind, op, label));
}

PC_EXPORT void pc_mark(int kind, uint64_t op, const char *label)
{
    ENSURE();
    if (!S.active || S.dead || busy) return;
    busy++;
    pthread_mutex_lock(&lock);
    if (S.fchild) fchild_take(); /* a forked child's marks are the run's, in its turn */
    if (!S.claimed && S.npending < (int)(sizeof S.pending / sizeof S.pending[0])) {
        S.pending[S.npending].kind = kind;
        S.pending[S.npending].op = op;
        S.pending[S.npending].label = strdup(label ? label : "");
        S.npending++;
    }
    /* No harvest: a marker is not a crash point. Stores made before it are recorded at the
     * next step (or munmap/mremap), before that step's STEP record, so every crash image sees
     * them; their WRITE records may follow the MARK, which only attributes steps. */
    mark_locked(kind, op, label);
    pthread_mutex_unlock(&lock);
    busy--;
}

/* Marker lines on POWERCUT_MARK_FD: "begin OP [LABEL]", "end OP", "note TEXT". */
static void parse_line(char *line)
{
    char *sp = strchr(line, ' ');
    char *rest = sp ? sp + 1 : line + strlen(line);
    if (sp) *sp = 0;
    if (!strcmp(line, "note")) {
        pc_mark(PC_MARK_NOTE, 0, rest);
        return;
    }
    int kind = !strcmp(line, "begin") ? PC_MARK_BEGIN : !strcmp(line, "end") ? PC_MARK_END : 0;
    if (!kind) return;
    char *end;
    uint64_t op = strtoull(rest, &end, 10);
    while (*end == ' ') end++;
    pc_mark(kind, op, end);
}

static void parse_marks(const void *buf, size_t len)
{
    const char *p = buf;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n' || S.markn == sizeof S.markbuf - 1) {
            S.markbuf[S.markn] = 0;
            if (S.markn) parse_line(S.markbuf);
            S.markn = 0;
            if (p[i] == '\n') continue;
        }
        S.markbuf[S.markn++] = p[i];
    }
}

/* ---- in-process API ---- */
PC_EXPORT int pc_shim_stats(pc_stats *out)
{
    if (!out) return PC_EINVAL;
    ENSURE();
    if (S.tw) S.st.trace_bytes = pc__tw_total(S.tw);
    *out = S.st;
    return PC_OK;
}

PC_EXPORT int pc_shim_reset(void)
{
    ENSURE();
    busy++;
    pthread_mutex_lock(&lock);
    untrack_maps();
    while (S.nmaps) drop_map(S.nmaps - 1);
    pc__uffd_close(); /* reopened by the next mapping: the environment may choose otherwise */
    S.uffd_ok = 0;
    psh_free();
    copies_free();
    S.faults_ok = 0;
    for (size_t i = 0; i < S.nfiles; i++) {
        pc__own_release(S.files[i].rfd);
        free(S.files[i].path);
        free(S.files[i].shadow);
        pc__blocks_free(&S.files[i].blocks);
    }
    S.nfiles = 0;
    for (size_t i = 0; i < S.nknown; i++) free(S.known[i]);
    S.nknown = 0;
    for (size_t i = 0; i < S.npdirs; i++) free(S.pdirs[i]);
    S.npdirs = 0;
    S.full = 0;
    S.full_step = 0;
    if (S.fds) memset(S.fds, 0, S.nfds * sizeof *S.fds); /* none tracked yet: NULL */
    if (S.tw) {
        finish_trace();
        pc_tw_free(S.tw);
        S.tw = NULL;
        pc__own_release(S.trace_fd);
        S.trace_fd = -1;
    }
    pc_model_free(S.m);
    S.m = NULL;
    free(S.pattern);
    free(S.abs_pattern);
    for (size_t i = 0; i < S.npats; i++) {
        free(S.pats[i]);
        free(S.abs_pats[i]);
    }
    free(S.pats);
    free(S.abs_pats);
    S.pats = S.abs_pats = NULL;
    S.npats = 0;
    free(S.image);
    free(S.trace_path);
    S.pattern = S.abs_pattern = S.image = S.trace_path = NULL;
    S.claimed = 0;
    for (int i = 0; i < S.npending; i++) free(S.pending[i].label);
    S.npending = 0;
    for (size_t i = 0; i < S.ncut; i++) free(S.cut_imgs[i]);
    free(S.cut_imgs);
    free(S.cut_lens);
    S.cut_imgs = NULL;
    S.cut_lens = NULL;
    S.ncut = 0;
    S.step = 0;
    S.dead = 0;
    S.markn = 0;
    S.mark_fd = -1;
    memset(&S.st, 0, sizeof S.st);
    read_env();
    if (S.active) install_segv();
    pthread_mutex_unlock(&lock);
    busy--;
    return PC_OK;
}

PC_EXPORT int pc_shim_set_image_cb(pc_image_cb cb, void *ctx)
{
    ENSURE();
    pthread_mutex_lock(&lock);
    S.cb = cb;
    S.cbctx = ctx;
    int rc = PC_OK;
    if (cb && !S.m && new_model(S.sector ? S.sector : 512)) rc = PC_ENOMEM;
    pthread_mutex_unlock(&lock);
    return rc;
}

PC_EXPORT int pc_shim_cut_model(const char *path, pc_model **m, uint32_t *id)
{
    ENSURE();
    if (!path || !m || !id) return PC_EINVAL;
    pthread_mutex_lock(&lock);
    /* After an in-process cut nothing reaches the model (every call passes straight through
     * until pc_shim_reset), so it still holds the cut step open, as the images were made. */
    int rc = S.dead && S.cb && S.m ? PC_ENOENT : PC_ESTATE;
    for (size_t i = 0; rc == PC_ENOENT && i < S.nfiles; i++)
        if (!strcmp(S.files[i].path, path)) {
            *m = S.m;
            *id = S.files[i].id;
            rc = PC_OK;
        }
    pthread_mutex_unlock(&lock);
    return rc;
}

PC_EXPORT int pc_shim_set_after_cut(int mode)
{
    if (mode != PC_AFTER_CUT_FAIL && mode != PC_AFTER_CUT_CONTINUE) return PC_EINVAL;
    ENSURE();
    pthread_mutex_lock(&lock);
    S.cut_goes_on = mode == PC_AFTER_CUT_CONTINUE;
    pthread_mutex_unlock(&lock);
    return PC_OK;
}

PC_EXPORT int pc_shim_set_cut(uint64_t step, const pc_crash *crash)
{
    ENSURE();
    pthread_mutex_lock(&lock);
    S.cut_step = step;
    if (crash) S.crash = *crash;
    int rc = PC_OK;
    if (step && !S.m && new_model(S.sector ? S.sector : 512)) rc = PC_ENOMEM;
    pthread_mutex_unlock(&lock);
    return rc;
}

PC_EXPORT int pc_shim_set_error(uint64_t step, int err)
{
    return pc_shim_set_error_tear(step, err, NULL);
}

PC_EXPORT int pc_shim_set_error_tear(uint64_t step, int err, const pc_crash *tear)
{
    ENSURE();
    if (step && err <= 0 && err != PC_ERRNO_SHORT) return PC_EINVAL;
    if (tear && (err == PC_ERRNO_SHORT || tear->wb != PC_WB_NONE || tear->tear == PC_TEAR_GARBAGE ||
                 tear->tear > PC_TEAR_GARBAGE))
        return PC_EINVAL;
    S.err_step = step;
    S.err_errno = err;
    S.err_torn = tear != NULL;
    if (tear) S.err_tear = *tear;
    return PC_OK;
}
