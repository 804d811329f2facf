/* atriumctl push test|status. */
#include "ctl/cmd_push.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ctl/client.h"
#include "ctl/session.h"

static const char *str(const json_t *o, const char *k, const char *dflt) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : dflt;
}

static void print_test(const json_t *doc) {
  printf("%s\n", str(doc, "message", "(no message)"));
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(doc, "stages"), i, s) {
    printf("  %-7s %-4s %s\n", str(s, "stage", "?"),
           json_is_true(json_object_get(s, "ok")) ? "ok" : "FAIL", str(s, "detail", ""));
  }
  json_t *elapsed = json_object_get(doc, "elapsed_ms");
  if (json_is_integer(elapsed))
    printf("provider %s, %" JSON_INTEGER_FORMAT " ms\n", str(doc, "provider", "?"),
           json_integer_value(elapsed));
}

static void print_counts(const char *what, const json_t *o) {
  printf("%s:", what);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) printf(" %s %" JSON_INTEGER_FORMAT, k, json_integer_value(v));
  putchar('\n');
}

static void print_status(const json_t *doc) {
  printf("%s: %s\n", str(doc, "state", "?"), str(doc, "sentence", ""));
  const char *err = str(doc, "last_error", "");
  if (*err) printf("last error: %s\n", err);
  const json_t *ob = json_object_get(doc, "outbox");
  printf("outbox: %" JSON_INTEGER_FORMAT " pending, the oldest %.1f s old\n",
         json_integer_value(json_object_get(ob, "pending")),
         json_number_value(json_object_get(ob, "oldest_pending_s")));
  print_counts("sent", json_object_get(doc, "sent"));
  print_counts("failed", json_object_get(doc, "failed"));
  printf("tokens removed %" JSON_INTEGER_FORMAT ", retries %" JSON_INTEGER_FORMAT
         ", streams lost %" JSON_INTEGER_FORMAT ", expired %" JSON_INTEGER_FORMAT "\n",
         json_integer_value(json_object_get(doc, "pruned")),
         json_integer_value(json_object_get(doc, "retried")),
         json_integer_value(json_object_get(doc, "lost_streams")),
         json_integer_value(json_object_get(doc, "expired")));
}

int ctl_cmd_push(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  static const struct option opts[] = {
      {"provider", required_argument, NULL, 'P'},
      {"token", required_argument, NULL, 'T'},
      {"user", required_argument, NULL, 'U'},
      {NULL, 0, NULL, 0},
  };
  const char *provider = NULL, *token = NULL, *user = NULL;
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", opts)) != CTL_OPTIONS_DONE) {
    if (c == 'P') provider = optarg;
    else if (c == 'T') token = optarg;
    else if (c == 'U') user = optarg;
    else return ctl_option_exit(c);
  }
  if (optind >= argc) return ctl_usage(cmd, "say what to do: 'push test' or 'push status'");
  bool test = strcmp(argv[optind], "test") == 0;
  if (!test && strcmp(argv[optind], "status") != 0)
    return ctl_usage(cmd, "unknown subcommand '%.64s'; there are: test, status", argv[optind]);
  if (++optind < argc) return ctl_usage(cmd, "takes no further arguments");
  if (!test && (provider || token || user))
    return ctl_usage(cmd, "'push status' takes no options");
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK) return code;
  ctl_response_t resp;
  json_t *doc;
  if (test) {
    json_t *body = json_object();
    if (!body) return CTL_EXIT_SERVER;
    if (provider) json_object_set_new(body, "provider", json_string(provider));
    if (token) json_object_set_new(body, "token", json_string(token));
    if (user) json_object_set_new(body, "user", json_string(user));
    code = ctl_call_json(ctx, "POST", "/api/v1/push/test", body, NULL, &resp, &doc);
    json_decref(body);
  } else {
    code = ctl_call(ctx, "GET", "/api/v1/push/status", NULL, 0, NULL, &resp, &doc);
  }
  if (code != CTL_EXIT_OK) return code;
  if (ctx->json) {
    ctl_print_raw(&resp);
  } else if (test && json_object_get(doc, "queued")) {
    printf("%s\n", str(doc, "message", ""));
  } else if (test) {
    print_test(doc);
  } else {
    print_status(doc);
  }
  if (test) code = json_is_true(json_object_get(doc, "ok")) ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}
