/* lab-rbd-libvirt: the libvirt backend on a guest whose disk is an RBD network
 * disk (QEMU rbd driver), and the rbd backend finding that guest.  Run
 * through run-lab.sh (Ceph cluster + private libvirtd + TCG guest).
 * Outcomes are checked from outside libvstor: the guest (agent), the domain
 * XML, the images through librbd.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "vstor.h"

static const char *LURI, *LDOM, *LVM, *LCONF;
#include "../lab-libvirt/lab-guest.h"

/* ---- host side ------------------------------------------------------ */

/* ---- lab-rbd-libvirt specifics ------------------------------------- */

static rados_t cl;
static rados_ioctx_t io_rbd, io_rbd2;

static char *pct(const char *s)
{
  char *o = malloc(strlen(s) * 3 + 1), *q = o;
  for (; *s; s++) {
    if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
        strchr("-._~/", *s))
      *q++ = *s;
    else
      q += sprintf(q, "%%%02X", (unsigned char)*s);
  }
  *q = 0;
  return o;
}

static char *LVURI;   /* libvirt:DOM/vdb?uri=..&conf=.. */

static const vstor_layer *layer_role(vstor_vol *v, const char *role)
{
  for (size_t i = 0; i < vstor_vol_layer_count(v); i++)
    if (!strcmp(vstor_layer_role(vstor_vol_layer(v, i)), role))
      return vstor_vol_layer(v, i);
  return NULL;
}

static void print_report(const vstor_report *r)
{
  for (size_t i = 0; r && i < vstor_report_step_count(r); i++)
    printf("#   step %zu: [%s] %s: %s (%s)\n", i, vstor_report_step_layer(r, i),
           vstor_report_step_action(r, i),
           vstor_report_step_status(r, i) == VSTOR_STEP_DONE ? "done" :
           vstor_report_step_status(r, i) == VSTOR_STEP_FAILED ? "FAILED" :
           vstor_report_step_status(r, i) == VSTOR_STEP_SKIPPED ? "skipped" :
           vstor_report_step_status(r, i) == VSTOR_STEP_PLANNED ? "planned" : "undone",
           vstor_report_step_detail(r, i) ? vstor_report_step_detail(r, i) : "");
}

static uint64_t img_size(rados_ioctx_t io, const char *name)
{
  rbd_image_t img;
  uint64_t sz = 0;
  if (rbd_open_read_only(io, name, &img, NULL) < 0) return 0;
  rbd_get_size(img, &sz);
  rbd_close(img);
  return sz;
}

static bool img_exists(rados_ioctx_t io, const char *name)
{
  rbd_image_t img;
  if (rbd_open_read_only(io, name, &img, NULL) < 0) return false;
  rbd_close(img);
  return true;
}

static bool snap_exists(rados_ioctx_t io, const char *name, const char *snap)
{
  rbd_image_t img;
  bool ex = false;
  if (rbd_open_read_only(io, name, &img, NULL) < 0) return false;
  rbd_snap_exists(img, snap, &ex);
  rbd_close(img);
  return ex;
}

/* Does the image (at snap) contain the byte string m anywhere? */
static bool img_contains(rados_ioctx_t io, const char *name, const char *snap, const char *m)
{
  rbd_image_t img;
  if (rbd_open_read_only(io, name, &img, snap) < 0) return false;
  uint64_t sz = 0;
  rbd_get_size(img, &sz);
  size_t bs = 4 << 20, ml = strlen(m);
  char *b = malloc(bs + ml);
  bool found = false;
  for (uint64_t off = 0; off < sz && !found; off += bs) {
    ssize_t n = rbd_read(img, off, bs + ml > sz - off ? sz - off : bs + ml, b);
    if (n <= 0) break;
    found = memmem(b, (size_t)n, m, ml) != NULL;
  }
  free(b);
  rbd_close(img);
  return found;
}

static int watchers(rados_ioctx_t io, const char *name)
{
  rbd_image_t img;
  if (rbd_open_read_only(io, name, &img, NULL) < 0) return -1;
  rbd_image_watcher_t w[16];
  size_t n = 16;
  int r = rbd_watchers_list(img, w, &n);
  rbd_close(img);
  if (r < 0) return -1;
  rbd_watchers_list_cleanup(w, n);
  return (int)n;
}

static char *disk_src_name(const char *target)
{
  char *xml = virDomainGetXMLDesc(dom, 0);
  if (!xml) return NULL;
  char key[64];
  snprintf(key, sizeof key, "<target dev='%s'", target);
  char *t = strstr(xml, key), *res = NULL;
  if (t) {
    char *disk = t;
    while (disk > xml && strncmp(disk, "<disk ", 6)) disk--;
    char *s = strstr(disk, "<source protocol='rbd' name='");
    if (s && s < t) { s += 29; res = strndup(s, strcspn(s, "'")); }
  }
  free(xml);
  return res;
}

static void logfn(void *o, int level, const char *msg)
{
  (void)o;
  if (level <= VSTOR_LOG_INFO) printf("#   log: %s\n", msg);
}

/* ---- checks --------------------------------------------------------- */

static void t_layers(vstor_vol *v)
{
  size_t n = vstor_vol_layer_count(v);
  for (size_t i = 0; i < n; i++) {
    const vstor_layer *l = vstor_vol_layer(v, i);
    printf("#   layer %zu: %s %s %s %llu\n", i, vstor_layer_role(l), vstor_layer_type(l),
           vstor_layer_path(l), (unsigned long long)vstor_layer_size(l));
  }
  const vstor_layer *s = vstor_vol_layer(v, 0), *h = layer_role(v, "hypervisor"), *f = layer_role(v, "filesystem");
  check(s && !strcmp(vstor_layer_role(s), "storage") && !strcmp(vstor_layer_type(s), "rbd") &&
        !strcmp(vstor_layer_path(s), "rbd/vm-disk") && vstor_layer_size(s) == 256ull << 20,
        "bottom layer: storage rbd rbd/vm-disk, 256 MiB (through librbd)");
  check(s && vstor_layer_prop(s, "watchers") && atoi(vstor_layer_prop(s, "watchers")) >= 1,
        "the rbd layer sees the guest's QEMU as a watcher (%s)", s && vstor_layer_prop(s, "watchers") ? vstor_layer_prop(s, "watchers") : "?");
  check(h && !strcmp(vstor_layer_type(h), "libvirt") && vstor_layer_prop(h, "protocol") &&
        !strcmp(vstor_layer_prop(h, "protocol"), "rbd"), "hypervisor layer: libvirt, protocol rbd");
  check(f && !strcmp(vstor_layer_type(f), "ext4") && !strcmp(vstor_layer_path(f), "/mnt/r"),
        "guest filesystem layer: ext4 on /mnt/r (agent)");
  struct { int op; unsigned fl; int want; const char *name; } caps[] = {
    { VSTOR_OP_EXTEND_ONLINE, 0, 1, "extend-online" }, { VSTOR_OP_RESIZE_FS, 0, 1, "resize-fs" },
    { VSTOR_OP_FREEZE, 0, 1, "freeze" }, { VSTOR_OP_SNAPSHOT, 0, 1, "snapshot" },
    { VSTOR_OP_MIRROR, 0, 1, "mirror" }, { VSTOR_OP_MIRROR, VSTOR_MIRROR_VERIFY, 0, "mirror+VERIFY" },
  };
  for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
    char *why = NULL;
    int r = vstor_vol_can(v, caps[i].op, caps[i].fl, &why);
    check(r == caps[i].want, "can(%s) = %d (%s)", caps[i].name, r, why ? why : "");
    free(why);
  }
}

static void t_extend(vstor_vol *v)
{
  char *o = gout("df -k /mnt/r | tail -1 | awk '{print $2}'");
  unsigned long long df0 = o ? strtoull(o, NULL, 10) : 0;
  free(o);
  vstor_report *rep = NULL;
  double t0 = now();
  int r = vstor_extend(v, 320ull << 20, NULL, VSTOR_EXTEND_RESIZE_FS, &rep);
  double dt = now() - t0;
  print_report(rep);
  check(r == 0, "extend libvirt:.../vdb to 320 MiB with RESIZE_FS (%.0f ms end to end)", dt * 1000);
  printf("# FIGURE extend-through-stack-ms %.0f\n", dt * 1000);
  vstor_report_free(rep);
  check(guest_bytes("vdb") == 320ull << 20, "guest sees /sys/block/vdb = %llu bytes", guest_bytes("vdb"));
  check(img_size(io_rbd, "vm-disk") == 320ull << 20, "librbd: rbd/vm-disk is 320 MiB");
  o = gout("df -k /mnt/r | tail -1 | awk '{print $2}'");
  unsigned long long df1 = o ? strtoull(o, NULL, 10) : 0;
  free(o);
  check(df1 > df0 + 50000, "guest ext4 grew: %llu -> %llu KiB", df0, df1);
  r = vstor_extend(v, 300ull << 20, NULL, 0, NULL);
  check(r < 0 && vstor_last_code() == VSTOR_E_INVAL, "shrink refused with INVAL");
  check(img_size(io_rbd, "vm-disk") == 320ull << 20, "image unchanged after the refused shrink");
}

static void t_snapshot(vstor_vol *v)
{
  check(gsh("yes BEFORE-SNAP-MARKER-7f3a | head -c 65536 > /mnt/r/marker && sync", NULL, true) == 0,
        "guest wrote and synced a marker file");
  vstor_report *rep = NULL;
  int r = vstor_snapshot(v, "s1", NULL, 0, &rep);
  print_report(rep);
  check(r == 0, "snapshot s1 with guest freeze");
  check(rep && vstor_report_consistency(rep) == VSTOR_CONSISTENT_FS, "consistency FS (%d)",
        rep ? vstor_report_consistency(rep) : -1);
  check(rep && vstor_report_frozen_us(rep) > 0, "frozen window %llu us",
        rep ? (unsigned long long)vstor_report_frozen_us(rep) : 0ull);
  if (rep) printf("# FIGURE snapshot-frozen-us %llu\n", (unsigned long long)vstor_report_frozen_us(rep));
  vstor_report_free(rep);
  char *fs = freeze_status();
  check(!strcmp(fs, "thawed"), "guest thawed after the snapshot (%s)", fs);
  free(fs);
  check(snap_exists(io_rbd, "vm-disk", "s1"), "librbd: rbd/vm-disk@s1 exists");
  check(gsh("yes AFTER-SNAP-MARKER-9c1d | head -c 65536 > /mnt/r/marker2 && sync", NULL, true) == 0,
        "guest wrote a second marker after the snapshot");
  check(img_contains(io_rbd, "vm-disk", "s1", "BEFORE-SNAP-MARKER-7f3a"),
        "the snapshot holds the data synced before it (read with librbd)");
  check(!img_contains(io_rbd, "vm-disk", "s1", "AFTER-SNAP-MARKER-9c1d") &&
        img_contains(io_rbd, "vm-disk", NULL, "AFTER-SNAP-MARKER-9c1d"),
        "the snapshot is point-in-time: the later marker is only in the head");
  r = vstor_snapshot(v, "s1", NULL, 0, NULL);
  check(r < 0 && vstor_last_code() == VSTOR_E_EXIST, "snapshot s1 again: EXIST (%s)", vstor_last_error());
  fs = freeze_status();
  check(!strcmp(fs, "thawed"), "refused snapshot froze nothing (%s)", fs);
  free(fs);
  /* clone: the snapshot under freeze, protect + clone after the thaw */
  rep = NULL;
  r = vstor_snapshot(v, "rbd:rbd2/vm-disk-clone", NULL, 0, &rep);
  print_report(rep);
  check(r == 0 && vstor_report_consistency(rep) == VSTOR_CONSISTENT_FS, "clone into rbd:rbd2/vm-disk-clone, FS-consistent");
  check(img_exists(io_rbd2, "vm-disk-clone") && snap_exists(io_rbd, "vm-disk", "vstor-clone-vm-disk-clone"),
        "librbd: rbd2/vm-disk-clone exists, parent snapshot rbd/vm-disk@vstor-clone-vm-disk-clone");
  check(img_contains(io_rbd2, "vm-disk-clone", NULL, "AFTER-SNAP-MARKER-9c1d"), "the clone holds the guest's data");
  vstor_report_free(rep);
  r = vstor_snapshot(v, "rbd:nopool/x", NULL, 0, NULL);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOENT, "clone into an unknown pool: NOENT (%s)", vstor_last_error());
  check(!snap_exists(io_rbd, "vm-disk", "vstor-clone-x"), "... and no snapshot left behind");
}

/* A child is killed while the guest is frozen: the guard thaws, recover
 * succeeds and leaves nothing. */
static void t_killed_frozen(const char *point, const char *snap)
{
  printf("# killed at %s\n", point);
  pid_t p = fork();
  if (p == 0) {
    setenv("VSTOR_FAULT", point, 1);
    execl("/proc/self/exe", "test-rbd-libvirt", "child-snapshot", snap, (char *)NULL);
    _exit(127);
  }
  int st;
  waitpid(p, &st, 0);
  check(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child killed while the guest was frozen");
  char *fs = wait_thawed(5000);
  check(!strcmp(fs, "thawed"), "the guard thawed the guest after the kill (%s)", fs);
  free(fs);
  vstor_report *rep = NULL;
  int r = vstor_recover(ctx, 0, &rep);
  print_report(rep);
  check(r == 0, "vstor_recover after the kill succeeds");
  vstor_report_free(rep);
  check(!snap_exists(io_rbd, "vm-disk", snap), "no snapshot %s left", snap);
  int nw = watchers(io_rbd, "vm-disk");
  check(nw == 1, "no watch of the dead process left: %d watcher(s), the guest's QEMU only", nw);
  rep = NULL;
  r = vstor_recover(ctx, 0, &rep);
  check(r == 0 && (!rep || vstor_report_step_count(rep) == 0), "recover again: nothing left (idempotent)");
  vstor_report_free(rep);
}

#define WRITER_START "rm -f /tmp/writer.stop /tmp/writer.done; i=0; while [ ! -e /tmp/writer.stop ]; do " \
                     "i=$((i+1)); echo line $i >> /mnt/r/log; " \
                     "dd if=/dev/urandom of=/mnt/r/w bs=64k count=4 conv=notrunc 2>/dev/null; done; " \
                     "touch /tmp/writer.done"
#define WRITER_STOP "touch /tmp/writer.stop; n=0; while [ ! -e /tmp/writer.done ] && [ $n -lt 300 ]; do " \
                    "sleep 0.1; n=$((n+1)); done; sync"
#define SUMS "sync; echo 3 > /proc/sys/vm/drop_caches; cd /mnt/r && md5sum f marker log w big | md5sum"

static void t_mirror(vstor_vol *v)
{
  check(gsh("dd if=/dev/urandom of=/mnt/r/big bs=1M count=16 2>/dev/null && sync", NULL, true) == 0,
        "guest wrote 16 MiB of random data");
  char *big0 = gout("md5sum /mnt/r/big /mnt/r/marker /mnt/r/f");
  check(gsh(WRITER_START, NULL, false) == 0, "guest writer started");
  vstor_job *job = NULL;
  vstor_report *rep = NULL;
  double t0 = now();
  int r = vstor_mirror(v, "rbd:rbd2/vm-disk-copy", NULL, 0, &job, &rep);
  print_report(rep);
  vstor_report_free(rep);
  check(r == 0, "mirror onto rbd:rbd2/vm-disk-copy started");
  if (r < 0) { gsh(WRITER_STOP, NULL, true); return; }
  r = vstor_job_wait(job, 120000, 0);
  double t_ready = now() - t0;
  check(r == 0 && vstor_job_state(job) == VSTOR_JOB_READY, "READY in %.0f ms (%s)", t_ready * 1000,
        vstor_job_state_name(vstor_job_state(job)));
  printf("# FIGURE mirror-ready-ms %.0f\n", t_ready * 1000);
  check(img_size(io_rbd2, "vm-disk-copy") == 320ull << 20, "librbd: destination created with the source's size");
  t0 = now();
  r = vstor_job_pivot(job, 0);
  double t_piv = now() - t0;
  check(r == 0 && vstor_job_state(job) == VSTOR_JOB_PIVOTED, "pivot in %.0f ms", t_piv * 1000);
  printf("# FIGURE pivot-ms %.0f\n", t_piv * 1000);
  vstor_job_free(job);
  char *src = disk_src_name("vdb");
  check(src && !strcmp(src, "rbd2/vm-disk-copy"), "domain XML now names rbd2/vm-disk-copy (%s)", src ? src : "?");
  free(src);
  char *l0 = gout("wc -l < /mnt/r/log");
  sleep(1);
  char *l1 = gout("wc -l < /mnt/r/log");
  check(l0 && l1 && atoi(l1) > atoi(l0), "guest still writes after the pivot (%s -> %s lines)", l0 ? l0 : "?", l1 ? l1 : "?");
  free(l0); free(l1);
  gsh(WRITER_STOP, NULL, true);
  char *s1 = gout(SUMS);
  char *s2 = gout(SUMS);
  check(s1 && s2 && !strcmp(s1, s2) && strlen(s1) > 10, "guest checksums stable after the pivot, caches dropped (%s)", s1 ? s1 : "?");
  free(s1); free(s2);
  char *big1 = gout("echo 3 > /proc/sys/vm/drop_caches; md5sum /mnt/r/big /mnt/r/marker /mnt/r/f");
  check(big0 && big1 && !strcmp(big0, big1), "data written before the mirror reads back the same from the copy (md5, caches dropped)");
  free(big0); free(big1);
  check(img_contains(io_rbd2, "vm-disk-copy", NULL, "AFTER-SNAP-MARKER-9c1d"), "the copy holds the guest's earlier data");
  check(img_exists(io_rbd, "vm-disk"), "the old image rbd/vm-disk is left in place");
  vstor_vol_refresh(v);
  const vstor_layer *s = vstor_vol_layer(v, 0);
  check(s && !strcmp(vstor_layer_path(s), "rbd2/vm-disk-copy"), "layers follow the pivot (%s)", s ? vstor_layer_path(s) : "?");
}

static void t_mirror_cancel_errors(vstor_vol *v)
{
  vstor_job *job = NULL;
  int r = vstor_mirror(v, "rbd:rbd/vm-disk-x", NULL, 0, &job, NULL);
  check(r == 0, "mirror onto rbd:rbd/vm-disk-x started");
  if (r == 0) {
    usleep(300000);
    r = vstor_job_cancel(job, 0);
    check(r == 0 && vstor_job_state(job) == VSTOR_JOB_CANCELLED, "cancel (%s)", vstor_job_state_name(vstor_job_state(job)));
    vstor_job_free(job);
    char *src = disk_src_name("vdb");
    check(src && !strcmp(src, "rbd2/vm-disk-copy"), "domain still on rbd2/vm-disk-copy after cancel");
    free(src);
    check(!img_exists(io_rbd, "vm-disk-x"), "the destination image was removed");
  }
  /* REUSE_DEST: an image of the disk's size made beforehand is used and,
   * on cancel, left in place (not ours) */
  rbd_image_options_t opts;
  rbd_image_options_create(&opts);
  rbd_create4(io_rbd, "vm-disk-r", 320ull << 20, opts);
  job = NULL;
  r = vstor_mirror(v, "rbd:rbd/vm-disk-r", NULL, VSTOR_MIRROR_REUSE_DEST, &job, NULL);
  check(r == 0 && vstor_job_wait(job, 120000, 0) == 0, "REUSE_DEST mirror onto a pre-made image: READY");
  if (r == 0) {
    check(vstor_job_cancel(job, 0) == 0, "cancel it");
    vstor_job_free(job);
  }
  check(img_exists(io_rbd, "vm-disk-r"), "the reused image is left in place after cancel");
  rbd_remove(io_rbd, "vm-disk-r");
  r = vstor_mirror(v, "rbd:rbd/vm-disk-r", NULL, VSTOR_MIRROR_REUSE_DEST, &job, NULL);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOENT, "REUSE_DEST without the image: NOENT");
  rbd_create4(io_rbd, "vm-disk-e", 1 << 20, opts);
  rbd_image_options_destroy(opts);
  job = NULL;
  r = vstor_mirror(v, "rbd:rbd/vm-disk-e", NULL, 0, &job, NULL);
  check(r < 0 && vstor_last_code() == VSTOR_E_EXIST, "existing destination: EXIST (%s)", vstor_last_error());
  check(img_size(io_rbd, "vm-disk-e") == 1 << 20, "... left as it was");
  rbd_remove(io_rbd, "vm-disk-e");
  r = vstor_mirror(v, "rbd:nopool/vm-disk-n", NULL, 0, &job, NULL);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOENT, "unknown pool: NOENT (%s)", vstor_last_error());
  r = vstor_mirror(v, "/tmp/file.raw", NULL, 0, &job, NULL);
  check(r < 0 && vstor_last_code() == VSTOR_E_INVAL, "file destination for an RBD disk: INVAL");
}

/* Dry runs change nothing; a freeze window too short for the snapshot
 * ends in TIMEOUT with the guest thawed and the snapshot removed again. */
static void t_dry_timeout(vstor_vol *v)
{
  vstor_report *rep = NULL;
  int r = vstor_snapshot(v, "s-dry", NULL, VSTOR_DRY_RUN, &rep);
  print_report(rep);
  check(r == 0 && rep && vstor_report_step_count(rep) >= 3, "dry-run snapshot plans freeze, rbd_snap_create, thaw");
  vstor_report_free(rep);
  check(!snap_exists(io_rbd, "vm-disk", "s-dry"), "... and makes no snapshot");
  vstor_job *job = (vstor_job *)1;
  rep = NULL;
  r = vstor_mirror(v, "rbd:rbd2/vm-disk-dry", NULL, VSTOR_DRY_RUN, &job, &rep);
  check(r == 0 && job == NULL && rep && vstor_report_step_count(rep) >= 2 && !img_exists(io_rbd2, "vm-disk-dry"),
        "dry-run mirror plans rbd_create2 + block copy, creates nothing");
  vstor_report_free(rep);
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_freeze_timeout_ms(o, 1);
  rep = NULL;
  r = vstor_snapshot(v, "s-tmo", o, 0, &rep);
  print_report(rep);
  vstor_opts_free(o);
  check(r < 0 && vstor_last_code() == VSTOR_E_TIMEOUT, "1 ms freeze window: TIMEOUT (%s)", vstor_last_error());
  vstor_report_free(rep);
  char *fs = freeze_status();
  check(!strcmp(fs, "thawed"), "guest thawed after the timeout (%s)", fs);
  free(fs);
  check(!snap_exists(io_rbd, "vm-disk", "s-tmo"), "the late snapshot was removed again");
}

/* A child is killed right before the pivot: recover aborts the block job
 * and removes the image it created; the guest stays on its source. */
static void t_killed_mirror(void)
{
  pid_t p = fork();
  if (p == 0) {
    setenv("VSTOR_FAULT", "libvirt-before-pivot", 1);
    execl("/proc/self/exe", "test-rbd-libvirt", "child-mirror", "rbd:rbd/vm-disk-k", (char *)NULL);
    _exit(127);
  }
  int st;
  waitpid(p, &st, 0);
  check(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child killed at READY, before the pivot");
  check(img_exists(io_rbd, "vm-disk-k"), "its destination image exists");
  vstor_report *rep = NULL;
  int r = vstor_recover(ctx, 0, &rep);
  print_report(rep);
  vstor_report_free(rep);
  check(r == 0, "vstor_recover succeeds");
  virDomainBlockJobInfo bi;
  check(virDomainGetBlockJobInfo(dom, "vdb", &bi, 0) == 0, "no block job left on vdb");
  check(!img_exists(io_rbd, "vm-disk-k"), "the half-made destination image was removed");
  char *src = disk_src_name("vdb");
  check(src && !strcmp(src, "rbd2/vm-disk-copy"), "domain still on rbd2/vm-disk-copy");
  free(src);
}

/* The rbd: URI of the image the guest runs on. */
static void t_rbd_side(void)
{
  char *c = pct(LCONF), *lu = pct(LURI);
  char *u = NULL;
  if (asprintf(&u, "rbd:rbd2/vm-disk-copy?conf=%s&libvirt=%s", c, lu) < 0) u = NULL;
  vstor_vol *rv = NULL;
  int r = vstor_open(ctx, u, 0, &rv);
  check(r == 0, "open %s", u);
  if (r < 0) { free(u); free(c); free(lu); return; }
  const vstor_layer *h = layer_role(rv, "hypervisor");
  check(h && !strcmp(vstor_layer_type(h), "libvirt") && strstr(vstor_layer_path(h), "/vdb"),
        "rbd: volume shows the domain above as a hypervisor layer (%s)", h ? vstor_layer_path(h) : "none");
  char *why = NULL;
  r = vstor_vol_can(rv, VSTOR_OP_MIRROR, 0, &why);
  check(r == 0 && why && strstr(why, "libvirt:"), "can(mirror) on rbd: says to use the libvirt block copy (%s)", why ? why : "");
  free(why);
  vstor_job *job = NULL;
  r = vstor_mirror(rv, "rbd:rbd/vm-disk-m", NULL, 0, &job, NULL);
  check(r < 0 && (vstor_last_code() == VSTOR_E_BUSY || vstor_last_code() == VSTOR_E_NOTSUP) &&
        strstr(vstor_last_error(), "libvirt:"), "migration refused while the guest has it open, naming the libvirt URI (%s)",
        vstor_last_error());
  check(!img_exists(io_rbd, "vm-disk-m"), "... nothing made");
  why = NULL;
  r = vstor_vol_can(rv, VSTOR_OP_FREEZE, 0, &why);
  check(r == 1, "can(freeze) on rbd: answered by the guest's stack (%s)", why ? why : "yes");
  free(why);
  /* extend through the stack from the rbd: URI */
  vstor_report *rep = NULL;
  r = vstor_extend(rv, 384ull << 20, NULL, VSTOR_EXTEND_RESIZE_FS, &rep);
  print_report(rep);
  vstor_report_free(rep);
  check(r == 0 && guest_bytes("vdb") == 384ull << 20 && img_size(io_rbd2, "vm-disk-copy") == 384ull << 20,
        "extend via the rbd: URI reaches the guest (%llu bytes)", guest_bytes("vdb"));
  rep = NULL;
  r = vstor_snapshot(rv, "s-rbd", NULL, 0, &rep);
  check(r == 0 && rep && vstor_report_consistency(rep) == VSTOR_CONSISTENT_FS && snap_exists(io_rbd2, "vm-disk-copy", "s-rbd"),
        "snapshot via the rbd: URI freezes the guest (consistency %d)", rep ? vstor_report_consistency(rep) : -1);
  vstor_report_free(rep);
  vstor_close(rv);
  free(u);
  /* the old image, which the guest left at the pivot: no guest above, so
   * RBD live migration is what applies */
  if (asprintf(&u, "rbd:rbd/vm-disk?conf=%s&libvirt=%s", c, lu) < 0) u = NULL;
  rv = NULL;
  r = vstor_open(ctx, u, 0, &rv);
  check(r == 0 && !layer_role(rv, "hypervisor") && vstor_layer_prop(vstor_vol_layer(rv, 0), "guest"),
        "old image: no guest above (%s)", r == 0 && vstor_layer_prop(vstor_vol_layer(rv, 0), "guest") ?
        vstor_layer_prop(vstor_vol_layer(rv, 0), "guest") : "?");
  why = NULL;
  r = r == 0 ? vstor_vol_can(rv, VSTOR_OP_MIRROR, 0, &why) : -1;
  check(r == 1, "old image: can(mirror) = yes (RBD live migration, nobody has it open) %s", why ? why : "");
  free(why);
  if (rv) vstor_close(rv);
  free(u); free(c); free(lu);
}

/* Agent gone: refused unless CRASH_CONSISTENT, then CRASH. */
static void t_no_agent(vstor_vol *v)
{
  gsh("kill $(pidof qemu-ga)", NULL, false);
  sleep(1);
  vstor_vol_refresh(v);
  int r = vstor_snapshot(v, "s-noagent", NULL, 0, NULL);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOTSUP, "no agent: snapshot refused with NOTSUP (%s)", vstor_last_error());
  check(!snap_exists(io_rbd2, "vm-disk-copy", "s-noagent"), "... nothing made");
  vstor_report *rep = NULL;
  r = vstor_snapshot(v, "s-crash", NULL, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &rep);
  check(r == 0 && rep && vstor_report_consistency(rep) == VSTOR_CONSISTENT_CRASH &&
        snap_exists(io_rbd2, "vm-disk-copy", "s-crash"), "CRASH_CONSISTENT: snapshot made, reported CRASH");
  vstor_report_free(rep);
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  LURI = getenv("LAB_URI"); LDOM = getenv("LAB_DOM"); LVM = getenv("LAB_VM"); LCONF = getenv("CEPH_CONF");
  if (!LURI || !LDOM || !LVM || !LCONF) {
    printf("Bail out! LAB_URI/LAB_DOM/LAB_VM/CEPH_CONF not set: run through run-lab.sh\n");
    return 1;
  }
  virSetErrorFunc(NULL, silent);
  if (!(conn = virConnectOpen(LURI)) || !(dom = virDomainLookupByName(conn, LDOM)))
    die("cannot reach the lab domain");
  char sd[4096];
  snprintf(sd, sizeof sd, "%s/state", LVM);
  setenv("VSTOR_STATE_DIR", sd, 1);
  if (!(ctx = vstor_ctx_new(0)) || vstor_ctx_set_state_dir(ctx, sd) < 0)
    die("vstor_ctx_new");
  vstor_ctx_set_log(ctx, logfn, NULL, VSTOR_LOG_INFO);
  char *c = pct(LCONF), *lu = pct(LURI);
  if (asprintf(&LVURI, "libvirt:%s/vdb?uri=%s&conf=%s", LDOM, lu, c) < 0) die("asprintf");
  free(c); free(lu);
  vstor_vol *v = NULL;
  if (!strcmp(argc > 1 ? argv[1] : "", "child-snapshot") && argc > 2) {
    if (vstor_open(ctx, LVURI, 0, &v) == 0)
      vstor_snapshot(v, argv[2], NULL, 0, NULL);
    return 4;  /* not reached: VSTOR_FAULT kills this process while frozen */
  }
  if (!strcmp(argc > 1 ? argv[1] : "", "child-mirror") && argc > 2) {
    vstor_job *job = NULL;
    if (vstor_open(ctx, LVURI, 0, &v) == 0 && vstor_mirror(v, argv[2], NULL, 0, &job, NULL) == 0 &&
        vstor_job_wait(job, 120000, 0) == 0)
      vstor_job_pivot(job, 0);
    return 4;  /* not reached: VSTOR_FAULT kills this process before the pivot */
  }
  if (rados_create2(&cl, "ceph", "client.admin", 0) < 0 || rados_conf_read_file(cl, LCONF) < 0 ||
      rados_connect(cl) < 0 || rados_ioctx_create(cl, "rbd", &io_rbd) < 0 ||
      rados_ioctx_create(cl, "rbd2", &io_rbd2) < 0)
    die("librados connection to the lab cluster");
  printf("# lab: %s, domain %s, boot %s ms\n", LURI, LDOM, getenv("LAB_BOOT_MS") ? getenv("LAB_BOOT_MS") : "?");
  double t0 = now();
  int r = vstor_open(ctx, LVURI, 0, &v);
  check(r == 0, "open %s (%.0f ms)", LVURI, (now() - t0) * 1000);
  if (r < 0) die("vstor_open");
  t_layers(v);
  t_extend(v);
  t_snapshot(v);
  t_killed_frozen("libvirt-snapshot-frozen", "s-killed");
  /* inside the rbd layer, right after rbd_snap_create: both journal
   * records (libvirt: frozen, phase snapshot; rbd: snapshot made) */
  t_killed_frozen("rbd-snapshot-after-create", "s-killed2");
  vstor_vol_refresh(v);
  t_dry_timeout(v);
  t_mirror(v);
  t_mirror_cancel_errors(v);
  t_killed_mirror();
  t_rbd_side();
  t_no_agent(v);
  vstor_close(v);
  vstor_ctx_free(ctx);
  rados_ioctx_destroy(io_rbd);
  rados_ioctx_destroy(io_rbd2);
  rados_shutdown(cl);
  virDomainFree(dom);
  virConnectClose(conn);
  printf("1..%d\n%d passed, %d failed\n", npass + nfail, npass, nfail);
  return nfail ? 1 : 0;
}
