/* atriumctl: the administration client of atriumd.
 *
 *   atriumctl [OPTIONS] COMMAND [ARGS]
 *
 * Global options are parsed here up to the command's name; the command (a
 * row of the table in commands.c) parses the rest, global options included. */
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "ctl/commands.h"

int main(int argc, char **argv) {
  ctl_ctx_t ctx = {0};
  setlocale(LC_CTYPE, "");

  /* '+': stop at the command's name, its options are its own. */
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+:hv", ctl_global_options, NULL)) != -1) {
    if (ctl_apply_global_option(&ctx, c, optarg))
      continue;
    switch (c) {
    case CTL_OPT_HELP:
      ctl_print_usage(stdout);
      return CTL_EXIT_OK;
    case CTL_OPT_VERSION:
      printf("atriumctl %s\n", ATRIUM_VERSION);
      return CTL_EXIT_OK;
    case ':':
      fprintf(stderr, "error: %s needs a value\n", argv[optind - 1]);
      ctl_print_short_usage(stderr);
      return CTL_EXIT_USAGE;
    default:
      fprintf(stderr, "error: unknown option %s\n", argv[optind - 1]);
      ctl_print_short_usage(stderr);
      return CTL_EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    fprintf(stderr, "error: no command given\n");
    ctl_print_short_usage(stderr);
    return CTL_EXIT_USAGE;
  }
  const ctl_command_t *cmd = ctl_command_find(argv[optind]);
  if (!cmd) {
    fprintf(stderr, "error: unknown command '%s'\n", argv[optind]);
    ctl_print_short_usage(stderr);
    return CTL_EXIT_USAGE;
  }
  int sub_argc = argc - optind;
  char **sub_argv = argv + optind;
  /* optind = 0 makes glibc start over, and in permuting mode this time. */
  optind = 0;
  int code = cmd->run(&ctx, cmd, sub_argc, sub_argv);
  ctl_ctx_clear(&ctx);
  if (fflush(stdout) != 0 && code == CTL_EXIT_OK) {
    perror("error: cannot write the output");
    code = CTL_EXIT_USAGE;
  }
  return code;
}
