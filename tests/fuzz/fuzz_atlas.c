/* libFuzzer: arbitrary bytes as atlas.xml. The parser must neither crash nor
 * leak, must always leave a sentence on failure, and must never read a file
 * or the network (a DOCTYPE is refused before any entity exists). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/atlas.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  atlas_config_t cfg;
  char err[512];
  int rc = atlas_parse_memory((const char *)data, size, "/fuzz/base", &cfg, err, sizeof err);
  if (rc != 0) {
    if (err[0] == '\0') abort(); /* every failure explains itself */
    return 0;
  }
  /* A success must satisfy the documented invariants. */
  if (cfg.listen_port < 0 || cfg.listen_port > 65535) abort();
  if (cfg.data_dir[0] != '/') abort();
  if ((cfg.tls_cert[0] == '\0') != (cfg.tls_key[0] == '\0')) abort();
  if (cfg.tls_cert[0] != '\0' && cfg.tls_cert[0] != '/') abort();
  if (cfg.im_delete_after_days < -1 || cfg.im_delete_after_days > ATLAS_MAX_DAYS) abort();
  if (cfg.journal_delete_after_days < -1 || cfg.journal_delete_after_days > ATLAS_MAX_DAYS)
    abort();
  if (strlen(cfg.domain) > 253) abort();
  (void)atlas_retention_days(&cfg);
  return 0;
}
