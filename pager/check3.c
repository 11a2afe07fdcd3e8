/* check3.c: mp_check of a 0.3 file: every rule of FORMAT.md 3.3-3.5 and 3.9 re-derived from
 * the bytes in the mapping, and the handle's state compared with them, one sentence a finding. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int mp3__check(mp_pager *p, unsigned flags, mp_report_fn report, void *arg, unsigned *findings) {
  (void)flags; /* no protected pages yet: nothing whose content to read */
  check3 c = {.report = report, .arg = arg};
  const mp3_state *s = p->v3;
  const size_t ps = p->ps;
  char why[256];
  mp3_sb sb;
  if (mp3__sb_decode(p->map, p->map_pages * ps, &sb, why, sizeof why) != MP_OK) {
    found(&c, "superblock: %s", why);
    goto out;
  }
  if (memcmp(&sb.root, &s->sb.root, sizeof sb.root) || memcmp(&sb.leaf0, &s->sb.leaf0, sizeof sb.leaf0) ||
      sb.log2 != p->log2 || sb.flags != s->sb.flags)
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
    const uint64_t named[5] = {0, s->sb.root[0], s->sb.root[1], s->sb.leaf0[0], s->sb.leaf0[1]};
    for (int i = 0; i < 5; i++) {
      if (named[i] + s->m > r->total) {
        found(&c, "the superblock names page %llu, past the file's %llu pages", (unsigned long long)named[i],
              (unsigned long long)r->total);
        continue;
      }
      for (uint64_t id = named[i]; id < named[i] + s->m; id++)
        if (!bit_in(p, cur, id)) found(&c, "metadata page %llu is free in its leaf", (unsigned long long)id);
    }
    for (uint64_t k = 1; k < groups; k++)
      for (uint64_t id = k * s->c; id < k * s->c + 2 * s->m; id++)
        if (!bit_in(p, cur, id))
          found(&c, "group %llu: its leaf slots' page %llu is free in its leaf", (unsigned long long)k,
                (unsigned long long)id);
  }
  free(cur);
out:
  if (findings) *findings = c.count;
  return MP_OK;
}
