/* libvstor C example: open a volume, grow it online with its filesystem,
 * take a freeze-and-snapshot, mirror it and pivot (or complete).
 *
 *   vstor-example URI SIZE SNAPSHOT COPY      e.g.
 *   vstor-example /var/lib/vm/disk.img +1G /var/lib/vm/snap.img /mnt/b/disk.img
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <vstor.h>

static int die(const char *what)
{
  fprintf(stderr, "%s failed: [%s] %s\n", what, vstor_code_name(vstor_last_code()),
          vstor_last_error());
  return 1;
}

int main(int argc, char **argv)
{
  if (argc != 5) {
    fprintf(stderr, "usage: %s URI SIZE SNAPSHOT COPY\n", argv[0]);
    return 2;
  }
  vstor_ctx *ctx = vstor_ctx_new(0);
  vstor_vol *vol;
  uint64_t size, cur;
  if (!ctx) return die("vstor_ctx_new");
  if (vstor_open(ctx, argv[1], 0, &vol) < 0) return die("open");

  /* extend: file, loop capacity and filesystem, in one call */
  vstor_vol_size(vol, &cur);
  if (vstor_parse_size(argv[2], cur, &size) < 0) return die("size");
  if (vstor_extend(vol, size, NULL, VSTOR_EXTEND_RESIZE_FS, NULL) < 0) return die("extend");
  printf("extended to %" PRIu64 " bytes\n", size);

  /* freeze, snapshot, thaw: the report holds the frozen window */
  vstor_report *rep;
  if (vstor_snapshot(vol, argv[3], NULL, 0, &rep) < 0) return die("snapshot");
  printf("snapshot by %s, frozen %" PRIu64 " us\n", vstor_report_method(rep),
         vstor_report_frozen_us(rep));
  vstor_report_free(rep);

  /* mirror; pivot when the layers allow it, else keep a point-in-time copy */
  vstor_job *job;
  if (vstor_mirror(vol, argv[4], NULL, 0, &job, NULL) < 0) return die("mirror");
  if (vstor_job_wait(job, -1, 0) < 0) return die("mirror wait");
  char *why = NULL;
  int pivot = vstor_vol_can(vol, VSTOR_OP_PIVOT, 0, &why) == 1;
  if ((pivot ? vstor_job_pivot(job, 0) : vstor_job_complete(job, 0)) < 0) return die("finish");
  printf("%s%s%s\n", vstor_job_state_name(vstor_job_state(job)), why ? ": " : "", why ? why : "");
  free(why);
  vstor_job_free(job);
  vstor_close(vol);
  vstor_ctx_free(ctx);
  return 0;
}
