/* run.c: crashcheck run: the crash states of any program's files, judged by the user's check.
 *
 * The protocol, step by step:
 * - An empty folder (live/) gets the setup's files (sh -c SETUP there), and a copy of it is
 *   kept (snap/): every crash state starts from what was there before the program ran.
 * - The program runs once in live/ under libpowercut (LD_PRELOAD), which tracks the files
 *   matching the glob and records a trace: each call that can make data durable is a step.
 * - From that one trace, every crash state is derived, as `crashcheck explore` derives a
 *   pager file's: at each step, each tear of what the step makes durable x each early
 *   writeback of other dirty data; and the durable state the whole run leaves (a crash at
 *   exit: what was never synced is lost). A state is what every name holds (below);
 *   identical states are checked once. A file the program first opens after some steps
 *   (SQLite opens its journal at the first write) has no name in the model before that: the
 *   states cut earlier hold it as it was before the run (snap/), absent if the program
 *   creates it.
 * - Each distinct state is laid out in state/ as a directory tree: a copy of snap/, then every
 *   name the trace knows (each tracked file's first name, and every name a rename, unlink or
 *   link of a tracked file touched) under its full path relative to the program's folder:
 *   the image of the file it holds in that state, or removed when it holds none (a name
 *   holding a file the shim never tracked keeps what snap/ has there). Two files of one base
 *   name in two subfolders are two names: neither overwrites the other. The check runs there
 *   (sh -c CHECK). A non-zero exit is a violation; the first states that fail are kept in
 *   the output folder with their story, named by the state's number in the enumeration;
 *   beside them the trace, the snapshot and run.info, from which `crashcheck replay STATE`
 *   lays a kept state out again (the same enumeration, stopped at its number) and reruns the
 *   check there (cc_run_replay).
 * - --jobs N: N worker processes, forked once the trace is read, each walk the whole trace
 *   (deriving a state costs little next to a check) and check the states whose hash falls to
 *   them (cc_takes), each in its own state-J/ and with its own notes and stdout files. The
 *   parent adds up their counts and puts their first violations in the enumeration's order,
 *   so the summary is the one a single process gives. --shard I/N checks only the I-th part of
 *   the states by the same hash, whatever its --jobs: the N shards together check each
 *   distinct state once (each shard records the program again).
 * - The program may be several processes (a shell script): libpowercut passes the run from
 *   one to the next (POWERCUT_RUN, the baton: faults/handover.c; two at work at once take
 *   turns), one trace. Whatever one of
 *   them did that the model cannot follow is in TRACE.refused, reported whatever the
 *   program's exit status; after the last one, the files are compared with the state it left
 *   (TRACE.baton), as the next one would have compared them.
 * - What the program had acknowledged before the cut reaches the check two ways: the marker
 *   notes it wrote before the cut step (POWERCUT_MARK_FD lines `note TEXT`, or pc_mark_note),
 *   one per line in the file CRASHCHECK_NOTES names; and what it had written to its stdout
 *   and stderr by then (files CRASHCHECK_STDOUT, CRASHCHECK_STDERR: the program's output goes
 *   to files, whose offsets the shim records at each step, POWERCUT_OUTPUT=1; bytes still in a
 *   stdio buffer were not told to anyone). The trace is the truth: the program runs once, so
 *   a program whose files differ from run to run (random nonces, times) needs no rerun.
 *
 * Names (--profile posix, the default; libpowercut's POWERCUT_NAMESPACE=posix): a file the
 * program creates, renames, removes or links changes names in a crash state only once an
 * fsync of the directory holding each changed name made it durable: until then the state has
 * the names as they were on the disk (a file not created yet, a deleted file still there
 * with its content as of the cut, a renamed one under its old name, the file it was renamed
 * over still in place). With --profile ext4 (POWERCUT_NAMESPACE=ext4) those changes reach the
 * disk in program order, a state holding a prefix of them, every one before an fsync once it
 * returned, and a rename over a file only with the renamed file's data (auto_da_alloc); with
 * --profile none names are as the program last saw them. */
#include "run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "case.h"
#include "handover.h"
#include "hashset.h"
#include "jobs.h"
#include "powercut.h"

extern char **environ;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* ---- folders ----------------------------------------------------------------------- */

/* a/b into buf; -1 (ENAMETOOLONG) if it does not fit. */
static int join(char *buf, size_t cap, const char *a, const char *b) {
  int n = snprintf(buf, cap, "%s/%s", a, b);
  if (n < 0 || (size_t)n >= cap) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return 0;
}

int cc_remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(st.st_mode)) return unlink(path);
  DIR *d = opendir(path);
  if (!d) return -1;
  int rc = 0;
  char sub[PATH_MAX];
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (join(sub, sizeof sub, path, e->d_name) != 0 || cc_remove_tree(sub) != 0) rc = -1;
  }
  closedir(d);
  return rmdir(path) == 0 ? rc : -1;
}

static int copy_file(const char *from, const char *to, mode_t mode) {
  int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 07777);
  int rc = in >= 0 && out >= 0 ? 0 : -1;
  char buf[1 << 16];
  ssize_t n;
  while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n) rc = -1;
  if (in >= 0) close(in);
  if (out >= 0 && close(out) != 0) rc = -1;
  return rc;
}

/* A copy of the tree at `from` (files, folders, symbolic links) at `to`, which must not exist. */
static int copy_tree(const char *from, const char *to) {
  struct stat st;
  if (lstat(from, &st) != 0) return -1;
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink(from, target, sizeof target - 1);
    if (n < 0) return -1;
    target[n] = 0;
    return symlink(target, to);
  }
  if (!S_ISDIR(st.st_mode)) return S_ISREG(st.st_mode) ? copy_file(from, to, st.st_mode) : 0;
  if (mkdir(to, st.st_mode & 07777) != 0) return -1;
  DIR *d = opendir(from);
  if (!d) return -1;
  int rc = 0;
  char a[PATH_MAX], b[PATH_MAX];
  for (struct dirent *e; rc == 0 && (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    rc = join(a, sizeof a, from, e->d_name) || join(b, sizeof b, to, e->d_name) ? -1 : copy_tree(a, b);
  }
  closedir(d);
  return rc;
}

/* Makes the directories above path. */
static int make_parents(const char *path) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  for (char *s = dir + 1; (s = strchr(s, '/')); s++) {
    *s = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  return 0;
}

/* Makes directory path, and those above it. */
static int make_dirs(const char *path) {
  return make_parents(path) == 0 && (mkdir(path, 0755) == 0 || errno == EEXIST) ? 0 : -1;
}

/* A symbolic link at path to the target `len` bytes name (what was there first goes). */
static int put_link(const char *path, const uint8_t *target, uint64_t len) {
  char to[PATH_MAX];
  if (len >= sizeof to || make_parents(path) != 0) return -1;
  memcpy(to, target, (size_t)len);
  to[len] = 0;
  if (unlink(path) != 0 && errno != ENOENT) return -1;
  return symlink(to, path);
}

/* Writes `len` bytes as the file `path`, making its folders. */
static int put_file(const char *path, const uint8_t *data, uint64_t len) {
  if (make_parents(path) != 0) return -1;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  int rc = 0;
  for (uint64_t at = 0; rc == 0 && at < len;) {
    ssize_t n = write(fd, data + at, len - at > (1u << 30) ? (1u << 30) : (size_t)(len - at));
    if (n <= 0) rc = -1;
    else at += (uint64_t)n;
  }
  return close(fd) == 0 ? rc : -1;
}

/* ---- processes ---------------------------------------------------------------------- */

/* Runs argv in `cwd` with `set` added to the environment (and `drop` prefixes removed), its
 * stdout to `out` and its stderr to `err` (NULL: to `out` too). Returns its exit status, 128 + N if signal N killed it, or
 * -1 if it could not start. */
static int run_in(const char *cwd, char *const *argv, char *const *set, const char *const *drop, const char *out,
                  const char *err) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int efd = err ? open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644) : fd;
    int nul = open("/dev/null", O_RDONLY);
    if (fd < 0 || efd < 0 || nul < 0 || chdir(cwd) != 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(efd, 2) < 0)
      _exit(127);
    for (const char *const *d = drop; d && *d; d++) unsetenv(*d);
    for (char *const *s = set; s && *s; s++) putenv(*s);
    execvp(argv[0], argv);
    dprintf(2, "crashcheck run: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int shell_in(const char *cwd, const char *cmd, char *const *set, const char *out) {
  char *argv[] = {"sh", "-c", (char *)cmd, NULL};
  return run_in(cwd, argv, set, NULL, out, NULL);
}

/* The first `cap` - 1 bytes of a file, as text. */
static void head_of(const char *path, char *buf, size_t cap) {
  buf[0] = 0;
  FILE *f = fopen(path, "r");
  if (!f) return;
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = 0;
  fclose(f);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
}

/* ---- crash states ------------------------------------------------------------------- */

typedef struct walk {
  const cc_prog_opts *o;
  cc_prog_result *r;
  pc_trace *t;
  char live[PATH_MAX], real[PATH_MAX]; /* the program's folder, as given and resolved */
  uint32_t nfiles;
  uint8_t **img;       /* the state at hand: the image of each file a name holds (else NULL) */
  uint64_t *len;
  signed char *link;   /* per file: a symbolic link (its image is the target) */
  uint32_t nnames, ncap;
  const char **name;   /* ... each name the model knows, under the program's folder */
  uint32_t *holds;     /* ... the file it holds: an id, PC_NAME_NONE, PC_NAME_OTHER or PC_NAME_DIR */
  signed char *in_snap; /* per name: snap/ has a file there (1), not (0), unknown yet (-1) */
  cc_hashset seen;     /* hashes of the states checked */
  unsigned shard, shards, worker, workers; /* which states this process checks: cc_takes */
  bool progress;       /* this process draws the progress line (one worker does) */
  uint64_t only_state; /* crashcheck replay: check the state of this number alone (0: all) */
  char work[PATH_MAX], snap[PATH_MAX], state[PATH_MAX], notes[PATH_MAX], out[PATH_MAX];
  char pout[PATH_MAX], perr[PATH_MAX];   /* the program's stdout and stderr, whole */
  char cout[PATH_MAX], cerr[PATH_MAX];   /* ... as far as it had written them before the cut */
  double last_progress;
} walk;

static void crash_text(const cc_schedule *s, char *buf, size_t len) {
  char tear[32];
  cc_schedule_tear_text(s, tear, sizeof tear);
  snprintf(buf, len, "tear %s writeback %s seed %u", tear, cc_writeback_name(s->writeback), s->seed);
}

/* The first `n` bytes of `from` as the file `to`. */
static int copy_head(const char *from, const char *to, uint64_t n) {
  int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int rc = in >= 0 && out >= 0 ? 0 : -1;
  char buf[1 << 16];
  while (rc == 0 && n) {
    ssize_t got = read(in, buf, n < sizeof buf ? (size_t)n : sizeof buf);
    if (got <= 0) break;
    if (write(out, buf, (size_t)got) != got) rc = -1;
    n -= (uint64_t)got;
  }
  if (in >= 0) close(in);
  if (out >= 0 && close(out) != 0) rc = -1;
  return rc;
}

static int snap_has(walk *w, uint32_t i);

/* Checks the state held in w->img, cut at `step` (0: the end of the run), when the program had
 * written `out` and `err` bytes to its stdout and stderr. */
static int check_state(walk *w, uint64_t step, const char *call, const char *crash, uint64_t out, uint64_t err) {
  cc_prog_result *r = w->r;
  /* The notes written before the cut: a state is its files and what the program had
   * acknowledged (the same files after one more acknowledgement may fail the check). */
  uint64_t n = 0, before = 0, after;
  const char *text;
  pc_trace_note_count(w->t, &n);
  while (before < n && pc_trace_note(w->t, before, &after, &text) == PC_OK && (!step || after < step)) before++;
  uint64_t h = 0x84222325CBF29CE4ull ^ before * 0xC2B2AE3D27D4EB4Full ^ out * 0x165667B19E3779F9ull ^
               err * 0x27D4EB2F165667C5ull;
  for (uint32_t i = 0; i < w->nnames; i++) {
    uint32_t f = w->holds[i];
    if (f == PC_NAME_OTHER) continue; /* as snap/ has it, in every state */
    if (f == PC_NAME_NONE && !snap_has(w, i)) continue; /* absent, as if never known */
    h = h * 0x100000001B3ull ^ cc_hash(w->name[i], strlen(w->name[i])) ^
        (f == PC_NAME_NONE  ? 0x5BD1E995u
         : f == PC_NAME_DIR ? 0x1B873593u
                            : cc_hash(w->img[f], w->len[f]) * 0x9E3779B97F4A7C15ull ^ (uint64_t)w->link[f]);
  }
  if (!cc_takes(h, w->shard, w->shards, w->worker, w->workers) || !cc_hashset_add(&w->seen, h)) return CC_OK;
  r->distinct++;
  FILE *nf = fopen(w->notes, "w");
  for (uint64_t i = 0; nf && i < before; i++)
    if (pc_trace_note(w->t, i, &after, &text) == PC_OK) fprintf(nf, "%s\n", text);
  if (!nf || fclose(nf) != 0 || copy_head(w->pout, w->cout, out) != 0 || copy_head(w->perr, w->cerr, err) != 0) {
    snprintf(r->error, sizeof r->error, "cannot write %.900s: %s", w->notes, strerror(errno));
    return CC_EIO;
  }
  if (cc_remove_tree(w->state) != 0 || copy_tree(w->snap, w->state) != 0) {
    snprintf(r->error, sizeof r->error, "cannot lay out a crash state in %.900s: %s", w->state, strerror(errno));
    return CC_EIO;
  }
  char path[PATH_MAX];
  for (uint32_t i = 0; i < w->nnames; i++) {
    uint32_t f = w->holds[i];
    if (f == PC_NAME_OTHER) continue;
    if (f == PC_NAME_NONE) { /* not on the disk: gone, whatever the folder held before */
      struct stat st;
      if (join(path, sizeof path, w->state, w->name[i]) == 0 && lstat(path, &st) == 0 &&
          (S_ISDIR(st.st_mode) ? cc_remove_tree(path) : unlink(path)) != 0 && errno != ENOENT) {
        snprintf(r->error, sizeof r->error, "cannot remove %.900s: %s", path, strerror(errno));
        return CC_EIO;
      }
      continue;
    }
    if (f == PC_NAME_DIR) { /* a directory the program made: there, and what the names below say */
      if (join(path, sizeof path, w->state, w->name[i]) != 0 || make_dirs(path) != 0) {
        snprintf(r->error, sizeof r->error, "cannot make %.900s: %s", path, strerror(errno));
        return CC_EIO;
      }
      continue;
    }
    if (join(path, sizeof path, w->state, w->name[i]) != 0 ||
        (w->link[f] ? put_link(path, w->img[f], w->len[f]) : put_file(path, w->img[f], w->len[f])) != 0) {
      snprintf(r->error, sizeof r->error, "cannot write %.900s: %s", path, strerror(errno));
      return CC_EIO;
    }
  }
  char e_step[64], e_call[64], e_crash[128], e_notes[PATH_MAX + 32], e_origin[PATH_MAX + 32];
  snprintf(e_step, sizeof e_step, "CRASHCHECK_STEP=%llu", (unsigned long long)step);
  snprintf(e_call, sizeof e_call, "CRASHCHECK_CALL=%s", call);
  snprintf(e_crash, sizeof e_crash, "CRASHCHECK_CRASH=%s", crash);
  snprintf(e_notes, sizeof e_notes, "CRASHCHECK_NOTES=%s", w->notes);
  snprintf(e_origin, sizeof e_origin, "CRASHCHECK_ORIGIN=%s", w->o->origin);
  char e_out[PATH_MAX + 32], e_err[PATH_MAX + 32];
  snprintf(e_out, sizeof e_out, "CRASHCHECK_STDOUT=%s", w->cout);
  snprintf(e_err, sizeof e_err, "CRASHCHECK_STDERR=%s", w->cerr);
  char *set[] = {e_step, e_call, e_crash, e_notes, e_origin, e_out, e_err, NULL};
  int st = shell_in(w->state, w->o->check, set, w->out);
  if (st < 0) {
    snprintf(r->error, sizeof r->error, "cannot run the check: %s", strerror(errno));
    return CC_EIO;
  }
  if (st == 0) return CC_OK;
  r->violations++;
  if (r->nfound < sizeof r->found / sizeof *r->found) {
    cc_prog_found *f = &r->found[r->nfound++];
    f->step = step;
    f->state = r->states;
    f->status = st;
    snprintf(f->call, sizeof f->call, "%s", call);
    snprintf(f->crash, sizeof f->crash, "%s", crash);
    head_of(w->out, f->output, sizeof f->output);
    f->kept[0] = 0;
    if (w->o->outdir && r->violations <= w->o->max_violations) {
      /* Named by the state's place in the enumeration, which every worker and shard shares. */
      snprintf(f->kept, sizeof f->kept, "%s/state-%llu-%llu", w->o->outdir, (unsigned long long)step,
               (unsigned long long)f->state);
      char story[PATH_MAX + 16];
      snprintf(story, sizeof story, "%s.txt", f->kept);
      FILE *s = NULL;
      if (mkdir(w->o->outdir, 0755) == 0 || errno == EEXIST) {
        cc_remove_tree(f->kept);
        if (copy_tree(w->state, f->kept) == 0) s = fopen(story, "w");
      }
      if (s) {
        fprintf(s, "crashcheck run: the check failed (exit %d) on this state\nstep: %llu (%s)\ncrash: %s\n"
                   "state: %llu\nreplay: crashcheck replay %s\ncheck: %s\nnotes before the cut:\n", st,
                (unsigned long long)step, step ? call : "the end of the run", crash, (unsigned long long)f->state,
                f->kept, w->o->check);
        FILE *nr = fopen(w->notes, "r");
        for (int c; nr && (c = fgetc(nr)) != EOF;) fputc(c, s);
        if (nr) fclose(nr);
        fprintf(s, "check output:\n%s\n", f->output);
        fclose(s);
      } else {
        f->kept[0] = 0;
      }
    }
  }
  return CC_OK;
}

/* A name under the program's folder: the path relative to it, or NULL when outside. */
static const char *rel_of(const walk *w, const char *name) {
  size_t a = strlen(w->live), b = strlen(w->real);
  if (!strncmp(name, w->live, a) && name[a] == '/' && name[a + 1]) return name + a + 1;
  if (!strncmp(name, w->real, b) && name[b] == '/' && name[b + 1]) return name + b + 1;
  return NULL;
}

static int snap_has(walk *w, uint32_t i) {
  if (w->in_snap[i] < 0) {
    char path[PATH_MAX];
    struct stat st;
    w->in_snap[i] = join(path, sizeof path, w->snap, w->name[i]) == 0 && lstat(path, &st) == 0;
  }
  return w->in_snap[i];
}

/* The state of crash `crash` at the replay's current step: what each name holds, and the
 * image of each file a name holds, into w->holds and w->img. */
static int derive(walk *w, pc_model *m, const pc_crash *crash) {
  for (uint32_t i = 0; i < w->nfiles; i++) {
    free(w->img[i]);
    w->img[i] = NULL;
    w->len[i] = 0;
  }
  uint32_t n = 0;
  pc_model_name_count(m, &n);
  if (n > w->ncap) {
    const char **nm = realloc(w->name, n * sizeof *nm);
    if (nm) w->name = nm;
    uint32_t *hd = realloc(w->holds, n * sizeof *hd);
    if (hd) w->holds = hd;
    signed char *sn = realloc(w->in_snap, n);
    if (sn) w->in_snap = sn;
    if (!nm || !hd || !sn) {
      snprintf(w->r->error, sizeof w->r->error, "out of memory");
      return CC_ENOMEM;
    }
    memset(w->in_snap + w->ncap, -1, n - w->ncap);
    w->ncap = n;
  }
  for (uint32_t i = 0; i < n; i++) {
    const char *path = NULL;
    pc_model_name(m, i, &path);
    if (!path || !(w->name[i] = rel_of(w, path))) {
      snprintf(w->r->error, sizeof w->r->error,
               "the program gave a tracked file the name %.900s, outside its folder: --files names files under the "
               "folder it runs in, and their names must stay there", path ? path : "?");
      return CC_EINVAL;
    }
    uint32_t f = PC_NAME_OTHER;
    if (pc_model_image_name(m, i, crash, &f) != PC_OK ||
        (f < w->nfiles && !w->img[f] && pc_model_image(m, f, crash, &w->img[f], &w->len[f]) != PC_OK)) {
      snprintf(w->r->error, sizeof w->r->error, "cannot derive the image of %s", w->name[i]);
      return CC_EIO;
    }
    int is_link = 0;
    if (f < w->nfiles && pc_model_file_is_symlink(m, f, &is_link) == PC_OK) w->link[f] = (signed char)is_link;
    if (PC_NAME_IS_FILE(f) && f >= w->nfiles) {
      snprintf(w->r->error, sizeof w->r->error, "the trace names file %u of %u", f, w->nfiles);
      return CC_EIO;
    }
    w->holds[i] = f;
  }
  w->nnames = n;
  return CC_OK;
}

static int walk_trace(walk *w) {
  cc_prog_result *r = w->r;
  pc_replay *rp = NULL;
  if (pc_replay_new(w->t, &rp) != PC_OK) {
    snprintf(r->error, sizeof r->error, "cannot replay the trace");
    return CC_EIO;
  }
  uint64_t total = 0;
  pc_trace_step_count(w->t, &total);
  cc_schedule *sched = malloc(sizeof *sched * 8192);
  int rc = sched ? CC_OK : CC_ENOMEM;
  uint64_t step = 0;
  pc_model *m = NULL;
  while (rc == CC_OK && pc_replay_next(rp, &step) == PC_OK && step) {
    r->steps++;
    pc_step_info info = {0};
    pc_trace_step_info(w->t, step, &info);
    pc_replay_model(rp, &m);
    uint64_t n = 0;
    pc_model_step_sectors(m, &n);
    size_t nch = cc_crash_choices(&w->o->crash, n, sched, 8192);
    for (size_t i = 0; rc == CC_OK && i < nch; i++) {
      r->states++;
      if (w->only_state && r->states != w->only_state) continue;
      pc_crash crash;
      cc_crash_of(&sched[i], &crash);
      char text[64];
      crash_text(&sched[i], text, sizeof text);
      if ((rc = derive(w, m, &crash)) == CC_OK)
        rc = check_state(w, step, pc_call_name(info.call), text, info.out_bytes, info.err_bytes);
    }
    if (w->progress && now_s() - w->last_progress > 0.25) {
      w->last_progress = now_s();
      fprintf(stderr, "\rcrashcheck: step %llu/%llu, %llu states, %llu distinct, %llu violations ",
              (unsigned long long)step, (unsigned long long)total, (unsigned long long)r->states,
              (unsigned long long)r->distinct, (unsigned long long)r->violations);
    }
  }
  /* The end of the run: every step done, nothing volatile survives. */
  if (rc == CC_OK && m) {
    static const cc_schedule none = {.tear = CC_TEAR_NONE};
    pc_crash crash;
    cc_crash_of(&none, &crash);
    r->states++;
    if (w->only_state && r->states != w->only_state) goto done;
    struct stat so, se; /* at exit: all it wrote */
    uint64_t out = stat(w->pout, &so) == 0 ? (uint64_t)so.st_size : 0, err = stat(w->perr, &se) == 0 ? (uint64_t)se.st_size : 0;
    if ((rc = derive(w, m, &crash)) == CC_OK) rc = check_state(w, 0, "exit", "the durable state at exit", out, err);
  }
done:
  if (w->progress) fprintf(stderr, "\r%*s\r", 90, "");
  free(sched);
  pc_replay_free(rp);
  return rc;
}

/* Each tracked file's first name must be under `live` (the trace names them absolute): said
 * before any state is checked. */
static int names_inside(walk *w) {
  for (uint32_t i = 0; i < w->nfiles; i++) {
    const char *name = NULL;
    pc_trace_file_name(w->t, i, &name);
    if (!name || !rel_of(w, name)) {
      snprintf(w->r->error, sizeof w->r->error,
               "the program tracked %s, outside its folder: --files names files under the folder it runs in",
               name ? name : "?");
      return CC_EINVAL;
    }
  }
  return CC_OK;
}

/* ---- workers (--jobs) and shards ----------------------------------------------------- */

/* Where a walk lays out its states and what the check is told: each worker its own. */
static void scratch_names(walk *w, const char *suffix) {
  const char *d = w->o->workdir;
  snprintf(w->state, sizeof w->state, "%s/state%s", d, suffix);
  snprintf(w->notes, sizeof w->notes, "%s/notes%s", d, suffix);
  snprintf(w->out, sizeof w->out, "%s/check%s.out", d, suffix);
  snprintf(w->cout, sizeof w->cout, "%s/stdout%s", d, suffix);
  snprintf(w->cerr, sizeof w->cerr, "%s/stderr%s", d, suffix);
}

typedef struct run_jobs {
  walk *w;
  unsigned jobs;
  cc_prog_result sum;
  int rc;
  cc_prog_found *found; /* every worker's first ones, to be put in order */
  unsigned nfound;
} run_jobs;

static int run_work(void *ctx, unsigned j, int fd) {
  run_jobs *rj = ctx;
  walk *w = rj->w;
  char suffix[16];
  snprintf(suffix, sizeof suffix, "-%u", j);
  scratch_names(w, suffix);
  w->worker = j;
  w->workers = rj->jobs;
  w->progress = w->o->progress && j == 0;
  int rc = walk_trace(w);
  return cc_send(fd, &rc, sizeof rc) || cc_send(fd, w->r, sizeof *w->r) ? -1 : 0;
}

static int run_merge(void *ctx, unsigned j, FILE *in) {
  (void)j;
  run_jobs *rj = ctx;
  cc_prog_result *part = malloc(sizeof *part);
  int rc;
  if (!part || fread(&rc, sizeof rc, 1, in) != 1 || fread(part, sizeof *part, 1, in) != 1) {
    free(part);
    return -1;
  }
  cc_prog_result *sum = &rj->sum;
  sum->steps = part->steps; /* every worker walks every step and crash choice */
  sum->states = part->states;
  sum->distinct += part->distinct;
  sum->violations += part->violations;
  if (rc != CC_OK && rj->rc == CC_OK) {
    rj->rc = rc;
    snprintf(sum->error, sizeof sum->error, "%s", part->error);
  }
  for (unsigned k = 0; k < part->nfound && k < sizeof part->found / sizeof *part->found; k++)
    rj->found[rj->nfound++] = part->found[k];
  free(part);
  return 0;
}

static int by_state(const void *a, const void *b) {
  uint64_t x = ((const cc_prog_found *)a)->state, y = ((const cc_prog_found *)b)->state;
  return x < y ? -1 : x > y;
}

/* The walk, in this process or in o->jobs workers. With workers, the first violations are the
 * first of all the workers' in the enumeration's order, as one process would have found them;
 * the states a worker kept beyond those are removed again. */
static int walk_all(walk *w) {
  const cc_prog_opts *o = w->o;
  w->shard = o->shards > 1 ? o->shard : 0;
  w->shards = o->shards > 1 ? o->shards : 1;
  w->worker = 0;
  w->workers = 1;
  w->progress = o->progress;
  if (o->jobs <= 1) return walk_trace(w);
  unsigned jobs = o->jobs > 64 ? 64 : o->jobs;
  size_t per = sizeof w->r->found / sizeof *w->r->found;
  run_jobs rj = {.w = w, .jobs = jobs, .rc = CC_OK, .found = calloc(jobs * per, sizeof *rj.found)};
  if (!rj.found) {
    snprintf(w->r->error, sizeof w->r->error, "out of memory");
    return CC_ENOMEM;
  }
  rj.sum = *w->r;
  char why[200] = "";
  int rc = cc_run_jobs(jobs, run_work, run_merge, &rj, why, sizeof why);
  cc_prog_result *r = w->r;
  r->steps = rj.sum.steps;
  r->states = rj.sum.states;
  r->distinct = rj.sum.distinct;
  r->violations = rj.sum.violations;
  qsort(rj.found, rj.nfound, sizeof *rj.found, by_state);
  r->nfound = 0;
  for (unsigned k = 0; k < rj.nfound; k++) {
    cc_prog_found *f = &rj.found[k];
    if (k < per) {
      if (k >= o->max_violations) f->kept[0] = 0; /* one worker alone kept it */
      r->found[r->nfound++] = *f;
    }
    if (f->kept[0] && (k >= per || k >= o->max_violations)) {
      char story[PATH_MAX + 16];
      snprintf(story, sizeof story, "%s.txt", f->kept);
      cc_remove_tree(f->kept);
      unlink(story);
    }
  }
  free(rj.found);
  if (rc != CC_OK) {
    snprintf(r->error, sizeof r->error, "%s", why);
    return rc;
  }
  if (rj.rc != CC_OK) snprintf(r->error, sizeof r->error, "%s", rj.sum.error);
  return rj.rc;
}

/* The per-file arrays of a walk of w->nfiles files: -1 without memory. */
static int walk_alloc(walk *w) {
  w->img = calloc(w->nfiles + 1, sizeof *w->img);
  w->len = calloc(w->nfiles + 1, sizeof *w->len);
  w->link = calloc(w->nfiles + 1, sizeof *w->link);
  return w->img && w->len && w->link ? 0 : -1;
}

/* What a walk holds: the images, the names, the hashes seen, the trace. */
static void free_walk(walk *w) {
  for (uint32_t i = 0; w->img && i < w->nfiles; i++) free(w->img[i]);
  free(w->img);
  free(w->len);
  free(w->link);
  free(w->name);
  free(w->holds);
  free(w->in_snap);
  cc_hashset_free(&w->seen);
  pc_trace_free(w->t);
}

/* ---- replay ------------------------------------------------------------------------ */

/* What `crashcheck replay` needs to lay out a kept state again, beside the kept states in
 * the output folder: the trace, the folder as the setup left it, the program's output, and
 * run.info (the folder the program ran in, whose paths the trace's names carry, the check and
 * the caller's folder). The run that keeps states last in a folder owns these. */
static void save_replay(walk *w, const char *trace) {
  const cc_prog_opts *o = w->o;
  char path[PATH_MAX + 32];
  if (!o->outdir || !w->r->nfound || (mkdir(o->outdir, 0755) != 0 && errno != EEXIST)) return;
  bool ok = true;
  snprintf(path, sizeof path, "%s/run.trace", o->outdir);
  ok = ok && copy_file(trace, path, 0644) == 0;
  snprintf(path, sizeof path, "%s/run.stdout", o->outdir);
  ok = ok && copy_file(w->pout, path, 0644) == 0;
  snprintf(path, sizeof path, "%s/run.stderr", o->outdir);
  ok = ok && copy_file(w->perr, path, 0644) == 0;
  snprintf(path, sizeof path, "%s/run.snap", o->outdir);
  ok = ok && cc_remove_tree(path) == 0 && copy_tree(w->snap, path) == 0;
  snprintf(path, sizeof path, "%s/run.info", o->outdir);
  FILE *f = ok ? fopen(path, "w") : NULL;
  if (f) {
    fprintf(f, "crashcheck-run 1\nlive %s\nreal %s\norigin %s\ncheck %s\n", w->live, w->real, o->origin, o->check);
    ok = fclose(f) == 0;
  }
  if (!ok || !f) fprintf(stderr, "crashcheck run: cannot keep what replay needs in %s: %s\n", o->outdir, strerror(errno));
}

/* One line "KEY VALUE" of a small text file into `out` (false if missing). */
static bool read_key(const char *file, const char *key, char *out, size_t cap) {
  FILE *f = fopen(file, "r");
  char line[4 * PATH_MAX];
  bool found = false;
  size_t n = strlen(key);
  while (f && !found && fgets(line, sizeof line, f)) {
    if (strncmp(line, key, n) || (line[n] != ' ' && line[n] != ':')) continue;
    const char *v = line + n + 1;
    while (*v == ' ') v++;
    line[strcspn(line, "\n")] = 0;
    snprintf(out, cap, "%s", v);
    found = true;
  }
  if (f) fclose(f);
  return found;
}

int cc_run_replay(const char *kept, const char *keep, const char *workdir, cc_prog_result *r) {
  memset(r, 0, sizeof *r);
  char story[PATH_MAX + 8], dir[PATH_MAX - 32], info[PATH_MAX + 16], trace[PATH_MAX + 16], num[64];
  char live[PATH_MAX], real[PATH_MAX], origin[PATH_MAX], check[4 * PATH_MAX];
  size_t len = strlen(kept);
  while (len > 1 && kept[len - 1] == '/') len--;
  if (len > 4 && !strncmp(kept + len - 4, ".txt", 4)) len -= 4; /* the story names its state */
  snprintf(story, sizeof story, "%.*s.txt", (int)len, kept);
  snprintf(dir, sizeof dir, "%.*s", (int)len, kept);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  snprintf(info, sizeof info, "%s/run.info", dir);
  snprintf(trace, sizeof trace, "%s/run.trace", dir);
  if (!read_key(story, "state", num, sizeof num) || !strtoull(num, NULL, 10)) {
    snprintf(r->error, sizeof r->error, "%.900s is not a state crashcheck run kept (no story naming its number)", story);
    return CC_EINVAL;
  }
  if (!read_key(info, "live", live, sizeof live) || !read_key(info, "real", real, sizeof real) ||
      !read_key(info, "origin", origin, sizeof origin) || !read_key(info, "check", check, sizeof check)) {
    snprintf(r->error, sizeof r->error, "%.900s is missing or incomplete: the run that kept this state left nothing "
             "to replay it with", info);
    return CC_EINVAL;
  }
  cc_prog_opts o = {.check = check, .origin = origin, .workdir = workdir};
  walk w = {.o = &o, .r = r, .only_state = strtoull(num, NULL, 10)};
  scratch_names(&w, "");
  if (keep) snprintf(w.state, sizeof w.state, "%s", keep);
  snprintf(w.snap, sizeof w.snap, "%s/run.snap", dir);
  snprintf(w.pout, sizeof w.pout, "%s/run.stdout", dir);
  snprintf(w.perr, sizeof w.perr, "%s/run.stderr", dir);
  snprintf(w.live, sizeof w.live, "%s", live);
  snprintf(w.real, sizeof w.real, "%s", real);
  if (pc_trace_open(trace, &w.t) != PC_OK) {
    snprintf(r->error, sizeof r->error, "cannot read the trace %.900s", trace);
    return CC_EIO;
  }
  /* The same choices of tears and writebacks as the run made (crashcheck run has no options
   * for them): the state of that number is the same state. */
  cc_explore_defaults(&o.crash);
  pc_trace_file_count(w.t, &w.nfiles);
  r->files = w.nfiles;
  int rc = walk_alloc(&w) ? CC_ENOMEM : walk_trace(&w);
  if (rc == CC_OK && !r->distinct)
    snprintf(r->error, sizeof r->error, "the trace has no state %llu", (unsigned long long)w.only_state), rc = CC_EINVAL;
  free_walk(&w);
  return rc;
}

/* The baton the program's last owner left beside the trace (libpowercut, POWERCUT_RUN) names
 * each file it tracked and the file as it left it (inode, size, modification time): the check
 * the next owner would have made. A process of the program that changed one after that, and
 * never owned the run (a last command without the shim, a write through an inherited
 * descriptor, stdio flushed at exit), would otherwise be missing from every crash state,
 * unsaid. 0, or -1 with the reason in err. */
static int changed_after_run(const char *trace, char *err, size_t n) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s.baton", trace);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0; /* no owner ended with a trace: nothing to compare */
  pc_handover h;
  if (pc__ho_load(fd, &h)) {
    snprintf(err, n, "cannot read %.900s, the state the program's last process left", path);
    return -1;
  }
  int rc = 0;
  for (uint32_t i = 0; i < h.nfiles && !rc; i++) {
    const pc_ho_file *f = &h.files[i];
    struct stat st;
    if (!f->where) continue; /* no name left when the last owner ended */
    if (stat(f->where, &st) != 0 || (uint64_t)st.st_dev != f->dev || (uint64_t)st.st_ino != f->ino) {
      snprintf(err, n, "%.900s was removed, renamed or replaced after the last process that owned the run ended, "
               "by a process the shim did not follow: the crash states would lack it", f->where);
      rc = -1;
    } else if (f->fc_ok && ((uint64_t)st.st_size != f->fc_size || (int64_t)st.st_mtim.tv_sec != f->fc_sec ||
                            (int64_t)st.st_mtim.tv_nsec != f->fc_nsec)) {
      snprintf(err, n, "%.900s changed after the last process that owned the run ended (its size is %llu bytes, "
               "%llu then), by a process the shim did not follow (one without the shim, a write through a "
               "descriptor it inherited, stdio flushed at exit): the crash states would lack it", f->where,
               (unsigned long long)st.st_size, (unsigned long long)f->fc_size);
      rc = -1;
    }
  }
  pc__ho_free(&h);
  return rc;
}

int cc_run_program(const cc_prog_opts *o, cc_prog_result *r) {
  memset(r, 0, sizeof *r);
  double t0 = now_s();
  walk w = {.o = o, .r = r};
  char live[PATH_MAX], trace[PATH_MAX], log[PATH_MAX];
  snprintf(live, sizeof live, "%s/live", o->workdir);
  snprintf(w.snap, sizeof w.snap, "%s/snap", o->workdir);
  scratch_names(&w, "");
  snprintf(trace, sizeof trace, "%s/trace", o->workdir);
  snprintf(log, sizeof log, "%s/setup.out", o->workdir);
  snprintf(w.pout, sizeof w.pout, "%s/program.stdout", o->workdir);
  snprintf(w.perr, sizeof w.perr, "%s/program.stderr", o->workdir);
  int rc = CC_EIO;
  if (mkdir(live, 0755) != 0) {
    snprintf(r->error, sizeof r->error, "cannot create %.900s: %s", live, strerror(errno));
    return CC_EIO;
  }
  char origin_env[PATH_MAX + 32];
  snprintf(origin_env, sizeof origin_env, "CRASHCHECK_ORIGIN=%s", o->origin);
  char *origin_set[] = {origin_env, NULL};
  if (o->setup) {
    int st = shell_in(live, o->setup, origin_set, log);
    if (st != 0) {
      char out[400];
      head_of(log, out, sizeof out);
      snprintf(r->error, sizeof r->error, "the setup exited %d: %s", st, out);
      return CC_EINVAL;
    }
  }
  if (copy_tree(live, w.snap) != 0) {
    snprintf(r->error, sizeof r->error, "cannot copy %.900s: %s", live, strerror(errno));
    return CC_EIO;
  }
  /* The program, once, under the shim. */
  char e_pre[PATH_MAX + 64], e_file[PATH_MAX + 32], e_trace[PATH_MAX + 32], e_sector[48];
  const char *pre = getenv("LD_PRELOAD");
  snprintf(e_pre, sizeof e_pre, "LD_PRELOAD=%s%s%s", pre && *pre ? pre : "", pre && *pre ? " " : "", o->shim);
  snprintf(e_file, sizeof e_file, "POWERCUT_FILE=%s", o->files);
  snprintf(e_trace, sizeof e_trace, "POWERCUT_TRACE=%s", trace);
  snprintf(e_sector, sizeof e_sector, "POWERCUT_SECTOR=%u", o->sector);
  char e_ns[64];
  snprintf(e_ns, sizeof e_ns, "POWERCUT_NAMESPACE=%s", o->profile ? o->profile : "none");
  char e_output[] = "POWERCUT_OUTPUT=1"; /* what it had written when, for CRASHCHECK_STDOUT */
  /* the processes of the run know each other (a shell's commands, a background job beside
   * them): the shim has them take turns, and says in TRACE.refused what it cannot follow */
  char e_run[] = "POWERCUT_RUN=1";
  char *set[] = {e_pre, e_file, e_trace, e_sector, origin_env, e_ns, e_output, e_run, NULL};
  static const char *const drop[] = {"POWERCUT_CUT", "POWERCUT_IMAGE", "POWERCUT_ERROR", "POWERCUT_OWNER",
                                     "POWERCUT_HANDOVER", NULL};
  r->program_status = run_in(live, o->argv, set, drop, w.pout, w.perr);
  char refused[PATH_MAX + 16];
  snprintf(refused, sizeof refused, "%s.refused", trace);
  if (access(refused, F_OK) == 0) {
    /* whatever the program's own exit status (a script's last command decides it): a process
     * of it did what the model cannot follow, and the trace lacks it */
    char out[600];
    head_of(refused, out, sizeof out);
    snprintf(r->error, sizeof r->error, "a process of the program did what the model cannot follow: %s", out);
    return CC_EINVAL;
  }
  if (r->program_status != 0) {
    char out[600];
    head_of(w.perr, out, sizeof out);
    if (!out[0]) head_of(w.pout, out, sizeof out);
    snprintf(r->error, sizeof r->error, "the program exited %d under the shim: %s", r->program_status, out);
    return CC_EINVAL;
  }
  if (access(trace, R_OK) != 0) {
    snprintf(r->error, sizeof r->error, "the program never opened a file matching %.900s (no trace)", o->files);
    return CC_EINVAL;
  }
  if (changed_after_run(trace, r->error, sizeof r->error)) return CC_EINVAL;
  if (pc_trace_open(trace, &w.t) != PC_OK) {
    snprintf(r->error, sizeof r->error, "cannot read the trace %.900s", trace);
    return CC_EIO;
  }
  pc_trace_file_count(w.t, &w.nfiles);
  r->files = w.nfiles;
  int nomem = walk_alloc(&w);
  snprintf(w.live, sizeof w.live, "%s", live);
  if (!realpath(live, w.real)) snprintf(w.real, sizeof w.real, "%s", live);
  if (nomem) {
    snprintf(r->error, sizeof r->error, "out of memory");
    rc = CC_ENOMEM;
  } else if ((rc = names_inside(&w)) == CC_OK) {
    rc = walk_all(&w);
  }
  if (rc == CC_OK) save_replay(&w, trace);
  free_walk(&w);
  r->seconds = now_s() - t0;
  return rc;
}
