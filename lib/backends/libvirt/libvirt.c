/* libvstor - libvirt/QEMU backend (module vstor-libvirt.so)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * URI: libvirt:DOMAIN/TARGET[?uri=CONN][&conf=CEPHCONF][&id=CLIENT]
 *   DOMAIN  name, UUID or numeric id; TARGET the disk target ("vda");
 *   CONN    libvirt connection URI; default $LIBVIRT_DEFAULT_URI, else
 *           qemu:///system.
 *
 * Layers (bottom first): the layers of the disk's source opened through
 * the matching backend (file: for a file, the path for a block device),
 * the "hypervisor" layer (type libvirt, path DOMAIN/TARGET) and, when the
 * guest agent reports one, the guest "filesystem" on the disk.
 *
 * Operations:
 *   extend    lower layer (raw file / block) -> virDomainBlockResize;
 *             qcow2 is grown by QEMU (block_resize) or qemu-img when the
 *             domain is off; guest fs grown by guest-exec of resize2fs /
 *             xfs_growfs after guest-get-fsinfo.
 *   snapshot  virDomainFSFreeze (agent) under a guard process that thaws
 *             when the window runs out or the caller dies, external
 *             disk-only snapshot (NO_METADATA|ATOMIC) into `dest`,
 *             virDomainFSThaw.  The domain then writes into dest (qcow2
 *             overlay); the previous source is the point-in-time image.
 *   mirror    virDomainBlockCopy (TRANSIENT_JOB for persistent domains),
 *             BLOCK_JOB_2 events + virDomainGetBlockJobInfo, pivot with
 *             virDomainBlockJobAbort(PIVOT), complete = abort after READY.
 *
 * RBD network disks (<disk type='network'><source protocol='rbd'>): lower
 * layer rbd:POOL[/NS]/IMAGE?id=&conf= (URI's id/conf, else <auth username>
 * / <config file>); extend = virDomainBlockResize (QEMU's rbd driver) and
 * a size check through librbd; snapshot = guest freeze, the rbd layer's
 * snapshot, thaw (a clone is made after the thaw); mirror = block copy
 * with REUSE_EXT onto an image created here with librbd (HAVE_RBD).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#if HAVE_RBD
#include <rados/librados.h>
#include <rbd/librbd.h>
#endif

#include "backend.h"
#include "util.h"

#define AGENT_CHANNEL "org.qemu.guest_agent.0"
#define AGENT_TIMEOUT_S 5
#define VIRSH "/usr/bin/virsh"

enum { AGENT_NONE = 0, AGENT_DISCONNECTED = 1, AGENT_CONNECTED = 2 };

struct lvpriv {
  char *conn_uri;       /* the URI actually connected to */
  virConnectPtr conn;
  virDomainPtr dom;
  char *name;           /* "dom/vda" for messages and layers */
  char *uuid;
  char *target;
  /* from the domain XML (live when running) */
  char *src_type;       /* file, block, network, volume */
  char *src_path;       /* file or dev */
  char *fmt;            /* raw, qcow2, ... */
  char *device;         /* disk, cdrom, ... */
  bool running, persistent, readonly_disk, has_mirror, mirror_ready;
  char *mirror_file;
  int agent;
  /* network disk (<disk type='network'>) */
  char *net_proto;      /* "rbd", "nbd", ... */
  char *net_hosts;      /* the <host .../> elements, re-serialised */
  char *auth_user, *secret_uuid, *secret_usage;
  char *cfg_file;       /* <config file=...> (rbd) */
  char *u_conf, *u_client; /* conf=/id= of the libvirt URI */
  char *lower_err;      /* why the lower layer did not open */
  /* guest filesystem on the disk, from the agent */
  char *g_dev, *g_mnt, *g_fstype;
};

static void xfree(void *p) { free(p); }
#define FREE(p) do { xfree(p); (p) = NULL; } while (0)

/* ---- libvirt errors ------------------------------------------------ */

static void silent_error(void *opaque, virErrorPtr err) { (void)opaque; (void)err; }

static int map_code(int vcode, int dflt)
{
  switch (vcode) {
  case VIR_ERR_NO_DOMAIN: case VIR_ERR_NO_STORAGE_VOL: return VSTOR_E_NOENT;
  case VIR_ERR_OPERATION_INVALID: case VIR_ERR_BLOCK_COPY_ACTIVE:
    return VSTOR_E_STATE;
  case VIR_ERR_NO_SUPPORT: case VIR_ERR_ARGUMENT_UNSUPPORTED:
  case VIR_ERR_CONFIG_UNSUPPORTED: case VIR_ERR_AGENT_UNRESPONSIVE:
  case VIR_ERR_AGENT_UNSYNCED:
    return VSTOR_E_NOTSUP;
  case VIR_ERR_OPERATION_TIMEOUT: return VSTOR_E_TIMEOUT;
  case VIR_ERR_AUTH_FAILED: case VIR_ERR_ACCESS_DENIED:
  case VIR_ERR_AUTH_CANCELLED: return VSTOR_E_PERM;
  case VIR_ERR_OPERATION_ABORTED: return VSTOR_E_CANCELLED;
  case VIR_ERR_RESOURCE_BUSY: return VSTOR_E_BUSY;
  case VIR_ERR_INVALID_ARG: return VSTOR_E_INVAL;
  default: return dflt;
  }
}

/* The message of the last error this module set (for report details:
 * modules do not call the core's public functions). */
static __thread char last_msg[1024];
static __thread int last_code;

__attribute__((format(printf, 2, 3)))
static int lerr(int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_msg, sizeof last_msg, fmt, ap);
  va_end(ap);
  last_code = code;
  return vstor_err(code, 0, "%s", last_msg);
}

/* Set the vstor error from libvirt's last error: "what: call: message". */
static int verr(int dflt, const char *what, const char *call)
{
  virErrorPtr e = virGetLastError();
  int code = map_code(e ? e->code : 0, dflt);
  return lerr(code, "%s: %s: %s", what, call,
              e && e->message ? e->message : "failed");
}

/* ---- connection / domain --------------------------------------------- */

static pthread_once_t events_once = PTHREAD_ONCE_INIT;
static int events_ok;
static void events_init(void)
{
  /* Block-job events need an event loop implementation registered before
   * the connection is opened; the job thread runs it (see job_run). */
  events_ok = virEventRegisterDefaultImpl() == 0;
}

static const char *default_uri(const char *conn)
{
  if (conn && *conn)
    return conn;
  const char *env = getenv("LIBVIRT_DEFAULT_URI");
  return env && *env ? env : "qemu:///system";
}

static virConnectPtr lv_connect(const char *uri)
{
  pthread_once(&events_once, events_init);
  virConnectPtr c = virConnectOpen(uri);
  if (!c) {
    virErrorPtr e = virGetLastError();
    int code = e && (e->code == VIR_ERR_AUTH_FAILED || e->code == VIR_ERR_ACCESS_DENIED)
                   ? VSTOR_E_PERM : VSTOR_E_NOTSUP;
    lerr(code, "libvirt daemon not reachable at %s: %s", uri,
         e && e->message ? e->message : "connection failed");
    return NULL;
  }
  virConnSetErrorFunc(c, NULL, silent_error);
  return c;
}

static virDomainPtr lv_lookup(virConnectPtr c, const char *dom)
{
  virDomainPtr d = virDomainLookupByName(c, dom);
  if (!d && strlen(dom) == 36)
    d = virDomainLookupByUUIDString(c, dom);
  if (!d && dom[0] && strspn(dom, "0123456789") == strlen(dom) && strlen(dom) < 9)
    d = virDomainLookupByID(c, atoi(dom));
  if (!d)
    lerr(VSTOR_E_NOENT, "no libvirt domain '%s'", dom);
  return d;
}

/* ---- XML helpers ----------------------------------------------------- */

static char *xml_escape(const char *s)
{
  size_t n = 0;
  for (const char *p = s; *p; p++)
    n += (*p == '&') ? 5 : (*p == '<' || *p == '>') ? 4 : (*p == '\'' || *p == '"') ? 6 : 1;
  char *o = vu_calloc(n + 1, 1), *q = o;
  for (const char *p = s; *p; p++) {
    const char *r = NULL;
    switch (*p) {
    case '&': r = "&amp;"; break;
    case '<': r = "&lt;"; break;
    case '>': r = "&gt;"; break;
    case '\'': r = "&apos;"; break;
    case '"': r = "&quot;"; break;
    }
    if (r) { size_t l = strlen(r); memcpy(q, r, l); q += l; }
    else *q++ = *p;
  }
  return o;
}

static char *xattr(xmlNodePtr n, const char *name)
{
  if (!n)
    return NULL;
  xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
  char *r = v ? vu_strdup((const char *)v) : NULL;
  xmlFree(v);
  return r;
}

static xmlNodePtr xchild(xmlNodePtr n, const char *name)
{
  for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, name))
      return c;
  return NULL;
}

/* Re-read the domain state and the disk from the domain XML. */
static int lv_parse(struct lvpriv *p)
{
  FREE(p->src_type); FREE(p->src_path); FREE(p->fmt); FREE(p->device);
  FREE(p->mirror_file);
  FREE(p->net_proto); FREE(p->net_hosts); FREE(p->auth_user); FREE(p->secret_uuid);
  FREE(p->secret_usage); FREE(p->cfg_file);
  p->has_mirror = p->mirror_ready = p->readonly_disk = false;
  p->agent = AGENT_NONE;
  int act = virDomainIsActive(p->dom);
  if (act < 0)
    return verr(VSTOR_E_BACKEND, p->name, "virDomainIsActive");
  p->running = act == 1;
  p->persistent = virDomainIsPersistent(p->dom) == 1;
  char *xml = virDomainGetXMLDesc(p->dom, 0);
  if (!xml)
    return verr(VSTOR_E_BACKEND, p->name, "virDomainGetXMLDesc");
  xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  free(xml);
  if (!doc)
    return lerr(VSTOR_E_BACKEND, "%s: cannot parse the domain XML", p->name);
  int rc = -1;
  xmlXPathContextPtr xc = xmlXPathNewContext(doc);
  xmlXPathObjectPtr o = xc ? xmlXPathEvalExpression(
      (const xmlChar *)"/domain/devices/disk", xc) : NULL;
  xmlNodePtr disk = NULL;
  for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
    xmlNodePtr d = o->nodesetval->nodeTab[i];
    char *dev = xattr(xchild(d, "target"), "dev");
    bool m = dev && !strcmp(dev, p->target);
    free(dev);
    if (m) { disk = d; break; }
  }
  if (!disk) {
    lerr(VSTOR_E_NOENT, "%s: domain has no disk with target '%s'",
              p->name, p->target);
    goto out;
  }
  p->src_type = xattr(disk, "type");
  p->device = xattr(disk, "device");
  p->fmt = xattr(xchild(disk, "driver"), "type");
  xmlNodePtr src = xchild(disk, "source");
  p->src_path = xattr(src, "file");
  if (!p->src_path) p->src_path = xattr(src, "dev");
  if (!p->src_path) p->src_path = xattr(src, "name");
  p->readonly_disk = xchild(disk, "readonly") != NULL;
  if (p->src_type && !strcmp(p->src_type, "network") && src) {
    p->net_proto = xattr(src, "protocol");
    /* hosts, re-serialised from known attributes only */
    char *hs = vu_strdup("");
    for (xmlNodePtr h = src->children; h; h = h->next) {
      if (h->type != XML_ELEMENT_NODE || strcmp((const char *)h->name, "host"))
        continue;
      char *hn = xattr(h, "name"), *hp = xattr(h, "port"), *ht = xattr(h, "transport");
      char *en = hn ? xml_escape(hn) : NULL, *ep = hp ? xml_escape(hp) : NULL;
      char *et = ht ? xml_escape(ht) : NULL;
      char *n = vu_asprintf("%s<host%s%s%s%s%s%s%s%s%s/>", hs, en ? " name='" : "", en ? en : "",
                            en ? "'" : "", ep ? " port='" : "", ep ? ep : "", ep ? "'" : "",
                            et ? " transport='" : "", et ? et : "", et ? "'" : "");
      free(hs); hs = n;
      free(hn); free(hp); free(ht); free(en); free(ep); free(et);
    }
    p->net_hosts = hs;
    /* <auth> is a child of <disk> or (since libvirt 3.9) of <source> */
    xmlNodePtr auth = xchild(src, "auth");
    if (!auth) auth = xchild(disk, "auth");
    if (auth) {
      p->auth_user = xattr(auth, "username");
      xmlNodePtr sec = xchild(auth, "secret");
      p->secret_uuid = xattr(sec, "uuid");
      p->secret_usage = xattr(sec, "usage");
    }
    p->cfg_file = xattr(xchild(src, "config"), "file");
  }
  xmlNodePtr mir = xchild(disk, "mirror");
  if (mir) {
    p->has_mirror = true;
    p->mirror_file = xattr(mir, "file");
    if (!p->mirror_file) p->mirror_file = xattr(xchild(mir, "source"), "file");
    if (!p->mirror_file) p->mirror_file = xattr(xchild(mir, "source"), "name");
    char *rd = xattr(mir, "ready");
    p->mirror_ready = rd && !strcmp(rd, "yes");
    free(rd);
  }
  if (!p->fmt) p->fmt = vu_strdup("raw");
  xmlXPathFreeObject(o);
  o = xmlXPathEvalExpression((const xmlChar *)"/domain/devices/channel/target", xc);
  for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
    char *nm = xattr(o->nodesetval->nodeTab[i], "name");
    if (nm && !strcmp(nm, AGENT_CHANNEL)) {
      char *st = xattr(o->nodesetval->nodeTab[i], "state");
      p->agent = st && !strcmp(st, "connected") ? AGENT_CONNECTED
                 : p->running ? AGENT_DISCONNECTED : AGENT_DISCONNECTED;
      free(st);
    }
    free(nm);
  }
  rc = 0;
out:
  if (o) xmlXPathFreeObject(o);
  if (xc) xmlXPathFreeContext(xc);
  xmlFreeDoc(doc);
  return rc;
}

/* Free what lv_parse filled (for the temporary lvpriv of jobs/recover). */
static void parse_free(struct lvpriv *p)
{
  FREE(p->src_type); FREE(p->src_path); FREE(p->fmt); FREE(p->device); FREE(p->mirror_file);
  FREE(p->net_proto); FREE(p->net_hosts); FREE(p->auth_user); FREE(p->secret_uuid);
  FREE(p->secret_usage); FREE(p->cfg_file);
}

static bool is_net(const struct lvpriv *p) { return p->src_type && !strcmp(p->src_type, "network"); }
static bool is_rbd(const struct lvpriv *p)
{
  return is_net(p) && p->net_proto && !strcmp(p->net_proto, "rbd") && p->src_path;
}

/* cephx user and ceph.conf for the librbd side of an RBD network disk:
 * the libvirt URI's id=/conf= first, else the disk's <auth username> and
 * <config file>, else librados' defaults (client.admin, $CEPH_CONF). */
static const char *rbd_id(const struct lvpriv *p)
{
  return p->u_client ? p->u_client : p->auth_user;
}
static const char *rbd_conf(const struct lvpriv *p)
{
  return p->u_conf ? p->u_conf : p->cfg_file;
}

/* "rbd:POOL[/NS]/IMAGE[@SNAP]?id=..&conf=.." for the disk's image (name
 * may carry a snapshot: "rbd:POOL/IMAGE@SNAP"). */
static char *rbd_uri_of(const struct lvpriv *p, const char *name)
{
  const char *id = rbd_id(p), *conf = rbd_conf(p);
  char *eid = id ? vu_pct_encode(id) : NULL, *ecf = conf ? vu_pct_encode(conf) : NULL;
  char *u = vu_asprintf("rbd:%s%s%s%s%s%s", name, id || conf ? "?" : "",
                        id ? "id=" : "", id ? eid : "", id && conf ? "&" : "",
                        conf ? "conf=" : "");
  if (conf) { char *n = vu_asprintf("%s%s", u, ecf); free(u); u = n; }
  free(eid); free(ecf);
  return u;
}

/* ---- guest agent ----------------------------------------------------- */

/* Run an agent command (a json-c object, consumed); *ret gets the
 * "return" member (owned by the caller) or NULL. */
static int agent_cmd(struct lvpriv *p, json_object *cmd, int timeout_s,
                     json_object **ret)
{
  const char *txt = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN);
  char *reply = virDomainQemuAgentCommand(p->dom, txt, timeout_s, 0);
  char *cname = vu_strdup(json_object_get_string(json_object_object_get(cmd, "execute")));
  json_object_put(cmd);
  if (!reply) {
    char *what = vu_asprintf("%s: guest agent %s", p->name, cname);
    verr(VSTOR_E_BACKEND, what, "virDomainQemuAgentCommand");
    free(what); free(cname);
    return -1;
  }
  json_object *j = json_tokener_parse(reply);
  free(reply);
  json_object *r = NULL;
  if (!j || !json_object_object_get_ex(j, "return", &r)) {
    if (j) json_object_put(j);
    lerr(VSTOR_E_BACKEND, "%s: guest agent %s: unexpected reply", p->name, cname);
    free(cname);
    return -1;
  }
  free(cname);
  if (ret)
    *ret = json_object_get(r);
  json_object_put(j);
  return 0;
}

static json_object *mkcmd(const char *execute)
{
  json_object *c = json_object_new_object();
  json_object_object_add(c, "execute", json_object_new_string(execute));
  return c;
}

static int agent_ping(struct lvpriv *p)
{
  return agent_cmd(p, mkcmd("guest-ping"), AGENT_TIMEOUT_S, NULL);
}

static int b64val(int c)
{
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

static char *b64dec(const char *s)
{
  size_t n = s ? strlen(s) : 0;
  char *o = vu_calloc(n + 1, 1);
  size_t k = 0;
  unsigned acc = 0; int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64val((unsigned char)s[i]);
    if (v < 0) continue;
    acc = (acc << 6) | (unsigned)v; bits += 6;
    if (bits >= 8) { bits -= 8; o[k++] = (char)((acc >> bits) & 0xff); }
  }
  o[k] = 0;
  while (k && (o[k - 1] == '\n')) o[--k] = 0;
  return o;
}

/* guest-exec argv in the guest, wait (bounded) for it; *out and *err_out get its
 * output.  Returns the exit code, or -1 with the error set. */
static int guest_exec(struct lvpriv *p, const char *const argv[], int timeout_s,
                      char **out, char **err_out)
{
  json_object *c = mkcmd("guest-exec"), *a = json_object_new_object();
  json_object *arr = json_object_new_array();
  for (size_t i = 1; argv[i]; i++)
    json_object_array_add(arr, json_object_new_string(argv[i]));
  json_object_object_add(a, "path", json_object_new_string(argv[0]));
  json_object_object_add(a, "arg", arr);
  json_object_object_add(a, "capture-output", json_object_new_boolean(1));
  json_object_object_add(c, "arguments", a);
  json_object *r = NULL;
  if (agent_cmd(p, c, AGENT_TIMEOUT_S, &r) < 0)
    return -1;
  int64_t pid = json_object_get_int64(json_object_object_get(r, "pid"));
  json_object_put(r);
  uint64_t deadline = vu_now_us() + (uint64_t)timeout_s * 1000000u;
  for (;;) {
    json_object *sc = mkcmd("guest-exec-status"), *sa = json_object_new_object();
    json_object_object_add(sa, "pid", json_object_new_int64(pid));
    json_object_object_add(sc, "arguments", sa);
    json_object *st = NULL;
    if (agent_cmd(p, sc, AGENT_TIMEOUT_S, &st) < 0)
      return -1;
    if (json_object_get_boolean(json_object_object_get(st, "exited"))) {
      int code = json_object_object_get(st, "exitcode")
                     ? json_object_get_int(json_object_object_get(st, "exitcode")) : -1;
      if (out) *out = b64dec(json_object_get_string(json_object_object_get(st, "out-data")));
      if (err_out) *err_out = b64dec(json_object_get_string(json_object_object_get(st, "err-data")));
      json_object_put(st);
      if (code < 0)
        return lerr(VSTOR_E_BACKEND, "%s: guest %s killed by a signal", p->name, argv[0]);
      return code;
    }
    json_object_put(st);
    if (vu_now_us() > deadline)
      return lerr(VSTOR_E_TIMEOUT, "%s: guest %s still running after %d s",
                       p->name, argv[0], timeout_s);
    usleep(100000);
  }
}

/* Read a small guest file (guest-file-open/read/close), malloc'd. */
static char *guest_read(struct lvpriv *p, const char *path)
{
  json_object *c = mkcmd("guest-file-open"), *a = json_object_new_object(), *r = NULL;
  json_object_object_add(a, "path", json_object_new_string(path));
  json_object_object_add(a, "mode", json_object_new_string("r"));
  json_object_object_add(c, "arguments", a);
  if (agent_cmd(p, c, AGENT_TIMEOUT_S, &r) < 0)
    return NULL;
  int64_t h = json_object_get_int64(r);
  json_object_put(r);
  c = mkcmd("guest-file-read"); a = json_object_new_object();
  json_object_object_add(a, "handle", json_object_new_int64(h));
  json_object_object_add(a, "count", json_object_new_int(4096));
  json_object_object_add(c, "arguments", a);
  char *res = NULL;
  if (agent_cmd(p, c, AGENT_TIMEOUT_S, &r) == 0) {
    res = b64dec(json_object_get_string(json_object_object_get(r, "buf-b64")));
    json_object_put(r);
  }
  c = mkcmd("guest-file-close"); a = json_object_new_object();
  json_object_object_add(a, "handle", json_object_new_int64(h));
  json_object_object_add(c, "arguments", a);
  agent_cmd(p, c, AGENT_TIMEOUT_S, NULL);
  return res;
}

/* Find the guest filesystem on our disk (virDomainGetFSInfo maps guest
 * devices to targets).  0 with p->g_* set, 0 with them NULL if none. */
static int guest_fs(struct lvpriv *p)
{
  FREE(p->g_dev); FREE(p->g_mnt); FREE(p->g_fstype);
  virDomainFSInfoPtr *info = NULL;
  int n = virDomainGetFSInfo(p->dom, &info, 0);
  if (n < 0)
    return verr(VSTOR_E_BACKEND, p->name, "virDomainGetFSInfo");
  for (int i = 0; i < n; i++) {
    bool mine = false;
    for (size_t k = 0; k < info[i]->ndevAlias; k++)
      if (info[i]->devAlias[k] && !strcmp(info[i]->devAlias[k], p->target))
        mine = true;
    if (mine && !p->g_mnt) {
      p->g_mnt = vu_strdup(info[i]->mountpoint);
      p->g_fstype = vu_strdup(info[i]->fstype);
      p->g_dev = vu_strdup(info[i]->name);
    }
    virDomainFSInfoFree(info[i]);
  }
  free(info);
  return 0;
}

/* ---- open / layers --------------------------------------------------- */

static void lv_free(struct lvpriv *p)
{
  if (!p) return;
  if (p->dom) virDomainFree(p->dom);
  if (p->conn) virConnectClose(p->conn);
  free(p->conn_uri); free(p->name); free(p->uuid); free(p->target);
  free(p->src_type); free(p->src_path); free(p->fmt); free(p->device);
  free(p->mirror_file); free(p->g_dev); free(p->g_mnt); free(p->g_fstype);
  free(p->net_proto); free(p->net_hosts); free(p->auth_user); free(p->secret_uuid);
  free(p->secret_usage); free(p->cfg_file); free(p->u_conf); free(p->u_client); free(p->lower_err);
  free(p);
}

static int lv_size(vstor_vol *vol, uint64_t *size)
{
  struct lvpriv *p = vol->priv;
  virDomainBlockInfo bi;
  if (virDomainGetBlockInfo(p->dom, p->target, &bi, 0) < 0)
    return verr(VSTOR_E_BACKEND, p->name, "virDomainGetBlockInfo");
  *size = bi.capacity;
  return 0;
}

static void close_lower(vstor_vol *vol)
{
  if (vol->lower) {
    vstor_host->close_lower(vol->lower);
    vol->lower = NULL;
  }
}

/* (Re)build the layer list; reopens the lower layer if the source moved. */
static int lv_layers(vstor_vol *vol)
{
  struct lvpriv *p = vol->priv;
  if (lv_parse(p) < 0)
    return -1;
  vu_layers_clear(vol);
  close_lower(vol);
  bool is_file = !strcmp(p->src_type, "file"), is_block = !strcmp(p->src_type, "block");
  if ((is_file || is_block) && p->src_path) {
    char *u = is_file ? vu_asprintf("file:%s", p->src_path) : vu_strdup(p->src_path);
    vstor_vol *lo = NULL;
    if (vstor_host->open_lower(vol->ctx, u, vol->flags & VSTOR_OPEN_READONLY, &lo) == 0) {
      vol->lower = lo;
      for (size_t i = 0; i < lo->nlayers; i++) {
        struct vstor_layer *s = &lo->layers[i];
        /* A filesystem the lower backend finds inside the image is the
         * guest's: it is reported once, from the agent, on top. */
        if (!strcmp(s->role, "filesystem"))
          continue;
        struct vstor_layer *l = vu_layer_add(vol, s->role, s->type, s->path, s->size);
        for (size_t k = 0; k < s->nprops; k++)
          vu_layer_prop(l, s->props[k].key, s->props[k].val);
      }
    } else {
      /* Still usable for hypervisor-level operations; say why. */
      vstor_log(vol->ctx, VSTOR_LOG_INFO, "%s: lower layer %s not opened", p->name, u);
      struct vstor_layer *l = vu_layer_add(vol, "storage", is_file ? "file" : "block",
                                           p->src_path, 0);
      vu_layer_prop(l, "opened", "no");
    }
    free(u);
  } else if (is_rbd(p)) {
    /* RBD network disk: the image through the rbd backend (its URI has no
     * libvirt=, so it does not look for this domain again). */
    char *u = rbd_uri_of(p, p->src_path);
    vstor_vol *lo = NULL;
    FREE(p->lower_err);
    int s_code = 0, s_en = 0;      /* a failed lower open must not leave its error */
    char *s_msg = vstor_host->error_get(&s_code, &s_en);
    if (vstor_host->open_lower(vol->ctx, u, vol->flags & VSTOR_OPEN_READONLY, &lo) == 0) {
      vol->lower = lo;
      for (size_t i = 0; i < lo->nlayers; i++) {
        struct vstor_layer *s = &lo->layers[i];
        struct vstor_layer *l = vu_layer_add(vol, s->role, s->type, s->path, s->size);
        for (size_t k = 0; k < s->nprops; k++)
          vu_layer_prop(l, s->props[k].key, s->props[k].val);
      }
    } else {
      int code = 0, en = 0;
      p->lower_err = vstor_host->error_get(&code, &en);
      vstor_log(vol->ctx, VSTOR_LOG_INFO, "%s: lower layer %s not opened: %s", p->name, u,
                p->lower_err ? p->lower_err : "?");
      struct vstor_layer *l = vu_layer_add(vol, "storage", "rbd", p->src_path, 0);
      vu_layer_prop(l, "opened", "no");
      if (p->lower_err) vu_layer_prop(l, "error", p->lower_err);
      vstor_host->error_set(s_code, s_en, s_msg);
    }
    free(s_msg);
    free(u);
  } else {
    struct vstor_layer *l = vu_layer_add(vol, "storage", p->src_type,
                                         p->src_path ? p->src_path : "?", 0);
    vu_layer_prop(l, "opened", "no");
  }
  uint64_t sz = 0;
  lv_size(vol, &sz);
  struct vstor_layer *h = vu_layer_add(vol, "hypervisor", "libvirt", p->name, sz);
  vu_layer_prop(h, "format", p->fmt);
  vu_layer_prop(h, "source", p->src_path ? p->src_path : "");
  if (is_net(p)) {
    vu_layer_prop(h, "protocol", p->net_proto ? p->net_proto : "?");
    if (p->auth_user) vu_layer_prop(h, "auth", p->auth_user);
  }
  vu_layer_prop(h, "running", p->running ? "yes" : "no");
  vu_layer_prop(h, "persistent", p->persistent ? "yes" : "no");
  vu_layer_prop(h, "agent", p->agent == AGENT_CONNECTED ? "connected"
                : p->agent == AGENT_DISCONNECTED ? "disconnected" : "none");
  if (p->has_mirror)
    vu_layer_prop(h, "mirror", p->mirror_file ? p->mirror_file : "yes");
  if (p->running && p->agent == AGENT_CONNECTED && guest_fs(p) == 0 && p->g_mnt) {
    struct vstor_layer *f = vu_layer_add(vol, "filesystem", p->g_fstype, p->g_mnt, 0);
    vu_layer_prop(f, "mountpoint", p->g_mnt);
    vu_layer_prop(f, "guest-device", p->g_dev);
    vu_layer_prop(f, "in-guest", "yes");
  }
  return 0;
}

static int lv_open(vstor_vol *vol)
{
  const struct vstor_uri *u = vol->uri;
  if (!u->domain || !*u->domain || !u->disk || !*u->disk)
    return lerr(VSTOR_E_INVAL, "%s: expected libvirt:DOMAIN/TARGET",
                     vol->uri_text ? vol->uri_text : "libvirt URI");
  struct lvpriv *p = vu_calloc(1, sizeof *p);
  p->conn_uri = vu_strdup(default_uri(u->conn));
  p->target = vu_strdup(u->disk);
  p->name = vu_asprintf("%s/%s", u->domain, u->disk);
  p->u_conf = u->conf ? vu_strdup(u->conf) : NULL;
  p->u_client = u->client ? vu_strdup(u->client) : NULL;
  if (!(p->conn = lv_connect(p->conn_uri)) || !(p->dom = lv_lookup(p->conn, u->domain))) {
    lv_free(p);
    return -1;
  }
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (virDomainGetUUIDString(p->dom, uuid) == 0)
    p->uuid = vu_strdup(uuid);
  vol->priv = p;
  if (lv_layers(vol) < 0) {
    vu_layers_clear(vol);
    close_lower(vol);
    vol->priv = NULL;
    lv_free(p);
    return -1;
  }
  if (!strcmp(p->device, "cdrom") || !strcmp(p->device, "floppy")) {
    lerr(VSTOR_E_NOTSUP, "%s: is a %s, not a disk", p->name, p->device);
    vu_layers_clear(vol); close_lower(vol); vol->priv = NULL; lv_free(p);
    return -1;
  }
  free(vol->id);
  vol->id = vu_asprintf("libvirt:%s/%s", p->uuid ? p->uuid : u->domain, p->target);
  return 0;
}

static void lv_close(vstor_vol *vol)
{
  close_lower(vol);
  lv_free(vol->priv);
  vol->priv = NULL;
}

static int lv_refresh(vstor_vol *vol) { return lv_layers(vol); }

/* ---- availability / capability --------------------------------------- */

static int lv_available(vstor_ctx *ctx, int op, char **why)
{
  const char *uri = default_uri(NULL);
  virConnectPtr c = lv_connect(uri);
  if (!c) {
    if (why) *why = vu_strdup(last_msg);
    return 0;
  }
  virConnectClose(c);
  if ((op == VSTOR_OP_FREEZE || op == VSTOR_OP_SNAPSHOT) && access(VIRSH, X_OK) != 0) {
    if (why) *why = vu_strdup(VIRSH " (libvirt-clients) missing: the freeze guard needs it");
    return 0;
  }
  return 1;
}

__attribute__((format(printf, 2, 3)))
static int no(char **why, const char *fmt, ...)
{
  if (why) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(why, fmt, ap) < 0)
      *why = NULL;
    va_end(ap);
  }
  return 0;
}

#define AGENT_WHY (p->agent == AGENT_NONE \
      ? "%s: the domain has no guest agent channel (" AGENT_CHANNEL ")%s" \
      : "%s: the guest agent is not answering in the guest%s")

/* FREEZE and RESIZE_FS, whatever the disk's source: the guest agent
 * answers, and for RESIZE_FS it reports a growable filesystem on the
 * whole disk. */
static int can_guest(struct lvpriv *p, int op, char **why)
{
  if (!p->running)
    return no(why, "%s: domain is not running%s", p->name, "");
  if (p->agent != AGENT_CONNECTED || agent_ping(p) < 0)
    return no(why, AGENT_WHY, p->name, "");
  if (op == VSTOR_OP_RESIZE_FS) {
    if (guest_fs(p) < 0 || !p->g_mnt)
      return no(why, "%s: the guest agent reports no mounted filesystem on this disk%s", p->name, "");
    if (strncmp(p->g_fstype, "ext", 3) && strcmp(p->g_fstype, "xfs"))
      return no(why, "%s: cannot grow guest filesystem type %s", p->name, p->g_fstype);
    if (strcmp(p->g_dev, p->target))
      return no(why, "%s: guest filesystem is on %s, not the whole disk (grow the partition first)",
                p->name, p->g_dev);
  }
  return 1;
}

/* Capabilities of an RBD network disk: QEMU's rbd driver grows the image
 * (virDomainBlockResize), the agent freezes the guest around an RBD
 * snapshot made through the lower layer, libvirt's block copy mirrors onto
 * another RBD image. */
static int lv_can_rbd(vstor_vol *vol, int op, unsigned flags, char **why)
{
  struct lvpriv *p = vol->priv;
#define agent_ok (p->running && p->agent == AGENT_CONNECTED && agent_ping(p) == 0)
  switch (op) {
  case VSTOR_OP_EXTEND:
    if (!p->running && !vol->lower)
      return no(why, "%s: domain not running and the image %s could not be opened through librbd (%s)",
                p->name, p->src_path, p->lower_err ? p->lower_err : "?");
    return 1;
  case VSTOR_OP_EXTEND_ONLINE:
    if (!p->running)
      return no(why, "%s: domain is not running%s", p->name, "");
    return 1;     /* virDomainBlockResize: QEMU's rbd driver resizes and tells the guest */
  case VSTOR_OP_RESIZE_FS:
  case VSTOR_OP_FREEZE:
    return can_guest(p, op, why);
  case VSTOR_OP_SNAPSHOT:
    if (!vol->lower)
      return no(why, "%s: the image %s could not be opened through librbd (%s)", p->name,
                p->src_path, p->lower_err ? p->lower_err : "?");
    if (p->has_mirror)
      return no(why, "%s: a block job is active on the disk%s", p->name, "");
    if (!p->running || (flags & VSTOR_SNAPSHOT_CRASH_CONSISTENT))
      return 1;
    if (!agent_ok)
      return no(why, AGENT_WHY, p->name,
                " (pass VSTOR_SNAPSHOT_CRASH_CONSISTENT for a crash-consistent RBD snapshot)");
    if (access(VIRSH, X_OK) != 0)
      return no(why, "%s: %s missing (the freeze guard needs it)", p->name, VIRSH);
    return 1;     /* guest freeze (agent) + rbd_snap_create + thaw */
  case VSTOR_OP_MIRROR:
  case VSTOR_OP_PIVOT:
    if (!p->running)
      return no(why, "%s: domain is not running (block copy needs a live domain; an unused image "
                "moves with RBD live migration: rbd:%s)", p->name, p->src_path);
    if (p->has_mirror && op == VSTOR_OP_MIRROR)
      return no(why, "%s: a block job is already active on the disk%s", p->name, "");
    if (flags & VSTOR_MIRROR_VERIFY)
      return no(why, "%s: VERIFY is not supported on a live QEMU mirror%s", p->name, "");
#if !HAVE_RBD
    if (op == VSTOR_OP_MIRROR && !(flags & VSTOR_MIRROR_REUSE_DEST))
      return no(why, "%s: the libvirt module was built without librbd: it cannot create the "
                "destination image (pre-create it and pass REUSE_DEST)%s", p->name, "");
#endif
    return 1;     /* libvirt block copy onto RBD (the guest keeps the image open: no migration) */
  default:
    return no(why, "%s: unknown operation%s", p->name, "");
  }
#undef agent_ok
}

static int lv_can(vstor_vol *vol, int op, unsigned flags, char **why)
{
  struct lvpriv *p = vol->priv;
  if (lv_parse(p) < 0)
    return -1;
  bool file = !strcmp(p->src_type, "file"), block = !strcmp(p->src_type, "block");
  bool rbd = is_rbd(p);
  if (is_net(p) && !rbd && op != VSTOR_OP_FREEZE)
    return no(why, "%s: network disk protocol '%s' is not supported (rbd only)", p->name,
              p->net_proto ? p->net_proto : "?");
  if (!file && !block && !rbd && op != VSTOR_OP_FREEZE)
    return no(why, "%s: disk type '%s' is not supported (file, block or network rbd)", p->name, p->src_type);
  if (p->readonly_disk && op != VSTOR_OP_FREEZE && op != VSTOR_OP_SNAPSHOT
      && op != VSTOR_OP_MIRROR)
    return no(why, "%s: disk is read-only in the domain", p->name);
  if (rbd)
    return lv_can_rbd(vol, op, flags, why);
  switch (op) {
  case VSTOR_OP_EXTEND:
    if (!p->running && block && !vol->lower)
      return no(why, "%s: block source %s cannot be grown by libvstor", p->name, p->src_path);
    return 1;
  case VSTOR_OP_EXTEND_ONLINE:
    if (!p->running)
      return no(why, "%s: domain is not running%s", p->name, "");
    if (block && !vol->lower)
      return no(why, "%s: block source %s cannot be grown by libvstor", p->name, p->src_path);
    return 1;
  case VSTOR_OP_RESIZE_FS:
  case VSTOR_OP_FREEZE:
    return can_guest(p, op, why);
  case VSTOR_OP_SNAPSHOT:
    if (!file)
      return no(why, "%s: external snapshots need a file source (have %s)", p->name, p->src_type);
    if (p->has_mirror)
      return no(why, "%s: a block job is active on the disk%s", p->name, "");
    if (!p->running || (flags & VSTOR_SNAPSHOT_CRASH_CONSISTENT))
      return 1;
    if (p->agent != AGENT_CONNECTED || agent_ping(p) < 0)
      return no(why, AGENT_WHY, p->name,
                " (pass VSTOR_SNAPSHOT_CRASH_CONSISTENT for a crash-consistent snapshot)");
    if (access(VIRSH, X_OK) != 0)
      return no(why, "%s: %s missing (the freeze guard needs it)", p->name, VIRSH);
    return 1;
  case VSTOR_OP_MIRROR:
    if (!p->running)
      return no(why, "%s: domain is not running (block copy needs a live domain)%s", p->name, "");
    if (p->has_mirror)
      return no(why, "%s: a block job is already active on the disk%s", p->name, "");
    if (flags & VSTOR_MIRROR_VERIFY)
      return no(why, "%s: VERIFY is not supported on a live QEMU mirror%s", p->name, "");
    return 1;
  case VSTOR_OP_PIVOT:
    if (!p->running)
      return no(why, "%s: domain is not running%s", p->name, "");
    return 1;
  default:
    return no(why, "%s: unknown operation%s", p->name, "");
  }
}

/* ---- librbd side of RBD network disks -------------------------------- */

/* "POOL[/NS]/IMAGE[@SNAP]" split in place. */
struct rname { char *buf, *pool, *ns, *image, *snap; };
static int rname_parse(const char *what, const char *text, struct rname *n)
{
  memset(n, 0, sizeof *n);
  n->buf = vu_strdup(text);
  char *at = strchr(n->buf, '@');
  if (at) { *at = 0; n->snap = at + 1; }
  char *a = n->buf, *b = strchr(a, '/'), *c = b ? strchr(b + 1, '/') : NULL;
  if (!b || (c && strchr(c + 1, '/')) || strchr(n->buf, '?') || strchr(n->buf, '&')) {
    free(n->buf); n->buf = NULL;
    return lerr(VSTOR_E_INVAL, "%s '%s': expected POOL[/NAMESPACE]/IMAGE", what, text);
  }
  *b = 0;
  n->pool = a;
  if (c) { *c = 0; n->ns = b + 1; n->image = c + 1; } else n->image = b + 1;
  if (!*n->pool || !*n->image || (n->ns && !*n->ns) || (n->snap && !*n->snap)) {
    free(n->buf); n->buf = NULL;
    return lerr(VSTOR_E_INVAL, "%s '%s': empty pool, namespace, image or snapshot name", what, text);
  }
  return 0;
}

#if HAVE_RBD
/* A short-lived librados connection with the disk's cephx user and
 * ceph.conf (bounded timeouts, as in the rbd backend). */
static int rc_connect(const char *conf, const char *id, rados_t *out)
{
  char *name = vu_asprintf("client.%s", id && *id ? id : "admin");
  int r = rados_create2(out, "ceph", name, 0);
  free(name);
  if (r < 0)
    return lerr(VSTOR_E_BACKEND, "librados: rados_create2: %s", strerror(-r));
  rados_conf_parse_env(*out, NULL);
  r = rados_conf_read_file(*out, conf && *conf ? conf : NULL);
  if (r < 0 && (conf && *conf)) {
    rados_shutdown(*out);
    return lerr(r == -ENOENT ? VSTOR_E_NOENT : VSTOR_E_BACKEND, "Ceph configuration %s: %s",
                conf, strerror(-r));
  }
  rados_conf_set(*out, "client_mount_timeout", "10");
  rados_conf_set(*out, "rados_mon_op_timeout", "10");
  rados_conf_set(*out, "rados_osd_op_timeout", "10");
  r = rados_connect(*out);
  if (r < 0) {
    rados_shutdown(*out);
    return lerr(r == -ETIMEDOUT ? VSTOR_E_TIMEOUT : r == -EACCES || r == -EPERM ? VSTOR_E_PERM
                : VSTOR_E_BACKEND, "Ceph cluster (client.%s, conf %s): rados_connect: %s",
                id && *id ? id : "admin", conf && *conf ? conf : "default search", strerror(-r));
  }
  return 0;
}

static int rc_ioctx(rados_t cl, const struct rname *n, rados_ioctx_t *io)
{
  int r = rados_ioctx_create(cl, n->pool, io);
  if (r == -ENOENT)
    return lerr(VSTOR_E_NOENT, "Ceph pool '%s' does not exist", n->pool);
  if (r < 0)
    return lerr(VSTOR_E_BACKEND, "Ceph pool '%s': rados_ioctx_create: %s", n->pool, strerror(-r));
  rados_ioctx_set_namespace(*io, n->ns ? n->ns : "");
  return 0;
}

/* Does image n exist?  1 yes, 0 no, -1 error. */
static int rc_exists(rados_t cl, const struct rname *n)
{
  rados_ioctx_t io;
  if (rc_ioctx(cl, n, &io) < 0)
    return -1;
  rbd_image_t img;
  int r = rbd_open_read_only(io, n->image, &img, NULL);
  if (r == 0) rbd_close(img);
  rados_ioctx_destroy(io);
  if (r == 0) return 1;
  if (r == -ENOENT) return 0;
  return lerr(VSTOR_E_BACKEND, "RBD image %s: rbd_open_read_only: %s", n->image, strerror(-r));
}

/* Create dst with the size, features and object size (order) of src. */
static int rc_create_like(rados_t cl, const struct rname *src, const struct rname *dst, uint64_t size)
{
  rados_ioctx_t sio, dio;
  if (rc_ioctx(cl, src, &sio) < 0)
    return -1;
  rbd_image_t img;
  int r = rbd_open_read_only(sio, src->image, &img, NULL);
  if (r < 0) {
    rados_ioctx_destroy(sio);
    return lerr(VSTOR_E_BACKEND, "RBD image %s: rbd_open_read_only: %s", src->image, strerror(-r));
  }
  uint64_t feat = 0;
  rbd_image_info_t st;
  rbd_get_features(img, &feat);
  r = rbd_stat(img, &st, sizeof st);
  rbd_close(img);
  rados_ioctx_destroy(sio);
  if (r < 0)
    return lerr(VSTOR_E_BACKEND, "RBD image %s: rbd_stat: %s", src->image, strerror(-r));
  if (rc_ioctx(cl, dst, &dio) < 0)
    return -1;
  int order = st.order;
  r = rbd_create2(dio, dst->image, size, feat, &order);
  rados_ioctx_destroy(dio);
  if (r == -EEXIST)
    return lerr(VSTOR_E_EXIST, "mirror destination rbd:%s already exists", dst->image);
  if (r < 0)
    return lerr(VSTOR_E_BACKEND, "RBD image %s: rbd_create2: %s", dst->image, strerror(-r));
  return 0;
}

static int rc_remove(rados_t cl, const struct rname *n)
{
  rados_ioctx_t io;
  if (rc_ioctx(cl, n, &io) < 0)
    return -1;
  int r = rbd_remove(io, n->image);
  rados_ioctx_destroy(io);
  if (r < 0 && r != -ENOENT)
    return lerr(r == -EBUSY ? VSTOR_E_BUSY : VSTOR_E_BACKEND, "RBD image %s: rbd_remove: %s",
                n->image, strerror(-r));
  return 0;
}

static int rc_snap_remove(rados_t cl, const struct rname *n, const char *snap)
{
  rados_ioctx_t io;
  if (rc_ioctx(cl, n, &io) < 0)
    return -1;
  rbd_image_t img;
  int r = rbd_open(io, n->image, &img, NULL);
  if (r == 0) {
    int prot = 0;
    if (rbd_snap_is_protected(img, snap, &prot) == 0 && prot)
      rbd_snap_unprotect(img, snap);
    r = rbd_snap_remove(img, snap);
    rbd_close(img);
  }
  rados_ioctx_destroy(io);
  if (r < 0 && r != -ENOENT)
    return lerr(VSTOR_E_BACKEND, "RBD snapshot %s@%s: rbd_snap_remove: %s", n->image, snap, strerror(-r));
  return 0;
}

/* One-shot wrappers: connect, act, disconnect. */
static int rbd_remove_image(const char *conf, const char *id, const char *name)
{
  struct rname n;
  if (rname_parse("RBD image", name, &n) < 0) return -1;
  rados_t cl;
  int r = rc_connect(conf, id, &cl);
  if (r == 0) { r = rc_remove(cl, &n); rados_shutdown(cl); }
  free(n.buf);
  return r;
}

static int rbd_remove_snap(const char *conf, const char *id, const char *name, const char *snap)
{
  struct rname n;
  if (rname_parse("RBD image", name, &n) < 0) return -1;
  rados_t cl;
  int r = rc_connect(conf, id, &cl);
  if (r == 0) { r = rc_snap_remove(cl, &n, snap); rados_shutdown(cl); }
  free(n.buf);
  return r;
}
#else
static int rbd_remove_image(const char *conf, const char *id, const char *name)
{
  (void)conf; (void)id;
  return lerr(VSTOR_E_NOTSUP, "rbd:%s: the libvirt module was built without librbd: remove it "
              "with the rbd CLI", name);
}
static int rbd_remove_snap(const char *conf, const char *id, const char *name, const char *snap)
{
  (void)conf; (void)id;
  return lerr(VSTOR_E_NOTSUP, "rbd:%s@%s: the libvirt module was built without librbd: remove it "
              "with the rbd CLI", name, snap);
}
#endif

/* ---- extend ---------------------------------------------------------- */

static int wait_guest_size(struct lvpriv *p, uint64_t size, int timeout_ms)
{
  char *path = vu_asprintf("/sys/class/block/%s/size", p->g_dev);
  uint64_t deadline = vu_now_us() + (uint64_t)timeout_ms * 1000u;
  int rc = -1;
  for (;;) {
    char *s = guest_read(p, path);
    if (!s) break;
    uint64_t sectors = strtoull(s, NULL, 10);
    free(s);
    if (sectors * 512 >= size) { rc = 0; break; }
    if (vu_now_us() > deadline) {
      lerr(VSTOR_E_TIMEOUT, "%s: guest still sees %llu bytes on %s after %d ms",
                p->name, (unsigned long long)(sectors * 512), p->g_dev, timeout_ms);
      break;
    }
    usleep(100000);
  }
  free(path);
  return rc;
}

/* RBD network disk, steps 1-2.  Running: virDomainBlockResize -- QEMU's
 * rbd driver resizes the image (rbd_resize) and the guest's virtio disk
 * sees the new capacity; an rbd_resize from outside would reach the image
 * but not the guest.  Then the image's size is checked through the lower
 * (rbd) layer.  Not running: rbd_resize through the lower layer. */
static int extend_rbd(vstor_vol *vol, uint64_t size, uint64_t cur, const struct vstor_opts *o,
                      unsigned flags, vstor_report *rep, bool *changed)
{
  struct lvpriv *p = vol->priv;
  bool dry = flags & VSTOR_DRY_RUN;
  if (flags & VSTOR_EXTEND_PREALLOC)
    return lerr(VSTOR_E_NOTSUP, "%s: RBD images are thin-provisioned: PREALLOC is not supported", p->name);
  if (size <= cur)
    return 0;
  if (!p->running) {
    if (!vol->lower)
      return lerr(VSTOR_E_NOTSUP, "%s: domain not running and the image %s could not be opened "
                  "through librbd: %s", p->name, p->src_path, p->lower_err ? p->lower_err : "?");
    if (vol->lower->ops->extend(vol->lower, size, o, flags & VSTOR_DRY_RUN, rep) < 0)
      return -1;
    *changed = !dry;
    vu_step(rep, p->name, "virDomainBlockResize", VSTOR_STEP_SKIPPED, 0,
            "domain not running: it sees the new size when started");
    return 0;
  }
  size_t i = rep->nsteps;
  vu_step(rep, p->name, "virDomainBlockResize (QEMU's rbd driver resizes the image)",
          VSTOR_STEP_PLANNED, 0, "rbd:%s to %llu bytes; the guest's disk sees it online",
          p->src_path, (unsigned long long)size);
  if (dry)
    return 0;
  vstor_fault("libvirt-extend-before-blockresize");
  uint64_t t0 = vu_now_us();
  if (virDomainBlockResize(p->dom, p->target, size, VIR_DOMAIN_BLOCK_RESIZE_BYTES) < 0) {
    verr(VSTOR_E_BACKEND, p->name, "virDomainBlockResize");
    vu_step_set(rep, i, VSTOR_STEP_FAILED, last_msg);
    return -1;
  }
  *changed = true;
  char *d = vu_asprintf("in %llu us", (unsigned long long)(vu_now_us() - t0));
  vu_step_set(rep, i, VSTOR_STEP_DONE, d);
  free(d);
  if (vol->lower) {
    uint64_t now = 0;
    size_t k = rep->nsteps;
    vu_step(rep, p->src_path, "verify image size (librbd)", VSTOR_STEP_PLANNED, 0, "%llu bytes",
            (unsigned long long)size);
    if (vol->lower->ops->size(vol->lower, &now) < 0 || now < size) {
      char *m;
      if (now) {
        lerr(VSTOR_E_BACKEND, "QEMU reports success but the image rbd:%s is %llu bytes, not %llu",
             p->src_path, (unsigned long long)now, (unsigned long long)size);
        m = vu_strdup(last_msg);
      } else {
        int c = 0, e = 0;
        m = vstor_host->error_get(&c, &e);   /* set by the rbd layer */
      }
      vu_step_set(rep, k, VSTOR_STEP_FAILED, m);
      lerr(VSTOR_E_PARTIAL, "%s: grown by QEMU, but the image size could not be confirmed: %s",
           p->name, m ? m : "?");
      free(m);
      return -1;
    }
    vu_step_set(rep, k, VSTOR_STEP_DONE, NULL);
  }
  return 0;
}

static int lv_extend(vstor_vol *vol, uint64_t size, const struct vstor_opts *o,
                     unsigned flags, vstor_report *rep)
{
  struct lvpriv *p = vol->priv;
  bool dry = flags & VSTOR_DRY_RUN, fs = flags & VSTOR_EXTEND_RESIZE_FS;
  if (lv_parse(p) < 0)
    return -1;
  uint64_t cur = 0;
  if (lv_size(vol, &cur) < 0)
    return -1;
  rep->old_size = cur;
  rep->new_size = size > cur ? size : cur;
  if (size < cur)
    return lerr(VSTOR_E_INVAL, "%s: %llu is smaller than the current size %llu (shrinking is refused)",
                     p->name, (unsigned long long)size, (unsigned long long)cur);
  bool file = !strcmp(p->src_type, "file"), block = !strcmp(p->src_type, "block");
  bool qcow2 = !strcmp(p->fmt, "qcow2"), raw = !strcmp(p->fmt, "raw");
  bool rbd = is_rbd(p);
  if (is_net(p) && !rbd)
    return lerr(VSTOR_E_NOTSUP, "%s: network disk protocol '%s' is not supported (rbd only)", p->name,
                p->net_proto ? p->net_proto : "?");
  if (!file && !block && !rbd)
    return lerr(VSTOR_E_NOTSUP, "%s: disk type '%s' is not supported", p->name, p->src_type);
  if (rbd && !raw)
    return lerr(VSTOR_E_NOTSUP, "%s: RBD disk with format '%s' is not supported (raw only)", p->name, p->fmt);
  if (!raw && !qcow2)
    return lerr(VSTOR_E_NOTSUP, "%s: image format '%s' is not supported", p->name, p->fmt);
  if (p->has_mirror)
    return lerr(VSTOR_E_BUSY, "%s: a block job is active on the disk", p->name);
  if (fs) {
    char *why = NULL;
    int ok = lv_can(vol, VSTOR_OP_RESIZE_FS, flags, &why);
    if (ok <= 0) {
      if (ok == 0) lerr(VSTOR_E_NOTSUP, "%s", why);
      free(why);
      return -1;
    }
  }
  if (size == cur) {
    vu_step(rep, p->name, "resize", VSTOR_STEP_SKIPPED, 0, "already %llu bytes",
            (unsigned long long)cur);
    /* fall through to the fs step: a fs smaller than its disk still grows */
  }
  bool changed = false;
  if (rbd) {
    if (extend_rbd(vol, size, cur, o, flags, rep, &changed) < 0)
      return -1;
    goto guest;
  }
  /* 1. storage below: raw file / block device through its backend (no
   * loop or filesystem steps: QEMU is the only user). */
  bool lower_step = raw && size > cur;
  if (lower_step && block && !vol->lower) {
    uint64_t bs = 0;
    if (vu_blk_size(p->src_path, &bs) < 0 || bs < size)
      return lerr(VSTOR_E_NOTSUP, "%s: block source %s is %llu bytes and no backend can grow it",
                       p->name, p->src_path, (unsigned long long)bs);
    lower_step = false;
  }
  if (lower_step && !vol->lower)
    return lerr(VSTOR_E_NOTSUP, "%s: source %s could not be opened as a lower layer",
                     p->name, p->src_path);
  if (lower_step) {
    unsigned lf = (flags & (VSTOR_EXTEND_PREALLOC | VSTOR_DRY_RUN));
    if (vol->lower->ops->extend(vol->lower, size, o, lf, rep) < 0)
      return -1;
    changed = !dry;
  }
  /* 2. hypervisor */
  if (size > cur) {
    if (p->running) {
      size_t i = rep->nsteps;
      vu_step(rep, p->name, qcow2 ? "virDomainBlockResize (QEMU grows the qcow2)" : "virDomainBlockResize",
              VSTOR_STEP_PLANNED, 0, "to %llu bytes", (unsigned long long)size);
      if (!dry) {
        vstor_fault("libvirt-extend-before-blockresize");
        if (virDomainBlockResize(p->dom, p->target, size, VIR_DOMAIN_BLOCK_RESIZE_BYTES) < 0) {
          verr(VSTOR_E_BACKEND, p->name, "virDomainBlockResize");
          vu_step_set(rep, i, VSTOR_STEP_FAILED, last_msg);
          if (changed)
            return lerr(VSTOR_E_PARTIAL, "%s: storage grown but virDomainBlockResize failed: %s",
                             p->name, rep->steps[i].detail);
          return -1;
        }
        vu_step_set(rep, i, VSTOR_STEP_DONE, NULL);
        changed = true;
      }
    } else if (qcow2) {
      size_t i = rep->nsteps;
      char *sz = vu_asprintf("%llu", (unsigned long long)size);
      vu_step(rep, p->src_path, "qemu-img resize (domain not running)", VSTOR_STEP_PLANNED, 0,
              "to %s bytes", sz);
      if (!dry) {
        const char *argv[] = { "qemu-img", "resize", "-f", "qcow2", p->src_path, sz, NULL };
        char *err = NULL;
        int st = vu_run(argv, NULL, &err);
        if (st != 0) {
          if (st > 0)
            lerr(VSTOR_E_BACKEND, "%s: qemu-img resize exited %d: %s", p->name, st, err ? err : "");
          vu_step_set(rep, i, VSTOR_STEP_FAILED, last_msg);
          free(err); free(sz);
          return -1;
        }
        free(err);
        vu_step_set(rep, i, VSTOR_STEP_DONE, NULL);
        changed = true;
      }
      free(sz);
    } else {
      vu_step(rep, p->name, "virDomainBlockResize", VSTOR_STEP_SKIPPED, 0,
              "domain not running: it sees the new size when started");
    }
  }
guest:
  /* 3. guest filesystem through the agent */
  if (fs) {
    bool xfs = !strcmp(p->g_fstype, "xfs");
    char *dev = vu_asprintf("/dev/%s", p->g_dev);
    const char *argv_ext[] = { "resize2fs", dev, NULL };
    const char *argv_xfs[] = { "xfs_growfs", p->g_mnt, NULL };
    const char *const *argv = xfs ? argv_xfs : argv_ext;
    size_t i = rep->nsteps;
    vu_step(rep, p->g_mnt, xfs ? "guest-exec xfs_growfs" : "guest-exec resize2fs",
            VSTOR_STEP_PLANNED, 0, "%s filesystem on guest %s, via the guest agent", p->g_fstype, dev);
    if (!dry) {
      char *out = NULL, *err = NULL;
      int st = wait_guest_size(p, size, 10000);
      if (st == 0)
        st = guest_exec(p, argv, 120, &out, &err);
      if (st != 0) {
        if (st > 0)
          lerr(VSTOR_E_BACKEND, "%s: guest %s %s exited %d: %s", p->name, argv[0], argv[1],
                    st, err && *err ? err : (out ? out : ""));
        vu_step_set(rep, i, VSTOR_STEP_FAILED, last_msg);
        free(out); free(err); free(dev);
        if (changed)
          return lerr(VSTOR_E_PARTIAL, "%s: disk grown but the guest filesystem was not: %s",
                           p->name, rep->steps[i].detail);
        return -1;
      }
      vu_step_set(rep, i, VSTOR_STEP_DONE, NULL);
      free(out); free(err);
    }
    free(dev);
  }
  if (!dry)
    lv_layers(vol);
  return 0;
}

/* ---- freeze guard ---------------------------------------------------- */

/* A child process that runs `virsh domfsthaw` when the parent dies (socket
 * EOF) or the window runs out; released by one byte from the parent.
 * Only async-signal-safe calls between fork and exec. */
struct guard { pid_t pid; int wfd; uint64_t t0, deadline; };

static int guard_start(struct guard *g, const char *uri, const char *dom, uint32_t ms)
{
  /* A socket pair, not a pipe: releasing a guard that already exited must
   * not raise SIGPIPE in the application (send with MSG_NOSIGNAL). */
  int pfd[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pfd) < 0)
    return lerr(VSTOR_E_INTERNAL, "freeze guard: socketpair: %m");
  const char *argv[] = { "virsh", "-q", "-c", uri, "domfsthaw", dom, NULL };
  const char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
  g->t0 = vu_now_us();
  g->deadline = g->t0 + (uint64_t)ms * 1000u;
  pid_t pid = fork();
  if (pid < 0) {
    close(pfd[0]); close(pfd[1]);
    return lerr(VSTOR_E_INTERNAL, "freeze guard: fork: %m");
  }
  if (pid == 0) {
    dup2(pfd[0], 0);
    int nul = open("/dev/null", O_WRONLY);
    if (nul >= 0) { dup2(nul, 1); dup2(nul, 2); }
    close_range(3, ~0U, 0);
    struct pollfd pf = { .fd = 0, .events = POLLIN };
    int r = poll(&pf, 1, (int)ms);
    if (r > 0) {
      char b;
      if (read(0, &b, 1) == 1)
        _exit(99);          /* released: the parent thawed */
    }
    /* timeout or parent gone: thaw */
    execve(VIRSH, (char *const *)argv, (char *const *)envp);
    _exit(127);
  }
  close(pfd[0]);
  g->pid = pid;
  g->wfd = pfd[1];
  return 0;
}

/* Release the guard; returns 1 if the guard thawed (window ran out), 0 if
 * released in time. */
static int guard_stop(struct guard *g)
{
  char b = 'r';
  ssize_t w = send(g->wfd, &b, 1, MSG_NOSIGNAL);
  (void)w;
  close(g->wfd);
  int st = 0;
  while (waitpid(g->pid, &st, 0) < 0 && errno == EINTR)
    ;
  return !(WIFEXITED(st) && WEXITSTATUS(st) == 99);
}

/* Whether a snapshot of a running domain freezes the guest: yes through a
 * connected agent, unless crash-consistent was asked; without an agent it
 * is refused unless crash-consistent.  -1 (error set) when refused. */
static int decide_freeze(struct lvpriv *p, bool crash, const char *what, bool *freeze)
{
  *freeze = false;
  if (!p->running)
    return 0;
  bool agent_ok = p->agent == AGENT_CONNECTED && agent_ping(p) == 0;
  if (!agent_ok && !crash)
    return lerr(VSTOR_E_NOTSUP, "%s: %s; refusing an unquiesced %s "
                "(VSTOR_SNAPSHOT_CRASH_CONSISTENT allows it)", p->name,
                p->agent == AGENT_NONE ? "the domain has no guest agent channel"
                                       : "the guest agent is not answering", what);
  *freeze = agent_ok && !crash;
  if (*freeze && access(VIRSH, X_OK) != 0)
    return lerr(VSTOR_E_NOTSUP, "%s: %s missing (the freeze guard needs it)", p->name, VIRSH);
  return 0;
}

/* Thaw the guest after a guarded freeze and release the guard: sets
 * *timed_out (the guard thawed first, or the window ran out) and the
 * frozen window.  -2 when the guest is still frozen after a failed thaw
 * (the journal then keeps the freeze for recover), else 0. */
static int thaw_guarded(struct lvpriv *p, struct guard *g, vstor_report *rep, int *timed_out)
{
  int th = virDomainFSThaw(p->dom, NULL, 0, 0);
  uint64_t t1 = vu_now_us();
  *timed_out = guard_stop(g) || t1 > g->deadline;
  rep->frozen_us = (*timed_out ? (g->deadline < t1 ? g->deadline : t1) : t1) - g->t0;
  if (th < 0 && !*timed_out) {
    /* maybe already thawed by the guard; check */
    json_object *r = NULL;
    if (agent_cmd(p, mkcmd("guest-fsfreeze-status"), AGENT_TIMEOUT_S, &r) == 0) {
      bool frozen = strcmp(json_object_get_string(r), "thawed") != 0;
      json_object_put(r);
      if (frozen) return -2;
    }
  }
  return 0;
}

/* ---- snapshot -------------------------------------------------------- */

static char *dest_path(const char *dest)
{
  if (!strncmp(dest, "file:", 5))
    dest += 5;
  return vu_strdup(dest);
}

/* Snapshot XML: our disk external into dest (qcow2), every other disk no. */
static char *snap_xml(struct lvpriv *p, const char *dest)
{
  char *xml = virDomainGetXMLDesc(p->dom, 0);
  if (!xml)
    return NULL;
  xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  free(xml);
  char *ed = xml_escape(dest);
  char *out = vu_asprintf("<domainsnapshot><disks><disk name='%s' snapshot='external' type='file'>"
                          "<driver type='qcow2'/><source file='%s'/></disk>", p->target, ed);
  free(ed);
  if (doc) {
    xmlXPathContextPtr xc = xmlXPathNewContext(doc);
    xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)"/domain/devices/disk/target", xc);
    for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
      char *dev = xattr(o->nodesetval->nodeTab[i], "dev");
      if (dev && strcmp(dev, p->target)) {
        char *e = xml_escape(dev);
        char *n = vu_asprintf("%s<disk name='%s' snapshot='no'/>", out, e);
        free(out); free(e); out = n;
      }
      free(dev);
    }
    if (o) xmlXPathFreeObject(o);
    xmlXPathFreeContext(xc);
    xmlFreeDoc(doc);
  }
  char *n = vu_asprintf("%s</disks></domainsnapshot>", out);
  free(out);
  return n;
}

/* Wait (bounded) until the disk's block job is ready (cur == end > 0 and
 * ready='yes' on its <mirror> in the live XML: libvirt refuses to pivot
 * before that). */
static int wait_job_ready(struct lvpriv *p, int timeout_ms)
{
  uint64_t deadline = vu_now_us() + (uint64_t)timeout_ms * 1000u;
  for (;;) {
    virDomainBlockJobInfo bi;
    int r = virDomainGetBlockJobInfo(p->dom, p->target, &bi, 0);
    if (r < 0)
      return verr(VSTOR_E_BACKEND, p->name, "virDomainGetBlockJobInfo");
    if (r == 0)
      return lerr(VSTOR_E_BACKEND, "%s: block job vanished", p->name);
    if (bi.end > 0 && bi.cur == bi.end && lv_parse(p) == 0 && p->has_mirror && p->mirror_ready)
      return 0;
    if (vu_now_us() > deadline)
      return lerr(VSTOR_E_TIMEOUT, "%s: block job not ready after %d ms", p->name, timeout_ms);
    usleep(50000);
  }
}

/* Undo an external overlay: active commit into its backing file, pivot
 * back, remove the overlay. */
static int undo_overlay(struct lvpriv *p, const char *dest)
{
  if (virDomainBlockCommit(p->dom, p->target, NULL, NULL, 0,
                           VIR_DOMAIN_BLOCK_COMMIT_ACTIVE | VIR_DOMAIN_BLOCK_COMMIT_SHALLOW) < 0)
    return verr(VSTOR_E_BACKEND, p->name, "virDomainBlockCommit");
  if (wait_job_ready(p, 60000) < 0 ||
      virDomainBlockJobAbort(p->dom, p->target, VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) < 0) {
    if (!last_code) verr(VSTOR_E_BACKEND, p->name, "virDomainBlockJobAbort(pivot)");
    virDomainBlockJobAbort(p->dom, p->target, 0);   /* leave no commit job behind */
    return -1;
  }
  unlink(dest);
  return 0;
}

static void rep_clear(struct vstor_report *r)
{
  for (size_t i = 0; i < r->nsteps; i++) {
    free(r->steps[i].layer); free(r->steps[i].action); free(r->steps[i].detail);
  }
  free(r->steps); free(r->method);
  memset(r, 0, sizeof *r);
}

/* Append the rbd layer's steps; its "crash-consistent" (the image is in
 * use) is reworded when the guest was frozen around the snapshot. */
static void splice_steps(vstor_report *rep, const struct vstor_report *mid, bool freeze)
{
  for (size_t i = 0; i < mid->nsteps; i++) {
    const char *dt = mid->steps[i].detail ? mid->steps[i].detail : "";
    const char *cc = freeze ? strstr(dt, "(crash-consistent") : NULL;
    if (cc)
      vu_step(rep, mid->steps[i].layer, mid->steps[i].action, mid->steps[i].status,
              mid->steps[i].reversible, "%.*s(guest filesystems frozen)", (int)(cc - dt), dt);
    else
      vu_step(rep, mid->steps[i].layer, mid->steps[i].action, mid->steps[i].status,
              mid->steps[i].reversible, "%s", dt);
  }
}

/* Snapshot of an RBD network disk: guest freeze through the agent (under
 * the guard), rbd_snap_create through the lower (rbd) layer, thaw.  A
 * clone destination (rbd:POOL2/NEW) is made after the thaw from the
 * snapshot (protect + clone): the frozen window holds only the snapshot. */
static int snapshot_rbd(vstor_vol *vol, const char *dest, const struct vstor_opts *o,
                        unsigned flags, vstor_report *rep)
{
  struct lvpriv *p = vol->priv;
  bool dry = flags & VSTOR_DRY_RUN, crash = flags & VSTOR_SNAPSHOT_CRASH_CONSISTENT;
  uint32_t tmo = o && o->freeze_timeout_ms ? o->freeze_timeout_ms : 10000;
  if (!vol->lower)
    return lerr(VSTOR_E_NOTSUP, "%s: the image rbd:%s could not be opened through librbd: %s",
                p->name, p->src_path, p->lower_err ? p->lower_err : "?");
  if (p->has_mirror)
    return lerr(VSTOR_E_BUSY, "%s: a block job is active on the disk", p->name);
  struct rname src, d;
  if (rname_parse("disk source", p->src_path, &src) < 0)
    return -1;
  char *snapname = NULL, *head_dest = NULL, *clone_dest = NULL;
  int rc = -1;
  struct vstor_report scratch = { 0 };
  if (!strncmp(dest, "rbd:", 4)) {
    if (rname_parse("snapshot destination", dest + 4, &d) < 0)
      goto out;
    bool self = !strcmp(d.pool, src.pool) && !strcmp(d.image, src.image) &&
                !strcmp(d.ns ? d.ns : "", src.ns ? src.ns : "");
    if (self) {
      snapname = d.snap ? vu_strdup(d.snap) : NULL;
      head_dest = vu_strdup(dest);
    } else {
      snapname = d.snap ? vu_strdup(d.snap) : vu_asprintf("vstor-clone-%s", d.image);
      clone_dest = vu_strdup(dest);
    }
    free(d.buf);
    if (!snapname) {   /* let the rbd layer word the error */
      vol->lower->ops->snapshot(vol->lower, dest, o, VSTOR_DRY_RUN | VSTOR_SNAPSHOT_CRASH_CONSISTENT, &scratch);
      goto out;
    }
    if (!head_dest)
      head_dest = vu_asprintf("rbd:%s%s%s/%s@%s", src.pool, src.ns ? "/" : "", src.ns ? src.ns : "",
                              src.image, snapname);
  } else {
    snapname = vu_strdup(dest);
    head_dest = vu_strdup(dest);
  }
  /* Check everything before the freeze: a dry run of the rbd layer on the
   * destination as given (name syntax, snapshot or clone exists, pool,
   * layering feature). */
  if (vol->lower->ops->snapshot(vol->lower, dest, o, VSTOR_DRY_RUN | VSTOR_SNAPSHOT_CRASH_CONSISTENT,
                                &scratch) < 0)
    goto out;
  rep_clear(&scratch);
  bool freeze = false;
  if (decide_freeze(p, crash, "RBD snapshot", &freeze) < 0)
    goto out;
  vu_report_method(rep, clone_dest ? "rbd-clone" : "rbd-snapshot");
  size_t s_freeze = rep->nsteps;
  if (freeze)
    vu_step(rep, p->name, "virDomainFSFreeze", VSTOR_STEP_PLANNED, 1,
            "guest agent, window bounded by %u ms (guard thaws)", tmo);
  if (dry) {
    struct vstor_report plan = { 0 };
    int pr = vol->lower->ops->snapshot(vol->lower, head_dest, o,
                                       VSTOR_DRY_RUN | VSTOR_SNAPSHOT_CRASH_CONSISTENT, &plan);
    splice_steps(rep, &plan, freeze);
    rep_clear(&plan);
    if (pr < 0)
      goto out;
  }
  size_t s_thaw = rep->nsteps;
  if (freeze)
    vu_step(rep, p->name, "virDomainFSThaw", VSTOR_STEP_PLANNED, 0, "guest agent");
  if (dry) {
    if (clone_dest)
      vu_step(rep, clone_dest, "rbd_snap_protect + rbd_clone3 (after the thaw)", VSTOR_STEP_PLANNED, 1,
              "writable clone of %s@%s", p->src_path, snapname);
    rc = 0;
    goto out;
  }
  const char *domid = p->uuid ? p->uuid : vol->uri->domain;
  struct vstor_jrec *jr = vstor_host->jrec_begin(vol, "snapshot");
  if (!jr) goto out;
  vstor_host->jrec_put(jr, "conn", p->conn_uri);
  vstor_host->jrec_put(jr, "domain", domid);
  vstor_host->jrec_put(jr, "disk", p->target);
  vstor_host->jrec_put(jr, "rbd_name", p->src_path);
  vstor_host->jrec_put(jr, "rbd_snap", snapname);
  if (rbd_conf(p)) vstor_host->jrec_put(jr, "rbd_conf", rbd_conf(p));
  if (rbd_id(p)) vstor_host->jrec_put(jr, "rbd_id", rbd_id(p));
  struct guard g = { .pid = -1 };
  if (freeze) {
    if (vstor_host->jrec_set(jr, "frozen", "1") < 0 ||
        guard_start(&g, p->conn_uri, domid, tmo) < 0) {
      vstor_host->jrec_end(jr);
      goto out;
    }
    if (virDomainFSFreeze(p->dom, NULL, 0, 0) < 0) {
      verr(VSTOR_E_BACKEND, p->name, "virDomainFSFreeze");
      vu_step_set(rep, s_freeze, VSTOR_STEP_FAILED, last_msg);
      virDomainFSThaw(p->dom, NULL, 0, 0);
      guard_stop(&g);
      vstor_host->jrec_end(jr);
      goto out;
    }
    vu_step_set(rep, s_freeze, VSTOR_STEP_DONE, NULL);
    vstor_fault("libvirt-snapshot-frozen");
  }
  vstor_host->jrec_set(jr, "phase", "snapshot");
  /* steps of the rbd layer go between freeze and thaw */
  struct vstor_report mid = { 0 };
  int sr = vol->lower->ops->snapshot(vol->lower, head_dest, o, VSTOR_SNAPSHOT_CRASH_CONSISTENT, &mid);
  int s_code = 0, s_en = 0;
  char *s_msg = sr < 0 ? vstor_host->error_get(&s_code, &s_en) : NULL;
  if (sr == 0 && (!freeze || vu_now_us() < g.deadline))
    vstor_host->jrec_set(jr, "phase", "snapped");   /* taken inside the window */
  int timed_out = 0;
  if (freeze) {
    int th = thaw_guarded(p, &g, rep, &timed_out);
    if (th == -2) {
      vu_step_set(rep, s_thaw, VSTOR_STEP_FAILED, "guest still frozen: run vstor recover");
      free(s_msg); rep_clear(&mid);
      lerr(VSTOR_E_BACKEND, "%s: virDomainFSThaw failed; the journal keeps the freeze for recover", p->name);
      goto out;      /* jrec kept: recover thaws */
    }
    vstor_host->jrec_set(jr, "frozen", "0");
  }
  /* splice the rbd layer's steps in before the thaw step */
  {
    size_t before = rep->nsteps;
    splice_steps(rep, &mid, freeze);
    if (freeze) {   /* rotate: thaw step last */
      struct vstor_step t = rep->steps[s_thaw];
      memmove(&rep->steps[s_thaw], &rep->steps[s_thaw + 1], (rep->nsteps - s_thaw - 1) * sizeof t);
      rep->steps[rep->nsteps - 1] = t;
      s_thaw = rep->nsteps - 1;
      vu_step_set(rep, s_thaw, VSTOR_STEP_DONE, timed_out ? "thawed by the guard (window ran out)" : NULL);
    }
    (void)before;
  }
  int lower_consistency = mid.consistency;
  rep_clear(&mid);
  if (sr < 0) {
    vstor_host->error_set(s_code, s_en, s_msg);
    free(s_msg);
    vstor_host->jrec_end(jr);
    goto out;
  }
  if (timed_out) {
    int u = rbd_remove_snap(rbd_conf(p), rbd_id(p), p->src_path, snapname);
    char *sl = vu_asprintf("%s@%s", p->src_path, snapname);
    vu_step(rep, sl, "rbd_snap_remove", u < 0 ? VSTOR_STEP_FAILED : VSTOR_STEP_DONE, 0,
            "%s", u < 0 ? last_msg : "frozen window ran out: the snapshot is not consistent, removed");
    free(sl);
    if (u == 0) vstor_host->jrec_end(jr);
    lerr(VSTOR_E_TIMEOUT, "%s: snapshot not taken within the %u ms freeze window (%s, guest thawed)",
         p->name, tmo, u == 0 ? "removed again" : "could not be removed: run vstor recover");
    goto out;
  }
  rep->consistency = freeze ? VSTOR_CONSISTENT_FS : lower_consistency;
  if (clone_dest) {
    /* protect + clone from the snapshot, the guest running again */
    vstor_host->jrec_set(jr, "phase", "clone");
    char *su = rbd_uri_of(p, head_dest + 4);
    vstor_vol *sv = NULL;
    int cr = vstor_host->open_lower(vol->ctx, su, 0, &sv);
    free(su);
    if (cr == 0) {
      /* the rbd layer reports the clone alone (consistency NONE, nothing
       * frozen): keep what the snapshot under freeze was */
      int cons = rep->consistency;
      uint64_t fus = rep->frozen_us;
      cr = sv->ops->snapshot(sv, clone_dest, o, 0, rep);
      rep->consistency = cons;
      rep->frozen_us = fus;
      vu_report_method(rep, "rbd-clone");
      vstor_host->close_lower(sv);
    }
    if (cr < 0) {
      int c_code = 0, c_en = 0;
      char *c_msg = vstor_host->error_get(&c_code, &c_en);
      int u = rbd_remove_snap(rbd_conf(p), rbd_id(p), p->src_path, snapname);
      char *sl = vu_asprintf("%s@%s", p->src_path, snapname);
      vu_step(rep, sl, "rbd_snap_remove", u < 0 ? VSTOR_STEP_FAILED : VSTOR_STEP_UNDONE, 0,
              "%s", u < 0 ? last_msg : "clone failed: snapshot removed again");
      free(sl);
      if (u == 0) vstor_host->jrec_end(jr);
      rep->consistency = VSTOR_CONSISTENT_NONE;
      vstor_host->error_set(c_code, c_en, c_msg);
      free(c_msg);
      goto out;
    }
  }
  vstor_host->jrec_end(jr);
  lv_layers(vol);
  rc = 0;
out:
  rep_clear(&scratch);
  free(src.buf); free(snapname); free(head_dest); free(clone_dest);
  return rc;
}

static int lv_snapshot(vstor_vol *vol, const char *dest_in, const struct vstor_opts *o,
                       unsigned flags, vstor_report *rep)
{
  struct lvpriv *p = vol->priv;
  bool dry = flags & VSTOR_DRY_RUN, crash = flags & VSTOR_SNAPSHOT_CRASH_CONSISTENT;
  uint32_t tmo = o && o->freeze_timeout_ms ? o->freeze_timeout_ms : 10000;
  if (lv_parse(p) < 0)
    return -1;
  if (is_rbd(p))
    return snapshot_rbd(vol, dest_in, o, flags, rep);
  if (is_net(p))
    return lerr(VSTOR_E_NOTSUP, "%s: network disk protocol '%s' is not supported (rbd only)", p->name,
                p->net_proto ? p->net_proto : "?");
  char *dest = dest_path(dest_in);
  int rc = -1;
  struct stat st;
  if (dest[0] != '/') {
    lerr(VSTOR_E_INVAL, "%s: snapshot destination '%s' is not an absolute path", p->name, dest_in);
    goto out;
  }
  if (lstat(dest, &st) == 0) {
    lerr(VSTOR_E_EXIST, "%s: snapshot destination %s already exists", p->name, dest);
    goto out;
  }
  if (strcmp(p->src_type, "file")) {
    lerr(VSTOR_E_NOTSUP, "%s: external snapshots need a file source (have %s)", p->name, p->src_type);
    goto out;
  }
  if (p->has_mirror) {
    lerr(VSTOR_E_BUSY, "%s: a block job is active on the disk", p->name);
    goto out;
  }
  bool freeze = false;
  if (decide_freeze(p, crash, "snapshot", &freeze) < 0)
    goto out;
  char *sx = snap_xml(p, dest);
  if (!sx) {
    verr(VSTOR_E_BACKEND, p->name, "virDomainGetXMLDesc");
    goto out;
  }
  size_t s_freeze = rep->nsteps;
  if (freeze)
    vu_step(rep, p->name, "virDomainFSFreeze", VSTOR_STEP_PLANNED, 1,
            "guest agent, window bounded by %u ms (guard thaws)", tmo);
  size_t s_snap = rep->nsteps;
  vu_step(rep, p->name, "external disk-only snapshot", VSTOR_STEP_PLANNED, 1,
          "domain writes into %s (qcow2 overlay); %s becomes the point-in-time image", dest, p->src_path);
  size_t s_thaw = rep->nsteps;
  if (freeze)
    vu_step(rep, p->name, "virDomainFSThaw", VSTOR_STEP_PLANNED, 0, "guest agent");
  vu_report_method(rep, "external-overlay");
  if (dry) {
    free(sx);
    rc = 0;
    goto out;
  }
  struct vstor_jrec *jr = vstor_host->jrec_begin(vol, "snapshot");
  if (!jr) { free(sx); goto out; }
  vstor_host->jrec_set(jr, "conn", p->conn_uri);
  vstor_host->jrec_set(jr, "domain", p->uuid ? p->uuid : vol->uri->domain);
  vstor_host->jrec_set(jr, "disk", p->target);
  vstor_host->jrec_set(jr, "dest", dest);
  vstor_host->jrec_set(jr, "source", p->src_path);
  struct guard g = { .pid = -1 };
  unsigned sflags = VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
                    | VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC;
  if (freeze) {
    if (vstor_host->jrec_set(jr, "frozen", "1") < 0 ||
        guard_start(&g, p->conn_uri, p->uuid ? p->uuid : vol->uri->domain, tmo) < 0) {
      vstor_host->jrec_end(jr); free(sx);
      goto out;
    }
    if (virDomainFSFreeze(p->dom, NULL, 0, 0) < 0) {
      verr(VSTOR_E_BACKEND, p->name, "virDomainFSFreeze");
      vu_step_set(rep, s_freeze, VSTOR_STEP_FAILED, last_msg);
      virDomainFSThaw(p->dom, NULL, 0, 0);
      guard_stop(&g);
      vstor_host->jrec_end(jr); free(sx);
      goto out;
    }
    vu_step_set(rep, s_freeze, VSTOR_STEP_DONE, NULL);
    vstor_fault("libvirt-snapshot-frozen");
  }
  vstor_host->jrec_set(jr, "phase", "snapshot");
  virDomainSnapshotPtr snap = virDomainSnapshotCreateXML(p->dom, sx, sflags);
  free(sx);
  int snap_err = 0;
  char *snap_msg = NULL;
  if (!snap) {
    verr(VSTOR_E_BACKEND, p->name, "virDomainSnapshotCreateXML");
    snap_err = last_code;
    snap_msg = vu_strdup(last_msg);
  } else {
    virDomainSnapshotFree(snap);
  }
  int timed_out = 0;
  if (freeze) {
    int th = thaw_guarded(p, &g, rep, &timed_out);
    if (th == -2) {
      vu_step_set(rep, s_thaw, VSTOR_STEP_FAILED, "guest still frozen: run vstor recover");
      free(snap_msg);
      lerr(VSTOR_E_BACKEND, "%s: virDomainFSThaw failed; the journal keeps the freeze for recover", p->name);
      goto out;      /* jrec kept: recover thaws */
    }
    vstor_host->jrec_set(jr, "frozen", "0");
    vu_step_set(rep, s_thaw, VSTOR_STEP_DONE, timed_out ? "thawed by the guard (window ran out)" : NULL);
  }
  if (snap_err) {
    vu_step_set(rep, s_snap, VSTOR_STEP_FAILED, snap_msg);
    if (lstat(dest, &st) == 0 && lv_parse(p) == 0 && p->src_path && strcmp(p->src_path, dest))
      unlink(dest);
    lerr(snap_err, "%s", snap_msg);
    free(snap_msg);
    vstor_host->jrec_end(jr);
    goto out;
  }
  if (timed_out) {
    vu_step_set(rep, s_snap, VSTOR_STEP_UNDONE, "frozen window ran out: overlay committed back and removed");
    last_code = 0;
    int u = undo_overlay(p, dest);
    char *why = u < 0 ? vu_strdup(last_msg) : NULL;
    vstor_host->jrec_end(jr);
    lv_layers(vol);          /* may leave an error of its own: set ours last */
    if (u < 0) {
      vu_step_set(rep, s_snap, VSTOR_STEP_DONE, "frozen window ran out and the undo failed: not consistent");
      rep->consistency = VSTOR_CONSISTENT_CRASH;
      lerr(VSTOR_E_TIMEOUT, "%s: the %u ms freeze window ran out; the overlay %s could not be committed "
           "back (%s): the domain writes into it, the snapshot is not consistent", p->name, tmo, dest, why);
      free(why);
      goto out;
    }
    lerr(VSTOR_E_TIMEOUT, "%s: snapshot not taken within the %u ms freeze window (abandoned, guest thawed)",
              p->name, tmo);
    goto out;
  }
  vu_step_set(rep, s_snap, VSTOR_STEP_DONE, NULL);
  rep->consistency = freeze ? VSTOR_CONSISTENT_FS : p->running ? VSTOR_CONSISTENT_CRASH
                                                                : VSTOR_CONSISTENT_IDLE;
  vstor_host->jrec_end(jr);
  lv_layers(vol);
  rc = 0;
out:
  free(dest);
  return rc;
}

/* ---- mirror ------------------------------------------------------------ */

struct lvjob {
  virConnectPtr conn;
  virDomainPtr dom;
  char *target, *name, *dest, *fmt, *conn_uri, *domid;
  int cb_id;
  bool created;          /* we created dest (remove it on cancel) */
  /* RBD destination: dest is POOL[/NS]/IMAGE */
  bool rbd;
  char *src_name, *rbd_conf, *rbd_id, *dest_xml;
  uint64_t size;
  struct vstor_jrec *jr;
  pthread_mutex_t mu;
  int ev_status;         /* last BLOCK_JOB_2 status for our disk, -1 none */
  int timer;
};

static void job_event_cb(virConnectPtr c, virDomainPtr d, const char *disk, int type,
                         int status, void *opaque)
{
  (void)c; (void)d;
  struct lvjob *j = opaque;
  if (type != VIR_DOMAIN_BLOCK_JOB_TYPE_COPY || !disk || strcmp(disk, j->target))
    return;
  pthread_mutex_lock(&j->mu);
  j->ev_status = status;
  pthread_mutex_unlock(&j->mu);
}

static void noop_timer(int t, void *o) { (void)t; (void)o; }

/* Format and virtual size of an image file (qemu-img info). */
static int img_info(const char *path, char **fmt, uint64_t *sz)
{
  const char *argv[] = { "qemu-img", "info", "-U", "--output=json", path, NULL };
  char *out = NULL, *err = NULL;
  int st = vu_run(argv, &out, &err);
  int rc = -1;
  if (st == 0) {
    json_object *j = json_tokener_parse(out);
    json_object *v = NULL, *f = NULL;
    if (j && json_object_object_get_ex(j, "virtual-size", &v) &&
        json_object_object_get_ex(j, "format", &f)) {
      *sz = (uint64_t)json_object_get_int64(v);
      *fmt = vu_strdup(json_object_get_string(f));
      rc = 0;
    }
    if (j) json_object_put(j);
  }
  if (rc < 0 && st >= 0)
    lerr(VSTOR_E_BACKEND, "qemu-img info %s: %s", path, err && *err ? err : "no format/virtual-size");
  free(out); free(err);
  return rc;
}

/* Mirror of an RBD network disk onto another RBD image: the guest has the
 * image open (RBD live migration refuses watchers), so QEMU copies it:
 * libvirt block copy with REUSE_EXT onto an image we create first with the
 * source's size, features and object size (libvirt creates no network
 * destination itself).  The destination XML carries the source's hosts,
 * auth and config, so QEMU reaches it the same way. */
static int mirror_prepare_rbd(vstor_vol *vol, vstor_job *job, unsigned flags, vstor_report *rep)
{
  struct lvpriv *p = vol->priv;
  struct rname d = { 0 };
  int rc = -1;
  if (flags & VSTOR_MIRROR_VERIFY)
    return lerr(VSTOR_E_NOTSUP, "%s: VERIFY is not supported on a live QEMU mirror "
                "(QEMU keeps the copy in sync until pivot)", p->name);
  if (strncmp(job->dest, "rbd:", 4))
    return lerr(VSTOR_E_INVAL, "%s: mirror destination '%s' of an RBD disk must be "
                "rbd:POOL[/NAMESPACE]/IMAGE", p->name, job->dest);
  if (rname_parse("mirror destination", job->dest + 4, &d) < 0)
    return -1;
  char *dname = vu_asprintf("%s%s%s/%s", d.pool, d.ns ? "/" : "", d.ns ? d.ns : "", d.image);
  if (d.snap) {
    lerr(VSTOR_E_INVAL, "%s: mirror destination %s is a snapshot, not an image", p->name, job->dest);
    goto out;
  }
  if (!strcmp(dname, p->src_path)) {
    lerr(VSTOR_E_INVAL, "%s: mirror destination %s is the disk's own image", p->name, job->dest);
    goto out;
  }
  if (!p->running) {
    lerr(VSTOR_E_STATE, "%s: domain is not running (block copy needs a live domain; an unused "
         "image moves with RBD live migration: rbd:%s)", p->name, p->src_path);
    goto out;
  }
  if (p->has_mirror) {
    lerr(VSTOR_E_BUSY, "%s: a block job is already active on the disk", p->name);
    goto out;
  }
  if (strcmp(p->fmt, "raw")) {
    lerr(VSTOR_E_NOTSUP, "%s: RBD disk with format '%s' is not supported (raw only)", p->name, p->fmt);
    goto out;
  }
  uint64_t cap = 0;
  if (lv_size(vol, &cap) < 0)
    goto out;
  bool reuse = flags & VSTOR_MIRROR_REUSE_DEST;
#if HAVE_RBD
  {
    rados_t cl;
    if (rc_connect(rbd_conf(p), rbd_id(p), &cl) < 0)
      goto out;
    int ex = rc_exists(cl, &d);
    uint64_t dsz = 0;
    if (ex == 1 && reuse) {
      rados_ioctx_t io;
      rbd_image_t img;
      if (rc_ioctx(cl, &d, &io) == 0) {
        if (rbd_open_read_only(io, d.image, &img, NULL) == 0) {
          rbd_get_size(img, &dsz);
          rbd_close(img);
        }
        rados_ioctx_destroy(io);
      }
    }
    rados_shutdown(cl);
    if (ex < 0)
      goto out;
    if (ex == 1 && !reuse) {
      lerr(VSTOR_E_EXIST, "%s: mirror destination %s already exists", p->name, job->dest);
      goto out;
    }
    if (ex == 0 && reuse) {
      lerr(VSTOR_E_NOENT, "%s: REUSE_DEST but %s does not exist", p->name, job->dest);
      goto out;
    }
    if (ex == 1 && dsz != cap) {
      lerr(VSTOR_E_INVAL, "%s: reused destination %s is %llu bytes, the disk is %llu", p->name,
           job->dest, (unsigned long long)dsz, (unsigned long long)cap);
      goto out;
    }
  }
#else
  if (!reuse) {
    lerr(VSTOR_E_NOTSUP, "%s: the libvirt module was built without librbd: it cannot create %s "
         "(create it with the source's size and pass REUSE_DEST)", p->name, job->dest);
    goto out;
  }
#endif
  if (!reuse)
    vu_step(rep, dname, "rbd_create2", VSTOR_STEP_PLANNED, 1, "%llu bytes, the source's features "
            "and object size", (unsigned long long)cap);
  vu_step(rep, p->name, "virDomainBlockCopy (REUSE_EXT, network rbd)", VSTOR_STEP_PLANNED, 1,
          "%s copy of rbd:%s to rbd:%s%s%s", flags & VSTOR_MIRROR_SHALLOW ? "shallow" : "full",
          p->src_path, dname, reuse ? ", reusing it" : "",
          p->persistent ? ", transient job (domain stays defined)" : "");
  vu_step(rep, p->name, "wait READY", VSTOR_STEP_PLANNED, 0, "BLOCK_JOB_2 events + virDomainGetBlockJobInfo");
  vu_report_method(rep, "libvirt-blockcopy-rbd");
  if (flags & VSTOR_DRY_RUN) {
    rc = 0;
    goto out;
  }
  struct lvjob *j = vu_calloc(1, sizeof *j);
  pthread_mutex_init(&j->mu, NULL);
  j->ev_status = -1;
  j->cb_id = -1;
  j->timer = -1;
  j->target = vu_strdup(p->target);
  j->name = vu_strdup(p->name);
  j->dest = dname; dname = NULL;
  j->fmt = vu_strdup("raw");
  j->conn_uri = vu_strdup(p->conn_uri);
  j->domid = vu_strdup(p->uuid ? p->uuid : vol->uri->domain);
  j->created = !reuse;   /* made in job_run, right before the copy */
  j->rbd = true;
  j->src_name = vu_strdup(p->src_path);
  j->size = cap;
  j->rbd_conf = rbd_conf(p) ? vu_strdup(rbd_conf(p)) : NULL;
  j->rbd_id = rbd_id(p) ? vu_strdup(rbd_id(p)) : NULL;
  char *ed = xml_escape(j->dest), *auth = vu_strdup("");
  if (p->auth_user) {
    char *eu = xml_escape(p->auth_user);
    char *es = p->secret_uuid ? xml_escape(p->secret_uuid) : xml_escape(p->secret_usage ? p->secret_usage : "");
    free(auth);
    auth = vu_asprintf("<auth username='%s'><secret type='ceph' %s='%s'/></auth>", eu,
                       p->secret_uuid ? "uuid" : "usage", es);
    free(eu); free(es);
  }
  char *cfg = p->cfg_file ? xml_escape(p->cfg_file) : NULL;
  j->dest_xml = vu_asprintf("<disk type='network'><driver type='raw'/><source protocol='rbd' name='%s'>"
                            "%s%s%s%s%s</source></disk>", ed, p->net_hosts ? p->net_hosts : "", auth,
                            cfg ? "<config file='" : "", cfg ? cfg : "", cfg ? "'/>" : "");
  free(ed); free(auth); free(cfg);
  job->priv = j;
  rc = 0;
out:
  free(d.buf);
  free(dname);
  return rc;
}

static int lv_mirror_prepare(vstor_vol *vol, vstor_job *job, unsigned flags, vstor_report *rep)
{
  struct lvpriv *p = vol->priv;
  if (lv_parse(p) < 0)
    return -1;
  if (is_rbd(p))
    return mirror_prepare_rbd(vol, job, flags, rep);
  if (is_net(p))
    return lerr(VSTOR_E_NOTSUP, "%s: network disk protocol '%s' is not supported (rbd only)", p->name,
                p->net_proto ? p->net_proto : "?");
  char *dest = dest_path(job->dest);
  int rc = -1;
  struct stat st;
  if (flags & VSTOR_MIRROR_VERIFY) {
    lerr(VSTOR_E_NOTSUP, "%s: VERIFY is not supported on a live QEMU mirror "
              "(QEMU keeps the copy in sync until pivot)", p->name);
    goto out;
  }
  if (dest[0] != '/') {
    lerr(VSTOR_E_INVAL, "%s: mirror destination '%s' is not an absolute path", p->name, job->dest);
    goto out;
  }
  if (!p->running) {
    lerr(VSTOR_E_STATE, "%s: domain is not running (block copy needs a live domain)", p->name);
    goto out;
  }
  if (p->has_mirror) {
    lerr(VSTOR_E_BUSY, "%s: a block job is already active on the disk", p->name);
    goto out;
  }
  if (strcmp(p->src_type, "file") && strcmp(p->src_type, "block")) {
    lerr(VSTOR_E_NOTSUP, "%s: disk type '%s' is not supported", p->name, p->src_type);
    goto out;
  }
  uint64_t cap = 0;
  if (lv_size(vol, &cap) < 0)
    goto out;
  bool exists = stat(dest, &st) == 0;
  if (exists && !(flags & VSTOR_MIRROR_REUSE_DEST)) {
    lerr(VSTOR_E_EXIST, "%s: mirror destination %s already exists", p->name, dest);
    goto out;
  }
  if (!exists && (flags & VSTOR_MIRROR_REUSE_DEST)) {
    lerr(VSTOR_E_NOENT, "%s: REUSE_DEST but %s does not exist", p->name, dest);
    goto out;
  }
  char *dfmt = NULL;
  if (exists) {
    uint64_t dsz = 0;
    int r = S_ISBLK(st.st_mode) ? vu_blk_size(dest, &dsz) : img_info(dest, &dfmt, &dsz);
    if (r < 0)
      goto out;
    if (dsz != cap) {
      lerr(VSTOR_E_INVAL, "%s: reused destination %s is %llu bytes, the disk is %llu",
                p->name, dest, (unsigned long long)dsz, (unsigned long long)cap);
      free(dfmt);
      goto out;
    }
  } else {
    char *dir = vu_strdup(dest);
    char *sl = strrchr(dir, '/');
    if (sl == dir) sl[1] = 0; else *sl = 0;
    uint64_t fr = 0;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
      lerr(VSTOR_E_NOENT, "%s: destination directory %s does not exist", p->name, dir);
      free(dir);
      goto out;
    }
    if (vu_fs_free(dir, &fr) == 0 && !(flags & VSTOR_MIRROR_SHALLOW)) {
      virDomainBlockInfo bi;
      if (virDomainGetBlockInfo(p->dom, p->target, &bi, 0) == 0 && bi.allocation > fr) {
        lerr(VSTOR_E_NOSPC, "%s: %s has %llu bytes free, the copy needs about %llu",
                  p->name, dir, (unsigned long long)fr, (unsigned long long)bi.allocation);
        free(dir);
        goto out;
      }
    }
    free(dir);
  }
  /* Format of the copy: a reused destination's own, else from its name
   * (.qcow2 / .raw / .img), else the source's format. */
  const char *ext = strrchr(dest, '.');
  char *cfmt = vu_strdup(dfmt ? dfmt
                         : ext && !strcmp(ext, ".qcow2") ? "qcow2"
                         : ext && (!strcmp(ext, ".raw") || !strcmp(ext, ".img")) ? "raw" : p->fmt);
  vu_step(rep, p->name, "virDomainBlockCopy", VSTOR_STEP_PLANNED, 1, "%s copy to %s (%s)%s%s",
          flags & VSTOR_MIRROR_SHALLOW ? "shallow" : "full", dest, cfmt,
          exists ? ", reusing it" : "", p->persistent ? ", transient job (domain stays defined)" : "");
  vu_step(rep, p->name, "wait READY", VSTOR_STEP_PLANNED, 0, "BLOCK_JOB_2 events + virDomainGetBlockJobInfo");
  vu_report_method(rep, "libvirt-blockcopy");
  if (flags & VSTOR_DRY_RUN) {
    free(dfmt); free(cfmt);
    rc = 0;
    goto out;
  }
  struct lvjob *j = vu_calloc(1, sizeof *j);
  pthread_mutex_init(&j->mu, NULL);
  j->ev_status = -1;
  j->cb_id = -1;
  j->timer = -1;
  j->target = vu_strdup(p->target);
  j->name = vu_strdup(p->name);
  j->dest = dest; dest = NULL;
  j->fmt = cfmt;
  j->conn_uri = vu_strdup(p->conn_uri);
  j->domid = vu_strdup(p->uuid ? p->uuid : vol->uri->domain);
  j->created = !exists;
  free(dfmt);
  job->priv = j;
  rc = 0;
out:
  free(dest);
  return rc;
}

static int job_info(struct lvjob *j, virDomainBlockJobInfo *bi)
{
  int r = virDomainGetBlockJobInfo(j->dom, j->target, bi, VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES);
  if (r < 0)
    verr(VSTOR_E_BACKEND, j->name, "virDomainGetBlockJobInfo");
  return r;
}

/* The mirror element of the live XML says ready='yes'. */
static bool xml_ready(struct lvjob *j)
{
  struct lvpriv tmp = { .dom = j->dom, .target = j->target, .name = j->name };
  bool r = lv_parse(&tmp) == 0 && tmp.has_mirror && tmp.mirror_ready;
  parse_free(&tmp);
  return r;
}

/* Remove an RBD image QEMU may still be closing (a watcher for a moment
 * after the block job ended): bounded retries on BUSY. */
static int rbd_remove_retry(const char *conf, const char *id, const char *name)
{
  for (int i = 0;; i++) {
    last_code = 0;
    int r = rbd_remove_image(conf, id, name);
    if (r == 0 || last_code != VSTOR_E_BUSY || i >= 50)
      return r;
    usleep(200000);
  }
}

static void remove_dest(struct lvjob *j)
{
  if (!j->created)
    return;
  struct lvpriv tmp = { .dom = j->dom, .target = j->target, .name = j->name };
  if (lv_parse(&tmp) == 0 && tmp.src_path && strcmp(tmp.src_path, j->dest) && !tmp.has_mirror) {
    if (j->rbd) {
      int code = 0, en = 0;
      char *msg = vstor_host->error_get(&code, &en);   /* keep the caller's error */
      if (rbd_remove_retry(j->rbd_conf, j->rbd_id, j->dest) == 0)
        j->created = false;
      vstor_host->error_set(code, en, msg);
      free(msg);
    } else {
      unlink(j->dest);
    }
  }
  parse_free(&tmp);
}

static int lv_job_run(vstor_job *job)
{
  struct lvjob *j = job->priv;
  if (!(j->conn = lv_connect(j->conn_uri)) || !(j->dom = lv_lookup(j->conn, j->domid)))
    return -1;
  if (events_ok) {
    j->cb_id = virConnectDomainEventRegisterAny(j->conn, j->dom, VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2,
                                                VIR_DOMAIN_EVENT_CALLBACK(job_event_cb), j, NULL);
    j->timer = virEventAddTimeout(100, noop_timer, NULL, NULL);
    vstor_log(job->vol->ctx, VSTOR_LOG_DEBUG, "%s: block-job events: callback %d, timer %d",
              j->name, j->cb_id, j->timer);
  }
  int pers = virDomainIsPersistent(j->dom);
  unsigned f = 0;
  if (job->flags & VSTOR_MIRROR_SHALLOW) f |= VIR_DOMAIN_BLOCK_COPY_SHALLOW;
  if (job->flags & VSTOR_MIRROR_REUSE_DEST) f |= VIR_DOMAIN_BLOCK_COPY_REUSE_EXT;
  if (pers == 1) f |= VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB;
  char *ed = xml_escape(j->dest);
  struct stat st;
  bool blk = !j->rbd && stat(j->dest, &st) == 0 && S_ISBLK(st.st_mode);
  if (j->rbd) f |= VIR_DOMAIN_BLOCK_COPY_REUSE_EXT;   /* libvirt makes no network image */
  char *dx = j->rbd ? vu_strdup(j->dest_xml) : blk ? vu_asprintf("<disk type='block'><driver type='%s'/><source dev='%s'/></disk>", j->fmt, ed)
                 : vu_asprintf("<disk type='file'><driver type='%s'/><source file='%s'/></disk>", j->fmt, ed);
  free(ed);
  virTypedParameterPtr params = NULL;
  int np = 0, maxp = 0;
  uint64_t speed = vstor_host->job_speed(job);
  if (speed)
    virTypedParamsAddULLong(&params, &np, &maxp, VIR_DOMAIN_BLOCK_COPY_BANDWIDTH, speed);
  j->jr = vstor_host->jrec_begin(job->vol, "mirror");
  if (!j->jr) { free(dx); virTypedParamsFree(params, np); return -1; }
  vstor_host->jrec_set(j->jr, "conn", j->conn_uri);
  vstor_host->jrec_set(j->jr, "domain", j->domid);
  vstor_host->jrec_set(j->jr, "disk", j->target);
  vstor_host->jrec_set(j->jr, "dest", j->dest);
  if (j->rbd) {
    vstor_host->jrec_put(j->jr, "net", "rbd");
    if (j->rbd_conf) vstor_host->jrec_put(j->jr, "rbd_conf", j->rbd_conf);
    if (j->rbd_id) vstor_host->jrec_put(j->jr, "rbd_id", j->rbd_id);
  }
  vstor_host->jrec_set(j->jr, "created", j->created ? "1" : "0");
#if HAVE_RBD
  if (j->rbd && j->created) {
    struct rname sn, dn;
    int cr = -1;
    if (rname_parse("disk source", j->src_name, &sn) == 0) {
      if (rname_parse("mirror destination", j->dest, &dn) == 0) {
        rados_t cl;
        if (rc_connect(j->rbd_conf, j->rbd_id, &cl) == 0) {
          cr = rc_create_like(cl, &sn, &dn, j->size);
          rados_shutdown(cl);
        }
        free(dn.buf);
      }
      free(sn.buf);
    }
    if (cr < 0) {
      j->created = false;     /* EXIST (made meanwhile) or failed: nothing of ours */
      free(dx); virTypedParamsFree(params, np);
      int code = 0, en = 0;
      char *msg = vstor_host->error_get(&code, &en);
      vstor_host->jrec_end(j->jr); j->jr = NULL;
      vstor_host->error_set(code, en, msg);
      free(msg);
      return -1;
    }
  }
#endif
  int r = virDomainBlockCopy(j->dom, j->target, dx, params, np, f);
  free(dx);
  virTypedParamsFree(params, np);
  if (r < 0) {
    verr(VSTOR_E_BACKEND, j->name, "virDomainBlockCopy");
    remove_dest(j);
    vstor_host->jrec_end(j->jr); j->jr = NULL;
    return -1;
  }
  vstor_host->jrec_set(j->jr, "phase", "copying");
  uint64_t cur_speed = speed;
  for (;;) {
    /* Dispatch pending BLOCK_JOB_2 events first (the 100 ms timer bounds
     * the wait), then look at the job. */
    if (events_ok)
      virEventRunDefaultImpl();
    else
      usleep(100000);
    if (vstor_host->job_cancelled(job)) {
      virDomainBlockJobAbort(j->dom, j->target, 0);
      remove_dest(j);
      return lerr(VSTOR_E_CANCELLED, "%s: mirror to %s cancelled", j->name, j->dest);
    }
    uint64_t sp = vstor_host->job_speed(job);
    if (sp != cur_speed) {
      if (virDomainBlockJobSetSpeed(j->dom, j->target, sp, VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES) < 0)
        vstor_log(job->vol->ctx, VSTOR_LOG_WARN, "%s: virDomainBlockJobSetSpeed failed", j->name);
      cur_speed = sp;
    }
    pthread_mutex_lock(&j->mu);
    int ev = j->ev_status;
    pthread_mutex_unlock(&j->mu);
    if (ev == VIR_DOMAIN_BLOCK_JOB_FAILED || ev == VIR_DOMAIN_BLOCK_JOB_CANCELED) {
      remove_dest(j);
      vstor_host->jrec_end(j->jr); j->jr = NULL;
      return lerr(VSTOR_E_BACKEND, "%s: block copy to %s %s (block job event)", j->name, j->dest,
                       ev == VIR_DOMAIN_BLOCK_JOB_FAILED ? "failed" : "was cancelled outside libvstor");
    }
    virDomainBlockJobInfo bi;
    int ir = job_info(j, &bi);
    if (ir < 0)
      return -1;
    if (ir == 0) {
      if (events_ok) {   /* the event saying why may be queued: dispatch it */
        virEventRunDefaultImpl();
        pthread_mutex_lock(&j->mu);
        ev = j->ev_status;
        pthread_mutex_unlock(&j->mu);
      }
      remove_dest(j);
      vstor_host->jrec_end(j->jr); j->jr = NULL;
      return lerr(VSTOR_E_BACKEND, "%s: block copy to %s %s before it was in sync", j->name, j->dest,
                  ev == VIR_DOMAIN_BLOCK_JOB_FAILED ? "failed in QEMU (BLOCK_JOB_2 event: FAILED; "
                                                      "see the domain log: I/O error, no space?)"
                  : ev == VIR_DOMAIN_BLOCK_JOB_CANCELED ? "was cancelled outside libvstor"
                  : "ended");
    }
    /* QEMU reports cur=end=0 before it measured the work: not started. */
    if (bi.end > 0)
      vstor_host->job_progress(job, bi.cur, bi.end);
    else
      vstor_host->job_progress(job, 0, 0);
    bool polled_ready = ev != VIR_DOMAIN_BLOCK_JOB_READY && bi.end > 0 && bi.cur == bi.end && xml_ready(j);
    if (polled_ready && events_ok) {
      /* libvirt queued its event while we asked: dispatch it (0 ms timer). */
      virEventRunDefaultImpl();
      pthread_mutex_lock(&j->mu);
      ev = j->ev_status;
      pthread_mutex_unlock(&j->mu);
    }
    if (ev == VIR_DOMAIN_BLOCK_JOB_READY || polled_ready) {
      vstor_log(job->vol->ctx, VSTOR_LOG_INFO, "%s: copy to %s READY (%s)", j->name, j->dest,
                ev == VIR_DOMAIN_BLOCK_JOB_READY ? "BLOCK_JOB_2 event" : "job info + mirror ready='yes'");
      vstor_host->jrec_set(j->jr, "phase", "ready");
      return 0;
    }
  }
}

static int lv_job_pivot(vstor_job *job)
{
  struct lvjob *j = job->priv;
  if (!xml_ready(j))
    return lerr(VSTOR_E_STATE, "%s: the copy to %s is not READY; pivot refused", j->name, j->dest);
  vstor_fault("libvirt-before-pivot");
  if (virDomainBlockJobAbort(j->dom, j->target, VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) < 0)
    return verr(VSTOR_E_BACKEND, j->name, "virDomainBlockJobAbort(pivot)");
  struct lvpriv tmp = { .dom = j->dom, .target = j->target, .name = j->name };
  int rc = 0;
  if (lv_parse(&tmp) < 0 || !tmp.src_path || strcmp(tmp.src_path, j->dest))
    rc = lerr(VSTOR_E_BACKEND, "%s: after pivot the disk source is %s, not %s", j->name,
                   tmp.src_path ? tmp.src_path : "?", j->dest);
  parse_free(&tmp);
  if (rc == 0) {
    if (j->jr) { vstor_host->jrec_end(j->jr); j->jr = NULL; }
    lv_layers(job->vol);
  }
  return rc;
}

static int lv_job_complete(vstor_job *job)
{
  struct lvjob *j = job->priv;
  if (!xml_ready(j))
    return lerr(VSTOR_E_STATE, "%s: the copy to %s is not READY; complete refused", j->name, j->dest);
  /* Abort after READY: QEMU completes the copy as a point-in-time image. */
  if (virDomainBlockJobAbort(j->dom, j->target, 0) < 0)
    return verr(VSTOR_E_BACKEND, j->name, "virDomainBlockJobAbort");
  if (j->jr) { vstor_host->jrec_end(j->jr); j->jr = NULL; }
  return 0;
}

static int lv_job_cancel(vstor_job *job)
{
  struct lvjob *j = job->priv;
  if (!j)
    return 0;
  if (j->dom) {
    virDomainBlockJobInfo bi;
    int r = virDomainGetBlockJobInfo(j->dom, j->target, &bi, 0);
    if (r > 0 && virDomainBlockJobAbort(j->dom, j->target, 0) < 0)
      return verr(VSTOR_E_BACKEND, j->name, "virDomainBlockJobAbort");
    remove_dest(j);
  }
  if (j->jr) { vstor_host->jrec_end(j->jr); j->jr = NULL; }
  return 0;
}

static void lv_job_free(vstor_job *job)
{
  struct lvjob *j = job->priv;
  if (!j)
    return;
  if (j->timer >= 0) virEventRemoveTimeout(j->timer);
  if (j->cb_id >= 0) virConnectDomainEventDeregisterAny(j->conn, j->cb_id);
  if (j->dom) virDomainFree(j->dom);
  if (j->conn) virConnectClose(j->conn);
  /* a record still open here belongs to a job that neither pivoted nor
   * completed nor was cancelled cleanly: leave it for recover */
  pthread_mutex_destroy(&j->mu);
  free(j->target); free(j->name); free(j->dest); free(j->fmt); free(j->conn_uri); free(j->domid);
  free(j->src_name); free(j->rbd_conf); free(j->rbd_id); free(j->dest_xml);
  free(j);
  job->priv = NULL;
}

/* ---- recover --------------------------------------------------------- */

static int lv_recover(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep)
{
  const char *conn = vstor_host->jrec_get(rec, "conn");
  const char *domid = vstor_host->jrec_get(rec, "domain");
  const char *disk = vstor_host->jrec_get(rec, "disk");
  const char *dest = vstor_host->jrec_get(rec, "dest");
  const char *frozen = vstor_host->jrec_get(rec, "frozen");
  const char *created = vstor_host->jrec_get(rec, "created");
  if (!conn || !domid || !disk)
    return lerr(VSTOR_E_INVAL, "libvirt journal record without conn/domain/disk");
  char *name = vu_asprintf("%s/%s", domid, disk);
  virConnectPtr c = lv_connect(conn);
  if (!c) { free(name); return -1; }
  virDomainPtr d = virDomainLookupByUUIDString(c, domid);
  if (!d) d = virDomainLookupByName(c, domid);
  int rc = 0;
  if (!d) {
    vu_step(rep, name, "recover", VSTOR_STEP_SKIPPED, 0, "domain no longer exists");
    goto out;
  }
  struct lvpriv tmp = { .dom = d, .target = vu_strdup(disk), .name = name };
  if (frozen && !strcmp(frozen, "1")) {
    if (virDomainIsActive(d) == 1) {
      int n = virDomainFSThaw(d, NULL, 0, 0);
      if (n < 0) {
        verr(VSTOR_E_BACKEND, name, "virDomainFSThaw");
        vu_step(rep, name, "virDomainFSThaw", VSTOR_STEP_FAILED, 0, "%s", last_msg);
        rc = -1;
      } else {
        vu_step(rep, name, "virDomainFSThaw", VSTOR_STEP_DONE, 0, "thawed %d filesystem(s)", n);
      }
    } else {
      vu_step(rep, name, "virDomainFSThaw", VSTOR_STEP_SKIPPED, 0, "domain not running");
    }
  }
  const char *rname_ = vstor_host->jrec_get(rec, "rbd_name");
  const char *rsnap = vstor_host->jrec_get(rec, "rbd_snap");
  const char *phase = vstor_host->jrec_get(rec, "phase");
  if (rname_ && rsnap && phase && !strcmp(phase, "snapshot")) {
    /* died between freeze and a snapshot confirmed inside the window:
     * its consistency is unknown, remove it (idempotent) */
    if (rbd_remove_snap(vstor_host->jrec_get(rec, "rbd_conf"), vstor_host->jrec_get(rec, "rbd_id"),
                        rname_, rsnap) == 0)
      vu_step(rep, name, "rbd_snap_remove", VSTOR_STEP_DONE, 0, "removed rbd:%s@%s (not confirmed "
              "inside the freeze window)", rname_, rsnap);
    else {
      vu_step(rep, name, "rbd_snap_remove", VSTOR_STEP_FAILED, 0, "%s", last_msg);
      rc = -1;
    }
  }
  if (dest && lv_parse(&tmp) == 0) {
    if (tmp.has_mirror && tmp.mirror_file && !strcmp(tmp.mirror_file, dest)) {
      if (virDomainBlockJobAbort(d, disk, 0) == 0)
        vu_step(rep, name, "virDomainBlockJobAbort", VSTOR_STEP_DONE, 0, "stopped the copy to %s", dest);
      lv_parse(&tmp);
    }
    bool in_use = tmp.src_path && !strcmp(tmp.src_path, dest);
    bool ours = (created && !strcmp(created, "1")) ||
                (!created /* snapshot record: the overlay is ours */);
    struct stat st;
    const char *net = vstor_host->jrec_get(rec, "net");
    if (net && !strcmp(net, "rbd")) {
      if (!in_use && ours && !tmp.has_mirror) {
        if (rbd_remove_retry(vstor_host->jrec_get(rec, "rbd_conf"), vstor_host->jrec_get(rec, "rbd_id"),
                             dest) == 0)
          vu_step(rep, name, "rbd_remove", VSTOR_STEP_DONE, 0, "removed half-made image rbd:%s", dest);
        else {
          vu_step(rep, name, "rbd_remove", VSTOR_STEP_FAILED, 0, "%s", last_msg);
          rc = -1;
        }
      }
    } else if (!in_use && ours && !tmp.has_mirror && lstat(dest, &st) == 0 && S_ISREG(st.st_mode)) {
      unlink(dest);
      vu_step(rep, name, "remove", VSTOR_STEP_DONE, 0, "removed half-made %s", dest);
    }
  }
  parse_free(&tmp);
  free(tmp.target);
  virDomainFree(d);
out:
  virConnectClose(c);
  free(name);
  return rc;
}

/* ---- module entry ------------------------------------------------------ */

static const struct vstor_backend_ops libvirt_ops = {
  .abi = VSTOR_BACKEND_ABI,
  .name = "libvirt",
  .available = lv_available,
  .open = lv_open,
  .close = lv_close,
  .refresh = lv_refresh,
  .size = lv_size,
  .can = lv_can,
  .extend = lv_extend,
  .snapshot = lv_snapshot,
  .mirror_prepare = lv_mirror_prepare,
  .job_run = lv_job_run,
  .job_pivot = lv_job_pivot,
  .job_complete = lv_job_complete,
  .job_cancel = lv_job_cancel,
  .job_free = lv_job_free,
  .recover = lv_recover,
};

VSTOR_BACKEND_MODULE(libvirt_ops);
