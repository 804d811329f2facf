/* Inside the SIP module. The agent (agent.c) owns a sofia-sip su_root on the
 * module's own thread: everything sofia is touched there only. Other
 * threads (the event loop's presence hook, the writer's sends, HTTP
 * handlers, the settings plane) hand it jobs through sip_post, which wakes
 * the root through an eventfd. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/atlas.h"
#include "mod/rt/rt.h"
#include "store/store.h"

#define SIP_DOMAIN_MAX 253

/* What the settings say, as the agent follows them. */
typedef struct sip_settings {
  bool enabled;
  char domain[SIP_DOMAIN_MAX + 1]; /* domain.name: users' addresses are name@domain */
  char fqdn[SIP_DOMAIN_MAX + 1];   /* federation.fqdn, or the domain when blank */
  char allowed[4096];              /* partner domains, one space between; "" = any */
  char blocked[4096];
  int redirect_days; /* federation.redirect_days */
} fed_settings_t;

/* The meta row holding when the domain last changed (unix seconds): the
 * start of the grace period of 301 answers for the old addresses. */
#define FED_META_DOMAIN_CHANGED "federation.domain_changed_at"

/* Starts the agent thread (nothing when atlas.xml has no <Federation>).
 * A listener that cannot bind is not fatal: the status says why. */
int fed_agent_start(const atlas_config_t *atlas, store_t *store, const fed_settings_t *s,
                    char *err, size_t errlen);
void fed_agent_stop(void);

/* Any thread. */
void fed_agent_settings(const fed_settings_t *s);
void fed_agent_presence(const char *name);
void fed_agent_watch(const char *address, bool on);
void fed_agent_send(int64_t message_id, const char *from, const char *to_remote, const char *text);
/* A local user decided about a remote watcher (consent). */
void fed_agent_consent(const char *user, const char *watcher, bool allow);

typedef struct sip_status {
  bool configured, running, enabled;
  char listen[96];
  char error[512];
  int64_t error_at;
  uint64_t in_subs_active, in_subs_pending, out_subs_active, out_subs_pending;
  uint64_t notify_sent, notify_failed, notify_received;
  uint64_t messages_in, messages_out, messages_failed;
  uint64_t refused_cert, refused_off, refused_policy, refused_rate;
  uint64_t recreated, redirected;
  char peers[2048]; /* partner domains seen, one space between */
} fed_status_t;
void fed_agent_status(fed_status_t *out);

/* ---- DNS (resolve.c): RFC 3263 as federation does it --------------------------------------- */

typedef struct sip_target {
  char host[SIP_DOMAIN_MAX + 1]; /* the SRV target or the domain */
  char ip[64];                   /* what to connect to */
  int port;
  char how[32];                  /* "_sipfederationtls._tcp", "_sips._tcp" or "A/AAAA" */
  char route[128];               /* sip:ip:port;transport=tls, filled by the agent */
} fed_target_t;

/* Blocking, bounded (about two seconds per query). resolver: "IP:port" or ""
 * for the system's. 0, or -ENOENT with a sentence naming what was asked. */
int fed_resolve(const char *resolver, const char *domain, fed_target_t *out, char *err,
                size_t errlen);
/* A and AAAA of one name: 0 and the first address, or -ENOENT. */
int fed_resolve_host(const char *resolver, const char *host, char *ip, size_t iplen);
