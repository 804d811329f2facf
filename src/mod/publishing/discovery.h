/* UDP discovery: desktop clients find the server on the internal network.
 *
 * The wire format (docs/protocols/discovery.md) is in discovery_wire.h. The
 * responder (discovery.c) runs on its own thread with one IPv4 socket
 * (broadcast and unicast) and one IPv6 socket (the all-nodes group
 * ff02::1 and unicast) on login.discovery_port, only while
 * login.publish_address is on; the "login" apply hook starts, stops and
 * rebinds it, so a change acts at once.
 *
 * Amplification: a query is padded to at least DISCOVERY_QUERY_MIN bytes and
 * an answer is never larger than the query it answers. Floods: a token bucket
 * per source address (bounded table) and one for the whole responder. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "conf/settings.h"
#include "mod/publishing/discovery_wire.h"

/* ---- the responder ---------------------------------------------------------------------------- */

/* Starts the responder when the snapshot says so. On failure writes a
 * sentence to err (the daemon goes on: the admin sees the reason in the
 * status and can pick another port). */
int discovery_start(const settings_snapshot_t *snap, char *err, size_t errlen);
/* Follows a change of login.publish_address or login.discovery_port (the
 * publishing module's apply hook calls it). */
int discovery_apply(const settings_snapshot_t *old_snap, const settings_snapshot_t *new_snap,
                    char *err, size_t errlen);
void discovery_shutdown(void); /* stops the thread; safe when never started */
/* atrium_discovery_* lines for /metrics. */
void discovery_write_metrics(FILE *f);

typedef struct discovery_status {
  bool enabled; /* login.publish_address */
  bool running;
  int port;
  char message[256]; /* why it is not running, when it should be */
  uint64_t queries, answers, dropped[DISCOVERY_DROP_COUNT];
  int64_t last_failure; /* Unix time the responder last failed to start, 0: never */
} discovery_status_t;

void discovery_get_status(discovery_status_t *out);
