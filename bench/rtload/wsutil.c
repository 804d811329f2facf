#include "wsutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int wsu_parse_url(const char *url, wsu_url_t *out, char *err, size_t errlen) {
  static const char scheme[] = "ws://";
  memset(out, 0, sizeof *out);
  if (strncmp(url, scheme, sizeof scheme - 1) != 0) {
    snprintf(err, errlen, "--url must start with ws:// (the generator speaks no TLS), got \"%s\"", url);
    return -EINVAL;
  }
  const char *h = url + sizeof scheme - 1;
  size_t hlen = strcspn(h, ":/");
  if (hlen == 0 || hlen >= sizeof out->host) {
    snprintf(err, errlen, "--url must name a host of 1 to %zu characters", sizeof out->host - 1);
    return -EINVAL;
  }
  memcpy(out->host, h, hlen);
  const char *p = h + hlen;
  if (*p == ':') {
    p++;
    size_t plen = strspn(p, "0123456789");
    if (plen == 0 || plen >= sizeof out->port || (p[plen] != '\0' && p[plen] != '/')) {
      snprintf(err, errlen, "--url port must be a number of 1 to 5 digits");
      return -EINVAL;
    }
    memcpy(out->port, p, plen);
    p += plen;
  } else {
    strcpy(out->port, "80");
  }
  if (*p == '\0')
    p = "/";
  if (strlen(p) >= sizeof out->path) {
    snprintf(err, errlen, "--url path must be shorter than %zu characters", sizeof out->path);
    return -EINVAL;
  }
  strcpy(out->path, p);
  return 0;
}

void wsu_base64(const uint8_t *in, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0, o = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63];
    out[o++] = tab[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
}

static uint32_t rol(uint32_t v, int s) { return v << s | v >> (32 - s); }

static void sha1_block(uint32_t h[5], const uint8_t *b) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
  for (int i = 16; i < 80; i++)
    w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) {
      f = (bb & c) | (~bb & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = bb ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (bb & c) | (bb & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = bb ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol(bb, 30);
    bb = a;
    a = t;
  }
  h[0] += a;
  h[1] += bb;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void wsu_sha1(const uint8_t *data, size_t n, uint8_t digest[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t i = 0;
  for (; i + 64 <= n; i += 64)
    sha1_block(h, data + i);
  uint8_t tail[128];
  size_t rest = n - i;
  memcpy(tail, data + i, rest);
  tail[rest++] = 0x80;
  size_t total = rest + 8 <= 64 ? 64 : 128;
  memset(tail + rest, 0, total - rest);
  uint64_t bits = (uint64_t)n * 8;
  for (int j = 0; j < 8; j++)
    tail[total - 1 - j] = (uint8_t)(bits >> (8 * j));
  sha1_block(h, tail);
  if (total == 128)
    sha1_block(h, tail + 64);
  for (int j = 0; j < 5; j++) {
    digest[4 * j] = (uint8_t)(h[j] >> 24);
    digest[4 * j + 1] = (uint8_t)(h[j] >> 16);
    digest[4 * j + 2] = (uint8_t)(h[j] >> 8);
    digest[4 * j + 3] = (uint8_t)h[j];
  }
}

void wsu_accept_for_key(const char *key, char *accept) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  char buf[128];
  size_t kl = strlen(key);
  if (kl > sizeof buf - sizeof guid)
    kl = sizeof buf - sizeof guid;
  memcpy(buf, key, kl);
  memcpy(buf + kl, guid, sizeof guid - 1);
  uint8_t d[20];
  wsu_sha1((const uint8_t *)buf, kl + sizeof guid - 1, d);
  wsu_base64(d, sizeof d, accept);
}

/* xorshift64*: masks only need to differ between frames on loopback; the
 * proxy-poisoning threat that asks for strong masks (RFC 6455 10.3) needs
 * an intermediary, and a CSPRNG per frame would cost the generator CPU that
 * the measurement should not include. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

void wsu_rand_seed(uint64_t seed) { rng_state = seed ? seed : 0x9E3779B97F4A7C15ull; }

uint64_t wsu_rand64(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1Dull;
}
