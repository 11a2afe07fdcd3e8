/* pc_trace.c: pc-trace, a small command line over the trace reader: lists the steps of a
 * powercut trace, and derives the crash image of any step without re-running the workload. */
#include "../powercut.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: pc-trace TRACE                                list the steps\n"
    "       pc-trace TRACE image STEP CRASH OUT [FILE]    write a crash image (none, and OUT\n"
    "                           removed, when the file's first name does not hold it then)\n"
    "  CRASH is TEAR[:WRITEBACK[:SEED]] as in POWERCUT_CUT; FILE is a file id (default 0).\n"
    "  Exit status: 0 done, 2 usage or unreadable trace.\n";

/* The shim has no command line of its own: its environment is listed here (faults/README.md
 * has the whole of it). */
static const char shim_text[] =
    "\n"
    "Traces are recorded by libpowercut.so, preloaded into any program:\n"
    "  LD_PRELOAD=build/lib/libpowercut.so POWERCUT_FILE=data POWERCUT_TRACE=t PROGRAM...\n"
    "  POWERCUT_FILE=GLOB       the tracked file(s); unset: every call passes through\n"
    "  POWERCUT_TRACE=PATH      record every step (POWERCUT_TRACE_MAPPED=1: survives kill -9)\n"
    "  POWERCUT_CUT=STEP[:TEAR[:WRITEBACK[:SEED]]]\n"
    "                           cut power in STEP: write the crash image, exit 99\n"
    "  POWERCUT_IMAGE=PATH      where images go (default FILE.crash; a directory for a glob)\n"
    "  POWERCUT_ERROR=STEP:ERRNO  the call of STEP fails (EIO, ENOSPC, a number, or short)\n"
    "                           (ENOSPC: the disk stays full; a store into a hole: SIGBUS)\n"
    "  POWERCUT_SECTOR=N        sector size (default 512)\n"
    "  POWERCUT_MARK_FD=N       lines written to descriptor N mark operations\n"
    "  POWERCUT_MMAP=track|uffd|mprotect|sync|lazy\n"
    "                           how stores through mappings are found (default track:\n"
    "                           exact; sync: at msync only; lazy: exact cuts, no trace)\n"
    "  POWERCUT_CRASH=TEAR[:WRITEBACK[:SEED]]  the crash of a cut made by libfiu\n"
    "  FIU_ENABLE, FIU_CTRL_FIFO  libfiu control of the points powercut/<call>\n"
    "  POWERCUT_MODEL=1, POWERCUT_DEBUG=1  keep the live model; say each mapping's backend\n"
    "  POWERCUT_NAMESPACE=posix  a name the program creates, renames, removes or links changes\n"
    "                           after a cut only once an fsync of its directory made it\n"
    "                           durable (default: at once)\n"
    "  POWERCUT_NAMESPACE=ext4   those changes reach the disk in program order; an fsync\n"
    "                           commits every earlier one; a rename over a file first\n"
    "                           writes the renamed file's data (data=ordered, auto_da_alloc)\n"
    "  POWERCUT_EXIT_STEP=1     one more step, exit, when the process exits\n"
    "  POWERCUT_OUTPUT=1        record how much the program had written to stdout/stderr at each step\n"
    "  POWERCUT_FOREIGN=stop|off  a change of the file behind the shim's back (stdio, another\n"
    "                           process) stops the run (default) or is not looked for\n"
    "  Exit 97: the shim lost track (a call it cannot model, a foreign change); 2: bad usage\n"
    "  TEAR: none|all|prefix:N|suffix:N|random[:S]|garbage:N  WRITEBACK: none|all|random[:S]\n"
    "  See faults/README.md.\n";

static int usage(void)
{
    fputs(usage_text, stderr);
    return 2;
}

static int list(pc_trace *t)
{
    uint64_t n;
    uint32_t nf, sector;
    int complete;
    pc_trace_step_count(t, &n);
    pc_trace_file_count(t, &nf);
    pc_trace_sector_size(t, &sector);
    pc_trace_complete(t, &complete);
    printf("# %" PRIu64 " steps, %" PRIu32 " files, sector %" PRIu32 ", %s\n", n, nf, sector,
           complete ? "complete" : "cut short");
    for (uint32_t i = 0; i < nf; i++) {
        const char *name;
        pc_trace_file_name(t, i, &name);
        printf("# file %" PRIu32 ": %s\n", i, name);
    }
    printf("%6s %-16s %4s %12s %12s %5s %8s %6s %s\n", "step", "call", "file", "off", "len", "errno",
           "sectors", "op", "label");
    pc_replay *r;
    int rc = pc_replay_new(t, &r);
    if (rc) return rc;
    for (;;) {
        uint64_t k, secs = 0;
        if ((rc = pc_replay_next(r, &k)) || !k) break;
        pc_model *m;
        pc_replay_model(r, &m);
        pc_model_step_sectors(m, &secs);
        pc_step_info in;
        pc_trace_step_info(t, k, &in);
        char len[24];
        if (in.len == UINT64_MAX) snprintf(len, sizeof len, "all");
        else snprintf(len, sizeof len, "%" PRIu64, in.len);
        printf("%6" PRIu64 " %-16s %4" PRId32 " %12" PRIu64 " %12s %5d %8" PRIu64 " %6" PRIu64 " %s\n", k,
               pc_call_name(in.call), in.file == UINT32_MAX ? -1 : (int32_t)in.file, in.off, len, in.err,
               secs, in.op, in.label);
    }
    pc_replay_free(r);
    pc_sigbus_info b;
    if (!rc && pc_trace_sigbus(t, &b) == PC_OK)
        printf("# SIGBUS after step %" PRIu64 ": a store into the page at offset %" PRIu64 " of file %" PRIu32
               ", a hole of the full disk (%s), in op %" PRIu64 " %s\n",
               b.step, b.off, b.file, b.at_fault ? "at the store" : "found later", b.op, b.label);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage_text, stdout);
        fputs(shim_text, stdout);
        return 0;
    }
    if (argc < 2) return usage();
    pc_trace *t;
    int rc = pc_trace_open(argv[1], &t);
    if (rc) {
        fprintf(stderr, "pc-trace: %s: %s\n", argv[1], pc_strerror(rc));
        return 2;
    }
    if (argc == 2) {
        rc = list(t);
    } else if ((argc == 6 || argc == 7) && !strcmp(argv[2], "image")) {
        pc_crash c;
        char *end;
        uint64_t step = strtoull(argv[3], &end, 10);
        uint32_t id = argc == 7 ? (uint32_t)strtoul(argv[6], NULL, 10) : 0;
        if (*end || pc_crash_parse(argv[4], &c)) {
            pc_trace_free(t);
            return usage();
        }
        uint8_t *img;
        uint64_t len;
        int exists = 1;
        rc = pc_trace_image_exists(t, id, step, &c, &exists);
        if (!rc && !exists) { /* POWERCUT_NAMESPACE=posix or ext4: its name never reached the disk */
            if (remove(argv[5]) != 0 && errno != ENOENT) rc = PC_EIO;
            else printf("file %u is not under its first name after this cut (that name was not durable, or "
                        "a durable rename, unlink or link changed it): no %s\n", id, argv[5]);
        } else if (!rc) rc = pc_trace_image(t, id, step, &c, &img, &len);
        if (!rc && exists) {
            FILE *f = fopen(argv[5], "wb");
            if (!f || fwrite(img, 1, len, f) != len || fclose(f)) rc = PC_EIO;
            free(img);
        }
    } else {
        pc_trace_free(t);
        return usage();
    }
    pc_trace_free(t);
    if (rc) {
        fprintf(stderr, "pc-trace: %s\n", pc_strerror(rc));
        return 2;
    }
    return 0;
}
