/* libFuzzer target for the meeting's text frames (src/mod/meeting/wire.c):
 * every byte a participant's WebSocket sends as text goes through it.
 * Besides crashes it checks the contract: a refusal has a status and a
 * sentence, an accepted frame's fields hold the limits the room relies on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mod/meeting/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mframe_t f;
  int status = 0;
  char err[300];
  err[0] = '\0';
  if (mframe_parse((const char *)data, size, &f, &status, err, sizeof err) != 0) {
    if ((status != 400 && status != 413 && status != 422 && status != 503) || !err[0]) abort();
    return 0;
  }
  switch (f.type) {
  case MF_JOIN:
    if (!f.consent || !f.name[0] || strlen(f.name) > MEETING_NAME_MAX) abort();
    break;
  case MF_CHAT:
    if (!f.text[0] || strlen(f.text) > MEETING_CHAT_MAX) abort();
    break;
  case MF_ADMIT:
  case MF_REMOVE:
  case MF_PRESENT:
    if (f.participant[0] != 'p' || strlen(f.participant) < 2) abort();
    break;
  case MF_PING:
    if (f.data && strlen(f.data) > MEETING_PING_DATA_MAX) abort();
    break;
  default: break;
  }
  mframe_clear(&f);
  return 0;
}
