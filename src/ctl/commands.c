#include "ctl/commands.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/cmd_admin.h"
#include "ctl/cmd_status.h"
#include "ctl/cmd_directory.h"
#include "ctl/cmd_discover.h"
#include "ctl/cmd_proxy.h"
#include "ctl/cmd_push.h"
#include "ctl/cmd_published.h"
#include "ctl/cmd_cluster.h"
#include "ctl/cmd_rt.h"
#include "ctl/config.h"
#include "ctl/input.h"
#include "ctl/render.h"
#include "ctl/session.h"

#define MAX_OPTIONS 32

const struct option ctl_global_options[] = {
    {"url", required_argument, NULL, CTL_OPT_URL},
    {"token", required_argument, NULL, CTL_OPT_TOKEN},
    {"cacert", required_argument, NULL, CTL_OPT_CACERT},
    {"json", no_argument, NULL, CTL_OPT_JSON},
    {"verbose", no_argument, NULL, CTL_OPT_VERBOSE},
    {"help", no_argument, NULL, CTL_OPT_HELP},
    {"version", no_argument, NULL, CTL_OPT_VERSION},
    {NULL, 0, NULL, 0},
};

int ctl_apply_global_option(ctl_ctx_t *ctx, int opt, const char *arg) {
  switch (opt) {
  case CTL_OPT_URL: ctx->url_opt = arg; return 1;
  case CTL_OPT_TOKEN: ctx->token_opt = arg; return 1;
  case CTL_OPT_CACERT: ctx->cacert = arg; return 1;
  case CTL_OPT_JSON: ctx->json = true; return 1;
  case CTL_OPT_VERBOSE: ctx->verbose = true; return 1;
  default: return 0;
  }
}

void ctl_ctx_clear(ctl_ctx_t *ctx) {
  ctl_client_free(ctx->client);
  ctx->client = NULL;
}

/* ---- options after the command ------------------------------------------- */

int ctl_usage(const ctl_command_t *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fprintf(stderr, "usage: atriumctl [OPTIONS] %s %s\n", cmd->name, cmd->usage);
  fprintf(stderr, "Try 'atriumctl %s --help'.\n", cmd->name);
  return CTL_EXIT_USAGE;
}

/* The global options are merged in so that `atriumctl get --json proxy` works
 * as well as `atriumctl --json get proxy`. */
int ctl_next_option(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv,
                    const char *shortopts, const struct option *cmdopts) {
  struct option all[MAX_OPTIONS];
  size_t n = 0;
  for (const struct option *o = cmdopts; o && o->name && n < MAX_OPTIONS - 1; o++)
    all[n++] = *o;
  for (const struct option *o = ctl_global_options; o->name && n < MAX_OPTIONS - 1; o++)
    all[n++] = *o;
  all[n] = (struct option){0};
  char shorts[48];
  /* Leading ':' so that we word the message about a missing argument ourselves. */
  snprintf(shorts, sizeof(shorts), ":%shv", shortopts ? shortopts : "");

  for (;;) {
    int c = getopt_long(argc, argv, shorts, all, NULL);
    if (c == -1)
      return CTL_OPTIONS_DONE;
    if (ctl_apply_global_option(ctx, c, optarg))
      continue;
    if (c == CTL_OPT_HELP) {
      ctl_print_command_help(stdout, cmd);
      return CTL_OPTIONS_EXIT_OK;
    }
    if (c == CTL_OPT_VERSION) {
      printf("atriumctl %s\n", ATRIUM_VERSION);
      return CTL_OPTIONS_EXIT_OK;
    }
    if (c == ':')
      return ctl_usage(cmd, "%s needs a value", argv[optind - 1]), CTL_OPTIONS_EXIT_USAGE;
    if (c == '?')
      return ctl_usage(cmd, "unknown option %s", argv[optind - 1]), CTL_OPTIONS_EXIT_USAGE;
    return c;
  }
}

int ctl_option_exit(int c) {
  return c == CTL_OPTIONS_EXIT_OK ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

int ctl_parse_count(const char *text, long long max, long long *out) {
  if (!text[0] || text[0] == '-' || text[0] == '+' || text[0] == ' ')
    return -EINVAL;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0 || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

/* Connects with the session (required) and GETs path: the exit code and, on CTL_EXIT_OK,
 * what ctl_call() gives in *resp (if not NULL) and *doc. */
static int get_document(ctl_ctx_t *ctx, const char *path, ctl_response_t *resp, json_t **doc) {
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK)
    return code;
  return ctl_call(ctx, "GET", path, NULL, 0, NULL, resp, doc);
}

/* ---- login, logout -------------------------------------------------------- */

static void strip_slashes(char *s) {
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '/')
    s[--n] = '\0';
}

static int read_password(const char *file, char **password) {
  int r;
  if (file) {
    r = ctl_read_password_file(file, password);
    if (r != CTL_EXIT_OK)
      return r;
  } else if (getenv("ATRIUM_PASSWORD") && getenv("ATRIUM_PASSWORD")[0]) {
    /* Empty counts as unset, as for ATRIUM_TOKEN and ATRIUM_URL. */
    *password = strdup(getenv("ATRIUM_PASSWORD"));
    if (!*password)
      return CTL_EXIT_SERVER;
  } else {
    r = ctl_read_secret_tty("Password: ", password);
    if (r == -ENXIO) {
      fprintf(stderr, "error: no password: there is no terminal to ask on; use --password-file "
                      "FILE or ATRIUM_PASSWORD\n");
      return CTL_EXIT_USAGE;
    }
    if (r < 0) {
      fprintf(stderr, "error: no password read: %s\n", strerror(-r));
      return CTL_EXIT_USAGE;
    }
  }
  if (!(*password)[0]) {
    ctl_secret_free(*password);
    *password = NULL;
    fprintf(stderr, "error: the password is empty\n");
    return CTL_EXIT_USAGE;
  }
  return CTL_EXIT_OK;
}

static int cmd_login(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  static const struct option opts[] = {
      {"user", required_argument, NULL, 'u'},
      {"password-file", required_argument, NULL, 'p'},
      {NULL, 0, NULL, 0},
  };
  const char *user = "admin", *password_file = NULL;
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "u:p:", opts)) != CTL_OPTIONS_DONE) {
    switch (c) {
    case 'u': user = optarg; break;
    case 'p': password_file = optarg; break;
    default: return ctl_option_exit(c);
    }
  }
  if (optind < argc)
    return ctl_usage(cmd, "unexpected argument '%s'", argv[optind]);

  char *password = NULL;
  int code = read_password(password_file, &password);
  if (code != CTL_EXIT_OK)
    return code;
  code = ctl_connect(ctx, CTL_AUTH_NONE);
  json_t *body = code == CTL_EXIT_OK ? json_pack("{s:s, s:s}", "login", user, "password", password)
                                     : NULL;
  ctl_secret_free(password);
  if (code != CTL_EXIT_OK)
    return code;
  if (!body) {
    fprintf(stderr, "error: the user name or password is not valid UTF-8\n");
    return CTL_EXIT_USAGE;
  }
  ctl_response_t resp;
  json_t *doc = NULL;
  code = ctl_call_json(ctx, "POST", "/api/v1/session", body, NULL, &resp, &doc);
  json_t *pw = json_object_get(body, "password");
  if (pw) /* wipe the copy jansson holds */
    explicit_bzero((char *)json_string_value(pw), json_string_length(pw));
  json_decref(body);
  if (code != CTL_EXIT_OK)
    return code;

  const char *token = json_string_value(json_object_get(doc, "token"));
  if (!token || !token[0]) {
    fprintf(stderr, "error: the server accepted the login but sent no token\n");
    code = CTL_EXIT_SERVER;
  } else {
    char url[2048];
    snprintf(url, sizeof(url), "%s", ctl_client_url(ctx->client));
    strip_slashes(url);
    int r = ctl_saved_store(url, token);
    char *path = NULL;
    ctl_saved_path(&path);
    if (r < 0) {
      fprintf(stderr, "error: logged in, but cannot save the session to %s: %s\n",
              path ? path : "the configuration directory", strerror(-r));
      code = CTL_EXIT_USAGE;
    } else if (ctx->json) {
      /* Never the server's document: it holds the token. */
      json_t *out = json_pack("{s:s, s:s, s:s?}", "url", url, "user", user, "saved", path);
      if (out)
        ctl_print_json(out);
      json_decref(out);
    } else {
      printf("Logged in to %s as %s; the session is saved in %s\n", url, user,
             path ? path : "the configuration directory");
    }
    free(path);
  }
  if (doc) {
    json_t *t = json_object_get(doc, "token");
    if (json_is_string(t))
      explicit_bzero((char *)json_string_value(t), json_string_length(t));
  }
  explicit_bzero(resp.body, resp.len);
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}

/* Drops the saved token when it belongs to the server we talk to. */
static int forget_saved_token(const char *url) {
  ctl_saved_t saved = {0};
  int r = ctl_saved_load(&saved);
  if (r == 0 && saved.token && saved.url && ctl_same_url(saved.url, url))
    r = ctl_saved_store(saved.url, NULL);
  ctl_saved_clear(&saved);
  return r;
}

static int cmd_logout(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  if (optind < argc)
    return ctl_usage(cmd, "unexpected argument '%s'", argv[optind]);
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code == CTL_EXIT_AUTH) {
    fprintf(stderr, "(nothing to log out of)\n");
    return CTL_EXIT_OK;
  }
  if (code != CTL_EXIT_OK)
    return code;
  ctl_response_t resp;
  char err[512];
  /* An expired session (401) is as logged out as it gets: still forget the token. */
  int r = ctl_request(ctx->client, "DELETE", "/api/v1/session", NULL, 0, NULL, &resp, err,
                      sizeof(err));
  if (r < 0) {
    fprintf(stderr, "error: %s\n", err);
    return r == -EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_UNREACHABLE;
  }
  code = ctl_exit_for_status(resp.status);
  if (resp.status == 401)
    code = CTL_EXIT_OK;
  else if (code != CTL_EXIT_OK)
    ctl_print_problem(&resp);
  ctl_response_clear(&resp);
  if (code != CTL_EXIT_OK)
    return code;
  /* Only the token just ended is forgotten: with --token or ATRIUM_TOKEN the
   * saved session is a different one and still valid. */
  r = ctx->token_from_saved ? forget_saved_token(ctl_client_url(ctx->client)) : 0;
  if (r < 0) {
    fprintf(stderr, "error: logged out, but cannot update the saved session: %s\n", strerror(-r));
    return CTL_EXIT_USAGE;
  }
  if (!ctx->json)
    printf("Logged out of %s\n", ctl_client_url(ctx->client));
  else
    puts("{}");
  return CTL_EXIT_OK;
}

/* ---- get ------------------------------------------------------------------ */

static bool in_section(const char *key, const char *section) {
  size_t n = strlen(section);
  return strncmp(key, section, n) == 0 && key[n] == '.';
}

static int cmd_get(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  if (argc - optind > 1)
    return ctl_usage(cmd, "give at most one KEY or SECTION");
  const char *what = optind < argc ? argv[optind] : NULL;

  ctl_response_t resp;
  json_t *doc;
  int code = get_document(ctx, "/api/v1/settings", &resp, &doc);
  if (code != CTL_EXIT_OK)
    return code;

  json_t *settings = json_object_get(doc, "settings");
  if (!json_is_object(settings)) {
    fprintf(stderr, "error: the server's settings document has no \"settings\" object\n");
    code = CTL_EXIT_SERVER;
  } else if (!what) {
    if (ctx->json) {
      ctl_print_raw(&resp);
    } else {
      const char *key;
      json_t *entry;
      const char *prev = NULL;
      json_object_foreach(settings, key, entry) {
        /* A blank line between sections, as on the admin page. */
        size_t sec = strcspn(key, ".");
        if (prev && (strcspn(prev, ".") != sec || strncmp(prev, key, sec) != 0))
          putchar('\n');
        ctl_render_setting(stdout, key, entry);
        prev = key;
      }
    }
  } else if (json_object_get(settings, what)) {
    json_t *entry = json_object_get(settings, what);
    if (ctx->json)
      ctl_print_json(entry);
    else
      ctl_render_setting(stdout, what, entry);
  } else {
    json_t *subset = json_object();
    const char *key;
    json_t *entry;
    json_object_foreach(settings, key, entry) {
      if (subset && in_section(key, what))
        json_object_set(subset, key, entry);
    }
    if (!subset) {
      code = CTL_EXIT_SERVER;
    } else if (json_object_size(subset) == 0) {
      fprintf(stderr,
              "error: there is no setting or section named '%s' (see 'atriumctl schema')\n", what);
      code = CTL_EXIT_USAGE;
    } else if (ctx->json) {
      json_t *out = json_pack("{s:O?, s:O}", "version", json_object_get(doc, "version"),
                              "settings", subset);
      if (out)
        ctl_print_json(out);
      json_decref(out);
    } else {
      json_object_foreach(subset, key, entry) ctl_render_setting(stdout, key, entry);
    }
    json_decref(subset);
  }
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}

/* ---- set, validate -------------------------------------------------------- */

int ctl_settings_body(ctl_ctx_t *ctx, const ctl_command_t *cmd, int count, char **pairs,
                      json_t **body) {
  if (count < 1)
    return ctl_usage(cmd, "give at least one KEY=VALUE");
  for (int i = 0; i < count; i++)
    if (!strchr(pairs[i], '=') || pairs[i][0] == '=')
      return ctl_usage(cmd, "'%s' is not KEY=VALUE", pairs[i]);
  json_t *schema;
  int code = get_document(ctx, "/api/v1/settings/schema", NULL, &schema);
  if (code != CTL_EXIT_OK)
    return code;
  char err[512];
  int r = ctl_build_settings_body(schema, pairs, count, body, err, sizeof(err));
  json_decref(schema);
  if (r == -EINVAL)
    return ctl_usage(cmd, "%s", err);
  if (r == -EDOM) {
    /* An invalid value, as the server would refuse it: nothing is sent. */
    fprintf(stderr, "error: Nothing was changed: a value is invalid.\n  %s\n", err);
    return CTL_EXIT_REFUSED;
  }
  if (r < 0) {
    fprintf(stderr, "error: %s\n", err[0] ? err : strerror(-r));
    return r == -ENOMEM ? CTL_EXIT_SERVER : CTL_EXIT_USAGE;
  }
  return CTL_EXIT_OK;
}

static void print_warnings(const json_t *doc) {
  size_t i;
  json_t *w;
  json_array_foreach(json_object_get(doc, "warnings"), i, w) ctl_render_warning(stdout, w);
}

static int cmd_set(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  static const struct option opts[] = {
      {"if-match", required_argument, NULL, 'm'},
      {NULL, 0, NULL, 0},
  };
  const char *if_match = NULL;
  long long version;
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", opts)) != CTL_OPTIONS_DONE) {
    if (c != 'm')
      return ctl_option_exit(c);
    if (ctl_parse_count(optarg, INT64_MAX, &version) < 0)
      return ctl_usage(cmd, "--if-match takes a settings version number, not '%s'", optarg);
    if_match = optarg;
  }
  json_t *body = NULL;
  int code = ctl_settings_body(ctx, cmd, argc - optind, argv + optind, &body);
  if (code != CTL_EXIT_OK)
    return code;

  ctl_response_t resp;
  json_t *doc;
  code = ctl_call_json(ctx, "PATCH", "/api/v1/settings", body, if_match, &resp, &doc);
  if (code == CTL_EXIT_OK) {
    if (ctx->json) {
      ctl_print_raw(&resp);
    } else {
      json_t *settings = json_object_get(doc, "settings");
      const char *key;
      json_t *sent;
      json_object_foreach(body, key, sent) {
        json_t *entry = json_object_get(settings, key);
        if (entry)
          ctl_render_setting(stdout, key, entry);
        else
          printf("%s: set\n", key);
      }
      print_warnings(doc);
      json_t *v = json_object_get(doc, "version");
      if (json_is_integer(v))
        printf("settings version %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
    }
    json_decref(doc);
    ctl_response_clear(&resp);
  }
  json_decref(body);
  return code;
}

static int cmd_validate(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  json_t *body = NULL;
  int code = ctl_settings_body(ctx, cmd, argc - optind, argv + optind, &body);
  if (code != CTL_EXIT_OK)
    return code;
  ctl_response_t resp;
  json_t *doc;
  code = ctl_call_json(ctx, "POST", "/api/v1/settings/validate", body, NULL, &resp, &doc);
  if (code == CTL_EXIT_OK) {
    if (ctx->json) {
      ctl_print_raw(&resp);
    } else {
      puts("valid");
      print_warnings(doc);
    }
    json_decref(doc);
    ctl_response_clear(&resp);
  }
  json_decref(body);
  return code;
}

/* ---- export, import ------------------------------------------------------- */

static int write_private_file(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return -errno;
  int r = 0;
  /* An older file keeps its mode through O_TRUNC; an export is not for everyone. */
  if (fchmod(fd, 0600) < 0)
    r = -errno;
  while (r == 0 && len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno != EINTR)
        r = -errno;
      continue;
    }
    data += n;
    len -= (size_t)n;
  }
  if (r == 0 && fsync(fd) < 0)
    r = -errno;
  if (close(fd) < 0 && r == 0)
    r = -errno;
  return r;
}

static int cmd_export(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  static const struct option opts[] = {
      {"output", required_argument, NULL, 'o'},
      {NULL, 0, NULL, 0},
  };
  const char *output = NULL;
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "o:", opts)) != CTL_OPTIONS_DONE) {
    if (c != 'o')
      return ctl_option_exit(c);
    output = optarg;
  }
  if (optind < argc)
    return ctl_usage(cmd, "unexpected argument '%s'", argv[optind]);
  ctl_response_t resp;
  json_t *doc;
  int code = get_document(ctx, "/api/v1/settings/export", &resp, &doc);
  if (code != CTL_EXIT_OK)
    return code;
  if (!output || strcmp(output, "-") == 0) {
    ctl_print_raw(&resp);
  } else {
    /* Written as received, newline-terminated, so that import gets the very same document. */
    bool nl = resp.len == 0 || resp.body[resp.len - 1] != '\n';
    char *text = NULL;
    int r = asprintf(&text, "%s%s", resp.body, nl ? "\n" : "") < 0 ? -ENOMEM : 0;
    if (r == 0)
      r = write_private_file(output, text, strlen(text));
    free(text);
    if (r < 0) {
      fprintf(stderr, "error: cannot write %s: %s\n", output, strerror(-r));
      code = CTL_EXIT_USAGE;
    } else if (!ctx->json) {
      json_t *v = json_object_get(doc, "version");
      printf("Exported settings version %" JSON_INTEGER_FORMAT " to %s\n",
             json_integer_value(v), output);
    }
  }
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}

static int cmd_import(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  if (argc - optind != 1)
    return ctl_usage(cmd, "give exactly one FILE ('-' for stdin)");
  const char *file = argv[optind];
  char *data = NULL;
  size_t len = 0;
  int r = ctl_read_file(file, &data, &len);
  if (r < 0) {
    fprintf(stderr, "error: cannot read %s: %s\n", strcmp(file, "-") ? file : "stdin",
            strerror(-r));
    return CTL_EXIT_USAGE;
  }
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code == CTL_EXIT_OK) {
    ctl_response_t resp;
    json_t *doc;
    /* Sent as read: the server validates the whole document before it imports anything. */
    code = ctl_call(ctx, "POST", "/api/v1/settings/import", data, len, NULL, &resp, &doc);
    if (code == CTL_EXIT_OK) {
      if (ctx->json) {
        ctl_print_raw(&resp);
      } else {
        json_t *v = json_object_get(doc, "version");
        if (json_is_integer(v))
          printf("Imported %s: settings version %" JSON_INTEGER_FORMAT "\n",
                 strcmp(file, "-") ? file : "stdin", json_integer_value(v));
        else
          printf("Imported %s\n", strcmp(file, "-") ? file : "stdin");
        print_warnings(doc);
      }
      json_decref(doc);
      ctl_response_clear(&resp);
    }
  }
  explicit_bzero(data, len);
  free(data);
  return code;
}

/* ---- audit, schema -------------------------------------------------------- */

static int cmd_audit(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  enum { O_ACTOR = 0x400, O_KEY, O_ACTION, O_SINCE, O_UNTIL };
  static const struct option opts[] = {
      {"limit", required_argument, NULL, 'n'},   {"offset", required_argument, NULL, 'o'},
      {"actor", required_argument, NULL, O_ACTOR}, {"key", required_argument, NULL, O_KEY},
      {"action", required_argument, NULL, O_ACTION}, {"since", required_argument, NULL, O_SINCE},
      {"until", required_argument, NULL, O_UNTIL}, {NULL, 0, NULL, 0},
  };
  const char *limit = NULL, *offset = NULL, *actor = NULL, *key = NULL, *action = NULL,
             *since = NULL, *until = NULL;
  long long n;
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "n:", opts)) != CTL_OPTIONS_DONE) {
    switch (c) {
    case 'n':
      if (ctl_parse_count(optarg, 1000000, &n) < 0 || n == 0)
        return ctl_usage(cmd, "--limit takes a number from 1 to 1000000, not '%s'", optarg);
      limit = optarg;
      break;
    case 'o':
      if (ctl_parse_count(optarg, INT64_MAX, &n) < 0)
        return ctl_usage(cmd, "--offset takes a number of entries to skip, not '%s'", optarg);
      offset = optarg;
      break;
    case O_ACTOR: actor = optarg; break;
    case O_KEY: key = optarg; break;
    case O_ACTION: action = optarg; break;
    case O_SINCE: since = optarg; break;
    case O_UNTIL: until = optarg; break;
    default: return ctl_option_exit(c);
    }
  }
  if (optind < argc)
    return ctl_usage(cmd, "unexpected argument '%s'", argv[optind]);
  const char *pairs[] = {"limit", limit, "offset", offset, "actor", actor, "key", key,
                         "action", action, "since", since, "until", until};
  char path[2048];
  size_t o = (size_t)snprintf(path, sizeof path, "/api/v1/audit");
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i += 2) {
    if (!pairs[i + 1]) continue;
    char esc[800];
    ctl_url_escape(pairs[i + 1], esc, sizeof esc);
    int w = snprintf(path + o, sizeof path - o, "%c%s=%s", strchr(path, '?') ? '&' : '?',
                     pairs[i], esc);
    if (w < 0 || (size_t)w >= sizeof path - o)
      return ctl_usage(cmd, "the filters are too long");
    o += (size_t)w;
  }

  ctl_response_t resp;
  json_t *doc;
  int code = get_document(ctx, path, &resp, &doc);
  if (code != CTL_EXIT_OK)
    return code;
  if (ctx->json)
    ctl_print_raw(&resp);
  else
    ctl_render_audit(stdout, doc);
  json_decref(doc);
  ctl_response_clear(&resp);
  return CTL_EXIT_OK;
}

static bool schema_has(const json_t *schema, const char *what) {
  size_t i;
  json_t *row;
  json_array_foreach(json_object_get(schema, "settings"), i, row) {
    const char *key = json_string_value(json_object_get(row, "key"));
    const char *section = json_string_value(json_object_get(row, "section"));
    if ((key && strcmp(key, what) == 0) || (section && strcmp(section, what) == 0))
      return true;
  }
  return false;
}

static int cmd_schema(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  if (argc - optind > 1)
    return ctl_usage(cmd, "give at most one KEY or SECTION");
  const char *what = optind < argc ? argv[optind] : NULL;
  ctl_response_t resp;
  json_t *doc;
  int code = get_document(ctx, "/api/v1/settings/schema", &resp, &doc);
  if (code != CTL_EXIT_OK)
    return code;
  if (what && !schema_has(doc, what)) {
    fprintf(stderr, "error: there is no setting or section named '%s'\n", what);
    code = CTL_EXIT_USAGE;
  } else if (ctx->json) {
    ctl_print_raw(&resp);
  } else {
    ctl_render_schema(stdout, doc, what);
  }
  json_decref(doc);
  ctl_response_clear(&resp);
  return code;
}

static int cmd_help(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", NULL)) != CTL_OPTIONS_DONE)
    return ctl_option_exit(c);
  if (optind >= argc) {
    ctl_print_usage(stdout);
    return CTL_EXIT_OK;
  }
  const ctl_command_t *other = ctl_command_find(argv[optind]);
  if (!other)
    return ctl_usage(cmd, "there is no command '%s'", argv[optind]);
  ctl_print_command_help(stdout, other);
  return CTL_EXIT_OK;
}

/* ---- the table ------------------------------------------------------------ */

const ctl_command_t ctl_commands[] = {
    {
        .name = "login",
        .run = cmd_login,
        .usage = "[--user NAME] [--password-file FILE]",
        .summary = "log in and save the session token",
        .help = "Logs in (POST /api/v1/session) and saves the server URL and the session token\n"
                "in $XDG_CONFIG_HOME/atrium/atriumctl.json (default ~/.config/atrium/),\n"
                "mode 0600.\n"
                "The password comes from --password-file (first line), else ATRIUM_PASSWORD,\n"
                "else it is asked for on the terminal without echo.\n"
                "\n"
                "  -u, --user NAME            administrator name (default: admin)\n"
                "  -p, --password-file FILE   read the password from FILE\n"
                "\n"
                "Example: atriumctl --url https://atrium.example.com login \\\n"
                "           --password-file pw.txt\n",
    },
    {
        .name = "logout",
        .run = cmd_logout,
        .usage = "",
        .summary = "end the session and forget the saved token",
        .help = "Ends the session on the server (DELETE /api/v1/session) and removes the saved\n"
                "token (the saved URL stays).\n",
    },
    {
        .name = "get",
        .run = cmd_get,
        .usage = "[KEY|SECTION]",
        .summary = "show settings: all, one key, or one section",
        .help = "Shows the settings as \"key = value  (source)\"; the source is default,\n"
                "store or env.\n"
                "A blank value that stands for a computed default shows both:\n"
                "  um.url = (blank) → https://atrium.example.com/umsettings/  (default)\n"
                "Secrets show as (set) or (not set). With --json: the server's document, or\n"
                "the one key's object.\n"
                "\n"
                "Examples: atriumctl get proxy      atriumctl get proxy.port\n",
    },
    {
        .name = "set",
        .run = cmd_set,
        .usage = "KEY=VALUE... [--if-match VERSION]",
        .summary = "change one or more settings in one atomic step",
        .help = "Sends all pairs in one PATCH: either every key changes or none does.\n"
                "Values are converted by the key's type: bool (true/false, yes/no, on/off, 1/0),\n"
                "int and port (decimal), list (comma-separated, or a JSON array '[...]', or\n"
                "@FILE holding JSON; qos.policies takes JSON only). KEY=- reads the value from\n"
                "stdin (for secrets, so that they do not show in ps).\n"
                "\n"
                "      --if-match VERSION   refuse (exit 5) if the settings changed since VERSION\n"
                "\n"
                "Examples: atriumctl set proxy.enabled=true proxy.host=proxy.example.com\n"
                "          atriumctl set proxy.bypass=10.0.0.0/8,*.example.com\n"
                "          atriumctl set qos.policies=@policies.json\n"
                "          printf '%s' \"$PW\" | atriumctl set proxy.password=-\n",
    },
    {
        .name = "validate",
        .run = cmd_validate,
        .usage = "KEY=VALUE...",
        .summary = "check values without changing anything",
        .help = "Checks the pairs like set does (POST /api/v1/settings/validate) and prints\n"
                "\"valid\" and any warnings, or the server's errors (exit 1).\n"
                "\n"
                "Example: atriumctl validate meeting.url=http://meet.example.com/\n",
    },
    {
        .name = "export",
        .run = cmd_export,
        .usage = "[-o FILE]",
        .summary = "write all settings (without secrets) as JSON",
        .help = "Writes the export document (GET /api/v1/settings/export) to stdout or to FILE\n"
                "(created with mode 0600).\n"
                "\n"
                "  -o, --output FILE   write to FILE instead of stdout\n"
                "\n"
                "Example: atriumctl export -o atrium-settings.json\n",
    },
    {
        .name = "import",
        .run = cmd_import,
        .usage = "FILE",
        .summary = "import an export document ('-' for stdin)",
        .help = "Sends FILE to POST /api/v1/settings/import. The server checks the whole\n"
                "document first: if one value is bad, nothing is imported (exit 1).\n"
                "\n"
                "Example: atriumctl import atrium-settings.json\n",
    },
    {
        .name = "audit",
        .run = cmd_audit,
        .usage = "[--actor NAME] [--key KEY|PREFIX*] [--action A] [--since T] [--until T] "
                 "[--limit N] [--offset N]",
        .summary = "show the log of every admin action, newest first",
        .help = "Shows who did what and when: settings (old → new, secrets redacted), users\n"
                "added, changed, renamed, deleted, imported, signed out, the domain change,\n"
                "admin accounts, admin logins and failed logins (with the address).\n"
                "Times are the server's local time with its offset (RFC 3339).\n"
                "\n"
                "      --actor NAME     only what this admin did (or the name a failed login gave)\n"
                "      --key KEY        only this setting, user or account; 'proxy.*' for a prefix\n"
                "      --action A       setting, domain.change, user.add, user.update,\n"
                "                       user.rename, user.delete, user.import, user.sign_out,\n"
                "                       admin.add, admin.enable, admin.disable, admin.remove,\n"
                "                       admin.password, admin.reset_password, admin.login,\n"
                "                       admin.login_failed, ...\n"
                "      --since T        from this time on (RFC 3339 with its offset:\n"
                "                       2026-12-01T09:00:00+01:00 or 2026-12-01T08:00:00Z)\n"
                "      --until T        before this time\n"
                "  -n, --limit N        show at most N entries\n"
                "      --offset N       skip the N newest entries\n"
                "\n"
                "Examples: atriumctl audit --limit 20\n"
                "          atriumctl audit --action admin.login_failed --since 2026-12-01T00:00:00Z\n"
                "          atriumctl audit --key 'proxy.*' --actor alice\n",
    },
    {
        .name = "schema",
        .run = cmd_schema,
        .usage = "[KEY|SECTION]",
        .summary = "describe the settings: type, default, help",
        .help = "Shows every setting (or one key or section) with its type, bounds or\n"
                "choices, default and help text, from GET /api/v1/settings/schema.\n"
                "\n"
                "Example: atriumctl schema proxy\n",
    },
    {
        .name = "proxy",
        .run = ctl_cmd_proxy,
        .usage = CTL_CMD_PROXY_USAGE,
        .summary = CTL_CMD_PROXY_SUMMARY,
        .help = CTL_CMD_PROXY_HELP,
    },
    {
        .name = "push",
        .run = ctl_cmd_push,
        .usage = CTL_CMD_PUSH_USAGE,
        .summary = CTL_CMD_PUSH_SUMMARY,
        .help = CTL_CMD_PUSH_HELP,
    },
    {
        .name = "discover",
        .run = ctl_cmd_discover,
        .usage = CTL_CMD_DISCOVER_USAGE,
        .summary = CTL_CMD_DISCOVER_SUMMARY,
        .help = CTL_CMD_DISCOVER_HELP,
    },
    {
        .name = "reverse-proxy",
        .run = ctl_cmd_reverse_proxy,
        .usage = CTL_CMD_REVERSE_PROXY_USAGE,
        .summary = CTL_CMD_REVERSE_PROXY_SUMMARY,
        .help = CTL_CMD_REVERSE_PROXY_HELP,
    },
    {
        .name = "privacy",
        .run = ctl_cmd_privacy,
        .usage = CTL_CMD_PRIVACY_USAGE,
        .summary = CTL_CMD_PRIVACY_SUMMARY,
        .help = CTL_CMD_PRIVACY_HELP,
    },
    {
        .name = "users",
        .run = ctl_cmd_users,
        .usage = CTL_CMD_USERS_USAGE,
        .summary = CTL_CMD_USERS_SUMMARY,
        .help = CTL_CMD_USERS_HELP,
    },
    {
        .name = "domain",
        .run = ctl_cmd_domain,
        .usage = CTL_CMD_DOMAIN_USAGE,
        .summary = CTL_CMD_DOMAIN_SUMMARY,
        .help = CTL_CMD_DOMAIN_HELP,
    },
    {
        .name = "federation",
        .run = ctl_cmd_federation,
        .usage = CTL_CMD_FEDERATION_USAGE,
        .summary = CTL_CMD_FEDERATION_SUMMARY,
        .help = CTL_CMD_FEDERATION_HELP,
    },
    {
        .name = "cluster",
        .run = ctl_cmd_cluster,
        .usage = CTL_CMD_CLUSTER_USAGE,
        .summary = CTL_CMD_CLUSTER_SUMMARY,
        .help = CTL_CMD_CLUSTER_HELP,
    },
    {
        .name = "presence",
        .run = ctl_cmd_presence,
        .usage = CTL_CMD_PRESENCE_USAGE,
        .summary = CTL_CMD_PRESENCE_SUMMARY,
        .help = CTL_CMD_PRESENCE_HELP,
    },
    {
        .name = "retention",
        .run = ctl_cmd_retention,
        .usage = CTL_CMD_RETENTION_USAGE,
        .summary = CTL_CMD_RETENTION_SUMMARY,
        .help = CTL_CMD_RETENTION_HELP,
    },
    {
        .name = "admin",
        .run = ctl_cmd_admin,
        .usage = CTL_CMD_ADMIN_USAGE,
        .summary = CTL_CMD_ADMIN_SUMMARY,
        .help = CTL_CMD_ADMIN_HELP,
    },
    {
        .name = "status",
        .run = ctl_cmd_status,
        .usage = CTL_CMD_STATUS_USAGE,
        .summary = CTL_CMD_STATUS_SUMMARY,
        .help = CTL_CMD_STATUS_HELP,
    },
    {
        .name = "help",
        .run = cmd_help,
        .usage = "[COMMAND]",
        .summary = "show this help, or a command's",
        .help = "Shows the overview, or the help of COMMAND.\n",
    },
};

const size_t ctl_command_count = sizeof(ctl_commands) / sizeof(ctl_commands[0]);

const ctl_command_t *ctl_command_find(const char *name) {
  for (size_t i = 0; i < ctl_command_count; i++)
    if (strcmp(ctl_commands[i].name, name) == 0)
      return &ctl_commands[i];
  return NULL;
}

void ctl_print_usage(FILE *f) {
  fprintf(f, "usage: atriumctl [OPTIONS] COMMAND [ARGS]\n"
             "\n"
             "The administration client of the Atrium server (its REST API).\n"
             "\n"
             "Commands:\n");
  for (size_t i = 0; i < ctl_command_count; i++) {
    char line[128];
    snprintf(line, sizeof(line), "%s %s", ctl_commands[i].name, ctl_commands[i].usage);
    /* A long usage line gets the summary on the next line, still in its column. */
    if (strlen(line) > 44)
      fprintf(f, "  %s\n  %-44s %s\n", line, "", ctl_commands[i].summary);
    else
      fprintf(f, "  %-44s %s\n", line, ctl_commands[i].summary);
  }
  fprintf(f,
          "\n"
          "Options (before or after the command):\n"
          "      --url URL       server (default: $ATRIUM_URL, else the URL saved by login,\n"
          "                      else " CTL_DEFAULT_URL ")\n"
          "      --token TOKEN   session token (default: $ATRIUM_TOKEN, else the token saved\n"
          "                      by login for that URL)\n"
          "      --cacert FILE   trust the CA certificate(s) in FILE for HTTPS\n"
          "      --json          print the server's JSON as is (for scripts)\n"
          "  -v, --verbose       print each request and status to stderr (never the token)\n"
          "  -h, --help          show help (after a command: that command's help)\n"
          "      --version       print the version\n"
          "\n"
          "Exit codes:\n"
          "  0  success\n"
          "  1  the server refused the request (invalid value: 422; 400; 413;\n"
          "     404: no such user)\n"
          "  2  usage error (bad arguments, unreadable file)\n"
          "  3  cannot reach the server (connection refused, DNS, TLS, timeout)\n"
          "  4  authentication needed or refused (not logged in; 401, 403, 429)\n"
          "  5  conflict (409: e.g. domain.name, an env-locked key, a taken user name;\n"
          "     412: stale --if-match)\n"
          "  6  server error (5xx), another status, or an unexpected response\n"
          "  7  (status) a module is failing\n"
          "Some commands add their own meaning (proxy test, discover, domain change):\n"
          "see their --help.\n"
          "\n"
          "The session is saved in $XDG_CONFIG_HOME/atrium/atriumctl.json (default\n"
          "~/.config/atrium/atriumctl.json). See docs/cli.md.\n");
}

void ctl_print_short_usage(FILE *f) {
  fputs("usage: atriumctl [OPTIONS] COMMAND [ARGS]\ncommands:", f);
  for (size_t i = 0; i < ctl_command_count; i++)
    fprintf(f, " %s", ctl_commands[i].name);
  fputs("\nTry 'atriumctl --help'.\n", f);
}

void ctl_print_command_help(FILE *f, const ctl_command_t *cmd) {
  fprintf(f, "usage: atriumctl [OPTIONS] %s %s\n\n%s\n%s", cmd->name, cmd->usage, cmd->summary,
          cmd->help[0] ? "\n" : "");
  fputs(cmd->help, f);
  fputs("\nGlobal options and exit codes: atriumctl --help\n", f);
}
