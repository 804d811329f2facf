/* atriumctl's HTTP client: one libcurl easy handle, one request at a time,
 * responses kept whole in memory, and the problem documents (RFC 9457) of the
 * daemon turned into sentences on stderr.
 *
 * The bearer token is held here and only ever sent in the Authorization
 * header: nothing in this module prints it, not even with verbose on. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Exit codes of atriumctl: a contract with scripts, documented in --help and
 * docs/cli.md. */
enum ctl_exit {
  CTL_EXIT_OK = 0,
  CTL_EXIT_REFUSED = 1,     /* the server refused the request: 400, 413, 422 */
  CTL_EXIT_USAGE = 2,       /* bad arguments */
  CTL_EXIT_UNREACHABLE = 3, /* connection refused, DNS, TLS, timeout */
  CTL_EXIT_AUTH = 4,        /* 401, 403, 429, or no token at all */
  CTL_EXIT_CONFLICT = 5,    /* 409, 412 */
  CTL_EXIT_SERVER = 6,      /* 5xx or a response we cannot make sense of */
};

typedef struct ctl_client ctl_client_t;

typedef struct ctl_response {
  long status;
  char *body; /* NUL-terminated; may contain NULs before len in theory, never trusted as text */
  size_t len;
  char *content_type; /* without parameters, lower case; NULL when absent */
} ctl_response_t;

/* base_url: "http://host:port[/prefix]" (a trailing '/' is dropped). token and
 * cacert may be NULL. Returns NULL on out of memory or when libcurl cannot
 * start. */
ctl_client_t *ctl_client_new(const char *base_url, const char *token, const char *cacert,
                             bool verbose);
void ctl_client_free(ctl_client_t *c);
const char *ctl_client_url(const ctl_client_t *c);
bool ctl_client_has_token(const ctl_client_t *c);

/* Sends one request. body (len bytes) is sent as application/json when not
 * NULL; if_match, when not NULL, goes into If-Match. Returns 0 when an HTTP
 * response arrived, whatever its status (*resp filled, release with
 * ctl_response_clear); -EINVAL for a URL libcurl refuses; -EHOSTUNREACH when
 * the server could not be reached (err holds a sentence); -ENOMEM. */
int ctl_request(ctl_client_t *c, const char *method, const char *path, const char *body,
                size_t len, const char *if_match, ctl_response_t *resp, char *err, size_t errlen);
void ctl_response_clear(ctl_response_t *resp);

/* The exit code for an HTTP status (see enum ctl_exit). */
int ctl_exit_for_status(long status);

/* The body parsed as JSON, or NULL when it is not JSON. New reference. */
json_t *ctl_response_json(const ctl_response_t *resp);

/* "error: <title>: <detail>" and one line per entry of "errors" to stderr;
 * a sentence naming the status when the body is not a problem document. */
void ctl_print_problem(const ctl_response_t *resp);
