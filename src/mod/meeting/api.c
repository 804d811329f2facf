/* The meeting's REST side, on the HTTP threads: a user creates a meeting
 * (POST /client/v1/meetings) and gets its join link under the effective
 * meeting.url; invitees get the link as a chat message from the host;
 * a user's browser gets a single-use ticket for the meeting's WebSocket. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/settings.h"
#include "core/map.h"
#include "core/timefmt.h"
#include "mod/directory/directory.h"
#include "mod/meeting/internal.h"
#include "mod/published/published.h"
#include "mod/rt/rt.h"

static struct {
  store_t *store;
  pthread_mutex_t lock;
  map_t *tickets; /* ticket -> ticket_t */
} A = {.lock = PTHREAD_MUTEX_INITIALIZER};

typedef struct ticket {
  char meeting[STORE_MEETING_ID_MAX + 1];
  char user[65];
  int64_t expires_ms;
} ticket_t;

void meeting_api_init(store_t *store) { A.store = store; }

static void free_ticket(const void *key, size_t len, void *value, void *ctx) { free(value); }

void meeting_api_shutdown(void) {
  pthread_mutex_lock(&A.lock);
  if (A.tickets) map_each(A.tickets, free_ticket, NULL);
  map_free(A.tickets);
  A.tickets = NULL;
  pthread_mutex_unlock(&A.lock);
}

/* ---- settings ----------------------------------------------------------------------------- */

bool meeting_enabled(void) {
  settings_snapshot_t *snap = settings_acquire();
  bool on = settings_bool(snap, "meeting.enabled");
  settings_release(snap);
  return on;
}

bool meeting_url_encrypted(void) {
  settings_snapshot_t *snap = settings_acquire();
  bool https = strncmp(settings_string(snap, "meeting.url"), "https://", 8) == 0;
  settings_release(snap);
  return https;
}

void meeting_join_url(const char *id, char *out, size_t len) {
  settings_snapshot_t *snap = settings_acquire();
  const char *base = settings_string(snap, "meeting.url");
  /* The page is the meeting URL itself; the meeting is its query, so every
   * relative link of the page keeps working under the published path. */
  snprintf(out, len, "%s%s?meeting=%s", base, base[0] && base[strlen(base) - 1] == '/' ? "" : "/",
           id);
  settings_release(snap);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void domain_name(char *out, size_t len) {
  settings_snapshot_t *snap = settings_acquire();
  snprintf(out, len, "%s", settings_string(snap, "domain.name"));
  settings_release(snap);
}

static enum MHD_Result reply_off(http_request_t *req) {
  return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "meeting_disabled", "Web meetings are off",
                            "Web meetings are not enabled on this server (meeting.enabled).",
                            NULL);
}

/* The request's user: name and store id. 0, or < 0 with *reply queued. */
static int user_of(http_request_t *req, char name[65], int64_t *id, enum MHD_Result *reply) {
  json_t *doc = NULL;
  int r = directory_client_user(req, &doc, reply);
  if (r < 0) return r;
  snprintf(name, 65, "%s", json_string_value(json_object_get(doc, "name")));
  json_decref(doc);
  store_txn_t *t;
  store_user_t u;
  r = store_read_begin(A.store, "meeting: user", &t);
  if (r == 0) {
    r = store_user_get(t, name, &u);
    store_read_end(t);
  }
  if (r == -ENOENT)
    *reply = http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Not logged in",
                                "The user of this token no longer exists.", NULL);
  else if (r < 0)
    *reply = http_reply_store_failed(req);
  else
    *id = u.id;
  return r;
}

/* Text a person typed: 1..max bytes after trimming, no control characters. */
static bool plain_text(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max || s[0] == ' ' || s[n - 1] == ' ') return false;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return false;
  return true;
}

static json_t *meeting_json(const store_meeting_t *m) {
  char url[PUBLISHED_URL_MAX];
  meeting_join_url(m->id, url, sizeof url);
  char domain[256];
  domain_name(domain, sizeof domain);
  char host[400];
  snprintf(host, sizeof host, "%s@%s", m->host_name, domain);
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "id", m->id, "title", m->title,
                        "host", host, "join_url", url, "created_at", m->created_at, "ended",
                        m->ended_at[0] != 0);
  if (!j) return NULL;
  json_object_set_new(j, "start", m->starts_at[0] ? json_string(m->starts_at) : json_null());
  json_object_set_new(j, "started_at", m->started_at[0] ? json_string(m->started_at) : json_null());
  json_object_set_new(j, "ended_at", m->ended_at[0] ? json_string(m->ended_at) : json_null());
  if (m->end_reason[0]) json_object_set_new(j, "end_reason", json_string(m->end_reason));
  return j;
}

/* ---- POST /client/v1/meetings ------------------------------------------------------------- */

/* An invitee, "name" or "name@<our domain>": the user's name, or false. */
static bool invitee_name(const char *s, char out[65]) {
  char domain[256];
  domain_name(domain, sizeof domain);
  const char *at = strchr(s, '@');
  size_t n = at ? (size_t)(at - s) : strlen(s);
  if (n == 0 || n > 64 || (at && strcasecmp(at + 1, domain) != 0)) return false;
  memcpy(out, s, n);
  out[n] = '\0';
  return directory_validate_name(out, NULL) == 0;
}

typedef struct create_ctx {
  store_meeting_t m;
  char (*invitees)[65];
  size_t ninvitees;
  int64_t *invitee_ids;
  size_t missing; /* index+1 of an invitee who is no user */
} create_ctx_t;

static int create_txn(store_txn_t *t, void *vctx) {
  create_ctx_t *c = vctx;
  c->missing = 0;
  for (size_t i = 0; i < c->ninvitees; i++) {
    store_user_t u;
    int r = store_user_get(t, c->invitees[i], &u);
    if (r == -ENOENT) {
      c->missing = i + 1;
      return -ENOENT;
    }
    if (r < 0) return r;
  }
  return store_meeting_add(t, &c->m);
}

enum MHD_Result meeting_api_create(http_request_t *req) {
  if (!meeting_enabled()) return reply_off(req);
  enum MHD_Result reply;
  char host[65];
  int64_t host_id = 0;
  if (user_of(req, host, &host_id, &reply) < 0) return reply;
  const json_t *body = http_body_json(req);
  if (!json_is_object(body))
    return http_reply_field(req, "", "The request body must be a JSON object.");
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "title") && strcmp(key, "start") && strcmp(key, "invitees")) {
      char msg[160];
      snprintf(msg, sizeof msg, "%.60s is not a field of a meeting (title, start, invitees).",
               key);
      return http_reply_field(req, key, msg);
    }
  }
  const char *title = json_string_value(json_object_get(body, "title"));
  if (!title || !plain_text(title, STORE_MEETING_TITLE_MAX))
    return http_reply_field(req, "title",
                       "title must be text of 1 to 200 bytes without control characters or "
                       "leading and trailing spaces.");
  create_ctx_t c = {0};
  const json_t *start = json_object_get(body, "start");
  if (start && !json_is_null(start)) {
    int64_t ms;
    if (!json_is_string(start) || !time_parse_rfc3339(json_string_value(start), &ms))
      return http_reply_field(req, "start",
                         "start must be a date and time in RFC 3339 (2026-12-01T10:00:00Z).");
    time_rfc3339_ms(ms, c.m.starts_at);
  }
  const json_t *inv = json_object_get(body, "invitees");
  if (inv && !json_is_null(inv) &&
      (!json_is_array(inv) || json_array_size(inv) > MEETING_INVITEES_MAX))
    return http_reply_field(req, "invitees", "invitees must be a list of at most 100 user names.");
  size_t n = json_is_array(inv) ? json_array_size(inv) : 0;
  c.invitees = n ? calloc(n, sizeof *c.invitees) : NULL;
  if (n && !c.invitees) return http_reply_oom(req);
  for (size_t i = 0; i < n; i++) {
    const char *s = json_string_value(json_array_get(inv, i));
    char k[32];
    snprintf(k, sizeof k, "invitees[%zu]", i);
    if (!s || !invitee_name(s, c.invitees[i])) {
      free(c.invitees);
      return http_reply_field(req, k, "An invitee must be a user's name or IM address on this server.");
    }
    if (strcmp(c.invitees[i], host) == 0) {
      free(c.invitees);
      return http_reply_field(req, k, "The host does not invite themselves.");
    }
  }
  c.ninvitees = n;
  uint8_t raw[16];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(c.m.id, sizeof c.m.id, raw, sizeof raw,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  c.m.host = host_id;
  snprintf(c.m.host_name, sizeof c.m.host_name, "%s", host);
  snprintf(c.m.title, sizeof c.m.title, "%s", title);
  c.m.created_ms = time_now_ms();
  time_rfc3339_ms(c.m.created_ms, c.m.created_at);
  int r = store_run_txn(A.store, "meeting: create", create_txn, &c);
  if (r == -ENOENT && c.missing) {
    char k[32];
    snprintf(k, sizeof k, "invitees[%zu]", c.missing - 1);
    free(c.invitees);
    return http_reply_field(req, k, "There is no user of that name.");
  }
  if (r < 0) {
    free(c.invitees);
    return http_reply_store_failed(req);
  }
  json_t *out = meeting_json(&c.m);
  json_t *invited = json_array();
  char url[PUBLISHED_URL_MAX];
  meeting_join_url(c.m.id, url, sizeof url);
  char text[PUBLISHED_URL_MAX + 512];
  if (c.m.starts_at[0])
    snprintf(text, sizeof text, "Invitation to the web meeting \"%s\" at %s: %s", c.m.title,
             c.m.starts_at, url);
  else
    snprintf(text, sizeof text, "Invitation to the web meeting \"%s\": %s", c.m.title, url);
  for (size_t i = 0; i < n; i++) {
    /* The meeting exists whether or not a chat queue was full; the answer
     * says who was not told. */
    int s = rt_send(host, c.invitees[i], text);
    json_array_append_new(invited, json_pack("{s:s, s:b}", "name", c.invitees[i], "sent", s == 0));
  }
  free(c.invitees);
  json_object_set_new(out, "invited", invited);
  char loc[128];
  snprintf(loc, sizeof loc, "/client/v1/meetings/%s", c.m.id);
  http_add_header(req, MHD_HTTP_HEADER_LOCATION, loc);
  return http_reply_json(req, MHD_HTTP_CREATED, out);
}

/* ---- GET /client/v1/meetings, GET /client/v1/meetings/{id} ------------------------------------ */

static void append_meeting(const store_meeting_t *m, void *ctx) {
  json_array_append_new(ctx, meeting_json(m));
}

enum MHD_Result meeting_api_list(http_request_t *req) {
  enum MHD_Result reply;
  char name[65];
  int64_t id = 0;
  if (user_of(req, name, &id, &reply) < 0) return reply;
  json_t *list = json_array();
  store_txn_t *t;
  int r = store_read_begin(A.store, "meeting: list", &t);
  if (r == 0) {
    r = store_meeting_list(t, id, 100, append_meeting, list);
    store_read_end(t);
  }
  if (r < 0) {
    json_decref(list);
    return http_reply_store_failed(req);
  }
  return http_reply_json(req, MHD_HTTP_OK, json_pack("{s:o}", "meetings", list));
}

static const char *last_segment(const char *path, size_t skip_from_end) {
  static __thread char seg[128];
  const char *end = path + strlen(path);
  for (size_t i = 0; i < skip_from_end && end > path; i++) {
    while (end > path && end[-1] != '/') end--;
    if (end > path) end--;
  }
  const char *start = end;
  while (start > path && start[-1] != '/') start--;
  snprintf(seg, sizeof seg, "%.*s", (int)(end - start), start);
  return seg;
}

static int meeting_load(const char *id, store_meeting_t *m) {
  if (strlen(id) > STORE_MEETING_ID_MAX) return -ENOENT;
  store_txn_t *t;
  int r = store_read_begin(A.store, "meeting: get", &t);
  if (r == 0) {
    r = store_meeting_get(t, id, m);
    store_read_end(t);
  }
  return r;
}

static enum MHD_Result reply_no_meeting(http_request_t *req) {
  return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "no_meeting", "No such meeting",
                            "There is no meeting with this link.", NULL);
}

enum MHD_Result meeting_api_get(http_request_t *req) {
  enum MHD_Result reply;
  char name[65];
  int64_t uid = 0;
  if (user_of(req, name, &uid, &reply) < 0) return reply;
  store_meeting_t m;
  int r = meeting_load(last_segment(http_path(req), 0), &m);
  if (r == -ENOENT) return reply_no_meeting(req);
  if (r < 0) return http_reply_store_failed(req);
  return http_reply_json(req, MHD_HTTP_OK, meeting_json(&m));
}

/* ---- tickets -------------------------------------------------------------------------------- */

typedef struct expired {
  int64_t now;
  char keys[64][48];
  size_t n;
} expired_t;

static void find_expired(const void *key, size_t len, void *value, void *vctx) {
  expired_t *e = vctx;
  const ticket_t *t = value;
  if (t->expires_ms <= e->now && e->n < 64 && len < sizeof e->keys[0]) {
    memcpy(e->keys[e->n], key, len);
    e->keys[e->n++][len] = '\0';
  }
}

enum MHD_Result meeting_api_ticket(http_request_t *req) {
  if (!meeting_enabled()) return reply_off(req);
  enum MHD_Result reply;
  char name[65];
  int64_t uid = 0;
  if (user_of(req, name, &uid, &reply) < 0) return reply;
  store_meeting_t m;
  int r = meeting_load(last_segment(http_path(req), 1), &m);
  if (r == -ENOENT) return reply_no_meeting(req);
  if (r < 0) return http_reply_store_failed(req);
  if (m.ended_at[0])
    return http_reply_problem(req, MHD_HTTP_GONE, "meeting_ended", "The meeting has ended",
                              m.end_reason[0] ? m.end_reason : "The meeting has ended.", NULL);
  ticket_t *tk = calloc(1, sizeof *tk);
  if (!tk) return http_reply_oom(req);
  snprintf(tk->meeting, sizeof tk->meeting, "%s", m.id);
  snprintf(tk->user, sizeof tk->user, "%s", name);
  int64_t now = time_now_ms();
  tk->expires_ms = now + MEETING_TICKET_SECONDS * 1000;
  uint8_t raw[24];
  randombytes_buf(raw, sizeof raw);
  char text[48];
  sodium_bin2base64(text, sizeof text, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  pthread_mutex_lock(&A.lock);
  if (!A.tickets) A.tickets = map_new();
  /* Expired tickets go as new ones come: the map stays bounded by the rate
   * of requests in one ticket lifetime. */
  expired_t e = {.now = now};
  if (A.tickets) map_each(A.tickets, find_expired, &e);
  for (size_t i = 0; i < e.n; i++) free(map_del_str(A.tickets, e.keys[i]));
  r = A.tickets && map_count(A.tickets) < 100000 ? map_put_str(A.tickets, text, tk) : -ENOSPC;
  pthread_mutex_unlock(&A.lock);
  if (r < 0) {
    free(tk);
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Too many tickets",
                              "Too many meeting tickets are outstanding; try again shortly.",
                              NULL);
  }
  char expires[TIMEFMT_LEN];
  time_rfc3339_ms(tk->expires_ms, expires);
  char url[PUBLISHED_URL_MAX];
  meeting_join_url(m.id, url, sizeof url);
  char page[PUBLISHED_URL_MAX + 64];
  snprintf(page, sizeof page, "%s&ticket=%s", url, text);
  return http_reply_json(req, MHD_HTTP_OK,
                         json_pack("{s:s, s:s, s:s, s:b}", "ticket", text, "expires", expires,
                                   "page_url", page, "host", strcmp(m.host_name, name) == 0));
}

bool meeting_ticket_take(const char *ticket, const char *id, char user[65]) {
  bool ok = false;
  pthread_mutex_lock(&A.lock);
  ticket_t *t = A.tickets ? map_del_str(A.tickets, ticket) : NULL;
  pthread_mutex_unlock(&A.lock);
  if (t && t->expires_ms > time_now_ms() && strcmp(t->meeting, id) == 0) {
    snprintf(user, 65, "%s", t->user);
    ok = true;
  }
  free(t);
  return ok;
}
