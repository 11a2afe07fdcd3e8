/* check3.c: mp_check of a 0.3 file: every rule of FORMAT.md 3.3-3.5 and 3.9 re-derived from
 * the bytes in the mapping, and the handle's state compared with them, one sentence a finding. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crc32.h"
#include "internal.h"

typedef struct check3 {
  mp_report_fn report;
  void *arg;
  unsigned count;
} check3;

__attribute__((format(printf, 2, 3))) static void found(check3 *c, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->count++;
  if (c->report) c->report(c->arg, msg);
}

/* Whether page id is allocated in the slot `cur` of its group, from the bytes (not memory). */
static bool bit_in(const mp_pager *p, const unsigned *cur, uint64_t id) {
  uint64_t k = id / p->v3->c, i = id % p->v3->c;
  return mp3__slot(p, k, cur[k])[MP3_LEAF_BITMAP + i / 8] >> (i % 8) & 1;
}

/* A block that a reference or entry names: whole, inside the file, no metadata block, allocated;
 * its pages are appended to `pages` (room for them made by the caller). */
static void claim(const mp_pager *p, check3 *c, const unsigned *cur, uint64_t total, uint64_t first, const char *kind,
                  uint64_t num, uint64_t *pages, size_t *n) {
  const uint64_t m = p->v3->m;
  if (first % m || first >= total || total - first < m || mp3__meta_page(p, first)) {
    found(c, "%s %llu names page %llu, which is not a whole data block inside the file", kind, (unsigned long long)num,
          (unsigned long long)first);
    return;
  }
  for (uint64_t id = first; id < first + m; id++) {
    if (!bit_in(p, cur, id))
      found(c, "%s %llu names page %llu, which its leaf says is free", kind, (unsigned long long)num,
            (unsigned long long)id);
    pages[(*n)++] = id;
  }
}

/* The directory blocks of the root and their entries, as open reads them, and the handle's. */
static int check_dirs(mp_pager *p, check3 *c, const uint8_t *root, uint32_t dc, uint64_t total, const unsigned *cur,
                      bool content) {
  const mp3_state *s = p->v3;
  uint64_t *pages = mp__malloc(((size_t)dc * (2 + 2 * p->dir_cap) * s->m + 1) * sizeof *pages);
  if (!pages) return MP_ENOMEM;
  size_t n = 0;
  if (dc != p->dir_count) found(c, "%u directory blocks in the file, %u in memory", dc, p->dir_count);
  for (uint32_t b = 0; b < dc; b++) {
    const uint8_t *ref = mp3__root_ref(root, b);
    uint64_t pg[2] = {mp__get64(ref), mp__get64(ref + 8)};
    unsigned active = ref[MP_REF_ACTIVE];
    size_t before = n;
    for (int k = 0; k < 2; k++) claim(p, c, cur, total, pg[k], "directory reference", b, pages, &n);
    if (n - before != 2 * s->m) continue;
    const uint8_t *dir = mp__pg(p, pg[active]);
    if (!mp__dir_valid(dir, p->ps)) {
      found(c, "directory page %llu (block %u, current copy) is damaged", (unsigned long long)pg[active], b);
      continue;
    }
    uint32_t used = 0;
    for (uint32_t e = 0; e < p->dir_cap; e++) {
      if (!mp__entry_used(dir, e)) continue;
      mp_entry ent;
      mp__entry_decode(mp__entry_at_c(dir, e), &ent);
      used++;
      uint64_t id = (uint64_t)b * p->dir_cap + e;
      size_t at = n;
      for (int k = 0; k < 2; k++) claim(p, c, cur, total, ent.page[k], "protected page", id, pages, &n);
      if (n - at == 2 * s->m && ent.page[0] != ent.page[1] && content &&
          mp__crc32(0, mp__pg(p, ent.page[ent.slot]), p->ps) != ent.crc)
        found(c, "protected page %llu: its current copy (page %llu) does not match the checksum in its entry",
              (unsigned long long)id, (unsigned long long)ent.page[ent.slot]);
    }
    if (b < p->dir_count && (p->blocks[b].page[0] != pg[0] || p->blocks[b].page[1] != pg[1] ||
                             p->blocks[b].active != active || p->blocks[b].used != used))
      found(c, "directory block %u in memory differs from the file", b);
  }
  mp__sort_u64(pages, n);
  for (size_t i = 1; i < n; i++)
    if (pages[i] == pages[i - 1]) found(c, "page %llu is used twice", (unsigned long long)pages[i]);
  if (n != s->owned_n || (n && memcmp(pages, s->owned, n * sizeof *pages)))
    found(c, "the pages owned by directory blocks and protected pages in memory differ from the file's");
  free(pages);
  return MP_OK;
}

int mp3__check(mp_pager *p, unsigned flags, mp_report_fn report, void *arg, unsigned *findings) {
  check3 c = {.report = report, .arg = arg};
  const mp3_state *s = p->v3;
  const size_t ps = p->ps;
  char why[256];
  mp3_sb sb;
  /* (a reader whose head is garbage read the superblock from its copy, 3.8) */
  const uint8_t *head = s->from_copy && p->rdonly && !p->preview ? mp__pg(p, s->sb.copy) + MP3_COPY_SB : p->map;
  if (mp3__sb_decode(head, s->from_copy ? MP3_SB_LEN : p->map_pages * ps, &sb, why, sizeof why) != MP_OK) {
    found(&c, "superblock: %s", why);
    goto out;
  }
  if (memcmp(&sb.root, &s->sb.root, sizeof sb.root) || memcmp(&sb.leaf0, &s->sb.leaf0, sizeof sb.leaf0) ||
      sb.copy != s->sb.copy || sb.log2 != p->log2 || sb.flags != s->sb.flags)
    found(&c, "the superblock changed under the open pager");

  /* A reader's file is as long as its open found it; a writer's is asked. */
  struct stat st;
  uint64_t file_pages = p->rdonly ? p->file_size / ps : fstat(p->fd, &st) == 0 ? (uint64_t)st.st_size / ps : p->map_pages;
  if (file_pages > p->map_pages) file_pages = p->map_pages;

  mp3_root root[2];
  bool ok[2];
  char reason[2][160];
  for (unsigned i = 0; i < 2; i++)
    ok[i] = mp3__root_decode(mp__pg(p, s->sb.root[i]), p->log2, i, &root[i], reason[i], 160) == MP_OK;
  if (!ok[0] && !ok[1]) {
    found(&c, "no valid root: %s; %s", reason[0], reason[1]);
    goto out;
  }
  const mp3_root *r = &root[!ok[0] || (ok[1] && root[1].generation > root[0].generation)];
  if (r->generation != p->generation || r->total != p->total || r->free_count != p->free_count)
    found(&c, "the root in memory (generation %llu, %llu pages, %llu free) differs from the file's (generation %llu, "
              "%llu pages, %llu free)",
          (unsigned long long)p->generation, (unsigned long long)p->total, (unsigned long long)p->free_count,
          (unsigned long long)r->generation, (unsigned long long)r->total, (unsigned long long)r->free_count);
  if (r->total > file_pages) {
    found(&c, "the root claims %llu pages but the file holds %llu", (unsigned long long)r->total,
          (unsigned long long)file_pages);
    goto out;
  }
  if (r->total != p->total) goto out; /* the groups below are the handle's */

  uint64_t groups = (r->total + s->c - 1) / s->c, free_sum = 0;
  unsigned *cur = mp__calloc(groups ? groups : 1, sizeof *cur);
  if (!cur) return MP_ENOMEM;
  bool leaves_ok = true;
  for (uint64_t k = 0; k < groups; k++) {
    if (k && r->total - k * s->c < 2 * s->m) {
      found(&c, "group %llu's leaf slots lie past the file's %llu pages", (unsigned long long)k,
            (unsigned long long)r->total);
      leaves_ok = false;
      break;
    }
    const uint8_t *slot[2] = {mp3__slot(p, k, 0), mp3__slot(p, k, 1)};
    unsigned stale;
    mp3_leaf leaf;
    if (mp3__leaf_current(slot, ps, (uint32_t)k, r->generation, &cur[k], &stale, why, sizeof why) != MP_OK ||
        mp3__leaf_decode(slot[cur[k]], ps, (uint32_t)k, mp3__group_size(p, k), &leaf, why, sizeof why) != MP_OK) {
      found(&c, "%s", why);
      leaves_ok = false;
      continue;
    }
    free_sum += leaf.free_count;
    /* A writer's open invalidated every stale slot, and its failed commits invalidate theirs. */
    for (unsigned i = 0; i < 2; i++)
      if (stale >> i & 1 && !p->rdonly)
        found(&c, "group %llu: leaf slot %c holds generation %llu, above the root's %llu, in a writer's file",
              (unsigned long long)k, 'A' + i, (unsigned long long)mp__get64(slot[i] + MP3_LEAF_GEN),
              (unsigned long long)r->generation);
    if (cur[k] != s->group[k].cur || leaf.free_count != s->group[k].free)
      found(&c, "group %llu in memory (slot %c, %u free) differs from the file (slot %c, %u free)",
            (unsigned long long)k, 'A' + s->group[k].cur, s->group[k].free, 'A' + cur[k], leaf.free_count);
    if ((s->group[k].free != 0) != mp__bit(s->has_free, k))
      found(&c, "group %llu: the in-memory summary of groups with free pages is wrong", (unsigned long long)k);
  }
  if (leaves_ok) {
    if (free_sum != r->free_count)
      found(&c, "the root counts %llu free pages, the leaves %llu", (unsigned long long)r->free_count,
            (unsigned long long)free_sum);
    /* Every metadata block allocated in its group's leaf. */
    const uint64_t named[6] = {0, s->sb.root[0], s->sb.root[1], s->sb.leaf0[0], s->sb.leaf0[1], s->sb.copy};
    for (int i = 0; i < (s->sb.copy ? 6 : 5); i++) {
      if (named[i] + s->m > r->total) {
        found(&c, "the superblock names page %llu, past the file's %llu pages", (unsigned long long)named[i],
              (unsigned long long)r->total);
        continue;
      }
      for (uint64_t id = named[i]; id < named[i] + s->m; id++)
        if (!bit_in(p, cur, id) && mp3__meta_page(p, id)) /* (page 3 of an upgrade at 1 KiB: data) */
          found(&c, "metadata page %llu is free in its leaf", (unsigned long long)id);
    }
    if (s->sb.copy && s->sb.copy + s->m <= r->total && !mp3__copy_valid(mp__pg(p, s->sb.copy), p->log2, s->sb.copy))
      found(&c, "the sector copy at page %llu is damaged", (unsigned long long)s->sb.copy);
    for (uint64_t k = 1; k < groups; k++)
      for (uint64_t id = k * s->c; id < k * s->c + 2 * s->m; id++)
        if (!bit_in(p, cur, id))
          found(&c, "group %llu: its leaf slots' page %llu is free in its leaf", (unsigned long long)k,
                (unsigned long long)id);
    if (check_dirs(p, &c, mp__pg(p, s->sb.root[r->slot]), r->dir_count, r->total, cur,
                   !(flags & MP_CHECK_NO_CONTENT)) != MP_OK) {
      free(cur);
      return MP_ENOMEM;
    }
  }
  free(cur);
out:
  if (findings) *findings = c.count;
  return MP_OK;
}
