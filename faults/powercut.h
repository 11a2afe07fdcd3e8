/* powercut.h: public API of libpowercut, the power-cut model shared by the LD_PRELOAD shim,
 * the crash explorer and in-process fuzzers: model, trace writer/reader, crash-image deriver. */
#ifndef POWERCUT_H
#define POWERCUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PC_API __attribute__((visibility("default")))
#else
#define PC_API
#endif

/* Error codes: every function returns PC_OK or one of these (never errno). */
enum {
    PC_OK = 0,
    PC_ENOMEM = -1,  /* allocation failed */
    PC_EINVAL = -2,  /* bad argument or unparsable specification */
    PC_EIO = -3,     /* reading or writing a trace or image failed */
    PC_EFORMAT = -4, /* a trace is not a powercut trace, or has another version */
    PC_ERANGE = -5,  /* step, file id or offset out of range */
    PC_ENOENT = -6,  /* no such file in the model or trace */
    PC_ESTATE = -7,  /* call not valid in the current state (e.g. no step open) */
};
PC_API const char *pc_strerror(int code);

/* ---- crash choices ---------------------------------------------------------------------- */

/* What part of the sectors the cut step would make durable reaches the disk. */
typedef enum {
    PC_TEAR_NONE = 0, /* none of them */
    PC_TEAR_ALL,      /* all of them (and the size change of the step) */
    PC_TEAR_PREFIX,   /* the first n, ascending (file id, offset) order */
    PC_TEAR_SUFFIX,   /* the last n */
    PC_TEAR_RANDOM,   /* each one with probability 1/2, drawn from seed */
    PC_TEAR_GARBAGE,  /* all, but the n-th (1-based) holds bytes neither old nor new */
} pc_tear_kind;

typedef enum {
    PC_WB_NONE = 0, /* strict: no other dirty sector reached the disk */
    PC_WB_ALL,      /* every other dirty sector (and the volatile size) reached the disk */
    PC_WB_RANDOM,   /* each other dirty sector (and the size) with probability 1/2 */
} pc_wb_kind;

typedef struct {
    pc_tear_kind tear;
    uint64_t tear_n;    /* PREFIX/SUFFIX count, GARBAGE index (1-based) */
    uint64_t tear_seed; /* RANDOM */
    pc_wb_kind wb;
    uint64_t wb_seed; /* RANDOM */
    uint64_t seed;    /* garbage bytes */
} pc_crash;

/* Parses "TEAR[:WRITEBACK[:SEED]]" (e.g. "prefix:3:random:7:42" is not valid; see README:
 * TEAR = none|all|prefix:N|suffix:N|random[:S]|garbage:N, WRITEBACK = none|all|random[:S]).
 * A random without its own seed uses SEED (default 0). */
PC_API int pc_crash_parse(const char *spec, pc_crash *out);
/* Parses "STEP[:TEAR[:WRITEBACK[:SEED]]]" (the POWERCUT_CUT syntax). */
PC_API int pc_cut_parse(const char *spec, uint64_t *step, pc_crash *out);

/* ---- the model -------------------------------------------------------------------------- */

/* A pc_model holds, per tracked file, the volatile content (what the process sees), the
 * durable content (what survives a power cut) and the dirty sectors (written since their
 * last sync). Steps are bracketed by pc_model_step_begin/end; inside a step, volatile
 * changes apply at once and syncs are collected, so that a crash image of the step can be
 * taken before pc_model_step_end applies them. */
typedef struct pc_model pc_model;

PC_API int pc_model_new(uint32_t sector_size, pc_model **out);
PC_API void pc_model_free(pc_model *m);
/* Forgets every file and the step counter (in-process fuzzers reuse one model). */
PC_API void pc_model_reset(pc_model *m);
/* Adds a file whose current content is durable (its name too: it exists durably from its
 * creation, unless pc_model_created says otherwise). */
PC_API int pc_model_add_file(pc_model *m, const char *name, const void *content, uint64_t size,
                             uint32_t *id_out);
/* Names (the namespace model, POWERCUT_NAMESPACE=posix): directory entries, each holding a
 * file id, PC_NAME_NONE (no such name) or PC_NAME_OTHER (a file the model does not track),
 * once as the process sees it and once on the disk. A file's first name is its
 * pc_model_add_file name. pc_model_created: the process created file id, so that name is
 * volatile: a crash image has no such file until the entry is durable. */
#define PC_NAME_NONE UINT32_MAX
#define PC_NAME_OTHER (UINT32_MAX - 1)
#define PC_NAME_DIR (UINT32_MAX - 2) /* a directory the process made (pc_model_mkdir) or removed */
#define PC_NAME_IS_FILE(target) ((target) < PC_NAME_DIR)
PC_API int pc_model_created(pc_model *m, uint32_t id);
/* Namespace changes (paths as the names' strings; the shim gives them absolute, the parent
 * resolved). Volatile until an fsync of the directory holding each changed name, unless
 * flags has PC_NAME_DURABLE (names not modelled: durable at once). PC_NAME_OVER_OTHER: the
 * rename's target, a name the model does not know yet, held a file it does not track.
 * PC_NAME_EXCHANGE: renameat2's RENAME_EXCHANGE, the two names swap what they hold, in one
 * operation (both must hold something: else PC_ENOENT).
 * PC_ENOENT: `from` (or `name`) holds nothing the model knows. */
enum { PC_NAME_DURABLE = 1, PC_NAME_OVER_OTHER = 2, PC_NAME_EXCHANGE = 4 };
PC_API int pc_model_rename(pc_model *m, const char *from, const char *to, int flags);
PC_API int pc_model_unlink(pc_model *m, const char *name, int flags);
PC_API int pc_model_link(pc_model *m, const char *from, const char *to, int flags);
/* Directories: a name holding PC_NAME_DIR. mkdir makes one (volatile like a created file's
 * name); rmdir removes one (a directory the model never heard of existed durably). Every name
 * below a directory the model knows exists in an image only if that directory does (and every
 * directory above it that the model knows): a file created in a new directory is on the disk
 * once its own entry and the directory's entry in its parent are. PC_EINVAL: mkdir over a name
 * that holds something; PC_ENOENT: rmdir of a name that holds no directory. */
PC_API int pc_model_mkdir(pc_model *m, const char *path, int flags);
/* Symbolic links: file id (pc_model_add_file, its content the link's target, durable with the
 * inode) is a symbolic link, not a regular file: an image lays it out as a link. */
PC_API int pc_model_set_symlink(pc_model *m, uint32_t id);
PC_API int pc_model_file_is_symlink(const pc_model *m, uint32_t id, int *is);
PC_API int pc_model_rmdir(pc_model *m, const char *path, int flags);
/* Inside a step (an fsync of directory `dir`): every changed name in it becomes durable when
 * the step ends. A cut in the step lands them with every tear but none, as the size of a
 * sync. pc_model_dir_sync: the same for the directory of file id's first name. */
PC_API int pc_model_dir_sync_path(pc_model *m, const char *dir);
PC_API int pc_model_dir_sync(pc_model *m, uint32_t id);
/* The ext4 profile (POWERCUT_NAMESPACE=ext4; call before any file is added): namespace
 * operations (a creation, rename, unlink, link without PC_NAME_DURABLE) are journalled in
 * program order, and an image holds a prefix of those not committed yet: all of them when
 * the cut step commits the journal and every sector of its syncs landed (tear not none),
 * otherwise none, all or a seeded length as the writeback is none, all or random. A step
 * commits the journal when it ends if it is an fsync of a directory (pc_model_dir_sync_path
 * then commits every directory's changes) or pc_model_journal_commit says so. A rename over
 * an existing name (auto_da_alloc) also syncs the renamed file in its step, and is in no
 * image of that step that does not hold all of that file's data. */
PC_API int pc_model_set_journal(pc_model *m);
/* Inside a step (an fsync, or with datasync an fdatasync, of file id): commits the journal
 * when the step ends if the file changed since the last commit: for fsync, dirty data, a size
 * change or a journalled operation about it; for fdatasync, a size change or its creation.
 * Does nothing on a model without the journal. */
PC_API int pc_model_journal_commit(pc_model *m, uint32_t id, int datasync);
/* The names the model knows (every name ever changed, and every file's first name). */
PC_API int pc_model_name_count(const pc_model *m, uint32_t *count);
PC_API int pc_model_name(const pc_model *m, uint32_t i, const char **path);
/* What name i holds in the crash image of the open step (or now): its durable target, or its
 * volatile one when its directory's fsync lands with the cut step or early writeback wrote
 * it (writeback all, or a seeded coin per namespace operation). */
PC_API int pc_model_image_name(pc_model *m, uint32_t i, const pc_crash *crash, uint32_t *holds);
/* Whether file id's first name holds file id in that image. */
PC_API int pc_model_image_exists(pc_model *m, uint32_t id, const pc_crash *crash, int *exists);
PC_API int pc_model_file_count(const pc_model *m, uint32_t *count);
PC_API int pc_model_file_name(const pc_model *m, uint32_t id, const char **name);
PC_API int pc_model_find_file(const pc_model *m, const char *name, uint32_t *id_out);

/* Volatile changes. A write marks every sector it touches dirty, even when the bytes are
 * unchanged (the kernel dirties the page all the same). */
PC_API int pc_model_write(pc_model *m, uint32_t id, uint64_t off, const void *data, uint64_t len);
PC_API int pc_model_truncate(pc_model *m, uint32_t id, uint64_t size);

/* Step bracket; steps are numbered from 1 in call order. */
PC_API int pc_model_step_begin(pc_model *m, uint64_t *step_out);
/* Inside a step: the range [off, off+len) (len UINT64_MAX: to the end) and the file size
 * become durable when the step ends. */
PC_API int pc_model_sync(pc_model *m, uint32_t id, uint64_t off, uint64_t len);
/* Inside or outside a step: the dirty data of the range is lost (fsync-gate): it is no
 * longer dirty, never becomes durable, while the process still sees it. */
PC_API int pc_model_lose(pc_model *m, uint32_t id, uint64_t off, uint64_t len);
PC_API int pc_model_step_end(pc_model *m);
/* Inside a step: the step's call failed (an injected error) with this outcome: when the step
 * ends, only the sectors of its syncs that `tear` takes (none, all, prefix:N, suffix:N,
 * random:S; not garbage) become durable, the size only if all of them did (tear not none),
 * and the dirty data of every synced range is lost (fsync-gate). Images of the open step
 * are those of any step (a cut during the failing call). */
PC_API int pc_model_step_fail(pc_model *m, const pc_crash *tear);

/* Number of sectors the open step makes durable (the n of prefix/suffix/garbage). */
PC_API int pc_model_step_sectors(pc_model *m, uint64_t *n_out);
/* The j-th of them (0-based, in the order prefix, suffix and garbage count them): its file and
 * its sector index (byte offset / sector size). PC_ERANGE past the last. */
PC_API int pc_model_step_sector(pc_model *m, uint64_t j, uint32_t *id, uint64_t *sector);
/* Crash image of file id if power is cut during the open step (or now, with no step open):
 * a malloc'ed buffer the caller frees. Never changes the model. */
PC_API int pc_model_image(pc_model *m, uint32_t id, const pc_crash *crash, uint8_t **buf_out,
                          uint64_t *len_out);
/* The same image as differences from the durable content: fn is called once for each
 * sector (sector_size bytes at sector * sector_size) that the image takes from
 * elsewhere (volatile content, or garbage), and *size_out gets the image's size.
 * The data pointer is valid during the call only. Cost: the sectors involved, not
 * the file size (explorers keep the durable image and lay these over it). */
typedef void (*pc_sector_fn)(void *ctx, uint64_t sector, const uint8_t *data);
PC_API int pc_model_image_sectors(pc_model *m, uint32_t id, const pc_crash *crash, pc_sector_fn fn, void *ctx,
                                  uint64_t *size_out);
/* The current volatile / durable content (borrowed pointers, valid until the next call). */
PC_API int pc_model_volatile(const pc_model *m, uint32_t id, const uint8_t **buf, uint64_t *len);
PC_API int pc_model_durable(const pc_model *m, uint32_t id, const uint8_t **buf, uint64_t *len);

/* ---- traces ------------------------------------------------------------------------------ */

/* Calls the shim numbers in traces (stable: part of the trace format). */
typedef enum {
    PC_CALL_NONE = 0,
    PC_CALL_WRITE, PC_CALL_PWRITE, PC_CALL_WRITEV, PC_CALL_PWRITEV, PC_CALL_FTRUNCATE,
    PC_CALL_FALLOCATE, PC_CALL_POSIX_FALLOCATE, PC_CALL_MSYNC, PC_CALL_FSYNC, PC_CALL_FDATASYNC,
    PC_CALL_SYNC_FILE_RANGE,
    PC_CALL_FSYNC_DIR, PC_CALL_FDATASYNC_DIR, /* of a directory holding a tracked file's name */
    PC_CALL_PWRITEV2, PC_CALL_COPY_FILE_RANGE, PC_CALL_SENDFILE,
    PC_CALL_EXIT, /* POWERCUT_EXIT_STEP=1: the process exits (file UINT32_MAX: every file) */
    PC_CALL_RENAME, PC_CALL_UNLINK, PC_CALL_LINK, /* of or over a tracked file's name */
    PC_CALL_SYNC, PC_CALL_SYNCFS, /* sync(2), syncfs(2) (file UINT32_MAX: every file) */
    PC_CALL_TRUNCATE, /* truncate(2) by path of a tracked file */
    PC_CALL_MKDIR, PC_CALL_RMDIR, /* of a directory under the tracked files' root */
    PC_CALL_SYMLINK, /* a symbolic link made there */
    PC_CALL_COUNT_
} pc_call;
PC_API const char *pc_call_name(int call);

/* Marker kinds (pc_mark, POWERCUT_MARK_FD). */
enum { PC_MARK_BEGIN = 1, PC_MARK_END = 2, PC_MARK_NOTE = 3 };

/* The trace writer: the same operations as the model, serialised. pc_tw_new writes to fd
 * through a 1 MiB buffer (with fd < 0 everything stays in memory: pc_tw_buffer).
 * pc_tw_new_mapped maps a regular file opened read-write and appends into the mapping, so
 * records survive a crash or kill of the writer (slower; falls back to buffering when fd
 * cannot be mapped); flush/finish trim the file. pc_tw_free never touches the file. */
typedef struct pc_tw pc_tw;
PC_API int pc_tw_new(int fd, uint32_t sector_size, pc_tw **out);
PC_API int pc_tw_new_mapped(int fd, uint32_t sector_size, pc_tw **out);
PC_API int pc_tw_flush(pc_tw *w);
PC_API int pc_tw_finish(pc_tw *w); /* end record + flush */
PC_API void pc_tw_free(pc_tw *w);
PC_API int pc_tw_buffer(const pc_tw *w, const uint8_t **buf, size_t *len); /* fd < 0 only */
PC_API int pc_tw_file(pc_tw *w, uint32_t id, const char *name, const void *content, uint64_t size);
PC_API int pc_tw_write(pc_tw *w, uint32_t id, uint64_t off, const void *data, uint64_t len,
                       int from_mmap);
PC_API int pc_tw_truncate(pc_tw *w, uint32_t id, uint64_t size);
/* A step: pc_tw_step, then its volatile changes (write/truncate), then its syncs/loses, then
 * pc_tw_step_end. Records outside a step are volatile changes between steps. */
PC_API int pc_tw_step(pc_tw *w, uint64_t step, int call, uint32_t id, int err, uint64_t off,
                      uint64_t len);
PC_API int pc_tw_step_end(pc_tw *w);
PC_API int pc_tw_sync(pc_tw *w, uint32_t id, uint64_t off, uint64_t len);
PC_API int pc_tw_lose(pc_tw *w, uint32_t id, uint64_t off, uint64_t len);
PC_API int pc_tw_step_fail(pc_tw *w, const pc_crash *tear); /* pc_model_step_fail, after the syncs */
PC_API int pc_tw_mark(pc_tw *w, int kind, uint64_t op, const char *label);
PC_API int pc_tw_created(pc_tw *w, uint32_t id);  /* pc_model_created */
/* POWERCUT_OUTPUT=1: the program's stdout (stream 1) or stderr (2) holds `bytes` bytes now. */
PC_API int pc_tw_output(pc_tw *w, int stream, uint64_t bytes);
PC_API int pc_tw_dir_sync(pc_tw *w, uint32_t id); /* pc_model_dir_sync, inside a step */
PC_API int pc_tw_dir_sync_path(pc_tw *w, const char *dir); /* pc_model_dir_sync_path */
PC_API int pc_tw_journal(pc_tw *w);                        /* pc_model_set_journal, first */
PC_API int pc_tw_journal_commit(pc_tw *w, uint32_t id, int datasync); /* pc_model_journal_commit */
PC_API int pc_tw_rename(pc_tw *w, const char *from, const char *to, int flags); /* pc_model_rename */
PC_API int pc_tw_unlink(pc_tw *w, const char *name, int flags);                /* pc_model_unlink */
PC_API int pc_tw_mkdir(pc_tw *w, const char *path, int flags);                 /* pc_model_mkdir */
PC_API int pc_tw_symlink(pc_tw *w, uint32_t id);                               /* pc_model_set_symlink */
PC_API int pc_tw_rmdir(pc_tw *w, const char *path, int flags);                 /* pc_model_rmdir */
PC_API int pc_tw_link(pc_tw *w, const char *from, const char *to, int flags);   /* pc_model_link */
/* The disk-full model killed the process (SIGBUS) for a store into the page at file offset
 * off of file id, after step `step`; at_fault: caught at the store's fault (1) or found at a
 * later harvest (0). The last record of a trace. */
PC_API int pc_tw_sigbus(pc_tw *w, uint32_t id, uint64_t off, uint64_t step, int at_fault);

/* The trace reader and crash-image deriver. */
typedef struct pc_trace pc_trace;
PC_API int pc_trace_open(const char *path, pc_trace **out);
PC_API int pc_trace_from_memory(const void *buf, size_t len, pc_trace **out); /* copies buf */
PC_API void pc_trace_free(pc_trace *t);
PC_API int pc_trace_sector_size(const pc_trace *t, uint32_t *out);
PC_API int pc_trace_step_count(const pc_trace *t, uint64_t *out);
PC_API int pc_trace_file_count(const pc_trace *t, uint32_t *out);
PC_API int pc_trace_file_name(const pc_trace *t, uint32_t id, const char **name);
/* True when the trace ends with its end record (false: the process died or was cut). */
PC_API int pc_trace_complete(const pc_trace *t, int *out);

typedef struct {
    uint64_t step;
    int call;          /* pc_call */
    uint32_t file;     /* file the call named (UINT32_MAX: none) */
    int err;           /* errno the call returned, 0 on success */
    uint64_t off, len; /* the call's range as the shim saw it */
    uint64_t op;       /* innermost open marker's operation id, 0 if none */
    uint64_t out_bytes, err_bytes; /* POWERCUT_OUTPUT=1: bytes the program had written to its
                          stdout and stderr (regular files) when the step began; 0 otherwise */
    const char *label; /* its label ("" if none); valid while the trace lives */
} pc_step_info;
PC_API int pc_trace_step_info(pc_trace *t, uint64_t step, pc_step_info *out);

/* The store the disk-full model answered with SIGBUS (POWERCUT_ERROR=STEP:ENOSPC): PC_OK
 * with its description, PC_ENOENT if the trace has none. */
typedef struct {
    uint32_t file;     /* the file stored to */
    uint64_t off;      /* file offset of the page stored to (a page of a hole) */
    uint64_t step;     /* the last step numbered when it was found */
    int at_fault;      /* 1: caught at the store itself; 0: found at the next step or unmap */
    uint64_t op;       /* innermost open marker's operation then, 0 if none */
    const char *label; /* its label ("" if none); valid while the trace lives */
} pc_sigbus_info;
PC_API int pc_trace_sigbus(const pc_trace *t, pc_sigbus_info *out);
/* Notes (PC_MARK_NOTE markers) in trace order: the text of note i and the number of steps
 * made before it. */
PC_API int pc_trace_note_count(const pc_trace *t, uint64_t *out);
PC_API int pc_trace_note(const pc_trace *t, uint64_t i, uint64_t *after_step, const char **text);

/* Replay cursor: walks a trace once, stopping at each step with that step's volatile effect
 * applied and its durable effect pending, so that every (tear, writeback, seed) image of the
 * step can be taken before moving on. Cost is linear in the trace. */
typedef struct pc_replay pc_replay;
PC_API int pc_replay_new(const pc_trace *t, pc_replay **out);
PC_API void pc_replay_free(pc_replay *r);
/* Advances to the next step; *step_out = 0 at the end of the trace. */
PC_API int pc_replay_next(pc_replay *r, uint64_t *step_out);
PC_API int pc_replay_model(pc_replay *r, pc_model **m); /* borrowed */
/* Convenience: image of file id at step k (replays from the start). */
PC_API int pc_trace_image(const pc_trace *t, uint32_t id, uint64_t step, const pc_crash *crash,
                          uint8_t **buf_out, uint64_t *len_out);
/* Whether file id exists in that image (pc_model_image_exists): the image of a file whose
 * name was not durable is no file, whatever pc_trace_image gives as its content. */
PC_API int pc_trace_image_exists(const pc_trace *t, uint32_t id, uint64_t step, const pc_crash *crash,
                                 int *exists);

/* ---- the running shim (in-process use) --------------------------------------------------- */

/* Statistics of the shim in this process. */
typedef struct {
    uint64_t steps;       /* steps so far */
    uint64_t harvested;   /* pages found written through mappings */
    uint64_t faults;      /* pages noted written: write faults, or found by a uffd scan */
    uint64_t trace_bytes; /* bytes of trace written */
} pc_stats;
PC_API int pc_shim_stats(pc_stats *out);
/* Forgets every tracked file, name, mapping and step and re-reads the environment
 * (in-process fuzzers call it between runs). */
PC_API int pc_shim_reset(void);
/* In-memory cut: instead of writing POWERCUT_IMAGE and exiting, the shim calls cb with each
 * tracked file's crash image at the cut step, and the interrupted call fails with errno
 * ECANCELED (the caller then abandons its run, typically with longjmp from cb). */
typedef void (*pc_image_cb)(void *ctx, const char *name, const uint8_t *img, uint64_t len);
PC_API int pc_shim_set_image_cb(pc_image_cb cb, void *ctx);
/* What the interrupted call of an in-memory cut does: fails with ECANCELED (PC_AFTER_CUT_FAIL,
 * the default), or is made for real (PC_AFTER_CUT_CONTINUE): the shim then stops following
 * the process, which goes on as if no power had been cut. One run then gives both the crash
 * image and what the program does after the cut step (a fuzzer's model states). Kept across
 * pc_shim_reset, like the callback. */
enum { PC_AFTER_CUT_FAIL = 0, PC_AFTER_CUT_CONTINUE = 1 };
PC_API int pc_shim_set_after_cut(int mode);
/* After an in-process cut (from the image callback on, until pc_shim_reset): the shim's model
 * with the cut step still open, and the id in it of the tracked file `path` (as the callback
 * names it), so that the caller can ask what the images were made of: which sectors the step
 * made durable (pc_model_step_sectors, pc_model_step_sector), what the program saw
 * (pc_model_volatile). Borrowed: read it, never change it. PC_ESTATE without such a cut,
 * PC_ENOENT for a path the shim does not track. */
PC_API int pc_shim_cut_model(const char *path, pc_model **m, uint32_t *id);
/* Schedule a cut (or, with err != 0, an error) at step k of this run (0 disables). */
PC_API int pc_shim_set_cut(uint64_t step, const pc_crash *crash);
/* err: an errno, or PC_ERRNO_SHORT: a write transfers only the first half of its bytes (and
 * returns that count); any other call fails with EINTR. */
#define PC_ERRNO_SHORT (-2)
PC_API int pc_shim_set_error(uint64_t step, int err);
/* As pc_shim_set_error, with the outcome of a failing msync(MS_SYNC)/fsync/fdatasync: the
 * part of the sectors it would have made durable that `tear` takes reaches the disk, the rest
 * of its range's dirty data is lost (pc_model_step_fail). Other calls change nothing. NULL:
 * no outcome (as pc_shim_set_error). */
PC_API int pc_shim_set_error_tear(uint64_t step, int err, const pc_crash *tear);

/* Markers (also declared weak in powercut_mark.h so programs run without the shim). */
PC_API void pc_mark(int kind, uint64_t op, const char *label);

#ifdef __cplusplus
}
#endif
#endif
