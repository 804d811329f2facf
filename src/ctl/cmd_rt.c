#include "ctl/cmd_rt.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ctl/client.h"
#include "ctl/session.h"

static const char *str(const json_t *o, const char *key, const char *dflt) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : dflt;
}

static void print_presence(const json_t *doc) {
  const json_t *users = json_object_get(doc, "users");
  if (!json_array_size(users)) {
    printf("No client is connected.\n");
    return;
  }
  size_t i, j;
  const json_t *u, *c;
  json_array_foreach(users, i, u) {
    const char *note = str(u, "note", NULL);
    printf("%s  %s%s%s%s  since %s\n", str(u, "address", "?"), str(u, "state", "?"),
           note ? " (\"" : "", note ? note : "", note ? "\")" : "", str(u, "since", "?"));
    json_array_foreach(json_object_get(u, "connections"), j, c) {
      printf("  %-8s %-10s from %-39s %s  connected %s\n", str(c, "session", "?"),
             str(c, "client", "?"), str(c, "address", "?"), str(c, "state", "?"),
             str(c, "connected_at", "?"));
    }
  }
  printf("%" JSON_INTEGER_FORMAT " connection(s) of %zu user(s)\n",
         json_integer_value(json_object_get(doc, "connections")), json_array_size(users));
}

int ctl_cmd_presence(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  if (optind < argc) return ctl_usage(cmd, "takes no arguments");
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK) return code;
  ctl_response_t resp;
  json_t *doc;
  code = ctl_call(ctx, "GET", "/api/v1/presence", NULL, 0, NULL, &resp, &doc);
  if (code != CTL_EXIT_OK) return code;
  if (!json_is_array(json_object_get(doc, "users"))) {
    fprintf(stderr, "error: the server's answer is not a presence list\n");
    code = CTL_EXIT_SERVER;
  } else if (ctx->json) {
    ctl_print_raw(&resp);
  } else {
    print_presence(doc);
  }
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}

static void print_days(const char *what, const json_t *days) {
  if (json_is_integer(days) && json_integer_value(days) == 0)
    printf("%-10s deleted once delivered (0 days)\n", what);
  else if (json_is_integer(days))
    printf("%-10s deleted after %" JSON_INTEGER_FORMAT " day(s)\n", what,
           json_integer_value(days));
  else
    printf("%-10s kept (atlas.xml gives no days)\n", what);
}

static void print_retention(const json_t *doc) {
  print_days("chats", json_object_get(doc, "im_delete_after_days"));
  print_days("journal", json_object_get(doc, "journal_delete_after_days"));
  const json_t *last = json_object_get(doc, "last_deleted");
  printf("last sweep %s: %" JSON_INTEGER_FORMAT " message(s), %" JSON_INTEGER_FORMAT
         " journal entr(y/ies) deleted%s\n",
         str(doc, "last_run", "(not yet)"), json_integer_value(json_object_get(last, "messages")),
         json_integer_value(json_object_get(last, "journal")),
         json_is_true(json_object_get(doc, "last_failed")) ? "; it stopped at a store failure"
                                                           : "");
  printf("next sweep %s\n", str(doc, "next_run", "(not planned)"));
  const char *atlas = str(doc, "atlas_error", NULL);
  if (atlas) printf("warning: nothing is deleted while atlas.xml is invalid: %s\n", atlas);
}

int ctl_cmd_retention(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  bool run = false;
  if (optind < argc) {
    if (strcmp(argv[optind], "run") != 0)
      return ctl_usage(cmd, "unknown subcommand '%.64s'; the one there is: run", argv[optind]);
    run = true;
    if (++optind < argc) return ctl_usage(cmd, "'retention run' takes no arguments");
  }
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK) return code;
  ctl_response_t resp;
  json_t *doc;
  if (run)
    code = ctl_call(ctx, "POST", "/api/v1/retention/run", "{}", 2, NULL, &resp, &doc);
  else
    code = ctl_call(ctx, "GET", "/api/v1/retention", NULL, 0, NULL, &resp, &doc);
  if (code != CTL_EXIT_OK) return code;
  if (!json_is_object(json_object_get(doc, "last_deleted"))) {
    fprintf(stderr, "error: the server's answer is not a retention state\n");
    code = CTL_EXIT_SERVER;
  } else {
    if (ctx->json)
      ctl_print_raw(&resp);
    else
      print_retention(doc);
    if (run && !json_is_true(json_object_get(doc, "finished"))) {
      fprintf(stderr, "The sweep is still running; 'atriumctl retention' shows when it ends.\n");
      code = CTL_EXIT_REFUSED;
    }
  }
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}
