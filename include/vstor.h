/* libvstor - live storage operations on virtual machine disks
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Conventions (see vstor(3)):
 *  - Every function that can fail returns -1 (or NULL) and sets a
 *    thread-local error: vstor_last_error() (message naming the call and
 *    the object), vstor_last_errno() and vstor_last_code() (a stable
 *    VSTOR_E_* code).  Success returns 0 (or a non-NULL pointer) and leaves
 *    the last error untouched.
 *  - All types are opaque.  Unknown flag bits are refused with VSTOR_E_INVAL.
 *  - Sizes are bytes.  Times are microseconds unless the name says _ms.
 *  - The library starts no thread except one per mirror job, which the
 *    caller asked for by starting the job.
 */
#ifndef VSTOR_H
#define VSTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VSTOR_VERSION_MAJOR 0
#define VSTOR_VERSION_MINOR 1
#define VSTOR_VERSION_MICRO 0

/* Compile-time feature tests, one per public call group. */
#define VSTOR_HAVE_VSTOR_JOB_FD 1
#define VSTOR_HAVE_VSTOR_RECOVER 1

typedef struct vstor_ctx vstor_ctx;
typedef struct vstor_vol vstor_vol;
typedef struct vstor_job vstor_job;
typedef struct vstor_opts vstor_opts;
typedef struct vstor_report vstor_report;
typedef struct vstor_layer vstor_layer;

/* ---- errors -------------------------------------------------------- */

/* Stable error codes.  Values never change; new ones are only appended. */
enum vstor_code {
  VSTOR_E_OK = 0,
  VSTOR_E_INVAL = 1,     /* bad argument, URI, size or flag */
  VSTOR_E_NOENT = 2,     /* no such volume, domain, disk */
  VSTOR_E_EXIST = 3,     /* destination already exists */
  VSTOR_E_BUSY = 4,      /* locked by another process or in use */
  VSTOR_E_NOSPC = 5,     /* not enough space to grow or copy */
  VSTOR_E_PERM = 6,      /* permission denied, or refused by the kernel */
  VSTOR_E_NOTSUP = 7,    /* missing module, tool, daemon, kernel feature */
  VSTOR_E_AGAIN = 8,     /* a retry may succeed */
  VSTOR_E_TIMEOUT = 9,   /* a bounded wait ran out */
  VSTOR_E_STATE = 10,    /* call not permitted in the object's state */
  VSTOR_E_BACKEND = 11,  /* an external tool or daemon failed */
  VSTOR_E_IO = 12,       /* I/O error */
  VSTOR_E_CANCELLED = 13,/* the operation was cancelled */
  VSTOR_E_INTERNAL = 14, /* a bug in libvstor */
  VSTOR_E_PARTIAL = 15   /* some layers changed, a later one failed;
                            the report says which */
};

/** Message of the last error of this thread ("vstor_extend: /img: ..."),
 *  or NULL if none.  Valid until the next failing call in this thread. */
const char *vstor_last_error(void);
/** errno of the last error of this thread (0 if none applies). */
int vstor_last_errno(void);
/** Stable code (enum vstor_code) of the last error of this thread. */
int vstor_last_code(void);
/** Name of an error code ("BUSY"), or NULL for an unknown code. */
const char *vstor_code_name(int code);

/** Version string of the library at run time, e.g. "0.1.0". */
const char *vstor_version(void);

/* ---- context ------------------------------------------------------- */

/** Create a library context.  flags must be 0.  The state directory
 *  defaults to $VSTOR_STATE_DIR or /var/lib/vstor, the backend module
 *  directory to $VSTOR_BACKEND_DIR or the installed one.  Free with
 *  vstor_ctx_free().  Returns NULL on error. */
vstor_ctx *vstor_ctx_new(unsigned flags);
/** Free a context.  Volumes and jobs opened from it must be freed first;
 *  freeing a context with live volumes is refused rather than leaving
 *  dangling handles: nothing is freed and the thread's last error is
 *  STATE.  NULL is accepted. */
void vstor_ctx_free(vstor_ctx *ctx);
/** Set the state directory (lock files, operation journal).  Absolute
 *  path; created (mode 0700) on first use. */
int vstor_ctx_set_state_dir(vstor_ctx *ctx, const char *path);
/** Directory where backend modules are searched (absolute path). */
int vstor_ctx_set_backend_dir(vstor_ctx *ctx, const char *path);
/** The state directory in use. */
const char *vstor_ctx_state_dir(vstor_ctx *ctx);

enum vstor_log_level {
  VSTOR_LOG_ERROR = 0, VSTOR_LOG_WARN = 1, VSTOR_LOG_INFO = 2,
  VSTOR_LOG_DEBUG = 3
};
typedef void (*vstor_log_fn)(void *opaque, int level, const char *msg);
/** Route library (and backend tool) logs to fn; NULL restores the default
 *  (silent).  Messages above max_level are not delivered. */
int vstor_ctx_set_log(vstor_ctx *ctx, vstor_log_fn fn, void *opaque,
                      int max_level);

/* ---- backends and capabilities ------------------------------------ */

enum vstor_op {
  VSTOR_OP_EXTEND = 0,
  VSTOR_OP_EXTEND_ONLINE = 1, /* extend while the volume is in use */
  VSTOR_OP_RESIZE_FS = 2,     /* grow the filesystem on the volume */
  VSTOR_OP_SNAPSHOT = 3,
  VSTOR_OP_FREEZE = 4,        /* quiesce for an application-consistent snapshot */
  VSTOR_OP_MIRROR = 5,
  VSTOR_OP_PIVOT = 6,
  VSTOR_OP__COUNT = 7
};
/** Name of an operation ("extend-online"), or NULL if unknown. */
const char *vstor_op_name(int op);

/** Number of backends libvstor knows of (built in or as modules). */
size_t vstor_backend_count(void);
/** Name of backend i ("file", "lvm", "libvirt", "xen", "rbd"); NULL past
 *  the end. */
const char *vstor_backend_name(size_t i);
/** Can backend `name` do `op` on this machine at all (module, libraries,
 *  tools, daemons present)?  Returns 1 yes, 0 no (and *why, if why is
 *  not NULL, a malloc'd reason for the caller to free), -1 on error. */
int vstor_backend_can(vstor_ctx *ctx, const char *name, int op, char **why);

/* ---- volumes ------------------------------------------------------- */

enum {
  VSTOR_OPEN_READONLY = 1u << 0,  /* refuse every changing operation */
  VSTOR_OPEN_EXCLUSIVE = 1u << 1  /* hold the volume lock until close */
};

/** Open a volume by URI (see vstor-uri(7)): "file:/img", "/img",
 *  "loop:/dev/loop0", "lvm:vg/lv", "libvirt:dom/vda?uri=...",
 *  "xen:dom/xvda", "phy:/dev/vg/lv,xvda,w", "rbd:pool/image".
 *  On success *vol is a new handle; free with vstor_close(). */
int vstor_open(vstor_ctx *ctx, const char *uri, unsigned flags,
               vstor_vol **vol);
/** Close a volume handle.  Jobs started on it must be freed first;
 *  closing with a live job is refused (the handle stays valid). */
int vstor_close(vstor_vol *vol);

/** Backend serving the top layer ("file"). */
const char *vstor_vol_backend(vstor_vol *vol);
/** Canonical id of the volume (used for its lock and journal). */
const char *vstor_vol_id(vstor_vol *vol);
/** Current size of the volume in bytes (re-read from the storage). */
int vstor_vol_size(vstor_vol *vol, uint64_t *size);
/** Re-read the layers (after something outside changed them). */
int vstor_vol_refresh(vstor_vol *vol);
/** Number of layers, bottom (storage) first. */
size_t vstor_vol_layer_count(vstor_vol *vol);
/** Layer i, owned by the volume and valid until the next refresh or
 *  close; NULL past the end. */
const vstor_layer *vstor_vol_layer(vstor_vol *vol, size_t i);
/** Role of a layer: "storage", "exposure", "hypervisor", "filesystem". */
const char *vstor_layer_role(const vstor_layer *layer);
/** Type of a layer: "file", "loop", "xfs", "lvm", "libvirt", ... */
const char *vstor_layer_type(const vstor_layer *layer);
/** Path or name of a layer ("/dev/loop0", "vm1/vda"). */
const char *vstor_layer_path(const vstor_layer *layer);
/** Size of the layer in bytes, 0 when it has none (a mount). */
uint64_t vstor_layer_size(const vstor_layer *layer);
/** Key of property i of a layer, NULL past the end. */
const char *vstor_layer_prop_key(const vstor_layer *layer, size_t i);
/** Value of property `key` ("mountpoint"), NULL if absent. */
const char *vstor_layer_prop(const vstor_layer *layer, const char *key);

/** Can `op` be done on this volume now?  1 yes, 0 no (with *why, a
 *  malloc'd reason, if why is not NULL), -1 on error.  flags: the flags
 *  the operation would be called with. */
int vstor_vol_can(vstor_vol *vol, int op, unsigned flags, char **why);

/* ---- options ------------------------------------------------------- */

/** Options for one operation.  NULL may be passed wherever a
 *  const vstor_opts * is taken: defaults apply. */
vstor_opts *vstor_opts_new(void);
void vstor_opts_free(vstor_opts *opts);
/** Bound on the frozen window (default 10000 ms): if the snapshot is not
 *  taken by then it is abandoned, the volume thawed, TIMEOUT returned. */
int vstor_opts_set_freeze_timeout_ms(vstor_opts *opts, uint32_t ms);
/** Copy speed limit in bytes per second (0, the default, is unlimited). */
int vstor_opts_set_speed(vstor_opts *opts, uint64_t bytes_per_sec);
/** Size of a snapshot where the storage needs one (LVM classic CoW). */
int vstor_opts_set_snapshot_size(vstor_opts *opts, uint64_t bytes);
typedef void (*vstor_progress_fn)(void *opaque, uint64_t done,
                                  uint64_t total);
/** Progress callback for long work, called from the thread doing it
 *  (a mirror job's own thread). total is 0 while unknown. */
int vstor_opts_set_progress(vstor_opts *opts, vstor_progress_fn fn,
                            void *opaque);

/* ---- reports ------------------------------------------------------- */

enum vstor_step_status {
  VSTOR_STEP_PLANNED = 0, VSTOR_STEP_DONE = 1, VSTOR_STEP_SKIPPED = 2,
  VSTOR_STEP_FAILED = 3, VSTOR_STEP_UNDONE = 4
};
enum vstor_consistency {
  VSTOR_CONSISTENT_NONE = 0,   /* no snapshot was taken */
  VSTOR_CONSISTENT_IDLE = 1,   /* nothing had it open: consistent as is */
  VSTOR_CONSISTENT_FS = 2,     /* filesystem frozen (FIFREEZE / agent) */
  VSTOR_CONSISTENT_CRASH = 3   /* crash-consistent only */
};

/** Steps an operation planned (dry run) or did, bottom layer first. */
size_t vstor_report_step_count(const vstor_report *rep);
const char *vstor_report_step_layer(const vstor_report *rep, size_t i);
const char *vstor_report_step_action(const vstor_report *rep, size_t i);
/** enum vstor_step_status of step i, -1 past the end. */
int vstor_report_step_status(const vstor_report *rep, size_t i);
/** 1 if step i can be undone, 0 if not, -1 past the end. */
int vstor_report_step_reversible(const vstor_report *rep, size_t i);
/** Free text for step i: what it needs, or what it did, or why it failed. */
const char *vstor_report_step_detail(const vstor_report *rep, size_t i);
/** Frozen (or paused) window of a snapshot, microseconds. */
uint64_t vstor_report_frozen_us(const vstor_report *rep);
/** enum vstor_consistency of a snapshot. */
int vstor_report_consistency(const vstor_report *rep);
/** Volume size before and after the operation. */
uint64_t vstor_report_old_size(const vstor_report *rep);
uint64_t vstor_report_new_size(const vstor_report *rep);
/** How the snapshot or copy was made ("reflink", "sparse-copy", ...). */
const char *vstor_report_method(const vstor_report *rep);
void vstor_report_free(vstor_report *rep);

/* ---- sizes --------------------------------------------------------- */

/** Parse "50G", "+10G", "1048576", "512M" (binary units K M G T P, an
 *  optional "iB"/"B"), relative to `current` when it starts with '+'.
 *  Overflow, negative and empty sizes are refused with INVAL. */
int vstor_parse_size(const char *text, uint64_t current, uint64_t *out);

/* ---- operations ---------------------------------------------------- */

/* Flag valid for every operation: plan only, change nothing. */
#define VSTOR_DRY_RUN (1u << 31)

enum {
  VSTOR_EXTEND_PREALLOC = 1u << 0,  /* allocate the new space (fallocate) */
  VSTOR_EXTEND_RESIZE_FS = 1u << 1  /* grow the filesystem on top too */
};
/** Grow the volume to new_size bytes through every layer (storage,
 *  exposure, hypervisor, and filesystem with VSTOR_EXTEND_RESIZE_FS).
 *  Shrinking is refused (INVAL); the current size succeeds and changes
 *  nothing.  Space is checked before any change (NOSPC).  If report is
 *  not NULL, *report receives the steps (also after a failure, when
 *  some step ran: the error code is then PARTIAL); free it with
 *  vstor_report_free().  Flags: VSTOR_EXTEND_*, VSTOR_DRY_RUN. */
int vstor_extend(vstor_vol *vol, uint64_t new_size, const vstor_opts *opts,
                 unsigned flags, vstor_report **report);

enum {
  VSTOR_SNAPSHOT_CRASH_CONSISTENT = 1u << 0, /* allow no freeze */
  VSTOR_SNAPSHOT_NO_REFLINK = 1u << 1,       /* always copy the data */
  VSTOR_SNAPSHOT_EXPEDITE = 1u << 2          /* shorten FIFREEZE (see below) */
};
/** Quiesce, snapshot to `dest` (a path or URI the backend accepts),
 *  thaw.  The thaw is guaranteed even if the process is killed; the
 *  frozen window is bounded by the freeze timeout and reported.  A
 *  volume that cannot be quiesced is refused unless
 *  VSTOR_SNAPSHOT_CRASH_CONSISTENT.  dest must not exist (EXIST).
 *  VSTOR_SNAPSHOT_EXPEDITE (host FIFREEZE, root): the kernel's freeze
 *  waits for RCU grace periods (milliseconds each); with this flag they
 *  are expedited system-wide (/sys/kernel/rcu_expedited) from just before
 *  the freeze until the thaw, then restored, also if the caller dies, and
 *  a 0 us PM QoS request (/dev/cpu_dma_latency) keeps CPUs out of deep
 *  idle meanwhile.  A hint: ignored where no host freeze is done or the
 *  knob is missing. */
int vstor_snapshot(vstor_vol *vol, const char *dest, const vstor_opts *opts,
                   unsigned flags, vstor_report **report);

enum {
  VSTOR_MIRROR_SHALLOW = 1u << 0,     /* top layer only (qcow2 chains) */
  VSTOR_MIRROR_REUSE_DEST = 1u << 1,  /* dest exists with the right size */
  VSTOR_MIRROR_VERIFY = 1u << 2       /* checksum the copy before pivot */
};
/** Start copying the volume to dest.  On success *job is a running job
 *  (free with vstor_job_free()).  With VSTOR_DRY_RUN no job is started,
 *  *job is set to NULL and *report (if not NULL) holds the plan. */
int vstor_mirror(vstor_vol *vol, const char *dest, const vstor_opts *opts,
                 unsigned flags, vstor_job **job, vstor_report **report);

/* ---- jobs ---------------------------------------------------------- */

enum vstor_job_state {
  VSTOR_JOB_PENDING = 0,   /* created, not copying yet */
  VSTOR_JOB_RUNNING = 1,   /* copying */
  VSTOR_JOB_READY = 2,     /* in sync: pivot or complete permitted */
  VSTOR_JOB_PIVOTED = 3,   /* the volume now uses the copy */
  VSTOR_JOB_COMPLETED = 4, /* copy kept, the volume stays on its source */
  VSTOR_JOB_CANCELLED = 5, /* copy removed, source untouched */
  VSTOR_JOB_FAILED = 6
};
/** Name of a job state ("READY"), NULL if unknown. */
const char *vstor_job_state_name(int state);
/** Current enum vstor_job_state. */
int vstor_job_state(vstor_job *job);
/** Bytes copied and bytes to copy; *total is 0 while not yet measured,
 *  never "0 of 0 = done". */
int vstor_job_progress(vstor_job *job, uint64_t *done, uint64_t *total);
/** Wait until the job is READY or has ended, at most timeout_ms (-1:
 *  no bound).  TIMEOUT if the bound ran out; the job's own error if it
 *  FAILED.  flags must be 0. */
int vstor_job_wait(vstor_job *job, int timeout_ms, unsigned flags);
/** A file descriptor (owned by the job) that becomes readable whenever
 *  the state or progress changes; read 8 bytes from it to reset it. */
int vstor_job_fd(vstor_job *job);
/** Change the speed limit of a running job (bytes/s, 0 unlimited). */
int vstor_job_set_speed(vstor_job *job, uint64_t bytes_per_sec);
/** Stop the job and remove the partial copy; the source is untouched. */
int vstor_job_cancel(vstor_job *job, unsigned flags);
/** Switch the volume onto the copy.  Only in READY (else STATE). */
int vstor_job_pivot(vstor_job *job, unsigned flags);
/** End the job keeping a point-in-time copy; the volume stays on its
 *  source.  Only in READY (else STATE). */
int vstor_job_complete(vstor_job *job, unsigned flags);
/** Destination of the job. */
const char *vstor_job_dest(vstor_job *job);
/** Free a job.  A job not yet ended is cancelled first. */
void vstor_job_free(vstor_job *job);

/* ---- recovery ------------------------------------------------------ */

/** Finish or roll back what a crashed process left half-done, from the
 *  journal in the state directory: thaw frozen filesystems, remove
 *  half-made snapshots and copies, drop stale locks.  Idempotent.  If
 *  report is not NULL it receives one step per record handled. */
int vstor_recover(vstor_ctx *ctx, unsigned flags, vstor_report **report);

#ifdef __cplusplus
}
#endif
#endif /* VSTOR_H */
