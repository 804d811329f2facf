/* The HTTP layer's own parsing of what a client sends: the request path,
 * headers (If-Match, Content-Type, Authorization, X-Forwarded-For, Host)
 * and query numbers. Pure functions on strings, no libmicrohttpd, so that
 * a fuzzer and the unit tests can drive them directly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* If-Match: "5", 5, or * (any version). *version = -1 for absent or "*".
 * -EINVAL for anything else (weak tags, lists, garbage). */
int http_parse_if_match(const char *header, int64_t *version);
/* A decimal integer in [min, max], digits only (no sign, no spaces, no
 * leading '+'). NULL or absent gives *out = dflt. -EINVAL / -ERANGE. */
int http_parse_int_param(const char *text, int64_t min, int64_t max, int64_t dflt, int64_t *out);
/* true for "application/json", optionally with "; charset=utf-8". */
bool http_content_type_is_json(const char *header);
/* The token from "Bearer <token>" (scheme case-insensitive), or NULL. */
const char *http_bearer_token(const char *authorization);

/* A request path as libmicrohttpd hands it over, percent-decoded: true when
 * it starts with '/', is well-formed UTF-8 and holds no control character.
 * Anything else cannot be a path of ours, and would otherwise reach problem
 * documents (JSON must be UTF-8) and log lines. */
bool http_path_acceptable(const char *path, size_t len);

/* Decodes %XX escapes in place (an invalid escape stays as it is), as
 * libmicrohttpd would, except that %00 becomes DEL: a NUL would cut the
 * C string short, so "/healthz%00x" would pass for "/healthz", while DEL is
 * a control character that http_path_acceptable and the validators refuse.
 * Returns the new length. */
size_t http_unescape(char *s);

/* host[:port] with the characters of DNS names and address literals only, so
 * that the value can go into a URL or a page without further escaping. */
bool http_plain_authority(const char *s);

/* Whether a hop's address (text, IPv4 or IPv6) is a trusted proxy. */
typedef bool (*http_trust_fn)(const char *address, void *ctx);

/* The client behind trusted proxies, from X-Forwarded-For read right to
 * left: each trusted hop vouches for the one before it; the first untrusted
 * address is the client (anything further left is its claim). Starts from
 * the TCP peer, already known to be trusted, in out (len bytes); writes the
 * chosen address into out. Stops at the first entry that is no address. */
void http_forwarded_client(const char *xff, http_trust_fn trusted, void *ctx, char *out,
                           size_t len);
