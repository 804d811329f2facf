/* One WebSocket client connection on a libuv loop: TCP connect from a
 * chosen source address, the HTTP/1.1 upgrade, then wslay framing. Text
 * messages in, text messages out; everything else (ping/pong, close) is
 * wslay's. */
#ifndef RTLOAD_CONN_H
#define RTLOAD_CONN_H

#include <netinet/in.h>
#include <stddef.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "wsutil.h"

typedef struct conn conn_t;

typedef struct conn_cbs {
  /* The upgrade finished: conn_send_text may be used from now on. */
  void (*on_open)(conn_t *c);
  /* One complete text message; s is not NUL-terminated beyond n. */
  void (*on_text)(conn_t *c, const char *s, size_t n);
  /* Called exactly once, after the handle is closed; why is NULL for a
   * close this side asked for with a NULL reason. */
  void (*on_closed)(conn_t *c, const char *why);
} conn_cbs_t;

typedef struct conn_buf {
  char *p;
  size_t len, cap;
} conn_buf_t;

enum conn_state { CONN_IDLE, CONN_TCP, CONN_HTTP, CONN_WS, CONN_CLOSING, CONN_CLOSED };

struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  wslay_event_context_ptr ws;
  const conn_cbs_t *cbs;
  void *data;
  enum conn_state state;
  int writing;
  char key[WSU_KEY_LEN + 1];
  const char *want_protocol; /* Sec-WebSocket-Protocol the answer must name */
  conn_buf_t hdr;            /* the HTTP answer until its blank line */
  const char *in;            /* bytes handed to wslay by conn_recv_cb */
  size_t inlen;
  conn_buf_t out;   /* frames wslay produced, not yet written */
  conn_buf_t wbuf;  /* the bytes of the write in flight */
  char why[160];
};

/* The request's fixed parts, shared by every connection of a run. */
typedef struct conn_target {
  struct sockaddr_in dst;
  const wsu_url_t *url;
  const char *protocol; /* NULL, or a subprotocol to ask for and require */
} conn_target_t;

/* Starts connecting; src (may be NULL) is bound before connect with
 * IP_BIND_ADDRESS_NO_PORT so that the port is chosen per destination.
 * extra_headers is a block of "Name: value\r\n" lines (may be NULL), copied.
 * Returns 0 or a negative errno; on failure on_closed still runs. */
int conn_start(conn_t *c, uv_loop_t *loop, const conn_target_t *t, const struct sockaddr_in *src,
               const char *extra_headers, const conn_cbs_t *cbs, void *data);

/* Queues one text message and writes it out. Returns 0 or -ENOTCONN,
 * -ENOMEM. */
int conn_send_text(conn_t *c, const char *s, size_t n);

/* Closes the connection (idempotent); why is kept for on_closed. */
void conn_close(conn_t *c, const char *why);

#endif
