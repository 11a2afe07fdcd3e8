/* crashcheck.c: the command line: explore, check, replay, minimize, show, encode (and the
 * internal __run that executes a case under the shim). Exit 0 clean, 1 violation, 2 usage. */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "case.h"
#include "checker.h"
#include "explore.h"
#include "forkserver.h"
#include "generate.h"
#include "merge.h"
#include "run.h"
#include "mappedpages.h"
#include "powercut.h"
#include "workload.h"

#define EXIT_CLEAN 0
#define EXIT_VIOLATION 1
#define EXIT_USAGE 2

static const char *usage_main =
    "usage: crashcheck COMMAND [ARGS]\n"
    "\n"
    "Cuts power at every step of a libmappedpages workload and checks that the file recovers.\n"
    "\n"
    "commands:\n"
    "  explore [CASE | --ops N --seed S]  record the case once, check every crash state\n"
    "  check IMAGE                        fsck of one pager file: findings in words\n"
    "  replay FILE                        reproduce one case (any fuzzer crash file) and tell the story\n"
    "  minimize FILE -o OUT               shrink a failing case while it fails the same way\n"
    "  show FILE                          print a case as text\n"
    "  encode TEXT -o OUT                 write a text case in binary form\n"
    "  generate --ops N --seed S -o OUT   write a generated workload as a text case\n"
    "  generate --cover -o OUT            grow a case until it covers every required cell\n"
    "  coverage [CASE...]                 crash coverage of the workload suite: what is missing\n"
    "  run --files G --check C -- PROG    any program's crash states, judged by your check\n"
  "  merge [--json] FILE...             one report from the --json outputs of --shard I/N runs\n"
    "\n"
    "Run `crashcheck COMMAND --help` for a command's options.\n"
    "Exit status: 0 clean, 1 a violation was found, 2 usage or environment error.\n"
    "Environment: CRASHCHECK_SHIM (libpowercut.so), CRASHCHECK_WORKDIR (scratch, default /dev/shm or $TMPDIR).\n";

static const char *usage_coverage =
    "usage: crashcheck coverage [CASE ...] [--page-size N]... [--sector N]... [--jobs N] [--require] [--json]\n"
    "\n"
    "Explores each case (default: every workload in corpus/workloads/, or in the installed suite)\n"
    "at each page size (default 1024, 4096 and 16384) and each sector size (default 512 and 4096),\n"
    "and prints for each size the crash coverage of all of them together: the cells (operation x\n"
    "what a cut step makes durable x where it lands) the pager's protocol must be cut at, how many\n"
    "the cases covered, and every one they missed. A missed cell is a shape of workload the suite\n"
    "lacks: add a case that takes it. A 0.3 file's cells are rows of their own (v3-alloc, v3-create,\n"
    "...: roots, leaves and their slots); the required ones are of both formats.\n"
    "A case that starts from an image (an image line) is explored at that image's page size only.\n"
    "  --page-size N   a page size to explore at (repeat for several)\n"
    "  --sector N      512 or 4096 (repeat for both)\n"
    "  --jobs N        checker processes per exploration (default 1)\n"
    "  --require       exit 1 unless every required cell is covered at every size\n"
    "  --json          one JSON object per size, one per line\n"
    "Exit status: 1 also when an exploration finds a violation, or covers a cell the protocol's\n"
    "table says cannot be (a bug of the table or of the pager).\n";

static const char *usage_explore =
    "usage: crashcheck explore [CASE | --ops N --seed S] [options]\n"
    "\n"
    "Records the workload once under libpowercut and checks every crash state derived from the\n"
    "trace: every step x every tear x every early-writeback choice; identical images once.\n"
    "\n"
    "  CASE               a case file (text or binary); default corpus/workloads/default (or,\n"
    "                     outside a source tree, the installed suite's default)\n"
    "  --ops N --seed S   a generated workload of N operations instead\n"
    "  --page-size N      1024, 2048, 4096, 8192 or 16384 (overrides the case; a case that\n"
    "                     starts from an image takes only that image's page size)\n"
    "  --sector N         512 (default) or 4096 (drives with atomic 4 KiB writes)\n"
    "  --tear LIST        comma list of: prefix, suffix, random:K, garbage (default\n"
    "                     prefix,suffix,random:4, and garbage in 0.3 files; none and all are\n"
    "                     always explored). garbage: in a 0.3 file, each sector of its\n"
    "                     superblock, roots, leaves and directory blocks that a step writes,\n"
    "                     landed as garbage (bytes neither old nor new), which the format must\n"
    "                     survive; in a 0.2 file, beyond its default model, each step whose first\n"
    "                     durable sector is the file's first also tears into a garbage first\n"
    "                     sector, which salvage must rebuild; with sectors larger than the\n"
    "                     page it takes a metadata copy too, and refusing to open is right)\n"
    "  --writeback LIST   comma list of: all, random:K (default all,random:2; none always)\n"
    "  --jobs N           checker processes (default 1)\n"
    "  --shard I/N        explore only the I-th of N parts of the state space (0-based)\n"
    "  --again N          R7: a follow-up workload runs on a recovered state, and power is cut\n"
    "                     again at each of its steps. Always on every state whose recovery\n"
    "                     repairs or reclaims something and every state cut in the create (once\n"
    "                     per distinct recovered file); and on N more recovered states spread\n"
    "                     over the run (default 16; 0: none)\n"
    "  --again off        no R7 at all, forced follow-ups included (to time the checker alone)\n"
    "  --fail-fast        stop at the first violation (a yes or no sooner: the rest of the state\n"
    "                     space stays unexplored, and the summary says so; not with --errors)\n"
    "  --errors           I/O errors instead of power cuts alone: fail each msync, fsync, fdatasync,\n"
    "                     ftruncate and fallocate of the run in turn (EIO; ENOSPC when it grows the\n"
    "                     file, and the disk stays full: later growths fail too, and a store into\n"
    "                     a hole dies of SIGBUS, an E1 violation), a failing sync with each outcome (none, all, prefix:1, suffix:1 of\n"
    "                     its sectors written, the rest lost), and check the run against the error\n"
    "                     contract (E1: the last committed state, MP_EPOISONED until a reopen that\n"
    "                     tells the truth), every crash state from the error to the end of the next\n"
    "                     operation (R1-R6, R8) and the durable state the run leaves\n"
    "  --out DIR          where reproducers go (default crashcheck-out)\n"
    "  --json             one JSON object on stdout instead of the summary\n"
    "  --quiet            no progress line\n";

__attribute__((noreturn)) static void die_usage(const char *usage, const char *fmt, const char *arg) {
  if (fmt) {
    fprintf(stderr, "crashcheck: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n");
  }
  fputs(usage, stderr);
  exit(EXIT_USAGE);
}

static bool want_help(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  return false;
}

/* --help prints a command's usage on stdout (exit 0); wrong arguments print it on
 * stderr (exit 2). True when the command should stop there. */
static bool handled_usage(int argc, char **argv, const char *usage, bool args_ok, int *status) {
  if (want_help(argc, argv)) {
    fputs(usage, stdout);
    *status = EXIT_CLEAN;
    return true;
  }
  if (!args_ok) {
    fputs(usage, stderr);
    *status = EXIT_USAGE;
    return true;
  }
  return false;
}

static unsigned long parse_num(const char *usage, const char *opt, const char *s, unsigned long max) {
  char *end;
  errno = 0;
  unsigned long v = s ? strtoul(s, &end, 10) : 0;
  if (!s || errno || *end || end == s || v > max) die_usage(usage, "bad value for %s", opt);
  return v;
}

/* --page-size and --sector values, each refused with its usage unless it is one we support. */
static uint32_t parse_page_size(const char *usage, const char *v) {
  unsigned long ps = parse_num(usage, "--page-size", v, 16384);
  if (ps != 1024 && ps != 2048 && ps != 4096 && ps != 8192 && ps != 16384)
    die_usage(usage, "--page-size must be 1024, 2048, 4096, 8192 or 16384%s", "");
  return (uint32_t)ps;
}

static uint32_t parse_sector(const char *usage, const char *v) {
  unsigned long sec = parse_num(usage, "--sector", v, 4096);
  if (sec != 512 && sec != 4096) die_usage(usage, "--sector must be 512 or 4096%s", "");
  return (uint32_t)sec;
}

/* ---- environment ---------------------------------------------------------------- */

static char self_path[PATH_MAX];

static const char *default_shim(void) {
  static char buf[PATH_MAX + 32];
  const char *env = getenv("CRASHCHECK_SHIM");
  if (env && *env) return env;
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", self_path);
  snprintf(buf, sizeof buf, "%s/../lib/libpowercut.so", dirname(dir));
  return buf;
}

/* The workload suite: corpus/workloads/ in a source tree (the working folder), else the one
 * `make install` put beside the installed crashcheck (PREFIX/share/crashcheck/workloads, with
 * the reference files its cases start from in ../interop). NULL when there is neither. */
static const char *workloads_dir(void) {
  static char buf[PATH_MAX + 64];
  struct stat st;
  if (stat("corpus/workloads", &st) == 0 && S_ISDIR(st.st_mode)) return "corpus/workloads";
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", self_path);
  snprintf(buf, sizeof buf, "%s/../share/crashcheck/workloads", dirname(dir));
  return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? buf : NULL;
}

/* The scratch directory in use, removed if the run is interrupted (Ctrl-C, a CI
 * timeout): tmpfs is memory, and every run leaves a file-sized image there. */
static char current_workdir[PATH_MAX];
static pid_t workdir_owner;

static void remove_on_signal(int sig) {
  /* Only async-signal-safe calls: fork, execve, waitpid, _exit. */
  if (current_workdir[0] && getpid() == workdir_owner) {
    pid_t pid = fork();
    if (pid == 0) {
      char *const argv[] = {"rm", "-rf", current_workdir, NULL};
      execve("/bin/rm", argv, (char *const[]){NULL});
      _exit(127);
    }
    if (pid > 0) waitpid(pid, NULL, 0);
  }
  _exit(128 + sig);
}

/* A fresh scratch directory, on tmpfs when there is one (images are written for
 * every distinct crash state). */
static int make_workdir(char *out, size_t len) {
  static bool handlers;
  if (!handlers) {
    handlers = true;
    signal(SIGINT, remove_on_signal);
    signal(SIGTERM, remove_on_signal);
    signal(SIGHUP, remove_on_signal);
  }
  const char *base = getenv("CRASHCHECK_WORKDIR");
  if (!base || !*base) {
    struct stat st;
    base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
           : getenv("TMPDIR")                                                                ? getenv("TMPDIR")
                                                                                              : "/tmp";
  }
  snprintf(out, len, "%s/crashcheck-XXXXXX", base);
  if (!mkdtemp(out)) {
    fprintf(stderr, "crashcheck: cannot make a scratch directory in %s: %s\n", base, strerror(errno));
    return -1;
  }
  snprintf(current_workdir, sizeof current_workdir, "%s", out);
  workdir_owner = getpid();
  return 0;
}

static void remove_workdir(const char *dir) {
  if (!strcmp(dir, current_workdir)) current_workdir[0] = 0;
  /* in-process: a shell and rm cost more than a small exploration's checks (and a quote in
   * the folder's name would have broken the command) */
  if (cc_remove_tree(dir) != 0) fprintf(stderr, "crashcheck: could not remove %s: %s\n", dir, strerror(errno));
}

static cc_case *load_case_or_die(const char *path) {
  cc_case *c = malloc(sizeof *c);
  char why[512];
  if (!c) exit(EXIT_USAGE);
  if (cc_case_load(path, c, why, sizeof why) != CC_OK) {
    fprintf(stderr, "crashcheck: %s\n", why);
    exit(EXIT_USAGE);
  }
  return c;
}

/* A generated workload: every kind of operation, weighted towards the ones that
 * change allocation state. */
/* ---- explore ------------------------------------------------------------------------ */

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

static void print_coverage_json(const cc_cover_cells cells, uint32_t page_size, uint32_t sector) {
  cc_coverage_print_json(stdout, cells, page_size, sector);
}

/* The shard a --json output is ("shard": I, "shard_count": N; 0 of 1 unsharded), so that
 * crashcheck merge can tell a missing or repeated shard. */
static void print_shard_json(unsigned shard, unsigned shards) {
  printf("\"shard\": %u, \"shard_count\": %u, ", shard, shards > 1 ? shards : 1);
}

static void print_json(const cc_explore_result *r, uint32_t page_size, uint32_t sector, unsigned shard,
                       unsigned shards) {
  printf("{");
  print_shard_json(shard, shards);
  printf("\"steps\": %llu, \"states\": %llu, \"distinct_states\": %llu, \"violations\": %llu, \"leaks\": %llu, "
         "\"reclaimed\": %llu, \"first_violation_state\": %llu, \"again_runs\": %llu, \"again_states\": %llu, "
         "\"error_steps\": %llu, \"error_runs\": %llu, \"error_contract\": %llu, \"error_states\": %llu, "
         "\"again_forced_repair\": %llu, \"again_forced_create\": %llu, \"again_sampled\": %llu, "
         "\"again_forced_same\": %llu, \"again_forked\": %llu, \"open_states\": %llu, \"adopt_states\": %llu, "
         "\"stopped\": %s, \"seconds\": %.3f, "
         "\"states_per_sec\": %.1f, \"checked_per_sec\": %.1f, \"violation_list\": [",
         (unsigned long long)r->steps, (unsigned long long)r->states, (unsigned long long)r->distinct,
         (unsigned long long)r->violations, (unsigned long long)r->leaks, (unsigned long long)r->reclaimed,
         (unsigned long long)r->first_violation_state, (unsigned long long)r->again_runs,
         (unsigned long long)r->again_states, (unsigned long long)r->error_steps, (unsigned long long)r->error_runs,
         (unsigned long long)r->error_contract, (unsigned long long)r->error_states, (unsigned long long)r->again_repair,
         (unsigned long long)r->again_create, (unsigned long long)r->again_sampled,
         (unsigned long long)r->again_same, (unsigned long long)r->again_forked, (unsigned long long)r->open_states,
         (unsigned long long)r->adopt_states, r->stopped ? "true" : "false",
         r->seconds, r->seconds > 0 ? r->distinct / r->seconds : 0.0,
         r->seconds > 0 ? (r->distinct + r->again_states + r->error_distinct) / r->seconds : 0.0);
  for (unsigned i = 0; i < r->nfound; i++) {
    const cc_found *f = &r->found[i];
    char tear[32];
    cc_schedule_tear_text(&f->sched, tear, sizeof tear);
    printf("%s{\"invariant\": ", i ? ", " : "");
    json_string(f->v.invariant);
    printf(", \"step\": %u, \"call\": ", f->step);
    json_string(f->call);
    printf(", \"operation\": %u, \"operation_kind\": ", f->op_index);
    json_string(f->op);
    printf(", \"tear\": ");
    json_string(tear);
    printf(", \"writeback\": ");
    json_string(cc_writeback_name(f->sched.writeback));
    printf(", \"seed\": %u, \"error\": ", f->sched.seed);
    json_string(f->error);
    printf(", \"expected\": ");
    json_string(f->v.expected);
    printf(", \"found\": ");
    json_string(f->v.found);
    printf(", \"reproducer\": ");
    json_string(f->reproducer);
    printf("}");
  }
  printf("], \"coverage\": ");
  print_coverage_json(r->cover, page_size, sector);
  printf("}\n");
}

static void parse_tears(const char *list, cc_explore_opts *o) {
  o->prefixes = o->suffixes = o->garbage = o->garbage_head = false;
  o->random_tears = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
    if (!strcmp(t, "prefix")) o->prefixes = true;
    else if (!strcmp(t, "suffix")) o->suffixes = true;
    else if (!strcmp(t, "garbage")) o->garbage = o->garbage_head = true;
    else if (!strcmp(t, "none") || !strcmp(t, "all")) continue;
    else if (!strncmp(t, "random:", 7)) o->random_tears = (unsigned)parse_num(usage_explore, "--tear", t + 7, 255);
    else die_usage(usage_explore, "unknown tear \"%s\"", t);
  }
}

static void parse_writebacks(const char *list, cc_explore_opts *o) {
  o->writeback_all = false;
  o->random_writebacks = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
    if (!strcmp(t, "all")) o->writeback_all = true;
    else if (!strcmp(t, "none")) continue;
    else if (!strncmp(t, "random:", 7))
      o->random_writebacks = (unsigned)parse_num(usage_explore, "--writeback", t + 7, 255);
    else die_usage(usage_explore, "unknown writeback \"%s\"", t);
  }
}

/* --shard I/N: the I-th (from 0) of N parts of the crash states, by their hash (cc_takes). */
static void parse_shard(const char *usage, const char *v, unsigned *shard, unsigned *shards) {
  unsigned si = 0, sn = 0;
  char extra;
  if (!v || sscanf(v, "%u/%u%c", &si, &sn, &extra) != 2 || sn == 0 || si >= sn)
    die_usage(usage, "--shard wants I/N with 0 <= I < N, not \"%s\"", v ? v : "");
  *shard = si;
  *shards = sn;
}

static int cmd_explore(int argc, char **argv) {
  if (want_help(argc, argv)) {
    fputs(usage_explore, stdout);
    return EXIT_CLEAN;
  }
  cc_explore_opts o;
  cc_explore_defaults(&o);
  o.outdir = "crashcheck-out";
  o.progress = isatty(2);
  const char *case_path = NULL;
  long ops = -1, seed = 0, page_size = 0, sector = 0;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--ops")) ops = (long)parse_num(usage_explore, a, v, CC_MAX_OPS), i++;
    else if (!strcmp(a, "--seed")) seed = (long)parse_num(usage_explore, a, v, 1ul << 31), i++;
    else if (!strcmp(a, "--page-size")) page_size = (long)parse_num(usage_explore, a, v, 16384), i++;
    else if (!strcmp(a, "--sector")) sector = (long)parse_num(usage_explore, a, v, 4096), i++;
    else if (!strcmp(a, "--jobs")) o.jobs = (unsigned)parse_num(usage_explore, a, v, 64), i++;
    else if (!strcmp(a, "--tear")) parse_tears(v ? v : "", &o), i++;
    else if (!strcmp(a, "--writeback")) parse_writebacks(v ? v : "", &o), i++;
    else if (!strcmp(a, "--out")) o.outdir = v, i++;
    else if (!strcmp(a, "--again") && v && !strcmp(v, "off")) o.again_off = true, i++;
    else if (!strcmp(a, "--again")) o.again = (unsigned)parse_num(usage_explore, a, v, 100000), i++;
    else if (!strcmp(a, "--json")) json = true;
    else if (!strcmp(a, "--errors")) o.errors = true;
    else if (!strcmp(a, "--fail-fast")) o.fail_fast = true;
    else if (!strcmp(a, "--quiet")) o.progress = false;
    else if (!strcmp(a, "--shard")) parse_shard(usage_explore, v, &o.shard, &o.shards), i++;
    else if (a[0] == '-') die_usage(usage_explore, "unknown option %s", a);
    else if (case_path) die_usage(usage_explore, "more than one case: %s", a);
    else case_path = a;
  }
  if (!o.outdir) die_usage(usage_explore, "%s needs a directory", "--out");
  if (o.jobs == 0) o.jobs = 1;
  if (page_size && page_size != 1024 && page_size != 2048 && page_size != 4096 && page_size != 8192 &&
      page_size != 16384)
    die_usage(usage_explore, "--page-size must be 1024, 2048, 4096, 8192 or 16384%s", "");
  if (sector && sector != 512 && sector != 4096) die_usage(usage_explore, "--sector must be 512 or 4096%s", "");
  if (ops >= 0 && case_path) die_usage(usage_explore, "give a case or --ops, not both%s", "");
  if (o.fail_fast && o.errors) die_usage(usage_explore, "--fail-fast is for power cuts: not with %s", "--errors");

  cc_case *c;
  if (ops >= 0) {
    c = malloc(sizeof *c);
    cc_generate(c, (unsigned long)ops, (unsigned long)seed);
  } else {
    char deflt[PATH_MAX + 80];
    const char *suite = workloads_dir();
    snprintf(deflt, sizeof deflt, "%s/default", suite ? suite : "corpus/workloads");
    c = load_case_or_die(case_path ? case_path : deflt);
  }
  if (page_size && c->image[0] && (uint32_t)page_size != c->page_size) {
    fprintf(stderr, "crashcheck: %s starts from the image %s, whose pages are %u bytes: --page-size %ld does not "
            "apply to it\n", case_path, c->image, c->page_size, page_size);
    free(c);
    return EXIT_USAGE;
  }
  if (page_size) c->page_size = (uint32_t)page_size;
  if (sector) c->sector = (uint32_t)sector;
  char work[PATH_MAX];
  if (make_workdir(work, sizeof work) != 0) return EXIT_USAGE;
  o.workdir = work;
  o.shim = default_shim();
  o.self = self_path;
  cc_explore_result r;
  int rc = o.errors ? cc_explore_errors(c, &o, &r) : cc_explore(c, &o, &r);
  remove_workdir(work);
  if (rc != CC_OK || r.error[0]) {
    fprintf(stderr, "crashcheck: %s\n", r.error[0] ? r.error : cc_strerror(rc));
    free(c);
    cc_explore_result_free(&r);
    /* A pager that disagrees with the model without a power cut has a bug too. */
    return r.run_failed ? EXIT_VIOLATION : EXIT_USAGE;
  }
  if (json) {
    print_json(&r, c->page_size, c->sector, o.shard, o.shards);
  } else {
    printf("explored %zu operations at %u-byte pages, %u-byte sectors%s\n", c->nops, c->page_size, c->sector,
           o.shards > 1 ? " (one shard)" : "");
    if (c->image[0])
      printf("  starting from    %s\n  its open         %llu crash states cut in it, %llu of them with the adoption "
             "still to finish\n", c->image, (unsigned long long)r.open_states, (unsigned long long)r.adopt_states);
    printf("  steps            %llu\n  crash states     %llu\n  distinct images  %llu checked (%llu duplicates)\n",
           (unsigned long long)r.steps, (unsigned long long)r.states, (unsigned long long)r.distinct,
           (unsigned long long)(r.states - r.distinct));
    printf("  violations       %llu\n  leaked pages     %llu (W1, adopted files, after recovery)\n"
           "  reclaimed pages  %llu in %llu states (left by an interrupted protected operation, freed by recovery)\n",
           (unsigned long long)r.violations, (unsigned long long)r.leaks, (unsigned long long)r.reclaimed,
           (unsigned long long)r.leaky_states);
    if (r.stopped) printf("  stopped          at the first violation (--fail-fast): the counts are of the part explored\n");
    if (o.errors)
      printf("  I/O errors       %llu failable steps, %llu runs with an error injected (step x outcome), %llu broke the "
             "error contract (E1), %llu crash states after errors\n",
             (unsigned long long)r.error_steps, (unsigned long long)r.error_runs, (unsigned long long)r.error_contract,
             (unsigned long long)r.error_states);
    else
      printf("  R7 follow-ups    %llu crash images recovered and worked on, %llu crash states of the follow-ups checked\n"
           "                   forced: %llu where recovery repaired or reclaimed, %llu cut in the create "
           "(%llu more recover to a file already followed); sampled: %llu\n",
           (unsigned long long)r.again_runs, (unsigned long long)r.again_states, (unsigned long long)r.again_repair,
           (unsigned long long)r.again_create, (unsigned long long)r.again_same, (unsigned long long)r.again_sampled);
    /* of the rows of the case's format (its --json counts both: the suite's sum) */
    size_t required, stray,
        covered = cc_coverage_count_format(r.cover, c->format3 ? 3 : 2, c->page_size, c->sector, &required, &stray);
    printf("  crash coverage   %zu of %zu required %s cells (`crashcheck coverage` lists what is missing)\n", covered,
           required, c->format3 ? "0.3" : "0.2");
    if (stray) printf("  note: %zu covered cells the protocol table says cannot be reached\n", stray);
    /* Every distinct state checked counts, the follow-ups' too: with R7 they are most of them. */
    uint64_t checked = r.distinct + r.again_states + r.error_distinct;
    printf("  time             %.2f s (%llu states checked, %.0f a second)\n", r.seconds, (unsigned long long)checked,
           r.seconds > 0 ? checked / r.seconds : 0.0);
    for (unsigned i = 0; i < r.nfound; i++) {
      const cc_found *f = &r.found[i];
      char tear[32];
      cc_schedule_tear_text(&f->sched, tear, sizeof tear);
      printf("\n%s violated at step %u (%s, in operation %u: %s), tear %s, writeback %s, seed %u%s%s\n"
             "  expected: %s\n  found:    %s\n  reproducer: %s\n",
             f->v.invariant, f->step, f->call, f->op_index, f->op, tear, cc_writeback_name(f->sched.writeback),
             f->sched.seed, f->error[0] ? ", after an error at step " : "", f->error, f->v.expected, f->v.found,
             f->reproducer[0] ? f->reproducer : "(not written)");
    }
  }
  int status = r.violations ? EXIT_VIOLATION : EXIT_CLEAN;
  free(c);
  cc_explore_result_free(&r);
  return status;
}

/* ---- replay ------------------------------------------------------------------------- */

static int replay(const cc_case *c, bool tell, char *invariant, size_t invlen, char *call, size_t calllen) {
  char work[PATH_MAX], file[PATH_MAX + 16], trace[PATH_MAX + 16], image[PATH_MAX + 16], model[PATH_MAX + 16];
  if (make_workdir(work, sizeof work) != 0) return EXIT_USAGE;
  snprintf(file, sizeof file, "%s/pages", work);
  snprintf(trace, sizeof trace, "%s/trace", work);
  snprintf(image, sizeof image, "%s/image", work);
  snprintf(model, sizeof model, "%s/model.pages", work);
  cc_explore_opts o;
  cc_explore_defaults(&o);
  o.workdir = work;
  o.shim = default_shim();
  o.self = self_path;
  if (tell) {
    printf("case: %u-byte pages, %u-byte sectors, %s%s%zu operations\n", c->page_size, c->sector,
           c->format3 ? "a 0.3 file, " : c->upgrade ? "a 0.2 file opened for the upgrade to 0.3, " : "",
           c->sparse ? "sparse, " : "", c->nops);
  }
  if (c->error.step) { /* explore --errors' reproducers: the run fails a call first */
    int st = cc_replay_error(c, &o, tell, invariant, invlen);
    snprintf(call, calllen, "%s", "error");
    remove_workdir(work);
    return st;
  }
  /* A case with an image starts from a copy of it (the model's run and the cut one alike). */
  bool from_image = c->image[0] != 0;
  char why[512] = "";
  if (from_image && (cc_case_image_copy(c, model, why, sizeof why) != CC_OK ||
                     cc_case_image_copy(c, file, why, sizeof why) != CC_OK)) {
    fprintf(stderr, "crashcheck: %s\n", why);
    remove_workdir(work);
    return EXIT_USAGE;
  }
  if (tell && from_image) printf("starting from: %s\n", c->image);
  cc_run run;
  int rc = from_image ? cc_run_case_image(c, model, &run) : cc_run_case(c, model, &run);
  if (rc != CC_OK) {
    if (tell) printf("the workload fails without any crash: %s\n", run.error);
    snprintf(invariant, invlen, "run");
    cc_run_free(&run);
    remove_workdir(work);
    return EXIT_VIOLATION;
  }
  int status = EXIT_CLEAN;
  if (c->sched.cut_step == 0) {
    if (tell) printf("no power cut scheduled: the workload ran and matched the model at every operation\n");
    goto out;
  }
  char spec[128];
  cc_cut_spec(&c->sched, spec, sizeof spec);
  int st = cc_record(c, &o, file, trace, spec, image, from_image, why, sizeof why);
  if (st < 0) {
    fprintf(stderr, "crashcheck: %s\n", why);
    status = EXIT_USAGE;
    goto out;
  }
  if (st != 99) {
    if (tell) printf("the workload has fewer than %u steps: no power cut happened (exit %d)\n", c->sched.cut_step, st);
    status = st == 0 ? EXIT_CLEAN : EXIT_VIOLATION;
    if (st != 0) snprintf(invariant, invlen, "run");
    goto out;
  }
  pc_trace *t = NULL;
  pc_step_info info = {0};
  if (pc_trace_open(trace, &t) == PC_OK) pc_trace_step_info(t, c->sched.cut_step, &info);
  size_t index = info.op ? (size_t)info.op - 1 : 0;
  if (index >= run.nstates) index = run.nstates - 1;
  snprintf(call, calllen, "%s", pc_call_name(info.call));
  if (tell) {
    printf("operations:\n");
    for (size_t i = 0; i <= c->nops; i++) {
      if (i + 3 < index || i > index + 3) continue;
      printf("  %s %4zu %s", i == index ? ">>" : "  ", i,
             i ? cc_op_name(c->ops[i - 1].kind) : from_image ? "open (adopts the image)" : "create");
      if (i) printf(" %u %u", c->ops[i - 1].a, c->ops[i - 1].b);
      printf("%s\n", i == index ? "    <- in flight at the cut" : "");
    }
    char tear[32];
    cc_schedule_tear_text(&c->sched, tear, sizeof tear);
    printf("power cut at step %u: %s (offset %llu, length %llu) in operation %zu, tear %s, writeback %s, seed %u\n",
           c->sched.cut_step, pc_call_name(info.call), (unsigned long long)info.off, (unsigned long long)info.len,
           index, tear, cc_writeback_name(c->sched.writeback), c->sched.seed);
  }
  pc_trace_free(t);
  /* A cut in an image's open: the file as its writer left it is the state before. */
  const cc_state *before = index ? &run.states[index - 1] : from_image ? &run.states[0] : NULL,
                 *after = &run.states[index];
  cc_verdict v;
  cc_check_image_flags(image, c->page_size, cc_create_flags(c), before, after,
                       index ? c->ops[index - 1].kind : CC_OP_KINDS, NULL, &v);
  if (tell) {
    char b[200], a[200];
    if (before) cc_state_describe(before, b, sizeof b);
    cc_state_describe(after, a, sizeof a);
    printf("model: before the operation %s; after it %s\n", before ? b : "no file", a);
    if (access(image, F_OK) != 0)
      printf("crash image: no file (the file's name was not durable at the cut: POWERCUT_NAMESPACE=posix)\n");
    if (v.reclaimed) printf("recovery: reclaimed %llu pages an interrupted operation left\n", (unsigned long long)v.reclaimed);
    if (v.leaks) printf("warning (W1): %llu pages leaked\n", (unsigned long long)v.leaks);
    if (!v.nviolations) printf("verdict: recovered correctly (R1-R6 hold)\n");
    for (unsigned i = 0; i < v.nviolations; i++)
      printf("verdict: %s violated\n  expected: %s\n  found:    %s\n", v.v[i].invariant, v.v[i].expected, v.v[i].found);
    if (v.nviolations && c->sched.tear == CC_TEAR_GARBAGE)
      printf("note: a garbage tear (a sector holding neither old nor new bytes) is outside the default fault\n"
             "      model: a 0.2 file survives one over page 0's first sector when the rest of the file\n"
             "      rebuilds it (salvage), not one that takes a metadata copy with it\n");
  }
  if (!v.nviolations && c->again.cut_step && access(image, F_OK) == 0) {
    /* R7: the crash image goes on: the follow-up's open recovers it, then works on. (A state
     * without a file, a cut in the create before its name was durable, has nothing to recover.) */
    cc_again_where aw;
    cc_verdict inner;
    uint64_t n = cc_again(c, &o, image, &c->again, tell, &inner, &aw);
    if (tell && n == 0 && !inner.nviolations)
      printf("follow-up: fewer than %u steps, no second cut happened\n", c->again.cut_step);
    if (inner.nviolations) {
      v = inner;
      v.v[0].invariant = "R7";
      if (tell)
        printf("verdict: R7 violated (the recovered file does not survive a second cut: %s)\n  expected: %s\n  "
               "found:    %s\n",
               inner.v[0].invariant ? inner.v[0].invariant : "R7", inner.v[0].expected, inner.v[0].found);
    } else if (tell && n) {
      printf("verdict: the follow-up recovered correctly too (R7 holds)\n");
    }
  }
  if (v.nviolations) {
    snprintf(invariant, invlen, "%s", v.v[0].invariant);
    status = EXIT_VIOLATION;
  }
out:
  cc_run_free(&run);
  remove_workdir(work);
  return status;
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- coverage ----------------------------------------------------------------------- */

static int cmd_coverage(int argc, char **argv) {
  if (want_help(argc, argv)) {
    fputs(usage_coverage, stdout);
    return EXIT_CLEAN;
  }
  const char *cases[256];
  unsigned ncases = 0, nsizes = 0, nsectors = 0;
  uint32_t sizes[8], sectors[2];
  bool require = false, json = false;
  unsigned jobs = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--page-size")) {
      if (nsizes == 8) die_usage(usage_coverage, "at most 8 page sizes%s", "");
      sizes[nsizes++] = parse_page_size(usage_coverage, v), i++;
    } else if (!strcmp(a, "--sector")) {
      if (nsectors == 2) die_usage(usage_coverage, "at most 2 sector sizes%s", "");
      sectors[nsectors++] = parse_sector(usage_coverage, v), i++;
    } else if (!strcmp(a, "--jobs")) {
      jobs = (unsigned)parse_num(usage_coverage, a, v, 64), i++;
      if (!jobs) jobs = 1;
    } else if (!strcmp(a, "--require")) require = true;
    else if (!strcmp(a, "--json")) json = true;
    else if (a[0] == '-') die_usage(usage_coverage, "unknown option %s", a);
    else if (ncases == 256) die_usage(usage_coverage, "at most 256 cases%s", "");
    else cases[ncases++] = a;
  }
  static char suite[256][PATH_MAX];
  if (!ncases) {
    const char *dir = workloads_dir();
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) die_usage(usage_coverage, "no case given, and no corpus/workloads/ here (nor an installed suite)%s", "");
    for (struct dirent *e; (e = readdir(d)) && ncases < 256;) {
      if (e->d_name[0] == '.') continue;
      snprintf(suite[ncases], sizeof suite[ncases], "%.3800s/%s", dir, e->d_name);
      cases[ncases] = suite[ncases];
      ncases++;
    }
    closedir(d);
    /* the same order on every machine */
    qsort(cases, ncases, sizeof *cases, compare_strings);
  }
  if (!nsizes) sizes[0] = 1024, sizes[1] = 4096, sizes[2] = 16384, nsizes = 3;
  if (!nsectors) sectors[0] = 512, sectors[1] = 4096, nsectors = 2;
  cc_case **loaded = calloc(ncases, sizeof *loaded);
  for (unsigned k = 0; k < ncases; k++) {
    loaded[k] = load_case_or_die(cases[k]);
    bool explored = !loaded[k]->image[0];
    for (unsigned si = 0; si < nsizes && !explored; si++) explored = sizes[si] == loaded[k]->page_size;
    /* Its page size is its image's: at the others it is not explored. */
    if (loaded[k]->image[0])
      fprintf(stderr, "crashcheck: %s starts from a %u-byte-page image: %s\n", cases[k], loaded[k]->page_size,
              explored ? "explored at that page size only" : "no page size asked for is its own, not explored");
  }
  char work[PATH_MAX];
  if (make_workdir(work, sizeof work) != 0) return EXIT_USAGE;
  int status = EXIT_CLEAN;
  for (unsigned si = 0; si < nsizes; si++)
    for (unsigned se = 0; se < nsectors; se++) {
      cc_cover_cells all;
      memset(all, 0, sizeof all);
      uint64_t violations = 0;
      for (unsigned k = 0; k < ncases; k++) {
        cc_explore_opts o;
        cc_explore_defaults(&o);
        o.workdir = work;
        o.shim = default_shim();
        o.self = self_path;
        o.jobs = jobs;
        cc_case *c = loaded[k];
        if (c->image[0] && c->page_size != sizes[si]) continue; /* an image has its own page size (noted above) */
        if (!c->image[0]) c->page_size = sizes[si];
        c->sector = sectors[se];
        if (!json && isatty(2)) fprintf(stderr, "\rcrashcheck: %s at %u/%u ...%10s", cases[k], sizes[si], sectors[se], "");
        cc_explore_result r;
        int rc = cc_explore(c, &o, &r);
        if (rc != CC_OK || r.error[0]) {
          if (isatty(2)) fprintf(stderr, "\n");
          fprintf(stderr, "crashcheck: %s at %u-byte pages: %s\n", cases[k], sizes[si], r.error[0] ? r.error : cc_strerror(rc));
          status = r.run_failed ? EXIT_VIOLATION : EXIT_USAGE;
        } else {
          cc_coverage_merge(all, r.cover);
          violations += r.violations;
          if (r.violations)
            fprintf(stderr, "crashcheck: %s at %u-byte pages, %u-byte sectors: %llu violations (crashcheck explore %s "
                    "--page-size %u --sector %u tells them)\n", cases[k], sizes[si], sectors[se],
                    (unsigned long long)r.violations, cases[k], sizes[si], sectors[se]);
        }
        cc_explore_result_free(&r);
      }
      if (!json && isatty(2)) fprintf(stderr, "\r%*s\r", 100, "");
      size_t required, stray, covered = cc_coverage_count(all, sizes[si], sectors[se], &required, &stray);
      if (violations || stray || (require && covered < required)) status = status ? status : EXIT_VIOLATION;
      if (json) {
        print_coverage_json(all, sizes[si], sectors[se]);
        printf("\n");
        continue;
      }
      printf("%u-byte pages, %u-byte sectors: %zu of %zu required cells covered by %u cases%s\n", sizes[si],
             sectors[se], covered, required, ncases, violations ? " (and they found violations)" : "");
      for (int op = 0; op < CC_COVER_OPS; op++)
        for (int w = 0; w < CC_WHAT_KINDS; w++)
          for (int x = 0; x < CC_WHERE_KINDS; x++) {
            int st = cc_cell_status(op, w, x, sizes[si], sectors[se]);
            if (st == CC_CELL_REQUIRED && !all[op][w][x])
              printf("  missing:     %-11s %-19s %s\n", cc_cover_op_name(op), cc_cover_what_name(w), cc_cover_where_name(x));
            if (st == CC_CELL_IMPOSSIBLE && all[op][w][x])
              printf("  impossible:  %-11s %-19s %s (covered: the table or the pager is wrong)\n", cc_cover_op_name(op),
                     cc_cover_what_name(w), cc_cover_where_name(x));
          }
    }
  remove_workdir(work);
  for (unsigned k = 0; k < ncases; k++) free(loaded[k]);
  free(loaded);
  return status;
}

/* A state `crashcheck run` kept: a folder, or its story, beside the run's run.info. */
static bool is_run_state(const char *arg) {
  struct stat st;
  char info[PATH_MAX + 16], copy[PATH_MAX];
  snprintf(copy, sizeof copy, "%s", arg);
  size_t n = strlen(copy);
  while (n > 1 && copy[n - 1] == '/') copy[--n] = 0;
  bool story = n > 4 && !strcmp(copy + n - 4, ".txt");
  if (!story && (stat(copy, &st) != 0 || !S_ISDIR(st.st_mode))) return false;
  char *slash = strrchr(copy, '/');
  if (slash) *slash = 0;
  snprintf(info, sizeof info, "%s/run.info", slash ? copy : ".");
  return access(info, R_OK) == 0;
}

/* crashcheck replay of a state crashcheck run kept: the check again, on the state laid out
 * again; exit 1 if it fails again. */
static int replay_run_state(const char *kept, const char *keep) {
  char work[PATH_MAX];
  if (keep) {
    struct stat st;
    if (stat(keep, &st) == 0) die_usage("usage: crashcheck replay STATE [--keep DIR]\n",
                                        "--keep %s: the folder exists (give a new one)", keep);
  }
  if (make_workdir(work, sizeof work) != 0) return EXIT_USAGE;
  cc_prog_result *r = malloc(sizeof *r);
  if (!r) return EXIT_USAGE;
  int rc = cc_run_replay(kept, keep, work, r);
  remove_workdir(work);
  int status = rc != CC_OK ? EXIT_USAGE : r->violations ? EXIT_VIOLATION : EXIT_CLEAN;
  if (rc != CC_OK) {
    fprintf(stderr, "crashcheck replay: %s\n", r->error[0] ? r->error : cc_strerror(rc));
  } else {
    const cc_prog_found *f = r->nfound ? &r->found[0] : NULL;
    printf("state of %s laid out again from the run's trace%s%s\n", kept, keep ? " in " : "", keep ? keep : "");
    if (f) {
      if (f->step) printf("power cut at step %llu (%s), %s\n", (unsigned long long)f->step, f->call, f->crash);
      else printf("at exit (what was never synced is lost)\n");
      printf("verdict: the check fails again (exit %d)%s%.300s\n", f->status, f->output[0] ? ": " : "", f->output);
    } else {
      printf("verdict: the check passes now (the check, or what it reads, changed since the run)\n");
    }
  }
  free(r);
  return status;
}

static int cmd_replay(int argc, char **argv) {
  static const char *usage = "usage: crashcheck replay FILE\n       crashcheck replay STATE [--keep DIR]\n\n"
          "Reproduces one case deterministically (a reproducer, a hand-written "
          "case or any fuzzer\ncrash file) and tells the story: the operations, the step and call where power was "
          "cut,\nthe tear, what recovery found and which invariant failed. Exit 1 on a violation.\n\n"
          "STATE: a failing state `crashcheck run` kept (its folder in the --out folder, or its story\n"
          "STATE.txt): the state is laid out again from the run's trace (run.trace, run.snap, run.info\n"
          "beside it) and the check runs there again; --keep DIR leaves that folder for a debugger.\n"
          "Exit 1 if the check fails again.\n";
  int status;
  bool keep_args = argc == 4 && !strcmp(argv[2], "--keep");
  if (handled_usage(argc, argv, usage, argc == 2 || keep_args, &status)) return status;
  if (is_run_state(argv[1])) return replay_run_state(argv[1], keep_args ? argv[3] : NULL);
  if (keep_args) die_usage(usage, "--keep is for a state crashcheck run kept; %s is not one", argv[1]);
  cc_case *c = load_case_or_die(argv[1]);
  char inv[16] = "", call[32] = "";
  int st = replay(c, true, inv, sizeof inv, call, sizeof call);
  free(c);
  return st;
}

/* ---- minimize ----------------------------------------------------------------------- */

/* R2 and R3 are one finding told two ways: the recovered allocation state is neither the
 * state before the operation in flight nor the one after it; the checker names it R3 when
 * what is missing was there in both. A shorter case may well lose a completed operation
 * where the longer one mixed two: it still fails the same way. */
static bool same_invariant(const char *a, const char *b) {
  bool a23 = !strcmp(a, "R2") || !strcmp(a, "R3"), b23 = !strcmp(b, "R2") || !strcmp(b, "R3");
  return !strcmp(a, b) || (a23 && b23);
}

/* Does the case (explored in full) still fail with this invariant at this call? */
static bool still_fails(const cc_case *c, const char *inv, const char *call, cc_schedule *sched) {
  char work[PATH_MAX];
  if (make_workdir(work, sizeof work) != 0) return false;
  cc_explore_opts o;
  cc_explore_defaults(&o);
  o.workdir = work;
  o.shim = default_shim();
  o.self = self_path;
  o.max_violations = 64;
  /* A garbage sector is beyond the default tears: each trial explores it too, or no trial
   * of a garbage reproducer could fail the same way (and each would explore in vain). */
  o.garbage_head = c->sched.tear == CC_TEAR_GARBAGE;
  /* R7's follow-ups (a recorded run on each recovered file) find R7 alone: a trial for any
   * other invariant skips them, which is most of a trial's time. */
  o.again_off = strcmp(inv, "R7") != 0;
  cc_explore_result r;
  bool fails = false;
  if (cc_explore(c, &o, &r) == CC_OK && !r.error[0]) {
    for (unsigned i = 0; i < r.nfound && !fails; i++) {
      if (!same_invariant(r.found[i].v.invariant, inv) || strcmp(r.found[i].call, call)) continue;
      fails = true;
      *sched = r.found[i].sched;
    }
  }
  cc_explore_result_free(&r);
  remove_workdir(work);
  return fails;
}

static int cmd_minimize(int argc, char **argv) {
  const char *in = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if (argv[i][0] != '-' && !in) in = argv[i];
    else if (strcmp(argv[i], "--help") && strcmp(argv[i], "-h")) in = NULL, out = NULL, i = argc;
  }
  static const char *usage = "usage: crashcheck minimize FILE -o OUT\n\nShrinks a failing case (its operations and schedule) while it "
          "still fails the same\ninvariant (R2 and R3 count as one) at the same kind of step; writes the smallest case "
          "found as text.\n";
  int status;
  if (handled_usage(argc, argv, usage, in && out, &status)) return status;
  cc_case *c = load_case_or_die(in);
  if (c->error.step) { /* shrinking would have to move the error with the steps: not done */
    fprintf(stderr, "crashcheck: %s has an error line (explore --errors): minimize does not shrink such cases; "
            "replay it\n", in);
    free(c);
    return EXIT_USAGE;
  }
  char inv[16] = "", call[32] = "";
  if (replay(c, false, inv, sizeof inv, call, sizeof call) != EXIT_VIOLATION || !strcmp(inv, "run")) {
    fprintf(stderr, "crashcheck: %s does not fail with a crash invariant: nothing to minimize\n", in);
    free(c);
    return EXIT_USAGE;
  }
  fprintf(stderr, "crashcheck: minimizing a %s violation at a %s step, %zu operations\n", inv, call, c->nops);
  cc_case *trial = malloc(sizeof *trial);
  cc_schedule sched = c->sched;
  /* Delta debugging over the operations: drop chunks, halving their size. */
  for (size_t chunk = c->nops / 2 ? c->nops / 2 : 1; chunk >= 1; chunk /= 2) {
    bool progress = true;
    while (progress) {
      progress = false;
      for (size_t start = 0; start < c->nops; start += chunk) {
        *trial = *c;
        size_t end = start + chunk < c->nops ? start + chunk : c->nops;
        memmove(trial->ops + start, trial->ops + end, (c->nops - end) * sizeof *trial->ops);
        trial->nops = c->nops - (end - start);
        if (still_fails(trial, inv, call, &sched)) {
          *c = *trial;
          c->sched = sched;
          progress = true;
          fprintf(stderr, "crashcheck: %zu operations\n", c->nops);
          break;
        }
      }
    }
    if (chunk == 1) break;
  }
  /* The schedule of the smallest case is the first failing state explore found. */
  if (c->sched.cut_step == 0 || still_fails(c, inv, call, &sched)) c->sched = sched;
  int rc = cc_case_save_text(c, out);
  fprintf(stderr, "crashcheck: wrote %s (%zu operations, cut at step %u)\n", out, c->nops, c->sched.cut_step);
  free(trial);
  free(c);
  return rc == CC_OK ? EXIT_CLEAN : EXIT_USAGE;
}

/* ---- the small commands ---------------------------------------------------------------- */

static int cmd_check(int argc, char **argv) {
  static const char *usage = "usage: crashcheck check IMAGE\n\nChecks one pager file read-only: every structural rule, findings in "
          "words.\nExit 1 if there is any finding.\n";
  int status;
  if (handled_usage(argc, argv, usage, argc == 2, &status)) return status;
  unsigned findings = 0;
  if (cc_fsck(argv[1], &findings) != CC_OK) return EXIT_USAGE;
  printf("%u findings\n", findings);
  return findings ? EXIT_VIOLATION : EXIT_CLEAN;
}

static int cmd_show(int argc, char **argv) {
  static const char *usage = "usage: crashcheck show FILE\n\nPrints a case (text or binary, e.g. a fuzzer input) as text.\n";
  int status;
  if (handled_usage(argc, argv, usage, argc == 2, &status)) return status;
  cc_case *c = load_case_or_die(argv[1]);
  cc_case_print_text(c, stdout);
  free(c);
  return EXIT_CLEAN;
}

static int cmd_encode(int argc, char **argv) {
  static const char *usage = "usage: crashcheck encode TEXT -o OUT\n\nWrites a text case in the binary form fuzzers use.\n";
  int status;
  if (handled_usage(argc, argv, usage, argc == 4 && !strcmp(argv[2], "-o"), &status)) return status;
  cc_case *c = load_case_or_die(argv[1]);
  if (c->image[0]) {
    fprintf(stderr, "crashcheck: %s starts from an image: the binary form has no room for one\n", argv[1]);
    free(c);
    return EXIT_USAGE;
  }
  int rc = cc_case_save_binary(c, argv[3]);
  free(c);
  if (rc != CC_OK) fprintf(stderr, "crashcheck: cannot write %s\n", argv[3]);
  return rc == CC_OK ? EXIT_CLEAN : EXIT_USAGE;
}

static const char *usage_generate =
    "usage: crashcheck generate --ops N --seed S [--format 2|3] -o OUT\n"
    "       crashcheck generate --cover [--from CASE] [--format 2|3] [--page-size N]... [--sector N]...\n"
    "                           [--tries N] [--max-ops N] [--seed S] [--jobs N] -o OUT\n\n"
    "Writes a workload as a text case. With --ops, N operations of every kind drawn at random.\n"
    "With --cover, a case grown until it covers every crash-coverage cell the pager's protocol\n"
    "requires (crashcheck coverage lists them): batches of a few random operations, or runs of\n"
    "one kind, each explored (its own operations only, with R7's forced follow-ups) and kept\n"
    "only if it covers a cell the case did not. A batch that finds a violation ends the case.\n"
    "  --from CASE     start from this case's operations (default: none)\n"
    "  --format F      the file's format: 2 (mappedpages 0.2, the default) or 3 (the extended\n"
    "                  format: the case says \"format 3\", and --cover aims at 0.3's rows of\n"
    "                  cells); with --from, it replaces what the case says\n"
    "  --page-size N   a page size to cover at (repeat; default 4096)\n"
    "  --sector N      512 or 4096 (repeat; default 512)\n"
    "  --tries N       batches to propose before giving up on what is missing (default 100)\n"
    "  --max-ops N     never grow past N operations (default 400)\n"
    "  --seed S        the batches' seed (default 1)\n"
    "  --jobs N        checker processes per exploration (default 1)\n"
    "Exit status: 0 when every required cell is covered, 3 when some are still missing after\n"
    "--tries (the case is written all the same; they are listed), 1 on a violation (the case\n"
    "written shows it: crashcheck explore OUT), 2 on bad usage.\n";

static int generate_covering(const char *from, int format, const uint32_t *sizes, unsigned nsizes,
                             const uint32_t *sectors, unsigned nsectors, unsigned long tries, unsigned long max_ops,
                             unsigned long seed, unsigned jobs, const char *out) {
  cc_case *c = from ? load_case_or_die(from) : calloc(1, sizeof *c);
  if (!from) cc_case_default(c);
  if (format) c->format3 = format == 3;
  cc_grow_opts o = {.tries = (unsigned)tries, .max_ops = max_ops, .seed = seed, .progress = isatty(2)};
  for (unsigned i = 0; i < nsizes; i++)
    for (unsigned j = 0; j < nsectors; j++) {
      o.sizes[o.nconfigs] = sizes[i];
      o.sectors[o.nconfigs++] = sectors[j];
    }
  c->page_size = sizes[0];
  c->sector = sectors[0];
  char work[PATH_MAX];
  if (make_workdir(work, sizeof work) != 0) return EXIT_USAGE;
  cc_explore_defaults(&o.explore);
  o.explore.workdir = work;
  o.explore.shim = default_shim();
  o.explore.self = self_path;
  o.explore.jobs = jobs;
  o.explore.again = 0; /* R7's forced follow-ups only: they cover recovery's own writes */
  o.explore.progress = false;
  cc_grow_result *r = malloc(sizeof *r);
  int rc = cc_generate_covering(c, &o, r);
  remove_workdir(work);
  int status = EXIT_CLEAN;
  if (rc != CC_OK) {
    fprintf(stderr, "crashcheck: generate --cover: %s\n", r->error[0] ? r->error : cc_strerror(rc));
    status = EXIT_USAGE;
  } else if (cc_case_save_text(c, out) != CC_OK) {
    fprintf(stderr, "crashcheck: cannot write %s\n", out);
    status = EXIT_USAGE;
  } else {
    printf("%s: %zu operations (%u of %u batches kept), %zu of %zu required cells covered at %u configurations\n",
           out, c->nops, r->kept, r->tries, r->covered, r->required, o.nconfigs);
    int rows_from, rows_to; /* (the rows of the case's format: a 0.2 case can cover none of 0.3's) */
    cc_coverage_rows(c->format3 ? 3 : 2, &rows_from, &rows_to);
    for (unsigned i = 0; i < o.nconfigs; i++)
      for (int op = rows_from; op < rows_to; op++)
        for (int w = 0; w < CC_WHAT_KINDS; w++)
          for (int x = 0; x < CC_WHERE_KINDS; x++)
            if (!r->cells[i][op][w][x] && cc_cell_status(op, w, x, o.sizes[i], o.sectors[i]) == CC_CELL_REQUIRED)
              printf("  missing at %u/%u: %s/%s/%s\n", o.sizes[i], o.sectors[i], cc_cover_op_name(op),
                     cc_cover_what_name(w), cc_cover_where_name(x));
    if (r->violations) {
      printf("its last batch found %llu violations: crashcheck explore %s --page-size P --sector S tells them\n",
             (unsigned long long)r->violations, out);
      status = EXIT_VIOLATION;
    } else if (r->covered < r->required) {
      status = 3;
    }
  }
  free(r);
  free(c);
  return status;
}

static int cmd_generate(int argc, char **argv) {
  if (want_help(argc, argv)) {
    fputs(usage_generate, stdout);
    return EXIT_CLEAN;
  }
  long ops = -1;
  int format = 0; /* 0: as the case says (--from), else 0.2 */
  unsigned long seed = 0, tries = 100, max_ops = 400, jobs = 1;
  bool cover = false, seeded = false;
  const char *out = NULL, *from = NULL;
  uint32_t sizes[5], sectors[2];
  unsigned nsizes = 0, nsectors = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--ops")) ops = (long)parse_num(usage_generate, a, v, CC_MAX_OPS), i++;
    else if (!strcmp(a, "--seed")) seed = parse_num(usage_generate, a, v, 1ul << 31), seeded = true, i++;
    else if (!strcmp(a, "-o") && v) out = v, i++;
    else if (!strcmp(a, "--cover")) cover = true;
    else if (!strcmp(a, "--from") && v) from = v, i++;
    else if (!strcmp(a, "--format")) {
      if (!v || (strcmp(v, "2") && strcmp(v, "3"))) die_usage(usage_generate, "--format takes 2 or 3, not %s", v ? v : "nothing");
      format = v[0] - '0', i++;
    } else if (!strcmp(a, "--tries")) tries = parse_num(usage_generate, a, v, 1000000), i++;
    else if (!strcmp(a, "--max-ops")) max_ops = parse_num(usage_generate, a, v, CC_MAX_OPS), i++;
    else if (!strcmp(a, "--jobs")) jobs = parse_num(usage_generate, a, v, 64), i++;
    else if (!strcmp(a, "--page-size")) {
      if (nsizes == 5) die_usage(usage_generate, "at most 5 page sizes%s", "");
      sizes[nsizes++] = parse_page_size(usage_generate, v), i++;
    } else if (!strcmp(a, "--sector")) {
      if (nsectors == 2) die_usage(usage_generate, "at most 2 sector sizes%s", "");
      sectors[nsectors++] = parse_sector(usage_generate, v), i++;
    } else die_usage(usage_generate, "unknown argument %s", a);
  }
  if (!out) die_usage(usage_generate, "-o is required%s", "");
  if (cover) {
    if (ops >= 0) die_usage(usage_generate, "--ops and --cover do not go together%s", "");
    if (!nsizes) sizes[nsizes++] = 4096;
    if (!nsectors) sectors[nsectors++] = 512;
    return generate_covering(from, format, sizes, nsizes, sectors, nsectors, tries, max_ops, seeded ? seed : 1,
                             jobs ? (unsigned)jobs : 1, out);
  }
  if (ops < 0) die_usage(usage_generate, "--ops (or --cover) is required%s", "");
  if (from || nsizes || nsectors) die_usage(usage_generate, "--from, --page-size and --sector go with --cover%s", "");
  cc_case *c = malloc(sizeof *c);
  cc_generate(c, (unsigned long)ops, seed);
  c->format3 = format == 3;
  int rc = cc_case_save_text(c, out);
  free(c);
  if (rc != CC_OK) fprintf(stderr, "crashcheck: cannot write %s\n", out);
  return rc == CC_OK ? EXIT_CLEAN : EXIT_USAGE;
}

/* ---- any program ---------------------------------------------------------------------- */

static const char *usage_run =
    "usage: crashcheck run --files GLOB... --check CMD [--setup CMD] [--profile P] [--sector N] [--out DIR]\n"
    "                      [--jobs N] [--shard I/N] [--json] [--quiet] -- PROGRAM [ARGS...]\n\n"
    "Records PROGRAM once under libpowercut in an empty scratch folder (after SETUP ran there),\n"
    "then checks every crash state of the files it touched that match GLOB: at each step that can\n"
    "make data durable, each tear of that step x each early writeback of other dirty data, and the\n"
    "durable state at exit (what was never synced is lost). Each distinct state is laid out in a\n"
    "copy of the folder, and CHECK runs there (sh -c); a non-zero exit is a violation. The\n"
    "processes that write the files take turns (a script's commands): each takes the run over\n"
    "when the one before has ended, while it waits for a child, or, two at work at once (a & b),\n"
    "at the owner's next call once the other asks; one recording, data never synced still\n"
    "volatile. An owner that makes no call while another waits (blocked, asleep) for\n"
    "POWERCUT_LEND_WAIT ms (3000), or a change by none of them, stops the run, named (exit 2).\n"
    "  --files GLOB    the files to track, an fnmatch(3) glob relative to the folder; give it again\n"
    "                  for more (a file matching any of them is tracked)\n"
    "  --check CMD     judges a crash state; it gets CRASHCHECK_STEP (0: the end of the run),\n"
    "                  CRASHCHECK_CALL, CRASHCHECK_CRASH, CRASHCHECK_ORIGIN (the folder crashcheck\n"
    "                  was started in) and CRASHCHECK_NOTES: a file of the marker notes PROGRAM\n"
    "                  wrote before the cut (`note TEXT` lines on POWERCUT_MARK_FD, or pc_mark_note):\n"
    "                  what it had acknowledged, which the state must hold; CRASHCHECK_STDOUT and\n"
    "                  CRASHCHECK_STDERR: files of what it had written to stdout/stderr by then\n"
    "  --setup CMD     prepares the folder first (sh -c; CRASHCHECK_ORIGIN set)\n"
    "  --profile P     posix (default): a name PROGRAM creates, renames, removes or links, and a\n"
    "                  directory it makes or removes, changes in a crash state only once an\n"
    "                  fsync of its directory made the change durable (a file in a new\n"
    "                  directory: the directory's parent too); ext4: ext4 data=ordered: those\n"
    "                  changes reach the disk in program order, an fsync commits all earlier\n"
    "                  ones, a rename over a file first writes the renamed file's data\n"
    "                  (auto_da_alloc); none: names are durable at once\n"
    "  --sector N      512 (default) or 4096\n"
    "  --out DIR       where failing states are kept, each with its story (default crashcheck-out)\n"
    "  --jobs N        checks running at once (default 1), each worker in its own copy of the\n"
    "                  folder: the same states, verdicts and first violations as one\n"
    "  --shard I/N     check only the I-th (from 0) of N parts of the distinct states, split by\n"
    "                  their hash; the N shards together check each state once\n"
    "  --json          one JSON object on stdout instead of the summary\n"
    "  --quiet         no progress line\n"
    "Exit status: 0 clean, 1 a violation, 2 usage, setup or program failure.\n";

static int cmd_run_program(int argc, char **argv) {
  if (want_help(argc, argv)) {
    fputs(usage_run, stdout);
    return EXIT_CLEAN;
  }
  cc_prog_opts o = {.sector = 512, .outdir = "crashcheck-out", .max_violations = 20, .profile = "posix"};
  bool json = false, quiet = false;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (!strcmp(a, "--files") && v) {
      /* Several: libpowercut takes them as POWERCUT_FILE does, ':' between them. */
      static char files[8192];
      if (strchr(v, ':')) die_usage(usage_run, "--files %s: a pattern may not hold ':' (give --files again)", v);
      size_t used = strlen(files);
      if (used + strlen(v) + 2 > sizeof files) die_usage(usage_run, "too many --files%s", "");
      snprintf(files + used, sizeof files - used, "%s%s", used ? ":" : "", v);
      o.files = files, i++;
    }
    else if (!strcmp(a, "--check") && v) o.check = v, i++;
    else if (!strcmp(a, "--setup") && v) o.setup = v, i++;
    else if (!strcmp(a, "--out") && v) o.outdir = v, i++;
    else if (!strcmp(a, "--profile") && v) {
      if (strcmp(v, "posix") && strcmp(v, "ext4") && strcmp(v, "none"))
        die_usage(usage_run, "--profile must be posix, ext4 or none%s", "");
      o.profile = v, i++;
    } else if (!strcmp(a, "--sector")) {
      o.sector = parse_sector(usage_run, v), i++;
    } else if (!strcmp(a, "--jobs")) {
      o.jobs = (unsigned)parse_num(usage_run, a, v, 64), i++;
    } else if (!strcmp(a, "--shard")) {
      parse_shard(usage_run, v, &o.shard, &o.shards), i++;
    } else if (!strcmp(a, "--json")) json = true;
    else if (!strcmp(a, "--quiet")) quiet = true;
    else die_usage(usage_run, "unknown argument %s (the program goes after --)", a);
  }
  if (!o.files || !o.check) die_usage(usage_run, "--files and --check are required%s", "");
  if (i >= argc) die_usage(usage_run, "no program to run (give it after --)%s", "");
  char origin[PATH_MAX];
  if (!getcwd(origin, sizeof origin)) die_usage(usage_run, "cannot read the current folder%s", "");
  o.origin = origin;
  /* The program runs in the scratch folder: a relative path to it is the caller's. */
  static char prog[2 * PATH_MAX + 2];
  char **pargv = &argv[i];
  if (strchr(pargv[0], '/') && pargv[0][0] != '/') {
    snprintf(prog, sizeof prog, "%s/%s", origin, pargv[0]);
    pargv[0] = prog;
  }
  o.argv = pargv;
  char work[PATH_MAX];
  if (make_workdir(work, sizeof work) != 0) return EXIT_USAGE;
  o.workdir = work;
  o.shim = default_shim();
  if (access(o.shim, R_OK) != 0) die_usage(usage_run, "the shim %s is missing (make builds it)", o.shim);
  cc_explore_defaults(&o.crash);
  o.progress = !quiet && !json && isatty(2);
  cc_prog_result *r = malloc(sizeof *r);
  int rc = cc_run_program(&o, r);
  remove_workdir(work);
  int status = r->violations ? EXIT_VIOLATION : EXIT_CLEAN;
  if (rc != CC_OK) {
    fprintf(stderr, "crashcheck run: %s\n", r->error[0] ? r->error : cc_strerror(rc));
    status = EXIT_USAGE;
  } else if (json) {
    printf("{");
    print_shard_json(o.shard, o.shards);
    printf("\"files\": %u, \"steps\": %llu, \"states\": %llu, \"distinct_states\": %llu, \"violations\": %llu, "
           "\"seconds\": %.3f, \"violation_list\": [", r->files, (unsigned long long)r->steps,
           (unsigned long long)r->states, (unsigned long long)r->distinct, (unsigned long long)r->violations,
           r->seconds);
    for (unsigned k = 0; k < r->nfound; k++) {
      printf("%s{\"step\": %llu, \"call\": ", k ? ", " : "", (unsigned long long)r->found[k].step);
      json_string(r->found[k].call);
      printf(", \"crash\": ");
      json_string(r->found[k].crash);
      printf(", \"state\": %llu, \"status\": %d, \"output\": ", (unsigned long long)r->found[k].state, r->found[k].status);
      json_string(r->found[k].output);
      printf(", \"kept\": ");
      json_string(r->found[k].kept);
      printf("}");
    }
    printf("]}\n");
  } else {
    for (unsigned k = 0; k < r->nfound; k++) {
      const cc_prog_found *f = &r->found[k];
      if (f->step) printf("violation: power cut at step %llu (%s), %s: the check exited %d\n", (unsigned long long)f->step,
                          f->call, f->crash, f->status);
      else printf("violation: at exit (what was never synced is lost): the check exited %d\n", f->status);
      if (f->output[0]) printf("  check said: %.300s\n", f->output);
      if (f->kept[0]) printf("  kept in %s (the story in %s.txt; `crashcheck replay %s` checks it again)\n", f->kept,
                             f->kept, f->kept);
    }
    printf("ran %s under the shim: %u tracked files, %llu steps%s\n", o.argv[0], r->files, (unsigned long long)r->steps,
           o.shards > 1 ? " (one shard of the distinct states)" : "");
    printf("  crash states     %llu\n  distinct states  %llu checked\n  violations       %llu\n  time             %.2f s\n",
           (unsigned long long)r->states, (unsigned long long)r->distinct, (unsigned long long)r->violations, r->seconds);
  }
  free(r);
  return status;
}

/* ---- merge ------------------------------------------------------------------------ */

static const char *usage_merge =
    "usage: crashcheck merge [--json] FILE...\n"
    "\n"
    "Combines the --json outputs of the shards of one exploration (`crashcheck explore --shard I/N\n"
    "--json`, each FILE one shard's) into one report, or those of one `crashcheck run --shard I/N\n"
    "--json`. The shards must agree on what each of them enumerates (steps, crash states, page and\n"
    "sector size; for run, the tracked files): otherwise they are of different explorations and\n"
    "merge refuses them. What each checked adds up (distinct states, violations, leaks, R7\n"
    "follow-ups, I/O-error runs); first_violation_state is the smallest; the violations are listed\n"
    "by step; the coverage cells are the union, and what is missing is recomputed. Shards of\n"
    "explore --errors split the error runs: their crash states add up too.\n"
    "  FILE      one shard's JSON; - reads standard input\n"
    "  --json    one JSON object of explore's (or run's) shape on stdout, with \"shards\", and\n"
    "            \"seconds\" the sum of the shards' (CPU) and \"wall_seconds\" the longest one's\n"
    "Exit status: 0 clean, 1 the merged result has violations, 2 bad input or shards that disagree.\n";

/* The whole of a file (or of stdin for "-"), NUL-terminated; NULL with a message on failure. */
static char *read_all(const char *path) {
  FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!f) {
    fprintf(stderr, "crashcheck merge: cannot read %s: %s\n", path, strerror(errno));
    return NULL;
  }
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += got;
    if (cap - len < 2) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  bool bad = ferror(f) || !buf;
  if (f != stdin) fclose(f);
  if (bad) {
    fprintf(stderr, "crashcheck merge: cannot read %s\n", path);
    free(buf);
    return NULL;
  }
  if (memchr(buf, 0, len)) {
    fprintf(stderr, "crashcheck merge: %s holds a NUL byte: not JSON\n", path);
    free(buf);
    return NULL;
  }
  buf[len] = 0;
  return buf;
}

static int cmd_merge(int argc, char **argv) {
  if (want_help(argc, argv)) {
    fputs(usage_merge, stdout);
    return EXIT_CLEAN;
  }
  bool json = false;
  int nfiles = 0, stdin_uses = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = true;
    else if (argv[i][0] == '-' && argv[i][1]) die_usage(usage_merge, "unknown option %s", argv[i]);
    else nfiles++, stdin_uses += !strcmp(argv[i], "-");
  }
  if (!nfiles) die_usage(usage_merge, "no shards given%s", "");
  if (stdin_uses > 1) die_usage(usage_merge, "- (standard input) given more than once%s", "");
  cc_merge_input *in = calloc((size_t)nfiles, sizeof *in);
  int n = 0, status = EXIT_USAGE;
  for (int i = 1; in && i < argc; i++) {
    if (!strcmp(argv[i], "--json")) continue;
    in[n].name = strcmp(argv[i], "-") ? argv[i] : "(stdin)";
    if (!(in[n].text = read_all(argv[i]))) goto out;
    n++;
  }
  if (in) {
    char why[1024];
    status = cc_merge(in, (size_t)n, json, stdout, why, sizeof why);
    if (status == EXIT_USAGE) fprintf(stderr, "crashcheck merge: %s\n", why);
  }
out:
  for (int i = 0; in && i < n; i++) free((char *)in[i].text);
  free(in);
  return status;
}

/* Runs a case on a file: what the shim records. Exit 1 if the pager disagrees
 * with the model. */
static int cmd_run(int argc, char **argv) {
  /* The case says how the file is created and opened (format 3, sparse, upgrade), in either
   * form: the binary one the explorer writes carries them in its header. */
  bool existing = argc == 4 && !strcmp(argv[3], "--existing");
  if (argc != 3 && !existing) return EXIT_USAGE;
  cc_case *c = load_case_or_die(argv[1]);
  cc_run run;
  /* explore --errors: the run with an injected error is the model; it leaves its states */
  /* R7's follow-ups: the run leaves its states, so the explorer need not run the model */
  const char *states = getenv("CRASHCHECK_STATES"), *error = getenv("POWERCUT_ERROR");
  bool keep = states && *states, errors = !existing && keep && error && *error;
  int rc = errors ? cc_run_case_errors(c, argv[2], &run)
           : existing ? cc_run_case_on(c, argv[2], &run) : cc_run_case(c, argv[2], &run);
  if (rc != CC_OK && !errors) fprintf(stderr, "crashcheck: %s\n", run.error); /* (errors: in the states) */
  if (keep && cc_run_save(&run, states) != CC_OK) {
    fprintf(stderr, "crashcheck: cannot write %s\n", states);
    cc_run_free(&run);
    free(c);
    return EXIT_USAGE;
  }
  cc_run_free(&run);
  free(c);
  return rc == CC_OK ? EXIT_CLEAN : EXIT_VIOLATION;
}

int main(int argc, char **argv) {
  /* Each R7 follow-up reads a trace and derives images of a file of half a megabyte or
   * more into buffers it frees: glibc would hand blocks that large back to the kernel
   * (mmap, trim) and fault them in, zeroed, page by page at the next follow-up. Kept. */
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (n <= 0) snprintf(self_path, sizeof self_path, "%s", argv[0]);
  else self_path[n] = 0;
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    fputs(usage_main, argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_CLEAN;
  }
  const char *cmd = argv[1];
  argc--, argv++;
  if (!strcmp(cmd, "explore")) return cmd_explore(argc, argv);
  if (!strcmp(cmd, "check")) return cmd_check(argc, argv);
  if (!strcmp(cmd, "replay")) return cmd_replay(argc, argv);
  if (!strcmp(cmd, "coverage")) return cmd_coverage(argc, argv);
  if (!strcmp(cmd, "minimize")) return cmd_minimize(argc, argv);
  if (!strcmp(cmd, "show")) return cmd_show(argc, argv);
  if (!strcmp(cmd, "encode")) return cmd_encode(argc, argv);
  if (!strcmp(cmd, "generate")) return cmd_generate(argc, argv);
  if (!strcmp(cmd, "run")) return cmd_run_program(argc, argv);
  if (!strcmp(cmd, "merge")) return cmd_merge(argc, argv);
  if (!strcmp(cmd, "__run")) return cmd_run(argc, argv);
  if (!strcmp(cmd, "__serve") && argc == 3) return cc_fs_serve(atoi(argv[1]), atoi(argv[2]), cmd_run);
  die_usage(usage_main, "unknown command \"%s\"", cmd);
  return EXIT_USAGE;
}
