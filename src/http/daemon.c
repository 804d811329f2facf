/* The HTTP server: libmicrohttpd, the checks every request passes before its
 * handler, the reply helpers, and slow work handed to a worker pool. */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/workpool.h"
#include "http/limits.h"
#include "http/router.h"

static const char *const method_names[HTTP_METHOD_COUNT] = {
    [HTTP_GET] = "GET",     [HTTP_HEAD] = "HEAD",       [HTTP_POST] = "POST",
    [HTTP_PUT] = "PUT",     [HTTP_PATCH] = "PATCH",     [HTTP_DELETE] = "DELETE",
    [HTTP_OPTIONS] = "OPTIONS", [HTTP_OTHER] = "OTHER",
};

http_method_t http_method_parse(const char *name) {
  /* Methods are case-sensitive (RFC 9110 9.1). */
  for (int m = 0; m < HTTP_OTHER; m++)
    if (name && strcmp(name, method_names[m]) == 0) return (http_method_t)m;
  return HTTP_OTHER;
}

const char *http_method_name(http_method_t m) {
  return (unsigned)m < HTTP_METHOD_COUNT ? method_names[m] : "OTHER";
}

json_t *http_problem_json(unsigned status, const char *slug, const char *title, const char *detail,
                          const json_t *errors) {
  if (!title || !*title) title = MHD_get_reason_phrase_for(status);
  return problem_json(status, slug, title, detail, errors);
}

/* ---- the server -------------------------------------------------------------------- */

#define HTTP_MAX_EXTRA_HEADERS 6
#define HTTP_DRAIN_MAX (4 * 1024 * 1024)

struct http_request {
  struct MHD_Connection *conn;
  const http_route_t *route;
  size_t slot;
  http_method_t method;
  struct timespec start;
  unsigned status; /* 0 until a reply is queued */
  bool deferred;   /* no body: checks run at the second call */
  bool too_large;
  char *body;
  size_t body_len, body_alloc;
  size_t drained; /* bytes discarded after the cap was passed */
  json_t *json;
  char *path;
  bool authenticated;
  auth_identity_t who;
  const char *token; /* MHD's copy of the header, valid for the request */
  struct {
    char *name, *value;
  } headers[HTTP_MAX_EXTRA_HEADERS];
  size_t nheaders;
  char client[INET6_ADDRSTRLEN];
  char forwarded_key[NETADDR_KEY_MAX]; /* counted in limits_forwarded_enter, or empty */
  struct http_job *job; /* work in progress on its own thread (http_defer), or NULL */
};

/* What the worker thread of http_defer touches: never the request itself,
 * which MHD may free if the daemon stops. */
typedef struct http_job {
  struct MHD_Connection *conn;
  http_work_fn work;
  http_reply_fn reply;
  void *ctx;
  void (*free_ctx)(void *ctx);
  atomic_bool done;
  bool cpu; /* counted in server.cpu_inflight */
} http_job_t;

static struct {
  struct MHD_Daemon *daemon;
  store_t *store;
  http_router_t *router;
  workpool_t *defer_pool;
  workpool_t *cpu_pool;
  unsigned cpu_max;
  atomic_uint cpu_inflight;
  int port;
  bool tls;
  atomic_bool stopping;
  struct MHD_Response *oom; /* built at start: replying must not need memory */
  pthread_mutex_t jobs_lock; /* guards jobs_running, signals jobs_idle */
  pthread_cond_t jobs_idle;
  unsigned jobs_running;
  char *cert, *key;
  char start_error[256]; /* MHD's last message while starting, for the user */
  bool starting;
} server = {
    .jobs_lock = PTHREAD_MUTEX_INITIALIZER,
    .jobs_idle = PTHREAD_COND_INITIALIZER,
};

/* How long http_stop waits for slow requests (http_defer) to finish. */
#define HTTP_STOP_WAIT_SECONDS 30

static const char oom_body[] =
    "{\"type\":\"" PROBLEM_TYPE_BASE "internal\",\"title\":\"Internal server error\","
    "\"status\":500,\"detail\":\"The server ran out of memory; try again.\",\"errors\":[]}";

struct MHD_Connection *http_connection(http_request_t *req) { return req->conn; }
const json_t *http_body_json(http_request_t *req) { return req->json; }
const char *http_body_raw(http_request_t *req, size_t *len) {
  *len = req->body ? req->body_len : 0;
  return req->body;
}
const char *http_path(http_request_t *req) { return req->path ? req->path : ""; }

static size_t route_max_body(const http_route_t *route) {
  return route && route->max_body ? route->max_body : HTTP_BODY_MAX;
}
const auth_identity_t *http_identity(http_request_t *req) {
  return req->authenticated ? &req->who : NULL;
}
const char *http_token(http_request_t *req) { return req->token; }
store_t *http_store(http_request_t *req) { return server.store; }
bool http_tls(void) { return server.tls; }
int http_port(void) { return server.port; }
void http_set_stopping(void) { atomic_store(&server.stopping, true); }
bool http_stopping(void) { return atomic_load(&server.stopping); }

const char *http_header(http_request_t *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_query(http_request_t *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- reverse proxies (atlas.xml <TrustedProxies>) ------------------------------- */

#define HTTP_MAX_TRUSTED 32

/* Filled by http_start before the first connection, read-only afterwards. */
static netaddr_net_t trusted[HTTP_MAX_TRUSTED];
static size_t ntrusted;

static int trusted_parse(const char *list) {
  ntrusted = 0;
  char buf[2048];
  if (!list || snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf) return list ? -EINVAL : 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    if (ntrusted == HTTP_MAX_TRUSTED) return -E2BIG;
    if (netaddr_net_parse(tok, &trusted[ntrusted]) < 0) return -EINVAL;
    ntrusted++;
  }
  return 0;
}

static bool trusted_match(int family, const unsigned char *addr) {
  for (size_t i = 0; i < ntrusted; i++)
    if (netaddr_net_contains(&trusted[i], family, addr)) return true;
  return false;
}

static bool trusted_text(const char *text) {
  unsigned char bin[16];
  if (inet_pton(AF_INET, text, bin) == 1) return trusted_match(AF_INET, bin);
  if (inet_pton(AF_INET6, text, bin) == 1) {
    /* An IPv4 client of a dual-stack proxy may be written mapped. */
    if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)(void *)bin))
      return trusted_match(AF_INET, bin + 12);
    return trusted_match(AF_INET6, bin);
  }
  return false;
}

static bool trusted_hop(const char *address, void *ctx) {
  (void)ctx;
  return trusted_text(address);
}

/* The peer of the TCP connection as text into buf; its family and bytes. */
static int peer_address(http_request_t *req, char *buf, size_t len, int *family,
                        unsigned char *bin) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  *family = 0;
  snprintf(buf, len, "unknown");
  if (!sa) return -ENOENT;
  if (sa->sa_family == AF_INET) {
    memcpy(bin, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    *family = AF_INET;
  } else if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    /* On a dual-stack socket IPv4 clients arrive mapped; one client, one name. */
    if (IN6_IS_ADDR_V4MAPPED(a)) {
      memcpy(bin, &a->s6_addr[12], 4);
      *family = AF_INET;
    } else {
      memcpy(bin, a, 16);
      *family = AF_INET6;
    }
  } else {
    return -EAFNOSUPPORT;
  }
  inet_ntop(*family, bin, buf, (socklen_t)len);
  return 0;
}

bool http_via_trusted_proxy(http_request_t *req) {
  char text[INET6_ADDRSTRLEN];
  unsigned char bin[16];
  int family;
  return ntrusted && peer_address(req, text, sizeof text, &family, bin) == 0 &&
         trusted_match(family, bin);
}

const char *http_client_address(http_request_t *req) {
  if (req->client[0]) return req->client;
  unsigned char bin[16];
  int family;
  if (peer_address(req, req->client, sizeof req->client, &family, bin) != 0 || !ntrusted ||
      !trusted_match(family, bin))
    return req->client;
  const char *xff = http_header(req, "X-Forwarded-For");
  http_forwarded_client(xff, trusted_hop, NULL, req->client, sizeof req->client);
  return req->client;
}

const char *http_request_scheme(http_request_t *req) {
  const char *proto = http_via_trusted_proxy(req) ? http_header(req, "X-Forwarded-Proto") : NULL;
  if (proto && strcasecmp(proto, "https") == 0) return "https";
  if (proto && strcasecmp(proto, "http") == 0) return "http";
  return server.tls ? "https" : "http";
}

const char *http_request_host(http_request_t *req) {
  if (http_via_trusted_proxy(req)) {
    const char *fwd = http_header(req, "X-Forwarded-Host");
    if (http_plain_authority(fwd)) return fwd;
  }
  const char *host = http_header(req, MHD_HTTP_HEADER_HOST);
  return http_plain_authority(host) ? host : NULL;
}

/* ---- before-reply hooks ------------------------------------------------------------ */

/* Per TCP connection (MHD's socket context): one word per hook, zero on a
 * new connection, for what the hook keeps per connection (the QoS marking a
 * socket carries now). */
typedef struct http_conn {
  uint64_t words[HTTP_REPLY_HOOKS_MAX];
  conn_track_t track; /* the connection limits' */
} http_conn_t;

static http_reply_hook_fn reply_hooks[HTTP_REPLY_HOOKS_MAX];
static size_t reply_hook_count;

int http_add_reply_hook(http_reply_hook_fn fn) {
  if (server.daemon || reply_hook_count == HTTP_REPLY_HOOKS_MAX) return -ENOSPC;
  reply_hooks[reply_hook_count++] = fn;
  return 0;
}

void http_clear_reply_hooks(void) { reply_hook_count = 0; }

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    http_conn_t *c = calloc(1, sizeof(http_conn_t)); /* NULL: hooks and limits skip it */
    *socket_context = c;
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (c && fi && ai) limits_opened(&c->track, fi->connect_fd, ai->client_addr);
  } else {
    http_conn_t *c = *socket_context;
    if (c) limits_closed(&c->track);
    free(c);
    *socket_context = NULL;
  }
}

static conn_track_t *track_of(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  http_conn_t *c = ci ? ci->socket_context : NULL;
  return c ? &c->track : NULL;
}

static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s) {
  (void)cls;
  (void)conn;
  return http_unescape(s);
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
  return limits_accept(addr) ? MHD_YES : MHD_NO;
}

void http_write_connection_metrics(FILE *f, void *ctx) { limits_write_metrics(f, ctx); }

static void run_reply_hooks(http_request_t *req) {
  if (!reply_hook_count) return;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  http_conn_t *state = ci ? ci->socket_context : NULL;
  const union MHD_ConnectionInfo *fi =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  const union MHD_ConnectionInfo *ai =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (!state || !fi || !ai || !ai->client_addr) return;
  for (size_t i = 0; i < reply_hook_count; i++)
    reply_hooks[i](req, fi->connect_fd, ai->client_addr->sa_family, &state->words[i]);
}

/* The one place replies are queued. */
static enum MHD_Result queue_reply(http_request_t *req, unsigned status,
                                   struct MHD_Response *resp) {
  run_reply_hooks(req);
  enum MHD_Result r = MHD_queue_response(req->conn, status, resp);
  if (r == MHD_YES && status == MHD_HTTP_SWITCHING_PROTOCOLS) {
    conn_track_t *t = track_of(req->conn);
    if (t) limits_upgraded(t);
  }
  return r;
}

int http_add_header(http_request_t *req, const char *name, const char *value) {
  if (req->nheaders >= HTTP_MAX_EXTRA_HEADERS) return -ENOSPC;
  char *n = strdup(name), *v = strdup(value);
  if (!n || !v) {
    free(n);
    free(v);
    return -ENOMEM;
  }
  req->headers[req->nheaders].name = n;
  req->headers[req->nheaders].value = v;
  req->nheaders++;
  return 0;
}

/* cache_control: "no-store" for API data; a handler that adds its own
 * Cache-Control header (the admin page's files: "no-cache") replaces it. */
static int response_secure(struct MHD_Response *resp, const char *cache_control) {
  if (MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES ||
      MHD_add_response_header(resp, "Cache-Control", cache_control) != MHD_YES ||
      MHD_add_response_header(resp, "Content-Security-Policy", "default-src 'self'") != MHD_YES ||
      MHD_add_response_header(resp, "X-Frame-Options", "DENY") != MHD_YES ||
      MHD_add_response_header(resp, "Referrer-Policy", "no-referrer") != MHD_YES)
    return -ENOMEM;
  return 0;
}

int http_response_secure(struct MHD_Response *resp) { return response_secure(resp, "no-store"); }

enum MHD_Result http_reply_oom(http_request_t *req) {
  log_err("out of memory while answering %s %s", http_method_name(req->method),
          req->route ? req->route->path : "(unmatched)");
  if (!server.oom) return MHD_NO;
  req->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
  return queue_reply(req, MHD_HTTP_INTERNAL_SERVER_ERROR, server.oom);
}

enum MHD_Result http_reply_shared(http_request_t *req, unsigned status, struct MHD_Response *resp) {
  enum MHD_Result r = queue_reply(req, status, resp);
  if (r == MHD_YES) req->status = status;
  return r;
}

/* Adds the security headers and the handler's extra headers, queues, and
 * drops our reference. */
static enum MHD_Result queue_owned(http_request_t *req, unsigned status,
                                   struct MHD_Response *resp) {
  if (!resp) return http_reply_oom(req);
  const char *cache_control = "no-store";
  for (size_t i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].name, MHD_HTTP_HEADER_CACHE_CONTROL) == 0)
      cache_control = req->headers[i].value;
  bool ok = response_secure(resp, cache_control) == 0;
  for (size_t i = 0; ok && i < req->nheaders; i++)
    if (req->headers[i].value != cache_control)
      ok = MHD_add_response_header(resp, req->headers[i].name, req->headers[i].value) == MHD_YES;
  if (!ok) {
    MHD_destroy_response(resp);
    return http_reply_oom(req);
  }
  enum MHD_Result r = queue_reply(req, status, resp);
  MHD_destroy_response(resp);
  if (r == MHD_YES) req->status = status;
  return r;
}

static void release_free(void *p) { free(p); }

enum MHD_Result http_reply_buffer(http_request_t *req, unsigned status, const char *content_type,
                                  const void *data, size_t len, void (*release)(void *),
                                  void *release_cls) {
  struct MHD_Response *resp;
  if (release)
    resp = MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)data, release,
                                                                  release_cls);
  else
    resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    if (release) release(release_cls);
    return http_reply_oom(req);
  }
  if (content_type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) !=
                          MHD_YES) {
    MHD_destroy_response(resp);
    return http_reply_oom(req);
  }
  return queue_owned(req, status, resp);
}

static enum MHD_Result reply_json_typed(http_request_t *req, unsigned status, json_t *body,
                                        const char *content_type) {
  if (!body) return http_reply_oom(req);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (!text) return http_reply_oom(req);
  return http_reply_buffer(req, status, content_type, text, strlen(text), release_free, text);
}

enum MHD_Result http_reply_json(http_request_t *req, unsigned status, json_t *body) {
  return reply_json_typed(req, status, body, "application/json");
}

enum MHD_Result http_reply_problem_of(http_request_t *req, const problem_t *p) {
  unsigned status = p->status >= 400 && p->status <= 599 ? p->status : 500;
  return http_reply_problem(req, status, p->slug, p->title, p->detail, p->errors);
}

enum MHD_Result http_reply_problem(http_request_t *req, unsigned status, const char *slug,
                                   const char *title, const char *detail, const json_t *errors) {
  return reply_json_typed(req, status, http_problem_json(status, slug, title, detail, errors),
                          "application/problem+json");
}

static enum MHD_Result reply_unauthorized(http_request_t *req, const char *detail) {
  http_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"atrium\"");
  return http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Authentication required",
                            detail, NULL);
}

static bool csrf_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la != lb || la == 0) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < la; i++) d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

/* true when the request may go on; otherwise a reply has been queued (*ret). */
static bool authenticate(http_request_t *req, enum MHD_Result *ret) {
  const char *authz = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
  const char *token;
  bool by_cookie = false;
  if (authz) {
    token = http_bearer_token(authz);
    if (!token) {
      *ret = reply_unauthorized(
          req, "The Authorization header must be \"Bearer <token>\" with the token from "
               "POST /api/v1/session.");
      return false;
    }
  } else {
    token = MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, HTTP_SESSION_COOKIE);
    by_cookie = token != NULL;
  }
  if (!token || !*token) {
    *ret = reply_unauthorized(req, "Log in with POST /api/v1/session, then send the token as "
                                   "\"Authorization: Bearer <token>\" or the session cookie.");
    return false;
  }
  if (auth_check_token(token, &req->who) != 0) {
    *ret = reply_unauthorized(req, "The session has expired or is not valid; log in again.");
    return false;
  }
  bool unsafe = req->method != HTTP_GET && req->method != HTTP_HEAD && req->method != HTTP_OPTIONS;
  if (by_cookie && unsafe) {
    const char *csrf = http_header(req, HTTP_CSRF_HEADER);
    if (!csrf || !csrf_equal(csrf, req->who.csrf)) {
      *ret = http_reply_problem(
          req, MHD_HTTP_FORBIDDEN, "csrf", "CSRF token missing or wrong",
          "A change authenticated by the session cookie must carry the X-CSRF-Token header "
          "with the csrf value from the login reply (GET /api/v1/session returns it again).",
          NULL);
      return false;
    }
  }
  req->token = token;
  req->authenticated = true;
  return true;
}

static enum MHD_Result reply_too_large(http_request_t *req) {
  char detail[160];
  snprintf(detail, sizeof detail,
           "The request body is larger than %zu KiB; send a smaller document.",
           route_max_body(req->route) / 1024);
  return http_reply_problem(req, MHD_HTTP_CONTENT_TOO_LARGE, "payload-too-large",
                            "Request body too large", detail, NULL);
}

static int64_t elapsed_us(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)(now.tv_sec - start->tv_sec) * 1000000 + (now.tv_nsec - start->tv_nsec) / 1000;
}

/* First call for a request: route, authentication, media type, declared size.
 * Everything a handler must not have to check is answered here. */
static enum MHD_Result begin_request(http_request_t *req, const char *url) {
  if (!http_path_acceptable(url, strlen(url))) {
    /* Nothing of the path goes into the answer or the log: it is what
     * could not be shown. */
    req->path = strdup("/");
    return http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed", "Malformed path",
                              "The request path, once its %-escapes are decoded, must be UTF-8 "
                              "text without control characters.",
                              NULL);
  }
  unsigned allowed;
  req->route = http_router_match(server.router, req->method, url, &allowed, &req->slot);
  /* Kept for unmatched paths too: a QoS policy may cover their 404. */
  if (!(req->path = strdup(url))) return http_reply_oom(req);
  if (!req->route) {
    if (!allowed)
      return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not found",
                                "There is nothing at this path; the API is under /api/v1/.", NULL);
    char allow[96], detail[256];
    http_allow_header(allowed, allow, sizeof allow);
    http_add_header(req, MHD_HTTP_HEADER_ALLOW, allow);
    snprintf(detail, sizeof detail, "This path accepts %s.", allow);
    return http_reply_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method-not-allowed",
                              "Method not allowed", detail, NULL);
  }
  enum MHD_Result ret;
  /* Behind a trusted proxy every connection comes from the proxy: the
   * per-address limit applies to the forwarded client's requests instead. */
  if (http_via_trusted_proxy(req) &&
      limits_forwarded_enter(http_client_address(req), req->forwarded_key) != 0) {
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Too many requests",
                              "Your address has too many requests in progress; try again when "
                              "some have finished.",
                              NULL);
  }
  if (req->route->auth == HTTP_AUTH_ADMIN && !authenticate(req, &ret)) return ret;

  const char *length = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
  int64_t declared = 0;
  if (length && http_parse_int_param(length, 0, INT64_MAX, 0, &declared) == 0 &&
      (uint64_t)declared > route_max_body(req->route))
    return reply_too_large(req);
  bool json_route = req->route->body == HTTP_BODY_JSON ||
                    req->route->body == HTTP_BODY_JSON_OPTIONAL;
  /* An optional body may be absent, and then needs no media type. */
  bool body_expected = req->route->body == HTTP_BODY_JSON || declared > 0 ||
                       http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
  if (json_route && body_expected &&
      !http_content_type_is_json(http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE)))
    return http_reply_problem(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                              "Unsupported media type",
                              "Send the request body as JSON with "
                              "\"Content-Type: application/json\".",
                              NULL);
  if (declared > 0 && req->route->body != HTTP_BODY_NONE) {
    req->body = malloc((size_t)declared + 1);
    if (!req->body) return http_reply_oom(req);
    req->body_alloc = (size_t)declared + 1;
  }
  return MHD_YES;
}

static int append_body(http_request_t *req, const char *data, size_t len) {
  if (req->body_len + len + 1 > req->body_alloc) {
    size_t want = req->body_alloc ? req->body_alloc : 4096;
    while (want < req->body_len + len + 1) want *= 2;
    if (want > route_max_body(req->route) + 1) want = route_max_body(req->route) + 1;
    char *p = realloc(req->body, want);
    if (!p) return -ENOMEM;
    req->body = p;
    req->body_alloc = want;
  }
  memcpy(req->body + req->body_len, data, len);
  req->body_len += len;
  req->body[req->body_len] = '\0';
  return 0;
}

static enum MHD_Result parse_body(http_request_t *req) {
  if (req->body_len == 0 && req->route->body == HTTP_BODY_JSON_OPTIONAL) return MHD_YES;
  if (req->body_len == 0)
    return http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed", "Request body missing",
                              "The request body is empty; send a JSON object.", NULL);
  json_error_t jerr;
  req->json = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
  if (!req->json) {
    char detail[400];
    snprintf(detail, sizeof detail, "The request body is not valid JSON: %s (line %d, column %d).",
             jerr.text, jerr.line, jerr.column);
    return http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed", "Malformed JSON", detail,
                              NULL);
  }
  return MHD_YES;
}

/* ---- common problems ------------------------------------------------------------------ */

enum MHD_Result http_reply_field(http_request_t *req, const char *key, const char *message) {
  json_t *errors = json_pack("[{s:s, s:s}]", "key", key, "message", message);
  if (!errors) return http_reply_oom(req);
  enum MHD_Result r = http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation",
                                         "Invalid request", message, errors);
  json_decref(errors);
  return r;
}

enum MHD_Result http_reply_store_failed(http_request_t *req) {
  http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
  return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "store", "Store unavailable",
                            "The server could not read or write its store; try again shortly.",
                            NULL);
}

/* ---- query parameters ---------------------------------------------------------------- */

enum MHD_Result http_reply_bad_param(http_request_t *req, const char *name, const char *rule) {
  char message[160];
  snprintf(message, sizeof message, "%s must be %s.", name, rule);
  json_t *errors = json_pack("[{s:s, s:s}]", "key", name, "message", message);
  if (!errors) return http_reply_oom(req);
  enum MHD_Result r = http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed",
                                         "Invalid query parameter", message, errors);
  json_decref(errors);
  return r;
}

int http_paging(http_request_t *req, int64_t dflt, int64_t max, int64_t *offset, int64_t *limit,
                enum MHD_Result *ret) {
  if (http_parse_int_param(http_query(req, "offset"), 0, INT64_MAX, 0, offset) != 0) {
    *ret = http_reply_bad_param(req, "offset", "a non-negative integer");
    return -1;
  }
  if (http_parse_int_param(http_query(req, "limit"), 1, max, dflt, limit) != 0) {
    char rule[64];
    snprintf(rule, sizeof rule, "an integer from 1 to %lld", (long long)max);
    *ret = http_reply_bad_param(req, "limit", rule);
    return -1;
  }
  return 0;
}

/* ---- slow work: suspend, work on a thread, resume, reply --------------------------- */

static void job_free(http_job_t *job) {
  if (!job) return;
  if (job->free_ctx) job->free_ctx(job->ctx);
  free(job);
}

static void jobs_add(int delta) {
  pthread_mutex_lock(&server.jobs_lock);
  server.jobs_running += (unsigned)delta;
  if (server.jobs_running == 0) pthread_cond_broadcast(&server.jobs_idle);
  pthread_mutex_unlock(&server.jobs_lock);
}

static void job_main(void *arg) {
  http_job_t *job = arg;
  job->work(job->ctx);
  if (job->cpu) atomic_fetch_sub(&server.cpu_inflight, 1);
  atomic_store(&job->done, true);
  /* Resuming makes MHD call on_request again, which sees `done` and replies. */
  MHD_resume_connection(job->conn);
  jobs_add(-1);
}

static enum MHD_Result reply_busy(http_request_t *req) {
  http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "2");
  return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Server busy",
                            "The server has too much slow work queued right now; try again "
                            "in a few seconds.",
                            NULL);
}

static enum MHD_Result defer_on(http_request_t *req, workpool_t *pool, bool cpu, http_work_fn work,
                                http_reply_fn reply, void *ctx, void (*free_ctx)(void *ctx)) {
  if (cpu && atomic_fetch_add(&server.cpu_inflight, 1) >= server.cpu_max) {
    atomic_fetch_sub(&server.cpu_inflight, 1);
    if (free_ctx) free_ctx(ctx);
    return reply_busy(req);
  }
  http_job_t *job = calloc(1, sizeof *job);
  if (!job) {
    if (cpu) atomic_fetch_sub(&server.cpu_inflight, 1);
    if (free_ctx) free_ctx(ctx);
    return http_reply_oom(req);
  }
  *job = (http_job_t){.conn = req->conn, .work = work, .reply = reply, .ctx = ctx,
                      .free_ctx = free_ctx, .cpu = cpu};
  atomic_init(&job->done, false);
  jobs_add(1);
  req->job = job;
  /* Suspend before the job is queued, so that its resume cannot come first. */
  MHD_suspend_connection(req->conn);
  int r = pool ? workpool_submit(pool, job_main, job) : -ESHUTDOWN;
  if (r != 0) {
    MHD_resume_connection(req->conn);
    jobs_add(-1);
    if (cpu) atomic_fetch_sub(&server.cpu_inflight, 1);
    req->job = NULL;
    job_free(job);
    return reply_busy(req);
  }
  return MHD_YES;
}

enum MHD_Result http_defer(http_request_t *req, http_work_fn work, http_reply_fn reply, void *ctx,
                           void (*free_ctx)(void *ctx)) {
  return defer_on(req, server.defer_pool, false, work, reply, ctx, free_ctx);
}

enum MHD_Result http_defer_cpu(http_request_t *req, http_work_fn work, http_reply_fn reply,
                               void *ctx, void (*free_ctx)(void *ctx)) {
  /* Without a CPU pool (unit tests, tools) the work runs here. */
  if (!server.cpu_pool) {
    work(ctx);
    enum MHD_Result r = reply(req, ctx);
    if (free_ctx) free_ctx(ctx);
    return r;
  }
  return defer_on(req, server.cpu_pool, true, work, reply, ctx, free_ctx);
}

unsigned http_reply_status(const http_request_t *req) { return req->status; }

/* Answers a request whose work has finished (called when MHD resumes it). */
static enum MHD_Result finish_job(http_request_t *req) {
  http_job_t *job = req->job;
  if (!atomic_load(&job->done)) return MHD_YES; /* a spurious call while still working */
  req->job = NULL;
  enum MHD_Result r = job->reply(req, job->ctx);
  job_free(job);
  return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  http_request_t *req = *con_cls;
  if (req && req->job) return finish_job(req);
  if (!req) {
    req = calloc(1, sizeof *req);
    if (!req) return server.oom ? MHD_queue_response(conn, 500, server.oom) : MHD_NO;
    *con_cls = req;
    req->conn = conn;
    clock_gettime(CLOCK_MONOTONIC, &req->start);
    req->method = http_method_parse(method);
    req->slot = http_router_patterns(server.router);
    conn_track_t *t = track_of(conn);
    if (t) limits_head_done(t);
    /* MHD closes the connection after a reply queued before the request is
     * complete. Without a body the request is complete at the next call, so
     * the checks wait for it and keep-alive survives a 401 or 404; with a
     * body they run now, so that a refused body is never read. */
    const char *length = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    req->deferred = !http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) &&
                    (!length || strcmp(length, "0") == 0);
    if (req->deferred) return MHD_YES;
    return begin_request(req, url);
  }
  if (req->deferred) {
    req->deferred = false;
    enum MHD_Result r = begin_request(req, url);
    if (req->status || r != MHD_YES) return r;
  }
  if (req->status) {
    /* Answered early (413, 401...): drop what the client still sends. */
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (*upload_data_size) {
    size_t len = *upload_data_size;
    *upload_data_size = 0;
    if (req->too_large) {
      /* MHD 0.9.75 cannot queue a reply in the middle of an upload, so a
       * streamed body over the cap is drained and answered 413 at its end;
       * a client that keeps sending far beyond is cut off instead. */
      req->drained += len;
      return req->drained > HTTP_DRAIN_MAX ? MHD_NO : MHD_YES;
    }
    if (req->body_len + len > route_max_body(req->route)) {
      req->too_large = true;
      free(req->body);
      req->body = NULL;
      req->body_len = req->body_alloc = 0;
      req->drained = len;
      /* Answer now when MHD lets us (newer versions); else at the end. */
      (void)reply_too_large(req);
      return MHD_YES;
    }
    if (req->route->body == HTTP_BODY_NONE) return MHD_YES;
    if (append_body(req, upload_data, len) != 0) return http_reply_oom(req);
    return MHD_YES;
  }
  if (req->too_large) return reply_too_large(req);
  if (req->route->body == HTTP_BODY_JSON || req->route->body == HTTP_BODY_JSON_OPTIONAL) {
    enum MHD_Result r = parse_body(req);
    if (req->status || r != MHD_YES) return r;
  }
  return req->route->handler(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  http_request_t *req = *con_cls;
  if (!req) return;
  *con_cls = NULL;
  limits_forwarded_leave(req->forwarded_key);
  if (req->status != MHD_HTTP_SWITCHING_PROTOCOLS) {
    conn_track_t *t = track_of(conn);
    if (t) limits_request_done(t);
  }
  int64_t us = elapsed_us(&req->start);
  const char *route = req->route ? req->route->path : "unmatched";
  if (req->status) {
    http_router_count(server.router, req->slot, req->method, req->status,
                      (uint64_t)(us < 0 ? 0 : us));
    log_debug("%s %s %u %.3f ms", http_method_name(req->method), route, req->status, us / 1000.0);
  } else {
    log_debug("%s %s: no reply (connection ended, reason %d)", http_method_name(req->method),
              route, (int)toe);
  }
  /* A job still attached here was resumed but never answered (the daemon is
   * stopping); its thread has finished, since http_stop waits for them. */
  if (req->job && atomic_load(&req->job->done)) job_free(req->job);
  free(req->body);
  free(req->path);
  json_decref(req->json);
  for (size_t i = 0; i < req->nheaders; i++) {
    free(req->headers[i].name);
    free(req->headers[i].value);
  }
  free(req);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  char msg[256];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == '.')) msg[--n] = '\0';
  if (server.starting) snprintf(server.start_error, sizeof server.start_error, "%s", msg);
  /* MHD reports client misbehaviour here too (resets, bad requests): not our errors. */
  log_debug("libmicrohttpd: %s", msg);
}

static int read_pem(const char *path, const char *what, char **out, char *err, size_t errlen) {
  size_t len = 0;
  int r = fileio_read_all(path, 1 << 20, out, &len);
  if (r == 0 && len == 0) {
    free(*out);
    *out = NULL;
    r = -EINVAL;
  }
  if (r == -EINVAL || r == -EFBIG) {
    snprintf(err, errlen, "The TLS %s %s is not a PEM file of a sensible size; check <Tls> in "
             "atlas.xml.", what, path);
    return -EINVAL;
  }
  if (r == -ENOMEM)
    snprintf(err, errlen, "Out of memory reading %s.", path);
  else if (r == -EIO)
    snprintf(err, errlen, "Cannot read the TLS %s %s completely.", what, path);
  else if (r != 0)
    snprintf(err, errlen,
             "Cannot read the TLS %s %s: %s. Fix the <Tls> element of atlas.xml or the file's "
             "permissions.",
             what, path, strerror(-r));
  return r;
}

static void free_tls(void) {
  if (server.key) explicit_bzero(server.key, strlen(server.key));
  free(server.key);
  free(server.cert);
  server.key = server.cert = NULL;
}

int http_start(const http_config_t *cfg, char *err, size_t errlen) {
  if (server.daemon) {
    snprintf(err, errlen, "The HTTP server is already running.");
    return -EALREADY;
  }
  server.store = cfg->store;
  server.router = cfg->router;
  server.defer_pool = cfg->defer_pool;
  server.cpu_pool = cfg->cpu_pool;
  {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    server.cpu_max = cfg->cpu_max ? cfg->cpu_max : 32 * (unsigned)(ncpu < 1 ? 1 : ncpu);
  }
  atomic_store(&server.cpu_inflight, 0);
  atomic_store(&server.stopping, false);

  /* Accept "[::1]" as well as "::1". */
  char addr[64];
  const char *a = cfg->address && *cfg->address ? cfg->address : "127.0.0.1";
  size_t alen = strlen(a);
  if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
    a++;
    alen -= 2;
  }
  if (alen >= sizeof addr) alen = sizeof addr - 1;
  memcpy(addr, a, alen);
  addr[alen] = '\0';

  if (cfg->port < 0 || cfg->port > 65535) {
    snprintf(err, errlen, "The listen port %d is out of range; use 1 to 65535 in atlas.xml.",
             cfg->port);
    return -EINVAL;
  }
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
  struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)cfg->port)};
  const struct sockaddr *sa;
  /* ALLOW_UPGRADE: WebSockets (websocket.c). */
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE |
                   MHD_ALLOW_SUSPEND_RESUME;
  if (trusted_parse(cfg->trusted_proxies) != 0) {
    snprintf(err, errlen, "The trusted proxies \"%.200s\" are not IP addresses or CIDRs; fix "
             "<TrustedProxies> in atlas.xml.", cfg->trusted_proxies);
    return -EINVAL;
  }
  if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
    sa = (const struct sockaddr *)&sin;
  } else if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
    sa = (const struct sockaddr *)&sin6;
    flags |= IN6_IS_ADDR_UNSPECIFIED(&sin6.sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
  } else {
    snprintf(err, errlen,
             "The listen address \"%s\" is not an IPv4 or IPv6 address; fix <Listen address> in "
             "atlas.xml.",
             addr);
    return -EINVAL;
  }

  bool tls = cfg->tls_cert && *cfg->tls_cert;
  if (tls != (cfg->tls_key && *cfg->tls_key)) {
    snprintf(err, errlen, "HTTPS needs both a certificate and a key; set both in <Tls> in "
             "atlas.xml or neither.");
    return -EINVAL;
  }
  if (tls) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      snprintf(err, errlen, "This libmicrohttpd has no TLS support; install the GnuTLS build or "
               "remove <Tls> from atlas.xml.");
      return -ENOTSUP;
    }
    int r = read_pem(cfg->tls_cert, "certificate", &server.cert, err, errlen);
    if (r == 0) r = read_pem(cfg->tls_key, "key", &server.key, err, errlen);
    if (r != 0) {
      free_tls();
      return r;
    }
    flags |= MHD_USE_TLS;
  }

  unsigned threads = cfg->threads > 0 ? (unsigned)cfg->threads : 0;
  if (!threads) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n < 2 ? 2 : n > 4 ? 4 : (unsigned)n;
  }

  server.oom = MHD_create_response_from_buffer(sizeof oom_body - 1, (void *)oom_body,
                                               MHD_RESPMEM_PERSISTENT);
  if (!server.oom ||
      MHD_add_response_header(server.oom, MHD_HTTP_HEADER_CONTENT_TYPE,
                              "application/problem+json") != MHD_YES ||
      http_response_secure(server.oom) != 0) {
    snprintf(err, errlen, "Out of memory starting the HTTP server.");
    http_stop();
    return -ENOMEM;
  }

  struct MHD_OptionItem opts[13];
  size_t n = 0;
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)sa};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 60, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)on_unescape, NULL};
  /* WebSockets leave the server once upgraded (without TLS), so the limit
   * is about requests in progress; it follows the descriptors the process
   * may open rather than select()'s FD_SETSIZE, which epoll does not need. */
  /* libmicrohttpd divides the limit among its threads, and which thread
   * accepts a connection is not even (on loopback one often takes nearly
   * all): each thread gets the whole budget, which the descriptor limit
   * bounds anyway. */
  if (cfg->connection_limit > 0)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                        (intptr_t)cfg->connection_limit * threads, NULL};
  if (tls) {
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, server.cert};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, server.key};
  }
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

  int lr = limits_start(&cfg->limits, trusted_match, err, errlen);
  if (lr != 0) {
    http_stop();
    return lr;
  }
  server.starting = true;
  server.start_error[0] = '\0';
  /* The logger must come first, or MHD prints early messages itself. */
  server.daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, on_accept, NULL, on_request, NULL,
                                   MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_ARRAY,
                                   opts, MHD_OPTION_END);
  server.starting = false;
  if (!server.daemon) {
    if (tls && (strstr(server.start_error, "TLS") || strstr(server.start_error, "certificate")))
      snprintf(err, errlen,
               "Cannot start HTTPS with the certificate %s and the key %s: %s. Check that both "
               "are PEM files and belong together (<Tls> in atlas.xml).",
               cfg->tls_cert, cfg->tls_key, server.start_error);
    else
      snprintf(err, errlen,
               "Cannot listen on %s port %d%s%s. Stop the program that uses the port, or change "
               "<Listen> in atlas.xml.",
               addr, cfg->port, server.start_error[0] ? ": " : "", server.start_error);
    http_stop();
    return -EADDRNOTAVAIL;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(server.daemon, MHD_DAEMON_INFO_BIND_PORT);
  server.port = di ? di->port : cfg->port;
  server.tls = tls;
  bool v6 = sa->sa_family == AF_INET6;
  log_info("listening on %s://%s%s%s:%d with %u threads; at most %u connections (%u per "
           "address, %u kept for loopback), %u s for a request head",
           tls ? "https" : "http", v6 ? "[" : "", addr, v6 ? "]" : "", server.port, threads,
           cfg->limits.connections, cfg->limits.per_address, cfg->limits.loopback_reserve,
           cfg->limits.header_timeout_s);
  return 0;
}

void http_stop(void) {
  /* MHD must not stop with suspended connections: let work in progress
   * finish first (each job has its own time limit). */
  pthread_mutex_lock(&server.jobs_lock);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += HTTP_STOP_WAIT_SECONDS;
  while (server.jobs_running > 0 &&
         pthread_cond_timedwait(&server.jobs_idle, &server.jobs_lock, &until) == 0) {
  }
  if (server.jobs_running > 0)
    log_warning("stopping with %u slow request(s) still running", server.jobs_running);
  pthread_mutex_unlock(&server.jobs_lock);
  if (server.daemon) MHD_stop_daemon(server.daemon);
  server.daemon = NULL;
  limits_stop();
  if (server.oom) MHD_destroy_response(server.oom);
  server.oom = NULL;
  free_tls();
  server.tls = false;
  server.port = 0;
}
