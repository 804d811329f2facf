/* Published URLs: the feature table, the reverse-proxy list, the nginx
 * server blocks and the mobile configuration document. */
#include "mod/published/published.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uriparser/Uri.h>

#include "http/http.h"
#include "core/validate.h"

typedef enum when {
  WHEN_SET,     /* published when the URL setting is not blank */
  WHEN_ALWAYS,  /* always served */
  WHEN_ENABLED, /* when the `enabled` bool is on */
  WHEN_BUILTIN, /* when the URL is the built-in default (docs) */
} when_t;

typedef struct feature {
  const char *feature;
  const char *setting;
  const char *title;
  const char *internal_path;
  when_t when;
  const char *enabled; /* WHEN_ENABLED: the bool key */
  bool websocket;
} feature_t;

static const feature_t features[PUBLISHED_MAX_ENTRIES] = {
    {.feature = "mobile.app", .setting = "mobile.app_url", .title = "Mobile app",
     .internal_path = PUBLISHED_PATH_CLIENT, .when = WHEN_SET},
    {.feature = "mobile.webapi", .setting = "mobile.webapi_url",
     .title = "Web API for telephony in the mobile app", .internal_path = PUBLISHED_PATH_WEBAPI,
     .when = WHEN_SET},
    {.feature = "um", .setting = "um.url", .title = "UM settings",
     .internal_path = PUBLISHED_PATH_UM, .when = WHEN_ALWAYS},
    {.feature = "meeting", .setting = "meeting.url", .title = "Web meeting",
     .internal_path = PUBLISHED_PATH_MEETING, .when = WHEN_ENABLED,
     .enabled = "meeting.enabled", .websocket = true},
    {.feature = "docs", .setting = "docs.url", .title = "Online documentation",
     .internal_path = PUBLISHED_PATH_DOCS, .when = WHEN_BUILTIN},
};

void published_upstream_init(published_upstream_t *up, const char *listen_address, int port,
                             bool tls) {
  memset(up, 0, sizeof *up);
  const char *a = listen_address && *listen_address ? listen_address : "127.0.0.1";
  up->wildcard = strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0;
  if (strcmp(a, "0.0.0.0") == 0)
    a = "127.0.0.1";
  else if (strcmp(a, "::") == 0)
    a = "::1";
  if (strchr(a, ':') && a[0] != '[')
    snprintf(up->host, sizeof up->host, "[%s]", a);
  else
    snprintf(up->host, sizeof up->host, "%s", a);
  up->port = port;
  up->tls = tls;
}

bool published_docs_builtin(const settings_snapshot_t *snap) {
  /* The snapshot gives effective values only; a docs.url equal to the
   * computed default is the built-in documentation whether it was left blank
   * or typed out. */
  char builtin[PUBLISHED_URL_MAX];
  int n = snprintf(builtin, sizeof builtin, "%s%s", settings_string(snap, "server.public_url"),
                   PUBLISHED_PATH_DOCS);
  return n > 0 && (size_t)n < sizeof builtin &&
         strcmp(settings_string(snap, "docs.url"), builtin) == 0;
}

static size_t range_len(const UriTextRangeA *r) {
  return r->first && r->afterLast ? (size_t)(r->afterLast - r->first) : 0;
}

/* Splits a validated absolute URL into the entry's scheme, host, port, path. */
int published_split_url(const char *url, published_entry_t *e) {
  UriUriA uri;
  const char *errpos = NULL;
  if (uriParseSingleUriA(&uri, url, &errpos) != URI_SUCCESS) return -EINVAL;
  int r = -EINVAL;
  size_t sl = range_len(&uri.scheme), hl = range_len(&uri.hostText);
  if (sl == 0 || sl >= sizeof e->scheme || hl == 0 || hl + 2 >= sizeof e->host) goto out;
  for (size_t i = 0; i < sl; i++) {
    char c = uri.scheme.first[i];
    e->scheme[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  e->scheme[sl] = '\0';
  bool v6 = uri.hostData.ip6 != NULL || (uri.hostData.ipFuture.first != NULL);
  snprintf(e->host, sizeof e->host, "%s%.*s%s", v6 ? "[" : "", (int)hl, uri.hostText.first,
           v6 ? "]" : "");
  for (char *c = e->host; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
  size_t pl = range_len(&uri.portText);
  e->port_explicit = pl > 0;
  if (pl) {
    long port = 0;
    for (size_t i = 0; i < pl; i++) {
      char c = uri.portText.first[i];
      if (c < '0' || c > '9' || i > 5) goto out;
      port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) goto out;
    e->port = (int)port;
  } else {
    e->port = strcmp(e->scheme, "https") == 0 ? 443 : 80;
  }
  /* The path as written, from after the authority up to the query. */
  const char *ps = pl ? uri.portText.afterLast : uri.hostText.afterLast + (v6 ? 1 : 0);
  size_t n = strcspn(ps, "?#");
  int w = snprintf(e->path, sizeof e->path, "%s%.*s%s", n && ps[0] == '/' ? "" : "/", (int)n, ps,
                   n && ps[n - 1] == '/' ? "" : "/");
  if (w < 0 || (size_t)w >= sizeof e->path) goto out;
  /* "//" from a path of just "/" joined with the added slash. */
  if (strcmp(e->path, "//") == 0) e->path[1] = '\0';
  r = 0;
out:
  uriFreeUriMembersA(&uri);
  return r;
}

int published_entries(const settings_snapshot_t *snap, published_entry_t *out, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < PUBLISHED_MAX_ENTRIES && n < max; i++) {
    const feature_t *f = &features[i];
    const char *url = settings_string(snap, f->setting);
    bool on = false;
    switch (f->when) {
    case WHEN_SET: on = *url != '\0'; break;
    case WHEN_ALWAYS: on = *url != '\0'; break;
    case WHEN_ENABLED: on = settings_bool(snap, f->enabled) && *url; break;
    case WHEN_BUILTIN: on = published_docs_builtin(snap); break;
    }
    if (!on) continue;
    published_entry_t *e = &out[n];
    memset(e, 0, sizeof *e);
    e->feature = f->feature;
    e->setting = f->setting;
    e->title = f->title;
    e->internal_path = f->internal_path;
    e->websocket = f->websocket;
    if (snprintf(e->url, sizeof e->url, "%s", url) >= (int)sizeof e->url) return -EINVAL;
    if (published_split_url(url, e) != 0) return -EINVAL;
    n++;
  }
  return (int)n;
}

static void upstream_base(const published_upstream_t *up, char *buf, size_t len) {
  snprintf(buf, len, "%s://%s:%d", up->tls ? "https" : "http", up->host, up->port);
}

/* Where the proxy sends a feature: one atriumd, or an upstream block. */
static void proxy_base(const published_upstream_t *up, bool meeting, char *buf, size_t len) {
  if (up->node_count >= 2)
    snprintf(buf, len, "%s://%s", up->tls ? "https" : "http",
             meeting ? "atrium_meeting" : "atrium_nodes");
  else
    upstream_base(up, buf, len);
}

int published_upstream_add_node(published_upstream_t *up, const char *name, const char *url,
                                bool meeting_host) {
  if (up->node_count == PUBLISHED_MAX_NODES) return -ENOSPC;
  const char *rest = strstr(url, "://");
  if (!rest || !rest[3] || rest[3] == '/') return -EINVAL;
  bool tls = strncmp(url, "https", 5) == 0;
  rest += 3;
  size_t n = strcspn(rest, "/?#");
  char hostport[300];
  snprintf(hostport, sizeof hostport, "%.*s", (int)n, rest);
  /* A port is named, or the scheme's is meant. */
  const char *close = hostport[0] == '[' ? strchr(hostport, ']') : NULL;
  const char *colon = strrchr(close ? close : hostport, ':');
  typeof(&up->nodes[0]) node = &up->nodes[up->node_count];
  snprintf(node->name, sizeof node->name, "%s", name);
  if (colon)
    snprintf(node->address, sizeof node->address, "%s", hostport);
  else
    snprintf(node->address, sizeof node->address, "%.290s:%d", hostport, tls ? 443 : 80);
  node->meeting_host = meeting_host;
  up->node_count++;
  return 0;
}


static int nginx_port(const published_entry_t *h, const published_upstream_t *up);

/* Entries that share scheme, host and port are one server block of the
 * proxy. With `up`, the port is the one nginx listens on (nginx_port). */
static bool same_server(const published_entry_t *a, const published_entry_t *b, bool by_host,
                        const published_upstream_t *up) {
  if (strcmp(a->host, b->host) != 0) return false;
  int pa = up ? nginx_port(a, up) : a->port, pb = up ? nginx_port(b, up) : b->port;
  return by_host || (pa == pb && strcmp(a->scheme, b->scheme) == 0);
}

/* Two features on one server and one path cannot both be forwarded. */
static int conflict_with(const published_entry_t *e, size_t n, size_t i, bool by_host,
                         const published_upstream_t *up) {
  for (size_t j = 0; j < i; j++)
    if (same_server(&e[j], &e[i], by_host, up) && strcmp(e[j].path, e[i].path) == 0)
      return (int)j;
  return -1;
}

json_t *published_reverse_proxy_json(const settings_snapshot_t *snap,
                                     const published_upstream_t *up) {
  published_entry_t *e = calloc(PUBLISHED_MAX_ENTRIES, sizeof *e);
  if (!e) return NULL;
  int n = published_entries(snap, e, PUBLISHED_MAX_ENTRIES);
  char base[128];
  upstream_base(up, base, sizeof base);
  json_t *doc = json_pack("{s:{s:s, s:s, s:i, s:b, s:b}, s:[], s:[], s:[]}", "upstream", "url",
                          base, "host", up->host, "port", (json_int_t)up->port, "tls", up->tls,
                          "guessed", up->wildcard, "entries", "servers", "conflicts");
  if (!doc || n < 0) {
    free(e);
    json_decref(doc);
    return NULL;
  }
  json_t *entries = json_object_get(doc, "entries"), *servers = json_object_get(doc, "servers"),
         *conflicts = json_object_get(doc, "conflicts");
  bool ok = true;
  for (int i = 0; ok && i < n; i++) {
    char target[PUBLISHED_URL_MAX + 128], ws[PUBLISHED_URL_MAX + 8];
    snprintf(target, sizeof target, "%s%s", base, e[i].internal_path);
    snprintf(ws, sizeof ws, "%s%s", e[i].path, PUBLISHED_MEETING_WS);
    json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:b, s:o}",
                            "feature", e[i].feature, "setting", e[i].setting, "title",
                            e[i].title, "url", e[i].url, "scheme", e[i].scheme, "host",
                            e[i].host, "port", (json_int_t)e[i].port, "path", e[i].path,
                            "upstream", target, "internal_path", e[i].internal_path,
                            "websocket", e[i].websocket, "websocket_path",
                            e[i].websocket ? json_string(ws) : json_null());
    ok = row && json_array_append_new(entries, row) == 0;
    int c = conflict_with(e, (size_t)n, (size_t)i, false, NULL);
    if (ok && c >= 0)
      ok = json_array_append_new(
               conflicts, json_pack("{s:s, s:s, s:s}", "url", e[i].url, "features", e[c].feature,
                                    "also", e[i].feature)) == 0;
    size_t s;
    for (s = 0; s < (size_t)i; s++)
      if (same_server(&e[s], &e[i], false, NULL)) break;
    if (ok && s == (size_t)i) {
      json_t *paths = json_array();
      for (int j = i; paths && j < n; j++)
        if (same_server(&e[i], &e[j], false, NULL)) json_array_append_new(paths, json_string(e[j].path));
      ok = paths && json_array_append_new(servers,
                                          json_pack("{s:s, s:s, s:i, s:o}", "scheme",
                                                    e[i].scheme, "host", e[i].host, "port",
                                                    (json_int_t)e[i].port, "paths", paths)) == 0;
    }
  }
  free(e);
  if (!ok) {
    json_decref(doc);
    return NULL;
  }
  return doc;
}

/* ---- nginx -------------------------------------------------------------------------- */

typedef struct text {
  char *buf;
  size_t len, cap;
  bool failed;
} text_t;

static void emit(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(text_t *t, const char *fmt, ...) {
  if (t->failed) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    t->failed = true;
    return;
  }
  if (!t->buf || t->len + (size_t)n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + (size_t)n + 1) cap *= 2;
    char *p = realloc(t->buf, cap);
    if (!p) {
      t->failed = true;
      return;
    }
    t->buf = p;
    t->cap = cap;
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
  }
  t->len += (size_t)n;
}

/* The upstream blocks of several nodes. The meeting's lists its host
 * first; every other node is a backup: it answers 503 while it does not
 * host, and nginx then tries the next, so a failover needs no new
 * configuration. */
static void emit_upstreams(text_t *t, const published_upstream_t *up) {
  if (up->node_count < 2) return;
  emit(t, "\n# The %zu nodes of the cluster (GET /api/v1/cluster). Regenerate this file when\n"
          "# nodes are added or removed.\nupstream atrium_nodes {\n",
       up->node_count);
  for (size_t i = 0; i < up->node_count; i++)
    emit(t, "    server %s max_fails=1 fail_timeout=2s; # node %s\n", up->nodes[i].address,
         up->nodes[i].name);
  emit(t, "}\n\n# The web meeting: one node hosts it, the others answer 503 (Retry-After) until\n"
          "# they take over, and nginx passes the request on to the next.\n"
          "upstream atrium_meeting {\n");
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < up->node_count; i++)
      if (up->nodes[i].meeting_host == (pass == 0))
        emit(t, "    server %s max_fails=1 fail_timeout=2s%s; # node %s%s\n", up->nodes[i].address,
             pass == 0 ? "" : " backup", up->nodes[i].name,
             pass == 0 ? ", the meeting host now" : "");
  emit(t, "}\n");
}

static void emit_meeting_retry(text_t *t, const published_upstream_t *up, const char *cm) {
  if (up->node_count < 2) return;
  emit(t, "%s    proxy_next_upstream error timeout http_503;\n", cm);
  emit(t, "%s    proxy_next_upstream_tries %zu;\n", cm, up->node_count);
}

/* "8443", "127.0.0.1:8443", "[::1]:8443": what nginx's listen takes. The
 * address must parse, or nginx would refuse the whole configuration. */
static bool valid_listen(const char *s) {
  if (!s || !*s || strlen(s) > 64) return false;
  const char *port = s, *sep = s[0] == '[' ? strchr(s, ']') : strchr(s, ':');
  if (s[0] == '[' && (!sep || *++sep != ':')) return false; /* "[v6]" needs ":port" */
  if (sep) {
    char addr[65];
    snprintf(addr, sizeof addr, "%.*s", (int)(sep - s), s);
    /* Split at the first ':', an unbracketed part is IPv4 or nothing. */
    if (!validate_is_ip_literal(addr)) return false;
    port = sep + 1;
  }
  if (!*port || strlen(port) > 5) return false;
  long v = 0;
  for (const char *p = port; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + (*p - '0');
  }
  return v >= 1 && v <= 65535;
}

static void emit_proxy_headers(text_t *t, const char *indent) {
  emit(t,
       "%sproxy_http_version 1.1;\n"
       "%sproxy_set_header Host $host;\n"
       "%sproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
       "%sproxy_set_header X-Forwarded-Proto $scheme;\n"
       "%sproxy_set_header X-Forwarded-Host $http_host;\n",
       indent, indent, indent, indent, indent);
}

/* The port a server block listens on. A URL that names atriumd's own port
 * points at atriumd itself (the install default of server.public_url does,
 * until the admin sets the public address): nginx cannot bind that port
 * while atriumd holds it, so the block takes the scheme's standard port. */
static int nginx_port(const published_entry_t *h, const published_upstream_t *up) {
  if (h->port != up->port) return h->port;
  int std = strcmp(h->scheme, "https") == 0 ? 443 : 80;
  if (std != up->port) return std;
  /* atriumd itself holds the standard port: the next free-looking one. */
  return std == 443 ? 8443 : 8081;
}

static void emit_server(text_t *t, const published_entry_t *e, size_t n, size_t first,
                        const published_upstream_t *up, const published_nginx_opts_t *opts) {
  bool by_host = opts->listen != NULL;
  const published_entry_t *h = &e[first];
  bool tls = opts->listen ? opts->tls : strcmp(h->scheme, "https") == 0;
  int port = nginx_port(h, up);
  emit(t, "\n# %s%s%s\n", opts->listen ? "" : h->scheme, opts->listen ? h->host : "://",
       opts->listen ? "" : h->host);
  if (!opts->listen && port != h->port)
    emit(t,
         "#   The URL names port %d, which is atriumd's own: nginx listens on %d%s instead.\n"
         "#   Set %s to the address users reach (for example %s://%s/) so that links match.\n",
         h->port, port, tls ? " (TLS)" : " (plain HTTP)", h->setting, h->scheme, h->host);
  else if (!opts->listen && h->port_explicit)
    emit(t, "#   port %d, as the URL names it\n", h->port);
  else if (!opts->listen)
    emit(t, "#   port %d, the standard port for %s%s\n", port, h->scheme,
         tls ? " (TLS)" : "");
  emit(t, "server {\n");
  if (opts->listen) {
    emit(t, "    listen %s%s;\n", opts->listen, tls ? " ssl" : "");
  } else {
    emit(t, "    listen %d%s;\n", port, tls ? " ssl" : "");
    emit(t, "    listen [::]:%d%s;\n", port, tls ? " ssl" : "");
  }
  /* Bracketed IPv6 hosts are matched by nginx with the brackets. */
  emit(t, "    server_name %s;\n", h->host);
  if (tls) {
    emit(t,
         "    # Fill in: the certificate (with its chain) and key for %s.\n"
         "    ssl_certificate     /etc/nginx/atrium/%s.crt;\n"
         "    ssl_certificate_key /etc/nginx/atrium/%s.key;\n"
         "    ssl_protocols TLSv1.2 TLSv1.3;\n",
         h->host, h->host, h->host);
  }
  /* atriumd refuses bodies above HTTP_BODY_MAX itself; refusing them here
   * saves the trip. */
  emit(t, "    client_max_body_size %dk;\n", HTTP_BODY_MAX / 1024);
  char base[128], meeting_base[128];
  proxy_base(up, false, base, sizeof base);
  proxy_base(up, true, meeting_base, sizeof meeting_base);
  for (size_t i = first; i < n; i++) {
    bool meeting = strcmp(e[i].feature, "meeting") == 0;
    if (!same_server(h, &e[i], by_host, up)) continue;
    validate_error_t verr;
    if (validate_proxy_path(e[i].url, e[i].setting, &verr) != 0) {
      /* A value stored before the rule existed: never written into a
       * directive, where it could end or add one. */
      emit(t, "\n    # %s (%s): left out. %s\n", e[i].title, e[i].setting, verr.message);
      continue;
    }
    int c = conflict_with(e, n, i, by_host, up);
    const char *cm = c >= 0 ? "    # " : "    ";
    emit(t, "\n    # %s (%s)\n", e[i].title, e[i].setting);
    if (c >= 0)
      emit(t, "    # CONFLICT: %s uses the same path for %s; give one of them another URL.\n",
           e[i].url, e[c].feature);
    if (e[i].websocket) {
      emit(t, "%slocation = %s%s {\n", cm, e[i].path, PUBLISHED_MEETING_WS);
      emit(t, "%s    proxy_pass %s%s%s;\n", cm, meeting ? meeting_base : base, e[i].internal_path,
           PUBLISHED_MEETING_WS);
      emit_proxy_headers(t, c >= 0 ? "    #     " : "        ");
      if (meeting) emit_meeting_retry(t, up, cm);
      emit(t,
           "%s    proxy_set_header Upgrade $http_upgrade;\n"
           "%s    proxy_set_header Connection \"upgrade\";\n"
           "%s    proxy_read_timeout 3600s;\n"
           "%s    proxy_send_timeout 3600s;\n"
           "%s}\n",
           cm, cm, cm, cm, cm);
    }
    emit(t, "%slocation %s {\n", cm, e[i].path);
    emit(t, "%s    proxy_pass %s%s;\n", cm, meeting ? meeting_base : base, e[i].internal_path);
    emit_proxy_headers(t, c >= 0 ? "    #     " : "        ");
    if (meeting) emit_meeting_retry(t, up, cm);
    if (up->tls)
      emit(t, "%s    # atriumd speaks HTTPS: trust its certificate (proxy_ssl_trusted_certificate,"
              " proxy_ssl_verify on).\n", cm);
    emit(t, "%s}\n", cm);
  }
  emit(t, "}\n");
}

bool published_listen_is_upstream(const char *listen, const published_upstream_t *up) {
  const char *sep = listen[0] == '[' ? strchr(listen, ']') : strchr(listen, ':');
  const char *port = sep ? (listen[0] == '[' ? sep + 2 : sep + 1) : listen;
  if (atoi(port) != up->port) return false;
  if (!sep || up->wildcard) return true; /* nginx's "PORT" is every address */
  char addr[72];
  snprintf(addr, sizeof addr, "%.*s", (int)(sep - listen + (listen[0] == '[')), listen);
  return strcmp(addr, up->host) == 0 || strcmp(addr, "0.0.0.0") == 0 ||
         strcmp(addr, "[::]") == 0;
}

int published_nginx(const settings_snapshot_t *snap, const published_upstream_t *up,
                    const published_nginx_opts_t *opts, char **out) {
  *out = NULL;
  if (opts->listen && !valid_listen(opts->listen)) return -EINVAL;
  if (opts->listen && published_listen_is_upstream(opts->listen, up)) return -EADDRINUSE;
  published_entry_t *e = calloc(PUBLISHED_MAX_ENTRIES, sizeof *e);
  if (!e) return -ENOMEM;
  int n = published_entries(snap, e, PUBLISHED_MAX_ENTRIES);
  if (n < 0) {
    free(e);
    return n;
  }
  text_t t = {0};
  emit(&t,
       "# nginx configuration for Atrium %s, generated from settings version %llu.\n"
       "# Include it in the http { } block (for example as\n"
       "# /etc/nginx/conf.d/atrium.conf) and run `nginx -t` before reloading.\n"
       "# Every URL below is forwarded to %s %s://%s:%d.\n",
       ATRIUM_VERSION, (unsigned long long)settings_version(snap),
       up->node_count >= 2 ? "the nodes listed in the upstream blocks; this node is"
                           : "atriumd at",
       up->tls ? "https" : "http", up->host, up->port);
  emit_upstreams(&t, up);
  if (up->wildcard)
    emit(&t, "# atriumd listens on every interface; if nginx runs on another machine, replace\n"
             "# %s with this server's address.\n", up->host);
  emit(&t, "# atriumd believes X-Forwarded-* only from the addresses in <TrustedProxies> of\n"
           "# its atlas.xml: list this proxy's address there.\n");
  if (opts->listen)
    emit(&t, "# Every server block listens on %s%s: for testing, or behind a TLS terminator.\n",
         opts->listen, opts->tls ? " (TLS)" : " (plain HTTP)");
  if (n == 0) emit(&t, "\n# Nothing is published: no feature is enabled.\n");
  for (int i = 0; i < n; i++) {
    int s;
    for (s = 0; s < i; s++)
      if (same_server(&e[s], &e[i], opts->listen != NULL, up)) break;
    if (s == i) emit_server(&t, e, (size_t)n, (size_t)i, up, opts);
  }
  free(e);
  if (t.failed) {
    free(t.buf);
    return -ENOMEM;
  }
  *out = t.buf;
  return 0;
}

json_t *published_client_config(const settings_snapshot_t *snap) {
  const char *app = settings_string(snap, "mobile.app_url");
  const char *webapi = settings_string(snap, "mobile.webapi_url");
  bool meeting = settings_bool(snap, "meeting.enabled");
  return json_pack("{s:s, s:s, s:s, s:{s:o, s:o, s:s, s:o, s:s}, s:{s:b, s:b}, s:{s:b}}",
                   "server", "Atrium", "version", ATRIUM_VERSION, "domain",
                   settings_string(snap, "domain.name"), "urls", "app",
                   *app ? json_string(app) : json_null(), "webapi",
                   *webapi ? json_string(webapi) : json_null(), "um",
                   settings_string(snap, "um.url"), "meeting",
                   meeting ? json_string(settings_string(snap, "meeting.url")) : json_null(),
                   "docs", settings_string(snap, "docs.url"), "push", "enabled",
                   settings_bool(snap, "mobile.push_enabled"), "via_proxy",
                   settings_bool(snap, "mobile.push_use_proxy"), "meeting", "enabled", meeting);
}
