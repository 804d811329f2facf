/* The admin module: admin sessions, the settings API, the audit log, health
 * and metrics, and the admin page (web/admin/, compiled in). */
#pragma once

#include "mod/module.h"

extern const atrium_module_t admin_module;

/* The host's recovery (atriumd --reset-admin-password NAME): gives the
 * account `name` the password, enables it (creating it when it does not
 * exist: *created) and ends its sessions, with a row in the audit log. On
 * failure a sentence in err. Needs only the store. */
int admin_reset_password(store_t *store, const char *name, const char *password, bool *created,
                         char *err, size_t errlen);
