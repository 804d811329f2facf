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
 *                      pool's.
 *
 * It also raises the process's descriptor limit to the hard limit, and
 * says how many long-lived connections that leaves room for. */
#pragma once

#include <stddef.h>

#include "core/loop.h"
#include "core/workpool.h"
#include "mod/module.h"

extern const atrium_module_t runtime_module;

loop_t *runtime_loop(void);
workpool_t *runtime_cpu_pool(void);
workpool_t *runtime_io_pool(void);

/* Descriptors kept free of long-lived connections: the store, the listening
 * sockets, logs, outbound requests and requests in progress. */
#define RUNTIME_FD_RESERVE 512
/* How many long-lived connections the descriptor limit leaves room for
 * (the limit minus RUNTIME_FD_RESERVE), for every module together. */
size_t runtime_connection_budget(void);
