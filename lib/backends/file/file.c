/* libvstor file backend: a raw image file and the loop devices exposing it
 *
 * Built into libvstor.so (it needs no daemon).  The image is opened once
 * with O_NOFOLLOW and every later step works on that descriptor, so a
 * path swapped for a symlink between check and use is refused.
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
#include <unistd.h>
#include "file.h"
#include "../../internal.h"

#define CAP_SYS_RESOURCE 24

static struct fpriv *P(vstor_vol *v) { return v->priv; }

static void fpriv_free(struct fpriv *p)
{
  if (!p) return;
  if (p->fd >= 0) close(p->fd);
  floop_free(p->loops, p->nloops);
  free(p->fstype);
  free(p->path);
  free(p);
}

/* Refuse images that are not raw: their size is not the disk's size. */
static const char *image_format(int fd, uint64_t size)
{
  unsigned char h[8] = { 0 };
  if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h) return NULL;
  if (!memcmp(h, "QFI\xfb", 4)) return "qcow2";
  if (!memcmp(h, "QFI", 3)) return "qcow";
  if (!memcmp(h, "QED\0", 4)) return "qed";
  if (!memcmp(h, "KDMV", 4)) return "vmdk";
  if (!memcmp(h, "vhdxfile", 8)) return "vhdx";
  if (!memcmp(h, "conectix", 8)) return "vhd";
  if (size >= 512) {
    unsigned char f[8];
    if (pread(fd, f, sizeof f, (off_t)(size - 512)) == (ssize_t)sizeof f && !memcmp(f, "conectix", 8))
      return "vhd";
  }
  unsigned char vdi[4];
  if (pread(fd, vdi, 4, 64) == 4 && !memcmp(vdi, "\x7f\x10\xda\xbe", 4)) return "vdi";
  return NULL;
}

static int loop_backing(const char *dev, char **path)
{
  struct stat st;
  if (stat(dev, &st) < 0)
    return vstor_err(VSTOR_E_NOENT, errno, "%s: %s", dev, strerror(errno));
  if (!S_ISBLK(st.st_mode))
    return vstor_err(VSTOR_E_INVAL, ENOTBLK, "%s: not a block device", dev);
  char *sys = vu_asprintf("/sys/dev/block/%u:%u/loop/backing_file", major(st.st_rdev),
                          minor(st.st_rdev));
  FILE *f = fopen(sys, "re");
  free(sys);
  if (!f) return vstor_err(VSTOR_E_NOENT, ENXIO, "%s: loop device is not bound to a file", dev);
  char buf[4096];
  if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
  fclose(f);
  buf[strcspn(buf, "\n")] = 0;
  if (buf[0] != '/')
    return vstor_err(VSTOR_E_NOENT, ENXIO, "%s: backing file unknown", dev);
  if (strlen(buf) > 10 && !strcmp(buf + strlen(buf) - 10, " (deleted)"))
    return vstor_err(VSTOR_E_NOENT, ENOENT, "%s: its backing file was deleted", dev);
  *path = vu_strdup(buf);
  return 0;
}

int file_refresh(vstor_vol *v)
{
  struct fpriv *p = P(v);
  struct stat st;
  if (fstat(p->fd, &st) < 0) return vstor_err(VSTOR_E_IO, errno, "%s: %s", p->path, strerror(errno));
  floop_free(p->loops, p->nloops);
  p->loops = NULL;
  p->nloops = 0;
  free(p->fstype);
  p->fstype = NULL;
  vu_layers_clear(v);
  if (floop_scan(p->dev, p->ino, true, &p->loops, &p->nloops) < 0) return -1;
  uint64_t alloc = 0;
  vu_allocated(p->fd, (uint64_t)st.st_size, &alloc);
  struct vstor_layer *l = vu_layer_add(v, "storage", "file", p->path, (uint64_t)st.st_size);
  char *a = vu_asprintf("%llu", (unsigned long long)alloc);
  vu_layer_prop(l, "allocated", a);
  free(a);
  vu_layer_prop(l, "format", "raw");
  for (size_t i = 0; i < p->nloops; i++) {
    struct floop *lp = &p->loops[i];
    uint64_t sz = 0;
    vu_blk_size(lp->dev, &sz);
    l = vu_layer_add(v, "exposure", "loop", lp->dev, sz);
    vu_layer_prop(l, "read-only", lp->ro ? "yes" : "no");
    if (lp->offset) { char *o = vu_asprintf("%llu", (unsigned long long)lp->offset); vu_layer_prop(l, "offset", o); free(o); }
    if (lp->sizelimit) { char *o = vu_asprintf("%llu", (unsigned long long)lp->sizelimit); vu_layer_prop(l, "sizelimit", o); free(o); }
    if (lp->holders) vu_layer_prop(l, "holders", "yes");
  }
  for (size_t i = 0; i < p->nloops; i++) {
    struct floop *lp = &p->loops[i];
    if (!lp->fstype) continue;
    l = vu_layer_add(v, "filesystem", lp->fstype, lp->dev, 0);
    vu_layer_prop(l, "mountpoint", lp->mnt ? lp->mnt : "");
    vu_layer_prop(l, "mounted", lp->mnt ? (lp->mnt_ro ? "read-only" : "read-write") : "no");
  }
  if (!p->nloops && (p->fstype = vu_fs_type(p->path))) {
    l = vu_layer_add(v, "filesystem", p->fstype, p->path, 0);
    vu_layer_prop(l, "mounted", "no");
  }
  return 0;
}

static int file_open(vstor_vol *v)
{
  const struct vstor_uri *u = v->uri;
  char *path = NULL;
  if (u->spec_type && !strcmp(u->spec_type, "loop")) {
    if (loop_backing(u->path, &path) < 0) return -1;
  } else path = vu_strdup(u->path);
  if (u->format && strcmp(u->format, "raw")) {
    int r = vstor_err(VSTOR_E_NOTSUP, 0, "%s: format %s: the file backend handles raw images only "
                      "(open the disk through its hypervisor: libvirt:DOMAIN/DISK)", path, u->format);
    free(path);
    return r;
  }
  bool ro = v->flags & VSTOR_OPEN_READONLY;
  int fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    int code = e == ENOENT ? VSTOR_E_NOENT : e == EACCES || e == EPERM || e == EROFS ? VSTOR_E_PERM
             : e == ELOOP || e == EISDIR ? VSTOR_E_INVAL : VSTOR_E_IO;
    vstor_err(code, e, "%s: %s", path,
              e == ELOOP ? "is a symbolic link: give the real path (symlinks are refused so that "
                           "a swapped link cannot redirect the operation)"
              : e == EISDIR ? "a directory, not an image file" : strerror(e));
    free(path);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  struct stat st;
  fstat(fd, &st);
  if (!S_ISREG(st.st_mode)) {
    vstor_err(S_ISBLK(st.st_mode) ? VSTOR_E_NOTSUP : VSTOR_E_INVAL, S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
              "%s: not an image file (%s)", path,
              S_ISBLK(st.st_mode) ? "a block device: use loop:/dev/loopN or lvm:VG/LV"
              : S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
    close(fd);
    free(path);
    return -1;
  }
  const char *fmt = image_format(fd, (uint64_t)st.st_size);
  if (fmt) {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: a %s image, not raw: its virtual size is not the file's size; "
              "grow it through its hypervisor (libvirt:DOMAIN/DISK) or qemu-img", path, fmt);
    close(fd);
    free(path);
    return -1;
  }
  struct fpriv *p = vu_calloc(1, sizeof *p);
  p->path = path;
  p->fd = fd;
  p->dev = st.st_dev;
  p->ino = st.st_ino;
  v->priv = p;
  v->id = vu_asprintf("file:%u:%u:%llu", major(st.st_dev), minor(st.st_dev),
                      (unsigned long long)st.st_ino);
  if (file_refresh(v) < 0) { fpriv_free(p); v->priv = NULL; return -1; }
  return 0;
}

static void file_close(vstor_vol *v)
{
  fpriv_free(P(v));
  v->priv = NULL;
}

static int file_size(vstor_vol *v, uint64_t *size)
{
  struct stat st;
  if (fstat(P(v)->fd, &st) < 0) return vstor_err(VSTOR_E_IO, errno, "%s: %s", P(v)->path, strerror(errno));
  *size = (uint64_t)st.st_size;
  return 0;
}

/* The filesystem the volume carries: on a loop device, or in the file. */
static const char *vol_fs(vstor_vol *v, const char **dev, const char **mnt, bool *mnt_ro)
{
  struct fpriv *p = P(v);
  for (size_t i = 0; i < p->nloops; i++)
    if (p->loops[i].fstype) {
      *dev = p->loops[i].dev;
      *mnt = p->loops[i].mnt;
      *mnt_ro = p->loops[i].mnt_ro;
      return p->loops[i].fstype;
    }
  *dev = p->path;
  *mnt = NULL;
  *mnt_ro = false;
  return p->fstype;
}

static int file_can(vstor_vol *v, int op, unsigned flags, char **why)
{
  struct fpriv *p = P(v);
  const char *dev, *mnt;
  bool mro;
  const char *fs = vol_fs(v, &dev, &mnt, &mro);
  char *w = NULL;
  switch (op) {
  case VSTOR_OP_EXTEND:
  case VSTOR_OP_EXTEND_ONLINE:
    for (size_t i = 0; i < p->nloops && !w; i++)
      if (p->loops[i].sizelimit)
        w = vu_asprintf("%s has a size limit: the loop would not grow", p->loops[i].dev);
    break;
  case VSTOR_OP_RESIZE_FS:
    if (!fs) w = vu_strdup("no filesystem found on the volume");
    else if (mro) w = vu_asprintf("%s is mounted read-only at %s", fs, mnt);
    else if (vu_fs_can_grow(fs, mnt != NULL, &w) && mnt && !strncmp(fs, "ext", 3) &&
             !proc_has_cap(CAP_SYS_RESOURCE))
      w = vu_asprintf("%s: online grow of a mounted ext filesystem needs CAP_SYS_RESOURCE, which "
                      "this process lacks (the kernel answers EPERM); unmount it to grow offline", fs);
    break;
  case VSTOR_OP_FREEZE:
    if (!mnt) w = vu_strdup("not mounted: nothing to quiesce (a snapshot is consistent as is)");
    else if (mro) w = vu_asprintf("mounted read-only at %s: nothing to quiesce", mnt);
    break;
  case VSTOR_OP_SNAPSHOT:
  case VSTOR_OP_MIRROR:
    break;
  case VSTOR_OP_PIVOT:
    for (size_t i = 0; i < p->nloops && !w; i++)
      floop_pivot_check(&p->loops[i], &w);
    break;
  }
  (void)flags;
  if (w) {
    if (why) *why = w; else free(w);
    return 0;
  }
  return 1;
}

/* ---- extend -------------------------------------------------------- */

/* The loops bound to the image are the ones the handle knows (device,
 * flags, offset, size limit): a scan without probing filesystems. */
static bool loops_unchanged(struct fpriv *p)
{
  struct floop *l = NULL;
  size_t n = 0;
  if (floop_scan(p->dev, p->ino, false, &l, &n) < 0) return false;
  bool same = n == p->nloops;
  for (size_t i = 0; same && i < n; i++) {
    bool found = false;
    for (size_t j = 0; j < p->nloops && !found; j++)
      found = l[i].rdev == p->loops[j].rdev && l[i].ro == p->loops[j].ro &&
              l[i].offset == p->loops[j].offset && l[i].sizelimit == p->loops[j].sizelimit;
    same = found;
  }
  floop_free(l, n);
  return same;
}

/* After a grow without a filesystem step only sizes changed: update the
 * storage and exposure layers in place instead of probing them again. */
static void update_sizes(vstor_vol *v)
{
  struct fpriv *p = P(v);
  struct stat st;
  for (size_t i = 0; i < v->nlayers; i++) {
    struct vstor_layer *l = &v->layers[i];
    if (!strcmp(l->role, "storage") && fstat(p->fd, &st) == 0) {
      uint64_t alloc = 0;
      l->size = (uint64_t)st.st_size;
      vu_allocated(p->fd, l->size, &alloc);
      char *a = vu_asprintf("%llu", (unsigned long long)alloc);
      vu_layer_prop(l, "allocated", a);
      free(a);
    } else if (!strcmp(l->role, "exposure")) {
      vu_blk_size(l->path, &l->size);
    }
  }
}

static int space_check(struct fpriv *p, uint64_t need)
{
  char *dir = vu_strdup(p->path), *d = dirname(dir);
  uint64_t fr = 0;
  int r = vu_fs_free(d, &fr);
  if (r == 0 && need > fr) {
    char *a = vu_human_size(need), *b = vu_human_size(fr);
    r = vstor_err(VSTOR_E_NOSPC, ENOSPC, "%s: growing needs %s but the filesystem holding it (%s) "
                  "has %s free; nothing was changed", p->path, a, d, b);
    free(a); free(b);
  }
  free(dir);
  return r;
}

static int file_extend(vstor_vol *v, uint64_t size, const struct vstor_opts *o, unsigned flags,
                       vstor_report *rep)
{
  struct fpriv *p = P(v);
  (void)o;
  bool resize_fs = flags & VSTOR_EXTEND_RESIZE_FS;
  /* Fresh facts first: which loop devices are bound to the image now.
   * Without a filesystem step only the loop facts matter, so the full
   * probe (libblkid, libmount) runs only when the set of loops changed
   * since the handle last looked. */
  if ((resize_fs || !loops_unchanged(p)) && file_refresh(v) < 0) return -1;
  uint64_t cur;
  if (file_size(v, &cur) < 0) return -1;
  rep->old_size = cur;
  rep->new_size = size;
  if (size < cur)
    return vstor_err(VSTOR_E_INVAL, EINVAL, "%s: shrinking from %llu to %llu bytes is refused "
                     "(libvstor only grows volumes)", p->path, (unsigned long long)cur,
                     (unsigned long long)size);
  if (size % 512)
    return vstor_err(VSTOR_E_INVAL, EINVAL, "%s: %llu is not a multiple of 512 bytes", p->path,
                     (unsigned long long)size);
  char *why = NULL;
  if (!file_can(v, VSTOR_OP_EXTEND, flags, &why)) {
    int r = vstor_err(VSTOR_E_NOTSUP, 0, "%s: %s", p->path, why);
    free(why);
    return r;
  }
  const char *fdev, *fmnt;
  bool fro;
  const char *fs = vol_fs(v, &fdev, &fmnt, &fro);
  if (resize_fs && !fs)
    return vstor_err(VSTOR_E_NOTSUP, 0, "%s: no filesystem found to grow", p->path);
  if (resize_fs && fro)
    return vstor_err(VSTOR_E_NOTSUP, EROFS, "%s: %s is mounted read-only at %s", p->path, fs, fmnt);
  if (resize_fs && !vu_fs_can_grow(fs, fmnt != NULL, &why)) {
    int r = vstor_err(VSTOR_E_NOTSUP, 0, "%s: %s", p->path, why);
    free(why);
    return r;
  }
  bool loops_behind = false;
  for (size_t i = 0; i < p->nloops; i++) {
    uint64_t bs = 0;
    vu_blk_size(p->loops[i].dev, &bs);
    loops_behind |= bs != size - p->loops[i].offset;
  }
  char *hs = vu_human_size(size);
  bool prealloc = flags & VSTOR_EXTEND_PREALLOC;
  size_t s_file = rep->nsteps;
  vu_step(rep, "file", prealloc ? "grow (preallocated, fallocate)" : "grow (sparse, ftruncate)",
          size == cur ? VSTOR_STEP_SKIPPED : VSTOR_STEP_PLANNED, 1, "%s to %s%s", p->path, hs,
          size == cur ? " (already that size)" : "");
  size_t s_loop = rep->nsteps;
  for (size_t i = 0; i < p->nloops; i++)
    vu_step(rep, "loop", "refresh capacity (LOOP_SET_CAPACITY)",
            size == cur && !loops_behind ? VSTOR_STEP_SKIPPED : VSTOR_STEP_PLANNED, 1, "%s",
            p->loops[i].dev);
  size_t s_fs = rep->nsteps;
  if (resize_fs)
    vu_step(rep, fs, fmnt ? "grow online" : "grow offline", VSTOR_STEP_PLANNED, 0, "%s%s%s", fdev,
            fmnt ? " mounted at " : "", fmnt ? fmnt : "");
  free(hs);
  if (size > cur && space_check(p, size - cur) < 0) return -1;
  if (flags & VSTOR_DRY_RUN) return 0;

  struct vstor_jrec *jr = vstor_host->jrec_begin(v, "extend");
  if (!jr) return -1;
  /* Recover of an extend only refreshes loop capacities, which a reboot
   * resets anyway: the record has to survive the process, not the host. */
  vstor_host->jrec_put(jr, "durable", "no");
  char buf[64];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)cur);
  vstor_host->jrec_put(jr, "old_size", buf);
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)size);
  vstor_host->jrec_put(jr, "new_size", buf);
  snprintf(buf, sizeof buf, "%llu:%llu", (unsigned long long)p->dev, (unsigned long long)p->ino);
  vstor_host->jrec_put(jr, "file_id", buf);
  vstor_host->jrec_put(jr, "path", p->path);
  if (vstor_host->jrec_set(jr, "step", "growing") < 0) { vstor_host->jrec_end(jr); return -1; }
  vstor_fault("file.extend.begin");

  if (size > cur) {
    int r = prealloc ? fallocate(p->fd, 0, (off_t)cur, (off_t)(size - cur)) : ftruncate(p->fd, (off_t)size);
    if (r < 0) {
      int e = errno;
      if (ftruncate(p->fd, (off_t)cur) < 0) { /* undo a partial fallocate */ }
      vu_step_set(rep, s_file, VSTOR_STEP_FAILED, strerror(e));
      vstor_host->jrec_end(jr);
      return vstor_err(e == ENOSPC || e == EFBIG ? VSTOR_E_NOSPC : VSTOR_E_IO, e,
                       "%s: growing to %llu bytes: %s; nothing was changed", p->path,
                       (unsigned long long)size, strerror(e));
    }
    /* No fsync here: nothing durable depends on the new size yet.  A loop
     * device turns every flush from above (a guest's commit, the
     * filesystem grow's log write) into an fsync of this file, which makes
     * the size durable before anything written past the old end is. */
    vu_step_set(rep, s_file, VSTOR_STEP_DONE, NULL);
  }
  vstor_fault("file.extend.grown");
  if (size > cur || loops_behind) {
    for (size_t i = 0; i < p->nloops; i++) {
      if (floop_set_capacity(p->loops[i].dev) < 0) {
        int c = vstor_last_code(), e = vstor_last_errno();
        char *m = vu_last_error_body();
        vu_step_set(rep, s_loop + i, VSTOR_STEP_FAILED, m);
        /* nothing above saw the new size yet: roll the file back */
        for (size_t j = 0; j < i; j++) floop_set_capacity(p->loops[j].dev);
        if (size > cur && ftruncate(p->fd, (off_t)cur) == 0) {
          for (size_t j = 0; j < i; j++) floop_set_capacity(p->loops[j].dev);
          vu_step_set(rep, s_file, VSTOR_STEP_UNDONE, "rolled back");
        }
        vstor_host->jrec_end(jr);
        vstor_err(c, e, "%s: refreshing %s failed, the image was rolled back to %llu bytes: %s",
                  p->path, p->loops[i].dev, (unsigned long long)cur, m);
        free(m);
        return -1;
      }
      vu_step_set(rep, s_loop + i, VSTOR_STEP_DONE, NULL);
      if (i == 0) vstor_fault("file.extend.loop-refreshed");
    }
  }
  if (resize_fs) {
    vstor_fault("file.extend.before-fs");
    if (vu_fs_grow(fs, fdev, fmnt) < 0) {
      char *m = vu_last_error_body();
      int e = vstor_last_errno();
      vu_step_set(rep, s_fs, VSTOR_STEP_FAILED, m);
      vstor_host->jrec_end(jr);
      vstor_err(VSTOR_E_PARTIAL, e, "%s: the image%s grown to %llu bytes; only the filesystem "
                "step failed: %s", p->path, p->nloops ? " and its loop device(s) were" : " was",
                (unsigned long long)size, m);
      free(m);
      file_refresh(v);
      return -1;
    }
    vu_step_set(rep, s_fs, VSTOR_STEP_DONE, NULL);
  }
  vstor_host->jrec_end(jr);
  if (resize_fs) return file_refresh(v);
  update_sizes(v);
  return 0;
}

/* ---- snapshot ------------------------------------------------------ */

int file_dest_path(vstor_vol *v, const char *dest, char **path)
{
  const char *d = !strncmp(dest, "file://", 7) ? dest + 7 : !strncmp(dest, "file:", 5) ? dest + 5 : dest;
  if (d[0] != '/')
    return vstor_err(VSTOR_E_INVAL, EINVAL, "%s: destination \"%s\" must be an absolute path",
                     P(v)->path, dest);
  *path = vu_strdup(d);
  return 0;
}

/* A destination inside a filesystem we freeze would block until the thaw. */
int file_dest_refuse_frozen(vstor_vol *v, const char *dpath)
{
  struct fpriv *p = P(v);
  char *dir = vu_strdup(dpath), *d = dirname(dir);
  struct stat st;
  int r = 0;
  if (stat(d, &st) < 0)
    r = vstor_err(errno == ENOENT ? VSTOR_E_NOENT : VSTOR_E_IO, errno, "destination directory %s: %s",
                  d, strerror(errno));
  for (size_t i = 0; !r && i < p->nloops; i++) {
    struct stat ms;
    if (!p->loops[i].mnt || stat(p->loops[i].mnt, &ms) < 0 || st.st_dev != ms.st_dev) continue;
      r = vstor_err(VSTOR_E_INVAL, EINVAL, "destination %s is inside the filesystem on %s (mounted "
                    "at %s), which this operation freezes or copies; choose a place outside it",
                    dpath, p->loops[i].dev, p->loops[i].mnt);
  }
  free(dir);
  return r;
}

static int file_snapshot(vstor_vol *v, const char *dest, const struct vstor_opts *o, unsigned flags,
                         vstor_report *rep)
{
  struct fpriv *p = P(v);
  if (file_refresh(v) < 0) return -1;
  char *dpath;
  if (file_dest_path(v, dest, &dpath) < 0) return -1;
  int rc = -1, dfd = -1;
  struct vstor_jrec *jr = NULL;
  if (file_dest_refuse_frozen(v, dpath) < 0) goto out;
  if (access(dpath, F_OK) == 0 || errno != ENOENT) {
    vstor_err(VSTOR_E_EXIST, EEXIST, "destination %s already exists", dpath);
    goto out;
  }
  /* which filesystems to quiesce: those mounted read-write */
  const char *mnt = NULL;
  size_t nrw = 0;
  for (size_t i = 0; i < p->nloops; i++)
    if (p->loops[i].mnt && !p->loops[i].mnt_ro) { mnt = p->loops[i].mnt; nrw++; }
  if (nrw > 1) {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: mounted read-write through %zu loop devices: cannot quiesce "
              "them together", p->path, nrw);
    goto out;
  }
  bool crash_ok = flags & VSTOR_SNAPSHOT_CRASH_CONSISTENT;
  uint64_t size;
  if (file_size(v, &size) < 0) goto out;
  struct stat sst, dst;
  fstat(p->fd, &sst);
  char *ddir = vu_strdup(dpath);
  bool same_fs = stat(dirname(ddir), &dst) == 0 && dst.st_dev == sst.st_dev;
  free(ddir);
  bool try_reflink = same_fs && !(flags & VSTOR_SNAPSHOT_NO_REFLINK);
  size_t s_freeze = rep->nsteps;
  if (mnt)
    vu_step(rep, "filesystem", "freeze (FIFREEZE, guarded)", VSTOR_STEP_PLANNED, 1,
            "%s, bounded by %u ms", mnt, o->freeze_timeout_ms);
  size_t s_clone = rep->nsteps;
  vu_step(rep, "file", try_reflink ? "clone (FICLONE reflink, else sparse copy)" : "sparse copy",
          VSTOR_STEP_PLANNED, 1, "%s -> %s", p->path, dpath);
  size_t s_thaw = rep->nsteps;
  if (mnt) vu_step(rep, "filesystem", "thaw (FITHAW)", VSTOR_STEP_PLANNED, 0, "%s", mnt);
  if (!try_reflink) {
    uint64_t alloc = 0, fr = 0;
    vu_allocated(p->fd, size, &alloc);
    char *dd = vu_strdup(dpath);
    if (vu_fs_free(dirname(dd), &fr) == 0 && alloc > fr) {
      char *a = vu_human_size(alloc), *b = vu_human_size(fr);
      vstor_err(VSTOR_E_NOSPC, ENOSPC, "destination %s: the copy needs %s, %s free", dpath, a, b);
      free(a); free(b); free(dd);
      goto out;
    }
    free(dd);
  }
  if (flags & VSTOR_DRY_RUN) { rc = 0; goto out; }

  jr = vstor_host->jrec_begin(v, "snapshot");
  if (!jr) goto out;
  vstor_host->jrec_put(jr, "dest", dpath);
  if (mnt) vstor_host->jrec_put(jr, "frozen", mnt);  /* thawing an unfrozen fs is harmless */
  /* recorded before it is created (O_EXCL: it is ours if it exists), so a
   * crash between the two cannot leave it behind */
  if (vstor_host->jrec_set(jr, "dest_created", "1") < 0) goto out;
  dfd = open(dpath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (dfd < 0) {
    int e = errno;
    vstor_err(e == EEXIST ? VSTOR_E_EXIST : e == ENOSPC ? VSTOR_E_NOSPC : VSTOR_E_IO, e,
              "destination %s: %s", dpath, strerror(e));
    goto out;
  }
  vstor_fault("file.snapshot.created");
  struct vu_freeze fz;
  memset(&fz, 0, sizeof fz);
  fz.mnt_fd = fz.qos_fd = -1;
  if (mnt) {
    /* Flush before freezing so the freeze and the clone find little left
     * to write: the frozen window then holds only what arrived since. */
    int mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd >= 0) { syncfs(mfd); close(mfd); }
    fdatasync(p->fd);
    if (vu_freeze(&fz, mnt, o->freeze_timeout_ms, flags & VSTOR_SNAPSHOT_EXPEDITE) < 0) {
      if (!crash_ok) {
        char *m = vu_last_error_body();
        vu_step_set(rep, s_freeze, VSTOR_STEP_FAILED, m);
        vstor_err(VSTOR_E_NOTSUP, vstor_last_errno(), "%s: cannot quiesce %s (%s); ask for a "
                  "crash-consistent snapshot to take it anyway", p->path, mnt, m);
        free(m);
        goto fail;
      }
      vu_step_set(rep, s_freeze, VSTOR_STEP_SKIPPED, "freeze failed: crash-consistent");
      rep->consistency = VSTOR_CONSISTENT_CRASH;
    } else {
      vu_step_set(rep, s_freeze, VSTOR_STEP_DONE, !(flags & VSTOR_SNAPSHOT_EXPEDITE) ? NULL
                  : fz.expedited ? "RCU grace periods expedited for the window"
                  : "not expedited: /sys/kernel/rcu_expedited not writable");
      rep->consistency = VSTOR_CONSISTENT_FS;
    }
  } else rep->consistency = VSTOR_CONSISTENT_IDLE;
  vstor_fault("file.snapshot.frozen");
  uint64_t t0 = vu_now_us();
  const char *method = "sparse-copy";
  if (try_reflink && vu_reflink(p->fd, dfd) == 0) method = "reflink";
  else if (vu_sparse_copy(p->fd, dfd, size, NULL) < 0) {
    char *m = vu_last_error_body();
    int c = vstor_last_code(), e = vstor_last_errno();
    vu_step_set(rep, s_clone, VSTOR_STEP_FAILED, m);
    if (fz.frozen) vu_thaw(&fz);
    vstor_err(c, e, "%s", m);
    free(m);
    goto fail;
  }
  uint64_t t1 = vu_now_us();
  vu_step_set(rep, s_clone, VSTOR_STEP_DONE, NULL);
  vu_report_method(rep, method);
  vstor_fault("file.snapshot.cloned");
  if (fz.mnt_fd >= 0) {
    int tr = vu_thaw(&fz);
    rep->frozen_us = fz.t_end - fz.t_start;
    vu_step_set(rep, s_thaw, tr < 0 ? VSTOR_STEP_FAILED : VSTOR_STEP_DONE, NULL);
    if (tr < 0) goto fail;  /* the window ran out: the copy is not consistent */
  } else rep->frozen_us = 0;
  vstor_fault("file.snapshot.thawed");
  if (fsync(dfd) < 0) {
    vstor_err(VSTOR_E_IO, errno, "destination %s: fsync: %s", dpath, strerror(errno));
    goto fail;
  }
  vstor_log(v->ctx, VSTOR_LOG_INFO, "snapshot %s -> %s by %s in %llu us, frozen %llu us", p->path,
            dpath, method, (unsigned long long)(t1 - t0), (unsigned long long)rep->frozen_us);
  rc = 0;
  vstor_host->jrec_end(jr);
  jr = NULL;
  goto out;
fail:
  unlink(dpath);
  vstor_host->jrec_end(jr);
  jr = NULL;
out:
  if (dfd >= 0) close(dfd);
  if (jr) vstor_host->jrec_end(jr);
  free(dpath);
  return rc;
}

/* ---- recover ------------------------------------------------------- */

static int recover_extend(const struct vstor_jrec *rec, vstor_report *rep)
{
  const char *id = vstor_host->jrec_get(rec, "file_id"), *path = vstor_host->jrec_get(rec, "path");
  unsigned long long dev = 0, ino = 0;
  if (!id || sscanf(id, "%llu:%llu", &dev, &ino) != 2)
    return vstor_err(VSTOR_E_INVAL, EINVAL, "extend record without file_id");
  struct floop *l;
  size_t n;
  floop_scan((dev_t)dev, (ino_t)ino, false, &l, &n);
  for (size_t i = 0; i < n; i++) {
    int r = floop_set_capacity(l[i].dev);
    vu_step(rep, "loop", "refresh capacity", r < 0 ? VSTOR_STEP_FAILED : VSTOR_STEP_DONE, 1,
            "%s of %s (finishing an interrupted extend)", l[i].dev, path ? path : "?");
  }
  if (!n) vu_step(rep, "file", "extend", VSTOR_STEP_DONE, 1, "%s: no loop device to refresh", path);
  floop_free(l, n);
  return 0;
}

static int recover_snapshot(const struct vstor_jrec *rec, vstor_report *rep)
{
  const char *mnt = vstor_host->jrec_get(rec, "frozen"), *dest = vstor_host->jrec_get(rec, "dest");
  int rc = 0;
  if (mnt) {
    rc = vu_thaw_path(mnt);
    vu_step(rep, "filesystem", "thaw", rc < 0 ? VSTOR_STEP_FAILED : VSTOR_STEP_DONE, 0, "%s", mnt);
  }
  if (dest && vstor_host->jrec_get(rec, "dest_created")) {
    bool gone = unlink(dest) < 0 && errno == ENOENT;
    vu_step(rep, "file", "remove half-made snapshot", VSTOR_STEP_DONE, 0, "%s%s", dest,
            gone ? " (already gone)" : "");
  }
  return rc;
}

static int file_recover(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep)
{
  const char *op = vstor_host->jrec_get(rec, "op");
  if (!strcmp(op, "extend")) return recover_extend(rec, rep);
  if (!strcmp(op, "snapshot")) return recover_snapshot(rec, rep);
  if (!strcmp(op, "mirror")) return file_recover_mirror(ctx, rec, rep);
  return vstor_err(VSTOR_E_INVAL, EINVAL, "unknown operation \"%s\" in the journal", op);
}

const struct vstor_backend_ops vstor__file_backend = {
  .abi = VSTOR_BACKEND_ABI,
  .name = "file",
  .open = file_open,
  .close = file_close,
  .refresh = file_refresh,
  .size = file_size,
  .can = file_can,
  .extend = file_extend,
  .snapshot = file_snapshot,
  .mirror_prepare = file_mirror_prepare,
  .job_run = file_job_run,
  .job_pivot = file_job_pivot,
  .job_complete = file_job_complete,
  .job_cancel = file_job_cancel,
  .job_free = file_job_free,
  .recover = file_recover,
};
