/* fuzz_image.c: fuzz target for libmappedpages' open path: a raw file image (after a mode byte)
 * must be refused with an error, or open into a pager that mp_check finds clean and that works. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crc32.h"
#include "layout.h"
#include "mappedpages.h"

/* Input: byte 0 is the mode, the rest is the file image.
 *   bit 0: recompute every checksum first (metadata pages, directory pages and their entries'
 *          content CRCs, page 0's section CRC and meta_checksum), so that mutations of the
 *          structure reach the validation behind the checksums instead of dying at them.
 *   bit 1: skip the read-only open (the read-write one always runs). */
#define MODE_FIX_CRCS 1u
#define MODE_NO_RDONLY 2u

/* The largest image we take: bigger inputs add nothing but time. */
#define MAX_IMAGE (1u << 20)

static int image_fd = -1;
static int strict;  /* FUZZ_STRICT=1: the tolerated findings below are findings too */
static int verbose; /* FUZZ_VERBOSE=1: a line per open saying whether it was accepted, or why not */
static char image_path[64];

static void die(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_image: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

/* A memfd keeps every run in memory, and /proc/self/fd/N gives the pager a path to open. */
static void setup(void) {
  if (image_fd >= 0) return;
  image_fd = memfd_create("fuzz_image", 0);
  if (image_fd < 0) die("memfd_create failed", NULL);
  snprintf(image_path, sizeof image_path, "/proc/self/fd/%d", image_fd);
  strict = getenv("FUZZ_STRICT") && *getenv("FUZZ_STRICT") == '1';
  verbose = getenv("FUZZ_VERBOSE") && *getenv("FUZZ_VERBOSE") == '1';
}

static void put_image(const uint8_t *img, size_t len) {
  if (ftruncate(image_fd, 0) != 0 || (len && pwrite(image_fd, img, len, 0) != (ssize_t)len))
    die("cannot write the image to the memfd", NULL);
}

static void seal(uint8_t *page, size_t ps) { mp__put32(page + ps - 4, mp__crc32(0, page, ps - 4)); }

/* Recomputes the checksums the format has, in dependency order: entry content CRCs, then the
 * directory pages that hold them, the metadata pages, and last page 0's section CRC. */
static void fix_crcs(uint8_t *img, size_t len) {
  if (len < MP_SB_REFS) return;
  uint32_t log2 = mp__get32(img + MP_SB_LOG2);
  if (log2 < 10 || log2 > 16) return;
  size_t ps = (size_t)1 << log2, pages = len / ps;
  if (pages < 1) return;
  uint32_t refs = mp__get32(img + MP_SB_DIR_COUNT);
  if (refs > mp__max_refs(ps)) refs = mp__max_refs(ps);
  uint32_t cap = mp__dir_cap(ps);
  for (uint32_t r = 0; r < refs; r++) {
    const uint8_t *ref = img + MP_SB_REFS + (size_t)r * MP_REF_SIZE;
    for (int k = 0; k < 2; k++) {
      uint64_t d = mp__get64(ref + 8 * k);
      if (d < MP_RESERVED_PAGES || d >= pages) continue;
      uint8_t *dir = img + d * ps;
      for (uint32_t e = 0; e < cap; e++) {
        uint8_t *raw = mp__entry_at(dir, e);
        if (!raw[MP_ENTRY_IN_USE]) continue;
        uint64_t data = mp__get64(raw + (raw[MP_ENTRY_SLOT] ? MP_ENTRY_PAGE_B : MP_ENTRY_PAGE_A));
        if (data < pages && data != d) mp__put32(raw + MP_ENTRY_CRC, mp__crc32(0, img + data * ps, ps));
      }
      seal(dir, ps);
    }
  }
  for (size_t m = 1; m <= 2 && m < pages; m++) seal(img + m * ps, ps);
  mp__put32(img + MP_SB_META_CRC, MP_CRC_RESIDUE);
  mp__put32(img + ps - 4, mp__section_crc(img, ps));
}

typedef struct findings {
  unsigned structural, tolerated;
  bool reader; /* the handle is read-only: it repairs nothing */
  char first[256];
} findings;

/* Two findings of mp_check are damage that open tolerates by design, not open bugs: a protected
 * page whose content fails its entry's CRC (open does not read data pages; mp_protected_read
 * reports it), and a current metadata copy failing its checksum when the other copy is the
 * generation before it (open.c: media damage, the older copy stands in; mp_check says so). */
static void on_finding(void *arg, const char *msg) {
  findings *f = arg;
  if (!strict && (strstr(msg, "does not match the checksum in its entry") || strstr(msg, "the pager uses the other copy"))) {
    f->tolerated++;
    return;
  }
  /* A read-only open also leaves page 0's stale section checksum at dir_count 0 as it
   * is (layout.h): mp_check reports it, and the writer's open rewrites it. */
  if (!strict && f->reader && strstr(msg, "a writer's open rewrites it")) {
    f->tolerated++;
    return;
  }
  if (!f->structural++) snprintf(f->first, sizeof f->first, "%s", msg);
}

static void check_clean(mp_pager *p, const char *when, bool reader) {
  findings f = {.reader = reader};
  unsigned n = 0;
  if (mp_check(p, on_finding, &f, &n) != MP_OK) die("mp_check could not run", when);
  if (f.structural) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s: %u findings, first: %s", when, f.structural, f.first);
    die("an accepted image fails mp_check", msg);
  }
}

/* Reads every page through the calls a user makes; returns how many protected reads failed
 * their checksum (expected only where mp_check counted content findings). */
static unsigned read_all(mp_pager *p) {
  size_t ps = mp_page_size(p);
  volatile uint8_t sink = 0;
  unsigned bad = 0;
  for (uint64_t id = 0; mp_next_protected(p, id, &id) == MP_OK; id++) {
    const void *data;
    int rc = mp_protected_read(p, id, &data);
    if (rc == MP_OK) sink ^= ((const uint8_t *)data)[0] ^ ((const uint8_t *)data)[ps - 1];
    else if (rc == MP_ECORRUPT) bad++;
    else die("mp_protected_read of a listed id failed", mp_strerror(rc));
  }
  unsigned regular = 0;
  for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK && regular < 4096; id++, regular++) {
    void *data;
    int rc = mp_page(p, id, &data);
    if (rc != MP_OK) die("mp_page of a listed regular page failed", mp_strerror(rc));
    sink ^= ((volatile uint8_t *)data)[ps - 1];
  }
  (void)sink;
  return bad;
}

/* A few mutating calls on an accepted file: errors are fine (a full file, a read-only handle),
 * crashes and an inconsistent result are not. */
static void exercise(mp_pager *p) {
  uint64_t id, pid;
  if (mp_alloc(p, &id) == MP_OK) {
    void *data;
    if (mp_page(p, id, &data) == MP_OK) {
      memset(data, 0xA5, mp_page_size(p));
      mp_sync_page(p, id);
    }
    mp_free(p, id);
  }
  uint64_t first;
  if (mp_next_regular(p, 0, &first) == MP_OK) mp_free(p, first);
  if (mp_protected_alloc(p, &pid) == MP_OK) {
    void *stage;
    if (mp_protected_begin(p, pid, &stage) == MP_OK) {
      memset(stage, 0x5A, mp_page_size(p));
      mp_protected_commit(p, pid);
    }
  }
  uint64_t some;
  if (mp_next_protected(p, 0, &some) == MP_OK) {
    void *stage;
    if (mp_protected_begin(p, some, &stage) == MP_OK) {
      ((uint8_t *)stage)[0] ^= 1;
      mp_protected_commit(p, some);
    }
  }
}

static void run_open(const uint8_t *img, size_t len, unsigned flags) {
  put_image(img, len);
  mp_pager *p = NULL;
  char why[256] = "";
  int rc = mp_open_explain(image_path, flags, &p, why, sizeof why);
  const char *mode = flags & MP_RDONLY ? "read-only open" : "read-write open";
  if (verbose) fprintf(stderr, "fuzz_image: %s: %s%s%s\n", mode, rc == MP_OK ? "accepted" : mp_strerror(rc),
                       rc == MP_OK ? "" : ": ", rc == MP_OK ? "" : why);
  if (rc != MP_OK) {
    if (p) die("a failed open returned a pager", mode);
    if (!why[0]) die("a failed open gave no reason", mode);
    return;
  }
  check_clean(p, mode, flags & MP_RDONLY);
  read_all(p);
  if (!(flags & MP_RDONLY)) {
    exercise(p);
    check_clean(p, "after operations on the read-write handle", false);
    read_all(p);
  }
  rc = mp_close(p);
  if (rc != MP_OK) die("mp_close failed", mp_strerror(rc));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  setup();
  unsigned mode = data[0];
  size_t len = size - 1 < MAX_IMAGE ? size - 1 : MAX_IMAGE;
  uint8_t *img = malloc(len ? len : 1);
  if (!img) return 0;
  memcpy(img, data + 1, len);
  if (mode & MODE_FIX_CRCS) fix_crcs(img, len);
  if (!(mode & MODE_NO_RDONLY)) run_open(img, len, MP_RDONLY);
  run_open(img, len, 0);
  free(img);
  return 0;
}
