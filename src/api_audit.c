/* /api/v1/audit: the change log, newest first, paged. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "api.h"
#include "log.h"

#define AUDIT_LIMIT_DEFAULT 50
#define AUDIT_LIMIT_MAX 500

static enum MHD_Result reply_bad_param(http_request_t *req, const char *name, const char *rule) {
  char message[160];
  snprintf(message, sizeof message, "%s must be %s.", name, rule);
  json_t *errors = json_pack("[{s:s, s:s}]", "key", name, "message", message);
  if (!errors) return http_reply_oom(req);
  enum MHD_Result r = http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed",
                                         "Invalid query parameter", message, errors);
  json_decref(errors);
  return r;
}

enum MHD_Result api_audit_list(http_request_t *req) {
  int64_t offset, limit;
  if (http_parse_int_param(http_query(req, "offset"), 0, INT64_MAX, 0, &offset) != 0)
    return reply_bad_param(req, "offset", "a non-negative integer");
  if (http_parse_int_param(http_query(req, "limit"), 1, AUDIT_LIMIT_MAX, AUDIT_LIMIT_DEFAULT,
                           &limit) != 0)
    return reply_bad_param(req, "limit", "an integer from 1 to 500");
  store_t *store = http_store(req);
  json_t *page = NULL;
  int rc = store ? store_audit_list(store, offset, limit, &page) : -ENODEV;
  if (rc != 0) {
    log_err("reading the audit log failed: %s", store ? store_last_error(store) : "no store");
    return http_reply_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "store",
                              "Audit log not readable",
                              "The audit log could not be read from the store; see the server log.",
                              NULL);
  }
  return http_reply_json(req, MHD_HTTP_OK, page);
}
