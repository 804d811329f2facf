/* The directory module: users, client logins, federation data and the
 * domain change, with the rule that ties federation.fqdn to the domain. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "mod/directory/directory.h"
#include "mod/directory/domain_change.h"
#include "mod/directory/import_job.h"
#include "mod/directory/internal.h"
#include "mod/directory/picture.h"

static const http_route_t routes[] = {
    {.method = HTTP_POST, .path = "/api/v1/users", .handler = directory_users_create,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_GET, .path = "/api/v1/users", .handler = directory_users_list,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/users/import", .handler = directory_users_import,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_RAW, .max_body = DIRECTORY_IMPORT_BODY_MAX},
    {.method = HTTP_GET, .path = "/api/v1/jobs/{id}", .handler = directory_jobs_get,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/api/v1/users/{name}", .handler = directory_users_get,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_PATCH, .path = "/api/v1/users/{name}", .handler = directory_users_patch,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_DELETE, .path = "/api/v1/users/{name}", .handler = directory_users_delete,
     .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_PUT, .path = "/api/v1/users/{name}/picture",
     .handler = directory_users_picture_put, .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_RAW,
     .max_body = PICTURE_BODY_MAX},
    {.method = HTTP_GET, .path = "/api/v1/users/{name}/picture",
     .handler = directory_users_picture_get, .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_DELETE, .path = "/api/v1/users/{name}/picture",
     .handler = directory_users_picture_delete, .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_PUT, .path = "/client/v1/me/picture", .handler = directory_client_picture_put,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_RAW, .max_body = PICTURE_BODY_MAX},
    {.method = HTTP_DELETE, .path = "/client/v1/me/picture",
     .handler = directory_client_picture_delete, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_GET, .path = "/client/v1/users/{name}/picture",
     .handler = directory_client_picture_get, .auth = HTTP_AUTH_NONE},
    {.method = HTTP_POST, .path = "/api/v1/users/{name}/sign-out",
     .handler = directory_users_sign_out, .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_GET, .path = "/api/v1/federation/subscriptions",
     .handler = directory_subscriptions_list, .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/federation/subscriptions/import",
     .handler = directory_subscriptions_import, .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_RAW,
     .max_body = DIRECTORY_IMPORT_BODY_MAX},
    {.method = HTTP_GET, .path = "/api/v1/federation/contacts",
     .handler = directory_contacts_list, .auth = HTTP_AUTH_ADMIN},
    {.method = HTTP_POST, .path = "/api/v1/federation/contacts/import",
     .handler = directory_contacts_import, .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_RAW,
     .max_body = DIRECTORY_IMPORT_BODY_MAX},
    {.method = HTTP_POST, .path = "/api/v1/domain/change", .handler = directory_domain_change_api,
     .auth = HTTP_AUTH_ADMIN, .body = HTTP_BODY_JSON},
    {.method = HTTP_POST, .path = "/client/v1/login", .handler = directory_client_login,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_JSON},
    {.method = HTTP_DELETE, .path = "/client/v1/login", .handler = directory_client_logout,
     .auth = HTTP_AUTH_NONE},
    /* The same as DELETE /client/v1/login, for clients that cannot send
     * DELETE (sendBeacon on page unload, some proxies). */
    {.method = HTTP_POST, .path = "/client/v1/logout", .handler = directory_client_logout,
     .auth = HTTP_AUTH_NONE, .body = HTTP_BODY_NONE},
    {.method = HTTP_GET, .path = "/client/v1/me", .handler = directory_client_me,
     .auth = HTTP_AUTH_NONE},
};

/* federation.fqdn is the domain or one label below it. */
static void check(const settings_snapshot_t *snap, problem_t *p) {
  const char *domain = settings_string(snap, "domain.name");
  const char *fqdn = settings_string(snap, "federation.fqdn");
  size_t dl = strlen(domain), fl = strlen(fqdn);
  if (strcmp(fqdn, domain) == 0) return;
  /* One label below: "<label>.<domain>" with no further dot in <label>. */
  bool below = fl > dl + 1 && strcmp(fqdn + fl - dl, domain) == 0 && fqdn[fl - dl - 1] == '.' &&
               memchr(fqdn, '.', fl - dl - 1) == NULL;
  if (!below)
    problem_add_error(p, "federation.fqdn",
                      "Must be the domain %s or a direct sub-domain of it such as sip.%s; %s is "
                      "not.",
                      domain, domain, fqdn);
}

static const char *const sections[] = {"domain", "federation", "directory", NULL};

static const settings_owner_t owner = {
    .name = "directory",
    .sections = sections,
    .check = check,
};

static int init(const module_env_t *env, char *err, size_t errlen) {
  /* The directory follows domain.name (its first generation at first start). */
  bool moved = false;
  int r = domain_change_init(env->store, &moved, err, errlen);
  if (r == 0 && moved)
    log_warning("the directory was on another domain than domain.name; it now follows it, and "
                "mobile devices registered before must set up their login again");
  return r;
}

static void stop(void) {
  import_jobs_stop();
  directory_listeners_clear();
  directory_shutdown();
}

const atrium_module_t directory_module = {
    .name = "directory",
    MODULE_ROUTES(routes),
    .settings = &owner,
    .init = init,
    .stop = stop,
};
