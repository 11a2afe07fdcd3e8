/* names.c: the shim's namespace questions: does an open create the name it opens, where
 * does a name live, is a descriptor a directory. The model of names is in model.c. */
#include "names.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The first piece of the namespace model (POWERCUT_NAMESPACE=posix), and what it leaves for
 * later:
 *
 * - A name is created by an open/openat/creat with O_CREAT that finds nothing at the path
 *   beforehand (one fstatat, following symlinks as the open does, so a dangling symlink's
 *   target counts as created) and succeeds. O_EXCL makes that exact; without it another
 *   process could create the file between the two calls, and the shim would call it created
 *   (a durable name taken for a volatile one: a stricter model, never a laxer one).
 * - The name lives in the directory its path names when the file is first tracked (the
 *   directory's device and inode, found once). An fsync or fdatasync of a descriptor of that
 *   directory is a step (fsync-dir, fdatasync-dir), whatever the namespace setting, so that
 *   steps number the same with and without the model; under posix it makes every volatile
 *   name in that directory durable when the step ends. The shim finds such a descriptor at
 *   the fsync (one fstat of an untracked descriptor once a file is tracked), not at its open:
 *   programs open the directory before they create the file in it.
 * - Not modelled yet: rename, unlink, link, mkdir, O_TMPFILE + linkat, syncfs/sync, names
 *   created before the file was first tracked or by another process (they are durable), a
 *   directory that is itself new (its own entry in its parent), and the ext4 profile (names
 *   in order with the data). A file created and then renamed over another keeps its created
 *   state under its old name: the rename is invisible.
 */

int pc__ns_parse(const char *value)
{
    if (!value || !*value || !strcmp(value, "none")) return PC_NS_NONE;
    if (!strcmp(value, "posix")) return PC_NS_POSIX;
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

int pc__ns_parent(const char *abs, uint64_t *dev, uint64_t *ino)
{
    char dir[PATH_MAX];
    const char *slash = abs ? strrchr(abs, '/') : NULL;
    if (!slash) return -1;
    size_t n = slash == abs ? 1 : (size_t)(slash - abs);
    if (n >= sizeof dir) return -1;
    memcpy(dir, abs, n);
    dir[n] = 0;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return -1;
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return 0;
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
