/* Administrator authentication: the first admin account, password logins,
 * sessions (cookie for the admin page, bearer token for atriumctl: the same
 * token, two carriers), CSRF tokens; failures are slowed by core/throttle.h.
 *
 * Sessions are written to the store (so that they survive a restart and
 * every node of a cluster knows them) and kept in memory as a cache for the
 * per-request check: a token this node has not seen is looked up in the
 * store, and a logout on any node is notified to the others, which drop it.
 * Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include "store/store.h"

#define AUTH_ADMIN_NAME "admin"
#define AUTH_INITIAL_PASSWORD_FILE "initial-admin-password"
#define AUTH_SESSION_SECONDS (12 * 3600)
#define AUTH_FAILURES_BEFORE_DELAY 5

typedef struct auth_bootstrap {
  bool created;          /* an admin account was created at this start */
  bool password_from_env;
  char password_file[4096]; /* where a generated password was written, when one was */
  char *password;        /* the generated password (malloc'd, to print once), or NULL */
} auth_bootstrap_t;

/* Loads sessions from the store. When there is no admin account, creates
 * AUTH_ADMIN_NAME with ATRIUM_ADMIN_PASSWORD (if set, at least 8 characters)
 * or a random password written to <data_dir>/initial-admin-password (0600,
 * the password and a newline). -EALREADY when already initialised; on
 * failure a sentence in err, and auth stays uninitialised. */
int auth_init(store_t *store, const char *data_dir, auth_bootstrap_t *boot, char *err, size_t errlen);
void auth_bootstrap_clear(auth_bootstrap_t *boot);
void auth_shutdown(void);

typedef struct auth_session {
  char *token; /* malloc'd; give to the client, never log */
  char csrf[64];
  char admin[128];
  int64_t expires;
} auth_session_t;

/* 0 on success; -EACCES for a wrong user or password; -EAGAIN when the
 * login throttle (core/throttle.h, realm "admin") refuses this client
 * address for now (*retry_after seconds): it failed too often, or failed
 * for this user while many addresses do, or logged in too often;
 * -EIO for a store failure, -EINVAL before auth_init. client_addr may be NULL
 * (then only the user name is counted). */
int auth_login(const char *user, const char *password, const char *client_addr,
               auth_session_t *out, int *retry_after);
void auth_session_clear(auth_session_t *s);

typedef struct auth_identity {
  char admin[128];
  char csrf[64];
  int64_t expires;
} auth_identity_t;

/* 0 and *who filled for a live session token; -EACCES otherwise. */
int auth_check_token(const char *token, auth_identity_t *who);
/* atrium_login_failures_total (a metrics_write_fn). */
void auth_write_metrics(FILE *f, void *ctx);

/* 0 when the session was ended; -EACCES for an unknown or expired token; a
 * store error when the session is gone from memory but not from the store. */
int auth_logout(const char *token);

/* ---- several admin accounts ---------------------------------------------------- */

#define AUTH_PASSWORD_MIN 8

/* Ends every session of `admin` (in memory and in the store) except the one
 * of keep_token (NULL: all): after a password change, a disabled or removed
 * account. *ended (may be NULL): how many. 0 or a store error. */
int auth_end_sessions(const char *admin, const char *keep_token, int64_t *ended);
/* Live sessions of `admin` now. */
int64_t auth_session_count(const char *admin);
