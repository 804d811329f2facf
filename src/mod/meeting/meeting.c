/* The web meeting module: the guest registration page with the privacy
 * policy, the policy's admin API, and the meeting's WebSocket on the shared
 * event loop (for now it confirms a guest's registration: messages are
 * echoed).
 *
 * Pages are server-rendered HTML with every value escaped; every link and
 * request of a page is relative to it, so the pages work under whatever
 * path the reverse proxy publishes them. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/settings.h"
#include "core/loop.h"
#include "core/log.h"
#include "http/page.h"
#include "http/websocket.h"
#include "mod/cluster/cluster.h"
#include "mod/meeting/internal.h"
#include "mod/meeting/meeting.h"
#include "mod/meeting/privacy.h"
#include "mod/published/published.h"
#include "mod/runtime/runtime.h"

/* ---- pages ------------------------------------------------------------------------------ */

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
  return page_reply_message(req, MHD_HTTP_NOT_FOUND, "Web meeting",
                       "Web meetings are not enabled on this server.");
}

static privacy_lang_t request_lang(http_request_t *req) {
  return privacy_pick_language(http_query(req, "lang"),
                               http_header(req, MHD_HTTP_HEADER_ACCEPT_LANGUAGE));
}

static void write_policy(FILE *f, privacy_lang_t lang) {
  char *html = NULL;
  size_t len = 0;
  if (meeting_privacy_render(lang, &html, &len) == 0) {
    /* The operator's own HTML, inserted as written (see privacy.h). */
    fwrite(html, 1, len, f);
  } else {
    fputs("<section class=\"privacy\"><p class=\"error\">", f);
    page_escape(f, meeting_text[lang].no_policy);
    fputs("</p></section>", f);
  }
  fputc('\n', f);
  free(html);
}

static enum MHD_Result meeting_page(http_request_t *req) {
  enum MHD_Result gated;
  if (!cluster_meeting_gate(req, &gated)) return gated; /* one node hosts the meetings */
  if (!meeting_enabled()) return reply_meeting_off(req);
  privacy_lang_t lang = request_lang(req);
  page_t p;
  if (page_open(&p, privacy_lang_code(lang), meeting_text[lang].title, "meeting.js") != 0)
    return http_reply_oom(req);
  FILE *f = p.f;
  fputs("<h1>", f);
  page_escape(f, meeting_text[lang].title);
  fputs("</h1>\n<p>", f);
  page_escape(f, meeting_text[lang].intro);
  fputs("</p>\n<form id=\"register\" data-need-consent=\"", f);
  page_escape(f, meeting_text[lang].need_consent);
  fputs("\" data-registered=\"", f);
  page_escape(f, meeting_text[lang].registered);
  fputs("\" data-failed=\"", f);
  page_escape(f, meeting_text[lang].failed);
  fputs("\">\n<label>", f);
  page_escape(f, meeting_text[lang].name);
  fputs(" <input name=\"name\" required maxlength=\"100\" autocomplete=\"name\"></label>\n<label>",
        f);
  page_escape(f, meeting_text[lang].email);
  fputs(" <input name=\"email\" type=\"email\" maxlength=\"254\" autocomplete=\"email\"></label>\n"
        "<label><input type=\"checkbox\" name=\"consent\" required> ",
        f);
  page_escape(f, meeting_text[lang].consent);
  fputs("</label>\n<button>", f);
  page_escape(f, meeting_text[lang].join);
  fputs("</button>\n<p id=\"status\" role=\"status\"></p>\n</form>\n", f);
  fprintf(f, "<p><a href=\"?lang=%s\">%s</a></p>\n", lang == PRIVACY_LANG_DE ? "en" : "de",
          lang == PRIVACY_LANG_DE ? "English" : "Deutsch");
  write_policy(f, lang);
  return page_reply(req, MHD_HTTP_OK, &p);
}

static enum MHD_Result meeting_privacy_page(http_request_t *req) {
  enum MHD_Result gated;
  if (!cluster_meeting_gate(req, &gated)) return gated; /* one node hosts the meetings */
  if (!meeting_enabled()) return reply_meeting_off(req);
  privacy_lang_t lang = request_lang(req);
  page_t p;
  if (page_open(&p, privacy_lang_code(lang),
                lang == PRIVACY_LANG_DE ? "Datenschutzerklärung" : "Privacy policy", NULL) != 0)
    return http_reply_oom(req);
  write_policy(p.f, lang);
  return page_reply(req, MHD_HTTP_OK, &p);
}


/* /webmeeting/{file}: the page's script and style. */
static enum MHD_Result meeting_asset(http_request_t *req) {
  enum MHD_Result gated;
  if (!cluster_meeting_gate(req, &gated)) return gated;
  return published_reply_asset(req, "meeting.js");
}

/* ---- the WebSocket ------------------------------------------------------------------------ */

#define WS_IDLE_SECONDS 300
#define WS_MAX_MESSAGE (64 * 1024)
#define WS_MAX_QUEUED (256 * 1024)

/* The open sockets, touched only on the loop's thread; the count is also
 * read by handlers deciding whether there is room for one more. */
typedef struct guest {
  struct guest *prev, *next;
  ws_t *ws;
} guest_t;

static struct {
  guest_t *head;
  atomic_size_t count; /* open and opening */
  atomic_bool draining;
} W;

static void guest_free(void *user) {
  free(user);
  atomic_fetch_sub(&W.count, 1);
  runtime_connection_give();
}

static void on_open(ws_t *ws, void *user) {
  guest_t *g = user;
  g->ws = ws;
  g->next = W.head;
  if (W.head) W.head->prev = g;
  W.head = g;
}

static void on_message(ws_t *ws, bool binary, const uint8_t *data, size_t len, void *user) {
  /* A client that does not read its echoes is cut off rather than queued for. */
  if (ws_send(ws, binary, data, len) == -ENOBUFS) ws_close(ws, 1008, "not reading");
}

static void on_close(ws_t *ws, uint16_t code, void *user) {
  guest_t *g = user;
  if (g->prev)
    g->prev->next = g->next;
  else if (W.head == g)
    W.head = g->next;
  if (g->next) g->next->prev = g->prev;
  guest_free(g);
}

static const ws_callbacks_t callbacks = {
    .on_open = on_open, .on_message = on_message, .on_close = on_close};

/* "scheme://host[:port]" of a URL, lower-cased as validated settings are. */
static void url_origin(const char *url, char *out, size_t len) {
  const char *s = strstr(url, "://");
  size_t n = s ? (size_t)(strchrnul(s + 3, '/') - url) : 0;
  snprintf(out, len, "%.*s", (int)n, url);
}

static enum MHD_Result meeting_ws(http_request_t *req) {
  enum MHD_Result gated;
  if (!cluster_meeting_gate(req, &gated)) return gated; /* one node hosts the meetings */
  if (!meeting_enabled()) return reply_meeting_off(req);
  if (atomic_load(&W.draining) || !runtime_connection_take()) {
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "30");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", "Too many connections",
                              "The meeting server has as many open connections as its file "
                              "descriptor limit allows; try again later.",
                              NULL);
  }
  atomic_fetch_add(&W.count, 1);
  guest_t *g = calloc(1, sizeof *g);
  if (!g) {
    guest_free(NULL);
    return http_reply_oom(req);
  }
  /* The page may be published under meeting.url on another host. */
  char origin[PUBLISHED_URL_MAX];
  settings_snapshot_t *snap = settings_acquire();
  url_origin(settings_string(snap, "meeting.url"), origin, sizeof origin);
  settings_release(snap);
  ws_options_t o = {.loop = runtime_loop(), .cb = &callbacks, .user = g,
                    .free_user = guest_free, .max_message = WS_MAX_MESSAGE,
                    .max_queued = WS_MAX_QUEUED, .idle_seconds = WS_IDLE_SECONDS,
                    .extra_origin = origin};
  return http_websocket(req, &o);
}

static void close_all(void *arg) {
  for (guest_t *g = W.head; g; g = g->next) ws_close(g->ws, 1001, "server shutting down");
}

/* ---- the module ---------------------------------------------------------------------------- */

static void close_not_host(void *arg) {
  (void)arg;
  for (guest_t *g = W.head; g; g = g->next) ws_close(g->ws, 1012, "this node no longer hosts");
}

/* This node stopped hosting (another took over, or the lock was lost): its
 * guests reconnect through the load balancer to the new host. */
static void host_changed(bool hosting, int64_t epoch, void *ctx) {
  (void)epoch;
  (void)ctx;
  if (!hosting && runtime_loop()) loop_post(runtime_loop(), close_not_host, NULL);
}

static const http_route_t routes[] = {
    {.method = HTTP_GET, .path = "/webmeeting/", .handler = meeting_page, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/webmeeting/ws", .handler = meeting_ws, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/webmeeting/privacy", .handler = meeting_privacy_page,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/webmeeting/{file}", .handler = meeting_asset,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/api/v1/privacy", .handler = meeting_privacy_info,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/api/v1/privacy/preview", .handler = meeting_privacy_preview,
     .auth = HTTP_AUTH_ADMIN},
};

static void warn(const settings_snapshot_t *snap, settings_warn_fn add, void *wctx) {
  const char *meeting = settings_string(snap, "meeting.url");
  const char *raw = json_string_value(settings_raw_value(snap, "meeting.url"));
  if (strncmp(meeting, "http://", 7) == 0 &&
      (settings_bool(snap, "meeting.enabled") || (raw && *raw)))
    add(wctx, "meeting.url", "unencrypted",
        "Web meetings are reached unencrypted (%s). Use https except for temporary testing.",
        meeting);
}

static const char *const sections[] = {"meeting", NULL};

static const settings_owner_t owner = {
    .name = "meeting",
    .sections = sections,
    .warn = warn,
};

static int init(const module_env_t *env, char *err, size_t errlen) {
  if (meeting_privacy_init(env->atlas) != 0) {
    snprintf(err, errlen, "Out of memory setting up the privacy policy.");
    return -ENOMEM;
  }
  return 0;
}

static int start(char *err, size_t errlen) {
  atomic_store(&W.draining, false);
  cluster_meeting_watch(host_changed, NULL);
  return 0;
}

/* Before the HTTP server stops: every guest gets a close frame, and the
 * wait for them to go is bounded. */
static size_t open_count(void) { return atomic_load(&W.count); }

static void drain(void) {
  atomic_store(&W.draining, true);
  runtime_drain(close_all, open_count, "web meeting WebSocket(s)");
}

static void stop(void) { meeting_privacy_shutdown(); }

static void metrics(FILE *f) {
  fprintf(f,
          "# HELP atrium_meeting_websockets Open web meeting WebSockets.\n"
          "# TYPE atrium_meeting_websockets gauge\n"
          "atrium_meeting_websockets %zu\n",
          atomic_load(&W.count));
}

const atrium_module_t meeting_module = {
    .name = "meeting",
    MODULE_ROUTES(routes),
    .settings = &owner,
    .init = init,
    .start = start,
    .drain = drain,
    .stop = stop,
    .metrics = metrics,
};
