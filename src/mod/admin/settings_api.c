/* /api/v1/settings: read, schema, change, validate, export, import. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mod/admin/internal.h"
#include "core/log.h"
#include "conf/settings.h"
#include "mod/cluster/cluster.h"

/* GET /api/v1/settings is the hot path (benchmarked against nginx serving the
 * same bytes): the reply for the current version is built once, with all its
 * headers, and queued for every request until the version changes. The
 * response owns a snapshot reference, released by MHD when the last
 * connection using it is done. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct MHD_Response *cache_resp;
static uint64_t cache_version;

static void release_snapshot(void *snap) { settings_release(snap); }

static void format_etag(uint64_t version, char *buf, size_t len) {
  snprintf(buf, len, "\"%" PRIu64 "\"", version);
}

/* Consumes the snapshot reference. */
static struct MHD_Response *document_response(settings_snapshot_t *snap) {
  size_t len;
  const char *doc = settings_document(snap, &len);
  if (!doc) {
    settings_release(snap);
    return NULL;
  }
  char etag[32];
  format_etag(settings_version(snap), etag, sizeof etag);
  struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
      len, (void *)doc, release_snapshot, snap);
  if (!resp) {
    settings_release(snap);
    return NULL;
  }
  if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES ||
      MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES ||
      http_response_secure(resp) != 0) {
    MHD_destroy_response(resp);
    return NULL;
  }
  return resp;
}

void admin_settings_cache_clear(void) {
  pthread_mutex_lock(&cache_lock);
  if (cache_resp) MHD_destroy_response(cache_resp);
  cache_resp = NULL;
  cache_version = 0;
  pthread_mutex_unlock(&cache_lock);
}

static enum MHD_Result reply_not_ready(http_request_t *req) {
  http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "not-ready", "Settings not loaded",
                            "The settings are not loaded yet; try again in a moment.", NULL);
}

static bool if_none_match_hits(http_request_t *req, uint64_t version) {
  const char *inm = http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
  if (!inm) return false;
  char etag[32];
  format_etag(version, etag, sizeof etag);
  /* Single tag or "*"; W/ is allowed for If-None-Match (weak comparison). */
  if (strncmp(inm, "W/", 2) == 0) inm += 2;
  return strcmp(inm, etag) == 0 || strcmp(inm, "*") == 0;
}

/* Replies with the document of `snap` (the reference is consumed). */
static enum MHD_Result reply_snapshot(http_request_t *req, settings_snapshot_t *snap) {
  if (!snap) return reply_not_ready(req);
  uint64_t version = settings_version(snap);

  if (if_none_match_hits(req, version)) {
    settings_release(snap);
    char etag[32];
    format_etag(version, etag, sizeof etag);
    http_add_header(req, MHD_HTTP_HEADER_ETAG, etag);
    return http_reply_buffer(req, MHD_HTTP_NOT_MODIFIED, NULL, "", 0, NULL, NULL);
  }

  pthread_mutex_lock(&cache_lock);
  if (cache_resp && cache_version == version) {
    settings_release(snap);
    /* Queued under the lock: a concurrent replacement must not destroy the
     * response before MHD has taken its own reference. */
    enum MHD_Result r = http_reply_shared(req, MHD_HTTP_OK, cache_resp);
    pthread_mutex_unlock(&cache_lock);
    return r;
  }
  struct MHD_Response *resp = document_response(snap); /* snap consumed */
  if (!resp) {
    pthread_mutex_unlock(&cache_lock);
    return http_reply_oom(req);
  }
  enum MHD_Result r = http_reply_shared(req, MHD_HTTP_OK, resp);
  /* An older snapshot than the cached one (a change landed meanwhile) is
   * answered but not cached. */
  if (!cache_resp || version > cache_version) {
    if (cache_resp) MHD_destroy_response(cache_resp);
    cache_resp = resp;
    cache_version = version;
  } else {
    MHD_destroy_response(resp);
  }
  pthread_mutex_unlock(&cache_lock);
  return r;
}

static enum MHD_Result reply_document(http_request_t *req) {
  return reply_snapshot(req, settings_acquire());
}

enum MHD_Result admin_settings_get(http_request_t *req) { return reply_document(req); }

enum MHD_Result admin_settings_schema(http_request_t *req) {
  return http_reply_json(req, MHD_HTTP_OK, settings_schema());
}

static enum MHD_Result reply_outcome_problem(http_request_t *req, const settings_outcome_t *out) {
  if (out->problem.status == MHD_HTTP_SERVICE_UNAVAILABLE)
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  if (out->problem.status >= 500)
    log_err("settings change by %s failed: %s", http_identity(req)->admin, out->problem.detail);
  return http_reply_problem_of(req, &out->problem);
}

static bool parse_if_match(http_request_t *req, int64_t *if_match, enum MHD_Result *ret) {
  if (http_parse_if_match(http_header(req, MHD_HTTP_HEADER_IF_MATCH), if_match) == 0) return true;
  json_t *errors = json_pack("[{s:s, s:s}]", "key", "If-Match", "message",
                             "If-Match must be the settings version as an entity tag, "
                             "for example If-Match: \"5\".");
  if (!errors) {
    *ret = http_reply_oom(req);
    return false;
  }
  *ret = http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed", "Malformed If-Match header",
                            "If-Match must be the settings version from the ETag, for example "
                            "If-Match: \"5\".",
                            errors);
  json_decref(errors);
  return false;
}

static bool body_is_object(http_request_t *req, const char *what, enum MHD_Result *ret) {
  if (json_is_object(http_body_json(req))) return true;
  char detail[256];
  snprintf(detail, sizeof detail, "The request body must be a JSON object %s.", what);
  *ret = http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed", "Request body not an object",
                            detail, NULL);
  return false;
}

/* Runs one settings_change and, on anything but 200, replies with the
 * problem; true when it succeeded and *out must be used and cleared. */
static bool change(http_request_t *req, settings_op_t op, int64_t if_match, settings_outcome_t *out,
                   enum MHD_Result *ret) {
  memset(out, 0, sizeof *out);
  settings_change(http_body_json(req), op, http_identity(req)->admin, if_match, out);
  if (!problem_failed(&out->problem)) return true;
  *ret = reply_outcome_problem(req, out);
  settings_outcome_clear(out);
  return false;
}

#define WAIT_ALL_MS 5000 /* ?wait=all waits this long for every live node */

/* ?wait=all: nothing else is accepted, so that a typo does not silently
 * answer before the other nodes applied. */
static bool parse_wait(http_request_t *req, bool *wait_all, enum MHD_Result *ret) {
  const char *w = http_query(req, "wait");
  *wait_all = w && strcmp(w, "all") == 0;
  if (!w || *wait_all) return true;
  json_t *errors = json_pack("[{s:s, s:s}]", "key", "wait", "message",
                             "The only value of wait is \"all\": answer once every live node "
                             "has the new settings in force.");
  *ret = errors ? http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed",
                                     "Bad query parameter", "?wait= takes only \"all\".", errors)
                : http_reply_oom(req);
  json_decref(errors);
  return false;
}

enum MHD_Result admin_settings_patch(http_request_t *req) {
  enum MHD_Result ret;
  int64_t if_match;
  bool wait_all;
  if (!parse_if_match(req, &if_match, &ret)) return ret;
  if (!parse_wait(req, &wait_all, &ret)) return ret;
  if (!body_is_object(req, "mapping setting keys to their new values", &ret)) return ret;
  settings_outcome_t out;
  if (!change(req, SETTINGS_OP_PATCH, if_match, &out, &ret)) return ret;
  /* The document this change produced, even if another one followed it. */
  settings_snapshot_t *snap = out.snapshot;
  out.snapshot = NULL;
  settings_outcome_clear(&out);
  if (wait_all) {
    json_t *pending = NULL;
    int r = cluster_wait_applied(settings_version(snap), WAIT_ALL_MS, &pending);
    if (r < 0) {
      /* Committed here: the answer says so, and which nodes lag. */
      json_t *body = json_pack("{s:s, s:I, s:o*, s:s}", "status", "committed", "version",
                               (json_int_t)settings_version(snap), "pending",
                               pending ? pending : json_array(), "detail",
                               r == -ETIMEDOUT
                                   ? "The change is committed, but these live nodes did not "
                                     "have it in force within 5 seconds."
                                   : "The change is committed, but the nodes' state could not "
                                     "be read from the store.");
      settings_release(snap);
      return http_reply_json(req, MHD_HTTP_ACCEPTED, body);
    }
  }
  return reply_snapshot(req, snap);
}

enum MHD_Result admin_settings_validate(http_request_t *req) {
  enum MHD_Result ret;
  int64_t if_match;
  if (!parse_if_match(req, &if_match, &ret)) return ret;
  if (!body_is_object(req, "mapping setting keys to the values to check", &ret)) return ret;
  settings_outcome_t out;
  if (!change(req, SETTINGS_OP_VALIDATE, if_match, &out, &ret)) return ret;
  json_t *warnings = out.warnings ? json_incref(out.warnings) : json_array();
  settings_outcome_clear(&out);
  return http_reply_json(req, MHD_HTTP_OK,
                         warnings ? json_pack("{s:b, s:o}", "valid", 1, "warnings", warnings)
                                  : NULL);
}

enum MHD_Result admin_settings_export(http_request_t *req) {
  settings_snapshot_t *snap = settings_acquire();
  if (!snap) return reply_not_ready(req);
  json_t *doc = settings_export(snap);
  settings_release(snap);
  http_add_header(req, MHD_HTTP_HEADER_CONTENT_DISPOSITION,
                  "attachment; filename=\"atrium-settings.json\"");
  return http_reply_json(req, MHD_HTTP_OK, doc);
}

enum MHD_Result admin_settings_import(http_request_t *req) {
  enum MHD_Result ret;
  int64_t if_match;
  if (!parse_if_match(req, &if_match, &ret)) return ret;
  if (!body_is_object(req, "as written by GET /api/v1/settings/export", &ret)) return ret;
  settings_outcome_t out;
  if (!change(req, SETTINGS_OP_IMPORT, if_match, &out, &ret)) return ret;
  json_t *warnings = out.warnings ? json_incref(out.warnings) : json_array();
  json_t *body = warnings ? json_pack("{s:i, s:I, s:o}", "imported", out.changed, "version",
                                      (json_int_t)out.version, "warnings", warnings)
                          : NULL;
  settings_outcome_clear(&out);
  return http_reply_json(req, MHD_HTTP_OK, body);
}
