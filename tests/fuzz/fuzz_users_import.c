/* libFuzzer target for the directory's import parser (src/directory.c): the
 * first byte picks the kind (users, subscriptions, contacts) and the format
 * (CSV or JSON); the rest is the upload. Checks the contract besides crashes
 * and leaks: a refused import says why (a sentence or an error entry with a
 * message), an accepted one has at least one row, never both. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mod/directory/directory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  directory_import_kind_t kind = (directory_import_kind_t)((data[0] & 0x7f) % 3);
  bool csv = data[0] & 0x80;
  problem_t err = {0};
  directory_batch_t *batch = NULL;
  int r = directory_import_parse(kind, (const char *)data + 1, size - 1, csv, &batch, &err);
  if (r == 0) {
    if (!batch || directory_batch_rows(batch) == 0 || err.errors) abort();
  } else {
    if (batch || r != -EINVAL) abort();
    if (!err.detail[0]) abort();
    size_t i;
    json_t *e;
    json_array_foreach(err.errors, i, e) {
      if (!json_is_string(json_object_get(e, "key")) ||
          !json_string_length(json_object_get(e, "message")))
        abort();
    }
    if (err.errors && json_array_size(err.errors) > DIRECTORY_IMPORT_ERRORS_MAX) abort();
  }
  directory_batch_free(batch);
  problem_clear(&err);
  return 0;
}
