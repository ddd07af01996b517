/* libFuzzer harness: the URI and Xen disk-spec parser (lib/uri.c).
 * Built twice: fuzz-uri and fuzz-spec (same entry, spec-shaped corpus).
 * Checks beyond "no crash, no leak": a parse either succeeds with a
 * backend and well-formed fields, or fails with INVAL and a message.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void need(int cond) { if (!cond) abort(); }

static int lvm_name(const char *s)
{
  size_t n = strlen(s);
  if (!n || n > 127 || s[0] == '-' || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("+_.-", *s)) return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = 0;
  struct vstor_uri *u = (struct vstor_uri *)1;
  int r = vstor__uri_parse(s, &u);
  if (r == 0) {
    need(u && u->backend);
    need(!strcmp(u->backend, "file") || !strcmp(u->backend, "lvm") || !strcmp(u->backend, "libvirt") ||
         !strcmp(u->backend, "xen") || !strcmp(u->backend, "rbd"));
    if (!strcmp(u->backend, "file")) {
      need(u->path && u->path[0] == '/' && !strstr(u->path, "/../"));
    }
    if (!strcmp(u->backend, "lvm")) {
      need(u->vg && u->lv && u->path && u->path[0] == '/');
      need(lvm_name(u->vg) && lvm_name(u->lv));
    }
    if (!strcmp(u->backend, "libvirt") || !strcmp(u->backend, "xen"))
      need(u->domain && u->disk && *u->domain && *u->disk);
    if (!strcmp(u->backend, "rbd")) need(u->pool && u->image && *u->pool && *u->image);
    if (u->format) {  /* only disk specs set it */
      static const char *const f[] = { "raw", "qcow", "qcow2", "vhd", "qed", "empty" };
      int ok = 0;
      for (size_t i = 0; i < sizeof f / sizeof *f; i++) ok |= !strcmp(f[i], u->format);
      need(ok);
      need(u->access && (!strcmp(u->access, "rw") || !strcmp(u->access, "ro")));
    }
    /* deterministic: the same text parses the same way */
    struct vstor_uri *u2 = NULL;
    need(vstor__uri_parse(s, &u2) == 0 && !strcmp(u2->backend, u->backend));
    need(!u->path == !u2->path && (!u->path || !strcmp(u->path, u2->path)));
    vstor__uri_free(u2);
    vstor__uri_free(u);
  } else {
    need(r == -1 && u == NULL);
    need(vstor_last_code() == VSTOR_E_INVAL);
    need(vstor_last_error() != NULL);
  }
  free(s);
  return 0;
}
