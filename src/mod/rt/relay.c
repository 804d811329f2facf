/* Several nodes on one store: the real-time events cross the nodes as
 * store notifications. The writer sends them inside its transaction, so
 * they go out at its commit and in commit order (PostgreSQL delivers
 * notifications of different transactions in the order they committed);
 * every node, this one too, hears them on the store's listener thread and
 * posts them to its hub. Only ids and names travel: a node with none of
 * the users connected does no more than compare two names.
 *
 * Channels and payloads (tab-separated, one line):
 *   rt_chat      node  session  message_id  from  to      (from "" when federated)
 *   rt_mark      node  d|r  by  sender  message_id  time
 *   rt_presence  node  name  state  since  note            (name "" : node started)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mod/rt/internal.h"

#define CH_CHAT "rt_chat"
#define CH_MARK "rt_mark"
#define CH_PRESENCE "rt_presence"
#define FIELDS_MAX 6

static struct {
  store_t *store;
  loop_t *loop;
  atomic_bool active;
  bool listening; /* subscriptions last as long as the store */
  char node[64];
  atomic_uint_fast64_t missed;
} R;

bool rt_relay_active(void) { return atomic_load(&R.active); }

static int notify(store_txn_t *t, const char *channel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int notify(store_txn_t *t, const char *channel, const char *fmt, ...) {
  char payload[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(payload, sizeof payload, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof payload) return -EOVERFLOW;
  return store_notify(t, channel, payload);
}

int rt_relay_notify_chat(store_txn_t *t, uint64_t session, int64_t id, const char *from,
                         const char *to) {
  if (!rt_relay_active()) return 0;
  return notify(t, CH_CHAT, "%s\t%" PRIu64 "\t%" PRId64 "\t%s\t%s", R.node, session, id,
                from ? from : "", to);
}

int rt_relay_notify_mark(store_txn_t *t, const rt_marked_t *m) {
  if (!rt_relay_active()) return 0;
  return notify(t, CH_MARK, "%s\t%c\t%s\t%s\t%" PRId64 "\t%s", R.node, m->kind, m->by, m->sender,
                m->message_id, m->time);
}

/* A note with a tab or a newline would split the payload: they become
 * spaces (a note is one line of text). */
int rt_relay_notify_presence(store_txn_t *t, const char *name, rt_state_t state, const char *note,
                             const char *since) {
  if (!rt_relay_active()) return 0;
  char clean[RT_NOTE_MAX + 1];
  snprintf(clean, sizeof clean, "%s", note ? note : "");
  for (char *p = clean; *p; p++)
    if (*p == '\t' || *p == '\n' || *p == '\r') *p = ' ';
  return notify(t, CH_PRESENCE, "%s\t%s\t%s\t%s\t%s", R.node, name, rt_state_name(state), since,
                clean);
}

/* Splits at tabs in place: the count of fields (at most max). */
static size_t split(char *s, char **f, size_t max) {
  size_t n = 0;
  while (n < max) {
    f[n++] = s;
    char *tab = strchr(s, '\t');
    if (!tab) break;
    *tab = '\0';
    s = tab + 1;
  }
  return n;
}

static void post(loop_fn fn, void *arg) {
  if (loop_post(R.loop, fn, arg) != 0) free(arg);
}

/* ---- the listener thread ------------------------------------------------------------------ */

static void copy_relayed(const store_message_t *m, void *ctx) {
  rt_relayed_t *r = ctx;
  r->id = m->id;
  snprintf(r->from, sizeof r->from, "%s", m->sender_name ? m->sender_name : "");
  snprintf(r->to, sizeof r->to, "%s", m->recipient_name ? m->recipient_name : "");
  snprintf(r->from_remote, sizeof r->from_remote, "%s", m->sender_remote ? m->sender_remote : "");
  snprintf(r->time, sizeof r->time, "%s", m->time);
  r->text = strdup(m->text ? m->text : "");
}

static void on_chat(const char *channel, const char *payload, void *ctx) {
  (void)channel, (void)ctx;
  if (!rt_relay_active()) return;
  if (!payload) {
    /* Messages heard by nobody stay undelivered in the store: the clients
     * get them at their next connection, or with the next message they
     * acknowledge. */
    atomic_fetch_add(&R.missed, 1);
    return;
  }
  char buf[1024], *f[FIELDS_MAX];
  snprintf(buf, sizeof buf, "%s", payload);
  if (split(buf, f, 5) != 5) return;
  const char *from = f[3], *to = f[4];
  if (!rt_user_connected(to) && !(from[0] && rt_user_connected(from))) return;
  int64_t id = strtoll(f[2], NULL, 10);
  store_txn_t *t;
  rt_relayed_t *r = calloc(1, sizeof *r);
  if (!r) return;
  int rc = store_read_begin(R.store, "real-time: a message heard from the store", &t);
  if (rc == 0) {
    rc = store_message_read(t, id, copy_relayed, r);
    store_read_end(t);
  }
  if (rc == 0 && !r->text) rc = -ENOMEM;
  if (rc < 0 || !r->to[0]) {
    if (rc < 0 && rc != -ENOENT)
      log_warning("real-time: message %" PRId64 " from node %s could not be read: %s", id, f[0],
                  store_last_error(R.store));
    free(r->text);
    free(r);
    return;
  }
  if (strcmp(f[0], R.node) == 0) r->session = strtoull(f[1], NULL, 10);
  post(rt_hub_relayed, r);
}

static void on_mark(const char *channel, const char *payload, void *ctx) {
  (void)channel, (void)ctx;
  if (!rt_relay_active() || !payload) return;
  char buf[1024], *f[FIELDS_MAX];
  snprintf(buf, sizeof buf, "%s", payload);
  if (split(buf, f, 6) != 6 || (f[1][0] != 'd' && f[1][0] != 'r')) return;
  if (!rt_user_connected(f[2]) && !rt_user_connected(f[3])) return;
  rt_marked_t *m = calloc(1, sizeof *m);
  if (!m) return;
  m->kind = f[1][0];
  snprintf(m->by, sizeof m->by, "%s", f[2]);
  snprintf(m->sender, sizeof m->sender, "%s", f[3]);
  m->message_id = strtoll(f[4], NULL, 10);
  snprintf(m->time, sizeof m->time, "%s", f[5]);
  post(rt_hub_relayed_mark, m);
}

static void on_presence(const char *channel, const char *payload, void *ctx) {
  (void)channel, (void)ctx;
  if (!rt_relay_active() || !payload) return;
  char buf[1024], *f[FIELDS_MAX];
  snprintf(buf, sizeof buf, "%s", payload);
  size_t n = split(buf, f, 5);
  if (n < 2 || strcmp(f[0], R.node) == 0) return; /* our own: the hub knows */
  if (!f[1][0]) {
    char *node = strdup(f[0]);
    if (node) post(rt_hub_node_started, node);
    return;
  }
  if (n != 5) return;
  rt_remote_presence_t *p = calloc(1, sizeof *p);
  if (!p) return;
  snprintf(p->node, sizeof p->node, "%s", f[0]);
  snprintf(p->name, sizeof p->name, "%s", f[1]);
  p->state = rt_state_parse(f[2]);
  snprintf(p->since, sizeof p->since, "%s", f[3]);
  snprintf(p->note, sizeof p->note, "%s", f[4]);
  if (p->state >= RT_STATE_COUNT) {
    free(p);
    return;
  }
  post(rt_hub_remote_presence, p);
}

/* ---- start, stop ---------------------------------------------------------------------------- */

static int txn_started(store_txn_t *t, void *ctx) {
  (void)ctx;
  return notify(t, CH_PRESENCE, "%s\t", R.node);
}

int rt_relay_start(store_t *store, loop_t *loop, const char *node, char *err, size_t errlen) {
  R.store = store;
  R.loop = loop;
  snprintf(R.node, sizeof R.node, "%s", node);
  if (strcmp(store_backend_name(store), "sqlite") == 0) return 0; /* one node */
  if (!R.listening) {
    int r;
    if ((r = store_listen(store, CH_CHAT, on_chat, NULL)) < 0 ||
        (r = store_listen(store, CH_MARK, on_mark, NULL)) < 0 ||
        (r = store_listen(store, CH_PRESENCE, on_presence, NULL)) < 0) {
      snprintf(err, errlen, "Cannot listen for the other nodes' chat and presence: %s",
               strerror(-r));
      return r;
    }
    R.listening = true;
  }
  atomic_store(&R.active, true);
  /* What the other nodes remember of this node's users from before a
   * restart (a crash says nothing) is void. */
  if (store_run_txn(store, "real-time: node started", txn_started, NULL) < 0)
    log_warning("real-time: cannot tell the other nodes that this one started: %s",
                store_last_error(store));
  return 0;
}

void rt_relay_stop(void) { atomic_store(&R.active, false); }
