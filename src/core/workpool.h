/* A worker pool: a fixed number of joinable threads and a bounded queue of
 * jobs. For work that must not run on an HTTP or event-loop thread: CPU work
 * (image encoding, password hashing) and calls that block (an outbound
 * connection test). The pool knows nothing of completions: a job that must
 * answer someone posts its result back itself (loop_post,
 * MHD_resume_connection).
 *
 * A full queue refuses new jobs (-EAGAIN) instead of growing: the caller
 * answers "busy, try again" (503 with Retry-After) rather than letting
 * latency pile up without bound. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct workpool workpool_t;
typedef void (*workpool_fn)(void *arg);

/* name: for logs and metrics ("cpu", "blocking"). threads 0: one per CPU. */
workpool_t *workpool_new(const char *name, unsigned threads, size_t queue_max);
int workpool_start(workpool_t *p, char *err, size_t errlen);
/* Queues fn(arg). -EAGAIN when the queue is full, -ESHUTDOWN when the pool
 * is not running; fn is then never called. */
int workpool_submit(workpool_t *p, workpool_fn fn, void *arg);
/* Runs every queued job, then joins the threads. */
void workpool_stop(workpool_t *p);
void workpool_free(workpool_t *p); /* stops first; accepts NULL */

typedef struct workpool_stats {
  size_t queued, running, queue_max;
  unsigned threads;
  uint64_t done, refused;
} workpool_stats_t;
void workpool_get_stats(workpool_t *p, workpool_stats_t *out);
/* atrium_workpool_* lines for every pool given, labelled pool="<name>"
 * (one writer for all pools: a metric family has one HELP and TYPE). */
void workpool_write_metrics(FILE *f, workpool_t *const *pools, size_t n);
