/* errors.c: mp_strerror, one sentence for every error code the library returns. */
#include "mappedpages.h"

const char *mp_strerror(int code) {
  switch (code) {
    case MP_OK: return "success";
    case MP_EINVAL: return "invalid argument (NULL pointer, bad page size or flags, or an id that is not of this kind)";
    case MP_ENOMEM: return "out of memory";
    case MP_EIO: return "a system call failed: the operation was not committed";
    case MP_EEXIST: return "the file exists and is not the leftover of an interrupted create";
    case MP_ENOENT: return "no such file, or no more ids";
    case MP_ECORRUPT: return "the file is not a valid mappedpages file or is damaged";
    case MP_EVERSION: return "the file has an unsupported format version or page size";
    case MP_EFULL: return "the file is full: no more pages fit in one bitmap page (0.2) or in 2^32 pages (0.3), or no more directory blocks";
    case MP_ENOSPC: return "no space left on the file system";
    case MP_ERDONLY: return "the pager was opened read-only";
    case MP_ENOTALLOC: return "the page or protected id is not allocated";
    case MP_EBUSY: return "the file is locked by another writer, or a write is already staged for this protected page";
    case MP_ENOTSTAGED: return "no write is staged for this protected page (call mp_protected_begin first)";
    case MP_EINCOMPLETE: return "the file is the leftover of an interrupted create; mp_create or MP_CREATE replaces it";
    case MP_EPOISONED: return "an earlier I/O error left the durable state uncertain: close and reopen the file";
    case MP_EACCES: return "permission denied";
    default: return "unknown error code";
  }
}
