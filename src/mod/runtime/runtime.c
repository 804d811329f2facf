#include "mod/runtime/runtime.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define CPU_QUEUE_MAX 4096
#define IO_THREADS 4
#define IO_QUEUE_MAX 256
/* Password hashing (Argon2id: tens of ms of CPU and 64 MiB each): one core
 * is left to the server's threads, so that a big import or a burst of
 * logins cannot make every other answer wait. (A lower priority for these
 * threads was tried: on a machine busy with other work it starved logins
 * for seconds.) The queue is short: beyond it, 503 and Retry-After. */
#define HASH_QUEUE_MAX 256

static struct {
  loop_t *loop;
  workpool_t *cpu, *io, *hash;
  size_t budget;
  atomic_size_t taken;
} R;

loop_t *runtime_loop(void) { return R.loop; }
workpool_t *runtime_cpu_pool(void) { return R.cpu; }
workpool_t *runtime_io_pool(void) { return R.io; }
workpool_t *runtime_hash_pool(void) { return R.hash; }
size_t runtime_connection_budget(void) { return R.budget; }

bool runtime_connection_take(void) {
  if (atomic_fetch_add(&R.taken, 1) >= R.budget) {
    atomic_fetch_sub(&R.taken, 1);
    return false;
  }
  return true;
}

void runtime_connection_give(void) { atomic_fetch_sub(&R.taken, 1); }

void runtime_drain(loop_fn close_all, size_t (*open_count)(void), const char *what) {
  if (!R.loop) return;
  loop_call(R.loop, close_all, NULL, 1000);
  for (int i = 0; i < 60 && open_count() > 0; i++) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  size_t left = open_count();
  if (left) log_warning("%zu %s did not close in time", left, what);
}
size_t runtime_connections(void) { return atomic_load(&R.taken); }

/* The soft limit up to the hard one: an idle WebSocket costs a descriptor,
 * and the soft default (often 1024) would cap users far below what memory
 * allows. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  rlim_t cur = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
  R.budget = cur > RUNTIME_FD_RESERVE ? (size_t)(cur - RUNTIME_FD_RESERVE) : 0;
  log_info("descriptor limit %llu: room for %zu long-lived connections",
           (unsigned long long)cur, R.budget);
}

static int start(char *err, size_t errlen) {
  raise_fd_limit();
  R.loop = loop_new("runtime");
  R.cpu = workpool_new("cpu", 0, CPU_QUEUE_MAX);
  R.io = workpool_new("blocking", IO_THREADS, IO_QUEUE_MAX);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  R.hash = workpool_new("hash", ncpu > 1 ? (unsigned)(ncpu - 1) : 1, HASH_QUEUE_MAX);
  if (!R.loop || !R.cpu || !R.io || !R.hash) {
    snprintf(err, errlen, "Out of memory starting the event loop and worker pools.");
    return -ENOMEM;
  }
  int r = loop_start(R.loop, err, errlen);
  if (r == 0) r = workpool_start(R.cpu, err, errlen);
  if (r == 0) r = workpool_start(R.io, err, errlen);
  if (r == 0) r = workpool_start(R.hash, err, errlen);
  return r;
}

static void stop(void) {
  loop_free(R.loop);
  workpool_free(R.cpu);
  workpool_free(R.io);
  workpool_free(R.hash);
  R.loop = NULL;
  R.cpu = R.io = R.hash = NULL;
}

static void metrics(FILE *f) {
  workpool_t *pools[3];
  size_t n = 0;
  if (R.cpu) pools[n++] = R.cpu;
  if (R.io) pools[n++] = R.io;
  if (R.hash) pools[n++] = R.hash;
  workpool_write_metrics(f, pools, n);
  fprintf(f,
          "# HELP atrium_connections Long-lived connections (WebSockets) of every module.\n"
          "# TYPE atrium_connections gauge\n"
          "atrium_connections %zu\n"
          "# HELP atrium_connections_max How many the descriptor limit leaves room for.\n"
          "# TYPE atrium_connections_max gauge\n"
          "atrium_connections_max %zu\n",
          runtime_connections(), R.budget);
}

const atrium_module_t runtime_module = {
    .name = "runtime",
    .start = start,
    .stop = stop,
    .metrics = metrics,
};
