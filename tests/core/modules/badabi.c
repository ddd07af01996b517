/* A backend module built for another libvstor: its ops claim backend ABI
 * 999 and have another layout; the core must refuse it (NOTSUP) reading
 * nothing but the abi field.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
struct vstor_host;
struct other_ops { unsigned abi; const char *name; void *slots[4]; };
static const struct other_ops ops = { 999, "xen", { 0, 0, 0, 0 } };
__attribute__((visibility("default")))
const struct other_ops *vstor_backend_init(const struct vstor_host *host);
const struct other_ops *vstor_backend_init(const struct vstor_host *host)
{
  (void)host;
  return &ops;
}
