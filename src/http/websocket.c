#include "http/websocket.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "core/log.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_CLOSE_GRACE_MS 2000

struct ws {
  loop_t *loop;
  ws_callbacks_t cb;
  void *user;
  void (*free_user)(void *user);
  size_t max_message, max_queued;
  uint64_t idle_ms;
  int fd;
  bool tls;
  struct MHD_UpgradeResponseHandle *urh;
  uv_poll_t poll;
  uv_timer_t timer;
  int handles_open; /* poll and timer until their close callbacks ran */
  wslay_event_context_ptr ctx;
  uint8_t *extra; /* bytes libmicrohttpd read past the request head */
  size_t extra_len, extra_off;
  int events;
  bool closing, destroying, notify_writable;
  uint64_t last_input_ms;
  uint16_t close_code;
};

static atomic_size_t live;

size_t ws_count(void) { return atomic_load(&live); }
int ws_fd(const ws_t *ws) { return ws->fd; }
bool ws_is_tls(const ws_t *ws) { return ws->tls; }
size_t ws_queued(const ws_t *ws) { return wslay_event_get_queued_msg_length(ws->ctx); }

/* ---- tearing down ------------------------------------------------------------------------ */

static void ws_free(ws_t *ws) {
  if (ws->ctx) wslay_event_context_free(ws->ctx);
  /* Under TLS the socket pair is libmicrohttpd's: it closes it itself. */
  if (ws->urh)
    MHD_upgrade_action(ws->urh, MHD_UPGRADE_ACTION_CLOSE);
  else if (ws->fd >= 0)
    close(ws->fd);
  free(ws->extra);
  free(ws);
  atomic_fetch_sub(&live, 1);
}

static void on_handle_closed(uv_handle_t *h) {
  ws_t *ws = h->data;
  if (--ws->handles_open > 0) return;
  if (ws->cb.on_close) ws->cb.on_close(ws, ws->close_code ? ws->close_code : 1006, ws->user);
  ws_free(ws);
}

static void ws_destroy(ws_t *ws) {
  if (ws->destroying) return;
  ws->destroying = true;
  if (ws->ctx && !ws->close_code) {
    uint16_t received = wslay_event_get_status_code_received(ws->ctx);
    ws->close_code = received && received != WSLAY_CODE_NO_STATUS_RCVD ? received : 0;
  }
  uv_close((uv_handle_t *)&ws->poll, on_handle_closed);
  uv_close((uv_handle_t *)&ws->timer, on_handle_closed);
}

static void on_poll(uv_poll_t *p, int status, int events);

/* After every action: stop when wslay has nothing left to do, otherwise
 * watch the socket for what it wants. */
static void ws_update(ws_t *ws) {
  if (ws->destroying) return;
  bool r = wslay_event_want_read(ws->ctx), w = wslay_event_want_write(ws->ctx);
  if (!r && !w) {
    ws_destroy(ws);
    return;
  }
  int events = (r ? UV_READABLE : 0) | (w ? UV_WRITABLE : 0);
  if (events != ws->events) {
    ws->events = events;
    uv_poll_start(&ws->poll, events, on_poll);
  }
}

/* ---- wslay callbacks ------------------------------------------------------------------------ */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user) {
  ws_t *ws = user;
  if (ws->extra_off < ws->extra_len) {
    size_t n = ws->extra_len - ws->extra_off;
    if (n > len) n = len;
    memcpy(buf, ws->extra + ws->extra_off, n);
    ws->extra_off += n;
    return (ssize_t)n;
  }
  ssize_t r = recv(ws->fd, buf, len, 0);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (r <= 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  ws->last_input_ms = loop_now_ms(ws->loop);
  return r;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user) {
  ws_t *ws = user;
  ssize_t r = send(ws->fd, data, len, MSG_NOSIGNAL | (flags & WSLAY_MSG_MORE ? MSG_MORE : 0));
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (r < 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return r;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user) {
  ws_t *ws = user;
  if (wslay_is_ctrl_frame(arg->opcode)) return; /* wslay answers ping and close itself */
  if (ws->closing || !ws->cb.on_message) return;
  ws->cb.on_message(ws, arg->opcode == WSLAY_BINARY_FRAME, arg->msg, arg->msg_length, ws->user);
}

static void maybe_writable(ws_t *ws) {
  if (ws->notify_writable && !ws->closing && ws_queued(ws) <= ws->max_queued / 2) {
    ws->notify_writable = false;
    if (ws->cb.on_writable) ws->cb.on_writable(ws, ws->user);
  }
}

/* ---- the loop side --------------------------------------------------------------------------- */

static void on_poll(uv_poll_t *p, int status, int events) {
  ws_t *ws = p->data;
  if (ws->destroying) return;
  if (status < 0) {
    ws_destroy(ws);
    return;
  }
  if ((events & UV_READABLE) && wslay_event_recv(ws->ctx) != 0) {
    ws_destroy(ws);
    return;
  }
  if (ws->destroying) return; /* a callback closed it */
  if ((events & UV_WRITABLE) && wslay_event_send(ws->ctx) != 0) {
    ws_destroy(ws);
    return;
  }
  maybe_writable(ws);
  ws_update(ws);
}

static void on_timer(uv_timer_t *t) {
  ws_t *ws = t->data;
  if (ws->destroying) return;
  if (ws->closing) { /* the peer did not finish the closing handshake in time */
    ws_destroy(ws);
    return;
  }
  uint64_t now = loop_now_ms(ws->loop);
  if (ws->idle_ms && now - ws->last_input_ms >= ws->idle_ms) {
    ws_close(ws, WSLAY_CODE_GOING_AWAY, "idle");
    return;
  }
  uint64_t left = ws->idle_ms - (now - ws->last_input_ms);
  uv_timer_start(&ws->timer, on_timer, left, 0);
}

/* Queues a message and sends what the socket takes now: no round through
 * the poll. */
static int queue_and_send(ws_t *ws, const struct wslay_event_msg *msg) {
  if (wslay_event_queue_msg(ws->ctx, msg) != 0) return -ENOMEM;
  if (wslay_event_send(ws->ctx) != 0) {
    ws_destroy(ws);
    return -EPIPE;
  }
  ws_update(ws);
  return 0;
}

int ws_send(ws_t *ws, bool binary, const void *data, size_t len) {
  if (ws->closing || ws->destroying) return -EPIPE;
  if (ws_queued(ws) + len > ws->max_queued) {
    ws->notify_writable = true;
    return -ENOBUFS;
  }
  struct wslay_event_msg msg = {.opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
                                .msg = data, .msg_length = len};
  return queue_and_send(ws, &msg);
}

int ws_ping(ws_t *ws) {
  if (ws->closing || ws->destroying) return -EPIPE;
  struct wslay_event_msg msg = {.opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
  return queue_and_send(ws, &msg);
}

void ws_close(ws_t *ws, uint16_t code, const char *reason) {
  if (ws->closing || ws->destroying) return;
  ws->closing = true;
  ws->close_code = code;
  size_t n = reason ? strlen(reason) : 0;
  if (n > 123) n = 123; /* a close frame's payload is at most 125 bytes */
  if (wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, n) != 0 ||
      wslay_event_send(ws->ctx) != 0) {
    ws_destroy(ws);
    return;
  }
  uv_timer_start(&ws->timer, on_timer, WS_CLOSE_GRACE_MS, 0);
  ws_update(ws);
}

static void adopt(void *arg) {
  ws_t *ws = arg;
  struct wslay_event_callbacks cb = {
      .recv_callback = on_recv, .send_callback = on_send, .on_msg_recv_callback = on_msg};
  uv_loop_t *uv = loop_uv(ws->loop);
  if (wslay_event_context_server_init(&ws->ctx, &cb, ws) != 0) {
    ws->ctx = NULL;
    void *user = ws->user;
    void (*free_user)(void *) = ws->free_user;
    ws_free(ws);
    if (free_user) free_user(user);
    log_warning("websocket: out of memory setting up a connection");
    return;
  }
  wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
  uv_poll_init_socket(uv, &ws->poll, ws->fd);
  uv_timer_init(uv, &ws->timer);
  ws->poll.data = ws->timer.data = ws;
  ws->handles_open = 2;
  ws->last_input_ms = loop_now_ms(ws->loop);
  ws->events = UV_READABLE;
  uv_poll_start(&ws->poll, UV_READABLE, on_poll);
  if (ws->idle_ms) uv_timer_start(&ws->timer, on_timer, ws->idle_ms, 0);
  if (ws->cb.on_open) ws->cb.on_open(ws, ws->user);
  /* What arrived with the request head is read now, not at the next poll. */
  if (!ws->destroying && ws->extra_len && wslay_event_recv(ws->ctx) != 0) ws_destroy(ws);
  ws_update(ws);
}

/* ---- the handshake (on a libmicrohttpd thread) ------------------------------------------------- */

typedef struct pending {
  ws_options_t opts;
} pending_t;

static void on_upgraded(void *cls, struct MHD_Connection *connection, void *req_cls,
                        const char *extra_in, size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh) {
  pending_t *p = cls;
  ws_options_t o = p->opts;
  free(p);
  ws_t *ws = calloc(1, sizeof *ws);
  bool tls = http_tls();
  if (ws && extra_in_size && !(ws->extra = malloc(extra_in_size))) {
    free(ws);
    ws = NULL;
  }
  int fd = -1;
  if (ws && !tls) {
    /* Our own descriptor for the socket; libmicrohttpd closes its copy and
     * forgets the connection. */
    fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    int fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      if (fd >= 0) close(fd);
      free(ws->extra);
      free(ws);
      ws = NULL;
    }
  }
  if (!ws) {
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    if (o.free_user) o.free_user(o.user);
    log_warning("websocket: out of resources taking over a connection");
    return;
  }
  atomic_fetch_add(&live, 1);
  ws->loop = o.loop;
  ws->cb = *o.cb;
  ws->user = o.user;
  ws->free_user = o.free_user;
  ws->max_message = o.max_message;
  ws->max_queued = o.max_queued;
  ws->idle_ms = (uint64_t)o.idle_seconds * 1000;
  ws->tls = tls;
  if (extra_in_size) {
    memcpy(ws->extra, extra_in, extra_in_size);
    ws->extra_len = extra_in_size;
  }
  if (tls) {
    ws->fd = sock;
    ws->urh = urh;
  } else {
    ws->fd = fd;
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
  }
  if (loop_post(o.loop, adopt, ws) < 0) {
    ws_free(ws);
    if (o.free_user) o.free_user(o.user);
  }
}

/* true when the comma-separated header holds `token` (case-insensitive). */
static bool header_has_token(const char *header, const char *token) {
  size_t tl = strlen(token);
  for (const char *p = header; p && *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *e = strchrnul(p, ',');
    const char *t = e;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
    if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0) return true;
    p = e;
  }
  return false;
}

/* Browsers send Origin; a page of another site must not open the socket
 * (cross-site WebSocket hijacking). Clients without Origin (apps) are not
 * browsers and may connect. */
static bool origin_allowed(http_request_t *req, const char *extra) {
  const char *origin = http_header(req, "Origin");
  if (!origin) return true;
  const char *host = http_request_host(req);
  char self[400];
  if (host) {
    snprintf(self, sizeof self, "%s://%s", http_request_scheme(req), host);
    if (strcasecmp(origin, self) == 0) return true;
  }
  return extra && *extra && strcasecmp(origin, extra) == 0;
}

static enum MHD_Result refuse(http_request_t *req, const ws_options_t *o, unsigned status,
                              const char *detail) {
  if (o->free_user) o->free_user(o->user);
  if (status == MHD_HTTP_UPGRADE_REQUIRED) {
    http_add_header(req, "Upgrade", "websocket");
    http_add_header(req, "Sec-WebSocket-Version", "13");
  }
  return http_reply_problem(req, status, status == MHD_HTTP_FORBIDDEN ? "origin" : "websocket",
                            "WebSocket handshake refused", detail, NULL);
}

enum MHD_Result http_websocket(http_request_t *req, const ws_options_t *opts) {
  const char *upgrade = http_header(req, "Upgrade"), *connection = http_header(req, "Connection");
  if (!header_has_token(upgrade, "websocket") || !header_has_token(connection, "upgrade"))
    return refuse(req, opts, MHD_HTTP_UPGRADE_REQUIRED,
                  "This is a WebSocket; connect with a WebSocket client (Upgrade: websocket). "
                  "Behind a reverse proxy, forward the Upgrade and Connection headers.");
  const char *version = http_header(req, "Sec-WebSocket-Version");
  if (!version || strcmp(version, "13") != 0)
    return refuse(req, opts, MHD_HTTP_UPGRADE_REQUIRED, "Only WebSocket version 13 is spoken.");
  const char *key = http_header(req, "Sec-WebSocket-Key");
  unsigned char raw[32];
  size_t raw_len = 0;
  if (!key || strlen(key) != 24 ||
      sodium_base642bin(raw, sizeof raw, key, 24, NULL, &raw_len, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      raw_len != 16)
    return refuse(req, opts, MHD_HTTP_BAD_REQUEST,
                  "Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455 4.1).");
  if (!origin_allowed(req, opts->extra_origin))
    return refuse(req, opts, MHD_HTTP_FORBIDDEN,
                  "The page that opened this WebSocket is not one of this server's.");

  char concat[24 + sizeof WS_GUID];
  snprintf(concat, sizeof concat, "%s%s", key, WS_GUID);
  unsigned char digest[20];
  char accept[sodium_base64_ENCODED_LEN(20, sodium_base64_VARIANT_ORIGINAL)];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA1, concat, strlen(concat), digest) != 0) {
    if (opts->free_user) opts->free_user(opts->user);
    return http_reply_oom(req);
  }
  sodium_bin2base64(accept, sizeof accept, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);

  pending_t *p = malloc(sizeof *p);
  struct MHD_Response *resp = p ? MHD_create_response_for_upgrade(on_upgraded, p) : NULL;
  if (!resp || MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket") != MHD_YES ||
      MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept) != MHD_YES) {
    if (resp) MHD_destroy_response(resp);
    free(p);
    if (opts->free_user) opts->free_user(opts->user);
    return http_reply_oom(req);
  }
  p->opts = *opts;
  /* Queuing the 101 runs the before-reply hooks (QoS marks the TCP socket
   * with its policy's DSCP value and rate); the marks stay on the socket for
   * the WebSocket's lifetime. */
  enum MHD_Result r = http_reply_shared(req, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
  MHD_destroy_response(resp);
  if (r != MHD_YES) {
    /* Not queued: the upgrade callback will never run. */
    free(p);
    if (opts->free_user) opts->free_user(opts->user);
  }
  return r;
}
