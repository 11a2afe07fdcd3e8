/* names.c: the shim's namespace questions: does an open create the name it opens, where
 * does a name live, is a descriptor a directory. The model of names is in model.c. */
#include "names.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The namespace model (POWERCUT_NAMESPACE=posix): what is modelled, and what is left:
 *
 * - A name is created by an open/openat/creat with O_CREAT that finds nothing at the path
 *   beforehand (one fstatat, following symlinks as the open does, so a dangling symlink's
 *   target counts as created) and succeeds. O_EXCL makes that exact; without it another
 *   process could create the file between the two calls, and the shim would call it created
 *   (a durable name taken for a volatile one: a stricter model, never a laxer one).
 * - Names are strings: absolute, the parent directory resolved by realpath, the last
 *   component as given (pc__ns_canon), so that the name an open tracked and the one a later
 *   rename or unlink gives agree however the program spells them. The model keeps, per name,
 *   the file it holds as the process sees it and as the disk has it (model.c).
 * - rename, renameat, renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE), unlink, unlinkat, remove, link and
 *   linkat whose source (or, for a rename, target) is the name of a tracked file are steps
 *   (rename, unlink, link), whatever the namespace setting, so that steps number the same with
 *   and without the model. Under posix their change is volatile until an fsync of the
 *   directory holding each changed name; under none it is durable at once. The shim knows a
 *   name for a tracked file by its inode (fstatat, not following a symlink at the last
 *   component, as the calls do; linkat with AT_SYMLINK_FOLLOW follows it).
 * - An fsync or fdatasync of a directory is a step (fsync-dir, fdatasync-dir) when the
 *   directory holds a name the model knows (a tracked file's first name, or any name a step
 *   above touched): the directory's path (its /proc/self/fd link) against the names' parents,
 *   found at the fsync (one fstat of an untracked descriptor once a file is tracked, one
 *   readlink when it is a directory), not at its open: programs open the directory before
 *   they create the file in it.
 * - renameat2's RENAME_EXCHANGE of two names of tracked files is a rename step that swaps
 *   them (PC_NAME_EXCHANGE): one operation, both names landing as a rename's do.
 * - Refused (exit status 97, the run stops: the model could not follow): renameat2 with
 *   RENAME_WHITEOUT of a tracked name; a file the shim does not track renamed over a tracked
 *   name or a name the model knows, or exchanged with a tracked name (its content and history are
 *   unknown: widen POWERCUT_FILE); a rename, unlink or link of a name of a tracked file the
 *   model never saw made (a link made before the file was tracked or by another process).
 * - An exec of the owner carries the names: the model's (its NAMESET records in the
 *   hand-over) and the shim's list of the names the steps above touched.
 * - mkdir, mkdirat, rmdir (and unlinkat AT_REMOVEDIR, remove) of a directory in, at or above
 *   the tracked files' root are steps, the directory's entry a name holding PC_NAME_DIR; a
 *   name below a directory the model knows lands in an image only with it (shim.c, the
 *   directories; model.c, pc_model_image_name). Those made before the claim are handed over
 *   at it. A directory holding a known name cannot be renamed (refused).
 * - symlink, symlinkat in the tracked tree: a file of the model (content: the target) under a
 *   created name, marked a link (pc_model_set_symlink); its names are followed by the link's
 *   own inode (shim.c, tracked_at).
 * - Refused too: a file linked by its descriptor (AT_EMPTY_PATH, /proc/self/fd: O_TMPFILE) to a
 *   name in the tracked tree.
 * - Not modelled:
 *   syncfs/sync, names created before the file was first tracked or by another process
 *   (durable), and an untracked file linked to a name the model knows.
 * - POWERCUT_NAMESPACE=ext4 (data=ordered, auto_da_alloc): the same steps and names, but the
 *   changes are operations of one journal in program order (pc_model_set_journal; a trace
 *   says so with its JOURNAL record): an image holds a prefix of those not committed; an
 *   fsync of a directory commits them all, an fsync or fdatasync of a tracked file when the
 *   file changed since the last commit (pc_model_journal_commit, a JCOMMIT record); a rename
 *   over a file writes the renamed file's data in its step. What is left out is stricter
 *   than ext4 (faults/README.md, Names): fsyncs of untracked files, msync, O_SYNC writes and
 *   syncfs commit nothing.
 */

int pc__ns_parse(const char *value)
{
    if (!value || !*value || !strcmp(value, "none")) return PC_NS_NONE;
    if (!strcmp(value, "posix")) return PC_NS_POSIX;
    if (!strcmp(value, "ext4")) return PC_NS_EXT4;
    return -1;
}

int pc__ns_absent(int dirfd, const char *path)
{
    if (!path) return 0;
    struct stat st;
    int saved = errno;
    int absent = fstatat(dirfd, path, &st, 0) != 0 && errno == ENOENT;
    errno = saved;
    return absent;
}

int pc__ns_is_dir(int fd, uint64_t *dev, uint64_t *ino)
{
    struct stat st;
    int saved = errno;
    int r = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    errno = saved;
    if (!r) return 0;
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return 1;
}

void pc__ns_canon(const char *abs, char *out, size_t n)
{
    char copy[PATH_MAX], dir[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", abs);
    char *slash = strrchr(copy, '/');
    if (!slash || !slash[1]) {
        snprintf(out, n, "%s", copy);
        return;
    }
    *slash = 0;
    int saved = errno;
    const char *parent = copy[0] ? copy : "/";
    if (!realpath(parent, dir)) snprintf(dir, sizeof dir, "%s", parent);
    errno = saved;
    snprintf(out, n, "%s/%s", strcmp(dir, "/") ? dir : "", slash + 1);
}

int pc__ns_fd_path(int fd, char *out, size_t n)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int saved = errno;
    ssize_t r = readlink(link, out, n - 1);
    errno = saved;
    if (r <= 0 || (size_t)r >= n - 1) return -1;
    out[r] = 0;
    return 0;
}

void pc__ns_name(int dirfd, const char *path, char *out, size_t n)
{
    char abs[PATH_MAX], base[PATH_MAX];
    if (path[0] == '/') snprintf(abs, sizeof abs, "%s", path);
    else {
        int saved = errno;
        int ok = dirfd == AT_FDCWD ? getcwd(base, sizeof base) != NULL : !pc__ns_fd_path(dirfd, base, sizeof base);
        errno = saved;
        if (!ok) base[0] = 0;
        if ((size_t)snprintf(abs, sizeof abs, "%s/%s", base, path) >= sizeof abs) abs[0] = 0;
    }
    pc__ns_canon(abs, out, n);
}

int pc__ns_in_dir(const char *path, const char *dir)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return 0;
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    return strlen(dir) == len && !strncmp(path, dir, len);
}
