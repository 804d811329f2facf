/* The directory: users, client logins (tokens and mobile device
 * registrations), and the federation data of each user (presence
 * subscriptions and external contacts).
 *
 * A user's login name and IM address are never stored: both are
 * "<name>@<current domain>", derived when read. The current domain lives in
 * the `domains` table as the newest "generation"; every earlier generation is
 * kept so that an old login name can be recognised. Devices, client tokens
 * and subscriptions record the generation they were made under, so after a
 * domain change they read as "set up the login again" / "to be created again"
 * without a single row being rewritten: the change is one INSERT, whatever the
 * number of users.
 *
 * Functions return 0 or a negative errno-style code: -EINVAL (invalid input;
 * the problem_t says what), -ENOENT (no such user), -EEXIST (name or Windows
 * account taken), -EACCES (wrong credentials), -ESTALE (a login name or token
 * from before a domain change), -EIO (store failure), -ENOMEM. Those that
 * take a store_txn_t run in the caller's transaction (the domain change's);
 * the others run their own. Nothing here logs. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/problem.h"
#include "http/http.h"
#include "mod/module.h"
#include "store/store.h"
#include "core/validate.h"

#define DIRECTORY_NAME_MAX 64
#define DIRECTORY_DISPLAY_NAME_MAX 256
#define DIRECTORY_WINDOWS_ACCOUNT_MAX 256
#define DIRECTORY_PASSWORD_MIN 8
#define DIRECTORY_PASSWORD_MAX 1024
#define DIRECTORY_REMOTE_MAX 320
#define DIRECTORY_LIST_LIMIT_MAX 1000
#define DIRECTORY_IMPORT_ERRORS_MAX 50
#define DIRECTORY_TOKEN_SECONDS (30 * 24 * 3600)
/* Client tokens a user may hold at once (desktop, web and mobile devices);
 * a login beyond revokes the oldest. */
#define DIRECTORY_TOKENS_PER_USER 32

/* What went wrong, for the HTTP reply, is a problem_t: the sentence in
 * detail, the failing fields in errors ([{"key", "message", "row"?,
 * "line"?}]); the caller picks the status from the return code. */

/* ---- validation (pure) -------------------------------------------------------------- */

/* A user's name, the local part of the login name: 1-64 of lower-case a-z,
 * digits, '.', '_', '-', not starting or ending with '.' or '-', no "..".
 * Upper case is refused, not folded, so that what the admin typed is what
 * the users will type. */
int directory_validate_name(const char *in, validate_error_t *err);

/* "DOMAIN\sam" (NetBIOS domain 1-15 characters, sam 1-20, neither with
 * "/\[]:;|=,+*?<>@" or control characters) or a UPN "user@dns.domain" (the
 * domain a host name of two or more labels). Returned as given except the
 * UPN's domain lower-cased and in A-labels; compared case-insensitively. */
int directory_validate_windows_account(const char *in, char **out, validate_error_t *err);

/* A remote federation address "user@host": local part 1-64 printable ASCII
 * without spaces, '@', '<', '>' or quotes; host a DNS name of two or more
 * labels. Lower-cased (hosts in A-labels). */
int directory_validate_remote(const char *in, char **out, validate_error_t *err);

/* ---- the domain generation -------------------------------------------------------------- */

/* At start: makes `domain` (the settings' domain.name) the current domain.
 * On a new store that is generation 1; when the store's current domain
 * differs (the settings were restored from elsewhere), a new generation is
 * recorded and *changed set, so that devices and subscriptions of the old
 * one read as outdated. */
int directory_sync_domain(store_t *store, const char *domain, const char *actor, bool *changed);

/* The current generation and domain; *name malloc'd. */
int directory_domain_current(store_txn_t *txn, int64_t *generation, char **name);

/* What a domain change would touch, counted in the caller's transaction. */
typedef struct directory_domain_counts {
  int64_t generation;     /* the current one */
  char old_domain[256];
  int64_t users;
  int64_t mobile_devices; /* registered under the current domain: must be set up again */
  int64_t subscriptions;  /* every one: created again for the new IM address */
  json_t *samples;        /* [{"old": "alice@old", "new": "alice@new"}], first by name */
} directory_domain_counts_t;

/* Counted in the caller's transaction. */
int directory_domain_count(store_txn_t *txn, const char *new_domain, size_t samples,
                           directory_domain_counts_t *out);
void directory_domain_counts_clear(directory_domain_counts_t *c);

/* Inside the transaction of the domain change: makes new_domain the current
 * domain, one new generation. -ESTALE when the current generation is no
 * longer `expected` (someone else changed it in between). */
int directory_domain_advance(store_txn_t *txn, int64_t expected, const char *new_domain,
                             const char *actor);

/* ---- users ----------------------------------------------------------------------------- */

/* A user document: {"name", "display_name", "windows_account", "enabled",
 * "has_password", "login", "im_address", "created_at", "updated_at",
 * "picture"}: picture is the entity tag of the profile picture, or null. */

/* Who makes a change, for the audit log row written in the change's own
 * transaction. NULL where nobody administers (a user signing themselves out,
 * the unit tests): then no row. */
typedef struct directory_actor {
  const char *admin;   /* the admin's account name */
  const char *address; /* where the request came from; may be NULL */
} directory_actor_t;

/* `in`: {"name", "display_name"?, "windows_account"?, "password"?, "enabled"?}.
 * Passwords are hashed (Argon2id) before the transaction begins. */
int directory_user_create(store_t *store, const directory_actor_t *by, const json_t *in,
                          json_t **user, problem_t *err);
/* `name` is the local part, or a login name with the current domain. */
int directory_user_get(store_t *store, const char *name, json_t **user);
/* The user document with what the admin page shows of the user's clients:
 * "devices" (mobile registrations: id, platform, login, push, setup_again,
 * created_at, updated_at) and "sessions" (the tokens not expired: device or
 * null for a desktop login, platform, created, expires, setup_again). Read
 * in one transaction, so both agree with the user. No secrets. */
int directory_user_get_clients(store_t *store, const char *name, json_t **user);
/* `patch`: any of "name", "display_name", "windows_account", "password",
 * "enabled"; null clears display_name, windows_account and password. A
 * password given (set or cleared) or "enabled": false revokes every client
 * token of the user in the same transaction. */
int directory_user_update(store_t *store, const directory_actor_t *by, const char *name,
                          const json_t *patch, json_t **user, problem_t *err);
int directory_user_delete(store_t *store, const directory_actor_t *by, const char *name);
/* "Sign out everywhere": revokes every client token of the user (desktop,
 * web and mobile must log in again); *revoked (may be NULL) how many. */
int directory_user_sign_out(store_t *store, const directory_actor_t *by, const char *name,
                            int64_t *revoked);
/* A client logging out: revokes this one token (-ENOENT when unknown). */
int directory_token_revoke(store_t *store, const char *token);
/* {"total", "offset", "limit", "users": [...]}, ordered by name. q (may be
 * NULL) matches a substring of name, display name or Windows account,
 * case-insensitively; "alice@example.com" searches for "alice". */
int directory_user_list(store_t *store, const char *q, int64_t offset, int64_t limit,
                        json_t **page);
/* Integrated Windows login (Kerberos, issue 7): the user whose
 * windows_account is `account` (case-insensitive). Unaffected by the domain. */
int directory_find_by_windows_account(store_t *store, const char *account, json_t **user);

/* ---- profile pictures ---------------------------------------------------------------------- */

/* Sets the picture of the user `name` to `jpeg` (already re-encoded by
 * picture_normalize, never an upload as it came) with its entity tag, or
 * removes it (jpeg NULL; removing none is no error); *user (may be NULL)
 * the user document after. -ENOENT for no such user. Audited as
 * "user.picture" when `by` is given. */
int directory_picture_put(store_t *store, const directory_actor_t *by, const char *name,
                          const uint8_t *jpeg, size_t len, const char *etag, json_t **user);
/* The picture of the user `name`: -ENOENT when there is no such user, the
 * user has no picture, or is disabled (unless disabled_too: the admin). */
int directory_picture_get(store_t *store, const char *name, bool disabled_too,
                          store_picture_t *out);
/* 200 image/jpeg with the picture (taken over: freed here), its ETag and
 * Cache-Control: private, no-cache; 304 when If-None-Match names it. */
enum MHD_Result directory_reply_picture(http_request_t *req, store_picture_t *pic);
/* Whether directory.users_permissions holds `principal` ("Users",
 * "Authenticated") now. Any thread. */
bool directory_users_permit(const char *principal);

/* ---- bulk import ------------------------------------------------------------------------- */

typedef enum directory_import_kind {
  DIRECTORY_IMPORT_USERS,         /* name, display_name, windows_account, password, enabled */
  DIRECTORY_IMPORT_SUBSCRIPTIONS, /* user, remote, state */
  DIRECTORY_IMPORT_CONTACTS,      /* user, remote, display_name */
} directory_import_kind_t;

typedef struct directory_batch directory_batch_t;

/* Parses and validates a whole import: a JSON array of objects, or CSV
 * (RFC 4180, a header row naming the columns, UTF-8, LF or CRLF) when csv is
 * true. A JSON object {"csv": "<text>"} is read as that CSV (atriumctl sends
 * files this way). Every row is checked; errors name the row (1-based data
 * row) and, for CSV, the line where it starts. Pure: no store, no hashing. */
int directory_import_parse(directory_import_kind_t kind, const char *data, size_t len, bool csv,
                           directory_batch_t **out, problem_t *err);
size_t directory_batch_rows(const directory_batch_t *b);
void directory_batch_free(directory_batch_t *b); /* accepts NULL */

/* Writes a parsed batch all or nothing, in one transaction (users'
 * passwords are hashed first, outside the lock). A name that exists already
 * or a user that does not exist is an error naming the row. */
int directory_import_apply(store_t *store, const directory_actor_t *by, directory_batch_t *b,
                           int64_t *imported, problem_t *err);
/* The same in steps, for an import that runs as a job: passwords still to
 * hash; hash the next one (*more: others are left); then the transaction,
 * which refuses (-EINVAL) while a password is unhashed. */
size_t directory_batch_passwords(const directory_batch_t *b);
int directory_import_hash_step(directory_batch_t *b, bool *more);
int directory_import_write(store_t *store, const directory_actor_t *by, directory_batch_t *b,
                           int64_t *imported, problem_t *err);

/* ---- federation data ------------------------------------------------------------------------ */

/* {"total", "offset", "limit", "subscriptions": [{"user", "im_address", "remote", "state",
 * "created_at"}]}; the state is "to-be-recreated" for every subscription made
 * under an earlier domain. user/state (may be NULL) filter. */
int directory_subscription_list(store_t *store, const char *user, const char *state,
                                int64_t offset, int64_t limit, json_t **page);
/* {"total", "offset", "limit", "contacts": [{"user", "remote", "display_name", "created_at"}]} */
int directory_contact_list(store_t *store, const char *user, int64_t offset, int64_t limit,
                           json_t **page);

/* ---- client logins ------------------------------------------------------------------------ */

typedef struct directory_login {
  char *token;      /* malloc'd; give to the client, never log */
  char login[330];  /* the login name, as it is now */
  int64_t expires;
} directory_login_t;

/* `login` is "name@domain" (or the bare name); `device` (may be NULL) is
 * {"id", "platform": "ios"|"android", "push_token"?} and registers a mobile
 * device. -EACCES for wrong credentials or a disabled user; -ESTALE when the
 * password is right but the login name carries an earlier domain: then
 * `login` in *out is the name to use now. -EINVAL (err) for a malformed
 * device. */
int directory_login(store_t *store, const char *login, const char *password, const json_t *device,
                    directory_login_t *out, problem_t *err);
void directory_login_clear(directory_login_t *l);

/* The answer of every client login (password, automatic): {"token",
 * "login", "expires_at": RFC 3339, "expires": unix seconds}. "expires" is
 * the old spelling, kept for one release (the admin login's "expires" is
 * RFC 3339; "expires_at" is the one name both share). New reference. */
json_t *directory_login_reply(const char *token, const char *login, int64_t expires);

/* Integrated Windows login (issue 7): a desktop token for the user `name`
 * (the local part), whom the caller has authenticated by Kerberos and found
 * with directory_find_by_windows_account. No password; unaffected by domain
 * changes. -EACCES (err->detail) for a disabled or vanished user. */
int directory_login_windows(store_t *store, const char *name, directory_login_t *out,
                            problem_t *err);

/* The user behind a client token, as a user document with "device" (null or
 * {"id", "platform", "login"}). -EACCES for an unknown or expired token or a
 * disabled user; -ESTALE for a mobile device's token from before a domain
 * change (err->detail says to set up the login again with the new name). */
int directory_token_user(store_t *store, const char *token, json_t **user, problem_t *err);

/* Frees what the module keeps (the timing-equaliser hash). */
void directory_shutdown(void);

/* ---- who is told of a change -------------------------------------------------------------- */

/* What happened to a user, after it is committed: the holders of the user's
 * sessions (client connections, push registrations) act on it. */
typedef enum directory_event {
  DIRECTORY_USER_DISABLED,
  DIRECTORY_USER_DELETED,
  DIRECTORY_USER_RENAMED, /* name is the old name */
  DIRECTORY_USER_PASSWORD,
  DIRECTORY_USER_SIGNED_OUT, /* every token revoked */
} directory_event_t;

/* name: the user's name (the local part) before the change. Called on the
 * thread that made the change; keep it short. */
typedef void (*directory_listener_fn)(directory_event_t ev, const char *name, void *ctx);
/* Register in a module's init. 0 or -ENOSPC. */
int directory_listen(directory_listener_fn fn, void *ctx);
void directory_listeners_clear(void);

/* ---- the module ---------------------------------------------------------------------------- */

extern const atrium_module_t directory_module;

/* Replies for a directory failure: r a negative errno, err (may be NULL)
 * what the directory said (cleared here), `what` names the thing for
 * messages ("user", "login"). */
enum MHD_Result directory_reply_error(http_request_t *req, int r, problem_t *err,
                                      const char *what);
/* The user behind the request's client token ("Authorization: Bearer"): 0
 * and *user (a user document with "device", as directory_token_user gives),
 * or a negative code after the 401/503 reply was queued in *reply. */
int directory_client_user(http_request_t *req, json_t **user, enum MHD_Result *reply);
/* The same for a token the caller has (a WebSocket's query or header). */
int directory_client_user_token(http_request_t *req, const char *token, json_t **user,
                                enum MHD_Result *reply);
enum MHD_Result directory_client_logout(http_request_t *req);
/* POST /client/v1/login, also the UM settings page's login. */
enum MHD_Result directory_client_login(http_request_t *req);
