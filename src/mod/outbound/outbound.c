/* The outbound HTTP(S) client on libcurl: one easy handle per request, the
 * proxy taken from the settings snapshot of the moment, our own bypass
 * matching (libcurl's NO_PROXY knows no CIDR ranges and would also read the
 * environment, which must not decide where traffic goes). */
#include "mod/outbound/outbound.h"
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "conf/catalogue.h"

#define USER_AGENT "Atrium/" ATRIUM_VERSION

static struct {
  bool initialised;
  char ca_bundle[4096];
} O;

static struct {
  pthread_mutex_t lock;
  outbound_last_t last;
} L = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void record_result(const outbound_request_t *req, const outbound_response_t *resp);

static const char *const stage_names[] = {
    [OUTBOUND_STAGE_OK] = "ok",
    [OUTBOUND_STAGE_INVALID] = "invalid_request",
    [OUTBOUND_STAGE_PROXY_RESOLVE] = "proxy_resolve",
    [OUTBOUND_STAGE_PROXY_CONNECT] = "proxy_connect",
    [OUTBOUND_STAGE_PROXY_TIMEOUT] = "proxy_timeout",
    [OUTBOUND_STAGE_PROXY_AUTH] = "proxy_auth",
    [OUTBOUND_STAGE_PROXY_TUNNEL] = "proxy_tunnel",
    [OUTBOUND_STAGE_SERVER_RESOLVE] = "server_resolve",
    [OUTBOUND_STAGE_SERVER_CONNECT] = "server_connect",
    [OUTBOUND_STAGE_SERVER_TIMEOUT] = "server_timeout",
    [OUTBOUND_STAGE_TLS] = "tls",
    [OUTBOUND_STAGE_PROTOCOL] = "protocol",
    [OUTBOUND_STAGE_INTERNAL] = "internal",
};

const char *outbound_stage_name(outbound_stage_t stage) {
  if ((unsigned)stage < sizeof stage_names / sizeof stage_names[0] && stage_names[stage])
    return stage_names[stage];
  return "internal";
}

/* ---- proxy configuration ------------------------------------------------------------------ */

static const struct {
  const char *name;
  outbound_auth_t auth;
} auth_names[] = {
    {"basic", OUTBOUND_AUTH_BASIC},
    {"digest", OUTBOUND_AUTH_DIGEST},
    {"ntlm", OUTBOUND_AUTH_NTLM},
    {"negotiate", OUTBOUND_AUTH_NEGOTIATE},
};

int outbound_auth_parse(const char *name, outbound_auth_t *out) {
  for (size_t i = 0; name && i < sizeof auth_names / sizeof auth_names[0]; i++)
    if (strcmp(name, auth_names[i].name) == 0) {
      *out = auth_names[i].auth;
      return 0;
    }
  return -EINVAL;
}

unsigned long outbound_auth_curl(outbound_auth_t auth) {
  switch (auth) {
  case OUTBOUND_AUTH_BASIC: return CURLAUTH_BASIC;
  case OUTBOUND_AUTH_DIGEST: return CURLAUTH_DIGEST;
  case OUTBOUND_AUTH_NTLM: return CURLAUTH_NTLM;
  case OUTBOUND_AUTH_NEGOTIATE: return CURLAUTH_NEGOTIATE;
  case OUTBOUND_AUTH_NONE: break;
  }
  return 0;
}

void outbound_proxy_clear(outbound_proxy_t *proxy) {
  if (!proxy) return;
  if (proxy->password) {
    explicit_bzero(proxy->password, strlen(proxy->password));
    free(proxy->password);
  }
  json_decref(proxy->bypass);
  explicit_bzero(proxy, sizeof *proxy);
}

static int copy_text(char *dst, size_t len, const char *src) {
  size_t n = strlen(src);
  if (n >= len) return -EINVAL;
  memcpy(dst, src, n + 1);
  return 0;
}

/* The raw values of the proxy.* keys, borrowed; any may be NULL (default). */
typedef struct proxy_values {
  const json_t *enabled, *host, *port, *auth_required, *auth_method, *username, *password,
      *bypass;
} proxy_values_t;

/* Looks up one proxy.* value in a source: a plain JSON object or a settings snapshot. */
typedef const json_t *(*value_lookup_t)(const void *src, const char *key);

static const json_t *object_lookup(const void *src, const char *key) {
  return json_object_get(src, key);
}

static const json_t *snapshot_lookup(const void *src, const char *key) {
  return settings_value(src, key);
}

/* One list of the proxy.* keys for every source, so that they cannot drift apart. */
static void proxy_values_load(proxy_values_t *v, value_lookup_t lookup, const void *src) {
  *v = (proxy_values_t){
      .enabled = lookup(src, "proxy.enabled"),
      .host = lookup(src, "proxy.host"),
      .port = lookup(src, "proxy.port"),
      .auth_required = lookup(src, "proxy.auth_required"),
      .auth_method = lookup(src, "proxy.auth_method"),
      .username = lookup(src, "proxy.username"),
      .password = lookup(src, "proxy.password"),
      .bypass = lookup(src, "proxy.bypass"),
  };
}

/* The catalogue default of a key, for values a caller left out. New reference. */
static json_t *default_of(const char *key) {
  int i = catalogue_find(key);
  if (i < 0 || !catalogue[i].default_json) return NULL;
  return json_loads(catalogue[i].default_json, JSON_DECODE_ANY, NULL);
}

static int fill_proxy(const proxy_values_t *v, bool allowed, outbound_proxy_t *out) {
  memset(out, 0, sizeof *out);
  json_t *dflt[4] = {NULL};
  const json_t *port = v->port ? v->port : (dflt[0] = default_of("proxy.port"));
  const json_t *method = v->auth_method ? v->auth_method
                                        : (dflt[1] = default_of("proxy.auth_method"));
  const json_t *bypass = v->bypass ? v->bypass : (dflt[2] = default_of("proxy.bypass"));
  int r = 0;
  if ((v->enabled && !json_is_boolean(v->enabled)) || (v->host && !json_is_string(v->host)) ||
      (port && !json_is_integer(port)) ||
      (v->auth_required && !json_is_boolean(v->auth_required)) ||
      (method && !json_is_string(method)) || (v->username && !json_is_string(v->username)) ||
      (v->password && !json_is_null(v->password) && !json_is_string(v->password)) ||
      (bypass && !json_is_array(bypass))) {
    r = -EINVAL;
    goto out;
  }
  out->enabled = allowed && v->enabled && json_is_true(v->enabled);
  if (v->host) r = copy_text(out->host, sizeof out->host, json_string_value(v->host));
  /* Brackets are ours to add where a URL needs them, never part of the host. */
  size_t hl = strlen(out->host);
  if (r == 0 && hl >= 2 && out->host[0] == '[' && out->host[hl - 1] == ']') {
    memmove(out->host, out->host + 1, hl - 2);
    out->host[hl - 2] = '\0';
  }
  out->port = port ? (int)json_integer_value(port) : 8080;
  if (r == 0 && (out->port < 1 || out->port > 65535)) r = -EINVAL;
  out->auth = OUTBOUND_AUTH_NONE;
  if (r == 0 && v->auth_required && json_is_true(v->auth_required))
    r = outbound_auth_parse(method ? json_string_value(method) : "basic", &out->auth);
  if (r == 0 && v->username)
    r = copy_text(out->username, sizeof out->username, json_string_value(v->username));
  if (r == 0 && v->password && json_is_string(v->password)) {
    out->password = strdup(json_string_value(v->password));
    if (!out->password) r = -ENOMEM;
  }
  if (r == 0) {
    out->bypass = bypass ? json_incref((json_t *)bypass) : json_array();
    if (!out->bypass) r = -ENOMEM;
  }
  for (size_t i = 0; r == 0 && i < json_array_size(out->bypass); i++)
    if (!json_is_string(json_array_get(out->bypass, i))) r = -EINVAL;
out:
  for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++) json_decref(dflt[i]);
  if (r != 0) outbound_proxy_clear(out);
  return r;
}

int outbound_proxy_from_values(const json_t *values, outbound_proxy_t *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (values && !json_is_object(values)) return -EINVAL;
  proxy_values_t v;
  proxy_values_load(&v, object_lookup, values);
  return fill_proxy(&v, true, out);
}

int outbound_proxy_from_settings(const settings_snapshot_t *snap, outbound_purpose_t purpose,
                                 outbound_proxy_t *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (!snap) return -EINVAL;
  /* Push goes through the proxy only when the admin asked for it (the
   * "Use proxy settings for sending push notifications" checkbox). */
  bool allowed = purpose != OUTBOUND_PUSH || settings_bool(snap, "mobile.push_use_proxy");
  proxy_values_t v;
  proxy_values_load(&v, snapshot_lookup, snap);
  return fill_proxy(&v, allowed, out);
}

int outbound_proxy_url(const outbound_proxy_t *proxy, char *buf, size_t len) {
  if (!proxy || !proxy->host[0]) return -EINVAL;
  bool v6 = strchr(proxy->host, ':') != NULL;
  int n = snprintf(buf, len, "http://%s%s%s:%d", v6 ? "[" : "", proxy->host, v6 ? "]" : "",
                   proxy->port);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- bypass matching --------------------------------------------------------------------- */

typedef struct ip_addr {
  int family; /* 0: not an address */
  unsigned char bytes[16];
} ip_addr_t;

static ip_addr_t parse_ip(const char *s) {
  ip_addr_t a = {0};
  if (netaddr_parse(s, &a.family, a.bytes) < 0) a.family = 0;
  return a;
}

static bool cidr_match(const char *entry, const ip_addr_t *host) {
  netaddr_net_t net;
  return netaddr_net_parse(entry, &net) == 0 &&
         netaddr_net_contains(&net, host->family, host->bytes);
}

/* Lower case, without brackets or a trailing dot; false when it does not fit. */
static bool canonical_host(const char *in, char *out, size_t len) {
  size_t n = strlen(in);
  if (n >= 2 && in[0] == '[' && in[n - 1] == ']') {
    in++;
    n -= 2;
  }
  if (n > 1 && in[n - 1] == '.') n--;
  if (n == 0 || n >= len) return false;
  for (size_t i = 0; i < n; i++) out[i] = (char)tolower((unsigned char)in[i]);
  out[n] = '\0';
  return true;
}

bool outbound_bypass_match(const json_t *bypass, const char *host) {
  char h[OUTBOUND_HOST_MAX];
  if (!json_is_array(bypass) || !host || !canonical_host(host, h, sizeof h)) return false;
  ip_addr_t ip = parse_ip(h);
  size_t hl = strlen(h);
  size_t i;
  const json_t *item;
  json_array_foreach(bypass, i, item) {
    const char *raw = json_string_value(item);
    char e[OUTBOUND_HOST_MAX];
    if (!raw || !canonical_host(raw, e, sizeof e)) continue;
    if (strchr(e, '/')) {
      if (ip.family && cidr_match(e, &ip)) return true;
      continue;
    }
    ip_addr_t eip = parse_ip(e);
    if (eip.family) {
      if (ip.family == eip.family &&
          memcmp(ip.bytes, eip.bytes, ip.family == AF_INET ? 4 : 16) == 0)
        return true;
      continue;
    }
    if (ip.family) continue; /* names never match an address */
    const char *suffix = strncmp(e, "*.", 2) == 0 ? e + 1 : e[0] == '.' ? e : NULL;
    if (suffix) {
      size_t sl = strlen(suffix);
      if (hl > sl && strcmp(h + hl - sl, suffix) == 0) return true;
    } else if (strcmp(h, e) == 0) {
      return true;
    }
  }
  return false;
}

/* ---- classification ----------------------------------------------------------------------- */

/* squid names why it could not do what was asked; the words are stable. */
static outbound_stage_t squid_stage(const char *proxy_error) {
  if (!proxy_error || !*proxy_error) return OUTBOUND_STAGE_OK;
  if (strncmp(proxy_error, "ERR_DNS_FAIL", 12) == 0) return OUTBOUND_STAGE_SERVER_RESOLVE;
  if (strncmp(proxy_error, "ERR_CONNECT_FAIL", 16) == 0 ||
      strncmp(proxy_error, "ERR_CANNOT_FORWARD", 18) == 0)
    return OUTBOUND_STAGE_SERVER_CONNECT;
  if (strncmp(proxy_error, "ERR_READ_TIMEOUT", 16) == 0 ||
      strncmp(proxy_error, "ERR_LIFETIME_EXP", 16) == 0)
    return OUTBOUND_STAGE_SERVER_TIMEOUT;
  return OUTBOUND_STAGE_OK;
}

outbound_stage_t outbound_classify(int curl_code, long connect_status, long status,
                                   bool via_proxy, const char *proxy_error) {
  if (via_proxy && connect_status >= 300) {
    if (connect_status == 407) return OUTBOUND_STAGE_PROXY_AUTH;
    outbound_stage_t s = squid_stage(proxy_error);
    if (s != OUTBOUND_STAGE_OK) return s;
    /* Bad gateway, unavailable, gateway timeout: the proxy tried and failed. */
    if (connect_status == 502 || connect_status == 503) return OUTBOUND_STAGE_SERVER_CONNECT;
    if (connect_status == 504) return OUTBOUND_STAGE_SERVER_TIMEOUT;
    return OUTBOUND_STAGE_PROXY_TUNNEL;
  }
  bool before_proxy_answer = via_proxy && connect_status == 0;
  switch ((CURLcode)curl_code) {
  case CURLE_OK:
    if (via_proxy && status == 407) return OUTBOUND_STAGE_PROXY_AUTH;
    if (via_proxy && status >= 500) return squid_stage(proxy_error);
    return OUTBOUND_STAGE_OK;
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
  case CURLE_BAD_FUNCTION_ARGUMENT:
  case CURLE_NOT_BUILT_IN:
  case CURLE_UNKNOWN_OPTION:
    return OUTBOUND_STAGE_INVALID;
  case CURLE_COULDNT_RESOLVE_PROXY: return OUTBOUND_STAGE_PROXY_RESOLVE;
  case CURLE_COULDNT_RESOLVE_HOST: return OUTBOUND_STAGE_SERVER_RESOLVE;
  case CURLE_COULDNT_CONNECT:
    return before_proxy_answer ? OUTBOUND_STAGE_PROXY_CONNECT : OUTBOUND_STAGE_SERVER_CONNECT;
  case CURLE_OPERATION_TIMEDOUT:
    return before_proxy_answer ? OUTBOUND_STAGE_PROXY_TIMEOUT : OUTBOUND_STAGE_SERVER_TIMEOUT;
  case CURLE_GOT_NOTHING:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
    /* The proxy's port answered, but not as a proxy (or closed on us). */
    return before_proxy_answer ? OUTBOUND_STAGE_PROXY_CONNECT : OUTBOUND_STAGE_PROTOCOL;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_USE_SSL_FAILED:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
    return OUTBOUND_STAGE_TLS;
  case CURLE_OUT_OF_MEMORY:
  case CURLE_FAILED_INIT:
    return OUTBOUND_STAGE_INTERNAL;
  default:
    return OUTBOUND_STAGE_PROTOCOL;
  }
}

static int stage_errno(outbound_stage_t stage) {
  switch (stage) {
  case OUTBOUND_STAGE_OK: return 0;
  case OUTBOUND_STAGE_INVALID: return -EINVAL;
  case OUTBOUND_STAGE_PROXY_RESOLVE:
  case OUTBOUND_STAGE_SERVER_RESOLVE: return -EHOSTUNREACH;
  case OUTBOUND_STAGE_PROXY_CONNECT:
  case OUTBOUND_STAGE_SERVER_CONNECT: return -ECONNREFUSED;
  case OUTBOUND_STAGE_PROXY_TIMEOUT:
  case OUTBOUND_STAGE_SERVER_TIMEOUT: return -ETIMEDOUT;
  case OUTBOUND_STAGE_PROXY_AUTH: return -EACCES;
  case OUTBOUND_STAGE_PROXY_TUNNEL: return -EPERM;
  case OUTBOUND_STAGE_TLS:
  case OUTBOUND_STAGE_PROTOCOL: return -EPROTO;
  case OUTBOUND_STAGE_INTERNAL: return -ENOMEM;
  }
  return -EPROTO;
}

/* ---- the transfer ------------------------------------------------------------------------- */

typedef struct transfer {
  outbound_response_t *resp;
  size_t cap, alloc;
} transfer_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
  transfer_t *t = userdata;
  outbound_response_t *resp = t->resp;
  size_t len = size * nmemb;
  size_t room = t->cap - resp->body_len;
  size_t take = len < room ? len : room;
  if (take > 0) {
    if (resp->body_len + take + 1 > t->alloc) {
      size_t want = t->alloc ? t->alloc : 4096;
      while (want < resp->body_len + take + 1) want *= 2;
      if (want > t->cap + 1) want = t->cap + 1;
      char *p = realloc(resp->body, want);
      if (!p) return 0;
      resp->body = p;
      t->alloc = want;
    }
    memcpy(resp->body + resp->body_len, data, take);
    resp->body_len += take;
    resp->body[resp->body_len] = '\0';
  }
  if (take < len) {
    /* Stop reading: what is beyond the cap is not wanted, and the
     * transfer's result is still the response we have. */
    resp->truncated = true;
    return 0;
  }
  return len;
}

static bool header_is(const char *line, size_t len, const char *name, const char **value) {
  size_t n = strlen(name);
  if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') return false;
  *value = line + n + 1;
  return true;
}

/* Sees the headers of every response, the proxy's CONNECT answers included:
 * the proxy's offered authentication schemes and squid's error name belong
 * to the latest of them. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
  transfer_t *t = userdata;
  outbound_response_t *resp = t->resp;
  size_t len = size * nmemb;
  if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
    resp->proxy_auth_offered = 0;
    resp->proxy_error[0] = '\0';
    return len;
  }
  const char *v;
  if (header_is(data, len, "Proxy-Authenticate", &v)) {
    while (v < data + len && (*v == ' ' || *v == '\t')) v++;
    size_t rest = (size_t)(data + len - v);
    static const struct {
      const char *scheme;
      outbound_auth_t auth;
    } schemes[] = {{"Basic", OUTBOUND_AUTH_BASIC},
                   {"Digest", OUTBOUND_AUTH_DIGEST},
                   {"NTLM", OUTBOUND_AUTH_NTLM},
                   {"Negotiate", OUTBOUND_AUTH_NEGOTIATE}};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
      size_t sl = strlen(schemes[i].scheme);
      if (rest >= sl && strncasecmp(v, schemes[i].scheme, sl) == 0 &&
          (rest == sl || v[sl] == ' ' || v[sl] == '\r' || v[sl] == '\n'))
        resp->proxy_auth_offered |= 1u << schemes[i].auth;
    }
  } else if (header_is(data, len, "X-Squid-Error", &v)) {
    while (v < data + len && (*v == ' ' || *v == '\t')) v++;
    size_t n = (size_t)(data + len - v);
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
    if (n >= sizeof resp->proxy_error) n = sizeof resp->proxy_error - 1;
    for (size_t i = 0; i < n; i++)
      resp->proxy_error[i] = isprint((unsigned char)v[i]) ? v[i] : '?';
    resp->proxy_error[n] = '\0';
  }
  return len;
}

static long elapsed_ms_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long)((now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000);
}

/* Scheme and host of the URL as libcurl will see them. */
static int url_parts(const char *url, bool *https, char *host, size_t hostlen) {
  CURLU *u = curl_url();
  if (!u) return -ENOMEM;
  char *scheme = NULL, *h = NULL;
  int r = -EINVAL;
  unsigned flags = 0;
#ifdef CURLU_PUNYCODE
  flags |= CURLU_PUNYCODE;
#endif
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &h, flags) == CURLUE_OK &&
      (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0) &&
      strlen(h) < hostlen) {
    *https = strcasecmp(scheme, "https") == 0;
    memcpy(host, h, strlen(h) + 1);
    r = 0;
  }
  curl_free(scheme);
  curl_free(h);
  curl_url_cleanup(u);
  return r;
}

#define SETOPT(h, opt, val)                                                                       \
  do {                                                                                            \
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val);                                       \
  } while (0)

int outbound_easy_setup(void *easy, const char *url, const outbound_proxy_t *proxy,
                        bool *via_proxy) {
  CURL *h = easy;
  bool https = false;
  char host[OUTBOUND_HOST_MAX];
  int r = url_parts(url, &https, host, sizeof host);
  if (r < 0) return r;
  char proxy_url[OUTBOUND_HOST_MAX + 32] = "";
  bool use_proxy = proxy && proxy->enabled && proxy->host[0] &&
                   !outbound_bypass_match(proxy->bypass, host);
  if (use_proxy && outbound_proxy_url(proxy, proxy_url, sizeof proxy_url) < 0) return -EINVAL;
  if (via_proxy) *via_proxy = use_proxy;

  CURLcode rc = CURLE_OK;
  SETOPT(h, CURLOPT_URL, url);
  SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
  /* A redirect never turns an encrypted request into a plain one. */
  SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
  SETOPT(h, CURLOPT_NOSIGNAL, 1L);
  SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
  SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (O.ca_bundle[0]) SETOPT(h, CURLOPT_CAINFO, O.ca_bundle);
  SETOPT(h, CURLOPT_USERAGENT, USER_AGENT);
  /* An empty NOPROXY and an explicit PROXY keep the environment
   * (http_proxy, no_proxy) out: the settings alone decide the route. */
  SETOPT(h, CURLOPT_NOPROXY, "");
  SETOPT(h, CURLOPT_PROXY, use_proxy ? proxy_url : "");
  if (use_proxy) {
    SETOPT(h, CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTP);
    if (proxy->auth != OUTBOUND_AUTH_NONE) {
      SETOPT(h, CURLOPT_PROXYAUTH, outbound_auth_curl(proxy->auth));
      SETOPT(h, CURLOPT_PROXYUSERNAME, proxy->username);
      SETOPT(h, CURLOPT_PROXYPASSWORD, proxy->password ? proxy->password : "");
    }
  }
  return rc == CURLE_OK ? 0 : rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

int outbound_perform(const outbound_request_t *req, const outbound_proxy_t *proxy,
                     outbound_response_t *resp) {
  if (!resp) return -EINVAL;
  memset(resp, 0, sizeof *resp);
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  resp->stage = OUTBOUND_STAGE_INVALID;
  if (!req || !req->url) return -EINVAL;

  bool https = false;
  char host[OUTBOUND_HOST_MAX];
  int r = url_parts(req->url, &https, host, sizeof host);
  if (r < 0) {
    resp->stage = r == -ENOMEM ? OUTBOUND_STAGE_INTERNAL : OUTBOUND_STAGE_INVALID;
    return r;
  }

  CURL *h = curl_easy_init();
  struct curl_slist *headers = NULL;
  if (!h) {
    resp->stage = OUTBOUND_STAGE_INTERNAL;
    return -ENOMEM;
  }
  bool use_proxy = false;
  r = outbound_easy_setup(h, req->url, proxy, &use_proxy);
  if (r < 0) {
    curl_easy_cleanup(h);
    resp->stage = r == -ENOMEM ? OUTBOUND_STAGE_INTERNAL : OUTBOUND_STAGE_INVALID;
    return r;
  }
  resp->via_proxy = use_proxy;
  resp->credentials_sent = use_proxy && proxy->auth != OUTBOUND_AUTH_NONE;
  transfer_t t = {.resp = resp, .cap = req->max_body ? req->max_body : OUTBOUND_BODY_MAX};
  long connect_ms = req->connect_timeout_ms > 0 ? req->connect_timeout_ms
                                                : OUTBOUND_CONNECT_TIMEOUT_MS;
  long total_ms = req->timeout_ms > 0 ? req->timeout_ms : OUTBOUND_TIMEOUT_MS;
  if (connect_ms > total_ms) connect_ms = total_ms;
  int redirects = req->max_redirects < 0 ? OUTBOUND_MAX_REDIRECTS : req->max_redirects;

  CURLcode rc = CURLE_OK;
  SETOPT(h, CURLOPT_FOLLOWLOCATION, redirects > 0 ? 1L : 0L);
  SETOPT(h, CURLOPT_MAXREDIRS, (long)redirects);
  SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  SETOPT(h, CURLOPT_TIMEOUT_MS, total_ms);
  SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(h, CURLOPT_WRITEDATA, &t);
  SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(h, CURLOPT_HEADERDATA, &t);
  for (const char *const *hd = req->headers; hd && *hd && rc == CURLE_OK; hd++) {
    struct curl_slist *n = curl_slist_append(headers, *hd);
    if (!n) rc = CURLE_OUT_OF_MEMORY;
    else headers = n;
  }
  if (headers) SETOPT(h, CURLOPT_HTTPHEADER, headers);
  if (req->body) {
    SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    SETOPT(h, CURLOPT_POSTFIELDS, req->body);
  }
  const char *method = req->method ? req->method : req->body ? "POST" : "GET";
  if (strcmp(method, "HEAD") == 0) SETOPT(h, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0 && !(strcmp(method, "POST") == 0 && req->body))
    SETOPT(h, CURLOPT_CUSTOMREQUEST, method);

  if (rc == CURLE_OK) rc = curl_easy_perform(h);
  long status = 0, connect_status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &connect_status);
  curl_easy_cleanup(h);
  curl_slist_free_all(headers);

  if (rc == CURLE_WRITE_ERROR && resp->truncated) rc = CURLE_OK;
  resp->curl_code = (int)rc;
  resp->status = status;
  resp->connect_status = connect_status;
  resp->stage = outbound_classify((int)rc, connect_status, status, use_proxy, resp->proxy_error);
  resp->elapsed_ms = elapsed_ms_since(&start);
  record_result(req, resp);
  return stage_errno(resp->stage);
}


/* Every finished request, whichever caller: what the status page says of
 * the outbound connection. */
static void record_result(const outbound_request_t *req, const outbound_response_t *resp) {
  pthread_mutex_lock(&L.lock);
  L.last.requests++;
  int64_t now = (int64_t)time(NULL);
  if (resp->stage == OUTBOUND_STAGE_OK) {
    L.last.last_ok_at = now;
    L.last.last_failed = false;
  } else {
    L.last.last_error_at = now;
    L.last.last_failed = true;
    snprintf(L.last.last_error, sizeof L.last.last_error, "%s%s failed at %s%s%s",
             resp->via_proxy ? "through the proxy, " : "",
             req && req->url ? req->url : "a request", outbound_stage_name(resp->stage),
             resp->proxy_error[0] ? ": " : "", resp->proxy_error);
  }
  pthread_mutex_unlock(&L.lock);
}

void outbound_last_result(outbound_last_t *out) {
  pthread_mutex_lock(&L.lock);
  *out = L.last;
  pthread_mutex_unlock(&L.lock);
}

int outbound_request(const outbound_request_t *req, outbound_response_t *resp) {
  if (!resp) return -EINVAL;
  memset(resp, 0, sizeof *resp);
  resp->stage = OUTBOUND_STAGE_INTERNAL;
  settings_snapshot_t *snap = settings_acquire();
  if (!snap) return -EAGAIN;
  outbound_proxy_t proxy;
  int r = outbound_proxy_from_settings(snap, req ? req->purpose : OUTBOUND_GENERAL, &proxy);
  settings_release(snap);
  if (r < 0) return r;
  r = outbound_perform(req, &proxy, resp);
  outbound_proxy_clear(&proxy);
  return r;
}

void outbound_response_clear(outbound_response_t *resp) {
  if (!resp) return;
  free(resp->body);
  resp->body = NULL;
  resp->body_len = 0;
}

/* ---- start and stop ----------------------------------------------------------------------- */

int outbound_init(const char *ca_bundle, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (ca_bundle && *ca_bundle) {
    if (strlen(ca_bundle) >= sizeof O.ca_bundle) {
      snprintf(err, errlen, "The <CABundle> path in atlas.xml is too long.");
      return -ENAMETOOLONG;
    }
    /* Found now rather than at the first license check hours later. */
    if (access(ca_bundle, R_OK) != 0) {
      int e = errno;
      snprintf(err, errlen,
               "The CA bundle %s named by <CABundle> in atlas.xml cannot be read (%s); fix the "
               "path or the file's permissions, or remove <CABundle> to trust the system's CAs.",
               ca_bundle, strerror(e));
      return -e;
    }
  }
  if (!O.initialised) {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
      snprintf(err, errlen, "libcurl cannot start: %s.", curl_easy_strerror(rc));
      return -ENOMEM;
    }
    O.initialised = true;
  }
  snprintf(O.ca_bundle, sizeof O.ca_bundle, "%s", ca_bundle ? ca_bundle : "");
  return 0;
}

void outbound_shutdown(void) {
  if (!O.initialised) return;
  curl_global_cleanup();
  O.initialised = false;
  O.ca_bundle[0] = '\0';
}
