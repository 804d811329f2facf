/* The cluster module: heartbeats, settings followed from the store, and the
 * election of the one meeting host.
 *
 * Two threads, both started in start and joined in stop. The beat thread
 * writes this node's row every CLUSTER_BEAT_MS (at once after a new
 * settings snapshot, so that ?wait=all sees it) and, in the same
 * transaction, reads the settings version: a node whose notification was
 * lost still catches up within a beat. The host thread owns the advisory
 * lock's connection and nothing else, so that a slow store transaction
 * never delays the decision to stop hosting. The settings themselves are
 * reloaded on the store's listener thread, which hears every commit. */
#include "mod/cluster/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/settings.h"
#include "core/log.h"
#include "mod/cluster/internal.h"

cluster_state_t C = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

void cluster_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&C.lock);
  vsnprintf(C.last_error, sizeof C.last_error, fmt, ap);
  C.last_error_at = wall_ms() / 1000;
  pthread_mutex_unlock(&C.lock);
  va_end(ap);
}

const char *cluster_node_name(void) { return C.name; }

/* ---- following the settings ------------------------------------------------------- */

/* Reloads and says what happened, once per refused version. */
static void reload(const char *why) {
  char err[768];
  int r = settings_reload(err, sizeof err);
  if (r == 0) return;
  atomic_fetch_add(&C.reload_failures, 1);
  if (r == 1) {
    log_warning("settings from the store (%s): %s", why, err);
    cluster_error("%s", err);
    return;
  }
  /* The same refusal every beat would fill the log: once per version. */
  store_txn_t *t;
  uint64_t v = 0;
  if (store_read_begin(C.store, "read the settings version", &t) == 0) {
    (void)store_settings_version(t, &v);
    store_read_end(t);
  }
  pthread_mutex_lock(&C.lock);
  bool first = C.refused_version != v;
  C.refused_version = v;
  pthread_mutex_unlock(&C.lock);
  if (first) log_err("cannot load the settings from the store (%s): %s", why, err);
  cluster_error("%s", err);
}

/* The listener thread of the store: a version was committed (the trigger
 * sends it), or NULL after a lost connection (anything may have changed). */
static void on_settings(const char *channel, const char *payload, void *ctx) {
  (void)channel;
  (void)ctx;
  if (!atomic_load(&C.following)) return;
  atomic_fetch_add(&C.notifications, 1);
  if (payload) {
    settings_snapshot_t *snap = settings_acquire();
    uint64_t have = snap ? settings_version(snap) : 0;
    settings_release(snap);
    char *end = NULL;
    unsigned long long heard = strtoull(payload, &end, 10);
    /* Our own commit comes back too: nothing to do. */
    if (end && *end == '\0' && end != payload && heard == have) return;
  }
  reload(payload ? "notified" : "after a lost connection to the store");
}

/* Under the settings' change lock: only wake the beat thread. */
static void on_swap(uint64_t version, void *ctx) {
  (void)version;
  (void)ctx;
  pthread_mutex_lock(&C.lock);
  C.beat_now = true;
  pthread_cond_broadcast(&C.wake);
  pthread_mutex_unlock(&C.lock);
}

/* ---- the heartbeat ------------------------------------------------------------------- */

typedef struct beat_ctx {
  store_node_t me;
  uint64_t stored_version;
  int64_t epoch;
  char host[STORE_NODE_NAME_MAX + 1];
} beat_ctx_t;

static int beat_txn(store_txn_t *t, void *vctx) {
  beat_ctx_t *b = vctx;
  int r = store_node_beat(t, &b->me);
  if (r == 0) r = store_settings_version(t, &b->stored_version);
  if (r == 0) r = store_meeting_host(t, &b->epoch, b->host, sizeof b->host);
  return r;
}

static void beat_once(void) {
  beat_ctx_t b;
  memset(&b, 0, sizeof b);
  snprintf(b.me.name, sizeof b.me.name, "%s", C.name);
  snprintf(b.me.url, sizeof b.me.url, "%s", C.url);
  snprintf(b.me.atrium_version, sizeof b.me.atrium_version, "%s", ATRIUM_VERSION);
  b.me.started_ms = C.started_ms;
  settings_snapshot_t *snap = settings_acquire();
  if (snap) {
    b.me.settings_version = settings_version(snap);
    snprintf(b.me.settings_hash, sizeof b.me.settings_hash, "%s", settings_hash(snap));
  }
  settings_release(snap);
  int r = store_run_txn(C.store, "node heartbeat", beat_txn, &b);
  pthread_mutex_lock(&C.lock);
  bool was_ok = C.store_ok || !C.beats; /* the first beat has nothing to recover from */
  C.beats++;
  C.store_ok = r == 0;
  if (r == 0) {
    snprintf(C.host, sizeof C.host, "%s", b.host);
    C.host_epoch_seen = b.epoch;
  }
  pthread_mutex_unlock(&C.lock);
  if (r < 0) {
    if (was_ok) log_warning("cannot write this node's heartbeat: %s", store_last_error(C.store));
    cluster_error("cannot write this node's heartbeat: %s", store_last_error(C.store));
    return;
  }
  if (!was_ok) log_notice("the store answers again");
  if (b.stored_version != b.me.settings_version) {
    atomic_fetch_add(&C.polls_behind, 1);
    reload("found by the heartbeat's poll");
  }
}

static bool wait_or_stop(bool *flag, int ms) {
  struct timespec until;
  deadline_in(&until, ms);
  pthread_mutex_lock(&C.lock);
  while (!C.stop && !(flag && *flag))
    if (pthread_cond_timedwait(&C.wake, &C.lock, &until) == ETIMEDOUT) break;
  if (flag) *flag = false;
  bool stop = C.stop;
  pthread_mutex_unlock(&C.lock);
  return stop;
}

static void *beat_main(void *arg) {
  (void)arg;
  bool stop = false;
  /* Bounded: each round waits at most one beat, or one store transaction. */
  while (!stop) {
    beat_once();
    stop = wait_or_stop(&C.beat_now, CLUSTER_BEAT_MS);
  }
  return NULL;
}

/* ---- the meeting host ------------------------------------------------------------------ */

static void host_changed(bool hosting, int64_t epoch) {
  atomic_store(&C.epoch, epoch);
  atomic_store(&C.hosting, hosting);
  pthread_mutex_lock(&C.lock);
  void (*fn)(bool, int64_t, void *) = C.watch;
  void *ctx = C.watch_ctx;
  if (hosting) {
    snprintf(C.host, sizeof C.host, "%s", C.name);
    C.host_epoch_seen = epoch;
  }
  C.beat_now = true;
  pthread_cond_broadcast(&C.wake);
  pthread_mutex_unlock(&C.lock);
  if (fn) fn(hosting, epoch, ctx);
}

static void *host_main(void *arg) {
  store_hold_t *hold = arg;
  bool stop = false;
  bool said_unreachable = false;
  while (!stop) {
    if (!atomic_load(&C.hosting)) {
      int64_t epoch = 0;
      int r = store_hold_try(hold, C.name, &epoch);
      if (r == 1) {
        atomic_fetch_add(&C.takeovers, 1);
        log_notice("this node hosts the web meetings now (epoch %" PRId64 ")", epoch);
        said_unreachable = false;
        host_changed(true, epoch);
      } else if (r < 0 && !said_unreachable) {
        said_unreachable = true;
        log_warning("cannot ask the store for the meeting host's lock; trying again");
      } else if (r == 0) {
        said_unreachable = false;
      }
      stop = wait_or_stop(NULL, CLUSTER_HOST_TRY_MS);
    } else {
      if (store_hold_check(hold, CLUSTER_HOST_ANSWER_MS) < 0) {
        int64_t epoch = atomic_load(&C.epoch);
        atomic_fetch_add(&C.host_losses, 1);
        /* Before the database notices: whoever takes over next gets a
         * new epoch, and our writes under this one are refused. */
        log_warning("lost the connection that holds the meeting host's lock: this node stops "
                    "hosting the web meetings (epoch %" PRId64 ")",
                    epoch);
        cluster_error("lost the meeting host's lock (epoch %" PRId64 ")", epoch);
        host_changed(false, epoch);
        continue; /* try again at once: the lock may still be free */
      }
      stop = wait_or_stop(NULL, CLUSTER_HOST_CHECK_MS);
    }
  }
  if (atomic_load(&C.hosting)) host_changed(false, atomic_load(&C.epoch));
  store_hold_close(hold);
  return NULL;
}

void cluster_meeting_watch(void (*fn)(bool hosting, int64_t epoch, void *ctx), void *ctx) {
  pthread_mutex_lock(&C.lock);
  C.watch = fn;
  C.watch_ctx = ctx;
  pthread_mutex_unlock(&C.lock);
}

bool cluster_meeting_hosting(void) { return atomic_load(&C.hosting); }

int64_t cluster_meeting_epoch(void) { return atomic_load(&C.epoch); }

bool cluster_meeting_gate(http_request_t *req, enum MHD_Result *ret) {
  if (atomic_load(&C.hosting)) return true;
  char host[STORE_NODE_NAME_MAX + 1];
  pthread_mutex_lock(&C.lock);
  snprintf(host, sizeof host, "%s", C.host);
  pthread_mutex_unlock(&C.lock);
  http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  if (host[0] && strcmp(host, C.name) != 0) http_add_header(req, "Atrium-Meeting-Host", host);
  char detail[256];
  if (host[0] && strcmp(host, C.name) != 0)
    snprintf(detail, sizeof detail,
             "Web meetings are hosted by node %s, not by this node (%s); the load balancer "
             "should send meeting requests there.",
             host, C.name);
  else
    snprintf(detail, sizeof detail,
             "No node hosts the web meetings at the moment (a new host is being elected); try "
             "again in a second.");
  *ret = http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "not-meeting-host",
                            "Not the meeting host", detail, NULL);
  return false;
}

int cluster_meeting_fence(store_txn_t *txn) {
  if (!atomic_load(&C.hosting)) return -ESTALE;
  return store_meeting_fence(txn, atomic_load(&C.epoch));
}

/* ---- ?wait=all ------------------------------------------------------------------------------ */

typedef struct pending_ctx {
  uint64_t version;
  json_t *pending;
  json_t *awaited; /* the nodes live when the wait began: a node that stops meanwhile is
                      still awaited (and listed), not forgotten once its heartbeat ages */
  bool first;
} pending_ctx_t;

static void add_pending(const store_node_t *n, void *vctx) {
  pending_ctx_t *p = vctx;
  if (p->first && n->age_ms <= CLUSTER_LIVE_MS) json_object_set_new(p->awaited, n->name, json_true());
  if (!json_object_get(p->awaited, n->name) || n->settings_version >= p->version) return;
  json_array_append_new(p->pending, json_pack("{s:s, s:I}", "node", n->name, "settings_version",
                                              (json_int_t)n->settings_version));
}

int cluster_wait_applied(uint64_t version, int timeout_ms, json_t **pending) {
  *pending = NULL;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  json_t *awaited = json_object();
  if (!awaited) return -ENOMEM;
  for (int round = 0;; round++) {
    pending_ctx_t p = {.version = version, .pending = json_array(), .awaited = awaited,
                       .first = round == 0};
    if (!p.pending) {
      json_decref(awaited);
      return -ENOMEM;
    }
    store_txn_t *t;
    int r = store_read_begin(C.store, "wait for every node", &t);
    if (r == 0) {
      r = store_node_list(t, add_pending, &p);
      store_read_end(t);
    }
    if (r < 0 || json_array_size(p.pending) == 0) {
      json_decref(p.pending);
      json_decref(awaited);
      return r < 0 ? r : 0;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (spent >= timeout_ms || round > timeout_ms) {
      *pending = p.pending;
      json_decref(awaited);
      return -ETIMEDOUT;
    }
    json_decref(p.pending);
    /* The nodes write their row as soon as they apply: a short poll. */
    usleep(10000);
  }
}

/* ---- the module ------------------------------------------------------------------------------ */

static int init(const module_env_t *env, char *err, size_t errlen) {
  C.store = env->store;
  C.multi = strcmp(store_backend_name(env->store), "sqlite") != 0;
  C.started_ms = wall_ms();
  C.stop = false;
  C.beats = 0;
  C.store_ok = false;
  C.refused_version = 0;
  C.host[0] = '\0';
  atomic_store(&C.hosting, false);
  atomic_store(&C.epoch, 0);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&C.wake, &ca);
  pthread_condattr_destroy(&ca);
  const atlas_config_t *a = env->atlas;
  if (a->node_name[0]) {
    snprintf(C.name, sizeof C.name, "%s", a->node_name);
  } else {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0 || !host[0]) snprintf(host, sizeof host, "atrium");
    char *dot = strchr(host, '.');
    if (dot) *dot = '\0';
    snprintf(C.name, sizeof C.name, "%.63s", host);
  }
  if (a->node_url[0]) {
    snprintf(C.url, sizeof C.url, "%s", a->node_url);
  } else {
    const char *addr = a->listen_address;
    bool any = !addr[0] || strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0;
    char host[256] = "";
    if (any && gethostname(host, sizeof host - 1) < 0) snprintf(host, sizeof host, "localhost");
    bool v6 = !any && strchr(addr, ':');
    snprintf(C.url, sizeof C.url, "%s://%s%.200s%s:%d", a->tls_cert[0] ? "https" : "http",
             v6 ? "[" : "", any ? host : addr, v6 ? "]" : "", a->listen_port);
  }
  if (C.multi || a->node_name[0]) log_set_node(C.name);
  return 0;
}

/* Settings are followed from start on, when every module's apply hook can
 * run (the cluster starts last). */
static int follow_settings(char *err, size_t errlen) {
  settings_set_swap_hook(on_swap, NULL);
  atomic_store(&C.following, true);
  if (!C.multi) return 0;
  /* The store's listener subscriptions last as long as the store: the
   * first start subscribes, a later one (tests) finds it in place. */
  static bool listening;
  if (!listening) {
    /* LISTEN before anything reads: every later commit is then heard. */
    int r = store_listen(C.store, "settings", on_settings, NULL);
    if (r < 0) {
      snprintf(err, errlen, "Cannot listen for settings changes on the store: %s", strerror(-r));
      return r;
    }
    listening = true;
  }
  /* A change committed between settings_init and the LISTEN. */
  reload("at start");
  return 0;
}

static int start(char *err, size_t errlen) {
  int r = follow_settings(err, errlen);
  if (r < 0) return r;
  store_hold_t *hold = NULL;
  r = store_hold_open(C.store, &hold);
  if (r < 0) {
    snprintf(err, errlen, "Out of memory for the meeting host's lock.");
    return r;
  }
  if (!C.multi) {
    /* One node: it hosts, under a new epoch as on PostgreSQL. */
    int64_t epoch = 0;
    r = store_hold_try(hold, C.name, &epoch);
    store_hold_close(hold);
    if (r < 0) {
      snprintf(err, errlen, "Cannot record the meeting host: %s", store_last_error(C.store));
      return r;
    }
    host_changed(true, epoch);
    beat_once();
    return 0;
  }
  if ((r = -pthread_create(&C.host_thread, NULL, host_main, hold)) < 0) {
    store_hold_close(hold);
    snprintf(err, errlen, "Cannot start the meeting host thread: %s", strerror(-r));
    return r;
  }
  C.host_started = true;
  if ((r = -pthread_create(&C.beat_thread, NULL, beat_main, NULL)) < 0) {
    snprintf(err, errlen, "Cannot start the heartbeat thread: %s", strerror(-r));
    return r;
  }
  C.beat_started = true;
  return 0;
}

static int txn_node_delete(store_txn_t *t, void *name) {
  int r = store_node_delete(t, name);
  return r == -ENOENT ? 0 : r;
}

static void stop(void) {
  pthread_mutex_lock(&C.lock);
  C.stop = true;
  pthread_cond_broadcast(&C.wake);
  pthread_mutex_unlock(&C.lock);
  if (C.host_started) pthread_join(C.host_thread, NULL);
  if (C.beat_started) pthread_join(C.beat_thread, NULL);
  C.host_started = C.beat_started = false;
  atomic_store(&C.following, false);
  settings_set_swap_hook(NULL, NULL);
  /* A node that stops says so: the others need not wait for its heartbeat
   * to age. */
  if (C.store) (void)store_run_txn(C.store, "node leaves", txn_node_delete, C.name);
  atomic_store(&C.hosting, false);
}

static void status(module_status_t *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&C.lock);
  bool hosting = atomic_load(&C.hosting);
  if (!C.multi)
    snprintf(out->sentence, sizeof out->sentence,
             "One node (%s) on SQLite: it hosts the web meetings.", C.name);
  else if (hosting)
    snprintf(out->sentence, sizeof out->sentence,
             "Node %s on PostgreSQL: this node hosts the web meetings (epoch %" PRId64 ").",
             C.name, (int64_t)atomic_load(&C.epoch));
  else if (C.host[0])
    snprintf(out->sentence, sizeof out->sentence,
             "Node %s on PostgreSQL: the web meetings are hosted by node %s (epoch %" PRId64 ").",
             C.name, C.host, C.host_epoch_seen);
  else
    snprintf(out->sentence, sizeof out->sentence,
             "Node %s on PostgreSQL: no node hosts the web meetings yet.", C.name);
  out->state = C.multi && !C.store_ok ? MODULE_FAILING : MODULE_OK;
  snprintf(out->last_error, sizeof out->last_error, "%s", C.last_error);
  out->last_error_at = C.last_error_at;
  pthread_mutex_unlock(&C.lock);
}

static const http_route_t routes[] = {
    {.method = HTTP_GET, .path = "/api/v1/cluster", .handler = cluster_api_get,
     .auth = HTTP_AUTH_ADMIN},
};

const atrium_module_t cluster_module = {
    .name = "cluster",
    MODULE_ROUTES(routes),
    .init = init,
    .start = start,
    .stop = stop,
    .metrics = cluster_write_metrics,
    .status = status,
};
