/* The published module: the URLs of Mobile App, UM settings and Online
 * documentation answer for real, and the reverse proxy gets its list of
 * paths and a ready nginx block. */
#include "mod/published/internal.h"
#include "mod/published/published.h"

static const http_route_t routes[] = {
    {.method = HTTP_GET, .path = "/api/v1/reverse-proxy", .handler = published_reverse_proxy_api,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/api/v1/reverse-proxy/nginx", .handler = published_nginx_api,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/client/v1/config", .handler = published_client_config_api,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/webapi/", .handler = published_webapi_api,
     .auth = HTTP_AUTH_NONE},
    /* The UM settings page is public; its API checks a client token. */
    {.method = HTTP_GET, .path = "/umsettings/", .handler = published_um_page,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_POST, .path = "/umsettings/api/login", .handler = published_um_login,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/umsettings/api/notifications", .handler = published_um_get,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_PUT, .path = "/umsettings/api/notifications", .handler = published_um_put,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/umsettings/{file}", .handler = published_um_asset,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/docs/", .handler = published_docs_page, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/docs/{page}", .handler = published_docs_page,
     .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/docs/{dir}/{page}", .handler = published_docs_page,
     .auth = HTTP_AUTH_NONE},
};

static const char *const sections[] = {"mobile", "um", "docs", "server", NULL};

static const settings_owner_t owner = {
    .name = "published",
    .sections = sections,
};

static int init(const module_env_t *env, char *err, size_t errlen) {
  published_api_init(env->atlas);
  return 0;
}

const atrium_module_t published_module = {
    .name = "published",
    MODULE_ROUTES(routes),
    .settings = &owner,
    .init = init,
};
