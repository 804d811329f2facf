#include "mod/rt/frame.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const state_names[RT_STATE_COUNT] = {
    [RT_AVAILABLE] = "available", [RT_BUSY] = "busy", [RT_DND] = "dnd",
    [RT_AWAY] = "away",           [RT_OFFLINE] = "offline",
};

const char *rt_state_name(rt_state_t s) {
  return (unsigned)s < RT_STATE_COUNT ? state_names[s] : "offline";
}

rt_state_t rt_state_parse(const char *name) {
  for (int i = 0; name && i < RT_STATE_COUNT; i++)
    if (strcmp(name, state_names[i]) == 0) return (rt_state_t)i;
  return RT_STATE_COUNT;
}

static const struct {
  const char *name;
  rt_frame_type_t type;
} types[] = {
    {"presence.set", RT_FRAME_PRESENCE_SET},     {"presence.watch", RT_FRAME_PRESENCE_WATCH},
    {"presence.unwatch", RT_FRAME_PRESENCE_UNWATCH}, {"chat.send", RT_FRAME_CHAT_SEND},
    {"chat.received", RT_FRAME_CHAT_RECEIVED},   {"chat.read", RT_FRAME_CHAT_READ},
    {"typing", RT_FRAME_TYPING},                 {"ping", RT_FRAME_PING},
};

bool rt_address_ok(const char *s) {
  if (!s) return false;
  const char *at = strchr(s, '@');
  size_t n = strlen(s);
  if (!at || at == s || n > RT_ADDRESS_MAX || strchr(at + 1, '@')) return false;
  size_t local = (size_t)(at - s), host = n - local - 1;
  if (local > 64 || host < 1 || host > 255) return false;
  for (const char *p = s; p < at; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\'') return false;
  }
  /* Labels of 1-63 letters, digits and '-', not beginning or ending with '-'. */
  size_t label = 0;
  for (const char *p = at + 1;; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '.' || c == '\0') {
      if (label == 0 || label > 63 || p[-1] == '-') return false;
      if (c == '\0') return true;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-';
    if (!ok || (label == 0 && c == '-')) return false;
    label++;
  }
}

__attribute__((format(printf, 5, 6))) static int fail(int *status, int code, char *err,
                                                      size_t errlen, const char *fmt, ...) {
  *status = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

/* A string field of the frame; NULL when absent or not a string. */
static const char *text_of(const json_t *root, const char *key, size_t *len) {
  const json_t *v = json_object_get(root, key);
  if (!json_is_string(v)) return NULL;
  if (len) *len = json_string_length(v);
  return json_string_value(v);
}

static int message_id_of(const json_t *root, uint64_t *out) {
  const json_t *v = json_object_get(root, "message_id");
  const char *s = json_string_value(v);
  if (json_is_integer(v) && json_integer_value(v) > 0) {
    *out = (uint64_t)json_integer_value(v);
    return 0;
  }
  if (!s || !*s || strlen(s) > 19) return -EINVAL;
  uint64_t n = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -EINVAL;
    n = n * 10 + (uint64_t)(*p - '0');
  }
  if (!n) return -EINVAL;
  *out = n;
  return 0;
}

int rt_frame_parse(const char *data, size_t len, rt_frame_t *out, int *status, char *err,
                   size_t errlen) {
  memset(out, 0, sizeof *out);
  *status = 400;
  json_error_t jerr;
  json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) return fail(status, 400, err, errlen, "The frame is not JSON: %s.", jerr.text);
  out->root = root;
  if (!json_is_object(root))
    return fail(status, 400, err, errlen, "%s", "A frame is one JSON object with a \"type\".");
  const json_t *id = json_object_get(root, "id");
  if (id) {
    const char *s = json_string_value(id);
    if (!s || !*s || strlen(s) > RT_ID_MAX || strlen(s) != json_string_length(id))
      return fail(status, 400, err, errlen, "%s",
                  "\"id\" must be a string of 1 to 64 characters, your own to match the answer.");
    out->has_id = true;
    snprintf(out->id, sizeof out->id, "%s", s);
  }
  const char *type = text_of(root, "type", NULL);
  if (!type) return fail(status, 400, err, errlen, "%s", "The frame has no \"type\" string.");
  size_t t = 0;
  while (t < sizeof types / sizeof types[0] && strcmp(types[t].name, type) != 0) t++;
  if (t == sizeof types / sizeof types[0])
    return fail(status, 400, err, errlen,
                "\"%.40s\" is not a frame type of this protocol; see docs/protocols/client.md.",
                type);
  out->type = types[t].type;
  size_t n;
  switch (out->type) {
  case RT_FRAME_PRESENCE_SET: {
    out->state = rt_state_parse(text_of(root, "state", NULL));
    if (out->state == RT_STATE_COUNT)
      return fail(status, 400, err, errlen, "%s",
                  "\"state\" must be available, away, busy, dnd or offline.");
    const json_t *note = json_object_get(root, "note");
    if (note) {
      if (!json_is_string(note) || json_string_length(note) > RT_NOTE_MAX ||
          strlen(json_string_value(note)) != json_string_length(note))
        return fail(status, 400, err, errlen, "%s",
                    "\"note\" must be a string of at most 256 bytes (\"\" clears it).");
      out->has_note = true;
      out->note = json_string_value(note);
    }
    return 0;
  }
  case RT_FRAME_PRESENCE_WATCH:
  case RT_FRAME_PRESENCE_UNWATCH: {
    const json_t *a = json_object_get(root, "addresses");
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > RT_WATCH_PER_FRAME)
      return fail(status, 400, err, errlen, "%s",
                  "\"addresses\" must be a list of 1 to 1,000 addresses.");
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) {
      if (!rt_address_ok(json_string_value(v)))
        return fail(status, 400, err, errlen, "%s",
                    "Every entry of \"addresses\" must be an address such as alice@example.com.");
    }
    out->addresses = a;
    return 0;
  }
  case RT_FRAME_CHAT_SEND:
    out->to = text_of(root, "to", NULL);
    if (!rt_address_ok(out->to))
      return fail(status, 400, err, errlen, "%s",
                  "\"to\" must be the address of the recipient, such as bob@example.com.");
    out->text = text_of(root, "text", &out->text_len);
    if (!out->text || out->text_len == 0 || strlen(out->text) != out->text_len)
      return fail(status, 400, err, errlen, "%s",
                  "\"text\" must be a non-empty string without NUL characters.");
    if (out->text_len > RT_TEXT_MAX)
      return fail(status, 413, err, errlen, "%s",
                  "\"text\" is longer than 16 KiB; send it in several messages.");
    return 0;
  case RT_FRAME_TYPING:
    out->to = text_of(root, "to", &n);
    if (!rt_address_ok(out->to))
      return fail(status, 400, err, errlen, "%s",
                  "\"to\" must be the address of the one you are typing to.");
    return 0;
  case RT_FRAME_CHAT_RECEIVED:
  case RT_FRAME_CHAT_READ:
    if (message_id_of(root, &out->message_id) < 0)
      return fail(status, 400, err, errlen, "%s",
                  "\"message_id\" must be the message_id of a chat frame (a string of digits).");
    return 0;
  case RT_FRAME_PING: return 0;
  }
  return fail(status, 400, err, errlen, "%s", "Unknown frame.");
}

void rt_frame_clear(rt_frame_t *f) {
  if (!f) return;
  json_decref(f->root);
  memset(f, 0, sizeof *f);
}
