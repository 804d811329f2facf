#include "http/wsframe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------------------------ */

/* The state is the number of continuation bytes still due (bits 0-7) and
 * the range the next one must lie in (bits 8-15 low, 16-23 high): the
 * ranges after E0, ED, F0 and F4 are what rules out overlong forms,
 * surrogates and code points above U+10FFFF. */
#define UTF8_BAD 0xFFFFFFFFu

static uint32_t utf8_state(uint32_t rem, uint32_t lo, uint32_t hi) {
  return rem | lo << 8 | hi << 16;
}

static uint32_t utf8_step(uint32_t s, uint8_t b) {
  uint32_t rem = s & 0xFF;
  if (rem == 0) {
    if (b < 0x80) return 0;
    if (b >= 0xC2 && b <= 0xDF) return utf8_state(1, 0x80, 0xBF);
    if (b == 0xE0) return utf8_state(2, 0xA0, 0xBF);
    if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return utf8_state(2, 0x80, 0xBF);
    if (b == 0xED) return utf8_state(2, 0x80, 0x9F);
    if (b == 0xF0) return utf8_state(3, 0x90, 0xBF);
    if (b >= 0xF1 && b <= 0xF3) return utf8_state(3, 0x80, 0xBF);
    if (b == 0xF4) return utf8_state(3, 0x80, 0x8F);
    return UTF8_BAD;
  }
  uint32_t lo = (s >> 8) & 0xFF, hi = (s >> 16) & 0xFF;
  if (b < lo || b > hi) return UTF8_BAD;
  return rem == 1 ? 0 : utf8_state(rem - 1, 0x80, 0xBF);
}

static uint32_t utf8_run(uint32_t s, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n && s != UTF8_BAD; i++) s = utf8_step(s, p[i]);
  return s;
}

bool wsf_utf8_valid(const uint8_t *s, size_t len) { return utf8_run(0, s, len) == 0; }

/* ---- the parser ---------------------------------------------------------------------------- */

void wsf_init(wsf_parser_t *p, size_t max_message) {
  memset(p, 0, sizeof *p);
  p->max_message = max_message;
}

void wsf_clear(wsf_parser_t *p) {
  free(p->msg);
  p->msg = NULL;
  p->msg_len = p->msg_cap = 0;
  p->in_message = false;
}

/* The header's length once its first two bytes are known. */
static size_t head_need(const wsf_parser_t *p) {
  if (p->head_len < 2) return 2;
  uint8_t len7 = p->head[1] & 0x7F;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
}

/* A complete header: the frame's rules (RFC 6455 5.2-5.5). 0 or a close code. */
static int begin_frame(wsf_parser_t *p) {
  uint8_t b0 = p->head[0], b1 = p->head[1];
  if (b0 & 0x70) return WSF_CLOSE_PROTOCOL; /* no extension was negotiated */
  if (!(b1 & 0x80)) return WSF_CLOSE_PROTOCOL; /* a client masks every frame */
  p->fin = b0 & 0x80;
  p->opcode = b0 & 0x0F;
  uint8_t len7 = b1 & 0x7F;
  uint64_t len = len7;
  size_t at = 2;
  if (len7 == 126) {
    len = (uint64_t)p->head[2] << 8 | p->head[3];
    if (len < 126) return WSF_CLOSE_PROTOCOL; /* the shortest form is required */
    at = 4;
  } else if (len7 == 127) {
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | p->head[2 + i];
    if (len >> 63 || len < 65536) return WSF_CLOSE_PROTOCOL;
    at = 10;
  }
  memcpy(p->mask, p->head + at, 4);
  bool control = p->opcode & 0x08;
  if (control) {
    if (p->opcode != WSF_CLOSE && p->opcode != WSF_PING && p->opcode != WSF_PONG)
      return WSF_CLOSE_PROTOCOL;
    if (!p->fin || len > 125 || (p->opcode == WSF_CLOSE && len == 1)) return WSF_CLOSE_PROTOCOL;
  } else if (p->opcode == WSF_CONTINUATION) {
    if (!p->in_message) return WSF_CLOSE_PROTOCOL;
  } else if (p->opcode == WSF_TEXT || p->opcode == WSF_BINARY) {
    if (p->in_message) return WSF_CLOSE_PROTOCOL; /* a new message inside a fragmented one */
    p->in_message = true;
    p->msg_opcode = p->opcode;
    p->msg_len = 0;
    p->utf8_state = 0;
  } else {
    return WSF_CLOSE_PROTOCOL;
  }
  if (!control && len > p->max_message - p->msg_len) return WSF_CLOSE_TOO_BIG;
  p->left = len;
  p->unmasked = 0;
  p->ctrl_len = 0;
  p->in_payload = true;
  p->head_len = 0;
  return 0;
}

static int gather(wsf_parser_t *p, const uint8_t *d, size_t n) {
  if (p->msg_len + n > p->msg_cap) {
    size_t cap = p->msg_cap ? p->msg_cap : 256;
    while (cap < p->msg_len + n) cap *= 2;
    if (cap > p->max_message) cap = p->max_message;
    uint8_t *m = realloc(p->msg, cap ? cap : 1);
    if (!m) return -ENOMEM;
    p->msg = m;
    p->msg_cap = cap;
  }
  memcpy(p->msg + p->msg_len, d, n);
  p->msg_len += n;
  return 0;
}

/* The frame's payload is complete (whole: the message is in `direct`). */
static int end_frame(wsf_parser_t *p, const uint8_t *direct, size_t direct_len, wsf_event_fn fn,
                     void *ctx) {
  p->in_payload = false;
  if (p->opcode & 0x08) {
    if (p->opcode == WSF_CLOSE && p->ctrl_len >= 2) {
      unsigned code = (unsigned)p->ctrl[0] << 8 | p->ctrl[1];
      bool known = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                   (code >= 3000 && code <= 4999);
      if (!known || !wsf_utf8_valid(p->ctrl + 2, p->ctrl_len - 2u)) return WSF_CLOSE_PROTOCOL;
    }
    return fn(ctx, p->opcode, p->ctrl, p->ctrl_len);
  }
  if (!p->fin) return 0;
  if (p->msg_opcode == WSF_TEXT && p->utf8_state != 0) return WSF_CLOSE_INVALID_DATA;
  int r = direct ? fn(ctx, p->msg_opcode, direct, direct_len)
                 : fn(ctx, p->msg_opcode, p->msg ? p->msg : (const uint8_t *)"", p->msg_len);
  wsf_clear(p);
  return r;
}

int wsf_feed(wsf_parser_t *p, uint8_t *data, size_t len, wsf_event_fn fn, void *ctx) {
  while (len) {
    if (!p->in_payload) {
      size_t need = head_need(p);
      while (p->head_len < need && len) {
        p->head[p->head_len++] = *data++;
        len--;
        need = head_need(p);
        /* An unmasked frame or a reserved bit is refused at once, not
         * after waiting for a mask that will not come. */
        if (p->head_len == 2 && ((p->head[0] & 0x70) || !(p->head[1] & 0x80)))
          return WSF_CLOSE_PROTOCOL;
      }
      if (p->head_len < need) return 0;
      int r = begin_frame(p);
      if (r) return r;
      if (p->left == 0 && (r = end_frame(p, NULL, 0, fn, ctx))) return r;
      continue;
    }
    size_t n = p->left < len ? (size_t)p->left : len;
    for (size_t i = 0; i < n; i++) data[i] ^= p->mask[(p->unmasked + i) & 3];
    bool whole = p->unmasked == 0 && n == p->left;
    p->unmasked += n;
    p->left -= n;
    int r = 0;
    if (p->opcode & 0x08) {
      memcpy(p->ctrl + p->ctrl_len, data, n); /* begin_frame bounded it by 125 */
      p->ctrl_len = (uint8_t)(p->ctrl_len + n);
    } else {
      if (p->msg_opcode == WSF_TEXT) {
        p->utf8_state = utf8_run(p->utf8_state, data, n);
        if (p->utf8_state == UTF8_BAD) return WSF_CLOSE_INVALID_DATA;
      }
      /* A message that is one frame, all in this read, is handed over
       * from the caller's buffer: nothing is copied or kept. */
      if (!(whole && p->fin && p->msg_len == 0) && (r = gather(p, data, n))) return r;
    }
    const uint8_t *start = data;
    data += n;
    len -= n;
    if (p->left == 0) {
      bool direct = !(p->opcode & 0x08) && whole && p->fin && p->msg_len == 0;
      if ((r = end_frame(p, direct ? start : NULL, n, fn, ctx))) return r;
    }
  }
  return 0;
}

size_t wsf_header(uint8_t out[10], uint8_t opcode, uint64_t len) {
  out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
  if (len < 126) {
    out[1] = (uint8_t)len;
    return 2;
  }
  if (len < 65536) {
    out[1] = 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
  return 10;
}
