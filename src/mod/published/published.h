/* Published URLs: what users and apps reach from the Internet, and what a
 * reverse proxy in front of atriumd must forward where.
 *
 * Every function reads the settings snapshot it is given (effective values:
 * blank URLs already resolved against server.public_url), so the answers
 * follow a settings change at the next request. One table (feature, setting,
 * internal path, WebSocket) drives the list, the nginx generator and the
 * mobile configuration document. Pure: no I/O, no logging. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf/settings.h"
#include "http/http.h"
#include "mod/module.h"

/* Internal paths atriumd serves each published feature under. */
#define PUBLISHED_PATH_CLIENT "/client/"
#define PUBLISHED_PATH_WEBAPI "/webapi/"
#define PUBLISHED_PATH_UM "/umsettings/"
#define PUBLISHED_PATH_MEETING "/webmeeting/"
#define PUBLISHED_PATH_DOCS "/docs/"
/* The meeting's WebSocket, relative to the meeting path. */
#define PUBLISHED_MEETING_WS "ws"

#define PUBLISHED_MAX_ENTRIES 5
#define PUBLISHED_URL_MAX 2200
#define PUBLISHED_MAX_NODES 32

/* Where the reverse proxy reaches atriumd. */
typedef struct published_upstream {
  char host[72]; /* "127.0.0.1", "[::1]" */
  int port;
  bool tls;
  bool wildcard; /* atriumd listens on every interface: host is loopback, a guess */
  /* Several nodes (two or more): the configuration balances over all of
   * them (upstream atrium_nodes) and sends the web meeting to its host
   * only, the others as backups that nginx tries when the host answers 503
   * or cannot be reached (upstream atrium_meeting). */
  size_t node_count;
  struct {
    char name[64];
    char address[300]; /* "host:port", what nginx's server directive takes */
    bool meeting_host;
  } nodes[PUBLISHED_MAX_NODES];
} published_upstream_t;

/* From atlas.xml's <Listen address> and the port actually bound. */
void published_upstream_init(published_upstream_t *up, const char *listen_address, int port,
                             bool tls);
/* Adds a node by the URL it is reached at ("http://10.0.0.11:8080");
 * -EINVAL for a URL without a host, -ENOSPC beyond PUBLISHED_MAX_NODES. */
int published_upstream_add_node(published_upstream_t *up, const char *name, const char *url,
                                bool meeting_host);

/* One external URL to forward. */
typedef struct published_entry {
  const char *feature; /* "mobile.app", "mobile.webapi", "um", "meeting", "docs" */
  const char *setting; /* the key whose effective value `url` is */
  const char *title;
  char url[PUBLISHED_URL_MAX]; /* the effective value, as configured */
  char scheme[8];              /* "https" or "http" */
  char host[300];              /* lower case; IPv6 in brackets */
  int port;                    /* as written, or the scheme's default */
  bool port_explicit;
  char path[PUBLISHED_URL_MAX]; /* external path, always ending in '/' */
  const char *internal_path;    /* PUBLISHED_PATH_* */
  bool websocket;               /* a WebSocket lives below: <path>ws */
} published_entry_t;

/* The entries of the snapshot's enabled features, in table order: mobile app
 * and web API when their URL is set, UM settings always, web meeting when
 * meeting.enabled, documentation when docs.url is the built-in default.
 * Returns the count (at most max) or -EINVAL when an effective URL cannot be
 * parsed (cannot happen with validated settings). */
int published_entries(const settings_snapshot_t *snap, published_entry_t *out, size_t max);

/* true when docs.url points at the documentation atriumd serves itself. */
bool published_docs_builtin(const settings_snapshot_t *snap);

/* GET /api/v1/reverse-proxy: {"upstream": {...}, "entries": [{"feature",
 * "setting", "title", "url", "scheme", "host", "port", "path", "upstream",
 * "internal_path", "websocket", "websocket_path"}], "servers": [{"scheme",
 * "host", "port", "paths"}], "conflicts": [...]}. New reference. */
json_t *published_reverse_proxy_json(const settings_snapshot_t *snap,
                                     const published_upstream_t *up);

/* Splits a validated absolute URL into e's scheme, host, port, port_explicit
 * and path; -EINVAL when it does not parse. */
int published_split_url(const char *url, published_entry_t *e);

typedef struct published_nginx_opts {
  /* NULL: each server block listens where its URLs say (443 ssl, 80, the
   * port named in the URL), never on atriumd's own port: a URL naming that
   * port gets the scheme's standard port and a comment saying so. Otherwise
   * every block listens here ("127.0.0.1:8443"): for testing, or behind a
   * TLS terminator. */
  const char *listen;
  bool tls; /* with listen: speak TLS there (false: plain HTTP) */
} published_nginx_opts_t;

/* true when nginx listening at `listen` (already valid) would take
 * atriumd's own address and port. */
bool published_listen_is_upstream(const char *listen, const published_upstream_t *up);

/* A ready nginx configuration: one server block per external host and port.
 * *out is malloc'd text. -EINVAL for a listen value that is not
 * "address:port" / "[v6]:port" / "port", -EADDRINUSE for a listen value
 * that is atriumd's own address and port, -ENOMEM. */
int published_nginx(const settings_snapshot_t *snap, const published_upstream_t *up,
                    const published_nginx_opts_t *opts, char **out);

/* GET /client/v1/config: what the mobile app needs to know. New reference. */
json_t *published_client_config(const settings_snapshot_t *snap);

/* The project's documentation, rendered to HTML at build time
 * (scripts/render-docs.py, docs_pages.c). Sorted by path. */
typedef struct published_doc {
  const char *path; /* "settings.html", "operations/reverse-proxy.html", "docs.css" */
  const char *title;
  const char *content_type;
  const unsigned char *bytes;
  size_t length;
} published_doc_t;

extern const published_doc_t published_docs[];
extern const size_t published_docs_count;

/* The compiled-in file at `path` (relative to docs/, "index.html",
 * "pages.css"), or NULL. */
const published_doc_t *published_doc_find(const char *path);
/* A published page's style (pages.css) or its one script, by the last
 * segment of the request path; 404 for anything else. */
enum MHD_Result published_reply_asset(http_request_t *req, const char *script);

extern const atrium_module_t published_module;
