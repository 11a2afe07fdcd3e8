/* forkserver.c: crashcheck's recordings in children of one server that loaded the shim once.
 *
 * The protocol:
 * - The first recording a process asks for starts its server: crashcheck __serve, executed
 *   with the caller's environment less the recording's variables, plus LD_PRELOAD=SHIM. The
 *   shim loads there once, tracking nothing (no POWERCUT_FILE).
 * - A request is one message on the request pipe: its length (4 bytes), then NUL-terminated
 *   strings: the number of arguments, the arguments of `__run`, and one entry per variable,
 *   NAME=VALUE to set it or NAME alone to unset it.
 * - The server forks; the child sets the variables, lets the shim read them (pc_shim_reset,
 *   which starts it over as a fresh process's start would) and runs the recording as
 *   `crashcheck __run` would; it exits as that would (the shim finishes its trace then). The
 *   server answers with the child's wait status (4 bytes) and waits for the next request.
 * - End of file on the request pipe ends the server: its owner closed it, or exited.
 * The server is the owner's own: a process forked later (a worker of --jobs) starts its
 * own, so two processes never talk on one pipe. A server that cannot start, or dies, makes
 * cc_fs_run say so, and the caller executes the recording the old way. */
#include "forkserver.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_REQUEST 65536

static struct {
  pid_t owner; /* the process that started it (0: none) */
  pid_t pid;
  int req, resp;
  bool broken; /* could not start, or died: this process records the old way */
  unsigned long long served;
  char shim[4096];
} fs = {.req = -1, .resp = -1};

static bool write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

/* 1: all of it; 0: end of file before any byte; -1: an error or a short message. */
static int read_all(int fd, void *buf, size_t len) {
  char *p = buf;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, p + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 && got == 0 ? 0 : -1;
    got += (size_t)n;
  }
  return 1;
}

static void stop(void) {
  if (fs.req >= 0) close(fs.req);
  if (fs.resp >= 0) close(fs.resp);
  fs.req = fs.resp = -1;
  if (fs.pid > 0 && fs.owner == getpid())
    while (waitpid(fs.pid, NULL, 0) < 0 && errno == EINTR) {
    }
  fs.pid = 0;
}

static void stop_at_exit(void) {
  if (fs.owner == getpid()) stop();
}

void cc_fs_stop(void) {
  if (fs.owner != getpid()) return;
  stop();
  fs.owner = 0;
  fs.broken = false;
}

static bool named(const char *entry, size_t nnames, const char *const *names) {
  for (size_t k = 0; k < nnames; k++) {
    size_t n = strlen(names[k]);
    if (!strncmp(entry, names[k], n) && entry[n] == '=') return true;
  }
  return !strncmp(entry, "LD_PRELOAD=", 11);
}

static bool start(const char *self, const char *shim, size_t nnames, const char *const *names) {
  static bool registered;
  /* A server inherited from the process this one was forked from is not ours: its pipes
   * are left alone (closing them would not stop it: the owner still holds them). */
  fs.req = fs.resp = -1;
  fs.pid = 0;
  fs.owner = getpid();
  snprintf(fs.shim, sizeof fs.shim, "%s", shim);
  int req[2], resp[2];
  if (pipe2(req, O_CLOEXEC) != 0) return false;
  if (pipe2(resp, O_CLOEXEC) != 0) {
    close(req[0]);
    close(req[1]);
    return false;
  }
  size_t n = 0;
  for (char **e = environ; *e; e++) n++;
  char **env = calloc(n + 3, sizeof *env);
  char preload[4200], rfd[16], wfd[16];
  snprintf(preload, sizeof preload, "LD_PRELOAD=%s", shim);
  size_t k = 0;
  for (char **e = environ; env && *e; e++)
    if (!named(*e, nnames, names)) env[k++] = *e;
  if (env) env[k++] = preload;
  /* Every symbol bound once, in the server: lazily bound, each child resolved its own on first
   * call (a twentieth of a follow-up's time) and wrote the table's pages it then copied. */
  if (env && !getenv("LD_BIND_NOW")) env[k++] = "LD_BIND_NOW=1";
  /* The server's ends of the pipes, at descriptors 3 and 4 of the server (from copies
   * above both, so that neither dup2 overwrites the other's source). */
  int in = fcntl(req[0], F_DUPFD_CLOEXEC, 10), out = fcntl(resp[1], F_DUPFD_CLOEXEC, 10);
  close(req[0]);
  close(resp[1]);
  req[0] = in, resp[1] = out;
  posix_spawn_file_actions_t fa;
  bool ok = env && in >= 0 && out >= 0 && posix_spawn_file_actions_init(&fa) == 0;
  if (ok) {
    ok = posix_spawn_file_actions_adddup2(&fa, in, 3) == 0 && posix_spawn_file_actions_adddup2(&fa, out, 4) == 0;
    snprintf(rfd, sizeof rfd, "3");
    snprintf(wfd, sizeof wfd, "4");
    char *argv[] = {(char *)self, "__serve", rfd, wfd, NULL};
    fflush(NULL);
    ok = ok && posix_spawn(&fs.pid, self, &fa, NULL, argv, env) == 0;
    posix_spawn_file_actions_destroy(&fa);
  }
  free(env);
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  if (!ok) {
    close(req[1]);
    close(resp[0]);
    fs.pid = 0;
    return false;
  }
  fs.req = req[1];
  fs.resp = resp[0];
  if (!registered) registered = atexit(stop_at_exit) == 0;
  return true;
}

bool cc_fs_run(const char *self, const char *shim, char *const *args, size_t nvars, const char *const *names,
               const char *const *values, int *status) {
  if (getenv("CRASHCHECK_NO_FORKSERVER")) return false; /* (to compare the two ways) */
  if (fs.owner && fs.owner != getpid()) {
    /* Forked from the server's owner: its pipes are the owner's (closed here, the owner
     * keeps its own copies); this process starts its own server. */
    if (fs.req >= 0) close(fs.req);
    if (fs.resp >= 0) close(fs.resp);
    fs.req = fs.resp = -1;
    fs.broken = false;
    fs.owner = 0;
  }
  if (fs.broken) return false;
  if (fs.owner && strcmp(fs.shim, shim) != 0) return false; /* another shim: the old way */
  if (!fs.owner && !start(self, shim, nvars, names)) {
    fs.broken = true;
    return false;
  }
  char *msg = malloc(MAX_REQUEST);
  if (!msg) return false;
  size_t len = 4, nargs = 0;
  while (args[nargs]) nargs++;
  int w = snprintf(msg + len, MAX_REQUEST - len, "%zu", nargs);
  len += (size_t)w + 1;
  for (size_t i = 0; i < nargs && len < MAX_REQUEST; i++) {
    w = snprintf(msg + len, MAX_REQUEST - len, "%s", args[i]);
    len += (size_t)w + 1;
  }
  for (size_t i = 0; i < nvars && len < MAX_REQUEST; i++) {
    w = values[i] ? snprintf(msg + len, MAX_REQUEST - len, "%s=%s", names[i], values[i])
                  : snprintf(msg + len, MAX_REQUEST - len, "%s", names[i]);
    len += (size_t)w + 1;
  }
  if (len > MAX_REQUEST) {
    free(msg);
    return false; /* too long for a message: the old way */
  }
  uint32_t body = (uint32_t)(len - 4);
  memcpy(msg, &body, 4);
  /* A server that died makes the write fail (EPIPE, not the signal) or the read end. */
  struct sigaction ign = {.sa_handler = SIG_IGN}, old;
  sigemptyset(&ign.sa_mask);
  sigaction(SIGPIPE, &ign, &old);
  int32_t st = 0;
  bool ok = write_all(fs.req, msg, len) && read_all(fs.resp, &st, sizeof st) == 1;
  sigaction(SIGPIPE, &old, NULL);
  free(msg);
  if (!ok) {
    stop();
    fs.broken = true;
    return false;
  }
  *status = st;
  fs.served++;
  return true;
}

unsigned long long cc_fs_served(void) { return fs.served; }

/* ---- the server ------------------------------------------------------------------ */

static int child(char *msg, size_t len, int (*run)(int argc, char **argv)) {
  char *p = msg, *end = msg + len;
  size_t nargs = strtoul(p, NULL, 10);
  p += strlen(p) + 1;
  char **argv = calloc(nargs + 1, sizeof *argv);
  if (!argv) return 2;
  for (size_t i = 0; i < nargs && p < end; i++, p += strlen(p) + 1) argv[i] = p;
  for (; p < end; p += strlen(p) + 1) {
    char *eq = strchr(p, '=');
    if (!eq) {
      unsetenv(p);
      continue;
    }
    *eq = 0;
    setenv(p, eq + 1, 1);
    *eq = '=';
  }
  unsetenv("POWERCUT_OWNER"); /* the server claimed nothing; this child claims the file */
  int (*reset)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "pc_shim_reset");
  if (!reset || reset() != 0) {
    fprintf(stderr, "crashcheck: __serve: the shim did not start over\n");
    return 2;
  }
  return run((int)nargs, argv);
}

int cc_fs_serve(int req_fd, int resp_fd, int (*run)(int argc, char **argv)) {
  if (!dlsym(RTLD_DEFAULT, "pc_shim_reset")) {
    fprintf(stderr, "crashcheck: __serve: the shim is not loaded\n");
    return 2; /* the owner reads end of file and records the old way */
  }
  char *msg = malloc(MAX_REQUEST);
  if (!msg) return 2;
  for (;;) {
    uint32_t len;
    int r = read_all(req_fd, &len, sizeof len);
    if (r == 0) break;
    if (r < 0 || len > MAX_REQUEST || read_all(req_fd, msg, len) != 1 || !len || msg[len - 1]) break;
    pid_t pid = fork();
    if (pid < 0) break;
    if (pid == 0) {
      close(req_fd);
      close(resp_fd);
      exit(child(msg, len, run));
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
      if (errno != EINTR) {
        st = 2 << 8;
        break;
      }
    int32_t out = st;
    if (!write_all(resp_fd, &out, sizeof out)) break;
  }
  free(msg);
  return 0;
}
