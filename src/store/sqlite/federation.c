/* Federation: a remote watcher's consent state, as the SIP module keeps it. */
#include <errno.h>
#include <string.h>

#include "store/sqlite/internal.h"

int sq_subscription_set(store_txn_t *t, const char *user, const char *remote, const char *state,
                        int64_t generation) {
  sqlite3_stmt *st = sq_prepare(t, "UPDATE subscriptions SET state = ?3, generation = ?4 "
                                   "WHERE remote = ?2 COLLATE NOCASE AND user_id = "
                                   "(SELECT id FROM users WHERE name = ?1)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, user);
  sq_bind_text(st, 2, remote);
  sq_bind_text(st, 3, state);
  sqlite3_bind_int64(st, 4, generation);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}

int sq_subscription_delete(store_txn_t *t, const char *user, const char *remote) {
  sqlite3_stmt *st = sq_prepare(t, "DELETE FROM subscriptions WHERE remote = ?2 COLLATE NOCASE "
                                   "AND user_id = (SELECT id FROM users WHERE name = ?1)");
  if (!st) return -EIO;
  sq_bind_text(st, 1, user);
  sq_bind_text(st, 2, remote);
  int r = sq_done(t, st);
  if (r == 0 && sqlite3_changes(sq_of(t)->db) == 0) r = -ENOENT;
  return r;
}
