#include "http/assets.h"

#include <stdbool.h>
#include <string.h>

const http_asset_t *http_asset_find(const http_asset_t *table, size_t count, const char *path) {
  size_t lo = 0, hi = count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(path, table[mid].path);
    if (c == 0) return &table[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

/* true when an If-None-Match list ("a", W/"b", *) names etag. Weak
 * comparison, as RFC 9110 13.1.2 prescribes for If-None-Match. */
bool http_etag_listed(const char *header, const char *etag) {
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

enum MHD_Result http_reply_asset(http_request_t *req, const http_asset_t *a) {
  if (http_add_header(req, MHD_HTTP_HEADER_ETAG, a->etag) != 0 ||
      http_add_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != 0)
    return http_reply_oom(req);
  if (http_etag_listed(http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH), a->etag))
    return http_reply_buffer(req, MHD_HTTP_NOT_MODIFIED, NULL, "", 0, NULL, NULL);
  return http_reply_buffer(req, MHD_HTTP_OK, a->content_type, a->bytes, a->length, NULL, NULL);
}

enum MHD_Result http_reply_redirect(http_request_t *req, unsigned status, const char *location) {
  if (http_add_header(req, MHD_HTTP_HEADER_LOCATION, location) != 0) return http_reply_oom(req);
  return http_reply_buffer(req, status, NULL, "", 0, NULL, NULL);
}
