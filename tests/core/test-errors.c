/* libvstor core tests - every error path of the public API
 *
 * Each case checks the return value, the stable code, errno and that the
 * message starts with the public call's name.  Also: success leaves the
 * last error untouched, the last error is per thread, the module loader
 * refuses missing, foreign-ABI and non-modules with NOTSUP, jobs refuse
 * calls in the wrong state.  Plain image files in a temporary directory:
 * no root, no loop device.
 *   test-errors FAKE_MODULE_DIR
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core-test.h"

#define MiB (1024ull * 1024)
static char tmp[256];
static const char *fake_dir;
static vstor_ctx *ctx;
static int nimg;

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w)
{
  (void)st; (void)f; (void)w;
  return remove(p);
}

static char *path_in_tmp(const char *name)
{
  char *p;
  assert_true(asprintf(&p, "%s/%s", tmp, name) > 0);
  return p;
}

/* A raw image with `data_mib` MiB of real data (so a mirror has work). */
static char *mkimg(unsigned mib, unsigned data_mib)
{
  char name[32];
  snprintf(name, sizeof name, "img%d", nimg++);
  char *p = path_in_tmp(name);
  int fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)(mib * MiB)), 0);
  char buf[65536];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 31 + 7);
  for (uint64_t off = 0; off < data_mib * MiB; off += sizeof buf)
    assert_int_equal(pwrite(fd, buf, sizeof buf, (off_t)off), (ssize_t)sizeof buf);
  close(fd);
  return p;
}

static vstor_vol *open_img(const char *path, unsigned flags)
{
  vstor_vol *v = NULL;
  if (vstor_open(ctx, path, flags, &v) != 0) {
    print_error("open %s: %s\n", path, vstor_last_error());
    fail();
  }
  return v;
}

static int setup(void **state)
{
  (void)state;
  const char *t = getenv("TMPDIR");
  snprintf(tmp, sizeof tmp, "%s/vstor-errors-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(tmp)) return -1;
  ctx = vstor_ctx_new(0);
  if (!ctx) return -1;
  char *sd;
  if (asprintf(&sd, "%s/state", tmp) < 0) return -1;
  int r = vstor_ctx_set_state_dir(ctx, sd);
  free(sd);
  return r;
}

static int teardown(void **state)
{
  (void)state;
  vstor_ctx_free(ctx);
  nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}

/* ---- context ------------------------------------------------------- */

static void test_ctx_new(void **state)
{
  (void)state;
  assert_null(vstor_ctx_new(1));
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_new", NULL);
  assert_null(vstor_ctx_new(VSTOR_DRY_RUN));
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_new", NULL);

  char *old = getenv("VSTOR_STATE_DIR") ? strdup(getenv("VSTOR_STATE_DIR")) : NULL;
  setenv("VSTOR_STATE_DIR", "relative/state", 1);
  assert_null(vstor_ctx_new(0));
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_new", "relative/state");
  assert_non_null(strstr(vstor_last_error(), "VSTOR_STATE_DIR"));
  if (old) setenv("VSTOR_STATE_DIR", old, 1); else unsetenv("VSTOR_STATE_DIR");
  free(old);

  old = getenv("VSTOR_BACKEND_DIR") ? strdup(getenv("VSTOR_BACKEND_DIR")) : NULL;
  setenv("VSTOR_BACKEND_DIR", "build/lib/backends", 1);
  assert_null(vstor_ctx_new(0));
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_new", "build/lib/backends");
  if (old) setenv("VSTOR_BACKEND_DIR", old, 1); else unsetenv("VSTOR_BACKEND_DIR");
  free(old);
}

static void test_ctx_setters(void **state)
{
  (void)state;
  assert_int_equal(vstor_ctx_set_state_dir(NULL, "/x"), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_state_dir", NULL);
  assert_int_equal(vstor_ctx_set_state_dir(ctx, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_state_dir", NULL);
  const char *before = vstor_ctx_state_dir(ctx);
  char *keep = strdup(before);
  assert_int_equal(vstor_ctx_set_state_dir(ctx, "var/lib/vstor"), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_state_dir", "var/lib/vstor");
  assert_int_equal(vstor_ctx_set_state_dir(ctx, ""), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_state_dir", "");
  assert_string_equal(vstor_ctx_state_dir(ctx), keep);  /* unchanged */
  free(keep);
  assert_null(vstor_ctx_state_dir(NULL));

  assert_int_equal(vstor_ctx_set_backend_dir(NULL, "/x"), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_backend_dir", NULL);
  assert_int_equal(vstor_ctx_set_backend_dir(ctx, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_backend_dir", NULL);
  assert_int_equal(vstor_ctx_set_backend_dir(ctx, "backends"), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_backend_dir", "backends");

  assert_int_equal(vstor_ctx_set_log(NULL, NULL, NULL, VSTOR_LOG_INFO), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_log", NULL);
  assert_int_equal(vstor_ctx_set_log(ctx, NULL, NULL, -1), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_log", NULL);
  assert_int_equal(vstor_ctx_set_log(ctx, NULL, NULL, VSTOR_LOG_DEBUG + 1), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_ctx_set_log", NULL);
  vstor_ctx_free(NULL);  /* a no-op */
}

static void test_ctx_free_live_volume(void **state)
{
  (void)state;
  vstor_ctx *c = vstor_ctx_new(0);
  assert_non_null(c);
  char *sd = path_in_tmp("state2");
  assert_int_equal(vstor_ctx_set_state_dir(c, sd), 0);
  char *img = mkimg(4, 0);
  vstor_vol *v = NULL;
  assert_int_equal(vstor_open(c, img, 0, &v), 0);
  vstor_ctx_free(c);  /* refused: the volume is live */
  assert_error(VSTOR_E_STATE, EBUSY, "vstor_ctx_free", NULL);
  assert_non_null(strstr(vstor_last_error(), "1 volume"));
  /* the context and the volume still work */
  assert_string_equal(vstor_ctx_state_dir(c), sd);
  uint64_t size = 0;
  assert_int_equal(vstor_vol_size(v, &size), 0);
  assert_int_equal(size, 4 * MiB);
  vstor_vol *w = NULL;
  assert_int_equal(vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &w), 0);
  assert_int_equal(vstor_extend(w, 5 * MiB, NULL, 0, NULL), 0);
  assert_int_equal(vstor_close(w), 0);
  assert_int_equal(vstor_close(v), 0);
  vstor_ctx_free(c);  /* now it goes (valgrind/ASan would see a leak otherwise) */
  free(sd);
  free(img);
}

/* ---- backends and modules ------------------------------------------ */

static void test_backend_can_args(void **state)
{
  (void)state;
  char *why = (char *)1;
  assert_int_equal(vstor_backend_can(NULL, "file", VSTOR_OP_EXTEND, &why), -1);
  assert_null(why);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_backend_can", NULL);
  assert_int_equal(vstor_backend_can(ctx, NULL, VSTOR_OP_EXTEND, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_backend_can", NULL);
  assert_int_equal(vstor_backend_can(ctx, "file", VSTOR_OP__COUNT, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_backend_can", NULL);
  assert_non_null(strstr(vstor_last_error(), "unknown operation 7"));
  assert_int_equal(vstor_backend_can(ctx, "file", -2, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_backend_can", NULL);
  assert_int_equal(vstor_backend_can(ctx, "file", 1000, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_backend_can", NULL);
  /* an unknown backend: "no", with the reason */
  why = NULL;
  assert_int_equal(vstor_backend_can(ctx, "nfs", VSTOR_OP_EXTEND, &why), 0);
  assert_non_null(why);
  assert_non_null(strstr(why, "nfs"));
  free(why);
  /* names and counts */
  assert_int_equal(vstor_backend_count(), 5);
  assert_null(vstor_backend_name(5));
  assert_null(vstor_backend_name((size_t)-1));
  assert_null(vstor_op_name(-1));
  assert_null(vstor_op_name(VSTOR_OP__COUNT));
  assert_null(vstor_code_name(-1));
  assert_null(vstor_code_name(VSTOR_E_PARTIAL + 1));
  assert_string_equal(vstor_code_name(VSTOR_E_BUSY), "BUSY");
  assert_null(vstor_job_state_name(-1));
  assert_null(vstor_job_state_name(VSTOR_JOB_FAILED + 1));
}

static void test_module_missing(void **state)
{
  (void)state;
  char *empty = path_in_tmp("no-modules");
  assert_int_equal(mkdir(empty, 0700), 0);
  vstor_ctx *c = vstor_ctx_new(0);
  assert_non_null(c);
  assert_int_equal(vstor_ctx_set_backend_dir(c, empty), 0);
  char *sd = path_in_tmp("state-mm");
  assert_int_equal(vstor_ctx_set_state_dir(c, sd), 0);
  vstor_vol *v = (vstor_vol *)1;
  assert_int_equal(vstor_open(c, "lvm:vg/lv", 0, &v), -1);
  assert_null(v);
  assert_error(VSTOR_E_NOTSUP, ENOENT, "vstor_open", "lvm");
  assert_non_null(strstr(vstor_last_error(), "vstor-lvm.so"));
  assert_non_null(strstr(vstor_last_error(), empty));
  const char *uris[] = { "libvirt:vm/vda", "xen:dom/xvda", "rbd:pool/img" };
  const char *mods[] = { "vstor-libvirt.so", "vstor-xen.so", "vstor-rbd.so" };
  for (int i = 0; i < 3; i++) {
    assert_int_equal(vstor_open(c, uris[i], 0, &v), -1);
    assert_error(VSTOR_E_NOTSUP, ENOENT, "vstor_open", NULL);
    assert_non_null(strstr(vstor_last_error(), mods[i]));
  }
  /* capability query: "no", with the reason naming the module */
  char *why = NULL;
  assert_int_equal(vstor_backend_can(c, "lvm", VSTOR_OP_EXTEND, &why), 0);
  assert_non_null(why);
  assert_non_null(strstr(why, "vstor-lvm.so"));
  free(why);
  assert_int_equal(vstor_backend_can(c, "lvm", VSTOR_OP_EXTEND, NULL), 0);
  /* the file backend is built in: it needs no module */
  assert_int_equal(vstor_backend_can(c, "file", VSTOR_OP_EXTEND, NULL), 1);
  vstor_ctx_free(c);
  free(empty);
  free(sd);
}

static void test_module_broken(void **state)
{
  (void)state;
  vstor_ctx *c = vstor_ctx_new(0);
  assert_non_null(c);
  assert_int_equal(vstor_ctx_set_backend_dir(c, fake_dir), 0);
  vstor_vol *v = (vstor_vol *)1;
  /* vstor-xen.so: built for backend ABI 999 */
  assert_int_equal(vstor_open(c, "xen:dom/xvda", 0, &v), -1);
  assert_null(v);
  assert_error(VSTOR_E_NOTSUP, 0, "vstor_open", "xen");
  assert_non_null(strstr(vstor_last_error(), "another libvstor"));
  assert_non_null(strstr(vstor_last_error(), "999"));
  char *why = NULL;
  assert_int_equal(vstor_backend_can(c, "xen", VSTOR_OP_SNAPSHOT, &why), 0);
  assert_non_null(why);
  assert_non_null(strstr(why, "999"));
  free(why);
  /* vstor-rbd.so: no vstor_backend_init */
  assert_int_equal(vstor_open(c, "rbd:pool/img", 0, &v), -1);
  assert_error(VSTOR_E_NOTSUP, ENOENT, "vstor_open", "rbd");
  assert_non_null(strstr(vstor_last_error(), "not a libvstor module"));
  /* vstor-libvirt.so: init returns NULL */
  assert_int_equal(vstor_open(c, "libvirt:vm/vda", 0, &v), -1);
  assert_error(VSTOR_E_NOTSUP, 0, "vstor_open", "libvirt");
  /* refused again the same way (not cached as loaded) */
  assert_int_equal(vstor_open(c, "xen:dom/xvda", 0, &v), -1);
  assert_error(VSTOR_E_NOTSUP, 0, "vstor_open", "xen");
  vstor_ctx_free(c);
}

/* ---- volumes ------------------------------------------------------- */

static void test_open_args(void **state)
{
  (void)state;
  char *img = mkimg(4, 0);
  vstor_vol *v = (vstor_vol *)1;
  assert_int_equal(vstor_open(NULL, img, 0, &v), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_open", NULL);
  assert_int_equal(vstor_open(ctx, NULL, 0, &v), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_open", NULL);
  assert_int_equal(vstor_open(ctx, img, 0, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_open", NULL);
  v = (vstor_vol *)1;
  assert_int_equal(vstor_open(ctx, img, 1u << 2, &v), -1);
  assert_null(v);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_open", NULL);
  assert_non_null(strstr(vstor_last_error(), "0x4"));
  assert_int_equal(vstor_open(ctx, img, VSTOR_DRY_RUN, &v), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_open", NULL);
  /* no such file */
  char *gone = path_in_tmp("does-not-exist");
  assert_int_equal(vstor_open(ctx, gone, 0, &v), -1);
  assert_error(VSTOR_E_NOENT, ENOENT, "vstor_open", NULL);
  assert_non_null(strstr(vstor_last_error(), gone));
  /* a directory */
  assert_int_equal(vstor_open(ctx, tmp, 0, &v), -1);
  assert_error(VSTOR_E_INVAL, EISDIR, "vstor_open", NULL);
  assert_int_equal(vstor_close(NULL), 0);
  free(gone);
  free(img);
}

static void test_vol_args(void **state)
{
  (void)state;
  char *img = mkimg(4, 0);
  vstor_vol *v = open_img(img, 0);
  uint64_t s;
  assert_int_equal(vstor_vol_size(NULL, &s), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_vol_size", NULL);
  assert_int_equal(vstor_vol_size(v, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_vol_size", NULL);
  assert_int_equal(vstor_vol_refresh(NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_vol_refresh", NULL);
  char *why = (char *)1;
  assert_int_equal(vstor_vol_can(NULL, VSTOR_OP_EXTEND, 0, &why), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_vol_can", NULL);
  assert_int_equal(vstor_vol_can(v, -1, 0, &why), -1);
  assert_null(why);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_vol_can", NULL);
  assert_int_equal(vstor_vol_can(v, VSTOR_OP__COUNT, 0, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_vol_can", NULL);
  assert_non_null(strstr(vstor_last_error(), "unknown operation 7"));
  /* accessors on NULL or past the end: NULL / 0, no crash */
  assert_null(vstor_vol_backend(NULL));
  assert_null(vstor_vol_id(NULL));
  assert_int_equal(vstor_vol_layer_count(NULL), 0);
  assert_null(vstor_vol_layer(NULL, 0));
  assert_null(vstor_vol_layer(v, vstor_vol_layer_count(v)));
  assert_null(vstor_layer_role(NULL));
  assert_null(vstor_layer_type(NULL));
  assert_null(vstor_layer_path(NULL));
  assert_int_equal(vstor_layer_size(NULL), 0);
  assert_null(vstor_layer_prop_key(NULL, 0));
  assert_null(vstor_layer_prop(NULL, "mountpoint"));
  assert_null(vstor_layer_prop(vstor_vol_layer(v, 0), NULL));
  assert_null(vstor_layer_prop(vstor_vol_layer(v, 0), "no-such-key"));
  assert_int_equal(vstor_report_step_count(NULL), 0);
  assert_null(vstor_report_step_layer(NULL, 0));
  assert_int_equal(vstor_report_step_status(NULL, 0), -1);
  assert_int_equal(vstor_report_step_reversible(NULL, 0), -1);
  assert_null(vstor_report_method(NULL));
  vstor_report_free(NULL);
  assert_int_equal(vstor_close(v), 0);
  free(img);
}

static void test_opts(void **state)
{
  (void)state;
  vstor_opts *o = vstor_opts_new();
  assert_non_null(o);
  assert_int_equal(vstor_opts_set_freeze_timeout_ms(NULL, 10), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_opts_set_freeze_timeout_ms", NULL);
  assert_int_equal(vstor_opts_set_freeze_timeout_ms(o, 0), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_opts_set_freeze_timeout_ms", NULL);
  assert_int_equal(vstor_opts_set_freeze_timeout_ms(o, 600001), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_opts_set_freeze_timeout_ms", NULL);
  assert_int_equal(vstor_opts_set_freeze_timeout_ms(o, UINT32_MAX), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_opts_set_freeze_timeout_ms", NULL);
  assert_int_equal(vstor_opts_set_freeze_timeout_ms(o, 1), 0);
  assert_int_equal(vstor_opts_set_freeze_timeout_ms(o, 600000), 0);
  assert_int_equal(vstor_opts_set_speed(NULL, 1), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_opts_set_speed", NULL);
  assert_int_equal(vstor_opts_set_snapshot_size(NULL, 1), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_opts_set_snapshot_size", NULL);
  assert_int_equal(vstor_opts_set_snapshot_size(o, (uint64_t)INT64_MAX + 1), -1);
  assert_error(VSTOR_E_INVAL, ERANGE, "vstor_opts_set_snapshot_size", NULL);
  assert_int_equal(vstor_opts_set_snapshot_size(o, (uint64_t)INT64_MAX), 0);
  assert_int_equal(vstor_opts_set_progress(NULL, NULL, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_opts_set_progress", NULL);
  vstor_opts_free(o);
  vstor_opts_free(NULL);
}

/* ---- operations ---------------------------------------------------- */

static void test_extend_errors(void **state)
{
  (void)state;
  char *img = mkimg(4, 0);
  vstor_vol *v = open_img(img, 0);
  vstor_report *rep = (vstor_report *)1;
  assert_int_equal(vstor_extend(NULL, 8 * MiB, NULL, 0, &rep), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_extend", NULL);
  assert_int_equal(vstor_extend(v, 8 * MiB, NULL, 1u << 2, &rep), -1);
  assert_null(rep);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_extend", NULL);
  assert_int_equal(vstor_extend(v, 8 * MiB, NULL, 1u << 30, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_extend", NULL);
  assert_int_equal(vstor_extend(v, (uint64_t)INT64_MAX + 1, NULL, 0, NULL), -1);
  assert_error(VSTOR_E_INVAL, EFBIG, "vstor_extend", NULL);
  /* shrinking is refused and changes nothing */
  assert_int_equal(vstor_extend(v, 2 * MiB, NULL, 0, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_extend", NULL);
  assert_non_null(strstr(vstor_last_error(), img));
  assert_non_null(strstr(vstor_last_error(), "shrink"));
  assert_int_equal(vstor_extend(v, 4 * MiB + 1, NULL, 0, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_extend", NULL);
  struct stat st;
  assert_int_equal(stat(img, &st), 0);
  assert_int_equal(st.st_size, 4 * MiB);
  /* filesystem growth asked on a volume without one */
  assert_int_equal(vstor_extend(v, 8 * MiB, NULL, VSTOR_EXTEND_RESIZE_FS, NULL), -1);
  assert_error(VSTOR_E_NOTSUP, -1, "vstor_extend", NULL);
  assert_int_equal(stat(img, &st), 0);
  assert_int_equal(st.st_size, 4 * MiB);
  /* read-only handle */
  vstor_vol *ro = open_img(img, VSTOR_OPEN_READONLY);
  assert_int_equal(vstor_extend(ro, 8 * MiB, NULL, 0, NULL), -1);
  assert_error(VSTOR_E_PERM, EROFS, "vstor_extend", NULL);
  char *why = NULL;
  assert_int_equal(vstor_vol_can(ro, VSTOR_OP_EXTEND, 0, &why), 0);
  assert_non_null(why);
  free(why);
  assert_int_equal(vstor_close(ro), 0);
  assert_int_equal(vstor_close(v), 0);
  free(img);
}

static void test_snapshot_errors(void **state)
{
  (void)state;
  char *img = mkimg(4, 1), *dest = path_in_tmp("snap-dest");
  vstor_vol *v = open_img(img, 0);
  vstor_report *rep = (vstor_report *)1;
  assert_int_equal(vstor_snapshot(NULL, dest, NULL, 0, &rep), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_snapshot", NULL);
  assert_int_equal(vstor_snapshot(v, NULL, NULL, 0, &rep), -1);
  assert_null(rep);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_snapshot", NULL);
  assert_int_equal(vstor_snapshot(v, "", NULL, 0, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_snapshot", NULL);
  assert_int_equal(vstor_snapshot(v, "/tmp/a\nb", NULL, 0, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_snapshot", NULL);
  assert_int_equal(vstor_snapshot(v, dest, NULL, 1u << 5, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_snapshot", NULL);
  assert_int_equal(vstor_snapshot(v, "relative-dest", NULL, 0, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_snapshot", "relative-dest");
  assert_int_equal(access(dest, F_OK), -1);
  /* the destination exists */
  int fd = open(dest, O_CREAT | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(vstor_snapshot(v, dest, NULL, 0, NULL), -1);
  assert_error(VSTOR_E_EXIST, EEXIST, "vstor_snapshot", NULL);
  assert_non_null(strstr(vstor_last_error(), dest));
  struct stat st;
  assert_int_equal(stat(dest, &st), 0);
  assert_int_equal(st.st_size, 0);  /* untouched */
  char *nodir = path_in_tmp("no-such-dir/snap");
  assert_int_equal(vstor_snapshot(v, nodir, NULL, 0, NULL), -1);
  assert_error(VSTOR_E_NOENT, ENOENT, "vstor_snapshot", NULL);
  assert_int_equal(vstor_close(v), 0);
  free(nodir);
  free(img);
  free(dest);
}

static void test_mirror_errors(void **state)
{
  (void)state;
  char *img = mkimg(4, 1), *dest = path_in_tmp("mirror-dest");
  vstor_vol *v = open_img(img, 0);
  vstor_job *job = (vstor_job *)1;
  assert_int_equal(vstor_mirror(NULL, dest, NULL, 0, &job, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_mirror", NULL);
  assert_int_equal(vstor_mirror(v, dest, NULL, 0, NULL, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_mirror", NULL);
  job = (vstor_job *)1;
  assert_int_equal(vstor_mirror(v, NULL, NULL, 0, &job, NULL), -1);
  assert_null(job);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_mirror", NULL);
  assert_int_equal(vstor_mirror(v, dest, NULL, 1u << 3, &job, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_mirror", NULL);
  assert_int_equal(vstor_mirror(v, "/x\x01y", NULL, 0, &job, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_mirror", NULL);
  assert_int_equal(access(dest, F_OK), -1);
  /* read-only handle */
  vstor_vol *ro = open_img(img, VSTOR_OPEN_READONLY);
  assert_int_equal(vstor_mirror(ro, dest, NULL, 0, &job, NULL), -1);
  assert_error(VSTOR_E_PERM, EROFS, "vstor_mirror", NULL);
  assert_int_equal(vstor_close(ro), 0);
  /* dry run: no job */
  vstor_report *rep = NULL;
  job = (vstor_job *)1;
  assert_int_equal(vstor_mirror(v, dest, NULL, VSTOR_DRY_RUN, &job, &rep), 0);
  assert_null(job);
  assert_non_null(rep);
  vstor_report_free(rep);
  assert_int_equal(access(dest, F_OK), -1);
  assert_int_equal(vstor_close(v), 0);
  free(img);
  free(dest);
}

static void test_recover_errors(void **state)
{
  (void)state;
  vstor_report *rep = (vstor_report *)1;
  assert_int_equal(vstor_recover(NULL, 0, &rep), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_recover", NULL);
  assert_int_equal(vstor_recover(ctx, 1, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_recover", NULL);
  rep = NULL;
  assert_int_equal(vstor_recover(ctx, VSTOR_DRY_RUN, &rep), 0);
  vstor_report_free(rep);
}

/* ---- jobs ---------------------------------------------------------- */

static void test_job_null(void **state)
{
  (void)state;
  uint64_t d, t;
  assert_int_equal(vstor_job_state(NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_state", NULL);
  assert_int_equal(vstor_job_progress(NULL, &d, &t), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_progress", NULL);
  assert_int_equal(vstor_job_wait(NULL, 0, 0), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_wait", NULL);
  assert_int_equal(vstor_job_fd(NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_fd", NULL);
  assert_int_equal(vstor_job_set_speed(NULL, 1), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_set_speed", NULL);
  assert_int_equal(vstor_job_cancel(NULL, 0), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_cancel", NULL);
  assert_int_equal(vstor_job_pivot(NULL, 0), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_pivot", NULL);
  assert_int_equal(vstor_job_complete(NULL, 0), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_complete", NULL);
  assert_null(vstor_job_dest(NULL));
  vstor_job_free(NULL);
}

/* A job copying 8 MiB at 256 KiB/s: RUNNING for ~30 s unless cancelled. */
static vstor_job *slow_job(vstor_vol *v, const char *dest)
{
  vstor_opts *o = vstor_opts_new();
  assert_int_equal(vstor_opts_set_speed(o, 256 * 1024), 0);
  vstor_job *job = NULL;
  if (vstor_mirror(v, dest, o, 0, &job, NULL) != 0) {
    print_error("mirror: %s\n", vstor_last_error());
    fail();
  }
  vstor_opts_free(o);
  return job;
}

static void test_job_states(void **state)
{
  (void)state;
  char *img = mkimg(8, 8), *dest = path_in_tmp("job-dest");
  vstor_vol *v = open_img(img, 0);
  vstor_job *job = slow_job(v, dest);
  uint64_t d, t;
  assert_int_equal(vstor_job_progress(job, NULL, &t), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_progress", NULL);
  assert_int_equal(vstor_job_progress(job, &d, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_progress", NULL);
  /* flags must be 0 */
  assert_int_equal(vstor_job_wait(job, 0, 1), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_wait", NULL);
  /* core bug: vstor_job_pivot/complete check flags before naming the
   * call, so the message carries the previous call's name */
  assert_int_equal(vstor_job_pivot(job, 1), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_pivot", NULL);
  assert_int_equal(vstor_job_complete(job, 1u << 31), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_complete", NULL);
  assert_int_equal(vstor_job_cancel(job, 2), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_job_cancel", NULL);
  /* not READY yet: bounded wait times out, pivot/complete refused */
  assert_int_equal(vstor_job_wait(job, 50, 0), -1);
  assert_error(VSTOR_E_TIMEOUT, ETIMEDOUT, "vstor_job_wait", NULL);
  int s = vstor_job_state(job);
  assert_true(s == VSTOR_JOB_PENDING || s == VSTOR_JOB_RUNNING);
  assert_int_equal(vstor_job_pivot(job, 0), -1);
  assert_error(VSTOR_E_STATE, EINVAL, "vstor_job_pivot", NULL);
  assert_non_null(strstr(vstor_last_error(), "not READY"));
  assert_int_equal(vstor_job_complete(job, 0), -1);
  assert_error(VSTOR_E_STATE, EINVAL, "vstor_job_complete", NULL);
  /* closing the volume with a live job is refused; the handle stays valid */
  assert_int_equal(vstor_close(v), -1);
  assert_error(VSTOR_E_STATE, EBUSY, "vstor_close", NULL);
  uint64_t size;
  assert_int_equal(vstor_vol_size(v, &size), 0);
  assert_int_equal(size, 8 * MiB);
  /* another operation meanwhile: the job holds the volume lock */
  assert_int_equal(vstor_extend(v, 16 * MiB, NULL, 0, NULL), -1);
  assert_error(VSTOR_E_BUSY, EBUSY, "vstor_extend", NULL);
  /* cancel: CANCELLED, the partial copy removed */
  assert_int_equal(vstor_job_cancel(job, 0), 0);
  assert_int_equal(vstor_job_state(job), VSTOR_JOB_CANCELLED);
  assert_int_equal(access(dest, F_OK), -1);
  assert_int_equal(vstor_job_cancel(job, 0), -1);
  assert_error(VSTOR_E_STATE, EINVAL, "vstor_job_cancel", NULL);
  assert_non_null(strstr(vstor_last_error(), "CANCELLED"));
  assert_int_equal(vstor_job_pivot(job, 0), -1);
  assert_error(VSTOR_E_STATE, EINVAL, "vstor_job_pivot", NULL);
  assert_int_equal(vstor_job_complete(job, 0), -1);
  assert_error(VSTOR_E_STATE, EINVAL, "vstor_job_complete", NULL);
  vstor_job_free(job);
  /* now the lock is free again and the volume closes */
  assert_int_equal(vstor_extend(v, 16 * MiB, NULL, 0, NULL), 0);

  /* a finished job: READY, complete, then nothing else is permitted */
  char *dest2 = path_in_tmp("job-dest2");
  job = NULL;
  assert_int_equal(vstor_mirror(v, dest2, NULL, 0, &job, NULL), 0);
  assert_int_equal(vstor_job_wait(job, 30000, 0), 0);
  assert_int_equal(vstor_job_state(job), VSTOR_JOB_READY);
  assert_int_equal(vstor_job_complete(job, 0), 0);
  assert_int_equal(vstor_job_state(job), VSTOR_JOB_COMPLETED);
  assert_int_equal(vstor_job_pivot(job, 0), -1);
  assert_error(VSTOR_E_STATE, EINVAL, "vstor_job_pivot", NULL);
  assert_non_null(strstr(vstor_last_error(), "COMPLETED"));
  assert_int_equal(vstor_job_complete(job, 0), -1);
  assert_error(VSTOR_E_STATE, EINVAL, "vstor_job_complete", NULL);
  assert_int_equal(vstor_job_cancel(job, 0), -1);
  assert_error(VSTOR_E_STATE, EINVAL, "vstor_job_cancel", NULL);
  assert_int_equal(vstor_job_wait(job, 0, 0), 0);  /* ended: nothing to wait for */
  vstor_job_free(job);
  assert_int_equal(access(dest2, F_OK), 0);  /* the copy is kept */
  assert_int_equal(vstor_close(v), 0);
  free(dest2);
  free(img);
  free(dest);
}

/* ---- last error: untouched by success, per thread ------------------ */

#define SAME_ERROR(before)                                  \
  do {                                                      \
    assert_non_null(vstor_last_error());                    \
    assert_string_equal(vstor_last_error(), before);        \
    assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);     \
    assert_int_equal(vstor_last_errno(), EINVAL);           \
  } while (0)

static void test_success_keeps_error(void **state)
{
  (void)state;
  char *img = mkimg(4, 1), *snap = path_in_tmp("keep-snap"), *mir = path_in_tmp("keep-mir");
  set_marker_error();
  char *before = strdup(vstor_last_error());
  vstor_ctx *c = vstor_ctx_new(0);
  assert_non_null(c);
  SAME_ERROR(before);
  char *sd = path_in_tmp("state-keep");
  assert_int_equal(vstor_ctx_set_state_dir(c, sd), 0);
  assert_int_equal(vstor_ctx_set_log(c, NULL, NULL, VSTOR_LOG_DEBUG), 0);
  SAME_ERROR(before);
  assert_int_equal(vstor_backend_can(c, "file", VSTOR_OP_EXTEND, NULL), 1);
  SAME_ERROR(before);
  vstor_vol *v = NULL;
  assert_int_equal(vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &v), 0);
  SAME_ERROR(before);
  uint64_t size;
  assert_int_equal(vstor_vol_size(v, &size), 0);
  assert_int_equal(vstor_vol_refresh(v), 0);
  assert_int_equal(vstor_vol_can(v, VSTOR_OP_EXTEND, 0, NULL), 1);
  char *why = NULL;
  assert_int_equal(vstor_vol_can(v, VSTOR_OP_RESIZE_FS, 0, &why), 0);  /* "no" is not an error */
  free(why);
  SAME_ERROR(before);
  vstor_report *rep = NULL;
  assert_int_equal(vstor_extend(v, 8 * MiB, NULL, VSTOR_DRY_RUN, &rep), 0);
  vstor_report_free(rep);
  assert_int_equal(vstor_extend(v, 8 * MiB, NULL, 0, NULL), 0);
  assert_int_equal(vstor_extend(v, 8 * MiB, NULL, 0, NULL), 0);  /* same size: nothing */
  SAME_ERROR(before);
  assert_int_equal(vstor_snapshot(v, snap, NULL, 0, NULL), 0);
  SAME_ERROR(before);
  vstor_job *job = NULL;
  assert_int_equal(vstor_mirror(v, mir, NULL, 0, &job, NULL), 0);
  assert_int_equal(vstor_job_wait(job, 30000, 0), 0);
  uint64_t d, t;
  assert_int_equal(vstor_job_progress(job, &d, &t), 0);
  assert_true(vstor_job_fd(job) >= 0);
  assert_int_equal(vstor_job_set_speed(job, 0), 0);
  assert_int_equal(vstor_job_complete(job, 0), 0);
  vstor_job_free(job);
  SAME_ERROR(before);
  assert_int_equal(vstor_close(v), 0);
  assert_int_equal(vstor_recover(c, 0, NULL), 0);
  vstor_ctx_free(c);
  SAME_ERROR(before);
  free(before);
  free(sd);
  free(img);
  free(snap);
  free(mir);
}

static pthread_barrier_t bar;
struct thr { char msg[256]; int code, errnum; bool fresh_null; };

static void *thread_errors(void *arg)
{
  struct thr *t = arg;
  t->fresh_null = vstor_last_error() == NULL && vstor_last_code() == VSTOR_E_OK &&
                  vstor_last_errno() == 0;
  pthread_barrier_wait(&bar);  /* 1: main has set its error */
  vstor_vol *v;
  vstor_open(ctx, "lvm:no-slash", 0, &v);
  snprintf(t->msg, sizeof t->msg, "%s", vstor_last_error() ? vstor_last_error() : "");
  t->code = vstor_last_code();
  t->errnum = vstor_last_errno();
  pthread_barrier_wait(&bar);  /* 2: thread error set */
  pthread_barrier_wait(&bar);  /* 3: main changed its error again */
  if (strcmp(vstor_last_error() ? vstor_last_error() : "", t->msg)) t->code = -1;
  return NULL;
}

/* ---- core bugs found by these tests (pending a fix) ---------------- */

static void test_bug_vol_can_flags(void **state)
{
  (void)state;
  /* vstor_vol_can passes unknown flag bits through (returns 1) */
  char *img = mkimg(4, 0);
  vstor_vol *v = open_img(img, 0);
  char *why = NULL;
  assert_int_equal(vstor_vol_can(v, VSTOR_OP_EXTEND, 1u << 20, &why), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_vol_can", NULL);
  free(why);
  assert_int_equal(vstor_close(v), 0);
  free(img);
}

static void test_bug_backend_can_keeps_error(void **state)
{
  (void)state;
  /* vstor_backend_can answers "no" (0, not an error) for a missing module
   * but leaves the module error as the thread's last error */
  char *empty = path_in_tmp("no-modules-2");
  assert_int_equal(mkdir(empty, 0700), 0);
  vstor_ctx *c = vstor_ctx_new(0);
  assert_int_equal(vstor_ctx_set_backend_dir(c, empty), 0);
  set_marker_error();
  char *before = strdup(vstor_last_error());
  char *why = NULL;
  assert_int_equal(vstor_backend_can(c, "lvm", VSTOR_OP_EXTEND, &why), 0);
  free(why);
  SAME_ERROR(before);
  vstor_ctx_free(c);
  free(before);
  free(empty);
}

static void test_error_per_thread(void **state)
{
  (void)state;
  struct thr t = { "", 0, 0, false };
  assert_int_equal(pthread_barrier_init(&bar, NULL, 2), 0);
  set_marker_error();
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, thread_errors, &t), 0);
  pthread_barrier_wait(&bar);  /* 1 */
  pthread_barrier_wait(&bar);  /* 2 */
  /* the thread's failure did not touch ours */
  assert_non_null(strstr(vstor_last_error(), "vstor_parse_size: "));
  assert_non_null(strstr(vstor_last_error(), "marker"));
  vstor_vol *v;
  assert_int_equal(vstor_open(ctx, "/tmp/..", 0, &v), -1);
  pthread_barrier_wait(&bar);  /* 3 */
  assert_int_equal(pthread_join(th, NULL), 0);
  pthread_barrier_destroy(&bar);
  assert_true(t.fresh_null);   /* a new thread starts with no error */
  assert_int_equal(t.code, VSTOR_E_INVAL);
  assert_int_equal(t.errnum, EINVAL);
  assert_non_null(strstr(t.msg, "vstor_open: invalid URI \"lvm:no-slash\""));
  assert_non_null(strstr(vstor_last_error(), "\"/tmp/..\""));
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: %s FAKE_MODULE_DIR\n", argv[0]);
    return 1;
  }
  fake_dir = argv[1];
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ctx_new),
    cmocka_unit_test(test_ctx_setters),
    cmocka_unit_test(test_ctx_free_live_volume),
    cmocka_unit_test(test_backend_can_args),
    cmocka_unit_test(test_module_missing),
    cmocka_unit_test(test_module_broken),
    cmocka_unit_test(test_open_args),
    cmocka_unit_test(test_vol_args),
    cmocka_unit_test(test_opts),
    cmocka_unit_test(test_extend_errors),
    cmocka_unit_test(test_snapshot_errors),
    cmocka_unit_test(test_mirror_errors),
    cmocka_unit_test(test_recover_errors),
    cmocka_unit_test(test_job_null),
    cmocka_unit_test(test_job_states),
    cmocka_unit_test(test_success_keeps_error),
    cmocka_unit_test(test_bug_vol_can_flags),
    cmocka_unit_test(test_bug_backend_can_keeps_error),
    cmocka_unit_test(test_error_per_thread),
  };
  return cmocka_run_group_tests_name("errors", tests, setup, teardown);
}
