/* The outbound HTTP(S) client: the only way atriumd makes a request to
 * another server (license information, Graph API, TURN credentials, push
 * notifications, ...). Built on libcurl.
 *
 * Every request reads the current settings snapshot, so a change of the proxy
 * settings applies to the next request without a restart. Which requests use
 * the proxy (when proxy.enabled is on and the destination is not in
 * proxy.bypass) depends on the purpose:
 *
 *   OUTBOUND_LICENSE, OUTBOUND_GRAPH, OUTBOUND_TURN, OUTBOUND_GENERAL: always.
 *   OUTBOUND_PUSH: only when mobile.push_use_proxy is on as well.
 *
 * TLS peer and host verification are always on; the CAs trusted are the
 * system's, or the file named by <CABundle> in atlas.xml. Only http and https
 * are spoken, redirects are limited, connect and total times are bounded.
 * The proxy password is handed to libcurl and to nothing else: this module
 * never writes it anywhere, and libcurl's verbose mode is never turned on.
 *
 * Like every library-like module, this one does not log. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf/settings.h"
#include "mod/module.h"

extern const atrium_module_t outbound_module;

#define OUTBOUND_CONNECT_TIMEOUT_MS 10000L
#define OUTBOUND_TIMEOUT_MS 30000L
#define OUTBOUND_MAX_REDIRECTS 3
#define OUTBOUND_BODY_MAX (1024 * 1024)
#define OUTBOUND_HOST_MAX 256
#define OUTBOUND_USERNAME_MAX 256

typedef enum outbound_purpose {
  OUTBOUND_GENERAL,
  OUTBOUND_LICENSE,
  OUTBOUND_GRAPH,
  OUTBOUND_TURN,
  OUTBOUND_PUSH,
} outbound_purpose_t;

typedef enum outbound_auth {
  OUTBOUND_AUTH_NONE,
  OUTBOUND_AUTH_BASIC,
  OUTBOUND_AUTH_DIGEST,
  OUTBOUND_AUTH_NTLM,
  OUTBOUND_AUTH_NEGOTIATE,
} outbound_auth_t;

/* Where a request failed; OUTBOUND_STAGE_OK when a response arrived, whatever
 * its status. */
typedef enum outbound_stage {
  OUTBOUND_STAGE_OK,
  OUTBOUND_STAGE_INVALID,        /* the request itself is unusable (URL, scheme) */
  OUTBOUND_STAGE_PROXY_RESOLVE,  /* the proxy's host name does not resolve */
  OUTBOUND_STAGE_PROXY_CONNECT,  /* the proxy refuses the connection / cannot be reached */
  OUTBOUND_STAGE_PROXY_TIMEOUT,  /* the proxy does not answer in time */
  OUTBOUND_STAGE_PROXY_AUTH,     /* 407: credentials missing or rejected */
  OUTBOUND_STAGE_PROXY_TUNNEL,   /* the proxy refuses CONNECT (403 and the like) */
  OUTBOUND_STAGE_SERVER_RESOLVE, /* the server's name does not resolve (here or at the proxy) */
  OUTBOUND_STAGE_SERVER_CONNECT, /* the server refuses or cannot be reached */
  OUTBOUND_STAGE_SERVER_TIMEOUT, /* the server does not answer in time */
  OUTBOUND_STAGE_TLS,            /* TLS handshake or certificate verification failed */
  OUTBOUND_STAGE_PROTOCOL,       /* anything else on the wire (too many redirects, ...) */
  OUTBOUND_STAGE_INTERNAL,       /* out of memory, libcurl cannot start */
} outbound_stage_t;

/* The stage's name as the API writes it: "ok", "proxy_resolve", ... */
const char *outbound_stage_name(outbound_stage_t stage);

/* The proxy as one request sees it. Filled from a settings snapshot or from
 * a set of unsaved values (the proxy test); release with
 * outbound_proxy_clear. */
typedef struct outbound_proxy {
  bool enabled;
  char host[OUTBOUND_HOST_MAX]; /* name, IPv4 or IPv6 literal (without brackets) */
  int port;
  outbound_auth_t auth; /* OUTBOUND_AUTH_NONE unless proxy.auth_required */
  char username[OUTBOUND_USERNAME_MAX];
  char *password;  /* NULL when unset; wiped and freed by outbound_proxy_clear */
  json_t *bypass;  /* array of normalised bypass entries (own reference), never NULL after fill */
} outbound_proxy_t;

/* From an object holding the proxy.* keys ("proxy.enabled", "proxy.host",
 * ...) with values as the catalogue normalises them; a key that is absent
 * counts as its default, "proxy.password" absent or null as unset. 0,
 * -EINVAL (a value of the wrong type or too long), -ENOMEM. */
int outbound_proxy_from_values(const json_t *values, outbound_proxy_t *out);
/* From a snapshot, for a purpose (push without mobile.push_use_proxy gets a
 * disabled proxy). */
int outbound_proxy_from_settings(const settings_snapshot_t *snap, outbound_purpose_t purpose,
                                 outbound_proxy_t *out);
void outbound_proxy_clear(outbound_proxy_t *proxy); /* accepts NULL */

/* "basic", "digest", "ntlm", "negotiate" → the enum; -EINVAL otherwise. */
int outbound_auth_parse(const char *name, outbound_auth_t *out);
/* The libcurl CURLAUTH_* bit set for a method (0 for NONE). */
unsigned long outbound_auth_curl(outbound_auth_t auth);

/* The value for CURLOPT_PROXY: "http://host:port", an IPv6 literal in
 * brackets. -ENAMETOOLONG when it does not fit, -EINVAL without a host. */
int outbound_proxy_url(const outbound_proxy_t *proxy, char *buf, size_t len);

/* True when host (a name, or an IPv4/IPv6 literal with or without brackets;
 * case and a trailing dot do not matter) matches an entry of the bypass
 * list: an exact name, "*.example.com" or ".example.com" (any name below
 * example.com, not example.com itself), an address, or a CIDR range. Names
 * are not resolved to match a range: a range matches only destinations
 * given as addresses. */
bool outbound_bypass_match(const json_t *bypass, const char *host);

typedef struct outbound_request {
  outbound_purpose_t purpose;
  const char *method;             /* NULL: "GET" (or "POST" with a body) */
  const char *url;                /* http:// or https:// */
  const char *const *headers;     /* NULL-terminated "Name: value" lines, or NULL */
  const void *body;               /* NULL: no body */
  size_t body_len;
  long connect_timeout_ms;        /* 0: OUTBOUND_CONNECT_TIMEOUT_MS */
  long timeout_ms;                /* 0: OUTBOUND_TIMEOUT_MS; the whole transfer */
  int max_redirects;              /* -1: OUTBOUND_MAX_REDIRECTS; 0: none followed */
  size_t max_body;                /* 0: OUTBOUND_BODY_MAX; more is cut off (truncated) */
} outbound_request_t;

/* Proxy-Authenticate schemes the proxy offered (bit set of 1u << outbound_auth_t). */
typedef struct outbound_response {
  outbound_stage_t stage;
  long status;          /* the final HTTP status; 0 when none arrived */
  long connect_status;  /* the proxy's answer to CONNECT; 0 when there was none */
  char *body;           /* NUL-terminated, at most max_body bytes; NULL when empty */
  size_t body_len;
  bool truncated;
  bool via_proxy;       /* the request went to the proxy (not bypassed, proxy enabled) */
  bool credentials_sent;/* proxy credentials were configured for this request */
  unsigned proxy_auth_offered;
  char proxy_error[64]; /* squid's X-Squid-Error of the CONNECT answer ("ERR_DNS_FAIL 0") */
  int curl_code;        /* CURLcode, for the logs of callers */
  long elapsed_ms;
} outbound_response_t;

/* Once, before any thread starts (it calls curl_global_init). ca_bundle: the
 * <CABundle> path or NULL/"" for the system's CAs; it must be a readable
 * file. On failure err holds a sentence. */
int outbound_init(const char *ca_bundle, char *err, size_t errlen);
void outbound_shutdown(void);

/* One request with an explicit proxy (NULL: direct). Returns 0 when an HTTP
 * response arrived (any status: see resp->status), otherwise a negative code
 * with resp->stage saying where it failed: -EINVAL (unusable request),
 * -EHOSTUNREACH (resolve), -ECONNREFUSED, -ETIMEDOUT, -EACCES (proxy
 * authentication), -EPERM (CONNECT refused), -EPROTO (TLS, protocol),
 * -ENOMEM. resp is always filled; release it with outbound_response_clear. */
int outbound_perform(const outbound_request_t *req, const outbound_proxy_t *proxy,
                     outbound_response_t *resp);

/* For callers that drive libcurl themselves (the push sender's HTTP/2
 * multi handle): sets on the easy handle `easy` (a CURL *) everything every
 * outbound request has — the URL, http/https only, TLS verification with
 * <CABundle>, the user agent, and the route: `proxy` (NULL: direct) unless
 * the URL's host is in its bypass list. *via_proxy (may be NULL) says which.
 * 0, -EINVAL (URL, proxy), -ENOMEM. */
int outbound_easy_setup(void *easy, const char *url, const outbound_proxy_t *proxy,
                        bool *via_proxy);

/* The same with the proxy of the current settings for req->purpose. */
int outbound_request(const outbound_request_t *req, outbound_response_t *resp);

void outbound_response_clear(outbound_response_t *resp); /* accepts NULL */

/* The last outbound request of each kind, for the status page: when the
 * last one succeeded and the last one failed (unix seconds, 0: never), and
 * the failure's sentence with the stage and URL. */
typedef struct outbound_last {
  uint64_t requests;
  int64_t last_ok_at, last_error_at;
  char last_error[600];
  bool last_failed; /* the most recent request failed */
} outbound_last_t;
void outbound_last_result(outbound_last_t *out);

/* Classifies a finished transfer (exported for the unit tests): the libcurl
 * result, the CONNECT and final status, and whether a proxy was used. */
outbound_stage_t outbound_classify(int curl_code, long connect_status, long status,
                                   bool via_proxy, const char *proxy_error);

/* HTTP/2 resets of already closed streams that libcurl asked for and that
 * were not sent (h2_closed_reset.c says why); for the push metrics. */
unsigned long long outbound_h2_resets_cancelled(void);
