/* Every running meeting, on the runtime's event loop: its participants, the
 * lobby, the chat, the host's controls and who presents. This file is the
 * only holder of meeting state (the store keeps what outlives a run), so
 * that one node can be made the meeting host and the others fenced off.
 *
 * A meeting runs while someone is connected to it. Users (with a ticket
 * from POST /client/v1/meetings/{id}/ticket) come straight in, the host
 * among them; guests say their name and accept the privacy policy, then
 * wait in the lobby until the host admits them. Everything a participant
 * may not do is answered with an error frame, and changes nothing. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/settings.h"
#include "core/log.h"
#include "core/map.h"
#include "core/timefmt.h"
#include "http/websocket.h"
#include "mod/directory/directory.h"
#include "mod/meeting/internal.h"
#include "mod/meeting/share.h"
#include "mod/meeting/wire.h"
#include "mod/published/published.h"
#include "mod/qos/qos.h"
#include "mod/runtime/runtime.h"

typedef enum role { ROLE_HOST, ROLE_USER, ROLE_GUEST } role_t;
typedef enum pstate { P_JOINING, P_LOBBY, P_IN } pstate_t;

static const char *const role_names[] = {"host", "user", "guest"};
static const char *const state_names[] = {"joining", "lobby", "in"};

typedef struct room room_t;

typedef struct participant {
  struct participant *next;
  room_t *room;
  ws_t *ws;
  meeting_join_t join;
  char id[MEETING_PID_MAX + 1];
  char name[258];
  role_t role;
  pstate_t state;
  bool closing;
  double chat_tokens;
  uint64_t chat_ms;
  unsigned refused; /* frames refused in a row of floods */
  viewer_t *viewer;
} participant_t;

struct room {
  char id[STORE_MEETING_ID_MAX + 1];
  char title[STORE_MEETING_TITLE_MAX + 1];
  char host[65];
  int64_t host_id;
  bool encrypted;
  participant_t *list;
  size_t count;
  unsigned next_pid;
  participant_t *presenter;
  bool ended, started;
  int64_t started_ms;
  char started_at[TIMEFMT_LEN];
  /* users who were in, for the journal */
  char (*users)[65];
  size_t nusers, users_cap;
  share_t *share;
};

static struct {
  store_t *store;
  map_t *rooms; /* id -> room_t, loop thread */
  atomic_size_t sockets;
  atomic_bool draining;
  atomic_uint_fast64_t rooms_total, participants_total, chats, errors;
} R;

size_t meeting_sockets(void) { return atomic_load(&R.sockets); }
void meeting_rooms_draining(bool on) { atomic_store(&R.draining, on); }

void meeting_counters(meeting_counters_t *out) {
  out->rooms = atomic_load(&R.rooms_total);
  out->participants = atomic_load(&R.participants_total);
  out->chats = atomic_load(&R.chats);
  out->errors = atomic_load(&R.errors);
}

/* ---- the store, off the loop -------------------------------------------------------------- */

typedef struct store_job {
  char id[STORE_MEETING_ID_MAX + 1];
  bool end; /* else: record the start */
  char time[TIMEFMT_LEN];
  char reason[STORE_MEETING_REASON_MAX + 1];
  int64_t host_id, started_ms, now_ms;
  char started_at[TIMEFMT_LEN];
  char join_url[PUBLISHED_URL_MAX];
  char host_address[400];
  char (*users)[65];
  size_t nusers;
} store_job_t;

static int end_txn(store_txn_t *t, void *vctx) {
  store_job_t *j = vctx;
  int r = store_meeting_end(t, j->id, j->time, j->reason);
  if (r == -ENOENT) return 0; /* ended already */
  if (r < 0 || !j->started_at[0]) return r;
  /* The journal: the host's entry points at the meeting, each user's at the host. */
  int64_t duration = (j->now_ms - j->started_ms) / 1000;
  store_journal_t e = {.user = j->host_id, .kind = "meeting", .direction = "out",
                       .peer = j->join_url, .duration_s = duration, .answered = -1,
                       .created_ms = j->now_ms};
  snprintf(e.started, sizeof e.started, "%s", j->started_at);
  if ((r = store_journal_add(t, &e)) < 0) return r;
  for (size_t i = 0; i < j->nusers; i++) {
    store_user_t u;
    if (store_user_get(t, j->users[i], &u) < 0) continue; /* deleted meanwhile */
    store_journal_t in = e;
    in.user = u.id;
    in.direction = "in";
    in.peer = j->host_address;
    if ((r = store_journal_add(t, &in)) < 0) return r;
  }
  return 0;
}

static int start_txn(store_txn_t *t, void *vctx) {
  store_job_t *j = vctx;
  return store_meeting_started(t, j->id, j->time);
}

static void store_job_run(void *arg) {
  store_job_t *j = arg;
  int r = store_run_txn(R.store, j->end ? "meeting: end" : "meeting: start",
                        j->end ? end_txn : start_txn, j);
  if (r < 0)
    log_warning("Web meeting %s: cannot record its %s: %s", j->id, j->end ? "end" : "start",
                store_last_error(R.store));
  free(j->users);
  free(j);
}

static void store_job_submit(store_job_t *j) {
  /* The io pool: a commit waits for the disk, and the loop must not. */
  if (workpool_submit(runtime_io_pool(), store_job_run, j) < 0) {
    log_warning("Web meeting %s: the store queue is full; its %s is not recorded", j->id,
                j->end ? "end" : "start");
    free(j->users);
    free(j);
  }
}

/* ---- frames ------------------------------------------------------------------------------- */

static void send_json(participant_t *p, json_t *j) {
  if (!j) return;
  char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!text || p->closing) {
    free(text);
    return;
  }
  /* A participant who does not read is cut off rather than queued for. */
  if (ws_send(p->ws, false, text, strlen(text)) == -ENOBUFS) {
    p->closing = true;
    ws_close(p->ws, 1008, "not reading");
  }
  free(text);
}

static void send_error(participant_t *p, int status, const char *code, const char *detail,
                       const char *ref) {
  atomic_fetch_add(&R.errors, 1);
  json_t *j = json_pack("{s:s, s:i, s:s, s:s}", "type", "error", "status", status, "code", code,
                        "detail", detail);
  if (j && ref && *ref) json_object_set_new(j, "ref", json_string(ref));
  send_json(p, j);
}

static void leave(participant_t *p, uint16_t code, const char *reason) {
  if (p->closing) return;
  p->closing = true;
  ws_close(p->ws, code, reason);
}

/* `for_guest`: the list goes to a guest, whose picture URLs differ;
 * `pictures`: whether that list shows pictures at all (the Users data
 * source's permissions, read once per list). */
static json_t *person_json(const participant_t *p, bool for_guest, bool pictures) {
  json_t *j = json_pack("{s:s, s:s, s:s}", "id", p->id, "name", p->name, "role",
                        role_names[p->role]);
  if (j) json_object_set_new(j, "presenter", json_boolean(p->room->presenter == p));
  if (j)
    json_object_set_new(j, "picture",
                        pictures ? meeting_picture_url(p->room->id, p->join.user, p->join.picture,
                                                       for_guest)
                                 : json_null());
  return j;
}

/* The participant list to everyone in; the lobby to the host. */
static void broadcast_people(room_t *r) {
  /* Two lists: the users' and the guests' (their picture URLs differ). */
  json_t *people = json_array(), *guests_see = json_array(), *waiting = json_array();
  bool users_pictures = meeting_pictures_shown(false), guests_pictures = meeting_pictures_shown(true);
  for (participant_t *p = r->list; p; p = p->next) {
    if (p->closing) continue;
    if (p->state == P_IN) {
      json_array_append_new(people, person_json(p, false, users_pictures));
      json_array_append_new(guests_see, person_json(p, true, guests_pictures));
    }
    if (p->state == P_LOBBY)
      json_array_append_new(waiting, json_pack("{s:s, s:s}", "id", p->id, "name", p->name));
  }
  for (participant_t *p = r->list; p; p = p->next) {
    if (p->state != P_IN || p->closing) continue;
    send_json(p, json_pack("{s:s, s:O, s:s?}", "type", "participants", "participants",
                           p->role == ROLE_GUEST ? guests_see : people, "presenter",
                           r->presenter ? r->presenter->id : NULL));
    if (p->role == ROLE_HOST)
      send_json(p, json_pack("{s:s, s:O}", "type", "lobby", "waiting", waiting));
  }
  json_decref(people);
  json_decref(guests_see);
  json_decref(waiting);
}

static const char *unencrypted_sentence =
    "This meeting is not encrypted: its address uses http. Do not share confidential "
    "content.";

static void send_welcome(participant_t *p) {
  room_t *r = p->room;
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:b}", "type", "welcome", "you",
                        p->id, "role", role_names[p->role], "state", state_names[p->state],
                        "meeting", "id", r->id, "title", r->title, "host", r->host, "encrypted",
                        r->encrypted);
  if (j && !r->encrypted) json_object_set_new(j, "banner", json_string(unencrypted_sentence));
  send_json(p, j);
}

/* A region that did not decode: the presenter hears of it. */
static void share_failed(void *ctx, int status, const char *code, const char *detail) {
  room_t *r = ctx;
  if (r->presenter) send_error(r->presenter, status, code, detail, "region");
}

/* ---- rooms ------------------------------------------------------------------------------- */

static room_t *room_get(const meeting_join_t *j) {
  if (!R.rooms && !(R.rooms = map_new())) return NULL;
  room_t *r = map_get_str(R.rooms, j->meeting.id);
  if (r) return r;
  r = calloc(1, sizeof *r);
  if (!r) return NULL;
  snprintf(r->id, sizeof r->id, "%s", j->meeting.id);
  snprintf(r->title, sizeof r->title, "%s", j->meeting.title);
  snprintf(r->host, sizeof r->host, "%s", j->meeting.host_name);
  r->host_id = j->meeting.host;
  r->encrypted = j->encrypted;
  r->share = share_new(runtime_loop(), runtime_cpu_pool(), share_failed, r);
  if (!r->share || map_put_str(R.rooms, r->id, r) < 0) {
    if (r->share) share_free(r->share);
    free(r);
    return NULL;
  }
  atomic_fetch_add(&R.rooms_total, 1);
  return r;
}

static void room_free(room_t *r) {
  map_del_str(R.rooms, r->id);
  share_free(r->share);
  free(r->users);
  free(r);
}

static participant_t *find(room_t *r, const char *id) {
  for (participant_t *p = r->list; p; p = p->next)
    if (!p->closing && strcmp(p->id, id) == 0) return p;
  return NULL;
}

static participant_t *host_of(room_t *r) {
  for (participant_t *p = r->list; p; p = p->next)
    if (!p->closing && p->role == ROLE_HOST) return p;
  return NULL;
}

static void remember_user(room_t *r, const char *name) {
  for (size_t i = 0; i < r->nusers; i++)
    if (strcmp(r->users[i], name) == 0) return;
  if (r->nusers == r->users_cap) {
    size_t cap = r->users_cap ? r->users_cap * 2 : 8;
    void *n = realloc(r->users, cap * sizeof *r->users);
    if (!n) return;
    r->users = n;
    r->users_cap = cap;
  }
  snprintf(r->users[r->nusers++], 65, "%s", name);
}

/* A participant comes in: a viewer of the share unless presenting. */
static void enter(participant_t *p) {
  room_t *r = p->room;
  if (p->state == P_JOINING) r->count++;
  p->state = P_IN;
  if (p->join.user[0] && p->role != ROLE_HOST) remember_user(r, p->join.user);
  if (r->presenter != p && !p->viewer)
    p->viewer = share_viewer_add(r->share, p->ws, p->id, p->join.max_rate_mbps, p->join.own_socket);
}

static void set_presenter(room_t *r, participant_t *p) {
  if (r->presenter == p) return;
  participant_t *old = r->presenter;
  r->presenter = p;
  share_reset(r->share);
  if (p && p->viewer) {
    share_viewer_remove(r->share, p->viewer);
    p->viewer = NULL;
  }
  if (old && !old->closing && old->state == P_IN && !old->viewer)
    old->viewer = share_viewer_add(r->share, old->ws, old->id, old->join.max_rate_mbps,
                                   old->join.own_socket);
}

static void room_end(room_t *r, const char *reason) {
  if (r->ended) return;
  r->ended = true;
  for (participant_t *p = r->list; p; p = p->next) {
    if (p->closing) continue;
    send_json(p, json_pack("{s:s, s:s}", "type", "ended", "reason", reason));
    leave(p, 1000, "meeting ended");
  }
  store_job_t *j = calloc(1, sizeof *j);
  if (!j) return;
  snprintf(j->id, sizeof j->id, "%s", r->id);
  j->end = true;
  j->now_ms = time_now_ms();
  time_rfc3339_ms(j->now_ms, j->time);
  snprintf(j->reason, sizeof j->reason, "%s", reason);
  j->host_id = r->host_id;
  j->started_ms = r->started_ms;
  snprintf(j->started_at, sizeof j->started_at, "%s", r->started_at);
  meeting_join_url(r->id, j->join_url, sizeof j->join_url);
  settings_snapshot_t *snap = settings_acquire();
  snprintf(j->host_address, sizeof j->host_address, "%s@%s", r->host,
           settings_string(snap, "domain.name"));
  settings_release(snap);
  j->users = r->users;
  j->nusers = r->nusers;
  r->users = NULL;
  r->nusers = r->users_cap = 0;
  store_job_submit(j);
}

typedef struct end_all {
  room_t *list[256];
  size_t n;
} end_all_t;

static void collect_room(const void *key, size_t len, void *value, void *ctx) {
  end_all_t *e = ctx;
  if (e->n < 256) e->list[e->n++] = value;
}

void meeting_rooms_end_all(void *reason) {
  /* In rounds: room_end does not change the map, but a round is bounded. */
  end_all_t e = {0};
  if (R.rooms) map_each(R.rooms, collect_room, &e);
  for (size_t i = 0; i < e.n; i++) room_end(e.list[i], reason);
  free(reason);
}

void meeting_rooms_close_all(void *arg) {
  end_all_t e = {0};
  if (R.rooms) map_each(R.rooms, collect_room, &e);
  for (size_t i = 0; i < e.n; i++)
    for (participant_t *p = e.list[i]->list; p; p = p->next) leave(p, 1001, "server shutting down");
}

/* ---- what participants send --------------------------------------------------------------- */

static bool host_only(participant_t *p, const mframe_t *f) {
  if (p->role == ROLE_HOST) return true;
  send_error(p, 403, "not_host", "Only the meeting's host may do this.", f->type_name);
  return false;
}

static bool chat_allowed(participant_t *p) {
  uint64_t now = loop_now_ms(runtime_loop());
  if (p->chat_ms == 0) p->chat_tokens = MEETING_CHAT_BURST;
  else p->chat_tokens += (double)(now - p->chat_ms) * MEETING_CHAT_RATE / 1000.0;
  if (p->chat_tokens > MEETING_CHAT_BURST) p->chat_tokens = MEETING_CHAT_BURST;
  p->chat_ms = now;
  if (p->chat_tokens < 1) return false;
  p->chat_tokens -= 1;
  return true;
}

static void on_chat(participant_t *p, const mframe_t *f) {
  if (!chat_allowed(p)) {
    /* A flood is refused frame by frame; one that goes on is cut off. */
    if (++p->refused > 100) {
      leave(p, 1008, "chat flood");
      return;
    }
    send_error(p, 429, "rate_limited",
               "Too many chat messages: at most 5 a second (10 at once).", "chat");
    return;
  }
  p->refused = 0;
  atomic_fetch_add(&R.chats, 1);
  char now[TIMEFMT_LEN];
  time_rfc3339_ms(time_now_ms(), now);
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "chat", "from", p->id, "name",
                        p->name, "text", f->text, "time", now);
  for (participant_t *q = p->room->list; q; q = q->next)
    if (q->state == P_IN && !q->closing) send_json(q, json_incref(j));
  json_decref(j);
}

static void on_join(participant_t *p, const mframe_t *f) {
  if (p->role != ROLE_GUEST || p->state != P_JOINING) {
    send_error(p, 409, "joined", "You have joined this meeting already.", "join");
    return;
  }
  if (p->room->count >= MEETING_PARTICIPANTS_MAX) {
    send_error(p, 503, "full", "The meeting is full.", "join");
    return;
  }
  snprintf(p->name, sizeof p->name, "%s", f->name);
  p->state = P_LOBBY;
  p->room->count++;
  send_json(p, json_pack("{s:s, s:s}", "type", "lobby", "state", "waiting"));
  broadcast_people(p->room);
}

static void on_host_control(participant_t *p, const mframe_t *f) {
  if (!host_only(p, f)) return;
  room_t *r = p->room;
  if (f->type == MF_END) {
    room_end(r, "The host ended the meeting.");
    return;
  }
  participant_t *q = find(r, f->participant);
  if (!q) {
    send_error(p, 404, "no_participant", "There is no such participant.", f->type_name);
    return;
  }
  switch (f->type) {
  case MF_ADMIT:
    if (q->state != P_LOBBY) {
      send_error(p, 409, "not_waiting", "That participant is not waiting in the lobby.", "admit");
      return;
    }
    enter(q);
    send_json(q, json_pack("{s:s}", "type", "admitted"));
    break;
  case MF_REMOVE:
    if (q == p) {
      send_error(p, 409, "host", "The host ends the meeting instead of leaving it.", "remove");
      return;
    }
    send_json(q, json_pack("{s:s, s:s}", "type", "removed", "reason",
                           q->state == P_IN ? "The host removed you from the meeting."
                                            : "The host did not admit you."));
    leave(q, 1000, "removed");
    if (r->presenter == q) set_presenter(r, p);
    break;
  case MF_PRESENT:
    if (q->state != P_IN) {
      send_error(p, 409, "not_in", "Only a participant in the meeting can present.", "present");
      return;
    }
    set_presenter(r, q);
    break;
  default: break;
  }
  broadcast_people(r);
}

static void on_text(participant_t *p, const char *data, size_t len) {
  mframe_t f;
  int status = 400;
  char err[256];
  if (mframe_parse(data, len, &f, &status, err, sizeof err) < 0) {
    send_error(p, status, "bad_frame", err, f.type_name);
    return;
  }
  if (f.type == MF_PING) {
    send_json(p, json_pack("{s:s, s:s?}", "type", "pong", "data", f.data));
    mframe_clear(&f);
    return;
  }
  if (f.type == MF_JOIN) {
    on_join(p, &f);
    return;
  }
  if (p->state != P_IN) {
    send_error(p, 403, "not_admitted",
               p->state == P_JOINING
                   ? "Join first: give your name and accept the privacy policy."
                   : "You are waiting in the lobby until the host admits you.",
               f.type_name);
    return;
  }
  char err2[256];
  switch (f.type) {
  case MF_CHAT: on_chat(p, &f); break;
  case MF_ADMIT:
  case MF_REMOVE:
  case MF_PRESENT:
  case MF_END: on_host_control(p, &f); break;
  case MF_ACK:
    if (!p->viewer) {
      send_error(p, 409, "not_viewing", "Only viewers acknowledge frames.", "ack");
    } else if (share_viewer_ack(p->viewer, f.frame, f.decode_ms, err2, sizeof err2) < 0) {
      send_error(p, 400, "bad_ack", err2, "ack");
    }
    break;
  case MF_STATS: {
    json_t *j = share_stats(p->room->share);
    if (j) json_object_set_new(j, "type", json_string("stats"));
    send_json(p, j);
    break;
  }
  default: break;
  }
}

static void on_binary(participant_t *p, const uint8_t *data, size_t len) {
  if (p->state != P_IN) {
    send_error(p, 403, "not_admitted", "You are not in the meeting.", "region");
    return;
  }
  if (p->room->presenter != p) {
    send_error(p, 403, "not_presenter", "Only the presenter sends screen frames.", "region");
    return;
  }
  int status = 400;
  const char *code = "bad_region";
  char err[256];
  if (share_region(p->room->share, data, len, &status, &code, err, sizeof err) < 0)
    send_error(p, status, code, err, "region");
}

/* ---- the socket --------------------------------------------------------------------------- */

static void participant_free(void *user) {
  free(user);
  atomic_fetch_sub(&R.sockets, 1);
  runtime_connection_give();
}

static void on_open(ws_t *ws, void *user) {
  participant_t *p = user;
  p->ws = ws;
  room_t *r = room_get(&p->join);
  if (!r) {
    ws_close(ws, 1011, "out of memory");
    return;
  }
  if (r->ended) {
    send_json(p, json_pack("{s:s, s:s}", "type", "ended", "reason", "The meeting has ended."));
    p->closing = true;
    ws_close(ws, 1000, "meeting ended");
    return;
  }
  if (p->join.user[0] && r->count >= MEETING_PARTICIPANTS_MAX) {
    send_json(p, json_pack("{s:s, s:i, s:s, s:s}", "type", "error", "status", 503, "code",
                           "full", "detail", "The meeting is full."));
    p->closing = true;
    ws_close(ws, 1013, "meeting full");
    return;
  }
  p->room = r;
  snprintf(p->id, sizeof p->id, "p%u", ++r->next_pid);
  /* At the end: the participant list is in the order people came. */
  participant_t **tail = &r->list;
  while (*tail) tail = &(*tail)->next;
  *tail = p;
  atomic_fetch_add(&R.participants_total, 1);
  if (!p->join.user[0]) {
    p->role = ROLE_GUEST;
    p->state = P_JOINING;
    send_welcome(p);
    return;
  }
  p->role = strcmp(p->join.user, r->host) == 0 ? ROLE_HOST : ROLE_USER;
  snprintf(p->name, sizeof p->name, "%s", p->join.display_name[0] ? p->join.display_name : p->join.user);
  if (p->role == ROLE_HOST && !r->started) {
    r->started = true;
    r->started_ms = time_now_ms();
    time_rfc3339_ms(r->started_ms, r->started_at);
    store_job_t *j = calloc(1, sizeof *j);
    if (j) {
      snprintf(j->id, sizeof j->id, "%s", r->id);
      snprintf(j->time, sizeof j->time, "%s", r->started_at);
      store_job_submit(j);
    }
  }
  /* The host presents until they hand it over. */
  if (p->role == ROLE_HOST && !r->presenter) r->presenter = p;
  enter(p);
  send_welcome(p);
  broadcast_people(r);
}

static void on_message(ws_t *ws, bool binary, const uint8_t *data, size_t len, void *user) {
  participant_t *p = user;
  if (p->closing || !p->room) return;
  if (binary)
    on_binary(p, data, len);
  else
    on_text(p, (const char *)data, len);
}

static void on_writable(ws_t *ws, void *user) {
  participant_t *p = user;
  if (p->viewer) share_viewer_writable(p->viewer);
}

static void on_close(ws_t *ws, uint16_t code, void *user) {
  participant_t *p = user;
  room_t *r = p->room;
  if (r) {
    if (p->viewer) share_viewer_remove(r->share, p->viewer);
    p->viewer = NULL;
    for (participant_t **pp = &r->list; *pp; pp = &(*pp)->next)
      if (*pp == p) {
        *pp = p->next;
        break;
      }
    if (p->state != P_JOINING) r->count--;
    if (r->presenter == p) {
      r->presenter = NULL;
      participant_t *h = host_of(r);
      set_presenter(r, h && h->state == P_IN ? h : NULL);
    }
    if (!r->list)
      room_free(r);
    else
      broadcast_people(r);
  }
  participant_free(p);
}

static const ws_callbacks_t callbacks = {
    .on_open = on_open, .on_message = on_message, .on_writable = on_writable,
    .on_close = on_close};

/* ---- the handshake (HTTP thread) ------------------------------------------------------------- */

/* "scheme://host[:port]" of a URL. */
static void url_origin(const char *url, char *out, size_t len) {
  const char *s = strstr(url, "://");
  size_t n = s ? (size_t)(strchrnul(s + 3, '/') - url) : 0;
  snprintf(out, len, "%.*s", (int)n, url);
}

static enum MHD_Result reply_gone(http_request_t *req, const store_meeting_t *m) {
  return http_reply_problem(req, MHD_HTTP_GONE, "meeting_ended", "The meeting has ended",
                            m->end_reason[0] ? m->end_reason : "The meeting has ended.", NULL);
}

enum MHD_Result meeting_ws(http_request_t *req) {
  if (!meeting_enabled())
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "meeting_disabled",
                              "Web meetings are off",
                              "Web meetings are not enabled on this server.", NULL);
  const char *id = http_query(req, "meeting");
  if (!id || !*id || strlen(id) > STORE_MEETING_ID_MAX)
    return http_reply_bad_param(req, "meeting", "the meeting's id from its join link");
  participant_t *p = calloc(1, sizeof *p);
  if (!p) return http_reply_oom(req);
  store_txn_t *t;
  int r = store_read_begin(R.store, "meeting: join", &t);
  if (r == 0) {
    r = store_meeting_get(t, id, &p->join.meeting);
    store_read_end(t);
  }
  if (r < 0) {
    free(p);
    return r == -ENOENT ? http_reply_problem(req, MHD_HTTP_NOT_FOUND, "no_meeting",
                                             "No such meeting",
                                             "There is no meeting with this link.", NULL)
                        : http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "store",
                                             "Store unavailable",
                                             "The server could not read its store.", NULL);
  }
  if (p->join.meeting.ended_at[0]) {
    enum MHD_Result g = reply_gone(req, &p->join.meeting);
    free(p);
    return g;
  }
  const char *ticket = http_query(req, "ticket");
  if (ticket) {
    if (!meeting_ticket_take(ticket, id, p->join.user)) {
      free(p);
      return http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "ticket", "Invalid ticket",
                                "The ticket is unknown, used already, expired or for another "
                                "meeting; get a new one.",
                                NULL);
    }
    json_t *doc = NULL;
    if (directory_user_get(R.store, p->join.user, &doc) == 0) {
      const char *dn = json_string_value(json_object_get(doc, "display_name"));
      snprintf(p->join.display_name, sizeof p->join.display_name, "%s", dn ? dn : "");
      const char *pic = json_string_value(json_object_get(doc, "picture"));
      snprintf(p->join.picture, sizeof p->join.picture, "%s", pic ? pic : "");
    }
    json_decref(doc);
  }
  p->join.encrypted = meeting_url_encrypted();
  p->join.own_socket = !http_tls() && !http_via_trusted_proxy(req);
  char origin[PUBLISHED_URL_MAX];
  settings_snapshot_t *snap = settings_acquire();
  url_origin(settings_string(snap, "meeting.url"), origin, sizeof origin);
  const json_t *policy = qos_match(settings_value(snap, "qos.policies"), http_request_scheme(req),
                                   http_request_host(req), http_path(req));
  if (policy) p->join.max_rate_mbps = (long)json_integer_value(json_object_get(policy, "max_rate_mbps"));
  settings_release(snap);
  if (atomic_load(&R.draining) || !runtime_connection_take()) {
    free(p);
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "30");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Too many connections",
                              "The meeting server has as many open connections as its file "
                              "descriptor limit allows; try again later.",
                              NULL);
  }
  atomic_fetch_add(&R.sockets, 1);
  ws_options_t o = {.loop = runtime_loop(), .cb = &callbacks, .user = p,
                    .free_user = participant_free, .max_message = MEETING_MAX_MESSAGE,
                    .max_queued = MEETING_MAX_QUEUED, .idle_seconds = MEETING_IDLE_SECONDS,
                    .extra_origin = origin};
  return http_websocket(req, &o);
}

/* ---- start and stop ---------------------------------------------------------------------------- */

typedef struct stale {
  char ids[64][STORE_MEETING_ID_MAX + 1];
  size_t n;
} stale_t;

static void collect_stale(const store_meeting_t *m, void *ctx) {
  stale_t *s = ctx;
  if (s->n < 64) snprintf(s->ids[s->n++], sizeof s->ids[0], "%s", m->id);
}

static int end_stale_txn(store_txn_t *t, void *ctx) {
  stale_t *s = ctx;
  char now[TIMEFMT_LEN];
  time_rfc3339_ms(time_now_ms(), now);
  for (size_t i = 0; i < s->n; i++) {
    int r = store_meeting_end(t, s->ids[i], now, "The server stopped while the meeting ran.");
    if (r < 0 && r != -ENOENT) return r;
  }
  return 0;
}

int meeting_rooms_init(store_t *store) {
  R.store = store;
  atomic_store(&R.draining, false);
  /* Meetings that ran when the server last stopped have no one left in them. */
  stale_t s = {0};
  store_txn_t *t;
  int r = store_read_begin(store, "meeting: stale", &t);
  if (r == 0) {
    r = store_meeting_open(t, collect_stale, &s);
    store_read_end(t);
  }
  if (r == 0 && s.n) r = store_run_txn(store, "meeting: end stale", end_stale_txn, &s);
  if (r < 0) log_warning("Web meetings: cannot end the meetings of the last run: %s",
                         store_last_error(store));
  return 0;
}

void meeting_rooms_shutdown(void) {
  map_free(R.rooms);
  R.rooms = NULL;
}
