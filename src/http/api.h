/* The REST API handlers, one file per endpoint group; the route table in
 * http.c maps (method, path) to them. */
#pragma once

#include "http/http.h"

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

/* api_admin.c: the admin page (GET /, /admin, /admin/, /admin/{file}) */
enum MHD_Result api_admin_root(http_request_t *req);
enum MHD_Result api_admin_redirect(http_request_t *req);
enum MHD_Result api_admin_index(http_request_t *req);
enum MHD_Result api_admin_asset(http_request_t *req);

/* api_proxy.c: POST /api/v1/proxy/test */
enum MHD_Result api_proxy_test(http_request_t *req);

/* api_users.c: the directory (issue 3). Imports take up to API_IMPORT_BODY_MAX. */
#define API_IMPORT_BODY_MAX ((size_t)64 * 1024 * 1024)
struct directory_error;
enum MHD_Result api_users_create(http_request_t *req);
enum MHD_Result api_users_list(http_request_t *req);
enum MHD_Result api_users_get(http_request_t *req);
enum MHD_Result api_users_patch(http_request_t *req);
enum MHD_Result api_users_delete(http_request_t *req);
enum MHD_Result api_users_import(http_request_t *req);
enum MHD_Result api_subscriptions_list(http_request_t *req);
enum MHD_Result api_subscriptions_import(http_request_t *req);
enum MHD_Result api_contacts_list(http_request_t *req);
enum MHD_Result api_contacts_import(http_request_t *req);
/* Replies for a directory failure (r negative errno, err may be NULL; cleared). */
enum MHD_Result api_directory_error(http_request_t *req, int r, struct directory_error *err,
                                    const char *what);

/* api_client.c: /client/v1 (login, me) */
enum MHD_Result api_client_login(http_request_t *req);
enum MHD_Result api_client_me(http_request_t *req);

/* api_domain.c */
enum MHD_Result api_domain_change(http_request_t *req);

/* api_login_auto.c (issue 7): POST /client/v1/login/auto (HTTP Negotiate),
 * GET /api/v1/publishing/status (UDP discovery and AD publishing) */
enum MHD_Result api_login_auto(http_request_t *req);
enum MHD_Result api_publishing_status(http_request_t *req);

/* api_published.c (issue 6): published URLs, the reverse-proxy list and
 * nginx block, the mobile configuration, the telephony web API base, the
 * privacy policy. api_published_init copies what it needs from atlas.xml's
 * configuration (call before http_start); api_published_shutdown closes the
 * meeting WebSockets (call before http_stop). */
struct atlas_config;
int api_published_init(const struct atlas_config *atlas);
void api_published_shutdown(void);
enum MHD_Result api_client_config(http_request_t *req);
enum MHD_Result api_webapi_info(http_request_t *req);
enum MHD_Result api_reverse_proxy(http_request_t *req);
enum MHD_Result api_reverse_proxy_nginx(http_request_t *req);
enum MHD_Result api_privacy_info(http_request_t *req);
enum MHD_Result api_privacy_preview(http_request_t *req);
/* The privacy policy in `lang` (a privacy_lang_t) as it is shown now: an
 * HTML fragment, *html malloc'd. 0 or a negative errno (logged here). */
int api_privacy_render(int lang, char **html, size_t *len);

/* api_pages.c (issue 6): UM settings, web meeting registration and its
 * WebSocket, the documentation */
enum MHD_Result api_pages_um(http_request_t *req);
enum MHD_Result api_pages_um_login(http_request_t *req);
enum MHD_Result api_pages_um_get(http_request_t *req);
enum MHD_Result api_pages_um_put(http_request_t *req);
enum MHD_Result api_pages_meeting(http_request_t *req);
enum MHD_Result api_pages_meeting_ws(http_request_t *req);
enum MHD_Result api_pages_meeting_privacy(http_request_t *req);
enum MHD_Result api_pages_asset(http_request_t *req);
enum MHD_Result api_pages_docs(http_request_t *req);
/* Ends the meeting WebSockets and waits for them (bounded). */
void api_pages_shutdown(void);

/* api_health.c */
enum MHD_Result api_health(http_request_t *req);
enum MHD_Result api_metrics(http_request_t *req);
