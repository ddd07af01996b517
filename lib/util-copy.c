/* libvstor - reflink, sparse copy, resync, verify
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include "util.h"

#define CHUNK (4u << 20)

int vu_reflink(int src_fd, int dst_fd)
{
  return ioctl(dst_fd, FICLONE, src_fd);
}

/* Next data extent at or after off: [*start, *end).  0 found, 1 none. */
static int next_extent(int fd, uint64_t off, uint64_t size, uint64_t *start,
                       uint64_t *end)
{
  if (off >= size) return 1;
  off_t d = lseek(fd, (off_t)off, SEEK_DATA);
  if (d < 0) {
    if (errno == ENXIO) return 1;
    return vstor_err(VSTOR_E_IO, errno, "SEEK_DATA: %s", strerror(errno));
  }
  if ((uint64_t)d >= size) return 1;
  off_t h = lseek(fd, d, SEEK_HOLE);
  if (h < 0) return vstor_err(VSTOR_E_IO, errno, "SEEK_HOLE: %s", strerror(errno));
  *start = (uint64_t)d;
  *end = (uint64_t)h < size ? (uint64_t)h : size;
  return 0;
}

int vu_allocated(int fd, uint64_t size, uint64_t *bytes)
{
  uint64_t off = 0, s, e, sum = 0;
  int r;
  while ((r = next_extent(fd, off, size, &s, &e)) == 0) {
    sum += e - s;
    off = e;
  }
  if (r < 0) return -1;
  *bytes = sum;
  return 0;
}

/* One copy's state: copy_file_range until the kernel says it cannot copy
 * between these files (EXDEV across filesystems, ...), then read/write
 * through one reused buffer. */
struct copier { int src, dst; bool no_cfr; char *buf; };

static int copy_range(struct copier *c, uint64_t off, uint64_t len)
{
  while (len) {
    ssize_t n = -1;
    if (!c->no_cfr) {
      loff_t io = (loff_t)off, oo = (loff_t)off;
      n = copy_file_range(c->src, &io, c->dst, &oo, len, 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
        c->no_cfr = true;
    }
    if (c->no_cfr) {
      if (!c->buf && !(c->buf = malloc(CHUNK)))
        return vstor_err(VSTOR_E_INTERNAL, ENOMEM, "out of memory");
      size_t want = len < CHUNK ? len : CHUNK;
      n = pread(c->src, c->buf, want, (off_t)off);
      if (n > 0 && pwrite(c->dst, c->buf, (size_t)n, (off_t)off) != n) n = -1;
    }
    if (n < 0)
      return vstor_err(errno == ENOSPC ? VSTOR_E_NOSPC : VSTOR_E_IO, errno,
                       "copy at offset %llu: %s", (unsigned long long)off, strerror(errno));
    if (n == 0)
      return vstor_err(VSTOR_E_IO, EIO, "copy at offset %llu: source shrank",
                       (unsigned long long)off);
    off += (uint64_t)n;
    len -= (uint64_t)n;
  }
  return 0;
}

static void throttle(struct vu_copy_ctl *ctl, uint64_t t0, uint64_t done)
{
  uint64_t speed = ctl && ctl->speed ? ctl->speed(ctl->opaque) : 0;
  if (!speed) return;
  uint64_t due = t0 + done * 1000000u / speed, now = vu_now_us();
  while (now < due) {
    uint64_t d = due - now;
    if (d > 100000) d = 100000;  /* stay responsive to cancel */
    struct timespec ts = { 0, (long)d * 1000 };
    nanosleep(&ts, NULL);
    if (ctl->cancelled && ctl->cancelled(ctl->opaque)) return;
    now = vu_now_us();
  }
}

int vu_sparse_copy(int src, int dst, uint64_t size, struct vu_copy_ctl *ctl)
{
  if (ftruncate(dst, (off_t)size) < 0)
    return vstor_err(errno == ENOSPC || errno == EFBIG ? VSTOR_E_NOSPC : VSTOR_E_IO,
                     errno, "cannot size the copy: %s", strerror(errno));
  uint64_t off = 0, s, e, done = 0, t0 = vu_now_us();
  struct copier c = { src, dst, false, NULL };
  posix_fadvise(src, 0, 0, POSIX_FADV_SEQUENTIAL);
  int r;
  while ((r = next_extent(src, off, size, &s, &e)) == 0) {
    for (uint64_t p = s; p < e; ) {
      if (ctl && ctl->cancelled && ctl->cancelled(ctl->opaque)) {
        free(c.buf);
        return vstor_err(VSTOR_E_CANCELLED, ECANCELED, "copy cancelled");
      }
      uint64_t n = e - p < CHUNK ? e - p : CHUNK;
      if (copy_range(&c, p, n) < 0) { free(c.buf); return -1; }
      p += n;
      done += n;
      if (ctl && ctl->progress) ctl->progress(ctl->opaque, done, ctl->total);
      throttle(ctl, t0, done);
    }
    off = e;
  }
  free(c.buf);
  return r < 0 ? -1 : 0;
}

static bool has_data(int fd, uint64_t off, uint64_t end)
{
  off_t d = lseek(fd, (off_t)off, SEEK_DATA);
  return d >= 0 && (uint64_t)d < end;
}

static bool all_zero(const char *b, size_t n)
{
  return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Walk the union of the data of a and b chunk by chunk; fn decides. */
static int walk_pairs(int a, int b, uint64_t size,
                      int (*fn)(void *opq, const char *ba, const char *bb,
                                uint64_t off, size_t n),
                      void *opq)
{
  char *ba = malloc(CHUNK), *bb = malloc(CHUNK);
  int rc = 0;
  if (!ba || !bb) { rc = vstor_err(VSTOR_E_INTERNAL, ENOMEM, "out of memory"); goto out; }
  for (uint64_t off = 0; off < size; ) {
    size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
    if (!has_data(a, off, off + n) && !has_data(b, off, off + n)) {
      off += n;
      continue;
    }
    ssize_t ra = pread(a, ba, n, (off_t)off), rb = pread(b, bb, n, (off_t)off);
    if (ra != (ssize_t)n || rb != (ssize_t)n) {
      rc = vstor_err(VSTOR_E_IO, errno ? errno : EIO, "read at offset %llu: %s",
                     (unsigned long long)off, errno ? strerror(errno) : "short read");
      goto out;
    }
    if (memcmp(ba, bb, n) != 0 && (rc = fn(opq, ba, bb, off, n)) < 0) goto out;
    off += n;
  }
out:
  free(ba);
  free(bb);
  return rc;
}

struct resync_st { int dst; uint64_t changed; };

static int resync_fn(void *opq, const char *ba, const char *bb, uint64_t off, size_t n)
{
  struct resync_st *st = opq;
  (void)bb;
  if (all_zero(ba, n)) {
    if (fallocate(st->dst, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)off, (off_t)n) == 0) {
      st->changed += n;
      return 0;
    }
  }
  if (pwrite(st->dst, ba, n, (off_t)off) != (ssize_t)n)
    return vstor_err(errno == ENOSPC ? VSTOR_E_NOSPC : VSTOR_E_IO, errno,
                     "write at offset %llu: %s", (unsigned long long)off, strerror(errno));
  st->changed += n;
  return 0;
}

int vu_resync(int src, int dst, uint64_t size, uint64_t *changed)
{
  struct resync_st st = { dst, 0 };
  if (ftruncate(dst, (off_t)size) < 0)
    return vstor_err(VSTOR_E_IO, errno, "cannot size the copy: %s", strerror(errno));
  int r = walk_pairs(src, dst, size, resync_fn, &st);
  if (r == 0 && fdatasync(dst) < 0)
    return vstor_err(VSTOR_E_IO, errno, "fdatasync: %s", strerror(errno));
  if (changed) *changed = st.changed;
  return r;
}

static int verify_fn(void *opq, const char *ba, const char *bb, uint64_t off, size_t n)
{
  (void)opq;
  size_t i = 0;
  while (i < n && ba[i] == bb[i]) i++;
  return vstor_err(VSTOR_E_IO, EIO, "verify: the copy differs from the source at "
                   "offset %llu", (unsigned long long)(off + i));
}

int vu_verify(int src, int dst, uint64_t size)
{
  return walk_pairs(src, dst, size, verify_fn, NULL);
}
