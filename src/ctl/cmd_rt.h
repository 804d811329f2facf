/* atriumctl presence and atriumctl retention [run]: who is connected
 * (GET /api/v1/presence) and the retention sweep (GET /api/v1/retention,
 * POST /api/v1/retention/run). */
#pragma once

#include "ctl/commands.h"

#define CTL_CMD_PRESENCE_USAGE ""
#define CTL_CMD_PRESENCE_SUMMARY "show who is connected, per user and client"
#define CTL_CMD_PRESENCE_HELP                                                                     \
  "Lists the users with a client connected: their presence and note, and each\n"                  \
  "connection's client, address and time (GET /api/v1/presence).\n"                               \
  "\n"                                                                                            \
  "Example: atriumctl presence\n"

#define CTL_CMD_RETENTION_USAGE "[run]"
#define CTL_CMD_RETENTION_SUMMARY "show the chat and journal retention, or sweep now"
#define CTL_CMD_RETENTION_HELP                                                                    \
  "Shows IMDeleteAfterDays and JournalDeleteAfterDays as atlas.xml says now,\n"                   \
  "the last and next hourly sweep and what it deleted. 'run' sweeps now and\n"                    \
  "waits for it (at most a minute; exit 1 when it is still running then).\n"                      \
  "\n"                                                                                            \
  "Examples: atriumctl retention\n"                                                               \
  "          atriumctl retention run\n"

int ctl_cmd_presence(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
int ctl_cmd_retention(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
