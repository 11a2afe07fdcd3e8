/* support.c: helpers shared by the pager's CMocka tests: scratch files, fixtures,
 * raw image access. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char scratch_dir[512];
static char slots[8][768];

static void remove_scratch(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch_dir);
  if (system(cmd) != 0) { /* best effort */ }
}

const char *t_path(int slot, const char *name) {
  if (!scratch_dir[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch_dir, sizeof scratch_dir, "%s/mp-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch_dir)) { perror("mkdtemp"); exit(2); }
    atexit(remove_scratch);
  }
  snprintf(slots[slot & 7], sizeof slots[0], "%s/%s", scratch_dir, name);
  unlink(slots[slot & 7]);
  return slots[slot & 7];
}

uint8_t *t_read_file(const char *path, size_t *len) {
  size_t n = strlen(path);
  if (n > 3 && strcmp(path + n - 3, ".gz") == 0) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) return NULL;
    size_t cap = 1 << 16, used = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
      if (used == cap) buf = realloc(buf, cap *= 2);
      int got = gzread(gz, buf + used, (unsigned)(cap - used));
      if (got < 0) { free(buf); gzclose(gz); return NULL; }
      if (got == 0) break;
      used += (size_t)got;
    }
    gzclose(gz);
    *len = used;
    return buf;
  }
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  struct stat st;
  if (fstat(fileno(f), &st) != 0) { fclose(f); return NULL; }
  uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
  size_t got = fread(buf, 1, (size_t)st.st_size, f);
  fclose(f);
  if (got != (size_t)st.st_size) { free(buf); return NULL; }
  *len = got;
  return buf;
}

int t_write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  const uint8_t *p = data;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0) { if (errno == EINTR) continue; close(fd); return -1; }
    p += w; len -= (size_t)w;
  }
  return close(fd);
}

const char *t_fixture(const char *name) {
  static char buf[1024];
  const char *root = getenv("MP_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/corpus/interop/%s", root && *root ? root : ".", name);
  return buf;
}

uint32_t t_crc(const void *data, size_t len) { return (uint32_t)crc32(0, data, (uInt)len); }
uint64_t t_le64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }
uint32_t t_le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
void t_put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }
void t_put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
