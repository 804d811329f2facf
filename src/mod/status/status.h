/* The status module: what runs and what fails, in one document
 * (GET /api/v1/status) for the admin page's Status page and `atriumctl
 * status`: every module's status() with its last error and when, the
 * configuration warnings of the settings in force, and the real-time
 * module's connected clients. It owns no settings and starts nothing. */
#pragma once

#include "mod/module.h"

extern const atrium_module_t status_module;
