/* libvstor - LVM backend: device-mapper through libdevmapper
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libdevmapper keeps global state (log functions, udev settings, the
 * control fd, name caches) and is not thread-safe, so every call into it
 * below runs under one process-wide mutex.  Mirror jobs poll status from
 * their own thread while the caller may be opening volumes.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <libdevmapper.h>
#include "lvm-priv.h"

static pthread_mutex_t dm_mu = PTHREAD_MUTEX_INITIALIZER;
static bool dm_ready;
static char dm_last[256];   /* last message from libdevmapper, under dm_mu */

__attribute__((format(printf, 5, 6)))
static void dm_logger(int level, const char *file, int line, int dm_errno_or_class,
                      const char *f, ...)
{
  (void)file; (void)line; (void)dm_errno_or_class;
  if (level > 3) return;  /* _LOG_ERR and worse only */
  va_list ap;
  va_start(ap, f);
  vsnprintf(dm_last, sizeof dm_last, f, ap);
  va_end(ap);
}

static void dm_lock(void)
{
  pthread_mutex_lock(&dm_mu);
  if (!dm_ready) {
    /* Quiet by default: messages go into the error we return. */
    dm_log_with_errno_init(dm_logger);
    /* We only read (info/table/status/deps) and resume; no udev cookies. */
    dm_udev_set_sync_support(0);
    dm_ready = true;
  }
  dm_last[0] = 0;
}

static void dm_unlock(void) { pthread_mutex_unlock(&dm_mu); }

/* A task for major:minor or name; NULL with the error set. Under dm_mu. */
static struct dm_task *task_new(int type, const char *name, unsigned maj, unsigned min)
{
  struct dm_task *t = dm_task_create(type);
  if (!t) {
    vstor_err(VSTOR_E_NOTSUP, ENODEV, "device-mapper: cannot create a task%s%s",
              dm_last[0] ? ": " : "", dm_last);
    return NULL;
  }
  int ok = name ? dm_task_set_name(t, name)
                : dm_task_set_major(t, (int)maj) && dm_task_set_minor(t, (int)min);
  if (!ok) {
    dm_task_destroy(t);
    vstor_err(VSTOR_E_INTERNAL, EINVAL, "device-mapper: cannot set the device");
    return NULL;
  }
  return t;
}

static int task_run(struct dm_task *t, const char *name, unsigned maj, unsigned min)
{
  if (dm_task_run(t)) return 0;
  int e = errno;
  if (name)
    vstor_err(VSTOR_E_BACKEND, e, "device-mapper device %s: %s", name,
              dm_last[0] ? dm_last : "ioctl failed");
  else
    vstor_err(VSTOR_E_BACKEND, e, "device-mapper device %u:%u: %s", maj, min,
              dm_last[0] ? dm_last : "ioctl failed");
  return -1;
}

static int info_common(const char *name, unsigned maj, unsigned min, struct lvm_dminfo *out)
{
  memset(out, 0, sizeof *out);
  dm_lock();
  struct dm_task *t = task_new(DM_DEVICE_INFO, name, maj, min);
  int r = -1;
  if (t && task_run(t, name, maj, min) == 0) {
    struct dm_info i;
    if (dm_task_get_info(t, &i)) {
      out->exists = i.exists;
      out->suspended = i.suspended;
      out->live_table = i.live_table;
      out->open_count = i.open_count;
      out->target_count = i.target_count;
      out->major = (unsigned)i.major;
      out->minor = (unsigned)i.minor;
      r = 0;
    } else {
      vstor_err(VSTOR_E_BACKEND, 0, "device-mapper: no info");
    }
  }
  if (t) dm_task_destroy(t);
  dm_unlock();
  return r;
}

int lvm_dm_info(unsigned maj, unsigned min, struct lvm_dminfo *info)
{
  return info_common(NULL, maj, min, info);
}

int lvm_dm_info_name(const char *name, struct lvm_dminfo *info)
{
  return info_common(name, 0, 0, info);
}

static char *table_common(const char *name, unsigned maj, unsigned min, bool status)
{
  dm_lock();
  struct dm_task *t = task_new(status ? DM_DEVICE_STATUS : DM_DEVICE_TABLE, name, maj, min);
  char *s = NULL;
  if (t && task_run(t, name, maj, min) == 0) {
    size_t cap = 256, n = 0;
    s = vu_calloc(cap, 1);
    void *next = NULL;
    do {
      uint64_t start, len;
      char *type = NULL, *params = NULL;
      next = dm_get_next_target(t, next, &start, &len, &type, &params);
      if (!type) break;
      char *line = vu_asprintf("%s%llu %llu %s%s%s", n ? "\n" : "", (unsigned long long)start,
                               (unsigned long long)len, type, params && *params ? " " : "",
                               params ? params : "");
      size_t l = strlen(line);
      if (n + l + 1 > cap) {
        cap = (n + l + 1) * 2;
        char *ns = realloc(s, cap);
        if (!ns) abort();
        s = ns;
      }
      memcpy(s + n, line, l + 1);
      n += l;
      free(line);
    } while (next);
  }
  if (t) dm_task_destroy(t);
  dm_unlock();
  return s;
}

char *lvm_dm_table(unsigned maj, unsigned min, bool status)
{
  return table_common(NULL, maj, min, status);
}

char *lvm_dm_table_name(const char *name, bool status)
{
  return table_common(name, 0, 0, status);
}

char *lvm_dm_deps(unsigned maj, unsigned min)
{
  dm_lock();
  struct dm_task *t = task_new(DM_DEVICE_DEPS, NULL, maj, min);
  char *s = NULL;
  if (t && task_run(t, NULL, maj, min) == 0) {
    struct dm_deps *d = dm_task_get_deps(t);
    size_t cap = 1 + (d ? d->count : 0) * 24;
    s = vu_calloc(cap, 1);
    for (uint32_t i = 0; d && i < d->count; i++) {
      char b[24];
      snprintf(b, sizeof b, "%s%u:%u", i ? " " : "", major(d->device[i]), minor(d->device[i]));
      strcat(s, b);
    }
  }
  if (t) dm_task_destroy(t);
  dm_unlock();
  return s;
}

int lvm_dm_resume(unsigned maj, unsigned min)
{
  dm_lock();
  struct dm_task *t = task_new(DM_DEVICE_RESUME, NULL, maj, min);
  int r = t ? task_run(t, NULL, maj, min) : -1;
  if (t) dm_task_destroy(t);
  dm_unlock();
  return r;
}

int lvm_dm_resume_name(const char *name)
{
  dm_lock();
  struct dm_task *t = task_new(DM_DEVICE_RESUME, name, 0, 0);
  int r = t ? task_run(t, name, 0, 0) : -1;
  if (t) dm_task_destroy(t);
  dm_unlock();
  return r;
}

/* Status of a dm-mirror target: "N dev... SYNCED/REGIONS ...". */
static bool mirror_sync(const char *params, uint64_t *in_sync, uint64_t *regions)
{
  char *end;
  unsigned long legs = strtoul(params, &end, 10);
  const char *p = end;
  for (unsigned long i = 0; i < legs; i++) {
    while (*p == ' ') p++;
    while (*p && *p != ' ') p++;
  }
  unsigned long long a, b;
  if (sscanf(p, " %llu/%llu", &a, &b) != 2 || b == 0) return false;
  *in_sync = a;
  *regions = b;
  return true;
}

int lvm_dm_mirror_sync(const char *name, uint64_t *done, uint64_t *total)
{
  *done = *total = 0;
  dm_lock();
  struct dm_task *t = task_new(DM_DEVICE_STATUS, name, 0, 0);
  int r = -1;
  if (t && task_run(t, name, 0, 0) == 0) {
    void *next = NULL;
    uint64_t d = 0, tot = 0;
    bool any = false;
    do {
      uint64_t start, len;
      char *type = NULL, *params = NULL;
      next = dm_get_next_target(t, next, &start, &len, &type, &params);
      if (!type) break;
      tot += len;
      uint64_t s, n;
      if (!strcmp(type, "mirror") && params && mirror_sync(params, &s, &n)) {
        d += len * s / n;
        any = true;
      }
    } while (next);
    if (any) {
      *done = d * 512;
      *total = tot * 512;
      r = 0;
    } else {
      vstor_err(VSTOR_E_BACKEND, 0, "device-mapper device %s has no mirror target", name);
    }
  }
  if (t) dm_task_destroy(t);
  dm_unlock();
  return r;
}

bool lvm_dm_available(const char *target, char **why)
{
  if (access("/dev/mapper/control", F_OK) != 0 && access("/proc/misc", R_OK) == 0) {
    /* libdevmapper creates the node if the kernel has the driver. */
    FILE *f = fopen("/proc/misc", "r");
    bool have = false;
    char line[128];
    while (f && fgets(line, sizeof line, f))
      if (strstr(line, "device-mapper")) have = true;
    if (f) fclose(f);
    if (!have) {
      if (why) *why = vu_strdup("the kernel has no device-mapper (no /dev/mapper/control, "
                                "no device-mapper in /proc/misc; modprobe dm_mod?)");
      return false;
    }
  }
  dm_lock();
  struct dm_task *t = dm_task_create(DM_DEVICE_LIST_VERSIONS);
  bool ok = t && dm_task_run(t);
  bool found = target == NULL;
  if (ok && target) {
    struct dm_versions *v = dm_task_get_versions(t), *last;
    do {
      last = v;
      if (!strcmp(v->name, target)) found = true;
      v = (struct dm_versions *)((char *)v + v->next);
    } while (last != v);
  }
  char msg[256];
  snprintf(msg, sizeof msg, "%s", dm_last);
  if (t) dm_task_destroy(t);
  dm_unlock();
  if (!ok) {
    if (why) *why = vu_asprintf("device-mapper is not usable: %s", msg[0] ? msg : "ioctl failed");
    return false;
  }
  if (!found) {
    if (why) *why = vu_asprintf("the kernel has no device-mapper \"%s\" target (modprobe dm-%s?)",
                                target, target);
    return false;
  }
  return true;
}

char *lvm_holders(unsigned maj, unsigned min)
{
  char path[96];
  snprintf(path, sizeof path, "/sys/dev/block/%u:%u/holders", maj, min);
  DIR *d = opendir(path);
  if (!d) return vu_strdup("");
  size_t cap = 64, n = 0;
  char *s = vu_calloc(cap, 1);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char np[512], name[128] = "";
    snprintf(np, sizeof np, "/sys/class/block/%s/dm/name", e->d_name);
    FILE *f = fopen(np, "r");
    if (f) {
      if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
      fclose(f);
    }
    const char *shown = name[0] ? name : e->d_name;
    size_t l = strlen(shown) + 2;
    if (n + l + 1 > cap) {
      cap = (n + l + 1) * 2;
      char *ns = realloc(s, cap);
      if (!ns) abort();
      s = ns;
    }
    n += (size_t)snprintf(s + n, cap - n, "%s%s", n ? " " : "", shown);
  }
  closedir(d);
  return s;
}
