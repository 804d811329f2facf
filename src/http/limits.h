/* Connection limits of the HTTP server (inside the http layer; daemon.c
 * calls these from libmicrohttpd's callbacks), after nginx's limit_conn and
 * client_header_timeout and OpenSSH's MaxStartups:
 *
 *  - at most `per_address` connections from one client (IPv6 by /64),
 *    refused at accept; a trusted reverse proxy is exempt at accept, and
 *    the limit then applies to requests in progress per forwarded address;
 *  - at most `connections` in all, of which the last `loopback_reserve` are
 *    for loopback peers only, so an administrator on the machine always
 *    gets in; when full, the connection that has waited longest for its
 *    request head (idle keep-alive or a slow sender) is closed to make room;
 *  - `header_timeout_s` for the whole request head, counted from the
 *    connection's start or the end of its previous request, and not reset
 *    by each byte (libmicrohttpd's own timeout is).
 *
 * WebSockets stop counting once upgraded (the real-time module budgets
 * them). One log line when an address reaches its limit, not one per
 * refused connection. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/netaddr.h"
#include "http/http.h"

/* One per TCP connection, inside daemon.c's socket context. */
typedef struct conn_track {
  struct conn_track *prev, *next;
  int fd;
  int state; /* internal */
  bool counted, loopback, proxy;
  int64_t since_ms;
  char key[NETADDR_KEY_MAX];
} conn_track_t;

typedef bool (*limits_trusted_fn)(int family, const unsigned char *addr);

/* Starts the timer thread of the head deadline. */
int limits_start(const http_limits_t *l, limits_trusted_fn trusted, char *err, size_t errlen);
void limits_stop(void); /* joins the thread; safe when not started */

/* MHD's accept policy: false refuses the connection before any byte is read. */
bool limits_accept(const struct sockaddr *sa);
void limits_opened(conn_track_t *c, int fd, const struct sockaddr *sa);
void limits_closed(conn_track_t *c);
void limits_head_done(conn_track_t *c);    /* a request's head has arrived */
void limits_request_done(conn_track_t *c); /* waiting for the next head */
void limits_upgraded(conn_track_t *c);     /* a WebSocket now: no longer counted */

/* Requests in progress per forwarded client address (peers that are trusted
 * proxies). 0 and key filled, or -EBUSY over the limit (key empty). */
int limits_forwarded_enter(const char *client, char key[NETADDR_KEY_MAX]);
void limits_forwarded_leave(const char key[NETADDR_KEY_MAX]);

void limits_write_metrics(FILE *f, void *ctx);
