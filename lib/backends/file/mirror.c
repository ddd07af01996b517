/* libvstor file backend: mirror, pivot, complete, cancel
 *
 * A loop device passes writes straight to the image: nothing intercepts
 * them, so the copy cannot follow a live writer block by block.  The job
 * copies the allocated data once (READY), then pivot and complete make
 * the copy exact with a resync pass while the source is quiet: complete
 * freezes a mounted filesystem for that pass; pivot needs every loop
 * device idle or read-only (the kernel re-points only those), which the
 * capability query says before anything starts.  doc/file-backend.md.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include "file.h"

struct fjob {
  char *dpath;
  int dfd;
  bool created;
  uint64_t size;
  struct vstor_jrec *jr;
  bool first_chunk;
  /* The source's state the copy is exact for: loop and file writes
   * update its timestamps, so unchanged ones mean no resync is needed. */
  struct timespec mtime, ctime;
  uint64_t copied_size;
  bool ts_usable;
};

static struct fpriv *P(vstor_vol *v) { return v->priv; }

int file_mirror_prepare(vstor_vol *v, vstor_job *job, unsigned flags, vstor_report *rep)
{
  struct fpriv *p = P(v);
  if (file_refresh(v) < 0) return -1;
  char *dpath;
  if (file_dest_path(v, job->dest, &dpath) < 0) return -1;
  struct fjob *fj = vu_calloc(1, sizeof *fj);
  fj->dpath = dpath;
  fj->dfd = -1;
  job->priv = fj;
  if (file_dest_refuse_frozen(v, dpath) < 0) return -1;
  struct stat sst, dst;
  fstat(p->fd, &sst);
  fj->size = (uint64_t)sst.st_size;
  bool reuse = flags & VSTOR_MIRROR_REUSE_DEST;
  int sr = lstat(dpath, &dst);
  if (sr == 0 && sst.st_dev == dst.st_dev && sst.st_ino == dst.st_ino)
    return vstor_err(VSTOR_E_INVAL, EINVAL, "destination %s is the source itself", dpath);
  if (reuse) {
    if (sr < 0)
      return vstor_err(VSTOR_E_NOENT, errno, "destination %s: %s (reuse asks for an existing file)",
                       dpath, strerror(errno));
    if (!S_ISREG(dst.st_mode))
      return vstor_err(VSTOR_E_INVAL, EINVAL, "destination %s is not a regular file", dpath);
    if ((uint64_t)dst.st_size != fj->size)
      return vstor_err(VSTOR_E_INVAL, EINVAL, "destination %s has %llu bytes, the source %llu: "
                       "a reused destination must have exactly the source's size", dpath,
                       (unsigned long long)dst.st_size, (unsigned long long)fj->size);
  } else if (sr == 0 || errno != ENOENT)
    return vstor_err(VSTOR_E_EXIST, EEXIST, "destination %s already exists", dpath);
  uint64_t alloc = 0, fr = 0;
  vu_allocated(p->fd, fj->size, &alloc);
  char *dd = vu_strdup(dpath);
  int r = vu_fs_free(dirname(dd), &fr);
  free(dd);
  if (r < 0) return -1;
  if (alloc > fr + (reuse ? (uint64_t)dst.st_blocks * 512 : 0)) {
    char *a = vu_human_size(alloc), *b = vu_human_size(fr);
    vstor_err(VSTOR_E_NOSPC, ENOSPC, "destination %s: the copy needs %s, %s free; nothing was "
              "changed", dpath, a, b);
    free(a); free(b);
    return -1;
  }
  char *a = vu_human_size(alloc), *sz = vu_human_size(fj->size);
  vu_step(rep, "file", "copy allocated data", VSTOR_STEP_PLANNED, 1, "%s of %s, %s -> %s", a, sz,
          p->path, dpath);
  free(a); free(sz);
  if (flags & VSTOR_MIRROR_VERIFY)
    vu_step(rep, "file", "verify before pivot", VSTOR_STEP_PLANNED, 1, "byte comparison");
  char *why = NULL;
  bool can_pivot = true;
  for (size_t i = 0; i < p->nloops; i++) {
    char *w = NULL;
    if (!floop_pivot_check(&p->loops[i], &w)) { can_pivot = false; if (!why) why = w; else free(w); }
    else vu_step(rep, "loop", p->loops[i].ro ? "pivot: LOOP_CHANGE_FD" : "pivot: rebind idle device",
                 VSTOR_STEP_PLANNED, 1, "%s", p->loops[i].dev);
  }
  if (!can_pivot) {
    vu_step(rep, "loop", "pivot", VSTOR_STEP_SKIPPED, 0, "not possible now: %s; complete "
            "(a point-in-time copy) is", why);
    free(why);
  }
  if (flags & VSTOR_DRY_RUN) return 0;

  fj->jr = vstor_host->jrec_begin(v, "mirror");
  if (!fj->jr) return -1;
  vstor_host->jrec_put(fj->jr, "dest", dpath);
  vstor_host->jrec_put(fj->jr, "step", "copying");
  /* recorded before it is created (O_EXCL: if it exists it is ours) */
  if (!reuse && vstor_host->jrec_set(fj->jr, "dest_created", "1") < 0) return -1;
  fj->dfd = open(dpath, reuse ? O_RDWR | O_NOFOLLOW | O_CLOEXEC
                              : O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fj->dfd < 0)
    return vstor_err(errno == EEXIST ? VSTOR_E_EXIST : VSTOR_E_IO, errno, "destination %s: %s",
                     dpath, strerror(errno));
  if (!reuse) {
    fj->created = true;
  } else {
    if (vstor_host->jrec_set(fj->jr, "reused", "1") < 0) return -1;
    if (ftruncate(fj->dfd, 0) < 0) /* old contents must not show through holes */
      return vstor_err(VSTOR_E_IO, errno, "destination %s: %s", dpath, strerror(errno));
  }
  vstor_fault("file.mirror.created");
  return 0;
}

static int64_t ms_since(const struct timespec *t, const struct timespec *now)
{
  return ((int64_t)now->tv_sec - t->tv_sec) * 1000 + (now->tv_nsec - t->tv_nsec) / 1000000;
}

/* Remember the source's state the copy is exact for (st taken before
 * reading it).  A write in the same clock tick as the previous one may
 * leave the timestamps unchanged: trust them only for a source that had
 * been idle for more than 100 ms. */
static void stamp(struct fjob *fj, const struct stat *st)
{
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  fj->mtime = st->st_mtim;
  fj->ctime = st->st_ctim;
  fj->copied_size = (uint64_t)st->st_size;
  fj->ts_usable = ms_since(&st->st_mtim, &now) > 100 && ms_since(&st->st_ctim, &now) > 100;
}

static bool ctl_cancelled(void *o) { return vstor_host->job_cancelled(o); }
static uint64_t ctl_speed(void *o) { return vstor_host->job_speed(o); }
static void ctl_progress(void *o, uint64_t done, uint64_t total)
{
  vstor_job *job = o;
  struct fjob *fj = job->priv;
  vstor_host->job_progress(job, done, total);
  if (!fj->first_chunk) { fj->first_chunk = true; vstor_fault("file.mirror.copying"); }
}

int file_job_run(vstor_job *job)
{
  struct fjob *fj = job->priv;
  struct fpriv *p = P(job->vol);
  struct vu_copy_ctl ctl = { ctl_cancelled, ctl_progress, ctl_speed, job, 0 };
  struct stat st;
  if (fstat(p->fd, &st) < 0) return vstor_err(VSTOR_E_IO, errno, "fstat: %s", strerror(errno));
  stamp(fj, &st);
  if (vu_allocated(p->fd, fj->size, &ctl.total) < 0) return -1;
  if (!ctl.total) ctl.total = 1;  /* an empty image: done is 1 of 1, never 0 of 0 */
  vstor_host->job_progress(job, 0, ctl.total);
  if (vu_sparse_copy(p->fd, fj->dfd, fj->size, &ctl) < 0) return -1;
  vstor_host->job_progress(job, ctl.total, ctl.total);
  if (fdatasync(fj->dfd) < 0)
    return vstor_err(VSTOR_E_IO, errno, "destination %s: %s", fj->dpath, strerror(errno));
  vstor_fault("file.mirror.copied");
  return 0;
}

static int resync(vstor_job *job, const char *why)
{
  struct fjob *fj = job->priv;
  struct fpriv *p = P(job->vol);
  uint64_t changed = 0;
  struct stat st;
  if (fstat(p->fd, &st) < 0) return vstor_err(VSTOR_E_IO, errno, "fstat: %s", strerror(errno));
  if (fj->ts_usable && (uint64_t)st.st_size == fj->copied_size &&
      st.st_mtim.tv_sec == fj->mtime.tv_sec && st.st_mtim.tv_nsec == fj->mtime.tv_nsec &&
      st.st_ctim.tv_sec == fj->ctime.tv_sec && st.st_ctim.tv_nsec == fj->ctime.tv_nsec) {
    vstor_log(job->vol->ctx, VSTOR_LOG_INFO, "%s: source unchanged since the copy began: no "
              "resync before %s", fj->dpath, why);
  } else {
    if (vu_resync(p->fd, fj->dfd, fj->size, &changed) < 0) return -1;
    vstor_log(job->vol->ctx, VSTOR_LOG_INFO, "%s: resync before %s rewrote %llu bytes",
              fj->dpath, why, (unsigned long long)changed);
    stamp(fj, &st);  /* exact as of st: a later pass may skip */
  }
  if ((job->flags & VSTOR_MIRROR_VERIFY) && vu_verify(p->fd, fj->dfd, fj->size) < 0) return -1;
  return 0;
}

/* The source may have grown while READY (extend is locked out, but an
 * outside truncate is not): the copy follows its size. */
static int follow_size(vstor_job *job)
{
  struct fjob *fj = job->priv;
  struct stat st;
  if (fstat(P(job->vol)->fd, &st) < 0) return vstor_err(VSTOR_E_IO, errno, "fstat: %s", strerror(errno));
  fj->size = (uint64_t)st.st_size;
  return 0;
}

int file_job_pivot(vstor_job *job)
{
  vstor_vol *v = job->vol;
  struct fpriv *p = P(v);
  struct fjob *fj = job->priv;
  if (file_refresh(v) < 0) return -1;
  for (size_t i = 0; i < p->nloops; i++) {
    char *why = NULL;
    if (!floop_pivot_check(&p->loops[i], &why)) {
      int r = vstor_err(VSTOR_E_NOTSUP, 0, "%s: cannot pivot: %s", p->path, why);
      free(why);
      return r;
    }
  }
  /* hold idle read-write loops exclusively: nothing mounts them meanwhile */
  int *hold = vu_calloc(p->nloops + 1, sizeof *hold);
  int rc = -1;
  for (size_t i = 0; i < p->nloops; i++) {
    hold[i] = -1;
    if (p->loops[i].ro) continue;
    hold[i] = open(p->loops[i].dev, O_RDWR | O_EXCL | O_CLOEXEC);
    if (hold[i] < 0) {
      vstor_err(VSTOR_E_BUSY, errno, "%s: %s is in use (%s)", p->path, p->loops[i].dev, strerror(errno));
      goto out;
    }
  }
  if (follow_size(job) < 0) goto out;
  if (resync(job, "pivot") < 0) goto out;
  /* record where each device must end up before touching any */
  char *list = vu_strdup("");
  for (size_t i = 0; i < p->nloops; i++) {
    char *n = vu_asprintf("%s%s%s:%s", list, i ? "," : "", p->loops[i].dev, p->loops[i].ro ? "ro" : "rw");
    free(list);
    list = n;
  }
  vstor_host->jrec_put(fj->jr, "loops", list);
  free(list);
  char id[64];
  snprintf(id, sizeof id, "%llu:%llu", (unsigned long long)p->dev, (unsigned long long)p->ino);
  vstor_host->jrec_put(fj->jr, "src_id", id);
  if (vstor_host->jrec_set(fj->jr, "step", "switching") < 0) goto out;
  vstor_fault("file.pivot.synced");
  for (size_t i = 0; i < p->nloops; i++) {
    struct floop *l = &p->loops[i];
    int r;
    if (l->ro) {
      int nf = open(fj->dpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      r = nf < 0 ? vstor_err(VSTOR_E_IO, errno, "%s: %s", fj->dpath, strerror(errno))
                 : floop_change_fd(l->dev, nf);
      if (nf >= 0) close(nf);
    } else {
      close(hold[i]);
      hold[i] = -1;
      r = floop_rebind(l->dev, fj->dpath);
    }
    if (r < 0) goto out;
    if (i == 0) vstor_fault("file.pivot.switched-one");
  }
  /* the volume is now the copy */
  int nfd = open(fj->dpath, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (nfd < 0 || fstat(nfd, &st) < 0) {
    vstor_err(VSTOR_E_IO, errno, "%s: %s", fj->dpath, strerror(errno));
    if (nfd >= 0) close(nfd);
    goto out;
  }
  close(p->fd);
  p->fd = nfd;
  free(p->path);
  p->path = vu_strdup(fj->dpath);
  p->dev = st.st_dev;
  p->ino = st.st_ino;
  free(v->id);
  v->id = vu_asprintf("file:%u:%u:%llu", major(st.st_dev), minor(st.st_dev),
                      (unsigned long long)st.st_ino);
  vstor_fault("file.pivot.done");
  vstor_host->jrec_end(fj->jr);
  fj->jr = NULL;
  rc = file_refresh(v);
out:
  for (size_t i = 0; i < p->nloops; i++)
    if (hold[i] >= 0) close(hold[i]);
  free(hold);
  return rc;
}

int file_job_complete(vstor_job *job)
{
  vstor_vol *v = job->vol;
  struct fpriv *p = P(v);
  struct fjob *fj = job->priv;
  if (file_refresh(v) < 0) return -1;
  if (follow_size(job) < 0) return -1;
  if (resync(job, "complete (unfrozen pass)") < 0) return -1;
  const char *mnt = NULL;
  for (size_t i = 0; i < p->nloops; i++)
    if (p->loops[i].mnt && !p->loops[i].mnt_ro) mnt = p->loops[i].mnt;
  struct vu_freeze fz;
  if (mnt) {
    vstor_host->jrec_set(fj->jr, "frozen", mnt);
    if (vu_freeze(&fz, mnt, job->opts.freeze_timeout_ms ? job->opts.freeze_timeout_ms : 10000, false) < 0)
      return -1;
  }
  vstor_fault("file.complete.frozen");
  int r = resync(job, "complete");
  if (mnt) {
    int t = vu_thaw(&fz);
    if (r == 0) r = t;
    vstor_host->jrec_set(fj->jr, "frozen", "");
  }
  if (r < 0) return -1;
  if (fsync(fj->dfd) < 0) return vstor_err(VSTOR_E_IO, errno, "%s: fsync: %s", fj->dpath, strerror(errno));
  vstor_host->jrec_end(fj->jr);
  fj->jr = NULL;
  return 0;
}

int file_job_cancel(vstor_job *job)
{
  struct fjob *fj = job->priv;
  if (!fj) return 0;
  if (fj->created && fj->dpath) unlink(fj->dpath);
  fj->created = false;
  if (fj->jr) { vstor_host->jrec_end(fj->jr); fj->jr = NULL; }
  return 0;
}

void file_job_free(vstor_job *job)
{
  struct fjob *fj = job->priv;
  if (!fj) return;
  if (fj->jr) {  /* never started (dry run or a failed start): undo */
    if (fj->created) unlink(fj->dpath);
    vstor_host->jrec_end(fj->jr);
  }
  if (fj->dfd >= 0) close(fj->dfd);
  free(fj->dpath);
  free(fj);
  job->priv = NULL;
}

int file_recover_mirror(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep)
{
  (void)ctx;
  const char *dest = vstor_host->jrec_get(rec, "dest"), *step = vstor_host->jrec_get(rec, "step");
  const char *mnt = vstor_host->jrec_get(rec, "frozen");
  if (!dest) return vstor_err(VSTOR_E_INVAL, EINVAL, "mirror record without dest");
  if (mnt && *mnt) {
    int r = vu_thaw_path(mnt);
    vu_step(rep, "filesystem", "thaw", r < 0 ? VSTOR_STEP_FAILED : VSTOR_STEP_DONE, 0, "%s", mnt);
  }
  if (step && !strcmp(step, "switching")) {
    /* the copy was in sync: finish the pivot */
    const char *loops = vstor_host->jrec_get(rec, "loops");
    const char *sid = vstor_host->jrec_get(rec, "src_id");
    unsigned long long sdev = 0, sino = 0;
    bool src_ok = sid && sscanf(sid, "%llu:%llu", &sdev, &sino) == 2;
    struct stat st;
    if (stat(dest, &st) < 0) return vstor_err(VSTOR_E_IO, errno, "%s: %s", dest, strerror(errno));
    char *list = vu_strdup(loops ? loops : ""), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      char *colon = strrchr(t, ':');
      if (!colon) continue;
      *colon = 0;
      bool ro = !strcmp(colon + 1, "ro");
      uint64_t d = 0, i = 0;
      int b = floop_status(t, &d, &i);
      int r = 0;
      const char *what = "already on the copy";
      if (b == 0) { r = floop_bind(t, dest, NULL, ro); what = "bind to the copy"; }
      else if (b == 1 && (d != (uint64_t)st.st_dev || i != (uint64_t)st.st_ino) &&
               !(src_ok && d == sdev && i == sino)) {
        /* bound to neither the source nor the copy: someone reused it */
        r = vstor_err(VSTOR_E_BUSY, EBUSY, "%s is now bound to another file: left alone", t);
        what = "left alone (reused by another file)";
      } else if (b == 1 && (d != (uint64_t)st.st_dev || i != (uint64_t)st.st_ino)) {
        if (ro) {
          int nf = open(dest, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
          r = nf < 0 ? -1 : floop_change_fd(t, nf);
          if (nf >= 0) close(nf);
          what = "LOOP_CHANGE_FD to the copy";
        } else {
          r = floop_rebind(t, dest);
          what = "rebind to the copy";
        }
      } else if (b < 0) r = -1;
      vu_step(rep, "loop", "finish pivot", r < 0 ? VSTOR_STEP_FAILED : VSTOR_STEP_DONE, 0, "%s: %s",
              t, what);
      if (r < 0) rc = -1;
    }
    free(list);
    return rc;
  }
  if (vstor_host->jrec_get(rec, "dest_created")) {
    bool gone = unlink(dest) < 0 && errno == ENOENT;
    vu_step(rep, "file", "remove unfinished copy", VSTOR_STEP_DONE, 0, "%s%s", dest,
            gone ? " (already gone)" : "");
  } else
    vu_step(rep, "file", "abandon mirror", VSTOR_STEP_DONE, 0, "%s (reused destination left in place)", dest);
  return 0;
}
