/* test_format3.c: the 0.3 codec (format3.c): each structure survives a round trip, and every
 * damaged byte and every out-of-range field is refused, with the reason that names it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format3.h"
#include "layout.h"
#include "mappedpages.h"
#include "support.h"

static const unsigned log2s[] = {10, 11, 12, 14};

#define assert_why(why, word)                                                       \
  do {                                                                              \
    if (!strstr((why), (word))) fail_msg("reason \"%s\" lacks \"%s\"", (why), (word)); \
  } while (0)

/* ---- superblock ------------------------------------------------------------- */

static mp3_sb sample_sb(unsigned log2) {
  uint64_t m = mp3__m((size_t)1 << log2);
  mp3_sb sb = {.log2 = log2, .flags = MP3_SB_SPARSE, .root = {m, 2 * m}, .leaf0 = {3 * m, 4 * m}};
  return sb;
}

static void reseal_sb(uint8_t *b) { t_put32(b + MP3_SB_CRC, t_crc(b, MP3_SB_CRC)); }

/* Decodes b and asserts the code and that the reason holds `word`. */
static void sb_refused(const uint8_t *b, int code, const char *word) {
  mp3_sb out;
  char why[200] = "";
  int rc = mp3__sb_decode(b, MP3_SB_LEN, &out, why, sizeof why);
  if (rc != code) fail_msg("code %d (%s), expected %d for \"%s\"", rc, why, code, word);
  assert_why(why, word);
}

static void test_sb_round_trip(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof log2s / sizeof log2s[0]; i++) {
    mp3_sb sb = sample_sb(log2s[i]), out;
    uint8_t b[MP3_SB_LEN];
    mp3__sb_encode(&sb, b);
    assert_true(mp3__is_v3(b, sizeof b));
    assert_memory_equal(b, "MPPG\0\3\0\1", 8);
    assert_int_equal(t_le32(b + MP3_SB_CRC), t_crc(b, 508));
    char why[200];
    assert_int_equal(mp3__sb_decode(b, sizeof b, &out, why, sizeof why), MP_OK);
    assert_memory_equal(&out, &sb, sizeof sb);
    sb.flags = 0;
    mp3__sb_encode(&sb, b);
    assert_int_equal(mp3__sb_decode(b, sizeof b, &out, why, sizeof why), MP_OK);
    assert_int_equal(out.flags, 0);
  }
}

static void test_sb_every_byte(void **state) {
  (void)state;
  mp3_sb sb = sample_sb(12);
  uint8_t good[MP3_SB_LEN], b[MP3_SB_LEN];
  mp3__sb_encode(&sb, good);
  for (size_t at = 0; at < MP3_SB_LEN; at++) {
    for (int x = 0; x < 2; x++) {
      memcpy(b, good, sizeof b);
      b[at] ^= x ? 0xFF : 0x01;
      mp3_sb out;
      char why[200] = "";
      int rc = mp3__sb_decode(b, sizeof b, &out, why, sizeof why);
      if (rc == MP_OK) fail_msg("byte %zu ^ %s accepted", at, x ? "0xff" : "0x01");
      const char *word = at < 4 ? "tag MPPG"
                         : at == 4 || (at == 5 && x) ? "newer than 0.3"
                         : at == 5 ? "is not 0.3"
                         : at == 6 ? "patch"
                                   : "checksum";
      assert_int_equal(rc, at == 4 || (at == 5 && x) || at == 6 ? MP_EVERSION : MP_ECORRUPT);
      assert_why(why, word);
    }
  }
  /* Shorter than the sector: refused before any byte is read past it. */
  mp3_sb out;
  char why[200];
  uint8_t *short_copy = malloc(MP3_SB_LEN - 1);
  memcpy(short_copy, good, MP3_SB_LEN - 1);
  assert_int_equal(mp3__sb_decode(short_copy, MP3_SB_LEN - 1, &out, why, sizeof why), MP_ECORRUPT);
  assert_why(why, "too short");
  free(short_copy);
}

static void test_sb_every_field(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof log2s / sizeof log2s[0]; i++) {
    unsigned log2 = log2s[i];
    uint64_t m = mp3__m((size_t)1 << log2);
    mp3_sb sb = sample_sb(log2);
    uint8_t good[MP3_SB_LEN], b[MP3_SB_LEN];
    mp3__sb_encode(&sb, good);
#define SB_CASE(edit, code, word)   \
  do {                              \
    memcpy(b, good, sizeof b);      \
    edit;                           \
    reseal_sb(b);                   \
    sb_refused(b, code, word);      \
  } while (0)
    SB_CASE(b[7] = 0, MP_ECORRUPT, "build byte 0");
    SB_CASE(b[7] = 2, MP_ECORRUPT, "build byte 2");
    SB_CASE(b[5] = 2, MP_ECORRUPT, "0.2 is not 0.3");
    SB_CASE(b[6] = 1, MP_EVERSION, "patch 1");
    SB_CASE(t_put32(b + 8, 9), MP_ECORRUPT, "page size");
    SB_CASE(t_put32(b + 8, 25), MP_EVERSION, "page size");
    SB_CASE(t_put32(b + 8, UINT32_MAX), MP_EVERSION, "page size");
    /* another valid page size: the group size and the blocks no longer agree with it */
    SB_CASE(t_put32(b + 8, log2 == 14 ? 15 : 14), MP_ECORRUPT, "pages per group");
    for (int bit = 2; bit < 32; bit++) SB_CASE(t_put32(b + 12, 1u << bit), MP_ECORRUPT, "unknown bits");
    /* page 3 a regular page: only at 1 KiB, in an upgraded file (one with a sector copy) */
    SB_CASE(t_put32(b + 12, MP3_SB_PAGE3), MP_ECORRUPT, "page 3 as a regular page");
    SB_CASE(t_put64(b + 48, t_le64(good + 48) + 1), MP_ECORRUPT, "pages per group");
    SB_CASE(t_put64(b + 48, 0), MP_ECORRUPT, "pages per group");
    for (size_t at = 64; at < 508; at++) SB_CASE(b[at] = 1, MP_ECORRUPT, "bytes 64..507");
    if (m == 1) /* a sector copy: only below 4 KiB pages */
      for (size_t at = 56; at < 64; at++) SB_CASE(b[at] = 1, MP_ECORRUPT, "a sector copy");
    else {
      SB_CASE(t_put64(b + 56, 6 * m + 1), MP_ECORRUPT, "the sector copy");
      SB_CASE(t_put64(b + 56, m), MP_ECORRUPT, "are both at page");
    }
    static const char *const names[4] = {"root slot R0", "root slot R1", "leaf slot A", "leaf slot B"};
    for (int f = 0; f < 4; f++) {
      size_t at = 16 + 8 * (size_t)f;
      SB_CASE(t_put64(b + at, 0), MP_ECORRUPT, names[f]);
      SB_CASE(t_put64(b + at, MP3_MAX_PAGES), MP_ECORRUPT, names[f]);
      SB_CASE(t_put64(b + at, UINT64_MAX - m + 1), MP_ECORRUPT, names[f]);
      if (m > 1) SB_CASE(t_put64(b + at, 6 * m + 1), MP_ECORRUPT, "not the first page of a metadata block");
      for (int g = 0; g < 4; g++)
        if (g != f) SB_CASE(t_put64(b + at, t_le64(good + 16 + 8 * (size_t)g)), MP_ECORRUPT, "are both at page");
    }
#undef SB_CASE
  }
}

/* ---- roots ------------------------------------------------------------------ */

static uint8_t *sample_root(unsigned log2, unsigned slot, uint32_t dc, mp3_root *r) {
  size_t mb = mp3__mb((size_t)1 << log2);
  uint8_t *block = malloc(mb), refs[3 * MP3_REF_SIZE] = {0};
  for (uint32_t i = 0; i < dc; i++) {
    t_put64(refs + MP3_REF_SIZE * i, 100 + 2 * i);
    t_put64(refs + MP3_REF_SIZE * i + 8, 101 + 2 * i);
    refs[MP3_REF_SIZE * i + 16] = (uint8_t)(i & 1);
  }
  *r = (mp3_root){.slot = slot, .generation = 6 + slot, .total = 300, .free_count = 200, .dir_count = dc};
  mp3__root_encode(r, log2, refs, block);
  return block;
}

static void reseal_block(uint8_t *b, size_t mb) { t_put32(b + mb - 4, t_crc(b, mb - 4)); }

static void test_root_round_trip(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof log2s / sizeof log2s[0]; i++)
    for (unsigned slot = 0; slot < 2; slot++)
      for (uint32_t dc = 0; dc <= 3; dc++) {
        mp3_root r, out;
        uint8_t *b = sample_root(log2s[i], slot, dc, &r);
        size_t mb = mp3__mb((size_t)1 << log2s[i]);
        assert_memory_equal(b, "MPR3", 4);
        assert_int_equal(b[4], slot);
        assert_int_equal(b[5], log2s[i]);
        assert_int_equal(t_le32(b + mb - 4), t_crc(b, mb - 4));
        char why[200];
        assert_int_equal(mp3__root_decode(b, log2s[i], slot, &out, why, sizeof why), MP_OK);
        assert_int_equal(out.slot, r.slot);
        assert_int_equal(out.generation, r.generation);
        assert_int_equal(out.total, r.total);
        assert_int_equal(out.free_count, r.free_count);
        assert_int_equal(out.dir_count, r.dir_count);
        for (uint32_t k = 0; k < dc; k++) {
          assert_int_equal(t_le64(mp3__root_ref(b, k)), 100 + 2 * k);
          assert_int_equal(mp3__root_ref(b, k)[16], k & 1);
        }
        /* the other slot's root is not this slot's */
        assert_int_equal(mp3__root_decode(b, log2s[i], !slot, &out, why, sizeof why), MP_ECORRUPT);
        free(b);
      }
  /* the most references that fit, at 4 KiB: 238 (FORMAT.md 3.4) */
  assert_int_equal(mp3__max_refs(4096), 238);
  assert_int_equal(mp3__max_refs(1024), 238);
  assert_int_equal(mp3__group_pages(1024), 32544);
  assert_int_equal(mp3__group_pages(8192), 65312);
}

static void root_refused(const uint8_t *b, unsigned log2, unsigned slot, const char *word) {
  mp3_root out;
  char why[200] = "";
  if (mp3__root_decode(b, log2, slot, &out, why, sizeof why) != MP_ECORRUPT) fail_msg("accepted: \"%s\"", word);
  assert_why(why, word);
}

static void test_root_every_byte(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof log2s / sizeof log2s[0]; i++) {
    mp3_root r;
    uint8_t *good = sample_root(log2s[i], 1, 3, &r);
    size_t mb = mp3__mb((size_t)1 << log2s[i]);
    uint8_t *b = malloc(mb);
    for (size_t at = 0; at < mb; at++) {
      memcpy(b, good, mb);
      b[at] ^= (uint8_t)(1u << (at % 8));
      root_refused(b, log2s[i], 1, at < 4 ? "magic MPR3" : "checksum");
    }
    free(b);
    free(good);
  }
}

static void test_root_every_field(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof log2s / sizeof log2s[0]; i++) {
    unsigned log2 = log2s[i];
    size_t mb = mp3__mb((size_t)1 << log2);
    uint64_t m = mp3__m((size_t)1 << log2);
    mp3_root r;
    uint8_t *good = sample_root(log2, 0, 3, &r), *b = malloc(mb);
#define ROOT_CASE(edit, word)       \
  do {                              \
    memcpy(b, good, mb);            \
    edit;                           \
    reseal_block(b, mb);            \
    root_refused(b, log2, 0, word); \
  } while (0)
    ROOT_CASE(b[4] = 1, "holds the root of slot 1");
    ROOT_CASE(b[4] = 255, "holds the root of slot 255");
    ROOT_CASE(b[5] = (uint8_t)(log2 + 1), "the superblock's are");
    ROOT_CASE(b[5] = 0, "the superblock's are");
    for (size_t at = 6; at < 8; at++) ROOT_CASE(b[at] = 1, "reserved bytes");
    for (size_t at = 36; at < 40; at++) ROOT_CASE(b[at] = 0x80, "reserved bytes");
    ROOT_CASE(t_put64(b + 8, 0), "none ever does");
    ROOT_CASE(t_put64(b + 8, 7), "commits into slot 1");
    ROOT_CASE(t_put64(b + 8, UINT64_MAX), "commits into slot 1");
    ROOT_CASE(t_put64(b + 16, MP3_MAX_PAGES + 1), "page count");
    ROOT_CASE(t_put64(b + 16, UINT64_MAX), "page count");
    if (m > 1) ROOT_CASE(t_put64(b + 16, m - 1), "page count");
    ROOT_CASE(t_put64(b + 16, 0), "page count");
    ROOT_CASE(t_put64(b + 24, 301), "free count");
    ROOT_CASE(t_put64(b + 24, UINT64_MAX), "free count");
    ROOT_CASE(t_put32(b + 32, mp3__max_refs((size_t)1 << log2) + 1), "at most");
    ROOT_CASE(t_put32(b + 32, UINT32_MAX), "at most");
    /* dir_count + 1 over a zero reference: page 0 is page 0's block */
    ROOT_CASE(t_put32(b + 32, 4), "directory reference 3 names page 0");
    ROOT_CASE(t_put32(b + 32, 2), "past its 2 directory references");
    for (uint32_t k = 0; k < 3; k++) {
      uint8_t *ref = b + MP3_ROOT_REFS + MP3_REF_SIZE * k;
      char word[64];
      snprintf(word, sizeof word, "directory reference %u", k);
      ROOT_CASE(ref[16] = 2, "has selector 2");
      ROOT_CASE(ref[16] = 0xFF, word);
      ROOT_CASE(t_put64(ref, 300), "outside");
      ROOT_CASE(t_put64(ref + 8, UINT64_MAX), "outside");
      if (m > 1) ROOT_CASE(t_put64(ref, m - 1), "outside");
      ROOT_CASE(t_put64(ref + 8, 0), word);
      ROOT_CASE(t_put64(ref + 8, t_le64(ref)), "for both copies");
    }
    for (size_t at = MP3_ROOT_REFS + 3 * MP3_REF_SIZE; at < mb - 4; at++) ROOT_CASE(b[at] = 1, "past its 3");
#undef ROOT_CASE
    free(b);
    free(good);
  }
}

/* ---- leaves ------------------------------------------------------------------- */

/* A leaf of group 2 whose group holds `pages` pages, pages 0..used-1 allocated. */
static uint8_t *sample_leaf(unsigned log2, uint64_t pages, uint64_t used, uint64_t gen) {
  size_t ps = (size_t)1 << log2, mb = mp3__mb(ps);
  uint8_t *b = calloc(1, mb);
  for (uint64_t i = 0; i < used; i++) b[MP3_LEAF_BITMAP + i / 8] |= (uint8_t)(1u << (i % 8));
  mp3__leaf_seal(b, ps, 2, gen, (uint32_t)(pages - used));
  return b;
}

static void leaf_refused(const uint8_t *b, unsigned log2, uint64_t pages, const char *word) {
  mp3_leaf out;
  char why[200] = "";
  if (mp3__leaf_decode(b, (size_t)1 << log2, 2, pages, &out, why, sizeof why) != MP_ECORRUPT)
    fail_msg("accepted: \"%s\"", word);
  assert_why(why, word);
}

static void test_leaf_round_trip(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof log2s / sizeof log2s[0]; i++) {
    size_t ps = (size_t)1 << log2s[i], mb = mp3__mb(ps);
    uint64_t c = mp3__group_pages(ps);
    assert_int_equal(c % mp3__m(ps), 0); /* groups begin on block boundaries */
    uint64_t sizes[] = {1, 7, 8, 9, 64, c - 1, c};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      uint64_t pages = sizes[k], used = pages / 3;
      uint8_t *b = sample_leaf(log2s[i], pages, used, 41);
      assert_memory_equal(b, "MPL3", 4);
      assert_int_equal(t_le32(b + mb - 4), t_crc(b, mb - 4));
      mp3_leaf out;
      char why[200];
      assert_int_equal(mp3__leaf_decode(b, ps, 2, pages, &out, why, sizeof why), MP_OK);
      assert_int_equal(out.group, 2);
      assert_int_equal(out.generation, 41);
      assert_int_equal(out.free_count, pages - used);
      assert_true(mp3__leaf_head(b, 2, &out));
      assert_false(mp3__leaf_head(b, 3, &out));
      assert_int_equal(mp__popcount(b + MP3_LEAF_BITMAP, pages), used);
      free(b);
    }
  }
}

static void test_leaf_every_byte(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof log2s / sizeof log2s[0]; i++) {
    size_t ps = (size_t)1 << log2s[i], mb = mp3__mb(ps);
    uint64_t pages = mp3__group_pages(ps) - 5;
    uint8_t *good = sample_leaf(log2s[i], pages, 1000, 9), *b = malloc(mb);
    for (size_t at = 0; at < mb; at++) {
      memcpy(b, good, mb);
      b[at] ^= (uint8_t)(0x80u >> (at % 8));
      leaf_refused(b, log2s[i], pages, at < 4 ? "magic MPL3" : at < 8 ? "holds the leaf of group" : "checksum");
    }
    free(b);
    free(good);
  }
}

static void test_leaf_every_field(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof log2s / sizeof log2s[0]; i++) {
    unsigned log2 = log2s[i];
    size_t ps = (size_t)1 << log2, mb = mp3__mb(ps);
    uint64_t c = mp3__group_pages(ps), pages = 1000;
    uint8_t *good = sample_leaf(log2, pages, 100, 9), *b = malloc(mb);
#define LEAF_CASE(edit, n, word)    \
  do {                              \
    memcpy(b, good, mb);            \
    edit;                           \
    reseal_block(b, mb);            \
    leaf_refused(b, log2, n, word); \
  } while (0)
    for (size_t at = 20; at < 24; at++) LEAF_CASE(b[at] = 1, pages, "bytes 20..23");
    LEAF_CASE(t_put32(b + 16, 901), pages, "free count is 901 but its bitmap has 900");
    LEAF_CASE(t_put32(b + 16, 899), pages, "free count is 899");
    LEAF_CASE(t_put32(b + 16, UINT32_MAX), pages, "free count");
    /* each bit past the group's pages, the one right past and the very last */
    LEAF_CASE(b[MP3_LEAF_BITMAP + pages / 8] |= (uint8_t)(1u << (pages % 8)), pages, "past the file's last page");
    LEAF_CASE(b[mb - 5] = 0x80, pages, "past the file's last page");
    for (uint64_t bit = pages; bit < pages + 70; bit++)
      LEAF_CASE(b[MP3_LEAF_BITMAP + bit / 8] |= (uint8_t)(1u << (bit % 8)), pages, "past the file's last page");
    /* a page allocated without its count, and a count without its page */
    LEAF_CASE(b[MP3_LEAF_BITMAP + 50] |= 0x80, pages, "free count is 900 but its bitmap has 899");
    LEAF_CASE(b[MP3_LEAF_BITMAP] &= 0xFE, pages, "bitmap has 901");
    /* a group cannot be asked to hold more than C pages */
    memcpy(b, good, mb);
    leaf_refused(b, log2, c + 1, "a group holds");
    leaf_refused(b, log2, UINT64_MAX, "a group holds");
    /* the same leaf read as if the group held fewer pages than are allocated */
    leaf_refused(b, log2, 99, "past the file's last page");
#undef LEAF_CASE
    free(b);
    free(good);
  }
}

/* ---- which leaf slot is current ------------------------------------------------ */

static void test_leaf_current(void **state) {
  (void)state;
  size_t ps = 4096, mb = mp3__mb(ps);
  uint8_t *zero = calloc(1, mb);
  uint8_t *g1 = sample_leaf(12, 500, 10, 1), *g2 = sample_leaf(12, 500, 11, 2), *g3 = sample_leaf(12, 500, 12, 3);
  uint8_t *bad2 = malloc(mb); /* generation 2, torn: its last sector old */
  memcpy(bad2, g2, mb);
  bad2[mb - 100] ^= 1;
  uint8_t *other = sample_leaf(12, 500, 10, 1);
  t_put32(other + 4, 7);
  reseal_block(other, mb);
  struct {
    const uint8_t *a, *b;
    uint64_t G;
    int rc;
    unsigned cur, stale;
    const char *word;
  } cases[] = {
      {g1, zero, 1, MP_OK, 0, 0, NULL},        /* a new file: slot B never written */
      {zero, g1, 1, MP_OK, 1, 0, NULL},
      {g1, g2, 1, MP_OK, 0, 2, NULL},          /* commit 2 staged, its root never landed */
      {g1, g2, 2, MP_OK, 1, 0, NULL},          /* ... and landed */
      {g3, g2, 2, MP_OK, 1, 1, NULL},
      {g3, g2, 5, MP_OK, 0, 0, NULL},          /* the group untouched since commit 3 */
      {g1, bad2, 2, MP_OK, 0, 0, NULL},        /* commit 2's leaf torn: the root cannot be 2's */
      {bad2, g1, 9, MP_OK, 1, 0, NULL},
      {g1, g1, 4, MP_ECORRUPT, 0, 0, "both leaf slots hold generation 1"},
      {zero, zero, 4, MP_ECORRUPT, 0, 0, "neither leaf slot"},
      {other, zero, 4, MP_ECORRUPT, 0, 0, "neither leaf slot"},
      {g2, g3, 1, MP_ECORRUPT, 0, 3, "both leaf slots are newer than the root (generation 1)"},
      {bad2, zero, 2, MP_ECORRUPT, 0, 0, "passes its checksum"},
      {bad2, g3, 2, MP_ECORRUPT, 0, 2, "passes its checksum"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const uint8_t *slots[2] = {cases[k].a, cases[k].b};
    unsigned cur = 9, stale = 9;
    char why[200] = "";
    int rc = mp3__leaf_current(slots, ps, 2, cases[k].G, &cur, &stale, why, sizeof why);
    if (rc != cases[k].rc) fail_msg("case %zu: %d (%s)", k, rc, why);
    assert_int_equal(stale, cases[k].stale);
    if (rc == MP_OK) assert_int_equal(cur, cases[k].cur);
    else assert_why(why, cases[k].word);
  }
  free(zero), free(g1), free(g2), free(g3), free(bad2), free(other);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sb_round_trip),   cmocka_unit_test(test_sb_every_byte),
      cmocka_unit_test(test_sb_every_field),  cmocka_unit_test(test_root_round_trip),
      cmocka_unit_test(test_root_every_byte), cmocka_unit_test(test_root_every_field),
      cmocka_unit_test(test_leaf_round_trip), cmocka_unit_test(test_leaf_every_byte),
      cmocka_unit_test(test_leaf_every_field), cmocka_unit_test(test_leaf_current),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
