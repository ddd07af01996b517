/* libvstor concurrency stress: 2 processes x 4 threads race extend,
 * snapshot and mirror (then complete or cancel) on one loop-backed volume
 * (XFS mounted on a loop device) for a bounded time.
 *
 * Every call must succeed or be refused with BUSY (the per-volume lock
 * serialises processes and threads alike); nothing may hang (a watchdog
 * alarm in each process, and one in the parent); at the end the volume
 * is consistent: loop size == image size, XFS grown to match, data file
 * unchanged, filesystem writable, no journal record, no lock file, no
 * snapshot or copy left over, no loop device on any copy.
 *
 * Extend reads the size and grows it by 4 MiB under an exclusive open
 * (VSTOR_OPEN_EXCLUSIVE: read-modify-write needs the lock across both);
 * snapshot and mirror use plain handles and race on the operation lock.
 * Environment: STRESS_SECONDS (default 10).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "helpers.h"

#define MiB (1024ull * 1024)
#define NPROC 2
#define NTHREAD 4
enum { OP_EXTEND, OP_SNAPSHOT, OP_MIRROR, OP__N };
static const char *const opname[OP__N] = { "extend", "snapshot", "mirror" };

struct shared {
  atomic_long ok[OP__N], busy[OP__N], other[OP__N];
  atomic_long completed, cancelled;
};
static struct shared *sh_st;
static char *img, *loop, *mnt, *pool, *state;
static double deadline;
static int proc_no;

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void unexpected(int op, const char *what)
{
  atomic_fetch_add(&sh_st->other[op], 1);
  fprintf(stderr, "  [%d] %s: %s: %s (%s)\n", proc_no, opname[op], what, vstor_last_error(),
          vstor_code_name(vstor_last_code()));
}

/* A refusal: BUSY is the expected one. */
static void refused(int op, const char *what)
{
  if (vstor_last_code() == VSTOR_E_BUSY) {
    atomic_fetch_add(&sh_st->busy[op], 1);
    usleep(1000 + (unsigned)rand() % 4000);  /* back off: let the holder finish */
  } else unexpected(op, what);
}

struct th { vstor_ctx *ctx; int id; unsigned seed; };

/* STRESS_RECOVER=1: one more thread in process 0 runs vstor_recover()
 * in a loop (as `vstor recover` at boot or from another admin would):
 * it must skip the live operations' records and disturb nothing. */
static atomic_long recover_runs, recover_bad;

static void *recoverer(void *arg)
{
  vstor_ctx *c = arg;
  while (now() < deadline) {
    vstor_report *rep = NULL;
    int r = vstor_recover(c, 0, &rep);
    atomic_fetch_add(&recover_runs, 1);
    bool bad = r < 0;
    for (size_t i = 0; rep && i < vstor_report_step_count(rep); i++) {
      const char *a = vstor_report_step_action(rep, i);
      if (vstor_report_step_status(rep, i) != VSTOR_STEP_SKIPPED && strcmp(a, "drop stale lock")) {
        fprintf(stderr, "  [recover] acted on a live operation: %s %s: %s\n", vstor_report_step_layer(rep, i),
                a, vstor_report_step_detail(rep, i));
        bad = true;
      }
    }
    if (r < 0) fprintf(stderr, "  [recover] %s\n", vstor_last_error());
    if (bad) atomic_fetch_add(&recover_bad, 1);
    vstor_report_free(rep);
    usleep(2000);
  }
  return NULL;
}

static void *worker(void *arg)
{
  struct th *t = arg;
  vstor_vol *v = NULL;
  if (vstor_open(t->ctx, img, 0, &v) < 0) {
    unexpected(OP_SNAPSHOT, "open");
    return NULL;
  }
  int n = 0;
  while (now() < deadline) {
    int op = rand_r(&t->seed) % OP__N;
    char dest[512];
    snprintf(dest, sizeof dest, "%s/stress-%d-%d-%d", pool, proc_no, t->id, ++n);
    if (op == OP_EXTEND) {
      vstor_vol *x = NULL;
      if (vstor_open(t->ctx, img, VSTOR_OPEN_EXCLUSIVE, &x) < 0) { refused(op, "exclusive open"); continue; }
      uint64_t sz;
      if (vstor_vol_size(x, &sz) < 0) unexpected(op, "size");
      else if (vstor_extend(x, sz + 4 * MiB, NULL, VSTOR_EXTEND_RESIZE_FS, NULL) < 0) unexpected(op, "extend");
      else atomic_fetch_add(&sh_st->ok[op], 1);
      vstor_close(x);
    } else if (op == OP_SNAPSHOT) {
      if (vstor_snapshot(v, dest, NULL, 0, NULL) < 0) refused(op, "snapshot");
      else { atomic_fetch_add(&sh_st->ok[op], 1); unlink(dest); }
    } else {
      vstor_job *j = NULL;
      if (vstor_mirror(v, dest, NULL, 0, &j, NULL) < 0) { refused(op, "mirror"); continue; }
      bool cancel = rand_r(&t->seed) & 1;
      if (vstor_job_wait(j, 30000, 0) < 0) unexpected(op, "wait");
      else if (cancel ? vstor_job_cancel(j, 0) < 0 : vstor_job_complete(j, 0) < 0)
        unexpected(op, cancel ? "cancel" : "complete");
      else {
        atomic_fetch_add(&sh_st->ok[op], 1);
        atomic_fetch_add(cancel ? &sh_st->cancelled : &sh_st->completed, 1);
      }
      vstor_job_free(j);
      unlink(dest);
    }
  }
  vstor_close(v);
  return NULL;
}

static int child(int no)
{
  proc_no = no;
  alarm(60);  /* watchdog: a deadlock ends in SIGALRM */
  vstor_ctx *c = vstor_ctx_new(0);
  vstor_ctx_set_state_dir(c, state);
  pthread_t tid[NTHREAD];
  struct th t[NTHREAD];
  for (int i = 0; i < NTHREAD; i++) {
    t[i] = (struct th){ c, i, (unsigned)(getpid() * 31 + i) };
    pthread_create(&tid[i], NULL, worker, &t[i]);
  }
  const char *sr = getenv("STRESS_RECOVER");
  pthread_t rt;
  bool rec = no == 0 && sr && !strcmp(sr, "1");
  if (rec) pthread_create(&rt, NULL, recoverer, c);
  for (int i = 0; i < NTHREAD; i++) pthread_join(tid[i], NULL);
  if (rec) {
    pthread_join(rt, NULL);
    printf("  recover ran %ld times beside the operations, %ld disturbed one\n", recover_runs,
           recover_bad);
  }
  vstor_ctx_free(c);
  return recover_bad ? 1 : 0;
}

static int count_entries(const char *dir, const char *prefix)
{
  DIR *d = opendir(dir);
  int n = 0;
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' && !strncmp(e->d_name, prefix, strlen(prefix))) {
      fprintf(stderr, "  left over: %s/%s\n", dir, e->d_name);
      n++;
    }
  closedir(d);
  return n;
}

static int fails;
#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "  FAIL: " __VA_ARGS__); fprintf(stderr, "\n"); fails++; } } while (0)

int main(void)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (geteuid() != 0) { fprintf(stderr, "test-stress: needs root\n"); return 1; }
  const char *se = getenv("STRESS_SECONDS");
  double secs = se ? atof(se) : 10;
  pool = mkpool("xfs", 8192);
  img = mkimage(pool, "stress.img", 320, "xfs", true, &loop, true, &mnt);
  if (sh("dd if=/dev/urandom of='%s/data' bs=1M count=8 status=none && sync", mnt)) return 1;
  char *data;
  if (asprintf(&data, "%s/data", mnt) < 0 || asprintf(&state, "%s/state", scratch()) < 0) return 1;
  char *sum = sha256(data);
  sh_st = mmap(NULL, sizeof *sh_st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  memset(sh_st, 0, sizeof *sh_st);
  uint64_t size0 = file_size(img);
  struct statvfs sv;
  if (statvfs(mnt, &sv) < 0) return 1;
  uint64_t fs0 = (uint64_t)sv.f_blocks * sv.f_frsize;
  double t0 = now();
  deadline = t0 + secs;
  fflush(NULL);
  pid_t pids[NPROC];
  for (int i = 0; i < NPROC; i++) {
    pids[i] = fork();
    if (pids[i] == 0) _exit(child(i));
  }
  for (int i = 0; i < NPROC; i++) {
    int st = 0;
    pid_t w = 0;
    for (int k = 0; k < 900 && (w = waitpid(pids[i], &st, WNOHANG)) == 0; k++) usleep(100000);
    if (w == 0) { kill(pids[i], SIGKILL); waitpid(pids[i], &st, 0); }
    CHECK(w == pids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "process %d: %s (status %d)", i,
          w == 0 ? "hung (killed by the parent watchdog)"
          : WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? "deadlock (its watchdog fired)"
          : "ended abnormally", st);
  }
  double el = now() - t0;
  long ok = 0, busy = 0, other = 0;
  for (int o = 0; o < OP__N; o++) {
    ok += sh_st->ok[o]; busy += sh_st->busy[o]; other += sh_st->other[o];
    printf("  %-8s ok %ld, busy %ld, other %ld\n", opname[o], sh_st->ok[o], sh_st->busy[o],
           sh_st->other[o]);
  }
  printf("  mirrors: %ld completed, %ld cancelled\n", sh_st->completed, sh_st->cancelled);
  CHECK(other == 0, "%ld call(s) failed with something other than BUSY", other);
  CHECK(sh_st->ok[OP_EXTEND] > 0 && sh_st->ok[OP_SNAPSHOT] > 0 && sh_st->ok[OP_MIRROR] > 0,
        "an operation never got through");
  CHECK(busy > 0, "no call was refused: nothing raced");
  /* final state */
  uint64_t fsz = file_size(img), lsz = blkdev_size(loop);
  CHECK(fsz == lsz, "loop %llu bytes, image %llu", (unsigned long long)lsz, (unsigned long long)fsz);
  CHECK(fsz == size0 + (uint64_t)sh_st->ok[OP_EXTEND] * 4 * MiB,
        "image %llu bytes after %ld extends of 4 MiB from %llu", (unsigned long long)fsz,
        sh_st->ok[OP_EXTEND], (unsigned long long)size0);
  uint64_t fs1 = statvfs(mnt, &sv) == 0 ? (uint64_t)sv.f_blocks * sv.f_frsize : 0;
  CHECK(fs1 == fs0 + (uint64_t)sh_st->ok[OP_EXTEND] * 4 * MiB,
        "XFS has %llu bytes, %llu before %ld extends of 4 MiB", (unsigned long long)fs1,
        (unsigned long long)fs0, sh_st->ok[OP_EXTEND]);
  CHECK(fs_writable(mnt, 3000), "%s not writable", mnt);
  char *sum2 = sha256(data);
  CHECK(!strcmp(sum, sum2), "data changed");
  char *j, *l;
  if (asprintf(&j, "%s/journal", state) < 0 || asprintf(&l, "%s/locks", state) < 0) return 1;
  CHECK(count_entries(j, "") == 0, "journal records left");
  CHECK(count_entries(l, "") == 0, "lock files left");
  CHECK(count_entries(pool, "stress-") == 0, "snapshots or copies left");
  CHECK(sh("losetup -l -n -O BACK-FILE | grep -q '%s/stress-'", pool) != 0, "a copy has a loop device");
  char *back = loop_backing(loop);
  CHECK(!strcmp(back, img), "%s is bound to \"%s\", not to the image", loop, back);
  free(back);
  do_umount(mnt);
  /* on the image file, not the loop device: immune to loop numbers reused */
  char *xr = sh_out("xfs_repair -n -f '%s' >%s/repair.log 2>&1; echo $?", img, scratch());
  if (strcmp(xr, "0")) sh("grep -v -e '^ *- ' -e '^Phase' %s/repair.log >&2", scratch());
  CHECK(!strcmp(xr, "0"), "xfs_repair -n after the stress: %s", xr);
  printf("stress: %d processes x %d threads, %.1f s: %ld calls, %ld ok, %ld busy, %ld other\n",
         NPROC, NTHREAD, el, ok + busy + other, ok, busy, other);
  free(sum); free(sum2); free(j); free(l); free(xr); free(data);
  if (fails) fprintf(stderr, "test-stress: FAILED (%d)\n", fails);
  return fails ? 1 : 0;
}
