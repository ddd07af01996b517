/* lab-rbd: libvstor's RBD backend against a real single-node Ceph cluster
 * (tests/lab-rbd/ceph.sh, started by run-lab.sh, CEPH_CONF in the env).
 *
 * Usage: test-rbd GROUP
 *   open      open, layers, client id, namespace, caps, NOENT/PERM errors
 *   extend    grow online: a second client's open handle sees the new size
 *   snapshot  snapshot + clone data checks, crash consistency, recover
 *   migrate   live migration between pools: checksums, snapshots kept, pivot
 *   cancel    cancel (abort) at READY and while copying leaves the source;
 *             a migration orphaned by a killed process is aborted by recover
 *   busy      migration refused (BUSY) while another client has the image open
 *   timeout   monitor stopped / OSD paused: TIMEOUT within the bound, no hang
 *
 * Outcomes are checked with librbd directly (a separate client connection),
 * not through libvstor.  Image names carry the pid: groups never collide.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "vstor.h"

#define MiB (1024ull * 1024ull)
#define S(x) ((x) ? (x) : "(none)")

static int npass, nfail;
static vstor_ctx *ctx;
static rados_t cl;
static rados_ioctx_t io_rbd, io_rbd2, io_ns1;
static char P[64];   /* image name prefix */
static char state_dir[256];

__attribute__((format(printf, 2, 3)))
static bool check_(bool ok, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("%s %d - ", ok ? "ok" : "not ok", npass + nfail + 1);
  vprintf(fmt, ap);
  va_end(ap);
  if (!ok && vstor_last_error())
    printf("   [last error: %s (%s)]", vstor_last_error(), vstor_code_name(vstor_last_code()));
  printf("\n");
  fflush(stdout);
  if (ok) npass++; else nfail++;
  return ok;
}

/* The checked expression runs before the message's arguments are evaluated
 * (timings, last error). */
#define check(ok, ...) do { bool _ok1 = (ok); check_(_ok1, __VA_ARGS__); } while (0)
/* check() whose message ends with the last error, read after the checked
 * expression ran (arguments are evaluated in no fixed order). */
#define checke(ok, ...) do { bool _ok = (ok); char _m[512]; snprintf(_m, sizeof _m, __VA_ARGS__); \
    check_(_ok, "%s (%s)", _m, S(vstor_last_error())); } while (0)

static void die(const char *what, int r)
{
  printf("Bail out! %s: %s\n", what, r ? strerror(-r) : (vstor_last_error() ? vstor_last_error() : ""));
  printf("%d passed, %d failed\n", npass, nfail + 1);
  exit(1);
}
#define CHK(x) do { int _r = (x); if (_r < 0) die(#x, _r); } while (0)

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool code_is(int code) { return vstor_last_code() == code; }
static bool msg_has(const char *s) { return vstor_last_error() && strstr(vstor_last_error(), s); }

/* ---- librbd helpers (the test's own client) ---------------------------- */

static char *nm(const char *suffix)
{
  char *s;
  if (asprintf(&s, "%s-%s", P, suffix) < 0) abort();
  return s;
}

static void mkimg(rados_ioctx_t io, const char *name, uint64_t size)
{
  int order = 22;
  CHK(rbd_create2(io, name, size, RBD_FEATURE_LAYERING | RBD_FEATURE_EXCLUSIVE_LOCK |
                  RBD_FEATURE_OBJECT_MAP | RBD_FEATURE_FAST_DIFF | RBD_FEATURE_DEEP_FLATTEN, &order));
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; b[i] = (uint8_t)x; }
}

static void wr(rados_ioctx_t io, const char *name, uint64_t off, size_t len, uint32_t seed)
{
  rbd_image_t img;
  CHK(rbd_open(io, name, &img, NULL));
  uint8_t *b = malloc(len);
  fill(b, len, seed);
  ssize_t w = rbd_write(img, off, len, (const char *)b);
  free(b);
  if (w != (ssize_t)len) die("rbd_write", w < 0 ? (int)w : -EIO);
  CHK(rbd_flush(img));
  CHK(rbd_close(img));
}

/* 64-bit FNV-1a of the whole image (or snapshot); 0 if it cannot be read. */
static uint64_t sum(rados_ioctx_t io, const char *name, const char *snap)
{
  rbd_image_t img;
  if (rbd_open_read_only(io, name, &img, snap) < 0) return 0;
  uint64_t size = 0, h = 1469598103934665603ull;
  rbd_get_size(img, &size);
  size_t chunk = 4 * MiB;
  char *b = malloc(chunk);
  for (uint64_t off = 0; off < size; off += chunk) {
    size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
    if (rbd_read(img, off, n, b) != (ssize_t)n) { h = 0; break; }
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)b[i]; h *= 1099511628211ull; }
  }
  free(b);
  rbd_close(img);
  return h;
}

static bool exists(rados_ioctx_t io, const char *name)
{
  rbd_image_t img;
  if (rbd_open_read_only(io, name, &img, NULL) < 0) return false;
  rbd_close(img);
  return true;
}

static bool migrating(rados_ioctx_t io, const char *name)
{
  rbd_image_migration_status_t ms;
  if (rbd_migration_status(io, name, &ms, sizeof ms) < 0) return false;
  rbd_migration_status_cleanup(&ms);
  return true;
}

static bool has_snap(rados_ioctx_t io, const char *name, const char *snap)
{
  rbd_image_t img;
  if (rbd_open_read_only(io, name, &img, NULL) < 0) return false;
  bool ex = false;
  rbd_snap_exists(img, snap, &ex);
  rbd_close(img);
  return ex;
}

static int nsnaps(rados_ioctx_t io, const char *name)
{
  rbd_image_t img;
  if (rbd_open_read_only(io, name, &img, NULL) < 0) return -1;
  int max = 0;
  rbd_snap_list(img, NULL, &max);
  rbd_close(img);
  return max;
}

static uint64_t rsize(rados_ioctx_t io, const char *name)
{
  rbd_image_t img;
  uint64_t s = 0;
  if (rbd_open_read_only(io, name, &img, NULL) < 0) return 0;
  rbd_get_size(img, &s);
  rbd_close(img);
  return s;
}

/* A second client: its own cluster connection, image open read-write with
 * the exclusive lock taken by a write. */
struct other { rados_t c; rados_ioctx_t io; rbd_image_t img; };

static void other_open(struct other *o, const char *pool, const char *name)
{
  CHK(rados_create2(&o->c, "ceph", "client.admin", 0));
  CHK(rados_conf_read_file(o->c, NULL));
  CHK(rados_connect(o->c));
  CHK(rados_ioctx_create(o->c, pool, &o->io));
  CHK(rbd_open(o->io, name, &o->img, NULL));
  char b[512] = "other client";
  if (rbd_write(o->img, 0, sizeof b, b) != sizeof b) die("other client write", -EIO);
  int owner = 0;
  rbd_is_exclusive_lock_owner(o->img, &owner);
  if (!owner) die("other client does not own the exclusive lock", -EINVAL);
}

static void other_close(struct other *o)
{
  rbd_close(o->img);
  rados_ioctx_destroy(o->io);
  rados_shutdown(o->c);
}

static char *uri(const char *pool, const char *name)
{
  char *s;
  if (asprintf(&s, "rbd:%s/%s", pool, name) < 0) abort();
  return s;
}

/* Threads of this process: librados runs a dozen per connection. */
static size_t nthreads(void)
{
  DIR *d = opendir("/proc/self/task");
  size_t n = 0;
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d))) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static const char *prop(vstor_vol *v, const char *k)
{
  const vstor_layer *l = vstor_vol_layer(v, 0);
  return l ? vstor_layer_prop(l, k) : NULL;
}

static size_t journal_records(void)
{
  char *cmd;
  if (asprintf(&cmd, "ls %s/journal 2>/dev/null | grep -c '\\.rec$'", state_dir) < 0) abort();
  FILE *f = popen(cmd, "r");
  free(cmd);
  size_t n = 0;
  if (f) { if (fscanf(f, "%zu", &n) != 1) n = 0; pclose(f); }
  return n;
}

/* Run this program again as a child (librados is not fork-safe: exec),
 * with VSTOR_FAULT set; returns its wait status. */
static int child(const char *fault, const char *op, const char *a, const char *b)
{
  pid_t p = fork();
  if (p == 0) {
    setenv("VSTOR_FAULT", fault, 1);
    execl("/proc/self/exe", "test-rbd", "child", op, a, b, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  waitpid(p, &st, 0);
  return st;
}

static int child_main(int argc, char **argv)
{
  if (argc < 5) return 2;
  vstor_vol *v;
  if (vstor_open(ctx, argv[3], 0, &v) < 0) return 3;
  if (!strcmp(argv[2], "snapshot"))
    return vstor_snapshot(v, argv[4], NULL, 0, NULL) < 0 ? 4 : 0;
  vstor_job *j;
  if (vstor_mirror(v, argv[4], NULL, 0, &j, NULL) < 0) return 5;
  vstor_job_wait(j, 120000, 0);
  return 6;   /* not reached: the fault kills this process */
}

/* ---- groups ------------------------------------------------------------------ */

static int t_open(void)
{
  char *img = nm("open"), *u = uri("rbd", img);
  mkimg(io_rbd, img, 64 * MiB);
  vstor_vol *v = NULL;
  check(vstor_open(ctx, u, 0, &v) == 0, "open %s", u);
  if (!v) die("open", 0);
  check(!strcmp(vstor_vol_backend(v), "rbd"), "backend is rbd");
  uint64_t sz = 0;
  check(vstor_vol_size(v, &sz) == 0 && sz == 64 * MiB, "size 64 MiB (%llu)", (unsigned long long)sz);
  check(vstor_vol_layer_count(v) == 1, "one layer");
  const vstor_layer *l = vstor_vol_layer(v, 0);
  check(l && !strcmp(vstor_layer_role(l), "storage") && !strcmp(vstor_layer_type(l), "rbd"),
        "layer storage/rbd");
  check(l && vstor_layer_size(l) == 64 * MiB, "layer size");
  check(prop(v, "features") && strstr(prop(v, "features"), "layering") &&
        strstr(prop(v, "features"), "exclusive-lock"), "features listed (%s)", S(prop(v, "features")));
  check(prop(v, "watchers") && !strcmp(prop(v, "watchers"), "0"),
        "no watchers: a libvstor handle does not keep the image open (%s)", S(prop(v, "watchers")));
  check(prop(v, "id") && prop(v, "cluster") && prop(v, "pool") && !strcmp(prop(v, "pool"), "rbd"),
        "id, cluster, pool properties");
  char fsid[64] = "";
  size_t fl = sizeof fsid;
  rados_cluster_fsid(cl, fsid, fl);
  check(!strncmp(vstor_vol_id(v), "rbd:", 4) && strstr(vstor_vol_id(v), fsid) &&
        strstr(vstor_vol_id(v), img), "canonical id names the cluster fsid (%s)", S(vstor_vol_id(v)));

  /* One cluster connection per context, shared by its volumes, kept until
   * the context is freed, and closed with it. */
  char *conn1 = prop(v, "connection") ? strdup(prop(v, "connection")) : NULL;
  check(conn1 && !strncmp(conn1, "client.", 7), "connection property (%s)", S(conn1));
  vstor_vol *v2 = NULL;
  check(vstor_open(ctx, u, VSTOR_OPEN_READONLY, &v2) == 0 && v2 && prop(v2, "connection") &&
        conn1 && !strcmp(prop(v2, "connection"), conn1),
        "a second volume of the context shares its connection (%s)", v2 ? S(prop(v2, "connection")) : "-");
  vstor_close(v2);
  size_t threads0 = nthreads();
  vstor_ctx *ctx2 = vstor_ctx_new(0);
  vstor_vol *v3 = NULL;
  check(ctx2 && vstor_open(ctx2, u, 0, &v3) == 0 && v3 && prop(v3, "connection") && conn1 &&
        strcmp(prop(v3, "connection"), conn1), "another context has its own connection (%s)",
        v3 ? S(prop(v3, "connection")) : "-");
  size_t threads1 = nthreads();
  vstor_close(v3);
  v3 = NULL;
  check(vstor_open(ctx2, u, 0, &v3) == 0 && v3, "reopen in that context");
  check(nthreads() == threads1, "  its connection stayed open with no volume (%zu threads)", nthreads());
  vstor_close(v3);
  vstor_ctx_free(ctx2);
  size_t threads2 = nthreads();
  check(threads1 > threads0 && threads2 == threads0,
        "freeing the context shuts its connection down (threads %zu -> %zu -> %zu)",
        threads0, threads1, threads2);
  free(conn1);

  char *why = NULL;
  check(vstor_vol_can(v, VSTOR_OP_EXTEND, 0, NULL) == 1, "can extend");
  check(vstor_vol_can(v, VSTOR_OP_EXTEND_ONLINE, 0, NULL) == 1, "can extend online");
  check(vstor_vol_can(v, VSTOR_OP_SNAPSHOT, 0, NULL) == 1, "can snapshot (idle image)");
  check(vstor_vol_can(v, VSTOR_OP_MIRROR, 0, NULL) == 1, "can mirror (idle image)");
  check(vstor_vol_can(v, VSTOR_OP_FREEZE, 0, &why) == 0 && why && strstr(why, "quiesce"),
        "cannot freeze, says why (%s)", S(why));
  free(why); why = NULL;
  check(vstor_vol_can(v, VSTOR_OP_RESIZE_FS, 0, &why) == 0 && why, "cannot resize-fs (%s)", S(why));
  free(why); why = NULL;
  check(vstor_backend_can(ctx, "rbd", VSTOR_OP_EXTEND, NULL) == 1, "backend rbd available");

  /* a second client opens the image: watchers, and the caps change */
  struct other o;
  other_open(&o, "rbd", img);
  check(vstor_vol_refresh(v) == 0 && prop(v, "watchers") && !strcmp(prop(v, "watchers"), "1"),
        "refresh: the other client is a watcher (%s)", S(prop(v, "watchers")));
  check(vstor_vol_can(v, VSTOR_OP_MIRROR, 0, &why) == 0 && why && strstr(why, "in use"),
        "cannot mirror while in use (%s)", S(why));
  free(why); why = NULL;
  check(vstor_vol_can(v, VSTOR_OP_SNAPSHOT, 0, &why) == 0 && why && strstr(why, "CRASH_CONSISTENT"),
        "snapshot needs CRASH_CONSISTENT while in use (%s)", S(why));
  free(why); why = NULL;
  check(vstor_vol_can(v, VSTOR_OP_SNAPSHOT, VSTOR_SNAPSHOT_CRASH_CONSISTENT, NULL) == 1,
        "can snapshot crash-consistent while in use");
  other_close(&o);
  vstor_close(v);

  /* client id (cephx user client.vstor, profile rbd) and explicit conf */
  char *u2;
  if (asprintf(&u2, "%s?id=vstor&conf=%s", u, getenv("CEPH_CONF")) < 0) abort();
  check(vstor_open(ctx, u2, 0, &v) == 0 && prop(v, "client") && !strcmp(prop(v, "client"), "client.vstor"),
        "open %s as client.vstor", u2);
  if (v) vstor_close(v);
  v = NULL;
  free(u2);
  /* namespace */
  mkimg(io_ns1, img, 32 * MiB);
  char *u3;
  if (asprintf(&u3, "rbd:rbd/ns1/%s", img) < 0) abort();
  check(vstor_open(ctx, u3, 0, &v) == 0 && prop(v, "namespace") && !strcmp(prop(v, "namespace"), "ns1") &&
        vstor_vol_size(v, &sz) == 0 && sz == 32 * MiB, "open in namespace ns1 (%s)", u3);
  if (v) vstor_close(v);
  v = NULL;
  free(u3);

  /* errors */
  double t0 = now();
  checke(vstor_open(ctx, "rbd:nosuchpool/x", 0, &v) < 0 && code_is(VSTOR_E_NOENT) && msg_has("nosuchpool"),
        "unknown pool: NOENT naming it");
  checke(vstor_open(ctx, "rbd:rbd/nosuchimage", 0, &v) < 0 && code_is(VSTOR_E_NOENT) && msg_has("nosuchimage"),
        "unknown image: NOENT naming it");
  char *u4;
  if (asprintf(&u4, "%s@nosnap", u) < 0) abort();
  checke(vstor_open(ctx, u4, 0, &v) < 0 && code_is(VSTOR_E_NOENT) && msg_has("nosnap"),
        "unknown snapshot: NOENT naming it");
  free(u4);
  checke(vstor_open(ctx, "rbd:rbd/nons/x", 0, &v) < 0 && code_is(VSTOR_E_NOENT),
        "unknown namespace: NOENT");
  check(now() - t0 < 5, "errors answered in %.2f s", now() - t0);
  if (asprintf(&u4, "%s?id=nobody", u) < 0) abort();
  checke(vstor_open(ctx, u4, 0, &v) < 0 && code_is(VSTOR_E_PERM) && msg_has("client.nobody"),
        "unknown cephx user: PERM naming it");
  free(u4);
  if (asprintf(&u4, "%s?conf=/nonexistent/ceph.conf", u) < 0) abort();
  checke(vstor_open(ctx, u4, 0, &v) < 0 && code_is(VSTOR_E_NOENT) && msg_has("/nonexistent/ceph.conf"),
        "missing conf: NOENT naming it");
  free(u4);
  check(vstor_open(ctx, "rbd:rbd", 0, &v) < 0 && code_is(VSTOR_E_INVAL), "rbd:POOL alone: INVAL");
  free(img); free(u);
  return 0;
}

static int t_extend(void)
{
  char *img = nm("ext"), *u = uri("rbd", img);
  mkimg(io_rbd, img, 64 * MiB);
  struct other o;
  other_open(&o, "rbd", img);          /* a running client holds the lock */
  vstor_vol *v = NULL;
  if (vstor_open(ctx, u, 0, &v) < 0) die("open", 0);
  vstor_report *rep = NULL;
  double t0 = now();
  int r = vstor_extend(v, 128 * MiB, NULL, 0, &rep);
  double dt = now() - t0;
  check(r == 0, "extend to 128 MiB while another client has it open (%.1f ms)", dt * 1000);
  check(rep && vstor_report_old_size(rep) == 64 * MiB && vstor_report_new_size(rep) == 128 * MiB,
        "report: 64 -> 128 MiB");
  check(rep && vstor_report_step_count(rep) == 1 && vstor_report_step_status(rep, 0) == VSTOR_STEP_DONE,
        "one step done: %s", rep ? vstor_report_step_detail(rep, 0) : "");
  vstor_report_free(rep);
  uint64_t os = 0;
  rbd_get_size(o.img, &os);
  check(os == 128 * MiB, "the other client's open handle sees %llu", (unsigned long long)os);
  char b[512];
  memset(b, 0x5a, sizeof b);
  check(rbd_write(o.img, 128 * MiB - 512, 512, b) == 512, "the other client writes at the new end");
  vstor_vol *v2 = NULL;
  uint64_t s2 = 0;
  check(vstor_open(ctx, u, 0, &v2) == 0 && vstor_vol_size(v2, &s2) == 0 && s2 == 128 * MiB,
        "a second libvstor handle sees 128 MiB");
  if (v2) vstor_close(v2);

  checke(vstor_extend(v, 100 * MiB, NULL, 0, &rep) < 0 && code_is(VSTOR_E_INVAL) && msg_has("shrink"),
        "shrink refused: INVAL");
  check(rsize(io_rbd, img) == 128 * MiB, "size unchanged after the refused shrink");
  rep = NULL;
  check(vstor_extend(v, 128 * MiB, NULL, 0, &rep) == 0 && rep &&
        vstor_report_step_status(rep, 0) == VSTOR_STEP_SKIPPED, "same size: success, step skipped");
  vstor_report_free(rep);
  rep = NULL;
  check(vstor_extend(v, 256 * MiB, NULL, VSTOR_DRY_RUN, &rep) == 0 && rep &&
        vstor_report_step_status(rep, 0) == VSTOR_STEP_PLANNED && rsize(io_rbd, img) == 128 * MiB,
        "dry run: planned, nothing changed");
  vstor_report_free(rep);
  checke(vstor_extend(v, 256 * MiB, NULL, VSTOR_EXTEND_RESIZE_FS, NULL) < 0 && code_is(VSTOR_E_NOTSUP) &&
        rsize(io_rbd, img) == 128 * MiB, "RESIZE_FS: NOTSUP, nothing changed");
  /* the cached connection is shared: a second grow on the same handle */
  t0 = now();
  check(vstor_extend(v, 1024 * MiB, NULL, 0, NULL) == 0 && rsize(io_rbd, img) == 1024 * MiB,
        "extend again to 1 GiB (%.1f ms)", (now() - t0) * 1000);
  rbd_get_size(o.img, &os);
  check(os == 1024 * MiB, "the other client sees 1 GiB");
  vstor_close(v);
  other_close(&o);

  /* a snapshot volume is read-only */
  rbd_image_t im;
  CHK(rbd_open(io_rbd, img, &im, NULL));
  CHK(rbd_snap_create(im, "s1"));
  rbd_close(im);
  char *us;
  if (asprintf(&us, "%s@s1", u) < 0) abort();
  if (vstor_open(ctx, us, 0, &v) < 0) die("open snapshot", 0);
  check(vstor_vol_can(v, VSTOR_OP_EXTEND, 0, NULL) == 0, "a snapshot cannot be extended (caps)");
  check(vstor_extend(v, 2048 * MiB, NULL, 0, NULL) < 0 && code_is(VSTOR_E_PERM) &&
        rsize(io_rbd, img) == 1024 * MiB, "extend of a snapshot: PERM, nothing changed");
  vstor_close(v);
  free(us); free(img); free(u);
  return 0;
}

static int t_snapshot(void)
{
  char *img = nm("snap"), *u = uri("rbd", img);
  mkimg(io_rbd, img, 64 * MiB);
  wr(io_rbd, img, 0, 4 * MiB, 1);
  wr(io_rbd, img, 40 * MiB, 1 * MiB, 2);
  uint64_t a = sum(io_rbd, img, NULL);
  vstor_vol *v = NULL;
  if (vstor_open(ctx, u, 0, &v) < 0) die("open", 0);
  vstor_report *rep = NULL;
  double t0 = now();
  check(vstor_snapshot(v, "s1", NULL, 0, &rep) == 0, "snapshot s1 (%.1f ms)", (now() - t0) * 1000);
  check(rep && vstor_report_consistency(rep) == VSTOR_CONSISTENT_IDLE && !strcmp(vstor_report_method(rep), "rbd-snapshot"),
        "idle-consistent (nobody had it open), method rbd-snapshot");
  vstor_report_free(rep);
  wr(io_rbd, img, 0, 4 * MiB, 3);                  /* overwrite after the snapshot */
  uint64_t b = sum(io_rbd, img, NULL);
  check(a != b && sum(io_rbd, img, "s1") == a, "snapshot s1 keeps the data of before (head changed)");
  check(vstor_snapshot(v, "s1", NULL, 0, NULL) < 0 && code_is(VSTOR_E_EXIST), "s1 again: EXIST");
  char *d;
  if (asprintf(&d, "rbd:rbd/%s@s2", img) < 0) abort();
  check(vstor_snapshot(v, d, NULL, 0, NULL) == 0 && has_snap(io_rbd, img, "s2") && sum(io_rbd, img, "s2") == b,
        "snapshot by URI %s", d);
  free(d);
  check(vstor_snapshot(v, "a/b", NULL, 0, NULL) < 0 && code_is(VSTOR_E_INVAL), "bad name a/b: INVAL");
  if (asprintf(&d, "rbd:rbd/%s", img) < 0) abort();
  check(vstor_snapshot(v, d, NULL, 0, NULL) < 0 && code_is(VSTOR_E_INVAL), "the volume itself as dest: INVAL");
  free(d);

  /* clone into another pool: a writable copy of the head */
  char *cimg = nm("clone");
  if (asprintf(&d, "rbd:rbd2/%s", cimg) < 0) abort();
  rep = NULL;
  check(vstor_snapshot(v, d, NULL, 0, &rep) == 0 && rep && !strcmp(vstor_report_method(rep), "rbd-clone"),
        "clone to %s", d);
  vstor_report_free(rep);
  check(exists(io_rbd2, cimg) && sum(io_rbd2, cimg, NULL) == b, "the clone has the head's data");
  wr(io_rbd2, cimg, 0, 1 * MiB, 9);
  check(sum(io_rbd, img, NULL) == b && sum(io_rbd2, cimg, NULL) != b, "writing the clone leaves the source");
  check(vstor_snapshot(v, d, NULL, 0, NULL) < 0 && code_is(VSTOR_E_EXIST), "clone again: EXIST");
  free(d);
  /* clone from a snapshot volume: the data of s1 */
  char *us, *c2 = nm("clone2");
  if (asprintf(&us, "%s@s1", u) < 0 || asprintf(&d, "rbd:rbd/%s", c2) < 0) abort();
  vstor_vol *vs = NULL;
  check(vstor_open(ctx, us, 0, &vs) == 0 && prop(vs, "snapshot") && !strcmp(prop(vs, "snapshot"), "s1"),
        "open %s", us);
  if (vs) {
    rep = NULL;
    check(vstor_snapshot(vs, d, NULL, 0, &rep) == 0 && sum(io_rbd, c2, NULL) == a &&
          rep && vstor_report_consistency(rep) == VSTOR_CONSISTENT_NONE,
          "clone of s1 has s1's data (no new snapshot taken)");
    vstor_report_free(rep);
    vstor_close(vs);
  }
  free(us); free(d);

  /* in use by another client: refused unless crash-consistent */
  struct other o;
  other_open(&o, "rbd", img);
  int before = nsnaps(io_rbd, img);
  checke(vstor_snapshot(v, "s3", NULL, 0, NULL) < 0 && code_is(VSTOR_E_NOTSUP) && nsnaps(io_rbd, img) == before,
        "in use: refused without CRASH_CONSISTENT, nothing made");
  rep = NULL;
  check(vstor_snapshot(v, "s3", NULL, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &rep) == 0 && rep &&
        vstor_report_consistency(rep) == VSTOR_CONSISTENT_CRASH && has_snap(io_rbd, img, "s3"),
        "in use + CRASH_CONSISTENT: snapshot reported crash-consistent");
  vstor_report_free(rep);
  other_close(&o);
  vstor_close(v);

  /* killed between the snapshot and the clone: recover removes both halves */
  char *c3 = nm("clone3");
  if (asprintf(&d, "rbd:rbd2/%s", c3) < 0) abort();
  char *snapname;
  if (asprintf(&snapname, "vstor-clone-%s", c3) < 0) abort();
  int st = child("rbd-snapshot-before-clone", "snapshot", u, d);
  check(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child killed before the clone");
  check(has_snap(io_rbd, img, snapname) && journal_records() == 1, "half-made: snapshot %s exists, one journal record",
        snapname);
  vstor_report *rr = NULL;
  check(vstor_recover(ctx, 0, &rr) == 0, "recover");
  vstor_report_free(rr);
  check(!has_snap(io_rbd, img, snapname) && !exists(io_rbd2, c3) && journal_records() == 0,
        "recover removed the half-made snapshot, no clone, journal empty");
  check(vstor_recover(ctx, 0, NULL) == 0, "recover again: nothing to do (idempotent)");
  free(d); free(snapname); free(c3); free(c2); free(cimg); free(img); free(u);
  return 0;
}

struct prog { int calls; uint64_t last_done, last_total; bool monotonic; };
static void on_progress(void *op, uint64_t done, uint64_t total)
{
  struct prog *p = op;
  if (done < p->last_done) p->monotonic = false;
  p->calls++;
  p->last_done = done;
  p->last_total = total;
}

static int t_migrate(void)
{
  char *img = nm("mig"), *u = uri("rbd", img), *d = uri("rbd2", img);
  const uint64_t size = 256 * MiB;
  mkimg(io_rbd, img, size);
  for (int i = 0; i < 8; i++) wr(io_rbd, img, (uint64_t)i * 32 * MiB, 8 * MiB, 100 + (uint32_t)i);
  rbd_image_t im;
  CHK(rbd_open(io_rbd, img, &im, NULL));
  CHK(rbd_snap_create(im, "before"));
  rbd_close(im);
  wr(io_rbd, img, 4 * MiB, 8 * MiB, 200);
  uint64_t h_head = sum(io_rbd, img, NULL), h_snap = sum(io_rbd, img, "before");
  check(h_head && h_snap && h_head != h_snap, "source: head and snapshot 'before' differ");

  vstor_vol *v = NULL;
  if (vstor_open(ctx, u, 0, &v) < 0) die("open", 0);
  vstor_job *j = NULL;
  vstor_report *rep = NULL;
  check(vstor_mirror(v, d, NULL, VSTOR_DRY_RUN, &j, &rep) == 0 && !j && rep &&
        vstor_report_step_count(rep) == 3 && !migrating(io_rbd, img) && !exists(io_rbd2, img),
        "dry run: 3 planned steps, nothing changed");
  vstor_report_free(rep);
  check(vstor_mirror(v, u, NULL, 0, &j, NULL) < 0 && code_is(VSTOR_E_INVAL), "mirror to itself: INVAL");
  check(vstor_mirror(v, "rbd:nosuchpool/x", NULL, 0, &j, NULL) < 0 && code_is(VSTOR_E_NOENT),
        "mirror to a missing pool: NOENT");
  checke(vstor_mirror(v, "/tmp/x.img", NULL, 0, &j, NULL) < 0 && code_is(VSTOR_E_INVAL),
        "mirror to a file: INVAL");
  check(vstor_mirror(v, d, NULL, VSTOR_MIRROR_VERIFY, &j, NULL) < 0 && code_is(VSTOR_E_NOTSUP),
        "VERIFY: NOTSUP");
  char *taken = nm("taken");
  mkimg(io_rbd2, taken, MiB);
  char *dt = uri("rbd2", taken);
  check(vstor_mirror(v, dt, NULL, 0, &j, NULL) < 0 && code_is(VSTOR_E_EXIST), "existing destination: EXIST");
  free(dt); free(taken);

  struct prog pg = { .monotonic = true };
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_progress(o, on_progress, &pg);
  double t0 = now();
  check(vstor_mirror(v, d, o, 0, &j, NULL) == 0 && j, "mirror %s -> %s started", u, d);
  vstor_opts_free(o);
  if (!j) die("mirror", 0);
  int wr_ = vstor_job_wait(j, 120000, 0);
  double t_ready = now() - t0;
  check(wr_ == 0 && vstor_job_state(j) == VSTOR_JOB_READY, "READY after %.2f s (%.1f MiB/s of image)",
        t_ready, (double)size / MiB / t_ready);
  uint64_t done = 0, total = 0;
  vstor_job_progress(j, &done, &total);
  check(done == size && total == size, "progress %llu/%llu", (unsigned long long)done, (unsigned long long)total);
  check(pg.calls >= 2 && pg.monotonic && pg.last_total == size, "progress callback called %d times, monotonic",
        pg.calls);
  check(migrating(io_rbd2, img), "RBD sees a migration in progress");
  checke(vstor_job_complete(j, 0) < 0 && code_is(VSTOR_E_NOTSUP) && vstor_job_state(j) == VSTOR_JOB_READY,
        "complete: NOTSUP, job stays READY");
  t0 = now();
  check(vstor_job_pivot(j, 0) == 0 && vstor_job_state(j) == VSTOR_JOB_PIVOTED, "pivot (commit) in %.2f s",
        now() - t0);
  vstor_job_free(j);
  check(!exists(io_rbd, img) && !migrating(io_rbd, img), "source gone from pool rbd");
  check(exists(io_rbd2, img) && !migrating(io_rbd2, img), "image now in pool rbd2, migration finished");
  check(sum(io_rbd2, img, NULL) == h_head, "head data identical (checksum)");
  check(has_snap(io_rbd2, img, "before") && sum(io_rbd2, img, "before") == h_snap,
        "snapshot 'before' kept with its data (checksum)");
  uint64_t sz = 0;
  check(strstr(vstor_vol_id(v), "rbd2/") && vstor_vol_size(v, &sz) == 0 && sz == size &&
        prop(v, "pool") && !strcmp(prop(v, "pool"), "rbd2"), "the volume handle now names rbd2 (%s)",
        S(vstor_vol_id(v)));
  check(vstor_extend(v, 2 * size, NULL, 0, NULL) == 0 && rsize(io_rbd2, img) == 2 * size,
        "the handle works on the destination (extend)");
  check(journal_records() == 0, "journal empty");
  vstor_close(v);
  free(img); free(u); free(d);
  return 0;
}

static int t_cancel(void)
{
  char *img = nm("can"), *u = uri("rbd", img), *d = uri("rbd2", img);
  mkimg(io_rbd, img, 128 * MiB);
  for (int i = 0; i < 4; i++) wr(io_rbd, img, (uint64_t)i * 32 * MiB, 8 * MiB, 300 + (uint32_t)i);
  rbd_image_t im;
  CHK(rbd_open(io_rbd, img, &im, NULL));
  CHK(rbd_snap_create(im, "keep"));
  rbd_close(im);
  uint64_t h = sum(io_rbd, img, NULL);
  vstor_vol *v = NULL;
  if (vstor_open(ctx, u, 0, &v) < 0) die("open", 0);

  /* cancel at READY */
  vstor_job *j = NULL;
  check(vstor_mirror(v, d, NULL, 0, &j, NULL) == 0 && vstor_job_wait(j, 120000, 0) == 0, "mirror READY");
  check(migrating(io_rbd2, img), "migration in progress");
  check(vstor_job_cancel(j, 0) == 0 && vstor_job_state(j) == VSTOR_JOB_CANCELLED, "cancel at READY (abort)");
  vstor_job_free(j);
  check(exists(io_rbd, img) && !migrating(io_rbd, img) && !exists(io_rbd2, img),
        "source back in rbd, no migration, no destination");
  check(sum(io_rbd, img, NULL) == h && has_snap(io_rbd, img, "keep"), "source data and snapshot intact");
  check(vstor_vol_refresh(v) == 0 && prop(v, "migration") == NULL, "the handle still works on the source");

  /* cancel right after the start: during prepare or the copy */
  j = NULL;
  check(vstor_mirror(v, d, NULL, 0, &j, NULL) == 0, "mirror started again");
  usleep(300000);
  check(vstor_job_cancel(j, 0) == 0 && vstor_job_state(j) == VSTOR_JOB_CANCELLED, "cancel while copying");
  vstor_job_free(j);
  check(exists(io_rbd, img) && !migrating(io_rbd, img) && !exists(io_rbd2, img) && sum(io_rbd, img, NULL) == h,
        "source intact, destination removed");
  /* free without pivot = cancel */
  check(vstor_mirror(v, d, NULL, 0, &j, NULL) == 0 && vstor_job_wait(j, 120000, 0) == 0, "mirror READY again");
  vstor_job_free(j);
  check(exists(io_rbd, img) && !exists(io_rbd2, img) && sum(io_rbd, img, NULL) == h,
        "job freed at READY: aborted, source intact");
  check(journal_records() == 0, "journal empty");
  vstor_close(v);

  /* the process dies after prepare: recover aborts the orphaned migration */
  int st = child("rbd-mirror-after-prepare", "mirror", u, d);
  check(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child killed after rbd_migration_prepare");
  check(migrating(io_rbd2, img) && journal_records() == 1, "orphaned migration, one journal record");
  vstor_report *rr = NULL;
  check(vstor_recover(ctx, 0, &rr) == 0, "recover: %s", rr && vstor_report_step_count(rr)
        ? vstor_report_step_detail(rr, 0) : "");
  vstor_report_free(rr);
  check(exists(io_rbd, img) && !migrating(io_rbd, img) && !exists(io_rbd2, img) &&
        sum(io_rbd, img, NULL) == h && journal_records() == 0, "source back and intact, journal empty");
  check(vstor_recover(ctx, 0, NULL) == 0, "recover again: nothing to do");
  free(img); free(u); free(d);
  return 0;
}

static int t_busy(void)
{
  char *img = nm("busy"), *u = uri("rbd", img), *d = uri("rbd2", img);
  mkimg(io_rbd, img, 64 * MiB);
  wr(io_rbd, img, 0, MiB, 7);
  uint64_t h = sum(io_rbd, img, NULL);
  vstor_vol *v = NULL;
  if (vstor_open(ctx, u, 0, &v) < 0) die("open", 0);
  struct other o;
  other_open(&o, "rbd", img);
  vstor_job *j = NULL;
  checke(vstor_mirror(v, d, NULL, 0, &j, NULL) < 0 && code_is(VSTOR_E_BUSY) && msg_has("in use") && !j,
        "mirror while another client has it open: BUSY");
  check(!migrating(io_rbd, img) && !exists(io_rbd2, img), "nothing changed: no migration, no destination");
  char *why = NULL;
  check(vstor_vol_can(v, VSTOR_OP_MIRROR, 0, &why) == 0 && why && strstr(why, "libvirt"),
        "caps say why and what applies instead (%s)", S(why));
  free(why);
  check(journal_records() == 0, "no journal record");
  other_close(&o);
  uint64_t h2 = sum(io_rbd, img, NULL);
  check(h2 != h, "(the other client had written)");
  check(vstor_vol_can(v, VSTOR_OP_MIRROR, 0, NULL) == 1, "closed everywhere: mirror possible again");
  check(vstor_mirror(v, d, NULL, 0, &j, NULL) == 0 && vstor_job_wait(j, 120000, 0) == 0 &&
        vstor_job_pivot(j, 0) == 0, "then the migration goes through");
  vstor_job_free(j);
  check(sum(io_rbd2, img, NULL) == h2, "data identical after the migration");
  vstor_close(v);
  free(img); free(u); free(d);
  return 0;
}

static int lab(const char *what)
{
  const char *sh = getenv("LAB_CEPH_SH");
  char *cmd;
  if (!sh || asprintf(&cmd, "%s %s", sh, what) < 0) die("LAB_CEPH_SH not set", 0);
  int r = system(cmd);
  free(cmd);
  return r;
}

static int t_timeout(void)
{
  char *img = nm("to"), *u = uri("rbd", img);
  mkimg(io_rbd, img, 64 * MiB);
  vstor_vol *v = NULL, *v2 = NULL;
  /* A 4 s bound for the OSD part: the OSD stays paused < 10 s, well under
   * its 20 s heartbeat grace (a longer stop makes it re-peer on resume and
   * the cluster serves nothing for a while).  The monitor part below uses
   * the default bound (10 s). */
  setenv("VSTOR_RBD_TIMEOUT", "4", 1);
  if (vstor_open(ctx, u, 0, &v) < 0) die("open", 0);

  /* the OSD stops answering: a call on an open handle (cached connection) */
  check(lab("pause-osd") == 0, "OSD paused (SIGSTOP)");
  double t0 = now();
  int r = vstor_extend(v, 128 * MiB, NULL, 0, NULL);
  double dt = now() - t0;
  checke(r < 0 && code_is(VSTOR_E_TIMEOUT), "extend with the OSD paused: TIMEOUT");
  check(dt >= 3.5 && dt < 8, "  within the bound ($VSTOR_RBD_TIMEOUT=4): %.1f s", dt);
  t0 = now();
  r = vstor_open(ctx, u, 0, &v2);
  dt = now() - t0;
  check(r < 0 && code_is(VSTOR_E_TIMEOUT) && dt < 8, "open with the OSD paused: TIMEOUT in %.1f s", dt);
  check(lab("resume-osd") == 0, "OSD resumed");
  t0 = now();
  check(lab("wait-ok 60") == 0, "cluster healthy again after %.1f s", now() - t0);
  t0 = now();
  check(vstor_extend(v, 128 * MiB, NULL, 0, NULL) == 0 && rsize(io_rbd, img) == 128 * MiB,
        "the same handle works again (%.1f s)", now() - t0);
  vstor_close(v);
  unsetenv("VSTOR_RBD_TIMEOUT");

  /* the monitor is stopped: a new connection (default bound, 10 s), in a
   * new context (a context keeps its connection until it is freed) */
  vstor_ctx_free(ctx);
  ctx = vstor_ctx_new(0);
  if (!ctx) die("vstor_ctx_new", 0);
  rbd_remove(io_rbd, img);
  rados_ioctx_destroy(io_rbd); rados_ioctx_destroy(io_rbd2); rados_ioctx_destroy(io_ns1);
  rados_shutdown(cl);
  check(lab("stop-mon") == 0, "monitor stopped");
  t0 = now();
  r = vstor_open(ctx, u, 0, &v2);
  dt = now() - t0;
  checke(r < 0 && code_is(VSTOR_E_TIMEOUT) && msg_has("cluster not reachable"),
        "open with the monitor stopped: TIMEOUT");
  check(dt < 15, "  within the bound: %.1f s (no hang)", dt);
  check(vstor_backend_can(ctx, "rbd", VSTOR_OP_EXTEND, NULL) == 1,
        "backend availability does not touch the cluster (answers at once)");
  check(lab("start-mon") == 0 && lab("wait-ok 60") == 0, "monitor restarted, cluster healthy");
  t0 = now();
  r = vstor_open(ctx, "rbd:rbd/nosuchimage", 0, &v2);
  check(r < 0 && code_is(VSTOR_E_NOENT), "cluster answers again (%.1f s)", now() - t0);
  free(img); free(u);
  return 0;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) {
    fprintf(stderr, "usage: test-rbd open|extend|snapshot|migrate|cancel|busy|timeout\n");
    return 2;
  }
  if (!getenv("CEPH_CONF")) { printf("Bail out! CEPH_CONF not set (run through run-lab.sh)\n"); return 1; }
  snprintf(state_dir, sizeof state_dir, "/tmp/vstor-lab-rbd-state.%d", (int)getpid());
  if (!strcmp(argv[1], "child") && getenv("VSTOR_STATE_DIR"))
    snprintf(state_dir, sizeof state_dir, "%s", getenv("VSTOR_STATE_DIR"));
  setenv("VSTOR_STATE_DIR", state_dir, 1);
  ctx = vstor_ctx_new(0);
  if (!ctx) die("vstor_ctx_new", 0);
  if (!strcmp(argv[1], "child")) return child_main(argc, argv);

  snprintf(P, sizeof P, "t%d", (int)getpid());
  CHK(rados_create2(&cl, "ceph", "client.admin", 0));
  CHK(rados_conf_read_file(cl, NULL));
  /* the test's own client is bounded too: a check must fail, not hang */
  rados_conf_set(cl, "client_mount_timeout", "20");
  rados_conf_set(cl, "rados_osd_op_timeout", "30");
  rados_conf_set(cl, "rados_mon_op_timeout", "30");
  CHK(rados_connect(cl));
  CHK(rados_ioctx_create(cl, "rbd", &io_rbd));
  CHK(rados_ioctx_create(cl, "rbd2", &io_rbd2));
  CHK(rados_ioctx_create(cl, "rbd", &io_ns1));
  rados_ioctx_set_namespace(io_ns1, "ns1");
  double t0 = now();
  printf("# group %s, images %s-*, state %s\n", argv[1], P, state_dir);
  int r;
  if (!strcmp(argv[1], "open")) r = t_open();
  else if (!strcmp(argv[1], "extend")) r = t_extend();
  else if (!strcmp(argv[1], "snapshot")) r = t_snapshot();
  else if (!strcmp(argv[1], "migrate")) r = t_migrate();
  else if (!strcmp(argv[1], "cancel")) r = t_cancel();
  else if (!strcmp(argv[1], "busy")) r = t_busy();
  else if (!strcmp(argv[1], "timeout")) r = t_timeout();
  else { fprintf(stderr, "unknown group %s\n", argv[1]); return 2; }
  (void)r;
  vstor_ctx_free(ctx);
  char *cmd;
  if (asprintf(&cmd, "rm -rf %s", state_dir) >= 0) { if (system(cmd) != 0) {} free(cmd); }
  printf("1..%d\n# %s: %.1f s\n%d passed, %d failed\n", npass + nfail, argv[1], now() - t0, npass, nfail);
  return nfail ? 1 : 0;
}
