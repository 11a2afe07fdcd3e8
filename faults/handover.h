/* handover.h: what the owner process carries across its own exec (steps, files, descriptors,
 * trace, model), and, under POWERCUT_RUN, to the next process of the run when it ends (the
 * baton), internal to the shim. See handover.c. */
#ifndef PC_HANDOVER_H
#define PC_HANDOVER_H

#include "powercut.h"

#include <stdint.h>

typedef struct {
    uint64_t dev, ino, size; /* identity, and the volatile size as the shim knew it */
    uint32_t id;
    int rfd;                 /* the private read descriptor, kept open across the exec; -1:
                              * the file was retired (shim.c, retire_check) */
    int name_new;            /* POWERCUT_NAMESPACE=posix: created, its name not durable yet */
    char *path;
    int symlink;             /* a symbolic link the program made (shim.c, note_symlink) */
    /* the baton only (NULL, 0 across an exec, whose descriptors stay open): where the next
     * process finds the file (its name when the owner ended), and the foreign-change baseline
     * it compares the file with before it goes on */
    char *where;
    int64_t fc_sec, fc_nsec;
    uint64_t fc_size;
    int fc_ok;
} pc_ho_file;

typedef struct {
    int fd;                  /* a tracked descriptor without FD_CLOEXEC: the new image has it */
    int32_t file;            /* index + 1 into files */
    int flags;
} pc_ho_fd;

typedef struct {
    uint32_t sector;
    uint64_t step;           /* steps taken so far: the new image numbers on from here */
    int trace_fd;            /* -1: no trace */
    int trace_mapped;
    uint64_t trace_total;
    uint32_t nfiles, nfds;
    pc_ho_file *files;
    pc_ho_fd *fds;
    uint32_t markn;          /* a marker line not finished yet */
    char markbuf[512];
    uint8_t *model;          /* the live model as trace records (pc__model_dump), or NULL */
    uint64_t model_len;
    uint32_t nknown;         /* the names namespace steps touched (the shim's S.known) */
    char **known;
} pc_handover;

/* The state in a new memfd without FD_CLOEXEC (the exec'd image reads it): its descriptor,
 * or -1 with errno. */
int pc__ho_save(const pc_handover *h);
/* The same state in the file `path`, whole or not at all: written beside it (path.tmp) and
 * renamed over it. 0, or -1 with errno. */
int pc__ho_save_file(const pc_handover *h, const char *path);
/* Reads the state the old image saved and closes fd. 0, or -1 (malformed, unreadable). */
int pc__ho_load(int fd, pc_handover *h);
void pc__ho_free(pc_handover *h);
/* The model rebuilt from h->model (PC_ESTATE when the old image kept none). */
int pc__ho_model(const pc_handover *h, pc_model **out);
/* The environment for the new image: envp with POWERCUT_HANDOVER=fd and POWERCUT_OWNER=pid,
 * plus the shim's own variables (POWERCUT_*, LD_PRELOAD) of `keep` (the current environment)
 * that envp lacks: the run goes on in the new image even when the program passes an
 * environment of its own. A malloc'ed array (pc__ho_env_free), or NULL. */
char **pc__ho_env(char *const envp[], int fd, char *const keep[]);
void pc__ho_env_free(char **env, char *const envp[]);

/* The model as trace records (model.c), and a replay's model taken over (trace.c). */
int pc__model_dump(const pc_model *m, pc_tw *w);
/* A name's whole state (the dump's NAMESET record; model.c, trace.c). */
int pc__model_name_set(pc_model *m, const char *path, uint32_t vol, uint32_t dur, uint64_t key);
int pc__tw_name_set(pc_tw *w, const char *path, uint32_t vol, uint32_t dur, uint64_t key);
/* The ext4 profile's journal operations not committed yet (JOP records, hand-over only). */
int pc__model_jop(pc_model *m, uint64_t key, uint32_t file, uint32_t flush, int created, uint32_t nch,
                  const char *const path[], const uint32_t target[]);
int pc__tw_jop(pc_tw *w, uint64_t key, uint32_t file, uint32_t flush, int created, uint32_t nch,
               const char *const path[], const uint32_t target[]);
pc_model *pc__replay_take(pc_replay *r);
/* The trace writer continuing a flushed trace, and its descriptor renumbered (trace.c). */
int pc__tw_resume(int fd, int mapped, uint64_t total, pc_tw **out);
void pc__tw_set_fd(pc_tw *w, int fd);

#endif
