/* POST /api/v1/domain/change: preview (dry run) or apply a domain change. */
#include <string.h>

#include "mod/directory/internal.h"
#include "mod/directory/directory.h"
#include "mod/directory/domain_change.h"
#include "core/log.h"

static enum MHD_Result reply_field(http_request_t *req, const char *key, const char *message) {
  problem_t p = PROBLEM_INIT;
  problem_add_error(&p, key, "%s", message);
  problem_set(&p, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation", "Invalid request",
              "The request is not a valid domain change; nothing was changed.");
  enum MHD_Result r = http_reply_problem_of(req, &p);
  problem_clear(&p);
  return r;
}

enum MHD_Result directory_domain_change_api(http_request_t *req) {
  const json_t *body = http_body_json(req);
  if (!json_is_object(body))
    return reply_field(req, "domain", "Send {\"domain\": \"new.example.com\", \"dry_run\": true}.");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "domain") && strcmp(key, "dry_run"))
      return reply_field(req, key, "Is not a field of a domain change; use domain and dry_run.");
  }
  const json_t *jd = json_object_get(body, "domain"), *jr = json_object_get(body, "dry_run");
  if (!json_is_string(jd) || strlen(json_string_value(jd)) != json_string_length(jd))
    return reply_field(req, "domain", "Is required: the new domain, as a string.");
  if (jr && !json_is_boolean(jr)) return reply_field(req, "dry_run", "Must be true or false.");
  bool dry_run = json_is_true(jr);
  const auth_identity_t *who = http_identity(req);

  domain_change_result_t res;
  domain_change(http_store(req), json_string_value(jd), dry_run, who ? who->admin : "unknown",
                &res);
  enum MHD_Result ret;
  if (!problem_failed(&res.problem)) {
    if (!dry_run)
      log_notice("%s changed the domain from %s to %s",
                 who ? who->admin : "unknown",
                 json_string_value(json_object_get(res.document, "old_domain")),
                 json_string_value(json_object_get(res.document, "new_domain")));
    ret = http_reply_json(req, MHD_HTTP_OK, json_incref(res.document));
  } else {
    if (res.problem.status >= 500) log_err("domain change failed: %s", res.problem.detail);
    ret = http_reply_problem_of(req, &res.problem);
  }
  domain_change_result_clear(&res);
  return ret;
}
