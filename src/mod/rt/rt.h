/* The real-time core: presence, 1:1 chat and the journal for users, over
 * client WebSockets on the runtime's event loop (docs/protocols/client.md),
 * with the retention sweep of atlas.xml's IMDeleteAfterDays and
 * JournalDeleteAfterDays, and the web client at /app/. */
#pragma once

#include "mod/module.h"

extern const atrium_module_t rt_module;
