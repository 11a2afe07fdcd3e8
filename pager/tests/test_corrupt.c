/* test_corrupt.c: opening a damaged file never crashes and either refuses it with a reason
 * or yields a pager that mp_check finds consistent; every torn page-0 write recovers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "mappedpages.h"
#include "support.h"

/* Offsets spelled out from FORMAT.md rather than taken from layout.h, so that the
 * test holds the library to the document and not to itself. */
enum {
  SB_ACTIVE = 12,
  SB_METACRC = 16,
  SB_DC = 20,
  SB_REFS = 24,
  REF = 17,
  REF_ACT = 16,
  SECT = 20, /* the section CRC covers [20, ps - 4) */
  M_TOTAL = 0,
  M_GEN = 8,
  M_FREE = 16,
  M_BM = 24,
  D_CAP = 0,
  D_ENT = 8,
  ENT = 30,
  E_USE = 0,
  E_A = 1,
  E_B = 9,
  E_SLOT = 17,
  E_GEN = 18,
  E_CRC = 26,
  SECTOR = 512,
  MAXB = 256
};

/* ---- soft failures ------------------------------------------------------------
 * The corruption tables go on after a failed case, so that one run lists every
 * case the library gets wrong; each test asserts at its end that there was none. */
static unsigned g_bad;
static unsigned g_images; /* images opened, to show that a table really ran */
static bool g_incomplete_ok; /* truncation may leave what looks like an interrupted create */

__attribute__((format(printf, 1, 2))) static void bad(const char *fmt, ...) {
  g_bad++;
  if (g_bad > 120) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "  BAD: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

static void finish(const char *what) {
  unsigned n = g_bad, images = g_images;
  g_bad = g_images = 0;
  print_message("%s: %u images, each opened read-write and read-only\n", what, images);
  if (n) fprintf(stderr, "%s: %u bad case(s)\n", what, n);
  assert_true(images > 0);
  assert_int_equal(n, 0);
}

/* ---- raw image helpers ----------------------------------------------------- */

static void reseal_section(uint8_t *p0, size_t ps) { t_put32(p0 + ps - 4, t_crc(p0 + SECT, ps - 4 - SECT)); }
static void reseal_page(uint8_t *pg, size_t ps) { t_put32(pg + ps - 4, t_crc(pg, ps - 4)); }

typedef struct layout {
  size_t ps, npages;
  unsigned sel;      /* active metadata copy */
  uint64_t total;    /* from the active copy */
  uint32_t dc, cap;  /* directory references, entries per directory page */
  uint64_t ref[MAXB][2];
  uint8_t act[MAXB];
  uint8_t *owned;    /* per page: 1 if a directory structure uses it */
} layout;

static void parse(const uint8_t *b, size_t len, layout *L) {
  memset(L, 0, sizeof *L);
  L->ps = (size_t)1 << t_le32(b + 8);
  L->npages = len / L->ps;
  L->sel = b[SB_ACTIVE];
  L->total = t_le64(b + L->ps * (1 + L->sel) + M_TOTAL);
  L->dc = t_le32(b + SB_DC);
  L->cap = (uint32_t)((L->ps - 12) / ENT);
  assert_true(L->dc <= MAXB);
  L->owned = calloc(L->total, 1);
  for (uint32_t i = 0; i < L->dc; i++) {
    const uint8_t *r = b + SB_REFS + REF * i;
    L->ref[i][0] = t_le64(r);
    L->ref[i][1] = t_le64(r + 8);
    L->act[i] = r[REF_ACT];
    L->owned[L->ref[i][0]] = L->owned[L->ref[i][1]] = 1;
    const uint8_t *cur = b + L->ps * L->ref[i][L->act[i]];
    for (uint32_t e = 0; e < L->cap; e++) {
      const uint8_t *en = cur + D_ENT + ENT * e;
      if (!en[E_USE]) continue;
      L->owned[t_le64(en + E_A)] = L->owned[t_le64(en + E_B)] = 1;
    }
  }
}

static uint8_t *meta_of(uint8_t *b, const layout *L, unsigned copy) { return b + L->ps * (1 + copy); }
static bool bm_bit(const uint8_t *img, const layout *L, uint64_t id) {
  return img[L->ps * (1 + L->sel) + M_BM + id / 8] >> (id % 8) & 1;
}
static uint8_t *dir_page(uint8_t *b, const layout *L, uint32_t blk, bool current) {
  return b + L->ps * L->ref[blk][current ? L->act[blk] : !L->act[blk]];
}
/* First page >= 3 that is free / allocated but owned by no structure (a regular page). */
static uint64_t find_page(const uint8_t *img, const layout *L, bool allocated) {
  for (uint64_t id = 3; id < L->total; id++)
    if (bm_bit(img, L, id) == allocated && !L->owned[id]) return id;
  return 0;
}

/* ---- what a pager shows ------------------------------------------------------ */

typedef struct snap {
  uint64_t total, free, leaked;
  size_t nreg, nprot;
  uint64_t *reg, *prot;
  uint32_t *sum; /* CRC of the content mp_protected_read returned */
  int *prc;      /* its return code */
} snap;

static void snap_free(snap *s) {
  free(s->reg);
  free(s->prot);
  free(s->sum);
  free(s->prc);
  memset(s, 0, sizeof *s);
}

/* Reads everything the API exposes, touching every page it hands out so that a
 * pointer outside the mapping shows up under ASan or as a fault. */
static void snap_take(mp_pager *p, snap *s) {
  memset(s, 0, sizeof *s);
  s->total = mp_page_count(p);
  s->free = mp_free_count(p);
  s->leaked = mp_leaked_count(p);
  size_t ps = mp_page_size(p);
  uint64_t guard = s->total + 2;
  for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK && guard--; id++) {
    s->reg = realloc(s->reg, (s->nreg + 1) * sizeof *s->reg);
    s->reg[s->nreg++] = id;
    void *d;
    if (mp_page(p, id, &d) == MP_OK) {
      volatile uint8_t *v = d;
      (void)v[0];
      (void)v[ps - 1];
    }
  }
  guard = (uint64_t)1 << 20;
  for (uint64_t id = 0; mp_next_protected(p, id, &id) == MP_OK && guard--; id++) {
    s->prot = realloc(s->prot, (s->nprot + 1) * sizeof *s->prot);
    s->sum = realloc(s->sum, (s->nprot + 1) * sizeof *s->sum);
    s->prc = realloc(s->prc, (s->nprot + 1) * sizeof *s->prc);
    const void *d = NULL;
    int rc = mp_protected_read(p, id, &d);
    s->prot[s->nprot] = id;
    s->prc[s->nprot] = rc;
    s->sum[s->nprot] = rc == MP_OK ? t_crc(d, ps) : 0;
    s->nprot++;
  }
}

static bool same_sets(const snap *a, const snap *b) {
  if (a->nreg != b->nreg || a->nprot != b->nprot) return false;
  if (a->nreg && memcmp(a->reg, b->reg, a->nreg * 8) != 0) return false;
  for (size_t i = 0; i < a->nprot; i++)
    if (a->prot[i] != b->prot[i] || a->prc[i] != b->prc[i] || a->sum[i] != b->sum[i]) return false;
  return true;
}

static void snap_desc(const snap *s, char *buf, size_t len) {
  int n = snprintf(buf, len, "%llu pages, %llu free, %llu leaked, %zu regular, protected {",
                   (unsigned long long)s->total, (unsigned long long)s->free, (unsigned long long)s->leaked, s->nreg);
  for (size_t i = 0; i < s->nprot && n > 0 && (size_t)n < len; i++)
    n += snprintf(buf + n, len - (size_t)n, "%s%llu:%08x", i ? " " : "", (unsigned long long)s->prot[i],
                  (unsigned)s->sum[i]);
  if (n > 0 && (size_t)n < len) snprintf(buf + n, len - (size_t)n, "}");
}

static bool snap_same(const snap *a, const snap *b) {
  return a->total == b->total && a->free == b->free && a->leaked == b->leaked && same_sets(a, b);
}

/* ---- mp_check findings ----------------------------------------------------- */

typedef struct findings {
  unsigned n, structural;
  char first[300];
} findings;

/* A protected page whose content does not match its entry's CRC is damage that the
 * format detects on read, not a structural inconsistency. */
static bool content_finding(const char *msg) {
  /* Likewise a damaged current metadata copy that the pager replaced with the one
   * before it: mp_check reports the damage on disk, the state in use is whole. */
  return strstr(msg, "checksum in its entry") != NULL || strstr(msg, "the pager uses the other copy") != NULL;
}

static void collect(void *arg, const char *msg) {
  findings *f = arg;
  if (!f->n) snprintf(f->first, sizeof f->first, "%s", msg);
  f->n++;
  if (!content_finding(msg)) {
    if (!f->structural && f->n > 1) snprintf(f->first, sizeof f->first, "%s", msg);
    f->structural++;
  }
}

static findings check(mp_pager *p) {
  findings f = {0};
  if (mp_check(p, collect, &f, NULL) != MP_OK) {
    f.structural++;
    snprintf(f.first, sizeof f.first, "mp_check did not run");
  }
  return f;
}

/* ---- one damaged image, opened read-write and read-only --------------------- */

enum ex {
  EX_FAIL, /* a valid file cannot look like this: the open must be refused */
  EX_MAY,  /* refused, or opened consistently */
  EX_SAME, /* the damage is harmless: opens with the state of the undamaged file */
  EX_CRCBAD /* opens; the named protected page reads as MP_ECORRUPT; mp_check says so */
};

static const char *ex_name(enum ex e) {
  return e == EX_FAIL ? "must be refused" : e == EX_MAY ? "may open" : e == EX_SAME ? "must open unchanged" : "crc";
}

static bool refusal_ok(int rc) {
  return rc == MP_ECORRUPT || rc == MP_EVERSION || (g_incomplete_ok && rc == MP_EINCOMPLETE);
}

/* Returns a bit per mode (1 = RW, 2 = RDONLY) that opened. */
static int try_image(const uint8_t *img, size_t len, enum ex ex, const snap *base, uint64_t pid, const char *label) {
  int opened = 0;
  g_images++;
  for (int ro = 0; ro < 2; ro++) {
    const char *mode = ro ? "RDONLY" : "RW";
    const char *path = t_path(1, "case.img");
    if (t_write_file(path, img, len) != 0) {
      bad("%s: cannot write the image", label);
      return 0;
    }
    mp_pager *p = NULL;
    char why[256] = "";
    int rc = mp_open_explain(path, ro ? MP_RDONLY : 0, &p, why, sizeof why);
    if (rc != MP_OK) {
      if (!refusal_ok(rc)) bad("%s [%s]: refused with %d (%s), not ECORRUPT/EVERSION", label, mode, rc, why);
      if (!why[0]) bad("%s [%s]: refused with an empty reason", label, mode);
      if (ex == EX_SAME || ex == EX_CRCBAD) bad("%s [%s]: refused (%s) but %s", label, mode, why, ex_name(ex));
      continue;
    }
    opened |= 1 << ro;
    findings f = check(p);
    if (ex == EX_FAIL) {
      bad("%s [%s]: opened but must be refused (mp_check: %u finding(s)%s%s)", label, mode, f.n, f.n ? ", first: " : "",
          f.first);
    } else if (ex == EX_CRCBAD) {
      const void *d;
      int r = mp_protected_read(p, pid, &d);
      if (r != MP_ECORRUPT) bad("%s [%s]: mp_protected_read(%llu) = %d, want MP_ECORRUPT", label, mode, (unsigned long long)pid, r);
      if (f.n == 0) bad("%s [%s]: mp_check reports nothing for a damaged protected page", label, mode);
      if (f.structural) bad("%s [%s]: mp_check structural finding: %s", label, mode, f.first);
    } else if (f.structural || (ex == EX_SAME && f.n)) {
      bad("%s [%s]: opened but mp_check reports %u finding(s), first: %s", label, mode, f.n, f.first);
    }
    snap s;
    snap_take(p, &s);
    if (ex == EX_MAY && base && getenv("MP_TEST_VERBOSE") && !snap_same(&s, base)) {
      char a[400];
      snap_desc(&s, a, sizeof a);
      print_message("  note: %s [%s]: opened with a different state: %s\n", label, mode, a);
    }
    if (ex == EX_SAME && base && !snap_same(&s, base)) {
      char a[400], b[400];
      snap_desc(&s, a, sizeof a);
      snap_desc(base, b, sizeof b);
      bad("%s [%s]: harmless damage changed the state: got %s; want %s", label, mode, a, b);
    }
    snap_free(&s);
    mp_close(p);
  }
  return opened;
}

/* ---- building files through the API -------------------------------------- */

static void write_prot(mp_pager *p, uint64_t id, uint8_t v) {
  void *d;
  assert_int_equal(mp_protected_begin(p, id, &d), MP_OK);
  memset(d, v, mp_page_size(p));
  t_put64(d, id);
  assert_int_equal(mp_protected_commit(p, id), MP_OK);
}

static void write_reg(mp_pager *p, uint64_t id, uint8_t v) {
  void *d;
  assert_int_equal(mp_page(p, id, &d), MP_OK);
  memset(d, v, mp_page_size(p));
  assert_int_equal(mp_sync_page(p, id), MP_OK);
}

/* Regular pages with data, protected pages with committed writes (some twice, so
 * both slots hold current copies), a freed regular and a freed protected page for
 * holes, and a protected commit last. */
static uint8_t *build_file(size_t ps, unsigned nreg, unsigned nprot, size_t *len) {
  const char *path = t_path(0, "build.img");
  mp_pager *p;
  assert_int_equal(mp_create(path, ps, &p), MP_OK);
  uint64_t reg[64], prot[256];
  assert_true(nreg <= 64 && nprot <= 256);
  for (unsigned i = 0; i < nreg; i++) {
    assert_int_equal(mp_alloc(p, &reg[i]), MP_OK);
    write_reg(p, reg[i], (uint8_t)(0x11 * (i + 1)));
  }
  for (unsigned i = 0; i < nprot; i++) {
    assert_int_equal(mp_protected_alloc(p, &prot[i]), MP_OK);
    write_prot(p, prot[i], (uint8_t)(0xA0 + i));
  }
  for (unsigned i = 0; i < nprot; i += 3) write_prot(p, prot[i], (uint8_t)(0x30 + i));
  if (nreg > 2) assert_int_equal(mp_free(p, reg[1]), MP_OK);
  if (nprot > 3) assert_int_equal(mp_protected_free(p, prot[2]), MP_OK);
  write_prot(p, prot[0], 0x5A);
  unsigned n;
  assert_int_equal(mp_check(p, NULL, NULL, &n), MP_OK);
  assert_int_equal(n, 0);
  assert_int_equal(mp_close(p), MP_OK);
  uint8_t *b = t_read_file(path, len);
  assert_non_null(b);
  return b;
}

static void snap_of_image(const uint8_t *img, size_t len, snap *s) {
  const char *path = t_path(1, "base.img");
  assert_int_equal(t_write_file(path, img, len), 0);
  mp_pager *p;
  char why[256] = "";
  int rc = mp_open_explain(path, MP_RDONLY, &p, why, sizeof why);
  if (rc != MP_OK) fail_msg("undamaged image refused: %s", why);
  findings f = check(p);
  if (f.n) fail_msg("undamaged image: mp_check: %s", f.first);
  snap_take(p, s);
  mp_close(p);
}

/* ---- 1. every field of every structure ------------------------------------ */

/* Expectation for a page number written into a structure, given what the page is:
 * anything but an allocated page that nothing else owns cannot be valid. */
static enum ex page_expect(const uint8_t *img, const layout *L, uint64_t v, uint64_t sibling) {
  if (v < 3 || v >= L->total || v == sibling) return EX_FAIL;
  if (!bm_bit(img, L, v) || L->owned[v]) return EX_FAIL;
  return EX_MAY; /* a regular page: nothing says it is not the structure's */
}

static void corrupt_suite(const uint8_t *base, size_t len, const char *name) {
  layout L;
  parse(base, len, &L);
  const size_t ps = L.ps;
  snap bs;
  snap_of_image(base, len, &bs);
  uint8_t *m = malloc(len);
  char label[256];
  const uint64_t freepg = find_page(base, &L, false), regpg = find_page(base, &L, true);
  assert_true(freepg && regpg);
  /* A page some structure owns, for "equal to another structure's page". */
  uint64_t ownedpg = 0;
  for (uint64_t id = 3; id < L.total && !ownedpg; id++)
    if (L.owned[id]) ownedpg = id;

#define RESET() memcpy(m, base, len)
#define CASE(ex, pid, ...)                         \
  do {                                             \
    snprintf(label, sizeof label, __VA_ARGS__);    \
    try_image(m, len, (ex), &bs, (pid), label);    \
  } while (0)

  /* -- superblock -- */
  /* Without its tag, page 0's first sector is taken for garbage and rebuilt from the
   * other pages (salvage.c): here they are intact, so the state is the file's. */
  for (int i = 0; i < 4; i++) {
    RESET();
    m[i] ^= 0x20;
    CASE(EX_SAME, 0, "%s: tag byte %d", name, i);
  }
  static const struct { int at; uint8_t v; enum ex ex; } ver[] = {
      {4, 1, EX_FAIL}, {4, 0xFF, EX_FAIL}, {5, 3, EX_FAIL}, {5, 0xFF, EX_FAIL},
      /* The compatibility rule: minor <= 2, patch and build not checked. */
      {5, 1, EX_SAME}, {5, 0, EX_SAME}, {6, 9, EX_SAME}, {7, 0, EX_SAME}, {7, 0xAA, EX_SAME}};
  for (size_t i = 0; i < sizeof ver / sizeof ver[0]; i++) {
    RESET();
    m[ver[i].at] = ver[i].v;
    CASE(ver[i].ex, 0, "%s: version byte %d = %u", name, ver[i].at, ver[i].v);
  }
  unsigned mylog = t_le32(base + 8);
  static const uint32_t logs[] = {0, 9, 25, 31, 0xFFFFFFFFu, 0x100000Au, 10, 11, 12, 13, 14, 16, 24};
  for (size_t i = 0; i < sizeof logs / sizeof logs[0]; i++) {
    if (logs[i] == mylog) continue;
    RESET();
    t_put32(m + 8, logs[i]);
    CASE(EX_FAIL, 0, "%s: page_size_log2 = %u (file has %u)", name, logs[i], mylog);
  }
  RESET();
  m[SB_ACTIVE] = 2;
  CASE(EX_FAIL, 0, "%s: active_meta = 2", name);
  RESET();
  m[SB_ACTIVE] = 255;
  CASE(EX_FAIL, 0, "%s: active_meta = 255", name);
  RESET();
  m[SB_ACTIVE] ^= 1;
  CASE(EX_MAY, 0, "%s: active_meta toggled (selects the previous generation)", name);
  for (int i = 13; i < 16; i++) {
    RESET();
    m[i] = 1;
    CASE(EX_FAIL, 0, "%s: superblock byte %d = 1 (must be zero)", name, i);
  }
  for (int i = 0; i < 4; i++) {
    RESET();
    m[SB_METACRC + i] ^= 1;
    CASE(EX_FAIL, 0, "%s: meta_checksum byte %d flipped", name, i);
  }

  /* -- dir_count: raw (CRC mismatch), then with the CRC recomputed -- */
  const uint32_t maxref = (uint32_t)((ps - 28) / REF);
  struct { uint32_t v; enum ex raw, sealed; } dcs[] = {
      {maxref + 1, EX_FAIL, EX_FAIL},
      {0xFFFFFFFFu, EX_FAIL, EX_FAIL},
      {1000000, EX_FAIL, EX_FAIL},
      /* A torn append explains +1 and -1 when the CRC is the old one; with the CRC
       * recomputed, +1 counts an all-zero reference (page 0), -1 drops a block whose
       * pages then look like regular pages: consistent, if not the same. */
      {L.dc + 1, EX_SAME, EX_FAIL},
      {L.dc - 1, EX_SAME, EX_MAY},
      {0, L.dc == 1 ? EX_SAME : EX_MAY, EX_MAY},
  };
  for (size_t i = 0; i < sizeof dcs / sizeof dcs[0]; i++) {
    RESET();
    t_put32(m + SB_DC, dcs[i].v);
    CASE(dcs[i].raw, 0, "%s: dir_count %u -> %u, CRC not updated", name, L.dc, dcs[i].v);
    reseal_section(m, ps);
    CASE(dcs[i].sealed, 0, "%s: dir_count %u -> %u, CRC recomputed", name, L.dc, dcs[i].v);
  }

  /* -- every byte of every reference -- */
  static const uint8_t xors[] = {0x01, 0x80, 0xFF};
  for (uint32_t b = 0; b < L.dc; b++) {
    for (int j = 0; j < REF; j++) {
      for (size_t x = 0; x < sizeof xors; x++) {
        size_t at = SB_REFS + (size_t)REF * b + (size_t)j;
        RESET();
        m[at] ^= xors[x];
        /* Raw: only the selector's 0/1 toggle is a torn write the CRC explains. */
        CASE(j == REF_ACT && xors[x] == 1 ? EX_SAME : EX_FAIL, 0, "%s: reference %u byte %d ^ %02x, CRC not updated",
             name, b, j, xors[x]);
        reseal_section(m, ps);
        enum ex ex;
        if (j == REF_ACT)
          ex = xors[x] == 1 ? EX_MAY : EX_FAIL; /* the mirror copy, or a selector > 1 */
        else {
          int k = j < 8 ? 0 : 1;
          ex = page_expect(base, &L, t_le64(m + SB_REFS + (size_t)REF * b + 8 * k), L.ref[b][!k]);
        }
        CASE(ex, 0, "%s: reference %u byte %d ^ %02x, CRC recomputed", name, b, j, xors[x]);
      }
    }
    /* The named bad values for page_a and page_b. */
    for (int k = 0; k < 2; k++) {
      uint64_t other_struct = b + 1 < L.dc ? L.ref[b + 1][0] : b ? L.ref[0][1] : 0;
      uint64_t vals[] = {L.total, L.total + 1000, UINT64_MAX, 0, 1, 2, L.ref[b][!k], ownedpg, freepg, other_struct};
      for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        if (vals[i] == L.ref[b][k] || (i == 9 && !other_struct)) continue;
        RESET();
        t_put64(m + SB_REFS + (size_t)REF * b + 8 * k, vals[i]);
        CASE(EX_FAIL, 0, "%s: reference %u page_%c = %llu, CRC not updated", name, b, 'a' + k,
             (unsigned long long)vals[i]);
        reseal_section(m, ps);
        CASE(EX_FAIL, 0, "%s: reference %u page_%c = %llu, CRC recomputed", name, b, 'a' + k,
             (unsigned long long)vals[i]);
      }
    }
    RESET();
    m[SB_REFS + REF * b + REF_ACT] = 2;
    reseal_section(m, ps);
    CASE(EX_FAIL, 0, "%s: reference %u active = 2, CRC recomputed", name, b);
  }
  for (int i = 0; i < 4; i++) {
    RESET();
    m[ps - 4 + (size_t)i] ^= 1;
    CASE(EX_FAIL, 0, "%s: section CRC byte %d flipped", name, i);
  }
  /* Padding past the references: the CRC covers it, and no valid file uses it. */
  {
    size_t pad = SB_REFS + (size_t)REF * L.dc;
    size_t spots[] = {pad, pad + 3, pad + REF + 5, (pad + ps - 4) / 2, ps - 5};
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
      RESET();
      m[spots[i]] = i == 0 ? (uint8_t)regpg : 0x55;
      CASE(EX_SAME, 0, "%s: padding byte %zu = %u, CRC not updated", name, spots[i], m[spots[i]]);
      reseal_section(m, ps);
      CASE(EX_SAME, 0, "%s: padding byte %zu = %u, CRC recomputed", name, spots[i], m[spots[i]]);
    }
  }

  /* -- metadata: the current copy, the other copy, both -- */
  const char *wn[3] = {"current", "other", "both"};
  const uint64_t capacity = (uint64_t)(ps - 28) * 8;
  for (int w = 0; w < 3; w++) {
    unsigned copies[2], nc = 0;
    if (w != 1) copies[nc++] = L.sel;
    if (w != 0) copies[nc++] = !L.sel;
    /* The other copy alone is harmless. The current copy is never written while
     * current, so no crash leaves it damaged. A current copy that is whole (its CRC
     * matches) but wrong must be refused; one whose CRC fails is media damage, for
     * which the pager falls back to the other copy if it is the generation just
     * before (losing the last metadata commit, as FORMAT.md's weakness 4 asks),
     * or refuses: either is fine here. */
    enum ex invalid = w == 1 ? EX_SAME : EX_FAIL;
    enum ex crc_broken = w == 1 ? EX_SAME : w == 0 ? EX_MAY : EX_FAIL;
#define META_CASE(ex, ...)                                     \
  do {                                                         \
    snprintf(label, sizeof label, __VA_ARGS__);                \
    char l2[300];                                              \
    snprintf(l2, sizeof l2, "%s: metadata (%s): %s", name, wn[w], label); \
    try_image(m, len, (ex), &bs, 0, l2);                       \
  } while (0)
#define FOR_COPIES(stmt)                            \
  for (unsigned c = 0; c < nc; c++) {               \
    uint8_t *pg = meta_of(m, &L, copies[c]);        \
    stmt;                                           \
  }
    RESET();
    FOR_COPIES(pg[ps - 1] ^= 1);
    META_CASE(crc_broken, "trailing CRC flipped");
    RESET();
    FOR_COPIES(pg[M_TOTAL + 3] ^= 0x10);
    META_CASE(crc_broken, "total_pages flipped, CRC not updated");
    uint64_t totals[] = {0, 2, L.npages + 1, capacity + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++) {
      RESET();
      FOR_COPIES((t_put64(pg + M_TOTAL, totals[i]), reseal_page(pg, ps)));
      META_CASE(invalid, "total_pages = %llu, CRC recomputed", (unsigned long long)totals[i]);
    }
    RESET();
    FOR_COPIES(pg[M_GEN] ^= 2);
    META_CASE(crc_broken, "generation changed, CRC not updated");
    RESET();
    FOR_COPIES((t_put64(pg + M_GEN, t_le64(pg + M_GEN) + 7), reseal_page(pg, ps)));
    META_CASE(EX_SAME, "generation + 7, CRC recomputed");
    for (int d = -1; d <= 1; d += 2) {
      RESET();
      FOR_COPIES((t_put64(pg + M_FREE, t_le64(pg + M_FREE) + (uint64_t)(int64_t)d), reseal_page(pg, ps)));
      META_CASE(invalid, "free_count %+d, CRC recomputed", d);
    }
    for (int bit = 0; bit < 3; bit++) {
      RESET();
      FOR_COPIES((pg[M_BM] &= (uint8_t) ~(1u << bit), t_put64(pg + M_FREE, t_le64(pg + M_FREE) + 1), reseal_page(pg, ps)));
      META_CASE(invalid, "reserved page %d marked free (free_count adjusted), CRC recomputed", bit);
    }
    uint64_t past[] = {L.total, L.total + 9, (uint64_t)(ps - 4 - M_BM) * 8 - 1};
    for (size_t i = 0; i < 3; i++) {
      RESET();
      FOR_COPIES((pg[M_BM + past[i] / 8] |= (uint8_t)(1u << (past[i] % 8)), reseal_page(pg, ps)));
      META_CASE(invalid, "bit %llu past the page count set, CRC recomputed", (unsigned long long)past[i]);
    }
    /* Structures point at pages the bitmap says are free: the file contradicts
     * itself, whichever copy page 0 selects. */
    uint64_t refd[] = {L.ref[0][0], L.ref[0][1], ownedpg};
    for (size_t i = 0; i < 3; i++) {
      RESET();
      FOR_COPIES((pg[M_BM + refd[i] / 8] &= (uint8_t) ~(1u << (refd[i] % 8)),
                  t_put64(pg + M_FREE, t_le64(pg + M_FREE) + 1), reseal_page(pg, ps)));
      META_CASE(w == 1 ? EX_SAME : EX_FAIL, "referenced page %llu marked free, CRC recomputed",
                (unsigned long long)refd[i]);
    }
    RESET();
    FOR_COPIES((pg[M_BM + regpg / 8] &= (uint8_t) ~(1u << (regpg % 8)), t_put64(pg + M_FREE, t_le64(pg + M_FREE) + 1),
                reseal_page(pg, ps)));
    META_CASE(w == 1 ? EX_SAME : EX_MAY, "regular page %llu marked free, CRC recomputed", (unsigned long long)regpg);
#undef FOR_COPIES
#undef META_CASE
  }

  /* -- directory pages, current and inactive copies -- */
  for (uint32_t b = 0; b < L.dc; b++) {
    for (int cur = 1; cur >= 0; cur--) {
      const char *cn = cur ? "current" : "inactive";
      enum ex broken = cur ? EX_FAIL : EX_SAME; /* an inactive copy is rewritten before use */
      RESET();
      t_put32(dir_page(m, &L, b, cur) + D_CAP, L.cap + 1);
      reseal_page(dir_page(m, &L, b, cur), ps);
      CASE(broken, 0, "%s: block %u %s copy: capacity + 1, CRC recomputed", name, b, cn);
      RESET();
      t_put32(dir_page(m, &L, b, cur) + D_CAP, 0);
      reseal_page(dir_page(m, &L, b, cur), ps);
      CASE(broken, 0, "%s: block %u %s copy: capacity 0, CRC recomputed", name, b, cn);
      RESET();
      dir_page(m, &L, b, cur)[D_CAP] ^= 1;
      CASE(broken, 0, "%s: block %u %s copy: capacity flipped, CRC not updated", name, b, cn);
      RESET();
      dir_page(m, &L, b, cur)[ps - 2] ^= 1;
      CASE(broken, 0, "%s: block %u %s copy: page CRC flipped", name, b, cn);
    }
    /* Entries of the current copy. */
    const uint8_t *curpg = base + ps * L.ref[b][L.act[b]];
    uint32_t used[2] = {UINT32_MAX, UINT32_MAX}, freee = UINT32_MAX;
    for (uint32_t e = 0; e < L.cap; e++) {
      if (curpg[D_ENT + ENT * e + E_USE]) {
        if (used[0] == UINT32_MAX) used[0] = e;
        used[1] = e;
      } else if (freee == UINT32_MAX) {
        freee = e;
      }
    }
    assert_true(used[0] != UINT32_MAX);
#define ENTRY_AT(e) (dir_page(m, &L, b, true) + D_ENT + (size_t)ENT * (e))
#define SEAL() reseal_page(dir_page(m, &L, b, true), ps)
    for (int u = 0; u < 2; u++) {
      uint32_t e = used[u];
      uint64_t pid = (uint64_t)b * L.cap + e;
      const uint8_t *en0 = curpg + D_ENT + ENT * e;
      uint64_t pg[2] = {t_le64(en0 + E_A), t_le64(en0 + E_B)};
      int slot = en0[E_SLOT] != 0;
      RESET();
      ENTRY_AT(e)[E_USE] ^= 1;
      CASE(EX_FAIL, 0, "%s: block %u entry %u: in_use flipped, page CRC not updated", name, b, e);
      RESET();
      ENTRY_AT(e)[E_A] ^= 1;
      CASE(EX_FAIL, 0, "%s: block %u entry %u: page_a flipped, page CRC not updated", name, b, e);
      RESET();
      ENTRY_AT(e)[E_USE] = 0;
      SEAL();
      CASE(EX_MAY, 0, "%s: block %u entry %u: in_use = 0, page CRC recomputed", name, b, e);
      RESET();
      ENTRY_AT(e)[E_USE] = 0x80; /* non-zero is in use */
      SEAL();
      CASE(EX_SAME, 0, "%s: block %u entry %u: in_use = 0x80, page CRC recomputed", name, b, e);
      RESET();
      t_put64(ENTRY_AT(e) + E_GEN, t_le64(ENTRY_AT(e) + E_GEN) + 5);
      SEAL();
      CASE(EX_SAME, 0, "%s: block %u entry %u: generation + 5, page CRC recomputed", name, b, e);
      for (int k = 0; k < 2; k++) {
        uint64_t vals[] = {L.total, L.total + 1000, UINT64_MAX, 0, 1, 2, pg[!k], L.ref[b][0], L.ref[b][1], freepg,
                           ownedpg};
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
          if (vals[i] == pg[k]) continue;
          RESET();
          t_put64(ENTRY_AT(e) + (k ? E_B : E_A), vals[i]);
          SEAL();
          CASE(EX_FAIL, 0, "%s: block %u entry %u: page_%c = %llu, page CRC recomputed", name, b, e, 'a' + k,
               (unsigned long long)vals[i]);
        }
      }
      /* The staging copy re-pointed at a regular page: nothing contradicts it. */
      RESET();
      t_put64(ENTRY_AT(e) + (slot ? E_A : E_B), regpg);
      SEAL();
      CASE(EX_MAY, 0, "%s: block %u entry %u: staging page = regular page %llu, page CRC recomputed", name, b, e,
           (unsigned long long)regpg);
      for (int i = 0; i < 4; i++) {
        RESET();
        ENTRY_AT(e)[E_CRC + i] ^= 0x40;
        SEAL();
        CASE(EX_CRCBAD, pid, "%s: block %u entry %u: entry CRC byte %d flipped, page CRC recomputed", name, b, e, i);
      }
      RESET();
      ENTRY_AT(e)[E_CRC] ^= 0x40;
      CASE(EX_FAIL, 0, "%s: block %u entry %u: entry CRC flipped, page CRC not updated", name, b, e);
    }
    if (freee != UINT32_MAX) {
      RESET();
      ENTRY_AT(freee)[E_USE] = 1; /* pages 0 and 0 */
      SEAL();
      CASE(EX_FAIL, 0, "%s: block %u free entry %u: in_use = 1, page CRC recomputed", name, b, freee);
      RESET();
      ENTRY_AT(freee)[E_USE] = 1;
      t_put64(ENTRY_AT(freee) + E_A, freepg);
      t_put64(ENTRY_AT(freee) + E_B, freepg + 1 < L.total ? freepg + 1 : 3);
      SEAL();
      CASE(EX_FAIL, 0, "%s: block %u free entry %u: in_use = 1 on free pages, page CRC recomputed", name, b, freee);
      /* In the inactive copy the same entry reads as an interrupted alloc whose
       * pages were never allocated: nothing to reclaim, nothing changes. */
      RESET();
      uint8_t *in = dir_page(m, &L, b, false) + D_ENT + (size_t)ENT * freee;
      in[E_USE] = 1;
      t_put64(in + E_A, freepg);
      t_put64(in + E_B, 0);
      reseal_page(dir_page(m, &L, b, false), ps);
      CASE(EX_SAME, 0, "%s: block %u inactive copy entry %u: in_use on a free page, page CRC recomputed", name, b,
           freee);
    }
#undef ENTRY_AT
#undef SEAL
  }
#undef CASE
#undef RESET
  snap_free(&bs);
  free(L.owned);
  free(m);
}

static void test_fields_4k(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = build_file(4096, 5, 6, &len);
  corrupt_suite(b, len, "4k");
  free(b);
  finish("fields 4k");
}

static void test_fields_1k(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = build_file(1024, 5, 40, &len);
  layout L;
  parse(b, len, &L);
  free(L.owned);
  assert_true(L.dc >= 2); /* 33 entries per block at 1024 */
  corrupt_suite(b, len, "1k");
  free(b);
  finish("fields 1k");
}

/* ---- 2. truncation ---------------------------------------------------------- */

static void truncate_suite(const uint8_t *base, size_t len, const char *name) {
  layout L;
  parse(base, len, &L);
  free(L.owned);
  const size_t ps = L.ps, need = (size_t)L.total * ps;
  snap bs;
  snap_of_image(base, len, &bs);
  size_t sizes[600], n = 0;
  for (size_t k = 0; k <= len / ps + 2 && n < 560; k++) sizes[n++] = k * ps; /* and two pages past the end */
  size_t odd[] = {1, 16, 23, 24, 25, 511, 512, ps - 1, ps + 1, 3 * ps - 1, 3 * ps + 1, need - 1, need - ps / 2,
                  need + 1, need + ps - 1, need + 10 * ps + 3};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) sizes[n++] = odd[i];
  const size_t room = (len > need ? len : need) + 11 * ps;
  uint8_t *m = calloc(room, 1);
  char label[160];
  g_incomplete_ok = true;
  for (size_t i = 0; i < n; i++) {
    size_t sz = sizes[i];
    memset(m, 0, room);
    memcpy(m, base, sz < len ? sz : len);
    snprintf(label, sizeof label, "%s: file cut to %zu bytes (%zu pages; metadata claims %llu)", name, sz, sz / ps,
             (unsigned long long)L.total);
    try_image(m, sz, sz < need ? EX_FAIL : EX_SAME, &bs, 0, label);
  }
  g_incomplete_ok = false;
  snap_free(&bs);
  free(m);
}

static void test_truncate(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = build_file(1024, 5, 40, &len);
  truncate_suite(b, len, "1k");
  free(b);
  b = build_file(4096, 5, 6, &len);
  truncate_suite(b, len, "4k");
  free(b);

  /* The last commit grew the file: cutting it back to the previous size leaves a
   * previous metadata generation that fits; the current one does not. */
  const char *path = t_path(0, "grow.img");
  mp_pager *p;
  assert_int_equal(mp_create(path, 1024, &p), MP_OK);
  uint64_t id;
  assert_int_equal(mp_alloc(p, &id), MP_OK); /* fills the 4 pages */
  assert_int_equal(mp_page_count(p), 4);
  assert_int_equal(mp_alloc(p, &id), MP_OK); /* grows to 8 */
  assert_int_equal(mp_page_count(p), 8);
  assert_int_equal(mp_close(p), MP_OK);
  b = t_read_file(path, &len);
  assert_non_null(b);
  assert_int_equal(len, 8 * 1024);
  truncate_suite(b, len, "grown 1k");
  free(b);
  finish("truncate");
}

/* ---- 3. random mutations ----------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Flagged opens grouped by the kind of finding (its text without numbers), so that
 * one run names every distinct problem once, with an example mutation. */
typedef struct klass {
  char key[160], mode[48], example[400];
  unsigned count;
} klass;
static klass classes[40];
static unsigned nclasses;

static void note_class(const char *finding, const char *mode, const char *desc) {
  char key[160];
  size_t k = 0;
  for (const char *c = finding; *c && k < sizeof key - 1; c++)
    if (*c < '0' || *c > '9') key[k++] = *c;
    else if (k == 0 || key[k - 1] != '#') key[k++] = '#';
  key[k] = 0;
  for (unsigned i = 0; i < nclasses; i++)
    if (strcmp(classes[i].key, key) == 0 && strcmp(classes[i].mode, mode) == 0) {
      classes[i].count++;
      return;
    }
  if (nclasses == sizeof classes / sizeof classes[0]) return;
  klass *c = &classes[nclasses++];
  snprintf(c->key, sizeof c->key, "%s", key);
  snprintf(c->mode, sizeof c->mode, "%s", mode);
  snprintf(c->example, sizeof c->example, "%s (%s)", desc, finding);
  c->count = 1;
}

static void test_random_flips(void **state) {
  (void)state;
  size_t len;
  uint8_t *base = build_file(1024, 4, 5, &len);
  layout L;
  parse(base, len, &L);
  const size_t ps = L.ps;
  /* The bytes where a change means something: headers, references, bitmaps, entries,
   * trailers. Half the mutations land there, half anywhere. */
  size_t *hot = malloc(len * sizeof *hot), nhot = 0;
  for (size_t i = 0; i < SB_REFS + (size_t)REF * (L.dc + 1); i++) hot[nhot++] = i;
  for (size_t i = ps - 4; i < ps; i++) hot[nhot++] = i;
  for (unsigned c = 1; c <= 2; c++) {
    for (size_t i = 0; i < M_BM + (L.total + 7) / 8 + 2; i++) hot[nhot++] = c * ps + i;
    for (size_t i = ps - 4; i < ps; i++) hot[nhot++] = c * ps + i;
  }
  for (uint32_t b = 0; b < L.dc; b++)
    for (int k = 0; k < 2; k++) {
      size_t pg = (size_t)L.ref[b][k] * ps;
      for (size_t i = 0; i < D_ENT + (size_t)ENT * 8; i++) hot[nhot++] = pg + i;
      for (size_t i = ps - 4; i < ps; i++) hot[nhot++] = pg + i;
    }
  free(L.owned);

  uint8_t *m = malloc(len);
  uint64_t seed = 0x9E3779B97F4A7C15u;
  unsigned opened = 0, refused = 0, content = 0, flagged = 0;
  nclasses = 0;
  const unsigned iters = 3000;
  for (unsigned it = 0; it < iters; it++) {
    memcpy(m, base, len);
    g_images++;
    char desc[512];
    int dn = snprintf(desc, sizeof desc, "mutation %u:", it);
    unsigned kind = (unsigned)(rng_next(&seed) % 4);
    unsigned nbytes = kind == 0 ? 2 + (unsigned)(rng_next(&seed) % 7) : 1; /* scattered multi-byte */
    size_t runlen = kind == 1 ? 2 + (size_t)(rng_next(&seed) % 15) : 0;  /* a run */
    if (runlen) nbytes = 1;
    for (unsigned j = 0; j < nbytes; j++) {
      size_t off = rng_next(&seed) % 2 ? hot[rng_next(&seed) % nhot] : (size_t)(rng_next(&seed) % len);
      size_t n = runlen ? runlen : 1;
      for (size_t r = 0; r < n && off + r < len; r++) {
        uint8_t old = m[off + r];
        uint64_t how = rng_next(&seed);
        switch (how % 4) {
          case 0: m[off + r] ^= (uint8_t)(1u << (how >> 8 & 7)); break;
          case 1: m[off + r] = (uint8_t)(how >> 16); break;
          case 2: m[off + r] = (uint8_t)(old + 1); break;
          default: m[off + r] = (how >> 8 & 1) ? 0xFF : 0; break;
        }
        if (m[off + r] == old) m[off + r] ^= 0x01;
        if (dn > 0 && (size_t)dn < sizeof desc - 40)
          dn += snprintf(desc + dn, sizeof desc - (size_t)dn, " [%zu] %02x->%02x", off + r, old, m[off + r]);
      }
    }
    bool ok[2] = {false, false};
    for (int ro = 0; ro < 2; ro++) {
      const char *path = t_path(1, "flip.img");
      assert_int_equal(t_write_file(path, m, len), 0);
      mp_pager *p = NULL;
      char why[256] = "";
      int rc = mp_open_explain(path, ro ? MP_RDONLY : 0, &p, why, sizeof why);
      if (rc != MP_OK) {
        refused++;
        if (!refusal_ok(rc) || !why[0]) bad("%s [%s]: refused with %d, reason '%s'", desc, ro ? "RDONLY" : "RW", rc, why);
        continue;
      }
      opened++;
      ok[ro] = true;
      findings f = check(p);
      if (f.structural) {
        flagged++;
        note_class(f.first, ro ? "RDONLY" : "RW", desc);
      }
      if (f.n > f.structural) content++;
      snap s;
      snap_take(p, &s);
      snap_free(&s);
      if (!ro) {
        /* The recovered file must keep working: a further allocation of each kind
         * (whatever they return) leaves it consistent. */
        uint64_t id;
        (void)mp_alloc(p, &id);
        (void)mp_protected_alloc(p, &id);
        findings g = check(p);
        if (g.structural && !f.structural) {
          flagged++;
          note_class(g.first, "RW, after one alloc of each kind", desc);
        }
      }
      mp_close(p);
    }
    /* Both modes load the file the same way; only a writer repairs it afterwards. */
    if (ok[0] != ok[1]) note_class(ok[0] ? "opens read-write only" : "opens read-only only", "RW vs RDONLY", desc);
  }
  print_message("random mutations: %u opens, %u refused, %u opened with damaged protected content, %u opened but "
                "flagged by mp_check\n", opened, refused, content, flagged);
  for (unsigned i = 0; i < nclasses; i++)
    bad("%u opens [%s] flagged \"%s\", e.g. %s", classes[i].count, classes[i].mode, classes[i].key, classes[i].example);
  free(hot);
  free(m);
  free(base);
  finish("random flips");
}

/* ---- 4. torn page 0 ------------------------------------------------------- */

/* Which state a recovered pager shows: 1 old, 2 new, 0 neither. "Old" may keep the
 * growth of the file (growth is durable with the commit that allocates) and, after
 * an interrupted append, the new empty directory block. */
static bool free_is(const snap *s, uint64_t want) {
  /* Leaked pages are free once a writer reclaims them; whether a read-only handle
   * already counts them as free is the API's choice, so both readings pass. */
  return s->free == want || s->free + s->leaked == want;
}

static int classify(const snap *s, const snap *o, const snap *n, bool block_may_stay) {
  if (same_sets(s, n) && s->total == n->total && free_is(s, n->free)) return 2;
  if (same_sets(s, o) && (s->total == o->total || s->total == n->total)) {
    uint64_t want = o->free + (s->total - o->total);
    if (free_is(s, want) || (block_may_stay && free_is(s, want - 2))) return 1;
  }
  return 0;
}

/* What an MP_PREVIEW handle `p` shows must be what a writer's open made of the
 * same image: its structure sound, the state `want` (with `exact`, also the free
 * and leaked counts a fresh preview has), recovery `pending`, and, where a
 * regular page locates the mapping, the bytes the writer left (`recovered`,
 * rec_len bytes). The state it shows goes to *s. */
static void view_matches(mp_pager *p, const char *tag, const snap *want, bool exact, const uint8_t *recovered,
                         size_t rec_len, unsigned pending, const char *label, snap *s) {
  findings f = check(p);
  if (f.n) bad("%s [%s]: mp_check: %u finding(s), first: %s", label, tag, f.n, f.first);
  snap_take(p, s);
  char a[600], b[600];
  if (exact ? !snap_same(s, want) : s->total != want->total || s->free != want->free || !same_sets(s, want)) {
    snap_desc(s, a, sizeof a);
    snap_desc(want, b, sizeof b);
    bad("%s [%s]: shows\n    %s\n  where it should show\n    %s", label, tag, a, b);
  }
  if (mp_recovery(p) != pending) bad("%s [%s]: did %#x, a writer's open %#x", label, tag, mp_recovery(p), pending);
  void *data;
  size_t ps = mp_page_size(p);
  if (s->nreg && mp_page(p, s->reg[0], &data) == MP_OK) {
    const uint8_t *map = (const uint8_t *)data - s->reg[0] * ps;
    if (rec_len < s->total * ps || memcmp(map, recovered, s->total * ps) != 0)
      bad("%s [%s]: its mapping differs from the file a writer's open left", label, tag);
  }
}

/* One MP_PREVIEW handle kept across every torn image, each written in place into
 * its file and read with mp_reload, must show what a fresh open shows (`fresh`),
 * and map the bytes a writer's open left: no private copy of an earlier image's
 * recovery may survive a reload. */
static mp_pager *g_reloader;

static void reloaded_matches(const uint8_t *img, size_t len, const snap *fresh, const uint8_t *recovered, size_t rec_len,
                             unsigned pending, const char *label) {
  static char path[512];
  if (!path[0]) snprintf(path, sizeof path, "%s", t_path(7, "torn-reloaded.img"));
  int fd = open(path, O_WRONLY | O_CREAT, 0644);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, img, len, 0), (ssize_t)len);
  assert_int_equal(ftruncate(fd, (off_t)len), 0);
  close(fd);
  char why[256] = "";
  int rc = g_reloader ? mp_reload(g_reloader, why, sizeof why) : mp_open_explain(path, MP_PREVIEW, &g_reloader, why, sizeof why);
  if (rc != MP_OK) {
    bad("%s [RELOAD]: refused: %d %s", label, rc, why);
    return;
  }
  snap s;
  view_matches(g_reloader, "RELOAD", fresh, true, recovered, rec_len, pending, label, &s);
  snap_free(&s);
}

/* One MP_RDONLY handle kept across every torn image, each written in place into its
 * file and read with mp_reload_same, must show what a fresh reader shows (`fresh`,
 * whose recovery would do `pending`): whether it kept its state (page 0, the metadata
 * and the directory unchanged) or loaded again. */
static mp_pager *g_ro_reloader;

static void ro_reloaded_matches(const uint8_t *img, size_t len, const snap *fresh, unsigned pending,
                                const char *label) {
  static char path[512];
  if (!path[0]) snprintf(path, sizeof path, "%s", t_path(8, "torn-ro-reloaded.img"));
  assert_int_equal(t_write_file(path, img, len), 0);
  char why[256] = "";
  bool same;
  int rc = g_ro_reloader ? mp_reload_same(g_ro_reloader, &same, why, sizeof why)
                         : mp_open_explain(path, MP_RDONLY, &g_ro_reloader, why, sizeof why);
  if (rc != MP_OK) {
    bad("%s [RO-RELOAD]: refused: %d %s", label, rc, why);
    return;
  }
  snap s;
  view_matches(g_ro_reloader, "RO-RELOAD", fresh, true, img, len, pending, label, &s);
  snap_free(&s);
}

/* MP_PREVIEW on the same image must show what the writer's open made of it
 * (`rw`, whose recovery did `pending`, leaving the file `rw_path`), refuse
 * changes, name the pages it wrote, and leave the file as it was. */
static void preview_matches(const uint8_t *img, size_t len, const snap *rw, const char *rw_path, unsigned pending,
                            uint64_t leaked, const char *label) {
  const char *path = t_path(6, "torn-preview.img");
  assert_int_equal(t_write_file(path, img, len), 0);
  mp_pager *p = NULL;
  char why[256] = "";
  int rc = mp_open_explain(path, MP_PREVIEW, &p, why, sizeof why);
  if (rc != MP_OK) {
    bad("%s [PREVIEW]: refused: %d %s", label, rc, why);
    return;
  }
  size_t rw_len, ps = mp_page_size(p);
  uint8_t *recovered = t_read_file(rw_path, &rw_len);
  snap s;
  view_matches(p, "PREVIEW", rw, false, recovered, rw_len, pending, label, &s);
  if (mp_leaked_count(p) != leaked)
    bad("%s [PREVIEW]: reclaimed %llu pages, a reader saw %llu leaked", label, (unsigned long long)mp_leaked_count(p),
        (unsigned long long)leaked);
  /* mp_next_written names every page recovery changed (it may name more: a page
   * written with the bytes it held), and none when nothing was pending. */
  uint64_t w = 0, next;
  bool any = mp_next_written(p, 0, &next) == MP_OK;
  if (!pending && any) bad("%s [PREVIEW]: nothing pending, yet page %llu counts as written", label, (unsigned long long)next);
  for (uint64_t pg = 0; pg < s.total && (pg + 1) * ps <= len && (pg + 1) * ps <= rw_len; pg++) {
    if (!memcmp(img + pg * ps, recovered + pg * ps, ps)) continue;
    if (mp_next_written(p, pg, &w) != MP_OK || w != pg)
      bad("%s [PREVIEW]: recovery changed page %llu, mp_next_written does not say so", label, (unsigned long long)pg);
  }
  reloaded_matches(img, len, &s, recovered, rw_len, pending, label);
  free(recovered);
  uint64_t id;
  if (mp_alloc(p, &id) != MP_ERDONLY) bad("%s [PREVIEW]: mp_alloc was not refused", label);
  snap_free(&s);
  mp_close(p);
  size_t got_len;
  uint8_t *got = t_read_file(path, &got_len);
  if (got_len != len || memcmp(got, img, len)) bad("%s [PREVIEW]: the file changed", label);
  free(got);
}

static void torn_image(const uint8_t *img, size_t len, const snap *o, const snap *n, bool block_may_stay,
                       const char *label) {
  int cls[2] = {0, 0};
  unsigned pending = 0;
  uint64_t leaked = 0;
  char a[600], b[600], c[600];
  g_images++;
  for (int ro = 1; ro >= 0; ro--) {
    const char *mode = ro ? "RDONLY" : "RW";
    const char *path = t_path(3, "torn-case.img");
    assert_int_equal(t_write_file(path, img, len), 0);
    mp_pager *p = NULL;
    char why[256] = "";
    int rc = mp_open_explain(path, ro ? MP_RDONLY : 0, &p, why, sizeof why);
    if (rc != MP_OK) {
      bad("%s [%s]: torn image refused: %d %s", label, mode, rc, why);
      continue;
    }
    findings f = check(p);
    if (f.n) bad("%s [%s]: mp_check: %u finding(s), first: %s", label, mode, f.n, f.first);
    snap s;
    snap_take(p, &s);
    cls[ro] = classify(&s, o, n, block_may_stay);
    if (!cls[ro]) {
      snap_desc(&s, a, sizeof a);
      snap_desc(o, b, sizeof b);
      snap_desc(n, c, sizeof c);
      bad("%s [%s]: neither old nor new state:\n    got %s\n    old %s\n    new %s", label, mode, a, b, c);
    }
    if (!ro && s.leaked) bad("%s [RW]: %llu page(s) leaked after recovery", label, (unsigned long long)s.leaked);
    if (ro) pending = mp_recovery(p), leaked = s.leaked;
    if (ro) ro_reloaded_matches(img, len, &s, pending, label);
    else if (mp_recovery(p) != pending) bad("%s: a writer's open did %#x, a reader said %#x", label, mp_recovery(p), pending);
    mp_close(p);
    if (!ro) preview_matches(img, len, &s, path, pending, leaked, label);
    if (!ro && !pending) {
      /* Nothing pending: the writer's open must not have changed a byte. */
      size_t got_len;
      uint8_t *got = t_read_file(path, &got_len);
      if (got_len != len || memcmp(got, img, len)) bad("%s: recovery said nothing was pending but wrote", label);
      free(got);
    }
    if (!ro) {
      /* Recovery is durable: a read-only reopen sees the same state, and the file
       * takes further work. */
      snap s2;
      assert_int_equal(mp_open(path, MP_RDONLY, &p), MP_OK);
      snap_take(p, &s2);
      if (!snap_same(&s, &s2)) bad("%s: state after RW recovery differs on reopen", label);
      if (mp_recovery(p)) bad("%s: recovery still pending (%#x) after a writer's open", label, mp_recovery(p));
      snap_free(&s2);
      mp_close(p);
      assert_int_equal(mp_open(path, 0, &p), MP_OK);
      uint64_t id;
      if (mp_alloc(p, &id) != MP_OK || mp_protected_alloc(p, &id) != MP_OK) bad("%s: allocation after recovery failed", label);
      f = check(p);
      if (f.n) bad("%s: after recovery and further allocations, mp_check: %s", label, f.first);
      mp_close(p);
    }
    snap_free(&s);
  }
  if (cls[0] && cls[1] && cls[0] != cls[1])
    bad("%s: RW recovered the %s state, RDONLY shows the %s", label, cls[0] == 1 ? "old" : "new",
        cls[1] == 1 ? "old" : "new");
}

/* Every mix of the 512-byte sectors of page 0 between two consecutive versions,
 * over the other pages as they are durable when the second version is written. */
static void torn_transition(const uint8_t *others, size_t len, size_t ps, const uint8_t *from, const uint8_t *to,
                            const snap *o, const snap *n, bool block_may_stay, const char *what) {
  int diff[64], nd = 0;
  for (size_t s = 0; s < ps / SECTOR; s++)
    if (memcmp(from + s * SECTOR, to + s * SECTOR, SECTOR) != 0) diff[nd++] = (int)s;
  if (nd < 1 || nd > 3) {
    bad("%s: page-0 write touches %d sectors (one change must touch 1..3)", what, nd);
    if (nd > 6) return;
  }
  uint8_t *img = malloc(len);
  char label[300];
  for (unsigned mask = 0; mask < 1u << nd; mask++) {
    memcpy(img, others, len);
    memcpy(img, from, ps);
    int k = snprintf(label, sizeof label, "%s, sectors from the new version: {", what);
    for (int i = 0; i < nd; i++)
      if (mask >> i & 1) {
        memcpy(img + diff[i] * SECTOR, to + diff[i] * SECTOR, SECTOR);
        k += snprintf(label + k, sizeof label - (size_t)k, " %d", diff[i]);
      }
    k += snprintf(label + k, sizeof label - (size_t)k, " } of {");
    for (int i = 0; i < nd && i < 8; i++) k += snprintf(label + k, sizeof label - (size_t)k, " %d", diff[i]);
    snprintf(label + k, sizeof label - (size_t)k, " }");
    torn_image(img, len, o, n, block_may_stay, label);
  }
  free(img);
}

typedef struct cap {
  uint8_t *img;
  size_t len;
  snap s;
} cap;

static void capture(mp_pager *p, const char *path, cap *c) {
  c->img = t_read_file(path, &c->len);
  assert_non_null(c->img);
  snap_take(p, &c->s);
}

static void cap_free(cap *c) {
  free(c->img);
  snap_free(&c->s);
}

/* Copies page `id` of `src` into `dst` (both images at least that long). */
static void put_page(uint8_t *dst, const uint8_t *src, size_t ps, uint64_t id) { memcpy(dst + id * ps, src + id * ps, ps); }

static void expect_p0(const uint8_t *model, const cap *after, size_t ps, const char *what) {
  if (memcmp(model, after->img, ps) != 0)
    fail_msg("%s: page 0 built from the protocol in commit.c differs from the library's", what);
}

/* E: a protected alloc that appends a directory block: intent (reference bytes past
 * dir_count, CRC as it was), metadata flip, dir_count + 1 with the CRC, the new
 * block's flip to the copy holding the entry; the mirror comes last. Every torn
 * write of page 0 along the way, over the pages durable at that point. */
static void torn_append(mp_pager *p, const char *path, size_t ps) {
  const uint32_t dcap = (uint32_t)((ps - 12) / ENT);
  char what[120];
  cap before, after;
  uint8_t *v[5];
  for (int i = 0; i < 5; i++) v[i] = malloc(ps);
  /* Fill every free entry so that the next alloc needs a new block. */
  for (;;) {
    uint64_t x;
    capture(p, path, &before);
    uint32_t dc = t_le32(before.img + SB_DC);
    assert_int_equal(mp_protected_alloc(p, &x), MP_OK);
    capture(p, path, &after);
    if (t_le32(after.img + SB_DC) == dc + 1) break;
    cap_free(&before);
    cap_free(&after);
  }
  uint32_t b = t_le32(before.img + SB_DC);
  uint64_t da = t_le64(after.img + SB_REFS + REF * b), db = t_le64(after.img + SB_REFS + REF * b + 8);
  if (memcmp(after.img + da * ps, after.img + db * ps, ps) != 0) fail_msg("the new block's copies are not mirrored");
  uint8_t *empty = calloc(ps, 1);
  t_put32(empty + D_CAP, dcap);
  reseal_page(empty, ps);
  uint8_t *others0 = malloc(after.len), *others1 = malloc(after.len);
  memcpy(others1, after.img, after.len);
  memcpy(others1 + da * ps, empty, ps); /* page_a is written empty; the mirror is last */
  memcpy(others0, others1, after.len);
  put_page(others0, before.img, ps, 1);
  put_page(others0, before.img, ps, 2);
  memcpy(v[0], before.img, ps);
  memcpy(v[1], v[0], ps);
  t_put64(v[1] + SB_REFS + REF * b, da);
  t_put64(v[1] + SB_REFS + REF * b + 8, db);
  v[1][SB_REFS + REF * b + REF_ACT] = 0;
  memcpy(v[2], v[1], ps);
  v[2][SB_ACTIVE] ^= 1;
  memcpy(v[3], v[2], ps);
  t_put32(v[3] + SB_DC, b + 1);
  reseal_section(v[3], ps);
  memcpy(v[4], v[3], ps);
  v[4][SB_REFS + REF * b + REF_ACT] ^= 1;
  reseal_section(v[4], ps);
  snprintf(what, sizeof what, "ps %zu append", ps);
  expect_p0(v[4], &after, ps, what);
  static const char *step[] = {"intent", "metadata flip", "dir_count + 1", "new block flip"};
  for (int k = 0; k < 4; k++) {
    snprintf(what, sizeof what, "ps %zu append, %s", ps, step[k]);
    torn_transition(k ? others1 : others0, after.len, ps, v[k], v[k + 1], &before.s, &after.s, true, what);
  }
  /* The intent with its pages: v[1]'s durable companions also include the case
   * where the metadata page is already written (others1). */
  snprintf(what, sizeof what, "ps %zu append, intent with new metadata written", ps);
  torn_transition(others1, after.len, ps, v[0], v[1], &before.s, &after.s, true, what);
  free(empty);
  free(others0);
  free(others1);
  cap_free(&before);
  cap_free(&after);
  for (int i = 0; i < 5; i++) free(v[i]);
}

static void torn_suite(size_t ps) {
  const char *path = t_path(2, "torn.img");
  mp_pager *p;
  assert_int_equal(mp_create(path, ps, &p), MP_OK);
  const uint32_t dcap = (uint32_t)((ps - 12) / ENT);
  uint64_t reg[3], prot[2], id;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(mp_alloc(p, &reg[i]), MP_OK);
    write_reg(p, reg[i], (uint8_t)(0x21 + i));
  }
  for (int i = 0; i < 2; i++) {
    assert_int_equal(mp_protected_alloc(p, &prot[i]), MP_OK);
    write_prot(p, prot[i], (uint8_t)(0x61 + i));
  }
  char what[120];
  cap before, after;
  uint8_t *v[5];
  for (int i = 0; i < 5; i++) v[i] = malloc(ps);

  /* A: protected commit = the block's selector flip + section CRC. The new data copy
   * and the staged directory copy are durable before page 0 is written. */
  {
    capture(p, path, &before);
    write_prot(p, prot[0], 0x7E);
    capture(p, path, &after);
    uint32_t b = (uint32_t)(prot[0] / dcap);
    memcpy(v[0], before.img, ps);
    memcpy(v[1], v[0], ps);
    v[1][SB_REFS + REF * b + REF_ACT] ^= 1;
    reseal_section(v[1], ps);
    snprintf(what, sizeof what, "ps %zu protected commit", ps);
    expect_p0(v[1], &after, ps, what);
    torn_transition(after.img, after.len, ps, v[0], v[1], &before.s, &after.s, false, what);
    cap_free(&before);
    cap_free(&after);
  }

  /* B: regular alloc = the metadata selector flip; the new copy is durable first. */
  {
    capture(p, path, &before);
    assert_int_equal(mp_alloc(p, &id), MP_OK);
    capture(p, path, &after);
    memcpy(v[0], before.img, ps);
    memcpy(v[1], v[0], ps);
    v[1][SB_ACTIVE] ^= 1; /* meta_checksum is the CRC residue, the same for both */
    snprintf(what, sizeof what, "ps %zu regular alloc", ps);
    expect_p0(v[1], &after, ps, what);
    torn_transition(after.img, after.len, ps, v[0], v[1], &before.s, &after.s, false, what);
    cap_free(&before);
    cap_free(&after);
  }

  /* C: protected alloc in an existing block: metadata flip, then the block's flip;
   * the mirror of the old current copy comes after both. */
  {
    capture(p, path, &before);
    uint64_t np;
    assert_int_equal(mp_protected_alloc(p, &np), MP_OK);
    capture(p, path, &after);
    uint32_t b = (uint32_t)(np / dcap);
    uint8_t a = before.img[SB_REFS + REF * b + REF_ACT];
    uint64_t oldcur = t_le64(before.img + SB_REFS + REF * b + 8 * a);
    uint8_t *others = malloc(after.len);
    memcpy(others, after.img, after.len);
    put_page(others, before.img, ps, oldcur); /* not yet mirrored */
    memcpy(v[0], before.img, ps);
    memcpy(v[1], v[0], ps);
    v[1][SB_ACTIVE] ^= 1;
    memcpy(v[2], v[1], ps);
    v[2][SB_REFS + REF * b + REF_ACT] ^= 1;
    reseal_section(v[2], ps);
    snprintf(what, sizeof what, "ps %zu protected alloc", ps);
    expect_p0(v[2], &after, ps, what);
    snprintf(what, sizeof what, "ps %zu protected alloc, metadata flip", ps);
    torn_transition(others, after.len, ps, v[0], v[1], &before.s, &after.s, false, what);
    snprintf(what, sizeof what, "ps %zu protected alloc, directory flip", ps);
    torn_transition(others, after.len, ps, v[1], v[2], &before.s, &after.s, false, what);
    free(others);
    cap_free(&before);
    cap_free(&after);
  }

  /* D: protected free: the block's flip, then the metadata commit that frees the two
   * pages, then the mirror. */
  {
    capture(p, path, &before);
    assert_int_equal(mp_protected_free(p, prot[1]), MP_OK);
    capture(p, path, &after);
    uint32_t b = (uint32_t)(prot[1] / dcap);
    uint8_t a = before.img[SB_REFS + REF * b + REF_ACT];
    uint64_t oldcur = t_le64(before.img + SB_REFS + REF * b + 8 * a);
    uint8_t *others0 = malloc(after.len), *others1 = malloc(after.len);
    memcpy(others1, after.img, after.len);
    put_page(others1, before.img, ps, oldcur);
    memcpy(others0, others1, after.len);
    put_page(others0, before.img, ps, 1); /* the freeing metadata is not written yet */
    put_page(others0, before.img, ps, 2);
    memcpy(v[0], before.img, ps);
    memcpy(v[1], v[0], ps);
    v[1][SB_REFS + REF * b + REF_ACT] ^= 1;
    reseal_section(v[1], ps);
    memcpy(v[2], v[1], ps);
    v[2][SB_ACTIVE] ^= 1;
    snprintf(what, sizeof what, "ps %zu protected free", ps);
    expect_p0(v[2], &after, ps, what);
    snprintf(what, sizeof what, "ps %zu protected free, directory flip", ps);
    torn_transition(others0, after.len, ps, v[0], v[1], &before.s, &after.s, false, what);
    snprintf(what, sizeof what, "ps %zu protected free, metadata flip", ps);
    torn_transition(others1, after.len, ps, v[1], v[2], &before.s, &after.s, false, what);
    free(others0);
    free(others1);
    cap_free(&before);
    cap_free(&after);
  }

  torn_append(p, path, ps);

  /* F: a regular alloc that grows the file: the flip also makes the growth durable. */
  {
    uint64_t nfree = mp_free_count(p);
    if (nfree) {
      uint64_t *ids = malloc(nfree * 8);
      assert_int_equal(mp_alloc_bulk(p, nfree, ids), MP_OK);
      free(ids);
    }
    capture(p, path, &before);
    assert_int_equal(mp_alloc(p, &id), MP_OK);
    capture(p, path, &after);
    assert_true(after.s.total > before.s.total);
    memcpy(v[0], before.img, ps);
    memcpy(v[1], v[0], ps);
    v[1][SB_ACTIVE] ^= 1;
    snprintf(what, sizeof what, "ps %zu growing alloc", ps);
    expect_p0(v[1], &after, ps, what);
    torn_transition(after.img, after.len, ps, v[0], v[1], &before.s, &after.s, false, what);
    cap_free(&before);
    cap_free(&after);
  }
  for (int i = 0; i < 5; i++) free(v[i]);
  assert_int_equal(mp_close(p), MP_OK);
  assert_int_equal(mp_close(g_reloader), MP_OK);
  g_reloader = NULL;
  assert_int_equal(mp_close(g_ro_reloader), MP_OK);
  g_ro_reloader = NULL;
}

static void test_torn_page0_1k(void **state) {
  (void)state;
  torn_suite(1024);
  finish("torn page 0, 1k");
}

static void test_torn_page0_4k(void **state) {
  (void)state;
  torn_suite(4096);
  finish("torn page 0, 4k");
}

/* ---- 4b. a stale section CRC at dir_count 0 -------------------------------- */

static void count_finding(void *arg, const char *msg) {
  findings *f = arg;
  if (!f->n++) snprintf(f->first, sizeof f->first, "%s", msg);
}

/* Opens `path` with `flags`, expecting success, `recovery` pending or done, and
 * mp_check finding exactly `nfind` things (a stale checksum is one). */
static mp_pager *open_expect(const char *path, unsigned flags, unsigned recovery, unsigned nfind, const char *label) {
  mp_pager *p = NULL;
  char why[256] = "";
  int rc = mp_open_explain(path, flags, &p, why, sizeof why);
  if (rc != MP_OK) fail_msg("%s: open %#x refused: %s", label, flags, why);
  if (mp_recovery(p) != recovery) fail_msg("%s: open %#x: recovery %#x, want %#x", label, flags, mp_recovery(p), recovery);
  findings f = {0};
  assert_int_equal(mp_check(p, count_finding, &f, NULL), MP_OK);
  if (f.n != nfind) fail_msg("%s: open %#x: mp_check: %u finding(s), want %u; first: %s", label, flags, f.n, nfind, f.first);
  if (nfind && !strstr(f.first, "checksum")) fail_msg("%s: open %#x: the finding does not name the checksum: %s", label, flags, f.first);
  return p;
}

static void file_is(const char *path, const uint8_t *want, size_t len, const char *label) {
  size_t got_len;
  uint8_t *got = t_read_file(path, &got_len);
  assert_non_null(got);
  if (got_len != len || memcmp(got, want, len) != 0) fail_msg("%s: the file changed", label);
  free(got);
}

/* Page 0 with dir_count 0 and a section CRC that does not match it (zero, as a
 * create cut between the sectors of page 0 leaves it, or any other stale value,
 * as another writer may leave it): readers see it as it is and mp_check says so; a
 * writer's open rewrites the CRC alone, and from there every torn write of the
 * first directory append recovers, as on a freshly created file. Without the
 * repair, the append's dir_count + 1 torn from its CRC leaves a page 0 nothing
 * explains, and a cut after its metadata commit leaves its four pages looking like
 * regular pages. */
static void stale_crc_suite(size_t ps, uint32_t stale, const char *kind) {
  const char *path = t_path(2, "stale.img");
  char label[160];
  snprintf(label, sizeof label, "ps %zu, section CRC %s", ps, kind);
  mp_pager *p;
  assert_int_equal(mp_create(path, ps, &p), MP_OK);
  uint64_t reg[2];
  for (int i = 0; i < 2; i++) {
    assert_int_equal(mp_alloc(p, &reg[i]), MP_OK);
    write_reg(p, reg[i], (uint8_t)(0x41 + i));
  }
  snap want;
  snap_take(p, &want);
  assert_int_equal(mp_close(p), MP_OK);
  size_t len;
  uint8_t *good = t_read_file(path, &len), *img = malloc(len);
  assert_non_null(good);
  assert_int_equal(t_le32(good + SB_DC), 0);
  memcpy(img, good, len);
  if (t_le32(img + ps - 4) == stale) stale ^= 1;
  t_put32(img + ps - 4, stale);
  assert_int_equal(t_write_file(path, img, len), 0);

  /* A reader writes nothing and reports the stale CRC; a preview shows it repaired. */
  p = open_expect(path, MP_RDONLY, MP_RECOVER_CHECKSUM, 1, label);
  snap s;
  snap_take(p, &s);
  if (!snap_same(&s, &want)) fail_msg("%s: a reader sees another state", label);
  snap_free(&s);
  mp_close(p);
  p = open_expect(path, MP_PREVIEW, MP_RECOVER_CHECKSUM, 0, label);
  uint64_t w;
  assert_int_equal(mp_next_written(p, 0, &w), MP_OK);
  assert_int_equal(w, 0);
  /* (Pages that share a system page with page 0 count as written with it.) */
  if (mp_next_written(p, 1, &w) == MP_OK && w * ps >= (uint64_t)sysconf(_SC_PAGESIZE))
    fail_msg("%s: the preview's recovery wrote page %llu", label, (unsigned long long)w);
  mp_close(p);
  file_is(path, img, len, label);

  /* The writer's open: one change, the CRC (the last sector of page 0), so a torn
   * repair is the stale file again or the repaired one. */
  p = open_expect(path, 0, MP_RECOVER_CHECKSUM, 0, label);
  file_is(path, good, len, label);
  for (size_t k = 0; k + SECTOR < ps; k += SECTOR)
    assert_memory_equal(img + k, good + k, SECTOR); /* (and only the last sector differs) */
  snap_take(p, &s);
  if (!snap_same(&s, &want)) fail_msg("%s: the repair changed the state", label);
  snap_free(&s);
  torn_append(p, path, ps);
  assert_int_equal(mp_close(p), MP_OK);
  assert_int_equal(mp_close(g_reloader), MP_OK);
  g_reloader = NULL;
  assert_int_equal(mp_close(g_ro_reloader), MP_OK);
  g_ro_reloader = NULL;
  p = open_expect(path, MP_RDONLY, 0, 0, label);
  mp_close(p);

  /* A stale CRC over reference bytes at dir_count 0 is refused, by readers and
   * writers alike, and nothing is written: no checksum vouches for the bytes. */
  img[SB_REFS + 3] = 0x5A;
  for (int ro = 0; ro < 2; ro++) {
    assert_int_equal(t_write_file(path, img, len), 0);
    char why[256] = "";
    p = NULL;
    int rc = mp_open_explain(path, ro ? MP_RDONLY : 0, &p, why, sizeof why);
    if (rc != MP_ECORRUPT || !strstr(why, "checksum")) fail_msg("%s, a byte past dir_count 0: open gave %d (%s)", label, rc, why);
    file_is(path, img, len, label);
  }
  snap_free(&want);
  free(img);
  free(good);
}

static void test_stale_section_crc(void **state) {
  (void)state;
  for (size_t ps = 1024; ps <= 8192; ps *= 2) {
    stale_crc_suite(ps, 0, "zero");
    stale_crc_suite(ps, 0x6B1D2E07u, "stale");
  }
  finish("stale section CRC");
}

/* ---- 4c. reference bytes past dir_count that name regular pages ----------- */

/* Writes into the regular page `pg` of image `img` a directory page whose entry 0 is
 * `ent` (NULL: none in use); `junk` also fills a free entry with non-zero bytes, as
 * a directory page copied from another file may hold (no library writes it). */
static void fake_dir(uint8_t *img, size_t ps, uint64_t pg, const uint8_t *ent, bool junk) {
  uint8_t *d = img + pg * ps;
  memset(d, 0, ps);
  t_put32(d + D_CAP, (uint32_t)((ps - 12) / ENT));
  if (ent) memcpy(d + D_ENT, ent, ENT);
  if (junk) memset(d + D_ENT + 2 * ENT + 1, 0x3C, ENT - 1);
  reseal_page(d, ps);
}

/* Recovery frees the pages an interrupted directory append left allocated, which it
 * finds through the reference the append wrote past dir_count (an intent: page 0's
 * CRC explains those bytes away). Bytes of that form that another writer left, naming
 * pages that merely look like an append's directory pages, must not free anyone's
 * regular pages. Four regular pages with data; page 0 gets a reference to two of them
 * past dir_count (0, and 1 with a protected page), shaped as a directory page pair
 * whose second copy lists the other two pages:
 *  - the CRC covers the bytes (as any writer that keeps the CRC leaves them): page 0
 *    is as found, nothing to recover;
 *  - the CRC explains the bytes away, the pages are directory-like but not what an
 *    append writes (an unused entry holds bytes, the entry has a generation and the
 *    checksum of a page that is not zero): the bytes are dropped, no page is freed;
 *  - the same, with the pages byte for byte what this library's append writes: on disk
 *    that is its interrupted append, and the pages are reclaimed. Only a writer that
 *    leaves build byte 1 (README: not the reference after adoption) can make it. */
static void foreign_intent_case(size_t ps, bool with_block, int variant) {
  const char *path = t_path(2, "intent.img");
  char label[160];
  snprintf(label, sizeof label, "ps %zu, %s, foreign reference bytes variant %d", ps,
           with_block ? "1 directory block" : "no directory block", variant);
  mp_pager *p;
  assert_int_equal(mp_create(path, ps, &p), MP_OK);
  uint64_t r[4], pid, extra;
  for (int i = 0; i < 4; i++) assert_int_equal(mp_alloc(p, &r[i]), MP_OK);
  if (with_block) assert_int_equal(mp_protected_alloc(p, &pid), MP_OK);
  assert_int_equal(mp_alloc(p, &extra), MP_OK);
  assert_int_equal(mp_close(p), MP_OK);
  size_t len;
  uint8_t *img = t_read_file(path, &len);
  assert_non_null(img);
  const uint32_t dc = t_le32(img + SB_DC);
  assert_int_equal(dc, with_block ? 1 : 0);

  /* The entry page_b lists: r[2] and r[3], the content's CRC in it. */
  bool exact = variant == 2;
  uint8_t *c = img + r[2] * ps;
  memset(c, exact ? 0 : 0x77, ps);
  memset(img + r[3] * ps, 0x66, ps);
  uint8_t ent[ENT] = {0};
  ent[E_USE] = 1;
  t_put64(ent + E_A, r[2]);
  t_put64(ent + E_B, r[3]);
  t_put64(ent + E_GEN, exact ? 0 : 7);
  t_put32(ent + E_CRC, t_crc(c, ps));
  fake_dir(img, ps, r[0], NULL, !exact);
  fake_dir(img, ps, r[1], ent, false);
  uint8_t *want = malloc(len); /* the regular pages' data, to compare after recovery */
  memcpy(want, img, len);

  uint8_t *ref = img + SB_REFS + (size_t)REF * dc;
  t_put64(ref, r[0]);
  t_put64(ref + 8, r[1]);
  ref[REF_ACT] = 0;
  if (variant == 0) reseal_section(img, ps);
  assert_int_equal(t_write_file(path, img, len), 0);

  p = NULL;
  char why[256] = "";
  if (mp_open_explain(path, 0, &p, why, sizeof why) != MP_OK) fail_msg("%s: refused: %s", label, why);
  unsigned rec = mp_recovery(p);
  findings f = check(p);
  if (f.n) fail_msg("%s: mp_check: %s", label, f.first);
  snap s;
  snap_take(p, &s);
  size_t nr = 0;
  for (size_t i = 0; i < s.nreg; i++)
    for (int k = 0; k < 4; k++) nr += s.reg[i] == r[k];
  if (variant == 0 && rec != 0) fail_msg("%s: recovery %#x where the CRC covers the bytes", label, rec);
  if (variant == 1 && rec != MP_RECOVER_PAGE0) fail_msg("%s: recovery %#x, want the bytes dropped alone", label, rec);
  if (variant < 2) {
    if (nr != 4) fail_msg("%s: %zu of the 4 regular pages are left", label, nr);
    for (int k = 0; k < 4; k++) {
      void *d;
      assert_int_equal(mp_page(p, r[k], &d), MP_OK);
      if (memcmp(d, want + r[k] * ps, ps) != 0) fail_msg("%s: regular page %llu changed", label, (unsigned long long)r[k]);
    }
  } else if (rec != (MP_RECOVER_PAGE0 | MP_RECOVER_RECLAIM) || nr != 0) {
    fail_msg("%s: recovery %#x, %zu of the 4 pages left regular: an interrupted append is not reclaimed", label, rec, nr);
  }
  snap_free(&s);
  mp_close(p);
  free(want);
  free(img);
}

static void test_foreign_intent(void **state) {
  (void)state;
  for (size_t ps = 1024; ps <= 4096; ps *= 4)
    for (int blk = 0; blk < 2; blk++)
      for (int v = 0; v < 3; v++) foreign_intent_case(ps, blk, v);
}

/* ---- 5. the reference's torn directory flip ------------------------------ */

static void test_reference_torn_flip(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = t_read_file(t_fixture("protected-4k.img.gz"), &len);
  assert_non_null(img);
  snap bs;
  snap_of_image(img, len, &bs);
  /* What protected-4k.txt says the file holds. */
  assert_int_equal(bs.total, 32);
  assert_int_equal(bs.free, 16);
  assert_int_equal(bs.nreg, 3);
  assert_int_equal(bs.nprot, 4);
  static const uint64_t want_ids[] = {0, 1, 2, 4};
  for (int i = 0; i < 4; i++) assert_int_equal(bs.prot[i], want_ids[i]);
  uint32_t dc = t_le32(img + SB_DC);
  assert_true(dc >= 1);
  uint8_t *m = malloc(len);
  char label[160];
  for (uint32_t b = 0; b < dc; b++) {
    /* The reference's flip torn: the selector reached the disk, the CRC did not (or
     * the reverse, which is the same image seen from the other version). */
    memcpy(m, img, len);
    m[SB_REFS + REF * b + REF_ACT] ^= 1;
    snprintf(label, sizeof label, "reference file: block %u selector toggled, CRC as it was", b);
    try_image(m, len, EX_SAME, &bs, 0, label);
    /* The same with the CRC also damaged: nothing explains it any more. */
    m[4096 - 1] ^= 0x10;
    snprintf(label, sizeof label, "reference file: block %u selector toggled and CRC damaged", b);
    try_image(m, len, EX_FAIL, &bs, 0, label);
  }
  /* The content checks of protected-4k.txt, on the recovered file. */
  memcpy(m, img, len);
  m[SB_REFS + REF_ACT] ^= 1;
  const char *path = t_path(1, "ref.img");
  assert_int_equal(t_write_file(path, m, len), 0);
  mp_pager *p;
  assert_int_equal(mp_open(path, 0, &p), MP_OK);
  static const struct { uint64_t id; uint8_t first, last; uint64_t sum; } pc[] = {
      {0, 48, 127, 525640}, {1, 49, 128, 525640}, {2, 119, 198, 525640}, {4, 52, 131, 525640}};
  for (int i = 0; i < 4; i++) {
    const uint8_t *d;
    assert_int_equal(mp_protected_read(p, pc[i].id, (const void **)&d), MP_OK);
    uint64_t sum = 0;
    for (size_t k = 0; k < 4096; k++) sum += d[k];
    assert_int_equal(d[0], pc[i].first);
    assert_int_equal(d[4095], pc[i].last);
    assert_int_equal(sum, pc[i].sum);
  }
  unsigned n;
  assert_int_equal(mp_check(p, NULL, NULL, &n), MP_OK);
  assert_int_equal(n, 0);
  mp_close(p);
  snap_free(&bs);
  free(m);
  free(img);
  finish("reference torn flip");
}

int main(void) {
  /* Scratch files in memory when the caller did not choose: every open and
   * recovery msyncs, and on a disk file system thousands of them take minutes. */
  if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 0);
  if (getenv("MP_TEST_FILTER")) cmocka_set_test_filter(getenv("MP_TEST_FILTER"));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fields_4k),     cmocka_unit_test(test_fields_1k),
      cmocka_unit_test(test_truncate),      cmocka_unit_test(test_random_flips),
      cmocka_unit_test(test_torn_page0_1k), cmocka_unit_test(test_torn_page0_4k),
      cmocka_unit_test(test_reference_torn_flip),
      cmocka_unit_test(test_stale_section_crc),
      cmocka_unit_test(test_foreign_intent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
