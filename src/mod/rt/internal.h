/* Inside the real-time module. Three parts, each with its own thread rule:
 *
 *   hub (hub.c)        the connections, presence and delivery, on the
 *                      runtime's event loop: everything there is touched only
 *                      on the loop's thread;
 *   writer (writer.c)  one thread that owns the module's store work: it
 *                      commits what the hub asks in batches (group commit:
 *                      many messages, one fsync), answers back through
 *                      loop_post, and runs the retention sweep;
 *   api (api.c)        the REST handlers on the HTTP threads; what they need
 *                      from the hub they ask with loop_call.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/atlas.h"
#include "core/loop.h"
#include "http/http.h"
#include "mod/rt/frame.h"
#include "store/store.h"

/* ---- the other modules' hooks (hooks.c) ------------------------------------------------- */

const rt_federation_t *rt_federation(void); /* NULL: none */
int rt_hooks_message(store_txn_t *t, const rt_message_event_t *m);
int rt_hooks_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto);
int rt_hooks_journal(store_txn_t *t, const store_journal_t *e);
void rt_hooks_committed(void);
void rt_hooks_presence(const char *name, rt_state_t state, const char *note);

/* ---- limits ------------------------------------------------------------------------------ */

#define RT_PING_SECONDS 30
#define RT_IDLE_SECONDS 90
#define RT_MAX_MESSAGE (64 * 1024)   /* a frame; larger closes with 1009 */
#define RT_MAX_QUEUED (1024 * 1024)  /* unread output before a client is cut off */
#define RT_CONNS_PER_USER 50
#define RT_WATCHES_PER_CONN 5000
#define RT_FRAMES_PER_SECOND 100     /* then 429 errors; at 3x the connection closes */
#define RT_CHATS_PER_SECOND_CONN 30
#define RT_CHATS_PER_SECOND_USER 60
#define RT_SYNC_PAGE 500             /* offline messages read per store round */
#define RT_TICKET_SECONDS 30
#define RT_TICKETS_MAX 100000

/* ---- tickets (api.c) ---------------------------------------------------------------------- */

typedef struct rt_who {
  char name[65];   /* the user's name, the local part */
  bool mobile;
  char client[33]; /* what the connection says it is: "web", the device platform */
} rt_who_t;

/* A single-use ticket for a browser's WebSocket; *ticket malloc'd. */
int rt_ticket_issue(const rt_who_t *who, char **ticket, int64_t *expires);
/* Consumes a ticket: 0 and *who, or -ENOENT (unknown, used or expired). */
int rt_ticket_take(const char *ticket, rt_who_t *who);
void rt_tickets_clear(void);

/* ---- the hub (hub.c, loop thread) ------------------------------------------------------------ */

/* What the WebSocket handler hands over for a new connection. */
typedef struct rt_pending {
  rt_who_t who;
  char address[48]; /* the peer's IP address */
  void *conn;       /* the hub's connection once open (loop thread only) */
} rt_pending_t;

int rt_hub_init(loop_t *loop);
void rt_hub_shutdown(void);
/* The WebSocket callbacks (http/websocket.h) of a client connection; user is
 * a malloc'd rt_pending_t. */
extern const struct ws_callbacks rt_ws_callbacks;
void rt_pending_free(void *pending);
/* Connections open and opening; the HTTP threads read it for the limit. */
size_t rt_hub_connections(void);
bool rt_hub_reserve(void); /* false when full */
void rt_hub_unreserve(void);

/* On the loop: */
void rt_hub_close_all(const char *reason, uint16_t code);
void rt_hub_close_user(const char *name, const char *reason);
/* The presence of addresses, for the REST handlers: states[i], notes[i]
 * (copied, at most RT_NOTE_MAX + 1 bytes each). */
typedef struct rt_presence_query {
  size_t count;
  const char *const *addresses;
  rt_state_t *states;
  char (*notes)[RT_NOTE_MAX + 1];
} rt_presence_query_t;
void rt_hub_presence(void *query); /* a loop_fn: rt_presence_query_t */
/* Who is connected, for GET /api/v1/presence: a loop_fn filling a json_t ** */
void rt_hub_report(void *json_out);

typedef struct rt_hub_counters {
  uint64_t frames_in, frames_refused, presence_out, chats_out;
  size_t users; /* with at least one connection */
} rt_hub_counters_t;
void rt_hub_counters(rt_hub_counters_t *out);

/* The presence table the hub keeps for other threads (rt_presence_of in
 * rt.h reads it): local users by name, federated addresses by address. */
void rt_presence_forget(const char *name);

/* The writer's answers, run on the loop (writer.c posts them). */
typedef struct rt_sent {
  uint64_t session;      /* the sending connection, 0 when gone */
  char id[RT_ID_MAX + 1];
  bool has_id;
  int status;            /* 0, or an HTTP status for the error frame */
  char detail[200];
  int64_t message_id;
  char time[32];
  char from[65], to[65]; /* names ("" for the remote side) */
  char from_remote[RT_ADDRESS_MAX + 1], to_remote[RT_ADDRESS_MAX + 1]; /* "" when local */
  char *text;            /* malloc'd */
} rt_sent_t;
void rt_hub_sent(rt_sent_t *sent);
typedef struct rt_marked {
  char kind; /* 'd' delivered, 'r' read */
  char by[65];     /* who received or read */
  char sender[65]; /* whose message it was */
  int64_t message_id;
  char time[32];
} rt_marked_t;
void rt_hub_marked(const rt_marked_t *m);
/* Offline messages for a connection, oldest first; `more` asks for the next page. */
void rt_hub_synced(uint64_t session, const store_message_t *messages, size_t count, bool more,
                   int failed);

/* ---- the writer (writer.c, its own thread) --------------------------------------------------- */

int rt_writer_start(store_t *store, loop_t *loop, atlas_watch_t *atlas, char *err,
                    size_t errlen);
void rt_writer_stop(void);
/* Queue work; the answers come back to the hub on the loop. Each returns
 * -EAGAIN when the writer's queue is full (the hub answers 503). text is
 * copied. */
int rt_writer_send(uint64_t session, const char *id, bool has_id, const char *from,
                   const char *to, const char *text, size_t len);
/* The same to a federated address (to_remote, lower-cased). */
int rt_writer_send_remote(uint64_t session, const char *id, bool has_id, const char *from,
                          const char *to_remote, const char *text, size_t len);
int rt_writer_received(const char *by, int64_t upto);
int rt_writer_read(const char *by, int64_t message_id);
int rt_writer_sync(uint64_t session, const char *name, int64_t after);
/* A user renamed, disabled or deleted: the writer forgets what it cached. */
void rt_writer_forget(const char *name);
size_t rt_writer_queued(void);

typedef struct rt_retention_state {
  int im_days, journal_days; /* -1: atlas.xml gives none */
  char atlas_error[256];
  char last_run[32];         /* "" before the first */
  char next_run[32];
  int64_t last_messages, last_journal;
  bool last_failed;          /* the last sweep stopped at a store failure */
  uint64_t total_messages, total_journal;
} rt_retention_state_t;
void rt_writer_retention(rt_retention_state_t *out);
/* A sweep now; waits (bounded) for it and reports what it deleted. */
int rt_writer_retention_run(rt_retention_state_t *out);

typedef struct rt_writer_stats {
  uint64_t commits, messages, failed_commits;
} rt_writer_stats_t;
void rt_writer_stats(rt_writer_stats_t *out);

/* ---- several nodes (relay.c): events across the nodes of a cluster --------------------------- */

/* Whether the store has other nodes (PostgreSQL): then every delivery and
 * mark comes back from the store (also this node's own), in commit order,
 * and presence changes are announced to the other nodes. */
bool rt_relay_active(void);
int rt_relay_start(store_t *store, loop_t *loop, const char *node, char *err, size_t errlen);
void rt_relay_stop(void);
/* Inside the writer's transaction: sent at its commit. */
int rt_relay_notify_chat(store_txn_t *t, uint64_t session, int64_t id, const char *from,
                         const char *to);
int rt_relay_notify_mark(store_txn_t *t, const rt_marked_t *m);
int rt_relay_notify_presence(store_txn_t *t, const char *name, rt_state_t state, const char *note,
                             const char *since);

/* What the relay posts to the hub (loop_fns; each frees its argument). */
typedef struct rt_relayed {
  uint64_t session; /* the sending connection when it is on this node, else 0 */
  int64_t id;
  char from[65], to[65]; /* names; from "" when from_remote */
  char from_remote[RT_ADDRESS_MAX + 1];
  char time[32];
  char *text;
} rt_relayed_t;
void rt_hub_relayed(void *relayed);
void rt_hub_relayed_mark(void *marked); /* a malloc'd rt_marked_t */
typedef struct rt_remote_presence {
  char node[64];
  char name[65];
  rt_state_t state;
  char note[RT_NOTE_MAX + 1];
  char since[32];
} rt_remote_presence_t;
void rt_hub_remote_presence(void *presence);
void rt_hub_node_started(void *node); /* a malloc'd node name */
void rt_hub_remote_clear(void);
/* Queues this node's view of a user's presence for the other nodes. */
int rt_writer_presence(const char *name, rt_state_t state, const char *note, const char *since);

/* ---- the REST handlers (api.c) --------------------------------------------------------------- */

void rt_api_init(store_t *store, loop_t *loop);
/* While draining, new WebSockets are refused with 503. */
void rt_api_drain(bool on);
enum MHD_Result rt_api_ticket(http_request_t *req);
enum MHD_Result rt_api_ws(http_request_t *req);
enum MHD_Result rt_api_contacts(http_request_t *req);
enum MHD_Result rt_api_contact_put(http_request_t *req);
enum MHD_Result rt_api_contact_delete(http_request_t *req);
enum MHD_Result rt_api_messages(http_request_t *req);
enum MHD_Result rt_api_journal(http_request_t *req);
enum MHD_Result rt_api_journal_add(http_request_t *req);
enum MHD_Result rt_api_presence(http_request_t *req);
enum MHD_Result rt_api_retention(http_request_t *req);
enum MHD_Result rt_api_retention_run(http_request_t *req);
enum MHD_Result rt_api_app(http_request_t *req);

/* The current domain, from the settings (for addresses). */
void rt_domain(char *out, size_t len);
