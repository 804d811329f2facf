/* The admin page: /admin/ and its files, compiled into the binary
 * (admin_assets.c, generated from web/admin/ by scripts/embed-assets.py).
 *
 * The files are revalidated on every use (Cache-Control: no-cache) against a
 * strong ETag derived from their content, so an upgraded server never runs
 * an old page and an unchanged one costs a 304. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mod/admin/assets.h"
#include "mod/admin/internal.h"

#define ADMIN_PREFIX "/admin/"

static enum MHD_Result reply_redirect(http_request_t *req, unsigned status, const char *location) {
  if (http_add_header(req, MHD_HTTP_HEADER_LOCATION, location) != 0) return http_reply_oom(req);
  return http_reply_buffer(req, status, NULL, "", 0, NULL, NULL);
}

/* The path of GET / answers with the admin page: the server has no other
 * page for a browser. Found, not permanent: a later start page may exist. */
enum MHD_Result admin_page_root(http_request_t *req) {
  return reply_redirect(req, MHD_HTTP_FOUND, ADMIN_PREFIX);
}

/* /admin without the slash: the page's relative links need the directory. */
enum MHD_Result admin_page_redirect(http_request_t *req) {
  return reply_redirect(req, MHD_HTTP_MOVED_PERMANENTLY, ADMIN_PREFIX);
}

/* true when an If-None-Match list ("a", W/"b", *) names etag. Weak
 * comparison, as RFC 9110 13.1.2 prescribes for If-None-Match. */
static bool etag_listed(const char *header, const char *etag) {
  if (!header) return false;
  size_t elen = strlen(etag);
  const char *p = header;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    if (*p == '\0') break;
    const char *end = strchrnul(p, ',');
    const char *tag = p;
    size_t len = (size_t)(end - p);
    while (len > 0 && (tag[len - 1] == ' ' || tag[len - 1] == '\t')) len--;
    if (len == 1 && tag[0] == '*') return true;
    if (len > 2 && tag[0] == 'W' && tag[1] == '/') {
      tag += 2;
      len -= 2;
    }
    if (len == elen && memcmp(tag, etag, elen) == 0) return true;
    p = end;
  }
  return false;
}

static enum MHD_Result reply_asset(http_request_t *req, const admin_asset_t *a) {
  if (http_add_header(req, MHD_HTTP_HEADER_ETAG, a->etag) != 0 ||
      http_add_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != 0)
    return http_reply_oom(req);
  if (etag_listed(http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH), a->etag))
    return http_reply_buffer(req, MHD_HTTP_NOT_MODIFIED, NULL, "", 0, NULL, NULL);
  return http_reply_buffer(req, MHD_HTTP_OK, a->content_type, a->bytes, a->length, NULL, NULL);
}

enum MHD_Result admin_page_index(http_request_t *req) {
  const admin_asset_t *a = admin_asset_find("index.html");
  if (!a)
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Admin page missing",
                              "This atriumd was built without the admin page; rebuild it from a "
                              "source tree that has web/admin/.",
                              NULL);
  return reply_asset(req, a);
}

enum MHD_Result admin_page_asset(http_request_t *req) {
  const char *path = http_path(req);
  const admin_asset_t *a = NULL;
  if (path && strncmp(path, ADMIN_PREFIX, sizeof ADMIN_PREFIX - 1) == 0)
    a = admin_asset_find(path + sizeof ADMIN_PREFIX - 1);
  if (!a) {
    char detail[200];
    snprintf(detail, sizeof detail,
             "The admin page has no file %.100s; open the admin page at " ADMIN_PREFIX ".",
             path ? path : "");
    return http_reply_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not found", detail, NULL);
  }
  return reply_asset(req, a);
}
