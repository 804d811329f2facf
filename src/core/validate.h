/* Validators for setting values: pure functions, no I/O, no logging.
 *
 * Each validator checks one input against one rule. On success it returns 0
 * and hands back the normalised form (host names in lower-case A-labels,
 * default ports removed, ...) in a new allocation the caller frees (free() for
 * char *, json_decref() for json_t *). On failure it returns -EINVAL, sets
 * nothing in *out, and writes into err a sentence that names the rule and
 * says what to fix, without the setting's key (the caller adds the key).
 * -ENOMEM (with a message too) means memory ran out, not that the value is bad.
 * err->field names the part of a compound value that failed (for example
 * "[1].dscp" in a QoS policy list); it is empty for scalar values. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define VALIDATE_MESSAGE_MAX 256
#define VALIDATE_FIELD_MAX 64
#define VALIDATE_URL_MAX 2048

typedef struct validate_error {
  char field[VALIDATE_FIELD_MAX];
  char message[VALIDATE_MESSAGE_MAX];
} validate_error_t;

/* ---- host names ---------------------------------------------------------- */

enum validate_host_flags {
  HOST_TWO_LABELS = 1u << 0,  /* at least two labels ("example.com", not "intranet") */
  HOST_ALLOW_IP = 1u << 1,    /* IPv4 or IPv6 literal accepted (IPv6 with or without []) */
};

/* A DNS name: Unicode input is converted to A-labels (IDNA 2008, libidn2),
 * the result lower-cased, a single trailing dot removed; each label 1-63 of
 * [a-z0-9-], not starting or ending with '-'; total at most 253; the last
 * label not all digits; "xn--" labels must decode. Strictly IDNA 2008:
 * symbols and emoji are refused, "faß.de" stays distinct from "fass.de".
 * With HOST_ALLOW_IP an address literal is accepted and returned in its
 * canonical text form (IPv6 without brackets). */
int validate_host(const char *in, unsigned flags, char **out, validate_error_t *err);

/* True when s is an IPv4 or IPv6 literal (IPv6 with or without brackets). */
bool validate_is_ip_literal(const char *s);

/* ---- URLs ----------------------------------------------------------------- */

enum validate_url_scheme {
  URL_SCHEME_HTTP = 1u << 0,
  URL_SCHEME_HTTPS = 1u << 1,
  URL_SCHEME_LDAP = 1u << 2,
  URL_SCHEME_LDAPS = 1u << 3,
};

typedef struct validate_url_rule {
  unsigned schemes;      /* allowed schemes (bitmask of validate_url_scheme) */
  bool host_fqdn;        /* host must be a DNS name of two or more labels, not an IP */
  bool base;             /* a base URL: no query, no fragment; trailing '/' removed */
  bool proxy_path;       /* the path goes into the reverse proxy's configuration */
  bool no_path;          /* nothing after the authority except an optional "/" (ldap) */
  const char *why_https; /* when only https is allowed: the reason, quoted in the error */
} validate_url_rule_t;

/* An absolute URL (parsed with uriparser, RFC 3986): scheme allowed by the
 * rule, a host present (validated as above, IDN to A-labels; IP literals only
 * when !host_fqdn), no user info, port 1-65535. Normalised: scheme and host
 * lower-case, default port removed (:80 http, :443 https, :389 ldap,
 * :636 ldaps), other ports kept, empty path written as "/" (except base
 * URLs, which lose trailing "/"s, and no_path URLs, written without a path),
 * %XX escapes in upper case, an empty "?" or "#" dropped. Spaces, control
 * characters (also %00-%1F, %7F), non-ASCII outside the host and more than
 * VALIDATE_URL_MAX bytes are refused. IPv6 hosts keep their brackets. */
int validate_url(const char *in, const validate_url_rule_t *rule, char **out, validate_error_t *err);

/* The path of a URL that becomes an nginx `location` (the published URLs):
 * letters, digits, '-', '.', '_', '~' and '/' only, no empty, "." or ".."
 * segment, at most 1024 bytes. nginx matches locations against the decoded,
 * merged path, so a %XX escape, "//" or a dot segment would never match;
 * ';', '{', '}', quotes, '#', '$' and spaces would end or change the
 * directive itself. url is an absolute URL as validate_url returns it;
 * field (the setting's key) is named in the sentence. */
int validate_proxy_path(const char *url, const char *field, validate_error_t *err);

/* The URL of a QoS policy: http or https, '*' allowed as a wildcard anywhere
 * (the port only as a whole: ":*"), otherwise only the characters RFC 1738
 * allows in a URL (so no '~', '#', '[', non-ASCII). Scheme and host
 * lower-cased, an empty path written as "/"; a port is kept (leading zeros
 * dropped), default ports too. */
int validate_qos_url(const char *in, char **out, validate_error_t *err);

/* ---- lists --------------------------------------------------------------- */

#define VALIDATE_BYPASS_MAX 256
#define VALIDATE_QOS_POLICIES_MAX 32

/* One proxy bypass entry: a host name, a pattern "*.example.com" or
 * ".example.com", an IPv4/IPv6 address, or a CIDR ("10.0.0.0/8",
 * "fd00::/8", prefix within the family's bounds, no address bits set beyond
 * the prefix). A lone "*" is refused. Normalised lower-case, IDN to A-labels,
 * addresses in canonical form. */
int validate_bypass_entry(const char *in, char **out, validate_error_t *err);

/* A JSON array of bypass entries (at most VALIDATE_BYPASS_MAX, no duplicates
 * after normalisation). *out is a new array of normalised strings. */
int validate_bypass_list(const json_t *in, json_t **out, validate_error_t *err);

/* A JSON array of QoS policies (at most VALIDATE_QOS_POLICIES_MAX). Each an
 * object with exactly: "name" (1-64 printable characters, no leading or
 * trailing space, unique ignoring ASCII case), "dscp" integer 0-63,
 * "max_rate_mbps" integer 1-100000, "url" (validate_qos_url),
 * "include_subdirectories" bool, "any_destination" bool. Unknown members are
 * refused. err->field is "[i]" or "[i].member". *out is a new, normalised
 * array (members in the order above). */
int validate_qos_policies(const json_t *in, json_t **out, validate_error_t *err);

/* ---- helpers ------------------------------------------------------------- */

/* printf into err->message (and clear err->field). Returns -EINVAL. */
int validate_fail(validate_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
