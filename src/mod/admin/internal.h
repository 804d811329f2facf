/* Inside the admin module: the handlers of its routes (admin.c lists them). */
#pragma once

#include "http/http.h"

/* session.c: POST, GET, DELETE /api/v1/session */
enum MHD_Result admin_session_login(http_request_t *req);
enum MHD_Result admin_session_get(http_request_t *req);
enum MHD_Result admin_session_logout(http_request_t *req);

/* settings_api.c: /api/v1/settings... */
enum MHD_Result admin_settings_get(http_request_t *req);
enum MHD_Result admin_settings_schema(http_request_t *req);
enum MHD_Result admin_settings_patch(http_request_t *req);
enum MHD_Result admin_settings_validate(http_request_t *req);
enum MHD_Result admin_settings_export(http_request_t *req);
enum MHD_Result admin_settings_import(http_request_t *req);
/* Drops the cached GET /api/v1/settings response (it holds a snapshot:
 * before settings_shutdown). */
void admin_settings_cache_clear(void);

/* audit.c: GET /api/v1/audit */
enum MHD_Result admin_audit_list(http_request_t *req);

/* health.c: GET /healthz, GET /metrics */
enum MHD_Result admin_health(http_request_t *req);
enum MHD_Result admin_metrics(http_request_t *req);

/* page.c: the admin page (GET /, /admin, /admin/, /admin/{file}, /admin/{dir}/{file}) */
enum MHD_Result admin_page_root(http_request_t *req);
enum MHD_Result admin_page_redirect(http_request_t *req);
enum MHD_Result admin_page_index(http_request_t *req);
enum MHD_Result admin_page_asset(http_request_t *req);
