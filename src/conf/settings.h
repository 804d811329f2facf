/* The settings plane: the current value of every System setting, and the one
 * way to change them.
 *
 * Readers take a reference to the current immutable snapshot
 * (settings_acquire) and release it when done; a snapshot never changes.
 * A change (settings_change) is validated whole against the catalogue and the
 * cross-field rules, written in one store transaction together with its audit
 * entries, and then made current by swapping the snapshot pointer. Each
 * affected section's apply hook runs once with (old, new) before the commit;
 * a failing hook rolls the whole change back (hooks that already ran are
 * called again with (new, old)). Changes are serialised; reads never wait for
 * a change. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/atlas.h"
#include "conf/catalogue.h"
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

/* The value in force (environment > store > default). Blank-means-default
 * URLs give their computed URL. A secret gives its plain text, or NULL when
 * unset. Borrowed from the snapshot. */
const json_t *settings_value(const settings_snapshot_t *snap, const char *key);
const char *settings_string(const settings_snapshot_t *snap, const char *key); /* "" if not a string */
bool settings_bool(const settings_snapshot_t *snap, const char *key);
json_int_t settings_int(const settings_snapshot_t *snap, const char *key);
setting_source_t settings_source(const settings_snapshot_t *snap, const char *key);

/* The body of GET /api/v1/settings for this snapshot, serialised once:
 * {"version": n, "settings": {"<key>": {"value", "effective"?, "source",
 * "warnings"?}}}. Borrowed from the snapshot. */
const char *settings_document(const settings_snapshot_t *snap, size_t *len);

typedef enum settings_op {
  SETTINGS_OP_PATCH,    /* PATCH /api/v1/settings */
  SETTINGS_OP_VALIDATE, /* POST /api/v1/settings/validate: everything but the write */
  SETTINGS_OP_IMPORT,   /* POST /api/v1/settings/import: an export document */
} settings_op_t;

/* What a change came to; maps one-to-one onto an HTTP reply. */
typedef struct settings_outcome {
  int status;         /* 200, 400, 409, 412, 422 or 500 */
  const char *type;   /* problem slug: "malformed", "validation", "operation-only",
                         "env-locked", "stale-version", "store" (NULL on success) */
  char title[128];
  char detail[512];
  json_t *errors;     /* array of {"key", "message", "field"?}; empty on success */
  json_t *warnings;   /* array of {"key", "message"} */
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
 * Always fills *out (release with settings_outcome_clear) and returns 0 when
 * out->status is 200, -1 otherwise. */
int settings_change(const json_t *body, settings_op_t op, const char *actor, int64_t if_match,
                    settings_outcome_t *out);
void settings_outcome_clear(settings_outcome_t *out);

/* GET /api/v1/settings/schema: {"sections": [{"id","title"}], "settings":
 * [{"key","section","label","type","default","help",...}]}. New reference. */
json_t *settings_schema(void);

/* GET /api/v1/settings/export: {"format": "atrium-settings", "format_version": 1,
 * "version": n, "settings": {"<key>": value}} without secrets. New reference. */
json_t *settings_export(const settings_snapshot_t *snap);

/* Per-section apply hook: make the running server follow the new values.
 * Return 0, or a negative code with a sentence in err (the change is then
 * rolled back and err is shown to the admin). */
typedef int (*settings_apply_fn)(const settings_snapshot_t *old_snap,
                                 const settings_snapshot_t *new_snap, void *ctx, char *err,
                                 size_t errlen);
int settings_register_apply(const char *section, settings_apply_fn fn, void *ctx);

/* Runs inside the store transaction of settings_change_operation, with the
 * store locked: write the operation's own rows through store_db(store).
 * Return 0, or a negative code with a sentence in err (everything is then
 * rolled back). */
typedef int (*settings_txn_fn)(store_t *store, void *ctx, char *err, size_t errlen);

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
