/* The settings catalogue: one row per System setting.
 *
 * Everything else (API, schema, persistence, environment overrides, CLI,
 * admin page, docs/settings.md, the sanity test) reads this table. */
#include "conf/catalogue.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STRING_MAX 1024

/* ---- rules shared by several rows ------------------------------------------ */

/* The published URLs (and the base the defaults are derived from) become
 * nginx locations: proxy_path. */
static const validate_url_rule_t url_base = {
    .schemes = URL_SCHEME_HTTP | URL_SCHEME_HTTPS,
    .base = true,
    .proxy_path = true,
};
static const validate_url_rule_t url_web = {
    .schemes = URL_SCHEME_HTTP | URL_SCHEME_HTTPS,
};
static const validate_url_rule_t url_published = {
    .schemes = URL_SCHEME_HTTP | URL_SCHEME_HTTPS,
    .proxy_path = true,
};
static const validate_url_rule_t url_mobile = {
    .schemes = URL_SCHEME_HTTPS,
    .host_fqdn = true,
    .proxy_path = true,
    .why_https = "the mobile app reaches this URL over the Internet, so the connection must be "
                 "encrypted",
};
static const validate_url_rule_t url_license = {
    .schemes = URL_SCHEME_HTTPS,
    .why_https = "license information is only exchanged over an encrypted connection",
};
static const validate_url_rule_t url_ldap = {
    .schemes = URL_SCHEME_LDAP | URL_SCHEME_LDAPS,
    .no_path = true,
};

static const validate_url_rule_t url_push_gateway = {
    .schemes = URL_SCHEME_HTTPS,
    .why_https = "notifications carry the devices' push tokens, so the connection to the gateway "
                 "must be encrypted",
};

static const char *const proxy_auth_methods[] = {"basic", "digest", "ntlm", "negotiate", NULL};
static const char *const push_modes[] = {"direct", "gateway", NULL};
static const char *const push_contents[] = {"id_only", "generic", "full", NULL};
static const char *const apns_environments[] = {"production", "sandbox", NULL};

/* ---- special checks ------------------------------------------------------------ */

static int check_bypass(const setting_def_t *def, const json_t *in, json_t **out,
                        validate_error_t *err) {
  return validate_bypass_list(in, out, err);
}

/* Partner domains: each a DNS name of two labels or more, lower-cased, no
 * duplicates, at most 500. */
static int check_domain_list(const setting_def_t *def, const json_t *in, json_t **out,
                             validate_error_t *err) {
  if (!json_is_array(in)) {
    snprintf(err->message, sizeof err->message, "Must be a list of domain names.");
    return -EINVAL;
  }
  if (json_array_size(in) > 500) {
    snprintf(err->message, sizeof err->message, "Holds at most 500 domains.");
    return -EINVAL;
  }
  json_t *list = json_array();
  size_t i;
  const json_t *v;
  json_array_foreach(in, i, v) {
    char *host = NULL;
    validate_error_t e;
    if (!json_is_string(v) ||
        validate_host(json_string_value(v), HOST_TWO_LABELS, &host, &e) < 0) {
      snprintf(err->message, sizeof err->message,
               "Item %zu must be a domain name such as partner.example.com.", i + 1);
      json_decref(list);
      return -EINVAL;
    }
    bool dup = false;
    size_t k;
    const json_t *w;
    json_array_foreach(list, k, w) dup = dup || strcmp(json_string_value(w), host) == 0;
    if (!dup) json_array_append_new(list, json_string(host));
    free(host);
  }
  *out = list;
  return 0;
}

/* Who may read the Users data source (the users' profile pictures): a
 * set of principals. "Users" are the directory's own users, logged in;
 * "Authenticated" is everyone the server has let in, meeting guests
 * among them. Case-insensitive, written back in the canonical spelling,
 * without duplicates. */
static const char *const principals[] = {"Users", "Authenticated", NULL};

static int check_principals(const setting_def_t *def, const json_t *in, json_t **out,
                            validate_error_t *err) {
  if (!json_is_array(in))
    return validate_fail(err, "Must be a list of principals: Users, Authenticated.");
  json_t *list = json_array();
  if (!list) return -ENOMEM;
  size_t i;
  const json_t *v;
  json_array_foreach(in, i, v) {
    const char *s = json_string_value(v);
    const char *canon = NULL;
    for (const char *const *p = principals; s && *p; p++)
      if (strcasecmp(*p, s) == 0) canon = *p;
    if (!canon) {
      json_decref(list);
      return validate_fail(err, "Item %zu must be Users or Authenticated (guests of web "
                                "meetings see pictures only with Authenticated).",
                           i + 1);
    }
    bool dup = false;
    size_t k;
    const json_t *w;
    json_array_foreach(list, k, w) dup = dup || strcmp(json_string_value(w), canon) == 0;
    if (!dup) json_array_append_new(list, json_string(canon));
  }
  *out = list;
  return 0;
}

static int check_qos(const setting_def_t *def, const json_t *in, json_t **out,
                     validate_error_t *err) {
  return validate_qos_policies(in, out, err);
}

/* An LDAP distinguished name: RDNs "attr=value" separated by unescaped
 * commas. A full RFC 4514 parser is libldap's job once AD publishing links
 * it; this catches the usual slips (missing '=', empty RDN). */
static int check_dn(const setting_def_t *def, const json_t *in, json_t **out,
                    validate_error_t *err) {
  const char *s = json_string_value(in);
  if (*s) {
    const char *rdn = s;
    for (const char *p = s;; p++) {
      if (*p == '\\' && p[1]) {
        p++;
        continue;
      }
      if (*p == ',' || *p == '\0') {
        const char *eq = memchr(rdn, '=', (size_t)(p - rdn));
        if (!eq || eq == rdn || eq + 1 == p)
          return validate_fail(err,
                               "Is not a distinguished name: each part must be attribute=value, "
                               "for example CN=Atrium,OU=Servers,DC=example,DC=com.");
        if (*p == '\0') break;
        rdn = p + 1;
      }
    }
  }
  *out = json_incref((json_t *)in);
  return 0;
}

/* Apple's key and team ids: ten upper-case letters and digits. */
static int check_apple_id(const setting_def_t *def, const json_t *in, json_t **out,
                          validate_error_t *err) {
  const char *s = json_string_value(in);
  size_t n = strlen(s);
  bool ok = n == 10 || n == 0;
  for (size_t i = 0; ok && i < n; i++)
    ok = (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9');
  if (!ok)
    return validate_fail(err, "Must be the 10 characters (A-Z, 0-9) Apple shows in the developer "
                              "account, for example ABC123DEFG.");
  *out = json_incref((json_t *)in);
  return 0;
}

/* An app's bundle id (the APNs topic): reverse-DNS labels of letters,
 * digits, '-' and '.', optionally with Apple's suffixes (.voip). */
static int check_bundle_id(const setting_def_t *def, const json_t *in, json_t **out,
                           validate_error_t *err) {
  const char *s = json_string_value(in);
  bool ok = !*s || (strchr(s, '.') && s[0] != '.' && s[strlen(s) - 1] != '.' &&
                    !strstr(s, "..") && strlen(s) <= 155);
  for (const char *p = s; ok && *p; p++) ok = isalnum((unsigned char)*p) || *p == '-' || *p == '.';
  if (!ok)
    return validate_fail(err, "Must be the app's bundle id, for example com.example.atrium: "
                              "letters, digits, '-' and '.' in two or more parts.");
  *out = json_incref((json_t *)in);
  return 0;
}

static int check_absolute_path(const setting_def_t *def, const json_t *in, json_t **out,
                               validate_error_t *err) {
  const char *s = json_string_value(in);
  if (*s && s[0] != '/')
    return validate_fail(err, "Must be an absolute path such as /etc/atrium/http.keytab.");
  *out = json_incref((json_t *)in);
  return 0;
}

/* ---- the table ------------------------------------------------------------------ */

const setting_section_t catalogue_sections[] = {
    {"domain", "Domain (namespace)"},
    {"login", "Login & publishing"},
    {"mobile", "Mobile App"},
    {"um", "UM Settings"},
    {"meeting", "Web meeting"},
    {"qos", "QoS for web meetings"},
    {"docs", "Online documentation"},
    {"proxy", "Proxy settings"},
    {"server", "Server address"},
    {"federation", "Federation"},
    {"ad", "Active Directory connection"},
    {"directory", "Directory"},
    {"license", "License server"},
};
const size_t catalogue_section_count = sizeof catalogue_sections / sizeof catalogue_sections[0];

const setting_def_t catalogue[] = {
    {
        .key = "server.public_url",
        .section = "server",
        .label = "Public base URL",
        .help = "The base URL of this server. The default URLs of UM settings, web meeting and "
                "the online documentation are derived from it.",
        .type = SETTING_URL,
        .url_rule = &url_base,
        .flags = SETTING_F_INSTALL_DEFAULT,
    },
    {
        .key = "domain.name",
        .section = "domain",
        .label = "Domain",
        .help = "The namespace of every identity: login names and IM addresses are "
                "name@domain. Changed only through the domain change operation, which renames "
                "every user at once.",
        .type = SETTING_HOST,
        .host_flags = HOST_TWO_LABELS,
        .flags = SETTING_F_OPERATION_ONLY | SETTING_F_NO_ENV | SETTING_F_INSTALL_DEFAULT,
    },
    {
        .key = "federation.enabled",
        .section = "federation",
        .label = "Federation enabled",
        .help = "The global federation switch. Must be off to change the domain.",
        .type = SETTING_BOOL,
        .default_json = "false",
    },
    {
        .key = "federation.fqdn",
        .section = "federation",
        .label = "Federation FQDN",
        .help = "The server domain or a direct sub-domain of it (sip.example.com for "
                "example.com). Leave blank to use the domain.",
        .type = SETTING_HOST,
        .host_flags = HOST_TWO_LABELS,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_DEFAULT,
    },
    {
        .key = "federation.allowed_domains",
        .section = "federation",
        .label = "Partner domains (allow list)",
        .help = "The only domains federated with. Empty: every domain that presents a valid "
                "certificate (open federation), except those blocked.",
        .type = SETTING_LIST,
        .items = "domain",
        .default_json = "[]",
        .check = check_domain_list,
    },
    {
        .key = "federation.redirect_days",
        .section = "federation",
        .label = "Redirect the old addresses (days)",
        .help = "After a domain change, requests of other organisations to a user's old address "
                "are answered 301 Moved Permanently with the new one for this many days "
                "(0: not at all).",
        .type = SETTING_INT,
        .min = 0,
        .max = 365,
        .default_json = "30",
    },
    {
        .key = "federation.blocked_domains",
        .section = "federation",
        .label = "Blocked domains",
        .help = "Domains never federated with, whatever the allow list says.",
        .type = SETTING_LIST,
        .items = "domain",
        .default_json = "[]",
        .check = check_domain_list,
    },
    {
        .key = "login.allow_automatic",
        .section = "login",
        .label = "Allow automatic login",
        .help = "Clients log in without user interaction when integrated Windows login is "
                "active for the user.",
        .type = SETTING_BOOL,
        .default_json = "true",
    },
    {
        .key = "login.publish_address",
        .section = "login",
        .label = "Publish address of the server",
        .help = "Publish the server's address in the internal network (UDP discovery) and in "
                "Active Directory so that clients find this server automatically.",
        .type = SETTING_BOOL,
        .default_json = "false",
    },
    {
        .key = "login.discovery_port",
        .section = "login",
        .label = "Discovery port (UDP)",
        .help = "The UDP port the discovery responder listens on while the address is published.",
        .type = SETTING_PORT,
        .default_json = "21730",
        .min = 1,
        .max = 65535,
    },
    {
        .key = "login.kerberos_keytab",
        .section = "login",
        .label = "Kerberos keytab",
        .help = "Keytab with the HTTP service principal for integrated Windows login "
                "(absolute path). Blank: automatic login is not available.",
        .type = SETTING_STRING,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
        .check = check_absolute_path,
    },
    {
        .key = "ad.uri",
        .section = "ad",
        .label = "Active Directory server",
        .help = "LDAP URL of a domain controller used to publish the server's address, for "
                "example ldaps://dc1.example.com.",
        .type = SETTING_URL,
        .url_rule = &url_ldap,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
    },
    {
        .key = "ad.bind_dn",
        .section = "ad",
        .label = "Bind DN",
        .help = "The account used to write the service connection point.",
        .type = SETTING_STRING,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
        .check = check_dn,
    },
    {
        .key = "ad.bind_password",
        .section = "ad",
        .label = "Bind password",
        .help = "Password of the bind DN. Write-only: it is stored encrypted and never shown.",
        .type = SETTING_SECRET,
    },
    {
        .key = "ad.container_dn",
        .section = "ad",
        .label = "Container DN",
        .help = "Where the service connection point object is kept, for example "
                "CN=Atrium,CN=Services,DC=example,DC=com.",
        .type = SETTING_STRING,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
        .check = check_dn,
    },
    {
        .key = "mobile.app_url",
        .section = "mobile",
        .label = "URL for access by the mobile app",
        .help = "Reachable from the Internet; used for all mobile functions except telephony. "
                "A port other than 443 is written after the FQDN "
                "(https://m.example.com:7443/). Blank: mobile access is not published.",
        .type = SETTING_URL,
        .url_rule = &url_mobile,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
    },
    {
        .key = "mobile.webapi_url",
        .section = "mobile",
        .label = "URL for the telephony web API",
        .help = "Reachable from the Internet; needed for telephony in the mobile app (device "
                "selection, softphone).",
        .type = SETTING_URL,
        .url_rule = &url_mobile,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
    },
    {
        .key = "mobile.push_enabled",
        .section = "mobile",
        .label = "Enable push notifications",
        .help = "Send push notifications to the mobile app.",
        .type = SETTING_BOOL,
        .default_json = "false",
    },
    {
        .key = "mobile.push_use_proxy",
        .section = "mobile",
        .label = "Use proxy settings for sending push notifications",
        .help = "Push notifications are sent through the proxy configured under Proxy settings.",
        .type = SETTING_BOOL,
        .default_json = "false",
    },
    {
        .key = "mobile.push_mode",
        .section = "mobile",
        .label = "Push notifications are sent",
        .help = "direct: to Apple (APNs) and Google (FCM) with this server's credentials below; "
                "gateway: to a Matrix push gateway (such as Sygnal) that holds the app's "
                "credentials.",
        .type = SETTING_ENUM,
        .choices = push_modes,
        .default_json = "\"direct\"",
    },
    {
        .key = "mobile.push_gateway_url",
        .section = "mobile",
        .label = "Push gateway URL",
        .help = "The gateway's notify URL (https://push.example.com/_matrix/push/v1/notify; a URL "
                "without a path gets that path). Required in gateway mode.",
        .type = SETTING_URL,
        .url_rule = &url_push_gateway,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
    },
    {
        .key = "mobile.push_gateway_app_id",
        .section = "mobile",
        .label = "App id at the push gateway",
        .help = "The app_id the gateway knows the app by (its configuration names it), for "
                "example com.example.atrium.ios; the platform is appended as .ios or .android "
                "when this ends with a dot.",
        .type = SETTING_STRING,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
    },
    {
        .key = "mobile.push_content",
        .section = "mobile",
        .label = "Content of push notifications",
        .help = "id_only: ids only, the app fetches the text from this server (Apple and Google "
                "never hold it); generic: the sender's name, no text; full: sender and text.",
        .type = SETTING_ENUM,
        .choices = push_contents,
        .default_json = "\"id_only\"",
    },
    {
        .key = "mobile.apns_key_id",
        .section = "mobile",
        .label = "APNs key ID",
        .help = "The Key ID of the APNs authentication key (.p8) in Apple's developer account.",
        .type = SETTING_STRING,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
        .check = check_apple_id,
    },
    {
        .key = "mobile.apns_team_id",
        .section = "mobile",
        .label = "APNs team ID",
        .help = "The Team ID of the developer account the key belongs to.",
        .type = SETTING_STRING,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
        .check = check_apple_id,
    },
    {
        .key = "mobile.apns_topic",
        .section = "mobile",
        .label = "APNs topic (bundle id)",
        .help = "The iOS app's bundle id, for example com.example.atrium.",
        .type = SETTING_STRING,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
        .check = check_bundle_id,
    },
    {
        .key = "mobile.apns_key",
        .section = "mobile",
        .label = "APNs authentication key (.p8)",
        .help = "The text of the AuthKey_<KeyID>.p8 file: an EC P-256 private key in PKCS#8 PEM. "
                "Write-only: it is stored encrypted and never shown.",
        .type = SETTING_SECRET,
        .flags = SETTING_F_MULTILINE,
    },
    {
        .key = "mobile.apns_environment",
        .section = "mobile",
        .label = "APNs environment",
        .help = "production (App Store and TestFlight builds) or sandbox (development builds).",
        .type = SETTING_ENUM,
        .choices = apns_environments,
        .default_json = "\"production\"",
    },
    {
        .key = "mobile.fcm_service_account",
        .section = "mobile",
        .label = "FCM service account key (JSON)",
        .help = "The service account key file of the Firebase project, as downloaded (JSON with "
                "project_id, client_email, private_key, token_uri). Write-only: stored "
                "encrypted and never shown.",
        .type = SETTING_SECRET,
        .flags = SETTING_F_MULTILINE,
    },
    {
        .key = "um.url",
        .section = "um",
        .label = "UM settings URL",
        .help = "Web interface where users set up voicemail, fax and SMS. Leave blank for the "
                "default URL.",
        .type = SETTING_URL,
        .url_rule = &url_published,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_DEFAULT,
        .effective_path = "/umsettings/",
    },
    {
        .key = "meeting.enabled",
        .section = "meeting",
        .label = "Web meeting",
        .help = "Web meetings with external participants.",
        .type = SETTING_BOOL,
        .default_json = "false",
    },
    {
        .key = "meeting.url",
        .section = "meeting",
        .label = "Web meeting URL",
        .help = "The externally reachable URL of web meetings. Leave blank for the default URL. "
                "Use https; http is for temporary testing only.",
        .type = SETTING_URL,
        .url_rule = &url_published,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_DEFAULT,
        .effective_path = "/webmeeting/",
    },
    {
        .key = "qos.policies",
        .section = "qos",
        .label = "QoS policies",
        .help = "DSCP marking and bandwidth limit for web meeting traffic. The two default "
                "policies follow the web meeting URL when it changes.",
        .type = SETTING_LIST,
        .items = "qos_policy",
        .check = check_qos,
    },
    {
        .key = "docs.url",
        .section = "docs",
        .label = "Online documentation URL",
        .help = "Where the online documentation is reached. Leave blank for the built-in "
                "documentation.",
        .type = SETTING_URL,
        .url_rule = &url_web,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_DEFAULT,
        .effective_path = "/docs/",
    },
    {
        .key = "proxy.enabled",
        .section = "proxy",
        .label = "Use proxy server",
        .help = "Reach the Internet (license information, Graph API, STUN/TURN, and push "
                "notifications when chosen above) through a proxy server.",
        .type = SETTING_BOOL,
        .default_json = "false",
    },
    {
        .key = "proxy.host",
        .section = "proxy",
        .label = "Proxy host",
        .help = "Host name or IP address of the proxy server. A host name needs a working DNS "
                "server.",
        .type = SETTING_HOST_OR_IP,
        .host_flags = HOST_ALLOW_IP,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
    },
    {
        .key = "proxy.port",
        .section = "proxy",
        .label = "Proxy port",
        .help = "TCP port of the proxy server.",
        .type = SETTING_PORT,
        .default_json = "8080",
        .min = 1,
        .max = 65535,
    },
    {
        .key = "proxy.auth_required",
        .section = "proxy",
        .label = "The proxy server requires authentication",
        .help = "Authenticate to the proxy with the method, user name and password below.",
        .type = SETTING_BOOL,
        .default_json = "false",
    },
    {
        .key = "proxy.auth_method",
        .section = "proxy",
        .label = "Authentication method",
        .help = "How to authenticate to the proxy: Basic, Digest, NTLM or Negotiate (Kerberos).",
        .type = SETTING_ENUM,
        .choices = proxy_auth_methods,
        .default_json = "\"basic\"",
    },
    {
        .key = "proxy.username",
        .section = "proxy",
        .label = "User name",
        .help = "User name for the proxy; required when the proxy requires authentication.",
        .type = SETTING_STRING,
        .default_json = "\"\"",
        .flags = SETTING_F_BLANK_OK,
    },
    {
        .key = "proxy.password",
        .section = "proxy",
        .label = "Password",
        .help = "Password for the proxy. Write-only: it is stored encrypted and never shown.",
        .type = SETTING_SECRET,
    },
    {
        .key = "proxy.bypass",
        .section = "proxy",
        .label = "Reach directly (no proxy)",
        .help = "Destinations reached without the proxy: host names, patterns such as "
                "*.example.com, IP addresses and networks such as 10.0.0.0/8.",
        .type = SETTING_LIST,
        .items = "host_pattern",
        .default_json = "[]",
        .check = check_bypass,
    },
    {
        .key = "directory.users_permissions",
        .section = "directory",
        .label = "Users data source permissions",
        .help = "Who may see the users' profile pictures: Users (the directory's users, logged "
                "in) and Authenticated (also the guests of web meetings). Without "
                "Authenticated, guests see initials instead of pictures.",
        .type = SETTING_LIST,
        .items = "principal",
        .default_json = "[\"Users\"]",
        .check = check_principals,
    },
    {
        .key = "license.server_url",
        .section = "license",
        .label = "License server URL",
        .help = "The license server that \"Test connection\" contacts. The project runs no "
                "license server: set your own.",
        .type = SETTING_URL,
        .url_rule = &url_license,
        .default_json = "\"https://license.atrium.invalid/v1/status\"",
    },
};
const size_t catalogue_count = sizeof catalogue / sizeof catalogue[0];

/* ---- lookups --------------------------------------------------------------------- */

int catalogue_find(const char *key) {
  for (size_t i = 0; i < catalogue_count; i++)
    if (strcmp(catalogue[i].key, key) == 0) return (int)i;
  return -1;
}

static const char *const type_names[] = {
    [SETTING_BOOL] = "bool",   [SETTING_INT] = "int",       [SETTING_STRING] = "string",
    [SETTING_HOST] = "host",   [SETTING_HOST_OR_IP] = "host_or_ip",
    [SETTING_URL] = "url",     [SETTING_PORT] = "port",     [SETTING_ENUM] = "enum",
    [SETTING_SECRET] = "secret", [SETTING_LIST] = "list",
};

const char *catalogue_type_name(setting_type_t type) { return type_names[type]; }

void catalogue_env_name(const setting_def_t *def, char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len, "ATRIUM_");
  for (const char *p = def->key; *p && n + 1 < len; p++)
    buf[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
  buf[n < len ? n : len - 1] = '\0';
}

/* ---- checking values --------------------------------------------------------------- */

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "a list";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "a whole number";
  case JSON_REAL: return "a decimal number";
  case JSON_TRUE:
  case JSON_FALSE: return "true/false";
  case JSON_NULL: return "null";
  }
  return "something else";
}

static int check_plain_string(const char *s, validate_error_t *err) {
  size_t n = strlen(s);
  if (n > STRING_MAX)
    return validate_fail(err, "Is %zu characters long; at most %d are allowed.", n, STRING_MAX);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      return validate_fail(err, "Contains a control character (such as a line break); remove it.");
  return 0;
}

/* A key file pasted whole: printable text with line breaks and tabs. */
static int check_multiline_string(const char *s, validate_error_t *err) {
  size_t n = strlen(s);
  if (n > SETTING_MULTILINE_MAX)
    return validate_fail(err, "Is %zu bytes long; at most %d are allowed.", n,
                         SETTING_MULTILINE_MAX);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if ((*p < 0x20 && *p != '\n' && *p != '\r' && *p != '\t') || *p == 0x7f)
      return validate_fail(err, "Contains a control character other than a line break or a "
                                "tab; paste the file's text as it is.");
  return 0;
}

static int check_string_value(const setting_def_t *def, const json_t *in, json_t **out,
                              validate_error_t *err) {
  const char *s = json_string_value(in);
  size_t len = json_string_length(in);
  if (strlen(s) != len) return validate_fail(err, "Contains a NUL character; remove it.");
  if (*s == '\0') {
    if (def->flags & (SETTING_F_BLANK_OK | SETTING_F_BLANK_DEFAULT) || def->type == SETTING_SECRET) {
      *out = json_string("");
      return *out ? 0 : -ENOMEM;
    }
    return validate_fail(err, "Must not be empty.");
  }
  char *norm = NULL;
  int r = 0;
  switch (def->type) {
  case SETTING_HOST:
  case SETTING_HOST_OR_IP: r = validate_host(s, def->host_flags, &norm, err); break;
  case SETTING_URL:
    r = validate_url(s, def->url_rule, &norm, err);
    if (r == 0 && def->url_rule->proxy_path && (r = validate_proxy_path(norm, def->key, err)) < 0)
      free(norm);
    break;
  case SETTING_ENUM:
    for (const char *const *c = def->choices; *c; c++)
      if (strcmp(*c, s) == 0) {
        *out = json_string(s);
        return *out ? 0 : -ENOMEM;
      }
    {
      char list[256] = "";
      for (const char *const *c = def->choices; *c; c++) {
        strncat(list, *c, sizeof list - strlen(list) - 1);
        if (c[1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
      }
      return validate_fail(err, "\"%.64s\" is not one of the choices: %s.", s, list);
    }
  default:
    r = def->flags & SETTING_F_MULTILINE ? check_multiline_string(s, err)
                                         : check_plain_string(s, err);
    if (r == 0) {
      if (def->check) return def->check(def, in, out, err);
      *out = json_string(s);
      return *out ? 0 : -ENOMEM;
    }
  }
  if (r < 0) return r;
  *out = json_string(norm);
  free(norm);
  return *out ? 0 : -ENOMEM;
}

int catalogue_check(const setting_def_t *def, const json_t *in, json_t **out, validate_error_t *err) {
  err->field[0] = '\0';
  err->message[0] = '\0';
  switch (def->type) {
  case SETTING_BOOL:
    if (!json_is_boolean(in))
      return validate_fail(err, "Must be true or false (a JSON boolean), not %s.", json_kind(in));
    *out = json_incref((json_t *)in);
    return 0;
  case SETTING_INT:
  case SETTING_PORT: {
    if (!json_is_integer(in))
      return validate_fail(err, "Must be a whole number from %lld to %lld, not %s.",
                           (long long)def->min, (long long)def->max, json_kind(in));
    json_int_t v = json_integer_value(in);
    if (v < def->min || v > def->max)
      return validate_fail(err, "%s %lld is out of range; use %lld-%lld.",
                           def->type == SETTING_PORT ? "Port" : "Value", (long long)v,
                           (long long)def->min, (long long)def->max);
    *out = json_integer(v);
    return *out ? 0 : -ENOMEM;
  }
  case SETTING_LIST:
    if (!json_is_array(in))
      return validate_fail(err, "Must be a list (a JSON array), not %s.", json_kind(in));
    return def->check(def, in, out, err);
  case SETTING_STRING:
  case SETTING_HOST:
  case SETTING_HOST_OR_IP:
  case SETTING_URL:
  case SETTING_ENUM:
  case SETTING_SECRET:
    if (!json_is_string(in))
      return validate_fail(err, "Must be text (a JSON string), not %s.", json_kind(in));
    return check_string_value(def, in, out, err);
  }
  return validate_fail(err, "Has a type this server does not know.");
}

/* ---- environment ------------------------------------------------------------------- */

static const struct {
  const char *text;
  bool value;
} env_bools[] = {
    {"true", true}, {"yes", true}, {"on", true}, {"1", true},
    {"false", false}, {"no", false}, {"off", false}, {"0", false},
};

int catalogue_parse_env(const setting_def_t *def, const char *text, json_t **out,
                        validate_error_t *err) {
  json_t *raw = NULL;
  switch (def->type) {
  case SETTING_BOOL:
    for (size_t i = 0; i < sizeof env_bools / sizeof env_bools[0]; i++)
      if (strcasecmp(text, env_bools[i].text) == 0) raw = json_boolean(env_bools[i].value);
    if (!raw) return validate_fail(err, "Must be true or false (also yes/no, on/off, 1/0).");
    break;
  case SETTING_INT:
  case SETTING_PORT: {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end)
      return validate_fail(err, "Must be a whole number from %lld to %lld.", (long long)def->min,
                           (long long)def->max);
    raw = json_integer(v);
    break;
  }
  case SETTING_LIST:
    if (text[0] == '[') {
      json_error_t jerr;
      raw = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
      if (!raw) return validate_fail(err, "Is not a valid JSON list: %s.", jerr.text);
    } else {
      raw = json_array();
      char *copy = strdup(text);
      if (!raw || !copy) {
        json_decref(raw);
        free(copy);
        return -ENOMEM;
      }
      char *save = NULL;
      for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        size_t n = strlen(tok);
        while (n && isspace((unsigned char)tok[n - 1])) tok[--n] = '\0';
        if (n) json_array_append_new(raw, json_string(tok));
      }
      free(copy);
    }
    break;
  default: raw = json_string(text); break;
  }
  if (!raw) return -ENOMEM;
  int r = catalogue_check(def, raw, out, err);
  json_decref(raw);
  return r;
}

/* ---- reference documentation --------------------------------------------------------- */

static void write_default(FILE *f, const setting_def_t *def) {
  if (def->type == SETTING_SECRET) {
    fputs("unset", f);
  } else if (def->flags & SETTING_F_INSTALL_DEFAULT) {
    fputs("fixed at first start", f);
  } else if (!def->default_json) {
    fputs("computed", f);
  } else if (def->flags & SETTING_F_BLANK_DEFAULT) {
    if (def->effective_path)
      fprintf(f, "blank → `<server.public_url>%s`", def->effective_path);
    else
      fputs("blank → `domain.name`", f);
  } else {
    fprintf(f, "`%s`", def->default_json);
  }
}

void catalogue_write_markdown(FILE *f) {
  fputs("# Settings reference\n\n"
        "Generated from the catalogue table (`src/conf/catalogue.c`) by "
        "`atriumd --settings-reference`; a test fails when this file and the table differ.\n\n"
        "Every setting can be overridden by an environment variable (shown below) unless noted; "
        "the API then reports `\"source\": \"env\"` and refuses to change it. A default "
        "\"fixed at first start\" is made from that start's host name and port (or atlas.xml) "
        "and kept: the API reports `\"source\": \"install\"` until a value is stored, and "
        "warns when atriumd no longer listens where it says. `null` in a PATCH removes a "
        "stored value.\n",
        f);
  for (size_t s = 0; s < catalogue_section_count; s++) {
    fprintf(f, "\n## %s\n\n| key | type | default | environment | description |\n"
               "|---|---|---|---|---|\n",
            catalogue_sections[s].title);
    for (size_t i = 0; i < catalogue_count; i++) {
      const setting_def_t *def = &catalogue[i];
      if (strcmp(def->section, catalogue_sections[s].id) != 0) continue;
      char env[128];
      catalogue_env_name(def, env, sizeof env);
      fprintf(f, "| `%s` | %s", def->key, catalogue_type_name(def->type));
      if (def->type == SETTING_INT || def->type == SETTING_PORT)
        fprintf(f, " %lld–%lld", (long long)def->min, (long long)def->max);
      if (def->type == SETTING_ENUM) {
        fputs(":", f);
        for (const char *const *c = def->choices; *c; c++) fprintf(f, " `%s`", *c);
      }
      if (def->type == SETTING_LIST) fprintf(f, " of %s", def->items);
      if (def->type == SETTING_URL) {
        const validate_url_rule_t *r = def->url_rule;
        fputs(" (", f);
        const char *sep = "";
        static const struct {
          unsigned bit;
          const char *name;
        } schemes[] = {{URL_SCHEME_HTTP, "http"},
                       {URL_SCHEME_HTTPS, "https"},
                       {URL_SCHEME_LDAP, "ldap"},
                       {URL_SCHEME_LDAPS, "ldaps"}};
        for (size_t k = 0; k < sizeof schemes / sizeof schemes[0]; k++)
          if (r->schemes & schemes[k].bit) {
            fprintf(f, "%s%s", sep, schemes[k].name);
            sep = "/";
          }
        if (r->host_fqdn) fputs(", FQDN host", f);
        if (r->proxy_path) fputs(", path of a-z A-Z 0-9 - . _ ~ /", f);
        fputs(")", f);
      }
      fputs(" | ", f);
      write_default(f, def);
      fprintf(f, " | %s | %s%s%s |\n",
              def->flags & SETTING_F_NO_ENV ? "—" : env,
              def->help,
              def->type == SETTING_SECRET ? " Stored encrypted; never returned." : "",
              def->flags & SETTING_F_OPERATION_ONLY
                  ? " Not changeable by PATCH (409): use `POST /api/v1/domain/change`."
                  : "");
    }
  }
}
