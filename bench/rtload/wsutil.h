/* WebSocket client helpers: the handshake key and its expected accept
 * value (RFC 6455 4.1), base64, and ws:// URL parsing. */
#ifndef RTLOAD_WSUTIL_H
#define RTLOAD_WSUTIL_H

#include <stddef.h>
#include <stdint.h>

#define WSU_KEY_LEN 24    /* base64 of 16 bytes, without the NUL */
#define WSU_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1, without the NUL */

typedef struct wsu_url {
  char host[256];
  char port[8];
  char path[1024];
} wsu_url_t;

/* Parses "ws://host[:port][/path]". Returns 0, or -EINVAL with a sentence
 * in err. */
int wsu_parse_url(const char *url, wsu_url_t *out, char *err, size_t errlen);

/* Standard base64 with padding; out must hold 4*ceil(n/3)+1 bytes. */
void wsu_base64(const uint8_t *in, size_t n, char *out);

void wsu_sha1(const uint8_t *data, size_t n, uint8_t digest[20]);

/* accept = base64(SHA-1(key + the RFC 6455 GUID)); accept holds
 * WSU_ACCEPT_LEN + 1 bytes. */
void wsu_accept_for_key(const char *key, char *accept);

/* A fast non-cryptographic generator for handshake keys and frame masks. */
uint64_t wsu_rand64(void);
void wsu_rand_seed(uint64_t seed);

#endif
