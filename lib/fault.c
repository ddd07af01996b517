/* libvstor - fault injection: stop the process at a named step
 *
 * VSTOR_FAULT=POINT[:MODE]: when the library reaches POINT it stops the
 * process; MODE "kill" (default) raises SIGKILL, "exit" calls _exit(99).
 * VSTOR_FAULT_LIST=PATH appends every point reached to PATH, so tests can
 * enumerate the points of an operation and then kill at each in turn.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

void vstor__fault(const char *point)
{
  const char *list = getenv("VSTOR_FAULT_LIST");
  if (list && *list) {
    int fd = open(list, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
      (void)!write(fd, point, strlen(point));
      (void)!write(fd, "\n", 1);
      close(fd);
    }
  }
  const char *f = getenv("VSTOR_FAULT");
  if (!f || !*f) return;
  size_t n = strlen(point);
  if (strncmp(f, point, n) || (f[n] && f[n] != ':')) return;
  if (f[n] == ':' && !strcmp(f + n + 1, "exit")) _exit(99);
  raise(SIGKILL);
}
