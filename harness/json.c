/* json.c: the reader json.h describes. Recursive descent over RFC 8259's grammar with a
 * depth limit (crashcheck's outputs nest three deep; a hostile file must not blow the
 * stack). A value owns its children; cj_free releases the whole tree. */
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CJ_MAX_DEPTH 64

typedef struct {
  const char *s, *p;
  char *why;
  size_t whylen;
  bool failed;
} parser;

static bool fail(parser *ps, const char *fmt, ...) {
  if (ps->failed) return false;
  ps->failed = true;
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(ps->why, ps->whylen, "%s at byte %zu", msg, (size_t)(ps->p - ps->s));
  return false;
}

static void skip_ws(parser *ps) {
  while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r') ps->p++;
}

static void free_inner(cj_value *v) {
  free(v->str);
  for (size_t i = 0; i < v->n; i++) {
    free_inner(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
}

static bool parse_value(parser *ps, cj_value *v, int depth);

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool parse_string(parser *ps, char **out) {
  ps->p++; /* the opening quote */
  size_t cap = 16, len = 0;
  char *buf = malloc(cap);
  if (!buf) return fail(ps, "out of memory");
  for (;;) {
    unsigned char c = (unsigned char)*ps->p;
    if (c == 0) {
      free(buf);
      return fail(ps, "unterminated string");
    }
    if (c < 0x20) {
      free(buf);
      return fail(ps, "control character in a string");
    }
    ps->p++;
    if (c == '"') break;
    if (c == '\\') {
      char e = *ps->p++;
      switch (e) {
      case '"': case '\\': case '/': c = (unsigned char)e; break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      case 'u': {
        int code = 0;
        for (int k = 0; k < 4; k++) {
          int h = hexval(ps->p[k]);
          if (h < 0) {
            free(buf);
            return fail(ps, "bad \\u escape");
          }
          code = code * 16 + h;
        }
        ps->p += 4;
        /* crashcheck escapes only control characters; wider ones are not its output */
        if (code > 0xff) {
          free(buf);
          return fail(ps, "\\u escape beyond one byte");
        }
        c = (unsigned char)code;
        break;
      }
      default:
        ps->p--;
        free(buf);
        return fail(ps, "bad escape");
      }
    }
    if (len + 2 > cap) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        return fail(ps, "out of memory");
      }
      buf = nb;
    }
    buf[len++] = (char)c;
  }
  buf[len] = 0;
  *out = buf;
  return true;
}

static bool parse_number(parser *ps, cj_value *v) {
  const char *start = ps->p;
  if (*ps->p == '-') ps->p++;
  if (*ps->p == '0') ps->p++;
  else if (*ps->p >= '1' && *ps->p <= '9')
    while (*ps->p >= '0' && *ps->p <= '9') ps->p++;
  else return fail(ps, "bad number");
  if (*ps->p == '.') {
    ps->p++;
    if (!(*ps->p >= '0' && *ps->p <= '9')) return fail(ps, "bad number");
    while (*ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  if (*ps->p == 'e' || *ps->p == 'E') {
    ps->p++;
    if (*ps->p == '+' || *ps->p == '-') ps->p++;
    if (!(*ps->p >= '0' && *ps->p <= '9')) return fail(ps, "bad number");
    while (*ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  size_t len = (size_t)(ps->p - start);
  v->kind = CJ_NUMBER;
  v->str = malloc(len + 1);
  if (!v->str) return fail(ps, "out of memory");
  memcpy(v->str, start, len);
  v->str[len] = 0;
  v->num = strtod(v->str, NULL);
  return true;
}

static bool push(parser *ps, cj_value *v, size_t *cap) {
  if (v->n < *cap) return true;
  size_t nc = *cap ? *cap * 2 : 8;
  cj_value *ni = realloc(v->items, nc * sizeof *ni);
  if (!ni) return fail(ps, "out of memory");
  v->items = ni;
  if (v->kind == CJ_OBJECT) {
    char **nk = realloc(v->keys, nc * sizeof *nk);
    if (!nk) return fail(ps, "out of memory");
    v->keys = nk;
  }
  *cap = nc;
  return true;
}

static bool parse_container(parser *ps, cj_value *v, int depth) {
  bool obj = *ps->p == '{';
  char close = obj ? '}' : ']';
  v->kind = obj ? CJ_OBJECT : CJ_ARRAY;
  size_t cap = 0;
  ps->p++;
  skip_ws(ps);
  if (*ps->p == close) {
    ps->p++;
    return true;
  }
  for (;;) {
    if (!push(ps, v, &cap)) return false;
    cj_value *item = &v->items[v->n];
    memset(item, 0, sizeof *item);
    if (obj) {
      skip_ws(ps);
      if (*ps->p != '"') return fail(ps, "expected a member name");
      char *key;
      if (!parse_string(ps, &key)) return false;
      for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key)) {
          free(key);
          return fail(ps, "member \"%s\" given twice", v->keys[i]);
        }
      skip_ws(ps);
      if (*ps->p != ':') {
        free(key);
        return fail(ps, "expected ':'");
      }
      ps->p++;
      v->keys[v->n] = key;
    }
    v->n++; /* counted before parsing, so that free_inner releases a half-parsed item */
    if (!parse_value(ps, item, depth + 1)) return false;
    skip_ws(ps);
    if (*ps->p == ',') {
      ps->p++;
      continue;
    }
    if (*ps->p == close) {
      ps->p++;
      return true;
    }
    return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static bool parse_value(parser *ps, cj_value *v, int depth) {
  if (depth > CJ_MAX_DEPTH) return fail(ps, "nested deeper than %d", CJ_MAX_DEPTH);
  skip_ws(ps);
  char c = *ps->p;
  if (c == '{' || c == '[') return parse_container(ps, v, depth);
  if (c == '"') {
    v->kind = CJ_STRING;
    return parse_string(ps, &v->str);
  }
  if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, v);
  static const struct { const char *word; cj_kind kind; bool b; } words[] = {
      {"true", CJ_BOOL, true}, {"false", CJ_BOOL, false}, {"null", CJ_NULL, false}};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (!strncmp(ps->p, words[i].word, strlen(words[i].word))) {
      ps->p += strlen(words[i].word);
      v->kind = words[i].kind;
      v->b = words[i].b;
      return true;
    }
  if (!c) return fail(ps, "unexpected end of text");
  return fail(ps, "unexpected character '%c'", c);
}

cj_value *cj_parse(const char *text, char *why, size_t whylen) {
  parser ps = {.s = text, .p = text, .why = why, .whylen = whylen};
  cj_value *v = calloc(1, sizeof *v);
  if (!v) {
    snprintf(why, whylen, "out of memory");
    return NULL;
  }
  if (parse_value(&ps, v, 0)) {
    skip_ws(&ps);
    if (*ps.p) fail(&ps, "text after the value");
  }
  if (ps.failed) {
    cj_free(v);
    return NULL;
  }
  return v;
}

void cj_free(cj_value *v) {
  if (!v) return;
  free_inner(v);
  free(v);
}

const cj_value *cj_get(const cj_value *obj, const char *key) {
  if (!obj || obj->kind != CJ_OBJECT) return NULL;
  for (size_t i = 0; i < obj->n; i++)
    if (!strcmp(obj->keys[i], key)) return &obj->items[i];
  return NULL;
}

bool cj_get_u64(const cj_value *obj, const char *key, uint64_t *out) {
  const cj_value *v = cj_get(obj, key);
  if (!v || v->kind != CJ_NUMBER || v->str[0] == '-' || strpbrk(v->str, ".eE")) return false;
  errno = 0;
  unsigned long long n = strtoull(v->str, NULL, 10);
  if (errno) return false;
  *out = n;
  return true;
}
