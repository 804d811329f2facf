/* atriumctl admin: see cmd_admin.h. */
#include "ctl/cmd_admin.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/client.h"
#include "ctl/input.h"
#include "ctl/session.h"

enum { O_PASSWORD_FILE = 0x300, O_CURRENT_FILE, O_DISABLED };

static const struct option admin_options[] = {
    {"password-file", required_argument, NULL, O_PASSWORD_FILE},
    {"current-password-file", required_argument, NULL, O_CURRENT_FILE},
    {"disabled", no_argument, NULL, O_DISABLED},
    {NULL, 0, NULL, 0},
};

static const char *str(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

static void path_for(char *out, size_t len, const char *name) {
  char esc[300];
  ctl_url_escape(name, esc, sizeof esc);
  snprintf(out, len, "/api/v1/admins/%s", esc);
}

/* A password from FILE, or asked on the terminal (twice when `confirm`). */
static int get_password(const char *file, const char *prompt, bool confirm, char **out) {
  *out = NULL;
  if (file) return ctl_read_password_file(file, out);
  char *a = NULL, *b = NULL;
  int r = ctl_read_secret_tty(prompt, &a);
  if (r == -ENXIO) {
    fprintf(stderr, "error: no terminal to ask for the password on; use --password-file FILE\n");
    return CTL_EXIT_USAGE;
  }
  if (r < 0) {
    fprintf(stderr, "error: no password read: %s\n", strerror(-r));
    return CTL_EXIT_USAGE;
  }
  if (confirm) {
    r = ctl_read_secret_tty("Again: ", &b);
    if (r < 0 || strcmp(a, b) != 0) {
      ctl_secret_free(a);
      ctl_secret_free(b);
      fprintf(stderr, "error: the two passwords differ; nothing was changed\n");
      return CTL_EXIT_USAGE;
    }
    ctl_secret_free(b);
  }
  *out = a;
  return CTL_EXIT_OK;
}

static int current_password(const char *file, char **out) {
  const char *env = getenv("ATRIUM_PASSWORD");
  if (!file && env && env[0]) {
    *out = strdup(env);
    return *out ? CTL_EXIT_OK : CTL_EXIT_SERVER;
  }
  return get_password(file, "Current password: ", false, out);
}

/* Wipes the secrets jansson holds for body, then frees it. */
static void body_free(json_t *body) {
  const char *k;
  json_t *v;
  json_object_foreach(body, k, v) {
    if (json_is_string(v) && strstr(k, "password"))
      explicit_bzero((char *)json_string_value(v), json_string_length(v));
  }
  json_decref(body);
}

static void print_table(const json_t *doc) {
  printf("%-24s %-8s %-9s %-26s %s\n", "NAME", "ENABLED", "SESSIONS", "CREATED",
         "PASSWORD CHANGED");
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(doc, "admins"), i, a) {
    const char *changed = str(a, "password_changed_at");
    printf("%-24s %-8s %-9lld %-26s %s\n", str(a, "name"),
           json_is_true(json_object_get(a, "enabled")) ? "yes" : "no",
           (long long)json_integer_value(json_object_get(a, "sessions")), str(a, "created_at"),
           changed[0] ? changed : "never");
  }
}

int ctl_cmd_admin(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  const char *password_file = NULL, *current_file = NULL;
  bool disabled = false;
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "", admin_options)) != CTL_OPTIONS_DONE) {
    switch (c) {
    case O_PASSWORD_FILE: password_file = optarg; break;
    case O_CURRENT_FILE: current_file = optarg; break;
    case O_DISABLED: disabled = true; break;
    default: return ctl_option_exit(c);
    }
  }
  if (optind >= argc)
    return ctl_usage(cmd,
                     "say what to do: list, add, enable, disable, remove, set-password, password");
  const char *sub = argv[optind];
  int nargs = argc - optind - 1;
  const char *name = nargs > 0 ? argv[optind + 1] : NULL;
  bool list = strcmp(sub, "list") == 0, own = strcmp(sub, "password") == 0;
  bool add = strcmp(sub, "add") == 0, set_pw = strcmp(sub, "set-password") == 0;
  bool enable = strcmp(sub, "enable") == 0, disable = strcmp(sub, "disable") == 0;
  bool remove = strcmp(sub, "remove") == 0;
  if (!list && !own && !add && !set_pw && !enable && !disable && !remove)
    return ctl_usage(cmd, "unknown subcommand '%.64s'", sub);
  if ((list || own) ? nargs != 0 : nargs != 1)
    return ctl_usage(cmd,
                     (list || own) ? "'admin %s' takes options only"
                                   : "'admin %s' takes the account's name",
                     sub);
  if (password_file && !(add || set_pw || own))
    return ctl_usage(cmd, "--password-file does not apply to 'admin %s'", sub);
  if (current_file && !own)
    return ctl_usage(cmd, "--current-password-file applies to 'admin password' only");
  if (disabled && !add) return ctl_usage(cmd, "--disabled applies to 'admin add' only");

  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK) return code;
  char path[400];
  json_t *doc = NULL, *body = NULL;
  char *pw = NULL, *cur = NULL;

  if (list) {
    if ((code = ctl_call(ctx, "GET", "/api/v1/admins", NULL, 0, NULL, NULL, &doc)) != CTL_EXIT_OK)
      return code;
    ctx->json ? ctl_print_json(doc) : print_table(doc);
    json_decref(doc);
    return CTL_EXIT_OK;
  }
  if (remove) {
    path_for(path, sizeof path, name);
    code = ctl_call(ctx, "DELETE", path, NULL, 0, NULL, NULL, NULL);
    if (code == CTL_EXIT_OK && !ctx->json) printf("removed the admin account %s\n", name);
    return code;
  }
  if (own) {
    if ((code = current_password(current_file, &cur)) != CTL_EXIT_OK) return code;
    if ((code = get_password(password_file, "New password: ", true, &pw)) != CTL_EXIT_OK) {
      ctl_secret_free(cur);
      return code;
    }
    body = json_pack("{s:s, s:s}", "current_password", cur, "new_password", pw);
    snprintf(path, sizeof path, "/api/v1/session/password");
  } else if (add) {
    if ((code = get_password(password_file, "Password for the new account: ", true, &pw)) !=
        CTL_EXIT_OK)
      return code;
    body = json_pack("{s:s, s:s, s:b}", "name", name, "password", pw, "enabled", !disabled);
    snprintf(path, sizeof path, "/api/v1/admins");
  } else if (set_pw) {
    if ((code = get_password(password_file, "New password: ", true, &pw)) != CTL_EXIT_OK)
      return code;
    body = json_pack("{s:s}", "password", pw);
    path_for(path, sizeof path, name);
  } else {
    body = json_pack("{s:b}", "enabled", enable);
    path_for(path, sizeof path, name);
  }
  ctl_secret_free(pw);
  ctl_secret_free(cur);
  if (!body) {
    fprintf(stderr, "error: the name or password is not valid UTF-8\n");
    return CTL_EXIT_USAGE;
  }
  code = ctl_call_json(ctx, own || add ? "POST" : "PATCH", path, body, NULL, NULL, &doc);
  body_free(body);
  if (code == CTL_EXIT_OK) {
    if (ctx->json)
      ctl_print_json(doc);
    else if (own)
      printf("Your password is changed; %lld other session(s) of yours ended.\n",
             (long long)json_integer_value(json_object_get(doc, "ended_sessions")));
    else if (add)
      printf("added the admin account %s (%s)\n", name, disabled ? "disabled" : "enabled");
    else if (set_pw)
      printf("new password for %s; %lld session(s) of theirs ended\n", name,
             (long long)json_integer_value(json_object_get(doc, "ended_sessions")));
    else
      printf("%s the admin account %s%s\n", enable ? "enabled" : "disabled", name,
             enable ? "" : "; its sessions ended");
  }
  json_decref(doc);
  return code;
}
