/* The web meeting module: guest registration with the privacy policy, and
 * the meeting's WebSocket. */
#pragma once

#include "mod/module.h"

extern const atrium_module_t meeting_module;
