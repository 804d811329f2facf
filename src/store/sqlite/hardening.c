/* Bounds on what one user can make the store keep (client tokens). */
#include <errno.h>

#include "store/sqlite/internal.h"

int sq_tokens_trim(store_txn_t *t, int64_t user_id, int64_t keep, int64_t *deleted) {
  *deleted = 0;
  if (keep < 0) return -EINVAL;
  sqlite3_stmt *st = sq_prepare(
      t, "DELETE FROM client_tokens WHERE user_id = ?1 AND token_hash NOT IN ("
         "SELECT token_hash FROM client_tokens WHERE user_id = ?1 "
         "ORDER BY created DESC, token_hash DESC LIMIT ?2)");
  if (!st) return -EIO;
  sqlite3_bind_int64(st, 1, user_id);
  sqlite3_bind_int64(st, 2, keep);
  int r = sq_done(t, st);
  *deleted = r == 0 ? sqlite3_changes(sq_of(t)->db) : 0;
  return r;
}
