/* support.h: helpers shared by the pager's CMocka tests: scratch files, fixtures,
 * raw image access and libfiu shortcuts. */
#ifndef MP_TEST_SUPPORT_H
#define MP_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* A fresh path in a per-process scratch directory (under $TMPDIR or /tmp); the
 * file does not exist. The returned string lives until the next call with the
 * same slot (0..7). */
const char *t_path(int slot, const char *name);

/* Reads a whole file into a malloc'd buffer (*len set); NULL on error. Files
 * ending in .gz are decompressed. */
uint8_t *t_read_file(const char *path, size_t *len);
/* Writes len bytes to path (replacing it); returns 0 or -1. */
int t_write_file(const char *path, const void *data, size_t len);
/* Path of a fixture in corpus/interop/, whatever the current directory is
 * (tests run from the project root; MP_SOURCE_DIR overrides). */
const char *t_fixture(const char *name);

uint32_t t_crc(const void *data, size_t len);      /* zlib crc32 */
uint64_t t_le64(const uint8_t *p);
uint32_t t_le32(const uint8_t *p);
void t_put64(uint8_t *p, uint64_t v);
void t_put32(uint8_t *p, uint32_t v);

#endif
