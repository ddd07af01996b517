/* libvstor tests - real fixtures: host filesystems on loop devices,
 * images, mounts; everything registered is torn down at exit, even when
 * a test fails (atexit + fatal signal handlers).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSTOR_TEST_HELPERS_H
#define VSTOR_TEST_HELPERS_H
#include <stdbool.h>
#include <stdint.h>
#include "vstor.h"

/* Run a shell command line (tests only: the library never uses a shell).
 * Returns the exit status. */
int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run and capture the first line of stdout (malloc'd). */
char *sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A fresh scratch directory under /var/tmp, removed at exit. */
const char *scratch(void);
/* Make a host filesystem ("xfs", "btrfs", "ext4", "tmpfs") of `mib` MiB on a
 * loop device (or tmpfs) mounted at a new directory; returns the mount point. */
char *mkpool(const char *fstype, unsigned mib);
/* Create a raw image of `mib` MiB at dir/name; with fstype make that fs
 * in it; with attach, a loop device (returned in *loop); with mount, mount
 * it at a new directory (returned in *mnt). Returns the image path. */
char *mkimage(const char *dir, const char *name, unsigned mib, const char *fstype,
              bool attach, char **loop, bool mount, char **mnt);
void track_loop(const char *dev);
void track_mount(const char *mnt);
/* Unmount / detach now (also removes them from the exit list). */
void do_umount(const char *mnt);
/* sha256 of a file or device (hex, malloc'd). */
char *sha256(const char *path);
uint64_t blkdev_size(const char *dev);
uint64_t file_size(const char *path);
/* Writable within timeout_ms?  (a frozen filesystem blocks writers) */
bool fs_writable(const char *mnt, int timeout_ms);
/* New context with a private state dir and the build's backend dir. */
vstor_ctx *test_ctx(void);
/* Number of loop devices backed by path. */
int loops_of(const char *path);
/* Backing file of a loop device (malloc'd). */
char *loop_backing(const char *dev);
/* A writer process appending to mnt/<name> until stopped. */
int start_writer(const char *mnt, const char *name);
void stop_writer(int pid);
#endif
