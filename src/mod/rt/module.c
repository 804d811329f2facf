/* The real-time module: what ties the hub, the writer and the REST handlers
 * to the server's life, its settings and its directory. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/settings.h"
#include "core/log.h"
#include "http/assets.h"
#include "mod/directory/directory.h"
#include "mod/cluster/cluster.h"
#include "mod/rt/internal.h"
#include "mod/rt/rt.h"
#include "mod/runtime/runtime.h"

const http_asset_t *app_assets_find(const char *path);

static struct {
  atlas_watch_t *atlas;
  store_t *store;
  bool started;
  pthread_mutex_t domain_lock;
  char domain[256];
} M = {.domain_lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- the domain --------------------------------------------------------------------------- */

void rt_domain(char *out, size_t len) {
  pthread_mutex_lock(&M.domain_lock);
  snprintf(out, len, "%s", M.domain);
  pthread_mutex_unlock(&M.domain_lock);
}

static void set_domain(const settings_snapshot_t *snap) {
  pthread_mutex_lock(&M.domain_lock);
  snprintf(M.domain, sizeof M.domain, "%s", settings_string(snap, "domain.name"));
  pthread_mutex_unlock(&M.domain_lock);
}

static void close_all_domain(void *arg) {
  (void)arg;
  rt_hub_close_all("domain_changed", 1012);
}

/* After the domain change is committed: every address the clients hold is
 * old. They get bye "domain_changed" and reconnect; hello tells them the new
 * address. */
static void committed(const settings_snapshot_t *old_snap, const settings_snapshot_t *new_snap,
                      void *ctx) {
  (void)ctx;
  if (strcmp(settings_string(old_snap, "domain.name"), settings_string(new_snap, "domain.name")) ==
      0)
    return;
  set_domain(new_snap);
  if (M.started && runtime_loop()) loop_post(runtime_loop(), close_all_domain, NULL);
}

static const char *const follows[] = {"domain", NULL};

static const settings_owner_t owner = {
    .name = "real-time",
    .follows = follows,
    .committed = committed,
};

/* ---- the directory ------------------------------------------------------------------------ */

typedef struct user_close {
  char name[65];
  const char *reason;
} user_close_t;

static void close_user_on_loop(void *arg) {
  user_close_t *u = arg;
  rt_hub_close_user(u->name, u->reason);
  free(u);
}

/* A user disabled, deleted, renamed or signed out everywhere: their
 * connections close (a renamed one reconnects under the new name, a
 * signed-out one must log in again), and the writer forgets the name. */
static void on_directory(directory_event_t ev, const char *name, void *ctx) {
  (void)ctx;
  const char *reason = ev == DIRECTORY_USER_DISABLED   ? "disabled"
                       : ev == DIRECTORY_USER_DELETED  ? "deleted"
                       : ev == DIRECTORY_USER_RENAMED  ? "renamed"
                       : ev == DIRECTORY_USER_SIGNED_OUT ? "signed_out"
                                                         : NULL;
  if (!reason) return;
  rt_writer_forget(name);
  if (ev == DIRECTORY_USER_DELETED || ev == DIRECTORY_USER_RENAMED) rt_presence_forget(name);
  user_close_t *u = calloc(1, sizeof *u);
  if (!u) return;
  snprintf(u->name, sizeof u->name, "%s", name);
  u->reason = reason;
  if (!M.started || !runtime_loop() || loop_post(runtime_loop(), close_user_on_loop, u) != 0)
    free(u);
}

/* ---- the web client ------------------------------------------------------------------------ */

#define APP_PREFIX "/app/"

/* Relative, so that a reverse proxy's path prefix ("/atrium/app") stays. */
static enum MHD_Result app_redirect(http_request_t *req) {
  return http_reply_redirect(req, MHD_HTTP_MOVED_PERMANENTLY, "app/");
}

static enum MHD_Result app_file(http_request_t *req, const char *path) {
  const http_asset_t *a = app_assets_find(path);
  if (!a) {
    char detail[200];
    snprintf(detail, sizeof detail,
             "The web client has no file %.100s; open the web client at " APP_PREFIX ".", path);
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not found", detail, NULL);
  }
  return http_reply_asset(req, a);
}

static enum MHD_Result app_index(http_request_t *req) { return app_file(req, "index.html"); }

enum MHD_Result rt_api_app(http_request_t *req) {
  const char *path = http_path(req);
  return app_file(req, strncmp(path, APP_PREFIX, sizeof APP_PREFIX - 1) == 0
                           ? path + sizeof APP_PREFIX - 1
                           : path);
}

/* ---- the module ------------------------------------------------------------------------------ */

static const http_route_t routes[] = {
    {.method = HTTP_POST, .path = "/client/v1/ws-ticket", .handler = rt_api_ticket,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON_OPTIONAL},
    {.method = HTTP_GET, .path = "/client/v1/ws", .handler = rt_api_ws, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/client/v1/contacts", .handler = rt_api_contacts,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_PUT, .path = "/client/v1/contacts/{address}", .handler = rt_api_contact_put,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON_OPTIONAL},
    {.method = HTTP_DELETE, .path = "/client/v1/contacts/{address}",
     .handler = rt_api_contact_delete, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/client/v1/messages", .handler = rt_api_messages,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/client/v1/journal", .handler = rt_api_journal,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_POST, .path = "/client/v1/journal", .handler = rt_api_journal_add,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/presence", .handler = rt_api_presence,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/api/v1/retention", .handler = rt_api_retention,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/retention/run", .handler = rt_api_retention_run,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON_OPTIONAL},
    {.method = HTTP_GET, .path = "/app", .handler = app_redirect, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/app/", .handler = app_index, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/app/{file}", .handler = rt_api_app, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/app/{dir}/{file}", .handler = rt_api_app,
     .auth = HTTP_AUTH_NONE},
};

static int init(const module_env_t *env, char *err, size_t errlen) {
  M.store = env->store;
  settings_snapshot_t *snap = settings_acquire();
  set_domain(snap);
  settings_release(snap);
  if (env->atlas->path[0] && !(M.atlas = atlas_watch_new(env->atlas->path))) {
    snprintf(err, errlen, "Out of memory setting up the real-time module.");
    return -ENOMEM;
  }
  if (directory_listen(on_directory, NULL) != 0) {
    snprintf(err, errlen, "The directory has no room for another listener.");
    return -ENOSPC;
  }
  return 0;
}

static int start(char *err, size_t errlen) {
  loop_t *loop = runtime_loop();
  rt_api_init(M.store, loop);
  int r = rt_hub_init(loop);
  if (r < 0) {
    snprintf(err, errlen, "Cannot set up the real-time hub on the event loop.");
    return r;
  }
  if ((r = rt_writer_start(M.store, loop, M.atlas, err, errlen)) < 0) return r;
  if ((r = rt_relay_start(M.store, loop, cluster_node_name(), err, errlen)) < 0) return r;
  M.started = true;
  return 0;
}

static void close_all_shutdown(void *arg) {
  (void)arg;
  rt_hub_close_all("shutdown", 1001);
}

/* Every client gets bye "shutdown"; the wait for them to go is bounded. */
static void drain(void) {
  rt_api_drain(true);
  if (M.started) runtime_drain(close_all_shutdown, rt_hub_connections, "client connection(s)");
}

static void stop(void) {
  M.started = false;
  /* The writer's last batch still tells the other nodes (the clients'
   * presence going offline); then the relay stops. */
  rt_writer_stop();
  rt_relay_stop();
  rt_hub_shutdown();
  rt_tickets_clear();
  atlas_watch_free(M.atlas);
  M.atlas = NULL;
}

static void metrics(FILE *f) {
  rt_hub_counters_t h;
  rt_hub_counters(&h);
  rt_writer_stats_t w;
  rt_writer_stats(&w);
  rt_retention_state_t r;
  rt_writer_retention(&r);
  fprintf(f,
          "# HELP atrium_rt_connections Client WebSockets open and opening.\n"
          "# TYPE atrium_rt_connections gauge\n"
          "atrium_rt_connections %zu\n"
          "# HELP atrium_rt_users_connected Users with at least one client connected.\n"
          "# TYPE atrium_rt_users_connected gauge\n"
          "atrium_rt_users_connected %zu\n"
          "# HELP atrium_rt_frames_total Frames received from clients.\n"
          "# TYPE atrium_rt_frames_total counter\n"
          "atrium_rt_frames_total %" PRIu64 "\n"
          "# HELP atrium_rt_frames_refused_total Frames answered with an error (bad or too "
          "many).\n"
          "# TYPE atrium_rt_frames_refused_total counter\n"
          "atrium_rt_frames_refused_total %" PRIu64 "\n"
          "# HELP atrium_rt_messages_total Chat messages committed.\n"
          "# TYPE atrium_rt_messages_total counter\n"
          "atrium_rt_messages_total %" PRIu64 "\n"
          "# HELP atrium_rt_chat_frames_total Chat frames sent to connections.\n"
          "# TYPE atrium_rt_chat_frames_total counter\n"
          "atrium_rt_chat_frames_total %" PRIu64 "\n"
          "# HELP atrium_rt_presence_frames_total Presence frames sent to watchers.\n"
          "# TYPE atrium_rt_presence_frames_total counter\n"
          "atrium_rt_presence_frames_total %" PRIu64 "\n"
          "# HELP atrium_rt_commits_total Store transactions of the writer (group commits).\n"
          "# TYPE atrium_rt_commits_total counter\n"
          "atrium_rt_commits_total %" PRIu64 "\n"
          "# HELP atrium_rt_commit_failures_total Group commits that failed (their senders "
          "got 503).\n"
          "# TYPE atrium_rt_commit_failures_total counter\n"
          "atrium_rt_commit_failures_total %" PRIu64 "\n"
          "# HELP atrium_rt_writer_queue Requests waiting for the writer.\n"
          "# TYPE atrium_rt_writer_queue gauge\n"
          "atrium_rt_writer_queue %zu\n"
          "# HELP atrium_retention_deleted_total Rows the retention sweep deleted.\n"
          "# TYPE atrium_retention_deleted_total counter\n"
          "atrium_retention_deleted_total{kind=\"messages\"} %" PRIu64 "\n"
          "atrium_retention_deleted_total{kind=\"journal\"} %" PRIu64 "\n",
          rt_hub_connections(), h.users, h.frames_in, h.frames_refused, w.messages, h.chats_out,
          h.presence_out, w.commits, w.failed_commits, rt_writer_queued(), r.total_messages,
          r.total_journal);
}

static void days_text(char *out, size_t len, int days) {
  if (days < 0)
    snprintf(out, len, "kept");
  else if (days == 0)
    snprintf(out, len, "deleted once delivered");
  else
    snprintf(out, len, "%d day%s", days, days == 1 ? "" : "s");
}

void rt_client_counts(size_t *users, size_t *connections) {
  rt_hub_counters_t h;
  rt_hub_counters(&h);
  *users = h.users;
  *connections = rt_hub_connections();
}

static void status(module_status_t *out) {
  rt_hub_counters_t h;
  rt_hub_counters(&h);
  rt_retention_state_t r;
  rt_writer_retention(&r);
  char im[40], journal[40];
  days_text(im, sizeof im, r.im_days);
  days_text(journal, sizeof journal, r.journal_days);
  out->state = MODULE_OK;
  snprintf(out->sentence, sizeof out->sentence,
           "%zu client connection%s of %zu user%s. Chats %s, journal %s; last sweep %s.",
           rt_hub_connections(), rt_hub_connections() == 1 ? "" : "s", h.users,
           h.users == 1 ? "" : "s", im, journal, r.last_run[0] ? r.last_run : "not yet");
  if (r.atlas_error[0]) {
    out->state = MODULE_WARNING;
    snprintf(out->last_error, sizeof out->last_error,
             "Retention deletes nothing while atlas.xml is invalid: %s", r.atlas_error);
  } else if (r.last_failed) {
    out->state = MODULE_WARNING;
    snprintf(out->last_error, sizeof out->last_error,
             "The last retention sweep stopped at a store failure; it runs again within the "
             "hour.");
  }
}

const atrium_module_t rt_module = {
    .name = "real-time",
    MODULE_ROUTES(routes),
    .settings = &owner,
    .init = init,
    .start = start,
    .drain = drain,
    .stop = stop,
    .metrics = metrics,
    .status = status,
};
