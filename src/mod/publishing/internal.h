/* Inside the publishing module: the handlers of its routes (module.c lists them). */
#pragma once

#include "http/http.h"

/* login_auto.c: POST /client/v1/login/auto (HTTP Negotiate), GET /api/v1/publishing/status */
enum MHD_Result publishing_login_auto(http_request_t *req);
enum MHD_Result publishing_status_api(http_request_t *req);
/* The last failure of an automatic login that was the server's (a keytab
 * that cannot be used) or a refused ticket: "" and 0 when none. */
void publishing_login_auto_last_error(char *buf, size_t len, int64_t *at);
