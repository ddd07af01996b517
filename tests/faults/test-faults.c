/* libvstor crash safety: kill the process at every fault point of every
 * file-backend operation, then recover and check that nothing was lost and
 * nothing is left half-done.
 *
 * Real components only: loop devices, XFS mounted on them, the library's
 * own fault hook (VSTOR_FAULT=POINT raises SIGKILL at POINT).  The points
 * are not hard-coded: each operation is run once with VSTOR_FAULT_LIST to
 * enumerate the points it reaches; the known ones are asserted present.
 *
 * Per (operation, point): fresh image with XFS on a loop device (mounted,
 * except for the pivot, which needs an idle device) holding random data;
 * a child runs the operation with VSTOR_FAULT=POINT and dies; the parent
 * runs vstor_recover() and checks: filesystem thawed, data unchanged, sizes
 * whole (extend), no leaked loop device or mount, no half-made copy, no
 * lock file, no journal record, recover idempotent (a second run has
 * nothing to do), and the volume usable (the same operation succeeds).
 * Prints "fault points: N, recovered: M"; fails unless M == N.
 *
 * Needs root, loop devices, mkfs.xfs.  Environment: VSTOR_BACKEND_DIR
 * (set by meson), VSTOR_CLI (the vstor tool, for the `recover --json`
 * case), FAULTS_ONLY=scenario[,scenario] to run a subset.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "helpers.h"

#define MiB (1024ull * 1024)
#define IMG_MIB 320
#define GROW_MIB 256

enum scen { S_EXTEND, S_SNAPSHOT, S_COMPLETE, S_PIVOT, S_CANCEL, S__N };

static const struct {
  const char *name;
  bool mounted;             /* XFS mounted on the loop (else idle device) */
  const char *known[8];     /* points the operation is known to reach */
} scen[S__N] = {
  [S_EXTEND] = { "extend", true,
                 { "file.extend.begin", "file.extend.grown", "file.extend.loop-refreshed",
                   "file.extend.before-fs" } },
  [S_SNAPSHOT] = { "snapshot", true,
                   { "file.snapshot.created", "file.snapshot.frozen", "file.snapshot.cloned",
                     "file.snapshot.thawed" } },
  [S_COMPLETE] = { "mirror-complete", true,
                   { "file.mirror.created", "file.mirror.copying", "file.mirror.copied",
                     "file.complete.frozen" } },
  [S_PIVOT] = { "mirror-pivot", false,
                { "file.mirror.created", "file.mirror.copying", "file.mirror.copied",
                  "file.pivot.synced", "file.pivot.cleared", "file.pivot.switched-one",
                  "file.pivot.done" } },
  [S_CANCEL] = { "mirror-cancel", true,
                 { "file.mirror.created", "file.mirror.copying", "file.mirror.copied" } },
};

static char *pool;
static int seqno;

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), returns_nonnull));
static char *xasprintf(const char *fmt, ...)
{
  va_list ap;
  char *s;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0) abort();
  va_end(ap);
  return s;
}

/* ---- fixture ----------------------------------------------------- */

struct fx {
  char *img, *loop, *mnt, *dest, *dest2, *state;
  char *sum;         /* sha256 of mnt/data (mounted) or of the image (idle) */
  uint64_t size0;
};

static void fx_make(struct fx *f, enum scen s)
{
  memset(f, 0, sizeof *f);
  int n = ++seqno;
  char name[64];
  snprintf(name, sizeof name, "%s-%d.img", scen[s].name, n);
  f->img = mkimage(pool, name, IMG_MIB, "xfs", false, NULL, false, NULL);
  /* attached here, not tracked by the helpers: detached by backing file */
  f->loop = sh_out("losetup -f --show '%s'", f->img);
  if (!*f->loop) { fprintf(stderr, "losetup %s failed\n", f->img); exit(1); }
  f->mnt = xasprintf("%s.mnt", f->img);
  mkdir(f->mnt, 0755);
  if (sh("mount -o nouuid %s '%s'", f->loop, f->mnt)) { fprintf(stderr, "mount failed\n"); exit(1); }
  track_mount(f->mnt);
  if (sh("dd if=/dev/urandom of='%s/data' bs=1M count=8 status=none && sync -f '%s/data'",
         f->mnt, f->mnt)) exit(1);
  if (scen[s].mounted) {
    char *d = xasprintf("%s/data", f->mnt);
    f->sum = sha256(d);
    free(d);
  } else {
    do_umount(f->mnt);
    f->sum = sha256(f->img);
  }
  f->dest = xasprintf("%s/%s-%d.copy", pool, scen[s].name, n);
  f->dest2 = xasprintf("%s/%s-%d.copy2", pool, scen[s].name, n);
  f->state = xasprintf("%s/state-%s-%d", scratch(), scen[s].name, n);
  f->size0 = file_size(f->img);
}

static void detach_file(const char *path)
{
  if (!path) return;
  sh("losetup -j '%s' 2>/dev/null | cut -d: -f1 | xargs -r -n1 losetup -d 2>/dev/null", path);
}

static void fx_drop(struct fx *f)
{
  sh("fsfreeze -u '%s' 2>/dev/null", f->mnt);
  do_umount(f->mnt);
  detach_file(f->img);
  detach_file(f->dest);
  detach_file(f->dest2);
  unlink(f->img); unlink(f->dest); unlink(f->dest2);
  rmdir(f->mnt);
  sh("rm -rf '%s'", f->state);
  free(f->img); free(f->loop); free(f->mnt); free(f->dest); free(f->dest2); free(f->state);
  free(f->sum);
}

static vstor_ctx *fx_ctx(const struct fx *f)
{
  vstor_ctx *c = vstor_ctx_new(0);
  if (!c || vstor_ctx_set_state_dir(c, f->state) < 0) {
    fprintf(stderr, "ctx: %s\n", vstor_last_error() ? vstor_last_error() : "?");
    exit(1);
  }
  return c;
}

/* ---- the operations ---------------------------------------------- */

static int op_fail(const char *what)
{
  fprintf(stderr, "    %s: %s (%s)\n", what, vstor_last_error(), vstor_code_name(vstor_last_code()));
  return -1;
}

/* Run operation s once on the fixture, copying to dest.  0 on success. */
static int run_op(enum scen s, struct fx *f, const char *dest)
{
  vstor_ctx *c = fx_ctx(f);
  vstor_vol *v = NULL;
  int r = -1;
  char *uri = s == S_PIVOT ? xasprintf("loop:%s", f->loop) : xasprintf("%s", f->img);
  if (vstor_open(c, uri, 0, &v) < 0) { op_fail("open"); goto out; }
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_freeze_timeout_ms(o, 60000);  /* a kill, not the bound, must end the freeze */
  vstor_job *j = NULL;
  switch (s) {
  case S_EXTEND:
    r = vstor_extend(v, f->size0 + GROW_MIB * MiB, o, VSTOR_EXTEND_RESIZE_FS, NULL);
    if (r < 0) op_fail("extend");
    break;
  case S_SNAPSHOT:
    r = vstor_snapshot(v, dest, o, 0, NULL);
    if (r < 0) op_fail("snapshot");
    break;
  case S_COMPLETE:
  case S_PIVOT:
  case S_CANCEL:
    if (vstor_mirror(v, dest, o, 0, &j, NULL) < 0) { op_fail("mirror"); break; }
    if (vstor_job_wait(j, 60000, 0) < 0 || vstor_job_state(j) != VSTOR_JOB_READY) {
      op_fail("job wait");
      break;
    }
    r = s == S_COMPLETE ? vstor_job_complete(j, 0) : s == S_PIVOT ? vstor_job_pivot(j, 0)
                                                                   : vstor_job_cancel(j, 0);
    if (r < 0) op_fail(s == S_COMPLETE ? "complete" : s == S_PIVOT ? "pivot" : "cancel");
    break;
  default:
    break;
  }
  if (j) vstor_job_free(j);
  vstor_opts_free(o);
  vstor_close(v);
out:
  free(uri);
  vstor_ctx_free(c);
  return r;
}

/* The test is a child subreaper: processes the operation forked (the
 * freeze guard) are re-parented to it when the operation dies.  Wait for
 * them all to end; false if one is still running after 10 s. */
static bool reap_orphans(void)
{
  for (int t = 0; t < 1000; t++) {
    pid_t w = waitpid(-1, NULL, WNOHANG);
    if (w < 0 && errno == ECHILD) return true;
    if (w == 0) usleep(10000);
  }
  return false;
}

/* Run the operation in a child with the given environment variable set.
 * Returns the wait status; -1 if the watchdog had to kill it. */
static int run_child(enum scen s, struct fx *f, const char *var, const char *val)
{
  fflush(NULL);
  pid_t p = fork();
  if (p < 0) { perror("fork"); exit(1); }
  if (p == 0) {
    setenv(var, val, 1);
    _exit(run_op(s, f, f->dest) == 0 ? 0 : 3);
  }
  int st = 0;
  for (int t = 0; t < 1200; t++) {  /* 120 s watchdog */
    pid_t w = waitpid(p, &st, WNOHANG);
    if (w == p) return st;
    usleep(100000);
  }
  kill(p, SIGKILL);
  waitpid(p, &st, 0);
  return -1;
}

/* ---- checks ------------------------------------------------------ */

static int nfail;

__attribute__((format(printf, 2, 3)))
static bool check(bool ok, const char *fmt, ...)
{
  if (ok) return true;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "    FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  nfail++;
  return false;
}

/* Entries of dir (ignoring . and ..), listed into buf. */
static int dir_entries(const char *dir, char *buf, size_t len)
{
  DIR *d = opendir(dir);
  int n = 0;
  buf[0] = 0;
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    n++;
    size_t l = strlen(buf);
    snprintf(buf + l, len - l, "%s%s", l ? " " : "", e->d_name);
  }
  closedir(d);
  return n;
}

static int mount_count(const char *mnt)
{
  char *n = sh_out("awk -v m='%s' '$2 == m' /proc/mounts | wc -l", mnt);
  int r = atoi(n);
  free(n);
  return r;
}

static void check_state_clean(const struct fx *f)
{
  char buf[1024], *d = xasprintf("%s/locks", f->state);
  check(dir_entries(d, buf, sizeof buf) == 0, "lock files left in %s: %s", d, buf);
  free(d);
  d = xasprintf("%s/journal", f->state);
  check(dir_entries(d, buf, sizeof buf) == 0, "journal records left in %s: %s", d, buf);
  free(d);
}

static uint64_t fs_total(const char *mnt)
{
  struct statvfs sv;
  return statvfs(mnt, &sv) == 0 ? (uint64_t)sv.f_blocks * sv.f_frsize : 0;
}

/* The outcome after recover; *pivoted says whether the pivot finished. */
static void check_recovered(enum scen s, struct fx *f, bool *pivoted)
{
  *pivoted = false;
  if (scen[s].mounted) {
    check(fs_writable(f->mnt, 3000), "%s is not writable within 3 s (still frozen?)", f->mnt);
    check(mount_count(f->mnt) == 1, "%s mounted %d times", f->mnt, mount_count(f->mnt));
    char *d = xasprintf("%s/data", f->mnt), *sum = sha256(d);
    check(!strcmp(sum, f->sum), "data checksum changed: %s -> %s", f->sum, sum);
    free(d); free(sum);
  } else
    check(mount_count(f->mnt) == 0, "%s is mounted", f->mnt);
  uint64_t fsz = file_size(f->img), lsz = blkdev_size(f->loop);
  check(lsz == fsz, "loop %s has %llu bytes, the image %llu", f->loop, (unsigned long long)lsz,
        (unsigned long long)fsz);
  if (s == S_EXTEND)
    check(fsz == f->size0 || fsz == f->size0 + GROW_MIB * MiB,
          "image size %llu is neither the old (%llu) nor the new one", (unsigned long long)fsz,
          (unsigned long long)f->size0);
  else
    check(fsz == f->size0, "image size changed: %llu -> %llu", (unsigned long long)f->size0,
          (unsigned long long)fsz);
  if (s == S_PIVOT) {
    char *back = loop_backing(f->loop);
    *pivoted = !strcmp(back, f->dest);
    if (*pivoted) {
      check(loops_of(f->img) == 0, "the source still has %d loop device(s)", loops_of(f->img));
      check(loops_of(f->dest) == 1, "the copy has %d loop device(s)", loops_of(f->dest));
      char *cs = sha256(f->dest);
      check(!strcmp(cs, f->sum), "pivoted copy checksum %s differs from the source's %s", cs, f->sum);
      free(cs);
    } else {
      check(!strcmp(back, f->img), "%s is bound to \"%s\", neither source nor copy", f->loop, back);
      check(loops_of(f->dest) == 0, "copy %s has %d loop device(s)", f->dest, loops_of(f->dest));
      check(access(f->dest, F_OK) < 0, "half-made copy %s left", f->dest);
    }
    char *ss = sha256(f->img);
    check(!strcmp(ss, f->sum), "source checksum changed: %s -> %s", f->sum, ss);
    free(ss);
    free(back);
  } else {
    check(loops_of(f->img) == 1, "the image has %d loop devices (1 expected)", loops_of(f->img));
    check(access(f->dest, F_OK) < 0, "half-made snapshot/copy %s left", f->dest);
    check(loops_of(f->dest) == 0, "copy %s has a loop device", f->dest);
  }
  check_state_clean(f);
}

/* After recover: the same operation succeeds again. */
static void check_usable(enum scen s, struct fx *f, bool pivoted)
{
  uint64_t fs0 = scen[s].mounted ? fs_total(f->mnt) : 0;
  if (!check(run_op(s, f, f->dest2) == 0, "second %s failed", scen[s].name)) return;
  switch (s) {
  case S_EXTEND:
    check(file_size(f->img) == f->size0 + GROW_MIB * MiB, "second extend: size %llu",
          (unsigned long long)file_size(f->img));
    check(blkdev_size(f->loop) == file_size(f->img), "second extend: loop size differs");
    check(fs_total(f->mnt) >= fs0 && fs_total(f->mnt) > (uint64_t)IMG_MIB * MiB,
          "second extend: XFS not grown (%llu bytes)", (unsigned long long)fs_total(f->mnt));
    break;
  case S_SNAPSHOT:
  case S_COMPLETE:
    check(file_size(f->dest2) == f->size0, "second %s: copy has %llu bytes", scen[s].name,
          (unsigned long long)file_size(f->dest2));
    break;
  case S_PIVOT: {
    char *back = loop_backing(f->loop), *cs = sha256(f->dest2);
    check(!strcmp(back, f->dest2), "second pivot: loop on \"%s\"", back);
    check(!strcmp(cs, f->sum), "second pivot: copy checksum differs");
    check(loops_of(pivoted ? f->dest : f->img) == 0, "second pivot: old file still bound");
    free(back); free(cs);
    break;
  }
  case S_CANCEL:
    check(access(f->dest2, F_OK) < 0, "second cancel left the copy");
    break;
  default:
    break;
  }
  if (scen[s].mounted) check(fs_writable(f->mnt, 3000), "not writable after the second run");
  check_state_clean(f);
}

/* ---- enumeration ------------------------------------------------- */

struct plist { char **v; size_t n; };

static void plist_add(struct plist *l, const char *p)
{
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->v[i], p)) return;
  l->v = realloc(l->v, (l->n + 1) * sizeof *l->v);
  l->v[l->n++] = strdup(p);
}

static void plists_free(struct plist *l)
{
  for (int s = 0; s < S__N; s++) {
    for (size_t i = 0; i < l[s].n; i++) free(l[s].v[i]);
    free(l[s].v);
  }
}

static bool enumerate(enum scen s, struct plist *out)
{
  struct fx f;
  fx_make(&f, s);
  char *list = xasprintf("%s/points-%s.txt", scratch(), scen[s].name);
  unlink(list);
  int st = run_child(s, &f, "VSTOR_FAULT_LIST", list);
  bool ok = check(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "%s: the unfaulted run failed (status %d)", scen[s].name, st);
  memset(out, 0, sizeof *out);
  FILE *fp = fopen(list, "re");
  char line[256];
  while (fp && fgets(line, sizeof line, fp)) {
    line[strcspn(line, "\n")] = 0;
    if (*line) plist_add(out, line);
  }
  if (fp) fclose(fp);
  ok &= check(out->n > 0, "%s: no fault point reached", scen[s].name);
  for (int k = 0; scen[s].known[k]; k++) {
    bool found = false;
    for (size_t i = 0; i < out->n; i++) found |= !strcmp(out->v[i], scen[s].known[k]);
    ok &= check(found, "%s: known point %s not reached", scen[s].name, scen[s].known[k]);
  }
  printf("  %s: %zu points:", scen[s].name, out->n);
  for (size_t i = 0; i < out->n; i++) printf(" %s", out->v[i]);
  printf("\n");
  fx_drop(&f);
  free(list);
  return ok;
}

/* ---- one kill ---------------------------------------------------- */

static bool kill_and_recover(enum scen s, const char *point)
{
  int before = nfail;
  struct fx f;
  fx_make(&f, s);
  printf("  %-16s %-28s ", scen[s].name, point);
  fflush(stdout);
  int st = run_child(s, &f, "VSTOR_FAULT", point);
  check(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
        "the child was not killed at %s (status %d)", point, st);
  /* the freeze guard must end promptly; it holds the dead process's
   * descriptors (the volume lock among them) until it does: see
   * bug_guard_holds_lock() */
  check(reap_orphans(), "a process forked by the operation still runs 10 s after the kill");
  vstor_ctx *c = fx_ctx(&f);
  vstor_report *rep = NULL;
  int r = vstor_recover(c, 0, &rep);
  check(r == 0, "recover: %s", r ? vstor_last_error() : "");
  size_t steps = rep ? vstor_report_step_count(rep) : 0;
  check(steps > 0, "recover did nothing after a kill at %s", point);
  vstor_report_free(rep);
  bool pivoted;
  check_recovered(s, &f, &pivoted);
  /* idempotent: a second recover finds nothing and changes nothing */
  rep = NULL;
  r = vstor_recover(c, 0, &rep);
  check(r == 0, "second recover: %s", r ? vstor_last_error() : "");
  check(rep && vstor_report_step_count(rep) == 0, "second recover did %zu step(s)",
        rep ? vstor_report_step_count(rep) : (size_t)0);
  vstor_report_free(rep);
  check_recovered(s, &f, &pivoted);
  vstor_ctx_free(c);
  check_usable(s, &f, pivoted);
  fx_drop(&f);
  bool ok = nfail == before;
  printf("%s (%zu recover steps%s)\n", ok ? "ok" : "FAILED", steps,
         s == S_PIVOT ? (pivoted ? ", pivot finished" : ", rolled back") : "");
  return ok;
}

/* ---- the CLI: vstor recover --json after a kill --------------------- */

static bool cli_recover_json(void)
{
  const char *cli = getenv("VSTOR_CLI");
  if (!check(cli && access(cli, X_OK) == 0, "VSTOR_CLI is not set to the vstor tool")) return false;
  int before = nfail;
  struct fx f;
  fx_make(&f, S_SNAPSHOT);
  int st = sh("VSTOR_FAULT=file.snapshot.frozen '%s' --state-dir '%s' --timeout 60000 -q "
              "snapshot '%s' '%s' >/dev/null 2>&1", cli, f.state, f.img, f.dest);
  check(st == 128 || st == 137, "vstor snapshot was not killed (exit %d)", st);
  char *out = xasprintf("%s/recover.json", scratch());
  st = sh("'%s' --state-dir '%s' --json recover > '%s'", cli, f.state, out);
  check(st == 0, "vstor recover --json exited %d", st);
  /* valid JSON, ok, one thaw and one removal done */
  st = sh("/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
          "s=d[\"steps\"]; a=[x[\"action\"] for x in s if x[\"status\"]==\"done\"]; "
          "sys.exit(0 if d[\"ok\"] and d[\"command\"]==\"recover\" and \"thaw\" in a and "
          "\"remove half-made snapshot\" in a else 1)' '%s'", out);
  if (!check(st == 0, "vstor recover --json output unexpected:")) sh("cat '%s' >&2", out);
  st = sh("'%s' --state-dir '%s' --json recover > '%s'", cli, f.state, out);
  check(st == 0, "second vstor recover --json exited %d", st);
  st = sh("/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
          "sys.exit(0 if d[\"ok\"] and d[\"steps\"]==[] else 1)' '%s'", out);
  if (!check(st == 0, "second vstor recover --json not empty:")) sh("cat '%s' >&2", out);
  bool pivoted;
  check_recovered(S_SNAPSHOT, &f, &pivoted);
  fx_drop(&f);
  free(out);
  printf("  cli: vstor recover --json after a kill at file.snapshot.frozen: %s\n",
         nfail == before ? "ok" : "FAILED");
  return nfail == before;
}

/* ---- known core bugs (not run by default: VSTOR_FAULTS_KNOWN_BUGS=1) ---- */

/* Killed after the pivot cleared the loop device: before recover runs,
 * the freed device number is taken by an unrelated image (losetup -f does
 * exactly this).  Recover must not re-point that device onto the copy. */
static bool bug_loop_reused(void)
{
  int before = nfail;
  struct fx f;
  fx_make(&f, S_PIVOT);
  int st = run_child(S_PIVOT, &f, "VSTOR_FAULT", "file.pivot.cleared");
  check(st >= 0 && WIFSIGNALED(st), "the child was not killed (status %d)", st);
  char *other = xasprintf("%s/intruder-%d.img", pool, ++seqno);
  sh("truncate -s 16M '%s'", other);
  check(sh("losetup '%s' '%s'", f.loop, other) == 0, "could not bind %s to %s", f.loop, other);
  vstor_ctx *c = fx_ctx(&f);
  vstor_report *rep = NULL;
  int r = vstor_recover(c, 0, &rep);
  char *back = loop_backing(f.loop);
  check(!strcmp(back, other), "recover re-pointed %s, which an unrelated image (%s) had taken, "
        "to \"%s\" (recover rc %d)", f.loop ? f.loop : "?", other ? other : "?", back ? back : "?", r);
  vstor_report_free(rep);
  vstor_ctx_free(c);
  detach_file(other);
  unlink(other);
  fx_drop(&f);
  free(back); free(other);
  printf("  known bug: recover re-points a reused loop device: %s\n",
         nfail == before ? "fixed" : "still present");
  return nfail == before;
}

/* Every file-backend point written in the sources is reached by some
 * scenario: a point added to the code without a scenario fails here. */
static bool check_source_points(struct plist *pts)
{
  const char *src = getenv("VSTOR_SOURCE_DIR");
  if (!src) { printf("  (VSTOR_SOURCE_DIR unset: source cross-check skipped)\n"); return true; }
  char *cmd = xasprintf("grep -rhoE 'vstor_fault\\(\"file\\.[^\"]+\"' '%s/lib' | cut -d'\"' -f2 | sort -u",
                        src);
  FILE *p = popen(cmd, "r");
  free(cmd);
  char line[256];
  int n = 0, missing = 0;
  while (p && fgets(line, sizeof line, p)) {
    line[strcspn(line, "\n")] = 0;
    n++;
    bool found = false;
    for (int s = 0; s < S__N; s++)
      for (size_t i = 0; i < pts[s].n; i++) found |= !strcmp(pts[s].v[i], line);
    if (!check(found, "point %s (in the sources) is reached by no scenario", line)) missing++;
  }
  if (p) pclose(p);
  check(n > 0, "no vstor_fault(\"file.*\") found under %s/lib", src);
  printf("  file-backend points in the sources: %d, reached by the scenarios: %d\n", n, n - missing);
  return n > 0 && !missing;
}

/* The freeze guard is forked without closing the descriptors it
 * inherits: it holds the operation's OFD volume lock (and the image) for
 * as long as it lives.  After a kill while frozen, a recover that runs
 * before the guard has thawed and exited does not reap the lock file, and
 * an operation started then gets BUSY (seen under ASan: 1 of 22 kills).
 * Checked deterministically: stall while frozen and look at the guard's
 * descriptors. */
static bool bug_guard_holds_lock(void)
{
  int before = nfail;
  struct fx f;
  fx_make(&f, S_SNAPSHOT);
  fflush(NULL);
  pid_t p = fork();
  if (p == 0) {
    setenv("VSTOR_FAULT", "file.snapshot.frozen:sleep=3000", 1);
    _exit(run_op(S_SNAPSHOT, &f, f.dest) == 0 ? 0 : 3);
  }
  char *guard = NULL;
  for (int t = 0; t < 200 && (!guard || !*guard); t++) {
    free(guard);
    usleep(10000);
    guard = sh_out("pgrep -P %d | head -1", (int)p);
  }
  int held = -1;
  if (check(guard && *guard, "no freeze guard process found")) {
    char *n = sh_out("for l in /proc/%s/fd/*; do readlink \"$l\"; done | grep -c '^%s/locks/'",
                     guard, f.state);
    held = atoi(n);
    free(n);
  }
  int st;
  waitpid(p, &st, 0);
  reap_orphans();
  check(held == 0, "the freeze guard (pid %s) holds %d descriptor(s) of the volume lock",
        guard ? guard : "?", held);
  free(guard);
  fx_drop(&f);
  printf("  known bug: the freeze guard holds the operation's volume lock: %s\n",
         nfail == before ? "fixed" : "still present");
  return nfail == before;
}

static bool wanted(enum scen s)
{
  const char *only = getenv("FAULTS_ONLY");
  if (!only || !*only) return true;
  char *c = strdup(only), *save = NULL;
  bool w = false;
  for (char *t = strtok_r(c, ",", &save); t; t = strtok_r(NULL, ",", &save))
    w |= !strcmp(t, scen[s].name);
  free(c);
  return w;
}

int main(void)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (geteuid() != 0) {
    fprintf(stderr, "test-faults: needs root (loop devices, mounts)\n");
    return 1;
  }
  if (sh("command -v mkfs.xfs >/dev/null && command -v losetup >/dev/null")) {
    fprintf(stderr, "test-faults: mkfs.xfs and losetup are needed\n");
    return 1;
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  pool = mkpool("xfs", 8192);
  struct plist pts[S__N];
  memset(pts, 0, sizeof pts);
  int bad_enum = 0;
  printf("enumerating fault points (VSTOR_FAULT_LIST):\n");
  for (int s = 0; s < S__N; s++)
    if (wanted(s) && !enumerate(s, &pts[s])) bad_enum++;
  if (!getenv("FAULTS_ONLY") && !check_source_points(pts)) bad_enum++;
  const char *eo = getenv("FAULTS_ENUMERATE_ONLY");
  if (eo && !strcmp(eo, "1")) { plists_free(pts); return bad_enum ? 1 : 0; }
  int n = 0, m = 0;
  printf("killing at each point, then recover:\n");
  for (int s = 0; s < S__N; s++)
    for (size_t i = 0; i < pts[s].n; i++) {
      n++;
      if (kill_and_recover(s, pts[s].v[i])) m++;
    }
  bool cli_ok = cli_recover_json();
  const char *kb = getenv("VSTOR_FAULTS_KNOWN_BUGS");
  if (kb && !strcmp(kb, "1") && !bug_loop_reused()) cli_ok = false;
  if (kb && !strcmp(kb, "1") && !bug_guard_holds_lock()) cli_ok = false;
  plists_free(pts);
  printf("fault points: %d, recovered: %d\n", n, m);
  bool ok = n > 0 && m == n && !bad_enum && cli_ok;
  if (!ok) fprintf(stderr, "test-faults: FAILED (%d check(s) failed)\n", nfail);
  return ok ? 0 : 1;
}
