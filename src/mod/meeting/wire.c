/* See wire.h. */
#include "mod/meeting/wire.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  mframe_type_t type;
} types[] = {
    {"join", MF_JOIN},       {"chat", MF_CHAT}, {"admit", MF_ADMIT}, {"remove", MF_REMOVE},
    {"present", MF_PRESENT}, {"end", MF_END},   {"ack", MF_ACK},     {"stats", MF_STATS},
    {"ping", MF_PING},
};

static int fail(int *status, int code, char *err, size_t errlen, const char *msg) {
  *status = code;
  snprintf(err, errlen, "%s", msg);
  return -EINVAL;
}

static bool control_free(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return false;
  return true;
}

/* An unsigned 32-bit member; false when absent or not one. */
static bool u32_member(const json_t *root, const char *key, uint32_t *out) {
  const json_t *v = json_object_get(root, key);
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
    return false;
  *out = (uint32_t)json_integer_value(v);
  return true;
}

int mframe_parse(const char *data, size_t len, mframe_t *out, int *status, char *err,
                 size_t errlen) {
  memset(out, 0, sizeof *out);
  json_error_t je;
  json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(root)) {
    json_decref(root);
    return fail(status, 400, err, errlen, "A frame must be a JSON object.");
  }
  int r = -EINVAL;
  const char *type = json_string_value(json_object_get(root, "type"));
  size_t i = 0;
  while (type && i < sizeof types / sizeof types[0] && strcmp(type, types[i].name) != 0) i++;
  if (!type || i == sizeof types / sizeof types[0]) {
    fail(status, 400, err, errlen,
         "type must be one of join, chat, admit, remove, present, end, ack, stats, ping.");
    goto out;
  }
  out->type = types[i].type;
  snprintf(out->type_name, sizeof out->type_name, "%s", type);
  const json_t *v;
  switch (out->type) {
  case MF_JOIN: {
    const char *name = json_string_value(json_object_get(root, "name"));
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MEETING_NAME_MAX || !control_free(name) || name[0] == ' ' ||
        name[n - 1] == ' ') {
      fail(status, 422, err, errlen,
           "name must be 1 to 100 bytes without control characters or leading and trailing "
           "spaces.");
      goto out;
    }
    v = json_object_get(root, "consent");
    if (!json_is_true(v)) {
      fail(status, 422, err, errlen,
           "consent must be true: guests accept the privacy policy before they join.");
      goto out;
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    out->consent = true;
    break;
  }
  case MF_CHAT: {
    v = json_object_get(root, "text");
    const char *text = json_string_value(v);
    size_t n = text ? json_string_length(v) : 0;
    if (!text || n == 0 || strlen(text) != n) {
      fail(status, 400, err, errlen, "text must be a non-empty string without NUL characters.");
      goto out;
    }
    if (n > MEETING_CHAT_MAX) {
      fail(status, 413, err, errlen, "text is longer than 2000 bytes.");
      goto out;
    }
    memcpy(out->text, text, n + 1);
    break;
  }
  case MF_ADMIT:
  case MF_REMOVE:
  case MF_PRESENT: {
    const char *p = json_string_value(json_object_get(root, "participant"));
    if (!p || p[0] != 'p' || strlen(p) < 2 || strlen(p) > MEETING_PID_MAX ||
        strspn(p + 1, "0123456789") != strlen(p + 1)) {
      fail(status, 400, err, errlen, "participant must be a participant's id (\"p3\").");
      goto out;
    }
    snprintf(out->participant, sizeof out->participant, "%s", p);
    break;
  }
  case MF_ACK:
    if (!u32_member(root, "frame", &out->frame)) {
      fail(status, 400, err, errlen, "frame must be the number of the frame painted.");
      goto out;
    }
    if (json_object_get(root, "decode_ms") && !u32_member(root, "decode_ms", &out->decode_ms)) {
      fail(status, 400, err, errlen,
           "decode_ms must be the milliseconds from arrival to paint, a whole number.");
      goto out;
    }
    if (out->decode_ms > 60000) out->decode_ms = 60000;
    break;
  case MF_PING:
    v = json_object_get(root, "data");
    if (v && (!json_is_string(v) || json_string_length(v) > MEETING_PING_DATA_MAX ||
              strlen(json_string_value(v)) != json_string_length(v))) {
      fail(status, 400, err, errlen, "data must be a string of at most 64 KiB.");
      goto out;
    }
    if (v && !(out->data = strdup(json_string_value(v)))) {
      fail(status, 503, err, errlen, "Out of memory.");
      goto out;
    }
    break;
  case MF_END:
  case MF_STATS: break;
  }
  r = 0;
out:
  json_decref(root);
  return r;
}

void mframe_clear(mframe_t *f) {
  free(f->data);
  f->data = NULL;
}
