/* lab-xen: the Xen backend against a running PV domU, run in dom0.
 *
 * Environment (dom0-scenario.sh): LAB_DOM (domain name), LAB_CONLOG (the
 * domU's console log, where it prints "DOMU: t=N xvdX size=SECTORS" every
 * second), LAB_IMG (the file behind xvda), LAB_IMG2 (a spare image for the
 * attach/detach case), VSTOR_BACKEND_DIR, VSTOR_STATE_DIR.
 * Output: one TAP line ("ok - ..." / "not ok - ...") per check, "# ..."
 * diagnostics and "# figure NAME VALUE" timings.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

#include <libxl.h>
#include <libxl_utils.h>
#include <vstor.h>

static int failures;
static const char *DOM, *CONLOG, *IMG, *IMG2;
static vstor_ctx *C;
static libxl_ctx *XL;
static uint32_t DOMID;

static void check(bool ok, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("%s - ", ok ? "ok" : "not ok");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  if (!ok) {
    failures++;
    printf("# last error: %s (%s)\n", vstor_last_error() ? vstor_last_error() : "none",
           vstor_code_name(vstor_last_code()));
  }
  fflush(stdout);
}

static uint64_t now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void figure(const char *name, double v)
{
  printf("# figure %s %.3f\n", name, v);
  fflush(stdout);
}

/* Last "DOMU: t=N DEV size=S" line for DEV in the console log: *t, *size. */
static bool guest_line(const char *dev, long *t, uint64_t *size)
{
  FILE *f = fopen(CONLOG, "r");
  if (!f) return false;
  char line[512];
  bool found = false;
  char pat[32];
  snprintf(pat, sizeof pat, " %s size=", dev);
  while (fgets(line, sizeof line, f)) {
    char *p = strstr(line, "DOMU: t="), *q = strstr(line, pat);
    if (!p || !q) continue;
    *t = strtol(p + 8, NULL, 10);
    *size = strtoull(q + strlen(pat), NULL, 10) * 512;
    found = true;
  }
  fclose(f);
  return found;
}

/* Wait until the guest reports DEV at >= size bytes; ms taken or -1. */
static long wait_guest_size(const char *dev, uint64_t size, int timeout_ms)
{
  uint64_t t0 = now_ms();
  for (;;) {
    long t;
    uint64_t s;
    if (guest_line(dev, &t, &s) && s >= size) return (long)(now_ms() - t0);
    if (now_ms() - t0 > (uint64_t)timeout_ms) return -1;
    usleep(100000);
  }
}

/* Is the guest running: its counter advances within timeout_ms. */
static bool guest_advances(int timeout_ms)
{
  long t0 = -1, t;
  uint64_t s;
  guest_line("xvda", &t0, &s);
  uint64_t start = now_ms();
  while (now_ms() - start < (uint64_t)timeout_ms) {
    if (guest_line("xvda", &t, &s) && t > t0) return true;
    usleep(200000);
  }
  return false;
}

static int dom_paused(void)
{
  libxl_dominfo di;
  libxl_dominfo_init(&di);
  int r = libxl_domain_info(XL, &di, DOMID) == 0 ? di.paused : -1;
  libxl_dominfo_dispose(&di);
  return r;
}

static void print_report(const vstor_report *r)
{
  for (size_t i = 0; i < vstor_report_step_count(r); i++)
    printf("#   step %zu [%s] %s: %s (%s)\n", i, vstor_report_step_layer(r, i),
           vstor_report_step_action(r, i), vstor_report_step_detail(r, i) ?: "",
           (const char *[]){ "planned", "done", "skipped", "failed", "undone" }[vstor_report_step_status(r, i)]);
}

static void print_layers(vstor_vol *v)
{
  for (size_t i = 0; i < vstor_vol_layer_count(v); i++) {
    const vstor_layer *l = vstor_vol_layer(v, i);
    printf("#   layer %zu %s %s %s %" PRIu64, i, vstor_layer_role(l), vstor_layer_type(l),
           vstor_layer_path(l), vstor_layer_size(l));
    for (size_t k = 0; vstor_layer_prop_key(l, k); k++)
      printf(" %s=%s", vstor_layer_prop_key(l, k), vstor_layer_prop(l, vstor_layer_prop_key(l, k)));
    printf("\n");
  }
}

static const vstor_layer *layer_by_role(vstor_vol *v, const char *role)
{
  for (size_t i = 0; i < vstor_vol_layer_count(v); i++)
    if (!strcmp(vstor_layer_role(vstor_vol_layer(v, i)), role)) return vstor_vol_layer(v, i);
  return NULL;
}

static int xl(const char *a, const char *b, const char *c)
{
  pid_t pid = fork();
  if (pid == 0) {
    execlp("xl", "xl", a, b, c, (char *)NULL);
    _exit(127);
  }
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool file_has(const char *path, off_t off, const char *s)
{
  char buf[64] = { 0 };
  int fd = open(path, O_RDONLY);
  if (fd < 0) return false;
  ssize_t n = pread(fd, buf, strlen(s), off);
  close(fd);
  return n == (ssize_t)strlen(s) && !memcmp(buf, s, strlen(s));
}

/* ---- the checks ---------------------------------------------------- */

static vstor_vol *t_open(void)
{
  char uri[128];
  snprintf(uri, sizeof uri, "xen:%s/xvda", DOM);
  vstor_vol *v = NULL;
  uint64_t t0 = now_ms();
  int r = vstor_open(C, uri, 0, &v);
  figure("open_ms", (double)(now_ms() - t0));
  check(r == 0, "open %s by name", uri);
  if (r) return NULL;
  print_layers(v);
  const vstor_layer *st = layer_by_role(v, "storage"), *ex = layer_by_role(v, "exposure"),
                    *hv = layer_by_role(v, "hypervisor");
  check(st && !strcmp(vstor_layer_type(st), "file") && !strcmp(vstor_layer_path(st), IMG) &&
        ex && !strcmp(vstor_layer_type(ex), "loop") && hv && !strcmp(vstor_layer_type(hv), "xen-vbd") &&
        vstor_layer_size(hv) == 64ull << 20 && !strcmp(vstor_vol_backend(v), "xen"),
        "layers: file %s, loop exposure, xen-vbd hypervisor of 64 MiB", IMG);
  const char *node = hv ? vstor_layer_prop(hv, "node") : NULL;
  check(node && ex && !strcmp(node, vstor_layer_path(ex)),
        "the vbd's backend node (%s) is the loop layer", node ? node : "?");
  DOMID = (uint32_t)strtoul(hv && vstor_layer_prop(hv, "domid") ? vstor_layer_prop(hv, "domid") : "0", NULL, 10);

  snprintf(uri, sizeof uri, "xen:%u/xvda", DOMID);
  vstor_vol *v2 = NULL;
  r = vstor_open(C, uri, VSTOR_OPEN_READONLY, &v2);
  check(r == 0 && !strcmp(vstor_vol_id(v2), vstor_vol_id(v)), "open %s by domid: same volume id (%s)",
        uri, vstor_vol_id(v));
  if (v2) {
    vstor_report *rep = NULL;
    r = vstor_extend(v2, 80ull << 20, NULL, 0, &rep);
    check(r < 0 && vstor_last_code() == VSTOR_E_PERM, "read-only handle: extend refused (%s)",
          vstor_code_name(vstor_last_code()));
    vstor_report_free(rep);
    vstor_close(v2);
  }
  return v;
}

static void t_caps(vstor_vol *v)
{
  char *why = NULL;
  int r = vstor_backend_can(C, "xen", VSTOR_OP_EXTEND, &why);
  check(r == 1, "backend can: xen extend available in dom0");
  free(why); why = NULL;
  check(vstor_vol_can(v, VSTOR_OP_EXTEND_ONLINE, 0, NULL) == 1, "can extend-online");
  r = vstor_vol_can(v, VSTOR_OP_SNAPSHOT, 0, &why);
  check(r == 0 && why && strstr(why, "CRASH_CONSISTENT"), "can snapshot without CRASH_CONSISTENT: no (%s)",
        why ? why : "");
  free(why); why = NULL;
  check(vstor_vol_can(v, VSTOR_OP_SNAPSHOT, VSTOR_SNAPSHOT_CRASH_CONSISTENT, NULL) == 1,
        "can snapshot crash-consistent");
  r = vstor_vol_can(v, VSTOR_OP_MIRROR, 0, &why);
  check(r == 0 && why && strstr(why, "live copy"), "can mirror: no (%s)", why ? why : "");
  free(why); why = NULL;
  r = vstor_vol_can(v, VSTOR_OP_RESIZE_FS, 0, &why);
  check(r == 0 && why && strstr(why, "inside the guest"), "can resize-fs: no (%s)", why ? why : "");
  free(why); why = NULL;
  vstor_job *job = NULL;
  r = vstor_mirror(v, "/tmp/mirror.img", NULL, 0, &job, NULL);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOTSUP && !job && access("/tmp/mirror.img", F_OK) != 0,
        "mirror: NOTSUP before anything starts (%s)", vstor_last_error());
}

static void t_extend(vstor_vol *v)
{
  vstor_report *rep = NULL;
  uint64_t sz = 0;
  int r = vstor_extend(v, 32ull << 20, NULL, 0, &rep);
  check(r < 0 && vstor_last_code() == VSTOR_E_INVAL, "shrink refused (INVAL)");
  vstor_report_free(rep); rep = NULL;
  r = vstor_extend(v, 96ull << 20, NULL, VSTOR_EXTEND_RESIZE_FS, &rep);
  struct stat st;
  stat(IMG, &st);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOTSUP && st.st_size == 64 << 20,
        "extend with RESIZE_FS: NOTSUP, image untouched");
  vstor_report_free(rep); rep = NULL;
  r = vstor_extend(v, 128ull << 20, NULL, VSTOR_DRY_RUN, &rep);
  stat(IMG, &st);
  check(r == 0 && st.st_size == 64 << 20 && vstor_report_step_count(rep) >= 3, "dry run plans, changes nothing");
  if (rep) print_report(rep);
  vstor_report_free(rep); rep = NULL;

  uint64_t t0 = now_ms();
  r = vstor_extend(v, 128ull << 20, NULL, 0, &rep);
  uint64_t t1 = now_ms();
  figure("extend_call_ms", (double)(t1 - t0));
  if (rep) print_report(rep);
  stat(IMG, &st);
  check(r == 0 && st.st_size == 128 << 20, "extend 64 -> 128 MiB: image grown");
  check(vstor_vol_size(v, &sz) == 0 && sz == 128ull << 20, "vbd size (backend sectors) now 128 MiB");
  long ms = wait_guest_size("xvda", 128ull << 20, 60000);
  if (ms >= 0) figure("extend_to_guest_ms", (double)(t1 - t0 + (uint64_t)ms));
  check(ms >= 0, "the domU sees xvda at 128 MiB (/sys/block/xvda/size) %ld ms after extend returned", ms);
  vstor_report_free(rep);
  rep = NULL;
  r = vstor_extend(v, 128ull << 20, NULL, 0, &rep);
  check(r == 0, "extend to the current size succeeds, changes nothing");
  vstor_report_free(rep);
}

static void t_snapshot(vstor_vol *v)
{
  /* a marker written through dom0 (the page cache the loop device shares) */
  int fd = open(IMG, O_WRONLY);
  (void)!pwrite(fd, "VSTOR-XEN-MARK", 14, 1 << 20);
  fsync(fd);
  close(fd);
  vstor_report *rep = NULL;
  int r = vstor_snapshot(v, "/tmp/snap1.img", NULL, 0, &rep);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOTSUP && access("/tmp/snap1.img", F_OK) != 0 &&
        dom_paused() == 0, "snapshot without CRASH_CONSISTENT: NOTSUP, nothing paused or written");
  vstor_report_free(rep); rep = NULL;

  uint64_t t0 = now_ms();
  r = vstor_snapshot(v, "/tmp/snap1.img", NULL, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &rep);
  uint64_t t1 = now_ms();
  if (rep) print_report(rep);
  check(r == 0 && vstor_report_consistency(rep) == VSTOR_CONSISTENT_CRASH && vstor_report_frozen_us(rep) > 0,
        "pause-snapshot-unpause: crash-consistent, paused %.1f ms (%s)",
        rep ? vstor_report_frozen_us(rep) / 1000.0 : 0, rep && vstor_report_method(rep) ? vstor_report_method(rep) : "?");
  if (rep) {
    figure("snapshot_paused_ms", vstor_report_frozen_us(rep) / 1000.0);
    figure("snapshot_call_ms", (double)(t1 - t0));
  }
  struct stat st;
  check(stat("/tmp/snap1.img", &st) == 0 && st.st_size == 128 << 20 && file_has("/tmp/snap1.img", 1 << 20, "VSTOR-XEN-MARK"),
        "snapshot is a 128 MiB copy holding the marker");
  check(dom_paused() == 0 && guest_advances(15000), "the domU runs after the snapshot (console counter advances)");
  vstor_report_free(rep); rep = NULL;

  r = vstor_snapshot(v, "/tmp/snap1.img", NULL, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &rep);
  check(r < 0 && vstor_last_code() == VSTOR_E_EXIST && dom_paused() == 0,
        "snapshot onto an existing file: EXIST, domain not left paused");
  vstor_report_free(rep); rep = NULL;
  r = vstor_snapshot(v, "/nonexistent-dir/snap.img", NULL, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &rep);
  check(r < 0 && dom_paused() == 0, "snapshot into a missing directory: refused (%s) before any pause",
        vstor_code_name(vstor_last_code()));
  vstor_report_free(rep);
}

/* The copy outlasts the pause window: the guard unpauses on time, the call
 * fails with TIMEOUT and the (not point-in-time) copy is removed. */
static void t_window(vstor_vol *v)
{
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_freeze_timeout_ms(o, 1000);
  setenv("VSTOR_FAULT", "xen.snapshot.paused:sleep=6000", 1);
  vstor_report *rep = NULL;
  uint64_t t0 = now_ms();
  int r = vstor_snapshot(v, "/tmp/snap-window.img", o, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &rep);
  unsetenv("VSTOR_FAULT");
  if (rep) print_report(rep);
  check(r < 0 && vstor_last_code() == VSTOR_E_TIMEOUT && access("/tmp/snap-window.img", F_OK) != 0 &&
        dom_paused() == 0, "pause window 1 s, copy takes 6 s: TIMEOUT, copy removed, domain running "
        "(call took %llu ms)", (unsigned long long)(now_ms() - t0));
  check(guest_advances(15000), "the domU runs after the window ran out");
  vstor_report_free(rep);
  vstor_opts_free(o);
}

/* The caller is killed while the domain is paused: the guard unpauses it,
 * vstor_recover() removes the half-made copy and finds nothing paused. */
static void t_killed_paused(void)
{
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("VSTOR_FAULT", "file.snapshot.created", 1);
    vstor_ctx *c = vstor_ctx_new(0);
    char uri[64];
    snprintf(uri, sizeof uri, "xen:%s/xvda", DOM);
    vstor_vol *v = NULL;
    if (!c || vstor_open(c, uri, 0, &v) < 0) _exit(3);
    vstor_snapshot(v, "/tmp/snap-killed.img", NULL, VSTOR_SNAPSHOT_CRASH_CONSISTENT, NULL);
    _exit(4);
  }
  int st;
  waitpid(pid, &st, 0);
  bool killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
  uint64_t t0 = now_ms();
  int p = 1;
  while ((p = dom_paused()) == 1 && now_ms() - t0 < 20000) usleep(50000);
  if (killed) figure("guard_unpause_ms", (double)(now_ms() - t0));
  check(killed && p == 0, "caller killed while paused: the guard unpaused the domain after %llu ms",
        (unsigned long long)(now_ms() - t0));
  check(guest_advances(15000), "the domU runs again after the guard's unpause");
  vstor_report *rep = NULL;
  int r = vstor_recover(C, 0, &rep);
  if (rep) print_report(rep);
  check(r == 0 && access("/tmp/snap-killed.img", F_OK) != 0 && dom_paused() == 0,
        "vstor_recover: half-made copy removed, domain running");
  vstor_report_free(rep);
}

static void t_errors(void)
{
  struct { const char *uri; int code; const char *what; } cases[] = {
    { "xen:nosuchdomain/xvda", VSTOR_E_NOENT, "unknown domain name" },
    { "xen:4000/xvda", VSTOR_E_NOENT, "unknown domid" },
    { "xen:00000000-1111-2222-3333-444444444444/xvda", VSTOR_E_NOENT, "unknown UUID" },
    { NULL, VSTOR_E_NOENT, "unknown vdev" },
    { "xen:du1", VSTOR_E_INVAL, "xen URI without a vdev" },
    { "xen:du1/xv-da", VSTOR_E_INVAL, "vdev with a dash" },
    { "xen:du1/xvda?x=1", VSTOR_E_INVAL, "xen URI with a query" },
    { "phy:/dev/loop0,xvda,w,extra", VSTOR_E_INVAL, "disk spec with 5 positional fields" },
    { "format=bogus,vdev=xvda,target=/tmp/x.img", VSTOR_E_INVAL, "disk spec with an unknown format" },
    { "vdev=xvda,access=rw", VSTOR_E_INVAL, "disk spec without a target" },
    { "phy:/dev/loop0,xvda,rwx", VSTOR_E_INVAL, "disk spec with a bad access mode" },
    { "format=raw,vdev=xvda,colour=red,target=/tmp/x.img", VSTOR_E_INVAL, "disk spec with an unknown key" },
    { "phy:/dev/loop0,xv%da,w", VSTOR_E_INVAL, "disk spec with an invalid vdev" },
  };
  char nov[64];
  snprintf(nov, sizeof nov, "xen:%s/xvdq", DOM);
  cases[3].uri = nov;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    vstor_vol *v = NULL;
    int r = vstor_open(C, cases[i].uri, 0, &v);
    check(r < 0 && vstor_last_code() == cases[i].code && !v, "%s (%s): %s: %s", cases[i].what,
          cases[i].uri, vstor_code_name(cases[i].code), vstor_last_error() ? vstor_last_error() : "");
    if (v) vstor_close(v);
  }
  /* a well-formed disk spec naming the domU's image opens its storage */
  char spec[160];
  snprintf(spec, sizeof spec, "format=raw,vdev=xvda,access=rw,target=%s", IMG);
  vstor_vol *v = NULL;
  int r = vstor_open(C, spec, VSTOR_OPEN_READONLY, &v);
  check(r == 0 && !strcmp(vstor_vol_backend(v), "file"), "disk spec %s opens the image (file backend)", spec);
  if (v) vstor_close(v);
}

/* A vbd hot-attached, opened, then detached under the handle. */
static void t_detach(void)
{
  char spec[160];
  snprintf(spec, sizeof spec, "format=raw,vdev=xvdb,access=rw,target=%s", IMG2);
  int x = xl("block-attach", DOM, spec);
  long ms = x == 0 ? wait_guest_size("xvdb", 32ull << 20, 60000) : -1;
  check(x == 0 && ms >= 0, "xl block-attach xvdb: the domU sees it");
  char uri[64];
  snprintf(uri, sizeof uri, "xen:%s/xvdb", DOM);
  vstor_vol *v = NULL;
  int r = vstor_open(C, uri, 0, &v);
  check(r == 0, "open %s (hot-attached)", uri);
  x = xl("block-detach", DOM, "xvdb");
  check(x == 0, "xl block-detach xvdb");
  if (v) {
    uint64_t sz;
    vstor_report *rep = NULL;
    struct stat st0, st1;
    stat(IMG2, &st0);
    r = vstor_extend(v, 64ull << 20, NULL, 0, &rep);
    stat(IMG2, &st1);
    check(r < 0 && vstor_last_code() == VSTOR_E_NOENT && st1.st_size == st0.st_size,
          "extend of the detached disk: NOENT, image untouched (%s)", vstor_last_error());
    vstor_report_free(rep); rep = NULL;
    r = vstor_snapshot(v, "/tmp/snap-det.img", NULL, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &rep);
    check(r < 0 && vstor_last_code() == VSTOR_E_NOENT && dom_paused() == 0 &&
          access("/tmp/snap-det.img", F_OK) != 0, "snapshot of the detached disk: NOENT, nothing paused");
    vstor_report_free(rep);
    r = vstor_vol_size(v, &sz);
    check(r < 0, "size of the detached disk: error (%s)", vstor_code_name(vstor_last_code()));
    vstor_close(v);
  }
  v = NULL;
  r = vstor_open(C, uri, 0, &v);
  check(r < 0 && vstor_last_code() == VSTOR_E_NOENT, "reopen after detach: NOENT (%s)", vstor_last_error());
  if (v) vstor_close(v);
}

static char *run_out(const char *cmd)
{
  FILE *f = popen(cmd, "r");
  if (!f) return strdup("");
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  pclose(f);
  return strdup(buf);
}

/* A phy: vbd on an LV: extend through lvextend, move it to the other PV
 * under the running guest (mirror + pivot delegated to the LVM backend),
 * then a crash-consistent LVM snapshot. */
static void t_lvm(void)
{
  const char *vg = getenv("LAB_VG"), *lv = getenv("LAB_LV"), *pv2 = getenv("LAB_PV2");
  if (!vg || !*vg || !lv || !pv2) {
    check(false, "LVM vbd: no VG in dom0");
    return;
  }
  long ms = wait_guest_size("xvdc", 32ull << 20, 30000);
  check(ms >= 0, "the domU sees xvdc (phy:/dev/%s/%s)", vg, lv);
  char uri[64];
  snprintf(uri, sizeof uri, "xen:%s/xvdc", DOM);
  vstor_vol *v = NULL;
  int r = vstor_open(C, uri, 0, &v);
  check(r == 0, "open %s", uri);
  if (r) return;
  print_layers(v);
  const vstor_layer *st = layer_by_role(v, "storage"), *ex = layer_by_role(v, "exposure");
  char want[64];
  snprintf(want, sizeof want, "%s/%s", vg, lv);
  check(st && !strcmp(vstor_layer_type(st), "lvm") && !strcmp(vstor_layer_path(st), want) && ex &&
        !strcmp(vstor_layer_type(ex), "dm"), "layers: lvm %s, dm exposure, xen-vbd", want);
  vstor_report *rep = NULL;
  uint64_t t0 = now_ms();
  r = vstor_extend(v, 48ull << 20, NULL, 0, &rep);
  uint64_t t1 = now_ms();
  if (rep) print_report(rep);
  figure("lvm_extend_call_ms", (double)(t1 - t0));
  uint64_t sz = 0;
  check(r == 0 && vstor_vol_size(v, &sz) == 0 && sz == 48ull << 20, "extend the LV vbd 32 -> 48 MiB (lvextend, blkback)");
  vstor_report_free(rep); rep = NULL;
  ms = wait_guest_size("xvdc", 48ull << 20, 60000);
  if (ms >= 0) figure("lvm_extend_to_guest_ms", (double)(t1 - t0 + (uint64_t)ms));
  check(ms >= 0, "the domU sees xvdc at 48 MiB");

  char *why = NULL;
  r = vstor_vol_can(v, VSTOR_OP_MIRROR, 0, &why);
  check(r == 1, "can mirror (delegated to the LVM backend)%s%s", why ? ": " : "", why ? why : "");
  free(why);
  vstor_job *job = NULL;
  t0 = now_ms();
  r = vstor_mirror(v, pv2, NULL, 0, &job, &rep);
  if (rep) print_report(rep);
  vstor_report_free(rep); rep = NULL;
  check(r == 0 && job, "mirror %s to PV %s started", want, pv2);
  if (job) {
    r = vstor_job_wait(job, 120000, 0);
    figure("lvm_move_ready_ms", (double)(now_ms() - t0));
    check(r == 0 && vstor_job_state(job) == VSTOR_JOB_READY, "move READY");
    r = vstor_job_pivot(job, 0);
    check(r == 0 && vstor_job_state(job) == VSTOR_JOB_PIVOTED, "pivot: %s", r ? vstor_last_error() : "PIVOTED");
    figure("lvm_move_total_ms", (double)(now_ms() - t0));
    vstor_job_free(job);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "LVM_SUPPRESS_FD_WARNINGS=1 lvm lvs --noheadings -o devices %s 2>&1", want);
    char *dev = run_out(cmd);
    check(strstr(dev, pv2) != NULL, "the LV is now on %s (%s)", pv2, dev);
    free(dev);
    check(dom_paused() == 0 && guest_advances(15000), "the domU runs on after the move");
    long t; uint64_t gs;
    check(guest_line("xvdc", &t, &gs) && gs == 48ull << 20, "the domU still reads xvdc (48 MiB) after the move");
  }

  /* Killed in the pivot (after READY): the record the LVM backend
   * journalled under the xen volume goes back to the LVM backend on
   * recover, which finishes the move the caller had asked to pivot. */
  const char *pv1 = getenv("LAB_PV1");
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("VSTOR_FAULT", "lvm-mirror-before-pivot", 1);
    vstor_ctx *c = vstor_ctx_new(0);
    vstor_vol *cv = NULL;
    vstor_job *cj = NULL;
    if (!c || vstor_open(c, uri, 0, &cv) < 0 || vstor_mirror(cv, pv1, NULL, 0, &cj, NULL) < 0 ||
        vstor_job_wait(cj, 120000, 0) < 0)
      _exit(3);
    vstor_job_pivot(cj, 0);
    _exit(4);
  }
  int wst;
  waitpid(pid, &wst, 0);
  check(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "a second move (back to %s) killed in its pivot", pv1);
  r = vstor_recover(C, 0, &rep);
  if (rep) print_report(rep);
  vstor_report_free(rep); rep = NULL;
  char cmd2[320];
  snprintf(cmd2, sizeof cmd2, "LVM_SUPPRESS_FD_WARNINGS=1 lvm lvs --noheadings -o devices %s 2>&1; "
           "LVM_SUPPRESS_FD_WARNINGS=1 lvm lvs --noheadings -a -o name %s 2>&1", want, vg);
  char *lvs = run_out(cmd2);
  check(r == 0 && strstr(lvs, pv1) && !strstr(lvs, pv2) && !strstr(lvs, "pvmove"),
        "vstor_recover (forwarded to the LVM backend) finished the interrupted pivot: LV on %s", pv1);
  printf("# lvs: %s\n", lvs);
  free(lvs);
  check(dom_paused() == 0 && guest_advances(15000), "the domU runs on after the recovered move");

  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_snapshot_size(o, 16ull << 20);
  char dest[64];
  snprintf(dest, sizeof dest, "lvm:%s/snap1", vg);
  r = vstor_snapshot(v, dest, o, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &rep);
  if (rep) print_report(rep);
  char snapdev[64];
  snprintf(snapdev, sizeof snapdev, "/dev/%s/snap1", vg);
  check(r == 0 && rep && vstor_report_consistency(rep) == VSTOR_CONSISTENT_CRASH && access(snapdev, F_OK) == 0 &&
        vstor_report_frozen_us(rep) > 0, "LVM snapshot %s of the running domU without a pause (dm suspend): crash-consistent, "
        "I/O held at most %.1f ms", dest, rep ? vstor_report_frozen_us(rep) / 1000.0 : 0.0);
  if (rep && r == 0) figure("lvm_snapshot_suspended_ms", vstor_report_frozen_us(rep) / 1000.0);
  check(dom_paused() == 0 && guest_advances(15000), "the domU runs after the LVM snapshot");
  vstor_report_free(rep);
  vstor_opts_free(o);
  vstor_close(v);
}

/* A read-only vbd has no writer: snapshotted without a pause and without
 * CRASH_CONSISTENT (consistency IDLE). */
static void t_readonly(void)
{
  const char *img = "/tmp/du1-xvdd.img";
  int fd = open(img, O_CREAT | O_RDWR, 0644);
  if (fd < 0 || ftruncate(fd, 16 << 20) < 0 || pwrite(fd, "RO-MARK", 7, 4096) != 7) {
    check(false, "create %s", img);
    if (fd >= 0) close(fd);
    return;
  }
  close(fd);
  char spec[160];
  snprintf(spec, sizeof spec, "format=raw,vdev=xvdd,access=ro,target=%s", img);
  int x = xl("block-attach", DOM, spec);
  long ms = x == 0 ? wait_guest_size("xvdd", 16ull << 20, 60000) : -1;
  check(x == 0 && ms >= 0, "xl block-attach xvdd read-only: the domU sees it");
  char uri[64];
  snprintf(uri, sizeof uri, "xen:%s/xvdd", DOM);
  vstor_vol *v = NULL;
  int r = vstor_open(C, uri, 0, &v);
  const vstor_layer *hv = r == 0 ? layer_by_role(v, "hypervisor") : NULL;
  check(hv && !strcmp(vstor_layer_prop(hv, "mode"), "ro"), "open %s: mode=ro", uri);
  if (v) {
    vstor_report *rep = NULL;
    r = vstor_snapshot(v, "/tmp/snap-ro.img", NULL, 0, &rep);
    if (rep) print_report(rep);
    check(r == 0 && vstor_report_consistency(rep) == VSTOR_CONSISTENT_IDLE && dom_paused() == 0 &&
          file_has("/tmp/snap-ro.img", 4096, "RO-MARK"),
          "snapshot of the read-only vbd without CRASH_CONSISTENT: no pause, IDLE, copy holds the marker");
    vstor_report_free(rep);
    vstor_close(v);
  }
  check(xl("block-detach", DOM, "xvdd") == 0, "xl block-detach xvdd");
}

static void logfn(void *o, int level, const char *msg)
{
  (void)o;
  printf("# log%d %s\n", level, msg);
}

int main(void)
{
  DOM = getenv("LAB_DOM"); CONLOG = getenv("LAB_CONLOG");
  IMG = getenv("LAB_IMG"); IMG2 = getenv("LAB_IMG2");
  if (!DOM || !CONLOG || !IMG || !IMG2) {
    printf("not ok - LAB_DOM, LAB_CONLOG, LAB_IMG, LAB_IMG2 must be set\n");
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  C = vstor_ctx_new(0);
  check(C != NULL, "vstor_ctx_new");
  if (!C) return 1;
  if (getenv("LAB_VERBOSE")) vstor_ctx_set_log(C, logfn, NULL, VSTOR_LOG_DEBUG);
  xentoollog_logger *lg = (xentoollog_logger *)xtl_createlogger_stdiostream(stderr, XTL_ERROR, 0);
  if (libxl_ctx_alloc(&XL, LIBXL_VERSION, 0, lg) != 0) {
    check(false, "libxl_ctx_alloc in dom0");
    return 1;
  }
  vstor_vol *v = t_open();
  if (v) {
    t_caps(v);
    t_extend(v);
    t_snapshot(v);
    t_window(v);
    t_killed_paused();
    vstor_close(v);
  }
  t_lvm();
  t_errors();
  t_detach();
  t_readonly();
  libxl_ctx_free(XL);
  vstor_ctx_free(C);
  return failures ? 1 : 0;
}
