/* atriumctl admin: the admin accounts (/api/v1/admins) and one's own
 * password (/api/v1/session/password). */
#pragma once

#include "ctl/commands.h"

#define CTL_CMD_ADMIN_USAGE "list|add|enable|disable|remove|set-password|password ..."
#define CTL_CMD_ADMIN_SUMMARY "manage admin accounts and change your own password"
#define CTL_CMD_ADMIN_HELP                                                                        \
  "  admin list\n"                                                                                \
  "  admin add NAME [--password-file FILE] [--disabled]\n"                                        \
  "  admin enable NAME\n"                                                                         \
  "  admin disable NAME          (its sessions end at once)\n"                                    \
  "  admin remove NAME\n"                                                                         \
  "  admin set-password NAME [--password-file FILE]   (another admin's; their sessions end)\n"   \
  "  admin password [--current-password-file FILE] [--password-file FILE]\n"                      \
  "                              (your own; every other session of yours ends)\n"                 \
  "\n"                                                                                            \
  "Passwords come from the first line of FILE (- reads stdin), else they are asked\n"             \
  "for on the terminal without echo (twice for a new one); never from the command\n"              \
  "line. The current password may also come from ATRIUM_PASSWORD. A new password has\n"           \
  "at least 8 characters.\n"                                                                      \
  "The last enabled account can be neither disabled nor removed (exit 5), and\n"                  \
  "nobody can disable or remove the account they are logged in with.\n"                           \
  "A lost password is reset on the server's host: atriumd --reset-admin-password NAME\n"          \
  "(see docs/operations.md).\n"                                                                   \
  "\n"                                                                                            \
  "Examples: atriumctl admin add alice --password-file pw.txt\n"                                  \
  "          atriumctl admin password\n"

int ctl_cmd_admin(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
