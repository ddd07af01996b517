/* libvstor - block devices, filesystems, mounts, freeze with a guard
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <libmount.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

char *vu_fs_type(const char *path)
{
  blkid_probe pr = blkid_new_probe_from_filename(path);
  if (!pr) return NULL;
  blkid_probe_enable_superblocks(pr, 1);
  blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
  char *type = NULL;
  const char *v = NULL;
  if (blkid_do_safeprobe(pr) == 0 &&
      blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0)
    type = vu_strdup(v);
  blkid_free_probe(pr);
  return type;
}

char *vu_mountpoint_of_dev(dev_t dev, bool *ro)
{
  struct libmnt_table *tb = mnt_new_table_from_file("/proc/self/mountinfo");
  if (!tb) return NULL;
  struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
  struct libmnt_fs *fs;
  char *mp = NULL;
  while (mnt_table_next_fs(tb, it, &fs) == 0) {
    if (mnt_fs_get_devno(fs) != dev) {
      /* btrfs (and others) report an anonymous device number: match the
       * block device named as the source instead */
      const char *src = mnt_fs_get_srcpath(fs);
      struct stat st;
      if (!src || strncmp(src, "/dev/", 5) || stat(src, &st) < 0 || !S_ISBLK(st.st_mode) ||
          st.st_rdev != dev)
        continue;
    }
    const char *opts = mnt_fs_get_vfs_options(fs);
    mp = vu_strdup(mnt_fs_get_target(fs));
    if (ro) {
      char *val = NULL;
      size_t len = 0;
      *ro = opts && mnt_optstr_get_option(opts, "ro", &val, &len) == 0;
    }
    break;
  }
  mnt_free_iter(it);
  mnt_unref_table(tb);
  return mp;
}

bool vu_fs_can_grow(const char *t, bool mounted, char **why)
{
  const char *w = NULL;
  if (!t) w = "no filesystem found on the volume";
  else if (!strcmp(t, "xfs"))
    w = mounted ? (vu_have_tool("xfs_growfs") ? NULL : "xfs_growfs not installed (xfsprogs)")
                : "XFS grows only while mounted";
  else if (!strcmp(t, "btrfs"))
    w = mounted ? (vu_have_tool("btrfs") ? NULL : "btrfs not installed (btrfs-progs)")
                : "btrfs grows only while mounted";
  else if (!strcmp(t, "ext4") || !strcmp(t, "ext3") || !strcmp(t, "ext2"))
    w = vu_have_tool("resize2fs") ? NULL : "resize2fs not installed (e2fsprogs)";
  else
    w = "growing this filesystem type is not supported";
  if (w && why) *why = t ? vu_asprintf("%s: %s", t, w) : vu_strdup(w);
  return w == NULL;
}

static int run_tool(const char *const argv[])
{
  char *err = NULL;
  int st = vu_run(argv, NULL, &err);
  if (st < 0) { free(err); return -1; }
  if (st != 0) {
    vstor_err(VSTOR_E_BACKEND, 0, "%s %s exited with status %d: %s",
              argv[0], argv[1] ? argv[1] : "", st, err && *err ? err : "(no output)");
    free(err);
    return -1;
  }
  free(err);
  return 0;
}

int vu_fs_grow(const char *t, const char *dev, const char *mnt)
{
  char *why = NULL;
  if (!vu_fs_can_grow(t, mnt != NULL, &why)) {
    int r = vstor_err(VSTOR_E_NOTSUP, 0, "%s", why);
    free(why);
    return r;
  }
  if (!strcmp(t, "xfs")) {
    const char *a[] = { "xfs_growfs", mnt, NULL };
    return run_tool(a);
  }
  if (!strcmp(t, "btrfs")) {
    const char *a[] = { "btrfs", "filesystem", "resize", "max", mnt, NULL };
    return run_tool(a);
  }
  if (!mnt) { /* offline ext*: resize2fs insists on a fresh check */
    const char *c[] = { "e2fsck", "-f", "-p", dev, NULL };
    char *err = NULL;
    int st = vu_run(c, NULL, &err);
    if (st < 0 || st > 1) {
      if (st > 1)
        vstor_err(VSTOR_E_BACKEND, 0, "e2fsck -f -p %s exited with status %d: %s",
                  dev, st, err ? err : "");
      free(err);
      return -1;
    }
    free(err);
  }
  const char *a[] = { "resize2fs", dev, NULL };
  char *err = NULL;
  int st = vu_run(a, NULL, &err);
  if (st == 0) { free(err); return 0; }
  if (st > 0) {
    /* online ext4 grow without CAP_SYS_RESOURCE: the kernel says EPERM */
    bool eperm = err && strstr(err, "Operation not permitted");
    vstor_err(eperm ? VSTOR_E_PERM : VSTOR_E_BACKEND, eperm ? EPERM : 0,
              "resize2fs %s exited with status %d: %s", dev, st,
              err && *err ? err : "(no output)");
  }
  free(err);
  return -1;
}

int vu_fs_free(const char *path, uint64_t *free_bytes)
{
  struct statvfs sv;
  if (statvfs(path, &sv) < 0)
    return vstor_err(VSTOR_E_IO, errno, "statvfs %s: %s", path, strerror(errno));
  *free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
  return 0;
}

int vu_blk_size(const char *dev, uint64_t *size)
{
  int fd = open(dev, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vstor_err(errno == ENOENT ? VSTOR_E_NOENT : VSTOR_E_IO, errno,
                     "%s: %s", dev, strerror(errno));
  int r = ioctl(fd, BLKGETSIZE64, size);
  int e = errno;
  close(fd);
  if (r < 0) return vstor_err(VSTOR_E_IO, e, "%s: BLKGETSIZE64: %s", dev, strerror(e));
  return 0;
}

/* ---- expedited RCU for the freeze window ---------------------------
 * FIFREEZE takes the superblock's three freeze levels; each is a
 * percpu_down_write, which waits for an RCU grace period (on this class of
 * machine 8-16 ms each when the system is idle).  Expedited grace periods
 * take microseconds.  The knob is system-wide, so concurrent users share it:
 * every user holds a shared flock on RCU_HOLD for as long as it needs the
 * knob (the kernel drops it if the holder dies), and changes happen under
 * an exclusive flock on RCU_MUTEX.  The first user sets the knob and
 * writes what it was to RCU_PREV; the last one out restores that and
 * empties RCU_PREV.  A RCU_PREV left by a holder killed outright is used
 * by the next one, so the original value is never lost.  The exit half
 * runs in the guard: async-signal-safe calls only. */
#define RCU_KNOB "/sys/kernel/rcu_expedited"
#define RCU_DIR "/run/libvstor"
#define RCU_MUTEX RCU_DIR "/rcu.lock"
#define RCU_HOLD RCU_DIR "/rcu.hold"
#define RCU_PREV RCU_DIR "/rcu.prev"

static int rcu_knob(int set)  /* set < 0: read it */
{
  int fd = open(RCU_KNOB, (set < 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
  if (fd < 0) return -1;
  char c = set > 0 ? '1' : '0';
  ssize_t n = set < 0 ? read(fd, &c, 1) : write(fd, &c, 1);
  close(fd);
  if (n != 1) return -1;
  return c == '1';
}

/* The value saved in RCU_PREV, or -1 when none is pending. */
static int rcu_prev_get(void)
{
  int fd = open(RCU_PREV, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  char c = 0;
  ssize_t n = read(fd, &c, 1);
  close(fd);
  return n == 1 && (c == '0' || c == '1') ? c - '0' : -1;
}

static void rcu_prev_set(int v)  /* v < 0: none pending */
{
  int fd = open(RCU_PREV, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  char c = (char)('0' + v);
  if (v >= 0) (void)!write(fd, &c, 1);
  close(fd);
}

/* Returns the RCU_HOLD descriptor holding a shared lock (kept by the guard
 * until the thaw), or -1 if the knob could not be set. */
static int rcu_expedite_enter(void)
{
  mkdir(RCU_DIR, 0700);
  int mu = open(RCU_MUTEX, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (mu < 0) return -1;
  int hold = open(RCU_HOLD, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (hold < 0 || flock(mu, LOCK_EX) < 0) {
    if (hold >= 0) close(hold);
    close(mu);
    return -1;
  }
  bool ok = true;
  if (flock(hold, LOCK_EX | LOCK_NB) == 0) {      /* no other user */
    int prev = rcu_prev_get();                    /* left by a killed user? */
    if (prev < 0) prev = rcu_knob(-1);
    ok = prev >= 0 && (prev == 1 || rcu_knob(1) == 1);
    if (ok && prev == 0) rcu_prev_set(0);
  }
  ok = ok && flock(hold, LOCK_SH) == 0;
  flock(mu, LOCK_UN);
  close(mu);
  if (!ok) { close(hold); return -1; }
  return hold;
}

static void rcu_expedite_exit(int hold)
{
  if (hold < 0) return;
  int mu = open(RCU_MUTEX, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (mu < 0 || flock(mu, LOCK_EX) < 0) { if (mu >= 0) close(mu); close(hold); return; }
  flock(hold, LOCK_UN);
  if (flock(hold, LOCK_EX | LOCK_NB) == 0) {      /* the last user */
    if (rcu_prev_get() == 0) rcu_knob(0);
    rcu_prev_set(-1);
    flock(hold, LOCK_UN);
  }
  close(hold);
  flock(mu, LOCK_UN);
  close(mu);
}

/* ---- freeze with a guard process ---------------------------------- */

/* The guard runs between fork() and _exit() in a possibly multi-threaded
 * process: async-signal-safe calls only. */
static void __attribute__((noreturn)) guard_main(int rd, int mnt_fd, int rcu_fd,
                                                 uint32_t timeout_ms)
{
  struct sigaction sa = { .sa_handler = SIG_IGN };
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGPIPE, &sa, NULL);
  setsid(); /* out of the caller's process group: ^C must not kill it */
  /* Keep only the descriptors the guard needs: an inherited lock file or
   * pipe would outlive the caller (the volume lock is an OFD lock on a
   * shared open file description). */
  int keep[3] = { rd, mnt_fd, rcu_fd };
  for (int i = 0; i < 3; i++)
    for (int j = i + 1; j < 3; j++)
      if (keep[j] < keep[i]) { int t = keep[i]; keep[i] = keep[j]; keep[j] = t; }
  unsigned next = 0;
  for (int i = 0; i < 3; i++) {
    if (keep[i] < 0) continue;
    if ((unsigned)keep[i] > next) close_range(next, (unsigned)keep[i] - 1, 0);
    next = (unsigned)keep[i] + 1;
  }
  close_range(next, ~0u, 0);
  (void)!send(rd, "R", 1, MSG_NOSIGNAL);     /* set up: the caller may freeze */
  struct pollfd pf = { rd, POLLIN, 0 };
  int r;
  do r = poll(&pf, 1, (int)timeout_ms); while (r < 0 && errno == EINTR);
  char c = 0;
  if (r > 0 && read(rd, &c, 1) == 1 && c == 'T') {
    rcu_expedite_exit(rcu_fd);
    (void)!send(rd, "O", 1, MSG_NOSIGNAL);   /* the caller thawed: fine */
    _exit(0);
  }
  /* timeout, or the caller died (EOF): thaw, and say so if it is alive.
   * The answer goes over the socket, not the exit status, which tools
   * like valgrind may rewrite. */
  bool thawed = ioctl(mnt_fd, FITHAW, &(int){ 0 }) == 0;
  rcu_expedite_exit(rcu_fd);
  (void)!send(rd, thawed && r == 0 ? "X" : "O", 1, MSG_NOSIGNAL);
  _exit(0);
}

int vu_freeze(struct vu_freeze *fz, const char *mnt, uint32_t timeout_ms, bool expedite)
{
  memset(fz, 0, sizeof *fz);
  fz->mnt_fd = fz->pipe_w = fz->qos_fd = -1;
  fz->mnt_fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fz->mnt_fd < 0)
    return vstor_err(VSTOR_E_IO, errno, "%s: %s", mnt, strerror(errno));
  int p[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
    close(fz->mnt_fd);
    return vstor_err(VSTOR_E_INTERNAL, errno, "pipe: %s", strerror(errno));
  }
  int rcu_fd = expedite ? rcu_expedite_enter() : -1;
  fz->expedited = rcu_fd >= 0;
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    rcu_expedite_exit(rcu_fd);
    close(p[0]); close(p[1]); close(fz->mnt_fd);
    return vstor_err(VSTOR_E_AGAIN, e, "cannot start the thaw guard: %s", strerror(e));
  }
  if (pid == 0) {
    close(p[1]);
    guard_main(p[0], fz->mnt_fd, rcu_fd, timeout_ms);
  }
  if (rcu_fd >= 0) close(rcu_fd);   /* the guard's copy holds the lock */
  close(p[0]);
  fz->pipe_w = p[1];
  fz->guard = pid;
  /* Freeze once the guard is in place and idle: its start-up would
   * otherwise compete with the freeze for this machine's CPUs. */
  char ready = 0;
  ssize_t rn;
  do rn = recv(fz->pipe_w, &ready, 1, 0); while (rn < 0 && errno == EINTR);
  if (rn != 1 || ready != 'R') {
    close(fz->pipe_w);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) ;
    close(fz->mnt_fd);
    fz->mnt_fd = fz->pipe_w = -1;
    return vstor_err(VSTOR_E_INTERNAL, EPIPE, "the thaw guard did not start");
  }
  if (fz->expedited) {
    /* Released when closed, also by the kernel if this process dies. */
    fz->qos_fd = open("/dev/cpu_dma_latency", O_WRONLY | O_CLOEXEC);
    int32_t zero = 0;
    if (fz->qos_fd >= 0 && write(fz->qos_fd, &zero, sizeof zero) != (ssize_t)sizeof zero) {
      close(fz->qos_fd);
      fz->qos_fd = -1;
    }
  }
  fz->t_start = vu_now_us();
  if (ioctl(fz->mnt_fd, FIFREEZE, &(int){ 0 }) < 0) {
    int e = errno;
    if (fz->qos_fd >= 0) close(fz->qos_fd);
    fz->qos_fd = -1;
    (void)!send(fz->pipe_w, "T", 1, MSG_NOSIGNAL);
    char ans;
    while (recv(fz->pipe_w, &ans, 1, 0) < 0 && errno == EINTR) ;
    close(fz->pipe_w);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) ;
    close(fz->mnt_fd);
    fz->mnt_fd = fz->pipe_w = -1;
    return vstor_err(e == EOPNOTSUPP ? VSTOR_E_NOTSUP : e == EBUSY ? VSTOR_E_BUSY : VSTOR_E_PERM,
                     e, "FIFREEZE %s: %s", mnt, strerror(e));
  }
  fz->frozen = true;
  return 0;
}

int vu_thaw(struct vu_freeze *fz)
{
  if (fz->mnt_fd < 0) return 0;
  int r = ioctl(fz->mnt_fd, FITHAW, &(int){ 0 });
  int e = errno;
  fz->t_end = vu_now_us();
  if (fz->qos_fd >= 0) close(fz->qos_fd);
  fz->qos_fd = -1;
  fz->frozen = false;
  (void)!send(fz->pipe_w, "T", 1, MSG_NOSIGNAL);
  char ans = 0;
  ssize_t n;
  do n = recv(fz->pipe_w, &ans, 1, 0); while (n < 0 && errno == EINTR);
  close(fz->pipe_w);
  while (waitpid(fz->guard, NULL, 0) < 0 && errno == EINTR) ;
  close(fz->mnt_fd);
  fz->mnt_fd = fz->pipe_w = -1;
  if (ans == 'X')
    return vstor_err(VSTOR_E_TIMEOUT, ETIMEDOUT,
                     "the freeze window ran out: the guard thawed the filesystem");
  if (r < 0 && e != EINVAL)
    return vstor_err(VSTOR_E_IO, e, "FITHAW: %s", strerror(e));
  return 0;
}

int vu_thaw_path(const char *mnt)
{
  int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    return vstor_err(VSTOR_E_IO, errno, "%s: %s", mnt, strerror(errno));
  }
  int r = ioctl(fd, FITHAW, &(int){ 0 });
  int e = errno;
  close(fd);
  if (r < 0 && e != EINVAL)
    return vstor_err(VSTOR_E_IO, e, "FITHAW %s: %s", mnt, strerror(e));
  return 0;
}
