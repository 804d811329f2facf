/* atriumctl status: what runs and what fails (GET /api/v1/status). */
#pragma once

#include "ctl/commands.h"

/* The exit code of `status` when a module is failing (beside the codes
 * every command has). */
#define CTL_EXIT_FAILING 7

#define CTL_CMD_STATUS_USAGE ""
#define CTL_CMD_STATUS_SUMMARY "show what runs and what fails (exit 7 when failing)"
#define CTL_CMD_STATUS_HELP                                                                       \
  "Shows every module's state (ok, warning, failing, off) with what it runs or why\n"           \
  "not, its last error and when it happened, the configuration warnings of the\n"               \
  "settings in force, and how many users and client connections are connected\n"                \
  "(atriumctl presence lists them).\n"                                                          \
  "\n"                                                                                          \
  "Exit codes: 0 nothing is failing (warnings may be shown); 7 at least one module\n"           \
  "is failing; otherwise as for every command. For a monitoring check:\n"                       \
  "  atriumctl status >/dev/null || alert\n"

int ctl_cmd_status(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
