/* replace.c: the classic atomic replace of a file's whole content, the second example that
 * `crashcheck run` checks (harness/tests/e2e_replace.sh; README, "Test your own program").
 *
 *   replace FILE VERSION [--unsafe | --no-dir-fsync]
 *
 * Writes the new content (100 lines "VERSION line I\n", a few sectors, so that a torn write
 * shows) to FILE.tmp with write(2), makes it durable with fsync(2), renames FILE.tmp over
 * FILE, fsyncs FILE's directory so that the rename itself is durable, and then acknowledges:
 * a marker note "replaced VERSION" (libpowercut's pc_mark_note; nothing without the shim) and
 * the same line on stdout. A power cut anywhere must leave FILE whole, old or new, and new
 * once acknowledged. Two ways to get that wrong, on purpose: --unsafe skips the fsync of
 * FILE.tmp (the rename may reach the disk before the data: FILE empty or torn), and
 * --no-dir-fsync acknowledges before the rename is durable (a cut then leaves the old
 * content, although the new one was acknowledged). */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "powercut_mark.h"

static void die(const char *what, const char *path) {
  fprintf(stderr, "replace: %s %s: ", what, path);
  perror(NULL);
  exit(1);
}

/* One write(2) for the whole content: one step for the shim, however many sectors. */
static void write_all(int fd, const char *buf, size_t n, const char *path) {
  while (n) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) die("cannot write", path);
    buf += w;
    n -= (size_t)w;
  }
}

int main(int argc, char **argv) {
  int unsafe = 0, no_dir_fsync = 0;
  if (argc == 4 && !strcmp(argv[3], "--unsafe")) unsafe = 1;
  else if (argc == 4 && !strcmp(argv[3], "--no-dir-fsync")) no_dir_fsync = 1;
  else if (argc != 3) {
    fprintf(stderr, "usage: replace FILE VERSION [--unsafe | --no-dir-fsync]\n");
    return 2;
  }
  const char *file = argv[1], *version = argv[2];
  char tmp[PATH_MAX], dir[PATH_MAX], line[256], content[100 * 300];
  size_t len = 0;
  snprintf(tmp, sizeof tmp, "%s.tmp", file);
  snprintf(dir, sizeof dir, "%s", file);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("cannot create", tmp);
  for (int i = 0; i < 100; i++) len += (size_t)snprintf(content + len, sizeof content - len, "%.200s line %d\n", version, i);
  write_all(fd, content, len, tmp);
  if (!unsafe && fsync(fd) != 0) die("cannot fsync", tmp);
  if (close(fd) != 0) die("cannot close", tmp);
  if (rename(tmp, file) != 0) die("cannot rename over", file);
  if (!no_dir_fsync) {
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || fsync(dfd) != 0) die("cannot fsync the directory of", file);
    close(dfd);
  }
  /* Tells the world: a marker note, and a line on stdout (flushed: what is still in stdio's
   * buffer was told to no one). */
  snprintf(line, sizeof line, "replaced %s", version);
  pc_mark_note(line);
  printf("%s\n", line);
  fflush(stdout);
  return 0;
}
