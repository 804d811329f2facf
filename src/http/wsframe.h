/* WebSocket framing (RFC 6455), server side, without I/O: an incremental
 * parser of what a client sends and the header of what the server sends.
 * Pure functions over a small state, fuzzed (tests/fuzz/fuzz_ws_frame.c).
 *
 * The parser keeps no buffer while a connection is idle: a message that
 * arrives whole in one read is unmasked in place and handed over from the
 * caller's buffer; only a message split across reads or frames is gathered
 * in a buffer of its own, freed when it is complete. That is what lets
 * twenty thousand idle clients cost a few hundred bytes each here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  WSF_CONTINUATION = 0x0,
  WSF_TEXT = 0x1,
  WSF_BINARY = 0x2,
  WSF_CLOSE = 0x8,
  WSF_PING = 0x9,
  WSF_PONG = 0xA,
};

/* Close codes the parser asks for. */
enum {
  WSF_CLOSE_PROTOCOL = 1002,
  WSF_CLOSE_INVALID_DATA = 1007, /* text that is not UTF-8 */
  WSF_CLOSE_TOO_BIG = 1009,
};

typedef struct wsf_parser {
  size_t max_message;
  /* the frame being read */
  uint8_t head[14];
  uint8_t head_len;
  bool in_payload;
  uint8_t opcode;
  bool fin;
  uint8_t mask[4];
  uint64_t left;     /* payload bytes still to come */
  uint64_t unmasked; /* payload bytes unmasked so far (the mask's phase) */
  /* a control frame's payload (at most 125 bytes) */
  uint8_t ctrl[125];
  uint8_t ctrl_len;
  /* a data message in progress */
  bool in_message;
  uint8_t msg_opcode;
  uint8_t *msg; /* gathered payload, or NULL */
  size_t msg_len, msg_cap;
  uint32_t utf8_state; /* of the text gathered so far */
} wsf_parser_t;

/* What the parser found: a whole message (WSF_TEXT, WSF_BINARY) or a
 * control frame (WSF_CLOSE, WSF_PING, WSF_PONG). data is valid until the
 * callback returns. A non-zero return stops the parse and is returned by
 * wsf_feed (the caller's own reason to stop, e.g. the connection closed). */
typedef int (*wsf_event_fn)(void *ctx, uint8_t opcode, const uint8_t *data, size_t len);

void wsf_init(wsf_parser_t *p, size_t max_message);
/* Frees what a message in progress holds. */
void wsf_clear(wsf_parser_t *p);
/* Parses len bytes (unmasked in place, so data is changed). 0; a close
 * code (WSF_CLOSE_*) when the client broke the protocol and must be closed
 * with it; or the callback's non-zero return. -ENOMEM when a message could
 * not be gathered. */
int wsf_feed(wsf_parser_t *p, uint8_t *data, size_t len, wsf_event_fn fn, void *ctx);

/* The header of a server frame (FIN set, not masked) of `len` payload
 * bytes: its length, at most 10. */
size_t wsf_header(uint8_t out[10], uint8_t opcode, uint64_t len);

/* UTF-8 validation as the parser does it, for whole strings (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
bool wsf_utf8_valid(const uint8_t *s, size_t len);
