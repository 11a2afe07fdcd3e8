/* test_fmt3_cuts.c: a 0.3 file under the power-cut shim: a marked workload (pc_fmt3_work) is
 * recorded once, and the crash image of every step, under every tear and writeback shape and a
 * garbage sector in each sector the step writes, opens clean and holds the state before or after
 * the operation in flight (regular pages, protected pages and their content). (It links libpowercut's model; faults/tests/test_pager_cuts is its
 * 0.2 counterpart.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../faults/powercut.h"
#include "mappedpages.h"

static char work[PATH_MAX + 32], shim[PATH_MAX + 32], dir[64];

static int setup(void **st) {
  (void)st;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return -1;
  exe[n] = 0;
  char *d = dirname(exe);
  snprintf(work, sizeof work, "%s/pc_fmt3_work", d);
  snprintf(shim, sizeof shim, "%s/../../../lib/libpowercut.so", d);
  /* on tmpfs when there is one: thousands of images, each opened by a writer that may sync */
  snprintf(dir, sizeof dir, "%s/fmt3cuts.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st) {
  (void)st;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void record(const char *pages, const char *trace, const char *states, int ops, size_t ps, const char *how,
                   const char *sector) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setenv("LD_PRELOAD", shim, 1);
    setenv("POWERCUT_FILE", pages, 1);
    setenv("POWERCUT_TRACE", trace, 1);
    unsetenv("POWERCUT_CUT");
    setenv("POWERCUT_SECTOR", sector, 1);
    char n[16], s[16];
    snprintf(n, sizeof n, "%d", ops);
    snprintf(s, sizeof s, "%zu", ps);
    execl(work, work, pages, n, s, states, how, (char *)NULL);
    _exit(127);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The states pc_fmt3_work wrote: line n is the state after operation n (1: the create), as
 * written (" id:byte ...", for the content) and as ids alone (" id ...", to compare). */
typedef struct states {
  char **line, **ids;
  size_t n;
} states;

static void read_states(const char *path, states *s) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char buf[16384];
  s->line = s->ids = NULL;
  s->n = 0;
  while (fgets(buf, sizeof buf, f)) {
    buf[strcspn(buf, "\n")] = 0;
    char *sp = strchr(buf, ' ');
    s->line = realloc(s->line, (s->n + 1) * sizeof *s->line);
    s->ids = realloc(s->ids, (s->n + 1) * sizeof *s->ids);
    s->line[s->n] = strdup(sp ? sp : "");
    char *ids = s->ids[s->n++] = strdup(sp ? sp : ""), *w = ids;
    for (const char *c = ids; *c; c++) {
      if (*c == ':')
        while (c[1] && c[1] != ' ') c++;
      else *w++ = *c;
    }
    *w = 0;
  }
  fclose(f);
}

/* The image's allocated pages (" id ..."), whether each of them that `synced` lists (a state
 * whose data was made durable: the one before the operation in flight) holds its byte, and its
 * protected pages with their content (" Pid=byte"). */
static void image_state(mp_pager *p, char *out, size_t len, const char *synced, bool *data_ok) {
  out[0] = 0;
  *data_ok = true;
  size_t ps = mp_page_size(p);
  for (uint64_t id = 0; mp_next_regular(p, id, &id) == MP_OK; id++) {
    char key[32];
    snprintf(key, sizeof key, " %llu:", (unsigned long long)id);
    const char *in = strstr(synced, key);
    unsigned byte = 0;
    if (in) byte = (unsigned)atoi(in + strlen(key));
    size_t used = strlen(out);
    snprintf(out + used, len - used, " %llu", (unsigned long long)id);
    void *d;
    assert_int_equal(mp_page(p, id, &d), MP_OK);
    for (size_t i = 0; in && i < ps && *data_ok; i++) *data_ok = ((uint8_t *)d)[i] == byte;
  }
  /* protected pages with their content, which must be whole: one byte throughout */
  for (uint64_t id = 0; mp_next_protected(p, id, &id) == MP_OK; id++) {
    const void *d;
    unsigned byte = 999;
    if (mp_protected_read(p, id, &d) == MP_OK) {
      byte = *(const uint8_t *)d;
      for (size_t i = 0; i < ps; i++)
        if (((const uint8_t *)d)[i] != byte) byte = 998;
    }
    size_t used = strlen(out);
    snprintf(out + used, len - used, " P%llu=%u", (unsigned long long)id, byte);
  }
}

static const char *const shapes[] = {
    "none:none", "all:none", "prefix:1:none", "suffix:1:none", "random:none", "none:all", "all:all",
    "random:random",
};

static void every_step(size_t ps, const char *how, const char *sector, int ops) {
  char pages[128], trace[128], img_path[128], st_path[128];
  snprintf(pages, sizeof pages, "%s/f.pages", dir);
  snprintf(trace, sizeof trace, "%s/f.trace", dir);
  snprintf(img_path, sizeof img_path, "%s/img.pages", dir);
  snprintf(st_path, sizeof st_path, "%s/states", dir);
  record(pages, trace, st_path, ops, ps, how, sector);
  states s;
  read_states(st_path, &s);
  assert_int_equal(s.n, (size_t)ops + 1);
  pc_trace *t;
  assert_int_equal(pc_trace_open(trace, &t), PC_OK);
  uint64_t nsteps;
  assert_int_equal(pc_trace_step_count(t, &nsteps), PC_OK);
  /* the file grew by fallocate, or (sparse) by ftruncate, the blocks the pager writes into
   * reserved one by one (fallocate inside the file's size) */
  unsigned truncated = 0, reserved = 0;
  for (uint64_t k = 1; k <= nsteps; k++) {
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, k, &info), PC_OK);
    truncated += info.call == PC_CALL_FTRUNCATE;
    reserved += info.call == PC_CALL_FALLOCATE;
  }
  if (how[0] ? !truncated || !reserved : truncated || !reserved) fail_msg("%u ftruncate and %u fallocate steps", truncated, reserved);
  pc_replay *r;
  assert_int_equal(pc_replay_new(t, &r), PC_OK);
  unsigned bad = 0, images = 0, garbage = 0, before = 0, after = 0;
  char *found = malloc(1 << 16);
  for (;;) {
    uint64_t k;
    assert_int_equal(pc_replay_next(r, &k), PC_OK);
    if (!k) break;
    pc_step_info info;
    assert_int_equal(pc_trace_step_info(t, k, &info), PC_OK);
    pc_model *m;
    assert_int_equal(pc_replay_model(r, &m), PC_OK);
    uint64_t sectors = 0;
    assert_int_equal(pc_model_step_sectors(m, &sectors), PC_OK);
    size_t nshapes = sizeof shapes / sizeof shapes[0];
    for (size_t i = 0; i < nshapes + sectors; i++) {
      char spec[64];
      if (i < nshapes) snprintf(spec, sizeof spec, "%s", shapes[i]);
      else snprintf(spec, sizeof spec, "garbage:%llu:none", (unsigned long long)(i - nshapes + 1));
      pc_crash c;
      assert_int_equal(pc_crash_parse(spec, &c), PC_OK);
      uint8_t *img;
      uint64_t len;
      assert_int_equal(pc_model_image(m, 0, &c, &img, &len), PC_OK);
      FILE *f = fopen(img_path, "wb");
      assert_non_null(f);
      assert_int_equal(fwrite(img, 1, len, f), len);
      fclose(f);
      free(img);
      /* The operation in flight: its marker's number; a step outside every marker follows the last. */
      uint64_t op = info.op ? info.op : s.n;
      const char *old = op >= 2 ? s.ids[op - 2] : "", *new = s.ids[op - 1], *synced = op >= 2 ? s.line[op - 2] : "";
      mp_pager *p;
      char why[256] = "";
      /* a cut inside the create leaves a leftover, which MP_CREATE replaces (an empty file) */
      int rc = mp_open_explain(img_path, op == 1 ? MP_CREATE | MP_FORMAT_3 : 0, &p, why, sizeof why);
      unsigned findings = 0;
      bool data_ok = true, same_old = false, same_new = false;
      if (rc == MP_OK) {
        mp_check(p, NULL, NULL, &findings);
        image_state(p, found, 1 << 16, synced, &data_ok);
        same_old = !strcmp(found, old);
        same_new = !same_old && !strcmp(found, new);
        mp_close(p);
      }
      before += same_old;
      after += same_new;
      garbage += i >= nshapes;
      /* A garbage sector larger than a page takes the neighbours of a page being synced with it:
       * their data, never metadata, which sits alone in its block (FORMAT.md 3.2). */
      if (i >= nshapes && (size_t)atoi(sector) > ps) data_ok = true;
      if (rc != MP_OK || findings || !(same_old || same_new) || !data_ok) {
        if (bad < 10)
          print_message("step %llu (%s, op %llu '%s') %s: %s%s%s%s\n", (unsigned long long)k, pc_call_name(info.call),
                        (unsigned long long)op, info.label, spec,
                        rc != MP_OK ? mp_strerror(rc) : findings ? "mp_check findings" : "",
                        why, rc == MP_OK && !(same_old || same_new) ? "neither state: " : "",
                        rc == MP_OK && !(same_old || same_new) ? found : !data_ok ? "synced data lost" : "");
        bad++;
      }
      images++;
    }
  }
  print_message("0.3 at %zu, %s-byte sectors%s%s: %llu steps, %u images (%u with a garbage sector), %u before, %u after, %u bad\n", ps,
                sector, how[0] ? ", " : "", how, (unsigned long long)nsteps, images, garbage, before, after, bad);
  assert_int_equal(bad, 0);
  assert_true(before > 0 && after > 0);
  free(found);
  for (size_t i = 0; i < s.n; i++) free(s.line[i]), free(s.ids[i]);
  free(s.line);
  free(s.ids);
  pc_replay_free(r);
  pc_trace_free(t);
}

static void test_every_step_4k(void **st) {
  (void)st;
  every_step(4096, "", "512", 56);
}

/* Four pages to a metadata block: every leaf and root write spans four pages. */
static void test_every_step_1k(void **st) {
  (void)st;
  every_step(1024, "", "512", 56);
}

/* Drives whose sector is 4 KiB: a garbage sector takes a whole metadata block at 1 KiB pages. */
static void test_every_step_1k_4k_sectors(void **st) {
  (void)st;
  every_step(1024, "", "4096", 56);
}

/* MP_SPARSE kept in the superblock: growth by ftruncate. */
static void test_every_step_sparse(void **st) {
  (void)st;
  every_step(4096, "sparse", "512", 56);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_step_4k),
      cmocka_unit_test(test_every_step_1k),
      cmocka_unit_test(test_every_step_1k_4k_sectors),
      cmocka_unit_test(test_every_step_sparse),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
