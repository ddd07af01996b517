/* lvm-lab: drives libvstor's public API for the LVM lab tests (in the VM).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   lvm-lab info URI                         layers and properties
 *   lvm-lab size URI                         bytes
 *   lvm-lab extend URI SIZE [fs] [dry]       vstor_extend (SIZE as vstor_parse_size)
 *   lvm-lab snapshot URI DEST [SIZE] [crash] vstor_snapshot
 *   lvm-lab move URI DEST pivot|cancel|crash|ready-then-crash
 *   lvm-lab hold URI SECONDS                 open EXCLUSIVE and sleep
 *   lvm-lab recover                          vstor_recover
 *   lvm-lab time PROG ARGS...                run PROG, print "TIME_MS n" (bench)
 *
 * Prints "OK ..." and the report on success (exit 0); "ERR CODE: message"
 * on failure (exit 2); usage errors exit 1.  The guest script asserts on
 * these lines and on what the system shows (blockdev, df, fsck, lvs).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vstor.h>

static int fail(void)
{
  printf("ERR %s: %s\n", vstor_code_name(vstor_last_code()), vstor_last_error());
  fflush(stdout);
  return 2;
}

static void print_report(const vstor_report *rep)
{
  if (!rep) return;
  static const char *st[] = { "planned", "done", "skipped", "failed", "undone" };
  for (size_t i = 0; i < vstor_report_step_count(rep); i++) {
    int s = vstor_report_step_status(rep, i);
    printf("  step %s %s [%s] %s\n", vstor_report_step_layer(rep, i),
           vstor_report_step_action(rep, i), s >= 0 && s <= 4 ? st[s] : "?",
           vstor_report_step_detail(rep, i) ? vstor_report_step_detail(rep, i) : "");
  }
}

static vstor_ctx *ctx;

static vstor_vol *open_vol(const char *uri, unsigned flags)
{
  vstor_vol *v = NULL;
  if (vstor_open(ctx, uri, flags, &v) < 0) return NULL;
  return v;
}

static int cmd_info(const char *uri)
{
  vstor_vol *v = open_vol(uri, VSTOR_OPEN_READONLY);
  if (!v) return fail();
  uint64_t size = 0;
  if (vstor_vol_size(v, &size) < 0) return fail();
  printf("OK backend=%s id=%s size=%" PRIu64 "\n", vstor_vol_backend(v), vstor_vol_id(v), size);
  for (size_t i = 0; i < vstor_vol_layer_count(v); i++) {
    const vstor_layer *l = vstor_vol_layer(v, i);
    printf("layer %zu role=%s type=%s path=%s size=%" PRIu64 "\n", i, vstor_layer_role(l),
           vstor_layer_type(l), vstor_layer_path(l), vstor_layer_size(l));
    const char *k;
    for (size_t j = 0; (k = vstor_layer_prop_key(l, j)); j++) {
      const char *val = vstor_layer_prop(l, k);
      printf("  %s=", k);
      for (const char *c = val; c && *c; c++) putchar(*c == '\n' ? '|' : *c);
      putchar('\n');
    }
  }
  for (int op = 0; op < VSTOR_OP__COUNT; op++) {
    char *why = NULL;
    int c = vstor_vol_can(v, op, 0, &why);
    printf("can %s=%d%s%s\n", vstor_op_name(op), c, why ? " " : "", why ? why : "");
    free(why);
  }
  vstor_close(v);
  return 0;
}

static int cmd_size(const char *uri)
{
  vstor_vol *v = open_vol(uri, VSTOR_OPEN_READONLY);
  uint64_t size;
  if (!v || vstor_vol_size(v, &size) < 0) return fail();
  printf("%" PRIu64 "\n", size);
  vstor_close(v);
  return 0;
}

static int cmd_extend(int argc, char **argv)
{
  vstor_vol *v = open_vol(argv[2], 0);
  if (!v) return fail();
  uint64_t cur, size;
  if (vstor_vol_size(v, &cur) < 0) return fail();
  if (vstor_parse_size(argv[3], cur, &size) < 0) return fail();
  unsigned flags = 0;
  for (int i = 4; i < argc; i++) {
    if (!strcmp(argv[i], "fs")) flags |= VSTOR_EXTEND_RESIZE_FS;
    if (!strcmp(argv[i], "dry")) flags |= VSTOR_DRY_RUN;
  }
  vstor_report *rep = NULL;
  int r = vstor_extend(v, size, NULL, flags, &rep);
  if (r < 0) {
    int rc = fail();
    print_report(rep);
    vstor_report_free(rep);
    vstor_close(v);
    return rc;
  }
  printf("OK old=%" PRIu64 " new=%" PRIu64 "\n", vstor_report_old_size(rep),
         vstor_report_new_size(rep));
  print_report(rep);
  vstor_report_free(rep);
  vstor_close(v);
  return 0;
}

static int cmd_snapshot(int argc, char **argv)
{
  vstor_vol *v = open_vol(argv[2], 0);
  if (!v) return fail();
  vstor_opts *o = vstor_opts_new();
  unsigned flags = 0;
  for (int i = 4; i < argc; i++) {
    if (!strcmp(argv[i], "crash")) flags |= VSTOR_SNAPSHOT_CRASH_CONSISTENT;
    else if (!strcmp(argv[i], "dry")) flags |= VSTOR_DRY_RUN;
    else {
      uint64_t s;
      if (vstor_parse_size(argv[i], 0, &s) < 0) return fail();
      vstor_opts_set_snapshot_size(o, s);
    }
  }
  vstor_report *rep = NULL;
  int r = vstor_snapshot(v, argv[3], o, flags, &rep);
  vstor_opts_free(o);
  if (r < 0) {
    int rc = fail();
    print_report(rep);
    vstor_report_free(rep);
    vstor_close(v);
    return rc;
  }
  printf("OK method=%s consistency=%d frozen_us=%" PRIu64 "\n", vstor_report_method(rep),
         vstor_report_consistency(rep), vstor_report_frozen_us(rep));
  print_report(rep);
  vstor_report_free(rep);
  vstor_close(v);
  return 0;
}

static void progress(void *opaque, uint64_t done, uint64_t total)
{
  (void)opaque;
  static uint64_t last;
  if (total && done * 10 / total != last) {
    last = done * 10 / total;
    printf("progress %" PRIu64 "/%" PRIu64 "\n", done, total);
    fflush(stdout);
  }
}

static int cmd_move(const char *uri, const char *dest, const char *how)
{
  vstor_vol *v = open_vol(uri, 0);
  if (!v) return fail();
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_progress(o, progress, NULL);
  vstor_job *job = NULL;
  vstor_report *rep = NULL;
  uint64_t t0;
  {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
  }
  int r = vstor_mirror(v, dest, o, 0, &job, &rep);
  vstor_opts_free(o);
  print_report(rep);
  vstor_report_free(rep);
  if (r < 0) return fail();
  if (!strcmp(how, "cancel")) {
    /* cancel as soon as the copy has started */
    for (int i = 0; i < 600; i++) {
      uint64_t d = 0, t = 0;
      vstor_job_progress(job, &d, &t);
      if (d > 0 || vstor_job_state(job) >= VSTOR_JOB_READY) break;
      usleep(10000);
    }
    if (vstor_job_cancel(job, 0) < 0) return fail();
    printf("OK state=%s\n", vstor_job_state_name(vstor_job_state(job)));
    vstor_job_free(job);
    vstor_close(v);
    return 0;
  }
  if (!strcmp(how, "crash")) {
    for (int i = 0; i < 600; i++) {
      uint64_t d = 0, t = 0;
      vstor_job_progress(job, &d, &t);
      if (d > 0 || vstor_job_state(job) >= VSTOR_JOB_READY) break;
      usleep(10000);
    }
    printf("CRASHING mid-copy\n");
    fflush(stdout);
    raise(SIGKILL);
  }
  if (vstor_job_wait(job, 600000, 0) < 0) return fail();
  uint64_t d, t;
  vstor_job_progress(job, &d, &t);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t t1 = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
  printf("READY state=%s done=%" PRIu64 " total=%" PRIu64 " ms=%" PRIu64 "\n",
         vstor_job_state_name(vstor_job_state(job)), d, t, (t1 - t0) / 1000);
  fflush(stdout);
  if (!strcmp(how, "ready-then-crash")) raise(SIGKILL);
  if (vstor_job_pivot(job, 0) < 0) return fail();
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t t2 = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
  printf("OK state=%s total_ms=%" PRIu64 "\n", vstor_job_state_name(vstor_job_state(job)),
         (t2 - t0) / 1000);
  vstor_job_free(job);
  vstor_close(v);
  return 0;
}

static int cmd_hold(const char *uri, int secs)
{
  vstor_vol *v = open_vol(uri, VSTOR_OPEN_EXCLUSIVE);
  if (!v) return fail();
  printf("OK holding\n");
  fflush(stdout);
  sleep((unsigned)secs);
  vstor_close(v);
  return 0;
}

static int cmd_recover(void)
{
  vstor_report *rep = NULL;
  int r = vstor_recover(ctx, 0, &rep);
  if (r < 0) {
    int rc = fail();
    print_report(rep);
    vstor_report_free(rep);
    return rc;
  }
  printf("OK recovered %zu\n", vstor_report_step_count(rep));
  print_report(rep);
  vstor_report_free(rep);
  return 0;
}

static uint64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* busybox has no sub-second clock for scripts: time a command here. */
static int cmd_time(char **argv)
{
  uint64_t t0 = now_us();
  pid_t pid = fork();
  if (pid == 0) {
    execvp(argv[0], argv);
    _exit(127);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) < 0) return 1;
  printf("TIME_MS %llu\n", (unsigned long long)((now_us() - t0) / 1000));
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && !strcmp(argv[1], "time")) return cmd_time(argv + 2);
  if (argc < 2) goto usage;
  ctx = vstor_ctx_new(0);
  if (!ctx) return fail();
  int rc;
  if (!strcmp(argv[1], "info") && argc == 3) rc = cmd_info(argv[2]);
  else if (!strcmp(argv[1], "size") && argc == 3) rc = cmd_size(argv[2]);
  else if (!strcmp(argv[1], "extend") && argc >= 4) rc = cmd_extend(argc, argv);
  else if (!strcmp(argv[1], "snapshot") && argc >= 4) rc = cmd_snapshot(argc, argv);
  else if (!strcmp(argv[1], "move") && argc == 5) rc = cmd_move(argv[2], argv[3], argv[4]);
  else if (!strcmp(argv[1], "hold") && argc == 4) rc = cmd_hold(argv[2], atoi(argv[3]));
  else if (!strcmp(argv[1], "recover") && argc == 2) rc = cmd_recover();
  else goto usage;
  vstor_ctx_free(ctx);
  return rc;
usage:
  fprintf(stderr, "usage: lvm-lab info|size|extend|snapshot|move|hold|recover ...\n");
  return 1;
}
