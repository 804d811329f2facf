/* libFuzzer: the PIDF reader on whatever a partner's NOTIFY may carry. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "mod/sip/pidf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pidf_status_t out;
  char err[256];
  if (pidf_read((const char *)data, size, "bob@partner.test", &out, err, sizeof err) == 0) {
    /* What was read writes out and reads back. */
    char *doc = pidf_write("bob@partner.test", &out);
    if (doc) {
      pidf_status_t again;
      if (pidf_read(doc, __builtin_strlen(doc), "bob@partner.test", &again, err, sizeof err) != 0)
        __builtin_trap();
      free(doc);
    }
  }
  return 0;
}
