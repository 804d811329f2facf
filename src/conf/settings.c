/* The settings plane: snapshots, precedence, the change pipeline.
 *
 * A change follows Redis' CONFIG SET and nginx's new-cycle model: check every
 * key, build the new snapshot beside the old one, check the cross-field rules
 * on it, run the apply hooks, write it in one transaction, then swap the
 * pointer. Any failure leaves the old snapshot, the store and the running
 * server as they were. */
#include "conf/settings.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OWNERS 32

struct settings_snapshot {
  atomic_int refs;
  uint64_t version;
  json_t **value;     /* per catalogue row: the value in force (secrets: plain text or NULL) */
  json_t **effective; /* per row: value with blank-means-default resolved */
  setting_source_t *source;
  json_t *warnings;   /* object: key -> [{"code","message"}] */
  char *document;
  size_t document_len;
  char hash[65]; /* hex SHA-256 of the document: equal on nodes that agree */
};

static struct {
  pthread_mutex_t swap_lock;   /* guards `current` and taking a reference to it */
  pthread_mutex_t change_lock; /* one change at a time */
  settings_snapshot_t *current;
  store_t *store;
  const secret_key_t *key;
  json_t *stored;           /* key -> value as in the store, secrets in plain text */
  json_t *env;              /* key -> value from ATRIUM_<KEY> */
  json_t *install_defaults; /* key -> value fixed at first start */
  json_t *install_stale;    /* key -> why that value no longer matches this start */
  json_t *load_warnings;    /* key -> message about an unusable stored value */
  const settings_owner_t *owners[MAX_OWNERS];
  size_t owner_count;
  void (*on_swap)(uint64_t version, void *ctx);
  void *on_swap_ctx;
} S = {
    .swap_lock = PTHREAD_MUTEX_INITIALIZER,
    .change_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ---- snapshots ---------------------------------------------------------------------- */

static void snapshot_free(settings_snapshot_t *snap) {
  if (!snap) return;
  for (size_t i = 0; i < catalogue_count; i++) {
    json_decref(snap->value ? snap->value[i] : NULL);
    json_decref(snap->effective ? snap->effective[i] : NULL);
  }
  free(snap->value);
  free(snap->effective);
  free(snap->source);
  json_decref(snap->warnings);
  free(snap->document);
  free(snap);
}

settings_snapshot_t *settings_acquire(void) {
  /* The lock covers a pointer copy and an increment: it keeps the snapshot
   * from being freed between the two, and is never held across real work. */
  pthread_mutex_lock(&S.swap_lock);
  settings_snapshot_t *snap = S.current;
  if (snap) atomic_fetch_add(&snap->refs, 1);
  pthread_mutex_unlock(&S.swap_lock);
  return snap;
}

void settings_release(settings_snapshot_t *snap) {
  if (snap && atomic_fetch_sub(&snap->refs, 1) == 1) snapshot_free(snap);
}

static void snapshot_swap(settings_snapshot_t *next) {
  pthread_mutex_lock(&S.swap_lock);
  settings_snapshot_t *old = S.current;
  S.current = next;
  pthread_mutex_unlock(&S.swap_lock);
  settings_release(old);
}

uint64_t settings_version(const settings_snapshot_t *snap) { return snap->version; }

const char *settings_hash(const settings_snapshot_t *snap) { return snap->hash; }

void settings_set_swap_hook(void (*fn)(uint64_t version, void *ctx), void *ctx) {
  pthread_mutex_lock(&S.change_lock);
  S.on_swap = fn;
  S.on_swap_ctx = ctx;
  pthread_mutex_unlock(&S.change_lock);
}

/* Under change_lock, after a new snapshot is in force. */
static void swapped(uint64_t version) {
  if (S.on_swap) S.on_swap(version, S.on_swap_ctx);
}

static int row_of(const char *key) {
  int i = catalogue_find(key);
  /* Asking for a key that is not in the table is a programming error. */
  if (i < 0) abort();
  return i;
}

const json_t *settings_value(const settings_snapshot_t *snap, const char *key) {
  return snap->effective[row_of(key)];
}

const char *settings_string(const settings_snapshot_t *snap, const char *key) {
  const char *s = json_string_value(settings_value(snap, key));
  return s ? s : "";
}

bool settings_bool(const settings_snapshot_t *snap, const char *key) {
  return json_is_true(settings_value(snap, key));
}

json_int_t settings_int(const settings_snapshot_t *snap, const char *key) {
  return json_integer_value(settings_value(snap, key));
}

const json_t *settings_raw_value(const settings_snapshot_t *snap, const char *key) {
  return snap->value[row_of(key)];
}

setting_source_t settings_source(const settings_snapshot_t *snap, const char *key) {
  return snap->source[row_of(key)];
}

const char *settings_document(const settings_snapshot_t *snap, size_t *len) {
  if (len) *len = snap->document_len;
  return snap->document;
}

/* ---- derived values ------------------------------------------------------------------- */

static const char *const source_names[] = {
    [SETTING_SOURCE_DEFAULT] = "default",
    [SETTING_SOURCE_STORE] = "store",
    [SETTING_SOURCE_ENV] = "env",
    [SETTING_SOURCE_INSTALL] = "install",
};

/* settings_warn_fn: wctx is the snapshot's warnings object. */
static void snapshot_warn(void *wctx, const char *key, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void snapshot_warn(void *wctx, const char *key, const char *code, const char *fmt, ...) {
  json_t *warnings = wctx;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *list = json_object_get(warnings, key);
  if (!list) {
    list = json_array();
    json_object_set_new(warnings, key, list);
  }
  json_array_append_new(list, json_pack("{s:s, s:s}", "code", code, "message", msg));
}

/* Builds a snapshot from the layers: environment > store > default. */
static settings_snapshot_t *snapshot_build(const json_t *stored, const json_t *env,
                                           uint64_t version) {
  settings_snapshot_t *snap = calloc(1, sizeof *snap);
  if (!snap) return NULL;
  atomic_init(&snap->refs, 1);
  snap->version = version;
  snap->value = calloc(catalogue_count, sizeof *snap->value);
  snap->effective = calloc(catalogue_count, sizeof *snap->effective);
  snap->source = calloc(catalogue_count, sizeof *snap->source);
  snap->warnings = json_object();
  if (!snap->value || !snap->effective || !snap->source || !snap->warnings) goto fail;

  for (size_t i = 0; i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    json_t *v;
    if ((v = json_object_get(env, def->key))) {
      snap->source[i] = SETTING_SOURCE_ENV;
      snap->value[i] = json_incref(v);
    } else if ((v = json_object_get(stored, def->key))) {
      snap->source[i] = SETTING_SOURCE_STORE;
      snap->value[i] = json_incref(v);
    } else {
      snap->source[i] = SETTING_SOURCE_DEFAULT;
      if (def->flags & SETTING_F_INSTALL_DEFAULT) {
        /* Fixed at first start from that start's host name and port: the
         * admin must be able to tell it from a default that follows. */
        snap->source[i] = SETTING_SOURCE_INSTALL;
        snap->value[i] = json_incref(json_object_get(S.install_defaults, def->key));
      } else if (def->default_json)
        snap->value[i] = json_loads(def->default_json, JSON_DECODE_ANY, NULL);
      /* else: secrets stay NULL (unset); computed defaults come below. */
    }
    const char *why = json_string_value(json_object_get(S.load_warnings, def->key));
    if (why && snap->source[i] != SETTING_SOURCE_ENV)
      snapshot_warn(snap->warnings, def->key, "stored-value-ignored", "%s", why);
    const char *stale = json_string_value(json_object_get(S.install_stale, def->key));
    if (stale && snap->source[i] == SETTING_SOURCE_INSTALL)
      snapshot_warn(snap->warnings, def->key, "install-default-stale", "%s", stale);
  }

  /* Effective values: blank-means-default resolved against the base URL or
   * the domain. */
  int i_base = row_of("server.public_url");
  const char *base = json_string_value(snap->value[i_base]);
  for (size_t i = 0; i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    const char *s = json_string_value(snap->value[i]);
    if ((def->flags & SETTING_F_BLANK_DEFAULT) && s && !*s) {
      if (def->effective_path) {
        char url[VALIDATE_URL_MAX + 64];
        snprintf(url, sizeof url, "%s%s", base ? base : "", def->effective_path);
        snap->effective[i] = json_string(url);
      } else {
        snap->effective[i] = json_incref(snap->value[row_of("domain.name")]);
      }
    } else {
      snap->effective[i] = json_incref(snap->value[i]);
    }
  }
  /* Defaults that depend on other settings, from the owner of the key. */
  for (size_t i = 0; i < catalogue_count; i++) {
    if (snap->value[i] || catalogue[i].default_json || catalogue[i].type == SETTING_SECRET)
      continue;
    for (size_t o = 0; o < S.owner_count && !snap->value[i]; o++)
      if (S.owners[o]->computed_default)
        snap->value[i] = S.owners[o]->computed_default(catalogue[i].key, snap);
    /* No module computes it (a test without that module): null, not absent. */
    if (!snap->value[i]) snap->value[i] = json_null();
    snap->effective[i] = json_incref(snap->value[i]);
  }

  /* Warnings: accepted, but the admin should know. */
  for (size_t o = 0; o < S.owner_count; o++)
    if (S.owners[o]->warn) S.owners[o]->warn(snap, snapshot_warn, snap->warnings);
  return snap;
fail:
  snapshot_free(snap);
  return NULL;
}

static int snapshot_render(settings_snapshot_t *snap) {
  json_t *settings = json_object();
  json_t *doc = json_pack("{s:I, s:o}", "version", (json_int_t)snap->version, "settings", settings);
  if (!doc) return -ENOMEM;
  for (size_t i = 0; i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    json_t *entry;
    if (def->type == SETTING_SECRET)
      entry = json_pack("{s:{s:b}}", "value", "set", snap->value[i] != NULL);
    else
      entry = json_pack("{s:O}", "value", snap->value[i]);
    if (!entry) {
      json_decref(doc);
      return -ENOMEM;
    }
    if (def->flags & SETTING_F_BLANK_DEFAULT)
      json_object_set(entry, "effective", snap->effective[i]);
    json_object_set_new(entry, "source", json_string(source_names[snap->source[i]]));
    json_t *w = json_object_get(snap->warnings, def->key);
    if (w) json_object_set(entry, "warnings", w);
    json_object_set_new(settings, def->key, entry);
  }
  snap->document = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(doc);
  if (!snap->document) return -ENOMEM;
  snap->document_len = strlen(snap->document);
  secret_sha256_hex(snap->document, snap->hash);
  return 0;
}

/* ---- owners and their rules --------------------------------------------------------------- */

int settings_register_owner(const settings_owner_t *owner) {
  pthread_mutex_lock(&S.change_lock);
  int r = -ENOSPC;
  if (S.owner_count < MAX_OWNERS) {
    S.owners[S.owner_count++] = owner;
    r = 0;
  }
  pthread_mutex_unlock(&S.change_lock);
  return r;
}

static bool has_error_for(const problem_t *p, const char *key) {
  size_t i;
  json_t *e;
  json_array_foreach(p->errors, i, e) {
    if (strcmp(json_string_value(json_object_get(e, "key")), key) == 0) return true;
  }
  return false;
}

/* Every owner's cross-field rules on `snap`. A key that already has an
 * error of its own (an invalid value, which the snapshot does not carry)
 * gets no second one from a rule that saw its old value. */
static void check_owners(const settings_snapshot_t *snap, problem_t *p) {
  problem_t cross = PROBLEM_INIT;
  for (size_t o = 0; o < S.owner_count; o++)
    if (S.owners[o]->check) S.owners[o]->check(snap, &cross);
  size_t i;
  json_t *e;
  json_t *keep = json_array();
  json_array_foreach(cross.errors, i, e) {
    if (!has_error_for(p, json_string_value(json_object_get(e, "key"))))
      json_array_append(keep, e);
  }
  problem_add_errors(p, keep);
  json_decref(keep);
  problem_clear(&cross);
}

/* ---- persistence ------------------------------------------------------------------------- */

static char *value_text(const json_t *v) { return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY); }

/* What the audit log shows for a value: secrets never appear. */
static char *audit_text(const setting_def_t *def, const json_t *v) {
  if (!v) return NULL;
  if (def->type == SETTING_SECRET) return strdup(*json_string_value(v) ? "(secret)" : "(unset)");
  return value_text(v);
}

static int persist_row(store_txn_t *t, const setting_def_t *def, const json_t *v) {
  if (!v) return store_settings_delete(t, def->key);
  char *sealed = NULL;
  json_t *js = NULL;
  if (def->type == SETTING_SECRET) {
    int r = secret_seal(S.key, json_string_value(v), &sealed);
    if (r < 0) return r;
    v = js = json_string(sealed);
    free(sealed);
    if (!js) return -ENOMEM;
  }
  char *text = value_text(v);
  json_decref(js);
  if (!text) return -ENOMEM;
  int r = store_settings_put(t, def->key, text);
  free(text);
  return r;
}

/* ---- the change pipeline ------------------------------------------------------------------ */

static void outcome_init(settings_outcome_t *out) {
  memset(out, 0, sizeof *out);
  out->warnings = json_array();
}

static settings_snapshot_t *snapshot_ref(settings_snapshot_t *snap) {
  atomic_fetch_add(&snap->refs, 1);
  return snap;
}

void settings_outcome_clear(settings_outcome_t *out) {
  if (!out) return;
  settings_release(out->snapshot);
  out->snapshot = NULL;
  problem_clear(&out->problem);
  json_decref(out->warnings);
  out->warnings = NULL;
}

static void collect_warnings(const settings_snapshot_t *snap, json_t *into) {
  const char *key;
  json_t *list;
  json_object_foreach(snap->warnings, key, list) {
    size_t i;
    json_t *w;
    json_array_foreach(list, i, w) {
      json_array_append_new(into, json_pack("{s:s, s:O, s:O}", "key", key, "code",
                                            json_object_get(w, "code"), "message",
                                            json_object_get(w, "message")));
    }
  }
}

/* The settings to change, from the request body. For an import, values equal
 * to the ones in force are left out: that lets an export of this server (with
 * its domain and its environment-locked keys) be imported again. */
static json_t *changes_from_body(const json_t *body, settings_op_t op,
                                 const settings_snapshot_t *cur, problem_t *p) {
  if (!json_is_object(body)) {
    problem_set(p, 400, "malformed", "Malformed request",
                "The request body must be a JSON object mapping setting keys to values, such as "
                "{\"proxy.port\": 3128}.");
    return NULL;
  }
  if (op != SETTINGS_OP_IMPORT) return json_incref((json_t *)body);

  const char *format = json_string_value(json_object_get(body, "format"));
  json_t *fv = json_object_get(body, "format_version");
  json_t *settings = json_object_get(body, "settings");
  if (!format || strcmp(format, "atrium-settings") != 0 || !json_is_object(settings)) {
    problem_set(p, 400, "malformed", "Not a settings export",
                "The document must be an export of Atrium settings: an object with "
                "\"format\": \"atrium-settings\", \"format_version\": 1 and \"settings\".");
    return NULL;
  }
  if (!json_is_integer(fv) || json_integer_value(fv) != 1) {
    problem_set(p, 400, "malformed", "Unsupported export format",
                "This server reads format_version 1; the document has another version. Export "
                "it again from a server of this version.");
    return NULL;
  }
  json_t *changes = json_object();
  const char *key;
  json_t *v;
  json_object_foreach(settings, key, v) {
    int i = catalogue_find(key);
    if (i >= 0 && catalogue[i].type == SETTING_SECRET && json_is_object(v)) continue;
    if (i >= 0 && cur->value[i] && json_equal(v, cur->value[i])) continue;
    json_object_set(changes, key, v);
  }
  return changes;
}

static bool owner_changed(const settings_owner_t *owner, const json_t *changed_keys) {
  size_t i;
  json_t *k;
  json_array_foreach(changed_keys, i, k) {
    const setting_def_t *def = &catalogue[catalogue_find(json_string_value(k))];
    for (const char *const *sec = owner->sections; sec && *sec; sec++)
      if (strcmp(def->section, *sec) == 0) return true;
    for (const char *const *sec = owner->follows; sec && *sec; sec++)
      if (strcmp(def->section, *sec) == 0) return true;
  }
  return false;
}

/* The first changed key of one of the owner's sections: the field an apply
 * failure is shown beside. */
static const char *owner_key(const settings_owner_t *owner, const json_t *changed_keys) {
  size_t i;
  json_t *k;
  json_array_foreach(changed_keys, i, k) {
    const char *key = json_string_value(k);
    const char *section = catalogue[catalogue_find(key)].section;
    for (const char *const *sec = owner->sections; sec && *sec; sec++)
      if (strcmp(section, *sec) == 0) return key;
  }
  return owner->name;
}

/* Calls the apply hook of owners [from, to) that the change touches again
 * with the roles swapped, newest first: undoes what they did. */
static void undo_apply(size_t to, const settings_snapshot_t *old_snap,
                       const settings_snapshot_t *new_snap, const json_t *changed_keys) {
  for (size_t u = to; u-- > 0;) {
    const settings_owner_t *o = S.owners[u];
    if (!o->apply || !owner_changed(o, changed_keys)) continue;
    char ignored[8];
    o->apply(new_snap, old_snap, o->ctx, ignored, sizeof ignored);
  }
}

/* Runs the hook of every owner the change touches, once each; on a failure
 * undoes those that ran. */
static int run_apply_hooks(const settings_snapshot_t *old_snap, const settings_snapshot_t *new_snap,
                           const json_t *changed_keys, settings_outcome_t *out) {
  for (size_t h = 0; h < S.owner_count; h++) {
    const settings_owner_t *o = S.owners[h];
    if (!o->apply || !owner_changed(o, changed_keys)) continue;
    char err[384] = "";
    if (o->apply(old_snap, new_snap, o->ctx, err, sizeof err) == 0) continue;
    undo_apply(h, old_snap, new_snap, changed_keys);
    problem_add_error(&out->problem, owner_key(o, changed_keys), "%s",
                      err[0] ? err : "Could not be applied.");
    return problem_set(&out->problem, 422, "apply-failed", "The change could not be applied",
                       "The server could not put the new %s settings into effect, so nothing was "
                       "changed: %s",
                       o->name, err[0] ? err : "no reason given");
  }
  return 0;
}

/* The keys whose stored value differs between a and b, in catalogue order. */
static json_t *keys_changed(const json_t *a_stored, const json_t *b_stored) {
  json_t *keys = json_array();
  for (size_t i = 0; keys && i < catalogue_count; i++) {
    json_t *a = json_object_get(a_stored, catalogue[i].key);
    json_t *b = json_object_get(b_stored, catalogue[i].key);
    if ((a == NULL) != (b == NULL) || (a && !json_equal(a, b)))
      json_array_append_new(keys, json_string(catalogue[i].key));
  }
  return keys;
}

/* How a change may differ from a plain PATCH: an operation that owns an
 * operation-only key (the domain change) may set it, and writes its own rows
 * in the same transaction. */
typedef struct change_opts {
  bool allow_operation_only;
  settings_txn_fn in_txn;
  void *ctx;
} change_opts_t;

typedef struct persist_ctx {
  const json_t *new_stored, *changed_keys;
  const char *actor;
  uint64_t version;
  const change_opts_t *opts;
  problem_t *problem; /* set by in_txn when it refuses */
} persist_ctx_t;

static int persist_txn(store_txn_t *t, void *vctx) {
  persist_ctx_t *c = vctx;
  /* A retried transaction starts from scratch, and so does its problem. */
  problem_clear(c->problem);
  size_t i;
  json_t *k;
  int r = 0;
  json_array_foreach(c->changed_keys, i, k) {
    const char *key = json_string_value(k);
    const setting_def_t *def = &catalogue[catalogue_find(key)];
    json_t *nv = json_object_get(c->new_stored, key);
    if ((r = persist_row(t, def, nv)) < 0) return r;
    char *old_text = audit_text(def, json_object_get(S.stored, key));
    char *new_text = audit_text(def, nv);
    /* A reset shows as the default it falls back to. */
    if (!new_text && def->default_json) new_text = strdup(def->default_json);
    r = store_audit_add(t, c->actor, key, old_text, new_text);
    free(old_text);
    free(new_text);
    if (r < 0) return r;
  }
  /* Compare and set: another node may have committed a version this one
   * has not loaded yet; writing on top of it would lose that change. */
  uint64_t in_store = 0;
  if ((r = store_settings_version(t, &in_store)) < 0) return r;
  if (in_store != c->version - 1) return -ESTALE;
  if ((r = store_settings_set_version(t, c->version)) < 0) return r;
  if (c->opts->in_txn && (r = c->opts->in_txn(t, c->opts->ctx, c->problem)) < 0) return r;
  return 0;
}

static int persist_change(const json_t *new_stored, const json_t *changed_keys, const char *actor,
                          uint64_t version, const change_opts_t *opts, problem_t *txn_problem) {
  persist_ctx_t c = {.new_stored = new_stored, .changed_keys = changed_keys, .actor = actor,
                     .version = version, .opts = opts, .problem = txn_problem};
  return store_run_txn(S.store, "settings change", persist_txn, &c);
}

/* Checks every key of the request into new_stored; the failing ones into
 * out->problem (invalid values) or conflicts (keys that cannot be changed
 * this way). */
static void check_keys(const json_t *changes, const change_opts_t *opts, json_t *new_stored,
                       settings_outcome_t *out, problem_t *conflicts) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)changes, key, v) {
    int i = catalogue_find(key);
    if (i < 0) {
      problem_add_error(&out->problem, key,
                        "Is not a setting of this server; GET /api/v1/settings/schema lists them.");
      continue;
    }
    const setting_def_t *def = &catalogue[i];
    if ((def->flags & SETTING_F_OPERATION_ONLY) && !opts->allow_operation_only) {
      problem_add_error(conflicts, key,
                        "Is changed only through the domain change operation (POST "
                        "/api/v1/domain/change or `atriumctl domain change NEW`), which renames "
                        "every user at once.");
      continue;
    }
    if (json_object_get(S.env, key)) {
      char env[128];
      catalogue_env_name(def, env, sizeof env);
      problem_add_error(conflicts, key,
                        "Is set by the environment variable %s; remove it from the server's "
                        "environment to manage this setting here.",
                        env);
      continue;
    }
    if (json_is_null(v) ||
        (def->type == SETTING_SECRET && json_is_string(v) && !*json_string_value(v))) {
      json_object_del(new_stored, key); /* back to the default / unset */
      continue;
    }
    json_t *norm = NULL;
    validate_error_t verr = {.field = ""};
    if (catalogue_check(def, v, &norm, &verr) < 0) {
      json_t *e = problem_add_error(&out->problem, key, "%s",
                                    verr.message[0] ? verr.message : "Is invalid.");
      if (e && verr.field[0]) json_object_set_new(e, "field", json_string(verr.field));
      continue;
    }
    json_object_set_new(new_stored, key, norm);
  }
}

/* change_locked's answer when the store holds a newer version than this
 * node's snapshot: reload, then make the change again. */
#define CHANGE_STALE (-2)
#define CHANGE_ATTEMPTS 4

static int reload_locked(char *err, size_t errlen);
static int load_stored(json_t *raw, json_t *into, json_t *warnings);

static int change_locked(const json_t *body, settings_op_t op, const char *actor, int64_t if_match,
                         const change_opts_t *opts, settings_snapshot_t *cur,
                         settings_outcome_t *out) {
  out->version = cur->version;
  json_t *changes = changes_from_body(body, op, cur, &out->problem);
  if (!changes) return -1;

  int rc = -1;
  json_t *new_stored = NULL, *changed_keys = NULL;
  problem_t conflicts = PROBLEM_INIT;
  settings_snapshot_t *next = NULL;

  if (if_match >= 0 && (uint64_t)if_match != cur->version) {
    problem_set(&out->problem, 412, "stale-version", "The settings have changed",
                "Someone changed the settings since you loaded them (your version %lld, now "
                "%llu). Reload them and make your change again.",
                (long long)if_match, (unsigned long long)cur->version);
    goto done;
  }

  if (!(new_stored = json_deep_copy(S.stored))) goto oom;
  check_keys(changes, opts, new_stored, out, &conflicts);
  if (problem_error_count(&conflicts)) {
    size_t n = problem_error_count(&conflicts);
    problem_add_errors(&conflicts, out->problem.errors);
    problem_clear(&out->problem);
    problem_add_errors(&out->problem, conflicts.errors);
    problem_set(&out->problem, 409,
                json_object_get(changes, "domain.name") ? "operation-only" : "env-locked",
                "Setting cannot be changed here",
                "%zu setting(s) in the request cannot be changed this way; nothing was changed.", n);
    goto done;
  }
  size_t invalid = problem_error_count(&out->problem);

  /* Derived changes (the QoS policies follow the meeting URL), from a probe
   * of what the request makes of the settings. */
  settings_snapshot_t *probe = snapshot_build(new_stored, S.env, cur->version);
  if (!probe) goto oom;
  for (size_t o = 0; o < S.owner_count; o++)
    if (S.owners[o]->derive) S.owners[o]->derive(cur, probe, changes, new_stored);
  snapshot_free(probe);

  /* The rules run even when some values were refused, on a snapshot that
   * keeps those keys as they are: the answer lists every key to fix. */
  next = snapshot_build(new_stored, S.env, cur->version + 1);
  if (!next) goto oom;
  check_owners(next, &out->problem);
  if (problem_error_count(&out->problem)) {
    if (invalid)
      problem_set(&out->problem, 422, "validation", "Invalid settings",
                  "%zu setting(s) have invalid values; nothing was changed.",
                  problem_error_count(&out->problem));
    else
      problem_set(&out->problem, 422, "validation", "Invalid settings",
                  "The settings do not fit together; nothing was changed.");
    goto done;
  }
  collect_warnings(next, out->warnings);

  changed_keys = keys_changed(S.stored, new_stored);
  out->changed = (int)json_array_size(changed_keys);
  if (op == SETTINGS_OP_VALIDATE || out->changed == 0) {
    out->snapshot = snapshot_ref(cur);
    rc = 0;
    goto done;
  }

  if (run_apply_hooks(cur, next, changed_keys, out) < 0) goto done;
  problem_t txn_problem = PROBLEM_INIT;
  int r = persist_change(new_stored, changed_keys, actor, next->version, opts, &txn_problem);
  if (r < 0) {
    undo_apply(S.owner_count, cur, next, changed_keys);
    if (r == -ESTALE) {
      problem_clear(&txn_problem);
      problem_set(&out->problem, 503, "stale-node", "The settings changed on another node",
                  "Another node changed the settings while this one was making your change, "
                  "and this node could not load them in time; nothing was changed. Try again.");
      rc = CHANGE_STALE;
      goto done;
    }
    if (problem_failed(&txn_problem)) {
      out->problem = txn_problem;
    } else if (r == -ENOTCONN || r == -EAGAIN) {
      problem_clear(&txn_problem);
      problem_set(&out->problem, 503, "store-unavailable", "The settings store is unavailable",
                  "The settings store cannot be reached or stayed busy, so nothing was changed: "
                  "%s. Try again in a moment.",
                  store_last_error(S.store));
    } else {
      problem_clear(&txn_problem);
      problem_set(&out->problem, 500, "store", "The settings could not be saved",
                  "Writing to the settings store failed, so nothing was changed: %s. Check the "
                  "server log and the free space and permissions of the data directory.",
                  store_last_error(S.store));
    }
    goto done;
  }
  if (snapshot_render(next) < 0) goto oom; /* cannot happen after a successful build but OOM */
  json_decref(S.stored);
  S.stored = new_stored;
  new_stored = NULL;
  out->version = next->version;
  out->snapshot = snapshot_ref(next);
  snapshot_swap(next);
  next = NULL;
  for (size_t o = 0; o < S.owner_count; o++)
    if (S.owners[o]->committed && owner_changed(S.owners[o], changed_keys))
      S.owners[o]->committed(cur, out->snapshot, S.owners[o]->ctx);
  swapped(out->version);
  rc = 0;
  goto done;

oom:
  problem_set(&out->problem, 500, "internal", "Out of memory",
              "The server ran out of memory; nothing was changed.");
done:
  snapshot_free(next);
  json_decref(new_stored);
  json_decref(changed_keys);
  problem_clear(&conflicts);
  json_decref(changes);
  return rc;
}

/* Every change, plain or an operation's, is serialised here. */
static int change(const json_t *body, settings_op_t op, const char *actor, int64_t if_match,
                  const change_opts_t *opts, settings_outcome_t *out) {
  outcome_init(out);
  if (!out->warnings)
    return problem_set(&out->problem, 500, "internal", "Out of memory",
                       "The server ran out of memory.");
  pthread_mutex_lock(&S.change_lock);
  int rc = -1;
  for (int attempt = 0; attempt < CHANGE_ATTEMPTS; attempt++) {
    settings_snapshot_t *cur = settings_acquire();
    rc = change_locked(body, op, actor ? actor : "unknown", if_match, opts, cur, out);
    settings_release(cur);
    if (rc != CHANGE_STALE || attempt + 1 == CHANGE_ATTEMPTS) break;
    /* Catch up with the store, then judge the request (If-Match too)
     * against what is really current. */
    char err[256];
    if (reload_locked(err, sizeof err) < 0) break;
    settings_outcome_clear(out);
    outcome_init(out);
  }
  pthread_mutex_unlock(&S.change_lock);
  return rc < 0 ? -1 : rc;
}

int settings_change(const json_t *body, settings_op_t op, const char *actor, int64_t if_match,
                    settings_outcome_t *out) {
  static const change_opts_t plain = {0};
  return change(body, op, actor, if_match, &plain, out);
}

int settings_change_operation(const json_t *changes, const char *actor, settings_txn_fn in_txn,
                              void *ctx, settings_outcome_t *out) {
  const change_opts_t opts = {.allow_operation_only = true, .in_txn = in_txn, .ctx = ctx};
  return change(changes, SETTINGS_OP_PATCH, actor, -1, &opts, out);
}

int settings_validate_body(const json_t *body, settings_outcome_t *out) {
  return settings_change(body, SETTINGS_OP_VALIDATE, NULL, -1, out);
}

/* ---- following the store: another node's change, or one made by hand ------------------ */

/* Loads what the store holds and, when its version is not the one in force,
 * makes it current: the rules are checked (a snapshot that breaks them is
 * refused and the old one stays), every owner the difference touches runs
 * its apply hook with (old, new) and then its committed hook. The change is
 * already committed elsewhere, so a failing apply hook cannot undo it: it
 * is reported (1 and the sentence in err) and the rest goes on. */
static int reload_locked(char *err, size_t errlen) {
  err[0] = '\0';
  json_t *raw = NULL;
  uint64_t version = 0;
  store_txn_t *t;
  int r = store_read_begin(S.store, "reload the settings", &t);
  if (r == 0) {
    r = store_settings_load(t, &raw, &version);
    store_read_end(t);
  }
  if (r < 0) {
    snprintf(err, errlen, "Cannot read the stored settings: %s.", store_last_error(S.store));
    return r;
  }
  settings_snapshot_t *cur = settings_acquire();
  if (cur && cur->version == version) {
    settings_release(cur);
    json_decref(raw);
    return 0;
  }
  json_t *stored = json_object(), *warnings = json_object(), *changed = NULL;
  settings_snapshot_t *next = NULL;
  r = -ENOMEM;
  if (!stored || !warnings || load_stored(raw, stored, warnings) < 0) goto done;
  /* snapshot_build reads the load warnings of the store it builds from. */
  json_t *old_warnings = S.load_warnings;
  S.load_warnings = warnings;
  next = snapshot_build(stored, S.env, version);
  S.load_warnings = old_warnings;
  if (!next) goto done;
  problem_t checked = PROBLEM_INIT;
  check_owners(next, &checked);
  if (problem_error_count(&checked)) {
    json_t *e = json_array_get(checked.errors, 0);
    snprintf(err, errlen,
             "The stored settings of version %llu do not fit together (%s: %s); version %llu "
             "stays in force on this node until they are fixed.",
             (unsigned long long)version, json_string_value(json_object_get(e, "key")),
             json_string_value(json_object_get(e, "message")),
             (unsigned long long)(cur ? cur->version : 0));
    problem_clear(&checked);
    r = -EINVAL;
    goto done;
  }
  problem_clear(&checked);
  if (snapshot_render(next) < 0 || !(changed = keys_changed(S.stored, stored))) goto done;
  r = 0;
  for (size_t h = 0; h < S.owner_count; h++) {
    const settings_owner_t *o = S.owners[h];
    if (!o->apply || !owner_changed(o, changed)) continue;
    char why[384] = "";
    if (o->apply(cur, next, o->ctx, why, sizeof why) != 0 && !err[0]) {
      snprintf(err, errlen, "The %s settings of version %llu could not be put into effect on "
                            "this node: %s",
               o->name, (unsigned long long)version, why[0] ? why : "no reason given");
      r = 1;
    }
  }
  json_decref(S.stored);
  S.stored = stored;
  stored = NULL;
  json_decref(S.load_warnings);
  S.load_warnings = warnings;
  warnings = NULL;
  settings_snapshot_t *now = snapshot_ref(next);
  snapshot_swap(next);
  next = NULL;
  for (size_t o = 0; o < S.owner_count; o++)
    if (S.owners[o]->committed && owner_changed(S.owners[o], changed))
      S.owners[o]->committed(cur, now, S.owners[o]->ctx);
  settings_release(now);
  swapped(version);
done:
  if (r == -ENOMEM && !err[0]) snprintf(err, errlen, "Out of memory reloading the settings.");
  settings_release(cur);
  snapshot_free(next);
  json_decref(raw);
  json_decref(stored);
  json_decref(warnings);
  json_decref(changed);
  return r;
}

int settings_reload(char *err, size_t errlen) {
  pthread_mutex_lock(&S.change_lock);
  int r = S.store ? reload_locked(err, errlen) : -EINVAL;
  pthread_mutex_unlock(&S.change_lock);
  return r;
}

/* ---- schema and export --------------------------------------------------------------------- */

json_t *settings_schema(void) {
  json_t *sections = json_array(), *settings = json_array();
  for (size_t s = 0; s < catalogue_section_count; s++)
    json_array_append_new(sections, json_pack("{s:s, s:s}", "id", catalogue_sections[s].id,
                                              "title", catalogue_sections[s].title));
  for (size_t i = 0; i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    char env[128];
    catalogue_env_name(def, env, sizeof env);
    json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", def->key, "section", def->section,
                            "label", def->label, "type", catalogue_type_name(def->type), "help",
                            def->help);
    json_t *dflt = def->default_json ? json_loads(def->default_json, JSON_DECODE_ANY, NULL) : json_null();
    json_object_set_new(row, "default", dflt ? dflt : json_null());
    if (def->type == SETTING_INT || def->type == SETTING_PORT) {
      json_object_set_new(row, "min", json_integer(def->min));
      json_object_set_new(row, "max", json_integer(def->max));
    }
    if (def->choices) {
      json_t *c = json_array();
      for (const char *const *p = def->choices; *p; p++) json_array_append_new(c, json_string(*p));
      json_object_set_new(row, "choices", c);
    }
    if (def->items) json_object_set_new(row, "items", json_string(def->items));
    if (def->url_rule) {
      json_t *schemes = json_array();
      static const char *const names[] = {"http", "https", "ldap", "ldaps"};
      for (unsigned b = 0; b < 4; b++)
        if (def->url_rule->schemes & (1u << b)) json_array_append_new(schemes, json_string(names[b]));
      json_object_set_new(row, "schemes", schemes);
      json_object_set_new(row, "fqdn_required", json_boolean(def->url_rule->host_fqdn));
    }
    json_object_set_new(row, "secret", json_boolean(def->type == SETTING_SECRET));
    json_object_set_new(row, "blank_means_default",
                        json_boolean(def->flags & SETTING_F_BLANK_DEFAULT));
    json_object_set_new(row, "blank_allowed",
                        json_boolean(def->flags & (SETTING_F_BLANK_DEFAULT | SETTING_F_BLANK_OK)));
    json_object_set_new(row, "operation_only", json_boolean(def->flags & SETTING_F_OPERATION_ONLY));
    json_object_set_new(row, "env", def->flags & SETTING_F_NO_ENV ? json_null() : json_string(env));
    json_array_append_new(settings, row);
  }
  return json_pack("{s:o, s:o}", "sections", sections, "settings", settings);
}

json_t *settings_export(const settings_snapshot_t *snap) {
  json_t *settings = json_object();
  for (size_t i = 0; i < catalogue_count; i++) {
    if (catalogue[i].type == SETTING_SECRET) continue; /* write-only, never leaves the server */
    json_object_set(settings, catalogue[i].key, snap->value[i]);
  }
  return json_pack("{s:s, s:i, s:I, s:o}", "format", "atrium-settings", "format_version", 1,
                   "version", (json_int_t)snap->version, "settings", settings);
}

/* ---- start-up ------------------------------------------------------------------------------- */

static int init_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int init_fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

/* The machine's DNS domain: what follows the first dot of its fully
 * qualified name, when that has at least two labels. */
static void machine_domain(char *out, size_t len) {
  char host[256] = "";
  out[0] = '\0';
  if (gethostname(host, sizeof host - 1) < 0) return;
  char *dot = strchr(host, '.');
  if (!dot) {
    struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) == 0 && res && res->ai_canonname)
      snprintf(host, sizeof host, "%s", res->ai_canonname);
    if (res) freeaddrinfo(res);
    dot = strchr(host, '.');
  }
  if (dot && strchr(dot + 1, '.')) snprintf(out, len, "%s", dot + 1);
}

typedef struct meta_write {
  const char *name, *value;
} meta_write_t;

static int meta_write(store_txn_t *t, void *ctx) {
  const meta_write_t *w = ctx;
  return store_meta_put(t, w->name, w->value);
}

/* The value this start would fix: the candidate, or the fallback when the
 * candidate does not pass the row's check. New reference or NULL. */
static json_t *install_candidate(const setting_def_t *def, const char *candidate,
                                 const char *fallback) {
  json_t *raw = json_string(candidate && *candidate ? candidate : fallback), *norm = NULL;
  validate_error_t verr;
  if (catalogue_check(def, raw, &norm, &verr) < 0) {
    json_decref(raw);
    raw = json_string(fallback);
    if (catalogue_check(def, raw, &norm, &verr) < 0) norm = NULL;
  }
  json_decref(raw);
  return norm;
}

/* `follows`: the value is derived from where atriumd listens, so a fixed
 * value that this start would not make again is worth a warning. */
static int install_default(const char *key, const char *candidate, const char *fallback,
                           bool follows, json_t **value, char *err, size_t errlen) {
  char meta[128];
  snprintf(meta, sizeof meta, "install.%s", key);
  char *text = NULL;
  store_txn_t *t;
  const setting_def_t *def = &catalogue[row_of(key)];
  int r = store_read_begin(S.store, "read the install defaults", &t);
  if (r == 0) {
    r = store_meta_get(t, meta, &text);
    store_read_end(t);
  }
  if (r == 0) {
    *value = json_string(text);
    json_t *now = follows ? install_candidate(def, candidate, fallback) : NULL;
    json_t *alt = follows ? install_candidate(def, fallback, fallback) : NULL;
    if (now && alt && !json_equal(now, *value) && !json_equal(alt, *value)) {
      char why[1024];
      snprintf(why, sizeof why,
               "%s was fixed at first start; atriumd now listens at %s (atlas.xml <Listen>, "
               "the host name), so links, the mobile configuration and the default URLs "
               "point at the old address. Set %s to the URL users reach.",
               text, json_string_value(now), key);
      json_object_set_new(S.install_stale, key, json_string(why));
    }
    json_decref(now);
    json_decref(alt);
    free(text);
    return *value ? 0 : -ENOMEM;
  }
  if (r != -ENOENT)
    return init_fail(err, errlen, "Cannot read the settings store: %s.", store_last_error(S.store));
  json_t *norm = install_candidate(def, candidate, fallback);
  if (!norm) return init_fail(err, errlen, "Cannot make a default for %s.", key);
  meta_write_t w = {.name = meta, .value = json_string_value(norm)};
  r = store_run_txn(S.store, "fix an install default", meta_write, &w);
  if (r < 0) {
    json_decref(norm);
    return init_fail(err, errlen, "Cannot write the settings store: %s.", store_last_error(S.store));
  }
  *value = norm;
  return 0;
}

static int load_install_defaults(const atlas_config_t *atlas, char *err, size_t errlen) {
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  bool tls = atlas->tls_cert[0] != '\0';
  int port = atlas->listen_port ? atlas->listen_port : 8080;
  char url[512], fallback[128];
  snprintf(url, sizeof url, "%s://%s:%d", tls ? "https" : "http", host, port);
  snprintf(fallback, sizeof fallback, "%s://localhost:%d", tls ? "https" : "http", port);
  json_t *v = NULL;
  int r = install_default("server.public_url", url, fallback, true, &v, err, errlen);
  if (r < 0) return r;
  json_object_set_new(S.install_defaults, "server.public_url", v);

  if (atlas->domain[0]) {
    json_t *raw = json_string(atlas->domain), *norm = NULL;
    validate_error_t verr;
    int c = catalogue_check(&catalogue[row_of("domain.name")], raw, &norm, &verr);
    json_decref(raw);
    if (c < 0)
      return init_fail(err, errlen, "%s: <Domain>%s</Domain>: %s", atlas->path, atlas->domain,
                       verr.message);
    json_decref(norm);
  }
  char domain[256];
  machine_domain(domain, sizeof domain);
  r = install_default("domain.name", atlas->domain[0] ? atlas->domain : domain, "example.local",
                      false,
                      &v, err, errlen);
  if (r < 0) return r;
  json_object_set_new(S.install_defaults, "domain.name", v);
  return 0;
}

/* Stored values are checked again: a rule may have become stricter since
 * they were written. An unusable value falls back to the default with a
 * warning instead of keeping the server from starting. */
static int load_stored(json_t *raw, json_t *into, json_t *warnings) {
  const char *key;
  json_t *v;
  json_object_foreach(raw, key, v) {
    int i = catalogue_find(key);
    if (i < 0) continue; /* a key of another version: kept in the store, not used */
    const setting_def_t *def = &catalogue[i];
    json_t *plain = NULL;
    if (def->type == SETTING_SECRET) {
      char *text = NULL;
      if (!json_is_string(v) || secret_unseal(S.key, json_string_value(v), &text) < 0) {
        json_object_set_new(warnings, key,
                            json_string("The stored secret cannot be decrypted with this server's "
                                        "key (was secret.key replaced? every node needs the same "
                                        "one); set it again."));
        continue;
      }
      plain = json_string(text);
      free(text);
    } else {
      validate_error_t verr;
      if (catalogue_check(def, v, &plain, &verr) < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "The stored value is no longer valid (%s); the default is in "
                                  "force until a new value is set.",
                 verr.message);
        json_object_set_new(warnings, key, json_string(msg));
        continue;
      }
    }
    if (!plain) return -ENOMEM;
    json_object_set_new(into, key, plain);
  }
  return 0;
}

static int load_env(char *const *environ_vars, char *err, size_t errlen) {
  for (size_t i = 0; i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    char name[128];
    catalogue_env_name(def, name, sizeof name);
    size_t nl = strlen(name);
    const char *text = NULL;
    for (char *const *e = environ_vars; e && *e; e++)
      if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=') text = *e + nl + 1;
    if (!text) continue;
    if (def->flags & SETTING_F_NO_ENV)
      return init_fail(err, errlen,
                       "%s is not supported: %s is changed only through the domain change "
                       "operation. Remove the variable.",
                       name, def->key);
    json_t *v = NULL;
    validate_error_t verr;
    if (catalogue_parse_env(def, text, &v, &verr) < 0)
      return init_fail(err, errlen, "%s (%s): %s", name, def->key, verr.message);
    json_object_set_new(S.env, def->key, v);
  }
  return 0;
}

int settings_init(store_t *store, const secret_key_t *key, const atlas_config_t *atlas,
                  char *const *environ_vars, char *err, size_t errlen) {
  S.store = store;
  S.key = key;
  S.stored = json_object();
  S.env = json_object();
  S.install_defaults = json_object();
  S.install_stale = json_object();
  S.load_warnings = json_object();
  if (!S.stored || !S.env || !S.install_defaults || !S.install_stale || !S.load_warnings)
    return init_fail(err, errlen, "Out of memory.");

  int r = load_install_defaults(atlas, err, errlen);
  if (r < 0) return r;
  json_t *raw = NULL;
  uint64_t version = 0;
  store_txn_t *t;
  r = store_read_begin(store, "load the settings", &t);
  if (r == 0) {
    r = store_settings_load(t, &raw, &version);
    store_read_end(t);
  }
  if (r < 0)
    return init_fail(err, errlen, "Cannot read the stored settings: %s.", store_last_error(store));
  r = load_stored(raw, S.stored, S.load_warnings);
  json_decref(raw);
  if (r < 0) return init_fail(err, errlen, "Out of memory.");
  r = load_env(environ_vars, err, errlen);
  if (r < 0) return r;

  settings_snapshot_t *snap = snapshot_build(S.stored, S.env, version);
  if (!snap) return init_fail(err, errlen, "Out of memory.");
  problem_t checked = PROBLEM_INIT;
  check_owners(snap, &checked);
  json_t *errors = checked.errors;
  if (json_array_size(errors)) {
    json_t *e = json_array_get(errors, 0);
    r = init_fail(err, errlen,
                  "The settings in force do not fit together: %s: %s Fix the environment "
                  "variable or the stored value.",
                  json_string_value(json_object_get(e, "key")),
                  json_string_value(json_object_get(e, "message")));
    problem_clear(&checked);
    snapshot_free(snap);
    return r;
  }
  problem_clear(&checked);
  if (snapshot_render(snap) < 0) {
    snapshot_free(snap);
    return init_fail(err, errlen, "Out of memory.");
  }
  snapshot_swap(snap);
  return 0;
}

void settings_shutdown(void) {
  /* A reload running on the store's listener thread finishes first. */
  pthread_mutex_lock(&S.change_lock);
  snapshot_swap(NULL);
  json_decref(S.stored);
  json_decref(S.env);
  json_decref(S.install_defaults);
  json_decref(S.install_stale);
  json_decref(S.load_warnings);
  S.stored = S.env = S.install_defaults = S.install_stale = S.load_warnings = NULL;
  S.owner_count = 0;
  S.store = NULL;
  pthread_mutex_unlock(&S.change_lock);
}

const json_t *settings_warnings(const settings_snapshot_t *snap) { return snap->warnings; }
