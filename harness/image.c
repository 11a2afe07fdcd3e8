/* image.c: keeps the crash-image file equal to each derived image by writing only the
 * sectors where it differs, and hashes each image from its differences with the durable
 * content: the hash of an image is the sum of per-sector hashes, so the durable sum is
 * kept up to date as steps land and each image adjusts it by the sectors it changes.
 *
 * The sectors are copied into a shared mapping of the file, not written with pwrite: the
 * file lives on tmpfs (the explorer's scratch folder), and a state changes a handful of
 * sector runs, each of which was a system call, about half of a state's cost. The
 * checker's handles map the same file, so they see the bytes at once. Only a change of
 * the file's size, and a rewrite of all of it, still go through the file. */
#include "image.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "case.h"
#include "mappedpages.h"

#define IDX_MIX 0xD6E8FEB86659FD93ull
#define SIZE_MIX 0x9E3779B97F4A7C15ull

struct cc_image {
  int fd;
  uint32_t S;
  cc_written_fn written;
  void *written_ctx;
  bool verify, started, all_stale, unaligned;
  uint64_t file_size;
  uint8_t *view; /* MAP_SHARED, read-write, of view_len bytes (past the file's end: untouched) */
  uint64_t view_len;

  /* Per-sector hashes of the durable content; dsum covers the sectors below dsize. */
  uint64_t *dh;
  uint64_t dh_valid, dh_cap;
  uint64_t dsum, dsize, zero_hash;

  /* Sectors where the file may hold something other than the durable content. */
  uint8_t *stale_bit;
  uint64_t stale_bits;
  uint64_t *stale;
  size_t nstale, stale_cap;

  /* The last derived image: its size and its sectors that differ from durable. */
  uint64_t size;
  uint64_t *dsec;
  const uint8_t **dptr; /* each sector's content: volatile content (stable during a step) or a copy */
  uint8_t *ddata;       /* copies of garbage sectors, which live only during the callback */
  size_t nd, dcap, dbytes, ncopies;
  bool failed; /* out of memory while collecting */
  bool garbage; /* the crash being derived has a garbage sector */

  /* Images of the open step kept by cc_image_save: their sectors (indexes and content
   * pointers, which stay valid during the step) laid end to end, and per image where its
   * run begins, its length and the image's size. Emptied when the step changes. */
  uint64_t *sv_sec;
  const uint8_t **sv_ptr;
  size_t sv_n, sv_cap;
  struct saved_image {
    size_t off, nd;
    uint64_t size;
  } *sv;
  size_t sv_count, sv_slots;
  uint32_t sv_stamp;

  /* cc_image_key's sum over the keyed sectors of the durable content (key_n of them, of the
   * map key_map), for the step of stamp key_stamp. */
  uint64_t key_base, key_n;
  const uint8_t *key_map;
  uint32_t key_stamp;

  /* The hash of what the file holds in each sector, known where fh_stamp equals fh_gen (a
   * whole rewrite moves fh_gen on): a sector whose new bytes hash the same is not stored. */
  uint64_t *fh;
  uint32_t *fh_stamp, fh_gen;
  size_t fh_cap;

  /* Hashes of volatile sectors, which many crash choices of a step share. */
  uint64_t *vh;
  uint32_t *vh_stamp;
  size_t vh_cap;
  uint32_t stamp;

  /* The sectors the current step makes durable, noted at its end. */
  uint64_t *landing;
  size_t nlanding, landing_cap;
  bool have_landing;

  uint32_t *slot; /* per sector: 1 + its index in the delta, 0 if not in it */
  uint64_t slot_cap;
  uint64_t *order;
  size_t order_cap;
};

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return false;
  memset((char *)q + *cap * elem, 0, (c - *cap) * elem);
  *p = q;
  *cap = c;
  return true;
}

static uint64_t sector_hash(const uint8_t *data, size_t n, uint64_t s) { return cc_hash(data, n) ^ (s + 1) * IDX_MIX; }

static uint64_t zero_hash(const cc_image *im, uint64_t s) { return im->zero_hash ^ (s + 1) * IDX_MIX; }

static uint64_t dur_hash(const cc_image *im, uint64_t s) { return s < im->dh_valid ? im->dh[s] : zero_hash(im, s); }

static void changed(cc_image *im, uint64_t off, uint64_t len) {
  if (im->written) im->written(im->written_ctx, off, len);
}

int cc_image_new(const char *path, uint32_t sector, bool verify, cc_written_fn written, void *ctx, cc_image **out) {
  cc_image *im = calloc(1, sizeof *im);
  if (!im) return CC_ENOMEM;
  /* Not truncated: the first image rewrites all of it (all_stale), in place (a walk per R7
   * follow-up uses the same file). */
  im->fd = open(path, O_RDWR | O_CREAT, 0644);
  if (im->fd < 0) {
    free(im);
    return CC_EIO;
  }
  im->S = sector;
  im->verify = verify;
  im->written = written;
  im->written_ctx = ctx;
  im->all_stale = true;
  im->fh_gen = 1; /* (stamps start at 0: nothing known) */
  uint8_t *zero = calloc(1, sector);
  if (!zero) {
    cc_image_free(im);
    return CC_ENOMEM;
  }
  im->zero_hash = cc_hash(zero, sector);
  free(zero);
  *out = im;
  return CC_OK;
}

void cc_image_free(cc_image *im) {
  if (!im) return;
  if (im->view) munmap(im->view, im->view_len);
  if (im->fd >= 0) close(im->fd);
  free(im->dh);
  free(im->stale_bit);
  free(im->stale);
  free(im->dsec);
  free(im->dptr);
  free(im->ddata);
  free(im->vh);
  free(im->vh_stamp);
  free(im->fh);
  free(im->fh_stamp);
  free(im->sv_sec);
  free(im->sv_ptr);
  free(im->sv);
  free(im->landing);
  free(im->slot);
  free(im->order);
  free(im);
}

uint64_t cc_image_file_size(const cc_image *im) { return im->all_stale ? 0 : im->file_size; }

void cc_image_touched(cc_image *im) {
  im->all_stale = true;
  changed(im, 0, UINT64_MAX);
}

static bool mark_stale(cc_image *im, uint64_t s) {
  if (!grow((void **)&im->stale_bit, &im->stale_bits, s / 8 + 1, 1)) return false;
  if (im->stale_bit[s / 8] >> (s % 8) & 1) return true;
  if (!grow((void **)&im->stale, &im->stale_cap, im->nstale + 1, 8)) return false;
  im->stale_bit[s / 8] |= (uint8_t)(1u << (s % 8));
  im->stale[im->nstale++] = s;
  return true;
}

static void clear_stale(cc_image *im) {
  for (size_t i = 0; i < im->nstale; i++) im->stale_bit[im->stale[i] / 8] = 0;
  im->nstale = 0;
}

/* ---- following the durable content ------------------------------------------------ */

static void note_landing(void *ctx, uint64_t s, const uint8_t *data) {
  cc_image *im = ctx;
  (void)data;
  if (grow((void **)&im->landing, &im->landing_cap, im->nlanding + 1, 8)) im->landing[im->nlanding++] = s;
}

int cc_image_end_step(cc_image *im, pc_model *m) {
  pc_crash all = {.tear = PC_TEAR_ALL, .wb = PC_WB_NONE};
  uint64_t size;
  im->nlanding = 0;
  int rc = pc_model_image_sectors(m, 0, &all, note_landing, im, &size);
  im->have_landing = rc == PC_OK;
  return rc == PC_OK ? CC_OK : CC_EIO;
}

int cc_image_step(cc_image *im, pc_model *m) {
  im->stamp++; /* the volatile content may have changed: forget its sector hashes */
  const uint8_t *dur;
  uint64_t dlen;
  if (pc_model_durable(m, 0, &dur, &dlen) != PC_OK) return CC_EIO;
  uint64_t S = im->S, old_n = im->dsize / S, new_n = dlen / S;
  im->unaligned = dlen % S != 0;
  if (!grow((void **)&im->dh, &im->dh_cap, new_n + 1, 8)) return CC_ENOMEM;
  if (!im->started || !im->have_landing) {
    /* First step (or the landing is unknown): hash the durable content whole. */
    im->dh_valid = new_n;
    im->dsum = 0;
    for (uint64_t s = 0; s < new_n; s++) im->dsum += im->dh[s] = sector_hash(dur + s * S, S, s);
    im->dsize = dlen;
    im->started = true;
    im->all_stale = true;
    im->have_landing = false;
    return CC_OK;
  }
  /* Sectors now covered for the first time hold durable content (zeros, or data
   * that landed there). */
  for (uint64_t s = im->dh_valid; s < new_n; s++) im->dh[s] = sector_hash(dur + s * S, S, s);
  if (new_n > im->dh_valid) im->dh_valid = new_n;
  for (size_t i = 0; i < im->nlanding; i++) {
    uint64_t s = im->landing[i];
    if (!mark_stale(im, s)) return CC_ENOMEM;
    if (s >= im->dh_valid) continue;
    uint64_t before = im->dh[s];
    im->dh[s] = s < new_n ? sector_hash(dur + s * S, S, s) : zero_hash(im, s);
    if (s < old_n) im->dsum += im->dh[s] - before;
  }
  if (new_n > old_n) {
    for (uint64_t s = old_n; s < new_n; s++) im->dsum += im->dh[s];
  } else {
    /* A shrink zeroes the durable bytes past the new size. */
    for (uint64_t s = new_n; s < old_n; s++) {
      im->dsum -= im->dh[s];
      im->dh[s] = zero_hash(im, s);
      if (!mark_stale(im, s)) return CC_ENOMEM;
    }
  }
  im->dsize = dlen;
  im->have_landing = false;
  return CC_OK;
}

/* ---- deriving --------------------------------------------------------------------- */

static void collect(void *ctx, uint64_t s, const uint8_t *data) {
  cc_image *im = ctx;
  size_t cap = im->dcap;
  if (im->nd >= im->dcap && /* (both arrays grow alike from the same capacity) */
      (!grow((void **)&im->dsec, &cap, im->nd + 1, 8) || !grow((void **)&im->dptr, &im->dcap, im->nd + 1, sizeof(void *)))) {
    im->failed = true;
    return;
  }
  if (im->garbage) {
    /* Only the garbage sector is not volatile content; copying each is simpler and
     * garbage crashes are few. The copies' buffer may move as it grows, so dptr is
     * pointed into it once the collection is done (cc_image_derive). */
    if (!grow((void **)&im->ddata, &im->dbytes, (im->ncopies + 1) * im->S, 1)) {
      im->failed = true;
      return;
    }
    memcpy(im->ddata + im->ncopies++ * im->S, data, im->S);
    data = NULL;
  }
  im->dsec[im->nd] = s;
  im->dptr[im->nd++] = data;
}

static uint64_t full_hash(const cc_image *im, const uint8_t *buf, uint64_t len) {
  uint64_t sum = 0;
  for (uint64_t off = 0, s = 0; off < len; off += im->S, s++)
    sum += sector_hash(buf + off, len - off < im->S ? len - off : im->S, s);
  return sum ^ len * SIZE_MIX;
}

int cc_image_derive(cc_image *im, pc_model *m, const pc_crash *crash, uint64_t *hash) {
  im->nd = 0;
  im->ncopies = 0;
  im->failed = false;
  im->garbage = crash->tear == PC_TEAR_GARBAGE;
  uint64_t size;
  if (pc_model_image_sectors(m, 0, crash, collect, im, &size) != PC_OK || im->failed) return CC_EIO;
  for (size_t i = 0; im->garbage && i < im->nd; i++) im->dptr[i] = im->ddata + i * im->S; /* each sector a copy */
  im->size = size;
  uint64_t S = im->S;
  if (im->unaligned || size % S) {
    uint8_t *buf;
    uint64_t len;
    if (pc_model_image(m, 0, crash, &buf, &len) != PC_OK) return CC_EIO;
    *hash = full_hash(im, buf, len);
    free(buf);
    return CC_OK;
  }
  uint64_t n = size / S, nd0 = im->dsize / S, sum = im->dsum;
  for (uint64_t s = nd0; s < n; s++) sum += dur_hash(im, s);
  for (uint64_t s = n; s < nd0; s++) sum -= im->dh[s];
  size_t vcap = im->vh_cap; /* both arrays grow alike from the same capacity */
  if (!grow((void **)&im->vh, &vcap, n + 1, 8) || !grow((void **)&im->vh_stamp, &im->vh_cap, n + 1, 4))
    return CC_ENOMEM;
  for (size_t i = 0; i < im->nd; i++) {
    uint64_t s = im->dsec[i], h;
    if (s >= n) continue;
    if (im->garbage) {
      h = sector_hash(im->dptr[i], S, s);
    } else if (im->vh_stamp[s] == im->stamp) {
      h = im->vh[s];
    } else {
      h = im->vh[s] = sector_hash(im->dptr[i], S, s);
      im->vh_stamp[s] = im->stamp;
    }
    sum += h - dur_hash(im, s);
  }
  *hash = sum ^ size * SIZE_MIX;
  return CC_OK;
}

/* Whether vh holds the hash of sector s of the image last derived (derive keeps the hashes of
 * volatile sectors for the step; a garbage sector's bytes are a copy of their own). */
static bool vol_hash_known(const cc_image *im, uint64_t s) {
  return !im->garbage && s < im->vh_cap && im->vh_stamp[s] == im->stamp;
}

uint64_t cc_image_key(cc_image *im, const uint8_t *keyed, uint64_t nkeyed) {
  uint64_t n = im->size / im->S, lim = n < nkeyed ? n : nkeyed;
  if (im->key_stamp != im->stamp || im->key_n != lim || im->key_map != keyed) {
    /* the durable content's part, the same for every image of the step of that size */
    im->key_base = 0;
    for (uint64_t s = 0; s < lim; s++) {
      uint64_t word;
      if (s % 8 == 0 && s + 8 <= lim && (memcpy(&word, keyed + s, 8), !word)) { /* most are not keyed */
        s += 7;
        continue;
      }
      if (keyed[s]) im->key_base += dur_hash(im, s);
    }
    im->key_stamp = im->stamp, im->key_n = lim, im->key_map = keyed;
  }
  uint64_t key = im->key_base + im->size * SIZE_MIX;
  for (size_t i = 0; i < im->nd; i++) {
    uint64_t s = im->dsec[i];
    if (s >= lim || !keyed[s]) continue;
    uint64_t h = vol_hash_known(im, s) ? im->vh[s] : sector_hash(im->dptr[i], im->S, s);
    key += h - dur_hash(im, s);
  }
  return key;
}

size_t cc_image_save(cc_image *im) {
  if (im->garbage || im->unaligned || im->size % im->S) return SIZE_MAX; /* (copies, or whole) */
  if (im->sv_stamp != im->stamp) im->sv_n = im->sv_count = 0, im->sv_stamp = im->stamp;
  size_t cap = im->sv_cap; /* both arrays grow alike from the same capacity */
  if (!grow((void **)&im->sv_sec, &cap, im->sv_n + im->nd + 1, 8) ||
      !grow((void **)&im->sv_ptr, &im->sv_cap, im->sv_n + im->nd + 1, sizeof(void *)) ||
      !grow((void **)&im->sv, &im->sv_slots, im->sv_count + 1, sizeof *im->sv))
    return SIZE_MAX;
  if (im->nd) { /* (no sector ever collected: no arrays yet) */
    memcpy(im->sv_sec + im->sv_n, im->dsec, im->nd * 8);
    memcpy(im->sv_ptr + im->sv_n, im->dptr, im->nd * sizeof(void *));
  }
  im->sv[im->sv_count] = (struct saved_image){.off = im->sv_n, .nd = im->nd, .size = im->size};
  im->sv_n += im->nd;
  return im->sv_count++;
}

bool cc_image_restore(cc_image *im, size_t saved) {
  if (saved == SIZE_MAX || im->sv_stamp != im->stamp || saved >= im->sv_count) return false;
  const struct saved_image *sv = &im->sv[saved];
  size_t cap = im->dcap;
  if (sv->nd > im->dcap &&
      (!grow((void **)&im->dsec, &cap, sv->nd, 8) || !grow((void **)&im->dptr, &im->dcap, sv->nd, sizeof(void *))))
    return false;
  if (sv->nd) {
    memcpy(im->dsec, im->sv_sec + sv->off, sv->nd * 8);
    memcpy(im->dptr, im->sv_ptr + sv->off, sv->nd * sizeof(void *));
  }
  im->nd = sv->nd;
  im->size = sv->size;
  im->garbage = false;
  im->ncopies = 0;
  return true;
}

/* ---- writing ------------------------------------------------------------------------ */

/* Makes the mapping cover `len` bytes of the file (whose size the caller has made at least
 * that). It is made larger than asked, so that a file growing a page at a time is mapped
 * again only when it doubles. */
static bool ensure_view(cc_image *im, uint64_t len) {
  if (len <= im->view_len) return true;
  uint64_t want = im->view_len ? im->view_len : (uint64_t)1 << 20;
  while (want < len) want *= 2;
  void *v = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_SHARED, im->fd, 0);
  if (v == MAP_FAILED) return false;
  if (im->view) munmap(im->view, im->view_len);
  im->view = v;
  im->view_len = want;
  return true;
}

static int write_whole(cc_image *im, pc_model *m, const pc_crash *crash) {
  uint8_t *buf;
  uint64_t len;
  if (pc_model_image(m, 0, crash, &buf, &len) != PC_OK) return CC_EIO;
  bool ok = pwrite(im->fd, buf, len, 0) == (ssize_t)len && ftruncate(im->fd, (off_t)len) == 0;
  free(buf);
  changed(im, 0, UINT64_MAX);
  im->fh_gen++; /* what each sector holds: unknown again */
  if (!ok) return CC_EIO;
  im->file_size = len;
  im->all_stale = false;
  return CC_OK;
}

static int verify(cc_image *im, pc_model *m, const pc_crash *crash) {
  uint8_t *want, *got;
  uint64_t len;
  if (pc_model_image(m, 0, crash, &want, &len) != PC_OK) return CC_EIO;
  got = malloc(len ? len : 1);
  bool same = got && pread(im->fd, got, len, 0) == (ssize_t)len && !memcmp(got, want, len) &&
              (uint64_t)lseek(im->fd, 0, SEEK_END) == len;
  free(got);
  free(want);
  if (!same) {
    fprintf(stderr, "crashcheck: internal error: the image file differs from the image it should hold\n");
    abort();
  }
  return CC_OK;
}

int cc_image_write(cc_image *im, pc_model *m, const pc_crash *crash) {
  uint64_t S = im->S, size = im->size;
  int rc = CC_OK;
  if (im->all_stale || im->unaligned || size % S || im->file_size % S) {
    rc = write_whole(im, m, crash);
  } else {
    const uint8_t *dur;
    uint64_t dlen;
    if (pc_model_durable(m, 0, &dur, &dlen) != PC_OK) return CC_EIO;
    uint64_t n = size / S, nd0 = dlen / S, fn = im->file_size / S;
    /* What to write: where the file may be stale, where the image differs from
     * durable, and durable content the file would otherwise show as a hole. */
    size_t norder = 0;
    size_t need = im->nstale + im->nd + (n > fn ? (size_t)(n - fn) : 0);
    if (!grow((void **)&im->order, &im->order_cap, need + 1, 8) ||
        !grow((void **)&im->slot, &im->slot_cap, (n > nd0 ? n : nd0) + 1, 4))
      return CC_ENOMEM;
    for (size_t i = 0; i < im->nstale; i++)
      if (im->stale[i] < n) im->order[norder++] = im->stale[i];
    for (size_t i = 0; i < im->nd; i++)
      if (im->dsec[i] < n) {
        im->order[norder++] = im->dsec[i];
        im->slot[im->dsec[i]] = (uint32_t)i + 1;
      }
    for (uint64_t s = fn; s < n && s < nd0; s++) im->order[norder++] = s;
    /* A file that grows is made longer before its new sectors are stored (a store past
     * the end of a mapped file is SIGBUS); one that shrinks, after. */
    if (size > im->file_size && ftruncate(im->fd, (off_t)size) != 0) rc = CC_EIO;
    if (rc == CC_OK && !ensure_view(im, size)) rc = CC_EIO;
    /* A sector that already holds its bytes (the last image had the same there: most of a
     * step's images share their metadata sectors) is neither stored nor reported: the
     * checker's handles and hashes of that page stay good. So the order needs no sorting: a
     * sector listed twice holds its bytes the second time, and adjacent sectors, which the
     * lists mostly give in ascending order, are reported as one range. */
    uint64_t run_first = 0, run = 0;
    size_t fcap = im->fh_cap; /* both arrays grow alike from the same capacity */
    if (!grow((void **)&im->fh, &fcap, n + 1, 8) || !grow((void **)&im->fh_stamp, &im->fh_cap, n + 1, 4))
      return CC_ENOMEM;
    for (size_t i = 0; i < norder && rc == CC_OK; i++) {
      uint64_t s = im->order[i];
      uint32_t slot = im->slot[s];
      const uint8_t *src = slot ? im->dptr[slot - 1] : s < nd0 ? dur + s * S : NULL;
      uint8_t *at = im->view + s * S;
      /* The hash of the bytes going there, where derive or the durable content knows it
       * (not for a garbage sector), against the hash of what the file holds, where known:
       * equal hashes stand for equal bytes, as they do for the images' identity. */
      bool want_known = !slot || vol_hash_known(im, s);
      uint64_t want = slot ? (want_known ? im->vh[s] : 0) : s < nd0 ? dur_hash(im, s) : zero_hash(im, s);
      bool same = false;
      if (s < fn) {
        if (want_known && im->fh_stamp[s] == im->fh_gen) same = im->fh[s] == want;
        else same = src ? memcmp(at, src, S) == 0 : at[0] == 0 && memcmp(at, at + 1, S - 1) == 0;
      }
      if (!same) {
        if (src) memcpy(at, src, S);
        else memset(at, 0, S);
      }
      im->fh[s] = want;
      im->fh_stamp[s] = want_known ? im->fh_gen : 0;
      if (run && (same || s != run_first + run)) {
        changed(im, run_first * S, run * S);
        run = 0;
      }
      if (!same && !run++) run_first = s;
    }
    if (run) changed(im, run_first * S, run * S);
    for (size_t i = 0; i < im->nd; i++)
      if (im->dsec[i] < n) im->slot[im->dsec[i]] = 0;
    if (rc == CC_OK && size != im->file_size) {
      if (size < im->file_size && ftruncate(im->fd, (off_t)size) != 0) rc = CC_EIO;
      /* the sectors cut off read as zeros when the file grows again, whatever they held */
      for (uint64_t s = n; s < fn && s < im->fh_cap; s++) im->fh_stamp[s] = 0;
      uint64_t lo = size < im->file_size ? size : im->file_size, hi = size < im->file_size ? im->file_size : size;
      changed(im, lo, hi - lo);
    }
    if (rc == CC_OK) im->file_size = size;
  }
  if (rc != CC_OK) {
    im->all_stale = true;
    return rc;
  }
  /* The file now differs from durable exactly where the image does. */
  clear_stale(im);
  for (size_t i = 0; i < im->nd; i++)
    if (!mark_stale(im, im->dsec[i])) im->all_stale = true;
  return im->verify ? verify(im, m, crash) : CC_OK;
}

bool cc_image_is_format3(const uint8_t *content, uint64_t len) {
  return len >= 8 && memcmp(content, "MPPG", 4) == 0 && content[4] == 0 && content[5] == 3;
}

uint8_t *cc_step_kinds3(pc_model *m, uint32_t id, uint32_t page_size, bool create3, uint64_t *npages) {
  const uint8_t *vol;
  uint64_t vlen;
  if (pc_model_volatile(m, id, &vol, &vlen) != PC_OK) return NULL;
  /* The 0.3 create writes its superblock last: until then its roots and leaf have no tag
   * before them (a 0.2 one is a file of another format: none of its pages is 0.3's). */
  bool in_create = create3 && !cc_image_is_format3(vol, vlen) && !(vlen >= 4 && memcmp(vol, "MPPG", 4) == 0);
  if (!in_create && !cc_image_is_format3(vol, vlen)) return NULL;
  uint64_t pages = vlen / page_size;
  uint8_t *kinds = pages ? malloc(pages) : NULL;
  if (!kinds || (in_create ? mp_create_page_kinds(page_size, MP_FORMAT_3, kinds, pages)
                           : mp_image_page_kinds(vol, vlen, kinds, pages)) != MP_OK) {
    free(kinds);
    return NULL;
  }
  *npages = pages;
  return kinds;
}

bool cc_step_sector_is_metadata3(pc_model *m, uint32_t id, uint64_t j, const uint8_t *kinds, uint64_t npages,
                                 uint32_t page_size, uint32_t sector) {
  uint32_t fid;
  uint64_t sec, page;
  if (pc_model_step_sector(m, j, &fid, &sec) != PC_OK || fid != id || (page = sec * sector / page_size) >= npages)
    return false;
  return kinds[page] == MP_PAGE_SUPERBLOCK || kinds[page] == MP_PAGE_METADATA || kinds[page] == MP_PAGE_DIRECTORY;
}
