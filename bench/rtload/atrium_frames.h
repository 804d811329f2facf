/* The frames of the client real-time contract (docs: shared spec
 * realtime.md) that the generator sends and reads: encoders produce
 * exactly the contract's fields, the decoder checks every field the
 * contract requires of a server frame and names the one that is wrong. */
#ifndef RTLOAD_ATRIUM_FRAMES_H
#define RTLOAD_ATRIUM_FRAMES_H

#include <jansson.h>
#include <stddef.h>

#define ATF_TEXT_MAX (16 * 1024) /* chat.send text limit, bytes of UTF-8 */

typedef enum atf_type {
  ATF_OTHER, /* a type the generator does not use (typing, chat.read, ...) */
  ATF_HELLO,
  ATF_OK,
  ATF_ERROR,
  ATF_CHAT,
  ATF_PRESENCE,
  ATF_BYE,
} atf_type_t;

typedef struct atf_frame {
  atf_type_t type;
  json_t *root; /* owns every string below */
  const char *id;
  /* hello */
  const char *user, *address, *session, *server_time;
  /* ok (chat.send answer) */
  const char *message_id, *time;
  /* error */
  long long status;
  const char *detail;
  /* chat */
  const char *from, *to, *text;
  size_t text_len;
  /* presence */
  const char *state, *note, *since;
  /* bye */
  const char *reason;
} atf_frame_t;

/* Encoders return a malloc'd compact JSON text (free with free()) or NULL
 * with a sentence in err. id may be NULL where the contract makes it
 * optional; note may be NULL. */
char *atf_chat_send(const char *to, const char *text, size_t text_len, const char *id, char *err, size_t errlen);
char *atf_presence_set(const char *state, const char *note, const char *id, char *err, size_t errlen);
char *atf_presence_watch(const char *const *addresses, size_t n, const char *id, char *err, size_t errlen);

/* Decodes one server frame. Returns 0 (release with atf_frame_clear), or
 * -EINVAL with a sentence naming the field and the rule. */
int atf_decode(const char *s, size_t n, atf_frame_t *f, char *err, size_t errlen);
void atf_frame_clear(atf_frame_t *f);

/* 1 if state is one of the contract's presence states. */
int atf_state_valid(const char *state);
/* 1 if s is an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM)). */
int atf_rfc3339_valid(const char *s);

#endif
