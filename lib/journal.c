/* libvstor - operation journal
 *
 * One record per operation in $state/journal/<id>.rec: "key=value" lines,
 * values escaped (\\, \n).  Every change rewrites the record to a temporary
 * file, fsyncs it, renames it over the record and fsyncs the directory, so
 * after a crash the record says exactly which irreversible steps started.
 * Keys every record has: op, vol, backend, pid, pstart (the process start
 * time, so a reused pid is not mistaken for the owner).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

struct vstor_jrec {
  vstor_ctx *ctx;
  bool written;   /* on disk: end must remove it */
  char *dir, *path;
  size_t n;
  char **keys, **vals;
};

static bool key_ok(const char *k)
{
  if (!*k) return false;
  for (; *k; k++)
    if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' || *k == '.' || *k == '-'))
      return false;
  return true;
}

static void put(struct vstor_jrec *r, const char *k, const char *v)
{
  for (size_t i = 0; i < r->n; i++)
    if (!strcmp(r->keys[i], k)) { free(r->vals[i]); r->vals[i] = vu_strdup(v); return; }
  r->keys = realloc(r->keys, (r->n + 1) * sizeof *r->keys);
  r->vals = realloc(r->vals, (r->n + 1) * sizeof *r->vals);
  if (!r->keys || !r->vals) abort();
  r->keys[r->n] = vu_strdup(k);
  r->vals[r->n++] = vu_strdup(v);
}

const char *vstor__jrec_get(const struct vstor_jrec *r, const char *k)
{
  if (!r) return NULL;
  for (size_t i = 0; i < r->n; i++)
    if (!strcmp(r->keys[i], k)) return r->vals[i];
  return NULL;
}

void vstor__jrec_free(struct vstor_jrec *r)
{
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) { free(r->keys[i]); free(r->vals[i]); }
  free(r->keys); free(r->vals); free(r->dir); free(r->path);
  free(r);
}

static char *escape(const char *v)
{
  char *o = vu_calloc(strlen(v) * 2 + 1, 1), *p = o;
  for (; *v; v++) {
    if (*v == '\\') { *p++ = '\\'; *p++ = '\\'; }
    else if (*v == '\n') { *p++ = '\\'; *p++ = 'n'; }
    else *p++ = *v;
  }
  return o;
}

static int fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

/* A record with durable=no describes state that does not outlive a reboot
 * (a loop device's capacity): it must survive the death of its process,
 * which the page cache ensures, not a power cut, so it is written without
 * fsync. */
static bool is_volatile(const struct vstor_jrec *r)
{
  const char *d = vstor__jrec_get(r, "durable");
  return d && !strcmp(d, "no");
}

static int jwrite(struct vstor_jrec *r)
{
  char *tmp = vu_asprintf("%s.tmp", r->path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) goto fail;
  FILE *f = fdopen(fd, "w");
  if (!f) { close(fd); goto fail; }
  fputs("# libvstor journal record v1\n", f);
  for (size_t i = 0; i < r->n; i++) {
    char *e = escape(r->vals[i]);
    fprintf(f, "%s=%s\n", r->keys[i], e);
    free(e);
  }
  bool durable = !is_volatile(r);
  if (fflush(f) != 0 || (durable && fsync(fileno(f)) != 0)) { fclose(f); goto fail; }
  if (fclose(f) != 0) goto fail;
  if (rename(tmp, r->path) < 0) goto fail;
  if (durable && fsync_dir(r->dir) < 0) goto fail;
  free(tmp);
  r->written = true;
  return 0;
fail:;
  int e = errno;
  unlink(tmp);
  free(tmp);
  return vstor__error(e == ENOSPC ? VSTOR_E_NOSPC : VSTOR_E_IO, e,
                      "journal %s: %s", r->path, strerror(e));
}

static unsigned long long proc_start(pid_t pid)
{
  char p[64], buf[1024];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *s = strrchr(buf, ')');  /* comm may hold spaces */
  if (!s) return 0;
  unsigned long long v = 0;
  int field = 2;
  for (char *t = strtok(s + 1, " "); t; t = strtok(NULL, " "))
    if (++field == 22) { v = strtoull(t, NULL, 10); break; }
  return v;
}

/* Is the process that wrote the record still running? */
bool vstor__jrec_owner_alive(const struct vstor_jrec *r);
bool vstor__jrec_owner_alive(const struct vstor_jrec *r)
{
  const char *p = vstor__jrec_get(r, "pid"), *s = vstor__jrec_get(r, "pstart");
  if (!p || !s) return false;
  pid_t pid = (pid_t)atoi(p);
  if (pid <= 0 || pid == getpid()) return pid == getpid();
  unsigned long long st = proc_start(pid);
  return st && st == strtoull(s, NULL, 10);
}

struct vstor_jrec *vstor__jrec_begin(vstor_vol *vol, const char *op)
{
  static unsigned counter;
  char *dir;
  if (vstor__state_subdir(vol->ctx, "journal", &dir) < 0) return NULL;
  struct vstor_jrec *r = vu_calloc(1, sizeof *r);
  r->ctx = vol->ctx;
  r->dir = dir;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  r->path = vu_asprintf("%s/%lld-%d-%u.rec", dir, (long long)ts.tv_sec, (int)getpid(),
                        __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
  char buf[32];
  put(r, "op", op);
  put(r, "vol", vol->uri_text);
  put(r, "backend", vol->ops->name);
  snprintf(buf, sizeof buf, "%d", (int)getpid());
  put(r, "pid", buf);
  snprintf(buf, sizeof buf, "%llu", proc_start(getpid()));
  put(r, "pstart", buf);
  return r;  /* durable from the first jrec_set: one write per step */
}

int vstor__jrec_set(struct vstor_jrec *r, const char *k, const char *v)
{
  if (!r) return vstor__error(VSTOR_E_INTERNAL, EINVAL, "no journal record");
  if (!key_ok(k)) return vstor__error(VSTOR_E_INTERNAL, EINVAL, "bad journal key \"%s\"", k);
  put(r, k, v ? v : "");
  return jwrite(r);
}

void vstor__jrec_put(struct vstor_jrec *r, const char *k, const char *v)
{
  if (r && key_ok(k)) put(r, k, v ? v : "");
}

void vstor__jrec_end(struct vstor_jrec *r)
{
  if (!r) return;
  if (r->written) {
    unlink(r->path);
    if (!is_volatile(r))
      fsync_dir(r->dir);
  }
  vstor__jrec_free(r);
}

int vstor__jrec_parse(const char *text, size_t len, struct vstor_jrec **out)
{
  struct vstor_jrec *r = vu_calloc(1, sizeof *r);
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    if (le > p && *p != '#') {
      const char *eq = memchr(p, '=', (size_t)(le - p));
      if (!eq) goto bad;
      if (memchr(p, 0, (size_t)(eq - p))) goto bad;  /* a NUL would cut the key short */
      char *k = strndup(p, (size_t)(eq - p));
      if (!key_ok(k)) { free(k); goto bad; }
      char *v = vu_calloc((size_t)(le - eq), 1), *o = v;
      for (const char *c = eq + 1; c < le; c++) {
        if (*c == 0) { free(k); free(v); goto bad; }
        if (*c == '\\') {
          if (c + 1 >= le || (c[1] != 'n' && c[1] != '\\')) { free(k); free(v); goto bad; }
          *o++ = c[1] == 'n' ? '\n' : '\\';
          c++;
        } else *o++ = *c;
      }
      put(r, k, v);
      free(k); free(v);
    }
    p = le + 1;
  }
  if (!vstor__jrec_get(r, "op") || !vstor__jrec_get(r, "backend")) goto bad;
  *out = r;
  return 0;
bad:
  vstor__jrec_free(r);
  return vstor__error(VSTOR_E_INVAL, EINVAL, "malformed journal record");
}

int vstor__jrec_load(vstor_ctx *ctx, const char *path, struct vstor_jrec **out)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return vstor__error(VSTOR_E_IO, errno, "%s: %s", path, strerror(errno));
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  if (n < 0) return vstor__error(VSTOR_E_IO, errno, "%s: %s", path, strerror(errno));
  if (n == (ssize_t)sizeof buf) return vstor__error(VSTOR_E_INVAL, EFBIG, "%s: record too large", path);
  if (vstor__jrec_parse(buf, (size_t)n, out) < 0) {
    vstor__error(VSTOR_E_INVAL, EINVAL, "%s: malformed journal record", path);
    return -1;
  }
  (*out)->ctx = ctx;
  (*out)->written = true;
  (*out)->path = vu_strdup(path);
  char *sl = strrchr(path, '/');
  (*out)->dir = strndup(path, (size_t)(sl - path));
  return 0;
}

int vstor__journal_list(vstor_ctx *ctx, char ***paths, size_t *n)
{
  char *dir;
  *paths = NULL;
  *n = 0;
  if (vstor__state_subdir(ctx, "journal", &dir) < 0) return -1;
  DIR *d = opendir(dir);
  if (!d) { int e = errno; free(dir); return vstor__error(VSTOR_E_IO, e, "journal: %s", strerror(e)); }
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l > 8 && !strcmp(e->d_name + l - 8, ".rec.tmp")) {
      /* a record write a crash interrupted: "<time>-<pid>-<n>.rec.tmp";
       * a live writer's temporary is left to it */
      const char *dash = strchr(e->d_name, '-');
      pid_t pid = dash ? (pid_t)atoi(dash + 1) : 0;
      if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH)) {
        char *t = vu_asprintf("%s/%s", dir, e->d_name);
        unlink(t);
        free(t);
      }
      continue;
    }
    if (l < 5 || strcmp(e->d_name + l - 4, ".rec")) continue;
    *paths = realloc(*paths, (*n + 1) * sizeof **paths);
    (*paths)[(*n)++] = vu_asprintf("%s/%s", dir, e->d_name);
  }
  closedir(d);
  free(dir);
  return 0;
}
