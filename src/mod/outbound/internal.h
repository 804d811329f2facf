/* Inside the outbound module: the handler of its route (module.c lists it). */
#pragma once

#include "http/http.h"

/* proxy_api.c: POST /api/v1/proxy/test, "Test connection" */
enum MHD_Result outbound_proxy_test_api(http_request_t *req);
