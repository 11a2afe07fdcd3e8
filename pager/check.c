/* check.c: mp_check, a full consistency check of an open file: every structural rule
 * of the format re-derived from the bytes in the mapping, and the in-memory state
 * compared with them. Each finding is reported as one sentence. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crc32.h"
#include "internal.h"

typedef struct checker {
  mp_pager *p;
  mp_report_fn report;
  void *arg;
  unsigned count;
  uint64_t *seen; /* pages some structure claims */
  bool content;   /* read protected pages to verify their checksums */
} checker;

__attribute__((format(printf, 2, 3))) static void found(checker *c, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->count++;
  if (c->report) c->report(c->arg, msg);
}

/* A page a structure (`kind` number `num`, named only in findings) refers to:
 * inside the file, allocated, claimed once. */
static bool claim(checker *c, uint64_t id, const char *kind, uint64_t num, uint64_t total, const uint8_t *bitmap) {
  if (id < MP_RESERVED_PAGES || id >= total) {
    found(c, "%s %llu refers to page %llu, outside the usable pages 3 .. %llu", kind, (unsigned long long)num,
          (unsigned long long)id, (unsigned long long)total - 1);
    return false;
  }
  if (!(bitmap[id >> 3] >> (id & 7) & 1))
    found(c, "%s %llu refers to page %llu, which the bitmap says is free", kind, (unsigned long long)num,
          (unsigned long long)id);
  if (mp__bit(c->seen, id)) {
    found(c, "page %llu is used twice (again by %s %llu)", (unsigned long long)id, kind, (unsigned long long)num);
    return false;
  }
  mp__set(c->seen, id);
  return true;
}

static void check_block(checker *c, uint32_t b, const uint8_t *ref, uint64_t total, const uint8_t *bitmap) {
  mp_pager *p = c->p;
  uint64_t pages[2] = {mp__get64(ref), mp__get64(ref + 8)};
  uint8_t active = ref[MP_REF_ACTIVE];
  const char *dref = "directory reference";
  bool ok_a = claim(c, pages[0], dref, b, total, bitmap), ok_b = claim(c, pages[1], dref, b, total, bitmap); /* both */
  bool ok = ok_a && ok_b;
  if (active > 1) {
    found(c, "directory reference %u has selector %u (must be 0 or 1)", b, active);
    return;
  }
  if (!ok) return;
  const uint8_t *cur = mp__pg(p, pages[active]);
  if (!mp__page_crc_ok(cur, p->ps)) {
    found(c, "directory page %llu (block %u, current copy) fails its checksum", (unsigned long long)pages[active], b);
    return;
  }
  if (mp__get32(cur + MP_DIR_CAPACITY) != p->dir_cap)
    found(c, "directory page %llu has capacity %u, expected %u", (unsigned long long)pages[active],
          mp__get32(cur + MP_DIR_CAPACITY), p->dir_cap);
  uint32_t used = 0;
  for (uint32_t e = 0; e < p->dir_cap; e++) {
    if (!mp__entry_used(cur, e)) continue;
    mp_entry ent;
    mp__entry_decode(mp__entry_at_c(cur, e), &ent);
    used++;
    uint64_t id = (uint64_t)b * p->dir_cap + e;
    bool first = claim(c, ent.page[0], "protected page", id, total, bitmap);
    bool second = claim(c, ent.page[1], "protected page", id, total, bitmap);
    bool both = first && second;
    if (both && c->content && mp__crc32(0, mp__pg(p, ent.page[ent.slot]), p->ps) != ent.crc)
      found(c, "protected page %llu: its current copy (page %llu) does not match the checksum in its entry",
            (unsigned long long)id, (unsigned long long)ent.page[ent.slot]);
  }
  if (b < p->dir_count && (p->blocks[b].used != used || p->blocks[b].page[0] != pages[0] ||
                           p->blocks[b].page[1] != pages[1] || p->blocks[b].active != active))
    found(c, "directory block %u in memory differs from the file", b);
}

int mp_check(mp_pager *p, mp_report_fn report, void *arg, unsigned *findings) {
  return mp_check_flags(p, 0, report, arg, findings);
}

int mp_check_flags(mp_pager *p, unsigned flags, mp_report_fn report, void *arg, unsigned *findings) {
  if (!p || !p->map || (flags & ~MP_CHECK_NO_CONTENT)) return MP_EINVAL; /* (no map: a failed mp_reload) */
  if (p->fmt3) return mp3__check(p, flags, report, arg, findings);
  checker c = {.p = p, .report = report, .arg = arg, .content = !(flags & MP_CHECK_NO_CONTENT)};
  c.seen = mp__calloc(p->words ? p->words : 1, 8);
  if (!c.seen) return MP_ENOMEM;
  size_t ps = p->ps;
  const uint8_t *p0 = p->map;
  /* A garbage first sector that salvage rebuilds is not a finding, as a torn page 0 that
   * resolution explains is not (a reader's handle leaves the file as it found it): the
   * rebuilt page is checked in its place. */
  uint8_t *salvaged = NULL;
  if (mp__salvageable_head(p0)) {
    char swhy[256];
    bool ours;
    if (!(salvaged = mp__malloc(ps))) {
      free(c.seen);
      return MP_ENOMEM;
    }
    if (mp__salvage(p, salvaged, &ours, swhy, sizeof swhy) == MP_OK) {
      p0 = salvaged;
    } else {
      found(&c, "page 0: %s", swhy);
      free(salvaged);
      salvaged = NULL;
    }
  }

  unsigned log2;
  const char *why;
  if (mp__sb_check(p0, ps, &log2, &why) != MP_OK) found(&c, "superblock: %s", why);
  else if (log2 != p->log2) found(&c, "superblock page size changed under the open pager");

  /* Metadata: the copy page 0 selects must be whole and agree with memory. */
  unsigned sel = p0[MP_SB_ACTIVE_META] & 1;
  const uint8_t *meta = mp__pg(p, 1 + sel);
  /* A read-only handle's file is as long as its last open or reload found it (a crash
   * checker's reload per state saves the system call); a writer's is asked. */
  struct stat st;
  uint64_t file_pages = p->rdonly ? p->file_size / ps
                        : fstat(p->fd, &st) == 0 ? (uint64_t)st.st_size / ps
                                                 : p->map_pages;
  if (file_pages > p->map_pages) file_pages = p->map_pages;
  mp_meta_hdr h;
  char reason[160];
  bool meta_ok = mp__meta_valid(meta, ps, file_pages, &h, reason, sizeof reason);
  if (!meta_ok) {
    found(&c, "metadata %c (selected by page 0): %s%s", 'A' + sel, reason,
          sel != p->active_meta ? "; the pager uses the other copy, the generation before it" : "");
  } else {
    if (sel != p->active_meta || h.total != p->total || h.generation != p->generation ||
        h.free_count != p->free_count)
      found(&c, "metadata in memory (generation %llu, %llu pages, %llu free) differs from the file "
                "(generation %llu, %llu pages, %llu free)",
            (unsigned long long)p->generation, (unsigned long long)p->total, (unsigned long long)p->free_count,
            (unsigned long long)h.generation, (unsigned long long)h.total, (unsigned long long)h.free_count);
  }

  /* Directory: resolved as open resolves it (a torn but recoverable page 0 is not
   * a finding, a stale checksum is), every reference and entry claimed once. */
  uint8_t *fixed = mp__malloc(ps);
  mp_p0_fix fix;
  if (!fixed) {
    free(c.seen);
    return MP_ENOMEM;
  }
  int resolved = mp__p0_resolve(p0, ps, fixed, &fix, &why);
  if (resolved != MP_OK) {
    found(&c, "page 0: %s", why);
  } else if (fix.how == MP_P0_RESEAL) {
    /* No torn write of this library's explains it, and the first append relies on
     * it (see layout.h): wrong data in the file, which a writer's open rewrites. */
    found(&c, "page 0: the directory-reference section fails its checksum (0 directory blocks; a writer's open "
              "rewrites it)");
  }
  if (resolved == MP_OK && meta_ok) {
    uint32_t dc = mp__get32(fixed + MP_SB_DIR_COUNT);
    if (dc != p->dir_count) found(&c, "%u directory blocks in the file, %u in memory", dc, p->dir_count);
    for (uint32_t b = 0; b < dc; b++)
      check_block(&c, b, fixed + MP_SB_REFS + (size_t)MP_REF_SIZE * b, h.total, meta + MP_META_BITMAP);
    /* A word at a time: only a word that differs is looked at bit by bit. */
    uint64_t end = h.total < (uint64_t)p->words * 64 ? h.total : (uint64_t)p->words * 64;
    for (uint64_t id = MP_RESERVED_PAGES; id < end; id++) {
      if (id % 64 == 0 && id + 64 <= end && c.seen[id / 64] == p->owned[id / 64]) {
        id += 63;
        continue;
      }
      if (mp__bit(c.seen, id) != mp__bit(p->owned, id)) {
        found(&c, "page %llu is %s in memory but %s in the file", (unsigned long long)id,
              mp__bit(p->owned, id) ? "owned by a protected structure" : "a regular page",
              mp__bit(c.seen, id) ? "owned by one" : "not");
        break;
      }
    }
  }
  free(fixed);
  free(salvaged);
  free(c.seen);
  if (findings) *findings = c.count;
  return MP_OK;
}
