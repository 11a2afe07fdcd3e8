/* json.h: a small JSON reader for what crashcheck itself prints (--json): a tree of values
 * parsed from one text, freed at once. Not a general library: numbers keep their text so
 * that 64-bit counts read back exactly, and a string's \u escapes are limited to one byte. */
#ifndef CC_JSON_H
#define CC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CJ_NULL, CJ_BOOL, CJ_NUMBER, CJ_STRING, CJ_ARRAY, CJ_OBJECT } cj_kind;

typedef struct cj_value {
  cj_kind kind;
  bool b;
  double num;
  char *str;               /* CJ_STRING: the decoded text; CJ_NUMBER: the number's text */
  size_t n;                /* CJ_ARRAY, CJ_OBJECT: how many items */
  struct cj_value *items;  /* CJ_ARRAY, CJ_OBJECT */
  char **keys;             /* CJ_OBJECT: items[i]'s name */
} cj_value;

/* Parses `text` (one value, white space around it). On error returns NULL and writes why,
 * with the byte offset, to `why`. */
cj_value *cj_parse(const char *text, char *why, size_t whylen);
void cj_free(cj_value *v);
/* An object's member, or NULL (also when `obj` is not an object). */
const cj_value *cj_get(const cj_value *obj, const char *key);
/* A member that is a non-negative integer: true and *out, else false. */
bool cj_get_u64(const cj_value *obj, const char *key, uint64_t *out);

#endif
