/* jobs.c: the worker processes of --jobs: a fork per worker, which walks the same trace and
 * checks its share of the states, and a pipe back to the parent for its counts and findings.
 * Processes rather than threads: a check may run the workload or the user's program, and
 * the shim and the pager's model keep per-process state. */
#include "jobs.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "case.h"

int cc_send(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int cc_run_jobs(unsigned jobs, int (*work)(void *ctx, unsigned j, int fd),
                int (*merge)(void *ctx, unsigned j, FILE *in), void *ctx, char *why, size_t whylen) {
  if (jobs > 64) jobs = 64;
  int fds[64];
  pid_t pids[64];
  unsigned started = 0;
  int rc = CC_OK;
  for (; started < jobs; started++) {
    int p[2];
    if (pipe(p) != 0) {
      snprintf(why, whylen, "cannot start worker %u: pipe: %s", started, strerror(errno));
      rc = CC_ESETUP;
      break;
    }
    fflush(NULL); /* nothing buffered goes out twice */
    pid_t pid = fork();
    if (pid < 0) {
      snprintf(why, whylen, "cannot start worker %u: fork: %s", started, strerror(errno));
      close(p[0]);
      close(p[1]);
      rc = CC_ESETUP;
      break;
    }
    if (pid == 0) {
      for (unsigned k = 0; k < started; k++) close(fds[k]);
      close(p[0]);
      int st = work(ctx, started, p[1]);
      _exit(st == 0 && close(p[1]) == 0 ? 0 : 1);
    }
    close(p[1]);
    fds[started] = p[0];
    pids[started] = pid;
  }
  /* Workers already started are read and waited for even when a later one failed to start:
   * none is left behind. */
  for (unsigned j = 0; j < started; j++) {
    FILE *in = fdopen(fds[j], "rb");
    int merged = in ? merge(ctx, j, in) : -1;
    if (in) fclose(in);
    else close(fds[j]);
    int st = 0;
    while (waitpid(pids[j], &st, 0) < 0 && errno == EINTR) {}
    if (rc == CC_OK && (merged != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
      if (WIFSIGNALED(st)) snprintf(why, whylen, "worker %u was killed by signal %d", j, WTERMSIG(st));
      else snprintf(why, whylen, "worker %u failed before sending its results", j);
      rc = CC_ESETUP;
    }
  }
  return rc;
}
