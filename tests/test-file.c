/* libvstor file backend on real loop devices and real filesystems.
 * Needs root, loop devices, mkfs.xfs, mkfs.btrfs, mkfs.ext4.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "helpers.h"

#define MiB (1024ull * 1024)
static char *xpool, *bpool;  /* host filesystems: XFS and btrfs (reflink-capable) */

static uint64_t fs_total(const char *mnt)
{
  struct statvfs sv;
  assert_int_equal(statvfs(mnt, &sv), 0);
  return (uint64_t)sv.f_blocks * sv.f_frsize;
}

static int xfs_check_after_replay(const char *img)
{
  char *m;
  if (asprintf(&m, "%s.replay", img) < 0) abort();
  mkdir(m, 0755);
  int r = sh("l=$(losetup -f --show '%s') && mount -o nouuid $l '%s' && umount '%s'; "
             "losetup -d $l; xfs_repair -n -f '%s' >/dev/null 2>&1", img, m, m, img);
  rmdir(m);
  free(m);
  return r;
}

static vstor_vol *open_ok(vstor_ctx *c, const char *uri)
{
  vstor_vol *v = NULL;
  int r = vstor_open(c, uri, 0, &v);
  if (r < 0) fail_msg("open %s: %s", uri, vstor_last_error());
  return v;
}

static int setup(void **st)
{
  (void)st;
  xpool = mkpool("xfs", 2048);
  bpool = mkpool("btrfs", 2048);
  return 0;
}

/* --- open / info --------------------------------------------------- */

static void t_open_layers(void **st)
{
  (void)st;
  char *loop, *mnt;
  char *img = mkimage(xpool, "layers.img", 320, "xfs", true, &loop, true, &mnt);
  vstor_ctx *c = test_ctx();
  /* by image path, by file: URI and by the loop device: one volume id */
  vstor_vol *a = open_ok(c, img);
  char *u;
  assert_true(asprintf(&u, "file:%s", img) > 0);
  vstor_vol *b = open_ok(c, u);
  char *lu;
  assert_true(asprintf(&lu, "loop:%s", loop) > 0);
  vstor_vol *l = open_ok(c, lu);
  assert_string_equal(vstor_vol_id(a), vstor_vol_id(b));
  assert_string_equal(vstor_vol_id(a), vstor_vol_id(l));
  assert_int_equal(vstor_vol_layer_count(a), 3);
  assert_string_equal(vstor_layer_role(vstor_vol_layer(a, 0)), "storage");
  assert_string_equal(vstor_layer_path(vstor_vol_layer(a, 0)), img);
  assert_string_equal(vstor_layer_type(vstor_vol_layer(a, 1)), "loop");
  assert_string_equal(vstor_layer_path(vstor_vol_layer(a, 1)), loop);
  assert_string_equal(vstor_layer_type(vstor_vol_layer(a, 2)), "xfs");
  assert_string_equal(vstor_layer_prop(vstor_vol_layer(a, 2), "mountpoint"), mnt);
  assert_string_equal(vstor_layer_prop(vstor_vol_layer(a, 2), "mounted"), "read-write");
  uint64_t sz;
  assert_int_equal(vstor_vol_size(a, &sz), 0);
  assert_int_equal(sz, 320 * MiB);
  vstor_close(a); vstor_close(b); vstor_close(l);
  vstor_ctx_free(c);
  do_umount(mnt);
  free(u); free(lu); free(img); free(loop); free(mnt);
}

/* A loop attached through a different path (a bind mount of the pool)
 * is still found: matching is by device and inode, not by name. */
static void t_loop_by_inode(void **st)
{
  (void)st;
  char *img = mkimage(xpool, "inode.img", 64, NULL, false, NULL, false, NULL);
  char *bind;
  assert_true(asprintf(&bind, "%s/bind", scratch()) > 0);
  mkdir(bind, 0755);
  assert_int_equal(sh("mount --bind '%s' '%s'", xpool, bind), 0);
  track_mount(bind);
  char *l = sh_out("losetup -f --show '%s/inode.img'", bind);
  track_loop(l);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  assert_int_equal(vstor_vol_layer_count(v), 2);
  assert_string_equal(vstor_layer_path(vstor_vol_layer(v, 1)), l);
  vstor_close(v);
  vstor_ctx_free(c);
  sh("losetup -d %s", l);
  do_umount(bind);
  free(img); free(bind); free(l);
}

/* --- extend -------------------------------------------------------- */

static void extend_fs(const char *fstype, bool expect_fs_grow)
{
  char *loop, *mnt, name[64];
  snprintf(name, sizeof name, "ext-%s.img", fstype);
  char *img = mkimage(xpool, name, 320, fstype, true, &loop, true, &mnt);
  assert_int_equal(sh("dd if=/dev/urandom of='%s/data' bs=1M count=8 status=none && sync", mnt), 0);
  char dpath[512];
  snprintf(dpath, sizeof dpath, "%s/data", mnt);
  char *sum = sha256(dpath);
  uint64_t before = fs_total(mnt);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  vstor_report *rep = NULL;
  int r = vstor_extend(v, 512 * MiB, NULL, VSTOR_EXTEND_RESIZE_FS, &rep);
  assert_int_equal(file_size(img), 512 * MiB);
  assert_int_equal(blkdev_size(loop), 512 * MiB);
  if (expect_fs_grow) {
    if (r < 0) fail_msg("extend %s: %s", fstype, vstor_last_error());
    assert_true(fs_total(mnt) > before + 150 * MiB);
  } else {
    /* this kernel refuses online ext4 grow without CAP_SYS_RESOURCE:
     * the error must say image and loop were grown and only the fs failed */
    assert_int_equal(r, -1);
    assert_int_equal(vstor_last_code(), VSTOR_E_PARTIAL);
    assert_non_null(strstr(vstor_last_error(), "only the filesystem step failed"));
    assert_non_null(rep);
    assert_int_equal(vstor_report_step_status(rep, 0), VSTOR_STEP_DONE);
    assert_int_equal(vstor_report_step_status(rep, 1), VSTOR_STEP_DONE);
    assert_int_equal(vstor_report_step_status(rep, 2), VSTOR_STEP_FAILED);
    assert_int_equal(fs_total(mnt), before);
  }
  char *sum2 = sha256(dpath);
  assert_string_equal(sum, sum2);
  vstor_report_free(rep);
  vstor_close(v);
  vstor_ctx_free(c);
  do_umount(mnt);
  free(sum); free(sum2); free(img); free(loop); free(mnt);
}

static void t_extend_xfs_online(void **st) { (void)st; extend_fs("xfs", true); }
static void t_extend_btrfs_online(void **st) { (void)st; extend_fs("btrfs", true); }
static void t_extend_ext4_online(void **st)
{
  (void)st;
  /* with CAP_SYS_RESOURCE the online grow works; without, PARTIAL */
  char *caps = sh_out("awk '/CapEff/{print $2}' /proc/self/status");
  bool has = (strtoull(caps, NULL, 16) >> 24) & 1;
  free(caps);
  extend_fs("ext4", has);
}

static void t_extend_ext4_offline(void **st)
{
  (void)st;
  char *loop;
  char *img = mkimage(xpool, "ext4-off.img", 128, "ext4", true, &loop, false, NULL);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  assert_int_equal(vstor_vol_can(v, VSTOR_OP_RESIZE_FS, 0, NULL), 1);
  if (vstor_extend(v, 256 * MiB, NULL, VSTOR_EXTEND_RESIZE_FS, NULL) < 0)
    fail_msg("%s", vstor_last_error());
  assert_int_equal(blkdev_size(loop), 256 * MiB);
  char *bc = sh_out("dumpe2fs -h %s 2>/dev/null | awk -F: '/^Block count/{print $2*1}'", loop);
  char *bs = sh_out("dumpe2fs -h %s 2>/dev/null | awk -F: '/^Block size/{print $2*1}'", loop);
  assert_int_equal(strtoull(bc, NULL, 10) * strtoull(bs, NULL, 10), 256 * MiB);
  assert_int_equal(sh("e2fsck -fn %s >/dev/null 2>&1", loop), 0);
  vstor_close(v);
  vstor_ctx_free(c);
  free(bc); free(bs); free(img); free(loop);
}

static void t_extend_no_fs_grow_and_idempotent(void **st)
{
  (void)st;
  char *loop, *mnt;
  char *img = mkimage(xpool, "plain.img", 320, "xfs", true, &loop, true, &mnt);
  uint64_t before = fs_total(mnt);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  uint64_t size;
  assert_int_equal(vstor_parse_size("+100M", 320 * MiB, &size), 0);
  assert_int_equal(vstor_extend(v, size, NULL, 0, NULL), 0);
  assert_int_equal(blkdev_size(loop), 420 * MiB);
  assert_int_equal(fs_total(mnt), before);  /* filesystem not asked to grow */
  struct stat a, b;
  stat(img, &a);
  sleep(1);
  vstor_report *rep = NULL;
  assert_int_equal(vstor_extend(v, size, NULL, 0, &rep), 0);  /* same size: nothing */
  stat(img, &b);
  assert_int_equal(a.st_mtime, b.st_mtime);
  assert_int_equal(vstor_report_step_status(rep, 0), VSTOR_STEP_SKIPPED);
  vstor_report_free(rep);
  vstor_close(v);
  vstor_ctx_free(c);
  do_umount(mnt);
  free(img); free(loop); free(mnt);
}

/* Extend re-reads the loops bound to the image: a loop attached after the
 * handle was opened is refreshed too, and the layers show the new sizes. */
static void t_extend_loop_attached_after_open(void **st)
{
  (void)st;
  char *loop;
  char *img = mkimage(xpool, "late.img", 64, NULL, true, &loop, false, NULL);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  assert_int_equal(vstor_vol_layer_count(v), 2);          /* file, loop */
  char *late = sh_out("losetup -f --show '%s'", img);      /* bound after open */
  assert_true(*late);
  track_loop(late);
  assert_int_equal(vstor_extend(v, 96 * MiB, NULL, 0, NULL), 0);
  assert_int_equal(blkdev_size(loop), 96 * MiB);
  assert_int_equal(blkdev_size(late), 96 * MiB);
  assert_int_equal(vstor_vol_layer_count(v), 3);          /* file, both loops */
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(vstor_layer_size(vstor_vol_layer(v, i)), 96 * MiB);
  /* again, nothing attached meanwhile: sizes updated in place */
  assert_int_equal(vstor_extend(v, 128 * MiB, NULL, 0, NULL), 0);
  assert_int_equal(blkdev_size(late), 128 * MiB);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(vstor_layer_size(vstor_vol_layer(v, i)), 128 * MiB);
  vstor_close(v);
  vstor_ctx_free(c);
  free(img); free(loop); free(late);
}

static void t_extend_prealloc(void **st)
{
  (void)st;
  char *img = mkimage(xpool, "prealloc.img", 16, NULL, false, NULL, false, NULL);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  assert_int_equal(vstor_extend(v, 80 * MiB, NULL, VSTOR_EXTEND_PREALLOC, NULL), 0);
  struct stat s;
  stat(img, &s);
  assert_int_equal(s.st_size, 80 * MiB);
  assert_true((uint64_t)s.st_blocks * 512 >= 64 * MiB);  /* the new 64 MiB are allocated */
  vstor_close(v);
  vstor_ctx_free(c);
  free(img);
}

static void t_extend_refusals(void **st)
{
  (void)st;
  char *loop;
  char *img = mkimage(xpool, "refuse.img", 64, NULL, true, &loop, false, NULL);
  char *sum = sha256(img);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  /* shrink */
  assert_int_equal(vstor_extend(v, 32 * MiB, NULL, 0, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  assert_non_null(strstr(vstor_last_error(), "shrinking"));
  /* not a sector multiple */
  assert_int_equal(vstor_extend(v, 64 * MiB + 1, NULL, 0, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  /* unknown flag */
  assert_int_equal(vstor_extend(v, 128 * MiB, NULL, 1u << 20, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  /* resize-fs with no filesystem */
  assert_int_equal(vstor_extend(v, 128 * MiB, NULL, VSTOR_EXTEND_RESIZE_FS, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_NOTSUP);
  /* dry run changes nothing */
  vstor_report *plan = NULL;
  assert_int_equal(vstor_extend(v, 128 * MiB, NULL, VSTOR_DRY_RUN, &plan), 0);
  assert_int_equal(vstor_report_step_count(plan), 2);
  assert_int_equal(vstor_report_step_status(plan, 0), VSTOR_STEP_PLANNED);
  vstor_report_free(plan);
  assert_int_equal(file_size(img), 64 * MiB);
  assert_int_equal(blkdev_size(loop), 64 * MiB);
  char *sum2 = sha256(img);
  assert_string_equal(sum, sum2);
  vstor_close(v);
  vstor_ctx_free(c);
  free(sum); free(sum2); free(img); free(loop);
}

static void t_extend_nospc(void **st)
{
  (void)st;
  char *small = mkpool("tmpfs", 48);
  char *loop;
  char *img = mkimage(small, "nospc.img", 16, NULL, true, &loop, false, NULL);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  for (int pre = 0; pre < 2; pre++) {
    assert_int_equal(vstor_extend(v, 1024 * MiB, NULL, pre ? VSTOR_EXTEND_PREALLOC : 0, NULL), -1);
    assert_int_equal(vstor_last_code(), VSTOR_E_NOSPC);
    assert_non_null(strstr(vstor_last_error(), "nothing was changed"));
    assert_int_equal(file_size(img), 16 * MiB);
    assert_int_equal(blkdev_size(loop), 16 * MiB);
  }
  vstor_close(v);
  vstor_ctx_free(c);
  free(img); free(loop); free(small);
}

static void t_busy(void **st)
{
  (void)st;
  char *img = mkimage(xpool, "busy.img", 16, NULL, false, NULL, false, NULL);
  vstor_ctx *c = test_ctx();
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  pid_t p = fork();
  if (p == 0) {  /* another process holds the volume */
    vstor_ctx *cc = test_ctx();
    vstor_vol *vv;
    if (vstor_open(cc, img, VSTOR_OPEN_EXCLUSIVE, &vv) < 0) _exit(1);
    (void)!write(pfd[1], "x", 1);
    pause();
    _exit(0);
  }
  char x;
  assert_int_equal(read(pfd[0], &x, 1), 1);
  vstor_vol *v = open_ok(c, img);
  assert_int_equal(vstor_extend(v, 32 * MiB, NULL, 0, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_BUSY);
  assert_non_null(strstr(vstor_last_error(), "busy"));
  assert_int_equal(file_size(img), 16 * MiB);
  kill(p, SIGKILL);
  waitpid(p, NULL, 0);
  /* the lock died with its owner */
  assert_int_equal(vstor_extend(v, 32 * MiB, NULL, 0, NULL), 0);
  vstor_close(v);
  vstor_ctx_free(c);
  free(img);
}

static void t_open_refusals(void **st)
{
  (void)st;
  vstor_ctx *c = test_ctx();
  vstor_vol *v = NULL;
  char *p;
  assert_true(asprintf(&p, "%s/missing.img", xpool) > 0);
  assert_int_equal(vstor_open(c, p, 0, &v), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_NOENT);
  assert_int_equal(vstor_last_errno(), ENOENT);
  free(p);
  /* non-raw image */
  assert_true(asprintf(&p, "%s/q.qcow2", xpool) > 0);
  assert_int_equal(sh("printf 'QFI\\373\\000\\000\\000\\003' > '%s' && truncate -s 1M '%s'", p, p), 0);
  assert_int_equal(vstor_open(c, p, 0, &v), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_NOTSUP);
  assert_non_null(strstr(vstor_last_error(), "qcow2"));
  /* symlink (a swapped path) */
  char *img = mkimage(xpool, "real.img", 8, NULL, false, NULL, false, NULL), *ln;
  assert_true(asprintf(&ln, "%s/link.img", xpool) > 0);
  assert_int_equal(symlink(img, ln), 0);
  assert_int_equal(vstor_open(c, ln, 0, &v), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  assert_non_null(strstr(vstor_last_error(), "symbolic link"));
  /* relative path, directory, unbound loop */
  assert_int_equal(vstor_open(c, "disk.img", 0, &v), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  assert_int_equal(vstor_open(c, xpool, 0, &v), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  char *freeloop = sh_out("losetup -f");
  char *lu;
  assert_true(asprintf(&lu, "loop:%s", freeloop) > 0);
  assert_int_equal(vstor_open(c, lu, 0, &v), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_NOENT);
  /* a read-only handle refuses changes */
  assert_int_equal(vstor_open(c, img, VSTOR_OPEN_READONLY, &v), 0);
  assert_int_equal(vstor_extend(v, 16 * MiB, NULL, 0, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_PERM);
  vstor_close(v);
  vstor_ctx_free(c);
  free(p); free(img); free(ln); free(freeloop); free(lu);
}

/* --- snapshot ------------------------------------------------------ */

static void snapshot_under_writer(const char *pool, const char *fstype, const char *method)
{
  char *loop, *mnt, name[64];
  snprintf(name, sizeof name, "snap-%s.img", fstype);
  char *img = mkimage(pool, name, 320, fstype, true, &loop, true, &mnt);
  assert_int_equal(sh("dd if=/dev/urandom of='%s/quiet' bs=1M count=16 status=none && sync", mnt), 0);
  char *q;
  assert_true(asprintf(&q, "%s/quiet", mnt) > 0);
  char *sum = sha256(q);
  int w = start_writer(mnt, "busy");
  usleep(300000);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  assert_int_equal(vstor_vol_can(v, VSTOR_OP_FREEZE, 0, NULL), 1);
  char *dest;
  assert_true(asprintf(&dest, "%s/%s.snap", pool, name) > 0);
  vstor_report *rep = NULL;
  if (vstor_snapshot(v, dest, NULL, 0, &rep) < 0) fail_msg("%s", vstor_last_error());
  stop_writer(w);
  assert_string_equal(vstor_report_method(rep), method);
  assert_int_equal(vstor_report_consistency(rep), VSTOR_CONSISTENT_FS);
  assert_true(vstor_report_frozen_us(rep) > 0);
  print_message("      %s on %s pool: %s, frozen %llu us\n", fstype, strrchr(pool, '-') + 1, method,
                (unsigned long long)vstor_report_frozen_us(rep));
  assert_true(fs_writable(mnt, 3000));  /* thawed */
  /* the snapshot is a clean filesystem holding the quiesced file */
  /* A frozen XFS keeps its log dirty (the kernel only covers it): the
   * snapshot is checked after the log replay its first mount does. */
  if (!strcmp(fstype, "xfs")) assert_int_equal(xfs_check_after_replay(dest), 0);
  else if (!strcmp(fstype, "ext4")) assert_int_equal(sh("e2fsck -fn '%s' >/dev/null 2>&1", dest), 0);
  else assert_int_equal(sh("btrfs check --readonly '%s' >/dev/null 2>&1", dest), 0);
  char *sl = sh_out("losetup -r -f --show '%s'", dest), *sm;
  track_loop(sl);
  assert_true(asprintf(&sm, "%s.mnt", dest) > 0);
  mkdir(sm, 0755);
  assert_int_equal(sh("mount -o ro%s '%s' '%s'", !strcmp(fstype, "xfs") ? ",nouuid" : "", sl, sm), 0);
  track_mount(sm);
  char *q2;
  assert_true(asprintf(&q2, "%s/quiet", sm) > 0);
  char *sum2 = sha256(q2);
  assert_string_equal(sum, sum2);
  do_umount(sm);
  sh("losetup -d %s", sl);
  vstor_report_free(rep);
  vstor_close(v);
  vstor_ctx_free(c);
  do_umount(mnt);
  free(q); free(q2); free(sum); free(sum2); free(dest); free(sl); free(sm);
  free(img); free(loop); free(mnt);
}

static void t_snapshot_xfs_reflink(void **st) { (void)st; snapshot_under_writer(xpool, "xfs", "reflink"); }
static void t_snapshot_ext4_on_btrfs(void **st) { (void)st; snapshot_under_writer(bpool, "ext4", "reflink"); }
static void t_snapshot_btrfs_copy(void **st)
{
  (void)st;
  /* image on a tmpfs host: no reflink, sparse copy inside the window */
  char *t = mkpool("tmpfs", 1024);
  snapshot_under_writer(t, "btrfs", "sparse-copy");
  free(t);
}

static void t_snapshot_refusals(void **st)
{
  (void)st;
  char *loop, *mnt;
  char *img = mkimage(xpool, "snapref.img", 320, "xfs", true, &loop, true, &mnt);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  char *inside, *exists;
  assert_true(asprintf(&inside, "%s/snap", mnt) > 0);
  assert_int_equal(vstor_snapshot(v, inside, NULL, 0, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  assert_non_null(strstr(vstor_last_error(), "inside the filesystem"));
  assert_true(fs_writable(mnt, 2000));
  assert_true(asprintf(&exists, "%s/exists", xpool) > 0);
  sh("touch '%s'", exists);
  assert_int_equal(vstor_snapshot(v, exists, NULL, 0, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_EXIST);
  assert_int_equal(vstor_snapshot(v, "relative", NULL, 0, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  vstor_close(v);
  vstor_ctx_free(c);
  do_umount(mnt);
  free(inside); free(exists); free(img); free(loop); free(mnt);
}

/* The freeze bound: the window runs out while "cloning" (a fault point
 * that sleeps), the guard thaws, the call returns TIMEOUT, no snapshot. */
static void t_snapshot_timeout_thaws(void **st)
{
  (void)st;
  char *loop, *mnt;
  char *img = mkimage(xpool, "tmo.img", 320, "xfs", true, &loop, true, &mnt);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_freeze_timeout_ms(o, 300);
  char *dest;
  assert_true(asprintf(&dest, "%s/tmo.snap", xpool) > 0);
  setenv("VSTOR_FAULT", "file.snapshot.frozen:sleep=1500", 1);
  int r = vstor_snapshot(v, dest, o, 0, NULL);
  unsetenv("VSTOR_FAULT");
  assert_int_equal(r, -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_TIMEOUT);
  assert_true(fs_writable(mnt, 2000));
  assert_int_equal(access(dest, F_OK), -1);
  vstor_opts_free(o);
  vstor_close(v);
  vstor_ctx_free(c);
  do_umount(mnt);
  free(dest); free(img); free(loop); free(mnt);
}

/* Killed while frozen: the guard thaws at once; recover removes the
 * half-made snapshot. */
static void t_snapshot_killed_thaws(void **st)
{
  (void)st;
  char *loop, *mnt;
  char *img = mkimage(xpool, "kill.img", 320, "xfs", true, &loop, true, &mnt);
  char *dest;
  assert_true(asprintf(&dest, "%s/kill.snap", xpool) > 0);
  vstor_ctx *c = test_ctx();
  pid_t p = fork();
  if (p == 0) {
    setenv("VSTOR_FAULT", "file.snapshot.frozen", 1);
    vstor_vol *v;
    if (vstor_open(c, img, 0, &v) < 0) _exit(2);
    vstor_opts *o = vstor_opts_new();
    vstor_opts_set_freeze_timeout_ms(o, 60000);  /* the guard must not wait for it */
    vstor_snapshot(v, dest, o, 0, NULL);
    _exit(3);
  }
  int status;
  waitpid(p, &status, 0);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_true(fs_writable(mnt, 2000));
  assert_int_equal(access(dest, F_OK), 0);  /* half-made */
  vstor_report *rep = NULL;
  assert_int_equal(vstor_recover(c, 0, &rep), 0);
  assert_int_equal(access(dest, F_OK), -1);
  vstor_report_free(rep);
  assert_int_equal(vstor_recover(c, 0, NULL), 0);  /* idempotent */
  vstor_ctx_free(c);
  do_umount(mnt);
  free(dest); free(img); free(loop); free(mnt);
}

/* VSTOR_SNAPSHOT_EXPEDITE: the kernel's RCU knob is set for the window and
 * put back as it was -- after a normal run, when the operator had set it
 * already, and by the guard when the caller is killed while frozen. */
static char rcu_knob(int set)
{
  int fd = open("/sys/kernel/rcu_expedited", set < 0 ? O_RDONLY : O_WRONLY);
  char c = set > 0 ? '1' : '0';
  if (fd < 0) fail_msg("/sys/kernel/rcu_expedited: %s", strerror(errno));
  ssize_t n = set < 0 ? read(fd, &c, 1) : write(fd, &c, 1);
  close(fd);
  assert_int_equal(n, 1);
  return c;
}

static char *sha256_of_file(const char *dir, const char *name)
{
  char *p, *r;
  if (asprintf(&p, "%s/%s", dir, name) < 0) abort();
  r = sha256(p);
  free(p);
  return r;
}

static void t_snapshot_expedite(void **st)
{
  (void)st;
  char saved = rcu_knob(-1);
  char *loop, *mnt;
  char *img = mkimage(xpool, "exp.img", 320, "xfs", true, &loop, true, &mnt);
  assert_int_equal(sh("dd if=/dev/urandom of='%s/data' bs=1M count=8 status=none && sync", mnt), 0);
  char *sum = sha256_of_file(mnt, "data");
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  char *dest;
  rcu_knob(0);
  for (int round = 0; round < 2; round++) {       /* knob off, then on by the operator */
    assert_true(asprintf(&dest, "%s/exp%d.snap", xpool, round) > 0);
    vstor_report *rep = NULL;
    assert_int_equal(vstor_snapshot(v, dest, NULL, VSTOR_SNAPSHOT_EXPEDITE, &rep), 0);
    assert_int_equal(vstor_report_consistency(rep), VSTOR_CONSISTENT_FS);
    assert_true(vstor_report_frozen_us(rep) > 0);
    assert_non_null(strstr(vstor_report_step_detail(rep, 0), "expedited"));
    assert_int_equal(rcu_knob(-1), round ? '1' : '0');  /* as it was before */
    vstor_report_free(rep);
    assert_true(fs_writable(mnt, 2000));
    /* the snapshot holds the data */
    char *snapmnt = sh_out("d=$(mktemp -d) && mount -o ro,nouuid,norecovery '%s' \"$d\" && echo \"$d\"", dest);
    assert_true(*snapmnt);
    char *ssum = sha256_of_file(snapmnt, "data");
    assert_string_equal(ssum, sum);
    sh("umount '%s' && rmdir '%s'", snapmnt, snapmnt);
    free(ssum); free(snapmnt); unlink(dest); free(dest);
    rcu_knob(1);
  }
  rcu_knob(0);
  vstor_close(v);
  /* killed while frozen: the guard thaws and puts the knob back */
  assert_true(asprintf(&dest, "%s/expkill.snap", xpool) > 0);
  pid_t p = fork();
  if (p == 0) {
    setenv("VSTOR_FAULT", "file.snapshot.frozen", 1);
    vstor_vol *kv;
    if (vstor_open(c, img, 0, &kv) < 0) _exit(2);
    vstor_opts *o = vstor_opts_new();
    vstor_opts_set_freeze_timeout_ms(o, 60000);
    vstor_snapshot(kv, dest, o, VSTOR_SNAPSHOT_EXPEDITE, NULL);
    _exit(3);
  }
  int status;
  waitpid(p, &status, 0);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_true(fs_writable(mnt, 2000));
  for (int i = 0; i < 100 && rcu_knob(-1) != '0'; i++) usleep(20000);
  assert_int_equal(rcu_knob(-1), '0');
  assert_int_equal(vstor_recover(c, 0, NULL), 0);
  assert_int_equal(access(dest, F_OK), -1);
  vstor_ctx_free(c);
  rcu_knob(saved == '1');
  do_umount(mnt);
  free(dest); free(img); free(loop); free(mnt); free(sum);
}

/* --- mirror / pivot ------------------------------------------------ */

static vstor_job *mirror_ready(vstor_vol *v, const char *dest, uint64_t speed, unsigned flags)
{
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_speed(o, speed);
  vstor_job *j = NULL;
  if (vstor_mirror(v, dest, o, flags, &j, NULL) < 0) fail_msg("mirror: %s", vstor_last_error());
  vstor_opts_free(o);
  return j;
}

static void t_mirror_pivot_idle_loop(void **st)
{
  (void)st;
  char *loop, *mnt;
  char *img = mkimage(xpool, "mir.img", 320, "xfs", true, &loop, true, &mnt);
  assert_int_equal(sh("dd if=/dev/urandom of='%s/data' bs=1M count=40 status=none", mnt), 0);
  do_umount(mnt);  /* idle: the kernel can re-point the loop device */
  char *sum = sha256(loop);
  char *dest;
  assert_true(asprintf(&dest, "%s/mir.copy", bpool) > 0);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  assert_int_equal(vstor_vol_can(v, VSTOR_OP_PIVOT, 0, NULL), 1);
  vstor_job *j = mirror_ready(v, dest, 0, VSTOR_MIRROR_VERIFY);
  assert_int_equal(vstor_job_wait(j, 60000, 0), 0);
  assert_int_equal(vstor_job_state(j), VSTOR_JOB_READY);
  uint64_t done, total;
  vstor_job_progress(j, &done, &total);
  assert_true(total >= 40 * MiB);
  assert_int_equal(done, total);
  if (vstor_job_pivot(j, 0) < 0) fail_msg("pivot: %s", vstor_last_error());
  assert_int_equal(vstor_job_state(j), VSTOR_JOB_PIVOTED);
  char *back = loop_backing(loop);
  assert_string_equal(back, dest);
  char *sum2 = sha256(loop);
  assert_string_equal(sum, sum2);
  /* the handle now is the copy, and the loop still mounts */
  assert_string_equal(vstor_layer_path(vstor_vol_layer(v, 0)), dest);
  assert_int_equal(sh("mount -o nouuid %s '%s' && umount '%s'", loop, mnt, mnt), 0);
  vstor_job_free(j);
  vstor_close(v);
  vstor_ctx_free(c);
  free(sum); free(sum2); free(back); free(dest); free(img); free(loop); free(mnt);
}

/* A write after READY must reach the copy at pivot: the resync pass (or
 * its timestamp shortcut) must notice it. */
static void t_mirror_write_after_ready(void **st)
{
  (void)st;
  char *loop;
  char *img = mkimage(xpool, "late.img", 64, NULL, true, &loop, false, NULL);
  assert_int_equal(sh("dd if=/dev/urandom of=%s bs=1M count=16 oflag=direct status=none", loop), 0);
  usleep(300000);  /* idle long enough for the timestamps to be trusted */
  char *dest;
  assert_true(asprintf(&dest, "%s/late.copy", bpool) > 0);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  vstor_job *j = mirror_ready(v, dest, 0, 0);
  assert_int_equal(vstor_job_wait(j, 60000, 0), 0);
  /* one 4 KiB block, through the loop device, after the copy is READY */
  assert_int_equal(sh("dd if=/dev/urandom of=%s bs=4k count=1 seek=3000 oflag=direct status=none", loop), 0);
  char *sum = sha256(loop);
  if (vstor_job_pivot(j, 0) < 0) fail_msg("pivot: %s", vstor_last_error());
  char *back = loop_backing(loop);
  assert_string_equal(back, dest);
  char *sum2 = sha256(loop);
  assert_string_equal(sum, sum2);
  vstor_job_free(j);
  vstor_close(v);
  vstor_ctx_free(c);
  free(sum); free(sum2); free(back); free(dest); free(img); free(loop);
}

/* A read-only loop device kept open by a reader (not mounted): pivot
 * re-points it in place with LOOP_CHANGE_FD while the reader holds it.
 * Mounted, even read-only, it is refused: since Linux 6.x LOOP_CHANGE_FD
 * signals a media change and the filesystem on it shuts down. */
static void t_mirror_pivot_readonly(void **st)
{
  (void)st;
  char *img = mkimage(xpool, "ro.img", 320, "xfs", false, NULL, false, NULL);
  assert_int_equal(sh("dd if=/dev/urandom of='%s' bs=1M count=8 seek=100 conv=notrunc status=none", img), 0);
  char *l = sh_out("losetup -r -f --show '%s'", img);
  track_loop(l);
  char *sum = sha256(l);
  char *dest;
  assert_true(asprintf(&dest, "%s/ro.copy", xpool) > 0);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  assert_int_equal(vstor_vol_can(v, VSTOR_OP_PIVOT, 0, NULL), 1);
  pid_t reader = fork();
  if (reader == 0) {  /* holds the device open across the pivot */
    int fd = open(l, O_RDONLY);
    (void)fd;
    pause();
    _exit(0);
  }
  vstor_job *j = mirror_ready(v, dest, 0, 0);
  assert_int_equal(vstor_job_wait(j, 60000, 0), 0);
  if (vstor_job_pivot(j, 0) < 0) fail_msg("pivot: %s", vstor_last_error());
  kill(reader, SIGKILL);
  waitpid(reader, NULL, 0);
  char *back = loop_backing(l);
  assert_string_equal(back, dest);
  char *sum2 = sha256(l);
  assert_string_equal(sum, sum2);
  vstor_job_free(j);
  /* mounted read-only: refused, with the reason, before anything starts */
  char *m;
  assert_true(asprintf(&m, "%s.mnt", img) > 0);
  mkdir(m, 0755);
  assert_int_equal(sh("mount -o ro,nouuid %s '%s'", l, m), 0);
  track_mount(m);
  vstor_vol_refresh(v);
  char *why = NULL;
  assert_int_equal(vstor_vol_can(v, VSTOR_OP_PIVOT, 0, &why), 0);
  assert_non_null(strstr(why, "mounted read-only"));
  free(why);
  vstor_close(v);
  vstor_ctx_free(c);
  do_umount(m);
  free(sum); free(sum2); free(back); free(dest); free(img); free(l); free(m);
}

static void t_mirror_mounted_rw(void **st)
{
  (void)st;
  char *loop, *mnt;
  char *img = mkimage(xpool, "mrw.img", 320, "xfs", true, &loop, true, &mnt);
  assert_int_equal(sh("dd if=/dev/urandom of='%s/quiet' bs=1M count=16 status=none && sync", mnt), 0);
  char *q;
  assert_true(asprintf(&q, "%s/quiet", mnt) > 0);
  char *sum = sha256(q);
  int w = start_writer(mnt, "busy");
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  char *why = NULL;
  assert_int_equal(vstor_vol_can(v, VSTOR_OP_PIVOT, 0, &why), 0);  /* said before starting */
  assert_non_null(strstr(why, "mounted read-write"));
  free(why);
  char *dest;
  assert_true(asprintf(&dest, "%s/mrw.copy", bpool) > 0);
  vstor_job *j = mirror_ready(v, dest, 0, 0);
  assert_int_equal(vstor_job_wait(j, 60000, 0), 0);
  assert_int_equal(vstor_job_pivot(j, 0), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_NOTSUP);
  assert_int_equal(vstor_job_state(j), VSTOR_JOB_READY);  /* still usable */
  /* complete: a consistent point-in-time copy (frozen final pass) */
  if (vstor_job_complete(j, 0) < 0) fail_msg("complete: %s", vstor_last_error());
  stop_writer(w);
  assert_int_equal(vstor_job_state(j), VSTOR_JOB_COMPLETED);
  assert_true(fs_writable(mnt, 2000));
  assert_int_equal(xfs_check_after_replay(dest), 0);
  char *back = loop_backing(loop);
  assert_string_equal(back, img);  /* the volume stays on its source */
  char *cl = sh_out("losetup -r -f --show '%s'", dest), *cm;
  track_loop(cl);
  assert_true(asprintf(&cm, "%s.mnt", dest) > 0);
  mkdir(cm, 0755);
  assert_int_equal(sh("mount -o ro,nouuid %s '%s'", cl, cm), 0);
  track_mount(cm);
  char *q2;
  assert_true(asprintf(&q2, "%s/quiet", cm) > 0);
  char *sum2 = sha256(q2);
  assert_string_equal(sum, sum2);
  do_umount(cm);
  vstor_job_free(j);
  vstor_close(v);
  vstor_ctx_free(c);
  do_umount(mnt);
  free(q); free(q2); free(sum); free(sum2); free(back); free(cl); free(cm); free(dest);
  free(img); free(loop); free(mnt);
}

static void t_mirror_cancel_and_state(void **st)
{
  (void)st;
  char *img = mkimage(xpool, "cancel.img", 128, NULL, false, NULL, false, NULL);
  assert_int_equal(sh("dd if=/dev/urandom of='%s' bs=1M count=64 conv=notrunc status=none", img), 0);
  char *sum = sha256(img);
  char *dest;
  assert_true(asprintf(&dest, "%s/cancel.copy", xpool) > 0);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  vstor_job *j = mirror_ready(v, dest, 16 * MiB, 0);  /* 64 MiB at 16 MiB/s: ~4 s */
  usleep(500000);
  assert_int_equal(vstor_job_state(j), VSTOR_JOB_RUNNING);
  /* pivot and complete before READY are refused with the state */
  assert_int_equal(vstor_job_pivot(j, 0), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_STATE);
  assert_non_null(strstr(vstor_last_error(), "RUNNING"));
  assert_int_equal(vstor_job_complete(j, 0), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_STATE);
  assert_int_equal(vstor_job_wait(j, 100, 0), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_TIMEOUT);
  uint64_t done, total;
  vstor_job_progress(j, &done, &total);
  assert_int_equal(total, 64 * MiB);
  assert_true(done > 0 && done < total);  /* the speed limit holds it back */
  /* a second operation on the volume is refused while the job runs */
  assert_int_equal(vstor_extend(v, 256 * MiB, NULL, 0, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_BUSY);
  assert_int_equal(vstor_close(v), -1);  /* job still alive */
  assert_int_equal(vstor_last_code(), VSTOR_E_STATE);
  assert_int_equal(vstor_job_cancel(j, 0), 0);
  assert_int_equal(vstor_job_state(j), VSTOR_JOB_CANCELLED);
  assert_int_equal(access(dest, F_OK), -1);  /* partial copy removed */
  char *sum2 = sha256(img);
  assert_string_equal(sum, sum2);
  assert_int_equal(vstor_job_cancel(j, 0), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_STATE);
  vstor_job_free(j);
  assert_int_equal(vstor_close(v), 0);
  vstor_ctx_free(c);
  free(sum); free(sum2); free(dest); free(img);
}

static void t_mirror_refusals(void **st)
{
  (void)st;
  char *img = mkimage(xpool, "mref.img", 64, NULL, false, NULL, false, NULL);
  vstor_ctx *c = test_ctx();
  vstor_vol *v = open_ok(c, img);
  vstor_job *j = NULL;
  char *exists, *small;
  assert_true(asprintf(&exists, "%s/mref.exists", xpool) > 0);
  sh("truncate -s 1M '%s'", exists);
  assert_int_equal(vstor_mirror(v, exists, NULL, 0, &j, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_EXIST);
  assert_null(j);
  assert_int_equal(vstor_mirror(v, exists, NULL, VSTOR_MIRROR_REUSE_DEST, &j, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);  /* wrong size */
  assert_int_equal(vstor_mirror(v, img, NULL, VSTOR_MIRROR_REUSE_DEST, &j, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);  /* itself */
  assert_int_equal(sh("dd if=/dev/urandom of='%s' bs=1M count=32 conv=notrunc status=none", img), 0);
  char *tiny = mkpool("tmpfs", 8);
  assert_true(asprintf(&small, "%s/copy", tiny) > 0);
  assert_int_equal(vstor_mirror(v, small, NULL, 0, &j, NULL), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_NOSPC);
  assert_int_equal(access(small, F_OK), -1);
  vstor_close(v);
  vstor_ctx_free(c);
  free(exists); free(small); free(tiny); free(img);
}

int main(void)
{
  if (geteuid() != 0) { fprintf(stderr, "test-file needs root (loop devices, mounts)\n"); return 1; }
  scratch();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(t_open_layers),
    cmocka_unit_test(t_loop_by_inode),
    cmocka_unit_test(t_open_refusals),
    cmocka_unit_test(t_extend_xfs_online),
    cmocka_unit_test(t_extend_btrfs_online),
    cmocka_unit_test(t_extend_ext4_online),
    cmocka_unit_test(t_extend_ext4_offline),
    cmocka_unit_test(t_extend_no_fs_grow_and_idempotent),
    cmocka_unit_test(t_extend_loop_attached_after_open),
    cmocka_unit_test(t_extend_prealloc),
    cmocka_unit_test(t_extend_refusals),
    cmocka_unit_test(t_extend_nospc),
    cmocka_unit_test(t_busy),
    cmocka_unit_test(t_snapshot_xfs_reflink),
    cmocka_unit_test(t_snapshot_ext4_on_btrfs),
    cmocka_unit_test(t_snapshot_btrfs_copy),
    cmocka_unit_test(t_snapshot_refusals),
    cmocka_unit_test(t_snapshot_timeout_thaws),
    cmocka_unit_test(t_snapshot_killed_thaws),
    cmocka_unit_test(t_snapshot_expedite),
    cmocka_unit_test(t_mirror_pivot_idle_loop),
    cmocka_unit_test(t_mirror_write_after_ready),
    cmocka_unit_test(t_mirror_pivot_readonly),
    cmocka_unit_test(t_mirror_mounted_rw),
    cmocka_unit_test(t_mirror_cancel_and_state),
    cmocka_unit_test(t_mirror_refusals),
  };
  return cmocka_run_group_tests_name("file backend", tests, setup, NULL);
}
