/* mappedpages.h: public API of libmappedpages, a crash-consistent, memory-mapped,
 * file-backed provider of fixed-size pages, byte-compatible with mappedpages 0.2.
 *
 * Conventions (libuv style): every name starts with mp_; functions return an
 * error code (MP_OK = 0, or a negative MP_E* value) and deliver results through
 * out parameters; mp_strerror() turns any code into a sentence. The library keeps
 * no global mutable state, never exits, aborts or prints, and a handle may be used
 * by one thread at a time.
 *
 * Durability contract: when a mutating call returns MP_OK its effect is durable
 * (it survives a power cut). When it returns an error, the allocation state (in
 * memory and in the file) is the last committed one; the call may have left
 * internal capacity behind (a grown file, an empty directory block), never a
 * half-done change. If even undoing an I/O error at a commit point fails, the
 * handle is poisoned (MP_EPOISONED): the file holds the old or the new state,
 * and a reopen tells which.
 */
#ifndef MAPPEDPAGES_H
#define MAPPEDPAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MP_API __attribute__((visibility("default")))
#else
#define MP_API
#endif

#define MP_VERSION_STRING "0.2.0"

/* Error codes. */
enum {
  MP_OK = 0,
  MP_EINVAL = -1,      /* an argument is invalid (NULL, bad page size, bad flags, unknown id) */
  MP_ENOMEM = -2,      /* out of memory (malloc or mmap) */
  MP_EIO = -3,         /* a system call failed; the operation was not committed */
  MP_EEXIST = -4,      /* mp_create: the file exists and holds something */
  MP_ENOENT = -5,      /* the file does not exist, or an iterator has no more ids */
  MP_ECORRUPT = -6,    /* the file is not a valid mappedpages file, or is damaged */
  MP_EVERSION = -7,    /* the file has an unsupported format version or page size */
  MP_EFULL = -8,       /* the file reached its capacity (0.2: one bitmap page; 0.3: 2^32 pages; the directory) */
  MP_ENOSPC = -9,      /* the file system is full */
  MP_ERDONLY = -10,    /* the pager was opened with MP_RDONLY */
  MP_ENOTALLOC = -11,  /* the page or protected id is not allocated */
  MP_EBUSY = -12,      /* the file is locked by another writer, or a staged write is pending */
  MP_ENOTSTAGED = -13, /* mp_protected_commit/abort without mp_protected_begin */
  MP_EINCOMPLETE = -14,/* the file is the leftover of an interrupted mp_create */
  MP_EPOISONED = -15,  /* an earlier I/O error left the durable state uncertain: reopen */
  MP_EACCES = -16      /* permission denied */
};

/* Flags for mp_open. */
#define MP_RDONLY 0x1u /* map read-only; every mutating call returns MP_ERDONLY */
#define MP_CREATE 0x2u /* create the file (page size MP_DEFAULT_PAGE_SIZE) if it does not exist */
/* Read-only, but the handle shows the file as a writer's open would leave it:
 * recovery runs on a private copy of the mapping and nothing reaches the file.
 * For fsck-like tools and crash checkers: "what would recovery make of this?".
 * Mutating calls return MP_ERDONLY; the lock is a reader's. */
#define MP_PREVIEW 0x4u
/* A writer's flag: the file grows with ftruncate and reserves nothing, where it otherwise
 * reserves each growth with fallocate. Growth then writes no zeros and the file system
 * allocates blocks as pages are first written; the price is that a store into a page the
 * file system cannot back then (a full disk) faults with SIGBUS in the caller, where
 * without the flag MP_ENOSPC comes at allocation. The pages the pager itself writes into
 * (a protected page's two copies, a new directory block's pages) are reserved one by one
 * before their first write, so the library's own stores never fault: a full disk there is
 * MP_ENOSPC, as before. A 0.2 file keeps nothing of it: the flag is the handle's. A 0.3 file
 * created with it keeps it in its superblock, and every later handle of it grows so. */
#define MP_SPARSE 0x8u
/* The 0.3 format (pager/FORMAT.md section 3: up to 2^32 pages, every operation one commit of
 * two msyncs, no metadata write a garbage sector can make fatal), which the mappedpages 0.2
 * crate refuses. With MP_CREATE (or mp_create_flags), a file this call creates is 0.3. On a
 * writer's open of a 0.2 file (at any page size), an allocation (regular or protected)
 * that needs more pages than 0.2 holds upgrades the file to 0.3 in one crash-atomic commit
 * (FORMAT.md 3.8) instead of returning MP_EFULL; without the flag a 0.2 file stays 0.2,
 * readable by the reference.
 * Not with MP_RDONLY or MP_PREVIEW. */
#define MP_FORMAT_3 0x10u
/* With MP_RDONLY, for a caller that writes the file itself and reloads the handle only when
 * one of the pages mp_reload_basis names changed, or the file's size did (a crash checker
 * writing image after image): the handle keeps the list of those pages but no copy of their
 * bytes, which would never match at such a reload, so mp_reload_same loads again at each
 * one (`*same` false) instead of first copying and comparing them. */
#define MP_BASIS_WATCHED 0x20u

#define MP_DEFAULT_PAGE_SIZE 4096u
#define MP_MIN_PAGE_SIZE 1024u
#define MP_MAX_PAGE_SIZE (1u << 24)

typedef struct mp_pager mp_pager;

/* Creates a new file with the given page size (a power of two, 1 KiB .. 16 MiB).
 * Fails with MP_EEXIST if the path exists, unless it is the leftover of a create
 * that a power cut interrupted, which is replaced. */
MP_API int mp_create(const char *path, size_t page_size, mp_pager **out);
/* As mp_create, with flags: MP_FORMAT_3 (the file is 0.3), MP_SPARSE (as for mp_open; a 0.3
 * file keeps it). Other bits: MP_EINVAL. */
MP_API int mp_create_flags(const char *path, size_t page_size, unsigned flags, mp_pager **out);

/* Opens an existing file; the page size is read from it. With MP_CREATE, a
 * missing file (or an interrupted create) is created with MP_DEFAULT_PAGE_SIZE.
 * A writer holds an exclusive lock; MP_RDONLY openers share a lock. Opening
 * read-write also finishes or rolls back an operation that a power cut
 * interrupted (see README: recovery). A page 0 whose first sector is garbage
 * (no MPPG tag: a torn write on a drive without atomic sectors) is rebuilt from
 * the other pages when they tell it beyond doubt, else refused with MP_ECORRUPT
 * (README: salvaging page 0). */
MP_API int mp_open(const char *path, unsigned flags, mp_pager **out);

/* As mp_open; when it fails, also writes one sentence saying why into `why`
 * (whylen bytes, always NUL-terminated; may be NULL). */
MP_API int mp_open_explain(const char *path, unsigned flags, mp_pager **out, char *why, size_t whylen);

/* For an MP_PREVIEW handle: the smallest page >= from that its mapping holds a copy of
 * its own (read from the kernel's page tables, so it holds whatever recovery did): every
 * page its recovery wrote in memory, which a writer's open would write to the file, and
 * pages an earlier load's recovery wrote, which a reload gave the file's bytes again.
 * MP_ENOENT when there is none, or for other handles. */
MP_API int mp_next_written(const mp_pager *p, uint64_t from, uint64_t *id);

/* Reads the file again into an MP_RDONLY or MP_PREVIEW handle, as closing it
 * and opening it again with the same flags would (a preview recovers again), but
 * keeps the descriptor, its lock and the mapping: pages whose bytes did not
 * change are not faulted in again. For tools that examine one file over and over
 * (a crash checker writes image after image into it). MP_EINVAL for a writer. On
 * failure the handle holds no pages until a reload succeeds, and `why` (may be
 * NULL) says what is wrong, as mp_open_explain does. */
MP_API int mp_reload(mp_pager *p, char *why, size_t whylen);

/* As mp_reload, and `*same` (may be NULL) says whether the handle kept what it knew: an
 * MP_RDONLY handle whose file has the same size, and whose basis (the pages its last load
 * read: mp_reload_basis) holds the bytes it held at that load, reads nothing again, and
 * every answer it gives is the last load's (mp_check's with MP_CHECK_NO_CONTENT included;
 * pages' contents are read from the file as always). A preview always loads again, and
 * so do a reader's first reload (an open keeps no copies of what it read), every reload
 * of an MP_BASIS_WATCHED handle, and every reload of a 0.3 file whose basis is larger than
 * a 0.2 file's can be at its page size (3 + 2 * (page_size - 28) / 17 pages: 481 at 4 KiB;
 * a 0.3 basis holds two leaf slots a group, and a copy of them all would be as large as the
 * file's metadata). */
MP_API int mp_reload_same(mp_pager *p, bool *same, char *why, size_t whylen);

/* The pages whose bytes mp_reload_same compares to keep a reader's state, up to `cap` of
 * them into `ids`, and how many there are into *n: for a 0.2 file page 0, the metadata
 * pages and both copies of each directory block; for a 0.3 file page 0 (the superblock),
 * every page of both root blocks, of the sector copy's block if the superblock names one,
 * and of both leaf slots of every group, and the first page of each directory block's
 * current copy (the directory page; a load reads nothing else of either copy). A caller
 * that writes the file itself and knows that none of them changed, nor the file's size,
 * since the handle's last load or reload may take the handle as it stands: that reload
 * would find nothing changed. MP_ENOENT when the handle keeps no basis (a writer, a
 * preview, a handle not yet reloaded, a load that found an append's intent or salvaged
 * page 0, or that read a 0.3 superblock from its sector copy): only a reload tells then. */
MP_API int mp_reload_basis(const mp_pager *p, uint64_t *ids, size_t cap, size_t *n);

/* Unmaps and closes; NULL is accepted. Returns MP_EIO if close(2) failed. */
MP_API int mp_close(mp_pager *p);

MP_API const char *mp_strerror(int code);

MP_API size_t mp_page_size(const mp_pager *p);
MP_API uint64_t mp_page_count(const mp_pager *p); /* pages in the file, reserved ones included */
MP_API uint64_t mp_free_count(const mp_pager *p);
/* Most pages this file can ever hold: at its page size, (page_size - 28) * 8 for a 0.2
 * file; 2^32 for a 0.3 file. */
MP_API uint64_t mp_capacity(const mp_pager *p);

/* ---- Regular pages ---------------------------------------------------------
 * A regular page is yours: write it through mp_page() and make it durable with
 * mp_sync_page() or mp_sync(). Its allocation is durable when mp_alloc returns. */
MP_API int mp_alloc(mp_pager *p, uint64_t *id);
MP_API int mp_free(mp_pager *p, uint64_t id);
/* All or nothing, one commit each. mp_free_bulk checks every id (allocated,
 * regular, no duplicates) before it changes anything. */
MP_API int mp_alloc_bulk(mp_pager *p, size_t n, uint64_t *ids);
MP_API int mp_free_bulk(mp_pager *p, size_t n, const uint64_t *ids);
/* Pointer to the page in the mapping: valid until the next call that may grow
 * the file (mp_alloc, mp_alloc_bulk, mp_protected_alloc) or mp_close. Read-only
 * memory when the pager is MP_RDONLY. */
MP_API int mp_page(mp_pager *p, uint64_t id, void **data);
MP_API int mp_sync_page(mp_pager *p, uint64_t id); /* make one regular page's data durable */
MP_API int mp_sync(mp_pager *p);                   /* make every regular page's data durable */
/* Iteration over allocated regular pages (pages used internally by protected
 * pages are excluded): finds the smallest allocated regular id >= from.
 *   for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK; id++) ...
 * Returns MP_ENOENT when there is none. */
MP_API int mp_next_regular(const mp_pager *p, uint64_t from, uint64_t *id);
/* The same set as a bitmap, for tools that compare allocation states in bulk:
 * words[k] bit i is set when page 64 * (first_word + k) + i is an allocated
 * regular page (words past the file's pages are 0). */
MP_API int mp_regular_bits(const mp_pager *p, uint64_t first_word, uint64_t *words, size_t n);

/* ---- Protected pages -------------------------------------------------------
 * A protected page is a copy-on-write page backed by two physical pages: a
 * committed write is all there after a power cut, or not at all. Ids are
 * directory slots, not physical page numbers. */
MP_API int mp_protected_alloc(mp_pager *p, uint64_t *id); /* content starts zeroed */
MP_API int mp_protected_free(mp_pager *p, uint64_t id);   /* discards a staged write */
/* Pointer to the committed content (page_size bytes), checked against its CRC:
 * MP_ECORRUPT if it does not match. Valid as for mp_page. */
MP_API int mp_protected_read(mp_pager *p, uint64_t id, const void **data);
/* Where the committed content is, without reading it: its page in the file and
 * the checksum its directory entry holds (CRC-32, as zlib's crc32 computes it).
 * For tools that verify content themselves and remember the result across
 * reloads (a crash checker); mp_protected_read is the checked way to read. */
MP_API int mp_protected_where(const mp_pager *p, uint64_t id, uint64_t *page, uint32_t *crc);
/* Stages a write: *data points to a page_size buffer that starts with the
 * current content. Valid as for mp_page. Nothing changes durably until
 * mp_protected_commit; MP_EBUSY if a write is already staged for this id. */
MP_API int mp_protected_begin(mp_pager *p, uint64_t id, void **data);
/* Makes the staged write the committed content. On failure the write stays staged:
 * call it again (what the failed msync was writing is written again) or abort it. */
MP_API int mp_protected_commit(mp_pager *p, uint64_t id);
MP_API int mp_protected_abort(mp_pager *p, uint64_t id);
MP_API int mp_next_protected(const mp_pager *p, uint64_t from, uint64_t *id);

/* ---- Consistency check -----------------------------------------------------
 * Checks the file as it is on the mapping against every structural rule
 * (reserved pages allocated, free count equal to the bitmap, no bits past the
 * page count, page count within the file, directory references and entries
 * inside the file and allocated, no physical page used twice, CRCs), and the
 * in-memory state against the file. Each finding is passed to `report` (may be
 * NULL) as one sentence; *findings (may be NULL) receives their number.
 * Returns MP_OK when the check ran (whatever it found). */
typedef void (*mp_report_fn)(void *arg, const char *finding);
MP_API int mp_check(mp_pager *p, mp_report_fn report, void *arg, unsigned *findings);
/* As mp_check; with MP_CHECK_NO_CONTENT the structure alone: protected pages'
 * content is not read to verify its checksum (mp_protected_read still does), so
 * the cost no longer grows with the protected pages' data. */
#define MP_CHECK_NO_CONTENT 0x1u
MP_API int mp_check_flags(mp_pager *p, unsigned flags, mp_report_fn report, void *arg, unsigned *findings);

/* Pages allocated in the bitmap that no structure owns, left by a protected
 * alloc/free that a power cut interrupted (or that failed part-way). A read-write
 * open reclaims them, and so does the next mutating call of a handle whose call
 * failed; until then they count as free in mp_free_count. For an MP_PREVIEW
 * handle, the pages its recovery freed in memory. */
MP_API uint64_t mp_leaked_count(const mp_pager *p);

/* What recovery does when the file is opened read-write: for a read-only handle,
 * what a writer's open would do; for a read-write or MP_PREVIEW handle, what its
 * open did (a preview's, in memory only). A
 * mask of MP_RECOVER_* bits; 0 means the file needed nothing (and a writer's open
 * does not write to it, but for one case no bit tells: a 0.2 file below 4 KiB pages that an
 * upgrade to 0.3 left longer than its pages, whose sector copy past them has its magic zeroed,
 * FORMAT.md 3.8; none of the file's pages changes). */
#define MP_RECOVER_PAGE0 0x1u    /* a torn write of page 0 is resolved and page 0 rewritten */
#define MP_RECOVER_METADATA 0x2u /* the current metadata copy is damaged: the one before is used */
#define MP_RECOVER_RECLAIM 0x4u  /* pages an interrupted protected alloc/free left are freed */
#define MP_RECOVER_MIRROR 0x8u   /* directory copies are made to agree again */
#define MP_RECOVER_ADOPT 0x10u   /* a file another writer made is adopted (see README) */
/* Page 0 lists no directory blocks and its section checksum is stale (another
 * writer, or a create that a power cut interrupted in an earlier version, may leave
 * it so; FORMAT.md does not check it then): the checksum alone is rewritten, so
 * that the first directory block's append can rely on it. */
#define MP_RECOVER_CHECKSUM 0x20u
/* Page 0's first sector held garbage (a torn write on a drive without atomic sectors):
 * page 0 is rebuilt from the metadata and directory pages and written whole (see README). */
#define MP_RECOVER_SALVAGE 0x40u
/* A 0.3 file: a commit that a power cut interrupted left leaf slots newer than the root,
 * whose magic is zeroed so that no later root can make them current (FORMAT.md 3.3). */
#define MP_RECOVER_LEAVES 0x80u
MP_API unsigned mp_recovery(const mp_pager *p);

/* What each page of a file is, read from a copy of the file held in memory (`len` bytes)
 * without opening it: for tools that classify the writes they see (crashcheck's coverage).
 * kinds[id] gets an MP_PAGE_* value for pages 0 .. npages - 1 (MP_PAGE_UNKNOWN past the
 * image, or where no metadata copy is whole). Pages named by either copy of a directory
 * block count as that block's, so an operation in flight is seen. A 0.3 image: MP_PAGE_SUPERBLOCK
 * for page 0's metadata block (but page 3 of a file upgraded at 1 KiB pages, a regular page:
 * FORMAT.md 3.8), MP_PAGE_METADATA for the roots', the sector copy's and every leaf slot's, the
 * rest by the current leaves and directory of the valid root with the higher generation
 * (protected pages by the current directory copies only: a 0.3 inactive copy may name pages
 * freed since). MP_ECORRUPT or
 * MP_EVERSION if the superblock is not one this library reads, MP_ENOMEM without memory for
 * a copy of page 0. */
#define MP_PAGE_UNKNOWN 0
#define MP_PAGE_SUPERBLOCK 1
#define MP_PAGE_METADATA 2
#define MP_PAGE_DIRECTORY 3
#define MP_PAGE_PROTECTED 4 /* either copy of a protected page */
#define MP_PAGE_REGULAR 5
#define MP_PAGE_FREE 6
MP_API int mp_image_page_kinds(const void *image, size_t len, uint8_t *kinds, uint64_t npages);
/* The same for the file mp_create_flags(path, page_size, flags, ...) is writing, before its
 * superblock (written last) makes it one mp_image_page_kinds reads: the create's fixed layout.
 * With MP_FORMAT_3, six metadata blocks (FORMAT.md 3.5): block 0 MP_PAGE_SUPERBLOCK, blocks 1
 * to 4 (the roots, group 0's leaf slots) MP_PAGE_METADATA, block 5 MP_PAGE_FREE; without it, 0.2's
 * four pages: page 0 the superblock, pages 1 and 2 the metadata copies, page 3 free.
 * MP_PAGE_UNKNOWN past the create's file. MP_EINVAL for a page size or flags mp_create_flags
 * refuses. */
MP_API int mp_create_page_kinds(size_t page_size, unsigned flags, uint8_t *kinds, uint64_t npages);

#ifdef __cplusplus
}
#endif
#endif /* MAPPEDPAGES_H */
