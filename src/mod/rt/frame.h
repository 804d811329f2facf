/* The frames clients send on /client/v1/ws (docs/protocols/client.md),
 * parsed and checked before anything acts on them: a pure function, fuzzed
 * (tests/fuzz/fuzz_rt_frame.c). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mod/rt/rt.h"

#define RT_ID_MAX 64
#define RT_WATCH_PER_FRAME 1000

typedef enum rt_frame_type {
  RT_FRAME_PRESENCE_SET,
  RT_FRAME_PRESENCE_WATCH,
  RT_FRAME_PRESENCE_UNWATCH,
  RT_FRAME_CHAT_SEND,
  RT_FRAME_CHAT_RECEIVED,
  RT_FRAME_CHAT_READ,
  RT_FRAME_TYPING,
  RT_FRAME_PING,
} rt_frame_type_t;

typedef struct rt_frame {
  rt_frame_type_t type;
  bool has_id;
  char id[RT_ID_MAX + 1];
  rt_state_t state;          /* presence.set */
  bool has_note;
  const char *note;          /* presence.set; borrowed from root */
  const json_t *addresses;   /* presence.(un)watch: an array of address strings */
  const char *to;            /* chat.send, typing */
  const char *text;          /* chat.send */
  size_t text_len;
  uint64_t message_id;       /* chat.received, chat.read */
  json_t *root;              /* owns what the pointers borrow */
} rt_frame_t;

/* Parses one text frame. 0 and *out filled (release with rt_frame_clear);
 * or -EINVAL with *status (an HTTP status: 400, or 413 for text over the cap)
 * and a sentence naming the field in err. out->id is kept even on failure
 * when it could be read, so that the error can carry it. */
int rt_frame_parse(const char *data, size_t len, rt_frame_t *out, int *status, char *err,
                   size_t errlen);
void rt_frame_clear(rt_frame_t *f); /* accepts NULL */
