/* libvstor - LVM backend: mirror + pivot as a pvmove within the VG
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * `vstor_mirror(lvm:VG/LV, "/dev/PV")` moves the LV's extents to another PV
 * of its VG while it is in use:
 *
 *   job_run   `lvm pvmove --atomic -i +86400 -n VG/LV SRC DEST` in a child.
 *             LVM inserts a dm-mirror (VG-pvmove0) under the LV; the kernel
 *             copies.  Progress is read from that mirror's status (regions
 *             in sync).  The child's first poll is a day away, so LVM never
 *             finishes the move by itself: when the mirror is in sync we
 *             interrupt the child while it sleeps (what ^C does: "Polling
 *             interrupted", the move stays).  READY: both legs in sync, the
 *             kernel keeps writing to both.
 *   pivot     `lvm pvmove -i 1 SRC` resumes the move; in sync, LVM switches
 *             the LV to DEST and drops the mirror at its first poll.
 *   cancel    `lvm pvmove --abort SRC`: --atomic means every extent stays on
 *             the source.
 *   recover   an orphaned move (its process died) is aborted, or finished if
 *             the pivot had been asked for.
 *
 * A destination outside the VG is refused (NOTSUP): copying to another VG
 * would need a dm-raid1 of our own, not done yet.  dm-mirror has no rate
 * limit, so a speed limit is refused too.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lvm-priv.h"

struct lvm_job {
  char *vg, *lv, *src, *dst;  /* src, dst: PV names as LVM reports them */
  uint64_t bytes;             /* extents to move, in bytes */
  pid_t pid;                  /* the pvmove child, 0 when none */
  int errfd;
  char *errbuf;
  size_t errlen;
  char *dm_name;              /* VG-pvmoveN */
  bool finished;              /* LVM completed the move itself */
  struct vstor_jrec *jr;
};

static void lj_free(struct lvm_job *lj)
{
  if (!lj) return;
  free(lj->vg); free(lj->lv); free(lj->src); free(lj->dst);
  free(lj->errbuf); free(lj->dm_name);
  if (lj->errfd >= 0) close(lj->errfd);
  free(lj);
}

static bool same_dev(const char *a, const char *b)
{
  struct stat sa, sb;
  if (stat(a, &sa) < 0 || stat(b, &sb) < 0) return false;
  return S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode) && sa.st_rdev == sb.st_rdev;
}

/* "/dev/vda(0),/dev/vdb(12)" -> calls fn for each device path. */
static void each_device(const char *devices, void (*fn)(const char *dev, void *o), void *o)
{
  const char *p = devices ? devices : "";
  while (*p) {
    const char *c = strchr(p, ','), *e = c ? c : p + strlen(p);
    const char *par = memchr(p, '(', (size_t)(e - p));
    char *d = strndup(p, (size_t)((par ? par : e) - p));
    if (*d) fn(d, o);
    free(d);
    p = c ? c + 1 : e;
  }
}

struct srcs { char *list[8]; size_t n; const char *dst; };
static void add_src(const char *dev, void *o)
{
  struct srcs *s = o;
  if (same_dev(dev, s->dst) || !strcmp(dev, s->dst)) return;
  for (size_t i = 0; i < s->n; i++) if (!strcmp(s->list[i], dev)) return;
  if (s->n < 8) s->list[s->n++] = vu_strdup(dev);
}

/* Bytes of VG/LV that sit on PV `src`. */
static int bytes_on(const char *vg, const char *lv, const char *src, uint64_t *bytes)
{
  char *name = vu_asprintf("%s/%s", vg, lv);
  const char *argv[] = { "lvm", "lvs", "--segments", "-o", "seg_size,devices", name, NULL };
  struct lvm_report rep;
  int r = lvm_report_run(argv, &rep);
  free(name);
  if (r < 0) return -1;
  *bytes = 0;
  for (size_t i = 0; i < rep.n; i++) {
    const char *d = lvm_row_get(&rep.rows[i], "DEVICES");
    size_t l = strlen(src);
    if (d && !strncmp(d, src, l) && d[l] == '(') *bytes += lvm_row_u64(&rep.rows[i], "SEG_SIZE");
  }
  lvm_report_free(&rep);
  return 0;
}

static bool vg_has_pvmove(const char *vg)
{
  const char *argv[] = { "lvm", "lvs", "-a", "-o", "lv_name,lv_attr", vg, NULL };
  struct lvm_report rep;
  if (lvm_report_run(argv, &rep) < 0) return false;
  bool yes = false;
  for (size_t i = 0; i < rep.n; i++) {
    const char *a = lvm_row_get(&rep.rows[i], "LV_ATTR");
    if (a && a[0] == 'p') yes = true;
  }
  lvm_report_free(&rep);
  return yes;
}

int lvm_mirror_prepare(vstor_vol *vol, vstor_job *job, unsigned flags, vstor_report *rep)
{
  struct lvm_vol *p = vol->priv;
  const char *dest = job->dest;
  char *name = vu_asprintf("%s/%s", p->vg, p->lv);
  struct srcs s = { .n = 0, .dst = dest };
  struct lvm_report pvs = { 0 };
  int r = -1;

  if (flags & VSTOR_MIRROR_SHALLOW) {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: an LV has no backing chain (SHALLOW applies to qcow2)", name);
    goto out;
  }
  if (flags & VSTOR_MIRROR_VERIFY) {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: pvmove's mirror legs are not exposed for a checksum "
              "comparison (VERIFY)", name);
    goto out;
  }
  if (job->opts.speed) {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: pvmove copies with dm-mirror, which has no rate limit",
              name);
    goto out;
  }
  if (!strncmp(dest, "lvm:", 4) || strncmp(dest, "/dev/", 5)) {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: the LVM backend moves an LV to another physical volume of "
              "its VG (give the PV's device, e.g. /dev/sdb); copying to \"%s\" is not "
              "supported", name, dest);
    goto out;
  }
  struct stat st;
  if (stat(dest, &st) < 0) {
    vstor_err(VSTOR_E_NOENT, errno, "%s: %s", dest, strerror(errno));
    goto out;
  }
  if (!S_ISBLK(st.st_mode)) {
    vstor_err(VSTOR_E_INVAL, ENOTBLK, "%s: not a block device", dest);
    goto out;
  }
  lvm_lv_clear(&p->info);
  if (lvm_lv_get(p->vg, p->lv, &p->info) < 0) goto out;
  struct lvm_lv *lv = &p->info;
  if (strcmp(lv->segtype, "linear") && strcmp(lv->segtype, "striped")) {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: moving a %s LV is not supported (linear and striped only)",
              name, lv->segtype);
    goto out;
  }
  if (lvm_lv_moving(lv) || vg_has_pvmove(p->vg)) {
    vstor_err(VSTOR_E_BUSY, 0, "%s: a pvmove is already running in volume group %s", name, p->vg);
    goto out;
  }
  const char *pargv[] = { "lvm", "pvs", "-o", "pv_name,vg_name,pv_free", NULL };
  if (lvm_report_run(pargv, &pvs) < 0) goto out;
  const struct lvm_row *drow = NULL;
  for (size_t i = 0; i < pvs.n; i++)
    if (same_dev(lvm_row_get(&pvs.rows[i], "PV_NAME"), dest)) drow = &pvs.rows[i];
  if (!drow || strcmp(lvm_row_get(drow, "VG_NAME"), p->vg)) {
    const char *in = drow ? lvm_row_get(drow, "VG_NAME") : NULL;
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: %s is %s%s%s: pvmove moves only between PVs of volume group "
              "%s (add it with vgextend first); a copy outside the VG is not supported", name,
              dest, drow ? "a PV of " : "not a physical volume",
              drow ? (in && *in ? "volume group " : "no volume group") : "", in ? in : "", p->vg);
    goto out;
  }
  const char *dst = lvm_row_get(drow, "PV_NAME");
  s.dst = dst;
  each_device(lv->devices, add_src, &s);
  if (s.n == 0) {
    vstor_err(VSTOR_E_EXIST, 0, "%s: already entirely on %s", name, dst);
    goto out;
  }
  if (s.n > 1) {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: the LV lies on %zu PVs besides %s (%s, %s%s): moving from "
              "several PVs at once is not supported", name, s.n, dst, s.list[0], s.list[1],
              s.n > 2 ? ", ..." : "");
    goto out;
  }
  uint64_t bytes;
  if (bytes_on(p->vg, p->lv, s.list[0], &bytes) < 0) goto out;
  uint64_t free_b = lvm_row_u64(drow, "PV_FREE");
  if (bytes > free_b) {
    vstor_err(VSTOR_E_NOSPC, ENOSPC, "%s: %s has %llu bytes free, moving %llu bytes from %s "
              "needs more", name, dst, (unsigned long long)free_b, (unsigned long long)bytes,
              s.list[0]);
    goto out;
  }
  vu_step(rep, "lvm", "pvmove", VSTOR_STEP_PLANNED, 1, "copy %llu bytes of %s from %s to %s "
          "online (dm-mirror under the LV; cancel leaves it on %s)", (unsigned long long)bytes,
          name, s.list[0], dst, s.list[0]);
  vu_step(rep, "lvm", "pivot", VSTOR_STEP_PLANNED, 0, "LVM switches %s to %s and frees the "
          "extents on %s", name, dst, s.list[0]);
  vu_report_method(rep, "pvmove");
  rep->old_size = rep->new_size = lv->size;
  struct lvm_job *lj = vu_calloc(1, sizeof *lj);
  lj->vg = vu_strdup(p->vg);
  lj->lv = vu_strdup(p->lv);
  lj->src = vu_strdup(s.list[0]);
  lj->dst = vu_strdup(dst);
  lj->bytes = bytes;
  lj->errfd = -1;
  job->priv = lj;
  r = 0;
out:
  for (size_t i = 0; i < s.n; i++) free(s.list[i]);
  lvm_report_free(&pvs);
  free(name);
  return r;
}

/* ---- the pvmove child ------------------------------------------------- */

static const char *lvm_path(void)
{
  static const char *const c[] = { "/usr/sbin/lvm", "/sbin/lvm", "/usr/bin/lvm", "/bin/lvm" };
  for (size_t i = 0; i < 4; i++) if (access(c[i], X_OK) == 0) return c[i];
  return NULL;
}

/* fork+exec rather than vu_run: the move runs while we watch it.  The
 * child dies with the job thread (PDEATHSIG) so a crash cannot leave a
 * poller that would finish the move a day later behind recover's back. */
static int spawn_pvmove(struct lvm_job *lj)
{
  const char *exe = lvm_path();
  if (!exe) return vstor_err(VSTOR_E_NOTSUP, ENOENT, "lvm: the lvm2 tools are not installed");
  char *lvname = vu_asprintf("%s/%s", lj->vg, lj->lv);
  char *const argv[] = { "lvm", "pvmove", "--atomic", "-i", "+86400", "-n", lvname, lj->src,
                         lj->dst, NULL };
  char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
                         "LVM_SUPPRESS_FD_WARNINGS=1", NULL };
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) {
    free(lvname);
    return vstor_err(VSTOR_E_AGAIN, errno, "pipe: %s", strerror(errno));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(pfd[0]); close(pfd[1]); free(lvname);
    return vstor_err(VSTOR_E_AGAIN, e, "fork: %s", strerror(e));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGINT);
    if (getppid() != parent) _exit(127);
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) { dup2(nul, 0); dup2(nul, 1); }
    dup2(pfd[1], 2);
    execve(exe, argv, envp);
    _exit(127);
  }
  close(pfd[1]);
  fcntl(pfd[0], F_SETFL, O_NONBLOCK);
  lj->pid = pid;
  lj->errfd = pfd[0];
  free(lvname);
  return 0;
}

static void drain(struct lvm_job *lj)
{
  if (lj->errfd < 0) return;
  char buf[1024];
  ssize_t n;
  while ((n = read(lj->errfd, buf, sizeof buf)) > 0) {
    char *nb = realloc(lj->errbuf, lj->errlen + (size_t)n + 1);
    if (!nb) abort();
    lj->errbuf = nb;
    memcpy(lj->errbuf + lj->errlen, buf, (size_t)n);
    lj->errlen += (size_t)n;
    lj->errbuf[lj->errlen] = 0;
  }
}

/* Is the child asleep in its poll interval (clock_nanosleep/nanosleep)? */
static bool child_sleeping(pid_t pid)
{
  char path[64], buf[64] = "";
  snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return true;  /* cannot tell: the interrupt is what ^C does anyway */
  if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
  fclose(f);
  long nr = strtol(buf, NULL, 10);
  return nr == 230 || nr == 35;  /* x86_64: clock_nanosleep, nanosleep */
}

static void msleep(unsigned ms)
{
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

/* Stop the child: SIGINT once it sleeps (bounded), SIGKILL as a last resort. */
static void stop_child(struct lvm_job *lj)
{
  if (lj->pid <= 0) return;
  for (int i = 0; i < 100 && !child_sleeping(lj->pid); i++) {
    if (waitpid(lj->pid, NULL, WNOHANG) == lj->pid) { lj->pid = 0; return; }
    msleep(50);
  }
  kill(lj->pid, SIGINT);
  for (int i = 0; i < 100; i++) {
    if (waitpid(lj->pid, NULL, WNOHANG) == lj->pid) { lj->pid = 0; break; }
    msleep(50);
  }
  if (lj->pid > 0) {
    kill(lj->pid, SIGKILL);
    waitpid(lj->pid, NULL, 0);
    lj->pid = 0;
  }
  drain(lj);
}

/* Name of the pvmove LV under VG/LV ("pvmove0"), NULL if none. */
static char *pvmove_of(const char *vg, const char *lv)
{
  struct lvm_lv info;
  if (lvm_lv_get(vg, lv, &info) < 0) return NULL;
  char *r = NULL, *p = info.devices ? strstr(info.devices, "pvmove") : NULL;
  if (p) r = strndup(p, strcspn(p, "(,"));
  lvm_lv_clear(&info);
  return r;
}

/* Where the LV is now: true if every extent is on `pv`. */
static bool lv_all_on(const char *vg, const char *lv, const char *pv)
{
  struct lvm_lv info;
  if (lvm_lv_get(vg, lv, &info) < 0) return false;
  bool yes = info.devices && *info.devices && !strstr(info.devices, "pvmove");
  const char *p = info.devices;
  while (yes && p && *p) {
    size_t l = strlen(pv);
    if (strncmp(p, pv, l) || p[l] != '(') yes = false;
    p = strchr(p, ',');
    if (p) p++;
  }
  lvm_lv_clear(&info);
  return yes;
}

static int jset(struct lvm_job *lj, const char *k, const char *v)
{
  return lj->jr ? vstor_host->jrec_set(lj->jr, k, v) : 0;
}

static int run_move(vstor_job *job, struct lvm_job *lj);

int lvm_job_run(vstor_job *job)
{
  struct lvm_job *lj = job->priv;
  int r = run_move(job, lj);
  if (r < 0) stop_child(lj);  /* the error stays: stop_child sets none */
  return r;
}

static int run_move(vstor_job *job, struct lvm_job *lj)
{
  lj->jr = vstor_host->jrec_begin(job->vol, "mirror");
  if (!lj->jr) return -1;
  if (jset(lj, "lvm_vg", lj->vg) < 0 || jset(lj, "lvm_lv", lj->lv) < 0 ||
      jset(lj, "lvm_src", lj->src) < 0 || jset(lj, "lvm_dst", lj->dst) < 0 ||
      jset(lj, "lvm_step", "pvmove") < 0)
    return -1;
  vstor_fault("lvm-mirror-before-pvmove");
  if (spawn_pvmove(lj) < 0) return -1;
  char pid[24];
  snprintf(pid, sizeof pid, "%d", (int)lj->pid);
  jset(lj, "lvm_pvmove_pid", pid);
  vstor_host->job_progress(job, 0, lj->bytes);
  uint64_t t0 = vu_now_us();
  for (;;) {
    drain(lj);
    if (vstor_host->job_cancelled(job)) {
      return vstor_err(VSTOR_E_CANCELLED, ECANCELED, "%s/%s: move cancelled", lj->vg, lj->lv);
    }
    int status = 0;
    bool exited = lj->pid > 0 && waitpid(lj->pid, &status, WNOHANG) == lj->pid;
    if (exited) {
      lj->pid = 0;
      drain(lj);
    }
    if (!lj->dm_name) {
      char *pm = pvmove_of(lj->vg, lj->lv);
      if (pm) {
        lj->dm_name = lvm_dm_name(lj->vg, pm);
        jset(lj, "lvm_pvmove", pm);
        free(pm);
      }
    }
    if (!lj->dm_name && (exited || lj->pid == 0)) {
      if (lv_all_on(lj->vg, lj->lv, lj->dst)) {  /* LVM finished it already */
        lj->finished = true;
        break;
      }
      char *m = lvm_clean_stderr(lj->errbuf);
      vstor_err(lvm_err_code(m), 0, "%s/%s: pvmove %s %s exited with status %d before the "
                "mirror appeared: %s", lj->vg, lj->lv, lj->src, lj->dst,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1, *m ? m : "(no message)");
      free(m);
      return -1;
    }
    if (lj->dm_name) {
      uint64_t done, total;
      if (lvm_dm_mirror_sync(lj->dm_name, &done, &total) == 0) {
        vstor_host->job_progress(job, done, total);
        if (done >= total && total > 0) break;
      } else {
        char *pm = pvmove_of(lj->vg, lj->lv);
        bool gone = pm == NULL;
        free(pm);
        if (gone) {  /* the mirror went away: finished or aborted behind our back */
          if (lv_all_on(lj->vg, lj->lv, lj->dst)) { lj->finished = true; break; }
          return vstor_err(VSTOR_E_BACKEND, 0, "%s/%s: the pvmove mirror %s disappeared and "
                           "the LV is not on %s", lj->vg, lj->lv, lj->dm_name, lj->dst);
        }
      }
    }
    if (vu_now_us() - t0 > 200000) msleep(100); else msleep(20);
  }
  stop_child(lj);
  vstor_host->job_progress(job, lj->bytes, lj->bytes);
  jset(lj, "lvm_step", "ready");
  vstor_log(job->vol->ctx, VSTOR_LOG_INFO, "%s/%s: in sync on %s after %llu ms", lj->vg, lj->lv,
            lj->dst, (unsigned long long)((vu_now_us() - t0) / 1000));
  return 0;
}

static int finish_move(const char *vg, const char *lv, const char *src, const char *dst)
{
  char *name = vu_asprintf("%s/%s", vg, lv);
  const char *argv[] = { "lvm", "pvmove", "-i", "1", src, NULL };
  int r = 0;
  if (!lv_all_on(vg, lv, dst)) r = lvm_cmd(argv, name);
  if (r == 0 && !lv_all_on(vg, lv, dst))
    r = vstor_err(VSTOR_E_BACKEND, 0, "%s: pvmove ended but the LV is not on %s", name, dst);
  free(name);
  return r;
}

static int abort_move(const char *vg, const char *lv, const char *src)
{
  char *name = vu_asprintf("%s/%s", vg, lv);
  char *pm = pvmove_of(vg, lv);
  int r = 0;
  if (pm) {
    const char *argv[] = { "lvm", "pvmove", "--abort", src, NULL };
    r = lvm_cmd(argv, name);
    free(pm);
  }
  free(name);
  return r;
}

int lvm_job_pivot(vstor_job *job)
{
  struct lvm_job *lj = job->priv;
  jset(lj, "lvm_pivot", "1");
  vstor_fault("lvm-mirror-before-pivot");
  if (finish_move(lj->vg, lj->lv, lj->src, lj->dst) < 0) return -1;
  if (lj->jr) { vstor_host->jrec_end(lj->jr); lj->jr = NULL; }
  vstor_host->job_progress(job, lj->bytes, lj->bytes);
  if (job->vol->ops->refresh) job->vol->ops->refresh(job->vol);
  return 0;
}

int lvm_job_complete(vstor_job *job)
{
  struct lvm_job *lj = job->priv;
  return vstor_err(VSTOR_E_NOTSUP, 0, "%s/%s: a pvmove cannot keep a copy on %s while the LV "
                   "stays on %s: pivot or cancel", lj->vg, lj->lv, lj->dst, lj->src);
}

int lvm_job_cancel(vstor_job *job)
{
  struct lvm_job *lj = job->priv;
  if (!lj) return 0;
  stop_child(lj);
  if (abort_move(lj->vg, lj->lv, lj->src) < 0) return -1;
  if (lj->finished) {
    /* LVM had already moved it (tiny LV); say so rather than pretend. */
    vstor_log(job->vol->ctx, VSTOR_LOG_WARN, "%s/%s: the move had completed before the cancel; "
              "the LV stays on %s", lj->vg, lj->lv, lj->dst);
  }
  if (lj->jr) { vstor_host->jrec_end(lj->jr); lj->jr = NULL; }
  if (job->vol->ops->refresh) job->vol->ops->refresh(job->vol);
  return 0;
}

void lvm_job_free(vstor_job *job)
{
  struct lvm_job *lj = job->priv;
  if (!lj) return;
  stop_child(lj);
  /* The job failed after the move began: put everything back on the
   * source.  If that fails too, the record stays for vstor_recover(). */
  if (lj->jr && abort_move(lj->vg, lj->lv, lj->src) == 0) vstor_host->jrec_end(lj->jr);
  lj_free(lj);
  job->priv = NULL;
}

static bool pid_is_pvmove(const char *pid)
{
  char path[64], buf[256] = "";
  snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  for (size_t i = 0; i < n; i++) if (!buf[i]) buf[i] = ' ';
  return strstr(buf, "pvmove") != NULL;
}

int lvm_recover_mirror(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep)
{
  (void)ctx;
  const char *vg = vstor_host->jrec_get(rec, "lvm_vg"), *lv = vstor_host->jrec_get(rec, "lvm_lv");
  const char *src = vstor_host->jrec_get(rec, "lvm_src"), *dst = vstor_host->jrec_get(rec, "lvm_dst");
  const char *pid = vstor_host->jrec_get(rec, "lvm_pvmove_pid");
  const char *pivot = vstor_host->jrec_get(rec, "lvm_pivot");
  if (!vg || !lv || !src || !dst) {
    vu_step(rep, "lvm", "pvmove", VSTOR_STEP_SKIPPED, 0, "nothing was started");
    return 0;
  }
  if (pid && atoi(pid) > 0 && pid_is_pvmove(pid)) {
    kill(atoi(pid), SIGINT);
    msleep(500);
  }
  char *name = vu_asprintf("%s/%s", vg, lv);
  char *pm = pvmove_of(vg, lv);
  int r = 0;
  if (!pm) {
    vu_step(rep, "lvm", "pvmove", VSTOR_STEP_SKIPPED, 0, "no pvmove in progress for %s (it is on "
            "%s)", name, lv_all_on(vg, lv, dst) ? dst : src);
  } else if (pivot && !strcmp(pivot, "1")) {
    r = finish_move(vg, lv, src, dst);
    vu_step(rep, "lvm", "finish interrupted pivot", r == 0 ? VSTOR_STEP_DONE : VSTOR_STEP_FAILED,
            0, "%s %s -> %s", name, src, dst);
  } else {
    r = abort_move(vg, lv, src);
    vu_step(rep, "lvm", "abort orphaned pvmove", r == 0 ? VSTOR_STEP_DONE : VSTOR_STEP_FAILED, 1,
            "%s stays on %s", name, src);
  }
  free(pm);
  free(name);
  return r;
}
