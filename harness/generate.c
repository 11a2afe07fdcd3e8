/* generate.c: workloads made by program. `crashcheck generate --ops N --seed S` draws N
 * operations at random; `--cover` grows a case a batch of operations at a time, keeping a batch
 * only when exploring it reaches a crash-coverage cell the case did not: the case ends up
 * short, and each of its operations there for a reason. */
#include "generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How often each kind is drawn (alloc, free, alloc-bulk, free-bulk, write, write-sync, sync,
 * palloc, pfree, pwrite, pabort, reopen): data and protected writes most, reopen least. */
static const uint8_t weights[CC_OP_KINDS] = {14, 8, 4, 3, 8, 10, 3, 8, 5, 12, 3, 2};

static uint64_t next(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

static cc_op draw(uint64_t *x) {
  unsigned total = 0;
  for (int k = 0; k < CC_OP_KINDS; k++) total += weights[k];
  uint64_t v = next(x);
  unsigned pick = (unsigned)(v % total), k = 0;
  while (pick >= weights[k]) pick -= weights[k++];
  return (cc_op){.kind = (uint8_t)k, .a = (uint8_t)(v >> 20), .b = (uint8_t)(v >> 40)};
}

void cc_generate(cc_case *c, unsigned long nops, unsigned long seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  cc_case_default(c);
  for (unsigned long i = 0; i < nops && i < CC_MAX_OPS; i++) c->ops[c->nops++] = draw(&x);
}

/* A batch: a few operations of any kind; or (one in four) a run of 8 to 64 of one kind, which
 * is how a case reaches what takes many of them (a bitmap word's edge, a full directory
 * block, a doubling); or (one in eight) unsynced writes then an mp_sync, the only way data
 * reaches the disk through `sync`. */
static size_t batch(uint64_t *x, cc_op *out, size_t room) {
  size_t n;
  uint64_t shape = next(x) % 8;
  if (shape == 0) {
    n = 2 + next(x) % 4;
    if (n > room) n = room;
    for (size_t i = 0; i < n; i++) {
      uint64_t v = next(x);
      out[i] = (cc_op){.kind = i + 1 == n ? CC_SYNC : CC_WRITE, .a = (uint8_t)v, .b = (uint8_t)(v >> 8)};
    }
  } else if (shape <= 2) {
    cc_op first = draw(x);
    n = 8 + next(x) % 57;
    if (n > room) n = room;
    for (size_t i = 0; i < n; i++) {
      uint64_t v = next(x);
      out[i] = (cc_op){.kind = first.kind, .a = (uint8_t)v, .b = (uint8_t)(v >> 8)};
    }
  } else {
    n = 1 + next(x) % 6;
    if (n > room) n = room;
    for (size_t i = 0; i < n; i++) out[i] = draw(x);
  }
  return n;
}

/* Required cells of the format's rows that `got` covers and `have` does not. */
static size_t gained(const cc_cover_cells have, const cc_cover_cells got, int format, uint32_t ps, uint32_t sector) {
  size_t n = 0;
  int from, to;
  cc_coverage_rows(format, &from, &to);
  for (int o = from; o < to; o++)
    for (int w = 0; w < CC_WHAT_KINDS; w++)
      for (int x = 0; x < CC_WHERE_KINDS; x++)
        n += got[o][w][x] && !have[o][w][x] && cc_cell_status(o, w, x, ps, sector) == CC_CELL_REQUIRED;
  return n;
}

/* Over the rows of the case's format: a 0.2 case covers none of 0.3's, nor the other way. */
static void count(const cc_grow_opts *o, const cc_case *c, cc_grow_result *r) {
  r->covered = r->required = 0;
  for (unsigned i = 0; i < o->nconfigs; i++) {
    size_t req;
    r->covered += cc_coverage_count_format(r->cells[i], c->format3 ? 3 : 2, o->sizes[i], o->sectors[i], &req, NULL);
    r->required += req;
  }
}

/* Explores `c` (from its explore_from) at every configuration into got[]; false (and r->error
 * or r->violations set) if the growth must stop. */
static bool explore_all(const cc_case *c, const cc_grow_opts *o, cc_cover_cells *got, cc_grow_result *r) {
  cc_case *at = malloc(sizeof *at);
  if (!at) {
    snprintf(r->error, sizeof r->error, "out of memory");
    return false;
  }
  bool going = true;
  for (unsigned i = 0; i < o->nconfigs && going; i++) {
    memcpy(at, c, sizeof *at);
    at->page_size = o->sizes[i];
    at->sector = o->sectors[i];
    cc_explore_result er;
    int rc = cc_explore(at, &o->explore, &er);
    if (rc != CC_OK || er.error[0]) {
      snprintf(r->error, sizeof r->error, "at %u-byte pages, %u-byte sectors: %.1100s", o->sizes[i], o->sectors[i],
               er.error[0] ? er.error : cc_strerror(rc));
      going = false;
    } else {
      memcpy(got[i], er.cover, sizeof got[i]);
      r->violations += er.violations;
      going = er.violations == 0;
    }
    cc_explore_result_free(&er);
  }
  free(at);
  return going;
}

int cc_generate_covering(cc_case *c, const cc_grow_opts *o, cc_grow_result *r) {
  memset(r, 0, sizeof *r);
  if (!o->nconfigs || o->nconfigs > CC_GROW_MAX_CONFIGS) return CC_EINVAL;
  cc_cover_cells *got = calloc(CC_GROW_MAX_CONFIGS, sizeof *got);
  cc_case *cand = malloc(sizeof *cand);
  if (!got || !cand) {
    free(got);
    free(cand);
    return CC_ENOMEM;
  }
  c->explore_from = 0;
  uint64_t x = o->seed * 0x9E3779B97F4A7C15ull + 0x51ED;
  bool going = true;
  if (c->nops) { /* what the starting case covers already */
    going = explore_all(c, o, got, r);
    for (unsigned i = 0; i < o->nconfigs; i++) cc_coverage_merge(r->cells[i], got[i]);
  }
  count(o, c, r);
  size_t max = o->max_ops < CC_MAX_OPS ? o->max_ops : CC_MAX_OPS;
  while (going && r->covered < r->required && r->tries < o->tries && c->nops < max) {
    r->tries++;
    memcpy(cand, c, sizeof *cand);
    cand->nops += batch(&x, cand->ops + c->nops, max - c->nops);
    /* Only the batch is cut: the prefix runs as before, its states and cells unchanged. */
    cand->explore_from = c->nops ? c->nops + 1 : 0;
    going = explore_all(cand, o, got, r);
    size_t more = 0;
    for (unsigned i = 0; i < o->nconfigs && going; i++) more += gained(r->cells[i], got[i], c->format3 ? 3 : 2, o->sizes[i], o->sectors[i]);
    if (more || r->violations) { /* kept (a violation is kept too: the case shows it) */
      for (unsigned i = 0; i < o->nconfigs; i++) cc_coverage_merge(r->cells[i], got[i]);
      memcpy(c, cand, sizeof *c);
      c->explore_from = 0;
      r->kept++;
      count(o, c, r);
    }
    if (o->progress)
      fprintf(stderr, "\rcrashcheck: batch %u: %zu operations, %zu of %zu required cells covered%s ", r->tries, c->nops,
              r->covered, r->required, more ? " (kept)" : "       ");
  }
  if (o->progress) fprintf(stderr, "\n");
  free(got);
  free(cand);
  return r->error[0] ? CC_EIO : CC_OK;
}
