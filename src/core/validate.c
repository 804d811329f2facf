/* Validators for setting values. See validate.h for the contract.
 *
 * Parsing is left to the libraries (uriparser for URLs, libidn2 for IDN,
 * inet_pton for addresses); this file adds the rules those libraries do not
 * know about and builds the normalised form from the parsed parts. */
#include "core/validate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uriparser/Uri.h>

#define HOST_MAX 253
#define LABEL_MAX 63
/* Unicode input takes up to four bytes per character, so the raw input may be
 * longer than HOST_MAX; this bound only keeps libidn2's work small. */
#define HOST_INPUT_MAX 1024
#define QOS_NAME_MAX 64

/* ---- helpers ------------------------------------------------------------- */

int validate_fail(validate_error_t *err, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->field[0] = '\0';
  }
  return -EINVAL;
}

static void set_field(validate_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_field(validate_error_t *err, const char *fmt, ...) {
  if (!err)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->field, sizeof err->field, fmt, ap);
  va_end(ap);
}

static int fail_oom(validate_error_t *err) {
  validate_fail(err, "The server ran out of memory while checking the value; try again.");
  return -ENOMEM;
}

/* Own ASCII helpers: <ctype.h> depends on the process locale. */
static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_control(int c) { return (c >= 0 && c < 0x20) || c == 0x7f; }
static char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int hex_value(int c) {
  if (is_digit(c))
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static void lower_in_place(char *s) {
  for (; *s; s++)
    *s = to_lower(*s);
}

static int ascii_casecmp(const char *a, const char *b) {
  for (;; a++, b++) {
    int d = to_lower(*a) - to_lower(*b);
    if (d != 0 || *a == '\0')
      return d;
  }
}

static int dup_out(const char *s, char **out, validate_error_t *err) {
  char *copy = strdup(s);
  if (!copy)
    return fail_oom(err);
  *out = copy;
  return 0;
}

/* A growing output string; one allocation failure poisons it so callers check
 * once at the end. */
typedef struct strbuf {
  char *p;
  size_t len, cap;
  bool oom;
} strbuf_t;

static void sb_append(strbuf_t *sb, const char *s, size_t n) {
  if (sb->oom)
    return;
  if (sb->len + n + 1 > sb->cap) {
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + n + 1)
      cap *= 2;
    char *p = realloc(sb->p, cap);
    if (!p) {
      sb->oom = true;
      return;
    }
    sb->p = p;
    sb->cap = cap;
  }
  memcpy(sb->p + sb->len, s, n);
  sb->len += n;
  sb->p[sb->len] = '\0';
}

static void sb_puts(strbuf_t *sb, const char *s) { sb_append(sb, s, strlen(s)); }

static void sb_free(strbuf_t *sb) {
  free(sb->p);
  sb->p = NULL;
}

/* Ends a build that returned r: on success the string goes to *out (fail_oom() if the buffer
 * ran out of memory), else it is freed. */
static int sb_take(strbuf_t *sb, int r, char **out, validate_error_t *err) {
  if (r == 0 && sb->oom)
    r = fail_oom(err);
  if (r == 0) {
    *out = sb->p;
    sb->p = NULL;
  }
  sb_free(sb);
  return r;
}

/* ---- addresses ----------------------------------------------------------- */

/* Brackets are accepted around IPv6 only, as written in URLs. */
static bool ip_parse(const char *s, size_t len, int *family, unsigned char addr[16]) {
  char buf[INET6_ADDRSTRLEN + 1];
  bool bracketed = len >= 2 && s[0] == '[' && s[len - 1] == ']';
  if (bracketed) {
    s++;
    len -= 2;
  }
  if (len == 0 || len >= sizeof buf || memchr(s, '\0', len))
    return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  if (!bracketed && inet_pton(AF_INET, buf, addr) == 1) {
    *family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, buf, addr) == 1) {
    *family = AF_INET6;
    return true;
  }
  return false;
}

bool validate_is_ip_literal(const char *s) {
  int family;
  unsigned char addr[16];
  return s && ip_parse(s, strnlen(s, INET6_ADDRSTRLEN + 3), &family, addr);
}

/* ---- host names ---------------------------------------------------------- */

static int host_idn_fail(int rc, validate_error_t *err) {
  switch (rc) {
  case IDN2_MALLOC:
    return fail_oom(err);
  case IDN2_TOO_BIG_LABEL:
    return validate_fail(err, "The host name has a label longer than %d characters once converted "
                              "to A-labels (xn--...); shorten it.", LABEL_MAX);
  case IDN2_TOO_BIG_DOMAIN:
    return validate_fail(err, "The host name is longer than %d characters once converted to "
                              "A-labels (xn--...); shorten it.", HOST_MAX);
  case IDN2_ENCODING_ERROR:
  case IDN2_ICONV_FAIL:
  case IDN2_NFC:
    return validate_fail(err, "The host name is not valid UTF-8 text; type it again.");
  case IDN2_HYPHEN_STARTEND:
    return validate_fail(err, "The host name has a label that starts or ends with a hyphen; labels "
                              "must start and end with a letter or digit.");
  case IDN2_2HYPHEN:
    return validate_fail(err, "The host name has a label with \"--\" in the third and fourth "
                              "place, which is reserved for A-labels (xn--); change the label.");
  case IDN2_PUNYCODE_BAD_INPUT:
  case IDN2_PUNYCODE_BIG_OUTPUT:
  case IDN2_PUNYCODE_OVERFLOW:
  case IDN2_INVALID_ALABEL:
  case IDN2_UALABEL_MISMATCH:
  case IDN2_ALABEL_ROUNDTRIP_FAILED:
    return validate_fail(err, "The host name has an invalid A-label (xn--...); enter the name in "
                              "Unicode or copy the A-label exactly.");
  case IDN2_BIDI:
    return validate_fail(err, "The host name mixes right-to-left and left-to-right text in a way "
                              "internationalised domain names do not allow; check the name.");
  case IDN2_DISALLOWED:
  case IDN2_UNASSIGNED:
  case IDN2_CONTEXTJ:
  case IDN2_CONTEXTJ_NO_RULE:
  case IDN2_CONTEXTO:
  case IDN2_CONTEXTO_NO_RULE:
  case IDN2_LEADING_COMBINING:
    return validate_fail(err, "The host name contains a character that internationalised domain "
                              "names do not allow (IDNA 2008); remove symbols and look-alike "
                              "characters.");
  default:
    return validate_fail(err, "The host name is not a valid internationalised domain name (%s); "
                              "check it.", idn2_strerror(rc));
  }
}

/* IDNA 2008 (non-transitional UTS #46) only. The older IDNA 2003 mapping
 * would also accept symbols ("i\u2764.ws") and silently turn "faß.de" into
 * the different domain "fass.de"; a server's configuration should name hosts
 * every current resolver and certificate authority agrees on. */
static int idn_to_ascii(const char *in, char **out, validate_error_t *err) {
  char *conv = NULL;
  int rc = idn2_to_ascii_8z(in, &conv, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  if (rc != IDN2_OK)
    return host_idn_fail(rc, err);
  /* libidn2 may allocate with its own allocator; hand the caller a malloc() copy. */
  int r = dup_out(conv, out, err);
  idn2_free(conv);
  return r;
}

/* An ASCII label starting with "xn--" must be decodable Punycode, or the name
 * would be accepted here and fail on every resolver. */
static int check_alabel(const char *label, size_t len, validate_error_t *err) {
  char buf[LABEL_MAX + 1];
  memcpy(buf, label, len);
  buf[len] = '\0';
  char *conv = NULL;
  int rc = idn2_to_ascii_8z(buf, &conv, IDN2_NONTRANSITIONAL);
  idn2_free(conv);
  return rc == IDN2_OK ? 0 : host_idn_fail(rc, err);
}

static int host_char_fail(char c, validate_error_t *err) {
  if (c > 0x20 && c < 0x7f)
    return validate_fail(err, "The host name contains \"%c\", which is not allowed; use only "
                              "letters, digits, hyphens and dots.", c);
  return validate_fail(err, "The host name contains a character that is not allowed; use only "
                            "letters, digits, hyphens and dots.");
}

/* name: lower-case ASCII, trailing dot already removed. */
static int check_labels(const char *name, unsigned flags, validate_error_t *err) {
  size_t len = strlen(name);
  if (len == 0)
    return validate_fail(err, "The host name is empty; enter a name such as example.com.");
  if (len > HOST_MAX)
    return validate_fail(err, "The host name is %zu characters long; at most %d are allowed.", len,
                         HOST_MAX);
  size_t labels = 0;
  const char *label = name, *last = name;
  size_t last_len = 0;
  while (label) {
    const char *dot = strchr(label, '.');
    size_t n = dot ? (size_t)(dot - label) : strlen(label);
    if (n == 0)
      return validate_fail(err, "The host name has an empty label (a leading dot or two dots in a "
                                "row); remove the extra dot.");
    if (n > LABEL_MAX)
      return validate_fail(err, "The host name has a label of %zu characters (\"%.20s...\"); each "
                                "label may have at most %d.", n, label, LABEL_MAX);
    for (size_t i = 0; i < n; i++)
      if (!is_alpha(label[i]) && !is_digit(label[i]) && label[i] != '-')
        return host_char_fail(label[i], err);
    if (label[0] == '-' || label[n - 1] == '-')
      return validate_fail(err, "The host name has a label that starts or ends with a hyphen "
                                "(\"%.*s\"); labels must start and end with a letter or digit.",
                           (int)n, label);
    if (n >= 4 && memcmp(label, "xn--", 4) == 0) {
      int r = check_alabel(label, n, err);
      if (r < 0)
        return r;
    }
    labels++;
    last = label;
    last_len = n;
    label = dot ? dot + 1 : NULL;
  }
  bool numeric = true;
  for (size_t i = 0; i < last_len; i++)
    numeric = numeric && is_digit(last[i]);
  if (numeric)
    return validate_fail(err, "The host name ends in the all-digit label \"%.*s\"; a top-level "
                              "domain must contain a letter (an IP address must have four numbers "
                              "from 0 to 255).", (int)last_len, last);
  if ((flags & HOST_TWO_LABELS) && labels < 2)
    return validate_fail(err, "The host name \"%s\" is a single label; use a name with at least "
                              "two labels, such as %s.example.com.", name, name);
  return 0;
}

int validate_host(const char *in, unsigned flags, char **out, validate_error_t *err) {
  if (!in || !*in)
    return validate_fail(err, "The host name is empty; enter a name such as example.com.");
  size_t len = strnlen(in, HOST_INPUT_MAX + 1);
  if (len > HOST_INPUT_MAX)
    return validate_fail(err, "The host name is too long; at most %d characters are allowed.",
                         HOST_MAX);
  bool ascii = true;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == ' ')
      return validate_fail(err, "The host name contains a space; remove it.");
    if (is_control(c))
      return validate_fail(err, "The host name contains a control character (such as a tab or "
                                "line break); remove it.");
    ascii = ascii && c < 0x80;
  }

  int family;
  unsigned char addr[16];
  if (ip_parse(in, len, &family, addr)) {
    if (!(flags & HOST_ALLOW_IP))
      return validate_fail(err, "Must be a host name such as example.com, not an IP address.");
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(family, addr, text, sizeof text))
      return validate_fail(err, "The IP address cannot be written in canonical form; check it.");
    return dup_out(text, out, err);
  }

  char *name = NULL;
  int r = ascii ? dup_out(in, &name, err) : idn_to_ascii(in, &name, err);
  if (r < 0)
    return r;
  lower_in_place(name);
  size_t n = strlen(name);
  if (n > 1 && name[n - 1] == '.')
    name[n - 1] = '\0';
  r = check_labels(name, flags, err);
  if (r < 0) {
    free(name);
    return r;
  }
  *out = name;
  return 0;
}

/* ---- URLs ---------------------------------------------------------------- */

static const struct url_scheme {
  const char *name;
  unsigned bit;
  const char *default_port;
} url_schemes[] = {
    {.name = "http", .bit = URL_SCHEME_HTTP, .default_port = "80"},
    {.name = "https", .bit = URL_SCHEME_HTTPS, .default_port = "443"},
    {.name = "ldap", .bit = URL_SCHEME_LDAP, .default_port = "389"},
    {.name = "ldaps", .bit = URL_SCHEME_LDAPS, .default_port = "636"},
};

#define N_SCHEMES (sizeof url_schemes / sizeof url_schemes[0])

static size_t range_len(const UriTextRangeA *r) {
  return r->first ? (size_t)(r->afterLast - r->first) : 0;
}

static const struct url_scheme *scheme_find(const UriTextRangeA *r) {
  size_t n = range_len(r);
  for (size_t i = 0; i < N_SCHEMES; i++) {
    const char *name = url_schemes[i].name;
    if (strlen(name) != n)
      continue;
    size_t j = 0;
    while (j < n && to_lower(r->first[j]) == name[j])
      j++;
    if (j == n)
      return &url_schemes[i];
  }
  return NULL;
}

/* "https://", "http:// or https://", "http://, https:// or ldap://" */
static void scheme_list(unsigned mask, char *buf, size_t size) {
  size_t count = 0, total = 0;
  for (size_t i = 0; i < N_SCHEMES; i++)
    total += (mask & url_schemes[i].bit) != 0;
  buf[0] = '\0';
  for (size_t i = 0; i < N_SCHEMES; i++) {
    if (!(mask & url_schemes[i].bit))
      continue;
    size_t used = strlen(buf);
    const char *sep = count == 0 ? "" : count + 1 == total ? " or " : ", ";
    snprintf(buf + used, size - used, "%s%s://", sep, url_schemes[i].name);
    count++;
  }
}

/* "host:abc/" fails where uriparser gives up waiting for the '@' of user info
 * ("host:abc@"). Re-parsing the text up to that point with "@x" appended lets
 * uriparser say what the user meant as host and port, for a better message
 * than a position. `text` holds at least `pos` bytes. */
static bool bad_port_diagnosed(const char *text, size_t pos, validate_error_t *err) {
  char *probe = malloc(pos + 3);
  if (!probe)
    return false;
  memcpy(probe, text, pos);
  memcpy(probe + pos, "@x", 3);
  UriUriA uri;
  bool found = false;
  if (uriParseSingleUriA(&uri, probe, NULL) == URI_SUCCESS) {
    const char *colon = NULL;
    for (const char *p = uri.userInfo.first; p && p < uri.userInfo.afterLast; p++)
      if (*p == ':')
        colon = p;
    size_t n = colon ? (size_t)(uri.userInfo.afterLast - colon - 1) : 0;
    bool digits = true;
    for (size_t i = 0; i < n; i++)
      digits = digits && is_digit(colon[1 + i]);
    if (n > 0 && !digits && range_len(&uri.hostText) == 1) {
      validate_fail(err, "The port \"%.*s\" is not a number; use a number from 1 to 65535.",
                    (int)(n > 20 ? 20 : n), colon + 1);
      found = true;
    }
    uriFreeUriMembersA(&uri);
  }
  free(probe);
  return found;
}

static int url_syntax_fail(const char *in, size_t len, size_t pos, validate_error_t *err) {
  if ((pos >= len || strchr("/?#", in[pos])) && bad_port_diagnosed(in, pos < len ? pos : len, err))
    return -EINVAL;
  if (pos >= len)
    return validate_fail(err, "Is not a valid URL: it ends unexpectedly; check for a missing "
                              "\"]\" or an incomplete %%XX escape.");
  /* uriparser stops behind a '%' at the first character that is not hex. */
  for (size_t back = 1; back <= 2 && pos >= back; back++)
    if (in[pos - back] == '%')
      pos -= back;
  char c = in[pos];
  if (c == '%')
    return validate_fail(err, "Is not a valid URL: the \"%%\" at position %zu does not start a "
                              "%%XX escape; write a literal %% as %%25.", pos + 1);
  if (c > 0x20 && c < 0x7f)
    return validate_fail(err, "Is not a valid URL: \"%c\" at position %zu is not allowed there; "
                              "check the host and the port (digits only), and percent-encode "
                              "special characters.", c, pos + 1);
  return validate_fail(err, "Is not a valid URL: the character at position %zu is not allowed "
                            "there; percent-encode it.", pos + 1);
}

/* Copies a path segment, query or fragment. uriparser has checked the syntax;
 * this refuses encoded control characters, which only serve to smuggle line
 * breaks or NULs past later consumers, and writes escapes in upper case
 * (RFC 3986, 6.2.2.1). */
static int append_component(strbuf_t *sb, const char *p, const char *end,
                            validate_error_t *err) {
  while (p < end) {
    if (*p == '%' && end - p >= 3 && hex_value(p[1]) >= 0 && hex_value(p[2]) >= 0) {
      int v = hex_value(p[1]) * 16 + hex_value(p[2]);
      if (is_control(v))
        return validate_fail(err, "Contains an encoded control character (%%%02X); remove it.", v);
      char esc[8]; /* room for any int, so -O2 sees no truncation */
      snprintf(esc, sizeof esc, "%%%02X", v);
      sb_append(sb, esc, 3);
      p += 3;
    } else {
      sb_append(sb, p, 1);
      p++;
    }
  }
  return 0;
}

/* The port text is digits (uriparser's grammar); empty means absent. Returns
 * the value, 0 for "absent", or fails for values outside 1-65535. */
static int parse_port(const char *p, size_t n, long *value, validate_error_t *err) {
  size_t skip = 0;
  while (skip < n && p[skip] == '0')
    skip++;
  long v = 0;
  for (size_t i = skip; i < n && v <= 65535; i++)
    v = v * 10 + (p[i] - '0');
  if (n == 0) {
    *value = 0;
    return 0;
  }
  if (v < 1 || v > 65535)
    return validate_fail(err, "Port %.*s is out of range; use 1-65535.", (int)(n > 20 ? 20 : n), p);
  *value = v;
  return 0;
}

static int append_port(strbuf_t *sb, const UriTextRangeA *r, const char *default_port,
                       validate_error_t *err) {
  long port;
  int ret = parse_port(r->first, range_len(r), &port, err);
  if (ret < 0 || port == 0)
    return ret;
  char text[8];
  snprintf(text, sizeof text, "%ld", port);
  if (default_port && strcmp(text, default_port) == 0)
    return 0;
  sb_puts(sb, ":");
  sb_puts(sb, text);
  return 0;
}

static int url_host(strbuf_t *sb, const UriUriA *uri, const validate_url_rule_t *rule,
                    validate_error_t *err) {
  static const char fqdn_ip[] = "The host must be a fully qualified domain name such as "
                                "m.example.com, not an IP address.";
  char text[INET6_ADDRSTRLEN];
  if (uri->hostData.ip4 || uri->hostData.ip6) {
    if (rule->host_fqdn)
      return validate_fail(err, "%s", fqdn_ip);
    bool v6 = uri->hostData.ip6 != NULL;
    const void *data = v6 ? (const void *)uri->hostData.ip6->data : uri->hostData.ip4->data;
    if (!inet_ntop(v6 ? AF_INET6 : AF_INET, data, text, sizeof text))
      return validate_fail(err, "The IP address cannot be written in canonical form; check it.");
    sb_puts(sb, v6 ? "[" : "");
    sb_puts(sb, text);
    sb_puts(sb, v6 ? "]" : "");
    return 0;
  }
  if (uri->hostData.ipFuture.first)
    return validate_fail(err, "The host is an IPvFuture literal, which is not supported; use a "
                              "host name or an IPv4 or IPv6 address.");

  /* A registered name may carry %XX escapes (ours for non-ASCII input, or the
   * user's); the host rules apply to the decoded name. */
  size_t n = range_len(&uri->hostText);
  char *raw = strndup(uri->hostText.first, n);
  if (!raw)
    return fail_oom(err);
  const char *end = uriUnescapeInPlaceExA(raw, URI_FALSE, URI_BR_DONT_TOUCH);
  if ((size_t)(end - raw) != strlen(raw)) {
    free(raw);
    return validate_fail(err, "The host name contains an encoded NUL character (%%00); remove it.");
  }
  char *name = NULL;
  int r = validate_host(raw, 0, &name, err);
  free(raw);
  if (r < 0)
    return r;
  if (rule->host_fqdn && !strchr(name, '.')) {
    r = validate_fail(err, "The host must be a fully qualified domain name such as m.example.com, "
                           "not the single label \"%s\".", name);
    free(name);
    return r;
  }
  sb_puts(sb, name);
  free(name);
  return 0;
}

static int url_path(strbuf_t *sb, const UriUriA *uri, const validate_url_rule_t *rule,
                    validate_error_t *err) {
  const UriPathSegmentA *seg = uri->pathHead;
  if (rule->no_path) {
    if (seg && (seg->next || range_len(&seg->text) > 0))
      return validate_fail(err, "Must not have a path; write it as scheme://host or "
                                "scheme://host:port.");
    return 0;
  }
  /* A base URL is joined with "/suffix/" later, so it keeps no trailing
   * slashes: stop after its last non-empty segment. */
  const UriPathSegmentA *last = NULL;
  for (const UriPathSegmentA *s = seg; s; s = s->next)
    if (!rule->base || range_len(&s->text) > 0)
      last = s;
  for (; last && seg; seg = seg->next) {
    sb_puts(sb, "/");
    int r = append_component(sb, seg->text.first, seg->text.afterLast, err);
    if (r < 0 || seg == last)
      return r;
  }
  if (!rule->base)
    sb_puts(sb, "/");
  return 0;
}

static int url_tail(strbuf_t *sb, const UriUriA *uri, const validate_url_rule_t *rule,
                    validate_error_t *err) {
  bool has_query = uri->query.first != NULL, has_fragment = uri->fragment.first != NULL;
  if (rule->no_path && (has_query || has_fragment))
    return validate_fail(err, "Must not have a query (\"?...\") or fragment (\"#...\"); write it "
                              "as scheme://host or scheme://host:port.");
  if (rule->base && has_query)
    return validate_fail(err, "Must not have a query (\"?...\"): other URLs are built from this "
                              "base URL; remove it.");
  if (rule->base && has_fragment)
    return validate_fail(err, "Must not have a fragment (\"#...\"): other URLs are built from "
                              "this base URL; remove it.");
  int r = 0;
  if (range_len(&uri->query) > 0) {
    sb_puts(sb, "?");
    r = append_component(sb, uri->query.first, uri->query.afterLast, err);
  }
  if (r == 0 && range_len(&uri->fragment) > 0) {
    sb_puts(sb, "#");
    r = append_component(sb, uri->fragment.first, uri->fragment.afterLast, err);
  }
  return r;
}

/* The start of both URL checks: present and at most VALIDATE_URL_MAX bytes (*len). */
static int url_size(const char *in, const char *empty, size_t *len, validate_error_t *err) {
  if (!in || !*in)
    return validate_fail(err, "%s", empty);
  *len = strnlen(in, VALIDATE_URL_MAX + 1);
  if (*len > VALIDATE_URL_MAX)
    return validate_fail(err, "Is longer than %d characters; use a shorter URL.",
                         VALIDATE_URL_MAX);
  return 0;
}

/* The first characters both URL checks refuse, with the same words. */
static int url_space_or_control(unsigned char c, validate_error_t *err) {
  if (c == ' ')
    return validate_fail(err, "Contains a space; encode it as %%20 or remove it.");
  if (is_control(c))
    return validate_fail(err, "Contains a control character (such as a tab or line break); "
                              "remove it.");
  return 0;
}

/* Checks the characters uriparser would otherwise report only as a syntax
 * error at some position, so the user learns what is wrong. */
static int url_chars(const char *in, size_t len, bool *ascii, validate_error_t *err) {
  *ascii = true;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    int r = url_space_or_control(c, err);
    if (r < 0)
      return r;
    if (c == '\\')
      return validate_fail(err, "Contains a backslash; URLs use \"/\" as separator.");
    *ascii = *ascii && c < 0x80;
  }
  return 0;
}

/* uriparser accepts only ASCII. Non-ASCII bytes are percent-encoded for the
 * parse; `mark` remembers where, because only the host may contain them (it is
 * converted to A-labels), anywhere else the user has to encode them. */
static char *encode_non_ascii(const char *in, size_t len, bool **mark) {
  char *enc = malloc(len * 3 + 1);
  *mark = calloc(len * 3 + 1, sizeof **mark);
  if (!enc || !*mark) {
    free(enc);
    free(*mark);
    *mark = NULL;
    return NULL;
  }
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c < 0x80) {
      enc[o++] = (char)c;
    } else {
      (*mark)[o] = true;
      o += (size_t)snprintf(enc + o, 4, "%%%02X", c);
    }
  }
  enc[o] = '\0';
  return enc;
}

static size_t decoded_pos(const bool *mark, size_t enc_pos) {
  size_t pos = 0;
  for (size_t i = 0; i < enc_pos; pos++)
    i += mark && mark[i] ? 3 : 1;
  return pos;
}

/* Parses text (in, or in as encode_non_ascii() wrote it with mark) into uri; a syntax error
 * is reported at its position in in. */
static int uri_parse(UriUriA *uri, const char *text, size_t text_len, const bool *mark,
                     const char *in, size_t len, validate_error_t *err) {
  const char *errpos = NULL;
  int rc = uriParseSingleUriExA(uri, text, text + text_len, &errpos);
  if (rc == URI_ERROR_MALLOC)
    return fail_oom(err);
  if (rc != URI_SUCCESS)
    return url_syntax_fail(in, len, errpos ? decoded_pos(mark, (size_t)(errpos - text)) : len,
                           err);
  return 0;
}

static int url_build(strbuf_t *sb, const UriUriA *uri, const validate_url_rule_t *rule,
                     const bool *mark, const char *enc, validate_error_t *err) {
  char allowed[64];
  scheme_list(rule->schemes, allowed, sizeof allowed);
  if (!uri->scheme.first)
    return validate_fail(err, "Is not an absolute URL; it must start with %s.", allowed);
  const struct url_scheme *scheme = scheme_find(&uri->scheme);
  if (!scheme || !(rule->schemes & scheme->bit)) {
    if (rule->schemes == URL_SCHEME_HTTPS && scheme && scheme->bit == URL_SCHEME_HTTP)
      return rule->why_https ? validate_fail(err, "Must be an https URL: %s", rule->why_https)
                             : validate_fail(err, "Must be an https URL; http:// is not accepted "
                                                  "here.");
    size_t n = range_len(&uri->scheme);
    return validate_fail(err, "The scheme \"%.*s\" is not allowed; the URL must start with %s.",
                         (int)(n > 16 ? 16 : n), uri->scheme.first, allowed);
  }
  bool has_host = range_len(&uri->hostText) > 0 || uri->hostData.ip4 || uri->hostData.ip6 ||
                  uri->hostData.ipFuture.first;
  if (!has_host)
    return validate_fail(err, "Has no host name; write it as %s://host.example.com/...",
                         scheme->name);
  if (uri->userInfo.first)
    return validate_fail(err, "Contains user information before the host (\"user@\" or "
                              "\"user:password@\"); remove it, credentials do not belong in a "
                              "URL.");
  if (mark) {
    for (const char *p = enc; *p; p++)
      if (mark[p - enc] && (p < uri->hostText.first || p >= uri->hostText.afterLast))
        return validate_fail(err, "Contains a non-ASCII character outside the host name; "
                                  "percent-encode it as UTF-8 (for example %%C3%%A4).");
  }

  sb_puts(sb, scheme->name);
  sb_puts(sb, "://");
  int r = url_host(sb, uri, rule, err);
  if (r == 0)
    r = append_port(sb, &uri->portText, scheme->default_port, err);
  if (r == 0)
    r = url_path(sb, uri, rule, err);
  if (r == 0)
    r = url_tail(sb, uri, rule, err);
  return r;
}

/* Text that starts (after blanks) with RFC 3986's scheme ":" is meant as a
 * URL; anything else ("not a url", "example.com/x") is not one at all, and
 * saying so helps more than naming its first odd character. */
static bool starts_with_scheme(const char *in) {
  /* NUL is a control character too: stop at the end of the text. */
  while (*in && (*in == ' ' || is_control((unsigned char)*in)))
    in++;
  if (!is_alpha(*in))
    return false;
  while (is_alpha(*in) || is_digit(*in) || *in == '+' || *in == '-' || *in == '.')
    in++;
  return *in == ':';
}

static int not_a_url(const validate_url_rule_t *rule, validate_error_t *err) {
  char allowed[64];
  scheme_list(rule->schemes, allowed, sizeof allowed);
  const char *example = (rule->schemes & URL_SCHEME_HTTPS)  ? "https://atrium.example.com/"
                        : (rule->schemes & URL_SCHEME_HTTP)  ? "http://atrium.example.com/"
                        : (rule->schemes & URL_SCHEME_LDAPS) ? "ldaps://dc.example.com"
                                                             : "ldap://dc.example.com";
  return validate_fail(err, "Is not an absolute URL; it must start with %s, such as %s.",
                       allowed, example);
}

int validate_url(const char *in, const validate_url_rule_t *rule, char **out,
                 validate_error_t *err) {
  size_t len;
  int r = url_size(in, "Is empty; enter a URL such as https://host.example.com/.", &len, err);
  if (r < 0)
    return r;
  if (!starts_with_scheme(in))
    return not_a_url(rule, err);
  bool ascii;
  if ((r = url_chars(in, len, &ascii, err)) < 0)
    return r;

  bool *mark = NULL;
  char *enc = ascii ? strdup(in) : encode_non_ascii(in, len, &mark);
  if (!enc)
    return fail_oom(err);
  UriUriA uri;
  r = uri_parse(&uri, enc, strlen(enc), mark, in, len, err);
  if (r == 0) {
    strbuf_t sb = {0};
    r = url_build(&sb, &uri, rule, mark, enc, err);
    if (r == 0 && !sb.oom && sb.len > VALIDATE_URL_MAX)
      r = validate_fail(err, "Is longer than %d characters once normalised; use a shorter URL.",
                        VALIDATE_URL_MAX);
    r = sb_take(&sb, r, out, err);
    uriFreeUriMembersA(&uri);
  }
  free(enc);
  free(mark);
  return r;
}

/* ---- paths that become nginx locations -------------------------------------- */

#define PROXY_PATH_MAX 1024

static bool proxy_path_char(int c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
}

int validate_proxy_path(const char *url, const char *field, validate_error_t *err) {
  const char *p = url ? strstr(url, "://") : NULL;
  if (!p) return validate_fail(err, "%s is not an absolute URL.", field);
  p += 3;
  /* The authority ends at the first '/', '?' or '#' ('[...]' holds none). */
  p += strcspn(p, "/?#");
  size_t n = strcspn(p, "?#");
  static const char rule[] = "it goes into the reverse proxy's nginx configuration as a "
                             "location, so it may hold only letters a-z and A-Z, digits, '-', "
                             "'.', '_', '~' and '/'";
  if (n > PROXY_PATH_MAX)
    return validate_fail(err, "The path of %s is longer than %d characters; %s.", field,
                         PROXY_PATH_MAX, rule);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (!proxy_path_char(c))
      return validate_fail(err, "The path of %s holds \"%c\" at position %zu; %s.", field, c,
                           i + 1, rule);
  }
  /* Segments between slashes: nginx merges "//" and resolves dot segments
   * before it matches, so such a location would never be reached. */
  for (size_t i = 1; i < n;) {
    size_t j = i;
    while (j < n && p[j] != '/') j++;
    size_t seg = j - i;
    bool last = j == n;
    if ((seg == 0 && !last) || (seg == 1 && p[i] == '.') ||
        (seg == 2 && p[i] == '.' && p[i + 1] == '.'))
      return validate_fail(err,
                           "The path of %s has an empty, \".\" or \"..\" segment; nginx would "
                           "never match it as a location: write the path without it.",
                           field);
    i = j + 1;
  }
  return 0;
}

/* ---- QoS URLs ------------------------------------------------------------ */

/* RFC 1738, 2.2: alphanumerics, the "safe" and "extra" sets and the reserved
 * characters; '%' only as the start of an escape (checked separately). */
static bool rfc1738_char(int c) {
  return is_alpha(c) || is_digit(c) || (c && strchr("$-_.+!*'(),;/?:@=&%", c));
}

static int qos_chars(const char *in, size_t len, validate_error_t *err) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    int r = url_space_or_control(c, err);
    if (r < 0)
      return r;
    if (c >= 0x80)
      return validate_fail(err, "Contains a non-ASCII character, which RFC 1738 does not allow; "
                                "percent-encode it as UTF-8 (for example %%C3%%A4).");
    if (c == '%' && (i + 2 >= len || hex_value(in[i + 1]) < 0 || hex_value(in[i + 2]) < 0))
      return validate_fail(err, "Contains a \"%%\" that does not start a %%XX escape; write a "
                                "literal %% as %%25.");
    if (!rfc1738_char(c))
      return validate_fail(err, "Contains \"%c\", which RFC 1738 does not allow in a URL; "
                                "percent-encode it as %%%02X or remove it.", c, c);
  }
  return 0;
}

/* The host of a QoS URL with wildcards: DNS characters plus '*', no empty
 * labels. Without a '*' the ordinary host rules apply. */
static int qos_host(strbuf_t *sb, const char *host, size_t n, validate_error_t *err) {
  char *h = strndup(host, n);
  if (!h)
    return fail_oom(err);
  int r = 0;
  if (!strchr(h, '*')) {
    char *norm = NULL;
    r = validate_host(h, HOST_ALLOW_IP, &norm, err);
    if (r == 0)
      sb_puts(sb, norm);
    free(norm);
    free(h);
    return r;
  }
  lower_in_place(h);
  for (size_t i = 0; i < n && r == 0; i++) {
    if (!is_alpha(h[i]) && !is_digit(h[i]) && !strchr("-.*", h[i]))
      r = validate_fail(err, "The host contains \"%c\", which is not allowed; use letters, "
                             "digits, hyphens, dots and the wildcard *.", h[i]);
    else if (h[i] == '.' && (i == 0 || i + 1 == n || h[i + 1] == '.'))
      r = validate_fail(err, "The host has an empty label (a leading, trailing or doubled dot); "
                             "remove the extra dot.");
  }
  if (r == 0 && n > HOST_MAX)
    r = validate_fail(err, "The host is %zu characters long; at most %d are allowed.", n, HOST_MAX);
  if (r == 0)
    sb_puts(sb, h);
  free(h);
  return r;
}

static int qos_port(strbuf_t *sb, const char *p, size_t n, validate_error_t *err) {
  if (n == 0)
    return 0;
  if (memchr(p, '*', n)) {
    if (n != 1)
      return validate_fail(err, "The port must be a number from 1 to 65535 or the wildcard *.");
    sb_puts(sb, ":*");
    return 0;
  }
  long port;
  int r = parse_port(p, n, &port, err);
  if (r == 0) {
    char text[8];
    snprintf(text, sizeof text, ":%ld", port);
    sb_puts(sb, text);
  }
  return r;
}

/* uri was parsed from a copy in which every '*' became '0' (a character every
 * URL part accepts, the port included); the text is taken from `in` at the
 * same offsets so the wildcards come back. */
static int qos_build(strbuf_t *sb, const UriUriA *uri, const char *in, const char *copy,
                     validate_error_t *err) {
#define ORIG(ptr) (in + ((ptr) - copy))
  const struct url_scheme *scheme = uri->scheme.first ? scheme_find(&uri->scheme) : NULL;
  if (!scheme || !(scheme->bit & (URL_SCHEME_HTTP | URL_SCHEME_HTTPS)))
    return validate_fail(err, "Must start with http:// or https://.");
  if (uri->userInfo.first)
    return validate_fail(err, "Contains user information before the host (\"user@\"); remove "
                              "it.");
  size_t hn = range_len(&uri->hostText);
  if (hn == 0)
    return validate_fail(err, "Has no host name; write it as %s://host.example.com/... (the "
                              "host may be *).", scheme->name);
  sb_puts(sb, scheme->name);
  sb_puts(sb, "://");
  int r = qos_host(sb, ORIG(uri->hostText.first), hn, err);
  if (r == 0 && uri->portText.first)
    r = qos_port(sb, ORIG(uri->portText.first), range_len(&uri->portText), err);
  if (r < 0)
    return r;
  size_t start = sb->len;
  for (const UriPathSegmentA *s = uri->pathHead; s; s = s->next) {
    sb_puts(sb, "/");
    sb_append(sb, ORIG(s->text.first), range_len(&s->text));
  }
  if (sb->len == start)
    sb_puts(sb, "/");
  if (range_len(&uri->query) > 0) {
    sb_puts(sb, "?");
    sb_append(sb, ORIG(uri->query.first), range_len(&uri->query));
  }
  return 0;
#undef ORIG
}

int validate_qos_url(const char *in, char **out, validate_error_t *err) {
  size_t len;
  int r = url_size(in, "Is empty; enter the URL of the application, such as "
                       "https://meet.example.com/webmeeting/.", &len, err);
  if (r < 0)
    return r;
  if ((r = qos_chars(in, len, err)) < 0)
    return r;
  char *copy = strdup(in);
  if (!copy)
    return fail_oom(err);
  for (char *p = copy; *p; p++)
    if (*p == '*')
      *p = '0';
  UriUriA uri;
  r = uri_parse(&uri, copy, len, NULL, in, len, err);
  if (r == 0) {
    strbuf_t sb = {0};
    r = qos_build(&sb, &uri, in, copy, err);
    r = sb_take(&sb, r, out, err);
    uriFreeUriMembersA(&uri);
  }
  free(copy);
  return r;
}

/* ---- proxy bypass -------------------------------------------------------- */

static int bypass_cidr(const char *in, const char *slash, char **out, validate_error_t *err) {
  int family;
  unsigned char addr[16];
  if (!ip_parse(in, (size_t)(slash - in), &family, addr))
    return validate_fail(err, "The part before \"/\" must be an IPv4 or IPv6 address, as in "
                              "10.0.0.0/8 or fd00::/8.");
  const char *p = slash + 1;
  size_t n = strlen(p);
  unsigned max = family == AF_INET ? 32 : 128;
  bool digits = n >= 1 && n <= 3;
  for (size_t i = 0; i < n && digits; i++)
    digits = is_digit(p[i]);
  if (!digits)
    return validate_fail(err, "The prefix length after \"/\" must be a number from 0 to %u, as in "
                              "%s.", max, family == AF_INET ? "10.0.0.0/8" : "fd00::/8");
  unsigned prefix = (unsigned)strtoul(p, NULL, 10);
  if (prefix > max)
    return validate_fail(err, "The prefix length /%u is out of range for an %s address; use "
                              "0-%u.", prefix, family == AF_INET ? "IPv4" : "IPv6", max);
  /* Bits beyond the prefix are most likely a typo; show the range that was meant. */
  unsigned char net[16];
  size_t bytes = max / 8;
  bool host_bits = false;
  for (size_t i = 0; i < bytes; i++) {
    unsigned keep = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? prefix - i * 8 : 0;
    unsigned char mask = (unsigned char)(keep == 0 ? 0 : 0xffu << (8 - keep));
    net[i] = addr[i] & mask;
    host_bits = host_bits || net[i] != addr[i];
  }
  char text[INET6_ADDRSTRLEN];
  if (!inet_ntop(family, net, text, sizeof text))
    return validate_fail(err, "The address cannot be written in canonical form; check it.");
  if (host_bits)
    return validate_fail(err, "The address has bits set beyond the /%u prefix; write the range "
                              "as %s/%u.", prefix, text, prefix);
  char buf[INET6_ADDRSTRLEN + 8];
  snprintf(buf, sizeof buf, "%s/%u", text, prefix);
  return dup_out(buf, out, err);
}

int validate_bypass_entry(const char *in, char **out, validate_error_t *err) {
  if (!in || !*in)
    return validate_fail(err, "Is empty; enter a host name, a pattern such as *.example.com, an "
                              "IP address or a range such as 10.0.0.0/8.");
  size_t len = strnlen(in, HOST_INPUT_MAX + 1);
  if (len > HOST_INPUT_MAX)
    return validate_fail(err, "Is too long; a host name may have at most %d characters.",
                         HOST_MAX);
  for (size_t i = 0; i < len; i++) {
    if (in[i] == ' ')
      return validate_fail(err, "Contains a space; enter one host, pattern or range per entry.");
    if (is_control((unsigned char)in[i]))
      return validate_fail(err, "Contains a control character (such as a tab or line break); "
                                "remove it.");
  }
  if (strcmp(in, "*") == 0)
    return validate_fail(err, "A lone \"*\" would send every destination around the proxy; turn "
                              "the proxy off instead, or list the destinations.");
  const char *slash = strchr(in, '/');
  if (slash)
    return bypass_cidr(in, slash, out, err);

  int family;
  unsigned char addr[16];
  if (ip_parse(in, len, &family, addr))
    return validate_host(in, HOST_ALLOW_IP, out, err);

  const char *prefix = strncmp(in, "*.", 2) == 0 ? "*." : in[0] == '.' ? "." : "";
  const char *rest = in + strlen(prefix);
  if (strchr(rest, '*'))
    return validate_fail(err, "A wildcard is only allowed at the start, as in *.example.com.");
  char *host = NULL;
  int r = validate_host(rest, 0, &host, err);
  if (r < 0)
    return r;
  size_t size = strlen(prefix) + strlen(host) + 1;
  char *res = malloc(size);
  if (!res) {
    free(host);
    return fail_oom(err);
  }
  snprintf(res, size, "%s%s", prefix, host);
  free(host);
  *out = res;
  return 0;
}

/* A JSON string without embedded NULs, or NULL. */
static const char *json_cstring(const json_t *v) {
  const char *s = json_string_value(v);
  return s && strlen(s) == json_string_length(v) ? s : NULL;
}

int validate_bypass_list(const json_t *in, json_t **out, validate_error_t *err) {
  if (!json_is_array(in))
    return validate_fail(err, "Must be a list (JSON array) of host names, patterns such as "
                              "*.example.com, addresses or ranges such as 10.0.0.0/8.");
  size_t n = json_array_size(in);
  if (n > VALIDATE_BYPASS_MAX)
    return validate_fail(err, "Has %zu entries; at most %d are allowed.", n, VALIDATE_BYPASS_MAX);
  json_t *res = json_array();
  if (!res)
    return fail_oom(err);
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++) {
    const json_t *el = json_array_get(in, i);
    const char *s = json_cstring(el);
    char *norm = NULL;
    if (!json_is_string(el))
      r = validate_fail(err, "Must be a string such as *.example.com or 10.0.0.0/8.");
    else if (!s)
      r = validate_fail(err, "Contains a NUL character; remove it.");
    else
      r = validate_bypass_entry(s, &norm, err);
    for (size_t j = 0; j < i && r == 0; j++)
      if (strcmp(json_string_value(json_array_get(res, j)), norm) == 0)
        r = validate_fail(err, "Repeats entry [%zu] (%s); remove one of them.", j, norm);
    if (r == 0 && json_array_append_new(res, json_string(norm)) != 0)
      r = fail_oom(err);
    free(norm);
    if (r < 0)
      set_field(err, "[%zu]", i);
  }
  if (r < 0) {
    json_decref(res);
    return r;
  }
  *out = res;
  return 0;
}

/* ---- QoS policies -------------------------------------------------------- */

static const char *const qos_members[] = {"name", "dscp", "max_rate_mbps", "url",
                                          "include_subdirectories", "any_destination"};

#define N_QOS_MEMBERS (sizeof qos_members / sizeof qos_members[0])
#define QOS_MEMBER_LIST "name, dscp, max_rate_mbps, url, include_subdirectories, any_destination"

/* json strings are valid UTF-8; counts characters and refuses C0/C1 controls. */
static int qos_name(const json_t *v, validate_error_t *err) {
  const char *s = json_cstring(v);
  if (!json_is_string(v))
    return validate_fail(err, "Must be a string of 1 to %d characters.", QOS_NAME_MAX);
  if (!s)
    return validate_fail(err, "Contains a NUL character; remove it.");
  size_t chars = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (is_control(*p) || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
      return validate_fail(err, "Contains a control character (such as a tab or line break); "
                                "remove it.");
    chars += (*p & 0xc0) != 0x80;
  }
  if (chars == 0)
    return validate_fail(err, "Is empty; give the policy a name.");
  if (chars > QOS_NAME_MAX)
    return validate_fail(err, "Is %zu characters long; at most %d are allowed.", chars,
                         QOS_NAME_MAX);
  if (s[0] == ' ' || s[strlen(s) - 1] == ' ')
    return validate_fail(err, "Starts or ends with a space; remove it.");
  return 0;
}

/* hint: a sentence appended to range errors. */
static int qos_int(const json_t *v, json_int_t min, json_int_t max, const char *hint,
                   validate_error_t *err) {
  if (!json_is_integer(v))
    return validate_fail(err, "Must be a whole number from %" JSON_INTEGER_FORMAT " to %"
                              JSON_INTEGER_FORMAT ", written without quotes or decimals.%s",
                         min, max, hint);
  json_int_t n = json_integer_value(v);
  if (n < min || n > max)
    return validate_fail(err, "%" JSON_INTEGER_FORMAT " is out of range; use %" JSON_INTEGER_FORMAT
                              "-%" JSON_INTEGER_FORMAT ".%s", n, min, max, hint);
  return 0;
}

/* A member name goes into err->field only when it is short printable ASCII. */
static bool printable_key(const char *key) {
  size_t n = 0;
  for (; key[n]; n++)
    if (key[n] <= 0x20 || key[n] >= 0x7f)
      return false;
  return n > 0 && n <= 32;
}

static int qos_policy(const json_t *p, size_t i, json_t **out, validate_error_t *err) {
  if (!json_is_object(p)) {
    int r = validate_fail(err, "Must be an object with the members " QOS_MEMBER_LIST ".");
    set_field(err, "[%zu]", i);
    return r;
  }
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)p, key, value) {
    size_t k = 0;
    while (k < N_QOS_MEMBERS && strcmp(key, qos_members[k]) != 0)
      k++;
    if (k < N_QOS_MEMBERS)
      continue;
    bool named = printable_key(key);
    int r = named ? validate_fail(err, "Is not a member of a QoS policy; the members are "
                                       QOS_MEMBER_LIST ".")
                  : validate_fail(err, "Has a member that QoS policies do not have; the members "
                                       "are " QOS_MEMBER_LIST ".");
    if (named)
      set_field(err, "[%zu].%s", i, key);
    else
      set_field(err, "[%zu]", i);
    return r;
  }
  for (size_t k = 0; k < N_QOS_MEMBERS; k++) {
    if (!json_object_get(p, qos_members[k])) {
      int r = validate_fail(err, "Is missing; every policy needs " QOS_MEMBER_LIST ".");
      set_field(err, "[%zu].%s", i, qos_members[k]);
      return r;
    }
  }

  /* Checked in a fixed order, not in the object's member order, so the same
   * policy always reports the same first error. */
  const json_t *url_v = json_object_get(p, "url");
  const char *failed = "name";
  char *url = NULL;
  int r = qos_name(json_object_get(p, "name"), err);
  if (r == 0) {
    failed = "dscp";
    r = qos_int(json_object_get(p, "dscp"), 0, 63, " DSCP 34 (AF41) is recommended for video.",
                err);
  }
  if (r == 0) {
    failed = "max_rate_mbps";
    r = qos_int(json_object_get(p, "max_rate_mbps"), 1, 100000, " The unit is Mbit/s.", err);
  }
  if (r == 0) {
    failed = "url";
    r = json_cstring(url_v) ? validate_qos_url(json_cstring(url_v), &url, err)
                            : validate_fail(err, "Must be a string such as "
                                                 "https://meet.example.com/webmeeting/.");
  }
  static const char *const flags[] = {"include_subdirectories", "any_destination"};
  for (size_t k = 0; k < sizeof flags / sizeof flags[0] && r == 0; k++) {
    failed = flags[k];
    if (!json_is_boolean(json_object_get(p, failed)))
      r = validate_fail(err, "Must be true or false.");
  }
  if (r < 0) {
    free(url);
    set_field(err, "[%zu].%s", i, failed);
    return r;
  }

  /* Fresh values, not references into `in`: the caller may change or free it. */
  json_t *res = json_pack(
      "{s:s, s:I, s:I, s:s, s:b, s:b}", "name", json_string_value(json_object_get(p, "name")),
      "dscp", json_integer_value(json_object_get(p, "dscp")), "max_rate_mbps",
      json_integer_value(json_object_get(p, "max_rate_mbps")), "url", url,
      "include_subdirectories", json_is_true(json_object_get(p, "include_subdirectories")),
      "any_destination", json_is_true(json_object_get(p, "any_destination")));
  free(url);
  if (!res)
    return fail_oom(err);
  *out = res;
  return 0;
}

int validate_qos_policies(const json_t *in, json_t **out, validate_error_t *err) {
  if (!json_is_array(in))
    return validate_fail(err, "Must be a list (JSON array) of policy objects.");
  size_t n = json_array_size(in);
  if (n > VALIDATE_QOS_POLICIES_MAX)
    return validate_fail(err, "Has %zu policies; at most %d are allowed.", n,
                         VALIDATE_QOS_POLICIES_MAX);
  json_t *res = json_array();
  if (!res)
    return fail_oom(err);
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++) {
    json_t *policy = NULL;
    r = qos_policy(json_array_get(in, i), i, &policy, err);
    if (r < 0)
      break;
    const char *name = json_string_value(json_object_get(policy, "name"));
    for (size_t j = 0; j < i && r == 0; j++) {
      const char *other = json_string_value(json_object_get(json_array_get(res, j), "name"));
      if (ascii_casecmp(name, other) == 0) {
        r = validate_fail(err, "Repeats the name of policy [%zu]; policy names must be unique "
                               "(ignoring case).", j);
        set_field(err, "[%zu].name", i);
      }
    }
    if (r == 0 && json_array_append_new(res, policy) != 0)
      r = fail_oom(err);
    else if (r < 0)
      json_decref(policy);
  }
  if (r < 0) {
    json_decref(res);
    return r;
  }
  *out = res;
  return 0;
}
