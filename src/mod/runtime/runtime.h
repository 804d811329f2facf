/* The runtime module: the event loop and the worker pools the other modules
 * share. It is first in the module list, so it starts before every module
 * that uses them and stops after.
 *
 *   runtime_loop()     one libuv loop thread for long-lived connections
 *                      (WebSockets): thousands on one thread;
 *   runtime_cpu_pool() CPU work (image encoding, password hashing): one
 *                      thread per core, a bounded queue;
 *   runtime_io_pool()  work that blocks on the network (Test connection):
 *                      a few threads, so that it never occupies the CPU
 *                      pool's;
 *   runtime_hash_pool() password hashing (logins, imports): one thread
 *                      fewer than the machine has cores.
 *
 * It also raises the process's descriptor limit to the hard limit, and
 * says how many long-lived connections that leaves room for. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/loop.h"
#include "core/workpool.h"
#include "mod/module.h"

extern const atrium_module_t runtime_module;

loop_t *runtime_loop(void);
workpool_t *runtime_cpu_pool(void);
workpool_t *runtime_io_pool(void);
/* Password hashing (logins, imports): CPUs - 1 threads (at least one), a
 * short queue. */
workpool_t *runtime_hash_pool(void);

/* Descriptors kept free of long-lived connections: the store, the listening
 * sockets, logs, outbound requests and requests in progress. */
#define RUNTIME_FD_RESERVE 512
/* How many long-lived connections the descriptor limit leaves room for
 * (the limit minus RUNTIME_FD_RESERVE), for every module together. */
size_t runtime_connection_budget(void);
/* One place of that budget, shared first come by every module: true when
 * there was room (give it back with runtime_connection_give). */
bool runtime_connection_take(void);
void runtime_connection_give(void);
size_t runtime_connections(void); /* places taken now */

/* For a module's drain: runs close_all on the loop, then waits until
 * open_count() is 0, at most 3 s, and logs how many of `what` were left. */
void runtime_drain(loop_fn close_all, size_t (*open_count)(void), const char *what);
