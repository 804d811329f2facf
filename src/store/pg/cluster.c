/* PostgreSQL operations of the cluster: the nodes' rows (their heartbeat by
 * the database's clock, so that nodes with skewed clocks agree on who is
 * alive), admin sessions looked up by any node, and the meeting host: a
 * session advisory lock on a connection of its own, and an epoch row that
 * goes up at every takeover and fences the old host's writes. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pg/internal.h"

/* The meeting host's lock ("Atri" and 2, beside the migration lock's 1). */
#define HOST_LOCK "SELECT pg_try_advisory_lock(1098150505, 2)"
/* A host that stopped running (SIGSTOP, a hung machine) keeps its
 * connection open but asks nothing: the server ends its session, and so
 * frees the lock, after this long. A live holder asks every few hundred
 * milliseconds. */
#define HOST_IDLE_TIMEOUT "SET idle_session_timeout = '4s'"
#define HOST_CMD_MS 2000 /* a command on the lock connection that takes longer: lost */

int pg_node_beat(store_txn_t *t, const store_node_t *n) {
  if (n->settings_version > INT64_MAX) return -ERANGE;
  pg_params_t p = {0};
  pp_text(&p, n->name);
  pp_text(&p, n->url);
  pp_text(&p, n->atrium_version);
  pp_int(&p, (int64_t)n->settings_version);
  pp_text(&p, n->settings_hash);
  pp_int(&p, n->started_ms);
  return pg_cmd(t,
                "INSERT INTO nodes (name, url, atrium_version, settings_version, settings_hash, "
                "started_ms, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp()) "
                "ON CONFLICT (name) DO UPDATE SET url = excluded.url, "
                "atrium_version = excluded.atrium_version, "
                "settings_version = excluded.settings_version, "
                "settings_hash = excluded.settings_hash, started_ms = excluded.started_ms, "
                "heartbeat_at = excluded.heartbeat_at",
                &p, false, NULL);
}

int pg_node_delete(store_txn_t *t, const char *name) {
  pg_params_t p = {0};
  pp_text(&p, name);
  int64_t changed = 0;
  int r = pg_cmd(t, "DELETE FROM nodes WHERE name = $1", &p, false, &changed);
  return r < 0 ? r : changed ? 0 : -ENOENT;
}

int pg_node_list(store_txn_t *t, store_node_fn fn, void *ctx) {
  pg_params_t p = {0};
  int r = 0;
  PGresult *res = pg_exec(t,
                          "SELECT name, url, atrium_version, settings_version, settings_hash, "
                          "started_ms, (extract(epoch FROM clock_timestamp() - heartbeat_at) * "
                          "1000)::bigint FROM nodes ORDER BY name",
                          &p, false, &r);
  if (!res) return r;
  for (int i = 0; i < PQntuples(res); i++) {
    store_node_t n;
    memset(&n, 0, sizeof n);
    pg_copy(n.name, sizeof n.name, res, i, 0);
    pg_copy(n.url, sizeof n.url, res, i, 1);
    pg_copy(n.atrium_version, sizeof n.atrium_version, res, i, 2);
    n.settings_version = (uint64_t)pg_i64(res, i, 3);
    pg_copy(n.settings_hash, sizeof n.settings_hash, res, i, 4);
    n.started_ms = pg_i64(res, i, 5);
    n.age_ms = pg_i64(res, i, 6);
    fn(&n, ctx);
  }
  PQclear(res);
  return 0;
}

int pg_session_get(store_txn_t *t, const char *token_hash, store_session_t *out) {
  memset(out, 0, sizeof *out);
  pg_params_t p = {0};
  pp_text(&p, token_hash);
  int r = 0;
  PGresult *res = pg_exec(
      t, "SELECT token_hash, admin, csrf, created, expires FROM sessions WHERE token_hash = $1",
      &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0) {
    r = -ENOENT;
  } else {
    pg_copy(out->token_hash, sizeof out->token_hash, res, 0, 0);
    pg_copy(out->admin, sizeof out->admin, res, 0, 1);
    pg_copy(out->csrf, sizeof out->csrf, res, 0, 2);
    out->created = pg_i64(res, 0, 3);
    out->expires = pg_i64(res, 0, 4);
  }
  PQclear(res);
  return r;
}

int pg_ticket_put(store_txn_t *t, const char *hash, const store_ticket_t *k) {
  pg_params_t p = {0};
  pp_text(&p, hash);
  pp_text(&p, k->user);
  pp_bool(&p, k->mobile);
  pp_text(&p, k->client);
  pp_int(&p, k->expires);
  return pg_cmd(t,
                "INSERT INTO ws_tickets (hash, user_name, mobile, client, expires) "
                "VALUES ($1, $2, $3, $4, $5)",
                &p, false, NULL);
}

int pg_ticket_take(store_txn_t *t, const char *hash, int64_t now, store_ticket_t *out) {
  memset(out, 0, sizeof *out);
  pg_params_t p = {0};
  pp_text(&p, hash);
  int r = 0;
  /* Two nodes taking the same ticket: one DELETE wins, the other's
   * transaction conflicts, is retried and finds nothing. */
  PGresult *res = pg_exec(t,
                          "DELETE FROM ws_tickets WHERE hash = $1 "
                          "RETURNING user_name, mobile, client, expires",
                          &p, false, &r);
  if (!res) return r;
  bool found = PQntuples(res) == 1;
  if (found) {
    pg_copy(out->user, sizeof out->user, res, 0, 0);
    out->mobile = pg_bool(res, 0, 1);
    pg_copy(out->client, sizeof out->client, res, 0, 2);
    out->expires = pg_i64(res, 0, 3);
  }
  PQclear(res);
  pg_params_t q = {0};
  pp_int(&q, now);
  if ((r = pg_cmd(t, "DELETE FROM ws_tickets WHERE expires < $1", &q, false, NULL)) < 0) return r;
  return found && out->expires >= now ? 0 : -ENOENT;
}

int pg_meeting_host(store_txn_t *t, int64_t *epoch, char *node, size_t len) {
  pg_params_t p = {0};
  int r = 0;
  *epoch = 0;
  if (len) node[0] = '\0';
  PGresult *res =
      pg_exec(t, "SELECT epoch, coalesce(node, '') FROM meeting_host WHERE id = 1", &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 1) {
    *epoch = pg_i64(res, 0, 0);
    if (len) pg_copy(node, len, res, 0, 1);
  }
  PQclear(res);
  return 0;
}

int pg_meeting_fence(store_txn_t *t, int64_t epoch) {
  pg_params_t p = {0};
  int64_t current = 0;
  /* FOR SHARE: a takeover's UPDATE waits until this transaction ends, so a
   * write this check let through is one of the old epoch's, in order. */
  int r = pg_int(t, "SELECT epoch FROM meeting_host WHERE id = 1 FOR SHARE", &p, &current);
  if (r < 0) return r;
  return current == epoch ? 0 : -ESTALE;
}

/* ---- the lock connection ------------------------------------------------------------ */

typedef struct pg_hold {
  store_hold_t base;
  pgb_t *b;
  PGconn *pc;
  bool held;
} pg_hold_t;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends one command and waits for its result at most ms, never in a
 * blocking libpq call: a server gone from the network must not hang the
 * thread that decides whether this node may host. The first row's first
 * value into out (may be NULL, at most len - 1 bytes). 0, or -1 when the
 * command failed or the time ran out. */
static int bounded(PGconn *pc, const char *sql, const char *param, int ms, char *out, size_t len) {
  const char *values[1] = {param};
  if (!PQsendQueryParams(pc, sql, param ? 1 : 0, NULL, param ? values : NULL, NULL, NULL, 0))
    return -1;
  int64_t until = mono_ms() + ms;
  while (PQisBusy(pc)) {
    int left = (int)(until - mono_ms());
    if (left <= 0) return -1;
    struct pollfd fd = {.fd = PQsocket(pc), .events = POLLIN};
    int n = poll(&fd, 1, left);
    if (n < 0) continue;
    if (n > 0 && !PQconsumeInput(pc)) return -1;
  }
  int r = -1;
  PGresult *res;
  for (int i = 0; i < 8 && (res = PQgetResult(pc)); i++) {
    ExecStatusType st = PQresultStatus(res);
    if (i == 0 && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
      r = 0;
      if (out && len) {
        out[0] = '\0';
        if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
          snprintf(out, len, "%s", PQgetvalue(res, 0, 0));
      }
    } else {
      r = -1;
    }
    PQclear(res);
  }
  return PQstatus(pc) == CONNECTION_OK ? r : -1;
}

static void hold_drop(pg_hold_t *h) {
  PQfinish(h->pc);
  h->pc = NULL;
  h->held = false;
}

int pg_hold_open(void *db, store_hold_t **hold) {
  pg_hold_t *h = calloc(1, sizeof *h);
  if (!h) return -ENOMEM;
  h->base.be = store_pg_backend();
  h->b = db;
  *hold = &h->base;
  return 0;
}

int pg_hold_try(store_hold_t *hold, const char *node, int64_t *epoch) {
  pg_hold_t *h = (pg_hold_t *)hold;
  if (h->held) return -EALREADY;
  if (!h->pc) {
    h->pc = pg_connect(h->b, "atriumd meeting host", false);
    if (!h->pc) return -ENOMEM;
    if (PQstatus(h->pc) != CONNECTION_OK || bounded(h->pc, HOST_IDLE_TIMEOUT, NULL, HOST_CMD_MS, NULL, 0) < 0) {
      hold_drop(h);
      return -EIO;
    }
  }
  char got[8];
  if (bounded(h->pc, HOST_LOCK, NULL, HOST_CMD_MS, got, sizeof got) < 0) {
    hold_drop(h);
    return -EIO;
  }
  if (strcmp(got, "t") != 0) return 0;
  /* Ours: the epoch goes up on this same connection, so that no other node
   * can take the lock between the two. */
  char e[32];
  if (bounded(h->pc,
              "UPDATE meeting_host SET epoch = epoch + 1, node = $1, since = now() WHERE id = 1 "
              "RETURNING epoch",
              node, HOST_CMD_MS, e, sizeof e) < 0 ||
      !e[0]) {
    hold_drop(h);
    return -EIO;
  }
  *epoch = strtoll(e, NULL, 10);
  h->held = true;
  return 1;
}

int pg_hold_check(store_hold_t *hold, int timeout_ms) {
  pg_hold_t *h = (pg_hold_t *)hold;
  if (!h->held || !h->pc) return -ENOTCONN;
  if (bounded(h->pc, "SELECT 1", NULL, timeout_ms, NULL, 0) < 0) {
    hold_drop(h);
    return -ENOTCONN;
  }
  return 0;
}

void pg_hold_close(store_hold_t *hold) {
  pg_hold_t *h = (pg_hold_t *)hold;
  if (!h) return;
  /* Closing the connection ends the session and with it the lock. */
  hold_drop(h);
  free(h);
}
