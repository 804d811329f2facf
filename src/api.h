/* The REST API handlers, one file per endpoint group; the route table in
 * http.c maps (method, path) to them. */
#pragma once

#include "http.h"

/* api_session.c */
enum MHD_Result api_session_login(http_request_t *req);
enum MHD_Result api_session_get(http_request_t *req);
enum MHD_Result api_session_logout(http_request_t *req);

/* api_settings.c */
enum MHD_Result api_settings_get(http_request_t *req);
enum MHD_Result api_settings_schema(http_request_t *req);
enum MHD_Result api_settings_patch(http_request_t *req);
enum MHD_Result api_settings_validate(http_request_t *req);
enum MHD_Result api_settings_export(http_request_t *req);
enum MHD_Result api_settings_import(http_request_t *req);
/* Drops the cached GET /api/v1/settings response (at shutdown, before
 * settings_shutdown: the response holds a snapshot). */
void api_settings_cache_clear(void);

/* api_audit.c */
enum MHD_Result api_audit_list(http_request_t *req);

/* api_health.c */
enum MHD_Result api_health(http_request_t *req);
enum MHD_Result api_metrics(http_request_t *req);
