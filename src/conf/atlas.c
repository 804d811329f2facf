/* atlas.xml: read with libxml2 into a fixed struct, every element through one
 * table so that the "known elements" sentence and the checks cannot drift. */
#include "conf/atlas.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "core/fileio.h"

#define ATLAS_ROOT "Atlas"
#define ATLAS_MEMORY_NAME "atlas.xml"
#define ATLAS_MAX_DOMAIN 253

typedef struct parse {
  const char *file;     /* how messages name the file */
  const char *base_dir; /* for relative paths; NULL refuses them */
  atlas_config_t *cfg;
  char *err;
  size_t errlen;
} parse_t;

/* libxml2 reports through callbacks; the first error is kept for the message. */
typedef struct xml_errors {
  bool have;
  long line;
  char msg[256];
  bool doctype;
  long doctype_line;
} xml_errors_t;

typedef struct atlas_element {
  const char *name;
  int (*parse)(parse_t *p, xmlNode *node);
} atlas_element_t;

static int parse_listen(parse_t *p, xmlNode *node);
static int parse_data_dir(parse_t *p, xmlNode *node);
static int parse_tls(parse_t *p, xmlNode *node);
static int parse_domain(parse_t *p, xmlNode *node);
static int parse_im_days(parse_t *p, xmlNode *node);
static int parse_journal_days(parse_t *p, xmlNode *node);
static int parse_ca_bundle(parse_t *p, xmlNode *node);
static int parse_trusted_proxies(parse_t *p, xmlNode *node);
static int parse_privacy_dir(parse_t *p, xmlNode *node);
static int parse_store(parse_t *p, xmlNode *node);
static int parse_limits(parse_t *p, xmlNode *node);
static int parse_node(parse_t *p, xmlNode *node);
static int parse_federation(parse_t *p, xmlNode *node);

static const atlas_element_t elements[] = {
    {.name = "Listen", .parse = parse_listen},
    {.name = "DataDirectory", .parse = parse_data_dir},
    {.name = "Tls", .parse = parse_tls},
    {.name = "Domain", .parse = parse_domain},
    {.name = "IMDeleteAfterDays", .parse = parse_im_days},
    {.name = "JournalDeleteAfterDays", .parse = parse_journal_days},
    {.name = "CABundle", .parse = parse_ca_bundle},
    {.name = "TrustedProxies", .parse = parse_trusted_proxies},
    {.name = "PrivacyDirectory", .parse = parse_privacy_dir},
    {.name = "Store", .parse = parse_store},
    {.name = "Limits", .parse = parse_limits},
    {.name = "Node", .parse = parse_node},
    {.name = "Federation", .parse = parse_federation},
};
#define N_ELEMENTS (sizeof elements / sizeof elements[0])

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Writes "<file> line N: <sentence>" and returns -EINVAL, so that every check
 * can end with `return fail(...)`. */
static int fail(parse_t *p, const xmlNode *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(parse_t *p, const xmlNode *node, const char *fmt, ...) {
  if (!p->err || p->errlen == 0) return -EINVAL;
  int n;
  if (node)
    n = snprintf(p->err, p->errlen, "%s line %ld: ", p->file, xmlGetLineNo(node));
  else
    n = snprintf(p->err, p->errlen, "%s: ", p->file);
  if (n < 0 || (size_t)n >= p->errlen) return -EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

static const char *node_name(const xmlNode *node) { return (const char *)node->name; }

static bool is_xml_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static bool is_blank(const char *s) {
  for (; s && *s; s++)
    if (!is_xml_space(*s)) return false;
  return true;
}

/* Trims XML white space in place: an editor's line breaks around a value are
 * not part of it. */
static char *trim(char *s) {
  while (is_xml_space(*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && is_xml_space(s[n - 1])) s[--n] = '\0';
  return s;
}

/* Decimal digits only (no sign, no blanks, no "0x"), within [0, max]. */
static int parse_uint(const char *s, long max, long *out) {
  if (!s || s[0] < '0' || s[0] > '9') return -EINVAL;
  errno = 0;
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (errno != 0 || !end || *end != '\0') return -EINVAL;
  if (v < 0 || v > max) return -ERANGE;
  *out = v;
  return 0;
}

static int copy_str(char *out, size_t outlen, const char *s) {
  size_t n = strlen(s);
  if (n >= outlen) return -ENAMETOOLONG;
  memcpy(out, s, n + 1);
  return 0;
}

/* Relative paths hang off the directory of the file, so that a checkout can
 * carry `<DataDirectory>data</DataDirectory>` and work from any cwd. */
static int resolve_path(parse_t *p, const xmlNode *node, const char *what, const char *value,
                        char *out, size_t outlen) {
  if (value[0] == '\0') return fail(p, node, "%s is empty; give a path or leave it out", what);
  while (value[0] == '.' && value[1] == '/') {
    value += 2;
    while (*value == '/') value++;
  }
  int n;
  if (value[0] == '/') {
    n = snprintf(out, outlen, "%s", value);
  } else if (strcmp(value, ".") == 0 || value[0] == '\0') {
    if (!p->base_dir)
      return fail(p, node, "%s is a relative path but the file's directory is unknown; "
                  "give an absolute path", what);
    n = snprintf(out, outlen, "%s", p->base_dir);
  } else {
    if (!p->base_dir || p->base_dir[0] != '/')
      return fail(p, node, "%s \"%.100s\" is a relative path but the file's directory is "
                  "unknown; give an absolute path", what, value);
    bool root = strcmp(p->base_dir, "/") == 0;
    n = snprintf(out, outlen, "%s%s%s", root ? "" : p->base_dir, "/", value);
  }
  if (n < 0 || (size_t)n >= outlen)
    return fail(p, node, "%s is longer than %zu characters", what, outlen - 1);
  /* "dir/" and "dir" are one directory; keep a single spelling. */
  size_t len = (size_t)n;
  while (len > 1 && out[len - 1] == '/') out[--len] = '\0';
  return 0;
}

/* Children of an element that has only attributes: comments and blanks are
 * fine, anything else is a mistake worth naming. */
static int expect_no_content(parse_t *p, xmlNode *node) {
  for (xmlNode *c = node->children; c; c = c->next) {
    if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE) continue;
    if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) &&
        is_blank((const char *)c->content))
      continue;
    return fail(p, c, "<%s> takes attributes only and no content", node_name(node));
  }
  return 0;
}

/* The attributes of `node`, each of which must be one of names[]; values[i]
 * becomes a copy of the value (xmlFree) or stays NULL when absent. */
static int get_attributes(parse_t *p, xmlNode *node, const char *const *names, size_t n,
                          xmlChar **values) {
  for (size_t i = 0; i < n; i++) values[i] = NULL;
  for (xmlAttr *a = node->properties; a; a = a->next) {
    size_t i = n;
    if (!a->ns)
      for (i = 0; i < n; i++)
        if (strcmp((const char *)a->name, names[i]) == 0) break;
    if (i == n) {
      char known[256] = "";
      for (size_t k = 0; k < n; k++) {
        size_t used = strlen(known);
        snprintf(known + used, sizeof known - used, "%s%s", k ? ", " : "", names[k]);
      }
      const char *prefix = a->ns && a->ns->prefix ? (const char *)a->ns->prefix : "";
      return fail(p, node, "unknown attribute \"%s%s%.100s\" on <%s>; known attributes are %s",
                  prefix, *prefix ? ":" : "", (const char *)a->name, node_name(node), known);
    }
    xmlChar *v = xmlNodeListGetString(node->doc, a->children, 1);
    values[i] = v ? v : xmlStrdup((const xmlChar *)"");
    if (!values[i]) return -ENOMEM;
  }
  return 0;
}

static void free_values(xmlChar **values, size_t n) {
  for (size_t i = 0; i < n; i++) {
    xmlFree(values[i]);
    values[i] = NULL;
  }
}

/* The text of an element that holds a single value: no attributes, no child
 * elements. The result is trimmed and not empty; *out is malloc'd. */
static int get_text(parse_t *p, xmlNode *node, char **out) {
  *out = NULL;
  if (node->properties) {
    const xmlAttr *a = node->properties;
    return fail(p, node, "unknown attribute \"%.100s\" on <%s>; <%s> takes no attributes",
                (const char *)a->name, node_name(node), node_name(node));
  }
  for (xmlNode *c = node->children; c; c = c->next) {
    if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE ||
        c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE)
      continue;
    if (c->type == XML_ELEMENT_NODE)
      return fail(p, c, "<%s> holds a value, not elements; move <%.100s> out of it",
                  node_name(node), node_name(c));
    return fail(p, c, "<%s> must contain plain text", node_name(node));
  }
  xmlChar *content = xmlNodeGetContent(node);
  if (!content) content = xmlStrdup((const xmlChar *)"");
  if (!content) return -ENOMEM;
  char *s = strdup(trim((char *)content));
  xmlFree(content);
  if (!s) return -ENOMEM;
  if (s[0] == '\0') {
    free(s);
    return fail(p, node, "<%s> is empty; give a value or leave the element out",
                node_name(node));
  }
  *out = s;
  return 0;
}

static int parse_listen(parse_t *p, xmlNode *node) {
  static const char *const names[] = {"address", "port"};
  xmlChar *v[2];
  int r = get_attributes(p, node, names, 2, v);
  if (r == 0) r = expect_no_content(p, node);
  if (r == 0 && v[0]) {
    const char *addr = (const char *)v[0];
    unsigned char bin[sizeof(struct in6_addr)];
    bool ok = strlen(addr) < sizeof p->cfg->listen_address &&
              (inet_pton(AF_INET, addr, bin) == 1 || inet_pton(AF_INET6, addr, bin) == 1);
    if (!ok)
      r = fail(p, node, "<Listen address=\"%.100s\">: the address must be an IPv4 or IPv6 "
               "literal such as 127.0.0.1, 0.0.0.0 or ::1 (no host name, no brackets)", addr);
    else
      r = copy_str(p->cfg->listen_address, sizeof p->cfg->listen_address, addr);
  }
  if (r == 0 && v[1]) {
    long port;
    if (parse_uint((const char *)v[1], 65535, &port) != 0)
      r = fail(p, node, "<Listen port=\"%.100s\">: the port must be a whole number from 0 to "
               "65535 (0 picks a free port)", (const char *)v[1]);
    else
      p->cfg->listen_port = (int)port;
  }
  free_values(v, 2);
  return r;
}

/* <Limits connections=".." perAddress=".." loopbackReserve=".." headerTimeout=".."
 *         loginsPerSource=".." loginsPerAccount=".." loginFailuresPerSource=".."/> */
static int parse_limits(parse_t *p, xmlNode *node) {
  static const char *const names[] = {"connections",     "perAddress",     "loopbackReserve",
                                      "headerTimeout",   "loginsPerSource", "loginsPerAccount",
                                      "loginFailuresPerSource"};
  static const struct {
    long min, max;
    const char *rule;
  } rules[] = {
      {16, 1000000, "a whole number from 16 to 1000000"},
      {1, 1000000, "a whole number from 1 to 1000000"},
      {0, 100000, "a whole number from 0 to 100000"},
      {1, 3600, "a whole number of seconds from 1 to 3600"},
      {1, 1000000, "a whole number from 1 to 1000000"},
      {1, 1000000, "a whole number from 1 to 1000000"},
      {1, 1000000, "a whole number from 1 to 1000000"},
  };
  enum { N = sizeof names / sizeof names[0] };
  xmlChar *v[N];
  int r = get_attributes(p, node, names, N, v);
  if (r == 0) r = expect_no_content(p, node);
  long got[N] = {p->cfg->limit_connections, p->cfg->limit_per_address,
                 p->cfg->limit_loopback_reserve, p->cfg->limit_header_timeout,
                 p->cfg->limit_logins_per_source, p->cfg->limit_logins_per_account,
                 p->cfg->limit_login_failures_per_source};
  for (int i = 0; r == 0 && i < N; i++) {
    if (!v[i]) continue;
    long n;
    if (parse_uint((const char *)v[i], rules[i].max, &n) != 0 || n < rules[i].min)
      r = fail(p, node, "<Limits %s=\"%.100s\">: must be %s", names[i], (const char *)v[i],
               rules[i].rule);
    else
      got[i] = n;
  }
  if (r == 0 && got[2] >= got[0])
    r = fail(p, node, "<Limits>: loopbackReserve (%ld) must be smaller than connections (%ld)",
             got[2], got[0]);
  if (r == 0) {
    p->cfg->limit_connections = (int)got[0];
    p->cfg->limit_per_address = (int)got[1];
    p->cfg->limit_loopback_reserve = (int)got[2];
    p->cfg->limit_header_timeout = (int)got[3];
    p->cfg->limit_logins_per_source = (int)got[4];
    p->cfg->limit_logins_per_account = (int)got[5];
    p->cfg->limit_login_failures_per_source = (int)got[6];
  }
  free_values(v, N);
  return r;
}

static int parse_data_dir(parse_t *p, xmlNode *node) {
  char *s;
  int r = get_text(p, node, &s);
  if (r == 0)
    r = resolve_path(p, node, "<DataDirectory>", s, p->cfg->data_dir, sizeof p->cfg->data_dir);
  free(s);
  return r;
}

static int parse_tls(parse_t *p, xmlNode *node) {
  static const char *const names[] = {"certificate", "key"};
  xmlChar *v[2];
  int r = get_attributes(p, node, names, 2, v);
  if (r == 0) r = expect_no_content(p, node);
  if (r == 0 && (!v[0]) != (!v[1]))
    r = fail(p, node, "<Tls> needs both certificate and key (only %s is given); give both, or "
             "leave <Tls> out for plain HTTP", v[0] ? "certificate" : "key");
  if (r == 0 && v[0]) {
    r = resolve_path(p, node, "<Tls certificate>", (const char *)v[0], p->cfg->tls_cert,
                     sizeof p->cfg->tls_cert);
    if (r == 0)
      r = resolve_path(p, node, "<Tls key>", (const char *)v[1], p->cfg->tls_key,
                       sizeof p->cfg->tls_key);
  }
  free_values(v, 2);
  return r;
}

/* Stored as written: the settings module owns the rules for domain names
 * (A-labels, label lengths), and applies them when it takes the value over. */
static int parse_domain(parse_t *p, xmlNode *node) {
  char *s;
  int r = get_text(p, node, &s);
  if (r == 0 && strlen(s) > ATLAS_MAX_DOMAIN)
    r = fail(p, node, "<Domain> is longer than %d characters", ATLAS_MAX_DOMAIN);
  if (r == 0) r = copy_str(p->cfg->domain, sizeof p->cfg->domain, s);
  free(s);
  return r;
}

static int parse_days(parse_t *p, xmlNode *node, int *out) {
  char *s;
  int r = get_text(p, node, &s);
  if (r != 0) return r;
  long days;
  if (parse_uint(s, ATLAS_MAX_DAYS, &days) != 0)
    r = fail(p, node, "<%s> must be a whole number of days from 0 to %d, not \"%.50s\"",
             node_name(node), ATLAS_MAX_DAYS, s);
  else
    *out = (int)days;
  free(s);
  return r;
}

static int parse_im_days(parse_t *p, xmlNode *node) {
  return parse_days(p, node, &p->cfg->im_delete_after_days);
}

static int parse_journal_days(parse_t *p, xmlNode *node) {
  return parse_days(p, node, &p->cfg->journal_delete_after_days);
}

/* Only the path is taken here; whether the file is readable is checked when
 * the outbound client starts, so that parsing stays free of I/O. */
static int parse_ca_bundle(parse_t *p, xmlNode *node) {
  char *s;
  int r = get_text(p, node, &s);
  if (r == 0)
    r = resolve_path(p, node, "<CABundle>", s, p->cfg->ca_bundle, sizeof p->cfg->ca_bundle);
  free(s);
  return r;
}

#define ATLAS_MAX_TRUSTED 32

/* One address or CIDR of <TrustedProxies>, written in canonical form into
 * out. Bits beyond the prefix are refused: "10.0.0.1/8" is more likely a typo
 * than a wish to trust ten million addresses. */
static int trusted_entry(parse_t *p, xmlNode *node, const char *in, char *out, size_t outlen) {
  char addr[64];
  const char *slash = strchr(in, '/');
  size_t alen = slash ? (size_t)(slash - in) : strlen(in);
  unsigned char bin[sizeof(struct in6_addr)];
  int family = 0;
  if (alen < sizeof addr) {
    memcpy(addr, in, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, bin) == 1) family = AF_INET;
    else if (inet_pton(AF_INET6, addr, bin) == 1) family = AF_INET6;
  }
  if (!family)
    return fail(p, node, "<TrustedProxies>: \"%.100s\" is not an IPv4 or IPv6 address or a CIDR "
                "such as 10.0.0.0/8 (no host names)", in);
  int bits = family == AF_INET ? 32 : 128;
  long prefix = bits;
  if (slash && parse_uint(slash + 1, bits, &prefix) != 0)
    return fail(p, node, "<TrustedProxies>: the prefix of \"%.100s\" must be a number from 0 "
                "to %d", in, bits);
  for (int b = (int)prefix; b < bits; b++)
    if (bin[b / 8] & (0x80 >> (b % 8)))
      return fail(p, node, "<TrustedProxies>: \"%.100s\" has address bits set beyond the "
                  "/%ld prefix; write the network address", in, prefix);
  char canon[INET6_ADDRSTRLEN];
  inet_ntop(family, bin, canon, sizeof canon);
  int n = slash ? snprintf(out, outlen, "%s/%ld", canon, prefix)
                : snprintf(out, outlen, "%s", canon);
  return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int parse_trusted_proxies(parse_t *p, xmlNode *node) {
  char *s;
  int r = get_text(p, node, &s);
  if (r != 0) return r;
  char *list = p->cfg->trusted_proxies;
  size_t used = 0, count = 0;
  list[0] = '\0';
  char *save = NULL;
  for (char *tok = strtok_r(s, " \t\r\n", &save); tok && r == 0;
       tok = strtok_r(NULL, " \t\r\n", &save)) {
    if (++count > ATLAS_MAX_TRUSTED) {
      r = fail(p, node, "<TrustedProxies> lists more than %d entries; use CIDRs",
               ATLAS_MAX_TRUSTED);
      break;
    }
    char one[INET6_ADDRSTRLEN + 8];
    r = trusted_entry(p, node, tok, one, sizeof one);
    if (r != 0) break;
    int n = snprintf(list + used, sizeof p->cfg->trusted_proxies - used, "%s%s", used ? " " : "",
                     one);
    if (n < 0 || (size_t)n >= sizeof p->cfg->trusted_proxies - used)
      r = fail(p, node, "<TrustedProxies> is too long");
    else
      used += (size_t)n;
  }
  free(s);
  return r;
}

static int parse_privacy_dir(parse_t *p, xmlNode *node) {
  static const char *const names[] = {"install", "custom"};
  xmlChar *v[2];
  int r = get_attributes(p, node, names, 2, v);
  if (r == 0) r = expect_no_content(p, node);
  if (r == 0 && !v[0] && !v[1])
    r = fail(p, node, "<PrivacyDirectory> needs install=\"DIR\", custom=\"DIR\" or both");
  if (r == 0 && v[0])
    r = resolve_path(p, node, "<PrivacyDirectory install>", (const char *)v[0],
                     p->cfg->privacy_install, sizeof p->cfg->privacy_install);
  if (r == 0 && v[1])
    r = resolve_path(p, node, "<PrivacyDirectory custom>", (const char *)v[1],
                     p->cfg->privacy_custom, sizeof p->cfg->privacy_custom);
  free_values(v, 2);
  return r;
}

/* The sentences never quote conninfo: it may hold a password. */
static int parse_store(parse_t *p, xmlNode *node) {
  static const char *const names[] = {"backend", "conninfo"};
  xmlChar *v[2];
  int r = get_attributes(p, node, names, 2, v);
  if (r == 0) r = expect_no_content(p, node);
  const char *backend = (const char *)v[0], *conninfo = (const char *)v[1];
  bool sqlite = backend && strcmp(backend, ATLAS_STORE_SQLITE) == 0;
  bool pg = backend && strcmp(backend, ATLAS_STORE_POSTGRESQL) == 0;
  if (r != 0) {
    /* get_attributes or expect_no_content said why */
  } else if (!backend) {
    r = fail(p, node, "<Store> needs backend=\"" ATLAS_STORE_SQLITE "\" or backend=\""
             ATLAS_STORE_POSTGRESQL "\"");
  } else if (!sqlite && !pg) {
    r = fail(p, node, "<Store backend=\"%.40s\">: the backend must be \"" ATLAS_STORE_SQLITE
             "\" (the embedded store in the data directory) or \"" ATLAS_STORE_POSTGRESQL "\"",
             backend);
  } else if (sqlite && conninfo) {
    r = fail(p, node, "<Store backend=\"" ATLAS_STORE_SQLITE "\"> takes no conninfo (the SQLite "
             "store is a file in <DataDirectory>); remove conninfo, or use backend=\""
             ATLAS_STORE_POSTGRESQL "\"");
  } else if (pg && (!conninfo || is_blank(conninfo))) {
    r = fail(p, node, "<Store backend=\"" ATLAS_STORE_POSTGRESQL "\"> needs conninfo, a libpq "
             "connection string such as conninfo=\"host=/run/postgresql dbname=atrium\"");
  } else if (conninfo && strlen(conninfo) >= sizeof p->cfg->store_conninfo) {
    r = fail(p, node, "<Store conninfo> is longer than %zu characters",
             sizeof p->cfg->store_conninfo - 1);
  } else {
    snprintf(p->cfg->store_backend, sizeof p->cfg->store_backend, "%s", backend);
    snprintf(p->cfg->store_conninfo, sizeof p->cfg->store_conninfo, "%s",
             conninfo ? conninfo : "");
  }
  free_values(v, 2);
  return r;
}

static bool node_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63) return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '.' || *s == '-' || *s == '_'))
      return false;
  return true;
}

static bool node_url_ok(const char *s) {
  const char *rest = strncmp(s, "http://", 7) == 0    ? s + 7
                     : strncmp(s, "https://", 8) == 0 ? s + 8
                                                      : NULL;
  if (!rest || !*rest || *rest == '/' || strlen(s) > 255) return false;
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || *s == '"' || *s == '\\' || *s == '<' || *s == '>')
      return false;
  return true;
}

static int parse_node(parse_t *p, xmlNode *node) {
  static const char *const names[] = {"name", "url"};
  xmlChar *v[2];
  int r = get_attributes(p, node, names, 2, v);
  if (r == 0) r = expect_no_content(p, node);
  const char *name = (const char *)v[0], *url = (const char *)v[1];
  if (r != 0) {
    /* said why */
  } else if (name && !node_name_ok(name)) {
    r = fail(p, node, "<Node name=\"%.80s\">: a node name is 1 to 63 letters, digits, \".\", "
             "\"-\" or \"_\"", name);
  } else if (url && !node_url_ok(url)) {
    r = fail(p, node, "<Node url=\"%.80s\">: the URL the other nodes and the load balancer reach "
             "this node at, such as http://10.0.0.11:8080 (http or https, a host, at most 255 "
             "characters)", url);
  } else {
    snprintf(p->cfg->node_name, sizeof p->cfg->node_name, "%s", name ? name : "");
    snprintf(p->cfg->node_url, sizeof p->cfg->node_url, "%s", url ? url : "");
  }
  free_values(v, 2);
  return r;
}

static bool ip_literal(const char *s) {
  unsigned char bin[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1;
}

/* "IPv4:port", the port 1-65535 (glibc's resolver takes IPv4 servers). */
static bool resolver_ok(const char *s) {
  char host[64];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host) return false;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  unsigned char bin[4];
  long port;
  return inet_pton(AF_INET, host, bin) == 1 && parse_uint(colon + 1, 65535, &port) == 0 &&
         port > 0;
}

static int parse_federation(parse_t *p, xmlNode *node) {
  static const char *const names[] = {"address", "port", "certificate", "key", "ca", "resolver"};
  xmlChar *v[6];
  int r = get_attributes(p, node, names, 6, v);
  if (r == 0) r = expect_no_content(p, node);
  if (r == 0 && (!v[2] || !v[3] || !v[4]))
    r = fail(p, node, "<Federation> needs certificate, key and ca (SIP federation is mutual "
             "TLS: our certificate and key, and the CAs partners' certificates are checked "
             "against)");
  if (r == 0 && v[0]) {
    const char *addr = (const char *)v[0];
    if (strlen(addr) >= sizeof p->cfg->sip_address || !ip_literal(addr))
      r = fail(p, node, "<Federation address=\"%.100s\">: the address must be an IPv4 or IPv6 "
               "literal such as 0.0.0.0 (no host name, no brackets)", addr);
    else
      r = copy_str(p->cfg->sip_address, sizeof p->cfg->sip_address, addr);
  }
  if (r == 0 && v[1]) {
    long port;
    if (parse_uint((const char *)v[1], 65535, &port) != 0 || port == 0)
      r = fail(p, node, "<Federation port=\"%.100s\">: the port must be a whole number from 1 "
               "to 65535 (partners expect 5061)", (const char *)v[1]);
    else
      p->cfg->sip_port = (int)port;
  }
  if (r == 0 && v[5]) {
    const char *res = (const char *)v[5];
    if (strlen(res) >= sizeof p->cfg->sip_resolver || !resolver_ok(res))
      r = fail(p, node, "<Federation resolver=\"%.100s\">: give the DNS server as an IPv4 "
               "address and port, for example 127.0.0.1:53", res);
    else
      r = copy_str(p->cfg->sip_resolver, sizeof p->cfg->sip_resolver, res);
  }
  if (r == 0)
    r = resolve_path(p, node, "<Federation certificate>", (const char *)v[2], p->cfg->sip_cert,
                     sizeof p->cfg->sip_cert);
  if (r == 0)
    r = resolve_path(p, node, "<Federation key>", (const char *)v[3], p->cfg->sip_key,
                     sizeof p->cfg->sip_key);
  if (r == 0)
    r = resolve_path(p, node, "<Federation ca>", (const char *)v[4], p->cfg->sip_ca,
                     sizeof p->cfg->sip_ca);
  if (r == 0) p->cfg->sip_configured = true;
  free_values(v, 6);
  return r;
}

static void config_defaults(atlas_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->listen_address, sizeof cfg->listen_address, "%s", ATLAS_DEFAULT_ADDRESS);
  cfg->listen_port = ATLAS_DEFAULT_PORT;
  cfg->limit_connections = ATLAS_DEFAULT_CONNECTIONS;
  cfg->limit_per_address = ATLAS_DEFAULT_PER_ADDRESS;
  cfg->limit_loopback_reserve = ATLAS_DEFAULT_LOOPBACK_RESERVE;
  cfg->limit_header_timeout = ATLAS_DEFAULT_HEADER_TIMEOUT;
  cfg->limit_logins_per_source = ATLAS_DEFAULT_LOGINS_PER_SOURCE;
  cfg->limit_logins_per_account = ATLAS_DEFAULT_LOGINS_PER_ACCOUNT;
  cfg->limit_login_failures_per_source = ATLAS_DEFAULT_LOGIN_FAILURES_PER_SOURCE;
  snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", ATLAS_DEFAULT_DATA_DIR);
  snprintf(cfg->store_backend, sizeof cfg->store_backend, "%s", ATLAS_STORE_SQLITE);
  cfg->im_delete_after_days = -1;
  cfg->journal_delete_after_days = -1;
  snprintf(cfg->sip_address, sizeof cfg->sip_address, "0.0.0.0");
  cfg->sip_port = ATLAS_DEFAULT_SIP_PORT;
}

static int unknown_element(parse_t *p, const xmlNode *node) {
  char known[512] = "";
  for (size_t i = 0; i < N_ELEMENTS; i++) {
    size_t used = strlen(known);
    snprintf(known + used, sizeof known - used, "%s<%s>", i ? ", " : "", elements[i].name);
  }
  const char *prefix = node->ns && node->ns->prefix ? (const char *)node->ns->prefix : "";
  return fail(p, node, "unknown element <%s%s%.100s>; known elements are %s", prefix,
              *prefix ? ":" : "", node_name(node), known);
}

static int parse_root(parse_t *p, xmlNode *root) {
  if (root->ns || strcmp(node_name(root), ATLAS_ROOT) != 0)
    return fail(p, root, "the root element must be <%s> without a namespace, not <%.100s>",
                ATLAS_ROOT, node_name(root));
  if (root->properties)
    return fail(p, root, "unknown attribute \"%.100s\" on <%s>; <%s> takes no attributes",
                (const char *)root->properties->name, ATLAS_ROOT, ATLAS_ROOT);
  long seen_line[N_ELEMENTS] = {0};
  for (xmlNode *c = root->children; c; c = c->next) {
    if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE) continue;
    if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
      if (is_blank((const char *)c->content)) continue;
      return fail(p, c, "text directly inside <%s>; values go inside their elements",
                  ATLAS_ROOT);
    }
    if (c->type != XML_ELEMENT_NODE)
      return fail(p, c, "unexpected content inside <%s>", ATLAS_ROOT);
    size_t i = N_ELEMENTS;
    if (!c->ns)
      for (i = 0; i < N_ELEMENTS; i++)
        if (strcmp(node_name(c), elements[i].name) == 0) break;
    if (i == N_ELEMENTS) return unknown_element(p, c);
    if (seen_line[i] != 0)
      return fail(p, c, "<%s> is given twice (first on line %ld); keep one", elements[i].name,
                  seen_line[i]);
    seen_line[i] = xmlGetLineNo(c) > 0 ? xmlGetLineNo(c) : 1;
    int r = elements[i].parse(p, c);
    if (r != 0) return r;
  }
  return 0;
}

static void on_xml_error(void *ctx, xmlErrorPtr e) {
  xml_errors_t *c = ctx;
  if (!c || !e || c->have || e->level < XML_ERR_ERROR) return;
  c->have = true;
  c->line = e->line;
  snprintf(c->msg, sizeof c->msg, "%s", e->message ? e->message : "malformed XML");
  trim(c->msg);
  /* libxml2 messages may span lines; ours are one sentence. */
  for (char *s = c->msg; *s; s++)
    if (*s == '\n' || *s == '\r') *s = ' ';
}

static void on_generic_error(void *ctx, const char *fmt, ...) {
  (void)ctx;
  (void)fmt;
}

/* A DOCTYPE is where entities come from; stopping at it means no entity is
 * ever declared, let alone expanded or fetched. */
static void on_internal_subset(void *ctx, const xmlChar *name, const xmlChar *external_id,
                               const xmlChar *system_id) {
  (void)name;
  (void)external_id;
  (void)system_id;
  xmlParserCtxtPtr ctxt = ctx;
  xml_errors_t *c = ctxt->_private;
  if (c && !c->doctype) {
    c->doctype = true;
    c->doctype_line = xmlSAX2GetLineNumber(ctxt);
  }
  xmlStopParser(ctxt);
}

static int too_large(char *err, size_t errlen, const char *file) {
  set_err(err, errlen, "%s: the file is larger than %d bytes; this is not an atlas.xml", file,
          ATLAS_MAX_BYTES);
  return -EFBIG;
}

static int parse_buffer(parse_t *p, const char *buf, size_t len) {
  if (len > ATLAS_MAX_BYTES) return too_large(p->err, p->errlen, p->file);
  xmlInitParser();
  xml_errors_t errors = {0};
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  if (!ctxt) {
    set_err(p->err, p->errlen, "%s: out of memory", p->file);
    return -ENOMEM;
  }
  ctxt->_private = &errors;
  ctxt->sax->internalSubset = on_internal_subset;

  /* Errors go to our collector and never to stderr; the thread's previous
   * handlers come back afterwards (libxml2 keeps them per thread). */
  xmlStructuredErrorFunc old_serror = xmlStructuredError;
  void *old_serror_ctx = xmlStructuredErrorContext;
  xmlGenericErrorFunc old_generic = xmlGenericError;
  void *old_generic_ctx = xmlGenericErrorContext;
  xmlSetStructuredErrorFunc(&errors, on_xml_error);
  xmlSetGenericErrorFunc(NULL, on_generic_error);

  /* No NOENT, no DTDLOAD: entities are never substituted and nothing is
   * fetched; NONET as a second fence. */
  xmlDocPtr doc = xmlCtxtReadMemory(ctxt, len ? buf : "", (int)len, p->file, NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_BIG_LINES);

  xmlSetStructuredErrorFunc(old_serror_ctx, old_serror);
  xmlSetGenericErrorFunc(old_generic_ctx, old_generic);
  xmlFreeParserCtxt(ctxt);

  int r;
  if (errors.doctype) {
    r = -EINVAL;
    set_err(p->err, p->errlen, "%s line %ld: a DOCTYPE is not allowed in atlas.xml; remove it "
            "(the file uses no DTD or entities)", p->file, errors.doctype_line);
  } else if (!doc || errors.have) {
    r = -EINVAL;
    if (errors.have)
      set_err(p->err, p->errlen, "%s line %ld: not well-formed XML: %s", p->file, errors.line,
              errors.msg);
    else
      set_err(p->err, p->errlen, "%s: not well-formed XML", p->file);
  } else {
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!root)
      r = fail(p, NULL, "the document has no root element; start with <%s>", ATLAS_ROOT);
    else
      r = parse_root(p, root);
  }
  xmlFreeDoc(doc);
  return r;
}

int atlas_parse_memory(const char *buf, size_t len, const char *base_dir, atlas_config_t *cfg,
                       char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if ((!buf && len) || !cfg) {
    set_err(err, errlen, "%s: nothing to read", ATLAS_MEMORY_NAME);
    return -EINVAL;
  }
  atlas_config_t *tmp = malloc(sizeof *tmp);
  if (!tmp) {
    set_err(err, errlen, "%s: out of memory", ATLAS_MEMORY_NAME);
    return -ENOMEM;
  }
  config_defaults(tmp);
  parse_t p = {.file = ATLAS_MEMORY_NAME, .base_dir = base_dir, .cfg = tmp, .err = err,
               .errlen = errlen};
  int r = parse_buffer(&p, buf, len);
  if (r == 0) *cfg = *tmp;
  free(tmp);
  return r;
}

static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen) {
  int r = fileio_read_all(path, ATLAS_MAX_BYTES, out, outlen);
  if (r == -EINVAL)
    set_err(err, errlen, "%s is not a regular file; give the path of atlas.xml", path);
  else if (r == -EFBIG)
    too_large(err, errlen, path);
  else if (r == -ENOMEM)
    set_err(err, errlen, "%s: out of memory", path);
  else if (r == -EIO)
    set_err(err, errlen, "cannot read %s: %s", path, strerror(-r));
  else if (r != 0)
    set_err(err, errlen, "cannot open %s: %s; check the path given with -c", path, strerror(-r));
  return r;
}

int atlas_load(const char *path, atlas_config_t *cfg, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!path || !path[0] || !cfg) {
    set_err(err, errlen, "no configuration file given; pass the path of atlas.xml with -c");
    return -EINVAL;
  }
  char *buf = NULL;
  size_t len = 0;
  int r = read_file(path, &buf, &len, err, errlen);
  if (r != 0) return r;

  /* The real directory, so that relative paths do not depend on the cwd or on
   * a symlink that later changes. */
  char *dir_copy = strdup(path), *base_copy = strdup(path);
  atlas_config_t *tmp = malloc(sizeof *tmp);
  char real_dir[PATH_MAX];
  if (!dir_copy || !base_copy || !tmp) {
    set_err(err, errlen, "%s: out of memory", path);
    r = -ENOMEM;
    goto out;
  }
  if (!realpath(dirname(dir_copy), real_dir)) {
    r = -errno;
    set_err(err, errlen, "cannot resolve the directory of %s: %s", path, strerror(-r));
    goto out;
  }
  config_defaults(tmp);
  int n = snprintf(tmp->path, sizeof tmp->path, "%s%s%s", real_dir,
                   strcmp(real_dir, "/") == 0 ? "" : "/", basename(base_copy));
  if (n < 0 || (size_t)n >= sizeof tmp->path) {
    set_err(err, errlen, "%s: the path is too long", path);
    r = -ENAMETOOLONG;
    goto out;
  }
  parse_t p = {.file = path, .base_dir = real_dir, .cfg = tmp, .err = err, .errlen = errlen};
  r = parse_buffer(&p, buf, len);
  if (r == 0) *cfg = *tmp;
out:
  free(tmp);
  free(dir_copy);
  free(base_copy);
  free(buf);
  return r;
}

int atlas_retention_days(const atlas_config_t *cfg) {
  if (!cfg) return -1;
  int im = cfg->im_delete_after_days, journal = cfg->journal_delete_after_days;
  return im > journal ? im : journal;
}

/* ---- values read while running -------------------------------------------------- */

struct atlas_watch {
  pthread_mutex_t lock;
  char *path;
  bool read_once;
  /* The identity of the file last parsed; exists=false when stat failed. */
  bool exists;
  int stat_errno;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
  atlas_live_t live;
  char err[512];
};

atlas_watch_t *atlas_watch_new(const char *path) {
  atlas_watch_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  if (!(w->path = strdup(path ? path : ""))) {
    free(w);
    return NULL;
  }
  pthread_mutex_init(&w->lock, NULL);
  return w;
}

void atlas_watch_free(atlas_watch_t *w) {
  if (!w) return;
  pthread_mutex_destroy(&w->lock);
  free(w->path);
  free(w);
}

const char *atlas_watch_path(const atlas_watch_t *w) { return w->path; }

static bool same_time(struct timespec a, struct timespec b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

void atlas_watch_get(atlas_watch_t *w, atlas_live_t *out, bool *changed, char *err,
                     size_t errlen) {
  struct stat st;
  bool exists = stat(w->path, &st) == 0;
  int serr = exists ? 0 : errno;
  pthread_mutex_lock(&w->lock);
  bool same = w->read_once && exists == w->exists &&
              (exists ? w->dev == st.st_dev && w->ino == st.st_ino && w->size == st.st_size &&
                            same_time(w->mtime, st.st_mtim) && same_time(w->ctime, st.st_ctim)
                      : w->stat_errno == serr);
  if (changed) *changed = !same;
  if (!same) {
    w->read_once = true;
    w->exists = exists;
    w->stat_errno = serr;
    w->live = (atlas_live_t){.ok = false, .im_delete_after_days = -1,
                             .journal_delete_after_days = -1};
    w->err[0] = '\0';
    if (exists) {
      w->dev = st.st_dev;
      w->ino = st.st_ino;
      w->size = st.st_size;
      w->mtime = st.st_mtim;
      w->ctime = st.st_ctim;
      atlas_config_t *cfg = malloc(sizeof *cfg);
      if (!cfg) {
        snprintf(w->err, sizeof w->err, "out of memory reading %s", w->path);
        w->read_once = false; /* try again next time */
      } else if (atlas_load(w->path, cfg, w->err, sizeof w->err) == 0) {
        w->live.ok = true;
        w->live.im_delete_after_days = cfg->im_delete_after_days;
        w->live.journal_delete_after_days = cfg->journal_delete_after_days;
      }
      free(cfg);
    } else {
      snprintf(w->err, sizeof w->err, "cannot read %s: %s", w->path, strerror(serr));
    }
  }
  *out = w->live;
  if (err && errlen) snprintf(err, errlen, "%s", w->err);
  pthread_mutex_unlock(&w->lock);
}
