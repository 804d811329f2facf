/* atriumctl's commands: one table row per command (name, handler, usage
 * line, help), the options every command accepts, and how a command reaches
 * the server. atriumctl.c only parses the global options and dispatches. */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "ctl/client.h"

typedef struct ctl_ctx {
  const char *url_opt;   /* --url, or NULL */
  const char *token_opt; /* --token, or NULL */
  const char *cacert;    /* --cacert, or NULL */
  bool json;
  bool verbose;
  ctl_client_t *client;      /* made by the first request */
  bool token_from_saved;     /* the token came from `login`'s file (for hints) */
} ctl_ctx_t;

struct ctl_command;
/* argv[0] is the command's name; returns an exit code (enum ctl_exit). */
typedef int (*ctl_handler_fn)(ctl_ctx_t *ctx, const struct ctl_command *cmd, int argc,
                              char **argv);

typedef struct ctl_command {
  const char *name;
  ctl_handler_fn run;
  const char *usage;   /* arguments after the name: "[KEY|SECTION]" */
  const char *summary; /* one line in `atriumctl --help` */
  const char *help;    /* `atriumctl COMMAND --help`: options and examples */
} ctl_command_t;

extern const ctl_command_t ctl_commands[];
extern const size_t ctl_command_count;

const ctl_command_t *ctl_command_find(const char *name);

/* The options accepted before and after any command. */
enum ctl_global_option {
  CTL_OPT_URL = 0x100,
  CTL_OPT_TOKEN,
  CTL_OPT_CACERT,
  CTL_OPT_JSON,
  CTL_OPT_VERBOSE = 'v',
  CTL_OPT_HELP = 'h',
  CTL_OPT_VERSION = 0x110,
};
extern const struct option ctl_global_options[];

/* Applies a global option returned by getopt_long: 1 when it was one, 0 when
 * it was not. Help and version are the caller's business. */
int ctl_apply_global_option(ctl_ctx_t *ctx, int opt, const char *arg);

void ctl_print_usage(FILE *f);
/* Two lines for usage errors: the synopsis, the commands, where to read more. */
void ctl_print_short_usage(FILE *f);
void ctl_print_command_help(FILE *f, const ctl_command_t *cmd);

void ctl_ctx_clear(ctl_ctx_t *ctx);

/* ---- for the commands' handlers ------------------------------------------ */

/* A usage error: "error: <fmt>", the command's usage line and where to read
 * more, on stderr. Returns CTL_EXIT_USAGE. */
int ctl_usage(const ctl_command_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

enum { CTL_OPTIONS_DONE = -1, CTL_OPTIONS_EXIT_OK = -2, CTL_OPTIONS_EXIT_USAGE = -3 };

/* getopt_long over the command's own options (shortopts without the leading
 * ':', cmdopts NULL-terminated, either may be NULL) plus the global ones, which
 * are applied to ctx. Returns the command's next option, CTL_OPTIONS_DONE, or
 * CTL_OPTIONS_EXIT_* after --help, --version or a bad option (message
 * printed): pass those to ctl_option_exit. */
int ctl_next_option(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv,
                    const char *shortopts, const struct option *cmdopts);
/* The exit code for a CTL_OPTIONS_EXIT_* (or any other unexpected) option. */
int ctl_option_exit(int c);

/* Full-string non-negative decimal up to max into *out: no atoi, no trailing
 * garbage, no sign. -EINVAL otherwise. */
int ctl_parse_count(const char *text, long long max, long long *out);

/* Connects (a token is needed) and turns KEY=VALUE arguments into the body of
 * a settings request, each value typed by the server's schema. At least one
 * pair is needed; a malformed pair is a usage error. */
int ctl_settings_body(ctl_ctx_t *ctx, const ctl_command_t *cmd, int count, char **pairs,
                      json_t **body);
