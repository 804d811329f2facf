/* The federation self-test: our DNS records and certificate, the partner's
 * records, a TLS handshake with it and an OPTIONS ping (selftest.c). */
#pragma once

#include <jansson.h>

#include "mod/sip/internal.h"

typedef struct fed_selftest {
  char resolver[128];
  char domain[SIP_DOMAIN_MAX + 1];
  char fqdn[SIP_DOMAIN_MAX + 1];
  int port;
  char cert_path[4096], key_path[4096], ca_path[4096];
} fed_selftest_t;

/* Blocking, bounded. {"domain", "ok", "steps": [{"step", "ok" (true, false,
 * or null when not tried), "sentence"}]}; NULL on out of memory. */
json_t *fed_selftest_run(const fed_selftest_t *t, const char *domain);
