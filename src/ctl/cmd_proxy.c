/* atriumctl proxy test: POST /api/v1/proxy/test with the given unsaved
 * proxy values (or {} for the saved ones) and the outcome as a sentence. */
#include "ctl/cmd_proxy.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl/client.h"
#include "ctl/config.h"
#include "ctl/input.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

static int usage(const ctl_command_t *cmd, const char *what) {
  fprintf(stderr, "error: %s\nusage: atriumctl [OPTIONS] %s %s\nTry 'atriumctl %s --help'.\n",
          what, cmd->name, cmd->usage, cmd->name);
  return CTL_EXIT_USAGE;
}

static bool same_url(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  while (na > 0 && a[na - 1] == '/') na--;
  while (nb > 0 && b[nb - 1] == '/') nb--;
  return na == nb && strncasecmp(a, b, na) == 0;
}

/* The server and token, in the order every command uses: --url/--token, the
 * environment, then the file saved by `login` (its token only for its URL). */
static int open_client(ctl_ctx_t *ctx) {
  ctl_saved_t saved = {0};
  if (ctl_saved_load(&saved) < 0)
    fprintf(stderr, "warning: ignoring the saved login: it cannot be read\n");
  const char *url = ctx->url_opt;
  if (!url || !url[0]) url = getenv("ATRIUM_URL");
  if (!url || !url[0]) url = saved.url;
  if (!url || !url[0]) url = DEFAULT_URL;
  const char *token = ctx->token_opt;
  if (!token || !token[0]) token = getenv("ATRIUM_TOKEN");
  if ((!token || !token[0]) && saved.token && saved.url && same_url(saved.url, url))
    token = saved.token;
  if (!token || !token[0]) {
    fprintf(stderr,
            "error: not logged in to %s: run 'atriumctl login' or pass a token (--token or "
            "ATRIUM_TOKEN)\n",
            url);
    ctl_saved_clear(&saved);
    return CTL_EXIT_AUTH;
  }
  ctl_client_free(ctx->client);
  ctx->client = ctl_client_new(url, token, ctx->cacert, ctx->verbose);
  ctl_saved_clear(&saved);
  if (!ctx->client) {
    fprintf(stderr, "error: cannot start the HTTP client (out of memory?)\n");
    return CTL_EXIT_SERVER;
  }
  return CTL_EXIT_OK;
}

/* One request; CTL_EXIT_OK with *resp for a 2xx answer, else an exit code
 * after saying why. */
static int request(ctl_ctx_t *ctx, const char *method, const char *path, const char *body,
                   size_t len, ctl_response_t *resp) {
  char err[512] = "";
  int r = ctl_request(ctx->client, method, path, body, len, NULL, resp, err, sizeof err);
  if (r < 0) {
    fprintf(stderr, "error: %s\n", err[0] ? err : strerror(-r));
    return r == -EINVAL ? CTL_EXIT_USAGE
                        : r == -EHOSTUNREACH ? CTL_EXIT_UNREACHABLE : CTL_EXIT_SERVER;
  }
  int code = ctl_exit_for_status(resp->status);
  if (code != CTL_EXIT_OK) {
    if (ctx->json && resp->len > 0) {
      fwrite(resp->body, 1, resp->len, stdout);
      fputc('\n', stdout);
    }
    ctl_print_problem(resp);
    ctl_response_clear(resp);
  }
  return code;
}

/* KEY=VALUE arguments into the request body, typed by the server's schema. */
static int build_body(ctl_ctx_t *ctx, const ctl_command_t *cmd, int count, char **pairs,
                      json_t **body) {
  if (count == 0) {
    *body = json_object();
    return *body ? CTL_EXIT_OK : CTL_EXIT_SERVER;
  }
  for (int i = 0; i < count; i++)
    if (!strchr(pairs[i], '=') || pairs[i][0] == '=') {
      char what[300];
      snprintf(what, sizeof what, "'%.200s' is not KEY=VALUE", pairs[i]);
      return usage(cmd, what);
    }
  ctl_response_t resp;
  int code = request(ctx, "GET", "/api/v1/settings/schema", NULL, 0, &resp);
  if (code != CTL_EXIT_OK) return code;
  json_t *schema = ctl_response_json(&resp);
  ctl_response_clear(&resp);
  if (!schema) {
    fprintf(stderr, "error: the server's settings schema is not JSON\n");
    return CTL_EXIT_SERVER;
  }
  char err[512] = "";
  int r = ctl_build_settings_body(schema, pairs, count, body, err, sizeof err);
  json_decref(schema);
  if (r == -EINVAL) return usage(cmd, err);
  if (r < 0) {
    fprintf(stderr, "error: %s\n", err[0] ? err : strerror(-r));
    return r == -ENOMEM ? CTL_EXIT_SERVER : CTL_EXIT_USAGE;
  }
  return CTL_EXIT_OK;
}

static void print_result(const json_t *doc) {
  const char *message = json_string_value(json_object_get(doc, "message"));
  const char *stage = json_string_value(json_object_get(doc, "stage"));
  json_t *status = json_object_get(doc, "http_status");
  json_t *elapsed = json_object_get(doc, "elapsed_ms");
  printf("%s\n", message ? message : "(no message)");
  printf("stage: %s", stage ? stage : "?");
  if (json_is_integer(status)) printf(", HTTP %" JSON_INTEGER_FORMAT, json_integer_value(status));
  if (json_is_integer(elapsed))
    printf(", %" JSON_INTEGER_FORMAT " ms", json_integer_value(elapsed));
  putchar('\n');
}

int ctl_cmd_proxy(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  opterr = 0;
  /* Leading ':' so that we word the message about a missing argument ourselves. */
  while ((c = getopt_long(argc, argv, ":hv", ctl_global_options, NULL)) != -1) {
    if (ctl_apply_global_option(ctx, c, optarg)) continue;
    if (c == CTL_OPT_HELP) {
      ctl_print_command_help(stdout, cmd);
      return CTL_EXIT_OK;
    }
    if (c == CTL_OPT_VERSION) {
      printf("atriumctl %s\n", ATRIUM_VERSION);
      return CTL_EXIT_OK;
    }
    char what[128];
    snprintf(what, sizeof what, "%s %.64s", c == ':' ? "a value is missing after" : "unknown option",
             argv[optind - 1]);
    return usage(cmd, what);
  }
  if (optind >= argc) return usage(cmd, "say what to do: 'proxy test'");
  if (strcmp(argv[optind], "test") != 0) {
    char what[128];
    snprintf(what, sizeof what, "unknown subcommand '%.64s'; the one there is: test",
             argv[optind]);
    return usage(cmd, what);
  }
  optind++;

  int code = open_client(ctx);
  if (code != CTL_EXIT_OK) return code;
  json_t *body = NULL;
  code = build_body(ctx, cmd, argc - optind, argv + optind, &body);
  if (code != CTL_EXIT_OK) return code;
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (!text) {
    fprintf(stderr, "error: out of memory\n");
    return CTL_EXIT_SERVER;
  }
  size_t len = strlen(text);
  ctl_response_t resp;
  code = request(ctx, "POST", "/api/v1/proxy/test", text, len, &resp);
  explicit_bzero(text, len); /* it may carry a password */
  free(text);
  if (code != CTL_EXIT_OK) return code;

  json_t *doc = ctl_response_json(&resp);
  if (!doc || !json_is_boolean(json_object_get(doc, "ok"))) {
    fprintf(stderr, "error: the server's answer is not a test result\n");
    json_decref(doc);
    ctl_response_clear(&resp);
    return CTL_EXIT_SERVER;
  }
  if (ctx->json) {
    fwrite(resp.body, 1, resp.len, stdout);
    if (resp.len == 0 || resp.body[resp.len - 1] != '\n') fputc('\n', stdout);
  } else {
    print_result(doc);
  }
  code = json_is_true(json_object_get(doc, "ok")) ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}
