/* /api/v1/users and /api/v1/federation/...: the directory's admin API. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mod/directory/import_job.h"
#include "mod/directory/internal.h"
#include "mod/runtime/runtime.h"
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

/* A small import with passwords: hashed and written on the CPU pool, then
 * answered like any other. */
typedef struct import_work {
  store_t *store;
  directory_batch_t *batch;
  const char *what;
  char admin[128], address[64];
  int r;
  int64_t imported;
  problem_t err;
} import_work_t;

static void import_work_run(void *ctx) {
  import_work_t *w = ctx;
  directory_actor_t by = {.admin = w->admin, .address = w->address};
  w->r = directory_import_apply(w->store, &by, w->batch, &w->imported, &w->err);
}

static enum MHD_Result import_work_reply(http_request_t *req, void *ctx) {
  import_work_t *w = ctx;
  if (w->r < 0) return directory_reply_error(req, w->r, &w->err, w->what);
  log_info("imported %lld %s(s)", (long long)w->imported, w->what);
  return http_reply_json(req, MHD_HTTP_OK,
                         json_pack("{s:I}", "imported", (json_int_t)w->imported));
}

static void import_work_free(void *ctx) {
  import_work_t *w = ctx;
  directory_batch_free(w->batch);
  problem_clear(&w->err);
  free(w);
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
  if (r < 0) {
    directory_batch_free(batch);
    return directory_reply_error(req, r, &err, what);
  }
  directory_actor_t by = actor_of(req);
  size_t passwords = directory_batch_passwords(batch);
  if (passwords >= IMPORT_JOB_MIN_PASSWORDS) {
    /* Minutes of Argon2id: a job the client follows, not a request held open. */
    char id[IMPORT_JOB_ID_MAX];
    r = import_job_start(runtime_hash_pool(), http_store(req), &by, batch, what, id);
    if (r == -EAGAIN || r == -ESHUTDOWN) {
      http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "10");
      return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Too many imports",
                                "Too many imports are running; try again when one has finished "
                                "(GET /api/v1/jobs/{id} tells).",
                                NULL);
    }
    if (r < 0) return http_reply_oom(req);
    char location[64];
    snprintf(location, sizeof location, "/api/v1/jobs/%s", id);
    http_add_header(req, MHD_HTTP_HEADER_LOCATION, location);
    bool found;
    json_t *job = import_job_json(id, &found);
    return http_reply_json(req, MHD_HTTP_ACCEPTED, job);
  }
  if (passwords > 0) {
    /* A few hashes: still one answer, but computed on the CPU pool. */
    import_work_t *w = calloc(1, sizeof *w);
    if (!w) {
      directory_batch_free(batch);
      return http_reply_oom(req);
    }
    *w = (import_work_t){.store = http_store(req), .batch = batch, .what = what};
    snprintf(w->admin, sizeof w->admin, "%s", by.admin ? by.admin : "unknown");
    snprintf(w->address, sizeof w->address, "%s", by.address ? by.address : "");
    problem_init(&w->err);
    return http_defer_cpu(req, import_work_run, import_work_reply, w, import_work_free);
  }
  int64_t imported = 0;
  r = directory_import_apply(http_store(req), &by, batch, &imported, &err);
  directory_batch_free(batch);
  if (r < 0) return directory_reply_error(req, r, &err, what);
  log_info("imported %lld %s(s)", (long long)imported, what);
  return http_reply_json(req, MHD_HTTP_OK, json_pack("{s:I}", "imported", (json_int_t)imported));
}

/* GET /api/v1/jobs/{id}: an import job's progress and outcome. */
enum MHD_Result directory_jobs_get(http_request_t *req) {
  const char *id = strrchr(http_path(req), '/');
  bool found = false;
  json_t *job = id && strlen(id + 1) < IMPORT_JOB_ID_MAX ? import_job_json(id + 1, &found) : NULL;
  if (!found)
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "No such job",
                              "There is no job with that id on this server; jobs are kept for "
                              "an hour after they finish, and not across a restart.",
                              NULL);
  return http_reply_json(req, MHD_HTTP_OK, job);
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
