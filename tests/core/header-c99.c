/* libvstor ABI check: vstor.h compiles as ISO C99 (-std=c99 -pedantic
 * -Werror, see meson.build), and its types and constants are usable.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>
#include "vstor.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static void on_log(void *opaque, int level, const char *msg) { (void)opaque; (void)level; (void)msg; }
static void on_progress(void *opaque, uint64_t done, uint64_t total) { (void)opaque; (void)done; (void)total; }

int main(void)
{
  vstor_ctx *ctx = NULL;
  vstor_vol *vol = NULL;
  vstor_job *job = NULL;
  vstor_opts *opts = NULL;
  vstor_report *rep = NULL;
  const vstor_layer *layer = NULL;
  vstor_log_fn lf = on_log;
  vstor_progress_fn pf = on_progress;
  enum vstor_code code = VSTOR_E_PARTIAL;
  enum vstor_op op = VSTOR_OP_PIVOT;
  enum vstor_job_state st = VSTOR_JOB_FAILED;
  enum vstor_step_status ss = VSTOR_STEP_UNDONE;
  enum vstor_consistency cs = VSTOR_CONSISTENT_CRASH;
  enum vstor_log_level ll = VSTOR_LOG_DEBUG;
  unsigned flags = VSTOR_DRY_RUN | VSTOR_OPEN_EXCLUSIVE | VSTOR_EXTEND_RESIZE_FS |
                   VSTOR_SNAPSHOT_NO_REFLINK | VSTOR_MIRROR_VERIFY;
  const char *want = STR(VSTOR_VERSION_MAJOR) "." STR(VSTOR_VERSION_MINOR) "." STR(VSTOR_VERSION_MICRO);
  (void)ctx; (void)vol; (void)job; (void)opts; (void)rep; (void)layer; (void)lf; (void)pf;
  (void)code; (void)op; (void)st; (void)ss; (void)cs; (void)ll; (void)flags;
#if !VSTOR_HAVE_VSTOR_JOB_FD || !VSTOR_HAVE_VSTOR_RECOVER
#error feature macros missing
#endif
  if (strcmp(vstor_version(), want) != 0) {
    printf("vstor_version() is %s, the header says %s\n", vstor_version(), want);
    return 1;
  }
  if (VSTOR_OP__COUNT != 7 || strcmp(vstor_code_name(VSTOR_E_PARTIAL), "PARTIAL") != 0) return 1;
  printf("C99: vstor.h %s ok\n", want);
  return 0;
}
