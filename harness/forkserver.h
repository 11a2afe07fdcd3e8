/* forkserver.h: runs crashcheck's recordings (`__run` under libpowercut) in children forked
 * from one process that loaded the shim once, instead of executing crashcheck anew for each.
 * R7 records a follow-up run for every crash image whose recovery had work, a thousand
 * times on the default workload: an exec, the dynamic loader and the shim's start cost
 * about 2 ms of the 6 a follow-up took; a fork of the small server costs a tenth of that. */
#ifndef CC_FORKSERVER_H
#define CC_FORKSERVER_H

#include <stdbool.h>
#include <stddef.h>

/* Runs `self __run ARGS` under the shim `shim` with the n variables names[i]=values[i]
 * (NULL: unset; the rest of the environment is the caller's, as the server inherited it,
 * less these n and LD_PRELOAD) in a child of this process's server, started at the first call (each process has
 * its own: the workers of --jobs too). *status is the child's wait status. False when there
 * is no server (it could not start, or died): the caller then executes the recording
 * itself. */
bool cc_fs_run(const char *self, const char *shim, char *const *args, size_t n, const char *const *names,
               const char *const *values, int *status);

/* Stops this process's server, if it started one (the next recording starts another):
 * before a worker exits, so that no server outlives the run that used it. */
void cc_fs_stop(void);

/* Recordings this process ran through its server so far. */
unsigned long long cc_fs_served(void);

/* The server's side (crashcheck __serve REQ_FD RESP_FD): reads requests until end of file;
 * each runs `run(argc, argv)` in a forked child, after the shim has read its new
 * environment (pc_shim_reset), and answers with its wait status. Returns the exit status. */
int cc_fs_serve(int req_fd, int resp_fd, int (*run)(int argc, char **argv));

#endif
