/* atriumctl users / domain / federation: see cmd_directory.h. */
#include "ctl/cmd_directory.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ctl/client.h"
#include "ctl/config.h"
#include "ctl/input.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

static int usage(const ctl_command_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage(const ctl_command_t *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nusage: atriumctl [OPTIONS] %s %s\nTry 'atriumctl %s --help'.\n", cmd->name,
          cmd->usage, cmd->name);
  return CTL_EXIT_USAGE;
}

static bool same_url(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  while (na > 0 && a[na - 1] == '/') na--;
  while (nb > 0 && b[nb - 1] == '/') nb--;
  return na == nb && strncasecmp(a, b, na) == 0;
}

/* The server and token, in the order every command uses: --url/--token, the
 * environment, then the file saved by `login` (its token only for its URL). */
static int open_client(ctl_ctx_t *ctx) {
  ctl_saved_t saved = {0};
  if (ctl_saved_load(&saved) < 0)
    fprintf(stderr, "warning: ignoring the saved login: it cannot be read\n");
  const char *url = ctx->url_opt;
  if (!url || !url[0]) url = getenv("ATRIUM_URL");
  if (!url || !url[0]) url = saved.url;
  if (!url || !url[0]) url = DEFAULT_URL;
  const char *token = ctx->token_opt;
  if (!token || !token[0]) token = getenv("ATRIUM_TOKEN");
  if ((!token || !token[0]) && saved.token && saved.url && same_url(saved.url, url))
    token = saved.token;
  if (!token || !token[0]) {
    fprintf(stderr,
            "error: not logged in to %s: run 'atriumctl login' or pass a token (--token or "
            "ATRIUM_TOKEN)\n",
            url);
    ctl_saved_clear(&saved);
    return CTL_EXIT_AUTH;
  }
  ctl_client_free(ctx->client);
  ctx->client = ctl_client_new(url, token, ctx->cacert, ctx->verbose);
  ctl_saved_clear(&saved);
  if (!ctx->client) {
    fprintf(stderr, "error: cannot start the HTTP client (out of memory?)\n");
    return CTL_EXIT_SERVER;
  }
  return CTL_EXIT_OK;
}

/* One request; CTL_EXIT_OK and *doc (the JSON answer, NULL for 204) for a
 * 2xx answer, else an exit code after saying why. */
static int request(ctl_ctx_t *ctx, const char *method, const char *path, const char *body,
                   size_t len, json_t **doc) {
  char err[512] = "";
  ctl_response_t resp;
  *doc = NULL;
  int r = ctl_request(ctx->client, method, path, body, len, NULL, &resp, err, sizeof err);
  if (r < 0) {
    fprintf(stderr, "error: %s\n", err[0] ? err : strerror(-r));
    return r == -EINVAL ? CTL_EXIT_USAGE
                        : r == -EHOSTUNREACH ? CTL_EXIT_UNREACHABLE : CTL_EXIT_SERVER;
  }
  int code = ctl_exit_for_status(resp.status);
  if (code != CTL_EXIT_OK) {
    if (ctx->json && resp.len > 0) {
      fwrite(resp.body, 1, resp.len, stdout);
      fputc('\n', stdout);
    }
    ctl_print_problem(&resp);
  } else if (resp.status != 204) {
    *doc = ctl_response_json(&resp);
    if (!*doc) {
      fprintf(stderr, "error: the server answered %ld but not with JSON\n", resp.status);
      code = CTL_EXIT_SERVER;
    }
  }
  ctl_response_clear(&resp);
  return code;
}

static int request_json(ctl_ctx_t *ctx, const char *method, const char *path, const json_t *body,
                        json_t **doc) {
  char *text = json_dumps(body, JSON_COMPACT);
  if (!text) {
    fprintf(stderr, "error: out of memory\n");
    return CTL_EXIT_SERVER;
  }
  size_t len = strlen(text);
  int code = request(ctx, method, path, text, len, doc);
  explicit_bzero(text, len); /* it may carry a password */
  free(text);
  return code;
}

static void print_json(const json_t *v) {
  char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
  if (text) puts(text);
  free(text);
}

/* Percent-encodes everything but unreserved characters and '@'. */
static void url_escape(const char *in, char *out, size_t outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outlen; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~@", *p)) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
}

static const char *str(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

static void print_user(const json_t *u) {
  printf("name:            %s\n", str(u, "name"));
  printf("login:           %s\n", str(u, "login"));
  printf("IM address:      %s\n", str(u, "im_address"));
  printf("display name:    %s\n", str(u, "display_name"));
  printf("Windows account: %s\n", str(u, "windows_account"));
  printf("enabled:         %s\n", json_is_true(json_object_get(u, "enabled")) ? "yes" : "no");
  printf("password:        %s\n", json_is_true(json_object_get(u, "has_password")) ? "set"
                                                                                  : "not set");
}

/* The first line of FILE ("-": stdin), malloc'd. */
static int read_password(const char *file, char **out) {
  char *data = NULL;
  size_t len = 0;
  int r = ctl_read_file(file, &data, &len);
  if (r < 0) {
    fprintf(stderr, "error: cannot read the password from %s: %s\n", file, strerror(-r));
    return CTL_EXIT_USAGE;
  }
  data[strcspn(data, "\r\n")] = '\0';
  *out = data;
  return CTL_EXIT_OK;
}

/* Reads an import file; CSV is sent as {"csv": text} (the client sends JSON
 * only), so the server's row and line numbers still refer to the file. */
static int import_file(ctl_ctx_t *ctx, const char *path, const char *file) {
  char *data = NULL;
  size_t len = 0;
  int r = ctl_read_file(file, &data, &len);
  if (r < 0) {
    fprintf(stderr, "error: cannot read %s: %s\n", file, strerror(-r));
    return CTL_EXIT_USAGE;
  }
  size_t i = 0;
  while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')) i++;
  json_t *doc = NULL;
  int code;
  if (i < len && (data[i] == '[' || data[i] == '{')) {
    code = request(ctx, "POST", path, data, len, &doc);
  } else {
    json_t *wrap = json_pack("{s:s%}", "csv", data, len);
    if (!wrap) {
      fprintf(stderr, "error: %s is not UTF-8 text\n", file);
      free(data);
      return CTL_EXIT_USAGE;
    }
    code = request_json(ctx, "POST", path, wrap, &doc);
    json_decref(wrap);
  }
  free(data);
  if (code != CTL_EXIT_OK) return code;
  if (ctx->json)
    print_json(doc);
  else
    printf("imported %lld row(s) from %s\n",
           (long long)json_integer_value(json_object_get(doc, "imported")), file);
  json_decref(doc);
  return CTL_EXIT_OK;
}

enum {
  O_DISPLAY = 0x200,
  O_WINDOWS,
  O_PASSWORD_FILE,
  O_ENABLED,
  O_DISABLED,
  O_NAME,
  O_QUERY,
  O_OFFSET,
  O_LIMIT,
  O_DRY_RUN,
  O_YES,
  O_USER,
  O_STATE,
};

typedef struct opts {
  const char *display, *windows, *password_file, *name, *query, *offset, *limit, *user, *state;
  int enabled; /* -1 not given */
  bool dry_run, yes;
} opts_t;

/* Options of every subcommand, parsed in one pass (glibc permutes, so they
 * may come anywhere). Returns -1 to go on, or an exit code. */
static int parse_options(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv,
                         opts_t *o) {
  static const struct option own[] = {
      {"display-name", required_argument, NULL, O_DISPLAY},
      {"windows-account", required_argument, NULL, O_WINDOWS},
      {"password-file", required_argument, NULL, O_PASSWORD_FILE},
      {"enabled", no_argument, NULL, O_ENABLED},
      {"disabled", no_argument, NULL, O_DISABLED},
      {"name", required_argument, NULL, O_NAME},
      {"query", required_argument, NULL, O_QUERY},
      {"offset", required_argument, NULL, O_OFFSET},
      {"limit", required_argument, NULL, O_LIMIT},
      {"dry-run", no_argument, NULL, O_DRY_RUN},
      {"yes", no_argument, NULL, O_YES},
      {"user", required_argument, NULL, O_USER},
      {"state", required_argument, NULL, O_STATE},
  };
  struct option all[32];
  size_t n = 0;
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) all[n++] = own[i];
  for (const struct option *g = ctl_global_options; g->name && n < 31; g++) all[n++] = *g;
  all[n] = (struct option){0};
  memset(o, 0, sizeof *o);
  o->enabled = -1;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":hvy", all, NULL)) != -1) {
    if (ctl_apply_global_option(ctx, c, optarg)) continue;
    switch (c) {
    case O_DISPLAY: o->display = optarg; break;
    case O_WINDOWS: o->windows = optarg; break;
    case O_PASSWORD_FILE: o->password_file = optarg; break;
    case O_ENABLED: o->enabled = 1; break;
    case O_DISABLED: o->enabled = 0; break;
    case O_NAME: o->name = optarg; break;
    case O_QUERY: o->query = optarg; break;
    case O_OFFSET: o->offset = optarg; break;
    case O_LIMIT: o->limit = optarg; break;
    case O_DRY_RUN: o->dry_run = true; break;
    case 'y':
    case O_YES: o->yes = true; break;
    case O_USER: o->user = optarg; break;
    case O_STATE: o->state = optarg; break;
    case CTL_OPT_HELP: ctl_print_command_help(stdout, cmd); return CTL_EXIT_OK;
    case CTL_OPT_VERSION: printf("atriumctl %s\n", ATRIUM_VERSION); return CTL_EXIT_OK;
    case ':': return usage(cmd, "a value is missing after %.64s", argv[optind - 1]);
    default: return usage(cmd, "unknown option %.64s", argv[optind - 1]);
    }
  }
  return -1;
}

/* "?offset=..&limit=.." plus extra pairs; values escaped. */
static void query_string(char *out, size_t len, const char *const *pairs) {
  size_t o = 0;
  out[0] = '\0';
  for (size_t i = 0; pairs[i]; i += 2) {
    if (!pairs[i + 1]) continue;
    char esc[800];
    url_escape(pairs[i + 1], esc, sizeof esc);
    int w = snprintf(out + o, len - o, "%c%s=%s", o ? '&' : '?', pairs[i], esc);
    if (w < 0 || (size_t)w >= len - o) return;
    o += (size_t)w;
  }
}

/* The body of add/update from the options. */
static int user_body(const opts_t *o, const char *name, json_t **body) {
  json_t *b = json_object();
  if (!b) return CTL_EXIT_SERVER;
  if (name) json_object_set_new(b, "name", json_string(name));
  if (o->display) json_object_set_new(b, "display_name", *o->display ? json_string(o->display)
                                                                     : json_null());
  if (o->windows) json_object_set_new(b, "windows_account", *o->windows ? json_string(o->windows)
                                                                        : json_null());
  if (o->enabled >= 0) json_object_set_new(b, "enabled", json_boolean(o->enabled));
  if (o->password_file) {
    char *pw = NULL;
    int code = read_password(o->password_file, &pw);
    if (code != CTL_EXIT_OK) {
      json_decref(b);
      return code;
    }
    json_object_set_new(b, "password", json_string(pw));
    ctl_secret_free(pw);
  }
  *body = b;
  return CTL_EXIT_OK;
}

static void print_user_table(const json_t *page) {
  const json_t *users = json_object_get(page, "users");
  size_t i;
  json_t *u;
  printf("%-24s %-36s %-24s %-20s %s\n", "NAME", "LOGIN", "DISPLAY NAME", "WINDOWS ACCOUNT",
         "ENABLED");
  json_array_foreach(users, i, u) {
    printf("%-24s %-36s %-24s %-20s %s\n", str(u, "name"), str(u, "login"), str(u, "display_name"),
           str(u, "windows_account"), json_is_true(json_object_get(u, "enabled")) ? "yes" : "no");
  }
  long long total = (long long)json_integer_value(json_object_get(page, "total"));
  long long off = (long long)json_integer_value(json_object_get(page, "offset"));
  printf("(%zu of %lld shown, from %lld)\n", json_array_size(users), total, off);
}

int ctl_cmd_users(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  opts_t o;
  int code = parse_options(ctx, cmd, argc, argv, &o);
  if (code >= 0) return code;
  if (optind >= argc) return usage(cmd, "say what to do: add, list, show, update, delete, import");
  const char *sub = argv[optind];
  int nargs = argc - optind - 1;
  char **args = argv + optind + 1;
  bool list = strcmp(sub, "list") == 0;
  if (!list && strcmp(sub, "add") && strcmp(sub, "show") && strcmp(sub, "update") &&
      strcmp(sub, "delete") && strcmp(sub, "import"))
    return usage(cmd, "unknown subcommand '%.64s'", sub);
  if (list ? nargs != 0 : nargs != 1)
    return usage(cmd, list ? "'users list' takes options only" : "'users %s' takes one argument",
                 sub);
  if ((code = open_client(ctx)) != CTL_EXIT_OK) return code;

  char path[1000], esc[400];
  json_t *doc = NULL, *body = NULL;
  if (list) {
    char q[900];
    const char *pairs[] = {"q", o.query, "offset", o.offset, "limit", o.limit, NULL};
    query_string(q, sizeof q, pairs);
    snprintf(path, sizeof path, "/api/v1/users%s", q);
    if ((code = request(ctx, "GET", path, NULL, 0, &doc)) != CTL_EXIT_OK) return code;
    if (ctx->json)
      print_json(doc);
    else
      print_user_table(doc);
    json_decref(doc);
    return CTL_EXIT_OK;
  }
  if (strcmp(sub, "import") == 0) return import_file(ctx, "/api/v1/users/import", args[0]);
  url_escape(args[0], esc, sizeof esc);
  snprintf(path, sizeof path, "/api/v1/users/%s", esc);
  if (strcmp(sub, "add") == 0) {
    if ((code = user_body(&o, args[0], &body)) != CTL_EXIT_OK) return code;
    code = request_json(ctx, "POST", "/api/v1/users", body, &doc);
  } else if (strcmp(sub, "update") == 0) {
    if ((code = user_body(&o, o.name, &body)) != CTL_EXIT_OK) return code;
    if (json_object_size(body) == 0) {
      json_decref(body);
      return usage(cmd, "say what to change (--display-name, --windows-account, ...)");
    }
    code = request_json(ctx, "PATCH", path, body, &doc);
  } else if (strcmp(sub, "show") == 0) {
    code = request(ctx, "GET", path, NULL, 0, &doc);
  } else {
    code = request(ctx, "DELETE", path, NULL, 0, &doc);
    if (code == CTL_EXIT_OK && !ctx->json) printf("deleted %s\n", args[0]);
  }
  json_decref(body);
  if (code == CTL_EXIT_OK && doc) {
    if (ctx->json)
      print_json(doc);
    else
      print_user(doc);
  }
  json_decref(doc);
  return code;
}

static void print_preview(const json_t *d) {
  bool dry = json_is_true(json_object_get(d, "dry_run"));
  const json_t *fq = json_object_get(d, "federation_fqdn");
  printf("%s %s -> %s\n", dry ? "Domain change (preview):" : "Domain changed:",
         str(d, "old_domain"), str(d, "new_domain"));
  printf("  users renamed:                       %lld\n",
         (long long)json_integer_value(json_object_get(d, "users")));
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(d, "samples"), i, s)
    printf("      %s -> %s\n", str(s, "old"), str(s, "new"));
  printf("  mobile devices to set up again:      %lld\n",
         (long long)json_integer_value(json_object_get(d, "mobile_devices")));
  printf("  federation subscriptions recreated:  %lld\n",
         (long long)json_integer_value(json_object_get(d, "subscriptions")));
  printf("  federation FQDN:                     %s -> %s\n", str(fq, "old"), str(fq, "new"));
  printf("  Windows logins keep working (they map by Windows account).\n");
}

int ctl_cmd_domain(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  opts_t o;
  int code = parse_options(ctx, cmd, argc, argv, &o);
  if (code >= 0) return code;
  if (optind >= argc || strcmp(argv[optind], "change") != 0)
    return usage(cmd, "say what to do: 'domain change NEW'");
  if (argc - optind != 2) return usage(cmd, "'domain change' takes the new domain");
  const char *domain = argv[optind + 1];
  if ((code = open_client(ctx)) != CTL_EXIT_OK) return code;

  json_t *doc = NULL;
  json_t *body = json_pack("{s:s, s:b}", "domain", domain, "dry_run", 1);
  if (!body) return CTL_EXIT_SERVER;
  if (o.dry_run || !o.yes) {
    code = request_json(ctx, "POST", "/api/v1/domain/change", body, &doc);
    if (code != CTL_EXIT_OK || o.dry_run) {
      if (code == CTL_EXIT_OK) ctx->json ? print_json(doc) : print_preview(doc);
      json_decref(doc);
      json_decref(body);
      return code;
    }
    print_preview(doc);
    json_decref(doc);
    doc = NULL;
    if (!isatty(STDIN_FILENO)) {
      json_decref(body);
      fprintf(stderr, "error: not changed: add --yes to apply the change without a terminal\n");
      return CTL_EXIT_USAGE;
    }
    printf("Change the domain now? [y/N] ");
    fflush(stdout);
    char line[16] = "";
    if (!fgets(line, sizeof line, stdin) || (line[0] != 'y' && line[0] != 'Y')) {
      json_decref(body);
      printf("Not changed.\n");
      return CTL_EXIT_OK;
    }
  }
  json_object_set_new(body, "dry_run", json_false());
  code = request_json(ctx, "POST", "/api/v1/domain/change", body, &doc);
  json_decref(body);
  if (code == CTL_EXIT_OK) ctx->json ? print_json(doc) : print_preview(doc);
  json_decref(doc);
  return code;
}

int ctl_cmd_federation(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  opts_t o;
  int code = parse_options(ctx, cmd, argc, argv, &o);
  if (code >= 0) return code;
  if (optind >= argc) return usage(cmd, "say which: subscriptions or contacts");
  const char *what = argv[optind];
  bool subs = strcmp(what, "subscriptions") == 0;
  if (!subs && strcmp(what, "contacts") != 0)
    return usage(cmd, "unknown subcommand '%.64s'; use subscriptions or contacts", what);
  const char *sub = optind + 1 < argc ? argv[optind + 1] : "list";
  int nargs = argc - optind - 2;
  bool import = strcmp(sub, "import") == 0;
  if (!import && strcmp(sub, "list") != 0)
    return usage(cmd, "unknown subcommand '%.64s'; use list or import", sub);
  if (import ? nargs != 1 : nargs > 0)
    return usage(cmd, import ? "'import' takes one file" : "'list' takes options only");
  if ((code = open_client(ctx)) != CTL_EXIT_OK) return code;
  char path[1000], q[900];
  if (import) {
    snprintf(path, sizeof path, "/api/v1/federation/%s/import", what);
    return import_file(ctx, path, argv[optind + 2]);
  }
  const char *pairs[] = {"user", o.user, "state", o.state, "offset", o.offset, "limit", o.limit,
                         NULL};
  query_string(q, sizeof q, pairs);
  snprintf(path, sizeof path, "/api/v1/federation/%s%s", what, q);
  json_t *doc = NULL;
  if ((code = request(ctx, "GET", path, NULL, 0, &doc)) != CTL_EXIT_OK) return code;
  if (ctx->json) {
    print_json(doc);
  } else {
    const json_t *items = json_object_get(doc, subs ? "subscriptions" : "contacts");
    size_t i;
    json_t *it;
    if (subs)
      printf("%-36s %-40s %s\n", "IM ADDRESS", "REMOTE", "STATE");
    else
      printf("%-24s %-40s %s\n", "USER", "REMOTE", "DISPLAY NAME");
    json_array_foreach(items, i, it) {
      if (subs)
        printf("%-36s %-40s %s\n", str(it, "im_address"), str(it, "remote"), str(it, "state"));
      else
        printf("%-24s %-40s %s\n", str(it, "user"), str(it, "remote"), str(it, "display_name"));
    }
    printf("(%zu of %lld shown)\n", json_array_size(items),
           (long long)json_integer_value(json_object_get(doc, "total")));
  }
  json_decref(doc);
  return CTL_EXIT_OK;
}
