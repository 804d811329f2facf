/* Fuzz target: a PATCH /api/v1/settings body, through the whole validation
 * pipeline (JSON parse, per-key checks, cross-field rules, warnings) against
 * a real store in a temporary directory. Validation only: writing would make
 * each run wait for fsync without reaching more parsing code. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/settings.h"
#include "store/sqlite/sqlite.h"

static store_t *store;
static secret_key_t *key;
static atlas_config_t atlas;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char dir[] = "/tmp/atrium-fuzz-XXXXXX";
  char err[512];
  if (!mkdtemp(dir)) abort();
  snprintf(atlas.listen_address, sizeof atlas.listen_address, "127.0.0.1");
  atlas.listen_port = 8080;
  snprintf(atlas.domain, sizeof atlas.domain, "example.com");
  char *env[] = {NULL};
  const store_options_t so = {.data_dir = dir};
  if (store_open(store_sqlite_backend(), &so, &store, err, sizeof err) < 0 ||
      secret_key_open(dir, &key, err, sizeof err) < 0 ||
      settings_init(store, key, &atlas, env, err, sizeof err) < 0) {
    fprintf(stderr, "fuzz init: %s\n", err);
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_error_t jerr;
  json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (!body) return 0;
  settings_outcome_t out;
  settings_validate_body(body, &out);
  /* Every refusal must say why. */
  if (out.problem.status && out.problem.detail[0] == '\0') abort();
  if (out.problem.status == 422 && problem_error_count(&out.problem) == 0) abort();
  settings_outcome_clear(&out);
  json_decref(body);
  return 0;
}
