/* model.c: the durability model: per tracked file, volatile and durable content and dirty
 * sectors; steps, syncs, fsync-gate loss, and crash images with tears and early writeback. */
#include "powercut.h"
#include "handover.h"
#include "zeroruns.h"

#include <stdlib.h>
#include <string.h>

/*
 * The fault model (see DESIGN.md) in the words of this file:
 *
 * - The volatile content is what the process sees: page cache and mappings. The durable
 *   content is what a power cut leaves on the disk. Both are kept in full, in memory, so that
 *   an image is a copy plus the changes of the cut step; the shim keeps a second copy of the
 *   file rather than reading the real one so that the live shim and the trace reader run the
 *   very same code and cannot disagree about an image.
 * - A sector is dirty when something wrote it since its last sync. Dirtiness is what the
 *   kernel tracks, not a comparison: rewriting the same bytes dirties a sector again, which
 *   matters after an fsync error dropped it (fsync-gate). A dirty sector whose bytes equal the
 *   durable ones has nothing to write, so tears and writeback only consider sectors that are
 *   dirty AND differ from durable.
 * - Dirty sectors live in a bitmap (membership) plus an unordered list (enumeration), so that
 *   a sync costs in proportion to the dirty sectors or the synced range, whichever is
 *   smaller, and never to the file size.
 * - Durable bytes past the durable size are kept zero (a hole reads as zeros; a shrink frees
 *   the blocks), volatile bytes past the volatile size likewise.
 * - A step's syncs are collected while the step is open and applied when it ends: in between,
 *   the step is "in flight" and pc_model_image tears it. The sectors a step makes durable
 *   (its set D, in ascending (file, offset) order) exclude sectors wholly past the volatile
 *   size: a shrink frees those blocks only with the size change, never sector by sector.
 * - The size change of a step is metadata that reaches the disk after the step's data (like
 *   ext4's data=ordered journal commit): it is in the image only if every sector of D for
 *   that file landed (tear all, garbage, a prefix/suffix covering D, a random draw that took
 *   all of them). A tear of none keeps the old size even when D is empty.
 * - Early writeback decides each dirty sector outside D, and the volatile size of each file,
 *   independently: all of them, none, or a seeded coin each. Each sector is decided exactly
 *   once (by the tear if in D, else by writeback), so writeback all + tear all is the
 *   volatile state, and writeback all + tear none on an fsync step is the durable state.
 * - A failed sync with an outcome (pc_model_step_fail; the shim's POWERCUT_ERROR=STEP:ERRNO:TEAR)
 *   ends its step with the tear's part of D durable, as a cut would have left it, and the
 *   rest of its ranges' dirty data lost (fsync-gate): the disk after a failed fsync is any
 *   subset of what it was writing, and the kernel does not try again.
 * - Coins are a hash of (seed, purpose, file, sector), not a stream, so a decision never
 *   depends on enumeration order: (model, step, crash choices) -> one image, bit for bit.
 * - Names (the namespace model, strict POSIX) are directory entries apart from the files
 *   (inodes) they hold: each name has a volatile target (what the process sees: a file id,
 *   none, or a file the model does not track) and a durable one. A file's first name comes
 *   with pc_model_add_file, durable unless pc_model_created says the process made it; rename,
 *   unlink and link change the volatile targets of the names they touch (pc_model_rename,
 *   _unlink, _link). Content belongs to the file, not the name: a renamed file keeps its data
 *   model, and a name whose removal is not durable still shows its file's content as of the
 *   cut. A name's change becomes durable when a step that fsyncs its directory ends
 *   (pc_model_dir_sync_path): a rename across directories therefore needs both: the new name
 *   lands with its new parent's fsync, the old name's removal with its old parent's, and a cut
 *   between the two may leave both names (one file, two links) or neither (the file lost),
 *   the strictest reading of POSIX, which promises nothing before the fsyncs. A name is
 *   metadata like the size: a cut in the directory's fsync lands it with every tear but none
 *   when every sector of the step's D landed (D is empty for a directory fsync), and early
 *   writeback may have written it already: writeback all does, random draws a coin per
 *   namespace operation (both names of a rename share one), so a rename written back early
 *   is written whole. A name changed twice before its fsync is either durable or in its
 *   latest state, never in between. What an image holds for a name is
 *   pc_model_image_name's answer; pc_model_image_exists(id) asks it of file id's first name.
 * - The ext4 profile (pc_model_set_journal; data=ordered with auto_da_alloc) replaces that
 *   landing rule: every name change (a creation included) is an operation of one journal,
 *   kept in program order until a commit applies them all to the durable targets. A commit
 *   is an fsync of a directory, or of a file changed since the last commit
 *   (pc_model_journal_commit), and lands as a name does with its directory's fsync above.
 *   Between commits an image holds a prefix of the journal, as long as writeback says
 *   (none, all, or a seeded length): the periodic commit may have come at any point, but
 *   never commits a later operation without an earlier one. A rename over a name holding a
 *   file syncs the renamed file in its step (auto_da_alloc starts that writeback and
 *   data=ordered commits it first), and the prefix of an image of that step stops before
 *   the rename unless all of that file's data landed.
 */

typedef struct {
    char *name;
    uint8_t *vol, *dur;  /* cap bytes each, zero past their sizes */
    uint64_t vsize, dsize, cap;
    uint64_t *dbits;     /* cap / sector bits */
    uint64_t *dlist;     /* sector indexes; may hold stale entries whose bit is clear */
    size_t dn, dcap, dlive;
    uint32_t name_ix; /* its first name in pc_model.names */
    uint32_t name_was; /* what that name held durably before the file was added */
    int symlink;       /* a symbolic link: the content is its target */
} mfile;

/* A directory entry: the file it holds as the process sees it and on the disk. */
typedef struct {
    char *path;
    uint32_t vol, dur; /* a file id, PC_NAME_NONE, PC_NAME_OTHER or PC_NAME_DIR */
    uint64_t key;      /* the early-writeback coin of the operation that last changed it */
    int pending;       /* made durable by the open step (an fsync of its directory) */
} mname;

/* The ext4 profile (pc_model_set_journal): a namespace operation not committed yet, in
 * program order. Its changes set names to targets; `file` is the file it is about (for the
 * fsync that commits it), `flush` the file whose dirty data it flushed (auto_da_alloc:
 * PC_NAME_NONE when none) in step `step` (0: outside any step). */
typedef struct {
    uint32_t ix, target;
} jchange;

typedef struct {
    uint64_t key, step;
    uint32_t file, flush;
    int created;
    uint32_t nch;
    jchange ch[2];
} jop;

typedef struct {
    uint32_t id;
    uint64_t off, len;
} prange;

typedef struct {
    uint32_t id;
    uint64_t sec;
} psec;

struct pc_model {
    uint32_t sector;
    mfile *files;
    uint32_t nfiles;
    size_t fcap;
    uint64_t step;
    int in_step;
    prange *pend;
    size_t npend, pcap;
    psec *dk; /* D of the open step, valid when dk_valid */
    size_t ndk, dkcap;
    int dk_valid;
    /* The early-writeback candidates of file wb_id in the open step (dirty, differing from
     * durable, outside D), ascending: the same for every crash choice of the step, which an
     * explorer asks for by the thousand. Valid while wb_valid; computing D again (after any
     * change, which drops D) drops it. */
    uint64_t *wb;
    size_t nwb, wbcap;
    uint32_t wb_id;
    int wb_valid;
    int failing;     /* pc_model_step_fail: the open step's syncs end torn by `fail` */
    pc_crash fail;
    uint64_t *scratch; /* sector list scratch for range queries */
    size_t scap;
    mname *names;
    uint32_t nnames;
    size_t ncap;
    uint64_t nsops; /* namespace operations so far: each one's coin key */
    uint32_t ndirs;  /* directory changes so far (mkdir, rmdir): names then look up their parents */
    int journal;     /* the ext4 profile: names go through the journal below */
    jop *jops;       /* its operations not committed yet, in program order */
    size_t njops, jcap;
    int jcommit;     /* the open step commits the journal when it ends */
};

const char *pc_strerror(int code)
{
    switch (code) {
    case PC_OK: return "success";
    case PC_ENOMEM: return "out of memory";
    case PC_EINVAL: return "invalid argument or specification";
    case PC_EIO: return "input/output error on a trace or image";
    case PC_EFORMAT: return "not a powercut trace of a supported version";
    case PC_ERANGE: return "step, file or offset out of range";
    case PC_ENOENT: return "no such tracked file";
    case PC_ESTATE: return "call not valid in the current state";
    default: return "unknown powercut error";
    }
}

const char *pc_call_name(int call)
{
    static const char *const names[] = {
        "none", "write", "pwrite", "writev", "pwritev", "ftruncate", "fallocate",
        "posix_fallocate", "msync", "fsync", "fdatasync", "sync_file_range", "fsync-dir",
        "fdatasync-dir", "pwritev2", "copy_file_range", "sendfile", "exit", "rename", "unlink",
        "link", "sync", "syncfs", "truncate", "mkdir", "rmdir", "symlink",
    };
    _Static_assert(sizeof names / sizeof *names == PC_CALL_COUNT_, "a name per call");
    if (call < 0 || call >= PC_CALL_COUNT_) return "?";
    return names[call];
}

/* ---- deterministic randomness: splitmix64, our own so that libc's rand() state and
 * implementation never change an image. ---- */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A coin is a function of (seed, purpose, file id) and the sector; the first part, the same
 * for every sector of a file, is computed once where many sectors are flipped for. */
static uint64_t coin_prefix(uint64_t seed, uint64_t purpose, uint64_t id)
{
    return mix64(mix64(seed ^ mix64(purpose)) ^ mix64(id + 0x51ed270b27eb2d4bULL));
}

static int coin_at(uint64_t prefix, uint64_t sec) { return (int)(mix64(prefix ^ sec) >> 63); }

static int coin(uint64_t seed, uint64_t purpose, uint64_t id, uint64_t sec)
{
    return coin_at(coin_prefix(seed, purpose, id), sec);
}

enum { PURPOSE_TEAR = 1, PURPOSE_WB = 2, PURPOSE_WB_SIZE = 3, PURPOSE_GARBAGE = 4, PURPOSE_WB_NAME = 5,
       PURPOSE_WB_JOURNAL = 6 };

/* ---- crash spec parsing ---- */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s) return PC_EINVAL;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end || s[0] == '-') return PC_EINVAL;
    *out = v;
    return PC_OK;
}

static int is_num(const char *s)
{
    uint64_t v;
    return s && parse_u64(s, &v) == PC_OK;
}

#define MAXTOK 8
static int split(char *s, char **tok)
{
    int n = 0;
    while (n < MAXTOK) {
        tok[n++] = s;
        char *c = strchr(s, ':');
        if (!c) break;
        *c = 0;
        s = c + 1;
    }
    return strchr(tok[n - 1], ':') ? -1 : n;
}

static int parse_tokens(char **tok, int n, pc_crash *c)
{
    int i = 0;
    int tear_seeded = 0, wb_seeded = 0;
    memset(c, 0, sizeof *c);
    if (i < n) {
        const char *t = tok[i++];
        if (!strcmp(t, "none")) c->tear = PC_TEAR_NONE;
        else if (!strcmp(t, "all")) c->tear = PC_TEAR_ALL;
        else if (!strcmp(t, "prefix") || !strcmp(t, "suffix") || !strcmp(t, "garbage")) {
            c->tear = t[0] == 'p' ? PC_TEAR_PREFIX : t[0] == 's' ? PC_TEAR_SUFFIX : PC_TEAR_GARBAGE;
            if (i >= n || parse_u64(tok[i++], &c->tear_n)) return PC_EINVAL;
        } else if (!strcmp(t, "random")) {
            c->tear = PC_TEAR_RANDOM;
            if (i < n && is_num(tok[i])) {
                parse_u64(tok[i++], &c->tear_seed);
                tear_seeded = 1;
            }
        } else return PC_EINVAL;
    }
    if (i < n) {
        const char *t = tok[i++];
        if (!strcmp(t, "none")) c->wb = PC_WB_NONE;
        else if (!strcmp(t, "all")) c->wb = PC_WB_ALL;
        else if (!strcmp(t, "random")) {
            c->wb = PC_WB_RANDOM;
            if (i < n && is_num(tok[i]) && i + 1 < n) { /* random:S:SEED */
                parse_u64(tok[i++], &c->wb_seed);
                wb_seeded = 1;
            }
        } else return PC_EINVAL;
    }
    if (i < n && parse_u64(tok[i++], &c->seed)) return PC_EINVAL;
    if (i != n) return PC_EINVAL;
    if (!tear_seeded) c->tear_seed = c->seed;
    if (!wb_seeded) c->wb_seed = c->seed;
    return PC_OK;
}

int pc_crash_parse(const char *spec, pc_crash *out)
{
    if (!spec || !out) return PC_EINVAL;
    char buf[256];
    if (strlen(spec) >= sizeof buf) return PC_EINVAL;
    strcpy(buf, spec);
    char *tok[MAXTOK];
    int n = split(buf, tok);
    if (n < 0) return PC_EINVAL;
    return parse_tokens(tok, n, out);
}

int pc_cut_parse(const char *spec, uint64_t *step, pc_crash *out)
{
    if (!spec || !step || !out) return PC_EINVAL;
    char buf[256];
    if (strlen(spec) >= sizeof buf) return PC_EINVAL;
    strcpy(buf, spec);
    char *tok[MAXTOK];
    int n = split(buf, tok);
    if (n < 0 || parse_u64(tok[0], step) || *step == 0) return PC_EINVAL;
    return parse_tokens(tok + 1, n - 1, out);
}

/* ---- names ---- */
static int grow(void **p, size_t *cap, size_t need, size_t elem);

static int find_name(const pc_model *m, const char *path, uint32_t *ix)
{
    for (uint32_t i = 0; i < m->nnames; i++)
        if (!strcmp(m->names[i].path, path)) {
            *ix = i;
            return 1;
        }
    return 0;
}

/* The entry of `path`, made (holding `was` both ways) when the model does not know it. */
static int name_entry(pc_model *m, const char *path, uint32_t was, uint32_t *ix)
{
    if (find_name(m, path, ix)) return PC_OK;
    if (grow((void **)&m->names, &m->ncap, m->nnames + 1, sizeof(mname))) return PC_ENOMEM;
    char *p = strdup(path);
    if (!p) return PC_ENOMEM;
    m->names[m->nnames] = (mname){p, was, was, 0, 0};
    *ix = m->nnames++;
    return PC_OK;
}

/* ---- files ---- */

int pc_model_new(uint32_t sector_size, pc_model **out)
{
    if (!out || sector_size < 1 || sector_size > (1u << 20)) return PC_EINVAL;
    pc_model *m = calloc(1, sizeof *m);
    if (!m) return PC_ENOMEM;
    m->sector = sector_size;
    *out = m;
    return PC_OK;
}

static void free_files(pc_model *m)
{
    for (uint32_t i = 0; i < m->nfiles; i++) {
        mfile *f = &m->files[i];
        free(f->name);
        free(f->vol);
        free(f->dur);
        free(f->dbits);
        free(f->dlist);
    }
    free(m->files);
    m->files = NULL;
    m->nfiles = m->fcap = 0;
    for (uint32_t i = 0; i < m->nnames; i++) free(m->names[i].path);
    free(m->names);
    m->names = NULL;
    m->nnames = 0;
    m->ncap = 0;
    m->nsops = 0;
    m->ndirs = 0;
    m->njops = 0;
}

void pc_model_free(pc_model *m)
{
    if (!m) return;
    free_files(m);
    free(m->pend);
    free(m->dk);
    free(m->wb);
    free(m->scratch);
    free(m->jops);
    free(m);
}

void pc_model_reset(pc_model *m)
{
    if (!m) return;
    free_files(m);
    m->step = 0;
    m->in_step = 0;
    m->npend = 0;
    m->ndk = 0;
    m->dk_valid = 0;
    m->failing = 0;
    m->jcommit = 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return PC_OK;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return PC_ENOMEM;
    *p = q;
    *cap = nc;
    return PC_OK;
}

/* Grows both content buffers (zero-filled) and the dirty bitmap to hold `size` bytes. */
static int ensure_cap(pc_model *m, mfile *f, uint64_t size)
{
    if (size <= f->cap) return PC_OK;
    uint64_t nc = f->cap ? f->cap : (uint64_t)m->sector * 8;
    while (nc < size) nc *= 2;
    nc = (nc + m->sector - 1) / m->sector * m->sector;
    if (nc > (uint64_t)SIZE_MAX / 2) return PC_ENOMEM;
    if (!f->cap) {
        /* A first allocation comes zeroed from calloc, which for a large file maps fresh zero
         * pages instead of writing them: a trace of a 16 MiB file opened once per R7
         * follow-up spent more time zeroing its two copies than checking images. */
        f->vol = calloc(1, nc);
        f->dur = calloc(1, nc);
        f->dbits = calloc((nc / m->sector + 63) / 64, 8);
        if (!f->vol || !f->dur || !f->dbits) return PC_ENOMEM;
        f->cap = nc;
        return PC_OK;
    }
    uint8_t *v = realloc(f->vol, nc);
    if (!v) return PC_ENOMEM;
    f->vol = v;
    uint8_t *d = realloc(f->dur, nc);
    if (!d) return PC_ENOMEM;
    f->dur = d;
    uint64_t oldwords = (f->cap / m->sector + 63) / 64, newwords = (nc / m->sector + 63) / 64;
    uint64_t *b = realloc(f->dbits, newwords * 8);
    if (!b) return PC_ENOMEM;
    f->dbits = b;
    memset(f->vol + f->cap, 0, nc - f->cap);
    memset(f->dur + f->cap, 0, nc - f->cap);
    memset(f->dbits + oldwords, 0, (newwords - oldwords) * 8);
    f->cap = nc;
    return PC_OK;
}

/* content NULL: zeros (pc__model_add_zeroed). */
static int add_file(pc_model *m, const char *name, const void *content, uint64_t size, uint32_t *id_out)
{
    if (grow((void **)&m->files, &m->fcap, m->nfiles + 1, sizeof(mfile))) return PC_ENOMEM;
    mfile *f = &m->files[m->nfiles];
    memset(f, 0, sizeof *f);
    f->name = strdup(name);
    if (!f->name) return PC_ENOMEM;
    if (ensure_cap(m, f, size ? size : 1)) {
        free(f->name);
        free(f->vol);
        free(f->dur);
        free(f->dbits);
        return PC_ENOMEM;
    }
    /* both copies come zeroed (calloc): only the blocks holding data are copied, so a file
     * of mostly zeros is neither copied nor faulted in there */
    for (uint64_t o = 0, e; content && (o = pc__next_data(content, size, o, &e)) < size; o = e) {
        memcpy(f->vol + o, (const uint8_t *)content + o, e - o);
        memcpy(f->dur + o, (const uint8_t *)content + o, e - o);
    }
    f->vsize = f->dsize = size;
    uint32_t ix;
    if (name_entry(m, name, PC_NAME_NONE, &ix)) {
        free(f->name);
        free(f->vol);
        free(f->dur);
        free(f->dbits);
        return PC_ENOMEM;
    }
    f->name_ix = ix;
    f->name_was = m->names[ix].dur;
    m->names[ix].vol = m->names[ix].dur = m->nfiles;
    m->names[ix].key = m->nfiles; /* a created name's coin: its file id */
    if (id_out) *id_out = m->nfiles;
    m->nfiles++;
    return PC_OK;
}

int pc_model_add_file(pc_model *m, const char *name, const void *content, uint64_t size,
                      uint32_t *id_out)
{
    if (!m || !name || (size && !content)) return PC_EINVAL;
    return add_file(m, name, content, size, id_out);
}

int pc__model_add_zeroed(pc_model *m, const char *name, uint64_t size, uint32_t *id_out)
{
    if (!m || !name) return PC_EINVAL;
    return add_file(m, name, NULL, size, id_out);
}

int pc__model_fill(pc_model *m, uint32_t id, uint64_t off, const void *data, uint64_t len)
{
    if (!m || id >= m->nfiles || (len && !data)) return PC_EINVAL;
    mfile *f = &m->files[id];
    if (off > f->dsize || len > f->dsize - off || f->vsize != f->dsize) return PC_EINVAL;
    memcpy(f->vol + off, data, len);
    memcpy(f->dur + off, data, len);
    return PC_OK;
}

int pc_model_file_count(const pc_model *m, uint32_t *count)
{
    if (!m || !count) return PC_EINVAL;
    *count = m->nfiles;
    return PC_OK;
}

int pc_model_file_name(const pc_model *m, uint32_t id, const char **name)
{
    if (!m || !name) return PC_EINVAL;
    if (id >= m->nfiles) return PC_ENOENT;
    *name = m->files[id].name;
    return PC_OK;
}

int pc_model_find_file(const pc_model *m, const char *name, uint32_t *id_out)
{
    if (!m || !name || !id_out) return PC_EINVAL;
    for (uint32_t i = 0; i < m->nfiles; i++)
        if (!strcmp(m->files[i].name, name)) {
            *id_out = i;
            return PC_OK;
        }
    return PC_ENOENT;
}

/* ---- dirty set ---- */
static int is_dirty(const mfile *f, uint64_t s)
{
    return (f->dbits[s / 64] >> (s % 64)) & 1;
}

static int mark_dirty(mfile *f, uint64_t s)
{
    if (is_dirty(f, s)) return PC_OK;
    if (grow((void **)&f->dlist, &f->dcap, f->dn + 1, sizeof(uint64_t))) return PC_ENOMEM;
    f->dbits[s / 64] |= 1ULL << (s % 64);
    f->dlist[f->dn++] = s;
    f->dlive++;
    return PC_OK;
}

static void clear_dirty(mfile *f, uint64_t s)
{
    if (!is_dirty(f, s)) return;
    f->dbits[s / 64] &= ~(1ULL << (s % 64));
    f->dlive--;
}

/* Drops stale list entries once they outnumber live ones, keeping enumeration O(dirty). */
static void compact(mfile *f)
{
    if (f->dn < 64 || f->dn < 2 * f->dlive) return;
    size_t j = 0;
    for (size_t i = 0; i < f->dn; i++)
        if (is_dirty(f, f->dlist[i])) {
            /* a sector may appear twice if it was cleared and dirtied again */
            f->dbits[f->dlist[i] / 64] &= ~(1ULL << (f->dlist[i] % 64));
            f->dlist[j++] = f->dlist[i];
        }
    for (size_t i = 0; i < j; i++) f->dbits[f->dlist[i] / 64] |= 1ULL << (f->dlist[i] % 64);
    f->dn = j;
    f->dlive = j;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Dirty sectors in [s0, s1), ascending, into m->scratch; cost min(range, dirty list). */
static int dirty_in(pc_model *m, mfile *f, uint64_t s0, uint64_t s1, size_t *n_out)
{
    size_t n = 0;
    uint64_t maxs = f->cap / m->sector;
    if (s1 > maxs) s1 = maxs;
    if (s0 >= s1) {
        *n_out = 0;
        return PC_OK;
    }
    compact(f);
    if ((s1 - s0) / 64 <= f->dn) {
        for (uint64_t s = s0; s < s1;) {
            uint64_t w = f->dbits[s / 64] >> (s % 64);
            if (!w) {
                s = (s / 64 + 1) * 64;
                continue;
            }
            s += (uint64_t)__builtin_ctzll(w);
            if (s >= s1) break;
            if (grow((void **)&m->scratch, &m->scap, n + 1, sizeof(uint64_t))) return PC_ENOMEM;
            m->scratch[n++] = s++;
        }
    } else {
        for (size_t i = 0; i < f->dn; i++) {
            uint64_t s = f->dlist[i];
            if (s < s0 || s >= s1 || !is_dirty(f, s)) continue;
            if (grow((void **)&m->scratch, &m->scap, n + 1, sizeof(uint64_t))) return PC_ENOMEM;
            m->scratch[n++] = s;
        }
        if (n > 1) qsort(m->scratch, n, sizeof(uint64_t), cmp_u64); /* (scratch is NULL until first grown) */
        size_t j = 0; /* drop duplicates */
        for (size_t i = 0; i < n; i++)
            if (!j || m->scratch[j - 1] != m->scratch[i]) m->scratch[j++] = m->scratch[i];
        n = j;
    }
    *n_out = n;
    return PC_OK;
}

static int differs(const pc_model *m, const mfile *f, uint64_t s)
{
    uint64_t o = s * m->sector;
    return memcmp(f->vol + o, f->dur + o, m->sector) != 0;
}

/* ---- volatile changes ---- */
static int get_file(pc_model *m, uint32_t id, mfile **f)
{
    if (!m) return PC_EINVAL;
    if (id >= m->nfiles) return PC_ENOENT;
    *f = &m->files[id];
    return PC_OK;
}

static int mark_range(pc_model *m, mfile *f, uint64_t off, uint64_t end)
{
    if (end <= off) return PC_OK;
    for (uint64_t s = off / m->sector; s <= (end - 1) / m->sector; s++)
        if (mark_dirty(f, s)) return PC_ENOMEM;
    return PC_OK;
}

/* The zeros a grow (or a write past the end) exposes in [lo, hi), lo the old volatile size:
 * they need writing only where durable still holds bytes of a longer past (a shrink not yet
 * synced). Past the durable size both read as zeros; marking that dirty would make every later
 * image scan a region as large as the growth (a file grown to 16 MiB and synced a page at a
 * time kept 30,000 dirty sectors equal to durable, and each image compared them all). */
static int mark_hole(pc_model *m, mfile *f, uint64_t lo, uint64_t hi)
{
    if (hi > f->dsize) hi = f->dsize;
    return mark_range(m, f, lo, hi);
}

int pc_model_write(pc_model *m, uint32_t id, uint64_t off, const void *data, uint64_t len)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    if (!len) return PC_OK;
    if (!data || off + len < off) return PC_EINVAL;
    if ((rc = ensure_cap(m, f, off + len))) return rc;
    memcpy(f->vol + off, data, len);
    /* A write past the end leaves a hole that reads as zeros; where durable still holds
     * bytes of a longer past (a shrink not yet synced), the hole must be written too. */
    if (off > f->vsize && (rc = mark_hole(m, f, f->vsize, off))) return rc;
    if (off + len > f->vsize) f->vsize = off + len;
    m->dk_valid = 0;
    return mark_range(m, f, off, off + len);
}

/* The trace's DIRTY record (trace.c): [off, off+len) written with the bytes it holds, as
 * pc_model_write of them would leave it; past the volatile size they read as zeros (the shim
 * writes none there, but a trace must replay whatever it says). */
int pc__model_dirty(pc_model *m, uint32_t id, uint64_t off, uint64_t len);
int pc__model_dirty(pc_model *m, uint32_t id, uint64_t off, uint64_t len)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    if (off + len < off) return PC_EINVAL;
    if (!len) return PC_OK;
    if (off + len > f->vsize) {
        uint64_t from = off > f->vsize ? off : f->vsize;
        uint8_t *z = calloc(1, off + len - from);
        if (!z) return PC_ENOMEM;
        rc = pc_model_write(m, id, from, z, off + len - from);
        free(z);
        if (rc) return rc;
        len = from - off;
        if (!len) return PC_OK;
    }
    m->dk_valid = 0;
    return mark_range(m, f, off, off + len);
}

int pc_model_truncate(pc_model *m, uint32_t id, uint64_t size)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    if ((rc = ensure_cap(m, f, size ? size : 1))) return rc;
    uint64_t lo = size < f->vsize ? size : f->vsize, hi = size < f->vsize ? f->vsize : size;
    if (size < f->vsize) memset(f->vol + size, 0, f->vsize - size);
    f->vsize = size;
    m->dk_valid = 0;
    /* A shrink's freed tail is written as zeros; so is a grow over a region where durable
     * still holds pre-shrink bytes. */
    return size > lo ? mark_hole(m, f, lo, hi) : mark_range(m, f, lo, hi);
}

/* ---- steps ---- */
int pc_model_step_begin(pc_model *m, uint64_t *step_out)
{
    if (!m) return PC_EINVAL;
    if (m->in_step) return PC_ESTATE;
    m->in_step = 1;
    m->npend = 0;
    m->dk_valid = 0;
    m->failing = 0;
    m->jcommit = 0;
    m->step++;
    if (step_out) *step_out = m->step;
    return PC_OK;
}

int pc_model_sync(pc_model *m, uint32_t id, uint64_t off, uint64_t len)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    if (!m->in_step) return PC_ESTATE;
    if (grow((void **)&m->pend, &m->pcap, m->npend + 1, sizeof(prange))) return PC_ENOMEM;
    if (len > UINT64_MAX - off) len = UINT64_MAX - off;
    m->pend[m->npend++] = (prange){id, off, len};
    m->dk_valid = 0;
    return PC_OK;
}

static int cmp_psec(const void *a, const void *b)
{
    const psec *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->sec < y->sec ? -1 : x->sec > y->sec;
}

/* D of the open step: dirty, differing sectors of its sync ranges that lie (at least partly)
 * within the volatile size, ascending by (file, sector). */
static int compute_dk(pc_model *m)
{
    if (m->dk_valid) return PC_OK;
    m->ndk = 0;
    m->wb_valid = 0;
    for (size_t i = 0; i < m->npend; i++) {
        mfile *f = &m->files[m->pend[i].id];
        uint64_t s0 = m->pend[i].off / m->sector;
        uint64_t end = m->pend[i].off + m->pend[i].len; /* saturated in pc_model_sync */
        if (end > f->vsize) end = f->vsize;
        uint64_t s1 = end ? (end + m->sector - 1) / m->sector : 0;
        size_t n;
        int rc = dirty_in(m, f, s0, s1, &n);
        if (rc) return rc;
        for (size_t j = 0; j < n; j++) {
            if (!differs(m, f, m->scratch[j])) continue;
            if (grow((void **)&m->dk, &m->dkcap, m->ndk + 1, sizeof(psec))) return PC_ENOMEM;
            m->dk[m->ndk++] = (psec){m->pend[i].id, m->scratch[j]};
        }
    }
    if (m->npend > 1 && m->ndk > 1) {
        qsort(m->dk, m->ndk, sizeof(psec), cmp_psec);
        size_t j = 0;
        for (size_t i = 0; i < m->ndk; i++)
            if (!j || cmp_psec(&m->dk[j - 1], &m->dk[i])) m->dk[j++] = m->dk[i];
        m->ndk = j;
    }
    m->dk_valid = 1;
    return PC_OK;
}

int pc_model_step_sector(pc_model *m, uint64_t j, uint32_t *id, uint64_t *sector)
{
    if (!m || !id || !sector) return PC_EINVAL;
    int rc = m->in_step ? compute_dk(m) : PC_OK;
    if (rc) return rc;
    if (!m->in_step || j >= m->ndk) return PC_ERANGE;
    *id = m->dk[j].id;
    *sector = m->dk[j].sec;
    return PC_OK;
}

int pc_model_step_sectors(pc_model *m, uint64_t *n_out)
{
    if (!m || !n_out) return PC_EINVAL;
    if (!m->in_step) {
        *n_out = 0;
        return PC_OK;
    }
    int rc = compute_dk(m);
    if (rc) return rc;
    *n_out = m->ndk;
    return PC_OK;
}

/* Does tear c take sector j of D (n sectors)? -1: not a tear a model can apply. */
static int tear_takes(const pc_crash *c, size_t j, size_t n, const psec *d)
{
    switch (c->tear) {
    case PC_TEAR_NONE: return 0;
    case PC_TEAR_ALL: case PC_TEAR_GARBAGE: return 1;
    case PC_TEAR_PREFIX: return j < c->tear_n;
    case PC_TEAR_SUFFIX: return c->tear_n >= n || j >= n - c->tear_n;
    case PC_TEAR_RANDOM: return coin(c->tear_seed, PURPOSE_TEAR, d->id, d->sec);
    default: return -1;
    }
}

static int clear_range(pc_model *m, mfile *f, uint64_t off, uint64_t len)
{
    uint64_t end = len > UINT64_MAX - off ? UINT64_MAX : off + len;
    uint64_t s0 = off / m->sector, s1 = end / m->sector + (end % m->sector != 0);
    size_t n;
    int rc = dirty_in(m, f, s0, s1, &n);
    if (rc) return rc;
    for (size_t j = 0; j < n; j++) clear_dirty(f, m->scratch[j]);
    return PC_OK;
}

/* A failed sync (injected error with an outcome): the tear's sectors of D reach the disk,
 * the size only as an image would have it (every sector of the file's D landed, tear not
 * none), and the dirty state of every synced range is dropped whether it landed or not: the
 * kernel marks the pages clean after a writeback error (fsync-gate). */
static int end_failed(pc_model *m)
{
    int rc = compute_dk(m);
    if (rc) return rc;
    for (uint32_t id = 0; id < m->nfiles; id++) {
        int synced = 0;
        for (size_t i = 0; i < m->npend; i++) synced |= m->pend[i].id == id;
        if (!synced) continue;
        mfile *f = &m->files[id];
        uint64_t mine = 0, landed = 0;
        for (size_t j = 0; j < m->ndk; j++) {
            int take = tear_takes(&m->fail, j, m->ndk, &m->dk[j]);
            if (m->dk[j].id != id) continue;
            mine++;
            if (!take) continue;
            landed++;
            uint64_t o = m->dk[j].sec * m->sector;
            memcpy(f->dur + o, f->vol + o, m->sector);
        }
        if (m->fail.tear != PC_TEAR_NONE && landed == mine) {
            if (f->vsize < f->dsize) memset(f->dur + f->vsize, 0, f->dsize - f->vsize);
            f->dsize = f->vsize;
        } else if (f->vsize > f->dsize) {
            /* sectors that landed past a size that did not are not part of the file */
            memset(f->dur + f->dsize, 0, f->vsize - f->dsize);
        }
    }
    for (size_t i = 0; i < m->npend; i++)
        if ((rc = clear_range(m, &m->files[m->pend[i].id], m->pend[i].off, m->pend[i].len))) return rc;
    return PC_OK;
}

int pc_model_step_fail(pc_model *m, const pc_crash *tear)
{
    if (!m || !tear) return PC_EINVAL;
    if (!m->in_step) return PC_ESTATE;
    if (tear->tear == PC_TEAR_GARBAGE || tear_takes(tear, 0, 1, &(psec){0, 0}) < 0) return PC_EINVAL;
    m->failing = 1;
    m->fail = *tear;
    return PC_OK;
}

static void journal_apply(pc_model *m, size_t n);

int pc_model_step_end(pc_model *m)
{
    if (!m) return PC_EINVAL;
    if (!m->in_step) return PC_ESTATE;
    int lands = !m->failing || m->fail.tear != PC_TEAR_NONE;
    for (uint32_t i = 0; i < m->nnames; i++) {
        mname *e = &m->names[i];
        if (e->pending && lands) e->dur = e->vol;
        e->pending = 0;
    }
    if (m->jcommit && lands) journal_apply(m, m->njops);
    m->jcommit = 0;
    if (m->failing) {
        int rc = end_failed(m);
        if (rc) return rc;
        m->npend = m->ndk = 0;
        m->dk_valid = m->in_step = m->failing = 0;
        return PC_OK;
    }
    int rc = compute_dk(m);
    if (rc) return rc;
    for (size_t i = 0; i < m->ndk; i++) {
        mfile *f = &m->files[m->dk[i].id];
        uint64_t o = m->dk[i].sec * m->sector;
        memcpy(f->dur + o, f->vol + o, m->sector);
    }
    for (size_t i = 0; i < m->npend; i++) {
        mfile *f = &m->files[m->pend[i].id];
        if ((rc = clear_range(m, f, m->pend[i].off, m->pend[i].len))) return rc;
        if (f->vsize < f->dsize) memset(f->dur + f->vsize, 0, f->dsize - f->vsize);
        f->dsize = f->vsize;
    }
    m->npend = 0;
    m->ndk = 0;
    m->dk_valid = 0;
    m->in_step = 0;
    return PC_OK;
}

int pc_model_lose(pc_model *m, uint32_t id, uint64_t off, uint64_t len)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    m->dk_valid = 0;
    return clear_range(m, f, off, len);
}

/* ---- names ---- */
/* Applies a namespace change to the volatile targets; durable: to the durable ones too. */
static void name_set(pc_model *m, uint32_t ix, uint32_t target, uint64_t key, int durable)
{
    m->names[ix].vol = target;
    m->names[ix].key = key;
    if (durable) m->names[ix].dur = target;
}

static uint64_t next_key(pc_model *m) { return ((uint64_t)1 << 32) + ++m->nsops; }

/* The ext4 profile: the journal's next operation (its changes are added by the caller). */
static int journal_push(pc_model *m, uint64_t key, uint32_t file, jop **out)
{
    if (grow((void **)&m->jops, &m->jcap, m->njops + 1, sizeof(jop))) return PC_ENOMEM;
    jop *o = &m->jops[m->njops++];
    memset(o, 0, sizeof *o);
    o->key = key;
    o->step = m->in_step ? m->step : 0;
    o->file = file;
    o->flush = PC_NAME_NONE;
    *out = o;
    return PC_OK;
}

/* The first n operations of the journal reach the disk: committed, they leave it. */
static void journal_apply(pc_model *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (uint32_t c = 0; c < m->jops[i].nch; c++) m->names[m->jops[i].ch[c].ix].dur = m->jops[i].ch[c].target;
    memmove(m->jops, m->jops + n, (m->njops - n) * sizeof(jop));
    m->njops -= n;
}

int pc_model_set_journal(pc_model *m)
{
    if (!m) return PC_EINVAL;
    if (m->nfiles || m->nnames) return PC_ESTATE;
    m->journal = 1;
    return PC_OK;
}

int pc_model_created(pc_model *m, uint32_t id)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    m->names[f->name_ix].dur = f->name_was;
    if (m->journal) { /* the creation is a journalled operation like any other */
        jop *o;
        if ((rc = journal_push(m, next_key(m), id, &o))) return rc;
        o->created = 1;
        o->ch[o->nch++] = (jchange){f->name_ix, id};
    }
    return PC_OK;
}

/* RENAME_EXCHANGE: one operation that swaps what two names hold. Both change with one coin
 * key, so early writeback writes the swap whole; under posix each name lands with its own
 * directory's fsync (across directories a cut between the two may leave one file under both
 * names, or the other: as for a rename, the strictest reading). The ext4 profile journals it
 * as one operation and flushes neither file's data: ext4 documents auto_da_alloc for a rename
 * over a file and a truncate, not for an exchange, so none is assumed (the stricter model). */
static int exchange(pc_model *m, uint32_t f, const char *to, int flags)
{
    uint32_t t;
    if (!find_name(m, to, &t) || m->names[t].vol == PC_NAME_NONE) return PC_ENOENT;
    if (t == f) return PC_OK;
    uint32_t a = m->names[f].vol, b = m->names[t].vol;
    uint64_t key = next_key(m);
    if (m->journal && !(flags & PC_NAME_DURABLE)) {
        jop *o;
        int rc = journal_push(m, key, a, &o);
        if (rc) return rc;
        o->ch[o->nch++] = (jchange){t, a};
        o->ch[o->nch++] = (jchange){f, b};
    }
    name_set(m, t, a, key, flags & PC_NAME_DURABLE);
    name_set(m, f, b, key, flags & PC_NAME_DURABLE);
    return PC_OK;
}

int pc_model_rename(pc_model *m, const char *from, const char *to, int flags)
{
    if (!m || !from || !to) return PC_EINVAL;
    uint32_t f, t;
    if (!find_name(m, from, &f)) return PC_ENOENT;
    uint32_t target = m->names[f].vol;
    if (target == PC_NAME_NONE) return PC_ENOENT;
    if (flags & PC_NAME_EXCHANGE) return exchange(m, f, to, flags);
    /* auto_da_alloc: a rename over a file starts the writeback of the renamed file's dirty
     * data, which data=ordered commits before the rename: as a sync in its step (refused
     * outside one before anything changed, so that a replay spends the same coin keys) */
    int journal = m->journal && !(flags & PC_NAME_DURABLE);
    int over = find_name(m, to, &t) ? m->names[t].vol != PC_NAME_NONE && t != f : !!(flags & PC_NAME_OVER_OTHER);
    over = over && journal && target < m->nfiles;
    if (over && !m->in_step) return PC_ESTATE;
    int rc = name_entry(m, to, flags & PC_NAME_OVER_OTHER ? PC_NAME_OTHER : PC_NAME_NONE, &t);
    if (rc) return rc;
    if (f == t) return PC_OK; /* rename(2) of a name onto itself does nothing */
    uint64_t key = next_key(m);
    if (journal) {
        jop *o;
        if ((rc = journal_push(m, key, target, &o))) return rc;
        o->ch[o->nch++] = (jchange){t, target};
        o->ch[o->nch++] = (jchange){f, PC_NAME_NONE};
        if (over) {
            o->flush = target;
            if ((rc = pc_model_sync(m, target, 0, UINT64_MAX))) return rc;
        }
    }
    name_set(m, t, target, key, flags & PC_NAME_DURABLE);
    name_set(m, f, PC_NAME_NONE, key, flags & PC_NAME_DURABLE);
    return PC_OK;
}

/* mkdir and rmdir: a directory's own entry, one operation each, landing as any name does. */
static int dir_change(pc_model *m, const char *path, uint32_t was, uint32_t now, int flags)
{
    if (!m || !path) return PC_EINVAL;
    uint32_t ix;
    int rc = name_entry(m, path, was, &ix);
    if (rc) return rc;
    if (m->names[ix].vol != (now == PC_NAME_DIR ? PC_NAME_NONE : PC_NAME_DIR))
        return now == PC_NAME_DIR ? PC_EINVAL : PC_ENOENT;
    m->ndirs++;
    uint64_t key = next_key(m);
    if (m->journal && !(flags & PC_NAME_DURABLE)) {
        jop *o;
        if ((rc = journal_push(m, key, PC_NAME_NONE, &o))) return rc;
        o->ch[o->nch++] = (jchange){ix, now};
    }
    name_set(m, ix, now, key, flags & PC_NAME_DURABLE);
    return PC_OK;
}

int pc_model_set_symlink(pc_model *m, uint32_t id)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (!rc) f->symlink = 1;
    return rc;
}

int pc_model_file_is_symlink(const pc_model *m, uint32_t id, int *is)
{
    if (!m || !is) return PC_EINVAL;
    if (id >= m->nfiles) return PC_ENOENT;
    *is = m->files[id].symlink;
    return PC_OK;
}

/* A name the model has not heard of holds nothing before the mkdir; a directory it has not
 * heard of was there, durably, before the rmdir. */
int pc_model_mkdir(pc_model *m, const char *path, int flags) { return dir_change(m, path, PC_NAME_NONE, PC_NAME_DIR, flags); }
int pc_model_rmdir(pc_model *m, const char *path, int flags) { return dir_change(m, path, PC_NAME_DIR, PC_NAME_NONE, flags); }

int pc_model_unlink(pc_model *m, const char *name, int flags)
{
    if (!m || !name) return PC_EINVAL;
    uint32_t ix;
    if (!find_name(m, name, &ix) || m->names[ix].vol == PC_NAME_NONE) return PC_ENOENT;
    uint64_t key = next_key(m);
    if (m->journal && !(flags & PC_NAME_DURABLE)) {
        jop *o;
        int rc = journal_push(m, key, m->names[ix].vol, &o);
        if (rc) return rc;
        o->ch[o->nch++] = (jchange){ix, PC_NAME_NONE};
    }
    name_set(m, ix, PC_NAME_NONE, key, flags & PC_NAME_DURABLE);
    return PC_OK;
}

int pc_model_link(pc_model *m, const char *from, const char *to, int flags)
{
    if (!m || !from || !to) return PC_EINVAL;
    uint32_t f, t;
    if (!find_name(m, from, &f) || m->names[f].vol == PC_NAME_NONE) return PC_ENOENT;
    int rc = name_entry(m, to, PC_NAME_NONE, &t);
    if (rc) return rc;
    if (m->names[t].vol != PC_NAME_NONE) return PC_EINVAL; /* link(2) never replaces */
    uint64_t key = next_key(m);
    if (m->journal && !(flags & PC_NAME_DURABLE)) {
        jop *o;
        if ((rc = journal_push(m, key, m->names[f].vol, &o))) return rc;
        o->ch[o->nch++] = (jchange){t, m->names[f].vol};
    }
    name_set(m, t, m->names[f].vol, key, flags & PC_NAME_DURABLE);
    return PC_OK;
}

/* Whether `path` is an entry of directory `dir` (its parent, as a string). */
static int in_dir(const char *path, const char *dir)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (slash == path) n = 1; /* an entry of "/" */
    return strlen(dir) == n && !strncmp(path, dir, n);
}

int pc_model_dir_sync_path(pc_model *m, const char *dir)
{
    if (!m || !dir) return PC_EINVAL;
    if (!m->in_step) return PC_ESTATE;
    if (m->journal) { /* ext4 commits the whole journal for a directory's fsync */
        m->jcommit = 1;
        return PC_OK;
    }
    for (uint32_t i = 0; i < m->nnames; i++)
        if (m->names[i].vol != m->names[i].dur && in_dir(m->names[i].path, dir)) m->names[i].pending = 1;
    return PC_OK;
}

int pc_model_journal_commit(pc_model *m, uint32_t id, int datasync)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    if (!m->in_step) return PC_ESTATE;
    if (!m->journal) return PC_OK;
    /* ext4 commits the transaction of the inode's last change (i_sync_tid; for fdatasync
     * i_datasync_tid: its size and its allocation). A file changed since the last commit
     * (written, its size or names changed) has it in the running one, and that commits every
     * operation before it; a file unchanged since commits nothing (its transaction is). */
    int changed = f->vsize != f->dsize;
    for (size_t i = 0; i < m->njops && !changed; i++)
        changed = m->jops[i].file == id && (!datasync || m->jops[i].created);
    if (!datasync && f->dlive) changed = 1;
    if (changed) m->jcommit = 1;
    return PC_OK;
}

int pc_model_dir_sync(pc_model *m, uint32_t id)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    if (!m->in_step) return PC_ESTATE;
    const char *path = m->names[f->name_ix].path, *slash = strrchr(path, '/');
    size_t n = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 0;
    char *dir = strndup(path, n);
    if (!dir) return PC_ENOMEM;
    rc = pc_model_dir_sync_path(m, dir);
    free(dir);
    return rc;
}

/* The exec hand-over: a name's state as it was (pc__model_dump's NAMESET). The coin keys of
 * later operations go on from the latest one, as they do in a replay of the whole trace. */
int pc__model_name_set(pc_model *m, const char *path, uint32_t vol, uint32_t dur, uint64_t key)
{
    if (!m || !path) return PC_EINVAL;
    uint32_t ix;
    int rc = name_entry(m, path, PC_NAME_NONE, &ix);
    if (rc) return rc;
    m->names[ix].vol = vol;
    m->names[ix].dur = dur;
    m->names[ix].key = key;
    if (vol == PC_NAME_DIR || dur == PC_NAME_DIR) m->ndirs++;
    if (key > ((uint64_t)1 << 32) && key - ((uint64_t)1 << 32) > m->nsops) m->nsops = key - ((uint64_t)1 << 32);
    return PC_OK;
}

/* The exec hand-over: a journal operation as it was (pc__model_dump's JOP), after the
 * NAMESET records that made its names. Its step has ended: its flush is durable already. */
int pc__model_jop(pc_model *m, uint64_t key, uint32_t file, uint32_t flush, int created, uint32_t nch,
                  const char *const path[], const uint32_t target[])
{
    if (!m || nch > 2 || !m->journal || m->in_step) return PC_EINVAL;
    jop *o;
    int rc = journal_push(m, key, file, &o);
    if (rc) return rc;
    o->flush = flush;
    o->created = created;
    for (uint32_t c = 0; c < nch; c++) {
        uint32_t ix;
        if (!find_name(m, path[c], &ix)) {
            m->njops--;
            return PC_EFORMAT;
        }
        o->ch[o->nch++] = (jchange){ix, target[c]};
    }
    return PC_OK;
}

int pc_model_name_count(const pc_model *m, uint32_t *count)
{
    if (!m || !count) return PC_EINVAL;
    *count = m->nnames;
    return PC_OK;
}

int pc_model_name(const pc_model *m, uint32_t i, const char **path)
{
    if (!m || !path) return PC_EINVAL;
    if (i >= m->nnames) return PC_ENOENT;
    *path = m->names[i].path;
    return PC_OK;
}

/* Whether every sector of the open step's D of file id (UINT32_MAX: of every file) lands
 * with tear c, and the tear is not none: what a size change, a name landing with a sync and a
 * journal commit after the step's data need. */
static int step_landed(pc_model *m, const pc_crash *c, uint32_t id, int *all)
{
    *all = c->tear != PC_TEAR_NONE;
    int rc = compute_dk(m);
    if (rc) return rc;
    for (size_t j = 0; j < m->ndk && *all; j++) {
        int take = tear_takes(c, j, m->ndk, &m->dk[j]);
        if (take < 0) return PC_EINVAL;
        if (id == UINT32_MAX || m->dk[j].id == id) *all = take;
    }
    return PC_OK;
}

/* The ext4 profile: how many of the journal's operations an image holds. Operations reach the
 * disk in order (one running transaction, committed whole), so every image holds a prefix:
 * all of them when the cut step's commit landed (after all of the step's data), else as many
 * as early writeback says (the periodic commit: none, all, or a seeded length). An operation
 * whose flush (auto_da_alloc) is the cut step's own data is not committed unless that data
 * landed: data=ordered writes it first. */
static int journal_prefix(pc_model *m, const pc_crash *c, size_t *k_out)
{
    size_t j = m->njops, k = 0;
    int rc, all = 0;
    *k_out = 0;
    if (!j) return PC_OK;
    if (m->in_step && m->jcommit && (rc = step_landed(m, c, UINT32_MAX, &all))) return rc;
    if (all) k = j;
    else if (c->wb == PC_WB_ALL) k = j;
    else if (c->wb == PC_WB_RANDOM) k = (size_t)(mix64(c->wb_seed ^ mix64(PURPOSE_WB_JOURNAL) ^ mix64(m->jops[0].key)) % (j + 1));
    for (size_t i = 0; i < k; i++) {
        const jop *o = &m->jops[i];
        if (!m->in_step || o->flush == PC_NAME_NONE || o->step != m->step) continue;
        if ((rc = step_landed(m, c, o->flush, &all))) return rc;
        if (!all) k = i;
    }
    *k_out = k;
    return PC_OK;
}

/* What name i's own entry holds in the image, its directories aside. */
static int entry_holds(pc_model *m, uint32_t i, const pc_crash *c, uint32_t *holds)
{
    mname *e = &m->names[i];
    *holds = e->dur;
    if (m->journal) {
        size_t k;
        int rc = journal_prefix(m, c, &k);
        if (rc) return rc;
        for (size_t j = 0; j < k; j++)
            for (uint32_t x = 0; x < m->jops[j].nch; x++)
                if (m->jops[j].ch[x].ix == i) *holds = m->jops[j].ch[x].target;
        return PC_OK;
    }
    if (e->vol == e->dur) return PC_OK;
    if (m->in_step && e->pending && c->tear != PC_TEAR_NONE) {
        /* with the step's data, as its size: only if every sector of D landed */
        int rc = compute_dk(m);
        if (rc) return rc;
        int all = 1;
        for (size_t j = 0; j < m->ndk && all; j++) {
            int take = tear_takes(c, j, m->ndk, &m->dk[j]);
            if (take < 0) return PC_EINVAL;
            all = take;
        }
        if (all) {
            *holds = e->vol;
            return PC_OK;
        }
    }
    if (c->wb == PC_WB_ALL || (c->wb == PC_WB_RANDOM && coin(c->wb_seed, PURPOSE_WB_NAME, e->key, 0)))
        *holds = e->vol;
    return PC_OK;
}

int pc_model_image_name(pc_model *m, uint32_t i, const pc_crash *c, uint32_t *holds)
{
    if (!m || !c || !holds) return PC_EINVAL;
    if (i >= m->nnames) return PC_ENOENT;
    int rc = entry_holds(m, i, c, holds);
    if (rc || *holds == PC_NAME_NONE || !m->ndirs) return rc;
    /* Each directory above it that the model knows (one the process made or removed) must be
     * on the disk too; one it does not know was there before and stays. */
    char *up = strdup(m->names[i].path);
    if (!up) return PC_ENOMEM;
    for (char *slash; (slash = strrchr(up, '/')) && slash != up;) {
        *slash = 0;
        uint32_t d, dh;
        if (!find_name(m, up, &d)) continue;
        if ((rc = entry_holds(m, d, c, &dh))) break;
        if (dh != PC_NAME_DIR) {
            *holds = PC_NAME_NONE;
            break;
        }
    }
    free(up);
    return rc;
}

int pc_model_image_exists(pc_model *m, uint32_t id, const pc_crash *c, int *exists)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    if (!c || !exists) return PC_EINVAL;
    uint32_t holds;
    if ((rc = pc_model_image_name(m, f->name_ix, c, &holds))) return rc;
    *exists = holds == id;
    return PC_OK;
}

/* ---- images ---- */
static int in_dk(const pc_model *m, uint32_t id, uint64_t sec)
{
    size_t lo = 0, hi = m->ndk;
    psec key = {id, sec};
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp_psec(&m->dk[mid], &key);
        if (!c) return 1;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static void fill_garbage(uint8_t *dst, const uint8_t *oldb, const uint8_t *newb, uint32_t n,
                         uint64_t seed, uint32_t id, uint64_t sec)
{
    uint64_t h = mix64(seed ^ mix64(PURPOSE_GARBAGE) ^ mix64(id) ^ mix64(sec + 1));
    for (uint32_t i = 0; i < n; i++) {
        if (i % 8 == 0) h = mix64(h);
        uint8_t x = (uint8_t)(h >> (8 * (i % 8)));
        while (x == oldb[i] || x == newb[i]) x++; /* neither old nor new, byte by byte */
        dst[i] = x;
    }
}

int pc_model_image_sectors(pc_model *m, uint32_t id, const pc_crash *c, pc_sector_fn fn, void *ctx,
                           uint64_t *size_out)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    if (!c || !fn || !size_out) return PC_EINVAL;
    if (m->in_step && (rc = compute_dk(m))) return rc;
    size_t ndk = m->in_step ? m->ndk : 0;
    uint32_t S = m->sector;
    uint64_t size = f->dsize;

    /* Early writeback: dirty, differing sectors outside D, within the volatile size. */
    if (c->wb != PC_WB_NONE) {
        if (!m->in_step || !m->wb_valid || m->wb_id != id) {
            uint64_t s1 = (f->vsize + S - 1) / S;
            size_t n;
            if ((rc = dirty_in(m, f, 0, s1, &n))) return rc;
            m->nwb = 0;
            for (size_t j = 0; j < n; j++) {
                uint64_t s = m->scratch[j];
                if (!differs(m, f, s) || (ndk && in_dk(m, id, s))) continue;
                if (grow((void **)&m->wb, &m->wbcap, m->nwb + 1, sizeof(uint64_t))) return PC_ENOMEM;
                m->wb[m->nwb++] = s;
            }
            m->wb_id = id;
            m->wb_valid = m->in_step;
        }
        uint64_t wb_coin = c->wb == PC_WB_RANDOM ? coin_prefix(c->wb_seed, PURPOSE_WB, id) : 0;
        for (size_t j = 0; j < m->nwb; j++) {
            uint64_t s = m->wb[j];
            if (c->wb == PC_WB_ALL || coin_at(wb_coin, s)) fn(ctx, s, f->vol + s * S);
        }
        if (f->vsize != f->dsize &&
            (c->wb == PC_WB_ALL || coin(c->wb_seed, PURPOSE_WB_SIZE, id, 0)))
            size = f->vsize;
    }

    /* The tear of the cut step. */
    int pending_size = 0;
    for (size_t i = 0; m->in_step && i < m->npend; i++)
        if (m->pend[i].id == id) pending_size = 1;
    uint64_t gidx = c->tear_n < ndk ? c->tear_n : ndk; /* garbage:N past the end: the last */
    uint64_t mine = 0, landed = 0;
    uint8_t *garbage = NULL;
    if ((unsigned)c->tear > PC_TEAR_GARBAGE) return PC_EINVAL; /* (tear_takes's -1) */
    uint64_t tear_coin = c->tear == PC_TEAR_RANDOM ? coin_prefix(c->tear_seed, PURPOSE_TEAR, id) : 0;
    for (size_t j = 0; j < ndk; j++) {
        if (m->dk[j].id != id) continue;
        int take = c->tear == PC_TEAR_RANDOM ? coin_at(tear_coin, m->dk[j].sec) : tear_takes(c, j, ndk, &m->dk[j]);
        mine++;
        if (!take) continue;
        landed++;
        uint64_t o = m->dk[j].sec * S;
        if (c->tear == PC_TEAR_GARBAGE && j + 1 == gidx) {
            if (!garbage && !(garbage = malloc(S))) return PC_ENOMEM;
            fill_garbage(garbage, f->dur + o, f->vol + o, S, c->seed, id, m->dk[j].sec);
            fn(ctx, m->dk[j].sec, garbage);
        } else {
            fn(ctx, m->dk[j].sec, f->vol + o);
        }
    }
    free(garbage);
    if (pending_size && c->tear != PC_TEAR_NONE && landed == mine) size = f->vsize;
    *size_out = size;
    return PC_OK;
}

/* The full image is the durable content with those sectors laid over it. */
typedef struct {
    uint8_t *img;
    uint32_t sector;
} overlay;

static void lay_over(void *ctx, uint64_t sec, const uint8_t *data)
{
    overlay *o = ctx;
    memcpy(o->img + sec * o->sector, data, o->sector);
}

int pc_model_image(pc_model *m, uint32_t id, const pc_crash *c, uint8_t **buf_out,
                   uint64_t *len_out)
{
    mfile *f;
    int rc = get_file(m, id, &f);
    if (rc) return rc;
    if (!c || !buf_out || !len_out) return PC_EINVAL;
    overlay o = {malloc(f->cap ? f->cap : 1), m->sector};
    if (!o.img) return PC_ENOMEM;
    memcpy(o.img, f->dur, f->cap);
    uint64_t size;
    if ((rc = pc_model_image_sectors(m, id, c, lay_over, &o, &size))) {
        free(o.img);
        return rc;
    }
    /* Bytes past the chosen size are not part of the file. */
    uint8_t *out = realloc(o.img, size ? size : 1);
    if (!out) {
        free(o.img);
        return PC_ENOMEM;
    }
    *buf_out = out;
    *len_out = size;
    return PC_OK;
}

int pc_model_volatile(const pc_model *m, uint32_t id, const uint8_t **buf, uint64_t *len)
{
    if (!m || !buf || !len) return PC_EINVAL;
    if (id >= m->nfiles) return PC_ENOENT;
    *buf = m->files[id].vol;
    *len = m->files[id].vsize;
    return PC_OK;
}

int pc_model_durable(const pc_model *m, uint32_t id, const uint8_t **buf, uint64_t *len)
{
    if (!m || !buf || !len) return PC_EINVAL;
    if (id >= m->nfiles) return PC_ENOENT;
    *buf = m->files[id].dur;
    *len = m->files[id].dsize;
    return PC_OK;
}

/* The model as trace records, for the shim's exec hand-over (replayed, they rebuild it
 * exactly): FILE gives the durable content and size; a WRITE of the volatile content and two
 * TRUNCs (up to the last dirty sector, back to the volatile size) give the volatile state
 * and mark every sector up to there dirty; LOSE clears the sectors that were not. */
#define CHK(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)
int pc__model_dump(const pc_model *m, pc_tw *w)
{
    if (!m || !w || m->in_step) return PC_ESTATE;
    if (m->journal) CHK(pc_tw_journal(w));
    for (uint32_t id = 0; id < m->nfiles; id++) {
        const mfile *f = &m->files[id];
        uint64_t nsec = f->cap / m->sector, last = 0; /* sectors up to `last` may be dirty */
        for (uint64_t s = 0; s < nsec; s++)
            if (is_dirty(f, s)) last = s + 1;
        uint64_t end = last * m->sector;
        if (end < f->vsize) end = f->vsize;
        if (end < f->dsize) end = f->dsize;
        CHK(pc_tw_file(w, id, f->name, f->dur, f->dsize));
        if (f->symlink) CHK(pc_tw_symlink(w, id));
        /* (journalled, a creation is one of the JOP records below) */
        if (m->names[f->name_ix].dur != id && !m->journal) CHK(pc_tw_created(w, id));
        if (!end) continue;
        if (f->vsize) CHK(pc_tw_write(w, id, 0, f->vol, f->vsize, 0));
        CHK(pc_tw_truncate(w, id, end));
        CHK(pc_tw_truncate(w, id, f->vsize));
        for (uint64_t s = 0, n = (end + m->sector - 1) / m->sector; s < n;) {
            if (is_dirty(f, s)) {
                s++;
                continue;
            }
            uint64_t e = s;
            while (e < n && !is_dirty(f, e)) e++;
            CHK(pc_tw_lose(w, id, s * m->sector, (e - s) * m->sector));
            s = e;
        }
    }
    for (uint32_t i = 0; i < m->nnames; i++) {
        const mname *e = &m->names[i];
        CHK(pc__tw_name_set(w, e->path, e->vol, e->dur, e->key));
    }
    for (size_t i = 0; i < m->njops; i++) {
        const jop *o = &m->jops[i];
        const char *path[2] = {NULL, NULL};
        uint32_t target[2] = {0, 0};
        for (uint32_t c = 0; c < o->nch; c++) {
            path[c] = m->names[o->ch[c].ix].path;
            target[c] = o->ch[c].target;
        }
        CHK(pc__tw_jop(w, o->key, o->file, o->flush, o->created, o->nch, path, target));
    }
    return PC_OK;
}
