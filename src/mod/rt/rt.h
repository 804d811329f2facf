/* The real-time core: presence, 1:1 chat and the journal for users, over
 * client WebSockets on the runtime's event loop (docs/protocols/client.md),
 * with the retention sweep of atlas.xml's IMDeleteAfterDays and
 * JournalDeleteAfterDays, and the web client at /app/.
 *
 * Below the module: what other modules may use. Push notifications hook
 * into the writer's transactions (an outbox row commits with its message);
 * federation carries the addresses of other domains (watches, messages);
 * the meeting sends invitations as chat. Hooks and the federation are set in
 * a module's init, before start, and stay until stop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mod/module.h"
#include "store/store.h"

extern const atrium_module_t rt_module;

#define RT_NOTE_MAX 256
#define RT_ADDRESS_MAX 320
#define RT_TEXT_MAX (16 * 1024)

typedef enum rt_state {
  RT_AVAILABLE,
  RT_BUSY,
  RT_DND,
  RT_AWAY,
  RT_OFFLINE, /* last: the least available */
  RT_STATE_COUNT,
} rt_state_t;

const char *rt_state_name(rt_state_t s);
/* RT_STATE_COUNT for a name that is no state (or NULL). */
rt_state_t rt_state_parse(const char *name);
/* An address "local@host": the local part 1-64 printable characters without
 * spaces, quotes, '<', '>' or '@', the host DNS labels. Pure syntax. */
bool rt_address_ok(const char *s);

/* ---- presence, from any thread ---------------------------------------------------------- */

/* A local user's presence as watchers see it (the most available state
 * over their connections; offline with the time they left). false when the
 * user was not seen since the start (then offline, no note, since ""). */
bool rt_presence_of(const char *name, rt_state_t *state, char *note, size_t note_len,
                    char since[32]);
/* Whether the user has a client connection now. */
bool rt_user_connected(const char *name);
/* How many users have a client connection now, and how many connections
 * they have (the status page; GET /api/v1/presence lists them). */
void rt_client_counts(size_t *users, size_t *connections);

/* ---- sending as the server ------------------------------------------------------------------ */

/* A chat message from the local user `from` to the local user `to` (a
 * meeting invitation): stored and delivered as if from's client had sent
 * it. 0, or -EAGAIN when the writer's queue is full, -EINVAL for a text
 * that is empty or over RT_TEXT_MAX. */
int rt_send(const char *from, const char *to, const char *text);

/* ---- hooks ------------------------------------------------------------------------------------ */

typedef struct rt_message_event {
  int64_t id;
  int64_t from_id, to_id;                 /* users.id, 0 when remote */
  const char *from, *to;                  /* local names, or NULL */
  const char *from_remote, *to_remote;    /* federated addresses, or NULL */
  const char *text;
  const char *time;                       /* RFC 3339 */
  int64_t created_ms;
  bool to_connected;                      /* the recipient had a client connected */
} rt_message_event_t;

typedef struct rt_hooks {
  /* Writer thread, inside the transaction that stores the message: write
   * what must commit with it. < 0 rolls the batch back (its senders get
   * 503), so keep it to store operations. May be NULL. */
  int (*message_in_txn)(store_txn_t *t, const rt_message_event_t *m, void *ctx);
  /* Writer thread, inside the transaction that marks the messages from
   * `peer` to `reader` read up to `upto`. May be NULL. */
  int (*read_in_txn)(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto, void *ctx);
  /* Inside the transaction that adds a journal entry reported by a client
   * (a call). May be NULL. */
  int (*journal_in_txn)(store_txn_t *t, const store_journal_t *e, void *ctx);
  /* After one of those transactions committed (the writer's or a REST
   * handler's thread): wake whoever sends what was written. May be NULL. */
  void (*committed)(void *ctx);
  /* Loop thread: a local user's presence changed. Keep it short. May be NULL. */
  void (*presence_changed)(const char *name, rt_state_t state, const char *note, void *ctx);
  void *ctx;
} rt_hooks_t;

/* In a module's init. The struct must outlive the module. 0 or -ENOSPC. */
int rt_add_hooks(const rt_hooks_t *hooks);
void rt_hooks_clear(void);

/* ---- federation ---------------------------------------------------------------------------- */

/* One module carries the addresses of other domains. */
typedef struct rt_federation {
  /* Loop thread: the first local watch of a federated address began, or
   * the last one ended. */
  void (*watch)(const char *address, void *ctx);
  void (*unwatch)(const char *address, void *ctx);
  /* Writer thread, after the commit of a message to a federated address:
   * carry it, then answer with rt_federation_sent (any thread). */
  void (*send)(const rt_message_event_t *m, void *ctx);
  void *ctx;
} rt_federation_t;

/* In init; NULL clears. While none is set, federated addresses read offline
 * and messages to them are refused with 501. */
void rt_set_federation(const rt_federation_t *federation);

/* Any thread. The presence of a federated address, from its domain. */
void rt_federation_presence(const char *address, rt_state_t state, const char *note);
/* Any thread. A message to a federated address was carried (status 0) or
 * given up (an HTTP-like status and a sentence): its sender gets ok or an
 * error only now. */
void rt_federation_sent(int64_t message_id, int status, const char *detail);
/* Any thread. A message from a federated address to the local user `to`:
 * stored, then delivered like a local one. done (on the writer thread) gets
 * 0 and the message id once it is committed, or -ENOENT (no such user),
 * -EPERM (disabled), -EIO; answer the peer only then. 0 when queued,
 * -EAGAIN when the queue is full (done is not called). */
int rt_federation_receive(const char *from_remote, const char *to, const char *text,
                          void (*done)(void *ctx, int status, int64_t message_id), void *ctx);
