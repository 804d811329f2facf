/* Inside the cluster module: its state, shared by cluster.c (threads,
 * election, following the settings) and cluster_api.c (the API, metrics,
 * status). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "store/store.h"

#define CLUSTER_BEAT_MS 500      /* heartbeat, and the poll behind notifications */
#define CLUSTER_LIVE_MS 5000     /* a node whose heartbeat is older is not live */
#define CLUSTER_HOST_TRY_MS 200  /* a node that does not host asks for the lock this often */
#define CLUSTER_HOST_CHECK_MS 200 /* the host asks its lock connection this often ... */
#define CLUSTER_HOST_ANSWER_MS 1000 /* ... and stops hosting when it takes longer to answer */

typedef struct cluster_state {
  store_t *store;
  bool multi; /* PostgreSQL: several nodes may share the store */
  char name[STORE_NODE_NAME_MAX + 1];
  char url[256];
  int64_t started_ms;

  pthread_mutex_t lock; /* guards everything below up to the atomics */
  pthread_cond_t wake;
  bool stop, beat_now;
  bool beat_started, host_started;
  pthread_t beat_thread, host_thread;
  char host[STORE_NODE_NAME_MAX + 1]; /* the host as last read from the store */
  int64_t host_epoch_seen;
  bool store_ok;          /* the last heartbeat reached the store */
  uint64_t beats;         /* heartbeats tried */
  char last_error[512];
  int64_t last_error_at;
  uint64_t refused_version; /* a stored version this node refused to load (logged once) */
  void (*watch)(bool hosting, int64_t epoch, void *ctx);
  void *watch_ctx;

  atomic_bool hosting;
  atomic_bool following; /* settings changes heard are loaded (between start and stop) */
  atomic_int_fast64_t epoch; /* the epoch this node took when it became host */
  atomic_uint_fast64_t takeovers, host_losses, reloads, reload_failures, notifications, polls_behind;
} cluster_state_t;

extern cluster_state_t C;

void cluster_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cluster_api.c */
enum MHD_Result cluster_api_get(http_request_t *req);
void cluster_write_metrics(FILE *f);
