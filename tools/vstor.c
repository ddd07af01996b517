/* vstor - command-line tool over the public libvstor API (only vstor.h)
 *
 * Exit status: 0 success, 1 the operation failed (nothing changed),
 * 2 usage error, 3 partial (some layers changed; the report says which).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "vstor.h"

enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE = 2, EX_PARTIAL = 3 };

static bool json, dry_run, quiet;
static uint64_t op_us;  /* time spent in the library call of extend/snapshot */
static const char *state_dir, *backend_dir;
static const char *prog = "vstor";

/* ---- output helpers ------------------------------------------------ */

static void jstr(FILE *f, const char *s)
{
  if (!s) { fputs("null", f); return; }
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20) fprintf(f, "\\u%04x", *p);
      else fputc(*p, f);
    }
  }
  fputc('"', f);
}

static void human(char *buf, size_t n, uint64_t b)
{
  static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double v = (double)b;
  int i = 0;
  while (v >= 1024 && i < 6) { v /= 1024; i++; }
  if (i) snprintf(buf, n, "%.1f %s", v, u[i]);
  else snprintf(buf, n, "%" PRIu64 " B", b);
}

static int code_exit(int code) { return code == VSTOR_E_PARTIAL ? EX_PARTIAL : EX_FAIL; }

/* Print the last library error; returns the exit status for it. */
static int fail(const char *what)
{
  int code = vstor_last_code();
  const char *msg = vstor_last_error();
  if (json) {
    printf("{\"ok\":false,\"command\":");
    jstr(stdout, what);
    printf(",\"error\":{\"code\":");
    jstr(stdout, vstor_code_name(code));
    printf(",\"errno\":%d,\"message\":", vstor_last_errno());
    jstr(stdout, msg);
    printf("}}\n");
  } else
    fprintf(stderr, "%s: %s: %s\n", prog, vstor_code_name(code) ? vstor_code_name(code) : "?",
            msg ? msg : "unknown error");
  return code_exit(code);
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry '%s --help'.\n", prog);
  return EX_USAGE;
}

static const char *status_name(int s)
{
  static const char *const n[] = { "planned", "done", "skipped", "failed", "undone" };
  return s >= 0 && s <= 4 ? n[s] : "?";
}

static const char *consistency_name(int c)
{
  static const char *const n[] = { "none", "idle", "filesystem", "crash" };
  return c >= 0 && c <= 3 ? n[c] : "?";
}

static void json_steps(const vstor_report *r)
{
  printf("\"steps\":[");
  for (size_t i = 0; i < vstor_report_step_count(r); i++) {
    printf("%s{\"layer\":", i ? "," : "");
    jstr(stdout, vstor_report_step_layer(r, i));
    printf(",\"action\":");
    jstr(stdout, vstor_report_step_action(r, i));
    printf(",\"status\":");
    jstr(stdout, status_name(vstor_report_step_status(r, i)));
    printf(",\"reversible\":%s,\"detail\":", vstor_report_step_reversible(r, i) ? "true" : "false");
    jstr(stdout, vstor_report_step_detail(r, i));
    printf("}");
  }
  printf("]");
}

static void text_steps(const vstor_report *r)
{
  for (size_t i = 0; i < vstor_report_step_count(r); i++) {
    const char *d = vstor_report_step_detail(r, i);
    printf("  %-8s %-10s %s%s%s%s\n", status_name(vstor_report_step_status(r, i)),
           vstor_report_step_layer(r, i), vstor_report_step_action(r, i), d ? ": " : "", d ? d : "",
           vstor_report_step_reversible(r, i) ? "" : " [irreversible]");
  }
}

/* Result of extend/snapshot/recover: report (may be NULL) + error. */
static int finish_report(const char *cmd, int rc, const vstor_report *r)
{
  int code = rc < 0 ? vstor_last_code() : 0;
  if (json) {
    printf("{\"ok\":%s,\"command\":", rc < 0 ? "false" : "true");
    jstr(stdout, cmd);
    printf(",\"dry_run\":%s,\"elapsed_us\":%" PRIu64, dry_run ? "true" : "false", op_us);
    if (r) {
      printf(",");
      json_steps(r);
      if (!strcmp(cmd, "extend"))
        printf(",\"old_size\":%" PRIu64 ",\"new_size\":%" PRIu64, vstor_report_old_size(r),
               vstor_report_new_size(r));
      if (!strcmp(cmd, "snapshot")) {
        printf(",\"frozen_us\":%" PRIu64 ",\"consistency\":", vstor_report_frozen_us(r));
        jstr(stdout, consistency_name(vstor_report_consistency(r)));
        printf(",\"method\":");
        jstr(stdout, vstor_report_method(r));
      }
    }
    if (rc < 0) {
      printf(",\"error\":{\"code\":");
      jstr(stdout, vstor_code_name(code));
      printf(",\"errno\":%d,\"message\":", vstor_last_errno());
      jstr(stdout, vstor_last_error());
      printf("}");
    }
    printf("}\n");
    return rc < 0 ? code_exit(code) : EX_OK;
  }
  if (r && (dry_run || !quiet)) {
    printf("%s%s:\n", dry_run ? "plan for " : "", cmd);
    text_steps(r);
  }
  if (rc < 0) return fail(cmd);
  if (r && !strcmp(cmd, "extend") && !dry_run) {
    char a[32], b[32];
    human(a, sizeof a, vstor_report_old_size(r));
    human(b, sizeof b, vstor_report_new_size(r));
    printf("size: %s -> %s\n", a, b);
  }
  if (r && !strcmp(cmd, "snapshot") && !dry_run)
    printf("snapshot by %s, %s-consistent, frozen window %" PRIu64 " us\n",
           vstor_report_method(r) ? vstor_report_method(r) : "?",
           consistency_name(vstor_report_consistency(r)), vstor_report_frozen_us(r));
  return EX_OK;
}

static uint64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- context and volume -------------------------------------------- */

static vstor_ctx *ctx_open(void)
{
  vstor_ctx *c = vstor_ctx_new(0);
  if (!c) return NULL;
  if ((state_dir && vstor_ctx_set_state_dir(c, state_dir) < 0) ||
      (backend_dir && vstor_ctx_set_backend_dir(c, backend_dir) < 0)) {
    vstor_ctx_free(c);
    return NULL;
  }
  return c;
}

static int with_vol(const char *uri, unsigned flags, vstor_ctx **c, vstor_vol **v)
{
  if (!(*c = ctx_open())) return -1;
  if (vstor_open(*c, uri, flags, v) < 0) {
    int code = vstor_last_code(), e = vstor_last_errno();
    char *m = strdup(vstor_last_error() ? vstor_last_error() : "");
    vstor_ctx_free(*c);
    *c = NULL;
    (void)code; (void)e;
    /* vstor_ctx_free does not fail here; keep the open error */
    free(m);
    return -1;
  }
  return 0;
}

static void done_vol(vstor_ctx *c, vstor_vol *v)
{
  vstor_close(v);
  vstor_ctx_free(c);
}

/* ---- info and caps ------------------------------------------------- */

static int cmd_info(int argc, char **argv)
{
  if (argc != 1) return usage_error("info takes one URI");
  vstor_ctx *c;
  vstor_vol *v;
  if (with_vol(argv[0], VSTOR_OPEN_READONLY, &c, &v) < 0) return fail("info");
  uint64_t size = 0;
  vstor_vol_size(v, &size);
  size_t n = vstor_vol_layer_count(v);
  if (json) {
    printf("{\"ok\":true,\"command\":\"info\",\"uri\":");
    jstr(stdout, argv[0]);
    printf(",\"backend\":");
    jstr(stdout, vstor_vol_backend(v));
    printf(",\"id\":");
    jstr(stdout, vstor_vol_id(v));
    printf(",\"size\":%" PRIu64 ",\"layers\":[", size);
    for (size_t i = 0; i < n; i++) {
      const vstor_layer *l = vstor_vol_layer(v, i);
      printf("%s{\"role\":", i ? "," : "");
      jstr(stdout, vstor_layer_role(l));
      printf(",\"type\":");
      jstr(stdout, vstor_layer_type(l));
      printf(",\"path\":");
      jstr(stdout, vstor_layer_path(l));
      printf(",\"size\":%" PRIu64 ",\"props\":{", vstor_layer_size(l));
      for (size_t j = 0; vstor_layer_prop_key(l, j); j++) {
        const char *k = vstor_layer_prop_key(l, j);
        printf("%s", j ? "," : "");
        jstr(stdout, k);
        printf(":");
        jstr(stdout, vstor_layer_prop(l, k));
      }
      printf("}}");
    }
    printf("]}\n");
  } else {
    char hs[32];
    human(hs, sizeof hs, size);
    printf("%s\n  backend: %s\n  size:    %s (%" PRIu64 " bytes)\n  layers (bottom first):\n", argv[0],
           vstor_vol_backend(v), hs, size);
    for (size_t i = 0; i < n; i++) {
      const vstor_layer *l = vstor_vol_layer(v, i);
      printf("    %-10s %-8s %s", vstor_layer_role(l), vstor_layer_type(l), vstor_layer_path(l));
      if (vstor_layer_size(l)) {
        human(hs, sizeof hs, vstor_layer_size(l));
        printf("  %s", hs);
      }
      for (size_t j = 0; vstor_layer_prop_key(l, j); j++) {
        const char *k = vstor_layer_prop_key(l, j), *val = vstor_layer_prop(l, k);
        if (val && *val) printf("  %s=%s", k, val);
      }
      printf("\n");
    }
  }
  done_vol(c, v);
  return EX_OK;
}

static int cmd_caps(int argc, char **argv)
{
  if (argc > 1) return usage_error("caps takes at most one URI");
  vstor_ctx *c;
  vstor_vol *v = NULL;
  if (argc == 1) {
    if (with_vol(argv[0], 0, &c, &v) < 0) return fail("caps");
  } else if (!(c = ctx_open())) return fail("caps");
  if (json) printf("{\"ok\":true,\"command\":\"caps\",%s", v ? "\"uri\":" : "\"backends\":[");
  else if (v) printf("%s (%s backend):\n", argv[0], vstor_vol_backend(v));
  if (v && json) { jstr(stdout, argv[0]); printf(",\"ops\":{"); }
  size_t nb = v ? 1 : vstor_backend_count();
  for (size_t b = 0; b < nb; b++) {
    const char *name = v ? vstor_vol_backend(v) : vstor_backend_name(b);
    if (!v) {
      if (json) { printf("%s{\"name\":", b ? "," : ""); jstr(stdout, name); printf(",\"ops\":{"); }
      else printf("%s\n", name);
    }
    for (int op = 0; op < VSTOR_OP__COUNT; op++) {
      char *why = NULL;
      int r = v ? vstor_vol_can(v, op, 0, &why) : vstor_backend_can(c, name, op, &why);
      if (json) {
        printf("%s", op ? "," : "");
        jstr(stdout, vstor_op_name(op));
        printf(":{\"can\":%s,\"why\":", r == 1 ? "true" : "false");
        jstr(stdout, r < 0 ? vstor_last_error() : why);
        printf("}");
      } else
        printf("  %-14s %s%s%s\n", vstor_op_name(op), r == 1 ? "yes" : "no", why ? "  - " : "",
               why ? why : r < 0 ? vstor_last_error() : "");
      free(why);
    }
    if (!v && json) printf("}}");
  }
  if (json) printf(v ? "}}\n" : "]}\n");
  if (v) done_vol(c, v); else vstor_ctx_free(c);
  return EX_OK;
}

/* ---- extend and snapshot ------------------------------------------- */

static int cmd_extend(int argc, char **argv, unsigned flags)
{
  if (argc != 2) return usage_error("extend takes a URI and a size (50G, +10G)");
  vstor_ctx *c;
  vstor_vol *v;
  if (with_vol(argv[0], 0, &c, &v) < 0) return fail("extend");
  uint64_t cur, size;
  if (vstor_vol_size(v, &cur) < 0 || vstor_parse_size(argv[1], cur, &size) < 0) {
    int r = fail("extend");
    done_vol(c, v);
    return r;
  }
  vstor_report *rep = NULL;
  uint64_t t0 = now_us();
  int rc = vstor_extend(v, size, NULL, flags | (dry_run ? VSTOR_DRY_RUN : 0), &rep);
  op_us = now_us() - t0;
  int ex = finish_report("extend", rc, rep);
  vstor_report_free(rep);
  done_vol(c, v);
  return ex;
}

static int cmd_snapshot(int argc, char **argv, unsigned flags, uint32_t timeout_ms)
{
  if (argc != 2) return usage_error("snapshot takes a URI and a destination");
  vstor_ctx *c;
  vstor_vol *v;
  if (with_vol(argv[0], 0, &c, &v) < 0) return fail("snapshot");
  vstor_opts *o = vstor_opts_new();
  if (timeout_ms && vstor_opts_set_freeze_timeout_ms(o, timeout_ms) < 0) {
    int r = fail("snapshot");
    vstor_opts_free(o);
    done_vol(c, v);
    return r;
  }
  vstor_report *rep = NULL;
  uint64_t t0 = now_us();
  int rc = vstor_snapshot(v, argv[1], o, flags | (dry_run ? VSTOR_DRY_RUN : 0), &rep);
  op_us = now_us() - t0;
  int ex = finish_report("snapshot", rc, rep);
  vstor_report_free(rep);
  vstor_opts_free(o);
  done_vol(c, v);
  return ex;
}

static int cmd_recover(int argc, char **argv)
{
  (void)argv;
  if (argc) return usage_error("recover takes no argument");
  vstor_ctx *c = ctx_open();
  if (!c) return fail("recover");
  vstor_report *rep = NULL;
  int rc = vstor_recover(c, dry_run ? VSTOR_DRY_RUN : 0, &rep);
  if (!json && !rc && rep && !vstor_report_step_count(rep)) printf("nothing to recover\n");
  int ex = finish_report("recover", rc, rep);
  vstor_report_free(rep);
  vstor_ctx_free(c);
  return ex;
}

/* ---- mirror and its control socket --------------------------------- */

/* A running `vstor mirror` listens on $state/jobs/<hash>.sock so that
 * `vstor pivot|complete|cancel URI` from another shell can finish it. */
static char *ctl_path(vstor_ctx *c, vstor_vol *v)
{
  uint64_t h = 1469598103934665603ull;
  for (const char *s = vstor_vol_id(v); *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
  char *dir, *p;
  if (asprintf(&dir, "%s/jobs", vstor_ctx_state_dir(c)) < 0) return NULL;
  mkdir(vstor_ctx_state_dir(c), 0700);
  mkdir(dir, 0700);
  if (asprintf(&p, "%s/%016llx.sock", dir, (unsigned long long)h) < 0) p = NULL;
  free(dir);
  return p;
}

static int ctl_listen(const char *path)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof a.sun_path) return -1;
  strcpy(a.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  unlink(path);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4) < 0) { close(s); return -1; }
  return s;
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

static void progress_bar(vstor_job *job, uint64_t t0)
{
  uint64_t done = 0, total = 0;
  vstor_job_progress(job, &done, &total);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double secs = (double)ts.tv_sec + ts.tv_nsec / 1e9 - (double)t0 / 1e6;
  char d[32], t[32], r[32];
  human(d, sizeof d, done);
  human(t, sizeof t, total);
  human(r, sizeof r, secs > 0 ? (uint64_t)((double)done / secs) : 0);
  int pct = total ? (int)(done * 100 / total) : 0, w = 30, fill = pct * w / 100;
  fprintf(stderr, "\r[%.*s%*s] %3d%% %s / %s  %s/s  %s   ", fill, "##############################",
          w - fill, "", pct, d, total ? t : "?", r, vstor_job_state_name(vstor_job_state(job)));
  fflush(stderr);
}


static void json_job(vstor_job *job, const char *action, int rc, uint64_t ms)
{
  uint64_t done = 0, total = 0;
  vstor_job_progress(job, &done, &total);
  printf("{\"ok\":%s,\"command\":\"mirror\",\"dest\":", rc < 0 ? "false" : "true");
  jstr(stdout, vstor_job_dest(job));
  printf(",\"state\":");
  jstr(stdout, vstor_job_state_name(vstor_job_state(job)));
  printf(",\"action\":");
  jstr(stdout, action);
  printf(",\"bytes_done\":%" PRIu64 ",\"bytes_total\":%" PRIu64 ",\"elapsed_ms\":%" PRIu64, done,
         total, ms);
  if (rc < 0) {
    printf(",\"error\":{\"code\":");
    jstr(stdout, vstor_code_name(vstor_last_code()));
    printf(",\"errno\":%d,\"message\":", vstor_last_errno());
    jstr(stdout, vstor_last_error());
    printf("}");
  }
  printf("}\n");
}

static int job_act(vstor_job *job, const char *what)
{
  if (!strcmp(what, "pivot")) return vstor_job_pivot(job, 0);
  if (!strcmp(what, "complete")) return vstor_job_complete(job, 0);
  return vstor_job_cancel(job, 0);
}

static int cmd_mirror(int argc, char **argv, unsigned flags, uint64_t speed, const char *then)
{
  if (argc != 2) return usage_error("mirror takes a URI and a destination");
  vstor_ctx *c;
  vstor_vol *v;
  if (with_vol(argv[0], 0, &c, &v) < 0) return fail("mirror");
  char *why = NULL;
  if (then && !strcmp(then, "pivot") && vstor_vol_can(v, VSTOR_OP_PIVOT, flags, &why) != 1) {
    /* refuse before copying anything: the pivot could never happen */
    if (json) printf("{\"ok\":false,\"command\":\"mirror\",\"error\":{\"code\":\"NOTSUP\","
                     "\"errno\":%d,\"message\":", ENOTSUP);
    else fprintf(stderr, "%s: NOTSUP: cannot pivot %s: ", prog, argv[0]);
    if (json) { jstr(stdout, why ? why : vstor_last_error()); printf("}}\n"); }
    else fprintf(stderr, "%s\n", why ? why : vstor_last_error());
    free(why);
    done_vol(c, v);
    return EX_FAIL;
  }
  vstor_opts *o = vstor_opts_new();
  vstor_opts_set_speed(o, speed);
  vstor_job *job = NULL;
  vstor_report *rep = NULL;
  int rc = vstor_mirror(v, argv[1], o, flags | (dry_run ? VSTOR_DRY_RUN : 0), &job, &rep);
  vstor_opts_free(o);
  if (rc < 0 || dry_run) {
    int ex = finish_report("mirror", rc, rep);
    vstor_report_free(rep);
    done_vol(c, v);
    return ex;
  }
  vstor_report_free(rep);
  char *sock = ctl_path(c, v);
  int ls = sock ? ctl_listen(sock) : -1;
  struct sigaction sa = { .sa_handler = on_sigint };
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  bool tty = isatty(2) && !json && !quiet;
  uint64_t t0 = now_us(), last = 0;
  int ex = EX_OK;
  const char *action = then;
  int state;
  /* copy until READY (or the end), showing progress */
  while ((state = vstor_job_state(job)) < VSTOR_JOB_READY && !interrupted) {
    struct pollfd pf = { vstor_job_fd(job), POLLIN, 0 };
    poll(&pf, 1, 200);
    uint64_t buf;
    if (pf.revents & POLLIN) (void)!read(pf.fd, &buf, sizeof buf);
    if (tty && now_us() - last > 100000) { progress_bar(job, t0); last = now_us(); }
  }
  if (tty) { progress_bar(job, t0); fputc('\n', stderr); }
  if (interrupted) action = "cancel";
  else if (state == VSTOR_JOB_FAILED) {
    vstor_job_wait(job, 0, 0);  /* sets the job's error */
    if (json) json_job(job, "copy", -1, (now_us() - t0) / 1000);
    else fail("mirror");
    ex = code_exit(vstor_last_code());
    goto out;
  } else if (!json && !quiet)
    printf("%s: READY (copy in sync) after %.1f s\n", vstor_job_dest(job), (now_us() - t0) / 1e6);
  char cmdbuf[32] = "";
  int client = -1;
  if (!action) {
    if (!json && !quiet)
      printf("waiting for `vstor pivot|complete|cancel %s` (^C cancels)\n", argv[0]);
    while (!interrupted && !action) {
      struct pollfd pf = { ls, POLLIN, 0 };
      if (poll(&pf, 1, 500) > 0 && (client = accept4(ls, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        ssize_t n = read(client, cmdbuf, sizeof cmdbuf - 1);
        cmdbuf[n > 0 ? n : 0] = 0;
        cmdbuf[strcspn(cmdbuf, "\n")] = 0;
        if (!strcmp(cmdbuf, "pivot") || !strcmp(cmdbuf, "complete") || !strcmp(cmdbuf, "cancel"))
          action = cmdbuf;
        else { (void)!write(client, "error unknown command\n", 22); close(client); client = -1; }
      }
    }
    if (!action) action = "cancel";
  }
  uint64_t ta = now_us();
  rc = job_act(job, action);
  if (client >= 0) {
    char reply[1200];
    int n = rc < 0 ? snprintf(reply, sizeof reply, "error %s %s\n", vstor_code_name(vstor_last_code()),
                              vstor_last_error())
                   : snprintf(reply, sizeof reply, "ok %s\n", vstor_job_state_name(vstor_job_state(job)));
    (void)!write(client, reply, (size_t)n);
    close(client);
  }
  if (json) json_job(job, action, rc, (now_us() - t0) / 1000);
  else if (rc < 0) fail(action);
  else if (!quiet)
    printf("%s: %s in %.1f ms\n", vstor_job_dest(job), vstor_job_state_name(vstor_job_state(job)),
           (now_us() - ta) / 1e3);
  if (rc < 0) ex = code_exit(vstor_last_code());
  else if (!strcmp(action, "cancel") && interrupted) ex = EX_FAIL;
out:
  if (ls >= 0) { close(ls); unlink(sock); }
  free(sock);
  vstor_job_free(job);
  done_vol(c, v);
  return ex;
}

/* pivot|complete|cancel URI: ask the `vstor mirror` running on URI. */
static int cmd_control(const char *what, int argc, char **argv)
{
  if (argc != 1) return usage_error("%s takes one URI", what);
  vstor_ctx *c;
  vstor_vol *v;
  if (with_vol(argv[0], VSTOR_OPEN_READONLY, &c, &v) < 0) return fail(what);
  char *sock = ctl_path(c, v);
  done_vol(c, v);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  snprintf(a.sun_path, sizeof a.sun_path, "%s", sock ? sock : "");
  free(sock);
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    if (s >= 0) close(s);
    if (json) printf("{\"ok\":false,\"command\":\"%s\",\"error\":{\"code\":\"NOENT\",\"errno\":%d,"
                     "\"message\":\"no mirror job is running on this volume\"}}\n", what, ENOENT);
    else fprintf(stderr, "%s: NOENT: %s: no mirror job is running on %s\n", prog, what, argv[0]);
    return EX_FAIL;
  }
  dprintf(s, "%s\n", what);
  char reply[1200];
  ssize_t n = 0, r;
  while ((r = read(s, reply + n, sizeof reply - 1 - (size_t)n)) > 0) n += r;
  close(s);
  reply[n > 0 ? n : 0] = 0;
  reply[strcspn(reply, "\n")] = 0;
  bool ok = !strncmp(reply, "ok ", 3);
  if (json) {
    printf("{\"ok\":%s,\"command\":", ok ? "true" : "false");
    jstr(stdout, what);
    if (ok) { printf(",\"state\":"); jstr(stdout, reply + 3); }
    else {
      char *sp = strchr(reply + 6, ' ');
      printf(",\"error\":{\"code\":");
      if (sp) { *sp = 0; jstr(stdout, reply + 6); } else jstr(stdout, "INTERNAL");
      printf(",\"message\":");
      jstr(stdout, sp ? sp + 1 : reply);
      printf("}");
    }
    printf("}\n");
  } else if (ok) printf("%s: %s\n", argv[0], reply + 3);
  else fprintf(stderr, "%s: %s\n", prog, reply[0] ? reply + (strncmp(reply, "error ", 6) ? 0 : 6)
                                                   : "the mirror process went away");
  return ok ? EX_OK : EX_FAIL;
}

/* ---- main ---------------------------------------------------------- */

static void help(void)
{
  printf(
"Usage: vstor [OPTIONS] COMMAND [ARGS]\n"
"Live storage operations on virtual machine disks (libvstor %s).\n\n"
"Commands:\n"
"  info URI                   layers of the volume, bottom first\n"
"  caps [URI]                 what each backend (or this volume) can do, or why not\n"
"  extend URI SIZE            grow to SIZE (50G) or by +SIZE (+10G) through every layer\n"
"  snapshot URI DEST          freeze, snapshot to DEST, thaw; prints the frozen window\n"
"  mirror URI DEST            copy to DEST with progress; at READY: --pivot, --complete,\n"
"                             or wait for `vstor pivot|complete|cancel URI`\n"
"  pivot|complete|cancel URI  finish the mirror running on URI\n"
"  recover                    finish or roll back what a crash left (thaw, remove, release)\n\n"
"Options:\n"
"  --json                     machine-readable output (one JSON object)\n"
"  -n, --dry-run              print the plan of steps per layer, change nothing\n"
"  -q, --quiet                no step listing or progress bar\n"
"  --state-dir DIR            locks and journal (default $VSTOR_STATE_DIR or /var/lib/vstor)\n"
"  --backend-dir DIR          backend modules (default $VSTOR_BACKEND_DIR or the installed dir)\n"
"  extend:   --prealloc (allocate the space), --resize-fs (grow the filesystem too)\n"
"  snapshot: --crash-consistent, --no-reflink, --expedite (fast FIFREEZE, see vstor(1)),\n"
"            --timeout MS (freeze bound, default 10000)\n"
"  mirror:   --speed BYTES/S (50M), --verify, --reuse, --shallow, --pivot, --complete\n"
"  -h, --help, -V, --version\n\n"
"URIs: /img, file:/img, loop:/dev/loop0, lvm:VG/LV, /dev/VG/LV, libvirt:DOM/vda[?uri=CONN],\n"
"      xen:DOM/xvda, phy:/dev/vg/lv,xvda,w, rbd:POOL/IMAGE  (see vstor-uri(7))\n\n"
"Exit status: 0 success, 1 operation failed, 2 usage error, 3 partial (some layers changed).\n",
         vstor_version());
}

int main(int argc, char **argv)
{
  enum { O_JSON = 256, O_STATE, O_BACKEND, O_PREALLOC, O_RESIZE, O_CRASH, O_NOREFLINK, O_EXPEDITE, O_TIMEOUT,
         O_SPEED, O_VERIFY, O_REUSE, O_SHALLOW, O_PIVOT, O_COMPLETE };
  static const struct option opts[] = {
    { "json", no_argument, NULL, O_JSON },        { "dry-run", no_argument, NULL, 'n' },
    { "quiet", no_argument, NULL, 'q' },          { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },        { "state-dir", required_argument, NULL, O_STATE },
    { "backend-dir", required_argument, NULL, O_BACKEND },
    { "prealloc", no_argument, NULL, O_PREALLOC }, { "resize-fs", no_argument, NULL, O_RESIZE },
    { "crash-consistent", no_argument, NULL, O_CRASH },
    { "no-reflink", no_argument, NULL, O_NOREFLINK },
    { "expedite", no_argument, NULL, O_EXPEDITE },
    { "timeout", required_argument, NULL, O_TIMEOUT }, { "speed", required_argument, NULL, O_SPEED },
    { "verify", no_argument, NULL, O_VERIFY },    { "reuse", no_argument, NULL, O_REUSE },
    { "shallow", no_argument, NULL, O_SHALLOW },  { "pivot", no_argument, NULL, O_PIVOT },
    { "complete", no_argument, NULL, O_COMPLETE }, { NULL, 0, NULL, 0 },
  };
  unsigned ext = 0, snap = 0, mir = 0;
  uint32_t timeout_ms = 0;
  uint64_t speed = 0;
  const char *then = NULL;
  int ch;
  setvbuf(stdout, NULL, _IOLBF, 0);  /* progress lines reach pipes as they happen */
  /* GNU getopt permutes: options may come before or after the command */
  while ((ch = getopt_long(argc, argv, "nqhV", opts, NULL)) != -1) {
    switch (ch) {
    case O_JSON: json = true; break;
    case 'n': dry_run = true; break;
    case 'q': quiet = true; break;
    case 'h': help(); return EX_OK;
    case 'V': printf("vstor %s\n", vstor_version()); return EX_OK;
    case O_STATE: state_dir = optarg; break;
    case O_BACKEND: backend_dir = optarg; break;
    case O_PREALLOC: ext |= VSTOR_EXTEND_PREALLOC; break;
    case O_RESIZE: ext |= VSTOR_EXTEND_RESIZE_FS; break;
    case O_CRASH: snap |= VSTOR_SNAPSHOT_CRASH_CONSISTENT; break;
    case O_NOREFLINK: snap |= VSTOR_SNAPSHOT_NO_REFLINK; break;
    case O_EXPEDITE: snap |= VSTOR_SNAPSHOT_EXPEDITE; break;
    case O_TIMEOUT: {
      char *e;
      unsigned long t = strtoul(optarg, &e, 10);
      if (*e || !*optarg || t == 0 || t > 600000)
        return usage_error("--timeout: \"%s\" is not 1..600000 ms", optarg);
      timeout_ms = (uint32_t)t;
      break;
    }
    case O_SPEED:
      if (optarg[0] == '+' || vstor_parse_size(optarg, 0, &speed) < 0)
        return usage_error("--speed: \"%s\" is not a byte rate (50M)", optarg);
      break;
    case O_VERIFY: mir |= VSTOR_MIRROR_VERIFY; break;
    case O_REUSE: mir |= VSTOR_MIRROR_REUSE_DEST; break;
    case O_SHALLOW: mir |= VSTOR_MIRROR_SHALLOW; break;
    case O_PIVOT: then = "pivot"; break;
    case O_COMPLETE: then = "complete"; break;
    default: fprintf(stderr, "Try '%s --help'.\n", prog); return EX_USAGE;
    }
  }
  if (optind >= argc) return usage_error("no command given");
  const char *cmd = argv[optind];
  int rest = argc - optind - 1;
  char **args = argv + optind + 1;
  if (!strcmp(cmd, "info")) return cmd_info(rest, args);
  if (!strcmp(cmd, "caps")) return cmd_caps(rest, args);
  if (!strcmp(cmd, "extend")) return cmd_extend(rest, args, ext);
  if (!strcmp(cmd, "snapshot")) return cmd_snapshot(rest, args, snap, timeout_ms);
  if (!strcmp(cmd, "mirror")) return cmd_mirror(rest, args, mir, speed, then);
  if (!strcmp(cmd, "pivot") || !strcmp(cmd, "complete") || !strcmp(cmd, "cancel"))
    return cmd_control(cmd, rest, args);
  if (!strcmp(cmd, "recover")) return cmd_recover(rest, args);
  return usage_error("unknown command \"%s\"", cmd);
}
