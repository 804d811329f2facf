/* Active Directory publishing: while login.publish_address is on and ad.uri
 * and ad.container_dn are set, one serviceConnectionPoint object,
 * AD_SCP_RDN under ad.container_dn, tells Windows clients where the server is
 * (docs/operations/active-directory.md):
 *
 *   keywords                   AD_PRODUCT_GUID, "Atrium", "Domain=<domain.name>"
 *   serviceBindingInformation  server.public_url (the clients' URL)
 *   serviceDNSName             the host of that URL
 *   serviceClassName           "Atrium"
 *
 * A worker thread does the LDAP work; the apply hooks ("login", "ad",
 * "server", "domain") only hand it the new values, so neither the daemon nor
 * a settings change ever waits for a domain controller. Failures are retried
 * with exponential backoff (1 s doubling to 60 s), logged with the server's
 * reason (never the password), and shown by ad_publish_get_status. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/settings.h"

/* Fixed for the product: clients search (keywords=<this>). */
#define AD_PRODUCT_GUID "6f1c2b7e-3d4a-4e59-9a8b-2c7d5e0f4a13"
#define AD_SCP_RDN "CN=Atrium Server"
#define AD_SERVICE_CLASS "Atrium"

/* Starts the worker, which then publishes, updates or removes the object as
 * the snapshot says. */
int ad_publish_start(const settings_snapshot_t *snap, char *err, size_t errlen);
/* Makes the worker follow new settings (login, ad, server, domain). */
void ad_publish_follow(const settings_snapshot_t *snap);
/* Stops the worker (waits at most for one LDAP operation's timeout). Safe
 * when never started. The object is left as it is: publishing survives a
 * restart. */
void ad_publish_shutdown(void);

typedef struct ad_publish_status {
  /* "off", "not_configured" (publishing on, ad.uri or ad.container_dn
   * blank), "pending", "published", "error" */
  char state[32];
  bool enabled;       /* login.publish_address */
  char uri[512];      /* ad.uri */
  char dn[1100];      /* the object's DN, "" when not configured */
  char message[768];  /* the last failure, with the server's reason */
  unsigned failures;  /* consecutive failed attempts */
  int64_t last_success; /* Unix time of the last successful write or removal, 0: never */
  int64_t next_retry_ms; /* -1: no retry scheduled */
  int64_t last_failure;  /* Unix time of the last failed attempt, 0: never */
} ad_publish_status_t;

void ad_publish_get_status(ad_publish_status_t *out);
