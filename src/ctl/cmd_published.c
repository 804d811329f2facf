/* atriumctl reverse-proxy and atriumctl privacy. */
#include "ctl/cmd_published.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/client.h"
#include "ctl/session.h"

#define TEMPLATE_MAX (256 * 1024)

typedef struct opts {
  const char *listen, *tls, *output, *lang;
  bool force;
} opts_t;

/* GET path as JSON into *doc; with --json the document is printed as received. */
static int get_json(ctl_ctx_t *ctx, const char *path, json_t **doc) {
  ctl_response_t resp;
  int code = ctl_call(ctx, "GET", path, NULL, 0, NULL, &resp, doc);
  if (code != CTL_EXIT_OK)
    return code;
  if (ctx->json)
    ctl_print_raw(&resp);
  ctl_response_clear(&resp);
  return CTL_EXIT_OK;
}

/* The options of both commands, parsed in one pass (glibc permutes, so they
 * may come anywhere; each command refuses the other's). Returns the index of
 * the subcommand, or a negative exit code (-1 - code). */
static int parse_options(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv,
                         opts_t *o) {
  static const struct option own[] = {
      {"listen", required_argument, NULL, 'L'}, {"tls", required_argument, NULL, 'T'},
      {"output", required_argument, NULL, 'o'}, {"lang", required_argument, NULL, 'l'},
      {"force", no_argument, NULL, 'f'},        {NULL, 0, NULL, 0},
  };
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "o:", own)) != CTL_OPTIONS_DONE) {
    switch (c) {
    case 'L': o->listen = optarg; break;
    case 'T': o->tls = optarg; break;
    case 'o': o->output = optarg; break;
    case 'l': o->lang = optarg; break;
    case 'f': o->force = true; break;
    default: return -1 - ctl_option_exit(c);
    }
  }
  return optind;
}

/* ---- reverse-proxy ---------------------------------------------------------------- */

static void print_list(const json_t *doc) {
  const json_t *entries = json_object_get(doc, "entries"), *e;
  size_t i;
  printf("Forward these URLs to atriumd (%s):\n",
         json_string_value(json_object_get(json_object_get(doc, "upstream"), "url")));
  if (json_array_size(entries) == 0) printf("  (nothing is published)\n");
  json_array_foreach(entries, i, e) {
    printf("  %-24s %s\n  %-24s -> %s\n", json_string_value(json_object_get(e, "title")),
           json_string_value(json_object_get(e, "url")), "",
           json_string_value(json_object_get(e, "upstream")));
    if (json_is_true(json_object_get(e, "websocket")))
      printf("  %-24s WebSocket at %s: forward Upgrade and Connection\n", "",
             json_string_value(json_object_get(e, "websocket_path")));
  }
  const json_t *w;
  json_array_foreach(json_object_get(doc, "conflicts"), i, w)
      printf("conflict: %s is used by %s and %s\n", json_string_value(json_object_get(w, "url")),
             json_string_value(json_object_get(w, "features")),
             json_string_value(json_object_get(w, "also")));
  json_array_foreach(json_object_get(doc, "warnings"), i, w)
      printf("warning: %s\n", json_string_value(json_object_get(w, "message")));
}

static int write_file(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, data + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    done += (size_t)w;
  }
  return close(fd) == 0 ? 0 : -errno;
}

int ctl_cmd_reverse_proxy(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  opts_t o = {0};
  int i = parse_options(ctx, cmd, argc, argv, &o);
  if (i < 0) return -1 - i;
  if (i >= argc) return ctl_usage(cmd, "say what to show: 'list' or 'nginx'");
  const char *sub = argv[i];
  if (i + 1 < argc) return ctl_usage(cmd, "too many arguments");
  if (strcmp(sub, "list") && strcmp(sub, "nginx"))
    return ctl_usage(cmd, "unknown subcommand '%.64s'; use list or nginx", sub);
  if (strcmp(sub, "list") == 0 && (o.listen || o.tls || o.output))
    return ctl_usage(cmd, "--listen, --tls and --output belong to 'nginx'");
  if (o.tls && !o.listen) return ctl_usage(cmd, "--tls needs --listen");
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK) return code;

  if (strcmp(sub, "list") == 0) {
    json_t *doc = NULL;
    code = get_json(ctx, "/api/v1/reverse-proxy", &doc);
    if (code == CTL_EXIT_OK && !ctx->json) print_list(doc);
    json_decref(doc);
    return code;
  }
  char path[512] = "/api/v1/reverse-proxy/nginx";
  if (o.listen) {
    char *l = curl_easy_escape(NULL, o.listen, 0);
    char *t = curl_easy_escape(NULL, o.tls ? o.tls : "on", 0);
    if (!l || !t) {
      curl_free(l);
      curl_free(t);
      fprintf(stderr, "error: out of memory\n");
      return CTL_EXIT_SERVER;
    }
    snprintf(path, sizeof path, "/api/v1/reverse-proxy/nginx?listen=%.200s&tls=%.20s", l, t);
    curl_free(l);
    curl_free(t);
  }
  ctl_response_t resp;
  code = ctl_call(ctx, "GET", path, NULL, 0, NULL, &resp, NULL);
  if (code != CTL_EXIT_OK) return code;
  if (o.output) {
    int r = write_file(o.output, resp.body, resp.len);
    if (r != 0) {
      fprintf(stderr, "error: cannot write %s: %s\n", o.output, strerror(-r));
      code = CTL_EXIT_USAGE;
    } else {
      fprintf(stderr, "wrote %s; fill in the ssl_certificate paths, then run 'nginx -t'\n",
              o.output);
    }
  } else {
    fwrite(resp.body, 1, resp.len, stdout);
  }
  ctl_response_clear(&resp);
  return code;
}

/* ---- privacy ------------------------------------------------------------------------ */

static void print_privacy(const json_t *doc) {
  printf("install directory:        %s\n",
         json_string_value(json_object_get(doc, "install_directory")));
  printf("customisation directory:  %s  (copies here win)\n",
         json_string_value(json_object_get(doc, "custom_directory")));
  const json_t *t;
  size_t i;
  json_array_foreach(json_object_get(doc, "templates"), i, t) {
    const char *path = json_string_value(json_object_get(t, "path"));
    printf("  %s: %-10s %s\n", json_string_value(json_object_get(t, "lang")),
           json_string_value(json_object_get(t, "source")), path ? path : "");
  }
  const json_t *days = json_object_get(doc, "retention_days");
  if (json_is_integer(days))
    printf("{RetentionTime}: %" JSON_INTEGER_FORMAT " days\n", json_integer_value(days));
  else
    printf("{RetentionTime}: cannot be determined: %s\n",
           json_string_value(json_object_get(doc, "retention_error")));
}

/* Reads a template of at most TEMPLATE_MAX bytes. */
static int read_template(const char *path, char **buf, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  *buf = malloc(TEMPLATE_MAX + 1);
  if (!*buf) {
    close(fd);
    return -ENOMEM;
  }
  size_t got = 0;
  for (;;) {
    ssize_t r = read(fd, *buf + got, TEMPLATE_MAX + 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      free(*buf);
      return -e;
    }
    if (r == 0) break;
    got += (size_t)r;
    if (got > TEMPLATE_MAX) {
      close(fd);
      free(*buf);
      return -EFBIG;
    }
  }
  close(fd);
  *len = got;
  return 0;
}

/* mkdir -p, each new level 0755 (the pages are public text). */
static int make_dirs(const char *dir) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -ENAMETOOLONG;
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return -errno;
    *p = saved;
    if (!saved) break;
  }
  struct stat st;
  return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int customize(const json_t *doc, bool force) {
  const char *install = json_string_value(json_object_get(doc, "install_directory"));
  const char *custom = json_string_value(json_object_get(doc, "custom_directory"));
  if (!install || !custom) {
    fprintf(stderr, "error: the server did not name its privacy directories\n");
    return CTL_EXIT_SERVER;
  }
  int r = make_dirs(custom);
  if (r != 0) {
    fprintf(stderr, "error: cannot create %s: %s\n", custom, strerror(-r));
    return CTL_EXIT_USAGE;
  }
  const json_t *t;
  size_t i;
  int copied = 0, kept = 0;
  json_array_foreach(json_object_get(doc, "templates"), i, t) {
    const char *file = json_string_value(json_object_get(t, "file"));
    if (!file || strchr(file, '/')) continue;
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(from, sizeof from, "%s/%s", install, file);
    snprintf(to, sizeof to, "%s/%s", custom, file);
    if (!force && access(to, F_OK) == 0) {
      printf("kept %s (it exists; --force overwrites it)\n", to);
      kept++;
      continue;
    }
    char *buf = NULL;
    size_t len = 0;
    r = read_template(from, &buf, &len);
    if (r != 0) {
      fprintf(stderr,
              "error: cannot read %s: %s\n"
              "hint: run this command on the server machine; the directories come from the "
              "server's atlas.xml\n",
              from, strerror(-r));
      return CTL_EXIT_USAGE;
    }
    r = write_file(to, buf, len);
    free(buf);
    if (r != 0) {
      fprintf(stderr, "error: cannot write %s: %s\n", to, strerror(-r));
      return CTL_EXIT_USAGE;
    }
    printf("copied %s -> %s\n", from, to);
    copied++;
  }
  if (copied)
    printf("Edit the copies in %s; they take effect at the next page view.\n", custom);
  return copied || kept ? CTL_EXIT_OK : CTL_EXIT_SERVER;
}

int ctl_cmd_privacy(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  opts_t o = {0};
  int i = parse_options(ctx, cmd, argc, argv, &o);
  if (i < 0) return -1 - i;
  if (i >= argc) return ctl_usage(cmd, "say what to do: show, preview or customize");
  const char *sub = argv[i];
  if (i + 1 < argc) return ctl_usage(cmd, "too many arguments");
  bool show = strcmp(sub, "show") == 0, preview = strcmp(sub, "preview") == 0,
       cust = strcmp(sub, "customize") == 0;
  if (!show && !preview && !cust)
    return ctl_usage(cmd, "unknown subcommand '%.64s'; use show, preview or customize", sub);
  if (o.listen || o.tls || o.output)
    return ctl_usage(cmd, "--listen, --tls and -o belong to reverse-proxy");
  if (o.lang && !preview) return ctl_usage(cmd, "--lang belongs to 'preview'");
  if (o.force && !cust) return ctl_usage(cmd, "--force belongs to 'customize'");
  if (o.lang && strcasecmp(o.lang, "en") && strcasecmp(o.lang, "de"))
    return ctl_usage(cmd, "--lang must be en or de");
  int code = ctl_connect(ctx, CTL_AUTH_REQUIRED);
  if (code != CTL_EXIT_OK) return code;
  json_t *doc = NULL;
  if (preview) {
    char path[64];
    snprintf(path, sizeof path, "/api/v1/privacy/preview?lang=%s", o.lang ? o.lang : "en");
    bool raw = ctx->json;
    code = get_json(ctx, path, &doc);
    if (code == CTL_EXIT_OK && !raw)
      printf("<!-- %s, from %s -->\n%s\n", json_string_value(json_object_get(doc, "lang")),
             json_string_value(json_object_get(doc, "path")),
             json_string_value(json_object_get(doc, "html")));
    json_decref(doc);
    return code;
  }
  bool raw = ctx->json;
  ctx->json = ctx->json && show; /* customize reports what it did, not the document */
  code = get_json(ctx, "/api/v1/privacy", &doc);
  ctx->json = raw;
  if (code != CTL_EXIT_OK) return code;
  if (show && !raw) print_privacy(doc);
  if (cust) code = customize(doc, o.force);
  json_decref(doc);
  return code;
}
