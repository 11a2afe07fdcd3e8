/* salvage.c: opening a 0.2 file whose page 0 starts with a sector of garbage (a torn write
 * on a drive without atomic sectors): page 0 rebuilt from the pages that outlive it, or a
 * refusal that says what was lost.
 *
 * What is lost, and where each field comes back from:
 *
 * - When: the first four bytes are not "MPPG" and the file is not the leftover of an
 *   interrupted create (open.c keeps that answer: it holds nothing of anyone's). A tag
 *   that is there is trusted as it always was, so a file of a newer version, or a
 *   superblock damaged elsewhere, is refused as before. The garbage may span a whole
 *   sector of up to 4 KiB: with 512-byte sectors that is page 0's bytes 0..512 (the
 *   superblock and references 0..27 at any page size); with 4 KiB sectors, all of page 0
 *   up to 4 KiB pages, and pages 1..3 too at 1 KiB pages.
 *
 * - Page size: every page_size_log2 the format allows (10..24) is tried; it fits when
 *   page 1 or page 2 at that size is a whole metadata copy (trailing CRC, counts, a page
 *   count within the file: mp__meta_valid). Beyond doubt means exactly one size fits;
 *   none or several are refused, saying which.
 *
 * - Selector (active_meta): the page-0 write the garbage tore was one logical change
 *   (commit.c), so the file is in the state before that write or after it. Metadata
 *   commits write the inactive copy whole, with generation + 1, and msync it BEFORE page 0
 *   names it; a copy is never written while page 0 names it. So if the torn write was a
 *   metadata flip, the copy with the higher generation is its after-state; if it was any
 *   other page-0 write (a directory selector, an append, recovery's repairs), the metadata
 *   did not change and the higher generation is the current copy of both states. Hence:
 *   both copies whole, generations one apart: the higher; equal generations (a file never
 *   changed) only with identical copies; anything else is not a state our commit order
 *   leaves, and is refused. One copy whole: it is used only when the other lies past the
 *   first 4 KiB of the file (a torn write of its own, not the garbage that took page 0: a
 *   garbage sector over page 0 and the current copy would make the whole one the state
 *   before the last commit). meta_checksum is recomputed from the chosen copy.
 *   The limit: after a metadata commit that FAILED (an I/O error its call reported), the
 *   inactive copy may hold that uncommitted state with the higher generation until the
 *   next commit replaces it; garbage in page 0 within that window salvages it. Nothing in
 *   the file tells the two apart.
 *
 * - Directory references: directory pages describe themselves (capacity (ps - 12) / 30,
 *   bytes 4..8 zero, trailing CRC). Candidates are the pages the chosen bitmap allocates
 *   that look so and that no candidate's entry names as a protected copy. Two copies of
 *   one block share their in-use entries (the pages of a protected page have one owner),
 *   so pages sharing an entry are paired; entries at one index naming different pages
 *   forbid a pair. Which copy is page_a, the order of the blocks (protected ids are block
 *   index x capacity + entry) and each selector are not written anywhere else but in
 *   page 0's section checksum, in its LAST four bytes, which a garbage first sector
 *   leaves when the page is larger than the sector. Every arrangement of the candidates
 *   (pairings, orders, which copy is page_a, selectors; optionally one pair shaped like a
 *   block append's, as an intent in the padding, which the checksum does not cover) is
 *   checksummed with the bytes past the garbage as found (with fewer blocks than pairs as
 *   well: a regular page may hold a directory page's bytes, a copy of another file's, say),
 *   and exactly one must match:
 *   that checksum is the one the before- or after-state of the torn write carries, so
 *   the match is that state's section, byte for byte, and rewriting page 0 changes only
 *   the garbage sector. CRC-32 is affine, so each reference's share of the checksum is
 *   computed once per position and arrangements cost an XOR per reference.
 *   When nothing matches and the page is 4 KiB or smaller, the checksum may have been in
 *   the garbage: then only zero directory pages, or exactly two that pair and are not both
 *   empty (an empty block, or two regular pages holding its bytes?), are rebuilt
 *   (one block: page_a is the lower page; the current copy is the one whose in-use
 *   entries all name pages the chosen bitmap allocates, if only one does: a free whose
 *   pages the chosen metadata freed; else the one whose differing entries have the higher
 *   generations, or, if they differ in which entries are in use, the one whose in-use
 *   entries the other's contain: both are states of an alloc's or a free's selector flip,
 *   the metadata commit of an alloc coming before its flip); everything else is refused with MP_ECORRUPT and a sentence
 *   saying how many directory pages were found and why they cannot be placed.
 *
 * - Build byte (MP_BUILD_MIRRORED) was in the garbage too. The file is taken as ours
 *   (inactive copies are intents, recover.c) when its blocks' copies disagree in
 *   allocation fields in at most one entry: what one interrupted operation of ours
 *   leaves. Otherwise it is adopted, as another writer's file (mirrored, nothing reclaimed).
 *
 * What a reader and a writer do: both rebuild page 0 in memory; a read-only handle keeps
 * it there (the file is unchanged, and mp_check salvages again instead of reporting the
 * garbage); a writer's open writes it before any other repair, as one msync of page 0
 * (MP_RECOVER_SALVAGE). Matched by its checksum, the rebuilt page differs from the disk in
 * the garbage sector alone, so a cut during that write leaves the garbage (salvaged again,
 * to the same page) or the rebuilt page; rebuilt without it, the page fits in 4 KiB, the
 * sector that the garbage showed is not atomic, and a torn rewrite is garbage again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "crc32.h"
#include "internal.h"

/* The largest sector the fault model knows: garbage never reaches past it. */
#define SALVAGE_SPAN_MAX 4096u
/* Arrangements checksummed at most (a few milliseconds); more are refused. */
#define SALVAGE_BUDGET (UINT64_C(1) << 20)
#define SALVAGE_MAX_DIRS 16

bool mp__salvageable_head(const uint8_t *head) { return memcmp(head + MP_SB_TAG, "MPPG", 4) != 0; }

int mp__salvage_geometry(int fd, uint64_t size, unsigned *log2, char *why, size_t whylen) {
  unsigned fits[16], n = 0;
  for (unsigned l = 10; l <= 24; l++) {
    size_t ps = (size_t)1 << l;
    if (size / ps < MP_RESERVED_PAGES) break;
    uint8_t *buf = mp__malloc(2 * ps);
    if (!buf) return MP_ENOMEM;
    bool fit = false;
    if (pread(fd, buf, 2 * ps, (off_t)ps) == (ssize_t)(2 * ps)) {
      uint64_t pages = size / ps < mp__capacity(ps) ? size / ps : mp__capacity(ps);
      mp_meta_hdr h;
      char r[160];
      fit = mp__meta_valid(buf, ps, pages, &h, r, sizeof r) || mp__meta_valid(buf + ps, ps, pages, &h, r, sizeof r);
    }
    free(buf);
    if (fit) fits[n++] = l;
  }
  if (n == 1) {
    *log2 = fits[0];
    return MP_OK;
  }
  if (n == 0)
    snprintf(why, whylen, "no mappedpages superblock (tag MPPG) at the start of the file, and no page size at which "
                          "page 1 or 2 holds a whole metadata copy to salvage it from");
  else
    snprintf(why, whylen, "no mappedpages superblock (tag MPPG) at the start of the file, and metadata copies fit at "
                          "%u page sizes (%zu and %zu bytes among them): the page size cannot be told",
             n, (size_t)1 << fits[0], (size_t)1 << fits[1]);
  return MP_ECORRUPT;
}

/* ---- the metadata selector ---------------------------------------------------- */

static int pick_meta(const mp_pager *p, unsigned *sel, char *why, size_t whylen) {
  mp_meta_hdr h[2];
  char r[2][160];
  bool ok[2];
  for (unsigned i = 0; i < 2; i++) ok[i] = mp__meta_valid(mp__pg(p, 1 + i), p->ps, p->map_pages, &h[i], r[i], 160);
  if (ok[0] && ok[1]) {
    uint64_t a = h[0].generation, b = h[1].generation;
    if (a == b && memcmp(mp__pg(p, 1), mp__pg(p, 2), p->ps) == 0) {
      *sel = 0;
      return MP_OK;
    }
    if (a == b + 1 || b == a + 1) {
      *sel = b > a;
      return MP_OK;
    }
    snprintf(why, whylen, "page 0's first sector is unreadable and the metadata selector cannot be rebuilt: the "
                          "copies' generations %llu and %llu are not consecutive",
             (unsigned long long)a, (unsigned long long)b);
    return MP_ECORRUPT;
  }
  for (unsigned i = 0; i < 2; i++) {
    if (!ok[i]) continue;
    if ((uint64_t)p->ps * (2 - i) < SALVAGE_SPAN_MAX) {
      snprintf(why, whylen, "page 0's first sector is unreadable and the metadata selector cannot be rebuilt: "
                            "metadata %c is damaged (%s) and may have been lost with page 0",
               'A' + !i, r[!i]);
      return MP_ECORRUPT;
    }
    *sel = i;
    return MP_OK;
  }
  snprintf(why, whylen, "page 0's first sector is unreadable and both metadata copies are damaged (A: %s; B: %s)", r[0],
           r[1]);
  return MP_ECORRUPT;
}

/* ---- directory pages ---------------------------------------------------------- */

typedef struct salvage {
  const mp_pager *p;
  const uint8_t *bm; /* the chosen copy's bitmap */
  uint64_t total;
  size_t n;                        /* directory pages found */
  uint64_t page[SALVAGE_MAX_DIRS]; /* ... their ids */
  int forced[SALVAGE_MAX_DIRS];    /* the page each must pair with (sharing an entry), or -1 */
  bool conflict[SALVAGE_MAX_DIRS][SALVAGE_MAX_DIRS];
  /* The arrangement search. */
  const bool *skip;   /* pages left out (an intent's) */
  bool skip_any;      /* ... and there are some */
  size_t k;           /* blocks in the arrangement */
  uint32_t target;    /* the section CRC as found */
  uint32_t base;      /* CRC of the section with k blocks and every reference zero */
  uint32_t *contrib;  /* [pos][a][b][act]: a reference's share of the CRC */
  bool used[SALVAGE_MAX_DIRS];
  int cur[SALVAGE_MAX_DIRS / 2][3], best[SALVAGE_MAX_DIRS / 2][3];
  uint64_t matches, leaves;
} salvage;

static bool bm_has(const salvage *s, uint64_t id) { return id < s->total && (s->bm[id >> 3] >> (id & 7) & 1); }

static bool looks_dir(const uint8_t *pg, size_t ps) {
  return mp__dir_valid(pg, ps) && !(pg[4] | pg[5] | pg[6] | pg[7]);
}

static bool names_page(const mp_pager *p, const uint8_t *dir, uint64_t id) {
  for (uint32_t e = 0; e < p->dir_cap; e++) {
    const uint8_t *en = mp__entry_at_c(dir, e);
    if (en[MP_ENTRY_IN_USE] && (mp__get64(en + MP_ENTRY_PAGE_A) == id || mp__get64(en + MP_ENTRY_PAGE_B) == id))
      return true;
  }
  return false;
}

static int find_dirs(salvage *s, char *why, size_t whylen) {
  const mp_pager *p = s->p;
  uint64_t cand[SALVAGE_MAX_DIRS + 1];
  size_t nc = 0, over = 0;
  uint64_t end = s->total < p->map_pages ? s->total : p->map_pages;
  for (uint64_t id = MP_RESERVED_PAGES; id < end; id++) {
    if (!bm_has(s, id) || !looks_dir(mp__pg(p, id), p->ps)) continue;
    if (nc < SALVAGE_MAX_DIRS + 1) cand[nc++] = id;
    else over++;
  }
  /* A protected page's copy may hold a directory page's bytes: named by an entry, it is not one. */
  s->n = 0;
  for (size_t i = 0; i < nc; i++) {
    bool named = false;
    for (size_t j = 0; j < nc && !named; j++) named = j != i && names_page(p, mp__pg(p, cand[j]), cand[i]);
    if (!named) s->page[s->n++] = cand[i];
  }
  if (s->n > SALVAGE_MAX_DIRS || over) {
    snprintf(why, whylen, "page 0's first sector is unreadable and the directory references cannot be rebuilt: "
                          "more than %d directory pages found",
             SALVAGE_MAX_DIRS);
    return MP_ECORRUPT;
  }
  for (size_t i = 0; i < s->n; i++) s->forced[i] = -1;
  for (size_t i = 0; i < s->n; i++)
    for (size_t j = i + 1; j < s->n; j++) {
      const uint8_t *a = mp__pg(p, s->page[i]), *b = mp__pg(p, s->page[j]);
      bool share = false, clash = false;
      for (uint32_t e = 0; e < p->dir_cap; e++) {
        mp_entry x, y;
        mp__entry_decode(mp__entry_at_c(a, e), &x);
        mp__entry_decode(mp__entry_at_c(b, e), &y);
        if (!x.in_use || !y.in_use) continue;
        if (x.page[0] == y.page[0] && x.page[1] == y.page[1]) share = true;
        else clash = true;
      }
      s->conflict[i][j] = s->conflict[j][i] = clash;
      if (!share) continue;
      if (clash || s->forced[i] >= 0 || s->forced[j] >= 0) {
        snprintf(why, whylen, "page 0's first sector is unreadable and the directory references cannot be rebuilt: "
                              "directory pages %llu and %llu share protected pages but cannot be one block",
                 (unsigned long long)s->page[i], (unsigned long long)s->page[j]);
        return MP_ECORRUPT;
      }
      s->forced[i] = (int)j;
      s->forced[j] = (int)i;
    }
  return MP_OK;
}

/* The pair an interrupted block append leaves (protected.c, alloc_in_new_block): an empty
 * directory page and one whose only entry, 0, is a new protected page. */
static bool empty_dir(const mp_pager *p, const uint8_t *d) {
  for (uint32_t e = 0; e < p->dir_cap; e++)
    if (mp__entry_at_c(d, e)[MP_ENTRY_IN_USE]) return false;
  return true;
}
static bool new_block_copy(const mp_pager *p, const uint8_t *d) {
  mp_entry ent;
  mp__entry_decode(mp__entry_at_c(d, 0), &ent);
  if (!ent.in_use || ent.slot || ent.generation) return false;
  for (uint32_t e = 1; e < p->dir_cap; e++)
    if (mp__entry_at_c(d, e)[MP_ENTRY_IN_USE]) return false;
  return true;
}

static void put_ref(uint8_t *ref, uint64_t a, uint64_t b, int act) {
  mp__put64(ref, a);
  mp__put64(ref + 8, b);
  ref[MP_REF_ACTIVE] = (uint8_t)act;
}

static uint32_t *contrib_at(const salvage *s, size_t pos, size_t a, size_t b, int act) {
  return &s->contrib[((pos * s->n + a) * s->n + b) * 2 + (size_t)act];
}

/* A reference's share of the section CRC at position pos: CRC-32 is affine, so the CRC
 * of the section is that of the section with the reference zeroed, XOR this. */
static void fill_contrib(salvage *s, size_t k) {
  const size_t len = s->p->ps - 4 - MP_SECTION_START;
  static const uint8_t zero[MP_REF_SIZE];
  uint32_t z = (uint32_t)crc32(0, zero, MP_REF_SIZE);
  for (size_t pos = 0; pos < k; pos++) {
    size_t at = MP_SB_REFS + (size_t)MP_REF_SIZE * pos - MP_SECTION_START;
    uLong op = crc32_combine_gen((z_off_t)(len - at - MP_REF_SIZE));
    for (size_t a = 0; a < s->n; a++)
      for (size_t b = 0; b < s->n; b++)
        for (int act = 0; act < 2; act++) {
          uint8_t ref[MP_REF_SIZE];
          put_ref(ref, s->page[a], s->page[b], act);
          uint32_t d = (uint32_t)crc32(0, ref, MP_REF_SIZE) ^ z;
          *contrib_at(s, pos, a, b, act) = (uint32_t)crc32_combine_op(d, 0, op);
        }
  }
}

/* Pages left out of an arrangement that form an append's pair: the same section with them
 * as an intent in the padding (which the checksum does not cover) is counted instead, as
 * what our appends leave, rather than a second match. */
static bool intent_left_out(const salvage *s) {
  int out[2], n = 0;
  for (size_t i = 0; i < s->n; i++)
    if (!s->used[i] && !s->skip[i]) {
      if (n == 2) return false;
      out[n++] = (int)i;
    }
  if (n != 2 || s->skip_any || s->forced[out[0]] >= 0 || s->forced[out[1]] >= 0) return false;
  for (int o = 0; o < 2; o++)
    if (empty_dir(s->p, mp__pg(s->p, s->page[out[o]])) && new_block_copy(s->p, mp__pg(s->p, s->page[out[!o]])))
      return true;
  return false;
}

static void search(salvage *s, size_t pos, uint32_t acc) {
  if (s->matches > 1 || s->leaves > SALVAGE_BUDGET) return;
  if (pos == s->k) {
    s->leaves++;
    if ((s->base ^ acc) == s->target && !intent_left_out(s) && s->matches++ == 0) memcpy(s->best, s->cur, sizeof s->cur);
    return;
  }
  for (size_t a = 0; a < s->n; a++) {
    if (s->used[a] || s->skip[a]) continue;
    for (size_t b = 0; b < s->n; b++) {
      if (b == a || s->used[b] || s->skip[b] || s->conflict[a][b]) continue;
      if ((s->forced[a] >= 0 && s->forced[a] != (int)b) || (s->forced[b] >= 0 && s->forced[b] != (int)a)) continue;
      s->used[a] = s->used[b] = true;
      for (int act = 0; act < 2; act++) {
        s->cur[pos][0] = (int)a, s->cur[pos][1] = (int)b, s->cur[pos][2] = act;
        search(s, pos + 1, acc ^ *contrib_at(s, pos, a, b, act));
      }
      s->used[a] = s->used[b] = false;
    }
  }
}

/* Writes the superblock a salvage rebuilds into out[0, MP_SB_REFS). */
static void put_superblock(const mp_pager *p, uint8_t *out, unsigned sel, bool ours, uint32_t dc) {
  memcpy(out + MP_SB_TAG, "MPPG", 4);
  out[MP_SB_VERSION + 0] = MP_VERSION_MAJOR;
  out[MP_SB_VERSION + 1] = MP_VERSION_MINOR;
  out[MP_SB_VERSION + 2] = 0;
  out[MP_SB_VERSION + 3] = ours ? MP_BUILD_MIRRORED : 0;
  mp__put32(out + MP_SB_LOG2, p->log2);
  out[MP_SB_ACTIVE_META] = (uint8_t)sel;
  out[13] = out[14] = out[15] = 0;
  mp__put32(out + MP_SB_META_CRC, mp__crc32(0, mp__pg(p, 1 + sel), p->ps));
  mp__put32(out + MP_SB_DIR_COUNT, dc);
}

/* Entries in use in one copy and not the other, or naming other pages. */
static unsigned alloc_diffs(const mp_pager *p, const uint8_t *a, const uint8_t *b) {
  unsigned n = 0;
  for (uint32_t e = 0; e < p->dir_cap; e++) {
    mp_entry x, y;
    mp__entry_decode(mp__entry_at_c(a, e), &x);
    mp__entry_decode(mp__entry_at_c(b, e), &y);
    if (x.in_use != y.in_use || (x.in_use && (x.page[0] != y.page[0] || x.page[1] != y.page[1]))) n++;
  }
  return n;
}

static bool mirrored(const mp_pager *p, const uint8_t *p0) {
  uint32_t dc = mp__get32(p0 + MP_SB_DIR_COUNT);
  unsigned diffs = 0;
  for (uint32_t i = 0; i < dc; i++) {
    const uint8_t *ref = p0 + MP_SB_REFS + (size_t)MP_REF_SIZE * i;
    diffs += alloc_diffs(p, mp__pg(p, mp__get64(ref)), mp__pg(p, mp__get64(ref + 8)));
  }
  return diffs <= 1;
}

/* Every in-use entry names two distinct pages the bitmap allocates: a copy that could be current. */
static bool copy_fits(const salvage *s, const uint8_t *d) {
  for (uint32_t e = 0; e < s->p->dir_cap; e++) {
    mp_entry ent;
    mp__entry_decode(mp__entry_at_c(d, e), &ent);
    if (ent.in_use && (ent.page[0] == ent.page[1] || ent.page[0] < MP_RESERVED_PAGES ||
                       ent.page[1] < MP_RESERVED_PAGES || !bm_has(s, ent.page[0]) || !bm_has(s, ent.page[1])))
      return false;
  }
  return true;
}

/* One block from its two copies, without a checksum to say which is current: see the top. */
static int pick_copy(const salvage *s, const uint8_t *x, const uint8_t *y, int *act) {
  const mp_pager *p = s->p;
  bool x_fits = copy_fits(s, x), y_fits = copy_fits(s, y);
  if (x_fits != y_fits) {
    /* A free's pages freed (the metadata's after-state): the copy still naming them is not current. */
    *act = y_fits;
    return MP_OK;
  }
  if (!x_fits) return MP_ECORRUPT;
  bool x_more = false, y_more = false, x_newer = false, y_newer = false;
  for (uint32_t e = 0; e < p->dir_cap; e++) {
    mp_entry a, b;
    mp__entry_decode(mp__entry_at_c(x, e), &a);
    mp__entry_decode(mp__entry_at_c(y, e), &b);
    if (a.in_use && !b.in_use) x_more = true;
    if (b.in_use && !a.in_use) y_more = true;
    if (a.in_use && b.in_use && a.generation > b.generation) x_newer = true;
    if (a.in_use && b.in_use && a.generation < b.generation) y_newer = true;
  }
  if ((x_more && y_more) || (x_newer && y_newer) || (x_more && y_newer) || (y_more && x_newer)) return MP_ECORRUPT;
  *act = y_more || y_newer;
  return MP_OK;
}

int mp__salvage(const mp_pager *p, uint8_t *out, bool *ours, char *why, size_t whylen) {
  const size_t ps = p->ps;
  unsigned sel;
  int rc = pick_meta(p, &sel, why, whylen);
  if (rc != MP_OK) return rc;
  salvage *s = mp__calloc(1, sizeof *s);
  if (!s) return MP_ENOMEM;
  s->p = p;
  s->bm = mp__pg(p, 1 + sel) + MP_META_BITMAP;
  s->total = mp__get64(mp__pg(p, 1 + sel) + MP_META_TOTAL);
  if ((rc = find_dirs(s, why, whylen)) != MP_OK) goto done;
  s->contrib = mp__malloc((SALVAGE_MAX_DIRS / 2) * s->n * s->n * 2 * sizeof *s->contrib + 1);
  uint8_t *sect = mp__malloc(ps);
  if (!s->contrib || !sect) {
    free(sect);
    rc = MP_ENOMEM;
    goto done;
  }
  fill_contrib(s, s->n / 2);
  s->target = mp__get32(p->map + ps - 4);

  /* With the checksum: for each span the garbage may have had, each set of pages (all, or
   * all but an append's pair left as an intent), every arrangement. */
  bool skip[SALVAGE_MAX_DIRS] = {false};
  s->skip = skip;
  const size_t spans[2] = {512, SALVAGE_SPAN_MAX};
  bool done_search = false;
  for (size_t sp = 0; sp < 2 && !done_search; sp++) {
    size_t span = spans[sp];
    if (span >= ps - 4 || (sp == 1 && ps <= SALVAGE_SPAN_MAX)) break;
    bool clean = true; /* the references must all lie in the garbage: past it, only zeros */
    for (size_t i = span; i < ps - 4 && clean; i++) clean = p->map[i] == 0;
    if (!clean) continue;
    uint64_t total_matches = 0;
    int sol[SALVAGE_MAX_DIRS / 2][3];
    size_t sol_k = 0;
    int sol_intent[2] = {-1, -1};
    for (int ia = -1; ia < (int)s->n; ia++) {
      for (int ib = ia < 0 ? -1 : 0; ib < (ia < 0 ? 0 : (int)s->n); ib++) {
        if (ia >= 0) {
          if (ib == ia || s->forced[ia] >= 0 || s->forced[ib] >= 0) continue;
          if (!empty_dir(p, mp__pg(p, s->page[ia])) || !new_block_copy(p, mp__pg(p, s->page[ib]))) continue;
          skip[ia] = skip[ib] = true;
        }
        s->skip_any = ia >= 0;
        size_t rest = s->n - (ia >= 0 ? 2 : 0);
        /* Fewer blocks than pairs too: a regular page may hold a directory page's bytes. */
        for (size_t k = 0; k <= rest / 2 && k * MP_REF_SIZE + MP_SB_REFS + (ia >= 0 ? MP_REF_SIZE : 0) <= span; k++) {
          s->k = k;
          memset(sect, 0, ps);
          memcpy(sect + span, p->map + span, ps - span);
          mp__put32(sect + MP_SB_DIR_COUNT, (uint32_t)s->k);
          s->base = mp__section_crc(sect, ps);
          s->matches = 0;
          memset(s->used, 0, sizeof s->used);
          search(s, 0, 0);
          if (s->leaves > SALVAGE_BUDGET) {
            snprintf(why, whylen, "page 0's first sector is unreadable and the directory references cannot be "
                                  "rebuilt: %zu directory pages found, too many ways to arrange them",
                     s->n);
            rc = MP_ECORRUPT;
            free(sect);
            goto done;
          }
          if (s->matches) {
            total_matches += s->matches;
            memcpy(sol, s->best, sizeof sol);
            sol_k = s->k;
            sol_intent[0] = ia, sol_intent[1] = ib;
          }
        }
        if (ia >= 0) skip[ia] = skip[ib] = false;
      }
    }
    if (total_matches > 1) {
      snprintf(why, whylen, "page 0's first sector is unreadable and the directory references cannot be rebuilt: "
                            "%zu directory pages found, and several arrangements of them match page 0's checksum",
               s->n);
      rc = MP_ECORRUPT;
      free(sect);
      goto done;
    }
    if (total_matches == 1) {
      memset(out, 0, ps);
      memcpy(out + span, p->map + span, ps - span);
      for (size_t i = 0; i < sol_k; i++)
        put_ref(out + MP_SB_REFS + (size_t)MP_REF_SIZE * i, s->page[sol[i][0]], s->page[sol[i][1]], sol[i][2]);
      if (sol_intent[0] >= 0)
        put_ref(out + MP_SB_REFS + (size_t)MP_REF_SIZE * sol_k, s->page[sol_intent[0]], s->page[sol_intent[1]], 0);
      put_superblock(p, out, sel, false, (uint32_t)sol_k);
      done_search = true;
    }
  }
  free(sect);
  if (!done_search) {
    /* The checksum vouches for nothing: it may have been in the garbage (see the top). */
    int act = 0;
    size_t lo = s->n == 2 && s->page[0] > s->page[1]; /* page_a is the lower page */
    /* Two empty directory pages are an empty block, or two regular pages holding its bytes:
     * only the checksum could tell. */
    bool empty = s->n == 2 && empty_dir(p, mp__pg(p, s->page[0])) && empty_dir(p, mp__pg(p, s->page[1]));
    if (ps > SALVAGE_SPAN_MAX || (s->n != 0 && s->n != 2) || empty ||
        (s->n == 2 &&
         (s->conflict[0][1] || pick_copy(s, mp__pg(p, s->page[lo]), mp__pg(p, s->page[!lo]), &act) != MP_OK))) {
      snprintf(why, whylen, "page 0's first sector is unreadable and the directory references cannot be rebuilt: "
                            "%zu directory pages found, and %s",
               s->n,
               ps > SALVAGE_SPAN_MAX ? "no arrangement of them matches page 0's checksum"
               : empty               ? "without page 0's checksum an empty block cannot be told from two regular "
                                       "pages holding its bytes"
               : s->n == 2           ? "their two copies cannot be told apart without page 0's checksum"
                                     : "without page 0's checksum at most one block can be placed");
      rc = MP_ECORRUPT;
      goto done;
    }
    memset(out, 0, ps);
    if (s->n == 2) put_ref(out + MP_SB_REFS, s->page[lo], s->page[!lo], act);
    put_superblock(p, out, sel, false, (uint32_t)(s->n / 2));
    mp__put32(out + ps - 4, mp__section_crc(out, ps));
  }
  *ours = mirrored(p, out);
  out[MP_SB_VERSION + 3] = *ours ? MP_BUILD_MIRRORED : 0;
  rc = MP_OK;
done:
  free(s->contrib);
  free(s);
  return rc;
}
