/* The directory: see directory.h. */
#include "mod/directory/directory.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/secret.h"
#include "core/timefmt.h"

#define IMPORT_ROWS_MAX 1000000
#define CSV_FIELD_MAX 4096
#define CSV_COLUMNS_MAX 16
#define ROW_FIELDS 5

/* ---- small helpers ---------------------------------------------------------------- */

static bool is_lower(int c) { return c >= 'a' && c <= 'z'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_control(int c) { return (c >= 0 && c < 0x20) || c == 0x7f; }
static char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static void lower_ascii(char *s) {
  for (; *s; s++) *s = to_lower(*s);
}

static int64_t now_seconds(void) { return (int64_t)time(NULL); }

static void set_detail(problem_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_detail(problem_t *e, const char *fmt, ...) {
  if (!e) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->detail, sizeof e->detail, fmt, ap);
  va_end(ap);
}

/* row and line are 0 when they do not apply. */
static void add_error(problem_t *e, const char *key, size_t row, size_t line,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_error(problem_t *e, const char *key, size_t row, size_t line,
                      const char *fmt, ...) {
  if (!e) return;
  if (!e->errors && !(e->errors = json_array())) return;
  if (json_array_size(e->errors) >= DIRECTORY_IMPORT_ERRORS_MAX) return; /* enough to fix first */
  char msg[VALIDATE_MESSAGE_MAX + 128];
  size_t n = 0;
  if (row && line)
    n = (size_t)snprintf(msg, sizeof msg, "Row %zu (line %zu): ", row, line);
  else if (row)
    n = (size_t)snprintf(msg, sizeof msg, "Row %zu: ", row);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + n, sizeof msg - n, fmt, ap);
  va_end(ap);
  json_t *o = json_pack("{s:s, s:s}", "key", key, "message", msg);
  if (!o) {
    /* Input quoted in the message may not be UTF-8: show it as '?'. */
    char k[64];
    snprintf(k, sizeof k, "%s", key);
    for (char *p = k; *p; p++)
      if ((unsigned char)*p >= 0x80) *p = '?';
    for (char *p = msg; *p; p++)
      if ((unsigned char)*p >= 0x80) *p = '?';
    if (!(o = json_pack("{s:s, s:s}", "key", k, "message", msg))) return;
  }
  if (row) json_object_set_new(o, "row", json_integer((json_int_t)row));
  if (line) json_object_set_new(o, "line", json_integer((json_int_t)line));
  json_array_append_new(e->errors, o);
}

static size_t error_count(const problem_t *e) {
  return e && e->errors ? json_array_size(e->errors) : 0;
}

/* ---- validation -------------------------------------------------------------------- */

int directory_validate_name(const char *in, validate_error_t *err) {
  size_t n = in ? strlen(in) : 0;
  if (n == 0) return validate_fail(err, "Is required: the user's name, the part before the @.");
  if (n > DIRECTORY_NAME_MAX)
    return validate_fail(err, "Is %zu characters long; at most %d are allowed.", n,
                         DIRECTORY_NAME_MAX);
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c >= 'A' && c <= 'Z')
      return validate_fail(err, "Must be lower case (\"%c\" at position %zu); login names are "
                                "lower case.", c, i + 1);
    if (!is_lower(c) && !is_digit(c) && c != '.' && c != '_' && c != '-')
      return validate_fail(err, "May contain only lower-case letters a-z, digits, '.', '_' and "
                                "'-'; the character at position %zu is not allowed.", i + 1);
    if (c == '.' && i + 1 < n && in[i + 1] == '.')
      return validate_fail(err, "May not contain two dots in a row.");
  }
  if (in[0] == '.' || in[0] == '-' || in[n - 1] == '.' || in[n - 1] == '-')
    return validate_fail(err, "May not start or end with '.' or '-'.");
  return 0;
}

/* Characters Active Directory refuses in account names. */
static bool windows_char_ok(char c) {
  return !is_control((unsigned char)c) && !strchr("\"/\\[]:;|=,+*?<>@", c);
}

int directory_validate_windows_account(const char *in, char **out, validate_error_t *err) {
  *out = NULL;
  size_t n = in ? strlen(in) : 0;
  if (n == 0 || n > DIRECTORY_WINDOWS_ACCOUNT_MAX)
    return validate_fail(err, "Must be DOMAIN\\account or a user principal name "
                              "(account@dns.domain), at most %d characters.",
                         DIRECTORY_WINDOWS_ACCOUNT_MAX);
  const char *bs = strchr(in, '\\'), *at = strchr(in, '@');
  if (bs && !at) {
    size_t dl = (size_t)(bs - in), sl = n - dl - 1;
    if (dl < 1 || dl > 15)
      return validate_fail(err, "The domain before the backslash must be a NetBIOS domain name "
                                "of 1 to 15 characters (DOMAIN\\account).");
    if (sl < 1 || sl > 20)
      return validate_fail(err, "The account after the backslash must be 1 to 20 characters "
                                "(the sAMAccountName).");
    for (size_t i = 0; i < n; i++)
      if (i != dl && (!windows_char_ok(in[i]) || in[i] == ' '))
        return validate_fail(err, "Contains a character Windows does not allow in account "
                                  "names (position %zu).", i + 1);
    return (*out = strdup(in)) ? 0 : -ENOMEM;
  }
  if (at && !bs && strchr(at + 1, '@') == NULL) {
    size_t ll = (size_t)(at - in);
    if (ll < 1 || ll > 64)
      return validate_fail(err, "The part before the @ of a user principal name must be 1 to 64 "
                                "characters.");
    for (size_t i = 0; i < ll; i++)
      if (!windows_char_ok(in[i]) || in[i] == ' ')
        return validate_fail(err, "Contains a character Windows does not allow in account "
                                  "names (position %zu).", i + 1);
    char *host = NULL;
    validate_error_t herr;
    if (validate_host(at + 1, HOST_TWO_LABELS, &host, &herr) != 0)
      return validate_fail(err, "The domain of the user principal name is not valid: %s",
                           herr.message);
    size_t len = ll + 1 + strlen(host) + 1;
    *out = malloc(len);
    if (!*out) {
      free(host);
      return -ENOMEM;
    }
    snprintf(*out, len, "%.*s@%s", (int)ll, in, host);
    free(host);
    return 0;
  }
  return validate_fail(err, "Must be DOMAIN\\account (for example CORP\\alice) or a user "
                            "principal name (alice@corp.example.com).");
}

int directory_validate_remote(const char *in, char **out, validate_error_t *err) {
  *out = NULL;
  size_t n = in ? strlen(in) : 0;
  const char *at = in ? strrchr(in, '@') : NULL;
  if (n == 0 || n > DIRECTORY_REMOTE_MAX || !at || at == in)
    return validate_fail(err, "Must be a federation address user@domain (for example "
                              "bob@partner.example.com).");
  size_t ll = (size_t)(at - in);
  if (ll > 64) return validate_fail(err, "The part before the @ is longer than 64 characters.");
  for (size_t i = 0; i < ll; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c <= 0x20 || c >= 0x7f || strchr("@<>\"'", c))
      return validate_fail(err, "The part before the @ contains a character that is not "
                                "allowed (position %zu).", i + 1);
  }
  char *host = NULL;
  validate_error_t herr;
  if (validate_host(at + 1, HOST_TWO_LABELS, &host, &herr) != 0)
    return validate_fail(err, "The domain after the @ is not valid: %s", herr.message);
  size_t len = ll + 1 + strlen(host) + 1;
  *out = malloc(len);
  if (!*out) {
    free(host);
    return -ENOMEM;
  }
  snprintf(*out, len, "%.*s@%s", (int)ll, in, host);
  lower_ascii(*out);
  free(host);
  return 0;
}

/* Printable UTF-8 text of at most max bytes (display names). */
static int validate_text(const char *in, size_t len, size_t max, validate_error_t *err) {
  if (len > max) return validate_fail(err, "Is longer than %zu bytes.", max);
  for (size_t i = 0; i < len; i++)
    if (is_control((unsigned char)in[i]))
      return validate_fail(err, "Contains a control character (position %zu).", i + 1);
  json_t *probe = json_stringn(in, len); /* jansson checks UTF-8 */
  if (!probe) return validate_fail(err, "Is not valid UTF-8 text.");
  json_decref(probe);
  return 0;
}

static int validate_password(const char *in, size_t len, validate_error_t *err) {
  if (strlen(in) != len) return validate_fail(err, "May not contain a NUL character.");
  if (len < DIRECTORY_PASSWORD_MIN || len > DIRECTORY_PASSWORD_MAX)
    return validate_fail(err, "Must be %d to %d characters long.", DIRECTORY_PASSWORD_MIN,
                         DIRECTORY_PASSWORD_MAX);
  return 0;
}

/* "true"/"false" and the usual spreadsheet spellings. */
static int parse_bool_text(const char *s, bool *out) {
  static const char *const yes[] = {"true", "1", "yes", "y", "on"};
  static const char *const no[] = {"false", "0", "no", "n", "off"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp(s, yes[i]) == 0) return (*out = true), 0;
    if (strcasecmp(s, no[i]) == 0) return (*out = false), 0;
  }
  return -EINVAL;
}

/* ---- store helpers ------------------------------------------------------------------- */



/* ---- the domain generation ------------------------------------------------------------ */

int directory_domain_current(store_txn_t *t, int64_t *generation, char **name) {
  char buf[256];
  *generation = 0;
  if (name) *name = NULL;
  int r = store_domain_current(t, generation, buf, sizeof buf);
  if (r == 0 && name && !(*name = strdup(buf))) r = -ENOMEM;
  return r;
}

typedef struct sync_ctx {
  const char *domain, *actor;
  bool changed;
} sync_ctx_t;

static int sync_txn(store_txn_t *t, void *vctx) {
  sync_ctx_t *c = vctx;
  c->changed = false;
  int64_t gen = 0;
  char name[256];
  int r = store_domain_current(t, &gen, name, sizeof name);
  if (r == -ENOENT) return store_domain_add(t, 1, c->domain, c->actor);
  if (r < 0 || strcmp(name, c->domain) == 0) return r;
  r = store_domain_add(t, gen + 1, c->domain, c->actor);
  c->changed = r == 0;
  return r;
}

int directory_sync_domain(store_t *store, const char *domain, const char *actor, bool *changed) {
  sync_ctx_t c = {.domain = domain, .actor = actor};
  int r = store_run_txn(store, "record the domain", sync_txn, &c);
  *changed = r == 0 && c.changed;
  return r;
}

void directory_domain_counts_clear(directory_domain_counts_t *c) {
  if (!c) return;
  json_decref(c->samples);
  c->samples = NULL;
}

typedef struct samples_ctx {
  json_t *list;
  const char *old_domain, *new_domain;
  int error;
} samples_ctx_t;

static void add_sample(const char *name, void *vctx) {
  samples_ctx_t *c = vctx;
  char a[400], b[400];
  snprintf(a, sizeof a, "%s@%s", name ? name : "", c->old_domain);
  snprintf(b, sizeof b, "%s@%s", name ? name : "", c->new_domain);
  if (json_array_append_new(c->list, json_pack("{s:s, s:s}", "old", a, "new", b)) < 0)
    c->error = -ENOMEM;
}

int directory_domain_count(store_txn_t *t, const char *new_domain, size_t samples,
                           directory_domain_counts_t *out) {
  memset(out, 0, sizeof *out);
  int r = store_domain_current(t, &out->generation, out->old_domain, sizeof out->old_domain);
  if (r < 0) return r;
  store_domain_counts_t n;
  if ((r = store_domain_counts(t, out->generation, &n)) < 0) return r;
  out->users = n.users;
  out->mobile_devices = n.mobile_devices;
  out->subscriptions = n.subscriptions;
  if (!(out->samples = json_array())) return -ENOMEM;
  samples_ctx_t c = {.list = out->samples, .old_domain = out->old_domain,
                     .new_domain = new_domain};
  r = store_user_names(t, (int64_t)samples, add_sample, &c);
  return r < 0 ? r : c.error;
}

int directory_domain_advance(store_txn_t *t, int64_t expected, const char *new_domain,
                             const char *actor) {
  int64_t gen;
  char name[256];
  int r = store_domain_current(t, &gen, name, sizeof name);
  if (r < 0) return r;
  if (gen != expected) return -ESTALE;
  return store_domain_add(t, gen + 1, new_domain, actor);
}

/* ---- users ------------------------------------------------------------------------------ */

static json_t *opt_string(bool has, const char *s) { return has ? json_string(s) : json_null(); }

/* A user document for the API. */
static json_t *user_doc(const store_user_t *u, const char *domain) {
  char addr[400];
  snprintf(addr, sizeof addr, "%s@%s", u->name, domain);
  return json_pack("{s:s, s:o, s:o, s:b, s:b, s:s, s:s, s:s, s:s, s:o}", "name", u->name,
                   "display_name", opt_string(u->has_display_name, u->display_name),
                   "windows_account", opt_string(u->has_windows_account, u->windows_account),
                   "enabled", u->enabled, "has_password", u->has_password, "login", addr,
                   "im_address", addr, "created_at", u->created_at, "updated_at",
                   u->updated_at, "picture", opt_string(u->picture[0] != '\0', u->picture));
}

/* The local part for a user reference: "alice", or "alice@<current domain>". */
static int resolve_name(const char *ref, const char *domain, char *out, size_t outlen) {
  const char *at = strrchr(ref, '@');
  size_t n = at ? (size_t)(at - ref) : strlen(ref);
  if (at && strcasecmp(at + 1, domain) != 0) return -ENOENT;
  if (n == 0 || n >= outlen) return -ENOENT;
  memcpy(out, ref, n);
  out[n] = '\0';
  lower_ascii(out);
  return 0;
}

/* The local part of a user reference under the current domain. */
static int current_local_name(store_txn_t *t, const char *ref, char *out, size_t outlen,
                              char *domain, size_t domainlen) {
  int64_t gen;
  int r = store_domain_current(t, &gen, domain, domainlen);
  return r < 0 ? r : resolve_name(ref, domain, out, outlen);
}

static int get_user_in(store_txn_t *t, const char *ref, json_t **user) {
  char name[DIRECTORY_NAME_MAX + 1], domain[256];
  int r = current_local_name(t, ref, name, sizeof name, domain, sizeof domain);
  store_user_t u;
  if (r == 0) r = store_user_get(t, name, &u);
  if (r == 0 && !(*user = user_doc(&u, domain))) r = -ENOMEM;
  return r;
}

int directory_user_get(store_t *store, const char *name, json_t **user) {
  *user = NULL;
  store_txn_t *t;
  int r = store_read_begin(store, "read a user", &t);
  if (r < 0) return r;
  r = get_user_in(t, name, user);
  store_read_end(t);
  return r;
}

typedef struct clients_ctx {
  json_t *devices, *sessions;
  int64_t generation;
  int error;
} clients_ctx_t;

static void append(clients_ctx_t *c, json_t *a, json_t *item) {
  if (!item || json_array_append_new(a, item) < 0) c->error = -ENOMEM;
}

static void on_client_device(const store_client_device_t *d, void *vctx) {
  clients_ctx_t *c = vctx;
  append(c, c->devices,
         json_pack("{s:s, s:s, s:s, s:b, s:b, s:s, s:s}", "id", d->device_id, "platform",
                   d->platform ? d->platform : "", "login", d->login ? d->login : "", "push",
                   d->has_push_token, "setup_again", d->generation != c->generation,
                   "created_at", d->created_at ? d->created_at : "", "updated_at",
                   d->updated_at ? d->updated_at : ""));
}

static void on_client_token(const store_client_token_t *k, void *vctx) {
  clients_ctx_t *c = vctx;
  char created[TIMEFMT_LEN], expires[TIMEFMT_LEN];
  time_rfc3339_ms(k->created * 1000, created);
  time_rfc3339_ms(k->expires * 1000, expires);
  /* The platform is the device's; a token outlives nothing else of it. */
  const char *platform = NULL;
  if (k->device_id) {
    size_t n = json_array_size(c->devices);
    for (size_t i = 0; i < n && !platform; i++) {
      json_t *d = json_array_get(c->devices, i);
      if (strcmp(json_string_value(json_object_get(d, "id")), k->device_id) == 0)
        platform = json_string_value(json_object_get(d, "platform"));
    }
  }
  /* A desktop token stays valid over a domain change; a device's does not. */
  bool stale = k->device_id && k->generation != c->generation;
  append(c, c->sessions,
         json_pack("{s:o, s:o, s:s, s:s, s:b}", "device",
                   k->device_id ? json_string(k->device_id) : json_null(), "platform",
                   platform ? json_string(platform) : json_string(k->device_id ? "" : "desktop"),
                   "created", created, "expires", expires, "setup_again", stale));
}

int directory_user_get_clients(store_t *store, const char *ref, json_t **user) {
  *user = NULL;
  store_txn_t *t;
  int r = store_read_begin(store, "read a user's clients", &t);
  if (r < 0) return r;
  char name[DIRECTORY_NAME_MAX + 1], domain[256];
  clients_ctx_t c = {.devices = json_array(), .sessions = json_array()};
  store_user_t u;
  r = store_domain_current(t, &c.generation, domain, sizeof domain);
  if (r == 0) r = resolve_name(ref, domain, name, sizeof name);
  if (r == 0) r = store_user_get(t, name, &u);
  if (r == 0 && (!c.devices || !c.sessions)) r = -ENOMEM;
  store_client_fns_t fns = {.device = on_client_device, .token = on_client_token, .ctx = &c};
  if (r == 0) r = store_user_clients(t, u.id, now_seconds(), &fns);
  if (r == 0) r = c.error;
  if (r == 0 && !(*user = user_doc(&u, domain))) r = -ENOMEM;
  store_read_end(t);
  if (r == 0) {
    json_object_set_new(*user, "devices", c.devices);
    json_object_set_new(*user, "sessions", c.sessions);
  } else {
    json_decref(c.devices);
    json_decref(c.sessions);
  }
  return r;
}

int directory_find_by_windows_account(store_t *store, const char *account, json_t **user) {
  *user = NULL;
  store_txn_t *t;
  int r = store_read_begin(store, "find a Windows account", &t);
  if (r < 0) return r;
  int64_t gen;
  char domain[256];
  store_user_t u;
  r = store_domain_current(t, &gen, domain, sizeof domain);
  if (r == 0) r = store_user_by_windows_account(t, account, &u);
  if (r == 0 && !(*user = user_doc(&u, domain))) r = -ENOMEM;
  store_read_end(t);
  return r;
}

/* Fields of a user as the API sends them, validated; strings malloc'd. */
typedef struct user_input {
  bool has_name, has_display, has_windows, has_password, has_enabled;
  char *name, *display, *windows, *password_hash;
  bool enabled;
} user_input_t;

static void user_input_clear(user_input_t *u) {
  free(u->name);
  free(u->display);
  free(u->windows);
  free(u->password_hash);
  memset(u, 0, sizeof *u);
}

/* Validates an API object; hashes the password. `create` requires a name and
 * refuses nulls for it. */
static int user_input_parse(const json_t *in, bool create, user_input_t *u, problem_t *err) {
  memset(u, 0, sizeof *u);
  if (!json_is_object(in)) {
    set_detail(err, "The request body must be a JSON object describing the user.");
    return -EINVAL;
  }
  const char *key;
  json_t *v;
  const char *password = NULL;
  json_object_foreach((json_t *)in, key, v) {
    validate_error_t verr;
    bool null_ok = !create || strcmp(key, "name") != 0;
    if (json_is_null(v) && strcmp(key, "name") != 0 && strcmp(key, "enabled") != 0) {
      /* null clears the field */
    } else if (strcmp(key, "enabled") == 0) {
      if (!json_is_boolean(v)) {
        add_error(err, key, 0, 0, "Must be true or false.");
        continue;
      }
    } else if (!json_is_string(v)) {
      add_error(err, key, 0, 0, "Must be a string%s.", null_ok ? " or null" : "");
      continue;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strcmp(key, "name") == 0) {
      u->has_name = true;
      if (strlen(s) != len || directory_validate_name(s, &verr) != 0)
        add_error(err, key, 0, 0, "%s", strlen(s) != len ? "May not contain NUL." : verr.message);
      else if (!(u->name = strdup(s)))
        return -ENOMEM;
    } else if (strcmp(key, "display_name") == 0) {
      u->has_display = true;
      if (s && validate_text(s, len, DIRECTORY_DISPLAY_NAME_MAX, &verr) != 0)
        add_error(err, key, 0, 0, "%s", verr.message);
      else if (s && !(u->display = strdup(s)))
        return -ENOMEM;
    } else if (strcmp(key, "windows_account") == 0) {
      u->has_windows = true;
      if (s && (strlen(s) != len || directory_validate_windows_account(s, &u->windows, &verr) != 0))
        add_error(err, key, 0, 0, "%s", strlen(s) != len ? "May not contain NUL." : verr.message);
    } else if (strcmp(key, "password") == 0) {
      u->has_password = true;
      if (s && validate_password(s, len, &verr) != 0)
        add_error(err, key, 0, 0, "%s", verr.message);
      password = s;
    } else if (strcmp(key, "enabled") == 0) {
      u->has_enabled = true;
      u->enabled = json_is_true(v);
    } else {
      add_error(err, key, 0, 0, "Is not a field of a user; use name, display_name, "
                                "windows_account, password or enabled.");
    }
  }
  if (create && !u->has_name) add_error(err, "name", 0, 0, "Is required.");
  if (error_count(err)) {
    set_detail(err, "%zu field(s) are invalid; nothing was changed.", error_count(err));
    return -EINVAL;
  }
  if (password) {
    int r = secret_password_hash(password, &u->password_hash);
    if (r < 0) {
      set_detail(err, "The password could not be hashed (out of memory?); try again.");
      return r;
    }
  }
  return 0;
}

/* What a validated API object writes. */
static store_user_write_t user_write_of(const user_input_t *u) {
  return (store_user_write_t){
      .set_name = u->has_name, .name = u->name,
      .set_display_name = u->has_display, .display_name = u->display,
      .set_windows_account = u->has_windows, .windows_account = u->windows,
      .set_password_hash = u->has_password, .password_hash = u->password_hash,
      .set_enabled = u->has_enabled, .enabled = u->enabled};
}

static void conflict_error(problem_t *err, const char *field, const char *name,
                           const char *windows, size_t row, size_t line) {
  if (field && strcmp(field, "windows_account") == 0)
    add_error(err, "windows_account", row, line,
              "The Windows account %s belongs to another user already%s.", windows ? windows : "",
              row ? " (or to an earlier row)" : "");
  else
    add_error(err, "name", row, line, "A user named %s exists already%s.", name ? name : "",
              row ? " (or an earlier row has the same name)" : "");
}

/* The audit row of a directory change, in the change's transaction. */
static int audit(store_txn_t *t, const directory_actor_t *by, const char *action,
                 const char *key, const char *old_text, const char *new_text) {
  if (!by) return 0;
  store_audit_entry_t e = {.action = action, .actor = by->admin, .key = key,
                           .old_text = old_text, .new_text = new_text, .address = by->address};
  return store_audit_record(t, &e);
}

/* What a change writes, as the audit log shows it: the fields given, the
 * password only as "(set)" or "(cleared)". malloc'd JSON text or NULL. */
static char *fields_text(const user_input_t *u, bool with_name) {
  json_t *o = json_object();
  if (!o) return NULL;
  if (with_name && u->has_name) json_object_set_new(o, "name", json_string(u->name));
  if (u->has_display)
    json_object_set_new(o, "display_name", u->display ? json_string(u->display) : json_null());
  if (u->has_windows)
    json_object_set_new(o, "windows_account",
                        u->windows ? json_string(u->windows) : json_null());
  if (u->has_password)
    json_object_set_new(o, "password", json_string(u->password_hash ? "(set)" : "(cleared)"));
  if (u->has_enabled) json_object_set_new(o, "enabled", json_boolean(u->enabled));
  char *text = json_object_size(o) ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  return text;
}

typedef struct user_txn {
  const directory_actor_t *by;
  const user_input_t *in;
  const char *ref; /* update: the user as named in the request */
  json_t *user;
  problem_t *err;
  bool update;
  char local[DIRECTORY_NAME_MAX + 1]; /* update: the name before the change */
  int64_t revoked; /* client tokens revoked by the change */
} user_txn_t;

/* ---- who is told of a change ------------------------------------------------------------- */

#define LISTENERS_MAX 8

static struct {
  directory_listener_fn fn;
  void *ctx;
} listeners[LISTENERS_MAX];
static size_t listener_count;

int directory_listen(directory_listener_fn fn, void *ctx) {
  if (listener_count == LISTENERS_MAX) return -ENOSPC;
  listeners[listener_count].fn = fn;
  listeners[listener_count].ctx = ctx;
  listener_count++;
  return 0;
}

void directory_listeners_clear(void) { listener_count = 0; }

static void tell(directory_event_t ev, const char *name) {
  for (size_t i = 0; i < listener_count; i++) listeners[i].fn(ev, name, listeners[i].ctx);
}

static int user_txn(store_txn_t *t, void *vctx) {
  user_txn_t *c = vctx;
  json_decref(c->user);
  c->user = NULL;
  store_user_write_t w = user_write_of(c->in);
  const char *conflict = NULL, *name = c->in->name;
  char domain[256];
  int r;
  if (c->update) {
    if ((r = current_local_name(t, c->ref, c->local, sizeof c->local, domain, sizeof domain)) < 0)
      return r;
    r = store_user_update(t, c->local, &w, &conflict);
    if (!c->in->has_name) name = c->local;
    /* A new (or cleared) password or a disabled account ends every login
     * at once, in the same transaction: a token stolen before the change
     * must not outlive it, on this node or any other of the store. */
    if (r == 0 && (c->in->has_password || (c->in->has_enabled && !c->in->enabled))) {
      store_user_t u;
      r = store_user_get(t, name, &u);
      if (r == 0) r = store_tokens_delete_user(t, u.id, &c->revoked);
    }
  } else {
    r = store_user_insert(t, &w, &conflict);
  }
  if (r == -EEXIST) {
    conflict_error(c->err, conflict, c->in->name, c->in->windows, 0, 0);
    set_detail(c->err, "The user was not %s: the %s is taken.", c->update ? "changed" : "created",
               conflict ? conflict : "name");
  }
  if (r < 0) return r;
  if (c->update && c->in->has_name && strcmp(c->in->name, c->local) != 0 &&
      (r = audit(t, c->by, "user.rename", c->local, c->local, c->in->name)) < 0)
    return r;
  char *fields = fields_text(c->in, !c->update);
  if (fields || !c->update)
    r = audit(t, c->by, c->update ? "user.update" : "user.add", name, NULL, fields);
  free(fields);
  return r < 0 ? r : get_user_in(t, name, &c->user);
}

static int user_write(store_t *store, const directory_actor_t *by, const char *ref,
                      const json_t *in, bool update, json_t **user, problem_t *err) {
  *user = NULL;
  user_input_t u;
  int r = user_input_parse(in, !update, &u, err);
  if (r == 0) {
    user_txn_t c = {.by = by, .in = &u, .ref = ref, .err = err, .update = update};
    r = store_run_txn(store, update ? "change a user" : "create a user", user_txn, &c);
    if (r == 0)
      *user = c.user;
    else
      json_decref(c.user);
    /* After the commit: those holding the user's sessions act on it. */
    if (r == 0 && update) {
      if (u.has_enabled && !u.enabled) tell(DIRECTORY_USER_DISABLED, c.local);
      if (u.has_name && strcmp(u.name, c.local) != 0) tell(DIRECTORY_USER_RENAMED, c.local);
      if (u.has_password) tell(DIRECTORY_USER_PASSWORD, c.local);
      /* The tokens went with the password: connected clients must log in
       * again, as after "sign out everywhere". */
      if (u.has_password && !(u.has_enabled && !u.enabled))
        tell(DIRECTORY_USER_SIGNED_OUT, u.has_name ? u.name : c.local);
    }
  }
  user_input_clear(&u);
  return r;
}

int directory_user_create(store_t *store, const directory_actor_t *by, const json_t *in,
                          json_t **user, problem_t *err) {
  return user_write(store, by, NULL, in, false, user, err);
}

int directory_user_update(store_t *store, const directory_actor_t *by, const char *name,
                          const json_t *patch, json_t **user, problem_t *err) {
  return user_write(store, by, name, patch, true, user, err);
}

typedef struct delete_ctx {
  const directory_actor_t *by;
  const char *ref;
  char local[DIRECTORY_NAME_MAX + 1];
} delete_ctx_t;

static int delete_txn(store_txn_t *t, void *vctx) {
  delete_ctx_t *c = vctx;
  char domain[256];
  int r = current_local_name(t, c->ref, c->local, sizeof c->local, domain, sizeof domain);
  if (r == 0) r = store_user_delete(t, c->local);
  return r < 0 ? r : audit(t, c->by, "user.delete", c->local, c->local, NULL);
}

int directory_user_delete(store_t *store, const directory_actor_t *by, const char *name) {
  delete_ctx_t c = {.by = by, .ref = name};
  int r = store_run_txn(store, "delete a user", delete_txn, &c);
  if (r == 0) tell(DIRECTORY_USER_DELETED, c.local);
  return r;
}

typedef struct sign_out_ctx {
  const directory_actor_t *by;
  const char *ref;
  char local[DIRECTORY_NAME_MAX + 1];
  int64_t revoked;
} sign_out_ctx_t;

static int sign_out_txn(store_txn_t *t, void *vctx) {
  sign_out_ctx_t *c = vctx;
  char domain[256];
  int r = current_local_name(t, c->ref, c->local, sizeof c->local, domain, sizeof domain);
  store_user_t u;
  if (r == 0) r = store_user_get(t, c->local, &u);
  if (r == 0) r = store_tokens_delete_user(t, u.id, &c->revoked);
  if (r < 0) return r;
  char text[64];
  snprintf(text, sizeof text, "%" PRId64 " login(s) revoked", c->revoked);
  return audit(t, c->by, "user.sign_out", c->local, NULL, text);
}

int directory_user_sign_out(store_t *store, const directory_actor_t *by, const char *name,
                            int64_t *revoked) {
  sign_out_ctx_t c = {.by = by, .ref = name};
  int r = store_run_txn(store, "sign a user out everywhere", sign_out_txn, &c);
  if (r == 0) tell(DIRECTORY_USER_SIGNED_OUT, c.local);
  if (revoked) *revoked = r == 0 ? c.revoked : 0;
  return r;
}

/* ---- profile pictures --------------------------------------------------------------------- */

typedef struct picture_ctx {
  const directory_actor_t *by;
  const char *ref;
  const uint8_t *jpeg; /* NULL: remove */
  size_t len;
  const char *etag;
  json_t *user;
} picture_ctx_t;

static int picture_txn(store_txn_t *t, void *vctx) {
  picture_ctx_t *c = vctx;
  json_decref(c->user);
  c->user = NULL;
  char name[DIRECTORY_NAME_MAX + 1], domain[256];
  store_user_t u;
  int r = current_local_name(t, c->ref, name, sizeof name, domain, sizeof domain);
  if (r == 0) r = store_user_get(t, name, &u);
  bool changed = true;
  if (r == 0 && c->jpeg) {
    r = store_picture_put(t, u.id, c->jpeg, c->len, c->etag);
  } else if (r == 0) {
    r = store_picture_delete(t, u.id);
    /* Removing what is not there is done already. */
    if (r == -ENOENT) {
      r = 0;
      changed = false;
    }
  }
  if (r == 0 && changed) {
    char text[100];
    snprintf(text, sizeof text, c->jpeg ? "picture set (%zu bytes)" : "picture removed", c->len);
    r = audit(t, c->by, "user.picture", u.name, NULL, text);
  }
  if (r == 0) {
    snprintf(u.picture, sizeof u.picture, "%s", c->jpeg ? c->etag : "");
    if (!(c->user = user_doc(&u, domain))) r = -ENOMEM;
  }
  return r;
}

int directory_picture_put(store_t *store, const directory_actor_t *by, const char *name,
                          const uint8_t *jpeg, size_t len, const char *etag, json_t **user) {
  picture_ctx_t c = {.by = by, .ref = name, .jpeg = jpeg, .len = len, .etag = etag};
  int r = store_run_txn(store, jpeg ? "set a user's picture" : "remove a user's picture",
                        picture_txn, &c);
  if (r == 0 && user) *user = c.user;
  else json_decref(c.user);
  return r;
}

int directory_picture_get(store_t *store, const char *name, bool disabled_too,
                          store_picture_t *out) {
  memset(out, 0, sizeof *out);
  store_txn_t *t;
  int r = store_read_begin(store, "read a user's picture", &t);
  if (r < 0) return r;
  char local[DIRECTORY_NAME_MAX + 1], domain[256];
  store_user_t u;
  r = current_local_name(t, name, local, sizeof local, domain, sizeof domain);
  if (r == 0) r = store_user_get(t, local, &u);
  if (r == 0) r = u.enabled || disabled_too ? store_picture_get(t, u.id, out) : -ENOENT;
  store_read_end(t);
  return r;
}

static int revoke_txn(store_txn_t *t, void *ctx) { return store_token_delete(t, ctx); }

int directory_token_revoke(store_t *store, const char *token) {
  char hash[65];
  secret_sha256_hex(token, hash);
  return store_run_txn(store, "log a client out", revoke_txn, hash);
}

/* The list answer {total, offset, limit, <key>: items}; takes items. r < 0 drops them. */
static int make_page(int r, int64_t total, int64_t offset, int64_t limit, const char *key,
                     json_t *items, json_t **page) {
  if (r < 0) {
    json_decref(items);
    return r;
  }
  *page = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "offset",
                    (json_int_t)offset, "limit", (json_int_t)limit, key, items);
  return *page ? 0 : -ENOMEM;
}

static int64_t clamp_limit(int64_t limit) {
  return limit < 1 ? 1 : limit > DIRECTORY_LIST_LIMIT_MAX ? DIRECTORY_LIST_LIMIT_MAX : limit;
}

typedef struct list_ctx {
  json_t *items;
  const char *domain;
  int error;
} list_ctx_t;

static void list_user(const store_user_t *u, void *vctx) {
  list_ctx_t *c = vctx;
  if (json_array_append_new(c->items, user_doc(u, c->domain)) < 0) c->error = -ENOMEM;
}

int directory_user_list(store_t *store, const char *q, int64_t offset, int64_t limit,
                        json_t **page) {
  *page = NULL;
  if (offset < 0) offset = 0;
  limit = clamp_limit(limit);
  if (q && !*q) q = NULL;
  json_t *users = json_array();
  if (!users) return -ENOMEM;
  store_txn_t *t;
  int r = store_read_begin(store, "list users", &t);
  if (r < 0) return make_page(r, 0, offset, limit, "users", users, page);
  int64_t gen, total = 0;
  char domain[256];
  char exact[DIRECTORY_NAME_MAX + 1] = "";
  r = store_domain_current(t, &gen, domain, sizeof domain);
  /* "alice@<current domain>" finds alice by her login name. */
  if (r == 0 && q && strchr(q, '@') && resolve_name(q, domain, exact, sizeof exact) < 0)
    exact[0] = '\0';
  list_ctx_t c = {.items = users, .domain = domain};
  if (r == 0) r = store_user_list(t, q, exact, offset, limit, &total, list_user, &c);
  if (r == 0) r = c.error;
  store_read_end(t);
  return make_page(r, total, offset, limit, "users", users, page);
}

/* ---- bulk import: parsing ------------------------------------------------------------------ */

typedef struct import_row {
  char *f[ROW_FIELDS]; /* per kind, see kinds[] */
  bool enabled;
  uint32_t line;       /* CSV line where the row starts; 0 for JSON */
} import_row_t;

struct directory_batch {
  directory_import_kind_t kind;
  import_row_t *rows;
  size_t count, cap;
  size_t dropped; /* invalid rows: the import fails even if their message could not be kept */
  size_t hashed;  /* rows before this one hold a hash, not a password (users) */
};

typedef struct import_kind {
  const char *what; /* "user", "subscription", ... for messages */
  const char *columns[ROW_FIELDS + 1];
  const char *required[3];
} import_kind_t;

/* Column i of a kind lands in row->f[i] ("enabled" in row->enabled). */
static const import_kind_t kinds[] = {
    [DIRECTORY_IMPORT_USERS] = {.what = "user",
                                .columns = {"name", "display_name", "windows_account", "password",
                                            "enabled"},
                                .required = {"name"}},
    [DIRECTORY_IMPORT_SUBSCRIPTIONS] = {.what = "subscription",
                                        .columns = {"user", "remote", "state"},
                                        .required = {"user", "remote"}},
    [DIRECTORY_IMPORT_CONTACTS] = {.what = "contact",
                                   .columns = {"user", "remote", "display_name"},
                                   .required = {"user", "remote"}},
};

static int column_index(const import_kind_t *k, const char *name) {
  for (int i = 0; k->columns[i]; i++)
    if (strcmp(k->columns[i], name) == 0) return i;
  return -1;
}

size_t directory_batch_rows(const directory_batch_t *b) { return b ? b->count : 0; }

void directory_batch_free(directory_batch_t *b) {
  if (!b) return;
  for (size_t i = 0; i < b->count; i++)
    for (int f = 0; f < ROW_FIELDS; f++) {
      if (b->rows[i].f[f]) explicit_bzero(b->rows[i].f[f], strlen(b->rows[i].f[f]));
      free(b->rows[i].f[f]);
    }
  free(b->rows);
  free(b);
}

/* Checks one row given as column texts (NULL: absent or empty) and appends
 * it to the batch. Errors go to err and the row is dropped. */
static int add_row(directory_batch_t *b, const char *const vals[ROW_FIELDS], size_t row,
                   size_t line, problem_t *err) {
  const import_kind_t *k = &kinds[b->kind];
  import_row_t r = {.enabled = true, .line = (uint32_t)line};
  bool bad = false;
  validate_error_t verr;
  for (int i = 0; k->required[i]; i++) {
    int c = column_index(k, k->required[i]);
    if (!vals[c]) {
      add_error(err, k->required[i], row, line, "Is required.");
      bad = true;
    }
  }
  for (int c = 0; k->columns[c]; c++) {
    const char *v = vals[c], *col = k->columns[c];
    if (!v) continue;
    size_t len = strlen(v);
    int rc = 0;
    char *norm = NULL;
    if (b->kind == DIRECTORY_IMPORT_USERS && strcmp(col, "name") == 0) {
      rc = directory_validate_name(v, &verr);
    } else if (strcmp(col, "user") == 0) {
      /* name or name@domain; the domain is checked against the store later */
      const char *at = strrchr(v, '@');
      char local[DIRECTORY_NAME_MAX + 2];
      size_t n = at ? (size_t)(at - v) : len;
      if (n >= sizeof local) n = sizeof local - 1;
      memcpy(local, v, n);
      local[n] = '\0';
      rc = directory_validate_name(local, &verr);
    } else if (strcmp(col, "display_name") == 0) {
      rc = validate_text(v, len, DIRECTORY_DISPLAY_NAME_MAX, &verr);
    } else if (strcmp(col, "windows_account") == 0) {
      rc = directory_validate_windows_account(v, &norm, &verr);
    } else if (strcmp(col, "password") == 0) {
      rc = validate_password(v, len, &verr);
    } else if (strcmp(col, "enabled") == 0) {
      if (parse_bool_text(v, &r.enabled) != 0)
        rc = validate_fail(&verr, "Must be true or false.");
    } else if (strcmp(col, "remote") == 0) {
      rc = directory_validate_remote(v, &norm, &verr);
    } else if (strcmp(col, "state") == 0) {
      if (strcmp(v, "active") != 0 && strcmp(v, "pending") != 0 &&
          strcmp(v, "to-be-recreated") != 0)
        rc = validate_fail(&verr, "Must be active, pending or to-be-recreated.");
    }
    if (rc == -ENOMEM) return rc;
    if (rc != 0) {
      add_error(err, col, row, line, "%s", verr.message);
      bad = true;
      continue;
    }
    if (strcmp(col, "enabled") == 0) continue;
    r.f[c] = norm ? norm : strdup(v);
    if (!r.f[c]) return -ENOMEM;
  }
  if (bad) {
    b->dropped++;
    for (int f = 0; f < ROW_FIELDS; f++) free(r.f[f]);
    return 0;
  }
  if (b->count == b->cap) {
    size_t ncap = b->cap ? b->cap * 2 : 256;
    import_row_t *nr = realloc(b->rows, ncap * sizeof *nr);
    if (!nr) {
      for (int f = 0; f < ROW_FIELDS; f++) free(r.f[f]);
      return -ENOMEM;
    }
    b->rows = nr;
    b->cap = ncap;
  }
  b->rows[b->count++] = r;
  return 0;
}

static bool too_many_errors(const problem_t *err) {
  return error_count(err) >= DIRECTORY_IMPORT_ERRORS_MAX;
}

static int parse_json_rows(directory_batch_t *b, const json_t *arr, problem_t *err) {
  const import_kind_t *k = &kinds[b->kind];
  size_t i;
  json_t *obj;
  if (json_array_size(arr) > IMPORT_ROWS_MAX) {
    set_detail(err, "The import has %zu rows; at most %d are accepted at once: split the file.",
               json_array_size(arr), IMPORT_ROWS_MAX);
    return -EINVAL;
  }
  json_array_foreach(arr, i, obj) {
    if (too_many_errors(err)) break;
    size_t row = i + 1;
    if (!json_is_object(obj)) {
      add_error(err, "row", row, 0, "Must be a JSON object describing one %s.", k->what);
      b->dropped++;
      continue;
    }
    const char *vals[ROW_FIELDS] = {0};
    char enabled_text[6];
    bool bad = false;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
      int c = column_index(k, key);
      if (c < 0) {
        add_error(err, key, row, 0, "Is not a field of a %s.", k->what);
        bad = true;
        continue;
      }
      if (json_is_null(v)) continue;
      if (strcmp(key, "enabled") == 0 && json_is_boolean(v)) {
        snprintf(enabled_text, sizeof enabled_text, "%s", json_is_true(v) ? "true" : "false");
        vals[c] = enabled_text;
        continue;
      }
      if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        add_error(err, key, row, 0, "Must be a %s.",
                  strcmp(key, "enabled") == 0 ? "boolean" : "string without NUL characters");
        bad = true;
        continue;
      }
      vals[c] = *json_string_value(v) ? json_string_value(v) : NULL;
    }
    if (bad) {
      b->dropped++;
      continue;
    }
    int r = add_row(b, vals, row, 0, err);
    if (r < 0) return r;
  }
  return 0;
}

/* One CSV record. Fields are NUL-terminated strings in buf at offsets. */
typedef struct csv_reader {
  const char *p, *end;
  size_t line;
  char *buf;
  size_t len, cap;
  size_t offs[CSV_COLUMNS_MAX];
  size_t nfields;
} csv_reader_t;

static int csv_put(csv_reader_t *c, char ch) {
  if (c->len + 1 >= c->cap) {
    size_t ncap = c->cap ? c->cap * 2 : 256;
    char *nb = realloc(c->buf, ncap);
    if (!nb) return -ENOMEM;
    c->buf = nb;
    c->cap = ncap;
  }
  c->buf[c->len++] = ch;
  return 0;
}

/* Appends one character of a field, quoted or not: a NUL byte or an over-long field is
 * malformed (-EINVAL, message in msg). */
static int csv_field_char(csv_reader_t *c, char ch, size_t *flen, char *msg, size_t msglen) {
  if (ch == '\0') {
    snprintf(msg, msglen, "Line %zu contains a NUL byte.", c->line);
    return -EINVAL;
  }
  if (++*flen > CSV_FIELD_MAX) {
    snprintf(msg, msglen, "A field on line %zu is longer than %d bytes.", c->line, CSV_FIELD_MAX);
    return -EINVAL;
  }
  return csv_put(c, ch);
}

/* Reads one record. 1: a record (start line in *line); 0: end of input;
 * -EINVAL: malformed (message in msg); -ENOMEM. Blank lines are skipped. */
static int csv_next(csv_reader_t *c, size_t *line, char *msg, size_t msglen) {
  for (;;) {
    if (c->p >= c->end) return 0;
    c->len = 0;
    c->nfields = 0;
    *line = c->line;
    bool any = false;
    for (;;) { /* one field per turn */
      if (c->nfields == CSV_COLUMNS_MAX) {
        snprintf(msg, msglen, "Line %zu has more than %d fields.", *line, CSV_COLUMNS_MAX);
        return -EINVAL;
      }
      c->offs[c->nfields] = c->len;
      size_t flen = 0;
      if (c->p < c->end && *c->p == '"') {
        any = true;
        c->p++;
        for (;;) {
          if (c->p >= c->end) {
            snprintf(msg, msglen, "The quoted field that starts on line %zu is never closed.",
                     *line);
            return -EINVAL;
          }
          char ch = *c->p++;
          if (ch == '"') {
            if (c->p < c->end && *c->p == '"') {
              c->p++;
            } else {
              break;
            }
          } else if (ch == '\n') {
            c->line++;
          }
          int r = csv_field_char(c, ch, &flen, msg, msglen);
          if (r < 0) return r;
        }
        if (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
          snprintf(msg, msglen, "Line %zu: after a closing quote comes a comma or the end of the "
                   "line; write a quote inside a quoted field as \"\".", c->line);
          return -EINVAL;
        }
      } else {
        while (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
          char ch = *c->p++;
          any = true;
          if (ch == '"') {
            snprintf(msg, msglen, "Line %zu: a quote inside a field that does not start with a "
                     "quote; put the field in quotes and write the quote as \"\".", c->line);
            return -EINVAL;
          }
          int r = csv_field_char(c, ch, &flen, msg, msglen);
          if (r < 0) return r;
        }
      }
      if (csv_put(c, '\0') < 0) return -ENOMEM;
      c->nfields++;
      if (c->p < c->end && *c->p == ',') {
        any = true;
        c->p++;
        continue;
      }
      if (c->p < c->end && *c->p == '\r') {
        if (c->p + 1 >= c->end || c->p[1] != '\n') {
          snprintf(msg, msglen, "Line %zu ends in a carriage return without a line feed.",
                   c->line);
          return -EINVAL;
        }
        c->p++;
      }
      if (c->p < c->end && *c->p == '\n') {
        c->p++;
        c->line++;
      }
      break;
    }
    if (any) return 1;
  }
}

static const char *csv_field(const csv_reader_t *c, size_t i) { return c->buf + c->offs[i]; }

static int parse_csv_rows(directory_batch_t *b, const char *data, size_t len,
                          problem_t *err) {
  const import_kind_t *k = &kinds[b->kind];
  csv_reader_t c = {.p = data, .end = data + len, .line = 1};
  if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) c.p += 3; /* Excel writes a BOM */
  char msg[256];
  size_t line;
  int map[CSV_COLUMNS_MAX];
  size_t ncols = 0;
  int r = csv_next(&c, &line, msg, sizeof msg);
  if (r == 0) {
    set_detail(err, "The CSV is empty: the first line must name the columns (%s%s%s...).",
               k->columns[0], k->columns[1] ? ", " : "", k->columns[1] ? k->columns[1] : "");
    r = -EINVAL;
    goto out;
  }
  if (r < 0) {
    if (r == -EINVAL) set_detail(err, "The CSV is malformed: %s", msg);
    goto out;
  }
  ncols = c.nfields;
  bool seen[ROW_FIELDS] = {false}, header_ok = true;
  for (size_t i = 0; i < ncols; i++) {
    char name[64];
    snprintf(name, sizeof name, "%s", csv_field(&c, i));
    /* Spreadsheets add spaces and capitals to headers. */
    char *s = name;
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') s[--n] = '\0';
    lower_ascii(s);
    map[i] = column_index(k, s);
    if (map[i] < 0 || seen[map[i]]) header_ok = false;
    if (map[i] < 0)
      add_error(err, s, 0, 1, "Line 1: \"%s\" is not a column of a %s import; the columns are "
                "%s%s%s%s%s%s%s%s%s.", s, k->what, k->columns[0],
                k->columns[1] ? ", " : "", k->columns[1] ? k->columns[1] : "",
                k->columns[2] ? ", " : "", k->columns[2] ? k->columns[2] : "",
                k->columns[3] ? ", " : "", k->columns[3] ? k->columns[3] : "",
                k->columns[4] ? ", " : "", k->columns[4] ? k->columns[4] : "");
    else if (seen[map[i]])
      add_error(err, s, 0, 1, "Line 1: the column \"%s\" appears twice.", s);
    else
      seen[map[i]] = true;
  }
  for (int i = 0; k->required[i]; i++)
    if (!seen[column_index(k, k->required[i])]) {
      header_ok = false;
      add_error(err, k->required[i], 0, 1, "Line 1: the required column \"%s\" is missing.",
                k->required[i]);
    }
  if (!header_ok) {
    set_detail(err, "The header line of the CSV is not right; nothing was imported.");
    r = -EINVAL;
    goto out;
  }
  size_t row = 0;
  while ((r = csv_next(&c, &line, msg, sizeof msg)) == 1) {
    row++;
    if (row > IMPORT_ROWS_MAX) {
      set_detail(err, "The import has more than %d rows; split the file.", IMPORT_ROWS_MAX);
      r = -EINVAL;
      goto out;
    }
    if (c.nfields != ncols) {
      add_error(err, "row", row, line, "Has %zu field(s) but the header names %zu column(s).",
                c.nfields, ncols);
      b->dropped++;
    } else {
      const char *vals[ROW_FIELDS] = {0};
      for (size_t i = 0; i < ncols; i++) {
        const char *f = csv_field(&c, i);
        vals[map[i]] = *f ? f : NULL;
      }
      if ((r = add_row(b, vals, row, line, err)) < 0) goto out;
    }
    if (too_many_errors(err)) break;
  }
  if (r == -EINVAL) {
    add_error(err, "row", row + 1, line, "%s", msg);
    b->dropped++;
  } else if (r < 0) {
    goto out;
  }
  r = 0;
out:
  free(c.buf);
  return r;
}

int directory_import_parse(directory_import_kind_t kind, const char *data, size_t len, bool csv,
                           directory_batch_t **out, problem_t *err) {
  *out = NULL;
  if ((unsigned)kind >= sizeof kinds / sizeof kinds[0]) return -EINVAL;
  directory_batch_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  b->kind = kind;
  int r;
  json_t *doc = NULL;
  if (csv) {
    r = parse_csv_rows(b, data, len, err);
  } else {
    json_error_t jerr;
    doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
      set_detail(err, "The import is not valid JSON: %s (line %d, column %d). Send a JSON array "
                 "of objects, or CSV with Content-Type: text/csv.", jerr.text, jerr.line,
                 jerr.column);
      r = -EINVAL;
    } else if (json_is_array(doc)) {
      r = parse_json_rows(b, doc, err);
    } else if (json_is_object(doc) && json_object_size(doc) == 1 &&
               json_is_string(json_object_get(doc, "csv"))) {
      json_t *t = json_object_get(doc, "csv");
      r = parse_csv_rows(b, json_string_value(t), json_string_length(t), err);
    } else {
      set_detail(err, "The import must be a JSON array of %s objects (or {\"csv\": \"...\"}).",
                 kinds[kind].what);
      r = -EINVAL;
    }
  }
  json_decref(doc);
  if (r == 0 && (error_count(err) || b->dropped)) r = -EINVAL;
  if (r == -EINVAL && !err->detail[0])
    set_detail(err, "%zu row(s) are invalid%s; nothing was imported.", error_count(err),
               too_many_errors(err) ? " (checking stopped at the first ones)" : "");
  if (r == 0 && b->count == 0) {
    set_detail(err, "The import holds no rows; nothing was imported.");
    r = -EINVAL;
  }
  if (r < 0) {
    directory_batch_free(b);
    return r;
  }
  *out = b;
  return 0;
}

/* ---- bulk import: writing ---------------------------------------------------------------------- */

static const char *row_user_local(char *buf, size_t len, const char *ref) {
  const char *at = strrchr(ref, '@');
  size_t n = at ? (size_t)(at - ref) : strlen(ref);
  if (n >= len) n = len - 1;
  memcpy(buf, ref, n);
  buf[n] = '\0';
  return buf;
}

typedef struct import_txn {
  const directory_actor_t *by;
  directory_batch_t *b;
  problem_t *err;
} import_txn_t;

/* One row for the whole import (a million users must not write a million
 * rows): how many, and the first names. */
static int audit_import(store_txn_t *t, const directory_actor_t *by, const directory_batch_t *b) {
  if (!by) return 0;
  char text[600];
  size_t o = (size_t)snprintf(text, sizeof text, "%zu %s(s)", b->count, kinds[b->kind].what);
  for (size_t i = 0; i < b->count && i < 10 && o < sizeof text; i++)
    o += (size_t)snprintf(text + o, sizeof text - o, "%s%.64s", i ? ", " : ": ", b->rows[i].f[0]);
  if (b->count > 10 && o < sizeof text) snprintf(text + o, sizeof text - o, ", ...");
  return audit(t, by, b->kind == DIRECTORY_IMPORT_USERS ? "user.import" : "federation.import",
               b->kind == DIRECTORY_IMPORT_USERS ? "users"
               : b->kind == DIRECTORY_IMPORT_SUBSCRIPTIONS ? "federation.subscriptions"
                                                          : "federation.contacts",
               NULL, text);
}

static int import_txn(store_txn_t *t, void *vctx) {
  import_txn_t *c = vctx;
  directory_batch_t *b = c->b;
  /* A retried transaction reports only its own errors. */
  problem_clear(c->err);
  int64_t gen = 0;
  char domain[256];
  int r = store_domain_current(t, &gen, domain, sizeof domain);
  if (r < 0) return r;
  for (size_t i = 0; i < b->count; i++) {
    import_row_t *row = &b->rows[i];
    size_t rowno = i + 1;
    char local[DIRECTORY_NAME_MAX + 2];
    const char *conflict = NULL;
    if (b->kind == DIRECTORY_IMPORT_USERS) {
      store_user_write_t w = {.set_name = true, .name = row->f[0],
                              .set_display_name = true, .display_name = row->f[1],
                              .set_windows_account = true, .windows_account = row->f[2],
                              .set_password_hash = true, .password_hash = row->f[3],
                              .set_enabled = true, .enabled = row->enabled};
      r = store_user_insert(t, &w, &conflict);
      if (r == -EEXIST) {
        conflict_error(c->err, conflict, row->f[0], row->f[2], rowno, row->line);
        r = -EINVAL;
      }
    } else {
      const char *at = strrchr(row->f[0], '@');
      if (at && strcasecmp(at + 1, domain) != 0) {
        add_error(c->err, "user", rowno, row->line,
                  "%s is not an address of this server's domain %s; write the user's name.",
                  row->f[0], domain);
        r = -EINVAL;
        break;
      }
      row_user_local(local, sizeof local, row->f[0]);
      if (b->kind == DIRECTORY_IMPORT_SUBSCRIPTIONS)
        r = store_subscription_insert(t, local, row->f[1], row->f[2] ? row->f[2] : "active", gen);
      else
        r = store_contact_insert(t, local, row->f[1], row->f[2]);
      if (r == -EEXIST) {
        add_error(c->err, "remote", rowno, row->line,
                  "%s has a %s for %s already (or an earlier row has).", local,
                  kinds[b->kind].what, row->f[1]);
        r = -EINVAL;
      } else if (r == -ENOENT) {
        add_error(c->err, "user", rowno, row->line, "There is no user named %s.", local);
        r = -EINVAL;
      }
    }
    if (r < 0) break;
  }
  if (r == 0) r = audit_import(t, c->by, b);
  if (r == -EINVAL && !c->err->detail[0])
    set_detail(c->err, "The import was refused at row %zu; nothing was imported.",
               error_count(c->err) ? (size_t)json_integer_value(json_object_get(
                                         json_array_get(c->err->errors, 0), "row"))
                                   : 0);
  return r;
}

size_t directory_batch_passwords(const directory_batch_t *b) {
  size_t n = 0;
  if (b && b->kind == DIRECTORY_IMPORT_USERS)
    for (size_t i = b->hashed; i < b->count; i++) n += b->rows[i].f[3] != NULL;
  return n;
}

int directory_import_hash_step(directory_batch_t *b, bool *more) {
  *more = false;
  if (b->kind != DIRECTORY_IMPORT_USERS) return 0;
  while (b->hashed < b->count && !b->rows[b->hashed].f[3]) b->hashed++;
  if (b->hashed == b->count) return 0;
  char **pw = &b->rows[b->hashed].f[3];
  char *hash = NULL;
  int r = secret_password_hash(*pw, &hash);
  explicit_bzero(*pw, strlen(*pw));
  free(*pw);
  *pw = hash;
  b->hashed++;
  if (r < 0) return r;
  while (b->hashed < b->count && !b->rows[b->hashed].f[3]) b->hashed++;
  *more = b->hashed < b->count;
  return 0;
}

int directory_import_write(store_t *store, const directory_actor_t *by, directory_batch_t *b,
                           int64_t *imported, problem_t *err) {
  *imported = 0;
  if (b->kind == DIRECTORY_IMPORT_USERS && b->hashed < b->count && directory_batch_passwords(b))
    return -EINVAL; /* passwords not hashed yet: never written as they are */
  import_txn_t c = {.by = by, .b = b, .err = err};
  int r = store_run_txn(store, "import", import_txn, &c);
  if (r == 0) *imported = (int64_t)b->count;
  return r;
}

int directory_import_apply(store_t *store, const directory_actor_t *by, directory_batch_t *b,
                           int64_t *imported, problem_t *err) {
  *imported = 0;
  /* Hashing is the slow part: done before the transaction begins. */
  bool more = true;
  while (more) {
    int r = directory_import_hash_step(b, &more);
    if (r < 0) return r;
  }
  return directory_import_write(store, by, b, imported, err);
}

/* ---- federation data: lists -------------------------------------------------------------------- */

typedef struct fed_ctx {
  json_t *items;
  const char *domain;
  bool subscriptions;
  int error;
} fed_ctx_t;

static json_t *text_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static void fed_row(const store_federation_row_t *row, void *vctx) {
  fed_ctx_t *c = vctx;
  json_t *o;
  if (c->subscriptions) {
    char addr[400];
    snprintf(addr, sizeof addr, "%s@%s", row->user ? row->user : "", c->domain);
    o = json_pack("{s:o, s:s, s:o, s:o, s:o}", "user", text_or_null(row->user), "im_address",
                  addr, "remote", text_or_null(row->remote), "state", text_or_null(row->state),
                  "created_at", text_or_null(row->created_at));
  } else {
    o = json_pack("{s:o, s:o, s:o, s:o}", "user", text_or_null(row->user), "remote",
                  text_or_null(row->remote), "display_name", text_or_null(row->display_name),
                  "created_at", text_or_null(row->created_at));
  }
  if (json_array_append_new(c->items, o) < 0) c->error = -ENOMEM;
}

/* Shared by the subscription and contact lists: one count and one page. */
static int federation_list(store_t *store, bool subscriptions, const char *user, const char *state,
                           int64_t offset, int64_t limit, json_t **page) {
  *page = NULL;
  if (offset < 0) offset = 0;
  limit = clamp_limit(limit);
  json_t *items = json_array();
  if (!items) return -ENOMEM;
  const char *key = subscriptions ? "subscriptions" : "contacts";
  store_txn_t *t;
  int r = store_read_begin(store, subscriptions ? "list subscriptions" : "list contacts", &t);
  if (r < 0) return make_page(r, 0, offset, limit, key, items, page);
  int64_t gen = 0, total = 0;
  char domain[256];
  char local[DIRECTORY_NAME_MAX + 2] = "";
  if (user && *user) row_user_local(local, sizeof local, user);
  fed_ctx_t c = {.items = items, .domain = domain, .subscriptions = subscriptions};
  r = store_domain_current(t, &gen, domain, sizeof domain);
  if (r == 0)
    r = subscriptions ? store_subscription_list(t, local, state, gen, offset, limit, &total,
                                                fed_row, &c)
                      : store_contact_list(t, local, offset, limit, &total, fed_row, &c);
  if (r == 0) r = c.error;
  store_read_end(t);
  return make_page(r, total, offset, limit, key, items, page);
}

int directory_subscription_list(store_t *store, const char *user, const char *state,
                                int64_t offset, int64_t limit, json_t **page) {
  return federation_list(store, true, user, state, offset, limit, page);
}

int directory_contact_list(store_t *store, const char *user, int64_t offset, int64_t limit,
                           json_t **page) {
  return federation_list(store, false, user, NULL, offset, limit, page);
}

/* ---- client logins ------------------------------------------------------------------------------ */

/* A wrong login name costs the same Argon2id work as a wrong password, so
 * the answer time does not tell which names exist. */
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char *dummy_hash;

static void make_dummy_hash(void) {
  if (secret_password_hash("atrium-timing-equaliser", &dummy_hash) < 0) dummy_hash = NULL;
}

void directory_shutdown(void) {
  free(dummy_hash);
  dummy_hash = NULL;
}

void directory_login_clear(directory_login_t *l) {
  if (!l) return;
  if (l->token) explicit_bzero(l->token, strlen(l->token));
  free(l->token);
  memset(l, 0, sizeof *l);
}

typedef struct device_input {
  const char *id, *platform, *push_token;
} device_input_t;

static int device_parse(const json_t *device, device_input_t *d, problem_t *err) {
  memset(d, 0, sizeof *d);
  if (!device || json_is_null(device)) return 0;
  if (!json_is_object(device)) {
    add_error(err, "device", 0, 0, "Must be an object {\"id\", \"platform\", \"push_token\"}.");
    set_detail(err, "The device description is not valid.");
    return -EINVAL;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)device, key, v) {
    if (strcmp(key, "push_token") == 0 && json_is_null(v)) continue;
    if (strcmp(key, "id") != 0 && strcmp(key, "platform") != 0 && strcmp(key, "push_token") != 0) {
      add_error(err, "device", 0, 0, "\"%s\" is not a field of a device; use id, platform and "
                "push_token.", key);
      continue;
    }
    const char *s = json_string_value(v);
    if (!s || strlen(s) != json_string_length(v)) {
      add_error(err, "device", 0, 0, "device.%s must be a string.", key);
      continue;
    }
    size_t n = strlen(s);
    if (strcmp(key, "id") == 0) {
      bool ok = n >= 1 && n <= 128;
      for (size_t i = 0; ok && i < n; i++) ok = s[i] > 0x20 && s[i] < 0x7f;
      if (!ok)
        add_error(err, "device", 0, 0, "device.id must be 1 to 128 printable ASCII characters "
                  "without spaces.");
      d->id = s;
    } else if (strcmp(key, "platform") == 0) {
      if (strcmp(s, "ios") != 0 && strcmp(s, "android") != 0)
        add_error(err, "device", 0, 0, "device.platform must be \"ios\" or \"android\".");
      d->platform = s;
    } else {
      bool ok = n <= 4096;
      for (size_t i = 0; ok && i < n; i++) ok = !is_control((unsigned char)s[i]);
      if (!ok)
        add_error(err, "device", 0, 0, "device.push_token must be printable and at most 4096 "
                  "bytes.");
      d->push_token = s;
    }
  }
  if (!error_count(err) && (!d->id || !d->platform))
    add_error(err, "device", 0, 0, "A device needs an id and a platform.");
  if (error_count(err)) {
    set_detail(err, "The device description is not valid; fix it and log in again.");
    return -EINVAL;
  }
  return 0;
}


typedef struct login_lookup {
  int64_t user_id;
  char *hash;
  bool enabled;
  bool stale_domain; /* the login name carries an earlier domain */
  int64_t generation;
  char domain[256];
  char local[DIRECTORY_NAME_MAX + 1];
} login_lookup_t;

/* Finds the user a login name means. -ENOENT when none. */
static int login_lookup(store_txn_t *t, const char *login, login_lookup_t *out) {
  int r = store_domain_current(t, &out->generation, out->domain, sizeof out->domain);
  if (r < 0) return r;
  const char *at = strrchr(login, '@');
  size_t n = at ? (size_t)(at - login) : strlen(login);
  if (n == 0 || n > DIRECTORY_NAME_MAX) return -ENOENT;
  memcpy(out->local, login, n);
  out->local[n] = '\0';
  lower_ascii(out->local);
  if (at) {
    char *host = NULL;
    validate_error_t verr;
    if (validate_host(at + 1, HOST_TWO_LABELS, &host, &verr) != 0) return -ENOENT;
    if (strcmp(host, out->domain) != 0) {
      bool was = false;
      r = store_domain_was(t, host, out->generation, &was);
      free(host);
      if (r < 0) return r;
      if (!was) return -ENOENT;
      out->stale_domain = true;
    } else {
      free(host);
    }
  }
  return store_user_credentials(t, out->local, &out->user_id, &out->hash, &out->enabled);
}

/* The device row and the token. */
static int issue_token(store_txn_t *t, const login_lookup_t *who, const device_input_t *dev,
                       const char *login_used, directory_login_t *out) {
  int64_t now = now_seconds();
  char hash[65];
  free(out->token);
  out->token = NULL;
  int r = secret_random_token(32, &out->token);
  if (r < 0) return r;
  secret_sha256_hex(out->token, hash);
  if (dev->id) {
    if ((r = store_device_put(t, who->user_id, dev->id, dev->platform, dev->push_token,
                              login_used, who->generation)) < 0)
      return r;
    /* One device, one live token: a new login replaces the last one. */
    if ((r = store_tokens_delete_device(t, who->user_id, dev->id)) < 0) return r;
  }
  if ((r = store_tokens_purge(t, who->user_id, now)) < 0) return r;
  /* A bounded number of live logins per user: the oldest goes first. */
  int64_t trimmed = 0;
  if ((r = store_tokens_trim(t, who->user_id, DIRECTORY_TOKENS_PER_USER - 1, &trimmed)) < 0)
    return r;
  out->expires = now + DIRECTORY_TOKEN_SECONDS;
  return store_token_put(t, hash, who->user_id, dev->id, who->generation, now, out->expires);
}

typedef struct login_txn {
  const login_lookup_t *who;
  const device_input_t *dev;
  const char *login_used;
  directory_login_t *out;
} login_txn_t;

static int login_txn(store_txn_t *t, void *vctx) {
  login_txn_t *c = vctx;
  int64_t gen;
  char domain[256];
  int r = store_domain_current(t, &gen, domain, sizeof domain);
  /* The domain changed while the password was checked: the name is stale. */
  if (r == 0 && gen != c->who->generation) r = -ESTALE;
  return r < 0 ? r : issue_token(t, c->who, c->dev, c->login_used, c->out);
}

static int lookup(store_t *store, const char *login, login_lookup_t *who) {
  store_txn_t *t;
  int r = store_read_begin(store, "client login", &t);
  if (r < 0) return r;
  r = login_lookup(t, login, who);
  store_read_end(t);
  return r;
}

/* Issues the token; on failure none is left in *out. */
static int login_finish(store_t *store, const login_lookup_t *who, const device_input_t *dev,
                        const char *login_used, directory_login_t *out) {
  login_txn_t c = {.who = who, .dev = dev, .login_used = login_used, .out = out};
  int r = store_run_txn(store, "issue a client token", login_txn, &c);
  if (r < 0) {
    if (out->token) explicit_bzero(out->token, strlen(out->token));
    free(out->token);
    out->token = NULL;
  }
  return r;
}

int directory_login(store_t *store, const char *login, const char *password, const json_t *device,
                    directory_login_t *out, problem_t *err) {
  memset(out, 0, sizeof *out);
  device_input_t dev;
  int r = device_parse(device, &dev, err);
  if (r < 0) return r;
  if (!login || !password || strlen(login) > 400) return -EACCES;

  login_lookup_t who = {0};
  r = lookup(store, login, &who);
  if (r < 0 && r != -ENOENT) return r;

  /* Argon2id outside any transaction: it is the slow part, and logins must
   * not queue behind each other on the store. */
  pthread_once(&dummy_once, make_dummy_hash);
  const char *hash = who.hash ? who.hash : dummy_hash;
  int v = hash ? secret_password_verify(hash, password) : -EACCES;
  bool ok = r == 0 && who.hash && v == 0 && who.enabled;
  free(who.hash);
  who.hash = NULL;
  if (!ok) return -EACCES;
  snprintf(out->login, sizeof out->login, "%s@%s", who.local, who.domain);
  if (who.stale_domain) return -ESTALE;

  r = login_finish(store, &who, &dev, login, out);
  if (r == -ESTALE) {
    set_detail(err, "The server's domain changed just now; log in again.");
    return -EACCES;
  }
  return r;
}

int directory_login_windows(store_t *store, const char *name, directory_login_t *out,
                            problem_t *err) {
  memset(out, 0, sizeof *out);
  if (!name || strchr(name, '@')) return -EINVAL;
  login_lookup_t who = {0};
  const device_input_t none = {0};
  int r = lookup(store, name, &who);
  free(who.hash);
  who.hash = NULL;
  if (r == -ENOENT || (r == 0 && !who.enabled)) {
    set_detail(err, r == 0 ? "The user %s is disabled; ask the administrator to enable it."
                           : "There is no user %s any more.",
               name);
    return -EACCES;
  }
  if (r < 0) return r;
  snprintf(out->login, sizeof out->login, "%s@%s", who.local, who.domain);
  r = login_finish(store, &who, &none, out->login, out);
  if (r == -ESTALE) {
    set_detail(err, "The server's domain changed just now; log in again.");
    return -EACCES;
  }
  return r;
}

int directory_token_user(store_t *store, const char *token, json_t **user, problem_t *err) {
  *user = NULL;
  if (!token || !*token || strlen(token) > 256) {
    set_detail(err, "The token is not valid; log in again.");
    return -EACCES;
  }
  char hash[65];
  secret_sha256_hex(token, hash);
  store_txn_t *t;
  int r = store_read_begin(store, "check a client token", &t);
  if (r < 0) return r;
  int64_t gen = 0;
  char domain[256];
  store_token_t tok;
  r = store_domain_current(t, &gen, domain, sizeof domain);
  if (r == 0) r = store_token_find(t, hash, &tok);
  store_read_end(t);
  if (r == -ENOENT) {
    set_detail(err, "The token is not valid (logged out or replaced); log in again.");
    return -EACCES;
  }
  if (r < 0) return r;
  const char *name = tok.user.name;
  if (tok.expires <= now_seconds()) {
    set_detail(err, "The token has expired; log in again.");
    return -EACCES;
  }
  if (!tok.user.enabled) {
    set_detail(err, "The account %s@%s is disabled; ask your administrator.", name, domain);
    return -EACCES;
  }
  if (tok.mobile && tok.generation < gen) {
    set_detail(err, "The server's domain changed from %s to %s: set up the login again on this "
                    "device with the login name %s@%s.",
               tok.has_issued_domain ? tok.issued_domain : "an earlier domain", domain, name,
               domain);
    return -ESTALE;
  }
  if (tok.mobile && !tok.device_registered) {
    set_detail(err, "This device's registration was removed; set up the login again.");
    return -EACCES;
  }
  if (!(*user = user_doc(&tok.user, domain))) return -ENOMEM;
  json_t *d = tok.mobile ? json_pack("{s:s, s:s, s:s}", "id", tok.device_id, "platform",
                                     tok.platform, "login", tok.login)
                         : json_null();
  json_object_set_new(*user, "device", d ? d : json_null());
  return 0;
}
