/* An event loop (libuv) on a thread of its own, for long-lived connections:
 * thousands of sockets on one thread, none with a thread of its own.
 *
 * State that the loop owns (its handles, the connections on it) is touched
 * only on the loop's thread. Other threads hand work over with loop_post,
 * which wakes the loop through one uv_async_t and runs the function there;
 * loop_call does the same and waits for it, with a bound. The loop belongs
 * to the module that starts and stops it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct loop loop_t;
typedef void (*loop_fn)(void *arg);

loop_t *loop_new(const char *name);
int loop_start(loop_t *l, char *err, size_t errlen);
/* Runs fn(arg) on the loop's thread, soon and in posting order. 0, or
 * -ESHUTDOWN once the loop stops (fn is then never called) or -ENOMEM. */
int loop_post(loop_t *l, loop_fn fn, void *arg);
/* Posts fn and waits until it ran, at most timeout_ms. -ETIMEDOUT when it
 * did not run in time: it may still run later, so arg must outlive it (keep
 * it static, or refcounted). Called on the loop's own thread, runs fn at once. */
int loop_call(loop_t *l, loop_fn fn, void *arg, int timeout_ms);
/* The libuv loop: only on the loop's thread. */
uv_loop_t *loop_uv(loop_t *l);
bool loop_on_thread(const loop_t *l);
/* Closes every handle still open (owners should have closed theirs: their
 * close callbacks still run), runs what was posted before, and joins. */
void loop_stop(loop_t *l);
void loop_free(loop_t *l); /* stops first; accepts NULL */
/* Milliseconds, monotonic, as libuv caches it for this loop iteration. */
uint64_t loop_now_ms(loop_t *l);
