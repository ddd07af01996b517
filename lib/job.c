/* libvstor - mirror jobs: thread, event fd, state machine
 *
 * PENDING -> RUNNING -> READY -> PIVOTED | COMPLETED | CANCELLED
 *                   \-> FAILED, CANCELLED
 * The backend's job_run() does the copy on the job's thread and returns
 * when in sync.  pivot/complete/cancel run on the caller's thread and are
 * permitted only in the states above (else STATE naming the state).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

static void notify(vstor_job *job)
{
  uint64_t one = 1;
  (void)!write(job->efd, &one, sizeof one);
  pthread_cond_broadcast(&job->cond);
}

static bool ended(int s) { return s >= VSTOR_JOB_PIVOTED; }

static void set_state(vstor_job *job, int s)  /* job->mu held */
{
  job->state = s;
  notify(job);
  if (ended(s) && job->lock) {
    vstor__unlock(job->lock);
    job->lock = NULL;
  }
}

void vstor__job_progress(vstor_job *job, uint64_t done, uint64_t total)
{
  pthread_mutex_lock(&job->mu);
  job->done = done;
  job->total = total;
  notify(job);
  vstor_progress_fn fn = job->opts.progress;
  void *op = job->opts.progress_opaque;
  pthread_mutex_unlock(&job->mu);
  if (fn) fn(op, done, total);
}

bool vstor__job_cancelled(vstor_job *job)
{
  pthread_mutex_lock(&job->mu);
  bool c = job->cancel_requested;
  pthread_mutex_unlock(&job->mu);
  return c;
}

uint64_t vstor__job_speed(vstor_job *job)
{
  pthread_mutex_lock(&job->mu);
  uint64_t s = job->speed;
  pthread_mutex_unlock(&job->mu);
  return s;
}

static void save_error(vstor_job *job)
{
  free(job->err_msg);
  vstor__error_get(&job->err_code, &job->err_errno, &job->err_msg);
}

static void *job_thread(void *arg)
{
  vstor_job *job = arg;
  vstor__enter("vstor_mirror");
  pthread_mutex_lock(&job->mu);
  set_state(job, VSTOR_JOB_RUNNING);
  pthread_mutex_unlock(&job->mu);
  int r = job->vol->ops->job_run(job);
  if (r < 0) save_error(job);
  pthread_mutex_lock(&job->mu);
  bool cancel = job->cancel_requested;
  pthread_mutex_unlock(&job->mu);
  if (cancel) {
    job->vol->ops->job_cancel(job);
    pthread_mutex_lock(&job->mu);
    set_state(job, VSTOR_JOB_CANCELLED);
  } else {
    pthread_mutex_lock(&job->mu);
    set_state(job, r == 0 ? VSTOR_JOB_READY : VSTOR_JOB_FAILED);
  }
  pthread_mutex_unlock(&job->mu);
  return NULL;
}

int vstor__job_start(vstor_job *job)
{
  job->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (job->efd < 0)
    return vstor__error(VSTOR_E_AGAIN, errno, "eventfd: %s", strerror(errno));
  int r = pthread_create(&job->thread, NULL, job_thread, job);
  if (r) {
    close(job->efd);
    job->efd = -1;
    return vstor__error(VSTOR_E_AGAIN, r, "cannot start the job thread: %s", strerror(r));
  }
  job->thread_started = true;
  return 0;
}

#define JOB_CHECK(job, name)                                             \
  do {                                                                   \
    ENTER(name);                                                         \
    if (!(job)) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL job");  \
  } while (0)

VSTOR_API int vstor_job_state(vstor_job *job)
{
  JOB_CHECK(job, "vstor_job_state");
  pthread_mutex_lock(&job->mu);
  int s = job->state;
  pthread_mutex_unlock(&job->mu);
  return s;
}

VSTOR_API int vstor_job_progress(vstor_job *job, uint64_t *done, uint64_t *total)
{
  JOB_CHECK(job, "vstor_job_progress");
  if (!done || !total) return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL argument");
  pthread_mutex_lock(&job->mu);
  *done = job->done;
  *total = job->total;
  pthread_mutex_unlock(&job->mu);
  return 0;
}

VSTOR_API int vstor_job_fd(vstor_job *job)
{
  JOB_CHECK(job, "vstor_job_fd");
  return job->efd;
}

VSTOR_API const char *vstor_job_dest(vstor_job *job) { return job ? job->dest : NULL; }

VSTOR_API int vstor_job_set_speed(vstor_job *job, uint64_t bps)
{
  JOB_CHECK(job, "vstor_job_set_speed");
  pthread_mutex_lock(&job->mu);
  job->speed = bps;
  pthread_mutex_unlock(&job->mu);
  return 0;
}

static int job_error(vstor_job *job)  /* mu held */
{
  vstor__error_set_raw(job->err_code ? job->err_code : VSTOR_E_INTERNAL, job->err_errno,
                       job->err_msg ? job->err_msg : "vstor_mirror: job failed");
  return -1;
}

VSTOR_API int vstor_job_wait(vstor_job *job, int timeout_ms, unsigned flags)
{
  JOB_CHECK(job, "vstor_job_wait");
  if (vstor__check_flags(flags, 0, "flags") < 0) return -1;
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  if (timeout_ms >= 0) {
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
  }
  pthread_mutex_lock(&job->mu);
  int r = 0;
  while (job->state < VSTOR_JOB_READY && r == 0) {
    if (timeout_ms < 0) pthread_cond_wait(&job->cond, &job->mu);
    else r = pthread_cond_timedwait(&job->cond, &job->mu, &dl);
  }
  int s = job->state;
  int ret = 0;
  if (s < VSTOR_JOB_READY)
    ret = vstor__error(VSTOR_E_TIMEOUT, ETIMEDOUT, "%s: not ready after %d ms (state %s)",
                       job->dest, timeout_ms, vstor_job_state_name(s));
  else if (s == VSTOR_JOB_FAILED) ret = job_error(job);
  pthread_mutex_unlock(&job->mu);
  return ret;
}

static void join(vstor_job *job)
{
  if (job->thread_started) {
    pthread_join(job->thread, NULL);
    job->thread_started = false;
  }
}

static int need_ready(vstor_job *job)  /* mu held */
{
  if (job->state != VSTOR_JOB_READY)
    return vstor__error(VSTOR_E_STATE, EINVAL, "%s: job is %s, not READY", job->dest,
                        vstor_job_state_name(job->state));
  return 0;
}

static int finish(vstor_job *job, const char *name, int (*fn)(vstor_job *), int to)
{
  JOB_CHECK(job, name);
  pthread_mutex_lock(&job->mu);
  if (need_ready(job) < 0) { pthread_mutex_unlock(&job->mu); return -1; }
  pthread_mutex_unlock(&job->mu);
  join(job);  /* job_run returned already: READY is set after it */
  pthread_mutex_lock(&job->vol->mu);
  int r = fn(job);
  pthread_mutex_unlock(&job->vol->mu);
  pthread_mutex_lock(&job->mu);
  if (r == 0) set_state(job, to);
  pthread_mutex_unlock(&job->mu);
  return r;
}

VSTOR_API int vstor_job_pivot(vstor_job *job, unsigned flags)
{
  ENTER("vstor_job_pivot");
  if (job && vstor__check_flags(flags, 0, "flags") < 0) return -1;
  return finish(job, "vstor_job_pivot", job ? job->vol->ops->job_pivot : NULL, VSTOR_JOB_PIVOTED);
}

VSTOR_API int vstor_job_complete(vstor_job *job, unsigned flags)
{
  ENTER("vstor_job_complete");
  if (job && vstor__check_flags(flags, 0, "flags") < 0) return -1;
  return finish(job, "vstor_job_complete", job ? job->vol->ops->job_complete : NULL,
                VSTOR_JOB_COMPLETED);
}

VSTOR_API int vstor_job_cancel(vstor_job *job, unsigned flags)
{
  JOB_CHECK(job, "vstor_job_cancel");
  if (vstor__check_flags(flags, 0, "flags") < 0) return -1;
  pthread_mutex_lock(&job->mu);
  int s = job->state;
  if (ended(s)) {
    pthread_mutex_unlock(&job->mu);
    return vstor__error(VSTOR_E_STATE, EINVAL, "%s: job already ended (%s)", job->dest,
                        vstor_job_state_name(s));
  }
  job->cancel_requested = true;
  pthread_mutex_unlock(&job->mu);
  join(job);  /* a running copy stops at its next chunk and cleans up */
  pthread_mutex_lock(&job->mu);
  s = job->state;
  pthread_mutex_unlock(&job->mu);
  if (s == VSTOR_JOB_READY || s == VSTOR_JOB_PENDING) {
    pthread_mutex_lock(&job->vol->mu);
    int r = job->vol->ops->job_cancel(job);
    pthread_mutex_unlock(&job->vol->mu);
    pthread_mutex_lock(&job->mu);
    if (r == 0) set_state(job, VSTOR_JOB_CANCELLED);
    pthread_mutex_unlock(&job->mu);
    return r;
  }
  if (s == VSTOR_JOB_FAILED) {  /* it failed before noticing the cancel */
    pthread_mutex_lock(&job->mu);
    int r = job_error(job);
    pthread_mutex_unlock(&job->mu);
    return r;
  }
  return 0;
}

VSTOR_API void vstor_job_free(vstor_job *job)
{
  if (!job) return;
  ENTER("vstor_job_free");
  pthread_mutex_lock(&job->mu);
  int s = job->state;
  pthread_mutex_unlock(&job->mu);
  if (!ended(s)) vstor_job_cancel(job, 0);
  join(job);
  if (!ended(job->state) && job->vol->ops->job_cancel) job->vol->ops->job_cancel(job);
  if (job->vol->ops->job_free) job->vol->ops->job_free(job);
  if (job->lock) vstor__unlock(job->lock);
  pthread_mutex_lock(&job->vol->ctx->mu);
  job->vol->njobs--;
  pthread_mutex_unlock(&job->vol->ctx->mu);
  if (job->efd >= 0) close(job->efd);
  pthread_mutex_destroy(&job->mu);
  pthread_cond_destroy(&job->cond);
  free(job->err_msg);
  free(job->dest);
  free(job->journal_id);
  free(job);
}
