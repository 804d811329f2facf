/* "Test connection": validate the unsaved proxy values like a PATCH would,
 * contact the license server once with them, and explain the outcome. */
#include "mod/outbound/proxy_test.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "conf/catalogue.h"

#define PROXY_PREFIX "proxy."
#define PASSWORD_KEY "proxy.password"

/* ---- the values to test ------------------------------------------------------------------ */

static int add_error(json_t *errors, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_error(json_t *errors, const char *key, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return json_array_append_new(errors, json_pack("{s:s, s:s}", "key", key, "message", msg)) == 0
             ? 0
             : -ENOMEM;
}

/* The password the request asks for: the saved one, none, or a new one. */
static int password_value(const settings_snapshot_t *snap, const json_t *given, json_t *errors,
                          json_t **out) {
  const json_t *saved = settings_value(snap, PASSWORD_KEY);
  if (!given) {
    *out = saved ? json_incref((json_t *)saved) : json_null();
    return 0;
  }
  if (json_is_object(given)) {
    /* The form sends back what GET gave it: {"set": true} for "unchanged". */
    const json_t *set = json_object_get(given, "set");
    if (json_object_size(given) == 1 && json_is_boolean(set)) {
      *out = json_is_true(set) && saved ? json_incref((json_t *)saved) : json_null();
      return 0;
    }
    return add_error(errors, PASSWORD_KEY,
                     "Must be the new password as text, {\"set\": true} to test with the saved "
                     "password, or null for none.");
  }
  if (json_is_null(given) || (json_is_string(given) && json_string_length(given) == 0)) {
    *out = json_null();
    return 0;
  }
  int i = catalogue_find(PASSWORD_KEY);
  validate_error_t verr;
  json_t *norm = NULL;
  if (catalogue_check(&catalogue[i], given, &norm, &verr) < 0)
    return add_error(errors, PASSWORD_KEY, "%s", verr.message[0] ? verr.message : "Is invalid.");
  *out = norm;
  return 0;
}

static int one_value(const setting_def_t *def, const json_t *given, json_t *errors, json_t **out) {
  if (json_is_null(given)) {
    *out = def->default_json ? json_loads(def->default_json, JSON_DECODE_ANY, NULL) : json_null();
    return *out ? 0 : -ENOMEM;
  }
  validate_error_t verr;
  json_t *norm = NULL;
  if (catalogue_check(def, given, &norm, &verr) < 0) {
    if (verr.field[0])
      return add_error(errors, def->key, "%s: %s", verr.field,
                       verr.message[0] ? verr.message : "Is invalid.");
    return add_error(errors, def->key, "%s", verr.message[0] ? verr.message : "Is invalid.");
  }
  *out = norm;
  return 0;
}

int proxy_test_values(const settings_snapshot_t *snap, const json_t *body, json_t **values,
                      json_t **errors) {
  *values = NULL;
  *errors = NULL;
  if (body && !json_is_object(body)) return -EBADMSG;
  json_t *vals = json_object();
  json_t *errs = json_array();
  int r = vals && errs ? 0 : -ENOMEM;

  const char *key;
  json_t *given;
  json_object_foreach((json_t *)body, key, given) {
    if (r < 0) break;
    int i = catalogue_find(key);
    if (strncmp(key, PROXY_PREFIX, strlen(PROXY_PREFIX)) != 0)
      r = add_error(errs, key,
                    "Only the proxy settings (proxy.*) can be tried out here; the license "
                    "server URL and other settings are tested as saved.");
    else if (i < 0)
      r = add_error(errs, key, "Is not a proxy setting; see GET /api/v1/settings/schema.");
  }
  /* Every proxy.* key: the request's value, else the saved one. */
  for (size_t i = 0; r == 0 && i < catalogue_count; i++) {
    const setting_def_t *def = &catalogue[i];
    if (strncmp(def->key, PROXY_PREFIX, strlen(PROXY_PREFIX)) != 0) continue;
    given = json_object_get(body, def->key);
    json_t *v = NULL;
    if (def->type == SETTING_SECRET)
      r = password_value(snap, given, errs, &v);
    else if (given)
      r = one_value(def, given, errs, &v);
    else
      v = json_incref((json_t *)settings_value(snap, def->key));
    if (r == 0 && v && json_object_set_new(vals, def->key, v) < 0) r = -ENOMEM;
  }

  /* The cross-field rules of a PATCH, worded the same way. */
  if (r == 0 && json_array_size(errs) == 0) {
    const char *host = json_string_value(json_object_get(vals, "proxy.host"));
    const char *user = json_string_value(json_object_get(vals, "proxy.username"));
    if (json_is_true(json_object_get(vals, "proxy.enabled")) && (!host || !*host))
      r = add_error(errs, "proxy.host",
                    "Is required when \"Use proxy server\" is on: enter the proxy's host name or "
                    "IP address, or turn the proxy off.");
    if (r == 0 && json_is_true(json_object_get(vals, "proxy.auth_required")) && (!user || !*user))
      r = add_error(errs, "proxy.username",
                    "Is required when the proxy server requires authentication: enter the user "
                    "name, or turn authentication off.");
  }

  if (r == 0 && json_array_size(errs) > 0) {
    *errors = errs;
    errs = NULL;
    r = -EINVAL;
  } else if (r == 0) {
    *values = vals;
    vals = NULL;
  }
  /* The object may hold a password: no copy of it outlives this call. */
  json_decref(vals);
  json_decref(errs);
  return r;
}

/* ---- explaining the outcome --------------------------------------------------------------- */

static const char *auth_label(outbound_auth_t auth) {
  switch (auth) {
  case OUTBOUND_AUTH_BASIC: return "Basic";
  case OUTBOUND_AUTH_DIGEST: return "Digest";
  case OUTBOUND_AUTH_NTLM: return "NTLM";
  case OUTBOUND_AUTH_NEGOTIATE: return "Negotiate";
  case OUTBOUND_AUTH_NONE: break;
  }
  return "none";
}

/* "Basic or Digest" for a bit set of offered schemes. */
static void offered_list(unsigned offered, char *buf, size_t len) {
  buf[0] = '\0';
  size_t count = 0;
  for (int a = OUTBOUND_AUTH_BASIC; a <= OUTBOUND_AUTH_NEGOTIATE; a++)
    if (offered & (1u << a)) count++;
  size_t seen = 0;
  for (int a = OUTBOUND_AUTH_BASIC; a <= OUTBOUND_AUTH_NEGOTIATE; a++) {
    if (!(offered & (1u << a))) continue;
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", seen == 0 ? "" : seen + 1 == count ? " or " : ", ",
             auth_label((outbound_auth_t)a));
    seen++;
  }
}

/* host[:port] of the license server URL, for the messages. */
static void url_authority(const char *url, char *buf, size_t len) {
  snprintf(buf, len, "%s", url ? url : "");
  CURLU *u = curl_url();
  char *host = NULL, *port = NULL;
  if (u && url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
      snprintf(buf, len, "%s:%s", host, port);
    else
      snprintf(buf, len, "%s", host);
  }
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
}

static void say(proxy_test_result_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(proxy_test_result_t *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->message, sizeof out->message, fmt, ap);
  va_end(ap);
}

#define NO_PROXY_HINT                                                                             \
  " If this network reaches the Internet only through a proxy, turn on \"Use proxy server\"."

void proxy_test_explain(const outbound_response_t *resp, const outbound_proxy_t *proxy,
                        const char *license_url, long timeout_ms, proxy_test_result_t *out) {
  memset(out, 0, sizeof *out);
  out->elapsed_ms = resp->elapsed_ms;
  out->via_proxy = resp->via_proxy;
  char server[300];
  url_authority(license_url, server, sizeof server);
  char px[OUTBOUND_HOST_MAX + 16] = "";
  if (proxy && proxy->host[0]) {
    bool v6 = strchr(proxy->host, ':') != NULL;
    snprintf(px, sizeof px, "%s%s%s:%d", v6 ? "[" : "", proxy->host, v6 ? "]" : "", proxy->port);
  }
  long seconds = ((timeout_ms > 0 ? timeout_ms : PROXY_TEST_TIMEOUT_MS) + 999) / 1000;
  char offered[64];
  offered_list(resp->proxy_auth_offered, offered, sizeof offered);
  outbound_auth_t used = proxy ? proxy->auth : OUTBOUND_AUTH_NONE;

  out->stage = outbound_stage_name(resp->stage);
  switch (resp->stage) {
  case OUTBOUND_STAGE_OK:
    out->http_status = resp->status;
    if (resp->status >= 200 && resp->status < 300) {
      out->ok = true;
      say(out, "The license server could be contacted successfully.");
    } else if (resp->status >= 300 && resp->status < 400) {
      out->stage = "server_http";
      say(out,
          "The license server %s answered with a redirect (HTTP %ld) instead of the license "
          "information. Check the license server URL: it must name the service itself.",
          server, resp->status);
    } else {
      out->stage = "server_http";
      say(out,
          "The license server %s was reached but answered with the error HTTP %ld. The "
          "connection works; check the license server URL, or try again later if the server "
          "is unavailable.",
          server, resp->status);
    }
    return;
  case OUTBOUND_STAGE_PROXY_RESOLVE:
    say(out,
        "The proxy host name %s does not resolve. Check the name, and make sure this server has "
        "a working DNS server.",
        proxy ? proxy->host : "");
    return;
  case OUTBOUND_STAGE_PROXY_CONNECT:
    say(out,
        "The proxy %s refuses the connection. Check the proxy's host and port, and that the "
        "proxy is running and accepts connections from this server.",
        px);
    return;
  case OUTBOUND_STAGE_PROXY_TIMEOUT:
    say(out,
        "The proxy %s does not answer within %ld seconds. Check the proxy's host and port, and "
        "that no firewall between this server and the proxy drops the connection.",
        px, seconds);
    return;
  case OUTBOUND_STAGE_PROXY_AUTH:
    out->http_status = resp->connect_status ? resp->connect_status : resp->status;
    if (!resp->credentials_sent) {
      say(out,
          "The proxy %s demands authentication (HTTP 407). Turn on \"The proxy server requires "
          "authentication\" and enter the user name and password%s%s%s.",
          px, offered[0] ? "; the proxy offers " : "", offered,
          offered[0] ? " authentication" : "");
    } else if (resp->proxy_auth_offered && !(resp->proxy_auth_offered & (1u << used))) {
      say(out,
          "The proxy %s does not accept %s authentication (HTTP 407); it offers %s. Choose that "
          "authentication method.",
          px, auth_label(used), offered);
    } else {
      say(out,
          "The proxy %s rejects the credentials (HTTP 407). Check the user name and the password, "
          "and that the authentication method (%s) is the one the proxy expects.",
          px, auth_label(used));
    }
    return;
  case OUTBOUND_STAGE_PROXY_TUNNEL:
    out->http_status = resp->connect_status;
    say(out,
        "The proxy %s refuses to open a connection to the license server %s (HTTP %ld to "
        "CONNECT). Ask the proxy's administrator to allow HTTPS connections from this server to "
        "%s.",
        px, server, resp->connect_status, server);
    return;
  case OUTBOUND_STAGE_SERVER_RESOLVE:
    out->http_status = resp->connect_status;
    if (resp->via_proxy)
      say(out,
          "The proxy %s cannot resolve the license server's name (%s). Check the license server "
          "URL, and ask the proxy's administrator whether the proxy's DNS works.",
          px, server);
    else
      say(out,
          "The license server's name (%s) does not resolve. Check the license server URL, and "
          "make sure this server has a working DNS server." NO_PROXY_HINT,
          server);
    return;
  case OUTBOUND_STAGE_SERVER_CONNECT:
    out->http_status = resp->connect_status;
    if (resp->via_proxy)
      say(out,
          "The proxy %s cannot reach the license server %s: the name may not resolve there, or "
          "the connection is refused. Check the license server URL, and ask the proxy's "
          "administrator whether the proxy may reach that server.",
          px, server);
    else
      say(out,
          "The license server %s refuses the connection or cannot be reached. Check the license "
          "server URL and the firewall." NO_PROXY_HINT,
          server);
    return;
  case OUTBOUND_STAGE_SERVER_TIMEOUT:
    say(out,
        "The license server %s does not answer within %ld seconds%s. Check the license server "
        "URL and the firewall, or try again later.",
        server, seconds, resp->via_proxy ? " (through the proxy)" : "");
    return;
  case OUTBOUND_STAGE_TLS:
    if (resp->curl_code == CURLE_PEER_FAILED_VERIFICATION)
      say(out,
          "The license server's certificate (%s) is not trusted: it is not signed by a trusted "
          "certificate authority, or does not name that host. If a proxy or firewall inspects "
          "HTTPS, add its CA certificate to the file named by <CABundle> in atlas.xml; "
          "otherwise check the license server URL.",
          server);
    else if (resp->curl_code == CURLE_SSL_CACERT_BADFILE)
      say(out,
          "The CA bundle named by <CABundle> in atlas.xml cannot be used. Check that the file "
          "holds PEM certificates and is readable by the server.");
    else
      say(out,
          "No encrypted connection to the license server %s could be established (the TLS "
          "handshake failed: %s). Check the license server URL; if a proxy or firewall inspects "
          "HTTPS, ask its administrator to let this connection through.",
          server, curl_easy_strerror((CURLcode)resp->curl_code));
    return;
  case OUTBOUND_STAGE_INVALID:
    say(out,
        "The license server URL %s cannot be used for the test. Set an https URL under "
        "license.server_url.",
        license_url ? license_url : "");
    return;
  case OUTBOUND_STAGE_PROTOCOL:
    out->http_status = resp->status;
    say(out,
        "The exchange with the license server %s failed (%s). Check the license server URL%s.",
        server, curl_easy_strerror((CURLcode)resp->curl_code),
        resp->via_proxy ? " and the proxy" : "");
    return;
  case OUTBOUND_STAGE_INTERNAL:
    break;
  }
  out->stage = "internal";
  say(out, "The test could not run because this server ran out of resources. Try again.");
}

int proxy_test_run(const json_t *values, const char *license_url, long timeout_ms,
                   proxy_test_result_t *out) {
  if (!out || !license_url) return -EINVAL;
  memset(out, 0, sizeof *out);
  outbound_proxy_t proxy;
  int r = outbound_proxy_from_values(values, &proxy);
  if (r < 0) return r;
  long budget = timeout_ms > 0 ? timeout_ms : PROXY_TEST_TIMEOUT_MS;
  outbound_request_t req = {
      .purpose = OUTBOUND_LICENSE,
      .method = "GET",
      .url = license_url,
      .connect_timeout_ms = budget,
      .timeout_ms = budget,
      /* A redirect would reach a URL the admin did not name. */
      .max_redirects = 0,
      .max_body = 64 * 1024,
  };
  outbound_response_t resp;
  r = outbound_perform(&req, &proxy, &resp);
  if (r == -ENOMEM && resp.stage == OUTBOUND_STAGE_INTERNAL) {
    outbound_response_clear(&resp);
    outbound_proxy_clear(&proxy);
    return -ENOMEM;
  }
  proxy_test_explain(&resp, &proxy, license_url, budget, out);
  outbound_response_clear(&resp);
  outbound_proxy_clear(&proxy);
  return 0;
}
