/* libvstor - per-volume locks
 *
 * One lock file per volume id under $state/locks, locked with an OFD lock
 * (fcntl F_OFD_SETLK): it conflicts between processes and between two
 * opens in one process, so two threads racing on a volume are refused
 * the same way as two processes.  The kernel drops it when the owner
 * dies, so a stale lock is only a leftover file (reaped by recover).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

struct vstor_lock { int fd; char *path; };

static uint64_t fnv1a(const char *s)
{
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
  return h;
}

static int try_lock(int fd)
{
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
  return fcntl(fd, F_OFD_SETLK, &fl);
}

int vstor__lock(vstor_ctx *ctx, const char *id, struct vstor_lock **out)
{
  char *dir;
  if (vstor__state_subdir(ctx, "locks", &dir) < 0) return -1;
  char *path = vu_asprintf("%s/%016llx.lock", dir, (unsigned long long)fnv1a(id));
  free(dir);
  for (int tries = 0; tries < 10; tries++) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      int e = errno;
      vstor__error(VSTOR_E_IO, e, "lock %s: %s", path, strerror(e));
      free(path);
      return -1;
    }
    if (try_lock(fd) < 0) {
      int e = errno;
      char owner[256] = "";
      ssize_t n = pread(fd, owner, sizeof owner - 1, 0);
      if (n > 0) { owner[n] = 0; owner[strcspn(owner, "\n")] = 0; }
      close(fd);
      if (e == EAGAIN || e == EACCES)
        vstor__error(VSTOR_E_BUSY, EBUSY, "%s: volume is busy (locked by %s)", id,
                     *owner ? owner : "another operation");
      else
        vstor__error(VSTOR_E_IO, e, "lock %s: %s", path, strerror(e));
      free(path);
      return -1;
    }
    /* the file may have been unlinked by its last owner meanwhile */
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
      char owner[256];
      int n = snprintf(owner, sizeof owner, "pid %d\n%s\n", (int)getpid(), id);
      if (ftruncate(fd, 0) == 0) (void)!pwrite(fd, owner, (size_t)n, 0);
      struct vstor_lock *l = vu_calloc(1, sizeof *l);
      l->fd = fd;
      l->path = path;
      *out = l;
      return 0;
    }
    close(fd);
  }
  free(path);
  return vstor__error(VSTOR_E_AGAIN, EAGAIN, "%s: lock file keeps changing", id);
}

void vstor__unlock(struct vstor_lock *l)
{
  if (!l) return;
  unlink(l->path);  /* while still holding it: see the inode check above */
  close(l->fd);
  free(l->path);
  free(l);
}

/* Remove lock files no live process holds. */
int vstor__lock_reap(vstor_ctx *ctx, vstor_report *rep)
{
  char *dir;
  if (vstor__state_subdir(ctx, "locks", &dir) < 0) return -1;
  DIR *d = opendir(dir);
  if (!d) { free(dir); return 0; }
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n < 6 || strcmp(e->d_name + n - 5, ".lock")) continue;
    char *p = vu_asprintf("%s/%s", dir, e->d_name);
    int fd = open(p, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    vstor__fault("lock.reap.opened");
    struct stat a, b;
    /* Unlink only the file we hold: between our open and our lock its
     * owner may have unlinked it and another operation created and locked
     * a new one under the same name.  Removing that one would let a third
     * operation take the same volume at the same time. */
    if (fd >= 0 && try_lock(fd) == 0 && fstat(fd, &a) == 0 && stat(p, &b) == 0 &&
        a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
      char owner[256] = "";
      ssize_t r = pread(fd, owner, sizeof owner - 1, 0);
      if (r > 0) { owner[r] = 0; for (char *c = owner; *c; c++) if (*c == '\n') *c = ' '; }
      unlink(p);
      vu_step(rep, "state", "drop stale lock", VSTOR_STEP_DONE, 0, "%s (%s)", e->d_name, owner);
    }
    if (fd >= 0) close(fd);
    free(p);
  }
  closedir(d);
  free(dir);
  return 0;
}
