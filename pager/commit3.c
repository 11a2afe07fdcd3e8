/* commit3.c: every durable change to a 0.3 file (FORMAT.md 3.6, 3.7): one commit per call, in
 * two barriers, and the search for free pages through the per-group summary.
 *
 * The protocol, and why each step is where it is:
 *
 * - Stage. Each group whose bits change gets its next leaf written whole into the slot that is
 *   not current, with generation G + 1: the current slot is copied, changed and sealed, its free
 *   count kept from the bits the commit changed (a copy the handle knows is patched instead of
 *   copied, see "patching" below; the bytes are the same). No reader of root G looks at that
 *   slot (it takes the highest generation at most G), so a cut anywhere in the stage, with any
 *   subset of its sectors on disk, torn or garbage, leaves the state of root G. One msync from
 *   the lowest staged block to the highest.
 *
 * - Commit. Root G + 1 is written into slot (G + 1) mod 2, which holds root G - 1, never the
 *   live root G; one msync. A block of its own, sealed by its CRC: either it validates and names
 *   the new size and counts (and makes every slot staged at G + 1 current), or it does not and
 *   root G stands. That is the only commit point.
 *
 * - Growth is part of the call that needs it: the file is extended first (fallocate, or
 *   ftruncate under MP_SPARSE, whose new leaf blocks are reserved one by one before the pager
 *   writes them), then the new groups' leaves (and the old last group's, whose count grows) are
 *   staged with the operation's own, and the root names the new size. A new group's slot A
 *   takes the leaf; the magic of its slot B is zeroed in the same run, since pages past the
 *   root's size may hold what an earlier, interrupted growth staged there.
 *
 * - A failed stage or root msync leaves slots of generation G + 1 on the disk or not. The next
 *   commit is G + 1 again, and if it left one of those groups alone, its stale slot would become
 *   current. So the staged slots' magic is zeroed at once, and synced before any later commit
 *   (mp3__settle); the call can then be retried. A failed root msync also rewrites the root slot
 *   with zeros and syncs it first, so that root G is the valid one again; if that fails too the
 *   handle is poisoned (the disk may hold either root), and the staged slots are left valid:
 *   root G + 1, if it landed, needs them.
 *
 * - Finding pages: a bitmap of the groups with free pages is scanned a word at a time from a
 *   cursor (the last group that gave pages), then the group's staged bitmap from its hint (the
 *   word where it last found one). Neither depends on the file's size: amortised O(1), against
 *   0.2's scan of its whole bitmap page.
 */
#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "internal.h"

/* A group the commit stages: how many pages its staged bitmap holds (so that its free count
 * needs no count of the bitmap), and where this commit changed that bitmap. */
typedef struct staged3 {
  uint64_t k;
  uint64_t allocated;       /* set bits of the staged bitmap */
  uint32_t word[MP3_EDITS]; /* the bitmap's 64-bit words this commit changed, n_word of them, */
  uint8_t n_word;
  bool many;                /* or more than MP3_EDITS (or a new group): nothing is kept of them */
  bool patched;             /* staged from a recent entry: the CRC is patched from base_crc */
  uint32_t base_crc;        /* the current slot's CRC, which this handle computed */
  uint32_t free, crc;       /* what the slot was sealed with */
} staged3;

/* A commit under construction: the groups it stages, the other blocks it stages (a protected
 * page's copy, directory copies), the size it commits and what its root changes in the
 * directory references. */
typedef struct txn3 {
  uint64_t total;       /* pages after the commit */
  uint64_t old_groups;  /* groups before it (the others are new) */
  staged3 *st;          /* staged groups, in the order they were staged: st_in until more */
  size_t n, cap;
  staged3 st_in[4];
  uint64_t extra[3];    /* first pages of the other staged blocks */
  size_t n_extra;
  uint32_t flip;        /* the directory block whose current copy the root flips, or NO_FLIP */
  bool append;          /* the root adds a directory block: */
  uint64_t append_pages[2]; /* its copies (copy A current) */
} txn3;
#define NO_FLIP UINT32_MAX
#define MP3_PATCH_MAX 65536u /* largest metadata block a commit patches (see txn_begin) */

/* ---- patching ------------------------------------------------------------------ *
 *
 * A commit's leaf is the current slot with a few bits changed, written into the other slot,
 * which holds the previous generation: when this handle wrote the current slot itself, the
 * other one differs from it only in the bitmap words that commit changed, and the new CRC
 * differs from the current one's by the few bytes that change (crc32.c). So a group of the
 * last commits (s->recent) is staged by copying back those words, its edits noted word by
 * word, and sealed with a patched CRC: no copy, count or checksum of the whole block. The same
 * for a root: slot (G + 1) mod 2 holds root G - 1, written by this handle or not known.
 *
 * Only what the handle wrote itself is trusted, with the CRC it computed: a group loaded from
 * the file, one whose edits overflowed MP3_EDITS, and every group after a failed commit (whose
 * stage or unstage wrote into the other slot) go the whole way once. The bytes written are
 * the same either way; s->whole makes every commit go the whole way, for the tests that
 * compare the two. */

static mp3_recent *recent_find(mp3_state *s, uint64_t k) {
  for (unsigned i = 0; i < MP3_RECENT; i++)
    if (s->recent[i].used && s->recent[i].group == k) return &s->recent[i];
  return NULL;
}

static void recent_forget(mp3_state *s) {
  for (unsigned i = 0; i < MP3_RECENT; i++) s->recent[i].used = false;
}

/* After the root of the commit that sealed g landed. */
static void recent_note(mp3_state *s, const staged3 *g) {
  mp3_recent *r = recent_find(s, g->k);
  if (g->many) {
    if (r) r->used = false;
    return;
  }
  if (!r) {
    r = &s->recent[s->recent_next];
    s->recent_next = (s->recent_next + 1) % MP3_RECENT;
  }
  *r = (mp3_recent){.used = true, .group = g->k, .crc = g->crc, .n_word = g->n_word};
  memcpy(r->word, g->word, sizeof r->word);
}

static void note_word(staged3 *g, uint64_t w) {
  if (g->many) return;
  for (unsigned i = 0; i < g->n_word; i++)
    if (g->word[i] == w) return;
  if (g->n_word == MP3_EDITS) g->many = true;
  else g->word[g->n_word++] = (uint32_t)w;
}

/* Bit i of a staged bitmap, set or cleared, counted and noted when it changes. */
static void take_bit(staged3 *g, uint8_t *bm, uint64_t i) {
  const uint8_t bit = (uint8_t)(1u << (i % 8));
  if (bm[i / 8] & bit) return;
  bm[i / 8] |= bit;
  g->allocated++;
  note_word(g, i / 64);
}

/* The free bits `taken` of the staged bitmap's 64-bit word w, set (bits only inside the group:
 * the bytes past the bitmap, where the last word runs into the CRC, are not written). */
static void take_word(staged3 *g, uint8_t *bm, uint64_t w, uint64_t taken) {
  if (!taken) return;
  for (unsigned i = 0; i < 8; i++)
    if ((uint8_t)(taken >> (8 * i))) bm[8 * w + i] |= (uint8_t)(taken >> (8 * i));
  g->allocated += (uint64_t)__builtin_popcountll(taken);
  note_word(g, w);
}

static void give_bit(staged3 *g, uint8_t *bm, uint64_t i) {
  const uint8_t bit = (uint8_t)(1u << (i % 8));
  if (!(bm[i / 8] & bit)) return;
  bm[i / 8] &= (uint8_t)~bit;
  g->allocated--;
  note_word(g, i / 64);
}

/* ---- commits ------------------------------------------------------------------- */

/* Everything a commit could want memory for, before it writes anything. */
static int txn_begin(mp_pager *p, uint64_t total, txn3 *t) {
  mp3_state *s = p->v3;
  /* The patch tables once a root of this handle's stands: a first commit has nothing to patch
   * from, and a handle that makes one commit (a bulk allocation) does not pay for them. They
   * take as many bytes as a metadata block, so blocks above MP3_PATCH_MAX (pages above 64 KiB)
   * are written whole, as they always were: same bytes, bounded heap. */
  if (!s->patch.pow && s->mb <= MP3_PATCH_MAX && (s->root_ours[0] || s->root_ours[1]) &&
      mp__crc32_patch_init(&s->patch, s->mb - 4) != 0)
    return MP_ENOMEM;
  if (!s->refs && !(s->refs = mp__malloc(((size_t)p->max_refs + 1) * MP3_REF_SIZE))) return MP_ENOMEM;
  if (mp__blocks_reserve(p, p->dir_count + 1) != MP_OK) return MP_ENOMEM;
  if (s->staged_cap < s->groups_cap) { /* (growth reserved the groups first) */
    uint32_t *st = mp__realloc(s->staged, s->groups_cap * sizeof *st);
    if (!st) return MP_ENOMEM;
    memset(st + s->staged_cap, 0, (s->groups_cap - s->staged_cap) * sizeof *st);
    s->staged = st;
    s->staged_cap = s->groups_cap;
  }
  /* (field by field: the inline list is left as it is, the staging fills what it uses) */
  t->total = total;
  t->old_groups = s->groups;
  t->st = t->st_in;
  t->n = 0;
  t->cap = sizeof t->st_in / sizeof t->st_in[0];
  t->n_extra = 0;
  t->flip = NO_FLIP;
  t->append = false;
  return MP_OK;
}

static void txn_end(mp_pager *p, txn3 *t) {
  for (size_t i = 0; i < t->n; i++) p->v3->staged[t->st[i].k] = 0;
  if (t->st != t->st_in) free(t->st);
}

static uint64_t txn_group_size(const mp_pager *p, const txn3 *t, uint64_t k) {
  uint64_t first = k * p->v3->c;
  return t->total - first < p->v3->c ? t->total - first : p->v3->c;
}

/* The slot group k's next leaf goes into: the one that is not current, slot A for a new group. */
static unsigned next_slot(const mp_pager *p, const txn3 *t, uint64_t k) {
  return k < t->old_groups ? !p->v3->group[k].cur : 0;
}

/* Group k's next bitmap (*bm), staged on first use from its current one (or empty, for a new
 * group whose own slots are its only allocated pages). The entry is valid until the next call;
 * NULL without memory. */
static staged3 *stage(mp_pager *p, txn3 *t, uint64_t k, uint8_t **bm) {
  mp3_state *s = p->v3;
  uint8_t *next = mp3__slot(p, k, next_slot(p, t, k)) + MP3_LEAF_BITMAP;
  *bm = next;
  if (s->staged[k]) return &t->st[s->staged[k] - 1];
  if (t->n == t->cap) {
    size_t cap = 2 * t->cap;
    staged3 *st = t->st == t->st_in ? mp__malloc(cap * sizeof *st) : mp__realloc(t->st, cap * sizeof *st);
    if (!st) return NULL;
    if (t->st == t->st_in) memcpy(st, t->st_in, sizeof t->st_in);
    t->st = st;
    t->cap = cap;
  }
  staged3 *g = &t->st[t->n];
  *g = (staged3){.k = k};
  const size_t area = s->mb - 4 - MP3_LEAF_BITMAP;
  if (k < t->old_groups) {
    const uint8_t *cur = mp3__bitmap(p, k);
    const mp3_recent *r = s->whole ? NULL : recent_find(s, k);
    if (r) {
      for (unsigned i = 0; i < r->n_word; i++) {
        size_t at = 8 * (size_t)r->word[i];
        if (area - at >= 8) memcpy(next + at, cur + at, 8); /* (a constant size: no call) */
        else memcpy(next + at, cur + at, 4);                /* the last word: 4 bytes of the area */
      }
      g->patched = true;
      g->base_crc = r->crc;
    } else {
      memcpy(next, cur, area);
      s->work.copied += area;
    }
    g->allocated = mp3__group_size(p, k) - s->group[k].free;
  } else {
    memset(next, 0, area);
    for (uint64_t i = 0; i < 2 * s->m; i++) next[i / 8] |= (uint8_t)(1u << (i % 8));
    memset(mp3__slot(p, k, 1), 0, 4);
    g->allocated = 2 * s->m;
    g->many = true;
  }
  s->staged[k] = (uint32_t)++t->n;
  return g;
}

/* What a failed commit does to the slots it staged (see the top of this file). */
static void unstage(mp_pager *p, txn3 *t) {
  mp3_state *s = p->v3;
  recent_forget(s);
  for (size_t i = 0; i < t->n; i++) {
    uint64_t page = mp3__slot_page(p, t->st[i].k, next_slot(p, t, t->st[i].k));
    memset(mp__pg(p, page), 0, 4);
    if (s->unstage_n == s->unstage_cap) {
      size_t cap = s->unstage_cap ? 2 * s->unstage_cap : 8;
      uint64_t *u = mp__realloc(s->unstage, cap * 8);
      if (!u) {
        p->poisoned = true; /* nothing else would remember to sync that zero */
        continue;
      }
      s->unstage = u;
      s->unstage_cap = cap;
    }
    s->unstage[s->unstage_n++] = page;
  }
  mp3__settle(p); /* at once if it can; else before the next commit */
}

int mp3__settle(mp_pager *p) {
  mp3_state *s = p->v3;
  while (s->unstage_n) {
    int rc = mp3__invalidate(p, s->unstage[s->unstage_n - 1]);
    if (rc != MP_OK) return rc;
    s->unstage_n--;
  }
  return MP_OK;
}

/* Seals staged leaf g (generation gen): a patched CRC when it was staged from a recent entry
 * and its edits are known, else the whole way. */
static void seal(mp_pager *p, txn3 *t, staged3 *g, uint64_t gen) {
  mp3_state *s = p->v3;
  const size_t mb = s->mb;
  uint8_t *leaf = mp3__slot(p, g->k, next_slot(p, t, g->k));
  g->free = (uint32_t)(txn_group_size(p, t, g->k) - g->allocated);
  if (s->whole) {
    /* as before patching: the count too, to show that the kept one is the bitmap's */
    g->free = (uint32_t)(txn_group_size(p, t, g->k) -
                         mp__popcount(leaf + MP3_LEAF_BITMAP, txn_group_size(p, t, g->k)));
    s->work.counted += txn_group_size(p, t, g->k);
  }
  if (g->patched && !g->many && !s->whole && s->patch.pow) {
    /* Against the current slot: its header differs in the generation and the free count (its
     * magic, group and zeros are what a valid slot of group k holds), its bitmap in the words
     * noted. */
    const uint8_t *cur = mp3__slot(p, g->k, s->group[g->k].cur);
    uint64_t sum = mp__crc32_patch_delta(&s->patch, MP3_LEAF_GEN, mp__get64(cur + MP3_LEAF_GEN) ^ gen) ^
                   mp__crc32_patch_delta(&s->patch, MP3_LEAF_FREE, mp__get32(cur + MP3_LEAF_FREE) ^ g->free);
    for (unsigned i = 0; i < g->n_word; i++) {
      size_t at = MP3_LEAF_BITMAP + 8 * (size_t)g->word[i];
      uint64_t d = mb - 4 - at < 8 ? mp__get32(cur + at) ^ mp__get32(leaf + at) /* the last, 4 bytes */
                                    : mp__get64(cur + at) ^ mp__get64(leaf + at);
      sum ^= mp__crc32_patch_delta(&s->patch, at, d);
    }
    mp3__leaf_head_encode(leaf, (uint32_t)g->k, gen, g->free);
    mp__put32(leaf + mb - 4, g->base_crc ^ mp__crc32_patch_term(&s->patch, sum));
  } else {
    mp3__leaf_seal(leaf, p->ps, (uint32_t)g->k, gen, g->free);
    s->work.summed += mb - 4;
  }
  g->crc = mp__get32(leaf + mb - 4);
}

/* Writes root r into its slot, over root G - 1. When this handle wrote both slots, root G's
 * CRC is patched by the bytes that differ (the header, the references; past them both are
 * zero, dir_count never falls), else the root is encoded whole. r's directory references are
 * in s->refs. */
static void write_root(mp_pager *p, const mp3_root *r) {
  mp3_state *s = p->v3;
  const size_t mb = s->mb;
  uint8_t *root = mp__pg(p, s->sb.root[r->slot]);
  const uint8_t *live = mp__pg(p, s->sb.root[!r->slot]);
  const size_t len = (size_t)MP3_REF_SIZE * r->dir_count;
  if (s->root_ours[0] && s->root_ours[1] && !s->whole && s->patch.pow &&
      mp__get32(root + MP3_ROOT_DIR_COUNT) <= r->dir_count && mp__get32(live + MP3_ROOT_DIR_COUNT) <= r->dir_count) {
    /* Against root G, field by field (its magic, page size and zeros are the same), then the
     * references. */
    const mp_crc_patch *c = &s->patch;
    uint64_t sum = mp__crc32_patch_delta(c, MP3_ROOT_SLOT, live[MP3_ROOT_SLOT] ^ r->slot) ^
                   mp__crc32_patch_delta(c, MP3_ROOT_GEN, mp__get64(live + MP3_ROOT_GEN) ^ r->generation) ^
                   mp__crc32_patch_delta(c, MP3_ROOT_TOTAL, mp__get64(live + MP3_ROOT_TOTAL) ^ r->total) ^
                   mp__crc32_patch_delta(c, MP3_ROOT_FREE, mp__get64(live + MP3_ROOT_FREE) ^ r->free_count) ^
                   mp__crc32_patch_delta(c, MP3_ROOT_DIR_COUNT, mp__get32(live + MP3_ROOT_DIR_COUNT) ^ r->dir_count);
    mp3__root_head(r, p->log2, root);
    memcpy(root + MP3_ROOT_REFS, s->refs, len);
    sum ^= mp__crc32_patch_sum(c, live, root, MP3_ROOT_REFS, len);
    mp__put32(root + mb - 4, s->root_crc[!r->slot] ^ mp__crc32_patch_term(c, sum));
  } else {
    mp3__root_encode(r, p->log2, s->refs, root);
    s->work.summed += mb - 4;
  }
}

static void span(uint64_t *lo, uint64_t *hi, uint64_t page) {
  if (page < *lo) *lo = page;
  if (page > *hi) *hi = page;
}

/* Seals every staged leaf (generation G + 1), makes them durable, writes and syncs root G + 1,
 * and only then takes the new state into memory. */
static int txn_commit(mp_pager *p, txn3 *t) {
  mp3_state *s = p->v3;
  const uint64_t gen = p->generation + 1, m = s->m;
  uint64_t free_count = p->free_count;
  uint64_t lo = UINT64_MAX, hi = 0;
  int rc;
  for (size_t i = 0; i < t->n_extra; i++) span(&lo, &hi, t->extra[i]);
  for (size_t i = 0; i < t->n; i++) {
    staged3 *g = &t->st[i];
    seal(p, t, g, gen);
    free_count = free_count - (g->k < t->old_groups ? s->group[g->k].free : 0) + g->free;
    span(&lo, &hi, mp3__slot_page(p, g->k, next_slot(p, t, g->k)));
    if (g->k >= t->old_groups) span(&lo, &hi, mp3__slot_page(p, g->k, 1));
  }
  /* One msync from the lowest staged block to the highest: each msync ends with a flush of the
   * device, so one barrier, not one per run. The kernel writes only the dirty pages of the
   * range; dirty data of the caller's between them reaches the disk early, which its writeback
   * could have done at any moment (commit.c says the same of a protected commit in 0.2). */
  if (lo <= hi && (rc = mp__sys_msync(p, lo, hi + m - lo)) != MP_OK) {
    unstage(p, t);
    return rc;
  }

  const unsigned rs = (unsigned)(gen % 2);
  uint8_t *refs = s->refs;
  uint32_t dc = p->dir_count;
  for (uint32_t b = 0; b < dc; b++) {
    mp__put64(refs + MP3_REF_SIZE * b, p->blocks[b].page[0]);
    mp__put64(refs + MP3_REF_SIZE * b + 8, p->blocks[b].page[1]);
    refs[MP3_REF_SIZE * b + MP_REF_ACTIVE] = (uint8_t)(p->blocks[b].active ^ (b == t->flip));
  }
  if (t->append) {
    mp__put64(refs + MP3_REF_SIZE * dc, t->append_pages[0]);
    mp__put64(refs + MP3_REF_SIZE * dc + 8, t->append_pages[1]);
    refs[MP3_REF_SIZE * dc + MP_REF_ACTIVE] = 0;
    dc++;
  }
  mp3_root r = {.slot = rs, .generation = gen, .total = t->total, .free_count = free_count, .dir_count = dc};
  write_root(p, &r);
  s->root_ours[rs] = false; /* until it is known to stand as written */
  if ((rc = mp__sys_msync(p, s->sb.root[rs], m)) != MP_OK) {
    memset(mp__pg(p, s->sb.root[rs]), 0, s->mb);
    if (mp__sys_msync(p, s->sb.root[rs], m) != MP_OK) {
      /* The disk may hold root G + 1, whose leaves must then stay valid: they are left as
       * staged (if root G stands after all, a writer's open finds them stale). */
      recent_forget(s);
      p->poisoned = true;
      return rc;
    }
    unstage(p, t);
    return rc;
  }
  s->root_ours[rs] = true;
  s->root_crc[rs] = mp__get32(mp__pg(p, s->sb.root[rs]) + s->mb - 4);
  p->generation = gen;
  p->total = t->total;
  p->free_count = free_count;
  s->groups = (t->total + s->c - 1) / s->c;
  for (size_t i = 0; i < t->n; i++) {
    const staged3 *g = &t->st[i];
    uint64_t k = g->k;
    if (k >= t->old_groups) s->group[k] = (mp3_group){.hint = 0};
    s->group[k].cur = (uint8_t)next_slot(p, t, k);
    s->group[k].free = g->free;
    if (g->free) mp__set(s->has_free, k);
    else mp__clear(s->has_free, k);
    recent_note(s, g);
  }
  if (t->flip != NO_FLIP) p->blocks[t->flip].active ^= 1;
  if (t->append) {
    mp_block *blk = &p->blocks[p->dir_count++]; /* (its staged bits: the caller's) */
    *blk = (mp_block){.page = {t->append_pages[0], t->append_pages[1]}};
  }
  return MP_OK;
}

/* ---- growth ------------------------------------------------------------------ */

/* The size after one growth step from `total` (3.7), or total itself at the 2^32 limit. */
static uint64_t grown(const mp_pager *p, uint64_t total) {
  const uint64_t c = p->v3->c;
  uint64_t next = total + (total < c ? total : c);
  if (next > c) next = (next + c - 1) / c * c;
  if (next > MP3_MAX_PAGES) {
    next = MP3_MAX_PAGES;
    if (next % c && next % c < 2 * p->v3->m) next -= next % c; /* a last group too short for its leaf */
  }
  return next > total ? next : total;
}

/* Extends the file and the mapping to `total` pages and the per-group arrays to its groups;
 * under MP_SPARSE, reserves the new groups' leaf blocks, which the stage writes. */
static int grow_to(mp_pager *p, uint64_t total) {
  mp3_state *s = p->v3;
  uint64_t groups = (total + s->c - 1) / s->c;
  int rc = mp3__groups_reserve(p, groups);
  if (rc != MP_OK) return rc;
  if ((rc = mp__sys_extend(p, total * p->ps)) != MP_OK || (rc = mp__sys_remap(p, total)) != MP_OK) return rc;
  for (uint64_t k = s->groups; k < groups && rc == MP_OK; k++) {
    uint64_t ids[8], n = 0;
    for (uint64_t id = k * s->c; id < k * s->c + 2 * s->m && n < 8; id++) ids[n++] = id;
    rc = mp__sys_back(p, ids, (size_t)n);
  }
  return rc;
}

/* ---- operations ----------------------------------------------------------------- */

static int txn_search(mp_pager *p, txn3 *t, size_t n, uint64_t unit, uint64_t *ids, size_t *got_out);

/* Takes up to `want` free pages of group k into ids (marking them in its staged bitmap). */
static size_t take_from(mp_pager *p, txn3 *t, uint64_t k, staged3 *g, uint8_t *bm, size_t want, uint64_t *ids) {
  const uint64_t size = txn_group_size(p, t, k), words = (size + 63) / 64, first = k * p->v3->c;
  uint64_t w = k < t->old_groups && p->v3->group[k].hint < words ? p->v3->group[k].hint : 0;
  size_t got = 0;
  for (uint64_t step = 0; step < words && got < want; step++, w = w + 1 < words ? w + 1 : 0) {
    uint64_t bits = ~mp__get64(bm + 8 * w);
    if (w == words - 1 && size % 64) bits &= (UINT64_C(1) << (size % 64)) - 1;
    /* the word's free pages it takes, set at once (a bulk allocation sets millions) */
    uint64_t taken = 0;
    while (bits && got < want) {
      unsigned b = (unsigned)__builtin_ctzll(bits);
      bits &= bits - 1;
      taken |= UINT64_C(1) << b;
      ids[got++] = first + w * 64 + b;
    }
    take_word(g, bm, w, taken);
    if (got == want) break;
  }
  if (k < t->old_groups) p->v3->group[k].hint = (uint32_t)w;
  return got;
}

/* The first group in [from, end) that the summary says has a free page. */
static bool next_with_free(const mp3_state *s, uint64_t from, uint64_t end, uint64_t *k) {
  for (uint64_t w = from / 64; w * 64 < end; w++) {
    uint64_t bits = s->has_free[w];
    if (w == from / 64) bits &= ~UINT64_C(0) << (from % 64);
    if (bits) {
      uint64_t x = w * 64 + (uint64_t)__builtin_ctzll(bits);
      if (x >= end) return false;
      *k = x;
      return true;
    }
  }
  return false;
}

/* Takes up to `want` free whole metadata blocks of group k (aligned runs of m pages) into
 * firsts, their first pages (marking them in its staged bitmap). */
static size_t take_blocks(mp_pager *p, txn3 *t, uint64_t k, staged3 *g, uint8_t *bm, size_t want,
                          uint64_t *firsts) {
  const uint64_t m = p->v3->m, blocks = txn_group_size(p, t, k) / m, first = k * p->v3->c;
  size_t got = 0;
  for (uint64_t j = 0; j < blocks && got < want; j++) {
    bool all_free = true;
    for (uint64_t i = j * m; i < (j + 1) * m && all_free; i++) all_free = !(bm[i / 8] >> (i % 8) & 1);
    if (!all_free) continue;
    for (uint64_t i = j * m; i < (j + 1) * m; i++) take_bit(g, bm, i);
    firsts[got++] = first + j * m;
  }
  return got;
}

static void txn_abort(mp_pager *p, txn3 *t) {
  /* Nothing was synced: the staged slots are not current, and the next stage rewrites them
   * (whole: what they hold is no longer what s->recent says). */
  recent_forget(p->v3);
  for (size_t i = 0; i < t->n; i++) memset(mp3__slot(p, t->st[i].k, next_slot(p, t, t->st[i].k)), 0, 4);
  txn_end(p, t);
}

/* Begins a commit that takes n free units (unit 1: pages; unit m: whole metadata blocks, for
 * the blocks the pager writes into) into ids, growing the file first by as many steps as the
 * free count needs (before any pointer into the mapping is taken); when free pages are too
 * scattered for whole blocks, by one step more. On MP_OK *t is the caller's to commit or abort. */
static int txn_take(mp_pager *p, size_t n, uint64_t unit, uint64_t *ids, txn3 *t) {
  mp3_state *s = p->v3;
  uint64_t total = p->total, spare = p->free_count;
  for (;;) {
    while (spare < n * unit) {
      uint64_t next = grown(p, total);
      if (next == total) return MP_EFULL;
      /* New pages, less the leaf slots of the groups they add. */
      uint64_t old_groups = (total + s->c - 1) / s->c, new_groups = (next + s->c - 1) / s->c;
      spare += (next - total) - (new_groups - old_groups) * 2 * s->m;
      total = next;
    }
    int rc = total > p->total ? grow_to(p, total) : MP_OK;
    if (rc != MP_OK) return rc;
    if ((rc = txn_begin(p, total, t)) != MP_OK) return rc;
    size_t got = 0;
    if ((rc = txn_search(p, t, n, unit, ids, &got)) != MP_OK) {
      txn_abort(p, t);
      return rc;
    }
    if (got == n) return MP_OK;
    txn_abort(p, t);
    if (unit == 1) return MP_EFULL; /* the counts promised pages the bitmaps lack: open checked them */
    spare = 0; /* enough pages, not enough whole blocks: grow on */
  }
}

int mp3__alloc_bulk(mp_pager *p, size_t n, uint64_t *ids) {
  txn3 t;
  int rc = txn_take(p, n, 1, ids, &t);
  if (rc != MP_OK) return rc;
  rc = txn_commit(p, &t);
  txn_end(p, &t);
  return rc;
}

static int txn_search(mp_pager *p, txn3 *t, size_t n, uint64_t unit, uint64_t *ids, size_t *got_out) {
  mp3_state *s = p->v3;
  const uint64_t total = t->total;
  int rc = MP_OK;
  size_t got = 0;
  /* The groups with free pages from the cursor to the end, then from the start to the cursor;
   * then the new ones (and the old last one, which growth lengthens). */
  const uint64_t groups = (total + s->c - 1) / s->c, from = s->cursor < t->old_groups ? s->cursor : 0;
  for (int pass = 0; pass < 2 && got < n; pass++) {
    uint64_t k, start = pass ? 0 : from, end = pass ? from : t->old_groups;
    while (got < n && next_with_free(s, start, end, &k)) {
      uint8_t *bm;
      staged3 *g = stage(p, t, k, &bm);
      if (!g) return MP_ENOMEM;
      got += unit == 1 ? take_from(p, t, k, g, bm, n - got, ids + got)
                       : take_blocks(p, t, k, g, bm, n - got, ids + got);
      s->cursor = k;
      start = k + 1;
    }
  }
  for (uint64_t k = t->old_groups ? t->old_groups - 1 : 0; k < groups && got < n; k++) {
    uint8_t *bm;
    staged3 *g = stage(p, t, k, &bm);
    if (!g) return MP_ENOMEM;
    got += unit == 1 ? take_from(p, t, k, g, bm, n - got, ids + got) : take_blocks(p, t, k, g, bm, n - got, ids + got);
    s->cursor = k;
  }
  /* Every new group needs its leaf, and the old last group's count grows with the file, even
   * when none of their pages are taken. */
  for (uint64_t k = p->total % s->c ? t->old_groups - 1 : t->old_groups; total > p->total && k < groups; k++) {
    uint8_t *bm;
    if (!stage(p, t, k, &bm)) return MP_ENOMEM;
  }
  *got_out = got;
  return rc;
}

int mp3__free_bulk(mp_pager *p, size_t n, const uint64_t *ids) {
  txn3 t;
  int rc = txn_begin(p, p->total, &t);
  if (rc != MP_OK) return rc;
  for (size_t i = 0; i < n; i++) {
    uint64_t k = ids[i] / p->v3->c, b = ids[i] % p->v3->c;
    uint8_t *bm;
    staged3 *g = stage(p, &t, k, &bm);
    if (!g) {
      txn_abort(p, &t);
      return MP_ENOMEM;
    }
    give_bit(g, bm, b);
  }
  rc = txn_commit(p, &t);
  txn_end(p, &t);
  return rc;
}

/* ---- protected pages ------------------------------------------------------------- *
 *
 * 0.2's directory pages and entries, in blocks of their own: a protected page's two copies and
 * each directory copy are whole metadata blocks, so that a garbage sector in a staged copy never
 * reaches another page's committed content. Every operation is one commit: the stage holds the
 * leaves (pages taken or given back), the data copy and the next version of the directory page,
 * written whole into the block's inactive copy from its current one; the root flips the block.
 * Nothing reads an inactive copy, so 0.2's mirrors, intents and reclaim have no part here. */


/* Writes the next version of block b's directory page into its inactive copy: the current one
 * with entry e replaced. Returns that copy's page. */
static uint64_t dir_next(mp_pager *p, uint32_t b, uint32_t e, const uint8_t raw[MP_ENTRY_SIZE]) {
  const mp_block *blk = &p->blocks[b];
  uint8_t *next = mp__pg(p, blk->page[!blk->active]);
  memcpy(next, mp__pg(p, blk->page[blk->active]), p->ps);
  memcpy(mp__entry_at(next, e), raw, MP_ENTRY_SIZE);
  mp__page_seal(next, p->ps);
  return blk->page[!blk->active];
}

static bool free_entry(const mp_pager *p, uint32_t *b, uint32_t *e) {
  for (uint32_t i = 0; i < p->dir_count; i++) {
    const mp_block *blk = &p->blocks[i];
    if (blk->used >= p->dir_cap) continue;
    const uint8_t *cur = mp__pg(p, blk->page[blk->active]);
    for (uint32_t j = 0; j < p->dir_cap; j++)
      if (mp__entry_at_c(cur, j)[MP_ENTRY_IN_USE] == 0) {
        *b = i;
        *e = j;
        return true;
      }
  }
  return false;
}

/* MP_SPARSE: the blocks the pager is about to write into are reserved first. */
static int back_blocks(mp_pager *p, const uint64_t *firsts, size_t n) {
  uint64_t ids[16];
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (uint64_t id = firsts[i]; id < firsts[i] + p->v3->m; id++) ids[k++] = id;
  return mp__sys_back(p, ids, k);
}

int mp3__protected_alloc(mp_pager *p, uint64_t *id) {
  const uint64_t m = p->v3->m;
  uint32_t b, e;
  const bool fresh = !free_entry(p, &b, &e); /* no free entry: a new directory block too */
  if (fresh && p->dir_count >= p->max_refs) return MP_EFULL;
  const size_t need = fresh ? 4 : 2;
  /* Everything that can fail for want of memory, before the first write. */
  uint64_t *staged = fresh ? mp__calloc((p->dir_cap + 63) / 64, 8) : NULL;
  int rc = fresh && !staged ? MP_ENOMEM : mp3__own_reserve(p, need * m);
  if (rc == MP_OK) rc = mp__blocks_reserve(p, p->dir_count + 1);
  uint64_t blocks[4];
  txn3 t;
  if (rc == MP_OK && (rc = txn_take(p, need, m, blocks, &t)) == MP_OK && (rc = back_blocks(p, blocks, need)) != MP_OK)
    txn_abort(p, &t);
  if (rc != MP_OK) {
    free(staged);
    return rc;
  }
  const uint64_t pa = blocks[need - 2], pb = blocks[need - 1];
  memset(mp__pg(p, pa), 0, p->ps);
  mp_entry ent = {.in_use = true, .page = {pa, pb}, .crc = mp__crc32(0, mp__pg(p, pa), p->ps)};
  uint8_t raw[MP_ENTRY_SIZE];
  mp__entry_encode(&ent, raw);
  if (fresh) {
    /* Both copies written whole; copy A, which the root will name, holds the entry. */
    uint8_t *da = mp__pg(p, blocks[0]);
    mp__dir_init(da, p->ps);
    memcpy(mp__entry_at(da, 0), raw, MP_ENTRY_SIZE);
    mp__page_seal(da, p->ps);
    memcpy(mp__pg(p, blocks[1]), da, p->ps);
    t.extra[0] = blocks[0], t.extra[1] = blocks[1], t.extra[2] = pa, t.n_extra = 3;
    t.append = true;
    t.append_pages[0] = blocks[0], t.append_pages[1] = blocks[1];
    b = p->dir_count;
    e = 0;
  } else {
    t.extra[0] = pa, t.extra[1] = dir_next(p, b, e, raw), t.n_extra = 2;
    t.flip = b;
  }
  rc = txn_commit(p, &t);
  txn_end(p, &t);
  if (rc != MP_OK) {
    free(staged);
    return rc;
  }
  if (fresh) {
    p->blocks[b].staged = staged;
    mp3__own(p, blocks[0], m);
    mp3__own(p, blocks[1], m);
  }
  mp3__own(p, pa, m);
  mp3__own(p, pb, m);
  p->blocks[b].used++;
  *id = (uint64_t)b * p->dir_cap + e;
  return MP_OK;
}

int mp3__protected_free(mp_pager *p, uint32_t b, uint32_t e, const mp_entry *ent) {
  const uint64_t m = p->v3->m, c = p->v3->c;
  txn3 t;
  int rc = txn_begin(p, p->total, &t);
  if (rc != MP_OK) return rc;
  for (int k = 0; k < 2; k++) {
    uint8_t *bm;
    staged3 *g = stage(p, &t, ent->page[k] / c, &bm);
    if (!g) {
      txn_abort(p, &t);
      return MP_ENOMEM;
    }
    for (uint64_t i = ent->page[k] % c; i < ent->page[k] % c + m; i++) give_bit(g, bm, i);
  }
  static const uint8_t cleared[MP_ENTRY_SIZE];
  t.extra[0] = dir_next(p, b, e, cleared), t.n_extra = 1;
  t.flip = b;
  rc = txn_commit(p, &t);
  txn_end(p, &t);
  if (rc != MP_OK) return rc;
  mp3__disown(p, ent->page[0], m);
  mp3__disown(p, ent->page[1], m);
  p->blocks[b].used--;
  mp__clear(p->blocks[b].staged, e);
  return MP_OK;
}

int mp3__protected_commit(mp_pager *p, uint32_t b, uint32_t e, const mp_entry *ent) {
  mp_entry next = *ent;
  const uint64_t copy = ent->page[!ent->slot];
  next.crc = mp__crc32(0, mp__pg(p, copy), p->ps);
  next.slot = !ent->slot;
  next.generation++;
  uint8_t raw[MP_ENTRY_SIZE];
  mp__entry_encode(&next, raw);
  txn3 t;
  int rc = txn_begin(p, p->total, &t);
  if (rc != MP_OK) return rc;
  t.extra[0] = copy, t.extra[1] = dir_next(p, b, e, raw), t.n_extra = 2;
  t.flip = b;
  rc = txn_commit(p, &t);
  txn_end(p, &t);
  if (rc == MP_OK) mp__clear(p->blocks[b].staged, e);
  return rc;
}
