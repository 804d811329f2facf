#include "mod/admin/admin.h"

#include "mod/admin/internal.h"

static const http_route_t routes[] = {
    {.method = HTTP_POST, .path = "/api/v1/session", .handler = admin_session_login,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/session", .handler = admin_session_get,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_DELETE, .path = "/api/v1/session", .handler = admin_session_logout,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/session/password",
     .handler = admin_accounts_own_password, .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/admins", .handler = admin_accounts_list,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/admins", .handler = admin_accounts_create,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/admins/{name}", .handler = admin_accounts_get,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_PATCH, .path = "/api/v1/admins/{name}", .handler = admin_accounts_patch,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_DELETE, .path = "/api/v1/admins/{name}", .handler = admin_accounts_delete,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/api/v1/settings", .handler = admin_settings_get,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_PATCH, .path = "/api/v1/settings", .handler = admin_settings_patch,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/settings/schema", .handler = admin_settings_schema,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/settings/validate", .handler = admin_settings_validate,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/settings/export", .handler = admin_settings_export,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/settings/import", .handler = admin_settings_import,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/audit", .handler = admin_audit_list,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/healthz", .handler = admin_health, .auth = HTTP_AUTH_NONE},
    /* Prometheus scrapes with a bearer token (bearer_token_file): no cookie. */
    {.method = HTTP_GET, .path = "/metrics", .handler = admin_metrics, .auth = HTTP_AUTH_ADMIN},
    /* The admin page: public files; the page logs in through the API. */
    {.method = HTTP_GET, .path = "/", .handler = admin_page_root, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/admin", .handler = admin_page_redirect, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/admin/", .handler = admin_page_index, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/admin/{file}", .handler = admin_page_asset,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/admin/{dir}/{file}", .handler = admin_page_asset,
     .auth = HTTP_AUTH_NONE},
};

static void stop(void) { admin_settings_cache_clear(); }

static void metrics(FILE *f) {
  settings_snapshot_t *snap = settings_acquire();
  if (!snap) return;
  fprintf(f,
          "# HELP atrium_settings_version Version of the settings in force.\n"
          "# TYPE atrium_settings_version gauge\n"
          "atrium_settings_version %llu\n",
          (unsigned long long)settings_version(snap));
  settings_release(snap);
}

const atrium_module_t admin_module = {
    .name = "admin",
    MODULE_ROUTES(routes),
    .stop = stop,
    .metrics = metrics,
};
