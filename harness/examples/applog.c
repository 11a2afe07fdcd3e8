/* applog.c: an append-only log that acknowledges each record, the first example that
 * `crashcheck run` checks (harness/tests/e2e_run.sh; README, "Test your own program").
 *
 *   applog FILE N [--ack-before-fsync | --no-fsync | --no-dir-fsync]
 *
 * Appends N records "record K\n" to FILE with write(2), each made durable with fsync(2) and
 * then acknowledged: a marker note "acked K" (libpowercut's pc_mark_note; nothing without the
 * shim) and the line "acked K" on stdout, which is what a server's reply to its client stands
 * for. A FILE it creates gets an
 * fsync of its directory first, or its name may not survive a power cut (POSIX). Acknowledged
 * records must survive any power cut. Three ways to get that wrong, on purpose:
 * --ack-before-fsync replies before the fsync (a cut between the two loses an acknowledged
 * record), --no-fsync never syncs at all (at exit, nothing it acknowledged is durable), and
 * --no-dir-fsync leaves the new file's name unsynced (a cut can leave no log at all). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "powercut_mark.h"

/* Tells the world: a marker note, and a line on stdout (flushed: what is still in stdio's
 * buffer was told to no one). */
static void acknowledge(const char *ack) {
  pc_mark_note(ack);
  printf("%s\n", ack);
  fflush(stdout);
}

int main(int argc, char **argv) {
  const char *how = argc == 4 ? argv[3] : "";
  if (argc < 3 || argc > 4 || atoi(argv[2]) <= 0 ||
      (argc == 4 && strcmp(how, "--ack-before-fsync") && strcmp(how, "--no-fsync") && strcmp(how, "--no-dir-fsync"))) {
    fprintf(stderr, "usage: applog FILE N [--ack-before-fsync | --no-fsync | --no-dir-fsync]\n");
    return 2;
  }
  int early = !strcmp(how, "--ack-before-fsync"), never = !strcmp(how, "--no-fsync");
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0644), created = fd >= 0;
  if (fd < 0) fd = open(argv[1], O_WRONLY | O_APPEND);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  if (created && !never && strcmp(how, "--no-dir-fsync")) { /* the new name, durable */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int dfd = open(slash ? (dir[0] ? dir : "/") : ".", O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || fsync(dfd) != 0 || close(dfd) != 0) {
      perror("fsync of the directory");
      return 1;
    }
  }
  for (int k = 1, n = atoi(argv[2]); k <= n; k++) {
    char rec[32], ack[32];
    int len = snprintf(rec, sizeof rec, "record %d\n", k);
    snprintf(ack, sizeof ack, "acked %d", k);
    if (write(fd, rec, (size_t)len) != len) {
      perror("write");
      return 1;
    }
    if (early || never) acknowledge(ack);
    if (!never && fsync(fd) != 0) {
      perror("fsync");
      return 1;
    }
    if (!early && !never) acknowledge(ack);
  }
  return close(fd) == 0 ? 0 : 1;
}
