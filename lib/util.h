/* libvstor - helpers shared by the core and the backend modules
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Built as a static library (libvstor_util.a, PIC) linked into libvstor.so
 * and into every module.  Nothing here keeps global state: errors are
 * reported through vstor_err() (backend.h), which reaches the core.
 */
#ifndef VSTOR_UTIL_H
#define VSTOR_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "backend.h"

/* ---- memory and strings ------------------------------------------- */
char *vu_strdup(const char *s);                 /* NULL-safe, aborts on OOM */
__attribute__((format(printf, 1, 2))) char *vu_asprintf(const char *fmt, ...);
void *vu_calloc(size_t n, size_t sz);           /* aborts on OOM */
uint64_t vu_now_us(void);                       /* CLOCK_MONOTONIC */
char *vu_human_size(uint64_t bytes);            /* "1.5 GiB", malloc'd */
/* Percent-encode a value for a libvstor URI (query or path part): keeps
 * letters, digits and "/-._~:", malloc'd. */
char *vu_pct_encode(const char *s);
/* A copy of the thread's last error message without its "vstor_call: "
 * prefix, to embed it in a wider message. */
char *vu_last_error_body(void);
/* Outside text as an error message shows it: control characters as '?',
 * cut after 124 characters with "...".  Returns out (128 bytes). */
const char *vu_shown(const char *text, char out[128]);

/* ---- reports and layers -------------------------------------------- */
vstor_report *vu_report_new(void);
__attribute__((format(printf, 6, 7)))
void vu_step(vstor_report *rep, const char *layer, const char *action,
             int status, int reversible, const char *fmt, ...);
/* Mark the last step with this layer+action as done/failed/... */
void vu_step_set(vstor_report *rep, size_t idx, int status, const char *detail);
void vu_report_method(vstor_report *rep, const char *method);
struct vstor_layer *vu_layer_add(vstor_vol *vol, const char *role,
                                 const char *type, const char *path,
                                 uint64_t size);
void vu_layer_prop(struct vstor_layer *l, const char *key, const char *val);
void vu_layers_clear(vstor_vol *vol);

/* ---- running tools (never a shell) ---------------------------------- */
/* Run argv[0] (looked up in a fixed PATH: /usr/sbin:/usr/bin:/sbin:/bin)
 * with a clean environment (PATH, LC_ALL=C), stdin /dev/null.  Returns
 * the exit status (0..255), or -1 (error set) if it could not run or died
 * of a signal.  *out / *err (if not NULL) receive the captured stdout and
 * stderr, malloc'd, trailing newline stripped. */
int vu_run(const char *const argv[], char **out, char **err);
/* Is `tool` on the fixed PATH? */
bool vu_have_tool(const char *tool);

/* ---- block devices, filesystems, mounts ----------------------------- */
/* Filesystem type on a device or image (libblkid), malloc'd, NULL if none. */
char *vu_fs_type(const char *path);
/* Mount point of the filesystem on block device `dev` (by device number,
 * libmount on /proc/self/mountinfo), malloc'd, NULL if not mounted.
 * *ro (if not NULL) tells whether it is mounted read-only. */
char *vu_mountpoint_of_dev(dev_t dev, bool *ro);
/* Is fs type growable online / offline by vu_fs_grow? */
bool vu_fs_can_grow(const char *fstype, bool mounted, char **why);
/* Grow the filesystem on `dev` (mounted at `mnt`, or NULL) to fill it. */
int vu_fs_grow(const char *fstype, const char *dev, const char *mnt);
/* Free bytes for unprivileged+privileged writes on the fs holding path. */
int vu_fs_free(const char *path, uint64_t *free_bytes);
/* Block device size (BLKGETSIZE64) of an open fd or a path. */
int vu_blk_size(const char *dev, uint64_t *size);

/* ---- freeze with a guard ------------------------------------------- */
/* FIFREEZE the filesystem mounted at `mnt` and start a guard process that
 * thaws it when the caller dies, closes the guard pipe, or `timeout_ms`
 * runs out, whichever comes first.  vu_thaw() thaws, stops the guard and
 * returns 0, or -1 with TIMEOUT if the guard had to thaw because the
 * window ran out (the snapshot taken under it is then not consistent). */
struct vu_freeze {
  int mnt_fd;
  int pipe_w;
  pid_t guard;
  uint64_t t_start, t_end;
  bool frozen;
  bool expedited;     /* RCU grace periods expedited for the window */
  int qos_fd;         /* /dev/cpu_dma_latency held at 0 for the window, or -1 */
};
/* FIFREEZE mnt under a guard process that thaws when timeout_ms runs out
 * or the caller dies.  expedite: set /sys/kernel/rcu_expedited for the
 * window (shared across processes through /run/libvstor; the guard
 * restores it), which makes FIFREEZE's grace periods microseconds, and
 * hold a 0 us PM QoS request (/dev/cpu_dma_latency) so that no CPU sleeps
 * deeply while the freeze waits on it; if the knob cannot be set the
 * freeze goes on without (fz->expedited false). */
int vu_freeze(struct vu_freeze *fz, const char *mnt, uint32_t timeout_ms, bool expedite);
int vu_thaw(struct vu_freeze *fz);
/* Thaw whatever is frozen at mnt (used by recover); EINVAL (not frozen)
 * counts as success. */
int vu_thaw_path(const char *mnt);

/* ---- copying ------------------------------------------------------- */
/* Clone src into dst with FICLONE; -1 with errno EXDEV/EOPNOTSUPP/EINVAL
 * when not possible (no error set: the caller falls back). */
int vu_reflink(int src_fd, int dst_fd);
/* Sum of allocated (SEEK_DATA) bytes of fd up to size. */
int vu_allocated(int fd, uint64_t size, uint64_t *bytes);
struct vu_copy_ctl {
  /* called between chunks; return true to stop (cancel) */
  bool (*cancelled)(void *opaque);
  void (*progress)(void *opaque, uint64_t done, uint64_t total);
  uint64_t (*speed)(void *opaque);   /* bytes/s, 0 unlimited */
  void *opaque;
  uint64_t total;                    /* allocated bytes to copy */
};
/* Copy the allocated data of src to dst (dst sized to src, holes kept),
 * with copy_file_range, in chunks, honouring ctl.  Returns 0, or -1 with
 * the error set (CANCELLED when ctl said stop). */
int vu_sparse_copy(int src_fd, int dst_fd, uint64_t size,
                   struct vu_copy_ctl *ctl);
/* Make dst identical to src by comparing chunks and rewriting only those
 * that differ (holes in src punched in dst).  *changed receives the bytes
 * rewritten. */
int vu_resync(int src_fd, int dst_fd, uint64_t size, uint64_t *changed);
/* Compare src and dst byte for byte; 0 equal, -1 (IO error naming the
 * first differing offset) otherwise. */
int vu_verify(int src_fd, int dst_fd, uint64_t size);

#endif
