/* The admin page's files (web/admin/), compiled into atriumd by
 * scripts/embed-assets.py: a table sorted by path, built at compile time. */
#pragma once

#include <stddef.h>

typedef struct admin_asset {
  const char *path;         /* relative to /admin/, '/' separated: "js/api.js" */
  const char *content_type; /* with charset for text */
  const unsigned char *bytes;
  size_t length;
  const char *etag; /* strong validator with its quotes: "\"3f2a...\"" */
} admin_asset_t;

extern const admin_asset_t admin_assets[];
extern const size_t admin_assets_count;

/* The file at path (no leading '/'), or NULL. */
const admin_asset_t *admin_asset_find(const char *path);
