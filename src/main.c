/* atriumd: the Atrium server. Reads atlas.xml, opens the store, loads the
 * settings, starts the feature modules in the order of `modules` and the
 * HTTP server with their routes, and waits for a signal; then stops them in
 * the reverse order. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "conf/atlas.h"
#include "conf/catalogue.h"
#include "conf/settings.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/secret.h"
#include "core/throttle.h"
#include "http/auth.h"
#include "http/http.h"
#include "http/router.h"
#include "mod/admin/admin.h"
#include "mod/cluster/cluster.h"
#include "mod/directory/directory.h"
#include "mod/meeting/meeting.h"
#include "mod/module.h"
#include "mod/outbound/outbound.h"
#include "mod/published/published.h"
#include "mod/publishing/publishing.h"
#include "mod/qos/qos.h"
#include "mod/push/push.h"
#include "mod/rt/rt.h"
#include "mod/status/status.h"
#include "mod/sip/sip.h"
#include "store/pg/pg.h"
#include "mod/runtime/runtime.h"
#include "store/sqlite/sqlite.h"
#include "store/store.h"

/* Start order; stopped in reverse. The runtime (event loop, worker pools)
 * comes first, since the others use it; the cluster last, so that a
 * settings change from another node finds every apply hook ready, and so
 * that a stopping node gives up the meeting host first. */
static const atrium_module_t *const modules[] = {
    &runtime_module,   &outbound_module, &directory_module, &admin_module,
    &published_module, &meeting_module,  &publishing_module, &qos_module,
    &rt_module,        &sip_module,       &push_module,      &status_module,
    &cluster_module, /* last: it starts following the settings once every module runs */
};
#define MODULE_COUNT (sizeof modules / sizeof modules[0])

#define DEFAULT_ATLAS "/etc/atrium/atlas.xml"

extern char **environ;

static void usage(FILE *f) {
  fprintf(f,
          "Usage: atriumd [-c FILE] [-n]\n"
          "       atriumd --reset-admin-password NAME [-c FILE]\n"
          "       atriumd --settings-reference\n"
          "\n"
          "  -c, --config FILE         atlas.xml to read (default " DEFAULT_ATLAS ")\n"
          "  -n, --check               check atlas.xml and exit (0: valid, 1: not)\n"
          "      --reset-admin-password NAME\n"
          "                            give the admin account NAME a new password (from\n"
          "                            ATRIUM_ADMIN_PASSWORD, else generated and printed),\n"
          "                            enable it (create it if missing), end its sessions,\n"
          "                            and exit; needs access to the data directory\n"
          "      --settings-reference  print the settings reference (Markdown) and exit\n"
          "  -V, --version             print the version and exit\n"
          "  -h, --help                print this help and exit\n"
          "\n"
          "Environment: ATRIUM_LOG_LEVEL (error, warning, notice, info, debug),\n"
          "ATRIUM_ADMIN_PASSWORD (password of the admin account created at first start),\n"
          "ATRIUM_<KEY> overrides one setting (ATRIUM_PROXY_HOST for proxy.host).\n");
}

/* The data directory and the SQLite store hold password hashes, messages
 * and the encrypted secrets: readable by other users is worth a warning
 * (an old install, a copied backup), writable by them is refused, since
 * whoever can write there can replace the store or the key. The secret key
 * file has its own, stricter check (secret.c). */
static int check_private(const char *path, const char *what, bool must_exist, char *err,
                         size_t errlen) {
  struct stat st;
  if (lstat(path, &st) != 0 || (S_ISLNK(st.st_mode) && stat(path, &st) != 0)) {
    int e = errno;
    if (e == ENOENT && !must_exist) return 0;
    snprintf(err, errlen, "Cannot check the permissions of %s %s: %s.", what, path, strerror(e));
    return -e;
  }
  unsigned mode = (unsigned)(st.st_mode & 07777);
  bool dir = S_ISDIR(st.st_mode);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(err, errlen,
             "%c%s %s is writable by other users (mode %04o), who could replace what atriumd "
             "stores there; run: chmod %s %s",
             toupper((unsigned char)what[0]), what + 1, path, mode, dir ? "700" : "600", path);
    return -EPERM;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    log_warning("%c%s %s is readable by other users (mode %04o): they can read password hashes "
                "and messages; run: chmod %s %s",
                toupper((unsigned char)what[0]), what + 1, path, mode, dir ? "700" : "600", path);
  return 0;
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

static void print_banner(const atlas_config_t *atlas, const auth_bootstrap_t *boot,
                         bool initial_password_unchanged) {
  char url[128];
  local_url(atlas, url, sizeof url);
  printf("Atrium %s is running.\n"
         "  Admin API:  %s/api/v1/\n"
         "  Admin page: %s/admin/\n"
         "  Web client: %s/app/ (for users; create them on the admin page)\n"
         "  Log in as:  %s\n",
         ATRIUM_VERSION, url, url, url, AUTH_ADMIN_NAME);
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
    if (access(path, F_OK) == 0 && initial_password_unchanged)
      printf("  Password:   in %s\n", path);
    else if (access(path, F_OK) == 0)
      printf("  Password:   changed since the first start; delete %s\n", path);
  }
  fflush(stdout);
}

static const char *pg_or_dir(const atlas_config_t *atlas) {
  return strcmp(atlas->store_backend, ATLAS_STORE_POSTGRESQL) == 0 ? "the PostgreSQL store"
                                                                   : atlas->data_dir;
}

/* atriumd --reset-admin-password NAME: the recovery of a lost admin
 * password by whoever can open the store (the data directory, or the
 * PostgreSQL connection of atlas.xml). A server that runs meanwhile keeps
 * the account's sessions in memory until it restarts; logins use the new
 * password at once. */
static int reset_admin_password(store_t *store, const atlas_config_t *atlas, const char *name) {
  const char *env = getenv("ATRIUM_ADMIN_PASSWORD");
  char *generated = NULL;
  if (!env || !env[0]) {
    if (secret_random_token(18, &generated) != 0) {
      fprintf(stderr, "atriumd: cannot generate a password\n");
      return 1;
    }
  }
  char err[1024];
  bool created = false;
  int r = admin_reset_password(store, name, generated ? generated : env, &created, err, sizeof err);
  if (r != 0) {
    fprintf(stderr, "atriumd: %s\n", err);
  } else {
    printf("%s the admin account \"%s\" in %s: enabled, every session ended.\n",
           created ? "Created" : "Reset", name, pg_or_dir(atlas));
    if (generated)
      printf("New password: %s\n(shown once; log in and change it: atriumctl admin password)\n",
             generated);
    else
      printf("New password: the value of ATRIUM_ADMIN_PASSWORD\n");
    printf("A running atriumd keeps the account's open sessions until it restarts.\n");
  }
  if (generated) {
    explicit_bzero(generated, strlen(generated));
    free(generated);
  }
  return r == 0 ? 0 : 1;
}

/* Whether the first account still has the password of the first start (so
 * that the banner can point at initial-admin-password). */
static bool initial_password_unchanged(store_t *store) {
  store_txn_t *t;
  store_admin_t a;
  if (store_read_begin(store, "read the first admin account", &t) != 0) return false;
  int r = store_admin_get(t, AUTH_ADMIN_NAME, &a);
  store_read_end(t);
  return r == 0 && a.enabled && !a.password_changed_at[0];
}

/* How far start-up got, so that one shutdown path undoes exactly that. */
static struct {
  size_t inited, started;
  http_router_t *router;
} up;

static void write_store_metrics(FILE *f, void *store) { store_write_metrics(store, f); }

static void write_router_metrics(FILE *f, void *router) { http_router_write_metrics(router, f); }

static void write_module_metrics(FILE *f, void *module) {
  ((const atrium_module_t *)module)->metrics(f);
}

/* Registers what every module brings before the first settings snapshot. */
static int register_settings(char *err, size_t errlen) {
  for (size_t i = 0; i < MODULE_COUNT; i++)
    if (modules[i]->settings && settings_register_owner(modules[i]->settings) < 0) {
      snprintf(err, errlen, "Too many modules own settings (at %s).", modules[i]->name);
      return -ENOSPC;
    }
  return 0;
}

static int start_modules(const module_env_t *env, char *err, size_t errlen) {
  modules_set(modules, MODULE_COUNT);
  for (size_t i = 0; i < MODULE_COUNT; i++, up.inited++) {
    const atrium_module_t *m = modules[i];
    if (m->init && m->init(env, err, errlen) != 0) return -1;
    if (m->metrics) metrics_register(write_module_metrics, (void *)m);
  }
  http_route_set_t sets[MODULE_COUNT];
  for (size_t i = 0; i < MODULE_COUNT; i++)
    sets[i] = (http_route_set_t){.owner = modules[i]->name, .routes = modules[i]->routes,
                                 .count = modules[i]->route_count};
  if (http_router_build(sets, MODULE_COUNT, &up.router, err, errlen) != 0) return -1;
  metrics_register(write_router_metrics, up.router);
  for (size_t i = 0; i < MODULE_COUNT; i++, up.started++)
    if (modules[i]->start && modules[i]->start(err, errlen) != 0) return -1;
  return 0;
}

/* Stops everything in the reverse order of start. Each step is safe when its
 * part never started, so every failure at start-up ends here too. */
static void stop_all(secret_key_t *key, store_t *store) {
  http_set_stopping();
  for (size_t i = up.started; i-- > 0;)
    if (modules[i]->drain) modules[i]->drain();
  http_stop();
  for (size_t i = up.inited; i-- > 0;)
    if (modules[i]->stop) modules[i]->stop();
  up.inited = up.started = 0;
  http_router_free(up.router);
  up.router = NULL;
  http_clear_reply_hooks();
  metrics_clear();
  auth_shutdown();
  settings_shutdown();
  secret_key_close(key);
  store_close(store);
}

int main(int argc, char **argv) {
  enum { OPT_SETTINGS_REFERENCE = 1000, OPT_RESET_ADMIN_PASSWORD };
  static const struct option options[] = {
      {"config", required_argument, NULL, 'c'},
      {"check", no_argument, NULL, 'n'},
      {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {"settings-reference", no_argument, NULL, OPT_SETTINGS_REFERENCE},
      {"reset-admin-password", required_argument, NULL, OPT_RESET_ADMIN_PASSWORD},
      {NULL, 0, NULL, 0},
  };
  const char *config = DEFAULT_ATLAS;
  bool check_only = false;
  const char *reset_admin = NULL;
  int opt;
  while ((opt = getopt_long(argc, argv, "c:nVh", options, NULL)) != -1) {
    switch (opt) {
    case 'c': config = optarg; break;
    case 'n': check_only = true; break;
    case 'V': printf("atriumd %s\n", ATRIUM_VERSION); return 0;
    case 'h': usage(stdout); return 0;
    case OPT_RESET_ADMIN_PASSWORD: reset_admin = optarg; break;
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
    /* The backend only: the connection string may hold a password. */
    printf("atlas.xml OK: listen %s port %d%s, data directory %s, store %s\n",
           atlas.listen_address, atlas.listen_port, atlas.tls_cert[0] ? " (HTTPS)" : "",
           atlas.data_dir, atlas.store_backend);
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

  const bool pg = strcmp(atlas.store_backend, ATLAS_STORE_POSTGRESQL) == 0;
  char db_path[PATH_MAX + 16];
  snprintf(db_path, sizeof db_path, "%s/%s", atlas.data_dir, STORE_SQLITE_FILE_NAME);
  if (ensure_data_dir(atlas.data_dir, err, sizeof err) != 0 ||
      check_private(atlas.data_dir, "the data directory", true, err, sizeof err) != 0 ||
      (!pg && check_private(db_path, "the store", false, err, sizeof err) != 0)) {
    log_err("%s", err);
    return 1;
  }
  store_t *store = NULL;
  const store_options_t so = {.data_dir = atlas.data_dir,
                              .conninfo = pg ? atlas.store_conninfo : NULL};
  if (store_open(pg ? store_pg_backend() : store_sqlite_backend(), &so, &store, err,
                 sizeof err) != 0) {
    log_err("%s", err);
    return 1;
  }
  if (reset_admin) {
    int code = reset_admin_password(store, &atlas, reset_admin);
    store_close(store);
    return code;
  }
  metrics_register(write_store_metrics, store);
  metrics_register(auth_write_metrics, NULL);
  throttle_logins_configure((unsigned)atlas.limit_logins_per_source,
                            (unsigned)atlas.limit_logins_per_account,
                            (unsigned)atlas.limit_login_failures_per_source);
  metrics_register(throttle_write_metrics, NULL);
  metrics_register(http_write_connection_metrics, NULL);
  secret_key_t *key = NULL;
  auth_bootstrap_t boot = {0};
  if (secret_key_open(atlas.data_dir, &key, err, sizeof err) != 0 ||
      register_settings(err, sizeof err) != 0 ||
      settings_init(store, key, &atlas, environ, err, sizeof err) != 0 ||
      auth_init(store, atlas.data_dir, &boot, err, sizeof err) != 0)
    goto fail;
  if (boot.created && boot.password)
    log_notice("created the admin account \"%s\"; its password is in %s", AUTH_ADMIN_NAME,
               boot.password_file);
  else if (boot.created)
    log_notice("created the admin account \"%s\" with the password from ATRIUM_ADMIN_PASSWORD",
               AUTH_ADMIN_NAME);

  const module_env_t env = {.store = store, .key = key, .atlas = &atlas};
  if (start_modules(&env, err, sizeof err) != 0) goto fail;

  http_config_t hc = {
      .address = atlas.listen_address,
      .port = atlas.listen_port,
      .tls_cert = atlas.tls_cert,
      .tls_key = atlas.tls_key,
      .store = store,
      .trusted_proxies = atlas.trusted_proxies,
      .router = up.router,
      .defer_pool = runtime_io_pool(),
      .cpu_pool = runtime_hash_pool(),
      .connection_limit = (unsigned)runtime_connection_budget(),
      .limits = {.connections = (unsigned)atlas.limit_connections,
                 .per_address = (unsigned)atlas.limit_per_address,
                 .loopback_reserve = (unsigned)atlas.limit_loopback_reserve,
                 .header_timeout_s = (unsigned)atlas.limit_header_timeout},
  };
  /* No more connections than descriptors to hold them. */
  if (hc.connection_limit && hc.limits.connections > hc.connection_limit)
    hc.limits.connections = hc.connection_limit;
  if (hc.limits.loopback_reserve >= hc.limits.connections)
    hc.limits.loopback_reserve = hc.limits.connections / 4;
  if (http_start(&hc, err, sizeof err) != 0) goto fail;

  print_banner(&atlas, &boot, initial_password_unchanged(store));
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
  stop_all(key, store);
  log_info("stopped");
  return 0;

fail:
  log_err("%s", err);
  auth_bootstrap_clear(&boot);
  stop_all(key, store);
  return 1;
}
