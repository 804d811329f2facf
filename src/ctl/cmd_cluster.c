#include "ctl/cmd_cluster.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ctl/client.h"
#include "ctl/session.h"

static const char *str(const json_t *o, const char *key, const char *dflt) {
  const char *s = json_string_value(json_object_get(o, key));
  return s && *s ? s : dflt;
}

static json_int_t num(const json_t *o, const char *key) {
  return json_integer_value(json_object_get(o, key));
}

/* 0 when every live node is current and a node hosts. */
static int print_cluster(const json_t *doc) {
  const json_t *host = json_object_get(doc, "meeting_host");
  const json_t *settings = json_object_get(doc, "settings");
  printf("store %s, settings version %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
         " live node(s); asked node %s\n",
         str(doc, "store", "?"), num(settings, "stored_version"), num(doc, "live_nodes"),
         str(doc, "node", "?"));
  const char *h = str(host, "node", NULL);
  if (h)
    printf("web meetings hosted by %s (epoch %" JSON_INTEGER_FORMAT ")\n", h, num(host, "epoch"));
  else
    printf("web meetings: no host yet\n");
  printf("\n%-16s %-6s %-8s %-7s %-7s %-10s %s\n", "NODE", "STATE", "VERSION", "BEHIND",
         "BEAT", "HASH", "URL");
  int bad = h ? 0 : 1;
  size_t i;
  const json_t *n;
  json_array_foreach(json_object_get(doc, "nodes"), i, n) {
    bool live = json_is_true(json_object_get(n, "live"));
    json_int_t behind = num(n, "settings_behind");
    if (live && behind) bad = 1;
    char beat[32];
    snprintf(beat, sizeof beat, "%.1fs", (double)num(n, "heartbeat_age_ms") / 1000.0);
    printf("%-16s %-6s %-8" JSON_INTEGER_FORMAT " %-7" JSON_INTEGER_FORMAT " %-7s %-10.10s %s%s\n",
           str(n, "name", "?"), live ? "up" : "down", num(n, "settings_version"), behind, beat,
           str(n, "settings_hash", "-"), str(n, "url", "?"),
           json_is_true(json_object_get(n, "meeting_host")) ? "  (meeting host)" : "");
  }
  return bad;
}

int ctl_cmd_cluster(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  if (optind >= argc || strcmp(argv[optind], "status") != 0)
    return ctl_usage(cmd, optind < argc ? "the only subcommand is status" : "say status");
  if (optind + 1 < argc) return ctl_usage(cmd, "status takes no arguments");
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK) return code;
  ctl_response_t resp;
  json_t *doc;
  code = ctl_call(ctx, "GET", "/api/v1/cluster", NULL, 0, NULL, &resp, &doc);
  if (code != CTL_EXIT_OK) return code;
  if (!json_is_array(json_object_get(doc, "nodes"))) {
    fprintf(stderr, "error: the server's answer is not a cluster status\n");
    code = CTL_EXIT_SERVER;
  } else if (ctx->json) {
    ctl_print_raw(&resp);
  } else if (print_cluster(doc) != 0) {
    code = CTL_EXIT_REFUSED; /* 1: something needs looking at */
  }
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}
