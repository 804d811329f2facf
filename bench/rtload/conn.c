#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define CONN_MAX_HEADER (16 * 1024)
#define CONN_MAX_MSG (1024 * 1024)

/* One loop thread reads one socket at a time and every read is consumed
 * before the next, so all connections share one read buffer instead of
 * holding 64 KiB each. */
static char conn_rbuf[64 * 1024];

static int buf_add(conn_buf_t *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + n)
      cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q)
      return -ENOMEM;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static void buf_free(conn_buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static void conn_closed_cb(uv_handle_t *h) {
  conn_t *c = h->data;
  if (c->ws) {
    wslay_event_context_free(c->ws);
    c->ws = NULL;
  }
  buf_free(&c->hdr);
  buf_free(&c->out);
  buf_free(&c->wbuf);
  c->state = CONN_CLOSED;
  c->cbs->on_closed(c, c->why[0] ? c->why : NULL);
}

void conn_close(conn_t *c, const char *why) {
  if (c->state == CONN_IDLE || c->state == CONN_CLOSING || c->state == CONN_CLOSED)
    return;
  if (why && !c->why[0])
    snprintf(c->why, sizeof c->why, "%s", why);
  c->state = CONN_CLOSING;
  uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

__attribute__((format(printf, 2, 3))) static void conn_closef(conn_t *c, const char *fmt, ...) {
  char why[sizeof c->why];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  conn_close(c, why);
}

static void conn_flush(conn_t *c);

static void conn_write_cb(uv_write_t *req, int status) {
  conn_t *c = req->data;
  c->writing = 0;
  c->wbuf.len = 0;
  if (status < 0) {
    if (status != UV_ECANCELED)
      conn_closef(c, "write: %s", uv_strerror(status));
    return;
  }
  conn_flush(c);
}

/* Tries a direct write first: most frames are small and the socket buffer
 * has room, so the common case costs one syscall and no copy. */
static void conn_flush(conn_t *c) {
  if (c->writing || c->out.len == 0 || (c->state != CONN_HTTP && c->state != CONN_WS))
    return;
  uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n >= 0 && (size_t)n == c->out.len) {
    c->out.len = 0;
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    conn_closef(c, "write: %s", uv_strerror(n));
    return;
  }
  if (n < 0)
    n = 0;
  conn_buf_t t = c->wbuf;
  c->wbuf = c->out;
  c->out = t;
  c->out.len = 0;
  memmove(c->wbuf.p, c->wbuf.p + n, c->wbuf.len - (size_t)n);
  c->wbuf.len -= (size_t)n;
  b = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
  c->wreq.data = c;
  int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb);
  if (r < 0) {
    conn_closef(c, "write: %s", uv_strerror(r));
    return;
  }
  c->writing = 1;
}

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud) {
  (void)flags;
  conn_t *c = ud;
  if (c->inlen == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < c->inlen ? len : c->inlen;
  memcpy(buf, c->in, n);
  c->in += n;
  c->inlen -= n;
  return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud) {
  (void)flags;
  conn_t *c = ud;
  if (buf_add(&c->out, data, len) < 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud) {
  (void)ctx;
  (void)ud;
  while (len > 0) {
    uint64_t r = wsu_rand64();
    size_t n = len < sizeof r ? len : sizeof r;
    memcpy(buf, &r, n);
    buf += n;
    len -= n;
  }
  return 0;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *ud) {
  (void)ctx;
  conn_t *c = ud;
  if (c->state != CONN_WS)
    return;
  if (arg->opcode == WSLAY_TEXT_FRAME) {
    c->cbs->on_text(c, (const char *)arg->msg, arg->msg_length);
  } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
    char why[96];
    snprintf(why, sizeof why, "the server closed the WebSocket with status %u", arg->status_code);
    snprintf(c->why, sizeof c->why, "%s", why);
  }
}

static const struct wslay_event_callbacks ws_cbs = {
    .recv_callback = ws_recv_cb,
    .send_callback = ws_send_cb,
    .genmask_callback = ws_genmask_cb,
    .on_msg_recv_callback = ws_msg_cb,
};

static void conn_feed_ws(conn_t *c, const char *p, size_t n) {
  c->in = p;
  c->inlen = n;
  int r = wslay_event_recv(c->ws);
  c->in = NULL;
  c->inlen = 0;
  if (c->state != CONN_WS)
    return;
  if (r != 0) {
    conn_close(c, "the server's WebSocket frames are malformed");
    return;
  }
  if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
    conn_close(c, "wslay could not frame an outgoing message");
    return;
  }
  conn_flush(c);
  if (!wslay_event_want_read(c->ws))
    conn_close(c, c->why[0] ? c->why : "the server closed the WebSocket");
}

/* The value of header name in the block [p, end), trimmed, or NULL. */
static const char *hdr_value(const char *p, const char *end, const char *name, size_t *vlen) {
  size_t nl = strlen(name);
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
      eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && (size_t)(colon - p) == nl && strncasecmp(p, name, nl) == 0) {
      const char *v = colon + 1;
      const char *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      *vlen = (size_t)(ve - v);
      return v;
    }
    p = eol + 1;
  }
  return NULL;
}

static int token_in(const char *v, size_t vl, const char *tok) {
  size_t tl = strlen(tok);
  const char *e = v + vl;
  while (v < e) {
    while (v < e && (*v == ' ' || *v == ','))
      v++;
    const char *s = v;
    while (v < e && *v != ',')
      v++;
    const char *te = v;
    while (te > s && te[-1] == ' ')
      te--;
    if ((size_t)(te - s) == tl && strncasecmp(s, tok, tl) == 0)
      return 1;
  }
  return 0;
}

/* Checks the upgrade answer in [p, p+n); returns NULL or a sentence. */
static const char *check_upgrade(conn_t *c, const char *p, size_t n, char *why, size_t wl) {
  const char *end = p + n;
  const char *eol = memchr(p, '\n', n);
  if (!eol || n < 12 || strncmp(p, "HTTP/1.1 ", 9) != 0) {
    snprintf(why, wl, "the server did not answer HTTP/1.1 to the upgrade");
    return why;
  }
  if (strncmp(p + 9, "101", 3) != 0) {
    int ll = (int)(eol - p);
    if (ll > 0 && p[ll - 1] == '\r')
      ll--;
    snprintf(why, wl, "the upgrade was refused: %.*s", ll > 80 ? 80 : ll, p);
    return why;
  }
  const char *h = eol + 1;
  size_t vl;
  const char *v = hdr_value(h, end, "Upgrade", &vl);
  if (!v || !token_in(v, vl, "websocket")) {
    snprintf(why, wl, "the 101 answer lacks Upgrade: websocket");
    return why;
  }
  v = hdr_value(h, end, "Connection", &vl);
  if (!v || !token_in(v, vl, "upgrade")) {
    snprintf(why, wl, "the 101 answer lacks Connection: upgrade");
    return why;
  }
  char accept[WSU_ACCEPT_LEN + 1];
  wsu_accept_for_key(c->key, accept);
  v = hdr_value(h, end, "Sec-WebSocket-Accept", &vl);
  if (!v || vl != WSU_ACCEPT_LEN || memcmp(v, accept, vl) != 0) {
    snprintf(why, wl, "the 101 answer's Sec-WebSocket-Accept does not match the key");
    return why;
  }
  if (c->want_protocol) {
    v = hdr_value(h, end, "Sec-WebSocket-Protocol", &vl);
    if (!v || vl != strlen(c->want_protocol) || strncmp(v, c->want_protocol, vl) != 0) {
      snprintf(why, wl, "the 101 answer does not select the subprotocol %s", c->want_protocol);
      return why;
    }
  }
  return NULL;
}

static void conn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(conn_rbuf, sizeof conn_rbuf);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (nread == 0)
    return;
  if (nread < 0) {
    if (nread == UV_EOF)
      conn_close(c, c->why[0] ? c->why : "the server closed the connection");
    else
      conn_closef(c, "read: %s", uv_strerror((int)nread));
    return;
  }
  if (c->state == CONN_WS) {
    conn_feed_ws(c, buf->base, (size_t)nread);
    return;
  }
  if (c->state != CONN_HTTP)
    return;
  if (c->hdr.len + (size_t)nread > CONN_MAX_HEADER) {
    conn_close(c, "the upgrade answer's headers exceed 16 KiB");
    return;
  }
  size_t from = c->hdr.len > 3 ? c->hdr.len - 3 : 0;
  if (buf_add(&c->hdr, buf->base, (size_t)nread) < 0) {
    conn_close(c, "out of memory");
    return;
  }
  const char *p = c->hdr.p;
  const char *e = NULL;
  for (size_t i = from; i + 4 <= c->hdr.len; i++)
    if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
      e = p + i + 4;
      break;
    }
  if (!e)
    return;
  char why[sizeof c->why];
  if (check_upgrade(c, p, (size_t)(e - p), why, sizeof why)) {
    conn_close(c, why);
    return;
  }
  if (wslay_event_context_client_init(&c->ws, &ws_cbs, c) != 0) {
    conn_close(c, "out of memory");
    return;
  }
  wslay_event_config_set_max_recv_msg_length(c->ws, CONN_MAX_MSG);
  c->state = CONN_WS;
  size_t rest = c->hdr.len - (size_t)(e - p);
  c->cbs->on_open(c);
  if (c->state == CONN_WS && rest > 0)
    conn_feed_ws(c, e, rest);
  buf_free(&c->hdr);
}

static void conn_connect_cb(uv_connect_t *req, int status) {
  conn_t *c = req->data;
  if (c->state != CONN_TCP)
    return;
  if (status < 0) {
    conn_closef(c, "connect: %s", uv_strerror(status));
    return;
  }
  c->state = CONN_HTTP;
  int r = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
  if (r < 0) {
    conn_closef(c, "read: %s", uv_strerror(r));
    return;
  }
  conn_flush(c);
}

static int build_request(conn_t *c, const conn_target_t *t, const char *extra) {
  uint8_t raw[16];
  uint64_t a = wsu_rand64(), b = wsu_rand64();
  memcpy(raw, &a, 8);
  memcpy(raw + 8, &b, 8);
  wsu_base64(raw, sizeof raw, c->key);
  char head[2048];
  int n = snprintf(head, sizeof head,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s:%s\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n",
                   t->url->path, t->url->host, t->url->port, c->key);
  if (n < 0 || (size_t)n >= sizeof head)
    return -EINVAL;
  if (t->protocol) {
    int m = snprintf(head + n, sizeof head - (size_t)n, "Sec-WebSocket-Protocol: %s\r\n", t->protocol);
    if (m < 0 || (size_t)m >= sizeof head - (size_t)n)
      return -EINVAL;
    n += m;
  }
  if (buf_add(&c->out, head, (size_t)n) < 0)
    return -ENOMEM;
  if (extra && buf_add(&c->out, extra, strlen(extra)) < 0)
    return -ENOMEM;
  return buf_add(&c->out, "\r\n", 2);
}

int conn_start(conn_t *c, uv_loop_t *loop, const conn_target_t *t, const struct sockaddr_in *src,
               const char *extra_headers, const conn_cbs_t *cbs, void *data) {
  memset(c, 0, sizeof *c);
  c->cbs = cbs;
  c->data = data;
  c->want_protocol = t->protocol;
  int r = uv_tcp_init(loop, &c->tcp);
  if (r < 0)
    return r;
  c->tcp.data = c;
  c->creq.data = c;
  c->state = CONN_TCP;
  if (build_request(c, t, extra_headers) < 0) {
    conn_close(c, "the upgrade request does not fit in 2 KiB");
    return 0;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    conn_closef(c, "socket: %s", strerror(errno));
    return 0;
  }
  if (src) {
    int one = 1;
    /* Without this, bind picks a port before the destination is known and
     * each source address runs out after one ephemeral range in total. */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)src, sizeof *src) < 0) {
      int e = errno;
      close(fd);
      conn_closef(c, "bind: %s", strerror(e));
      return 0;
    }
  }
  r = uv_tcp_open(&c->tcp, fd);
  if (r < 0) {
    close(fd);
    conn_closef(c, "uv_tcp_open: %s", uv_strerror(r));
    return 0;
  }
  (void)uv_tcp_nodelay(&c->tcp, 1);
  r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&t->dst, conn_connect_cb);
  if (r < 0)
    conn_closef(c, "connect: %s", uv_strerror(r));
  return 0;
}

int conn_send_text(conn_t *c, const char *s, size_t n) {
  if (c->state != CONN_WS)
    return -ENOTCONN;
  struct wslay_event_msg m = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)s, .msg_length = n};
  int r = wslay_event_queue_msg(c->ws, &m);
  if (r == WSLAY_ERR_NO_MORE_MSG)
    return -ENOTCONN;
  if (r != 0)
    return -ENOMEM;
  /* Inside wslay_event_recv for this connection the frame is sent after
   * the receive returns (conn_feed_ws), not from within wslay's callback. */
  if (c->in)
    return 0;
  if (wslay_event_send(c->ws) != 0) {
    conn_close(c, "wslay could not frame an outgoing message");
    return -EIO;
  }
  conn_flush(c);
  return 0;
}
