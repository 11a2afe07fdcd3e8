/* contenthash.c: cc_hash, the harness's content hash: xxHash's XXH3 (Debian libxxhash-dev,
 * inlined from its header), in the AVX2 build of contenthash_avx2.c where the CPU has AVX2.
 *
 * The explorer hashes every sector of every crash image it derives, and the runner every
 * protected page after every operation: the harness's hottest loop. It was a hand-written
 * vector hash; XXH3 compiled for AVX2 takes 82 ns per 4 KiB on the 2-core EPYC VM measured
 * (19 ns per 512-byte sector) against that hash's 176 ns (40 ns), and 232 ns (47 ns) compiled
 * for SSE2 alone, which is why the AVX2 copy is chosen at run time. XXH3's value does not
 * depend on the instructions that compute it, so both give the same hash. */
#include "case.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t cc__hash_avx2(const void *buf, size_t len); /* contenthash_avx2.c */

uint64_t cc_hash(const void *buf, size_t len) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (__builtin_cpu_supports("avx2")) return cc__hash_avx2(buf, len);
#endif
  return XXH3_64bits(buf, len);
}
