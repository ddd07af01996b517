/* libvstor file backend - private declarations
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSTOR_FILE_H
#define VSTOR_FILE_H
#include <stdbool.h>
#include <sys/types.h>
#include "util.h"

struct floop {
  char *dev;          /* /dev/loopN */
  dev_t rdev;
  bool ro;
  uint64_t offset, sizelimit;
  char *fstype;       /* filesystem on the loop device, or NULL */
  char *mnt;          /* where it is mounted, or NULL */
  bool mnt_ro;
  bool holders;       /* dm/md stacked on it */
};

struct fpriv {
  char *path;         /* image path */
  int fd;             /* the image, opened once (O_NOFOLLOW) */
  dev_t dev;          /* st_dev/st_ino of the image */
  ino_t ino;
  struct floop *loops;
  size_t nloops;
  char *fstype;       /* filesystem directly in the file when no loop */
};

/* loop.c */
int floop_scan(dev_t dev, ino_t ino, bool probe, struct floop **out, size_t *n);
void floop_free(struct floop *l, size_t n);
int floop_set_capacity(const char *dev);
int floop_change_fd(const char *dev, int newfd);
int floop_rebind(const char *dev, const char *newpath);
struct loop_info64;
int floop_bind(const char *dev, const char *path, const struct loop_info64 *li, bool ro);
int floop_status(const char *dev, uint64_t *fdev, uint64_t *fino);
int floop_pivot_check(const struct floop *l, char **why);
bool proc_has_cap(int cap);

/* file.c */
int file_refresh(vstor_vol *vol);
int file_dest_path(vstor_vol *vol, const char *dest, char **path);
int file_dest_refuse_frozen(vstor_vol *vol, const char *dpath);

/* mirror.c */
int file_mirror_prepare(vstor_vol *vol, vstor_job *job, unsigned flags, vstor_report *rep);
int file_job_run(vstor_job *job);
int file_job_pivot(vstor_job *job);
int file_job_complete(vstor_job *job);
int file_job_cancel(vstor_job *job);
void file_job_free(vstor_job *job);
int file_recover_mirror(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep);
#endif
