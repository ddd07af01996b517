/* libvstor - public accessors of reports and layers
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static const struct vstor_step *step(const vstor_report *r, size_t i)
{
  return r && i < r->nsteps ? &r->steps[i] : NULL;
}

VSTOR_API size_t vstor_report_step_count(const vstor_report *r) { return r ? r->nsteps : 0; }
VSTOR_API const char *vstor_report_step_layer(const vstor_report *r, size_t i)
{ const struct vstor_step *s = step(r, i); return s ? s->layer : NULL; }
VSTOR_API const char *vstor_report_step_action(const vstor_report *r, size_t i)
{ const struct vstor_step *s = step(r, i); return s ? s->action : NULL; }
VSTOR_API int vstor_report_step_status(const vstor_report *r, size_t i)
{ const struct vstor_step *s = step(r, i); return s ? s->status : -1; }
VSTOR_API int vstor_report_step_reversible(const vstor_report *r, size_t i)
{ const struct vstor_step *s = step(r, i); return s ? s->reversible : -1; }
VSTOR_API const char *vstor_report_step_detail(const vstor_report *r, size_t i)
{ const struct vstor_step *s = step(r, i); return s ? s->detail : NULL; }
VSTOR_API uint64_t vstor_report_frozen_us(const vstor_report *r) { return r ? r->frozen_us : 0; }
VSTOR_API int vstor_report_consistency(const vstor_report *r) { return r ? r->consistency : 0; }
VSTOR_API uint64_t vstor_report_old_size(const vstor_report *r) { return r ? r->old_size : 0; }
VSTOR_API uint64_t vstor_report_new_size(const vstor_report *r) { return r ? r->new_size : 0; }
VSTOR_API const char *vstor_report_method(const vstor_report *r) { return r ? r->method : NULL; }

VSTOR_API void vstor_report_free(vstor_report *r)
{
  if (!r) return;
  for (size_t i = 0; i < r->nsteps; i++) {
    free(r->steps[i].layer);
    free(r->steps[i].action);
    free(r->steps[i].detail);
  }
  free(r->steps);
  free(r->method);
  free(r);
}

VSTOR_API const char *vstor_layer_role(const vstor_layer *l) { return l ? l->role : NULL; }
VSTOR_API const char *vstor_layer_type(const vstor_layer *l) { return l ? l->type : NULL; }
VSTOR_API const char *vstor_layer_path(const vstor_layer *l) { return l ? l->path : NULL; }
VSTOR_API uint64_t vstor_layer_size(const vstor_layer *l) { return l ? l->size : 0; }
VSTOR_API const char *vstor_layer_prop_key(const vstor_layer *l, size_t i)
{
  return l && i < l->nprops ? l->props[i].key : NULL;
}
VSTOR_API const char *vstor_layer_prop(const vstor_layer *l, const char *key)
{
  if (!l || !key) return NULL;
  for (size_t i = 0; i < l->nprops; i++)
    if (!strcmp(l->props[i].key, key)) return l->props[i].val;
  return NULL;
}

static const char *const op_names[] = {
  "extend", "extend-online", "resize-fs", "snapshot", "freeze", "mirror", "pivot",
};
VSTOR_API const char *vstor_op_name(int op)
{
  return op >= 0 && op < VSTOR_OP__COUNT ? op_names[op] : NULL;
}

static const char *const state_names[] = {
  "PENDING", "RUNNING", "READY", "PIVOTED", "COMPLETED", "CANCELLED", "FAILED",
};
VSTOR_API const char *vstor_job_state_name(int s)
{
  return s >= 0 && s <= VSTOR_JOB_FAILED ? state_names[s] : NULL;
}
