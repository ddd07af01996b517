/* A module whose init fails (returns NULL).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
struct vstor_host;
__attribute__((visibility("default")))
const void *vstor_backend_init(const struct vstor_host *host);
const void *vstor_backend_init(const struct vstor_host *host)
{
  (void)host;
  return 0;
}
