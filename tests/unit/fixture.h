/* The fixture of the tests that run the settings plane for real: a temporary
 * data directory with a store, a secret key and settings_init on an
 * atlas_config_t, and their teardown. Links the store, the secret key and the
 * settings modules; tests below them use fixture_dir.h alone. */
#pragma once

#include "fixture_dir.h"
#include "conf/settings.h"

typedef struct fixture {
  char dir[256];
  store_t *store;
  secret_key_t *key;
  atlas_config_t atlas; /* what settings_init is given */
  /* NULL-terminated: the settings owners (modules' rules and hooks) to
   * register before settings_init, or NULL for none. */
  const settings_owner_t *const *owners;
} fixture_t;

/* The HTTP status an outcome maps to: 200, or its problem's. */
static inline int outcome_status(const settings_outcome_t *o) {
  return o->problem.status ? (int)o->problem.status : 200;
}

/* Opens the store and the secret key in f->dir and starts the settings on
 * f->atlas and env. Returns 0, or -1 with err set; either way fixture_close
 * undoes what was opened. */
int fixture_open(fixture_t *f, char *const *env, char *err, size_t errlen);

/* Stops the settings and closes the key and the store; f can be opened again. */
void fixture_close(fixture_t *f);

/* Helpers of the settings tests: a PATCH given as JSON text (its status,
 * and the outcome to look into), the document in force, whether an outcome
 * names a key among its errors. */
int fixture_patch(const char *json, settings_outcome_t *out);
int fixture_patch_status(const char *json);
json_t *fixture_document(void);
bool fixture_has_error(const settings_outcome_t *out, const char *key);

/* The sanity walk (Redis' CONFIG sanity): every key written with the value
 * in force, read back, then reset to its default. skip_computed leaves out
 * the keys whose default a module computes (when no module is there). */
void fixture_sanity_walk(bool skip_computed);

/* The owners fixture_new gives every new fixture (a test of a module sets
 * them to its module's before the tests run). */
extern const settings_owner_t *const *fixture_owners;

/* A new fixture in "<test tmpdir>/<prefix>-XXXXXX" on 127.0.0.1:8080 with the
 * given domain and no retention, opened without environment. NULL on failure,
 * after a line "setup: ..." on stderr and with nothing left behind. */
fixture_t *fixture_new(const char *prefix, const char *domain);

/* Closes f, removes its directory and frees it. Returns 0, or -1 when the
 * directory could not be removed. */
int fixture_remove(fixture_t *f);

/* cmocka setup and teardown functions: *state = a fixture_new named after the
 * test program, for the domain example.com; and fixture_remove(*state). */
int fixture_setup(void **state);
int fixture_teardown(void **state);
