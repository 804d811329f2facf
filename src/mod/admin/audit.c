/* /api/v1/audit: the change log, newest first, paged. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "mod/admin/internal.h"
#include "core/log.h"

#define AUDIT_LIMIT_DEFAULT 50
#define AUDIT_LIMIT_MAX 500

enum MHD_Result admin_audit_list(http_request_t *req) {
  int64_t offset, limit;
  enum MHD_Result ret;
  if (http_paging(req, AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX, &offset, &limit, &ret) < 0)
    return ret;
  store_t *store = http_store(req);
  json_t *page = NULL;
  store_txn_t *t = NULL;
  int rc = store_read_begin(store, "read the audit log", &t);
  if (rc == 0) rc = store_audit_list(t, offset, limit, &page);
  store_read_end(t);
  if (rc != 0) {
    log_err("reading the audit log failed: %s", store ? store_last_error(store) : "no store");
    return http_reply_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "store",
                              "Audit log not readable",
                              "The audit log could not be read from the store; see the server log.",
                              NULL);
  }
  return http_reply_json(req, MHD_HTTP_OK, page);
}
