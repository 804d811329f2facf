#include "atrium_frames.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const atf_states[] = {"available", "away", "busy", "dnd", "offline"};

int atf_state_valid(const char *state) {
  for (size_t i = 0; i < sizeof atf_states / sizeof atf_states[0]; i++)
    if (strcmp(state, atf_states[i]) == 0)
      return 1;
  return 0;
}

static int digits(const char *s, int n) {
  for (int i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i]))
      return 0;
  return 1;
}

int atf_rfc3339_valid(const char *s) {
  if (strlen(s) < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
      (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) ||
      s[16] != ':' || !digits(s + 17, 2))
    return 0;
  const char *p = s + 19;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return 0;
    while (isdigit((unsigned char)*p))
      p++;
  }
  if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
    return 1;
  return (*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) && p[6] == '\0';
}

static char *dump(json_t *o, char *err, size_t errlen) {
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!s)
    snprintf(err, errlen, "out of memory while encoding a frame");
  return s;
}

char *atf_chat_send(const char *to, const char *text, size_t text_len, const char *id, char *err, size_t errlen) {
  if (!to || !strchr(to, '@')) {
    snprintf(err, errlen, "chat.send \"to\" must be an address name@domain");
    return NULL;
  }
  if (text_len > ATF_TEXT_MAX) {
    snprintf(err, errlen, "chat.send \"text\" must be at most %d bytes, got %zu", ATF_TEXT_MAX, text_len);
    return NULL;
  }
  if (!id || !*id) {
    snprintf(err, errlen, "chat.send needs an \"id\" to be answered with ok");
    return NULL;
  }
  json_t *t = json_stringn(text, text_len);
  if (!t) {
    snprintf(err, errlen, "chat.send \"text\" must be UTF-8");
    return NULL;
  }
  return dump(json_pack("{s:s, s:s, s:o, s:s}", "type", "chat.send", "to", to, "text", t, "id", id), err, errlen);
}

char *atf_presence_set(const char *state, const char *note, const char *id, char *err, size_t errlen) {
  if (!state || !atf_state_valid(state)) {
    snprintf(err, errlen, "presence.set \"state\" must be available, away, busy, dnd or offline");
    return NULL;
  }
  json_t *o = json_pack("{s:s, s:s}", "type", "presence.set", "state", state);
  if (o && note && json_object_set_new(o, "note", json_string(note)) != 0) {
    json_decref(o);
    snprintf(err, errlen, "presence.set \"note\" must be UTF-8");
    return NULL;
  }
  if (o && id)
    json_object_set_new(o, "id", json_string(id));
  return dump(o, err, errlen);
}

char *atf_presence_watch(const char *const *addresses, size_t n, const char *id, char *err, size_t errlen) {
  json_t *a = json_array();
  if (!a) {
    snprintf(err, errlen, "out of memory while encoding a frame");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    if (!addresses[i] || !strchr(addresses[i], '@')) {
      json_decref(a);
      snprintf(err, errlen, "presence.watch \"addresses\"[%zu] must be an address name@domain", i);
      return NULL;
    }
    json_array_append_new(a, json_string(addresses[i]));
  }
  json_t *o = json_pack("{s:s, s:o}", "type", "presence.watch", "addresses", a);
  if (o && id)
    json_object_set_new(o, "id", json_string(id));
  return dump(o, err, errlen);
}

void atf_frame_clear(atf_frame_t *f) {
  json_decref(f->root);
  memset(f, 0, sizeof *f);
}

/* A required string member; NULL with err set when missing or not a
 * string. */
static const char *req_str(json_t *o, const char *type, const char *key, char *err, size_t errlen) {
  json_t *v = json_object_get(o, key);
  if (!v) {
    snprintf(err, errlen, "%s frame: \"%s\" is required", type, key);
    return NULL;
  }
  if (!json_is_string(v)) {
    snprintf(err, errlen, "%s frame: \"%s\" must be a string", type, key);
    return NULL;
  }
  return json_string_value(v);
}

static const char *opt_str(json_t *o, const char *type, const char *key, int *bad, char *err, size_t errlen) {
  json_t *v = json_object_get(o, key);
  if (!v)
    return NULL;
  if (!json_is_string(v)) {
    snprintf(err, errlen, "%s frame: \"%s\" must be a string when present", type, key);
    *bad = 1;
    return NULL;
  }
  return json_string_value(v);
}

static int req_time(const char *v, const char *type, const char *key, char *err, size_t errlen) {
  if (atf_rfc3339_valid(v))
    return 0;
  snprintf(err, errlen, "%s frame: \"%s\" must be an RFC 3339 date-time, got \"%.40s\"", type, key, v);
  return -EINVAL;
}

static int req_address(const char *v, const char *type, const char *key, char *err, size_t errlen) {
  const char *at = strchr(v, '@');
  if (at && at != v && at[1] && !strchr(at + 1, '@'))
    return 0;
  snprintf(err, errlen, "%s frame: \"%s\" must be an address name@domain, got \"%.60s\"", type, key, v);
  return -EINVAL;
}

static int decode_fields(atf_frame_t *f, const char *type, char *err, size_t errlen) {
  json_t *o = f->root;
  int bad = 0;
  f->id = opt_str(o, type, "id", &bad, err, errlen);
  if (bad)
    return -EINVAL;
  switch (f->type) {
  case ATF_HELLO:
    if (!(f->user = req_str(o, type, "user", err, errlen)) ||
        !(f->address = req_str(o, type, "address", err, errlen)) ||
        !(f->session = req_str(o, type, "session", err, errlen)) ||
        !(f->server_time = req_str(o, type, "server_time", err, errlen)))
      return -EINVAL;
    if (req_address(f->address, type, "address", err, errlen) < 0 ||
        req_time(f->server_time, type, "server_time", err, errlen) < 0)
      return -EINVAL;
    return 0;
  case ATF_OK:
    if (!f->id) {
      snprintf(err, errlen, "ok frame: \"id\" must be a string (an ok answers a request's id)");
      return -EINVAL;
    }
    /* An ok to chat.send carries message_id and time; an ok to other
     * requests need not, so both are checked only when present. */
    f->message_id = opt_str(o, type, "message_id", &bad, err, errlen);
    f->time = opt_str(o, type, "time", &bad, err, errlen);
    if (bad || (f->time && req_time(f->time, type, "time", err, errlen) < 0))
      return -EINVAL;
    return 0;
  case ATF_ERROR: {
    json_t *st = json_object_get(o, "status");
    if (!json_is_integer(st) || json_integer_value(st) < 100 || json_integer_value(st) > 599) {
      snprintf(err, errlen, "error frame: \"status\" must be an HTTP status number 100..599");
      return -EINVAL;
    }
    f->status = json_integer_value(st);
    if (!(f->detail = req_str(o, type, "detail", err, errlen)))
      return -EINVAL;
    return 0;
  }
  case ATF_CHAT: {
    if (!(f->message_id = req_str(o, type, "message_id", err, errlen)) ||
        !(f->from = req_str(o, type, "from", err, errlen)) || !(f->to = req_str(o, type, "to", err, errlen)) ||
        !(f->text = req_str(o, type, "text", err, errlen)) || !(f->time = req_str(o, type, "time", err, errlen)))
      return -EINVAL;
    f->text_len = json_string_length(json_object_get(o, "text"));
    if (req_address(f->from, type, "from", err, errlen) < 0 || req_address(f->to, type, "to", err, errlen) < 0 ||
        req_time(f->time, type, "time", err, errlen) < 0)
      return -EINVAL;
    return 0;
  }
  case ATF_PRESENCE:
    if (!(f->address = req_str(o, type, "address", err, errlen)) ||
        !(f->state = req_str(o, type, "state", err, errlen)) || !(f->since = req_str(o, type, "since", err, errlen)))
      return -EINVAL;
    f->note = opt_str(o, type, "note", &bad, err, errlen);
    if (bad || req_address(f->address, type, "address", err, errlen) < 0 ||
        req_time(f->since, type, "since", err, errlen) < 0)
      return -EINVAL;
    if (!atf_state_valid(f->state)) {
      snprintf(err, errlen, "presence frame: \"state\" must be available, away, busy, dnd or offline, got \"%.20s\"",
               f->state);
      return -EINVAL;
    }
    return 0;
  case ATF_BYE:
    if (!(f->reason = req_str(o, type, "reason", err, errlen)))
      return -EINVAL;
    return 0;
  case ATF_OTHER:
    return 0;
  }
  return 0;
}

int atf_decode(const char *s, size_t n, atf_frame_t *f, char *err, size_t errlen) {
  memset(f, 0, sizeof *f);
  json_error_t je;
  f->root = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
  if (!f->root) {
    snprintf(err, errlen, "frame is not JSON: %s at byte %d", je.text, je.position);
    return -EINVAL;
  }
  if (!json_is_object(f->root)) {
    snprintf(err, errlen, "frame must be a JSON object");
    atf_frame_clear(f);
    return -EINVAL;
  }
  json_t *t = json_object_get(f->root, "type");
  if (!json_is_string(t)) {
    snprintf(err, errlen, "frame: \"type\" must be a string");
    atf_frame_clear(f);
    return -EINVAL;
  }
  const char *type = json_string_value(t);
  static const struct {
    const char *name;
    atf_type_t type;
  } types[] = {{"hello", ATF_HELLO}, {"ok", ATF_OK},           {"error", ATF_ERROR},
               {"chat", ATF_CHAT},   {"presence", ATF_PRESENCE}, {"bye", ATF_BYE}};
  f->type = ATF_OTHER;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(type, types[i].name) == 0)
      f->type = types[i].type;
  if (decode_fields(f, type, err, errlen) < 0) {
    atf_frame_clear(f);
    return -EINVAL;
  }
  return 0;
}
