/* open3.c: creating and loading a 0.3 file (FORMAT.md 3.5, 3.9): the create protocol, the
 * recognition of its leftover, and the loader that reads the metadata once and trusts none of it.
 *
 * What open takes from where, and why each rule:
 *
 * - The superblock sector is written at create and never again, so it is either whole or the
 *   file is not one this library wrote (a create cut before it lands leaves no tag: a leftover).
 *
 * - Of the two roots, the valid one with the higher generation is the state. A root is written
 *   into the slot its generation names, never the slot of the root before it, so a torn root
 *   write fails its checksum and the other slot holds the state before that commit.
 *
 * - A group's current leaf slot follows from the root's generation G alone (format3.c): the
 *   valid slot with the highest generation at most G. A slot above G is a stage whose root never
 *   landed. A writer zeroes its magic and syncs that before anything else, because the next
 *   commit is generation G + 1 too and would otherwise make it current if it left that group
 *   alone. A reader ignores it, and says through mp_recovery that a writer would clean it.
 *
 * - Every count is recomputed from the bitmaps it summarises (each leaf's free count, and their
 *   sum against the root's), and every metadata block must be allocated in its group's leaf: an
 *   allocation that handed one out would overwrite the structures the next open reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

bool mp3__allocated(const mp_pager *p, uint64_t id) {
  if (id >= p->total) return false;
  uint64_t k = id / p->v3->c, i = id % p->v3->c;
  return mp3__bitmap(p, k)[i / 8] >> (i % 8) & 1;
}

/* The metadata blocks of group 0 that the superblock names, and block 0, in pages. */
static bool in_block(const mp_pager *p, uint64_t id, uint64_t first) { return id >= first && id - first < p->v3->m; }

bool mp3__meta_page(const mp_pager *p, uint64_t id) {
  const mp3_state *s = p->v3;
  if (id < s->m) return !(id == 3 && s->sb.flags & MP3_SB_PAGE3);
  for (int i = 0; i < 2; i++)
    if (in_block(p, id, s->sb.root[i]) || in_block(p, id, s->sb.leaf0[i])) return true;
  if (s->sb.copy && in_block(p, id, s->sb.copy)) return true;
  return id >= s->c && id % s->c < 2 * s->m;
}

/* The bits of pages [lo, hi) within the word of pages [first, first + 64). */
static uint64_t word_range(uint64_t first, uint64_t lo, uint64_t hi) {
  if (hi <= first || lo >= first + 64 || hi <= lo) return 0;
  uint64_t a = lo > first ? lo - first : 0, b = hi < first + 64 ? hi - first : 64;
  return (b - a == 64 ? ~UINT64_C(0) : (UINT64_C(1) << (b - a)) - 1) << a;
}

static size_t owned_at(const mp3_state *s, uint64_t id);

uint64_t mp3__regular_word(const mp_pager *p, uint64_t w) {
  if (w >= (p->total + 63) / 64) return 0;
  const uint64_t first = w * 64, c = p->v3->c;
  uint64_t bits = 0;
  /* A group starts on a multiple of 8 pages (c is), so each byte of the word is one byte of
   * one group's bitmap. */
  for (unsigned j = 0; j < 8 && first + 8 * j < p->total; j++) {
    uint64_t id = first + 8 * j;
    bits |= (uint64_t)mp3__bitmap(p, id / c)[id % c / 8] << (8 * j);
  }
  if (p->total - first < 64) bits &= (UINT64_C(1) << (p->total - first)) - 1;
  if (!bits) return 0;
  /* What mp3__meta_page and mp3__owned say of each page, a word at a time: a state read
   * asks for every word of the file (crash checkers, fuzzers: once per state). */
  const mp3_state *s = p->v3;
  uint64_t not_regular = word_range(first, 0, s->m);
  if (s->sb.flags & MP3_SB_PAGE3) not_regular &= ~word_range(first, 3, 4);
  if (s->sb.copy) not_regular |= word_range(first, s->sb.copy, s->sb.copy + s->m);
  for (int i = 0; i < 2; i++)
    not_regular |= word_range(first, s->sb.root[i], s->sb.root[i] + s->m) |
                   word_range(first, s->sb.leaf0[i], s->sb.leaf0[i] + s->m);
  for (uint64_t k = first / c > 1 ? first / c : 1; k * c < first + 64; k++) /* groups' leaf slots */
    not_regular |= word_range(first, k * c, k * c + 2 * s->m);
  for (size_t i = owned_at(s, first); i < s->owned_n && s->owned[i] < first + 64; i++)
    not_regular |= UINT64_C(1) << (s->owned[i] - first);
  return bits & ~not_regular;
}

/* ---- owned pages --------------------------------------------------------------- */

/* Index of the first owned page >= id. */
static size_t owned_at(const mp3_state *s, uint64_t id) {
  size_t lo = 0, hi = s->owned_n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->owned[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

bool mp3__owned(const mp_pager *p, uint64_t id) {
  const mp3_state *s = p->v3;
  size_t i = owned_at(s, id);
  return i < s->owned_n && s->owned[i] == id;
}

int mp3__own_reserve(mp_pager *p, size_t n) {
  mp3_state *s = p->v3;
  if (s->owned_n + n <= s->owned_cap) return MP_OK;
  size_t cap = s->owned_cap ? s->owned_cap : 64;
  while (cap < s->owned_n + n) cap *= 2;
  uint64_t *o = mp__realloc(s->owned, cap * sizeof *o);
  if (!o) return MP_ENOMEM;
  s->owned = o;
  s->owned_cap = cap;
  return MP_OK;
}

void mp3__own(mp_pager *p, uint64_t first, uint64_t n) { /* (room reserved by the caller) */
  mp3_state *s = p->v3;
  size_t i = owned_at(s, first);
  memmove(s->owned + i + n, s->owned + i, (s->owned_n - i) * sizeof *s->owned);
  for (uint64_t k = 0; k < n; k++) s->owned[i + k] = first + k;
  s->owned_n += n;
}

void mp3__disown(mp_pager *p, uint64_t first, uint64_t n) {
  mp3_state *s = p->v3;
  size_t i = owned_at(s, first), j = owned_at(s, first + n);
  memmove(s->owned + i, s->owned + j, (s->owned_n - j) * sizeof *s->owned);
  s->owned_n -= j - i;
}

int mp3__probe(const uint8_t *head, size_t len, unsigned *log2, char *why, size_t whylen) {
  mp3_sb sb;
  int rc = mp3__sb_decode(head, len, &sb, why, whylen);
  if (rc == MP_OK) *log2 = sb.log2;
  return rc;
}

/* ---- create ------------------------------------------------------------------- */

/* A new file: blocks 0 (superblock), 1 and 2 (roots), 3 and 4 (group 0's leaf slots), and
 * block 5 for data. `img` receives the whole image (6 blocks), which is what the leftover test
 * compares against. */
#define NEW_BLOCKS MP3_NEW_BLOCKS

static void new_image(unsigned log2, bool sparse, uint8_t *img) {
  size_t ps = (size_t)1 << log2, mb = mp3__mb(ps);
  uint64_t m = mp3__m(ps), total = NEW_BLOCKS * m;
  memset(img, 0, NEW_BLOCKS * mb);
  uint8_t *leaf = img + 3 * mb, *root = img + 2 * mb;
  for (uint64_t id = 0; id < 5 * m; id++) leaf[MP3_LEAF_BITMAP + id / 8] |= (uint8_t)(1u << (id % 8));
  mp3__leaf_seal(leaf, ps, 0, 1, (uint32_t)(total - 5 * m));
  mp3_root r = {.slot = 1, .generation = 1, .total = total, .free_count = total - 5 * m};
  mp3__root_encode(&r, log2, NULL, root);
  mp3_sb sb = {.log2 = log2, .flags = sparse ? MP3_SB_SPARSE : 0, .root = {m, 2 * m}, .leaf0 = {3 * m, 4 * m}};
  mp3__sb_encode(&sb, img);
}

int mp3__format(int fd, unsigned log2, bool sparse) {
  size_t ps = (size_t)1 << log2, mb = mp3__mb(ps);
  size_t size = NEW_BLOCKS * mb;
  mp_pager tmp = {.fd = fd, .ps = ps, .sparse = sparse, .sys_page = (size_t)sysconf(_SC_PAGESIZE)};
  uint8_t *img = mp__malloc(size);
  if (!img) return MP_ENOMEM;
  new_image(log2, sparse, img);
  int rc = mp__sys_extend(&tmp, size);
  if (rc != MP_OK) {
    free(img);
    return rc;
  }
  tmp.map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (tmp.map == MAP_FAILED) {
    free(img);
    return MP_ENOMEM;
  }
  tmp.map_pages = size / ps;
  uint64_t m = mp3__m(ps);
  /* Root and leaf first, then the superblock sector alone: until it lands the file has no tag,
   * which mp_create recognises as its own leftover. */
  memcpy(tmp.map + mb, img + mb, 4 * mb);
  rc = mp__sys_msync(&tmp, m, 4 * m);
  if (rc == MP_OK) {
    memcpy(tmp.map, img, MP3_SB_LEN);
    rc = mp__sys_msync(&tmp, 0, 1);
  }
  munmap(tmp.map, size);
  free(img);
  return rc;
}

/* A create cut short leaves each byte zero or what create writes there, except that a drive
 * without atomic sectors may leave one sector being written as garbage: in the root's or the
 * leaf's block (the first msync), or in the superblock's sector (the second). So one aligned
 * region of MP3_SECTOR bytes (the largest sector 0.3 assumes) may differ, and only while the
 * superblock sector is not the one create writes, since that lands after the rest is durable.
 * Any other file of this size differs in more than one region: it is not replaced. */
static bool leftover_of(const uint8_t *buf, const uint8_t *img, uint64_t size) {
  uint64_t odd_region = UINT64_MAX;
  for (uint64_t i = 0; (i = mp__leftover_mismatch(buf, img, i, size)) < size; i++) {
    if (odd_region != UINT64_MAX && odd_region != i / MP3_SECTOR) return false;
    odd_region = i / MP3_SECTOR;
  }
  return odd_region == UINT64_MAX || memcmp(buf, img, MP3_SB_LEN) != 0;
}

bool mp3__is_leftover(int fd, uint64_t size) {
  if (size == 0 || size % NEW_BLOCKS) return false;
  uint64_t mb = size / NEW_BLOCKS;
  if (mb < MP3_SECTOR || mb > MP_MAX_PAGE_SIZE || (mb & (mb - 1))) return false;
  uint8_t *buf = malloc(size), *img = malloc(size);
  bool match = false;
  if (buf && img && pread(fd, buf, size, 0) == (ssize_t)size) {
    /* Every page size whose metadata block is this size, with and without MP_SPARSE. */
    for (uint64_t ps = mb == MP3_SECTOR ? MP_MIN_PAGE_SIZE : mb; ps <= mb && !match; ps *= 2)
      for (int sparse = 0; sparse < 2 && !match; sparse++) {
        new_image((unsigned)__builtin_ctzll(ps), sparse, img);
        match = leftover_of(buf, img, size);
      }
  }
  free(buf);
  free(img);
  return match;
}

/* ---- load ------------------------------------------------------------------- */

int mp3__groups_reserve(mp_pager *p, uint64_t groups) {
  mp3_state *s = p->v3;
  if (groups <= s->groups_cap) return MP_OK;
  size_t cap = s->groups_cap ? s->groups_cap : 8;
  while (cap < groups) cap *= 2;
  mp3_group *g = mp__realloc(s->group, cap * sizeof *g);
  if (!g) return MP_ENOMEM;
  s->group = g;
  uint64_t *f = mp__realloc(s->has_free, (cap + 63) / 64 * 8);
  if (!f) return MP_ENOMEM;
  s->has_free = f;
  memset(s->group + s->groups_cap, 0, (cap - s->groups_cap) * sizeof *g);
  size_t old_words = (s->groups_cap + 63) / 64;
  memset(s->has_free + old_words, 0, ((cap + 63) / 64 - old_words) * 8);
  s->groups_cap = cap;
  return MP_OK;
}

/* Page `first`'s metadata block: inside the first `pages` pages, and allocated in its leaf. */
static int meta_block_ok(const mp_pager *p, uint64_t first, const char *name, char *why, size_t whylen) {
  if (first >= p->total || p->total - first < p->v3->m) {
    snprintf(why, whylen, "%s at page %llu lies past the file's %llu pages", name, (unsigned long long)first,
             (unsigned long long)p->total);
    return MP_ECORRUPT;
  }
  if (first >= p->v3->c && first % p->v3->c < 2 * p->v3->m) {
    snprintf(why, whylen, "%s at page %llu lies on a leaf slot of group %llu", name, (unsigned long long)first,
             (unsigned long long)(first / p->v3->c));
    return MP_ECORRUPT;
  }
  for (uint64_t id = first; id < first + p->v3->m; id++)
    if (!mp3__allocated(p, id) && mp3__meta_page(p, id)) { /* (page 3 of an upgrade at 1 KiB: data) */
      snprintf(why, whylen, "%s: its page %llu is free in its group's leaf", name, (unsigned long long)id);
      return MP_ECORRUPT;
    }
  return MP_OK;
}

/* Zeroes the magic of a leaf slot and makes that durable: what a writer's open does to a
 * stale slot, and what a failed commit does to the slots it staged. */
int mp3__invalidate(mp_pager *p, uint64_t page) {
  memset(mp__pg(p, page), 0, 4);
  return mp__sys_msync(p, page, 1);
}

/* A block a directory reference or entry names (`kind` number `num`): whole, inside the file,
 * allocated, no metadata block; its pages go into the owned list (sorted afterwards). */
static int claim_block(mp_pager *p, uint64_t first, const char *kind, uint64_t num, char *why, size_t whylen) {
  mp3_state *s = p->v3;
  const char *problem = NULL;
  if (first % s->m || first > p->total - s->m) problem = "not a whole metadata block inside the file";
  else if (mp3__meta_page(p, first)) problem = "a metadata block";
  for (uint64_t id = first; !problem && id < first + s->m; id++)
    if (!mp3__allocated(p, id)) problem = "free in its group's leaf";
  if (problem) {
    snprintf(why, whylen, "%s %llu names page %llu, %s", kind, (unsigned long long)num, (unsigned long long)first,
             problem);
    return MP_ECORRUPT;
  }
  int rc = mp3__own_reserve(p, s->m);
  if (rc != MP_OK) return rc;
  for (uint64_t id = first; id < first + s->m; id++) s->owned[s->owned_n++] = id;
  return MP_OK;
}

/* The directory blocks the root names (0.2's directory pages, FORMAT.md 3.4), and the pages
 * they and their entries own, each owned once. */
static int load_dirs(mp_pager *p, const uint8_t *root, uint32_t dc, char *why, size_t whylen) {
  mp3_state *s = p->v3;
  int rc = mp__blocks_reserve(p, dc);
  if (rc != MP_OK) return rc;
  for (uint32_t b = 0; b < dc; b++) {
    const uint8_t *ref = mp3__root_ref(root, b);
    mp_block *blk = &p->blocks[b];
    *blk = (mp_block){.page = {mp__get64(ref), mp__get64(ref + 8)}, .active = ref[MP_REF_ACTIVE]};
    p->dir_count = b + 1; /* so that close frees what this block allocates */
    if (!(blk->staged = mp__calloc((p->dir_cap + 63) / 64, 8))) return MP_ENOMEM;
    for (int k = 0; k < 2; k++)
      if ((rc = claim_block(p, blk->page[k], "directory reference", b, why, whylen)) != MP_OK) return rc;
    const uint8_t *cur = mp__pg(p, blk->page[blk->active]);
    if (!mp__dir_valid(cur, p->ps)) {
      snprintf(why, whylen, "directory page %llu (block %u, current copy) is damaged",
               (unsigned long long)blk->page[blk->active], b);
      return MP_ECORRUPT;
    }
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
      for (int k = 0; k < 2; k++)
        if ((rc = claim_block(p, ent.page[k], "protected page", id, why, whylen)) != MP_OK) return rc;
      blk->used++;
    }
  }
  mp__sort_u64(s->owned, s->owned_n);
  for (size_t i = 1; i < s->owned_n; i++)
    if (s->owned[i] == s->owned[i - 1]) {
      snprintf(why, whylen, "page %llu is owned twice (by directory blocks or protected pages)",
               (unsigned long long)s->owned[i]);
      return MP_ECORRUPT;
    }
  return MP_OK;
}

/* ---- the sector copy (FORMAT.md 3.8) ------------------------------------------
 *
 * An upgrade below 4 KiB pages writes its superblock into a sector that also holds 0.2's
 * metadata copies (and page 3 at 1 KiB): a garbage tear of that write takes them all, and with
 * them what the 0.2 salvage rebuilds from. So the upgrade stages first, past the 0.2 pages, a
 * copy of what the sector must hold after it (the superblock, page 3), in a metadata block that
 * names its own page; the superblock names it in turn, and it stays allocated. A file whose head
 * has no tag is looked for such a copy before anything else: the blocks of 4 KiB that could
 * hold one are those at or below 0.2's capacity (the upgrade puts it at the first block at or
 * past the 0.2 file's end), and exactly one must check, or none (then the 0.2 salvage runs). A
 * copy of the bytes elsewhere names another page; a stale one (an upgrade that never committed)
 * is invalidated by the 0.2 writer that goes on (open.c), before its first commit. */
#define COPY_SCAN_CHUNK (256u * 1024u)

int mp3__find_copy(int fd, uint64_t size, unsigned *log2, uint64_t *page, char *why, size_t whylen) {
  uint64_t end = 0;
  for (unsigned l = 10; (1u << l) < MP3_SECTOR; l++) {
    uint64_t ps = (uint64_t)1 << l, m = mp3__m(ps), last = (mp__capacity(ps) + m - 1) / m * m;
    if ((last + m) * ps > end) end = (last + m) * ps;
  }
  if (end > size) end = size;
  uint8_t *buf = mp__malloc(COPY_SCAN_CHUNK);
  if (!buf) return MP_ENOMEM;
  unsigned found = 0;
  for (uint64_t off = MP3_SECTOR; off + MP3_SECTOR <= end; off += COPY_SCAN_CHUNK) {
    size_t len = end - off < COPY_SCAN_CHUNK ? (size_t)(end - off) / MP3_SECTOR * MP3_SECTOR : COPY_SCAN_CHUNK;
    if (pread(fd, buf, len, (off_t)off) != (ssize_t)len) break;
    for (size_t at = 0; at < len; at += MP3_SECTOR) {
      const uint8_t *b = buf + at;
      unsigned l = b[MP3_COPY_LOG2];
      if (memcmp(b, "MPC3", 4) != 0 || l < 10 || (1u << l) >= MP3_SECTOR) continue;
      if (!mp3__copy_valid(b, l, (off + at) >> l) || ((off + at) >> l) > mp__capacity((size_t)1 << l) + 3) continue;
      if (found++ == 0) *log2 = l, *page = (off + at) >> l;
    }
  }
  free(buf);
  if (found == 1) return MP_OK;
  if (found) {
    snprintf(why, whylen, "no mappedpages superblock (tag MPPG) at the start of the file, and %u copies of a 0.3 "
                          "superblock sector: which one is the file's cannot be told", found);
    return MP_ECORRUPT;
  }
  return MP_ENOENT;
}

/* Puts back what the copy holds, the sector after the bytes past the superblock, so that a cut
 * before the superblock lands leaves a head without a tag, restored again. The bytes of 0.2's
 * page 0 and metadata copies are not kept: 0.3 reads none of them. */
static int restore_sector(mp_pager *p) {
  mp3_state *s = p->v3;
  const uint8_t *cp = mp__pg(p, s->sb.copy);
  memset(p->map + MP3_SB_LEN, 0, s->mb - MP3_SB_LEN);
  if (s->sb.flags & MP3_SB_PAGE3) memcpy(mp__pg(p, 3), cp + MP3_COPY_DATA, p->ps);
  int rc = mp__sys_msync(p, 0, s->m);
  if (rc == MP_OK) {
    memcpy(p->map, cp + MP3_COPY_SB, MP3_SB_LEN);
    rc = mp__sys_msync(p, 0, 1);
  }
  if (p->preview) p->preview_wrote = true;
  return rc;
}

int mp3__load(mp_pager *p, char *why, size_t whylen) {
  if (!(p->v3 = mp__calloc(1, sizeof *p->v3))) return MP_ENOMEM;
  mp3_state *s = p->v3;
  const size_t ps = p->ps;
  int rc = mp3__sb_decode(p->map, p->map_pages * ps, &s->sb, why, whylen);
  if (rc != MP_OK && mp__salvageable_head(p->map) && ps < MP3_SECTOR) {
    unsigned l;
    uint64_t at;
    rc = mp3__find_copy(p->fd, p->file_size, &l, &at, why, whylen);
    if (rc == MP_ENOENT || (rc == MP_OK && l != p->log2)) {
      snprintf(why, whylen, "no 0.3 superblock at the start of the file, nor a copy of it");
      return MP_ECORRUPT;
    }
    if (rc != MP_OK) return rc;
    if (at + mp3__m(ps) > p->map_pages) {
      snprintf(why, whylen, "the copy of the 0.3 superblock sector at page %llu lies past the file",
               (unsigned long long)at);
      return MP_ECORRUPT;
    }
    if ((rc = mp3__sb_decode(mp__pg(p, at) + MP3_COPY_SB, MP3_SB_LEN, &s->sb, why, whylen)) != MP_OK) return rc;
    s->from_copy = true;
  }
  if (rc != MP_OK) return rc;
  s->mb = mp3__mb(ps);
  s->m = mp3__m(ps);
  s->c = mp3__group_pages(ps);
  p->capacity = MP3_MAX_PAGES;
  p->max_refs = mp3__max_refs(ps);
  p->sparse = p->sparse || (s->sb.flags & MP3_SB_SPARSE);
  const uint64_t file_pages = p->map_pages;
  if (file_pages < s->m) {
    snprintf(why, whylen, "file of %llu pages is shorter than the superblock's block", (unsigned long long)file_pages);
    return MP_ECORRUPT;
  }
  for (int i = 0; i < 2; i++)
    if (s->sb.root[i] > file_pages - s->m || s->sb.leaf0[i] > file_pages - s->m) {
      snprintf(why, whylen, "the superblock names page %llu, past the file's %llu pages",
               (unsigned long long)(s->sb.root[i] > file_pages - s->m ? s->sb.root[i] : s->sb.leaf0[i]),
               (unsigned long long)file_pages);
      return MP_ECORRUPT;
    }

  /* The root: the valid slot with the higher generation. */
  mp3_root root[2];
  char reason[2][160];
  bool ok[2];
  for (unsigned i = 0; i < 2; i++)
    ok[i] = mp3__root_decode(mp__pg(p, s->sb.root[i]), p->log2, i, &root[i], reason[i], 160) == MP_OK;
  if (!ok[0] && !ok[1]) {
    snprintf(why, whylen, "no valid root: %s; %s", reason[0], reason[1]);
    return MP_ECORRUPT;
  }
  const mp3_root *r = &root[!ok[0] || (ok[1] && root[1].generation > root[0].generation)];
  if (r->total > file_pages) {
    snprintf(why, whylen, "the root claims %llu pages but the file holds %llu", (unsigned long long)r->total,
             (unsigned long long)file_pages);
    return MP_ECORRUPT;
  }
  p->total = r->total;
  p->generation = r->generation;
  p->free_count = r->free_count;
  p->dir_count = 0;

  /* Every group's current leaf, its counts, its own blocks. */
  const uint64_t groups = (p->total + s->c - 1) / s->c;
  if ((rc = mp3__groups_reserve(p, groups)) != MP_OK) return rc;
  s->groups = groups;
  uint64_t free_sum = 0;
#ifdef MADV_POPULATE_READ
  /* Each group's two slots are read: faulting them in from the kernel, one call a group, costs
   * a fraction of a fault each from here (3.9's open of 2^28 pages; without, the faults are most
   * of it). A kernel without it (EINVAL) takes the faults one by one, as before. */
  for (uint64_t k = 1; k < groups && p->total - k * s->c >= 2 * s->m; k++)
    if (madvise(mp__pg(p, k * s->c), 2 * s->mb, MADV_POPULATE_READ) != 0) break;
#endif
  for (uint64_t k = 0; k < groups; k++) {
    if (k && p->total - k * s->c < 2 * s->m) {
      snprintf(why, whylen, "group %llu's leaf slots lie past the file's %llu pages", (unsigned long long)k,
               (unsigned long long)p->total);
      return MP_ECORRUPT;
    }
    const uint8_t *slot[2] = {mp3__slot(p, k, 0), mp3__slot(p, k, 1)};
    unsigned cur, stale;
    if ((rc = mp3__leaf_current(slot, ps, (uint32_t)k, p->generation, &cur, &stale, why, whylen)) != MP_OK) return rc;
    mp3_leaf leaf;
    if ((rc = mp3__leaf_decode(slot[cur], ps, (uint32_t)k, mp3__group_size(p, k), &leaf, why, whylen)) != MP_OK)
      return rc;
    s->group[k] = (mp3_group){.free = leaf.free_count, .hint = 0, .cur = (uint8_t)cur};
    if (leaf.free_count) mp__set(s->has_free, k);
    free_sum += leaf.free_count;
    if (k) {
      for (uint64_t id = k * s->c; id < k * s->c + 2 * s->m; id++)
        if (!mp3__allocated(p, id)) {
          snprintf(why, whylen, "group %llu: its leaf slots' page %llu is free in its leaf", (unsigned long long)k,
                   (unsigned long long)id);
          return MP_ECORRUPT;
        }
    }
    for (unsigned i = 0; i < 2; i++) {
      if (!(stale >> i & 1)) continue;
      p->recovery |= MP_RECOVER_LEAVES;
      if ((!p->rdonly || p->preview) && (rc = mp3__invalidate(p, mp3__slot_page(p, k, i))) != MP_OK) {
        snprintf(why, whylen, "could not invalidate group %llu's leaf slot %c", (unsigned long long)k, 'A' + i);
        return rc;
      }
      if (p->preview) p->preview_wrote = true;
    }
  }
  if (free_sum != p->free_count) {
    snprintf(why, whylen, "the root counts %llu free pages, the leaves %llu", (unsigned long long)p->free_count,
             (unsigned long long)free_sum);
    return MP_ECORRUPT;
  }
  static const char *const names[6] = {"the superblock's block", "root slot R0",        "root slot R1",
                                       "group 0's leaf slot",    "group 0's leaf slot", "the sector copy"};
  const uint64_t blocks[6] = {0, s->sb.root[0], s->sb.root[1], s->sb.leaf0[0], s->sb.leaf0[1], s->sb.copy};
  for (int i = 0; i < (s->sb.copy ? 6 : 5); i++)
    if ((rc = meta_block_ok(p, blocks[i], names[i], why, whylen)) != MP_OK) return rc;
  if (s->sb.copy && !mp3__copy_valid(mp__pg(p, s->sb.copy), p->log2, s->sb.copy)) {
    snprintf(why, whylen, "the sector copy at page %llu is damaged", (unsigned long long)s->sb.copy);
    return MP_ECORRUPT;
  }
  if ((rc = load_dirs(p, mp__pg(p, s->sb.root[r->slot]), r->dir_count, why, whylen)) != MP_OK) return rc;
  if (s->from_copy) {
    /* A reader keeps the superblock it read from the copy (page 3 reads as the disk holds it
     * until a writer's open): the file is not written. */
    p->recovery |= MP_RECOVER_SALVAGE;
    if ((!p->rdonly || p->preview) && (rc = restore_sector(p)) != MP_OK) {
      snprintf(why, whylen, "could not restore the superblock sector from its copy");
      return rc;
    }
  }
  return MP_OK;
}

/* ---- what a reader's load read (open.c keeps it: mp_reload_basis) ---------------
 *
 * Every page whose bytes mp3__load read, and only those: page 0 (the superblock is its first
 * 512 bytes; the rest of block 0 is 0.2's leftovers, or page 3 as data, which no load reads);
 * both root blocks, whole (the CRC covers the block); the sector copy's block, whole, which
 * the load checks; both leaf slots of every group, whole (which one is current takes both
 * headers, and the CRC of one or both); and the first page of each directory block's current
 * copy (its directory page; the load reads neither the other copy nor the rest of the block).
 * The places of all of them follow from page 0 and the root, which the list holds, so a file
 * whose listed pages hold the same bytes, at the same size, loads to the same state. A load
 * that read the superblock from its sector copy found page 0 garbage: which pages it read is
 * not fixed by the structure, and it keeps no basis (open.c). Pages in the order above, once
 * each in a file that loaded (its blocks are distinct); `ids` may be NULL to count them. */
static size_t put_run(uint64_t *ids, size_t n, uint64_t first, uint64_t count) {
  for (uint64_t i = 0; ids && i < count; i++) ids[n + i] = first + i;
  return n + (size_t)count;
}

size_t mp3__basis(const mp_pager *p, uint64_t *ids) {
  const mp3_state *s = p->v3;
  size_t n = put_run(ids, 0, 0, 1);
  for (int i = 0; i < 2; i++) n = put_run(ids, n, s->sb.root[i], s->m);
  if (s->sb.copy) n = put_run(ids, n, s->sb.copy, s->m);
  for (uint64_t k = 0; k < s->groups; k++)
    for (unsigned i = 0; i < 2; i++) n = put_run(ids, n, mp3__slot_page(p, k, i), s->m);
  for (uint32_t b = 0; b < p->dir_count; b++) n = put_run(ids, n, p->blocks[b].page[p->blocks[b].active], 1);
  return n;
}

void mp3__unload(mp_pager *p) {
  if (!p->v3) return;
  free(p->v3->group);
  free(p->v3->has_free);
  free(p->v3->unstage);
  free(p->v3->owned);
  free(p->v3->refs);
  free(p->v3->staged);
  mp__crc32_patch_free(&p->v3->patch);
  free(p->v3);
  p->v3 = NULL;
}
