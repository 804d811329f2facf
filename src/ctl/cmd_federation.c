/* atriumctl federation test DOMAIN | status. */
#include "ctl/cmd_federation.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ctl/client.h"
#include "ctl/session.h"

static void print_test(const json_t *doc) {
  size_t i;
  const json_t *s;
  json_array_foreach(json_object_get(doc, "steps"), i, s) {
    const json_t *ok = json_object_get(s, "ok");
    printf("%-12s %-7s %s\n", json_string_value(json_object_get(s, "step")),
           json_is_true(ok) ? "ok" : json_is_false(ok) ? "FAILED" : "skipped",
           json_string_value(json_object_get(s, "sentence")));
  }
  printf("%s\n", json_is_true(json_object_get(doc, "ok"))
                     ? "Federation with this domain should work."
                     : "Federation with this domain will not work until the failing steps are "
                       "fixed.");
}

static void print_status(const json_t *doc) {
  const json_t *in = json_object_get(doc, "inbound"), *out = json_object_get(doc, "outbound");
  printf("listening:  %s%s\n", json_string_value(json_object_get(doc, "listen")),
         json_is_true(json_object_get(doc, "running")) ? "" : " (not running)");
  printf("enabled:    %s\n", json_is_true(json_object_get(doc, "enabled")) ? "yes" : "no");
  printf("watchers of local users: %" JSON_INTEGER_FORMAT " active, %" JSON_INTEGER_FORMAT
         " pending consent\n",
         json_integer_value(json_object_get(in, "active")),
         json_integer_value(json_object_get(in, "pending")));
  printf("addresses watched elsewhere: %" JSON_INTEGER_FORMAT " active, %" JSON_INTEGER_FORMAT
         " being set up\n",
         json_integer_value(json_object_get(out, "active")),
         json_integer_value(json_object_get(out, "pending")));
  printf("partners seen:");
  size_t i;
  const json_t *p;
  json_array_foreach(json_object_get(doc, "peers"), i, p) printf(" %s", json_string_value(p));
  printf("%s\n", json_array_size(json_object_get(doc, "peers")) ? "" : " none");
  const char *last = json_string_value(json_object_get(doc, "last_error"));
  if (last) printf("last error: %s\n", last);
}

int ctl_federation_sip(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  const char *sub = argv[optind++];
  bool test = strcmp(sub, "test") == 0;
  if (test && optind + 1 != argc) return ctl_usage(cmd, "give one domain: 'federation test DOMAIN'");
  if (!test && optind != argc) return ctl_usage(cmd, "'federation status' takes no arguments");
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK) return code;
  json_t *body = test ? json_pack("{s:s}", "domain", argv[optind]) : NULL;
  ctl_response_t resp;
  json_t *doc;
  code = test ? ctl_call_json(ctx, "POST", "/api/v1/federation/test", body, NULL, &resp, &doc)
              : ctl_call(ctx, "GET", "/api/v1/federation/status", NULL, 0, NULL, &resp, &doc);
  json_decref(body);
  if (code != CTL_EXIT_OK) return code;
  if (ctx->json)
    ctl_print_raw(&resp);
  else if (test)
    print_test(doc);
  else
    print_status(doc);
  if (test) code = json_is_true(json_object_get(doc, "ok")) ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}
