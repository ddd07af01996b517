/* libvstor - backend registry and module loader
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

int vstor__open(vstor_ctx *ctx, const char *uri, unsigned flags, vstor_vol **out);
int vstor__close(vstor_vol *vol);

static void host_fault(const char *p) { vstor__fault(p); }
static const char *host_state_dir(vstor_ctx *c) { return c->state_dir; }
static void host_close_lower(vstor_vol *v) { vstor__close(v); }
static char *host_error_get(int *code, int *errnum)
{
  char *m;
  vstor__error_get(code, errnum, &m);
  return m;
}

static void **host_ctx_slot(vstor_ctx *ctx, const struct vstor_backend_ops *ops)
{
  void **slot = NULL;
  pthread_mutex_lock(&ctx->mu);
  for (int i = 0; i < ctx->nslots && !slot; i++)
    if (ctx->slots[i].ops == ops) slot = &ctx->slots[i].data;
  if (!slot && ctx->nslots < (int)(sizeof ctx->slots / sizeof *ctx->slots)) {
    ctx->slots[ctx->nslots].ops = ops;
    ctx->slots[ctx->nslots].data = NULL;
    slot = &ctx->slots[ctx->nslots++].data;
  }
  pthread_mutex_unlock(&ctx->mu);
  return slot;   /* NULL only past 8 backends with per-context data */
}

const struct vstor_host vstor__host = {
  .abi = VSTOR_BACKEND_ABI,
  .verror = vstor__verror,
  .vlog = vstor__vlog,
  .jrec_begin = vstor__jrec_begin,
  .jrec_set = vstor__jrec_set,
  .jrec_end = vstor__jrec_end,
  .jrec_get = vstor__jrec_get,
  .fault = host_fault,
  .open_lower = vstor__open,
  .close_lower = host_close_lower,
  .state_dir = host_state_dir,
  .job_progress = vstor__job_progress,
  .job_cancelled = vstor__job_cancelled,
  .job_speed = vstor__job_speed,
  .error_get = host_error_get,
  .error_set = vstor__error_set_raw,
  .jrec_put = vstor__jrec_put,
  .ctx_slot = host_ctx_slot,
};

/* The core's own copy of util_lib reaches the core directly. */
__attribute__((constructor)) static void set_host(void) { vstor_host = &vstor__host; }

static const char *const known[] = { "file", "lvm", "libvirt", "xen", "rbd" };
#define NKNOWN (sizeof known / sizeof *known)

VSTOR_API size_t vstor_backend_count(void) { return NKNOWN; }
VSTOR_API const char *vstor_backend_name(size_t i) { return i < NKNOWN ? known[i] : NULL; }

/* Loaded modules, never unloaded (a backend's code may be referenced by
 * volumes of any context until the process ends). */
static pthread_mutex_t mod_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mod { char *path; const struct vstor_backend_ops *ops; } mods[32];
static size_t nmods;

static const struct vstor_backend_ops *load_module(const char *path, const char *name)
{
  pthread_mutex_lock(&mod_mu);
  for (size_t i = 0; i < nmods; i++)
    if (!strcmp(mods[i].path, path)) {
      pthread_mutex_unlock(&mod_mu);
      return mods[i].ops;
    }
  const struct vstor_backend_ops *ops = NULL;
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    vstor__error(VSTOR_E_NOTSUP, ENOENT, "backend \"%s\": module %s cannot be loaded "
                 "(a library it needs is missing?): %s", name, path, dlerror());
    goto out;
  }
  vstor_backend_init_fn init = (vstor_backend_init_fn)(uintptr_t)dlsym(h, VSTOR_BACKEND_INIT_SYMBOL);
  if (!init) {
    vstor__error(VSTOR_E_NOTSUP, ENOENT, "backend \"%s\": %s is not a libvstor module", name, path);
    dlclose(h);
    goto out;
  }
  ops = init(&vstor__host);
  if (!ops || ops->abi != VSTOR_BACKEND_ABI || strcmp(ops->name, name)) {
    vstor__error(VSTOR_E_NOTSUP, 0, "backend \"%s\": %s was built for another libvstor "
                 "(backend ABI %u, need %u)", name, path, ops ? ops->abi : 0, VSTOR_BACKEND_ABI);
    ops = NULL;
    dlclose(h);
    goto out;
  }
  if (nmods < sizeof mods / sizeof *mods) {
    mods[nmods].path = vu_strdup(path);
    mods[nmods++].ops = ops;
  }
out:
  pthread_mutex_unlock(&mod_mu);
  return ops;
}

const struct vstor_backend_ops *vstor__backend_get(vstor_ctx *ctx, const char *name)
{
  if (!strcmp(name, "file")) return &vstor__file_backend;
  bool ok = false;
  for (size_t i = 0; i < NKNOWN; i++) ok |= !strcmp(known[i], name);
  if (!ok) {
    vstor__error(VSTOR_E_NOTSUP, 0, "unknown backend \"%s\"", name);
    return NULL;
  }
  pthread_mutex_lock(&ctx->mu);
  char *dir = vu_strdup(ctx->backend_dir);
  pthread_mutex_unlock(&ctx->mu);
  char *p1 = vu_asprintf("%s/vstor-%s.so", dir, name);
  char *p2 = vu_asprintf("%s/%s/vstor-%s.so", dir, name, name);
  const struct vstor_backend_ops *ops = NULL;
  if (access(p1, F_OK) == 0) ops = load_module(p1, name);
  else if (access(p2, F_OK) == 0) ops = load_module(p2, name);
  else
    vstor__error(VSTOR_E_NOTSUP, ENOENT, "backend \"%s\" is not installed: no vstor-%s.so "
                 "in %s (set VSTOR_BACKEND_DIR for a build tree)", name, name, dir);
  free(p1); free(p2); free(dir);
  return ops;
}

VSTOR_API int vstor_backend_can(vstor_ctx *ctx, const char *name, int op, char **why)
{
  ENTER("vstor_backend_can");
  if (why) *why = NULL;
  if (!ctx || !name) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL argument");
  if (op < -1 || op >= VSTOR_OP__COUNT)
    return vstor__error(VSTOR_E_INVAL, EINVAL, "unknown operation %d", op);
  int c0, e0;
  char *m0;
  vstor__error_get(&c0, &e0, &m0);
  const struct vstor_backend_ops *ops = vstor__backend_get(ctx, name);
  if (!ops) {
    if (vstor_last_code() == VSTOR_E_NOTSUP) {
      /* "no" is an answer, not a failure: the last error stays as it was */
      if (why) *why = vu_strdup(vstor_last_error() + strlen("vstor_backend_can: "));
      vstor__error_set_raw(c0, e0, m0);
      free(m0);
      return 0;
    }
    free(m0);
    return -1;
  }
  free(m0);
  if (!ops->available) return 1;
  return ops->available(ctx, op, why);
}
