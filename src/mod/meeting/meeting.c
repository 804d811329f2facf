/* The web meeting module: the meeting page (guests register with the
 * privacy policy, then wait in the lobby; users come in with a ticket), the
 * policy's admin API, meetings created through the client API, and the
 * meeting's WebSocket on the shared event loop (room.c, share.c).
 *
 * Pages are server-rendered HTML with every value escaped; every link and
 * request of a page is relative to it, so the pages work under whatever
 * path the reverse proxy publishes them. */
#include <errno.h>
#include <inttypes.h>
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
#include "mod/meeting/share.h"
#include "mod/published/published.h"
#include "mod/runtime/runtime.h"

/* ---- pages ------------------------------------------------------------------------------ */

/* ---- web meeting ----------------------------------------------------------------------- */

static const struct {
  const char *title, *intro, *name, *email, *consent, *join, *need_consent, *registered, *failed,
      *no_policy, *unencrypted;
} meeting_text[PRIVACY_LANG_COUNT] = {
    [PRIVACY_LANG_EN] = {"Join the web meeting",
                         "Enter your name to register as a guest of the web meeting.",
                         "Your name", "E-mail (optional)",
                         "I have read the privacy policy below and agree to it.", "Register",
                         "Please agree to the privacy policy first.",
                         "Registered. The meeting has not started yet; keep this page open. Name:",
                         "The meeting server cannot be reached. Try again later.",
                         "The privacy policy is not available; the operator has been notified.",
                         "This meeting is not encrypted: its address uses http. Do not share "
                         "confidential content."},
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
                         "benachrichtigt.",
                         "Dieses Meeting ist nicht verschlüsselt: seine Adresse verwendet http. "
                         "Teilen Sie keine vertraulichen Inhalte."},
};

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
  fputs("</h1>\n", f);
  if (!meeting_url_encrypted()) {
    /* Before anyone types a name: the connection is readable on the way. */
    fputs("<p class=\"banner warning\" id=\"unencrypted\" role=\"alert\">", f);
    page_escape(f, meeting_text[lang].unencrypted);
    fputs("</p>\n", f);
  }
  fputs("<p>", f);
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

/* ---- the module ---------------------------------------------------------------------------- */

/* This node stopped hosting (another took over, or the lock was lost): its
 * guests reconnect through the load balancer to the new host. */
static void host_changed(bool hosting, int64_t epoch, void *ctx) {
  (void)epoch;
  (void)ctx;
  if (!hosting && runtime_loop()) loop_post(runtime_loop(), meeting_rooms_close_all, NULL);
}

static const http_route_t routes[] = {
    {.method = HTTP_GET, .path = "/webmeeting/", .handler = meeting_page, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/webmeeting/ws", .handler = meeting_ws, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/webmeeting/privacy", .handler = meeting_privacy_page,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/webmeeting/pictures/{user}", .handler = meeting_picture,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/webmeeting/{file}", .handler = meeting_asset,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/api/v1/privacy", .handler = meeting_privacy_info,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/api/v1/privacy/preview", .handler = meeting_privacy_preview,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/client/v1/meetings", .handler = meeting_api_create,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/client/v1/meetings", .handler = meeting_api_list,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/client/v1/meetings/{id}", .handler = meeting_api_get,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_POST, .path = "/client/v1/meetings/{id}/ticket", .handler = meeting_api_ticket,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON_OPTIONAL},
};

static void warn(const settings_snapshot_t *snap, settings_warn_fn add, void *wctx) {
  const char *meeting = settings_string(snap, "meeting.url");
  const char *raw = json_string_value(settings_raw_value(snap, "meeting.url"));
  if (strncmp(meeting, "http://", 7) == 0 &&
      (settings_bool(snap, "meeting.enabled") || (raw && *raw)))
    add(wctx, "meeting.url", "unencrypted",
        "Web meetings are reached unencrypted (%s). Use https except for temporary testing.",
        meeting);
  char which[200];
  if (settings_bool(snap, "meeting.enabled") && meeting_privacy_unedited(which, sizeof which))
    add(wctx, "meeting.enabled", "privacy-template-unedited",
        "Guests see the shipped privacy policy with its \"[Operator: ...]\" lines (%s): run "
        "'atriumctl privacy customize' and fill in your organisation's details.",
        which);
}

/* The privacy policy guests see, and whether meetings run at all. */
static void status(module_status_t *out) {
  settings_snapshot_t *snap = settings_acquire();
  bool enabled = settings_bool(snap, "meeting.enabled");
  char url[300];
  snprintf(url, sizeof url, "%.250s", settings_string(snap, "meeting.url"));
  settings_release(snap);
  char which[200];
  if (!enabled) {
    out->state = MODULE_OFF;
    snprintf(out->sentence, sizeof out->sentence, "Web meetings are off (meeting.enabled).");
  } else if (meeting_privacy_unedited(which, sizeof which)) {
    out->state = MODULE_WARNING;
    snprintf(out->sentence, sizeof out->sentence,
             "Web meetings at %.250s; guests see the unedited privacy template (%.150s).", url,
             which);
  } else {
    out->state = MODULE_OK;
    snprintf(out->sentence, sizeof out->sentence, "Web meetings at %s.", url);
  }
}

static const char *const sections[] = {"meeting", NULL};

/* Switching web meetings off ends the running ones, with a sentence. */
static void committed(const settings_snapshot_t *old_snap, const settings_snapshot_t *new_snap,
                      void *ctx) {
  if (!settings_bool(old_snap, "meeting.enabled") || settings_bool(new_snap, "meeting.enabled"))
    return;
  char *reason = strdup("Web meetings were switched off on this server; the meeting has ended.");
  if (reason && (!runtime_loop() || loop_post(runtime_loop(), meeting_rooms_end_all, reason) < 0))
    free(reason);
}

static const settings_owner_t owner = {
    .name = "meeting",
    .sections = sections,
    .warn = warn,
    .committed = committed,
};

static int init(const module_env_t *env, char *err, size_t errlen) {
  if (meeting_privacy_init(env->atlas) != 0) {
    snprintf(err, errlen, "Out of memory setting up the privacy policy.");
    return -ENOMEM;
  }
  meeting_api_init(env->store);
  meeting_pictures_init();
  meeting_rooms_init(env->store);
  if (share_configure())
    log_warning("Screen sharing encodes every viewer's frames separately "
                "(ATRIUM_SCREEN_ENCODE=per-viewer): a benchmark's baseline, it costs CPU "
                "per viewer.");
  return 0;
}

static int start(char *err, size_t errlen) {
  meeting_rooms_draining(false);
  cluster_meeting_watch(host_changed, NULL);
  return 0;
}

/* Before the HTTP server stops: every participant gets a close frame, and
 * the wait for them to go is bounded. */
static void drain(void) {
  meeting_rooms_draining(true);
  runtime_drain(meeting_rooms_close_all, meeting_sockets, "web meeting WebSocket(s)");
}

static void stop(void) {
  meeting_rooms_shutdown();
  meeting_api_shutdown();
  meeting_privacy_shutdown();
}

static void metrics(FILE *f) {
  meeting_counters_t c;
  meeting_counters(&c);
  share_counters_t sc;
  share_counters(&sc);
  fprintf(f,
          "# HELP atrium_meeting_websockets Open web meeting WebSockets.\n"
          "# TYPE atrium_meeting_websockets gauge\n"
          "atrium_meeting_websockets %zu\n"
          "# HELP atrium_meeting_rooms_total Meetings that began running.\n"
          "# TYPE atrium_meeting_rooms_total counter\n"
          "atrium_meeting_rooms_total %" PRIu64 "\n"
          "# HELP atrium_meeting_chats_total Meeting chat messages passed on.\n"
          "# TYPE atrium_meeting_chats_total counter\n"
          "atrium_meeting_chats_total %" PRIu64 "\n"
          "# HELP atrium_meeting_errors_total Error frames sent to participants.\n"
          "# TYPE atrium_meeting_errors_total counter\n"
          "atrium_meeting_errors_total %" PRIu64 "\n"
          "# HELP atrium_meeting_frames_total Screen frames completed by presenters.\n"
          "# TYPE atrium_meeting_frames_total counter\n"
          "atrium_meeting_frames_total %" PRIu64 "\n"
          "# HELP atrium_meeting_region_errors_total Presenter regions refused.\n"
          "# TYPE atrium_meeting_region_errors_total counter\n"
          "atrium_meeting_region_errors_total %" PRIu64 "\n"
          "# HELP atrium_meeting_frames_skipped_total Frames viewers skipped to stay current.\n"
          "# TYPE atrium_meeting_frames_skipped_total counter\n"
          "atrium_meeting_frames_skipped_total %" PRIu64 "\n",
          meeting_sockets(), c.rooms, c.chats, c.errors, sc.frames, sc.region_errors, sc.skipped);
  fputs("# HELP atrium_meeting_encodes_total Screen frames encoded, by tier.\n"
        "# TYPE atrium_meeting_encodes_total counter\n", f);
  static const char *const tiers[] = {"high", "medium", "low", "lossless"};
  for (int t = 0; t < 4; t++)
    fprintf(f, "atrium_meeting_encodes_total{tier=\"%s\"} %" PRIu64 "\n", tiers[t], sc.encodes[t]);
  fputs("# HELP atrium_meeting_frames_sent_total Screen frames sent to viewers, by tier.\n"
        "# TYPE atrium_meeting_frames_sent_total counter\n", f);
  for (int t = 0; t < 4; t++)
    fprintf(f, "atrium_meeting_frames_sent_total{tier=\"%s\"} %" PRIu64 "\n", tiers[t], sc.sent[t]);
  fputs("# HELP atrium_meeting_delta_encodes_total Delta frames encoded (what moved and changed since a "
        "viewer's picture), by tier.\n"
        "# TYPE atrium_meeting_delta_encodes_total counter\n", f);
  for (int t = 0; t < 3; t++)
    fprintf(f, "atrium_meeting_delta_encodes_total{tier=\"%s\"} %" PRIu64 "\n", tiers[t],
            sc.deltas[t]);
  fprintf(f,
          "# HELP atrium_meeting_delta_frames_sent_total Screen frames sent to viewers as deltas.\n"
          "# TYPE atrium_meeting_delta_frames_sent_total counter\n"
          "atrium_meeting_delta_frames_sent_total %" PRIu64 "\n",
          sc.deltas_sent);
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
    .status = status,
};
