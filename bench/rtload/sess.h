/* One user's session over either protocol: the handshake up to "ready"
 * (atrium: hello, then presence.set available answered by ok; xmpp:
 * open, SASL PLAIN, bind, initial presence reflected back), then chat and
 * presence events in one shape for both, so the scenarios know no
 * protocol. */
#ifndef RTLOAD_SESS_H
#define RTLOAD_SESS_H

#include <stdint.h>

#include "conn.h"

typedef enum sess_proto { SESS_ATRIUM, SESS_XMPP } sess_proto_t;

typedef struct sess sess_t;

typedef struct sess_events {
  void (*ready)(sess_t *s);
  /* from is the sender's address (xmpp: the bare JID). */
  void (*chat)(sess_t *s, const char *from, const char *text, size_t n);
  /* atrium only: an ok answering request id; message_id and time are
   * NULL when the server left them out. */
  void (*ok)(sess_t *s, const char *id, const char *message_id, const char *time);
  /* from is the address whose presence changed; note may be NULL. */
  void (*presence)(sess_t *s, const char *from, const char *state, const char *note);
  /* A frame that broke the contract, or an error answer to request id
   * (NULL when none); the session stays open. */
  void (*error)(sess_t *s, const char *id, const char *what);
  /* Closed, during the handshake (s->ready == 0) or after it. */
  void (*closed)(sess_t *s, const char *why);
} sess_events_t;

typedef struct sess_ctx {
  sess_proto_t proto;
  uv_loop_t *loop;
  conn_target_t target;
  const sess_events_t *ev;
  void *user;
} sess_ctx_t;

enum sess_phase { SESS_NEW, SESS_HANDSHAKE, SESS_OPEN, SESS_CLOSED };

struct sess {
  conn_t conn;
  sess_ctx_t *ctx;
  const char *address; /* name@domain, from the credentials file */
  const char *secret;  /* atrium: client token; xmpp: password */
  enum sess_phase phase;
  int step;
  int ready;
  uint64_t deadline_ns; /* end of the handshake or of a pending wait */
};

/* Starts connecting from src (may be NULL). Returns 0 or a negative errno
 * (nothing started, closed will not run). */
int sess_start(sess_t *s, sess_ctx_t *ctx, const struct sockaddr_in *src);
/* Requests; each returns 0, or a negative errno with nothing sent. */
int sess_chat(sess_t *s, const char *to, const char *text, size_t n, const char *id);
int sess_presence(sess_t *s, const char *state, const char *note, const char *id);
int sess_watch(sess_t *s, const char *const *addresses, size_t n, const char *id);
void sess_close(sess_t *s, const char *why);

/* The handshake's id for presence.set, exposed for the self-test. */
#define SESS_INIT_ID "rtload-init"

#endif
