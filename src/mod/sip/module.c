/* The SIP module: ties the agent to the server's life, the settings
 * (federation.*, the domain), the real-time core's federation hooks, and
 * its REST: the federation status for admins, the consent of users. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/settings.h"
#include "core/log.h"
#include "mod/directory/directory.h"
#include "mod/rt/rt.h"
#include "mod/sip/internal.h"
#include "mod/sip/selftest.h"
#include "mod/sip/sip.h"

static struct {
  store_t *store;
  const atlas_config_t *atlas;
} M;

/* ---- settings ----------------------------------------------------------------------------- */

/* A list setting as words separated by one space. */
static void join_list(const settings_snapshot_t *snap, const char *key, char *out, size_t len) {
  out[0] = '\0';
  size_t i, used = 0;
  const json_t *v;
  json_array_foreach(settings_value(snap, key), i, v) {
    int n = snprintf(out + used, len - used, "%s%s", used ? " " : "", json_string_value(v));
    if (n < 0 || (size_t)n >= len - used) break;
    used += (size_t)n;
  }
}

static void settings_of(const settings_snapshot_t *snap, fed_settings_t *out) {
  memset(out, 0, sizeof *out);
  out->enabled = settings_bool(snap, "federation.enabled");
  snprintf(out->domain, sizeof out->domain, "%s", settings_string(snap, "domain.name"));
  const char *fqdn = settings_string(snap, "federation.fqdn");
  snprintf(out->fqdn, sizeof out->fqdn, "%s", fqdn[0] ? fqdn : out->domain);
  join_list(snap, "federation.allowed_domains", out->allowed, sizeof out->allowed);
  join_list(snap, "federation.blocked_domains", out->blocked, sizeof out->blocked);
  out->redirect_days = (int)json_integer_value(settings_value(snap, "federation.redirect_days"));
}

static void committed(const settings_snapshot_t *old_snap, const settings_snapshot_t *new_snap,
                      void *ctx) {
  (void)ctx;
  if (strcmp(settings_string(old_snap, "domain.name"), settings_string(new_snap, "domain.name"))) {
    /* The grace period of the old addresses starts now. */
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    store_txn_t *t;
    if (store_begin(M.store, "federation: domain changed", &t) == 0) {
      if (store_meta_put(t, FED_META_DOMAIN_CHANGED, now) == 0)
        store_commit(t);
      else
        store_rollback(t);
    }
  }
  fed_settings_t s;
  settings_of(new_snap, &s);
  fed_agent_settings(&s);
}

/* The directory owns federation.* (its rules tie the FQDN to the domain);
 * the agent follows them once a change holds. */
static const char *const follows[] = {"federation", "domain", NULL};

static const settings_owner_t owner = {
    .name = "federation",
    .follows = follows,
    .committed = committed,
};

/* ---- the real-time core's hooks ------------------------------------------------------------ */

static void presence_changed(const char *name, rt_state_t state, const char *note, void *ctx) {
  (void)state;
  (void)note;
  (void)ctx;
  fed_agent_presence(name);
}

static void fed_watch(const char *address, void *ctx) {
  (void)ctx;
  fed_agent_watch(address, true);
}

static void fed_unwatch(const char *address, void *ctx) {
  (void)ctx;
  fed_agent_watch(address, false);
}

static void fed_send(const rt_message_event_t *m, void *ctx) {
  (void)ctx;
  fed_agent_send(m->id, m->from ? m->from : "", m->to_remote ? m->to_remote : "", m->text);
}

static const rt_hooks_t hooks = {.presence_changed = presence_changed};
static const rt_federation_t federation = {
    .watch = fed_watch, .unwatch = fed_unwatch, .send = fed_send};

/* ---- REST ------------------------------------------------------------------------------------ */

/* GET /api/v1/federation/status */
static enum MHD_Result status_api(http_request_t *req) {
  fed_status_t s;
  fed_agent_status(&s);
  json_t *peers = json_array();
  char buf[sizeof s.peers];
  snprintf(buf, sizeof buf, "%s", s.peers);
  char *save = NULL;
  for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
    json_array_append_new(peers, json_string(tok));
  json_t *out = json_pack(
      "{s:b, s:b, s:b, s:s, s:{s:I, s:I}, s:{s:I, s:I}, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I},"
      " s:{s:I, s:I, s:I, s:I}}",
      "configured", s.configured, "running", s.running, "enabled", s.enabled, "listen", s.listen,
      "inbound", "active", (json_int_t)s.in_subs_active, "pending",
      (json_int_t)s.in_subs_pending, "outbound", "active", (json_int_t)s.out_subs_active,
      "pending", (json_int_t)s.out_subs_pending, "peers", peers, "counters", "notify_sent",
      (json_int_t)s.notify_sent, "notify_failed", (json_int_t)s.notify_failed,
      "notify_received", (json_int_t)s.notify_received, "messages_in",
      (json_int_t)s.messages_in, "messages_out", (json_int_t)s.messages_out, "messages_failed",
      (json_int_t)s.messages_failed, "refused", "certificate", (json_int_t)s.refused_cert,
      "switched_off", (json_int_t)s.refused_off, "policy", (json_int_t)s.refused_policy,
      "rate", (json_int_t)s.refused_rate);
  if (out) {
    json_object_set_new(json_object_get(out, "counters"), "recreated",
                        json_integer((json_int_t)s.recreated));
    json_object_set_new(json_object_get(out, "counters"), "redirected",
                        json_integer((json_int_t)s.redirected));
  }
  if (!out) return http_reply_oom(req);
  if (s.error[0]) {
    json_object_set_new(out, "last_error", json_string(s.error));
    json_object_set_new(out, "last_error_at", json_integer(s.error_at));
  } else {
    json_object_set_new(out, "last_error", json_null());
  }
  return http_reply_json(req, MHD_HTTP_OK, out);
}

typedef struct watchers_ctx {
  json_t *items;
} watchers_ctx_t;

static void watcher_row(const store_federation_row_t *row, void *ctx) {
  watchers_ctx_t *c = ctx;
  json_array_append_new(c->items, json_pack("{s:s, s:s, s:s}", "address", row->remote, "state",
                                            strcmp(row->state, "pending") == 0 ? "pending"
                                                                               : "allowed",
                                            "since", row->created_at ? row->created_at : ""));
}

/* GET /client/v1/federation/watchers: who of other organisations asked to
 * see the user's presence, and whether the user allowed it. */
static enum MHD_Result watchers_api(http_request_t *req) {
  json_t *user;
  enum MHD_Result reply;
  if (directory_client_user(req, &user, &reply) < 0) return reply;
  char name[65];
  snprintf(name, sizeof name, "%s", json_string_value(json_object_get(user, "name")));
  json_decref(user);
  store_txn_t *t;
  int r = store_read_begin(M.store, "federation: watchers", &t);
  if (r != 0)
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "store", "Store unavailable",
                              "The store cannot be read now; try again.", NULL);
  int64_t gen = 0, total = 0;
  char dom[256];
  store_domain_current(t, &gen, dom, sizeof dom);
  watchers_ctx_t c = {.items = json_array()};
  r = store_subscription_list(t, name, NULL, gen, 0, 1000, &total, watcher_row, &c);
  store_read_end(t);
  if (r != 0) {
    json_decref(c.items);
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "store", "Store unavailable",
                              "The store cannot be read now; try again.", NULL);
  }
  return http_reply_json(req, MHD_HTTP_OK,
                         json_pack("{s:o, s:I}", "watchers", c.items, "total", (json_int_t)total));
}

/* PUT /client/v1/federation/watchers/{address} {"allow": true|false} */
static enum MHD_Result watcher_put_api(http_request_t *req) {
  const json_t *body = http_body_json(req);
  const json_t *allow = json_object_get(body, "allow");
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "allow") != 0) {
      json_t *errors = json_pack("[{s:s, s:s}]", "key", key, "message",
                                 "Is not a field of a consent; only allow is.");
      return http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "Invalid consent",
                                "The consent has a field it does not know.", errors);
    }
  }
  if (!json_is_boolean(allow)) {
    json_t *errors = json_pack("[{s:s, s:s}]", "key", "allow", "message",
                               "Must be true (they may see your presence) or false (they may "
                               "not).");
    return http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "Invalid consent",
                              "allow must be true or false.", errors);
  }
  const char *path = http_path(req);
  const char *address = strrchr(path, '/') + 1;
  char *remote = NULL;
  validate_error_t verr;
  if (directory_validate_remote(address, &remote, &verr) < 0) {
    json_t *errors = json_pack("[{s:s, s:s}]", "key", "address", "message", verr.message);
    return http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "Invalid address",
                              verr.message, errors);
  }
  json_t *user;
  enum MHD_Result reply;
  if (directory_client_user(req, &user, &reply) < 0) {
    free(remote);
    return reply;
  }
  char name[65];
  snprintf(name, sizeof name, "%s", json_string_value(json_object_get(user, "name")));
  json_decref(user);
  store_txn_t *t;
  int r = store_begin(M.store, "federation: consent", &t);
  if (r == 0) {
    int64_t gen = 0;
    char dom[256];
    store_domain_current(t, &gen, dom, sizeof dom);
    bool yes = json_is_true(allow);
    r = yes ? store_subscription_set(t, name, remote, "active", gen)
            : store_subscription_delete(t, name, remote);
    /* Allowing someone who has not asked yet is allowed: they are let in
     * when they do. */
    if (r == -ENOENT && yes) r = store_subscription_insert(t, name, remote, "active", gen);
    if (r == -ENOENT && !yes) r = 0;
    if (r == 0)
      r = store_commit(t);
    else
      store_rollback(t);
  }
  if (r != 0) {
    free(remote);
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "store", "Store unavailable",
                              "The consent could not be stored; try again.", NULL);
  }
  fed_agent_consent(name, remote, json_is_true(allow));
  json_t *out = json_pack("{s:s, s:s}", "address", remote, "state",
                          json_is_true(allow) ? "allowed" : "refused");
  free(remote);
  return http_reply_json(req, MHD_HTTP_OK, out);
}

/* POST /api/v1/federation/test {"domain"} */
typedef struct test_job {
  fed_selftest_t cfg;
  char domain[SIP_DOMAIN_MAX + 1];
  json_t *result;
} test_job_t;

static void test_run(void *ctx) {
  test_job_t *j = ctx;
  j->result = fed_selftest_run(&j->cfg, j->domain);
}

static enum MHD_Result test_reply(http_request_t *req, void *ctx) {
  test_job_t *j = ctx;
  json_t *r = j->result;
  j->result = NULL;
  return r ? http_reply_json(req, MHD_HTTP_OK, r) : http_reply_oom(req);
}

static void test_free(void *ctx) {
  test_job_t *j = ctx;
  json_decref(j->result);
  free(j);
}

static enum MHD_Result invalid(http_request_t *req, const char *key, const char *message) {
  json_t *errors = json_pack("[{s:s, s:s}]", "key", key, "message", message);
  return http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid",
                            "Invalid federation test", message, errors);
}

static enum MHD_Result test_api(http_request_t *req) {
  const json_t *body = http_body_json(req);
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "domain") != 0)
      return invalid(req, key, "Is not a field of a federation test; only domain is.");
  }
  const json_t *d = json_object_get(body, "domain");
  char *host = NULL;
  validate_error_t verr;
  if (!json_is_string(d) || validate_host(json_string_value(d), HOST_TWO_LABELS, &host, &verr) < 0)
    return invalid(req, "domain",
                   "Must be the partner's domain name, such as partner.example.com.");
  if (!M.atlas->sip_configured) {
    free(host);
    return http_reply_problem(req, MHD_HTTP_CONFLICT, "federation-not-configured",
                              "Federation is not set up",
                              "atlas.xml has no <Federation> element: there is no certificate "
                              "to test with and nothing listens for partners.",
                              NULL);
  }
  test_job_t *j = calloc(1, sizeof *j);
  if (!j) {
    free(host);
    return http_reply_oom(req);
  }
  snprintf(j->domain, sizeof j->domain, "%s", host);
  free(host);
  settings_snapshot_t *snap = settings_acquire();
  fed_settings_t s;
  settings_of(snap, &s);
  settings_release(snap);
  snprintf(j->cfg.resolver, sizeof j->cfg.resolver, "%s", M.atlas->sip_resolver);
  snprintf(j->cfg.domain, sizeof j->cfg.domain, "%s", s.domain);
  snprintf(j->cfg.fqdn, sizeof j->cfg.fqdn, "%s", s.fqdn);
  j->cfg.port = M.atlas->sip_port;
  snprintf(j->cfg.cert_path, sizeof j->cfg.cert_path, "%s", M.atlas->sip_cert);
  snprintf(j->cfg.key_path, sizeof j->cfg.key_path, "%s", M.atlas->sip_key);
  snprintf(j->cfg.ca_path, sizeof j->cfg.ca_path, "%s", M.atlas->sip_ca);
  return http_defer(req, test_run, test_reply, j, test_free);
}

static const http_route_t routes[] = {
    {.method = HTTP_POST, .path = "/api/v1/federation/test", .handler = test_api,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/federation/status", .handler = status_api,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/client/v1/federation/watchers", .handler = watchers_api,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_PUT, .path = "/client/v1/federation/watchers/{address}",
     .handler = watcher_put_api, .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON},
};

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int init(const module_env_t *env, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  M.store = env->store;
  M.atlas = env->atlas;
  rt_set_federation(&federation);
  return rt_add_hooks(&hooks) == 0 ? 0 : -ENOSPC;
}

static int start(char *err, size_t errlen) {
  settings_snapshot_t *snap = settings_acquire();
  fed_settings_t s;
  settings_of(snap, &s);
  settings_release(snap);
  return fed_agent_start(M.atlas, M.store, &s, err, errlen);
}

static void stop(void) {
  fed_agent_stop();
  rt_set_federation(NULL);
}

static void metrics(FILE *f) {
  fed_status_t s;
  fed_agent_status(&s);
  fprintf(f,
          "# HELP atrium_federation_subscriptions Federation presence subscriptions now, by "
          "direction and state.\n"
          "# TYPE atrium_federation_subscriptions gauge\n"
          "atrium_federation_subscriptions{direction=\"inbound\",state=\"active\"} %" PRIu64 "\n"
          "atrium_federation_subscriptions{direction=\"inbound\",state=\"pending\"} %" PRIu64 "\n"
          "atrium_federation_subscriptions{direction=\"outbound\",state=\"active\"} %" PRIu64 "\n"
          "atrium_federation_subscriptions{direction=\"outbound\",state=\"pending\"} %" PRIu64
          "\n",
          s.in_subs_active, s.in_subs_pending, s.out_subs_active, s.out_subs_pending);
  fprintf(f,
          "# HELP atrium_federation_notify_total NOTIFYs sent to and received from other "
          "domains.\n"
          "# TYPE atrium_federation_notify_total counter\n"
          "atrium_federation_notify_total{direction=\"sent\"} %" PRIu64 "\n"
          "atrium_federation_notify_total{direction=\"failed\"} %" PRIu64 "\n"
          "atrium_federation_notify_total{direction=\"received\"} %" PRIu64 "\n",
          s.notify_sent, s.notify_failed, s.notify_received);
  fprintf(f,
          "# HELP atrium_federation_messages_total Chat messages carried over SIP MESSAGE.\n"
          "# TYPE atrium_federation_messages_total counter\n"
          "atrium_federation_messages_total{direction=\"in\"} %" PRIu64 "\n"
          "atrium_federation_messages_total{direction=\"out\"} %" PRIu64 "\n"
          "atrium_federation_messages_total{direction=\"failed\"} %" PRIu64 "\n",
          s.messages_in, s.messages_out, s.messages_failed);
  fprintf(f,
          "# HELP atrium_federation_refused_total Requests from other domains refused, by "
          "reason.\n"
          "# TYPE atrium_federation_refused_total counter\n"
          "atrium_federation_refused_total{reason=\"certificate\"} %" PRIu64 "\n"
          "atrium_federation_refused_total{reason=\"switched_off\"} %" PRIu64 "\n"
          "atrium_federation_refused_total{reason=\"policy\"} %" PRIu64 "\n"
          "atrium_federation_refused_total{reason=\"rate\"} %" PRIu64 "\n",
          s.refused_cert, s.refused_off, s.refused_policy, s.refused_rate);
}

static void status(module_status_t *out) {
  fed_status_t s;
  fed_agent_status(&s);
  if (!s.configured) {
    out->state = s.enabled ? MODULE_FAILING : MODULE_OFF;
    snprintf(out->sentence, sizeof out->sentence,
             "SIP federation is not set up: atlas.xml has no <Federation> element%s.",
             s.enabled ? ", although federation.enabled is on" : "");
  } else if (!s.running) {
    out->state = MODULE_FAILING;
    snprintf(out->sentence, sizeof out->sentence, "SIP over TLS is not listening on %s.",
             s.listen);
  } else if (!s.enabled) {
    out->state = MODULE_OFF;
    snprintf(out->sentence, sizeof out->sentence,
             "SIP over TLS listens on %s; federation is switched off (requests get 403).",
             s.listen);
  } else {
    out->state = MODULE_OK;
    snprintf(out->sentence, sizeof out->sentence,
             "Federating on %s: %" PRIu64 " watchers of local users, %" PRIu64
             " addresses of other domains watched.",
             s.listen, s.in_subs_active + s.in_subs_pending, s.out_subs_active);
  }
  if (s.error[0]) {
    snprintf(out->last_error, sizeof out->last_error, "%s", s.error);
    out->last_error_at = s.error_at;
  }
}

const atrium_module_t sip_module = {
    .name = "sip",
    MODULE_ROUTES(routes),
    .settings = &owner,
    .init = init,
    .start = start,
    .stop = stop,
    .metrics = metrics,
    .status = status,
};
