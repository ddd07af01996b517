/* libvstor - LVM / device-mapper backend (module vstor-lvm.so)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Volumes: "lvm:VG/LV", "/dev/VG/LV", "/dev/mapper/VG-LV" (the core's URI
 * parser fills vg and lv).  Layers, bottom first: the LV (lvs report), its
 * device-mapper device (libdevmapper info/table/status/deps, sysfs holders),
 * the filesystem on it (libblkid) and its mount (libmount).
 *
 * Extend runs `lvm lvextend -L <bytes>b VG/LV`, after refusing what LVM
 * would refuse (classic snapshot origin, not enough free extents, full thin
 * pool), then grows the filesystem (online when mounted).
 *
 * Snapshots are LVM's own: thin snapshot for thin LVs, CoW snapshot with a
 * size otherwise.  A host-mounted filesystem is frozen by the device-mapper
 * suspend LVM performs while it creates the snapshot (dm "lockfs", i.e. the
 * kernel's freeze_bdev): FIFREEZE cannot be used, because on a frozen
 * filesystem that suspend fails with EBUSY (Linux 6.1) and LVM aborts
 * half-way.  The frozen window is measured by watching the origin's
 * device-mapper "suspended" flag while lvcreate runs.
 *
 * Mirror + pivot is pvmove (lvm-move.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include "lvm-priv.h"

/* ---- layers ---------------------------------------------------------- */

static void prop_u64(struct vstor_layer *l, const char *k, uint64_t v)
{
  char b[32];
  snprintf(b, sizeof b, "%llu", (unsigned long long)v);
  vu_layer_prop(l, k, b);
}

static void prop_own(struct vstor_layer *l, const char *k, char *v)
{
  if (v) vu_layer_prop(l, k, v);
  free(v);
}

static int build_layers(vstor_vol *vol)
{
  struct lvm_vol *p = vol->priv;
  struct lvm_lv *lv = &p->info;
  vu_layers_clear(vol);

  char *name = vu_asprintf("%s/%s", p->vg, p->lv);
  struct vstor_layer *l = vu_layer_add(vol, "storage", "lvm", name, lv->size);
  free(name);
  vu_layer_prop(l, "vg", p->vg);
  vu_layer_prop(l, "lv", p->lv);
  vu_layer_prop(l, "attr", lv->attr);
  vu_layer_prop(l, "segtype", lv->segtype);
  vu_layer_prop(l, "devices", lv->devices);
  vu_layer_prop(l, "active", lvm_lv_active(lv) ? "yes" : "no");
  prop_u64(l, "extent_size", lv->extent_size);
  prop_u64(l, "vg_free", lv->vg_free);
  if (lv->origin && *lv->origin) vu_layer_prop(l, "origin", lv->origin);
  if (lvm_lv_kind(lv) == 'o') prop_own(l, "snapshots", lvm_snapshots_of(p->vg, p->lv));
  if (lv->pool && *lv->pool) {
    vu_layer_prop(l, "thin_pool", lv->pool);
    struct lvm_pool pool;
    if (lvm_pool_get(p->vg, lv->pool, &pool) == 0) {
      prop_u64(l, "thin_pool_size", pool.size);
      prop_own(l, "thin_pool_data_percent", vu_asprintf("%.2f", pool.data_pct));
      prop_own(l, "thin_pool_metadata_percent", vu_asprintf("%.2f", pool.meta_pct));
    }
  }
  if (!lvm_lv_active(lv)) return 0;

  unsigned maj = (unsigned)lv->kmaj, min = (unsigned)lv->kmin;
  struct lvm_dminfo di;
  uint64_t dsize = 0;
  vu_blk_size(lv->dm_path, &dsize);
  struct vstor_layer *d = vu_layer_add(vol, "exposure", "dm", lv->dm_path, dsize);
  vu_layer_prop(d, "dm_name", strrchr(lv->dm_path, '/') + 1);
  prop_own(d, "devnum", vu_asprintf("%u:%u", maj, min));
  if (lvm_dm_info(maj, min, &di) == 0) {
    vu_layer_prop(d, "suspended", di.suspended ? "yes" : "no");
    prop_u64(d, "open_count", (uint64_t)di.open_count);
    prop_u64(d, "target_count", (uint64_t)di.target_count);
  }
  prop_own(d, "table", lvm_dm_table(maj, min, false));
  prop_own(d, "status", lvm_dm_table(maj, min, true));
  prop_own(d, "deps", lvm_dm_deps(maj, min));
  prop_own(d, "holders", lvm_holders(maj, min));

  char *fstype = vu_fs_type(lv->dm_path);
  if (!fstype) return 0;
  bool ro = false;
  char *mnt = vu_mountpoint_of_dev(makedev(maj, min), &ro);
  uint64_t fsize = 0;
  struct statvfs sv;
  if (mnt && statvfs(mnt, &sv) == 0) fsize = (uint64_t)sv.f_blocks * sv.f_frsize;
  struct vstor_layer *f = vu_layer_add(vol, "filesystem", fstype, mnt ? mnt : lv->dm_path, fsize);
  vu_layer_prop(f, "device", lv->dm_path);
  if (mnt) {
    vu_layer_prop(f, "mountpoint", mnt);
    vu_layer_prop(f, "readonly", ro ? "yes" : "no");
  }
  free(mnt);
  free(fstype);
  return 0;
}

/* Re-read the LV and its layers. */
static int reload(vstor_vol *vol)
{
  struct lvm_vol *p = vol->priv;
  struct lvm_lv fresh;
  if (lvm_lv_get(p->vg, p->lv, &fresh) < 0) return -1;
  lvm_lv_clear(&p->info);
  p->info = fresh;
  return build_layers(vol);
}

/* ---- vtable: open, size, capabilities ------------------------------- */

static int lvm_available(vstor_ctx *ctx, int op, char **why)
{
  (void)ctx;
  if (!vu_have_tool("lvm")) {
    if (why) *why = vu_strdup("the lvm2 tools are not installed (no lvm in /usr/sbin:/sbin)");
    return 0;
  }
  const char *target = NULL;
  if (op == VSTOR_OP_MIRROR || op == VSTOR_OP_PIVOT) target = "mirror";
  if (!lvm_dm_available(target, why)) return 0;
  if (op == VSTOR_OP_FREEZE || op == VSTOR_OP_SNAPSHOT) {
    /* Either kind of snapshot will do; the volume decides which. */
    char *w1 = NULL, *w2 = NULL;
    bool ok = lvm_dm_available("snapshot", &w1) || lvm_dm_available("thin", &w2);
    if (!ok && why) *why = vu_asprintf("%s; %s", w1, w2);
    free(w1);
    free(w2);
    return ok ? 1 : 0;
  }
  return 1;
}

static int lvm_open(vstor_vol *vol)
{
  const struct vstor_uri *u = vol->uri;
  if (!u || !u->vg || !u->lv || !lvm_name_ok(u->vg) || !lvm_name_ok(u->lv))
    return vstor_err(VSTOR_E_INVAL, EINVAL, "%s: expected lvm:VG/LV", vol->uri_text);
  char *why = NULL;
  if (!lvm_available(vol->ctx, -1, &why)) {
    vstor_err(VSTOR_E_NOTSUP, ENOTSUP, "%s: %s", vol->uri_text, why);
    free(why);
    return -1;
  }
  struct lvm_vol *p = vu_calloc(1, sizeof *p);
  p->vg = vu_strdup(u->vg);
  p->lv = vu_strdup(u->lv);
  p->info.kmaj = p->info.kmin = -1;
  vol->priv = p;
  if (lvm_lv_get(p->vg, p->lv, &p->info) < 0) return -1;  /* close() frees p */
  if (lvm_lv_kind(&p->info) == 'p')
    return vstor_err(VSTOR_E_INVAL, EINVAL, "%s/%s is LVM's internal pvmove volume", p->vg, p->lv);
  free(vol->id);
  vol->id = vu_asprintf("lvm:%s/%s", p->vg, p->lv);
  return build_layers(vol);
}

static void lvm_close(vstor_vol *vol)
{
  struct lvm_vol *p = vol->priv;
  if (!p) return;
  lvm_lv_clear(&p->info);
  free(p->vg);
  free(p->lv);
  free(p);
  vol->priv = NULL;
}

static int lvm_refresh(vstor_vol *vol) { return reload(vol); }

static int lvm_size(vstor_vol *vol, uint64_t *size)
{
  struct lvm_vol *p = vol->priv;
  /* An active LV's size is its device's (one ioctl); LVM is asked only
   * when the device is gone (deactivated, renamed, removed). */
  if (lvm_lv_active(&p->info) && vu_blk_size(p->info.dm_path, size) == 0) return 0;
  struct lvm_lv lv;
  if (lvm_lv_get(p->vg, p->lv, &lv) < 0) return -1;
  *size = lv.size;
  uint64_t dsize;
  if (lvm_lv_active(&lv) && vu_blk_size(lv.dm_path, &dsize) == 0) *size = dsize;
  lvm_lv_clear(&lv);
  return 0;
}

/* Why extend would be refused now (NULL: it would not), with the code. */
static char *extend_refusal(struct lvm_vol *p, int *code)
{
  struct lvm_lv *lv = &p->info;
  char k = lvm_lv_kind(lv);
  if (k == 'o' && lvm_lv_active(lv)) {
    *code = VSTOR_E_STATE;
    char *snaps = lvm_snapshots_of(p->vg, p->lv);
    char *m = vu_asprintf("%s/%s is the origin of classic snapshot(s) %s: LVM resizes a "
                          "snapshot origin only while it is inactive (remove the snapshot(s) "
                          "first, or use a thin LV)", p->vg, p->lv, *snaps ? snaps : "?");
    free(snaps);
    return m;
  }
  if (k == 's') {
    *code = VSTOR_E_NOTSUP;
    return vu_asprintf("%s/%s is a classic snapshot: lvextend would grow its CoW store, "
                       "not the volume", p->vg, p->lv);
  }
  if (lvm_lv_moving(lv)) {
    *code = VSTOR_E_BUSY;
    return vu_asprintf("%s/%s is being moved by pvmove (locked by LVM until the move ends)",
                       p->vg, p->lv);
  }
  return NULL;
}

static int lvm_can(vstor_vol *vol, int op, unsigned flags, char **why)
{
  (void)flags;
  struct lvm_vol *p = vol->priv;
  if (reload(vol) < 0) return -1;
  int code;
  char *m = NULL;
  switch (op) {
  case VSTOR_OP_EXTEND:
  case VSTOR_OP_EXTEND_ONLINE:
    m = extend_refusal(p, &code);
    break;
  case VSTOR_OP_RESIZE_FS: {
    char *t = lvm_lv_active(&p->info) ? vu_fs_type(p->info.dm_path) : NULL;
    if (!t) m = vu_asprintf("no filesystem found on %s/%s%s", p->vg, p->lv,
                            lvm_lv_active(&p->info) ? "" : " (not active)");
    else {
      bool mounted = false;
      char *mnt = vu_mountpoint_of_dev(makedev((unsigned)p->info.kmaj, (unsigned)p->info.kmin), NULL);
      mounted = mnt != NULL;
      free(mnt);
      char *w = NULL;
      if (!vu_fs_can_grow(t, mounted, &w)) m = w; else free(w);
    }
    free(t);
    break;
  }
  case VSTOR_OP_SNAPSHOT:
  case VSTOR_OP_FREEZE:
    if (lvm_lv_kind(&p->info) == 's')
      m = vu_asprintf("%s/%s is a classic snapshot; LVM does not snapshot snapshots", p->vg, p->lv);
    else if (lvm_lv_moving(&p->info))
      m = vu_asprintf("%s/%s is being moved by pvmove", p->vg, p->lv);
    break;
  case VSTOR_OP_MIRROR:
  case VSTOR_OP_PIVOT:
    if (strcmp(p->info.segtype, "linear") && strcmp(p->info.segtype, "striped"))
      m = vu_asprintf("moving a %s LV is not supported (linear and striped only)", p->info.segtype);
    else if (lvm_lv_moving(&p->info))
      m = vu_asprintf("%s/%s is already being moved", p->vg, p->lv);
    break;
  default:
    break;
  }
  if (!m) {
    int a = lvm_available(vol->ctx, op, why);
    return a;
  }
  if (why) *why = m; else free(m);
  return 0;
}

/* ---- extend ----------------------------------------------------------- */

/* The error set by a util helper, if libvstor's public accessor is visible
 * to this module (it is when the program links libvstor). */
extern const char *vstor_last_error(void) __attribute__((weak));
static char *last_error_copy(void)
{
  const char *m = vstor_last_error ? vstor_last_error() : NULL;
  return vu_strdup(m ? m : "see the log");
}

static int lvm_extend(vstor_vol *vol, uint64_t size, const struct vstor_opts *o,
                      unsigned flags, vstor_report *rep)
{
  (void)o;
  struct lvm_vol *p = vol->priv;
  if (reload(vol) < 0) return -1;
  struct lvm_lv *lv = &p->info;
  char *name = vu_asprintf("%s/%s", p->vg, p->lv);
  int r = -1;
  rep->old_size = rep->new_size = lv->size;
  if (size < lv->size) {
    vstor_err(VSTOR_E_INVAL, EINVAL, "%s: cannot shrink from %llu to %llu bytes", name,
              (unsigned long long)lv->size, (unsigned long long)size);
    goto out;
  }
  if (size == lv->size) {
    vu_step(rep, "lvm", "lvextend", VSTOR_STEP_SKIPPED, 1, "%s is already %llu bytes", name,
            (unsigned long long)size);
    r = 0;
    goto out;
  }
  int code;
  char *why = extend_refusal(p, &code);
  if (why) {
    vstor_err(code, 0, "%s", why);
    free(why);
    goto out;
  }
  uint64_t ext = lv->extent_size ? lv->extent_size : 4u << 20;
  uint64_t target = (size + ext - 1) / ext * ext;
  uint64_t grow = target - lv->size;
  char *detail;
  if (!strcmp(lv->segtype, "thin")) {
    struct lvm_pool pool;
    if (lvm_pool_get(p->vg, lv->pool, &pool) < 0) goto out;
    if (pool.data_pct >= 100.0 || pool.meta_pct >= 100.0) {
      vstor_err(VSTOR_E_NOSPC, ENOSPC, "%s: thin pool %s/%s is full (data %.2f%%, metadata "
                "%.2f%%): extend the pool first", name, p->vg, lv->pool, pool.data_pct,
                pool.meta_pct);
      goto out;
    }
    uint64_t used = (uint64_t)(pool.size * (pool.data_pct / 100.0));
    detail = vu_asprintf("%s %llu -> %llu bytes (thin: no extents allocated; pool %s/%s has "
                         "%llu of %llu bytes free, %.2f%% used)", name,
                         (unsigned long long)lv->size, (unsigned long long)target, p->vg,
                         lv->pool, (unsigned long long)(pool.size - used),
                         (unsigned long long)pool.size, pool.data_pct);
  } else {
    uint64_t need = grow * (uint64_t)lv->copies;
    if (need > lv->vg_free) {
      vstor_err(VSTOR_E_NOSPC, ENOSPC, "%s: volume group %s has %llu bytes free, growing by "
                "%llu bytes needs %llu%s", name, p->vg, (unsigned long long)lv->vg_free,
                (unsigned long long)grow, (unsigned long long)need,
                lv->copies > 1 ? " (all copies)" : "");
      goto out;
    }
    detail = vu_asprintf("%s %llu -> %llu bytes (%llu extents of %llu bytes from VG %s, "
                         "%llu free)", name, (unsigned long long)lv->size,
                         (unsigned long long)target, (unsigned long long)(need / ext),
                         (unsigned long long)ext, p->vg, (unsigned long long)lv->vg_free);
  }
  /* The filesystem, checked before anything changes. */
  char *fstype = NULL, *mnt = NULL;
  if ((flags & VSTOR_EXTEND_RESIZE_FS) && lvm_lv_active(lv)) {
    fstype = vu_fs_type(lv->dm_path);
    if (fstype) {
      mnt = vu_mountpoint_of_dev(makedev((unsigned)lv->kmaj, (unsigned)lv->kmin), NULL);
      char *w = NULL;
      if (!vu_fs_can_grow(fstype, mnt != NULL, &w)) {
        vstor_err(VSTOR_E_NOTSUP, 0, "%s: cannot grow the %s filesystem%s%s: %s", name, fstype,
                  mnt ? " mounted at " : "", mnt ? mnt : "", w ? w : "not supported");
        free(w); free(fstype); free(mnt); free(detail);
        goto out;
      }
      free(w);
    }
  }
  size_t s_lv = rep->nsteps;
  vu_step(rep, "lvm", "lvextend", VSTOR_STEP_PLANNED, 0, "%s", detail);
  free(detail);
  size_t s_fs = (size_t)-1;
  if (flags & VSTOR_EXTEND_RESIZE_FS) {
    s_fs = rep->nsteps;
    if (fstype)
      vu_step(rep, "filesystem", "grow", VSTOR_STEP_PLANNED, 0, "%s on %s%s%s", fstype,
              lv->dm_path, mnt ? ", online at " : ", offline", mnt ? mnt : "");
    else
      vu_step(rep, "filesystem", "grow", VSTOR_STEP_SKIPPED, 0, "no filesystem on %s", name);
  }
  rep->new_size = target;
  if (flags & VSTOR_DRY_RUN) {
    r = 0;
    free(fstype); free(mnt);
    goto out;
  }

  char bytes[32];
  snprintf(bytes, sizeof bytes, "%llub", (unsigned long long)target);
  const char *argv[] = { "lvm", "lvextend", "-L", bytes, name, NULL };
  uint64_t t0 = vu_now_us();
  if (lvm_cmd(argv, name) < 0) {
    vu_step_set(rep, s_lv, VSTOR_STEP_FAILED, NULL);
    rep->new_size = lv->size;
    free(fstype); free(mnt);
    goto out;
  }
  char *done = vu_asprintf("grown to %llu bytes in %llu ms", (unsigned long long)target,
                           (unsigned long long)((vu_now_us() - t0) / 1000));
  vu_step_set(rep, s_lv, VSTOR_STEP_DONE, done);
  free(done);
  vstor_fault("lvm-extend-after-lvextend");
  uint64_t dsize;
  if (lvm_lv_active(lv) && vu_blk_size(lv->dm_path, &dsize) == 0) rep->new_size = dsize;

  if (fstype && s_fs != (size_t)-1) {
    if (vu_fs_grow(fstype, lv->dm_path, mnt) < 0) {
      char *m = last_error_copy();
      vu_step_set(rep, s_fs, VSTOR_STEP_FAILED, m);
      vstor_err(VSTOR_E_PARTIAL, 0, "%s: the LV was grown to %llu bytes but growing its %s "
                "filesystem failed: %s", name, (unsigned long long)target, fstype, m);
      free(m); free(fstype); free(mnt);
      goto out;
    }
    vu_step_set(rep, s_fs, VSTOR_STEP_DONE, NULL);
  }
  free(fstype);
  free(mnt);
  /* LVM was just asked; spare another lvs run (each costs ~0.2 s). */
  lv->size = rep->new_size;
  if (strcmp(lv->segtype, "thin")) lv->vg_free -= grow * (uint64_t)lv->copies;
  build_layers(vol);
  r = 0;
out:
  free(name);
  return r;
}

/* ---- snapshot ----------------------------------------------------------- */

/* Watches the origin's dm "suspended" flag while lvcreate runs: the span
 * in which it was seen suspended is the frozen window. */
struct watch {
  unsigned maj, min;
  bool stop;             /* __atomic */
  uint64_t first, last;
  pthread_t th;
};

static void *watch_thread(void *arg)
{
  struct watch *w = arg;
  struct timespec ts = { 0, 200 * 1000 };
  while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
    struct lvm_dminfo di;
    uint64_t before = vu_now_us();
    if (lvm_dm_info(w->maj, w->min, &di) == 0 && di.suspended) {
      if (!w->first) w->first = before;
      w->last = vu_now_us();
    }
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static int lvm_snapshot(vstor_vol *vol, const char *dest, const struct vstor_opts *o,
                        unsigned flags, vstor_report *rep)
{
  struct lvm_vol *p = vol->priv;
  char *svg = NULL, *slv = NULL, *name = vu_asprintf("%s/%s", p->vg, p->lv), *sname = NULL;
  int r = -1;
  if (lvm_parse_dest(dest, p->vg, &svg, &slv) < 0) goto out;
  sname = vu_asprintf("%s/%s", svg, slv);
  if (strcmp(svg, p->vg)) {
    vstor_err(VSTOR_E_INVAL, EINVAL, "%s: an LVM snapshot lives in its origin's volume group "
              "(%s), not in %s", dest, p->vg, svg);
    goto out;
  }
  if (reload(vol) < 0) goto out;
  struct lvm_lv *lv = &p->info;
  if (lvm_lv_exists(svg, slv)) {
    vstor_err(VSTOR_E_EXIST, EEXIST, "%s: logical volume already exists", sname);
    goto out;
  }
  if (lvm_lv_kind(lv) == 's') {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s is a classic snapshot; LVM does not snapshot snapshots", name);
    goto out;
  }
  if (lvm_lv_moving(lv)) {
    vstor_err(VSTOR_E_BUSY, 0, "%s is being moved by pvmove; snapshot after the move", name);
    goto out;
  }
  bool thin = !strcmp(lv->segtype, "thin");
  uint64_t cow = 0;
  char *detail;
  if (thin) {
    struct lvm_pool pool;
    if (lvm_pool_get(p->vg, lv->pool, &pool) < 0) goto out;
    if (pool.data_pct >= 100.0 || pool.meta_pct >= 100.0) {
      vstor_err(VSTOR_E_NOSPC, ENOSPC, "%s: thin pool %s/%s is full (data %.2f%%, metadata "
                "%.2f%%): a snapshot would fail its first write", name, p->vg, lv->pool,
                pool.data_pct, pool.meta_pct);
      goto out;
    }
    detail = vu_asprintf("thin snapshot %s of %s in pool %s/%s (%.2f%% used)", sname, name,
                         p->vg, lv->pool, pool.data_pct);
  } else {
    uint64_t ext = lv->extent_size ? lv->extent_size : 4u << 20;
    bool dflt = o->snapshot_size == 0;
    cow = dflt ? lv->size / 10 : o->snapshot_size;
    cow = (cow + ext - 1) / ext * ext;
    if (cow < ext) cow = ext;
    if (cow > lv->vg_free) {
      vstor_err(VSTOR_E_NOSPC, ENOSPC, "%s: volume group %s has %llu bytes free, the CoW "
                "snapshot needs %llu%s", name, p->vg, (unsigned long long)lv->vg_free,
                (unsigned long long)cow, dflt ? " (default: 10% of the origin)" : "");
      goto out;
    }
    detail = vu_asprintf("CoW snapshot %s of %s, %llu bytes of CoW space%s", sname, name,
                         (unsigned long long)cow, dflt ? " (default: 10% of the origin; "
                         "the snapshot becomes invalid if more changes)" : "");
  }
  /* How consistent will it be? */
  char *mnt = NULL;
  int consistency = VSTOR_CONSISTENT_IDLE;
  if (lvm_lv_active(lv)) {
    mnt = vu_mountpoint_of_dev(makedev((unsigned)lv->kmaj, (unsigned)lv->kmin), NULL);
    struct lvm_dminfo di = { 0 };
    lvm_dm_info((unsigned)lv->kmaj, (unsigned)lv->kmin, &di);
    if (mnt) consistency = VSTOR_CONSISTENT_FS;
    else if (di.open_count > 0) {
      consistency = VSTOR_CONSISTENT_CRASH;
      if (!(flags & VSTOR_SNAPSHOT_CRASH_CONSISTENT)) {
        vstor_err(VSTOR_E_STATE, 0, "%s is open (%d opener(s), e.g. a VM) with no host-mounted "
                  "filesystem to freeze: freeze the user first, or pass "
                  "VSTOR_SNAPSHOT_CRASH_CONSISTENT", name, di.open_count);
        free(detail);
        goto out;
      }
    }
  }
  size_t s_frz = rep->nsteps;
  if (consistency == VSTOR_CONSISTENT_FS)
    vu_step(rep, "filesystem", "freeze", VSTOR_STEP_PLANNED, 1, "%s frozen by LVM's "
            "device-mapper suspend (lockfs) while the snapshot is made", mnt);
  size_t s_snap = rep->nsteps;
  vu_step(rep, "lvm", thin ? "thin-snapshot" : "cow-snapshot", VSTOR_STEP_PLANNED, 1, "%s", detail);
  free(detail);
  rep->consistency = consistency;
  vu_report_method(rep, thin ? "lvm-thin-snapshot" : "lvm-cow-snapshot");
  rep->old_size = rep->new_size = lv->size;
  if (flags & VSTOR_DRY_RUN) { free(mnt); r = 0; goto out; }

  struct vstor_jrec *jr = vstor_host->jrec_begin(vol, "snapshot");
  if (!jr) { free(mnt); goto out; }
  if (vstor_host->jrec_set(jr, "lvm_vg", p->vg) < 0 ||
      vstor_host->jrec_set(jr, "lvm_origin", p->lv) < 0 ||
      vstor_host->jrec_set(jr, "lvm_snap", slv) < 0) {
    vstor_host->jrec_end(jr);
    free(mnt);
    goto out;
  }
  vstor_fault("lvm-snapshot-before-lvcreate");

  struct watch w = { .maj = (unsigned)lv->kmaj, .min = (unsigned)lv->kmin };
  bool watching = lvm_lv_active(lv) && pthread_create(&w.th, NULL, watch_thread, &w) == 0;
  char cows[32];
  snprintf(cows, sizeof cows, "%llub", (unsigned long long)cow);
  const char *argv_thin[] = { "lvm", "lvcreate", "-s", "-kn", "-n", slv, name, NULL };
  const char *argv_cow[] = { "lvm", "lvcreate", "-s", "-L", cows, "-n", slv, name, NULL };
  uint64_t t0 = vu_now_us();
  int cr = lvm_cmd(thin ? argv_thin : argv_cow, sname);
  uint64_t t1 = vu_now_us();
  if (watching) {
    __atomic_store_n(&w.stop, true, __ATOMIC_RELEASE);
    pthread_join(w.th, NULL);
  }
  uint64_t window = w.first ? w.last - w.first : 0;
  rep->frozen_us = consistency == VSTOR_CONSISTENT_FS ? (w.first ? window : t1 - t0) : 0;
  if (cr < 0) {
    /* LVM may have left the half-made snapshot or a suspended origin. */
    char *m;
    int code = lvm_tool_error(&m);
    if (lvm_lv_exists(svg, slv)) {
      const char *rm[] = { "lvm", "lvremove", "-f", "-y", sname, NULL };
      char *e = NULL;
      vu_run(rm, NULL, &e);
      free(e);
    }
    struct lvm_dminfo di;
    if (lvm_lv_active(lv) && lvm_dm_info(w.maj, w.min, &di) == 0 && di.suspended)
      lvm_dm_resume(w.maj, w.min);
    vu_step_set(rep, s_snap, VSTOR_STEP_FAILED, m);
    if (consistency == VSTOR_CONSISTENT_FS) vu_step_set(rep, s_frz, VSTOR_STEP_UNDONE, "thawed");
    vstor_host->jrec_end(jr);
    /* Restore the tool's error (the cleanup above may have replaced it). */
    vstor_err(code, 0, "%s", m);
    free(m);
    free(mnt);
    goto out;
  }
  vstor_fault("lvm-snapshot-after-lvcreate");
  vstor_host->jrec_end(jr);
  if (consistency == VSTOR_CONSISTENT_FS) {
    char *fd = w.first ? vu_asprintf("frozen %llu us (device-mapper suspend observed)",
                                     (unsigned long long)window)
                       : vu_asprintf("frozen at most %llu us (the lvcreate run; the suspend "
                                     "was too short to observe)", (unsigned long long)(t1 - t0));
    vu_step_set(rep, s_frz, VSTOR_STEP_DONE, fd);
    free(fd);
    if (rep->frozen_us / 1000 > o->freeze_timeout_ms)
      vstor_log(vol->ctx, VSTOR_LOG_WARN, "%s: frozen window %llu ms exceeded the %u ms bound "
                "(LVM holds the suspend; it cannot be cut short safely)", name,
                (unsigned long long)(rep->frozen_us / 1000), o->freeze_timeout_ms);
  }
  char *sd = vu_asprintf("created in %llu ms", (unsigned long long)((t1 - t0) / 1000));
  vu_step_set(rep, s_snap, VSTOR_STEP_DONE, sd);
  free(sd);
  free(mnt);
  r = 0;
out:
  free(svg); free(slv); free(name); free(sname);
  return r;
}

/* ---- recover ------------------------------------------------------------ */

static int recover_snapshot(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep)
{
  (void)ctx;
  const char *vg = vstor_host->jrec_get(rec, "lvm_vg");
  const char *snap = vstor_host->jrec_get(rec, "lvm_snap");
  const char *origin = vstor_host->jrec_get(rec, "lvm_origin");
  if (!vg || !snap) {
    vu_step(rep, "lvm", "snapshot", VSTOR_STEP_SKIPPED, 0, "nothing was started");
    return 0;
  }
  char *sname = vu_asprintf("%s/%s", vg, snap);
  int r = 0;
  if (lvm_lv_exists(vg, snap)) {
    const char *rm[] = { "lvm", "lvremove", "-f", "-y", sname, NULL };
    r = lvm_cmd(rm, sname);
    vu_step(rep, "lvm", "remove half-made snapshot", r == 0 ? VSTOR_STEP_DONE : VSTOR_STEP_FAILED,
            0, "%s", sname);
  } else {
    vu_step(rep, "lvm", "remove half-made snapshot", VSTOR_STEP_SKIPPED, 0, "%s does not exist",
            sname);
  }
  /* A dead lvcreate may have left the origin suspended (by name: device
   * numbers do not survive a reboot). */
  char *dm = origin ? lvm_dm_name(vg, origin) : NULL;
  struct lvm_dminfo di;
  if (dm && lvm_dm_info_name(dm, &di) == 0 && di.exists && di.suspended) {
    int rr = lvm_dm_resume_name(dm);
    vu_step(rep, "dm", "resume origin", rr == 0 ? VSTOR_STEP_DONE : VSTOR_STEP_FAILED, 0, "%s", dm);
    if (rr < 0) r = -1;
  }
  free(dm);
  free(sname);
  return r;
}

static int lvm_recover(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep)
{
  const char *op = vstor_host->jrec_get(rec, "op");
  if (op && !strcmp(op, "snapshot")) return recover_snapshot(ctx, rec, rep);
  if (op && !strcmp(op, "mirror")) return lvm_recover_mirror(ctx, rec, rep);
  vu_step(rep, "lvm", op ? op : "?", VSTOR_STEP_SKIPPED, 0, "nothing to undo");
  return 0;
}

static const struct vstor_backend_ops lvm_ops = {
  .abi = VSTOR_BACKEND_ABI,
  .name = "lvm",
  .available = lvm_available,
  .open = lvm_open,
  .close = lvm_close,
  .refresh = lvm_refresh,
  .size = lvm_size,
  .can = lvm_can,
  .extend = lvm_extend,
  .snapshot = lvm_snapshot,
  .mirror_prepare = lvm_mirror_prepare,
  .job_run = lvm_job_run,
  .job_pivot = lvm_job_pivot,
  .job_complete = lvm_job_complete,
  .job_cancel = lvm_job_cancel,
  .job_free = lvm_job_free,
  .recover = lvm_recover,
};

VSTOR_BACKEND_MODULE(lvm_ops);
