/* SIP federation with other organisations (docs/operations/federation.md):
 * presence (SUBSCRIBE/NOTIFY with PIDF) and 1:1 chat (MESSAGE) over mutual
 * TLS, carrying the real-time core's federated addresses (rt.h). */
#pragma once

#include "mod/module.h"

extern const atrium_module_t sip_module;
