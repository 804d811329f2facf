/* /api/v1/users and /api/v1/federation/...: the directory's admin API. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mod/directory/internal.h"
#include "mod/directory/directory.h"
#include "core/log.h"

#define LIST_LIMIT_DEFAULT 50

enum MHD_Result directory_reply_error(http_request_t *req, int r, problem_t *err,
                                    const char *what) {
  enum MHD_Result ret;
  const char *detail = err && err->detail[0] ? err->detail : NULL;
  json_t *errors = err ? err->errors : NULL;
  char text[512];
  switch (r) {
  case -EINVAL:
    ret = http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation", "Invalid input",
                             detail ? detail : "The request is not valid; nothing was changed.",
                             errors);
    break;
  case -ENOENT:
    snprintf(text, sizeof text, "There is no %s of that name; GET /api/v1/users lists them.", what);
    ret = http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not found", text, NULL);
    break;
  case -EEXIST:
    ret = http_reply_problem(req, MHD_HTTP_CONFLICT, "conflict", "Already taken",
                             detail ? detail : "The name is taken.", errors);
    break;
  case -ENOMEM:
    ret = http_reply_oom(req);
    break;
  default:
    log_err("directory: %s failed: %s (%s)", what, strerror(-r),
            store_last_error(http_store(req)));
    ret = http_reply_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "store", "Store failure",
                             "The directory could not be read or written; nothing was changed. "
                             "See the server log.",
                             NULL);
  }
  problem_clear(err);
  return ret;
}

/* The admin making the request, for the audit log. */
static directory_actor_t actor_of(http_request_t *req) {
  const auth_identity_t *who = http_identity(req);
  return (directory_actor_t){.admin = who ? who->admin : "unknown",
                             .address = http_client_address(req)};
}

/* The {name} of /api/v1/users/{name}. */
static const char *path_name(http_request_t *req) {
  const char *p = strrchr(http_path(req), '/');
  return p ? p + 1 : "";
}

enum MHD_Result directory_users_create(http_request_t *req) {
  problem_t err = {0};
  json_t *user = NULL;
  directory_actor_t by = actor_of(req);
  int r = directory_user_create(http_store(req), &by, http_body_json(req), &user, &err);
  if (r < 0) return directory_reply_error(req, r, &err, "user");
  char location[128];
  snprintf(location, sizeof location, "/api/v1/users/%s",
           json_string_value(json_object_get(user, "name")));
  http_add_header(req, MHD_HTTP_HEADER_LOCATION, location);
  return http_reply_json(req, MHD_HTTP_CREATED, user);
}

enum MHD_Result directory_users_list(http_request_t *req) {
  int64_t offset, limit;
  enum MHD_Result ret;
  if (http_paging(req, LIST_LIMIT_DEFAULT, DIRECTORY_LIST_LIMIT_MAX, &offset, &limit, &ret) < 0)
    return ret;
  const char *q = http_query(req, "q");
  if (q && strlen(q) > 256) return http_reply_bad_param(req, "q", "at most 256 characters");
  json_t *page = NULL;
  int r = directory_user_list(http_store(req), q, offset, limit, &page);
  if (r < 0) return directory_reply_error(req, r, NULL, "user list");
  return http_reply_json(req, MHD_HTTP_OK, page);
}

enum MHD_Result directory_users_get(http_request_t *req) {
  json_t *user = NULL;
  int r = directory_user_get_clients(http_store(req), path_name(req), &user);
  if (r < 0) return directory_reply_error(req, r, NULL, "user");
  return http_reply_json(req, MHD_HTTP_OK, user);
}

enum MHD_Result directory_users_patch(http_request_t *req) {
  problem_t err = {0};
  json_t *user = NULL;
  directory_actor_t by = actor_of(req);
  int r = directory_user_update(http_store(req), &by, path_name(req), http_body_json(req), &user,
                                &err);
  if (r < 0) return directory_reply_error(req, r, &err, "user");
  return http_reply_json(req, MHD_HTTP_OK, user);
}

enum MHD_Result directory_users_delete(http_request_t *req) {
  directory_actor_t by = actor_of(req);
  int r = directory_user_delete(http_store(req), &by, path_name(req));
  if (r < 0) return directory_reply_error(req, r, NULL, "user");
  return http_reply_buffer(req, MHD_HTTP_NO_CONTENT, NULL, "", 0, NULL, NULL);
}

/* POST /api/v1/users/{name}/sign-out: every client of the user must log in
 * again; the connected ones are closed (the real-time module listens). */
enum MHD_Result directory_users_sign_out(http_request_t *req) {
  /* /api/v1/users/{name}/sign-out: the segment before the last. */
  const char *path = http_path(req), *end = strrchr(path, '/'), *start = end;
  while (start > path && start[-1] != '/') start--;
  char name[DIRECTORY_NAME_MAX + 256];
  snprintf(name, sizeof name, "%.*s", (int)(end - start), start);
  int64_t revoked = 0;
  directory_actor_t by = actor_of(req);
  int r = directory_user_sign_out(http_store(req), &by, name, &revoked);
  if (r < 0) return directory_reply_error(req, r, NULL, "user");
  return http_reply_json(req, MHD_HTTP_OK, json_pack("{s:I}", "revoked_tokens", (json_int_t)revoked));
}

/* text/csv (any parameters) or JSON. */
static int import_format(http_request_t *req, bool *csv) {
  const char *ct = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!ct) return -1;
  while (*ct == ' ') ct++;
  if (strncasecmp(ct, "text/csv", 8) == 0 && (ct[8] == '\0' || ct[8] == ';' || ct[8] == ' ')) {
    *csv = true;
    return 0;
  }
  if (http_content_type_is_json(ct)) {
    *csv = false;
    return 0;
  }
  return -1;
}

static enum MHD_Result import(http_request_t *req, directory_import_kind_t kind, const char *what) {
  bool csv;
  if (import_format(req, &csv) < 0)
    return http_reply_problem(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                              "Unsupported media type",
                              "Send the import as a JSON array (Content-Type: application/json) "
                              "or as CSV with a header row (Content-Type: text/csv).",
                              NULL);
  size_t len;
  const char *data = http_body_raw(req, &len);
  if (!data || len == 0)
    return http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed", "Request body missing",
                              "The import is empty; send the rows to import.", NULL);
  problem_t err = {0};
  directory_batch_t *batch = NULL;
  int r = directory_import_parse(kind, data, len, csv, &batch, &err);
  int64_t imported = 0;
  directory_actor_t by = actor_of(req);
  if (r == 0) r = directory_import_apply(http_store(req), &by, batch, &imported, &err);
  directory_batch_free(batch);
  if (r < 0) return directory_reply_error(req, r, &err, what);
  log_info("imported %lld %s(s)", (long long)imported, what);
  return http_reply_json(req, MHD_HTTP_OK, json_pack("{s:I}", "imported", (json_int_t)imported));
}

enum MHD_Result directory_users_import(http_request_t *req) {
  return import(req, DIRECTORY_IMPORT_USERS, "user");
}

enum MHD_Result directory_subscriptions_import(http_request_t *req) {
  return import(req, DIRECTORY_IMPORT_SUBSCRIPTIONS, "subscription");
}

enum MHD_Result directory_contacts_import(http_request_t *req) {
  return import(req, DIRECTORY_IMPORT_CONTACTS, "contact");
}

enum MHD_Result directory_subscriptions_list(http_request_t *req) {
  int64_t offset, limit;
  enum MHD_Result ret;
  if (http_paging(req, LIST_LIMIT_DEFAULT, DIRECTORY_LIST_LIMIT_MAX, &offset, &limit, &ret) < 0)
    return ret;
  const char *state = http_query(req, "state");
  if (state && *state && strcmp(state, "active") != 0 && strcmp(state, "pending") != 0 &&
      strcmp(state, "to-be-recreated") != 0)
    return http_reply_bad_param(req, "state", "active, pending or to-be-recreated");
  const char *user = http_query(req, "user");
  if (user && strlen(user) > 400) return http_reply_bad_param(req, "user", "a user name");
  json_t *page = NULL;
  int r = directory_subscription_list(http_store(req), user, state, offset, limit, &page);
  if (r < 0) return directory_reply_error(req, r, NULL, "subscription list");
  return http_reply_json(req, MHD_HTTP_OK, page);
}

enum MHD_Result directory_contacts_list(http_request_t *req) {
  int64_t offset, limit;
  enum MHD_Result ret;
  if (http_paging(req, LIST_LIMIT_DEFAULT, DIRECTORY_LIST_LIMIT_MAX, &offset, &limit, &ret) < 0)
    return ret;
  const char *user = http_query(req, "user");
  if (user && strlen(user) > 400) return http_reply_bad_param(req, "user", "a user name");
  json_t *page = NULL;
  int r = directory_contact_list(http_store(req), user, offset, limit, &page);
  if (r < 0) return directory_reply_error(req, r, NULL, "contact list");
  return http_reply_json(req, MHD_HTTP_OK, page);
}
