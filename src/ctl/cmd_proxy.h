/* atriumctl proxy test [proxy.KEY=VALUE ...]: "Test connection" from the
 * shell (POST /api/v1/proxy/test). */
#pragma once

#include "ctl/commands.h"

#define CTL_CMD_PROXY_USAGE "test [proxy.KEY=VALUE...]"
#define CTL_CMD_PROXY_SUMMARY "contact the license server through the proxy"
#define CTL_CMD_PROXY_HELP                                                                        \
  "Contacts the license server (license.server_url, as saved) through the proxy\n"                \
  "settings, the saved ones or the given unsaved values merged over them, and\n"                  \
  "prints the outcome and the stage that failed. Nothing is saved.\n"                             \
  "Values are written as for 'set'; only proxy.* keys are accepted. The saved\n"                  \
  "password is used unless proxy.password is given (proxy.password=- reads it\n"                  \
  "from stdin).\n"                                                                                \
  "\n"                                                                                            \
  "Exit codes: 0 the license server was contacted; 1 the test ran and failed\n"                   \
  "(the message says which hop), or a value is invalid (nothing was contacted);\n"                \
  "otherwise as for every command.\n"                                                             \
  "\n"                                                                                            \
  "Examples: atriumctl proxy test\n"                                                              \
  "          atriumctl proxy test proxy.enabled=true proxy.host=squid.corp proxy.port=3128\n"     \
  "          printf '%s' \"$PW\" | atriumctl proxy test proxy.auth_required=true \\\n"            \
  "              proxy.username=svc-atrium proxy.password=-\n"

int ctl_cmd_proxy(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
