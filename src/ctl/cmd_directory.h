/* atriumctl users / domain / federation: the directory, the domain change and
 * the federation data from the shell (issue 3). */
#pragma once

#include "ctl/commands.h"

#define CTL_CMD_USERS_USAGE "add|list|show|update|delete|sign-out|import ..."
#define CTL_CMD_USERS_SUMMARY "create, list, change, delete and import users"
#define CTL_CMD_USERS_HELP                                                                        \
  "  users add NAME [--display-name TEXT] [--windows-account ACCOUNT]\n"                          \
  "                 [--password-file FILE] [--disabled]\n"                                        \
  "  users list [--query TEXT] [--offset N] [--limit N]\n"                                        \
  "  users show NAME\n"                                                                           \
  "  users update NAME [--name NEW] [--display-name TEXT] [--windows-account ACCOUNT]\n"          \
  "                    [--password-file FILE] [--enabled|--disabled]\n"                           \
  "  users delete NAME\n"                                                                         \
  "  users sign-out NAME      (every login revoked, connected clients closed)\n"                 \
  "  users import FILE        (CSV with a header row, or a JSON array; - for stdin)\n"            \
  "\n"                                                                                            \
  "NAME is the part before the @ (alice), or the login name (alice@example.com).\n"               \
  "An empty --display-name '' or --windows-account '' clears the field. The password\n"           \
  "is the first line of FILE (- reads stdin); it is never taken from the command line.\n"         \
  "An import is all or nothing: a bad row is reported with its row and line number.\n"            \
  "CSV columns: name, display_name, windows_account, password, enabled.\n"                        \
  "\n"                                                                                            \
  "Examples: atriumctl users add alice --display-name 'Alice Liddell' \\\n"                       \
  "              --windows-account 'CORP\\alice' --password-file pw.txt\n"                        \
  "          atriumctl users list --query ali\n"                                                  \
  "          atriumctl users import staff.csv\n"

#define CTL_CMD_DOMAIN_USAGE "change NEW [--dry-run] [--yes]"
#define CTL_CMD_DOMAIN_SUMMARY "change the domain of every login name and IM address"
#define CTL_CMD_DOMAIN_HELP                                                                       \
  "Changes domain.name (and federation.fqdn with it) and so the login name and IM\n"              \
  "address of every user, in one step. Federation must be switched off first.\n"                  \
  "--dry-run shows what would change: the number of users, sample renames, the\n"                 \
  "mobile devices that must set up their login again, the federation\n"                           \
  "subscriptions that will be created again, and the federation FQDN.\n"                          \
  "Without --dry-run the preview is shown and the change asked for on the\n"                      \
  "terminal; --yes applies it without asking (needed when stdin is not a terminal).\n"            \
  "\n"                                                                                            \
  "Exit codes: 0 done; 5 refused because federation is on; 1 the domain is invalid\n"             \
  "or the same; otherwise as for every command.\n"                                                \
  "\n"                                                                                            \
  "Example: atriumctl domain change new.example.com --dry-run\n"

#define CTL_CMD_FEDERATION_USAGE                                                                  \
  "subscriptions|contacts [list [--user NAME] [--state S] | import FILE] | test DOMAIN | status"
#define CTL_CMD_FEDERATION_SUMMARY                                                                \
  "federation subscriptions and contacts, the self-test with a partner, the state"
#define CTL_CMD_FEDERATION_HELP                                                                   \
  "  federation subscriptions [list] [--user NAME] [--state active|pending|to-be-recreated]\n"    \
  "                           [--offset N] [--limit N]\n"                                         \
  "  federation subscriptions import FILE   (CSV columns user, remote, state; or JSON)\n"         \
  "  federation contacts [list] [--user NAME] [--offset N] [--limit N]\n"                         \
  "  federation contacts import FILE        (CSV columns user, remote, display_name)\n"           \
  "\n"                                                                                            \
  "  federation test DOMAIN                 the self-test with a partner domain\n"             \
  "  federation status                      subscriptions, partners seen, the last error\n"     \
  "\n"                                                                                            \
  "A subscription made before a domain change shows as to-be-recreated: it is\n"                  \
  "created again for the user's new IM address.\n"                                                \
  "\n"                                                                                            \
  "test checks, in order: our SRV record (_sipfederationtls._tcp) and its A\n"                    \
  "record, our certificate's names against federation.fqdn, the partner's records,\n"            \
  "a TLS handshake with its server (its certificate checked for DOMAIN) and an\n"                 \
  "OPTIONS ping; one line per step, a failing step says what is wrong. Exit code 0\n"             \
  "when every step passed, 1 when one failed.\n"                                                  \
  "\n"                                                                                            \
  "Examples: atriumctl federation test partner.example.com\n"                                     \
  "          atriumctl federation status\n"

int ctl_cmd_users(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
int ctl_cmd_domain(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
int ctl_cmd_federation(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
