/* case.h: crashcheck's case files: a pager workload plus a fault schedule, one format
 * for hand-written workloads, fuzz inputs and reproducers, in binary and in text. */
#ifndef CC_CASE_H
#define CC_CASE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Error codes of the harness (cc_ prefix); 0 is success. */
enum {
  CC_OK = 0,
  CC_EINVAL = -1,  /* bad argument or unparsable text */
  CC_ENOMEM = -2,
  CC_EIO = -3,     /* reading or writing a file failed */
  CC_ESETUP = -4,  /* the environment is missing something (shim, directory) */
};
const char *cc_strerror(int code);

/* Operations. Arguments select among what exists when the operation runs (the
 * k-th allocated regular page, modulo their number), so every byte string is a
 * valid, meaningful workload; an operation with nothing to act on does nothing. */
typedef enum {
  CC_ALLOC = 0,   /* mp_alloc */
  CC_FREE,        /* mp_free of regular page #a */
  CC_ALLOC_BULK,  /* mp_alloc_bulk of 1 + a % 32 pages */
  CC_FREE_BULK,   /* mp_free_bulk of 1 + b % 32 regular pages from #a on */
  CC_WRITE,       /* fill regular page #a from seed b, no sync */
  CC_WRITE_SYNC,  /* fill regular page #a from seed b, then mp_sync_page */
  CC_SYNC,        /* mp_sync */
  CC_PALLOC,      /* mp_protected_alloc */
  CC_PFREE,       /* mp_protected_free of protected page #a */
  CC_PWRITE,      /* begin, fill from seed b, commit: protected page #a */
  CC_PABORT,      /* begin, fill from seed b, abort: protected page #a */
  CC_REOPEN,      /* mp_close, then mp_open read-write (recovery runs) */
  CC_OP_KINDS
} cc_op_kind;

typedef struct cc_op {
  uint8_t kind; /* cc_op_kind */
  uint8_t a, b;
} cc_op;

/* The fault schedule. Tear and writeback use libpowercut's vocabulary. */
typedef enum { CC_TEAR_NONE, CC_TEAR_ALL, CC_TEAR_PREFIX, CC_TEAR_SUFFIX, CC_TEAR_RANDOM, CC_TEAR_GARBAGE, CC_TEAR_KINDS } cc_tear;
typedef enum { CC_WB_NONE, CC_WB_ALL, CC_WB_RANDOM, CC_WB_KINDS } cc_writeback;

typedef struct cc_schedule {
  uint32_t cut_step;   /* 0: no cut (the workload runs to its end) */
  uint8_t tear;        /* cc_tear */
  uint8_t tear_n;      /* prefix/suffix count, garbage sector (1-based) */
  uint8_t writeback;   /* cc_writeback */
  uint8_t seed;        /* random tear/writeback subsets and garbage bytes */
} cc_schedule;

#define CC_MAX_OPS 16384

typedef struct cc_case {
  uint32_t page_size;   /* 1024, 2048, 4096, 8192 or 16384 */
  uint32_t sector;      /* 512 or 4096 */
  cc_schedule sched;
  /* R7: after recovering from `sched`, the follow-up workload (cc_follow_up) runs
   * on the recovered file and power is cut again here. Text form only. */
  cc_schedule again;
  /* --errors: the call at step error.step fails with errno error.err (EIO, ENOSPC, ...),
   * leaving the part of its sectors error.tear takes durable (tear, tear_n, seed: none,
   * all, prefix:N, suffix:N, random). Text form only; step 0: no error. */
  struct {
    uint32_t step;
    int err;
    cc_schedule tear;
  } error;
  /* Power is cut only in operation explore_from and the ones after it (1-based; 0: every
   * step, the create too): the operations before it run uncut, to bring the file to a size
   * or shape (a full directory block at 16 KiB pages) that would cost minutes to explore
   * all the way. Text form only ("explore-from N"). */
  size_t explore_from;
  /* The pager file the workload starts from instead of mp_create: one another writer
   * made (corpus/interop/), gzipped or not, so that its first writer open (the adoption)
   * is cut and checked like any operation. An absolute path, resolved when the case is
   * read; "" for a fresh file. The file's page size is the case's. Text form only. */
  char image[1024];
  /* The workload's handles are opened with MP_SPARSE (the file grows by ftruncate, the
   * pages the pager writes into reserved first); a created file is reopened so right after
   * mp_create, in the create. Text "sparse", binary header byte 1's CC_HDR_SPARSE. */
  bool sparse;
  /* The file is created in the 0.3 format ("format 3": mp_create_flags with MP_FORMAT_3), or
   * created 0.2 and upgraded by the first allocation that outgrows 0.2 ("upgrade": the
   * workload's writer handles opened with MP_FORMAT_3). Text "format 3" and "upgrade", binary
   * header byte 1's CC_HDR_FORMAT3 and CC_HDR_UPGRADE. */
  bool format3, upgrade;
  size_t nops;
  cc_op ops[CC_MAX_OPS];
} cc_case;

/* Binary form: an 8-byte header (page size, flags, cut step u16 LE, tear, tear n,
 * writeback, seed), then 3 bytes per operation. Every byte string decodes: missing
 * header bytes read as 0, a trailing partial operation is dropped, values are
 * taken modulo their range, unknown flag bits are ignored, and operations past
 * CC_MAX_OPS are ignored. The flags (byte 1) began as the sector bit alone; the others
 * came with the 0.3 format, so a case saved before them (byte 1 is 0 or 1) decodes as it
 * did: a 0.2 file, handles opened without flags. */
#define CC_HEADER_SIZE 8
#define CC_HDR_SECTOR_4K 0x01u /* 4096-byte sectors (else 512) */
#define CC_HDR_FORMAT3 0x02u   /* "format 3" */
#define CC_HDR_SPARSE 0x04u    /* "sparse" */
#define CC_HDR_UPGRADE 0x08u   /* "upgrade" */
void cc_case_decode(const uint8_t *data, size_t len, cc_case *out);
/* Writes the binary form; returns the number of bytes (CC_HEADER_SIZE + 3 nops). */
size_t cc_case_encode(const cc_case *c, uint8_t *out, size_t cap);
void cc_case_default(cc_case *c); /* 4096-byte pages, 512-byte sectors, no ops, no cut */

/* Text form: a line per item; '#' starts a comment.
 *   crashcheck-case 1
 *   page-size 4096
 *   sector 512
 *   cut 17 tear prefix:2 writeback none seed 5     (or: cut none)
 *   again 4 tear all writeback none seed 0         (optional: R7, a second cut)
 *   error 12 EIO prefix:1                          (optional: the call at step 12 fails,
 *                                                   that part of its sectors written) 
 *   image ../interop/protected-4k.img.gz           (optional: start from this file, not
 *                                                   a new one; relative to the case file)
 *   alloc | free A | alloc-bulk A | free-bulk A B | write A B | write-sync A B | sync
 *   palloc | pfree A | pwrite A B | pabort A B | reopen
 * An image must be a mappedpages file (gzipped or not) that exists when the case is read;
 * its page size is the case's (a page-size line that says otherwise is refused), and it
 * does not go with an error line. cc_case_parse_text reports the first bad line in *why
 * (may be NULL); it resolves a relative image path against the working directory,
 * cc_case_load against the case file's directory. */
int cc_case_parse_text(const char *text, cc_case *out, char *why, size_t whylen);
/* Prints the image as its absolute path; cc_case_save_text writes it relative to the
 * directory the case is saved in, so that a reproducer replays from where it is. */
void cc_case_print_text(const cc_case *c, FILE *f);
const char *cc_op_name(int kind);
const char *cc_tear_name(int tear);
const char *cc_writeback_name(int wb);
/* "prefix:2", "random:5", "none", ... */
void cc_schedule_tear_text(const cc_schedule *s, char *buf, size_t len);

/* Reads a case file in either form: text if its first line that is not blank or
 * a '#' comment is "crashcheck-case 1", binary otherwise (so any fuzzer crash file replays as it is). */
int cc_case_load(const char *path, cc_case *out, char *why, size_t whylen);
/* The libpowercut spelling of the case's error: "STEP:ERRNO:TEAR" (POWERCUT_ERROR). */
void cc_error_spec(const cc_case *c, char *buf, size_t len);
/* "EIO", "ENOSPC" or the number; and back (-1: not an errno). */
const char *cc_errno_name(int err, char *buf, size_t len);
int cc_errno_parse(const char *s);
/* The binary form has no image (crashcheck encode refuses a case with one; the explorer's
 * recorded run gets the image's copy as an existing file). */
int cc_case_save_binary(const cc_case *c, const char *path);
int cc_case_save_text(const cc_case *c, const char *path);

/* Writes the case's image (decompressed if gzipped) to `to`, replacing it: the file a run of
 * the case starts from. CC_EIO with `why` if the image cannot be read or `to` written. */
int cc_case_image_copy(const cc_case *c, const char *to, char *why, size_t whylen);

/* The follow-up workload R7 runs on a recovered file: a few operations of every
 * kind that changes the allocation state or protected content. */
void cc_follow_up(cc_case *out, uint32_t page_size, uint32_t sector);

/* Deterministic content for a page write: fills `len` bytes from (seed, id). */
void cc_fill(uint8_t *buf, size_t len, uint64_t seed, uint64_t id);
uint64_t cc_hash(const void *buf, size_t len);

#endif
