/* POST /client/v1/login/auto: integrated Windows login (HTTP Negotiate), and
 * GET /api/v1/publishing/status: what UDP discovery and AD publishing are
 * doing. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "mod/publishing/ad_publish.h"
#include "mod/publishing/internal.h"
#include "mod/directory/directory.h"
#include "mod/publishing/discovery.h"
#include "mod/publishing/kerberos.h"
#include "core/log.h"
#include "conf/settings.h"

#define ACCOUNT_CANDIDATES 2

static enum MHD_Result refuse(http_request_t *req, unsigned status, const char *slug,
                              const char *title, const char *detail) {
  return http_reply_problem(req, status, slug, title, detail, NULL);
}

/* The user for a principal: the first windows_account spelling that names one. */
static int find_user(store_t *store, const char *principal, json_t **user) {
  char cands[ACCOUNT_CANDIDATES][KERBEROS_NAME_MAX];
  size_t n = kerberos_account_candidates(principal, cands, ACCOUNT_CANDIDATES);
  int r = -ENOENT;
  for (size_t i = 0; i < n && r == -ENOENT; i++)
    r = directory_find_by_windows_account(store, cands[i], user);
  return r;
}

static enum MHD_Result login_user(http_request_t *req, const char *principal) {
  store_t *store = http_store(req);
  json_t *user = NULL;
  int r = find_user(store, principal, &user);
  char detail[1600];
  if (r == -ENOENT) {
    log_notice("automatic login refused: no user has the Windows account of %s", principal);
    snprintf(detail, sizeof detail,
             "The Windows account %s is not assigned to any user of this server; ask the "
             "administrator to enter it as the user's Windows account (as %s or in the "
             "DOMAIN\\name form).",
             principal, principal);
    return refuse(req, MHD_HTTP_FORBIDDEN, "unknown-principal", "Unknown Windows account", detail);
  }
  if (r < 0) {
    json_decref(user);
    return refuse(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "store", "The directory cannot be read",
                  "The user directory could not be read; try again, and check the server log if "
                  "it persists.");
  }
  const char *name = json_string_value(json_object_get(user, "name"));
  if (!json_is_true(json_object_get(user, "enabled"))) {
    log_notice("automatic login refused: user \"%s\" (%s) is disabled", name ? name : "?",
               principal);
    snprintf(detail, sizeof detail,
             "The user %s (Windows account %s) is disabled on this server; ask the "
             "administrator to enable it.",
             name ? name : "?", principal);
    json_decref(user);
    return refuse(req, MHD_HTTP_FORBIDDEN, "user-disabled", "User disabled", detail);
  }
  directory_login_t login = {0};
  problem_t derr = {0};
  r = directory_login_windows(store, name, &login, &derr);
  json_decref(user);
  enum MHD_Result ret;
  if (r < 0) {
    ret = refuse(req, r == -EACCES ? MHD_HTTP_FORBIDDEN : MHD_HTTP_INTERNAL_SERVER_ERROR,
                 r == -EACCES ? "user-disabled" : "store", "Automatic login failed",
                 derr.detail[0] ? derr.detail : "The login could not be recorded; try again.");
  } else {
    log_info("automatic login of %s as %s", principal, login.login);
    ret = http_reply_json(req, MHD_HTTP_OK,
                          directory_login_reply(login.token, login.login, login.expires));
  }
  directory_login_clear(&login);
  problem_clear(&derr);
  return ret;
}

static struct {
  pthread_mutex_t lock;
  char text[800];
  int64_t at;
} last_error = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void remember_error(const char *what, const char *err) {
  pthread_mutex_lock(&last_error.lock);
  snprintf(last_error.text, sizeof last_error.text, "%s: %.700s", what, err);
  last_error.at = (int64_t)time(NULL);
  pthread_mutex_unlock(&last_error.lock);
}

void publishing_login_auto_last_error(char *buf, size_t len, int64_t *at) {
  pthread_mutex_lock(&last_error.lock);
  snprintf(buf, len, "%s", last_error.text);
  *at = last_error.at;
  pthread_mutex_unlock(&last_error.lock);
}

enum MHD_Result publishing_login_auto(http_request_t *req) {
  settings_snapshot_t *snap = settings_acquire();
  bool allowed = settings_bool(snap, "login.allow_automatic");
  char keytab[4096];
  snprintf(keytab, sizeof keytab, "%s", settings_string(snap, "login.kerberos_keytab"));
  settings_release(snap);

  if (!allowed)
    return refuse(req, MHD_HTTP_FORBIDDEN, "automatic-login-disabled", "Automatic login is disabled",
                  "Automatic login is disabled on this server (Allow automatic login is off); log "
                  "in with your login name and password.");
  if (!keytab[0])
    return refuse(req, MHD_HTTP_FORBIDDEN, "automatic-login-unavailable",
                  "Automatic login is not set up",
                  "Automatic login is not set up on this server: no Kerberos keytab is configured "
                  "(login.kerberos_keytab); log in with your login name and password.");

  const char *authz = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!authz || strncasecmp(authz, "Negotiate", 9) != 0 || (authz[9] != ' ' && authz[9] != '\0')) {
    http_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Negotiate");
    return refuse(req, MHD_HTTP_UNAUTHORIZED, "negotiate-required", "Kerberos ticket required",
                  "Send a Kerberos ticket in \"Authorization: Negotiate <token>\" (integrated "
                  "Windows login).");
  }
  const char *token = authz + 9;
  while (*token == ' ') token++;

  kerberos_result_t kr;
  char err[768];
  int r = kerberos_accept(keytab, token, &kr, err, sizeof err);
  char detail[1600];
  switch (r) {
  case 0: break;
  case -ENOENT:
    log_warning("automatic login unavailable: %s", err);
    remember_error("Automatic login failed", err);
    return refuse(req, MHD_HTTP_SERVICE_UNAVAILABLE, "kerberos-unavailable",
                  "Automatic login is not available",
                  "The server cannot check Kerberos tickets at the moment (its keytab is not "
                  "usable); log in with your login name and password and tell the administrator.");
  case -EINVAL:
    snprintf(detail, sizeof detail, "%s Send a Kerberos (SPNEGO) token as produced by the Windows "
             "login or kinit.", err);
    return refuse(req, MHD_HTTP_BAD_REQUEST, "malformed-negotiate", "Malformed Negotiate token",
                  detail);
  case -EPROTO:
    return refuse(req, MHD_HTTP_UNAUTHORIZED, "kerberos-only", "Kerberos required", err);
  case -ENOMEM: return http_reply_oom(req);
  default:
    log_notice("automatic login: Kerberos ticket from %s refused: %s", http_client_address(req),
               err);
    remember_error("A Kerberos ticket was refused", err);
    snprintf(detail, sizeof detail,
             "The Kerberos ticket was not accepted: %s. Log in to Windows again (or run kinit) "
             "and retry, or log in with your login name and password.",
             err);
    return refuse(req, MHD_HTTP_UNAUTHORIZED, "kerberos-refused", "Kerberos ticket refused",
                  detail);
  }
  if (kr.reply_b64) {
    char h[KERBEROS_TOKEN_MAX / 3 * 4 + 16];
    snprintf(h, sizeof h, "Negotiate %s", kr.reply_b64);
    http_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, h);
  }
  enum MHD_Result ret = login_user(req, kr.principal);
  kerberos_result_clear(&kr);
  return ret;
}

/* ---- GET /api/v1/publishing/status ----------------------------------------------------------- */

static json_t *time_or_null(int64_t t) {
  if (!t) return json_null();
  char buf[32];
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
    return json_null();
  return json_string(buf);
}

enum MHD_Result publishing_status_api(http_request_t *req) {
  discovery_status_t d;
  discovery_get_status(&d);
  ad_publish_status_t a;
  ad_publish_get_status(&a);
  settings_snapshot_t *snap = settings_acquire();
  bool publish = settings_bool(snap, "login.publish_address");
  bool allow = settings_bool(snap, "login.allow_automatic");
  const char *keytab = settings_string(snap, "login.kerberos_keytab");
  json_t *kt = json_pack("{s:b, s:s, s:b}", "allowed", allow, "keytab", keytab, "keytab_readable",
                         keytab[0] && access(keytab, R_OK) == 0);
  settings_release(snap);

  json_t *dropped = json_object();
  for (int i = 0; dropped && i < DISCOVERY_DROP_COUNT; i++)
    json_object_set_new(dropped, discovery_drop_name((discovery_drop_t)i),
                        json_integer((json_int_t)d.dropped[i]));
  json_t *disc = json_pack("{s:b, s:i, s:s?, s:I, s:I, s:o}", "running", d.running, "port", d.port,
                           "message", d.message[0] ? d.message : NULL, "datagrams",
                           (json_int_t)d.queries, "answers", (json_int_t)d.answers, "dropped",
                           dropped);
  json_t *ad = json_pack("{s:s, s:s, s:s, s:s?, s:i, s:o, s:o}", "state", a.state, "uri", a.uri,
                         "dn", a.dn, "message", a.message[0] ? a.message : NULL, "failures",
                         (int)a.failures, "last_success", time_or_null(a.last_success),
                         "next_retry_seconds",
                         a.next_retry_ms < 0 ? json_null()
                                             : json_real((double)a.next_retry_ms / 1000.0));
  json_t *body = json_pack("{s:b, s:o, s:o, s:o}", "publish_address", publish, "discovery", disc,
                           "active_directory", ad, "automatic_login", kt);
  return http_reply_json(req, MHD_HTTP_OK, body);
}
