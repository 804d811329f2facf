/* The domain change: renames every user at once by changing domain.name
 * (and federation.fqdn with it), through the settings plane's operation so
 * that the settings rows, the directory's new domain generation and the audit
 * entries commit in one transaction. See docs/directory.md. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "core/problem.h"
#include "store/store.h"

#define DOMAIN_CHANGE_SAMPLES 5

/* Makes the directory follow the settings' domain.name at start (first start:
 * generation 1). *changed when the store's directory was on another domain. */
int domain_change_init(store_t *store, bool *changed, char *err, size_t errlen);

/* What came of a request; maps one-to-one onto the HTTP reply. */
typedef struct domain_change_result {
  problem_t problem; /* status 0 on success; else 409, 422 or 500 */
  json_t *document;  /* on success: {"dry_run", "old_domain", "new_domain", "users", "samples",
                        "mobile_devices", "subscriptions", "federation_fqdn": {"old", "new"}} */
} domain_change_result_t;

/* `domain` as typed (Unicode is converted to A-labels). dry_run counts what
 * would change without changing anything; otherwise the change is applied
 * and the document tells what was changed (counted in the same
 * transaction). Always fills *out; returns 0 on success. */
int domain_change(store_t *store, const char *domain, bool dry_run, const char *actor,
                  domain_change_result_t *out);
void domain_change_result_clear(domain_change_result_t *r);

/* The federation.fqdn that goes with new_domain: `fqdn_value` (the stored
 * value, "" for blank) carried over when it is old_domain or one label below
 * it ("sip.old.com" -> "sip.new.com"); blank stays blank. *out malloc'd;
 * NULL when the value is to be left alone. Pure; exported for the tests. */
int domain_change_carry_fqdn(const char *fqdn_value, const char *old_domain,
                             const char *new_domain, char **out);
