#include "core/workpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKPOOL_THREADS_MAX 64

typedef struct job {
  workpool_fn fn;
  void *arg;
} job_t;

struct workpool {
  char name[32];
  unsigned nthreads;
  pthread_t threads[WORKPOOL_THREADS_MAX];
  unsigned started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  job_t *ring; /* queue_max slots */
  size_t queue_max, head, len;
  size_t running;
  bool accepting, stopping;
  uint64_t done, refused;
};

workpool_t *workpool_new(const char *name, unsigned threads, size_t queue_max) {
  if (queue_max == 0) return NULL;
  workpool_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  if (!(p->ring = calloc(queue_max, sizeof *p->ring))) {
    free(p);
    return NULL;
  }
  snprintf(p->name, sizeof p->name, "%s", name);
  if (!threads) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n < 1 ? 1 : (unsigned)n;
  }
  p->nthreads = threads > WORKPOOL_THREADS_MAX ? WORKPOOL_THREADS_MAX : threads;
  p->queue_max = queue_max;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  return p;
}

static void *worker(void *arg) {
  workpool_t *p = arg;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (p->len == 0 && !p->stopping) pthread_cond_wait(&p->wake, &p->lock);
    if (p->len == 0) break; /* stopping, and nothing left to run */
    job_t j = p->ring[p->head];
    p->head = (p->head + 1) % p->queue_max;
    p->len--;
    p->running++;
    pthread_mutex_unlock(&p->lock);
    j.fn(j.arg);
    pthread_mutex_lock(&p->lock);
    p->running--;
    p->done++;
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

int workpool_start(workpool_t *p, char *err, size_t errlen) {
  pthread_mutex_lock(&p->lock);
  p->stopping = false;
  p->accepting = true;
  pthread_mutex_unlock(&p->lock);
  for (unsigned i = 0; i < p->nthreads; i++) {
    int r = pthread_create(&p->threads[i], NULL, worker, p);
    if (r != 0) {
      snprintf(err, errlen, "Cannot start the %s worker threads: %s.", p->name, strerror(r));
      workpool_stop(p);
      return -r;
    }
    p->started++;
  }
  return 0;
}

int workpool_submit(workpool_t *p, workpool_fn fn, void *arg) {
  pthread_mutex_lock(&p->lock);
  int r = 0;
  if (!p->accepting) {
    r = -ESHUTDOWN;
  } else if (p->len == p->queue_max) {
    p->refused++;
    r = -EAGAIN;
  } else {
    p->ring[(p->head + p->len) % p->queue_max] = (job_t){.fn = fn, .arg = arg};
    p->len++;
    pthread_cond_signal(&p->wake);
  }
  pthread_mutex_unlock(&p->lock);
  return r;
}

void workpool_stop(workpool_t *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->accepting = false;
  p->stopping = true;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (unsigned i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
  p->started = 0;
}

void workpool_free(workpool_t *p) {
  if (!p) return;
  workpool_stop(p);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->lock);
  free(p->ring);
  free(p);
}

void workpool_get_stats(workpool_t *p, workpool_stats_t *out) {
  pthread_mutex_lock(&p->lock);
  *out = (workpool_stats_t){.queued = p->len, .running = p->running, .queue_max = p->queue_max,
                            .threads = p->nthreads, .done = p->done, .refused = p->refused};
  pthread_mutex_unlock(&p->lock);
}

void workpool_write_metrics(FILE *f, workpool_t *const *pools, size_t n) {
  static const char *const head[] = {
      "# HELP atrium_workpool_queued Jobs waiting for a worker thread.\n"
      "# TYPE atrium_workpool_queued gauge\n",
      "# HELP atrium_workpool_jobs_total Jobs run.\n"
      "# TYPE atrium_workpool_jobs_total counter\n",
      "# HELP atrium_workpool_refused_total Jobs refused because the queue was full.\n"
      "# TYPE atrium_workpool_refused_total counter\n",
  };
  static const char *const name[] = {"atrium_workpool_queued", "atrium_workpool_jobs_total",
                                     "atrium_workpool_refused_total"};
  for (size_t m = 0; m < 3; m++) {
    fputs(head[m], f);
    for (size_t i = 0; i < n; i++) {
      workpool_stats_t s;
      workpool_get_stats(pools[i], &s);
      unsigned long long v = m == 0 ? s.queued : m == 1 ? s.done : s.refused;
      fprintf(f, "%s{pool=\"%s\"} %llu\n", name[m], pools[i]->name, v);
    }
  }
}
