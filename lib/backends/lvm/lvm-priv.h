/* libvstor - LVM / device-mapper backend, private interfaces
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef VSTOR_LVM_PRIV_H
#define VSTOR_LVM_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "util.h"

/* ---- lvm2 tools (lvm-tool.c) --------------------------------------- */

/* One row of an `lvm lvs/vgs/pvs --nameprefixes` report. */
struct lvm_row {
  char **keys, **vals;   /* "LV_NAME" (the LVM2_ prefix dropped), value */
  size_t n;
};
struct lvm_report {
  struct lvm_row *rows;
  size_t n;
};
/* Run `lvm CMD ARGS... --noheadings --nameprefixes --units b --nosuffix`
 * and parse the rows.  On failure the error is set from the tool's exit
 * status and stderr (NOENT when LVM says the VG/LV does not exist). */
int lvm_report_run(const char *const argv[], struct lvm_report *rep);
void lvm_report_free(struct lvm_report *rep);
const char *lvm_row_get(const struct lvm_row *row, const char *key);
uint64_t lvm_row_u64(const struct lvm_row *row, const char *key);
double lvm_row_pct(const struct lvm_row *row, const char *key); /* -1: empty */

/* Run an lvm2 command (argv[0] == "lvm"); 0 on success, else -1 with the
 * error mapped from stderr.  `what` names the object in the message. */
int lvm_cmd(const char *const argv[], const char *what);
/* Code and message (malloc'd) of the last failed lvm_cmd/lvm_report_run
 * of this thread, to restore it after a cleanup. */
int lvm_tool_error(char **msg);
/* Map a failed tool run to a VSTOR_E_* code from its stderr. */
int lvm_err_code(const char *err);
/* stderr without LVM's WARNING lines (malloc'd). */
char *lvm_clean_stderr(const char *err);

/* What we need to know about one LV (from lvs). */
struct lvm_lv {
  char *vg, *name, *attr, *segtype, *pool, *origin, *dm_path, *devices;
  uint64_t size, vg_free, extent_size;
  int kmaj, kmin;        /* -1 when not active */
  double data_pct;       /* -1 when not reported */
  int copies;            /* data copies (raid1/mirror), >= 1 */
  unsigned nsegs;
};
/* Query VG/LV.  NOENT (VG or LV) with a message naming it. */
int lvm_lv_get(const char *vg, const char *lv, struct lvm_lv *out);
void lvm_lv_clear(struct lvm_lv *lv);
bool lvm_lv_exists(const char *vg, const char *lv);
static inline bool lvm_lv_active(const struct lvm_lv *lv) { return lv->kmaj >= 0; }
/* attr[0]: 'o' classic origin, 's' classic snapshot, 'p' pvmove, 'V' thin. */
static inline char lvm_lv_kind(const struct lvm_lv *lv) { return lv->attr ? lv->attr[0] : '-'; }
/* The LV is locked by a pvmove (allocation letter upper-cased) or sits on one. */
bool lvm_lv_moving(const struct lvm_lv *lv);
/* Thin pool usage. */
struct lvm_pool {
  uint64_t size;
  double data_pct, meta_pct;
};
int lvm_pool_get(const char *vg, const char *pool, struct lvm_pool *out);
/* Names of classic snapshots of VG/LV, comma separated (malloc'd, "" if none). */
char *lvm_snapshots_of(const char *vg, const char *lv);

/* Device-mapper name of VG/LV ("-" doubled inside each part), malloc'd. */
char *lvm_dm_name(const char *vg, const char *lv);
/* Is `name` acceptable as an LVM object name? */
bool lvm_name_ok(const char *name);
/* Parse a snapshot destination: "lvm:VG/LV", "/dev/VG/LV",
 * "/dev/mapper/VG-LV" or a bare "LV" (same VG as `def_vg`). */
int lvm_parse_dest(const char *dest, const char *def_vg, char **vg, char **lv);

/* ---- libdevmapper (lvm-dm.c): every call under one global lock ------ */
struct lvm_dminfo {
  bool exists, suspended, live_table;
  int open_count, target_count;
  unsigned major, minor;
};
int lvm_dm_info(unsigned maj, unsigned min, struct lvm_dminfo *info);
int lvm_dm_info_name(const char *name, struct lvm_dminfo *info);
/* "start len target params" lines of the table or status (malloc'd). */
char *lvm_dm_table(unsigned maj, unsigned min, bool status);
char *lvm_dm_table_name(const char *name, bool status);
/* Devices the table uses, "254:0 254:16" (malloc'd). */
char *lvm_dm_deps(unsigned maj, unsigned min);
/* Bytes in sync over all mirror targets of `name`, and bytes mapped. */
int lvm_dm_mirror_sync(const char *name, uint64_t *done, uint64_t *total);
/* Resume a suspended device (used by recover / failure paths). */
int lvm_dm_resume(unsigned maj, unsigned min);
int lvm_dm_resume_name(const char *name);
/* Kernel has device-mapper (and target `target` when not NULL)? */
bool lvm_dm_available(const char *target, char **why);
/* Holders of a block device from sysfs ("vg-snap dm-3"), malloc'd. */
char *lvm_holders(unsigned maj, unsigned min);

/* ---- mirror via pvmove (lvm-move.c) --------------------------------- */
int lvm_mirror_prepare(vstor_vol *vol, vstor_job *job, unsigned flags, vstor_report *rep);
int lvm_job_run(vstor_job *job);
int lvm_job_pivot(vstor_job *job);
int lvm_job_complete(vstor_job *job);
int lvm_job_cancel(vstor_job *job);
void lvm_job_free(vstor_job *job);
int lvm_recover_mirror(vstor_ctx *ctx, const struct vstor_jrec *rec, vstor_report *rep);

/* Per-volume data. */
struct lvm_vol {
  char *vg, *lv;
  struct lvm_lv info;
};

#endif
