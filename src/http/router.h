/* The route table, built once at start from every module's rows, and the
 * per-route request counters that /metrics shows.
 *
 * A path pattern is a list of segments; "{name}" matches any one non-empty
 * segment. When several patterns match a path, the one with a literal
 * segment where the others have a parameter wins (left to right), so
 * "/api/v1/users/import" is found before "/api/v1/users/{name}" whatever the
 * order the modules listed them in. Two rows of the same method whose
 * patterns match exactly the same paths are a conflict: building fails with
 * a sentence naming both rows and their modules. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "http/http.h"

typedef struct http_route_set {
  const char *owner; /* the module, for conflict messages */
  const http_route_t *routes;
  size_t count;
} http_route_set_t;

typedef struct http_router http_router_t;

int http_router_build(const http_route_set_t *sets, size_t nsets, http_router_t **out, char *err,
                      size_t errlen);
void http_router_free(http_router_t *r); /* accepts NULL */

/* The route for (method, path) (a GET route also answers HEAD), or NULL;
 * then *allowed is the bit set (1u << http_method_t) of the methods the
 * path accepts (0: unknown path, 404; otherwise 405). *pattern is the index
 * of the matched path pattern, the key for the counters; for a path that no
 * pattern matches it is http_router_patterns(r). */
const http_route_t *http_router_match(const http_router_t *r, http_method_t method,
                                      const char *path, unsigned *allowed, size_t *pattern);
size_t http_router_patterns(const http_router_t *r);

/* Counts one answered request (lock-free). */
void http_router_count(http_router_t *r, size_t pattern, http_method_t method, unsigned status,
                       uint64_t micros);
/* atrium_http_requests_total and atrium_http_request_duration_seconds. */
void http_router_write_metrics(const http_router_t *r, FILE *f);
void http_router_reset_counters(http_router_t *r);

/* "GET, HEAD, PATCH" for an allowed bit set, into buf. */
void http_allow_header(unsigned allowed, char *buf, size_t len);
