/* libvstor - volume handles and the public operation entry points
 *
 * Each entry point: name the call (errors are prefixed with it), check
 * arguments and flags, refuse read-only handles, take the volume lock,
 * then hand over to the backend.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

int vstor__open(vstor_ctx *ctx, const char *uri, unsigned flags, vstor_vol **out);
int vstor__close(vstor_vol *vol);

int vstor__open(vstor_ctx *ctx, const char *uri, unsigned flags, vstor_vol **out)
{
  struct vstor_uri *u;
  if (vstor__check_flags(flags, VSTOR_OPEN_READONLY | VSTOR_OPEN_EXCLUSIVE, "flags") < 0)
    return -1;
  if (vstor__uri_parse(uri, &u) < 0) return -1;
  const struct vstor_backend_ops *ops = vstor__backend_get(ctx, u->backend);
  if (!ops) { vstor__uri_free(u); return -1; }
  vstor_vol *v = vu_calloc(1, sizeof *v);
  v->ctx = ctx;
  v->ops = ops;
  v->uri = u;
  v->uri_text = vu_strdup(uri);
  v->flags = flags;
  pthread_mutex_init(&v->mu, NULL);
  if (ops->open(v) < 0) {
    pthread_mutex_destroy(&v->mu);
    vu_layers_clear(v);
    vstor__uri_free(u);
    free(v->uri_text);
    free(v->id);
    free(v);
    return -1;
  }
  if (!v->id) v->id = vu_strdup(uri);
  if ((flags & VSTOR_OPEN_EXCLUSIVE) && vstor__lock(ctx, v->id, &v->held_lock) < 0) {
    int c, e;
    char *m;
    vstor__error_get(&c, &e, &m);
    if (ops->close) ops->close(v);
    vu_layers_clear(v);
    vstor__uri_free(u);
    pthread_mutex_destroy(&v->mu);
    free(v->uri_text); free(v->id); free(v);
    vstor__error_set_raw(c, e, m);
    free(m);
    return -1;
  }
  pthread_mutex_lock(&ctx->mu);
  ctx->nvols++;
  pthread_mutex_unlock(&ctx->mu);
  *out = v;
  return 0;
}

VSTOR_API int vstor_open(vstor_ctx *ctx, const char *uri, unsigned flags, vstor_vol **vol)
{
  ENTER("vstor_open");
  if (!ctx || !uri || !vol) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL argument");
  *vol = NULL;
  return vstor__open(ctx, uri, flags, vol);
}

int vstor__close(vstor_vol *v)
{
  pthread_mutex_lock(&v->ctx->mu);
  int jobs = v->njobs;
  pthread_mutex_unlock(&v->ctx->mu);
  if (jobs)
    return vstor__error(VSTOR_E_STATE, EBUSY, "%s: %d job(s) still exist: free them first",
                        v->uri_text, jobs);
  if (v->ops->close) v->ops->close(v);
  if (v->lower) vstor__close(v->lower);
  if (v->held_lock) vstor__unlock(v->held_lock);
  pthread_mutex_lock(&v->ctx->mu);
  v->ctx->nvols--;
  pthread_mutex_unlock(&v->ctx->mu);
  vu_layers_clear(v);
  vstor__uri_free(v->uri);
  free(v->uri_text);
  free(v->id);
  pthread_mutex_destroy(&v->mu);
  free(v);
  return 0;
}

VSTOR_API int vstor_close(vstor_vol *v)
{
  ENTER("vstor_close");
  if (!v) return 0;
  return vstor__close(v);
}

#define VOL_CHECK(v, name)                                                 \
  do {                                                                     \
    ENTER(name);                                                           \
    if (!(v)) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL volume");   \
  } while (0)

VSTOR_API const char *vstor_vol_backend(vstor_vol *v) { return v ? v->ops->name : NULL; }
VSTOR_API const char *vstor_vol_id(vstor_vol *v) { return v ? v->id : NULL; }

VSTOR_API int vstor_vol_size(vstor_vol *v, uint64_t *size)
{
  VOL_CHECK(v, "vstor_vol_size");
  if (!size) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL size");
  pthread_mutex_lock(&v->mu);
  int r = v->ops->size(v, size);
  pthread_mutex_unlock(&v->mu);
  return r;
}

VSTOR_API int vstor_vol_refresh(vstor_vol *v)
{
  VOL_CHECK(v, "vstor_vol_refresh");
  pthread_mutex_lock(&v->mu);
  int r = v->ops->refresh ? v->ops->refresh(v) : 0;
  pthread_mutex_unlock(&v->mu);
  return r;
}

VSTOR_API size_t vstor_vol_layer_count(vstor_vol *v) { return v ? v->nlayers : 0; }
VSTOR_API const vstor_layer *vstor_vol_layer(vstor_vol *v, size_t i)
{
  return v && i < v->nlayers ? &v->layers[i] : NULL;
}

VSTOR_API int vstor_vol_can(vstor_vol *v, int op, unsigned flags, char **why)
{
  VOL_CHECK(v, "vstor_vol_can");
  if (why) *why = NULL;
  if (op < 0 || op >= VSTOR_OP__COUNT)
    return vstor__error(VSTOR_E_INVAL, EINVAL, "unknown operation %d", op);
  /* the flags the operation itself would accept */
  static const unsigned allowed[VSTOR_OP__COUNT] = {
    [VSTOR_OP_EXTEND] = VSTOR_EXTEND_PREALLOC | VSTOR_EXTEND_RESIZE_FS,
    [VSTOR_OP_EXTEND_ONLINE] = VSTOR_EXTEND_PREALLOC | VSTOR_EXTEND_RESIZE_FS,
    [VSTOR_OP_SNAPSHOT] = VSTOR_SNAPSHOT_CRASH_CONSISTENT | VSTOR_SNAPSHOT_NO_REFLINK |
                           VSTOR_SNAPSHOT_EXPEDITE,
    [VSTOR_OP_MIRROR] = VSTOR_MIRROR_SHALLOW | VSTOR_MIRROR_REUSE_DEST | VSTOR_MIRROR_VERIFY,
    [VSTOR_OP_PIVOT] = VSTOR_MIRROR_SHALLOW | VSTOR_MIRROR_REUSE_DEST | VSTOR_MIRROR_VERIFY,
  };
  if (vstor__check_flags(flags, allowed[op] | VSTOR_DRY_RUN, "flags") < 0) return -1;
  if ((v->flags & VSTOR_OPEN_READONLY) && op != VSTOR_OP_FREEZE) {
    if (why) *why = vu_strdup("the volume was opened read-only");
    return 0;
  }
  if (!v->ops->can) {
    if (why) *why = vu_asprintf("backend %s does not report capabilities", v->ops->name);
    return 0;
  }
  pthread_mutex_lock(&v->mu);
  int r = v->ops->can(v, op, flags, why);
  pthread_mutex_unlock(&v->mu);
  return r;
}

/* Refuse read-only handles; take the volume lock unless the handle holds it. */
static int begin_op(vstor_vol *v, unsigned flags, struct vstor_lock **lk)
{
  *lk = NULL;
  if (v->flags & VSTOR_OPEN_READONLY)
    return vstor__error(VSTOR_E_PERM, EROFS, "%s: the volume was opened read-only", v->uri_text);
  if ((flags & VSTOR_DRY_RUN) || v->held_lock) return 0;
  return vstor__lock(v->ctx, v->id, lk);
}

static void hand_report(vstor_report *rep, vstor_report **out, int r)
{
  if (out && (r == 0 || rep->nsteps)) *out = rep;
  else vstor_report_free(rep);
}

VSTOR_API int vstor_extend(vstor_vol *v, uint64_t size, const vstor_opts *o, unsigned flags,
                           vstor_report **report)
{
  VOL_CHECK(v, "vstor_extend");
  if (report) *report = NULL;
  if (vstor__check_flags(flags, VSTOR_EXTEND_PREALLOC | VSTOR_EXTEND_RESIZE_FS | VSTOR_DRY_RUN,
                         "flags") < 0)
    return -1;
  if (size > (uint64_t)INT64_MAX)
    return vstor__error(VSTOR_E_INVAL, EFBIG, "%s: size %llu too large", v->uri_text,
                        (unsigned long long)size);
  if (!v->ops->extend)
    return vstor__error(VSTOR_E_NOTSUP, ENOTSUP, "%s: backend %s cannot extend", v->uri_text,
                        v->ops->name);
  struct vstor_lock *lk;
  if (begin_op(v, flags, &lk) < 0) return -1;
  struct vstor_opts def = { .freeze_timeout_ms = 10000 };
  vstor_report *rep = vu_report_new();
  pthread_mutex_lock(&v->mu);
  int r = v->ops->extend(v, size, o ? o : &def, flags, rep);
  pthread_mutex_unlock(&v->mu);
  vstor__unlock(lk);
  hand_report(rep, report, r);
  return r;
}

static int check_dest(vstor_vol *v, const char *dest)
{
  if (!dest || !*dest) return vstor__error(VSTOR_E_INVAL, EINVAL, "%s: no destination", v->uri_text);
  for (const char *c = dest; *c; c++)
    if ((unsigned char)*c < 0x20)
      return vstor__error(VSTOR_E_INVAL, EINVAL, "%s: destination contains control characters",
                          v->uri_text);
  return 0;
}

VSTOR_API int vstor_snapshot(vstor_vol *v, const char *dest, const vstor_opts *o, unsigned flags,
                             vstor_report **report)
{
  VOL_CHECK(v, "vstor_snapshot");
  if (report) *report = NULL;
  if (vstor__check_flags(flags, VSTOR_SNAPSHOT_CRASH_CONSISTENT | VSTOR_SNAPSHOT_NO_REFLINK |
                         VSTOR_SNAPSHOT_EXPEDITE | VSTOR_DRY_RUN, "flags") < 0)
    return -1;
  if (check_dest(v, dest) < 0) return -1;
  if (!v->ops->snapshot)
    return vstor__error(VSTOR_E_NOTSUP, ENOTSUP, "%s: backend %s cannot snapshot", v->uri_text,
                        v->ops->name);
  /* A snapshot changes nothing on the volume: read-only handles may take
   * one, but the lock still serialises it against other operations. */
  struct vstor_lock *lk = NULL;
  if (!(flags & VSTOR_DRY_RUN) && !v->held_lock && vstor__lock(v->ctx, v->id, &lk) < 0)
    return -1;
  struct vstor_opts def = { .freeze_timeout_ms = 10000 };
  vstor_report *rep = vu_report_new();
  pthread_mutex_lock(&v->mu);
  int r = v->ops->snapshot(v, dest, o ? o : &def, flags, rep);
  pthread_mutex_unlock(&v->mu);
  vstor__unlock(lk);
  hand_report(rep, report, r);
  return r;
}

VSTOR_API int vstor_mirror(vstor_vol *v, const char *dest, const vstor_opts *o, unsigned flags,
                           vstor_job **jobp, vstor_report **report)
{
  VOL_CHECK(v, "vstor_mirror");
  if (report) *report = NULL;
  if (!jobp) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL job pointer");
  *jobp = NULL;
  if (vstor__check_flags(flags, VSTOR_MIRROR_SHALLOW | VSTOR_MIRROR_REUSE_DEST |
                         VSTOR_MIRROR_VERIFY | VSTOR_DRY_RUN, "flags") < 0)
    return -1;
  if (check_dest(v, dest) < 0) return -1;
  if (!v->ops->mirror_prepare || !v->ops->job_run)
    return vstor__error(VSTOR_E_NOTSUP, ENOTSUP, "%s: backend %s cannot mirror", v->uri_text,
                        v->ops->name);
  struct vstor_lock *lk;
  if (begin_op(v, flags, &lk) < 0) return -1;
  vstor_job *job = vu_calloc(1, sizeof *job);
  job->vol = v;
  job->dest = vu_strdup(dest);
  job->flags = flags;
  job->efd = -1;
  if (o) job->opts = *o; else job->opts.freeze_timeout_ms = 10000;
  job->speed = job->opts.speed;
  job->lock = lk;
  pthread_mutex_init(&job->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&job->cond, &ca);
  pthread_condattr_destroy(&ca);
  vstor_report *rep = vu_report_new();
  pthread_mutex_lock(&v->ctx->mu);
  v->njobs++;
  pthread_mutex_unlock(&v->ctx->mu);
  pthread_mutex_lock(&v->mu);
  int r = v->ops->mirror_prepare(v, job, flags, rep);
  pthread_mutex_unlock(&v->mu);
  if (r == 0 && !(flags & VSTOR_DRY_RUN)) r = vstor__job_start(job);
  if (r < 0 || (flags & VSTOR_DRY_RUN)) {
    int c, e;
    char *m;
    vstor__error_get(&c, &e, &m);
    job->state = VSTOR_JOB_CANCELLED;  /* never started: free without cancel */
    vstor_job_free(job);
    if (r < 0) vstor__error_set_raw(c, e, m);
    free(m);
    hand_report(rep, report, r);
    return r;
  }
  hand_report(rep, report, 0);
  *jobp = job;
  return 0;
}
