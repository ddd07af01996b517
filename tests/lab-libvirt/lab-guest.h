/* Shared by the libvirt lab tests (test-libvirt.c, lab-rbd-libvirt):
 * TAP checks and the guest agent (guest-exec of fixed scripts, sizes,
 * freeze status) of the domain `dom`.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSTOR_LAB_GUEST_H
#define VSTOR_LAB_GUEST_H
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include "vstor.h"

static int npass, nfail;
static virConnectPtr conn;
static virDomainPtr dom;
static vstor_ctx *ctx;

__attribute__((format(printf, 2, 3)))
static bool check(bool ok, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("%s %d - ", ok ? "ok" : "not ok", npass + nfail + 1);
  vprintf(fmt, ap);
  va_end(ap);
  if (!ok && vstor_last_error())
    printf("   [last error: %s (%s)]", vstor_last_error(), vstor_code_name(vstor_last_code()));
  printf("\n");
  fflush(stdout);
  if (ok) npass++; else nfail++;
  return ok;
}

static void die(const char *what)
{
  printf("Bail out! %s: %s\n", what, vstor_last_error() ? vstor_last_error() : "");
  printf("%d passed, %d failed\n", npass, nfail + 1);
  exit(1);
}

static void silent(void *o, virErrorPtr e) { (void)o; (void)e; }

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- guest agent ---------------------------------------------------- */

static json_object *agent(const char *cmd)
{
  char *r = virDomainQemuAgentCommand(dom, cmd, 10, 0);
  if (!r) return NULL;
  json_object *j = json_tokener_parse(r), *ret = NULL;
  free(r);
  if (j && json_object_object_get_ex(j, "return", &ret)) json_object_get(ret);
  if (j) json_object_put(j);
  return ret;
}

static char *b64(const char *s)
{
  static const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = s ? strlen(s) : 0, k = 0;
  char *o = calloc(n + 1, 1);
  unsigned acc = 0; int bits = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = strchr(A, s[i]);
    if (!p || !s[i]) continue;
    acc = (acc << 6) | (unsigned)(p - A); bits += 6;
    if (bits >= 8) { bits -= 8; o[k++] = (char)((acc >> bits) & 0xff); }
  }
  return o;
}

/* Run a fixed shell script in the guest (guest-exec), wait <= 60 s.
 * Returns the exit code (-1 failure) and *out the stdout. */
static int gsh(const char *script, char **out, bool wait)
{
  json_object *c = json_object_new_object(), *a = json_object_new_object(), *arr = json_object_new_array();
  json_object_array_add(arr, json_object_new_string("-c"));
  json_object_array_add(arr, json_object_new_string(script));
  json_object_object_add(a, "path", json_object_new_string("/bin/sh"));
  json_object_object_add(a, "arg", arr);
  json_object_object_add(a, "capture-output", json_object_new_boolean(wait));
  json_object_object_add(c, "execute", json_object_new_string("guest-exec"));
  json_object_object_add(c, "arguments", a);
  json_object *r = agent(json_object_to_json_string(c));
  json_object_put(c);
  if (!r) return -1;
  long pid = (long)json_object_get_int64(json_object_object_get(r, "pid"));
  json_object_put(r);
  if (!wait) return 0;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":%ld}}", pid);
  for (int i = 0; i < 600; i++) {
    json_object *st = agent(cmd);
    if (!st) return -1;
    if (json_object_get_boolean(json_object_object_get(st, "exited"))) {
      int code = json_object_get_int(json_object_object_get(st, "exitcode"));
      if (out) *out = b64(json_object_get_string(json_object_object_get(st, "out-data")));
      json_object_put(st);
      return code;
    }
    json_object_put(st);
    usleep(100000);
  }
  return -1;
}

static char *gout(const char *script)
{
  char *o = NULL;
  if (gsh(script, &o, true) != 0) { free(o); return NULL; }
  size_t n = strlen(o);
  while (n && o[n - 1] == '\n') o[--n] = 0;
  return o;
}

static unsigned long long guest_bytes(const char *dev)
{
  char s[128];
  snprintf(s, sizeof s, "cat /sys/block/%s/size", dev);
  char *o = gout(s);
  unsigned long long v = o ? strtoull(o, NULL, 10) * 512 : 0;
  free(o);
  return v;
}

static char *freeze_status(void)
{
  json_object *r = agent("{\"execute\":\"guest-fsfreeze-status\"}");
  char *s = r ? strdup(json_object_get_string(r)) : strdup("?");
  if (r) json_object_put(r);
  return s;
}

/* The agent's freeze status once it says "thawed", or the last one seen
 * after timeout_ms (a guard thaws asynchronously). */
static char *wait_thawed(int timeout_ms)
{
  char *fs = NULL;
  for (int i = 0; i < timeout_ms / 100; i++) {
    free(fs);
    fs = freeze_status();
    if (!strcmp(fs, "thawed")) break;
    usleep(100000);
  }
  return fs;
}

#endif
