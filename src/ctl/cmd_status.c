/* atriumctl status: see cmd_status.h. */
#include "ctl/cmd_status.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ctl/client.h"
#include "ctl/session.h"

static const char *str(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

static void print_status(const json_t *doc) {
  printf("Atrium %s: %s (checked %s; running since %s)\n\n", str(doc, "version"), str(doc, "state"),
         str(doc, "checked_at"), str(doc, "started_at"));
  int width = 6;
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(doc, "modules"), i, m) {
    int n = (int)strlen(str(m, "name"));
    if (n > width) width = n;
  }
  printf("%-*s  %-8s  %s\n", width, "MODULE", "STATE", "WHAT IT DOES");
  json_array_foreach(json_object_get(doc, "modules"), i, m) {
    printf("%-*s  %-8s  %s\n", width, str(m, "name"), str(m, "state"), str(m, "sentence"));
    if (str(m, "last_error")[0]) {
      const char *at = str(m, "last_error_at");
      printf("%-*s  %-8s  last error%s%s: %s\n", width, "", "", at[0] ? " at " : "", at,
             str(m, "last_error"));
    }
  }
  const json_t *warnings = json_object_get(doc, "warnings");
  if (json_array_size(warnings) > 0) {
    printf("\nConfiguration warnings (saved, but cannot work as set):\n");
    json_t *w;
    json_array_foreach(warnings, i, w) printf("  %s: %s\n", str(w, "key"), str(w, "message"));
  }
  const json_t *c = json_object_get(doc, "clients");
  long long users = (long long)json_integer_value(json_object_get(c, "users"));
  long long conns = (long long)json_integer_value(json_object_get(c, "connections"));
  printf("\nConnected: %lld user%s, %lld client connection%s (atriumctl presence lists them)\n",
         users, users == 1 ? "" : "s", conns, conns == 1 ? "" : "s");
}

int ctl_cmd_status(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  if (optind < argc) return ctl_usage(cmd, "unexpected argument '%s'", argv[optind]);
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK) return code;
  json_t *doc = NULL;
  if ((code = ctl_call(ctx, "GET", "/api/v1/status", NULL, 0, NULL, NULL, &doc)) != CTL_EXIT_OK)
    return code;
  if (ctx->json)
    ctl_print_json(doc);
  else
    print_status(doc);
  bool failing = strcmp(str(doc, "state"), "failing") == 0;
  json_decref(doc);
  return failing ? CTL_EXIT_FAILING : CTL_EXIT_OK;
}
