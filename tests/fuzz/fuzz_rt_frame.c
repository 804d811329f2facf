/* libFuzzer target for the client frame parser (src/mod/rt/frame.c): every
 * byte a client WebSocket sends goes through it. Besides crashes it checks
 * the contract: a refusal has a status and a sentence, an accepted frame's
 * fields hold the limits the hub relies on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mod/rt/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rt_frame_t f;
  int status = 0;
  char err[300];
  err[0] = '\0';
  int r = rt_frame_parse((const char *)data, size, &f, &status, err, sizeof err);
  if (r != 0) {
    if ((status != 400 && status != 413) || !err[0]) abort();
  } else {
    if (f.has_id && (!f.id[0] || strlen(f.id) > RT_ID_MAX)) abort();
    switch (f.type) {
    case RT_FRAME_CHAT_SEND:
      if (!rt_address_ok(f.to) || !f.text || f.text_len == 0 || f.text_len > RT_TEXT_MAX ||
          strlen(f.text) != f.text_len)
        abort();
      break;
    case RT_FRAME_TYPING:
      if (!rt_address_ok(f.to)) abort();
      break;
    case RT_FRAME_PRESENCE_SET:
      if (f.state >= RT_STATE_COUNT || (f.has_note && strlen(f.note) > RT_NOTE_MAX)) abort();
      break;
    case RT_FRAME_PRESENCE_WATCH:
    case RT_FRAME_PRESENCE_UNWATCH: {
      size_t n = json_array_size(f.addresses);
      if (n == 0 || n > RT_WATCH_PER_FRAME) abort();
      for (size_t i = 0; i < n; i++)
        if (!rt_address_ok(json_string_value(json_array_get(f.addresses, i)))) abort();
      break;
    }
    case RT_FRAME_CHAT_RECEIVED:
    case RT_FRAME_CHAT_READ:
      if (f.message_id == 0) abort();
      break;
    case RT_FRAME_PING: break;
    }
  }
  rt_frame_clear(&f);
  return 0;
}
