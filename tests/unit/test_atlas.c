/* atlas.xml parsing: a table of documents with what each must give, plus the
 * file-level cases (relative paths, the example file, XXE, stderr). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/atlas.h"
#include "fixture_dir.h"

#define BASE "/etc/atrium"

/* Expected values as text; NULL means "the default". */
typedef struct expect {
  const char *address;
  const char *port;
  const char *data_dir;
  const char *cert;
  const char *key;
  const char *domain;
  const char *im;
  const char *journal;
  const char *retention;
  const char *ca_bundle;
  const char *store_backend;
  const char *store_conninfo;
} expect_t;

typedef struct atlas_case {
  const char *name;
  const char *doc;
  const char *base_dir; /* BASE unless NO_BASE */
  bool no_base;
  int rc;                   /* 0 or the negative code */
  const char *err_has[3];   /* substrings of the message when rc != 0 */
  expect_t want;
} atlas_case_t;

#define HEAD "<?xml version=\"1.0\"?>\n"

static const atlas_case_t cases[] = {
    /* ---- good ---- */
    {.name = "empty root gives defaults", .doc = "<Atlas/>",
     .want = {.address = "127.0.0.1", .port = "8080", .data_dir = "/var/lib/atrium",
              .cert = "", .key = "", .domain = "", .im = "-1", .journal = "-1",
              .retention = "-1", .store_backend = "sqlite", .store_conninfo = ""}},
    {.name = "all fields",
     .doc = HEAD "<Atlas>\n"
            "  <!-- a comment -->\n"
            "  <Listen address=\"::1\" port=\"8443\"/>\n"
            "  <DataDirectory>/srv/atrium</DataDirectory>\n"
            "  <Tls certificate=\"/etc/ssl/a.pem\" key=\"/etc/ssl/a.key\"/>\n"
            "  <Domain>Example.COM</Domain>\n"
            "  <IMDeleteAfterDays>90</IMDeleteAfterDays>\n"
            "  <JournalDeleteAfterDays>365</JournalDeleteAfterDays>\n"
            "</Atlas>\n",
     .want = {.address = "::1", .port = "8443", .data_dir = "/srv/atrium",
              .cert = "/etc/ssl/a.pem", .key = "/etc/ssl/a.key", .domain = "Example.COM",
              .im = "90", .journal = "365", .retention = "365"}},
    {.name = "relative data dir and TLS paths resolve against the base",
     .doc = "<Atlas><DataDirectory>data</DataDirectory>"
            "<Tls certificate=\"tls/cert.pem\" key=\"./tls/key.pem\"/></Atlas>",
     .want = {.data_dir = BASE "/data", .cert = BASE "/tls/cert.pem",
              .key = BASE "/tls/key.pem"}},
    {.name = "CABundle relative path resolves against the base",
     .doc = "<Atlas><CABundle> tls/ca.pem </CABundle></Atlas>",
     .want = {.ca_bundle = BASE "/tls/ca.pem"}},
    {.name = "CABundle absolute", .doc = "<Atlas><CABundle>/etc/ssl/corp-ca.pem</CABundle></Atlas>",
     .want = {.ca_bundle = "/etc/ssl/corp-ca.pem"}},
    {.name = "CABundle absent means the system's CAs", .doc = "<Atlas/>", .want = {.ca_bundle = ""}},
    {.name = "CABundle empty", .doc = "<Atlas><CABundle/></Atlas>", .rc = -EINVAL,
     .err_has = {"<CABundle> is empty"}},
    {.name = "CABundle twice",
     .doc = "<Atlas><CABundle>/a.pem</CABundle>\n<CABundle>/b.pem</CABundle></Atlas>",
     .rc = -EINVAL, .err_has = {"<CABundle> is given twice"}},
    {.name = "CABundle with an attribute", .doc = "<Atlas><CABundle file=\"/a\"/></Atlas>",
     .rc = -EINVAL, .err_has = {"<CABundle> takes no attributes"}},
    {.name = "data dir '.' is the base dir", .doc = "<Atlas><DataDirectory>.</DataDirectory></Atlas>",
     .want = {.data_dir = BASE}},
    {.name = "trailing slash dropped, surrounding blanks trimmed",
     .doc = "<Atlas><DataDirectory>\n   /srv/x/  \n</DataDirectory></Atlas>",
     .want = {.data_dir = "/srv/x"}},
    {.name = "relative path under root base dir", .base_dir = "/",
     .doc = "<Atlas><DataDirectory>d</DataDirectory></Atlas>", .want = {.data_dir = "/d"}},
    {.name = "port 0 and 65535 bounds", .doc = "<Atlas><Listen port=\"0\"/></Atlas>",
     .want = {.port = "0"}},
    {.name = "port 65535", .doc = "<Atlas><Listen address=\"0.0.0.0\" port=\"65535\"/></Atlas>",
     .want = {.address = "0.0.0.0", .port = "65535"}},
    {.name = "only address", .doc = "<Atlas><Listen address=\"10.1.2.3\"/></Atlas>",
     .want = {.address = "10.1.2.3", .port = "8080"}},
    {.name = "days 0 and max", .doc = "<Atlas><IMDeleteAfterDays>0</IMDeleteAfterDays>"
                                      "<JournalDeleteAfterDays>36500</JournalDeleteAfterDays></Atlas>",
     .want = {.im = "0", .journal = "36500", .retention = "36500"}},
    {.name = "only IM days", .doc = "<Atlas><IMDeleteAfterDays> 30 </IMDeleteAfterDays></Atlas>",
     .want = {.im = "30", .journal = "-1", .retention = "30"}},
    {.name = "TLS with neither attribute is plain HTTP", .doc = "<Atlas><Tls/></Atlas>",
     .want = {.cert = "", .key = ""}},
    {.name = "CDATA value", .doc = "<Atlas><Domain><![CDATA[example.org]]></Domain></Atlas>",
     .want = {.domain = "example.org"}},
    {.name = "predefined entity in value",
     .doc = "<Atlas><DataDirectory>/srv/a&amp;b</DataDirectory></Atlas>",
     .want = {.data_dir = "/srv/a&b"}},
    {.name = "store sqlite", .doc = "<Atlas><Store backend=\"sqlite\"/></Atlas>",
     .want = {.store_backend = "sqlite", .store_conninfo = ""}},
    {.name = "store postgresql",
     .doc = "<Atlas>\n  <Store backend=\"postgresql\" conninfo=\"host=/tmp/x dbname=atrium\">\n"
            "  </Store>\n</Atlas>",
     .want = {.store_backend = "postgresql", .store_conninfo = "host=/tmp/x dbname=atrium",
              .data_dir = "/var/lib/atrium"}},
    {.name = "store conninfo kept as written, entities decoded",
     .doc = "<Atlas><Store backend=\"postgresql\" conninfo=\"host=db.example.com "
            "password='s&amp;cret' sslmode=verify-full\"/></Atlas>",
     .want = {.store_backend = "postgresql",
              .store_conninfo = "host=db.example.com password='s&cret' sslmode=verify-full"}},

    /* ---- bad ---- */
    {.name = "store without backend", .doc = "<Atlas><Store/></Atlas>", .rc = -EINVAL,
     .err_has = {"<Store> needs backend=\"sqlite\" or backend=\"postgresql\""}},
    {.name = "store unknown backend", .doc = "<Atlas>\n<Store backend=\"mysql\"/></Atlas>",
     .rc = -EINVAL,
     .err_has = {"line 2", "<Store backend=\"mysql\">: the backend must be \"sqlite\"",
                 "or \"postgresql\""}},
    {.name = "store backend is case-sensitive",
     .doc = "<Atlas><Store backend=\"PostgreSQL\" conninfo=\"dbname=a\"/></Atlas>",
     .rc = -EINVAL, .err_has = {"<Store backend=\"PostgreSQL\">: the backend must be"}},
    {.name = "store postgresql without conninfo",
     .doc = "<Atlas><Store backend=\"postgresql\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"<Store backend=\"postgresql\"> needs conninfo", "host=/run/postgresql"}},
    {.name = "store postgresql with a blank conninfo",
     .doc = "<Atlas><Store backend=\"postgresql\" conninfo=\"  \"/></Atlas>", .rc = -EINVAL,
     .err_has = {"needs conninfo"}},
    {.name = "store sqlite with conninfo",
     .doc = "<Atlas><Store backend=\"sqlite\" conninfo=\"dbname=a\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"<Store backend=\"sqlite\"> takes no conninfo", "<DataDirectory>"}},
    {.name = "store unknown attribute",
     .doc = "<Atlas><Store backend=\"postgresql\" conninfo=\"dbname=a\" pool=\"8\"/></Atlas>",
     .rc = -EINVAL,
     .err_has = {"unknown attribute \"pool\" on <Store>", "known attributes are backend, conninfo"}},
    {.name = "store with content",
     .doc = "<Atlas><Store backend=\"sqlite\">atrium.db</Store></Atlas>", .rc = -EINVAL,
     .err_has = {"<Store> takes attributes only"}},
    {.name = "store twice",
     .doc = "<Atlas><Store backend=\"sqlite\"/>\n<Store backend=\"sqlite\"/></Atlas>",
     .rc = -EINVAL, .err_has = {"<Store> is given twice"}},
    {.name = "unknown element names itself and the line",
     .doc = "<Atlas>\n  <Listen/>\n  <Foo>1</Foo>\n</Atlas>", .rc = -EINVAL,
     .err_has = {"atlas.xml line 3:", "unknown element <Foo>",
                 "known elements are <Listen>, <DataDirectory>, <Tls>"}},
    {.name = "element name is case-sensitive", .doc = "<Atlas><listen/></Atlas>", .rc = -EINVAL,
     .err_has = {"unknown element <listen>"}},
    {.name = "namespaced element is unknown",
     .doc = "<Atlas xmlns:x=\"urn:x\"><x:Listen/></Atlas>", .rc = -EINVAL,
     .err_has = {"unknown element <x:Listen>"}},
    {.name = "duplicate element",
     .doc = "<Atlas>\n<Listen port=\"1\"/>\n<Listen port=\"2\"/>\n</Atlas>", .rc = -EINVAL,
     .err_has = {"line 3", "<Listen> is given twice (first on line 2)"}},
    {.name = "duplicate text element",
     .doc = "<Atlas><Domain>a.b</Domain><Domain>a.b</Domain></Atlas>", .rc = -EINVAL,
     .err_has = {"<Domain> is given twice"}},
    {.name = "unknown attribute", .doc = "<Atlas><Listen adress=\"1.2.3.4\"/></Atlas>",
     .rc = -EINVAL, .err_has = {"unknown attribute \"adress\" on <Listen>",
                                "known attributes are address, port"}},
    {.name = "attribute on a text element",
     .doc = "<Atlas><Domain lang=\"en\">a.b</Domain></Atlas>", .rc = -EINVAL,
     .err_has = {"unknown attribute \"lang\" on <Domain>"}},
    {.name = "attribute on root", .doc = "<Atlas version=\"2\"/>", .rc = -EINVAL,
     .err_has = {"unknown attribute \"version\" on <Atlas>"}},
    {.name = "port -1", .doc = "<Atlas><Listen port=\"-1\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"port=\"-1\"", "from 0 to 65535"}},
    {.name = "port 70000", .doc = "<Atlas><Listen port=\"70000\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"port=\"70000\""}},
    {.name = "port 80x", .doc = "<Atlas><Listen port=\"80x\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"port=\"80x\""}},
    {.name = "port empty", .doc = "<Atlas><Listen port=\"\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"port=\"\""}},
    {.name = "port with blank", .doc = "<Atlas><Listen port=\" 80\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"from 0 to 65535"}},
    {.name = "port plus sign", .doc = "<Atlas><Listen port=\"+80\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"from 0 to 65535"}},
    {.name = "port hex", .doc = "<Atlas><Listen port=\"0x50\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"from 0 to 65535"}},
    {.name = "port huge", .doc = "<Atlas><Listen port=\"99999999999999999999999\"/></Atlas>",
     .rc = -EINVAL, .err_has = {"from 0 to 65535"}},
    {.name = "address host name", .doc = "<Atlas><Listen address=\"localhost\"/></Atlas>",
     .rc = -EINVAL, .err_has = {"address=\"localhost\"", "IPv4 or IPv6 literal"}},
    {.name = "address bracketed", .doc = "<Atlas><Listen address=\"[::1]\"/></Atlas>",
     .rc = -EINVAL, .err_has = {"IPv4 or IPv6 literal"}},
    {.name = "address out of range", .doc = "<Atlas><Listen address=\"256.1.1.1\"/></Atlas>",
     .rc = -EINVAL, .err_has = {"IPv4 or IPv6 literal"}},
    {.name = "address empty", .doc = "<Atlas><Listen address=\"\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"IPv4 or IPv6 literal"}},
    {.name = "content in Listen", .doc = "<Atlas><Listen>8080</Listen></Atlas>", .rc = -EINVAL,
     .err_has = {"<Listen> takes attributes only"}},
    {.name = "TLS with only certificate",
     .doc = "<Atlas><Tls certificate=\"/a.pem\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"<Tls> needs both certificate and key (only certificate is given)"}},
    {.name = "TLS with only key", .doc = "<Atlas><Tls key=\"/a.key\"/></Atlas>", .rc = -EINVAL,
     .err_has = {"only key is given"}},
    {.name = "TLS empty certificate", .doc = "<Atlas><Tls certificate=\"\" key=\"/k\"/></Atlas>",
     .rc = -EINVAL, .err_has = {"<Tls certificate> is empty"}},
    {.name = "negative IM days", .doc = "<Atlas><IMDeleteAfterDays>-1</IMDeleteAfterDays></Atlas>",
     .rc = -EINVAL, .err_has = {"<IMDeleteAfterDays> must be a whole number of days from 0 to 36500",
                                "\"-1\""}},
    {.name = "negative journal days",
     .doc = "<Atlas><JournalDeleteAfterDays>-5</JournalDeleteAfterDays></Atlas>", .rc = -EINVAL,
     .err_has = {"<JournalDeleteAfterDays> must be a whole number"}},
    {.name = "days too large",
     .doc = "<Atlas><JournalDeleteAfterDays>36501</JournalDeleteAfterDays></Atlas>",
     .rc = -EINVAL, .err_has = {"from 0 to 36500"}},
    {.name = "days not a number",
     .doc = "<Atlas><IMDeleteAfterDays>ninety</IMDeleteAfterDays></Atlas>", .rc = -EINVAL,
     .err_has = {"\"ninety\""}},
    {.name = "days fraction", .doc = "<Atlas><IMDeleteAfterDays>1.5</IMDeleteAfterDays></Atlas>",
     .rc = -EINVAL, .err_has = {"whole number"}},
    {.name = "empty text element", .doc = "<Atlas><DataDirectory>  </DataDirectory></Atlas>",
     .rc = -EINVAL, .err_has = {"<DataDirectory> is empty"}},
    {.name = "element inside a value",
     .doc = "<Atlas><Domain><b>x</b></Domain></Atlas>", .rc = -EINVAL,
     .err_has = {"<Domain> holds a value, not elements"}},
    {.name = "domain too long",
     .doc = "<Atlas><Domain>"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"
            "</Domain></Atlas>",
     .rc = -EINVAL, .err_has = {"<Domain> is longer than 253 characters"}},
    {.name = "text directly in root", .doc = "<Atlas>hello</Atlas>", .rc = -EINVAL,
     .err_has = {"text directly inside <Atlas>"}},
    {.name = "relative path without a base", .no_base = true,
     .doc = "<Atlas><DataDirectory>data</DataDirectory></Atlas>", .rc = -EINVAL,
     .err_has = {"relative path", "give an absolute path"}},
    {.name = "not XML", .doc = "listen=127.0.0.1\n", .rc = -EINVAL,
     .err_has = {"atlas.xml line 1: not well-formed XML"}},
    {.name = "empty document", .doc = "", .rc = -EINVAL, .err_has = {"not well-formed XML"}},
    {.name = "unclosed element", .doc = "<Atlas>\n<Listen>\n</Atlas>", .rc = -EINVAL,
     .err_has = {"not well-formed XML"}},
    {.name = "wrong root", .doc = "<Config><Listen/></Config>", .rc = -EINVAL,
     .err_has = {"the root element must be <Atlas>", "not <Config>"}},
    {.name = "namespaced root", .doc = "<Atlas xmlns=\"urn:atlas\"/>", .rc = -EINVAL,
     .err_has = {"the root element must be <Atlas> without a namespace"}},
    {.name = "XXE: external entity is refused, nothing read",
     .doc = "<?xml version=\"1.0\"?>\n"
            "<!DOCTYPE Atlas [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n"
            "<Atlas><Domain>&x;</Domain></Atlas>",
     .rc = -EINVAL, .err_has = {"line 2: a DOCTYPE is not allowed"}},
    {.name = "XXE: parameter entity is refused",
     .doc = "<!DOCTYPE Atlas [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]><Atlas/>",
     .rc = -EINVAL, .err_has = {"a DOCTYPE is not allowed"}},
    {.name = "external DTD is refused", .doc = "<!DOCTYPE Atlas SYSTEM \"http://127.0.0.1:1/x.dtd\"><Atlas/>",
     .rc = -EINVAL, .err_has = {"a DOCTYPE is not allowed"}},
    {.name = "billion laughs is refused before expansion",
     .doc = "<!DOCTYPE Atlas [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">"
            "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;\">]>"
            "<Atlas><Domain>&d;</Domain></Atlas>",
     .rc = -EINVAL, .err_has = {"a DOCTYPE is not allowed"}},
    {.name = "undeclared entity", .doc = "<Atlas><Domain>&nope;</Domain></Atlas>", .rc = -EINVAL,
     .err_has = {"not well-formed XML"}},
};

static int failures;

static void expect_str(const char *case_name, const char *field, const char *want,
                       const char *got) {
  if (!want || strcmp(want, got) == 0) return;
  print_error("%s: %s is \"%s\", want \"%s\"\n", case_name, field, got, want);
  failures++;
}

static void expect_int(const char *case_name, const char *field, const char *want, int got) {
  if (!want) return;
  char buf[32];
  snprintf(buf, sizeof buf, "%d", got);
  expect_str(case_name, field, want, buf);
}

static void test_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const atlas_case_t *c = &cases[i];
    atlas_config_t cfg;
    memset(&cfg, 0x5a, sizeof cfg);
    cfg.path[0] = '\0';
    char err[512] = "untouched";
    const char *base = c->no_base ? NULL : c->base_dir ? c->base_dir : BASE;
    int rc = atlas_parse_memory(c->doc, strlen(c->doc), base, &cfg, err, sizeof err);
    if (rc != c->rc) {
      print_error("%s: rc %d, want %d (%s)\n", c->name, rc, c->rc, err);
      failures++;
      continue;
    }
    if (rc != 0) {
      for (size_t k = 0; k < 3 && c->err_has[k]; k++) {
        if (strstr(err, c->err_has[k])) continue;
        print_error("%s: message \"%s\" lacks \"%s\"\n", c->name, err, c->err_has[k]);
        failures++;
      }
      /* A failed parse must leave the caller's configuration alone. */
      if (cfg.listen_port != 0x5a5a5a5a) {
        print_error("%s: the configuration was changed by a failed parse\n", c->name);
        failures++;
      }
      continue;
    }
    expect_str(c->name, "address", c->want.address, cfg.listen_address);
    expect_int(c->name, "port", c->want.port, cfg.listen_port);
    expect_str(c->name, "data_dir", c->want.data_dir, cfg.data_dir);
    expect_str(c->name, "cert", c->want.cert, cfg.tls_cert);
    expect_str(c->name, "key", c->want.key, cfg.tls_key);
    expect_str(c->name, "domain", c->want.domain, cfg.domain);
    expect_int(c->name, "im", c->want.im, cfg.im_delete_after_days);
    expect_int(c->name, "journal", c->want.journal, cfg.journal_delete_after_days);
    expect_int(c->name, "retention", c->want.retention, atlas_retention_days(&cfg));
    expect_str(c->name, "ca_bundle", c->want.ca_bundle, cfg.ca_bundle);
    expect_str(c->name, "store_backend", c->want.store_backend, cfg.store_backend);
    expect_str(c->name, "store_conninfo", c->want.store_conninfo, cfg.store_conninfo);
  }
  assert_int_equal(failures, 0);
}

/* conninfo may hold a password: no sentence about <Store> repeats it. */
static void test_store_conninfo_secret(void **state) {
  (void)state;
  static char doc[4096];
  atlas_config_t *cfg = malloc(sizeof *cfg);
  assert_non_null(cfg);
  char err[512];
  int n = snprintf(doc, sizeof doc,
                   "<Atlas><Store backend=\"postgresql\" conninfo=\"password=hunter2 host=");
  for (int i = 0; i < 1100; i++) doc[n++] = 'h';
  snprintf(doc + n, sizeof doc - (size_t)n, "\"/></Atlas>");
  assert_int_equal(atlas_parse_memory(doc, strlen(doc), BASE, cfg, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "<Store conninfo> is longer than 1023 characters"));
  assert_null(strstr(err, "hunter2"));

  const char *bad[] = {
      "<Atlas><Store backend=\"sqlite\" conninfo=\"password=hunter2\"/></Atlas>",
      "<Atlas><Store backend=\"pg\" conninfo=\"password=hunter2\"/></Atlas>",
      "<Atlas><Store conninfo=\"password=hunter2\"/></Atlas>",
      "<Atlas><Store backend=\"postgresql\" conninfo=\"password=hunter2\" x=\"1\"/></Atlas>",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    assert_int_equal(atlas_parse_memory(bad[i], strlen(bad[i]), BASE, cfg, err, sizeof err),
                     -EINVAL);
    assert_true(err[0] != '\0');
    assert_null(strstr(err, "hunter2"));
  }

  /* Exactly the longest that fits. */
  n = snprintf(doc, sizeof doc, "<Atlas><Store backend=\"postgresql\" conninfo=\"");
  for (int i = 0; i < 1023; i++) doc[n++] = 'x';
  snprintf(doc + n, sizeof doc - (size_t)n, "\"/></Atlas>");
  assert_int_equal(atlas_parse_memory(doc, strlen(doc), BASE, cfg, err, sizeof err), 0);
  assert_int_equal(strlen(cfg->store_conninfo), 1023);
  free(cfg);
}

static void test_retention_days(void **state) {
  (void)state;
  atlas_config_t cfg = {.im_delete_after_days = -1, .journal_delete_after_days = -1};
  assert_int_equal(atlas_retention_days(&cfg), -1);
  cfg.im_delete_after_days = 400;
  assert_int_equal(atlas_retention_days(&cfg), 400);
  cfg.journal_delete_after_days = 365;
  assert_int_equal(atlas_retention_days(&cfg), 400);
  cfg.journal_delete_after_days = 401;
  assert_int_equal(atlas_retention_days(&cfg), 401);
  cfg.im_delete_after_days = -1;
  cfg.journal_delete_after_days = 0;
  assert_int_equal(atlas_retention_days(&cfg), 0);
  assert_int_equal(atlas_retention_days(NULL), -1);
}

/* ---- files ------------------------------------------------------------------ */

static char tmpdir[1024]; /* short, so that paths built on it fit */

static int setup_dir(void **state) {
  (void)state;
  if (fixture_mkdtemp(tmpdir, sizeof tmpdir, "atlas") < 0) return -1;
  /* Compare against the real path: /tmp may be a symlink. */
  char real[PATH_MAX];
  if (!realpath(tmpdir, real)) return -1;
  if (strlen(real) >= sizeof tmpdir) return -1;
  memcpy(tmpdir, real, strlen(real) + 1);
  return 0;
}

static int teardown_dir(void **state) {
  (void)state;
  return fixture_rmtree(tmpdir);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

static void test_load_relative(void **state) {
  (void)state;
  char sub[PATH_MAX], path[PATH_MAX + 16], want[PATH_MAX + 16];
  snprintf(sub, sizeof sub, "%s/conf", tmpdir);
  assert_int_equal(mkdir(sub, 0700), 0);
  snprintf(path, sizeof path, "%s/atlas.xml", sub);
  write_file(path, "<Atlas>\n  <DataDirectory>data</DataDirectory>\n</Atlas>\n");

  /* Load through a relative, non-canonical spelling: the result must not
   * depend on the cwd. */
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(tmpdir), 0);
  atlas_config_t cfg;
  char err[512];
  int rc = atlas_load("./conf/../conf/atlas.xml", &cfg, err, sizeof err);
  assert_int_equal(chdir(cwd), 0);
  if (rc != 0) fail_msg("load: %d %s", rc, err);
  snprintf(want, sizeof want, "%s/data", sub);
  assert_string_equal(cfg.data_dir, want);
  assert_string_equal(cfg.path, path);
  assert_string_equal(cfg.listen_address, "127.0.0.1");
  assert_int_equal(cfg.listen_port, 8080);
}

static void test_load_errors(void **state) {
  (void)state;
  char path[PATH_MAX + 16];
  atlas_config_t cfg;
  char err[512];

  snprintf(path, sizeof path, "%s/missing.xml", tmpdir);
  assert_int_equal(atlas_load(path, &cfg, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, path));

  assert_int_equal(atlas_load(tmpdir, &cfg, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "not a regular file"));

  /* Messages name the file as given, with the line. */
  snprintf(path, sizeof path, "%s/bad.xml", tmpdir);
  write_file(path, "<Atlas>\n\n  <Bogus/>\n</Atlas>\n");
  assert_int_equal(atlas_load(path, &cfg, err, sizeof err), -EINVAL);
  char want[PATH_MAX + 64];
  snprintf(want, sizeof want, "%s line 3: unknown element <Bogus>", path);
  assert_non_null(strstr(err, want));

  /* Too large to be a configuration file. */
  snprintf(path, sizeof path, "%s/big.xml", tmpdir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("<Atlas>", f);
  for (int i = 0; i < ATLAS_MAX_BYTES / 16 + 1; i++) fputs("<!-- 0123456 -->", f);
  fputs("</Atlas>", f);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(atlas_load(path, &cfg, err, sizeof err), -EFBIG);

  assert_int_equal(atlas_load(NULL, &cfg, err, sizeof err), -EINVAL);
  assert_int_equal(atlas_load("", &cfg, NULL, 0), -EINVAL);
}

/* An external entity pointing at a real file: the file's content must appear
 * nowhere, whatever else happens. */
static void test_xxe_reads_nothing(void **state) {
  (void)state;
  char secret[PATH_MAX + 16], path[PATH_MAX + 16], doc[2 * PATH_MAX];
  snprintf(secret, sizeof secret, "%s/secret.txt", tmpdir);
  write_file(secret, "TOPSECRET-7f3a");
  snprintf(path, sizeof path, "%s/xxe.xml", tmpdir);
  snprintf(doc, sizeof doc,
           "<?xml version=\"1.0\"?>\n<!DOCTYPE Atlas [<!ENTITY x SYSTEM \"file://%s\">]>\n"
           "<Atlas><Domain>&x;</Domain><DataDirectory>&x;</DataDirectory></Atlas>\n",
           secret);
  write_file(path, doc);

  atlas_config_t cfg;
  memset(&cfg, 0, sizeof cfg);
  char err[1024];
  assert_int_equal(atlas_load(path, &cfg, err, sizeof err), -EINVAL);
  assert_null(strstr(err, "TOPSECRET"));
  assert_null(strstr(cfg.domain, "TOPSECRET"));
  assert_int_equal(atlas_parse_memory(doc, strlen(doc), tmpdir, &cfg, err, sizeof err), -EINVAL);
  assert_null(strstr(err, "TOPSECRET"));
  assert_null(strstr(cfg.domain, "TOPSECRET"));
}

/* libxml2 must not write to stderr: the daemon's log is the only voice. */
static void test_silent(void **state) {
  (void)state;
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/stderr.txt", tmpdir);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  assert_true(fd >= 0);
  assert_int_equal(dup2(fd, 2), 2);
  close(fd);

  static const char *const docs[] = {
      "<Atlas><Listen></Atlas>", "<<<", "<!DOCTYPE Atlas [<!ENTITY x SYSTEM \"/etc/passwd\">]><Atlas/>",
      "<Atlas>&undefined;</Atlas>", "<?xml version=\"9\" encoding=\"nope\"?><Atlas/>",
  };
  atlas_config_t cfg;
  char err[512];
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
    assert_int_equal(atlas_parse_memory(docs[i], strlen(docs[i]), NULL, &cfg, err, sizeof err),
                     -EINVAL);

  fflush(stderr);
  assert_int_equal(dup2(saved, 2), 2);
  close(saved);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 0);
}

/* The shipped example must load, and `make run`'s sed must turn it into a
 * configuration with a data directory beside it. Found by walking up from
 * the cwd (build directories live inside the checkout). */
static void test_example_file(void **state) {
  (void)state;
  char dir[PATH_MAX], path[PATH_MAX + 32];
  assert_non_null(getcwd(dir, sizeof dir));
  bool found = false;
  for (int up = 0; up < 6 && !found; up++) {
    snprintf(path, sizeof path, "%s/atlas.xml.example", dir);
    if (access(path, R_OK) == 0) {
      found = true;
      break;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) break;
    *slash = '\0';
  }
  if (!found) skip();

  atlas_config_t cfg;
  char err[512];
  if (atlas_load(path, &cfg, err, sizeof err) != 0) fail_msg("%s", err);
  assert_string_equal(cfg.listen_address, "127.0.0.1");
  assert_int_equal(cfg.listen_port, 8080);
  assert_string_equal(cfg.data_dir, "/var/lib/atrium");
  assert_string_equal(cfg.tls_cert, "");
  assert_string_equal(cfg.domain, "");
  assert_int_equal(cfg.im_delete_after_days, 90);
  assert_int_equal(cfg.journal_delete_after_days, 365);
  assert_int_equal(atlas_retention_days(&cfg), 365);

  char out[PATH_MAX + 32], cmd[3 * PATH_MAX];
  snprintf(out, sizeof out, "%s/run-atlas.xml", tmpdir);
  snprintf(cmd, sizeof cmd,
           "sed -e 's|<DataDirectory>.*</DataDirectory>|<DataDirectory>data</DataDirectory>|' "
           "'%s' > '%s'", path, out);
  assert_int_equal(system(cmd), 0);
  if (atlas_load(out, &cfg, err, sizeof err) != 0) fail_msg("%s", err);
  char want[PATH_MAX + 16];
  snprintf(want, sizeof want, "%s/data", tmpdir);
  assert_string_equal(cfg.data_dir, want);
}

/* Issue 6: <TrustedProxies> and <PrivacyDirectory>. */
static void test_node(void **state) {
  (void)state;
  atlas_config_t *cfg = malloc(sizeof *cfg);
  assert_non_null(cfg);
  char err[512];
  const char *ok = "<Atlas><Node name=\"atrium-1\" url=\"http://10.0.0.11:8080\"/></Atlas>";
  assert_int_equal(atlas_parse_memory(ok, strlen(ok), BASE, cfg, err, sizeof err), 0);
  assert_string_equal(cfg->node_name, "atrium-1");
  assert_string_equal(cfg->node_url, "http://10.0.0.11:8080");
  const char *none = "<Atlas/>";
  assert_int_equal(atlas_parse_memory(none, strlen(none), BASE, cfg, err, sizeof err), 0);
  assert_string_equal(cfg->node_name, "");
  const struct {
    const char *doc, *says;
  } bad[] = {
      {"<Atlas><Node name=\"a b\"/></Atlas>", "a node name is 1 to 63"},
      {"<Atlas><Node name=\"\"/></Atlas>", "a node name is 1 to 63"},
      {"<Atlas><Node url=\"ftp://x\"/></Atlas>", "<Node url=\"ftp://x\">"},
      {"<Atlas><Node url=\"http://\"/></Atlas>", "http or https, a host"},
      {"<Atlas><Node nom=\"a\"/></Atlas>", "nom"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    assert_int_equal(atlas_parse_memory(bad[i].doc, strlen(bad[i].doc), BASE, cfg, err, sizeof err),
                     -EINVAL);
    if (!strstr(err, bad[i].says)) fprintf(stderr, "%s: %s\n", bad[i].doc, err);
    assert_non_null(strstr(err, bad[i].says));
  }
  free(cfg);
}

static void test_trusted_and_privacy(void **state) {
  (void)state;
  static const struct {
    const char *doc;
    int rc;
    const char *trusted, *install, *custom, *err_has;
  } issue6[] = {
      {"<Atlas/>", 0, "", "", "", NULL},
      {"<Atlas><TrustedProxies> 127.0.0.1\n ::1  10.0.0.0/8 FD00:0::/8 </TrustedProxies></Atlas>",
       0, "127.0.0.1 ::1 10.0.0.0/8 fd00::/8", "", "", NULL},
      {"<Atlas><TrustedProxies>proxy.example.com</TrustedProxies></Atlas>", -EINVAL, NULL, NULL,
       NULL, "not an IPv4 or IPv6 address"},
      {"<Atlas><TrustedProxies>10.0.0.1/8</TrustedProxies></Atlas>", -EINVAL, NULL, NULL, NULL,
       "beyond the /8 prefix"},
      {"<Atlas><TrustedProxies>10.0.0.0/33</TrustedProxies></Atlas>", -EINVAL, NULL, NULL, NULL,
       "from 0 to 32"},
      {"<Atlas><TrustedProxies/></Atlas>", -EINVAL, NULL, NULL, NULL, "is empty"},
      {"<Atlas><PrivacyDirectory install=\"share/privacy\" custom=\"/srv/privacy/\"/></Atlas>", 0,
       "", BASE "/share/privacy", "/srv/privacy", NULL},
      {"<Atlas><PrivacyDirectory custom=\"privacy\"/></Atlas>", 0, "", "", BASE "/privacy", NULL},
      {"<Atlas><PrivacyDirectory/></Atlas>", -EINVAL, NULL, NULL, NULL, "needs install="},
      {"<Atlas><PrivacyDirectory dir=\"x\"/></Atlas>", -EINVAL, NULL, NULL, NULL,
       "unknown attribute"},
      {"<Atlas><PrivacyDirectory install=\"\"/></Atlas>", -EINVAL, NULL, NULL, NULL, "is empty"},
  };
  for (size_t i = 0; i < sizeof issue6 / sizeof issue6[0]; i++) {
    atlas_config_t cfg;
    char err[512] = "";
    int rc = atlas_parse_memory(issue6[i].doc, strlen(issue6[i].doc), BASE, &cfg, err, sizeof err);
    if (rc != issue6[i].rc) fail_msg("%s: rc %d (%s)", issue6[i].doc, rc, err);
    if (rc != 0) {
      if (!strstr(err, issue6[i].err_has)) fail_msg("%s: message \"%s\"", issue6[i].doc, err);
      continue;
    }
    assert_string_equal(cfg.trusted_proxies, issue6[i].trusted);
    assert_string_equal(cfg.privacy_install, issue6[i].install);
    assert_string_equal(cfg.privacy_custom, issue6[i].custom);
  }
}

/* <Limits>: defaults, each attribute, and the bounds. */
static void test_limits(void **state) {
  (void)state;
  static const struct {
    const char *doc;
    int rc;
    int conns, per, reserve, head;
    const char *err_has;
  } limit_cases[] = {
      {"<Atlas/>", 0, ATLAS_DEFAULT_CONNECTIONS, ATLAS_DEFAULT_PER_ADDRESS,
       ATLAS_DEFAULT_LOOPBACK_RESERVE, ATLAS_DEFAULT_HEADER_TIMEOUT, NULL},
      {"<Atlas><Limits connections=\"100\" perAddress=\"10\" loopbackReserve=\"0\" "
       "headerTimeout=\"5\"/></Atlas>", 0, 100, 10, 0, 5, NULL},
      {"<Atlas><Limits perAddress=\"7\"/></Atlas>", 0, ATLAS_DEFAULT_CONNECTIONS, 7,
       ATLAS_DEFAULT_LOOPBACK_RESERVE, ATLAS_DEFAULT_HEADER_TIMEOUT, NULL},
      {"<Atlas><Limits connections=\"15\"/></Atlas>", -EINVAL, 0, 0, 0, 0, "from 16"},
      {"<Atlas><Limits perAddress=\"0\"/></Atlas>", -EINVAL, 0, 0, 0, 0, "perAddress=\"0\""},
      {"<Atlas><Limits headerTimeout=\"3601\"/></Atlas>", -EINVAL, 0, 0, 0, 0, "1 to 3600"},
      {"<Atlas><Limits headerTimeout=\"-1\"/></Atlas>", -EINVAL, 0, 0, 0, 0, "headerTimeout"},
      {"<Atlas><Limits connections=\"64\" loopbackReserve=\"64\"/></Atlas>", -EINVAL, 0, 0, 0,
       0, "must be smaller"},
      {"<Atlas><Limits perIp=\"3\"/></Atlas>", -EINVAL, 0, 0, 0, 0, "unknown attribute"},
      {"<Atlas><Limits>5</Limits></Atlas>", -EINVAL, 0, 0, 0, 0, "Limits"},
  };
  for (size_t i = 0; i < sizeof limit_cases / sizeof limit_cases[0]; i++) {
    atlas_config_t cfg;
    char err[512] = "";
    int rc = atlas_parse_memory(limit_cases[i].doc, strlen(limit_cases[i].doc), BASE, &cfg, err, sizeof err);
    if (rc != limit_cases[i].rc) fail_msg("%s: rc %d (%s)", limit_cases[i].doc, rc, err);
    if (rc != 0) {
      if (!strstr(err, limit_cases[i].err_has)) fail_msg("%s: message \"%s\"", limit_cases[i].doc, err);
      continue;
    }
    assert_int_equal(cfg.limit_connections, limit_cases[i].conns);
    assert_int_equal(cfg.limit_per_address, limit_cases[i].per);
    assert_int_equal(cfg.limit_loopback_reserve, limit_cases[i].reserve);
    assert_int_equal(cfg.limit_header_timeout, limit_cases[i].head);
  }
}

/* <Federation>: the SIP listener, its TLS files and the resolver. */
static void test_federation(void **state) {
  (void)state;
  static const struct {
    const char *doc;
    int rc;
    const char *err_has;
  } fed_cases[] = {
      {"<Atlas><Federation certificate=\"c.pem\" key=\"k.pem\" ca=\"ca.pem\"/></Atlas>", 0,
       NULL},
      {"<Atlas><Federation address=\"::\" port=\"5062\" certificate=\"c\" key=\"k\" "
       "ca=\"a\" resolver=\"127.0.0.1:5353\"/></Atlas>",
       0, NULL},
      {"<Atlas><Federation certificate=\"c\" key=\"k\"/></Atlas>", -EINVAL, "needs certificate"},
      {"<Atlas><Federation address=\"sip.example.com\" certificate=\"c\" key=\"k\" "
       "ca=\"a\"/></Atlas>",
       -EINVAL, "literal"},
      {"<Atlas><Federation port=\"0\" certificate=\"c\" key=\"k\" ca=\"a\"/></Atlas>",
       -EINVAL, "from 1 to 65535"},
      {"<Atlas><Federation resolver=\"[::1]:53\" certificate=\"c\" key=\"k\" "
       "ca=\"a\"/></Atlas>",
       -EINVAL, "IPv4"},
      {"<Atlas><Federation resolver=\"127.0.0.1\" certificate=\"c\" key=\"k\" "
       "ca=\"a\"/></Atlas>",
       -EINVAL, "IPv4"},
      {"<Atlas><Federation tls=\"1.1\" certificate=\"c\" key=\"k\" ca=\"a\"/></Atlas>",
       -EINVAL, "unknown attribute"},
  };
  for (size_t i = 0; i < sizeof fed_cases / sizeof fed_cases[0]; i++) {
    atlas_config_t cfg;
    char err[512] = "";
    int rc = atlas_parse_memory(fed_cases[i].doc, strlen(fed_cases[i].doc), BASE, &cfg, err, sizeof err);
    if (rc != fed_cases[i].rc) fail_msg("%s: rc %d (%s)", fed_cases[i].doc, rc, err);
    if (rc != 0) {
      if (!strstr(err, fed_cases[i].err_has)) fail_msg("%s: message \"%s\"", fed_cases[i].doc, err);
      continue;
    }
    assert_true(cfg.sip_configured);
    if (i == 0) {
      assert_string_equal(cfg.sip_address, "0.0.0.0");
      assert_int_equal(cfg.sip_port, 5061);
      assert_string_equal(cfg.sip_cert, BASE "/c.pem");
      assert_string_equal(cfg.sip_ca, BASE "/ca.pem");
      assert_string_equal(cfg.sip_resolver, "");
    } else {
      assert_int_equal(cfg.sip_port, 5062);
      assert_string_equal(cfg.sip_resolver, "127.0.0.1:5353");
    }
  }
  atlas_config_t none;
  char err[256];
  assert_int_equal(atlas_parse_memory("<Atlas/>", 8, BASE, &none, err, sizeof err), 0);
  assert_false(none.sip_configured);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_retention_days),
      cmocka_unit_test(test_load_relative),
      cmocka_unit_test(test_load_errors),
      cmocka_unit_test(test_xxe_reads_nothing),
      cmocka_unit_test(test_silent),
      cmocka_unit_test(test_example_file),
      cmocka_unit_test(test_store_conninfo_secret),
      cmocka_unit_test(test_trusted_and_privacy),
      cmocka_unit_test(test_node),
      cmocka_unit_test(test_federation),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
