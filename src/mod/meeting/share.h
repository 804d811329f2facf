/* Screen sharing of one meeting, on the event loop's thread (except where
 * said): the presenter's regions are decoded into the framebuffer and
 * frames are encoded on the CPU pool; each viewer has a sender of its own
 * that picks its tier and frame rate from that viewer's measured
 * bandwidth. Each tier of a frame is encoded at most once, whatever the
 * number of viewers, and the encoded bytes are shared by reference. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/workpool.h"
#include "http/websocket.h"

typedef struct share share_t;
typedef struct viewer viewer_t;

/* A failure found after share_region returned (a region that does not
 * decode): the room tells the presenter. */
typedef void (*share_error_fn)(void *ctx, int status, const char *code, const char *detail);

/* Reads ATRIUM_SCREEN_ENCODE once, at the module's init: "per-viewer" makes
 * every viewer's frames its own encodes (the baseline of bench/meeting.sh;
 * nothing shared, CPU grows with viewers). True when that is on. */
bool share_configure(void);

share_t *share_new(loop_t *loop, workpool_t *pool, share_error_fn on_error, void *ctx);
/* Viewers must have been removed. Jobs in flight finish on their own. */
void share_free(share_t *s);
/* The presenter changed: the picture starts from black, regions on their
 * way are dropped. */
void share_reset(share_t *s);

/* One region message of the presenter. 0, or an HTTP-like status with a
 * code and sentence for the error frame (nothing else changes). */
int share_region(share_t *s, const uint8_t *data, size_t len, int *status, const char **code,
                 char *err, size_t errlen);

/* A participant who sees the share. max_rate_mbps: the QoS cap of the
 * connection (0: none); own_socket: the socket is the viewer's TCP
 * connection (TCP_INFO and TCP_NOTSENT_LOWAT say something about it). */
viewer_t *share_viewer_add(share_t *s, ws_t *ws, const char *pid, long max_rate_mbps,
                           bool own_socket);
void share_viewer_remove(share_t *s, viewer_t *v);
void share_viewer_writable(viewer_t *v);
/* A frame acknowledged after decode and paint. 0, or -EINVAL (a frame this
 * viewer was not sent) with a sentence. */
int share_viewer_ack(viewer_t *v, uint32_t frame, uint32_t decode_ms, char *err, size_t errlen);

/* {"frames", "encodes": {"high": n, ...}, "encodes_per_frame", "viewers": [...]} */
json_t *share_stats(share_t *s);

/* Process-wide counters for /metrics (any thread). */
typedef struct share_counters {
  uint64_t frames, regions, region_errors, encodes[4], sent[4], skipped;
  uint64_t deltas[4], deltas_sent; /* delta encodes per tier; delta frames sent */
} share_counters_t;
void share_counters(share_counters_t *out);
