/* libvstor - LVM backend: running the lvm2 tools and reading their reports
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * LVM's metadata is read through `lvm lvs/vgs/pvs --nameprefixes` (a stable,
 * documented report format) rather than liblvm2cmd: the tools take LVM's own
 * locks, and the library (lvm2app) is gone upstream.  Tools run with argv and
 * a clean environment (vu_run), never a shell.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "lvm-priv.h"

static void row_add(struct lvm_row *r, char *k, char *v)
{
  char **nk = realloc(r->keys, (r->n + 1) * sizeof *nk);
  if (!nk) abort();
  r->keys = nk;
  char **nv = realloc(r->vals, (r->n + 1) * sizeof *nv);
  if (!nv) abort();
  r->vals = nv;
  r->keys[r->n] = k;
  r->vals[r->n] = v;
  r->n++;
}

/* One line: LVM2_KEY='value' LVM2_KEY2='va\'lue' ... */
static void parse_line(const char *s, struct lvm_row *row)
{
  while (*s) {
    while (isspace((unsigned char)*s)) s++;
    if (!*s) break;
    const char *eq = strchr(s, '=');
    if (!eq) break;
    const char *k = s;
    if (!strncmp(k, "LVM2_", 5)) k += 5;
    char *key = strndup(k, (size_t)(eq - k));
    s = eq + 1;
    char quote = (*s == '\'' || *s == '"') ? *s++ : 0;
    size_t cap = strlen(s) + 1, n = 0;
    char *val = vu_calloc(cap, 1);
    while (*s && (quote ? *s != quote : !isspace((unsigned char)*s))) {
      if (*s == '\\' && s[1]) s++;
      val[n++] = *s++;
    }
    if (quote && *s == quote) s++;
    row_add(row, key, val);
  }
}

static void parse_report(const char *out, struct lvm_report *rep)
{
  const char *p = out ? out : "";
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char *line = strndup(p, len);
    if (strstr(line, "LVM2_")) {
      struct lvm_row *nr = realloc(rep->rows, (rep->n + 1) * sizeof *nr);
      if (!nr) abort();
      rep->rows = nr;
      memset(&rep->rows[rep->n], 0, sizeof rep->rows[0]);
      parse_line(line, &rep->rows[rep->n]);
      rep->n++;
    }
    free(line);
    p += len + (nl ? 1 : 0);
  }
}

void lvm_report_free(struct lvm_report *rep)
{
  for (size_t i = 0; i < rep->n; i++) {
    for (size_t j = 0; j < rep->rows[i].n; j++) {
      free(rep->rows[i].keys[j]);
      free(rep->rows[i].vals[j]);
    }
    free(rep->rows[i].keys);
    free(rep->rows[i].vals);
  }
  free(rep->rows);
  rep->rows = NULL;
  rep->n = 0;
}

const char *lvm_row_get(const struct lvm_row *row, const char *key)
{
  for (size_t i = 0; i < row->n; i++)
    if (!strcmp(row->keys[i], key)) return row->vals[i];
  return NULL;
}

uint64_t lvm_row_u64(const struct lvm_row *row, const char *key)
{
  const char *v = lvm_row_get(row, key);
  return v && *v ? strtoull(v, NULL, 10) : 0;
}

double lvm_row_pct(const struct lvm_row *row, const char *key)
{
  const char *v = lvm_row_get(row, key);
  return v && *v ? strtod(v, NULL) : -1.0;
}

char *lvm_clean_stderr(const char *err)
{
  size_t cap = err ? strlen(err) + 1 : 1, n = 0;
  char *o = vu_calloc(cap, 1);
  const char *p = err ? err : "";
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    const char *t = p;
    while (t < p + len && isspace((unsigned char)*t)) t++;
    size_t tl = len - (size_t)(t - p);
    /* LVM's warnings and its complaint about inherited descriptors are
     * noise in an error message. */
    if (tl && strncmp(t, "WARNING:", 8) && strncmp(t, "File descriptor", 15)) {
      if (n) o[n++] = ' ';
      memcpy(o + n, t, tl);
      n += tl;
    }
    p += len + (nl ? 1 : 0);
  }
  o[n] = 0;
  return o;
}

int lvm_err_code(const char *err)
{
  if (!err) return VSTOR_E_BACKEND;
  if (strstr(err, "not found") || strstr(err, "Failed to find"))
    return VSTOR_E_NOENT;
  if (strstr(err, "Insufficient free space") || strstr(err, "insufficient free space") ||
      strstr(err, "Insufficient suitable") || strstr(err, "No free extents") ||
      strstr(err, "not enough free"))
    return VSTOR_E_NOSPC;
  if (strstr(err, "already exists")) return VSTOR_E_EXIST;
  if (strstr(err, "in use") || strstr(err, "locked") || strstr(err, "pvmove in progress") ||
      strstr(err, "Can't get lock"))
    return VSTOR_E_BUSY;
  return VSTOR_E_BACKEND;
}

static char *argv_text(const char *const argv[])
{
  size_t n = 1;
  for (size_t i = 0; argv[i]; i++) n += strlen(argv[i]) + 1;
  char *s = vu_calloc(n, 1);
  for (size_t i = 0; argv[i]; i++) {
    if (i) strcat(s, " ");
    strcat(s, argv[i]);
  }
  return s;
}

static __thread char *tool_msg, *tool_stderr;
static __thread int tool_code;

int lvm_tool_error(char **msg)
{
  *msg = vu_strdup(tool_msg ? tool_msg : "lvm failed");
  return tool_code ? tool_code : VSTOR_E_BACKEND;
}

static int tool_fail(const char *const argv[], int st, const char *err, const char *what)
{
  char *clean = lvm_clean_stderr(err);
  char *cmd = argv_text(argv);
  int code = lvm_err_code(clean);
  free(tool_msg);
  tool_msg = vu_asprintf("%s: `%s` exited with status %d: %s", what, cmd, st,
                         *clean ? clean : "(no message)");
  tool_code = code;
  free(tool_stderr);
  tool_stderr = vu_strdup(clean);
  vstor_err(code, 0, "%s", tool_msg);
  free(cmd);
  free(clean);
  return -1;
}

int lvm_cmd(const char *const argv[], const char *what)
{
  char *err = NULL;
  int st = vu_run(argv, NULL, &err);
  if (st < 0) { free(err); return -1; }
  int r = 0;
  if (st != 0) r = tool_fail(argv, st, err, what);
  free(err);
  return r;
}

int lvm_report_run(const char *const argv[], struct lvm_report *rep)
{
  const char *full[40];
  size_t n = 0;
  for (; argv[n] && n < 30; n++) full[n] = argv[n];
  const char *extra[] = { "--noheadings", "--nameprefixes", "--units", "b", "--nosuffix", NULL };
  for (size_t i = 0; extra[i]; i++) full[n++] = extra[i];
  full[n] = NULL;
  memset(rep, 0, sizeof *rep);
  char *out = NULL, *err = NULL;
  int st = vu_run(full, &out, &err);
  int r = 0;
  if (st < 0) r = -1;
  else if (st != 0) r = tool_fail(full, st, err, argv[1]);
  else parse_report(out, rep);
  free(out);
  free(err);
  return r;
}

bool lvm_name_ok(const char *s)
{
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 127 || s[0] == '-') return false;
  if (!strcmp(s, ".") || !strcmp(s, "..")) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("+_.-", s[i])) return false;
  /* LVM reserves these for its hidden volumes. */
  if (strstr(s, "_mlog") || strstr(s, "_mimage") || strstr(s, "_rimage") ||
      strstr(s, "_rmeta") || strstr(s, "_tdata") || strstr(s, "_tmeta") ||
      strstr(s, "_pmspare") || !strncmp(s, "pvmove", 6) || !strncmp(s, "snapshot", 8))
    return false;
  return true;
}

void lvm_lv_clear(struct lvm_lv *lv)
{
  free(lv->vg); free(lv->name); free(lv->attr); free(lv->segtype);
  free(lv->pool); free(lv->origin); free(lv->dm_path); free(lv->devices);
  memset(lv, 0, sizeof *lv);
  lv->kmaj = lv->kmin = -1;
}

#define LV_FIELDS "lv_name,vg_name,lv_attr,lv_size,segtype,pool_lv,origin,lv_dm_path," \
                  "lv_kernel_major,lv_kernel_minor,data_percent,devices,vg_free," \
                  "vg_extent_size,data_copies"

int lvm_lv_get(const char *vg, const char *lv, struct lvm_lv *out)
{
  memset(out, 0, sizeof *out);
  out->kmaj = out->kmin = -1;
  char *name = vu_asprintf("%s/%s", vg, lv);
  const char *argv[] = { "lvm", "lvs", "-o", LV_FIELDS, name, NULL };
  struct lvm_report rep;
  int r = lvm_report_run(argv, &rep);
  if (r < 0) {
    char *m;
    if (lvm_tool_error(&m) == VSTOR_E_NOENT)  /* say it plainly, without the command */
      vstor_err(VSTOR_E_NOENT, ENOENT, "%s: no such logical volume (LVM: %s)", name,
                tool_stderr ? tool_stderr : "not found");
    free(m);
    free(name);
    return -1;
  }
  if (rep.n == 0) {
    lvm_report_free(&rep);
    vstor_err(VSTOR_E_NOENT, ENOENT, "%s: no such logical volume", name);
    free(name);
    return -1;
  }
  const struct lvm_row *row = &rep.rows[0];
  out->vg = vu_strdup(lvm_row_get(row, "VG_NAME"));
  out->name = vu_strdup(lvm_row_get(row, "LV_NAME"));
  out->attr = vu_strdup(lvm_row_get(row, "LV_ATTR"));
  out->segtype = vu_strdup(lvm_row_get(row, "SEGTYPE"));
  out->pool = vu_strdup(lvm_row_get(row, "POOL_LV"));
  out->origin = vu_strdup(lvm_row_get(row, "ORIGIN"));
  out->dm_path = vu_strdup(lvm_row_get(row, "LV_DM_PATH"));
  out->size = lvm_row_u64(row, "LV_SIZE");
  out->vg_free = lvm_row_u64(row, "VG_FREE");
  out->extent_size = lvm_row_u64(row, "VG_EXTENT_SIZE");
  const char *km = lvm_row_get(row, "LV_KERNEL_MAJOR"), *kn = lvm_row_get(row, "LV_KERNEL_MINOR");
  out->kmaj = km && *km ? atoi(km) : -1;
  out->kmin = kn && *kn ? atoi(kn) : -1;
  if (out->kmaj < 0 || out->kmin < 0) out->kmaj = out->kmin = -1;
  out->data_pct = lvm_row_pct(row, "DATA_PERCENT");
  out->copies = (int)lvm_row_u64(row, "DATA_COPIES");
  if (out->copies < 1) out->copies = 1;
  /* One row per segment when devices is asked for: join them. */
  size_t len = 1;
  for (size_t i = 0; i < rep.n; i++) {
    const char *d = lvm_row_get(&rep.rows[i], "DEVICES");
    len += (d ? strlen(d) : 0) + 1;
  }
  out->devices = vu_calloc(len, 1);
  for (size_t i = 0; i < rep.n; i++) {
    const char *d = lvm_row_get(&rep.rows[i], "DEVICES");
    if (!d || !*d) continue;
    if (*out->devices) strcat(out->devices, ",");
    strcat(out->devices, d);
  }
  out->nsegs = (unsigned)rep.n;
  lvm_report_free(&rep);
  free(name);
  return 0;
}

bool lvm_lv_exists(const char *vg, const char *lv)
{
  char *name = vu_asprintf("%s/%s", vg, lv);
  const char *argv[] = { "lvm", "lvs", "-a", "-o", "lv_name", name, NULL };
  char *out = NULL, *err = NULL;
  int st = vu_run(argv, &out, &err);
  bool yes = st == 0 && out && strstr(out, lv);
  free(out); free(err); free(name);
  return yes;
}

bool lvm_lv_moving(const struct lvm_lv *lv)
{
  if (lv->attr && strlen(lv->attr) > 2 && isupper((unsigned char)lv->attr[2])) return true;
  if (lvm_lv_kind(lv) == 'p') return true;
  return lv->devices && strstr(lv->devices, "pvmove");
}

int lvm_pool_get(const char *vg, const char *pool, struct lvm_pool *out)
{
  char *name = vu_asprintf("%s/%s", vg, pool);
  const char *argv[] = { "lvm", "lvs", "-o", "lv_size,data_percent,metadata_percent", name, NULL };
  struct lvm_report rep;
  int r = lvm_report_run(argv, &rep);
  if (r == 0 && rep.n == 0)
    r = vstor_err(VSTOR_E_NOENT, ENOENT, "%s: thin pool not found", name);
  if (r == 0) {
    out->size = lvm_row_u64(&rep.rows[0], "LV_SIZE");
    out->data_pct = lvm_row_pct(&rep.rows[0], "DATA_PERCENT");
    out->meta_pct = lvm_row_pct(&rep.rows[0], "METADATA_PERCENT");
  }
  lvm_report_free(&rep);
  free(name);
  return r;
}

char *lvm_snapshots_of(const char *vg, const char *lv)
{
  const char *argv[] = { "lvm", "lvs", "-o", "lv_name,origin,lv_attr", vg, NULL };
  struct lvm_report rep;
  if (lvm_report_run(argv, &rep) < 0) return vu_strdup("");
  size_t len = 1;
  for (size_t i = 0; i < rep.n; i++) len += strlen(lvm_row_get(&rep.rows[i], "LV_NAME")) + 1;
  char *s = vu_calloc(len, 1);
  for (size_t i = 0; i < rep.n; i++) {
    const char *o = lvm_row_get(&rep.rows[i], "ORIGIN"), *a = lvm_row_get(&rep.rows[i], "LV_ATTR");
    if (o && !strcmp(o, lv) && a && a[0] == 's') {
      if (*s) strcat(s, ",");
      strcat(s, lvm_row_get(&rep.rows[i], "LV_NAME"));
    }
  }
  lvm_report_free(&rep);
  return s;
}

/* /dev/mapper/VG-LV: '-' separates, "--" stands for '-'. */
static int split_mapper(const char *name, char **vg, char **lv)
{
  size_t n = strlen(name);
  char *a = vu_calloc(n + 1, 1), *b = vu_calloc(n + 1, 1), *o = a;
  bool split = false;
  for (size_t i = 0; i < n; i++) {
    if (name[i] == '-') {
      if (name[i + 1] == '-') { *o++ = '-'; i++; continue; }
      if (split) { free(a); free(b); return -1; }
      split = true;
      o = b;
      continue;
    }
    *o++ = name[i];
  }
  if (!split) { free(a); free(b); return -1; }
  *vg = a;
  *lv = b;
  return 0;
}

int lvm_parse_dest(const char *dest, const char *def_vg, char **vg, char **lv)
{
  *vg = *lv = NULL;
  const char *p = dest;
  if (!strncmp(p, "lvm:", 4)) p += 4;
  else if (!strncmp(p, "/dev/mapper/", 12)) {
    if (split_mapper(p + 12, vg, lv) < 0) goto bad;
    goto check;
  } else if (!strncmp(p, "/dev/", 5)) p += 5;
  const char *sl = strchr(p, '/');
  if (sl) {
    if (strchr(sl + 1, '/')) goto bad;
    *vg = strndup(p, (size_t)(sl - p));
    *lv = vu_strdup(sl + 1);
  } else {
    if (p != dest) goto bad;  /* "lvm:NAME" or "/dev/NAME" */
    *vg = vu_strdup(def_vg);
    *lv = vu_strdup(p);
  }
check:
  if (!lvm_name_ok(*vg) || !lvm_name_ok(*lv)) goto bad;
  return 0;
bad:
  free(*vg); free(*lv);
  *vg = *lv = NULL;
  return vstor_err(VSTOR_E_INVAL, EINVAL, "%s: not an LVM volume name (expected lvm:VG/LV, "
                   "/dev/VG/LV, /dev/mapper/VG-LV or a new LV name in the same VG)", dest);
}

char *lvm_dm_name(const char *vg, const char *lv)
{
  size_t n = 0;
  char *s = vu_calloc(2 * (strlen(vg) + strlen(lv)) + 2, 1);
  for (const char *c = vg; *c; c++) { if (*c == '-') s[n++] = '-'; s[n++] = *c; }
  s[n++] = '-';
  for (const char *c = lv; *c; c++) { if (*c == '-') s[n++] = '-'; s[n++] = *c; }
  return s;
}
