/* /client/v1/...: what desktop and mobile clients call. Not admin
 * authenticated: a login gives a client token, /me checks it. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mod/directory/internal.h"
#include "mod/directory/directory.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "core/throttle.h"

#define CLIENT_THROTTLE_REALM "client"

/* The account a login name means, for the throttle: its local part in lower
 * case, so that "Alice", "alice@example.com" and "alice@old-domain" all
 * count for the one user (logins fold case the same way). */
static void throttle_account(const char *login, char *out, size_t len) {
  const char *at = strrchr(login, '@');
  size_t n = at ? (size_t)(at - login) : strlen(login);
  if (n >= len) n = len - 1;
  for (size_t i = 0; i < n; i++)
    out[i] = login[i] >= 'A' && login[i] <= 'Z' ? (char)(login[i] - 'A' + 'a') : login[i];
  out[n] = '\0';
}

/* A problem document with extension members (RFC 9457 allows them). */
static enum MHD_Result reply_problem_ext(http_request_t *req, unsigned status, const char *slug,
                                         const char *title, const char *detail, json_t *ext) {
  json_t *doc = http_problem_json(status, slug, title, detail, NULL);
  if (!doc) {
    json_decref(ext);
    return http_reply_oom(req);
  }
  if (ext) json_object_update(doc, ext);
  json_decref(ext);
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  if (!text) return http_reply_oom(req);
  if (status == MHD_HTTP_UNAUTHORIZED)
    http_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"atrium-client\"");
  return http_reply_buffer(req, status, "application/problem+json", text, strlen(text), free,
                           text);
}

static enum MHD_Result reply_field(http_request_t *req, const char *key, const char *message) {
  json_t *errors = json_pack("[{s:s, s:s}]", "key", key, "message", message);
  enum MHD_Result r = http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation",
                                         "Invalid login request", message, errors);
  json_decref(errors);
  return r;
}

json_t *directory_login_reply(const char *token, const char *login, int64_t expires) {
  char at[TIMEFMT_LEN];
  time_rfc3339_s(expires, at);
  return json_pack("{s:s, s:s, s:s, s:I}", "token", token, "login", login, "expires_at", at,
                   "expires", (json_int_t)expires);
}

/* A client login on the CPU pool: copies of what it needs, and its outcome. */
typedef struct client_login_job {
  store_t *store;
  char *login, *password, *source, *account;
  json_t *device;
  int r;
  bool ended; /* throttle_end called: a job refused before it ran ends it in free */
  directory_login_t out;
  problem_t err;
} client_login_job_t;

static void client_login_job_free(void *ctx) {
  client_login_job_t *j = ctx;
  if (!j) return;
  if (!j->ended)
    throttle_end(throttle_logins(), CLIENT_THROTTLE_REALM, j->account, j->source, THROTTLE_ERROR,
                 throttle_now_ms());
  if (j->password) explicit_bzero(j->password, strlen(j->password));
  free(j->login);
  free(j->password);
  free(j->source);
  free(j->account);
  json_decref(j->device);
  directory_login_clear(&j->out);
  problem_clear(&j->err);
  free(j);
}

static void client_login_job_run(void *ctx) {
  client_login_job_t *j = ctx;
  j->r = directory_login(j->store, j->login, j->password, j->device, &j->out, &j->err);
}

static enum MHD_Result client_login_job_reply(http_request_t *req, void *ctx);

enum MHD_Result directory_client_login(http_request_t *req) {
  const json_t *body = http_body_json(req);
  if (!json_is_object(body))
    return reply_field(req, "login", "Send {\"login\", \"password\", \"device\"?}.");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "login") && strcmp(key, "password") && strcmp(key, "device"))
      return reply_field(req, key, "Is not a field of a login; use login, password and device.");
  }
  const json_t *jl = json_object_get(body, "login"), *jp = json_object_get(body, "password");
  if (!json_is_string(jl) || !json_string_length(jl))
    return reply_field(req, "login", "Is required: the login name, name@domain.");
  if (!json_is_string(jp))
    return reply_field(req, "password", "Is required.");
  const char *login = json_string_value(jl), *password = json_string_value(jp);

  char account[DIRECTORY_NAME_MAX + 1];
  throttle_account(login, account, sizeof account);
  const char *source = http_client_address(req);
  int wait = 0;
  throttle_t *thr = throttle_logins();
  if (throttle_begin(thr, CLIENT_THROTTLE_REALM, account, source, throttle_now_ms(), &wait) !=
      THROTTLE_GO) {
    char retry[24], detail[200];
    snprintf(retry, sizeof retry, "%d", wait);
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    snprintf(detail, sizeof detail, "Too many login attempts; try again in %d seconds.", wait);
    return http_reply_problem(req, MHD_HTTP_TOO_MANY_REQUESTS, "too-many-attempts",
                              "Too many login attempts", detail, NULL);
  }

  client_login_job_t *j = calloc(1, sizeof *j);
  const json_t *device = json_object_get(body, "device");
  if (!j || !(j->login = strdup(login)) || !(j->password = strdup(password)) ||
      !(j->source = strdup(source)) || !(j->account = strdup(account)) ||
      (device && !(j->device = json_deep_copy(device)))) {
    if (j) j->ended = true;
    client_login_job_free(j);
    throttle_end(thr, CLIENT_THROTTLE_REALM, account, source, THROTTLE_ERROR, throttle_now_ms());
    return http_reply_oom(req);
  }
  j->store = http_store(req);
  /* Argon2id on the CPU pool: the server's threads keep serving meanwhile. */
  return http_defer_cpu(req, client_login_job_run, client_login_job_reply, j,
                        client_login_job_free);
}

static enum MHD_Result client_login_job_reply(http_request_t *req, void *ctx) {
  client_login_job_t *j = ctx;
  int r = j->r;
  const char *login = j->login, *account = j->account, *source = j->source;
  throttle_t *thr = throttle_logins();
  directory_login_t out = j->out;
  memset(&j->out, 0, sizeof j->out);
  problem_t err = j->err;
  memset(&j->err, 0, sizeof j->err);
  /* A right password for a renamed login counts as a success: it proves
   * the password. */
  j->ended = true;
  throttle_end(thr, CLIENT_THROTTLE_REALM, account, source,
               r == 0 || r == -ESTALE ? THROTTLE_OK
               : r == -EACCES         ? THROTTLE_FAILED
                                      : THROTTLE_ERROR,
               throttle_now_ms());

  enum MHD_Result ret;
  if (r == 0) {
    json_t *doc = directory_login_reply(out.token, out.login, out.expires);
    ret = http_reply_json(req, MHD_HTTP_OK, doc);
  } else if (r == -ESTALE) {
    char detail[900];
    snprintf(detail, sizeof detail,
             "%s is a login name from before the server's domain changed; log in as %s (and "
             "set up the login again on mobile devices).",
             login, out.login);
    ret = reply_problem_ext(req, MHD_HTTP_UNAUTHORIZED, "login-renamed", "Login name changed",
                            detail, json_pack("{s:s}", "login", out.login));
  } else if (r == -EACCES) {
    ret = reply_problem_ext(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Login failed",
                            err.detail[0] ? err.detail
                                          : "The login name or the password is wrong, or the "
                                            "account is disabled.",
                            NULL);
  } else {
    directory_login_clear(&out);
    return directory_reply_error(req, r, &err, "login");
  }
  directory_login_clear(&out);
  problem_clear(&err);
  return ret;
}

int directory_client_user_token(http_request_t *req, const char *token, json_t **user,
                                enum MHD_Result *reply) {
  *user = NULL;
  if (!token) {
    *reply = reply_problem_ext(req, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                               "Authentication required",
                               "Send the client token from POST /client/v1/login as "
                               "\"Authorization: Bearer <token>\".",
                               NULL);
    return -EACCES;
  }
  problem_t err = {0};
  int r = directory_token_user(http_store(req), token, user, &err);
  if (r == 0) return 0;
  if (r == -ESTALE)
    *reply = reply_problem_ext(req, MHD_HTTP_UNAUTHORIZED, "setup-again", "Set up the login again",
                               err.detail, json_pack("{s:s}", "reason", "domain-changed"));
  else if (r == -EACCES)
    *reply = reply_problem_ext(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Not logged in",
                               err.detail, NULL);
  else
    *reply = directory_reply_error(req, r, &err, "token check");
  problem_clear(&err);
  return r;
}

int directory_client_user(http_request_t *req, json_t **user, enum MHD_Result *reply) {
  return directory_client_user_token(
      req, http_bearer_token(http_header(req, MHD_HTTP_HEADER_AUTHORIZATION)), user, reply);
}

/* DELETE /client/v1/login and POST /client/v1/logout: log this client out (its token no longer
 * works); with ?everywhere=1 every client of the user, whose open
 * connections then close with bye "signed_out". */
enum MHD_Result directory_client_logout(http_request_t *req) {
  json_t *user;
  enum MHD_Result reply;
  if (directory_client_user(req, &user, &reply) < 0) return reply;
  const char *everywhere = http_query(req, "everywhere");
  if (everywhere && strcmp(everywhere, "1") && strcmp(everywhere, "0")) {
    json_decref(user);
    return http_reply_bad_param(req, "everywhere", "1 or 0");
  }
  int r;
  if (everywhere && !strcmp(everywhere, "1"))
    r = directory_user_sign_out(http_store(req), NULL,
                                json_string_value(json_object_get(user, "name")), NULL);
  else
    r = directory_token_revoke(http_store(req),
                               http_bearer_token(http_header(req, MHD_HTTP_HEADER_AUTHORIZATION)));
  json_decref(user);
  if (r < 0 && r != -ENOENT) return directory_reply_error(req, r, NULL, "logout");
  return http_reply_buffer(req, MHD_HTTP_NO_CONTENT, NULL, "", 0, NULL, NULL);
}

enum MHD_Result directory_client_me(http_request_t *req) {
  json_t *user;
  enum MHD_Result reply;
  if (directory_client_user(req, &user, &reply) < 0) return reply;
  return http_reply_json(req, MHD_HTTP_OK, user);
}
