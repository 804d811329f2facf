/* The settings-plane fixture of the unit tests; see fixture.h. */
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int fixture_open(fixture_t *f, char *const *env, char *err, size_t errlen) {
  if (store_open(f->dir, &f->store, err, errlen) < 0) return -1;
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

fixture_t *fixture_new(const char *prefix, const char *domain) {
  static char *const no_env[] = {NULL};
  fixture_t *f = calloc(1, sizeof *f);
  if (!f) {
    fprintf(stderr, "setup: out of memory\n");
    return NULL;
  }
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
