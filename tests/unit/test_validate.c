/* Unit tests for src/validate.c: one table of accepted inputs (with their
 * normalised form) and one of refused inputs (with a piece of the message)
 * per validator. A failing row names itself, so a new case is one line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/validate.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define A10 "aaaaaaaaaa"
#define L61 A10 A10 A10 A10 A10 A10 "a"
#define L62 L61 "a"
#define L63 L62 "a"
#define L64 L63 "a"
#define NAME253 L63 "." L63 "." L63 "." L61
#define NAME254 L63 "." L63 "." L63 "." L62

/* Marks "*out was not touched" on failure. */
static char sentinel_c;
#define SENTINEL (&sentinel_c)

/* ---- host names ---------------------------------------------------------- */

typedef struct {
  const char *in;
  unsigned flags;
  const char *want; /* normalised output, or a substring of the message */
} host_case_t;

#define TWO HOST_TWO_LABELS
#define IP HOST_ALLOW_IP

static const host_case_t host_good[] = {
    {"example.com", 0, "example.com"},
    {"Example.COM", 0, "example.com"},
    {"example.com.", 0, "example.com"},
    {"sip.example.com", TWO, "sip.example.com"},
    {"bücher.example", 0, "xn--bcher-kva.example"},
    {"BÜCHER.Example", TWO, "xn--bcher-kva.example"},
    {"bücher.example.", 0, "xn--bcher-kva.example"},
    {"xn--bcher-kva.example", 0, "xn--bcher-kva.example"},
    {"XN--BCHER-KVA.EXAMPLE", 0, "xn--bcher-kva.example"},
    {"faß.de", 0, "xn--fa-hia.de"},          /* IDNA 2008: ß is kept, not "fass" */
    {"\uff41\uff42\uff43.com", 0, "abc.com"}, /* full-width letters are mapped */
    {"a\u3002b.com", 0, "a.b.com"},           /* ideographic full stop */
    {L63 ".com", 0, L63 ".com"},
    {NAME253, 0, NAME253},
    {NAME253 ".", 0, NAME253},
    {"r3---sn-ab5l6n7s.googlevideo.com", 0, "r3---sn-ab5l6n7s.googlevideo.com"},
    {"1a.example.com", 0, "1a.example.com"},
    {"example.c0m", 0, "example.c0m"},
    {"intranet", 0, "intranet"},
    {"localhost", IP, "localhost"},
    {"1.2.3.4", IP, "1.2.3.4"},
    {"1.2.3.4", IP | TWO, "1.2.3.4"},
    {"::1", IP, "::1"},
    {"[::1]", IP, "::1"},
    {"2001:0DB8:0000:0000::0001", IP, "2001:db8::1"},
    {"[2001:db8::1]", IP | TWO, "2001:db8::1"},
    {"::ffff:10.0.0.1", IP, "::ffff:10.0.0.1"},
};

static const host_case_t host_bad[] = {
    {"", 0, "empty"},
    {"i\u2764.ws", 0, "IDNA 2008"},          /* symbols: strictly IDNA 2008, no 2003 fallback */
    {"\u2603.example.com", 0, "IDNA 2008"},
    {".", 0, "empty"},
    {"intranet", TWO, "single label"},
    {"Intranet.", TWO, "single label"},
    {L64 ".com", 0, "at most 63"},
    {"a." L64, 0, "64 characters"},
    {NAME254, 0, "254 characters long; at most 253"},
    {"-a.example.com", 0, "hyphen"},
    {"a-.example.com", 0, "hyphen"},
    {"-bücher.example", 0, "hyphen"},
    {"example.123", 0, "all-digit label \"123\""},
    {"256.1.1.1", IP, "all-digit"},
    {"1.2.3", IP, "all-digit"},
    {"a..b.com", 0, "empty label"},
    {".example.com", 0, "empty label"},
    {"example.com..", 0, "empty label"},
    {"exa mple.com", 0, "contains a space"},
    {"exa\tmple.com", 0, "control character"},
    {"exa\x7fmple.com", 0, "control character"},
    {"a_b.example.com", 0, "contains \"_\""},
    {"example.com:8080", 0, "contains \":\""},
    {"example.com/", 0, "contains \"/\""},
    {"*.example.com", 0, "contains \"*\""},
    {"xn--zz.example", 0, "invalid A-label"},
    {"\u2488.com", 0, "IDNA 2008"}, /* "1." as one character */
    {"\xff\xfe.com", 0, "UTF-8"},
    {"1.2.3.4", 0, "not an IP address"},
    {"1.2.3.4", TWO, "not an IP address"},
    {"::1", 0, "not an IP address"},
    {"[2001:db8::1]", 0, "not an IP address"},
    {"[1.2.3.4]", IP, "contains \"[\""},
    {"[example.com]", IP, "contains \"[\""},
};

static void test_host_good(void **state) {
  for (size_t i = 0; i < N(host_good); i++) {
    const host_case_t *c = &host_good[i];
    char *out = SENTINEL;
    validate_error_t err = {.field = ""};
    int rc = validate_host(c->in, c->flags, &out, &err);
    if (rc != 0 || strcmp(out, c->want) != 0)
      fail_msg("host \"%s\" flags %u: rc %d, out \"%s\", message \"%s\"; want \"%s\"", c->in,
               c->flags, rc, rc == 0 ? out : "", err.message, c->want);
    char *again = NULL;
    if (validate_host(out, c->flags, &again, &err) != 0 || strcmp(again, out) != 0)
      fail_msg("host \"%s\": normalised form \"%s\" does not validate to itself", c->in, out);
    free(again);
    free(out);
  }
}

static void test_host_bad(void **state) {
  for (size_t i = 0; i < N(host_bad); i++) {
    const host_case_t *c = &host_bad[i];
    char *out = SENTINEL;
    validate_error_t err = {.field = "stale"};
    int rc = validate_host(c->in, c->flags, &out, &err);
    if (rc != -EINVAL || out != SENTINEL || !strstr(err.message, c->want) || err.field[0])
      fail_msg("host \"%s\" flags %u: rc %d, message \"%s\"; want -EINVAL and \"%s\"", c->in,
               c->flags, rc, err.message, c->want);
  }
}

static void test_host_null(void **state) {
  char *out = SENTINEL;
  validate_error_t err;
  assert_int_equal(validate_host(NULL, 0, &out, &err), -EINVAL);
  assert_ptr_equal(out, SENTINEL);
}

static const struct {
  const char *in;
  bool want;
} ip_cases[] = {
    {"1.2.3.4", true},       {"255.255.255.255", true}, {"::", true},
    {"::1", true},           {"[::1]", true},           {"fe80::1:2", true},
    {"::ffff:1.2.3.4", true}, {"1.2.3", false},          {"1.2.3.256", false},
    {"01.2.3.4", false},     {"[1.2.3.4]", false},      {"[::1", false},
    {"::1]", false},         {"example.com", false},    {"", false},
    {"[]", false},           {"fe80::1%eth0", false},   {" 1.2.3.4", false},
};

static void test_is_ip_literal(void **state) {
  for (size_t i = 0; i < N(ip_cases); i++)
    if (validate_is_ip_literal(ip_cases[i].in) != ip_cases[i].want)
      fail_msg("validate_is_ip_literal(\"%s\") != %d", ip_cases[i].in, ip_cases[i].want);
  assert_false(validate_is_ip_literal(NULL));
}

/* ---- URLs ---------------------------------------------------------------- */

static const validate_url_rule_t mobile = {
    .schemes = URL_SCHEME_HTTPS,
    .host_fqdn = true,
    .why_https = "the mobile app is reached over an encrypted connection.",
};
static const validate_url_rule_t https_only = {.schemes = URL_SCHEME_HTTPS};
static const validate_url_rule_t web = {.schemes = URL_SCHEME_HTTP | URL_SCHEME_HTTPS};
static const validate_url_rule_t base = {.schemes = URL_SCHEME_HTTP | URL_SCHEME_HTTPS,
                                         .base = true};
static const validate_url_rule_t ldap = {.schemes = URL_SCHEME_LDAP | URL_SCHEME_LDAPS,
                                         .no_path = true};

typedef struct {
  const char *in;
  const validate_url_rule_t *rule;
  const char *want;
} url_case_t;

static const url_case_t url_good[] = {
    {"https://m.example.com/x", &mobile, "https://m.example.com/x"},
    {"https://m.example.com", &mobile, "https://m.example.com/"},
    {"HTTPS://M.Example.COM:443/App", &mobile, "https://m.example.com/App"},
    {"https://m.example.com:7443/x", &mobile, "https://m.example.com:7443/x"},
    {"https://m.example.com:07443/x", &mobile, "https://m.example.com:7443/x"},
    {"https://m.example.com.:443", &mobile, "https://m.example.com/"},
    {"https://bücher.example/a", &mobile, "https://xn--bcher-kva.example/a"},
    {"https://b%C3%BCcher.example/", &mobile, "https://xn--bcher-kva.example/"},
    {"https://m.example.com/a/b/?q=1&r=2#frag", &mobile, "https://m.example.com/a/b/?q=1&r=2#frag"},
    {"https://m.example.com/a%2fb?x=%c3%a4", &mobile, "https://m.example.com/a%2Fb?x=%C3%A4"},
    {"https://m.example.com/?", &mobile, "https://m.example.com/"},
    {"https://m.example.com:/x", &mobile, "https://m.example.com/x"},
    {"https://license.example.com/api", &https_only, "https://license.example.com/api"},
    {"http://intranet/um/", &web, "http://intranet/um/"},
    {"http://h.example.com:80/", &web, "http://h.example.com/"},
    {"http://h.example.com:443/", &web, "http://h.example.com:443/"},
    {"https://h.example.com:80/", &web, "https://h.example.com:80/"},
    {"http://h.example.com:8080/a?b#c", &web, "http://h.example.com:8080/a?b#c"},
    {"http://10.0.0.1:8080/x", &web, "http://10.0.0.1:8080/x"},
    {"http://[2001:DB8::1]:8443/", &web, "http://[2001:db8::1]:8443/"},
    {"http://[::1]", &web, "http://[::1]/"},
    {"https://h.example.com/a//b", &web, "https://h.example.com/a//b"},
    {"https://h.example.com/%C3%A4", &web, "https://h.example.com/%C3%A4"},
    {"https://atrium.example.com/", &base, "https://atrium.example.com"},
    {"https://atrium.example.com", &base, "https://atrium.example.com"},
    {"https://atrium.example.com/base/", &base, "https://atrium.example.com/base"},
    {"https://atrium.example.com/base//", &base, "https://atrium.example.com/base"},
    {"https://atrium.example.com/a/b", &base, "https://atrium.example.com/a/b"},
    {"http://atrium.example.com:8080", &base, "http://atrium.example.com:8080"},
    {"http://Atrium:80/", &base, "http://atrium"},
    {"ldap://dc.example.com", &ldap, "ldap://dc.example.com"},
    {"ldap://dc.example.com:389/", &ldap, "ldap://dc.example.com"},
    {"LDAPS://DC.Example.com:636", &ldap, "ldaps://dc.example.com"},
    {"ldaps://dc.example.com:3269", &ldap, "ldaps://dc.example.com:3269"},
    {"ldap://10.0.0.5", &ldap, "ldap://10.0.0.5"},
};

static const url_case_t url_bad[] = {
    {"", &web, "empty"},
    {"https://h.example.com/a b", &web, "Contains a space; encode it as %20 or remove it."},
    {" https://h.example.com/", &web, "space"},
    {"https:///x", &web, "no host"},
    {"https://", &web, "no host"},
    {"https:x", &web, "no host"},
    {"https://:443/", &web, "no host"},
    {"h.example.com/x", &web, "must start with http:// or https://"},
    {"//h.example.com/x", &web, "not an absolute URL"},
    /* Not a URL at all: say that, not what its first odd character is. */
    {"not a url", &web,
     "Is not an absolute URL; it must start with http:// or https://, such as "
     "https://atrium.example.com/."},
    {"dc.example.com", &ldap, "must start with ldap:// or ldaps://, such as ldaps://"},
    /* Only control characters: the scan for a scheme stops at the end (ASan
     * caught it reading past the NUL). */
    {"\x02", &web, "URL"},
    {"https://user@h.example.com/", &web, "user information"},
    {"https://user:pw@h.example.com/", &web, "user information"},
    {"https://:pw@h.example.com/", &web, "user information"},
    {"http://m.example.com/", &mobile,
     "Must be an https URL: the mobile app is reached over an encrypted connection."},
    {"http://license.example.com/", &https_only, "Must be an https URL"},
    {"ftp://h.example.com/", &web, "scheme \"ftp\" is not allowed"},
    {"ldap://h.example.com/", &web, "http:// or https://"},
    {"https://dc.example.com", &ldap, "ldap:// or ldaps://"},
    {"javascript:alert(1)", &web, "not allowed"},
    {"https://10.0.0.1/", &mobile,
     "The host must be a fully qualified domain name such as m.example.com, not an IP address."},
    {"https://[::1]:7443/", &mobile, "not an IP address"},
    {"https://intranet/x", &mobile, "single label \"intranet\""},
    {"https://Intranet./x", &mobile, "single label \"intranet\""},
    {"https://h.example.com:0/", &web, "Port 0 is out of range; use 1-65535."},
    {"https://h.example.com:65536/", &web, "Port 65536 is out of range"},
    {"https://h.example.com:70000/", &web, "Port 70000 is out of range; use 1-65535."},
    {"https://h.example.com:99999999999999999999/", &web, "out of range"},
    {"https://h.example.com:abc/", &web, "The port \"abc\" is not a number; use a number from 1"},
    {"https://h.example.com:abc", &web, "The port \"abc\" is not a number"},
    {"https://h.example.com:8o8o?x", &web, "The port \"8o8o\" is not a number"},
    {"https://h.example.com:-1/", &web, "The port \"-1\" is not a number"},
    {"https://h.example.com:1.5/", &web, "The port \"1.5\" is not a number"},
    {"https://h.example.com:80:81/", &web, "not a valid URL"},
    {"https://[::1/", &web, "not a valid URL"},
    {"https://h.example.com/%zz", &web, "%XX escape"},
    {"https://h.example.com/#a#b", &web, "\"#\" at position 25"},
    {"https://atrium.example.com/?x=1", &base, "query"},
    {"https://atrium.example.com/#top", &base, "fragment"},
    {"https://atrium.example.com?", &base, "query"},
    {"ldap://dc.example.com/dc=example,dc=com", &ldap, "Must not have a path"},
    {"ldap://dc.example.com//", &ldap, "Must not have a path"},
    {"ldap://dc.example.com/??sub", &ldap, "query"},
    {"https://h.example.com/\n", &web, "control character"},
    {"https://h.example.com/\x7f", &web, "control character"},
    {"https://h.example.com/a\tb", &web, "control character"},
    {"https://h.example.com/%00", &web, "encoded control character (%00)"},
    {"https://h.example.com/?a=%0d%0a", &web, "encoded control character (%0D)"},
    {"https://ex%00ample.com/", &web, "NUL"},
    {"https://ex%0aample.com/", &web, "control character"},
    {"https://h.example.com/ä", &web, "non-ASCII character outside the host"},
    {"https://h.example.com/?q=ä", &web, "non-ASCII character outside the host"},
    {"https://ä@h.example.com/", &web, "user information"},
    {"https://h.example.com\\x", &web, "backslash"},
    {"https://exa_mple.com/", &web, "contains \"_\""},
    {"https://-a.example.com/", &web, "hyphen"},
    {"https://a..example.com/", &web, "empty label"},
    {"https://" L64 ".com/", &web, "at most 63"},
    {"https://[v1.x]/", &web, "IPvFuture"},
    {"https://%31.2.3.4/", &web, "not an IP address"},
    {"https://xn--zz.example/", &web, "invalid A-label"},
    {"https://\u2488.com/", &web, "IDNA 2008"},
};

static void test_url_good(void **state) {
  for (size_t i = 0; i < N(url_good); i++) {
    const url_case_t *c = &url_good[i];
    char *out = SENTINEL;
    validate_error_t err = {.field = ""};
    int rc = validate_url(c->in, c->rule, &out, &err);
    if (rc != 0 || strcmp(out, c->want) != 0)
      fail_msg("url \"%s\": rc %d, out \"%s\", message \"%s\"; want \"%s\"", c->in, rc,
               rc == 0 ? out : "", err.message, c->want);
    char *again = NULL;
    if (validate_url(out, c->rule, &again, &err) != 0 || strcmp(again, out) != 0)
      fail_msg("url \"%s\": normalised form \"%s\" does not validate to itself", c->in, out);
    free(again);
    free(out);
  }
}

static void test_url_bad(void **state) {
  for (size_t i = 0; i < N(url_bad); i++) {
    const url_case_t *c = &url_bad[i];
    char *out = SENTINEL;
    validate_error_t err = {.field = "stale"};
    int rc = validate_url(c->in, c->rule, &out, &err);
    if (rc != -EINVAL || out != SENTINEL || !strstr(err.message, c->want) || err.field[0])
      fail_msg("url \"%s\": rc %d, message \"%s\"; want -EINVAL and \"%s\"", c->in, rc,
               err.message, c->want);
  }
}

/* Messages never quote the setting key; the caller adds it. They are full
 * sentences: a capital first letter and a final full stop. */
static void test_url_messages_are_sentences(void **state) {
  for (size_t i = 0; i < N(url_bad); i++) {
    char *out = NULL;
    validate_error_t err = {.field = ""};
    validate_url(url_bad[i].in, url_bad[i].rule, &out, &err);
    size_t n = strlen(err.message);
    if (n < 10 || err.message[0] < 'A' || err.message[0] > 'Z' || err.message[n - 1] != '.')
      fail_msg("url \"%s\": message \"%s\" is not a sentence", url_bad[i].in, err.message);
  }
}

static void test_url_length(void **state) {
  const char *prefix = "https://h.example.com/";
  char *in = malloc(VALIDATE_URL_MAX + 2);
  assert_non_null(in);
  memset(in, 'a', VALIDATE_URL_MAX + 1);
  memcpy(in, prefix, strlen(prefix));

  in[VALIDATE_URL_MAX] = '\0'; /* exactly the limit */
  char *out = NULL;
  validate_error_t err;
  assert_int_equal(validate_url(in, &web, &out, &err), 0);
  assert_string_equal(out, in);
  free(out);

  in[VALIDATE_URL_MAX] = 'a';
  in[VALIDATE_URL_MAX + 1] = '\0';
  out = SENTINEL;
  assert_int_equal(validate_url(in, &web, &out, &err), -EINVAL);
  assert_ptr_equal(out, SENTINEL);
  assert_non_null(strstr(err.message, "longer than 2048"));
  assert_int_equal(validate_qos_url(in, &out, &err), -EINVAL);
  assert_non_null(strstr(err.message, "longer than 2048"));

  /* A Unicode host that grows past the limit once converted to A-labels. */
  snprintf(in, VALIDATE_URL_MAX + 2, "https://bücher.example/");
  size_t n = strlen(in);
  memset(in + n, 'a', VALIDATE_URL_MAX - n);
  in[VALIDATE_URL_MAX] = '\0';
  assert_int_equal(validate_url(in, &web, &out, &err), -EINVAL);
  assert_non_null(strstr(err.message, "once normalised"));
  free(in);
}

/* ---- QoS URLs ------------------------------------------------------------ */

typedef struct {
  const char *in;
  const char *want;
} str_case_t;

static const str_case_t qos_url_good[] = {
    {"http://*/XPhoneConnect/WebMeeting.Api", "http://*/XPhoneConnect/WebMeeting.Api"},
    {"https://*/XPhoneConnect/WebMeeting.Api", "https://*/XPhoneConnect/WebMeeting.Api"},
    {"HTTPS://Meet.Example.COM/WebMeeting/*", "https://meet.example.com/WebMeeting/*"},
    {"http://*.Example.com:*/a", "http://*.example.com:*/a"},
    {"http://meet*.example.com/*x*", "http://meet*.example.com/*x*"},
    {"https://meet.example.com:8443/x?y=1&z=*", "https://meet.example.com:8443/x?y=1&z=*"},
    {"https://meet.example.com:443/", "https://meet.example.com:443/"},
    {"https://meet.example.com", "https://meet.example.com/"},
    {"http://10.0.0.1/x", "http://10.0.0.1/x"},
    {"http://*.*.*.*/x", "http://*.*.*.*/x"},
    {"http://meet.example.com/a%20b/$-_.+!'(),;:@=&",
     "http://meet.example.com/a%20b/$-_.+!'(),;:@=&"},
};

static const str_case_t qos_url_bad[] = {
    {"", "empty"},
    {"https://meet.example.com/a b", "Contains a space; encode it as %20 or remove it."},
    {"ftp://meet.example.com/", "http:// or https://"},
    {"meet.example.com/x", "http:// or https://"},
    {"https://meet.example.com/~user", "\"~\", which RFC 1738 does not allow"},
    {"https://meet.example.com/a#x", "\"#\", which RFC 1738"},
    {"https://[::1]/", "\"[\", which RFC 1738"},
    {"https://meet.example.com/a{b}", "RFC 1738"},
    {"https://meet.example.com/ä", "non-ASCII"},
    {"https://meet.example.com/\r\n", "control character"},
    {"https://meet.example.com/%zz", "%XX escape"},
    {"https://meet.example.com/%4", "%XX escape"},
    {"https://u@meet.example.com/", "user information"},
    {"https://meet.example.com:0/", "Port 0 is out of range"},
    {"https://meet.example.com:65536/", "Port 65536 is out of range"},
    {"https://meet.example.com:8*/", "wildcard"},
    {"https://meet.example.com:x/", "The port \"x\" is not a number"},
    {"https:///x", "no host"},
    {"https://*..example.com/", "empty label"},
    {"https://.*.example.com/", "empty label"},
    {"https://meet_x.example.com/", "\"_\""},
    {"https://*_x.example.com/", "\"_\""},
    {"https://-meet.example.com/", "hyphen"},
};

static void test_qos_url(void **state) {
  for (size_t i = 0; i < N(qos_url_good); i++) {
    const str_case_t *c = &qos_url_good[i];
    char *out = SENTINEL;
    validate_error_t err = {.field = ""};
    int rc = validate_qos_url(c->in, &out, &err);
    if (rc != 0 || strcmp(out, c->want) != 0)
      fail_msg("qos url \"%s\": rc %d, out \"%s\", message \"%s\"; want \"%s\"", c->in, rc,
               rc == 0 ? out : "", err.message, c->want);
    char *again = NULL;
    if (validate_qos_url(out, &again, &err) != 0 || strcmp(again, out) != 0)
      fail_msg("qos url \"%s\": normalised form \"%s\" does not validate to itself", c->in, out);
    free(again);
    free(out);
  }
  for (size_t i = 0; i < N(qos_url_bad); i++) {
    const str_case_t *c = &qos_url_bad[i];
    char *out = SENTINEL;
    validate_error_t err = {.field = ""};
    int rc = validate_qos_url(c->in, &out, &err);
    if (rc != -EINVAL || out != SENTINEL || !strstr(err.message, c->want))
      fail_msg("qos url \"%s\": rc %d, message \"%s\"; want -EINVAL and \"%s\"", c->in, rc,
               err.message, c->want);
  }
}

/* ---- proxy bypass -------------------------------------------------------- */

static const str_case_t bypass_good[] = {
    {"Example.COM", "example.com"},
    {"example.com.", "example.com"},
    {"*.Example.com", "*.example.com"},
    {".example.com", ".example.com"},
    {"localhost", "localhost"},
    {"*.local", "*.local"},
    {"bücher.example", "xn--bcher-kva.example"},
    {"*.bücher.example", "*.xn--bcher-kva.example"},
    {"10.1.2.3", "10.1.2.3"},
    {"[::1]", "::1"},
    {"FD00::1", "fd00::1"},
    {"10.0.0.0/8", "10.0.0.0/8"},
    {"192.168.1.0/24", "192.168.1.0/24"},
    {"192.168.1.7/32", "192.168.1.7/32"},
    {"0.0.0.0/0", "0.0.0.0/0"},
    {"10.0.0.0/08", "10.0.0.0/8"},
    {"fd00::/8", "fd00::/8"},
    {"FD00:0::/8", "fd00::/8"},
    {"2001:db8::/32", "2001:db8::/32"},
    {"::1/128", "::1/128"},
    {"[fd00::]/8", "fd00::/8"},
};

static const str_case_t bypass_bad[] = {
    {"", "Is empty"},
    {"10.0.0.0/33", "/33 is out of range for an IPv4 address; use 0-32"},
    {"fd00::/129", "/129 is out of range for an IPv6 address; use 0-128"},
    {"10.0.0.0/", "prefix length"},
    {"10.0.0.0/abc", "prefix length"},
    {"10.0.0.0/-1", "prefix length"},
    {"10.0.0.0/+8", "prefix length"},
    {"10.0.0.0/1000", "prefix length"},
    {"10.0.0.0/8/9", "prefix length"},
    {"10.1.2.3/8", "write the range as 10.0.0.0/8"},
    {"fd00::1/8", "fd00::/8"},
    {"example.com/8", "must be an IPv4 or IPv6 address"},
    {"10.0.0/8", "must be an IPv4 or IPv6 address"},
    {"[10.0.0.0]/8", "must be an IPv4 or IPv6 address"},
    {"/8", "must be an IPv4 or IPv6 address"},
    {"*", "lone"},
    {"*.", "empty"},
    {".", "empty"},
    {"..example.com", "empty label"},
    {"foo.*.com", "only allowed at the start"},
    {"*.*.example.com", "only allowed at the start"},
    {"ex*ample.com", "only allowed at the start"},
    {"a b", "space"},
    {"a\nb", "control character"},
    {"example.com:8080", "\":\""},
    {"*.1.2.3", "all-digit"},
    {"-x.example.com", "hyphen"},
};

static void test_bypass_entry(void **state) {
  for (size_t i = 0; i < N(bypass_good); i++) {
    const str_case_t *c = &bypass_good[i];
    char *out = SENTINEL;
    validate_error_t err = {.field = ""};
    int rc = validate_bypass_entry(c->in, &out, &err);
    if (rc != 0 || strcmp(out, c->want) != 0)
      fail_msg("bypass \"%s\": rc %d, out \"%s\", message \"%s\"; want \"%s\"", c->in, rc,
               rc == 0 ? out : "", err.message, c->want);
    char *again = NULL;
    if (validate_bypass_entry(out, &again, &err) != 0 || strcmp(again, out) != 0)
      fail_msg("bypass \"%s\": normalised form \"%s\" does not validate to itself", c->in, out);
    free(again);
    free(out);
  }
  for (size_t i = 0; i < N(bypass_bad); i++) {
    const str_case_t *c = &bypass_bad[i];
    char *out = SENTINEL;
    validate_error_t err = {.field = ""};
    int rc = validate_bypass_entry(c->in, &out, &err);
    if (rc != -EINVAL || out != SENTINEL || !strstr(err.message, c->want))
      fail_msg("bypass \"%s\": rc %d, message \"%s\"; want -EINVAL and \"%s\"", c->in, rc,
               err.message, c->want);
  }
}

/* ---- JSON lists ---------------------------------------------------------- */

typedef struct {
  const char *json;
  const char *want; /* normalised JSON */
} json_good_t;

typedef struct {
  const char *json;
  const char *want; /* message substring */
  const char *field;
} json_case_t;

typedef int (*json_validator_t)(const json_t *, json_t **, validate_error_t *);

static json_t *load(const char *text) {
  json_error_t jerr;
  json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (!v)
    fail_msg("test JSON does not parse: %s: %s", text, jerr.text);
  return v;
}

static void check_json_good(json_validator_t fn, const json_good_t *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    json_t *in = load(cases[i].json), *want = load(cases[i].want), *out = NULL;
    validate_error_t err = {.field = ""};
    int rc = fn(in, &out, &err);
    if (rc != 0 || !json_equal(out, want)) {
      char *got = out ? json_dumps(out, JSON_COMPACT) : NULL;
      fail_msg("%s: rc %d, out %s, %s: %s", cases[i].json, rc, got ? got : "-", err.field,
               err.message);
    }
    json_decref(in);
    json_decref(want);
    json_decref(out);
  }
}

static void check_json_bad(json_validator_t fn, const json_case_t *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    json_t *in = load(cases[i].json), *out = (json_t *)SENTINEL;
    validate_error_t err = {.field = "stale"};
    int rc = fn(in, &out, &err);
    if (rc != -EINVAL || out != (json_t *)SENTINEL || !strstr(err.message, cases[i].want) ||
        strcmp(err.field, cases[i].field) != 0)
      fail_msg("%s: rc %d, field \"%s\", message \"%s\"; want field \"%s\" and \"%s\"",
               cases[i].json, rc, err.field, err.message, cases[i].field, cases[i].want);
    json_decref(in);
  }
}

static const json_good_t bypass_list_good[] = {
    {"[]", "[]"},
    {"[\"Example.com\", \"*.Example.org\", \"10.0.0.0/8\", \"::1\"]",
     "[\"example.com\", \"*.example.org\", \"10.0.0.0/8\", \"::1\"]"},
    /* A pattern and the name it is derived from are different entries. */
    {"[\"example.com\", \"*.example.com\", \".example.com\"]",
     "[\"example.com\", \"*.example.com\", \".example.com\"]"},
};

static const json_case_t bypass_list_bad[] = {
    {"{}", "list (JSON array)", ""},
    {"\"example.com\"", "list (JSON array)", ""},
    {"null", "list (JSON array)", ""},
    {"[\"a.example.com\", 5]", "Must be a string", "[1]"},
    {"[null]", "Must be a string", "[0]"},
    {"[\"a.example.com\", \"10.0.0.0/33\"]", "out of range", "[1]"},
    {"[\"example.com\", \"EXAMPLE.com.\"]", "Repeats entry [0] (example.com)", "[1]"},
    {"[\"10.0.0.0/8\", \"a.com\", \"10.0.0.0/08\"]", "Repeats entry [0]", "[2]"},
    {"[\"::1\", \"[0::1]\"]", "Repeats entry [0]", "[1]"},
    {"[\"a\\u0000b.com\"]", "NUL", "[0]"},
};

static void test_bypass_list(void **state) {
  check_json_good(validate_bypass_list, bypass_list_good, N(bypass_list_good));
  check_json_bad(validate_bypass_list, bypass_list_bad, N(bypass_list_bad));
}

static void test_bypass_list_limit(void **state) {
  json_t *in = json_array();
  char name[32];
  for (int i = 0; i < VALIDATE_BYPASS_MAX; i++) {
    snprintf(name, sizeof name, "h%d.example.com", i);
    json_array_append_new(in, json_string(name));
  }
  json_t *out = NULL;
  validate_error_t err;
  assert_int_equal(validate_bypass_list(in, &out, &err), 0);
  assert_int_equal(json_array_size(out), VALIDATE_BYPASS_MAX);
  json_decref(out);
  json_array_append_new(in, json_string("one-more.example.com"));
  out = NULL;
  assert_int_equal(validate_bypass_list(in, &out, &err), -EINVAL);
  assert_null(out);
  assert_non_null(strstr(err.message, "at most 256"));
  json_decref(in);
}

#define POLICY(name, dscp, rate, url, sub, any)                                                   \
  "{\"name\": " name ", \"dscp\": " dscp ", \"max_rate_mbps\": " rate ", \"url\": " url           \
  ", \"include_subdirectories\": " sub ", \"any_destination\": " any "}"
#define P_OK(name) POLICY("\"" name "\"", "34", "50", "\"http://*/x\"", "true", "true")
#define P_DSCP(d) "[" POLICY("\"p\"", d, "50", "\"http://*/x\"", "true", "true") "]"
#define P_RATE(r) "[" POLICY("\"p\"", "34", r, "\"http://*/x\"", "true", "true") "]"
#define P_URL(u) "[" POLICY("\"p\"", "34", "50", u, "true", "true") "]"
#define P_NAME(n) "[" POLICY(n, "34", "50", "\"http://*/x\"", "true", "true") "]"

static const json_good_t qos_good[] = {
    {"[]", "[]"},
    {"[" POLICY("\"Web Meeting (HTTP)\"", "34", "50",
                "\"http://meet.example.com/XPhoneConnect/WebMeeting.Api\"", "true", "true")
     ", " POLICY("\"Web Meeting (HTTPS)\"", "34", "50",
                 "\"https://meet.example.com/XPhoneConnect/WebMeeting.Api\"", "true", "true") "]",
     "[" POLICY("\"Web Meeting (HTTP)\"", "34", "50",
                "\"http://meet.example.com/XPhoneConnect/WebMeeting.Api\"", "true", "true")
     ", " POLICY("\"Web Meeting (HTTPS)\"", "34", "50",
                 "\"https://meet.example.com/XPhoneConnect/WebMeeting.Api\"", "true", "true") "]"},
    /* Normalised url, edge values, any member order. */
    {"[{\"any_destination\": false, \"url\": \"HTTPS://*.Example.com/Meet\", \"dscp\": 0, "
     "\"include_subdirectories\": false, \"max_rate_mbps\": 1, \"name\": \"v\"}, "
     "{\"name\": \"w\", \"dscp\": 63, \"max_rate_mbps\": 100000, \"url\": \"http://m.example.com\","
     " \"include_subdirectories\": true, \"any_destination\": true}]",
     "[" POLICY("\"v\"", "0", "1", "\"https://*.example.com/Meet\"", "false", "false") ", "
     POLICY("\"w\"", "63", "100000", "\"http://m.example.com/\"", "true", "true") "]"},
    {P_NAME("\"Vid\\u00e9o \\u4f1a\\u8b70\""), P_NAME("\"Vid\\u00e9o \\u4f1a\\u8b70\"")},
    {P_NAME("\"" A10 A10 A10 A10 A10 A10 "1234\""), P_NAME("\"" A10 A10 A10 A10 A10 A10 "1234\"")},
};

static const json_case_t qos_bad[] = {
    {"{}", "list (JSON array)", ""},
    {"\"policy\"", "list (JSON array)", ""},
    {"[1]", "Must be an object", "[0]"},
    {"[" P_OK("a") ", " P_OK("A") "]", "Repeats the name of policy [0]", "[1].name"},
    {"[" P_OK("Web") ", " P_OK("x") ", " P_OK("wEB") "]", "unique (ignoring case)", "[2].name"},
    {P_DSCP("-1"), "-1 is out of range; use 0-63.", "[0].dscp"},
    {P_DSCP("64"), "64 is out of range; use 0-63.", "[0].dscp"},
    {P_DSCP("\"34\""), "whole number from 0 to 63", "[0].dscp"},
    {P_DSCP("34.5"), "whole number from 0 to 63", "[0].dscp"},
    {P_DSCP("34.0"), "whole number", "[0].dscp"},
    {P_DSCP("true"), "whole number", "[0].dscp"},
    {P_DSCP("null"), "whole number", "[0].dscp"},
    {P_RATE("0"), "0 is out of range; use 1-100000.", "[0].max_rate_mbps"},
    {P_RATE("100001"), "100001 is out of range; use 1-100000.", "[0].max_rate_mbps"},
    {P_RATE("\"50\""), "whole number from 1 to 100000", "[0].max_rate_mbps"},
    {P_URL("\"http://meet.example.com/a b\""), "space", "[0].url"},
    {P_URL("\"ftp://meet.example.com/\""), "http:// or https://", "[0].url"},
    {P_URL("\"https://meet.example.com/~x\""), "RFC 1738", "[0].url"},
    {P_URL("5"), "Must be a string", "[0].url"},
    {P_URL("\"\""), "empty", "[0].url"},
    {P_NAME("\"\""), "empty", "[0].name"},
    {P_NAME("5"), "Must be a string", "[0].name"},
    {P_NAME("\"" A10 A10 A10 A10 A10 A10 "12345\""), "65 characters long; at most 64",
     "[0].name"},
    {P_NAME("\"a\\u0001b\""), "control character", "[0].name"},
    {P_NAME("\"a\\u0085b\""), "control character", "[0].name"},
    {P_NAME("\"a\\u0000b\""), "NUL", "[0].name"},
    {P_NAME("\" padded\""), "space", "[0].name"},
    {"[" POLICY("\"p\"", "34", "50", "\"http://*/x\"", "\"yes\"", "true") "]", "true or false",
     "[0].include_subdirectories"},
    {"[" POLICY("\"p\"", "34", "50", "\"http://*/x\"", "true", "1") "]", "true or false",
     "[0].any_destination"},
    {"[" P_OK("a") ", {\"name\": \"b\", \"dscp\": 34, \"max_rate_mbps\": 50, \"url\": "
     "\"http://*/x\", \"include_subdirectories\": true, \"any_destination\": true, "
     "\"priority\": 1}]",
     "not a member of a QoS policy", "[1].priority"},
    {"[{\"name\": \"b\", \"dscp\": 34, \"max_rate_mbps\": 50, \"url\": \"http://*/x\", "
     "\"include_subdirectories\": true, \"any_destination\": true, \"bad key\\n\": 1}]",
     "member that QoS policies do not have", "[0]"},
    {"[{\"name\": \"b\", \"dscp\": 34, \"max_rate_mbps\": 50, \"url\": \"http://*/x\", "
     "\"include_subdirectories\": true}]",
     "Is missing", "[0].any_destination"},
    {"[{}]", "Is missing", "[0].name"},
};

static void test_qos_policies(void **state) {
  check_json_good(validate_qos_policies, qos_good, N(qos_good));
  check_json_bad(validate_qos_policies, qos_bad, N(qos_bad));
}

static void test_qos_policies_limit(void **state) {
  json_t *in = json_array();
  char name[16];
  for (int i = 0; i < VALIDATE_QOS_POLICIES_MAX; i++) {
    snprintf(name, sizeof name, "p%d", i);
    json_array_append_new(in, json_pack("{s:s, s:i, s:i, s:s, s:b, s:b}", "name", name, "dscp", 34,
                                        "max_rate_mbps", 50, "url", "http://*/x",
                                        "include_subdirectories", 1, "any_destination", 1));
  }
  json_t *out = NULL;
  validate_error_t err;
  assert_int_equal(validate_qos_policies(in, &out, &err), 0);
  assert_int_equal(json_array_size(out), VALIDATE_QOS_POLICIES_MAX);
  json_decref(out);
  json_array_append(in, json_array_get(in, 0));
  out = NULL;
  assert_int_equal(validate_qos_policies(in, &out, &err), -EINVAL);
  assert_null(out);
  assert_non_null(strstr(err.message, "at most 32"));
  json_decref(in);
}

/* ---- helpers ------------------------------------------------------------- */

static void test_fail(void **state) {
  validate_error_t err = {.field = "[3].dscp"};
  assert_int_equal(validate_fail(&err, "Port %d is out of range; use 1-65535.", 70000), -EINVAL);
  assert_string_equal(err.message, "Port 70000 is out of range; use 1-65535.");
  assert_string_equal(err.field, "");

  char big[VALIDATE_MESSAGE_MAX * 2];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(validate_fail(&err, "%s", big), -EINVAL);
  assert_int_equal(strlen(err.message), VALIDATE_MESSAGE_MAX - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_host_good),
      cmocka_unit_test(test_host_bad),
      cmocka_unit_test(test_host_null),
      cmocka_unit_test(test_is_ip_literal),
      cmocka_unit_test(test_url_good),
      cmocka_unit_test(test_url_bad),
      cmocka_unit_test(test_url_messages_are_sentences),
      cmocka_unit_test(test_url_length),
      cmocka_unit_test(test_qos_url),
      cmocka_unit_test(test_bypass_entry),
      cmocka_unit_test(test_bypass_list),
      cmocka_unit_test(test_bypass_list_limit),
      cmocka_unit_test(test_qos_policies),
      cmocka_unit_test(test_qos_policies_limit),
      cmocka_unit_test(test_fail),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
