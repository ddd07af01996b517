/* libvstor - interface between the core and its backends
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Not installed, not public.  A backend is a `struct vstor_backend_ops`.
 * The file backend is linked into libvstor.so; every other backend is a
 * module "vstor-NAME.so" in the backend directory, exporting one symbol:
 *
 *   const struct vstor_backend_ops *vstor_backend_init(const struct vstor_host *host);
 *
 * Modules are built from the same tree as the core: the structures below
 * are shared by layout, and VSTOR_BACKEND_ABI changes whenever one of them
 * changes, so a stale module is refused (NOTSUP) instead of crashing.
 *
 * Modules cannot call the core's hidden symbols.  What must run inside the
 * core (the thread-local error, logging, the journal, opening a lower
 * layer through another backend) is reached through `struct vstor_host`;
 * the inline wrappers at the bottom make the same source work built in or
 * as a module.  Pure helpers (reports, layers, exec, filesystem tools) are
 * in util.h, a static library linked into both.
 */
#ifndef VSTOR_BACKEND_H
#define VSTOR_BACKEND_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include "vstor.h"

#define VSTOR_BACKEND_ABI 4

/* ---- parsed URI (one parser: lib/uri.c) --------------------------- */
struct vstor_uri {
  char *backend;   /* "file", "lvm", "libvirt", "xen", "rbd" */
  char *path;      /* file: image path; loop/phy: device path */
  char *vg, *lv;   /* lvm */
  char *domain;    /* libvirt/xen: name, UUID or domid */
  char *disk;      /* libvirt target ("vda") / xen vdev ("xvda1") */
  char *conn;      /* libvirt connection URI ("qemu:///system") */
  char *pool, *image, *ns, *snap, *client, *conf; /* rbd */
  /* Xen disk spec fields ("phy:/dev/vg/lv,xvda1,w") */
  char *format;    /* "raw", "qcow2", ... (xen spec) */
  char *vdev;      /* xen spec vdev */
  char *access;    /* "rw" or "ro" (xen spec / ?mode=) */
  char *spec_type; /* "phy", "file", "tap:aio", "tap:qcow2", "qdisk", ... */
  struct vstor_uri *lower; /* layer below when the URI names it (xen spec) */
};
int vstor__uri_parse(const char *text, struct vstor_uri **out);
void vstor__uri_free(struct vstor_uri *u);

/* ---- reports and layers (the public opaque types) ----------------- */
struct vstor_step {
  char *layer, *action, *detail;
  int status;      /* enum vstor_step_status */
  int reversible;
};
struct vstor_report {
  struct vstor_step *steps;
  size_t nsteps, cap;
  uint64_t frozen_us, old_size, new_size;
  int consistency;
  char *method;
};
struct vstor_prop { char *key, *val; };
struct vstor_layer {
  char *role, *type, *path;
  uint64_t size;
  struct vstor_prop *props;
  size_t nprops;
};
struct vstor_opts {
  uint32_t freeze_timeout_ms;
  uint64_t speed;
  uint64_t snapshot_size;
  vstor_progress_fn progress;
  void *progress_opaque;
};

struct vstor_backend_ops;
struct vstor_lock;
/* A journal record: a small key=value file, rewritten atomically and
 * fsync'd (file and directory) before each irreversible step. */
struct vstor_jrec;

struct vstor_vol {
  vstor_ctx *ctx;
  const struct vstor_backend_ops *ops;
  struct vstor_uri *uri;
  char *uri_text;
  char *id;              /* canonical id: lock and journal key */
  unsigned flags;        /* VSTOR_OPEN_* */
  struct vstor_layer *layers;
  size_t nlayers;
  struct vstor_lock *held_lock; /* VSTOR_OPEN_EXCLUSIVE */
  vstor_vol *lower;      /* stacked volume below, or NULL */
  int njobs;             /* live jobs started on this volume */
  void *priv;            /* backend data */
  /* Serialises the public calls on one handle (backends run under it,
   * except job_run, which must not touch layers). */
  pthread_mutex_t mu;
};

/* ---- jobs --------------------------------------------------------- */
/* The core owns the job object, its thread, its event fd and its state
 * machine.  A backend supplies the work: `run` is called on the job's
 * thread and returns when the copy is in sync (state becomes READY) or
 * failed/cancelled; `pivot`, `complete` and `cancel` are called on the
 * caller's thread with the job in a permitted state.  Backends report
 * progress with vstor_job_progress_set() and poll vstor_job_cancelled(). */
struct vstor_job {
  vstor_vol *vol;
  char *dest;
  unsigned flags;
  struct vstor_opts opts;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int state;
  uint64_t done, total, speed;
  bool cancel_requested, thread_started, stop_requested;
  pthread_t thread;
  int efd;
  int err_code, err_errno;
  char *err_msg;
  struct vstor_lock *lock;
  void *priv;            /* backend data */
  char *journal_id;
};

/* ---- the vtable ---------------------------------------------------- */
struct vstor_backend_ops {
  unsigned abi;          /* VSTOR_BACKEND_ABI */
  const char *name;
  /* Module-level availability of op (-1: any op): 1 yes, 0 no with *why. */
  int (*available)(vstor_ctx *ctx, int op, char **why);
  /* Fill vol->id, vol->layers, vol->priv from vol->uri. */
  int (*open)(vstor_vol *vol);
  void (*close)(vstor_vol *vol);
  int (*refresh)(vstor_vol *vol);
  int (*size)(vstor_vol *vol, uint64_t *size);
  int (*can)(vstor_vol *vol, int op, unsigned flags, char **why);
  /* Operations: the core has validated flags, taken the volume lock,
   * refused read-only handles, and created `rep`.  Dry run: fill the
   * plan only.  Set the error and return -1 on failure. */
  int (*extend)(vstor_vol *vol, uint64_t size, const struct vstor_opts *o,
                unsigned flags, vstor_report *rep);
  int (*snapshot)(vstor_vol *vol, const char *dest, const struct vstor_opts *o,
                  unsigned flags, vstor_report *rep);
  /* Validate and plan a mirror (called before the job thread starts;
   * with dry run only this runs). */
  int (*mirror_prepare)(vstor_vol *vol, vstor_job *job, unsigned flags,
                        vstor_report *rep);
  int (*job_run)(vstor_job *job);
  int (*job_pivot)(vstor_job *job);
  int (*job_complete)(vstor_job *job);
  int (*job_cancel)(vstor_job *job);  /* remove the partial copy */
  void (*job_free)(vstor_job *job);
  /* Handle one journal record left by a dead process (see journal.h):
   * thaw, remove, release.  Must be idempotent. */
  int (*recover)(vstor_ctx *ctx, const struct vstor_jrec *rec,
                 vstor_report *rep);
  /* The context is being freed (no volume or job is left in it): release
   * what the backend keeps in its context slot (host->ctx_slot).  Called
   * once per context whose slot the backend set; may be NULL. */
  void (*ctx_free)(vstor_ctx *ctx, void *slot);
};

/* ---- services of the core ------------------------------------------ */
struct vstor_host {
  unsigned abi;
  void (*verror)(int code, int errnum, const char *fmt, va_list ap);
  void (*vlog)(vstor_ctx *ctx, int level, const char *fmt, va_list ap);
  /* Journal: begin a record for (vol, op) (in memory until the first
   * jrec_set); jrec_put adds a key in memory; jrec_set adds one and writes
   * the record durably (call it last, right before the irreversible step);
   * end removes it.  A record given the key durable=no (jrec_put before
   * the first jrec_set) is written without fsync: for operations whose
   * effect does not outlive a reboot (a loop capacity), where the record
   * only has to survive the death of the process. */
  struct vstor_jrec *(*jrec_begin)(vstor_vol *vol, const char *op);
  int (*jrec_set)(struct vstor_jrec *r, const char *key, const char *val);
  void (*jrec_end)(struct vstor_jrec *r);
  const char *(*jrec_get)(const struct vstor_jrec *r, const char *key);
  /* Fault injection: stops the process if $VSTOR_FAULT names `point`. */
  void (*fault)(const char *point);
  /* Open another volume by URI (a lower layer), same context. */
  int (*open_lower)(vstor_ctx *ctx, const char *uri, unsigned flags,
                    vstor_vol **out);
  void (*close_lower)(vstor_vol *vol);
  const char *(*state_dir)(vstor_ctx *ctx);
  /* Jobs: progress and cancellation from job_run. */
  void (*job_progress)(vstor_job *job, uint64_t done, uint64_t total);
  bool (*job_cancelled)(vstor_job *job);
  uint64_t (*job_speed)(vstor_job *job);
  /* The calling thread's last error: a copy of its message (free it) and
   * code/errno; and a way to put back one saved earlier, so a helper that
   * failed inside an operation that then succeeds leaves no trace. */
  char *(*error_get)(int *code, int *errnum);
  void (*error_set)(int code, int errnum, const char *msg);
  void (*jrec_put)(struct vstor_jrec *r, const char *key, const char *val);
  /* Per-context data of a backend (a cluster connection, ...): the address
   * of this context's slot for `ops`, NULL until the backend stores
   * something; valid until the context is freed, when ops->ctx_free gets
   * it.  Creating the slot is serialised by the core; what is stored in
   * it must be made thread-safe by the backend. */
  void **(*ctx_slot)(vstor_ctx *ctx, const struct vstor_backend_ops *ops);
};

/* Set by the core for built-in backends, by vstor_backend_init() in a
 * module.  Each module has its own copy of this variable. */
extern const struct vstor_host *vstor_host;

__attribute__((format(printf, 3, 4)))
static inline int vstor_err(int code, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vstor_host->verror(code, errnum, fmt, ap);
  va_end(ap);
  return -1;
}
__attribute__((format(printf, 3, 4)))
static inline void vstor_log(vstor_ctx *ctx, int level, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vstor_host->vlog(ctx, level, fmt, ap);
  va_end(ap);
}
static inline void vstor_fault(const char *point) { vstor_host->fault(point); }

/* Entry point of a module. */
typedef const struct vstor_backend_ops *(*vstor_backend_init_fn)(
    const struct vstor_host *host);
#define VSTOR_BACKEND_INIT_SYMBOL "vstor_backend_init"

/* Defines a module's entry point, its one exported symbol:
 *   VSTOR_BACKEND_MODULE(lvm_ops);   */
#define VSTOR_BACKEND_MODULE(ops)                                              \
  __attribute__((visibility("default")))                                       \
  const struct vstor_backend_ops *vstor_backend_init(const struct vstor_host *host); \
  const struct vstor_backend_ops *vstor_backend_init(const struct vstor_host *host) \
  {                                                                            \
    vstor_host = host;                                                         \
    return &(ops);                                                             \
  }

#endif
