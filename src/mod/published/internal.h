/* Inside the published module: the handlers of its routes (module.c lists them). */
#pragma once

#include "conf/atlas.h"
#include "http/http.h"

/* published_api.c: what the published URLs answer and the reverse-proxy help */
void published_api_init(const atlas_config_t *atlas);
enum MHD_Result published_client_config_api(http_request_t *req);
enum MHD_Result published_webapi_api(http_request_t *req);
enum MHD_Result published_reverse_proxy_api(http_request_t *req);
enum MHD_Result published_nginx_api(http_request_t *req);

/* pages.c: the UM settings page and its API, the built-in documentation */
enum MHD_Result published_um_page(http_request_t *req);
enum MHD_Result published_um_login(http_request_t *req);
enum MHD_Result published_um_get(http_request_t *req);
enum MHD_Result published_um_put(http_request_t *req);
enum MHD_Result published_um_asset(http_request_t *req);
enum MHD_Result published_docs_page(http_request_t *req);
