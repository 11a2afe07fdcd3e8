/* open.c: creating, opening and closing a pager file: the create protocol that a power
 * cut cannot wedge, and the loader that bounds-checks every field before using it. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h> /* (PAGEMAP_SCAN's request number) */
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ---- loading ---------------------------------------------------------------- */

/* Reads the structures from the mapping into *p, refusing anything out of bounds.
 * `p0` is page 0 as recovery accepted it (see mp__p0_resolve). */
static int load_meta(mp_pager *p, const uint8_t *p0, bool *fell_back, char *why, size_t whylen) {
  unsigned sel = p0[MP_SB_ACTIVE_META];
  mp_meta_hdr h[2];
  char reason[2][160];
  bool ok[2];
  for (unsigned i = 0; i < 2; i++) ok[i] = mp__meta_valid(mp__pg(p, 1 + i), p->ps, p->map_pages, &h[i], reason[i], 160);
  unsigned use = sel;
  *fell_back = false;
  if (!ok[sel] && h[sel].crc_ok) {
    /* Whole but wrong (more pages than the file holds, a bitmap that disagrees with
     * its count): a truncated file or a broken writer, not damage an older copy can
     * stand in for. */
    snprintf(why, whylen, "metadata %c (current): %s", 'A' + sel, reason[sel]);
    return MP_ECORRUPT;
  }
  if (!ok[sel]) {
    /* The current copy is never written while current, so a checksum failure is
     * media damage, not a torn commit. The other copy may stand in only if it is
     * the state just before it: its generation one less (or equal, in a file that
     * was never changed). The last metadata commit is then lost. */
    uint64_t claimed = mp__get64(mp__pg(p, 1 + sel) + MP_META_GEN);
    unsigned other = !sel;
    if (!ok[other] || h[other].generation > claimed || claimed - h[other].generation > 1) {
      snprintf(why, whylen, "metadata %c (current) is damaged: %s; metadata %c %s", 'A' + sel, reason[sel],
               'A' + other, ok[other] ? "is not the state before it" : reason[other]);
      return MP_ECORRUPT;
    }
    use = other;
    *fell_back = true;
  }
  p->active_meta = use;
  p->total = h[use].total;
  p->generation = h[use].generation;
  p->free_count = h[use].free_count;
  return MP_OK;
}

/* Claims page `id` for structure `kind` number `num` (named only when refused). */
static int own_page(mp_pager *p, uint64_t id, const char *kind, uint64_t num, char *why, size_t whylen) {
  const char *problem = NULL;
  if (id < MP_RESERVED_PAGES || id >= p->total) {
    snprintf(why, whylen, "%s %llu refers to page %llu, outside 3 .. %llu", kind, (unsigned long long)num,
             (unsigned long long)id, (unsigned long long)p->total - 1);
    return MP_ECORRUPT;
  }
  if (!mp__allocated(p, id)) problem = "free in the bitmap";
  else if (mp__bit(p->owned, id)) problem = "already in use";
  if (problem) {
    snprintf(why, whylen, "%s %llu refers to page %llu, which is %s", kind, (unsigned long long)num,
             (unsigned long long)id, problem);
    return MP_ECORRUPT;
  }
  mp__set(p->owned, id);
  return MP_OK;
}

static int load_dirs(mp_pager *p, const uint8_t *p0, char *why, size_t whylen) {
  uint32_t dc = mp__get32(p0 + MP_SB_DIR_COUNT);
  int rc = mp__blocks_reserve(p, dc);
  if (rc != MP_OK) return rc;
  for (uint32_t b = 0; b < dc; b++) {
    const uint8_t *ref = p0 + MP_SB_REFS + (size_t)MP_REF_SIZE * b;
    mp_block *blk = &p->blocks[b];
    blk->page[0] = mp__get64(ref);
    blk->page[1] = mp__get64(ref + 8);
    blk->active = ref[MP_REF_ACTIVE];
    p->dir_count = b + 1; /* so that close frees what this block allocates */
    if (blk->active > 1) {
      snprintf(why, whylen, "directory reference %u has selector %u", b, blk->active);
      return MP_ECORRUPT;
    }
    if ((rc = own_page(p, blk->page[0], "directory reference", b, why, whylen)) != MP_OK) return rc;
    if ((rc = own_page(p, blk->page[1], "directory reference", b, why, whylen)) != MP_OK) return rc;
    const uint8_t *cur = mp__pg(p, blk->page[blk->active]);
    if (!mp__dir_valid(cur, p->ps)) {
      snprintf(why, whylen, "directory page %llu (block %u, current copy) is damaged",
               (unsigned long long)blk->page[blk->active], b);
      return MP_ECORRUPT;
    }
    blk->staged = mp__calloc((p->dir_cap + 63) / 64, 8);
    if (!blk->staged) return MP_ENOMEM;
    for (uint32_t e = 0; e < p->dir_cap; e++) {
      if (!mp__entry_used(cur, e)) continue;
      mp_entry ent;
      mp__entry_decode(mp__entry_at_c(cur, e), &ent);
      uint64_t id = (uint64_t)b * p->dir_cap + e;
      if (ent.page[0] == ent.page[1]) {
        snprintf(why, whylen, "protected page %llu uses page %llu for both copies", (unsigned long long)id,
                 (unsigned long long)ent.page[0]);
        return MP_ECORRUPT;
      }
      if ((rc = own_page(p, ent.page[0], "protected page", id, why, whylen)) != MP_OK) return rc;
      if ((rc = own_page(p, ent.page[1], "protected page", id, why, whylen)) != MP_OK) return rc;
      blk->used++;
    }
  }
  return MP_OK;
}

static bool is_leftover(int fd, uint64_t size);

/* Reads what the superblock says before anything is mapped: the file's size and
 * its page size, refusing files too short to hold the reserved pages. */
static int probe(int fd, const uint8_t *mapped, size_t mapped_len, uint64_t *size, unsigned *log2, bool *fmt3,
                 char *why, size_t whylen) {
  struct stat st;
  if (fstat(fd, &st) != 0) return mp__errno_to_code(errno);
  if (!S_ISREG(st.st_mode)) {
    snprintf(why, whylen, "not a regular file");
    return MP_EINVAL;
  }
  uint8_t buf[MP_SB_REFS];
  const uint8_t *head = buf;
  /* A reload reads the head through the mapping it has when the file still
   * covers it (no system call); an open reads it from the file. */
  if (mapped && mapped_len >= sizeof buf && (uint64_t)st.st_size >= mapped_len) head = mapped;
  else if ((uint64_t)st.st_size < sizeof buf || pread(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) {
    snprintf(why, whylen, "file too short for a superblock");
    return MP_ECORRUPT;
  }
  *fmt3 = mp3__is_v3(head, sizeof buf);
  if (*fmt3) {
    /* The 0.3 superblock is a sector of its own (FORMAT.md 3.5). */
    uint8_t sector[MP3_SB_LEN];
    const uint8_t *sb = sector;
    size_t got = 0;
    if (head == mapped && mapped_len >= sizeof sector) sb = mapped, got = sizeof sector;
    else if ((uint64_t)st.st_size >= sizeof sector && pread(fd, sector, sizeof sector, 0) == (ssize_t)sizeof sector)
      got = sizeof sector;
    int rc3 = mp3__probe(sb, got, log2, why, whylen);
    if (rc3 != MP_OK) return rc3;
    if ((uint64_t)st.st_size < mp3__mb((size_t)1 << *log2)) {
      snprintf(why, whylen, "file of %llu bytes is shorter than the 0.3 superblock's block", (unsigned long long)st.st_size);
      return MP_ECORRUPT;
    }
    *size = (uint64_t)st.st_size;
    return MP_OK;
  }
  const char *reason;
  int rc = mp__sb_check(head, sizeof buf, log2, &reason);
  if (rc != MP_OK && mp__salvageable_head(head) && !is_leftover(fd, (uint64_t)st.st_size)) {
    /* No tag: page 0's first sector may be garbage. An upgrade below 4 KiB pages left a copy
     * of the sector it wrote (open3.c), which says what the sector holds; else the metadata
     * copies tell the page size (salvage.c). An interrupted create's leftover is not
     * salvaged: it holds nothing. */
    uint64_t copy;
    rc = mp3__find_copy(fd, (uint64_t)st.st_size, log2, &copy, why, whylen);
    if (rc == MP_OK) {
      *fmt3 = true;
      *size = (uint64_t)st.st_size;
      return MP_OK;
    }
    if (rc == MP_ENOENT) rc = mp__salvage_geometry(fd, (uint64_t)st.st_size, log2, why, whylen);
    if (rc != MP_OK) return rc;
  } else if (rc != MP_OK) {
    snprintf(why, whylen, "%s", reason);
    return rc;
  }
  size_t ps = (size_t)1 << *log2;
  if ((uint64_t)st.st_size < 3 * (uint64_t)ps) {
    snprintf(why, whylen, "file of %llu bytes is shorter than 3 pages of %zu", (unsigned long long)st.st_size, ps);
    return MP_ECORRUPT;
  }
  *size = (uint64_t)st.st_size;
  return MP_OK;
}

static void unmap_file(mp_pager *p);

/* Maps the file as probed: `log2` and `size` set the geometry. A preview maps
 * privately and writably: its recovery's writes make private copies of the pages
 * they touch, and nothing reaches the file. (It was mapped read-only, and made
 * writable around each recovery: two calls that change the protection of every
 * page, a quarter of a crash checker's time per recovered state.) */
static int map_file(mp_pager *p, unsigned log2, uint64_t size, bool fmt3) {
  size_t ps = (size_t)1 << log2;
  p->fmt3 = fmt3;
  p->log2 = log2;
  p->ps = ps;
  p->capacity = mp__capacity(ps);
  p->max_refs = mp__max_refs(ps);
  p->dir_cap = mp__dir_cap(ps);
  p->file_size = size;
  p->map_pages = size / ps < p->capacity || fmt3 ? size / ps : p->capacity;
  int prot = PROT_READ | (p->rdonly && !p->preview ? 0 : PROT_WRITE);
  p->map = mmap(NULL, p->map_pages * ps, prot, p->preview ? MAP_PRIVATE : MAP_SHARED, p->fd, 0);
  if (p->map == MAP_FAILED) {
    p->map = NULL;
    p->map_pages = 0;
    return MP_ENOMEM;
  }
  if (p->preview) {
    void *v = mmap(NULL, p->map_pages * ps, PROT_READ, MAP_SHARED, p->fd, 0);
    if (v == MAP_FAILED) {
      unmap_file(p);
      return MP_ENOMEM;
    }
    p->view = v;
  }
  return MP_OK;
}

static void unmap_file(mp_pager *p) {
  if (p->map) munmap(p->map, p->map_pages * p->ps);
  if (p->view) munmap((void *)p->view, p->map_pages * p->ps);
  p->map = NULL;
  p->view = NULL;
  p->map_pages = 0;
  p->preview_wrote = false; /* no private copies left */
}

/* ---- what a preview's recovery wrote --------------------------------------- */

/* A page of a MAP_PRIVATE file mapping that was written is an anonymous copy:
 * present (bit 63 of its pagemap entry) but no longer a file page (bit 61); a
 * swapped-out one (bit 62) was written too. Pages never written are file pages,
 * or not present at all. */
#define PM_PRESENT (UINT64_C(1) << 63)
#define PM_SWAPPED (UINT64_C(1) << 62)
#define PM_FILE (UINT64_C(1) << 61)

/* PAGEMAP_SCAN (Linux 6.7, linux/fs.h), under names of our own so that newer headers do not
 * clash; the layout is the kernel's ABI. It lists the runs of pages in given categories, where
 * reading /proc/self/pagemap costs 8 bytes copied out per page of the mapping. */
struct mp_page_region {
  uint64_t start, end, categories;
};
struct mp_pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define MP_PAGEMAP_SCAN _IOWR('f', 16, struct mp_pm_scan_arg)
#define MP_PAGE_IS_FILE (1ULL << 2)
#define MP_PAGE_IS_PRESENT (1ULL << 3)
#define MP_PAGE_IS_SWAPPED (1ULL << 4)

static void mark_written(mp_pager *p, uint64_t lo, uint64_t hi) { /* bytes of the mapping */
  uint64_t first = lo / p->ps, last = (hi + p->ps - 1) / p->ps;
  for (uint64_t pg = first; pg < last && pg < p->map_pages; pg++) mp__set(p->pv_written, pg);
}

/* The anonymous pages (present, or swapped out) of the mapping, by PAGEMAP_SCAN: false if the
 * kernel has no such call (the pages are read one by one then). */
static bool scan_written(mp_pager *p) {
  struct mp_page_region vec[32];
  uintptr_t base = (uintptr_t)p->map;
  struct mp_pm_scan_arg arg = {
      .size = sizeof arg,
      .start = base,
      .end = base + (p->map_pages * p->ps + p->sys_page - 1) / p->sys_page * p->sys_page,
      .vec = (uintptr_t)vec,
      .vec_len = sizeof vec / sizeof vec[0],
      .category_inverted = MP_PAGE_IS_FILE, /* not a file's page ... */
      .category_mask = MP_PAGE_IS_FILE,
      .category_anyof_mask = MP_PAGE_IS_PRESENT | MP_PAGE_IS_SWAPPED, /* ... and there */
      .return_mask = MP_PAGE_IS_FILE | MP_PAGE_IS_PRESENT | MP_PAGE_IS_SWAPPED,
  };
  for (;;) {
    long n = mp__sys_pagemap_scan(p->pagemap, MP_PAGEMAP_SCAN, &arg);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    for (long i = 0; i < n; i++) mark_written(p, vec[i].start - base, vec[i].end - base);
    if (arg.walk_end >= arg.end) return true;
    if (arg.walk_end <= arg.start) return false; /* no progress: never loop forever */
    arg.start = arg.walk_end;
  }
}

/* Finds the pages a preview's recovery wrote from the kernel's page tables, not
 * from the recovery code: a checker must not trust the recovery it checks to say
 * where it wrote. Where the page tables cannot be read, every page counts. */
static void find_written(mp_pager *p) {
  p->pv_all = true;
  size_t words = (size_t)((p->map_pages + 63) / 64);
  if (words > p->pv_words) {
    uint64_t *w = mp__realloc(p->pv_written, words * 8);
    if (!w) return;
    p->pv_written = w;
    p->pv_words = words;
  }
  memset(p->pv_written, 0, p->pv_words * 8);
  if (p->pagemap < 0) p->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (p->pagemap < 0) return;
  if (!p->no_scan) {
    if (scan_written(p)) {
      p->pv_all = false;
      return;
    }
    p->no_scan = true; /* (an older kernel: read the entries from now on) */
    memset(p->pv_written, 0, p->pv_words * 8);
  }
  size_t sys = p->sys_page;
  uint64_t first = (uintptr_t)p->map / sys, n = (p->map_pages * p->ps + sys - 1) / sys;
  uint64_t entries[512];
  for (uint64_t i = 0; i < n;) {
    size_t k = n - i < 512 ? (size_t)(n - i) : 512;
    if (pread(p->pagemap, entries, k * 8, (off_t)((first + i) * 8)) != (ssize_t)(k * 8)) return;
    for (size_t j = 0; j < k; j++) {
      uint64_t e = entries[j];
      if (!((e & PM_PRESENT && !(e & PM_FILE)) || e & PM_SWAPPED)) continue;
      uint64_t lo = (i + j) * sys / p->ps, hi = ((i + j + 1) * sys + p->ps - 1) / p->ps;
      for (uint64_t pg = lo; pg < hi && pg < p->map_pages; pg++) mp__set(p->pv_written, pg);
    }
    i += k;
  }
  p->pv_all = false;
}

int mp_next_written(const mp_pager *p, uint64_t from, uint64_t *id) {
  if (!p || !id) return MP_EINVAL;
  if (!p->preview_wrote || from >= p->map_pages) return MP_ENOENT;
  if (p->pv_all) {
    *id = from;
    return MP_OK;
  }
  for (uint64_t w = from / 64; w < p->pv_words && w * 64 < p->map_pages; w++) {
    uint64_t bits = p->pv_written[w];
    if (w == from / 64) bits &= ~UINT64_C(0) << (from % 64);
    if (bits) {
      uint64_t found = w * 64 + (uint64_t)__builtin_ctzll(bits);
      if (found >= p->map_pages) break;
      *id = found;
      return MP_OK;
    }
  }
  return MP_ENOENT;
}

/* ---- what a reader's load read ------------------------------------------------
 *
 * A reader's state is a function of the bytes of the pages its load read, and of the
 * file's size. For 0.2: page 0, the two metadata pages and the directory pages page 0
 * names (both copies; recover.c compares them); for 0.3, the pages mp3__basis lists. A
 * crash checker reloads one handle for image after image, most of which differ from the
 * last in data pages alone: those reloads only compare the kept copies. An interrupted
 * append's intent also names pages to read, which the copy would have to follow: a load
 * that found one keeps nothing, nor does one that salvaged page 0 or (0.3) read the
 * superblock from its sector copy, nor a preview (its recovery writes the pages it reads)
 * or a writer. Nor does a handle never reloaded: an open for one look (a fuzzer's, a
 * tool's) pays nothing for the copies. */
static void forget_memo(mp_pager *p) { p->memo_n = 0; }

/* Whether a basis of `n` pages is copied: not for MP_BASIS_WATCHED (ids only), nor past
 * the largest basis a 0.2 reader has at this page size. Every 0.2 basis fits; a 0.3 one
 * grows by two leaf slots a group, and a copy of those for a large file would be as big as
 * its metadata, where a handle keeps 16 bytes a group (FORMAT.md 3.9): such a reader lists
 * its basis and loads again at each reload. */
static bool memo_copies(const mp_pager *p, size_t n) {
  return !p->basis_watched && n <= MP_RESERVED_PAGES + 2 * (size_t)mp__max_refs(p->ps);
}

/* `fixed`: the load read only pages its structure names (see above). */
static void keep_memo(mp_pager *p, bool fixed) {
  forget_memo(p);
  if (!p->rdonly || p->preview || !fixed || !p->reloaded) return;
  size_t n = p->fmt3 ? mp3__basis(p, NULL) : MP_RESERVED_PAGES + 2 * (size_t)p->dir_count;
  if (n > p->memo_ids_cap) {
    uint64_t *ids = mp__realloc(p->memo_ids, n * sizeof *ids);
    if (!ids) return; /* no copy: the next reload loads again */
    p->memo_ids = ids;
    p->memo_ids_cap = n;
  }
  if (memo_copies(p, n) && n * p->ps > p->memo_bytes) {
    uint8_t *pages = mp__realloc(p->memo, n * p->ps);
    if (!pages) return;
    p->memo = pages;
    p->memo_bytes = n * p->ps;
  }
  size_t k = 0;
  if (p->fmt3) {
    k = mp3__basis(p, p->memo_ids);
  } else {
    for (uint64_t id = 0; id < MP_RESERVED_PAGES; id++) p->memo_ids[k++] = id;
    for (uint32_t b = 0; b < p->dir_count; b++) {
      p->memo_ids[k++] = p->blocks[b].page[0];
      p->memo_ids[k++] = p->blocks[b].page[1];
    }
  }
  if (memo_copies(p, k))
    for (size_t i = 0; i < k; i++) memcpy(p->memo + i * p->ps, mp__pg(p, p->memo_ids[i]), p->ps);
  p->memo_n = k;
}

static bool memo_holds(const mp_pager *p) {
  if (!p->memo_n || !memo_copies(p, p->memo_n)) return false; /* (ids only: nothing to compare) */
  for (size_t i = 0; i < p->memo_n; i++)
    if (memcmp(p->memo + i * p->ps, mp__pg(p, p->memo_ids[i]), p->ps) != 0) return false;
  return true;
}

int mp_reload_basis(const mp_pager *p, uint64_t *ids, size_t cap, size_t *n) {
  if (!p || !n || (cap && !ids)) return MP_EINVAL;
  *n = p->memo_n;
  if (!p->memo_n) return MP_ENOENT;
  for (size_t i = 0; i < p->memo_n && i < cap; i++) ids[i] = p->memo_ids[i];
  return MP_OK;
}

/* Derives the state of the handle from the mapping: page 0 as recovery accepts
 * it, the metadata, the directory; then recovery (a writer's or a preview's). */
static int load(mp_pager *p, char *why, size_t whylen) {
  if (p->fmt3) {
    int rc3 = mp3__load(p, why, whylen);
    if (rc3 == MP_OK && p->preview_wrote) find_written(p);
    if (rc3 == MP_OK) keep_memo(p, !p->v3->from_copy);
    return rc3;
  }
  uint8_t *p0 = mp__malloc(p->ps), *raw = NULL;
  if (!p0) return MP_ENOMEM;
  mp_p0_fix fix;
  const char *reason;
  bool fell_back, ours;
  int rc;
  if (mp__salvageable_head(p->map)) {
    /* Page 0 as it stood before or after the write that tore it, then resolved as any
     * page 0 (it may hold an append's intent). */
    if (!(raw = mp__malloc(p->ps))) {
      rc = MP_ENOMEM;
      goto out;
    }
    if ((rc = mp__salvage(p, raw, &ours, why, whylen)) != MP_OK) goto out;
    p->salvaged = true;
  }
  rc = mp__p0_resolve(raw ? raw : p->map, p->ps, p0, &fix, &reason);
  if (rc != MP_OK) {
    snprintf(why, whylen, "%s%s", raw ? "page 0's first sector is unreadable, and the page rebuilt: " : "", reason);
    goto out;
  }
  p->ours = p0[MP_SB_VERSION + 3] == MP_BUILD_MIRRORED;
  if ((rc = load_meta(p, p0, &fell_back, why, whylen)) != MP_OK) goto out;
  if ((rc = mp__words_reserve(p, p->map_pages)) != MP_OK) goto out;
  if ((rc = load_dirs(p, p0, why, whylen)) != MP_OK) goto out;
  if ((rc = mp__recover(p, p0, &fix, fell_back, raw)) != MP_OK) {
    snprintf(why, whylen, "recovery could not write the file");
    goto out;
  }
  /* Past the 0.2 pages: an upgrade that never committed may have left a sector copy, which
   * a garbage page 0 would later bring back as the file (FORMAT.md 3.8). */
  if (!p->rdonly && p->ps < MP3_SECTOR && p->file_size / p->ps > p->total &&
      (rc = mp3__drop_copy(p, p->total)) != MP_OK) {
    snprintf(why, whylen, "could not invalidate the sector copy an interrupted upgrade left");
    goto out;
  }
  if (p->preview_wrote) find_written(p);
  if (rc == MP_OK) keep_memo(p, !fix.intent && !p->salvaged);
out:
  free(raw);
  free(p0);
  return rc;
}

/* Forgets everything load() derived, keeping the descriptor, the mapping and the
 * arrays' memory: the handle holds no pages until the next load. */
static void unload(mp_pager *p) {
  mp3__unload(p);
  for (uint32_t b = 0; b < p->dir_count; b++) free(p->blocks[b].staged);
  if (p->blocks_cap) memset(p->blocks, 0, p->blocks_cap * sizeof *p->blocks);
  p->dir_count = 0;
  if (p->words) {
    memset(p->owned, 0, p->words * 8);
    memset(p->reclaim, 0, p->words * 8);
  }
  p->reclaim_count = p->previewed_reclaim = 0;
  p->total = p->generation = p->free_count = p->hint_word = 0;
  p->active_meta = 0;
  p->meta_ours = 0; /* the next commit trusts nothing of the copies it did not write */
  p->p0_sealed = false;
  p->recovery = 0;
  p->intent_pending = p->poisoned = p->ours = p->salvaged = false;
}

/* Maps an open descriptor and loads it. On failure *why says what is wrong; the
 * descriptor stays the caller's. */
static int attach(int fd, bool rdonly, bool preview, mp_pager **out, char *why, size_t whylen) {
  uint64_t size;
  unsigned log2;
  bool fmt3;
  int rc = probe(fd, NULL, 0, &size, &log2, &fmt3, why, whylen);
  if (rc != MP_OK) return rc;
  mp_pager *p = mp__calloc(1, sizeof *p);
  if (!p) return MP_ENOMEM;
  p->fd = fd;
  p->pagemap = -1;
  p->rdonly = rdonly;
  p->preview = preview;
  p->sys_page = (size_t)sysconf(_SC_PAGESIZE);
  if ((rc = map_file(p, log2, size, fmt3)) == MP_OK && (rc = load(p, why, whylen)) == MP_OK) {
    *out = p;
    return MP_OK;
  }
  p->fd = -1; /* the caller owns the descriptor */
  mp_close(p);
  return rc;
}

/* A preview's private copies are given the file's bytes again, from the shared view, and
 * stay private: dropping them (madvise) and having recovery copy the same few pages again
 * (a copy-on-write fault each) cost a crash checker more than its checks. The page tables
 * then keep listing them as written (mp_next_written), which they are: copies of their own,
 * holding the file's bytes as of this reload where this recovery does not write. When the
 * page tables could not tell which pages are copies, all of them are dropped (the mapping,
 * if even that fails). */
static void refresh_private(mp_pager *p) {
  if (!p->preview_wrote || !p->map) return;
  const uint64_t sys = p->sys_page, bytes = p->map_pages * p->ps;
  if (p->pv_all) {
    p->preview_wrote = false;
    if (madvise(p->map, bytes, MADV_DONTNEED) != 0) unmap_file(p);
    return;
  }
  for (uint64_t id = 0; id < p->map_pages;) {
    if (id % 64 == 0 && id / 64 < p->pv_words && !p->pv_written[id / 64]) {
      id += 64;
      continue;
    }
    if (!mp__bit(p->pv_written, id)) {
      id++;
      continue;
    }
    uint64_t end = id + 1;
    while (end < p->map_pages && mp__bit(p->pv_written, end)) end++;
    /* whole system pages: a copy is of one (pager pages may be smaller) */
    uint64_t lo = id * p->ps / sys * sys, hi = (end * p->ps + sys - 1) / sys * sys;
    if (hi > bytes) hi = bytes;
    memcpy(p->map + lo, p->view + lo, hi - lo);
    id = end;
  }
}

static int reload(mp_pager *p, bool *same, char *why, size_t whylen) {
  *same = false;
  p->reloaded = true;
  uint64_t size;
  unsigned log2;
  bool fmt3;
  /* (a preview's head is read from its view: its own page 0 may be a private copy) */
  const uint8_t *head = p->preview ? p->view : p->map;
  int rc = probe(p->fd, head, head ? p->ps : 0, &size, &log2, &fmt3, why, whylen);
  bool same_map = rc == MP_OK && p->map && log2 == p->log2 && size == p->file_size && fmt3 == p->fmt3;
  if (p->preview && same_map) {
    refresh_private(p);
    same_map = p->map != NULL;
  }
  if (same_map && memo_holds(p)) {
    *same = true; /* nothing the state was derived from changed: it stands */
    return MP_OK;
  }
  forget_memo(p);
  unload(p);
  if (same_map) {
    rc = load(p, why, whylen); /* same geometry: the mapping stays as it is */
  } else if (rc == MP_OK) {
    unmap_file(p);
    if ((rc = map_file(p, log2, size, fmt3)) == MP_OK) rc = load(p, why, whylen);
  }
  if (rc != MP_OK) {
    /* An empty handle without a mapping, which a later reload can fill. */
    unload(p);
    unmap_file(p);
  }
  return rc;
}

static const char leftover_why[] =
    "the file is the leftover of an interrupted create: nothing else was ever written to it";

int mp_reload(mp_pager *p, char *why, size_t whylen) { return mp_reload_same(p, NULL, why, whylen); }

int mp_reload_same(mp_pager *p, bool *same, char *why, size_t whylen) {
  char reason[256] = "";
  bool unchanged = false;
  if (same) *same = false;
  if (!p || !p->rdonly) return MP_EINVAL;
  int rc = reload(p, &unchanged, reason, sizeof reason);
  if (same) *same = rc == MP_OK && unchanged;
  struct stat st;
  if ((rc == MP_ECORRUPT || rc == MP_EVERSION) && fstat(p->fd, &st) == 0 && is_leftover(p->fd, (uint64_t)st.st_size)) {
    rc = MP_EINCOMPLETE; /* as mp_open says it */
    snprintf(reason, sizeof reason, "%s", leftover_why);
  }
  if (rc != MP_OK && why && whylen) snprintf(why, whylen, "%s", reason[0] ? reason : mp_strerror(rc));
  return rc;
}

/* ---- creating ----------------------------------------------------------- */

static bool valid_page_size(size_t ps) {
  return ps >= MP_MIN_PAGE_SIZE && ps <= MP_MAX_PAGE_SIZE && (ps & (ps - 1)) == 0;
}

/* True if every byte of the file is either zero or what mp_create writes there: the
 * leftover of a create that a power cut interrupted, which holds nothing of anyone's
 * and may be replaced. Create sets the size to four pages in one call, so the size
 * (0 or 4 pages) names the page size to compare with (a 0.3 create's: six blocks, open3.c). */
static bool is_leftover(int fd, uint64_t size) {
  if (size == 0 || mp3__is_leftover(fd, size)) return true;
  uint64_t ps = size / 4;
  if (size % 4 || !valid_page_size((size_t)ps)) return false;
  uint8_t *buf = malloc(size), *img = calloc(4, ps);
  bool match = buf && img && pread(fd, buf, size, 0) == (ssize_t)size;
  if (match) {
    unsigned log2 = (unsigned)__builtin_ctzll(ps);
    mp__sb_init(img, log2);
    mp__meta_init(img + ps, ps, 4);
    mp__meta_init(img + 2 * ps, ps, 4);
    match = mp__leftover_mismatch(buf, img, 0, size) == size;
  }
  free(buf);
  free(img);
  return match;
}

static int sync_parent_dir(const char *path) {
  char *copy = strdup(path);
  if (!copy) return MP_ENOMEM;
  int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(copy);
  if (dfd < 0) return mp__errno_to_code(errno);
  int rc = fsync(dfd) == 0 ? MP_OK : MP_EIO;
  close(dfd);
  return rc;
}

/* Writes a new file on an empty (or emptied) descriptor. The metadata pages are
 * durable before the superblock is written, so an interrupted create leaves
 * nothing that is_leftover() would not recognise. So is page 0's section checksum
 * (its last sector): written with the superblock (its first sector), a cut could
 * land the superblock alone, a file that opens with a stale checksum (layout.h
 * says why the first append needs it right); written with the metadata, a cut
 * leaves a checksum without a superblock, a leftover. */
static int format(int fd, unsigned log2) {
  size_t ps = (size_t)1 << log2;
  mp_pager tmp = {.fd = fd, .ps = ps, .sys_page = (size_t)sysconf(_SC_PAGESIZE)};
  int rc = mp__sys_extend(&tmp, 4 * (uint64_t)ps);
  if (rc != MP_OK) return rc;
  tmp.map = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (tmp.map == MAP_FAILED) return MP_ENOMEM;
  tmp.map_pages = 4;
  mp__meta_init(tmp.map + ps, ps, 4);
  mp__meta_init(tmp.map + 2 * ps, ps, 4);
  mp__put32(tmp.map + ps - 4, mp__section_crc(tmp.map, ps)); /* of the empty section: page 0 is zero */
  rc = mp__sys_msync(&tmp, 0, 3);
  if (rc == MP_OK) {
    mp__sb_init(tmp.map, log2);
    rc = mp__sys_msync(&tmp, 0, 1);
  }
  munmap(tmp.map, 4 * ps);
  return rc;
}

/* Takes the lock a writer or reader needs; MP_EBUSY if someone else has it. */
static int lock(int fd, bool rdonly) {
  while (flock(fd, (rdonly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK ? MP_EBUSY : mp__errno_to_code(errno);
  }
  return MP_OK;
}

static int create_at(const char *path, size_t ps, unsigned flags, mp_pager **out) {
  unsigned log2 = (unsigned)__builtin_ctzll(ps);
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644), rc;
  if (fd < 0 && errno == EEXIST) {
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return mp__errno_to_code(errno);
    struct stat st;
    char why[256];
    mp_pager *existing = NULL;
    if ((rc = lock(fd, false)) != MP_OK || (rc = fstat(fd, &st) != 0 ? MP_EIO : MP_OK) != MP_OK) goto fail;
    rc = attach(fd, true, false, &existing, why, sizeof why);
    if (rc == MP_OK) {
      existing->fd = -1;
      mp_close(existing);
    }
    if (rc == MP_OK || !S_ISREG(st.st_mode) || !is_leftover(fd, (uint64_t)st.st_size)) {
      rc = MP_EEXIST;
      goto fail;
    }
    /* Empty it durably first, so that a cut while rewriting it at another page
     * size cannot mix two layouts. */
    if (ftruncate(fd, 0) != 0 || fsync(fd) != 0) {
      rc = mp__errno_to_code(errno);
      goto fail;
    }
  } else if (fd < 0) {
    return mp__errno_to_code(errno);
  } else if ((rc = lock(fd, false)) != MP_OK) {
    goto fail;
  }
  char why[256];
  rc = flags & MP_FORMAT_3 ? mp3__format(fd, log2, flags & MP_SPARSE) : format(fd, log2);
  if (rc != MP_OK || (rc = sync_parent_dir(path)) != MP_OK ||
      (rc = attach(fd, false, false, out, why, sizeof why)) != MP_OK) {
    /* The file is ours (created with O_EXCL, or an emptied leftover, and locked):
     * a failed create must not leave a file that later creates refuse. */
    unlink(path);
    goto fail;
  }
  return MP_OK;
fail:
  close(fd);
  return rc;
}

int mp_create(const char *path, size_t page_size, mp_pager **out) { return mp_create_flags(path, page_size, 0, out); }

int mp_create_flags(const char *path, size_t page_size, unsigned flags, mp_pager **out) {
  if (!path || !out || !valid_page_size(page_size) || (flags & ~(MP_FORMAT_3 | MP_SPARSE))) return MP_EINVAL;
  *out = NULL;
  int rc = create_at(path, page_size, flags, out);
  if (rc == MP_OK && flags & MP_SPARSE) (*out)->sparse = true;
  return rc;
}

static int open_file(const char *path, unsigned flags, mp_pager **out, char *why, size_t whylen);

int mp_open(const char *path, unsigned flags, mp_pager **out) { return mp_open_explain(path, flags, out, NULL, 0); }

int mp_open_explain(const char *path, unsigned flags, mp_pager **out, char *user_why, size_t user_whylen) {
  char why[256] = "";
  int rc = open_file(path, flags, out, why, sizeof why);
  if (rc == MP_OK && flags & MP_SPARSE) (*out)->sparse = true; /* (a 0.3 file's superblock may say so too) */
  if (rc == MP_OK && flags & MP_FORMAT_3) (*out)->upgrade = true;
  if (rc != MP_OK && user_why && user_whylen) snprintf(user_why, user_whylen, "%s", why[0] ? why : mp_strerror(rc));
  return rc;
}

static int open_file(const char *path, unsigned flags, mp_pager **out, char *why, size_t whylen) {
  if (!path || !out || (flags & ~(MP_RDONLY | MP_CREATE | MP_PREVIEW | MP_SPARSE | MP_FORMAT_3 | MP_BASIS_WATCHED)) ||
      (flags & (MP_RDONLY | MP_PREVIEW) && flags & (MP_CREATE | MP_SPARSE | MP_FORMAT_3)) ||
      (flags & MP_BASIS_WATCHED && (flags & (MP_RDONLY | MP_PREVIEW)) != MP_RDONLY))
    return MP_EINVAL;
  const unsigned create_flags = flags & (MP_FORMAT_3 | MP_SPARSE);
  *out = NULL;
  bool preview = flags & MP_PREVIEW, rdonly = (flags & MP_RDONLY) || preview;
  int fd = open(path, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && (flags & MP_CREATE)) return create_at(path, MP_DEFAULT_PAGE_SIZE, create_flags, out);
    return mp__errno_to_code(errno);
  }
  int rc = lock(fd, rdonly);
  if (rc == MP_OK) rc = attach(fd, rdonly, preview, out, why, whylen);
  if (rc == MP_OK) {
    (*out)->basis_watched = flags & MP_BASIS_WATCHED;
    return MP_OK;
  }
  if (rc == MP_ECORRUPT || rc == MP_EVERSION) {
    struct stat st;
    if (fstat(fd, &st) == 0 && is_leftover(fd, (uint64_t)st.st_size)) {
      close(fd);
      if (flags & MP_CREATE) return create_at(path, MP_DEFAULT_PAGE_SIZE, create_flags, out);
      snprintf(why, whylen, "%s", leftover_why);
      return MP_EINCOMPLETE;
    }
  }
  close(fd);
  return rc;
}

int mp_close(mp_pager *p) {
  if (!p) return MP_OK;
  mp3__unload(p);
  unmap_file(p); /* (a mapping holds the file, and with it the lock, until it is gone) */
  for (uint32_t b = 0; b < p->dir_count; b++) free(p->blocks[b].staged);
  free(p->blocks);
  free(p->owned);
  free(p->reclaim);
  free(p->pv_written);
  free(p->memo_ids);
  free(p->memo);
  mp__crc32_patch_free(&p->meta_patch);
  mp__crc32_patch_free(&p->p0_patch);
  if (p->pagemap >= 0) close(p->pagemap);
  int rc = p->fd >= 0 && close(p->fd) != 0 ? MP_EIO : MP_OK;
  free(p);
  return rc;
}

size_t mp_page_size(const mp_pager *p) { return p ? p->ps : 0; }
uint64_t mp_page_count(const mp_pager *p) { return p ? p->total : 0; }
/* Pages awaiting reclaim are free to the caller: nothing owns them, and the next
 * commit (or a writer's open) frees them in the bitmap. */
uint64_t mp_free_count(const mp_pager *p) { return p ? p->free_count + p->reclaim_count : 0; }
uint64_t mp_capacity(const mp_pager *p) { return p ? p->capacity : 0; }
uint64_t mp_leaked_count(const mp_pager *p) { return p ? (p->preview ? p->previewed_reclaim : p->reclaim_count) : 0; }
