/* atriumctl federation test DOMAIN | status: the federation self-test
 * (POST /api/v1/federation/test) and state (GET /api/v1/federation/status),
 * the subcommands of `federation` that talk to the SIP module. */
#pragma once

#include "ctl/commands.h"

/* argv[optind] is "test" or "status" (options already parsed). */
int ctl_federation_sip(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv);
