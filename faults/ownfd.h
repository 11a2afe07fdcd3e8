/* ownfd.h: the shim's own descriptors (trace, private read descriptors, userfaultfd, pagemap),
 * kept out of the program's reach; internal to the shim. See ownfd.c. */
#ifndef PC_OWNFD_H
#define PC_OWNFD_H

#include <sys/types.h>

/* Moves fd to a high number (close-on-exec) and registers it; the old number is closed. The
 * new number, or -1 (fd closed, errno set) when no high number is free. */
int pc__own_take(int fd);
/* open(2) of path (close-on-exec) at a high number, as pc__own_take; where the program has
 * every number below its soft limit, opened above it. -1 with errno: EMFILE when no number
 * is free. */
int pc__own_open(const char *path, int flags, mode_t mode);
/* Registers fd as it is (inherited across exec at a number taken before). */
void pc__own_adopt(int fd);
/* Unregisters fd and closes it. */
void pc__own_release(int fd);
/* Unregisters fd without closing it (a forked child dropping its copies). */
void pc__own_forget(int fd);
/* Whether fd is one of the shim's: the program's close and dup calls must not reach it. */
int pc__own_is(int fd);
/* dup2/dup3 are about to put a program descriptor on fd: when fd is the shim's, it moves to
 * another high number first and `moved` tells its holder. 0, or -1 when no number is free. */
int pc__own_evict(int fd, void (*moved)(int from, int to));
/* close_range(2) of [first, last] without the shim's descriptors: the range is split around
 * them. 0, or -1 with errno (of the first segment that failed). */
int pc__own_close_range(unsigned first, unsigned last, unsigned flags);

#endif
