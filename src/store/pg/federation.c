/* Federation: a remote watcher's consent state, as the SIP module keeps it. */
#include <errno.h>
#include <string.h>

#include "store/pg/internal.h"

int pg_subscription_set(store_txn_t *t, const char *user, const char *remote, const char *state,
                        int64_t generation) {
  if (!state || (strcmp(state, "active") && strcmp(state, "pending"))) return -EINVAL;
  pg_params_t p = {0};
  pp_text(&p, user);
  pp_text(&p, remote);
  pp_text(&p, state);
  pp_int(&p, generation);
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "UPDATE subscriptions SET state = $3::text, generation = $4::bigint "
                 "WHERE lower(remote) = lower($2::text) AND user_id = "
                 "(SELECT id FROM users WHERE name = $1)",
                 &p, false, &changed);
  return r < 0 ? r : changed ? 0 : -ENOENT;
}

int pg_subscription_delete(store_txn_t *t, const char *user, const char *remote) {
  pg_params_t p = {0};
  pp_text(&p, user);
  pp_text(&p, remote);
  int64_t changed = 0;
  int r = pg_cmd(t,
                 "DELETE FROM subscriptions WHERE lower(remote) = lower($2::text) AND user_id = "
                 "(SELECT id FROM users WHERE name = $1)",
                 &p, false, &changed);
  return r < 0 ? r : changed ? 0 : -ENOENT;
}
