/* libFuzzer target for the HTTP layer's own parsing (src/http/parse.c): the
 * request path after %-decoding, If-Match, Content-Type, Authorization,
 * X-Forwarded-For, Host and query numbers all come straight from a client.
 * The input is one such text (cut at its first NUL, as a header is), run
 * through every helper. Besides crashes it checks their contracts: an
 * accepted path is UTF-8 without control characters, decoding never grows
 * the text nor leaves a NUL in it, a parsed number is within its bounds,
 * the forwarded client is an address, a bearer token lies inside its header. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/parse.h"
#include "http/wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool trust_odd(const char *address, void *ctx) {
  (void)ctx;
  /* Some hops trusted, some not, decided by the text itself. */
  return strlen(address) % 2 == 1;
}

static bool is_address(const char *s) {
  unsigned char b[16];
  return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  size_t len = strlen(s);

  /* The path as libmicrohttpd would hand it over: decoded in place. */
  char *path = strdup(s);
  if (path) {
    size_t n = http_unescape(path);
    if (n > len || strlen(path) != n) abort();
    if (http_path_acceptable(path, n)) {
      if (path[0] != '/' || !wsf_utf8_valid((const uint8_t *)path, n)) abort();
      for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f) abort();
        if (c == 0xc2 && i + 1 < n && (unsigned char)path[i + 1] < 0xa0) abort();
      }
    }
    free(path);
  }
  /* The raw bytes too, with their length (a NUL inside is refused). */
  if (http_path_acceptable((const char *)data, size) && memchr(data, 0, size)) abort();

  int64_t v = 0;
  if (http_parse_if_match(s, &v) == 0 && v < -1) abort();
  if (http_parse_int_param(s, 3, 1000, 7, &v) == 0 && (v < 3 || v > 1000)) abort();

  if (http_content_type_is_json(s)) {
    const char *p = s + strspn(s, " \t");
    if (strncasecmp(p, "application/json", 16) != 0) abort();
  }

  const char *tok = http_bearer_token(s);
  if (tok && (tok < s || tok >= s + len || *tok == '\0')) abort();

  if (http_plain_authority(s))
    for (const char *p = s; *p; p++)
      if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]", *p))
        abort();

  char client[INET6_ADDRSTRLEN] = "192.0.2.1";
  http_forwarded_client(s, trust_odd, NULL, client, sizeof client);
  if (!memchr(client, '\0', sizeof client) || !is_address(client)) abort();

  free(s);
  return 0;
}
