/* /api/v1/session: admin login, "who am I" (so a reloaded admin page gets its
 * CSRF token back), logout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mod/admin/internal.h"
#include "core/log.h"
#include "core/metrics.h"

static void format_time(int64_t t, char *buf, size_t len) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, len, "1970-01-01T00:00:00Z");
}

static int set_cookie(http_request_t *req, const char *value, int max_age) {
  char cookie[512];
  int n = snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
                   HTTP_SESSION_COOKIE, value, max_age, http_tls() ? "; Secure" : "");
  if (n < 0 || (size_t)n >= sizeof cookie) return -ENOSPC;
  return http_add_header(req, MHD_HTTP_HEADER_SET_COOKIE, cookie);
}

static const char *required_string(const json_t *body, const char *name, const char *message,
                                   json_t *errors) {
  const json_t *v = json_object_get(body, name);
  if (json_is_string(v) && json_string_length(v) > 0) return json_string_value(v);
  json_array_append_new(errors, json_pack("{s:s, s:s}", "key", name, "message", message));
  return NULL;
}

/* The account name: "login", as the client login spells it, or "user", its
 * old name here, kept for one release. NULL (and an error) when missing or
 * when both are given and differ. */
static const char *login_name(const json_t *body, json_t *errors) {
  const json_t *l = json_object_get(body, "login"), *u = json_object_get(body, "user");
  const char *login = json_is_string(l) && json_string_length(l) ? json_string_value(l) : NULL;
  const char *user = json_is_string(u) && json_string_length(u) ? json_string_value(u) : NULL;
  if (login && user && strcmp(login, user) != 0) {
    json_array_append_new(errors, json_pack("{s:s, s:s}", "key", "user", "message",
                                            "Differs from login: send login only (user is its "
                                            "old name)."));
    return NULL;
  }
  if (login || user) return login ? login : user;
  json_array_append_new(errors, json_pack("{s:s, s:s}", "key", "login", "message",
                                          "login is required: the admin account name."));
  return NULL;
}

/* A login on the CPU pool: what the work needs, copied out of the request,
 * and what it found. */
typedef struct login_job {
  char *user, *password, *address;
  int rc, retry_after;
  auth_session_t s;
} login_job_t;

static void login_job_free(void *ctx) {
  login_job_t *j = ctx;
  if (!j) return;
  if (j->password) explicit_bzero(j->password, strlen(j->password));
  free(j->user);
  free(j->password);
  free(j->address);
  auth_session_clear(&j->s);
  free(j);
}

static void login_job_run(void *ctx) {
  login_job_t *j = ctx;
  j->rc = auth_login(j->user, j->password, j->address, &j->s, &j->retry_after);
}

static enum MHD_Result login_job_reply(http_request_t *req, void *ctx);

enum MHD_Result admin_session_login(http_request_t *req) {
  const json_t *body = http_body_json(req);
  if (!json_is_object(body))
    return http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed", "Request body not an object",
                              "The request body must be a JSON object: "
                              "{\"login\": \"admin\", \"password\": \"...\"}.",
                              NULL);
  json_t *errors = json_array();
  if (!errors) return http_reply_oom(req);
  const char *user = login_name(body, errors);
  const char *password = required_string(body, "password", "password is required.", errors);
  if (!user || !password) {
    enum MHD_Result r = http_reply_problem(
        req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation", "Missing credentials",
        "Send both \"login\" and \"password\" as non-empty strings.", errors);
    json_decref(errors);
    return r;
  }
  json_decref(errors);

  login_job_t *j = calloc(1, sizeof *j);
  if (!j || !(j->user = strdup(user)) || !(j->password = strdup(password)) ||
      !(j->address = strdup(http_client_address(req)))) {
    login_job_free(j);
    return http_reply_oom(req);
  }
  /* Argon2id costs tens of milliseconds of CPU: on the CPU pool, so that
   * the server's threads keep answering everyone else meanwhile. */
  return http_defer_cpu(req, login_job_run, login_job_reply, j, login_job_free);
}

static enum MHD_Result login_job_reply(http_request_t *req, void *ctx) {
  login_job_t *j = ctx;
  const char *user = j->user;
  int rc = j->rc, retry_after = j->retry_after;
  auth_session_t s = j->s;
  memset(&j->s, 0, sizeof j->s);
  if (rc == -EACCES) {
    /* The name as typed, cut: a long one is likelier a password typed into
     * the wrong field. Refusals while throttled are not written: they cost
     * no password check, so a flood of them must not grow the log. */
    char typed[65];
    snprintf(typed, sizeof typed, "%.64s", user);
    store_audit_entry_t e = {.action = "admin.login_failed", .actor = typed, .key = typed,
                             .new_text = "wrong user name or password",
                             .address = http_client_address(req)};
    (void)admin_audit_record(http_store(req), &e);
    log_notice("failed admin login for \"%.64s\" from %s", user, http_client_address(req));
    http_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"atrium\"");
    return http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "invalid-credentials",
                              "Wrong user name or password",
                              "The user name or the password is wrong.", NULL);
  }
  if (rc == -EAGAIN) {
    if (retry_after < 1) retry_after = 1;
    char seconds[16], detail[200];
    snprintf(seconds, sizeof seconds, "%d", retry_after);
    snprintf(detail, sizeof detail,
             "Too many failed logins for this user or address; try again in %d second%s.",
             retry_after, retry_after == 1 ? "" : "s");
    log_notice("admin login for \"%.64s\" from %s refused for %d s after repeated failures", user,
               http_client_address(req), retry_after);
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    return http_reply_problem(req, MHD_HTTP_TOO_MANY_REQUESTS, "too-many-attempts",
                              "Too many failed logins", detail, NULL);
  }
  if (rc != 0) {
    log_err("admin login failed: %s", strerror(-rc));
    auth_session_clear(&s);
    return http_reply_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                              "Login not possible",
                              "The session could not be created; see the server log.", NULL);
  }
  char expires[32];
  format_time(s.expires, expires, sizeof expires);
  if (set_cookie(req, s.token, AUTH_SESSION_SECONDS) != 0) {
    auth_session_clear(&s);
    return http_reply_oom(req);
  }
  log_info("admin \"%s\" logged in from %s", s.admin, http_client_address(req));
  store_audit_entry_t login = {.action = "admin.login", .actor = s.admin, .key = s.admin,
                               .address = http_client_address(req)};
  (void)admin_audit_record(http_store(req), &login);
  /* "expires_at" is the name the client login shares; "expires" (the
   * same time) and "user" (the same name as "login") stay for one release. */
  json_t *reply = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "token", s.token, "csrf", s.csrf,
                            "expires_at", expires, "expires", expires, "login", s.admin, "user",
                            s.admin);
  auth_session_clear(&s);
  return http_reply_json(req, MHD_HTTP_OK, reply);
}

enum MHD_Result admin_session_get(http_request_t *req) {
  const auth_identity_t *who = http_identity(req);
  char expires[32];
  format_time(who->expires, expires, sizeof expires);
  return http_reply_json(req, MHD_HTTP_OK,
                         json_pack("{s:s, s:s, s:s, s:s, s:s}", "login", who->admin, "user",
                                   who->admin, "csrf", who->csrf, "expires_at", expires,
                                   "expires", expires));
}

enum MHD_Result admin_session_logout(http_request_t *req) {
  const char *token = http_token(req);
  if (token) auth_logout(token);
  if (set_cookie(req, "", 0) != 0) return http_reply_oom(req);
  return http_reply_buffer(req, MHD_HTTP_NO_CONTENT, NULL, "", 0, NULL, NULL);
}
