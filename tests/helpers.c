/* libvstor tests - fixtures (see helpers.h)
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "helpers.h"

static char *mounts[64], *loops[128];
static int nmounts, nloops;
static pid_t writers[32];
static int nwriters;
static char scratch_dir[256];
static pid_t owner;

__attribute__((format(printf, 1, 0)))
static char *vfmt(const char *fmt, va_list ap)
{
  char *s;
  if (vasprintf(&s, fmt, ap) < 0) abort();
  return s;
}

int sh(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *cmd = vfmt(fmt, ap);
  va_end(ap);
  int st = system(cmd);
  free(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

char *sh_out(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *cmd = vfmt(fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  free(cmd);
  char buf[4096] = "";
  if (p) {
    if (!fgets(buf, sizeof buf, p)) buf[0] = 0;
    pclose(p);
  }
  buf[strcspn(buf, "\n")] = 0;
  return strdup(buf);
}

void track_loop(const char *dev) { if (nloops < 128) loops[nloops++] = strdup(dev); }
void track_mount(const char *mnt) { if (nmounts < 64) mounts[nmounts++] = strdup(mnt); }

void do_umount(const char *mnt)
{
  for (int i = 0; i < nmounts; i++)
    if (mounts[i] && !strcmp(mounts[i], mnt)) { free(mounts[i]); mounts[i] = NULL; }
  for (int t = 0; t < 50 && sh("umount '%s' 2>/dev/null", mnt) != 0; t++) usleep(100000);
}

static void cleanup(void)
{
  if (getpid() != owner) return;
  for (int i = 0; i < nwriters; i++)
    if (writers[i] > 0) { kill(writers[i], SIGKILL); waitpid(writers[i], NULL, 0); }
  nwriters = 0;
  for (int i = nmounts - 1; i >= 0; i--)
    if (mounts[i]) {
      sh("fsfreeze -u '%s' 2>/dev/null; umount -l '%s' 2>/dev/null", mounts[i], mounts[i]);
      free(mounts[i]);
      mounts[i] = NULL;
    }
  for (int i = nloops - 1; i >= 0; i--) {
    sh("losetup -d '%s' 2>/dev/null", loops[i]);
    free(loops[i]);
  }
  nloops = 0;
  /* loops the library re-pointed onto copies under the scratch dir */
  if (scratch_dir[0]) {
    sh("losetup -l -n -O NAME,BACK-FILE 2>/dev/null | awk '$2 ~ \"^%s\" {print $1}' | xargs -r -n1 losetup -d 2>/dev/null",
       scratch_dir);
    sh("rm -rf '%s'", scratch_dir);
  }
}

static void on_signal(int sig)
{
  cleanup();
  signal(sig, SIG_DFL);
  raise(sig);
}

const char *scratch(void)
{
  if (!scratch_dir[0]) {
    owner = getpid();
    snprintf(scratch_dir, sizeof scratch_dir, "/var/tmp/vstor-test.XXXXXX");
    if (!mkdtemp(scratch_dir)) { perror("mkdtemp"); abort(); }
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
  }
  return scratch_dir;
}

static int seq;

char *mkpool(const char *fstype, unsigned mib)
{
  char *mnt;
  if (asprintf(&mnt, "%s/pool%d-%s", scratch(), ++seq, fstype) < 0) abort();
  mkdir(mnt, 0755);
  if (!strcmp(fstype, "tmpfs")) {
    if (sh("mount -t tmpfs -o size=%um tmpfs '%s'", mib, mnt)) abort();
    track_mount(mnt);
    return mnt;
  }
  char *loop = NULL;
  char name[64];
  snprintf(name, sizeof name, "pool%d.img", seq);
  free(mkimage(scratch(), name, mib, fstype, true, &loop, false, NULL));
  const char *opts = !strcmp(fstype, "xfs") ? "-o nouuid" : "";
  if (sh("mount %s '%s' '%s'", opts, loop, mnt)) { fprintf(stderr, "mount %s failed\n", loop); abort(); }
  track_mount(mnt);
  free(loop);
  return mnt;
}

char *mkimage(const char *dir, const char *name, unsigned mib, const char *fstype, bool attach,
              char **loop, bool mount, char **mnt)
{
  char *img;
  if (asprintf(&img, "%s/%s", dir, name) < 0) abort();
  if (sh("truncate -s %uM '%s'", mib, img)) abort();
  if (fstype) {
    int r = !strcmp(fstype, "xfs") ? sh("mkfs.xfs -q -f '%s'", img)
          : !strcmp(fstype, "btrfs") ? sh("mkfs.btrfs -q -f '%s' >/dev/null", img)
          : sh("mkfs.%s -q -F '%s' >/dev/null 2>&1", fstype, img);
    if (r) { fprintf(stderr, "mkfs.%s %s failed\n", fstype, img); abort(); }
  }
  if (attach) {
    char *l = sh_out("losetup -f --show '%s'", img);
    if (!*l) { fprintf(stderr, "losetup %s failed\n", img); abort(); }
    track_loop(l);
    if (mount) {
      char *m;
      if (asprintf(&m, "%s.mnt", img) < 0) abort();
      mkdir(m, 0755);
      if (sh("mount %s '%s' '%s'", !strcmp(fstype, "xfs") ? "-o nouuid" : "", l, m)) abort();
      track_mount(m);
      *mnt = m;
    }
    if (loop) *loop = l; else free(l);
  }
  return img;
}

char *sha256(const char *path) { return sh_out("sha256sum '%s' | cut -d' ' -f1", path); }

uint64_t blkdev_size(const char *dev)
{
  int fd = open(dev, O_RDONLY);
  uint64_t s = 0;
  if (fd >= 0) { ioctl(fd, BLKGETSIZE64, &s); close(fd); }
  return s;
}

uint64_t file_size(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

bool fs_writable(const char *mnt, int timeout_ms)
{
  return sh("timeout %d.%03d sh -c 'echo x > \"%s/.probe\" && sync -f \"%s/.probe\"'",
            timeout_ms / 1000, timeout_ms % 1000, mnt, mnt) == 0;
}

vstor_ctx *test_ctx(void)
{
  vstor_ctx *c = vstor_ctx_new(0);
  char *sd;
  if (asprintf(&sd, "%s/state", scratch()) < 0) abort();
  vstor_ctx_set_state_dir(c, sd);
  free(sd);
  return c;
}

int loops_of(const char *path)
{
  char *n = sh_out("losetup -j '%s' | wc -l", path);
  int r = atoi(n);
  free(n);
  return r;
}

char *loop_backing(const char *dev)
{
  return sh_out("cat /sys/block/%s/loop/backing_file 2>/dev/null", dev + 5);
}

int start_writer(const char *mnt, const char *name)
{
  pid_t p = fork();
  if (p == 0) {
    /* never hold the test runner's output open */
    int dn = open("/dev/null", O_RDWR);
    dup2(dn, 1);
    dup2(dn, 2);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", mnt, name);
    char buf[4096];
    memset(buf, 'w', sizeof buf);
    for (;;) {
      int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        for (int i = 0; i < 16; i++) (void)!write(fd, buf, sizeof buf);
        close(fd);
      }
      usleep(2000);
      struct stat st;
      if (stat(path, &st) == 0 && st.st_size > (64 << 20)) (void)!truncate(path, 0);
      if (getppid() == 1) _exit(0);  /* orphaned: the test died */
    }
  }
  if (nwriters < 32) writers[nwriters++] = p;
  return p;
}

void stop_writer(int pid)
{
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  for (int i = 0; i < nwriters; i++)
    if (writers[i] == pid) writers[i] = 0;
}
