/* Several admin accounts: /api/v1/admins (list, add, enable/disable, set
 * another admin's password, remove), /api/v1/session/password (change one's
 * own), and the recovery on the host (atriumd --reset-admin-password).
 *
 * Two rules hold in every path: the last enabled account can be neither
 * disabled nor removed (checked inside the transaction that would break
 * it), and an account whose password changes, or that is disabled or
 * removed, loses its sessions (except, for one's own change, the session
 * that made it). Every change is a row of the audit log. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/log.h"
#include "core/secret.h"
#include "http/auth.h"
#include "mod/admin/admin.h"
#include "mod/admin/internal.h"

#define ADMIN_NAME_MAX 64
#define ADMIN_PASSWORD_MAX 1024

/* ---- rules ------------------------------------------------------------------------------ */

/* NULL when the name is acceptable, else the sentence saying why not. */
static const char *name_problem(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0) return "name is required: the account's login name.";
  if (n > ADMIN_NAME_MAX) return "name must be at most 64 characters.";
  if (!isalnum((unsigned char)name[0]))
    return "name must start with a letter or a digit (a-z, A-Z, 0-9).";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (!(isalnum(c) || c == '.' || c == '-' || c == '_'))
      return "name may hold only letters a-z, A-Z, digits, '.', '-' and '_'.";
  }
  return NULL;
}

static const char *password_problem(const char *password, const char *name) {
  size_t n = password ? strlen(password) : 0;
  if (n < AUTH_PASSWORD_MIN) return "must be at least 8 characters.";
  if (n > ADMIN_PASSWORD_MAX) return "must be at most 1024 bytes.";
  if (name && strcmp(password, name) == 0) return "must not be the account's name.";
  return NULL;
}

static void hash_free(char *hash) {
  if (!hash) return;
  sodium_memzero(hash, strlen(hash));
  free(hash);
}

/* ---- transactions ------------------------------------------------------------------------- */

typedef struct change {
  const char *name;    /* the account changed */
  const char *actor;   /* who changes it */
  const char *address; /* from where, NULL on the host */
  const char *hash;    /* new password hash, or NULL */
  int enabled;         /* -1: unchanged, else 0/1 */
  bool create, remove;
  bool created; /* the reset created the account */
  bool reset;   /* the host's recovery: create if missing, enable, end sessions */
} change_t;

static int audit(store_txn_t *t, const change_t *c, const char *action, const char *old_text,
                 const char *new_text) {
  store_audit_entry_t e = {.action = action,
                           .actor = c->actor,
                           .key = c->name,
                           .old_text = old_text,
                           .new_text = new_text,
                           .address = c->address};
  return store_audit_record(t, &e);
}

/* -EBUSY: the change would leave no enabled account. */
static int txn_change(store_txn_t *t, void *vctx) {
  change_t *c = vctx;
  c->created = false;
  store_admin_t a;
  int r;
  if (c->create) {
    if ((r = store_admin_create(t, c->name, c->hash)) < 0) return r;
    if (c->enabled == 0 && (r = store_admin_set_enabled(t, c->name, false)) < 0) return r;
    return audit(t, c, "admin.add", NULL, c->enabled == 0 ? "disabled" : "enabled");
  }
  r = store_admin_get(t, c->name, &a);
  if (r == -ENOENT && c->reset) {
    if ((r = store_admin_create(t, c->name, c->hash)) < 0) return r;
    c->created = true;
    return audit(t, c, "admin.reset_password", NULL, "created with a new password");
  }
  if (r < 0) return r;
  if (c->reset) {
    if ((r = store_admin_set_password(t, c->name, c->hash)) < 0) return r;
    if (!a.enabled && (r = store_admin_set_enabled(t, c->name, true)) < 0) return r;
    if ((r = store_session_delete_admin(t, c->name, NULL, NULL)) < 0) return r;
    return audit(t, c, "admin.reset_password", a.enabled ? "enabled" : "disabled",
                 "enabled, new password, every session ended");
  }
  bool disabling = c->remove ? a.enabled : c->enabled == 0 && a.enabled;
  if (disabling) {
    int64_t enabled = 0;
    if ((r = store_admin_count_enabled(t, &enabled)) < 0) return r;
    if (enabled <= 1) return -EBUSY;
  }
  if (c->remove) {
    if ((r = store_admin_delete(t, c->name)) < 0) return r;
    return audit(t, c, "admin.remove", a.enabled ? "enabled" : "disabled", NULL);
  }
  if (c->enabled >= 0 && (bool)c->enabled != a.enabled) {
    if ((r = store_admin_set_enabled(t, c->name, c->enabled)) < 0) return r;
    if ((r = audit(t, c, c->enabled ? "admin.enable" : "admin.disable",
                   a.enabled ? "enabled" : "disabled", c->enabled ? "enabled" : "disabled")) < 0)
      return r;
  }
  if (c->hash) {
    if ((r = store_admin_set_password(t, c->name, c->hash)) < 0) return r;
    /* The hash is never logged: that it changed is the news. */
    if ((r = audit(t, c, "admin.password", NULL, "changed")) < 0) return r;
  }
  return 0;
}

static int run_change(store_t *store, change_t *c) {
  return store_run_txn(store, "change an admin account", txn_change, c);
}

int admin_reset_password(store_t *store, const char *name, const char *password, bool *created,
                         char *err, size_t errlen) {
  if (created) *created = false;
  const char *why = name_problem(name);
  if (why) {
    snprintf(err, errlen, "The account name \"%.64s\" is not valid: %s", name ? name : "", why);
    return -EINVAL;
  }
  if ((why = password_problem(password, name))) {
    snprintf(err, errlen, "The new password %s", why);
    return -EINVAL;
  }
  char *hash = NULL;
  if (secret_password_hash(password, &hash) != 0) {
    snprintf(err, errlen, "The password could not be hashed (out of memory?).");
    return -ENOMEM;
  }
  change_t c = {.name = name,
                .actor = "atriumd --reset-admin-password",
                .hash = hash,
                .enabled = 1,
                .reset = true};
  int r = run_change(store, &c);
  hash_free(hash);
  if (r < 0) {
    snprintf(err, errlen, "The account \"%s\" could not be reset in the store: %s", name,
             store_last_error(store));
    return r;
  }
  if (created) *created = c.created;
  return 0;
}

/* ---- the API -------------------------------------------------------------------------------- */

static void add_admin(const store_admin_t *a, void *ctx) {
  json_t *o =
      json_pack("{s:s, s:b, s:s, s:o, s:I}", "name", a->name, "enabled", a->enabled, "created_at",
                a->created_at, "password_changed_at",
                a->password_changed_at[0] ? json_string(a->password_changed_at) : json_null(),
                "sessions", (json_int_t)auth_session_count(a->name));
  if (o) json_array_append_new(ctx, o);
}

static json_t *admin_json(const store_admin_t *a) {
  json_t *list = json_array();
  if (!list) return NULL;
  add_admin(a, list);
  json_t *o = json_incref(json_array_get(list, 0));
  json_decref(list);
  return o;
}

static enum MHD_Result reply_store_error(http_request_t *req, int r, const char *name) {
  char text[300];
  switch (r) {
  case -ENOENT:
    snprintf(text, sizeof text,
             "There is no admin account \"%.64s\"; GET /api/v1/admins (atriumctl admin list) "
             "lists them.",
             name);
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "No such admin account", text,
                              NULL);
  case -EEXIST:
    snprintf(text, sizeof text, "An admin account \"%.64s\" exists already; choose another name.",
             name);
    return http_reply_problem(req, MHD_HTTP_CONFLICT, "conflict", "Name taken", text, NULL);
  case -EBUSY:
    return http_reply_problem(
        req, MHD_HTTP_CONFLICT, "last-admin", "The last enabled admin account",
        "This is the only enabled admin account: it can be neither disabled nor removed. Add or "
        "enable another admin account first.",
        NULL);
  case -ENOMEM: return http_reply_oom(req);
  default:
    log_err("admin accounts: store failure: %s", store_last_error(http_store(req)));
    return http_reply_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "store", "Store failure",
                              "The admin account could not be changed; nothing was changed. See "
                              "the server log.",
                              NULL);
  }
}

static enum MHD_Result reply_invalid(http_request_t *req, json_t *errors) {
  enum MHD_Result r =
      http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation", "Invalid input",
                         "Correct the fields named below; nothing was changed.", errors);
  json_decref(errors);
  return r;
}

static void add_error(json_t *errors, const char *key, const char *message) {
  json_array_append_new(errors, json_pack("{s:s, s:s}", "key", key, "message", message));
}

/* A string member, NULL when absent; a member of another type is an error. */
static const char *string_member(const json_t *body, const char *key, json_t *errors) {
  const json_t *v = json_object_get(body, key);
  if (!v) return NULL;
  if (json_is_string(v)) return json_string_value(v);
  char msg[128];
  snprintf(msg, sizeof msg, "%s must be a string.", key);
  add_error(errors, key, msg);
  return NULL;
}

static int bool_member(const json_t *body, const char *key, json_t *errors) {
  const json_t *v = json_object_get(body, key);
  if (!v) return -1;
  if (json_is_boolean(v)) return json_is_true(v);
  char msg[128];
  snprintf(msg, sizeof msg, "%s must be true or false.", key);
  add_error(errors, key, msg);
  return -1;
}

/* Refuses members the route does not know, so that a typo is not silently
 * ignored. */
static void unknown_members(const json_t *body, const char *const *known, json_t *errors) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)body, k, v) {
    bool ok = false;
    for (size_t i = 0; known[i] && !ok; i++) ok = strcmp(k, known[i]) == 0;
    if (ok) continue;
    char msg[200];
    snprintf(msg, sizeof msg, "%.64s is not a field of this request.", k);
    add_error(errors, k, msg);
  }
}

/* The {name} of /api/v1/admins/{name} (cut after ADMIN_NAME_MAX + 1 bytes:
 * too long to exist either way). */
static const char *path_name(http_request_t *req, char name[ADMIN_NAME_MAX + 2]) {
  const char *s = strstr(http_path(req), "/admins/");
  name[0] = '\0';
  if (!s) return name;
  s += strlen("/admins/");
  size_t n = strcspn(s, "/");
  if (n > ADMIN_NAME_MAX + 1) n = ADMIN_NAME_MAX + 1;
  memcpy(name, s, n);
  name[n] = '\0';
  return name;
}

static int read_admin(store_t *store, const char *name, store_admin_t *a) {
  store_txn_t *t;
  int r = store_read_begin(store, "read an admin account", &t);
  if (r < 0) return r;
  r = store_admin_get(t, name, a);
  store_read_end(t);
  return r;
}

static void collect(const store_admin_t *a, void *ctx) { add_admin(a, ctx); }

enum MHD_Result admin_accounts_list(http_request_t *req) {
  json_t *list = json_array();
  if (!list) return http_reply_oom(req);
  store_txn_t *t;
  int r = store_read_begin(http_store(req), "list admin accounts", &t);
  if (r == 0) {
    r = store_admin_list(t, collect, list);
    store_read_end(t);
  }
  if (r < 0) {
    json_decref(list);
    return reply_store_error(req, r, "");
  }
  return http_reply_json(req, MHD_HTTP_OK, json_pack("{s:o}", "admins", list));
}

enum MHD_Result admin_accounts_create(http_request_t *req) {
  const json_t *body = http_body_json(req);
  json_t *errors = json_array();
  if (!errors) return http_reply_oom(req);
  static const char *const known[] = {"name", "password", "enabled", NULL};
  unknown_members(body, known, errors);
  const char *name = string_member(body, "name", errors);
  const char *password = string_member(body, "password", errors);
  int enabled = bool_member(body, "enabled", errors);
  const char *why;
  if (json_array_size(errors) == 0 && (why = name_problem(name))) add_error(errors, "name", why);
  if (json_array_size(errors) == 0 && !password)
    add_error(errors, "password", "password is required: the new account's first password.");
  else if (json_array_size(errors) == 0 && (why = password_problem(password, name))) {
    char msg[128];
    snprintf(msg, sizeof msg, "password %s", why);
    add_error(errors, "password", msg);
  }
  if (json_array_size(errors) > 0) return reply_invalid(req, errors);
  json_decref(errors);

  char *hash = NULL;
  if (secret_password_hash(password, &hash) != 0) return http_reply_oom(req);
  const char *actor = http_identity(req)->admin;
  change_t c = {.name = name,
                .actor = actor,
                .address = http_client_address(req),
                .hash = hash,
                .enabled = enabled,
                .create = true};
  int r = run_change(http_store(req), &c);
  hash_free(hash);
  if (r < 0) return reply_store_error(req, r, name);
  log_notice("admin \"%s\" added the admin account \"%s\"", actor, name);
  store_admin_t a;
  if ((r = read_admin(http_store(req), name, &a)) < 0) return reply_store_error(req, r, name);
  char location[128];
  snprintf(location, sizeof location, "/api/v1/admins/%s", name);
  http_add_header(req, MHD_HTTP_HEADER_LOCATION, location);
  return http_reply_json(req, MHD_HTTP_CREATED, admin_json(&a));
}

enum MHD_Result admin_accounts_get(http_request_t *req) {
  char name_buf[ADMIN_NAME_MAX + 2];
  const char *name = path_name(req, name_buf);
  store_admin_t a;
  int r = read_admin(http_store(req), name, &a);
  if (r < 0) return reply_store_error(req, r, name);
  return http_reply_json(req, MHD_HTTP_OK, admin_json(&a));
}

static enum MHD_Result refuse_self(http_request_t *req, const char *what) {
  char text[300];
  snprintf(text, sizeof text,
           "You cannot %s the account you are logged in with; log in as another admin to do "
           "that.",
           what);
  return http_reply_problem(req, MHD_HTTP_CONFLICT, "own-account", "Your own account", text, NULL);
}

enum MHD_Result admin_accounts_patch(http_request_t *req) {
  char name_buf[ADMIN_NAME_MAX + 2];
  const char *name = path_name(req, name_buf);
  const json_t *body = http_body_json(req);
  const char *actor = http_identity(req)->admin;
  json_t *errors = json_array();
  if (!errors) return http_reply_oom(req);
  static const char *const known[] = {"enabled", "password", NULL};
  unknown_members(body, known, errors);
  int enabled = bool_member(body, "enabled", errors);
  const char *password = string_member(body, "password", errors);
  const char *why;
  if (password && (why = password_problem(password, name))) {
    char msg[128];
    snprintf(msg, sizeof msg, "password %s", why);
    add_error(errors, "password", msg);
  }
  if (json_array_size(errors) == 0 && enabled < 0 && !password)
    add_error(errors, "enabled",
              "Say what to change: \"enabled\" (true or false) or \"password\".");
  if (json_array_size(errors) > 0) return reply_invalid(req, errors);
  json_decref(errors);
  bool self = strcmp(name, actor) == 0;
  if (self && enabled == 0) return refuse_self(req, "disable");
  if (self && password) {
    return http_reply_problem(req, MHD_HTTP_CONFLICT, "own-account", "Your own password",
                              "Change your own password with POST /api/v1/session/password "
                              "(atriumctl admin password): it asks for the current one.",
                              NULL);
  }

  char *hash = NULL;
  if (password && secret_password_hash(password, &hash) != 0) return http_reply_oom(req);
  change_t c = {.name = name,
                .actor = actor,
                .address = http_client_address(req),
                .hash = hash,
                .enabled = enabled};
  int r = run_change(http_store(req), &c);
  hash_free(hash);
  if (r < 0) return reply_store_error(req, r, name);
  int64_t ended = 0;
  if (enabled == 0 || password) {
    r = auth_end_sessions(name, NULL, &ended);
    if (r < 0) log_err("the sessions of \"%s\" could not be ended in the store", name);
  }
  log_notice("admin \"%s\" changed the admin account \"%s\"%s%s", actor, name,
             enabled < 0 ? ""
             : enabled   ? " (enabled)"
                         : " (disabled)",
             password ? " (new password)" : "");
  store_admin_t a;
  if ((r = read_admin(http_store(req), name, &a)) < 0) return reply_store_error(req, r, name);
  json_t *doc = admin_json(&a);
  if (doc) json_object_set_new(doc, "ended_sessions", json_integer((json_int_t)ended));
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

enum MHD_Result admin_accounts_delete(http_request_t *req) {
  char name_buf[ADMIN_NAME_MAX + 2];
  const char *name = path_name(req, name_buf);
  const char *actor = http_identity(req)->admin;
  if (strcmp(name, actor) == 0) return refuse_self(req, "remove");
  change_t c = {.name = name,
                .actor = actor,
                .address = http_client_address(req),
                .enabled = -1,
                .remove = true};
  int r = run_change(http_store(req), &c);
  if (r < 0) return reply_store_error(req, r, name);
  /* The store's sessions went with the account; the memory's go now. */
  (void)auth_end_sessions(name, NULL, NULL);
  log_notice("admin \"%s\" removed the admin account \"%s\"", actor, name);
  return http_reply_buffer(req, MHD_HTTP_NO_CONTENT, NULL, "", 0, NULL, NULL);
}

enum MHD_Result admin_accounts_own_password(http_request_t *req) {
  const json_t *body = http_body_json(req);
  const auth_identity_t *who = http_identity(req);
  json_t *errors = json_array();
  if (!errors) return http_reply_oom(req);
  static const char *const known[] = {"current_password", "new_password", NULL};
  unknown_members(body, known, errors);
  const char *current = string_member(body, "current_password", errors);
  const char *next = string_member(body, "new_password", errors);
  const char *why;
  if (!current || !current[0])
    add_error(errors, "current_password",
              "current_password is required: your password now, to show it is you.");
  if (!next)
    add_error(errors, "new_password", "new_password is required.");
  else if ((why = password_problem(next, who->admin))) {
    char msg[128];
    snprintf(msg, sizeof msg, "new_password %s", why);
    add_error(errors, "new_password", msg);
  }
  if (json_array_size(errors) == 0 && strcmp(current, next) == 0)
    add_error(errors, "new_password", "new_password must differ from the current password.");
  if (json_array_size(errors) > 0) return reply_invalid(req, errors);

  store_t *store = http_store(req);
  char *hash = NULL;
  store_txn_t *t;
  int r = store_read_begin(store, "check an admin's password", &t);
  if (r == 0) {
    r = store_admin_get_hash(t, who->admin, &hash);
    store_read_end(t);
  }
  int verdict = r == 0 ? secret_password_verify(hash, current) : r;
  hash_free(hash);
  hash = NULL;
  if (verdict == -EACCES) {
    add_error(errors, "current_password", "This is not your current password.");
    store_audit_entry_t e = {.action = "admin.password_failed",
                             .actor = who->admin,
                             .key = who->admin,
                             .address = http_client_address(req),
                             .new_text = "wrong current password"};
    (void)admin_audit_record(store, &e);
    return reply_invalid(req, errors);
  }
  json_decref(errors);
  if (verdict < 0) return reply_store_error(req, verdict, who->admin);

  if (secret_password_hash(next, &hash) != 0) return http_reply_oom(req);
  change_t c = {.name = who->admin,
                .actor = who->admin,
                .address = http_client_address(req),
                .hash = hash,
                .enabled = -1};
  r = run_change(store, &c);
  hash_free(hash);
  if (r < 0) return reply_store_error(req, r, who->admin);
  int64_t ended = 0;
  if (auth_end_sessions(who->admin, http_token(req), &ended) < 0)
    log_err("the other sessions of \"%s\" could not be ended in the store", who->admin);
  log_notice("admin \"%s\" changed their password; %lld other session(s) ended", who->admin,
             (long long)ended);
  return http_reply_json(
      req, MHD_HTTP_OK,
      json_pack("{s:s, s:I}", "user", who->admin, "ended_sessions", (json_int_t)ended));
}
