/* test_case.c: the case codec: every byte string decodes to a valid case, binary and
 * text forms round-trip, bad text is refused with the line that is wrong, and an image
 * line names a file that exists, relative to the case file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "case.h"

static cc_case *new_case(void) {
  cc_case *c = malloc(sizeof *c);
  assert_non_null(c);
  return c;
}

static void assert_valid(const cc_case *c) {
  assert_true(c->page_size == 1024 || c->page_size == 2048 || c->page_size == 4096 || c->page_size == 8192 ||
              c->page_size == 16384);
  assert_true(c->sector == 512 || c->sector == 4096);
  assert_true(c->sched.tear < CC_TEAR_KINDS);
  assert_true(c->sched.writeback < CC_WB_KINDS);
  assert_true(c->nops <= CC_MAX_OPS);
  for (size_t i = 0; i < c->nops; i++) assert_true(c->ops[i].kind < CC_OP_KINDS);
}

static void assert_same(const cc_case *a, const cc_case *b) {
  assert_int_equal(a->page_size, b->page_size);
  assert_int_equal(a->sector, b->sector);
  assert_int_equal(a->format3, b->format3);
  assert_int_equal(a->sparse, b->sparse);
  assert_int_equal(a->upgrade, b->upgrade);
  assert_memory_equal(&a->sched, &b->sched, sizeof a->sched);
  assert_int_equal(a->nops, b->nops);
  assert_memory_equal(a->ops, b->ops, a->nops * sizeof *a->ops);
}

static void test_every_byte_string_decodes(void **state) {
  (void)state;
  cc_case *c = new_case(), *d = new_case();
  uint8_t buf[400];
  uint64_t x = 88172645463325252ull;
  for (int round = 0; round < 2000; round++) {
    size_t len = (size_t)(round % 400);
    for (size_t i = 0; i < len; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      buf[i] = (uint8_t)x;
    }
    cc_case_decode(buf, len, c);
    assert_valid(c);
    assert_int_equal(c->nops, len < CC_HEADER_SIZE ? 0 : (len - CC_HEADER_SIZE) / 3);
    /* Its encoding decodes to the same case. */
    uint8_t enc[400];
    size_t n = cc_case_encode(c, enc, sizeof enc);
    assert_true(n <= sizeof enc);
    cc_case_decode(enc, n, d);
    assert_same(c, d);
  }
  /* Header byte 0 keeps its meaning from before 16 KiB pages (0..3: 4, 1, 2, 8 KiB), so every
   * reproducer saved then replays as it did; 7 is 16 KiB, and encoding picks 0..3 or 7. */
  static const uint32_t sizes[8] = {4096, 1024, 2048, 8192, 4096, 1024, 2048, 16384};
  for (uint8_t b = 0; b < 8; b++) {
    uint8_t h[CC_HEADER_SIZE] = {b}, enc[CC_HEADER_SIZE];
    cc_case_decode(h, sizeof h, c);
    assert_int_equal(c->page_size, sizes[b]);
    assert_int_equal(cc_case_encode(c, enc, sizeof enc), CC_HEADER_SIZE);
    assert_int_equal(enc[0], b < 4 ? b : b == 7 ? 7 : b - 4);
  }
  cc_case_decode(NULL, 0, c);
  assert_valid(c);
  assert_int_equal(c->page_size, 4096);
  assert_int_equal(c->sched.cut_step, 0);
  free(c);
  free(d);
}

/* Header byte 1 carries the sector size (bit 0), "format 3" (bit 1), "sparse" (bit 2) and
 * "upgrade" (bit 3), so a 0.3 case is a fuzz input and a binary reproducer like any other;
 * bits 4 to 7 mean nothing and encode as 0. A byte 1 of 0 or 1, all cases saved before the
 * 0.3 bits existed (corpus/fuzz_ops, corpus/regressions), still decodes to a 0.2 file
 * without flags. */
static void test_header_flags(void **state) {
  (void)state;
  cc_case *c = new_case(), *d = new_case();
  for (unsigned b = 0; b < 256; b++) {
    uint8_t h[CC_HEADER_SIZE + 3] = {1, (uint8_t)b, 9, 0, CC_TEAR_GARBAGE, 2, CC_WB_ALL, 7, CC_ALLOC, 0, 0}, enc[32];
    cc_case_decode(h, sizeof h, c);
    assert_valid(c);
    assert_int_equal(c->sector, b & 1 ? 4096 : 512);
    assert_int_equal(c->format3, (b & 2) != 0);
    assert_int_equal(c->sparse, (b & 4) != 0);
    assert_int_equal(c->upgrade, (b & 8) != 0);
    assert_int_equal(c->page_size, 1024);
    assert_int_equal(c->sched.cut_step, 9);
    assert_int_equal(c->nops, 1);
    assert_int_equal(cc_case_encode(c, enc, sizeof enc), sizeof h);
    assert_int_equal(enc[1], b & 0x0f);
    h[1] = (uint8_t)(b & 0x0f);
    assert_memory_equal(enc, h, sizeof h);
  }
  /* the text form's lines, through a binary file and back */
  char dir[] = "/tmp/cc-flags-XXXXXX", bin[64], why[256];
  assert_non_null(mkdtemp(dir));
  snprintf(bin, sizeof bin, "%s/c.bin", dir);
  static const char *const texts[] = {
      "crashcheck-case 1\npage-size 4096\nsector 512\nformat 3\ncut 5 tear garbage:1 writeback none seed 0\nalloc\n",
      "crashcheck-case 1\npage-size 16384\nsector 4096\nsparse\nformat 3\ncut none\nalloc-bulk 3\n",
      "crashcheck-case 1\npage-size 4096\nsector 512\nsparse\nupgrade\ncut 9 tear all writeback all seed 1\npalloc\n",
      "crashcheck-case 1\npage-size 1024\nsector 512\nsparse\ncut none\nalloc\n",
  };
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    assert_int_equal(cc_case_parse_text(texts[i], c, why, sizeof why), CC_OK);
    assert_true(c->format3 || c->sparse || c->upgrade);
    assert_int_equal(cc_case_save_binary(c, bin), CC_OK);
    assert_int_equal(cc_case_load(bin, d, why, sizeof why), CC_OK);
    assert_same(c, d);
  }
  unlink(bin);
  rmdir(dir);
  free(c);
  free(d);
}

static void test_text_round_trip(void **state) {
  (void)state;
  cc_case *c = new_case(), *d = new_case();
  uint8_t buf[300];
  for (int round = 0; round < 200; round++) {
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 31 + round * 7 + (i >> 3) * round);
    cc_case_decode(buf, sizeof buf - (size_t)round, c);
    /* The text form writes only the arguments an operation uses. */
    for (size_t i = 0; i < c->nops; i++) {
      int k = c->ops[i].kind;
      if (k == CC_ALLOC || k == CC_SYNC || k == CC_PALLOC || k == CC_REOPEN) c->ops[i].a = 0;
      if (k == CC_ALLOC || k == CC_SYNC || k == CC_PALLOC || k == CC_REOPEN || k == CC_FREE || k == CC_ALLOC_BULK ||
          k == CC_PFREE)
        c->ops[i].b = 0;
    }
    if (c->sched.cut_step == 0) memset(&c->sched, 0, sizeof c->sched);
    if (c->sched.tear != CC_TEAR_PREFIX && c->sched.tear != CC_TEAR_SUFFIX && c->sched.tear != CC_TEAR_GARBAGE)
      c->sched.tear_n = 0;
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    cc_case_print_text(c, f);
    fclose(f);
    char why[256];
    assert_int_equal(cc_case_parse_text(text, d, why, sizeof why), CC_OK);
    assert_same(c, d);
    free(text);
  }
  free(c);
  free(d);
}

static void test_bad_text_names_the_line(void **state) {
  (void)state;
  cc_case *c = new_case();
  char why[256];
  static const char *const bad[] = {
      "alloc\n",                                           /* no magic line */
      "crashcheck-case 2\n",                               /* unknown version */
      "crashcheck-case 1\npage-size 3000\n",
      "crashcheck-case 1\nsector 1024\n",
      "crashcheck-case 1\nalloc 3\n",                      /* alloc takes no argument */
      "crashcheck-case 1\nfree\n",                         /* free takes one */
      "crashcheck-case 1\nfree 256\n",                     /* out of range */
      "crashcheck-case 1\nfrobnicate\n",
      "crashcheck-case 1\ncut 0 tear none writeback none seed 0\n",
      "crashcheck-case 1\ncut 5 tear prefix writeback none seed 0\n", /* prefix needs N */
      "crashcheck-case 1\ncut 5 tear all:3 writeback none seed 0\n",
      "crashcheck-case 1\ncut 5 tear all writeback some seed 0\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    why[0] = 0;
    assert_int_equal(cc_case_parse_text(bad[i], c, why, sizeof why), CC_EINVAL);
    assert_true(strlen(why) > 0);
  }
  assert_int_equal(cc_case_parse_text("crashcheck-case 1\nalloc\nfree x\n", c, why, sizeof why), CC_EINVAL);
  assert_non_null(strstr(why, "line 3"));
  /* Comments and blank lines are fine anywhere. */
  assert_int_equal(cc_case_parse_text("# hello\n\ncrashcheck-case 1 # v1\n  alloc  \n\npwrite 1 2 # x\n", c, why,
                                      sizeof why),
                   CC_OK);
  assert_int_equal(c->nops, 2);
  assert_int_equal(c->ops[1].kind, CC_PWRITE);
  assert_int_equal(c->ops[1].b, 2);
  free(c);
}

/* explore-from: read back as written, refused past the last operation or at 0, and left out
 * of the binary form (fuzzers cut one step of their own choosing). */
static void test_explore_from_line(void **state) {
  (void)state;
  cc_case *c = new_case(), *d = new_case();
  char why[256];
  assert_int_equal(cc_case_parse_text("crashcheck-case 1\nexplore-from 2\nalloc\nalloc\nfree 0\n", c, why, sizeof why),
                   CC_OK);
  assert_int_equal(c->explore_from, 2);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  cc_case_print_text(c, f);
  fclose(f);
  assert_non_null(strstr(text, "explore-from 2\n"));
  assert_int_equal(cc_case_parse_text(text, d, why, sizeof why), CC_OK);
  assert_int_equal(d->explore_from, 2);
  free(text);
  assert_int_equal(cc_case_parse_text("crashcheck-case 1\nexplore-from 4\nalloc\nalloc\nfree 0\n", c, why, sizeof why),
                   CC_EINVAL);
  assert_non_null(strstr(why, "explore-from 4 names no operation"));
  assert_int_equal(cc_case_parse_text("crashcheck-case 1\nexplore-from 0\nalloc\n", c, why, sizeof why), CC_EINVAL);
  assert_int_equal(cc_case_parse_text("crashcheck-case 1\nexplore-from\nalloc\n", c, why, sizeof why), CC_EINVAL);
  uint8_t bin[64];
  assert_int_equal(cc_case_parse_text("crashcheck-case 1\nexplore-from 1\nalloc\n", c, why, sizeof why), CC_OK);
  size_t n = cc_case_encode(c, bin, sizeof bin);
  cc_case_decode(bin, n, d);
  assert_int_equal(d->explore_from, 0);
  free(c);
  free(d);
}

/* explore --errors' reproducers: the error line reads back as it was written, its libpowercut
 * spelling is POWERCUT_ERROR's, bad ones are refused, and the binary form leaves it out. */
static void test_error_line(void **state) {
  (void)state;
  cc_case *c = new_case(), *d = new_case();
  char why[200], spec[64];
  const char *text = "crashcheck-case 1\ncut 9 tear none writeback none seed 0\nerror 7 EIO prefix:1\nalloc\nsync\n";
  assert_int_equal(cc_case_parse_text(text, c, why, sizeof why), CC_OK);
  assert_int_equal(c->error.step, 7);
  assert_int_equal(c->error.err, EIO);
  assert_int_equal(c->error.tear.tear, CC_TEAR_PREFIX);
  assert_int_equal(c->error.tear.tear_n, 1);
  cc_error_spec(c, spec, sizeof spec);
  assert_string_equal(spec, "7:EIO:prefix:1");
  static const char *const lines[] = {"error 3 ENOSPC none", "error 3 28 all", "error 3 EIO random:5",
                                      "error 3 EIO suffix:2"};
  static const char *const specs[] = {"3:ENOSPC:none", "3:ENOSPC:all", "3:EIO:random:5", "3:EIO:suffix:2"};
  for (size_t i = 0; i < 4; i++) {
    char t[200];
    snprintf(t, sizeof t, "crashcheck-case 1\n%s\nalloc\n", lines[i]);
    assert_int_equal(cc_case_parse_text(t, c, why, sizeof why), CC_OK);
    cc_error_spec(c, spec, sizeof spec);
    assert_string_equal(spec, specs[i]);
    /* printed and read back: the same error */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cc_case_print_text(c, f);
    fclose(f);
    assert_int_equal(cc_case_parse_text(buf, d, why, sizeof why), CC_OK);
    free(buf);
    assert_memory_equal(&c->error, &d->error, sizeof c->error);
  }
  static const char *const bad[] = {"error 3 EBOGUS all", "error 3 EIO garbage:1", "error 0 EIO all", "error 3 EIO",
                                    "error 3 EIO prefix", "error 3 -5 all"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char t[200];
    snprintf(t, sizeof t, "crashcheck-case 1\n%s\n", bad[i]);
    assert_int_equal(cc_case_parse_text(t, c, why, sizeof why), CC_EINVAL);
    assert_non_null(strstr(why, "line 2"));
  }
  /* the binary form has no room for it: fuzzers' bytes keep their meaning */
  assert_int_equal(cc_case_parse_text(text, c, why, sizeof why), CC_OK);
  uint8_t bin[64];
  size_t n = cc_case_encode(c, bin, sizeof bin);
  cc_case_decode(bin, n, d);
  assert_int_equal(d->error.step, 0);
  assert_int_equal(d->sched.cut_step, 9);
  free(c);
  free(d);
}

static void test_files_in_both_forms(void **state) {
  (void)state;
  char dir[] = "/tmp/cc-case-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char text[64], bin[64];
  snprintf(text, sizeof text, "%s/c.txt", dir);
  snprintf(bin, sizeof bin, "%s/c.bin", dir);
  cc_case *c = new_case(), *d = new_case();
  char why[256];
  assert_int_equal(cc_case_parse_text("crashcheck-case 1\npage-size 1024\nsector 4096\n"
                                      "cut 17 tear suffix:3 writeback random seed 9\n"
                                      "alloc-bulk 5\nwrite-sync 1 2\npalloc\npwrite 0 4\nreopen\n",
                                      c, why, sizeof why),
                   CC_OK);
  assert_int_equal(cc_case_save_text(c, text), CC_OK);
  assert_int_equal(cc_case_save_binary(c, bin), CC_OK);
  assert_int_equal(cc_case_load(text, d, why, sizeof why), CC_OK);
  assert_same(c, d);
  assert_int_equal(cc_case_load(bin, d, why, sizeof why), CC_OK);
  assert_same(c, d);
  assert_int_equal(cc_case_load("/nonexistent/case", d, why, sizeof why), CC_EIO);
  assert_non_null(strstr(why, "/nonexistent/case"));
  unlink(text);
  unlink(bin);
  rmdir(dir);
  free(c);
  free(d);
}

/* Writes a file that starts as a pager file of 2^log2-byte pages (a superblock's first 12
 * bytes, then `len` bytes of a pattern), gzipped or not. */
static void write_image(const char *path, uint32_t log2, size_t len, bool gz) {
  uint8_t *b = calloc(1, 12 + len);
  assert_non_null(b);
  memcpy(b, "MPPG", 4);
  b[8] = (uint8_t)log2;
  for (size_t i = 0; i < len; i++) b[12 + i] = (uint8_t)(i * 7);
  if (gz) {
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, b, (unsigned)(12 + len)), (int)(12 + len));
    assert_int_equal(gzclose(g), Z_OK);
  } else {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, 12 + len, f), 12 + len);
    assert_int_equal(fclose(f), 0);
  }
  free(b);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

/* image PATH: resolved against the case file's directory to an absolute path, the page
 * size taken from the file; saved relative to where the case is saved; copied out
 * decompressed. A path that does not exist, a file that is not a pager file, a page-size
 * line that disagrees, an image with an error line: refused, naming the line and why. */
static void test_image_line(void **state) {
  (void)state;
  char dir[] = "/tmp/cc-image-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char sub[64], other[64], img[96], plain[96], junk[96], cs[96], saved[96], copy[96], real[PATH_MAX];
  snprintf(sub, sizeof sub, "%s/cases", dir);
  snprintf(other, sizeof other, "%s/out", dir);
  snprintf(img, sizeof img, "%s/f.img.gz", dir);
  snprintf(plain, sizeof plain, "%s/f.img", dir);
  snprintf(junk, sizeof junk, "%s/junk", dir);
  snprintf(cs, sizeof cs, "%s/c", sub);
  snprintf(saved, sizeof saved, "%s/saved", other);
  snprintf(copy, sizeof copy, "%s/copy", dir);
  assert_int_equal(mkdir(sub, 0755), 0);
  assert_int_equal(mkdir(other, 0755), 0);
  write_image(img, 13, 100000, true);
  write_image(plain, 10, 10, false);
  write_text(junk, "not a pager file at all\n");
  cc_case *c = new_case(), *d = new_case();
  char why[700];

  write_text(cs, "crashcheck-case 1\nimage ../f.img.gz\nsector 4096\nalloc\n");
  assert_int_equal(cc_case_load(cs, c, why, sizeof why), CC_OK);
  assert_non_null(realpath(img, real));
  assert_string_equal(c->image, real);
  assert_int_equal(c->page_size, 8192); /* the image's */
  assert_int_equal(c->nops, 1);
  /* saved elsewhere: the path from there; read back, the same file */
  assert_int_equal(cc_case_save_text(c, saved), CC_OK);
  FILE *f = fopen(saved, "r");
  char text[512] = "";
  assert_non_null(f);
  text[fread(text, 1, sizeof text - 1, f)] = 0;
  fclose(f);
  assert_non_null(strstr(text, "\nimage ../f.img.gz\n"));
  assert_int_equal(cc_case_load(saved, d, why, sizeof why), CC_OK);
  assert_string_equal(d->image, c->image);
  assert_same(c, d);
  /* copied out decompressed */
  assert_int_equal(cc_case_image_copy(c, copy, why, sizeof why), CC_OK);
  struct stat st;
  assert_int_equal(stat(copy, &st), 0);
  assert_int_equal(st.st_size, 12 + 100000);
  /* a plain file too; an absolute path as it is; a page-size line that agrees */
  char t[600];
  snprintf(t, sizeof t, "crashcheck-case 1\npage-size 1024\nimage %s\n", plain);
  assert_int_equal(cc_case_parse_text(t, c, why, sizeof why), CC_OK);
  assert_int_equal(c->page_size, 1024);
  /* the binary form has none */
  uint8_t bin[64];
  cc_case_decode(bin, cc_case_encode(c, bin, sizeof bin), d);
  assert_string_equal(d->image, "");

  /* refused, naming the line and why */
  write_text(cs, "crashcheck-case 1\nsector 512\nimage ../nope.img.gz\n");
  assert_int_equal(cc_case_load(cs, c, why, sizeof why), CC_EINVAL);
  assert_non_null(strstr(why, "line 3"));
  assert_non_null(strstr(why, "nope.img.gz"));
  assert_non_null(strstr(why, "No such file or directory"));
  assert_non_null(strstr(why, "case file's directory"));
  write_text(cs, "crashcheck-case 1\nimage ../junk\n");
  assert_int_equal(cc_case_load(cs, c, why, sizeof why), CC_EINVAL);
  assert_non_null(strstr(why, "line 2"));
  assert_non_null(strstr(why, "not a mappedpages file"));
  static const char *const bad[] = {"page-size 4096\nimage ../f.img.gz\n", "image ../f.img.gz\npage-size 4096\n",
                                    "image\n", "image ../f.img.gz ../f.img.gz\n",
                                    "image ../f.img.gz\nerror 3 EIO all\n"};
  static const char *const said[] = {"holds 8192-byte pages", "holds 8192-byte pages", "line 2", "line 2",
                                     "does not go with an image"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(t, sizeof t, "crashcheck-case 1\n%s", bad[i]);
    write_text(cs, t);
    assert_int_equal(cc_case_load(cs, c, why, sizeof why), CC_EINVAL);
    assert_non_null(strstr(why, said[i]));
  }
  /* parsed without a file: relative to the working directory */
  assert_int_equal(cc_case_parse_text("crashcheck-case 1\nimage no/such/image\n", c, why, sizeof why), CC_EINVAL);
  assert_non_null(strstr(why, "working directory"));
  c->image[0] = 0;
  snprintf(c->image, sizeof c->image, "%s/gone", dir);
  assert_int_equal(cc_case_image_copy(c, copy, why, sizeof why), CC_EIO);
  assert_non_null(strstr(why, "gone"));

  unlink(img), unlink(plain), unlink(junk), unlink(cs), unlink(saved), unlink(copy);
  rmdir(sub), rmdir(other), rmdir(dir);
  free(c);
  free(d);
}

static void test_content_is_deterministic(void **state) {
  (void)state;
  uint8_t a[4096], b[4096];
  cc_fill(a, sizeof a, 7, 42);
  cc_fill(b, sizeof b, 7, 42);
  assert_memory_equal(a, b, sizeof a);
  assert_int_equal(cc_hash(a, sizeof a), cc_hash(b, sizeof b));
  cc_fill(b, sizeof b, 8, 42);
  assert_memory_not_equal(a, b, sizeof a);
  assert_int_not_equal(cc_hash(a, sizeof a), cc_hash(b, sizeof b));
  cc_fill(b, sizeof b, 7, 43);
  assert_memory_not_equal(a, b, sizeof a);
  memcpy(b, a, sizeof a);
  b[4095] ^= 1;
  assert_int_not_equal(cc_hash(a, sizeof a), cc_hash(b, sizeof b));
  assert_int_not_equal(cc_hash(a, 100), cc_hash(a, 101));
}

/* The hash compares pages: any change a pager bug could make must change it. Every single-bit
 * flip of a page, every byte set in a zero page, two 64-byte blocks swapped (equal words in
 * other places), and a page at an odd address hashes as at an aligned one. */
static void test_hash_sees_every_change(void **state) {
  (void)state;
  static uint8_t page[8192 + 1], copy[8192 + 1];
  cc_fill(page, 8192, 3, 9);
  for (size_t len = 4096; len <= 8192; len *= 2) {
    uint64_t base = cc_hash(page, len);
    for (size_t bit = 0; bit < len * 8; bit++) {
      page[bit / 8] ^= (uint8_t)(1u << (bit % 8));
      assert_int_not_equal(cc_hash(page, len), base);
      page[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t a = 0; a + 64 < len; a += 64 * 7) {
      size_t b = (a + 64 * 5) % (len - 64) / 64 * 64;
      if (a == b) continue;
      memcpy(copy, page, len);
      memcpy(copy + a, page + b, 64);
      memcpy(copy + b, page + a, 64);
      assert_int_not_equal(cc_hash(copy, len), base);
    }
    memcpy(copy + 1, page, len);
    assert_int_equal(cc_hash(copy + 1, len), base);
  }
  memset(page, 0, sizeof page);
  uint64_t zero = cc_hash(page, 4096);
  for (size_t i = 0; i < 4096; i++) {
    page[i] = 0x80;
    assert_int_not_equal(cc_hash(page, 4096), zero);
    page[i] = 0;
  }
  for (size_t len = 1; len < 300; len++) assert_int_not_equal(cc_hash(page, len), cc_hash(page, len - 1));
}

/* cc_hash is XXH3 (64 bits): its published value for the empty input, and the same value
 * from the AVX2 copy and the SSE2 one at every length around their block sizes. */
uint64_t cc__hash_avx2(const void *buf, size_t len);
static void test_content_hash(void **state) {
  (void)state;
  assert_true(cc_hash("", 0) == 0x2D06800538D394C2ull);
  static uint8_t buf[4200];
  cc_fill(buf, sizeof buf, 7, 1);
  uint64_t last = 0;
  for (size_t len = 0; len <= sizeof buf; len += len < 300 ? 1 : 97) {
    uint64_t h = cc_hash(buf, len);
    assert_true(h == cc__hash_avx2(buf, len));
    assert_true(h != last); /* a byte more is another hash */
    last = h;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_byte_string_decodes),
      cmocka_unit_test(test_header_flags),
      cmocka_unit_test(test_hash_sees_every_change),
      cmocka_unit_test(test_text_round_trip),
      cmocka_unit_test(test_bad_text_names_the_line),
      cmocka_unit_test(test_files_in_both_forms),
      cmocka_unit_test(test_image_line),
      cmocka_unit_test(test_error_line),
      cmocka_unit_test(test_explore_from_line),
      cmocka_unit_test(test_content_is_deterministic),
      cmocka_unit_test(test_content_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
