/* WebSockets (RFC 6455) on an event loop: libmicrohttpd answers the
 * handshake, then the socket moves to the caller's loop (core/loop.h) and
 * the framing (http/wsframe.h) is done there. No thread per connection, no
 * polling, and no buffer kept for an idle connection: a client that says
 * nothing costs its descriptor, this struct and the parser's few hundred
 * bytes.
 *
 * Without TLS the socket leaves libmicrohttpd entirely (it is duplicated and
 * MHD's copy closed from the loop, once the connection is ours: closing it
 * inside the upgrade callback stalls other connections of that MHD thread),
 * so upgraded connections do not count against the HTTP server's limit.
 * With atlas.xml's <Tls>, libmicrohttpd keeps the TLS session and relays
 * the plain bytes through a socket pair; those connections stay in its
 * count.
 *
 * Everything below except http_websocket runs on the loop's thread, and the
 * callbacks are called there. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "http/http.h"

typedef struct ws ws_t;

typedef struct ws_callbacks {
  /* The socket is on the loop; messages may be sent. */
  void (*on_open)(ws_t *ws, void *user);
  /* A complete text (binary false) or binary message. */
  void (*on_message)(ws_t *ws, bool binary, const uint8_t *data, size_t len, void *user);
  /* The send queue fell to half of max_queued after ws_send refused. */
  void (*on_writable)(ws_t *ws, void *user);
  /* The connection is gone (either side closed, an error, idle time, the
   * loop stopping). `ws` is invalid afterwards; release `user` here. */
  void (*on_close)(ws_t *ws, uint16_t code, void *user);
} ws_callbacks_t;

typedef struct ws_options {
  loop_t *loop;
  const ws_callbacks_t *cb;
  void *user;
  /* Releases `user` when the connection never opens (refused handshake,
   * out of memory, the loop stopping). May be NULL. */
  void (*free_user)(void *user);
  size_t max_message;   /* largest message accepted (the connection closes with 1009) */
  size_t max_queued;    /* bytes queued for sending before ws_send refuses */
  unsigned idle_seconds; /* closes (1001) after this long without any frame from the peer */
  /* Besides the server's own origin, the one origin that may open the
   * socket from a browser ("https://meet.example.com"), or NULL. */
  const char *extra_origin;
} ws_options_t;

/* From a route handler: checks the handshake (Upgrade, Connection,
 * Sec-WebSocket-Version 13, Sec-WebSocket-Key, Origin), answers 101, and
 * hands the socket to opts->loop; or answers the problem (426, 400, 403)
 * and releases user. opts is copied. */
enum MHD_Result http_websocket(http_request_t *req, const ws_options_t *opts);

/* Queues one message (copied) and starts sending it. 0, -ENOBUFS when more
 * than max_queued bytes are waiting (nothing is queued: the caller decides
 * whether to drop or disconnect), -EPIPE once closing. */
int ws_send(ws_t *ws, bool binary, const void *data, size_t len);
size_t ws_queued(const ws_t *ws);
/* Asks for on_writable once the queue is at most half of max_queued (a
 * sender pacing itself before ws_send would refuse). */
void ws_want_writable(ws_t *ws);
/* A ping frame (the peer answers with a pong, which counts as input). */
int ws_ping(ws_t *ws);
/* Starts the closing handshake; on_close follows (after at most 2 s). */
void ws_close(ws_t *ws, uint16_t code, const char *reason);
/* The connection's socket, for TCP_INFO and marking; under TLS it is
 * libmicrohttpd's socket pair, not the client's connection. */
int ws_fd(const ws_t *ws);
bool ws_is_tls(const ws_t *ws);
/* Live WebSockets in this process, on every loop. */
size_t ws_count(void);
