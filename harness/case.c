/* case.c: the case codec: binary (every byte string is a case) and text (written and
 * read by people), loading and saving, and the deterministic page content of writes. */
#include "case.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static const char *const op_names[CC_OP_KINDS] = {
    "alloc", "free", "alloc-bulk", "free-bulk", "write", "write-sync", "sync",
    "palloc", "pfree", "pwrite", "pabort", "reopen",
};
/* How many arguments each operation's text form takes. */
static const int op_args[CC_OP_KINDS] = {0, 1, 1, 2, 2, 2, 0, 0, 1, 2, 2, 0};
static const char *const tear_names[CC_TEAR_KINDS] = {"none", "all", "prefix", "suffix", "random", "garbage"};
static const char *const wb_names[CC_WB_KINDS] = {"none", "all", "random"};
/* Indexed by header byte 0 modulo 8. The first four are the original table, so every case
 * encoded before 16 KiB pages existed (byte 0 in 0..3) decodes as it did. */
static const uint32_t page_sizes[8] = {4096, 1024, 2048, 8192, 4096, 1024, 2048, 16384};

const char *cc_strerror(int code) {
  switch (code) {
    case CC_OK: return "success";
    case CC_EINVAL: return "invalid argument or case text";
    case CC_ENOMEM: return "out of memory";
    case CC_EIO: return "reading or writing a file failed";
    case CC_ESETUP: return "the environment is missing something crashcheck needs";
    default: return "unknown error code";
  }
}

const char *cc_op_name(int kind) { return kind >= 0 && kind < CC_OP_KINDS ? op_names[kind] : "?"; }
const char *cc_tear_name(int tear) { return tear >= 0 && tear < CC_TEAR_KINDS ? tear_names[tear] : "?"; }
const char *cc_writeback_name(int wb) { return wb >= 0 && wb < CC_WB_KINDS ? wb_names[wb] : "?"; }

void cc_case_default(cc_case *c) {
  c->page_size = 4096;
  c->sector = 512;
  memset(&c->sched, 0, sizeof c->sched);
  memset(&c->again, 0, sizeof c->again);
  memset(&c->error, 0, sizeof c->error);
  c->explore_from = 0;
  c->image[0] = 0;
  c->sparse = false;
  c->format3 = c->upgrade = false;
  c->nops = 0;
}

const char *cc_errno_name(int err, char *buf, size_t len) {
  if (err == EIO) return "EIO";
  if (err == ENOSPC) return "ENOSPC";
  snprintf(buf, len, "%d", err);
  return buf;
}

int cc_errno_parse(const char *s) {
  if (!strcmp(s, "EIO")) return EIO;
  if (!strcmp(s, "ENOSPC")) return ENOSPC;
  char *end;
  long v = strtol(s, &end, 10);
  return *s && !*end && v > 0 && v < 4096 ? (int)v : -1;
}

void cc_error_spec(const cc_case *c, char *buf, size_t len) {
  char tear[32], num[16];
  cc_schedule_tear_text(&c->error.tear, tear, sizeof tear);
  if (c->error.tear.tear == CC_TEAR_RANDOM) snprintf(tear, sizeof tear, "random:%u", c->error.tear.seed);
  snprintf(buf, len, "%u:%s:%s", c->error.step, cc_errno_name(c->error.err, num, sizeof num), tear);
}

void cc_follow_up(cc_case *out, uint32_t page_size, uint32_t sector) {
  static const cc_op ops[] = {
      {CC_ALLOC, 0, 0},      {CC_WRITE_SYNC, 0, 1}, {CC_PALLOC, 0, 0},    {CC_PWRITE, 0, 2},
      {CC_ALLOC_BULK, 2, 0}, {CC_FREE_BULK, 1, 1},  {CC_PFREE, 0, 0},     {CC_FREE, 0, 0},
  };
  cc_case_default(out);
  out->page_size = page_size;
  out->sector = sector;
  out->nops = sizeof ops / sizeof *ops;
  memcpy(out->ops, ops, sizeof ops);
}

void cc_case_decode(const uint8_t *data, size_t len, cc_case *out) {
  uint8_t h[CC_HEADER_SIZE] = {0};
  if (len) memcpy(h, data, len < CC_HEADER_SIZE ? len : CC_HEADER_SIZE);
  out->page_size = page_sizes[h[0] % 8];
  out->sector = (h[1] & CC_HDR_SECTOR_4K) ? 4096 : 512;
  out->sched.cut_step = (uint32_t)h[2] | (uint32_t)h[3] << 8;
  out->sched.tear = h[4] % CC_TEAR_KINDS;
  out->sched.tear_n = h[5];
  out->sched.writeback = h[6] % CC_WB_KINDS;
  out->sched.seed = h[7];
  memset(&out->again, 0, sizeof out->again);
  memset(&out->error, 0, sizeof out->error);
  out->explore_from = 0;
  out->sparse = (h[1] & CC_HDR_SPARSE) != 0;
  out->format3 = (h[1] & CC_HDR_FORMAT3) != 0;
  out->upgrade = (h[1] & CC_HDR_UPGRADE) != 0;
  out->image[0] = 0;
  out->nops = 0;
  for (size_t at = CC_HEADER_SIZE; at + 3 <= len && out->nops < CC_MAX_OPS; at += 3) {
    cc_op *op = &out->ops[out->nops++];
    op->kind = data[at] % CC_OP_KINDS;
    op->a = data[at + 1];
    op->b = data[at + 2];
  }
}

size_t cc_case_encode(const cc_case *c, uint8_t *out, size_t cap) {
  size_t need = CC_HEADER_SIZE + 3 * c->nops;
  if (cap < need) return need;
  uint8_t ps = 0;
  for (uint8_t i = 8; i-- > 0;) /* the first index that holds it */
    if (page_sizes[i] == c->page_size) ps = i;
  out[0] = ps;
  out[1] = (uint8_t)((c->sector == 4096 ? CC_HDR_SECTOR_4K : 0) | (c->format3 ? CC_HDR_FORMAT3 : 0) |
                     (c->sparse ? CC_HDR_SPARSE : 0) | (c->upgrade ? CC_HDR_UPGRADE : 0));
  out[2] = (uint8_t)c->sched.cut_step;
  out[3] = (uint8_t)(c->sched.cut_step >> 8);
  out[4] = c->sched.tear;
  out[5] = c->sched.tear_n;
  out[6] = c->sched.writeback;
  out[7] = c->sched.seed;
  for (size_t i = 0; i < c->nops; i++) {
    out[CC_HEADER_SIZE + 3 * i] = c->ops[i].kind;
    out[CC_HEADER_SIZE + 3 * i + 1] = c->ops[i].a;
    out[CC_HEADER_SIZE + 3 * i + 2] = c->ops[i].b;
  }
  return need;
}

void cc_schedule_tear_text(const cc_schedule *s, char *buf, size_t len) {
  switch (s->tear) {
    case CC_TEAR_PREFIX:
    case CC_TEAR_SUFFIX:
    case CC_TEAR_GARBAGE:
      snprintf(buf, len, "%s:%u", cc_tear_name(s->tear), s->tear_n);
      break;
    default:
      snprintf(buf, len, "%s", cc_tear_name(s->tear));
  }
}

static void print_schedule(FILE *f, const char *key, const cc_schedule *s) {
  char tear[32];
  cc_schedule_tear_text(s, tear, sizeof tear);
  fprintf(f, "%s %u tear %s writeback %s seed %u\n", key, s->cut_step, tear, cc_writeback_name(s->writeback), s->seed);
}

static void print_text(const cc_case *c, const char *image, FILE *f) {
  fprintf(f, "crashcheck-case 1\npage-size %u\nsector %u\n", c->page_size, c->sector);
  if (c->image[0]) fprintf(f, "image %s\n", image);
  if (c->sched.cut_step) print_schedule(f, "cut", &c->sched);
  else fprintf(f, "cut none\n");
  if (c->sched.cut_step && c->again.cut_step) print_schedule(f, "again", &c->again);
  if (c->error.step) {
    char tear[32], num[16];
    cc_schedule_tear_text(&c->error.tear, tear, sizeof tear);
    if (c->error.tear.tear == CC_TEAR_RANDOM) snprintf(tear, sizeof tear, "random:%u", c->error.tear.seed);
    fprintf(f, "error %u %s %s\n", c->error.step, cc_errno_name(c->error.err, num, sizeof num), tear);
  }
  if (c->explore_from) fprintf(f, "explore-from %zu\n", c->explore_from);
  if (c->sparse) fprintf(f, "sparse\n");
  if (c->format3) fprintf(f, "format 3\n");
  if (c->upgrade) fprintf(f, "upgrade\n");
  for (size_t i = 0; i < c->nops; i++) {
    const cc_op *op = &c->ops[i];
    fprintf(f, "%s", cc_op_name(op->kind));
    if (op_args[op->kind] >= 1) fprintf(f, " %u", op->a);
    if (op_args[op->kind] >= 2) fprintf(f, " %u", op->b);
    fputc('\n', f);
  }
}

void cc_case_print_text(const cc_case *c, FILE *f) { print_text(c, c->image, f); }

/* ---- text parsing ----------------------------------------------------------- */

static int parse_u(const char *s, unsigned long max, unsigned long *out) {
  if (!s || !isdigit((unsigned char)*s)) return -1;
  errno = 0;
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || v > max) return -1;
  *out = v;
  return 0;
}

static int find_name(const char *const *names, int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], s) == 0) return i;
  return -1;
}

/* "prefix:2" -> tear kind and n. */
static int parse_tear(const char *s, cc_schedule *sched) {
  char kind[16];
  const char *colon = strchr(s, ':');
  size_t klen = colon ? (size_t)(colon - s) : strlen(s);
  if (klen >= sizeof kind) return -1;
  memcpy(kind, s, klen);
  kind[klen] = 0;
  int t = find_name(tear_names, CC_TEAR_KINDS, kind);
  if (t < 0) return -1;
  sched->tear = (uint8_t)t;
  sched->tear_n = 0;
  bool needs_n = t == CC_TEAR_PREFIX || t == CC_TEAR_SUFFIX || t == CC_TEAR_GARBAGE;
  if (needs_n != (colon != NULL)) return -1;
  unsigned long n;
  if (colon) {
    if (parse_u(colon + 1, 255, &n)) return -1;
    sched->tear_n = (uint8_t)n;
  }
  return 0;
}

/* What parsing keeps from line to line. */
typedef struct parse_ctx {
  const char *base;   /* the directory a relative image path starts from (NULL: the working one) */
  bool have_magic;
  bool page_size_line; /* a page-size line was read */
  char detail[600];    /* why the line is wrong, when "cannot read" does not say it */
} parse_ctx;

/* The page size of a pager file (gzipped or not) from its superblock: 0 with `why` if it
 * is not one. */
static uint32_t image_page_size(const char *path, char *why, size_t whylen) {
  gzFile g = gzopen(path, "rb");
  if (!g) {
    snprintf(why, whylen, "%s", strerror(errno ? errno : ENOMEM));
    return 0;
  }
  uint8_t sb[12];
  int n = gzread(g, sb, sizeof sb);
  gzclose(g);
  if (n != (int)sizeof sb || memcmp(sb, "MPPG", 4) != 0) {
    snprintf(why, whylen, "not a mappedpages file (no MPPG superblock%s)", n < 0 ? ", or a damaged gzip stream" : "");
    return 0;
  }
  uint32_t log2 = (uint32_t)sb[8] | (uint32_t)sb[9] << 8 | (uint32_t)sb[10] << 16 | (uint32_t)sb[11] << 24;
  if (log2 < 10 || log2 > 14) {
    snprintf(why, whylen, "its page size (2^%u bytes) is not one crashcheck explores (1024 to 16384)", log2);
    return 0;
  }
  return UINT32_C(1) << log2;
}

/* image PATH: resolved against ctx->base, to an absolute path that exists. */
static int parse_image(const char *arg, cc_case *c, parse_ctx *ctx) {
  char joined[PATH_MAX], real[PATH_MAX], why[300];
  if (arg[0] == '/' || !ctx->base) snprintf(joined, sizeof joined, "%s", arg);
  else snprintf(joined, sizeof joined, "%s/%s", ctx->base, arg);
  if (!realpath(joined, real)) {
    snprintf(ctx->detail, sizeof ctx->detail, "image %.400s: %s (a relative path starts from the %s)", joined,
             strerror(errno), ctx->base ? "case file's directory" : "working directory");
    return -1;
  }
  if (strlen(real) >= sizeof c->image) {
    snprintf(ctx->detail, sizeof ctx->detail, "image %.400s...: the path is too long", real);
    return -1;
  }
  errno = 0;
  uint32_t ps = image_page_size(real, why, sizeof why);
  if (!ps) {
    snprintf(ctx->detail, sizeof ctx->detail, "image %.400s: %.150s", real, why);
    return -1;
  }
  if (ctx->page_size_line && ps != c->page_size) {
    snprintf(ctx->detail, sizeof ctx->detail, "image %.400s holds %u-byte pages, the page-size line says %u", real, ps,
             c->page_size);
    return -1;
  }
  memcpy(c->image, real, strlen(real) + 1); /* (it fits: checked above) */
  c->page_size = ps;
  return 0;
}

static int parse_line(char **tok, int ntok, cc_case *c, parse_ctx *ctx) {
  unsigned long v, w;
  if (strcmp(tok[0], "crashcheck-case") == 0) {
    if (ntok != 2 || strcmp(tok[1], "1") != 0) return -1;
    ctx->have_magic = true;
    return 0;
  }
  if (!ctx->have_magic) return -1;
  if (strcmp(tok[0], "page-size") == 0) {
    if (ntok != 2 || parse_u(tok[1], 16384, &v) || (v != 1024 && v != 2048 && v != 4096 && v != 8192 && v != 16384)) return -1;
    if (c->image[0] && v != c->page_size) {
      snprintf(ctx->detail, sizeof ctx->detail, "page-size %lu, but the image %.400s holds %u-byte pages", v, c->image,
               c->page_size);
      return -1;
    }
    c->page_size = (uint32_t)v;
    ctx->page_size_line = true;
    return 0;
  }
  if (strcmp(tok[0], "image") == 0) {
    if (ntok != 2) return -1;
    return parse_image(tok[1], c, ctx);
  }
  if (strcmp(tok[0], "sector") == 0) {
    if (ntok != 2 || parse_u(tok[1], 4096, &v) || (v != 512 && v != 4096)) return -1;
    c->sector = (uint32_t)v;
    return 0;
  }
  if (strcmp(tok[0], "cut") == 0 || strcmp(tok[0], "again") == 0) {
    cc_schedule *sched = tok[0][0] == 'c' ? &c->sched : &c->again;
    memset(sched, 0, sizeof *sched);
    if (ntok == 2 && strcmp(tok[1], "none") == 0) return 0;
    if (ntok != 8 || parse_u(tok[1], 65535, &v) || v == 0 || strcmp(tok[2], "tear") || parse_tear(tok[3], sched) ||
        strcmp(tok[4], "writeback") || strcmp(tok[6], "seed") || parse_u(tok[7], 255, &w))
      return -1;
    int wb = find_name(wb_names, CC_WB_KINDS, tok[5]);
    if (wb < 0) return -1;
    sched->cut_step = (uint32_t)v;
    sched->writeback = (uint8_t)wb;
    sched->seed = (uint8_t)w;
    return 0;
  }
  if (strcmp(tok[0], "sparse") == 0) {
    if (ntok != 1) return -1;
    c->sparse = true;
    return 0;
  }
  if (strcmp(tok[0], "format") == 0) { /* format 3: the file is created in the 0.3 format */
    if (ntok != 2 || strcmp(tok[1], "3")) return -1;
    c->format3 = true;
    return 0;
  }
  if (strcmp(tok[0], "upgrade") == 0) {
    if (ntok != 1) return -1;
    c->upgrade = true;
    return 0;
  }
  if (strcmp(tok[0], "explore-from") == 0) { /* explore-from OPERATION (1-based) */
    if (ntok != 2 || parse_u(tok[1], CC_MAX_OPS, &v) || v == 0) return -1;
    c->explore_from = (size_t)v;
    return 0;
  }
  if (strcmp(tok[0], "error") == 0) { /* error STEP ERRNO TEAR */
    memset(&c->error, 0, sizeof c->error);
    int err = ntok == 4 ? cc_errno_parse(tok[2]) : -1;
    if (err < 0 || parse_u(tok[1], 65535, &v) || v == 0) return -1;
    if (!strncmp(tok[3], "random:", 7)) {
      if (parse_u(tok[3] + 7, 255, &w)) return -1;
      c->error.tear.tear = CC_TEAR_RANDOM;
      c->error.tear.seed = (uint8_t)w;
    } else if (parse_tear(tok[3], &c->error.tear) || c->error.tear.tear == CC_TEAR_GARBAGE) {
      return -1;
    }
    c->error.step = (uint32_t)v;
    c->error.err = err;
    return 0;
  }
  int kind = find_name(op_names, CC_OP_KINDS, tok[0]);
  if (kind < 0 || ntok != 1 + op_args[kind] || c->nops >= CC_MAX_OPS) return -1;
  cc_op op = {.kind = (uint8_t)kind};
  if (op_args[kind] >= 1) {
    if (parse_u(tok[1], 255, &v)) return -1;
    op.a = (uint8_t)v;
  }
  if (op_args[kind] >= 2) {
    if (parse_u(tok[2], 255, &v)) return -1;
    op.b = (uint8_t)v;
  }
  c->ops[c->nops++] = op;
  return 0;
}

static int parse_text(const char *text, const char *base, cc_case *out, char *why, size_t whylen) {
  cc_case_default(out);
  parse_ctx ctx = {.base = base};
  unsigned lineno = 0;
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    lineno++;
    char buf[256];
    if (len >= sizeof buf) {
      if (why) snprintf(why, whylen, "line %u is too long", lineno);
      return CC_EINVAL;
    }
    memcpy(buf, line, len);
    buf[len] = 0;
    char *hash = strchr(buf, '#');
    if (hash) *hash = 0;
    char *tok[10];
    int ntok = 0;
    for (char *t = strtok(buf, " \t\r"); t && ntok < 10; t = strtok(NULL, " \t\r")) tok[ntok++] = t;
    if (ntok > 0 && parse_line(tok, ntok, out, &ctx) != 0) {
      if (why && ctx.detail[0]) snprintf(why, whylen, "line %u: %s", lineno, ctx.detail);
      else if (why) snprintf(why, whylen, "line %u: cannot read \"%.*s\"", lineno, (int)(len > 80 ? 80 : len), line);
      return CC_EINVAL;
    }
    line += len + (nl ? 1 : 0);
  }
  if (!ctx.have_magic) {
    if (why) snprintf(why, whylen, "missing the first line \"crashcheck-case 1\"");
    return CC_EINVAL;
  }
  if (out->explore_from > out->nops) {
    if (why) snprintf(why, whylen, "explore-from %zu names no operation (the case has %zu)", out->explore_from, out->nops);
    return CC_EINVAL;
  }
  /* explore --errors records its runs from a new file (errors.c): an error line's steps
   * would count from another start. */
  if (out->image[0] && out->error.step) {
    if (why) snprintf(why, whylen, "an error line (explore --errors) does not go with an image line");
    return CC_EINVAL;
  }
  return CC_OK;
}

int cc_case_parse_text(const char *text, cc_case *out, char *why, size_t whylen) {
  return parse_text(text, NULL, out, why, whylen);
}

/* ---- files ------------------------------------------------------------------- */

int cc_case_load(const char *path, cc_case *out, char *why, size_t whylen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (why) snprintf(why, whylen, "%s: %s", path, strerror(errno));
    return CC_EIO;
  }
  size_t cap = CC_HEADER_SIZE + 3 * CC_MAX_OPS + 1, len;
  uint8_t *buf = malloc(cap + 1);
  if (!buf) {
    fclose(f);
    return CC_ENOMEM;
  }
  len = fread(buf, 1, cap, f);
  fclose(f);
  buf[len] = 0;
  int rc = CC_OK;
  /* Text if the first line that is not blank or a comment is the magic line. */
  static const char magic[] = "crashcheck-case";
  size_t at = 0;
  while (at < len) {
    while (at < len && (buf[at] == ' ' || buf[at] == '\t' || buf[at] == '\r' || buf[at] == '\n')) at++;
    if (at >= len || buf[at] != '#') break;
    while (at < len && buf[at] != '\n') at++;
  }
  if (len - at >= sizeof magic - 1 && memcmp(buf + at, magic, sizeof magic - 1) == 0) {
    if (memchr(buf, 0, len)) {
      if (why) snprintf(why, whylen, "%s: text case holds a NUL byte", path);
      rc = CC_EINVAL;
    } else {
      /* a relative image path starts from the case file's directory */
      char dir[PATH_MAX];
      snprintf(dir, sizeof dir, "%s", path);
      char *slash = strrchr(dir, '/');
      if (slash == dir) dir[1] = 0;
      else if (slash) *slash = 0;
      else snprintf(dir, sizeof dir, ".");
      rc = parse_text((const char *)buf, dir, out, why, whylen);
      if (rc != CC_OK && why) { /* name the file too */
        char inner[600];
        snprintf(inner, sizeof inner, "%s", why);
        snprintf(why, whylen, "%s: %s", path, inner);
      }
    }
  } else {
    cc_case_decode(buf, len, out);
  }
  free(buf);
  return rc;
}

int cc_case_save_binary(const cc_case *c, const char *path) {
  size_t need = cc_case_encode(c, NULL, 0);
  uint8_t *buf = malloc(need);
  if (!buf) return CC_ENOMEM;
  cc_case_encode(c, buf, need);
  FILE *f = fopen(path, "wb");
  int rc = f && fwrite(buf, 1, need, f) == need ? CC_OK : CC_EIO;
  if (f && fclose(f) != 0) rc = CC_EIO;
  free(buf);
  return rc;
}

/* `to` (absolute, resolved) as a path relative to the directory `from` (absolute,
 * resolved): "../" for each of from's components past their common prefix, then the
 * rest of `to`; `to` itself if they share no directory but the root. */
static void relative_to(const char *from, const char *to, char *out, size_t len) {
  size_t common = 0;
  for (size_t i = 0;; i++) { /* the longest prefix that ends at a component boundary of both */
    bool fend = from[i] == 0 || from[i] == '/', tend = to[i] == 0 || to[i] == '/';
    if (fend && tend) common = i;
    if (!from[i] || !to[i] || from[i] != to[i]) break;
  }
  if (common == 0) { /* nothing shared but the root: the absolute path says it better */
    snprintf(out, len, "%s", to);
    return;
  }
  size_t n = 0;
  out[0] = 0;
  for (const char *p = from + common; *p; p++)
    if (*p == '/' && n + 3 < len) n += (size_t)snprintf(out + n, len - n, "../");
  snprintf(out + n, len - n, "%s", to[common] == '/' ? to + common + 1 : to + common);
}

int cc_case_save_text(const cc_case *c, const char *path) {
  char image[PATH_MAX + 64];
  snprintf(image, sizeof image, "%s", c->image);
  if (c->image[0]) {
    char dir[PATH_MAX], real[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    if (realpath(dir, real)) relative_to(real, c->image, image, sizeof image);
  }
  FILE *f = fopen(path, "w");
  if (!f) return CC_EIO;
  print_text(c, image, f);
  return fclose(f) == 0 ? CC_OK : CC_EIO;
}

int cc_case_image_copy(const cc_case *c, const char *to, char *why, size_t whylen) {
  gzFile in = gzopen(c->image, "rb");
  if (!in) {
    snprintf(why, whylen, "cannot read the image %s: %s", c->image, strerror(errno ? errno : ENOMEM));
    return CC_EIO;
  }
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) {
    snprintf(why, whylen, "cannot write %s: %s", to, strerror(errno));
    gzclose(in);
    return CC_EIO;
  }
  enum { CHUNK = 1 << 16 };
  uint8_t *buf = malloc(CHUNK);
  int n = 0, rc = buf ? CC_OK : CC_ENOMEM;
  if (!buf) snprintf(why, whylen, "out of memory");
  while (rc == CC_OK && (n = gzread(in, buf, CHUNK)) > 0)
    if (write(out, buf, (size_t)n) != n) {
      snprintf(why, whylen, "cannot write %s: %s", to, strerror(errno));
      rc = CC_EIO;
    }
  if (rc == CC_OK && n < 0) {
    int e;
    snprintf(why, whylen, "cannot read the image %s: %s", c->image, gzerror(in, &e));
    rc = CC_EIO;
  }
  free(buf);
  gzclose(in);
  if (close(out) != 0 && rc == CC_OK) {
    snprintf(why, whylen, "cannot write %s: %s", to, strerror(errno));
    rc = CC_EIO;
  }
  return rc;
}

/* ---- content ------------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void cc_fill(uint8_t *buf, size_t len, uint64_t seed, uint64_t id) {
  uint64_t state = seed * 0x100000001B3ull ^ id;
  for (size_t i = 0; i < len; i += 8) {
    uint64_t v = splitmix(&state);
    size_t n = len - i < 8 ? len - i : 8;
    memcpy(buf + i, &v, n);
  }
}
