/* libvstor - run external tools with argv, a clean environment, no shell
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

static const char *const fixed_path[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin" };

static char *find_tool(const char *tool)
{
  if (strchr(tool, '/'))
    return access(tool, X_OK) == 0 ? vu_strdup(tool) : NULL;
  for (size_t i = 0; i < sizeof fixed_path / sizeof *fixed_path; i++) {
    char *p = vu_asprintf("%s/%s", fixed_path[i], tool);
    if (access(p, X_OK) == 0) return p;
    free(p);
  }
  return NULL;
}

bool vu_have_tool(const char *tool)
{
  char *p = find_tool(tool);
  free(p);
  return p != NULL;
}

struct buf { char *d; size_t n; };

static void buf_add(struct buf *b, const char *d, size_t n)
{
  char *nd = realloc(b->d, b->n + n + 1);
  if (!nd) abort();
  memcpy(nd + b->n, d, n);
  b->d = nd;
  b->n += n;
  b->d[b->n] = 0;
}

static char *buf_take(struct buf *b)
{
  if (!b->d) return vu_strdup("");
  while (b->n && (b->d[b->n - 1] == '\n' || b->d[b->n - 1] == '\r'))
    b->d[--b->n] = 0;
  return b->d;
}

int vu_run(const char *const argv[], char **out, char **err)
{
  static char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                "LC_ALL=C", NULL };
  char *prog = find_tool(argv[0]);
  if (!prog)
    return vstor_err(VSTOR_E_NOTSUP, ENOENT, "%s: tool not found in "
                     "/usr/sbin:/usr/bin:/sbin:/bin", argv[0]);
  int po[2], pe[2];
  if (pipe2(po, O_CLOEXEC) < 0) { free(prog); return vstor_err(VSTOR_E_INTERNAL, errno, "pipe: %m"); }
  if (pipe2(pe, O_CLOEXEC) < 0) {
    close(po[0]); close(po[1]); free(prog);
    return vstor_err(VSTOR_E_INTERNAL, errno, "pipe: %m");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, po[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
  pid_t pid;
  int r = posix_spawn(&pid, prog, &fa, NULL, (char *const *)argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  close(po[1]); close(pe[1]);
  free(prog);
  if (r != 0) {
    close(po[0]); close(pe[0]);
    return vstor_err(VSTOR_E_BACKEND, r, "%s: cannot run: %s", argv[0], strerror(r));
  }
  struct buf bo = { 0 }, be = { 0 };
  struct pollfd pf[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
  int open_fds = 2;
  char tmp[4096];
  while (open_fds) {
    if (poll(pf, 2, -1) < 0) { if (errno == EINTR) continue; break; }
    for (int i = 0; i < 2; i++) {
      if (pf[i].fd < 0 || !pf[i].revents) continue;
      ssize_t n = read(pf[i].fd, tmp, sizeof tmp);
      if (n > 0) buf_add(i ? &be : &bo, tmp, (size_t)n);
      else if (n == 0 || errno != EINTR) { close(pf[i].fd); pf[i].fd = -1; open_fds--; }
    }
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) ;
  char *so = buf_take(&bo), *se = buf_take(&be);
  if (out) *out = so; else free(so);
  if (WIFSIGNALED(st)) {
    vstor_err(VSTOR_E_BACKEND, 0, "%s killed by signal %d: %s", argv[0],
              WTERMSIG(st), se);
    if (err) *err = se; else free(se);
    return -1;
  }
  if (err) *err = se; else free(se);
  return WEXITSTATUS(st);
}
