/* names.h: the shim's view of the namespace (POWERCUT_NAMESPACE): which opens create a
 * tracked file's name, and which descriptors are the directories holding those names;
 * internal to the shim. See names.c. */
#ifndef PC_NAMES_H
#define PC_NAMES_H

#include <stddef.h>
#include <stdint.h>

/* POWERCUT_NAMESPACE: PC_NS_NONE (unset: names are not modelled, a tracked file exists
 * durably from its creation), PC_NS_POSIX or PC_NS_EXT4 (names journalled in order,
 * pc_model_set_journal); -1 for a value the shim does not know. */
enum { PC_NS_NONE = 0, PC_NS_POSIX = 1, PC_NS_EXT4 = 2 };
int pc__ns_parse(const char *value);

/* Before an open with O_CREAT: 1 when nothing is at `path` (relative to dirfd), so that a
 * successful open creates it; 0 when something is, or the question cannot be answered. */
int pc__ns_absent(int dirfd, const char *path);
/* Whether fd is a directory; its identity in *dev, *ino. */
int pc__ns_is_dir(int fd, uint64_t *dev, uint64_t *ino);

/* A name as the model spells it: absolute, its parent directory resolved (realpath), its last
 * component as given (a symlink there is the name, not its target). out may be abs. */
void pc__ns_canon(const char *abs, char *out, size_t n);
/* The same for a path relative to dirfd (AT_FDCWD: the working directory). */
void pc__ns_name(int dirfd, const char *path, char *out, size_t n);
/* The path of descriptor fd (a directory: its canonical path), 0; -1 if unknown. */
int pc__ns_fd_path(int fd, char *out, size_t n);
/* Whether `path` is an entry of directory `dir` (strings, both canonical). */
int pc__ns_in_dir(const char *path, const char *dir);

#endif
