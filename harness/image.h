/* image.h: the crash-image file the checker opens, kept equal to each derived image by
 * writing only the sectors where it differs, and a hash of each image computed from the
 * same differences; so a crash state costs what it changes, not the file's size. */
#ifndef CC_IMAGE_H
#define CC_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "case.h" /* the CC_ codes */
#include "powercut.h"

typedef struct cc_image cc_image;

/* `path` is the file to keep; `sector` the model's sector size; file id 0 of the model
 * is the one imaged. `verify` compares every written file with the full image
 * (slow; for tests of this module's bookkeeping). `written` (may be NULL) hears of
 * every byte range it changes ([0, UINT64_MAX) for all of it). */
typedef void (*cc_written_fn)(void *ctx, uint64_t off, uint64_t len);
int cc_image_new(const char *path, uint32_t sector, bool verify, cc_written_fn written, void *ctx, cc_image **out);
void cc_image_free(cc_image *im);

/* Call after each pc_replay_next: the durable content moved on by the sectors the
 * previous step made durable. */
int cc_image_step(cc_image *im, pc_model *m);
/* Derives the image of `crash` at the current step and its hash (a function of the
 * image's bytes alone, so equal images have equal hashes). */
int cc_image_derive(cc_image *im, pc_model *m, const pc_crash *crash, uint64_t *hash);
/* A hash of the image last derived over the sectors with keyed[sector] set (sectors at or
 * past nkeyed count as not keyed), and of its size: two images with equal keys, of one step
 * or of two, are equal in those sectors. */
uint64_t cc_image_key(cc_image *im, const uint8_t *keyed, uint64_t nkeyed);
/* Keeps the image last derived for cc_image_restore during this step (SIZE_MAX: not kept,
 * derive it again: an image with a garbage sector, or one written whole). */
size_t cc_image_save(cc_image *im);
/* Makes a kept image of this step the last derived again, as deriving it would; false if
 * there is none such. */
bool cc_image_restore(cc_image *im, size_t saved);
/* Makes the file hold the image last derived. */
int cc_image_write(cc_image *im, pc_model *m, const pc_crash *crash);
/* The file's size as this module last made it (0 before the first write). */
uint64_t cc_image_file_size(const cc_image *im);
/* Someone else wrote the file (the checker's recovery): rewrite all of it next time. */
void cc_image_touched(cc_image *im);
/* Call at the end of each step, before pc_replay_next. */
int cc_image_end_step(cc_image *im, pc_model *m);
/* Whether the len bytes of a file's content begin with a 0.3 superblock (pager/FORMAT.md 3.5:
 * tag MPPG, major 0, minor 3). */
bool cc_image_is_format3(const uint8_t *content, uint64_t len);
/* The kinds (mp_image_page_kinds: MP_PAGE_*) of file `id`'s pages as the program sees it in the
 * model's open step, if that is a 0.3 file: malloc'ed, *npages of them. With `create3` (the
 * case creates its file as 0.3), a file without a superblock yet is that create in flight, whose
 * pages are its fixed layout (mp_create_page_kinds). NULL for a 0.2 file (or none yet: a 0.2
 * create before its superblock), or without memory. */
uint8_t *cc_step_kinds3(pc_model *m, uint32_t id, uint32_t page_size, bool create3, uint64_t *npages);
/* Whether the open step's j-th durable sector (0-based, as a garbage:j+1 tear counts them) is
 * file `id`'s and lies in a superblock, root, leaf or directory block of `kinds`
 * (cc_step_kinds3): a garbage sector the 0.3 format promises to survive (pager/FORMAT.md 3.2),
 * which explore's garbage tears (by default) and fuzz_ops check. */
bool cc_step_sector_is_metadata3(pc_model *m, uint32_t id, uint64_t j, const uint8_t *kinds, uint64_t npages,
                                 uint32_t page_size, uint32_t sector);

#endif
