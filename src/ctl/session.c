#include "ctl/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl/config.h"

bool ctl_same_url(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  while (na > 0 && a[na - 1] == '/')
    na--;
  while (nb > 0 && b[nb - 1] == '/')
    nb--;
  return na == nb && strncasecmp(a, b, na) == 0;
}

int ctl_connect(ctl_ctx_t *ctx, enum ctl_auth auth) {
  if (ctx->client) {
    ctl_client_free(ctx->client);
    ctx->client = NULL;
  }
  ctl_saved_t saved = {0};
  int r = ctl_saved_load(&saved);
  if (r < 0) {
    char *path = NULL;
    ctl_saved_path(&path);
    fprintf(stderr, "warning: ignoring %s: %s\n", path ? path : "the saved login",
            r == -EBADMSG ? "not a JSON object of strings" : strerror(-r));
    free(path);
  }
  const char *url = ctx->url_opt;
  if (!url || !url[0])
    url = getenv("ATRIUM_URL");
  if (!url || !url[0])
    url = saved.url;
  if (!url || !url[0])
    url = CTL_DEFAULT_URL;

  const char *token = NULL;
  ctx->token_from_saved = false;
  if (auth == CTL_AUTH_REQUIRED) {
    token = ctx->token_opt;
    if (!token || !token[0])
      token = getenv("ATRIUM_TOKEN");
    if ((!token || !token[0]) && saved.token && saved.url && ctl_same_url(saved.url, url)) {
      token = saved.token;
      ctx->token_from_saved = true;
    }
    if (!token || !token[0]) {
      fprintf(stderr,
              "error: not logged in to %s: run 'atriumctl login' or pass a token "
              "(--token or ATRIUM_TOKEN)\n",
              url);
      ctl_saved_clear(&saved);
      return CTL_EXIT_AUTH;
    }
  }
  ctx->client = ctl_client_new(url, token, ctx->cacert, ctx->verbose);
  ctl_saved_clear(&saved);
  if (!ctx->client) {
    fprintf(stderr, "error: cannot start the HTTP client (out of memory?)\n");
    return CTL_EXIT_SERVER;
  }
  return CTL_EXIT_OK;
}

void ctl_print_raw(const ctl_response_t *resp) {
  fwrite(resp->body, 1, resp->len, stdout);
  if (resp->len == 0 || resp->body[resp->len - 1] != '\n')
    fputc('\n', stdout);
}

void ctl_print_json(const json_t *v) {
  char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
  if (text)
    puts(text);
  free(text);
}

int ctl_call(ctl_ctx_t *ctx, const char *method, const char *path, const char *body, size_t len,
             const char *if_match, ctl_response_t *resp, json_t **doc) {
  char err[512] = "";
  ctl_response_t local;
  if (!resp)
    resp = &local;
  if (doc)
    *doc = NULL;
  int r = ctl_request(ctx->client, method, path, body, len, if_match, resp, err, sizeof(err));
  if (r < 0) {
    fprintf(stderr, "error: %s\n", err[0] ? err : strerror(-r));
    if (r == -EINVAL)
      return CTL_EXIT_USAGE;
    return r == -EHOSTUNREACH ? CTL_EXIT_UNREACHABLE : CTL_EXIT_SERVER;
  }
  int code = ctl_exit_for_status(resp->status);
  if (code != CTL_EXIT_OK) {
    if (ctx->json && resp->len > 0)
      ctl_print_raw(resp);
    ctl_print_problem(resp);
    if (resp->status == 401 && ctx->token_from_saved)
      fprintf(stderr, "hint: the saved session may have expired: run 'atriumctl login' again\n");
    ctl_response_clear(resp);
    return code;
  }
  /* 204 (a DELETE) has no document to parse: success with *doc NULL. */
  if (doc && resp->status != 204) {
    *doc = ctl_response_json(resp);
    if (!*doc) {
      fprintf(stderr, "error: the server answered %ld but not with JSON (%s)\n", resp->status,
              resp->content_type ? resp->content_type : "no content type");
      ctl_response_clear(resp);
      return CTL_EXIT_SERVER;
    }
  }
  if (resp == &local)
    ctl_response_clear(resp);
  return CTL_EXIT_OK;
}

int ctl_call_json(ctl_ctx_t *ctx, const char *method, const char *path, const json_t *body,
                  const char *if_match, ctl_response_t *resp, json_t **doc) {
  char *text = json_dumps(body, JSON_COMPACT);
  if (!text) {
    fprintf(stderr, "error: out of memory\n");
    return CTL_EXIT_SERVER;
  }
  size_t len = strlen(text);
  int code = ctl_call(ctx, method, path, text, len, if_match, resp, doc);
  explicit_bzero(text, len); /* it may carry a password or secret value */
  free(text);
  return code;
}

void ctl_url_escape(const char *in, char *out, size_t outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outlen; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~@", *p)) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
}
