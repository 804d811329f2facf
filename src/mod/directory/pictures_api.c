/* Profile pictures over HTTP: the user's own (PUT/DELETE /client/v1/me/picture),
 * the admin's (PUT/GET/DELETE /api/v1/users/{name}/picture) and what clients
 * show (GET /client/v1/users/{name}/picture). An upload is decoded and
 * encoded again (picture.h) before anything is stored; what is served is
 * always that JPEG, with a strong ETag and Cache-Control: private,
 * no-cache, so a changed or removed picture, or a permission taken away,
 * counts at the next view. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/settings.h"
#include "http/assets.h"
#include "mod/directory/directory.h"
#include "mod/directory/internal.h"
#include "mod/directory/picture.h"

/* The {name} of ".../users/{name}/picture". */
static void picture_owner(http_request_t *req, char *out, size_t len) {
  const char *path = http_path(req);
  const char *end = strrchr(path, '/');
  const char *start = end;
  while (start && start > path && start[-1] != '/') start--;
  size_t n = end && start ? (size_t)(end - start) : 0;
  snprintf(out, len, "%.*s", (int)n, start ? start : "");
}

/* hex of the first 16 bytes of the JPEG's SHA-256. */
static void etag_of(const uint8_t *jpeg, size_t len, char out[33]) {
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(d, jpeg, len);
  sodium_bin2hex(out, 33, d, 16);
}

static enum MHD_Result reply_picture_refused(http_request_t *req, const char *message) {
  json_t *errors = json_pack("[{s:s, s:s}]", "key", "picture", "message", message);
  enum MHD_Result r = http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "bad-picture",
                                         "Not a usable picture", message, errors);
  json_decref(errors);
  return r;
}

/* Decoding a large PNG takes a few hundred milliseconds: it runs on the
 * worker pool (http_defer), not on one of the server's few threads. */
typedef struct put_job {
  bool by_admin;
  char name[DIRECTORY_NAME_MAX * 2 + 2];
  uint8_t *body;
  size_t len;
  uint8_t *jpeg;
  size_t jlen;
  int r;
  char err[300];
} put_job_t;

static void put_job_run(void *ctx) {
  put_job_t *j = ctx;
  j->r = picture_normalize(j->body, j->len, &j->jpeg, &j->jlen, j->err, sizeof j->err);
}

static directory_actor_t admin_of(http_request_t *req);

static enum MHD_Result put_job_reply(http_request_t *req, void *ctx) {
  put_job_t *j = ctx;
  if (j->r == -EINVAL) return reply_picture_refused(req, j->err);
  if (j->r < 0)
    return j->r == -ENOMEM ? http_reply_oom(req) : directory_reply_error(req, j->r, NULL, "picture");
  char etag[33];
  etag_of(j->jpeg, j->jlen, etag);
  json_t *user = NULL;
  directory_actor_t by = admin_of(req);
  int r = directory_picture_put(http_store(req), j->by_admin ? &by : NULL, j->name, j->jpeg,
                                j->jlen, etag, &user);
  if (r < 0) return directory_reply_error(req, r, NULL, "user");
  return http_reply_json(req, MHD_HTTP_OK, user);
}

static void put_job_free(void *ctx) {
  put_job_t *j = ctx;
  free(j->body);
  free(j->jpeg);
  free(j);
}

/* Decodes, re-encodes and stores the request's body as `name`'s picture. */
static enum MHD_Result put_picture(http_request_t *req, bool by_admin, const char *name) {
  size_t len = 0;
  const char *body = http_body_raw(req, &len);
  put_job_t *j = calloc(1, sizeof *j);
  if (!j || (len && !(j->body = malloc(len)))) {
    free(j);
    return http_reply_oom(req);
  }
  if (len) memcpy(j->body, body, len);
  j->len = body ? len : 0;
  j->by_admin = by_admin;
  snprintf(j->name, sizeof j->name, "%s", name);
  /* An empty body needs no decoder: say so at once. */
  if (j->len == 0) {
    put_job_run(j);
    enum MHD_Result ret = put_job_reply(req, j);
    put_job_free(j);
    return ret;
  }
  return http_defer(req, put_job_run, put_job_reply, j, put_job_free);
}

static enum MHD_Result delete_picture(http_request_t *req, const directory_actor_t *by,
                                      const char *name) {
  json_t *user = NULL;
  int r = directory_picture_put(http_store(req), by, name, NULL, 0, NULL, &user);
  if (r < 0) return directory_reply_error(req, r, NULL, "user");
  return http_reply_json(req, MHD_HTTP_OK, user);
}

static void free_picture(void *data) { free(data); }

enum MHD_Result directory_reply_picture(http_request_t *req, store_picture_t *pic) {
  char etag[STORE_PICTURE_ETAG_MAX + 3];
  snprintf(etag, sizeof etag, "\"%s\"", pic->etag);
  if (http_add_header(req, MHD_HTTP_HEADER_ETAG, etag) != 0 ||
      http_add_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache") != 0) {
    store_picture_clear(pic);
    return http_reply_oom(req);
  }
  if (http_etag_listed(http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
    store_picture_clear(pic);
    return http_reply_buffer(req, MHD_HTTP_NOT_MODIFIED, NULL, "", 0, NULL, NULL);
  }
  uint8_t *data = pic->data;
  size_t len = pic->len;
  pic->data = NULL;
  pic->len = 0;
  return http_reply_buffer(req, MHD_HTTP_OK, "image/jpeg", data, len, free_picture, data);
}

/* 404 for no such user and for no picture alike: a picture's absence says
 * nothing more than the directory search already does. */
static enum MHD_Result get_picture(http_request_t *req, const char *name, bool disabled_too) {
  store_picture_t pic;
  int r = directory_picture_get(http_store(req), name, disabled_too, &pic);
  if (r == -ENOENT)
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "no-picture", "No picture",
                              "This user has no profile picture; show the initials instead.",
                              NULL);
  if (r < 0) return directory_reply_error(req, r, NULL, "picture");
  return directory_reply_picture(req, &pic);
}

/* ---- the user's own ---------------------------------------------------------------------- */

static enum MHD_Result with_me(http_request_t *req, bool put) {
  json_t *me;
  enum MHD_Result reply;
  if (directory_client_user(req, &me, &reply) < 0) return reply;
  char name[DIRECTORY_NAME_MAX + 1];
  snprintf(name, sizeof name, "%s", json_string_value(json_object_get(me, "name")));
  json_decref(me);
  return put ? put_picture(req, false, name) : delete_picture(req, NULL, name);
}

enum MHD_Result directory_client_picture_put(http_request_t *req) { return with_me(req, true); }
enum MHD_Result directory_client_picture_delete(http_request_t *req) { return with_me(req, false); }

/* GET /client/v1/users/{name}/picture: a logged-in user sees their own
 * picture always, and others' while the Users data source's permissions
 * hold Users or Authenticated. */
enum MHD_Result directory_client_picture_get(http_request_t *req) {
  json_t *me;
  enum MHD_Result reply;
  if (directory_client_user(req, &me, &reply) < 0) return reply;
  char name[DIRECTORY_NAME_MAX * 2 + 2];
  picture_owner(req, name, sizeof name);
  const char *self = json_string_value(json_object_get(me, "name"));
  const char *at = strrchr(name, '@');
  size_t n = at ? (size_t)(at - name) : strlen(name);
  bool own = self && strlen(self) == n && strncmp(self, name, n) == 0;
  json_decref(me);
  if (!own && !directory_users_permit("Users") && !directory_users_permit("Authenticated"))
    return http_reply_problem(req, MHD_HTTP_FORBIDDEN, "pictures-not-permitted",
                              "Pictures not permitted",
                              "The permissions of the Users data source "
                              "(directory.users_permissions) do not let users see each other's "
                              "pictures.",
                              NULL);
  return get_picture(req, name, false);
}

/* ---- the admin's --------------------------------------------------------------------------- */

static directory_actor_t admin_of(http_request_t *req) {
  const auth_identity_t *who = http_identity(req);
  return (directory_actor_t){.admin = who ? who->admin : "unknown",
                             .address = http_client_address(req)};
}

enum MHD_Result directory_users_picture_put(http_request_t *req) {
  char name[DIRECTORY_NAME_MAX * 2 + 2];
  picture_owner(req, name, sizeof name);
  return put_picture(req, true, name);
}

enum MHD_Result directory_users_picture_delete(http_request_t *req) {
  char name[DIRECTORY_NAME_MAX * 2 + 2];
  picture_owner(req, name, sizeof name);
  directory_actor_t by = admin_of(req);
  return delete_picture(req, &by, name);
}

enum MHD_Result directory_users_picture_get(http_request_t *req) {
  char name[DIRECTORY_NAME_MAX * 2 + 2];
  picture_owner(req, name, sizeof name);
  return get_picture(req, name, true); /* the admin sees disabled users' too */
}

/* Kept beside the picture routes, not in directory.c: it reads the settings
 * in force, which the directory's store code (fuzzed on its own) does not. */
bool directory_users_permit(const char *principal) {
  settings_snapshot_t *snap = settings_acquire();
  const json_t *list = snap ? settings_value(snap, "directory.users_permissions") : NULL;
  bool yes = false;
  size_t i;
  const json_t *v;
  json_array_foreach(list, i, v) yes = yes || strcmp(json_string_value(v), principal) == 0;
  if (snap) settings_release(snap);
  return yes;
}
