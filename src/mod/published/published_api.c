/* Published URLs over HTTP: the mobile configuration document, the telephony
 * web API base, the reverse-proxy list and nginx block. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mod/cluster/cluster.h"
#include "mod/published/internal.h"
#include "conf/atlas.h"
#include "core/log.h"
#include "mod/published/published.h"
#include "conf/settings.h"

static struct {
  char listen_address[64];
  char trusted[2048];
} P;

void published_api_init(const atlas_config_t *atlas) {
  snprintf(P.listen_address, sizeof P.listen_address, "%s", atlas->listen_address);
  snprintf(P.trusted, sizeof P.trusted, "%s", atlas->trusted_proxies);
}

static void upstream(published_upstream_t *up) {
  published_upstream_init(up, P.listen_address, http_port(), http_tls());
}

/* ---- mobile app and telephony web API ------------------------------------------- */

enum MHD_Result published_client_config_api(http_request_t *req) {
  settings_snapshot_t *snap = settings_acquire();
  json_t *doc = published_client_config(snap);
  settings_release(snap);
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

enum MHD_Result published_webapi_api(http_request_t *req) {
  settings_snapshot_t *snap = settings_acquire();
  const char *url = settings_string(snap, "mobile.webapi_url");
  const char *host = http_request_host(req);
  /* "request" shows how this server saw the call: behind a reverse proxy it
   * tells the admin whether X-Forwarded-* arrive and are believed. */
  json_t *doc = json_pack(
      "{s:s, s:s, s:s, s:o, s:{s:b, s:s}, s:{s:s, s:s, s:o, s:b}}", "service",
      "telephony-webapi", "server", "Atrium", "version", ATRIUM_VERSION, "url",
      *url ? json_string(url) : json_null(), "telephony", "available", 0, "detail",
      "Telephony in the mobile app (device selection, Softphone Mobile) is provided by the "
      "telephony system; this base URL answers so that the app and the reverse proxy can be "
      "checked.",
      "request", "client", http_client_address(req), "scheme", http_request_scheme(req), "host",
      host ? json_string(host) : json_null(), "via_trusted_proxy", http_via_trusted_proxy(req));
  settings_release(snap);
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

/* ---- reverse proxy ------------------------------------------------------------------ */

enum MHD_Result published_reverse_proxy_api(http_request_t *req) {
  published_upstream_t up;
  upstream(&up);
  settings_snapshot_t *snap = settings_acquire();
  json_t *doc = published_reverse_proxy_json(snap, &up);
  settings_release(snap);
  if (!doc) return http_reply_oom(req);
  json_t *trusted = json_array(), *warnings = json_array();
  char list[sizeof P.trusted];
  snprintf(list, sizeof list, "%s", P.trusted);
  char *save = NULL;
  for (char *t = strtok_r(list, " ", &save); t; t = strtok_r(NULL, " ", &save))
    json_array_append_new(trusted, json_string(t));
  if (json_array_size(trusted) == 0)
    json_array_append_new(
        warnings, json_pack("{s:s, s:s}", "code", "no-trusted-proxies", "message",
                            "atlas.xml lists no <TrustedProxies>: atriumd ignores "
                            "X-Forwarded-* and sees the proxy's address as the client's. "
                            "Add the proxy's address there and restart."));
  if (up.wildcard)
    json_array_append_new(
        warnings, json_pack("{s:s, s:s}", "code", "upstream-guessed", "message",
                            "atriumd listens on every interface; the upstream address is "
                            "loopback, which is right only when the proxy runs on this machine."));
  json_object_set_new(doc, "trusted_proxies", trusted);
  json_object_set_new(doc, "warnings", warnings);
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

static int parse_bool_param(const char *v, bool dflt, bool *out) {
  if (!v) {
    *out = dflt;
    return 0;
  }
  static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false",
                                                                              "no", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(v, yes[i]) == 0) return *out = true, 0;
    if (strcasecmp(v, no[i]) == 0) return *out = false, 0;
  }
  return -EINVAL;
}

static void release_free(void *p) { free(p); }

enum MHD_Result published_nginx_api(http_request_t *req) {
  published_nginx_opts_t opts = {.listen = http_query(req, "listen")};
  if (opts.listen && !*opts.listen) opts.listen = NULL;
  if (parse_bool_param(http_query(req, "tls"), true, &opts.tls) != 0) {
    json_t *errors = json_pack("[{s:s, s:s}]", "key", "tls", "message", "use on or off");
    enum MHD_Result r = http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "bad-parameter",
                                           "Bad parameter", "tls must be on or off.", errors);
    json_decref(errors);
    return r;
  }
  published_upstream_t up;
  upstream(&up);
  /* Several nodes: every live one, the meeting host marked. */
  cluster_peer_t peers[PUBLISHED_MAX_NODES];
  int np = cluster_peers(peers, PUBLISHED_MAX_NODES);
  for (int i = 0; np >= 2 && i < np; i++)
    (void)published_upstream_add_node(&up, peers[i].name, peers[i].url, peers[i].meeting_host);
  settings_snapshot_t *snap = settings_acquire();
  char *text = NULL;
  int r = published_nginx(snap, &up, &opts, &text);
  settings_release(snap);
  if (r == -EINVAL) {
    json_t *errors = json_pack("[{s:s, s:s}]", "key", "listen", "message",
                               "give PORT, IPv4:PORT or [IPv6]:PORT");
    enum MHD_Result ret = http_reply_problem(
        req, MHD_HTTP_BAD_REQUEST, "bad-parameter", "Bad parameter",
        "listen must be a port, or an address and a port (127.0.0.1:8443, [::1]:8443).", errors);
    json_decref(errors);
    return ret;
  }
  if (r == -EADDRINUSE) {
    char detail[400];
    snprintf(detail, sizeof detail,
             "listen %.80s is atriumd's own address and port: nginx cannot bind it while "
             "atriumd runs there. Leave listen out (nginx then listens on 443 with TLS, or 80) "
             "or give another port.",
             opts.listen);
    json_t *errors = json_pack("[{s:s, s:s}]", "key", "listen", "message",
                               "is atriumd's own address and port");
    enum MHD_Result ret = http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "bad-parameter",
                                             "Bad parameter", detail, errors);
    json_decref(errors);
    return ret;
  }
  if (r != 0) return http_reply_oom(req);
  return http_reply_buffer(req, MHD_HTTP_OK, "text/plain; charset=utf-8", text, strlen(text),
                           release_free, text);
}

