/* The QoS module: the default policies for the web meeting, the policies
 * following the meeting URL when it moves, and the before-reply hook that
 * marks each answer's socket with its policy's DSCP value and rate. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <uriparser/Uri.h>

#include "core/log.h"
#include "mod/published/published.h"
#include "mod/qos/qos.h"

#define QOS_DEFAULT_DSCP 34 /* AF41, the recommended value for video */
#define QOS_DEFAULT_RATE_MBPS 50
#define QOS_NAME_HTTP "Web Meeting (HTTP)"
#define QOS_NAME_HTTPS "Web Meeting (HTTPS)"

/* ---- the default policies ---------------------------------------------------------------- */

/* Splits a normalised http(s) URL into host (with port when not the
 * default) and path without the trailing '/'. */
static int url_host_path(const char *url, char *host, size_t hostlen, char *path, size_t pathlen) {
  UriUriA uri;
  const char *end = NULL;
  if (uriParseSingleUriA(&uri, url, &end) != URI_SUCCESS) return -EINVAL;
  int r = 0;
  if (!uri.hostText.first) {
    r = -EINVAL;
  } else {
    /* From the host to the end of the authority, keeping IPv6 brackets and the port. */
    const char *hs = uri.hostText.first;
    const char *he = uri.hostText.afterLast;
    bool bracketed = hs > url && hs[-1] == '[';
    if (bracketed) hs--, he++;
    if (uri.portText.first) he = uri.portText.afterLast;
    snprintf(host, hostlen, "%.*s", (int)(he - hs), hs);
    const char *ps = he;
    size_t n = strcspn(ps, "?#");
    while (n && ps[n - 1] == '/') n--;
    snprintf(path, pathlen, "%.*s", (int)n, ps);
  }
  uriFreeUriMembersA(&uri);
  return r;
}

static json_t *qos_policy(const char *name, const char *url) {
  return json_pack("{s:s, s:i, s:i, s:s, s:b, s:b}", "name", name, "dscp", QOS_DEFAULT_DSCP,
                   "max_rate_mbps", QOS_DEFAULT_RATE_MBPS, "url", url, "include_subdirectories",
                   1, "any_destination", 1);
}

/* The URLs the two default QoS policies name for a web meeting URL: the same
 * host and path, once with http and once with https. */
static int qos_default_urls(const char *meeting_url, char *http, char *https, size_t len) {
  char host[512], path[1024];
  if (url_host_path(meeting_url, host, sizeof host, path, sizeof path) < 0) return -EINVAL;
  /* The policy matches on host and path; a port belongs to one scheme only. */
  char *colon = host[0] == '[' ? strstr(host, "]:") : strchr(host, ':');
  if (colon) colon[host[0] == '[' ? 1 : 0] = '\0';
  snprintf(http, len, "http://%s%s", host, path);
  snprintf(https, len, "https://%s%s", host, path);
  return 0;
}

static json_t *computed_default(const char *key, const settings_snapshot_t *partial) {
  if (strcmp(key, "qos.policies") != 0) return NULL;
  char http[1600], https[1600];
  if (qos_default_urls(settings_string(partial, "meeting.url"), http, https, sizeof http) < 0)
    return json_array();
  return json_pack("[o, o]", qos_policy(QOS_NAME_HTTP, http), qos_policy(QOS_NAME_HTTPS, https));
}

/* When the web meeting URL moves, stored QoS policies that named the old
 * default URLs follow it; policies the admin pointed elsewhere stay. */
static void derive(const settings_snapshot_t *cur, const settings_snapshot_t *probe,
                   const json_t *changes, json_t *stored) {
  if (json_object_get(changes, "qos.policies")) return; /* the request sets them itself */
  const char *old_meeting = settings_string(cur, "meeting.url");
  const char *new_meeting = settings_string(probe, "meeting.url");
  json_t *policies = json_object_get(stored, "qos.policies");
  if (!policies || strcmp(old_meeting, new_meeting) == 0) return;
  char old_http[1600], old_https[1600], new_http[1600], new_https[1600];
  if (qos_default_urls(old_meeting, old_http, old_https, sizeof old_http) < 0 ||
      qos_default_urls(new_meeting, new_http, new_https, sizeof new_http) < 0)
    return;
  json_t *copy = json_deep_copy(policies);
  size_t i;
  json_t *p;
  json_array_foreach(copy, i, p) {
    const char *url = json_string_value(json_object_get(p, "url"));
    /* Decide before replacing: setting "url" frees the string `url` points to. */
    const char *moved = !url                         ? NULL
                        : strcmp(url, old_http) == 0  ? new_http
                        : strcmp(url, old_https) == 0 ? new_https
                                                      : NULL;
    if (moved) json_object_set_new(p, "url", json_string(moved));
  }
  json_object_set_new(stored, "qos.policies", copy);
}

/* ---- marking the answers --------------------------------------------------------------------- */

/* The path the client asked for. Behind a trusted reverse proxy that is the
 * published path (meeting.url's, say "/atrium/webmeeting/"), which the proxy
 * maps onto atriumd's internal one ("/webmeeting/"): policies name the
 * former, as they would on the documented product. */
static const char *client_path(http_request_t *req, const settings_snapshot_t *snap, char *buf,
                               size_t len) {
  const char *path = http_path(req);
  if (!http_via_trusted_proxy(req)) return path;
  published_entry_t entries[PUBLISHED_MAX_ENTRIES];
  int n = published_entries(snap, entries, PUBLISHED_MAX_ENTRIES);
  for (int i = 0; i < n; i++) {
    size_t il = strlen(entries[i].internal_path);
    if (strncmp(path, entries[i].internal_path, il) != 0) continue;
    int w = snprintf(buf, len, "%s%s", entries[i].path, path + il);
    return w >= 0 && (size_t)w < len ? buf : path;
  }
  return path;
}

/* The connection's word holds the marking its socket carries now: DSCP in
 * the high 32 bits, the rate in the low. Keep-alive connections carry
 * requests of several policies, or none; the socket is only touched when the
 * next reply needs something else, so an unmarked connection answering
 * unmarked requests costs no system call. */
static void before_reply(http_request_t *req, int fd, int family, uint64_t *conn_word) {
  int dscp = 0;
  long rate = 0;
  settings_snapshot_t *snap = settings_acquire();
  if (snap) {
    char buf[PUBLISHED_URL_MAX + 256];
    const json_t *policy =
        qos_match(settings_value(snap, "qos.policies"), http_request_scheme(req),
                  http_request_host(req), client_path(req, snap, buf, sizeof buf));
    if (policy) {
      dscp = (int)json_integer_value(json_object_get(policy, "dscp"));
      rate = (long)json_integer_value(json_object_get(policy, "max_rate_mbps"));
    }
    settings_release(snap);
  }
  uint64_t want = ((uint64_t)(uint32_t)dscp << 32) | (uint32_t)rate;
  if (want == *conn_word) return;
  int r = qos_apply_fd(fd, family, dscp, rate);
  if (r == 0) {
    *conn_word = want;
    return;
  }
  /* Once: a kernel that refuses would otherwise say so on every request. */
  static atomic_bool warned;
  if (!atomic_exchange(&warned, true))
    log_warning("QoS: cannot mark a connection (DSCP %d, %ld Mbit/s): %s", dscp, rate,
                strerror(-r));
}

static const char *const sections[] = {"qos", NULL};

static const settings_owner_t owner = {
    .name = "qos",
    .sections = sections,
    .computed_default = computed_default,
    .derive = derive,
};

static int init(const module_env_t *env, char *err, size_t errlen) {
  if (http_add_reply_hook(before_reply) < 0) {
    snprintf(err, errlen, "Cannot register the QoS marking (too many reply hooks).");
    return -ENOSPC;
  }
  return 0;
}

const atrium_module_t qos_module = {
    .name = "qos",
    .settings = &owner,
    .init = init,
};
