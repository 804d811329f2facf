/* atriumctl cluster status: the nodes sharing this server's store, the
 * settings version each has in force, the meeting host, and how far each
 * lags (GET /api/v1/cluster). */
#pragma once

#include "ctl/commands.h"

#define CTL_CMD_CLUSTER_USAGE "status"
#define CTL_CMD_CLUSTER_SUMMARY "show the nodes, their settings versions and the meeting host"
#define CTL_CMD_CLUSTER_HELP                                                                      \
  "Lists every node that shares this server's store (GET /api/v1/cluster): its\n"                 \
  "name and URL, the settings version and hash it has in force, how many\n"                       \
  "versions it is behind the store, the age of its heartbeat, and which node\n"                   \
  "hosts the web meetings (with the host's epoch). A node whose heartbeat is\n"                   \
  "older than 5 s is shown as down. Exit 1 when a live node is behind or no\n"                    \
  "node hosts the web meetings.\n"                                                                \
  "\n"                                                                                            \
  "Example: atriumctl cluster status\n"

int ctl_cmd_cluster(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
