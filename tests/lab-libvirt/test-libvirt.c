/* lab-libvirt: libvstor's libvirt backend against a real libvirtd and a
 * running QEMU (TCG) guest with qemu-ga.  Run through run-lab.sh, which
 * boots the guest and exports LAB_URI, LAB_DOM, LAB_VM.
 *
 * Usage: test-libvirt transient|persistent
 *   transient   open errors, layers, extend (raw + fs, qcow2), snapshot with a
 *               writer, freeze guard on kill + recover, mirror+pivot with a
 *               writer and checksums, pivot before READY, cancel, complete,
 *               agent missing, domain not running
 *   persistent  mirror+pivot of a persistent domain (transient job): the
 *               domain stays defined and its definition points at the copy
 *
 * Outcomes are checked from outside libvstor: the guest (through the
 * agent), libvirt's domain XML, the image files on the host.
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

#include "vstor.h"

static const char *LURI, *LDOM, *LVM;
#include "lab-guest.h"

/* ---- host side ------------------------------------------------------ */

static char *disk_source(virDomainPtr d, const char *target, unsigned xflags)
{
  char *xml = virDomainGetXMLDesc(d, xflags);
  if (!xml) return NULL;
  char key[64];
  snprintf(key, sizeof key, "<target dev='%s'", target);
  char *t = strstr(xml, key), *res = NULL;
  if (t) {
    char *disk = t;
    while (disk > xml && strncmp(disk, "<disk ", 6)) disk--;
    char *s = strstr(disk, "<source file='");
    if (s && s < t) {
      s += 14;
      res = strndup(s, strcspn(s, "'"));
    }
  }
  free(xml);
  return res;
}

static int run(const char *const argv[])
{
  pid_t p = fork();
  if (p == 0) {
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  int st;
  waitpid(p, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

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

static char *vuri(const char *domname, const char *disk)
{
  char *c = pct(LURI), *u = malloc(strlen(c) + strlen(domname) + strlen(disk) + 32);
  sprintf(u, "libvirt:%s/%s?uri=%s", domname, disk, c);
  free(c);
  return u;
}

static char *vmpath(const char *name)
{
  char *p = malloc(strlen(LVM) + strlen(name) + 2);
  sprintf(p, "%s/%s", LVM, name);
  return p;
}

static unsigned long long fsize(const char *p)
{
  struct stat st;
  return stat(p, &st) == 0 ? (unsigned long long)st.st_size : 0;
}

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

/* The writer stops itself between writes when asked (killing its shell
 * would leave a running dd writing after the checksums were taken). */
#define WRITER_START "rm -f /tmp/writer.stop /tmp/writer.done; i=0; while [ ! -e /tmp/writer.stop ]; do " \
                     "i=$((i+1)); echo line $i >> /mnt/a/log; " \
                     "dd if=/dev/urandom of=/mnt/a/w bs=64k count=4 conv=notrunc 2>/dev/null; done; " \
                     "touch /tmp/writer.done"
#define WRITER_STOP "touch /tmp/writer.stop; n=0; while [ ! -e /tmp/writer.done ] && [ $n -lt 300 ]; do " \
                    "sleep 0.1; n=$((n+1)); done; sync"
#define SUMS "sync; echo 3 > /proc/sys/vm/drop_caches; cd /mnt/a && sha256sum f log w | sha256sum"

/* ---- the tests ------------------------------------------------------ */

static void t_open_errors(void)
{
  vstor_vol *v = NULL;
  char *u = vuri("no-such-domain-xyz", "vda");
  int r = vstor_open(ctx, u, 0, &v);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOENT, "unknown domain: NOENT (%s)",
        r < 0 ? vstor_last_error() : "opened!");
  if (r == 0) vstor_close(v);
  free(u);
  u = vuri(LDOM, "vdz");
  r = vstor_open(ctx, u, 0, &v);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOENT, "unknown disk: NOENT (%s)",
        r < 0 ? vstor_last_error() : "opened!");
  if (r == 0) vstor_close(v);
  free(u);
}

static void t_layers(vstor_vol *v)
{
  size_t n = vstor_vol_layer_count(v);
  for (size_t i = 0; i < n; i++) {
    const vstor_layer *l = vstor_vol_layer(v, i);
    printf("#   layer %zu: %s %s %s %llu\n", i, vstor_layer_role(l), vstor_layer_type(l),
           vstor_layer_path(l), (unsigned long long)vstor_layer_size(l));
  }
  char *raw = vmpath("vda.raw");
  const vstor_layer *b = vstor_vol_layer(v, 0), *h = layer_role(v, "hypervisor"),
                    *f = layer_role(v, "filesystem");
  check(n == 3 && b && !strcmp(vstor_layer_type(b), "file") && !strcmp(vstor_layer_path(b), raw),
        "bottom layer is the source file %s", raw);
  check(h && !strcmp(vstor_layer_type(h), "libvirt") && vstor_layer_size(h) == 256ull << 20,
        "hypervisor layer libvirt, 256 MiB");
  check(f && !strcmp(vstor_layer_type(f), "ext4") && vstor_layer_prop(f, "mountpoint") &&
        !strcmp(vstor_layer_prop(f, "mountpoint"), "/mnt/a"),
        "guest filesystem layer ext4 at /mnt/a (guest agent)");
  free(raw);
  static const int ops[] = { VSTOR_OP_FREEZE, VSTOR_OP_EXTEND_ONLINE, VSTOR_OP_RESIZE_FS,
                             VSTOR_OP_SNAPSHOT, VSTOR_OP_MIRROR };
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    char *why = NULL;
    int c = vstor_vol_can(v, ops[i], 0, &why);
    check(c == 1, "can %s %s", vstor_op_name(ops[i]), why ? why : "");
    free(why);
  }
}

static void t_extend(vstor_vol *v)
{
  char *raw = vmpath("vda.raw");
  char *df0 = gout("df -k /mnt/a | awk 'NR==2{print $2}'");
  uint64_t ns = 320ull << 20;
  vstor_report *rep = NULL;
  double t0 = now();
  int r = vstor_extend(v, ns, NULL, VSTOR_EXTEND_RESIZE_FS, &rep);
  double dt = now() - t0;
  print_report(rep);
  check(r == 0, "extend vda 256M -> 320M with RESIZE_FS (%.2f s)", dt);
  check(fsize(raw) == ns, "host: source file is %llu bytes", fsize(raw));
  check(guest_bytes("vda") == ns, "guest: /sys/block/vda/size says %llu bytes", guest_bytes("vda"));
  char *df1 = gout("df -k /mnt/a | awk 'NR==2{print $2}'");
  check(df0 && df1 && strtoull(df1, NULL, 10) > strtoull(df0, NULL, 10) + 50000,
        "guest: ext4 grew online (%s KiB -> %s KiB)", df0 ? df0 : "?", df1 ? df1 : "?");
  vstor_report_free(rep);
  rep = NULL;
  r = vstor_extend(v, 100ull << 20, NULL, 0, &rep);
  check(r < 0 && vstor_last_code() == VSTOR_E_INVAL && fsize(raw) == ns,
        "shrink refused (INVAL), nothing changed");
  vstor_report_free(rep);
  free(df0); free(df1); free(raw);

  /* qcow2: grown by QEMU (block_resize), the file is not truncated */
  vstor_vol *q = NULL;
  char *u = vuri(LDOM, "vdb");
  if (vstor_open(ctx, u, 0, &q) < 0) { check(false, "open vdb"); free(u); return; }
  free(u);
  char *qc = vmpath("vdb.qcow2");
  unsigned long long f0 = fsize(qc);
  rep = NULL;
  r = vstor_extend(q, 192ull << 20, NULL, 0, &rep);
  print_report(rep);
  vstor_report_free(rep);
  check(r == 0 && guest_bytes("vdb") == 192ull << 20, "extend qcow2 vdb 128M -> 192M, guest sees %llu",
        guest_bytes("vdb"));
  char cmd[512];
  snprintf(cmd, sizeof cmd, "qemu-img info -U %s | grep -q 'virtual size: 192 MiB'", qc);
  const char *argv[] = { "sh", "-c", cmd, NULL };
  check(run(argv) == 0 && fsize(qc) < (64ull << 20) && f0 < (64ull << 20),
        "host: qcow2 virtual size 192 MiB, file stays small (%llu bytes: not truncated)", fsize(qc));
  free(qc);
  vstor_close(q);
}

static void t_snapshot(vstor_vol *v)
{
  char *raw = vmpath("vda.raw"), *snap = vmpath("snap1.qcow2");
  gsh(WRITER_START, NULL, false);
  usleep(500000);
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_freeze_timeout_ms(o, 10000);
  vstor_report *rep = NULL;
  double t0 = now();
  int r = vstor_snapshot(v, snap, o, 0, &rep);
  double dt = now() - t0;
  print_report(rep);
  check(r == 0, "snapshot with a writer running (%.3f s)", dt);
  uint64_t fz = rep ? vstor_report_frozen_us(rep) : 0;
  check(fz > 0 && fz < 10000000, "frozen window reported: %.1f ms", fz / 1000.0);
  printf("# FIGURE snapshot_frozen_ms=%.1f total_ms=%.1f\n", fz / 1000.0, dt * 1000);
  check(rep && vstor_report_consistency(rep) == VSTOR_CONSISTENT_FS, "consistency FS (agent freeze)");
  char *st = freeze_status();
  check(!strcmp(st, "thawed"), "agent says %s after the snapshot", st);
  free(st);
  char *src = disk_source(dom, "vda", 0);
  check(src && !strcmp(src, snap), "domain writes into the overlay %s", src ? src : "?");
  free(src);
  char *l1 = gout("wc -l < /mnt/a/log");
  usleep(500000);
  char *l2 = gout("wc -l < /mnt/a/log");
  check(l1 && l2 && atol(l2) > atol(l1), "guest writer still writing after thaw (%s -> %s lines)",
        l1 ? l1 : "?", l2 ? l2 : "?");
  free(l1); free(l2);
  const char *fsck[] = { "e2fsck", "-fn", raw, NULL };
  check(run(fsck) == 0, "host: e2fsck -fn on the point-in-time image %s is clean", raw);
  vstor_report_free(rep);
  rep = NULL;
  r = vstor_snapshot(v, snap, o, 0, &rep);
  check(r < 0 && vstor_last_code() == VSTOR_E_EXIST, "snapshot onto an existing file: EXIST");
  vstor_report_free(rep);
  /* a window too short for the snapshot: abandoned (overlay committed back
   * and removed), guest thawed, TIMEOUT */
  char *snapt = vmpath("snap-timeout.qcow2");
  vstor_opts_set_freeze_timeout_ms(o, 1);
  rep = NULL;
  r = vstor_snapshot(v, snapt, o, 0, &rep);
  print_report(rep);
  vstor_report_free(rep);
  struct stat sb;
  char *stt = freeze_status(), *srct = disk_source(dom, "vda", 0);
  check(r < 0 && vstor_last_code() == VSTOR_E_TIMEOUT, "1 ms freeze window: TIMEOUT");
  check(!strcmp(stt, "thawed") && srct && !strcmp(srct, snap) && stat(snapt, &sb) < 0,
        "after the timeout: guest %s, domain back on %s, no overlay left", stt, srct ? srct : "?");
  free(stt); free(srct); free(snapt);
  vstor_opts_set_freeze_timeout_ms(o, 10000);
  vstor_opts_free(o);
  gsh(WRITER_STOP, NULL, true);
  free(raw); free(snap);
}

/* A child is killed (VSTOR_FAULT) while the guest is frozen: the guard
 * thaws, recover finds nothing frozen and succeeds. */
static void t_killed_frozen(void)
{
  char *snap = vmpath("snap-killed.qcow2");
  pid_t p = fork();
  if (p == 0) {   /* a fresh process (exec): libvirt is not fork-safe */
    setenv("VSTOR_FAULT", "libvirt-snapshot-frozen", 1);
    execl("/proc/self/exe", "test-libvirt", "child-snapshot", snap, (char *)NULL);
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
  rep = NULL;
  r = vstor_recover(ctx, 0, &rep);
  check(r == 0 && (!rep || vstor_report_step_count(rep) == 0), "recover again: nothing left (idempotent)");
  vstor_report_free(rep);
  struct stat sb;
  check(stat(snap, &sb) < 0, "no half-made snapshot left");
  char *src = disk_source(dom, "vda", 0);
  char *s1 = vmpath("snap1.qcow2");
  check(src && !strcmp(src, s1), "domain still on %s", s1);
  free(src); free(s1); free(snap);
}

static char ready_how[256];
static void logfn(void *o, int level, const char *msg)
{
  (void)o;
  if (getenv("LAB_DEBUG")) fprintf(stderr, "LOG %d: %s\n", level, msg);
  const char *r = strstr(msg, "READY (");
  if (r) snprintf(ready_how, sizeof ready_how, "%s", r);
}

static void t_mirror(vstor_vol *v, bool persistent)
{
  char *copy = vmpath("copy.qcow2");
  gsh(WRITER_START, NULL, false);
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_speed(o, 1 << 20);   /* slow at first: pivot before READY */
  vstor_job *job = NULL;
  double t0 = now();
  int r = vstor_mirror(v, copy, o, 0, &job, NULL);
  check(r == 0 && job, "mirror started to %s (1 MiB/s)", copy);
  if (!job) { vstor_opts_free(o); free(copy); gsh(WRITER_STOP, NULL, true); return; }
  r = vstor_job_pivot(job, 0);
  check(r < 0 && vstor_last_code() == VSTOR_E_STATE, "pivot before READY refused: STATE (%s)",
        vstor_job_state_name(vstor_job_state(job)));
  uint64_t d = 0, t = 0;
  for (int i = 0; i < 30 && t == 0; i++) { usleep(100000); vstor_job_progress(job, &d, &t); }
  check(t > 0 && d <= t, "progress measured: %llu of %llu", (unsigned long long)d, (unsigned long long)t);
  vstor_job_set_speed(job, 0);
  r = vstor_job_wait(job, 120000, 0);
  double t_ready = now() - t0;
  check(r == 0 && vstor_job_state(job) == VSTOR_JOB_READY, "READY after %.2f s", t_ready);
  check(strstr(ready_how, "BLOCK_JOB_2 event") != NULL, "READY seen through the block-job event (%s)", ready_how);
  gsh(WRITER_STOP, NULL, true);
  char *s0 = gout(SUMS);
  double t1 = now();
  r = vstor_job_pivot(job, 0);
  double t_pivot = now() - t1;
  check(r == 0 && vstor_job_state(job) == VSTOR_JOB_PIVOTED, "pivot (%.3f s)", t_pivot);
  printf("# FIGURE mirror_ready_s=%.2f pivot_ms=%.1f\n", t_ready, t_pivot * 1000);
  char *s1 = gout(SUMS);
  check(s0 && s1 && !strcmp(s0, s1), "guest checksums equal across the pivot (%.12s)", s1 ? s1 : "?");
  char *src = disk_source(dom, "vda", 0);
  check(src && !strcmp(src, copy), "domain disk source is the copy (%s)", src ? src : "?");
  free(src);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "qemu-img info -U --output=json %s | grep -q '\"format\": \"qcow2\"'", copy);
  const char *qi[] = { "sh", "-c", cmd, NULL };
  check(run(qi) == 0, "the copy is a qcow2 image (format from the destination name)");
  if (persistent) {
    src = disk_source(dom, "vda", VIR_DOMAIN_XML_INACTIVE);
    check(src && !strcmp(src, copy), "persistent definition points at the copy (%s)", src ? src : "?");
    free(src);
    check(virDomainIsPersistent(dom) == 1, "domain still defined (transient job, never undefined)");
  }
  const vstor_layer *b = vstor_vol_layer(v, 0);
  check(b && !strcmp(vstor_layer_path(b), copy), "volume layers refreshed: bottom is %s",
        b ? vstor_layer_path(b) : "?");
  char *w = gout("echo after-pivot >> /mnt/a/f && sync && tail -1 /mnt/a/f");
  check(w && !strcmp(w, "after-pivot"), "guest writes on the copy");
  free(w); free(s0); free(s1);
  vstor_job_free(job);
  vstor_opts_free(o);
  free(copy);
}

static void t_cancel_complete(vstor_vol *v)
{
  char *copy = vmpath("copy.qcow2"), *c2 = vmpath("copy2.qcow2"), *c3 = vmpath("copy3.qcow2");
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_speed(o, 1 << 20);
  vstor_job *job = NULL;
  int r = vstor_mirror(v, c2, o, 0, &job, NULL);
  check(r == 0, "mirror to %s started", c2);
  if (job) {
    usleep(300000);
    r = vstor_job_cancel(job, 0);
    check(r == 0 && vstor_job_state(job) == VSTOR_JOB_CANCELLED, "cancel: CANCELLED");
    vstor_job_free(job);
  }
  char *src = disk_source(dom, "vda", 0);
  struct stat sb;
  check(src && !strcmp(src, copy) && stat(c2, &sb) < 0, "cancel leaves the source (%s), copy removed",
        src ? src : "?");
  free(src);
  job = NULL;
  r = vstor_mirror(v, c3, NULL, 0, &job, NULL);
  if (r == 0) r = vstor_job_wait(job, 120000, 0);
  check(r == 0 && vstor_job_state(job) == VSTOR_JOB_READY, "mirror to %s READY", c3);
  if (job) {
    r = vstor_job_complete(job, 0);
    check(r == 0 && vstor_job_state(job) == VSTOR_JOB_COMPLETED, "complete: COMPLETED");
    vstor_job_free(job);
  }
  src = disk_source(dom, "vda", 0);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "qemu-img check -q %s && qemu-img convert -O raw %s %s/c3.raw && e2fsck -fn %s/c3.raw >/dev/null",
           c3, c3, LVM, LVM);
  const char *argv[] = { "sh", "-c", cmd, NULL };
  check(src && !strcmp(src, copy) && run(argv) == 0,
        "complete: domain stays on its source, the point-in-time copy checks clean (qemu-img check, e2fsck)");
  free(src);
  vstor_opts_free(o);
  free(copy); free(c2); free(c3);
}

/* The copy runs out of space inside QEMU (LAB_SMALL is a 1 MiB tmpfs in
 * libvirtd's namespace): the job must end FAILED, not READY. */
static void t_mirror_fails(vstor_vol *v)
{
  const char *small = getenv("LAB_SMALL");
  char *dst = malloc(strlen(small) + 32);
  sprintf(dst, "%s/nospace.raw", small);
  vstor_job *job = NULL;
  int r = vstor_mirror(v, dst, NULL, 0, &job, NULL);
  check(r == 0, "mirror to a 1 MiB filesystem started");
  if (job) {
    r = vstor_job_wait(job, 120000, 0);
    int st = vstor_job_state(job);
    check(r < 0 && st == VSTOR_JOB_FAILED && strstr(vstor_last_error(), "FAILED"),
          "QEMU ran out of space: job %s, wait says %s (%s)",
          vstor_job_state_name(st), vstor_code_name(vstor_last_code()), r < 0 ? vstor_last_error() : "");
    vstor_job_free(job);
  }
  char *src = disk_source(dom, "vda", 0), *copy = vmpath("copy.qcow2");
  virDomainBlockJobInfo bi;
  check(src && !strcmp(src, copy) && virDomainGetBlockJobInfo(dom, "vda", &bi, 0) == 0,
        "domain still on %s, no block job left", src ? src : "?");
  free(src); free(copy); free(dst);
}

/* A process killed while its mirror is READY (just before pivot): recover
 * stops the copy job and removes the copy; the domain stays on its source. */
static void t_killed_mirror(void)
{
  char *dst = vmpath("killed-copy.qcow2"), *copy = vmpath("copy.qcow2");
  pid_t p = fork();
  if (p == 0) {
    setenv("VSTOR_FAULT", "libvirt-before-pivot", 1);
    execl("/proc/self/exe", "test-libvirt", "child-mirror", dst, (char *)NULL);
    _exit(127);
  }
  int st;
  waitpid(p, &st, 0);
  virDomainBlockJobInfo bi;
  check(WIFSIGNALED(st) && virDomainGetBlockJobInfo(dom, "vda", &bi, 0) == 1,
        "child killed with its copy job READY; the job is still running in QEMU");
  vstor_report *rep = NULL;
  int r = vstor_recover(ctx, 0, &rep);
  print_report(rep);
  vstor_report_free(rep);
  struct stat sb;
  char *src = disk_source(dom, "vda", 0);
  check(r == 0 && virDomainGetBlockJobInfo(dom, "vda", &bi, 0) == 0 && stat(dst, &sb) < 0 &&
        src && !strcmp(src, copy), "recover: copy job stopped, half-made copy removed, domain on %s",
        src ? src : "?");
  free(src); free(dst); free(copy);
}

static void t_agent_missing(vstor_vol *v)
{
  gsh("kill $(cat /run/qemu-ga.pid)", NULL, false);
  char *why = NULL;
  int c = 1;
  for (int i = 0; i < 50 && c == 1; i++) {
    usleep(200000);
    free(why); why = NULL;
    c = vstor_vol_can(v, VSTOR_OP_FREEZE, 0, &why);
  }
  check(c == 0, "agent stopped: can FREEZE says no (%s)", why ? why : "");
  free(why);
  char *s = vmpath("snap-noagent.qcow2");
  vstor_report *rep = NULL;
  int r = vstor_snapshot(v, s, NULL, 0, &rep);
  struct stat sb;
  check(r < 0 && vstor_last_code() == VSTOR_E_NOTSUP && stat(s, &sb) < 0,
        "snapshot without agent: NOTSUP, nothing made");
  vstor_report_free(rep);
  rep = NULL;
  r = vstor_snapshot(v, s, NULL, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &rep);
  check(r == 0 && vstor_report_consistency(rep) == VSTOR_CONSISTENT_CRASH && vstor_report_frozen_us(rep) == 0,
        "with CRASH_CONSISTENT: snapshot taken, consistency CRASH, not frozen");
  vstor_report_free(rep);
  free(s);
}

static void t_not_running(void)
{
  char *xmlp = vmpath("dom.xml"), *img = vmpath("off.raw");
  FILE *f = fopen(xmlp, "r");
  char buf[65536];
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = 0;
  /* same guest definition, other name and disks, qga channel dropped */
  char *x = calloc(1, n + 4096), *q = x;
  for (char *p = buf; *p;) {
    if (!strncmp(p, "<name>", 6)) { q += sprintf(q, "<name>vstor-lab-off</name>"); p = strstr(p, "</name>") + 7; }
    else if (!strncmp(p, "<channel", 8)) { p = strstr(p, "</channel>") + 10; }
    else if (!strncmp(p, "<serial", 7)) { p = strstr(p, "</serial>") + 9; }
    else if (!strncmp(p, "<source file='", 14) && strstr(p, "vda.raw") && strstr(p, "vda.raw") < strchr(p, '>')) {
      q += sprintf(q, "<source file='%s'/>", img); p = strchr(p, '>') + 1;
    } else *q++ = *p++;
  }
  const char *mk[] = { "qemu-img", "create", "-q", "-f", "raw", img, "64M", NULL };
  run(mk);
  virDomainPtr d = virDomainDefineXML(conn, x);
  check(d != NULL, "defined an inactive domain vstor-lab-off");
  free(x);
  if (!d) { free(xmlp); free(img); return; }
  vstor_vol *v = NULL;
  char *u = vuri("vstor-lab-off", "vda");
  int r = vstor_open(ctx, u, 0, &v);
  free(u);
  check(r == 0, "open a disk of a domain that is not running");
  if (r == 0) {
    char *why = NULL;
    int cn = vstor_vol_can(v, VSTOR_OP_EXTEND_ONLINE, 0, &why);
    check(cn == 0 && why, "can EXTEND_ONLINE: no (%s)", why ? why : "");
    free(why);
    vstor_job *job = NULL;
    char *c = vmpath("off-copy.raw");
    r = vstor_mirror(v, c, NULL, 0, &job, NULL);
    check(r < 0 && vstor_last_code() == VSTOR_E_STATE, "mirror of a stopped domain: STATE (%s)",
          r < 0 ? vstor_last_error() : "started!");
    if (job) vstor_job_free(job);
    free(c);
    r = vstor_extend(v, 96ull << 20, NULL, 0, NULL);
    check(r == 0 && fsize(img) == 96ull << 20, "offline extend grows the raw file (%llu)", fsize(img));
    r = vstor_extend(v, 128ull << 20, NULL, VSTOR_EXTEND_RESIZE_FS, NULL);
    check(r < 0 && vstor_last_code() == VSTOR_E_NOTSUP && fsize(img) == 96ull << 20,
          "RESIZE_FS on a stopped domain: NOTSUP, nothing changed");
    char *os = vmpath("off-snap.qcow2");
    vstor_report *rep = NULL;
    r = vstor_snapshot(v, os, NULL, 0, &rep);
    print_report(rep);
    char *src = disk_source(d, "vda", VIR_DOMAIN_XML_INACTIVE);
    check(r == 0 && vstor_report_consistency(rep) == VSTOR_CONSISTENT_IDLE && src && !strcmp(src, os),
          "snapshot of a stopped domain: IDLE, definition on the overlay (%s)", src ? src : "?");
    free(src); free(os);
    vstor_report_free(rep);
    vstor_close(v);
  }
  virDomainUndefine(d);
  virDomainFree(d);
  free(xmlp); free(img);
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *mode = argc > 1 ? argv[1] : "transient";
  LURI = getenv("LAB_URI"); LDOM = getenv("LAB_DOM"); LVM = getenv("LAB_VM");
  if (!LURI || !LDOM || !LVM || !getenv("LAB_SMALL")) {
    printf("Bail out! LAB_URI/LAB_DOM/LAB_VM not set: run through run-lab.sh\n");
    return 1;
  }
  virSetErrorFunc(NULL, silent);
  if (!(conn = virConnectOpen(LURI)) || !(dom = virDomainLookupByName(conn, LDOM)))
    die("cannot reach the lab domain");
  char sd[4096];
  snprintf(sd, sizeof sd, "%s/state", LVM);
  setenv("VSTOR_STATE_DIR", sd, 1);  /* also for the child process */
  if (!(ctx = vstor_ctx_new(0)) || vstor_ctx_set_state_dir(ctx, sd) < 0)
    die("vstor_ctx_new");
  vstor_ctx_set_log(ctx, logfn, NULL, VSTOR_LOG_DEBUG);
  printf("# lab: %s, domain %s, boot %s ms\n", LURI, LDOM, getenv("LAB_BOOT_MS") ? getenv("LAB_BOOT_MS") : "?");
  char *u = vuri(LDOM, "vda");
  vstor_vol *v = NULL;
  if (vstor_open(ctx, u, 0, &v) < 0) die("vstor_open vda");
  if (!strcmp(mode, "child-mirror") && argc > 2) {
    vstor_job *job = NULL;
    if (vstor_mirror(v, argv[2], NULL, 0, &job, NULL) == 0 && vstor_job_wait(job, 120000, 0) == 0) {
      printf("# child: READY\n");
      vstor_job_pivot(job, 0);
    }
    return 4;  /* not reached: VSTOR_FAULT kills this process before the pivot */
  }
  if (!strcmp(mode, "child-snapshot") && argc > 2) {
    vstor_snapshot(v, argv[2], NULL, 0, NULL);
    return 4;  /* not reached: VSTOR_FAULT kills this process while frozen */
  }
  free(u);
  if (!strcmp(mode, "persistent")) {
    t_mirror(v, true);
  } else {
    t_open_errors();
    t_layers(v);
    t_extend(v);
    t_snapshot(v);
    t_killed_frozen();
    vstor_vol_refresh(v);
    t_mirror(v, false);
    t_cancel_complete(v);
    t_mirror_fails(v);
    t_killed_mirror();
    t_agent_missing(v);
    t_not_running();
  }
  vstor_close(v);
  vstor_ctx_free(ctx);
  virDomainFree(dom);
  virConnectClose(conn);
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail ? 1 : 0;
}
