/* atriumctl users / domain / federation: see cmd_directory.h. */
#include "ctl/cmd_directory.h"
#include "ctl/cmd_federation.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl/client.h"
#include "ctl/input.h"
#include "ctl/session.h"

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

/* An import the server runs as a job (202): follows GET /api/v1/jobs/{id}
 * until it is finished, showing the progress on stderr, and ends as the
 * job did. Bounded: a job that shows no progress for 10 minutes is given
 * up on here (it goes on at the server). */
static int follow_job(ctl_ctx_t *ctx, json_t *job, const char *file, json_t **out) {
  char path[128];
  snprintf(path, sizeof path, "/api/v1/jobs/%s", str(job, "id"));
  bool tty = isatty(STDERR_FILENO);
  long long last_done = -1;
  time_t last_change = time(NULL), last_line = 0;
  json_incref(job);
  for (;;) {
    const char *state = str(job, "state");
    long long done = (long long)json_integer_value(json_object_get(job, "done"));
    long long total = (long long)json_integer_value(json_object_get(job, "total"));
    time_t now = time(NULL);
    if (done != last_done) last_change = now;
    if (!ctx->json && (done != last_done || now - last_line >= 5) &&
        (tty || now - last_line >= 2 || !strcmp(state, "done") || !strcmp(state, "failed"))) {
      fprintf(stderr, tty ? "\rimporting %s: %lld of %lld passwords hashed" :
                            "importing %s: %lld of %lld passwords hashed\n",
              file, done, total);
      fflush(stderr);
      last_line = now;
    }
    last_done = done;
    if (!strcmp(state, "done") || !strcmp(state, "failed")) break;
    if (now - last_change > 600) {
      if (tty) fputc('\n', stderr);
      fprintf(stderr, "error: the import job %s has shown no progress for 10 minutes; see "
                      "GET %s\n", str(job, "id"), path);
      json_decref(job);
      return CTL_EXIT_SERVER;
    }
    usleep(500000);
    json_t *next = NULL;
    int code = ctl_call(ctx, "GET", path, NULL, 0, NULL, NULL, &next);
    if (code != CTL_EXIT_OK) {
      json_decref(job);
      return code;
    }
    json_decref(job);
    job = next;
  }
  if (tty && !ctx->json) fputc('\n', stderr);
  if (!strcmp(str(job, "state"), "failed")) {
    if (ctx->json) {
      ctl_print_json(job);
    } else {
      fprintf(stderr, "error: import failed: %s\n", str(job, "detail"));
      size_t i;
      json_t *e;
      json_array_foreach(json_object_get(job, "errors"), i, e) {
        long long row = (long long)json_integer_value(json_object_get(e, "row"));
        long long line = (long long)json_integer_value(json_object_get(e, "line"));
        if (line)
          fprintf(stderr, "  row %lld (line %lld): %s: %s\n", row, line, str(e, "key"),
                  str(e, "message"));
        else
          fprintf(stderr, "  row %lld: %s: %s\n", row, str(e, "key"), str(e, "message"));
      }
    }
    json_decref(job);
    return CTL_EXIT_REFUSED;
  }
  *out = job;
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
    code = ctl_call(ctx, "POST", path, data, len, NULL, NULL, &doc);
  } else {
    json_t *wrap = json_pack("{s:s%}", "csv", data, len);
    if (!wrap) {
      fprintf(stderr, "error: %s is not UTF-8 text\n", file);
      free(data);
      return CTL_EXIT_USAGE;
    }
    code = ctl_call_json(ctx, "POST", path, wrap, NULL, NULL, &doc);
    json_decref(wrap);
  }
  free(data);
  if (code != CTL_EXIT_OK) return code;
  if (json_is_string(json_object_get(doc, "id")) && json_object_get(doc, "state")) {
    json_t *job = doc;
    doc = NULL;
    code = follow_job(ctx, job, file, &doc);
    json_decref(job);
    if (code != CTL_EXIT_OK) return code;
  }
  if (ctx->json)
    ctl_print_json(doc);
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
  unsigned given; /* OPT(x) of every option given */
} opts_t;

#define OPT(o) (1u << ((o) - O_DISPLAY))

static const struct option dir_options[] = {
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
    {NULL, 0, NULL, 0},
};

/* Options of every subcommand, parsed in one pass (glibc permutes, so they
 * may come anywhere). Returns -1 to go on, or an exit code. */
static int parse_options(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv,
                         opts_t *o) {
  memset(o, 0, sizeof *o);
  o->enabled = -1;
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "y", dir_options)) != CTL_OPTIONS_DONE) {
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
    case 'y': c = O_YES; /* fall through */
    case O_YES: o->yes = true; break;
    case O_USER: o->user = optarg; break;
    case O_STATE: o->state = optarg; break;
    default: return ctl_option_exit(c);
    }
    o->given |= OPT(c);
  }
  if ((o->given & OPT(O_ENABLED)) && (o->given & OPT(O_DISABLED)))
    return ctl_usage(cmd, "give --enabled or --disabled, not both");
  return -1;
}

/* A usage error for the first option given that `what` does not use, or -1. */
static int refuse_others(const ctl_command_t *cmd, const opts_t *o, unsigned allowed,
                         const char *what) {
  for (const struct option *d = dir_options; d->name; d++)
    if (o->given & ~allowed & OPT(d->val))
      return ctl_usage(cmd, "--%s does not apply to '%s'", d->name, what);
  return -1;
}

/* "?offset=..&limit=.." plus extra pairs; values escaped. */
static void query_string(char *out, size_t len, const char *const *pairs) {
  size_t o = 0;
  out[0] = '\0';
  for (size_t i = 0; pairs[i]; i += 2) {
    if (!pairs[i + 1]) continue;
    char esc[800];
    ctl_url_escape(pairs[i + 1], esc, sizeof esc);
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
    int code = ctl_read_password_file(o->password_file, &pw);
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
  if (optind >= argc)
    return ctl_usage(cmd, "say what to do: add, list, show, update, delete, sign-out, import");
  const char *sub = argv[optind];
  int nargs = argc - optind - 1;
  char **args = argv + optind + 1;
  bool list = strcmp(sub, "list") == 0;
  if (!list && strcmp(sub, "add") && strcmp(sub, "show") && strcmp(sub, "update") &&
      strcmp(sub, "delete") && strcmp(sub, "sign-out") && strcmp(sub, "import"))
    return ctl_usage(cmd, "unknown subcommand '%.64s'", sub);
  if (list ? nargs != 0 : nargs != 1)
    return ctl_usage(cmd,
                     list ? "'users list' takes options only" : "'users %s' takes one argument",
                     sub);
  const unsigned user_fields = OPT(O_DISPLAY) | OPT(O_WINDOWS) | OPT(O_PASSWORD_FILE) |
                               OPT(O_ENABLED) | OPT(O_DISABLED);
  unsigned allowed = list                          ? OPT(O_QUERY) | OPT(O_OFFSET) | OPT(O_LIMIT)
                     : strcmp(sub, "add") == 0    ? user_fields
                     : strcmp(sub, "update") == 0 ? user_fields | OPT(O_NAME)
                                                  : 0;
  char what[24];
  snprintf(what, sizeof what, "users %s", sub);
  if ((code = refuse_others(cmd, &o, allowed, what)) >= 0) return code;
  if ((code = ctl_connect(ctx, CTL_AUTH_REQUIRED)) != CTL_EXIT_OK) return code;

  char path[1000], esc[400];
  json_t *doc = NULL, *body = NULL;
  if (list) {
    char q[900];
    const char *pairs[] = {"q", o.query, "offset", o.offset, "limit", o.limit, NULL};
    query_string(q, sizeof q, pairs);
    snprintf(path, sizeof path, "/api/v1/users%s", q);
    if ((code = ctl_call(ctx, "GET", path, NULL, 0, NULL, NULL, &doc)) != CTL_EXIT_OK) return code;
    if (ctx->json)
      ctl_print_json(doc);
    else
      print_user_table(doc);
    json_decref(doc);
    return CTL_EXIT_OK;
  }
  if (strcmp(sub, "import") == 0) return import_file(ctx, "/api/v1/users/import", args[0]);
  ctl_url_escape(args[0], esc, sizeof esc);
  snprintf(path, sizeof path, "/api/v1/users/%s", esc);
  if (strcmp(sub, "add") == 0) {
    if ((code = user_body(&o, args[0], &body)) != CTL_EXIT_OK) return code;
    code = ctl_call_json(ctx, "POST", "/api/v1/users", body, NULL, NULL, &doc);
  } else if (strcmp(sub, "update") == 0) {
    if ((code = user_body(&o, o.name, &body)) != CTL_EXIT_OK) return code;
    if (json_object_size(body) == 0) {
      json_decref(body);
      return ctl_usage(cmd, "say what to change (--display-name, --windows-account, ...)");
    }
    code = ctl_call_json(ctx, "PATCH", path, body, NULL, NULL, &doc);
  } else if (strcmp(sub, "show") == 0) {
    code = ctl_call(ctx, "GET", path, NULL, 0, NULL, NULL, &doc);
  } else if (strcmp(sub, "sign-out") == 0) {
    char sign_out[1100];
    snprintf(sign_out, sizeof sign_out, "%s/sign-out", path);
    code = ctl_call(ctx, "POST", sign_out, NULL, 0, NULL, NULL, &doc);
    if (code == CTL_EXIT_OK && ctx->json) ctl_print_json(doc);
    else if (code == CTL_EXIT_OK)
      printf("signed %s out everywhere: %" JSON_INTEGER_FORMAT " login(s) revoked, connected "
             "clients closed\n",
             args[0], json_integer_value(json_object_get(doc, "revoked_tokens")));
    json_decref(doc);
    return code;
  } else {
    code = ctl_call(ctx, "DELETE", path, NULL, 0, NULL, NULL, &doc);
    if (code == CTL_EXIT_OK && !ctx->json) printf("deleted %s\n", args[0]);
  }
  json_decref(body);
  if (code == CTL_EXIT_OK && doc) {
    if (ctx->json)
      ctl_print_json(doc);
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
    return ctl_usage(cmd, "say what to do: 'domain change NEW'");
  if (argc - optind != 2) return ctl_usage(cmd, "'domain change' takes the new domain");
  if ((code = refuse_others(cmd, &o, OPT(O_DRY_RUN) | OPT(O_YES), "domain change")) >= 0)
    return code;
  const char *domain = argv[optind + 1];
  if ((code = ctl_connect(ctx, CTL_AUTH_REQUIRED)) != CTL_EXIT_OK) return code;

  json_t *doc = NULL;
  json_t *body = json_pack("{s:s, s:b}", "domain", domain, "dry_run", 1);
  if (!body) return CTL_EXIT_SERVER;
  if (o.dry_run || !o.yes) {
    code = ctl_call_json(ctx, "POST", "/api/v1/domain/change", body, NULL, NULL, &doc);
    if (code != CTL_EXIT_OK || o.dry_run) {
      if (code == CTL_EXIT_OK) ctx->json ? ctl_print_json(doc) : print_preview(doc);
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
  code = ctl_call_json(ctx, "POST", "/api/v1/domain/change", body, NULL, NULL, &doc);
  json_decref(body);
  if (code == CTL_EXIT_OK) ctx->json ? ctl_print_json(doc) : print_preview(doc);
  json_decref(doc);
  return code;
}

int ctl_cmd_federation(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  opts_t o;
  int code = parse_options(ctx, cmd, argc, argv, &o);
  if (code >= 0) return code;
  if (optind >= argc) return ctl_usage(cmd, "say which: subscriptions, contacts, test or status");
  const char *what = argv[optind];
  if (!strcmp(what, "test") || !strcmp(what, "status")) {
    if ((code = refuse_others(cmd, &o, 0, what)) >= 0) return code;
    return ctl_federation_sip(ctx, cmd, argc, argv);
  }
  bool subs = strcmp(what, "subscriptions") == 0;
  if (!subs && strcmp(what, "contacts") != 0)
    return ctl_usage(cmd, "unknown subcommand '%.64s'; use subscriptions or contacts", what);
  const char *sub = optind + 1 < argc ? argv[optind + 1] : "list";
  int nargs = argc - optind - 2;
  bool import = strcmp(sub, "import") == 0;
  if (!import && strcmp(sub, "list") != 0)
    return ctl_usage(cmd, "unknown subcommand '%.64s'; use list or import", sub);
  if (import ? nargs != 1 : nargs > 0)
    return ctl_usage(cmd, import ? "'import' takes one file" : "'list' takes options only");
  unsigned allowed = import ? 0 : OPT(O_USER) | OPT(O_OFFSET) | OPT(O_LIMIT) | (subs ? OPT(O_STATE) : 0);
  char label[40];
  snprintf(label, sizeof label, "federation %s %s", what, sub);
  if ((code = refuse_others(cmd, &o, allowed, label)) >= 0) return code;
  if ((code = ctl_connect(ctx, CTL_AUTH_REQUIRED)) != CTL_EXIT_OK) return code;
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
  if ((code = ctl_call(ctx, "GET", path, NULL, 0, NULL, NULL, &doc)) != CTL_EXIT_OK) return code;
  if (ctx->json) {
    ctl_print_json(doc);
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
