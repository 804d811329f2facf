/* The admin module: admin sessions, the settings API, the audit log, health
 * and metrics, and the admin page (web/admin/, compiled in). */
#pragma once

#include "mod/module.h"

extern const atrium_module_t admin_module;
