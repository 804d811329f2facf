/* The text frames participants send on the meeting's WebSocket
 * (docs/protocols/meeting.md), parsed and checked before anything acts on
 * them: a pure function, fuzzed (tests/fuzz/fuzz_meeting_frame.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mod/meeting/internal.h"

#define MEETING_PID_MAX 15

typedef enum mframe_type {
  MF_JOIN,    /* a guest: name, consent */
  MF_CHAT,    /* text */
  MF_ADMIT,   /* host: participant */
  MF_REMOVE,  /* host: participant */
  MF_PRESENT, /* host: participant becomes the presenter */
  MF_END,     /* host */
  MF_ACK,     /* viewer: frame, decode_ms */
  MF_STATS,   /* the screen share's counters */
  MF_PING,
} mframe_type_t;

typedef struct mframe {
  mframe_type_t type;
  char type_name[16]; /* as sent, for the error's "ref" ("" when unreadable) */
  char name[MEETING_NAME_MAX + 1];
  bool consent;
  char text[MEETING_CHAT_MAX + 1];
  char participant[MEETING_PID_MAX + 1];
  uint32_t frame;
  uint32_t decode_ms;
  char *data; /* ping: echoed in the pong (malloc'd, or NULL) */
} mframe_t;

#define MEETING_PING_DATA_MAX (64 * 1024)

/* 0 and *out; or -EINVAL with *status (400, or 413 for text over its cap,
 * 422 for a refused value) and a sentence naming the field in err. */
int mframe_parse(const char *data, size_t len, mframe_t *out, int *status, char *err,
                 size_t errlen);
void mframe_clear(mframe_t *f);
