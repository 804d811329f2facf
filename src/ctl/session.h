/* How every atriumctl command reaches the server: which URL and token to use
 * (--url/--token, ATRIUM_URL/ATRIUM_TOKEN, then the file saved by `login`),
 * and one request with its failure handling, so that every command exits
 * with the same code and prints the same sentences for the same answer. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ctl/client.h"
#include "ctl/commands.h"

#define CTL_DEFAULT_URL "http://127.0.0.1:8080"

/* Two server URLs name the same server: case-insensitive, trailing '/' ignored. */
bool ctl_same_url(const char *a, const char *b);

enum ctl_auth { CTL_AUTH_NONE, CTL_AUTH_REQUIRED };

/* Makes ctx->client from --url/--token, the environment and the file saved by
 * `login`, in that order. The saved token is only used for the URL it was
 * issued by, so pointing --url elsewhere never hands it to another server.
 * With CTL_AUTH_REQUIRED and no token: a sentence and CTL_EXIT_AUTH. */
int ctl_connect(ctl_ctx_t *ctx, enum ctl_auth auth);

/* One request and its failure handling. For a 2xx answer: CTL_EXIT_OK, *resp
 * (when resp is not NULL; else it is released here) and, when doc is not
 * NULL, *doc = the body as JSON (NULL for 204 No Content). Otherwise an exit
 * code after printing why (with --json the server's document to stdout too).
 * body may hold a secret: the caller wipes it; it is never printed here. */
int ctl_call(ctl_ctx_t *ctx, const char *method, const char *path, const char *body, size_t len,
             const char *if_match, ctl_response_t *resp, json_t **doc);

/* ctl_call with a JSON body, which is wiped after sending. */
int ctl_call_json(ctl_ctx_t *ctx, const char *method, const char *path, const json_t *body,
                  const char *if_match, ctl_response_t *resp, json_t **doc);

/* The body as received, newline-terminated (what --json prints). */
void ctl_print_raw(const ctl_response_t *resp);
/* v indented by two, newline-terminated. */
void ctl_print_json(const json_t *v);

/* Percent-encodes everything but unreserved characters and '@' (a user or
 * account name as one path segment or query value); cut to fit outlen. */
void ctl_url_escape(const char *in, char *out, size_t outlen);
