/* The pages atriumd publishes to users: UM settings (voicemail, fax and SMS
 * notification preferences of a logged-in user) and the built-in
 * documentation.
 *
 * Pages are server-rendered HTML with every value escaped; their scripts are
 * separate files (the Content-Security-Policy is default-src 'self'). Every
 * link and request of a page is relative to it, so the pages work under
 * whatever path the reverse proxy publishes them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/settings.h"
#include "core/log.h"
#include "core/validate.h"
#include "http/page.h"
#include "mod/directory/directory.h"
#include "mod/published/internal.h"
#include "mod/published/published.h"

static const char *last_segment(const char *path) {
  const char *slash = path ? strrchr(path, '/') : NULL;
  return slash ? slash + 1 : "";
}

const published_doc_t *published_doc_find(const char *path) {
  size_t lo = 0, hi = published_docs_count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(path, published_docs[mid].path);
    if (c == 0) return &published_docs[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

static enum MHD_Result reply_doc(http_request_t *req, const published_doc_t *d) {
  /* Compiled in: they change with the binary, so revalidate, never store stale. */
  http_add_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  return http_reply_buffer(req, MHD_HTTP_OK, d->content_type, d->bytes, d->length, NULL, NULL);
}

enum MHD_Result published_reply_asset(http_request_t *req, const char *script) {
  const char *name = last_segment(http_path(req));
  const published_doc_t *d = NULL;
  if (strcmp(name, "pages.css") == 0 || strcmp(name, script) == 0) d = published_doc_find(name);
  if (!d) return page_reply_message(req, MHD_HTTP_NOT_FOUND, "Not found", "There is no such page.");
  return reply_doc(req, d);
}

/* /umsettings/{file}: the page's script and style. */
enum MHD_Result published_um_asset(http_request_t *req) {
  return published_reply_asset(req, "um.js");
}

/* ---- UM settings: notification preferences ----------------------------------------------- */

typedef struct channel {
  const char *name;
  const char *title;
  const char *notify_label;
  const char *attach_label; /* NULL: the channel has nothing to attach */
} channel_t;

static const channel_t channels[] = {
    {.name = "voicemail", .title = "Voicemail",
     .notify_label = "Send me an e-mail for each new voicemail",
     .attach_label = "Attach the recording"},
    {.name = "fax", .title = "Fax", .notify_label = "Send me an e-mail for each fax received",
     .attach_label = "Attach the fax as PDF"},
    {.name = "sms", .title = "SMS", .notify_label = "Forward each SMS received to my e-mail"},
};
#define N_CHANNELS (sizeof channels / sizeof channels[0])
#define EMAIL_MAX 254

enum MHD_Result published_um_page(http_request_t *req) {
  settings_snapshot_t *snap = settings_acquire();
  char domain[256];
  snprintf(domain, sizeof domain, "%s", settings_string(snap, "domain.name"));
  settings_release(snap);
  page_t p;
  if (page_open(&p, "en", "UM settings", "um.js") != 0) return http_reply_oom(req);
  FILE *f = p.f;
  fputs("<h1>UM settings</h1>\n<p>Notifications for voicemail, fax and SMS of your account.</p>\n"
        "<noscript><p class=\"error\">This page needs JavaScript.</p></noscript>\n"
        "<form id=\"login\" hidden>\n"
        "<label>Login name <input name=\"login\" autocomplete=\"username\" required "
        "placeholder=\"name@",
        f);
  page_escape(f, domain);
  fputs("\"></label>\n"
        "<label>Password <input name=\"password\" type=\"password\" "
        "autocomplete=\"current-password\" required></label>\n"
        "<button>Log in</button>\n<p class=\"error\" id=\"login-error\" role=\"alert\"></p>\n"
        "</form>\n<form id=\"prefs\" hidden>\n"
        "<p>Logged in as <strong id=\"who\"></strong> "
        "<button type=\"button\" id=\"logout\">Log out</button></p>\n",
        f);
  for (size_t i = 0; i < N_CHANNELS; i++) {
    const channel_t *c = &channels[i];
    fprintf(f, "<fieldset data-channel=\"%s\"><legend>%s</legend>\n", c->name, c->title);
    fprintf(f, "<label><input type=\"checkbox\" name=\"notify\"> %s</label>\n", c->notify_label);
    fputs("<label>E-mail address <input type=\"email\" name=\"email\" maxlength=\"254\">"
          "</label>\n",
          f);
    if (c->attach_label)
      fprintf(f, "<label><input type=\"checkbox\" name=\"attach\"> %s</label>\n", c->attach_label);
    fputs("</fieldset>\n", f);
  }
  fputs("<button>Save</button>\n<p id=\"status\" role=\"status\"></p>\n</form>\n", f);
  return page_reply(req, MHD_HTTP_OK, &p);
}

/* Same login, throttling and answers as POST /client/v1/login. */
enum MHD_Result published_um_login(http_request_t *req) { return directory_client_login(req); }

/* The user behind the Bearer client token; on failure a reply is queued. */
static json_t *um_user(http_request_t *req, enum MHD_Result *ret) {
  const char *token = http_bearer_token(http_header(req, MHD_HTTP_HEADER_AUTHORIZATION));
  if (!token) {
    http_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"atrium-client\"");
    *ret = http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Log in first",
                              "Log in with your login name and password.", NULL);
    return NULL;
  }
  json_t *user = NULL;
  problem_t err = {0};
  int r = directory_token_user(http_store(req), token, &user, &err);
  if (r == 0) {
    problem_clear(&err);
    return user;
  }
  if (r == -EACCES || r == -ESTALE) {
    http_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"atrium-client\"");
    *ret = http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Log in again",
                              err.detail[0] ? err.detail
                                            : "The login has expired; log in again.",
                              NULL);
    problem_clear(&err);
    return NULL;
  }
  *ret = directory_reply_error(req, r, &err, "login");
  return NULL;
}

typedef struct prefs {
  bool notify[N_CHANNELS];
  char email[N_CHANNELS][EMAIL_MAX + 1];
  bool attach[N_CHANNELS];
} prefs_t;

static int channel_index(const char *name) {
  for (size_t i = 0; i < N_CHANNELS; i++)
    if (strcmp(channels[i].name, name) == 0) return (int)i;
  return -1;
}

static void pref_row(const char *channel, bool notify, const char *email, bool attach,
                     void *ctx) {
  prefs_t *p = ctx;
  int c = channel ? channel_index(channel) : -1;
  if (c < 0) return;
  p->notify[c] = notify;
  snprintf(p->email[c], sizeof p->email[c], "%s", email);
  p->attach[c] = channels[c].attach_label && attach;
}

static int prefs_load(store_t *store, const char *name, prefs_t *p) {
  memset(p, 0, sizeof *p);
  store_txn_t *t;
  int r = store_read_begin(store, "read notification preferences", &t);
  if (r < 0) return r;
  r = store_prefs_get(t, name, pref_row, p);
  store_read_end(t);
  return r;
}

typedef struct prefs_write {
  const char *name;
  const prefs_t *p;
  const bool *given;
} prefs_write_t;

static int prefs_txn(store_txn_t *t, void *vctx) {
  const prefs_write_t *w = vctx;
  for (size_t c = 0; c < N_CHANNELS; c++) {
    if (!w->given[c]) continue;
    int r = store_pref_put(t, w->name, channels[c].name, w->p->notify[c], w->p->email[c],
                           w->p->attach[c]);
    if (r < 0) return r;
  }
  return 0;
}

static int prefs_save(store_t *store, const char *name, const prefs_t *p, const bool *given) {
  prefs_write_t w = {.name = name, .p = p, .given = given};
  return store_run_txn(store, "save notification preferences", prefs_txn, &w);
}

static enum MHD_Result reply_prefs(http_request_t *req, const json_t *user, const prefs_t *p) {
  json_t *n = json_object();
  for (size_t c = 0; n && c < N_CHANNELS; c++) {
    json_t *one = json_pack("{s:b, s:s}", "notify", p->notify[c], "email", p->email[c]);
    if (one && channels[c].attach_label)
      json_object_set_new(one, "attach", json_boolean(p->attach[c]));
    json_object_set_new(n, channels[c].name, one);
  }
  const json_t *dn = json_object_get(user, "display_name");
  return http_reply_json(
      req, MHD_HTTP_OK,
      json_pack("{s:O, s:O, s:O, s:o}", "name", json_object_get(user, "name"), "login",
                json_object_get(user, "login"), "display_name", dn ? dn : json_null(),
                "notifications", n));
}

enum MHD_Result published_um_get(http_request_t *req) {
  enum MHD_Result ret;
  json_t *user = um_user(req, &ret);
  if (!user) return ret;
  prefs_t p;
  int r = prefs_load(http_store(req), json_string_value(json_object_get(user, "name")), &p);
  if (r != 0) {
    json_decref(user);
    return directory_reply_error(req, r, NULL, "user");
  }
  ret = reply_prefs(req, user, &p);
  json_decref(user);
  return ret;
}

/* An address to send notifications to: local@domain, the domain a DNS name of
 * two or more labels. Deliberately plain: no quoted local parts, no
 * comments, no address literals. */
static int check_email(const char *s, char *msg, size_t len) {
  size_t n = strlen(s);
  const char *at = strrchr(s, '@');
  if (n > EMAIL_MAX || !at || at == s || (size_t)(at - s) > 64)
    return snprintf(msg, len, "must be an e-mail address such as name@example.com"), -EINVAL;
  for (const char *p = s; p < at; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || strchr("\"(),:;<>@[\\]", *p))
      return snprintf(msg, len, "the part before '@' holds a character not allowed here"), -EINVAL;
  char *host = NULL;
  validate_error_t verr;
  if (validate_host(at + 1, HOST_TWO_LABELS, &host, &verr) != 0)
    return snprintf(msg, len, "the domain: %.150s", verr.message), -EINVAL;
  free(host);
  return 0;
}

static void add_error(json_t *errors, const char *channel, const char *field, const char *msg) {
  char key[64];
  snprintf(key, sizeof key, "%s%s%s", channel, field ? "." : "", field ? field : "");
  json_array_append_new(errors, json_pack("{s:s, s:s}", "key", key, "message", msg));
}

/* Checks a PUT body into *p (over the current values); given[c] marks the
 * channels it sets. Every problem goes into errors. */
static void prefs_parse(const json_t *body, prefs_t *p, bool *given, json_t *errors) {
  if (!json_is_object(body) || json_object_size(body) == 0) {
    add_error(errors, "notifications", NULL,
              "send an object with voicemail, fax and/or sms, each {\"notify\", \"email\", "
              "\"attach\"}");
    return;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    int c = channel_index(key);
    if (c < 0) {
      add_error(errors, key, NULL, "is not a channel; use voicemail, fax or sms");
      continue;
    }
    if (!json_is_object(v)) {
      add_error(errors, key, NULL, "must be an object {\"notify\", \"email\"...}");
      continue;
    }
    given[c] = true;
    const char *k2;
    json_t *v2;
    json_object_foreach(v, k2, v2) {
      if (strcmp(k2, "notify") && strcmp(k2, "email") &&
          (strcmp(k2, "attach") || !channels[c].attach_label))
        add_error(errors, key, k2, channels[c].attach_label
                                       ? "is not a field; use notify, email and attach"
                                       : "is not a field; use notify and email");
    }
    const json_t *jn = json_object_get(v, "notify"), *je = json_object_get(v, "email"),
                 *ja = json_object_get(v, "attach");
    if (jn && !json_is_boolean(jn)) add_error(errors, key, "notify", "must be true or false");
    else if (jn) p->notify[c] = json_is_true(jn);
    if (ja && channels[c].attach_label) {
      if (!json_is_boolean(ja)) add_error(errors, key, "attach", "must be true or false");
      else p->attach[c] = json_is_true(ja);
    }
    if (je && !json_is_string(je)) {
      add_error(errors, key, "email", "must be a string");
    } else if (je) {
      char msg[200];
      const char *email = json_string_value(je);
      if (*email && check_email(email, msg, sizeof msg) != 0)
        add_error(errors, key, "email", msg);
      else
        snprintf(p->email[c], sizeof p->email[c], "%s", email);
    }
    if (p->notify[c] && !p->email[c][0] && !(je && json_is_string(je) && *json_string_value(je)))
      add_error(errors, key, "email", "is needed to send notifications; give an address");
  }
}

enum MHD_Result published_um_put(http_request_t *req) {
  enum MHD_Result ret;
  json_t *user = um_user(req, &ret);
  if (!user) return ret;
  const char *name = json_string_value(json_object_get(user, "name"));
  prefs_t p;
  int r = prefs_load(http_store(req), name, &p);
  if (r != 0) {
    json_decref(user);
    return directory_reply_error(req, r, NULL, "user");
  }
  bool given[N_CHANNELS] = {false};
  json_t *errors = json_array();
  if (!errors) {
    json_decref(user);
    return http_reply_oom(req);
  }
  prefs_parse(http_body_json(req), &p, given, errors);
  if (json_array_size(errors) > 0) {
    ret = http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation",
                             "Invalid notification settings",
                             "Nothing was changed; correct the fields named below.", errors);
    json_decref(errors);
    json_decref(user);
    return ret;
  }
  json_decref(errors);
  r = prefs_save(http_store(req), name, &p, given);
  if (r != 0) {
    json_decref(user);
    return directory_reply_error(req, r, NULL, "user");
  }
  log_info("UM settings: %s changed notification preferences", name);
  ret = reply_prefs(req, user, &p);
  json_decref(user);
  return ret;
}

/* ---- documentation ------------------------------------------------------------------------ */

enum MHD_Result published_docs_page(http_request_t *req) {
  settings_snapshot_t *snap = settings_acquire();
  bool builtin = published_docs_builtin(snap);
  char url[PUBLISHED_URL_MAX];
  snprintf(url, sizeof url, "%s", settings_string(snap, "docs.url"));
  settings_release(snap);
  if (!builtin) {
    /* The documentation lives elsewhere: send people there. */
    http_add_header(req, MHD_HTTP_HEADER_LOCATION, url);
    return page_reply_message(req, MHD_HTTP_FOUND, "Documentation",
                         "The documentation of this server is published elsewhere.");
  }
  const char *path = http_path(req) + strlen(PUBLISHED_PATH_DOCS);
  const published_doc_t *d = published_doc_find(*path ? path : "index.html");
  if (!d)
    return page_reply_message(req, MHD_HTTP_NOT_FOUND, "Not found",
                         "There is no such page in the documentation.");
  return reply_doc(req, d);
}
