/* libvstor - Ceph RBD backend (module vstor-rbd.so)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * URI: rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][?id=CLIENT&conf=PATH&libvirt=CONN]
 *   CONN    libvirt connection on which a running guest using the image
 *           is looked for (HAVE_LIBVIRT): its stack is shown above the
 *           image, extend/snapshot are forwarded to it, migration is
 *           refused naming its libvirt: URI.  Never looked for without it.
 *   CLIENT  cephx user without "client." (default: admin, as the rbd CLI);
 *   PATH    ceph.conf (default: $CEPH_CONF, then Ceph's usual search:
 *           /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf); $CEPH_ARGS
 *           is honoured as by the Ceph tools.
 *
 * Connections: one librados cluster connection per (conf, client) in each
 * libvstor context, kept in the context's backend slot (host->ctx_slot),
 * shared by every volume, job and recover of that context (librados
 * handles are thread-safe; the list is under a mutex), and shut down when
 * the context is freed (ops->ctx_free).  Every connection gets bounded timeouts
 * (client_mount_timeout, rados_mon_op_timeout, rados_osd_op_timeout:
 * $VSTOR_RBD_TIMEOUT seconds, default 10) so an unreachable cluster or a
 * stuck OSD gives TIMEOUT instead of a hang.
 *
 * The image is opened only for the duration of each call (read-only for
 * queries), so a libvstor handle is never a watcher that would block a
 * live migration, another client's exclusive operations, or itself.
 *
 * Layers: one "storage" layer of type rbd: size, features, object size,
 * parent, snapshots, watchers (rbd_watchers_list), migration state.
 *
 * Operations:
 *   extend    rbd_resize2(allow_shrink = false): online, every open handle
 *             of every client sees the new size.  RBD is thin: nothing is
 *             allocated, so there is no space to check.
 *   snapshot  rbd_snap_create2; dest is a snapshot name ("s1" or
 *             "rbd:POOL/IMAGE@s1" naming this image), or another image
 *             "rbd:POOL2[/NS]/NEW[@SNAP]": snapshot SNAP (default
 *             "vstor-clone-NEW") + protect + rbd_clone3 into it.  RBD
 *             cannot quiesce other clients: an image with watchers is
 *             refused unless VSTOR_SNAPSHOT_CRASH_CONSISTENT (reported
 *             CRASH); one nobody has open is IDLE.
 *   mirror    RBD live migration (rbd_migration_prepare, _execute with its
 *             progress callback on the job thread, READY after execute),
 *             pivot = rbd_migration_commit, cancel = rbd_migration_abort.
 *             Refused with BUSY while the image has watchers (migration
 *             needs every client closed).  complete is NOTSUP: after
 *             prepare the source is no longer usable, there is no
 *             point-in-time copy that leaves the volume on its source.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>
#if HAVE_LIBVIRT
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#endif

#include "backend.h"
#include "util.h"

#define DEFAULT_TIMEOUT_S 10

/* ---- errors --------------------------------------------------------- */

static __thread char last_msg[1024];

__attribute__((format(printf, 2, 3)))
static int rerr(int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_msg, sizeof last_msg, fmt, ap);
  va_end(ap);
  return vstor_err(code, 0, "%s", last_msg);
}

static int map_errno(int e)
{
  switch (e) {
  case ENOENT: return VSTOR_E_NOENT;
  case EEXIST: return VSTOR_E_EXIST;
  case EBUSY: return VSTOR_E_BUSY;
  case ETIMEDOUT: return VSTOR_E_TIMEOUT;
  case EACCES: case EPERM: case EROFS: return VSTOR_E_PERM;
  case ENOSPC: case EDQUOT: return VSTOR_E_NOSPC;
  case EINVAL: case ERANGE: case ENAMETOOLONG: return VSTOR_E_INVAL;
  case EOPNOTSUPP: case ENOSYS: return VSTOR_E_NOTSUP;
  case ECANCELED: return VSTOR_E_CANCELLED;
  case EIO: return VSTOR_E_IO;
  case EAGAIN: return VSTOR_E_AGAIN;
  default: return VSTOR_E_BACKEND;
  }
}

/* r is a negative errno from librados/librbd: "what: call: message". */
static int cerr(int r, const char *what, const char *call)
{
  int e = r < 0 ? -r : r;
  snprintf(last_msg, sizeof last_msg, "%s: %s: %s%s", what, call, strerror(e),
           e == ETIMEDOUT ? " (the cluster did not answer within the bound: monitor or OSD "
                            "down? see $VSTOR_RBD_TIMEOUT)" : "");
  return vstor_err(map_errno(e), e, "%s", last_msg);
}

static unsigned timeout_s(void)
{
  const char *t = getenv("VSTOR_RBD_TIMEOUT");
  if (t && *t) {
    char *end;
    unsigned long v = strtoul(t, &end, 10);
    if (!*end && v > 0 && v <= 3600)
      return (unsigned)v;
  }
  return DEFAULT_TIMEOUT_S;
}

/* ---- connection cache ------------------------------------------------- */

struct rconn {
  struct rconn *next;
  char *conf;      /* "" = Ceph's default search */
  char *client;    /* without "client." */
  rados_t cl;
  char fsid[64];
  uint64_t instance;
  char *addrs;     /* this client's address(es): exclusive lock owner id */
};

/* A context's connections (its backend slot). */
struct rctx {
  pthread_mutex_t mu;
  struct rconn *conns;
};

static const struct vstor_backend_ops rbd_ops;
static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;  /* first use of a slot */

static struct rctx *rctx_of(vstor_ctx *ctx)
{
  void **slot = vstor_host->ctx_slot(ctx, &rbd_ops);
  if (!slot) {
    rerr(VSTOR_E_INTERNAL, "no per-context slot left for the rbd backend");
    return NULL;
  }
  pthread_mutex_lock(&slot_mu);
  if (!*slot) {
    struct rctx *r = vu_calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    *slot = r;
  }
  pthread_mutex_unlock(&slot_mu);
  return *slot;
}

static void conn_free(struct rconn *c)
{
  rados_shutdown(c->cl);
  free(c->conf); free(c->client); free(c->addrs); free(c);
}

/* The context is freed: no volume or job uses its connections any more. */
static void rb_ctx_free(vstor_ctx *ctx, void *slot)
{
  (void)ctx;
  struct rctx *r = slot;
  for (struct rconn *c = r->conns, *n; c; c = n) {
    n = c->next;
    conn_free(c);
  }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static const char *conf_key(const char *conf)
{
  if (conf && *conf) return conf;
  const char *e = getenv("CEPH_CONF");
  return e && *e ? e : "";
}

static struct rconn *conn_find(struct rctx *r, const char *conf, const char *client)
{
  for (struct rconn *c = r->conns; c; c = c->next)
    if (!strcmp(c->conf, conf) && !strcmp(c->client, client))
      return c;
  return NULL;
}

/* The context's connected cluster for (conf, client), connecting on
 * first use; it lives until the context is freed. */
static int conn_get(vstor_ctx *ctx, const char *conf_in, const char *client_in, struct rconn **out)
{
  const char *conf = conf_key(conf_in);
  const char *client = client_in && *client_in ? client_in : "admin";
  struct rctx *rc = rctx_of(ctx);
  if (!rc) return -1;
  pthread_mutex_lock(&rc->mu);
  struct rconn *c = conn_find(rc, conf, client);
  pthread_mutex_unlock(&rc->mu);
  if (c) {
    *out = c;
    return 0;
  }

  /* Connect outside the lock: a dead cluster takes up to the timeout. */
  if (*conf && access(conf, R_OK) != 0)
    return rerr(errno == ENOENT ? VSTOR_E_NOENT : VSTOR_E_PERM,
                "Ceph configuration %s: %s", conf, strerror(errno));
  rados_t cl;
  char *name = vu_asprintf("client.%s", client);
  int r = rados_create2(&cl, "ceph", name, 0);
  free(name);
  if (r < 0)
    return cerr(r, "librados", "rados_create2");
  char *who = vu_asprintf("client.%s (conf %s)", client, *conf ? conf : "default search");
  rados_conf_parse_env(cl, NULL);
  r = rados_conf_read_file(cl, *conf ? conf : NULL);
  if (r < 0) {
    rados_shutdown(cl);
    if (!*conf && r == -ENOENT)
      rerr(VSTOR_E_NOTSUP, "no Ceph configuration found ($CEPH_CONF unset, no /etc/ceph/ceph.conf); "
           "pass ?conf=PATH");
    else
      cerr(r, who, "rados_conf_read_file");
    free(who);
    return -1;
  }
  char ts[16];
  snprintf(ts, sizeof ts, "%u", timeout_s());
  rados_conf_set(cl, "client_mount_timeout", ts);
  rados_conf_set(cl, "rados_mon_op_timeout", ts);
  rados_conf_set(cl, "rados_osd_op_timeout", ts);
  uint64_t t0 = vu_now_us();
  r = rados_connect(cl);
  if (r < 0) {
    rados_shutdown(cl);
    if (r == -ETIMEDOUT || r == -EINTR)
      rerr(VSTOR_E_TIMEOUT, "%s: cluster not reachable: no monitor answered within %u s "
           "(rados_connect: %s)", who, timeout_s(), strerror(-r));
    else if (r == -ENOENT || r == -EACCES || r == -EPERM || r == -EKEYREJECTED)
      rerr(VSTOR_E_PERM, "%s: authentication failed (keyring missing or key rejected): "
           "rados_connect: %s", who, strerror(-r));
    else
      cerr(r, who, "rados_connect");
    free(who);
    return -1;
  }
  (void)t0;
  free(who);
  c = vu_calloc(1, sizeof *c);
  c->conf = vu_strdup(conf);
  c->client = vu_strdup(client);
  c->cl = cl;
  size_t fl = sizeof c->fsid;
  if (rados_cluster_fsid(cl, c->fsid, fl) < 0)
    snprintf(c->fsid, sizeof c->fsid, "unknown");
  c->instance = rados_get_instance_id(cl);
  char *addrs = NULL;
  if (rados_getaddrs(cl, &addrs) == 0 && addrs) {
    c->addrs = vu_strdup(addrs);
    rados_buffer_free(addrs);
  }

  pthread_mutex_lock(&rc->mu);
  struct rconn *other = conn_find(rc, conf, client);
  if (other) {            /* lost a race: use the first one */
    pthread_mutex_unlock(&rc->mu);
    conn_free(c);
    *out = other;
    return 0;
  }
  c->next = rc->conns;
  rc->conns = c;
  pthread_mutex_unlock(&rc->mu);
  *out = c;
  return 0;
}

static int pool_open(struct rconn *c, const char *pool, const char *ns, rados_ioctx_t *io)
{
  int r = rados_ioctx_create(c->cl, pool, io);
  if (r == -ENOENT)
    return rerr(VSTOR_E_NOENT, "Ceph pool '%s' does not exist", pool);
  if (r < 0)
    return cerr(r, pool, "rados_ioctx_create");
  rados_ioctx_set_namespace(*io, ns ? ns : "");
  return 0;
}

/* ---- names ------------------------------------------------------------ */

static char *spec(const char *pool, const char *ns, const char *image, const char *snap)
{
  return vu_asprintf("%s/%s%s%s%s%s", pool, ns ? ns : "", ns ? "/" : "", image,
                     snap ? "@" : "", snap ? snap : "");
}

static bool name_ok(const char *s)
{
  if (!s || !*s || strlen(s) >= RBD_MAX_IMAGE_NAME_SIZE) return false;
  for (const char *c = s; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == '/' || *c == '@' || *c == '?' || *c == '&')
      return false;
  return true;
}

/* An rbd destination "rbd:POOL[/NS]/IMAGE[@SNAP]" (no query: it uses the
 * source's cluster connection). */
struct rdest { char *pool, *ns, *image, *snap; };

static void rdest_free(struct rdest *d)
{
  free(d->pool); free(d->ns); free(d->image); free(d->snap);
  memset(d, 0, sizeof *d);
}

static int rdest_parse(const char *what, const char *text_in, struct rdest *d)
{
  char shown[128];
  const char *text = text_in;
  memset(d, 0, sizeof *d);
  vu_shown(text_in, shown);
  if (strncmp(text, "rbd:", 4))
    return rerr(VSTOR_E_INVAL, "%s %s: expected rbd:POOL[/NAMESPACE]/IMAGE", what, shown);
  if (strchr(text, '?'))
    return rerr(VSTOR_E_INVAL, "%s %s: no ?id= or ?conf= in a destination (it is on the "
                "source's cluster, through the source's connection)", what, shown);
  char *body = vu_strdup(text + 4);
  char *at = strchr(body, '@');
  if (at) { *at = 0; d->snap = vu_strdup(at + 1); }
  char *parts[4];
  int np = 0;
  for (char *t = body, *sl; np < 4; t = sl + 1) {
    parts[np++] = t;
    if (!(sl = strchr(t, '/'))) break;
    *sl = 0;
  }
  int r = 0;
  if (np < 2 || np > 3)
    r = rerr(VSTOR_E_INVAL, "%s %s: expected rbd:POOL[/NAMESPACE]/IMAGE", what, shown);
  for (int i = 0; !r && i < np; i++)
    if (!name_ok(parts[i]))
      r = rerr(VSTOR_E_INVAL, "%s %s: empty or invalid pool, namespace or image name", what, shown);
  if (!r && d->snap && !name_ok(d->snap))
    r = rerr(VSTOR_E_INVAL, "%s %s: empty or invalid snapshot name", what, shown);
  if (!r) {
    d->pool = vu_strdup(parts[0]);
    if (np == 3) d->ns = vu_strdup(parts[1]);
    d->image = vu_strdup(parts[np - 1]);
  }
  free(body);
  if (r) rdest_free(d);
  return r;
}

static bool same_str(const char *a, const char *b)
{
  return !strcmp(a ? a : "", b ? b : "");
}

/* ---- volume ------------------------------------------------------------- */

struct rpriv {
  struct rconn *c;
  rados_ioctx_t io;
  char *pool, *ns, *image, *snap;
  char *conf, *client;     /* as given in the URI (may be NULL) */
  char *name;              /* pool/[ns/]image[@snap] */
  char *lv_conn;           /* ?libvirt=CONN: where to look for a guest using the image */
  char *up_uri, *up_name;  /* the guest found: libvirt:DOM/TARGET?uri=.., DOM/TARGET */
};
#define FREE(x) do { free(x); (x) = NULL; } while (0)

static void rp_free(struct rpriv *p)
{
  if (!p) return;
  if (p->io) rados_ioctx_destroy(p->io);
  free(p->pool); free(p->ns); free(p->image); free(p->snap);
  free(p->conf); free(p->client); free(p->name);
  free(p->lv_conn); free(p->up_uri); free(p->up_name);
  free(p);
}

/* Open the image for one call.  rw: a writable handle at the head. */
static int img_open(struct rpriv *p, bool rw, rbd_image_t *img)
{
  int r = rw ? rbd_open(p->io, p->image, img, NULL)
             : rbd_open_read_only(p->io, p->image, img, p->snap);
  if (r == -ENOENT) {
    rbd_image_migration_status_t ms;
    if (rbd_migration_status(p->io, p->image, &ms, sizeof ms) == 0) {
      rerr(VSTOR_E_STATE, "%s: image is being migrated (state %s); use the destination",
           p->name, ms.state_description ? ms.state_description : "?");
      rbd_migration_status_cleanup(&ms);
      return -1;
    }
    if (p->snap) {
      rbd_image_t t;
      if (rbd_open_read_only(p->io, p->image, &t, NULL) == 0) {
        rbd_close(t);
        return rerr(VSTOR_E_NOENT, "%s: image has no snapshot '%s'", p->name, p->snap);
      }
    }
    return rerr(VSTOR_E_NOENT, "%s: no such RBD image in pool '%s'%s%s", p->name, p->pool,
                p->ns ? ", namespace " : "", p->ns ? p->ns : "");
  }
  if (r < 0)
    return cerr(r, p->name, rw ? "rbd_open" : "rbd_open_read_only");
  return 0;
}

/* Watchers other than this process's connection: count, and a list of
 * their addresses (malloc'd, may be NULL). */
static int other_watchers(struct rpriv *p, rbd_image_t img, char **list)
{
  rbd_image_watcher_t w[32];
  size_t n = 32;
  int r = rbd_watchers_list(img, w, &n);
  if (r == -ERANGE) {
    if (list) *list = vu_asprintf("%zu watchers", n);
    return (int)n;
  }
  if (r < 0)
    return cerr(r, p->name, "rbd_watchers_list");
  int others = 0;
  char *s = NULL;
  for (size_t i = 0; i < n; i++) {
    if ((uint64_t)w[i].id == p->c->instance) continue;
    others++;
    char *t = vu_asprintf("%s%sclient.%" PRId64 "@%s", s ? s : "", s ? ", " : "", w[i].id,
                          w[i].addr ? w[i].addr : "?");
    free(s);
    s = t;
  }
  rbd_watchers_list_cleanup(w, n);
  if (list) *list = s; else free(s);
  return others;
}

static void prop_u64(struct vstor_layer *l, const char *k, uint64_t v)
{
  char b[32];
  snprintf(b, sizeof b, "%llu", (unsigned long long)v);
  vu_layer_prop(l, k, b);
}

/* ---- the domain above: guest discovery through libvirt ----------------- */

/* With ?libvirt=CONN the running domains on CONN are searched for a
 * <disk type='network'><source protocol='rbd' name='POOL[/NS]/IMAGE'>;
 * the first one found is the image's upper stack, reached by the libvirt
 * backend as "libvirt:DOM/TARGET?uri=CONN[&conf=..][&id=..]" (its lower
 * rbd layer has no libvirt=, so nothing recurses).  Without libvirt= no
 * domain is looked for: watchers are only counted. */

#if HAVE_LIBVIRT
static void lv_silent(void *o, virErrorPtr e) { (void)o; (void)e; }

/* 1 found (*dom, *target set), 0 none, -1 error (set). */
static int find_domain(const char *conn_uri, const char *name, char **dom, char **target)
{
  virSetErrorFunc(NULL, lv_silent);
  virConnectPtr c = virConnectOpen(conn_uri);
  if (!c) {
    virErrorPtr e = virGetLastError();
    return rerr(VSTOR_E_NOTSUP, "libvirt=%s: libvirt daemon not reachable: %s", conn_uri,
                e && e->message ? e->message : "connection failed");
  }
  virConnSetErrorFunc(c, NULL, lv_silent);
  virDomainPtr *doms = NULL;
  int n = virConnectListAllDomains(c, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  int found = 0;
  for (int i = 0; i < n; i++) {
    char *xml = found ? NULL : virDomainGetXMLDesc(doms[i], 0);
    xmlDocPtr doc = xml ? xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING) : NULL;
    free(xml);
    xmlXPathContextPtr xc = doc ? xmlXPathNewContext(doc) : NULL;
    xmlXPathObjectPtr o = xc ? xmlXPathEvalExpression(
        (const xmlChar *)"/domain/devices/disk[@type='network']/source[@protocol='rbd']", xc) : NULL;
    for (int k = 0; o && o->nodesetval && k < o->nodesetval->nodeNr && !found; k++) {
      xmlNodePtr s = o->nodesetval->nodeTab[k];
      xmlChar *nm = xmlGetProp(s, (const xmlChar *)"name");
      if (nm && !strcmp((const char *)nm, name)) {
        for (xmlNodePtr t = s->parent->children; t; t = t->next)
          if (t->type == XML_ELEMENT_NODE && !strcmp((const char *)t->name, "target")) {
            xmlChar *dev = xmlGetProp(t, (const xmlChar *)"dev");
            if (dev) {
              *target = vu_strdup((const char *)dev);
              *dom = vu_strdup(virDomainGetName(doms[i]));
              found = 1;
              xmlFree(dev);
            }
            break;
          }
      }
      xmlFree(nm);
    }
    if (o) xmlXPathFreeObject(o);
    if (xc) xmlXPathFreeContext(xc);
    if (doc) xmlFreeDoc(doc);
  }
  for (int i = 0; i < n; i++) virDomainFree(doms[i]);
  free(doms);
  virConnectClose(c);
  if (n < 0)
    return rerr(VSTOR_E_BACKEND, "libvirt=%s: virConnectListAllDomains failed", conn_uri);
  return found;
}
#endif

/* Look for the domain above (p->up_uri set when found). */
static int discover_up(struct rpriv *p)
{
  FREE(p->up_uri); FREE(p->up_name);
  if (!p->lv_conn || p->snap)
    return 0;
#if HAVE_LIBVIRT
  char *img = spec(p->pool, p->ns, p->image, NULL), *dom = NULL, *tgt = NULL;
  int r = find_domain(p->lv_conn, img, &dom, &tgt);
  free(img);
  if (r <= 0)
    return r;
  char *ed = vu_pct_encode(dom), *ec = vu_pct_encode(p->lv_conn), *ef = p->conf ? vu_pct_encode(p->conf) : NULL;
  char *ei = p->client ? vu_pct_encode(p->client) : NULL;
  p->up_uri = vu_asprintf("libvirt:%s/%s?uri=%s%s%s%s%s", ed, tgt, ec, ef ? "&conf=" : "", ef ? ef : "",
                          ei ? "&id=" : "", ei ? ei : "");
  p->up_name = vu_asprintf("%s/%s", dom, tgt);
  free(ed); free(ec); free(ef); free(ei); free(dom); free(tgt);
  return 1;
#else
  return rerr(VSTOR_E_NOTSUP, "%s: libvirt=%s given but the rbd module was built without libvirt "
              "(guest discovery unavailable)", p->name, p->lv_conn);
#endif
}

/* Open the domain above as a libvirt volume (caller closes it). */
static int open_up(vstor_vol *vol, unsigned flags, vstor_vol **up)
{
  struct rpriv *p = vol->priv;
  if (vstor_host->open_lower(vol->ctx, p->up_uri, flags, up) < 0) {
    int code = 0, en = 0;
    char *m = vstor_host->error_get(&code, &en);
    rerr(code ? code : VSTOR_E_BACKEND, "%s: the guest above (%s) could not be opened: %s", p->name,
         p->up_uri, m ? m : "?");
    free(m);
    return -1;
  }
  return 0;
}

static int rb_layers(vstor_vol *vol)
{
  struct rpriv *p = vol->priv;
  rbd_image_t img;
  if (img_open(p, false, &img) < 0)
    return -1;
  rbd_image_info_t st;
  int r = rbd_stat(img, &st, sizeof st);
  if (r < 0) { rbd_close(img); return cerr(r, p->name, "rbd_stat"); }
  vu_layers_clear(vol);
  struct vstor_layer *l = vu_layer_add(vol, "storage", "rbd", p->name, st.size);
  vu_layer_prop(l, "pool", p->pool);
  if (p->ns) vu_layer_prop(l, "namespace", p->ns);
  vu_layer_prop(l, "image", p->image);
  if (p->snap) vu_layer_prop(l, "snapshot", p->snap);
  vu_layer_prop(l, "cluster", p->c->fsid);
  char inst[32];
  snprintf(inst, sizeof inst, "client.%llu", (unsigned long long)p->c->instance);
  vu_layer_prop(l, "connection", inst);   /* this context's connection to the cluster */
  char *cl = vu_asprintf("client.%s", p->c->client);
  vu_layer_prop(l, "client", cl);
  free(cl);
  char id[64];
  if (rbd_get_id(img, id, sizeof id) == 0) vu_layer_prop(l, "id", id);
  prop_u64(l, "object_size", st.obj_size);
  uint64_t feat = 0;
  if (rbd_get_features(img, &feat) == 0) {
    char fs[512];
    size_t fl = sizeof fs;
    if (rbd_features_to_string(feat, fs, &fl) == 0) vu_layer_prop(l, "features", fs);
  }
  rbd_linked_image_spec_t pi;
  rbd_snap_spec_t ps;
  if (rbd_get_parent(img, &pi, &ps) == 0) {
    char *par = spec(pi.pool_name, pi.pool_namespace && *pi.pool_namespace ? pi.pool_namespace : NULL,
                     pi.image_name, ps.name);
    vu_layer_prop(l, "parent", par);
    free(par);
    rbd_linked_image_spec_cleanup(&pi);
    rbd_snap_spec_cleanup(&ps);
  }
  int max = 0;
  rbd_snap_info_t *snaps = NULL;
  int ns = rbd_snap_list(img, NULL, &max);
  if (ns == -ERANGE && max > 0) {
    snaps = vu_calloc((size_t)max + 1, sizeof *snaps);
    ns = rbd_snap_list(img, snaps, &max);
    if (ns >= 0) {
      char *s = NULL;
      for (int i = 0; i < ns; i++) {
        char *t = vu_asprintf("%s%s%s", s ? s : "", s ? "," : "", snaps[i].name);
        free(s); s = t;
      }
      if (s) vu_layer_prop(l, "snapshots", s);
      free(s);
      rbd_snap_list_end(snaps);
    }
    free(snaps);
  }
  char *wl = NULL;
  int nw = other_watchers(p, img, &wl);
  if (nw >= 0) {
    prop_u64(l, "watchers", (uint64_t)nw);
    if (wl) vu_layer_prop(l, "watcher_list", wl);
  }
  free(wl);
  rbd_close(img);
  rbd_image_migration_status_t ms;
  if (rbd_migration_status(p->io, p->image, &ms, sizeof ms) == 0) {
    vu_layer_prop(l, "migration", ms.state_description ? ms.state_description : "yes");
    rbd_migration_status_cleanup(&ms);
  }
  /* the stack above: hypervisor (and guest filesystem) from the libvirt
   * backend, when a guest using the image was found */
  if (nw > 0 && !p->lv_conn)
    vu_layer_prop(l, "guest", "not looked for (guest discovery needs libvirt=)");
  else if (p->lv_conn && !p->up_uri && !p->snap)
    vu_layer_prop(l, "guest", "none running on the libvirt= connection uses this image");
  if (p->up_uri) {
    vstor_vol *up = NULL;
    if (vstor_host->open_lower(vol->ctx, p->up_uri, VSTOR_OPEN_READONLY, &up) == 0) {
      for (size_t i = 0; i < up->nlayers; i++) {
        struct vstor_layer *s = &up->layers[i];
        if (!strcmp(s->role, "storage"))
          continue;
        struct vstor_layer *h = vu_layer_add(vol, s->role, s->type, s->path, s->size);
        for (size_t k = 0; k < s->nprops; k++)
          vu_layer_prop(h, s->props[k].key, s->props[k].val);
        if (!strcmp(s->role, "hypervisor"))
          vu_layer_prop(h, "uri", p->up_uri);
      }
      vstor_host->close_lower(up);
    } else {
      struct vstor_layer *h = vu_layer_add(vol, "hypervisor", "libvirt", p->up_name, 0);
      vu_layer_prop(h, "uri", p->up_uri);
      vu_layer_prop(h, "opened", "no");
    }
  }
  return 0;
}

static int rb_size(vstor_vol *vol, uint64_t *size)
{
  struct rpriv *p = vol->priv;
  rbd_image_t img;
  if (img_open(p, false, &img) < 0)
    return -1;
  int r = rbd_get_size(img, size);
  rbd_close(img);
  return r < 0 ? cerr(r, p->name, "rbd_get_size") : 0;
}

static char *make_id(struct rpriv *p)
{
  return vu_asprintf("rbd:%s/%s", p->c->fsid, p->name);
}

static int rb_open(vstor_vol *vol)
{
  const struct vstor_uri *u = vol->uri;
  if (!u->pool || !u->image)
    return rerr(VSTOR_E_INVAL, "%s: expected rbd:POOL[/NAMESPACE]/IMAGE[@SNAP]",
                vol->uri_text ? vol->uri_text : "rbd URI");
  struct rpriv *p = vu_calloc(1, sizeof *p);
  p->pool = vu_strdup(u->pool);
  p->ns = u->ns ? vu_strdup(u->ns) : NULL;
  p->image = vu_strdup(u->image);
  p->snap = u->snap ? vu_strdup(u->snap) : NULL;
  p->conf = u->conf ? vu_strdup(u->conf) : NULL;
  p->client = u->client ? vu_strdup(u->client) : NULL;
  p->name = spec(p->pool, p->ns, p->image, p->snap);
  p->lv_conn = u->conn ? vu_strdup(u->conn) : NULL;
  if (conn_get(vol->ctx, p->conf, p->client, &p->c) < 0 || pool_open(p->c, p->pool, p->ns, &p->io) < 0) {
    rp_free(p);
    return -1;
  }
  vol->priv = p;
  if (discover_up(p) < 0) {
    vol->priv = NULL;
    rp_free(p);
    return -1;
  }
  if (rb_layers(vol) < 0) {
    vu_layers_clear(vol);
    vol->priv = NULL;
    rp_free(p);
    return -1;
  }
  free(vol->id);
  vol->id = make_id(p);
  return 0;
}

static void rb_close(vstor_vol *vol)
{
  rp_free(vol->priv);
  vol->priv = NULL;
}

static int rb_refresh(vstor_vol *vol)
{
  if (discover_up(vol->priv) < 0)
    return -1;
  return rb_layers(vol);
}

/* ---- availability / capability ----------------------------------------- */

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

static int rb_available(vstor_ctx *ctx, int op, char **why)
{
  (void)ctx;
  /* librbd and librados are linked: the module loaded, so they are here. */
  if (op == VSTOR_OP_FREEZE)
    return no(why, "RBD cannot quiesce its clients (a guest is frozen through the libvirt backend)");
  if (op == VSTOR_OP_RESIZE_FS)
    return no(why, "an RBD image has no host filesystem layer (a guest's is grown through the "
              "libvirt backend)");
  const char *e = getenv("CEPH_CONF");
  const char *conf = e && *e ? e : "/etc/ceph/ceph.conf";
  if (access(conf, R_OK) != 0)
    return no(why, "Ceph configuration %s not readable (%s)%s", conf, strerror(errno),
              e && *e ? "" : "; set $CEPH_CONF or pass ?conf=PATH in the URI");
  return 1;
}

static bool is_migrating(struct rpriv *p)
{
  rbd_image_migration_status_t ms;
  if (rbd_migration_status(p->io, p->image, &ms, sizeof ms) != 0)
    return false;
  rbd_migration_status_cleanup(&ms);
  return true;
}

static int rb_can(vstor_vol *vol, int op, unsigned flags, char **why)
{
  struct rpriv *p = vol->priv;
  if (p->up_uri) {
    if (op == VSTOR_OP_MIRROR || op == VSTOR_OP_PIVOT)
      return no(why, "%s: open by the running guest %s: RBD live migration needs the image closed "
                "everywhere; the guest's disk is mirrored by libvirt block copy through %s",
                p->name, p->up_name, p->up_uri);
    /* extend, fs, freeze, snapshot: the stack above does them */
    vstor_vol *up = NULL;
    if (open_up(vol, VSTOR_OPEN_READONLY, &up) < 0)
      return -1;
    int r = up->ops->can(up, op, flags, why);
    vstor_host->close_lower(up);
    return r;
  }
  rbd_image_t img;
  if (img_open(p, false, &img) < 0)
    return -1;
  char *wl = NULL;
  int nw = other_watchers(p, img, &wl);
  uint64_t feat = 0;
  rbd_get_features(img, &feat);
  rbd_close(img);
  if (nw < 0) { free(wl); return -1; }
  int ok = 1;
  bool mig = is_migrating(p);
  switch (op) {
  case VSTOR_OP_EXTEND:
  case VSTOR_OP_EXTEND_ONLINE:
    if (p->snap) ok = no(why, "%s: is a snapshot (read-only)", p->name);
    else if (mig) ok = no(why, "%s: image is being migrated", p->name);
    else if (flags & VSTOR_EXTEND_RESIZE_FS)
      ok = no(why, "%s: no filesystem layer (grow a guest's filesystem through the libvirt backend)", p->name);
    else if (flags & VSTOR_EXTEND_PREALLOC)
      ok = no(why, "%s: RBD images are thin-provisioned: no preallocation", p->name);
    break;
  case VSTOR_OP_RESIZE_FS:
    ok = no(why, "%s: no filesystem layer (grow a guest's filesystem through the libvirt backend)", p->name);
    break;
  case VSTOR_OP_FREEZE:
    ok = no(why, "%s: RBD cannot quiesce its clients (freeze a guest through the libvirt backend)", p->name);
    break;
  case VSTOR_OP_SNAPSHOT:
    if (mig) ok = no(why, "%s: image is being migrated", p->name);
    else if (nw > 0 && !(flags & VSTOR_SNAPSHOT_CRASH_CONSISTENT))
      ok = no(why, "%s: in use by %d other client(s) (%s) that RBD cannot quiesce: pass "
              "VSTOR_SNAPSHOT_CRASH_CONSISTENT for a crash-consistent snapshot", p->name, nw, wl);
    break;
  case VSTOR_OP_MIRROR:
  case VSTOR_OP_PIVOT:
    if (p->snap) ok = no(why, "%s: is a snapshot (migrate the image)", p->name);
    else if (mig) ok = no(why, "%s: image is already being migrated", p->name);
    else if (nw > 0)
      ok = no(why, "%s: in use by %d other client(s) (%s): RBD live migration needs the image "
              "closed everywhere; for a running guest's disk use its libvirt block copy "
              "(libvirt:DOMAIN/DISK; ?libvirt=CONN finds the guest)", p->name, nw, wl);
    else if (flags & (VSTOR_MIRROR_SHALLOW | VSTOR_MIRROR_REUSE_DEST | VSTOR_MIRROR_VERIFY))
      ok = no(why, "%s: RBD live migration supports no SHALLOW, REUSE_DEST or VERIFY", p->name);
    break;
  default:
    ok = no(why, "%s: unknown operation %d", p->name, op);
  }
  free(wl);
  return ok;
}

/* ---- extend --------------------------------------------------------------- */

/* librbd calls progress callbacks without checking for NULL */
static int no_progress(uint64_t off, uint64_t total, void *arg)
{
  (void)off; (void)total; (void)arg;
  return 0;
}

static int rb_extend(vstor_vol *vol, uint64_t size, const struct vstor_opts *o,
                     unsigned flags, vstor_report *rep)
{
  struct rpriv *p = vol->priv;
  if (p->up_uri && !p->snap) {
    /* a guest has the image open: grow it through the guest's stack
     * (virDomainBlockResize reaches the guest's disk; rbd_resize would not) */
    vstor_vol *up = NULL;
    if (open_up(vol, VSTOR_OPEN_EXCLUSIVE, &up) < 0)   /* its lock too: no race via libvirt: */
      return -1;
    int r = up->ops->extend(up, size, o, flags, rep);
    vstor_host->close_lower(up);
    if (r == 0 && !(flags & VSTOR_DRY_RUN))
      rb_layers(vol);
    return r;
  }
  if (p->snap)
    return rerr(VSTOR_E_PERM, "%s: is a snapshot (read-only)", p->name);
  if (flags & VSTOR_EXTEND_RESIZE_FS)
    return rerr(VSTOR_E_NOTSUP, "%s: no filesystem layer to grow (a guest's filesystem is grown "
                "through the libvirt backend)", p->name);
  if (flags & VSTOR_EXTEND_PREALLOC)
    return rerr(VSTOR_E_NOTSUP, "%s: RBD images are thin-provisioned: PREALLOC is not supported",
                p->name);
  rbd_image_t img;
  bool dry = flags & VSTOR_DRY_RUN;
  if (img_open(p, !dry, &img) < 0)
    return -1;
  uint64_t cur = 0;
  int r = rbd_get_size(img, &cur);
  if (r < 0) { rbd_close(img); return cerr(r, p->name, "rbd_get_size"); }
  rep->old_size = cur;
  rep->new_size = size > cur ? size : cur;
  if (size < cur) {
    rbd_close(img);
    return rerr(VSTOR_E_INVAL, "%s: %llu is smaller than the current size %llu (shrinking is refused)",
                p->name, (unsigned long long)size, (unsigned long long)cur);
  }
  if (size == cur) {
    vu_step(rep, p->name, "rbd_resize", VSTOR_STEP_SKIPPED, 0, "already %llu bytes",
            (unsigned long long)cur);
    rbd_close(img);
    return 0;
  }
  size_t i = rep->nsteps;
  vu_step(rep, p->name, "rbd_resize", VSTOR_STEP_PLANNED, 0,
          "%llu -> %llu bytes, online (thin: nothing allocated)",
          (unsigned long long)cur, (unsigned long long)size);
  if (dry) { rbd_close(img); return 0; }
  vstor_fault("rbd-extend-before-resize");
  uint64_t t0 = vu_now_us();
  r = rbd_resize2(img, size, false, no_progress, NULL);
  if (r < 0) {
    cerr(r, p->name, "rbd_resize2");
    vu_step_set(rep, i, VSTOR_STEP_FAILED, last_msg);
    rbd_close(img);
    return -1;
  }
  uint64_t now = 0;
  rbd_get_size(img, &now);
  rbd_close(img);
  if (now != size) {
    rerr(VSTOR_E_BACKEND, "%s: rbd_resize2 returned but the image is %llu bytes, not %llu",
         p->name, (unsigned long long)now, (unsigned long long)size);
    vu_step_set(rep, i, VSTOR_STEP_FAILED, last_msg);
    return -1;
  }
  char *d = vu_asprintf("%llu -> %llu bytes in %llu us", (unsigned long long)cur,
                        (unsigned long long)size, (unsigned long long)(vu_now_us() - t0));
  vu_step_set(rep, i, VSTOR_STEP_DONE, d);
  free(d);
  rb_layers(vol);
  return 0;
}

/* ---- snapshot -------------------------------------------------------------- */

static int jset(struct vstor_jrec *r, const char *k, const char *v)
{
  return vstor_host->jrec_set(r, k, v ? v : "");
}

/* The exclusive lock of an image may still be held by the dead process:
 * break it (librbd blocklists that client) instead of waiting ~30 s for its
 * watch to time out.  Only a lock whose owner is the dead process's own
 * librados client address (recorded in the journal) is broken. */
static void break_dead_lock(rados_t cl, rbd_image_t img, const char *dead_addrs, vstor_report *rep,
                            const char *name)
{
  if (!dead_addrs) return;
  /* A watch of the dead process (it had the image open read-write) stays
   * ~30 s: until then every notify on the image waits for its ack -- a
   * guest's QEMU closing or releasing the image stalls ~10 s.  Evict it
   * by blocklisting that client address (the process is dead). */
  rbd_image_watcher_t w[32];
  size_t nw = 32;
  if (rbd_watchers_list(img, w, &nw) == 0) {
    for (size_t i = 0; i < nw; i++)
      if (w[i].addr && *w[i].addr && strstr(dead_addrs, w[i].addr) &&
          rados_blocklist_add(cl, w[i].addr, 3600) == 0 && rep)
        vu_step(rep, name, "rados_blocklist_add", VSTOR_STEP_DONE, 0,
                "watch of the dead process (%s) evicted", w[i].addr);
    rbd_watchers_list_cleanup(w, nw);
  }
  rbd_lock_mode_t mode;
  char *owners[8];
  size_t n = 8;
  if (rbd_lock_get_owners(img, &mode, owners, &n) == 0) {
    for (size_t i = 0; i < n; i++)
      if (*owners[i] && strstr(dead_addrs, owners[i]) && rbd_lock_break(img, mode, owners[i]) == 0 && rep)
        vu_step(rep, name, "rbd_lock_break", VSTOR_STEP_DONE, 0,
                "exclusive lock of the dead process (%s) broken", owners[i]);
    rbd_lock_get_owners_cleanup(owners, n);
  }
}

static int rm_snap(rados_ioctx_t io, const char *image, const char *snap, const char *instance,
                   vstor_report *rep, const char *name)
{
  rbd_image_t img;
  int r = rbd_open(io, image, &img, NULL);
  if (r == -ENOENT) return 0;
  if (r < 0) return r;
  break_dead_lock(rados_ioctx_get_cluster(io), img, instance, rep, name);
  int prot = 0;
  if (rbd_snap_is_protected(img, snap, &prot) == 0 && prot) {
    r = rbd_snap_unprotect(img, snap);
    if (r < 0 && r != -EINVAL) { rbd_close(img); return r; }
  }
  r = rbd_snap_remove(img, snap);
  rbd_close(img);
  return r == -ENOENT ? 0 : r;
}

static int rb_snapshot(vstor_vol *vol, const char *dest, const struct vstor_opts *o,
                       unsigned flags, vstor_report *rep)
{
  struct rpriv *p = vol->priv;
  bool dry = flags & VSTOR_DRY_RUN;
  if (p->up_uri && !p->snap) {
    /* a guest has the image open: snapshot through its stack (guest freeze
     * by the agent, then this image's snapshot); the journal record is the
     * libvirt volume's */
    vstor_vol *up = NULL;
    if (open_up(vol, VSTOR_OPEN_EXCLUSIVE, &up) < 0)
      return -1;
    int r = up->ops->snapshot(up, dest, o, flags, rep);
    vstor_host->close_lower(up);
    if (r == 0 && !dry)
      rb_layers(vol);
    return r;
  }
  struct rdest d = { 0 };
  char *snap = NULL;
  bool clone = false;
  if (!strncmp(dest, "rbd:", 4)) {
    if (rdest_parse("snapshot destination", dest, &d) < 0)
      return -1;
    bool self = same_str(d.pool, p->pool) && same_str(d.ns, p->ns) && same_str(d.image, p->image);
    if (self) {
      if (!d.snap) {
        rdest_free(&d);
        return rerr(VSTOR_E_INVAL, "snapshot destination %s names the volume itself: add @SNAPSHOT "
                    "or name another image to clone into", dest);
      }
      snap = vu_strdup(d.snap);
    } else {
      clone = true;
      snap = vu_strdup(p->snap ? p->snap : d.snap ? d.snap : NULL);
      if (p->snap && d.snap && strcmp(p->snap, d.snap)) {
        rdest_free(&d); free(snap);
        return rerr(VSTOR_E_INVAL, "snapshot destination %s: the volume is snapshot @%s already",
                    dest, p->snap);
      }
      if (!snap) snap = vu_asprintf("vstor-clone-%s", d.image);
      if (!name_ok(snap)) {
        rdest_free(&d); free(snap);
        return rerr(VSTOR_E_INVAL, "snapshot destination %s: clone name too long for a snapshot name", dest);
      }
    }
  } else {
    char shown[128];
    if (!name_ok(dest))
      return rerr(VSTOR_E_INVAL, "snapshot destination '%s': expected a snapshot name (no '/', '@', "
                  "'?', '&') or rbd:POOL[/NS]/IMAGE[@SNAP]", vu_shown(dest, shown));
    snap = vu_strdup(dest);
  }
  if (p->snap && !clone) {
    rdest_free(&d); free(snap);
    return rerr(VSTOR_E_INVAL, "%s: is a snapshot already: the only snapshot destination is another "
                "image to clone into (rbd:POOL/NEW)", p->name);
  }
  bool make_snap = !p->snap;   /* a snapshot volume clones its own snapshot */

  int rc = -1;
  rbd_image_t img = NULL;
  rados_ioctx_t dio = NULL;
  struct vstor_jrec *jr = NULL;
  char *dname = clone ? spec(d.pool, d.ns, d.image, NULL) : NULL;
  char *sname = spec(p->pool, p->ns, p->image, snap);
  if (img_open(p, !dry && (make_snap || clone), &img) < 0)
    goto out;
  uint64_t feat = 0;
  rbd_get_features(img, &feat);
  if (make_snap) {
    bool ex = false;
    int r = rbd_snap_exists(img, snap, &ex);
    if (r < 0) { cerr(r, p->name, "rbd_snap_exists"); goto out; }
    if (ex) { rerr(VSTOR_E_EXIST, "%s: snapshot %s already exists", p->name, sname); goto out; }
  }
  if (clone) {
    if (!(feat & RBD_FEATURE_LAYERING)) {
      rerr(VSTOR_E_NOTSUP, "%s: image has no layering feature: cannot clone it", p->name);
      goto out;
    }
    if (pool_open(p->c, d.pool, d.ns, &dio) < 0)
      goto out;
    rbd_image_t t;
    int r = rbd_open_read_only(dio, d.image, &t, NULL);
    if (r == 0) { rbd_close(t); rerr(VSTOR_E_EXIST, "clone destination %s already exists", dname); goto out; }
    if (r != -ENOENT) { cerr(r, dname, "rbd_open_read_only"); goto out; }
  }
  char *wl = NULL;
  int nw = other_watchers(p, img, &wl);
  if (nw < 0) goto out;
  if (make_snap && nw > 0 && !(flags & VSTOR_SNAPSHOT_CRASH_CONSISTENT)) {
    rerr(VSTOR_E_NOTSUP, "%s: in use by %d other client(s) (%s) that RBD cannot quiesce: pass "
         "VSTOR_SNAPSHOT_CRASH_CONSISTENT for a crash-consistent snapshot", p->name, nw, wl);
    free(wl);
    goto out;
  }
  free(wl);
  rep->consistency = !make_snap ? VSTOR_CONSISTENT_NONE
                     : nw > 0 ? VSTOR_CONSISTENT_CRASH : VSTOR_CONSISTENT_IDLE;
  rep->frozen_us = 0;   /* nothing is frozen: RBD has no client quiesce here */
  vu_report_method(rep, clone ? "rbd-clone" : "rbd-snapshot");
  size_t s_snap = rep->nsteps;
  if (make_snap)
    vu_step(rep, p->name, "rbd_snap_create", VSTOR_STEP_PLANNED, 1, "snapshot %s (%s)", sname,
            nw > 0 ? "crash-consistent: the image is in use" : "idle: no client has it open");
  else
    vu_step(rep, p->name, "rbd_snap_create", VSTOR_STEP_SKIPPED, 0, "clone from the existing snapshot %s",
            sname);
  size_t s_prot = rep->nsteps, s_clone = 0;
  bool was_protected = false;
  if (clone) {
    int pr = 0;
    if (!make_snap && rbd_snap_is_protected(img, snap, &pr) == 0 && pr) was_protected = true;
    vu_step(rep, sname, "rbd_snap_protect", was_protected ? VSTOR_STEP_SKIPPED : VSTOR_STEP_PLANNED, 1,
            "%s", was_protected ? "already protected" : "a clone's parent snapshot cannot be removed");
    s_clone = rep->nsteps;
    vu_step(rep, dname, "rbd_clone3", VSTOR_STEP_PLANNED, 1, "writable clone of %s", sname);
  }
  if (dry) { rc = 0; goto out; }

  jr = vstor_host->jrec_begin(vol, "snapshot");
  if (!jr) goto out;
  if (jset(jr, "rbd_conf", p->conf) < 0 || jset(jr, "rbd_client", p->client) < 0 ||
      jset(jr, "rbd_pool", p->pool) < 0 || jset(jr, "rbd_ns", p->ns) < 0 ||
      jset(jr, "rbd_image", p->image) < 0 || jset(jr, "rbd_snap", snap) < 0 ||
      jset(jr, "rbd_made_snap", make_snap ? "1" : "0") < 0 || jset(jr, "rbd_addrs", p->c->addrs) < 0 ||
      (clone && (jset(jr, "rbd_clone_pool", d.pool) < 0 || jset(jr, "rbd_clone_ns", d.ns) < 0 ||
                 jset(jr, "rbd_clone_image", d.image) < 0)) ||
      jset(jr, "rbd_step", "snap_create") < 0)
    goto out;
  bool snapped = false, protected_now = false;
  if (make_snap) {
    uint64_t t0 = vu_now_us();
    int r = rbd_snap_create2(img, snap, RBD_SNAP_CREATE_SKIP_QUIESCE, no_progress, NULL);
    if (r < 0) {
      cerr(r, sname, "rbd_snap_create2");
      vu_step_set(rep, s_snap, VSTOR_STEP_FAILED, last_msg);
      goto undo;
    }
    snapped = true;
    char *dt = vu_asprintf("%s in %llu us (%s)", sname, (unsigned long long)(vu_now_us() - t0),
                           nw > 0 ? "crash-consistent" : "idle");
    vu_step_set(rep, s_snap, VSTOR_STEP_DONE, dt);
    free(dt);
  }
  vstor_fault("rbd-snapshot-after-create");
  if (clone) {
    if (!was_protected) {
      jset(jr, "rbd_step", "protect");
      int r = rbd_snap_protect(img, snap);
      if (r < 0 && r != -EBUSY) {
        cerr(r, sname, "rbd_snap_protect");
        vu_step_set(rep, s_prot, VSTOR_STEP_FAILED, last_msg);
        goto undo;
      }
      protected_now = true;
      vu_step_set(rep, s_prot, VSTOR_STEP_DONE, NULL);
    }
    jset(jr, "rbd_step", "clone");
    vstor_fault("rbd-snapshot-before-clone");
    rbd_image_options_t opts;
    rbd_image_options_create(&opts);
    int r = rbd_clone3(p->io, p->image, snap, dio, d.image, opts);
    rbd_image_options_destroy(opts);
    if (r < 0) {
      cerr(r, dname, "rbd_clone3");
      vu_step_set(rep, s_clone, VSTOR_STEP_FAILED, last_msg);
      goto undo;
    }
    vu_step_set(rep, s_clone, VSTOR_STEP_DONE, NULL);
  }
  vstor_host->jrec_end(jr);
  jr = NULL;
  rc = 0;
  goto out;
undo:
  {
    /* roll back what this call made; keep the error */
    int code = 0, en = 0;
    char *msg = vstor_host->error_get(&code, &en);
    bool clean = true;
    if (protected_now && rbd_snap_unprotect(img, snap) == 0)
      vu_step_set(rep, s_prot, VSTOR_STEP_UNDONE, "unprotected again");
    if (snapped) {
      int r = rbd_snap_remove(img, snap);
      if (r < 0 && r != -ENOENT) clean = false;
      else vu_step_set(rep, s_snap, VSTOR_STEP_UNDONE, "snapshot removed again");
    }
    if (clean) { vstor_host->jrec_end(jr); jr = NULL; }
    vstor_host->error_set(code, en, msg);
    free(msg);
  }
out:
  if (img) rbd_close(img);
  if (dio) rados_ioctx_destroy(dio);
  free(dname); free(sname); free(snap);
  rdest_free(&d);
  return rc;
}

/* ---- mirror: RBD live migration --------------------------------------------- */

struct rjob {
  struct rconn *c;
  rados_ioctx_t sio, dio;
  char *spool, *sns, *simg, *dpool, *dns, *dimg;
  char *conf, *client;
  char *sname, *dname;
  uint64_t size;
  bool prepared, committed;
  struct vstor_jrec *jr;
  vstor_job *job;
};

static int rb_mirror_prepare(vstor_vol *vol, vstor_job *job, unsigned flags, vstor_report *rep)
{
  struct rpriv *p = vol->priv;
  if (p->snap)
    return rerr(VSTOR_E_INVAL, "%s: is a snapshot: migrate the image itself", p->name);
  if (p->up_uri)
    return rerr(VSTOR_E_BUSY, "%s: open by the running guest %s: RBD live migration needs the image "
                "closed everywhere; nothing was changed; mirror the guest's disk with libvirt block "
                "copy instead: %s", p->name, p->up_name, p->up_uri);
  if (flags & (VSTOR_MIRROR_SHALLOW | VSTOR_MIRROR_REUSE_DEST | VSTOR_MIRROR_VERIFY))
    return rerr(VSTOR_E_NOTSUP, "%s: RBD live migration supports no SHALLOW, REUSE_DEST or VERIFY "
                "(it always copies the image with its snapshots and keeps a clone's parent link)", p->name);
  struct rdest d;
  if (rdest_parse("mirror destination", job->dest, &d) < 0)
    return -1;
  if (d.snap) {
    rdest_free(&d);
    return rerr(VSTOR_E_INVAL, "mirror destination %s: a migration target is an image, not a snapshot",
                job->dest);
  }
  if (same_str(d.pool, p->pool) && same_str(d.ns, p->ns) && same_str(d.image, p->image)) {
    rdest_free(&d);
    return rerr(VSTOR_E_INVAL, "mirror destination %s is the volume itself", job->dest);
  }
  struct rjob *j = vu_calloc(1, sizeof *j);
  j->spool = vu_strdup(p->pool); j->sns = p->ns ? vu_strdup(p->ns) : NULL;
  j->simg = vu_strdup(p->image);
  j->dpool = d.pool; j->dns = d.ns; j->dimg = d.image;
  free(d.snap);
  j->conf = p->conf ? vu_strdup(p->conf) : NULL;
  j->client = p->client ? vu_strdup(p->client) : NULL;
  j->sname = vu_strdup(p->name);
  j->dname = spec(j->dpool, j->dns, j->dimg, NULL);
  j->job = job;
  job->priv = j;   /* freed by job_free, also on failure here */
  j->c = p->c;       /* the context's: outlives the job */
  if (pool_open(j->c, j->spool, j->sns, &j->sio) < 0 || pool_open(j->c, j->dpool, j->dns, &j->dio) < 0)
    return -1;
  rbd_image_t img;
  if (img_open(p, false, &img) < 0)
    return -1;
  char *wl = NULL;
  int nw = other_watchers(p, img, &wl);
  rbd_get_size(img, &j->size);
  int nsnap = 0;
  rbd_snap_list(img, NULL, &nsnap);
  rbd_close(img);
  if (nw < 0) return -1;
  if (nw > 0) {
    rerr(VSTOR_E_BUSY, "%s: in use by %d other client(s) (%s): RBD live migration needs the image "
         "closed everywhere; nothing was changed (for a running guest's disk use its libvirt "
         "block copy)", p->name, nw, wl);
    free(wl);
    return -1;
  }
  if (is_migrating(p))
    return rerr(VSTOR_E_STATE, "%s: image is already being migrated", p->name);
  rbd_image_t t;
  int r = rbd_open_read_only(j->dio, j->dimg, &t, NULL);
  if (r == 0) { rbd_close(t); return rerr(VSTOR_E_EXIST, "mirror destination %s already exists", j->dname); }
  if (r != -ENOENT) return cerr(r, j->dname, "rbd_open_read_only");
  vu_step(rep, j->sname, "rbd_migration_prepare", VSTOR_STEP_PLANNED, 1,
          "link %s -> %s; from here on clients must open the destination", j->sname, j->dname);
  vu_step(rep, j->dname, "rbd_migration_execute", VSTOR_STEP_PLANNED, 1,
          "deep copy of %llu bytes with %d snapshot(s); READY when done",
          (unsigned long long)j->size, nsnap);
  vu_step(rep, j->dname, "rbd_migration_commit (pivot)", VSTOR_STEP_PLANNED, 0,
          "removes the source; cancel = rbd_migration_abort restores it");
  vu_report_method(rep, "rbd-live-migration");
  return 0;
}

static int mig_progress(uint64_t off, uint64_t total, void *arg)
{
  struct rjob *j = arg;
  if (total)
    vstor_host->job_progress(j->job, (uint64_t)((double)j->size * (double)off / (double)total), j->size);
  return vstor_host->job_cancelled(j->job) ? -ECANCELED : 0;
}

static int j_abort(struct rjob *j)
{
  if (!j->prepared || j->committed) return 0;
  int r = rbd_migration_abort(j->dio, j->dimg);
  if (r == -ENOENT || r == -EINVAL) {
    /* the destination is gone or no longer migrating: done already? */
    rbd_image_migration_status_t ms;
    if (rbd_migration_status(j->sio, j->simg, &ms, sizeof ms) == 0) {
      rbd_migration_status_cleanup(&ms);
      r = rbd_migration_abort(j->sio, j->simg);
    } else {
      r = 0;
    }
  }
  if (r < 0)
    return cerr(r, j->dname, "rbd_migration_abort");
  j->prepared = false;
  return 0;
}

static int rb_job_run(vstor_job *job)
{
  struct rjob *j = job->priv;
  j->jr = vstor_host->jrec_begin(job->vol, "mirror");
  if (!j->jr) return -1;
  if (jset(j->jr, "rbd_conf", j->conf) < 0 || jset(j->jr, "rbd_client", j->client) < 0 ||
      jset(j->jr, "rbd_pool", j->spool) < 0 || jset(j->jr, "rbd_ns", j->sns) < 0 ||
      jset(j->jr, "rbd_image", j->simg) < 0 || jset(j->jr, "rbd_dest_pool", j->dpool) < 0 ||
      jset(j->jr, "rbd_dest_ns", j->dns) < 0 || jset(j->jr, "rbd_dest_image", j->dimg) < 0 ||
      jset(j->jr, "rbd_addrs", j->c->addrs) < 0 || jset(j->jr, "rbd_phase", "preparing") < 0) {
    vstor_host->jrec_end(j->jr); j->jr = NULL;
    return -1;
  }
  vstor_host->job_progress(job, 0, j->size);
  rbd_image_options_t opts;
  rbd_image_options_create(&opts);
  int r = rbd_migration_prepare(j->sio, j->simg, j->dio, j->dimg, opts);
  rbd_image_options_destroy(opts);
  if (r < 0) {
    if (r == -EBUSY)
      rerr(VSTOR_E_BUSY, "%s: rbd_migration_prepare: image in use by another client (opened after "
           "the check); nothing was changed", j->sname);
    else
      cerr(r, j->sname, "rbd_migration_prepare");
    /* prepare rolls itself back on failure */
    vstor_host->jrec_end(j->jr); j->jr = NULL;
    return -1;
  }
  j->prepared = true;
  jset(j->jr, "rbd_phase", "prepared");
  vstor_fault("rbd-mirror-after-prepare");
  if (vstor_host->job_cancelled(job))
    return rerr(VSTOR_E_CANCELLED, "%s: migration to %s cancelled", j->sname, j->dname);
  jset(j->jr, "rbd_phase", "executing");
  r = rbd_migration_execute_with_progress(j->dio, j->dimg, mig_progress, j);
  if (vstor_host->job_cancelled(job))   /* the core then calls job_cancel: abort */
    return rerr(VSTOR_E_CANCELLED, "%s: migration to %s cancelled", j->sname, j->dname);
  if (r < 0) {
    cerr(r, j->dname, "rbd_migration_execute");
    int code = 0, en = 0;
    char *msg = vstor_host->error_get(&code, &en);
    if (j_abort(j) == 0) { vstor_host->jrec_end(j->jr); j->jr = NULL; }
    vstor_host->error_set(code, en, msg);
    free(msg);
    return -1;
  }
  jset(j->jr, "rbd_phase", "executed");
  vstor_host->job_progress(job, j->size, j->size);
  return 0;
}

static int rb_job_pivot(vstor_job *job)
{
  struct rjob *j = job->priv;
  if (j->jr) jset(j->jr, "rbd_phase", "committing");
  vstor_fault("rbd-before-commit");
  int r = rbd_migration_commit(j->dio, j->dimg);
  if (r < 0)
    return cerr(r, j->dname, "rbd_migration_commit");
  j->committed = true;
  if (j->jr) { vstor_host->jrec_end(j->jr); j->jr = NULL; }
  /* the volume now is the destination */
  vstor_vol *vol = job->vol;
  struct rpriv *p = vol->priv;
  rados_ioctx_t io;
  if (pool_open(p->c, j->dpool, j->dns, &io) < 0)
    return -1;
  rados_ioctx_destroy(p->io);
  p->io = io;
  free(p->pool); free(p->ns); free(p->image); free(p->name);
  p->pool = vu_strdup(j->dpool);
  p->ns = j->dns ? vu_strdup(j->dns) : NULL;
  p->image = vu_strdup(j->dimg);
  p->name = spec(p->pool, p->ns, p->image, NULL);
  free(vol->id);
  vol->id = make_id(p);
  rb_layers(vol);
  return 0;
}

static int rb_job_complete(vstor_job *job)
{
  struct rjob *j = job->priv;
  return rerr(VSTOR_E_NOTSUP, "%s: RBD live migration cannot end with the volume on its source: "
              "since prepare every client uses %s; pivot (commit) or cancel (abort)",
              j->sname, j->dname);
}

static int rb_job_cancel(vstor_job *job)
{
  struct rjob *j = job->priv;
  if (!j) return 0;
  if (j_abort(j) < 0) return -1;
  if (j->jr) { vstor_host->jrec_end(j->jr); j->jr = NULL; }
  return 0;
}

static void rb_job_free(vstor_job *job)
{
  struct rjob *j = job->priv;
  if (!j) return;
  /* a record still open belongs to a migration neither committed nor
   * aborted cleanly: it stays for vstor_recover() */
  if (j->sio) rados_ioctx_destroy(j->sio);
  if (j->dio) rados_ioctx_destroy(j->dio);
  free(j->spool); free(j->sns); free(j->simg); free(j->dpool); free(j->dns); free(j->dimg);
  free(j->conf); free(j->client); free(j->sname); free(j->dname);
  free(j);
  job->priv = NULL;
}

/* ---- recover ------------------------------------------------------------------ */

static const char *jget(const struct vstor_jrec *r, const char *k)
{
  const char *v = vstor_host->jrec_get(r, k);
  return v && *v ? v : NULL;
}

static int recover_snapshot(struct rconn *c, const struct vstor_jrec *rec, vstor_report *rep)
{
  const char *pool = jget(rec, "rbd_pool"), *ns = jget(rec, "rbd_ns");
  const char *image = jget(rec, "rbd_image"), *snap = jget(rec, "rbd_snap");
  const char *made = jget(rec, "rbd_made_snap");
  const char *cpool = jget(rec, "rbd_clone_pool"), *cns = jget(rec, "rbd_clone_ns");
  const char *cimg = jget(rec, "rbd_clone_image");
  if (!pool || !image || !snap)
    return rerr(VSTOR_E_INVAL, "rbd snapshot journal record without pool/image/snap");
  char *sname = spec(pool, ns, image, snap);
  rados_ioctx_t io = NULL, cio = NULL;
  int rc = -1;
  if (pool_open(c, pool, ns, &io) < 0) goto out;
  if (cimg && cpool) {
    char *cn = spec(cpool, cns, cimg, NULL);
    if (pool_open(c, cpool, cns, &cio) == 0) {
      /* remove the clone only if it is a child of our snapshot */
      rbd_image_t t;
      bool ours = false;
      if (rbd_open_read_only(cio, cimg, &t, NULL) == 0) {
        rbd_linked_image_spec_t pi;
        rbd_snap_spec_t ps;
        if (rbd_get_parent(t, &pi, &ps) == 0) {
          ours = !strcmp(pi.image_name, image) && !strcmp(ps.name, snap) && !strcmp(pi.pool_name, pool);
          rbd_linked_image_spec_cleanup(&pi);
          rbd_snap_spec_cleanup(&ps);
        }
        rbd_close(t);
        if (ours) {
          int r = rbd_remove(cio, cimg);
          if (r < 0 && r != -ENOENT) { cerr(r, cn, "rbd_remove"); free(cn); goto out; }
          vu_step(rep, cn, "rbd_remove", VSTOR_STEP_DONE, 0, "removed the half-made clone");
        }
      }
    }
    free(cn);
  }
  if (made && !strcmp(made, "1")) {
    int r = rm_snap(io, image, snap, jget(rec, "rbd_addrs"), rep, sname);
    if (r == -EBUSY) {
      rerr(VSTOR_E_BUSY, "%s: snapshot still has clones: not removed", sname);
      goto out;
    }
    if (r < 0) { cerr(r, sname, "rbd_snap_remove"); goto out; }
    vu_step(rep, sname, "rbd_snap_remove", VSTOR_STEP_DONE, 0, "removed the half-made snapshot");
  } else {
    vu_step(rep, sname, "recover", VSTOR_STEP_SKIPPED, 0, "the snapshot was not made by this operation");
  }
  rc = 0;
out:
  if (io) rados_ioctx_destroy(io);
  if (cio) rados_ioctx_destroy(cio);
  free(sname);
  return rc;
}

static int recover_mirror(struct rconn *c, const struct vstor_jrec *rec, vstor_report *rep)
{
  struct rjob j = { .c = c };
  j.spool = (char *)jget(rec, "rbd_pool"); j.sns = (char *)jget(rec, "rbd_ns");
  j.simg = (char *)jget(rec, "rbd_image");
  j.dpool = (char *)jget(rec, "rbd_dest_pool"); j.dns = (char *)jget(rec, "rbd_dest_ns");
  j.dimg = (char *)jget(rec, "rbd_dest_image");
  const char *phase = jget(rec, "rbd_phase");
  if (!j.spool || !j.simg || !j.dpool || !j.dimg)
    return rerr(VSTOR_E_INVAL, "rbd mirror journal record without source/destination");
  char *sname = spec(j.spool, j.sns, j.simg, NULL), *dname = spec(j.dpool, j.dns, j.dimg, NULL);
  j.sname = sname; j.dname = dname;
  int rc = -1;
  if (pool_open(c, j.spool, j.sns, &j.sio) < 0 || pool_open(c, j.dpool, j.dns, &j.dio) < 0)
    goto out;
  rbd_image_migration_status_t ms;
  int r = rbd_migration_status(j.dio, j.dimg, &ms, sizeof ms);
  if (r < 0) r = rbd_migration_status(j.sio, j.simg, &ms, sizeof ms);
  if (r < 0) {
    vu_step(rep, sname, "recover", VSTOR_STEP_SKIPPED, 0, "no migration %s -> %s in progress", sname, dname);
    rc = 0;
    goto out;
  }
  int state = ms.state;
  const char *inst = jget(rec, "rbd_addrs");
  rbd_image_t t;
  if (rbd_open(j.dio, j.dimg, &t, NULL) == 0) {
    break_dead_lock(c->cl, t, inst, rep, dname);
    rbd_close(t);
  }
  if (ms.source_image_id && rbd_open_by_id(j.sio, ms.source_image_id, &t, NULL) == 0) {
    break_dead_lock(c->cl, t, inst, rep, sname);
    rbd_close(t);
  }
  rbd_migration_status_cleanup(&ms);
  if (phase && !strcmp(phase, "committing") && state == RBD_IMAGE_MIGRATION_STATE_EXECUTED) {
    r = rbd_migration_commit(j.dio, j.dimg);
    if (r < 0) { cerr(r, dname, "rbd_migration_commit"); goto out; }
    vu_step(rep, dname, "rbd_migration_commit", VSTOR_STEP_DONE, 0,
            "finished the pivot the dead process had started");
  } else {
    j.prepared = true;
    if (j_abort(&j) < 0) goto out;
    vu_step(rep, sname, "rbd_migration_abort", VSTOR_STEP_DONE, 0,
            "orphaned migration to %s aborted: the source is back", dname);
  }
  rc = 0;
out:
  if (j.sio) rados_ioctx_destroy(j.sio);
  if (j.dio) rados_ioctx_destroy(j.dio);
  free(sname); free(dname);
  return rc;
}

static int rb_recover(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep)
{
  const char *op = vstor_host->jrec_get(rec, "op");
  struct rconn *c;
  if (conn_get(ctx, jget(rec, "rbd_conf"), jget(rec, "rbd_client"), &c) < 0)
    return -1;
  int r;
  if (op && !strcmp(op, "snapshot")) r = recover_snapshot(c, rec, rep);
  else if (op && !strcmp(op, "mirror")) r = recover_mirror(c, rec, rep);
  else r = rerr(VSTOR_E_INVAL, "rbd journal record for unknown operation '%s'", op ? op : "?");
  return r;
}

/* ---- module entry ---------------------------------------------------------------- */

static const struct vstor_backend_ops rbd_ops = {
  .abi = VSTOR_BACKEND_ABI,
  .name = "rbd",
  .available = rb_available,
  .open = rb_open,
  .close = rb_close,
  .refresh = rb_refresh,
  .size = rb_size,
  .can = rb_can,
  .extend = rb_extend,
  .snapshot = rb_snapshot,
  .mirror_prepare = rb_mirror_prepare,
  .job_run = rb_job_run,
  .job_pivot = rb_job_pivot,
  .job_complete = rb_job_complete,
  .job_cancel = rb_job_cancel,
  .job_free = rb_job_free,
  .recover = rb_recover,
  .ctx_free = rb_ctx_free,
};

VSTOR_BACKEND_MODULE(rbd_ops);
