/* The HTTP layer: libmicrohttpd daemon, per-request context, authentication
 * of admin routes, and the reply helpers every handler uses. It knows no
 * feature: the routes come from the modules (http/router.h), and features
 * that act on every reply (QoS marking) register a before-reply hook.
 *
 * Every reply goes through http_reply_json, http_reply_problem or
 * http_reply_buffer, so that the security headers, the status recorded for the
 * access log and the metrics, and the out-of-memory fallback are handled in one
 * place. Handlers never see a request whose route, authentication, media type,
 * size or JSON syntax is wrong: the layer answers those itself.
 *
 * Problem documents (RFC 9457) use absolute type URIs under
 * PROBLEM_TYPE_BASE: "https://atrium.invalid/problems/<slug>". The host is
 * in the reserved .invalid domain on purpose: the type is an identifier that
 * clients compare, not a page to fetch. */
#pragma once

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/problem.h"
#include "http/auth.h"
#include "http/parse.h"
#include "store/store.h"

#define HTTP_BODY_MAX (256 * 1024)
#define HTTP_REPLY_HOOKS_MAX 4
#define HTTP_SESSION_COOKIE "atrium_session"
#define HTTP_CSRF_HEADER "X-CSRF-Token"

typedef enum http_method {
  HTTP_GET,
  HTTP_HEAD,
  HTTP_POST,
  HTTP_PUT,
  HTTP_PATCH,
  HTTP_DELETE,
  HTTP_OPTIONS,
  HTTP_OTHER,
  HTTP_METHOD_COUNT,
} http_method_t;

typedef enum http_auth {
  HTTP_AUTH_NONE,
  HTTP_AUTH_ADMIN, /* session token as a bearer token or as the session cookie */
} http_auth_t;

typedef enum http_body {
  HTTP_BODY_NONE, /* a body, if any, is read (within the cap) and ignored */
  HTTP_BODY_JSON, /* application/json, parsed before the handler runs */
  HTTP_BODY_JSON_OPTIONAL, /* the same, but an empty body is allowed (http_body_json: NULL) */
  HTTP_BODY_RAW,  /* any media type; the bytes are kept for the handler (http_body_raw) */
} http_body_t;

typedef struct http_request http_request_t;
typedef enum MHD_Result (*http_handler_fn)(http_request_t *req);

typedef struct http_route {
  http_method_t method; /* a GET route also answers HEAD */
  const char *path;     /* exact segments; "{name}" matches any one non-empty segment */
  http_handler_fn handler;
  http_auth_t auth;
  http_body_t body;
  size_t max_body; /* 0: HTTP_BODY_MAX; bulk imports raise it */
} http_route_t;

struct http_router;
struct workpool;

/* Connection limits (atlas.xml <Limits>; http/limits.h says how they act). */
typedef struct http_limits {
  unsigned connections;      /* in all; 0: none */
  unsigned per_address;      /* from one client (IPv6 by /64); 0: none */
  unsigned loopback_reserve; /* of `connections`, kept for loopback peers */
  unsigned header_timeout_s; /* for the whole request head; 0: none */
} http_limits_t;

typedef struct http_config {
  const char *address; /* IPv4 or IPv6 literal; "::" listens on both families */
  int port;            /* 0: any free port (see http_port) */
  const char *tls_cert; /* PEM files; NULL or "" for plain HTTP */
  const char *tls_key;
  store_t *store;
  int threads; /* 0: one per CPU, 2 to 4 */
  /* atlas.xml <TrustedProxies>: IP literals or CIDRs separated by spaces, the
   * peers whose X-Forwarded-* headers are believed; NULL or "": none. */
  const char *trusted_proxies;
  struct http_router *router;    /* every module's routes */
  struct workpool *defer_pool;   /* where http_defer work runs */
  struct workpool *cpu_pool;     /* where http_defer_cpu work runs */
  unsigned cpu_max;              /* http_defer_cpu requests at once; 0: 32 per CPU */
  unsigned connection_limit;     /* 0: libmicrohttpd's default */
  http_limits_t limits;
} http_config_t;

/* Starts the daemon. Block the signals main waits for before calling this:
 * the server's threads inherit the mask. On failure writes a sentence to err. */
int http_start(const http_config_t *cfg, char *err, size_t errlen);
/* After this, /healthz answers 503 so that a load balancer stops sending. */
void http_set_stopping(void);
bool http_stopping(void);
void http_stop(void); /* safe to call when not started */
/* The port actually bound (useful with port 0). */
int http_port(void);
bool http_tls(void);
/* atrium_http_connections... lines for /metrics (a metrics_write_fn). */
void http_write_connection_metrics(FILE *f, void *ctx);

/* ---- methods ------------------------------------------------------------------------ */

http_method_t http_method_parse(const char *name);
const char *http_method_name(http_method_t m);

/* ---- before-reply hooks ---------------------------------------------------------------- */

/* Runs right before every reply is queued (a 101 included), on the server
 * thread answering. fd and family are the TCP connection's; *conn_word is
 * the hook's own value for this connection, zero on a new one. Register
 * before http_start. 0 or -ENOSPC. */
typedef void (*http_reply_hook_fn)(http_request_t *req, int fd, int family, uint64_t *conn_word);
int http_add_reply_hook(http_reply_hook_fn fn);
void http_clear_reply_hooks(void);

/* ---- parsing helpers: http/parse.h (pure, fuzzed) -------------------------- */

/* {"type", "title", "status", "detail", "errors"}; errors is copied (an
 * empty array when NULL); a NULL title is the status' reason phrase. New
 * reference, NULL on OOM. */
json_t *http_problem_json(unsigned status, const char *slug, const char *title, const char *detail,
                          const json_t *errors);

/* ---- what handlers see ---------------------------------------------------------- */

struct MHD_Connection *http_connection(http_request_t *req);
/* The parsed JSON body (HTTP_BODY_JSON routes), borrowed. */
const json_t *http_body_json(http_request_t *req);
/* The request body of an HTTP_BODY_RAW route (NUL-terminated after *len
 * bytes; it may hold NULs before), or NULL when empty. Borrowed. */
const char *http_body_raw(http_request_t *req, size_t *len);
/* The request path (decoded by libmicrohttpd), for "{name}" segments. */
const char *http_path(http_request_t *req);
/* The authenticated admin (HTTP_AUTH_ADMIN routes), or NULL. */
const auth_identity_t *http_identity(http_request_t *req);
/* The session token the request carried, or NULL. Never log it. */
const char *http_token(http_request_t *req);
store_t *http_store(http_request_t *req);
const char *http_header(http_request_t *req, const char *name);
const char *http_query(http_request_t *req, const char *name);
/* Client address as text ("127.0.0.1", "::1"), for rate limiting. When the
 * peer is a trusted proxy, the right-most X-Forwarded-For address that is not
 * itself a trusted proxy; otherwise the peer. */
const char *http_client_address(http_request_t *req);
/* true when the connection comes from a trusted proxy (http_config_t). */
bool http_via_trusted_proxy(http_request_t *req);
/* How the client reached us, for absolute URLs: "https" or "http" from
 * X-Forwarded-Proto of a trusted proxy, else whether we speak TLS. */
const char *http_request_scheme(http_request_t *req);
/* The authority the client asked for ("m.example.com:7443"): X-Forwarded-Host
 * of a trusted proxy, else Host; NULL when absent or not a plain host[:port]. */
const char *http_request_host(http_request_t *req);

/* Adds a header to the reply the handler is about to send (at most 6; the
 * value is copied). Returns -ENOSPC or -ENOMEM when it cannot. */
int http_add_header(http_request_t *req, const char *name, const char *value);

/* ---- common problems ------------------------------------------------------------------- */

/* 422 "validation" with errors [{"key", "message"}]: one field and its rule. */
enum MHD_Result http_reply_field(http_request_t *req, const char *key, const char *message);
/* 503 "store" with Retry-After: the store failed, try again shortly. */
enum MHD_Result http_reply_store_failed(http_request_t *req);

/* ---- query parameters ---------------------------------------------------------------- */

/* 400 problem for a bad query parameter: "<name> must be <rule>.", with
 * errors [{"key": name, "message"}]. */
enum MHD_Result http_reply_bad_param(http_request_t *req, const char *name, const char *rule);

/* ?offset= (non-negative) and ?limit= (1..max, default dflt) of a paged list.
 * 0, or -1 after answering 400 through *ret. */
int http_paging(http_request_t *req, int64_t dflt, int64_t max, int64_t *offset, int64_t *limit,
                enum MHD_Result *ret);

/* ---- slow work off the server's threads ------------------------------------------ */

/* For a handler that must wait on something slow (an outbound connection
 * test): the connection is suspended, `work(ctx)` runs on the worker pool
 * of http_config_t.defer_pool, and when it returns the connection is
 * resumed and `reply(req, ctx)` runs on a server thread to answer; then
 * `free_ctx(ctx)` (may be NULL). The server's few threads keep serving
 * everyone else meanwhile, and http_stop() waits for work in progress. The
 * handler returns what this returns. When the pool's queue is full it
 * answers 503 with Retry-After itself. */
/* The status of the reply queued for this request so far, 0 when none. */
unsigned http_reply_status(const http_request_t *req);

typedef void (*http_work_fn)(void *ctx);
typedef enum MHD_Result (*http_reply_fn)(http_request_t *req, void *ctx);
enum MHD_Result http_defer(http_request_t *req, http_work_fn work, http_reply_fn reply, void *ctx,
                           void (*free_ctx)(void *ctx));
/* The same for CPU work (password hashing: logins, imports) on
 * http_config_t.cpu_pool. At most cpu_max such requests are queued or
 * running at once: beyond, 503 with Retry-After, so that a burst of logins
 * waits a bounded time instead of queueing without end. */
enum MHD_Result http_defer_cpu(http_request_t *req, http_work_fn work, http_reply_fn reply,
                               void *ctx, void (*free_ctx)(void *ctx));

/* ---- replies ---------------------------------------------------------------------- */

/* Takes ownership of body (json_decref'd here). NULL body means out of memory
 * and gives the 500 reply. */
enum MHD_Result http_reply_json(http_request_t *req, unsigned status, json_t *body);
/* The problem document of p (a status outside 400-599 answers 500). */
enum MHD_Result http_reply_problem_of(http_request_t *req, const problem_t *p);
/* errors (borrowed; NULL for none) is an array of {"key", "message"}. */
enum MHD_Result http_reply_problem(http_request_t *req, unsigned status, const char *slug,
                                   const char *title, const char *detail, const json_t *errors);
/* Replies with bytes that stay valid until release(release_cls) is called
 * (NULL release: static bytes). */
enum MHD_Result http_reply_buffer(http_request_t *req, unsigned status, const char *content_type,
                                  const void *data, size_t len, void (*release)(void *),
                                  void *release_cls);
/* A response built once and queued many times (GET /api/v1/settings): it
 * must already carry its headers, including the security headers
 * (http_response_secure). The caller keeps its reference. */
enum MHD_Result http_reply_shared(http_request_t *req, unsigned status, struct MHD_Response *resp);
/* Adds the headers every response carries (Cache-Control: no-store; a
 * Cache-Control added with http_add_header replaces it in the other reply
 * helpers). 0 or -ENOMEM. */
int http_response_secure(struct MHD_Response *resp);
enum MHD_Result http_reply_oom(http_request_t *req);
