/* libvstor file backend - loop devices
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "file.h"

void floop_free(struct floop *l, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(l[i].dev);
    free(l[i].fstype);
    free(l[i].mnt);
  }
  free(l);
}

static bool dir_nonempty(const char *path)
{
  DIR *d = opendir(path);
  if (!d) return false;
  struct dirent *e;
  bool any = false;
  while (!any && (e = readdir(d))) any = e->d_name[0] != '.';
  closedir(d);
  return any;
}

/* Every loop device whose backing file is (dev, ino): matched by the
 * kernel's device and inode numbers, not by the name it remembers.
 * Only bound devices are opened (sysfs has loopN/loop/ for those alone).
 * probe: also find the filesystem on each (libblkid), where it is mounted
 * (libmount) and its holders; without it only the loop facts are read. */
int floop_scan(dev_t dev, ino_t ino, bool probe, struct floop **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  int sfd = open("/sys/block", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sfd < 0) return 0;
  DIR *d = fdopendir(sfd);
  if (!d) { close(sfd); return 0; }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "loop", 4)) continue;
    char bound[300];
    snprintf(bound, sizeof bound, "%s/loop", e->d_name);
    if (faccessat(sfd, bound, F_OK, 0) != 0) continue;   /* not bound to a file */
    char *node = vu_asprintf("/dev/%s", e->d_name);
    int fd = open(node, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct loop_info64 li = { 0 };
    struct stat st;
    if (fd < 0 || ioctl(fd, LOOP_GET_STATUS64, &li) < 0 || fstat(fd, &st) < 0 ||
        li.lo_device != (uint64_t)dev || li.lo_inode != (uint64_t)ino) {
      if (fd >= 0) close(fd);
      free(node);
      continue;
    }
    close(fd);
    *out = realloc(*out, (*n + 1) * sizeof **out);
    if (!*out) abort();
    struct floop *l = &(*out)[(*n)++];
    memset(l, 0, sizeof *l);
    l->dev = node;
    l->rdev = st.st_rdev;
    l->ro = li.lo_flags & LO_FLAGS_READ_ONLY;
    l->offset = li.lo_offset;
    l->sizelimit = li.lo_sizelimit;
    if (!probe) continue;
    l->fstype = vu_fs_type(node);
    l->mnt = vu_mountpoint_of_dev(st.st_rdev, &l->mnt_ro);
    char *h = vu_asprintf("/sys/block/%s/holders", e->d_name);
    l->holders = dir_nonempty(h);
    free(h);
  }
  closedir(d);
  return 0;
}

int floop_set_capacity(const char *dev)
{
  int fd = open(dev, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return vstor_err(VSTOR_E_IO, errno, "%s: %s", dev, strerror(errno));
  int r, tries = 0;
  /* the loop driver answers EAGAIN while it is busy reconfiguring */
  while ((r = ioctl(fd, LOOP_SET_CAPACITY, 0)) < 0 && errno == EAGAIN && tries++ < 100) {
    struct timespec ts = { 0, 20 * 1000000L };
    nanosleep(&ts, NULL);
  }
  int e = errno;
  close(fd);
  if (r < 0) return vstor_err(e == EAGAIN ? VSTOR_E_AGAIN : VSTOR_E_IO, e,
                              "%s: LOOP_SET_CAPACITY: %s", dev, strerror(e));
  return 0;
}

int floop_change_fd(const char *dev, int newfd)
{
  int fd = open(dev, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return vstor_err(VSTOR_E_IO, errno, "%s: %s", dev, strerror(errno));
  int r = ioctl(fd, LOOP_CHANGE_FD, newfd);
  int e = errno;
  close(fd);
  if (r < 0) return vstor_err(VSTOR_E_IO, e, "%s: LOOP_CHANGE_FD: %s", dev, strerror(e));
  return 0;
}

/* Re-point an idle read-write loop device: clear it, then configure the
 * same device number on the copy.  Since Linux 6.x the clear completes on
 * the last close, so the device is reopened between the two steps; an
 * exclusive open keeps mounts out while we hold it. */
int floop_rebind(const char *dev, const char *newpath)
{
  int fd = open(dev, O_RDWR | O_EXCL | O_CLOEXEC);
  if (fd < 0)
    return vstor_err(errno == EBUSY ? VSTOR_E_BUSY : VSTOR_E_IO, errno,
                     "%s: cannot hold it exclusively: %s", dev, strerror(errno));
  struct loop_info64 li = { 0 };
  if (ioctl(fd, LOOP_GET_STATUS64, &li) < 0) {
    int e = errno;
    close(fd);
    return vstor_err(VSTOR_E_IO, e, "%s: LOOP_GET_STATUS64: %s", dev, strerror(e));
  }
  int nf = open(newpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (nf < 0) {
    int e = errno;
    close(fd);
    return vstor_err(VSTOR_E_IO, e, "%s: %s", newpath, strerror(e));
  }
  if (ioctl(fd, LOOP_CLR_FD, 0) < 0) {
    int e = errno;
    close(fd); close(nf);
    return vstor_err(VSTOR_E_IO, e, "%s: LOOP_CLR_FD: %s", dev, strerror(e));
  }
  close(fd);
  close(nf);
  vstor_fault("file.pivot.cleared");
  return floop_bind(dev, newpath, &li, false);
}

/* Bind the (free) loop device dev to path: with the settings of `li`
 * (a device being re-pointed), or fresh with `ro` (recovery). */
int floop_bind(const char *dev, const char *path, const struct loop_info64 *li, bool ro)
{
  int nf = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW);
  if (nf < 0) return vstor_err(VSTOR_E_IO, errno, "%s: %s", path, strerror(errno));
  struct loop_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.fd = (unsigned)nf;
  if (li) cfg.info = *li;
  else if (ro) cfg.info.lo_flags = LO_FLAGS_READ_ONLY;
  cfg.info.lo_flags &= ~LO_FLAGS_AUTOCLEAR;
  memset(cfg.info.lo_file_name, 0, sizeof cfg.info.lo_file_name);
  snprintf((char *)cfg.info.lo_file_name, sizeof cfg.info.lo_file_name, "%s", path);
  int r = -1, e = 0;
  for (int i = 0; i < 50 && r < 0; i++) {
    int fd = open(dev, O_RDWR | O_EXCL | O_CLOEXEC);
    if (fd >= 0) {
      r = ioctl(fd, LOOP_CONFIGURE, &cfg);
      e = errno;
      close(fd);
    } else e = errno;
    if (r < 0 && e != EBUSY) break;
    if (r < 0) { struct timespec ts = { 0, 10 * 1000000L }; nanosleep(&ts, NULL); }
  }
  close(nf);
  if (r < 0)
    return vstor_err(VSTOR_E_IO, e, "%s: LOOP_CONFIGURE on %s: %s (the device is unbound; "
                     "`vstor recover` binds it to the copy)", dev, path, strerror(e));
  return 0;
}

/* Is dev bound? 1 bound (and *dev_ino of its file), 0 free, -1 error. */
int floop_status(const char *dev, uint64_t *fdev, uint64_t *fino)
{
  int fd = open(dev, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return vstor_err(VSTOR_E_IO, errno, "%s: %s", dev, strerror(errno));
  struct loop_info64 li = { 0 };
  int r = ioctl(fd, LOOP_GET_STATUS64, &li), e = errno;
  close(fd);
  if (r < 0) return e == ENXIO ? 0 : vstor_err(VSTOR_E_IO, e, "%s: %s", dev, strerror(e));
  *fdev = li.lo_device;
  *fino = li.lo_inode;
  return 1;
}

bool proc_has_cap(int cap)
{
  FILE *f = fopen("/proc/self/status", "re");
  if (!f) return false;
  char line[256];
  unsigned long long eff = 0;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "CapEff:", 7)) eff = strtoull(line + 7, NULL, 16);
  fclose(f);
  return (eff >> cap) & 1;
}

int floop_pivot_check(const struct floop *l, char **why)
{
  const char *w = NULL;
  char *buf = NULL;
  if (l->holders)
    w = buf = vu_asprintf("%s has a device stacked on it (see /sys/block/%s/holders)", l->dev,
                          l->dev + 5);
  else if (l->mnt)
    /* LOOP_CHANGE_FD needs a read-only device, and since Linux 6.x it also
     * signals a media change: a filesystem mounted on it shuts down. */
    w = buf = vu_asprintf("%s is mounted %s at %s: the kernel cannot re-point a loop device under a "
                          "mounted filesystem (it re-points only idle devices, or read-only ones "
                          "with LOOP_CHANGE_FD, which a mounted filesystem sees as a media change); "
                          "unmount it first, or put the disk behind a layer that intercepts writes "
                          "(libvirt/QEMU, device-mapper)", l->dev, l->mnt_ro ? "read-only" : "read-write",
                          l->mnt);
  else if (l->offset || l->sizelimit)
    w = buf = vu_asprintf("%s maps part of the image (offset/sizelimit)", l->dev);
  if (w && why) *why = buf; else free(buf);
  return w ? 0 : 1;
}
