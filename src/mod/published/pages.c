/* The pages atriumd publishes to users and guests: UM settings (voicemail,
 * fax and SMS notification preferences of a logged-in user), the web meeting
 * guest registration with the privacy policy and the meeting's WebSocket,
 * and the built-in documentation.
 *
 * Pages are server-rendered HTML with every value escaped; their scripts are
 * separate files (the Content-Security-Policy is default-src 'self'). Every
 * link and request of a page is relative to it, so the pages work under
 * whatever path the reverse proxy publishes them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>
#include <sqlite3.h>
#include <wslay/wslay.h>

#include "http/api.h"
#include "mod/directory/directory.h"
#include "core/log.h"
#include "mod/published/privacy.h"
#include "mod/published/published.h"
#include "conf/settings.h"
#include "core/validate.h"

/* ---- HTML ------------------------------------------------------------------------------ */

static void html_escape(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&#39;", f); break;
    default: fputc(*s, f);
    }
  }
}

typedef struct page {
  FILE *f;
  char *buf;
  size_t len;
} page_t;

static int page_open(page_t *p, const char *lang, const char *title, const char *script) {
  p->buf = NULL;
  p->len = 0;
  p->f = open_memstream(&p->buf, &p->len);
  if (!p->f) return -ENOMEM;
  fprintf(p->f, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          lang);
  html_escape(p->f, title);
  fputs("</title>\n<link rel=\"stylesheet\" href=\"pages.css\">\n", p->f);
  if (script) fprintf(p->f, "<script type=\"module\" src=\"%s\"></script>\n", script);
  fputs("</head>\n<body>\n<main>\n", p->f);
  return 0;
}

static enum MHD_Result page_reply(http_request_t *req, unsigned status, page_t *p) {
  fputs("</main>\n</body>\n</html>\n", p->f);
  bool bad = ferror(p->f) != 0;
  if (fclose(p->f) != 0 || bad) {
    free(p->buf);
    return http_reply_oom(req);
  }
  return http_reply_buffer(req, status, "text/html; charset=utf-8", p->buf, p->len, free, p->buf);
}

/* A page with one heading and one sentence (404s of the published paths). */
static enum MHD_Result reply_message(http_request_t *req, unsigned status, const char *title,
                                     const char *sentence) {
  page_t p;
  if (page_open(&p, "en", title, NULL) != 0) return http_reply_oom(req);
  fputs("<h1>", p.f);
  html_escape(p.f, title);
  fputs("</h1>\n<p>", p.f);
  html_escape(p.f, sentence);
  fputs("</p>\n", p.f);
  return page_reply(req, status, &p);
}

static const char *last_segment(const char *path) {
  const char *slash = path ? strrchr(path, '/') : NULL;
  return slash ? slash + 1 : "";
}

static const published_doc_t *doc_find(const char *path) {
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

/* /umsettings/{file} and /webmeeting/{file}: the pages' script and style. */
enum MHD_Result api_pages_asset(http_request_t *req) {
  const char *path = http_path(req), *name = last_segment(path);
  bool um = strncmp(path, PUBLISHED_PATH_UM, strlen(PUBLISHED_PATH_UM)) == 0;
  const char *script = um ? "um.js" : "meeting.js";
  const published_doc_t *d = NULL;
  if (strcmp(name, "pages.css") == 0 || strcmp(name, script) == 0) d = doc_find(name);
  if (!d) return reply_message(req, MHD_HTTP_NOT_FOUND, "Not found", "There is no such page.");
  return reply_doc(req, d);
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

enum MHD_Result api_pages_um(http_request_t *req) {
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
  html_escape(f, domain);
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
enum MHD_Result api_pages_um_login(http_request_t *req) { return api_client_login(req); }

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
  directory_error_t err = {0};
  int r = directory_token_user(http_store(req), token, &user, &err);
  if (r == 0) {
    directory_error_clear(&err);
    return user;
  }
  if (r == -EACCES || r == -ESTALE) {
    http_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"atrium-client\"");
    *ret = http_reply_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Log in again",
                              err.detail[0] ? err.detail
                                            : "The login has expired; log in again.",
                              NULL);
    directory_error_clear(&err);
    return NULL;
  }
  *ret = api_directory_error(req, r, &err, "login");
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

/* (locked) The users.id of `name`. */
static int user_id(sqlite3 *db, const char *name, sqlite3_int64 *id) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT id FROM users WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
    return -EIO;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  int r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
  if (r == 0) *id = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return r;
}

static int prefs_load(store_t *store, const char *name, prefs_t *p) {
  memset(p, 0, sizeof *p);
  store_lock(store);
  sqlite3 *db = store_db(store);
  sqlite3_int64 id;
  int r = user_id(db, name, &id);
  sqlite3_stmt *st = NULL;
  if (r == 0 && sqlite3_prepare_v2(db,
                                   "SELECT channel, notify, email, attach FROM user_notifications "
                                   "WHERE user_id = ?",
                                   -1, &st, NULL) != SQLITE_OK)
    r = -EIO;
  if (r == 0) {
    sqlite3_bind_int64(st, 1, id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      int c = channel_index((const char *)sqlite3_column_text(st, 0));
      if (c < 0) continue;
      p->notify[c] = sqlite3_column_int(st, 1) != 0;
      const char *email = (const char *)sqlite3_column_text(st, 2);
      snprintf(p->email[c], sizeof p->email[c], "%s", email ? email : "");
      p->attach[c] = channels[c].attach_label && sqlite3_column_int(st, 3) != 0;
    }
    if (rc != SQLITE_DONE) r = -EIO;
  }
  sqlite3_finalize(st);
  store_unlock(store);
  return r;
}

static int prefs_save(store_t *store, const char *name, const prefs_t *p, const bool *given) {
  store_lock(store);
  sqlite3 *db = store_db(store);
  sqlite3_int64 id;
  int r = store_begin(store);
  if (r == 0) r = user_id(db, name, &id);
  sqlite3_stmt *st = NULL;
  if (r == 0 &&
      sqlite3_prepare_v2(db,
                         "INSERT OR REPLACE INTO user_notifications (user_id, channel, notify, "
                         "email, attach, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                         -1, &st, NULL) != SQLITE_OK)
    r = -EIO;
  char now[32];
  store_now_rfc3339(now);
  for (size_t c = 0; r == 0 && c < N_CHANNELS; c++) {
    if (!given[c]) continue;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, channels[c].name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, p->notify[c]);
    sqlite3_bind_text(st, 4, p->email[c], -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, p->attach[c]);
    sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) r = -EIO;
  }
  sqlite3_finalize(st);
  if (r == 0)
    r = store_commit(store);
  else
    store_rollback(store);
  store_unlock(store);
  return r;
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

enum MHD_Result api_pages_um_get(http_request_t *req) {
  enum MHD_Result ret;
  json_t *user = um_user(req, &ret);
  if (!user) return ret;
  prefs_t p;
  int r = prefs_load(http_store(req), json_string_value(json_object_get(user, "name")), &p);
  if (r != 0) {
    json_decref(user);
    return api_directory_error(req, r, NULL, "user");
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

enum MHD_Result api_pages_um_put(http_request_t *req) {
  enum MHD_Result ret;
  json_t *user = um_user(req, &ret);
  if (!user) return ret;
  const char *name = json_string_value(json_object_get(user, "name"));
  prefs_t p;
  int r = prefs_load(http_store(req), name, &p);
  if (r != 0) {
    json_decref(user);
    return api_directory_error(req, r, NULL, "user");
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
    return api_directory_error(req, r, NULL, "user");
  }
  log_info("UM settings: %s changed notification preferences", name);
  ret = reply_prefs(req, user, &p);
  json_decref(user);
  return ret;
}

/* ---- web meeting ----------------------------------------------------------------------- */

static const struct {
  const char *title, *intro, *name, *email, *consent, *join, *need_consent, *registered, *failed,
      *no_policy;
} meeting_text[PRIVACY_LANG_COUNT] = {
    [PRIVACY_LANG_EN] = {"Join the web meeting",
                         "Enter your name to register as a guest of the web meeting.",
                         "Your name", "E-mail (optional)",
                         "I have read the privacy policy below and agree to it.", "Register",
                         "Please agree to the privacy policy first.",
                         "Registered. The meeting has not started yet; keep this page open. Name:",
                         "The meeting server cannot be reached. Try again later.",
                         "The privacy policy is not available; the operator has been notified."},
    [PRIVACY_LANG_DE] = {"Am Web-Meeting teilnehmen",
                         "Geben Sie Ihren Namen ein, um sich als Gast des Web-Meetings "
                         "anzumelden.",
                         "Ihr Name", "E-Mail (optional)",
                         "Ich habe die Datenschutzerklärung unten gelesen und stimme ihr zu.",
                         "Anmelden", "Bitte stimmen Sie zuerst der Datenschutzerklärung zu.",
                         "Angemeldet. Das Meeting hat noch nicht begonnen; lassen Sie diese Seite "
                         "geöffnet. Name:",
                         "Der Meeting-Server ist nicht erreichbar. Versuchen Sie es später "
                         "erneut.",
                         "Die Datenschutzerklärung ist nicht verfügbar; der Betreiber wurde "
                         "benachrichtigt."},
};

static bool meeting_enabled(void) {
  settings_snapshot_t *snap = settings_acquire();
  bool on = settings_bool(snap, "meeting.enabled");
  settings_release(snap);
  return on;
}

static enum MHD_Result reply_meeting_off(http_request_t *req) {
  return reply_message(req, MHD_HTTP_NOT_FOUND, "Web meeting",
                       "Web meetings are not enabled on this server.");
}

static privacy_lang_t request_lang(http_request_t *req) {
  return privacy_pick_language(http_query(req, "lang"),
                               http_header(req, MHD_HTTP_HEADER_ACCEPT_LANGUAGE));
}

static void write_policy(FILE *f, privacy_lang_t lang) {
  char *html = NULL;
  size_t len = 0;
  if (api_privacy_render(lang, &html, &len) == 0) {
    /* The operator's own HTML, inserted as written (see privacy.h). */
    fwrite(html, 1, len, f);
  } else {
    fputs("<section class=\"privacy\"><p class=\"error\">", f);
    html_escape(f, meeting_text[lang].no_policy);
    fputs("</p></section>", f);
  }
  fputc('\n', f);
  free(html);
}

enum MHD_Result api_pages_meeting(http_request_t *req) {
  if (!meeting_enabled()) return reply_meeting_off(req);
  privacy_lang_t lang = request_lang(req);
  page_t p;
  if (page_open(&p, privacy_lang_code(lang), meeting_text[lang].title, "meeting.js") != 0)
    return http_reply_oom(req);
  FILE *f = p.f;
  fputs("<h1>", f);
  html_escape(f, meeting_text[lang].title);
  fputs("</h1>\n<p>", f);
  html_escape(f, meeting_text[lang].intro);
  fputs("</p>\n<form id=\"register\" data-need-consent=\"", f);
  html_escape(f, meeting_text[lang].need_consent);
  fputs("\" data-registered=\"", f);
  html_escape(f, meeting_text[lang].registered);
  fputs("\" data-failed=\"", f);
  html_escape(f, meeting_text[lang].failed);
  fputs("\">\n<label>", f);
  html_escape(f, meeting_text[lang].name);
  fputs(" <input name=\"name\" required maxlength=\"100\" autocomplete=\"name\"></label>\n<label>",
        f);
  html_escape(f, meeting_text[lang].email);
  fputs(" <input name=\"email\" type=\"email\" maxlength=\"254\" autocomplete=\"email\"></label>\n"
        "<label><input type=\"checkbox\" name=\"consent\" required> ",
        f);
  html_escape(f, meeting_text[lang].consent);
  fputs("</label>\n<button>", f);
  html_escape(f, meeting_text[lang].join);
  fputs("</button>\n<p id=\"status\" role=\"status\"></p>\n</form>\n", f);
  fprintf(f, "<p><a href=\"?lang=%s\">%s</a></p>\n", lang == PRIVACY_LANG_DE ? "en" : "de",
          lang == PRIVACY_LANG_DE ? "English" : "Deutsch");
  write_policy(f, lang);
  return page_reply(req, MHD_HTTP_OK, &p);
}

enum MHD_Result api_pages_meeting_privacy(http_request_t *req) {
  if (!meeting_enabled()) return reply_meeting_off(req);
  privacy_lang_t lang = request_lang(req);
  page_t p;
  if (page_open(&p, privacy_lang_code(lang),
                lang == PRIVACY_LANG_DE ? "Datenschutzerklärung" : "Privacy policy", NULL) != 0)
    return http_reply_oom(req);
  write_policy(p.f, lang);
  return page_reply(req, MHD_HTTP_OK, &p);
}

/* ---- the meeting's WebSocket (RFC 6455) ---------------------------------------------------
 *
 * MHD does the HTTP part and hands over the socket; wslay does the framing.
 * For now the meeting only confirms a guest's registration: messages are
 * echoed. Each socket has its own thread, bounded in number, idle time and
 * lifetime. */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_SESSIONS 256
#define WS_IDLE_SECONDS 300
#define WS_MAX_SECONDS (4 * 3600)
#define WS_MAX_MESSAGE (64 * 1024)

static struct {
  pthread_mutex_t lock;
  pthread_cond_t done;
  int active;
  atomic_bool stop;
} ws = {.lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

typedef struct ws_session {
  int fd;
  struct MHD_UpgradeResponseHandle *urh;
  char *extra; /* bytes MHD read past the request head */
  size_t extra_len, extra_off;
  time_t last_input;
} ws_session_t;

/* true when the comma-separated header holds `token` (case-insensitive). */
static bool header_has_token(const char *header, const char *token) {
  size_t tl = strlen(token);
  for (const char *p = header; p && *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *e = strchrnul(p, ',');
    const char *t = e;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
    if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0) return true;
    p = e;
  }
  return false;
}

/* "scheme://host[:port]" of a URL, lower-cased as validated settings are. */
static void url_origin(const char *url, char *out, size_t len) {
  const char *s = strstr(url, "://");
  size_t n = s ? (size_t)(strchrnul(s + 3, '/') - url) : 0;
  snprintf(out, len, "%.*s", (int)n, url);
}

/* Browsers send Origin; a page of another site must not open a guest's
 * socket (cross-site WebSocket hijacking). Clients without Origin (apps) are
 * not browsers and may connect. */
static bool origin_allowed(http_request_t *req) {
  const char *origin = http_header(req, "Origin");
  if (!origin) return true;
  const char *host = http_request_host(req);
  char self[400];
  if (host) {
    snprintf(self, sizeof self, "%s://%s", http_request_scheme(req), host);
    if (strcasecmp(origin, self) == 0) return true;
  }
  settings_snapshot_t *snap = settings_acquire();
  char published[PUBLISHED_URL_MAX];
  url_origin(settings_string(snap, "meeting.url"), published, sizeof published);
  settings_release(snap);
  return strcasecmp(origin, published) == 0;
}

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user) {
  ws_session_t *s = user;
  if (s->extra_off < s->extra_len) {
    size_t n = s->extra_len - s->extra_off;
    if (n > len) n = len;
    memcpy(buf, s->extra + s->extra_off, n);
    s->extra_off += n;
    return (ssize_t)n;
  }
  ssize_t r = recv(s->fd, buf, len, 0);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (r <= 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  s->last_input = time(NULL);
  return r;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user) {
  ws_session_t *s = user;
  ssize_t r = send(s->fd, data, len, MSG_NOSIGNAL);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (r < 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return r;
}

static void ws_on_message(wslay_event_context_ptr ctx,
                          const struct wslay_event_on_msg_recv_arg *arg, void *user) {
  if (wslay_is_ctrl_frame(arg->opcode)) return; /* wslay answers ping and close itself */
  struct wslay_event_msg msg = {.opcode = arg->opcode, .msg = arg->msg,
                                .msg_length = arg->msg_length};
  wslay_event_queue_msg(ctx, &msg);
}

static void ws_session_end(ws_session_t *s) {
  MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
  free(s->extra);
  free(s);
  pthread_mutex_lock(&ws.lock);
  ws.active--;
  pthread_cond_broadcast(&ws.done);
  pthread_mutex_unlock(&ws.lock);
}

static void *ws_thread(void *arg) {
  ws_session_t *s = arg;
  struct wslay_event_callbacks cb = {.recv_callback = ws_recv, .send_callback = ws_send,
                                     .on_msg_recv_callback = ws_on_message};
  wslay_event_context_ptr ctx = NULL;
  int fl = fcntl(s->fd, F_GETFL);
  if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
      wslay_event_context_server_init(&ctx, &cb, s) != 0) {
    ws_session_end(s);
    return NULL;
  }
  wslay_event_config_set_max_recv_msg_length(ctx, WS_MAX_MESSAGE);
  time_t start = time(NULL);
  s->last_input = start;
  bool closing = false;
  /* Bounded: ends at close, error, shutdown, idle time or WS_MAX_SECONDS; a
   * closing socket gets at most ~2 s to say goodbye. */
  int goodbye_rounds = 0;
  while (wslay_event_want_read(ctx) || wslay_event_want_write(ctx)) {
    time_t now = time(NULL);
    if (!closing && (atomic_load(&ws.stop) || now - s->last_input > WS_IDLE_SECONDS ||
                     now - start > WS_MAX_SECONDS)) {
      wslay_event_queue_close(ctx, WSLAY_CODE_GOING_AWAY, NULL, 0);
      closing = true;
    }
    if (closing && ++goodbye_rounds > 20) break;
    if (s->extra_off < s->extra_len) {
      if (wslay_event_recv(ctx) != 0) break;
      continue;
    }
    struct pollfd pfd = {.fd = s->fd};
    if (wslay_event_want_read(ctx)) pfd.events |= POLLIN;
    if (wslay_event_want_write(ctx)) pfd.events |= POLLOUT;
    int r = poll(&pfd, 1, 100);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    if (pfd.revents & (POLLERR | POLLNVAL)) break;
    if ((pfd.revents & (POLLIN | POLLHUP)) && wslay_event_recv(ctx) != 0) break;
    if ((pfd.revents & POLLOUT) && wslay_event_send(ctx) != 0) break;
  }
  wslay_event_context_free(ctx);
  ws_session_end(s);
  return NULL;
}

static void ws_upgraded(void *cls, struct MHD_Connection *connection, void *req_cls,
                        const char *extra_in, size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh) {
  ws_session_t *s = calloc(1, sizeof *s);
  if (s && extra_in_size) {
    s->extra = malloc(extra_in_size);
    if (s->extra) {
      memcpy(s->extra, extra_in, extra_in_size);
      s->extra_len = extra_in_size;
    }
  }
  pthread_attr_t attr;
  pthread_t t;
  if (!s || (extra_in_size && !s->extra) || pthread_attr_init(&attr) != 0) {
    if (s) free(s->extra);
    free(s);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    pthread_mutex_lock(&ws.lock);
    ws.active--;
    pthread_cond_broadcast(&ws.done);
    pthread_mutex_unlock(&ws.lock);
    return;
  }
  s->fd = sock;
  s->urh = urh;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int r = pthread_create(&t, &attr, ws_thread, s);
  pthread_attr_destroy(&attr);
  if (r != 0) {
    log_warning("web meeting: cannot start a WebSocket thread: %s", strerror(r));
    ws_session_end(s);
  }
}

static enum MHD_Result reply_ws_refused(http_request_t *req, unsigned status, const char *detail) {
  if (status == MHD_HTTP_UPGRADE_REQUIRED) {
    http_add_header(req, "Upgrade", "websocket");
    http_add_header(req, "Sec-WebSocket-Version", "13");
  }
  return http_reply_problem(req, status, "websocket", "WebSocket handshake refused", detail, NULL);
}

enum MHD_Result api_pages_meeting_ws(http_request_t *req) {
  if (!meeting_enabled()) return reply_meeting_off(req);
  const char *upgrade = http_header(req, "Upgrade"), *connection = http_header(req, "Connection");
  if (!header_has_token(upgrade, "websocket") || !header_has_token(connection, "upgrade"))
    return reply_ws_refused(req, MHD_HTTP_UPGRADE_REQUIRED,
                            "This is the web meeting's WebSocket; connect with a WebSocket "
                            "client (Upgrade: websocket). Behind a reverse proxy, forward the "
                            "Upgrade and Connection headers.");
  const char *version = http_header(req, "Sec-WebSocket-Version");
  if (!version || strcmp(version, "13") != 0)
    return reply_ws_refused(req, MHD_HTTP_UPGRADE_REQUIRED, "Only WebSocket version 13 is spoken.");
  const char *key = http_header(req, "Sec-WebSocket-Key");
  unsigned char raw[32];
  size_t raw_len = 0;
  if (!key || strlen(key) != 24 ||
      sodium_base642bin(raw, sizeof raw, key, 24, NULL, &raw_len, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      raw_len != 16)
    return reply_ws_refused(req, MHD_HTTP_BAD_REQUEST,
                            "Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455 4.1).");
  if (!origin_allowed(req))
    return reply_ws_refused(req, MHD_HTTP_FORBIDDEN,
                            "The page that opened this WebSocket is not the web meeting's.");

  char concat[24 + sizeof WS_GUID];
  snprintf(concat, sizeof concat, "%s%s", key, WS_GUID);
  unsigned char digest[20];
  char accept[sodium_base64_ENCODED_LEN(20, sodium_base64_VARIANT_ORIGINAL)];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA1, concat, strlen(concat), digest) != 0)
    return http_reply_oom(req);
  sodium_bin2base64(accept, sizeof accept, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);

  pthread_mutex_lock(&ws.lock);
  bool room = ws.active < WS_MAX_SESSIONS && !atomic_load(&ws.stop);
  if (room) ws.active++;
  pthread_mutex_unlock(&ws.lock);
  if (!room)
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Too many connections",
                              "The meeting server has too many open connections; try again later.",
                              NULL);
  struct MHD_Response *resp = MHD_create_response_for_upgrade(ws_upgraded, NULL);
  if (!resp || MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket") != MHD_YES ||
      MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept) != MHD_YES) {
    if (resp) MHD_destroy_response(resp);
    pthread_mutex_lock(&ws.lock);
    ws.active--;
    pthread_cond_broadcast(&ws.done);
    pthread_mutex_unlock(&ws.lock);
    return http_reply_oom(req);
  }
  /* Queuing the 101 gives the TCP socket the QoS marking and rate limit of
   * the policy covering this URL (http.c); they stay on the socket for the
   * WebSocket's lifetime. ws_upgraded's `sock` is not the place: under TLS it
   * is MHD's socketpair, not the connection. */
  enum MHD_Result r = http_reply_shared(req, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
  MHD_destroy_response(resp);
  if (r != MHD_YES) {
    /* Not queued: the upgrade callback will never run. */
    pthread_mutex_lock(&ws.lock);
    ws.active--;
    pthread_cond_broadcast(&ws.done);
    pthread_mutex_unlock(&ws.lock);
  }
  return r;
}

void api_pages_shutdown(void) {
  atomic_store(&ws.stop, true);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5;
  pthread_mutex_lock(&ws.lock);
  while (ws.active > 0)
    if (pthread_cond_timedwait(&ws.done, &ws.lock, &until) != 0) break;
  if (ws.active > 0) log_warning("web meeting: %d WebSocket(s) did not close in time", ws.active);
  pthread_mutex_unlock(&ws.lock);
}

/* ---- documentation ------------------------------------------------------------------------ */

enum MHD_Result api_pages_docs(http_request_t *req) {
  settings_snapshot_t *snap = settings_acquire();
  bool builtin = published_docs_builtin(snap);
  char url[PUBLISHED_URL_MAX];
  snprintf(url, sizeof url, "%s", settings_string(snap, "docs.url"));
  settings_release(snap);
  if (!builtin) {
    /* The documentation lives elsewhere: send people there. */
    http_add_header(req, MHD_HTTP_HEADER_LOCATION, url);
    return reply_message(req, MHD_HTTP_FOUND, "Documentation",
                         "The documentation of this server is published elsewhere.");
  }
  const char *path = http_path(req) + strlen(PUBLISHED_PATH_DOCS);
  const published_doc_t *d = doc_find(*path ? path : "index.html");
  if (!d)
    return reply_message(req, MHD_HTTP_NOT_FOUND, "Not found",
                         "There is no such page in the documentation.");
  return reply_doc(req, d);
}
