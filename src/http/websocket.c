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
#include <sys/uio.h>

#include "core/log.h"
#include "http/wsframe.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_CLOSE_GRACE_MS 2000
#define WS_READ_BUFFER (64 * 1024)
#define WS_READS_PER_EVENT 4 /* then other sockets get their turn */

struct ws {
  loop_t *loop;
  ws_callbacks_t cb;
  void *user;
  void (*free_user)(void *user);
  size_t max_queued;
  uint64_t idle_ms;
  int fd;
  bool tls;
  struct MHD_UpgradeResponseHandle *urh;
  /* Without TLS: libmicrohttpd's side, closed once the socket is ours. */
  struct MHD_UpgradeResponseHandle *release_urh;
  uv_poll_t poll;
  uv_timer_t timer;
  int handles_open; /* poll and timer until their close callbacks ran */
  wsf_parser_t in;
  /* Bytes the socket did not take yet: one buffer, kept only while
   * something waits in it. */
  uint8_t *out;
  size_t out_off, out_len, out_cap;
  uint8_t *extra; /* bytes libmicrohttpd read past the request head */
  size_t extra_len;
  int events;
  bool closing;       /* our close frame is queued: send nothing else */
  bool peer_closed;   /* the peer's close frame arrived */
  bool destroying, notify_writable;
  uint64_t last_input_ms;
  uint16_t close_code;
};

static atomic_size_t live;

size_t ws_count(void) { return atomic_load(&live); }
int ws_fd(const ws_t *ws) { return ws->fd; }
bool ws_is_tls(const ws_t *ws) { return ws->tls; }
size_t ws_queued(const ws_t *ws) { return ws->out_len - ws->out_off; }
void ws_want_writable(ws_t *ws) { ws->notify_writable = true; }

/* ---- tearing down ------------------------------------------------------------------------ */

static void ws_free(ws_t *ws) {
  wsf_clear(&ws->in);
  /* Under TLS the socket pair is libmicrohttpd's: it closes it itself. */
  if (ws->urh)
    MHD_upgrade_action(ws->urh, MHD_UPGRADE_ACTION_CLOSE);
  else if (ws->fd >= 0)
    close(ws->fd);
  free(ws->out);
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
  uv_close((uv_handle_t *)&ws->poll, on_handle_closed);
  uv_close((uv_handle_t *)&ws->timer, on_handle_closed);
}

static void on_poll(uv_poll_t *p, int status, int events);

/* Watch the socket for what is due: input always (a closing peer's close
 * frame too), output while bytes wait. */
static void ws_update(ws_t *ws) {
  if (ws->destroying) return;
  if (ws->closing && ws->peer_closed && ws_queued(ws) == 0) {
    ws_destroy(ws);
    return;
  }
  int events = UV_READABLE | (ws_queued(ws) ? UV_WRITABLE : 0);
  if (events != ws->events) {
    ws->events = events;
    uv_poll_start(&ws->poll, events, on_poll);
  }
}

/* ---- output -------------------------------------------------------------------------------- */

static int out_append(ws_t *ws, const uint8_t *d, size_t n) {
  if (ws->out_off && ws->out_off == ws->out_len) ws->out_off = ws->out_len = 0;
  if (ws->out_len + n > ws->out_cap) {
    /* Compact before growing: what was sent is gone. */
    if (ws->out_off) {
      memmove(ws->out, ws->out + ws->out_off, ws->out_len - ws->out_off);
      ws->out_len -= ws->out_off;
      ws->out_off = 0;
    }
    if (ws->out_len + n > ws->out_cap) {
      size_t cap = ws->out_cap ? ws->out_cap : 4096;
      while (cap < ws->out_len + n) cap *= 2;
      uint8_t *o = realloc(ws->out, cap);
      if (!o) return -ENOMEM;
      ws->out = o;
      ws->out_cap = cap;
    }
  }
  memcpy(ws->out + ws->out_len, d, n);
  ws->out_len += n;
  return 0;
}

/* Sends what waits. 0, or -EPIPE when the socket failed. */
static int out_flush(ws_t *ws) {
  while (ws_queued(ws)) {
    ssize_t r = send(ws->fd, ws->out + ws->out_off, ws_queued(ws), MSG_NOSIGNAL);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -EPIPE;
    ws->out_off += (size_t)r;
  }
  if (!ws_queued(ws)) {
    /* Idle connections keep no output buffer. */
    free(ws->out);
    ws->out = NULL;
    ws->out_off = ws->out_len = ws->out_cap = 0;
  }
  return 0;
}

/* One frame: straight to the socket when nothing waits before it, the rest
 * (or all) queued. */
static int send_frame(ws_t *ws, uint8_t opcode, const void *data, size_t len) {
  uint8_t head[10];
  size_t hl = wsf_header(head, opcode, len);
  size_t sent = 0, total = hl + len;
  if (!ws_queued(ws)) {
    struct iovec iov[2] = {{head, hl}, {(void *)data, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    ssize_t r;
    do r = sendmsg(ws->fd, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -EPIPE;
    sent = r > 0 ? (size_t)r : 0;
  }
  if (sent < hl && out_append(ws, head + sent, hl - sent) < 0) return -ENOMEM;
  size_t from = sent > hl ? sent - hl : 0;
  if (sent < total && out_append(ws, (const uint8_t *)data + from, len - from) < 0)
    return -ENOMEM;
  return 0;
}

static void maybe_writable(ws_t *ws) {
  if (ws->notify_writable && !ws->closing && ws_queued(ws) <= ws->max_queued / 2) {
    ws->notify_writable = false;
    if (ws->cb.on_writable) ws->cb.on_writable(ws, ws->user);
  }
}

/* ---- input --------------------------------------------------------------------------------- */

static void start_close(ws_t *ws, uint16_t code, const char *reason);

/* A message or a control frame from the peer; non-zero stops the parse. */
static int on_frame(void *ctx, uint8_t opcode, const uint8_t *data, size_t len) {
  ws_t *ws = ctx;
  switch (opcode) {
  case WSF_TEXT:
  case WSF_BINARY:
    if (!ws->closing && ws->cb.on_message)
      ws->cb.on_message(ws, opcode == WSF_BINARY, data, len, ws->user);
    return ws->destroying || ws->closing;
  case WSF_PING:
    if (!ws->closing && send_frame(ws, WSF_PONG, data, len) < 0) return -EPIPE;
    return 0;
  case WSF_PONG: return 0; /* counts as input: the idle timer saw it */
  case WSF_CLOSE:
    ws->peer_closed = true;
    if (!ws->close_code) ws->close_code = len >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 1005;
    if (!ws->closing) {
      /* The answer echoes the code (RFC 6455 5.5.1). */
      ws->closing = true;
      uint8_t echo[2] = {len >= 2 ? data[0] : 0x03, len >= 2 ? data[1] : 0xE8};
      send_frame(ws, WSF_CLOSE, echo, 2);
    }
    return 1;
  }
  return 0;
}

/* Feeds bytes to the parser; false when the connection was closed. */
static bool ws_input(ws_t *ws, uint8_t *buf, size_t n) {
  ws->last_input_ms = loop_now_ms(ws->loop);
  if (ws->peer_closed) return true; /* nothing after a close frame counts */
  int r = wsf_feed(&ws->in, buf, n, on_frame, ws);
  if (ws->destroying) return false;
  if (r == -ENOMEM) {
    start_close(ws, 1011, "out of memory");
  } else if (r >= 1000) {
    start_close(ws, (uint16_t)r,
                r == WSF_CLOSE_TOO_BIG ? "message too big"
                : r == WSF_CLOSE_INVALID_DATA ? "text is not UTF-8"
                                                : "protocol error");
  } else if (r < 0) {
    ws_destroy(ws);
    return false;
  }
  return !ws->destroying;
}

static void on_timer(uv_timer_t *t);

static void on_poll(uv_poll_t *p, int status, int events) {
  ws_t *ws = p->data;
  if (ws->destroying) return;
  if (status < 0) {
    ws_destroy(ws);
    return;
  }
  if (events & UV_READABLE) {
    /* One buffer per loop thread: the parser unmasks in place and keeps
     * nothing of it. */
    static _Thread_local uint8_t buf[WS_READ_BUFFER];
    for (int i = 0; i < WS_READS_PER_EVENT; i++) {
      ssize_t r = recv(ws->fd, buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) { /* the peer is gone */
        ws_destroy(ws);
        return;
      }
      if (!ws_input(ws, buf, (size_t)r)) return;
      if ((size_t)r < sizeof buf) break;
    }
  }
  if (out_flush(ws) < 0) {
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
    ws_close(ws, 1001, "idle");
    return;
  }
  uint64_t left = ws->idle_ms - (now - ws->last_input_ms);
  uv_timer_start(&ws->timer, on_timer, left, 0);
}

int ws_send(ws_t *ws, bool binary, const void *data, size_t len) {
  if (ws->closing || ws->destroying) return -EPIPE;
  if (ws_queued(ws) + len > ws->max_queued) {
    ws->notify_writable = true;
    return -ENOBUFS;
  }
  if (send_frame(ws, binary ? WSF_BINARY : WSF_TEXT, data, len) < 0) {
    ws_destroy(ws);
    return -EPIPE;
  }
  ws_update(ws);
  return 0;
}

int ws_ping(ws_t *ws) {
  if (ws->closing || ws->destroying) return -EPIPE;
  if (send_frame(ws, WSF_PING, NULL, 0) < 0) {
    ws_destroy(ws);
    return -EPIPE;
  }
  ws_update(ws);
  return 0;
}

/* Our close frame, then a bounded wait for the peer's. */
static void start_close(ws_t *ws, uint16_t code, const char *reason) {
  if (ws->closing || ws->destroying) return;
  ws->closing = true;
  ws->close_code = code;
  uint8_t payload[125];
  size_t n = reason ? strlen(reason) : 0;
  if (n > 123) n = 123; /* a close frame's payload is at most 125 bytes */
  payload[0] = (uint8_t)(code >> 8);
  payload[1] = (uint8_t)code;
  memcpy(payload + 2, reason, n);
  if (send_frame(ws, WSF_CLOSE, payload, n + 2) < 0) {
    ws_destroy(ws);
    return;
  }
  uv_timer_start(&ws->timer, on_timer, WS_CLOSE_GRACE_MS, 0);
  ws_update(ws);
}

void ws_close(ws_t *ws, uint16_t code, const char *reason) { start_close(ws, code, reason); }

static void adopt(void *arg) {
  ws_t *ws = arg;
  if (ws->release_urh) {
    MHD_upgrade_action(ws->release_urh, MHD_UPGRADE_ACTION_CLOSE);
    ws->release_urh = NULL;
  }
  uv_loop_t *uv = loop_uv(ws->loop);
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
  if (!ws->destroying && ws->extra_len) {
    uint8_t *extra = ws->extra;
    size_t n = ws->extra_len;
    ws->extra = NULL;
    ws->extra_len = 0;
    bool open = ws_input(ws, extra, n);
    free(extra);
    if (!open) return;
  }
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
  wsf_init(&ws->in, o.max_message);
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
    ws->release_urh = urh;
  }
  if (loop_post(o.loop, adopt, ws) < 0) {
    if (ws->release_urh) MHD_upgrade_action(ws->release_urh, MHD_UPGRADE_ACTION_CLOSE);
    ws->release_urh = NULL;
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
