/* atriumctl discover: sends a UDP discovery query (docs/protocols/discovery.md)
 * and lists every server that answers within the timeout. Talks UDP, not the
 * REST API: no login needed. */
#pragma once

#include "ctl/commands.h"

#define CTL_CMD_DISCOVER_USAGE "[--address A]... [--port P] [--timeout MS]"
#define CTL_CMD_DISCOVER_SUMMARY "find servers on the network (UDP discovery)"
#define CTL_CMD_DISCOVER_HELP                                                                     \
  "Sends a discovery query and lists every server that answers: its domain, its\n"                \
  "client URL and its version. Without --address the query goes to the IPv4\n"                   \
  "broadcast address 255.255.255.255 and to the IPv6 all-nodes group ff02::1 on\n"                \
  "every interface; servers answer only while login.publish_address is on.\n"                     \
  "\n"                                                                                            \
  "  -a, --address A   send to A only (IPv4 or IPv6 address or host name;\n"                      \
  "                    repeat for several)\n"                                                     \
  "  -p, --port P      UDP port (default 21730, the default login.discovery_port)\n"             \
  "  -t, --timeout MS  how long to wait for answers (default 2000, at most 60000)\n"              \
  "      --json        print [{\"domain\",\"url\",\"version\",\"from\"}]\n"                       \
  "\n"                                                                                            \
  "Exit codes: 0 at least one server answered; 3 none did within the timeout;\n"                  \
  "2 bad arguments.\n"                                                                            \
  "\n"                                                                                            \
  "Examples: atriumctl discover\n"                                                                \
  "          atriumctl discover --address 10.1.2.3 --port 21730 --timeout 500\n"

int ctl_cmd_discover(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
