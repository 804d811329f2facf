/* /api/v1/audit: the log of every admin action, newest first, paged and
 * filtered (?actor=, ?key= exact or "prefix*", ?action=, ?since=, ?until=
 * as RFC 3339 times with their offset). Times go out in the server's time
 * zone with its offset, so that a reader sees when it happened there. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mod/admin/internal.h"
#include "core/log.h"
#include "core/timefmt.h"

#define AUDIT_LIMIT_DEFAULT 50
#define AUDIT_LIMIT_MAX 500
#define AUDIT_TEXT_PARAM_MAX 256

/* A text parameter within its length: 0, or -1 after answering 400. */
static int text_param(http_request_t *req, const char *name, const char **out,
                      enum MHD_Result *ret) {
  *out = http_query(req, name);
  if (*out && strlen(*out) > AUDIT_TEXT_PARAM_MAX) {
    *ret = http_reply_bad_param(req, name, "at most 256 characters");
    return -1;
  }
  return 0;
}

/* ?since= / ?until=: an RFC 3339 time into the store's UTC text. */
static int time_param(http_request_t *req, const char *name, char out[TIMEFMT_LEN],
                      const char **value, enum MHD_Result *ret) {
  const char *v = http_query(req, name);
  *value = NULL;
  if (!v || !v[0]) return 0;
  int64_t ms;
  if (!time_parse_rfc3339(v, &ms)) {
    *ret = http_reply_bad_param(
        req, name,
        "an RFC 3339 time with its offset, such as 2026-12-01T09:00:00+01:00 or "
        "2026-12-01T08:00:00Z");
    return -1;
  }
  time_rfc3339_ms(ms, out);
  *value = out;
  return 0;
}

/* The stored UTC time of each entry, as local time with the offset. */
static void localise(json_t *page) {
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(page, "entries"), i, e) {
    const char *t = json_string_value(json_object_get(e, "time"));
    int64_t ms;
    if (!t || !time_parse_rfc3339(t, &ms)) continue;
    char local[TIMEFMT_LEN];
    time_rfc3339_local_ms(ms, local);
    json_object_set_new(e, "time", json_string(local));
  }
}

enum MHD_Result admin_audit_list(http_request_t *req) {
  int64_t offset, limit;
  enum MHD_Result ret;
  if (http_paging(req, AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX, &offset, &limit, &ret) < 0) return ret;
  store_audit_filter_t f = {0};
  char since[TIMEFMT_LEN], until[TIMEFMT_LEN];
  if (text_param(req, "actor", &f.actor, &ret) < 0 || text_param(req, "key", &f.key, &ret) < 0 ||
      text_param(req, "action", &f.action, &ret) < 0 ||
      time_param(req, "since", since, &f.since, &ret) < 0 ||
      time_param(req, "until", until, &f.until, &ret) < 0)
    return ret;
  if (f.since && f.until && strcmp(f.since, f.until) >= 0)
    return http_reply_bad_param(req, "until", "later than since");
  store_t *store = http_store(req);
  json_t *page = NULL;
  store_txn_t *t = NULL;
  int rc = store_read_begin(store, "read the audit log", &t);
  if (rc == 0) rc = store_audit_query(t, &f, offset, limit, &page);
  store_read_end(t);
  if (rc != 0) {
    log_err("reading the audit log failed: %s", store ? store_last_error(store) : "no store");
    return http_reply_problem(
        req, MHD_HTTP_INTERNAL_SERVER_ERROR, "store", "Audit log not readable",
        "The audit log could not be read from the store; see the server log.", NULL);
  }
  localise(page);
  return http_reply_json(req, MHD_HTTP_OK, page);
}

static int txn_record(store_txn_t *t, void *entry) { return store_audit_record(t, entry); }

int admin_audit_record(store_t *store, const store_audit_entry_t *e) {
  int r = store_run_txn(store, "write the audit log", txn_record, (void *)e);
  if (r < 0)
    log_err("the audit log could not be written (%s %s by %s): %s", e->action, e->key ? e->key : "",
            e->actor ? e->actor : "", store_last_error(store));
  return r;
}
