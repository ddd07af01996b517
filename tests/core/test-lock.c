/* libvstor core tests - the per-volume lock
 *
 * Between processes (fork): a second process gets BUSY on an exclusive
 * open and on an operation while the first holds the lock; the lock is
 * free again when the holder exits or is killed.  Between threads: N
 * threads racing on an exclusive open, exactly one wins, no deadlock.
 * Stress: 2 processes x 4 threads extending one volume by 1 MiB for a few
 * seconds ($VSTOR_STRESS_SECONDS, default 5): every attempt succeeds or
 * gets BUSY, and the final size is the initial size plus 1 MiB per
 * success.  Plain image files in a temporary directory: no root needed.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core-test.h"

#define MiB (1024ull * 1024)
static char tmp[256], state_dir[300], img[300];

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w)
{
  (void)st; (void)f; (void)w;
  return remove(p);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static vstor_ctx *new_ctx(void)
{
  vstor_ctx *c = vstor_ctx_new(0);
  if (!c || vstor_ctx_set_state_dir(c, state_dir) < 0) return NULL;
  return c;
}

static uint64_t size_of(const char *p)
{
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  return (uint64_t)st.st_size;
}

static int setup(void **state)
{
  (void)state;
  const char *t = getenv("TMPDIR");
  snprintf(tmp, sizeof tmp, "%s/vstor-lock-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(tmp)) return -1;
  snprintf(state_dir, sizeof state_dir, "%s/state", tmp);
  snprintf(img, sizeof img, "%s/disk.img", tmp);
  int fd = open(img, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0 || ftruncate(fd, (off_t)(4 * MiB)) < 0) return -1;
  close(fd);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}

/* Child: open exclusive, report on `out`, wait for a byte on `in`. */
static void holder(int in, int out)
{
  vstor_ctx *c = new_ctx();
  vstor_vol *v = NULL;
  char ok = c && vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &v) == 0 ? 'y' : 'n';
  if (write(out, &ok, 1) != 1) _exit(3);
  char b;
  if (read(in, &b, 1) != 1) _exit(4);
  if (b == 'c') { vstor_close(v); vstor_ctx_free(c); }
  _exit(ok == 'y' ? 0 : 2);
}

static pid_t start_holder(int *tochild)
{
  int a[2], b[2];
  assert_int_equal(pipe(a), 0);
  assert_int_equal(pipe(b), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(a[1]);
    close(b[0]);
    holder(a[0], b[1]);
  }
  close(a[0]);
  close(b[1]);
  char ok = 0;
  assert_int_equal(read(b[0], &ok, 1), 1);
  close(b[0]);
  assert_int_equal(ok, 'y');
  *tochild = a[1];
  return pid;
}

static void assert_busy_from(pid_t pid, const char *call)
{
  assert_error(VSTOR_E_BUSY, EBUSY, call, NULL);
  char who[32];
  snprintf(who, sizeof who, "pid %d", (int)pid);
  if (!strstr(vstor_last_error(), who)) {
    print_error("BUSY does not name the holder (%s): %s\n", who, vstor_last_error());
    fail();
  }
}

static void test_two_processes(void **state)
{
  (void)state;
  vstor_ctx *c = new_ctx();
  assert_non_null(c);
  for (int round = 0; round < 2; round++) {
    int tochild;
    pid_t pid = start_holder(&tochild);
    uint64_t before = size_of(img);
    vstor_vol *v = (vstor_vol *)1;
    assert_int_equal(vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &v), -1);
    assert_null(v);
    assert_busy_from(pid, "vstor_open");
    /* a shared handle opens, but every changing operation is BUSY */
    assert_int_equal(vstor_open(c, img, 0, &v), 0);
    assert_int_equal(vstor_extend(v, before + MiB, NULL, 0, NULL), -1);
    assert_busy_from(pid, "vstor_extend");
    char *snap;
    assert_true(asprintf(&snap, "%s/snap%d", tmp, round) > 0);
    assert_int_equal(vstor_snapshot(v, snap, NULL, 0, NULL), -1);
    assert_busy_from(pid, "vstor_snapshot");
    assert_int_equal(access(snap, F_OK), -1);
    vstor_job *job = (vstor_job *)1;
    assert_int_equal(vstor_mirror(v, snap, NULL, 0, &job, NULL), -1);
    assert_null(job);
    assert_busy_from(pid, "vstor_mirror");
    assert_int_equal(size_of(img), before);  /* nothing changed */
    /* a dry run takes no lock */
    assert_int_equal(vstor_extend(v, before + MiB, NULL, VSTOR_DRY_RUN, NULL), 0);
    /* round 0: the holder closes and exits; round 1: it is killed */
    if (round == 0) assert_int_equal(write(tochild, "c", 1), 1);
    else assert_int_equal(kill(pid, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(tochild);
    if (round == 0) assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    else assert_true(WIFSIGNALED(st));
    /* the lock is free now */
    assert_int_equal(vstor_extend(v, before + MiB, NULL, 0, NULL), 0);
    assert_int_equal(size_of(img), before + MiB);
    vstor_vol *x = NULL;
    assert_int_equal(vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &x), 0);
    /* and held by us: the shared handle is BUSY now */
    assert_int_equal(vstor_extend(v, before + 2 * MiB, NULL, 0, NULL), -1);
    assert_int_equal(vstor_last_code(), VSTOR_E_BUSY);
    assert_int_equal(vstor_close(x), 0);
    assert_int_equal(vstor_close(v), 0);
    free(snap);
  }
  vstor_ctx_free(c);
}

/* ---- threads -------------------------------------------------------- */

#define NTHREADS 8
static pthread_barrier_t bar;
static vstor_ctx *shared_ctx;
struct racer { int rc, code; vstor_vol *v; bool own_ctx; };

static void *race(void *arg)
{
  struct racer *r = arg;
  vstor_ctx *c = r->own_ctx ? new_ctx() : shared_ctx;
  pthread_barrier_wait(&bar);
  r->rc = vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &r->v);
  r->code = r->rc ? vstor_last_code() : 0;
  pthread_barrier_wait(&bar);  /* everyone has tried: the winner closes */
  if (r->rc == 0) vstor_close(r->v);
  if (r->own_ctx) vstor_ctx_free(c);
  return NULL;
}

static void test_threads(void **state)
{
  (void)state;
  shared_ctx = new_ctx();
  assert_non_null(shared_ctx);
  double t0 = now();
  for (int round = 0; round < 40; round++) {
    struct racer r[NTHREADS];
    pthread_t th[NTHREADS];
    assert_int_equal(pthread_barrier_init(&bar, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++) {
      r[i] = (struct racer){ -2, -2, NULL, (round + i) % 2 == 0 };
      assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&bar);
    int winners = 0;
    for (int i = 0; i < NTHREADS; i++) {
      if (r[i].rc == 0) winners++;
      else if (r[i].code != VSTOR_E_BUSY) {
        print_error("round %d thread %d: rc %d code %s\n", round, i, r[i].rc,
                    vstor_code_name(r[i].code));
        fail();
      }
    }
    assert_int_equal(winners, 1);
  }
  double secs = now() - t0;
  print_message("40 rounds of %d threads: %.3f s\n", NTHREADS, secs);
  assert_true(secs < 20);
  vstor_ctx_free(shared_ctx);
}

/* ---- stress ---------------------------------------------------------- */

struct worker { double until; long ok, busy, other; char other_msg[256]; };

static void *extend_loop(void *arg)
{
  struct worker *w = arg;
  vstor_ctx *c = new_ctx();
  if (!c) { w->other++; return NULL; }
  while (now() < w->until) {
    vstor_vol *v = NULL;
    int r = vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &v);
    if (r == 0) {
      uint64_t cur;
      r = vstor_vol_size(v, &cur);
      if (r == 0) r = vstor_extend(v, cur + MiB, NULL, 0, NULL);
      int code = vstor_last_code();
      char msg[200];
      snprintf(msg, sizeof msg, "%s", r ? vstor_last_error() : "");
      vstor_close(v);
      if (r == 0) { w->ok++; continue; }
      w->other++;
      snprintf(w->other_msg, sizeof w->other_msg, "%s: %s", vstor_code_name(code), msg);
      continue;
    }
    if (vstor_last_code() == VSTOR_E_BUSY) w->busy++;
    else {
      w->other++;
      snprintf(w->other_msg, sizeof w->other_msg, "%s: %s", vstor_code_name(vstor_last_code()),
               vstor_last_error());
    }
  }
  vstor_ctx_free(c);
  return NULL;
}

/* 4 threads; totals written to fd (ok busy other) when fd >= 0. */
static void run_workers(double until, struct worker *sum)
{
  struct worker w[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (struct worker){ until, 0, 0, 0, "" };
    assert_int_equal(pthread_create(&th[i], NULL, extend_loop, &w[i]), 0);
  }
  *sum = (struct worker){ until, 0, 0, 0, "" };
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    sum->ok += w[i].ok;
    sum->busy += w[i].busy;
    sum->other += w[i].other;
    if (w[i].other_msg[0]) memcpy(sum->other_msg, w[i].other_msg, sizeof sum->other_msg);
  }
}

/* Recover's reaping of stale lock files races with operations taking and
 * releasing the lock: it opens a lock file, its owner releases it (unlink
 * + close), a second operation creates and locks a new file of the same
 * name, and only then does the reaper get its lock on the old one.  It must
 * not unlink the new file, or a third operation gets the volume at the
 * same time as the second.  The reaper is held at that point by a fault
 * stall. */
static void test_reap_race(void **state)
{
  (void)state;
  vstor_vol *a = NULL, *b = NULL, *x = NULL;
  /* The reaper is forked first: a child forked later would inherit the
   * lock's open file description and keep the lock alive (and, under
   * valgrind, report the parent's context as its own leak). */
  int go[2];
  assert_int_equal(pipe(go), 0);
  pid_t r = fork();
  if (r == 0) {
    char ch;
    close(go[1]);
    if (read(go[0], &ch, 1) != 1) _exit(2);
    setenv("VSTOR_FAULT", "lock.reap.opened:sleep=1500", 1);
    vstor_ctx *rc = new_ctx();
    int rr = vstor_recover(rc, 0, NULL);
    vstor_ctx_free(rc);                /* valgrind checks this child too */
    _exit(rr == 0 ? 0 : 1);
  }
  close(go[0]);
  vstor_ctx *c = new_ctx();
  assert_int_equal(vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &a), 0);
  assert_int_equal(write(go[1], "g", 1), 1);
  close(go[1]);
  usleep(500000);                    /* the reaper holds the old file open */
  vstor_close(a);                    /* owner releases: unlink + close */
  assert_int_equal(vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &b), 0);   /* new file */
  int st;
  assert_int_equal(waitpid(r, &st, 0), r);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  /* b still holds the volume: a third open is BUSY */
  assert_int_equal(vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &x), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_BUSY);
  vstor_close(b);
  assert_int_equal(vstor_open(c, img, VSTOR_OPEN_EXCLUSIVE, &x), 0);
  vstor_close(x);
  vstor_ctx_free(c);
}

static void test_stress(void **state)
{
  (void)state;
  const char *e = getenv("VSTOR_STRESS_SECONDS");
  double secs = e && atof(e) > 0 ? atof(e) : 5;
  uint64_t initial = size_of(img);
  int p[2];
  assert_int_equal(pipe(p), 0);
  double until = now() + secs;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    struct worker s;
    run_workers(until, &s);
    _exit(write(p[1], &s, sizeof s) == (ssize_t)sizeof s ? 0 : 1);
  }
  close(p[1]);
  struct worker mine, child;
  run_workers(until, &mine);
  assert_int_equal(read(p[0], &child, sizeof child), (ssize_t)sizeof child);
  close(p[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  long ok = mine.ok + child.ok, busy = mine.busy + child.busy;
  print_message("%.1f s, 2 processes x 4 threads: %ld extends (parent %ld, child %ld), "
                "%ld BUSY, %ld other\n", secs, ok, mine.ok, child.ok, busy,
                mine.other + child.other);
  if (mine.other || child.other) {
    print_error("unexpected error: %s\n", mine.other ? mine.other_msg : child.other_msg);
    fail();
  }
  assert_true(mine.ok > 0);
  assert_true(child.ok > 0);
  assert_int_equal(size_of(img), initial + (uint64_t)ok * MiB);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_two_processes),
    cmocka_unit_test(test_threads),
    cmocka_unit_test(test_reap_race),
    cmocka_unit_test(test_stress),
  };
  return cmocka_run_group_tests_name("lock", tests, setup, teardown);
}
