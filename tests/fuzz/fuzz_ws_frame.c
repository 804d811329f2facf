/* libFuzzer target for the WebSocket frame parser (src/http/wsframe.c):
 * every byte a WebSocket client sends goes through it. The input is fed in
 * pieces whose sizes come from its first byte, so that split headers,
 * split masks and split UTF-8 are reached. Besides crashes it checks the
 * contract: no message over the size limit, every text message valid UTF-8,
 * control payloads at most 125 bytes, and a refusal is one of the three
 * close codes or the memory failure. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/wsframe.h"

#define MAX_MESSAGE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(void *ctx, uint8_t opcode, const uint8_t *d, size_t len) {
  (void)ctx;
  if (opcode == WSF_TEXT || opcode == WSF_BINARY) {
    if (len > MAX_MESSAGE) abort();
    if (opcode == WSF_TEXT && !wsf_utf8_valid(d, len)) abort();
  } else if (opcode == WSF_CLOSE || opcode == WSF_PING || opcode == WSF_PONG) {
    if (len > 125) abort();
  } else {
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = (size_t)(data[0] % 16) + 1;
  uint8_t *buf = malloc(size);
  if (!buf) return 0;
  memcpy(buf, data + 1, size - 1);
  wsf_parser_t p;
  wsf_init(&p, MAX_MESSAGE);
  int r = 0;
  for (size_t at = 0; at < size - 1 && r == 0; at += step)
    r = wsf_feed(&p, buf + at, size - 1 - at < step ? size - 1 - at : step, check, NULL);
  if (r != 0 && r != WSF_CLOSE_PROTOCOL && r != WSF_CLOSE_INVALID_DATA && r != WSF_CLOSE_TOO_BIG &&
      r != -ENOMEM)
    abort();
  wsf_clear(&p);
  free(buf);
  return 0;
}
