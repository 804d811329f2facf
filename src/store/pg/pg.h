/* The PostgreSQL backend of the store, for several nodes sharing one
 * database (libpq; PostgreSQL 15 and later). Selected in atlas.xml with
 * <Store backend="postgresql" conninfo="host=/run/postgresql dbname=atrium"/>;
 * store_options_t.conninfo is that libpq connection string. It is never
 * written to a message: it may hold a password.
 *
 * Schema. The same numbered steps as the SQLite backend (step N here makes
 * what step N makes there, so both report the same schema version), applied
 * in order at open, each in its own transaction under an advisory lock so
 * that nodes starting together cannot both run a step. The table
 * schema_migrations holds one row per applied step (version, applied_at);
 * a store whose newest step is beyond this code's is refused with a
 * sentence. The objects go into the first schema of the connection's
 * search_path. Names, keys and addresses are COLLATE "C" (byte order and
 * ASCII-only case folding, as SQLite compares); a Windows account is unique
 * by lower() of it; the times the store stamps itself are timestamptz and
 * read back through rfc3339() as "2026-11-26T14:05:19.123Z", while the
 * times a caller hands in (a message's time, delivered/read, a journal
 * entry's start) are kept as the text given, exactly as SQLite keeps them.
 *
 * Transactions. A write transaction is SERIALIZABLE: the operations were
 * written for SQLite, where writers never overlap, and callers rely on that
 * (read the settings version, write version + 1; count admins, create the
 * first). Serialisable snapshot isolation keeps those semantics without a
 * lock in every caller, and reports the rare conflict as a serialisation
 * failure (SQLSTATE 40001, or deadlock 40P01), which this backend returns as
 * -EAGAIN, at commit or from the statement that hit it, so store_run_txn runs
 * the transaction again. A connection lost before COMMIT is -EAGAIN as well
 * (nothing was committed; the next attempt gets a new connection); lost
 * during COMMIT it is -EIO (the outcome is unknown). Serialisation failures
 * are not counted as store errors: store.c counts the retries. A read
 * transaction is REPEATABLE READ READ ONLY: one snapshot, and it never fails
 * for serialisation. Message ids are handed out under a transaction-level
 * advisory lock, so that they increase in commit order (offline delivery
 * reads "id > the last one seen").
 *
 * Answers are not errors. In SQLite a refused statement (-EEXIST for a
 * unique name taken, -EINVAL for a missing row referenced or a value a CHECK
 * refuses) leaves the transaction usable, and callers go on after one; in
 * PostgreSQL any error aborts the transaction. So each operation is written
 * not to raise its expected answers: values the CHECKs would refuse are
 * refused in C, a missing referenced row gives no row (INSERT ... SELECT ...
 * WHERE EXISTS), a taken key inserts nothing (ON CONFLICT DO NOTHING), and
 * the row count says which answer it was: one round trip, no subtransaction
 * (an import makes thousands in one transaction, and subtransactions beyond
 * 64 slow every session of the server). The two rare operations whose
 * answer is a constraint hard to foresee (renaming a user onto a taken name
 * or account, a contact that does not exist) run in a savepoint instead.
 * After any other failure the server has aborted the transaction: later
 * operations in it return the same code and commit rolls back.
 *
 * Connections. A pool of PG_POOL_SIZE connections, made when first needed;
 * begin waits (at most PG_POOL_WAIT_MS) for a free one. A connection that
 * failed is closed when given back and made anew at the next begin; one that
 * the server dropped while idle is noticed at BEGIN and replaced at once.
 * Each connection prepares a statement the first time it runs it and keeps
 * it (PG_CACHE_MAX per connection).
 *
 * Notifications. store_notify is pg_notify(channel, payload) in the
 * transaction: delivered when it commits, never when it rolls back.
 * store_listen starts (once) a listener thread of its own, on a connection of
 * its own, which LISTENs on every channel asked for and calls fn(channel,
 * payload, ctx) on that thread; store_listen returns when the LISTEN is in
 * place (or after PG_LISTEN_WAIT_MS when the server cannot be reached; the
 * thread keeps trying). The thread polls its socket with a bounded timeout
 * so that store_close stops and joins it promptly; fn must not close the
 * store. When the connection is lost the thread reconnects with backoff
 * (PG_LISTEN_BACKOFF_MIN_MS doubling to PG_LISTEN_BACKOFF_MAX_MS), LISTENs
 * again, and then calls fn with a NULL payload for every subscription: "you
 * may have missed something, read again". A trigger on the settings version
 * row (settings_state) notifies the channel "settings" with the new version
 * on every change, so that a hand-made SQL UPDATE reaches every node.
 * Channels are per database: two Atrium stores in one database (two
 * schemas) hear each other's notifications. */
#pragma once

#include "store/store.h"

const store_backend_t *store_pg_backend(void);
