/* Inside the directory module: the handlers of its routes (module.c lists them). */
#pragma once

#include "http/http.h"

/* Imports take up to DIRECTORY_IMPORT_BODY_MAX. */
#define DIRECTORY_IMPORT_BODY_MAX ((size_t)64 * 1024 * 1024)

/* users_api.c: /api/v1/users and /api/v1/federation/... */
enum MHD_Result directory_users_create(http_request_t *req);
enum MHD_Result directory_users_list(http_request_t *req);
enum MHD_Result directory_users_get(http_request_t *req);
enum MHD_Result directory_users_patch(http_request_t *req);
enum MHD_Result directory_users_delete(http_request_t *req);
enum MHD_Result directory_users_sign_out(http_request_t *req);
enum MHD_Result directory_users_import(http_request_t *req);
enum MHD_Result directory_jobs_get(http_request_t *req);
enum MHD_Result directory_subscriptions_list(http_request_t *req);
enum MHD_Result directory_subscriptions_import(http_request_t *req);
enum MHD_Result directory_contacts_list(http_request_t *req);
enum MHD_Result directory_contacts_import(http_request_t *req);

/* client_api.c: GET /client/v1/me (the login is in directory.h: the UM
 * settings page logs in with it too) */
enum MHD_Result directory_client_me(http_request_t *req);

/* pictures_api.c: profile pictures */
enum MHD_Result directory_client_picture_put(http_request_t *req);
enum MHD_Result directory_client_picture_delete(http_request_t *req);
enum MHD_Result directory_client_picture_get(http_request_t *req);
enum MHD_Result directory_users_picture_put(http_request_t *req);
enum MHD_Result directory_users_picture_delete(http_request_t *req);
enum MHD_Result directory_users_picture_get(http_request_t *req);

/* domain_api.c: POST /api/v1/domain/change */
enum MHD_Result directory_domain_change_api(http_request_t *req);
