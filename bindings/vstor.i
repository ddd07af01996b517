/* libvstor - the one SWIG interface behind the Python and Go bindings
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * This module ("capi") is deliberately low level: it is wrapped by the
 * idiomatic layers bindings/python/vstor/__init__.py and
 * bindings/go/vstor/*.go, and users never see it.
 *
 * Why the vsb_* helpers instead of wrapping every call as is:
 *  - Out-parameters (vstor_vol **, char **why, uint64_t *) have no common
 *    typemap in Python and Go; every helper writes them into one result
 *    object (vsb_res) instead, which both languages read the same way.
 *  - The error of a failing call is thread-local in C.  A goroutine may
 *    move to another OS thread between two cgo calls, so reading
 *    vstor_last_error() in a second call could read another thread's error.
 *    Each helper therefore captures code, errno and message in the same C
 *    call that failed.
 * Calls that cannot fail (getters) are wrapped directly from vstor.h.
 */
%module(package="vstor", threads="1") capi

%{
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vstor.h"
%}

%include <stdint.i>

#ifdef SWIGGO
%insert(cgo_comment_typedefs) %{
#cgo LDFLAGS: -lvstor
%}
#endif

/* Fallible calls go through the vsb_* helpers below. */
%ignore vstor_last_error;
%ignore vstor_last_errno;
%ignore vstor_last_code;
%ignore vstor_ctx_new;
%ignore vstor_ctx_set_state_dir;
%ignore vstor_ctx_set_backend_dir;
%ignore vstor_ctx_set_log;
%ignore vstor_backend_can;
%ignore vstor_open;
%ignore vstor_close;
%ignore vstor_vol_size;
%ignore vstor_vol_refresh;
%ignore vstor_vol_can;
%ignore vstor_opts_new;
%ignore vstor_opts_set_freeze_timeout_ms;
%ignore vstor_opts_set_speed;
%ignore vstor_opts_set_snapshot_size;
%ignore vstor_opts_set_progress;
%ignore vstor_parse_size;
%ignore vstor_extend;
%ignore vstor_snapshot;
%ignore vstor_mirror;
%ignore vstor_job_progress;
%ignore vstor_job_wait;
%ignore vstor_job_set_speed;
%ignore vstor_job_cancel;
%ignore vstor_job_pivot;
%ignore vstor_job_complete;
%ignore vstor_recover;
/* Function-pointer typedefs: the bindings drive progress from the
 * caller's thread instead (see doc/bindings.md). */
%ignore vstor_log_fn;
%ignore vstor_progress_fn;

/* The enum and the getter share a name; C allows it, SWIG does not. */
%rename(vsb_job_state) vstor_job_state(vstor_job *job);

/* Getters, names, constants and enums straight from the public header. */
%include "vstor.h"

%immutable;
%inline %{
/* Result of one helper call: return value, the error captured in the same
 * call, and the out-parameters.  Pointers handed out here (ctx, vol, job,
 * report, opts) belong to the caller from then on; msg and why are freed
 * with the result. */
typedef struct vsb_res {
  int rc;
  int code;          /* enum vstor_code, 0 on success */
  int err;           /* errno of the error, 0 if none */
  char *msg;         /* "vstor_extend: /img: ..." */
  char *why;         /* reason from a *_can() call answering no */
  uint64_t u1, u2;   /* size; progress done/total */
  vstor_ctx *ctx;
  vstor_vol *vol;
  vstor_job *job;
  vstor_report *report;
  vstor_opts *opts;
} vsb_res;
%}
%mutable;

%extend vsb_res {
  vsb_res() { return (vsb_res *)calloc(1, sizeof(vsb_res)); }
  ~vsb_res() {
    if ($self) {
      free($self->msg);
      free($self->why);
      free($self);
    }
  }
}

%{
static int vsb__fail(vsb_res *r)
{
  const char *m = vstor_last_error();
  r->rc = -1;
  r->code = vstor_last_code();
  r->err = vstor_last_errno();
  if (r->code == VSTOR_E_OK)
    r->code = VSTOR_E_INTERNAL;    /* failed without saying why: a bug */
  free(r->msg);
  r->msg = strdup(m ? m : "libvstor: call failed without a message");
  return -1;
}

static int vsb__rc(vsb_res *r, int rc)
{
  if (rc < 0)
    return vsb__fail(r);
  r->rc = rc;
  return rc;
}
%}

%inline %{
int vsb_ctx_new(vsb_res *r, unsigned flags)
{
  r->ctx = vstor_ctx_new(flags);
  return r->ctx ? (r->rc = 0) : vsb__fail(r);
}

int vsb_ctx_set_state_dir(vsb_res *r, vstor_ctx *ctx, const char *path)
{
  return vsb__rc(r, vstor_ctx_set_state_dir(ctx, path));
}

int vsb_ctx_set_backend_dir(vsb_res *r, vstor_ctx *ctx, const char *path)
{
  return vsb__rc(r, vstor_ctx_set_backend_dir(ctx, path));
}

int vsb_backend_can(vsb_res *r, vstor_ctx *ctx, const char *name, int op)
{
  free(r->why);
  r->why = NULL;
  return vsb__rc(r, vstor_backend_can(ctx, name, op, &r->why));
}

int vsb_open(vsb_res *r, vstor_ctx *ctx, const char *uri, unsigned flags)
{
  r->vol = NULL;
  return vsb__rc(r, vstor_open(ctx, uri, flags, &r->vol));
}

int vsb_close(vsb_res *r, vstor_vol *vol)
{
  return vsb__rc(r, vstor_close(vol));
}

int vsb_vol_size(vsb_res *r, vstor_vol *vol)
{
  return vsb__rc(r, vstor_vol_size(vol, &r->u1));
}

int vsb_vol_refresh(vsb_res *r, vstor_vol *vol)
{
  return vsb__rc(r, vstor_vol_refresh(vol));
}

int vsb_vol_can(vsb_res *r, vstor_vol *vol, int op, unsigned flags)
{
  free(r->why);
  r->why = NULL;
  return vsb__rc(r, vstor_vol_can(vol, op, flags, &r->why));
}

int vsb_parse_size(vsb_res *r, const char *text, uint64_t current)
{
  return vsb__rc(r, vstor_parse_size(text, current, &r->u1));
}

/* One options object from all the settings at once; freeze_timeout_ms 0
 * keeps the library default. */
int vsb_opts_new(vsb_res *r, uint32_t freeze_timeout_ms, uint64_t speed,
                 uint64_t snapshot_size)
{
  vstor_opts *o = vstor_opts_new();
  if (!o)
    return vsb__fail(r);
  if ((freeze_timeout_ms && vstor_opts_set_freeze_timeout_ms(o, freeze_timeout_ms) < 0) ||
      (speed && vstor_opts_set_speed(o, speed) < 0) ||
      (snapshot_size && vstor_opts_set_snapshot_size(o, snapshot_size) < 0)) {
    vsb__fail(r);
    vstor_opts_free(o);
    return -1;
  }
  r->opts = o;
  return r->rc = 0;
}

int vsb_extend(vsb_res *r, vstor_vol *vol, uint64_t size,
               const vstor_opts *opts, unsigned flags)
{
  r->report = NULL;
  return vsb__rc(r, vstor_extend(vol, size, opts, flags, &r->report));
}

int vsb_snapshot(vsb_res *r, vstor_vol *vol, const char *dest,
                 const vstor_opts *opts, unsigned flags)
{
  r->report = NULL;
  return vsb__rc(r, vstor_snapshot(vol, dest, opts, flags, &r->report));
}

int vsb_mirror(vsb_res *r, vstor_vol *vol, const char *dest,
               const vstor_opts *opts, unsigned flags)
{
  r->job = NULL;
  r->report = NULL;
  return vsb__rc(r, vstor_mirror(vol, dest, opts, flags, &r->job, &r->report));
}

int vsb_job_progress(vsb_res *r, vstor_job *job)
{
  return vsb__rc(r, vstor_job_progress(job, &r->u1, &r->u2));
}

int vsb_job_wait(vsb_res *r, vstor_job *job, int timeout_ms)
{
  return vsb__rc(r, vstor_job_wait(job, timeout_ms, 0));
}

int vsb_job_set_speed(vsb_res *r, vstor_job *job, uint64_t bytes_per_sec)
{
  return vsb__rc(r, vstor_job_set_speed(job, bytes_per_sec));
}

int vsb_job_cancel(vsb_res *r, vstor_job *job, unsigned flags)
{
  return vsb__rc(r, vstor_job_cancel(job, flags));
}

int vsb_job_pivot(vsb_res *r, vstor_job *job, unsigned flags)
{
  return vsb__rc(r, vstor_job_pivot(job, flags));
}

int vsb_job_complete(vsb_res *r, vstor_job *job, unsigned flags)
{
  return vsb__rc(r, vstor_job_complete(job, flags));
}

int vsb_recover(vsb_res *r, vstor_ctx *ctx, unsigned flags)
{
  r->report = NULL;
  return vsb__rc(r, vstor_recover(ctx, flags, &r->report));
}

/* Wait up to timeout_ms (-1: no bound, 0: just look) for the job's event
 * fd to become readable, and reset it.  1 if an event was consumed, 0 if
 * none came, -1 (errno) on error.  Never blocks on read: the fd may be
 * blocking, so it is only read once poll() said it is readable. */
int vsb_job_event(vstor_job *job, int timeout_ms)
{
  struct pollfd p = { .fd = vstor_job_fd(job), .events = POLLIN };
  uint64_t v;
  int n;

  if (p.fd < 0)
    return -1;
  do
    n = poll(&p, 1, timeout_ms);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return n;
  if (read(p.fd, &v, sizeof v) < 0 && errno != EAGAIN)
    return -1;
  return 1;
}
%}
