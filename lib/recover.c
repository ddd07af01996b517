/* libvstor - recovery from the journal
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

bool vstor__jrec_owner_alive(const struct vstor_jrec *r);

VSTOR_API int vstor_recover(vstor_ctx *ctx, unsigned flags, vstor_report **report)
{
  ENTER("vstor_recover");
  if (report) *report = NULL;
  if (!ctx) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL context");
  if (vstor__check_flags(flags, VSTOR_DRY_RUN, "flags") < 0) return -1;
  char **paths;
  size_t n;
  int c0, e0;
  char *m0;
  vstor__error_get(&c0, &e0, &m0);  /* a success leaves the last error as it was */
  if (vstor__journal_list(ctx, &paths, &n) < 0) { free(m0); return -1; }
  vstor_report *rep = vu_report_new();
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    struct vstor_jrec *rec;
    if (vstor__jrec_load(ctx, paths[i], &rec) < 0) {
      if (vstor_last_errno() == ENOENT) continue;  /* its operation just ended */
      vu_step(rep, "journal", "skip unreadable record", VSTOR_STEP_FAILED, 0, "%s",
              vstor_last_error());
      failed++;
      continue;
    }
    const char *op = vstor__jrec_get(rec, "op"), *vol = vstor__jrec_get(rec, "vol");
    if (vstor__jrec_owner_alive(rec)) {
      vu_step(rep, vol ? vol : "?", op, VSTOR_STEP_SKIPPED, 0,
              "process %s is still running", vstor__jrec_get(rec, "pid"));
      vstor__jrec_free(rec);
      continue;
    }
    const struct vstor_backend_ops *ops = vstor__backend_get(ctx, vstor__jrec_get(rec, "backend"));
    if (flags & VSTOR_DRY_RUN) {
      vu_step(rep, vol ? vol : "?", op, VSTOR_STEP_PLANNED, 1, "record %s", paths[i]);
    } else if (!ops || !ops->recover) {
      vu_step(rep, vol ? vol : "?", op, VSTOR_STEP_FAILED, 0, "%s",
              ops ? "backend cannot recover" : vstor_last_error());
      failed++;
    } else if (ops->recover(ctx, rec, rep) < 0) {
      vu_step(rep, vol ? vol : "?", op, VSTOR_STEP_FAILED, 0, "%s", vstor_last_error());
      failed++;
    } else {
      unlink(paths[i]);  /* handled: the record is done */
    }
    vstor__jrec_free(rec);
  }
  for (size_t i = 0; i < n; i++) free(paths[i]);
  free(paths);
  if (!(flags & VSTOR_DRY_RUN)) vstor__lock_reap(ctx, rep);
  if (report) *report = rep; else vstor_report_free(rep);
  if (failed) {
    free(m0);
    return vstor__error(VSTOR_E_PARTIAL, 0, "%d journal record(s) could not be recovered "
                        "(see the report)", failed);
  }
  vstor__error_set_raw(c0, e0, m0);
  free(m0);
  return 0;
}
