/* The settings plane: the current value of every System setting, and the one
 * way to change them.
 *
 * Readers take a reference to the current immutable snapshot
 * (settings_acquire) and release it when done; a snapshot never changes.
 * A change (settings_change) is validated whole against the catalogue and the
 * cross-field rules, written in one store transaction together with its audit
 * entries, and then made current by swapping the snapshot pointer. Each
 * affected owner's apply hook runs once with (old, new) before the commit;
 * a failing hook rolls the whole change back (hooks that already ran are
 * called again with (new, old)). Changes are serialised; reads never wait for
 * a change.
 *
 * The settings plane knows no feature: the feature modules that own the
 * sections bring their rules (settings_owner_t) before settings_init. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/atlas.h"
#include "conf/catalogue.h"
#include "core/problem.h"
#include "core/secret.h"
#include "store/store.h"

typedef struct settings_snapshot settings_snapshot_t;

/* Loads the stored settings, applies the environment (ATRIUM_<KEY>) and makes
 * the first snapshot. At first start, fixes the install defaults
 * (server.public_url from the host name and port, domain.name from atlas.xml
 * or the machine's DNS domain). `environ_vars` is a NULL-terminated
 * "NAME=value" array (normally `environ`). An invalid environment value or
 * stored value is an error with a sentence naming the variable or key. */
int settings_init(store_t *store, const secret_key_t *key, const atlas_config_t *atlas,
                  char *const *environ_vars, char *err, size_t errlen);
void settings_shutdown(void);

settings_snapshot_t *settings_acquire(void);
void settings_release(settings_snapshot_t *snap); /* accepts NULL */

uint64_t settings_version(const settings_snapshot_t *snap);
/* Hex SHA-256 of the snapshot's GET document: nodes with the same version
 * and the same environment have the same hash. Borrowed. */
const char *settings_hash(const settings_snapshot_t *snap);

/* Makes the store's settings current when their version is not the one in
 * force (another node committed, or someone changed the rows by hand):
 * rules checked, apply hooks run with (old, new), committed hooks after.
 * 0 (also when nothing changed); 1 when it is in force but an apply hook
 * failed; negative when the old snapshot stays (store unreachable, rules
 * broken). A sentence in err for everything but 0. Serialised with
 * changes. */
int settings_reload(char *err, size_t errlen);
/* Called (under the change lock: it must not change settings) after every
 * new snapshot is in force, made here or loaded from the store. One hook. */
void settings_set_swap_hook(void (*fn)(uint64_t version, void *ctx), void *ctx);

/* The value in force (environment > store > default). Blank-means-default
 * URLs give their computed URL. A secret gives its plain text, or NULL when
 * unset. Borrowed from the snapshot. */
const json_t *settings_value(const settings_snapshot_t *snap, const char *key);
const char *settings_string(const settings_snapshot_t *snap, const char *key); /* "" if not a string */
bool settings_bool(const settings_snapshot_t *snap, const char *key);
json_int_t settings_int(const settings_snapshot_t *snap, const char *key);
setting_source_t settings_source(const settings_snapshot_t *snap, const char *key);
/* The value as set, before blank-means-default is resolved ("" for a blank
 * URL). Borrowed. */
const json_t *settings_raw_value(const settings_snapshot_t *snap, const char *key);

/* The body of GET /api/v1/settings for this snapshot, serialised once:
 * {"version": n, "settings": {"<key>": {"value", "effective"?, "source",
 * "warnings"?}}}. Borrowed from the snapshot. */
const char *settings_document(const settings_snapshot_t *snap, size_t *len);
/* The snapshot's warnings: {"<key>": [{"code", "message"}]}. Borrowed. */
const json_t *settings_warnings(const settings_snapshot_t *snap);

typedef enum settings_op {
  SETTINGS_OP_PATCH,    /* PATCH /api/v1/settings */
  SETTINGS_OP_VALIDATE, /* POST /api/v1/settings/validate: everything but the write */
  SETTINGS_OP_IMPORT,   /* POST /api/v1/settings/import: an export document */
} settings_op_t;

/* What a change came to; maps one-to-one onto an HTTP reply. */
typedef struct settings_outcome {
  /* Status 0 on success; otherwise 400, 409, 412, 422, 500 or 503 with the slug
   * "malformed", "validation", "operation-only", "env-locked",
   * "stale-version", "apply-failed", "store", "store-unavailable" or
   * "stale-node" (503: try again), and every failing key in
   * problem.errors ({"key", "message", "field"?}). */
  problem_t problem;
  json_t *warnings;   /* array of {"key", "code", "message"} */
  uint64_t version;   /* the settings version after the operation */
  int changed;        /* number of keys whose value changed */
  /* On success, a reference to the snapshot this operation left in force
   * (the new one, or the unchanged one), released by settings_outcome_clear.
   * Reply from it, not from settings_acquire(): a concurrent change may
   * already have replaced it. NULL on failure. */
  settings_snapshot_t *snapshot;
} settings_outcome_t;

/* `body` is the parsed JSON request body. `if_match` is the version from
 * If-Match, or -1 when absent. `actor` names who asked (for the audit log).
 * Always fills *out (release with settings_outcome_clear) and returns 0 on
 * success, -1 when out->problem says what failed. */
int settings_change(const json_t *body, settings_op_t op, const char *actor, int64_t if_match,
                    settings_outcome_t *out);
void settings_outcome_clear(settings_outcome_t *out);

/* GET /api/v1/settings/schema: {"sections": [{"id","title"}], "settings":
 * [{"key","section","label","type","default","help",...}]}. New reference. */
json_t *settings_schema(void);

/* GET /api/v1/settings/export: {"format": "atrium-settings", "format_version": 1,
 * "version": n, "settings": {"<key>": value}} without secrets. New reference. */
json_t *settings_export(const settings_snapshot_t *snap);

/* ---- owners: the modules whose sections these are ---------------------------------- */

typedef void (*settings_warn_fn)(void *wctx, const char *key, const char *code, const char *fmt,
                                 ...) __attribute__((format(printf, 4, 5)));

typedef struct settings_owner {
  const char *name;            /* the module, for messages */
  const char *const *sections; /* NULL-terminated: the sections it owns */
  const char *const *follows;  /* NULL-terminated or NULL: other sections whose changes its
                                  apply hook must also see (a published URL, the domain) */
  /* Cross-field rules on a snapshot about to be made current (also checked
   * at start): add an error per failing key with problem_add_error. */
  void (*check)(const settings_snapshot_t *snap, problem_t *p);
  /* Values whose default depends on other settings (default_json NULL and
   * not a secret): the default for `key` given the snapshot built so far
   * (every plain value and URL resolved), or NULL when the key is not the
   * owner's. New reference. */
  json_t *(*computed_default)(const char *key, const settings_snapshot_t *partial);
  /* Derived changes: before the new snapshot is built, adjust the stored
   * values `stored` (key -> value) that follow another setting. `cur` is in
   * force, `probe` is what the request would make of it, `changes` the
   * request. */
  void (*derive)(const settings_snapshot_t *cur, const settings_snapshot_t *probe,
                 const json_t *changes, json_t *stored);
  /* Accepted but worth knowing: report through add(wctx, key, code, fmt...). */
  void (*warn)(const settings_snapshot_t *snap, settings_warn_fn add, void *wctx);
  /* Make the running server follow the new values: runs once per change in
   * which any of the owner's sections (or those it follows) changed. Return 0, or a negative code
   * with a sentence in err (the change is then rolled back and err is shown
   * to the admin). */
  int (*apply)(const settings_snapshot_t *old_snap, const settings_snapshot_t *new_snap,
               void *ctx, char *err, size_t errlen);
  /* After the change is committed and in force (the same owners as apply):
   * for what must not happen unless the change holds (telling clients the
   * domain changed). Cannot fail. */
  void (*committed)(const settings_snapshot_t *old_snap, const settings_snapshot_t *new_snap,
                    void *ctx);
  void *ctx;
} settings_owner_t;

/* Before settings_init (the owners' defaults and rules shape the first
 * snapshot). The owner must outlive the settings plane. 0 or -ENOSPC. */
int settings_register_owner(const settings_owner_t *owner);

/* Runs inside the store transaction of settings_change_operation: write the
 * operation's own rows. Return 0, or a negative code with the problem set
 * (nothing set: reported as a store failure); everything is then rolled
 * back. */
typedef int (*settings_txn_fn)(store_txn_t *txn, void *ctx, problem_t *p);

/* For an operation that owns an operation-only key (the domain change sets
 * domain.name and federation.fqdn): like a PATCH of `changes`, but
 * operation-only keys are accepted, and in_txn (may be NULL) runs in the same
 * transaction as the settings rows and their audit entries, so that readers
 * and a crash see either all of it or none. Serialised with every other
 * change. */
int settings_change_operation(const json_t *changes, const char *actor, settings_txn_fn in_txn,
                              void *ctx, settings_outcome_t *out);

/* Exported for the fuzz target and unit tests: check a PATCH body against the
 * current snapshot without writing anything (same as SETTINGS_OP_VALIDATE). */
int settings_validate_body(const json_t *body, settings_outcome_t *out);
