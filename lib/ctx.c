/* libvstor - library context, options, logging
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "internal.h"

VSTOR_API const char *vstor_version(void) { return VSTOR_VERSION; }

static int check_abs(const char *what, const char *path)
{
  if (!path || path[0] != '/')
    return vstor__error(VSTOR_E_INVAL, EINVAL, "%s \"%s\": must be an absolute path",
                        what, path ? path : "(null)");
  return 0;
}

VSTOR_API vstor_ctx *vstor_ctx_new(unsigned flags)
{
  ENTER("vstor_ctx_new");
  if (vstor__check_flags(flags, 0, "flags") < 0) return NULL;
  const char *sd = getenv("VSTOR_STATE_DIR"), *bd = getenv("VSTOR_BACKEND_DIR");
  if (sd && *sd && check_abs("$VSTOR_STATE_DIR", sd) < 0) return NULL;
  if (bd && *bd && check_abs("$VSTOR_BACKEND_DIR", bd) < 0) return NULL;
  vstor_ctx *c = vu_calloc(1, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  c->state_dir = vu_strdup(sd && *sd ? sd : VSTOR_DEFAULT_STATE_DIR);
  c->backend_dir = vu_strdup(bd && *bd ? bd : VSTOR_BACKEND_DIR);
  c->log_max = VSTOR_LOG_INFO;
  return c;
}

VSTOR_API void vstor_ctx_free(vstor_ctx *ctx)
{
  if (!ctx) return;
  ENTER("vstor_ctx_free");
  pthread_mutex_lock(&ctx->mu);
  int n = ctx->nvols;
  pthread_mutex_unlock(&ctx->mu);
  if (n) {
    vstor__error(VSTOR_E_STATE, EBUSY, "%d volume(s) still open: close them first", n);
    return;
  }
  for (int i = 0; i < ctx->nslots; i++)
    if (ctx->slots[i].data && ctx->slots[i].ops->ctx_free)
      ctx->slots[i].ops->ctx_free(ctx, ctx->slots[i].data);
  pthread_mutex_destroy(&ctx->mu);
  free(ctx->state_dir);
  free(ctx->backend_dir);
  free(ctx);
}

VSTOR_API int vstor_ctx_set_state_dir(vstor_ctx *ctx, const char *path)
{
  ENTER("vstor_ctx_set_state_dir");
  if (!ctx) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL context");
  if (check_abs("state directory", path) < 0) return -1;
  pthread_mutex_lock(&ctx->mu);
  free(ctx->state_dir);
  ctx->state_dir = vu_strdup(path);
  pthread_mutex_unlock(&ctx->mu);
  return 0;
}

VSTOR_API int vstor_ctx_set_backend_dir(vstor_ctx *ctx, const char *path)
{
  ENTER("vstor_ctx_set_backend_dir");
  if (!ctx) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL context");
  if (check_abs("backend directory", path) < 0) return -1;
  pthread_mutex_lock(&ctx->mu);
  free(ctx->backend_dir);
  ctx->backend_dir = vu_strdup(path);
  pthread_mutex_unlock(&ctx->mu);
  return 0;
}

VSTOR_API const char *vstor_ctx_state_dir(vstor_ctx *ctx)
{
  return ctx ? ctx->state_dir : NULL;
}

VSTOR_API int vstor_ctx_set_log(vstor_ctx *ctx, vstor_log_fn fn, void *opaque, int max_level)
{
  ENTER("vstor_ctx_set_log");
  if (!ctx) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL context");
  if (max_level < VSTOR_LOG_ERROR || max_level > VSTOR_LOG_DEBUG)
    return vstor__error(VSTOR_E_INVAL, EINVAL, "log level %d out of range 0..3", max_level);
  pthread_mutex_lock(&ctx->mu);
  ctx->log_fn = fn;
  ctx->log_opaque = opaque;
  ctx->log_max = max_level;
  pthread_mutex_unlock(&ctx->mu);
  return 0;
}

void vstor__vlog(vstor_ctx *ctx, int level, const char *fmt, va_list ap)
{
  if (!ctx) return;
  pthread_mutex_lock(&ctx->mu);
  vstor_log_fn fn = ctx->log_fn;
  void *op = ctx->log_opaque;
  int max = ctx->log_max;
  pthread_mutex_unlock(&ctx->mu);
  if (!fn || level > max) return;
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) return;
  fn(op, level, msg);
  free(msg);
}

/* $state/<sub>, created 0700 with its parents' first level. */
int vstor__state_subdir(vstor_ctx *ctx, const char *sub, char **out)
{
  pthread_mutex_lock(&ctx->mu);
  char *top = vu_strdup(ctx->state_dir);
  pthread_mutex_unlock(&ctx->mu);
  if (mkdir(top, 0700) < 0 && errno != EEXIST) {
    int e = errno;
    vstor__error(e == EACCES ? VSTOR_E_PERM : VSTOR_E_IO, e,
                 "state directory %s: %s", top, strerror(e));
    free(top);
    return -1;
  }
  char *d = vu_asprintf("%s/%s", top, sub);
  free(top);
  if (mkdir(d, 0700) < 0 && errno != EEXIST) {
    int e = errno;
    vstor__error(VSTOR_E_IO, e, "state directory %s: %s", d, strerror(e));
    free(d);
    return -1;
  }
  *out = d;
  return 0;
}

/* ---- options ------------------------------------------------------- */

VSTOR_API vstor_opts *vstor_opts_new(void)
{
  vstor_opts *o = vu_calloc(1, sizeof *o);
  o->freeze_timeout_ms = 10000;
  return o;
}

VSTOR_API void vstor_opts_free(vstor_opts *o) { free(o); }

VSTOR_API int vstor_opts_set_freeze_timeout_ms(vstor_opts *o, uint32_t ms)
{
  ENTER("vstor_opts_set_freeze_timeout_ms");
  if (!o) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL options");
  if (ms == 0 || ms > 600000)
    return vstor__error(VSTOR_E_INVAL, EINVAL, "freeze timeout %u ms out of range 1..600000", ms);
  o->freeze_timeout_ms = ms;
  return 0;
}

VSTOR_API int vstor_opts_set_speed(vstor_opts *o, uint64_t bps)
{
  ENTER("vstor_opts_set_speed");
  if (!o) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL options");
  o->speed = bps;
  return 0;
}

VSTOR_API int vstor_opts_set_snapshot_size(vstor_opts *o, uint64_t bytes)
{
  ENTER("vstor_opts_set_snapshot_size");
  if (!o) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL options");
  if (bytes > (uint64_t)INT64_MAX)
    return vstor__error(VSTOR_E_INVAL, ERANGE, "snapshot size too large");
  o->snapshot_size = bytes;
  return 0;
}

VSTOR_API int vstor_opts_set_progress(vstor_opts *o, vstor_progress_fn fn, void *opaque)
{
  ENTER("vstor_opts_set_progress");
  if (!o) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL options");
  o->progress = fn;
  o->progress_opaque = opaque;
  return 0;
}
