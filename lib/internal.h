/* libvstor - core-only declarations (never seen by backends)
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSTOR_INTERNAL_H
#define VSTOR_INTERNAL_H

#include "backend.h"
#include "util.h"

#define VSTOR_API __attribute__((visibility("default")))

/* Every public call starts with ENTER(name): errors raised below it are
 * prefixed with the call name ("vstor_extend: /img: ..."). */
void vstor__enter(const char *call);
#define ENTER(name) vstor__enter(name)
int vstor__error(int code, int errnum, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
void vstor__verror(int code, int errnum, const char *fmt, va_list ap)
  __attribute__((format(printf, 3, 0)));
/* Save/restore the thread's error (jobs carry theirs across threads). */
void vstor__error_get(int *code, int *errnum, char **msg);
void vstor__error_set_raw(int code, int errnum, const char *msg);

struct vstor_ctx {
  pthread_mutex_t mu;
  char *state_dir;
  char *backend_dir;
  vstor_log_fn log_fn;
  void *log_opaque;
  int log_max;
  int nvols;
  /* backends' per-context data (host->ctx_slot), released by ctx_free */
  struct vstor_ctx_slot { const struct vstor_backend_ops *ops; void *data; } slots[8];
  int nslots;
};
void vstor__vlog(vstor_ctx *ctx, int level, const char *fmt, va_list ap)
  __attribute__((format(printf, 3, 0)));
int vstor__state_subdir(vstor_ctx *ctx, const char *sub, char **out);

extern const struct vstor_host vstor__host;

/* backend registry */
const struct vstor_backend_ops *vstor__backend_get(vstor_ctx *ctx,
                                                   const char *name);
extern const struct vstor_backend_ops vstor__file_backend;

/* locks: flock on $state/locks/<hash of id>.lock, plus an owner line */
struct vstor_lock;
int vstor__lock(vstor_ctx *ctx, const char *id, struct vstor_lock **out);
void vstor__unlock(struct vstor_lock *l);
int vstor__lock_reap(vstor_ctx *ctx, vstor_report *rep);

/* journal */
struct vstor_jrec *vstor__jrec_begin(vstor_vol *vol, const char *op);
int vstor__jrec_set(struct vstor_jrec *r, const char *key, const char *val);
void vstor__jrec_put(struct vstor_jrec *r, const char *key, const char *val);
void vstor__jrec_end(struct vstor_jrec *r);
const char *vstor__jrec_get(const struct vstor_jrec *r, const char *key);
int vstor__jrec_parse(const char *text, size_t len, struct vstor_jrec **out);
void vstor__jrec_free(struct vstor_jrec *r);
int vstor__journal_list(vstor_ctx *ctx, char ***paths, size_t *n);
int vstor__jrec_load(vstor_ctx *ctx, const char *path, struct vstor_jrec **out);

/* jobs */
int vstor__job_start(vstor_job *job);
void vstor__job_progress(vstor_job *job, uint64_t done, uint64_t total);
bool vstor__job_cancelled(vstor_job *job);
uint64_t vstor__job_speed(vstor_job *job);

void vstor__fault(const char *point);
int vstor__check_flags(unsigned flags, unsigned allowed, const char *what);

#endif
