/* GET /api/v1/cluster (what `atriumctl cluster status` shows) and the
 * cluster's lines of /metrics. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "conf/settings.h"
#include "mod/cluster/cluster.h"
#include "mod/cluster/internal.h"

typedef struct list_ctx {
  json_t *nodes;
  uint64_t newest;
  const char *host;
  size_t live;
} list_ctx_t;

static void add_node(const store_node_t *n, void *vctx) {
  list_ctx_t *c = vctx;
  bool live = n->age_ms <= CLUSTER_LIVE_MS;
  if (live) c->live++;
  json_array_append_new(
      c->nodes,
      json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:b, s:b, s:b}", "name", n->name, "url", n->url,
                "atrium_version", n->atrium_version, "settings_version",
                (json_int_t)n->settings_version, "settings_hash", n->settings_hash,
                "heartbeat_age_ms", (json_int_t)n->age_ms, "live", live, "meeting_host",
                strcmp(n->name, c->host) == 0, "this_node", strcmp(n->name, C.name) == 0));
}

enum MHD_Result cluster_api_get(http_request_t *req) {
  int64_t epoch = 0;
  char host[STORE_NODE_NAME_MAX + 1] = "";
  uint64_t stored = 0;
  list_ctx_t c = {.nodes = json_array(), .host = host};
  if (!c.nodes) return http_reply_oom(req);
  store_txn_t *t;
  int r = store_read_begin(C.store, "cluster status", &t);
  if (r == 0) {
    r = store_meeting_host(t, &epoch, host, sizeof host);
    if (r == 0) r = store_settings_version(t, &stored);
    if (r == 0) r = store_node_list(t, add_node, &c);
    store_read_end(t);
  }
  if (r < 0) {
    json_decref(c.nodes);
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    char detail[700];
    snprintf(detail, sizeof detail, "The store cannot be read: %s", store_last_error(C.store));
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "store", "Store unavailable",
                              detail, NULL);
  }
  /* Lag: versions behind the store, for each node. */
  size_t i;
  json_t *n;
  json_array_foreach(c.nodes, i, n) {
    uint64_t v = (uint64_t)json_integer_value(json_object_get(n, "settings_version"));
    json_object_set_new(n, "settings_behind", json_integer(v < stored ? (json_int_t)(stored - v) : 0));
  }
  settings_snapshot_t *snap = settings_acquire();
  json_t *body = json_pack(
      "{s:s, s:s, s:{s:I, s:s?, s:b}, s:{s:I, s:I, s:s}, s:I, s:o}", "node", C.name, "store",
      store_backend_name(C.store), "meeting_host", "epoch", (json_int_t)epoch, "node",
      host[0] ? host : NULL, "this_node", atomic_load(&C.hosting), "settings", "stored_version",
      (json_int_t)stored, "this_node_version", (json_int_t)(snap ? settings_version(snap) : 0),
      "this_node_hash", snap ? settings_hash(snap) : "", "live_nodes", (json_int_t)c.live,
      "nodes", c.nodes);
  settings_release(snap);
  return http_reply_json(req, MHD_HTTP_OK, body);
}

void cluster_write_metrics(FILE *f) {
  pthread_mutex_lock(&C.lock);
  char host[STORE_NODE_NAME_MAX + 1];
  snprintf(host, sizeof host, "%s", C.host);
  bool ok = C.store_ok || !C.multi;
  pthread_mutex_unlock(&C.lock);
  fprintf(f,
          "# HELP atrium_node_info This node: its name and store backend.\n"
          "# TYPE atrium_node_info gauge\n"
          "atrium_node_info{node=\"%s\",store=\"%s\",version=\"%s\"} 1\n"
          "# HELP atrium_node_store_reachable 1 while this node's heartbeat reaches the store.\n"
          "# TYPE atrium_node_store_reachable gauge\n"
          "atrium_node_store_reachable{node=\"%s\"} %d\n"
          "# HELP atrium_meeting_host 1 while this node hosts the web meetings.\n"
          "# TYPE atrium_meeting_host gauge\n"
          "atrium_meeting_host{node=\"%s\"} %d\n"
          "# HELP atrium_meeting_host_epoch The epoch this node took when it last became host.\n"
          "# TYPE atrium_meeting_host_epoch gauge\n"
          "atrium_meeting_host_epoch{node=\"%s\"} %" PRId64 "\n"
          "# HELP atrium_meeting_host_takeovers_total Times this node became the meeting host.\n"
          "# TYPE atrium_meeting_host_takeovers_total counter\n"
          "atrium_meeting_host_takeovers_total{node=\"%s\"} %llu\n"
          "# HELP atrium_meeting_host_losses_total Times this node lost the host's lock.\n"
          "# TYPE atrium_meeting_host_losses_total counter\n"
          "atrium_meeting_host_losses_total{node=\"%s\"} %llu\n"
          "# HELP atrium_settings_notifications_total Settings notifications heard from the store.\n"
          "# TYPE atrium_settings_notifications_total counter\n"
          "atrium_settings_notifications_total{node=\"%s\"} %llu\n"
          "# HELP atrium_settings_polls_behind_total Heartbeats that found a newer stored version.\n"
          "# TYPE atrium_settings_polls_behind_total counter\n"
          "atrium_settings_polls_behind_total{node=\"%s\"} %llu\n"
          "# HELP atrium_settings_reload_failures_total Stored settings this node could not load "
          "or apply.\n"
          "# TYPE atrium_settings_reload_failures_total counter\n"
          "atrium_settings_reload_failures_total{node=\"%s\"} %llu\n",
          C.name, store_backend_name(C.store), ATRIUM_VERSION, C.name, ok ? 1 : 0, C.name,
          atomic_load(&C.hosting) ? 1 : 0, C.name, (int64_t)atomic_load(&C.epoch), C.name,
          (unsigned long long)atomic_load(&C.takeovers), C.name,
          (unsigned long long)atomic_load(&C.host_losses), C.name,
          (unsigned long long)atomic_load(&C.notifications), C.name,
          (unsigned long long)atomic_load(&C.polls_behind), C.name,
          (unsigned long long)atomic_load(&C.reload_failures));
  (void)host;
}

typedef struct peers_ctx {
  cluster_peer_t *out;
  size_t max, n;
} peers_ctx_t;

static void add_peer(const store_node_t *n, void *vctx) {
  peers_ctx_t *c = vctx;
  if (n->age_ms > CLUSTER_LIVE_MS || c->n == c->max) return;
  cluster_peer_t *p = &c->out[c->n++];
  snprintf(p->name, sizeof p->name, "%s", n->name);
  snprintf(p->url, sizeof p->url, "%s", n->url);
  p->meeting_host = false;
}

int cluster_peers(cluster_peer_t *out, size_t max) {
  peers_ctx_t c = {.out = out, .max = max};
  int64_t epoch = 0;
  char host[STORE_NODE_NAME_MAX + 1] = "";
  store_txn_t *t;
  int r = store_read_begin(C.store, "list the nodes", &t);
  if (r == 0) {
    r = store_node_list(t, add_peer, &c);
    if (r == 0) r = store_meeting_host(t, &epoch, host, sizeof host);
    store_read_end(t);
  }
  if (r < 0) return r;
  for (size_t i = 0; i < c.n; i++) out[i].meeting_host = strcmp(out[i].name, host) == 0;
  return (int)c.n;
}
