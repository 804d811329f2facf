/* atlas.xml: the server's configuration file (libxml2).
 *
 *   <Atlas>
 *     <Listen address="127.0.0.1" port="8080"/>
 *     <DataDirectory>/var/lib/atrium</DataDirectory>
 *     <Tls certificate="/etc/atrium/cert.pem" key="/etc/atrium/key.pem"/>
 *     <Domain>example.com</Domain>              (initial domain, first start only)
 *     <IMDeleteAfterDays>90</IMDeleteAfterDays>
 *     <JournalDeleteAfterDays>365</JournalDeleteAfterDays>
 *     <CABundle>/etc/atrium/ca.pem</CABundle>    (CAs trusted for outbound HTTPS)
 *     <Store backend="postgresql" conninfo="host=/run/postgresql dbname=atrium"/>
 *     <Limits connections="4096" perAddress="128" loopbackReserve="32" headerTimeout="20"/>
 *     <Node name="atrium-1" url="http://10.0.0.11:8080"/>
 *     <Federation address="0.0.0.0" port="5061" certificate="/etc/atrium/sip.pem"
 *                 key="/etc/atrium/sip.key" ca="/etc/atrium/sip-ca.pem"
 *                 resolver="127.0.0.1:53"/>
 *   </Atlas>
 *
 * <Limits> bounds the HTTP connections in progress (WebSockets, once
 * upgraded, are not counted: the real-time module has its own budget):
 * connections in all, perAddress from one client (IPv6 by /64; behind a
 * trusted proxy the proxy is the peer, see docs/operations.md), of which
 * loopbackReserve are kept for clients on 127.0.0.0/8 and ::1 only, and
 * headerTimeout seconds for the whole request head (not reset per byte).
 *
 * <Store> picks the store's backend, read at start: "sqlite" (the default:
 * atrium.db in the data directory, no conninfo) or "postgresql" (several
 * nodes on one database; conninfo, a libpq connection string, is required).
 * The connection string may hold a password: nothing prints it.
 *
 * <Node> names this node among several (default: the host name) and says
 * where the load balancer and the other nodes reach it (default: from
 * <Listen>). Both attributes are optional.
 *
 * Relative paths are relative to the directory of atlas.xml. Unknown elements
 * and attributes are errors (a typo must not silently do nothing), and so is
 * an element given twice. A DOCTYPE is refused: the file needs no entities, and
 * refusing them rules out external-entity and entity-expansion attacks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define ATLAS_DEFAULT_ADDRESS "127.0.0.1"
#define ATLAS_DEFAULT_PORT 8080
#define ATLAS_DEFAULT_DATA_DIR "/var/lib/atrium"
#define ATLAS_MAX_DAYS 36500
#define ATLAS_MAX_BYTES (1024 * 1024)
#define ATLAS_STORE_SQLITE "sqlite"
#define ATLAS_STORE_POSTGRESQL "postgresql"
#define ATLAS_DEFAULT_CONNECTIONS 4096
#define ATLAS_DEFAULT_PER_ADDRESS 128
#define ATLAS_DEFAULT_LOOPBACK_RESERVE 32
#define ATLAS_DEFAULT_HEADER_TIMEOUT 20
/* Successful logins a source, and an account, may make at once before the
 * login throttle's refill rate applies (see core/throttle.h). */
#define ATLAS_DEFAULT_LOGINS_PER_SOURCE 30
#define ATLAS_DEFAULT_LOGINS_PER_ACCOUNT 10
/* Failed logins from one source before each further one blocks it. */
#define ATLAS_DEFAULT_LOGIN_FAILURES_PER_SOURCE 5
#define ATLAS_DEFAULT_SIP_PORT 5061

typedef struct atlas_config {
  char path[4096];         /* the file this was read from (absolute) */
  char listen_address[64]; /* IPv4 or IPv6 literal; default 127.0.0.1 */
  int listen_port;         /* default 8080; 0 = any free port (tests) */
  char data_dir[4096];     /* absolute */
  char tls_cert[4096];     /* empty: plain HTTP */
  char tls_key[4096];
  char domain[254];        /* empty when not given */
  int im_delete_after_days;      /* -1 when not given */
  int journal_delete_after_days; /* -1 when not given */
  char ca_bundle[4096];  /* PEM file of the CAs outbound HTTPS trusts; empty: the system's */
  /* <TrustedProxies>127.0.0.1 ::1 10.0.0.0/8</TrustedProxies>: the reverse
   * proxies whose X-Forwarded-* headers are believed, as IP literals or CIDRs
   * separated by single spaces (canonical form, at most 32); empty: none. */
  char trusted_proxies[2048];
  /* <PrivacyDirectory install="..." custom="..."/>: the privacy policy
   * templates as shipped, and the operator's copies (which win); empty: the
   * built-in defaults (see privacy.h). */
  char privacy_install[4096];
  char privacy_custom[4096];
  char store_backend[16];    /* ATLAS_STORE_SQLITE (default) or ATLAS_STORE_POSTGRESQL */
  char store_conninfo[1024]; /* postgresql: the libpq connection string; empty for sqlite */
  int limit_connections;      /* <Limits connections>, ATLAS_DEFAULT_CONNECTIONS */
  int limit_per_address;      /* <Limits perAddress> */
  int limit_loopback_reserve; /* <Limits loopbackReserve> */
  int limit_header_timeout;   /* <Limits headerTimeout>, seconds */
  int limit_logins_per_source;  /* <Limits loginsPerSource> */
  int limit_logins_per_account; /* <Limits loginsPerAccount> */
  int limit_login_failures_per_source; /* <Limits loginFailuresPerSource> */
  char node_name[64];        /* <Node name>: letters, digits, ".", "-", "_"; empty: not given */
  char node_url[256];        /* <Node url>: http(s)://host:port; empty: not given */
  /* <Federation>: SIP over mutual TLS with other organisations. Without the
   * element nothing listens (federation.enabled then says why it cannot
   * work). certificate/key: PEM, the SAN covering federation.fqdn; ca: the
   * CAs whose certificates partners present; resolver: "IP:port" of the DNS
   * server asked for partners' SRV and A records (empty: /etc/resolv.conf). */
  bool sip_configured;
  char sip_address[64]; /* IPv4 or IPv6 literal; default 0.0.0.0 */
  int sip_port;         /* default ATLAS_DEFAULT_SIP_PORT */
  char sip_cert[4096];
  char sip_key[4096];
  char sip_ca[4096];
  char sip_resolver[128];
} atlas_config_t;

/* Reads and checks the file. On failure returns a negative code (-EINVAL for
 * content, -errno for I/O, -EFBIG above ATLAS_MAX_BYTES) and writes a sentence
 * into err naming the file, the line and what is wrong. *cfg is written only on
 * success. */
int atlas_load(const char *path, atlas_config_t *cfg, char *err, size_t errlen);

/* The same checks on a document in memory (tests, the fuzz target). Relative
 * paths are resolved against base_dir, which must then be an absolute path;
 * with base_dir NULL a relative path is an error. Error sentences name the file
 * "atlas.xml". *cfg is written only on success, so a failed re-read keeps the
 * configuration in use. cfg->path is left empty. */
int atlas_parse_memory(const char *buf, size_t len, const char *base_dir, atlas_config_t *cfg,
                       char *err, size_t errlen);

/* The larger of the two retention values, or -1 when neither is given. */
int atlas_retention_days(const atlas_config_t *cfg);

/* ---- values read while running -------------------------------------------------- */

/* The values of atlas.xml that take effect without a restart
 * (IMDeleteAfterDays, JournalDeleteAfterDays), read again when the file
 * changes. Thread-safe. */
typedef struct atlas_watch atlas_watch_t;

typedef struct atlas_live {
  bool ok; /* the file was read and is valid; otherwise err says why */
  int im_delete_after_days;      /* -1 when not given */
  int journal_delete_after_days; /* -1 when not given */
} atlas_live_t;

/* path is copied. NULL on out of memory. */
atlas_watch_t *atlas_watch_new(const char *path);
void atlas_watch_free(atlas_watch_t *w); /* accepts NULL */
const char *atlas_watch_path(const atlas_watch_t *w);
/* The values now. The file is parsed again only when its inode, size,
 * mtime or ctime changed; *changed (may be NULL) is true when this call read
 * it anew (the first call, or a change since): the moment to log, once per
 * change. */
void atlas_watch_get(atlas_watch_t *w, atlas_live_t *out, bool *changed, char *err,
                     size_t errlen);
