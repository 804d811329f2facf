/* atriumd: the Atrium server. Reads atlas.xml, opens the store, loads the
 * settings, starts the HTTP API and waits for a signal. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "mod/publishing/ad_publish.h"
#include "http/api.h"
#include "conf/atlas.h"
#include "http/auth.h"
#include "conf/catalogue.h"
#include "mod/directory/directory.h"
#include "mod/publishing/discovery.h"
#include "mod/directory/domain_change.h"
#include "http/http.h"
#include "core/log.h"
#include "mod/outbound/outbound.h"
#include "core/secret.h"
#include "conf/settings.h"
#include "store/store.h"

#define DEFAULT_ATLAS "/etc/atrium/atlas.xml"

extern char **environ;

static void usage(FILE *f) {
  fprintf(f,
          "Usage: atriumd [-c FILE] [-n]\n"
          "       atriumd --settings-reference\n"
          "\n"
          "  -c, --config FILE         atlas.xml to read (default " DEFAULT_ATLAS ")\n"
          "  -n, --check               check atlas.xml and exit (0: valid, 1: not)\n"
          "      --settings-reference  print the settings reference (Markdown) and exit\n"
          "  -V, --version             print the version and exit\n"
          "  -h, --help                print this help and exit\n"
          "\n"
          "Environment: ATRIUM_LOG_LEVEL (error, warning, notice, info, debug),\n"
          "ATRIUM_ADMIN_PASSWORD (password of the admin account created at first start),\n"
          "ATRIUM_<KEY> overrides one setting (ATRIUM_PROXY_HOST for proxy.host).\n");
}

/* Creates the data directory (not its parents: a missing parent is more
 * likely a typo in atlas.xml than a wish). */
static int ensure_data_dir(const char *dir, char *err, size_t errlen) {
  struct stat st;
  if (stat(dir, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return 0;
    snprintf(err, errlen,
             "The data directory %s exists but is not a directory; change <DataDirectory> in "
             "atlas.xml or move the file away.",
             dir);
    return -ENOTDIR;
  }
  if (mkdir(dir, 0700) == 0) {
    log_notice("created the data directory %s", dir);
    return 0;
  }
  int e = errno;
  if (e == ENOENT)
    snprintf(err, errlen,
             "The data directory %s cannot be created because its parent directory does not "
             "exist; create the parent or change <DataDirectory> in atlas.xml.",
             dir);
  else if (e == EACCES || e == EROFS || e == EPERM)
    snprintf(err, errlen,
             "The data directory %s cannot be created (%s); create it for the user atriumd runs "
             "as, or change <DataDirectory> in atlas.xml.",
             dir, strerror(e));
  else
    snprintf(err, errlen, "The data directory %s cannot be created: %s.", dir, strerror(e));
  return -e;
}

/* The address a person on this machine types into a browser. */
static void local_url(const atlas_config_t *atlas, char *buf, size_t len) {
  const char *a = atlas->listen_address;
  const char *host = a;
  bool v6 = strchr(a, ':') != NULL;
  if (strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0 || strcmp(a, "[::]") == 0 || !*a) {
    host = "127.0.0.1";
    v6 = false;
  }
  bool bracketed = host[0] == '[';
  snprintf(buf, len, "%s://%s%s%s:%d", http_tls() ? "https" : "http", v6 && !bracketed ? "[" : "",
           host, v6 && !bracketed ? "]" : "", http_port());
}

static void print_banner(const atlas_config_t *atlas, const auth_bootstrap_t *boot) {
  char url[128];
  local_url(atlas, url, sizeof url);
  printf("Atrium %s is running.\n"
         "  Admin API:  %s/api/v1/\n"
         "  Admin page: %s/admin/\n"
         "  Log in as:  %s\n",
         ATRIUM_VERSION, url, url, AUTH_ADMIN_NAME);
  if (boot->created && boot->password) {
    /* A password on a terminal is seen once by the person who started the
     * server; in a pipe or a journal it would be stored for anyone to read. */
    if (isatty(STDOUT_FILENO))
      printf("  Password:   %s\n"
             "              (also in %s; delete that file once you have logged in)\n",
             boot->password, boot->password_file);
    else
      printf("  Password:   in %s\n", boot->password_file);
  } else if (boot->created && boot->password_from_env) {
    printf("  Password:   the value of ATRIUM_ADMIN_PASSWORD\n");
  } else {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", atlas->data_dir, AUTH_INITIAL_PASSWORD_FILE);
    if (access(path, F_OK) == 0)
      printf("  Password:   in %s (unless it was changed since)\n", path);
  }
  fflush(stdout);
}

/* Stops everything in the reverse order of start. Each step is safe when its
 * module never started, so every failure at start-up ends here too. */
static void stop_all(secret_key_t *key, store_t *store) {
  api_published_shutdown(); /* closes the meeting WebSockets while MHD still runs */
  http_stop();
  discovery_shutdown();
  ad_publish_shutdown();
  outbound_shutdown();
  auth_shutdown();
  directory_shutdown();
  settings_shutdown();
  secret_key_close(key);
  store_close(store);
}

int main(int argc, char **argv) {
  enum { OPT_SETTINGS_REFERENCE = 1000 };
  static const struct option options[] = {
      {"config", required_argument, NULL, 'c'},
      {"check", no_argument, NULL, 'n'},
      {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {"settings-reference", no_argument, NULL, OPT_SETTINGS_REFERENCE},
      {NULL, 0, NULL, 0},
  };
  const char *config = DEFAULT_ATLAS;
  bool check_only = false;
  int opt;
  while ((opt = getopt_long(argc, argv, "c:nVh", options, NULL)) != -1) {
    switch (opt) {
    case 'c': config = optarg; break;
    case 'n': check_only = true; break;
    case 'V': printf("atriumd %s\n", ATRIUM_VERSION); return 0;
    case 'h': usage(stdout); return 0;
    case OPT_SETTINGS_REFERENCE:
      catalogue_write_markdown(stdout);
      return fflush(stdout) == 0 ? 0 : 1;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "atriumd: unexpected argument \"%s\"\n", argv[optind]);
    usage(stderr);
    return 2;
  }

  const char *level = getenv("ATRIUM_LOG_LEVEL");
  if (level && *level) {
    log_level_t l;
    if (log_parse_level(level, &l) == 0)
      log_set_level(l);
    else
      log_warning("ATRIUM_LOG_LEVEL=%s is not a level; use error, warning, notice, info or debug",
                  level);
  }

  char err[8192]; /* room for two paths of PATH_MAX and a sentence */
  static atlas_config_t atlas;
  if (atlas_load(config, &atlas, err, sizeof err) != 0) {
    if (check_only) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
    log_err("%s", err);
    return 1;
  }
  if (check_only) {
    printf("atlas.xml OK: listen %s port %d%s, data directory %s\n", atlas.listen_address,
           atlas.listen_port, atlas.tls_cert[0] ? " (HTTPS)" : "", atlas.data_dir);
    return 0;
  }

  /* Files we create (store, key, password) are ours alone. */
  umask(0077);
  signal(SIGPIPE, SIG_IGN);
  /* Blocked before any thread exists so that every thread inherits the mask
   * and the signals reach sigwait() below, not a random MHD thread. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  /* Before any thread exists: curl_global_init is not thread-safe. */
  if (outbound_init(atlas.ca_bundle, err, sizeof err) != 0) {
    log_err("%s", err);
    return 1;
  }
  if (ensure_data_dir(atlas.data_dir, err, sizeof err) != 0) {
    log_err("%s", err);
    return 1;
  }
  store_t *store = NULL;
  if (store_open(atlas.data_dir, &store, err, sizeof err) != 0) {
    log_err("%s", err);
    return 1;
  }
  secret_key_t *key = NULL;
  auth_bootstrap_t boot = {0};
  if (secret_key_open(atlas.data_dir, &key, err, sizeof err) != 0 ||
      settings_init(store, key, &atlas, environ, err, sizeof err) != 0 ||
      auth_init(store, atlas.data_dir, &boot, err, sizeof err) != 0)
    goto fail;
  if (boot.created && boot.password)
    log_notice("created the admin account \"%s\"; its password is in %s", AUTH_ADMIN_NAME,
               boot.password_file);
  else if (boot.created)
    log_notice("created the admin account \"%s\" with the password from ATRIUM_ADMIN_PASSWORD",
               AUTH_ADMIN_NAME);
  /* The directory follows domain.name (its first generation at first start). */
  bool domain_moved = false;
  if (domain_change_init(store, &domain_moved, err, sizeof err) != 0) goto fail;
  if (domain_moved)
    log_warning("the directory was on another domain than domain.name; it now follows %s, and "
                "mobile devices registered before must set up their login again",
                "domain.name");

  /* Issue 7: UDP discovery and AD publishing follow the settings from here on
   * (apply hooks). A busy UDP port is not fatal: the admin sees it in
   * GET /api/v1/publishing/status and can choose another port. */
  {
    settings_snapshot_t *snap = settings_acquire();
    if (discovery_init(snap, err, sizeof err) != 0) log_warning("UDP discovery: %s", err);
    if (ad_publish_init(snap, err, sizeof err) != 0) log_warning("AD publishing: %s", err);
    settings_release(snap);
  }

  http_config_t hc = {
      .address = atlas.listen_address,
      .port = atlas.listen_port,
      .tls_cert = atlas.tls_cert,
      .tls_key = atlas.tls_key,
      .store = store,
      .trusted_proxies = atlas.trusted_proxies,
  };
  /* Issue 6: atlas.xml's path (re-read for {RetentionTime}), the privacy
   * directories and the listen address (the reverse proxy's upstream). */
  if (api_published_init(&atlas) != 0) log_warning("published pages: out of memory at start");
  if (http_start(&hc, err, sizeof err) != 0) goto fail;

  print_banner(&atlas, &boot);
  auth_bootstrap_clear(&boot);
  char url[128];
  local_url(&atlas, url, sizeof url);
  sd_notifyf(0, "READY=1\nSTATUS=Serving the admin API at %s/api/v1/", url);

  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      log_notice("SIGHUP: nothing to reload; settings apply live and atlas.xml is read at start");
      continue;
    }
    log_notice("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    break;
  }

  sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
  http_set_stopping();
  stop_all(key, store);
  log_info("stopped");
  return 0;

fail:
  log_err("%s", err);
  auth_bootstrap_clear(&boot);
  stop_all(key, store);
  return 1;
}
