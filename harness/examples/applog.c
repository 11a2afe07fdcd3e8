/* applog.c: an append-only log that acknowledges each record, the first example that
 * `crashcheck run` checks (harness/tests/e2e_run.sh; README, "Test your own program").
 *
 *   applog FILE N [--ack-before-fsync | --no-fsync]
 *
 * Appends N records "record K\n" to FILE with write(2), each made durable with fsync(2) and
 * then acknowledged: a marker note "acked K" (libpowercut's pc_mark_note; nothing without the
 * shim), which is what a server's reply to its client stands for. Acknowledged records must
 * survive any power cut. Two ways to get that wrong, on purpose: --ack-before-fsync replies
 * before the fsync (a cut between the two loses an acknowledged record), and --no-fsync never
 * syncs at all (at exit, nothing it acknowledged is durable). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "powercut_mark.h"

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4 || atoi(argv[2]) <= 0 ||
      (argc == 4 && strcmp(argv[3], "--ack-before-fsync") && strcmp(argv[3], "--no-fsync"))) {
    fprintf(stderr, "usage: applog FILE N [--ack-before-fsync | --no-fsync]\n");
    return 2;
  }
  int early = argc == 4 && !strcmp(argv[3], "--ack-before-fsync"), never = argc == 4 && !strcmp(argv[3], "--no-fsync");
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  for (int k = 1, n = atoi(argv[2]); k <= n; k++) {
    char rec[32], ack[32];
    int len = snprintf(rec, sizeof rec, "record %d\n", k);
    snprintf(ack, sizeof ack, "acked %d", k);
    if (write(fd, rec, (size_t)len) != len) {
      perror("write");
      return 1;
    }
    if (early || never) pc_mark_note(ack);
    if (!never && fsync(fd) != 0) {
      perror("fsync");
      return 1;
    }
    if (!early && !never) pc_mark_note(ack);
  }
  return close(fd) == 0 ? 0 : 1;
}
