/* The settings-plane fixture of the unit tests; see fixture.h. */
#include "fixture.h"

#include <stdarg.h>

#include "store/sqlite/sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fixture_open(fixture_t *f, char *const *env, char *err, size_t errlen) {
  const store_options_t so = {.data_dir = f->dir};
  if (store_open(store_sqlite_backend(), &so, &f->store, err, errlen) < 0) return -1;
  for (size_t i = 0; f->owners && f->owners[i]; i++)
    if (settings_register_owner(f->owners[i]) < 0) {
      snprintf(err, errlen, "too many settings owners");
      return -1;
    }
  if (secret_key_open(f->dir, &f->key, err, errlen) < 0) return -1;
  return settings_init(f->store, f->key, &f->atlas, env, err, errlen) < 0 ? -1 : 0;
}

void fixture_close(fixture_t *f) {
  settings_shutdown();
  secret_key_close(f->key);
  store_close(f->store);
  f->key = NULL;
  f->store = NULL;
}

const settings_owner_t *const *fixture_owners;

fixture_t *fixture_new(const char *prefix, const char *domain) {
  static char *const no_env[] = {NULL};
  fixture_t *f = calloc(1, sizeof *f);
  if (!f) {
    fprintf(stderr, "setup: out of memory\n");
    return NULL;
  }
  f->owners = fixture_owners;
  if (fixture_mkdtemp(f->dir, sizeof f->dir, prefix) < 0) {
    perror("setup: mkdtemp");
    free(f);
    return NULL;
  }
  snprintf(f->atlas.listen_address, sizeof f->atlas.listen_address, "127.0.0.1");
  f->atlas.listen_port = 8080;
  snprintf(f->atlas.domain, sizeof f->atlas.domain, "%s", domain);
  f->atlas.im_delete_after_days = f->atlas.journal_delete_after_days = -1;
  char err[512] = "";
  if (fixture_open(f, no_env, err, sizeof err) < 0) {
    fprintf(stderr, "setup: %s\n", err);
    fixture_remove(f);
    return NULL;
  }
  return f;
}

int fixture_remove(fixture_t *f) {
  fixture_close(f);
  int r = fixture_rmtree(f->dir);
  free(f);
  return r;
}

int fixture_setup(void **state) {
  *state = fixture_new(program_invocation_short_name, "example.com");
  return *state ? 0 : -1;
}

int fixture_teardown(void **state) {
  return fixture_remove(*state);
}

/* The fixture has no cmocka: it reports and aborts, which cmocka shows as
 * the test's failure. */
static void fixture_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fixture_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

#define fixture_assert_eq(a, b)                                                                 \
  do {                                                                                           \
    long long a_ = (long long)(a), b_ = (long long)(b);                                          \
    if (a_ != b_) fixture_fail("%s:%d: %lld != %lld", __FILE__, __LINE__, a_, b_);              \
  } while (0)
#define fixture_assert_streq(a, b)                                                              \
  do {                                                                                           \
    const char *a_ = (a), *b_ = (b);                                                             \
    if (!a_ || strcmp(a_, b_)) fixture_fail("%s:%d: \"%s\" != \"%s\"", __FILE__, __LINE__, \
                                            a_ ? a_ : "(null)", b_);                             \
  } while (0)

int fixture_patch(const char *json, settings_outcome_t *out) {
  json_error_t jerr;
  json_t *body = json_loads(json, JSON_DECODE_ANY, &jerr);
  if (!body) {
    fprintf(stderr, "bad test JSON %s: %s\n", json, jerr.text);
    abort();
  }
  settings_change(body, SETTINGS_OP_PATCH, "tester", -1, out);
  json_decref(body);
  return outcome_status(out);
}

int fixture_patch_status(const char *json) {
  settings_outcome_t out;
  int s = fixture_patch(json, &out);
  settings_outcome_clear(&out);
  return s;
}

json_t *fixture_document(void) {
  settings_snapshot_t *snap = settings_acquire();
  json_t *doc = json_loads(settings_document(snap, NULL), 0, NULL);
  settings_release(snap);
  return doc;
}

bool fixture_has_error(const settings_outcome_t *out, const char *key) {
  size_t i;
  json_t *e;
  json_array_foreach(out->problem.errors, i, e) {
    if (strcmp(json_string_value(json_object_get(e, "key")), key) == 0) return true;
  }
  return false;
}

void fixture_sanity_walk(bool skip_computed) {
  for (size_t i = 0; i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    if (def->flags & SETTING_F_OPERATION_ONLY) continue;
    if (skip_computed && !def->default_json && def->type != SETTING_SECRET &&
        !(def->flags & SETTING_F_INSTALL_DEFAULT))
      continue;
    settings_snapshot_t *snap = settings_acquire();
    json_t *v = json_deep_copy(settings_value(snap, def->key));
    json_t *doc = json_loads(settings_document(snap, NULL), 0, NULL);
    json_t *raw = json_deep_copy(
        json_object_get(json_object_get(json_object_get(doc, "settings"), def->key), "value"));
    json_decref(doc);
    settings_release(snap);
    json_t *body = json_object();
    /* Secrets: set one; everything else: the configured value itself. */
    json_object_set_new(body, def->key,
                        def->type == SETTING_SECRET ? json_string("s3cret-value") : json_incref(raw));
    settings_outcome_t out;
    settings_change(body, SETTINGS_OP_PATCH, "sanity", -1, &out);
    if (outcome_status(&out) != 200) {
      char *e = json_dumps(out.problem.errors, 0);
      fixture_fail("%s: writing its own value gave %d %s", def->key, outcome_status(&out), e);
    }
    settings_outcome_clear(&out);
    snap = settings_acquire();
    if (def->type == SETTING_SECRET)
      fixture_assert_streq(json_string_value(settings_value(snap, def->key)), "s3cret-value");
    else if (!json_equal(v, settings_value(snap, def->key)))
      fixture_fail("%s: read back differs", def->key);
    fixture_assert_eq(settings_source(snap, def->key), SETTING_SOURCE_STORE);
    settings_release(snap);
    json_object_set_new(body, def->key, json_null());
    settings_change(body, SETTINGS_OP_PATCH, "sanity", -1, &out);
    fixture_assert_eq(outcome_status(&out), 200);
    settings_outcome_clear(&out);
    snap = settings_acquire();
    fixture_assert_eq(settings_source(snap, def->key), (def->flags & SETTING_F_INSTALL_DEFAULT)
                                                           ? SETTING_SOURCE_INSTALL
                                                           : SETTING_SOURCE_DEFAULT);
    settings_release(snap);
    json_decref(body);
    json_decref(v);
    json_decref(raw);
  }
}

