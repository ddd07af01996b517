/* libvstor - Xen backend through libxenlight (module vstor-xen.so)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * URI: xen:DOMAIN/VDEV
 *   DOMAIN  domain name, numeric domid or UUID; VDEV the virtual device
 *           ("xvda").  Must run in the domain hosting the block backend
 *           (dom0 here): libxl needs /dev/xen/privcmd and xenstore.
 *   Disk specs ("phy:/dev/vg/lv,xvda,w", "format=raw,vdev=xvda,target=/img")
 *   name the storage, not a running vbd: the core opens them with the
 *   backend of the storage (file, lvm).
 *
 * Layers (bottom first): the layers of the vbd's storage opened through the
 * core (file: for an image, which blkback reaches through the loop device
 * the block hotplug script made; the device path for phy: block devices,
 * e.g. an LV), then the "hypervisor" layer of type "xen-vbd" (path
 * DOMAIN/VDEV, size = the backend's published "sectors" * 512).
 *
 * Operations:
 *   extend    grow the storage through its backend (file: ftruncate +
 *             LOOP_SET_CAPACITY; lvm: lvextend), never its filesystem (it is
 *             the guest's); then wait, bounded, until blkback publishes the
 *             new "sectors" in xenstore (it checks the device size whenever it
 *             services the ring), which the frontend turns into the guest's
 *             new capacity.  A guest filesystem is grown inside the guest: the
 *             report carries that as the guest's (skipped) step.
 *   snapshot  crash-consistent only (a PV guest has no agent to quiesce it):
 *             libxl_domain_pause, the storage backend's snapshot, then
 *             libxl_domain_unpause.  The unpause is guaranteed: a guard
 *             process started before the pause runs `xl unpause DOMID` if the
 *             caller dies (socket EOF) or the window (freeze timeout) runs out,
 *             and the journal record lets vstor_recover() unpause after a
 *             crash between the guard's release and our own unpause.
 *   mirror    NOTSUP: blkback has no live copy; for an LV, use the lvm: URI of
 *             the storage (the LVM backend's pvmove keeps the device, so the
 *             guest never notices).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libxl.h>
#include <libxl_utils.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "backend.h"
#include "util.h"

#define RESIZE_WAIT_MS 30000

/* ---- libxl context with a logger routed to vstor_log ---------------- */

struct xlog {
  xentoollog_logger vt;
  vstor_ctx *ctx;
  char last[512];       /* last error-level message, for error texts */
};

static void xlog_vmessage(xentoollog_logger *lg, xentoollog_level level, int errnoval,
                          const char *context, const char *format, va_list al)
{
  struct xlog *l = (struct xlog *)lg;
  char msg[480];
  vsnprintf(msg, sizeof msg, format, al);
  int lvl = level >= XTL_ERROR ? VSTOR_LOG_ERROR : level >= XTL_WARN ? VSTOR_LOG_WARN
          : level >= XTL_INFO ? VSTOR_LOG_INFO : VSTOR_LOG_DEBUG;
  if (level >= XTL_ERROR) {
    if (errnoval > 0)
      snprintf(l->last, sizeof l->last, "%s: %s", msg, strerror(errnoval));
    else
      snprintf(l->last, sizeof l->last, "%s", msg);
  }
  if (level >= XTL_DETAIL)
    vstor_log(l->ctx, lvl, "xen: %s%s%s", context ? context : "", context ? ": " : "",
              level >= XTL_ERROR ? l->last : msg);
}

static void xlog_progress(xentoollog_logger *lg, const char *context, const char *doing,
                          int percent, unsigned long done, unsigned long total)
{
  (void)lg; (void)context; (void)doing; (void)percent; (void)done; (void)total;
}

static void xlog_destroy(xentoollog_logger *lg) { (void)lg; }

struct xconn {
  struct xlog log;
  libxl_ctx *xl;
  struct xs_handle *xs;
};

static void xconn_free(struct xconn *c)
{
  if (!c) return;
  if (c->xl) libxl_ctx_free(c->xl);
  if (c->xs) xs_close(c->xs);
  free(c);
}

/* libxl needs privcmd (a Xen domain with control rights) and xenstore. */
static struct xconn *xconn_new(vstor_ctx *ctx, char **why)
{
  struct xconn *c = vu_calloc(1, sizeof *c);
  c->log.vt.vmessage = xlog_vmessage;
  c->log.vt.progress = xlog_progress;
  c->log.vt.destroy = xlog_destroy;
  c->log.ctx = ctx;
  if (access("/proc/xen/capabilities", R_OK) != 0 && access("/dev/xen/privcmd", F_OK) != 0) {
    *why = vu_strdup("not running in a Xen domain (no /proc/xen, no /dev/xen/privcmd)");
    xconn_free(c);
    return NULL;
  }
  if (libxl_ctx_alloc(&c->xl, LIBXL_VERSION, 0, &c->log.vt) != 0) {
    c->xl = NULL;
    *why = vu_asprintf("libxl_ctx_alloc failed%s%s (not a Xen control domain, or xenstored "
                       "not running?)", c->log.last[0] ? ": " : "", c->log.last);
    xconn_free(c);
    return NULL;
  }
  if (!(c->xs = xs_open(0))) {
    *why = vu_asprintf("cannot connect to xenstore: %s", strerror(errno));
    xconn_free(c);
    return NULL;
  }
  return c;
}

static char *xs_get(struct xconn *c, const char *dir, const char *key)
{
  char *p = vu_asprintf("%s/%s", dir, key);
  unsigned int len = 0;
  char *v = xs_read(c->xs, XBT_NULL, p, &len);
  free(p);
  return v;
}

/* ---- volume --------------------------------------------------------- */

struct xpriv {
  struct xconn *c;
  char *label;          /* "du1/xvda" for messages and the layer path */
  char *dom_arg, *vdev;
  uint32_t domid;
  char uuid[40];
  char *name;           /* domain name */
  bool paused, dying;
  /* the vbd */
  int devid;
  char *be_path;        /* /local/domain/0/backend/vbd/DOMID/DEVID */
  uint32_t be_domid;
  int be_kind;          /* libxl_disk_backend */
  int format;           /* libxl_disk_format */
  bool readwrite, cdrom;
  char *pdev;           /* storage path (file or block device) */
  char *node;           /* block device blkback uses (loop for a file) */
  char *xl_bin;         /* xl for the unpause guard */
};

static void xpriv_free(struct xpriv *p)
{
  if (!p) return;
  xconn_free(p->c);
  free(p->label); free(p->dom_arg); free(p->vdev); free(p->name);
  free(p->be_path); free(p->pdev); free(p->node); free(p->xl_bin);
  free(p);
}

/* Forget libxl's last error before a call whose failure we report. */
static void xclear(struct xpriv *p) { p->c->log.last[0] = 0; }

static const char *xerr_text(struct xpriv *p)
{
  return p->c->log.last[0] ? p->c->log.last : "see the libxl log";
}

static bool all_digits(const char *s)
{
  if (!*s) return false;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return false;
  return true;
}

static void uuid_str(const libxl_uuid *u, char out[40])
{
  snprintf(out, 40, LIBXL_UUID_FMT, LIBXL_UUID_BYTES(*u));
}

/* Resolve DOMAIN (domid, name or UUID) -> domid, name, uuid, run state. */
static int find_domain(struct xpriv *p)
{
  libxl_ctx *xl = p->c->xl;
  const char *d = p->dom_arg;
  uint32_t domid = 0;
  bool found = false;
  if (all_digits(d)) {
    unsigned long v = strtoul(d, NULL, 10);
    if (v < 0x7ff0) { domid = (uint32_t)v; found = true; }
  } else if (strlen(d) == 36 && d[8] == '-') {
    int n = 0;
    libxl_dominfo *l = libxl_list_domain(xl, &n);
    for (int i = 0; l && i < n; i++) {
      char u[40];
      uuid_str(&l[i].uuid, u);
      if (!strcasecmp(u, d)) { domid = l[i].domid; found = true; }
    }
    if (l) libxl_dominfo_list_free(l, n);
  } else if (libxl_name_to_domid(xl, d, &domid) == 0)
    found = true;
  libxl_dominfo di;
  libxl_dominfo_init(&di);
  if (found && libxl_domain_info(xl, &di, domid) != 0) found = false;
  if (!found) {
    libxl_dominfo_dispose(&di);
    return vstor_err(VSTOR_E_NOENT, ENOENT, "%s: no such Xen domain \"%s\" (by %s)", p->label, d,
                     all_digits(d) ? "domid" : strlen(d) == 36 ? "UUID" : "name");
  }
  p->domid = domid;
  uuid_str(&di.uuid, p->uuid);
  p->paused = di.paused;
  p->dying = di.dying;
  libxl_dominfo_dispose(&di);
  free(p->name);
  p->name = libxl_domid_to_name(xl, domid);
  if (!p->name) p->name = vu_asprintf("%u", domid);
  return 0;
}

/* Find the vbd VDEV of the domain and its backend state. */
static int find_disk(struct xpriv *p)
{
  libxl_ctx *xl = p->c->xl;
  int n = 0;
  libxl_device_disk *dl = libxl_device_disk_list(xl, p->domid, &n);
  int idx = -1;
  char *have = vu_strdup("");
  for (int i = 0; dl && i < n; i++) {
    if (dl[i].vdev && !strcmp(dl[i].vdev, p->vdev)) idx = i;
    char *h = vu_asprintf("%s%s%s", have, *have ? ", " : "", dl[i].vdev ? dl[i].vdev : "?");
    free(have);
    have = h;
  }
  if (idx < 0) {
    vstor_err(VSTOR_E_NOENT, ENOENT, "%s: domain %s (domid %u) has no disk %s (it has: %s)",
              p->label, p->name, p->domid, p->vdev, *have ? have : "none");
    free(have);
    if (dl) libxl_device_disk_list_free(dl, n);
    return -1;
  }
  free(have);
  libxl_device_disk *d = &dl[idx];
  libxl_diskinfo info;
  libxl_diskinfo_init(&info);
  xclear(p);
  int rc = libxl_device_disk_getinfo(xl, p->domid, d, &info);
  if (rc != 0) {
    vstor_err(VSTOR_E_BACKEND, 0, "%s: libxl_device_disk_getinfo failed (%d): %s", p->label, rc,
              xerr_text(p));
    libxl_diskinfo_dispose(&info);
    libxl_device_disk_list_free(dl, n);
    return -1;
  }
  free(p->be_path); free(p->pdev); free(p->node);
  p->be_path = vu_strdup(info.backend);
  p->be_domid = info.backend_id;
  p->devid = info.devid;
  p->be_kind = d->backend;
  p->format = d->format;
  p->readwrite = d->readwrite;
  p->cdrom = d->is_cdrom;
  p->pdev = vu_strdup(d->pdev_path);
  libxl_diskinfo_dispose(&info);
  libxl_device_disk_list_free(dl, n);
  /* the backend's own view: params (what the hotplug script was given),
   * node (what blkback opened: the loop device for a file) */
  char *params = xs_get(p->c, p->be_path, "params");
  /* The list is read back from xenstore, where libxl keeps no format:
   * blkback (phy) only serves raw devices; qdisk has "FMT:PATH" params. */
  if (p->format == LIBXL_DISK_FORMAT_UNKNOWN) {
    if (p->be_kind == LIBXL_DISK_BACKEND_PHY)
      p->format = LIBXL_DISK_FORMAT_RAW;
    else if (params && strchr(params, ':')) {
      char *f = strndup(params, (size_t)(strchr(params, ':') - params));
      libxl_disk_format fmt;
      if (f && !strcmp(f, "aio")) p->format = LIBXL_DISK_FORMAT_RAW;
      else if (f && libxl_disk_format_from_string(f, &fmt) == 0) p->format = fmt;
      free(f);
    }
  }
  if (params && *params && (!p->pdev || !*p->pdev)) { free(p->pdev); p->pdev = params; params = NULL; }
  free(params);
  p->node = xs_get(p->c, p->be_path, "node");
  if (p->node && !*p->node) { free(p->node); p->node = NULL; }
  return 0;
}

static int vbd_sectors(struct xpriv *p, uint64_t *sectors)
{
  char *s = xs_get(p->c, p->be_path, "sectors");
  if (!s) return vstor_err(VSTOR_E_STATE, errno, "%s: backend %s publishes no size (vbd not "
                           "connected, or detached?)", p->label, p->be_path);
  *sectors = strtoull(s, NULL, 10);
  free(s);
  return 0;
}

static int vbd_state(struct xpriv *p)
{
  char *s = xs_get(p->c, p->be_path, "state");
  int st = s ? atoi(s) : -1;
  free(s);
  return st;
}

static const char *kind_name(int k)
{
  switch (k) {
  case LIBXL_DISK_BACKEND_PHY: return "phy";
  case LIBXL_DISK_BACKEND_TAP: return "tap";
  case LIBXL_DISK_BACKEND_QDISK: return "qdisk";
  case LIBXL_DISK_BACKEND_STANDALONE: return "standalone";
  default: return "unknown";
  }
}

static void close_lower(vstor_vol *vol)
{
  if (vol->lower) {
    vstor_host->close_lower(vol->lower);
    vol->lower = NULL;
  }
}

static int xen_size(vstor_vol *vol, uint64_t *size)
{
  struct xpriv *p = vol->priv;
  uint64_t s;
  if (vbd_sectors(p, &s) < 0) {
    /* a vbd gone since open: say so (NOENT) rather than "no size" */
    char *m = NULL;
    int c = 0, e = 0;
    m = vstor_host->error_get(&c, &e);
    if (find_domain(p) < 0 || find_disk(p) < 0) { free(m); return -1; }
    vstor_host->error_set(c, e, m);
    free(m);
    return -1;
  }
  *size = s * 512;
  return 0;
}

/* (Re)read the domain and vbd, reopen the storage below, rebuild layers. */
static int xen_layers(vstor_vol *vol)
{
  struct xpriv *p = vol->priv;
  if (find_domain(p) < 0 || find_disk(p) < 0) return -1;
  vu_layers_clear(vol);
  close_lower(vol);
  bool raw = p->format == LIBXL_DISK_FORMAT_RAW;
  if (p->pdev && *p->pdev && p->pdev[0] == '/' && raw && p->be_domid == 0) {
    struct stat st;
    bool is_file = stat(p->pdev, &st) == 0 && S_ISREG(st.st_mode);
    char *u = is_file ? vu_asprintf("file:%s", p->pdev) : vu_strdup(p->pdev);
    vstor_vol *lo = NULL;
    char *saved_msg = NULL;
    int sc = 0, se = 0;
    saved_msg = vstor_host->error_get(&sc, &se);
    if (vstor_host->open_lower(vol->ctx, u, vol->flags & VSTOR_OPEN_READONLY, &lo) == 0) {
      vol->lower = lo;
      for (size_t i = 0; i < lo->nlayers; i++) {
        struct vstor_layer *s = &lo->layers[i];
        /* a filesystem on the disk is the guest's: not ours to report from dom0 */
        if (!strcmp(s->role, "filesystem")) continue;
        struct vstor_layer *l = vu_layer_add(vol, s->role, s->type, s->path, s->size);
        for (size_t k = 0; k < s->nprops; k++) vu_layer_prop(l, s->props[k].key, s->props[k].val);
      }
    } else {
      vstor_log(vol->ctx, VSTOR_LOG_INFO, "%s: storage %s not opened: %s", p->label, u,
                vstor_last_error() ? vstor_last_error() : "?");
      vstor_host->error_set(sc, se, saved_msg);
      struct vstor_layer *l = vu_layer_add(vol, "storage", is_file ? "file" : "block",
                                           p->pdev, 0);
      vu_layer_prop(l, "opened", "no");
    }
    free(saved_msg);
    free(u);
  } else {
    struct vstor_layer *l = vu_layer_add(vol, "storage", kind_name(p->be_kind),
                                         p->pdev && *p->pdev ? p->pdev : "?", 0);
    vu_layer_prop(l, "opened", "no");
  }
  uint64_t sz = 0;
  xen_size(vol, &sz);
  struct vstor_layer *h = vu_layer_add(vol, "hypervisor", "xen-vbd", p->label, sz);
  char buf[64];
  vu_layer_prop(h, "domain", p->name);
  snprintf(buf, sizeof buf, "%u", p->domid);
  vu_layer_prop(h, "domid", buf);
  vu_layer_prop(h, "uuid", p->uuid);
  snprintf(buf, sizeof buf, "%d", p->devid);
  vu_layer_prop(h, "devid", buf);
  vu_layer_prop(h, "backend", kind_name(p->be_kind));
  snprintf(buf, sizeof buf, "%u", p->be_domid);
  vu_layer_prop(h, "backend-domid", buf);
  vu_layer_prop(h, "backend-path", p->be_path);
  vu_layer_prop(h, "format", libxl_disk_format_to_string(p->format));
  vu_layer_prop(h, "mode", p->readwrite ? "rw" : "ro");
  vu_layer_prop(h, "node", p->node ? p->node : "");
  snprintf(buf, sizeof buf, "%d", vbd_state(p));
  vu_layer_prop(h, "state", buf);
  vu_layer_prop(h, "paused", p->paused ? "yes" : "no");
  return 0;
}

/* xl for the guard: the versioned binary (the /usr/sbin/xl wrapper needs
 * /sys/hypervisor and a shell). */
static char *find_xl(void)
{
  glob_t g;
  char *r = NULL;
  if (glob("/usr/lib/xen-*/bin/xl", 0, NULL, &g) == 0 && g.gl_pathc)
    r = vu_strdup(g.gl_pathv[g.gl_pathc - 1]);
  globfree(&g);
  if (!r && access("/usr/sbin/xl", X_OK) == 0) r = vu_strdup("/usr/sbin/xl");
  if (!r && access("/usr/bin/xl", X_OK) == 0) r = vu_strdup("/usr/bin/xl");
  return r;
}

static int xen_open(vstor_vol *vol)
{
  const struct vstor_uri *u = vol->uri;
  if (!u->domain || !*u->domain || !u->disk || !*u->disk)
    return vstor_err(VSTOR_E_INVAL, EINVAL, "%s: expected xen:DOMAIN/VDEV",
                     vol->uri_text ? vol->uri_text : "xen URI");
  struct xpriv *p = vu_calloc(1, sizeof *p);
  p->dom_arg = vu_strdup(u->domain);
  p->vdev = vu_strdup(u->disk);
  p->label = vu_asprintf("%s/%s", u->domain, u->disk);
  char *why = NULL;
  if (!(p->c = xconn_new(vol->ctx, &why))) {
    vstor_err(VSTOR_E_NOTSUP, 0, "%s: %s", p->label, why);
    free(why);
    xpriv_free(p);
    return -1;
  }
  p->xl_bin = find_xl();
  vol->priv = p;
  if (xen_layers(vol) < 0) {
    vu_layers_clear(vol);
    close_lower(vol);
    vol->priv = NULL;
    xpriv_free(p);
    return -1;
  }
  free(vol->id);
  vol->id = vu_asprintf("xen:%s/%s", p->uuid, p->vdev);
  return 0;
}

static void xen_close(vstor_vol *vol)
{
  close_lower(vol);
  xpriv_free(vol->priv);
  vol->priv = NULL;
}

static int xen_refresh(vstor_vol *vol) { return xen_layers(vol); }

/* ---- availability / capability -------------------------------------- */

static int xen_available(vstor_ctx *ctx, int op, char **why)
{
  char *w = NULL;
  struct xconn *c = xconn_new(ctx, &w);
  if (!c) {
    if (why) *why = w; else free(w);
    return 0;
  }
  xconn_free(c);
  if (op == VSTOR_OP_MIRROR || op == VSTOR_OP_PIVOT) {
    if (why) *why = vu_strdup("Xen's blkback has no live copy; move the storage below instead "
                              "(an LV: lvm:VG/LV keeps its device, so the guest never notices)");
    return 0;
  }
  if (op == VSTOR_OP_RESIZE_FS || op == VSTOR_OP_FREEZE) {
    if (why) *why = vu_strdup("a Xen PV guest has no agent channel: its filesystems can only be "
                              "grown or quiesced from inside the guest");
    return 0;
  }
  if (op == VSTOR_OP_SNAPSHOT) {
    char *x = find_xl();
    if (!x) {
      if (why) *why = vu_strdup("xl (xen-utils) missing: the unpause guard needs it");
      return 0;
    }
    free(x);
  }
  return 1;
}

static bool lower_is_lvm(vstor_vol *vol)
{
  return vol->lower && !strcmp(vol->lower->ops->name, "lvm") && vol->lower->ops->mirror_prepare &&
         vol->lower->ops->job_run;
}

__attribute__((format(printf, 2, 3)))
static int no(char **why, const char *fmt, ...)
{
  if (why) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(why, fmt, ap) < 0) *why = NULL;
    va_end(ap);
  }
  return 0;
}

static int xen_can(vstor_vol *vol, int op, unsigned flags, char **why)
{
  struct xpriv *p = vol->priv;
  if (find_domain(p) < 0 || find_disk(p) < 0) return -1;
  if (p->dying) return no(why, "%s: domain %s is dying", p->label, p->name);
  if (p->cdrom && op != VSTOR_OP_FREEZE) return no(why, "%s: is a CD-ROM, not a disk", p->label);
  switch (op) {
  case VSTOR_OP_EXTEND:
  case VSTOR_OP_EXTEND_ONLINE:
    if (p->be_domid != 0)
      return no(why, "%s: the backend runs in domain %u (a driver domain): its storage is not "
                "reachable from here", p->label, p->be_domid);
    if (p->be_kind != LIBXL_DISK_BACKEND_PHY)
      return no(why, "%s: backend %s: only blkback (phy) vbds publish a new size to a running "
                "guest", p->label, kind_name(p->be_kind));
    if (p->format != LIBXL_DISK_FORMAT_RAW)
      return no(why, "%s: format %s: only raw storage is grown", p->label,
                libxl_disk_format_to_string(p->format));
    if (!vol->lower)
      return no(why, "%s: storage %s could not be opened by a libvstor backend", p->label,
                p->pdev ? p->pdev : "?");
    return vol->lower->ops->can ? vol->lower->ops->can(vol->lower, VSTOR_OP_EXTEND, 0, why) : 1;
  case VSTOR_OP_RESIZE_FS:
    return no(why, "%s: a Xen PV guest has no agent channel: grow its filesystem inside the guest "
              "(resize2fs /dev/%s, xfs_growfs MOUNTPOINT)", p->label, p->vdev);
  case VSTOR_OP_FREEZE:
    return no(why, "%s: a Xen PV guest has no agent channel to quiesce it; a snapshot pauses the "
              "domain instead (VSTOR_SNAPSHOT_CRASH_CONSISTENT)", p->label);
  case VSTOR_OP_SNAPSHOT:
    if (p->be_domid != 0)
      return no(why, "%s: the backend runs in domain %u: its storage is not reachable from here",
                p->label, p->be_domid);
    if (!vol->lower)
      return no(why, "%s: storage %s could not be opened by a libvstor backend", p->label,
                p->pdev ? p->pdev : "?");
    if (p->readwrite && !(flags & VSTOR_SNAPSHOT_CRASH_CONSISTENT))
      return no(why, "%s: a Xen PV guest cannot be quiesced (no agent); pass "
                "VSTOR_SNAPSHOT_CRASH_CONSISTENT for a snapshot taken with the domain paused",
                p->label);
    if (p->readwrite && !p->xl_bin && strcmp(vol->lower->ops->name, "lvm"))
      return no(why, "%s: xl (xen-utils) missing: the unpause guard needs it", p->label);
    return vol->lower->ops->can ? vol->lower->ops->can(vol->lower, VSTOR_OP_SNAPSHOT,
                                                       flags | VSTOR_SNAPSHOT_CRASH_CONSISTENT, why) : 1;
  case VSTOR_OP_MIRROR:
  case VSTOR_OP_PIVOT:
    /* An LV moves under blkback (pvmove keeps the dm device the guest's
     * vbd holds): delegate to the LVM backend. */
    if (lower_is_lvm(vol) && p->be_domid == 0)
      return vol->lower->ops->can ? vol->lower->ops->can(vol->lower, op, flags, why) : 1;
    return no(why, "%s: Xen's blkback has no live copy (mirror/pivot need a %s backend that "
              "supports it; this disk is %s on %s)", p->label, "storage",
              kind_name(p->be_kind), p->pdev ? p->pdev : "?");
  default:
    return no(why, "%s: unknown operation", p->label);
  }
}

static int refuse(vstor_vol *vol, int op, unsigned flags)
{
  char *why = NULL;
  int ok = xen_can(vol, op, flags, &why);
  if (ok == 0) vstor_err(VSTOR_E_NOTSUP, 0, "%s", why ? why : "not supported");
  free(why);
  return ok <= 0 ? -1 : 0;
}

/* ---- extend --------------------------------------------------------- */

static int xen_extend(vstor_vol *vol, uint64_t size, const struct vstor_opts *o,
                      unsigned flags, vstor_report *rep)
{
  struct xpriv *p = vol->priv;
  bool dry = flags & VSTOR_DRY_RUN;
  if (find_domain(p) < 0 || find_disk(p) < 0) return -1;
  uint64_t cur = 0;
  if (xen_size(vol, &cur) < 0) return -1;
  rep->old_size = cur;
  rep->new_size = size > cur ? size : cur;
  if (size < cur)
    return vstor_err(VSTOR_E_INVAL, EINVAL, "%s: %llu is smaller than the current size %llu "
                     "(shrinking is refused)", p->label, (unsigned long long)size,
                     (unsigned long long)cur);
  if (size % 512)
    return vstor_err(VSTOR_E_INVAL, EINVAL, "%s: %llu is not a multiple of 512 bytes", p->label,
                     (unsigned long long)size);
  if (flags & VSTOR_EXTEND_RESIZE_FS) return refuse(vol, VSTOR_OP_RESIZE_FS, flags);
  if (refuse(vol, VSTOR_OP_EXTEND, flags) < 0) return -1;
  /* 1. the storage, through its backend (no filesystem step: it is the guest's) */
  uint64_t lsize = 0;
  if (vol->lower->ops->size(vol->lower, &lsize) < 0) return -1;
  if (size > lsize || size > cur) {
    unsigned lf = flags & (VSTOR_EXTEND_PREALLOC | VSTOR_DRY_RUN);
    if (vol->lower->ops->extend(vol->lower, size > lsize ? size : lsize, o, lf, rep) < 0) return -1;
  }
  /* 2. blkback publishes the new size (it re-reads the device size when it
   * services the ring, or on its idle timer); the frontend follows. */
  size_t s_be = rep->nsteps;
  vu_step(rep, "xen-vbd", "wait for blkback to publish the new size",
          size == cur ? VSTOR_STEP_SKIPPED : VSTOR_STEP_PLANNED, 0,
          "%s: %s/sectors = %llu, bounded by %d ms", p->label, p->be_path,
          (unsigned long long)(size / 512), RESIZE_WAIT_MS);
  vu_step(rep, "guest", "grow the filesystem inside the guest", VSTOR_STEP_SKIPPED, 0,
          "the guest's step: no agent channel in a Xen PV guest (resize2fs /dev/%s, "
          "xfs_growfs MOUNTPOINT)", p->vdev);
  if (dry || size == cur) {
    if (!dry) xen_layers(vol);
    return 0;
  }
  vstor_fault("xen.extend.lower-grown");
  uint64_t t0 = vu_now_us(), deadline = t0 + (uint64_t)RESIZE_WAIT_MS * 1000u, sec = 0;
  for (;;) {
    if (vbd_sectors(p, &sec) < 0) sec = 0;
    if (sec * 512 >= size) break;
    if (vu_now_us() > deadline) {
      char *m = vu_asprintf("blkback still publishes %llu sectors after %d ms; the guest sees "
                            "the new size once blkback next services its ring",
                            (unsigned long long)sec, RESIZE_WAIT_MS);
      vu_step_set(rep, s_be, VSTOR_STEP_FAILED, m);
      vstor_err(VSTOR_E_PARTIAL, ETIMEDOUT, "%s: storage grown to %llu bytes, but %s", p->label,
                (unsigned long long)size, m);
      free(m);
      xen_layers(vol);
      return -1;
    }
    usleep(100000);
  }
  char *d = vu_asprintf("%s: %llu sectors after %llu ms", p->label, (unsigned long long)sec,
                        (unsigned long long)((vu_now_us() - t0) / 1000));
  vu_step_set(rep, s_be, VSTOR_STEP_DONE, d);
  free(d);
  vstor_log(vol->ctx, VSTOR_LOG_INFO, "%s: blkback published %llu bytes after %llu ms", p->label,
            (unsigned long long)(sec * 512), (unsigned long long)((vu_now_us() - t0) / 1000));
  return xen_layers(vol);
}

/* ---- unpause guard -------------------------------------------------- */

/* A child that runs `xl unpause DOMID` when the caller dies (socket EOF)
 * or the window runs out; released by one byte.  It leaves the caller's
 * session (setsid) so a terminal's ^C does not take it down with the
 * caller.  Only async-signal-safe calls between fork and exec. */
struct guard { pid_t pid; int wfd; };

static int guard_start(struct guard *g, const char *xl, uint32_t domid, uint32_t ms)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return vstor_err(VSTOR_E_INTERNAL, errno, "unpause guard: socketpair: %s", strerror(errno));
  char dom[16];
  snprintf(dom, sizeof dom, "%u", domid);
  const char *argv[] = { xl, "unpause", dom, NULL };
  const char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(sv[0]); close(sv[1]);
    return vstor_err(VSTOR_E_INTERNAL, e, "unpause guard: fork: %s", strerror(e));
  }
  if (pid == 0) {
    setsid();
    dup2(sv[0], 0);
    int nul = open("/dev/null", O_WRONLY);
    if (nul >= 0) { dup2(nul, 1); dup2(nul, 2); }
    close_range(3, ~0U, 0);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct pollfd pf = { .fd = 0, .events = POLLIN };
    int r;
    do r = poll(&pf, 1, (int)ms);
    while (r < 0 && errno == EINTR);
    if (r > 0) {
      char b;
      if (read(0, &b, 1) == 1) _exit(99);   /* released: the caller unpauses */
    }
    execve(xl, (char *const *)argv, (char *const *)envp);
    _exit(127);
  }
  close(sv[0]);
  g->pid = pid;
  g->wfd = sv[1];
  return 0;
}

/* Release the guard.  1: released in time (the caller must unpause);
 * 0: the guard unpaused (window ran out, exit status in *st). */
static int guard_release(struct guard *g, int *st)
{
  char b = 'r';
  ssize_t w = send(g->wfd, &b, 1, MSG_NOSIGNAL);
  (void)w;
  close(g->wfd);
  int s = 0;
  while (waitpid(g->pid, &s, 0) < 0 && errno == EINTR)
    ;
  *st = s;
  return WIFEXITED(s) && WEXITSTATUS(s) == 99;
}

/* ---- snapshot ------------------------------------------------------- */

static int xen_snapshot(vstor_vol *vol, const char *dest, const struct vstor_opts *o,
                        unsigned flags, vstor_report *rep)
{
  struct xpriv *p = vol->priv;
  bool dry = flags & VSTOR_DRY_RUN;
  if (find_domain(p) < 0 || find_disk(p) < 0) return -1;
  if (refuse(vol, VSTOR_OP_SNAPSHOT, flags) < 0) return -1;
  unsigned lf = (flags & ~(unsigned)VSTOR_DRY_RUN) | VSTOR_SNAPSHOT_CRASH_CONSISTENT;
  /* Without writers (read-only vbd) nothing to pause.  An LV needs no
   * pause either: lvcreate -s suspends the origin's dm device (in-flight
   * I/O drained, new I/O queued) for the instant the snapshot is made, so
   * the snapshot is one point in time of the guest's disk: crash-
   * consistent exactly like a paused copy, without stopping the vCPUs for
   * the seconds lvcreate takes (and LVM owns that suspend: a pause window
   * running out in the middle of it could not be acted on). */
  bool atomic = vol->lower && !strcmp(vol->lower->ops->name, "lvm");
  bool pause = p->readwrite && !atomic;
  /* Check dest, space and plan before pausing anything. */
  size_t s_pause = rep->nsteps;
  if (p->readwrite && atomic)
    vu_step(rep, "xen-vbd", "no pause", VSTOR_STEP_SKIPPED, 0,
            "%s: the LV snapshot is atomic (dm suspend of the origin during lvcreate)", p->label);
  if (pause)
    vu_step(rep, "xen-vbd", "pause the domain (libxl_domain_pause, guarded)", VSTOR_STEP_PLANNED, 1,
            "%s (domid %u), bounded by %u ms", p->name, p->domid, o->freeze_timeout_ms);
  vstor_report *plan = vu_report_new();
  int r = vol->lower->ops->snapshot(vol->lower, dest, o, lf | VSTOR_DRY_RUN, plan);
  if (r < 0 || dry) {
    for (size_t i = 0; i < plan->nsteps; i++) {
      struct vstor_step *s = &plan->steps[i];
      vu_step(rep, s->layer, s->action, s->status, s->reversible, "%s", s->detail ? s->detail : "");
    }
  }
  vstor_report_free(plan);
  if (r < 0) return -1;
  if (pause && dry)
    vu_step(rep, "xen-vbd", "unpause the domain (libxl_domain_unpause)", VSTOR_STEP_PLANNED, 0,
            "%s", p->name);
  if (dry) return 0;
  if (!pause) {
    uint64_t t0 = vu_now_us();
    r = vol->lower->ops->snapshot(vol->lower, dest, o, lf, rep);
    /* The LVM backend measures its suspend only under a host filesystem;
     * otherwise report lvcreate's run time, an upper bound of the time the
     * guest's I/O was held. */
    if (r == 0 && atomic && p->readwrite && !rep->frozen_us) rep->frozen_us = vu_now_us() - t0;
    if (r == 0) rep->consistency = p->readwrite ? VSTOR_CONSISTENT_CRASH : VSTOR_CONSISTENT_IDLE;
    if (r == 0) xen_layers(vol);
    return r;
  }
  /* Journal first: a crash anywhere after this leaves a record that
   * vstor_recover() turns into an unpause of this very domain (by UUID). */
  struct vstor_jrec *jr = vstor_host->jrec_begin(vol, "snapshot");
  if (!jr) return -1;
  char buf[32];
  snprintf(buf, sizeof buf, "%u", p->domid);
  vstor_host->jrec_set(jr, "domid", buf);
  vstor_host->jrec_set(jr, "uuid", p->uuid);
  vstor_host->jrec_set(jr, "dest", dest);
  struct guard g;
  if (guard_start(&g, p->xl_bin, p->domid, o->freeze_timeout_ms) < 0) {
    vstor_host->jrec_end(jr);
    return -1;
  }
  vstor_host->jrec_set(jr, "paused", "1");
  uint64_t t0 = vu_now_us();
  xclear(p);
  int rc = libxl_domain_pause(p->c->xl, p->domid, NULL);
  if (rc != 0) {
    int st;
    bool released = guard_release(&g, &st);
    vstor_err(VSTOR_E_BACKEND, 0, "%s: libxl_domain_pause failed (%d): %s", p->label, rc,
              xerr_text(p));
    vu_step_set(rep, s_pause, VSTOR_STEP_FAILED, vstor_last_error());
    (void)released;       /* nothing paused: the guard's unpause (if any) is harmless */
    (void)st;
    vstor_host->jrec_end(jr);
    return -1;
  }
  vu_step_set(rep, s_pause, VSTOR_STEP_DONE, NULL);
  vstor_fault("xen.snapshot.paused");
  size_t s_lower = rep->nsteps;
  r = vol->lower->ops->snapshot(vol->lower, dest, o, lf, rep);
  char *lmsg = NULL;
  int lcode = 0, lerrno = 0;
  if (r < 0) lmsg = vstor_host->error_get(&lcode, &lerrno);
  vstor_fault("xen.snapshot.copied");
  size_t s_unpause = rep->nsteps;
  vu_step(rep, "xen-vbd", "unpause the domain (libxl_domain_unpause)", VSTOR_STEP_PLANNED, 0,
          "%s", p->name);
  int st = 0;
  bool released = guard_release(&g, &st);
  int urc = 0;
  if (released) {
    xclear(p);
    urc = libxl_domain_unpause(p->c->xl, p->domid, NULL);
  }
  uint64_t t1 = vu_now_us();
  rep->frozen_us = t1 - t0;
  bool unpaused = released ? urc == 0 : WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (unpaused) {
    vstor_host->jrec_set(jr, "paused", "0");
    vu_step_set(rep, s_unpause, VSTOR_STEP_DONE,
                released ? NULL : "by the guard: the window ran out");
  } else {
    char *m = released ? vu_asprintf("libxl_domain_unpause failed (%d): %s", urc, xerr_text(p))
                       : vu_asprintf("the window ran out and the guard's xl unpause failed "
                                     "(status %d)", st);
    vu_step_set(rep, s_unpause, VSTOR_STEP_FAILED, m);
    /* leave the record: vstor_recover() retries the unpause */
    vstor_err(VSTOR_E_BACKEND, 0, "%s: %s; the domain is still paused (vstor_recover() or "
              "`xl unpause %u` resumes it)%s%s", p->label, m, p->domid,
              lmsg ? "; the snapshot failed too: " : "", lmsg ? lmsg : "");
    free(m);
    free(lmsg);
    return -1;
  }
  if (r < 0) {
    vstor_host->jrec_end(jr);
    vstor_host->error_set(lcode, lerrno, lmsg);
    free(lmsg);
    return -1;
  }
  if (!released) {
    /* paused past the bound: the copy is not point-in-time; remove it */
    const char *dpath = !strncmp(dest, "file:", 5) ? dest + 5 : dest;
    bool removed = dpath[0] == '/' && unlink(dpath) == 0;
    for (size_t i = s_lower; removed && i < s_unpause; i++)
      if (rep->steps[i].status == VSTOR_STEP_DONE && rep->steps[i].reversible)
        vu_step_set(rep, i, VSTOR_STEP_UNDONE, "removed: the pause outlasted the window");
    vstor_host->jrec_end(jr);
    return vstor_err(VSTOR_E_TIMEOUT, ETIMEDOUT, "%s: the snapshot took longer than the %u ms "
                     "pause window; the guard unpaused %s and %s", p->label,
                     o->freeze_timeout_ms, p->name, removed ? "the copy was removed"
                     : "the copy (not point-in-time) was left at the destination");
  }
  rep->consistency = VSTOR_CONSISTENT_CRASH;
  vstor_host->jrec_end(jr);
  vstor_log(vol->ctx, VSTOR_LOG_INFO, "%s: paused %llu us for the snapshot to %s", p->label,
            (unsigned long long)rep->frozen_us, dest);
  free(lmsg);
  xen_layers(vol);
  return 0;
}

/* ---- mirror: delegated to an LVM lower layer, else refused ---------- */

/* The LVM backend's job functions work on job->priv (set by its
 * mirror_prepare) and use job->vol only to journal and refresh, so they
 * run unchanged on our job.  Their ops table is static in the lvm module:
 * remembered here so a refresh that reopens vol->lower mid-job is safe. */
static const struct vstor_backend_ops *lvm_ops;

static int xen_mirror_prepare(vstor_vol *vol, vstor_job *job, unsigned flags, vstor_report *rep)
{
  struct xpriv *p = vol->priv;
  if (find_domain(p) < 0 || find_disk(p) < 0) return -1;
  if (refuse(vol, VSTOR_OP_MIRROR, flags) < 0) return -1;
  if (!lower_is_lvm(vol)) return vstor_err(VSTOR_E_INTERNAL, 0, "xen: mirror unexpectedly allowed");
  lvm_ops = vol->lower->ops;
  vu_step(rep, "xen-vbd", "keep the vbd", VSTOR_STEP_SKIPPED, 0,
          "%s: blkback keeps %s open; the LV moves underneath it", p->label, p->node ? p->node : p->pdev);
  return lvm_ops->mirror_prepare(vol->lower, job, flags, rep);
}

static int xen_job_run(vstor_job *job)
{
  return lvm_ops ? lvm_ops->job_run(job) : vstor_err(VSTOR_E_INTERNAL, 0, "xen: no delegate");
}

static int xen_job_pivot(vstor_job *job)
{
  if (!lvm_ops || !lvm_ops->job_pivot)
    return vstor_err(VSTOR_E_NOTSUP, 0, "xen: pivot not supported by the storage backend");
  return lvm_ops->job_pivot(job);
}

static int xen_job_complete(vstor_job *job)
{
  if (!lvm_ops || !lvm_ops->job_complete)
    return vstor_err(VSTOR_E_NOTSUP, 0, "xen: complete not supported by the storage backend");
  return lvm_ops->job_complete(job);
}

static int xen_job_cancel(vstor_job *job)
{
  return lvm_ops && lvm_ops->job_cancel ? lvm_ops->job_cancel(job) : 0;
}

static void xen_job_free(vstor_job *job)
{
  if (lvm_ops && lvm_ops->job_free) lvm_ops->job_free(job);
}

/* ---- recover -------------------------------------------------------- */

static int xen_recover(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep)
{
  const char *op = vstor_host->jrec_get(rec, "op");
  const char *paused = vstor_host->jrec_get(rec, "paused");
  const char *dom = vstor_host->jrec_get(rec, "domid");
  const char *uuid = vstor_host->jrec_get(rec, "uuid");
  const char *vg = vstor_host->jrec_get(rec, "lvm_vg"), *lv = vstor_host->jrec_get(rec, "lvm_lv");
  if (op && !strcmp(op, "mirror") && vg && lv) {
    /* a move the LVM backend journalled under our volume: hand it back */
    char *u = vu_asprintf("lvm:%s/%s", vg, lv);
    vstor_vol *lo = NULL;
    int r = vstor_host->open_lower(ctx, u, 0, &lo);
    free(u);
    if (r < 0) return -1;
    r = lo->ops->recover ? lo->ops->recover(ctx, rec, rep) : 0;
    vstor_host->close_lower(lo);
    return r;
  }
  if (!op || strcmp(op, "snapshot") || !paused || strcmp(paused, "1") || !dom || !uuid) {
    vu_step(rep, "xen-vbd", "nothing to undo", VSTOR_STEP_SKIPPED, 0, "%s record: no pause pending",
            op ? op : "?");
    return 0;
  }
  char *why = NULL;
  struct xconn *c = xconn_new(ctx, &why);
  if (!c) {
    int r = vstor_err(VSTOR_E_NOTSUP, 0, "xen: cannot unpause domain %s: %s", dom, why);
    free(why);
    return r;
  }
  uint32_t domid = (uint32_t)strtoul(dom, NULL, 10);
  libxl_dominfo di;
  libxl_dominfo_init(&di);
  int r = 0;
  if (libxl_domain_info(c->xl, &di, domid) != 0) {
    vu_step(rep, "xen-vbd", "unpause", VSTOR_STEP_SKIPPED, 0, "domain %s is gone", dom);
  } else {
    char u[40];
    uuid_str(&di.uuid, u);
    if (strcasecmp(u, uuid))
      vu_step(rep, "xen-vbd", "unpause", VSTOR_STEP_SKIPPED, 0,
              "domid %s is now another domain (%s, not %s)", dom, u, uuid);
    else if (!di.paused)
      vu_step(rep, "xen-vbd", "unpause", VSTOR_STEP_SKIPPED, 0, "domain %s already running", dom);
    else if (libxl_domain_unpause(c->xl, domid, NULL) != 0)
      r = vstor_err(VSTOR_E_BACKEND, 0, "xen: libxl_domain_unpause(%s) failed: %s", dom,
                    c->log.last[0] ? c->log.last : "?");
    else
      vu_step(rep, "xen-vbd", "unpause", VSTOR_STEP_DONE, 0, "domain %s (%s)", dom, uuid);
  }
  libxl_dominfo_dispose(&di);
  xconn_free(c);
  return r;
}

static const struct vstor_backend_ops xen_ops = {
  .abi = VSTOR_BACKEND_ABI,
  .name = "xen",
  .available = xen_available,
  .open = xen_open,
  .close = xen_close,
  .refresh = xen_refresh,
  .size = xen_size,
  .can = xen_can,
  .extend = xen_extend,
  .snapshot = xen_snapshot,
  .mirror_prepare = xen_mirror_prepare,
  .job_run = xen_job_run,
  .job_pivot = xen_job_pivot,
  .job_complete = xen_job_complete,
  .job_cancel = xen_job_cancel,
  .job_free = xen_job_free,
  .recover = xen_recover,
};

VSTOR_BACKEND_MODULE(xen_ops);
