/* atriumctl reverse-proxy (list, nginx) and atriumctl privacy (show,
 * preview, customize): issue 6. */
#pragma once

#include "ctl/commands.h"

#define CTL_CMD_REVERSE_PROXY_USAGE "list|nginx [--listen ADDR:PORT] [--tls on|off] [-o FILE]"
#define CTL_CMD_REVERSE_PROXY_SUMMARY "what the reverse proxy forwards; an nginx server block"
#define CTL_CMD_REVERSE_PROXY_HELP                                                                \
  "list    the external URLs of the enabled features, where the reverse proxy must\n"             \
  "        forward them (atriumd's address and path) and whether a WebSocket lives\n"             \
  "        below (GET /api/v1/reverse-proxy)\n"                                                    \
  "nginx   a ready nginx configuration: one server block per external host and\n"                 \
  "        port, with the WebSocket upgrade, X-Forwarded-* and the body limit\n"                  \
  "        (GET /api/v1/reverse-proxy/nginx). Fill in the certificate paths.\n"                   \
  "\n"                                                                                            \
  "      --listen ADDR:PORT   every server block listens here instead of where the\n"            \
  "                           URLs say: for testing, or behind a TLS terminator\n"                \
  "      --tls on|off         with --listen: TLS there or plain HTTP (default on)\n"              \
  "  -o, --output FILE        write the configuration to FILE\n"                                  \
  "\n"                                                                                            \
  "Examples: atriumctl reverse-proxy list\n"                                                      \
  "          atriumctl reverse-proxy nginx -o /etc/nginx/conf.d/atrium.conf\n"                    \
  "          atriumctl reverse-proxy nginx --listen 127.0.0.1:8081 --tls off\n"

#define CTL_CMD_PRIVACY_USAGE "show|preview|customize [--lang en|de] [--force]"
#define CTL_CMD_PRIVACY_SUMMARY "the web meeting's privacy policy templates"
#define CTL_CMD_PRIVACY_HELP                                                                      \
  "show        the template directories, which copy is used per language, and\n"                  \
  "            the retention time {RetentionTime} stands for (GET /api/v1/privacy)\n"            \
  "preview     the policy as guests see it now, as HTML (GET /api/v1/privacy/preview)\n"        \
  "customize   copies the shipped templates into the customisation directory,\n"                 \
  "            where your edited copies take precedence. Run it on the server\n"                  \
  "            machine, as a user who may write there: the directories come from\n"              \
  "            the server (atlas.xml's <PrivacyDirectory>), the copying happens\n"                \
  "            here. Existing copies are kept unless --force.\n"                                   \
  "\n"                                                                                            \
  "      --lang en|de   preview: the language (default: en)\n"                                    \
  "      --force        customize: overwrite existing copies\n"                                   \
  "\n"                                                                                            \
  "Examples: atriumctl privacy customize && $EDITOR /etc/atrium/privacy/*.html\n"               \
  "          atriumctl privacy preview --lang de\n"

int ctl_cmd_reverse_proxy(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
int ctl_cmd_privacy(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
