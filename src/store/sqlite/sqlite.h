/* The SQLite backend of the store: one database file, <data_dir>/atrium.db,
 * in WAL mode with synchronous=FULL (a confirmed change survives power
 * loss) and foreign keys on. Schema migrations are numbered steps applied in
 * order and tracked by PRAGMA user_version, each in its own transaction.
 * store_notify/store_listen do nothing: there is only one node. */
#pragma once

#include "store/store.h"

#define STORE_SQLITE_FILE_NAME "atrium.db"

const store_backend_t *store_sqlite_backend(void);
