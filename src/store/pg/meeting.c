/* PostgreSQL operations of web meetings: the same rows and answers as the
 * SQLite backend's meeting.c. */
#include <errno.h>
#include <string.h>

#include "store/pg/internal.h"

#define MEETING_COLUMNS                                                                            \
  "m.id, m.host_id, u.name, m.title, coalesce(m.starts_at, ''), m.created_at, m.created_ms, "     \
  "coalesce(m.started_at, ''), coalesce(m.ended_at, ''), coalesce(m.end_reason, '')"
#define MEETING_FROM " FROM meetings m JOIN users u ON u.id = m.host_id"

static void read_meeting(const PGresult *res, int row, store_meeting_t *m) {
  memset(m, 0, sizeof *m);
  pg_copy(m->id, sizeof m->id, res, row, 0);
  m->host = pg_i64(res, row, 1);
  pg_copy(m->host_name, sizeof m->host_name, res, row, 2);
  pg_copy(m->title, sizeof m->title, res, row, 3);
  pg_copy(m->starts_at, sizeof m->starts_at, res, row, 4);
  pg_copy(m->created_at, sizeof m->created_at, res, row, 5);
  m->created_ms = pg_i64(res, row, 6);
  pg_copy(m->started_at, sizeof m->started_at, res, row, 7);
  pg_copy(m->ended_at, sizeof m->ended_at, res, row, 8);
  pg_copy(m->end_reason, sizeof m->end_reason, res, row, 9);
}

static int each_meeting(store_txn_t *t, const char *sql, const pg_params_t *p,
                        store_meeting_fn fn, void *ctx) {
  int r = 0;
  PGresult *res = pg_exec(t, sql, p, false, &r);
  if (!res) return r;
  store_meeting_t m;
  for (int i = 0; i < PQntuples(res); i++) {
    read_meeting(res, i, &m);
    fn(&m, ctx);
  }
  PQclear(res);
  return 0;
}

int pg_meeting_add(store_txn_t *t, const store_meeting_t *m) {
  if (!m->id[0] || !m->title[0]) return -EINVAL;
  pg_params_t p = {0};
  pp_text(&p, m->id);
  pp_int(&p, m->host);
  pp_text(&p, m->title);
  pp_text(&p, m->starts_at[0] ? m->starts_at : NULL);
  pp_text(&p, m->created_at);
  pp_int(&p, m->created_ms);
  /* A host that does not exist inserts nothing: the answer -EINVAL, as the
   * foreign key gives in SQLite. */
  int64_t added = 0;
  int r = pg_cmd(t,
                 "INSERT INTO meetings (id, host_id, title, starts_at, created_at, created_ms) "
                 "SELECT $1::text, id, $3::text, $4::text, $5::text, $6::bigint FROM users WHERE "
                 "id = $2",
                 &p, true, &added);
  return r < 0 ? r : added ? 0 : -EINVAL;
}

int pg_meeting_get(store_txn_t *t, const char *id, store_meeting_t *out) {
  pg_params_t p = {0};
  pp_text(&p, id);
  int r = 0;
  PGresult *res =
      pg_exec(t, "SELECT " MEETING_COLUMNS MEETING_FROM " WHERE m.id = $1", &p, false, &r);
  if (!res) return r;
  if (PQntuples(res) == 0)
    r = -ENOENT;
  else
    read_meeting(res, 0, out);
  PQclear(res);
  return r;
}

int pg_meeting_started(store_txn_t *t, const char *id, const char *time) {
  pg_params_t p = {0};
  pp_text(&p, id);
  pp_text(&p, time);
  int64_t changed = 0;
  int r = pg_cmd(t, "UPDATE meetings SET started_at = coalesce(started_at, $2) WHERE id = $1",
                 &p, false, &changed);
  return r < 0 ? r : changed ? 0 : -ENOENT;
}

int pg_meeting_end(store_txn_t *t, const char *id, const char *time, const char *reason) {
  pg_params_t p = {0};
  pp_text(&p, id);
  pp_text(&p, time);
  pp_text(&p, reason);
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "UPDATE meetings SET ended_at = $2, end_reason = $3 WHERE id = $1 AND ended_at "
                 "IS NULL",
                 &p, false, &changed);
  return r < 0 ? r : changed ? 0 : -ENOENT;
}

int pg_meeting_list(store_txn_t *t, int64_t host, int64_t limit, store_meeting_fn fn, void *ctx) {
  pg_params_t p = {0};
  pp_int(&p, host);
  pp_limit(&p, limit);
  return each_meeting(t,
                      "SELECT " MEETING_COLUMNS MEETING_FROM
                      " WHERE m.host_id = $1 ORDER BY m.created_ms DESC, m.id LIMIT $2",
                      &p, fn, ctx);
}

int pg_meeting_open(store_txn_t *t, store_meeting_fn fn, void *ctx) {
  pg_params_t p = {0};
  return each_meeting(t,
                      "SELECT " MEETING_COLUMNS MEETING_FROM
                      " WHERE m.started_at IS NOT NULL AND m.ended_at IS NULL ORDER BY "
                      "m.created_ms",
                      &p, fn, ctx);
}
