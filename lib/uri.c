/* libvstor - the one URI and disk-spec parser (grammar: doc/vstor-uri.7.md)
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

void vstor__uri_free(struct vstor_uri *u)
{
  if (!u) return;
  char **f[] = { &u->backend, &u->path, &u->vg, &u->lv, &u->domain, &u->disk,
                 &u->conn, &u->pool, &u->image, &u->ns, &u->snap, &u->client,
                 &u->conf, &u->format, &u->vdev, &u->access, &u->spec_type };
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) free(*f[i]);
  vstor__uri_free(u->lower);
  free(u);
}

static int norm_access(const char *text, char **acc);

static int bad(const char *text, const char *why)
{
  char shown[128];
  return vstor__error(VSTOR_E_INVAL, EINVAL, "invalid URI \"%s\": %s", vu_shown(text, shown), why);
}

static bool has_ctl(const char *s)
{
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
  return false;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape. */
static char *pct_decode(const char *s, size_t n)
{
  char *d = vu_calloc(n + 1, 1), *o = d;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2])) {
        free(d);
        return NULL;
      }
      char h[3] = { s[i + 1], s[i + 2], 0 };
      *o++ = (char)strtol(h, NULL, 16);
      i += 2;
    } else *o++ = s[i];
  }
  if (memchr(d, 0, (size_t)(o - d))) { free(d); return NULL; }
  return d;
}

static bool abs_path_ok(const char *p)
{
  return p && p[0] == '/' && !strstr(p, "/../") && !(strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/.."));
}

/* LVM names: [A-Za-z0-9+_.-], not starting with '-', not "." or "..". */
static bool lvm_name_ok(const char *s, size_t n)
{
  if (n == 0 || n > 127 || s[0] == '-') return false;
  if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("+_.-", s[i])) return false;
  return true;
}

static int parse_lvm_pair(const char *text, const char *s, struct vstor_uri *u)
{
  const char *sl = strchr(s, '/');
  if (!sl) return bad(text, "expected lvm:VG/LV");
  if (strchr(sl + 1, '/')) return bad(text, "expected lvm:VG/LV (one '/')");
  if (!lvm_name_ok(s, (size_t)(sl - s))) return bad(text, "invalid volume group name");
  if (!lvm_name_ok(sl + 1, strlen(sl + 1))) return bad(text, "invalid logical volume name");
  u->backend = vu_strdup("lvm");
  u->vg = strndup(s, (size_t)(sl - s));
  u->lv = vu_strdup(sl + 1);
  u->path = vu_asprintf("/dev/%s/%s", u->vg, u->lv);
  return 0;
}

/* /dev/mapper/VG-LV: '-' separates, "--" escapes a '-'. */
static int parse_mapper(const char *text, const char *path, struct vstor_uri *u)
{
  const char *name = path + 12;  /* after /dev/mapper/ */
  size_t n = strlen(name);
  char *vg = vu_calloc(n + 1, 1), *lv = vu_calloc(n + 1, 1), *o = vg;
  bool split = false;
  for (size_t i = 0; i < n; i++) {
    if (name[i] == '-') {
      if (i + 1 < n && name[i + 1] == '-') { *o++ = '-'; i++; continue; }
      if (split) { free(vg); free(lv); return bad(text, "cannot split the device-mapper name into VG-LV"); }
      split = true; o = lv; continue;
    }
    *o++ = name[i];
  }
  int r = 0;
  if (!split || !lvm_name_ok(vg, strlen(vg)) || !lvm_name_ok(lv, strlen(lv)))
    r = bad(text, "not a VG-LV device-mapper name");
  else {
    u->backend = vu_strdup("lvm");
    u->vg = vg; u->lv = lv; vg = lv = NULL;
    u->path = vu_strdup(path);
  }
  free(vg); free(lv);
  return r;
}

static bool is_loop_dev(const char *p)
{
  if (strncmp(p, "/dev/loop", 9)) return false;
  const char *d = p + 9;
  if (!*d) return false;
  for (; *d; d++) if (!isdigit((unsigned char)*d)) return false;
  return true;
}

/* A bare absolute path: decide the layer from the name alone (no I/O). */
static int parse_path(const char *text, const char *p, struct vstor_uri *u)
{
  if (!abs_path_ok(p)) return bad(text, "expected an absolute path without \"..\"");
  if (!strncmp(p, "/dev/mapper/", 12) && p[12])
    return parse_mapper(text, p, u) < 0 ? -1 : 0; /* sets path from text */
  if (is_loop_dev(p)) {
    u->backend = vu_strdup("file");
    u->spec_type = vu_strdup("loop");
    u->path = vu_strdup(p);
    return 0;
  }
  if (!strncmp(p, "/dev/", 5)) {
    const char *a = p + 5, *sl = strchr(a, '/');
    if (sl && !strchr(sl + 1, '/') && strncmp(a, "disk/", 5) && strncmp(a, "mapper/", 7) &&
        lvm_name_ok(a, (size_t)(sl - a)) && lvm_name_ok(sl + 1, strlen(sl + 1))) {
      if (parse_lvm_pair(text, a, u) < 0) return -1;
      return 0;
    }
  }
  u->backend = vu_strdup("file");
  u->path = vu_strdup(p);
  return 0;
}

/* ?key=value&key=value for libvirt/rbd; only the listed keys. */
static int parse_query(const char *text, const char *q, struct vstor_uri *u,
                       const char *const keys[], char **const dst[])
{
  while (q && *q) {
    const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
    const char *eq = memchr(q, '=', (size_t)(end - q));
    if (!eq) return bad(text, "query parameter without '='");
    size_t kl = (size_t)(eq - q);
    int k = -1;
    for (int i = 0; keys[i]; i++)
      if (strlen(keys[i]) == kl && !strncmp(keys[i], q, kl)) k = i;
    if (k < 0) {
      char *msg = vu_asprintf("unknown query parameter \"%.*s\"", (int)kl, q);
      int r = bad(text, msg);
      free(msg);
      return r;
    }
    if (*dst[k]) return bad(text, "query parameter given twice");
    *dst[k] = pct_decode(eq + 1, (size_t)(end - eq - 1));
    if (!*dst[k] || !**dst[k]) return bad(text, "bad or empty query value");
    q = amp ? amp + 1 : NULL;
  }
  (void)u;
  return 0;
}

/* DOMAIN/DISK with an optional ?query; DOMAIN may be percent-encoded. */
static int parse_dom_disk(const char *text, const char *s, struct vstor_uri *u,
                          const char *what)
{
  const char *q = strchr(s, '?');
  size_t n = q ? (size_t)(q - s) : strlen(s);
  const char *sl = memchr(s, '/', n);
  if (!sl || sl == s || sl == s + n - 1 || memchr(sl + 1, '/', n - (size_t)(sl + 1 - s))) {
    char *m = vu_asprintf("expected %s:DOMAIN/DISK", what);
    int r = bad(text, m);
    free(m);
    return r;
  }
  u->domain = pct_decode(s, (size_t)(sl - s));
  u->disk = pct_decode(sl + 1, n - (size_t)(sl + 1 - s));
  if (!u->domain || !u->disk) return bad(text, "bad percent-encoding");
  for (const char *c = u->disk; *c; c++)
    if (!isalnum((unsigned char)*c)) return bad(text, "disk target must be letters and digits (\"vda\", \"xvda1\")");
  if (!strcmp(what, "libvirt")) {
    /* conf/id: ceph.conf and cephx user of an RBD network disk's lower layer */
    const char *keys[] = { "uri", "mode", "conf", "id", NULL };
    char **dst[] = { &u->conn, &u->access, &u->conf, &u->client };
    if (parse_query(text, q ? q + 1 : NULL, u, keys, dst) < 0) return -1;
    if (u->access && norm_access(text, &u->access) < 0) return -1;
    if (u->conf && !abs_path_ok(u->conf)) return bad(text, "conf= must be an absolute path");
    if (!u->conn) u->conn = vu_strdup("qemu:///system");
  } else if (q) return bad(text, "xen: URIs take no query");
  return 0;
}

/* rbd:POOL[/NS]/IMAGE[@SNAP][?id=..&conf=..&libvirt=..] */
static int parse_rbd(const char *text, const char *s, struct vstor_uri *u)
{
  const char *q = strchr(s, '?');
  size_t n = q ? (size_t)(q - s) : strlen(s);
  char *body = strndup(s, n);
  char *at = strchr(body, '@');
  if (at) {
    *at = 0;
    if (!at[1]) { free(body); return bad(text, "empty snapshot name after '@'"); }
    u->snap = vu_strdup(at + 1);
  }
  int slashes = 0;
  for (const char *c = body; *c; c++) slashes += *c == '/';
  if (slashes > 2) {
    free(body);
    return bad(text, "expected rbd:POOL[/NAMESPACE]/IMAGE[@SNAP] (too many '/')");
  }
  char *parts[3];
  int np = 0;
  for (char *t = body, *sl; np < 3; t = sl + 1) {
    parts[np++] = t;
    if (!(sl = strchr(t, '/'))) break;
    *sl = 0;
  }
  int r = 0;
  if (np < 2 || strchr(parts[np - 1], '/')) r = bad(text, "expected rbd:POOL[/NAMESPACE]/IMAGE[@SNAP]");
  for (int i = 0; !r && i < np; i++)
    if (!*parts[i]) r = bad(text, "empty pool, namespace or image name");
  if (!r) {
    u->backend = vu_strdup("rbd");
    u->pool = vu_strdup(parts[0]);
    if (np == 3) u->ns = vu_strdup(parts[1]);
    u->image = vu_strdup(parts[np - 1]);
    /* libvirt: connection on which to look for a domain using the image */
    const char *keys[] = { "id", "conf", "libvirt", NULL };
    char **dst[] = { &u->client, &u->conf, &u->conn };
    r = parse_query(text, q ? q + 1 : NULL, u, keys, dst);
    if (!r && u->conf && !abs_path_ok(u->conf)) r = bad(text, "conf= must be an absolute path");
  }
  free(body);
  return r;
}

/* ---- Xen disk specs (xl-disk-configuration(5)) -------------------- */

static const struct { const char *prefix, *type, *format; } depr[] = {
  { "phy:", "phy", "raw" },          { "file:", "file", "raw" },
  { "tap:aio:", "tap:aio", "raw" },  { "tap2:aio:", "tap:aio", "raw" },
  { "tap:qcow2:", "tap:qcow2", "qcow2" }, { "tap2:qcow2:", "tap:qcow2", "qcow2" },
  { "tap:vhd:", "tap:vhd", "vhd" },  { "tap2:vhd:", "tap:vhd", "vhd" },
  { "tap:qcow:", "tap:qcow", "qcow" }, { "aio:", "tap:aio", "raw" },
  { "raw:", "raw", "raw" },          { "qcow2:", "qcow2", "qcow2" },
  { "qcow:", "qcow", "qcow" },       { "vhd:", "vhd", "vhd" },
};

static bool looks_like_spec(const char *s)
{
  if (strchr(s, ',')) return true;
  static const char *const keys[] = { "target=", "vdev=", "format=", "access=", "devtype=",
                                      "backendtype=", "script=", "backend=" };
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    if (!strncmp(s, keys[i], strlen(keys[i]))) return true;
  for (size_t i = 0; i < sizeof depr / sizeof *depr; i++)
    if (strcmp(depr[i].prefix, "file:") && !strncmp(s, depr[i].prefix, strlen(depr[i].prefix)))
      return true;
  return false;
}

static bool vdev_ok(const char *v)
{
  /* xvda, xvda1, hda, sda, vda, xvdaa, d0p1 */
  if (!*v) return false;
  for (const char *c = v; *c; c++)
    if (!isalnum((unsigned char)*c)) return false;
  return isalpha((unsigned char)v[0]);
}

static int set_once(const char *text, char **dst, const char *val, size_t n, const char *name)
{
  if (*dst) {
    char *m = vu_asprintf("%s given twice", name);
    int r = bad(text, m);
    free(m);
    return r;
  }
  *dst = strndup(val, n);
  return 0;
}

static int norm_access(const char *text, char **acc)
{
  const char *a = *acc;
  const char *v = !strcmp(a, "w") || !strcmp(a, "rw") || !strcmp(a, "w!") ? "rw"
                : !strcmp(a, "r") || !strcmp(a, "ro") ? "ro" : NULL;
  if (!v) return bad(text, "access must be r, ro, w or rw");
  free(*acc);
  *acc = vu_strdup(v);
  return 0;
}

static int parse_spec(const char *text, struct vstor_uri *u)
{
  static const char *const formats[] = { "raw", "qcow", "qcow2", "vhd", "qed", "empty", NULL };
  char *target = NULL, *format = NULL, *vdev = NULL, *access = NULL, *stype = NULL;
  int npos = 0, r = 0;
  bool depr_prefix = false;
  const char *p = text;
  while (*p && !r) {
    while (*p == ' ') p++;
    if (!strncmp(p, "target=", 7)) { /* the rest of the string, commas included */
      r = set_once(text, &target, p + 7, strlen(p + 7), "target");
      break;
    }
    const char *c = strchr(p, ','), *end = c ? c : p + strlen(p);
    size_t n = (size_t)(end - p);
    const char *eq = memchr(p, '=', n);
    if (eq) {
      size_t kl = (size_t)(eq - p);
      const char *v = eq + 1;
      size_t vl = n - kl - 1;
      if (kl == 6 && !strncmp(p, "format", 6)) r = set_once(text, &format, v, vl, "format");
      else if (kl == 4 && !strncmp(p, "vdev", 4)) r = set_once(text, &vdev, v, vl, "vdev");
      else if (kl == 6 && !strncmp(p, "access", 6)) r = set_once(text, &access, v, vl, "access");
      else if ((kl == 7 && !strncmp(p, "devtype", 7)) || (kl == 11 && !strncmp(p, "backendtype", 11)) ||
               (kl == 6 && !strncmp(p, "script", 6)) || (kl == 7 && !strncmp(p, "backend", 7)) ||
               (kl == 9 && !strncmp(p, "colo-host", 9)))
        ; /* accepted, not needed to find the storage */
      else {
        char *m = vu_asprintf("unknown disk-spec key \"%.*s\"", (int)kl, p);
        r = bad(text, m);
        free(m);
      }
    } else if (n == 5 && !strncmp(p, "cdrom", 5)) {
      ;
    } else if ((n == 7 && !strncmp(p, "discard", 7)) || (n == 10 && !strncmp(p, "no-discard", 10)) ||
               (n == 14 && !strncmp(p, "direct-io-safe", 14))) {
      ;
    } else {
      /* positional: target, format, vdev, access; an empty one is "unset" */
      for (;;) {
        npos++;
        if (npos == 1) {
          if (n) {
            for (size_t i = 0; i < sizeof depr / sizeof *depr; i++) {
              size_t pl = strlen(depr[i].prefix);
              if (n > pl && !strncmp(p, depr[i].prefix, pl)) {
                stype = vu_strdup(depr[i].type);
                if (!format) format = vu_strdup(depr[i].format);
                depr_prefix = true;
                p += pl; n -= pl;
                break;
              }
            }
            r = set_once(text, &target, p, n, "target");
          }
          if (depr_prefix) npos++; /* the prefix stood for the format */
        } else if (npos == 2) {
          if (n) r = set_once(text, &format, p, n, "format");
        } else if (npos == 3) {
          if (n) {
            const char *colon = memchr(p, ':', n);   /* "hdc:cdrom" */
            r = set_once(text, &vdev, p, colon ? (size_t)(colon - p) : n, "vdev");
          }
        } else if (npos == 4) {
          if (n) r = set_once(text, &access, p, n, "access");
        } else r = bad(text, "too many positional parameters");
        break;
      }
    }
    if (!c) break;
    p = c + 1;
  }
  if (!r && !target) r = bad(text, "disk spec names no target");
  if (!r && vdev && !vdev_ok(vdev)) r = bad(text, "invalid vdev");
  if (!r && access) r = norm_access(text, &access);
  if (!r && format) {
    bool ok = false;
    for (int i = 0; formats[i]; i++) ok |= !strcmp(formats[i], format);
    if (!ok) r = bad(text, "unknown format (raw, qcow, qcow2, vhd, qed)");
  }
  if (!r) {
    r = parse_path(text, target, u);
    if (!r) {
      u->format = format ? format : vu_strdup("raw");
      u->vdev = vdev;
      u->access = access ? access : vu_strdup("rw");
      free(u->spec_type);
      u->spec_type = stype ? stype : vu_strdup(!strncmp(target, "/dev/", 5) ? "phy" : "file");
      format = vdev = access = stype = NULL;
    }
  }
  free(target); free(format); free(vdev); free(access); free(stype);
  return r;
}

int vstor__uri_parse(const char *text, struct vstor_uri **out)
{
  *out = NULL;
  if (!text) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL URI");
  if (!*text) return bad(text, "empty");
  if (strlen(text) > 4096) return vstor__error(VSTOR_E_INVAL, ENAMETOOLONG, "invalid URI: longer than 4096 bytes");
  if (has_ctl(text)) return bad(text, "control characters (newline, tab...) are not allowed");
  struct vstor_uri *u = vu_calloc(1, sizeof *u);
  int r;
  /* a comma makes it a disk spec, even with an absolute target
   * ("/dev/vg/lv,,hda"); a path holding commas is named with target= */
  if (looks_like_spec(text)) r = parse_spec(text, u);
  else if (text[0] == '/') r = parse_path(text, text, u);
  else if (!strncmp(text, "file://", 7)) r = parse_path(text, text + 7, u);
  else if (!strncmp(text, "file:", 5)) r = parse_path(text, text + 5, u);
  else if (!strncmp(text, "loop:", 5)) {
    r = is_loop_dev(text + 5) ? parse_path(text, text + 5, u) : bad(text, "expected loop:/dev/loopN");
  } else if (!strncmp(text, "lvm:", 4)) r = parse_lvm_pair(text, text + 4, u);
  else if (!strncmp(text, "libvirt:", 8)) {
    u->backend = vu_strdup("libvirt");
    r = parse_dom_disk(text, text + 8, u, "libvirt");
  } else if (!strncmp(text, "xen:", 4)) {
    u->backend = vu_strdup("xen");
    r = parse_dom_disk(text, text + 4, u, "xen");
  } else if (!strncmp(text, "rbd:", 4)) r = parse_rbd(text, text + 4, u);
  else {
    const char *colon = strchr(text, ':');
    if (colon) {
      char *m = vu_asprintf("unknown scheme \"%.*s:\" (file, loop, lvm, libvirt, xen, rbd, "
                            "or a Xen disk spec)", (int)(colon - text), text);
      r = bad(text, m);
      free(m);
    } else r = bad(text, "relative path (give an absolute path or a scheme)");
  }
  if (r < 0) { vstor__uri_free(u); return -1; }
  *out = u;
  return 0;
}
