/* merge.c: sharded exploration's reduce step.
 *
 * `explore --shard I/N` walks every step and every crash state of the trace, and checks only
 * the distinct images whose hash falls in its part (cc_takes). So every shard of one
 * exploration reports the same steps and states (what it enumerates), and the counts of what
 * it checked (distinct states, violations, leaks, R7 follow-ups ...) are its own: those add up.
 * explore --errors shards split the runs with an injected error instead, so there the crash
 * states after the errors add up as well (error_steps, the failable steps, still agree).
 * A difference in what every shard enumerates means the shards explored different things
 * (another case, page size, sector size, version of the tool): merging them would report a
 * run nobody made, so it is refused. The same holds for `run --shard`'s files, steps, states.
 *
 * Coverage cells are counted at every step a shard cuts, not per checked image, so shards
 * normally agree on them; the union is taken anyway, and covered, required, missing and
 * impossible are recomputed from the protocol's table rather than trusted from one shard.
 *
 * Follow-ups (R7) are sampled and deduplicated per process: shards do not share which
 * recovered files they followed, so their sum can exceed one unsharded process's count. */
#include "merge.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coverage.h"
#include "json.h"

/* explore --json: what every shard enumerates alike, and what adds up. */
static const char *const explore_agree[] = {"steps", "states", "error_steps"};
static const char *const explore_add[] = {
    "distinct_states", "violations",          "leaks",         "reclaimed",    "again_runs",
    "again_states",    "error_runs",          "error_contract", "error_states", "again_forced_repair",
    "again_forced_create", "again_sampled",   "again_forced_same", "again_forked", "open_states",
    "adopt_states"};
static const char *const run_agree[] = {"files", "steps", "states"};
static const char *const run_add[] = {"distinct_states", "violations"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
  const cj_value *v; /* one violation_list entry */
  uint64_t key;      /* its step (explore) or state (run); UINT64_MAX if unknown */
  size_t order;      /* where it came: shard by shard, in each shard's order */
} entry;

static int refuse(char *why, size_t whylen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return 2;
}

static int by_key(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static void write_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(out, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(out, "\\u%04x", *s);
    else fputc(*s, out);
  }
  fputc('"', out);
}

/* Writes a value as read: a violation entry passes through whole, whatever fields it has. */
static void write_value(FILE *out, const cj_value *v) {
  switch (v->kind) {
  case CJ_NULL: fputs("null", out); break;
  case CJ_BOOL: fputs(v->b ? "true" : "false", out); break;
  case CJ_NUMBER: fputs(v->str, out); break;
  case CJ_STRING: write_string(out, v->str); break;
  case CJ_ARRAY:
  case CJ_OBJECT:
    fputc(v->kind == CJ_ARRAY ? '[' : '{', out);
    for (size_t i = 0; i < v->n; i++) {
      if (i) fputs(", ", out);
      if (v->kind == CJ_OBJECT) {
        write_string(out, v->keys[i]);
        fputs(": ", out);
      }
      write_value(out, &v->items[i]);
    }
    fputc(v->kind == CJ_ARRAY ? ']' : '}', out);
    break;
  }
}

static const char *entry_text(const cj_value *e, const char *key) {
  const cj_value *v = cj_get(e, key);
  return v && v->kind == CJ_STRING ? v->str : "";
}

/* A cell's name ("operation/what/where") back to its place in the table. */
static bool find_cell(const char *name, int *op, int *what, int *where) {
  char buf[160];
  for (int o = 0; o < CC_COVER_OPS; o++)
    for (int w = 0; w < CC_WHAT_KINDS; w++)
      for (int x = 0; x < CC_WHERE_KINDS; x++) {
        snprintf(buf, sizeof buf, "%s/%s/%s", cc_cover_op_name(o), cc_cover_what_name(w), cc_cover_where_name(x));
        if (!strcmp(buf, name)) {
          *op = o, *what = w, *where = x;
          return true;
        }
      }
  return false;
}

int cc_merge(const cc_merge_input *in, size_t n, bool json, FILE *out, char *why, size_t whylen) {
  if (n == 0) return refuse(why, whylen, "no shards to merge");
  cj_value **docs = calloc(n, sizeof *docs);
  unsigned char *seen = NULL; /* per shard index: given */
  entry *entries = NULL;
  size_t nentries = 0, cap = 0;
  int status = 2;
  if (!docs) return refuse(why, whylen, "out of memory");

  /* Parse each, and tell an explore output (it has coverage) from a run output (files). */
  bool explore = false;
  for (size_t i = 0; i < n; i++) {
    char perr[160];
    docs[i] = cj_parse(in[i].text, perr, sizeof perr);
    if (!docs[i]) {
      refuse(why, whylen, "%s: not JSON: %s", in[i].name, perr);
      goto done;
    }
    if (docs[i]->kind != CJ_OBJECT) {
      refuse(why, whylen, "%s: not a JSON object (explore --json or run --json prints one)", in[i].name);
      goto done;
    }
    bool is_explore = cj_get(docs[i], "coverage") != NULL, is_run = cj_get(docs[i], "files") != NULL;
    if (is_explore == is_run) {
      refuse(why, whylen, "%s: neither the --json output of crashcheck explore (no \"coverage\") nor of run (no \"files\")",
             in[i].name);
      goto done;
    }
    if (i == 0) explore = is_explore;
    else if (is_explore != explore) {
      refuse(why, whylen, "%s is the output of crashcheck %s and %s of %s: not shards of one exploration", in[0].name,
             explore ? "explore" : "run", in[i].name, explore ? "run" : "explore");
      goto done;
    }
  }
  /* Which shard each one is, when they say ("shard", "shard_count": explore and run print
   * them): every one of 0 .. N-1 exactly once, else the merge would count a part twice or
   * miss one without a word. Outputs that do not say are merged as given. */
  uint64_t shard_count = 0;
  bool say = false;
  for (size_t i = 0; i < n; i++) {
    uint64_t sh, sc;
    bool has = cj_get_u64(docs[i], "shard", &sh) && cj_get_u64(docs[i], "shard_count", &sc);
    if (i == 0) {
      say = has;
      shard_count = has ? sc : 0;
      if (has && (sc == 0 || sc > ((uint64_t)1 << 24))) {
        refuse(why, whylen, "%s: shard_count %llu is not a count of shards", in[i].name, (unsigned long long)sc);
        goto done;
      }
      if (has && !(seen = calloc((size_t)sc, 1))) {
        refuse(why, whylen, "out of memory");
        goto done;
      }
    } else if (has != say) {
      refuse(why, whylen, "%s says which shard it is and %s does not: outputs of different versions of crashcheck",
             say ? in[0].name : in[i].name, say ? in[i].name : in[0].name);
      goto done;
    }
    if (!has) continue;
    if (sc != shard_count) {
      refuse(why, whylen, "%s and %s disagree on shard_count (%llu against %llu): shards of one exploration are parts "
             "of one split", in[0].name, in[i].name, (unsigned long long)shard_count, (unsigned long long)sc);
      goto done;
    }
    if (sh >= sc || seen[sh]) {
      refuse(why, whylen, sh >= sc ? "%s: shard %llu of %llu does not exist" : "%s: shard %llu of %llu is given twice",
             in[i].name, (unsigned long long)sh, (unsigned long long)sc);
      goto done;
    }
    seen[sh] = 1;
  }
  const char *const *agree = explore ? explore_agree : run_agree;
  const char *const *add = explore ? explore_add : run_add;
  size_t nagree = explore ? COUNT(explore_agree) : COUNT(run_agree), nadd = explore ? COUNT(explore_add) : COUNT(run_add);
  uint64_t agreed[COUNT(explore_agree) > COUNT(run_agree) ? COUNT(explore_agree) : COUNT(run_agree)];
  uint64_t sums[COUNT(explore_add)] = {0}, first_violation = 0, page_size = 0, sector = 0, required = 0;
  double cpu = 0, wall = 0;
  cc_cover_cells cells;
  memset(cells, 0, sizeof cells);

  /* explore --errors shards split the error runs, not the images: each walks the states
   * after its own runs' errors, so there the states add up too. */
  uint64_t error_steps = 0, states_sum = 0;
  bool errors = explore && cj_get_u64(docs[0], "error_steps", &error_steps) && error_steps > 0;
  for (size_t i = 0; i < n; i++) {
    const cj_value *d = docs[i];
    for (size_t k = 0; k < nagree; k++) {
      uint64_t v;
      if (!cj_get_u64(d, agree[k], &v)) {
        refuse(why, whylen, "%s: no count \"%s\"", in[i].name, agree[k]);
        goto done;
      }
      if (errors && !strcmp(agree[k], "states")) {
        states_sum += v;
        agreed[k] = states_sum;
      } else if (i == 0) agreed[k] = v;
      else if (v != agreed[k]) {
        refuse(why, whylen, "%s and %s disagree on %s (%llu against %llu): shards of one exploration enumerate the same",
               in[0].name, in[i].name, agree[k], (unsigned long long)agreed[k], (unsigned long long)v);
        goto done;
      }
    }
    for (size_t k = 0; k < nadd; k++) {
      uint64_t v;
      if (!cj_get_u64(d, add[k], &v)) {
        refuse(why, whylen, "%s: no count \"%s\"", in[i].name, add[k]);
        goto done;
      }
      sums[k] += v;
    }
    const cj_value *secs = cj_get(d, "seconds");
    if (!secs || secs->kind != CJ_NUMBER) {
      refuse(why, whylen, "%s: no \"seconds\"", in[i].name);
      goto done;
    }
    cpu += secs->num;
    if (secs->num > wall) wall = secs->num;
    if (explore) {
      uint64_t fv;
      if (!cj_get_u64(d, "first_violation_state", &fv)) {
        refuse(why, whylen, "%s: no count \"first_violation_state\"", in[i].name);
        goto done;
      }
      if (fv && (!first_violation || fv < first_violation)) first_violation = fv;
      const cj_value *cov = cj_get(d, "coverage");
      static const char *const cov_agree[] = {"page_size", "sector", "required"};
      uint64_t *cov_to[] = {&page_size, &sector, &required};
      for (size_t k = 0; k < COUNT(cov_agree); k++) {
        uint64_t v;
        if (!cj_get_u64(cov, cov_agree[k], &v)) {
          refuse(why, whylen, "%s: no count \"coverage.%s\"", in[i].name, cov_agree[k]);
          goto done;
        }
        if (i == 0) *cov_to[k] = v;
        else if (v != *cov_to[k]) {
          refuse(why, whylen, "%s and %s disagree on coverage.%s (%llu against %llu): shards of one exploration "
                 "enumerate the same", in[0].name, in[i].name, cov_agree[k], (unsigned long long)*cov_to[k],
                 (unsigned long long)v);
          goto done;
        }
      }
      const cj_value *list = cj_get(cov, "cells");
      if (!list || list->kind != CJ_ARRAY) {
        refuse(why, whylen, "%s: no list \"coverage.cells\"", in[i].name);
        goto done;
      }
      for (size_t k = 0; k < list->n; k++) {
        int o, w, x;
        if (list->items[k].kind != CJ_STRING || !find_cell(list->items[k].str, &o, &w, &x)) {
          refuse(why, whylen, "%s: coverage cell %zu is not one this crashcheck knows", in[i].name, k + 1);
          goto done;
        }
        cells[o][w][x] = 1;
      }
    }
    const cj_value *list = cj_get(d, "violation_list");
    if (!list || list->kind != CJ_ARRAY) {
      refuse(why, whylen, "%s: no list \"violation_list\"", in[i].name);
      goto done;
    }
    for (size_t k = 0; k < list->n; k++) {
      if (nentries == cap) {
        entry *ne = realloc(entries, (cap = cap ? cap * 2 : 16) * sizeof *ne);
        if (!ne) {
          refuse(why, whylen, "out of memory");
          goto done;
        }
        entries = ne;
      }
      uint64_t key;
      if (!cj_get_u64(&list->items[k], explore ? "step" : "state", &key)) key = UINT64_MAX;
      entries[nentries] = (entry){.v = &list->items[k], .key = key, .order = nentries};
      nentries++;
    }
  }
  /* (Checked after the counts: a shard of another exploration is told as such first.) */
  for (uint64_t k = 0; say && k < shard_count; k++)
    if (!seen[k]) {
      refuse(why, whylen, "shard %llu of %llu is missing: its --json output must be merged too", (unsigned long long)k,
             (unsigned long long)shard_count);
      goto done;
    }
  if (entries) qsort(entries, nentries, sizeof *entries, by_key);
  if (explore) {
    size_t req;
    cc_coverage_count(cells, (uint32_t)page_size, (uint32_t)sector, &req, NULL);
    if (req != required) {
      refuse(why, whylen, "%s requires %llu coverage cells at %llu-byte pages, %llu-byte sectors, and this crashcheck "
             "%zu: another version of it wrote the shards", in[0].name, (unsigned long long)required,
             (unsigned long long)page_size, (unsigned long long)sector, req);
      goto done;
    }
  }
  uint64_t violations = sums[1]; /* "violations" is second in both lists */
  status = violations ? 1 : 0;

  if (json) {
    fputc('{', out);
    if (!explore) fprintf(out, "\"files\": %llu, ", (unsigned long long)agreed[0]);
    fprintf(out, "\"steps\": %llu, \"states\": %llu", (unsigned long long)agreed[explore ? 0 : 1],
            (unsigned long long)agreed[explore ? 1 : 2]);
    /* explore's order of fields, so that one diff shows what a merge changed */
    for (size_t k = 0; k < nadd; k++) {
      fprintf(out, ", \"%s\": %llu", add[k], (unsigned long long)sums[k]);
      if (explore && !strcmp(add[k], "reclaimed"))
        fprintf(out, ", \"first_violation_state\": %llu", (unsigned long long)first_violation);
      if (explore && !strcmp(add[k], "again_states"))
        fprintf(out, ", \"error_steps\": %llu", (unsigned long long)agreed[2]);
    }
    fprintf(out, ", \"shards\": %zu, \"seconds\": %.3f, \"wall_seconds\": %.3f", n, cpu, wall);
    if (explore) /* per second of checking summed over the shards; checked: distinct and follow-up states (the
                  * distinct states after I/O errors are not in the shards' JSON) */
      fprintf(out, ", \"states_per_sec\": %.1f, \"checked_per_sec\": %.1f", cpu > 0 ? (double)sums[0] / cpu : 0.0,
              cpu > 0 ? (double)(sums[0] + sums[5]) / cpu : 0.0);
    fputs(", \"violation_list\": [", out);
    for (size_t k = 0; k < nentries; k++) {
      if (k) fputs(", ", out);
      write_value(out, entries[k].v);
    }
    fputc(']', out);
    if (explore) {
      fputs(", \"coverage\": ", out);
      cc_coverage_print_json(out, cells, (uint32_t)page_size, (uint32_t)sector);
    }
    fputs("}\n", out);
  } else {
    for (size_t k = 0; k < nentries; k++) {
      const cj_value *e = entries[k].v;
      if (explore)
        fprintf(out, "violation %s at step %s (%s), tear %s, writeback %s: expected %s, found %s\n  reproducer %s\n",
                entry_text(e, "invariant"), entries[k].key == UINT64_MAX ? "?" : cj_get(e, "step")->str,
                entry_text(e, "call"), entry_text(e, "tear"), entry_text(e, "writeback"), entry_text(e, "expected"),
                entry_text(e, "found"), entry_text(e, "reproducer"));
      else
        fprintf(out, "violation: power cut at step %s (%s), %s\n  check said: %.300s\n  kept in %s\n",
                cj_get(e, "step") && cj_get(e, "step")->kind == CJ_NUMBER ? cj_get(e, "step")->str : "?",
                entry_text(e, "call"), entry_text(e, "crash"), entry_text(e, "output"), entry_text(e, "kept"));
    }
    if (explore) {
      size_t req, stray, covered = cc_coverage_count(cells, (uint32_t)page_size, (uint32_t)sector, &req, &stray);
      fprintf(out, "merged %zu shards of one exploration at %llu-byte pages, %llu-byte sectors\n", n,
              (unsigned long long)page_size, (unsigned long long)sector);
      fprintf(out, "  steps            %llu\n  crash states     %llu\n  distinct images  %llu checked\n"
              "  violations       %llu\n  leaked pages     %llu\n  reclaimed pages  %llu\n"
              "  R7 follow-ups    %llu crash images recovered and worked on, %llu crash states of the follow-ups checked\n"
              "  coverage         %zu of %zu required cells%s\n",
              (unsigned long long)agreed[0], (unsigned long long)agreed[1], (unsigned long long)sums[0],
              (unsigned long long)sums[1], (unsigned long long)sums[2], (unsigned long long)sums[3],
              (unsigned long long)sums[4], (unsigned long long)sums[5], covered, req,
              stray ? " (and some the table says cannot be covered)" : "");
      if (agreed[2])
        fprintf(out, "  I/O errors       %llu failable steps, %llu runs with an error injected, %llu broke the error "
                "contract (E1), %llu crash states after errors\n", (unsigned long long)agreed[2],
                (unsigned long long)sums[6], (unsigned long long)sums[7], (unsigned long long)sums[8]);
    } else {
      fprintf(out, "merged %zu shards of one run: %llu tracked files, %llu steps\n", n, (unsigned long long)agreed[0],
              (unsigned long long)agreed[1]);
      fprintf(out, "  crash states     %llu\n  distinct states  %llu checked\n  violations       %llu\n",
              (unsigned long long)agreed[2], (unsigned long long)sums[0], (unsigned long long)sums[1]);
    }
    fprintf(out, "  time             %.2f s of checking in all, %.2f s the longest shard\n", cpu, wall);
  }

done:
  for (size_t i = 0; i < n; i++) cj_free(docs[i]);
  free(docs);
  free(entries);
  free(seen);
  return status;
}
