/* contenthash_avx2.c: XXH3 compiled with -mavx2 (harness.mk), for cc_hash to call where the
 * CPU has AVX2 (contenthash.c). Built without the flag (a fuzzing build's own compiler
 * flags), it is the SSE2 code under another name: the same value either way. */
#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t cc__hash_avx2(const void *buf, size_t len);
uint64_t cc__hash_avx2(const void *buf, size_t len) { return XXH3_64bits(buf, len); }
