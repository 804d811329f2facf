/* The cluster module: several atriumd nodes on one PostgreSQL database.
 *
 * Every node writes a heartbeat row (its name, URL, version, the settings
 * version and hash it has in force); a settings commit anywhere (or a row
 * changed by hand) is heard through store_listen and reloaded here, with a
 * bounded poll behind the notifications; exactly one node hosts the web
 * meetings, elected by a session advisory lock with an epoch that goes up at
 * every takeover. With SQLite there is one node, which hosts. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mod/module.h"

extern const atrium_module_t cluster_module;

/* This node's name (<Node name>, default the host name). */
const char *cluster_node_name(void);

/* Whether this node hosts the web meetings now, and the epoch it took when
 * it became host (0 before it ever did). */
bool cluster_meeting_hosting(void);
int64_t cluster_meeting_epoch(void);

/* For the meeting routes: true when this node hosts the web meetings now.
 * Otherwise false, and *ret is the reply already queued: 503 with
 * Retry-After, naming the host, so that the load balancer tries the next
 * node (see docs/operations/cluster.md). */
bool cluster_meeting_gate(http_request_t *req, enum MHD_Result *ret);

/* Fencing the meeting host's writes: call inside the store transaction of
 * every write a host makes as host. 0 while this node still hosts under the
 * epoch it took; -ESTALE when it no longer does (roll back: another node
 * took over, and the write would land beside its). */
int cluster_meeting_fence(store_txn_t *txn);

/* Called on the cluster's thread whenever this node starts (true) or stops
 * (false) hosting the web meetings, with the epoch it took or had. One
 * watcher; before start. */
void cluster_meeting_watch(void (*fn)(bool hosting, int64_t epoch, void *ctx), void *ctx);

/* Waits at most timeout_ms until every node live when the wait began has
 * settings version >=
 * `version` in force: 0 then, -ETIMEDOUT with *pending a new array of
 * {"node", "settings_version"} of those that have not, or another negative
 * code when the store cannot be read. */
int cluster_wait_applied(uint64_t version, int timeout_ms, json_t **pending);

/* The live nodes, by name (with SQLite: this one): where the load balancer
 * reaches each, and which hosts the web meetings. At most max; the count,
 * or a negative code when the store cannot be read. */
typedef struct cluster_peer {
  char name[64];
  char url[256];
  bool meeting_host;
} cluster_peer_t;
int cluster_peers(cluster_peer_t *out, size_t max);
