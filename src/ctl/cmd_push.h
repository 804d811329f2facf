/* atriumctl push test|status: the staged push test (POST /api/v1/push/test)
 * and the push sender's state (GET /api/v1/push/status). */
#pragma once

#include "ctl/commands.h"

#define CTL_CMD_PUSH_USAGE "test [--provider apns|fcm|gateway] [--token T] [--user NAME] | status"
#define CTL_CMD_PUSH_SUMMARY "test the way to APNs, FCM or the push gateway; show the sender"
#define CTL_CMD_PUSH_HELP                                                                         \
  "push test sends one request to the provider of the saved settings (APNs\n"                     \
  "unless --provider or gateway mode says otherwise) through the route real\n"                   \
  "notifications take, and prints each hop: config, proxy, connect, tls, alpn,\n"                \
  "token, answer. Without --token the request carries a made-up device token,\n"                 \
  "so a provider that accepted our credentials answers 'bad device token'.\n"                    \
  "With --user NAME it queues a test notification to that user's phones instead.\n"              \
  "\n"                                                                                            \
  "push status prints the sender's state, its last error, the outbox depth and\n"                \
  "the counters.\n"                                                                               \
  "\n"                                                                                            \
  "Exit codes: 0 every hop passed; 1 a hop failed (the message says which);\n"                   \
  "otherwise as for every command.\n"                                                             \
  "\n"                                                                                            \
  "Examples: atriumctl push test\n"                                                               \
  "          atriumctl push test --provider fcm\n"                                                \
  "          atriumctl push test --user alice\n"

int ctl_cmd_push(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
