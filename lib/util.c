/* libvstor - small helpers: memory, time, reports, layers
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "util.h"

/* Each copy of util_lib (core, every module) has its own pointer. */
const struct vstor_host *vstor_host;

static void oom(void)
{
  static const char m[] = "libvstor: out of memory\n";
  fwrite(m, 1, sizeof m - 1, stderr);
  abort();
}

char *vu_strdup(const char *s)
{
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) oom();
  return d;
}

char *vu_asprintf(const char *fmt, ...)
{
  va_list ap;
  char *s;
  va_start(ap, fmt);
  int r = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (r < 0) oom();
  return s;
}

void *vu_calloc(size_t n, size_t sz)
{
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p) oom();
  return p;
}

uint64_t vu_now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

char *vu_human_size(uint64_t b)
{
  static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double v = (double)b;
  int i = 0;
  while (v >= 1024 && i < 6) { v /= 1024; i++; }
  return i ? vu_asprintf("%.1f %s", v, u[i]) : vu_asprintf("%llu B", (unsigned long long)b);
}

const char *vu_shown(const char *text, char out[128])
{
  size_t i = 0;
  for (; text[i] && i < 124; i++)
    out[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
  strcpy(out + i, text[i] ? "..." : "");
  return out;
}

char *vu_last_error_body(void)
{
  int c, e;
  char *m = vstor_host->error_get(&c, &e);
  if (!m) return vu_strdup("unknown error");
  const char *b = m;
  if (!strncmp(m, "vstor_", 6) || !strncmp(m, "libvstor", 8)) {
    const char *sep = strstr(m, ": ");
    if (sep) b = sep + 2;
  }
  char *r = vu_strdup(b);
  free(m);
  return r;
}

vstor_report *vu_report_new(void)
{
  return vu_calloc(1, sizeof(vstor_report));
}

void vu_step(vstor_report *rep, const char *layer, const char *action,
             int status, int reversible, const char *fmt, ...)
{
  if (!rep) return;
  if (rep->nsteps == rep->cap) {
    rep->cap = rep->cap ? rep->cap * 2 : 8;
    rep->steps = realloc(rep->steps, rep->cap * sizeof *rep->steps);
    if (!rep->steps) oom();
  }
  struct vstor_step *s = &rep->steps[rep->nsteps++];
  s->layer = vu_strdup(layer);
  s->action = vu_strdup(action);
  s->status = status;
  s->reversible = reversible;
  s->detail = NULL;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s->detail, fmt, ap) < 0) oom();
    va_end(ap);
  }
}

void vu_step_set(vstor_report *rep, size_t idx, int status, const char *detail)
{
  if (!rep || idx >= rep->nsteps) return;
  rep->steps[idx].status = status;
  if (detail) {
    free(rep->steps[idx].detail);
    rep->steps[idx].detail = vu_strdup(detail);
  }
}

void vu_report_method(vstor_report *rep, const char *method)
{
  if (!rep) return;
  free(rep->method);
  rep->method = vu_strdup(method);
}

struct vstor_layer *vu_layer_add(vstor_vol *vol, const char *role,
                                 const char *type, const char *path,
                                 uint64_t size)
{
  struct vstor_layer *n = realloc(vol->layers, (vol->nlayers + 1) * sizeof *n);
  if (!n) oom();
  vol->layers = n;
  struct vstor_layer *l = &n[vol->nlayers++];
  memset(l, 0, sizeof *l);
  l->role = vu_strdup(role);
  l->type = vu_strdup(type);
  l->path = vu_strdup(path ? path : "");
  l->size = size;
  return l;
}

void vu_layer_prop(struct vstor_layer *l, const char *key, const char *val)
{
  for (size_t i = 0; i < l->nprops; i++)
    if (!strcmp(l->props[i].key, key)) {
      free(l->props[i].val);
      l->props[i].val = vu_strdup(val);
      return;
    }
  struct vstor_prop *n = realloc(l->props, (l->nprops + 1) * sizeof *n);
  if (!n) oom();
  l->props = n;
  n[l->nprops].key = vu_strdup(key);
  n[l->nprops].val = vu_strdup(val);
  l->nprops++;
}

void vu_layers_clear(vstor_vol *vol)
{
  for (size_t i = 0; i < vol->nlayers; i++) {
    struct vstor_layer *l = &vol->layers[i];
    free(l->role); free(l->type); free(l->path);
    for (size_t j = 0; j < l->nprops; j++) {
      free(l->props[j].key);
      free(l->props[j].val);
    }
    free(l->props);
  }
  free(vol->layers);
  vol->layers = NULL;
  vol->nlayers = 0;
}

char *vu_pct_encode(const char *s)
{
  char *o = vu_calloc(strlen(s) * 3 + 1, 1), *q = o;
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
        strchr("/-._~:", *c))
      *q++ = (char)*c;
    else
      q += sprintf(q, "%%%02X", *c);
  }
  return o;
}
