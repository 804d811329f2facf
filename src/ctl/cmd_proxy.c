/* atriumctl proxy test: POST /api/v1/proxy/test with the given unsaved
 * proxy values (or {} for the saved ones) and the outcome as a sentence. */
#include "ctl/cmd_proxy.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ctl/client.h"
#include "ctl/session.h"

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
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  if (optind >= argc)
    return ctl_usage(cmd, "say what to do: 'proxy test'");
  if (strcmp(argv[optind], "test") != 0)
    return ctl_usage(cmd, "unknown subcommand '%.64s'; the one there is: test", argv[optind]);
  optind++;

  /* No values: {} tests the saved settings. Otherwise they are typed by the
   * schema as for `set`, and the server accepts only proxy.* keys. */
  json_t *body = NULL;
  int code;
  if (optind == argc) {
    code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
    body = code == CTL_EXIT_OK ? json_object() : NULL;
    if (code == CTL_EXIT_OK && !body)
      code = CTL_EXIT_SERVER;
  } else {
    code = ctl_settings_body(ctx, cmd, argc - optind, argv + optind, &body);
  }
  if (code != CTL_EXIT_OK)
    return code;
  ctl_response_t resp;
  json_t *doc;
  code = ctl_call_json(ctx, "POST", "/api/v1/proxy/test", body, NULL, &resp, &doc);
  json_decref(body);
  if (code != CTL_EXIT_OK)
    return code;
  if (!json_is_boolean(json_object_get(doc, "ok"))) {
    fprintf(stderr, "error: the server's answer is not a test result\n");
    code = CTL_EXIT_SERVER;
  } else {
    if (ctx->json)
      ctl_print_raw(&resp);
    else
      print_result(doc);
    code = json_is_true(json_object_get(doc, "ok")) ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
  }
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}
