/* Bounds on what one user can make the store keep (client tokens). */
#include <errno.h>

#include "store/pg/internal.h"

int pg_tokens_trim(store_txn_t *t, int64_t user_id, int64_t keep, int64_t *deleted) {
  *deleted = 0;
  if (keep < 0) return -EINVAL;
  pg_params_t p = {0};
  pp_int(&p, user_id);
  pp_int(&p, keep);
  return pg_cmd(t,
                "DELETE FROM client_tokens WHERE user_id = $1 AND token_hash NOT IN ("
                "SELECT token_hash FROM client_tokens WHERE user_id = $1 "
                "ORDER BY created DESC, token_hash DESC LIMIT $2)",
                &p, false, deleted);
}
