/* The admin page: /admin/ and its files, compiled into the binary
 * (admin_assets.c, generated from web/admin/ by scripts/embed-assets.py;
 * served as http/assets.h says). */
#include <stdio.h>
#include <string.h>

#include "http/assets.h"
#include "mod/admin/internal.h"

#define ADMIN_PREFIX "/admin/"

/* The path of GET / answers with the admin page: the server has no other
 * page for a browser. Found, not permanent: a later start page may exist. */
enum MHD_Result admin_page_root(http_request_t *req) {
  return http_reply_redirect(req, MHD_HTTP_FOUND, "admin/");
}

/* /admin without the slash: the page's relative links need the directory.
 * Relative locations, so that a reverse proxy's path prefix stays. */
enum MHD_Result admin_page_redirect(http_request_t *req) {
  return http_reply_redirect(req, MHD_HTTP_MOVED_PERMANENTLY, "admin/");
}

enum MHD_Result admin_page_index(http_request_t *req) {
  const http_asset_t *a = admin_assets_find("index.html");
  if (!a)
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Admin page missing",
                              "This atriumd was built without the admin page; rebuild it from a "
                              "source tree that has web/admin/.",
                              NULL);
  return http_reply_asset(req, a);
}

enum MHD_Result admin_page_asset(http_request_t *req) {
  const char *path = http_path(req);
  const http_asset_t *a = NULL;
  if (path && strncmp(path, ADMIN_PREFIX, sizeof ADMIN_PREFIX - 1) == 0)
    a = admin_assets_find(path + sizeof ADMIN_PREFIX - 1);
  if (!a) {
    char detail[200];
    snprintf(detail, sizeof detail,
             "The admin page has no file %.100s; open the admin page at " ADMIN_PREFIX ".",
             path ? path : "");
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not found", detail, NULL);
  }
  return http_reply_asset(req, a);
}
